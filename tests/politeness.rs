//! Politeness: hosts that ask to wait are left alone, gone feeds stop, moved feeds follow.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;

fn feed_route(server: &Server, title: &str, item: u32) -> Route {
    let base = server.url("");
    Route::ok(
        rss(title, &[Entry::new(item, &base)]),
        "application/rss+xml",
    )
}

fn config(feeds: &[(&str, String)]) -> String {
    let mut s = String::from("[article]\nfetch = false\n\n");
    for (name, url) in feeds {
        s.push_str(&format!(
            "[[feeds]]\nname = \"{name}\"\nurl = \"{url}\"\ninterval = \"1s\"\n\n"
        ));
    }
    s
}

fn run_daemon(setup: &Setup) -> std::process::Child {
    setup
        .command(&["run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn")
}

fn stop(setup: &Setup, mut child: std::process::Child) -> Vec<serde_json::Value> {
    signal(&child, "TERM");
    let status = wait_exit(&mut child, Duration::from_secs(10)).expect("exits");
    assert!(status.success());
    setup.feeds_json()
}

#[test]
fn a_429_with_retry_after_pauses_every_request_to_that_host() {
    let server = Server::start();
    server.set(
        "/limited.xml",
        Route {
            headers: vec![("retry-after".into(), "120".into())],
            ..Route::status(429)
        },
    );
    server.set("/other.xml", feed_route(&server, "Other", 1));
    let setup = Setup::new(&config(&[
        ("limited", server.url("/limited.xml")),
        ("other", server.url("/other.xml")),
    ]));
    let child = run_daemon(&setup);
    assert!(wait_until(Duration::from_secs(10), || !server
        .seen("/limited.xml")
        .is_empty()));
    let after_429 = server.all_seen().len();
    // Both feeds are due every second; the host said 120 s: nothing more goes there.
    std::thread::sleep(Duration::from_secs(3));
    let later = server.all_seen().len();
    let feeds = stop(&setup, child);
    assert!(
        later <= after_429 + 1,
        "at most a request already in flight: {after_429} then {later}"
    );
    assert_eq!(server.seen("/limited.xml").len(), 1);
    let limited = feeds
        .iter()
        .find(|f| f["name"] == "limited")
        .expect("listed");
    assert_eq!(limited["http_status"], 429);
    let last = chrono::DateTime::parse_from_rfc3339(limited["last_poll"].as_str().expect("last"))
        .expect("date");
    let next = chrono::DateTime::parse_from_rfc3339(limited["next_poll"].as_str().expect("next"))
        .expect("date");
    assert!(
        next - last >= chrono::Duration::seconds(119),
        "the next poll honours Retry-After"
    );
}

#[test]
fn a_410_gone_feed_is_no_longer_polled() {
    let server = Server::start();
    server.set("/gone.xml", Route::status(410));
    let setup = Setup::new(&config(&[("gone", server.url("/gone.xml"))]));
    let child = run_daemon(&setup);
    assert!(wait_until(Duration::from_secs(10), || !server
        .seen("/gone.xml")
        .is_empty()));
    std::thread::sleep(Duration::from_secs(3));
    let feeds = stop(&setup, child);
    assert_eq!(
        server.seen("/gone.xml").len(),
        1,
        "polled once, then never again"
    );
    assert_eq!(feeds[0]["status"], "gone");
    assert!(
        feeds[0]["error"]
            .as_str()
            .unwrap_or("")
            .starts_with("HTTP 410 Gone")
    );
    let out = setup.run(&["feeds"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("never"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn a_permanent_redirect_moves_the_feed_and_a_temporary_one_does_not() {
    let server = Server::start();
    server.set(
        "/old.xml",
        Route {
            headers: vec![("location".into(), "/new.xml".into())],
            ..Route::status(301)
        },
    );
    server.set("/new.xml", feed_route(&server, "New", 1));
    server.set(
        "/tmp.xml",
        Route {
            headers: vec![("location".into(), "/target.xml".into())],
            ..Route::status(302)
        },
    );
    server.set("/target.xml", feed_route(&server, "Target", 2));
    let setup = Setup::new(&config(&[
        ("moved", server.url("/old.xml")),
        ("temporary", server.url("/tmp.xml")),
    ]));
    let child = run_daemon(&setup);
    assert!(wait_until(Duration::from_secs(15), || server
        .seen("/new.xml")
        .len()
        >= 3
        && server.seen("/tmp.xml").len() >= 3));
    let feeds = stop(&setup, child);
    assert_eq!(
        server.seen("/old.xml").len(),
        1,
        "after the 301 the new address is polled directly"
    );
    let moved = feeds.iter().find(|f| f["name"] == "moved").expect("listed");
    assert_eq!(moved["url"], server.url("/new.xml"));
    let temporary = feeds
        .iter()
        .find(|f| f["name"] == "temporary")
        .expect("listed");
    assert_eq!(temporary["url"], server.url("/tmp.xml"));
    assert_eq!(setup.lines().len(), 2, "one item from each, once");
}

#[test]
fn the_next_poll_honours_the_publisher_and_says_why() {
    let server = Server::start();
    let base = server.url("");
    let cached = Route {
        headers: vec![("cache-control".into(), "public, max-age=7200".into())],
        ..Route::ok(
            rss("Cached", &[Entry::new(1, &base)]),
            "application/rss+xml",
        )
    };
    server.set("/cached.xml", cached);
    let with_ttl = rss("TTL", &[Entry::new(2, &base)]).replace(
        "<description>d</description>",
        "<description>d</description><ttl>180</ttl>",
    );
    server.set("/ttl.xml", Route::ok(with_ttl, "application/rss+xml"));
    server.set(
        "/plain.xml",
        Route::ok(rss("Plain", &[Entry::new(3, &base)]), "application/rss+xml"),
    );
    let mut config = String::from("[article]\nfetch = false\n\n");
    for (name, path) in [
        ("cached", "/cached.xml"),
        ("ttl", "/ttl.xml"),
        ("plain", "/plain.xml"),
    ] {
        config.push_str(&format!(
            "[[feeds]]\nname = \"{name}\"\nurl = \"{}\"\n\n",
            server.url(path)
        ));
    }
    config.push_str(&format!(
        "[[feeds]]\nname = \"fixed\"\nurl = \"{}\"\ninterval = \"5m\"\n\n",
        server.url("/plain.xml")
    ));
    let setup = Setup::new(&config);
    assert_ok(&setup.run(&["once"]));
    let feeds = setup.feeds_json();
    let gap = |name: &str| -> (i64, String) {
        let f = feeds.iter().find(|f| f["name"] == name).expect("listed");
        let last = chrono::DateTime::parse_from_rfc3339(f["last_poll"].as_str().expect("last"))
            .expect("date");
        let next = chrono::DateTime::parse_from_rfc3339(f["next_poll"].as_str().expect("next"))
            .expect("date");
        (
            (next - last).num_seconds(),
            f["next_poll_reason"].as_str().unwrap_or("").to_string(),
        )
    };
    let (secs, why) = gap("cached");
    assert!(secs >= 7200 * 9 / 10, "{secs}s: {why}");
    assert!(why.contains("Cache-Control"), "{why}");
    let (secs, why) = gap("ttl");
    assert!(secs >= 3 * 3600 * 9 / 10, "{secs}s: {why}");
    assert!(why.contains("ttl"), "{why}");
    let (secs, why) = gap("plain");
    assert!(
        (800..=1000).contains(&secs),
        "the default 15m with jitter: {secs}s"
    );
    assert!(why.starts_with("default interval"), "{why}");
    assert_eq!(gap("fixed"), (300, "fixed interval 5m".to_string()));
}

#[test]
fn a_host_rule_spaces_requests_and_sends_its_own_user_agent() {
    let server = Server::start();
    for n in 1..=3 {
        server.set(&format!("/f{n}.xml"), feed_route(&server, "F", n));
    }
    let mut config = String::from(
        "[hosts.\"127.0.0.1\"]\nmin_delay = \"400ms\"\nuser_agent = \"polite-reader/1.0 (+ops@example.com)\"\n\n[article]\nfetch = false\n\n",
    );
    for n in 1..=3 {
        config.push_str(&format!(
            "[[feeds]]\nname = \"f{n}\"\nurl = \"{}\"\n\n",
            server.url(&format!("/f{n}.xml"))
        ));
    }
    let setup = Setup::new(&config);
    assert_ok(&setup.run(&["once"]));
    let mut seen = server.all_seen();
    seen.sort_by_key(|s| s.at);
    assert_eq!(seen.len(), 3);
    for pair in seen.windows(2) {
        assert!(
            pair[1].at - pair[0].at >= Duration::from_millis(350),
            "requests to one host are spaced"
        );
    }
    assert!(
        seen.iter()
            .all(|s| s.header("user-agent").as_deref()
                == Some("polite-reader/1.0 (+ops@example.com)"))
    );
}

#[test]
fn sinks_that_ask_hear_when_a_feed_fails_and_when_it_recovers() {
    let server = Server::start();
    server.set("/flaky.xml", Route::status(500));
    let setup = Setup::new("");
    let out = setup.path("feed-events.jsonl");
    setup.write_config(&format!(
        "[article]\nfetch = false\n\n[sinks.ops]\ntype = \"log\"\npath = {:?}\nevents = [\"feed.failing\", \"feed.recovered\"]\n\n[[feeds]]\nname = \"flaky\"\nurl = \"{}\"\n",
        out.display().to_string(),
        server.url("/flaky.xml")
    ));
    for _ in 0..4 {
        assert_ok(&setup.run(&["once"]));
    }
    server.set("/flaky.xml", feed_route(&server, "Back", 1));
    assert_ok(&setup.run(&["once"]));
    assert_ok(&setup.run(&["once"]));
    let lines = read_lines(&out);
    let kinds: Vec<&str> = lines
        .iter()
        .map(|l| l["type"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        kinds,
        vec!["feed.failing", "feed.recovered"],
        "once each, in order: {lines:?}"
    );
    assert_eq!(lines[0]["feed"]["name"], "flaky");
    assert_eq!(lines[0]["failed_polls"], 3);
    assert_eq!(lines[0]["error"], "HTTP status 500");
    assert_eq!(lines[1]["failed_polls"], 4);
    let out = setup.run(&["deliveries"]);
    assert_ok(&out);
}
