//! The `.expect` files of our extraction fixtures: `type: <kind>` the page must be taken for,
//! `source: <source>` where its text must come from (optional), `+ …` lines that must be kept
//! and `- …` lines that must be dropped.

/// What cleaning one page gave.
pub struct Cleaned<'a> {
    pub text: &'a str,
    pub page_type: &'a str,
    pub source: Option<&'a str>,
}

fn norm(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Every way `cleaned` differs from `expect` (the file's text); `page` names the fixture in
/// the panic for a line that is no expectation.
pub fn problems(page: &str, expect: &str, cleaned: &Cleaned) -> Vec<String> {
    let text = norm(cleaned.text);
    let mut problems = Vec::new();
    for line in expect.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(kind) = line.strip_prefix("type:") {
            if cleaned.page_type != kind.trim() {
                problems.push(format!(
                    "taken for {}, not {}",
                    cleaned.page_type,
                    kind.trim()
                ));
            }
        } else if let Some(source) = line.strip_prefix("source:") {
            if cleaned.source != Some(source.trim()) {
                problems.push(format!("text from {}", cleaned.source.unwrap_or("nowhere")));
            }
        } else if let Some(kept) = line.strip_prefix("+ ") {
            if !text.contains(&norm(kept)) {
                problems.push(format!("dropped {kept:?}"));
            }
        } else if let Some(dropped) = line.strip_prefix("- ") {
            if text.contains(&norm(dropped)) {
                problems.push(format!("kept {dropped:?}"));
            }
        } else {
            panic!("{page}: unreadable expectation {line:?}");
        }
    }
    problems
}
