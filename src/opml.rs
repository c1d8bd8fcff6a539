//! OPML subscription lists: read OPML 1.0/2.0 into feed entries, plan which of them are new
//! to a config, render those as `[[feeds]]` TOML, and write the config's feeds as OPML 2.0;
//! pure, no IO.
//!
//! Folders (outlines without `xmlUrl` that contain outlines) become tags, outermost first,
//! followed by the segments of `category` attributes (`"/Tech/Rust,news"` gives `Tech`,
//! `Rust`, `news`). On export a feed's first tag is its folder and the others its categories,
//! so an export read back gives the same tags.

use std::collections::HashSet;
use std::fmt::Write as _;

use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};
use url::Url;

use crate::config::Feed;
use crate::dedup::canonical_url;

/// One feed of an OPML document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpmlFeed {
    /// `xmlUrl`, as written.
    pub url: String,
    /// `title`, else `text`; whitespace collapsed; empty when neither is given.
    pub title: String,
    /// `htmlUrl`, the site, when given.
    pub html_url: Option<String>,
    /// Folder names, outermost first, then category segments; no repeats.
    pub tags: Vec<String>,
}

/// What an OPML document lists.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Opml {
    pub feeds: Vec<OpmlFeed>,
    /// Outlines that are neither a feed nor a folder (no `xmlUrl`, no children).
    pub not_feeds: usize,
}

/// Why a document could not be read as OPML.
#[derive(Debug, thiserror::Error)]
pub enum OpmlError {
    #[error("not UTF-8 text")]
    NotUtf8,
    #[error("not well-formed XML (line {line}): {message}")]
    Xml { line: usize, message: String },
    #[error("not an OPML document: the root element is <{0}>, not <opml>")]
    NotOpml(String),
    #[error("not an OPML document: it has no root element")]
    Empty,
    #[error("not an OPML document: it has no <body>")]
    NoBody,
}

/// Reads an OPML file's bytes: UTF-8, with or without a byte order mark.
pub fn parse_bytes(bytes: &[u8]) -> Result<Opml, OpmlError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|_| OpmlError::NotUtf8)?;
    parse(text)
}

/// One open `<outline>` while reading.
struct Open {
    /// The folder name it contributes to its children's tags, if it is a named folder.
    folder: Option<String>,
    /// A feed outline: outlines inside it (some readers nest items there) are not feeds.
    is_feed: bool,
}

