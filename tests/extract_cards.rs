//! Listings, collections and service pages on fixtures of our own
//! (`tests/fixtures/extract/<kind>/<name>.html`), cleaned by the real binary's batch command
//! (`feedwire extract --dir … --out …`) and checked against `<name>.expect`: the kind the
//! page must be taken for (`type:`), lines that must be kept (`+ …`) and lines that must be
//! dropped (`- …`).

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "common/expect.rs"]
mod expect;
use expect::Cleaned;

/// Every way the cleaned page (`.txt` and `.json` in `out`) differs from its expectations.
fn check(page: &Path, out: &Path) -> Vec<String> {
    let stem = page.file_stem().expect("fixture has a name");
    let expect = std::fs::read_to_string(page.with_extension("expect")).expect("expect file");
    let text = std::fs::read_to_string(out.join(stem).with_extension("txt")).expect("text out");
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join(stem).with_extension("json")).expect("json out"),
    )
    .expect("json output parses");
    let cleaned = Cleaned {
        text: &text,
        page_type: json["page_type"].as_str().unwrap_or(""),
        source: None,
    };
    expect::problems(&page.display().to_string(), &expect, &cleaned)
}

/// Runs `feedwire extract` over one folder of pages into `out`.
fn extract_folder(dir: &Path, out: &Path) {
    let status = Command::new(env!("CARGO_BIN_EXE_feedwire"))
        .arg("extract")
        .arg("--dir")
        .arg(dir)
        .arg("--out")
        .arg(out)
        .status()
        .expect("feedwire runs");
    assert!(
        status.success(),
        "feedwire extract failed on {}",
        dir.display()
    );
}

#[test]
fn listings_collections_and_service_pages_keep_their_cards_and_sections() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/extract");
    let mut failures = Vec::new();
    let mut checked = 0;
    for kind in ["listing", "collection", "service"] {
        let dir = root.join(kind);
        let out = tempfile::tempdir().expect("temp dir");
        extract_folder(&dir, out.path());
        let mut pages: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("fixture folder")
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "html"))
            .collect();
        pages.sort();
        assert!(!pages.is_empty(), "no {kind} fixtures in {}", dir.display());
        for page in &pages {
            checked += 1;
            let name = page
                .strip_prefix(&root)
                .unwrap_or(page)
                .display()
                .to_string();
            failures.extend(
                check(page, out.path())
                    .into_iter()
                    .map(|m| format!("{name}: {m}")),
            );
        }
    }
    assert!(checked >= 3, "fixtures missing");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
