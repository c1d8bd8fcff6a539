//! The outbox and the reports on the PostgreSQL store against a real server
//! (`FEEDWIRE_TEST_POSTGRES`, e.g. `postgres://postgres@127.0.0.1:5432/test`): two nodes
//! draining one sink never claim the same row, a node that stops answering loses its rows
//! after its lease and the other delivers them under the same `webhook_id` (the late node's
//! record is not applied), retries, probes, dead letters, expiry and redelivery mean what
//! they mean on SQLite, and every report answers, the status page included. Each test works
//! in a schema of its own, dropped at the end. Where the variable is unset the test says so
//! and passes.
//!
//! Leases run on the wall clock (they must hold across processes and machines), so the
//! takeover test waits, with a deadline, for a lease to pass.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use feedwire::dedup::{Fingerprint, content_hash, sketch};
use feedwire::model::EventType;
use feedwire::store::postgres::{PgSettings, PgStore};
use feedwire::store::{
    Attempt, DedupSettings, Delivery, DeliveryState, FeedEvent, FeedSpec, IngestBatch, NewItem,
    PollRecord, PollStatus, SinkState, SinkStatus, Store, Timestamp,
};

/// Short leases keep the waits short; real ones are minutes.
const LEASE: Duration = Duration::from_millis(1500);
/// The longest wait for a lease to pass.
const DEADLINE: Duration = Duration::from_secs(15);
const SINK: &str = "hook";

#[path = "common/pg.rs"]
mod pg;

use pg::Db;

/// A node on the test schema, as the daemon's store.
async fn node(db: &Db, name: &str) -> Store {
    let settings = PgSettings {
        url: db.url.clone(),
        pool_size: 4,
        node: name.to_string(),
        lease: LEASE,
    };
    let pg = PgStore::connect(&settings)
        .await
        .unwrap_or_else(|e| panic!("node {name} connects: {e}"));
    Store::postgres(pg)
}

