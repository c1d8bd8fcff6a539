//! Delivery workers: one per sink, claiming due outbox rows, handing them to the sink and
//! recording the outcome — acknowledged only after the sink accepted the event.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::sinks::{Outgoing, Sink, SinkError};
use crate::store::{Attempt, Delivery, Store, Timestamp};

fn now_ms() -> i64 {
    Timestamp::now().as_millis()
}
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

/// Wait after a database error before the worker tries again.
const STORE_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// Whether an HTTP answer may succeed if sent again: timeouts (408), rate limits (429) and
/// server errors (5xx). Other statuses mean the request itself is refused.
pub fn status_is_retryable(status: u16) -> bool {
    status == 408 || status == 429 || status >= 500
}

/// How long a sink whose receiver answered 410 Gone stays paused (unless restarted).
pub const GONE_PAUSE: Duration = Duration::from_secs(3600);

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

/// Decides once what a failed attempt means: retry at a time, or dead letter.
/// `attempts` counts this attempt too.
pub fn decide(
    err: &SinkError,
    attempts: u32,
    created_at: i64,
    now: i64,
    policy: &RetryPolicy,
) -> Attempt {
    let status = err.status();
    let error = err.to_string();
    match err {
        SinkError::Permanent { .. } => Attempt::Dead { status, error },
        SinkError::Retryable { retry_after, .. } => {
            if attempts >= policy.max_attempts {
                return Attempt::Dead {
                    status,
                    error: format!("{error} (gave up after {attempts} attempts)"),
                };
            }
            let delay = match retry_after {
                Some(d) => (*d).min(MAX_RETRY_AFTER),
                None => policy.delay(attempts),
            };
            let at = Timestamp::from_millis(now + delay.as_millis() as i64);
            if let Some(max_age) = policy.max_age
                && at.as_millis() - created_at > max_age.as_millis() as i64
            {
                let age = humantime::format_duration(max_age);
                return Attempt::Dead {
                    status,
                    error: format!("{error} (older than max_age {age})"),
                };
            }
            Attempt::Retry { at, status, error }
        }
    }
}

/// Drains one sink's outbox rows until `shutdown`.
pub struct Worker {
    pub name: String,
    pub sink: Arc<dyn Sink>,
    pub store: Store,
    pub policy: RetryPolicy,
    /// Poked when new rows for this sink are stored, so delivery starts at once.
    pub wake: Arc<Notify>,
    pub metrics: Arc<Metrics>,
}

