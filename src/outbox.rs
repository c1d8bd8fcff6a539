//! Delivery workers: one per sink, claiming due outbox rows, handing them to the sink and
//! recording the outcome — acknowledged only after the sink accepted the event.
//!
//! Two kinds of failure are kept apart, because they call for opposite answers:
//!
//! - *This delivery failed* (a 4xx; a 429; a 5xx that carries `Retry-After`; a 5xx while other
//!   requests of the same round succeed): the row follows its own schedule, `Retry-After`
//!   honoured, and the other rows go on at the sink's full concurrency.
//! - *The receiver is down* (no answer at all — refused, closed, timed out — or 5xx without
//!   `Retry-After` on every request of a round, [`DOWN_AFTER`] in a row; or `410 Gone`): the
//!   sink pauses. While paused it sends one probe at a time, the failed row due first, at an
//!   interval that doubles from [`FIRST_PROBE`] up to the sink's `probe_interval`. When a
//!   probe is answered, every row that waited only because of the outage is due at once.
//!
//! A row's attempt count grows only with its own attempts: rows held back by a pause are not
//! counted, and a probe sent ahead of its row's own time that finds the receiver still down
//! is not counted either, so `max_attempts` and the retry schedule keep their meaning through
//! an outage of any length. [`decide`] says what one failed attempt means; [`Health`] what a
//! round of them means for the sink. Both are pure.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::sinks::{BrokerFault, Fault, Outgoing, Sink, SinkError};
use crate::store::{Attempt, Delivery, SinkState, SinkStatus, Store, Timestamp};
use crate::telemetry::Metrics;

/// Delay before retry number n (1-based), after the Standard Webhooks schedule: seconds,
/// then minutes, then hours; about three days over 15 attempts. Full jitter is applied.
pub const RETRY_SCHEDULE: &[Duration] = &[
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
];

/// The longest `Retry-After` honoured; a receiver asking for more is retried after this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(6 * 3600);

/// How long an idle worker sleeps before looking at the outbox again without being woken.
const IDLE_RECHECK: Duration = Duration::from_secs(30);

/// The same on a shared store (PostgreSQL), where other daemons' rows arrive without a
/// wake-up and rows another node held come back when its lease passes.
const SHARED_RECHECK: Duration = Duration::from_secs(1);

/// Wait after a database error before the worker tries again.
const STORE_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// How long a sink whose receiver answered 410 Gone stays paused before its next probe
/// (a restart or reload probes at once).
pub const GONE_PAUSE: Duration = Duration::from_secs(3600);

/// Failures pointing at the receiver (no answer, or a 5xx without `Retry-After`), in a row
/// and with no answer on the merits between them, after which the receiver counts as down.
/// A round of `concurrency` requests that all fail so is one such run when concurrency is
/// at least this; one request at a time, it takes three failed rows.
pub const DOWN_AFTER: u32 = 3;

/// The wait before the first probe of a paused sink; it doubles after each failed probe,
/// up to the sink's `probe_interval`.
pub const FIRST_PROBE: Duration = Duration::from_secs(1);

/// `probe_interval` when the config does not say.
pub const DEFAULT_PROBE_INTERVAL: Duration = crate::config::defaults::SINK_PROBE_INTERVAL;

/// When and how often a sink retries an event.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    /// Counted from the event's creation.
    pub max_age: Option<Duration>,
    /// Delay before retry n is step n (the last step repeats); empty means [`RETRY_SCHEDULE`].
    pub schedule: Vec<Duration>,
}

impl RetryPolicy {
    /// For sinks that must never drop an event on their own (a log file on a full disk).
    pub fn forever() -> RetryPolicy {
        RetryPolicy {
            max_attempts: u32::MAX,
            max_age: None,
            schedule: Vec::new(),
        }
    }

    /// The delay before retry number `attempt` (1-based): the schedule's step, with full
    /// jitter over its upper half so that retries of many rows spread out.
    pub fn delay(&self, attempt: u32) -> Duration {
        let schedule = if self.schedule.is_empty() {
            RETRY_SCHEDULE
        } else {
            &self.schedule[..]
        };
        let idx = (attempt.max(1) as usize - 1).min(schedule.len() - 1);
        let half = schedule[idx].as_secs_f64() / 2.0;
        Duration::from_secs_f64(half + rand::rng().random_range(0.0..=half))
    }
}

