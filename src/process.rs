//! The processing stage: turns a poll's new items into items ready for the store — their
//! content, their fingerprint, the sinks of each event type, and how to render a payload
//! once the store has decided whether the item is new or a duplicate.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::task::JoinSet;

use crate::app::Shared;
use crate::blocking::{Blocking, Crashed};
use crate::config::{Backfill, Config, Feed};
use crate::dedup::{Fingerprint, dedup_key, resolve_page_canonical};
use crate::extract::{self, html_to_text};
use crate::fetch::HttpClient;
use crate::model::{Content, ContentSource, EventType, FeedItem};
use crate::sinks::payload::{self, EventInput};
use crate::store::{NewItem, Render};
use crate::telemetry::OutcomeLabel;

/// Articles of one batch fetched and cleaned at the same time (the per-host limits of the
/// client apply on top).
pub const ARTICLES_AT_ONCE: usize = 8;

/// A page with fewer words than this is not taken as the article (a paywall, a script-only
/// page, a consent wall); the feed's own content is sent instead.
pub const MIN_ARTICLE_WORDS: usize = 25;

/// An item with its content and the page's own canonical URL, when the page said one.
pub struct Processed {
    pub item: FeedItem,
    pub content: Content,
    pub page_canonical: Option<String>,
    /// The stored item this is a new revision of.
    pub update_of: Option<String>,
}

