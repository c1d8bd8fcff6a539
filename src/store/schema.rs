//! The schema and its migrations, keyed on `PRAGMA user_version`.

use rusqlite::{Connection, TransactionBehavior};

use super::StoreError;

/// Each entry migrates from version `index` to `index + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: feeds, items, events and the outbox.
    r#"
    CREATE TABLE feeds (
        id              INTEGER PRIMARY KEY,
        name            TEXT NOT NULL UNIQUE,
        url             TEXT NOT NULL,
        title           TEXT,
        active          INTEGER NOT NULL DEFAULT 1,
        etag            TEXT,
        last_modified   TEXT,
        polls           INTEGER NOT NULL DEFAULT 0,
        last_poll_at    INTEGER,
        last_status     TEXT,
        last_http_status INTEGER,
        last_error      TEXT,
        errors_in_row   INTEGER NOT NULL DEFAULT 0,
        next_poll_at    INTEGER
    );

    CREATE TABLE items (
        id              TEXT PRIMARY KEY,
        feed_id         INTEGER NOT NULL REFERENCES feeds(id) ON DELETE CASCADE,
        key             TEXT NOT NULL,
        url             TEXT,
        link            TEXT,
        guid            TEXT,
        title           TEXT,
        published_at    INTEGER,
        content_source  TEXT,
        content_hash    TEXT,
        simhash         INTEGER,
        duplicate_of    TEXT REFERENCES items(id),
        duplicate_reason TEXT,
        emitted         INTEGER NOT NULL,
        created_at      INTEGER NOT NULL,
        UNIQUE (feed_id, key)
    );
    CREATE INDEX items_url ON items(url);
    CREATE INDEX items_created ON items(created_at);

    CREATE TABLE events (
        id              TEXT PRIMARY KEY,
        item_id         TEXT NOT NULL REFERENCES items(id) ON DELETE CASCADE,
        type            TEXT NOT NULL,
        body            TEXT NOT NULL,
        created_at      INTEGER NOT NULL
    );
    CREATE INDEX events_item ON events(item_id);

    CREATE TABLE outbox (
        id              INTEGER PRIMARY KEY,
        event_id        TEXT NOT NULL REFERENCES events(id) ON DELETE CASCADE,
        sink            TEXT NOT NULL,
        webhook_id      TEXT NOT NULL,
        state           TEXT NOT NULL DEFAULT 'pending',
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        claimed_until   INTEGER,
        last_status     INTEGER,
        last_error      TEXT,
        created_at      INTEGER NOT NULL,
        done_at         INTEGER,
        UNIQUE (event_id, sink)
    );
    CREATE INDEX outbox_due ON outbox(sink, state, next_attempt_at);
    "#,
    // 2: deduplication: URL keys, content hashes, SimHash bands; feeds with unusable GUIDs.
    r#"
    CREATE TABLE url_keys (
        key             TEXT NOT NULL,
        item_id         TEXT NOT NULL REFERENCES items(id) ON DELETE CASCADE,
        PRIMARY KEY (key, item_id)
    ) WITHOUT ROWID;
    CREATE INDEX url_keys_item ON url_keys(item_id);
    CREATE INDEX items_content_hash ON items(content_hash) WHERE content_hash IS NOT NULL;

    -- Each fingerprint split into max_distance + 1 blocks: any fingerprint within
    -- max_distance bits shares at least one block exactly.
    CREATE TABLE simhash_bands (
        band            INTEGER NOT NULL,
        value           INTEGER NOT NULL,
        item_id         TEXT NOT NULL REFERENCES items(id) ON DELETE CASCADE,
        created_at      INTEGER NOT NULL,
        PRIMARY KEY (band, value, item_id)
    ) WITHOUT ROWID;
    CREATE INDEX simhash_bands_item ON simhash_bands(item_id);

    CREATE TABLE meta (
        key             TEXT PRIMARY KEY,
        value           TEXT NOT NULL
    );

    ALTER TABLE feeds ADD COLUMN guid_unreliable INTEGER NOT NULL DEFAULT 0;
    "#,
    // 3: bands carry the fingerprint and the item's rowid, so a lookup reads only the band
    // rows (contiguous in the key order) and never joins items for candidates that miss.
    r#"
    DROP TABLE simhash_bands;
    CREATE TABLE simhash_bands (
        band            INTEGER NOT NULL,
        value           INTEGER NOT NULL,
        item            INTEGER NOT NULL,
        simhash         INTEGER NOT NULL,
        created_at      INTEGER NOT NULL,
        PRIMARY KEY (band, value, item)
    ) WITHOUT ROWID;
    DELETE FROM meta WHERE key = 'bands_max_distance';
    -- Links are matched through url_keys; this index only slowed inserts.
    DROP INDEX items_url;
    "#,
    // 4: adaptive scheduling: the decayed item rate, the last successful poll, and why the
    // next poll is when it is.
    r#"
    ALTER TABLE feeds ADD COLUMN rate_items REAL NOT NULL DEFAULT 0;
    ALTER TABLE feeds ADD COLUMN rate_hours REAL NOT NULL DEFAULT 0;
    ALTER TABLE feeds ADD COLUMN last_ok_at INTEGER;
    ALTER TABLE feeds ADD COLUMN schedule_reason TEXT;
    "#,
    // 5: the feed-side revision of each item, to tell an updated entry from an unchanged one.
    r#"
    ALTER TABLE items ADD COLUMN revision TEXT;
    "#,
    // 6: events about feeds (feed.failing, feed.recovered) have no item. A table rebuild,
    // run with foreign keys off so the outbox keeps its rows.
    r#"
    CREATE TABLE events_new (
        id              TEXT PRIMARY KEY,
        item_id         TEXT REFERENCES items(id) ON DELETE CASCADE,
        feed_id         INTEGER REFERENCES feeds(id) ON DELETE CASCADE,
        type            TEXT NOT NULL,
        body            TEXT NOT NULL,
        created_at      INTEGER NOT NULL,
        CHECK (item_id IS NOT NULL OR feed_id IS NOT NULL)
    );
    INSERT INTO events_new (id, item_id, type, body, created_at)
        SELECT id, item_id, type, body, created_at FROM events;
    DROP TABLE events;
    ALTER TABLE events_new RENAME TO events;
    CREATE INDEX events_item ON events(item_id);
    -- Counting what waits (once, metrics, STATUS=) without reading delivered history.
    CREATE INDEX outbox_pending ON outbox(sink, created_at) WHERE state = 'pending';
    "#,
    // 7: near-duplicates by shingle sketch: the SimHash and its bands give way to a
    // bottom-k sketch per item (verification) and its LSH band keys (candidate search).
    // Items stored before keep their URL keys and content hash; they have no sketch, so
    // only items stored from now on are found as near-duplicates.
    r#"
    DROP TABLE simhash_bands;
    DELETE FROM meta WHERE key = 'bands_max_distance';
    ALTER TABLE items DROP COLUMN simhash;
    ALTER TABLE items ADD COLUMN sketch BLOB;
    -- One row per band of each item's sketch; `key` names the band and its bins' minima.
    CREATE TABLE story_bands (
        key             INTEGER NOT NULL,
        item            INTEGER NOT NULL,
        created_at      INTEGER NOT NULL,
        PRIMARY KEY (key, item)
    ) WITHOUT ROWID;
    "#,
    // 8: delivery that tells a failed delivery from a receiver that is down. `outage` marks
    // a row whose last failure was the receiver's (due again at once when it answers);
    // `sink_state` is each sink's health as `feedwire deliveries` shows it: up, failing, or
    // paused with why and until when.
    r#"
    ALTER TABLE outbox ADD COLUMN outage INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE sink_state (
        sink            TEXT PRIMARY KEY,
        state           TEXT NOT NULL,
        reason          TEXT,
        since           INTEGER,
        until           INTEGER,
        updated_at      INTEGER NOT NULL
    );
    "#,
    // 9: intentionally empty: the number was reserved for a change that needed no schema.
    "",
    // 10: why an item was stored as seen but not sent: `rule:NAME` (a filter rule dropped
    // it), `max_item_age` (published too long ago) or `backfill` (beyond the first poll's N).
    r#"
    ALTER TABLE items ADD COLUMN not_sent TEXT;
    "#,
    // 11: WebSub subscriptions, one per feed: the hub, the topic, the callback's path token
    // and the secret distributions are signed with; the state `feedwire feeds` shows.
    r#"
    CREATE TABLE websub (
        feed_id         INTEGER PRIMARY KEY REFERENCES feeds(id) ON DELETE CASCADE,
        token           TEXT NOT NULL UNIQUE,
        hub             TEXT NOT NULL,
        topic           TEXT NOT NULL,
        secret          TEXT NOT NULL,
        state           TEXT NOT NULL,
        awaiting        INTEGER NOT NULL DEFAULT 0,
        lease_until     INTEGER,
        lease_ms        INTEGER,
        reason          TEXT,
        updated_at      INTEGER NOT NULL
    );
    "#,
    // 12: the near-duplicate index made small. Sketches leave the item rows for a table of
    // their own keyed by the item's rowid (what the band rows point at), so the rows every
    // lookup and report reads stay a tenth of the size; a sketch carries its item's time, as
    // the window is checked on the candidate. Band rows lose their time and keep only the
    // key's high 32 bits (the 64-bit keys' `>> 32` is what `dedup::bands` computes now), so a
    // row is about 13 bytes instead of 24 and the index that every insert changes at random
    // places is half the size.
    r#"
    CREATE TABLE item_sketches (
        item            INTEGER PRIMARY KEY,
        created_at      INTEGER NOT NULL,
        sketch          BLOB NOT NULL
    );
    INSERT INTO item_sketches (item, created_at, sketch)
        SELECT rowid, created_at, sketch FROM items WHERE sketch IS NOT NULL;
    ALTER TABLE items DROP COLUMN sketch;
    CREATE TABLE story_bands_new (
        key             INTEGER NOT NULL,
        item            INTEGER NOT NULL,
        PRIMARY KEY (key, item)
    ) WITHOUT ROWID;
    INSERT OR IGNORE INTO story_bands_new (key, item) SELECT key >> 32, item FROM story_bands;
    DROP TABLE story_bands;
    ALTER TABLE story_bands_new RENAME TO story_bands;
    "#,
];

