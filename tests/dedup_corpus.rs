//! Measures the duplicate decision on the labelled corpus in `tests/fixtures/dedup/`.
//!
//! Every `STORY--VARIANT.txt` file is an item: a `url: …` line, a blank line, the clean
//! text. Two items are the same story when their `STORY` parts are equal. Every pair of
//! items is decided with `same_story` and the daemon's default `max_distance` (3); the
//! test asserts no false merge (precision 1.0) and a recall ratchet. Run with
//! `cargo test --test dedup_corpus -- --nocapture` to see the figures, the Hamming
//! distances and the measurements behind `SHINGLE_WORDS` and `MIN_SIMHASH_WORDS`.

use std::fs;
use std::path::Path;

use feedwire::dedup::{
    Fingerprint, SHINGLE_WORDS, hamming, resolve_page_canonical, same_story, simhash_with,
};
use url::Url;

/// `[dedup] max_distance` default (DESIGN §3).
const MAX_DISTANCE: u32 = 3;

/// Recall reached on this corpus; raise it when the decision improves, never lower it.
const RECALL_RATCHET: f64 = 0.60;

struct Item {
    name: String,
    story: String,
    text: String,
    fingerprint: Fingerprint,
}

fn load() -> Vec<Item> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dedup");
    let mut paths: Vec<_> = fs::read_dir(&dir)
        .expect("corpus directory is readable")
        .map(|entry| entry.expect("corpus entry is readable").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "txt"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|path| {
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .expect("corpus file name is UTF-8")
                .to_owned();
            let (story, _) = name
                .split_once("--")
                .expect("corpus file is named STORY--VARIANT.txt");
            let raw = fs::read_to_string(path).expect("corpus file is readable");
            let (head, text) = raw
                .split_once("\n\n")
                .expect("corpus file has a url line, a blank line, the text");
            let url = head
                .strip_prefix("url: ")
                .expect("corpus file starts with url: ");
            let url = Url::parse(url).expect("corpus url parses");
            let decision = resolve_page_canonical(&url, None);
            Item {
                story: story.to_owned(),
                fingerprint: Fingerprint::new(&decision, text),
                text: text.to_owned(),
                name,
            }
        })
        .collect()
}

/// Number of same-story pairs.
fn tp_at(items: &[Item]) -> u32 {
    pairs(items).filter(|(a, b)| a.story == b.story).count() as u32
}

fn pairs(items: &[Item]) -> impl Iterator<Item = (&Item, &Item)> {
    items
        .iter()
        .enumerate()
        .flat_map(move |(i, a)| items[i + 1..].iter().map(move |b| (a, b)))
}

/// Min, max and mean of distances, or dashes when there are none.
fn spread(distances: &[u32]) -> String {
    match (distances.iter().min(), distances.iter().max()) {
        (Some(min), Some(max)) => format!(
            "min {min:2} max {max:2} mean {:5.1} (n={})",
            distances.iter().sum::<u32>() as f64 / distances.len() as f64,
            distances.len()
        ),
        _ => "-".to_owned(),
    }
}

/// The first `n` words of a text, keeping its lines apart.
fn prefix_words(text: &str, n: usize) -> String {
    let mut left = n;
    let mut out = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().take(left).collect();
        left -= words.len();
        out.push(words.join(" "));
        if left == 0 {
            break;
        }
    }
    out.join("\n")
}

