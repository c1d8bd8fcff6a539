//! Extraction quality on the shared development set (407 annotated real pages), scored with
//! the set's own rule: whitespace-normalized, case-sensitive substring matching of "with" and
//! "without" snippets, micro-averaged.

use std::path::PathBuf;

use feedwire::extract::extract_dir;

/// F1 must not fall below this. Measured 0.9262 (P 0.9092, R 0.9438) with page kinds.
const MIN_F1: f64 = 0.925;

/// Python's `\s` as the scorer uses it: Unicode whitespace plus U+001C–U+001F.
fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

fn norm(text: &str) -> String {
    text.split(is_space)
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn devset_f1_stays_above_the_ratchet() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/extraction");
    let pages = root.join("pages");
    if !pages.is_dir() {
        println!("skipped: dev set not found at {}", root.display());
        return;
    }
    let out = tempfile::tempdir().expect("temp dir");
    let report = extract_dir(&pages, out.path()).expect("batch runs");
    assert!(
        report.failed.is_empty(),
        "failed pages: {:?}",
        report.failed
    );

    let annotations = std::fs::read_to_string(root.join("annotations.jsonl")).expect("annotations");
    let (mut tp, mut fp, mut fn_, mut tn) = (0u32, 0u32, 0u32, 0u32);
    let mut count = 0;
    for line in annotations.lines().filter(|l| !l.trim().is_empty()) {
        let item: serde_json::Value = serde_json::from_str(line).expect("annotation json");
        let id = item["id"].as_str().expect("id");
        let text =
            std::fs::read_to_string(out.path().join(format!("{id}.txt"))).unwrap_or_default();
        let text = norm(&text);
        let snippets = |key: &str| -> Vec<String> {
            item[key]
                .as_array()
                .map(|a| a.iter().filter_map(|s| s.as_str()).map(norm).collect())
                .unwrap_or_default()
        };
        for w in snippets("with") {
            if text.contains(&w) { tp += 1 } else { fn_ += 1 }
        }
        for w in snippets("without") {
            if text.contains(&w) { fp += 1 } else { tn += 1 }
        }
        count += 1;
    }
    let precision = f64::from(tp) / f64::from((tp + fp).max(1));
    let recall = f64::from(tp) / f64::from((tp + fn_).max(1));
    let f1 = 2.0 * f64::from(tp) / f64::from((2 * tp + fp + fn_).max(1));
    println!(
        "pages={count} tp={tp} fp={fp} fn={fn_} tn={tn} precision={precision:.4} recall={recall:.4} f1={f1:.4} in {:?}",
        report.elapsed
    );
    assert!(f1 >= MIN_F1, "f1 {f1:.4} fell below {MIN_F1}");
}
