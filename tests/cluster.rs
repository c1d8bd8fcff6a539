//! Three daemons on one PostgreSQL database (`FEEDWIRE_TEST_POSTGRES`), one config of 300
//! feeds on a local farm publishing all along, one daemon killed with -9 halfway and not
//! restarted. What a user of several daemons relies on:
//! - every item reaches the webhook under exactly one `webhook-id`, none is lost, and no
//!   outbox row is left undelivered;
//! - no feed is fetched by two daemons within one interval while both are alive;
//! - the dead daemon's feeds are polled again within its lease plus an interval.
//!
//! Where the variable is unset the test says so and passes.

mod common;
#[path = "common/pg.rs"]
mod pg;
#[path = "common/receiver.rs"]
mod receiver;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Entry, Killed, Route, Server, Setup, rss, wait_until};
use receiver::{Answer, Receiver};

const FEEDS: usize = 300;
const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];
/// Each feed's fixed interval, and how often it gains an item.
const INTERVAL: Duration = Duration::from_secs(2);
const PUBLISH_EVERY: Duration = Duration::from_secs(3);
const LEASE: Duration = Duration::from_secs(3);
/// A feed is due at most a scheduler tick late, its interval is jittered by a tenth, and a
/// lease is asked for again only once the answer said it would be free; debug builds on a
/// busy machine add seconds.
const SLACK: Duration = Duration::from_secs(5);

/// Entries a feed serves `elapsed` after the start: one more every [`PUBLISH_EVERY`], the
/// newest ten, until publishing stops.
fn entries(feed: usize, published: u32) -> Vec<Entry> {
    let first = published.saturating_sub(10);
    (first..published)
        .map(|n| {
            let mut e = Entry::new(n, &format!("http://farm.test/f{feed}"));
            e.id = format!("urn:f{feed}:{n}");
            e.title = format!("Feed {feed} story {n}");
            e.summary = format!("<p>Item {n} of feed {feed}, in its own words.</p>");
            e
        })
        .collect()
}