/// What an attempt's outcome says about the receiver (as opposed to the row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Accepted.
    Delivered,
    /// Refused on the merits of this request (a 4xx): the receiver is up.
    Answered,
    /// This delivery failed, which says nothing about the receiver being down: it asked to
    /// be called back (429, `Retry-After`), or a broker is busy.
    Neutral,
    /// Points at the receiver: no answer, or a 5xx without `Retry-After`.
    Down,
    /// The receiver says the endpoint is gone (410, a broker's missing destination).
    Gone,
}

/// What one failed attempt means: for its row, and for the sink.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub row: Attempt,
    pub signal: Signal,
}

/// The row an attempt was made for, as [`decide`] needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowFacts {
    /// The row's own attempts before this one.
    pub attempts: u32,
    /// The event's creation; `max_age` counts from it.
    pub created_at: Timestamp,
    /// When the row was due on its own schedule; later than `now` for an early probe.
    pub next_attempt_at: Timestamp,
    pub now: Timestamp,
}

/// How a sink's report reads: what it says about the receiver, and whether the same request
/// can succeed later. The one table of status codes and transport errors.
pub fn classify(err: &SinkError) -> (Signal, bool) {
    match err.fault {
        Fault::Status(410) => (Signal::Gone, true),
        Fault::Status(408 | 429) => (Signal::Neutral, true),
        Fault::Status(s) if s >= 500 && err.retry_after.is_some() => (Signal::Neutral, true),
        Fault::Status(s) if s >= 500 => (Signal::Down, true),
        // 1xx, 3xx (redirects are not followed: a receiver that moved must be reconfigured)
        // and the other 4xx: this request is refused as such.
        Fault::Status(_) => (Signal::Answered, false),
        Fault::Broker(BrokerFault::Busy) => (Signal::Neutral, true),
        Fault::Broker(BrokerFault::Rejected | BrokerFault::Denied) => (Signal::Answered, false),
        Fault::Broker(BrokerFault::NoDestination) => (Signal::Gone, true),
        Fault::Transport(_) => (Signal::Down, true),
        Fault::Unsendable => (Signal::Neutral, false),
    }
}

/// Decides once what a failed attempt means: retry at a time, dead letter, or — for a probe
/// sent ahead of its row's time into a receiver that is still down — nothing for the row at
/// all. The [`Signal`] tells the sink's [`Health`] whether to pause.
pub fn decide(err: &SinkError, row: &RowFacts, policy: &RetryPolicy) -> Verdict {
    let (signal, retryable) = classify(err);
    let status = err.status();
    let error = err.to_string();
    let outage = matches!(signal, Signal::Down | Signal::Gone);
    if outage && row.next_attempt_at > row.now {
        return Verdict {
            row: Attempt::Probed { status, error },
            signal,
        };
    }
    let attempts = row.attempts.saturating_add(1);
    let row = if !retryable {
        Attempt::Dead { status, error }
    } else if attempts >= policy.max_attempts {
        Attempt::Dead {
            status,
            error: format!("{error} (gave up after {attempts} attempts)"),
        }
    } else {
        let delay = match err.retry_after {
            Some(d) => d.min(MAX_RETRY_AFTER),
            None => policy.delay(attempts),
        };
        let at = row.now.after(delay);
        match policy.max_age {
            Some(max_age) if at.since(row.created_at) > max_age => {
                let age = humantime::format_duration(max_age);
                Attempt::Dead {
                    status,
                    error: format!("{error} (older than max_age {age})"),
                }
            }
            _ => Attempt::Retry {
                at,
                status,
                error,
                outage,
            },
        }
    };
    Verdict { row, signal }
}

