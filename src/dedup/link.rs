//! Canonical URLs and the URL keys that recognise the same page behind different links.
//!
//! Two forms, on purpose:
//!
//! - [`canonical_url`] is still a URL a reader can open: it only drops what never selects
//!   content (tracking parameters, fragments, default ports, AMP markers served by the same
//!   host) and normalises spelling (case, percent-encoding, query order). It never guesses a
//!   different host, so `www.` stays and `amp.example.com` is not rewritten.
//! - [`dedup_key`] is not a URL: it also folds what is *usually* the same page (scheme,
//!   `www.`/`m.`/`amp.` host labels, a trailing slash, `index.html`). It is only compared,
//!   never shown or fetched, so a fold that is wrong for an odd site costs a missed
//!   distinction between two pages of that site, not a broken link.

use url::Url;

/// Query parameters that only track the reader and never select content (lower case).
///
/// Generic names such as `ref`, `source`, `from`, `id`, `p`, `page` are absent on purpose:
/// some sites use them to choose what is shown (GitHub's `ref`, WordPress's `p`).
const TRACKING_PARAMS: &[&str] = &[
    // Ad and social click identifiers.
    "fbclid",
    "gclid",
    "gclsrc",
    "gbraid",
    "wbraid",
    "dclid",
    "msclkid",
    "yclid",
    "ysclid",
    "twclid",
    "ttclid",
    "li_fat_id",
    "igshid",
    "igsh",
    "epik",
    "rb_clickid",
    "__twitter_impression",
    "ref_src",
    "ref_url",
    "__tn__",
    "__cft__",
    // Mail and marketing automation.
    "mc_cid",
    "mc_eid",
    "_hsenc",
    "_hsmi",
    "__hstc",
    "__hssc",
    "__hsfp",
    "hsctatracking",
    "mkt_tok",
    "vero_id",
    "vero_conv",
    "oly_anon_id",
    "oly_enc_id",
    "wickedid",
    // Analytics and campaign tags.
    "_ga",
    "_gl",
    "_openstat",
    "spm",
    "scm",
    "s_cid",
    "cmpid",
    "icid",
    "ncid",
    "ocid",
    "smid",
    "sr_share",
    "xtor",
    "at_medium",
    "at_campaign",
    "cmp",
    "wt.mc_id",
    "soc_src",
    "soc_trk",
    "guccounter",
    "guce_referrer",
    "guce_referrer_sig",
    "pk_campaign",
    "pk_kwd",
    "pk_keyword",
    "pk_source",
    "pk_medium",
    "pk_content",
    "pk_cid",
];

/// Query parameter prefixes that only track the reader (lower case).
const TRACKING_PREFIXES: &[&str] = &["utm_", "mtm_", "hsa_", "itm_"];

/// Query parameters that only ask for the AMP rendering of the page, or that the AMP
/// viewer adds (lower case).
const AMP_PARAMS: &[&str] = &[
    "amp_js_v",
    "amp_gsa",
    "amp_r",
    "usqp",
    "__amp_source_origin",
];

/// Host labels that name a rendering of the site rather than a different site; folded in
/// [`dedup_key`] when they are left of the registrable domain.
const FOLDED_HOST_LABELS: &[&str] = &["www", "m", "mobile", "amp"];

/// Directory index files that serve the same page as the directory; folded in [`dedup_key`].
const INDEX_FILES: &[&str] = &[
    "index.html",
    "index.htm",
    "index.php",
    "index.shtml",
    "default.aspx",
];

