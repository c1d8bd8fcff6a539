//! Page metadata: headline, byline, dates, language, site, canonical URL, lead image.
//!
//! Collected in one pass over the page's elements, from `<meta>` (Open Graph, Twitter,
//! Dublin Core, schema.org microdata), `<link>`, JSON-LD and a few plain elements.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use scraper::{Html, Node};
use serde_json::Value;

use super::dom::attr;

#[derive(Default)]
pub(crate) struct Meta {
    pub title: Option<String>,
    pub author: Option<String>,
    pub published: Option<DateTime<Utc>>,
    pub language: Option<String>,
    pub site_name: Option<String>,
    pub canonical: Option<String>,
    pub og_url: Option<String>,
    pub image: Option<String>,
    pub base: Option<String>,
    /// JSON-LD `articleBody`, for pages that carry their text only there.
    pub ld_body: Option<String>,
    /// JSON-LD `Product` `description`: shops often carry the product text only there.
    pub ld_product: Option<String>,
    /// `<meta name="description">` or `og:description`: the last resort for a page without
    /// visible text.
    pub description: Option<String>,
    /// Signals of the kind of page, for [`super::page_type::detect`].
    pub kind: KindSignals,
}

/// What the page says about its own kind: schema.org types (JSON-LD and microdata), its
/// Open Graph type, the software that made it.
#[derive(Default, Debug)]
pub(crate) struct KindSignals {
    /// Every schema.org type named in JSON-LD or `itemtype`, once per mention.
    pub schema_types: Vec<String>,
    pub og_type: Option<String>,
    pub generator: Option<String>,
    /// `<meta property="product:price:amount">` or `og:price:amount`.
    pub has_price_meta: bool,
    /// A link to forum software's home page ("Powered by phpBB").
    pub forum_software: bool,
    /// Class of `<body>` (WordPress and shop themes name the template there).
    pub body_class: Option<String>,
    /// Elements on the page: `<article>`s, blocks whose class names a price, `<section>`s.
    pub articles: usize,
    pub prices: usize,
    pub sections: usize,
    /// Paragraphs of prose: `<p>`s with at least [`LONG_PARAGRAPH`] characters of their own.
    pub long_paragraphs: usize,
}

/// Characters of its own text that make a `<p>` prose rather than a card's blurb.
pub(crate) const LONG_PARAGRAPH: usize = 100;

/// Fills a slot only once: earlier sources are stronger.
fn set(slot: &mut Option<String>, value: Option<&str>) {
    if slot.is_none()
        && let Some(v) = value.map(str::trim).filter(|v| !v.is_empty())
    {
        *slot = Some(v.to_string());
    }
}

