//! Throughput of the per-item dedup work: the sketch and bands of a ~500-word article and
//! canonicalisation of feed links.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use feedwire::dedup::{canonical_url, content_hash, dedup_key, sketch};
use url::Url;

/// About 500 words of article text, paragraphs split by blank lines.
fn article() -> String {
    let text = [
        include_str!("../tests/fixtures/dedup/rates--extra.txt"),
        include_str!("../tests/fixtures/dedup/study--wire.txt"),
    ]
    .map(|raw| raw.split_once("\n\n").map_or(raw, |(_, text)| text))
    .join("\n\n");
    let mut words = 0;
    let mut out = Vec::new();
    for paragraph in text.split("\n\n") {
        if words >= 500 {
            break;
        }
        words += paragraph.split_whitespace().count();
        out.push(paragraph);
    }
    out.join("\n\n")
}

const LINKS: &[&str] = &[
    "https://www.example.com/news/2026/03/12/quake-strikes?utm_source=rss&utm_medium=feed&utm_campaign=world",
    "HTTPS://Example.COM:443/a/123?b=2&a=1&fbclid=IwAR0abcdef#comments",
    "https://example.com/news/story/amp/?amp=1&id=42",
    "https://www-example-com.cdn.ampproject.org/c/s/www.example.com/news/x?usqp=mq331AQ",
    "https://example.com/caf%c3%a9/%7Euser/article.html",
    "https://example.com/?p=123",
];

fn bench(c: &mut Criterion) {
    let text = article();
    let mut group = c.benchmark_group("fingerprint");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function(
        format!("sketch_{}_words", text.split_whitespace().count()),
        |b| b.iter(|| sketch(black_box(&text))),
    );
    group.bench_function("content_hash", |b| {
        b.iter(|| content_hash(black_box(&text)))
    });
    group.finish();

    let links: Vec<Url> = LINKS
        .iter()
        .map(|s| Url::parse(s).expect("bench link parses"))
        .collect();
    let mut group = c.benchmark_group("url");
    group.throughput(Throughput::Elements(links.len() as u64));
    group.bench_function("canonical_url", |b| {
        b.iter(|| {
            for link in &links {
                black_box(canonical_url(black_box(link)));
            }
        })
    });
    group.bench_function("canonical_url_and_dedup_key", |b| {
        b.iter(|| {
            for link in &links {
                black_box(dedup_key(&canonical_url(black_box(link))));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
