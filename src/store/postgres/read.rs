//! Reports on PostgreSQL, read through the pool: `feeds`, `items`, `deliveries`, the status
//! page and `/metrics`. The same rows as the SQLite reports (`store/read.rs`,
//! `store/status.rs`); a report never takes a lock a writer waits for.

use std::collections::HashMap;

use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::{PgError, PgStore};
use crate::store::status::{
    DeadLetter, FeedHealth, FeedRow, HourCount, Original, RecentItem, SinkRow, Snapshot,
    SnapshotQuery,
};
use crate::store::{
    DeliveryReport, DeliveryState, FeedCounts, FeedReport, ItemReport, PollStatus, SinkBacklog,
    SinkState, SinkStatus, StoreError, Timestamp,
};

/// The chart's buckets: one per hour, in milliseconds (the unit of the stored times).
const HOUR_MS: i64 = 3_600_000;

/// A stored time.
fn ts(r: &Row, i: usize) -> Timestamp {
    Timestamp::from_millis(r.get(i))
}

/// A stored time that may be absent.
fn opt_ts(r: &Row, i: usize) -> Option<Timestamp> {
    r.get::<_, Option<i64>>(i).map(Timestamp::from_millis)
}

/// An HTTP status as stored (INTEGER).
fn http_status(r: &Row, i: usize) -> Option<u16> {
    r.get::<_, Option<i32>>(i)
        .and_then(|s| u16::try_from(s).ok())
}

/// A count as stored (INTEGER, never negative).
fn count(r: &Row, i: usize) -> u32 {
    r.get::<_, i32>(i).max(0) as u32
}

/// A state column read back; a value this version does not write is an error, as on SQLite.
fn parse<T>(what: &str, s: &str, parse: impl Fn(&str) -> Option<T>) -> Result<T, StoreError> {
    parse(s).ok_or_else(|| PgError::Query(format!("unknown {what} {s:?}")).into())
}

fn poll_status(r: &Row, i: usize) -> Result<Option<PollStatus>, StoreError> {
    r.get::<_, Option<&str>>(i)
        .map(|s| parse("poll status", s, PollStatus::parse))
        .transpose()
}

fn sink_state(r: &Row, i: usize) -> Result<SinkState, StoreError> {
    parse("sink state", r.get(i), SinkState::parse)
}

