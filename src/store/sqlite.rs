//! The SQLite backend: one file, written by one thread and read by another. Every method
//! of [`Sqlite`] runs on the writer thread, so blocking SQLite work never runs on the async
//! reactor and writes never contend with each other; reports go through [`SqliteReader`]
//! (`read.rs`), a read-only connection on its own thread.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use rusqlite::types::{FromSql, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};

use super::read::SqliteReader;
use super::{
    Attempt, DatabaseError, DedupSettings, Delivery, DeliveryState, FeedSpec, IngestBatch,
    IngestReport, KnownItem, PollRecord, PollStatus, SinkState, SinkStatus, StoreError, StoredFeed,
    ingest, schema,
};
use crate::dedup::Fingerprint;
use crate::model::Timestamp;
use crate::scheduler::Rate;

/// How long SQLite waits for a lock held by another process (a CLI reader) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 64;

/// SQLite's page cache per connection, in KiB.
const PAGE_CACHE_KIB: i64 = 4 * 1024;

/// Jobs waiting for the writer (or reader) thread; callers wait when it is full.
const WRITER_QUEUE: usize = 256;

/// The reader's page cache, in KiB: reports scan, they need little cache.
const READER_CACHE_KIB: i64 = 1024;

/// How long a claimed outbox row stays invisible to other claims. Claims are cleared at
/// start-up, so this only matters if a delivery task is lost without answering.
const CLAIM_LEASE_MS: i64 = 10 * 60 * 1000;

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// One connection owned by one thread, and the queue of work for it.
#[derive(Clone)]
pub(super) struct ConnThread {
    jobs: mpsc::Sender<Job>,
}

impl ConnThread {
    fn spawn(name: &str, mut conn: Connection, path: &Path) -> Result<ConnThread, StoreError> {
        let (jobs, mut rx) = mpsc::channel::<Job>(WRITER_QUEUE);
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                while let Some(job) = rx.blocking_recv() {
                    job(&mut conn);
                }
            })
            .map_err(|cause| StoreError::StateDir {
                path: path.to_path_buf(),
                cause,
            })?;
        Ok(ConnThread { jobs })
    }

    /// Runs `f` on the thread and returns its result.
    pub(super) async fn call<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            // The caller may have stopped waiting (a timed-out health check); nothing to do.
            let _ = tx.send(f(conn));
        });
        self.jobs.send(job).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

/// The SQLite store; cheap to clone.
#[derive(Clone)]
pub struct Sqlite {
    /// The writer thread, which owns the only read-write connection.
    writer: ConnThread,
    /// The read-only connection for reports and metrics.
    reader: SqliteReader,
}

impl ToSql for Timestamp {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_millis()))
    }
}

impl FromSql for Timestamp {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        i64::column_result(value).map(Timestamp::from_millis)
    }
}

impl ToSql for PollStatus {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for PollStatus {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let s = value.as_str()?;
        PollStatus::parse(s).ok_or_else(|| {
            rusqlite::types::FromSqlError::Other(format!("unknown poll status {s:?}").into())
        })
    }
}

impl ToSql for SinkState {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for SinkState {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let s = value.as_str()?;
        SinkState::parse(s).ok_or_else(|| {
            rusqlite::types::FromSqlError::Other(format!("unknown sink state {s:?}").into())
        })
    }
}

impl FromSql for DeliveryState {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let s = value.as_str()?;
        DeliveryState::parse(s).ok_or_else(|| {
            rusqlite::types::FromSqlError::Other(format!("unknown delivery state {s:?}").into())
        })
    }
}
/// Milliseconds since the Unix epoch, for SQL inside this module.
pub(super) fn now_ms() -> i64 {
    Timestamp::now().as_millis()
}

