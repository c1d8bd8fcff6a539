//! The retry decision and the sink's health, table-driven; the worker's timing against a
//! real store with `tokio::time::pause()`, behind a scripted sink.

use std::collections::HashMap;
use std::sync::Mutex;

use super::*;
use crate::sinks::{DeliverFuture, TransportKind};
use crate::store::{DedupSettings, FeedSpec, IngestBatch, NewItem, PollRecord, PollStatus};

const SEC: i64 = 1000;

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

fn policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 15,
        max_age: Some(Duration::from_secs(72 * 3600)),
        schedule: Vec::new(),
    }
}

fn err(fault: Fault, retry_after: Option<u64>) -> SinkError {
    SinkError {
        fault,
        retry_after: retry_after.map(Duration::from_secs),
        elapsed: Duration::from_millis(3),
        message: "it failed".into(),
    }
}

/// What [`decide`] should answer, without the jittered retry time.
#[derive(Debug, Clone, PartialEq)]
enum Row {
    /// Retried after exactly this many seconds (a `Retry-After`).
    RetryIn(i64),
    /// Retried on the schedule's step for this attempt (jittered).
    RetryOnSchedule,
    Dead,
    /// Not counted: a probe ahead of the row's time into a receiver still down.
    Probed,
}

fn row_of(v: &Verdict, now: i64) -> (Row, bool) {
    match &v.row {
        Attempt::Retry { at, outage, .. } => {
            let step = RETRY_SCHEDULE[0].as_millis() as i64;
            let d = at.as_millis() - now;
            if d % SEC == 0 && !(step / 2..=step).contains(&d) {
                (Row::RetryIn(d / SEC), *outage)
            } else {
                (Row::RetryOnSchedule, *outage)
            }
        }
        Attempt::Dead { .. } => (Row::Dead, false),
        Attempt::Probed { .. } => (Row::Probed, true),
        Attempt::Delivered => panic!("a failure is never delivered"),
    }
}

/// (fault, retry-after s, attempts before, due at, expected row, outage flag, signal)
type Case = (Fault, Option<u64>, u32, i64, Row, bool, Signal);

