//! Page HTML to a clean article: main text, metadata and sanitized HTML; pure, no IO
//! (except [`extract_dir`], the batch front end).
//!
//! # Layout
//!
//! - `charset`: page bytes to a string (BOM, HTTP header, `<meta>`, detection).
//! - `dom`: a flat pre-order view of the parsed page with text statistics.
//! - `content`: chrome pruning, paragraph scoring, choice of the main content, rendering.
//! - `forum`, `product`, `docs`: what a thread, a product page or a documentation page
//!   holds that the general rules do not know.
//! - `boiler`: short lines inside the content that are furniture (credits, bylines, prompts).
//! - `cards`: listings, collections and service pages: their chrome and their cards' titles.
//! - `meta`: headline, byline, dates, language, canonical URL, lead image.
//! - `batch`: a folder of pages to text and JSON files on every core.
//! - `fragment`: feed summaries and titles (HTML fragments) to plain text.

mod batch;
mod boiler;
mod cards;
mod charset;
mod content;
mod docs;
mod dom;
mod forum;
mod fragment;
mod meta;
mod page_type;
mod product;

use chrono::{DateTime, Utc};
use scraper::Html;
use serde::Serialize;
use url::Url;

pub use batch::{BatchReport, ExtractError, FailedPage, extract_dir};
pub use charset::{CharsetRule, decode};
pub use fragment::html_to_text;
pub use page_type::PageType;

/// The cleaned article of one page.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Article {
    pub title: Option<String>,
    pub author: Option<String>,
    pub published: Option<DateTime<Utc>>,
    /// Primary language subtag (`"fr"`), from `<html lang>` or the page's meta tags.
    pub language: Option<String>,
    pub site_name: Option<String>,
    /// `<link rel=canonical>` or `og:url`, absolutized.
    pub canonical_url: Option<String>,
    /// Lead image (`og:image` etc.), absolutized.
    pub image: Option<String>,
    /// Main text including the lead, paragraphs separated by one blank line, Unicode format
    /// characters removed.
    pub text: String,
    /// The same content as sanitized HTML, links and images absolute.
    pub html: String,
    pub word_count: usize,
    /// The kind of page, which decided how its content was found.
    pub page_type: PageType,
    /// Where `text` came from.
    pub source: Source,
}

/// Where an article's text came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Source {
    /// The page's main content, found by the rules for its kind.
    #[default]
    Content,
    /// The page's JSON-LD `articleBody`, longer than what the page shows.
    StructuredData,
    /// No main content was found: the page's text without its menus, or its description.
    Fallback,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Content => "content",
            Source::StructuredData => "structured_data",
            Source::Fallback => "fallback",
        }
    }
}

/// When the scored content has fewer words than this, a longer JSON-LD `articleBody` wins.
const MIN_WORDS_BEFORE_JSON_LD: usize = 50;

/// Extracts the article from a page. `base_url` (where the page was fetched from) makes links
/// absolute; without it the page's `<base>`, canonical URL or `og:url` serve, when absolute.
pub fn extract(html: &str, base_url: Option<&Url>) -> Article {
    let doc = parse(html);
    let meta = meta::collect(&doc);

    let declared = meta
        .canonical
        .as_deref()
        .or(meta.og_url.as_deref())
        .and_then(|u| Url::parse(u).ok());
    let page_base = base_url.cloned().or(declared);
    let base = match (&meta.base, &page_base) {
        (Some(b), Some(page)) => page.join(b).ok().or(page_base.clone()),
        (Some(b), None) => Url::parse(b).ok(),
        (None, page) => page.clone(),
    };
    let absolute = |u: &str| -> Option<String> {
        let u = u.trim();
        match &base {
            Some(b) => b.join(u).ok().map(String::from),
            None => Url::parse(u).ok().map(String::from),
        }
    };

    let mut page_type = page_type::detect(&meta.kind, page_base.as_ref());
    let page = content::page(doc.tree.root());
    let found = content::find(&page, page_type.profile(&meta.kind));
    let (mut text, mut raw_html) = content::render(&found);
    drop(found);
    if page_type == PageType::Article {
        (text, raw_html, page_type) = forum::discussion_of(&page, &meta.kind, text, raw_html);
    }
    if matches!(page_type, PageType::Article | PageType::Product)
        && page_type::may_spread(&text, &meta.kind, || shown_words(&doc))
    {
        // Taken for an article or a product on weak signals (a shop's category page names
        // its products in JSON-LD too): the page's structure may say otherwise.
        let whole = content::find(&page, PageType::Listing.profile(&meta.kind));
        if page_type::may_spread_over(&text, whole.words()) {
            let (whole_text, whole_html) = content::render(&whole);
            let titled = cards::titled_cards(&whole.dom, &whole.cards);
            drop(whole);
            if let Some(kind) = page_type::spread(&text, &whole_text, &meta.kind, titled, page_type)
            {
                page_type = kind;
                (text, raw_html) = (whole_text, whole_html);
            }
        }
    }
    let mut source = Source::Content;
    if text.trim().is_empty() {
        // Nothing passed the rules: the page's text, all of it but menus and furniture.
        let all = content::find(&page, content::Profile::everything());
        (text, raw_html) = content::render(&all);
        source = Source::Fallback;
    }
    drop(page);
    // The content's HTML is sanitized (parsed again) only at the end, when neither the
    // structured data nor the description has replaced it.
    let mut replaced_html: Option<String> = None;
    let mut appended_html = String::new();
    let mut word_count = text.split_whitespace().count();
    if page_type == PageType::Product
        && let Some(description) = &meta.ld_product
    {
        // The product's own description, when the page shows it only after a script runs.
        let description = plain_text(description);
        let opening: String = description.chars().take(DESCRIPTION_PROBE).collect();
        let opening = opening.trim();
        if !opening.is_empty() && !text.contains(opening) {
            if !text.is_empty() {
                text.push_str("\n\n");
            }
            text.push_str(&description);
            appended_html.push_str(&paragraphs_html(&description));
            word_count = text.split_whitespace().count();
        }
    }
    if word_count < MIN_WORDS_BEFORE_JSON_LD
        && let Some(body) = &meta.ld_body
    {
        let ld_text = plain_text(body);
        let ld_words = ld_text.split_whitespace().count();
        if ld_words > word_count {
            replaced_html = Some(paragraphs_html(&ld_text));
            text = ld_text;
            word_count = ld_words;
            source = Source::StructuredData;
        }
    }
    if word_count == 0
        && let Some(description) = &meta.description
    {
        text = plain_text(description);
        replaced_html = Some(paragraphs_html(&text));
        word_count = text.split_whitespace().count();
        source = Source::Fallback;
    }
    let html = replaced_html.unwrap_or_else(|| {
        let mut html = sanitize(&raw_html, base.as_ref());
        html.push_str(&appended_html);
        html
    });

    Article {
        title: meta.title,
        author: meta.author,
        published: meta.published,
        language: meta.language,
        site_name: meta.site_name,
        canonical_url: meta
            .canonical
            .as_deref()
            .or(meta.og_url.as_deref())
            .and_then(absolute),
        image: meta.image.as_deref().and_then(absolute),
        text,
        html,
        word_count,
        page_type,
        source,
    }
}