/// A sink's health: up, failing (failures pointing at the receiver, fewer than
/// [`DOWN_AFTER`] in a row), or paused with one probe at a time. Pure: the worker feeds it
/// what each round saw and acts on the state.
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    pub state: SinkState,
    /// Failures pointing at the receiver since the last answer on the merits.
    streak: u32,
    /// When the receiver started failing (kept through a pause, for the report).
    pub since: Option<Timestamp>,
    /// The error that made it failing or paused.
    pub reason: Option<String>,
    /// Paused: when the next probe goes out.
    pub until: Option<Timestamp>,
    /// Paused: the wait that led to `until`; doubled after each failed probe.
    probe_wait: Duration,
    /// The longest wait between two probes (`probe_interval`).
    probe_cap: Duration,
    /// Paused because the receiver answered 410 Gone (an operator must act), not because
    /// it is down.
    pub gone: bool,
}

impl Health {
    pub fn new(probe_cap: Duration) -> Health {
        Health {
            state: SinkState::Up,
            streak: 0,
            since: None,
            reason: None,
            until: None,
            probe_wait: FIRST_PROBE.min(probe_cap),
            probe_cap,
            gone: false,
        }
    }

    /// The health a new worker starts with: a sink that was paused (before a restart or a
    /// reload) stays paused and probes at once; anything else starts up.
    pub fn restored(saved: Option<&SinkStatus>, probe_cap: Duration, now: Timestamp) -> Health {
        let mut h = Health::new(probe_cap);
        if let Some(s) = saved.filter(|s| s.state == SinkState::Paused) {
            h.state = SinkState::Paused;
            h.since = s.since;
            h.reason = s.reason.clone();
            h.until = Some(now);
        }
        h
    }

    /// What the sink's status record says now.
    pub fn status(&self, sink: &str, now: Timestamp) -> SinkStatus {
        SinkStatus {
            sink: sink.to_string(),
            state: self.state,
            reason: self.reason.clone(),
            since: self.since,
            until: self.until,
            updated_at: now,
        }
    }

    /// After a round of normal deliveries: each attempt's signal, with its error. Returns
    /// whether the state changed.
    pub fn after_round(&mut self, seen: &[(Signal, Option<&str>)], now: Timestamp) -> bool {
        let before = self.state;
        if let Some((_, error)) = seen.iter().find(|(s, _)| *s == Signal::Gone) {
            self.pause_gone(error.unwrap_or("gone"), now);
            return true;
        }
        if seen
            .iter()
            .any(|(s, _)| matches!(s, Signal::Delivered | Signal::Answered))
        {
            self.up();
            return self.state != before;
        }
        let downs: Vec<&str> = seen
            .iter()
            .filter(|(s, _)| *s == Signal::Down)
            .map(|(_, e)| e.unwrap_or("no answer"))
            .collect();
        if let Some(last) = downs.last() {
            self.streak = self.streak.saturating_add(downs.len() as u32);
            self.since.get_or_insert(now);
            self.reason = Some((*last).to_string());
            if self.streak >= DOWN_AFTER {
                self.state = SinkState::Paused;
                self.gone = false;
                self.probe_wait = FIRST_PROBE.min(self.probe_cap);
                self.until = Some(now.after(self.probe_wait));
            } else {
                self.state = SinkState::Failing;
            }
        }
        self.state != before
    }

    /// After a probe: answered (even with a refusal or a request to call back later), the
    /// sink is up again; still down, the next probe waits twice as long, up to the cap.
    /// Returns whether the sink resumed.
    pub fn after_probe(&mut self, signal: Signal, error: Option<&str>, now: Timestamp) -> bool {
        match signal {
            Signal::Delivered | Signal::Answered | Signal::Neutral => {
                self.up();
                true
            }
            Signal::Gone => {
                self.pause_gone(error.unwrap_or("gone"), now);
                false
            }
            Signal::Down => {
                self.probe_wait = (self.probe_wait * 2).min(self.probe_cap);
                self.until = Some(now.after(self.probe_wait));
                if let Some(e) = error {
                    self.reason = Some(e.to_string());
                }
                false
            }
        }
    }

    fn up(&mut self) {
        self.state = SinkState::Up;
        self.streak = 0;
        self.since = None;
        self.reason = None;
        self.until = None;
        self.probe_wait = FIRST_PROBE.min(self.probe_cap);
        self.gone = false;
    }

