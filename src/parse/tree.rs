//! Lenient XML: decoded text to a small element tree, the way a forgiving feed reader sees
//! it. Unclosed tags close at the end, stray end tags are ignored, a bare `&` is text, HTML
//! named entities (`&nbsp;`, `&eacute;`) and the document's own simple `<!ENTITY>`s resolve,
//! and a syntax error ends the document where it stands instead of losing all of it.

use std::borrow::Cow;

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};
use url::Url;

/// Deeper elements are flattened into their ancestor: walking the tree recurses, and no real
/// feed nests anywhere near this deep.
const MAX_DEPTH: usize = 128;

/// A document is read past this many syntax errors no further (each error skips a little).
const MAX_ERRORS: usize = 64;

/// Entity declarations read from an internal DTD subset, and the bytes their expansions may
/// add in all: a "billion laughs" document cannot grow memory past the input plus this.
const MAX_ENTITIES: usize = 64;
const MAX_ENTITY_VALUE: usize = 1024;
const MAX_EXPANSION_BYTES: usize = 1 << 20;

/// Namespaces the feed formats care about; everything else is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ns {
    /// No namespace, or one of the RSS/Atom/CDF namespaces: the format's own elements.
    Core,
    Rdf,
    Dc,
    Dcterms,
    Content,
    Itunes,
    Media,
    Xhtml,
    Other,
}

fn classify(uri: &str) -> Ns {
    let u = uri.trim().trim_end_matches(['/', '#']).to_ascii_lowercase();
    match u.as_str() {
        "http://www.w3.org/2005/atom"
        | "http://purl.org/atom/ns"
        | "http://purl.org/rss/1.0"
        | "http://my.netscape.com/rdf/simple/0.9"
        | "http://backend.userland.com/rss2"
        | "http://blogs.law.harvard.edu/tech/rss"
        | "http://backend.userland.com/rss" => Ns::Core,
        "http://www.w3.org/1999/02/22-rdf-syntax-ns" => Ns::Rdf,
        "http://purl.org/dc/elements/1.1" | "http://purl.org/dc/elements/1.0" => Ns::Dc,
        "http://purl.org/dc/terms" => Ns::Dcterms,
        "http://purl.org/rss/1.0/modules/content" => Ns::Content,
        "http://www.itunes.com/dtds/podcast-1.0.dtd" => Ns::Itunes,
        "http://search.yahoo.com/mrss" | "http://tools.search.yahoo.com/mrss" => Ns::Media,
        "http://www.w3.org/1999/xhtml" => Ns::Xhtml,
        _ => Ns::Other,
    }
}

/// An undeclared prefix, guessed from the name feeds conventionally give it.
fn guess_prefix(prefix: &str) -> Ns {
    match prefix.to_ascii_lowercase().as_str() {
        "atom" | "rss" | "rss1" => Ns::Core,
        "rdf" => Ns::Rdf,
        "dc" => Ns::Dc,
        "dcterms" => Ns::Dcterms,
        "content" => Ns::Content,
        "itunes" => Ns::Itunes,
        "media" => Ns::Media,
        "xhtml" | "html" => Ns::Xhtml,
        _ => Ns::Other,
    }
}

#[derive(Debug)]
pub enum Child {
    El(usize),
    Text(String),
}

#[derive(Debug)]
pub struct El {
    pub ns: Ns,
    /// Local name, lower-case (feeds in the wild disagree on case: `<ITEM>`, `<pubdate>`).
    pub name: String,
    /// Attributes by their qualified name, lower-case, values unescaped.
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Child>,
    /// Index into [`Doc::bases`]: the base URL in force here (`xml:base`).
    pub base: usize,
}

impl El {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn is(&self, ns: Ns, name: &str) -> bool {
        self.ns == ns && self.name == name
    }
}

pub struct Doc {
    pub els: Vec<El>,
    pub bases: Vec<Url>,
    /// The first element, if the text had any.
    pub root: Option<usize>,
}

impl Doc {
    pub fn el(&self, i: usize) -> &El {
        &self.els[i]
    }

    pub fn base(&self, i: usize) -> &Url {
        &self.bases[self.els[i].base]
    }

    /// Child elements of `i`.
    pub fn kids(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        self.els[i].children.iter().filter_map(|c| match c {
            Child::El(k) => Some(*k),
            Child::Text(_) => None,
        })
    }

