//! ntfy: a POST to the topic URL whose body is the message, with `Title`, `Click` and
//! `Tags` headers (non-ASCII values as RFC 2047 encoded words, which ntfy decodes) and an
//! optional access token.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use reqwest::Method;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use url::Url;

use super::{Message, Request, Unit, prefix, shorten};

/// ntfy's default `message-size-limit` is 4,096 bytes; a longer body becomes an attachment
/// or is refused.
pub const MAX_MESSAGE_BYTES: usize = 4_096;
/// Titles beyond this are cut: a notification shows one line.
pub const MAX_TITLE: usize = 250;
/// An RFC 2047 encoded word is at most 75 characters; this much UTF-8 fits in one.
const WORD_BYTES: usize = 45;

/// A header value: as is when printable ASCII, else RFC 2047 `=?UTF-8?B?…?=` words split on
/// character boundaries.
pub fn header_value(s: &str) -> HeaderValue {
    if s.bytes().all(|b| (0x20..0x7f).contains(&b))
        && let Ok(v) = HeaderValue::from_str(s)
    {
        return v;
    }
    let mut words = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        // White space between encoded words is dropped by the decoder: each word keeps
        // its own spaces, so cut on any character boundary.
        let part = raw_prefix(rest, WORD_BYTES);
        words.push(format!("=?UTF-8?B?{}?=", BASE64.encode(part.as_bytes())));
        rest = &rest[part.len()..];
    }
    HeaderValue::from_str(&words.join(" ")).expect("base64 words are a valid header value")
}

/// The longest prefix of at most `max` bytes on a character boundary, white space included.
fn raw_prefix(s: &str, max: usize) -> &str {
    let mut end = 0;
    for (i, c) in s.char_indices() {
        if i + c.len_utf8() > max {
            break;
        }
        end = i + c.len_utf8();
    }
    &s[..end.max(s.chars().next().map_or(0, char::len_utf8))]
}

pub fn body(message: &Message) -> String {
    let more = message
        .link
        .as_deref()
        .map(|u| format!("\n{u}"))
        .unwrap_or_default();
    let text = if message.text.is_empty() {
        message
            .link
            .clone()
            .unwrap_or_else(|| message.title.clone())
    } else {
        message.text.clone()
    };
    shorten(&text, MAX_MESSAGE_BYTES, Unit::Bytes, &more)
}

pub fn request(url: &Url, token: Option<&str>, message: &Message) -> Request {
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        "Title",
        header_value(prefix(&message.title, MAX_TITLE, Unit::Chars)),
    );
    if let Some(link) = &message.link
        && let Ok(v) = HeaderValue::from_str(link)
    {
        headers.insert("Click", v);
    }
    if !message.tags.is_empty() {
        headers.insert("Tags", header_value(&message.tags.join(",")));
    }
    if let Some(token) = token
        && let Ok(mut v) = HeaderValue::from_str(&format!("Bearer {token}"))
    {
        v.set_sensitive(true);
        headers.insert(AUTHORIZATION, v);
    }
    Request {
        method: Method::POST,
        url: url.clone(),
        headers,
        body: body(message).into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(v: &HeaderValue) -> String {
        let s = v.to_str().expect("ascii");
        let mut out = Vec::new();
        for word in s.split(' ') {
            let b64 = word
                .strip_prefix("=?UTF-8?B?")
                .and_then(|w| w.strip_suffix("?="))
                .expect("encoded word");
            assert!(word.len() <= 75, "{word}");
            out.extend(BASE64.decode(b64).expect("base64"));
        }
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn non_ascii_headers_are_encoded_words() {
        assert_eq!(header_value("plain title"), "plain title");
        let title = "Ünïcødé title with spaces — and 日本語 text, long enough for two words";
        assert_eq!(decode(&header_value(title)), title);
    }

    #[test]
    fn bodies_fit_in_the_byte_limit_with_the_link() {
        let m = Message {
            title: "t".into(),
            link: Some("https://example.com/a".into()),
            text: "日本".repeat(3_000),
            ..Message::default()
        };
        let b = body(&m);
        assert!(b.len() <= MAX_MESSAGE_BYTES);
        assert!(b.ends_with("…\nhttps://example.com/a"));
    }
}