pub(crate) fn collect(doc: &Html) -> Meta {
    let mut m = Meta::default();
    // Weaker sources, used only when the strong ones are missing.
    let mut title_tag = None;
    let mut h1 = None;
    let mut twitter_title = None;
    let mut dates: Vec<String> = Vec::new();
    let mut weak_dates: Vec<String> = Vec::new();
    let mut weak_authors: Vec<String> = Vec::new();
    let mut images: Vec<String> = Vec::new();
    let mut ld = LdData::default();

    for node in doc.tree.nodes() {
        let Node::Element(e) = node.value() else {
            continue;
        };
        match e.name() {
            "body" => set(&mut m.kind.body_class, attr(e, "class")),
            "article" => m.kind.articles += 1,
            "a" if !m.kind.forum_software => {
                m.kind.forum_software =
                    attr(e, "href").is_some_and(super::forum::is_software_credit);
            }
            "section" => m.kind.sections += 1,
            "p" => {
                let own: usize = node
                    .children()
                    .filter_map(|c| c.value().as_text().map(|t| t.trim().len()))
                    .sum();
                if own >= LONG_PARAGRAPH {
                    m.kind.long_paragraphs += 1;
                }
            }
            _ => {}
        }
        if attr(e, "class").is_some_and(|c| c.contains("price")) {
            m.kind.prices += 1;
        }
        match e.name() {
            "html" => set(
                &mut m.language,
                attr(e, "lang").or_else(|| attr(e, "xml:lang")),
            ),
            "base" => set(&mut m.base, attr(e, "href")),
            "title" if title_tag.is_none() => {
                title_tag = Some(text_of(node));
            }
            "h1" if h1.is_none() => {
                let t = text_of(node);
                if !t.is_empty() {
                    h1 = Some(t);
                }
            }
            "meta" => {
                let key = attr(e, "property")
                    .or_else(|| attr(e, "name"))
                    .or_else(|| attr(e, "itemprop"))
                    .unwrap_or("")
                    .to_ascii_lowercase();
                let content = attr(e, "content").or_else(|| attr(e, "datetime"));
                match key.as_str() {
                    "og:title" => set(&mut m.title, content),
                    "twitter:title" => set(&mut twitter_title, content),
                    "author" | "article:author" | "dc.creator" | "dcterms.creator"
                    | "sailthru.author" | "parsely-author" => {
                        if let Some(a) = content.filter(|a| !a.starts_with("http")) {
                            set(&mut m.author, Some(a));
                        }
                    }
                    "article:published_time"
                    | "og:article:published_time"
                    | "datepublished"
                    | "publishdate"
                    | "pubdate"
                    | "date"
                    | "dc.date"
                    | "dc.date.issued"
                    | "dcterms.created"
                    | "sailthru.date"
                    | "parsely-pub-date" => {
                        if let Some(c) = content {
                            dates.push(c.to_string());
                        }
                    }
                    "og:site_name" | "application-name" => set(&mut m.site_name, content),
                    "og:type" => set(&mut m.kind.og_type, content),
                    "description" | "og:description" | "twitter:description" => {
                        set(&mut m.description, content)
                    }
                    "generator" => set(&mut m.kind.generator, content),
                    "product:price:amount" | "og:price:amount" => m.kind.has_price_meta = true,
                    "og:url" => set(&mut m.og_url, content),
                    "og:image"
                    | "og:image:url"
                    | "og:image:secure_url"
                    | "twitter:image"
                    | "twitter:image:src"
                    | "thumbnailurl" => {
                        if let Some(c) = content {
                            images.push(c.to_string());
                        }
                    }
                    "og:locale" | "language" | "content-language" | "dc.language" => {
                        set(&mut m.language, content)
                    }
                    _ => {}
                }
                if attr(e, "http-equiv").is_some_and(|h| h.eq_ignore_ascii_case("content-language"))
                {
                    set(&mut m.language, content);
                }
            }
            "link" => {
                let rel = attr(e, "rel").unwrap_or("").to_ascii_lowercase();
                let href = attr(e, "href");
                if rel.split_whitespace().any(|r| r == "canonical") {
                    set(&mut m.canonical, href);
                } else if rel == "image_src"
                    && let Some(h) = href
                {
                    images.push(h.to_string());
                }
            }
            "script"
                if attr(e, "type")
                    .is_some_and(|t| t.eq_ignore_ascii_case("application/ld+json")) =>
            {
                let json = text_of_raw(node);
                if let Ok(v) = serde_json::from_str::<Value>(json.trim()) {
                    ld.visit(&v, 0);
                }
            }
            "time" => {
                if let Some(d) = attr(e, "datetime") {
                    weak_dates.push(d.to_string());
                }
            }
            _ => {}
        }
        if let Some(t) = attr(e, "itemtype") {
            let name = t.rsplit('/').next().unwrap_or(t);
            if !name.is_empty() && m.kind.schema_types.len() < MAX_SCHEMA_TYPES {
                m.kind.schema_types.push(name.to_string());
            }
        }
        if let Some(prop) = attr(e, "itemprop") {
            match prop {
                "author" if e.name() != "meta" => {
                    let t = text_of(node);
                    if !t.is_empty() && t.len() < 100 {
                        weak_authors.push(t);
                    }
                }
                "datePublished" if e.name() != "meta" => {
                    if let Some(d) = attr(e, "datetime").or_else(|| attr(e, "content")) {
                        dates.push(d.to_string());
                    }
                }
                _ => {}
            }
        }
        if attr(e, "rel") == Some("author") && e.name() == "a" {
            let t = text_of(node);
            if !t.is_empty() && t.len() < 100 {
                weak_authors.push(t);
            }
        }
    }

    set(&mut m.title, twitter_title.as_deref());
    set(&mut m.title, ld.headline.as_deref());
    set(&mut m.title, h1.as_deref());
    set(&mut m.title, title_tag.as_deref());
    set(&mut m.author, ld.author.as_deref());
    set(&mut m.author, weak_authors.first().map(String::as_str));
    m.published = dates
        .iter()
        .chain(ld.published.iter())
        .chain(weak_dates.iter())
        .find_map(|d| parse_date(d));
    set(&mut m.site_name, ld.publisher.as_deref());
    set(&mut m.image, images.first().map(String::as_str));
    set(&mut m.image, ld.image.as_deref());
    m.ld_body = ld.body;
    m.ld_product = ld.product;
    m.kind.schema_types.extend(ld.types);
    if let Some(lang) = m.language.take() {
        // "fr-FR", "de_DE" → the primary language subtag.
        let primary = lang
            .split(['-', '_'])
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        if (2..=3).contains(&primary.len()) && primary.chars().all(|c| c.is_ascii_alphabetic()) {
            m.language = Some(primary);
        }
    }
    m
}

