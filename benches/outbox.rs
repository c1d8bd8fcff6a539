//! Deliveries per second through the real outbox path: SQLite claim, signed HTTP POST to a
//! local receiver that answers 200 at once, SQLite ack. And the SQLite work of a delivery
//! alone, behind a sink that does nothing: claim + finish, and ingest (the item, its event
//! and outbox row, ten items per transaction as in one poll) + claim + finish.
//!
//! `outbox_webhook_one_in_three_503` is the same through a receiver that answers every third
//! request with 503 and `Retry-After: 0`.
//!
//! One criterion iteration is one delivery, so the figures read as deliveries per second.
//! Where ingest is not in the name, rows are stored before the clock starts.
//! `cargo bench --bench outbox`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tokio::runtime::Runtime;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use feedwire::config::{SecretSource, Webhook};
use feedwire::outbox::{RetryPolicy, Worker};
use feedwire::sinks::webhook::WebhookSink;
use feedwire::sinks::{DeliverFuture, Outgoing, Sink};
use feedwire::store::{
    DedupSettings, FeedSpec, IngestBatch, NewItem, PollRecord, PollStatus, Store, Timestamp,
};

mod support;
use support::*;

/// Accepts every event at once: what is left is the database work.
struct NoOp {
    concurrency: usize,
}

impl Sink for NoOp {
    fn deliver<'a>(&'a self, _event: Outgoing<'a>) -> DeliverFuture<'a> {
        Box::pin(async { Ok(()) })
    }

    fn concurrency(&self) -> usize {
        self.concurrency
    }
}

/// A database with one feed, a running delivery worker for one sink, and the counters to
/// know when a run is over.
struct Bench {
    _dir: tempfile::TempDir,
    store: Store,
    feed_id: i64,
    wake: Arc<Notify>,
    delivered: Arc<AtomicU64>,
    progress: Arc<Notify>,
    stop: CancellationToken,
    next_item: u64,
}

impl Bench {
    fn new(rt: &Runtime, sink: impl FnOnce(&std::path::Path) -> Arc<dyn Sink>) -> Bench {
        let dir = tempfile::tempdir().expect("tempdir");
        let inner = sink(dir.path());
        let store = Store::open(&dir.path().join("feedwire.db")).expect("open store");
        let feeds = rt
            .block_on(store.sync_feeds(vec![FeedSpec {
                name: "bench".into(),
                url: "https://example.com/rss.xml".into(),
            }]))
            .expect("sync feeds");
        let delivered = Arc::new(AtomicU64::new(0));
        let progress = Arc::new(Notify::new());
        let wake = Arc::new(Notify::new());
        let stop = CancellationToken::new();
        let worker = Worker {
            name: SINK.into(),
            sink: Arc::new(Counting {
                inner,
                delivered: delivered.clone(),
                progress: progress.clone(),
            }),
            store: store.clone(),
            policy: RetryPolicy::forever(),
            probe_interval: feedwire::outbox::DEFAULT_PROBE_INTERVAL,
            wake: wake.clone(),
            metrics: Arc::new(feedwire::telemetry::Metrics::new()),
        };
        rt.spawn(worker.run(stop.clone()));
        Bench {
            _dir: dir,
            store,
            feed_id: feeds[0].id,
            wake,
            delivered,
            progress,
            stop,
            next_item: 0,
        }
    }