#[test]
fn merge_decision_on_corpus() {
    let items = load();
    assert!(items.len() >= 30, "corpus has {} items", items.len());

    let (mut tp, mut fp, mut fneg, mut tn) = (0u32, 0u32, 0u32, 0u32);
    let mut reasons = std::collections::BTreeMap::new();
    let mut same = Vec::new();
    let mut different = Vec::new();
    for (a, b) in pairs(&items) {
        let expected = a.story == b.story;
        let decided = same_story(&a.fingerprint, &b.fingerprint, Some(MAX_DISTANCE));
        if let (Some(x), Some(y)) = (a.fingerprint.simhash, b.fingerprint.simhash) {
            let d = hamming(x, y);
            if expected {
                same.push(d)
            } else {
                different.push(d)
            }
            if expected && d > MAX_DISTANCE || !expected && d <= MAX_DISTANCE + 6 {
                println!(
                    "  d={d:2} {} {} / {}",
                    if expected { "same" } else { "diff" },
                    a.name,
                    b.name
                );
            }
        }
        match (expected, decided) {
            (true, Some(reason)) => {
                tp += 1;
                *reasons.entry(reason.as_str()).or_insert(0u32) += 1;
            }
            (true, None) => {
                fneg += 1;
                println!("  missed: {} / {}", a.name, b.name);
            }
            (false, Some(reason)) => {
                fp += 1;
                println!(
                    "  FALSE MERGE ({}): {} / {}",
                    reason.as_str(),
                    a.name,
                    b.name
                );
            }
            (false, None) => tn += 1,
        }
    }
    let precision = f64::from(tp) / f64::from((tp + fp).max(1));
    let recall = f64::from(tp) / f64::from((tp + fneg).max(1));
    println!(
        "corpus: {} items, {} same-story pairs, {} different-story pairs",
        items.len(),
        tp + fneg,
        fp + tn
    );
    println!(
        "decision (max_distance {MAX_DISTANCE}): precision {precision:.3} recall {recall:.3} (tp {tp} fp {fp} fn {fneg} tn {tn}) by reason {reasons:?}"
    );
    println!("simhash distance, same story:      {}", spread(&same));
    println!("simhash distance, different story: {}", spread(&different));

    println!("by max_distance (near-duplicates only from distance; url and content rules as is):");
    for max in 0..=14 {
        let (mut tp, mut fp) = (0u32, 0u32);
        for (a, b) in pairs(&items) {
            if same_story(&a.fingerprint, &b.fingerprint, Some(max)).is_some() {
                if a.story == b.story { tp += 1 } else { fp += 1 }
            }
        }
        println!(
            "  max_distance {max:2}: recall {:.3} precision {:.3}",
            f64::from(tp) / f64::from(tp_at(&items).max(1)),
            f64::from(tp) / f64::from((tp + fp).max(1))
        );
    }

    assert_eq!(fp, 0, "no different-story pair may merge");
    assert!(
        recall >= RECALL_RATCHET,
        "recall {recall:.3} fell below {RECALL_RATCHET}"
    );
}

/// The measurement behind `SHINGLE_WORDS`: distances by shingle size, text only.
#[test]
fn shingle_size_measurement() {
    let items = load();
    println!(
        "shingle size: distances (text only), near-merge recall / false merges at d <= {MAX_DISTANCE}"
    );
    for k in 1..=4 {
        let hashes: Vec<u64> = items
            .iter()
            .map(|item| simhash_with(&item.text, k, 0).expect("corpus texts are long"))
            .collect();
        let (mut same, mut different) = (Vec::new(), Vec::new());
        for i in 0..items.len() {
            for j in i + 1..items.len() {
                let d = hamming(hashes[i], hashes[j]);
                if items[i].story == items[j].story {
                    same.push(d)
                } else {
                    different.push(d)
                }
            }
        }
        let recall = same.iter().filter(|d| **d <= MAX_DISTANCE).count() as f64 / same.len() as f64;
        let false_merges = different.iter().filter(|d| **d <= MAX_DISTANCE).count();
        println!(
            "  k={k}{} same {} | different {} | recall {recall:.3} false merges {false_merges}",
            if k == SHINGLE_WORDS { "*" } else { " " },
            spread(&same),
            spread(&different)
        );
    }
}

/// The measurement behind `MIN_SIMHASH_WORDS`: the same pairs cut to their first N words
/// (as a feed summary would be), text only.
#[test]
fn short_text_measurement() {
    let items = load();
    println!(
        "prefix words: near-merge recall / false merges at d <= {MAX_DISTANCE}, different-story min distance"
    );
    for n in [20, 30, 40, 60, 80, 100, 150] {
        let hashes: Vec<u64> = items
            .iter()
            .map(|item| {
                simhash_with(&prefix_words(&item.text, n), SHINGLE_WORDS, 0)
                    .expect("prefix has words")
            })
            .collect();
        let (mut same, mut different) = (Vec::new(), Vec::new());
        for i in 0..items.len() {
            for j in i + 1..items.len() {
                let d = hamming(hashes[i], hashes[j]);
                if items[i].story == items[j].story {
                    same.push(d)
                } else {
                    different.push(d)
                }
            }
        }
        let recall = same.iter().filter(|d| **d <= MAX_DISTANCE).count() as f64 / same.len() as f64;
        let false_merges = different.iter().filter(|d| **d <= MAX_DISTANCE).count();
        println!(
            "  n={n:3} recall {recall:.3} false merges {false_merges:2} | same {} | different {}",
            spread(&same),
            spread(&different)
        );
    }
}
