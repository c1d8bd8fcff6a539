//! Plain domain types shared by the stages: no serde, no IO.

use chrono::{DateTime, Utc};
use url::Url;

/// One entry of a feed, as parsed, before anything is known about it.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedItem {
    /// Identity inside the feed (DESIGN §4): the guid, else the canonical link, else a hash.
    pub key: ItemKey,
    /// The entry's own id/GUID, when the feed gave one.
    pub guid: Option<String>,
    /// The entry's link, made absolute against the feed URL.
    pub link: Option<Url>,
    /// The canonical form of `link` (tracking parameters removed, …).
    pub url: Option<Url>,
    pub title: Option<String>,
    pub author: Option<String>,
    pub published: Option<DateTime<Utc>>,
    pub updated: Option<DateTime<Utc>>,
    /// The feed's summary as plain text.
    pub summary: Option<String>,
    /// The feed's full content (HTML) when it carries one.
    pub content_html: Option<String>,
    /// Category terms (Atom `term`, RSS `category`, `dc:subject`, iTunes categories).
    pub categories: Vec<String>,
    pub image: Option<String>,
    /// Media files attached to the entry (podcast episodes, videos).
    pub enclosures: Vec<Enclosure>,
}

/// A media file attached to an entry: RSS `<enclosure>`, Atom `rel="enclosure"`, or Media
/// RSS `<media:content>` when the standard ones are missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enclosure {
    pub url: String,
    pub mime_type: Option<String>,
    /// Size in bytes, as the feed says.
    pub length: Option<u64>,
    /// Play time in seconds (`itunes:duration`, `media:content duration`).
    pub duration: Option<u64>,
}

/// What makes an item unique inside its feed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemKey(pub String);

impl ItemKey {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A feed document after parsing.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedFeed {
    pub title: Option<String>,
    /// Entries, oldest first (publication order; feed order for undated entries).
    pub items: Vec<FeedItem>,
    /// How often the feed says it changes at most (RSS `<ttl>`, `sy:updatePeriod`).
    pub update_hint: Option<std::time::Duration>,
}

/// Where an item's `content_text` came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentSource {
    Article,
    Feed,
}

impl ContentSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ContentSource::Article => "article",
            ContentSource::Feed => "feed",
        }
    }
}

/// The content an item carries after article processing.
#[derive(Debug, Clone, PartialEq)]
pub struct Content {
    pub source: ContentSource,
    /// Why the article could not be used, when `source` is `Feed`.
    pub error: Option<String>,
    pub text: String,
    pub html: String,
    pub language: Option<String>,
    pub word_count: usize,
    pub image: Option<String>,
    pub author: Option<String>,
}

/// Event types a sink can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    ItemNew,
    ItemUpdated,
    ItemDuplicate,
    /// A feed failed several polls in a row.
    FeedFailing,
    /// A failing feed answers again.
    FeedRecovered,
}

impl EventType {
    pub const ALL: [EventType; 5] = [
        EventType::ItemNew,
        EventType::ItemUpdated,
        EventType::ItemDuplicate,
        EventType::FeedFailing,
        EventType::FeedRecovered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::ItemNew => "item.new",
            EventType::ItemUpdated => "item.updated",
            EventType::ItemDuplicate => "item.duplicate",
            EventType::FeedFailing => "feed.failing",
            EventType::FeedRecovered => "feed.recovered",
        }
    }

    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|e| e.as_str() == s)
    }
}