    pub fn has_element_children(&self, i: usize) -> bool {
        self.kids(i).next().is_some()
    }

    /// All text inside `i`, markup dropped.
    pub fn text(&self, i: usize) -> String {
        let mut out = String::new();
        self.collect_text(i, &mut out);
        out
    }

    fn collect_text(&self, i: usize, out: &mut String) {
        for c in &self.els[i].children {
            match c {
                Child::Text(t) => out.push_str(t),
                Child::El(k) => self.collect_text(*k, out),
            }
        }
    }

    /// The markup inside `i`, written back as HTML (inline XHTML content).
    pub fn inner_markup(&self, i: usize) -> String {
        let mut out = String::new();
        for c in &self.els[i].children {
            self.write_child(c, &mut out);
        }
        out
    }

    fn write_child(&self, c: &Child, out: &mut String) {
        match c {
            Child::Text(t) => escape_into(t, false, out),
            Child::El(k) => {
                let el = &self.els[*k];
                out.push('<');
                out.push_str(&el.name);
                for (name, value) in &el.attrs {
                    if name.starts_with("xmlns") || name.starts_with("xml:") {
                        continue;
                    }
                    out.push(' ');
                    out.push_str(name.rsplit(':').next().unwrap_or(name));
                    out.push_str("=\"");
                    escape_into(value, true, out);
                    out.push('"');
                }
                if el.children.is_empty() && is_void(&el.name) {
                    out.push_str(" />");
                    return;
                }
                out.push('>');
                for c in &el.children {
                    self.write_child(c, out);
                }
                out.push_str("</");
                out.push_str(&el.name);
                out.push('>');
            }
        }
    }
}

fn is_void(name: &str) -> bool {
    matches!(
        name,
        "br" | "img"
            | "hr"
            | "input"
            | "meta"
            | "link"
            | "area"
            | "base"
            | "col"
            | "embed"
            | "source"
            | "track"
            | "wbr"
            | "param"
    )
}

pub fn escape_into(text: &str, attr: bool, out: &mut String) {
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attr => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
}

/// One element being read: its index and its name as written, to match end tags.
struct Open {
    el: usize,
    raw_name: String,
    /// How many namespace declarations it pushed.
    declared: usize,
}

struct Builder {
    els: Vec<El>,
    bases: Vec<Url>,
    root: Option<usize>,
    open: Vec<Open>,
    /// In-scope namespace declarations, innermost last: (prefix, uri); "" is the default.
    scopes: Vec<(String, String)>,
    entities: Vec<(String, String)>,
    expanded: usize,
}

/// Reads `text` as leniently as possible; `base` is where relative URLs resolve when the
/// document does not say otherwise.
pub fn read(text: &str, base: Url) -> Doc {
    let mut reader = Reader::from_str(text);
    let config = reader.config_mut();
    config.allow_dangling_amp = true;
    config.allow_unmatched_ends = true;
    config.check_end_names = false;
    config.check_comments = false;
    config.expand_empty_elements = false;
    let mut b = Builder {
        els: Vec::new(),
        bases: vec![base],
        root: None,
        open: Vec::new(),
        scopes: Vec::new(),
        entities: Vec::new(),
        expanded: 0,
    };
    let mut errors = 0;
    let mut last_error_at = u64::MAX;
    loop {
        match reader.read_event() {
            Ok(Event::Start(s)) => b.start(&s, true),
            Ok(Event::Empty(s)) => b.start(&s, false),
            Ok(Event::End(e)) => b.end(&e),
            Ok(Event::Text(t)) => b.text(&t),
            Ok(Event::CData(c)) => b.text(&c),
            Ok(Event::GeneralRef(r)) => {
                let resolved = b.resolve_ref(&r);
                b.text(&resolved);
            }
            Ok(Event::DocType(d)) => b.declare_entities(&d),
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(_) => {
                errors += 1;
                let at = reader.buffer_position();
                // An error that does not move the reader on would repeat forever.
                if errors > MAX_ERRORS || at == last_error_at || at as usize >= text.len() {
                    break;
                }
                last_error_at = at;
            }
        }
    }
    Doc {
        els: b.els,
        bases: b.bases,
        root: b.root,
    }
}

