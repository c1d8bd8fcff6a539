//! Wires the stages with bounded channels and owns shutdown.
//!
//! ```text
//! scheduler ─jobs─► pollers ─batches─► processor ─ready─► storer ─wake─► delivery workers
//!     ▲                │                                     │
//!     └────────────────┴──────────── done ◄──────────────────┘
//! ```
//!
//! `run` loops until cancelled; `once` polls each feed one time, lets the stages drain, and
//! waits (bounded) for the deliveries.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use rand::Rng;
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, Feed, SinkKind};
use crate::fetch::{ClientSettings, FetchError, Fetched, HttpClient, Validators};
use crate::model::EventType;
use crate::model::FeedItem;
use crate::outbox::{RetryPolicy, Worker};
use crate::parse::{Identity, parse_feed};
use crate::process::{self, Prepared};
use crate::scheduler::{self, Queue, Rate, Why};
use crate::server::Endpoint;
use crate::sinks::Sink;
use crate::sinks::log::LogSink;
use crate::store::{
    DedupSettings, FeedEvent, FeedSpec, IngestBatch, PollRecord, PollStatus, Store, now_ms,
};
use crate::telemetry::{ItemLabel, Metrics};

/// Poll jobs waiting for a poller.
const JOB_QUEUE: usize = 64;
/// Parsed batches waiting for article processing.
const BATCH_QUEUE: usize = 32;
/// Processed batches waiting for the store.
const READY_QUEUE: usize = 32;
/// How often `once` looks whether its deliveries are done.
const ONCE_DELIVERY_CHECK: Duration = Duration::from_millis(50);
/// The scheduler loop wakes at least this often, to prove it is alive.
const SCHEDULER_TICK: Duration = Duration::from_secs(5);
/// How often the service manager gets a STATUS line (and the watchdog, when it is longer).
const STATUS_EVERY: Duration = Duration::from_secs(15);
/// How long the database may take to answer a health check.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);
/// The next poll time of a feed that is never polled again (410 Gone).
const NEVER: i64 = i64::MAX;
/// Feeds of a host that asked to wait resume spread over this much after the pause.
const HOST_PAUSE_SPREAD: Duration = Duration::from_secs(30);
/// Batches whose articles are fetched at the same time.
const ARTICLE_BATCHES: usize = 8;
/// How often what retention no longer needs is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

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

/// A feed's in-memory polling state, owned by the scheduler.
struct FeedRuntime {
    feed: Arc<Feed>,
    /// Where the feed is polled: its configured URL, or where it moved permanently.
    url: url::Url,
    validators: Validators,
    errors_in_row: u32,
    polls: i64,
    /// Items are identified by links, the feed's GUIDs being unusable.
    guid_unreliable: bool,
    rate: Rate,
    last_ok_at: Option<i64>,
}

/// One poll to make.
struct Job {
    feed_id: i64,
    feed: Arc<Feed>,
    url: url::Url,
    validators: Validators,
    errors_in_row: u32,
    first_poll: bool,
    identity: Identity,
    rate: Rate,
    last_ok_at: Option<i64>,
}

/// A poll whose new items still have to be processed and stored.
struct Batch {
    job: Job,
    record: PollRecord,
    feed_title: Option<String>,
    items: Vec<FeedItem>,
    /// Known items whose entry changed, with their stored ids.
    updates: Vec<(FeedItem, String)>,
}

/// A batch ready for the store.
struct Ready {
    job: Job,
    record: PollRecord,
    prepared: Prepared,
}

/// A poll's record, the feed's title and its new items.
type Fresh = (PollRecord, Option<String>, Unseen);

/// A finished poll, reported back to the scheduler.
struct Done {
    feed_id: i64,
    next_poll_at: i64,
    validators: Validators,
    errors_in_row: u32,
    /// The poll showed the feed's GUIDs to be unusable.
    guid_unreliable: bool,
    /// The feed moved permanently here.
    moved_to: Option<url::Url>,
    /// The feed's rate after a successful poll.
    rate: Option<Rate>,
    ok_at: Option<i64>,
}

/// What every stage needs.
struct Shared {
    config: Arc<Config>,
    store: Store,
    http: HttpClient,
    /// Per-sink wake-ups for the delivery workers.
    wakes: HashMap<String, Arc<Notify>>,
    metrics: Arc<Metrics>,
}

