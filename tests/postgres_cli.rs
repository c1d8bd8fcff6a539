//! Every command on the PostgreSQL store (`FEEDWIRE_TEST_POSTGRES`), through the real binary:
//! `check`, `once`, `feeds`, `items`, `deliveries`, `redeliver`, and the errors a user meets
//! when the connection string is missing or the server does not answer. Where the variable is
//! unset the test says so and passes.

mod common;
#[path = "common/pg.rs"]
mod pg;
#[path = "common/receiver.rs"]
mod receiver;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Entry, Route, Server, Setup, assert_ok, rss};
use receiver::{Answer, Receiver};

fn config(feed: &str, hook: &str, strict: &str) -> String {
    format!(
        "[store]\nbackend = \"postgres\"\nurl_env = \"FEEDWIRE_DATABASE_URL\"\nlease = \"5s\"\n\n\
         [article]\nfetch = false\n\n\
         [sinks.hook]\ntype = \"webhook\"\nurl = \"{hook}\"\n\n\
         [sinks.strict]\ntype = \"webhook\"\nurl = \"{strict}\"\n\n\
         [[feeds]]\nname = \"news\"\nurl = \"{feed}\"\n"
    )
}

fn run(setup: &Setup, url: &str, args: &[&str]) -> std::process::Output {
    setup
        .command(args)
        .env("FEEDWIRE_DATABASE_URL", url)
        .output()
        .expect("run feedwire")
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_works_on_the_postgres_store() {
    let Some(db) = pg::Db::new().await else {
        return;
    };
    let farm = Server::start();
    let entries: Vec<Entry> = (1..=3).map(|n| Entry::new(n, &farm.url(""))).collect();
    farm.set(
        "/feed.xml",
        Route::ok(rss("news", &entries), "application/rss+xml"),
    );
    let hook = Receiver::start(Duration::ZERO, |_| Answer::ok());
    // The strict receiver refuses everything (400: dead-lettered at once) until told not to.
    let refusing = Arc::new(AtomicBool::new(true));
    let strict = {
        let refusing = refusing.clone();
        Receiver::start(Duration::ZERO, move |_| {
            if refusing.load(Ordering::Relaxed) {
                Answer::status(400)
            } else {
                Answer::ok()
            }
        })
    };
    let setup = Setup::new(&config(&farm.url("/feed.xml"), &hook.url(), &strict.url()));
    let url = db.url.clone();

    assert_ok(&run(&setup, &url, &["check"]));
    let once = run(&setup, &url, &["once"]);
    assert_ok(&once);
    assert_eq!(hook.delivered_ids().len(), 3, "three items delivered");

    let feeds = run(&setup, &url, &["feeds", "--json"]);
    assert_ok(&feeds);
    let feeds: serde_json::Value = serde_json::from_slice(&feeds.stdout).expect("JSON");
    assert_eq!(feeds[0]["name"], "news", "{feeds}");
    assert_eq!(feeds[0]["items"], 3, "{feeds}");

    let items = run(&setup, &url, &["items", "--json"]);
    assert_ok(&items);
    let items: serde_json::Value = serde_json::from_slice(&items.stdout).expect("JSON");
    assert_eq!(items.as_array().map(Vec::len), Some(3), "{items}");

    let deliveries = run(&setup, &url, &["deliveries", "--dead", "--sink", "strict"]);
    assert_ok(&deliveries);
    let text = stdout(&deliveries);
    assert!(text.contains("dead letters:"), "{text}");
    assert_eq!(text.matches("attempts 1").count(), 3, "{text}");
    let first_ids: std::collections::BTreeSet<String> =
        strict.records().into_iter().map(|r| r.webhook_id).collect();
    assert_eq!(first_ids.len(), 3);

    // Redelivered once the receiver accepts: the same webhook-ids arrive again.
    refusing.store(false, Ordering::Relaxed);
    let again = run(&setup, &url, &["redeliver", "--sink", "strict", "--dead"]);
    assert_ok(&again);
    assert!(
        stdout(&again).starts_with("queued 3 deliveries"),
        "{}",
        stdout(&again)
    );
    assert_ok(&run(&setup, &url, &["once"]));
    assert_eq!(
        strict.delivered_ids(),
        first_ids,
        "redelivered under their ids"
    );
    assert_eq!(
        hook.delivered_ids().len(),
        3,
        "nothing new for the other sink"
    );
    let deliveries = stdout(&run(&setup, &url, &["deliveries"]));
    let strict_line = deliveries
        .lines()
        .find(|l| l.starts_with("strict"))
        .unwrap_or_else(|| panic!("{deliveries}"));
    assert_eq!(
        strict_line.split_whitespace().take(4).collect::<Vec<_>>(),
        ["strict", "0", "3", "0"],
        "{deliveries}"
    );
    db.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_connection_string_or_a_dead_server_is_one_clear_error() {
    let Some(db) = pg::Db::new().await else {
        return;
    };
    let setup = Setup::new(&config(
        "http://127.0.0.1:9/feed.xml",
        "http://127.0.0.1:9/hook",
        "http://127.0.0.1:9/strict",
    ));
    let missing = setup
        .command(&["feeds"])
        .env_remove("FEEDWIRE_DATABASE_URL")
        .output()
        .expect("run");
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains("store.url_env") && err.contains("FEEDWIRE_DATABASE_URL"),
        "{err}"
    );

    let dead = run(
        &setup,
        "postgres://feedwire:hunter2@127.0.0.1:1/feedwire",
        &["feeds"],
    );
    assert!(!dead.status.success());
    let err = String::from_utf8_lossy(&dead.stderr);
    assert_eq!(
        err.matches("cannot connect to PostgreSQL").count(),
        1,
        "said once, with the cause: {err}"
    );
    assert!(err.contains("refused"), "{err}");
    assert!(
        !err.contains("hunter2"),
        "the password is never printed: {err}"
    );
    assert_eq!(
        err.lines().filter(|l| !l.trim().is_empty()).count(),
        1,
        "one line: {err}"
    );
    db.drop_schema().await;
}
