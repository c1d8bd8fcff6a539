//! The poll stage: one conditional GET of a due feed, its parse, and the cheap check of which
//! entries the store already knows. A poll's result is one [`PollOutcome`]; what follows from
//! it — the record kept in the store, when the feed is polled next, the feed events, the
//! feed's state for its next poll — are pure functions of it ([`record`], [`event_kind`],
//! [`apply`]), tested without IO.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;
use url::Url;

use crate::app::Shared;
use crate::config::{self, Config};
use crate::fetch::{Access, FetchError, Fetched, Validators};
use crate::ingest::Batch;
use crate::model::{EventType, FeedItem, Timestamp};
use crate::parse::{Headers, parse_response};
use crate::process;
use crate::scheduler::{self, FeedState, Why};
use crate::store::{FeedEvent, PollRecord, PollStatus};
use crate::websub::{self, Distribution};

/// Failed polls in a row after which sinks that ask hear that a feed is failing.
pub const FAILING_AFTER: u32 = 3;

/// Feeds of a host that asked to wait resume spread over this much after the pause.
pub const HOST_PAUSE_SPREAD: Duration = Duration::from_secs(30);

/// A publisher's wish about how often to poll, and where it was read.
pub type Hint = (Duration, &'static str);

/// What one poll of a feed came to.
#[derive(Debug, Clone, PartialEq)]
pub enum PollOutcome {
    /// 304: nothing changed since the validators were issued.
    NotModified {
        validators: Validators,
        publisher: Option<Hint>,
    },
    /// The feed was read (200); `read.new` may be empty.
    Items(Read),
    /// The feed was read at a new address after permanent redirects (301/308 all the way).
    Moved { to: Url, read: Read },
    /// The origin asked every client to wait (429/503 with `Retry-After`), this poll or an
    /// earlier request: not the feed's fault.
    HostPaused { until: Timestamp },
    /// 410: the publisher removed the feed.
    Gone,
    /// Anything else that kept the feed from being read.
    Failed {
        http_status: Option<u16>,
        error: String,
        /// The server's `Retry-After`, when it gave one with its error.
        retry_after: Option<Duration>,
    },
}

/// A feed document that was fetched and parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Read {
    pub http_status: u16,
    pub validators: Validators,
    pub title: Option<String>,
    pub publisher: Option<Hint>,
    /// Entries the store does not know, oldest first.
    pub new: Vec<FeedItem>,
    /// Known entries whose title or text changed, with their stored ids.
    pub updates: Vec<(FeedItem, String)>,
}

impl PollOutcome {
    pub fn status(&self) -> PollStatus {
        match self {
            PollOutcome::NotModified { .. } => PollStatus::NotModified,
            PollOutcome::Items(_) | PollOutcome::Moved { .. } => PollStatus::Ok,
            PollOutcome::Gone => PollStatus::Gone,
            PollOutcome::HostPaused { .. } | PollOutcome::Failed { .. } => PollStatus::Error,
        }
    }

    /// The new entries and changed ones, when the poll found any.
    pub fn into_items(self) -> Option<Read> {
        match self {
            PollOutcome::Items(read) | PollOutcome::Moved { read, .. }
                if !read.new.is_empty() || !read.updates.is_empty() =>
            {
                Some(read)
            }
            _ => None,
        }
    }

    /// A 401 or 403 says authentication failed, with the key of `feed` to set or check
    /// (`polled`: the address asked, which differs from the feed's after a permanent move).
    pub fn for_feed(self, feed: &config::Feed, polled: &Url) -> PollOutcome {
        match self {
            PollOutcome::Failed {
                http_status: Some(status @ (401 | 403)),
                retry_after,
                ..
            } => PollOutcome::Failed {
                http_status: Some(status),
                error: crate::fetch::auth_failed(status, feed, polled),
                retry_after,
            },
            other => other,
        }
    }

    /// What a fetch error means for the poll.
    pub fn from_error(e: &FetchError) -> PollOutcome {
        match e {
            FetchError::HostPaused { until } => PollOutcome::HostPaused {
                until: Timestamp::from_millis(*until),
            },
            FetchError::Status { status: 410, .. } => PollOutcome::Gone,
            FetchError::Status {
                status,
                retry_after,
            } => PollOutcome::Failed {
                http_status: Some(*status),
                error: e.to_string(),
                retry_after: *retry_after,
            },
            _ => PollOutcome::Failed {
                http_status: e.status(),
                error: e.to_string(),
                retry_after: None,
            },
        }
    }
}

