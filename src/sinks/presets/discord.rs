//! Discord channel webhooks: a POST with one embed (title, link, summary, image, time,
//! feed), within Discord's embed limits, mentioning no one. A 429 carries its wait in a
//! JSON `retry_after` (seconds, fractional).

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use url::Url;

use super::{Message, Request, Unit, prefix, shorten};

/// Discord's limits (its "embed limits"); lengths are counted as JavaScript does.
pub const MAX_TITLE: usize = 256;
pub const MAX_DESCRIPTION: usize = 4_096;
pub const MAX_FOOTER: usize = 2_048;
pub const MAX_AUTHOR: usize = 256;
/// The sum of title, description, footer and author over a message's embeds.
pub const MAX_EMBED_TOTAL: usize = 6_000;

/// Markdown characters in a description: escaped so a feed's text shows as written.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | '*' | '_' | '~' | '`' | '|') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

pub fn body(message: &Message) -> Value {
    let title = prefix(&message.title, MAX_TITLE, Unit::Utf16).to_string();
    let footer = prefix(&message.feed, MAX_FOOTER, Unit::Utf16).to_string();
    let author = message
        .author
        .as_deref()
        .map(|a| prefix(a, MAX_AUTHOR, Unit::Utf16).to_string());
    let used = Unit::Utf16.len(&title)
        + Unit::Utf16.len(&footer)
        + author.as_deref().map_or(0, |a| Unit::Utf16.len(a));
    let limit = MAX_DESCRIPTION.min(MAX_EMBED_TOTAL.saturating_sub(used));
    let more = message
        .link
        .as_deref()
        .map(|u| format!(" [Read more]({u})"))
        .unwrap_or_default();
    let description = super::fit(limit, Unit::Utf16, |budget| {
        let cut = shorten(&message.text, budget, Unit::Utf16, "");
        let was_cut = cut.len() < message.text.len();
        let escaped = escape(&cut);
        if was_cut {
            format!("{escaped}{more}")
        } else {
            escaped
        }
    });
    let mut embed = json!({ "title": title, "footer": { "text": footer } });
    if !description.is_empty() {
        embed["description"] = json!(description);
    }
    if let Some(url) = &message.link {
        embed["url"] = json!(url);
    }
    if let Some(image) = &message.image {
        embed["image"] = json!({ "url": image });
    }
    if let Some(author) = author {
        embed["author"] = json!({ "name": author });
    }
    if let Some(published) = &message.published {
        embed["timestamp"] = json!(published);
    }
    // A feed's text must never ping @everyone or a role.
    json!({ "embeds": [embed], "allowed_mentions": { "parse": [] } })
}

pub fn request(url: &Url, message: &Message) -> Request {
    Request::json(Method::POST, url.clone(), &body(message))
}

/// `{"retry_after": 1.5, …}` in a 429's body.
pub fn retry_after(body: &[u8]) -> Option<Duration> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let secs = v.get("retry_after")?.as_f64()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embeds_stay_within_limits() {
        let m = Message {
            title: "Ünïcødé ".repeat(100),
            link: Some("https://example.com/a".into()),
            text: "😀*".repeat(5_000),
            feed: "Feed".into(),
            author: Some("A".repeat(400)),
            ..Message::default()
        };
        let b = body(&m);
        let e = &b["embeds"][0];
        let len = |v: &Value| v.as_str().map_or(0, |s| Unit::Utf16.len(s));
        assert!(len(&e["title"]) <= MAX_TITLE);
        assert!(len(&e["description"]) <= MAX_DESCRIPTION);
        assert!(len(&e["author"]["name"]) <= MAX_AUTHOR);
        let total = len(&e["title"])
            + len(&e["description"])
            + len(&e["footer"]["text"])
            + len(&e["author"]["name"]);
        assert!(total <= MAX_EMBED_TOTAL);
        assert!(
            e["description"]
                .as_str()
                .is_some_and(|d| d.ends_with("[Read more](https://example.com/a)"))
        );
        assert_eq!(b["allowed_mentions"]["parse"], json!([]));
    }

    #[test]
    fn reads_retry_after_seconds() {
        let body =
            br#"{"message": "You are being rate limited.", "retry_after": 0.25, "global": false}"#;
        assert_eq!(retry_after(body), Some(Duration::from_millis(250)));
        assert_eq!(retry_after(b"not json"), None);
    }
}
