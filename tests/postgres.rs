//! The PostgreSQL store's feed leases and migrations against a real server
//! (`FEEDWIRE_TEST_POSTGRES`, e.g. `postgres://postgres@127.0.0.1:5432/test`): several nodes
//! on one database never hold the same feed at once, a node that dies without recording its
//! polls loses its feeds to the others once its lease has passed, and nodes starting together
//! migrate once. Each test works in a schema of its own, dropped at the end. Where the
//! variable is unset the test says so and passes.
//!
//! Leases run on the wall clock (they must hold across processes and machines), so these
//! tests wait, with deadlines, for leases to pass.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use feedwire::store::postgres::{PgError, PgSettings, PgStore};
use feedwire::store::{FeedLease, FeedSpec, PollRecord, PollStatus, Timestamp};

/// Short leases keep the waits short; real ones are minutes.
const LEASE: Duration = Duration::from_millis(1500);
/// The longest wait for a lease to pass.
const DEADLINE: Duration = Duration::from_secs(15);

#[path = "common/pg.rs"]
mod pg;
use pg::Db;

/// A node on the test's schema.
async fn node(db: &Db, name: &str) -> PgStore {
    PgStore::connect(&settings(db, name))
        .await
        .unwrap_or_else(|e| panic!("node {name} connects: {e}"))
}

