//! The processing stage: turns a poll's new items into items ready for the store — their
//! content, their fingerprint, the sinks of each event type, and how to render a payload
//! once the store has decided whether the item is new or a duplicate.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::config::{Backfill, Config, Feed};
use crate::dedup::{Fingerprint, resolve_page_canonical};
use crate::extract::html_to_text;
use crate::model::{Content, ContentSource, EventType, FeedItem};
use crate::sinks::payload::{self, EventInput};
use crate::store::{NewItem, Render};

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
    Content {
        source: ContentSource::Feed,
        error,
        word_count: text.split_whitespace().count(),
        text,
        html: String::new(),
        language: None,
        image: None,
        author: None,
    }
}

/// Prepares items (oldest first) of one poll of `feed`, with their content already known.
pub fn prepare(
    config: &Config,
    feed: Arc<Feed>,
    feed_title: Option<String>,
    first_poll: bool,
    items: Vec<(FeedItem, Content)>,
) -> Prepared {
    // At a feed's first poll, `backfill = N` emits only the newest N.
    let skip = match (first_poll, config.poll.backfill) {
        (true, Backfill::Newest(n)) => items.len().saturating_sub(n),
        _ => 0,
    };
    let new_sinks = sinks_for(config, &feed, EventType::ItemNew);
    let duplicate_sinks = sinks_for(config, &feed, EventType::ItemDuplicate);
    let mut out = Vec::with_capacity(items.len());
    let mut kept = Vec::with_capacity(items.len());
    for (i, (item, content)) in items.into_iter().enumerate() {
        let id = ulid::Ulid::new().to_string();
        let fingerprint = item.url.as_ref().map(|u| {
            let decision = resolve_page_canonical(u, None);
            Fingerprint::new(&decision, &content.text)
        });
        out.push(NewItem {
            id: id.clone(),
            key: item.key.0.clone(),
            url: item.url.as_ref().map(|u| u.to_string()),
            link: item.link.as_ref().map(|u| u.to_string()),
            guid: item.guid.clone(),
            title: item.title.clone(),
            published_at: item.published.map(|t| t.timestamp_millis()),
            content_source: Some(content.source.as_str()),
            emitted: i >= skip,
            fingerprint,
            new_sinks: new_sinks.clone(),
            duplicate_sinks: duplicate_sinks.clone(),
        });
        kept.push(Rendered { id, item, content });
    }
    let created: DateTime<Utc> = Utc::now();
    let render: Render = Box::new(move |index, kind, duplicate_of| {
        let Some(r) = kept.get(index) else {
            return String::new();
        };
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
