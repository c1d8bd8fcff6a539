//! What the status page reads, through the store's [`Reader`] (the read-only connection):
//! the page never queues behind the writer thread, and in WAL mode it never blocks it either.
//!
//! Every figure of one page comes from one read transaction, so the header, the chart and
//! the tables agree with each other. Each query is served by an index (`items_created`,
//! `outbox_pending`, `outbox_due`, `events_item`); none scans the items or the delivered history.

use rusqlite::{Connection, OptionalExtension, params};

use super::read::SqliteReader;
use super::{PollStatus, SinkState, StoreError, Timestamp};

/// The chart's buckets: one per hour, in milliseconds (the unit of the stored times).
const HOUR_MS: i64 = 3_600_000;

/// How a feed's last poll went, as the page groups feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeedHealth {
    /// Not polled yet.
    New,
    /// The last poll answered 200 or 304.
    Ok,
    /// The last poll failed; the feed is retried with backoff.
    Failing,
    /// 410 Gone: the feed is not polled any more.
    Gone,
}

impl FeedHealth {
    pub(crate) fn from_status(status: Option<PollStatus>) -> FeedHealth {
        match status {
            None => FeedHealth::New,
            Some(PollStatus::Error) => FeedHealth::Failing,
            Some(PollStatus::Gone) => FeedHealth::Gone,
            Some(PollStatus::Ok | PollStatus::NotModified) => FeedHealth::Ok,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FeedHealth::New => "new",
            FeedHealth::Ok => "ok",
            FeedHealth::Failing => "failing",
            FeedHealth::Gone => "gone",
        }
    }
}

/// One configured feed's state.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedRow {
    pub name: String,
    pub url: String,
    pub title: Option<String>,
    pub health: FeedHealth,
    pub http_status: Option<u16>,
    pub last_poll_at: Option<Timestamp>,
    pub next_poll_at: Option<Timestamp>,
    /// Why the next poll is when it is.
    pub schedule_reason: Option<String>,
    pub errors_in_row: u32,
    pub last_error: Option<String>,
    /// New items per hour, from the decayed rate the scheduler keeps.
    pub items_per_hour: Option<f64>,
}

/// Items stored in one hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HourCount {
    /// The hour's start.
    pub start: Timestamp,
    /// Items that were a story of their own.
    pub new: i64,
    /// Items recognised as a story already stored.
    pub duplicate: i64,
}

/// The item a duplicate belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct Original {
    pub id: String,
    pub feed: String,
    pub title: Option<String>,
    pub url: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RecentItem {
    pub id: String,
    pub feed: String,
    pub title: Option<String>,
    pub url: Option<String>,
    pub created_at: Timestamp,
    pub published_at: Option<Timestamp>,
    /// `article` or `feed`.
    pub content_source: Option<String>,
    /// The body of the item's first event (the §5 payload), when it still has one.
    pub payload: Option<String>,
    pub duplicate_of: Option<Original>,
    pub duplicate_reason: Option<String>,
}

/// A sink's outbox as the store sees it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SinkRow {
    pub name: String,
    pub pending: i64,
    pub dead: i64,
    pub oldest_pending_at: Option<Timestamp>,
    /// Pending rows that failed at least once and wait for their next attempt.
    pub retrying: i64,
    /// When the earliest of those is tried again.
    pub next_retry_at: Option<Timestamp>,
    /// The most recent error of a row still retrying.
    pub last_error: Option<String>,
    /// The health its delivery worker recorded (up, failing, paused), why, and until when.
    pub state: Option<SinkState>,
    pub reason: Option<String>,
    pub until: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub sink: String,
    pub title: String,
    pub attempts: u32,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub dead_at: Option<Timestamp>,
}

/// What one page is made of.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Snapshot {
    /// Every configured (active) feed, by name.
    pub feeds: Vec<FeedRow>,
    /// The last `hours` hours, oldest first, the current hour last.
    pub hours: Vec<HourCount>,
    /// Items stored since `today_start`.
    pub items_today: i64,
    pub recent: Vec<RecentItem>,
    pub sinks: Vec<SinkRow>,
    pub dead: Vec<DeadLetter>,
}

