//! The only place that knows SQL: feeds, items, events and the outbox in one SQLite file,
//! written by one thread and read by another. [`postgres`] holds the start of a PostgreSQL
//! store for several daemons on one database (leases, migrations, the same-story decision);
//! it is not selectable yet.
//!
//! This module's public items are the interface a second backend (PostgreSQL) implements:
//! no rusqlite type appears in it, errors included; states are enums and times
//! [`Timestamp`]s. [`Store`]'s methods run on the writer thread, so blocking SQLite work never
//! runs on the async reactor and writes never contend with each other. Reports and metrics
//! go through a [`Reader`] ([`Store::reader`], in `read.rs`): a read-only connection on its
//! own thread, so a `/metrics` scrape or `feedwire feeds` never waits behind the writer.

mod ingest;
mod read;
mod schema;
pub mod postgres;
pub mod status;
mod websub;

pub use read::{DeliveryReport, FeedCounts, FeedReport, ItemReport, Reader, SinkBacklog};

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::{FromSql, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};

use crate::dedup::Fingerprint;
use crate::model::EventType;
pub use crate::model::Timestamp;
use crate::scheduler::Rate;

pub use schema::VERSION as SCHEMA_VERSION;

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

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    // Each message carries its cause, kept in `cause` rather than `source` (which thiserror
    // would also report as the source), so a printed error chain shows every cause once.
    #[error("cannot create state directory {path}: {cause}")]
    StateDir {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("cannot open database {path}: {cause}")]
    Open { path: PathBuf, cause: DatabaseError },
    #[error(
        "database schema version {found} is newer than this feedwire supports ({supported}); upgrade feedwire"
    )]
    TooNew { found: i64, supported: i64 },
    #[error("database error: {0}")]
    Database(DatabaseError),
    #[error("database thread has stopped")]
    Closed,
}

/// What the database engine said, without exposing the engine's own error type.
#[derive(Debug)]
pub struct DatabaseError(rusqlite::Error);

impl std::fmt::Display for DatabaseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for DatabaseError {}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        StoreError::Database(DatabaseError(e))
    }
}

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// One connection owned by one thread, and the queue of work for it.
#[derive(Clone)]
struct ConnThread {
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
    async fn call<R, F>(&self, f: F) -> Result<R, StoreError>
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

/// A handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    /// The writer thread, which owns the only read-write connection.
    writer: ConnThread,
    /// The read-only connection for reports and metrics.
    reader: Reader,
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

/// A feed as the config names it.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedSpec {
    pub name: String,
    pub url: String,
}

/// A feed's stored polling state.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFeed {
    pub id: i64,
    pub name: String,
    pub url: String,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub polls: i64,
    pub errors_in_row: u32,
    pub next_poll_at: Option<Timestamp>,
    /// The feed's GUIDs were found unusable; items are identified by their links.
    pub guid_unreliable: bool,
    pub rate: Rate,
    /// The last poll that answered 200 or 304.
    pub last_ok_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollStatus {
    Ok,
    NotModified,
    Error,
    /// 410 Gone: the feed is not polled any more.
    Gone,
}

impl PollStatus {
    pub const ALL: [PollStatus; 4] = [
        PollStatus::Ok,
        PollStatus::NotModified,
        PollStatus::Error,
        PollStatus::Gone,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PollStatus::Ok => "ok",
            PollStatus::NotModified => "not-modified",
            PollStatus::Error => "error",
            PollStatus::Gone => "gone",
        }
    }

    pub fn parse(s: &str) -> Option<PollStatus> {
        PollStatus::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// The feed answered (200 or 304).
    pub fn answered(self) -> bool {
        matches!(self, PollStatus::Ok | PollStatus::NotModified)
    }
}

/// Where an outbox row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Waiting for (another) attempt.
    Pending,
    Delivered,
    /// Given up on; kept for `feedwire deliveries --dead` and redelivery.
    Dead,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryState> {
        [
            DeliveryState::Pending,
            DeliveryState::Delivered,
            DeliveryState::Dead,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
    }
}

/// The outcome of one poll, as kept for `feedwire feeds` and the next conditional GET.
#[derive(Debug, Clone, PartialEq)]
pub struct PollRecord {
    pub at: Timestamp,
    pub status: PollStatus,
    pub http_status: Option<u16>,
    pub error: Option<String>,
    pub errors_in_row: u32,
    pub next_poll_at: Timestamp,
    /// Validators for the next conditional GET; kept unchanged when `None` on a 304 or error.
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub title: Option<String>,
    /// The feed's new address after a permanent redirect.
    pub moved_to: Option<String>,
    /// The feed's item rate after this poll (successful polls only).
    pub rate: Option<Rate>,
    /// Why the next poll is when it is.
    pub reason: Option<String>,
    /// A feed event (`feed.failing`, `feed.recovered`) to deliver with this poll's record.
    pub event: Option<FeedEvent>,
}

/// An event about a feed rather than an item.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedEvent {
    pub kind: EventType,
    pub body: String,
    pub sinks: Vec<String>,
}

/// An item the store already has.
#[derive(Debug, Clone, PartialEq)]
pub struct KnownItem {
    pub id: String,
    /// Its feed-side revision when stored (older rows have none).
    pub revision: Option<String>,
}

