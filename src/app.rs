//! Wires the stages with bounded channels, applies reloads, and owns shutdown.
//!
//! ```text
//! scheduler ─due─► poll ─batches─► ingest ──wake──► delivery workers ─► sinks
//!     ▲             │                 │
//!     └── feed ◄────┴─────────────────┘   (the feed's state comes back after its poll)
//! ```
//!
//! `run` loops until cancelled, applying each reloaded config as a diff to the long-lived
//! parts (the store, the HTTP client with its per-origin pauses, the delivery workers);
//! `once` polls each feed one time, lets the stages drain, and waits (bounded) for the
//! deliveries of the configured sinks.

use std::sync::atomic::AtomicI64;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::blocking::Blocking;
use crate::config::Config;
use crate::delivery::{Deliveries, Wakes};
use crate::fetch::{ClientSettings, HttpClient};
use crate::ingest::Batch;
use crate::model::Timestamp;
use crate::poll::Finish;
use crate::scheduler::{self, Clock, Command, FeedState, Scheduler};
use crate::store::Store;
use crate::telemetry::Metrics;

/// Due feeds waiting for a poll slot.
const DUE_QUEUE: usize = 64;
/// Parsed batches waiting for article processing: few, since the one writer sets the pace
/// and each waiting batch holds all its items (a burst of 50-item feeds piled up megabytes).
const BATCH_QUEUE: usize = 4;
/// Commands for the scheduler not yet applied: reloads, WebSub distributions and fallbacks.
/// The callback answers 503 (the hub retries) when it is full.
const COMMAND_QUEUE: usize = 64;

/// What `run` does.
#[derive(Debug, Clone)]
pub enum Mode {
    /// Poll on schedule until cancelled.
    Forever,
    /// Poll every feed (or the named one) once, then wait up to `timeout` for deliveries.
    Once {
        feed: Option<String>,
        timeout: Duration,
    },
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Deliveries still queued when `once` stopped waiting (always 0 for `Forever`).
    pub pending: i64,
}

/// What every stage needs.
pub struct Shared {
    /// The current config; replaced as a whole on reload.
    config: RwLock<Arc<Config>>,
    pub store: Store,
    /// The one HTTP client; it outlives reloads, and so do its per-origin pauses.
    pub http: HttpClient,
    /// Parsing and cleaning, off the reactor, with a bounded queue.
    pub blocking: Blocking,
    /// Per-sink wake-ups of the delivery workers.
    pub wakes: Wakes,
    pub metrics: Arc<Metrics>,
    /// The WebSub subscriber, when `run` serves a `[websub]` callback.
    pub websub: Option<Arc<crate::websub::Subscriber>>,
}

impl Shared {
    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_config(&self, config: Arc<Config>) {
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = config;
    }
}

/// The HTTP client settings a config asks for.
pub fn client_settings(config: &Config) -> ClientSettings {
    ClientSettings {
        hosts: config.hosts.clone(),
        allowed_networks: config.article.allowed_networks.clone(),
        user_agent: config.daemon.user_agent.clone(),
        max_connections: config.daemon.max_connections,
        per_host_connections: config.daemon.per_host_connections,
        proxy: config.daemon.proxy.clone(),
        no_proxy: config.daemon.no_proxy.clone(),
    }
}