/// What to read.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotQuery {
    pub now: Timestamp,
    /// Start of the current day (UTC), for "items today".
    pub today_start: Timestamp,
    pub hours: usize,
    pub recent: usize,
    /// The configured sinks, so a sink that never had a row still shows.
    pub sinks: Vec<String>,
    /// Dead letters shown per sink.
    pub dead_per_sink: usize,
}

impl SqliteReader {
    /// Reads one status page's figures, in one read transaction.
    pub async fn status_snapshot(&self, q: SnapshotQuery) -> Result<Snapshot, StoreError> {
        self.call(move |conn| read_snapshot(conn, &q)).await
    }
}

fn read_snapshot(conn: &mut Connection, q: &SnapshotQuery) -> Result<Snapshot, StoreError> {
    let tx = conn.transaction()?;
    let feeds = feeds(&tx)?;
    let hours = hours(&tx, q.now, q.hours)?;
    let items_today = tx.query_row(
        "SELECT COUNT(*) FROM items WHERE created_at >= ?1",
        params![q.today_start],
        |r| r.get(0),
    )?;
    let recent = recent(&tx, q.recent)?;
    let mut sinks = Vec::with_capacity(q.sinks.len());
    let mut dead = Vec::new();
    for name in &q.sinks {
        sinks.push(sink(&tx, name)?);
        dead.extend(dead_letters(&tx, name, q.dead_per_sink)?);
    }
    tx.finish()?;
    Ok(Snapshot {
        feeds,
        hours,
        items_today,
        recent,
        sinks,
        dead,
    })
}

