//! Webhook delivery end to end: real receivers on 127.0.0.1 and the real binary.

mod common;

use std::collections::{HashMap, HashSet};
use std::process::Output;
use std::sync::Arc;
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

// ---- a flaky receiver: failed deliveries, a receiver that is down, one that is gone ------------

#[path = "common/receiver.rs"]
mod receiver;

use receiver::{Answer, Receiver, Record};

/// Each request is held this long, so that requests sent together are seen overlapping.
const HOLD: Duration = Duration::from_millis(25);

/// Serves `/metrics` on a free port: the config's `[daemon]` gets a `listen`.
fn listen_on_free_port(setup: &Setup) -> u16 {
    let port = free_port();
    let config = std::fs::read_to_string(setup.config_path()).expect("config");
    std::fs::write(
        setup.config_path(),
        config.replacen(
            "[daemon]\n",
            &format!("[daemon]\nlisten = \"127.0.0.1:{port}\"\n"),
            1,
        ),
    )
    .expect("write config");
    port
}

/// `feedwire deliveries`: the sink's row as (pending, delivered, dead, state), and the text.
fn deliveries(setup: &Setup, sink: &str) -> (Vec<String>, String) {
    let out = run_with_secret(setup, &["deliveries", "--sink", sink]);
    assert_ok(&out);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let row = text
        .lines()
        .find(|l| l.starts_with(sink))
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            // SINK PENDING DELIVERED DEAD OLDEST (one or two words) STATE
            let mut v: Vec<String> = cols[1..4].iter().map(|s| s.to_string()).collect();
            v.push(cols.last().copied().unwrap_or("").to_string());
            v
        })
        .unwrap_or_default();
    (row, text)
}

fn attempts_per_id(records: &[Record]) -> HashMap<String, usize> {
    let mut n = HashMap::new();
    for r in records {
        *n.entry(r.webhook_id.clone()).or_default() += 1;
    }
    n
}

#[test]
fn a_receiver_under_load_gets_every_item_after_three_attempts_each_within_15s() {
    let feed = feed_with(25);
    // A receiver under load: 503 with Retry-After: 1 to the first two attempts of everything.
    let receiver = Receiver::start(HOLD, |r| {
        if r.nth <= 2 {
            Answer::retry_after(503, 1)
        } else {
            Answer::ok()
        }
    });
    let setup = Setup::new(&hook_config(
        &feed,
        &[("hook", receiver.url())],
        "concurrency = 4",
    ));
    assert_ok(&run_with_secret(&setup, &["once", "--timeout", "60s"]));

    let records = receiver.records();
    assert_eq!(receiver.delivered_ids().len(), 25, "every item arrived");
    let first = records.iter().map(|r| r.arrived).min().expect("requests");
    let last = records
        .iter()
        .filter(|r| r.delivered())
        .map(|r| r.ended)
        .max()
        .expect("deliveries");
    assert!(
        last - first < Duration::from_secs(15),
        "all delivered {:?} after the first attempt",
        last - first
    );
    for (id, n) in attempts_per_id(&records) {
        assert_eq!(n, 3, "{id}: two 503s, then the delivery");
    }
    let most = records.iter().map(|r| r.in_flight).max().unwrap_or(0);
    assert!(most <= 4, "{most} requests in flight with concurrency = 4");
    assert!(
        most > 1,
        "the rows went out side by side, not one probe at a time"
    );
    let (row, text) = deliveries(&setup, "hook");
    assert_eq!(row, ["0", "25", "0", "up"], "{text}");
}

#[test]
fn a_receiver_down_for_a_minute_gets_only_probes_then_everything_within_10s() {
    const DOWN: Duration = Duration::from_secs(60);
    const ITEMS: usize = 20;
    let feed = feed_with(ITEMS as u32);
    // Down (the socket closed without an answer) for a minute from the first request.
    let start = Arc::new(std::sync::OnceLock::new());
    let outage = start.clone();
    let receiver = Receiver::start(HOLD, move |r| {
        let t0 = *outage.get_or_init(|| r.at);
        if r.at < t0 + DOWN {
            Answer::Close
        } else {
            Answer::ok()
        }
    });
    let setup = Setup::new(&hook_config(
        &feed,
        &[("hook", receiver.url())],
        "concurrency = 4\nprobe_interval = \"5s\"",
    ));
    let port = listen_on_free_port(&setup);
    let mut child = setup
        .command(&["run"])
        .env("FW_TEST_SECRET", SECRET)
        .spawn()
        .expect("spawn");

    // While it is down: the sink shows as paused, with why and until when.
    let paused = wait_until(Duration::from_secs(20), || {
        deliveries(&setup, "hook").0.last().map(String::as_str) == Some("paused")
    });
    let (_, text) = deliveries(&setup, "hook");
    let scrape = get_ok(port, "/metrics").unwrap_or_default();
    let all_in = wait_until(DOWN + Duration::from_secs(30), || {
        receiver.delivered_ids().len() == ITEMS
    });
    let (after, after_text) = deliveries(&setup, "hook");
    let scrape_after = get_ok(port, "/metrics").unwrap_or_default();
    signal(&child, "TERM");
    let status = wait_exit(&mut child, Duration::from_secs(10)).expect("exits after SIGTERM");
    assert!(paused, "the sink pauses while its receiver is down");
    assert!(
        text.contains("paused since")
            && text.contains("next probe in")
            && text.contains("cannot reach"),
        "{text}"
    );
    assert_eq!(sink_state(&scrape, "hook", "paused"), Some(1.0), "{scrape}");
    assert_eq!(sink_state(&scrape, "hook", "up"), Some(0.0));
    assert!(all_in, "every item arrived once the receiver was back");
    assert!(status.success());

    let records = receiver.records();
    let t0 = *start.get().expect("the receiver saw requests");
    let up_at = t0 + DOWN;
    let (during, _): (Vec<&Record>, Vec<&Record>) = records.iter().partition(|r| r.arrived < up_at);
    let first_round: Vec<&&Record> = during
        .iter()
        .filter(|r| r.arrived < t0 + Duration::from_millis(500))
        .collect();
    assert!(
        first_round.len() <= 4,
        "{} in the first round",
        first_round.len()
    );
    let probes: Vec<&&Record> = during
        .iter()
        .filter(|r| r.arrived >= t0 + Duration::from_millis(500))
        .collect();
    assert!(
        probes.iter().all(|r| r.in_flight == 1),
        "one probe at a time while down"
    );
    // Probes after 1, 3, 7, 12, 17 … s: a dozen in a minute, not a request per row.
    assert!(
        (5..=15).contains(&probes.len()),
        "{} probes while down",
        probes.len()
    );
    assert!(during.iter().all(|r| !r.delivered()));
    let last = records
        .iter()
        .filter(|r| r.delivered())
        .map(|r| r.ended)
        .max()
        .expect("deliveries");
    let recovery = last - up_at;
    println!(
        "recovery after a 60 s outage: {:.2} s (probe_interval 5 s)",
        recovery.as_secs_f64()
    );
    assert!(
        recovery < Duration::from_secs(10),
        "everything delivered {recovery:?} after the receiver came back"
    );
    assert_eq!(after[..3], ["0", "20", "0"], "{after_text}");
    assert_eq!(after[3], "up", "{after_text}");
    assert_eq!(sink_state(&scrape_after, "hook", "up"), Some(1.0));
}

