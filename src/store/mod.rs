//! The store: feeds, items, events and the outbox, behind one interface with two backends.
//!
//! [`Store`] and [`Reader`] are that interface: no engine's type appears in them, errors
//! included; states are enums and times [`Timestamp`]s. Each method runs on the backend the
//! config chose:
//! - SQLite (`sqlite.rs`, the embedded default): one file, written by one thread (so writes
//!   never contend and blocking work never runs on the reactor), read by another;
//! - PostgreSQL ([`postgres`]): one database several daemons share, each claiming due feeds
//!   and outbox rows with leases that expire, so a node that dies loses its claims to the
//!   others.
//!
//! Reports and metrics go through a [`Reader`] ([`Store::reader`]): on SQLite a read-only
//! connection on its own thread, on PostgreSQL the pool; a `/metrics` scrape or `feedwire
//! feeds` never waits behind the writer.

mod ingest;
pub mod postgres;
mod read;
mod schema;
mod sqlite;
pub mod status;
mod websub;

pub use read::{DeliveryReport, FeedCounts, FeedReport, ItemReport, SinkBacklog};

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::dedup::Fingerprint;
use crate::model::EventType;
pub use crate::model::Timestamp;
use crate::scheduler::Rate;

pub use schema::VERSION as SCHEMA_VERSION;

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
    #[error(transparent)]
    Postgres(#[from] postgres::PgError),
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

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> StoreError {
        StoreError::Postgres(e.into())
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> StoreError {
        StoreError::Postgres(e.into())
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        StoreError::Database(DatabaseError(e))
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

/// A feed a shared store was asked to lease for a poll.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedLease {
    /// This node holds the feed until its poll is recorded (or the lease passes): its state
    /// as the store has it now, which another node's poll may have changed.
    Held(StoredFeed),
    /// Another node holds it, or polled it since: ask again at `retry_at`.
    Busy { id: i64, retry_at: Timestamp },
}

/// A handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    engine: Engine,
}

#[derive(Clone)]
enum Engine {
    Sqlite(sqlite::Sqlite),
    Postgres(postgres::PgStore),
}

/// Runs the same call on whichever backend the store has.
macro_rules! on_engine {
    ($engine:expr, $b:ident => $call:expr) => {
        match $engine {
            Engine::Sqlite($b) => $call,
            Engine::Postgres($b) => $call,
        }
    };
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path`, migrates it and starts the
    /// writer.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Ok(Store {
            engine: Engine::Sqlite(sqlite::Sqlite::open(path)?),
        })
    }

    /// Connects to the store the config names: its SQLite file, or its PostgreSQL database
    /// (migrated, a newer schema refused).
    pub async fn connect(config: &crate::config::Config) -> Result<Store, StoreError> {
        match &config.store {
            crate::config::StoreConfig::Sqlite => Store::open(&config.database_path()),
            crate::config::StoreConfig::Postgres(pg) => {
                let settings = postgres::PgSettings::from_config(pg)?;
                Ok(Store::postgres(
                    postgres::PgStore::connect(&settings).await?,
                ))
            }
        }
    }

    /// A store on an already connected PostgreSQL database.
    pub fn postgres(pg: postgres::PgStore) -> Store {
        Store {
            engine: Engine::Postgres(pg),
        }
    }

    /// The read side: reports and metrics that never queue behind writes.
    pub fn reader(&self) -> Reader {
        Reader {
            engine: match &self.engine {
                Engine::Sqlite(s) => ReadEngine::Sqlite(s.reader()),
                Engine::Postgres(p) => ReadEngine::Postgres(p.clone()),
            },
        }
    }

    /// The lease of a shared store (PostgreSQL): several daemons poll its feeds and deliver
    /// its outbox, each claiming what it works on for this long. `None` for SQLite, which one
    /// daemon owns.
    pub fn lease(&self) -> Option<Duration> {
        match &self.engine {
            Engine::Sqlite(_) => None,
            Engine::Postgres(p) => Some(p.lease()),
        }
    }

    /// Claims, for this node, the due feeds among `ids` (a shared store only; SQLite holds
    /// every feed already). A feed's lease ends when its poll is recorded.
    pub async fn lease_feeds(&self, ids: Vec<i64>) -> Result<Vec<FeedLease>, StoreError> {
        match &self.engine {
            Engine::Sqlite(_) => Ok(Vec::new()),
            Engine::Postgres(p) => p.lease_feeds(ids).await,
        }
    }

    /// Extends every lease this node holds (feeds being polled, outbox rows being
    /// delivered); a no-op on SQLite. Returns how many were extended.
    pub async fn renew_leases(&self) -> Result<u64, StoreError> {
        match &self.engine {
            Engine::Sqlite(_) => Ok(0),
            Engine::Postgres(p) => p.renew_leases().await,
        }
    }

    /// Voids this daemon's earlier claims: called at start, since claims of a process that
    /// died are never answered (on PostgreSQL, only claims made under this node's name).
    /// Read-only commands must not call it while a daemon runs.
    pub async fn release_all_claims(&self) -> Result<usize, StoreError> {
        on_engine!(&self.engine, b => b.release_all_claims().await)
    }

    /// Answers when the database does (for health checks); on SQLite it takes and releases
    /// the write lock, so a database another process locks, or a file that vanished, fails it.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_engine!(&self.engine, b => b.ping().await)
    }

    /// Makes the feeds table match the config: new feeds added, changed URLs updated (their
    /// validators reset), feeds no longer listed marked inactive (their items are kept).
    pub async fn sync_feeds(&self, feeds: Vec<FeedSpec>) -> Result<Vec<StoredFeed>, StoreError> {
        on_engine!(&self.engine, b => b.sync_feeds(feeds).await)
    }

    /// Which of `keys` this feed already has, with their stored ids and revisions.
    pub async fn known_items(
        &self,
        feed_id: i64,
        keys: Vec<String>,
    ) -> Result<HashMap<String, KnownItem>, StoreError> {
        on_engine!(&self.engine, b => b.known_items(feed_id, keys).await)
    }

    /// Records polls that produced no items to store (304, error, nothing new), in one
    /// transaction: a tick's worth of unchanged feeds costs one commit, not one each. On a
    /// shared store this also ends the feeds' leases.
    pub async fn record_polls(&self, polls: Vec<(i64, PollRecord)>) -> Result<(), StoreError> {
        on_engine!(&self.engine, b => b.record_polls(polls).await)
    }

    /// Records a poll that produced no items to store (304, error, nothing new).
    pub async fn record_poll(&self, feed_id: i64, poll: PollRecord) -> Result<(), StoreError> {
        self.record_polls(vec![(feed_id, poll)]).await
    }

    /// Stores a poll's new items, deciding for each whether it is a story already seen, with
    /// its event and one outbox row per sink, together with the poll's outcome, in one
    /// transaction.
    pub async fn ingest(&self, batch: IngestBatch) -> Result<IngestReport, StoreError> {
        on_engine!(&self.engine, b => b.ingest(batch).await)
    }

    /// Which of these URL keys some stored item already has (the cheap check before an
    /// article is fetched).
    pub async fn known_url_keys(&self, keys: Vec<String>) -> Result<HashSet<String>, StoreError> {
        on_engine!(&self.engine, b => b.known_url_keys(keys).await)
    }

    /// The first item of the stored story `fp` belongs to, and why, if any (the lookup the
    /// ingest transaction makes, without storing anything).
    pub async fn find_duplicate(
        &self,
        fp: Fingerprint,
        settings: DedupSettings,
    ) -> Result<Option<(String, crate::dedup::DuplicateReason)>, StoreError> {
        on_engine!(&self.engine, b => b.find_duplicate(fp, settings).await)
    }

    /// Drops what retention no longer needs: bands older than `window`, event bodies of
    /// items older than `retention` whose deliveries are finished. Item rows stay (identity,
    /// URL keys, content hash), so an old item seen again is still not new. Returns the
    /// band rows and the events dropped.
    pub async fn prune(
        &self,
        window: Duration,
        retention: Duration,
    ) -> Result<(usize, usize), StoreError> {
        on_engine!(&self.engine, b => b.prune(window, retention).await)
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
        on_engine!(&self.engine, b => b.claim_due(sink, limit, now).await)
    }

    /// Records what became of a round of attempts, and releases the claims of rows that
    /// were not tried, in one transaction.
    pub async fn finish_many(
        &self,
        outcomes: Vec<(i64, Attempt)>,
        untried: Vec<i64>,
    ) -> Result<(), StoreError> {
        on_engine!(&self.engine, b => b.finish_many(outcomes, untried).await)
    }

    /// When the next pending row of `sink` is due (unclaimed), if any.
    pub async fn next_due(&self, sink: &str) -> Result<Option<Timestamp>, StoreError> {
        on_engine!(&self.engine, b => b.next_due(sink).await)
    }

    /// Claims the probe of a paused sink: the row due first among those that already failed
    /// (it may not be due yet), else the oldest fresh row; `None` when nothing waits.
    pub async fn claim_probe(
        &self,
        sink: &str,
        now: Timestamp,
    ) -> Result<Option<Delivery>, StoreError> {
        on_engine!(&self.engine, b => b.claim_probe(sink, now).await)
    }

    /// The receiver answers again: every row of `sink` that waited only because of the
    /// outage is due now. Returns how many.
    pub async fn resume_sink(&self, sink: &str, now: Timestamp) -> Result<usize, StoreError> {
        on_engine!(&self.engine, b => b.resume_sink(sink, now).await)
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
        on_engine!(&self.engine, b => b.expire(sink, created_before, why, suffix).await)
    }

    /// Records a sink's health.
    pub async fn set_sink_status(&self, status: SinkStatus) -> Result<(), StoreError> {
        on_engine!(&self.engine, b => b.set_sink_status(status).await)
    }

    /// Queues rows of `sink` again: dead ones, or every row created since `since`.
    /// They keep their `webhook_id`. Returns how many rows were queued.
    pub async fn redeliver(
        &self,
        sink: &str,
        dead_only: bool,
        since: Option<Timestamp>,
    ) -> Result<usize, StoreError> {
        on_engine!(&self.engine, b => b.redeliver(sink, dead_only, since).await)
    }

    /// Every WebSub subscription, for the subscriber at start-up.
    pub async fn websub_subscriptions(
        &self,
    ) -> Result<Vec<crate::websub::Subscription>, StoreError> {
        on_engine!(&self.engine, b => b.websub_subscriptions().await)
    }

    /// Saves a subscription (one per feed).
    pub async fn websub_save(&self, sub: crate::websub::Subscription) -> Result<(), StoreError> {
        on_engine!(&self.engine, b => b.websub_save(sub).await)
    }

    /// Forgets a feed's subscription.
    pub async fn websub_delete(&self, feed_id: i64) -> Result<(), StoreError> {
        on_engine!(&self.engine, b => b.websub_delete(feed_id).await)
    }
}

/// The read side of the store; cheap to clone.
#[derive(Clone)]
pub struct Reader {
    engine: ReadEngine,
}

#[derive(Clone)]
enum ReadEngine {
    Sqlite(read::SqliteReader),
    Postgres(postgres::PgStore),
}

macro_rules! on_reader {
    ($engine:expr, $b:ident => $call:expr) => {
        match $engine {
            ReadEngine::Sqlite($b) => $call,
            ReadEngine::Postgres($b) => $call,
        }
    };
}

impl Reader {
    /// Rows waiting for delivery to any of `sinks` (rows of sinks no longer configured are
    /// not waited for: nothing will deliver them).
    pub async fn pending(&self, sinks: &[String]) -> Result<i64, StoreError> {
        on_reader!(&self.engine, b => b.pending(sinks).await)
    }

    /// Feeds and items, for `/metrics`.
    pub async fn feed_counts(&self) -> Result<FeedCounts, StoreError> {
        on_reader!(&self.engine, b => b.feed_counts().await)
    }

    /// Answers when the database does.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_reader!(&self.engine, b => b.ping().await)
    }

    /// Rows per table, for `/metrics`.
    pub async fn table_sizes(&self) -> Result<Vec<(String, i64)>, StoreError> {
        on_reader!(&self.engine, b => b.table_sizes().await)
    }

    /// `feedwire feeds`.
    pub async fn feeds_report(&self) -> Result<Vec<FeedReport>, StoreError> {
        on_reader!(&self.engine, b => b.feeds_report().await)
    }

    /// `feedwire items`: the newest `limit` items, of one feed or all.
    pub async fn items_report(
        &self,
        feed: Option<String>,
        limit: usize,
    ) -> Result<Vec<ItemReport>, StoreError> {
        on_reader!(&self.engine, b => b.items_report(feed, limit).await)
    }

    /// What waits per sink.
    pub async fn backlog(&self) -> Result<Vec<SinkBacklog>, StoreError> {
        on_reader!(&self.engine, b => b.backlog().await)
    }

    /// Each sink's recorded health.
    pub async fn sink_statuses(&self) -> Result<Vec<SinkStatus>, StoreError> {
        on_reader!(&self.engine, b => b.sink_statuses().await)
    }

    /// `feedwire deliveries`.
    pub async fn deliveries_report(
        &self,
        sink: Option<String>,
        dead_only: bool,
        limit: usize,
    ) -> Result<Vec<DeliveryReport>, StoreError> {
        on_reader!(&self.engine, b => b.deliveries_report(sink, dead_only, limit).await)
    }

    /// The status page's view, read in one transaction.
    pub async fn status_snapshot(
        &self,
        q: status::SnapshotQuery,
    ) -> Result<status::Snapshot, StoreError> {
        on_reader!(&self.engine, b => b.status_snapshot(q).await)
    }
}