/// The record of a poll for the store: status, errors, validators, and when the feed is
/// polled next and why. `jitter` moves a computed delay at random (identity in tests).
pub fn record(
    outcome: &PollOutcome,
    state: &FeedState,
    poll: &config::Poll,
    now: Timestamp,
    jitter: impl Fn(Duration) -> Duration,
) -> PollRecord {
    let base = PollRecord {
        at: now,
        status: outcome.status(),
        http_status: None,
        error: None,
        errors_in_row: 0,
        next_poll_at: now,
        etag: None,
        last_modified: None,
        title: None,
        moved_to: None,
        rate: None,
        reason: None,
        event: None,
    };
    let success = |new: usize, publisher: Option<Hint>| {
        let rate = match state.last_ok_at {
            Some(previous) if now > previous => state.rate.observe(new, now.since(previous)),
            // A first poll lists the feed's backlog, which says nothing about its rate.
            _ => state.rate,
        };
        let (interval, why) = scheduler::next_interval(
            state.feed.interval,
            rate,
            poll.interval,
            poll.min_interval,
            poll.max_interval,
            publisher,
        );
        let delay = if why == Why::Fixed {
            interval
        } else {
            jitter(interval)
        };
        (now.after(delay), rate, why.describe(interval))
    };
    let failure = |http_status: Option<u16>, error: String| {
        let errors_in_row = state.errors_in_row + 1;
        let backoff = scheduler::error_backoff(errors_in_row, poll.max_interval);
        PollRecord {
            http_status,
            error: Some(error),
            errors_in_row,
            next_poll_at: now.after(backoff),
            reason: Some(format!(
                "error backoff: {errors_in_row} failed in a row, retried after {}",
                humantime::format_duration(Duration::from_secs(backoff.as_secs()))
            )),
            ..base.clone()
        }
    };
    match outcome {
        PollOutcome::NotModified {
            validators,
            publisher,
        } => {
            let (next_poll_at, rate, reason) = success(0, *publisher);
            PollRecord {
                http_status: Some(304),
                next_poll_at,
                etag: validators.etag.clone(),
                last_modified: validators.last_modified.clone(),
                rate: Some(rate),
                reason: Some(reason),
                ..base
            }
        }
        PollOutcome::Items(read) | PollOutcome::Moved { read, .. } => {
            let (next_poll_at, rate, reason) = success(read.new.len(), read.publisher);
            PollRecord {
                http_status: Some(read.http_status),
                next_poll_at,
                etag: read.validators.etag.clone(),
                last_modified: read.validators.last_modified.clone(),
                title: read.title.clone(),
                moved_to: match outcome {
                    PollOutcome::Moved { to, .. } => Some(to.to_string()),
                    _ => None,
                },
                rate: Some(rate),
                reason: Some(reason),
                ..base
            }
        }
        // Not the feed's fault: no error counted, polled again when the host allows.
        PollOutcome::HostPaused { until } => PollRecord {
            errors_in_row: state.errors_in_row,
            reason: Some("the host asked to wait (429/503 with Retry-After)".to_string()),
            next_poll_at: until.after(jitter(HOST_PAUSE_SPREAD)),
            ..failure(None, format!("the host asked to wait until {}", until.to_rfc3339().unwrap_or_default()))
        },
        PollOutcome::Gone => PollRecord {
            next_poll_at: Timestamp::NEVER,
            reason: Some("410 Gone: not polled any more".to_string()),
            ..failure(
                Some(410),
                "HTTP 410 Gone: the publisher removed this feed; it is no longer polled (remove it from the config)"
                    .to_string(),
            )
        },
        PollOutcome::Failed {
            http_status,
            error,
            retry_after,
        } => {
            let mut record = failure(*http_status, error.clone());
            if let (Some(wait), Some(status)) = (retry_after, http_status) {
                let asked = now.after((*wait).min(crate::fetch::MAX_HOST_PAUSE));
                if asked > record.next_poll_at {
                    record.next_poll_at = asked;
                    record.reason = Some(format!("HTTP {status} with Retry-After"));
                }
            }
            record
        }
    }
}

