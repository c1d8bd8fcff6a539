//! Extraction of single pages: the seed article, charsets, sanitizing, and robustness on
//! broken input.

use std::path::PathBuf;

use feedwire::extract::{CharsetRule, article_json, decode, extract};
use url::Url;

fn fixture(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
}

fn read(path: &str) -> Vec<u8> {
    std::fs::read(fixture(path)).expect("fixture is readable")
}

/// Whitespace folded to single spaces, as the scorer compares texts.
fn normalized(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn seed_article_extracts_lead_and_body_only() {
    let (html, _, _) = decode(&read("seed-article/page.html"), None);
    let expected = String::from_utf8(read("seed-article/expected.txt")).expect("utf-8");
    let article = extract(&html, None);
    assert_eq!(normalized(&article.text), normalized(&expected));
    assert_eq!(
        article.title.as_deref(),
        Some(
            "L'OCS confrontée à de nouveaux défis en matière de sécurité (ministre kazakhe des AE)"
        )
    );
    assert_eq!(article.language.as_deref(), Some("fr"));
    assert_eq!(article.site_name.as_deref(), Some("RIA Novosti"));
    assert_eq!(
        article.canonical_url.as_deref(),
        Some("https://fr.example-news.test/international/20060515/ocs-defis-securite.html")
    );
    assert_eq!(
        article.published.map(|d| d.to_rfc3339()),
        Some("2006-05-15T10:02:00+00:00".to_string())
    );
    // Paragraphs are split by exactly one blank line.
    assert_eq!(article.text.matches("\n\n").count(), 6);
    assert!(!article.text.contains("\n\n\n"));
    assert_eq!(article.word_count, article.text.split_whitespace().count());
}

#[test]
fn seed_article_json_carries_metadata_and_charset() {
    let (html, encoding, rule) = decode(&read("seed-article/page.html"), None);
    let article = extract(&html, None);
    let json: serde_json::Value =
        serde_json::from_str(&article_json(&article, Some((encoding.name(), rule))))
            .expect("valid json");
    assert_eq!(json["language"], "fr");
    assert_eq!(json["published"], "2006-05-15T10:02:00Z");
    assert_eq!(json["charset"]["encoding"], "UTF-8");
    assert_eq!(json["charset"]["rule"], "meta");
    assert_eq!(json["text"], article.text.as_str());
}

fn check_charset(
    file: &str,
    content_type: Option<&str>,
    encoding: &'static encoding_rs::Encoding,
    rule: CharsetRule,
    sample: &str,
) {
    let (text, found, decided) = decode(&read(&format!("charset/{file}")), content_type);
    assert_eq!((found.name(), decided), (encoding.name(), rule), "{file}");
    assert!(
        text.contains(sample),
        "{file}: {sample:?} not in decoded text"
    );
    assert!(!text.contains('\u{FFFD}'), "{file}: replacement characters");
}

#[test]
fn charset_from_http_header_only() {
    let ct = Some("text/html; charset=windows-1251");
    check_charset(
        "windows-1251-header.html",
        ct,
        encoding_rs::WINDOWS_1251,
        CharsetRule::HttpHeader,
        "Правительство России",
    );
    let ct = Some("text/html;charset=\"GBK\"");
    check_charset(
        "gbk-header.html",
        ct,
        encoding_rs::GBK,
        CharsetRule::HttpHeader,
        "北京市政府",
    );
}

#[test]
fn charset_from_meta_tag_only() {
    check_charset(
        "windows-1252-meta.html",
        None,
        encoding_rs::WINDOWS_1252,
        CharsetRule::MetaTag,
        "a déclaré que la coopération",
    );
    check_charset(
        "shift_jis-meta.html",
        None,
        encoding_rs::SHIFT_JIS,
        CharsetRule::MetaTag,
        "東京都は本日",
    );
    check_charset(
        "euc-kr-meta.html",
        None,
        encoding_rs::EUC_KR,
        CharsetRule::MetaTag,
        "서울시는 오늘",
    );
    // A header without a charset parameter does not decide anything.
    check_charset(
        "euc-kr-meta.html",
        Some("text/html"),
        encoding_rs::EUC_KR,
        CharsetRule::MetaTag,
        "서울시는 오늘",
    );
}

#[test]
fn charset_detected_when_nothing_names_it() {
    check_charset(
        "windows-1251-detect.html",
        None,
        encoding_rs::WINDOWS_1251,
        CharsetRule::Detected,
        "Правительство России",
    );
    check_charset(
        "shift_jis-detect.html",
        None,
        encoding_rs::SHIFT_JIS,
        CharsetRule::Detected,
        "東京都は本日",
    );
    check_charset(
        "gbk-detect.html",
        None,
        encoding_rs::GBK,
        CharsetRule::Detected,
        "北京市政府",
    );
    check_charset(
        "euc-kr-detect.html",
        None,
        encoding_rs::EUC_KR,
        CharsetRule::Detected,
        "서울시는 오늘",
    );
}

#[test]
fn bom_beats_header_and_meta() {
    let ct = Some("text/html; charset=iso-8859-1");
    check_charset(
        "utf-8-bom.html",
        ct,
        encoding_rs::UTF_8,
        CharsetRule::Bom,
        "Правительство России",
    );
}

#[test]
fn header_beats_meta_and_plain_ascii_is_default() {
    let (_, enc, rule) = decode(
        b"<meta charset=\"shift_jis\"><p>abc</p>",
        Some("text/html; charset=utf-8"),
    );
    assert_eq!((enc, rule), (encoding_rs::UTF_8, CharsetRule::HttpHeader));
    let (text, enc, rule) = decode(b"<p>plain</p>", None);
    assert_eq!(
        (enc, rule, text.as_str()),
        (encoding_rs::UTF_8, CharsetRule::Default, "<p>plain</p>")
    );
    assert_eq!(CharsetRule::Default.as_str(), "default");
    assert_eq!(CharsetRule::HttpHeader.as_str(), "http-header");
}

#[test]
fn legacy_page_extracts_text() {
    let (html, _, _) = decode(&read("charset/windows-1251-detect.html"), None);
    let article = extract(&html, None);
    assert!(
        article.text.contains("Министр экономического развития"),
        "{}",
        article.text
    );
}

const UNSAFE_PAGE: &str = r#"<html><head><title>Unsafe</title><base href="/news/"></head><body>
<nav><a href="/">Home</a></nav>
<article>
  <h1>Headline</h1>
  <p onclick="steal()">The council met on Tuesday to discuss the budget, and members agreed on a plan for the new
  library. <a href="story/2.html" onmouseover="x()">Read the earlier report</a> for the background, which covers
  the long debate over funding, staffing and opening hours in some detail.</p>
  <script>document.write("injected")</script>
  <iframe src="https://ads.example.net/frame"></iframe>
  <p style="color:red">The plan still needs approval from the regional government, which is expected to decide in
  the spring after a public consultation. <img src="img/plan.png" alt="The plan" onerror="boom()"></p>
  <p>A third paragraph says that residents can comment until the end of March, by letter or online, and that
  every comment will be answered. <a href="javascript:alert(1)">Click</a></p>
</article>
</body></html>"#;

#[test]
fn sanitized_html_has_no_scripts_frames_or_handlers_and_absolute_links() {
    let base = Url::parse("https://city.example.org/2024/budget.html").expect("url");
    let article = extract(UNSAFE_PAGE, Some(&base));
    let html = article.html.to_ascii_lowercase();
    assert!(html.contains("the council met on tuesday"), "{html}");
    for bad in [
        "<script",
        "<iframe",
        "onclick",
        "onmouseover",
        "onerror",
        "javascript:",
        "style=",
    ] {
        assert!(!html.contains(bad), "{bad} in {html}");
    }
    assert!(
        html.contains(r#"href="https://city.example.org/news/story/2.html""#),
        "{html}"
    );
    assert!(
        html.contains(r#"src="https://city.example.org/news/img/plan.png""#),
        "{html}"
    );
    assert!(!article.text.contains("injected"));
    assert!(!article.text.contains("Home"));
}

/// xorshift64*: a small deterministic generator so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const SOUP: &[&str] = &[
    "<div>",
    "</div>",
    "<p>",
    "</p>",
    "<article>",
    "</article>",
    "<table><tr><td>",
    "</td>",
    "</table>",
    "<ul><li>",
    "</li>",
    "<a href='/x'>",
    "</a>",
    "<script>",
    "</script>",
    "<style>",
    "<br>",
    "<pre>",
    "</pre>",
    "<h1>",
    "</h1>",
    "<header>",
    "<footer>",
    "<div class='comments'>",
    "<div hidden>",
    "<span style='display:none'>",
    "<!--",
    "-->",
    "<meta charset=koi8-r>",
    "<img src=x onerror=y>",
    "&amp;",
    "&#0;",
    "&shy;",
    "\u{200B}",
    "Некоторый текст, ",
    "some words here, and more. ",
    "引用",
    "<",
    ">",
    "\"",
    "'",
    "<![CDATA[",
    "<svg><foreignObject><p>",
    "<template>",
    "<select><option>",
    "<noscript>",
    "<base href='//x'>",
];

#[test]
fn random_and_truncated_html_never_panics() {
    let base = Url::parse("https://example.org/a/b").expect("url");
    let seed = String::from_utf8(read("seed-article/page.html")).expect("utf-8");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    // Truncations of a real page, cut at char boundaries.
    for _ in 0..150 {
        let mut cut = rng.below(seed.len());
        while !seed.is_char_boundary(cut) {
            cut -= 1;
        }
        let article = extract(&seed[..cut], Some(&base));
        assert!(!article.text.contains('\u{AD}'));
    }
    // Random tag soup.
    for _ in 0..200 {
        let mut page = String::new();
        for _ in 0..rng.below(300) {
            page.push_str(SOUP[rng.below(SOUP.len())]);
        }
        let article = extract(&page, if rng.below(2) == 0 { Some(&base) } else { None });
        let _ = article_json(&article, None);
    }
    // Random bytes through the decoder and the extractor.
    for _ in 0..100 {
        let bytes: Vec<u8> = (0..rng.below(2000)).map(|_| rng.next() as u8).collect();
        let (text, _, _) = decode(&bytes, None);
        extract(&text, None);
    }
    // Very deep nesting must not overflow the stack.
    let deep = "<div>".repeat(5_000)
        + "deep text, with a comma, and more words here"
        + &"</div>".repeat(5_000);
    extract(&deep, None);
}

/// A story whose page carries its text twice (a layout for wide screens and one for phones)
/// is given once; repeated code and repeated rows stay, since they are the page's own.
#[test]
fn a_story_carried_twice_is_given_once_but_repeated_code_stays() {
    let para = |i: usize| {
        format!(
            "<p>Paragraph {i} of the harbour story: the ferry company says the new timetable \
             starts in spring, and the council, which pays for the night crossings, agrees.</p>"
        )
    };
    let body: String = (1..=6).map(para).collect();
    let code = "<pre><code>ferry --route north --night\nferry --route north --night</code></pre>";
    let html = format!(
        "<html><head><title>Harbour timetable</title></head><body>\
         <article><h1>Harbour timetable</h1>\
         <div class=\"layout-wide\">{body}{code}</div>\
         <div class=\"layout-narrow\">{body}</div></article></body></html>"
    );
    let article = extract(&html, None);
    for i in 1..=6 {
        let said = format!("Paragraph {i} of the harbour story");
        assert_eq!(
            article.text.matches(&said).count(),
            1,
            "paragraph {i} once:\n{}",
            article.text
        );
    }
    assert_eq!(
        article.text.matches("ferry --route north --night").count(),
        2,
        "both lines of code:\n{}",
        article.text
    );
}
