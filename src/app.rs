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

    pub(crate) fn set_config(&self, config: Arc<Config>) {
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = config;
    }
}

/// Runs the pipeline until `shutdown` is cancelled (or, for `once`, until done). Each config
/// received on `reloads` is applied as a diff.
pub async fn run(
    config: Config,
    mode: Mode,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    reloads: mpsc::Receiver<Config>,
) -> anyhow::Result<Outcome> {
    let config = Arc::new(config);
    let store = Store::connect(&config).await?;
    let feeds = scheduler::feed_states(&store, &config).await?;
    // Claims of a previous process that died are void; its rows are delivered again. Only
    // here, before any worker of this process runs.
    store.release_all_claims().await?;
    let http = HttpClient::new(&ClientSettings::of(&config))?;
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

    let stages = Stages::start(&ctx, &shutdown);
    let tasks = stages.tasks.clone();
    match &mode {
        Mode::Forever => {
            let commands = (commands_tx, commands_rx);
            serve(ctx, &mut deliveries, commands, stages, feeds, reloads).await?;
        }
        Mode::Once { feed, .. } => poll_once(stages, feeds, feed.as_deref()).await,
    }
    let grace = config.daemon.shutdown_grace;
    if !drain(&tasks, &shutdown, grace).await {
        tracing::warn!(grace = %humantime::format_duration(grace), "stopped before in-flight polls finished; their items are fetched again next time");
    }

    let wait = match mode {
        Mode::Once { timeout, .. } => Some(timeout),
        Mode::Forever => None,
    };
    let pending = deliveries.finish(wait, grace, &shutdown).await?;
    Ok(Outcome { pending })
}

/// The running stages, and the ends of their channels the caller feeds and drains.
struct Stages {
    tasks: TaskTracker,
    /// Due feeds, to the poll stage.
    due: mpsc::Sender<FeedState>,
    /// Feeds whose poll is over, back from the stages.
    done: mpsc::UnboundedReceiver<FeedState>,
    /// Stops taking new work; what is in flight finishes.
    stop: CancellationToken,
}

impl Stages {
    /// Spawns the poll and ingest stages and the writer of poll records.
    fn start(ctx: &Arc<Shared>, shutdown: &CancellationToken) -> Stages {
        let (due, due_rx) = mpsc::channel::<FeedState>(DUE_QUEUE);
        let (batch_tx, batch_rx) = mpsc::channel::<Batch>(BATCH_QUEUE);
        // Unbounded on purpose: each feed has at most one poll in flight, so this holds at
        // most one message per feed, and the scheduler must never block the stages that
        // report to it.
        let (done_tx, done) = mpsc::unbounded_channel::<FeedState>();
        let (finish, records) = Finish::new(done_tx);
        let tasks = TaskTracker::new();
        let stop = shutdown.child_token();
        tasks.spawn(crate::poll::run(
            ctx.clone(),
            due_rx,
            batch_tx,
            finish.clone(),
            stop.clone(),
        ));
        tasks.spawn(crate::ingest::run(ctx.clone(), batch_rx, finish));
        tasks.spawn(crate::poll::write_records(ctx.clone(), records));
        Stages {
            tasks,
            due,
            done,
            stop,
        }
    }
}

/// Polls on schedule and applies reloads until the stages are told to stop; the status page,
/// the WebSub subscriber, pruning, supervision and lease renewal run beside them.
async fn serve(
    ctx: Arc<Shared>,
    deliveries: &mut Deliveries,
    (commands_tx, commands_rx): (mpsc::Sender<Command>, mpsc::Receiver<Command>),
    stages: Stages,
    feeds: Vec<FeedState>,
    mut reloads: mpsc::Receiver<Config>,
) -> anyhow::Result<()> {
    let (config, store, tasks, stop) = (ctx.config(), &ctx.store, &stages.tasks, &stages.stop);
    let heartbeat = Arc::new(AtomicI64::new(Timestamp::now().as_millis()));
    tasks.spawn(crate::upkeep::prune_periodically(ctx.clone(), stop.clone()));
    let page = crate::server::start(
        tasks,
        &config,
        store,
        &ctx.metrics,
        &heartbeat,
        ctx.websub.clone(),
        stop,
    )?;
    if let Some(subscriber) = &ctx.websub {
        subscriber
            .configure(&config, &scheduler::feed_ids(&feeds))
            .await;
        tasks.spawn(subscriber.clone().watch(stop.clone()));
    }
    tasks.spawn(crate::upkeep::supervise(
        store.reader(),
        ctx.clone(),
        heartbeat.clone(),
        stop.clone(),
    ));
    tracing::info!(
        feeds = feeds.len(),
        sinks = config.sinks.len(),
        "feedwire running"
    );
    let mut scheduler = Scheduler::new(Clock::new(), feeds, config.poll.interval);
    if let Some(lease) = store.lease() {
        scheduler = scheduler.sharing(store.clone());
        tasks.spawn(crate::upkeep::renew_leases(
            store.clone(),
            lease,
            stop.clone(),
        ));
    }
    tasks.spawn(scheduler.run(
        stages.due,
        stages.done,
        commands_rx,
        heartbeat,
        stop.clone(),
    ));
    tasks.close();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            Some(new) = reloads.recv() => {
                crate::reload::apply(&ctx, deliveries, &commands_tx, new).await;
                if let Some(page) = &page {
                    page.reconfigure(&ctx.config());
                }
            }
        }
    }
}

/// Hands every feed (or the one named) to the poll stage once; nobody reschedules them.
async fn poll_once(stages: Stages, feeds: Vec<FeedState>, only: Option<&str>) {
    let Stages {
        tasks,
        due,
        mut done,
        stop,
    } = stages;
    tasks.close();
    for state in feeds {
        if only.is_some_and(|f| f != state.feed.name) {
            continue;
        }
        tokio::select! {
            sent = due.send(state) => if sent.is_err() { break },
            _ = stop.cancelled() => break,
        }
    }
    drop(due);
    tokio::spawn(async move { while done.recv().await.is_some() {} });
}

/// Waits for the stages to finish what they hold: to the end, or within `grace` once
/// `shutdown` is cancelled. False when the grace period ran out first.
async fn drain(tasks: &TaskTracker, shutdown: &CancellationToken, grace: Duration) -> bool {
    if shutdown.is_cancelled() {
        return tokio::time::timeout(grace, tasks.wait()).await.is_ok();
    }
    tokio::select! {
        _ = tasks.wait() => true,
        _ = shutdown.cancelled() => tokio::time::timeout(grace, tasks.wait()).await.is_ok(),
    }
}