/// `feed.failing` when a feed reaches [`FAILING_AFTER`] failures in a row, `feed.recovered`
/// when it answers again after that; `errors_before` is the count before this poll.
pub fn event_kind(record: &PollRecord, errors_before: u32) -> Option<EventType> {
    match record.status {
        PollStatus::Error
            if record.errors_in_row == FAILING_AFTER && errors_before < FAILING_AFTER =>
        {
            Some(EventType::FeedFailing)
        }
        PollStatus::Ok | PollStatus::NotModified if errors_before >= FAILING_AFTER => {
            Some(EventType::FeedRecovered)
        }
        _ => None,
    }
}

/// The feed's state for its next poll after `record`: a failed poll keeps the validators,
/// a moved feed is polled at its new address.
pub fn apply(state: &mut FeedState, record: &PollRecord) {
    state.polls += 1;
    state.errors_in_row = record.errors_in_row;
    state.next_poll_at = Some(record.next_poll_at);
    if record.status.answered() {
        state.last_ok_at = Some(record.at);
        if record.etag.is_some() {
            state.validators.etag = record.etag.clone();
        }
        if record.last_modified.is_some() {
            state.validators.last_modified = record.last_modified.clone();
        }
    }
    if let Some(rate) = record.rate {
        state.rate = rate;
    }
    if let Some(to) = record.moved_to.as_deref().and_then(|u| Url::parse(u).ok()) {
        state.moved = (to != state.feed.url).then_some(to);
    }
}

/// The feed event of `record`, rendered, for the feed's sinks that list it.
pub fn feed_event(
    config: &Config,
    state: &FeedState,
    errors_before: u32,
    record: &PollRecord,
) -> Option<FeedEvent> {
    let kind = event_kind(record, errors_before)?;
    let sinks = process::sinks_for(config, &state.feed, kind);
    if sinks.is_empty() {
        return None;
    }
    let body = crate::sinks::payload::render_feed_event(&crate::sinks::payload::FeedEventInput {
        kind,
        id: &ulid::Ulid::new().to_string(),
        created: chrono::Utc::now(),
        feed: &state.feed,
        url: state.url().as_str(),
        error: record.error.as_deref(),
        http_status: record.http_status,
        failed_polls: if kind == EventType::FeedFailing {
            record.errors_in_row
        } else {
            errors_before
        },
    });
    Some(FeedEvent { kind, body, sinks })
}

