//! Matrix: the client-server API's `PUT /_matrix/client/v3/rooms/{roomId}/send/m.room.message/{txnId}`
//! with the event's delivery id as `txnId`, so a retried request is the same transaction
//! and the homeserver does not post it twice. A 429 carries `retry_after_ms`.

use std::time::Duration;

use reqwest::Method;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde_json::{Value, json};
use url::Url;

use super::{Message, Request, Unit, escape_html, fit, shorten};

/// An event may be at most 65,536 bytes in all; the plain and HTML bodies together stay
/// well inside it, leaving room for what the homeserver adds.
pub const MAX_BODY_BYTES: usize = 16_000;
pub const MAX_FORMATTED_BYTES: usize = 32_000;

pub fn content(message: &Message) -> Value {
    let link = message.link.as_deref();
    let plain = fit(MAX_BODY_BYTES, Unit::Bytes, |budget| {
        let head = match link {
            Some(u) => format!("{}\n{u}", message.title),
            None => message.title.clone(),
        };
        let more = link.map(|u| format!("\n{u}")).unwrap_or_default();
        let text = shorten(
            &message.text,
            budget.saturating_sub(head.len() + 2),
            Unit::Bytes,
            &more,
        );
        if text.is_empty() {
            head
        } else {
            format!("{head}\n\n{text}")
        }
    });
    let formatted = fit(MAX_FORMATTED_BYTES, Unit::Bytes, |budget| {
        let head = match link {
            Some(u) => format!(
                "<a href=\"{}\"><strong>{}</strong></a>",
                escape_html(u),
                escape_html(&message.title)
            ),
            None => format!("<strong>{}</strong>", escape_html(&message.title)),
        };
        let more = link
            .map(|u| format!(" <a href=\"{}\">Read more</a>", escape_html(u)))
            .unwrap_or_default();
        let cut = shorten(
            &message.text,
            budget.saturating_sub(head.len() + 8),
            Unit::Bytes,
            "",
        );
        let was_cut = cut.len() < message.text.len();
        let mut text = escape_html(&cut).replace('\n', "<br>");
        if was_cut {
            text.push_str(&more);
        }
        if text.is_empty() {
            head
        } else {
            format!("{head}<br><br>{text}")
        }
    });
    json!({
        "msgtype": "m.text",
        "body": plain,
        "format": "org.matrix.custom.html",
        "formatted_body": formatted,
    })
}

pub fn request(
    homeserver: &Url,
    room: &str,
    token: &str,
    txn_id: &str,
    message: &Message,
) -> Request {
    let mut url = homeserver.clone();
    url.set_query(None);
    // Each segment is percent-encoded on its own: a room id holds `!` and `:`.
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.pop_if_empty().extend([
            "_matrix",
            "client",
            "v3",
            "rooms",
            room,
            "send",
            "m.room.message",
            txn_id,
        ]);
    }
    let mut request = Request::json(Method::PUT, url, &content(message));
    if let Ok(mut v) = HeaderValue::from_str(&format!("Bearer {token}")) {
        v.set_sensitive(true);
        request.headers.insert(AUTHORIZATION, v);
    }
    request
}

/// `{"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": 2000}`.
pub fn retry_after(body: &[u8]) -> Option<Duration> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v.get("retry_after_ms")?.as_u64().map(Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_txn_id_and_room_are_path_segments() {
        let hs = Url::parse("https://matrix.example.org/").expect("url");
        let r = request(
            &hs,
            "!room:example.org",
            "tok",
            "01JABC_hook",
            &Message::default(),
        );
        assert_eq!(r.method, Method::PUT);
        assert_eq!(
            r.url.path(),
            "/_matrix/client/v3/rooms/!room:example.org/send/m.room.message/01JABC_hook"
        );
        assert_eq!(r.headers[AUTHORIZATION], "Bearer tok");
    }

    #[test]
    fn bodies_stay_within_the_event_size() {
        let m = Message {
            title: "Ça <va>".into(),
            link: Some("https://example.com/a".into()),
            text: "&é\n".repeat(20_000),
            ..Message::default()
        };
        let c = content(&m);
        let plain = c["body"].as_str().expect("body");
        let html = c["formatted_body"].as_str().expect("html");
        assert!(plain.len() <= MAX_BODY_BYTES);
        assert!(html.len() <= MAX_FORMATTED_BYTES);
        assert!(
            html.starts_with(
                "<a href=\"https://example.com/a\"><strong>Ça &lt;va&gt;</strong></a>"
            )
        );
        assert!(html.ends_with("Read more</a>"));
        assert!(serde_json::to_vec(&c).expect("json").len() < 65_536);
    }

    #[test]
    fn reads_retry_after_ms() {
        assert_eq!(
            retry_after(br#"{"errcode":"M_LIMIT_EXCEEDED","error":"Too many requests","retry_after_ms":1500}"#),
            Some(Duration::from_millis(1500))
        );
    }
}
