//! The daemon end to end: the real binary against feeds served on 127.0.0.1.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;

fn feeds_config(server: &Server, feeds: &[(&str, &str)]) -> String {
    let mut s = String::from("[article]\nfetch = false\n\n");
    for (name, path) in feeds {
        s.push_str(&format!(
            "[[feeds]]\nname = \"{name}\"\nurl = \"{}\"\n\n",
            server.url(path)
        ));
    }
    s
}

fn titles(lines: &[serde_json::Value]) -> Vec<String> {
    lines
        .iter()
        .map(|l| l["item"]["title"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn rss_atom_and_json_feed_items_are_emitted_exactly_once_across_restarts() {
    let server = Server::start();
    let base = server.url("");
    let entries = |from: u32| {
        (from..from + 3)
            .map(|n| Entry::new(n, &base))
            .collect::<Vec<_>>()
    };
    server.set(
        "/rss.xml",
        Route::ok(rss("RSS feed", &entries(1)), "application/rss+xml"),
    );
    server.set(
        "/atom.xml",
        Route::ok(atom("Atom feed", &entries(11)), "application/atom+xml"),
    );
    server.set(
        "/feed.json",
        Route::ok(
            json_feed("JSON feed", &entries(21)),
            "application/feed+json",
        ),
    );
    let setup = Setup::new(&feeds_config(
        &server,
        &[
            ("rss", "/rss.xml"),
            ("atom", "/atom.xml"),
            ("json", "/feed.json"),
        ],
    ));

    assert_ok(&setup.run(&["once"]));
    let lines = setup.lines();
    assert_eq!(
        lines.len(),
        9,
        "three items from each of three feeds: {:?}",
        titles(&lines)
    );
    let ids: HashSet<&str> = lines
        .iter()
        .map(|l| l["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids.len(), 9, "every item has its own id");
    for l in &lines {
        assert_eq!(l["type"], "item.new");
        assert!(l["item"]["content_text"].is_string() && l["item"]["content_html"].is_string());
        assert!(l.get("duplicate_of").is_some_and(|d| d.is_null()));
    }
    // Canonical URL drops tracking parameters; the link is the feed's own.
    let first_rss = lines
        .iter()
        .find(|l| l["feed"]["name"] == "rss")
        .expect("an rss item");
    assert_eq!(first_rss["item"]["url"], format!("{base}/articles/1"));
    assert_eq!(
        first_rss["item"]["link"],
        format!("{base}/articles/1?utm_source=rss")
    );
    assert_eq!(first_rss["item"]["summary"], "Summary of story 1.");
    assert_eq!(first_rss["item"]["published"], "2026-11-02T10:00:00Z");
    assert_eq!(first_rss["feed"]["title"], "RSS feed");
    // Per feed, publication order.
    let rss_titles: Vec<String> = titles(
        &lines
            .iter()
            .filter(|l| l["feed"]["name"] == "rss")
            .cloned()
            .collect::<Vec<_>>(),
    );
    assert_eq!(
        rss_titles,
        vec!["Story number 1", "Story number 2", "Story number 3"]
    );

    // A new process on the same state dir emits nothing already emitted, even when the
    // server no longer answers 304 (new ETag, same items).
    for path in ["/rss.xml", "/atom.xml", "/feed.json"] {
        let mut r = server
            .seen(path)
            .last()
            .map(|_| Route::status(200))
            .expect("polled");
        r = Route {
            etag: Some("\"changed\"".into()),
            ..r
        };
        let body = match path {
            "/rss.xml" => rss("RSS feed", &entries(1)),
            "/atom.xml" => atom("Atom feed", &entries(11)),
            _ => json_feed("JSON feed", &entries(21)),
        };
        server.set(
            path,
            Route {
                body: body.into_bytes(),
                ..r
            },
        );
    }
    assert_ok(&setup.run(&["once"]));
    assert_eq!(setup.lines().len(), 9, "a restart emits nothing twice");
}

#[test]
fn second_poll_is_conditional_and_a_304_emits_nothing() {
    let server = Server::start();
    let base = server.url("");
    let entries: Vec<Entry> = (1..=2).map(|n| Entry::new(n, &base)).collect();
    let route = Route::ok(rss("F", &entries), "application/rss+xml");
    let etag = route.etag.clone().expect("etag");
    server.set("/rss.xml", route);
    let setup = Setup::new(&feeds_config(&server, &[("f", "/rss.xml")]));

    assert_ok(&setup.run(&["once"]));
    assert_ok(&setup.run(&["once"]));
    let seen = server.seen("/rss.xml");
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].header("if-none-match"), None);
    assert_eq!(seen[1].header("if-none-match"), Some(etag));
    assert_eq!(setup.lines().len(), 2, "the 304 emitted nothing");
    let feeds = setup.feeds_json();
    assert_eq!(feeds[0]["status"], "not-modified");
    assert_eq!(feeds[0]["http_status"], 304);
    assert_eq!(feeds[0]["items"], 2);
}

#[test]
fn a_new_item_is_emitted_on_the_next_poll_and_old_ones_are_not() {
    let server = Server::start();
    let base = server.url("");
    let mut entries: Vec<Entry> = (1..=3).map(|n| Entry::new(n, &base)).collect();
    server.set(
        "/atom.xml",
        Route::ok(atom("F", &entries), "application/atom+xml"),
    );
    let setup = Setup::new(&feeds_config(&server, &[("f", "/atom.xml")]));
    assert_ok(&setup.run(&["once"]));
    assert_eq!(setup.lines().len(), 3);

    entries.insert(0, Entry::new(4, &base));
    server.set(
        "/atom.xml",
        Route::ok(atom("F", &entries), "application/atom+xml"),
    );
    assert_ok(&setup.run(&["once"]));
    let lines = setup.lines();
    assert_eq!(titles(&lines[3..]), vec!["Story number 4"]);
    assert_eq!(lines[3]["item"]["author"], "Ann Writer");
}

#[test]
fn backfill_limit_emits_only_the_newest_items_of_a_first_poll() {
    let server = Server::start();
    let base = server.url("");
    let entries: Vec<Entry> = (1..=5).map(|n| Entry::new(n, &base)).collect();
    server.set(
        "/rss.xml",
        Route::ok(rss("F", &entries), "application/rss+xml"),
    );
    let setup = Setup::new(&format!(
        "[poll]\nbackfill = 2\n{}",
        feeds_config(&server, &[("f", "/rss.xml")])
    ));
    assert_ok(&setup.run(&["once"]));
    assert_eq!(
        titles(&setup.lines()),
        vec!["Story number 4", "Story number 5"]
    );
}

#[test]
fn broken_feeds_are_reported_backed_off_and_do_not_delay_the_others() {
    let server = Server::start();
    let base = server.url("");
    let entries: Vec<Entry> = (1..=2).map(|n| Entry::new(n, &base)).collect();
    server.set(
        "/good.xml",
        Route::ok(rss("Good", &entries), "application/rss+xml"),
    );
    server.set("/error.xml", Route::status(500));
    server.set(
        "/broken.xml",
        Route::ok(
            "<<< nothing a feed reader could recover >>>",
            "application/rss+xml",
        ),
    );
    server.set("/hang.xml", Route::hang());
    let mut config = String::from("[poll]\ntimeout = \"6s\"\n\n");
    config.push_str(&feeds_config(
        &server,
        &[
            ("hang", "/hang.xml"),
            ("error", "/error.xml"),
            ("broken", "/broken.xml"),
            ("good", "/good.xml"),
        ],
    ));
    let setup = Setup::new(&config);
    let mut child = setup.spawn(&["run"]);

    // The good feed's items arrive while the hanging feed is still waiting for its timeout.
    assert!(
        wait_until(Duration::from_secs(4), || setup.lines().len() == 2),
        "good feed items arrive first"
    );
    assert!(wait_until(Duration::from_secs(8), || {
        let feeds = setup.feeds_json();
        feeds.iter().filter(|f| f["status"] == "error").count() == 3
    }));
    signal(&child, "TERM");
    let status = wait_exit(&mut child, Duration::from_secs(8)).expect("exits after SIGTERM");
    assert!(status.success(), "exit status {status:?}");

    let feeds = setup.feeds_json();
    let by_name = |n: &str| {
        feeds
            .iter()
            .find(|f| f["name"] == n)
            .cloned()
            .expect("feed listed")
    };
    assert_eq!(by_name("error")["http_status"], 500);
    assert_eq!(by_name("error")["error"], "HTTP status 500");
    assert!(
        by_name("broken")["error"]
            .as_str()
            .unwrap_or("")
            .starts_with("not a valid feed")
    );
    assert!(
        by_name("hang")["error"]
            .as_str()
            .unwrap_or("")
            .contains("no answer within 6s")
    );
    for name in ["error", "broken", "hang"] {
        let f = by_name(name);
        assert_eq!(f["errors_in_row"], 1, "{name}");
        let next =
            chrono::DateTime::parse_from_rfc3339(f["next_poll"].as_str().expect("next poll"))
                .expect("date");
        let last =
            chrono::DateTime::parse_from_rfc3339(f["last_poll"].as_str().expect("last poll"))
                .expect("date");
        assert!(
            next - last >= chrono::Duration::seconds(50),
            "{name} is backed off"
        );
    }
    assert_eq!(by_name("good")["status"], "ok");
}

#[test]
fn stdout_sink_prints_one_json_line_per_item() {
    let server = Server::start();
    let base = server.url("");
    server.set(
        "/rss.xml",
        Route::ok(rss("F", &[Entry::new(1, &base)]), "application/rss+xml"),
    );
    let setup = Setup::new(&format!(
        "[sinks.stdout]\ntype = \"log\"\npath = \"-\"\n\n{}",
        feeds_config(&server, &[("f", "/rss.xml")])
    ));
    let out = setup.run(&["once"]);
    assert_ok(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "stdout holds only the JSON line: {stdout}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).expect("JSON");
    assert_eq!(v["item"]["title"], "Story number 1");
}

#[test]
fn a_config_with_three_mistakes_lists_all_three_and_exits_2() {
    let setup = Setup::new(
        "[poll]\ninterval = \"often\"\n\n[[feeds]]\nurl = \"not a url\"\n\n[[feeds]]\nurl = \"https://example.com/feed\"\nintervl = \"5m\"\n",
    );
    let out = setup.run(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("has 3 problems"), "{err}");
    assert!(
        err.contains(":9: poll.interval")
            || err.contains("poll.interval: invalid duration \"often\""),
        "{err}"
    );
    assert!(err.contains("feeds[0].url: invalid URL"), "{err}");
    assert!(err.contains("feeds[1].intervl: unknown key"), "{err}");
    // `run` refuses the same config the same way.
    let out = setup.run(&["run"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn check_accepts_the_example_config() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/feedwire.toml");
    let out = std::process::Command::new(BIN)
        .arg("check")
        .arg("--config")
        .arg(example)
        .output()
        .expect("run");
    assert_ok(&out);
}

#[test]
fn unknown_feed_and_missing_config_are_usage_errors() {
    let setup = Setup::new("");
    let out = setup.run(&["once", "--feed", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no feed named \"nope\""));
    let out = std::process::Command::new(BIN)
        .args(["--config", "/nonexistent/feedwire.toml", "check"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .starts_with("feedwire: error: cannot read config file")
    );
}