fn is_tracking(name: &str) -> bool {
    TRACKING_PARAMS.contains(&name) || TRACKING_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Whether a query parameter only asks for the AMP page (`?amp`, `?amp=1`,
/// `?outputType=amp`, …).
fn is_amp_marker(name: &str, value: &str) -> bool {
    let value = value.to_ascii_lowercase();
    match name {
        "amp" | "_amp" => matches!(value.as_str(), "" | "1" | "true" | "yes"),
        "outputtype" | "output" | "format" => value == "amp",
        _ => AMP_PARAMS.contains(&name),
    }
}

/// The canonical form of a link (DESIGN §4).
///
/// - scheme and host lower case, trailing dot of the host removed, default port removed;
/// - fragment removed, except a `#!` "hash-bang" fragment, which selects content;
/// - tracking parameters removed ([`TRACKING_PARAMS`], `utm_*`, …), remaining parameters
///   sorted, an empty query removed;
/// - percent-encoding normalised: escapes of unreserved characters decoded, the others
///   upper-case hex;
/// - AMP renderings served by the same host mapped to the plain page (`/amp`, `/amp/`,
///   `.amp`, `.amp.html`, a leading `/amp/`, `?amp`, `?amp=1`, `?outputType=amp`), and
///   Google AMP cache / viewer links (`*.cdn.ampproject.org/c/s/…`, `google.com/amp/s/…`)
///   mapped to the page they wrap.
///
/// The result is still a link a reader can open; folds that guess a different host (such
/// as `www.`) are only done by [`dedup_key`].
pub fn canonical_url(url: &Url) -> Url {
    let mut out = unwrap_amp_cache(url).unwrap_or_else(|| url.clone());
    if !matches!(out.scheme(), "http" | "https") {
        return out;
    }
    if let Some(host) = out.host_str()
        && host.len() > 1
        && host.ends_with('.')
    {
        let trimmed = host.trim_end_matches('.').to_owned();
        // Cannot fail: the host was valid with the dot.
        let _ = out.set_host(Some(&trimmed));
    }
    if let Some(fragment) = out.fragment()
        && !fragment.starts_with('!')
    {
        out.set_fragment(None);
    }
    let path = normalize_percent(&strip_amp_path(out.path()));
    out.set_path(&path);
    let query = out.query().map(canonical_query);
    out.set_query(query.as_deref().filter(|q| !q.is_empty()));
    out
}

/// The query with tracking and AMP parameters removed, escapes normalised, sorted.
fn canonical_query(query: &str) -> String {
    let mut kept: Vec<String> = query
        .split('&')
        .filter(|segment| !segment.is_empty())
        .map(normalize_percent)
        .filter(|segment| {
            let (name, value) = segment.split_once('=').unwrap_or((segment, ""));
            let name = decode_component(name).to_ascii_lowercase();
            !is_tracking(&name) && !is_amp_marker(&name, &decode_component(value))
        })
        .collect();
    kept.sort();
    kept.join("&")
}

/// A query component decoded for comparison (`+` is a space in a query).
fn decode_component(s: &str) -> String {
    let s = s.replace('+', " ");
    percent_encoding::percent_decode_str(&s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Decodes escapes of unreserved characters (RFC 3986 §6.2.2.2) and upper-cases the hex
/// digits of the others, so `%7Euser`, `~user` and `%7euser` are one spelling.
fn normalize_percent(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).and_then(|b| hex_value(*b)),
                bytes.get(i + 2).and_then(|b| hex_value(*b)),
            )
        {
            let byte = hi << 4 | lo;
            if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
                out.push(char::from(byte));
            } else {
                out.push('%');
                out.push(char::from(HEX_UPPER[usize::from(hi)]));
                out.push(char::from(HEX_UPPER[usize::from(lo)]));
            }
            i += 3;
            continue;
        }
        // Everything else is copied as is; `s` is valid UTF-8 and '%' is ASCII, so the
        // copied run ends on a character boundary.
        let next = s[i + 1..].find('%').map_or(s.len(), |n| i + 1 + n);
        out.push_str(&s[i..next]);
        i = next;
    }
    out
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The path of the plain page for an AMP path: `/a/amp`, `/a/amp/`, `/a.amp`,
/// `/a.amp.html` and `/amp/a` all give `/a` (or `/a/`, `/a.html`).
fn strip_amp_path(path: &str) -> String {
    let trailing_slash = path.len() > 1 && path.ends_with('/');
    let mut segments: Vec<&str> = path
        .trim_start_matches('/')
        .trim_end_matches('/')
        .split('/')
        .collect();
    if segments.len() >= 2
        && segments
            .last()
            .is_some_and(|s| s.eq_ignore_ascii_case("amp"))
    {
        segments.pop();
    } else if segments.len() >= 2 && segments[0].eq_ignore_ascii_case("amp") {
        segments.remove(0);
    }
    let mut joined = String::with_capacity(path.len());
    for segment in &segments {
        joined.push('/');
        joined.push_str(segment);
    }
    if let Some(stem) = joined.strip_suffix(".amp.html") {
        joined = format!("{stem}.html");
    } else if let Some(stem) = joined.strip_suffix(".amp")
        && !stem.ends_with('/')
    {
        joined = stem.to_owned();
    }
    if joined.is_empty() || trailing_slash {
        joined.push('/');
    }
    joined
}

/// The page wrapped by a Google AMP cache or AMP viewer link, if `url` is one.
fn unwrap_amp_cache(url: &Url) -> Option<Url> {
    let host = url.host_str()?;
    let rest = if host.ends_with(".cdn.ampproject.org") {
        // /c/s/host/path (https) or /c/host/path (http); also /v/ (viewer), /i/ (images).
        let path = url.path();
        ["/c/", "/v/", "/i/"]
            .iter()
            .find_map(|prefix| path.strip_prefix(prefix))?
    } else if host == "google.com" || host.starts_with("www.google.") {
        url.path().strip_prefix("/amp/")?
    } else {
        return None;
    };
    let (scheme, rest) = match rest.strip_prefix("s/") {
        Some(rest) => ("https", rest),
        None => ("http", rest),
    };
    let mut inner = Url::parse(&format!("{scheme}://{rest}")).ok()?;
    inner.host_str()?;
    inner.set_query(url.query());
    Some(inner)
}

/// The key under which a canonical URL is matched against stored items' URLs.
///
/// Not a URL: `host[:port]/path[?query]`, without scheme, with the host's leading `www.`,
/// `m.`, `mobile.` and `amp.` labels folded when they are left of the registrable domain
/// (so `www.example.co.uk` and `example.co.uk` match, `www.co.uk` stays), the trailing
/// slash and a final `index.html` (and similar) folded. Paths keep their case. For a URL
/// that is not http(s) the key is the URL itself. Pass the result of [`canonical_url`].
pub fn dedup_key(canonical: &Url) -> String {
    let Some(host) = canonical
        .host_str()
        .filter(|_| matches!(canonical.scheme(), "http" | "https"))
    else {
        return canonical.as_str().to_owned();
    };
    let mut key = fold_host(host).to_owned();
    if let Some(port) = canonical.port() {
        key.push(':');
        key.push_str(&port.to_string());
    }
    let mut path = canonical.path();
    if let Some((dir, file)) = path.rsplit_once('/')
        && INDEX_FILES.iter().any(|f| file.eq_ignore_ascii_case(f))
    {
        path = dir;
    }
    let path = path.trim_end_matches('/');
    key.push_str(if path.is_empty() { "/" } else { path });
    if let Some(query) = canonical.query() {
        key.push('?');
        key.push_str(query);
    }
    if let Some(fragment) = canonical.fragment() {
        key.push('#');
        key.push_str(fragment);
    }
    key
}

/// The host without the leading labels that only name a rendering of the same site.
fn fold_host(host: &str) -> &str {
    let Some(registrable) = registrable_domain(host) else {
        return host;
    };
    let mut host = host;
    while host.len() > registrable.len() {
        let Some((label, rest)) = host.split_once('.') else {
            break;
        };
        if !FOLDED_HOST_LABELS.contains(&label) || rest.len() < registrable.len() {
            break;
        }
        host = rest;
    }
    host
}

/// The registrable domain ("eTLD+1") of a host name; `None` for IP addresses and names
/// that are themselves a public suffix.
fn registrable_domain(host: &str) -> Option<&str> {
    if host.starts_with('[') || host.parse::<std::net::Ipv4Addr>().is_ok() {
        return None;
    }
    psl::domain_str(host)
}

/// Where the URL an item is known by came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CanonicalSource {
    /// The feed's link: the page gave no canonical, or one that could not be used.
    Link,
    /// The page's own `<link rel=canonical>`/`og:url`, on the link's registrable domain.
    Page,
    /// The page names a canonical on another registrable domain (a syndicated copy
    /// pointing at its source): the link stays the item's URL and the foreign canonical is
    /// only an extra dedup key.
    Syndicated,
}

