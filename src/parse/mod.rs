//! Feed bytes to items with their identity (RSS 0.9x/1.0/2.0, Atom, JSON Feed); pure, no IO.

mod charset;
mod date;
mod feed;
mod tree;

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use feed_rs::model::Link;
use sha2::{Digest, Sha256};
use url::Url;

use crate::dedup::canonical_url;
use crate::extract::html_to_text;
use crate::model::{Enclosure, FeedItem, ItemKey, ParsedFeed};

pub use charset::{Charset, Decoded, Rule as CharsetRule, decode as decode_charset};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ParseError {
    #[error("empty body: the server sent no feed")]
    Empty,
    #[error("the answer is an HTML page, not a feed{}", discovered_hint(.0))]
    Html(Vec<String>),
    #[error("not a valid feed: {0}")]
    Invalid(String),
}

fn discovered_hint(found: &[String]) -> String {
    if found.is_empty() {
        String::new()
    } else {
        format!(" (the page links to: {})", found.join(", "))
    }
}

/// How items of a feed are identified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// The GUID/id when present, else the canonical link, else a hash (DESIGN §4).
    Guid,
    /// The canonical link, else a hash: for feeds whose GUIDs are unusable.
    Link,
}

/// What the HTTP answer said about the body; a file read from disk has neither.
#[derive(Debug, Clone, Copy, Default)]
pub struct Headers<'a> {
    /// `Content-Type`, whose `charset` decides the encoding of XML and text types.
    pub content_type: Option<&'a str>,
    /// `Content-Location`: the base of relative links when the document gives none.
    pub content_location: Option<&'a str>,
}

/// Parses a feed document fetched from `feed_url` (relative links are resolved against it).
pub fn parse_feed(
    bytes: &[u8],
    feed_url: &Url,
    identity: Identity,
) -> Result<ParsedFeed, ParseError> {
    parse_response(bytes, Headers::default(), feed_url, identity)
}

/// Parses a feed document with the headers it was served with.
pub fn parse_response(
    bytes: &[u8],
    headers: Headers<'_>,
    feed_url: &Url,
    identity: Identity,
) -> Result<ParsedFeed, ParseError> {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace() && *b != 0xEF && *b != 0xBB && *b != 0xBF);
    let Some(start) = start else {
        return Err(ParseError::Empty);
    };
    if bytes[start] == b'{' {
        return json_feed(bytes, feed_url, identity);
    }
    let decoded = charset::decode(bytes, headers.content_type);
    let text = decoded.text.trim_start_matches('\u{feff}');
    if text.trim().is_empty() {
        return Err(ParseError::Empty);
    }
    if looks_like_html(text.trim_start().as_bytes()) {
        return Err(ParseError::Html(discover_feeds(text.as_bytes(), feed_url)));
    }
    let base = headers
        .content_location
        .and_then(|l| feed_url.join(l.trim()).ok())
        .unwrap_or_else(|| feed_url.clone());
    let doc = tree::read(text, base);
    let raw = feed::read(&doc).map_err(ParseError::Invalid)?;
    let entries: Vec<Entry> = raw.entries.into_iter().map(Entry::from_raw).collect();
    let ttl = raw
        .ttl
        .filter(|m| *m > 0)
        .map(|m| Duration::from_secs(u64::from(m) * 60));
    let update_hint = ttl.into_iter().chain(syndication_period(text)).max();
    let title = raw.title.as_ref().map(plain_text).filter(|t| !t.is_empty());
    Ok(finish(entries, title, update_hint, feed_url, identity))
}

/// JSON Feed 1.0/1.1, which feed-rs reads right.
fn json_feed(bytes: &[u8], feed_url: &Url, identity: Identity) -> Result<ParsedFeed, ParseError> {
    let feed = parse_guarded(feed_url, bytes).map_err(ParseError::Invalid)?;
    let title = feed
        .title
        .as_ref()
        .map(|t| html_to_text(&t.content))
        .filter(|t| !t.is_empty());
    let entries: Vec<Entry> = feed.entries.iter().map(Entry::from_feed_rs).collect();
    Ok(finish(entries, title, None, feed_url, identity))
}