    fn pause_gone(&mut self, error: &str, now: Timestamp) {
        self.state = SinkState::Paused;
        self.gone = true;
        self.since.get_or_insert(now);
        self.reason = Some(error.to_string());
        self.until = Some(now.after(GONE_PAUSE));
    }
}

/// The worker's time: it moves with tokio's clock, so that `tokio::time::pause()` drives
/// the worker's schedule in tests, and is never behind the wall clock (which the rows'
/// times are written in).
#[derive(Debug, Clone, Copy)]
struct Clock {
    wall: Timestamp,
    start: tokio::time::Instant,
}

impl Clock {
    fn start() -> Clock {
        Clock {
            wall: Timestamp::now(),
            start: tokio::time::Instant::now(),
        }
    }

    fn now(&self) -> Timestamp {
        self.wall.after(self.start.elapsed()).max(Timestamp::now())
    }

    fn until(&self, at: Timestamp) -> Duration {
        self.now().until(at)
    }
}

/// Drains one sink's outbox rows until `shutdown`.
pub struct Worker {
    pub name: String,
    pub sink: Arc<dyn Sink>,
    pub store: Store,
    pub policy: RetryPolicy,
    /// The longest wait between two probes of a paused sink (`probe_interval`).
    pub probe_interval: Duration,
    /// Poked when new rows for this sink are stored, so delivery starts at once.
    pub wake: Arc<Notify>,
    pub metrics: Arc<Metrics>,
}

impl Worker {
    pub async fn run(self, shutdown: CancellationToken) {
        let clock = Clock::start();
        let saved = match self.store.reader().sink_statuses().await {
            Ok(all) => all.into_iter().find(|s| s.sink == self.name),
            Err(e) => {
                tracing::warn!(sink = %self.name, error = %e, "cannot read the sink's state; starting as up");
                None
            }
        };
        let mut health = Health::restored(saved.as_ref(), self.probe_interval, clock.now());
        if health.state == SinkState::Paused {
            tracing::info!(sink = %self.name, reason = health.reason.as_deref().unwrap_or(""),
                "the sink was paused: probing the receiver before anything else");
        }
        self.publish(&health, &clock).await;
        while !shutdown.is_cancelled() {
            if health.state == SinkState::Paused {
                let wait = clock.until(health.until.unwrap_or_default());
                if !wait.is_zero() {
                    pause(wait, &shutdown).await;
                    continue;
                }
                self.probe(&mut health, &clock, &shutdown).await;
                continue;
            }
            self.round(&mut health, &clock, &shutdown).await;
        }
    }

