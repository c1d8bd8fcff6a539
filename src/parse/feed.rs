//! The element tree read as a feed: RSS 0.9x/1.0/2.0 (with or without a `version`), RDF,
//! CDF, Atom 0.3 and 1.0, and the Dublin Core, content, iTunes and Media RSS extensions.
//! One reader for all of them, because real feeds mix them freely.

use base64::Engine;
use chrono::{DateTime, Utc};
use url::Url;

use super::date;
use super::tree::{Doc, Ns, escape_into};
use crate::model::Enclosure;

/// A text as the feed gave it: markup (HTML) or plain text.
#[derive(Debug, Clone, PartialEq)]
pub struct TextValue {
    pub value: String,
    pub html: bool,
}

#[derive(Debug, Default)]
pub struct RawEntry {
    pub id: Option<String>,
    pub title: Option<TextValue>,
    pub link: Option<Url>,
    pub summary: Option<TextValue>,
    pub content: Option<TextValue>,
    pub authors: Vec<String>,
    pub published: Option<DateTime<Utc>>,
    pub updated: Option<DateTime<Utc>>,
    pub categories: Vec<String>,
    pub enclosures: Vec<Enclosure>,
    pub image: Option<String>,
}

#[derive(Debug, Default)]
pub struct RawFeed {
    pub title: Option<TextValue>,
    /// RSS `<ttl>`, minutes.
    pub ttl: Option<u32>,
    pub entries: Vec<RawEntry>,
}

/// Root elements that make a document a feed even when it lists no entries.
const FEED_ROOTS: &[&str] = &["rss", "rdf", "feed", "channel", "scriptingnews"];

/// Reads the tree as a feed; `Err` names the root element when it is not one.
pub fn read(doc: &Doc) -> Result<RawFeed, String> {
    let Some(root) = doc.root else {
        return Err("no feed element in the document".to_string());
    };
    let mut entries = Vec::new();
    let mut channel = None;
    find_entries(doc, root, 0, &mut entries, &mut channel);
    let root_el = doc.el(root);
    if entries.is_empty() && !FEED_ROOTS.contains(&root_el.name.as_str()) {
        return Err(format!("the root element <{}> is not a feed", root_el.name));
    }
    let channel = channel.unwrap_or(root);
    let mut feed = RawFeed::default();
    for k in doc.kids(channel) {
        let el = doc.el(k);
        if el.ns != Ns::Core {
            continue;
        }
        match el.name.as_str() {
            "title" if feed.title.is_none() => feed.title = text_construct(doc, k, false),
            "ttl" => feed.ttl = doc.text(k).trim().parse().ok(),
            _ => {}
        }
    }
    feed.entries = entries.into_iter().map(|e| entry(doc, e)).collect();
    Ok(feed)
}

/// Depth-first search for `item`/`entry` elements, not looking inside one.
fn find_entries(
    doc: &Doc,
    i: usize,
    depth: usize,
    out: &mut Vec<usize>,
    channel: &mut Option<usize>,
) {
    let el = doc.el(i);
    if matches!(el.ns, Ns::Core | Ns::Rdf) {
        match el.name.as_str() {
            "item" | "entry" if depth > 0 => {
                out.push(i);
                return;
            }
            "channel" | "feed" if channel.is_none() => *channel = Some(i),
            _ => {}
        }
    }
    // Entries sit near the top; text constructs and extensions need no search.
    if depth > 3 || !matches!(el.ns, Ns::Core | Ns::Rdf) {
        return;
    }
    for k in doc.kids(i) {
        find_entries(doc, k, depth + 1, out, channel);
    }
}

