//! `feedwire run` and `feedwire once`: the pipeline, signals, and reload on SIGHUP.

use std::path::Path;
use std::sync::Arc;

use feedwire::app::{self, Mode};
use feedwire::config;
use tokio_util::sync::CancellationToken;

use super::{Failure, OnceArgs, load};

/// `feedwire once`: every feed (or one) polled once, then the deliveries waited for.
pub async fn once(explicit: Option<&Path>, args: OnceArgs) -> Result<u8, Failure> {
    let (_, config) = load(explicit)?;
    if let Some(name) = &args.feed
        && config.feed(name).is_none()
    {
        return Err(Failure::usage(format!(
            "no feed named {name:?} in the config"
        )));
    }
    feedwire::telemetry::init(config.daemon.log_format);
    let shutdown = on_signals();
    // `once` takes no reloads: the sender is dropped at once.
    let (_, reloads) = tokio::sync::mpsc::channel(1);
    let outcome = app::run(
        config,
        Mode::Once {
            feed: args.feed,
            timeout: args.timeout,
        },
        Arc::new(feedwire::telemetry::Metrics::new()),
        shutdown,
        reloads,
    )
    .await?;
    if outcome.pending > 0 {
        eprintln!(
            "feedwire: {} deliveries are still pending after {}; they stay queued for the next run",
            outcome.pending,
            humantime::format_duration(args.timeout)
        );
        return Ok(1);
    }
    Ok(0)
}

/// `feedwire run`: the pipeline until SIGTERM/SIGINT. SIGHUP re-reads the config: when it is
/// valid it is applied to the running pipeline as a diff (feeds and sinks added, removed or
/// changed; log files reopened; the store, the HTTP client and its per-origin pauses kept);
/// when it is not, every problem is logged and the daemon goes on with the old one.
pub async fn run(explicit: Option<&Path>) -> Result<u8, Failure> {
    use feedwire::service::notify;
    let (path, config) = load(explicit)?;
    feedwire::telemetry::init(config.daemon.log_format);
    let shutdown = on_signals();
    let mut hangups = on_hangup();
    let (reload_tx, reloads) = tokio::sync::mpsc::channel(1);
    let metrics = Arc::new(feedwire::telemetry::Metrics::new());
    let mut running = tokio::spawn(app::run(
        config,
        Mode::Forever,
        metrics,
        shutdown.clone(),
        reloads,
    ));
    loop {
        tokio::select! {
            ended = &mut running => {
                notify("STOPPING=1");
                return match ended {
                    Ok(Ok(_)) => {
                        tracing::info!("stopped");
                        Ok(0)
                    }
                    Ok(Err(e)) => Err(Failure::from(e)),
                    Err(e) => Err(Failure::runtime(format!("the daemon stopped unexpectedly: {e}"))),
                };
            }
            Some(()) = hangups.recv() => {
                notify("RELOADING=1");
                match config::load(&path) {
                    Ok(new) => {
                        tracing::info!(config = %path.display(), "reloading");
                        // The pipeline says READY=1 once it applied the new config.
                        if reload_tx.send(new).await.is_err() {
                            notify("READY=1");
                        }
                    }
                    Err(e) => {
                        tracing::error!(config = %path.display(), error = %e, "reload refused; still running on the previous config");
                        notify("READY=1");
                    }
                }
            }
        }
    }
}

/// Yields once per SIGHUP.
fn on_hangup() -> tokio::sync::mpsc::Receiver<()> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            if tx.send(()).await.is_err() {
                return;
            }
        }
    });
    #[cfg(not(unix))]
    drop(tx);
    rx
}

/// Cancels the returned token on SIGINT or SIGTERM.
fn on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        feedwire::service::notify("STOPPING=1");
        cancel.cancel();
    });
    token
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
