//! Page kinds on fixtures of our own (`tests/fixtures/pages/<kind>/<name>.html`): each page
//! is cleaned and checked against `<name>.expect`, which names the kind the page must be
//! taken for (`type:`), where its text must come from (`source:`, optional), lines that must
//! be kept (`+ …`) and lines that must be dropped (`- …`).

use std::path::{Path, PathBuf};

use feedwire::extract::extract;

#[path = "common/expect.rs"]
mod expect;
use expect::Cleaned;

/// Cleans one page and returns every way it differs from its expectations.
fn check(page: &Path) -> Vec<String> {
    let html = std::fs::read_to_string(page).expect("fixture page");
    let expect = std::fs::read_to_string(page.with_extension("expect")).expect("expect file");
    let article = extract(&html, None);
    let cleaned = Cleaned {
        text: &article.text,
        page_type: article.page_type.as_str(),
        source: Some(article.source.as_str()),
    };
    expect::problems(&page.display().to_string(), &expect, &cleaned)
}

#[test]
fn every_kind_of_page_keeps_its_content_and_drops_its_chrome() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pages");
    let mut pages: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("fixture folder")
        .flatten()
        .flat_map(|kind| {
            std::fs::read_dir(kind.path())
                .into_iter()
                .flatten()
                .flatten()
        })
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "html"))
        .collect();
    pages.sort();
    // One page at least for each kind, and the fallback.
    assert!(pages.len() >= 8, "fixtures missing: {pages:?}");
    let failures: Vec<String> = pages
        .iter()
        .flat_map(|p| {
            let name = p.strip_prefix(&root).unwrap_or(p).display().to_string();
            check(p).into_iter().map(move |m| format!("{name}: {m}"))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn json_output_names_the_page_type() {
    let html = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pages/forum/thread.html"),
    )
    .expect("fixture page");
    let article = extract(&html, None);
    let json: serde_json::Value =
        serde_json::from_str(&feedwire::extract::article_json(&article, None)).expect("json");
    assert_eq!(json["page_type"], "forum");
    assert_eq!(json["source"], "content");
}