fn settings(db: &Db, name: &str) -> PgSettings {
    PgSettings {
        url: db.url.clone(),
        pool_size: 4,
        node: name.to_string(),
        lease: LEASE,
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

/// The ids `lease_feeds` gave this node, by name.
fn held(answers: &[FeedLease]) -> BTreeSet<String> {
    answers
        .iter()
        .filter_map(|a| match a {
            FeedLease::Held(f) => Some(f.name.clone()),
            FeedLease::Busy { .. } => None,
        })
        .collect()
}

/// Asks for every feed of `ids`, seven at a time, starting at `from`; the names it got.
async fn lease_all(store: &PgStore, ids: &[i64], from: usize) -> BTreeSet<String> {
    let mut order = ids.to_vec();
    order.rotate_left(from);
    let mut got = BTreeSet::new();
    for batch in order.chunks(7) {
        let answers = store.lease_feeds(batch.to_vec()).await.expect("lease");
        for name in held(&answers) {
            assert!(got.insert(name), "a node got the same feed twice");
        }
    }
    got
}

/// A poll's record: answered 304, next due `next`.
fn polled(next: Timestamp) -> PollRecord {
    PollRecord {
        at: Timestamp::now(),
        status: PollStatus::NotModified,
        http_status: Some(304),
        error: None,
        errors_in_row: 0,
        next_poll_at: next,
        etag: None,
        last_modified: None,
        title: None,
        moved_to: None,
        rate: None,
        reason: None,
        event: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_never_hold_one_feed_at_once_and_a_dead_nodes_feeds_return_after_its_lease() {
    let Some(db) = Db::new().await else { return };
    let (a, b, c) = tokio::join!(node(&db, "a"), node(&db, "b"), node(&db, "c"));
    let stored = a.sync_feeds(specs(60)).await.expect("sync feeds");
    let ids: Vec<i64> = stored.iter().map(|f| f.id).collect();

    // All three ask for every feed at once, a tick's batch at a time, each starting at
    // another place in the list, as three schedulers with their own start-up spread would.
    // The leases run from after this instant.
    let claimed_at = Instant::now();
    let (got_a, got_b, got_c) = tokio::join!(
        lease_all(&a, &ids, 0),
        lease_all(&b, &ids, 20),
        lease_all(&c, &ids, 40)
    );
    assert!(!got_c.is_empty(), "the third node got a share");
    assert!(got_a.is_disjoint(&got_b) && got_a.is_disjoint(&got_c) && got_b.is_disjoint(&got_c));
    let all: BTreeSet<String> = got_a.iter().chain(&got_b).chain(&got_c).cloned().collect();
    assert_eq!(all.len(), 60, "every due feed was leased by some node");

    // a and b record their polls (next due in an hour); c dies holding its leases.
    let later = Timestamp::now().after(Duration::from_secs(3600));
    for (store, got) in [(&a, &got_a), (&b, &got_b)] {
        let polls = feed_ids(&db, got)
            .await
            .into_iter()
            .map(|id| (id, polled(later)))
            .collect();
        store.record_polls(polls).await.expect("record");
    }
    drop(c);
    let answers = a.lease_feeds(ids.clone()).await.expect("lease");
    assert!(
        held(&answers).is_empty(),
        "the dead node's feeds stay its own while its lease runs, the others are not due"
    );
    for answer in &answers {
        let FeedLease::Busy { retry_at, .. } = answer else {
            unreachable!("nothing was held")
        };
        assert!(
            *retry_at > Timestamp::now(),
            "a busy feed is asked for again later"
        );
    }
    let mut taken = BTreeSet::new();
    while taken.len() < got_c.len() && claimed_at.elapsed() < DEADLINE {
        taken.extend(held(&a.lease_feeds(ids.clone()).await.expect("lease")));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        taken, got_c,
        "the dead node's feeds, and only those, are taken over"
    );
    // Lease ends are kept in whole milliseconds.
    assert!(
        claimed_at.elapsed() + Duration::from_millis(2) >= LEASE,
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
    let (a, b) = tokio::join!(node(&db, "a"), node(&db, "b"));
    let ids: Vec<i64> = a
        .sync_feeds(specs(1))
        .await
        .expect("sync")
        .iter()
        .map(|f| f.id)
        .collect();
    assert_eq!(
        held(&a.lease_feeds(ids.clone()).await.expect("lease")).len(),
        1
    );

    // A poll running for twice the lease, renewing as it goes: b never gets the feed.
    let start = Instant::now();
    while start.elapsed() < LEASE * 2 {
        assert_eq!(a.renew_leases().await.expect("renew"), 1);
        assert!(held(&b.lease_feeds(ids.clone()).await.expect("lease")).is_empty());
        tokio::time::sleep(LEASE / 5).await;
    }

    // a stalls without renewing: once the lease passes, b takes the feed, and a's late
    // renewal extends nothing.
    let mut taken = BTreeSet::new();
    while taken.is_empty() && start.elapsed() < DEADLINE {
        taken = held(&b.lease_feeds(ids.clone()).await.expect("lease"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(taken.len(), 1, "b takes the lapsed feed");
    assert_eq!(a.renew_leases().await.expect("renew"), 0);
    // b records its poll: the feed is free but not due again for a minute.
    let next = Timestamp::now().after(Duration::from_secs(60));
    b.record_polls(vec![(ids[0], polled(next))])
        .await
        .expect("record");
    let answers = a.lease_feeds(ids.clone()).await.expect("lease");
    assert!(held(&answers).is_empty(), "not due again yet");
    assert!(
        matches!(answers[..], [FeedLease::Busy { retry_at, .. }] if retry_at == next),
        "asked for again when it is due: {answers:?}"
    );
    db.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_together_migrate_once_and_a_newer_schema_is_refused() {
    let Some(db) = Db::new().await else { return };
    let (a, b, c) = tokio::join!(node(&db, "a"), node(&db, "b"), node(&db, "c"));
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
    match PgStore::connect(&settings(&db, "d")).await {
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
    let (a, b) = tokio::join!(node(&db, "a"), node(&db, "b"));
    let (first, _) = a.sync_feed_list(&specs(3)).await.expect("sync");
    assert_eq!(
        first,
        Default::default(),
        "a fresh database agrees with anything"
    );
    let mut other = specs(2);
    other[1].url = "http://127.0.0.1:9/moved.xml".into();
    let (sync, active) = b.sync_feed_list(&other).await.expect("sync");
    assert_eq!(sync.changed, vec!["feed-001".to_string()]);
    assert_eq!(sync.not_in_config, vec!["feed-002".to_string()]);
    assert_eq!(active.len(), 2, "the feed b does not list is inactive");
    assert_eq!(
        b.sync_feed_list(&other).await.expect("sync").0,
        Default::default(),
        "the same config again agrees"
    );
    db.drop_schema().await;
}
