//! The PostgreSQL store: one database that several daemons share. Each node claims the due
//! feeds it polls and the outbox rows it delivers with a lease that expires (`FOR UPDATE
//! SKIP LOCKED`, so nodes never wait on each other's claims), renews its leases while it
//! works, and ends a feed's lease with the poll's record; a node killed with -9 loses its
//! claims to the others once the lease has passed. The same-story decision is exact across
//! nodes: every dedup key it reads is locked first (see `ingest.rs`).
//!
//! The schema mirrors the SQLite one table for table (`items.seq` plays SQLite's rowid, the
//! number band rows and sketches point at), so each statement reads like its SQLite twin.
//! Time is unix milliseconds from the node's clock, as in the SQLite store; nodes are
//! expected to run NTP, and a lease is long next to any skew they have.

mod ingest;
mod outbox;
mod read;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use super::{FeedLease, FeedSpec, PollRecord, StoreError, StoredFeed};
use crate::model::Timestamp;
use crate::scheduler::Rate;

/// The newest schema this code knows; a database at a newer one is refused.
pub const SCHEMA_VERSION: i32 = 1;

/// Serialises migrations of nodes starting at once (`pg_advisory_xact_lock` key: "fw" + 1).
const MIGRATION_LOCK: i64 = 0x6677_0001;

/// The schema, one entry per version, each applied in the migration's one transaction.
const MIGRATIONS: &[&str] = &[
    // 1: the SQLite schema's tables, with the feeds' and outbox rows' leases.
    "CREATE TABLE feeds (
        id               BIGSERIAL PRIMARY KEY,
        name             TEXT NOT NULL UNIQUE,
        url              TEXT NOT NULL,
        title            TEXT,
        active           BOOLEAN NOT NULL DEFAULT TRUE,
        etag             TEXT,
        last_modified    TEXT,
        polls            BIGINT NOT NULL DEFAULT 0,
        last_poll_at     BIGINT,
        last_status      TEXT,
        last_http_status INTEGER,
        last_error       TEXT,
        errors_in_row    INTEGER NOT NULL DEFAULT 0,
        next_poll_at     BIGINT,
        guid_unreliable  BOOLEAN NOT NULL DEFAULT FALSE,
        rate_items       DOUBLE PRECISION NOT NULL DEFAULT 0,
        rate_hours       DOUBLE PRECISION NOT NULL DEFAULT 0,
        last_ok_at       BIGINT,
        schedule_reason  TEXT,
        lease_owner      TEXT,
        lease_until      BIGINT,
        polled_by        TEXT
    );
    CREATE TABLE items (
        seq              BIGSERIAL NOT NULL UNIQUE,
        id               TEXT PRIMARY KEY,
        feed_id          BIGINT NOT NULL REFERENCES feeds (id) ON DELETE CASCADE,
        key              TEXT NOT NULL,
        url              TEXT,
        link             TEXT,
        guid             TEXT,
        title            TEXT,
        published_at     BIGINT,
        content_source   TEXT,
        content_hash     TEXT,
        duplicate_of     TEXT REFERENCES items (id),
        duplicate_reason TEXT,
        emitted          BOOLEAN NOT NULL,
        created_at       BIGINT NOT NULL,
        revision         TEXT,
        not_sent         TEXT,
        UNIQUE (feed_id, key)
    );
    CREATE INDEX items_created ON items (created_at);
    CREATE INDEX items_content_hash ON items (content_hash) WHERE content_hash IS NOT NULL;
    CREATE TABLE url_keys (
        key              TEXT NOT NULL,
        item_id          TEXT NOT NULL REFERENCES items (id) ON DELETE CASCADE,
        PRIMARY KEY (key, item_id)
    );
    CREATE INDEX url_keys_item ON url_keys (item_id);
    CREATE TABLE item_sketches (
        item             BIGINT PRIMARY KEY,
        created_at       BIGINT NOT NULL,
        sketch           BYTEA NOT NULL
    );
    CREATE TABLE story_bands (
        key              INTEGER NOT NULL,
        item             BIGINT NOT NULL,
        PRIMARY KEY (key, item)
    );
    CREATE TABLE events (
        id               TEXT PRIMARY KEY,
        item_id          TEXT REFERENCES items (id) ON DELETE CASCADE,
        feed_id          BIGINT REFERENCES feeds (id) ON DELETE CASCADE,
        type             TEXT NOT NULL,
        body             TEXT NOT NULL,
        created_at       BIGINT NOT NULL,
        CHECK (item_id IS NOT NULL OR feed_id IS NOT NULL)
    );
    CREATE INDEX events_item ON events (item_id);
    CREATE TABLE outbox (
        id               BIGSERIAL PRIMARY KEY,
        event_id         TEXT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
        sink             TEXT NOT NULL,
        webhook_id       TEXT NOT NULL,
        state            TEXT NOT NULL DEFAULT 'pending',
        attempts         INTEGER NOT NULL DEFAULT 0,
        next_attempt_at  BIGINT NOT NULL,
        claimed_by       TEXT,
        claimed_until    BIGINT,
        last_status      INTEGER,
        last_error       TEXT,
        created_at       BIGINT NOT NULL,
        done_at          BIGINT,
        outage           BOOLEAN NOT NULL DEFAULT FALSE,
        UNIQUE (event_id, sink)
    );
    CREATE INDEX outbox_due ON outbox (sink, state, next_attempt_at);
    CREATE INDEX outbox_pending ON outbox (sink, created_at) WHERE state = 'pending';
    CREATE TABLE sink_state (
        sink             TEXT PRIMARY KEY,
        state            TEXT NOT NULL,
        reason           TEXT,
        since            BIGINT,
        until            BIGINT,
        updated_at       BIGINT NOT NULL
    );
    CREATE TABLE websub (
        feed_id          BIGINT PRIMARY KEY REFERENCES feeds (id) ON DELETE CASCADE,
        token            TEXT NOT NULL UNIQUE,
        hub              TEXT NOT NULL,
        topic            TEXT NOT NULL,
        secret           TEXT NOT NULL,
        state            TEXT NOT NULL,
        awaiting         BOOLEAN NOT NULL DEFAULT FALSE,
        lease_until      BIGINT,
        lease_ms         BIGINT,
        reason           TEXT,
        updated_at       BIGINT NOT NULL
    );",
];