#[test]
fn each_fault_has_one_meaning() {
    use Fault::*;
    use Row::*;
    use Signal as S;
    let now = 10 * SEC;
    let cases: &[Case] = &[
        (Status(400), None, 0, 0, Dead, false, S::Answered),
        (Status(401), None, 3, 0, Dead, false, S::Answered),
        (Status(404), None, 0, 0, Dead, false, S::Answered),
        (Status(301), None, 0, 0, Dead, false, S::Answered),
        (Status(408), None, 0, 0, RetryOnSchedule, false, S::Neutral),
        (Status(429), None, 0, 0, RetryOnSchedule, false, S::Neutral),
        (Status(429), Some(7), 0, 0, RetryIn(7), false, S::Neutral),
        (Status(503), Some(1), 1, 0, RetryIn(1), false, S::Neutral),
        (Status(503), Some(0), 0, 0, RetryIn(0), false, S::Neutral),
        (Status(500), None, 0, 0, RetryOnSchedule, true, S::Down),
        (Status(502), None, 0, 0, RetryOnSchedule, true, S::Down),
        (Status(410), None, 0, 0, RetryOnSchedule, true, S::Gone),
        (
            Transport(TransportKind::Connect),
            None,
            0,
            0,
            RetryOnSchedule,
            true,
            S::Down,
        ),
        (
            Transport(TransportKind::Closed),
            None,
            0,
            0,
            RetryOnSchedule,
            true,
            S::Down,
        ),
        (
            Transport(TransportKind::Timeout),
            None,
            0,
            0,
            RetryOnSchedule,
            true,
            S::Down,
        ),
        (
            Transport(TransportKind::Protocol),
            None,
            0,
            0,
            RetryOnSchedule,
            true,
            S::Down,
        ),
        (
            Transport(TransportKind::Io),
            None,
            0,
            0,
            RetryOnSchedule,
            true,
            S::Down,
        ),
        (
            Broker(BrokerFault::Busy),
            Some(2),
            0,
            0,
            RetryIn(2),
            false,
            S::Neutral,
        ),
        (
            Broker(BrokerFault::Rejected),
            None,
            0,
            0,
            Dead,
            false,
            S::Answered,
        ),
        (
            Broker(BrokerFault::Denied),
            None,
            0,
            0,
            Dead,
            false,
            S::Answered,
        ),
        (
            Broker(BrokerFault::NoDestination),
            None,
            0,
            0,
            RetryOnSchedule,
            true,
            S::Gone,
        ),
        // A probe ahead of its row's own time: still down, so the row is left as it was …
        (
            Transport(TransportKind::Connect),
            None,
            2,
            now + 60 * SEC,
            Probed,
            true,
            S::Down,
        ),
        (Status(503), None, 2, now + 60 * SEC, Probed, true, S::Down),
        (Status(410), None, 2, now + 60 * SEC, Probed, true, S::Gone),
        // … but an answer on the merits counts as the row's attempt.
        (
            Status(400),
            None,
            2,
            now + 60 * SEC,
            Dead,
            false,
            S::Answered,
        ),
        (
            Status(503),
            Some(1),
            2,
            now + 60 * SEC,
            RetryIn(1),
            false,
            S::Neutral,
        ),
        // max_attempts: the 15th attempt is the last.
        (Status(503), None, 14, 0, Dead, false, S::Down),
        (
            Transport(TransportKind::Connect),
            None,
            13,
            0,
            RetryOnSchedule,
            true,
            S::Down,
        ),
    ];
    for (i, (fault, ra, attempts, due, row, outage, signal)) in cases.iter().enumerate() {
        let facts = RowFacts {
            attempts: *attempts,
            created_at: ts(0),
            next_attempt_at: ts(*due),
            now: ts(now),
        };
        let v = decide(&err(*fault, *ra), &facts, &policy());
        assert_eq!(v.signal, *signal, "case {i}: {fault:?}");
        assert_eq!(
            row_of(&v, now),
            (row.clone(), *outage),
            "case {i}: {fault:?} {ra:?}"
        );
    }
}

#[test]
fn retry_after_is_capped_and_max_age_ends_retries_with_the_last_error() {
    let facts = |now| RowFacts {
        attempts: 1,
        created_at: ts(0),
        next_attempt_at: ts(0),
        now: ts(now),
    };
    let v = decide(
        &err(Fault::Status(503), Some(1 << 30)),
        &facts(0),
        &policy(),
    );
    assert!(matches!(v.row, Attempt::Retry { at, .. } if at == ts(0).after(MAX_RETRY_AFTER)));
    let three_days = 72 * 3600 * SEC;
    let v = decide(
        &err(Fault::Status(500), None),
        &facts(three_days),
        &policy(),
    );
    let Attempt::Dead { error, status } = v.row else {
        panic!("older than max_age is dead: {v:?}");
    };
    assert_eq!(status, Some(500));
    assert!(
        error.starts_with("it failed (older than max_age"),
        "{error}"
    );
    let v = decide(
        &err(Fault::Status(500), None),
        &facts(0),
        &RetryPolicy::forever(),
    );
    assert!(
        matches!(v.row, Attempt::Retry { .. }),
        "a log sink never gives up"
    );
}

#[test]
fn retry_delays_grow_and_stay_within_the_schedule() {
    for attempt in 1..=20 {
        let d = policy().delay(attempt);
        let step = RETRY_SCHEDULE[(attempt as usize - 1).min(RETRY_SCHEDULE.len() - 1)];
        assert!(d >= step / 2 && d <= step, "attempt {attempt}: {d:?}");
    }
}

