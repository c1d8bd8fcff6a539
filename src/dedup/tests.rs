use super::*;
use url::Url;

fn url(s: &str) -> Url {
    Url::parse(s).expect("test URL parses")
}

/// The canonical form of `input` is `expected`.
fn check(input: &str, expected: &str) {
    assert_eq!(
        canonical_url(&url(input)).as_str(),
        expected,
        "canonical form of {input}"
    );
}

/// Whether two links are matched as the same page (same dedup key).
fn merges(a: &str, b: &str) -> bool {
    dedup_key(&canonical_url(&url(a))) == dedup_key(&canonical_url(&url(b)))
}

#[test]
fn canonical_forms() {
    for (input, expected) in [
        (
            "HTTPS://Example.COM:443/a/123?utm_source=rss&b=2&a=1#top",
            "https://example.com/a/123?a=1&b=2",
        ),
        ("http://example.com:80/x?fbclid=abc", "http://example.com/x"),
        (
            "http://example.com:8080/x?id=7",
            "http://example.com:8080/x?id=7",
        ),
        ("https://example.com./x", "https://example.com/x"),
        ("https://example.com", "https://example.com/"),
        ("https://example.com/x?", "https://example.com/x"),
        (
            "https://example.com/x?&&id=3&",
            "https://example.com/x?id=3",
        ),
        (
            "https://example.com/a/b/../c/./d",
            "https://example.com/a/c/d",
        ),
        (
            "https://example.com/%7Euser/%41rticle",
            "https://example.com/~user/Article",
        ),
        (
            "https://example.com/caf%c3%a9",
            "https://example.com/caf%C3%A9",
        ),
        ("https://example.com/café", "https://example.com/caf%C3%A9"),
        ("https://example.com/a%2fb", "https://example.com/a%2Fb"),
        (
            "https://example.com/s?q=a%20b",
            "https://example.com/s?q=a%20b",
        ),
        (
            "https://example.com/x?UTM_Source=x&utm_medium=y&utm_campaign=z&utm_content=w&utm_term=v",
            "https://example.com/x",
        ),
        (
            "https://example.com/x?gclid=1&dclid=2&msclkid=3&yclid=4&igshid=5&mc_cid=6&mc_eid=7",
            "https://example.com/x",
        ),
        (
            "https://example.com/x?_hsenc=1&_hsmi=2&mkt_tok=3&ref_src=twsrc&spm=a.b&__twitter_impression=true",
            "https://example.com/x",
        ),
        (
            "https://www.lemonde.example.fr/article.html?xtor=RSS-3208",
            "https://www.lemonde.example.fr/article.html",
        ),
        (
            "https://www.example.co.uk/news?CMP=share_btn_tw&page=2",
            "https://www.example.co.uk/news?page=2",
        ),
        (
            "https://example.com/?p=123&utm_source=feed",
            "https://example.com/?p=123",
        ),
        (
            "https://example.com/x?tag=b&tag=a",
            "https://example.com/x?tag=a&tag=b",
        ),
        (
            "https://example.com/x?ref=main",
            "https://example.com/x?ref=main",
        ),
        (
            "https://example.com/app#!/story/42",
            "https://example.com/app#!/story/42",
        ),
        // AMP renderings served by the same host.
        (
            "https://example.com/news/story/amp",
            "https://example.com/news/story",
        ),
        (
            "https://example.com/news/story/amp/",
            "https://example.com/news/story/",
        ),
        (
            "https://www.bbc.example.co.uk/news/world-123.amp",
            "https://www.bbc.example.co.uk/news/world-123",
        ),
        (
            "https://example.com/news/story.amp.html",
            "https://example.com/news/story.html",
        ),
        (
            "https://example.com/amp/news/story",
            "https://example.com/news/story",
        ),
        (
            "https://example.com/news/story?amp",
            "https://example.com/news/story",
        ),
        (
            "https://example.com/news/story?amp=1&id=4",
            "https://example.com/news/story?id=4",
        ),
        (
            "https://example.com/news/story?outputType=amp",
            "https://example.com/news/story",
        ),
        (
            "https://example.com/news/story?outputType=print",
            "https://example.com/news/story?outputType=print",
        ),
        ("https://example.com/amp", "https://example.com/amp"),
        (
            "https://www-example-com.cdn.ampproject.org/c/s/www.example.com/news/story",
            "https://www.example.com/news/story",
        ),
        (
            "https://www.google.com/amp/s/www.example.com/news/story/amp/",
            "https://www.example.com/news/story/",
        ),
        // Not http(s): left alone.
        ("mailto:desk@example.com", "mailto:desk@example.com"),
    ] {
        check(input, expected);
    }
}