/// The schema version this binary writes.
pub const VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database to [`VERSION`] in one IMMEDIATE transaction; refuses a newer one.
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    // A current schema is told by a read: a report run beside the daemon then never waits
    // for the write lock the daemon keeps taking (it could wait out the busy timeout).
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current == VERSION {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > VERSION {
        return Err(StoreError::TooNew {
            found: current,
            supported: VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database written by an older version keeps its rows through every later migration,
    /// the events table rebuild (6) included.
    #[test]
    fn migrations_keep_existing_rows() {
        let mut conn = Connection::open_in_memory().expect("db");
        conn.pragma_update(None, "foreign_keys", false)
            .expect("pragma");
        let tx = conn.transaction().expect("tx");
        for (i, sql) in MIGRATIONS.iter().enumerate().take(5) {
            tx.execute_batch(sql).expect("old migration");
            tx.pragma_update(None, "user_version", i as i64 + 1)
                .expect("version");
        }
        tx.execute_batch(
            "INSERT INTO feeds (id, name, url) VALUES (1, 'f', 'http://f/');
             INSERT INTO items (id, feed_id, key, simhash, emitted, created_at) VALUES ('i1', 1, 'guid:1', 7, 1, 0);
             INSERT INTO events (id, item_id, type, body, created_at) VALUES ('e1', 'i1', 'item.new', '{}', 0);
             INSERT INTO outbox (event_id, sink, webhook_id, next_attempt_at, created_at) VALUES ('e1', 's', 'msg_1', 0, 0);",
        )
        .expect("rows");
        tx.commit().expect("commit");

        migrate(&mut conn).expect("migrates");
        conn.pragma_update(None, "foreign_keys", true)
            .expect("pragma");
        let count = |sql: &str| {
            conn.query_row(sql, [], |r| r.get::<_, i64>(0))
                .expect("count")
        };
        assert_eq!(count("SELECT COUNT(*) FROM outbox"), 1);
        assert_eq!(count("SELECT COUNT(*) FROM events WHERE item_id = 'i1'"), 1);
        assert_eq!(count("SELECT COUNT(*) FROM pragma_foreign_key_check"), 0);
        // Delivery health (8): old rows are not held by an outage; no sink has a state yet.
        assert_eq!(count("SELECT COUNT(*) FROM outbox WHERE outage = 0"), 1);
        assert_eq!(count("SELECT COUNT(*) FROM sink_state"), 0);
        assert_eq!(count("PRAGMA user_version"), VERSION);
        // 7: the SimHash gives way to a sketch; items stored before have none (11: the
        // sketches have a table of their own).
        assert_eq!(count("SELECT COUNT(*) FROM item_sketches"), 0);
        assert_eq!(count("SELECT COUNT(*) FROM story_bands"), 0);
        // Feed events need no item now.
        conn.execute("INSERT INTO events (id, feed_id, type, body, created_at) VALUES ('e2', 1, 'feed.failing', '{}', 0)", [])
            .expect("feed event");
    }

    /// Migration 12 moves every stored sketch into its own table and every band row to its
    /// 32-bit key, so items stored before it are still found as near copies after it.
    #[test]
    fn sketches_and_bands_move_to_the_small_index() {
        let mut conn = Connection::open_in_memory().expect("db");
        conn.pragma_update(None, "foreign_keys", false)
            .expect("pragma");
        let tx = conn.transaction().expect("tx");
        for (i, sql) in MIGRATIONS.iter().enumerate().take(11) {
            tx.execute_batch(sql).expect("old migration");
            tx.pragma_update(None, "user_version", i as i64 + 1)
                .expect("version");
        }
        // One item with a sketch and two band rows under 64-bit keys, one with no sketch.
        let sketch: Vec<u8> = [3u32, 10, 20, 30]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let key = 0xf64f_38a7_7a00_fb50_u64 as i64;
        tx.execute_batch(
            "INSERT INTO feeds (id, name, url) VALUES (1, 'f', 'http://f/');
             INSERT INTO items (rowid, id, feed_id, key, emitted, created_at) VALUES (5, 'i1', 1, 'guid:1', 1, 1234);
             INSERT INTO items (rowid, id, feed_id, key, emitted, created_at) VALUES (6, 'i2', 1, 'guid:2', 1, 1235);",
        )
        .expect("items");
        tx.execute("UPDATE items SET sketch = ?1 WHERE id = 'i1'", [&sketch])
            .expect("sketch");
        tx.execute(
            "INSERT INTO story_bands (key, item, created_at) VALUES (?1, 5, 1234), (?2, 5, 1234)",
            [key, 0x1234_5678_0000_0001],
        )
        .expect("bands");
        tx.commit().expect("commit");

        migrate(&mut conn).expect("migrates");
        let moved: (i64, i64, Vec<u8>) = conn
            .query_row(
                "SELECT item, created_at, sketch FROM item_sketches",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .expect("one sketch");
        assert_eq!(moved, (5, 1234, sketch));
        let mut stmt = conn
            .prepare("SELECT key, item FROM story_bands ORDER BY key")
            .expect("bands");
        let bands: Vec<(i64, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("band rows");
        // The high halves, sign and all, as `dedup::bands` computes them now.
        assert_eq!(
            bands,
            vec![(i64::from(0xf64f_38a7_u32 as i32), 5), (0x1234_5678, 5)]
        );
        let columns: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM pragma_table_info('items') WHERE name = 'sketch'",
                [],
                |r| r.get(0),
            )
            .expect("columns");
        assert_eq!(columns, 0, "the item rows no longer carry the sketch");
    }

    #[test]
    fn a_newer_database_is_refused() {
        let mut conn = Connection::open_in_memory().expect("db");
        conn.pragma_update(None, "user_version", VERSION + 1)
            .expect("version");
        assert!(matches!(migrate(&mut conn), Err(StoreError::TooNew { .. })));
    }
}