fn feeds(conn: &Connection) -> Result<Vec<FeedRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT name, url, title, last_status, last_http_status, last_poll_at, next_poll_at,
                schedule_reason, errors_in_row, last_error, rate_items, rate_hours
         FROM feeds WHERE active = 1 ORDER BY name",
    )?;
    let rows = stmt.query_map([], |r| {
        let status: Option<PollStatus> = r.get(3)?;
        let items: f64 = r.get(10)?;
        let hours: f64 = r.get(11)?;
        Ok(FeedRow {
            name: r.get(0)?,
            url: r.get(1)?,
            title: r.get(2)?,
            health: FeedHealth::from_status(status),
            http_status: r.get(4)?,
            last_poll_at: r.get(5)?,
            next_poll_at: r.get(6)?,
            schedule_reason: r.get(7)?,
            errors_in_row: r.get(8)?,
            last_error: r.get(9)?,
            items_per_hour: (hours > 0.0).then(|| items / hours),
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// The `count` hours up to the one `now` is in, all empty, and the first hour's start (ms).
pub(crate) fn empty_hours(now: Timestamp, count: usize) -> (i64, Vec<HourCount>) {
    let current = now.as_millis().div_euclid(HOUR_MS) * HOUR_MS;
    let first = current - (count as i64 - 1) * HOUR_MS;
    let out = (0..count as i64)
        .map(|i| HourCount {
            start: Timestamp::from_millis(first + i * HOUR_MS),
            new: 0,
            duplicate: 0,
        })
        .collect();
    (first, out)
}

/// Adds `n` items stored in hour number `hour` (ms / [`HOUR_MS`]) to its bucket.
pub(crate) fn count_hour(out: &mut [HourCount], first: i64, hour: i64, duplicate: bool, n: i64) {
    let index = (hour * HOUR_MS - first) / HOUR_MS;
    // Items stamped in the future (a clock set back) are left out of the chart.
    if let Some(bucket) = usize::try_from(index).ok().and_then(|i| out.get_mut(i)) {
        if duplicate {
            bucket.duplicate += n;
        } else {
            bucket.new += n;
        }
    }
}

fn hours(conn: &Connection, now: Timestamp, count: usize) -> Result<Vec<HourCount>, StoreError> {
    let (first, mut out) = empty_hours(now, count);
    let mut stmt = conn.prepare_cached(
        "SELECT created_at / ?2, duplicate_of IS NOT NULL, COUNT(*)
         FROM items WHERE created_at >= ?1 GROUP BY 1, 2",
    )?;
    let rows = stmt.query_map(params![first, HOUR_MS], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, bool>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    for row in rows {
        let (hour, duplicate, n) = row?;
        count_hour(&mut out, first, hour, duplicate, n);
    }
    Ok(out)
}

fn recent(conn: &Connection, limit: usize) -> Result<Vec<RecentItem>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT i.id, f.name, i.title, i.url, i.created_at, i.published_at, i.content_source,
                i.duplicate_of, i.duplicate_reason, d.title, d.url, df.name
         FROM items i JOIN feeds f ON f.id = i.feed_id
         LEFT JOIN items d ON d.id = i.duplicate_of LEFT JOIN feeds df ON df.id = d.feed_id
         ORDER BY i.created_at DESC, i.id DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map(params![limit as i64], |r| {
        let duplicate_of: Option<String> = r.get(7)?;
        let original = match duplicate_of {
            Some(id) => Some(Original {
                id,
                title: r.get(9)?,
                url: r.get(10)?,
                feed: r.get::<_, Option<String>>(11)?.unwrap_or_default(),
            }),
            None => None,
        };
        Ok(RecentItem {
            id: r.get(0)?,
            feed: r.get(1)?,
            title: r.get(2)?,
            url: r.get(3)?,
            created_at: r.get(4)?,
            published_at: r.get(5)?,
            content_source: r.get(6)?,
            payload: None,
            duplicate_of: original,
            duplicate_reason: r.get(8)?,
        })
    })?;
    let mut items = rows.collect::<Result<Vec<_>, _>>()?;
    let mut body = conn.prepare_cached(
        "SELECT body FROM events WHERE item_id = ?1 AND type IN ('item.new', 'item.duplicate')
         ORDER BY created_at LIMIT 1",
    )?;
    for item in &mut items {
        item.payload = body.query_row(params![item.id], |r| r.get(0)).optional()?;
    }
    Ok(items)
}

fn sink(conn: &Connection, name: &str) -> Result<SinkRow, StoreError> {
    let (pending, oldest_pending_at) = conn
        .prepare_cached(
            "SELECT COUNT(*), MIN(created_at) FROM outbox WHERE sink = ?1 AND state = 'pending'",
        )?
        .query_row(params![name], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let (retrying, next_retry_at) = conn
        .prepare_cached(
            "SELECT COUNT(*), MIN(next_attempt_at) FROM outbox
             WHERE sink = ?1 AND state = 'pending' AND attempts > 0",
        )?
        .query_row(params![name], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let last_error = conn
        .prepare_cached(
            "SELECT last_error FROM outbox
             WHERE sink = ?1 AND state = 'pending' AND attempts > 0 AND last_error IS NOT NULL
             ORDER BY next_attempt_at DESC LIMIT 1",
        )?
        .query_row(params![name], |r| r.get(0))
        .optional()?;
    let dead = conn
        .prepare_cached("SELECT COUNT(*) FROM outbox WHERE sink = ?1 AND state = 'dead'")?
        .query_row(params![name], |r| r.get(0))?;
    let recorded: Option<(SinkState, Option<String>, Option<Timestamp>)> = conn
        .prepare_cached("SELECT state, reason, until FROM sink_state WHERE sink = ?1")?
        .query_row(params![name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let (state, reason, until) = match recorded {
        Some((s, r, u)) => (Some(s), r, u),
        None => (None, None, None),
    };
    Ok(SinkRow {
        name: name.to_string(),
        pending,
        dead,
        oldest_pending_at,
        retrying,
        next_retry_at,
        last_error,
        state,
        reason,
        until,
    })
}

fn dead_letters(
    conn: &Connection,
    sink: &str,
    limit: usize,
) -> Result<Vec<DeadLetter>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT o.sink, COALESCE(i.title, e.type), o.attempts, o.last_status, o.last_error, o.done_at
         FROM outbox o JOIN events e ON e.id = o.event_id LEFT JOIN items i ON i.id = e.item_id
         WHERE o.sink = ?1 AND o.state = 'dead'
         ORDER BY o.done_at DESC, o.id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![sink, limit as i64], |r| {
        Ok(DeadLetter {
            sink: r.get(0)?,
            title: r.get(1)?,
            attempts: r.get(2)?,
            last_status: r.get(3)?,
            last_error: r.get(4)?,
            dead_at: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}
