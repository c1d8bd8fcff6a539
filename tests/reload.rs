//! Changing the config under a store that already holds work: sinks removed between runs,
//! and SIGHUP while deliveries are in flight.

mod common;

use std::time::Duration;

use common::*;

fn feed_with(n: u32) -> Server {
    let server = Server::start();
    let base = server.url("");
    let entries: Vec<Entry> = (1..=n).map(|i| Entry::new(i, &base)).collect();
    server.set(
        "/rss.xml",
        Route::ok(rss("F", &entries), "application/rss+xml"),
    );
    server
}

#[test]
fn once_after_a_sink_was_removed_exits_0_when_the_remaining_sinks_are_done() {
    let feed = feed_with(2);
    let receiver = Server::start();
    // The receiver keeps failing, so its rows stay pending.
    receiver.set("/hook", Route::status(503));
    let log_and_hook = |with_hook: bool| {
        let mut text = String::from("[article]\nfetch = false\n\n");
        text.push_str("[sinks.log]\ntype = \"log\"\npath = \"out.jsonl\"\n\n");
        if with_hook {
            text.push_str(&format!(
                "[sinks.hook]\ntype = \"webhook\"\nurl = \"{}\"\ntimeout = \"1s\"\n\n",
                receiver.url("/hook")
            ));
        }
        text.push_str(&format!(
            "[[feeds]]\nname = \"f\"\nurl = \"{}\"\n",
            feed.url("/rss.xml")
        ));
        text
    };
    let setup = Setup::new(&log_and_hook(true));
    let out = setup
        .command(&["once", "--timeout", "1s"])
        .current_dir(setup.dir.path())
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(1),
        "the failing hook's rows are pending: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The hook is removed: nothing will ever deliver its rows, so `once` does not wait for them.
    setup.write_config(&log_and_hook(false));
    let out = setup
        .command(&["once", "--timeout", "1s"])
        .current_dir(setup.dir.path())
        .output()
        .expect("run");
    assert_ok(&out);
    assert_eq!(read_lines(&setup.path("out.jsonl")).len(), 2);
}

/// The guid of the item a webhook request carries.
fn guid_of(seen: &Seen) -> String {
    let body: serde_json::Value = serde_json::from_slice(&seen.body).expect("JSON body");
    body["item"]["guid"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn three_reloads_under_load_deliver_every_item_once_to_a_slow_webhook() {
    const ITEMS: u32 = 24;
    // The feed lists more items over time: three new ones per poll, up to ITEMS.
    let feed = Server::start();
    let base = feed.url("");
    feed.respond("/rss.xml", move |_, before| {
        let n = ((before as u32 + 1) * 3).min(ITEMS);
        let entries: Vec<Entry> = (1..=n).map(|i| Entry::new(i, &base)).collect();
        Route::ok(rss("F", &entries), "application/rss+xml")
    });
    // A slow receiver: each delivery takes 300 ms, so reloads land while rows are in flight.
    let receiver = Server::start();
    receiver.respond("/hook", |_, _| Route {
        delay: Duration::from_millis(300),
        ..Route::status(200)
    });
    let config = |timeout: &str, tags: &str| {
        format!(
            "[article]\nfetch = false\n\n\
             [sinks.hook]\ntype = \"webhook\"\nurl = \"{}\"\ntimeout = \"{timeout}\"\nconcurrency = 2\n\n\
             [[feeds]]\nname = \"f\"\nurl = \"{}\"\ninterval = \"1s\"\ntags = [{tags}]\n",
            receiver.url("/hook"),
            feed.url("/rss.xml")
        )
    };
    let setup = Setup::new(&config("5s", ""));
    let mut child = setup.spawn(&["run"]);
    // Read standard error as it comes, so the daemon never blocks on a full pipe.
    let stderr = {
        use std::io::Read;
        let mut pipe = child.stderr.take().expect("stderr is piped");
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = pipe.read_to_string(&mut s);
            s
        })
    };

    // Three reloads, each once more deliveries arrived: a feed change, a sink change (its
    // worker is replaced while it delivers), and one that changes nothing.
    let reloads = [
        config("5s", "\"a\""),
        config("6s", "\"a\""),
        config("6s", "\"a\""),
    ];
    for (i, text) in reloads.iter().enumerate() {
        let want = (i + 1) * 4;
        assert!(
            wait_until(Duration::from_secs(30), || receiver.seen("/hook").len()
                >= want),
            "deliveries before reload {i}"
        );
        setup.write_config(text);
        signal(&child, "HUP");
    }
    let all_answered = wait_until(Duration::from_secs(60), || {
        let guids: std::collections::HashSet<String> =
            receiver.answered("/hook").iter().map(guid_of).collect();
        guids.len() == ITEMS as usize
    });
    signal(&child, "TERM");
    let status = wait_exit(&mut child, Duration::from_secs(15)).expect("the daemon stops");
    let stderr = stderr.join().expect("stderr reader");
    assert!(all_answered, "every item is delivered\n{stderr}");
    assert!(status.success(), "{status:?}\n{stderr}");
    assert_eq!(
        stderr.matches("reloaded").count(),
        3,
        "each SIGHUP is applied\n{stderr}"
    );

    let seen = receiver.seen("/hook");
    let mut per_id: std::collections::HashMap<String, usize> = Default::default();
    for s in &seen {
        *per_id
            .entry(s.header("webhook-id").expect("webhook-id"))
            .or_default() += 1;
    }
    let twice: Vec<_> = per_id.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    assert_eq!(per_id.len(), ITEMS as usize, "one webhook-id per item");
}