#[test]
fn health_tells_a_failed_delivery_from_a_receiver_that_is_down() {
    use Signal::*;
    let cap = Duration::from_secs(8);
    // (rounds, each a list of signals; the state after the last)
    let cases: &[(&[&[Signal]], SinkState)] = &[
        (&[&[Delivered, Down, Delivered, Delivered]], SinkState::Up),
        (&[&[Answered, Down, Down, Down]], SinkState::Up),
        (&[&[Neutral, Neutral, Neutral, Neutral]], SinkState::Up),
        (
            &[&[Neutral], &[Neutral], &[Neutral], &[Neutral], &[Neutral]],
            SinkState::Up,
        ),
        (&[&[Down, Down, Down, Down]], SinkState::Paused),
        (&[&[Down, Neutral]], SinkState::Failing),
        (&[&[Down], &[Down]], SinkState::Failing),
        (&[&[Down], &[Down], &[Down]], SinkState::Paused),
        (
            &[&[Down], &[Delivered], &[Down], &[Down]],
            SinkState::Failing,
        ),
        (&[&[Down], &[Neutral], &[Down], &[Down]], SinkState::Paused),
        (&[&[Delivered, Gone]], SinkState::Paused),
        (&[&[Down, Down], &[Delivered]], SinkState::Up),
    ];
    for (i, (rounds, expected)) in cases.iter().enumerate() {
        let mut h = Health::new(cap);
        for round in rounds.iter() {
            let seen: Vec<(Signal, Option<&str>)> =
                round.iter().map(|s| (*s, Some("no answer"))).collect();
            h.after_round(&seen, ts(0));
        }
        assert_eq!(h.state, *expected, "case {i}: {rounds:?}");
    }
}

#[test]
fn probes_back_off_to_the_cap_and_an_answer_resumes() {
    let mut h = Health::new(Duration::from_secs(8));
    h.after_round(&[(Signal::Down, Some("refused")); 4], ts(0));
    assert_eq!(h.state, SinkState::Paused);
    assert!(!h.gone);
    let mut now = ts(0);
    let mut waits = Vec::new();
    for _ in 0..6 {
        let until = h.until.expect("a paused sink knows its next probe");
        waits.push(now.until(until).as_secs());
        now = until;
        assert!(!h.after_probe(Signal::Down, Some("refused"), now));
    }
    assert_eq!(waits, [1, 2, 4, 8, 8, 8]);
    assert_eq!(
        h.since,
        Some(ts(0)),
        "the outage started at the first failure"
    );
    assert!(
        h.after_probe(Signal::Neutral, None, now),
        "a 503 with Retry-After is an answer"
    );
    assert_eq!(h.state, SinkState::Up);
    assert_eq!(h.until, None);

    let mut h = Health::new(Duration::from_secs(8));
    h.after_round(&[(Signal::Gone, Some("receiver answered HTTP 410"))], ts(0));
    assert!(h.gone && h.state == SinkState::Paused);
    assert_eq!(h.until, Some(ts(0).after(GONE_PAUSE)));
    assert_eq!(h.reason.as_deref(), Some("receiver answered HTTP 410"));
}

#[test]
fn a_paused_sink_stays_paused_across_a_restart_and_probes_at_once() {
    let saved = SinkStatus {
        sink: "hook".into(),
        state: SinkState::Paused,
        reason: Some("cannot reach".into()),
        since: Some(ts(5)),
        until: Some(ts(1_000_000)),
        updated_at: ts(6),
    };
    let h = Health::restored(Some(&saved), DEFAULT_PROBE_INTERVAL, ts(77));
    assert_eq!(h.state, SinkState::Paused);
    assert_eq!((h.since, h.until), (Some(ts(5)), Some(ts(77))));
    let failing = SinkStatus {
        state: SinkState::Failing,
        ..saved
    };
    assert_eq!(
        Health::restored(Some(&failing), DEFAULT_PROBE_INTERVAL, ts(77)).state,
        SinkState::Up
    );
}

// ---- the worker, on tokio's paused clock ------------------------------------------------------

/// When a request came, and its webhook-id.
type Call = (Duration, String);