impl Builder {
    fn start(&mut self, s: &BytesStart<'_>, opens: bool) {
        let raw_name = s.name().as_ref().to_string();
        let local_name = lower(raw_name.rsplit(':').next().unwrap_or(&raw_name));
        // Entries never nest: an `<item>` opened inside an unclosed one starts the next.
        if (local_name == "item" || local_name == "entry")
            && let Some(at) = self
                .open
                .iter()
                .rposition(|o| self.els[o.el].name == local_name)
        {
            for open in self.open.drain(at..).rev() {
                self.scopes.truncate(self.scopes.len() - open.declared);
            }
        }
        let mut attrs: Vec<(String, String)> = Vec::new();
        let mut declared = 0;
        let mut attributes = s.html_attributes();
        attributes.with_checks(false);
        for attr in attributes.flatten() {
            let key = attr.key.as_ref();
            let value = unescape(&attr.value, &self.entities).into_owned();
            if key == "xmlns" {
                self.scopes.push((String::new(), value.clone()));
                declared += 1;
            } else if let Some(prefix) = key.strip_prefix("xmlns:") {
                self.scopes.push((prefix.to_string(), value.clone()));
                declared += 1;
            }
            attrs.push((lower(key), value));
        }
        let prefix = raw_name.split_once(':').map_or("", |(p, _)| p);
        let uri = self
            .scopes
            .iter()
            .rev()
            .find(|(p, _)| p == prefix)
            .map(|(_, u)| u.clone());
        let ns = match (&uri, prefix) {
            (Some(u), _) => classify(u),
            (None, "") => Ns::Core,
            (None, p) => guess_prefix(p),
        };
        let parent = self.open.last().map(|o| o.el);
        let parent_base = parent.map_or(0, |p| self.els[p].base);
        let base = match attrs.iter().find(|(k, _)| k == "xml:base") {
            Some((_, b)) => match self.bases[parent_base].join(b.trim()) {
                Ok(url) => {
                    self.bases.push(url);
                    self.bases.len() - 1
                }
                Err(_) => parent_base,
            },
            None => parent_base,
        };
        if self.open.len() >= MAX_DEPTH {
            // Too deep: the element is dropped, its text lands in its ancestor.
            self.scopes.truncate(self.scopes.len() - declared);
            if opens && let Some(top) = self.open.last() {
                self.open.push(Open {
                    el: top.el,
                    raw_name,
                    declared: 0,
                });
            }
            return;
        }
        let index = self.els.len();
        self.els.push(El {
            ns,
            name: local_name,
            attrs,
            children: Vec::new(),
            base,
        });
        match parent {
            Some(p) => self.els[p].children.push(Child::El(index)),
            None if self.root.is_none() => self.root = Some(index),
            // A second top-level element (a concatenated document): read as the root's child.
            None => {
                let root = self.root.expect("set above");
                self.els[root].children.push(Child::El(index));
            }
        }
        if opens {
            self.open.push(Open {
                el: index,
                raw_name,
                declared,
            });
        } else {
            self.scopes.truncate(self.scopes.len() - declared);
        }
    }

    fn end(&mut self, e: &quick_xml::events::BytesEnd<'_>) {
        let name = e.name();
        let name = name.as_ref().trim();
        // Closes the innermost element of that name and whatever is left open inside it;
        // an end tag matching nothing open is ignored.
        let Some(at) = self
            .open
            .iter()
            .rposition(|o| o.raw_name.eq_ignore_ascii_case(name))
        else {
            return;
        };
        for open in self.open.drain(at..).rev() {
            self.scopes.truncate(self.scopes.len() - open.declared);
        }
    }

    fn text(&mut self, t: &str) {
        let Some(open) = self.open.last() else {
            return;
        };
        let children = &mut self.els[open.el].children;
        if let Some(Child::Text(last)) = children.last_mut() {
            last.push_str(t);
        } else if !t.is_empty() {
            children.push(Child::Text(t.to_string()));
        }
    }

