//! Ready-made chat and push targets: Slack (and Mattermost), Discord, Telegram, ntfy and
//! Matrix. Each service's module turns one event into the request its documentation asks
//! for, with texts cut to its limits on a character boundary and a link to the full
//! article; this module sends it and reads the answer, including a service's own
//! "retry after" in a JSON body.

mod discord;
mod matrix;
mod ntfy;
mod slack;
mod telegram;

use std::time::Duration;

use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use url::Url;

use super::payload::{self, View};
use super::{DeliverFuture, Fault, Outgoing, Sink, SinkError, TransportKind, transport_kind};
use crate::config::SecretSource;
use crate::fetch::parse_retry_after;

/// At most this much of a service's answer is read.
const MAX_ANSWER: usize = 64 * 1024;

/// What is appended to a text that had to be cut.
const ELLIPSIS: &str = "…";

/// A preset target, as configured; secrets are named, not held.
#[derive(Debug, Clone, PartialEq)]
pub enum Preset {
    /// An incoming-webhook URL (Slack or Mattermost); the URL is the secret.
    Slack { url: SecretSource },
    /// A channel webhook URL; the URL is the secret.
    Discord { url: SecretSource },
    Telegram {
        token: SecretSource,
        chat_id: String,
        /// The Bot API's address (`https://api.telegram.org`, or a local Bot API server).
        api_url: Url,
    },
    /// A topic URL; the access token is optional.
    Ntfy {
        url: Url,
        token: Option<SecretSource>,
    },
    Matrix {
        homeserver: Url,
        /// A room id (`!abc:example.org`).
        room: String,
        token: SecretSource,
    },
}

impl Preset {
    /// The sink type as written in the config.
    pub fn kind(&self) -> &'static str {
        match self {
            Preset::Slack { .. } => "slack",
            Preset::Discord { .. } => "discord",
            Preset::Telegram { .. } => "telegram",
            Preset::Ntfy { .. } => "ntfy",
            Preset::Matrix { .. } => "matrix",
        }
    }
}

pub const KINDS: [&str; 5] = ["slack", "discord", "telegram", "ntfy", "matrix"];

#[derive(Debug, thiserror::Error)]
pub enum PresetError {
    #[error("environment variable {0} is not set")]
    MissingEnv(String),
    #[error("cannot read {path}: {source}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the {0} is empty")]
    Empty(&'static str),
    #[error("the {0} is not a valid http(s) URL")]
    BadUrl(&'static str),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// Reads a secret named by the config; surrounding white space is not part of it.
fn read_secret(source: &SecretSource, what: &'static str) -> Result<String, PresetError> {
    let text = match source {
        SecretSource::Env(var) => {
            std::env::var(var).map_err(|_| PresetError::MissingEnv(var.clone()))?
        }
        SecretSource::File(path) => {
            std::fs::read_to_string(path).map_err(|source| PresetError::File {
                path: path.display().to_string(),
                source,
            })?
        }
    };
    let text = text.trim().to_string();
    if text.is_empty() {
        return Err(PresetError::Empty(what));
    }
    Ok(text)
}

fn secret_url(source: &SecretSource, what: &'static str) -> Result<Url, PresetError> {
    let text = read_secret(source, what)?;
    Url::parse(&text)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or(PresetError::BadUrl(what))
}

/// A preset with its secrets read: where and how to send.
#[derive(Debug, Clone)]
enum Target {
    Slack(Url),
    Discord(Url),
    Telegram {
        /// `{api_url}/bot{token}/`: holds the token, so it is never shown.
        base: Url,
        chat_id: String,
    },
    Ntfy {
        url: Url,
        token: Option<String>,
    },
    Matrix {
        homeserver: Url,
        room: String,
        token: String,
    },
}

/// One HTTP request a preset sends.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Request {
    fn json(method: Method, url: Url, body: &serde_json::Value) -> Request {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Request {
            method,
            url,
            headers,
            body: serde_json::to_vec(body).expect("a JSON value serializes"),
        }
    }
}

/// The message every preset is built from, read back from the event's payload.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Message {
    pub title: String,
    /// The full article (the canonical URL, else the feed's link).
    pub link: Option<String>,
    /// The feed's summary, else the cleaned article text.
    pub text: String,
    pub image: Option<String>,
    pub feed: String,
    pub author: Option<String>,
    pub published: Option<String>,
    pub tags: Vec<String>,
}

impl Message {
    pub fn from_view(view: &View) -> Message {
        let feed = view
            .feed
            .title
            .clone()
            .filter(|t| !t.trim().is_empty())
            .unwrap_or_else(|| view.feed.name.clone());
        let Some(item) = &view.item else {
            // A feed event: say what happened to the feed.
            let title = match view.kind.as_str() {
                "feed.failing" => format!("Feed {} is failing", view.feed.name),
                "feed.recovered" => format!("Feed {} recovered", view.feed.name),
                other => format!("{other}: {}", view.feed.name),
            };
            return Message {
                title,
                link: Some(view.feed.url.clone()).filter(|u| is_http(u)),
                text: view.error.clone().unwrap_or_default(),
                feed,
                tags: view.feed.tags.clone(),
                ..Message::default()
            };
        };
        let link = item
            .url
            .clone()
            .or_else(|| item.link.clone())
            .filter(|u| is_http(u));
        let text = item
            .summary
            .clone()
            .filter(|s| !s.trim().is_empty())
            .or_else(|| item.content_text.clone())
            .unwrap_or_default();
        let title = item
            .title
            .clone()
            .filter(|t| !t.trim().is_empty())
            .or_else(|| link.clone())
            .unwrap_or_else(|| "(untitled)".to_string());
        Message {
            title: title.split_whitespace().collect::<Vec<_>>().join(" "),
            link,
            text: text.trim().to_string(),
            image: item.image.clone().filter(|u| is_http(u)),
            feed,
            author: item.author.clone().filter(|a| !a.trim().is_empty()),
            published: item.published.clone(),
            tags: view.feed.tags.clone(),
        }
    }
}

fn is_http(u: &str) -> bool {
    Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
}

/// How a service counts the length of a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Unicode scalar values.
    Chars,
    /// UTF-16 code units (what JavaScript's `length` counts; never fewer than chars).
    Utf16,
    /// UTF-8 bytes.
    Bytes,
}

