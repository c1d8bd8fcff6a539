//! Stand-ins for chat services: each checks a request the way the service's documentation
//! describes it and answers as the service does (an error status with the reason when the
//! request would be refused).
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use serde_json::Value;

use crate::common::{Route, Seen, Server};

fn json_body(seen: &Seen) -> Result<Value, String> {
    let ct = seen.header("content-type").unwrap_or_default();
    if !ct.starts_with("application/json") {
        return Err(format!("content type {ct:?} is not application/json"));
    }
    serde_json::from_slice(&seen.body).map_err(|e| format!("body is not JSON: {e}"))
}

fn utf16(s: &str) -> usize {
    s.encode_utf16().count()
}

fn str_field<'a>(v: &'a Value, key: &str) -> Result<Option<&'a str>, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(format!("{key} is not a string: {other}")),
    }
}

fn http_url(s: &str) -> bool {
    url::Url::parse(s).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
}

/// Slack incoming webhook: POST JSON with a non-empty `text`; `&`, `<`, `>` appear only
/// escaped or as `<url|label>` links; Slack asks for at most 4,000 characters.
pub fn check_slack(seen: &Seen) -> Result<Value, String> {
    if seen.method != "POST" {
        return Err("incoming webhooks take POST".into());
    }
    let v = json_body(seen)?;
    let text = str_field(&v, "text")?.ok_or("missing text")?;
    if text.trim().is_empty() {
        return Err("no_text".into());
    }
    if text.chars().count() > 4_000 {
        return Err(format!("text is {} characters", text.chars().count()));
    }
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        let end = rest[start..].find('>').ok_or("unclosed <")? + start;
        let inner = &rest[start + 1..end];
        let url = inner.split('|').next().unwrap_or("");
        if !http_url(url) {
            return Err(format!("<{inner}> is not a link"));
        }
        if inner.matches('|').count() > 1 {
            return Err(format!("<{inner}> has more than one |"));
        }
        rest = &rest[end + 1..];
    }
    check_entities(text, &["&amp;", "&lt;", "&gt;"])?;
    Ok(v)
}

fn check_entities(text: &str, allowed: &[&str]) -> Result<(), String> {
    for (i, _) in text.match_indices('&') {
        let tail = &text[i..];
        let numeric = tail.starts_with("&#")
            && tail[2..]
                .find(';')
                .is_some_and(|end| end > 0 && tail[2..2 + end].chars().all(|c| c.is_ascii_digit()));
        if !numeric && !allowed.iter().any(|e| tail.starts_with(e)) {
            return Err(format!(
                "unescaped & at {:?}",
                tail.chars().take(12).collect::<String>()
            ));
        }
    }
    Ok(())
}

/// Discord execute-webhook: content or embeds; embed limits (title 256, description 4,096,
/// footer 2,048, author 256, all together 6,000); URLs valid; ISO 8601 timestamp.
pub fn check_discord(seen: &Seen) -> Result<Value, String> {
    if seen.method != "POST" {
        return Err("webhooks take POST".into());
    }
    let v = json_body(seen)?;
    let embeds = v
        .get("embeds")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let content = str_field(&v, "content")?.unwrap_or("");
    if embeds.is_empty() && content.is_empty() {
        return Err("Cannot send an empty message".into());
    }
    if utf16(content) > 2_000 || embeds.len() > 10 {
        return Err("content or embeds too long".into());
    }
    let mut total = 0;
    for e in &embeds {
        let lens = [
            ("title", str_field(e, "title")?, 256),
            ("description", str_field(e, "description")?, 4_096),
            (
                "footer.text",
                e.get("footer")
                    .map(|f| str_field(f, "text"))
                    .transpose()?
                    .flatten(),
                2_048,
            ),
            (
                "author.name",
                e.get("author")
                    .map(|a| str_field(a, "name"))
                    .transpose()?
                    .flatten(),
                256,
            ),
        ];
        for (name, value, max) in lens {
            let n = value.map_or(0, utf16);
            if n > max {
                return Err(format!(
                    "embeds.0.{name}: Must be {max} or fewer in length ({n})"
                ));
            }
            total += n;
        }
        for key in ["url"] {
            if let Some(u) = str_field(e, key)?
                && !http_url(u)
            {
                return Err(format!("embeds.0.{key}: Not a well formed URL"));
            }
        }
        if let Some(u) = e
            .get("image")
            .map(|i| str_field(i, "url"))
            .transpose()?
            .flatten()
            && !http_url(u)
        {
            return Err("embeds.0.image.url: Not a well formed URL".into());
        }
        if let Some(t) = str_field(e, "timestamp")?
            && chrono::DateTime::parse_from_rfc3339(t).is_err()
        {
            return Err(format!(
                "embeds.0.timestamp: Invalid ISO8601 timestamp {t:?}"
            ));
        }
    }
    if total > 6_000 {
        return Err(format!("Embed size exceeds maximum size of 6000 ({total})"));
    }
    Ok(v)
}