/// Runs the pipeline until `shutdown` is cancelled (or, for `once`, until done).
pub async fn run(
    config: Config,
    mode: Mode,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> anyhow::Result<Outcome> {
    let config = Arc::new(config);
    let store = Store::open(&config.database_path())?;
    let states = store
        .sync_feeds(
            config
                .feeds
                .iter()
                .map(|f| FeedSpec {
                    name: f.name.clone(),
                    url: f.url.to_string(),
                })
                .collect(),
        )
        .await?;
    store.prepare_dedup(config.dedup.max_distance).await?;
    // Claims of a previous process that died are void; its rows are delivered again.
    store.release_all_claims().await?;
    let http = HttpClient::new(&ClientSettings {
        hosts: config.hosts.clone(),
        allowed_networks: config.article.allowed_networks.clone(),
        user_agent: config.daemon.user_agent.clone(),
        max_connections: config.daemon.max_connections,
        per_host_connections: config.daemon.per_host_connections,
    })?;

    // Delivery workers stop on their own token, after the pipeline drained.
    let delivery_stop = CancellationToken::new();
    let delivery_tasks = TaskTracker::new();
    let mut wakes = HashMap::new();
    for (name, sink) in &config.sinks {
        let (sink_impl, policy): (Arc<dyn Sink>, RetryPolicy) = match &sink.kind {
            SinkKind::Log { path } => (
                Arc::new(
                    LogSink::new(path.clone())
                        .with_context(|| format!("sink {name}: cannot open its log file"))?,
                ),
                RetryPolicy::forever(),
            ),
            SinkKind::Webhook(w) => (
                Arc::new(
                    crate::sinks::webhook::WebhookSink::new(w, &config.daemon.user_agent)
                        .with_context(|| format!("sink {name}"))?,
                ),
                RetryPolicy {
                    max_attempts: w.max_attempts,
                    max_age: Some(w.max_age),
                    schedule: w.retry_schedule.clone(),
                },
            ),
            SinkKind::Nats(n) => (
                Arc::new(
                    crate::sinks::nats::NatsSink::new(n).with_context(|| format!("sink {name}"))?,
                ),
                queue_policy(&n.delivery),
            ),
            SinkKind::Amqp(a) => (
                Arc::new(
                    crate::sinks::amqp::AmqpSink::new(a).with_context(|| format!("sink {name}"))?,
                ),
                queue_policy(&a.delivery),
            ),
        };
        let wake = Arc::new(Notify::new());
        wakes.insert(name.clone(), wake.clone());
        let worker = Worker {
            name: name.clone(),
            sink: sink_impl,
            store: store.clone(),
            policy,
            wake,
            metrics: metrics.clone(),
        };
        delivery_tasks.spawn(worker.run(delivery_stop.clone()));
    }
    delivery_tasks.close();

    let ctx = Arc::new(Shared {
        config: config.clone(),
        store: store.clone(),
        http,
        wakes,
        metrics: metrics.clone(),
    });
    let mut runtimes: HashMap<i64, FeedRuntime> = HashMap::new();
    for s in &states {
        if let Some(feed) = config.feed(&s.name) {
            runtimes.insert(
                s.id,
                FeedRuntime {
                    feed: Arc::new(feed.clone()),
                    // The store's URL: the config's, or where the feed moved since.
                    url: url::Url::parse(&s.url).unwrap_or_else(|_| feed.url.clone()),
                    validators: Validators {
                        etag: s.etag.clone(),
                        last_modified: s.last_modified.clone(),
                    },
                    errors_in_row: s.errors_in_row,
                    polls: s.polls,
                    guid_unreliable: s.guid_unreliable,
                    rate: s.rate,
                    last_ok_at: s.last_ok_at,
                },
            );
        }
    }

    let (job_tx, job_rx) = mpsc::channel::<Job>(JOB_QUEUE);
    let (batch_tx, batch_rx) = mpsc::channel::<Batch>(BATCH_QUEUE);
    let (ready_tx, ready_rx) = mpsc::channel::<Ready>(READY_QUEUE);
    // Unbounded on purpose: each feed has at most one poll in flight, so this holds at most
    // one message per feed, and the scheduler must never block the stages that report to it.
    let (done_tx, done_rx) = mpsc::unbounded_channel::<Done>();

    let stages = TaskTracker::new();
    // Stops taking new work; what is in flight finishes.
    let stop_polling = shutdown.child_token();
    stages.spawn(pollers(
        ctx.clone(),
        job_rx,
        batch_tx,
        done_tx.clone(),
        stop_polling.clone(),
    ));
    stages.spawn(processor(ctx.clone(), batch_rx, ready_tx));
    stages.spawn(storer(ctx.clone(), ready_rx, done_tx));

    match &mode {
        Mode::Forever => {
            stages.spawn(prune_periodically(
                store.clone(),
                config.clone(),
                stop_polling.clone(),
            ));
            let heartbeat = Arc::new(AtomicI64::new(now_ms()));
            if let Some(addr) = config.daemon.listen {
                let endpoint = Endpoint {
                    store: store.clone(),
                    metrics: metrics.clone(),
                    heartbeat: heartbeat.clone(),
                };
                // Bound now, so a taken address is a clear error at start, not a silent absence.
                let stop = stop_polling.clone();
                let server = tokio::spawn(crate::server::serve(addr, endpoint, stop));
                stages.spawn(async move {
                    match server.await {
                        Ok(Err(e)) => tracing::error!(listen = %addr, error = %e, "cannot serve metrics and health"),
                        Err(e) => tracing::error!(error = %e, "the metrics server stopped"),
                        Ok(Ok(())) => {}
                    }
                });
            }
            stages.spawn(supervise(
                store.clone(),
                heartbeat.clone(),
                runtimes.len(),
                stop_polling.clone(),
            ));
            tracing::info!(
                feeds = runtimes.len(),
                sinks = config.sinks.len(),
                "feedwire running"
            );
            stages.close();
            schedule_forever(
                &config,
                states,
                runtimes,
                job_tx,
                done_rx,
                heartbeat,
                stop_polling.clone(),
            )
            .await;
        }
        Mode::Once { feed, .. } => {
            stages.close();
            for s in &states {
                if feed.as_ref().is_some_and(|f| f != &s.name) {
                    continue;
                }
                if let Some(rt) = runtimes.get(&s.id) {
                    let job = rt.job(s.id);
                    tokio::select! {
                        sent = job_tx.send(job) => if sent.is_err() { break },
                        _ = stop_polling.cancelled() => break,
                    }
                }
            }
            drop(job_tx);
            drop(done_rx);
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
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            pending = store.pending().await?;
            if pending == 0 || shutdown.is_cancelled() || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(ONCE_DELIVERY_CHECK) => {}
                _ = shutdown.cancelled() => {}
            }
        }
    }
    delivery_stop.cancel();
    if tokio::time::timeout(grace, delivery_tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("deliveries still in flight at shutdown stay queued for the next start");
    }
    if pending > 0 {
        pending = store.pending().await?;
    }
    Ok(Outcome { pending })
}

