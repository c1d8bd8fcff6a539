//! The PostgreSQL store against a real server (`FEEDWIRE_TEST_POSTGRES`, e.g.
//! `postgres://postgres@127.0.0.1:5432/test`): several nodes on one database never hold the
//! same feed or outbox row at once, a node that dies without releasing loses its claims to
//! the others once its lease has passed, and two copies of a story stored by two nodes at
//! the same instant are one new item and one duplicate. Each test works in a schema of its own, dropped
//! at the end. Where the variable is unset the test says so and passes.
//!
//! Leases run on the wall clock (they must hold across processes and machines), so these
//! tests wait, with deadlines, for leases to pass.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use feedwire::dedup::{DuplicateReason, Fingerprint};
use feedwire::store::postgres::{Decision, PgError, PgSettings, PgStore, StoryItem};
use feedwire::store::{Attempt, DedupSettings, FeedSpec, Timestamp};

/// Short leases keep the waits short; real ones are minutes.
const LEASE: Duration = Duration::from_millis(1500);
/// The longest wait for a lease to pass.
const DEADLINE: Duration = Duration::from_secs(15);

/// A schema of its own on the test server, dropped when the test ends.
struct Db {
    url: String,
    admin: tokio_postgres::Client,
    schema: String,
}

impl Db {
    async fn new() -> Option<Db> {
        let Ok(base) = std::env::var("FEEDWIRE_TEST_POSTGRES") else {
            println!(
                "skipped: FEEDWIRE_TEST_POSTGRES is not set (it names the PostgreSQL server this test needs)"
            );
            return None;
        };
        let (admin, connection) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("FEEDWIRE_TEST_POSTGRES={base} does not answer: {e}"));
        tokio::spawn(connection);
        let schema = format!("fwtest_{}", ulid::Ulid::new().to_string().to_lowercase());
        admin
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .expect("create the test schema");
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
        Some(Db { url, admin, schema })
    }

    async fn node(&self, name: &str) -> PgStore {
        PgStore::connect(&self.settings(name))
            .await
            .unwrap_or_else(|e| panic!("node {name} connects: {e}"))
    }

    fn settings(&self, name: &str) -> PgSettings {
        PgSettings {
            url: self.url.clone(),
            pool_size: 4,
            node: name.to_string(),
        }
    }

    async fn drop_schema(self) {
        let _ = self
            .admin
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.schema))
            .await;
    }
}

fn specs(n: usize) -> Vec<FeedSpec> {
    (0..n)
        .map(|i| FeedSpec {
            name: format!("feed-{i:03}"),
            url: format!("http://127.0.0.1:9/{i}.xml"),
        })
        .collect()
}