/// Identities, duplicates within the document, order.
fn finish(
    entries: Vec<Entry>,
    title: Option<String>,
    update_hint: Option<Duration>,
    feed_url: &Url,
    identity: Identity,
) -> ParsedFeed {
    // One GUID on entries with different links (a feed that gives every entry the same id)
    // makes GUIDs useless for the whole document.
    let identity = if identity == Identity::Guid && guids_are_shared(&entries) {
        Identity::Link
    } else {
        identity
    };
    let mut items: Vec<FeedItem> = Vec::with_capacity(entries.len());
    let mut seen: HashSet<ItemKey> = HashSet::with_capacity(entries.len());
    for entry in entries {
        let item = to_item(entry, feed_url, identity);
        // A feed listing one identity twice is one item.
        if seen.insert(item.key.clone()) {
            items.push(item);
        }
    }
    order_oldest_first(&mut items);
    ParsedFeed {
        title,
        items,
        update_hint,
    }
}

/// The RSS 1.0 syndication module's period: `sy:updatePeriod` divided by
/// `sy:updateFrequency` (feed-rs does not read them).
fn syndication_period(text: &str) -> Option<Duration> {
    let mut cut = text.len().min(16 * 1024);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let head = &text[..cut];
    let text_of = |tag: &str| -> Option<String> {
        let start = head.find(&format!("<sy:{tag}>"))? + tag.len() + 5;
        let end = head[start..].find('<')? + start;
        Some(head[start..end].trim().to_ascii_lowercase())
    };
    let hours = match text_of("updatePeriod")?.as_str() {
        "hourly" => 1,
        "daily" => 24,
        "weekly" => 24 * 7,
        "monthly" => 24 * 30,
        "yearly" => 24 * 365,
        _ => return None,
    };
    let frequency: u64 = text_of("updateFrequency")
        .and_then(|f| f.parse().ok())
        .filter(|f| *f > 0)
        .unwrap_or(1);
    Some(Duration::from_secs(hours * 3600 / frequency))
}

/// feed-rs on a parser of its own, with its panics turned into errors: a parser that failed
/// once keeps broken state and trips an assertion if used again (found by
/// `tests/parse_properties.rs`), so each attempt builds a new one, dropped after.
fn parse_guarded(feed_url: &Url, bytes: &[u8]) -> Result<feed_rs::model::Feed, String> {
    let parser = feed_rs::parser::Builder::new()
        .base_uri(Some(feed_url.as_str()))
        // An empty id marks an entry without one; identity falls back to link or hash.
        .id_generator(|_, _, _| String::new())
        .build();
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| parser.parse(bytes))) {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err("the feed parser failed on this document".to_string()),
    }
}

fn looks_like_html(bytes: &[u8]) -> bool {
    let head: Vec<u8> = bytes.iter().take(512).map(u8::to_ascii_lowercase).collect();
    let head = String::from_utf8_lossy(&head);
    let head = head.trim_start();
    head.starts_with("<!doctype html")
        || head.starts_with("<html")
        || (head.starts_with("<!--") && head.contains("<html"))
}

/// Feed URLs a page advertises with `<link rel="alternate" type="application/rss+xml">` & co.
pub fn discover_feeds(html: &[u8], base: &Url) -> Vec<String> {
    let text = String::from_utf8_lossy(&html[..html.len().min(256 * 1024)]);
    let doc = scraper::Html::parse_document(&text);
    let Ok(sel) = scraper::Selector::parse("link[rel~=alternate][href]") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for link in doc.select(&sel) {
        let kind = link.value().attr("type").unwrap_or("").to_ascii_lowercase();
        if !(kind.contains("rss") || kind.contains("atom") || kind.contains("feed+json")) {
            continue;
        }
        if let Some(url) = link.value().attr("href").and_then(|h| base.join(h).ok()) {
            let url = url.to_string();
            if !out.contains(&url) {
                out.push(url);
            }
        }
    }
    out
}

/// One entry, whichever reader produced it: texts already plain, links absolute.
struct Entry {
    id: Option<String>,
    link: Option<Url>,
    title: Option<String>,
    summary: Option<String>,
    content_html: Option<String>,
    authors: Vec<String>,
    published: Option<DateTime<Utc>>,
    updated: Option<DateTime<Utc>>,
    categories: Vec<String>,
    enclosures: Vec<Enclosure>,
    image: Option<String>,
}