fn published(start: Instant, stopped: Option<Instant>) -> u32 {
    let until = stopped.unwrap_or_else(Instant::now);
    1 + (until.saturating_duration_since(start).as_millis() / PUBLISH_EVERY.as_millis()) as u32
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_daemons_share_300_feeds_and_one_killed_loses_nothing() {
    let Some(db) = pg::Db::new().await else {
        return;
    };
    let farm = Server::start();
    let start = Instant::now();
    let stop_at: Arc<std::sync::Mutex<Option<Instant>>> = Arc::default();
    {
        let stop_at = stop_at.clone();
        farm.respond_prefix("/f/", move |seen, _| {
            let feed: usize = seen
                .path
                .trim_start_matches("/f/")
                .trim_end_matches(".xml")
                .parse()
                .unwrap_or(0);
            let stopped = *stop_at.lock().expect("lock");
            Route::ok(
                rss(
                    &format!("feed {feed}"),
                    &entries(feed, published(start, stopped)),
                ),
                "application/rss+xml",
            )
        });
    }
    let hook = Receiver::start(Duration::ZERO, |_| Answer::ok());

    let mut body = format!(
        "[store]\nbackend = \"postgres\"\nurl_env = \"FEEDWIRE_DATABASE_URL\"\nlease = \"{}s\"\n\n\
         [article]\nfetch = false\n\n[dedup]\nnear_duplicates = false\n\n\
         [sinks.hook]\ntype = \"webhook\"\nurl = \"{}\"\nretry_schedule = [\"1s\"]\n\n",
        LEASE.as_secs(),
        hook.url()
    );
    for i in 0..FEEDS {
        body.push_str(&format!(
            "[[feeds]]\nname = \"f{i}\"\nurl = \"{}\"\ninterval = \"{}s\"\n\n",
            farm.url(&format!("/f/{i}.xml")),
            INTERVAL.as_secs()
        ));
    }
    let setup = Setup::new("");
    setup.write_config_with_daemon("max_connections = 32\nper_host_connections = 8\n", &body);
    let spawn = |node: &str| -> Child {
        setup
            .command(&["run"])
            .env("FEEDWIRE_DATABASE_URL", &db.url)
            .env("FEEDWIRE__STORE__NODE", node)
            .env("FEEDWIRE__DAEMON__USER_AGENT", node)
            .env("RUST_LOG", "feedwire=info")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn feedwire")
    };
    let mut nodes: BTreeMap<&str, Killed> = NODES.iter().map(|n| (*n, Killed(spawn(n)))).collect();

    let polls_by = |node: &str| {
        farm.all_seen()
            .iter()
            .filter(|s| s.header("user-agent").as_deref() == Some(node))
            .count()
    };
    // Halfway: every node has been polling for a while.
    assert!(
        wait_until(Duration::from_secs(60), || NODES
            .iter()
            .all(|n| polls_by(n) >= FEEDS / 2)),
        "each daemon polls its share: {:?}",
        NODES.map(polls_by)
    );
    let victim = "node-c";
    let mut dead = nodes.remove(victim).expect("victim");
    dead.0.kill().expect("kill -9");
    dead.0.wait().expect("reap");
    let killed_at = Instant::now();

    // The survivors take the dead daemon's feeds over: every feed is polled by a survivor
    // after the lease has passed.
    let survivors_after = |at: Instant| -> BTreeSet<usize> {
        farm.all_seen()
            .iter()
            .filter(|s| s.at > at && s.header("user-agent").as_deref() != Some(victim))
            .filter_map(|s| {
                s.path
                    .trim_start_matches("/f/")
                    .trim_end_matches(".xml")
                    .parse()
                    .ok()
            })
            .collect()
    };
    assert!(
        wait_until(Duration::from_secs(60), || survivors_after(
            killed_at + LEASE
        )
        .len()
            == FEEDS),
        "every feed is polled by the survivors: {} of {FEEDS}",
        survivors_after(killed_at + LEASE).len()
    );
    // Publishing stops; everything published must arrive.
    let stopped = Instant::now();
    *stop_at.lock().expect("lock") = Some(stopped);
    let total = published(start, Some(stopped));
    let expected: BTreeSet<String> = (0..FEEDS)
        .flat_map(|f| (0..total).map(move |n| format!("urn:f{f}:{n}")))
        .collect();
    let delivered_items = || -> BTreeMap<String, BTreeSet<String>> {
        let mut by_item: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for r in hook.records().iter().filter(|r| r.delivered()) {
            let body = r.json();
            let guid = body["item"]["guid"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            by_item
                .entry(guid)
                .or_default()
                .insert(r.webhook_id.clone());
        }
        by_item
    };
    assert!(
        wait_until(Duration::from_secs(90), || {
            let got = delivered_items();
            expected.iter().all(|g| got.contains_key(g))
        }),
        "every published item reaches the webhook: {} of {} (missing e.g. {:?})",
        delivered_items().len(),
        expected.len(),
        expected
            .iter()
            .find(|g| !delivered_items().contains_key(*g))
    );
    let got = delivered_items();
    let twice: Vec<_> = got.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(twice.is_empty(), "items emitted under two ids: {twice:?}");
    assert_eq!(
        got.keys().cloned().collect::<BTreeSet<_>>(),
        expected,
        "nothing but the published items"
    );
    assert!(
        wait_until(Duration::from_secs(30), || { undelivered(&db) == 0 }),
        "every outbox row is delivered"
    );

    // The farm's log: a feed is never fetched by two live daemons within one interval.
    let seen = farm.all_seen();
    let mut by_feed: HashMap<String, Vec<(Instant, String)>> = HashMap::new();
    for s in &seen {
        if let Some(node) = s.header("user-agent") {
            by_feed
                .entry(s.path.clone())
                .or_default()
                .push((s.at, node));
        }
    }
    let min_gap = INTERVAL.mul_f64(0.8);
    let mut takeovers = Vec::new();
    for (feed, mut polls) in by_feed {
        polls.sort();
        for pair in polls.windows(2) {
            let ((t1, n1), (t2, n2)) = (&pair[0], &pair[1]);
            if n1 != n2 {
                assert!(
                    t2.duration_since(*t1) >= min_gap,
                    "{feed} fetched by {n1} and {n2} {:?} apart",
                    t2.duration_since(*t1)
                );
            }
        }
        // The dead daemon's last feeds: when a survivor polled them again.
        if let Some((last, node)) = polls.iter().rev().find(|(t, _)| *t <= killed_at)
            && node == victim
        {
            let next = polls.iter().find(|(t, _)| t > last).map(|(t, _)| *t);
            let next = next.unwrap_or_else(|| panic!("{feed} never polled after the kill"));
            takeovers.push((next.duration_since(killed_at), feed));
        }
    }
    takeovers.sort();
    let (worst, feed) = takeovers.last().expect("the dead daemon polled some feeds");
    println!(
        "takeover after kill -9: {} feeds, median {:?}, worst {worst:?} ({feed}); lease {LEASE:?}, interval {INTERVAL:?}",
        takeovers.len(),
        takeovers[takeovers.len() / 2].0
    );
    assert!(
        *worst <= LEASE + INTERVAL + SLACK,
        "{feed}: the dead daemon's feed waited {worst:?} after the kill"
    );
    for (_, mut node) in nodes {
        let _ = node.0.kill();
    }
    db.drop_schema().await;
}

/// Outbox rows not yet delivered (a blocking read for `wait_until`).
fn undelivered(db: &pg::Db) -> i64 {
    tokio::task::block_in_place(|| {
        tokio::runtime::Handle::current()
            .block_on(db.count("SELECT count(*) FROM {s}.outbox WHERE state <> 'delivered'"))
    })
}