#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("bad PostgreSQL connection string: {0}")]
    BadUrl(String),
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(String),
    #[error("PostgreSQL: {0}")]
    Query(String),
    #[error(
        "PostgreSQL schema version {found} is newer than this feedwire supports ({supported}); upgrade feedwire"
    )]
    TooNew { found: i32, supported: i32 },
    #[error("cannot read the PostgreSQL connection string from {key}: {cause}")]
    Secret { key: String, cause: String },
}

/// The driver's text with its causes ("error connecting to server: Connection refused"); it
/// names the server's message and never the password.
fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return db.message().to_string();
    }
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

impl From<tokio_postgres::Error> for PgError {
    fn from(e: tokio_postgres::Error) -> PgError {
        PgError::Query(describe(&e))
    }
}

impl From<deadpool_postgres::PoolError> for PgError {
    fn from(e: deadpool_postgres::PoolError) -> PgError {
        match e {
            // The pool's own wrapper ("error occurred while creating a new object") says
            // nothing a user can act on; the driver's error does.
            deadpool_postgres::PoolError::Backend(pg) => PgError::Connect(describe(&pg)),
            other => PgError::Connect(other.to_string()),
        }
    }
}

/// What a node needs to reach the shared database.
#[derive(Debug, Clone)]
pub struct PgSettings {
    /// The connection string (a secret: it may hold a password); never logged.
    pub url: String,
    pub pool_size: usize,
    /// This daemon's name in leases; [`default_node`] when the user gives none.
    pub node: String,
    /// How long a claimed feed or outbox row stays this node's without a renewal.
    pub lease: Duration,
}

impl PgSettings {
    /// The settings `[store]` gives, with the connection string read from its variable or
    /// file.
    pub fn from_config(pg: &crate::config::PostgresStore) -> Result<PgSettings, PgError> {
        let url = crate::sinks::queue::read_secret(&pg.url).map_err(|e| PgError::Secret {
            key: pg.url_key.clone(),
            cause: e.to_string(),
        })?;
        Ok(PgSettings {
            url,
            pool_size: pg.pool_size,
            node: pg.node.clone().unwrap_or_else(default_node),
            lease: pg.lease,
        })
    }
}

/// The host name and the process id: unique among live daemons, readable in a lease.
pub fn default_node() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_string());
    format!("{host}-{}", std::process::id())
}

/// How the stored feed list compares with this node's config, after [`PgStore::sync_feeds`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedSync {
    /// Feeds whose stored URL differed from this config's (now this config's).
    pub changed: Vec<String>,
    /// Feeds other nodes listed that this config does not (now inactive).
    pub not_in_config: Vec<String>,
}