/// Telegram HTML as the Bot API parses it: only its tags, balanced; only `&lt;`, `&gt;`,
/// `&amp;`, `&quot;` and numeric entities. Returns the visible text.
pub fn telegram_visible(html: &str) -> Result<String, String> {
    const TAGS: &[&str] = &[
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "a",
        "code",
        "pre",
        "tg-spoiler",
        "span",
        "blockquote",
    ];
    check_entities(html, &["&lt;", "&gt;", "&amp;", "&quot;"])?;
    let mut stack: Vec<String> = Vec::new();
    let mut visible = String::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        visible.push_str(&rest[..start]);
        let end = rest[start..]
            .find('>')
            .ok_or("Can't parse entities: unclosed start tag")?
            + start;
        let tag = &rest[start + 1..end];
        if let Some(name) = tag.strip_prefix('/') {
            if stack.pop().as_deref() != Some(name) {
                return Err(format!("Can't parse entities: unmatched end tag {name}"));
            }
        } else {
            let name = tag.split_whitespace().next().unwrap_or("");
            if !TAGS.contains(&name) {
                return Err(format!(
                    "Can't parse entities: unsupported start tag \"{name}\""
                ));
            }
            if name == "a" {
                let href = tag
                    .split_once("href=\"")
                    .and_then(|(_, r)| r.split_once('"'))
                    .map(|(h, _)| h.replace("&amp;", "&"))
                    .ok_or("a tag without href")?;
                if !http_url(&href) {
                    return Err(format!("bad href {href}"));
                }
            }
            stack.push(name.to_string());
        }
        rest = &rest[end + 1..];
    }
    if !stack.is_empty() {
        return Err(format!("Can't parse entities: unclosed {stack:?}"));
    }
    visible.push_str(rest);
    Ok(visible
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&"))
}

/// `sendMessage` (text 1-4,096) or `sendPhoto` (caption 0-1,024), JSON, with a chat id.
pub fn check_telegram(seen: &Seen, token: &str) -> Result<Value, String> {
    let method = seen
        .path
        .strip_prefix(&format!("/bot{token}/"))
        .ok_or("Unauthorized")?;
    let v = json_body(seen)?;
    if v.get("chat_id").is_none_or(Value::is_null) {
        return Err("Bad Request: chat_id is empty".into());
    }
    if str_field(&v, "parse_mode")? != Some("HTML") {
        return Err("expected parse_mode HTML".into());
    }
    let (field, min, max) = match method {
        "sendMessage" => ("text", 1, 4_096),
        "sendPhoto" => {
            let photo =
                str_field(&v, "photo")?.ok_or("Bad Request: there is no photo in the request")?;
            if !http_url(photo) {
                return Err("Bad Request: wrong HTTP URL specified".into());
            }
            ("caption", 0, 1_024)
        }
        other => return Err(format!("Not Found: method {other}")),
    };
    let html = str_field(&v, field)?.unwrap_or("");
    let visible = telegram_visible(html).map_err(|e| format!("Bad Request: {e}"))?;
    let n = utf16(&visible);
    if n < min || n > max {
        return Err(format!("Bad Request: {field} is {n} characters long"));
    }
    Ok(v)
}

/// Decodes RFC 2047 `=?UTF-8?B?…?=` words as ntfy does; other values as they are.
pub fn decode_rfc2047(value: &str) -> Result<String, String> {
    if !value.starts_with("=?") {
        return Ok(value.to_string());
    }
    let mut out = Vec::new();
    for word in value.split_whitespace() {
        if word.len() > 75 {
            return Err(format!("encoded word longer than 75: {word}"));
        }
        let b64 = word
            .strip_prefix("=?UTF-8?B?")
            .or_else(|| word.strip_prefix("=?utf-8?b?"))
            .and_then(|w| w.strip_suffix("?="))
            .ok_or_else(|| format!("not an encoded word: {word}"))?;
        out.extend(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| e.to_string())?,
        );
    }
    String::from_utf8(out).map_err(|e| e.to_string())
}

