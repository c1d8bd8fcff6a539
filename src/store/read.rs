//! The read-only side of the store: reports for the command line, the status page and
//! `/metrics`, on a read-only connection with its own thread, so readers never queue behind
//! the writer (WAL lets them read while it writes).

use rusqlite::params;

use super::sqlite::ConnThread;
use super::{DeliveryState, PollStatus, SinkStatus, StoreError, Timestamp};

/// A handle to the read-only connection; cheap to clone.
#[derive(Clone)]
pub struct SqliteReader {
    thread: ConnThread,
}

/// `feedwire feeds`: one row per configured feed.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedReport {
    pub name: String,
    pub url: String,
    pub title: Option<String>,
    pub active: bool,
    pub last_poll_at: Option<Timestamp>,
    pub last_status: Option<PollStatus>,
    pub last_http_status: Option<u16>,
    pub last_error: Option<String>,
    pub errors_in_row: u32,
    pub next_poll_at: Option<Timestamp>,
    /// Why the next poll is when it is.
    pub schedule_reason: Option<String>,
    pub items: i64,
    /// The feed's WebSub subscription: its state and hub.
    pub websub: Option<(crate::websub::SubState, String)>,
}

/// How many feeds are configured, and how many of them failed their last poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FeedCounts {
    pub active: i64,
    pub in_error: i64,
}

/// `feedwire items`: recent items.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemReport {
    pub id: String,
    pub feed: String,
    pub title: Option<String>,
    pub url: Option<String>,
    pub published_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub duplicate_of: Option<String>,
    pub duplicate_reason: Option<String>,
    pub emitted: bool,
    /// Why it was not sent: `rule:NAME`, `max_item_age` or `backfill` (unknown for older rows).
    pub not_sent: Option<String>,
}

/// `feedwire deliveries`: outbox counts per sink.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SinkBacklog {
    pub sink: String,
    pub pending: i64,
    pub delivered: i64,
    pub dead: i64,
    pub oldest_pending_at: Option<Timestamp>,
}

/// `feedwire deliveries --dead` and pending rows with their last error.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryReport {
    pub sink: String,
    pub event_id: String,
    pub webhook_id: String,
    pub item_title: Option<String>,
    pub state: DeliveryState,
    pub attempts: u32,
    pub next_attempt_at: Timestamp,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
}

impl SqliteReader {
    pub(super) fn new(thread: ConnThread) -> SqliteReader {
        SqliteReader { thread }
    }

