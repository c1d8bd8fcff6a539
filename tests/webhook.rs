//! Webhook delivery end to end: real receivers on 127.0.0.1 and the real binary.

mod common;

use std::collections::{HashMap, HashSet};
use std::process::Output;
use std::time::Duration;

use base64::Engine;
use common::*;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// Checks a Standard Webhooks signature with the hmac crate directly, not with feedwire's code.
fn signature_is_valid(seen: &Seen) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(&SECRET["whsec_".len()..])
        .expect("key");
    let (Some(id), Some(ts), Some(sigs)) = (
        seen.header("webhook-id"),
        seen.header("webhook-timestamp"),
        seen.header("webhook-signature"),
    ) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("hmac key");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(&seen.body);
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    sigs.split(' ').any(|s| s == expected)
}

fn hook_config(feed: &Server, sinks: &[(&str, String)], extra: &str) -> String {
    let mut s = String::from("[article]\nfetch = false\n\n");
    for (name, url) in sinks {
        s.push_str(&format!(
            "[sinks.{name}]\ntype = \"webhook\"\nurl = \"{url}\"\nsecret_env = \"FW_TEST_SECRET\"\ntimeout = \"2s\"\n{extra}\n\n"
        ));
    }
    s.push_str(&format!(
        "[[feeds]]\nname = \"f\"\nurl = \"{}\"\n",
        feed.url("/rss.xml")
    ));
    s
}

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

fn run_with_secret(setup: &Setup, args: &[&str]) -> Output {
    setup
        .command(args)
        .env("FW_TEST_SECRET", SECRET)
        .output()
        .expect("run feedwire")
}

#[test]
fn retries_a_503_with_retry_after_and_keeps_the_same_webhook_id() {
    let feed = feed_with(1);
    let receiver = Server::start();
    receiver.respond("/hook", |_, before| {
        if before < 3 {
            Route {
                headers: vec![("retry-after".into(), "1".into())],
                ..Route::status(503)
            }
        } else {
            Route::status(204)
        }
    });
    let setup = Setup::new(&hook_config(&feed, &[("hook", receiver.url("/hook"))], ""));
    let out = run_with_secret(&setup, &["once", "--timeout", "30s"]);
    assert_ok(&out);

    let seen = receiver.seen("/hook");
    assert_eq!(seen.len(), 4, "three 503s, then the delivery");
    let ids: HashSet<String> = seen.iter().filter_map(|s| s.header("webhook-id")).collect();
    assert_eq!(ids.len(), 1, "one webhook-id on every attempt: {ids:?}");
    for pair in seen.windows(2) {
        assert!(
            pair[1].at - pair[0].at >= Duration::from_millis(900),
            "Retry-After: 1 is honoured"
        );
    }
    for s in &seen {
        assert!(signature_is_valid(s), "each attempt is signed");
        assert_eq!(s.method, "POST");
        assert_eq!(
            s.header("content-type").as_deref(),
            Some("application/json")
        );
        assert!(
            s.header("user-agent")
                .is_some_and(|ua| ua.starts_with("feedwire/"))
        );
        let body: serde_json::Value = serde_json::from_slice(&s.body).expect("JSON body");
        assert_eq!(body["item"]["title"], "Story number 1");
    }
    assert_eq!(
        seen[0].body, seen[3].body,
        "the body is the same on every attempt"
    );
}

#[test]
fn a_400_is_dead_lettered_at_once_and_redeliver_sends_it_again() {
    let feed = feed_with(2);
    let receiver = Server::start();
    receiver.set(
        "/hook",
        Route {
            body: b"bad payload".to_vec(),
            ..Route::status(400)
        },
    );
    let setup = Setup::new(&hook_config(&feed, &[("hook", receiver.url("/hook"))], ""));
    assert_ok(&run_with_secret(&setup, &["once", "--timeout", "20s"]));
    assert_eq!(
        receiver.seen("/hook").len(),
        2,
        "one attempt each, no retry"
    );
    let first_ids: Vec<String> = receiver
        .seen("/hook")
        .iter()
        .filter_map(|s| s.header("webhook-id"))
        .collect();

    let out = run_with_secret(&setup, &["deliveries", "--dead"]);
    assert_ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("receiver answered HTTP 400: bad payload"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("hook") && l.split_whitespace().nth(3) == Some("2")),
        "{text}"
    );

    receiver.set("/hook", Route::status(200));
    let out = run_with_secret(&setup, &["redeliver", "--sink", "hook", "--dead"]);
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("queued 2 deliveries"));
    assert_ok(&run_with_secret(&setup, &["once", "--timeout", "20s"]));
    let seen = receiver.seen("/hook");
    assert_eq!(seen.len(), 4);
    let again: Vec<String> = seen[2..]
        .iter()
        .filter_map(|s| s.header("webhook-id"))
        .collect();
    let mut a = first_ids.clone();
    let mut b = again.clone();
    a.sort();
    b.sort();
    assert_eq!(a, b, "a redelivery carries the same webhook-id");
}