    fn resolve_ref(&mut self, r: &str) -> Cow<'static, str> {
        if let Some(c) = char_ref(r) {
            return Cow::Owned(c.to_string());
        }
        if let Some((_, v)) = self.entities.iter().find(|(n, _)| n == r)
            && self.expanded + v.len() <= MAX_EXPANSION_BYTES
        {
            self.expanded += v.len();
            return Cow::Owned(v.clone());
        }
        if let Some(v) = quick_xml::escape::resolve_html5_entity(r) {
            return Cow::Borrowed(v);
        }
        Cow::Owned(format!("&{r};"))
    }

    /// `<!ENTITY name "value">` declarations of the internal subset; values are taken
    /// literally (not expanded again), so they cannot nest.
    fn declare_entities(&mut self, doctype: &str) {
        let mut rest = doctype;
        while let Some(at) = rest.find("<!ENTITY") {
            rest = &rest[at + 8..];
            if self.entities.len() >= MAX_ENTITIES {
                break;
            }
            let mut parts = rest.trim_start().splitn(2, char::is_whitespace);
            let (Some(name), Some(after)) = (parts.next(), parts.next()) else {
                break;
            };
            if name == "%" {
                continue;
            }
            let after = after.trim_start();
            let Some(quote) = after.chars().next().filter(|q| *q == '"' || *q == '\'') else {
                continue;
            };
            let Some(end) = after[1..].find(quote) else {
                break;
            };
            let value = &after[1..1 + end];
            if value.len() <= MAX_ENTITY_VALUE && !value.contains('&') {
                self.entities.push((name.to_string(), value.to_string()));
            }
        }
    }
}

fn lower(s: &str) -> String {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        s.to_ascii_lowercase()
    } else {
        s.to_string()
    }
}

/// `#38`, `#x26`: the character, when it is one XML allows.
fn char_ref(r: &str) -> Option<char> {
    let num = r.strip_prefix('#')?;
    let code = match num.strip_prefix(['x', 'X']) {
        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
        None => num.parse().ok()?,
    };
    // Windows-1252 code points written as references (`&#146;`) mean the curly quote.
    if (0x80..0xA0).contains(&code) {
        let byte = [code as u8];
        let (text, _) = encoding_rs::WINDOWS_1252.decode_without_bom_handling(&byte);
        return text.chars().next();
    }
    char::from_u32(code).filter(|c| *c != '\0')
}

/// Resolves references in an attribute value, leaving what is not one as written.
fn unescape<'a>(raw: &'a str, entities: &[(String, String)]) -> Cow<'a, str> {
    if !raw.contains('&') {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let end = rest[1..].find(';').filter(|e| *e <= 32).map(|e| e + 1);
        let resolved = end.and_then(|end| {
            let name = &rest[1..end];
            char_ref(name)
                .map(|c| c.to_string())
                .or_else(|| {
                    entities
                        .iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, v)| v.clone())
                })
                .or_else(|| quick_xml::escape::resolve_html5_entity(name).map(str::to_string))
                .map(|v| (v, end))
        });
        match resolved {
            Some((value, end)) => {
                out.push_str(&value);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("https://example.com/feed").expect("valid")
    }

    #[test]
    fn unclosed_and_stray_tags_keep_what_was_read() {
        let doc = read(
            "<rss><channel><item><title>A &amp; B &nbsp;&bogus; & c</title></foo><item><title>Two",
            base(),
        );
        let root = doc.root.expect("a root");
        assert_eq!(doc.el(root).name, "rss");
        let titles: Vec<String> = (0..doc.els.len())
            .filter(|i| doc.el(*i).name == "title")
            .map(|i| doc.text(i))
            .collect();
        assert_eq!(titles, vec!["A & B \u{a0}&bogus; & c", "Two"]);
    }

    #[test]
    fn entities_of_the_internal_subset_resolve_without_nesting() {
        let doc = read(
            "<!DOCTYPE rss [<!ENTITY e \"ee\"><!ENTITY n \"&e;&e;\">]><rss>&e;&n;</rss>",
            base(),
        );
        assert_eq!(doc.text(0), "ee&n;");
    }

    #[test]
    fn xml_base_nests() {
        let doc = read(
            "<feed xml:base=\"http://a.example/x/\"><entry xml:base=\"y/\"><link href=\"z\"/></entry></feed>",
            base(),
        );
        let link = doc.els.iter().position(|e| e.name == "link").expect("link");
        assert_eq!(
            doc.base(link).join("z").expect("joins").as_str(),
            "http://a.example/x/y/z"
        );
    }
}