/// Answers request `n` (1-based, per webhook-id) made at `at` after the start.
type Script = dyn Fn(&str, usize, Duration) -> Result<(), SinkError> + Send + Sync;

/// A sink that answers from a script and records when each request came and how many were
/// in flight.
struct Scripted {
    script: Box<Script>,
    start: tokio::time::Instant,
    calls: Mutex<Vec<Call>>,
    per_id: Mutex<HashMap<String, usize>>,
    in_flight: Mutex<(usize, usize)>,
    delivered: Mutex<usize>,
    /// Notified once `want` events were accepted, or `want_calls` requests made.
    done: Notify,
    want: usize,
    want_calls: usize,
    concurrency: usize,
}

impl Scripted {
    fn new(
        want: usize,
        concurrency: usize,
        script: impl Fn(&str, usize, Duration) -> Result<(), SinkError> + Send + Sync + 'static,
    ) -> Arc<Scripted> {
        Arc::new(Scripted {
            script: Box::new(script),
            start: tokio::time::Instant::now(),
            calls: Mutex::new(Vec::new()),
            per_id: Mutex::new(HashMap::new()),
            in_flight: Mutex::new((0, 0)),
            delivered: Mutex::new(0),
            done: Notify::new(),
            want,
            want_calls: usize::MAX,
            concurrency,
        })
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("lock").clone()
    }
}

impl Sink for Scripted {
    fn deliver<'a>(&'a self, event: Outgoing<'a>) -> DeliverFuture<'a> {
        Box::pin(async move {
            let at = self.start.elapsed();
            let n = {
                let mut per = self.per_id.lock().expect("lock");
                let n = per.entry(event.webhook_id.to_string()).or_default();
                *n += 1;
                *n
            };
            {
                let mut f = self.in_flight.lock().expect("lock");
                f.0 += 1;
                f.1 = f.1.max(f.0);
            }
            let calls = {
                let mut c = self.calls.lock().expect("lock");
                c.push((at, event.webhook_id.to_string()));
                c.len()
            };
            if calls >= self.want_calls {
                self.done.notify_one();
            }
            // Requests take a little while, so that overlapping ones are seen overlapping.
            tokio::time::sleep(Duration::from_millis(10)).await;
            self.in_flight.lock().expect("lock").0 -= 1;
            let result = (self.script)(event.webhook_id, n, at);
            if result.is_ok() {
                let mut d = self.delivered.lock().expect("lock");
                *d += 1;
                if *d >= self.want {
                    self.done.notify_one();
                }
            }
            result
        })
    }

    fn concurrency(&self) -> usize {
        self.concurrency
    }
}

/// A store in a temp dir with `n` events waiting for sink "hook".
async fn store_with(n: usize) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("feedwire.db")).expect("open store");
    let feeds = store
        .sync_feeds(vec![FeedSpec {
            name: "f".into(),
            url: "http://127.0.0.1:9/rss.xml".into(),
        }])
        .await
        .expect("sync feeds");
    let now = Timestamp::now();
    let items = (0..n)
        .map(|k| NewItem {
            id: ulid::Ulid::new().to_string(),
            key: format!("guid:{k}"),
            url: None,
            link: None,
            guid: Some(k.to_string()),
            title: Some(format!("Story {k}")),
            published_at: Some(now),
            content_source: Some("feed"),
            emitted: true,
            not_sent: None,
            fingerprint: None,
            new_sinks: vec!["hook".into()],
            duplicate_sinks: Vec::new(),
            revision: None,
            update_of: None,
            updated_sinks: Vec::new(),
        })
        .collect();
    store
        .ingest(IngestBatch {
            feed_id: feeds[0].id,
            poll: PollRecord {
                at: now,
                status: PollStatus::Ok,
                http_status: Some(200),
                error: None,
                errors_in_row: 0,
                next_poll_at: now.after(Duration::from_secs(60)),
                etag: None,
                last_modified: None,
                title: None,
                moved_to: None,
                rate: None,
                reason: None,
                event: None,
            },
            items,
            dedup: DedupSettings {
                near_duplicates: false,
                window: Duration::ZERO,
            },
            render: Box::new(|i, _, _| format!("{{\"n\":{i}}}")),
        })
        .await
        .expect("ingest");
    (dir, store)
}