/// The outcome of [`resolve_page_canonical`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalDecision {
    /// The item's canonical URL (the payload's `item.url`).
    pub url: Url,
    pub source: CanonicalSource,
    /// Every [`dedup_key`] the item is matched under, the item's own first, no repeats:
    /// the link's and the page canonical's (same site or foreign). The store records all
    /// of them and looks a candidate up by each.
    pub dedup_keys: Vec<String>,
}

/// Decides an item's canonical URL from its link and the canonical its page declares
/// (`<link rel="canonical">` or `og:url`, possibly relative).
///
/// The page's canonical wins when it is on the same registrable domain as the link;
/// on another domain it is kept only as an extra dedup key. A canonical that is not
/// http(s), does not parse, or points at the site's home page while the link does not (a
/// common CMS mistake that would otherwise merge every article of the site) is ignored.
pub fn resolve_page_canonical(item_url: &Url, page_canonical: Option<&str>) -> CanonicalDecision {
    let link = canonical_url(item_url);
    let page = page_canonical
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .and_then(|s| item_url.join(s).ok())
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .map(|u| canonical_url(&u))
        .filter(|u| !is_home_page(u) || is_home_page(&link));
    let Some(page) = page else {
        let dedup_keys = vec![dedup_key(&link)];
        return CanonicalDecision {
            url: link,
            source: CanonicalSource::Link,
            dedup_keys,
        };
    };
    let (url, source, other) = if same_site(&link, &page) {
        (page, CanonicalSource::Page, link)
    } else {
        (link, CanonicalSource::Syndicated, page)
    };
    let mut dedup_keys = vec![dedup_key(&url)];
    let other_key = dedup_key(&other);
    if other_key != dedup_keys[0] {
        dedup_keys.push(other_key);
    }
    CanonicalDecision {
        url,
        source,
        dedup_keys,
    }
}

fn is_home_page(url: &Url) -> bool {
    url.path() == "/" && url.query().is_none()
}

/// Whether two URLs are on the same registrable domain (the same host for IP addresses
/// and bare public suffixes).
fn same_site(a: &Url, b: &Url) -> bool {
    match (a.host_str(), b.host_str()) {
        (Some(ha), Some(hb)) => match (registrable_domain(ha), registrable_domain(hb)) {
            (Some(da), Some(db)) => da == db,
            _ => ha == hb,
        },
        _ => false,
    }
}
