//! What the outbox and queue benches share: a payload of a typical size, a local receiver,
//! and a sink wrapper that counts deliveries.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;

use feedwire::sinks::{DeliverFuture, Outgoing, Sink};

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