#[test]
fn link_variants_merge() {
    for (a, b) in [
        ("https://example.com/a/1", "http://example.com/a/1"),
        ("https://example.com/a/1", "https://www.example.com/a/1"),
        ("https://example.com/a/1", "https://example.com/a/1/"),
        (
            "https://example.com/a/1",
            "https://EXAMPLE.com:443/a/1#comments",
        ),
        (
            "https://example.com/a/1?x=1&y=2",
            "https://example.com/a/1?y=2&x=1&utm_source=rss",
        ),
        (
            "https://example.com/a/1",
            "https://example.com/a/1?fbclid=IwAR0abc&gclid=xyz",
        ),
        ("https://www.example.com/a/1", "https://amp.example.com/a/1"),
        ("https://www.example.com/a/1", "https://m.example.com/a/1"),
        (
            "https://www.example.com/a/1/",
            "https://www.example.com/a/1/amp/",
        ),
        (
            "https://www.example.com/a/1",
            "https://www.example.com/a/1?outputType=amp",
        ),
        ("https://www.example.co.uk/a", "https://example.co.uk/a"),
        (
            "https://example.com/dir/",
            "https://example.com/dir/index.html",
        ),
        (
            "https://example.com/?p=12",
            "https://example.com/index.php?p=12",
        ),
        ("https://example.com/%7Ea", "https://example.com/~a"),
        (
            "https://www.example.com/news/x",
            "https://www-example-com.cdn.ampproject.org/c/s/www.example.com/news/x",
        ),
    ] {
        assert!(merges(a, b), "{a} and {b} should be one page");
    }
}

#[test]
fn different_pages_stay_apart() {
    for (a, b) in [
        (
            "https://example.com/article?id=1",
            "https://example.com/article?id=2",
        ),
        ("https://example.com/?p=1", "https://example.com/?p=2"),
        (
            "https://example.com/list?page=1",
            "https://example.com/list?page=2",
        ),
        ("https://example.com/a/1", "https://example.com/a/2"),
        ("https://example.com/a/1", "https://example.com/A/1"),
        ("https://example.com/a/1", "https://example.org/a/1"),
        (
            "https://news.example.com/a/1",
            "https://blog.example.com/a/1",
        ),
        ("http://example.com/a/1", "http://other.example/a/1"),
        ("https://example.com/a/1", "https://example.com:8443/a/1"),
        ("https://example.com/x?article=5", "https://example.com/x"),
        (
            "https://example.com/x?ref=v1",
            "https://example.com/x?ref=v2",
        ),
        ("https://example.github.io/a", "https://other.github.io/a"),
        ("https://www.co.uk/a", "https://co.uk/a"),
        ("https://example.com/app#!/a", "https://example.com/app#!/b"),
        (
            "https://example.com/news/story?amp=0",
            "https://example.com/news/story",
        ),
    ] {
        assert!(!merges(a, b), "{a} and {b} should stay apart");
    }
}

#[test]
fn page_canonical_on_same_site_wins() {
    let d = resolve_page_canonical(
        &url("https://m.example.com/s/123?utm_source=rss"),
        Some("https://www.example.com/2026/03/story-title"),
    );
    assert_eq!(d.source, CanonicalSource::Page);
    assert_eq!(
        d.url.as_str(),
        "https://www.example.com/2026/03/story-title"
    );
    assert_eq!(
        d.dedup_keys,
        ["example.com/2026/03/story-title", "example.com/s/123"]
    );

    let relative = resolve_page_canonical(&url("https://example.com/a/b?x=1"), Some("/a/b"));
    assert_eq!(relative.url.as_str(), "https://example.com/a/b");
    assert_eq!(relative.source, CanonicalSource::Page);
}

#[test]
fn foreign_canonical_is_an_extra_key() {
    let d = resolve_page_canonical(
        &url("https://localnews.example.net/world/quake"),
        Some("https://wire.example-news.com/world/quake-strikes"),
    );
    assert_eq!(d.source, CanonicalSource::Syndicated);
    assert_eq!(d.url.as_str(), "https://localnews.example.net/world/quake");
    assert_eq!(
        d.dedup_keys,
        [
            "localnews.example.net/world/quake",
            "wire.example-news.com/world/quake-strikes"
        ]
    );
}

#[test]
fn unusable_canonicals_are_ignored() {
    let link = url("https://example.com/news/42");
    for canonical in [
        None,
        Some(""),
        Some("  "),
        Some("https://example.com/"),
        Some("javascript:void(0)"),
        Some("http://[bad"),
    ] {
        let d = resolve_page_canonical(&link, canonical);
        assert_eq!(d.source, CanonicalSource::Link, "{canonical:?}");
        assert_eq!(d.dedup_keys, ["example.com/news/42"]);
    }
}

const STORY: &str = "The central bank left its benchmark interest rate unchanged on Wednesday for a third consecutive meeting, but signalled that it could begin lowering borrowing costs in the second half of the year if inflation continues to ease, according to a statement released after the two-day meeting of its monetary policy committee in the capital. Policymakers voted seven to two to keep rates on hold, with two members preferring an immediate quarter-point cut.";