fn start(
    store: &Store,
    sink: Arc<Scripted>,
    probe_interval: Duration,
    step: Duration,
) -> CancellationToken {
    let policy = RetryPolicy {
        schedule: vec![step],
        ..policy()
    };
    start_with(store, sink, probe_interval, policy)
}

fn start_with(
    store: &Store,
    sink: Arc<Scripted>,
    probe_interval: Duration,
    policy: RetryPolicy,
) -> CancellationToken {
    let stop = CancellationToken::new();
    let worker = Worker {
        name: "hook".into(),
        sink,
        store: store.clone(),
        policy,
        probe_interval,
        wake: Arc::new(Notify::new()),
        metrics: Arc::new(Metrics::new()),
    };
    tokio::spawn(worker.run(stop.clone()));
    stop
}

fn refused(elapsed: Duration) -> SinkError {
    SinkError {
        fault: Fault::Transport(TransportKind::Connect),
        retry_after: None,
        elapsed,
        message: "cannot reach the receiver: connection refused".into(),
    }
}

#[tokio::test(start_paused = true)]
async fn a_receiver_that_is_down_gets_one_probe_at_a_time_then_everything_at_once() {
    const DOWN_FOR: Duration = Duration::from_secs(60);
    let (_dir, store) = store_with(10).await;
    let sink = Scripted::new(10, 4, |_, _, at| {
        if at < DOWN_FOR {
            Err(refused(Duration::from_millis(1)))
        } else {
            Ok(())
        }
    });
    let stop = start(
        &store,
        sink.clone(),
        Duration::from_secs(8),
        Duration::from_secs(20),
    );
    sink.done.notified().await;
    stop.cancel();

    let calls = sink.calls();
    let (first, rest): (Vec<&Call>, Vec<&Call>) = calls.iter().partition(|(at, _)| at.is_zero());
    assert_eq!(
        first.len(),
        4,
        "one round at full concurrency finds the receiver down"
    );
    let run_up: Vec<&String> = first.iter().map(|(_, id)| id).collect();
    let (probes, catch_up): (Vec<&Call>, Vec<&Call>) =
        rest.into_iter().partition(|(at, _)| *at <= DOWN_FOR);
    let times: Vec<u64> = probes.iter().map(|(at, _)| at.as_secs()).collect();
    // The first probe after 1 s, then twice as long each time, capped at probe_interval.
    assert_eq!(&times[..6], &[1, 3, 7, 15, 23, 31], "{times:?}");
    assert!(times.windows(2).all(|w| w[1] - w[0] <= 8), "{times:?}");
    for (_, id) in &probes {
        assert!(
            run_up.contains(&id),
            "each probe is a row that already failed"
        );
    }
    // The first probe after the receiver is back succeeds, and the rest follow at once.
    let back = catch_up.first().expect("a probe after the outage").0;
    assert!(back - DOWN_FOR <= Duration::from_secs(8), "{back:?}");
    assert!(
        catch_up
            .iter()
            .all(|(at, _)| *at - back < Duration::from_millis(100)),
        "everything held by the outage is due at once: {catch_up:?}"
    );
    assert_eq!(*sink.delivered.lock().expect("lock"), 10);
    let states = store.reader().sink_statuses().await.expect("states");
    assert_eq!(states[0].state, SinkState::Up);
}

