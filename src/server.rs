//! The HTTP endpoint on `[daemon].listen`: `/metrics` (Prometheus text), `/healthz` (the
//! process answers), `/readyz` (store open and scheduler ticking) and a read-only status
//! page at `/`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::store::{PollStatus, Reader, Store, Timestamp};
use crate::telemetry::{Metrics, SinkLabel};

/// How long the database may take to answer `/readyz`.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// The scheduler counts as ticking when its heartbeat is younger than this.
pub const HEARTBEAT_STALE: Duration = Duration::from_secs(15);

#[derive(Clone)]
pub struct Endpoint {
    /// For `/readyz`: the writer must answer.
    pub store: Store,
    /// For everything shown: the read-only connection, never queued behind writes.
    pub reader: Reader,
    pub metrics: Arc<Metrics>,
    /// Last time the scheduler loop ran (ms since the epoch).
    pub heartbeat: Arc<AtomicI64>,
}

/// Serves until `stop`; an address that cannot be bound is an error for the caller.
pub async fn serve(
    addr: SocketAddr,
    endpoint: Endpoint,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(listen = %addr, "serving /metrics, /healthz, /readyz and the status page");
    let app = Router::new()
        .route("/", get(status_page))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(endpoint);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
}

async fn readyz(State(e): State<Endpoint>) -> Response {
    let ticking = Timestamp::now().as_millis() - e.heartbeat.load(Ordering::Relaxed)
        < HEARTBEAT_STALE.as_millis() as i64;
    let store = matches!(
        tokio::time::timeout(READY_TIMEOUT, e.store.ping()).await,
        Ok(Ok(()))
    );
    match (store, ticking) {
        (true, true) => (StatusCode::OK, "ready\n").into_response(),
        (false, _) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the database does not answer\n",
        )
            .into_response(),
        (true, false) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the scheduler is not ticking\n",
        )
            .into_response(),
    }
}

async fn metrics(State(e): State<Endpoint>) -> Response {
    // Gauges are read from the store now, so they are never stale.
    if let Ok(Ok(backlog)) = tokio::time::timeout(READY_TIMEOUT, e.reader.backlog()).await {
        let now = Timestamp::now();
        for b in backlog {
            let label = SinkLabel { sink: b.sink };
            e.metrics
                .outbox_pending
                .get_or_create(&label)
                .set(b.pending);
            let age = b
                .oldest_pending_at
                .map_or(0.0, |t| now.since(t).as_secs_f64());
            e.metrics
                .outbox_oldest_seconds
                .get_or_create(&label)
                .set(age);
        }
    }
    if let Ok(Ok(counts)) = tokio::time::timeout(READY_TIMEOUT, e.reader.feed_counts()).await {
        e.metrics.feeds.set(counts.active);
        e.metrics.feeds_in_error.set(counts.in_error);
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        e.metrics.encode(),
    )
        .into_response()
}

fn esc(s: &str) -> String {
    ammonia::clean_text(s)
}

fn ago(t: Option<Timestamp>) -> String {
    let Some(t) = t else { return "–".into() };
    let secs = (Timestamp::now().as_millis() - t.as_millis()) / 1000;
    if secs >= 0 {
        format!("{}s ago", secs)
    } else {
        format!("in {}s", -secs)
    }
}

async fn status_page(State(e): State<Endpoint>) -> Response {
    let feeds = e.reader.feeds_report().await.unwrap_or_default();
    let backlog = e.reader.backlog().await.unwrap_or_default();
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>feedwire</title><style>\
         body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse}\
         td,th{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:left}.error{color:#b00}\
         </style></head><body><h1>feedwire</h1><h2>Feeds</h2><table><tr><th>feed</th><th>status</th>\
         <th>HTTP</th><th>errors in a row</th><th>last poll</th><th>next poll</th><th>items</th></tr>",
    );
    for f in feeds.iter().filter(|f| f.active) {
        let status = f.last_status.map_or("never polled", PollStatus::as_str);
        html.push_str(&format!(
            "<tr><td title=\"{}\">{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&f.url),
            esc(&f.name),
            if status == "error" { "error" } else { "" },
            esc(status),
            f.last_http_status.map(|s| s.to_string()).unwrap_or_default(),
            f.errors_in_row,
            ago(f.last_poll_at),
            ago(f.next_poll_at),
            f.items
        ));
        if let Some(err) = &f.last_error {
            html.push_str(&format!(
                "<tr><td></td><td colspan=\"6\" class=\"error\">{}</td></tr>",
                esc(err)
            ));
        }
    }
    html.push_str("</table><h2>Sinks</h2><table><tr><th>sink</th><th>pending</th><th>delivered</th><th>dead</th><th>oldest pending</th></tr>");
    for b in &backlog {
        html.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&b.sink),
            b.pending,
            b.delivered,
            b.dead,
            ago(b.oldest_pending_at)
        ));
    }
    html.push_str("</table></body></html>");
    Html(html).into_response()
}