/// Words of the page's text outside scripts and styles: at least as many as any rendering
/// of it has.
fn shown_words(doc: &Html) -> usize {
    doc.tree
        .nodes()
        .filter_map(|n| {
            let text = n.value().as_text()?;
            let parent = n.parent()?;
            let hidden = parent
                .value()
                .as_element()
                .is_some_and(|e| matches!(e.name(), "script" | "style"));
            (!hidden).then(|| text.split_whitespace().count())
        })
        .sum()
}

/// Characters of a JSON-LD description looked for in the page's text to tell whether the
/// page already shows it.
const DESCRIPTION_PROBE: usize = 60;

/// Text from structured data (which may hold HTML): plain, without format characters.
fn plain_text(s: &str) -> String {
    fragment::html_to_text(s)
        .chars()
        .filter(|&c| !content::is_format(c))
        .collect()
}

fn paragraphs_html(text: &str) -> String {
    text.split("\n\n")
        .map(|p| format!("<p>{}</p>", ammonia::clean_text(p)))
        .collect()
}

/// Parses the page as a browser without scripts would: `<noscript>` content is markup, not
/// raw text. Some sites (Discourse forums among them) serve the whole readable page there.
fn parse(html: &str) -> Html {
    use html5ever::tendril::TendrilSink;
    let opts = html5ever::driver::ParseOpts {
        tree_builder: html5ever::tree_builder::TreeBuilderOpts {
            scripting_enabled: false,
            ..Default::default()
        },
        ..Default::default()
    };
    html5ever::driver::parse_document(scraper::HtmlTreeSink::new(Html::new_document()), opts)
        .one(html)
}

/// Sanitizes the rendered content: ammonia's safe defaults (no scripts, frames, styles or
/// event handlers), relative links resolved against `base` (or dropped when there is none).
pub fn sanitize(html: &str, base: Option<&Url>) -> String {
    let mut b = ammonia::Builder::default();
    b.link_rel(Some("noopener noreferrer nofollow"));
    match base {
        Some(base) => b.url_relative(ammonia::UrlRelative::RewriteWithBase(base.clone())),
        None => b.url_relative(ammonia::UrlRelative::Deny),
    };
    b.clean(html).to_string()
}

/// The JSON form of an article, as written by the batch and `feedwire extract --format json`.
#[derive(Serialize)]
struct ArticleJson<'a> {
    title: Option<&'a str>,
    author: Option<&'a str>,
    published: Option<String>,
    language: Option<&'a str>,
    site_name: Option<&'a str>,
    canonical_url: Option<&'a str>,
    image: Option<&'a str>,
    word_count: usize,
    page_type: &'static str,
    source: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    charset: Option<CharsetJson<'a>>,
    text: &'a str,
    html: &'a str,
}

#[derive(Serialize)]
struct CharsetJson<'a> {
    encoding: &'a str,
    rule: &'static str,
}

/// One article as pretty JSON; `charset` is the encoding name and the rule that chose it.
pub fn article_json(article: &Article, charset: Option<(&str, CharsetRule)>) -> String {
    let json = ArticleJson {
        title: article.title.as_deref(),
        author: article.author.as_deref(),
        published: article
            .published
            .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        language: article.language.as_deref(),
        site_name: article.site_name.as_deref(),
        canonical_url: article.canonical_url.as_deref(),
        image: article.image.as_deref(),
        word_count: article.word_count,
        page_type: article.page_type.as_str(),
        source: article.source.as_str(),
        charset: charset.map(|(encoding, rule)| CharsetJson {
            encoding,
            rule: rule.as_str(),
        }),
        text: &article.text,
        html: &article.html,
    };
    // Serializing plain strings and numbers cannot fail.
    serde_json::to_string_pretty(&json).unwrap_or_default()
}