#[test]
fn a_receiver_that_was_down_gets_every_item_when_it_comes_back() {
    let feed = feed_with(5);
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let setup = Setup::new(&hook_config(
        &feed,
        &[("hook", url)],
        "retry_schedule = [\"200ms\", \"400ms\"]",
    ));
    let mut child = setup
        .command(&["run"])
        .env("FW_TEST_SECRET", SECRET)
        .spawn()
        .expect("spawn");

    // Down: the daemon polls, stores and fails to deliver.
    assert!(wait_until(Duration::from_secs(10), || {
        let out = run_with_secret(&setup, &["deliveries"]);
        String::from_utf8_lossy(&out.stdout).contains("cannot reach")
    }));
    let receiver = Server::start_on(port);
    receiver.set("/hook", Route::status(200));
    let arrived = wait_until(Duration::from_secs(20), || {
        let titles: HashSet<String> = receiver
            .seen("/hook")
            .iter()
            .filter_map(|s| serde_json::from_slice::<serde_json::Value>(&s.body).ok())
            .filter_map(|v| v["item"]["title"].as_str().map(String::from))
            .collect();
        titles.len() == 5
    });
    signal(&child, "TERM");
    let status = wait_exit(&mut child, Duration::from_secs(10)).expect("exits after SIGTERM");
    assert!(
        arrived,
        "all five items arrived after the receiver came back"
    );
    assert!(status.success());
    let out = run_with_secret(&setup, &["deliveries"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let row = text
        .lines()
        .find(|l| l.starts_with("hook"))
        .expect("hook row");
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        &cols[1..4],
        &["0", "5", "0"],
        "nothing pending or dead: {text}"
    );
}

#[test]
fn one_sink_down_does_not_delay_another_sink_or_the_log() {
    let feed = feed_with(3);
    let good = Server::start();
    good.set("/hook", Route::status(200));
    let down = format!("http://127.0.0.1:{}/hook", free_port());
    let setup = Setup::new("");
    let out_path = setup.path("log.jsonl");
    let mut config = hook_config(&feed, &[("good", good.url("/hook")), ("down", down)], "");
    config.push_str(&format!(
        "\n[sinks.log]\ntype = \"log\"\npath = {:?}\n",
        out_path.display().to_string()
    ));
    setup.write_config(&config);
    let mut child = setup
        .command(&["run"])
        .env("FW_TEST_SECRET", SECRET)
        .spawn()
        .expect("spawn");
    let ok = wait_until(Duration::from_secs(8), || {
        good.seen("/hook").len() >= 3 && read_lines(&out_path).len() == 3
    });
    signal(&child, "TERM");
    let status = wait_exit(&mut child, Duration::from_secs(10)).expect("exits");
    assert!(
        ok,
        "the good receiver and the log got every item while the other sink was down"
    );
    assert!(status.success());
    let out = run_with_secret(&setup, &["deliveries", "--sink", "down"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("cannot reach"),
        "the down sink keeps its rows pending with the error: {text}"
    );
}

#[test]
fn a_missing_secret_variable_is_a_config_problem() {
    let feed = feed_with(1);
    let setup = Setup::new(&hook_config(
        &feed,
        &[("hook", "http://127.0.0.1:9/hook".into())],
        "",
    ));
    let out = setup.run(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("sinks.hook: environment variable FW_TEST_SECRET is not set"),
        "{err}"
    );
    assert!(!err.contains(SECRET));
    let ok = run_with_secret(&setup, &["check"]);
    assert_ok(&ok);
    // The secret never appears in what the daemon prints.
    let once = run_with_secret(&setup, &["once", "--timeout", "1s"]);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&once.stdout),
        String::from_utf8_lossy(&once.stderr)
    );
    assert!(!all.contains("C2FVsBQIhrscChlQIMV"));
}

#[test]
fn each_sink_gets_its_own_webhook_id_per_event() {
    let feed = feed_with(2);
    let a = Server::start();
    let b = Server::start();
    a.set("/hook", Route::status(200));
    b.set("/hook", Route::status(200));
    let setup = Setup::new(&hook_config(
        &feed,
        &[("a", a.url("/hook")), ("b", b.url("/hook"))],
        "",
    ));
    assert_ok(&run_with_secret(&setup, &["once"]));
    let ids = |s: &Server| -> HashMap<String, String> {
        s.seen("/hook")
            .iter()
            .map(|x| {
                let v: serde_json::Value = serde_json::from_slice(&x.body).expect("json");
                (
                    v["id"].as_str().unwrap_or("").to_string(),
                    x.header("webhook-id").unwrap_or_default(),
                )
            })
            .collect()
    };
    let (ia, ib) = (ids(&a), ids(&b));
    assert_eq!(ia.len(), 2);
    assert_eq!(
        ia.keys().collect::<HashSet<_>>(),
        ib.keys().collect::<HashSet<_>>(),
        "same items to both"
    );
    for (item, wid) in &ia {
        assert_ne!(Some(wid), ib.get(item), "webhook-id differs per sink");
    }
}
