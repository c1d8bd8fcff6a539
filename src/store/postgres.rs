//! The PostgreSQL store's foundation: a pool, versioned migrations, and the row leases that
//! let several daemons share one database — feeds and outbox rows claimed with
//! `FOR UPDATE SKIP LOCKED` and a lease that expires, so a node killed with -9 loses its
//! claims and the others take them over.
//!
//! Not yet selectable: ingest (items, the same-story decision across nodes) and the reports
//! behind `feeds`, `items` and `deliveries` still live only in the SQLite store. Until they
//! are here, `[store] backend = "postgres"` is not accepted.
//!
//! Time is unix milliseconds from the node's clock, as in the SQLite store; nodes are
//! expected to run NTP, and a lease is long next to any skew they have.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use sha2::{Digest, Sha256};

use super::{Attempt, DedupSettings, Delivery, FeedSpec};
use crate::dedup::{DuplicateReason, Fingerprint};
use crate::model::Timestamp;

/// The newest schema this code knows; a database at a newer one is refused.
pub const SCHEMA_VERSION: i32 = 2;

/// Serialises migrations of nodes starting at once (`pg_advisory_xact_lock` key: "fw" + 1).
const MIGRATION_LOCK: i64 = 0x6677_0001;

/// The schema, one entry per version, each applied in the migration's one transaction.
const MIGRATIONS: &[&str] = &[
    // 1: feeds with their lease, events, the outbox with its claim.
    "CREATE TABLE feeds (
        id            BIGSERIAL PRIMARY KEY,
        name          TEXT NOT NULL UNIQUE,
        url           TEXT NOT NULL,
        active        BOOLEAN NOT NULL DEFAULT TRUE,
        next_poll_at  BIGINT NOT NULL DEFAULT 0,
        lease_owner   TEXT,
        lease_until   BIGINT,
        last_poll_at  BIGINT,
        polled_by     TEXT
    );
    CREATE INDEX feeds_due ON feeds (next_poll_at) WHERE active;
    CREATE TABLE events (
        id          TEXT PRIMARY KEY,
        type        TEXT NOT NULL,
        body        TEXT NOT NULL,
        created_at  BIGINT NOT NULL
    );
    CREATE TABLE outbox (
        id               BIGSERIAL PRIMARY KEY,
        event_id         TEXT NOT NULL REFERENCES events (id),
        sink             TEXT NOT NULL,
        webhook_id       TEXT NOT NULL UNIQUE,
        state            TEXT NOT NULL DEFAULT 'pending',
        attempts         INTEGER NOT NULL DEFAULT 0,
        next_attempt_at  BIGINT NOT NULL,
        claimed_by       TEXT,
        claimed_until    BIGINT,
        last_status      INTEGER,
        last_error       TEXT,
        created_at       BIGINT NOT NULL,
        delivered_at     BIGINT
    );
    CREATE INDEX outbox_due ON outbox (sink, next_attempt_at) WHERE state = 'pending';",
    // 2: items with the indexes of the same-story decision.
    "CREATE TABLE items (
        id            TEXT PRIMARY KEY,
        feed_id       BIGINT NOT NULL REFERENCES feeds (id),
        key           TEXT NOT NULL,
        content_hash  BYTEA,
        duplicate_of  TEXT REFERENCES items (id),
        created_at    BIGINT NOT NULL,
        UNIQUE (feed_id, key)
    );
    CREATE INDEX items_content ON items (content_hash) WHERE content_hash IS NOT NULL;
    CREATE TABLE url_keys (
        key      TEXT PRIMARY KEY,
        item_id  TEXT NOT NULL REFERENCES items (id)
    );
",
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
}

impl From<tokio_postgres::Error> for PgError {
    fn from(e: tokio_postgres::Error) -> PgError {
        // The driver's own text names the server's message (and never the password).
        let text = match e.as_db_error() {
            Some(db) => db.message().to_string(),
            None => e.to_string(),
        };
        PgError::Query(text)
    }
}