impl Unit {
    pub fn len(self, s: &str) -> usize {
        match self {
            Unit::Chars => s.chars().count(),
            Unit::Utf16 => s.encode_utf16().count(),
            Unit::Bytes => s.len(),
        }
    }

    fn of(self, c: char) -> usize {
        match self {
            Unit::Chars => 1,
            Unit::Utf16 => c.len_utf16(),
            Unit::Bytes => c.len_utf8(),
        }
    }
}

/// The longest prefix of `text` that is at most `limit` long, ending on a character
/// boundary; at a word boundary when one is close to the end.
pub fn prefix(text: &str, limit: usize, unit: Unit) -> &str {
    let mut used = 0;
    let mut end = 0;
    for (i, c) in text.char_indices() {
        let n = unit.of(c);
        if used + n > limit {
            break;
        }
        used += n;
        end = i + c.len_utf8();
    }
    if end == text.len() {
        return text;
    }
    let cut = &text[..end];
    // Back up to the last white space when that loses at most a fifth of the text.
    match cut.rfind(char::is_whitespace) {
        Some(ws) if ws >= end - end / 5 => cut[..ws].trim_end(),
        _ => cut,
    }
}

/// `text` when it fits in `limit`, else a prefix followed by `…` and `more` (a link to
/// the full article), the whole within `limit`.
pub fn shorten(text: &str, limit: usize, unit: Unit, more: &str) -> String {
    if unit.len(text) <= limit {
        return text.to_string();
    }
    let tail = format!("{ELLIPSIS}{more}");
    let budget = limit.saturating_sub(unit.len(&tail));
    let mut out = prefix(text, budget, unit).to_string();
    if unit.len(&tail) <= limit {
        out.push_str(&tail);
    }
    out
}

/// Builds a message from a text budget and shrinks the budget until the whole message
/// fits (escaping and markup make the final length hard to know beforehand).
fn fit(limit: usize, unit: Unit, mut build: impl FnMut(usize) -> String) -> String {
    let mut budget = limit;
    loop {
        let out = build(budget);
        let len = unit.len(&out);
        if len <= limit || budget == 0 {
            return out;
        }
        // Shrink in proportion to the overshoot, by at least one unit.
        let scaled = (budget as u128 * limit as u128 / len as u128) as usize;
        budget = scaled.min(budget - 1);
    }
}

/// `&`, `<`, `>` and quotes as HTML entities.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

