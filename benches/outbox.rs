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
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use feedwire::config::{SecretSource, Webhook};
use feedwire::sinks::webhook::WebhookSink;
use feedwire::sinks::{DeliverFuture, Outgoing, Sink};

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