#[test]
fn a_host_paused_by_retry_after_stays_paused_across_a_reload() {
    let feeds = Server::start();
    feeds.set(
        "/one.xml",
        Route {
            headers: vec![("retry-after".into(), "3600".into())],
            ..Route::status(503)
        },
    );
    let base = feeds.url("");
    feeds.set(
        "/two.xml",
        Route::ok(rss("Two", &[Entry::new(1, &base)]), "application/rss+xml"),
    );
    let config = |with_two: bool| {
        let mut text = format!(
            "[article]\nfetch = false\n\n[[feeds]]\nname = \"one\"\nurl = \"{}\"\n",
            feeds.url("/one.xml")
        );
        if with_two {
            text.push_str(&format!(
                "\n[[feeds]]\nname = \"two\"\nurl = \"{}\"\n",
                feeds.url("/two.xml")
            ));
        }
        text
    };
    let setup = Setup::new(&config(false));
    let mut child = setup
        .command(&["run"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn feedwire run");
    assert!(
        wait_until(Duration::from_secs(20), || !feeds
            .seen("/one.xml")
            .is_empty()),
        "the first feed is polled"
    );
    // Give the daemon the 503 before the reload.
    assert!(wait_until(Duration::from_secs(20), || {
        setup
            .feeds_json()
            .iter()
            .any(|f| f["name"] == "one" && f["http_status"] == 503)
    }));

    // A second feed on the same origin arrives with the reload: the origin asked to wait an
    // hour, so it is not asked for anything before then.
    setup.write_config(&config(true));
    signal(&child, "HUP");
    let polled_two = wait_until(Duration::from_secs(20), || {
        setup.feeds_json().iter().any(|f| {
            f["name"] == "two"
                && f["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("asked to wait"))
        })
    });
    signal(&child, "TERM");
    let _ = wait_exit(&mut child, Duration::from_secs(15));
    assert!(
        polled_two,
        "the new feed's poll is held back by the pause: {:?}",
        setup.feeds_json()
    );
    assert!(
        feeds.seen("/two.xml").is_empty(),
        "no request went to the paused origin after the reload"
    );
    assert_eq!(feeds.seen("/one.xml").len(), 1);
}

#[test]
fn a_reload_reads_secret_files_again_and_forgets_removed_sinks() {
    let feed = Server::start();
    let listed = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(1));
    {
        let listed = listed.clone();
        let base = feed.url("");
        feed.respond("/rss.xml", move |_, _| {
            let n = listed.load(std::sync::atomic::Ordering::SeqCst);
            let entries: Vec<Entry> = (1..=n).map(|i| Entry::new(i, &base)).collect();
            Route::ok(rss("F", &entries), "application/rss+xml")
        });
    }
    let receiver = Server::start();
    receiver.set("/hook", Route::status(200));
    receiver.set("/spare", Route::status(200));
    let port = free_port();
    let listen = format!("listen = \"127.0.0.1:{port}\"\n");
    let config = |with_spare: bool, token: &std::path::Path| {
        let mut text = format!(
            "[article]\nfetch = false\n\n\
             [sinks.hook]\ntype = \"webhook\"\nurl = \"{}\"\n\
             headers = {{ X-Token = {{ file = {token:?} }} }}\n\n",
            receiver.url("/hook"),
        );
        if with_spare {
            text.push_str(&format!(
                "[sinks.spare]\ntype = \"webhook\"\nurl = \"{}\"\n\n",
                receiver.url("/spare")
            ));
        }
        text.push_str(&format!(
            "[[feeds]]\nname = \"f\"\nurl = \"{}\"\ninterval = \"1s\"\n",
            feed.url("/rss.xml")
        ));
        text
    };
    let setup = Setup::new("");
    let token = setup.path("token");
    std::fs::write(&token, "first\n").expect("write the token file");
    setup.write_config_with_daemon(&listen, &config(true, &token));
    let stderr = std::fs::File::create(setup.path("stderr")).expect("create the stderr file");
    let killed = Killed(
        setup
            .command(&["run"])
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn feedwire run"),
    );
    let log = || std::fs::read_to_string(setup.path("stderr")).unwrap_or_default();

    let tokens = || -> Vec<(String, String)> {
        receiver
            .seen("/hook")
            .iter()
            .map(|s| (guid_of(s), s.header("x-token").unwrap_or_default()))
            .collect()
    };
    assert!(
        wait_until(Duration::from_secs(20), || !tokens().is_empty()),
        "the first item reaches the hook:\n{}",
        log()
    );
    assert_eq!(tokens()[0].1, "first");
    let scrape = get_ok(port, "/metrics").unwrap_or_default();
    assert_eq!(sink_state(&scrape, "spare", "up"), Some(1.0), "{scrape}");

    // The secret is rotated and one sink removed; the config of the other is unchanged.
    std::fs::write(&token, "second\n").expect("rewrite the token file");
    setup.write_config_with_daemon(&listen, &config(false, &token));
    signal(&killed.0, "HUP");
    assert!(
        wait_until(Duration::from_secs(20), || {
            get_ok(port, "/metrics").is_some_and(|m| sink_state(&m, "spare", "up").is_none())
        }),
        "the removed sink's state leaves /metrics"
    );
    listed.store(2, std::sync::atomic::Ordering::SeqCst);
    assert!(
        wait_until(Duration::from_secs(20), || tokens().len() >= 2),
        "the second item reaches the hook: {:?}",
        tokens()
    );
    let second = tokens()
        .into_iter()
        .find(|(guid, _)| guid == "urn:test:2")
        .expect("item 2 was delivered");
    assert_eq!(second.1, "second", "the reload read the header file again");
    let scrape = get_ok(port, "/metrics").unwrap_or_default();
    assert_eq!(sink_state(&scrape, "hook", "up"), Some(1.0), "{scrape}");
}