    /// Runs `f` on the reader's thread (`status.rs` reads through it too).
    pub(super) async fn call<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut rusqlite::Connection) -> Result<R, StoreError> + Send + 'static,
    {
        self.thread.call(f).await
    }

    /// Rows waiting for delivery to any of `sinks` (rows of sinks no longer configured are
    /// not waited for: nothing will deliver them).
    pub async fn pending(&self, sinks: &[String]) -> Result<i64, StoreError> {
        let sinks = sinks.to_vec();
        self.call(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT COUNT(*) FROM outbox WHERE sink = ?1 AND state = 'pending'",
            )?;
            let mut total = 0;
            for sink in &sinks {
                total += stmt.query_row(params![sink], |r| r.get::<_, i64>(0))?;
            }
            Ok(total)
        })
        .await
    }

    /// Feed counts for `/metrics`: one pass over the feeds table, no item counts.
    pub async fn feed_counts(&self) -> Result<FeedCounts, StoreError> {
        self.call(|conn| {
            Ok(conn.query_row(
                "SELECT COUNT(*), COALESCE(SUM(last_status = 'error'), 0) FROM feeds WHERE active = 1",
                [],
                |r| {
                    Ok(FeedCounts {
                        active: r.get(0)?,
                        in_error: r.get(1)?,
                    })
                },
            )?)
        })
        .await
    }

    /// Answers when the reader thread and the database do.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.call(|conn| Ok(conn.query_row("SELECT 1", [], |_| Ok(()))?))
            .await
    }

    /// Bytes on disk per table and index (SQLite's dbstat).
    pub async fn table_sizes(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.call(|conn| {
            let mut stmt =
                conn.prepare("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    pub async fn feeds_report(&self) -> Result<Vec<FeedReport>, StoreError> {
        self.call(|conn| {
            let mut stmt = conn.prepare(
                "SELECT f.name, f.url, f.title, f.active, f.last_poll_at, f.last_status, f.last_http_status,
                        f.last_error, f.errors_in_row, f.next_poll_at,
                        (SELECT COUNT(*) FROM items i WHERE i.feed_id = f.id), f.schedule_reason, f.id
                 FROM feeds f ORDER BY f.active DESC, f.name",
            )?;
            let mut websub = super::websub::states(conn)?;
            let rows = stmt.query_map([], |r| {
                Ok(FeedReport {
                    websub: websub.remove(&r.get::<_, i64>(12)?),
                    name: r.get(0)?,
                    url: r.get(1)?,
                    title: r.get(2)?,
                    active: r.get(3)?,
                    last_poll_at: r.get(4)?,
                    last_status: r.get(5)?,
                    last_http_status: r.get(6)?,
                    last_error: r.get(7)?,
                    errors_in_row: r.get(8)?,
                    next_poll_at: r.get(9)?,
                    items: r.get(10)?,
                    schedule_reason: r.get(11)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    pub async fn items_report(
        &self,
        feed: Option<String>,
        limit: usize,
    ) -> Result<Vec<ItemReport>, StoreError> {
        self.call(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT i.id, f.name, i.title, i.url, i.published_at, i.created_at, i.duplicate_of,
                        i.duplicate_reason, i.emitted, i.not_sent
                 FROM items i JOIN feeds f ON f.id = i.feed_id
                 WHERE (?1 IS NULL OR f.name = ?1)
                 ORDER BY i.created_at DESC, i.id DESC LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![feed, limit as i64], |r| {
                Ok(ItemReport {
                    id: r.get(0)?,
                    feed: r.get(1)?,
                    title: r.get(2)?,
                    url: r.get(3)?,
                    published_at: r.get(4)?,
                    created_at: r.get(5)?,
                    duplicate_of: r.get(6)?,
                    duplicate_reason: r.get(7)?,
                    emitted: r.get(8)?,
                    not_sent: r.get(9)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    pub async fn backlog(&self) -> Result<Vec<SinkBacklog>, StoreError> {
        self.call(|conn| {
            let mut stmt = conn.prepare(
                "SELECT sink,
                        SUM(state = 'pending'), SUM(state = 'delivered'), SUM(state = 'dead'),
                        MIN(CASE WHEN state = 'pending' THEN created_at END)
                 FROM outbox GROUP BY sink ORDER BY sink",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(SinkBacklog {
                    sink: r.get(0)?,
                    pending: r.get(1)?,
                    delivered: r.get(2)?,
                    dead: r.get(3)?,
                    oldest_pending_at: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Every sink's recorded health (up, failing, paused with why and until when), by name.
    pub async fn sink_statuses(&self) -> Result<Vec<SinkStatus>, StoreError> {
        self.call(|conn| {
            let mut stmt = conn.prepare(
                "SELECT sink, state, reason, since, until, updated_at FROM sink_state ORDER BY sink",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(SinkStatus {
                    sink: r.get(0)?,
                    state: r.get(1)?,
                    reason: r.get(2)?,
                    since: r.get(3)?,
                    until: r.get(4)?,
                    updated_at: r.get(5)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Pending (or with `dead`, dead-lettered) rows with their last error.
    pub async fn deliveries_report(
        &self,
        sink: Option<String>,
        dead: bool,
        limit: usize,
    ) -> Result<Vec<DeliveryReport>, StoreError> {
        self.call(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT o.sink, o.event_id, o.webhook_id, COALESCE(i.title, e.type), o.state, o.attempts, o.next_attempt_at,
                        o.last_status, o.last_error, o.created_at
                 FROM outbox o JOIN events e ON e.id = o.event_id LEFT JOIN items i ON i.id = e.item_id
                 WHERE o.state = ?1 AND (?2 IS NULL OR o.sink = ?2)
                 ORDER BY o.id LIMIT ?3",
            )?;
            let state = if dead { DeliveryState::Dead } else { DeliveryState::Pending }.as_str();
            let rows = stmt.query_map(params![state, sink, limit as i64], |r| {
                Ok(DeliveryReport {
                    sink: r.get(0)?,
                    event_id: r.get(1)?,
                    webhook_id: r.get(2)?,
                    item_title: r.get(3)?,
                    state: r.get(4)?,
                    attempts: r.get(5)?,
                    next_attempt_at: r.get(6)?,
                    last_status: r.get(7)?,
                    last_error: r.get(8)?,
                    created_at: r.get(9)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::super::FeedSpec;
    use super::super::sqlite::Sqlite;
    use std::time::Duration;

    #[tokio::test]
    async fn reports_answer_while_the_writer_is_busy() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Sqlite::open(&dir.path().join("feedwire.db")).expect("open");
        store
            .sync_feeds(vec![FeedSpec {
                name: "f".into(),
                url: "https://example.com/f.xml".into(),
            }])
            .await
            .expect("sync");
        // Hold the writer thread until the report has answered.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (started, writer_busy) = tokio::sync::oneshot::channel::<()>();
        let busy = {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .call(move |_| {
                        let _ = started.send(());
                        let _ = held.recv_timeout(Duration::from_secs(10));
                        Ok(())
                    })
                    .await
            })
        };
        writer_busy.await.expect("the writer runs the job");
        let feeds = tokio::time::timeout(Duration::from_secs(5), store.reader().feeds_report())
            .await
            .expect("the reader does not wait for the writer")
            .expect("report");
        assert_eq!(feeds.len(), 1);
        assert_eq!(feeds[0].last_status, None);
        release.send(()).expect("writer job waits");
        busy.await.expect("join").expect("writer job");
    }
}