impl Entry {
    fn from_raw(raw: feed::RawEntry) -> Entry {
        let content_html = raw
            .content
            .as_ref()
            .map(feed::as_html)
            .filter(|b| !b.trim().is_empty());
        let summary = raw
            .summary
            .as_ref()
            .map(plain_text)
            .filter(|s| !s.is_empty())
            .or_else(|| {
                content_html
                    .as_deref()
                    .map(html_to_text)
                    .filter(|s| !s.is_empty())
            });
        Entry {
            id: raw.id,
            link: raw.link,
            title: raw.title.as_ref().map(plain_text).filter(|t| !t.is_empty()),
            summary,
            content_html,
            authors: raw.authors,
            published: raw.published.or(raw.updated),
            updated: raw.updated,
            categories: raw.categories,
            enclosures: raw.enclosures,
            image: raw.image,
        }
    }

    fn from_feed_rs(entry: &feed_rs::model::Entry) -> Entry {
        let content_html = entry
            .content
            .as_ref()
            .and_then(|c| c.body.clone())
            .filter(|b| !b.trim().is_empty());
        let summary = entry
            .summary
            .as_ref()
            .map(|t| html_to_text(&t.content))
            .filter(|s| !s.is_empty())
            .or_else(|| {
                content_html
                    .as_deref()
                    .map(html_to_text)
                    .filter(|s| !s.is_empty())
            });
        let image = entry
            .media
            .iter()
            .flat_map(|m| m.thumbnails.iter().map(|t| t.image.uri.clone()))
            .next();
        Entry {
            id: Some(entry.id.trim().to_string()).filter(|s| !s.is_empty()),
            link: pick_link(&entry.links).and_then(|href| Url::parse(href.trim()).ok()),
            title: entry
                .title
                .as_ref()
                .map(|t| html_to_text(&t.content))
                .filter(|t| !t.is_empty()),
            summary,
            content_html,
            authors: entry
                .authors
                .iter()
                .filter_map(|p| p.name.as_deref().map(str::trim))
                .filter(|n| !n.is_empty())
                .map(str::to_string)
                .collect(),
            published: entry.published.or(entry.updated),
            updated: entry.updated,
            categories: entry
                .categories
                .iter()
                .map(|c| c.term.trim().to_string())
                .filter(|c| !c.is_empty())
                .collect(),
            // JSON Feed attachments arrive as links with a media type.
            enclosures: entry
                .links
                .iter()
                .filter(|l| l.media_type.is_some())
                .map(|l| Enclosure {
                    url: l.href.clone(),
                    mime_type: l.media_type.clone(),
                    length: l.length,
                    duration: None,
                })
                .collect(),
            image,
        }
    }
}

fn guids_are_shared(entries: &[Entry]) -> bool {
    let mut links_by_guid: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    for e in entries {
        let (Some(guid), Some(link)) = (e.id.as_deref(), e.link.as_ref()) else {
            continue;
        };
        if let Some(previous) = links_by_guid.insert(guid, link.as_str())
            && previous != link.as_str()
        {
            return true;
        }
    }
    false
}

fn to_item(entry: Entry, feed_url: &Url, identity: Identity) -> FeedItem {
    let _ = feed_url;
    let url = entry.link.as_ref().map(canonical_url);
    let author = if entry.authors.is_empty() {
        None
    } else {
        Some(entry.authors.join(", "))
    };
    let key = if let (Some(g), Identity::Guid) = (&entry.id, identity) {
        ItemKey(format!("guid:{g}"))
    } else if let Some(u) = &url {
        ItemKey(format!("url:{u}"))
    } else {
        let mut h = Sha256::new();
        h.update(entry.title.as_deref().unwrap_or("").as_bytes());
        h.update([0]);
        h.update(entry.summary.as_deref().unwrap_or("").as_bytes());
        let digest = h.finalize();
        let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        ItemKey(format!("hash:{hex}"))
    };
    FeedItem {
        key,
        guid: entry.id,
        link: entry.link,
        url,
        title: entry.title,
        author,
        published: entry.published,
        updated: entry.updated,
        summary: entry.summary,
        content_html: entry.content_html,
        categories: entry.categories,
        image: entry.image,
        enclosures: entry.enclosures,
    }
}

/// The entry's own page: an `alternate` (or unlabelled) link, else the first link.
fn pick_link(links: &[Link]) -> Option<&str> {
    links
        .iter()
        .filter(|l| l.media_type.is_none())
        .find(|l| l.rel.as_deref().is_none_or(|r| r == "alternate"))
        .or_else(|| links.iter().find(|l| l.media_type.is_none()))
        .map(|l| l.href.as_str())
        .filter(|h| !h.trim().is_empty())
}

