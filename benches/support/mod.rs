//! What the outbox and queue benches share: a payload of a typical size, a local receiver,
//! and a sink wrapper that counts deliveries.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;

use std::time::Duration;

use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

use feedwire::outbox::{RetryPolicy, Worker};
use feedwire::sinks::{DeliverFuture, Outgoing, Sink};
use feedwire::store::{
    DedupSettings, FeedSpec, IngestBatch, NewItem, PollRecord, PollStatus, Store, Timestamp,
};

pub const SINK: &str = "hook";
/// Items per ingest transaction, as in one poll that found this many new items.
pub const ITEMS_PER_POLL: usize = 10;
/// A Standard Webhooks secret, so each POST is signed as in production.
pub const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// A payload of a typical size (about 1.5 KB), fixed like the real ones.
pub fn body(n: u64) -> String {
    let summary = "A summary of the story, as plain text, running to a few sentences. ".repeat(12);
    serde_json::json!({
        "type": "item.new",
        "id": format!("01JDX3J6E4Q0W8YV8S1K{n:06}"),
        "timestamp": "2026-11-27T21:30:00Z",
        "feed": {"name": "bench", "url": "https://example.com/rss.xml", "title": "Bench", "tags": ["news"]},
        "item": {
            "url": format!("https://example.com/a/{n}"),
            "link": format!("https://example.com/a/{n}?utm_source=rss"),
            "guid": format!("https://example.com/a/{n}"),
            "title": format!("Story number {n} about something"),
            "author": "Ann Writer", "published": "2026-11-27T21:00:00Z", "updated": null,
            "summary": summary, "content_text": "", "content_html": "",
            "content_source": "feed", "content_error": null, "language": null,
            "word_count": 0, "image": null, "categories": ["news"]
        },
        "duplicate_of": null
    })
    .to_string()
}

/// A receiver on 127.0.0.1 that reads the body and answers at once, on its own thread: 200,
/// or with `fail_every = Some(n)`, 503 with `Retry-After: 0` to every n-th request (a receiver
/// under load that sheds some requests and asks for them again right away).
pub fn start_receiver(fail_every: Option<u64>) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    let requests = Arc::new(AtomicU64::new(0));
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("receiver runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind receiver");
            tx.send(listener.local_addr().expect("receiver address"))
                .expect("send address");
            let app = axum::Router::new().route(
                "/hook",
                axum::routing::post(move |_body: axum::body::Bytes| {
                    let n = requests.fetch_add(1, Ordering::Relaxed) + 1;
                    async move {
                        use axum::response::IntoResponse;
                        match fail_every {
                            Some(every) if n.is_multiple_of(every) => (
                                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                                [(axum::http::header::RETRY_AFTER, "0")],
                            )
                                .into_response(),
                            _ => axum::http::StatusCode::OK.into_response(),
                        }
                    }
                }),
            );
            axum::serve(listener, app).await.expect("serve");
        });
    });
    let addr = rx.recv().expect("receiver address");
    format!("http://{addr}/hook")
}

/// Counts accepted deliveries so a run knows when its last POST returned.
pub struct Counting {
    pub inner: Arc<dyn Sink>,
    pub delivered: Arc<AtomicU64>,
    pub progress: Arc<Notify>,
}

impl Sink for Counting {
    fn deliver<'a>(&'a self, event: Outgoing<'a>) -> DeliverFuture<'a> {
        Box::pin(async move {
            let result = self.inner.deliver(event).await;
            if result.is_ok() {
                self.delivered.fetch_add(1, Ordering::SeqCst);
                self.progress.notify_one();
            }
            result
        })
    }

    fn concurrency(&self) -> usize {
        self.inner.concurrency()
    }
}

/// A database with one feed, a running delivery worker for one sink, and the counters to
/// know when a run is over.
pub struct Bench {
    pub _dir: tempfile::TempDir,
    pub store: Store,
    pub feed_id: i64,
    pub wake: Arc<Notify>,
    pub delivered: Arc<AtomicU64>,
    pub progress: Arc<Notify>,
    pub stop: CancellationToken,
    pub next_item: u64,
}

impl Bench {
    pub fn new(rt: &Runtime, sink: impl FnOnce(&std::path::Path) -> Arc<dyn Sink>) -> Bench {
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
    pub async fn ingest(&mut self, n: u64, wake: bool) {
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
    pub async fn drained(&self, target: u64) {
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

pub fn runtime() -> Runtime {
    // As the daemon: a multi-threaded runtime with one worker per core.
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}
