//! Slack incoming webhooks (and Mattermost's, which read the same JSON): a POST of
//! `{"text": …}` where `&`, `<` and `>` are escaped and `<url|label>` is a link.

use reqwest::Method;
use serde_json::json;
use url::Url;

use super::{Message, Request, Unit, fit, shorten};

/// Slack asks to keep `text` within 4,000 characters (longer text is cut by Slack itself,
/// Mattermost splits it); the link to the article is part of what fits.
pub const MAX_TEXT: usize = 4_000;

/// Slack's own escaping: only these three characters are control characters in `text`.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A `<url|label>` link; a `|` or `>` in the URL would end it early.
fn link(url: &str, label: &str) -> String {
    let url = url.replace('|', "%7C").replace('>', "%3E");
    format!("<{url}|{}>", escape(label))
}

pub fn text(message: &Message) -> String {
    fit(MAX_TEXT, Unit::Chars, |budget| {
        let head = match &message.link {
            Some(url) => link(url, &message.title),
            None => escape(&message.title),
        };
        let more = message
            .link
            .as_deref()
            .map(|u| format!(" {}", link(u, "Read more")))
            .unwrap_or_default();
        let body_budget = budget.saturating_sub(head.chars().count() + 2);
        let cut = shorten(&message.text, body_budget, Unit::Chars, "");
        let was_cut = cut.len() < message.text.len();
        let body = escape(&cut);
        let body = if was_cut {
            format!("{body}{more}")
        } else {
            body
        };
        if body.is_empty() {
            head
        } else {
            format!("{head}\n{body}")
        }
    })
}

pub fn request(url: &Url, message: &Message) -> Request {
    Request::json(Method::POST, url.clone(), &json!({ "text": text(message) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_links() {
        let m = Message {
            title: "R&D <new>".into(),
            link: Some("https://example.com/a?x=1|2".into()),
            text: "a < b".into(),
            ..Message::default()
        };
        assert_eq!(
            text(&m),
            "<https://example.com/a?x=1%7C2|R&amp;D &lt;new&gt;>\na &lt; b"
        );
    }

    #[test]
    fn long_texts_are_cut_with_a_link() {
        let m = Message {
            title: "Été".into(),
            link: Some("https://example.com/a".into()),
            text: "é&".repeat(5_000),
            ..Message::default()
        };
        let t = text(&m);
        assert!(t.chars().count() <= MAX_TEXT);
        assert!(
            t.ends_with("<https://example.com/a|Read more>"),
            "{}",
            &t[t.len() - 60..]
        );
    }
}
