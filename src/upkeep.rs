//! The daemon's periodic work beside the pipeline: the service manager's status and
//! watchdog, pruning what retention no longer needs, and (on a shared store) renewing this
//! node's leases.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::app::Shared;
use crate::model::Timestamp;
use crate::scheduler;
use crate::store::{Reader, Store};

/// How often the service manager gets a STATUS line (and the watchdog, when it is longer).
const STATUS_EVERY: Duration = Duration::from_secs(15);
/// How long the database may take to answer a health check.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);
/// How often what retention no longer needs is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Tells the service manager the daemon is ready, then keeps its STATUS line current and
/// feeds its watchdog — only while the scheduler loop ticks and the database answers.
pub async fn supervise(
    reader: Reader,
    ctx: Arc<Shared>,
    heartbeat: Arc<AtomicI64>,
    stop: CancellationToken,
) {
    use crate::service::{notify, watchdog_interval};
    notify("READY=1");
    let watchdog = watchdog_interval();
    let every = watchdog.map_or(STATUS_EVERY, |w| w.min(STATUS_EVERY));
    loop {
        let scheduler_alive = Timestamp::now().as_millis() - heartbeat.load(Ordering::Relaxed)
            < 3 * scheduler::HEARTBEAT_EVERY.as_millis() as i64;
        let config = ctx.config();
        let sinks: Vec<String> = config.sinks.keys().cloned().collect();
        let pending = tokio::time::timeout(HEALTH_TIMEOUT, reader.pending(&sinks)).await;
        match (&pending, scheduler_alive) {
            (Ok(Ok(n)), true) => {
                if watchdog.is_some() {
                    notify("WATCHDOG=1");
                }
                notify(&format!(
                    "STATUS=polling {} feeds; {n} deliveries pending",
                    config.feeds.len()
                ));
            }
            _ => {
                tracing::error!(
                    scheduler_alive,
                    database_answers = matches!(pending, Ok(Ok(_))),
                    "unhealthy; the watchdog is not fed"
                );
                notify("STATUS=unhealthy: the scheduler or the database does not answer");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// Extends this node's leases (feeds being polled, rows being delivered) three times per
/// lease, so that only a node that stopped loses them.
pub async fn renew_leases(store: Store, lease: Duration, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(lease / 3) => {}
            _ = stop.cancelled() => return,
        }
        if let Err(e) = store.renew_leases().await {
            tracing::warn!(error = %e, "cannot renew this node's leases; other nodes take its feeds over when they pass");
        }
    }
}

/// Prunes what retention no longer needs, at start and then every [`PRUNE_EVERY`].
pub async fn prune_periodically(ctx: Arc<Shared>, stop: CancellationToken) {
    loop {
        let config = ctx.config();
        match ctx
            .store
            .prune(config.dedup.window, config.dedup.retention)
            .await
        {
            Ok((bands, events)) if bands + events > 0 => {
                tracing::info!(bands, events, "pruned old fingerprints and payloads")
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "cannot prune old items"),
        }
        tokio::select! {
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
            _ = stop.cancelled() => return,
        }
    }
}
