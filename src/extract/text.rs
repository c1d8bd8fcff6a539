//! HTML fragments (feed summaries) to plain text.

use scraper::{Html, Node};

/// Elements after which a line break separates the text.
const BLOCK_ELEMENTS: &[&str] = &[
    "p",
    "div",
    "br",
    "li",
    "ul",
    "ol",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "blockquote",
    "pre",
    "tr",
    "table",
    "section",
    "article",
    "header",
    "footer",
    "figure",
    "figcaption",
    "hr",
    "dd",
    "dt",
    "dl",
];

/// Elements whose text is never shown to a reader.
const HIDDEN_ELEMENTS: &[&str] = &["script", "style", "noscript", "template", "head", "title"];

/// Plain text of an HTML fragment: tags dropped, entities decoded, one blank line between
/// blocks, runs of spaces folded. Text without markup comes back trimmed.
pub fn html_to_text(fragment: &str) -> String {
    if !fragment.contains('<') && !fragment.contains('&') {
        return fold_lines(fragment);
    }
    let doc = Html::parse_fragment(fragment);
    let mut raw = String::with_capacity(fragment.len());
    walk(doc.tree.root(), &mut raw);
    fold_lines(&raw)
}

fn walk(node: ego_tree::NodeRef<'_, Node>, out: &mut String) {
    for child in node.children() {
        match child.value() {
            Node::Text(t) => out.push_str(t),
            Node::Element(e) => {
                let name = e.name();
                if HIDDEN_ELEMENTS.contains(&name) {
                    continue;
                }
                let block = BLOCK_ELEMENTS.contains(&name);
                if block {
                    out.push_str("\n\n");
                }
                walk(child, out);
                if block {
                    out.push_str("\n\n");
                }
            }
            _ => {}
        }
    }
}

/// Folds whitespace inside lines and keeps one blank line between paragraphs.
fn fold_lines(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for para in raw.split("\n\n") {
        let words: Vec<&str> = para.split_whitespace().collect();
        if words.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push_str("\n\n");
        }
        out.push_str(&words.join(" "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_tags_and_splits_paragraphs() {
        assert_eq!(
            html_to_text("<p>One &amp; <b>two</b></p><script>x()</script><p>three\n four</p>"),
            "One & two\n\nthree four"
        );
        assert_eq!(html_to_text("  plain   text "), "plain text");
    }
}