/// Runs the pipeline until `shutdown` is cancelled (or, for `once`, until done). Each config
/// received on `reloads` is applied as a diff.
pub async fn run(
    config: Config,
    mode: Mode,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    mut reloads: mpsc::Receiver<Config>,
) -> anyhow::Result<Outcome> {
    let config = Arc::new(config);
    let store = Store::connect(&config).await?;
    let feeds = scheduler::feed_states(&store, &config).await?;
    // Claims of a previous process that died are void; its rows are delivered again. Only
    // here, before any worker of this process runs.
    store.release_all_claims().await?;
    let http = HttpClient::new(&client_settings(&config))?;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut deliveries = Deliveries::start(&config, store.clone(), metrics.clone())?;
    let (commands_tx, commands_rx) = mpsc::channel::<Command>(COMMAND_QUEUE);
    let websub = match (&mode, &config.websub, config.daemon.listen) {
        (Mode::Forever, Some(settings), Some(_)) => Some(
            crate::websub::Subscriber::start(
                &config,
                settings,
                store.clone(),
                commands_tx.clone(),
                metrics.clone(),
            )
            .await?,
        ),
        _ => None,
    };
    let ctx = Arc::new(Shared {
        websub: websub.clone(),
        config: RwLock::new(config.clone()),
        store: store.clone(),
        http,
        blocking: Blocking::new(threads),
        wakes: deliveries.wakes(),
        metrics: metrics.clone(),
    });

    let (due_tx, due_rx) = mpsc::channel::<FeedState>(DUE_QUEUE);
    let (batch_tx, batch_rx) = mpsc::channel::<Batch>(BATCH_QUEUE);
    // Unbounded on purpose: each feed has at most one poll in flight, so this holds at most
    // one message per feed, and the scheduler must never block the stages that report to it.
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<FeedState>();
    let (finish, records) = Finish::new(done_tx);

    let stages = TaskTracker::new();
    // Stops taking new work; what is in flight finishes.
    let stop_polling = shutdown.child_token();
    stages.spawn(crate::poll::run(
        ctx.clone(),
        due_rx,
        batch_tx,
        finish.clone(),
        stop_polling.clone(),
    ));
    stages.spawn(crate::ingest::run(ctx.clone(), batch_rx, finish));
    stages.spawn(crate::poll::write_records(ctx.clone(), records));

    match &mode {
        Mode::Forever => {
            let heartbeat = Arc::new(AtomicI64::new(Timestamp::now().as_millis()));
            stages.spawn(crate::upkeep::prune_periodically(
                ctx.clone(),
                stop_polling.clone(),
            ));
            let page = crate::server::start(
                &stages,
                &config,
                &store,
                &metrics,
                &heartbeat,
                websub.clone(),
                &stop_polling,
            )?;
            if let Some(subscriber) = &websub {
                subscriber
                    .configure(&config, &scheduler::feed_ids(&feeds))
                    .await;
                stages.spawn(subscriber.clone().watch(stop_polling.clone()));
            }
            stages.spawn(crate::upkeep::supervise(
                store.reader(),
                ctx.clone(),
                heartbeat.clone(),
                stop_polling.clone(),
            ));
            tracing::info!(
                feeds = feeds.len(),
                sinks = config.sinks.len(),
                "feedwire running"
            );
            let mut scheduler = Scheduler::new(Clock::new(), feeds, config.poll.interval);
            if let Some(lease) = store.lease() {
                scheduler = scheduler.sharing(store.clone());
                stages.spawn(crate::upkeep::renew_leases(
                    store.clone(),
                    lease,
                    stop_polling.clone(),
                ));
            }
            stages.spawn(scheduler.run(
                due_tx,
                done_rx,
                commands_rx,
                heartbeat,
                stop_polling.clone(),
            ));
            stages.close();
            loop {
                tokio::select! {
                    _ = stop_polling.cancelled() => break,
                    Some(new) = reloads.recv() => {
                        reload(&ctx, &mut deliveries, &commands_tx, new).await;
                        if let Some(page) = &page {
                            page.reconfigure(&ctx.config());
                        }
                    }
                }
            }
        }
        Mode::Once { feed, .. } => {
            stages.close();
            for state in feeds {
                if feed.as_ref().is_some_and(|f| *f != state.feed.name) {
                    continue;
                }
                tokio::select! {
                    sent = due_tx.send(state) => if sent.is_err() { break },
                    _ = stop_polling.cancelled() => break,
                }
            }
            drop(due_tx);
            // Polls report back here; nobody reschedules them.
            tokio::spawn(async move { while done_rx.recv().await.is_some() {} });
        }
    }

    // Drain: the stages finish what they hold, within the grace period after a signal.
    let grace = config.daemon.shutdown_grace;
    let drained = if shutdown.is_cancelled() {
        tokio::time::timeout(grace, stages.wait()).await.is_ok()
    } else {
        tokio::select! {
            _ = stages.wait() => true,
            _ = shutdown.cancelled() => tokio::time::timeout(grace, stages.wait()).await.is_ok(),
        }
    };
    if !drained {
        tracing::warn!(grace = %humantime::format_duration(grace), "stopped before in-flight polls finished; their items are fetched again next time");
    }

    let mut pending = 0;
    if let Mode::Once { timeout, .. } = mode {
        pending = crate::delivery::wait_for_deliveries(
            &store.reader(),
            &deliveries.sinks(),
            timeout,
            &shutdown,
        )
        .await?;
    }
    let sinks = deliveries.sinks();
    if !deliveries.stop(grace).await {
        tracing::warn!("deliveries still in flight at shutdown stay queued for the next start");
    }
    if pending > 0 {
        pending = store.reader().pending(&sinks).await?;
    }
    Ok(Outcome { pending })
}

/// Applies a reloaded config: feeds and sinks added, removed or changed; the store, the HTTP
/// client and unchanged sinks' workers stay.
async fn reload(
    ctx: &Shared,
    deliveries: &mut Deliveries,
    scheduler: &mpsc::Sender<Command>,
    new: Config,
) {
    let old = ctx.config();
    if client_settings(&old).hosts != new.hosts
        || old.daemon.user_agent != new.daemon.user_agent
        || old.daemon.max_connections != new.daemon.max_connections
        || old.daemon.per_host_connections != new.daemon.per_host_connections
        || old.article.allowed_networks != new.article.allowed_networks
    {
        tracing::warn!(
            "changes to [daemon] connections, user_agent, [hosts] or [article] allowed_networks take effect at the next start"
        );
    }
    if old.daemon.proxy != new.daemon.proxy || old.daemon.no_proxy != new.daemon.no_proxy {
        tracing::warn!("changes to [daemon] proxy or no_proxy take effect at the next start");
    }
    if old.daemon.state_dir != new.daemon.state_dir || old.daemon.listen != new.daemon.listen {
        tracing::warn!("changes to [daemon] state_dir or listen take effect at the next start");
    }
    let new = Arc::new(new);
    let feeds = match scheduler::feed_states(&ctx.store, &new).await {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "reload refused: cannot update the feeds; still running on the previous config");
            crate::service::notify("READY=1");
            return;
        }
    };
    if old.websub != new.websub {
        tracing::warn!("changes to [websub] take effect at the next start");
    }
    ctx.set_config(new.clone());
    if let Some(subscriber) = &ctx.websub {
        subscriber
            .configure(&new, &scheduler::feed_ids(&feeds))
            .await;
    }
    for problem in deliveries.reconfigure(&new).await {
        tracing::error!(error = %problem, "a sink could not be started; the other sinks go on");
    }
    let count = feeds.len();
    if scheduler
        .send(Command::Reconfigure { feeds })
        .await
        .is_err()
    {
        return;
    }
    tracing::info!(feeds = count, sinks = new.sinks.len(), "reloaded");
    crate::service::notify("READY=1");
}