impl Sqlite {
    /// Opens (creating if needed) the database at `path`, migrates it and starts the writer.
    pub fn open(path: &Path) -> Result<Sqlite, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|cause| StoreError::StateDir {
                path: dir.to_path_buf(),
                cause,
            })?;
        }
        let mut conn = open_connection(path)?;
        // Foreign keys off while the schema changes (a table rebuild must not cascade), then
        // checked and on again: SQLite's own procedure for altering tables.
        conn.pragma_update(None, "foreign_keys", false)?;
        schema::migrate(&mut conn)?;
        conn.pragma_update(None, "foreign_keys", true)?;
        let writer = ConnThread::spawn("feedwire-store", conn, path)?;
        // Opened after the migration, so the reader sees the current schema.
        let reader = SqliteReader::new(ConnThread::spawn(
            "feedwire-reader",
            open_read_only(path)?,
            path,
        )?);
        Ok(Sqlite { writer, reader })
    }

    /// The read-only side: reports and metrics that never queue behind writes.
    pub fn reader(&self) -> SqliteReader {
        self.reader.clone()
    }

    /// Runs `f` on the writer thread and returns its result.
    pub(super) async fn call<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R, StoreError> + Send + 'static,
    {
        self.writer.call(f).await
    }

    /// Voids every claim: called by the daemon at start, since claims of a process that
    /// died are never answered. Read-only commands must not call it while a daemon runs.
    pub async fn release_all_claims(&self) -> Result<usize, StoreError> {
        self.call(|conn| {
            Ok(conn.execute(
                "UPDATE outbox SET claimed_until = NULL WHERE claimed_until IS NOT NULL",
                [],
            )?)
        })
        .await
    }

    /// Answers when the writer thread and the database do (for health checks).
    /// Takes and releases the write lock, so a database another process locks, or a file
    /// that vanished, fails it.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.call(|conn| Ok(conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;")?))
            .await
    }

    /// Makes the feeds table match the config: new feeds added, changed URLs updated (their
    /// validators reset), feeds no longer listed marked inactive (their items are kept).
    pub async fn sync_feeds(&self, feeds: Vec<FeedSpec>) -> Result<Vec<StoredFeed>, StoreError> {
        self.call(move |conn| {
            let tx = conn.transaction()?;
            tx.execute("UPDATE feeds SET active = 0", [])?;
            for f in &feeds {
                tx.execute(
                    "INSERT INTO feeds (name, url) VALUES (?1, ?2)
                     ON CONFLICT(name) DO UPDATE SET active = 1,
                        etag = CASE WHEN url = excluded.url THEN etag END,
                        last_modified = CASE WHEN url = excluded.url THEN last_modified END,
                        next_poll_at = CASE WHEN url = excluded.url THEN next_poll_at END,
                        url = excluded.url",
                    params![f.name, f.url],
                )?;
            }
            let mut out = Vec::with_capacity(feeds.len());
            {
                let mut stmt = tx.prepare(
                    "SELECT id, name, url, etag, last_modified, polls, errors_in_row, next_poll_at,
                        guid_unreliable, rate_items, rate_hours, last_ok_at
                     FROM feeds WHERE active = 1 ORDER BY id",
                )?;
                let rows = stmt.query_map([], |r| {
                    Ok(StoredFeed {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        url: r.get(2)?,
                        etag: r.get(3)?,
                        last_modified: r.get(4)?,
                        polls: r.get(5)?,
                        errors_in_row: r.get(6)?,
                        next_poll_at: r.get(7)?,
                        guid_unreliable: r.get(8)?,
                        rate: Rate {
                            items: r.get(9)?,
                            hours: r.get(10)?,
                        },
                        last_ok_at: r.get(11)?,
                    })
                })?;
                for row in rows {
                    out.push(row?);
                }
            }
            tx.commit()?;
            Ok(out)
        })
        .await
    }

    /// Which of `keys` this feed already has, with their stored ids and revisions.
    pub async fn known_items(
        &self,
        feed_id: i64,
        keys: Vec<String>,
    ) -> Result<HashMap<String, KnownItem>, StoreError> {
        self.call(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT id, revision FROM items WHERE feed_id = ?1 AND key = ?2")?;
            let mut known = HashMap::new();
            for key in keys {
                let found = stmt
                    .query_row(params![feed_id, key], |r| {
                        Ok(KnownItem {
                            id: r.get(0)?,
                            revision: r.get(1)?,
                        })
                    })
                    .optional()?;
                if let Some(item) = found {
                    known.insert(key, item);
                }
            }
            Ok(known)
        })
        .await
    }

    /// Records polls that produced no items to store (304, error, nothing new), in one
    /// transaction: a tick's worth of unchanged feeds costs one commit, not one each.
    pub async fn record_polls(&self, polls: Vec<(i64, PollRecord)>) -> Result<(), StoreError> {
        self.call(move |conn| {
            let tx = conn.transaction()?;
            for (feed_id, poll) in &polls {
                write_poll(&tx, *feed_id, poll)?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// Stores a poll's new items, deciding for each whether it is a story already seen, with
    /// its event and one outbox row per sink, together with the poll's outcome, in one
    /// transaction.
    pub async fn ingest(&self, batch: IngestBatch) -> Result<IngestReport, StoreError> {
        self.call(move |conn| ingest::ingest(conn, batch)).await
    }

    /// Which of these URL keys some stored item already has (the cheap check before an
    /// article is fetched).
    pub async fn known_url_keys(&self, keys: Vec<String>) -> Result<HashSet<String>, StoreError> {
        self.call(move |conn| {
            let mut stmt = conn.prepare_cached("SELECT 1 FROM url_keys WHERE key = ?1")?;
            let mut known = HashSet::new();
            for key in keys {
                if stmt.exists(params![key])? {
                    known.insert(key);
                }
            }
            Ok(known)
        })
        .await
    }

    /// The first item of the stored story `fp` belongs to, and why, if any (the lookup the
    /// ingest transaction makes, without storing anything).
    pub async fn find_duplicate(
        &self,
        fp: Fingerprint,
        settings: DedupSettings,
    ) -> Result<Option<(String, crate::dedup::DuplicateReason)>, StoreError> {
        self.call(move |conn| {
            let none_pending = ingest::Bands::default();
            Ok(
                ingest::find_duplicate(conn, "", &fp, &settings, &none_pending, now_ms())?
                    .map(|m| (m.root, m.reason)),
            )
        })
        .await
    }

    /// Drops what retention no longer needs: bands older than `window`, event bodies of
    /// items older than `retention` whose deliveries are finished. Item rows stay (identity,
    /// URL keys, content hash), so an old item seen again is still not new.
    pub async fn prune(
        &self,
        window: Duration,
        retention: Duration,
    ) -> Result<(usize, usize), StoreError> {
        self.call(move |conn| {
            let now = now_ms();
            // Items older than the window are never near-duplicate candidates again: their
            // band rows and sketches go. Rowids grow with time, so "older" is "below the
            // rowid of the first item inside the window" (one search of `items_created`).
            // The band rows are found by a scan of the band table, once an hour: cheaper
            // than an index by item that every insert would pay for.
            let tx = conn.transaction()?;
            let first: i64 = tx.query_row(
                "SELECT COALESCE(
                    (SELECT rowid FROM items WHERE created_at >= ?1 ORDER BY created_at LIMIT 1),
                    (SELECT COALESCE(MAX(rowid), 0) + 1 FROM items))",
                params![now - window.as_millis() as i64],
                |r| r.get(0),
            )?;
            let bands = tx.execute("DELETE FROM story_bands WHERE item < ?1", params![first])?;
            tx.execute("DELETE FROM item_sketches WHERE item < ?1", params![first])?;
            tx.commit()?;
            let events = conn.execute(
                "DELETE FROM events WHERE created_at < ?1
                   AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.event_id = events.id AND o.state = 'pending')",
                params![now - retention.as_millis() as i64],
            )?;
            Ok((bands, events))
        })
        .await
    }

    /// Claims up to `limit` rows of `sink` due at `now`, oldest first.
    pub async fn claim_due(
        &self,
        sink: &str,
        limit: usize,
        now: Timestamp,
    ) -> Result<Vec<Delivery>, StoreError> {
        let sink = sink.to_string();
        self.call(move |conn| {
            let now = now.as_millis();
            let tx = conn.transaction()?;
            let mut out = Vec::new();
            {
                let mut stmt = tx.prepare_cached(
                    "SELECT o.id, o.event_id, o.webhook_id, e.body, o.attempts, e.created_at, o.next_attempt_at
                     FROM outbox o JOIN events e ON e.id = o.event_id
                     WHERE o.sink = ?1 AND o.state = 'pending' AND o.next_attempt_at <= ?2
                       AND (o.claimed_until IS NULL OR o.claimed_until < ?2)
                     ORDER BY o.next_attempt_at, o.id LIMIT ?3",
                )?;
                let rows =
                    stmt.query_map(params![sink, now, limit as i64], |r| delivery(r, &sink))?;
                for row in rows {
                    out.push(row?);
                }
                let mut mark =
                    tx.prepare_cached("UPDATE outbox SET claimed_until = ?2 WHERE id = ?1")?;
                for d in &out {
                    mark.execute(params![d.outbox_id, now + CLAIM_LEASE_MS])?;
                }
            }
            tx.commit()?;
            Ok(out)
        })
        .await
    }

    /// Records what became of a round of attempts, and releases the claims of rows that
    /// were not tried, in one transaction.
    pub async fn finish_many(
        &self,
        outcomes: Vec<(i64, Attempt)>,
        untried: Vec<i64>,
    ) -> Result<(), StoreError> {
        self.call(move |conn| {
            let tx = conn.transaction()?;
            for (id, attempt) in outcomes {
                write_attempt(&tx, id, attempt)?;
            }
            for id in untried {
                tx.prepare_cached("UPDATE outbox SET claimed_until = NULL WHERE id = ?1")?
                    .execute(params![id])?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// When the next pending row of `sink` is due (unclaimed), if any.
    pub async fn next_due(&self, sink: &str) -> Result<Option<Timestamp>, StoreError> {
        let sink = sink.to_string();
        self.call(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT MIN(next_attempt_at) FROM outbox
                     WHERE sink = ?1 AND state = 'pending' AND claimed_until IS NULL",
                    params![sink],
                    |r| r.get::<_, Option<Timestamp>>(0),
                )
                .optional()?
                .flatten())
        })
        .await
    }

    /// Claims the probe of a paused sink: the row due first among those that already failed
    /// (it may not be due yet), else the oldest fresh row; `None` when nothing waits.
    pub async fn claim_probe(
        &self,
        sink: &str,
        now: Timestamp,
    ) -> Result<Option<Delivery>, StoreError> {
        let sink = sink.to_string();
        self.call(move |conn| {
            let now = now.as_millis();
            let tx = conn.transaction()?;
            let found = {
                let mut stmt = tx.prepare_cached(
                    "SELECT o.id, o.event_id, o.webhook_id, e.body, o.attempts, e.created_at, o.next_attempt_at
                     FROM outbox o JOIN events e ON e.id = o.event_id
                     WHERE o.sink = ?1 AND o.state = 'pending'
                       AND (o.claimed_until IS NULL OR o.claimed_until < ?2)
                     ORDER BY o.attempts = 0, o.next_attempt_at, o.id LIMIT 1",
                )?;
                stmt.query_row(params![sink, now], |r| delivery(r, &sink))
                    .optional()?
            };
            if let Some(d) = &found {
                tx.prepare_cached("UPDATE outbox SET claimed_until = ?2 WHERE id = ?1")?
                    .execute(params![d.outbox_id, now + CLAIM_LEASE_MS])?;
            }
            tx.commit()?;
            Ok(found)
        })
        .await
    }

    /// The receiver answers again: every row of `sink` that waited only because of the
    /// outage is due now. Returns how many.
    pub async fn resume_sink(&self, sink: &str, now: Timestamp) -> Result<usize, StoreError> {
        let sink = sink.to_string();
        self.call(move |conn| {
            Ok(conn.execute(
                "UPDATE outbox SET next_attempt_at = MIN(next_attempt_at, ?2), outage = 0
                 WHERE sink = ?1 AND state = 'pending' AND outage = 1",
                params![sink, now],
            )?)
        })
        .await
    }

    /// Dead-letters the pending rows of `sink` created before `created_before`: their
    /// `max_age` passed while the sink was paused. Each keeps its last error, or gets `why`.
    pub async fn expire(
        &self,
        sink: &str,
        created_before: Timestamp,
        why: String,
        suffix: String,
    ) -> Result<usize, StoreError> {
        let sink = sink.to_string();
        self.call(move |conn| {
            Ok(conn.execute(
                "UPDATE outbox SET state = 'dead', done_at = ?3, claimed_until = NULL, outage = 0,
                    last_error = COALESCE(last_error, ?4) || ?5
                 WHERE sink = ?1 AND state = 'pending' AND created_at < ?2
                   AND (claimed_until IS NULL OR claimed_until < ?3)",
                params![sink, created_before, now_ms(), why, suffix],
            )?)
        })
        .await
    }

    /// Records a sink's health.
    pub async fn set_sink_status(&self, status: SinkStatus) -> Result<(), StoreError> {
        self.call(move |conn| {
            conn.prepare_cached(
                "INSERT INTO sink_state (sink, state, reason, since, until, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(sink) DO UPDATE SET state = excluded.state, reason = excluded.reason,
                    since = excluded.since, until = excluded.until, updated_at = excluded.updated_at",
            )?
            .execute(params![
                status.sink,
                status.state,
                status.reason,
                status.since,
                status.until,
                status.updated_at
            ])?;
            Ok(())
        })
        .await
    }

    /// Queues rows of `sink` again: dead ones, or every row created since `since`.
    /// They keep their `webhook_id`. Returns how many rows were queued.
    pub async fn redeliver(
        &self,
        sink: &str,
        dead_only: bool,
        since: Option<Timestamp>,
    ) -> Result<usize, StoreError> {
        let sink = sink.to_string();
        self.call(move |conn| {
            let now = now_ms();
            let n = if dead_only {
                conn.execute(
                    "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ?2, claimed_until = NULL,
                        done_at = NULL WHERE sink = ?1 AND state = 'dead'",
                    params![sink, now],
                )?
            } else {
                conn.execute(
                    "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ?2, claimed_until = NULL,
                        done_at = NULL WHERE sink = ?1 AND created_at >= ?3",
                    params![sink, now, since.unwrap_or_default()],
                )?
            };
            Ok(n)
        })
        .await
    }
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|cause| StoreError::Open {
        path: path.to_path_buf(),
        cause: DatabaseError(cause),
    })?;
    // Pragmas outside any transaction: WAL survives power loss with synchronous=NORMAL
    // losing at most the last transactions, never corrupting the file.
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // Every hot statement stays prepared (rusqlite keeps 16 by default; we have more).
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // Pages kept in memory (negative = KiB): enough for the hot part of the band index.
    conn.pragma_update(None, "cache_size", -PAGE_CACHE_KIB)?;
    Ok(conn)
}

/// A read-only connection to the same file, for [`SqliteReader`].
fn open_read_only(path: &Path) -> Result<Connection, StoreError> {
    use rusqlite::OpenFlags;
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|cause| StoreError::Open {
        path: path.to_path_buf(),
        cause: DatabaseError(cause),
    })?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "cache_size", -READER_CACHE_KIB)?;
    Ok(conn)
}