impl FeedRuntime {
    fn job(&self, feed_id: i64) -> Job {
        Job {
            feed_id,
            feed: self.feed.clone(),
            url: self.url.clone(),
            validators: self.validators.clone(),
            errors_in_row: self.errors_in_row,
            first_poll: self.polls == 0,
            rate: self.rate,
            last_ok_at: self.last_ok_at,
            identity: if self.guid_unreliable {
                Identity::Link
            } else {
                Identity::Guid
            },
        }
    }
}

/// Tells the service manager the daemon is ready, then keeps its STATUS line current and
/// feeds its watchdog — only while the scheduler loop ticks and the database answers.
async fn supervise(store: Store, heartbeat: Arc<AtomicI64>, feeds: usize, stop: CancellationToken) {
    use crate::service::{notify, watchdog_interval};
    notify("READY=1");
    let watchdog = watchdog_interval();
    let every = watchdog.map_or(STATUS_EVERY, |w| w.min(STATUS_EVERY));
    loop {
        let scheduler_alive =
            now_ms() - heartbeat.load(Ordering::Relaxed) < 3 * SCHEDULER_TICK.as_millis() as i64;
        let pending = tokio::time::timeout(HEALTH_TIMEOUT, store.pending()).await;
        match (&pending, scheduler_alive) {
            (Ok(Ok(n)), true) => {
                if watchdog.is_some() {
                    notify("WATCHDOG=1");
                }
                notify(&format!(
                    "STATUS=polling {feeds} feeds; {n} deliveries pending"
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

/// Prunes what retention no longer needs, at start and then every [`PRUNE_EVERY`].
async fn prune_periodically(store: Store, config: Arc<Config>, stop: CancellationToken) {
    loop {
        match store
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

/// The scheduler: hands out feeds as they come due until `stop`.
async fn schedule_forever(
    config: &Config,
    states: Vec<crate::store::FeedState>,
    mut runtimes: HashMap<i64, FeedRuntime>,
    job_tx: mpsc::Sender<Job>,
    mut done_rx: mpsc::UnboundedReceiver<Done>,
    heartbeat: Arc<AtomicI64>,
    stop: CancellationToken,
) {
    let now = now_ms();
    let mut queue = Queue::new();
    // Feeds due now (never polled, or overdue after downtime) are spread out, not fired at once.
    let due_now: Vec<i64> = states
        .iter()
        .filter(|s| s.next_poll_at.is_none_or(|t| t <= now))
        .map(|s| s.id)
        .collect();
    let window = scheduler::startup_window(due_now.len(), config.poll.interval).as_millis() as i64;
    for s in &states {
        if !runtimes.contains_key(&s.id) {
            continue;
        }
        let at = match s.next_poll_at {
            Some(t) if t > now => t,
            _ if window > 0 => now + rand::rng().random_range(0..window),
            _ => now,
        };
        queue.schedule(s.id, at);
    }

    loop {
        heartbeat.store(now_ms(), Ordering::Relaxed);
        let tick = SCHEDULER_TICK.as_millis() as i64;
        let sleep_ms = queue
            .next_due()
            .map(|at| (at - now_ms()).clamp(0, tick))
            .unwrap_or(tick);
        tokio::select! {
            _ = stop.cancelled() => break,
            Some(done) = done_rx.recv() => {
                if let Some(rt) = runtimes.get_mut(&done.feed_id) {
                    rt.validators = done.validators;
                    rt.errors_in_row = done.errors_in_row;
                    rt.polls += 1;
                    rt.guid_unreliable |= done.guid_unreliable;
                    if let Some(moved) = done.moved_to {
                        rt.url = moved;
                    }
                    if let Some(rate) = done.rate {
                        rt.rate = rate;
                    }
                    if done.ok_at.is_some() {
                        rt.last_ok_at = done.ok_at;
                    }
                    queue.schedule(done.feed_id, done.next_poll_at);
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(sleep_ms as u64)) => {
                for feed_id in queue.pop_due(now_ms()) {
                    let Some(rt) = runtimes.get(&feed_id) else { continue };
                    tokio::select! {
                        sent = job_tx.send(rt.job(feed_id)) => if sent.is_err() { return },
                        _ = stop.cancelled() => return,
                    }
                }
            }
        }
    }
}

/// Runs polls as jobs arrive, as many at once as `max_connections` allows.
async fn pollers(
    ctx: Arc<Shared>,
    mut jobs: mpsc::Receiver<Job>,
    batches: mpsc::Sender<Batch>,
    done: mpsc::UnboundedSender<Done>,
    stop: CancellationToken,
) {
    // Bounds the number of polls (and their bodies) in memory at once.
    let slots = Arc::new(Semaphore::new(ctx.config.daemon.max_connections));
    let tasks = TaskTracker::new();
    loop {
        let job = tokio::select! {
            job = jobs.recv() => match job { Some(j) => j, None => break },
            _ = stop.cancelled() => break,
        };
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        let (ctx, batches, done) = (ctx.clone(), batches.clone(), done.clone());
        tasks.spawn(async move {
            poll(&ctx, job, &batches, &done).await;
            drop(permit);
        });
    }
    tasks.close();
    tasks.wait().await;
}

/// When to poll next after a successful poll that found `new_items`, the feed's rate after
/// it, and why: the feed's fixed interval, else its observed rate within the bounds, never
/// shorter than the publisher asks.
fn schedule_success(
    config: &Config,
    job: &Job,
    now: i64,
    new_items: usize,
    publisher: Option<(Duration, &'static str)>,
) -> (i64, Rate, String) {
    let rate = match job.last_ok_at {
        Some(previous) if now > previous => job
            .rate
            .observe(new_items, Duration::from_millis((now - previous) as u64)),
        // A first poll lists the feed's backlog, which says nothing about its rate.
        _ => job.rate,
    };
    let poll = &config.poll;
    let (interval, why) = scheduler::next_interval(
        job.feed.interval,
        rate,
        poll.interval,
        poll.min_interval,
        poll.max_interval,
        publisher,
    );
    let delay = if why == Why::Fixed {
        interval
    } else {
        scheduler::jittered(interval)
    };
    (now + delay.as_millis() as i64, rate, why.describe(interval))
}

/// The longer of two publisher hints, with where it came from.
fn publisher_hint(
    headers: Option<Duration>,
    feed: Option<Duration>,
) -> Option<(Duration, &'static str)> {
    let from_headers = headers.map(|d| (d, "Cache-Control or Expires"));
    let from_feed = feed.map(|d| (d, "the feed's ttl or sy:updatePeriod"));
    match (from_headers, from_feed) {
        (Some(a), Some(b)) => Some(if a.0 >= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

fn failed_record(
    config: &Config,
    job: &Job,
    now: i64,
    http_status: Option<u16>,
    error: String,
) -> PollRecord {
    let errors_in_row = job.errors_in_row + 1;
    let backoff = scheduler::error_backoff(errors_in_row, config.poll.max_interval);
    PollRecord {
        at: now,
        status: PollStatus::Error,
        http_status,
        error: Some(error),
        errors_in_row,
        next_poll_at: now + backoff.as_millis() as i64,
        etag: None,
        last_modified: None,
        title: None,
        moved_to: None,
        rate: None,
        reason: Some(format!(
            "error backoff: {errors_in_row} failed in a row, retried after {}",
            humantime::format_duration(Duration::from_secs(backoff.as_secs()))
        )),
        event: None,
    }
}

/// A poll whose request failed: gone feeds stop, hosts that asked to wait are waited for.
fn fetch_failed(config: &Config, job: &Job, now: i64, e: &FetchError) -> PollRecord {
    match e {
        // Not the feed's fault: no error counted, polled again when the host allows.
        FetchError::HostPaused { until } => PollRecord {
            errors_in_row: job.errors_in_row,
            reason: Some("the host asked to wait (429/503 with Retry-After)".to_string()),
            next_poll_at: *until + scheduler::jittered(HOST_PAUSE_SPREAD).as_millis() as i64,
            ..failed_record(config, job, now, None, e.to_string())
        },
        FetchError::Status { status: 410, .. } => PollRecord {
            status: PollStatus::Gone,
            next_poll_at: NEVER,
            reason: Some("410 Gone: not polled any more".to_string()),
            ..failed_record(
                config,
                job,
                now,
                Some(410),
                "HTTP 410 Gone: the publisher removed this feed; it is no longer polled (remove it from the config)"
                    .to_string(),
            )
        },
        FetchError::Status { status, retry_after: Some(wait) } => {
            let mut record = failed_record(config, job, now, Some(*status), e.to_string());
            let asked = now + (*wait).min(crate::fetch::MAX_HOST_PAUSE).as_millis() as i64;
            if asked > record.next_poll_at {
                record.next_poll_at = asked;
                record.reason = Some(format!("HTTP {status} with Retry-After"));
            }
            record
        }
        _ => failed_record(config, job, now, e.status(), e.to_string()),
    }
}

async fn poll(
    ctx: &Shared,
    job: Job,
    batches: &mpsc::Sender<Batch>,
    done: &mpsc::UnboundedSender<Done>,
) {
    let config = &ctx.config;
    let feed = job.feed.clone();
    let now = now_ms();
    let fetched = ctx
        .http
        .get(
            &job.url,
            Some(&job.validators),
            config.poll.timeout,
            config.poll.max_feed_size,
        )
        .await;
    // Ok(Some(..)): new items to process; Ok(None): recorded already; Err: a failed poll.
    let outcome: Result<Option<Fresh>, PollRecord> = match fetched {
        Ok(Fetched::NotModified {
            validators,
            fresh_for,
        }) => {
            tracing::debug!(feed = %feed.name, "not modified");
            ctx.metrics.poll("not_modified");
            let (next_poll_at, rate, reason) =
                schedule_success(config, &job, now, 0, publisher_hint(fresh_for, None));
            let record = PollRecord {
                at: now,
                status: PollStatus::NotModified,
                http_status: Some(304),
                error: None,
                errors_in_row: 0,
                next_poll_at,
                etag: validators.etag,
                last_modified: validators.last_modified,
                title: None,
                moved_to: None,
                rate: Some(rate),
                reason: Some(reason),
                event: None,
            };
            finish(ctx, &job, record, done).await;
            Ok(None)
        }
        Ok(Fetched::Body(body)) => {
            let url = body.url.clone();
            let status = body.status;
            if let Some(moved) = &body.moved_to {
                tracing::warn!(feed = %feed.name, from = %job.url, to = %moved,
                    "the feed moved permanently; polling its new address (update the config)");
            }
            let identity = job.identity;
            let parsed = tokio::task::spawn_blocking(move || {
                parse_feed(&body.bytes, &url, identity).map(|p| (p, body))
            })
            .await
            .map_err(|e| format!("parser crashed: {e}"));
            match parsed {
                Ok(Ok((parsed, body))) => {
                    ctx.metrics.poll("ok");
                    let hint = publisher_hint(body.fresh_for, parsed.update_hint);
                    let record = |new: usize| {
                        let (next_poll_at, rate, reason) =
                            schedule_success(config, &job, now, new, hint);
                        PollRecord {
                            at: now,
                            status: PollStatus::Ok,
                            http_status: Some(body.status),
                            error: None,
                            errors_in_row: 0,
                            next_poll_at,
                            etag: body.validators.etag.clone(),
                            last_modified: body.validators.last_modified.clone(),
                            title: parsed.title.clone(),
                            moved_to: body.moved_to.as_ref().map(|u| u.to_string()),
                            rate: Some(rate),
                            reason: Some(reason),
                            event: None,
                        }
                    };
                    match new_items(ctx, &job, parsed.items.clone()).await {
                        Ok(unseen) if unseen.items.is_empty() && unseen.updates.is_empty() => {
                            tracing::debug!(feed = %feed.name, "no new items");
                            finish(ctx, &job, record(0), done).await;
                            Ok(None)
                        }
                        Ok(unseen) => Ok(Some((
                            record(unseen.items.len()),
                            parsed.title.clone(),
                            unseen,
                        ))),
                        Err(e) => Err(failed_record(
                            config,
                            &job,
                            now,
                            Some(body.status),
                            format!("database: {e}"),
                        )),
                    }
                }
                Ok(Err(e)) => Err(failed_record(
                    config,
                    &job,
                    now,
                    Some(status),
                    e.to_string(),
                )),
                Err(e) => Err(failed_record(config, &job, now, Some(status), e)),
            }
        }
        Err(e) => Err(fetch_failed(config, &job, now, &e)),
    };
    match outcome {
        Ok(Some((record, feed_title, Unseen { items, updates }))) => {
            let batch = Batch {
                job,
                record,
                updates,
                feed_title,
                items,
            };
            // The receiver is gone only when the pipeline is shutting down; the feed is
            // polled again next time.
            let _ = batches.send(batch).await;
        }
        Ok(None) => {}
        Err(record) if record.status == PollStatus::Gone => {
            ctx.metrics.poll("error");
            tracing::error!(feed = %feed.name, url = %feed.url, "the feed answered 410 Gone: it is no longer polled; remove it from the config");
            finish(ctx, &job, record, done).await;
        }
        Err(record) => {
            ctx.metrics.poll("error");
            tracing::warn!(
                feed = %feed.name, url = %feed.url, status = record.http_status,
                error = record.error.as_deref().unwrap_or(""), errors_in_row = record.errors_in_row,
                retry_in = %humantime::format_duration(Duration::from_secs(((record.next_poll_at - now) / 1000).max(0) as u64)),
                "poll failed"
            );
            finish(ctx, &job, record, done).await;
        }
    }
}

/// Failed polls in a row after which sinks that ask hear that a feed is failing.
const FAILING_AFTER: u32 = 3;

/// `feed.failing` when a feed reaches [`FAILING_AFTER`] failures in a row, `feed.recovered`
/// when it answers again after that, for the feed's sinks that list them.
fn feed_event(ctx: &Shared, job: &Job, record: &PollRecord) -> Option<FeedEvent> {
    let kind = match record.status {
        PollStatus::Error
            if record.errors_in_row == FAILING_AFTER && job.errors_in_row < FAILING_AFTER =>
        {
            EventType::FeedFailing
        }
        PollStatus::Ok | PollStatus::NotModified if job.errors_in_row >= FAILING_AFTER => {
            EventType::FeedRecovered
        }
        _ => return None,
    };
    let sinks = process::sinks_for(&ctx.config, &job.feed, kind);
    if sinks.is_empty() {
        return None;
    }
    let body = crate::sinks::payload::render_feed_event(&crate::sinks::payload::FeedEventInput {
        kind,
        id: &ulid::Ulid::new().to_string(),
        created: chrono::Utc::now(),
        feed: &job.feed,
        url: job.url.as_str(),
        error: record.error.as_deref(),
        http_status: record.http_status,
        failed_polls: if kind == EventType::FeedFailing {
            record.errors_in_row
        } else {
            job.errors_in_row
        },
    });
    Some(FeedEvent { kind, body, sinks })
}

/// A feed that answers again after failing is worth a line: an operator may be watching it.
fn log_recovery(job: &Job, record: &PollRecord) {
    if job.errors_in_row > 0 && matches!(record.status, PollStatus::Ok | PollStatus::NotModified) {
        tracing::info!(feed = %job.feed.name, failed_polls = job.errors_in_row, "feed recovered");
    }
}

/// What the scheduler learns from a finished poll: a failed one keeps the old validators.
fn done_for(job: &Job, record: &PollRecord) -> Done {
    let validators = if record.status == PollStatus::Error {
        job.validators.clone()
    } else {
        Validators {
            etag: record.etag.clone().or_else(|| job.validators.etag.clone()),
            last_modified: record
                .last_modified
                .clone()
                .or_else(|| job.validators.last_modified.clone()),
        }
    };
    Done {
        feed_id: job.feed_id,
        next_poll_at: record.next_poll_at,
        validators,
        errors_in_row: record.errors_in_row,
        guid_unreliable: false,
        moved_to: record
            .moved_to
            .as_deref()
            .and_then(|u| url::Url::parse(u).ok()),
        rate: record.rate,
        ok_at: matches!(record.status, PollStatus::Ok | PollStatus::NotModified)
            .then_some(record.at),
    }
}

/// Stores a poll's outcome (no items) and tells the scheduler.
async fn finish(
    ctx: &Shared,
    job: &Job,
    mut record: PollRecord,
    done: &mpsc::UnboundedSender<Done>,
) {
    log_recovery(job, &record);
    record.event = feed_event(ctx, job, &record);
    let wake: Vec<String> = record
        .event
        .as_ref()
        .map(|e| e.sinks.clone())
        .unwrap_or_default();
    let _ = done.send(done_for(job, &record));
    if let Err(e) = ctx.store.record_poll(job.feed_id, record).await {
        tracing::error!(feed = %job.feed.name, error = %e, "cannot record a poll");
    }
    for sink in wake {
        if let Some(w) = ctx.wakes.get(&sink) {
            w.notify_one();
        }
    }
}

/// What a poll found that the store does not have: new items, and known items whose entry
/// changed (a new revision).
struct Unseen {
    items: Vec<FeedItem>,
    updates: Vec<(FeedItem, String)>,
}

/// The items the store does not know yet (the cheap check before any article work), and the
/// known ones whose title or text changed.
async fn new_items(
    ctx: &Shared,
    job: &Job,
    items: Vec<FeedItem>,
) -> Result<Unseen, crate::store::StoreError> {
    let keys: Vec<String> = items.iter().map(|i| i.key.0.clone()).collect();
    let known = ctx.store.known_items(job.feed_id, keys).await?;
    // Revisions cost a text pass per known item: only worth it when a sink wants updates.
    let wants_updates =
        !process::sinks_for(&ctx.config, &job.feed, EventType::ItemUpdated).is_empty();
    let mut unseen = Unseen {
        items: Vec::new(),
        updates: Vec::new(),
    };
    for item in items {
        match known.get(&item.key.0) {
            None => unseen.items.push(item),
            Some(stored) if wants_updates => {
                if stored
                    .revision
                    .as_ref()
                    .is_some_and(|r| *r != process::revision_of(&item))
                {
                    unseen.updates.push((item, stored.id.clone()));
                }
            }
            Some(_) => {}
        }
    }
    Ok(unseen)
}

/// Gives each batch its content (fetching articles) and fingerprints; several batches at
/// once, so one slow publisher does not hold up the other feeds.
async fn processor(
    ctx: Arc<Shared>,
    mut batches: mpsc::Receiver<Batch>,
    ready: mpsc::Sender<Ready>,
) {
    let slots = Arc::new(Semaphore::new(ARTICLE_BATCHES));
    let tasks = TaskTracker::new();
    while let Some(batch) = batches.recv().await {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        let (ctx, ready) = (ctx.clone(), ready.clone());
        tasks.spawn(async move {
            let feed = batch.job.feed.clone();
            let mut items = process::contents(
                &ctx.config,
                &ctx.http,
                &ctx.store,
                &ctx.metrics,
                &feed,
                batch.items,
            )
            .await;
            items.extend(process::updates(batch.updates));
            let prepared = process::prepare(
                &ctx.config,
                feed,
                batch.feed_title,
                batch.job.first_poll,
                items,
            );
            // The receiver is gone only at shutdown; the feed is polled again next time.
            let _ = ready
                .send(Ready {
                    job: batch.job,
                    record: batch.record,
                    prepared,
                })
                .await;
            drop(permit);
        });
    }
    tasks.close();
    tasks.wait().await;
}

/// Writes batches to the store, then wakes the sinks that got rows.
async fn storer(
    ctx: Arc<Shared>,
    mut ready: mpsc::Receiver<Ready>,
    done: mpsc::UnboundedSender<Done>,
) {
    while let Some(r) = ready.recv().await {
        let mut touched: Vec<String> = r
            .prepared
            .items
            .iter()
            .flat_map(|i| {
                i.new_sinks
                    .iter()
                    .chain(&i.duplicate_sinks)
                    .chain(&i.updated_sinks)
                    .cloned()
            })
            .collect();
        let mut poll = r.record;
        poll.event = feed_event(&ctx, &r.job, &poll);
        if let Some(event) = &poll.event {
            touched.extend(event.sinks.iter().cloned());
        }
        touched.sort();
        touched.dedup();
        let record = poll.clone();
        let name = r.job.feed.name.clone();
        let batch = IngestBatch {
            feed_id: r.job.feed_id,
            poll,
            items: r.prepared.items,
            dedup: DedupSettings {
                near_duplicates: ctx.config.dedup.near_duplicates,
                max_distance: ctx.config.dedup.max_distance,
                window_ms: ctx.config.dedup.window.as_millis() as i64,
            },
            render: r.prepared.render,
        };
        match ctx.store.ingest(batch).await {
            Ok(report) => {
                ctx.metrics
                    .items
                    .get_or_create(&ItemLabel {
                        kind: "new",
                        reason: "",
                    })
                    .inc_by(report.emitted as u64);
                for reason in &report.duplicate_reasons {
                    ctx.metrics
                        .items
                        .get_or_create(&ItemLabel {
                            kind: "duplicate",
                            reason,
                        })
                        .inc();
                }
                tracing::info!(feed = %name, new = report.emitted, duplicates = report.duplicates, updated = report.updated,
                    stored = report.stored, "new items");
                if report.guids_unreliable {
                    tracing::warn!(feed = %name, "the feed changes its GUIDs; its items are now identified by their links");
                }
                for s in touched {
                    if let Some(w) = ctx.wakes.get(&s) {
                        w.notify_one();
                    }
                }
                log_recovery(&r.job, &record);
                let mut d = done_for(&r.job, &record);
                d.guid_unreliable = report.guids_unreliable;
                let _ = done.send(d);
            }
            Err(e) => {
                tracing::error!(feed = %name, error = %e, "cannot store new items; the feed is polled again");
                let failed = failed_record(
                    &ctx.config,
                    &r.job,
                    now_ms(),
                    record.http_status,
                    format!("database: {e}"),
                );
                finish(&ctx, &r.job, failed, &done).await;
            }
        }
    }
}

/// A queue sink retries as a webhook does.
fn queue_policy(d: &crate::config::QueueDelivery) -> RetryPolicy {
    RetryPolicy {
        max_attempts: d.max_attempts,
        max_age: Some(d.max_age),
        schedule: d.retry_schedule.clone(),
    }
}