/// ntfy publish: POST/PUT, body at most 4,096 bytes, ASCII header values (non-ASCII as
/// encoded words), the bearer token when one is expected.
pub fn check_ntfy(
    seen: &Seen,
    token: Option<&str>,
) -> Result<(String, HashMap<String, String>), String> {
    if seen.method != "POST" && seen.method != "PUT" {
        return Err("publish with POST or PUT".into());
    }
    if let Some(token) = token
        && seen.header("authorization").as_deref() != Some(&format!("Bearer {token}"))
    {
        return Err("unauthorized".into());
    }
    if seen.body.len() > 4_096 {
        return Err(format!(
            "message of {} bytes is over the limit",
            seen.body.len()
        ));
    }
    let body = String::from_utf8(seen.body.clone()).map_err(|_| "body is not UTF-8")?;
    let mut headers = HashMap::new();
    for name in ["title", "click", "tags"] {
        if let Some(raw) = seen.headers.get(name) {
            let text = raw.to_str().map_err(|_| format!("{name} is not ASCII"))?;
            headers.insert(name.to_string(), decode_rfc2047(text)?);
        }
    }
    if let Some(click) = headers.get("click")
        && !http_url(click)
    {
        return Err("invalid click URL".into());
    }
    Ok((body, headers))
}

/// Matrix `PUT /_matrix/client/v3/rooms/{roomId}/send/m.room.message/{txnId}`: bearer
/// token, an `m.text` content with `body` (and `formatted_body` when `format` is set),
/// an event under 65,536 bytes. Returns the room id, the txn id and the content.
pub fn check_matrix(seen: &Seen, token: &str) -> Result<(String, String, Value), String> {
    if seen.method != "PUT" {
        return Err("M_UNRECOGNIZED: send takes PUT".into());
    }
    if seen.header("authorization").as_deref() != Some(&format!("Bearer {token}")) {
        return Err("M_UNKNOWN_TOKEN".into());
    }
    let path = percent_encoding::percent_decode_str(&seen.path)
        .decode_utf8()
        .map_err(|e| e.to_string())?
        .to_string();
    let rest = path
        .strip_prefix("/_matrix/client/v3/rooms/")
        .ok_or("M_UNRECOGNIZED")?;
    let (room, rest) = rest.split_once("/send/").ok_or("M_UNRECOGNIZED")?;
    let txn = rest
        .strip_prefix("m.room.message/")
        .ok_or("M_UNRECOGNIZED")?;
    if !room.starts_with('!') || txn.is_empty() || txn.contains('/') {
        return Err("M_UNRECOGNIZED: bad room or txn id".into());
    }
    if seen.body.len() >= 65_536 {
        return Err("M_TOO_LARGE".into());
    }
    let v = json_body(seen)?;
    if str_field(&v, "msgtype")? != Some("m.text") {
        return Err("M_BAD_JSON: msgtype".into());
    }
    str_field(&v, "body")?.ok_or("M_BAD_JSON: body")?;
    if str_field(&v, "format")?.is_some() {
        str_field(&v, "formatted_body")?.ok_or("M_BAD_JSON: formatted_body")?;
    }
    Ok((room.to_string(), txn.to_string(), v))
}

fn refused(status: u16, body: String) -> Route {
    Route {
        body: body.into_bytes(),
        content_type: "application/json".into(),
        ..Route::status(status)
    }
}

/// Accepted requests by service, with what the stand-in made of them.
#[derive(Default, Clone)]
pub struct Accepted {
    pub requests: Arc<Mutex<Vec<Value>>>,
    pub errors: Arc<Mutex<Vec<String>>>,
}

impl Accepted {
    pub fn values(&self) -> Vec<Value> {
        self.requests.lock().expect("lock").clone()
    }
    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().expect("lock").clone()
    }
    fn take(&self, result: Result<Value, String>, ok: Route, bad: u16) -> Route {
        match result {
            Ok(v) => {
                self.requests.lock().expect("lock").push(v);
                ok
            }
            Err(e) => {
                self.errors.lock().expect("lock").push(e.clone());
                refused(bad, serde_json::json!({ "error": e }).to_string())
            }
        }
    }
}

