//! Items on the PostgreSQL store against a real server (`FEEDWIRE_TEST_POSTGRES`, e.g.
//! `postgres://postgres@127.0.0.1:5432/test`): two nodes storing copies of one story at the
//! same instant make one `item.new` and one `item.duplicate` (by URL, by text, by a near
//! copy); an ingest records the poll and ends the feed's lease; known items, revisions, the
//! rules' unsent items and feeds that change their GUIDs behave as on SQLite; pruning drops
//! old sketches and finished events. Each test works in a schema of its own, dropped at the
//! end. Where the variable is unset the test says so and passes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use feedwire::dedup::{DuplicateReason, Fingerprint, content_hash, sketch};
use feedwire::store::postgres::{PgSettings, PgStore};
use feedwire::store::{
    DedupSettings, FeedLease, FeedSpec, IngestBatch, IngestReport, NewItem, PollRecord, PollStatus,
    Store, Timestamp,
};

/// Leases as long as a real one: nothing here waits for one to pass.
const LEASE: Duration = Duration::from_secs(60);

#[path = "common/pg.rs"]
mod pg;

use pg::Db;

async fn node(db: &Db, name: &str) -> PgStore {
    PgStore::connect(&PgSettings {
        url: db.url.clone(),
        pool_size: 4,
        node: name.to_string(),
        lease: LEASE,
    })
    .await
    .unwrap_or_else(|e| panic!("node {name} connects: {e}"))
}