/// Reads OPML 1.0 or 2.0 text.
pub fn parse(text: &str) -> Result<Opml, OpmlError> {
    let mut reader = quick_xml::Reader::from_str(text);
    let line_at = |pos: u64| text[..(pos as usize).min(text.len())].matches('\n').count() + 1;
    let xml_error = |pos: u64, e: &dyn std::fmt::Display| OpmlError::Xml {
        line: line_at(pos),
        message: e.to_string(),
    };

    let mut out = Opml::default();
    let mut depth = 0usize;
    let mut seen_root = false;
    let mut in_body = false;
    let mut seen_body = false;
    let mut open: Vec<Open> = Vec::new();
    loop {
        let event = reader
            .read_event()
            .map_err(|e| xml_error(reader.error_position(), &e))?;
        let (start, empty) = match &event {
            Event::Start(s) => (Some(s), false),
            Event::Empty(s) => (Some(s), true),
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                // With nothing open inside the body, this is </body>.
                if in_body && open.pop().is_none() {
                    in_body = false;
                }
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        let Some(start) = start else { continue };
        let name = start.local_name().as_ref().to_ascii_lowercase();
        if !seen_root {
            if name != "opml" {
                return Err(OpmlError::NotOpml(name));
            }
            seen_root = true;
        } else if depth == 1 && name == "body" {
            seen_body = true;
            in_body = !empty;
        } else if in_body {
            let inside_feed = open.iter().any(|o| o.is_feed);
            let entry = if name == "outline" && !inside_feed {
                let attrs =
                    Attrs::read(start).map_err(|e| xml_error(reader.buffer_position(), &e))?;
                Some(attrs)
            } else {
                None
            };
            match entry {
                Some(a) if a.xml_url.is_some() => {
                    let mut tags: Vec<String> =
                        open.iter().filter_map(|o| o.folder.clone()).collect();
                    tags.extend(a.categories());
                    let mut seen = HashSet::new();
                    tags.retain(|t| seen.insert(t.clone()));
                    out.feeds.push(OpmlFeed {
                        url: a.xml_url.unwrap_or_default(),
                        title: a.title.or(a.text).unwrap_or_default(),
                        html_url: a.html_url,
                        tags,
                    });
                    if !empty {
                        open.push(Open {
                            folder: None,
                            is_feed: true,
                        });
                    }
                }
                Some(a) => {
                    if empty {
                        out.not_feeds += 1;
                    } else {
                        open.push(Open {
                            folder: a.text.or(a.title).filter(|t| !t.is_empty()),
                            is_feed: false,
                        });
                    }
                }
                None => {
                    if !empty {
                        open.push(Open {
                            folder: None,
                            is_feed: inside_feed,
                        });
                    }
                }
            }
        }
        if !empty {
            depth += 1;
        }
    }
    if !seen_root {
        return Err(OpmlError::Empty);
    }
    if !seen_body {
        return Err(OpmlError::NoBody);
    }
    Ok(out)
}

/// The attributes of an `<outline>` that matter here; names are matched case-insensitively
/// because exporters disagree (`xmlUrl`, `xmlurl`).
#[derive(Default)]
struct Attrs {
    xml_url: Option<String>,
    html_url: Option<String>,
    text: Option<String>,
    title: Option<String>,
    category: Option<String>,
}

impl Attrs {
    fn read(start: &BytesStart<'_>) -> Result<Attrs, quick_xml::Error> {
        let mut a = Attrs::default();
        for attr in start.attributes() {
            let attr = attr.map_err(quick_xml::Error::InvalidAttr)?;
            let key = attr.key.local_name().as_ref().to_ascii_lowercase();
            let slot = match key.as_str() {
                "xmlurl" => &mut a.xml_url,
                "htmlurl" => &mut a.html_url,
                "text" => &mut a.text,
                "title" => &mut a.title,
                "category" => &mut a.category,
                _ => continue,
            };
            let value = attr.normalized_value(XmlVersion::Implicit1_0)?;
            let value = collapse_whitespace(&value);
            if !value.is_empty() {
                *slot = Some(value);
            }
        }
        Ok(a)
    }

    /// `category="/Tech/Rust,news"`: comma-separated, slash-delimited paths.
    fn categories(&self) -> Vec<String> {
        let Some(c) = &self.category else {
            return Vec::new();
        };
        c.split(',')
            .flat_map(|path| path.split('/'))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }
}

fn collapse_whitespace(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

// ---- import ---------------------------------------------------------------------------------

/// A feed to add to the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFeed {
    pub name: String,
    pub url: Url,
    /// The OPML title, kept as a comment above the entry.
    pub title: String,
    pub tags: Vec<String>,
}

/// Which feeds of an OPML document are new to a config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportPlan {
    pub new: Vec<NewFeed>,
    /// Feeds already configured (same canonical URL), or listed twice in the document.
    pub already: Vec<OpmlFeed>,
    /// Feeds whose `xmlUrl` is not an http(s) URL, with the reason.
    pub invalid: Vec<(OpmlFeed, String)>,
}

/// Decides which feeds of `opml` to add next to the `existing` ones: URLs are compared by
/// [`canonical_url`], names are derived from titles and kept unique.
pub fn plan_import(opml: &Opml, existing: &[Feed]) -> ImportPlan {
    let mut urls: HashSet<String> = existing
        .iter()
        .map(|f| canonical_url(&f.url).to_string())
        .collect();
    let mut names: HashSet<String> = existing.iter().map(|f| f.name.clone()).collect();
    let mut plan = ImportPlan::default();
    for feed in &opml.feeds {
        let url = match Url::parse(feed.url.trim()) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => u,
            Ok(u) => {
                let why = format!("{:?} is not an http or https URL", u.scheme());
                plan.invalid.push((feed.clone(), why));
                continue;
            }
            Err(e) => {
                plan.invalid
                    .push((feed.clone(), format!("invalid URL: {e}")));
                continue;
            }
        };
        if !urls.insert(canonical_url(&url).to_string()) {
            plan.already.push(feed.clone());
            continue;
        }
        let base = feed_name(&feed.title, &url);
        let mut name = base.clone();
        let mut n = 2;
        while names.contains(&name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        names.insert(name.clone());
        plan.new.push(NewFeed {
            name,
            url,
            title: feed.title.clone(),
            tags: feed.tags.clone(),
        });
    }
    plan
}

/// A feed name from a title: lower-case letters and digits, other runs become one '-'
/// ('.' and '_' are kept); the URL's host when the title leaves nothing.
pub fn feed_name(title: &str, url: &Url) -> String {
    let name = sanitize_name(title);
    if !name.is_empty() {
        return name;
    }
    let host = url.host_str().unwrap_or("feed").trim_start_matches("www.");
    let name = sanitize_name(host);
    if name.is_empty() { "feed".into() } else { name }
}

