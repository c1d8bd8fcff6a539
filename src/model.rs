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
    /// The page had no main content the rules could find: its text without menus, or its
    /// description.
    ArticleFallback,
    Feed,
}

impl ContentSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ContentSource::Article => "article",
            ContentSource::ArticleFallback => "article_fallback",
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
    /// The kind of page the article came from; none for the feed's own content.
    pub page_type: Option<crate::extract::PageType>,
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

/// A point in time: milliseconds since the Unix epoch, UTC. Stored as such; everything
/// else (durations between, RFC 3339 for people) goes through its methods.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// Later than any real time: when a feed that answered 410 Gone is polled next.
    pub const NEVER: Timestamp = Timestamp(i64::MAX);

    pub fn now() -> Timestamp {
        Timestamp(Utc::now().timestamp_millis())
    }

    pub const fn from_millis(ms: i64) -> Timestamp {
        Timestamp(ms)
    }

    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// `self` moved forward by `d` (saturating).
    pub fn after(self, d: std::time::Duration) -> Timestamp {
        Timestamp(
            self.0
                .saturating_add(d.as_millis().min(i64::MAX as u128) as i64),
        )
    }

    /// `self` moved back by `d` (saturating).
    pub fn before(self, d: std::time::Duration) -> Timestamp {
        Timestamp(
            self.0
                .saturating_sub(d.as_millis().min(i64::MAX as u128) as i64),
        )
    }

    /// How long after `earlier` this is; zero when it is not after it.
    pub fn since(self, earlier: Timestamp) -> std::time::Duration {
        std::time::Duration::from_millis(self.0.saturating_sub(earlier.0).max(0) as u64)
    }

    /// How long from `self` until `later`; zero when `later` is not later.
    pub fn until(self, later: Timestamp) -> std::time::Duration {
        later.since(self)
    }

    pub fn from_datetime(t: DateTime<Utc>) -> Timestamp {
        Timestamp(t.timestamp_millis())
    }

    pub fn to_datetime(self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp_millis(self.0)
    }

    /// RFC 3339 in UTC, to the second (`2026-11-27T21:30:00Z`).
    pub fn to_rfc3339(self) -> Option<String> {
        self.to_datetime()
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    }
}

#[cfg(test)]
mod timestamp_tests {
    use super::Timestamp;
    use std::time::Duration;

    #[test]
    fn arithmetic_saturates_and_never_goes_negative() {
        let t = Timestamp::from_millis(10_000);
        assert_eq!(t.after(Duration::from_secs(5)).as_millis(), 15_000);
        assert_eq!(t.since(t.after(Duration::from_secs(1))), Duration::ZERO);
        assert_eq!(
            Timestamp::NEVER.after(Duration::from_secs(1)),
            Timestamp::NEVER
        );
        assert_eq!(
            Timestamp::from_millis(0).to_rfc3339().as_deref(),
            Some("1970-01-01T00:00:00Z")
        );
    }
}