/// What a service answered.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub body: Vec<u8>,
}

/// A preset sink: one event becomes one request (Telegram may fall back to a second).
pub struct PresetSink {
    client: reqwest::Client,
    target: Target,
    timeout: Duration,
    concurrency: usize,
}

impl PresetSink {
    pub fn new(
        preset: &Preset,
        user_agent: &str,
        timeout: Duration,
        concurrency: usize,
    ) -> Result<PresetSink, PresetError> {
        let target = match preset {
            Preset::Slack { url } => Target::Slack(secret_url(url, "webhook URL")?),
            Preset::Discord { url } => Target::Discord(secret_url(url, "webhook URL")?),
            Preset::Telegram {
                token,
                chat_id,
                api_url,
            } => {
                let token = read_secret(token, "bot token")?;
                let mut api = api_url.clone();
                if !api.path().ends_with('/') {
                    api.set_path(&format!("{}/", api.path()));
                }
                // `./`: a token holds a colon, which would otherwise read as a URL scheme.
                let base = api
                    .join(&format!("./bot{token}/"))
                    .map_err(|_| PresetError::BadUrl("bot API URL"))?;
                Target::Telegram {
                    base,
                    chat_id: chat_id.clone(),
                }
            }
            Preset::Ntfy { url, token } => Target::Ntfy {
                url: url.clone(),
                token: token
                    .as_ref()
                    .map(|t| read_secret(t, "access token"))
                    .transpose()?,
            },
            Preset::Matrix {
                homeserver,
                room,
                token,
            } => Target::Matrix {
                homeserver: homeserver.clone(),
                room: room.clone(),
                token: read_secret(token, "access token")?,
            },
        };
        crate::fetch::install_crypto_provider();
        let client = reqwest::Client::builder()
            .user_agent(user_agent)
            // A moved endpoint must be reconfigured; following could leak the token.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout)
            .build()
            .map_err(|e| PresetError::Client(e.to_string()))?;
        Ok(PresetSink {
            client,
            target,
            timeout,
            concurrency,
        })
    }

    fn service(&self) -> &'static str {
        match self.target {
            Target::Slack(_) => "slack",
            Target::Discord(_) => "discord",
            Target::Telegram { .. } => "telegram",
            Target::Ntfy { .. } => "ntfy",
            Target::Matrix { .. } => "matrix",
        }
    }

    /// The requests for one event, in the order they are tried: a later one only when the
    /// one before was refused (a Telegram photo the service cannot fetch).
    pub fn requests(&self, event: &Outgoing<'_>) -> Result<Vec<Request>, SinkError> {
        let view = payload::read(event.body).map_err(|e| SinkError {
            fault: Fault::Unsendable,
            retry_after: None,
            elapsed: Duration::ZERO,
            message: format!("the event body is not a payload: {e}"),
        })?;
        let message = Message::from_view(&view);
        Ok(match &self.target {
            Target::Slack(url) => vec![slack::request(url, &message)],
            Target::Discord(url) => vec![discord::request(url, &message)],
            Target::Telegram { base, chat_id } => telegram::requests(base, chat_id, &message),
            Target::Ntfy { url, token } => vec![ntfy::request(url, token.as_deref(), &message)],
            Target::Matrix {
                homeserver,
                room,
                token,
            } => vec![matrix::request(
                homeserver,
                room,
                token,
                event.webhook_id,
                &message,
            )],
        })
    }

    /// The service's own wait before a retry, from its JSON answer.
    fn body_retry_after(&self, body: &[u8]) -> Option<Duration> {
        match self.target {
            Target::Discord(_) => discord::retry_after(body),
            Target::Telegram { .. } => telegram::retry_after(body),
            Target::Matrix { .. } => matrix::retry_after(body),
            Target::Slack(_) | Target::Ntfy { .. } => None,
        }
    }

    async fn send(&self, request: Request) -> Result<Answer, SinkError> {
        let service = self.service();
        let mut response = self
            .client
            .request(request.method, request.url)
            .headers(request.headers)
            .body(request.body)
            .send()
            .await
            // The URL may hold the secret (a webhook URL, a bot token): never shown.
            .map_err(|e| SinkError {
                fault: Fault::Transport(transport_kind(&e)),
                retry_after: None,
                // Set by `deliver`, which times the whole attempt.
                elapsed: Duration::ZERO,
                message: format!("cannot reach {service}: {}", error_chain(e.without_url())),
            })?;
        let status = response.status().as_u16();
        let header_wait = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let mut body = Vec::new();
        while body.len() < MAX_ANSWER {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    body.extend_from_slice(&chunk[..chunk.len().min(MAX_ANSWER - body.len())])
                }
                _ => break,
            }
        }
        let retry_after = self.body_retry_after(&body).or(header_wait);
        Ok(Answer {
            status,
            retry_after,
            body,
        })
    }

    fn failure(&self, answer: &Answer) -> SinkError {
        let snippet: String = String::from_utf8_lossy(&answer.body)
            .chars()
            .take(200)
            .collect();
        let snippet = snippet.split_whitespace().collect::<Vec<_>>().join(" ");
        let status = answer.status;
        let message = if snippet.is_empty() {
            format!("{} answered HTTP {status}", self.service())
        } else {
            format!("{} answered HTTP {status}: {snippet}", self.service())
        };
        SinkError {
            fault: Fault::Status(status),
            retry_after: answer.retry_after,
            elapsed: Duration::ZERO,
            message,
        }
    }

    async fn post(&self, event: Outgoing<'_>) -> Result<(), SinkError> {
        let requests = self.requests(&event)?;
        let count = requests.len();
        let mut last = None;
        for (i, request) in requests.into_iter().enumerate() {
            let answer = self.send(request).await?;
            if (200..300).contains(&answer.status) {
                return Ok(());
            }
            let err = self.failure(&answer);
            // Only a refused request (400) has a plainer alternative worth trying.
            if answer.status != 400 || i + 1 == count {
                return Err(err);
            }
            tracing::info!(sink = self.service(), error = %err, "request refused; sending the plainer form");
            last = Some(err);
        }
        Err(last.unwrap_or_else(|| SinkError {
            fault: Fault::Unsendable,
            retry_after: None,
            elapsed: Duration::ZERO,
            message: "nothing to send".into(),
        }))
    }
}