fn sanitize_name(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() || matches!(c, '_' | '.') {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches(|c| matches!(c, '-' | '.' | '_'))
        .to_string()
}

/// The `[[feeds]]` entries of `feeds`, ready to append to a config file.
pub fn to_toml(feeds: &[NewFeed]) -> String {
    let mut out = String::new();
    for f in feeds {
        if !out.is_empty() {
            out.push('\n');
        }
        if !f.title.is_empty() && f.title != f.name {
            // A comment is one line: control characters (a newline too) become spaces.
            let title: String = f
                .title
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            let _ = writeln!(out, "# {title}");
        }
        out.push_str("[[feeds]]\n");
        let _ = writeln!(out, "url = {}", toml_string(f.url.as_str()));
        let _ = writeln!(out, "name = {}", toml_string(&f.name));
        if !f.tags.is_empty() {
            let tags: Vec<String> = f.tags.iter().map(|t| toml_string(t)).collect();
            let _ = writeln!(out, "tags = [{}]", tags.join(", "));
        }
    }
    out
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// ---- export ---------------------------------------------------------------------------------

/// OPML 2.0 listing `feeds`: each in a folder named after its first tag (unless `flat`), its
/// other tags as `category`; `text` and `title` are the feed's name.
pub fn write(feeds: &[Feed], flat: bool) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str("<opml version=\"2.0\">\n  <head>\n    <title>feedwire feeds</title>\n  </head>\n  <body>\n");
    // Folders in order of first appearance, each with its feeds.
    let mut groups: Vec<(Option<&str>, Vec<&Feed>)> = Vec::new();
    for f in feeds {
        let folder = if flat {
            None
        } else {
            f.tags.first().map(String::as_str)
        };
        match groups.iter_mut().find(|(name, _)| *name == folder) {
            Some((_, list)) => list.push(f),
            None => groups.push((folder, vec![f])),
        }
    }
    for (folder, list) in groups {
        let indent = match folder {
            Some(name) => {
                let name = attr(name);
                let _ = writeln!(out, "    <outline text=\"{name}\" title=\"{name}\">");
                "      "
            }
            None => "    ",
        };
        for f in list {
            let name = attr(&f.name);
            let mut categories: Vec<&str> = f
                .tags
                .iter()
                .skip(usize::from(folder.is_some()))
                .map(String::as_str)
                // ',' and '/' separate categories; a tag holding one cannot be written.
                .filter(|t| !t.contains([',', '/']))
                .collect();
            categories.dedup();
            let _ = write!(
                out,
                "{indent}<outline type=\"rss\" text=\"{name}\" title=\"{name}\" xmlUrl=\"{}\"",
                attr(f.url.as_str())
            );
            if !categories.is_empty() {
                let _ = write!(out, " category=\"{}\"", attr(&categories.join(",")));
            }
            out.push_str("/>\n");
        }
        if folder.is_some() {
            out.push_str("    </outline>\n");
        }
    }
    out.push_str("  </body>\n</opml>\n");
    out
}

/// An attribute value: XML-escaped, characters XML cannot carry dropped, whitespace kept as
/// character references so it survives attribute normalisation.
fn attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => {
                let _ = write!(out, "&#{};", c as u32);
            }
            c if c.is_control() || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(name: &str, url: &str, tags: &[&str]) -> Feed {
        Feed {
            name: name.into(),
            url: Url::parse(url).expect("url"),
            interval: None,
            fetch_article: true,
            sinks: vec![],
            tags: tags.iter().map(|t| t.to_string()).collect(),
            backfill: crate::config::Backfill::All,
            max_item_age: None,
            websub: None,
            access: Default::default(),
        }
    }

    #[test]
    fn nested_folders_and_categories_become_tags() {
        let opml = parse(
            r#"<?xml version="1.0"?>
<opml version="1.0"><head><title>t</title></head><body>
  <outline text="Tech">
    <outline text="Rust &amp; Go" title="Rust &amp; Go">
      <outline type="rss" text="A" xmlUrl="https://a.example/feed" category="/Lang/Rust,news"/>
    </outline>
    <outline type="rss" title="B &quot;quoted&quot;" text="ignored" xmlurl="https://b.example/rss"/>
  </outline>
  <outline type="rss" text="C" xmlUrl="https://c.example/atom">
    <outline text="an item inside a feed" xmlUrl="https://c.example/item"/>
  </outline>
  <outline text="just a link" htmlUrl="https://d.example/"/>
</body></opml>"#,
        )
        .expect("valid OPML");
        let got: Vec<(&str, &str, Vec<&str>)> = opml
            .feeds
            .iter()
            .map(|f| {
                (
                    f.url.as_str(),
                    f.title.as_str(),
                    f.tags.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "https://a.example/feed",
                    "A",
                    vec!["Tech", "Rust & Go", "Lang", "Rust", "news"]
                ),
                ("https://b.example/rss", "B \"quoted\"", vec!["Tech"]),
                ("https://c.example/atom", "C", vec![]),
            ]
        );
        assert_eq!(opml.not_feeds, 1);
    }

    #[test]
    fn rejects_what_is_not_opml() {
        let check = |text: &str, expected: &str| match parse(text) {
            Err(e) => assert!(e.to_string().contains(expected), "{e}"),
            Ok(o) => panic!("{text:?} was read as {o:?}"),
        };
        check(
            "<rss version=\"2.0\"><channel/></rss>",
            "root element is <rss>",
        );
        check("", "no root element");
        check("<opml><head/></opml>", "no <body>");
        check("<opml><body><outline text=\"x\"></body></opml>", "line 1");
        check(
            "<opml>\n<body>\n<outline text=\"&nosuchentity;\"/></body></opml>",
            "line 3",
        );
        assert!(matches!(parse_bytes(b"\xff\xfe<"), Err(OpmlError::NotUtf8)));
    }

    #[test]
    fn plan_skips_configured_urls_and_keeps_names_unique() {
        let opml = Opml {
            feeds: vec![
                OpmlFeed {
                    url: "https://Example.com/rss.xml?utm_source=opml".into(),
                    title: "Example".into(),
                    html_url: None,
                    tags: vec![],
                },
                OpmlFeed {
                    url: "https://other.example/feed".into(),
                    title: "Ökonomie — Nachrichten".into(),
                    html_url: None,
                    tags: vec!["News".into()],
                },
                OpmlFeed {
                    url: "https://third.example/feed".into(),
                    title: "Example!".into(),
                    html_url: None,
                    tags: vec![],
                },
                OpmlFeed {
                    url: "https://other.example/feed#again".into(),
                    title: "twice".into(),
                    html_url: None,
                    tags: vec![],
                },
                OpmlFeed {
                    url: "ftp://x.example/feed".into(),
                    title: "ftp".into(),
                    html_url: None,
                    tags: vec![],
                },
                OpmlFeed {
                    url: "https://www.untitled.example/feed".into(),
                    title: "—".into(),
                    html_url: None,
                    tags: vec![],
                },
            ],
            not_feeds: 0,
        };
        let existing = [feed("example", "https://example.com/rss.xml", &[])];
        let plan = plan_import(&opml, &existing);
        let names: Vec<&str> = plan.new.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            vec!["ökonomie-nachrichten", "example-2", "untitled.example"]
        );
        assert_eq!(plan.already.len(), 2);
        assert_eq!(plan.invalid.len(), 1);
    }

    #[test]
    fn toml_entries_escape_and_keep_titles_as_comments() {
        let text = to_toml(&[NewFeed {
            name: "a".into(),
            url: Url::parse("https://a.example/f?x=\"1\"").expect("url"),
            title: "Title\nwith [[feeds]] newline".into(),
            tags: vec!["say \"hi\"".into(), "back\\slash".into()],
        }]);
        assert_eq!(
            text,
            "# Title with [[feeds]] newline\n[[feeds]]\nurl = \"https://a.example/f?x=%221%22\"\nname = \"a\"\ntags = [\"say \\\"hi\\\"\", \"back\\\\slash\"]\n"
        );
        let parsed: toml::Table = toml::from_str(&text).expect("valid TOML");
        assert!(parsed.contains_key("feeds"));
    }

    #[test]
    fn export_reads_back_the_same_urls_names_and_tags() {
        let feeds = [
            feed(
                "rust-blog",
                "https://blog.rust-lang.org/feed.xml",
                &["rust", "en"],
            ),
            feed(
                "a&b",
                "https://x.example/?a=1&b=<2>",
                &["Q&A \"x\"", "Ökonomie"],
            ),
            feed("plain", "https://p.example/feed", &[]),
            feed("more-rust", "https://r.example/feed", &["rust"]),
        ];
        let read_back = |flat: bool| -> Vec<(String, String, Vec<String>)> {
            let xml = write(&feeds, flat);
            parse(&xml)
                .expect("the export is OPML")
                .feeds
                .into_iter()
                .map(|f| (f.url, f.title, f.tags))
                .collect()
        };
        let want = |order: [usize; 4]| -> Vec<(String, String, Vec<String>)> {
            order
                .iter()
                .map(|&i| {
                    let f = &feeds[i];
                    (f.url.to_string(), f.name.clone(), f.tags.clone())
                })
                .collect()
        };
        // In folders (grouped by first tag, in order of first appearance), or flat.
        assert_eq!(read_back(false), want([0, 3, 1, 2]));
        assert_eq!(read_back(true), want([0, 1, 2, 3]));
    }
}
