//! Article fetch and cleaning in the daemon, and `feedwire extract`, end to end.

mod common;

use std::process::Command;

use common::*;

fn seed_page() -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/seed-article/page.html"),
    )
    .expect("seed page fixture")
}

fn seed_expected() -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/seed-article/expected.txt"),
    )
    .expect("seed expected fixture")
}

fn normalized(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A feed whose one item links to `link`; the article pages are served by `server` too.
fn setup_with(server: &Server, link: &str, article: &str) -> Setup {
    let entry = Entry {
        id: "urn:a:1".into(),
        title: "OCS".into(),
        link: link.into(),
        published: "2026-11-20T10:00:00Z".into(),
        summary: "<p>Short summary from the feed.</p>".into(),
    };
    server.set(
        "/rss.xml",
        Route::ok(rss("News", &[entry]), "application/rss+xml"),
    );
    Setup::new(&format!(
        "[article]\n{article}\n\n[[feeds]]\nname = \"news\"\nurl = \"{}\"\n",
        server.url("/rss.xml")
    ))
}

fn only_item(setup: &Setup) -> serde_json::Value {
    let lines = setup.lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    lines[0]["item"].clone()
}

#[test]
fn the_payload_carries_the_cleaned_article() {
    let server = Server::start();
    server.set(
        "/article",
        Route::ok(seed_page(), "text/html; charset=utf-8"),
    );
    let setup = setup_with(
        &server,
        &server.url("/article"),
        "allowed_networks = [\"127.0.0.1/32\"]",
    );
    assert_ok(&setup.run(&["once"]));
    let item = only_item(&setup);
    assert_eq!(item["content_source"], "article");
    assert!(item["content_error"].is_null());
    assert_eq!(
        normalized(item["content_text"].as_str().unwrap_or("")),
        normalized(&seed_expected())
    );
    assert_eq!(item["language"], "fr");
    assert!(item["word_count"].as_u64().unwrap_or(0) > 200);
    let html = item["content_html"].as_str().unwrap_or("");
    assert!(
        html.contains("ASTANA, 15 mai") && !html.contains("<script") && !html.contains("abonner"),
        "{html}"
    );
}

#[test]
fn a_redirect_to_another_loopback_address_is_refused_while_the_allowed_one_is_fetched() {
    let server = Server::start();
    let port = server.addr.port();
    server.set(
        "/moved",
        Route {
            headers: vec![(
                "location".into(),
                format!("http://127.0.0.2:{port}/article"),
            )],
            ..Route::status(302)
        },
    );
    server.set("/article", Route::ok(seed_page(), "text/html"));
    let setup = setup_with(
        &server,
        &server.url("/moved"),
        "allowed_networks = [\"127.0.0.1/32\"]",
    );
    assert_ok(&setup.run(&["once"]));
    let item = only_item(&setup);
    assert_eq!(item["content_source"], "feed");
    let err = item["content_error"].as_str().unwrap_or("");
    assert!(err.contains("127.0.0.2 is a loopback address"), "{err}");
    assert_eq!(item["content_text"], "Short summary from the feed.");
    assert_eq!(
        server.seen("/moved").len(),
        1,
        "the first hop, on the allowed address, was fetched"
    );
}

#[test]
fn loopback_pages_are_refused_by_default_even_through_a_host_name() {
    let server = Server::start();
    server.set("/article", Route::ok(seed_page(), "text/html"));
    let link = format!("http://localhost:{}/article", server.addr.port());
    let setup = setup_with(&server, &link, "");
    assert_ok(&setup.run(&["once"]));
    let item = only_item(&setup);
    assert_eq!(item["content_source"], "feed");
    let err = item["content_error"].as_str().unwrap_or("");
    assert!(
        err.contains("refused localhost: it resolves to") && err.contains("loopback"),
        "{err}"
    );
    assert!(
        server.seen("/article").is_empty(),
        "nothing was sent to the refused address"
    );
}

#[test]
fn a_page_with_too_little_text_falls_back_to_the_feed() {
    let server = Server::start();
    server.set(
        "/paywall",
        Route::ok(
            "<html><body><h1>Title</h1><p>Subscribe to read this article.</p></body></html>",
            "text/html",
        ),
    );
    let setup = setup_with(
        &server,
        &server.url("/paywall"),
        "allowed_networks = [\"127.0.0.1/32\"]",
    );
    assert_ok(&setup.run(&["once"]));
    let item = only_item(&setup);
    assert_eq!(item["content_source"], "feed");
    assert!(
        item["content_error"]
            .as_str()
            .unwrap_or("")
            .starts_with("too little text on the page")
    );
}

#[test]
fn a_windows_1251_page_named_only_in_the_header_comes_out_right() {
    let server = Server::start();
    let para = "Правительство объявило о новых мерах поддержки малого бизнеса в регионах страны. ";
    let html = format!(
        "<html><head><title>Новости</title></head><body><article><h1>Новости</h1><p>{}</p><p>{}</p></article></body></html>",
        para.repeat(4),
        para.repeat(3)
    );
    let (bytes, _, _) = encoding_rs::WINDOWS_1251.encode(&html);
    server.set(
        "/ru",
        Route::ok(bytes.into_owned(), "text/html; charset=windows-1251"),
    );
    let setup = setup_with(
        &server,
        &server.url("/ru"),
        "allowed_networks = [\"127.0.0.1/32\"]",
    );
    assert_ok(&setup.run(&["once"]));
    let item = only_item(&setup);
    assert_eq!(item["content_source"], "article");
    assert!(
        item["content_text"]
            .as_str()
            .unwrap_or("")
            .contains("Правительство объявило"),
        "{item}"
    );
}

#[test]
fn extract_prints_the_seed_page_text_and_json() {
    let page = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/seed-article/page.html");
    let out = Command::new(BIN)
        .arg("extract")
        .arg(&page)
        .output()
        .expect("run");
    assert_ok(&out);
    assert_eq!(
        normalized(&String::from_utf8_lossy(&out.stdout)),
        normalized(&seed_expected())
    );
    let out = Command::new(BIN)
        .arg("extract")
        .arg(&page)
        .args(["--format", "json"])
        .output()
        .expect("run");
    assert_ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(
        v["title"]
            .as_str()
            .unwrap_or("")
            .starts_with("L'OCS confrontée")
    );
    let missing = Command::new(BIN)
        .args(["extract", "/nonexistent/page.html"])
        .output()
        .expect("run");
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&missing.stderr)
            .starts_with("feedwire: error: cannot read /nonexistent/page.html")
    );
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let page = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/seed-article/page.html");
    // The reader is gone before the command writes, as with `feedwire extract … | head`
    // when head has had enough.
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = Command::new(BIN)
        .arg("extract")
        .arg(&page)
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn extract_dir_writes_text_and_json_for_every_page() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in");
    std::fs::create_dir(&input).expect("mkdir");
    std::fs::write(input.join("seed.html"), seed_page()).expect("write");
    std::fs::write(
        input.join("other.html"),
        "<html><body><p>Hello there.</p></body></html>",
    )
    .expect("write");
    let out_dir = dir.path().join("out");
    let out = Command::new(BIN)
        .arg("extract")
        .arg("--dir")
        .arg(&input)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .expect("run");
    assert_ok(&out);
    let text = std::fs::read_to_string(out_dir.join("seed.txt")).expect("seed.txt");
    assert_eq!(normalized(&text), normalized(&seed_expected()));
    assert!(out_dir.join("seed.json").is_file() && out_dir.join("other.json").is_file());
}