/// A feed text as plain text: markup dropped and entities decoded when it is HTML,
/// whitespace folded either way.
fn plain_text(t: &feed::TextValue) -> String {
    if t.html {
        let text = html_to_text(&t.value);
        // Text that only looked like markup (`<!DOCTYPE` alone, `a <b` unclosed) is text.
        if text.is_empty() && !t.value.contains('>') {
            return t.value.split_whitespace().collect::<Vec<_>>().join(" ");
        }
        text
    } else {
        t.value.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

/// Publication order: by date when every entry has one, else the reverse of the feed's own
/// order (feeds list newest first).
fn order_oldest_first(items: &mut [FeedItem]) {
    if items.iter().all(|i| i.published.is_some()) {
        // Stable: same-date entries keep the feed's order reversed.
        items.reverse();
        items.sort_by_key(|i| i.published);
    } else {
        items.reverse();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_url() -> Url {
        Url::parse("https://example.com/feeds/rss.xml").expect("valid")
    }

    #[test]
    fn identity_prefers_guid_then_link_then_hash() {
        let xml = br#"<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>
            <item><guid>abc</guid><link>/a?utm_source=x</link><title>A</title></item>
            <item><link>/b?utm_medium=y#frag</link><title>B</title></item>
            <item><title>C</title><description>&lt;p&gt;Hello &lt;b&gt;world&lt;/b&gt;&lt;/p&gt;</description></item>
            </channel></rss>"#;
        let feed = parse_feed(xml, &feed_url(), Identity::Guid).expect("parses");
        let keys: Vec<&str> = feed.items.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(
            keys[0].len(),
            "hash:".len() + 32,
            "undated entries come out in reverse feed order"
        );
        assert_eq!(keys[1], "url:https://example.com/b");
        assert_eq!(keys[2], "guid:abc");
        assert_eq!(
            feed.items[2].link.as_ref().map(Url::as_str),
            Some("https://example.com/a?utm_source=x")
        );
        assert_eq!(feed.items[0].summary.as_deref(), Some("Hello world"));
    }

    #[test]
    fn a_guid_shared_by_different_links_falls_back_to_links() {
        let xml = br#"<rss version="2.0"><channel><title>T</title>
            <item><guid>same</guid><link>/a</link></item>
            <item><guid>same</guid><link>/b</link></item>
            </channel></rss>"#;
        let feed = parse_feed(xml, &feed_url(), Identity::Guid).expect("parses");
        let keys: Vec<&str> = feed.items.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(
            keys,
            vec!["url:https://example.com/b", "url:https://example.com/a"]
        );
        let one = br#"<rss version="2.0"><channel><title>T</title><item><guid>g</guid><link>/a</link></item></channel></rss>"#;
        let feed = parse_feed(one, &feed_url(), Identity::Link).expect("parses");
        assert_eq!(feed.items[0].key.as_str(), "url:https://example.com/a");
    }

    #[test]
    fn a_feed_lying_about_its_charset_is_read_in_the_one_it_uses() {
        let mut xml =
            b"<?xml version=\"1.0\" encoding=\"utf-8\"?><rss version=\"2.0\"><channel><title>Caf"
                .to_vec();
        xml.push(0xE9);
        xml.extend_from_slice(b"</title><item><guid>c</guid><title>Cr\xE8me br\xFBl\xE9e</title></item></channel></rss>");
        let feed = parse_feed(&xml, &feed_url(), Identity::Guid).expect("parses once re-decoded");
        assert_eq!(feed.title.as_deref(), Some("Café"));
        assert_eq!(feed.items[0].title.as_deref(), Some("Crème brûlée"));
    }

    #[test]
    fn html_instead_of_feed_names_the_advertised_feed() {
        let html = br#"<!DOCTYPE html><html><head><link rel="alternate" type="application/rss+xml" href="/rss"></head><body>hi</body></html>"#;
        let err =
            parse_feed(html, &feed_url(), Identity::Guid).expect_err("an HTML page is not a feed");
        assert_eq!(
            err.to_string(),
            "the answer is an HTML page, not a feed (the page links to: https://example.com/rss)"
        );
        assert_eq!(
            parse_feed(b"  ", &feed_url(), Identity::Guid),
            Err(ParseError::Empty)
        );
    }
}
