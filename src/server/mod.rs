//! The HTTP endpoint on `[daemon].listen`: `/metrics` (Prometheus text), `/healthz` (the
//! process answers), `/readyz` (store open and scheduler ticking) and a read-only status
//! page at `/` (`status.rs`, its template and assets embedded from `assets/`).

pub mod status;
mod websub;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::store::{Reader, Store, Timestamp};
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
    /// The status page, on its own read-only connection.
    pub page: status::StatusPage,
    /// The WebSub subscriber whose callback is served here, when `[websub]` is set.
    pub websub: Option<Arc<crate::websub::Subscriber>>,
    /// The cap on a content distribution's body (`poll.max_feed_size`).
    pub max_body: u64,
}

/// Serves until `stop`; an address that cannot be bound is an error for the caller.
pub async fn serve(
    addr: SocketAddr,
    endpoint: Endpoint,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(listen = %addr, "serving /metrics, /healthz, /readyz and the status page");
    let mut app = Router::new();
    if let Some(subscriber) = &endpoint.websub {
        let path = format!("{}/{{token}}", subscriber.callback_path());
        tracing::info!(listen = %addr, path = %path, "serving the WebSub callback");
        app = app.route(&path, get(websub::verify).post(websub::distribute));
    }
    let app = app
        .route("/", get(status_page))
        .route("/assets/{name}", get(asset))
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

async fn status_page(State(e): State<Endpoint>, uri: Uri, headers: HeaderMap) -> Response {
    e.page.respond(uri.query(), &headers).await
}

async fn asset(Path(name): Path<String>) -> Response {
    status::asset(&name)
}

/// Serves `/metrics`, health and the status page on `addr` until `stop`; returns the page,
/// for reloads.
pub fn start(
    stages: &tokio_util::task::TaskTracker,
    config: &crate::config::Config,
    store: &Store,
    metrics: &Arc<Metrics>,
    heartbeat: &Arc<AtomicI64>,
    websub: Option<Arc<crate::websub::Subscriber>>,
    stop: &CancellationToken,
) -> anyhow::Result<Option<status::StatusPage>> {
    let Some(addr) = config.daemon.listen else {
        return Ok(None);
    };
    let page = status::StatusPage::new(config, store.reader())?;
    let endpoint = Endpoint {
        store: store.clone(),
        reader: store.reader(),
        metrics: metrics.clone(),
        heartbeat: heartbeat.clone(),
        page: page.clone(),
        websub,
        max_body: config.poll.max_feed_size,
    };
    let server = tokio::spawn(serve(addr, endpoint, stop.clone()));
    stages.spawn(async move {
        match server.await {
            Ok(Err(e)) => {
                tracing::error!(listen = %addr, error = %e, "cannot serve metrics and health")
            }
            Err(e) => tracing::error!(error = %e, "the metrics server stopped"),
            Ok(Ok(())) => {}
        }
    });
    Ok(Some(page))
}
