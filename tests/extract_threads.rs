//! Threads, product pages and documentation on fixtures of our own
//! (`tests/fixtures/extract/<kind>/<name>.html`): each page goes through the `feedwire
//! extract` batch, like a folder of saved pages, and its output is checked against
//! `<name>.expect`: the kind the page must be taken for (`type:`), lines that must be kept
//! (`+ …`) and lines that must be dropped (`- …`).

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "common/expect.rs"]
mod expect;
use expect::Cleaned;

/// Every way one page's output differs from its expectations.
fn check(expected: &Path, json: &serde_json::Value) -> Vec<String> {
    let cleaned = Cleaned {
        text: json["text"].as_str().expect("text is a string"),
        page_type: json["page_type"].as_str().unwrap_or(""),
        source: None,
    };
    let page = expected.display().to_string();
    let lines = std::fs::read_to_string(expected).expect("expect file");
    expect::problems(&page, &lines, &cleaned)
}

#[test]
fn threads_products_and_docs_keep_their_content_and_drop_their_furniture() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/extract");
    let pages = tempfile::tempdir().expect("temp dir");
    let mut names = Vec::new();
    for kind in ["forum", "product", "documentation"] {
        for entry in std::fs::read_dir(root.join(kind)).expect("fixture folder") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "html") {
                let stem = path.file_stem().expect("stem").to_string_lossy();
                let name = format!("{kind}-{stem}");
                std::fs::copy(&path, pages.path().join(format!("{name}.html"))).expect("copy");
                names.push((name, path.with_extension("expect")));
            }
        }
    }
    assert!(
        names.len() >= 3,
        "one page at least of each kind: {names:?}"
    );

    let out = tempfile::tempdir().expect("temp dir");
    let status = Command::new(env!("CARGO_BIN_EXE_feedwire"))
        .arg("extract")
        .arg("--dir")
        .arg(pages.path())
        .arg("--out")
        .arg(out.path())
        .status()
        .expect("feedwire runs");
    assert!(status.success(), "feedwire extract --dir failed: {status}");

    let mut failures = Vec::new();
    for (name, expect) in &names {
        let json: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.path().join(format!("{name}.json"))).expect("json out"),
        )
        .expect("json");
        failures.extend(
            check(expect, &json)
                .into_iter()
                .map(|m| format!("{name}: {m}")),
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