    /// One claim of due rows, delivered `concurrency` at a time, recorded in one transaction.
    async fn round(&self, health: &mut Health, clock: &Clock, shutdown: &CancellationToken) {
        let concurrency = self.sink.concurrency().max(1);
        let limit = self.sink.batch_size().max(concurrency);
        let batch = match self.store.claim_due(&self.name, limit, clock.now()).await {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(sink = %self.name, error = %e, "cannot read the outbox");
                pause(STORE_ERROR_PAUSE, shutdown).await;
                return;
            }
        };
        if batch.is_empty() {
            self.idle(clock, shutdown).await;
            return;
        }
        let mut changed = false;
        let mut outcomes: Vec<(i64, Attempt)> = Vec::with_capacity(batch.len());
        let mut rows = batch.into_iter();
        // `concurrency` deliveries at a time; a one-at-a-time sink gets its rows in order
        // and stops at the first failure (the rest stay queued, in order).
        loop {
            let chunk: Vec<Delivery> = rows.by_ref().take(concurrency).collect();
            if chunk.is_empty() {
                break;
            }
            let mut tasks = JoinSet::new();
            for (slot, delivery) in chunk.into_iter().enumerate() {
                let sink = self.sink.clone();
                tasks.spawn(async move {
                    let outgoing = Outgoing {
                        webhook_id: &delivery.webhook_id,
                        body: &delivery.body,
                    };
                    let result = sink.deliver(outgoing).await;
                    (slot, delivery, result)
                });
            }
            let mut done: Vec<(usize, Delivery, Result<(), SinkError>)> = Vec::new();
            while let Some(joined) = tasks.join_next().await {
                if let Ok(d) = joined {
                    done.push(d);
                }
            }
            done.sort_by_key(|(slot, _, _)| *slot);
            let now = clock.now();
            let mut seen: Vec<(Signal, Option<String>)> = Vec::with_capacity(done.len());
            for (_, delivery, result) in done {
                let (attempt, signal) = self.attempt(&delivery, result, now);
                seen.push((signal, attempt_error(&attempt).map(String::from)));
                outcomes.push((delivery.outbox_id, attempt));
            }
            let seen_ref: Vec<(Signal, Option<&str>)> =
                seen.iter().map(|(s, e)| (*s, e.as_deref())).collect();
            changed |= health.after_round(&seen_ref, now);
            let failed = seen.iter().any(|(s, _)| *s != Signal::Delivered);
            if health.state == SinkState::Paused || (failed && concurrency == 1) {
                break;
            }
        }
        let unsent: Vec<i64> = rows.map(|d| d.outbox_id).collect();
        // One transaction for the whole round; rows not tried are released, not counted.
        if let Err(e) = self.store.finish_many(outcomes, unsent).await {
            // The rows stay claimed until the next start, then are delivered again.
            tracing::error!(sink = %self.name, error = %e, "cannot record deliveries");
        }
        if changed {
            self.announce(health, clock);
            self.publish(health, clock).await;
        }
    }

    /// One probe of a paused sink: the failed row due first (else a fresh one), alone.
    async fn probe(&self, health: &mut Health, clock: &Clock, shutdown: &CancellationToken) {
        if let Some(max_age) = self.policy.max_age {
            let why = health
                .reason
                .clone()
                .unwrap_or_else(|| "the receiver was down".into());
            let suffix = format!(
                " (older than max_age {} while the sink was paused)",
                humantime::format_duration(max_age)
            );
            let before = clock.now().before(max_age);
            match self.store.expire(&self.name, before, why, suffix).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::error!(sink = %self.name, deliveries = n, max_age = %humantime::format_duration(max_age),
                        "deliveries dead-lettered: older than max_age while the receiver was down");
                    self.metrics
                        .deliveries
                        .get_or_create(&crate::telemetry::DeliveryLabel {
                            sink: self.name.clone(),
                            outcome: "dead",
                        })
                        .inc_by(n as u64);
                }
                Err(e) => {
                    tracing::error!(sink = %self.name, error = %e, "cannot expire old deliveries")
                }
            }
        }
        let delivery = match self.store.claim_probe(&self.name, clock.now()).await {
            Ok(Some(d)) => d,
            Ok(None) => {
                // Nothing waits: the next row to arrive is the probe.
                self.idle(clock, shutdown).await;
                return;
            }
            Err(e) => {
                tracing::error!(sink = %self.name, error = %e, "cannot read the outbox");
                pause(STORE_ERROR_PAUSE, shutdown).await;
                return;
            }
        };
        let result = self
            .sink
            .deliver(Outgoing {
                webhook_id: &delivery.webhook_id,
                body: &delivery.body,
            })
            .await;
        let now = clock.now();
        let (attempt, signal) = self.attempt(&delivery, result, now);
        let error = attempt_error(&attempt).map(String::from);
        if let Err(e) = self
            .store
            .finish_many(vec![(delivery.outbox_id, attempt)], Vec::new())
            .await
        {
            tracing::error!(sink = %self.name, error = %e, "cannot record deliveries");
        }
        if health.after_probe(signal, error.as_deref(), now) {
            match self.store.resume_sink(&self.name, now).await {
                Ok(n) => tracing::info!(sink = %self.name, due = n,
                    "the receiver answers again: deliveries held by the outage are due now"),
                Err(e) => {
                    tracing::error!(sink = %self.name, error = %e, "cannot resume deliveries")
                }
            }
        } else {
            tracing::debug!(sink = %self.name, next_probe_in = %humantime::format_duration(clock.until(health.until.unwrap_or(now))),
                "probe failed: the receiver is still down");
        }
        self.publish(health, clock).await;
    }

    /// What an attempt's result means for its row and for the sink (logged and counted here;
    /// stored by the caller).
    fn attempt(
        &self,
        d: &Delivery,
        result: Result<(), SinkError>,
        now: Timestamp,
    ) -> (Attempt, Signal) {
        let (attempt, signal) = match result {
            Ok(()) => {
                tracing::debug!(sink = %self.name, event = %d.event_id, "delivered");
                (Attempt::Delivered, Signal::Delivered)
            }
            Err(err) => {
                let facts = RowFacts {
                    attempts: d.attempts,
                    created_at: d.created_at,
                    next_attempt_at: d.next_attempt_at,
                    now,
                };
                let verdict = decide(&err, &facts, &self.policy);
                let elapsed_ms = err.elapsed.as_millis() as u64;
                match &verdict.row {
                    Attempt::Dead { error, .. } => {
                        tracing::error!(sink = %self.name, event = %d.event_id, error = %error, elapsed_ms, "delivery dead-lettered")
                    }
                    Attempt::Retry { at, error, .. } => {
                        let wait = Duration::from_secs(now.until(*at).as_secs());
                        tracing::warn!(sink = %self.name, event = %d.event_id, error = %error, elapsed_ms,
                            retry_in = %humantime::format_duration(wait), "delivery failed");
                    }
                    Attempt::Probed { error, .. } => {
                        tracing::debug!(sink = %self.name, event = %d.event_id, error = %error, elapsed_ms, "probe failed")
                    }
                    Attempt::Delivered => {}
                }
                (verdict.row, verdict.signal)
            }
        };
        let outcome = match &attempt {
            Attempt::Delivered => "delivered",
            Attempt::Retry { .. } | Attempt::Probed { .. } => "retry",
            Attempt::Dead { .. } => "dead",
        };
        self.metrics.delivery(&self.name, outcome);
        (attempt, signal)
    }

    /// Logs a change of the sink's state (the gauge follows in [`Worker::publish`]).
    fn announce(&self, health: &Health, clock: &Clock) {
        let reason = health.reason.as_deref().unwrap_or("");
        match health.state {
            SinkState::Paused => {
                let next = clock.until(health.until.unwrap_or_default());
                if health.gone {
                    tracing::error!(sink = %self.name, reason, pause = %humantime::format_duration(GONE_PAUSE),
                        "receiver answered 410 Gone: the sink is paused; fix its url and restart or reload");
                } else {
                    tracing::warn!(sink = %self.name, reason, first_probe_in = %humantime::format_duration(next),
                        "the receiver looks down: the sink is paused, one probe at a time until it answers");
                }
            }
            SinkState::Failing => {
                tracing::info!(sink = %self.name, reason, "the receiver is failing")
            }
            SinkState::Up => tracing::info!(sink = %self.name, "the receiver answers again"),
        }
    }

    /// Records the sink's state for `feedwire deliveries` and the next start, and sets its gauge.
    async fn publish(&self, health: &Health, clock: &Clock) {
        self.metrics.sink_state(&self.name, health.state.as_str());
        if let Err(e) = self
            .store
            .set_sink_status(health.status(&self.name, clock.now()))
            .await
        {
            tracing::warn!(sink = %self.name, error = %e, "cannot record the sink's state");
        }
    }

    async fn idle(&self, clock: &Clock, shutdown: &CancellationToken) {
        let recheck = match self.store.lease() {
            Some(_) => SHARED_RECHECK,
            None => IDLE_RECHECK,
        };
        let wait = match self.store.next_due(&self.name).await {
            Ok(Some(at)) => clock.until(at).min(recheck),
            _ => recheck,
        };
        tokio::select! {
            _ = self.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled() => {}
        }
    }
}

fn attempt_error(a: &Attempt) -> Option<&str> {
    match a {
        Attempt::Delivered => None,
        Attempt::Retry { error, .. }
        | Attempt::Dead { error, .. }
        | Attempt::Probed { error, .. } => Some(error),
    }
}

async fn pause(d: Duration, shutdown: &CancellationToken) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = shutdown.cancelled() => {}
    }
}

#[cfg(test)]
mod tests;