impl FeedSync {
    /// A node whose config differs from what the others wrote says which feeds.
    pub fn log(&self, node: &str) {
        if !self.changed.is_empty() || !self.not_in_config.is_empty() {
            tracing::warn!(node, changed = ?self.changed, not_in_config = ?self.not_in_config,
                "this node's feed list differs from the shared database's; the config of the node that synced last wins");
        }
    }
}

#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    node: String,
    lease: Duration,
}

/// The feed columns [`stored_feed`] reads, in its order.
const FEED_COLUMNS: &str = "id, name, url, etag, last_modified, polls, errors_in_row, next_poll_at,
    guid_unreliable, rate_items, rate_hours, last_ok_at";

/// A feed row as the scheduler needs it.
fn stored_feed(r: &tokio_postgres::Row) -> StoredFeed {
    StoredFeed {
        id: r.get(0),
        name: r.get(1),
        url: r.get(2),
        etag: r.get(3),
        last_modified: r.get(4),
        polls: r.get(5),
        errors_in_row: r.get::<_, i32>(6).max(0) as u32,
        next_poll_at: r.get::<_, Option<i64>>(7).map(Timestamp::from_millis),
        guid_unreliable: r.get(8),
        rate: Rate {
            items: r.get(9),
            hours: r.get(10),
        },
        last_ok_at: r.get::<_, Option<i64>>(11).map(Timestamp::from_millis),
    }
}

