//! The only place that knows SQL: feeds, items, events and the outbox in one SQLite file,
//! written by one thread. [`postgres`] holds the start of a PostgreSQL store for several
//! daemons on one database (leases, migrations, the same-story decision); it is not
//! selectable yet.
//!
//! Every method is `async` and runs on the writer thread, so blocking SQLite work never
//! runs on the async reactor and writes never contend with each other.

mod ingest;
mod schema;
pub mod postgres;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};

use crate::dedup::Fingerprint;
use crate::model::EventType;
use crate::scheduler::Rate;

pub use schema::VERSION as SCHEMA_VERSION;

/// How long SQLite waits for a lock held by another process (a CLI reader) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 64;

/// SQLite's page cache per connection, in KiB.
const PAGE_CACHE_KIB: i64 = 4 * 1024;

/// Jobs waiting for the writer thread; callers wait when it is full.
const WRITER_QUEUE: usize = 256;

/// How long a claimed outbox row stays invisible to other claims. Claims are cleared at
/// start-up, so this only matters if a delivery task is lost without answering.
const CLAIM_LEASE_MS: i64 = 10 * 60 * 1000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create state directory {path}: {source}")]
    StateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open database {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "database schema version {found} is newer than this feedwire supports ({supported}); upgrade feedwire"
    )]
    TooNew { found: i64, supported: i64 },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database writer has stopped")]
    Closed,
}

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// A handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    /// Work for the writer thread, which owns the only read-write connection.
    jobs: mpsc::Sender<Job>,
}

/// A feed as the config names it.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedSpec {
    pub name: String,
    pub url: String,
}

/// A feed's stored polling state.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedState {
    pub id: i64,
    pub name: String,
    pub url: String,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub polls: i64,
    pub errors_in_row: u32,
    pub next_poll_at: Option<i64>,
    /// The feed's GUIDs were found unusable; items are identified by their links.
    pub guid_unreliable: bool,
    pub rate: Rate,
    /// The last poll that answered 200 or 304.
    pub last_ok_at: Option<i64>,
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
    fn as_str(self) -> &'static str {
        match self {
            PollStatus::Ok => "ok",
            PollStatus::NotModified => "not-modified",
            PollStatus::Error => "error",
            PollStatus::Gone => "gone",
        }
    }
}

/// The outcome of one poll, as kept for `feedwire feeds` and the next conditional GET.
#[derive(Debug, Clone, PartialEq)]
pub struct PollRecord {
    pub at: i64,
    pub status: PollStatus,
    pub http_status: Option<u16>,
    pub error: Option<String>,
    pub errors_in_row: u32,
    pub next_poll_at: i64,
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
    pub published_at: Option<i64>,
    pub content_source: Option<&'static str>,
    /// False for items remembered without being emitted (backfill limit).
    pub emitted: bool,
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
    pub max_distance: u32,
    /// How far back near-duplicates are searched, in milliseconds.
    pub window_ms: i64,
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
    pub created_at: i64,
}

/// What became of one attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    Delivered,
    Retry {
        at: i64,
        status: Option<u16>,
        error: String,
    },
    Dead {
        status: Option<u16>,
        error: String,
    },
}

/// `feedwire feeds`: one row per configured feed.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedReport {
    pub name: String,
    pub url: String,
    pub title: Option<String>,
    pub active: bool,
    pub last_poll_at: Option<i64>,
    pub last_status: Option<String>,
    pub last_http_status: Option<u16>,
    pub last_error: Option<String>,
    pub errors_in_row: u32,
    pub next_poll_at: Option<i64>,
    /// Why the next poll is when it is.
    pub schedule_reason: Option<String>,
    pub items: i64,
}

/// `feedwire items`: recent items.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemReport {
    pub id: String,
    pub feed: String,
    pub title: Option<String>,
    pub url: Option<String>,
    pub published_at: Option<i64>,
    pub created_at: i64,
    pub duplicate_of: Option<String>,
    pub duplicate_reason: Option<String>,
    pub emitted: bool,
}

/// `feedwire deliveries`: outbox counts per sink.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SinkBacklog {
    pub sink: String,
    pub pending: i64,
    pub delivered: i64,
    pub dead: i64,
    pub oldest_pending_at: Option<i64>,
}

