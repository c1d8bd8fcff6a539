//! Telegram's Bot API: `sendPhoto` when the item has an image (its caption is short),
//! `sendMessage` otherwise or when Telegram refuses the photo; HTML parse mode, with `<`,
//! `>`, `&` and `"` escaped as the API requires. A 429 carries `parameters.retry_after`.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use url::Url;

use super::{Message, Request, Unit, escape_html, fit, shorten};

/// "1-4096 characters after entities parsing". The markup is counted too, and in UTF-16
/// units, so what is sent is within the limit however Telegram counts.
pub const MAX_TEXT: usize = 4_096;
/// "0-1024 characters after entities parsing".
pub const MAX_CAPTION: usize = 1_024;

/// The message in Telegram's HTML: the title linking to the article, the text, the feed.
pub fn html(message: &Message, limit: usize) -> String {
    let head = match &message.link {
        Some(url) => format!(
            "<b><a href=\"{}\">{}</a></b>",
            escape_html(url),
            escape_html(&message.title)
        ),
        None => format!("<b>{}</b>", escape_html(&message.title)),
    };
    let foot = format!("<i>{}</i>", escape_html(&message.feed));
    let more = message
        .link
        .as_deref()
        .map(|u| format!(" <a href=\"{}\">Read more</a>", escape_html(u)))
        .unwrap_or_default();
    let frame = Unit::Utf16.len(&head) + Unit::Utf16.len(&foot) + 4;
    fit(limit, Unit::Utf16, |budget| {
        let budget = budget.saturating_sub(frame);
        let cut = shorten(&message.text, budget, Unit::Utf16, "");
        let was_cut = cut.len() < message.text.len();
        let mut body = escape_html(&cut);
        if was_cut {
            body.push_str(&more);
        }
        if body.is_empty() {
            format!("{head}\n\n{foot}")
        } else {
            format!("{head}\n\n{body}\n\n{foot}")
        }
    })
}

pub fn requests(base: &Url, chat_id: &str, message: &Message) -> Vec<Request> {
    let method = |name: &str| {
        let mut url = base.clone();
        url.set_path(&format!("{}{name}", base.path()));
        url
    };
    let text = Request::json(
        Method::POST,
        method("sendMessage"),
        &json!({ "chat_id": chat_id, "text": html(message, MAX_TEXT), "parse_mode": "HTML" }),
    );
    match &message.image {
        Some(image) => vec![
            Request::json(
                Method::POST,
                method("sendPhoto"),
                &json!({
                    "chat_id": chat_id,
                    "photo": image,
                    "caption": html(message, MAX_CAPTION),
                    "parse_mode": "HTML",
                }),
            ),
            text,
        ],
        None => vec![text],
    }
}

/// `{"ok": false, "error_code": 429, "parameters": {"retry_after": 3}}`.
pub fn retry_after(body: &[u8]) -> Option<Duration> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v.get("parameters")?
        .get("retry_after")?
        .as_u64()
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped_and_within_limits() {
        let m = Message {
            title: "<b>Fish & \"chips\"</b>".into(),
            link: Some("https://example.com/a?x=1&y=2".into()),
            text: "Москва <script> & ".repeat(400),
            feed: "Фид".into(),
            ..Message::default()
        };
        let text = html(&m, MAX_TEXT);
        assert!(Unit::Utf16.len(&text) <= MAX_TEXT);
        assert!(text.starts_with(
            "<b><a href=\"https://example.com/a?x=1&amp;y=2\">&lt;b&gt;Fish &amp; &quot;chips&quot;&lt;/b&gt;</a></b>"
        ));
        assert!(!text.contains("<script>"));
        assert!(text.contains("Read more</a>\n\n<i>Фид</i>"));
        let caption = html(&m, MAX_CAPTION);
        assert!(Unit::Utf16.len(&caption) <= MAX_CAPTION);
    }

    #[test]
    fn photos_fall_back_to_text() {
        let base = Url::parse("https://api.telegram.org/bot123:abc/").expect("url");
        let m = Message {
            title: "t".into(),
            image: Some("https://example.com/i.png".into()),
            ..Message::default()
        };
        let r = requests(&base, "-100", &m);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].url.path(), "/bot123:abc/sendPhoto");
        assert_eq!(r[1].url.path(), "/bot123:abc/sendMessage");
    }

    #[test]
    fn reads_retry_after() {
        let body = br#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 3","parameters":{"retry_after":3}}"#;
        assert_eq!(retry_after(body), Some(Duration::from_secs(3)));
    }
}