/// Runs statements on the test schema (`{s}` names the schema).
async fn exec(db: &Db, sql: &str) {
    let sql = sql.replace("{s}", &db.schema);
    db.admin
        .batch_execute(&sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn feeds(store: &Store, names: &[&str]) -> Vec<i64> {
    let specs = names
        .iter()
        .map(|n| FeedSpec {
            name: n.to_string(),
            url: format!("http://127.0.0.1:9/{n}.xml"),
        })
        .collect();
    store
        .sync_feeds(specs)
        .await
        .expect("sync feeds")
        .iter()
        .map(|f| f.id)
        .collect()
}

/// A poll that answered 200, next due `next`.
fn polled(next: Timestamp) -> PollRecord {
    PollRecord {
        at: Timestamp::now(),
        status: PollStatus::Ok,
        http_status: Some(200),
        error: None,
        errors_in_row: 0,
        next_poll_at: next,
        etag: Some("\"v1\"".into()),
        last_modified: None,
        title: None,
        moved_to: None,
        rate: None,
        reason: None,
        event: None,
    }
}

/// An entry to store under `key`, sent to sink "hook" as new, duplicate or update.
fn item(key: &str, fingerprint: Option<Fingerprint>) -> NewItem {
    NewItem {
        id: ulid::Ulid::new().to_string(),
        key: key.to_string(),
        url: None,
        link: None,
        guid: Some(key.to_string()),
        title: Some(format!("Story {key}")),
        published_at: Some(Timestamp::now()),
        content_source: Some("feed"),
        emitted: true,
        not_sent: None,
        fingerprint,
        new_sinks: vec!["hook".into()],
        duplicate_sinks: vec!["hook".into()],
        revision: Some("r1".into()),
        update_of: None,
        updated_sinks: vec!["hook".into()],
    }
}

const NEAR: DedupSettings = DedupSettings {
    near_duplicates: true,
    window: Duration::from_secs(30 * 24 * 3600),
};

fn batch(feed_id: i64, items: Vec<NewItem>) -> IngestBatch {
    IngestBatch {
        feed_id,
        poll: polled(Timestamp::now().after(Duration::from_secs(60))),
        items,
        dedup: NEAR,
        render: Box::new(|i, kind, of| {
            format!("{{\"n\":{i},\"type\":\"{}\",\"of\":{of:?}}}", kind.as_str())
        }),
    }
}

/// A text of `words` distinct words on one line, different for each `seed`.
fn text(seed: &str, words: usize) -> String {
    (0..words)
        .map(|i| format!("{seed}w{i}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A fingerprint with these URL keys whose text is `text`.
fn fingerprint(url_keys: &[String], text: &str) -> Fingerprint {
    Fingerprint {
        url_keys: url_keys.to_vec(),
        content_hash: content_hash(text),
        sketch: sketch(text),
    }
}

/// The events stored for one item, by type.
async fn events_of(db: &Db, item_id: &str) -> HashMap<String, i64> {
    let sql = format!(
        "SELECT type, COUNT(*) FROM {}.events WHERE item_id = $1 GROUP BY type",
        db.schema
    );
    db.admin
        .query(&sql, &[&item_id])
        .await
        .expect("events")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// Rounds of the same-story race for each way two copies can match.
const RACES: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_story_ingested_by_two_nodes_at_once_is_new_once_and_a_duplicate_once() {
    let Some(db) = Db::new().await else { return };
    let (a, b) = tokio::join!(node(&db, "a"), node(&db, "b"));
    let (a, b) = (Store::postgres(a), Store::postgres(b));
    let ids = feeds(&a, &["one", "two"]).await;
    let (one, two) = (ids[0], ids[1]);
    for reason in [
        DuplicateReason::Url,
        DuplicateReason::Content,
        DuplicateReason::Near,
    ] {
        for round in 0..RACES {
            let tag = format!("{}{round}", reason.as_str());
            let story = text(&tag, 150);
            let (fx, fy) = match reason {
                // One link, two different texts.
                DuplicateReason::Url => {
                    let link = vec![format!("example.com/story/{tag}")];
                    (
                        fingerprint(&link, &text(&format!("{tag}x"), 150)),
                        fingerprint(&link, &text(&format!("{tag}y"), 150)),
                    )
                }
                // One text under two links.
                DuplicateReason::Content => (
                    fingerprint(&[format!("one.example/{tag}")], &story),
                    fingerprint(&[format!("two.example/{tag}")], &story),
                ),
                // A copy with its last words changed, under another link.
                DuplicateReason::Near => (
                    fingerprint(&[format!("one.example/{tag}")], &story),
                    fingerprint(
                        &[format!("two.example/{tag}")],
                        &format!("{} said an editor", text(&tag, 147)),
                    ),
                ),
            };
            if reason == DuplicateReason::Near {
                let ((sx, bx), (sy, by)) = (
                    fx.sketch.as_ref().expect("long enough"),
                    fy.sketch.as_ref().expect("long enough"),
                );
                assert!(fx.content_hash != fy.content_hash, "not the same text");
                assert!(sx.similarity(sy).is_match(), "round {round}: alike");
                assert!(
                    bx.iter().any(|k| by.contains(k)),
                    "round {round}: the copies share a band"
                );
            }
            let x = item(&format!("one/{tag}"), Some(fx));
            let y = item(&format!("two/{tag}"), Some(fy));
            let (x_id, y_id) = (x.id.clone(), y.id.clone());
            // Both wait at one barrier, then ingest, each on its own task and connection.
            let start = Arc::new(tokio::sync::Barrier::new(2));
            let run = |store: &Store, feed: i64, entry: NewItem| {
                let (store, start) = (store.clone(), start.clone());
                tokio::spawn(async move {
                    start.wait().await;
                    store.ingest(batch(feed, vec![entry])).await
                })
            };
            let (rx, ry) = tokio::join!(run(&a, one, x), run(&b, two, y));
            let rx = rx.expect("task a").expect("ingest on a");
            let ry = ry.expect("task b").expect("ingest on b");
            let new = IngestReport {
                stored: 1,
                emitted: 1,
                ..Default::default()
            };
            let duplicate = IngestReport {
                stored: 1,
                duplicates: 1,
                duplicate_reasons: vec![reason.as_str()],
                ..Default::default()
            };
            let (first, copy) = match (rx == new, ry == new) {
                (true, false) => (&x_id, &y_id),
                (false, true) => (&y_id, &x_id),
                _ => panic!("{tag}: one new and one duplicate, got {rx:?} and {ry:?}"),
            };
            assert_eq!(
                [&rx, &ry].into_iter().filter(|r| **r == duplicate).count(),
                1,
                "{tag}: {rx:?} {ry:?}"
            );
            let sql = format!(
                "SELECT duplicate_of, duplicate_reason FROM {}.items WHERE id = $1",
                db.schema
            );
            let row = db.admin.query_one(&sql, &[copy]).await.expect("the copy");
            assert_eq!(
                (
                    row.get::<_, Option<String>>(0),
                    row.get::<_, Option<String>>(1)
                ),
                (Some(first.clone()), Some(reason.as_str().to_string())),
                "{tag}: the copy points at the first"
            );
            assert_eq!(
                events_of(&db, first).await,
                HashMap::from([("item.new".to_string(), 1)]),
                "{tag}"
            );
            assert_eq!(
                events_of(&db, copy).await,
                HashMap::from([("item.duplicate".to_string(), 1)]),
                "{tag}"
            );
        }
    }
    db.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingest_records_the_poll_and_ends_the_lease() {
    let Some(db) = Db::new().await else { return };
    let (a, b) = tokio::join!(node(&db, "a"), node(&db, "b"));
    let store = Store::postgres(a.clone());
    let id = feeds(&store, &["one"]).await[0];
    assert!(matches!(
        a.lease_feeds(vec![id]).await.expect("lease")[..],
        [FeedLease::Held(_)]
    ));
    let next = Timestamp::now().after(Duration::from_secs(60));
    let mut polled_batch = batch(id, vec![item("k1", None)]);
    polled_batch.poll = polled(next);
    store.ingest(polled_batch).await.expect("ingest");
    let row = db
        .admin
        .query_one(
            &format!(
                "SELECT polls, etag, polled_by, lease_owner IS NULL AND lease_until IS NULL
                 FROM {}.feeds WHERE id = $1",
                db.schema
            ),
            &[&id],
        )
        .await
        .expect("feed row");
    assert_eq!(
        (
            row.get::<_, i64>(0),
            row.get::<_, Option<String>>(1),
            row.get::<_, Option<String>>(2),
            row.get::<_, bool>(3)
        ),
        (1, Some("\"v1\"".to_string()), Some("a".to_string()), true),
        "the poll is recorded and the lease ended"
    );
    for node in [&a, &b] {
        let answers = node.lease_feeds(vec![id]).await.expect("lease");
        assert!(
            matches!(answers[..], [FeedLease::Busy { retry_at, .. }] if retry_at == next),
            "busy until its next poll: {answers:?}"
        );
    }
    db.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_items_revisions_unsent_items_and_changed_guids_behave_as_on_sqlite() {
    let Some(db) = Db::new().await else { return };
    let store = Store::postgres(node(&db, "a").await);
    let ids = feeds(&store, &["one", "two"]).await;
    let (one, two) = (ids[0], ids[1]);
    let u1 = vec!["example.com/1".to_string()];
    let u3 = vec!["example.com/3".to_string()];
    let first = item("k1", Some(fingerprint(&u1, &text("first", 80))));
    let third = item("k3", Some(fingerprint(&u3, &text("third", 80))));
    let mut quiet = item("k2", None);
    quiet.emitted = false;
    quiet.not_sent = Some("rule:quiet".into());
    let first_id = first.id.clone();
    let report = store
        .ingest(batch(one, vec![first, quiet, third]))
        .await
        .expect("ingest");
    assert_eq!(
        report,
        IngestReport {
            stored: 3,
            emitted: 2,
            not_sent: vec!["rule:quiet".into()],
            ..Default::default()
        }
    );

    let known = store
        .known_items(one, vec!["k1".into(), "k2".into(), "k9".into()])
        .await
        .expect("known");
    assert_eq!(known.len(), 2);
    assert_eq!(known["k1"].id, first_id);
    assert_eq!(known["k1"].revision.as_deref(), Some("r1"));
    assert!(
        store
            .known_items(two, vec!["k1".into()])
            .await
            .expect("known")
            .is_empty(),
        "known per feed"
    );

    // The same entries seen again under new ids are neither stored nor sent.
    let again = store
        .ingest(batch(one, vec![item("k1", None), item("k2", None)]))
        .await
        .expect("ingest");
    assert_eq!(again.already_known, 2);
    assert_eq!(again.stored, 0);

    // A changed entry is an update of the stored item, sent as item.updated once.
    let mut changed = item("k1", None);
    changed.update_of = Some(first_id.clone());
    changed.revision = Some("r2".into());
    let same = changed.clone();
    let report = store
        .ingest(batch(one, vec![changed]))
        .await
        .expect("update");
    assert_eq!(report.updated, 1);
    let report = store.ingest(batch(one, vec![same])).await.expect("update");
    assert_eq!(report.updated, 0, "the same revision again is no update");
    assert_eq!(
        events_of(&db, &first_id).await,
        HashMap::from([("item.new".to_string(), 1), ("item.updated".to_string(), 1)])
    );
    let known = store
        .known_items(one, vec!["k1".into()])
        .await
        .expect("known");
    assert_eq!(known["k1"].revision.as_deref(), Some("r2"));

    // The cheap checks before an article is fetched.
    let keys = store
        .known_url_keys(vec![u1[0].clone(), "example.com/9".into()])
        .await
        .expect("url keys");
    assert_eq!(keys.into_iter().collect::<Vec<_>>(), u1);
    let found = store
        .find_duplicate(fingerprint(&u1, &text("other", 80)), NEAR)
        .await
        .expect("lookup");
    assert_eq!(found, Some((first_id.clone(), DuplicateReason::Url)));
    let found = store
        .find_duplicate(fingerprint(&[], &text("first", 80)), NEAR)
        .await
        .expect("lookup");
    assert_eq!(found, Some((first_id.clone(), DuplicateReason::Content)));

    // The feed's own links under new GUIDs: duplicates that are not news, and the feed's
    // GUIDs are no longer trusted.
    let report = store
        .ingest(batch(
            one,
            vec![
                item("k1-new", Some(fingerprint(&u1, &text("first", 80)))),
                item("k3-new", Some(fingerprint(&u3, &text("third", 80)))),
            ],
        ))
        .await
        .expect("ingest");
    assert!(report.guids_unreliable, "{report:?}");
    assert_eq!((report.duplicates, report.emitted), (2, 0));
    assert_eq!(
        db.count("SELECT COUNT(*) FROM {s}.events e JOIN {s}.items i ON i.id = e.item_id WHERE i.key LIKE '%-new'")
        .await,
        0
    );
    assert!(
        store
            .sync_feeds(vec![FeedSpec {
                name: "one".into(),
                url: "http://127.0.0.1:9/one.xml".into(),
            }])
            .await
            .expect("sync")[0]
            .guid_unreliable
    );
    db.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_drops_old_sketches_and_bands_and_finished_events() {
    let Some(db) = Db::new().await else { return };
    let store = Store::postgres(node(&db, "a").await);
    let one = feeds(&store, &["one"]).await[0];
    // Three stories: `old` (delivered), `waiting` (still pending) and `fresh`.
    let stories = ["old", "waiting", "fresh"].map(|s| {
        item(
            s,
            Some(fingerprint(&[format!("example.com/{s}")], &text(s, 150))),
        )
    });
    let bands: Vec<i64> = stories
        .iter()
        .map(|i| {
            let fp = i.fingerprint.as_ref().expect("fingerprint");
            fp.sketch.as_ref().expect("long enough").1.len() as i64
        })
        .collect();
    let ids: Vec<String> = stories.iter().map(|i| i.id.clone()).collect();
    store
        .ingest(batch(one, stories.to_vec()))
        .await
        .expect("ingest");
    assert_eq!(
        db.count("SELECT COUNT(*) FROM {s}.story_bands").await,
        bands.iter().sum::<i64>()
    );
    let hour = 3600 * 1000;
    exec(&db, &format!(
        "UPDATE {{s}}.item_sketches SET created_at = created_at - {} WHERE item IN
            (SELECT seq FROM {{s}}.items WHERE key IN ('old', 'waiting'));
         UPDATE {{s}}.events SET created_at = created_at - {} WHERE item_id IN
            (SELECT id FROM {{s}}.items WHERE key IN ('old', 'waiting'));
         UPDATE {{s}}.outbox SET state = 'delivered' WHERE event_id IN
            (SELECT e.id FROM {{s}}.events e JOIN {{s}}.items i ON i.id = e.item_id WHERE i.key = 'old');",
        2 * hour,
        48 * hour
    ))
    .await;

    let (pruned_bands, pruned_events) = store
        .prune(Duration::from_secs(3600), Duration::from_secs(24 * 3600))
        .await
        .expect("prune");
    assert_eq!(pruned_bands as i64, bands[0] + bands[1]);
    assert_eq!(pruned_events, 1, "only the old delivered event");
    assert_eq!(
        db.count("SELECT COUNT(*) FROM {s}.story_bands").await,
        bands[2]
    );
    assert_eq!(db.count("SELECT COUNT(*) FROM {s}.item_sketches").await, 1);
    assert_eq!(
        db.count("SELECT COUNT(*) FROM {s}.events WHERE item_id IS NOT NULL")
            .await,
        2,
        "the waiting and the fresh events stay"
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM {s}.outbox o WHERE NOT EXISTS (SELECT 1 FROM {s}.events e WHERE e.id = o.event_id)")
        .await,
        0,
        "the pruned event's outbox row went with it"
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM {s}.items").await,
        3,
        "items stay"
    );

    // A near copy of a pruned story is new; one of the fresh story still matches.
    let copy = |s: &str| {
        fingerprint(
            &[format!("elsewhere.example/{s}")],
            &format!("{} said an editor", text(s, 147)),
        )
    };
    assert_eq!(
        store
            .find_duplicate(copy("old"), NEAR)
            .await
            .expect("lookup"),
        None
    );
    assert_eq!(
        store
            .find_duplicate(copy("fresh"), NEAR)
            .await
            .expect("lookup"),
        Some((ids[2].clone(), DuplicateReason::Near))
    );
    db.drop_schema().await;
}