/// `feedwire deliveries --dead` and pending rows with their last error.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryReport {
    pub sink: String,
    pub event_id: String,
    pub webhook_id: String,
    pub item_title: Option<String>,
    pub state: String,
    pub attempts: u32,
    pub next_attempt_at: i64,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub created_at: i64,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Store {
    /// Opens (creating if needed) the database at `path`, migrates it and starts the writer.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::StateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let mut conn = open_connection(path)?;
        // Foreign keys off while the schema changes (a table rebuild must not cascade), then
        // checked and on again: SQLite's own procedure for altering tables.
        conn.pragma_update(None, "foreign_keys", false)?;
        schema::migrate(&mut conn)?;
        conn.pragma_update(None, "foreign_keys", true)?;

        let (jobs, mut rx) = mpsc::channel::<Job>(WRITER_QUEUE);
        std::thread::Builder::new()
            .name("feedwire-store".into())
            .spawn(move || {
                while let Some(job) = rx.blocking_recv() {
                    job(&mut conn);
                }
            })
            .map_err(|source| StoreError::StateDir {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Store { jobs })
    }

    /// Runs `f` on the writer thread and returns its result.
    async fn call<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let _ = tx.send(f(conn));
        });
        self.jobs.send(job).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
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
    pub async fn sync_feeds(&self, feeds: Vec<FeedSpec>) -> Result<Vec<FeedState>, StoreError> {
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
                    Ok(FeedState {
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
            Ok(ingest::find_duplicate(conn, "", &fp, &settings, now_ms())?
                .map(|m| (m.root, m.reason)))
        })
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

    /// Makes the SimHash bands match `max_distance` (they are only valid for the distance
    /// they were cut for), rebuilding them from the stored fingerprints when it changed.
    pub async fn prepare_dedup(&self, max_distance: u32) -> Result<(), StoreError> {
        self.call(move |conn| ingest::prepare_bands(conn, max_distance))
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
            // A scan of the band table, once an hour: cheaper than an index every insert pays.
            let bands = conn.execute(
                "DELETE FROM simhash_bands WHERE created_at < ?1",
                params![now - window.as_millis() as i64],
            )?;
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
        let sink = sink.to_string();
        self.call(move |conn| {
            let now = now_ms();
            let tx = conn.transaction()?;
            let mut out = Vec::new();
            {
                let mut stmt = tx.prepare_cached(
                    "SELECT o.id, o.event_id, o.webhook_id, e.body, o.attempts, e.created_at
                     FROM outbox o JOIN events e ON e.id = o.event_id
                     WHERE o.sink = ?1 AND o.state = 'pending' AND o.next_attempt_at <= ?2
                       AND (o.claimed_until IS NULL OR o.claimed_until < ?2)
                     ORDER BY o.next_attempt_at, o.id LIMIT ?3",
                )?;
                let rows = stmt.query_map(params![sink, now, limit as i64], |r| {
                    Ok(Delivery {
                        outbox_id: r.get(0)?,
                        event_id: r.get(1)?,
                        webhook_id: r.get(2)?,
                        sink: sink.clone(),
                        body: r.get(3)?,
                        attempts: r.get(4)?,
                        created_at: r.get(5)?,
                    })
                })?;
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
    pub async fn next_due(&self, sink: &str) -> Result<Option<i64>, StoreError> {
        let sink = sink.to_string();
        self.call(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT MIN(next_attempt_at) FROM outbox
                     WHERE sink = ?1 AND state = 'pending' AND claimed_until IS NULL",
                    params![sink],
                    |r| r.get::<_, Option<i64>>(0),
                )
                .optional()?
                .flatten())
        })
        .await
    }

    /// Rows waiting for delivery, all sinks together.
    pub async fn pending(&self) -> Result<i64, StoreError> {
        self.call(|conn| {
            Ok(conn.query_row(
                "SELECT COUNT(*) FROM outbox WHERE state = 'pending'",
                [],
                |r| r.get(0),
            )?)
        })
        .await
    }

    /// Queues rows of `sink` again: dead ones, or every row created since `since` (ms).
    /// They keep their `webhook_id`. Returns how many rows were queued.
    pub async fn redeliver(
        &self,
        sink: &str,
        dead_only: bool,
        since: Option<i64>,
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
                    params![sink, now, since.unwrap_or(0)],
                )?
            };
            Ok(n)
        })
        .await
    }

    pub async fn feeds_report(&self) -> Result<Vec<FeedReport>, StoreError> {
        self.call(|conn| {
            let mut stmt = conn.prepare(
                "SELECT f.name, f.url, f.title, f.active, f.last_poll_at, f.last_status, f.last_http_status,
                        f.last_error, f.errors_in_row, f.next_poll_at,
                        (SELECT COUNT(*) FROM items i WHERE i.feed_id = f.id), f.schedule_reason
                 FROM feeds f ORDER BY f.active DESC, f.name",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(FeedReport {
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
                        i.duplicate_reason, i.emitted
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
            let state = if dead { "dead" } else { "pending" };
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

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|source| StoreError::Open {
        path: path.to_path_buf(),
        source,
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

fn write_attempt(conn: &Connection, outbox_id: i64, attempt: Attempt) -> Result<(), StoreError> {
    let now = now_ms();
    match attempt {
        Attempt::Delivered => conn
            .prepare_cached(
                "UPDATE outbox SET state = 'delivered', attempts = attempts + 1, claimed_until = NULL,
                    done_at = ?2, last_status = NULL, last_error = NULL WHERE id = ?1",
            )?
            .execute(params![outbox_id, now])?,
        Attempt::Retry { at, status, error } => conn
            .prepare_cached(
                "UPDATE outbox SET attempts = attempts + 1, claimed_until = NULL, next_attempt_at = ?2,
                    last_status = ?3, last_error = ?4 WHERE id = ?1",
            )?
            .execute(params![outbox_id, at, status, error])?,
        Attempt::Dead { status, error } => conn
            .prepare_cached(
                "UPDATE outbox SET state = 'dead', attempts = attempts + 1, claimed_until = NULL,
                    done_at = ?2, last_status = ?3, last_error = ?4 WHERE id = ?1",
            )?
            .execute(params![outbox_id, now, status, error])?,
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
            poll.at,
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