#[tokio::test(start_paused = true)]
async fn a_receiver_asking_to_call_back_keeps_full_concurrency() {
    let (_dir, store) = store_with(25).await;
    let busy = |_: &str, n: usize, _| {
        if n <= 2 {
            Err(SinkError {
                fault: Fault::Status(503),
                retry_after: Some(Duration::from_secs(1)),
                elapsed: Duration::from_millis(1),
                message: "receiver answered HTTP 503".into(),
            })
        } else {
            Ok(())
        }
    };
    let sink = Scripted::new(25, 4, busy);
    let stop = start(
        &store,
        sink.clone(),
        DEFAULT_PROBE_INTERVAL,
        Duration::from_secs(20),
    );
    sink.done.notified().await;
    stop.cancel();
    let calls = sink.calls();
    assert_eq!(calls.len(), 75, "three attempts per row, no more");
    let last = calls.iter().map(|(at, _)| *at).max().expect("calls");
    assert!(
        last < Duration::from_secs(3),
        "Retry-After: 1, twice, is about two seconds: {last:?}"
    );
    assert!(sink.in_flight.lock().expect("lock").1 <= 4);
    let first_tries = calls
        .iter()
        .filter(|(at, _)| *at < Duration::from_secs(1))
        .count();
    assert_eq!(
        first_tries, 25,
        "every row's first attempt went out at once"
    );
}

#[tokio::test(start_paused = true)]
async fn early_probes_do_not_count_as_the_rows_attempts() {
    let (_dir, store) = store_with(3).await;
    // Never up: far more probes than the rows' own schedule (60 s steps) allows attempts.
    let mut sink = Scripted::new(3, 1, |_, _, _| Err(refused(Duration::from_millis(1))));
    Arc::get_mut(&mut sink).expect("not shared yet").want_calls = 150;
    let stop = start(
        &store,
        sink.clone(),
        Duration::from_secs(2),
        Duration::from_secs(60),
    );
    sink.done.notified().await;
    stop.cancel();
    let elapsed = sink.calls().last().expect("calls").0;
    let pending = store
        .reader()
        .deliveries_report(Some("hook".into()), false, 10)
        .await
        .expect("report");
    assert_eq!(pending.len(), 3, "nothing dead-lettered by probing");
    let counted: u32 = pending.iter().map(|r| r.attempts).sum();
    // Each row's own attempts: the first, then one per step of 30 to 60 s at the most.
    let allowed = 3 * (1 + elapsed.as_secs() / 30) as u32;
    assert!(
        counted <= allowed,
        "{counted} counted attempts of 150 requests in {elapsed:?}"
    );
    assert!(counted >= 3);
}

#[tokio::test(start_paused = true)]
async fn deliveries_older_than_max_age_die_while_paused_with_the_receivers_last_error() {
    let (_dir, store) = store_with(6).await;
    let sink = Scripted::new(6, 4, |_, _, _| Err(refused(Duration::from_millis(1))));
    let policy = RetryPolicy {
        max_age: Some(Duration::from_secs(30)),
        ..policy()
    };
    let start = tokio::time::Instant::now();
    let stop = start_with(&store, sink.clone(), Duration::from_secs(8), policy);
    let mut dead = 0;
    for _ in 0..120 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let backlog = store.reader().backlog().await.expect("backlog");
        dead = backlog[0].dead;
        if dead == 6 {
            break;
        }
    }
    assert_eq!(dead, 6, "every row dead-lettered once older than max_age");
    // Seen dead at this (paused) time: the worker goes on probing every 8 s if it still
    // sends expired rows, so three probe intervals more would show it.
    let seen_dead = start.elapsed();
    tokio::time::sleep(Duration::from_secs(24)).await;
    stop.cancel();
    let calls = sink.calls();
    assert!(
        calls.iter().all(|(at, _)| *at <= seen_dead),
        "nothing sent after the rows expired (seen dead at {seen_dead:?}): {calls:?}"
    );
    let report = store
        .reader()
        .deliveries_report(Some("hook".into()), true, 10)
        .await
        .expect("dead letters");
    for r in &report {
        let error = r.last_error.as_deref().unwrap_or("");
        assert!(
            error.starts_with("cannot reach the receiver")
                && error.contains("older than max_age 30s"),
            "{error}"
        );
    }
}