impl PgStore {
    /// Rows waiting for delivery to any of `sinks`.
    pub async fn pending(&self, sinks: &[String]) -> Result<i64, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT COUNT(*) FROM outbox WHERE sink = ANY($1) AND state = 'pending'",
                &[&sinks],
            )
            .await?;
        Ok(row.get(0))
    }

    /// Feed counts for `/metrics`: one pass over the feeds table, no item counts.
    pub async fn feed_counts(&self) -> Result<FeedCounts, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT COUNT(*), COUNT(*) FILTER (WHERE last_status = 'error')
                 FROM feeds WHERE active",
                &[],
            )
            .await?;
        Ok(FeedCounts {
            active: row.get(0),
            in_error: row.get(1),
        })
    }

    /// Bytes on disk per table of this store's schema, its indexes and TOAST included.
    pub async fn table_sizes(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT c.relname::TEXT, pg_total_relation_size(c.oid)
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE c.relkind = 'r' AND n.nspname = current_schema()
                 ORDER BY 2 DESC, 1",
                &[],
            )
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    pub async fn feeds_report(&self) -> Result<Vec<FeedReport>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT f.name, f.url, f.title, f.active, f.last_poll_at, f.last_status,
                        f.last_http_status, f.last_error, f.errors_in_row, f.next_poll_at,
                        (SELECT COUNT(*) FROM items i WHERE i.feed_id = f.id), f.schedule_reason,
                        f.id
                 FROM feeds f ORDER BY f.active DESC, f.name COLLATE \"C\"",
                &[],
            )
            .await?;
        let mut websub: HashMap<i64, _> = super::outbox::subscriptions(&client)
            .await?
            .into_iter()
            .map(|s| (s.feed_id, (s.state, s.hub.to_string())))
            .collect();
        rows.iter()
            .map(|r| {
                Ok(FeedReport {
                    websub: websub.remove(&r.get::<_, i64>(12)),
                    name: r.get(0),
                    url: r.get(1),
                    title: r.get(2),
                    active: r.get(3),
                    last_poll_at: opt_ts(r, 4),
                    last_status: poll_status(r, 5)?,
                    last_http_status: http_status(r, 6),
                    last_error: r.get(7),
                    errors_in_row: count(r, 8),
                    next_poll_at: opt_ts(r, 9),
                    items: r.get(10),
                    schedule_reason: r.get(11),
                })
            })
            .collect()
    }

    pub async fn items_report(
        &self,
        feed: Option<String>,
        limit: usize,
    ) -> Result<Vec<ItemReport>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT i.id, f.name, i.title, i.url, i.published_at, i.created_at, i.duplicate_of,
                        i.duplicate_reason, i.emitted, i.not_sent
                 FROM items i JOIN feeds f ON f.id = i.feed_id
                 WHERE ($1::TEXT IS NULL OR f.name = $1)
                 ORDER BY i.created_at DESC, i.id COLLATE \"C\" DESC LIMIT $2",
                &[&feed, &(limit as i64)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| ItemReport {
                id: r.get(0),
                feed: r.get(1),
                title: r.get(2),
                url: r.get(3),
                published_at: opt_ts(r, 4),
                created_at: ts(r, 5),
                duplicate_of: r.get(6),
                duplicate_reason: r.get(7),
                emitted: r.get(8),
                not_sent: r.get(9),
            })
            .collect())
    }

    pub async fn backlog(&self) -> Result<Vec<SinkBacklog>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT sink,
                        COUNT(*) FILTER (WHERE state = 'pending'),
                        COUNT(*) FILTER (WHERE state = 'delivered'),
                        COUNT(*) FILTER (WHERE state = 'dead'),
                        MIN(created_at) FILTER (WHERE state = 'pending')
                 FROM outbox GROUP BY sink ORDER BY sink COLLATE \"C\"",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| SinkBacklog {
                sink: r.get(0),
                pending: r.get(1),
                delivered: r.get(2),
                dead: r.get(3),
                oldest_pending_at: opt_ts(r, 4),
            })
            .collect())
    }

    /// Every sink's recorded health (up, failing, paused with why and until when), by name.
    pub async fn sink_statuses(&self) -> Result<Vec<SinkStatus>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT sink, state, reason, since, until, updated_at FROM sink_state ORDER BY sink COLLATE \"C\"",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(SinkStatus {
                    sink: r.get(0),
                    state: sink_state(r, 1)?,
                    reason: r.get(2),
                    since: opt_ts(r, 3),
                    until: opt_ts(r, 4),
                    updated_at: ts(r, 5),
                })
            })
            .collect()
    }

    /// Pending (or with `dead_only`, dead-lettered) rows with their last error.
    pub async fn deliveries_report(
        &self,
        sink: Option<String>,
        dead_only: bool,
        limit: usize,
    ) -> Result<Vec<DeliveryReport>, StoreError> {
        let client = self.client().await?;
        let state = if dead_only {
            DeliveryState::Dead
        } else {
            DeliveryState::Pending
        }
        .as_str();
        let rows = client
            .query(
                "SELECT o.sink, o.event_id, o.webhook_id, COALESCE(i.title, e.type), o.state,
                        o.attempts, o.next_attempt_at, o.last_status, o.last_error, o.created_at
                 FROM outbox o JOIN events e ON e.id = o.event_id
                 LEFT JOIN items i ON i.id = e.item_id
                 WHERE o.state = $1 AND ($2::TEXT IS NULL OR o.sink = $2)
                 ORDER BY o.id LIMIT $3",
                &[&state, &sink, &(limit as i64)],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(DeliveryReport {
                    sink: r.get(0),
                    event_id: r.get(1),
                    webhook_id: r.get(2),
                    item_title: r.get(3),
                    state: parse("delivery state", r.get(4), DeliveryState::parse)?,
                    attempts: count(r, 5),
                    next_attempt_at: ts(r, 6),
                    last_status: http_status(r, 7),
                    last_error: r.get(8),
                    created_at: ts(r, 9),
                })
            })
            .collect()
    }

    /// Reads one status page's figures in one read-only, repeatable-read transaction, so
    /// the header, the chart and the tables agree with each other.
    pub async fn status_snapshot(&self, q: SnapshotQuery) -> Result<Snapshot, StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let feeds = status_feeds(&tx).await?;
        let hours = hours(&tx, q.now, q.hours).await?;
        let items_today: i64 = tx
            .query_one(
                "SELECT COUNT(*) FROM items WHERE created_at >= $1",
                &[&q.today_start.as_millis()],
            )
            .await?
            .get(0);
        let recent = recent(&tx, q.recent).await?;
        let mut sinks = Vec::with_capacity(q.sinks.len());
        let mut dead = Vec::new();
        for name in &q.sinks {
            sinks.push(sink(&tx, name).await?);
            dead.extend(dead_letters(&tx, name, q.dead_per_sink).await?);
        }
        tx.commit().await?;
        Ok(Snapshot {
            feeds,
            hours,
            items_today,
            recent,
            sinks,
            dead,
        })
    }
}

type Tx<'a> = deadpool_postgres::Transaction<'a>;

async fn status_feeds(tx: &Tx<'_>) -> Result<Vec<FeedRow>, StoreError> {
    let rows = tx
        .query(
            "SELECT name, url, title, last_status, last_http_status, last_poll_at, next_poll_at,
                    schedule_reason, errors_in_row, last_error, rate_items, rate_hours
             FROM feeds WHERE active ORDER BY name COLLATE \"C\"",
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let items: f64 = r.get(10);
            let hours: f64 = r.get(11);
            Ok(FeedRow {
                name: r.get(0),
                url: r.get(1),
                title: r.get(2),
                health: FeedHealth::from_status(poll_status(r, 3)?),
                http_status: http_status(r, 4),
                last_poll_at: opt_ts(r, 5),
                next_poll_at: opt_ts(r, 6),
                schedule_reason: r.get(7),
                errors_in_row: count(r, 8),
                last_error: r.get(9),
                items_per_hour: (hours > 0.0).then(|| items / hours),
            })
        })
        .collect()
}