/// An outbox row as [`Sqlite::claim_due`] and [`Sqlite::claim_probe`] select it.
fn delivery(r: &rusqlite::Row<'_>, sink: &str) -> rusqlite::Result<Delivery> {
    Ok(Delivery {
        outbox_id: r.get(0)?,
        event_id: r.get(1)?,
        webhook_id: r.get(2)?,
        sink: sink.to_string(),
        body: r.get(3)?,
        attempts: r.get(4)?,
        created_at: r.get(5)?,
        next_attempt_at: r.get(6)?,
    })
}

fn write_attempt(conn: &Connection, outbox_id: i64, attempt: Attempt) -> Result<(), StoreError> {
    let now = now_ms();
    match attempt {
        Attempt::Delivered => conn
            .prepare_cached(
                "UPDATE outbox SET state = 'delivered', attempts = attempts + 1, claimed_until = NULL,
                    done_at = ?2, last_status = NULL, last_error = NULL, outage = 0 WHERE id = ?1",
            )?
            .execute(params![outbox_id, now])?,
        Attempt::Retry {
            at,
            status,
            error,
            outage,
        } => conn
            .prepare_cached(
                "UPDATE outbox SET attempts = attempts + 1, claimed_until = NULL, next_attempt_at = ?2,
                    last_status = ?3, last_error = ?4, outage = ?5 WHERE id = ?1",
            )?
            .execute(params![outbox_id, at, status, error, outage])?,
        Attempt::Dead { status, error } => conn
            .prepare_cached(
                "UPDATE outbox SET state = 'dead', attempts = attempts + 1, claimed_until = NULL,
                    done_at = ?2, last_status = ?3, last_error = ?4, outage = 0 WHERE id = ?1",
            )?
            .execute(params![outbox_id, now, status, error])?,
        Attempt::Probed { status, error } => conn
            .prepare_cached(
                "UPDATE outbox SET claimed_until = NULL, last_status = ?2, last_error = ?3, outage = 1
                 WHERE id = ?1",
            )?
            .execute(params![outbox_id, status, error])?,
    };
    Ok(())
}