    /// Stores `n` new items with one event and one outbox row each, `ITEMS_PER_POLL` per
    /// transaction; with `wake`, the worker is woken after each, as the daemon's storer does.
    async fn ingest(&mut self, n: u64, wake: bool) {
        let mut left = n;
        while left > 0 {
            let take = left.min(ITEMS_PER_POLL as u64);
            left -= take;
            let first = self.next_item + 1;
            let items = (0..take)
                .map(|_| {
                    self.next_item += 1;
                    let k = self.next_item;
                    NewItem {
                        id: ulid::Ulid::new().to_string(),
                        key: format!("guid:https://example.com/a/{k}"),
                        url: Some(format!("https://example.com/a/{k}")),
                        link: Some(format!("https://example.com/a/{k}?utm_source=rss")),
                        guid: Some(format!("https://example.com/a/{k}")),
                        title: Some(format!("Story number {k} about something")),
                        published_at: Some(Timestamp::now()),
                        content_source: Some("feed"),
                        emitted: true,
                        not_sent: None,
                        fingerprint: None,
                        new_sinks: vec![SINK.into()],
                        duplicate_sinks: Vec::new(),
                        revision: None,
                        update_of: None,
                        updated_sinks: Vec::new(),
                    }
                })
                .collect();
            let now = Timestamp::now();
            self.store
                .ingest(IngestBatch {
                    feed_id: self.feed_id,
                    poll: PollRecord {
                        at: now,
                        status: PollStatus::Ok,
                        http_status: Some(200),
                        error: None,
                        errors_in_row: 0,
                        next_poll_at: now.after(Duration::from_secs(60)),
                        etag: None,
                        last_modified: None,
                        title: Some("Bench".into()),
                        moved_to: None,
                        rate: None,
                        reason: None,
                        event: None,
                    },
                    items,
                    dedup: DedupSettings {
                        near_duplicates: false,
                        window: Duration::ZERO,
                    },
                    render: Box::new(move |index, _, _| body(first + index as u64)),
                })
                .await
                .expect("ingest");
            if wake {
                self.wake.notify_one();
            }
        }
    }

    /// Waits until `target` deliveries were accepted and every row is acknowledged.
    async fn drained(&self, target: u64) {
        while self.delivered.load(Ordering::SeqCst) < target {
            self.progress.notified().await;
        }
        // The last acks are on their way to the writer thread.
        while self
            .store
            .reader()
            .pending(&[SINK.to_string()])
            .await
            .expect("count pending")
            > 0
        {
            tokio::task::yield_now().await;
        }
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn runtime() -> Runtime {
    // As the daemon: a multi-threaded runtime with one worker per core.
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Deliveries per second to `url` at concurrency 1, 4 and 16, in group `group`.
fn webhook_group(c: &mut Criterion, group: &str, url: &str) {
    let rt = runtime();
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(1));
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for concurrency in [1usize, 4, 16] {
        let mut bench = Bench::new(&rt, |dir| {
            let secret = dir.join("secret");
            std::fs::write(&secret, SECRET).expect("write secret");
            let config = Webhook {
                url: url.parse().expect("receiver url"),
                secret: Some(SecretSource::File(secret)),
                timeout: Duration::from_secs(10),
                max_attempts: 15,
                max_age: Duration::from_secs(72 * 3600),
                concurrency,
                retry_schedule: Vec::new(),
                template: None,
                content_type: "application/json".into(),
                headers: Vec::new(),
            };
            Arc::new(WebhookSink::new(&config, "feedwire-bench").expect("webhook sink"))
        });
        g.bench_function(format!("concurrency {concurrency}"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    // Rows are stored first; the clock covers claim, POST and ack only.
                    let target = bench.delivered.load(Ordering::SeqCst) + iters;
                    bench.ingest(iters, false).await;
                    let start = Instant::now();
                    bench.wake.notify_one();
                    bench.drained(target).await;
                    start.elapsed()
                })
            })
        });
    }
    g.finish();
}

fn webhook(c: &mut Criterion) {
    webhook_group(c, "outbox_webhook", &start_receiver(None));
}

/// One request in three answered 503 with `Retry-After: 0`: each such delivery is retried at
/// once, on its own, while the others go on; a delivery is counted when it is accepted.
fn webhook_flaky(c: &mut Criterion) {
    webhook_group(
        c,
        "outbox_webhook_one_in_three_503",
        &start_receiver(Some(3)),
    );
}

fn sqlite(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("outbox_sqlite");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for concurrency in [1usize, 16] {
        let mut bench = Bench::new(&rt, |_| Arc::new(NoOp { concurrency }));
        g.bench_function(
            format!("claim + finish, no-op sink, concurrency {concurrency}"),
            |b| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let target = bench.delivered.load(Ordering::SeqCst) + iters;
                        bench.ingest(iters, false).await;
                        let start = Instant::now();
                        bench.wake.notify_one();
                        bench.drained(target).await;
                        start.elapsed()
                    })
                })
            },
        );
        g.bench_function(
            format!("ingest + claim + finish, no-op sink, concurrency {concurrency}"),
            |b| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let target = bench.delivered.load(Ordering::SeqCst) + iters;
                        let start = Instant::now();
                        bench.ingest(iters, true).await;
                        bench.drained(target).await;
                        start.elapsed()
                    })
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, webhook, webhook_flaky, sqlite);
criterion_main!(benches);