/// Claims until `store` gets nothing more.
async fn claim_all(store: &PgStore) -> BTreeSet<String> {
    let mut got = BTreeSet::new();
    loop {
        let batch = store.claim_feeds(7, LEASE).await.expect("claim feeds");
        if batch.is_empty() {
            return got;
        }
        for f in batch {
            assert!(got.insert(f.name), "a node got the same feed twice");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_never_hold_one_feed_at_once_and_a_dead_nodes_feeds_return_after_its_lease() {
    let Some(db) = Db::new().await else { return };
    let (a, b, c) = tokio::join!(db.node("a"), db.node("b"), db.node("c"));
    a.sync_feeds(&specs(60)).await.expect("sync feeds");

    let (got_a, got_b, got_c) = tokio::join!(claim_all(&a), claim_all(&b), claim_all(&c));
    let claimed_at = Instant::now();
    assert!(got_a.is_disjoint(&got_b) && got_a.is_disjoint(&got_c) && got_b.is_disjoint(&got_c));
    let all: BTreeSet<String> = got_a.iter().chain(&got_b).chain(&got_c).cloned().collect();
    assert_eq!(all.len(), 60, "every due feed was claimed by some node");
    assert!(!got_c.is_empty(), "the third node got a share");

    // a and b finish their polls; c dies holding its leases.
    let later = Timestamp::now().after(Duration::from_secs(3600));
    for (store, got) in [(&a, &got_a), (&b, &got_b)] {
        let leased: Vec<i64> = feed_ids(&db, got).await;
        for id in leased {
            assert!(store.release_feed(id, later).await.expect("release"));
        }
    }
    drop(c);
    assert!(
        a.claim_feeds(100, LEASE).await.expect("claim").is_empty(),
        "the dead node's feeds stay its own while its lease runs"
    );
    let mut taken = BTreeSet::new();
    while taken.len() < got_c.len() && claimed_at.elapsed() < DEADLINE {
        for f in a.claim_feeds(100, LEASE).await.expect("claim") {
            taken.insert(f.name);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        taken, got_c,
        "the dead node's feeds, and only those, are taken over"
    );
    assert!(
        claimed_at.elapsed() >= LEASE,
        "not before its lease ran out"
    );
    db.drop_schema().await;
}

async fn feed_ids(db: &Db, names: &BTreeSet<String>) -> Vec<i64> {
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    db.admin
        .query(
            &format!("SELECT id FROM {}.feeds WHERE name = ANY($1)", db.schema),
            &[&names],
        )
        .await
        .expect("feed ids")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_lease_holds_and_a_lapsed_one_passes_to_another_node() {
    let Some(db) = Db::new().await else { return };
    let (a, b) = tokio::join!(db.node("a"), db.node("b"));
    a.sync_feeds(&specs(1)).await.expect("sync");
    let feed = a.claim_feeds(1, LEASE).await.expect("claim").remove(0);

    // A poll running for twice the lease, renewing as it goes: b never gets the feed.
    let start = Instant::now();
    while start.elapsed() < LEASE * 2 {
        assert!(a.renew_feed(feed.id, LEASE).await.expect("renew"));
        assert!(b.claim_feeds(1, LEASE).await.expect("claim").is_empty());
        tokio::time::sleep(LEASE / 5).await;
    }

    // a stalls without renewing: once the lease passes, b takes the feed, and a's late
    // renewal and record are refused.
    let mut taken = Vec::new();
    while taken.is_empty() && start.elapsed() < DEADLINE {
        taken = b.claim_feeds(1, LEASE).await.expect("claim");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(taken.len(), 1, "b takes the lapsed feed");
    assert!(!a.renew_feed(feed.id, LEASE).await.expect("renew"));
    assert!(
        !a.release_feed(feed.id, Timestamp::now())
            .await
            .expect("release")
    );
    assert!(
        b.release_feed(feed.id, Timestamp::now().after(Duration::from_secs(60)))
            .await
            .expect("release")
    );
    assert!(
        a.claim_feeds(1, LEASE).await.expect("claim").is_empty(),
        "not due again yet"
    );
    db.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_rows_go_to_one_live_node_and_a_dead_nodes_rows_return_with_their_webhook_id() {
    let Some(db) = Db::new().await else { return };
    let (a, b) = tokio::join!(db.node("a"), db.node("b"));
    let sinks = vec!["hook".to_string()];
    for i in 0..40 {
        a.emit("item.new", &format!("{{\"n\":{i}}}"), &sinks)
            .await
            .expect("emit");
    }
    async fn drain(store: &PgStore) -> Vec<feedwire::store::Delivery> {
        let mut got = Vec::new();
        loop {
            let batch = store.claim_outbox("hook", 8, LEASE).await.expect("claim");
            if batch.is_empty() {
                return got;
            }
            got.extend(batch);
        }
    }
    let (rows_a, rows_b) = tokio::join!(drain(&a), drain(&b));
    let ids_a: BTreeSet<&str> = rows_a.iter().map(|d| d.webhook_id.as_str()).collect();
    let ids_b: BTreeSet<&str> = rows_b.iter().map(|d| d.webhook_id.as_str()).collect();
    assert!(
        ids_a.is_disjoint(&ids_b),
        "no row claimed by both live nodes"
    );
    assert_eq!(ids_a.len() + ids_b.len(), 40);
    for d in &rows_a {
        assert!(
            a.finish_outbox(d.outbox_id, &Attempt::Delivered)
                .await
                .expect("finish")
        );
    }

    // b stops answering (it may be dead): after its lease, a redelivers b's rows, each under
    // the webhook-id b had; b's late record no longer counts.
    let start = Instant::now();
    let mut again = Vec::new();
    while again.len() < rows_b.len() && start.elapsed() < DEADLINE {
        again.extend(a.claim_outbox("hook", 100, LEASE).await.expect("claim"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ids_again: BTreeSet<&str> = again.iter().map(|d| d.webhook_id.as_str()).collect();
    assert_eq!(ids_again, ids_b);
    if let Some(d) = rows_b.first() {
        assert!(
            !b.finish_outbox(d.outbox_id, &Attempt::Delivered)
                .await
                .expect("finish"),
            "a claim that passed to another node is not recorded"
        );
    }
    for d in &again {
        assert!(
            a.finish_outbox(d.outbox_id, &Attempt::Delivered)
                .await
                .expect("finish")
        );
    }
    let delivered: i64 = db
        .admin
        .query_one(
            &format!(
                "SELECT count(*) FROM {}.outbox WHERE state = 'delivered'",
                db.schema
            ),
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(delivered, 40);
    db.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_together_migrate_once_and_a_newer_schema_is_refused() {
    let Some(db) = Db::new().await else { return };
    let (a, b, c) = tokio::join!(db.node("a"), db.node("b"), db.node("c"));
    for node in [&a, &b, &c] {
        assert_eq!(
            node.schema_version().await.expect("version"),
            feedwire::store::postgres::SCHEMA_VERSION
        );
    }
    db.admin
        .batch_execute(&format!(
            "UPDATE {}.feedwire_schema SET version = 99",
            db.schema
        ))
        .await
        .expect("pretend a newer feedwire migrated");
    match PgStore::connect(&db.settings("d")).await {
        Err(e @ PgError::TooNew { found: 99, .. }) => {
            assert!(e.to_string().contains("upgrade feedwire"), "{e}");
        }
        Err(e) => panic!("expected a refusal of schema 99, got: {e}"),
        Ok(_) => panic!("a database newer than the code was accepted"),
    }
    db.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_another_feed_list_learns_where_it_differs() {
    let Some(db) = Db::new().await else { return };
    let (a, b) = tokio::join!(db.node("a"), db.node("b"));
    let first = a.sync_feeds(&specs(3)).await.expect("sync");
    assert_eq!(
        first,
        Default::default(),
        "a fresh database agrees with anything"
    );
    let mut other = specs(2);
    other[1].url = "http://127.0.0.1:9/moved.xml".into();
    let sync = b.sync_feeds(&other).await.expect("sync");
    assert_eq!(sync.changed, vec!["feed-001".to_string()]);
    assert_eq!(sync.not_in_config, vec!["feed-002".to_string()]);
    assert_eq!(
        b.sync_feeds(&other).await.expect("sync"),
        Default::default(),
        "the same config again agrees"
    );
    db.drop_schema().await;
}

/// Rounds of the same-story race; each round is two nodes storing two copies at once.
const RACES: u64 = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_story_stored_by_two_nodes_at_once_is_new_once_and_a_duplicate_once() {
    let Some(db) = Db::new().await else { return };
    let (a, b) = tokio::join!(db.node("a"), db.node("b"));
    let feeds = vec![
        FeedSpec {
            name: "one".into(),
            url: "http://127.0.0.1:9/one.xml".into(),
        },
        FeedSpec {
            name: "two".into(),
            url: "http://127.0.0.1:9/two.xml".into(),
        },
    ];
    a.sync_feeds(&feeds).await.expect("sync");
    let one = a.feed_id("one").await.expect("id").expect("feed one");
    let two = a.feed_id("two").await.expect("id").expect("feed two");
    let dedup = DedupSettings {
        near_duplicates: true,
        window: Duration::from_secs(30 * 24 * 3600),
    };
    for round in 0..RACES {
        // The same text under two URLs, one in each feed.
        let copy = |feed_id: i64, feed: &str| StoryItem {
            id: ulid::Ulid::new().to_string(),
            feed_id,
            key: format!("guid:{feed}/{round}"),
            fingerprint: Fingerprint {
                url_keys: vec![format!("example.com/{feed}/story/{round}")],
                content_hash: Some(text_hash(round, 1)),
                ..Default::default()
            },
        };
        let x = copy(one, "one");
        let y = copy(two, "two");
        let (dx, dy) = tokio::join!(a.ingest_item(&x, &dedup), b.ingest_item(&y, &dedup));
        let (dx, dy) = (dx.expect("ingest on a"), dy.expect("ingest on b"));
        let reason = DuplicateReason::Content;
        match (&dx, &dy) {
            (Decision::New, Decision::Duplicate { of, reason: r }) => {
                assert_eq!((of, *r), (&x.id, reason), "round {round}")
            }
            (Decision::Duplicate { of, reason: r }, Decision::New) => {
                assert_eq!((of, *r), (&y.id, reason), "round {round}")
            }
            other => panic!("round {round}: one new and one duplicate, got {other:?}"),
        }
        // The same entry seen again in its feed is neither.
        assert_eq!(
            a.ingest_item(
                &StoryItem {
                    id: ulid::Ulid::new().to_string(),
                    ..x.clone()
                },
                &dedup
            )
            .await
            .expect("ingest again"),
            Decision::Known
        );
    }
    db.drop_schema().await;
}

/// A stand-in for the hash of a text: distinct for each (round, text).
fn text_hash(round: u64, text: u8) -> [u8; 32] {
    let mut h = [0u8; 32];
    h[0] = text;
    h[1..9].copy_from_slice(&round.to_be_bytes());
    h
}