impl Sink for PresetSink {
    fn deliver<'a>(&'a self, event: Outgoing<'a>) -> DeliverFuture<'a> {
        Box::pin(async move {
            let started = std::time::Instant::now();
            match tokio::time::timeout(self.timeout, self.post(event)).await {
                Ok(result) => result.map_err(|e| SinkError {
                    elapsed: started.elapsed(),
                    ..e
                }),
                Err(_) => Err(SinkError {
                    fault: Fault::Transport(TransportKind::Timeout),
                    retry_after: None,
                    elapsed: started.elapsed(),
                    message: format!(
                        "no answer from {} within {}",
                        self.service(),
                        humantime::format_duration(self.timeout)
                    ),
                }),
            }
        })
    }

    fn concurrency(&self) -> usize {
        self.concurrency
    }
}

fn error_chain(err: reqwest::Error) -> String {
    let mut parts = vec![err.to_string()];
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(&err);
    while let Some(e) = source {
        parts.push(e.to_string());
        source = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_end_on_character_boundaries() {
        let s = "héllo wörld 🎉🎉";
        assert_eq!(prefix(s, 2, Unit::Chars), "hé");
        assert_eq!(prefix(s, 2, Unit::Bytes), "h");
        // The emoji is two UTF-16 units: it does not fit in one.
        assert_eq!(prefix("🎉", 1, Unit::Utf16), "");
        assert_eq!(prefix(s, 100, Unit::Chars), s);
        // Backs up to a word boundary near the end.
        assert_eq!(
            prefix("alpha beta gamma delta", 20, Unit::Chars),
            "alpha beta gamma"
        );
    }

    #[test]
    fn shortened_texts_keep_the_link_and_the_limit() {
        let text = "ü".repeat(5000);
        let out = shorten(&text, 300, Unit::Bytes, " https://example.com/a");
        assert!(out.len() <= 300);
        assert!(out.ends_with("… https://example.com/a"));
        assert_eq!(shorten("short", 300, Unit::Bytes, " link"), "short");
    }

    #[test]
    fn fit_shrinks_until_escaped_text_fits() {
        let text = "<&>".repeat(1000);
        let out = fit(100, Unit::Chars, |budget| {
            escape_html(&shorten(&text, budget, Unit::Chars, ""))
        });
        assert!(out.chars().count() <= 100, "{}", out.chars().count());
        assert!(out.len() > 50);
    }
}
