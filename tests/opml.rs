//! `feedwire opml import|export` on a feed reader's export: new feeds are printed or appended,
//! configured ones skipped, the result is a valid config, and an export reads back the same.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// Two feeds already configured: the OPML lists the first again (with another spelling of its
/// URL) and a different feed whose title gives the second one's name.
const CONFIG: &str = r#"
[[feeds]]
url = "https://blog.rust-lang.org/feed.xml"
name = "rust-blog"
tags = ["rust"]

[[feeds]]
url = "https://daringfireball.net/feeds/json"
name = "daring-fireball"
"#;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/opml")
        .join(name)
}

/// (url, name, tags) of the feeds the fixture adds, in document order.
fn expected_new() -> Vec<(&'static str, &'static str, Vec<&'static str>)> {
    vec![
        (
            "https://feeds.arstechnica.com/arstechnica/index",
            "ars-technica",
            vec!["Tech"],
        ),
        (
            "https://hnrss.org/frontpage?points=100&comments=10",
            "hacker-news-front-page",
            vec!["Tech", "Programming"],
        ),
        (
            "https://this-week-in-rust.org/atom.xml",
            "this-week-in-rust-twir",
            vec!["Tech", "Programming", "rust", "newsletters"],
        ),
        (
            "https://www.tagesschau.de/wirtschaft/index~rss2.xml",
            "wirtschaft-finanzen",
            vec!["Ökonomie — Nachrichten"],
        ),
        (
            "https://www.lemonde.fr/economie/rss_full.xml",
            "le-monde-économie",
            vec!["Ökonomie — Nachrichten", "fr"],
        ),
        (
            "https://daringfireball.net/feeds/main",
            "daring-fireball-2",
            vec![],
        ),
    ]
}

/// (url, name, tags) of each `[[feeds]]` entry of a TOML text.
fn toml_feeds(text: &str) -> Vec<(String, String, Vec<String>)> {
    let table: toml::Table = toml::from_str(text).expect("valid TOML");
    let Some(feeds) = table.get("feeds").and_then(|f| f.as_array()) else {
        return Vec::new();
    };
    feeds
        .iter()
        .map(|f| {
            let s = |k: &str| f.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
            let tags = f
                .get("tags")
                .and_then(|t| t.as_array())
                .map(|t| {
                    t.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            (s("url"), s("name"), tags)
        })
        .collect()
}

fn owned(v: Vec<(&str, &str, Vec<&str>)>) -> Vec<(String, String, Vec<String>)> {
    v.into_iter()
        .map(|(u, n, t)| {
            (
                u.to_string(),
                n.to_string(),
                t.into_iter().map(String::from).collect(),
            )
        })
        .collect()
}

#[test]
fn import_prints_new_feeds_and_skips_the_configured_one() {
    let setup = Setup::new(CONFIG);
    let before = std::fs::read_to_string(setup.config_path()).expect("config");
    let file = fixture("subscriptions.opml");
    let out = setup.run(&["opml", "import", &file.display().to_string()]);
    assert_ok(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(toml_feeds(&stdout), owned(expected_new()), "{stdout}");
    assert!(!stdout.contains("rust-lang.org"), "{stdout}");
    // The original titles stay visible as comments.
    assert!(
        stdout.contains("# This Week in Rust – \"TWiR\"\n[[feeds]]"),
        "{stdout}"
    );
    assert!(
        stderr.contains(
            "6 new, 1 already configured, 0 with an unusable URL, 1 outlines without a feed URL"
        ),
        "{stderr}"
    );
    let after = std::fs::read_to_string(setup.config_path()).expect("config");
    assert_eq!(before, after, "without --write the config is not touched");
}

#[test]
fn import_write_appends_a_valid_config_and_export_reads_back_the_same() {
    let setup = Setup::new(CONFIG);
    let before = std::fs::read_to_string(setup.config_path()).expect("config");
    let file = fixture("subscriptions.opml");
    let file = file.display().to_string();

    let out = setup.run(&["opml", "import", &file, "--write"]);
    assert_ok(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("added 6 feeds to "), "{stdout}");
    let backup = PathBuf::from(format!("{}.bak", setup.config_path().display()));
    assert_eq!(
        std::fs::read_to_string(&backup).expect("backup"),
        before,
        "the backup is the config as it was"
    );

    let out = setup.run(&["check"]);
    assert_ok(&out);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ok (8 feeds, 1 sink)"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A second import finds nothing new and leaves the file alone.
    let written = std::fs::read_to_string(setup.config_path()).expect("config");
    let out = setup.run(&["opml", "import", &file, "--write"]);
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("nothing to add"));
    assert_eq!(
        std::fs::read_to_string(setup.config_path()).expect("config"),
        written
    );

    // The export lists every configured feed: URL, name as title, tags (folder + categories).
    let out = setup.run(&["opml", "export"]);
    assert_ok(&out);
    let exported = feedwire::opml::parse_bytes(&out.stdout).expect("the export is OPML");
    let mut got: Vec<(String, String, Vec<String>)> = exported
        .feeds
        .into_iter()
        .map(|f| (f.url, f.title, f.tags))
        .collect();
    let mut want = owned(expected_new());
    want.push((
        "https://blog.rust-lang.org/feed.xml".into(),
        "rust-blog".into(),
        vec!["rust".into()],
    ));
    want.push((
        "https://daringfireball.net/feeds/json".into(),
        "daring-fireball".into(),
        vec![],
    ));
    got.sort();
    want.sort();
    assert_eq!(got, want, "{}", String::from_utf8_lossy(&out.stdout));

    // And the fixture's own URLs are exactly those of the export, but for the one already there.
    let original = feedwire::opml::parse_bytes(
        &std::fs::read(fixture("subscriptions.opml")).expect("fixture"),
    )
    .expect("fixture is OPML");
    for feed in original
        .feeds
        .iter()
        .filter(|f| !f.url.contains("rust-lang.org"))
    {
        assert!(
            got.iter().any(|(url, _, _)| url == &feed.url),
            "{} is missing from the export",
            feed.url
        );
    }
}

#[test]
fn export_escapes_names_tags_and_urls() {
    let setup = Setup::new(
        r#"
[[feeds]]
url = "https://example.com/feed?a=1&b=<2>&c='3'"
name = "q-and-a"
tags = ["Q&A \"live\" <now>", "Ökonomie — Nachrichten"]
"#,
    );
    for args in [&["opml", "export"][..], &["opml", "export", "--flat"][..]] {
        let out = setup.run(args);
        assert_ok(&out);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<opml version=\"2.0\">")
        );
        let back = feedwire::opml::parse(&text).expect("well-formed OPML");
        assert_eq!(back.feeds.len(), 1, "{text}");
        let feed = &back.feeds[0];
        assert_eq!(feed.url, "https://example.com/feed?a=1&b=%3C2%3E&c=%273%27");
        assert_eq!(feed.title, "q-and-a");
        assert_eq!(
            feed.tags,
            vec!["Q&A \"live\" <now>", "Ökonomie — Nachrichten"],
            "{text}"
        );
    }
}

