//! Documentation pages: the page's own furniture around the text.
//!
//! Documentation generators put a table of contents ("On this page"), an "Edit this page"
//! link, previous/next links and a "Was this helpful?" prompt around every page; the site
//! menu is in a sidebar, which is chrome on every kind of page.

/// Words of a class name or id (split at non-alphanumerics) that, on a documentation page,
/// name its furniture.
const FURNITURE_WORDS: &[&str] = &["toc", "toctree", "feedback", "prevnext", "edit", "editlink"];

/// Whole class names or ids of documentation furniture.
const FURNITURE_NAMES: &[&str] = &[
    "on-this-page",
    "table-of-contents",
    "page-toc",
    "edit-this-page",
    "theme-edit-this-page",
    "pagination-nav",
    "prev-next",
    "was-this-helpful",
    "page-feedback",
    // DocBook's previous/up/next tables above and below every page.
    "navheader",
    "navfooter",
];

/// Whether one class name or id names documentation furniture.
pub(crate) fn is_chrome(token: &str) -> bool {
    FURNITURE_NAMES.contains(&token)
        || token
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|w| FURNITURE_WORDS.contains(&w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn furniture_is_named_by_whole_words() {
        assert!(is_chrome("table-of-contents"));
        assert!(is_chrome("md-sidebar--toc"));
        assert!(is_chrome("theme-edit-this-page"));
        assert!(is_chrome("navfooter"));
        assert!(!is_chrome("tocata"));
        assert!(!is_chrome("editorial"));
    }
}
