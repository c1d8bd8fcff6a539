//! `feedwire preview`: one feed (a file, or fetched with the daemon's client) parsed, and
//! what the daemon would emit for each of its entries — identity, canonical URL, every
//! payload field — without opening the state directory. With `extract`, each article is
//! fetched (through the address policy) and cleaned as the daemon would.

use std::path::Path;
use std::time::Duration;

use url::Url;

use crate::config::Config;
use crate::fetch::{ClientSettings, FetchError, Fetched, HttpClient};
use crate::model::{Content, FeedItem};
use crate::parse::{Headers, Identity, ParseError, parse_response};
use crate::process::{article, feed_content};
use crate::sinks::payload::item_json;

/// One feed at a time: one blocking thread is enough for its articles.
const BLOCKING_THREADS: usize = 1;

/// Without a config: the defaults of DESIGN §3.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_MAX_FEED: u64 = 10 * 1024 * 1024;
const DEFAULT_MAX_PAGE: u64 = 5 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot fetch {url}: {source}")]
    Fetch {
        url: Url,
        #[source]
        source: FetchError,
    },
    #[error("{url} answered 304 Not Modified to a request without validators")]
    NotModified { url: Url },
    #[error("cannot start the HTTP client: {0}")]
    Client(#[source] FetchError),
    #[error("{0}")]
    Access(#[source] crate::fetch::AccessError),
    #[error("{target} does not parse as a feed: {source}")]
    Parse {
        target: String,
        #[source]
        source: ParseError,
    },
}

/// How the daemon would fetch: its client settings, deadlines and caps.
pub struct Settings {
    pub client: ClientSettings,
    pub feed_timeout: Duration,
    pub max_feed_size: u64,
    pub article_timeout: Duration,
    pub max_page_size: u64,
    /// The configured feeds: a target that is one of them is fetched with its credentials
    /// and proxy, as the daemon would.
    pub feeds: Vec<crate::config::Feed>,
}

impl Settings {
    /// The config's user agent, limits and address policy, or the defaults without one.
    pub fn from_config(config: Option<&Config>) -> Settings {
        match config {
            Some(c) => Settings {
                client: ClientSettings {
                    user_agent: c.daemon.user_agent.clone(),
                    allowed_networks: c.article.allowed_networks.clone(),
                    hosts: c.hosts.clone(),
                    max_connections: c.daemon.max_connections,
                    per_host_connections: c.daemon.per_host_connections,
                    proxy: c.daemon.proxy.clone(),
                    no_proxy: c.daemon.no_proxy.clone(),
                },
                feed_timeout: c.poll.timeout,
                max_feed_size: c.poll.max_feed_size,
                article_timeout: c.article.timeout,
                max_page_size: c.article.max_page_size,
                feeds: c.feeds.iter().map(|f| (**f).clone()).collect(),
            },
            None => Settings {
                client: ClientSettings {
                    user_agent: concat!("feedwire/", env!("CARGO_PKG_VERSION")).to_string(),
                    allowed_networks: Vec::new(),
                    hosts: Default::default(),
                    max_connections: 8,
                    per_host_connections: 2,
                    proxy: None,
                    no_proxy: Default::default(),
                },
                feed_timeout: DEFAULT_TIMEOUT,
                max_feed_size: DEFAULT_MAX_FEED,
                article_timeout: DEFAULT_TIMEOUT,
                max_page_size: DEFAULT_MAX_PAGE,
                feeds: Vec::new(),
            },
        }
    }
}

/// A parsed feed and, for each entry in the order the daemon emits them, its content.
pub struct Preview {
    pub url: Url,
    pub title: Option<String>,
    pub entries: Vec<(FeedItem, Content)>,
}

/// Reads `target` (an http(s) URL or a file path) and prepares each entry.
pub async fn preview(
    target: &str,
    settings: &Settings,
    extract: bool,
) -> Result<Preview, PreviewError> {
    let http = HttpClient::new(&settings.client).map_err(PreviewError::Client)?;
    let remote = target.starts_with("http://") || target.starts_with("https://");
    let configured = Url::parse(target)
        .ok()
        .and_then(|u| settings.feeds.iter().find(|f| f.url == u));
    let (access, article_access) = match configured {
        Some(f) => (
            crate::fetch::Access::resolve(f).map_err(PreviewError::Access)?,
            crate::fetch::Access::for_articles(f),
        ),
        None => Default::default(),
    };
    let (bytes, url, content_type, content_location) = match Url::parse(target) {
        Ok(url) if remote => {
            let fetched = http
                .get_feed(
                    &url,
                    None,
                    &access,
                    settings.feed_timeout,
                    settings.max_feed_size,
                )
                .await
                .map_err(|source| PreviewError::Fetch {
                    url: url.clone(),
                    source,
                })?;
            match fetched {
                Fetched::Body(body) => {
                    let body = *body;
                    (
                        body.bytes,
                        body.url,
                        body.content_type,
                        body.content_location,
                    )
                }
                Fetched::NotModified { .. } => return Err(PreviewError::NotModified { url }),
            }
        }
        _ => {
            let read_error = |source| PreviewError::Read {
                path: target.to_string(),
                source,
            };
            let bytes = std::fs::read(target).map_err(read_error)?;
            let absolute = std::path::absolute(Path::new(target)).map_err(read_error)?;
            let url = Url::from_file_path(&absolute).map_err(|()| PreviewError::Read {
                path: target.to_string(),
                source: std::io::Error::other("not an absolute path"),
            })?;
            (bytes, url, None, None)
        }
    };
    let parse_url = url.clone();
    let parsed = tokio::task::spawn_blocking(move || {
        let headers = Headers {
            content_type: content_type.as_deref(),
            content_location: content_location.as_deref(),
        };
        parse_response(&bytes, headers, &parse_url, Identity::Guid)
    })
    .await
    .unwrap_or_else(|e| Err(ParseError::Invalid(format!("the parser stopped: {e}"))))
    .map_err(|source| PreviewError::Parse {
        target: target.to_string(),
        source,
    })?;
    let blocking = crate::blocking::Blocking::new(BLOCKING_THREADS);
    let mut entries = Vec::with_capacity(parsed.items.len());
    for item in parsed.items {
        if extract && item.link.is_some() {
            let done = article(
                &http,
                &article_access,
                &blocking,
                "preview",
                item,
                settings.article_timeout,
                settings.max_page_size,
            )
            .await;
            entries.push((done.item, done.content));
        } else {
            let content = feed_content(&item, None);
            entries.push((item, content));
        }
    }
    Ok(Preview {
        url,
        title: parsed.title,
        entries,
    })
}

/// Each entry's payload `item` part, with its identity inside the feed.
fn entries_json(preview: &Preview) -> Vec<serde_json::Value> {
    preview
        .entries
        .iter()
        .map(|(item, content)| {
            let mut value = item_json(item, content);
            if let Some(map) = value.as_object_mut() {
                map.insert(
                    "identity".to_string(),
                    serde_json::Value::String(item.key.as_str().to_string()),
                );
            }
            value
        })
        .collect()
}

/// `{"feed": {"url", "title"}, "items": [...]}`, items oldest first.
pub fn to_json(preview: &Preview) -> String {
    let doc = serde_json::json!({
        "feed": { "url": preview.url.as_str(), "title": preview.title },
        "items": entries_json(preview),
    });
    serde_json::to_string_pretty(&doc).expect("the preview is plain JSON")
}

/// A readable listing: one block per entry, one `field: value` line per field that has one.
pub fn to_text(preview: &Preview) -> String {
    let mut out = format!(
        "feed: {}\ntitle: {}\nitems: {}\n",
        preview.url,
        preview.title.as_deref().unwrap_or("(none)"),
        preview.entries.len()
    );
    const ORDER: &[&str] = &[
        "identity",
        "url",
        "link",
        "guid",
        "title",
        "author",
        "published",
        "updated",
        "summary",
        "categories",
        "enclosures",
        "image",
        "language",
        "word_count",
        "content_source",
        "content_error",
        "content_text",
    ];
    for (n, value) in entries_json(preview).iter().enumerate() {
        out.push_str(&format!("\n[{}]\n", n + 1));
        for key in ORDER {
            let Some(v) = value.get(*key) else { continue };
            let shown = match v {
                serde_json::Value::Null => continue,
                serde_json::Value::String(s) if s.is_empty() => continue,
                serde_json::Value::Array(a) if a.is_empty() => continue,
                serde_json::Value::String(s) => s.replace('\n', "\n    "),
                other => other.to_string(),
            };
            out.push_str(&format!("  {key}: {shown}\n"));
        }
    }
    out
}
