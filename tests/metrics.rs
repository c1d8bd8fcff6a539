//! `/metrics`, `/healthz`, `/readyz` and the status page of the running binary.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;

fn status_and_body(port: u16, path: &str) -> Option<(u16, String)> {
    http_get(port, path, "").map(|(status, _, body)| (status, body))
}

#[test]
fn metrics_move_with_polls_and_readiness_follows_the_database() {
    let server = Server::start();
    let base = server.url("");
    let entries: Vec<Entry> = (1..=2).map(|n| Entry::new(n, &base)).collect();
    server.set(
        "/rss.xml",
        Route::ok(rss("F", &entries), "application/rss+xml"),
    );
    let port = free_port();
    let setup = Setup::new(&format!(
        "[article]\nfetch = false\n\n[[feeds]]\nname = \"f\"\nurl = \"{}\"\ninterval = \"1s\"\n",
        server.url("/rss.xml")
    ));
    let config = std::fs::read_to_string(setup.config_path()).expect("config");
    std::fs::write(
        setup.config_path(),
        config.replace(
            "[daemon]\n",
            &format!("[daemon]\nlisten = \"127.0.0.1:{port}\"\n"),
        ),
    )
    .expect("write");
    let mut child = setup
        .command(&["run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");

    assert!(wait_until(Duration::from_secs(10), || status_and_body(
        port, "/healthz"
    )
    .is_some_and(|(s, _)| s == 200)));
    assert!(wait_until(Duration::from_secs(10), || setup.lines().len() == 2));
    let (status, first) = status_and_body(port, "/metrics").expect("metrics");
    assert_eq!(status, 200);
    assert_eq!(
        metric_sample(&first, "feedwire_items_total", &[("kind", "new")]),
        Some(2.0)
    );
    assert!(
        metric_sample(&first, "feedwire_polls_total", &[("outcome", "ok")]).unwrap_or(0.0) >= 1.0
    );
    assert_eq!(
        metric_sample(
            &first,
            "feedwire_deliveries_total",
            &[("sink", "out"), ("outcome", "delivered")]
        ),
        Some(2.0)
    );
    assert_eq!(
        metric_sample(&first, "feedwire_outbox_pending", &[("sink", "out")]),
        Some(0.0)
    );
    assert_eq!(metric_sample(&first, "feedwire_feeds", &[]), Some(1.0));
    assert!(first.contains("feedwire_build_info"), "{first}");

    // The feed is polled every second: the 304 counter moves.
    let not_modified = |t: &str| {
        metric_sample(t, "feedwire_polls_total", &[("outcome", "not_modified")]).unwrap_or(0.0)
    };
    let before = not_modified(&first);
    assert!(wait_until(Duration::from_secs(10), || status_and_body(
        port, "/metrics"
    )
    .is_some_and(|(_, t)| not_modified(&t) > before)));

    assert_eq!(status_and_body(port, "/readyz").map(|(s, _)| s), Some(200));
    let (status, page) = status_and_body(port, "/").expect("status page");
    assert_eq!(status, 200);
    assert!(
        page.contains("data-name=\"f\"") && page.contains("data-sink=\"out\""),
        "{page}"
    );

    // Another process holds the write lock: the database does not answer, /readyz says so.
    let db = rusqlite::Connection::open(setup.path("state/feedwire.db")).expect("open db");
    db.execute_batch("BEGIN IMMEDIATE").expect("lock");
    let (status, body) = status_and_body(port, "/readyz").expect("readyz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("database"), "{body}");
    db.execute_batch("ROLLBACK").expect("unlock");
    assert!(wait_until(Duration::from_secs(10), || status_and_body(
        port, "/readyz"
    )
    .is_some_and(|(s, _)| s == 200)));

    signal(&child, "TERM");
    let status = wait_exit(&mut child, Duration::from_secs(10)).expect("exits");
    assert!(status.success());
}