fn entry(doc: &Doc, e: usize) -> RawEntry {
    let mut r = RawEntry::default();
    let mut alternate: Option<Url> = None;
    let mut other_link: Option<Url> = None;
    let mut rss_link: Option<Url> = None;
    let mut permalink: Option<Url> = None;
    let mut dc_date = None;
    let mut media_enclosures = Vec::new();
    let mut media_image: Option<String> = None;
    let mut duration = None;
    let mut dc_title = None;
    let mut dc_description = None;
    let mut itunes_summary = None;
    // CDF: the item's address is an attribute of the item.
    if let Some(href) = doc.el(e).attr("href") {
        rss_link = resolve(doc, e, href);
    }
    for k in doc.kids(e) {
        let el = doc.el(k);
        match (el.ns, el.name.as_str()) {
            (Ns::Core, "title") if r.title.is_none() => r.title = text_construct(doc, k, false),
            (Ns::Core, "id" | "guid") if r.id.is_none() => {
                let id = doc.text(k).trim().to_string();
                if !id.is_empty() {
                    let is_permalink = el
                        .attr("ispermalink")
                        .is_none_or(|v| !v.trim().eq_ignore_ascii_case("false"));
                    if el.name == "guid" && is_permalink && looks_like_url(&id) {
                        permalink = resolve(doc, k, &id);
                    }
                    r.id = Some(id);
                }
            }
            (Ns::Core, "link") => match el.attr("href") {
                Some(href) if !href.trim().is_empty() => {
                    let rel = el.attr("rel").map(|r| r.trim().to_ascii_lowercase());
                    let url = resolve(doc, k, href);
                    match rel.as_deref() {
                        None | Some("alternate") => {
                            if alternate.is_none() {
                                alternate = url;
                            }
                        }
                        Some("enclosure") => {
                            if let Some(url) = url {
                                r.enclosures.push(Enclosure {
                                    url: url.to_string(),
                                    mime_type: attr_text(el.attr("type")),
                                    length: el.attr("length").and_then(|l| l.trim().parse().ok()),
                                    duration: None,
                                });
                            }
                        }
                        Some(_) => {
                            if other_link.is_none() {
                                other_link = url;
                            }
                        }
                    }
                }
                Some(_) => {}
                None => {
                    let text = doc.text(k);
                    if rss_link.is_none() && !text.trim().is_empty() {
                        rss_link = resolve(doc, k, text.trim());
                    }
                }
            },
            (Ns::Core, "description" | "summary" | "abstract" | "tagline")
                if r.summary.is_none() =>
            {
                r.summary = text_construct(doc, k, el.name == "description")
            }
            (Ns::Core, "content" | "body" | "fullitem")
            | (Ns::Content, "encoded")
            | (Ns::Xhtml, "body")
                if r.content.is_none() =>
            {
                r.content = if el.name == "body" && doc.has_element_children(k) {
                    Some(TextValue {
                        value: doc.inner_markup(k),
                        html: true,
                    })
                } else {
                    text_construct(doc, k, el.ns == Ns::Content || el.name != "content")
                };
            }
            (Ns::Core, "author" | "creator")
            | (Ns::Dc, "creator" | "author" | "contributor")
            | (Ns::Itunes, "author") => {
                if let Some(a) = person(doc, k)
                    && !r.authors.contains(&a)
                {
                    r.authors.push(a);
                }
            }
            (Ns::Core, "published" | "issued" | "created" | "pubdate")
            | (Ns::Dcterms, "issued" | "created")
                if r.published.is_none() =>
            {
                r.published = date::parse(&doc.text(k));
            }
            (Ns::Core, "updated" | "modified") | (Ns::Dcterms, "modified")
                if r.updated.is_none() =>
            {
                r.updated = date::parse(&doc.text(k));
            }
            (Ns::Dc, "date") if dc_date.is_none() => dc_date = date::parse(&doc.text(k)),
            (Ns::Dc, "title") if dc_title.is_none() => dc_title = text_construct(doc, k, false),
            (Ns::Dc, "description") if dc_description.is_none() => {
                dc_description = text_construct(doc, k, true)
            }
            (Ns::Itunes, "summary" | "subtitle") if itunes_summary.is_none() => {
                itunes_summary = text_construct(doc, k, false)
            }
            (Ns::Core, "category") => {
                let term = el
                    .attr("term")
                    .map(str::to_string)
                    .unwrap_or_else(|| doc.text(k));
                push_category(&mut r.categories, &term);
            }
            (Ns::Dc, "subject") | (Ns::Media, "category") | (Ns::Itunes, "keywords") => {
                let text = doc.text(k);
                if el.name == "keywords" {
                    for word in text.split(',') {
                        push_category(&mut r.categories, word);
                    }
                } else {
                    push_category(&mut r.categories, &text);
                }
            }
            (Ns::Itunes, "category") => itunes_categories(doc, k, &mut r.categories),
            (Ns::Core, "enclosure") => {
                if let Some(url) = el.attr("url").and_then(|u| resolve(doc, k, u)) {
                    r.enclosures.push(Enclosure {
                        url: url.to_string(),
                        mime_type: attr_text(el.attr("type")),
                        length: el.attr("length").and_then(|l| l.trim().parse().ok()),
                        duration: None,
                    });
                }
            }
            (Ns::Itunes, "duration") => duration = parse_duration(&doc.text(k)),
            (Ns::Itunes, "image") if media_image.is_none() => {
                media_image = el
                    .attr("href")
                    .or(el.attr("url"))
                    .and_then(|u| resolve(doc, k, u))
                    .map(|u| u.to_string());
            }
            (Ns::Media, "content" | "group" | "thumbnail") => {
                media(doc, k, &mut media_enclosures, &mut media_image)
            }
            _ => {}
        }
    }
    r.link = alternate.or(rss_link).or(permalink).or(other_link);
    if r.published.is_none() {
        r.published = dc_date;
    } else if r.updated.is_none() {
        r.updated = dc_date;
    }
    r.title = r.title.or(dc_title);
    r.summary = r.summary.or(dc_description).or(itunes_summary);
    if r.enclosures.is_empty() {
        r.enclosures = media_enclosures
            .into_iter()
            .filter(|(_, medium_image)| !medium_image)
            .map(|(e, _)| e)
            .collect();
    }
    if let Some(first) = r.enclosures.first_mut()
        && first.duration.is_none()
    {
        first.duration = duration;
    }
    r.image = media_image;
    r
}