/// An item to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewItem {
    pub id: String,
    pub key: String,
    pub url: Option<String>,
    pub link: Option<String>,
    pub guid: Option<String>,
    pub title: Option<String>,
    pub published_at: Option<Timestamp>,
    pub content_source: Option<&'static str>,
    /// False for items remembered without being emitted (backfill limit, a rule, age).
    pub emitted: bool,
    /// Why an item is not emitted: `rule:NAME`, `max_item_age` or `backfill`.
    pub not_sent: Option<String>,
    /// What the item is recognised by across feeds; `None` skips cross-feed dedup.
    pub fingerprint: Option<Fingerprint>,
    /// Sinks that get this item's `item.new` event.
    pub new_sinks: Vec<String>,
    /// Sinks that get its `item.duplicate` event when it turns out to be one.
    pub duplicate_sinks: Vec<String>,
    /// The feed-side revision (title and text) it was seen with.
    pub revision: Option<String>,
    /// When set, this is a new revision of the stored item with this id, not a new item.
    pub update_of: Option<String>,
    /// Sinks that get its `item.updated` event.
    pub updated_sinks: Vec<String>,
}

/// Renders an event body once the store knows what the item is: called with the item's
/// index in the batch, the event type, and the item it duplicates.
pub type Render = Box<dyn Fn(usize, EventType, Option<&str>) -> String + Send>;

/// How items are recognised as the same story.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DedupSettings {
    pub near_duplicates: bool,
    /// How far back near-duplicates are searched.
    pub window: Duration,
}

/// Items of one poll of one feed, stored with the poll's outcome in one transaction, so a
/// crash never records a feed's new validators without its items.
pub struct IngestBatch {
    pub feed_id: i64,
    pub poll: PollRecord,
    pub items: Vec<NewItem>,
    pub dedup: DedupSettings,
    pub render: Render,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestReport {
    pub stored: usize,
    /// Items emitted as `item.new`.
    pub emitted: usize,
    /// Why each newly stored item was not sent, when it was not (`rule:NAME`, …).
    pub not_sent: Vec<String>,
    pub duplicates: usize,
    /// Known items whose text changed.
    pub updated: usize,
    /// The reason of each duplicate (`url`, `content`, `near`).
    pub duplicate_reasons: Vec<&'static str>,
    pub already_known: usize,
    /// Whether the batch showed the feed's GUIDs to be unusable (it now uses links).
    pub guids_unreliable: bool,
}

/// One outbox row handed to a sink.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub outbox_id: i64,
    pub event_id: String,
    pub webhook_id: String,
    pub sink: String,
    pub body: String,
    pub attempts: u32,
    pub created_at: Timestamp,
    /// When the row is due on its own schedule (a probe may be sent before).
    pub next_attempt_at: Timestamp,
}

/// What became of one attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    Delivered,
    Retry {
        at: Timestamp,
        status: Option<u16>,
        error: String,
        /// The failure was the receiver's (down, gone), not this delivery's: the row is due
        /// again at once when the receiver answers ([`Store::resume_sink`]).
        outage: bool,
    },
    Dead {
        status: Option<u16>,
        error: String,
    },
    /// A probe sent ahead of the row's own time found the receiver still down: not one of
    /// the row's own attempts, so its count and its time stay; only the last error changes.
    Probed {
        status: Option<u16>,
        error: String,
    },
}

/// A sink's health, as the delivery worker sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkState {
    /// Deliveries succeed (or fail one by one, on their own merits).
    Up,
    /// Failures pointing at the receiver (no answer, 5xx), not yet enough in a row to call
    /// it down.
    Failing,
    /// The receiver is down or gone: one probe at a time until it answers.
    Paused,
}

impl SinkState {
    pub fn as_str(self) -> &'static str {
        match self {
            SinkState::Up => "up",
            SinkState::Failing => "failing",
            SinkState::Paused => "paused",
        }
    }

    pub fn parse(s: &str) -> Option<SinkState> {
        match s {
            "up" => Some(SinkState::Up),
            "failing" => Some(SinkState::Failing),
            "paused" => Some(SinkState::Paused),
            _ => None,
        }
    }
}

/// A sink's recorded health: written by its delivery worker when it changes, read by
/// `feedwire deliveries` and by the next worker after a restart.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkStatus {
    pub sink: String,
    pub state: SinkState,
    /// Why it is failing or paused: the error that decided it.
    pub reason: Option<String>,
    /// When the receiver started failing.
    pub since: Option<Timestamp>,
    /// Paused: when the next probe goes out.
    pub until: Option<Timestamp>,
    pub updated_at: Timestamp,
}

/// Milliseconds since the Unix epoch, for SQL inside this module.
fn now_ms() -> i64 {
    Timestamp::now().as_millis()
}

impl Store {
    /// Opens (creating if needed) the database at `path`, migrates it and starts the writer.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
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
        let reader = Reader::new(ConnThread::spawn(
            "feedwire-reader",
            open_read_only(path)?,
            path,
        )?);
        Ok(Store { writer, reader })
    }

    /// The read-only side: reports and metrics that never queue behind writes.
    pub fn reader(&self) -> Reader {
        self.reader.clone()
    }

    /// Runs `f` on the writer thread and returns its result.
    async fn call<R, F>(&self, f: F) -> Result<R, StoreError>
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

    /// Records a poll that produced no items to store (304, error, nothing new).
    pub async fn record_poll(&self, feed_id: i64, poll: PollRecord) -> Result<(), StoreError> {
        self.call(move |conn| {
            write_poll(conn, feed_id, &poll)?;
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

    /// Claims up to `limit` due rows of `sink`, oldest first.
    pub async fn claim(&self, sink: &str, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        self.claim_due(sink, limit, Timestamp::now()).await
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

/// A read-only connection to the same file, for [`Reader`].
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

/// An outbox row as [`Store::claim`] and [`Store::claim_probe`] select it.
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

fn write_poll(conn: &Connection, feed_id: i64, poll: &PollRecord) -> Result<(), StoreError> {
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