/// The rows of a query on this schema's tables (`{s}` names the schema).
async fn rows(db: &Db, sql: &str) -> Vec<tokio_postgres::Row> {
    db.admin
        .query(&sql.replace("{s}", &db.schema), &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn specs(n: usize) -> Vec<FeedSpec> {
    (0..n)
        .map(|i| FeedSpec {
            name: format!("feed-{i:03}"),
            url: format!("http://127.0.0.1:9/{i}.xml"),
        })
        .collect()
}

/// A poll's record at `at`; with `event`, a `feed.failing` event for [`SINK`].
fn polled(at: Timestamp, status: PollStatus, event: bool) -> PollRecord {
    PollRecord {
        at,
        status,
        http_status: Some(if status == PollStatus::Error {
            503
        } else {
            304
        }),
        error: (status == PollStatus::Error).then(|| "503 Service Unavailable".to_string()),
        errors_in_row: u32::from(status == PollStatus::Error),
        next_poll_at: at.after(Duration::from_secs(900)),
        etag: None,
        last_modified: None,
        title: None,
        moved_to: None,
        rate: None,
        reason: Some("default interval 15m".into()),
        event: event.then(|| FeedEvent {
            kind: EventType::FeedFailing,
            body: r#"{"type":"feed.failing"}"#.to_string(),
            sinks: vec![SINK.to_string()],
        }),
    }
}

/// `n` feeds, each with one outbox row for [`SINK`] created at `at`; their feed ids.
async fn feeds_with_rows(store: &Store, n: usize, at: Timestamp) -> Vec<i64> {
    let ids: Vec<i64> = store
        .sync_feeds(specs(n))
        .await
        .expect("sync feeds")
        .iter()
        .map(|f| f.id)
        .collect();
    let polls = ids
        .iter()
        .map(|id| (*id, polled(at, PollStatus::Error, true)))
        .collect();
    store.record_polls(polls).await.expect("record polls");
    ids
}

/// Claims rows of [`SINK`] in batches of 8 until none is left.
async fn drain(store: &Store) -> Vec<Delivery> {
    let mut got = Vec::new();
    loop {
        let batch = store.claim(SINK, 8).await.expect("claim");
        if batch.is_empty() {
            return got;
        }
        got.extend(batch);
    }
}

fn webhook_ids(rows: &[Delivery]) -> BTreeSet<String> {
    rows.iter().map(|d| d.webhook_id.clone()).collect()
}

fn delivered(rows: &[Delivery]) -> Vec<(i64, Attempt)> {
    rows.iter()
        .map(|d| (d.outbox_id, Attempt::Delivered))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_rows_go_to_one_live_node_and_a_silent_nodes_rows_return_with_their_webhook_id() {
    let Some(db) = Db::new().await else { return };
    let (a, b) = tokio::join!(node(&db, "a"), node(&db, "b"));
    feeds_with_rows(&a, 40, Timestamp::now()).await;

    let (rows_a, rows_b) = tokio::join!(drain(&a), drain(&b));
    let claimed_at = Instant::now();
    let (ids_a, ids_b) = (webhook_ids(&rows_a), webhook_ids(&rows_b));
    assert!(
        ids_a.is_disjoint(&ids_b),
        "no row claimed by both live nodes"
    );
    assert!(
        !ids_a.is_empty() && !ids_b.is_empty(),
        "both nodes drained the sink"
    );
    assert_eq!(ids_a.len() + ids_b.len(), 40, "every row claimed once");
    a.finish_many(delivered(&rows_a), Vec::new())
        .await
        .expect("finish");

    // b stops answering (it may be dead): while its lease runs its rows stay its own; after
    // it, a delivers them, each under the webhook-id b had.
    let mut again = Vec::new();
    while again.len() < rows_b.len() && claimed_at.elapsed() < DEADLINE {
        again.extend(a.claim(SINK, 100).await.expect("claim"));
        if again.is_empty() && claimed_at.elapsed() < LEASE / 2 {
            assert!(
                a.next_due(SINK).await.expect("next due") > Some(Timestamp::now()),
                "b's rows are due for a when b's lease ends"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        claimed_at.elapsed() >= LEASE,
        "not before b's lease ran out"
    );
    assert_eq!(webhook_ids(&again), ids_b, "b's rows, and only those");

    // b's late record of its rows is not applied: they are a's now.
    b.finish_many(delivered(&rows_b), Vec::new())
        .await
        .expect("finish");
    let held = db
        .count("SELECT count(*) FROM {s}.outbox WHERE state = 'pending' AND claimed_by = 'a'")
        .await;
    assert_eq!(
        held as usize,
        rows_b.len(),
        "b's late record changed a's rows"
    );
    a.finish_many(delivered(&again), Vec::new())
        .await
        .expect("finish");
    let counts = rows(
        &db,
        "SELECT count(*), count(*) FILTER (WHERE attempts = 1 AND claimed_by IS NULL)
         FROM {s}.outbox WHERE state = 'delivered'",
    )
    .await;
    assert_eq!(counts[0].get::<_, i64>(0), 40, "every row delivered");
    assert_eq!(
        counts[0].get::<_, i64>(1),
        40,
        "each recorded once, by its holder"
    );
    db.drop_schema().await;
}

/// A sink that accepts every event after a moment's work, recording its webhook-id.
struct Recording {
    got: std::sync::Mutex<Vec<String>>,
}

impl feedwire::sinks::Sink for Recording {
    fn deliver<'a>(
        &'a self,
        event: feedwire::sinks::Outgoing<'a>,
    ) -> feedwire::sinks::DeliverFuture<'a> {
        Box::pin(async move {
            // The receiver's work, so that the two workers' rounds overlap.
            tokio::time::sleep(Duration::from_millis(5)).await;
            self.got
                .lock()
                .expect("no panic while held")
                .push(event.webhook_id.to_string());
            Ok(())
        })
    }

    fn concurrency(&self) -> usize {
        4
    }

    fn batch_size(&self) -> usize {
        8
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_delivery_workers_on_one_sink_send_each_row_once() {
    let Some(db) = Db::new().await else { return };
    let (a, b) = tokio::join!(node(&db, "a"), node(&db, "b"));
    feeds_with_rows(&a, 60, Timestamp::now()).await;
    let sink = std::sync::Arc::new(Recording {
        got: Default::default(),
    });
    let stop = tokio_util::sync::CancellationToken::new();
    for store in [&a, &b] {
        let worker = feedwire::outbox::Worker {
            name: SINK.into(),
            sink: sink.clone(),
            store: store.clone(),
            policy: feedwire::outbox::RetryPolicy::forever(),
            probe_interval: Duration::from_secs(1),
            wake: Default::default(),
            metrics: Default::default(),
        };
        tokio::spawn(worker.run(stop.clone()));
    }
    let start = Instant::now();
    while db
        .count("SELECT count(*) FROM {s}.outbox WHERE state = 'delivered'")
        .await
        < 60
        && start.elapsed() < DEADLINE
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    let got = sink.got.lock().expect("no panic while held").clone();
    let unique: BTreeSet<&String> = got.iter().collect();
    assert_eq!(unique.len(), 60, "every row delivered");
    assert_eq!(got.len(), 60, "none sent twice while both nodes live");
    let recorded = rows(
        &db,
        "SELECT count(*) FROM {s}.outbox WHERE state = 'delivered' AND attempts = 1",
    )
    .await;
    assert_eq!(recorded[0].get::<_, i64>(0), 60, "each recorded once");
    db.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_claim_holds_and_untried_rows_are_released_at_once() {
    let Some(db) = Db::new().await else { return };
    let (a, b) = tokio::join!(node(&db, "a"), node(&db, "b"));
    feeds_with_rows(&a, 3, Timestamp::now()).await;
    let rows = a.claim(SINK, 10).await.expect("claim");
    assert_eq!(rows.len(), 3);
    // A round running for twice the lease, renewing as it goes: b never gets a row.
    let start = Instant::now();
    while start.elapsed() < LEASE * 2 {
        assert_eq!(a.renew_leases().await.expect("renew"), 3);
        assert!(b.claim(SINK, 10).await.expect("claim").is_empty());
        tokio::time::sleep(LEASE / 5).await;
    }
    // Two rows were not tried: they are free for anyone at once; the third is recorded.
    a.finish_many(
        vec![(rows[0].outbox_id, Attempt::Delivered)],
        vec![rows[1].outbox_id, rows[2].outbox_id],
    )
    .await
    .expect("finish");
    let taken = b.claim(SINK, 10).await.expect("claim");
    assert_eq!(webhook_ids(&taken), webhook_ids(&rows[1..]));
    db.drop_schema().await;
}

/// One outbox row as the admin connection reads it.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    state: String,
    attempts: i32,
    next_attempt_at: i64,
    last_status: Option<i32>,
    last_error: Option<String>,
    outage: bool,
    claimed: bool,
    done: bool,
}

async fn outbox(db: &Db) -> BTreeMap<i64, (String, Row)> {
    rows(
        db,
        "SELECT id, webhook_id, state, attempts, next_attempt_at, last_status, last_error, outage,
                claimed_by IS NOT NULL, done_at IS NOT NULL
         FROM {s}.outbox",
    )
    .await
    .iter()
    .map(|r| {
        (
            r.get(0),
            (
                r.get(1),
                Row {
                    state: r.get(2),
                    attempts: r.get(3),
                    next_attempt_at: r.get(4),
                    last_status: r.get(5),
                    last_error: r.get(6),
                    outage: r.get(7),
                    claimed: r.get(8),
                    done: r.get(9),
                },
            ),
        )
    })
    .collect()
}

/// A row's first attempt, and the row it leaves: state, attempts, next attempt (`None`:
/// unchanged), outage, last error.
type Case = (
    Attempt,
    &'static str,
    i32,
    Option<Timestamp>,
    bool,
    Option<&'static str>,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_dead_probe_resume_expire_and_redeliver_mean_what_they_mean_on_sqlite() {
    let Some(db) = Db::new().await else { return };
    let store = node(&db, "a").await;
    let created = Timestamp::now().before(Duration::from_secs(7200));
    feeds_with_rows(&store, 5, created).await;
    let now = Timestamp::now();
    let soon = now.after(Duration::from_secs(3600));
    let later = now.after(Duration::from_secs(7200));
    let retry = |at: Timestamp, outage: bool| Attempt::Retry {
        at,
        status: Some(503),
        error: "503 Service Unavailable".into(),
        outage,
    };
    let cases: [Case; 4] = [
        (Attempt::Delivered, "delivered", 1, None, false, None),
        (
            retry(later, false),
            "pending",
            1,
            Some(later),
            false,
            Some("503 Service Unavailable"),
        ),
        (
            retry(soon, true),
            "pending",
            1,
            Some(soon),
            true,
            Some("503 Service Unavailable"),
        ),
        (
            Attempt::Dead {
                status: Some(410),
                error: "410 Gone".into(),
            },
            "dead",
            1,
            None,
            false,
            Some("410 Gone"),
        ),
    ];
    let rows = store.claim_due(SINK, 4, now).await.expect("claim");
    assert_eq!(rows.len(), 4, "oldest first, up to the limit");
    let fifth = store.claim_due(SINK, 4, now).await.expect("claim");
    assert_eq!(fifth.len(), 1, "the claimed four are not claimed again");
    let before = outbox(&db).await;
    store
        .finish_many(
            rows.iter()
                .zip(&cases)
                .map(|(d, c)| (d.outbox_id, c.0.clone()))
                .collect(),
            Vec::new(),
        )
        .await
        .expect("finish");
    let after = outbox(&db).await;
    for (d, (attempt, state, attempts, next, outage, error)) in rows.iter().zip(&cases) {
        let (webhook_id, row) = &after[&d.outbox_id];
        let was = &before[&d.outbox_id].1;
        let expected = Row {
            state: state.to_string(),
            attempts: *attempts,
            next_attempt_at: next.map_or(was.next_attempt_at, Timestamp::as_millis),
            last_status: match attempt {
                Attempt::Retry { status, .. } | Attempt::Dead { status, .. } => {
                    status.map(i32::from)
                }
                _ => None,
            },
            last_error: error.map(str::to_string),
            outage: *outage,
            claimed: false,
            done: *state != "pending",
        };
        assert_eq!(row, &expected, "after {attempt:?}");
        assert_eq!(webhook_id, &d.webhook_id, "a row keeps its webhook-id");
    }
    let (retrying, outage_row, dead_row) = (&rows[1], &rows[2], &rows[3]);

    // Nothing but the fifth row (still claimed) waits now; the next is due at `soon`.
    assert!(
        store
            .claim_due(SINK, 10, now)
            .await
            .expect("claim")
            .is_empty()
    );
    assert_eq!(store.next_due(SINK).await.expect("next"), Some(soon));

    // The probe of a paused sink: the failed row due first, before its time.
    let probe = store
        .claim_probe(SINK, now)
        .await
        .expect("probe")
        .expect("a row waits");
    assert_eq!(probe.webhook_id, outage_row.webhook_id);
    assert!(
        store
            .claim_probe(SINK, now)
            .await
            .expect("probe")
            .map(|d| d.outbox_id)
            == Some(retrying.outbox_id),
        "a claimed probe is not probed twice"
    );
    store
        .finish_many(
            vec![(
                probe.outbox_id,
                Attempt::Probed {
                    status: None,
                    error: "connection refused".into(),
                },
            )],
            vec![retrying.outbox_id],
        )
        .await
        .expect("finish probe");
    let probed = &outbox(&db).await[&probe.outbox_id].1;
    assert_eq!(
        (probed.attempts, probed.next_attempt_at, probed.outage),
        (1, soon.as_millis(), true),
        "a probe is not one of the row's attempts"
    );
    assert_eq!(probed.last_error.as_deref(), Some("connection refused"));

    // The receiver answers: the row that waited for the outage is due at once, the other
    // keeps its own time.
    assert_eq!(store.resume_sink(SINK, now).await.expect("resume"), 1);
    let resumed = store.claim_due(SINK, 10, now).await.expect("claim");
    assert_eq!(
        webhook_ids(&resumed),
        webhook_ids(std::slice::from_ref(outage_row))
    );

    // max_age passed while paused: the pending rows not held by a live claim die, keeping
    // their last error (or getting why); the claimed ones stay.
    let expired = store
        .expire(
            SINK,
            now,
            "max_age passed".into(),
            " (expired while paused)".into(),
        )
        .await
        .expect("expire");
    assert_eq!(expired, 1, "only the unclaimed retrying row");
    let row = &outbox(&db).await[&retrying.outbox_id].1;
    assert_eq!(row.state, "dead");
    assert_eq!(
        row.last_error.as_deref(),
        Some("503 Service Unavailable (expired while paused)")
    );
    store
        .finish_many(Vec::new(), vec![outage_row.outbox_id, fifth[0].outbox_id])
        .await
        .expect("release");
    assert_eq!(
        store
            .expire(SINK, now, "max_age passed".into(), String::new())
            .await
            .expect("expire"),
        2
    );
    let fresh = &outbox(&db).await[&fifth[0].outbox_id].1;
    assert_eq!(fresh.last_error.as_deref(), Some("max_age passed"));

    // Redelivery: the dead rows queue again under their webhook-ids, then every row since.
    assert_eq!(
        store.redeliver(SINK, true, None).await.expect("redeliver"),
        4
    );
    let again = store
        .claim_due(SINK, 10, Timestamp::now())
        .await
        .expect("claim");
    assert_eq!(
        webhook_ids(&again),
        webhook_ids(&[
            retrying.clone(),
            outage_row.clone(),
            dead_row.clone(),
            fifth[0].clone()
        ])
    );
    assert!(again.iter().all(|d| d.attempts == 0));
    store
        .finish_many(delivered(&again), Vec::new())
        .await
        .expect("finish");
    assert_eq!(
        store
            .redeliver(SINK, false, Some(created))
            .await
            .expect("redeliver"),
        5
    );
    assert!(
        outbox(&db)
            .await
            .values()
            .all(|(_, r)| r.state == "pending" && r.attempts == 0 && !r.done)
    );
    db.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_report_and_the_status_page_answer_on_postgres() {
    let Some(db) = Db::new().await else { return };
    let store = node(&db, "a").await;
    let now = Timestamp::now();
    let ids = feeds_with_rows(&store, 3, now).await;
    // Feed 2 is no longer in the config.
    store.sync_feeds(specs(2)).await.expect("sync");
    // Feed 0's story, and the same story in feed 1 (a duplicate by its URL), each with its
    // event and outbox row, through the ingest.
    let story = |id: &str, key: &str, title: &str| NewItem {
        id: id.to_string(),
        key: key.to_string(),
        url: Some("https://example.com/story".into()),
        link: Some("https://example.com/story".into()),
        guid: Some(key.to_string()),
        title: Some(title.to_string()),
        published_at: Some(now),
        content_source: Some("feed"),
        emitted: true,
        not_sent: None,
        fingerprint: Some(Fingerprint {
            url_keys: vec!["example.com/story".into()],
            content_hash: content_hash("the one story"),
            sketch: sketch("the one story"),
        }),
        new_sinks: vec![SINK.into()],
        duplicate_sinks: vec![SINK.into()],
        revision: None,
        update_of: None,
        updated_sinks: Vec::new(),
    };
    let stories = [
        (
            ids[0],
            story("01A", "guid:1", "First story"),
            PollStatus::Error,
        ),
        (
            ids[1],
            story("01B", "guid:2", "Same story"),
            PollStatus::NotModified,
        ),
    ];
    for (feed_id, item, status) in stories {
        store
            .ingest(IngestBatch {
                feed_id,
                poll: polled(now, status, false),
                items: vec![item],
                dedup: DedupSettings {
                    near_duplicates: true,
                    window: Duration::from_secs(86400),
                },
                render: Box::new(|_, kind, _| format!("{{\"type\":\"{}\"}}", kind.as_str())),
            })
            .await
            .expect("ingest");
    }
    // One delivered, one dead, the rest pending.
    let rows = store.claim(SINK, 2).await.expect("claim");
    store
        .finish_many(
            vec![
                (rows[0].outbox_id, Attempt::Delivered),
                (
                    rows[1].outbox_id,
                    Attempt::Dead {
                        status: Some(410),
                        error: "410 Gone".into(),
                    },
                ),
            ],
            Vec::new(),
        )
        .await
        .expect("finish");
    store
        .set_sink_status(SinkStatus {
            sink: SINK.into(),
            state: SinkState::Failing,
            reason: Some("503".into()),
            since: Some(now),
            until: None,
            updated_at: now,
        })
        .await
        .expect("sink status");
    let sub = feedwire::websub::Subscription {
        feed_id: ids[0],
        token: "t0".into(),
        hub: "https://hub.example.com/".parse().expect("url"),
        topic: "https://example.com/feed.xml".parse().expect("url"),
        secret: "s".into(),
        state: feedwire::websub::SubState::Active {
            until: now.after(Duration::from_secs(86400)),
        },
        awaiting: false,
        lease: Some(Duration::from_secs(86400)),
        updated_at: now,
    };
    store.websub_save(sub.clone()).await.expect("websub save");
    assert_eq!(
        store.websub_subscriptions().await.expect("websub"),
        vec![sub.clone()]
    );

    let reader = store.reader();
    reader.ping().await.expect("ping");
    assert_eq!(reader.pending(&[SINK.into()]).await.expect("pending"), 3);
    assert_eq!(reader.pending(&["other".into()]).await.expect("pending"), 0);
    let counts = reader.feed_counts().await.expect("feed counts");
    assert_eq!((counts.active, counts.in_error), (2, 1));
    let sizes = reader.table_sizes().await.expect("table sizes");
    for table in ["feeds", "items", "events", "outbox"] {
        assert!(
            sizes
                .iter()
                .any(|(name, bytes)| name == table && *bytes > 0),
            "{table} in {sizes:?}"
        );
    }

    let feeds = reader.feeds_report().await.expect("feeds report");
    let names: Vec<(&str, bool)> = feeds.iter().map(|f| (f.name.as_str(), f.active)).collect();
    assert_eq!(
        names,
        [("feed-000", true), ("feed-001", true), ("feed-002", false)]
    );
    assert_eq!(feeds[0].last_status, Some(PollStatus::Error));
    assert_eq!(feeds[0].last_http_status, Some(503));
    assert_eq!(feeds[0].errors_in_row, 1);
    assert_eq!(feeds[0].items, 1);
    assert_eq!(
        feeds[0].websub,
        Some((sub.state.clone(), "https://hub.example.com/".to_string()))
    );
    assert_eq!(feeds[1].last_status, Some(PollStatus::NotModified));

    let items = reader.items_report(None, 10).await.expect("items report");
    let got: Vec<(&str, &str, Option<&str>)> = items
        .iter()
        .map(|i| (i.id.as_str(), i.feed.as_str(), i.duplicate_of.as_deref()))
        .collect();
    assert_eq!(
        got,
        [("01B", "feed-001", Some("01A")), ("01A", "feed-000", None)]
    );
    assert_eq!(items[0].duplicate_reason.as_deref(), Some("url"));
    assert_eq!(items[1].published_at, Some(now));
    let one = reader
        .items_report(Some("feed-000".into()), 10)
        .await
        .expect("items of a feed");
    assert_eq!(one.len(), 1);
    assert!(one[0].emitted);

    let backlog = reader.backlog().await.expect("backlog");
    assert_eq!(backlog.len(), 1);
    assert_eq!(
        (backlog[0].pending, backlog[0].delivered, backlog[0].dead),
        (3, 1, 1)
    );
    assert_eq!(backlog[0].oldest_pending_at, Some(now));
    let statuses = reader.sink_statuses().await.expect("sink statuses");
    assert_eq!(statuses.len(), 1);
    assert_eq!(statuses[0].state, SinkState::Failing);
    let dead = reader
        .deliveries_report(Some(SINK.into()), true, 10)
        .await
        .expect("dead deliveries");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].state, DeliveryState::Dead);
    assert_eq!(dead[0].last_status, Some(410));
    let pending = reader
        .deliveries_report(None, false, 10)
        .await
        .expect("pending deliveries");
    assert_eq!(pending.len(), 3);
    assert!(
        pending
            .iter()
            .any(|d| d.item_title.as_deref() == Some("Same story")),
        "an item's row is shown by its title: {pending:?}"
    );
    assert!(
        pending
            .iter()
            .any(|d| d.item_title.as_deref() == Some("feed.failing")),
        "a feed event's row by its type"
    );

    // The status page over the same database.
    let dir = tempfile::tempdir().expect("tempdir");
    let toml = format!(
        "[daemon]\nstate_dir = {:?}\n\n[sinks.hook]\ntype = \"log\"\npath = {:?}\n\n\
         [[feeds]]\nname = \"feed-000\"\nurl = \"https://example.com/feed.xml\"\n\
         [[feeds]]\nname = \"feed-001\"\nurl = \"https://example.org/feed.xml\"\n",
        dir.path().join("state").display().to_string(),
        dir.path().join("out.jsonl").display().to_string()
    );
    let config =
        feedwire::config::parse(&toml, std::path::Path::new("test.toml"), &BTreeMap::new())
            .expect("valid config");
    let page = feedwire::server::status::StatusPage::new(&config, reader).expect("page");
    let snapshot = page.snapshot().await.expect("snapshot");
    assert_eq!(snapshot.feeds.len(), 2);
    assert_eq!(
        snapshot
            .hours
            .iter()
            .map(|h| (h.new, h.duplicate))
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1)),
        (1, 1),
        "one new and one duplicate item in the chart"
    );
    assert_eq!(snapshot.recent.len(), 2);
    assert_eq!(
        snapshot.recent[0].payload.as_deref(),
        Some(r#"{"type":"item.duplicate"}"#)
    );
    assert_eq!(
        snapshot.recent[0]
            .duplicate_of
            .as_ref()
            .map(|o| o.feed.as_str()),
        Some("feed-000")
    );
    assert_eq!(snapshot.sinks.len(), 1);
    let sink = &snapshot.sinks[0];
    assert_eq!((sink.pending, sink.dead, sink.retrying), (3, 1, 0));
    assert_eq!(sink.state, Some(SinkState::Failing));
    assert_eq!(snapshot.dead.len(), 1);
    assert_eq!(snapshot.dead[0].last_status, Some(410));
    let html = page
        .render(
            &snapshot,
            &feedwire::server::status::Params::parse(""),
            chrono::Utc::now(),
        )
        .expect("render");
    for shown in ["feed-000", "Same story", "hook"] {
        assert!(html.contains(shown), "{shown} on the page");
    }

    store.websub_delete(ids[0]).await.expect("websub delete");
    assert!(
        store
            .websub_subscriptions()
            .await
            .expect("websub")
            .is_empty()
    );
    db.drop_schema().await;
}