#[test]
fn content_hash_folds_case_space_punctuation() {
    let a = content_hash(STORY).expect("long enough");
    let b = content_hash(&STORY.to_uppercase().replace(' ', "  \n").replace(',', " ;"))
        .expect("long enough");
    assert_eq!(a, b);
    assert_ne!(
        Some(a),
        content_hash(&STORY.replace("seven to two", "eight to one"))
    );
    assert_eq!(content_hash("Read more"), None);
    assert_eq!(
        normalize_text("Ｅｌｅｃｔｉｏｎ  RÉSULTATS, l'été!"),
        "election résultats l été"
    );
}

/// `STORY` three times over, so it is long enough for a sketch.
fn long_story() -> String {
    [STORY, STORY, STORY].join("\n\n")
}

#[test]
fn sketch_is_stable_and_gated_on_length() {
    let (sketch, bands) = sketch(&long_story()).expect("long enough");
    // Stored values: these figures must never change without a migration.
    assert_eq!(sketch.shingles(), 72);
    assert_eq!(
        bands.iter().map(|b| format!("{b:08x}")).collect::<Vec<_>>(),
        BANDS_OF_LONG_STORY
    );
    assert_eq!(Sketch::from_bytes(&sketch.to_bytes()), Some(sketch.clone()));
    assert_eq!(sketch::sketch("Too short to fingerprint."), None);
    assert_eq!(Sketch::from_bytes(&[1, 2, 3]), None);
    // Values out of order are not a sketch.
    assert_eq!(
        Sketch::from_bytes(&[2, 0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0]),
        None
    );
}

const BANDS_OF_LONG_STORY: [&str; 6] = [
    "f64f38a7", "9f56dfe0", "aa74d8e1", "7953cb58", "e95ddffc", "df721787",
];

#[test]
fn similarity_is_exact_on_whole_sketches() {
    let set = |range: std::ops::Range<u64>| -> Sketch {
        // Spread over the hash space, as shingle hashes are.
        Sketch::from_hashes(
            &range
                .map(|i| (i + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15))
                .collect::<Vec<_>>(),
        )
    };
    let a = set(0..100);
    // Half of the union in common.
    let s = a.similarity(&set(50..150));
    assert!((s.jaccard - 50.0 / 150.0).abs() < 1e-9, "{s:?}");
    assert!((s.containment - 0.5).abs() < 1e-9, "{s:?}");
    // A paragraph added: all of the smaller in the larger.
    let s = a.similarity(&set(0..120));
    assert!((s.containment - 1.0).abs() < 1e-9, "{s:?}");
    assert!(s.is_match());
    assert!(!a.similarity(&set(200..300)).is_match());
    // Larger than a sketch: the shared sample still sees them as one.
    let big = set(0..1000);
    let s = big.similarity(&set(0..1000));
    assert!((s.jaccard - 1.0).abs() < 1e-9, "{s:?}");
    let s = big.similarity(&set(500..1500));
    assert!((s.jaccard - 1.0 / 3.0).abs() < 0.1, "{s:?}");
}

#[test]
fn decision_order_and_reasons() {
    let text = long_story();
    let (sk, bands) = sketch(&text).expect("long enough");
    let base = Fingerprint {
        url_keys: vec!["example.com/a".into()],
        content_hash: Some([1; 32]),
        sketch: Some((sk.clone(), bands.clone())),
    };
    let other = |keys: &[&str], hash: Option<[u8; 32]>, near: bool| Fingerprint {
        url_keys: keys.iter().map(|k| (*k).to_owned()).collect(),
        content_hash: hash,
        sketch: near.then(|| (sk.clone(), bands.clone())),
    };
    assert_eq!(
        same_story(&other(&["x", "example.com/a"], None, false), &base, true),
        Some(DuplicateReason::Url)
    );
    assert_eq!(
        same_story(&other(&["b"], Some([1; 32]), true), &base, true),
        Some(DuplicateReason::Content)
    );
    assert_eq!(
        same_story(&other(&["b"], Some([2; 32]), true), &base, true),
        Some(DuplicateReason::Near)
    );
    assert_eq!(
        same_story(&other(&["b"], Some([2; 32]), true), &base, false),
        None
    );
    // Alike sketches that share no band are never looked at, as in the store.
    let mut unbanded = other(&["b"], Some([2; 32]), true);
    if let Some((_, b)) = unbanded.sketch.as_mut() {
        b.clear();
    }
    assert_eq!(same_story(&unbanded, &base, true), None);
    assert_eq!(
        same_story(
            &other(&["b"], None, false),
            &other(&["c"], None, false),
            true
        ),
        None
    );
    assert_eq!(DuplicateReason::Near.as_str(), "near");
    assert_eq!(DuplicateReason::Url.as_str(), "url");
    assert_eq!(DuplicateReason::Content.as_str(), "content");
}