/// The feed-side revision of an item: its title and feed text, normalized, hashed. Whitespace,
/// case, punctuation and markup changes do not make a new revision.
pub fn revision_of(item: &FeedItem) -> String {
    use sha2::{Digest, Sha256};
    let text = item
        .content_html
        .as_deref()
        .map(html_to_text)
        .or_else(|| item.summary.clone())
        .unwrap_or_default();
    let mut h = Sha256::new();
    h.update(crate::dedup::normalize_text(item.title.as_deref().unwrap_or("")).as_bytes());
    h.update([0]);
    h.update(crate::dedup::normalize_text(&text).as_bytes());
    h.finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Known items whose entry changed: sent with the feed's content (their page is not fetched
/// again).
pub fn updates(items: Vec<(FeedItem, String)>) -> Vec<Processed> {
    items
        .into_iter()
        .map(|(item, id)| Processed {
            update_of: Some(id),
            ..plain(item, None)
        })
        .collect()
}

/// A poll's new items, ready for [`crate::store::Store::ingest`].
pub struct Prepared {
    pub items: Vec<NewItem>,
    pub render: Render,
}

/// What the renderer needs of each item, kept until the store decides.
struct Rendered {
    id: String,
    item: FeedItem,
    content: Content,
}

/// The names of `feed`'s sinks that subscribe to `kind`.
pub fn sinks_for(config: &Config, feed: &Feed, kind: EventType) -> Vec<String> {
    feed.sinks
        .iter()
        .filter(|s| {
            config
                .sinks
                .get(*s)
                .is_some_and(|sink| sink.events.contains(&kind))
        })
        .cloned()
        .collect()
}

/// The feed's own content for an item: its full content when it has one, else its summary.
pub fn feed_content(item: &FeedItem, error: Option<String>) -> Content {
    let text = item
        .content_html
        .as_deref()
        .map(html_to_text)
        .filter(|t| !t.is_empty())
        .or_else(|| item.summary.clone())
        .unwrap_or_default();
    let html = match item.content_html.as_deref() {
        Some(h) => extract::sanitize(h, item.link.as_ref()),
        None => text
            .split("\n\n")
            .map(|p| format!("<p>{}</p>", ammonia::clean_text(p)))
            .collect(),
    };
    Content {
        source: ContentSource::Feed,
        error,
        word_count: text.split_whitespace().count(),
        text,
        html,
        language: None,
        image: None,
        author: None,
    }
}

/// Gives each item its content: the cleaned article when the feed fetches articles and the
/// page yields enough text, else the feed's own. Items whose link is already known (a
/// duplicate by URL) are not fetched. The order of `items` is kept. An item whose work
/// crashed fails the whole batch, so that no entry is lost while the feed moves on.
pub async fn contents(
    config: &Config,
    ctx: &Shared,
    feed: &Feed,
    items: Vec<FeedItem>,
) -> Result<Vec<Processed>, Crashed> {
    if !feed.fetch_article {
        return Ok(items.into_iter().map(|item| plain(item, None)).collect());
    }
    let (store, metrics) = (&ctx.store, &ctx.metrics);
    let keys: Vec<String> = items
        .iter()
        .filter_map(|i| i.url.as_ref())
        .map(dedup_key)
        .collect();
    let known = match store.known_url_keys(keys).await {
        Ok(k) => k,
        Err(e) => {
            tracing::warn!(feed = %feed.name, error = %e, "cannot check known links; fetching every article");
            HashSet::new()
        }
    };
    let slots = Arc::new(tokio::sync::Semaphore::new(ARTICLES_AT_ONCE));
    let mut tasks = JoinSet::new();
    let mut out: Vec<Option<Processed>> = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        out.push(None);
        let is_known = item
            .url
            .as_ref()
            .is_some_and(|u| known.contains(&dedup_key(u)));
        if is_known || item.link.is_none() {
            out[index] = Some(plain(item, None));
            continue;
        }
        let (http, blocking) = (ctx.http.clone(), ctx.blocking.clone());
        let (timeout, max) = (config.article.timeout, config.article.max_page_size);
        let name = feed.name.clone();
        let metrics = metrics.clone();
        let permit = slots
            .clone()
            .acquire_owned()
            .await
            .expect("the article semaphore is never closed");
        tasks.spawn(async move {
            let _permit = permit;
            let started = std::time::Instant::now();
            let processed = article(&http, &blocking, &name, item, timeout, max).await;
            metrics
                .extraction_seconds
                .observe(started.elapsed().as_secs_f64());
            let outcome = match processed.content.source {
                ContentSource::Article => "article",
                ContentSource::Feed => "fallback",
            };
            metrics
                .extractions
                .get_or_create(&OutcomeLabel { outcome })
                .inc();
            (index, processed)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        let (index, processed) = joined.map_err(|e| Crashed::from_join(&e))?;
        out[index] = Some(processed);
    }
    Ok(out
        .into_iter()
        .map(|p| p.expect("every item is processed or the batch failed"))
        .collect())
}

fn plain(item: FeedItem, error: Option<String>) -> Processed {
    let content = feed_content(&item, error);
    Processed {
        item,
        content,
        page_canonical: None,
        update_of: None,
    }
}

/// Fetches and cleans one item's page; on any failure the feed's content, with the reason.
async fn article(
    http: &HttpClient,
    blocking: &Blocking,
    feed: &str,
    item: FeedItem,
    timeout: std::time::Duration,
    max_size: u64,
) -> Processed {
    let Some(link) = item.link.clone() else {
        return plain(item, None);
    };
    let body = match http.get_article(&link, timeout, max_size).await {
        Ok(b) => b,
        Err(e) => {
            tracing::info!(feed, url = %link, reason = %e, "article not fetched; sending the feed's content");
            return plain(item, Some(e.to_string()));
        }
    };
    let kind = body
        .content_type
        .as_deref()
        .unwrap_or("text/html")
        .to_ascii_lowercase();
    if !(kind.contains("html") || kind.starts_with("text/")) {
        let reason = format!(
            "not an HTML page ({})",
            kind.split(';').next().unwrap_or(&kind).trim()
        );
        tracing::info!(feed, url = %link, reason = %reason, "article not used; sending the feed's content");
        return plain(item, Some(reason));
    }
    // Parsing is CPU work: off the async reactor.
    let page_url = body.url.clone();
    let cleaned = blocking
        .run(move || {
            let (html, _, _) = extract::decode(&body.bytes, body.content_type.as_deref());
            extract::extract(&html, Some(&page_url))
        })
        .await;
    let art = match cleaned {
        Ok(a) => a,
        Err(e) => return plain(item, Some(format!("extraction failed: {e}"))),
    };
    let fallback = feed_content(&item, None);
    if art.word_count < MIN_ARTICLE_WORDS || art.word_count * 2 < fallback.word_count {
        let reason = format!("too little text on the page ({} words)", art.word_count);
        tracing::info!(feed, url = %link, reason = %reason, "article not used; sending the feed's content");
        return Processed {
            item,
            content: Content {
                error: Some(reason),
                ..fallback
            },
            page_canonical: art.canonical_url,
            update_of: None,
        };
    }
    let content = Content {
        source: ContentSource::Article,
        error: None,
        word_count: art.word_count,
        text: art.text,
        html: art.html,
        language: art.language,
        image: art.image,
        author: art.author,
    };
    Processed {
        item,
        content,
        page_canonical: art.canonical_url,
        update_of: None,
    }
}

/// Prepares items (oldest first) of one poll of `feed`, with their content already known.
pub fn prepare(
    config: &Config,
    feed: Arc<Feed>,
    feed_title: Option<String>,
    first_poll: bool,
    items: Vec<Processed>,
) -> Prepared {
    // At a feed's first poll, `backfill = N` emits only the newest N.
    let skip = match (first_poll, config.poll.backfill) {
        (true, Backfill::Newest(n)) => items.len().saturating_sub(n),
        _ => 0,
    };
    let new_sinks = sinks_for(config, &feed, EventType::ItemNew);
    let duplicate_sinks = sinks_for(config, &feed, EventType::ItemDuplicate);
    let updated_sinks = sinks_for(config, &feed, EventType::ItemUpdated);
    let mut out = Vec::with_capacity(items.len());
    let mut kept = Vec::with_capacity(items.len());
    for (
        i,
        Processed {
            item,
            content,
            page_canonical,
            update_of,
        },
    ) in items.into_iter().enumerate()
    {
        let id = update_of
            .clone()
            .unwrap_or_else(|| ulid::Ulid::new().to_string());
        let fingerprint = item.url.as_ref().map(|u| {
            let decision = resolve_page_canonical(u, page_canonical.as_deref());
            Fingerprint::new(&decision, &content.text)
        });
        out.push(NewItem {
            id: id.clone(),
            key: item.key.0.clone(),
            url: item.url.as_ref().map(|u| u.to_string()),
            link: item.link.as_ref().map(|u| u.to_string()),
            guid: item.guid.clone(),
            title: item.title.clone(),
            published_at: item.published.map(crate::model::Timestamp::from_datetime),
            content_source: Some(content.source.as_str()),
            emitted: i >= skip,
            fingerprint,
            new_sinks: new_sinks.clone(),
            duplicate_sinks: duplicate_sinks.clone(),
            revision: Some(revision_of(&item)),
            update_of,
            updated_sinks: updated_sinks.clone(),
        });
        kept.push(Rendered { id, item, content });
    }
    let created: DateTime<Utc> = Utc::now();
    let render: Render = Box::new(move |index, kind, duplicate_of| {
        let r = kept
            .get(index)
            .expect("the store renders only items of this batch");
        payload::render(&EventInput {
            kind,
            item_id: &r.id,
            created,
            feed: &feed,
            feed_title: feed_title.as_deref(),
            item: &r.item,
            content: &r.content,
            duplicate_of,
        })
    });
    Prepared { items: out, render }
}
