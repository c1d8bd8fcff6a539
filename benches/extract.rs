//! Single-page extraction: the small seed article, and the largest dev-set page when the
//! shared dev set is next to the repository.

use std::path::{Path, PathBuf};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use feedwire::extract::{decode, extract};

fn largest_devset_page() -> Option<PathBuf> {
    let pages = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/extraction/pages");
    std::fs::read_dir(pages)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "html"))
        .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
}

fn bench_page(c: &mut Criterion, name: &str, bytes: &[u8]) {
    let (html, _, _) = decode(bytes, None);
    let mut group = c.benchmark_group("extract");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function(name, |b| {
        b.iter(|| extract(std::hint::black_box(&html), None))
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seed-article/page.html");
    if let Ok(bytes) = std::fs::read(&seed) {
        bench_page(c, "seed-article", &bytes);
    }
    match largest_devset_page().and_then(|p| std::fs::read(p).ok()) {
        Some(bytes) => bench_page(c, "largest-devset-page", &bytes),
        None => eprintln!("skipped: dev set not found next to the repository"),
    }
}

criterion_group!(extract_benches, benches);
criterion_main!(extract_benches);
