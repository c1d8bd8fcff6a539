//! Property tests over feed parsing, item identity and URL canonicalization: random and
//! truncated input never panics, always ends in a value or one error, and identities and
//! canonical URLs keep their invariants. A fixed seed keeps every run the same; set
//! `FEEDWIRE_PROPTEST_SEED` to explore others.

use feedwire::dedup::{canonical_url, dedup_key};
use feedwire::parse::{Headers, Identity, parse_feed, parse_response};
use url::Url;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

fn seed() -> u64 {
    std::env::var("FEEDWIRE_PROPTEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_f00d_cafe_d00d)
}

const PIECES: &[&str] = &[
    "<rss version=\"2.0\">",
    "<channel>",
    "</channel>",
    "</rss>",
    "<item>",
    "</item>",
    "<title>",
    "</title>",
    "<link>",
    "</link>",
    "<guid>",
    "</guid>",
    "<description>",
    "</description>",
    "<feed xmlns=\"http://www.w3.org/2005/Atom\">",
    "</feed>",
    "<entry>",
    "</entry>",
    "<id>",
    "</id>",
    "<link href=\"",
    "\"/>",
    "<![CDATA[",
    "]]>",
    "&amp;",
    "&lt;p&gt;",
    "&#x1F600;",
    "&bogus;",
    "<!DOCTYPE x [<!ENTITY e \"ee\">]>",
    "&e;",
    "https://example.com/a?utm_source=x&b=2#f",
    "/relative/path",
    "http://[::1]:80/x",
    "javascript:alert(1)",
    "Ünïcödé",
    "\u{0}",
    "\u{feff}",
    "<?xml version=\"1.0\"?>",
    "{\"version\":\"https://jsonfeed.org/version/1.1\",\"items\":[",
    "{\"id\":\"1\",\"url\":\"/x\"}",
    "]}",
    ",",
    "\"",
    "<",
    ">",
    " ",
    "\n",
    "<pubDate>Fri, 27 Nov 2026 10:00:00 GMT</pubDate>",
    "<published>2026-13-45T99:00:00Z</published>",
];

fn random_doc(rng: &mut Rng) -> Vec<u8> {
    let mut doc = String::new();
    for _ in 0..rng.below(60) {
        doc.push_str(rng.pick(PIECES));
    }
    let mut bytes = doc.into_bytes();
    // Sometimes a few random bytes, invalid UTF-8 included.
    for _ in 0..rng.below(4) {
        let at = rng.below(bytes.len() + 1);
        bytes.insert(at, (rng.next() & 0xff) as u8);
    }
    bytes
}

fn check_feed(bytes: &[u8], base: &Url) {
    let Ok(feed) = parse_feed(bytes, base, Identity::Guid) else {
        return;
    };
    let mut keys = std::collections::HashSet::new();
    for item in &feed.items {
        let key = item.key.as_str();
        assert!(
            key.starts_with("guid:") || key.starts_with("url:") || key.starts_with("hash:"),
            "identity {key:?} has a known kind"
        );
        assert!(
            keys.insert(key.to_string()),
            "one identity per item in a document: {key:?}"
        );
        if let (Some(link), Some(url)) = (&item.link, &item.url) {
            assert_eq!(
                &canonical_url(link),
                url,
                "the item URL is the canonical link"
            );
            assert!(url.fragment().is_none());
        }
    }
}

#[test]
fn random_feed_documents_never_panic_and_keep_identity_invariants() {
    let mut rng = Rng(seed());
    let base = Url::parse("https://example.com/feed.xml").expect("base");
    for _ in 0..3000 {
        let doc = random_doc(&mut rng);
        check_feed(&doc, &base);
    }
}

/// What a parse may hold beyond the input: entity expansion is capped at 1 MiB in all, and
/// each item adds its identity and canonical URL.
const EXPANSION_ALLOWANCE: usize = (1 << 20) + 4096;

fn output_size(feed: &feedwire::model::ParsedFeed) -> usize {
    feed.items
        .iter()
        .map(|i| {
            i.title.as_ref().map_or(0, String::len)
                + i.summary.as_ref().map_or(0, String::len)
                + i.content_html.as_ref().map_or(0, String::len)
                + i.author.as_ref().map_or(0, String::len)
                + i.categories.iter().map(String::len).sum::<usize>()
        })
        .sum()
}

#[test]
fn arbitrary_bytes_with_any_headers_never_panic_and_stay_bounded() {
    let mut rng = Rng(seed() ^ 0x0bad_f00d);
    let base = Url::parse("https://example.com/feed.xml").expect("base");
    let types = [
        None,
        Some("text/xml"),
        Some("text/xml; charset=utf-16"),
        Some("application/rss+xml; charset='koi8-r'"),
        Some("application/atom+xml; charset=\"no-such\""),
        Some("application/octet-stream; charset=big5"),
        Some("application/feed+json"),
    ];
    for round in 0..3000 {
        let mut doc = random_doc(&mut rng);
        match round % 4 {
            // The same document in 16- and 32-bit layouts, with or without a BOM.
            1 => {
                let text = String::from_utf8_lossy(&doc).into_owned();
                doc = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
            }
            2 => {
                let text = String::from_utf8_lossy(&doc).into_owned();
                doc = vec![0, 0, 0xFE, 0xFF];
                doc.extend(text.chars().flat_map(|c| (c as u32).to_be_bytes()));
            }
            3 => {
                for _ in 0..rng.below(64) {
                    doc.push((rng.next() & 0xff) as u8);
                }
            }
            _ => {}
        }
        let headers = Headers {
            content_type: types[rng.below(types.len())],
            content_location: ["", "/base/", "http://[bad"][rng.below(3)].into(),
        };
        if let Ok(feed) = parse_response(&doc, headers, &base, Identity::Guid) {
            let bound = doc.len() * 4 + EXPANSION_ALLOWANCE;
            assert!(
                output_size(&feed) <= bound,
                "{} bytes of output from {} of input",
                output_size(&feed),
                doc.len()
            );
        }
    }
}

#[test]
fn an_entity_bomb_stays_within_the_expansion_cap() {
    let base = Url::parse("https://example.com/feed.xml").expect("base");
    let mut doc = String::from("<!DOCTYPE rss [<!ENTITY big \"");
    doc.push_str(&"x".repeat(1000));
    doc.push_str("\">]><rss><channel><item><title>");
    doc.push_str(&"&big;".repeat(20_000));
    doc.push_str("</title></item></channel></rss>");
    let feed = parse_feed(doc.as_bytes(), &base, Identity::Guid).expect("parses");
    let title = feed.items[0].title.as_deref().unwrap_or("");
    assert!(
        title.len() <= (1 << 20) + doc.len(),
        "expansion is capped: {} bytes",
        title.len()
    );
}

#[test]
fn truncations_of_real_feeds_never_panic() {
    let base = Url::parse("https://example.com/feed.xml").expect("base");
    let rss = br#"<?xml version="1.0"?><rss version="2.0"><channel><title>T &amp; co</title>
        <item><guid>1</guid><title>One</title><link>/a?utm_source=x</link><description>&lt;p&gt;Hi&lt;/p&gt;</description>
        <pubDate>Fri, 27 Nov 2026 10:00:00 GMT</pubDate></item>
        <item><title>Two</title><link>https://Example.com:443/b#x</link></item></channel></rss>"#;
    let atom = br#"<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>A</title><id>urn:a</id>
        <entry><id>urn:1</id><title type="html">&lt;b&gt;One&lt;/b&gt;</title><link href="/one"/><updated>2026-11-27T10:00:00Z</updated>
        <content type="html">&lt;p&gt;Body&lt;/p&gt;</content></entry></feed>"#;
    let json = br#"{"version":"https://jsonfeed.org/version/1.1","title":"J","items":[{"id":"1","url":"/x","content_html":"<p>x</p>"}]}"#;
    for doc in [&rss[..], &atom[..], &json[..]] {
        for cut in 0..=doc.len() {
            check_feed(&doc[..cut], &base);
        }
    }
}

#[test]
fn canonicalization_is_idempotent_on_random_urls() {
    let mut rng = Rng(seed() ^ 0xa5a5);
    let hosts = [
        "Example.COM",
        "www.example.com",
        "m.example.co.uk",
        "127.0.0.1",
        "[::1]",
        "xn--bcher-kva.example",
        "amp.news.example",
    ];
    let paths = [
        "",
        "/",
        "/a/b/",
        "/amp",
        "/story.amp.html",
        "/index.html",
        "/%7Euser/%41",
        "/ü/ß",
        "/a//b",
    ];
    let params = [
        "utm_source=x",
        "fbclid=1",
        "id=7",
        "p=2",
        "amp=1",
        "b=2",
        "a=1",
        "outputType=amp",
        "q=%20x",
    ];
    for _ in 0..5000 {
        let scheme = if rng.below(2) == 0 { "http" } else { "https" };
        let port = [":80", ":443", ":8080", ""][rng.below(4)];
        let mut s = format!("{scheme}://{}{port}{}", rng.pick(&hosts), rng.pick(&paths));
        let n = rng.below(4);
        for i in 0..n {
            s.push(if i == 0 { '?' } else { '&' });
            s.push_str(rng.pick(&params));
        }
        if rng.below(3) == 0 {
            s.push_str("#frag");
        }
        let Ok(url) = Url::parse(&s) else { continue };
        let once = canonical_url(&url);
        let twice = canonical_url(&once);
        assert_eq!(once, twice, "canonical form of {s} is stable");
        assert!(once.fragment().is_none_or(|f| f.starts_with('!')), "{once}");
        assert!(
            once.query_pairs()
                .all(|(k, _)| !k.starts_with("utm_") && k != "fbclid"),
            "{once}"
        );
        assert_eq!(dedup_key(&once), dedup_key(&twice));
    }
}
