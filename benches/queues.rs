//! Events per second published with acks through the real outbox path: SQLite claim, the
//! sink, SQLite ack. The queue sinks wait for a JetStream PubAck (`FEEDWIRE_TEST_NATS`) or an
//! AMQP publisher confirm on a persistent message (`FEEDWIRE_TEST_AMQP`); next to them, the
//! signed webhook to a local receiver that answers 200 at once, measured the same way. A
//! broker whose variable is unset is skipped, with a line saying so.
//!
//! One criterion iteration is one delivery, so the figures read as events per second.
//! Rows are stored before the clock starts. `cargo bench --bench queues`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tokio::runtime::Runtime;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use feedwire::config::{Amqp, BrokerAuth, Nats, QueueDelivery, SecretSource, Webhook};
use feedwire::outbox::{RetryPolicy, Worker};
use feedwire::sinks::Sink;
use feedwire::sinks::amqp::AmqpSink;
use feedwire::sinks::nats::NatsSink;
use feedwire::sinks::queue::Template;
use feedwire::sinks::webhook::WebhookSink;
use feedwire::store::{
    DedupSettings, FeedSpec, IngestBatch, NewItem, PollRecord, PollStatus, Store, Timestamp,
};

/// Events in flight per sink in every run: the queue sinks' default.
const CONCURRENCY: usize = 16;

mod support;
use support::*;

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
                        fingerprint: None,
                        new_sinks: vec![SINK.into()],
                        duplicate_sinks: Vec::new(),
                        revision: None,
                        update_of: None,
                        updated_sinks: Vec::new(),
                        not_sent: None,
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

fn delivery() -> QueueDelivery {
    QueueDelivery {
        timeout: Duration::from_secs(10),
        max_attempts: 15,
        max_age: Duration::from_secs(72 * 3600),
        concurrency: CONCURRENCY,
        retry_schedule: Vec::new(),
    }
}

fn unique(prefix: &str) -> String {
    format!("{prefix}{}", ulid::Ulid::new().to_string().to_lowercase())
}

/// Runs one group member: `iters` rows stored, then the clock runs until all are acked.
fn measure(c: &mut Criterion, rt: &Runtime, name: &str, sink: Arc<dyn Sink>) {
    let mut g = c.benchmark_group("queue_sinks");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    let mut bench = Bench::new(rt, |_| sink);
    g.bench_function(format!("{name}, concurrency {CONCURRENCY}"), |b| {
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
    });
    g.finish();
}

fn webhook(c: &mut Criterion) {
    let rt = runtime();
    let url = start_receiver(None);
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, SECRET).expect("write secret");
    let config = Webhook {
        url: url.parse().expect("receiver url"),
        secret: Some(SecretSource::File(secret)),
        timeout: Duration::from_secs(10),
        max_attempts: 15,
        max_age: Duration::from_secs(72 * 3600),
        concurrency: CONCURRENCY,
        retry_schedule: Vec::new(),
        template: None,
        content_type: "application/json".into(),
        headers: Vec::new(),
    };
    let sink = Arc::new(WebhookSink::new(&config, "feedwire-bench").expect("webhook sink"));
    measure(c, &rt, "webhook (local receiver)", sink);
}

fn nats(c: &mut Criterion) {
    let Ok(url) = std::env::var("FEEDWIRE_TEST_NATS") else {
        println!("skipped nats: FEEDWIRE_TEST_NATS is not set");
        return;
    };
    let rt = runtime();
    let stream = unique("FWBENCH_").to_uppercase();
    let config = Nats {
        url: url.parse().expect("FEEDWIRE_TEST_NATS is a URL"),
        subject: Template::parse(&format!("{}.{{feed}}.{{type}}", unique("fwbench")))
            .expect("template"),
        stream: Some(stream.clone()),
        create_stream: true,
        duplicate_window: Duration::from_secs(120),
        auth: BrokerAuth::None,
        delivery: delivery(),
    };
    let sink = Arc::new(NatsSink::new(&config).expect("nats sink"));
    measure(c, &rt, "nats jetstream (file stream, PubAck)", sink);
    rt.block_on(async {
        if let Ok(client) = async_nats::connect(url.as_str()).await {
            let _ = async_nats::jetstream::new(client)
                .delete_stream(&stream)
                .await;
        }
    });
}

fn amqp(c: &mut Criterion) {
    use lapin::options::{
        ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
        QueueDeleteOptions,
    };
    use lapin::types::FieldTable;
    let Ok(url) = std::env::var("FEEDWIRE_TEST_AMQP") else {
        println!("skipped amqp: FEEDWIRE_TEST_AMQP is not set");
        return;
    };
    let rt = runtime();
    let parsed = url::Url::parse(&url).expect("FEEDWIRE_TEST_AMQP is a URL");
    let exchange = unique("fwbench.");
    let queue = unique("fwbench.");
    let conn = rt
        .block_on(lapin::Connection::connect(
            &url,
            lapin::ConnectionProperties::default(),
        ))
        .expect("FEEDWIRE_TEST_AMQP answers");
    let channel = rt.block_on(conn.create_channel()).expect("channel");
    rt.block_on(async {
        channel
            .exchange_declare(
                exchange.as_str().into(),
                lapin::ExchangeKind::Topic,
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("declare exchange");
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("declare queue");
        channel
            .queue_bind(
                queue.as_str().into(),
                exchange.as_str().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind queue");
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let password = dir.path().join("password");
    std::fs::write(&password, parsed.password().unwrap_or("guest")).expect("write password");
    let mut bare = parsed.clone();
    let user = match parsed.username() {
        "" => "guest".to_string(),
        u => u.to_string(),
    };
    let _ = bare.set_username("");
    let _ = bare.set_password(None);
    let config = Amqp {
        url: bare,
        exchange: exchange.clone(),
        routing_key: Template::parse("{feed}.{type}").expect("template"),
        auth: BrokerAuth::Password {
            username: user,
            password: SecretSource::File(password),
        },
        delivery: delivery(),
    };
    let sink = Arc::new(AmqpSink::new(&config).expect("amqp sink"));
    measure(
        c,
        &rt,
        "rabbitmq (durable queue, persistent, confirms)",
        sink,
    );
    rt.block_on(async {
        let _ = channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await;
        let _ = channel
            .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
            .await;
    });
}

criterion_group!(benches, webhook, nats, amqp);
criterion_main!(benches);
