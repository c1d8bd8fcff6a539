//! HTML fragments (feed summaries and titles) to plain text, on html5ever's tokenizer alone:
//! no tree is built, which makes it several times cheaper than parsing a fragment into a DOM.

use std::cell::{Cell, RefCell};

use html5ever::tendril::StrTendril;
use html5ever::tokenizer::states::RawKind;
use html5ever::tokenizer::{
    BufferQueue, TagKind, Token, TokenSink, TokenSinkResult, Tokenizer, TokenizerOpts,
};

/// Elements that end a block of text: a blank line separates them.
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

/// Elements whose content is never shown to a reader.
const HIDDEN_ELEMENTS: &[&str] = &[
    "script", "style", "noscript", "template", "head", "title", "iframe",
];

/// Plain text of an HTML fragment: tags dropped, entities decoded, one blank line between
/// blocks, runs of spaces folded. Text without markup comes back trimmed and folded.
pub fn html_to_text(fragment: &str) -> String {
    if !fragment.contains('<') && !fragment.contains('&') {
        return fold_lines(fragment);
    }
    let sink = TextSink {
        out: RefCell::new(String::with_capacity(fragment.len())),
        hidden: Cell::new(0),
    };
    let tokenizer = Tokenizer::new(sink, TokenizerOpts::default());
    let input = BufferQueue::default();
    input.push_back(StrTendril::from_slice(fragment));
    let _ = tokenizer.feed(&input);
    tokenizer.end();
    let raw = tokenizer.sink.out.take();
    fold_lines(&raw)
}

struct TextSink {
    out: RefCell<String>,
    /// Depth inside hidden elements.
    hidden: Cell<u32>,
}

impl TokenSink for TextSink {
    type Handle = ();

    fn process_token(&self, token: Token, _line: u64) -> TokenSinkResult<()> {
        match token {
            Token::CharacterTokens(text) if self.hidden.get() == 0 => {
                self.out.borrow_mut().push_str(&text)
            }
            Token::TagToken(tag) => {
                let name: &str = &tag.name;
                if HIDDEN_ELEMENTS.contains(&name) {
                    match tag.kind {
                        TagKind::StartTag if !tag.self_closing => {
                            self.hidden.set(self.hidden.get() + 1);
                            // Their content is raw text, not markup: skip it as the HTML
                            // parser would.
                            return match name {
                                "script" => TokenSinkResult::RawData(RawKind::ScriptData),
                                "style" | "noscript" | "iframe" => {
                                    TokenSinkResult::RawData(RawKind::Rawtext)
                                }
                                "title" => TokenSinkResult::RawData(RawKind::Rcdata),
                                _ => TokenSinkResult::Continue,
                            };
                        }
                        TagKind::EndTag => self.hidden.set(self.hidden.get().saturating_sub(1)),
                        _ => {}
                    }
                } else if BLOCK_ELEMENTS.contains(&name) {
                    self.out.borrow_mut().push_str("\n\n");
                } else {
                    // Inline elements still separate words written without spaces.
                    let mut out = self.out.borrow_mut();
                    if matches!(name, "td" | "th" | "img") && !out.ends_with(' ') {
                        out.push(' ');
                    }
                }
            }
            _ => {}
        }
        TokenSinkResult::Continue
    }
}

/// Folds whitespace inside paragraphs and keeps one blank line between them.
fn fold_lines(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for para in raw.split("\n\n") {
        let mut words = para.split_whitespace().peekable();
        if words.peek().is_none() {
            continue;
        }
        if !out.is_empty() {
            out.push_str("\n\n");
        }
        let mut first = true;
        for w in words {
            if !first {
                out.push(' ');
            }
            out.push_str(w);
            first = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: &str) {
        assert_eq!(html_to_text(input), expected, "text of {input:?}");
    }

    #[test]
    fn strips_tags_decodes_entities_and_splits_blocks() {
        check(
            "<p>One &amp; <b>two</b></p><script>if (a<b) x()</script><p>three\n four</p>",
            "One & two\n\nthree four",
        );
        check("  plain   text ", "plain text");
        check("Caf&eacute; &lt;b&gt;", "Café <b>");
        check(
            "<style>p{color:red}</style>Visible<br>next",
            "Visible\n\nnext",
        );
        check("<ul><li>a</li><li>b</li></ul>", "a\n\nb");
        check("<p>unclosed <i>tags", "unclosed tags");
        check("a<!-- hidden -->b", "ab");
    }
}