#[test]
fn a_400_for_one_item_dead_letters_only_that_row_and_the_sink_never_pauses() {
    let feed = feed_with(12);
    let receiver = Receiver::start(HOLD, |r| {
        let v: serde_json::Value = serde_json::from_slice(r.body).expect("JSON body");
        if v["item"]["title"] == "Story number 5" {
            Answer::status(400)
        } else {
            Answer::ok()
        }
    });
    let setup = Setup::new(&hook_config(
        &feed,
        &[("hook", receiver.url())],
        "concurrency = 4",
    ));
    let out = run_with_secret(&setup, &["once", "--timeout", "30s"]);
    assert_ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("paused"), "{stderr}");
    let records = receiver.records();
    assert_eq!(records.len(), 12, "one attempt each: nothing retried");
    assert_eq!(receiver.delivered_ids().len(), 11);
    let (row, text) = deliveries(&setup, "hook");
    assert_eq!(row, ["0", "11", "1", "up"], "{text}");
    let out = run_with_secret(&setup, &["deliveries", "--dead"]);
    let dead = String::from_utf8_lossy(&out.stdout);
    assert!(
        dead.contains("Story number 5") && dead.contains("receiver answered HTTP 400"),
        "{dead}"
    );
}

#[test]
fn a_410_pauses_the_sink_keeps_its_rows_and_a_restart_delivers_them() {
    let feed = feed_with(6);
    let receiver = Receiver::start(HOLD, |_| Answer::status(410));
    let setup = Setup::new(&hook_config(
        &feed,
        &[("hook", receiver.url())],
        "concurrency = 4",
    ));
    let log = std::fs::File::create(setup.path("daemon.log")).expect("daemon log");
    let mut child = setup
        .command(&["run"])
        .env("FW_TEST_SECRET", SECRET)
        .stderr(log)
        .spawn()
        .expect("spawn");
    let paused = wait_until(Duration::from_secs(20), || {
        deliveries(&setup, "hook").0.last().map(String::as_str) == Some("paused")
    });
    let sent = receiver.records().len();
    // Paused for an hour: nothing more goes out in the next seconds.
    std::thread::sleep(Duration::from_secs(3));
    let sent_later = receiver.records().len();
    let (row, text) = deliveries(&setup, "hook");
    signal(&child, "TERM");
    let status = wait_exit(&mut child, Duration::from_secs(10)).expect("exits");
    let stderr = std::fs::read_to_string(setup.path("daemon.log")).unwrap_or_default();
    assert!(paused, "a 410 pauses the sink: {text}");
    assert!(status.success());
    assert!(sent <= 4, "one round at most: {sent}");
    assert_eq!(sent, sent_later, "nothing is sent while the sink is paused");
    assert_eq!(
        row,
        ["6", "0", "0", "paused"],
        "nothing is dead-lettered: {text}"
    );
    assert!(text.contains("HTTP 410"), "{text}");
    assert!(stderr.contains("fix its url"), "{stderr}");

    // Fixed: a restart probes at once and delivers every row, under the same webhook-ids.
    let gone_ids: HashSet<String> = receiver
        .records()
        .into_iter()
        .map(|r| r.webhook_id)
        .collect();
    receiver.script(|_| Answer::ok());
    assert_ok(&run_with_secret(&setup, &["once", "--timeout", "30s"]));
    let delivered = receiver.delivered_ids();
    assert_eq!(delivered.len(), 6);
    assert!(gone_ids.iter().all(|id| delivered.contains(id)));
    let (row, text) = deliveries(&setup, "hook");
    assert_eq!(row, ["0", "6", "0", "up"], "{text}");
}

#[test]
fn probe_interval_is_checked_like_every_duration() {
    let feed = feed_with(1);
    let setup = Setup::new(&hook_config(
        &feed,
        &[("hook", "http://127.0.0.1:9/hook".into())],
        "probe_interval = \"0s\"",
    ));
    let out = run_with_secret(&setup, &["check"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("sinks.hook.probe_interval") && err.contains("more than zero"),
        "{err}"
    );
}