pub(super) fn write_poll(
    conn: &Connection,
    feed_id: i64,
    poll: &PollRecord,
) -> Result<(), StoreError> {
    if let Some(event) = poll.event.as_ref().filter(|e| !e.sinks.is_empty()) {
        ingest::emit(
            conn,
            None,
            Some(feed_id),
            event.kind,
            &event.body,
            &event.sinks,
            poll.at.as_millis(),
        )?;
    }
    // Cached: it runs once per poll, and parsing the statement each time was a third of the
    // writer thread's work in a cycle of 304s.
    conn.prepare_cached(
        "UPDATE feeds SET polls = polls + 1, last_poll_at = ?2, last_status = ?3, last_http_status = ?4,
            last_error = ?5, errors_in_row = ?6, next_poll_at = ?7,
            etag = COALESCE(?8, etag), last_modified = COALESCE(?9, last_modified),
            title = COALESCE(?10, title), url = COALESCE(?11, url),
            rate_items = COALESCE(?12, rate_items), rate_hours = COALESCE(?13, rate_hours),
            last_ok_at = CASE WHEN ?3 IN ('ok', 'not-modified') THEN ?2 ELSE last_ok_at END,
            schedule_reason = ?14
         WHERE id = ?1",
    )?
    .execute(params![
            feed_id,
            poll.at,
            poll.status.as_str(),
            poll.http_status,
            poll.error,
            poll.errors_in_row,
            poll.next_poll_at,
            poll.etag,
            poll.last_modified,
            poll.title,
            poll.moved_to,
            poll.rate.map(|r| r.items),
            poll.rate.map(|r| r.hours),
            poll.reason
        ])?;
    Ok(())
}
