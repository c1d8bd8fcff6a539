//! Cleaning quality on the WCXB dev split (1,497 pages in seven kinds, CC-BY-4.0), scored as
//! the benchmark's own evaluate.py does: lower-cased `\w+` tokens, word-level F1 per page
//! (bag of words), averaged over all pages and over each kind.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;

use feedwire::extract::extract_dir;

/// Mean F1 must not fall below these (each set a little under what was measured).
const MIN_F1: &[(&str, f64)] = &[
    ("article", 0.943),
    ("documentation", 0.918),
    ("service", 0.772),
    ("forum", 0.804),
    ("product", 0.646),
    ("collection", 0.637),
    ("listing", 0.668),
    ("all", 0.847),
];

fn tokens(text: &str) -> HashMap<String, u32> {
    let mut counts = HashMap::new();
    for t in text
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|t| !t.is_empty())
    {
        *counts.entry(t.to_lowercase()).or_insert(0) += 1;
    }
    counts
}

fn f1(pred: &str, reference: &str) -> f64 {
    let (p, r) = (tokens(pred), tokens(reference));
    let (np, nr): (u32, u32) = (p.values().sum(), r.values().sum());
    if nr == 0 {
        return if np == 0 { 1.0 } else { 0.0 };
    }
    if np == 0 {
        return 0.0;
    }
    let overlap: u32 = p
        .iter()
        .map(|(t, n)| (*n).min(r.get(t).copied().unwrap_or(0)))
        .sum();
    let (precision, recall) = (
        f64::from(overlap) / f64::from(np),
        f64::from(overlap) / f64::from(nr),
    );
    if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    }
}

#[test]
fn wcxb_f1_stays_above_the_ratchet_for_every_kind() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/wcxb/dev");
    if !root.join("html").is_dir() {
        println!("skipped: WCXB dev split not found at {}", root.display());
        return;
    }
    let pages = tempfile::tempdir().expect("temp dir");
    let mut truth: Vec<(String, String, String)> = Vec::new();
    for entry in std::fs::read_dir(root.join("ground-truth")).expect("ground truth") {
        let path = entry.expect("entry").path();
        let id = path
            .file_stem()
            .expect("stem")
            .to_string_lossy()
            .to_string();
        let gt: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        let kind = match gt["_internal"]["page_type"]["primary"].as_str() {
            Some("category") => "collection",
            Some(k) => k,
            None => "article",
        };
        let reference = gt["ground_truth"]["main_content"].as_str().unwrap_or("");
        let gz =
            std::fs::File::open(root.join("html").join(format!("{id}.html.gz"))).expect("page");
        let mut html = Vec::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_end(&mut html)
            .expect("gunzip");
        std::fs::write(pages.path().join(format!("{id}.html")), html).expect("write");
        truth.push((id, kind.to_string(), reference.to_string()));
    }
    let out = tempfile::tempdir().expect("temp dir");
    let report = extract_dir(pages.path(), out.path()).expect("batch runs");
    assert!(report.failed.is_empty(), "failed: {:?}", report.failed);

    let mut by_kind: HashMap<&str, Vec<f64>> = HashMap::new();
    let mut empty = 0;
    for (id, kind, reference) in &truth {
        let text =
            std::fs::read_to_string(out.path().join(format!("{id}.txt"))).unwrap_or_default();
        empty += usize::from(text.trim().is_empty());
        let score = f1(&text, reference);
        by_kind.entry(kind.as_str()).or_default().push(score);
        by_kind.entry("all").or_default().push(score);
    }
    let mut failures = Vec::new();
    for (kind, floor) in MIN_F1 {
        let scores = by_kind.get(kind).expect("every kind has pages");
        let mean = scores.iter().sum::<f64>() / scores.len() as f64;
        println!(
            "{kind:<14} n={:<5} f1={mean:.4} (floor {floor})",
            scores.len()
        );
        if mean < *floor {
            failures.push(format!("{kind}: f1 {mean:.4} fell below {floor}"));
        }
    }
    println!("empty outputs: {empty}");
    assert!(failures.is_empty(), "{}", failures.join("; "));
}