fn attr_text(v: Option<&str>) -> Option<String> {
    v.map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

fn push_category(out: &mut Vec<String>, term: &str) {
    let term = term.split_whitespace().collect::<Vec<_>>().join(" ");
    if !term.is_empty() && !out.contains(&term) {
        out.push(term);
    }
}

/// `<itunes:category text="Technology"><itunes:category text="Gadgets"/>`: both terms.
fn itunes_categories(doc: &Doc, i: usize, out: &mut Vec<String>) {
    if let Some(text) = doc.el(i).attr("text") {
        push_category(out, text);
    }
    for k in doc.kids(i) {
        if doc.el(k).is(Ns::Itunes, "category") {
            itunes_categories(doc, k, out);
        }
    }
}

/// Media RSS: `media:content` (in a `media:group` or not) as enclosures, with a flag for
/// images, and the first thumbnail or image as the entry's image.
fn media(doc: &Doc, i: usize, out: &mut Vec<(Enclosure, bool)>, image: &mut Option<String>) {
    let el = doc.el(i);
    match el.name.as_str() {
        "group" => {
            for k in doc.kids(i) {
                if doc.el(k).ns == Ns::Media {
                    media(doc, k, out, image);
                }
            }
        }
        "thumbnail" => {
            if image.is_none() {
                *image = el
                    .attr("url")
                    .and_then(|u| resolve(doc, i, u))
                    .map(|u| u.to_string());
            }
        }
        _ => {
            let Some(url) = el.attr("url").and_then(|u| resolve(doc, i, u)) else {
                return;
            };
            let mime_type = attr_text(el.attr("type"));
            let is_image = el.attr("medium") == Some("image")
                || mime_type
                    .as_deref()
                    .is_some_and(|t| t.starts_with("image/"));
            if is_image && image.is_none() {
                *image = Some(url.to_string());
            }
            out.push((
                Enclosure {
                    url: url.to_string(),
                    mime_type,
                    length: el.attr("filesize").and_then(|l| l.trim().parse().ok()),
                    duration: el
                        .attr("duration")
                        .and_then(|d| d.trim().parse::<f64>().ok())
                        .map(|d| d.max(0.0) as u64),
                },
                is_image,
            ));
            for k in doc.kids(i) {
                if doc.el(k).is(Ns::Media, "thumbnail") {
                    media(doc, k, out, image);
                }
            }
        }
    }
}

/// `1:02:03`, `62:03`, `3723`: seconds.
fn parse_duration(text: &str) -> Option<u64> {
    let mut total = 0u64;
    let parts: Vec<&str> = text.trim().split(':').collect();
    if parts.len() > 3 {
        return None;
    }
    for p in parts {
        let n: f64 = p.trim().parse().ok()?;
        total = total * 60 + n.max(0.0) as u64;
    }
    Some(total)
}

/// An author: an Atom person (`name`, else `email`), or the element's text
/// (`jo@example.com (Jo)` in RSS is kept as written).
fn person(doc: &Doc, i: usize) -> Option<String> {
    let mut name = None;
    let mut email = None;
    for k in doc.kids(i) {
        let el = doc.el(k);
        match el.name.as_str() {
            "name" if name.is_none() => name = Some(doc.text(k)),
            "email" if email.is_none() => email = Some(doc.text(k)),
            _ => {}
        }
    }
    let text = match (name, email) {
        (Some(n), _) if !n.trim().is_empty() => n,
        (_, Some(e)) if !e.trim().is_empty() => e,
        _ if doc.has_element_children(i) => return None,
        _ => doc.text(i),
    };
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    Some(text).filter(|t| !t.is_empty())
}

fn looks_like_url(s: &str) -> bool {
    let s = s.trim_start().to_ascii_lowercase();
    s.starts_with("http://") || s.starts_with("https://")
}

fn resolve(doc: &Doc, i: usize, href: &str) -> Option<Url> {
    doc.base(i).join(href.trim()).ok()
}

/// A text construct: Atom's `type` (`text`, `html`, `xhtml`, or a MIME type in Atom 0.3)
/// and Atom 0.3's `mode` (`xml`, `escaped`, `base64`); `html_default` for elements whose
/// escaped text is HTML by convention (RSS `description`, `content:encoded`).
fn text_construct(doc: &Doc, i: usize, html_default: bool) -> Option<TextValue> {
    let el = doc.el(i);
    if el.attr("src").is_some() && el.name == "content" {
        return None;
    }
    let kind = el.attr("type").map(|t| t.trim().to_ascii_lowercase());
    let mode = el.attr("mode").map(|m| m.trim().to_ascii_lowercase());
    let kind = kind.as_deref();
    let xhtml = matches!(kind, Some("xhtml" | "application/xhtml+xml"));
    let declared_html = matches!(kind, Some("html" | "text/html"));
    let declared_text = matches!(kind, Some("text" | "text/plain"));
    // Atom 1.0: any other MIME type is base64 (Atom 0.3 says so with `mode`).
    let binary = kind.is_some_and(|k| {
        k.contains('/')
            && !xhtml
            && !declared_html
            && !k.starts_with("text/")
            && !k.ends_with("xml")
    });
    if binary && mode.is_none() && el.name == "content" && !kind.is_some_and(is_texty) {
        // An image or other media as content: not text.
        return None;
    }
    let mode = if binary {
        Some("base64".to_string())
    } else {
        mode
    };
    if mode.as_deref() == Some("base64") {
        let raw: String = doc.text(i).split_whitespace().collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(raw.as_bytes())
            .ok()?;
        let value = String::from_utf8_lossy(&bytes).into_owned();
        return Some(TextValue {
            html: !declared_text,
            value,
        });
    }
    if xhtml || doc.has_element_children(i) {
        // Inline markup: written back out as HTML.
        return Some(TextValue {
            value: doc.inner_markup(i),
            html: true,
        });
    }
    let value = doc.text(i);
    let html = if declared_html || mode.as_deref() == Some("escaped") && !declared_text {
        true
    } else if declared_text {
        false
    } else {
        html_default || looks_like_markup(&value)
    };
    Some(TextValue { value, html })
}

/// MIME types whose base64 content is text worth reading.
fn is_texty(kind: &str) -> bool {
    kind == "application/octet-stream" || kind.starts_with("text/") || kind.ends_with("xml")
}

/// Text in an element without a type that a reader would take as HTML: a tag or an entity.
fn looks_like_markup(s: &str) -> bool {
    let b = s.as_bytes();
    b.windows(2)
        .any(|w| w[0] == b'<' && (w[1].is_ascii_alphabetic() || w[1] == b'/' || w[1] == b'!'))
        || (s.contains('&') && s.contains(';'))
}

/// HTML for a text value: plain text escaped.
pub fn as_html(t: &TextValue) -> String {
    if t.html {
        t.value.clone()
    } else {
        let mut out = String::with_capacity(t.value.len());
        escape_into(&t.value, false, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::tree;

    fn feed(xml: &str) -> RawFeed {
        let base = Url::parse("https://example.com/feed").expect("valid");
        read(&tree::read(xml, base)).expect("a feed")
    }

    #[test]
    fn atom_03_modes_are_read() {
        let f = feed(
            r#"<feed version="0.3" xmlns="http://purl.org/atom/ns#"><entry>
            <title type="text/html" mode="escaped">A &lt;b&gt;bold&lt;/b&gt;</title>
            <summary mode="base64">RXhhbXBsZSA8Yj5BdG9tPC9iPg==</summary>
            <issued>2004-01-01T19:48:21Z</issued><modified>2004-01-02T19:48:21Z</modified>
            <author><email>me@example.com</email></author></entry></feed>"#,
        );
        let e = &f.entries[0];
        assert_eq!(
            e.title,
            Some(TextValue {
                value: "A <b>bold</b>".into(),
                html: true
            })
        );
        assert_eq!(
            e.summary.as_ref().map(|s| s.value.as_str()),
            Some("Example <b>Atom</b>")
        );
        assert!(e.published.is_some() && e.updated > e.published);
        assert_eq!(e.authors, vec!["me@example.com"]);
    }

    #[test]
    fn podcasts_carry_enclosures_with_itunes_fallbacks() {
        let f = feed(
            r#"<rss xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd" xmlns:media="http://search.yahoo.com/mrss/"><channel><item>
            <enclosure url="/ep1.mp3" type="audio/mpeg" length="1234"/>
            <itunes:duration>1:02:03</itunes:duration><itunes:image href="/cover.jpg"/>
            <itunes:category text="Technology"><itunes:category text="Gadgets"/></itunes:category>
            </item><item><media:content url="https://cdn.example/v.mp4" type="video/mp4" duration="61"/>
            <media:thumbnail url="https://cdn.example/t.jpg"/></item></channel></rss>"#,
        );
        let one = &f.entries[0];
        assert_eq!(
            one.enclosures,
            vec![Enclosure {
                url: "https://example.com/ep1.mp3".into(),
                mime_type: Some("audio/mpeg".into()),
                length: Some(1234),
                duration: Some(3723),
            }]
        );
        assert_eq!(one.image.as_deref(), Some("https://example.com/cover.jpg"));
        assert_eq!(one.categories, vec!["Technology", "Gadgets"]);
        let two = &f.entries[1];
        assert_eq!(two.enclosures[0].duration, Some(61));
        assert_eq!(two.image.as_deref(), Some("https://cdn.example/t.jpg"));
    }

    #[test]
    fn a_document_that_is_not_a_feed_says_what_it_is() {
        let base = Url::parse("https://example.com/feed").expect("valid");
        let err = read(&tree::read("<opml><body/></opml>", base)).expect_err("not a feed");
        assert_eq!(err, "the root element <opml> is not a feed");
    }
}
