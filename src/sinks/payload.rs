//! The event payload (DESIGN §5): its own wire type, built by hand from the domain types.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::config;
use crate::model::{Content, EventType, FeedItem};

#[derive(Serialize)]
struct Payload<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    timestamp: String,
    feed: FeedPart<'a>,
    item: ItemPart<'a>,
    duplicate_of: Option<&'a str>,
}

#[derive(Serialize)]
struct FeedPart<'a> {
    name: &'a str,
    url: &'a str,
    title: Option<&'a str>,
    tags: &'a [String],
}

#[derive(Serialize)]
struct ItemPart<'a> {
    url: Option<&'a str>,
    link: Option<&'a str>,
    guid: Option<&'a str>,
    title: Option<&'a str>,
    author: Option<&'a str>,
    published: Option<String>,
    updated: Option<String>,
    summary: Option<&'a str>,
    content_text: &'a str,
    content_html: &'a str,
    content_source: &'static str,
    content_error: Option<&'a str>,
    page_type: Option<&'static str>,
    language: Option<&'a str>,
    word_count: usize,
    image: Option<&'a str>,
    categories: &'a [String],
    enclosures: Vec<EnclosurePart<'a>>,
}

#[derive(Serialize)]
struct EnclosurePart<'a> {
    url: &'a str,
    #[serde(rename = "type")]
    mime_type: Option<&'a str>,
    length: Option<u64>,
    /// Seconds of play time, when the feed says (`itunes:duration`, Media RSS).
    duration: Option<u64>,
}

/// Everything one event's body is made of.
pub struct EventInput<'a> {
    pub kind: EventType,
    /// The stable item id.
    pub item_id: &'a str,
    pub created: DateTime<Utc>,
    pub feed: &'a config::Feed,
    pub feed_title: Option<&'a str>,
    pub item: &'a FeedItem,
    pub content: &'a Content,
    pub duplicate_of: Option<&'a str>,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The JSON body of one event, fixed when the event is created.
pub fn render(input: &EventInput<'_>) -> String {
    let item = input.item;
    let content = input.content;
    let payload = Payload {
        kind: input.kind.as_str(),
        id: input.item_id,
        timestamp: rfc3339(input.created),
        feed: FeedPart {
            name: &input.feed.name,
            url: input.feed.url.as_str(),
            title: input.feed_title,
            tags: &input.feed.tags,
        },
        item: item_part(item, content),
        duplicate_of: input.duplicate_of,
    };
    // Serializing plain strings and numbers cannot fail; fall back to an empty object anyway.
    serde_json::to_string(&payload).expect("the payload is plain JSON: strings, numbers, lists")
}

fn item_part<'a>(item: &'a FeedItem, content: &'a Content) -> ItemPart<'a> {
    ItemPart {
        url: item.url.as_ref().map(|u| u.as_str()),
        link: item.link.as_ref().map(|u| u.as_str()),
        guid: item.guid.as_deref(),
        title: item.title.as_deref(),
        author: content.author.as_deref().or(item.author.as_deref()),
        published: item.published.map(rfc3339),
        updated: item.updated.map(rfc3339),
        summary: item.summary.as_deref(),
        content_text: &content.text,
        content_html: &content.html,
        content_source: content.source.as_str(),
        content_error: content.error.as_deref(),
        page_type: content.page_type.map(|t| t.as_str()),
        language: content.language.as_deref(),
        word_count: content.word_count,
        image: content.image.as_deref().or(item.image.as_deref()),
        categories: &item.categories,
        enclosures: item
            .enclosures
            .iter()
            .map(|e| EnclosurePart {
                url: &e.url,
                mime_type: e.mime_type.as_deref(),
                length: e.length,
                duration: e.duration,
            })
            .collect(),
    }
}

/// The `item` part of the payload alone, as JSON: what `feedwire preview` shows.
pub fn item_json(item: &FeedItem, content: &Content) -> serde_json::Value {
    serde_json::to_value(item_part(item, content)).expect("the item part is plain JSON")
}

#[derive(Serialize)]
struct FeedEventPayload<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    timestamp: String,
    feed: FeedPart<'a>,
    /// The last error (for `feed.failing`).
    error: Option<&'a str>,
    http_status: Option<u16>,
    /// Failed polls in a row: so far (`feed.failing`), or before the recovery.
    failed_polls: u32,
}

/// Everything a feed event's body is made of.
pub struct FeedEventInput<'a> {
    pub kind: EventType,
    pub id: &'a str,
    pub created: DateTime<Utc>,
    pub feed: &'a config::Feed,
    /// Where the feed is polled (its configured URL, or where it moved).
    pub url: &'a str,
    pub error: Option<&'a str>,
    pub http_status: Option<u16>,
    pub failed_polls: u32,
}

/// The JSON body of a `feed.failing` or `feed.recovered` event.
pub fn render_feed_event(input: &FeedEventInput<'_>) -> String {
    let payload = FeedEventPayload {
        kind: input.kind.as_str(),
        id: input.id,
        timestamp: rfc3339(input.created),
        feed: FeedPart {
            name: &input.feed.name,
            url: input.url,
            title: None,
            tags: &input.feed.tags,
        },
        error: input.error,
        http_status: input.http_status,
        failed_polls: input.failed_polls,
    };
    serde_json::to_string(&payload).expect("the payload is plain JSON: strings, numbers, lists")
}

/// What chat presets read back from an event's body: the parts a message is made of.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(default)]
pub struct View {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    pub feed: FeedView,
    /// Absent in feed events.
    pub item: Option<ItemView>,
    /// The last error, in `feed.failing` events.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(default)]
pub struct FeedView {
    pub name: String,
    pub url: String,
    pub title: Option<String>,
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(default)]
pub struct ItemView {
    pub url: Option<String>,
    pub link: Option<String>,
    pub title: Option<String>,
    pub author: Option<String>,
    pub published: Option<String>,
    pub summary: Option<String>,
    pub content_text: Option<String>,
    pub image: Option<String>,
}

/// Reads an event body back (it was rendered by [`render`] or [`render_feed_event`]).
pub fn read(body: &str) -> Result<View, serde_json::Error> {
    serde_json::from_str(body)
}

/// The clean text of an item's event body, for showing its first lines: the cleaned
/// article, else the feed's summary. `None` for a feed event or a body without text.
pub fn item_text(body: &str) -> Option<String> {
    let item = read(body).ok()?.item?;
    item.content_text
        .filter(|t| !t.trim().is_empty())
        .or(item.summary)
}

/// What a queue sink needs from a body to name its subject or routing key.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// The event type, e.g. `item.new`.
    pub kind: String,
    /// The feed's name.
    pub feed: String,
}

/// Reads the event type and feed name back from a body this module rendered; `None` for a
/// body of another shape (which the store never holds).
pub fn route_of(body: &str) -> Option<Route> {
    #[derive(serde::Deserialize)]
    struct Head {
        #[serde(rename = "type")]
        kind: String,
        feed: FeedHead,
    }
    #[derive(serde::Deserialize)]
    struct FeedHead {
        name: String,
    }
    let head: Head = serde_json::from_str(body).ok()?;
    Some(Route {
        kind: head.kind,
        feed: head.feed.name,
    })
}