/// Serves a Slack webhook at `path`.
pub fn slack(server: &Server, path: &str) -> Accepted {
    let acc = Accepted::default();
    let a = acc.clone();
    server.respond(path, move |seen, _| {
        a.take(check_slack(seen), Route::ok("ok", "text/plain"), 400)
    });
    acc
}

/// Serves a Discord webhook at `path`; the first `limited` requests get a 429 whose JSON
/// body says to wait `retry_after` seconds (and no Retry-After header).
pub fn discord(server: &Server, path: &str, limited: usize, retry_after: f64) -> Accepted {
    let acc = Accepted::default();
    let a = acc.clone();
    server.respond(path, move |seen, before| {
        if before < limited {
            return refused(
                429,
                serde_json::json!({"message": "You are being rate limited.", "retry_after": retry_after, "global": false}).to_string(),
            );
        }
        a.take(check_discord(seen), Route::status(204), 400)
    });
    acc
}

/// Serves the Bot API for `token`; `refuse_photos` answers sendPhoto with Telegram's 400.
pub fn telegram(server: &Server, token: &str, refuse_photos: bool) -> Accepted {
    let acc = Accepted::default();
    for method in ["sendMessage", "sendPhoto"] {
        let a = acc.clone();
        let token = token.to_string();
        let path = format!("/bot{token}/{method}");
        server.respond(&path, move |seen, _| {
            if refuse_photos && seen.path.ends_with("sendPhoto") {
                return refused(
                    400,
                    r#"{"ok":false,"error_code":400,"description":"Bad Request: wrong type of the web page content"}"#.into(),
                );
            }
            let result = check_telegram(seen, &token).map(|mut v| {
                v["method"] = Value::String(seen.path.rsplit('/').next().unwrap_or("").into());
                v
            });
            match result {
                Ok(v) => {
                    a.requests.lock().expect("lock").push(v);
                    Route::ok(r#"{"ok":true,"result":{"message_id":1}}"#, "application/json")
                }
                Err(e) => {
                    a.errors.lock().expect("lock").push(e.clone());
                    refused(400, serde_json::json!({"ok": false, "error_code": 400, "description": e}).to_string())
                }
            }
        });
    }
    acc
}

/// Serves an ntfy topic at `path`.
pub fn ntfy(server: &Server, path: &str, token: Option<&str>) -> Accepted {
    let acc = Accepted::default();
    let a = acc.clone();
    let token = token.map(String::from);
    server.respond(path, move |seen, _| {
        let result = check_ntfy(seen, token.as_deref())
            .map(|(body, headers)| serde_json::json!({ "message": body, "headers": headers }));
        a.take(result, Route::ok(r#"{"id":"x"}"#, "application/json"), 400)
    });
    acc
}

/// Serves a Matrix homeserver's client API; the first `limited` requests get
/// M_LIMIT_EXCEEDED. A transaction id seen before is answered with the same event and
/// not posted again, as a homeserver does.
pub fn matrix(server: &Server, token: &str, limited: usize) -> Accepted {
    let acc = Accepted::default();
    let seen_txns: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    {
        let a = acc.clone();
        let token = token.to_string();
        let txns = seen_txns.clone();
        server.respond_prefix("/_matrix/", move |seen, before| {
            if before < limited {
                return refused(
                    429,
                    r#"{"errcode":"M_LIMIT_EXCEEDED","error":"Too many requests","retry_after_ms":300}"#.into(),
                );
            }
            match check_matrix(seen, &token) {
                Ok((room, txn, mut v)) => {
                    let mut t = txns.lock().expect("lock");
                    let n = t.entry(txn.clone()).or_insert(0);
                    *n += 1;
                    if *n == 1 {
                        v["room"] = Value::String(room);
                        v["txn"] = Value::String(txn.clone());
                        a.requests.lock().expect("lock").push(v);
                    }
                    // The same transaction id gets the same event id: idempotent.
                    Route::ok(format!(r#"{{"event_id":"${txn}"}}"#), "application/json")
                }
                Err(e) => {
                    a.errors.lock().expect("lock").push(e.clone());
                    refused(400, serde_json::json!({"errcode": "M_BAD_JSON", "error": e}).to_string())
                }
            }
        });
    }
    acc
}