impl Worker {
    pub async fn run(self, shutdown: CancellationToken) {
        let concurrency = self.sink.concurrency().max(1);
        // While the receiver fails, the whole sink waits for the failed row's retry time,
        // then sends one probe; full concurrency resumes after a success.
        let mut failing = false;
        let mut paused_until: Option<i64> = None;
        while !shutdown.is_cancelled() {
            if let Some(until) = paused_until.take() {
                pause(
                    Duration::from_millis((until - now_ms()).max(0) as u64),
                    &shutdown,
                )
                .await;
                continue;
            }
            let limit = if failing {
                1
            } else {
                self.sink.batch_size().max(concurrency)
            };
            let batch = match self.store.claim(&self.name, limit).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(sink = %self.name, error = %e, "cannot read the outbox");
                    pause(STORE_ERROR_PAUSE, &shutdown).await;
                    continue;
                }
            };
            if batch.is_empty() {
                self.idle(&shutdown).await;
                continue;
            }
            let mut any_ok = false;
            let mut retry_at: Option<i64> = None;
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
                let mut failed = false;
                for (_, delivery, result) in done {
                    if matches!(&result, Err(e) if e.status() == Some(410)) {
                        tracing::error!(sink = %self.name, pause = %humantime::format_duration(GONE_PAUSE),
                            "receiver answered 410 Gone: the sink is paused; fix its url and restart or reload");
                        paused_until = Some(now_ms() + GONE_PAUSE.as_millis() as i64);
                    }
                    let attempt = self.attempt(&delivery, result);
                    match &attempt {
                        Attempt::Delivered => any_ok = true,
                        Attempt::Retry { at, .. } => {
                            failed = true;
                            let at = at.as_millis();
                            retry_at = Some(retry_at.map_or(at, |r| r.min(at)));
                        }
                        Attempt::Dead { .. } => failed = true,
                    }
                    outcomes.push((delivery.outbox_id, attempt));
                }
                if failed && concurrency == 1 {
                    break;
                }
            }
            let unsent: Vec<i64> = rows.map(|d| d.outbox_id).collect();
            // One transaction for the whole round; rows not tried are released, not counted.
            if let Err(e) = self.store.finish_many(outcomes, unsent).await {
                // The rows stay claimed until the next start, then are delivered again.
                tracing::error!(sink = %self.name, error = %e, "cannot record deliveries");
            }
            failing = retry_at.is_some() && !any_ok;
            if failing && paused_until.is_none() {
                paused_until = retry_at;
            }
        }
    }

    /// What an attempt's result means for its row (logged and counted here; stored by the
    /// caller with the rest of the round).
    fn attempt(&self, d: &Delivery, result: Result<(), SinkError>) -> Attempt {
        let attempt = match result {
            Ok(()) => {
                tracing::debug!(sink = %self.name, event = %d.event_id, "delivered");
                Attempt::Delivered
            }
            Err(err) => {
                let attempt = decide(
                    &err,
                    d.attempts + 1,
                    d.created_at.as_millis(),
                    now_ms(),
                    &self.policy,
                );
                match &attempt {
                    Attempt::Dead { error, .. } => {
                        tracing::error!(sink = %self.name, event = %d.event_id, error = %error, "delivery dead-lettered")
                    }
                    Attempt::Retry { at, error, .. } => {
                        let wait =
                            Duration::from_secs(((at.as_millis() - now_ms()).max(0) / 1000) as u64);
                        tracing::warn!(sink = %self.name, event = %d.event_id, error = %error,
                            retry_in = %humantime::format_duration(wait), "delivery failed");
                    }
                    Attempt::Delivered => {}
                }
                attempt
            }
        };
        let outcome = match &attempt {
            Attempt::Delivered => "delivered",
            Attempt::Retry { .. } => "retry",
            Attempt::Dead { .. } => "dead",
        };
        self.metrics.delivery(&self.name, outcome);
        attempt
    }

    async fn idle(&self, shutdown: &CancellationToken) {
        let wait = match self.store.next_due(&self.name).await {
            Ok(Some(at)) => Timestamp::now().until(at).min(IDLE_RECHECK),
            _ => IDLE_RECHECK,
        };
        tokio::select! {
            _ = self.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled() => {}
        }
    }
}

async fn pause(d: Duration, shutdown: &CancellationToken) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = shutdown.cancelled() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retryable(retry_after: Option<Duration>) -> SinkError {
        SinkError::Retryable {
            status: Some(503),
            message: "HTTP status 503".into(),
            retry_after,
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 15,
            max_age: Some(Duration::from_secs(72 * 3600)),
            schedule: Vec::new(),
        }
    }

    #[test]
    fn permanent_failures_dead_letter_at_once() {
        let err = SinkError::Permanent {
            status: Some(400),
            message: "HTTP status 400".into(),
        };
        assert!(matches!(
            decide(&err, 1, 0, 0, &policy()),
            Attempt::Dead {
                status: Some(400),
                ..
            }
        ));
    }

    #[test]
    fn retry_after_is_honoured_and_capped() {
        let Attempt::Retry { at, .. } = decide(
            &retryable(Some(Duration::from_secs(7))),
            1,
            0,
            1000,
            &policy(),
        ) else {
            panic!("a 503 is retried");
        };
        assert_eq!(at.as_millis(), 8000);
        let Attempt::Retry { at, .. } = decide(
            &retryable(Some(Duration::from_secs(1 << 30))),
            1,
            0,
            0,
            &policy(),
        ) else {
            panic!("a 503 is retried");
        };
        assert_eq!(at.as_millis(), MAX_RETRY_AFTER.as_millis() as i64);
    }

    #[test]
    fn attempts_and_age_bound_retries() {
        assert!(matches!(
            decide(&retryable(None), 15, 0, 0, &policy()),
            Attempt::Dead { .. }
        ));
        let three_days = 72 * 3600 * 1000;
        assert!(matches!(
            decide(&retryable(None), 2, 0, three_days, &policy()),
            Attempt::Dead { .. }
        ));
    }

    #[test]
    fn retry_delays_grow_and_stay_within_the_schedule() {
        for attempt in 1..=20 {
            let d = policy().delay(attempt);
            let step = RETRY_SCHEDULE[(attempt as usize - 1).min(RETRY_SCHEDULE.len() - 1)];
            assert!(d >= step / 2 && d <= step, "attempt {attempt}: {d:?}");
        }
    }
}