impl PgStore {
    /// Connects, migrates (refusing a newer schema) and keeps a pool of `pool_size`.
    pub async fn connect(settings: &PgSettings) -> Result<PgStore, PgError> {
        let config: tokio_postgres::Config = settings
            .url
            .parse()
            .map_err(|e: tokio_postgres::Error| PgError::BadUrl(e.to_string()))?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size.max(1))
            .build()
            .map_err(|e| PgError::Connect(e.to_string()))?;
        let store = PgStore {
            pool,
            node: settings.node.clone(),
            lease: settings.lease,
        };
        store.migrate().await?;
        Ok(store)
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// A connection from the pool.
    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        Ok(self.pool.get().await?)
    }

    /// The end of a lease taken now.
    fn lease_end(&self) -> i64 {
        now_ms() + self.lease.as_millis() as i64
    }

    /// The schema version the database is at.
    pub async fn schema_version(&self) -> Result<i32, PgError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt("SELECT version FROM feedwire_schema", &[])
            .await?;
        Ok(row.map_or(0, |r| r.get(0)))
    }

    /// Every missing migration in one transaction, under a lock so that nodes starting
    /// together migrate once.
    async fn migrate(&self) -> Result<(), PgError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        // Created only when missing: `IF NOT EXISTS` would have the server send a NOTICE,
        // logged by the driver at every start.
        let exists: bool = tx
            .query_one("SELECT to_regclass('feedwire_schema') IS NOT NULL", &[])
            .await?
            .get(0);
        if !exists {
            tx.batch_execute("CREATE TABLE feedwire_schema (version INTEGER NOT NULL)")
                .await?;
        }
        let found: i32 = tx
            .query_opt("SELECT version FROM feedwire_schema", &[])
            .await?
            .map_or(0, |r| r.get(0));
        if found > SCHEMA_VERSION {
            return Err(PgError::TooNew {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            tx.batch_execute(sql).await?;
            tracing::info!(version = i + 1, "PostgreSQL schema migrated");
        }
        if found == 0 {
            tx.execute(
                "INSERT INTO feedwire_schema (version) VALUES ($1)",
                &[&SCHEMA_VERSION],
            )
            .await?;
        } else {
            tx.execute(
                "UPDATE feedwire_schema SET version = $1",
                &[&SCHEMA_VERSION],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Answers when the database does.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.client().await?.execute("SELECT 1", &[]).await?;
        Ok(())
    }

    /// Makes the shared feed list this config's: feeds added, URLs updated (validators
    /// reset), feeds it does not list made inactive; logs where it differed from what the
    /// other nodes wrote, and returns the active feeds.
    pub async fn sync_feeds(&self, feeds: Vec<FeedSpec>) -> Result<Vec<StoredFeed>, StoreError> {
        let (sync, stored) = self.sync_feed_list(&feeds).await?;
        sync.log(&self.node);
        Ok(stored)
    }

    /// [`PgStore::sync_feeds`], returning how the stored list differed instead of logging it.
    pub async fn sync_feed_list(
        &self,
        feeds: &[FeedSpec],
    ) -> Result<(FeedSync, Vec<StoredFeed>), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // One node syncs at a time, so two configs cannot interleave their lists.
        tx.execute("LOCK TABLE feeds IN SHARE ROW EXCLUSIVE MODE", &[])
            .await?;
        let stored = tx
            .query("SELECT name, url FROM feeds WHERE active", &[])
            .await?;
        let mut sync = FeedSync::default();
        let by_name: HashMap<&str, &str> = feeds
            .iter()
            .map(|f| (f.name.as_str(), f.url.as_str()))
            .collect();
        for row in &stored {
            let (name, url): (String, String) = (row.get(0), row.get(1));
            match by_name.get(name.as_str()) {
                Some(u) if *u != url => sync.changed.push(name),
                Some(_) => {}
                None => sync.not_in_config.push(name),
            }
        }
        tx.execute(
            "UPDATE feeds SET active = FALSE WHERE active AND NOT (name = ANY($1))",
            &[&feeds.iter().map(|f| f.name.as_str()).collect::<Vec<_>>()],
        )
        .await?;
        let upsert = tx
            .prepare(
                "INSERT INTO feeds (name, url) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET active = TRUE,
                    etag = CASE WHEN feeds.url = EXCLUDED.url THEN feeds.etag END,
                    last_modified = CASE WHEN feeds.url = EXCLUDED.url THEN feeds.last_modified END,
                    next_poll_at = CASE WHEN feeds.url = EXCLUDED.url THEN feeds.next_poll_at END,
                    url = EXCLUDED.url",
            )
            .await?;
        for f in feeds {
            tx.execute(&upsert, &[&f.name, &f.url]).await?;
        }
        let rows = tx
            .query(
                &format!("SELECT {FEED_COLUMNS} FROM feeds WHERE active ORDER BY id"),
                &[],
            )
            .await?;
        tx.commit().await?;
        Ok((sync, rows.iter().map(stored_feed).collect()))
    }

    /// Claims for this node the feeds among `ids` that are due and that no live node holds;
    /// the others are busy until their lease ends or their next poll is due. A feed this node
    /// still holds is busy too: its last poll's record has not landed, and that record (which
    /// ends the lease and sets the next poll) must not end a newer poll's lease.
    pub async fn lease_feeds(&self, ids: Vec<i64>) -> Result<Vec<FeedLease>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        let now = now_ms();
        let held = client
            .query(
                &format!(
                    "UPDATE feeds SET lease_owner = $1, lease_until = $2
                     WHERE id IN (
                         SELECT id FROM feeds
                         WHERE id = ANY($3) AND active
                           AND COALESCE(next_poll_at, 0) <= $4
                           AND (lease_until IS NULL OR lease_until < $4)
                         FOR UPDATE SKIP LOCKED)
                     RETURNING {FEED_COLUMNS}"
                ),
                &[&self.node, &self.lease_end(), &ids, &now],
            )
            .await?;
        let mut out: Vec<FeedLease> = held
            .iter()
            .map(|r| FeedLease::Held(stored_feed(r)))
            .collect();
        let got: HashSet<i64> = held.iter().map(|r| r.get(0)).collect();
        let rest: Vec<i64> = ids.into_iter().filter(|id| !got.contains(id)).collect();
        if !rest.is_empty() {
            // Busy until the later of its next poll and its holder's lease; a row locked by
            // another node's claim at this instant is asked again a lease from now at most.
            let rows = client
                .query(
                    "SELECT id, GREATEST(COALESCE(next_poll_at, 0), COALESCE(lease_until, 0))
                     FROM feeds WHERE id = ANY($1)",
                    &[&rest],
                )
                .await?;
            let fallback = self.lease_end();
            for r in &rows {
                let at: i64 = r.get(1);
                let retry_at = if at <= now {
                    fallback.min(now + 1000)
                } else {
                    at
                };
                out.push(FeedLease::Busy {
                    id: r.get(0),
                    retry_at: Timestamp::from_millis(retry_at),
                });
            }
        }
        Ok(out)
    }

    /// Extends every lease this node holds: its feeds being polled and its outbox rows
    /// being delivered. Returns how many.
    pub async fn renew_leases(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let until = self.lease_end();
        let now = now_ms();
        let feeds = client
            .execute(
                "UPDATE feeds SET lease_until = $2 WHERE lease_owner = $1 AND lease_until >= $3",
                &[&self.node, &until, &now],
            )
            .await?;
        let rows = client
            .execute(
                "UPDATE outbox SET claimed_until = $2
                 WHERE claimed_by = $1 AND state = 'pending' AND claimed_until >= $3",
                &[&self.node, &until, &now],
            )
            .await?;
        Ok(feeds + rows)
    }

    /// Voids the claims an earlier process under this node's name left behind.
    pub async fn release_all_claims(&self) -> Result<usize, StoreError> {
        let client = self.client().await?;
        let feeds = client
            .execute(
                "UPDATE feeds SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1",
                &[&self.node],
            )
            .await?;
        let rows = client
            .execute(
                "UPDATE outbox SET claimed_by = NULL, claimed_until = NULL WHERE claimed_by = $1",
                &[&self.node],
            )
            .await?;
        Ok((feeds + rows) as usize)
    }

    /// Records polls without items to store, in one transaction, ending this node's lease
    /// of each feed.
    pub async fn record_polls(&self, polls: Vec<(i64, PollRecord)>) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        for (feed_id, poll) in &polls {
            write_poll(&tx, &self.node, *feed_id, poll).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Stores an event and one outbox row per sink, each with its own `webhook-id`, inside `tx`;
/// returns the event's id.
pub(super) async fn emit(
    tx: &deadpool_postgres::Transaction<'_>,
    item_id: Option<&str>,
    feed_id: Option<i64>,
    kind: crate::model::EventType,
    body: &str,
    sinks: &[String],
    at: i64,
) -> Result<String, StoreError> {
    let event_id = ulid::Ulid::new().to_string();
    tx.execute(
        "INSERT INTO events (id, item_id, feed_id, type, body, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        &[&event_id, &item_id, &feed_id, &kind.as_str(), &body, &at],
    )
    .await?;
    let insert = tx
        .prepare_cached(
            "INSERT INTO outbox (event_id, sink, webhook_id, next_attempt_at, created_at)
             VALUES ($1, $2, $3, $4, $4)",
        )
        .await?;
    for sink in sinks {
        let webhook_id = format!("msg_{}", ulid::Ulid::new());
        tx.execute(&insert, &[&event_id, sink, &webhook_id, &at])
            .await?;
    }
    Ok(event_id)
}

/// A poll's record on its feed row (and its feed event), ending `node`'s lease of the feed.
pub(super) async fn write_poll(
    tx: &deadpool_postgres::Transaction<'_>,
    node: &str,
    feed_id: i64,
    poll: &PollRecord,
) -> Result<(), StoreError> {
    if let Some(event) = poll.event.as_ref().filter(|e| !e.sinks.is_empty()) {
        emit(
            tx,
            None,
            Some(feed_id),
            event.kind,
            &event.body,
            &event.sinks,
            poll.at.as_millis(),
        )
        .await?;
    }
    let stmt = tx
        .prepare_cached(
            "UPDATE feeds SET polls = polls + 1, last_poll_at = $2, last_status = $3, last_http_status = $4,
                last_error = $5, errors_in_row = $6, next_poll_at = $7,
                etag = COALESCE($8, etag), last_modified = COALESCE($9, last_modified),
                title = COALESCE($10, title), url = COALESCE($11, url),
                rate_items = COALESCE($12, rate_items), rate_hours = COALESCE($13, rate_hours),
                last_ok_at = CASE WHEN $3 IN ('ok', 'not-modified') THEN $2 ELSE last_ok_at END,
                schedule_reason = $14, polled_by = $15,
                lease_owner = CASE WHEN lease_owner = $15 THEN NULL ELSE lease_owner END,
                lease_until = CASE WHEN lease_owner = $15 THEN NULL ELSE lease_until END
             WHERE id = $1",
        )
        .await?;
    tx.execute(
        &stmt,
        &[
            &feed_id,
            &poll.at.as_millis(),
            &poll.status.as_str(),
            &poll.http_status.map(i32::from),
            &poll.error,
            &(poll.errors_in_row as i32),
            &poll.next_poll_at.as_millis(),
            &poll.etag,
            &poll.last_modified,
            &poll.title,
            &poll.moved_to,
            &poll.rate.map(|r| r.items),
            &poll.rate.map(|r| r.hours),
            &poll.reason,
            &node,
        ],
    )
    .await?;
    Ok(())
}

/// Columns hold unix milliseconds, as the SQLite store's do.
fn now_ms() -> i64 {
    Timestamp::now().as_millis()
}