async fn hours(tx: &Tx<'_>, now: Timestamp, count: usize) -> Result<Vec<HourCount>, StoreError> {
    let (first, mut out) = crate::store::status::empty_hours(now, count);
    let rows = tx
        .query(
            "SELECT created_at / $2, duplicate_of IS NOT NULL, COUNT(*)
             FROM items WHERE created_at >= $1 GROUP BY 1, 2",
            &[&first, &HOUR_MS],
        )
        .await?;
    for r in &rows {
        crate::store::status::count_hour(&mut out, first, r.get(0), r.get(1), r.get(2));
    }
    Ok(out)
}

async fn recent(tx: &Tx<'_>, limit: usize) -> Result<Vec<RecentItem>, StoreError> {
    // The payload is the body of the item's first item event, when it still has one.
    let rows = tx
        .query(
            "SELECT i.id, f.name, i.title, i.url, i.created_at, i.published_at, i.content_source,
                    i.duplicate_of, i.duplicate_reason, d.title, d.url, df.name, p.body
             FROM items i JOIN feeds f ON f.id = i.feed_id
             LEFT JOIN items d ON d.id = i.duplicate_of LEFT JOIN feeds df ON df.id = d.feed_id
             LEFT JOIN LATERAL (
                 SELECT body FROM events
                 WHERE item_id = i.id AND type IN ('item.new', 'item.duplicate')
                 ORDER BY created_at LIMIT 1) p ON TRUE
             ORDER BY i.created_at DESC, i.id COLLATE \"C\" DESC LIMIT $1",
            &[&(limit as i64)],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| RecentItem {
            id: r.get(0),
            feed: r.get(1),
            title: r.get(2),
            url: r.get(3),
            created_at: ts(r, 4),
            published_at: opt_ts(r, 5),
            content_source: r.get(6),
            payload: r.get(12),
            duplicate_of: r.get::<_, Option<String>>(7).map(|id| Original {
                id,
                title: r.get(9),
                url: r.get(10),
                feed: r.get::<_, Option<String>>(11).unwrap_or_default(),
            }),
            duplicate_reason: r.get(8),
        })
        .collect())
}

async fn sink(tx: &Tx<'_>, name: &str) -> Result<SinkRow, StoreError> {
    let params: &[&(dyn ToSql + Sync)] = &[&name];
    let totals = tx
        .query_one(
            "SELECT COUNT(*), MIN(created_at),
                    COUNT(*) FILTER (WHERE attempts > 0),
                    MIN(next_attempt_at) FILTER (WHERE attempts > 0)
             FROM outbox WHERE sink = $1 AND state = 'pending'",
            params,
        )
        .await?;
    let last_error: Option<String> = tx
        .query_opt(
            "SELECT last_error FROM outbox
             WHERE sink = $1 AND state = 'pending' AND attempts > 0 AND last_error IS NOT NULL
             ORDER BY next_attempt_at DESC LIMIT 1",
            params,
        )
        .await?
        .map(|r| r.get(0));
    let dead: i64 = tx
        .query_one(
            "SELECT COUNT(*) FROM outbox WHERE sink = $1 AND state = 'dead'",
            params,
        )
        .await?
        .get(0);
    let recorded = tx
        .query_opt(
            "SELECT state, reason, until FROM sink_state WHERE sink = $1",
            params,
        )
        .await?;
    let (state, reason, until) = match recorded {
        Some(r) => (Some(sink_state(&r, 0)?), r.get(1), opt_ts(&r, 2)),
        None => (None, None, None),
    };
    Ok(SinkRow {
        name: name.to_string(),
        pending: totals.get(0),
        oldest_pending_at: opt_ts(&totals, 1),
        retrying: totals.get(2),
        next_retry_at: opt_ts(&totals, 3),
        last_error,
        dead,
        state,
        reason,
        until,
    })
}

async fn dead_letters(
    tx: &Tx<'_>,
    sink: &str,
    limit: usize,
) -> Result<Vec<DeadLetter>, StoreError> {
    let rows = tx
        .query(
            "SELECT o.sink, COALESCE(i.title, e.type), o.attempts, o.last_status, o.last_error,
                    o.done_at
             FROM outbox o JOIN events e ON e.id = o.event_id
             LEFT JOIN items i ON i.id = e.item_id
             WHERE o.sink = $1 AND o.state = 'dead'
             ORDER BY o.done_at DESC NULLS LAST, o.id DESC LIMIT $2",
            &[&sink, &(limit as i64)],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| DeadLetter {
            sink: r.get(0),
            title: r.get(1),
            attempts: count(r, 2),
            last_status: http_status(r, 3),
            last_error: r.get(4),
            dead_at: opt_ts(r, 5),
        })
        .collect())
}
