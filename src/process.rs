//! The processing stage: turns a poll's new items into items ready for the store — their
//! content, their fingerprint, the sinks of each event type, and how to render a payload
//! once the store has decided whether the item is new or a duplicate.

use std::collections::{BTreeSet, HashSet};
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
use crate::rules::{ArticleView, Early, FeedRules, ItemView, Verdict};
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
    /// Why it is stored without being sent, when a rule or `max_item_age` decided so before
    /// its page was fetched.
    pub not_sent: Option<String>,
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

/// What rules look at of an item; with its content once that is known.
pub fn rule_view<'a>(item: &'a FeedItem, content: Option<&'a Content>) -> ItemView<'a> {
    ItemView {
        title: item.title.as_deref(),
        summary: item.summary.as_deref(),
        author: content
            .and_then(|c| c.author.as_deref())
            .or(item.author.as_deref()),
        categories: &item.categories,
        url: item.url.as_ref().map(|u| u.as_str()),
        link: item.link.as_ref().map(|u| u.as_str()),
        published: item.published,
        article: content.map(|c| ArticleView {
            content: &c.text,
            language: c.language.as_deref(),
            word_count: c.word_count,
        }),
    }
}

/// Why a new item is not sent, as far as its feed fields tell: an entry published before
/// the feed's `max_item_age`, or a rule that drops it without needing its article.
pub fn early_verdict(
    feed: &Feed,
    rules: &FeedRules,
    item: &FeedItem,
    now: DateTime<Utc>,
) -> Option<String> {
    if let (Some(age), Some(published)) = (feed.max_item_age, item.published)
        && chrono::Duration::from_std(age).is_ok_and(|age| published < now - age)
    {
        return Some(NOT_SENT_AGE.to_string());
    }
    match rules.early(&rule_view(item, None), now) {
        Early::Drop(rule) => Some(format!("{NOT_SENT_RULE}{rule}")),
        Early::Continue => None,
    }
}

/// `not_sent` values, as stored and shown by `feedwire items`.
pub const NOT_SENT_RULE: &str = "rule:";
pub const NOT_SENT_AGE: &str = "max_item_age";
pub const NOT_SENT_BACKFILL: &str = "backfill";

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
        page_type: None,
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
    let rules = config.rules.for_feed(&feed.name, &feed.tags);
    let now = Utc::now();
    // Items the feed fields already rule out are stored as seen without fetching a page.
    let verdicts: Vec<Option<String>> = items
        .iter()
        .map(|item| early_verdict(feed, &rules, item, now))
        .collect();
    if !feed.fetch_article || verdicts.iter().all(Option::is_some) {
        return Ok(items
            .into_iter()
            .zip(verdicts)
            .map(|(item, not_sent)| Processed {
                not_sent,
                ..plain(item, None)
            })
            .collect());
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
    // The feed's proxy, and its credentials only with article_auth.
    let access = Arc::new(crate::fetch::Access::for_articles(feed));
    let mut tasks = JoinSet::new();
    let mut out: Vec<Option<Processed>> = Vec::with_capacity(items.len());
    for (index, (item, not_sent)) in items.into_iter().zip(verdicts).enumerate() {
        out.push(None);
        if not_sent.is_some() {
            out[index] = Some(Processed {
                not_sent,
                ..plain(item, None)
            });
            continue;
        }
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
        let access = access.clone();
        let permit = slots
            .clone()
            .acquire_owned()
            .await
            .expect("the article semaphore is never closed");
        tasks.spawn(async move {
            let _permit = permit;
            let started = std::time::Instant::now();
            let processed = article(&http, &access, &blocking, &name, item, timeout, max).await;
            metrics
                .extraction_seconds
                .observe(started.elapsed().as_secs_f64());
            let outcome = match processed.content.source {
                ContentSource::Article | ContentSource::ArticleFallback => "article",
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
        not_sent: None,
    }
}

/// Fetches and cleans one item's page; on any failure the feed's content, with the reason.
pub async fn article(
    http: &HttpClient,
    access: &crate::fetch::Access,
    blocking: &Blocking,
    feed: &str,
    item: FeedItem,
    timeout: std::time::Duration,
    max_size: u64,
) -> Processed {
    let Some(link) = item.link.clone() else {
        return plain(item, None);
    };
    let body = match http.get_article_via(&link, access, timeout, max_size).await {
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
            not_sent: None,
        };
    }
    let source = match art.source {
        extract::Source::Fallback => ContentSource::ArticleFallback,
        extract::Source::Content | extract::Source::StructuredData => ContentSource::Article,
    };
    let content = Content {
        source,
        error: None,
        page_type: Some(art.page_type),
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
        not_sent: None,
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
    // At a feed's first poll, `backfill = N` emits only the newest N, `"none"` none.
    let new_count = items.iter().filter(|p| p.update_of.is_none()).count();
    let skip = match (first_poll, feed.backfill) {
        (true, Backfill::Newest(n)) => new_count.saturating_sub(n),
        (true, Backfill::None) => new_count,
        _ => 0,
    };
    let rules = config.rules.for_feed(&feed.name, &feed.tags);
    let now = Utc::now();
    let new_sinks = sinks_for(config, &feed, EventType::ItemNew);
    let duplicate_sinks = sinks_for(config, &feed, EventType::ItemDuplicate);
    let updated_sinks = sinks_for(config, &feed, EventType::ItemUpdated);
    // A routed item's sinks: the feed's, less those that take only routed items, plus the
    // route's — each only for the event types it subscribes to.
    let routed = |base: &[String], routes: &BTreeSet<String>, kind: EventType| -> Vec<String> {
        rules
            .sinks(base, routes)
            .into_iter()
            .filter(|s| {
                base.contains(s)
                    || config
                        .sinks
                        .get(s)
                        .is_some_and(|sink| sink.events.contains(&kind))
            })
            .collect()
    };
    let mut out = Vec::with_capacity(items.len());
    let mut kept = Vec::with_capacity(items.len());
    for (
        i,
        Processed {
            item,
            content,
            page_canonical,
            update_of,
            not_sent,
        },
    ) in items.into_iter().enumerate()
    {
        // Rules that need the article decide now.
        let (not_sent, routes) = match not_sent {
            Some(reason) => (Some(reason), BTreeSet::new()),
            None if rules.is_empty() => (None, BTreeSet::new()),
            // Every new item went through `early_verdict` in `contents`; updates did not.
            None => match if update_of.is_none() {
                rules.decide_after_early(&rule_view(&item, Some(&content)), now)
            } else {
                rules.decide(&rule_view(&item, Some(&content)), now)
            } {
                Verdict::Drop(rule) => (Some(format!("{NOT_SENT_RULE}{rule}")), BTreeSet::new()),
                Verdict::Pass { routes } => (None, routes),
            },
        };
        let not_sent = not_sent
            .or_else(|| (update_of.is_none() && i < skip).then(|| NOT_SENT_BACKFILL.to_string()));
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
            emitted: not_sent.is_none(),
            not_sent,
            fingerprint,
            new_sinks: routed(&new_sinks, &routes, EventType::ItemNew),
            duplicate_sinks: routed(&duplicate_sinks, &routes, EventType::ItemDuplicate),
            revision: Some(revision_of(&item)),
            update_of,
            updated_sinks: routed(&updated_sinks, &routes, EventType::ItemUpdated),
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