fn text_of(node: ego_tree::NodeRef<'_, Node>) -> String {
    let mut s = String::new();
    for d in node.descendants() {
        if let Node::Text(t) = d.value() {
            s.push_str(t);
        }
    }
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn text_of_raw(node: ego_tree::NodeRef<'_, Node>) -> String {
    let mut s = String::new();
    for d in node.children() {
        if let Node::Text(t) = d.value() {
            s.push_str(t);
        }
    }
    s
}

/// Fields gathered from JSON-LD objects describing the article.
#[derive(Default)]
struct LdData {
    headline: Option<String>,
    author: Option<String>,
    published: Option<String>,
    publisher: Option<String>,
    image: Option<String>,
    body: Option<String>,
    product: Option<String>,
    /// `@type` of every object seen, for the kind of page.
    types: Vec<String>,
}

/// Schema.org type mentions kept per page (a listing can name thousands).
const MAX_SCHEMA_TYPES: usize = 256;

/// JSON-LD nesting deeper than this is not searched.
const LD_DEPTH: usize = 6;

impl LdData {
    fn add_type(&mut self, t: &str) {
        if self.types.len() < MAX_SCHEMA_TYPES {
            self.types
                .push(t.rsplit('/').next().unwrap_or(t).to_string());
        }
    }

    fn visit(&mut self, v: &Value, depth: usize) {
        if depth > LD_DEPTH {
            return;
        }
        match v {
            Value::Array(items) => items.iter().for_each(|i| self.visit(i, depth + 1)),
            Value::Object(o) => {
                if let Some(g) = o.get("@graph") {
                    self.visit(g, depth + 1);
                }
                for key in ["mainEntity", "itemListElement", "item"] {
                    if let Some(inner) = o.get(key) {
                        self.visit(inner, depth + 1);
                    }
                }
                match o.get("@type") {
                    Some(Value::String(x)) => self.add_type(x),
                    Some(Value::Array(xs)) => xs
                        .iter()
                        .filter_map(Value::as_str)
                        .for_each(|x| self.add_type(x)),
                    _ => {}
                }
                let is_article = o.get("@type").is_some_and(|t| {
                    let mut s = String::new();
                    match t {
                        Value::String(x) => s.push_str(x),
                        Value::Array(xs) => xs
                            .iter()
                            .filter_map(Value::as_str)
                            .for_each(|x| s.push_str(x)),
                        _ => {}
                    }
                    s.contains("Article") || s.contains("Posting") || s.contains("Report")
                });
                if o.get("@type").and_then(Value::as_str) == Some("Product") {
                    set(
                        &mut self.product,
                        o.get("description").and_then(Value::as_str),
                    );
                }
                if !is_article {
                    return;
                }
                set(
                    &mut self.headline,
                    o.get("headline").and_then(Value::as_str),
                );
                set(
                    &mut self.published,
                    o.get("datePublished").and_then(Value::as_str),
                );
                set(
                    &mut self.author,
                    o.get("author").and_then(name_of).as_deref(),
                );
                set(
                    &mut self.publisher,
                    o.get("publisher").and_then(name_of).as_deref(),
                );
                set(&mut self.image, o.get("image").and_then(url_of).as_deref());
                set(&mut self.body, o.get("articleBody").and_then(Value::as_str));
            }
            _ => {}
        }
    }
}

fn name_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("name").and_then(Value::as_str).map(str::to_string),
        Value::Array(items) => {
            let names: Vec<String> = items.iter().filter_map(name_of).collect();
            (!names.is_empty()).then(|| names.join(", "))
        }
        _ => None,
    }
}

fn url_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("url").and_then(Value::as_str).map(str::to_string),
        Value::Array(items) => items.iter().find_map(url_of),
        _ => None,
    }
}

/// Dates as pages write them: RFC 3339, ISO 8601 without zone (taken as UTC), or a day.
pub(crate) fn parse_date(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%dT%H:%M:%S%z",
        "%Y-%m-%dT%H:%M%z",
    ] {
        if let Ok(d) = DateTime::parse_from_str(s, f) {
            return Some(d.with_timezone(&Utc));
        }
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(d) = NaiveDateTime::parse_from_str(s, f) {
            return Some(d.and_utc());
        }
    }
    let day = s.get(..10).unwrap_or(s);
    NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
}