#[test]
fn unreadable_or_non_opml_files_are_one_clear_usage_error() {
    let setup = Setup::new(CONFIG);
    let rss = setup.path("feed.xml");
    std::fs::write(
        &rss,
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel/></rss>",
    )
    .expect("write");
    let broken = setup.path("broken.opml");
    std::fs::write(
        &broken,
        "<opml version=\"2.0\">\n<body>\n<outline text=\"a\">\n</body></opml>",
    )
    .expect("write");
    let missing = setup.path("missing.opml");
    for (file, message) in [
        (
            &rss,
            "not an OPML document: the root element is <rss>, not <opml>",
        ),
        (&broken, "not well-formed XML (line 4)"),
        (&missing, "cannot read OPML file"),
    ] {
        let out = setup.run(&["opml", "import", &file.display().to_string(), "--write"]);
        assert_eq!(out.status.code(), Some(2), "{}", file.display());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.starts_with("feedwire: error: "), "{stderr}");
        assert!(stderr.contains(message), "{stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(out.stdout.is_empty());
    }
    assert!(
        !setup.path("config.toml.bak").exists(),
        "nothing was written"
    );
}

#[test]
fn write_refuses_a_result_that_would_not_load() {
    // Feeds written as an inline array (at the top, before Setup's [daemon]) cannot be
    // followed by [[feeds]] tables.
    let setup = Setup::new("");
    let text = format!(
        "feeds = [{{ url = \"https://blog.rust-lang.org/feed.xml\" }}]\n{}",
        std::fs::read_to_string(setup.config_path()).expect("config")
    );
    std::fs::write(setup.config_path(), &text).expect("write");
    assert_ok(&setup.run(&["check"]));
    let file = fixture("subscriptions.opml").display().to_string();
    let out = setup.run(&["opml", "import", &file, "--write"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("feedwire: error: not writing ")
            && stderr.contains("with the imported feeds it would not load"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(setup.config_path()).expect("config"),
        text
    );
    assert!(!setup.path("config.toml.bak").exists());
}