/// The longer of two publisher hints, with where it came from.
fn publisher_hint(headers: Option<Duration>, feed: Option<Duration>) -> Option<Hint> {
    let from_headers = headers.map(|d| (d, "Cache-Control or Expires"));
    let from_feed = feed.map(|d| (d, "the feed's ttl or sy:updatePeriod"));
    match (from_headers, from_feed) {
        (Some(a), Some(b)) => Some(if a.0 >= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// Polls `state`'s feed once: fetch (or read what its WebSub hub `pushed`), parse, and
/// which entries are not known yet.
pub async fn poll(
    ctx: &Shared,
    config: &Config,
    state: &FeedState,
    pushed: Option<Distribution>,
) -> PollOutcome {
    let was_pushed = pushed.is_some();
    let fetched = match pushed {
        // A distribution is the feed's content, as a 200 would have brought it.
        Some(d) => Ok(Fetched::Body(Box::new(crate::fetch::Body {
            status: 200,
            url: state.url().clone(),
            content_type: d.content_type,
            content_location: None,
            validators: state.validators.clone(),
            bytes: d.body,
            moved_to: None,
            fresh_for: None,
            link: None,
        }))),
        None => {
            let access = match Access::resolve(&state.feed) {
                Ok(a) => a,
                Err(e) => {
                    return PollOutcome::Failed {
                        http_status: None,
                        error: e.to_string(),
                        retry_after: None,
                    };
                }
            };
            ctx.http
                .get_feed(
                    state.url(),
                    Some(&state.validators),
                    &access,
                    config.poll.timeout,
                    config.poll.max_feed_size,
                )
                .await
        }
    };
    let body = match fetched {
        Ok(Fetched::NotModified {
            validators,
            fresh_for,
        }) => {
            return PollOutcome::NotModified {
                validators,
                publisher: publisher_hint(fresh_for, None),
            };
        }
        Ok(Fetched::Body(body)) => body,
        Err(e) => return PollOutcome::from_error(&e).for_feed(&state.feed, state.url()),
    };
    let (url, identity, status) = (body.url.clone(), state.identity(), body.status);
    let parsed = ctx
        .blocking
        .run(move || {
            let headers = Headers {
                content_type: body.content_type.as_deref(),
                content_location: body.content_location.as_deref(),
            };
            parse_response(&body.bytes, headers, &url, identity).map(|p| (p, body))
        })
        .await;
    let (parsed, body) = match parsed {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => {
            return PollOutcome::Failed {
                http_status: Some(status),
                error: e.to_string(),
                retry_after: None,
            };
        }
        Err(e) => {
            return PollOutcome::Failed {
                http_status: Some(status),
                error: e.to_string(),
                retry_after: None,
            };
        }
    };
    if !was_pushed
        && let Some(subscriber) = &ctx.websub
        && websub::wanted(config, &state.feed)
        && let Some(found) = websub::discover(&body.bytes, body.link.as_deref(), &body.url)
    {
        subscriber.advertised(state.id, &state.feed.name, found);
    }
    let (new, updates) = match unseen(ctx, config, state, parsed.items).await {
        Ok(found) => found,
        Err(e) => {
            return PollOutcome::Failed {
                http_status: Some(status),
                error: format!("database: {e}"),
                retry_after: None,
            };
        }
    };
    let read = Read {
        http_status: body.status,
        validators: body.validators,
        title: parsed.title,
        publisher: publisher_hint(body.fresh_for, parsed.update_hint),
        new,
        updates,
    };
    match body.moved_to {
        Some(to) => PollOutcome::Moved { to, read },
        None => PollOutcome::Items(read),
    }
}

/// The entries the store does not know yet (the cheap check before any article work), and
/// the known ones whose title or text changed.
async fn unseen(
    ctx: &Shared,
    config: &Config,
    state: &FeedState,
    items: Vec<FeedItem>,
) -> Result<(Vec<FeedItem>, Vec<(FeedItem, String)>), crate::store::StoreError> {
    let keys: Vec<String> = items.iter().map(|i| i.key.0.clone()).collect();
    let known = ctx.store.known_items(state.id, keys).await?;
    // Revisions cost a text pass per known item: only worth it when a sink wants updates.
    let wants_updates = !process::sinks_for(config, &state.feed, EventType::ItemUpdated).is_empty();
    let (mut new, mut updates) = (Vec::new(), Vec::new());
    for item in items {
        match known.get(&item.key.0) {
            None => new.push(item),
            Some(stored) if wants_updates => {
                if stored
                    .revision
                    .as_ref()
                    .is_some_and(|r| *r != process::revision_of(&item))
                {
                    updates.push((item, stored.id.clone()));
                }
            }
            Some(_) => {}
        }
    }
    Ok((new, updates))
}

/// Logs what a poll came to, with its metric.
fn log(ctx: &Shared, state: &FeedState, errors_before: u32, record: &PollRecord) {
    let feed = &state.feed.name;
    match record.status {
        PollStatus::NotModified => {
            tracing::debug!(feed = %feed, "not modified");
            ctx.metrics.poll("not_modified");
        }
        PollStatus::Ok => ctx.metrics.poll("ok"),
        PollStatus::Gone => {
            ctx.metrics.poll("error");
            tracing::error!(feed = %feed, url = %state.feed.url, "the feed answered 410 Gone: it is no longer polled; remove it from the config");
        }
        PollStatus::Error => {
            ctx.metrics.poll("error");
            tracing::warn!(
                feed = %feed, url = %state.feed.url, status = record.http_status,
                error = record.error.as_deref().unwrap_or(""), errors_in_row = record.errors_in_row,
                retry_in = %humantime::format_duration(Duration::from_secs(Timestamp::now().until(record.next_poll_at).as_secs())),
                "poll failed"
            );
        }
    }
    if errors_before > 0 && record.status.answered() {
        tracing::info!(feed = %feed, failed_polls = errors_before, "feed recovered");
    }
}

/// Poll records waiting to be written; pollers wait when it is full.
pub const RECORD_QUEUE: usize = 1024;

/// Records written in one transaction at most.
pub const RECORD_BATCH: usize = 1024;

/// Where finished polls go: their record to the store, the feed back to the scheduler.
#[derive(Clone)]
pub struct Finish {
    pub scheduler: mpsc::UnboundedSender<FeedState>,
    /// Records of polls without items, written in batches by [`write_records`].
    records: mpsc::Sender<(i64, PollRecord)>,
    /// Dropped with the last `Finish`: then [`write_records`] stops waiting for ticks, so
    /// a shutdown does not wait a tick for records that cannot come any more.
    _open: Arc<DropGuard>,
}

/// The receiving end of [`Finish`]'s records, for [`write_records`].
pub struct Records {
    queue: mpsc::Receiver<(i64, PollRecord)>,
    /// Cancelled when the last [`Finish`] is dropped.
    closed: CancellationToken,
}

/// Writes the records of polls without items: whatever arrived, one transaction per
/// [`scheduler::TICK`] at most, then wakes the sinks of their feed events. Ends when every
/// [`Finish`] is dropped, after writing what it holds.
pub async fn write_records(ctx: Arc<Shared>, records: Records) {
    let Records {
        queue: mut records,
        closed,
    } = records;
    let mut batch = Vec::with_capacity(RECORD_BATCH);
    while records.recv_many(&mut batch, RECORD_BATCH).await > 0 {
        let wake: Vec<String> = batch
            .iter()
            .filter_map(|(_, r)| r.event.as_ref())
            .flat_map(|e| e.sinks.iter().cloned())
            .collect();
        let n = batch.len();
        let polls = std::mem::replace(&mut batch, Vec::with_capacity(RECORD_BATCH));
        if let Err(e) = ctx.store.record_polls(polls).await {
            // The feeds are polled again on schedule; only their last status is not kept.
            tracing::error!(polls = n, error = %e, "cannot record polls");
        }
        ctx.wakes.wake(&wake);
        // A full batch means more are waiting: written at once, so the queue keeps up with
        // any poll rate; otherwise the next tick's records are gathered first.
        if n < RECORD_BATCH {
            tokio::select! {
                _ = tokio::time::sleep(scheduler::TICK) => {}
                _ = closed.cancelled() => {}
            }
        }
    }
}

impl Finish {
    /// Where the polls' stages send finished feeds: the scheduler's channel, and a new
    /// record queue for [`write_records`].
    pub fn new(scheduler: mpsc::UnboundedSender<FeedState>) -> (Finish, Records) {
        let (records, queue) = mpsc::channel(RECORD_QUEUE);
        let closed = CancellationToken::new();
        let finish = Finish {
            scheduler,
            records,
            _open: Arc::new(closed.clone().drop_guard()),
        };
        (finish, Records { queue, closed })
    }

    /// Queues the record of a poll that has no items to store (its feed event's sinks are
    /// woken once it is written), and gives the feed back to the scheduler.
    pub async fn record(&self, ctx: &Shared, mut state: FeedState, mut record: PollRecord) {
        let errors_before = state.errors_in_row;
        log(ctx, &state, errors_before, &record);
        record.event = feed_event(&ctx.config(), &state, errors_before, &record);
        apply(&mut state, &record);
        let id = state.id;
        // The scheduler is gone only at shutdown.
        let _ = self.scheduler.send(state);
        // The writer is gone only at shutdown; the feed is polled again next time.
        let _ = self.records.send((id, record)).await;
    }
}

/// Runs polls as feeds come due, as many at once as `max_connections` allows; feeds with
/// new items go on to the ingest stage.
pub async fn run(
    ctx: Arc<Shared>,
    mut due: mpsc::Receiver<FeedState>,
    batches: mpsc::Sender<Batch>,
    finish: Finish,
    stop: CancellationToken,
) {
    // Bounds the number of polls (and their bodies) in memory at once.
    let slots = Arc::new(Semaphore::new(ctx.config().daemon.max_connections));
    let tasks = TaskTracker::new();
    loop {
        let state = tokio::select! {
            state = due.recv() => match state { Some(s) => s, None => break },
            _ = stop.cancelled() => break,
        };
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        let (ctx, batches, finish) = (ctx.clone(), batches.clone(), finish.clone());
        tasks.spawn(async move {
            let config = ctx.config();
            let mut state = state;
            let pushed = state.pushed.take();
            let outcome = poll(&ctx, &config, &state, pushed).await;
            let mut record = record(
                &outcome,
                &state,
                &config.poll,
                Timestamp::now(),
                scheduler::jittered,
            );
            if ctx.websub.as_ref().is_some_and(|w| w.is_active(state.id)) {
                websub::safety_net(&mut record, &config.poll, scheduler::jittered);
            }
            match outcome.into_items() {
                Some(read) => {
                    log(&ctx, &state, state.errors_in_row, &record);
                    let batch = Batch {
                        state,
                        record,
                        title: read.title,
                        items: read.new,
                        updates: read.updates,
                    };
                    // The receiver is gone only at shutdown; the feed is polled again next time.
                    let _ = batches.send(batch).await;
                }
                None => finish.record(&ctx, state, record).await,
            }
            drop(permit);
        });
    }
    tasks.close();
    tasks.wait().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::Rate;

    fn poll_config() -> config::Poll {
        config::Poll {
            interval: Duration::from_secs(900),
            min_interval: Duration::from_secs(120),
            max_interval: Duration::from_secs(6 * 3600),
            timeout: Duration::from_secs(30),
            max_feed_size: 1 << 20,
            backfill: config::Backfill::All,
            max_item_age: None,
            access: Default::default(),
        }
    }

    fn state(errors_in_row: u32) -> FeedState {
        let url = Url::parse("https://example.com/feed.xml").expect("url");
        FeedState {
            id: 1,
            feed: Arc::new(config::Feed {
                name: "f".into(),
                url: url.clone(),
                interval: None,
                fetch_article: false,
                sinks: vec![],
                tags: vec![],
                backfill: crate::config::Backfill::All,
                max_item_age: None,
                websub: None,
                access: Default::default(),
            }),
            moved: None,
            validators: Validators {
                etag: Some("\"old\"".into()),
                last_modified: None,
            },
            errors_in_row,
            polls: 5,
            guid_unreliable: false,
            rate: Rate::default(),
            last_ok_at: None,
            next_poll_at: None,
            pushed: None,
        }
    }

    fn read(new: usize) -> Read {
        let base = "https://example.com/";
        Read {
            http_status: 200,
            validators: Validators {
                etag: Some("\"new\"".into()),
                last_modified: None,
            },
            title: Some("F".into()),
            publisher: None,
            new: (0..new)
                .map(|i| FeedItem {
                    key: crate::model::ItemKey(format!("k{i}")),
                    guid: None,
                    link: Url::parse(&format!("{base}{i}")).ok(),
                    url: None,
                    title: None,
                    author: None,
                    published: None,
                    updated: None,
                    summary: None,
                    content_html: None,
                    categories: vec![],
                    image: None,
                    enclosures: vec![],
                })
                .collect(),
            updates: vec![],
        }
    }

    const NOW: Timestamp = Timestamp::from_millis(1_000_000_000_000);

    fn rec(outcome: &PollOutcome, s: &FeedState) -> PollRecord {
        record(outcome, s, &poll_config(), NOW, |d| d)
    }

    #[test]
    fn not_modified_keeps_the_feed_healthy_and_polls_at_the_default_interval() {
        let outcome = PollOutcome::NotModified {
            validators: Validators::default(),
            publisher: None,
        };
        let mut s = state(2);
        let r = rec(&outcome, &s);
        assert_eq!(r.status, PollStatus::NotModified);
        assert_eq!(r.errors_in_row, 0);
        assert_eq!(r.next_poll_at, NOW.after(Duration::from_secs(900)));
        assert_eq!(event_kind(&r, 2), None);
        apply(&mut s, &r);
        assert_eq!(
            s.validators.etag.as_deref(),
            Some("\"old\""),
            "a 304 without validators keeps them"
        );
        assert_eq!(s.last_ok_at, Some(NOW));
        assert_eq!(s.polls, 6);
    }

    #[test]
    fn failures_back_off_and_keep_the_validators() {
        let outcome = PollOutcome::Failed {
            http_status: Some(500),
            error: "HTTP status 500".into(),
            retry_after: None,
        };
        let mut s = state(1);
        let r = rec(&outcome, &s);
        assert_eq!((r.status, r.errors_in_row), (PollStatus::Error, 2));
        assert_eq!(r.next_poll_at, NOW.after(Duration::from_secs(120)));
        apply(&mut s, &r);
        assert_eq!(s.validators.etag.as_deref(), Some("\"old\""));
        assert_eq!(s.last_ok_at, None);
    }

    #[test]
    fn a_retry_after_longer_than_the_backoff_wins() {
        let outcome = PollOutcome::Failed {
            http_status: Some(429),
            error: "HTTP status 429".into(),
            retry_after: Some(Duration::from_secs(3600)),
        };
        let r = rec(&outcome, &state(0));
        assert_eq!(r.next_poll_at, NOW.after(Duration::from_secs(3600)));
        assert_eq!(r.reason.as_deref(), Some("HTTP 429 with Retry-After"));
    }

    #[test]
    fn a_paused_host_counts_no_error_and_waits_for_the_pause() {
        let until = NOW.after(Duration::from_secs(600));
        let r = rec(&PollOutcome::HostPaused { until }, &state(1));
        assert_eq!((r.status, r.errors_in_row), (PollStatus::Error, 1));
        assert_eq!(r.next_poll_at, until.after(HOST_PAUSE_SPREAD));
        assert_eq!(event_kind(&r, 1), None);
    }

    #[test]
    fn gone_is_never_polled_again() {
        let r = rec(&PollOutcome::Gone, &state(0));
        assert_eq!(
            (r.status, r.next_poll_at),
            (PollStatus::Gone, Timestamp::NEVER)
        );
        assert_eq!(r.http_status, Some(410));
    }

    #[test]
    fn the_third_failure_in_a_row_is_failing_and_the_next_answer_recovered() {
        let failed = PollOutcome::Failed {
            http_status: None,
            error: "connection refused".into(),
            retry_after: None,
        };
        let r = rec(&failed, &state(2));
        assert_eq!(event_kind(&r, 2), Some(EventType::FeedFailing));
        let r = rec(&failed, &state(3));
        assert_eq!(event_kind(&r, 3), None, "failing is said once");
        let ok = rec(&PollOutcome::Items(read(0)), &state(4));
        assert_eq!(event_kind(&ok, 4), Some(EventType::FeedRecovered));
        let ok = rec(&PollOutcome::Items(read(0)), &state(1));
        assert_eq!(
            event_kind(&ok, 1),
            None,
            "a short failure recovers silently"
        );
    }

    #[test]
    fn a_moved_feed_is_polled_at_its_new_address_with_its_new_validators() {
        let to = Url::parse("https://example.org/new.xml").expect("url");
        let outcome = PollOutcome::Moved {
            to: to.clone(),
            read: read(2),
        };
        let mut s = state(0);
        let r = rec(&outcome, &s);
        assert_eq!(r.moved_to.as_deref(), Some(to.as_str()));
        assert_eq!(r.title.as_deref(), Some("F"));
        apply(&mut s, &r);
        assert_eq!(s.url(), &to);
        assert_eq!(s.validators.etag.as_deref(), Some("\"new\""));
        assert!(outcome.into_items().is_some_and(|r| r.new.len() == 2));
    }

    #[test]
    fn a_401_or_403_says_authentication_failed_and_backs_off_like_other_errors() {
        for status in [401, 403] {
            let e = FetchError::Status {
                status,
                retry_after: None,
            };
            let s = state(0);
            let outcome = PollOutcome::from_error(&e).for_feed(&s.feed, s.url());
            let PollOutcome::Failed { error, .. } = &outcome else {
                panic!("a failure: {outcome:?}");
            };
            assert!(error.starts_with(&format!("authentication failed (HTTP {status})")));
            let r = rec(&outcome, &state(0));
            assert_eq!((r.status, r.errors_in_row), (PollStatus::Error, 1));
        }
        let other = PollOutcome::from_error(&FetchError::Status {
            status: 500,
            retry_after: None,
        });
        let s = state(0);
        assert_eq!(other.clone().for_feed(&s.feed, s.url()), other);
    }

    #[test]
    fn a_read_without_new_entries_has_nothing_to_ingest() {
        assert!(PollOutcome::Items(read(0)).into_items().is_none());
        assert!(PollOutcome::Gone.into_items().is_none());
    }

    #[test]
    fn new_items_raise_the_rate_once_there_is_a_previous_poll() {
        let mut s = state(0);
        s.last_ok_at = Some(NOW.before(Duration::from_secs(3600)));
        let r = rec(&PollOutcome::Items(read(3)), &s);
        let rate = r.rate.expect("a read has a rate");
        assert!((rate.items - 3.0).abs() < 1e-9 && (rate.hours - 1.0).abs() < 1e-9);
    }
}