impl From<deadpool_postgres::PoolError> for PgError {
    fn from(e: deadpool_postgres::PoolError) -> PgError {
        PgError::Connect(e.to_string())
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

/// A feed this node holds the lease of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeasedFeed {
    pub id: i64,
    pub name: String,
    pub url: String,
    /// The lease's end; renew before it while the poll runs.
    pub lease_until: Timestamp,
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
        };
        store.migrate().await?;
        Ok(store)
    }

    pub fn node(&self) -> &str {
        &self.node
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
        tx.batch_execute("CREATE TABLE IF NOT EXISTS feedwire_schema (version INTEGER NOT NULL)")
            .await?;
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

    /// Makes the shared feed list this config's: feeds added, URLs updated, feeds it does
    /// not list made inactive; and says where it differed from what was stored.
    pub async fn sync_feeds(&self, feeds: &[FeedSpec]) -> Result<FeedSync, PgError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let stored = tx
            .query("SELECT name, url FROM feeds WHERE active FOR UPDATE", &[])
            .await?;
        let mut sync = FeedSync::default();
        for row in &stored {
            let (name, url): (String, String) = (row.get(0), row.get(1));
            match feeds.iter().find(|f| f.name == name) {
                Some(f) if f.url != url => sync.changed.push(name),
                Some(_) => {}
                None => sync.not_in_config.push(name),
            }
        }
        tx.execute(
            "UPDATE feeds SET active = FALSE WHERE NOT (name = ANY($1))",
            &[&feeds.iter().map(|f| f.name.as_str()).collect::<Vec<_>>()],
        )
        .await?;
        let upsert = tx
            .prepare(
                "INSERT INTO feeds (name, url) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET url = EXCLUDED.url, active = TRUE",
            )
            .await?;
        for f in feeds {
            tx.execute(&upsert, &[&f.name, &f.url]).await?;
        }
        tx.commit().await?;
        Ok(sync)
    }

    /// Up to `limit` due feeds no live node holds, leased to this node for `lease`. Rows
    /// another node is claiming at this instant are skipped, not waited for.
    pub async fn claim_feeds(
        &self,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<LeasedFeed>, PgError> {
        let client = self.pool.get().await?;
        let now = now_ms();
        let until = now + lease.as_millis() as i64;
        let rows = client
            .query(
                "UPDATE feeds SET lease_owner = $1, lease_until = $2
                 WHERE id IN (
                     SELECT id FROM feeds
                     WHERE active AND next_poll_at <= $3
                       AND (lease_until IS NULL OR lease_until < $3)
                     ORDER BY next_poll_at, id
                     LIMIT $4
                     FOR UPDATE SKIP LOCKED)
                 RETURNING id, name, url, lease_until",
                &[&self.node, &until, &now, &(limit as i64)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| LeasedFeed {
                id: r.get(0),
                name: r.get(1),
                url: r.get(2),
                lease_until: Timestamp::from_millis(r.get(3)),
            })
            .collect())
    }

    /// Extends this node's lease of a feed whose poll is still running; `false` when the
    /// lease is no longer this node's (it expired and another node took the feed).
    pub async fn renew_feed(&self, id: i64, lease: Duration) -> Result<bool, PgError> {
        let client = self.pool.get().await?;
        let until = now_ms() + lease.as_millis() as i64;
        let n = client
            .execute(
                "UPDATE feeds SET lease_until = $3 WHERE id = $1 AND lease_owner = $2",
                &[&id, &self.node, &until],
            )
            .await?;
        Ok(n == 1)
    }

    /// Ends this node's lease with the poll's record: the feed is next due at
    /// `next_poll_at`. `false` when the lease had passed to another node.
    pub async fn release_feed(&self, id: i64, next_poll_at: Timestamp) -> Result<bool, PgError> {
        let client = self.pool.get().await?;
        let n = client
            .execute(
                "UPDATE feeds SET lease_owner = NULL, lease_until = NULL, next_poll_at = $3,
                        last_poll_at = $4, polled_by = $2
                 WHERE id = $1 AND lease_owner = $2",
                &[&id, &self.node, &next_poll_at.as_millis(), &now_ms()],
            )
            .await?;
        Ok(n == 1)
    }

    /// Stores an event and one outbox row per sink, each with its own `webhook-id`, in one
    /// transaction.
    pub async fn emit(&self, kind: &str, body: &str, sinks: &[String]) -> Result<String, PgError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let event_id = ulid::Ulid::new().to_string();
        let now = now_ms();
        tx.execute(
            "INSERT INTO events (id, type, body, created_at) VALUES ($1, $2, $3, $4)",
            &[&event_id, &kind, &body, &now],
        )
        .await?;
        let insert = tx
            .prepare(
                "INSERT INTO outbox (event_id, sink, webhook_id, next_attempt_at, created_at)
                 VALUES ($1, $2, $3, $4, $4)",
            )
            .await?;
        for sink in sinks {
            let webhook_id = format!("msg_{}", ulid::Ulid::new());
            tx.execute(&insert, &[&event_id, sink, &webhook_id, &now])
                .await?;
        }
        tx.commit().await?;
        Ok(event_id)
    }

    /// Up to `limit` due rows of `sink` no live node holds, claimed by this node for
    /// `lease`; after a node dies its rows come back here once the lease has passed, with
    /// their `webhook-id`.
    pub async fn claim_outbox(
        &self,
        sink: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Delivery>, PgError> {
        let client = self.pool.get().await?;
        let now = now_ms();
        let until = now + lease.as_millis() as i64;
        let rows = client
            .query(
                "WITH claimed AS (
                     UPDATE outbox SET claimed_by = $1, claimed_until = $2
                     WHERE id IN (
                         SELECT id FROM outbox
                         WHERE sink = $3 AND state = 'pending' AND next_attempt_at <= $4
                           AND (claimed_until IS NULL OR claimed_until < $4)
                         ORDER BY next_attempt_at, id
                         LIMIT $5
                         FOR UPDATE SKIP LOCKED)
                     RETURNING id, event_id, webhook_id, attempts, next_attempt_at)
                 SELECT c.id, c.event_id, c.webhook_id, e.body, c.attempts, e.created_at,
                        c.next_attempt_at
                 FROM claimed c JOIN events e ON e.id = c.event_id
                 ORDER BY c.id",
                &[&self.node, &until, &sink, &now, &(limit as i64)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| Delivery {
                outbox_id: r.get(0),
                event_id: r.get(1),
                webhook_id: r.get(2),
                sink: sink.to_string(),
                body: r.get(3),
                attempts: r.get::<_, i32>(4) as u32,
                created_at: Timestamp::from_millis(r.get(5)),
                next_attempt_at: Timestamp::from_millis(r.get(6)),
            })
            .collect())
    }

    /// Records the outcome of a row this node claimed; `false` when the claim had passed to
    /// another node (whose record then stands).
    pub async fn finish_outbox(&self, outbox_id: i64, attempt: &Attempt) -> Result<bool, PgError> {
        let client = self.pool.get().await?;
        let now = now_ms();
        let n = match attempt {
            Attempt::Delivered => {
                client
                    .execute(
                        "UPDATE outbox SET state = 'delivered', attempts = attempts + 1,
                                delivered_at = $3, claimed_by = NULL, claimed_until = NULL
                         WHERE id = $1 AND claimed_by = $2",
                        &[&outbox_id, &self.node, &now],
                    )
                    .await?
            }
            Attempt::Retry {
                at, status, error, ..
            } => {
                client
                    .execute(
                        "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $3,
                                last_status = $4, last_error = $5,
                                claimed_by = NULL, claimed_until = NULL
                         WHERE id = $1 AND claimed_by = $2",
                        &[
                            &outbox_id,
                            &self.node,
                            &at.as_millis(),
                            &status.map(i32::from),
                            error,
                        ],
                    )
                    .await?
            }
            // A probe ahead of the row's time: its count and time stay, the error changes.
            Attempt::Probed { status, error } => {
                client
                    .execute(
                        "UPDATE outbox SET last_status = $3, last_error = $4,
                                claimed_by = NULL, claimed_until = NULL
                         WHERE id = $1 AND claimed_by = $2",
                        &[&outbox_id, &self.node, &status.map(i32::from), error],
                    )
                    .await?
            }
            Attempt::Dead { status, error } => {
                client
                    .execute(
                        "UPDATE outbox SET state = 'dead', attempts = attempts + 1,
                                last_status = $3, last_error = $4,
                                claimed_by = NULL, claimed_until = NULL
                         WHERE id = $1 AND claimed_by = $2",
                        &[&outbox_id, &self.node, &status.map(i32::from), error],
                    )
                    .await?
            }
        };
        Ok(n == 1)
    }

    /// Stores one item of a feed and decides, exactly across nodes, whether it is new, a
    /// duplicate of a stored story (by URL key or exact content), or already known in that
    /// feed. `_dedup` is taken for the near-copy rule to come.
    ///
    /// Two nodes holding copies of one story must not both find nothing and both insert.
    /// Every key the decision reads (each URL key, the content hash) is locked first
    /// (`pg_advisory_xact_lock`, in one global order, so two transactions cannot deadlock).
    /// Copies of a story share at least one key, so the second transaction waits for the
    /// first, then reads its committed row. Near copies (the sketch's LSH bands) are not
    /// decided here yet; their band values would be locked the same way.
    pub async fn ingest_item(
        &self,
        item: &StoryItem,
        _dedup: &DedupSettings,
    ) -> Result<Decision, PgError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let fp = &item.fingerprint;
        let mut locks: Vec<i64> = fp
            .url_keys
            .iter()
            .map(|k| lock_key(&["url", k]))
            .chain(
                fp.content_hash
                    .iter()
                    .map(|h| lock_key(&["content", &hex(h)])),
            )
            .collect();
        locks.sort_unstable();
        locks.dedup();
        let lock = tx.prepare("SELECT pg_advisory_xact_lock($1)").await?;
        for key in &locks {
            tx.execute(&lock, &[key]).await?;
        }

        let now = now_ms();
        let content = fp.content_hash.map(|h| h.to_vec());
        let inserted = tx
            .execute(
                "INSERT INTO items (id, feed_id, key, content_hash, created_at)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (feed_id, key) DO NOTHING",
                &[&item.id, &item.feed_id, &item.key, &content, &now],
            )
            .await?;
        if inserted == 0 {
            tx.commit().await?;
            return Ok(Decision::Known);
        }

        let mut found: Option<(String, DuplicateReason)> = None;
        if !fp.url_keys.is_empty() {
            let row = tx
                .query_opt(
                    "SELECT item_id FROM url_keys WHERE key = ANY($1) LIMIT 1",
                    &[&fp.url_keys],
                )
                .await?;
            found = row.map(|r| (r.get(0), DuplicateReason::Url));
        }
        if found.is_none()
            && let Some(hash) = &content
        {
            let row = tx
                .query_opt(
                    "SELECT id FROM items WHERE content_hash = $1 AND id <> $2
                     ORDER BY created_at LIMIT 1",
                    &[hash, &item.id],
                )
                .await?;
            found = row.map(|r| (r.get(0), DuplicateReason::Content));
        }
        // A duplicate points at the story's first item.
        let decision = match found {
            Some((id, reason)) => {
                let root: String = tx
                    .query_one(
                        "SELECT COALESCE(duplicate_of, id) FROM items WHERE id = $1",
                        &[&id],
                    )
                    .await?
                    .get(0);
                tx.execute(
                    "UPDATE items SET duplicate_of = $2 WHERE id = $1",
                    &[&item.id, &root],
                )
                .await?;
                Decision::Duplicate { of: root, reason }
            }
            None => Decision::New,
        };

        let add_key = tx
            .prepare("INSERT INTO url_keys (key, item_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .await?;
        for key in &fp.url_keys {
            tx.execute(&add_key, &[key, &item.id]).await?;
        }
        tx.commit().await?;
        Ok(decision)
    }

    /// The stored id of a feed, by name.
    pub async fn feed_id(&self, name: &str) -> Result<Option<i64>, PgError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt("SELECT id FROM feeds WHERE name = $1", &[&name])
            .await?;
        Ok(row.map(|r| r.get(0)))
    }
}

/// One item as the same-story decision sees it.
#[derive(Debug, Clone)]
pub struct StoryItem {
    /// The stable item id (a ULID).
    pub id: String,
    pub feed_id: i64,
    /// Its identity inside the feed (GUID, link or content hash).
    pub key: String,
    pub fingerprint: Fingerprint,
}

/// What [`PgStore::ingest_item`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    New,
    Duplicate {
        of: String,
        reason: DuplicateReason,
    },
    /// The feed had this entry already.
    Known,
}

/// A 64-bit advisory-lock key for one dedup key; the same on every node.
fn lock_key(parts: &[&str]) -> i64 {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    let d = h.finalize();
    i64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Columns hold unix milliseconds, as the SQLite store's do.
fn now_ms() -> i64 {
    Timestamp::now().as_millis()
}
