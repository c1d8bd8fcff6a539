//! `feedwire test-sink`: what a sink would receive for one event — the request it would
//! send, secrets hidden — and, when asked, that event sent for real.

use std::fmt::Write as _;
use std::sync::Arc;

use chrono::Utc;

use super::presets::PresetSink;
use super::template::Template;
use super::{Outgoing, Sink};
use crate::config::{self, SinkKind};
use crate::model::{Content, ContentSource, EventType, FeedItem, ItemKey};
use crate::sinks::payload::{self, EventInput};

/// The sample item's summary: long enough that every chat preset has to cut it.
const SAMPLE_SUMMARY_WORDS: usize = 800;

/// Why a sink cannot be shown or tried.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("no sink named {0:?} is configured")]
    NoSink(String),
    #[error("sink {name}: {message}")]
    Setup { name: String, message: String },
    #[error("sink {name} cannot render the event: {message}")]
    Render { name: String, message: String },
}

/// A §5 `item.new` body for a sample item of `feed`: a non-ASCII title, a long summary.
pub fn sample_body(feed: &config::Feed) -> String {
    let link = feed.url.join("/articles/sample").ok();
    let summary = std::iter::repeat_n(
        "Überraschung — ça marche, 東京 & <tags>.",
        SAMPLE_SUMMARY_WORDS / 5,
    )
    .collect::<Vec<_>>()
    .join(" ");
    let item = FeedItem {
        key: ItemKey("sample".into()),
        guid: Some("sample".into()),
        link: link.clone(),
        url: link,
        title: Some("Sample: «Ünïcødé» title & <markup> 🎉".into()),
        author: Some("Feedwire".into()),
        published: Some(Utc::now()),
        updated: None,
        summary: Some(summary.clone()),
        content_html: None,
        categories: vec!["sample".into()],
        image: None,
        enclosures: Vec::new(),
    };
    let content = Content {
        source: ContentSource::Feed,
        error: None,
        word_count: summary.split_whitespace().count(),
        html: format!("<p>{}</p>", ammonia::clean_text(&summary)),
        text: summary,
        language: Some("en".into()),
        image: None,
        author: None,
        page_type: None,
    };
    payload::render(&EventInput {
        kind: EventType::ItemNew,
        item_id: &ulid::Ulid::new().to_string(),
        created: Utc::now(),
        feed,
        feed_title: Some("Sample feed"),
        item: &item,
        content: &content,
        duplicate_of: None,
    })
}

/// The feed a sample is made for: the first that sends to `sink`, else a made-up one.
pub fn sample_feed(config: &config::Config, sink: &str) -> config::Feed {
    config
        .feeds
        .iter()
        .find(|f| f.sinks.iter().any(|s| s == sink))
        .or(config.feeds.first())
        .map(|f| (**f).clone())
        .unwrap_or_else(|| config::Feed {
            name: "sample".into(),
            url: url::Url::parse("https://example.com/feed.xml").expect("a valid URL"),
            interval: None,
            fetch_article: false,
            sinks: vec![sink.to_string()],
            tags: Vec::new(),
            backfill: config::Backfill::All,
            max_item_age: None,
            websub: None,
            access: Default::default(),
        })
}

/// Where a URL that is itself a secret (a Slack or Discord webhook, a bot token in the
/// path) is shown only by its origin.
fn origin_only(url: &url::Url) -> String {
    format!("{}/…", url.origin().ascii_serialization())
}

/// Describes the request(s) `sink` would send for `body`, secrets hidden.
pub fn show(config: &config::Config, name: &str, body: &str) -> Result<String, SampleError> {
    let sink = config
        .sinks
        .get(name)
        .ok_or_else(|| SampleError::NoSink(name.to_string()))?;
    let setup = |message: String| SampleError::Setup {
        name: name.to_string(),
        message,
    };
    let render = |message: String| SampleError::Render {
        name: name.to_string(),
        message,
    };
    let mut out = String::new();
    match &sink.kind {
        SinkKind::Log { path } => {
            let _ = writeln!(out, "log line to {path:?}:\n{body}");
        }
        SinkKind::Webhook(w) => {
            let content_type = w.content_type.clone();
            let body = match &w.template {
                Some(source) => {
                    let text = source.read().map_err(|e| setup(e.to_string()))?;
                    let t = Template::compile(&text, &content_type)
                        .map_err(|e| setup(e.to_string()))?;
                    t.render(body).map_err(|e| render(e.to_string()))?
                }
                None => body.to_string(),
            };
            let headers =
                super::template::resolve_headers(&w.headers).map_err(|e| setup(e.to_string()))?;
            let _ = writeln!(out, "POST {}", w.url);
            let _ = writeln!(out, "content-type: {content_type}");
            for (k, v) in &headers {
                let shown = if v.is_sensitive() {
                    "<hidden>"
                } else {
                    v.to_str().unwrap_or("<binary>")
                };
                let _ = writeln!(out, "{k}: {shown}");
            }
            if w.secret.is_some() {
                let _ = writeln!(
                    out,
                    "webhook-id, webhook-timestamp, webhook-signature: <signed when sent>"
                );
            }
            let _ = writeln!(out, "\n{body}");
        }
        SinkKind::Nats(n) => {
            let _ = writeln!(
                out,
                "publish to {} subject {} (Nats-Msg-Id: the event's webhook-id)\n\n{body}",
                n.url.origin().ascii_serialization(),
                n.subject
            );
        }
        SinkKind::Amqp(a) => {
            let _ = writeln!(
                out,
                "publish to {} exchange {:?} routing key {} (persistent, message_id: the event's webhook-id)\n\n{body}",
                a.url.origin().ascii_serialization(),
                a.exchange,
                a.routing_key
            );
        }
        SinkKind::Preset(p) => {
            let preset = PresetSink::new(&p.preset, &config.daemon.user_agent, p.timeout, 1)
                .map_err(|e| setup(e.to_string()))?;
            let event = Outgoing {
                webhook_id: "test-sink",
                body,
            };
            let requests = preset.requests(&event).map_err(|e| render(e.to_string()))?;
            for (i, r) in requests.iter().enumerate() {
                if i > 0 {
                    let _ = writeln!(out, "\n(if the service refuses the request above:)");
                }
                let url = match p.preset {
                    super::presets::Preset::Slack { .. }
                    | super::presets::Preset::Discord { .. } => origin_only(&r.url),
                    super::presets::Preset::Telegram { .. } => format!(
                        "{}/bot<token>/{}",
                        r.url.origin().ascii_serialization(),
                        r.url.path().rsplit('/').next().unwrap_or("")
                    ),
                    _ => r.url.to_string(),
                };
                let _ = writeln!(out, "{} {url}", r.method);
                for (k, v) in &r.headers {
                    let shown = if v.is_sensitive() {
                        "<hidden>"
                    } else {
                        v.to_str().unwrap_or("<binary>")
                    };
                    let _ = writeln!(out, "{k}: {shown}");
                }
                let text = String::from_utf8_lossy(&r.body);
                let pretty = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| serde_json::to_string_pretty(&v).ok())
                    .unwrap_or_else(|| text.to_string());
                let _ = writeln!(out, "\n{pretty}");
            }
        }
    }
    Ok(out)
}

/// Sends `body` through the real sink once; `Ok` when the receiver accepted it.
pub async fn send(sink: Arc<dyn Sink>, body: &str) -> Result<(), super::SinkError> {
    let id = format!("test-{}", ulid::Ulid::new());
    sink.deliver(Outgoing {
        webhook_id: &id,
        body,
    })
    .await
}
