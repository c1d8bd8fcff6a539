//! The ingest transaction: new items, the duplicate decision against what is stored, their
//! fingerprints, events and outbox rows, and the poll's outcome, all or nothing.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::{IngestBatch, IngestReport, StoreError, now_ms, write_poll};
use crate::dedup::{DuplicateReason, Fingerprint, hamming, simhash_bands};
use crate::model::EventType;

use super::DedupSettings;

/// The story an item belongs to, when it is not the first of it.
pub(super) struct Match {
    /// The first item of the story.
    pub(super) root: String,
    pub(super) reason: DuplicateReason,
    /// The feed of the item that matched.
    feed_id: i64,
}

pub(super) fn ingest(
    conn: &mut Connection,
    batch: IngestBatch,
) -> Result<IngestReport, StoreError> {
    let now = now_ms();
    let tx = conn.transaction()?;
    let mut report = IngestReport::default();
    // New GUIDs on links this feed already had: the feed changes its GUIDs.
    let mut drifted = 0;
    for (index, item) in batch.items.iter().enumerate() {
        if let Some(id) = &item.update_of {
            update(&tx, &batch, index, id, item, now, &mut report)?;
            continue;
        }
        let fp = item.fingerprint.as_ref();
        let inserted = tx.prepare_cached(
            "INSERT OR IGNORE INTO items (id, feed_id, key, url, link, guid, title, published_at,
                content_source, content_hash, simhash, emitted, created_at, revision)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        )?
        .execute(params![
            item.id,
            batch.feed_id,
            item.key,
            item.url,
            item.link,
            item.guid,
            item.title,
            item.published_at,
            item.content_source,
            fp.and_then(|f| f.content_hash).map(hex),
            fp.and_then(|f| f.simhash).map(|h| h as i64),
            item.emitted,
            now,
            item.revision
        ])?;
        if inserted == 0 {
            report.already_known += 1;
            continue;
        }
        let rowid = tx.last_insert_rowid();
        report.stored += 1;
        let found = match fp {
            Some(fp) => find_duplicate(&tx, &item.id, fp, &batch.dedup, now)?,
            None => None,
        };
        if let Some(fp) = fp {
            add_to_indexes(&tx, &item.id, rowid, fp, &batch.dedup, now)?;
        }
        let same_feed_link = found
            .as_ref()
            .is_some_and(|m| m.feed_id == batch.feed_id && m.reason == DuplicateReason::Url);
        if let Some(m) = &found {
            tx.prepare_cached(
                "UPDATE items SET duplicate_of = ?2, duplicate_reason = ?3 WHERE id = ?1",
            )?
            .execute(params![item.id, m.root, m.reason.as_str()])?;
            report.duplicates += 1;
            report.duplicate_reasons.push(m.reason.as_str());
            if same_feed_link {
                drifted += 1;
            }
        }
        if !item.emitted {
            continue;
        }
        let (kind, sinks) = match &found {
            None => {
                report.emitted += 1;
                (EventType::ItemNew, &item.new_sinks)
            }
            // The feed's own item under a new GUID is not news, not even as a duplicate.
            Some(_) if same_feed_link => continue,
            Some(_) => (EventType::ItemDuplicate, &item.duplicate_sinks),
        };
        if sinks.is_empty() {
            continue;
        }
        let body = (batch.render)(index, kind, found.as_ref().map(|m| m.root.as_str()));
        emit(&tx, Some(&item.id), None, kind, &body, sinks, now)?;
    }
    if report.stored >= 2 && drifted == report.stored {
        tx.execute(
            "UPDATE feeds SET guid_unreliable = 1 WHERE id = ?1",
            params![batch.feed_id],
        )?;
        report.guids_unreliable = true;
    }
    write_poll(&tx, batch.feed_id, &batch.poll)?;
    tx.commit()?;
    Ok(report)
}

/// A new revision of a stored item: the revision is recorded; sinks that asked for
/// `item.updated` get the item again, under its own id.
fn update(
    tx: &Transaction<'_>,
    batch: &IngestBatch,
    index: usize,
    id: &str,
    item: &super::NewItem,
    now: i64,
    report: &mut IngestReport,
) -> Result<(), StoreError> {
    let changed = tx
        .prepare_cached(
            "UPDATE items SET revision = ?2, title = COALESCE(?3, title)
             WHERE id = ?1 AND revision IS NOT ?2",
        )?
        .execute(params![id, item.revision, item.title])?;
    if changed == 0 {
        return Ok(());
    }
    report.updated += 1;
    if item.updated_sinks.is_empty() {
        return Ok(());
    }
    let body = (batch.render)(index, EventType::ItemUpdated, None);
    emit(
        tx,
        Some(id),
        None,
        EventType::ItemUpdated,
        &body,
        &item.updated_sinks,
        now,
    )
}

/// Writes one event (of an item, or of a feed) and an outbox row for each sink, each row
/// with its own `webhook-id` (kept across retries and redeliveries).
pub(super) fn emit(
    tx: &Connection,
    item_id: Option<&str>,
    feed_id: Option<i64>,
    kind: EventType,
    body: &str,
    sinks: &[String],
    now: i64,
) -> Result<(), StoreError> {
    let event_id = ulid::Ulid::new().to_string();
    tx.prepare_cached(
        "INSERT INTO events (id, item_id, feed_id, type, body, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![event_id, item_id, feed_id, kind.as_str(), body, now])?;
    let mut outbox = tx.prepare_cached(
        "INSERT INTO outbox (event_id, sink, webhook_id, next_attempt_at, created_at) VALUES (?1, ?2, ?3, ?4, ?4)",
    )?;
    for sink in sinks {
        outbox.execute(params![
            event_id,
            sink,
            format!("msg_{}", ulid::Ulid::new()),
            now
        ])?;
    }
    Ok(())
}

/// The first stored story this fingerprint belongs to: by URL key, then by exact content,
/// then by SimHash within `max_distance` inside the window (through the band index).
pub(super) fn find_duplicate(
    tx: &Connection,
    own_id: &str,
    fp: &Fingerprint,
    settings: &DedupSettings,
    now: i64,
) -> Result<Option<Match>, StoreError> {
    for key in &fp.url_keys {
        let hit: Option<String> = tx
            .prepare_cached(
                "SELECT item_id FROM url_keys WHERE key = ?1 AND item_id != ?2 LIMIT 1",
            )?
            .query_row(params![key, own_id], |r| r.get(0))
            .optional()?;
        if let Some(id) = hit {
            return resolve(tx, &id, DuplicateReason::Url);
        }
    }
    if let Some(hash) = fp.content_hash {
        let hit: Option<String> = tx
            .prepare_cached("SELECT id FROM items WHERE content_hash = ?1 AND id != ?2 ORDER BY created_at LIMIT 1")?
            .query_row(params![hex(hash), own_id], |r| r.get(0))
            .optional()?;
        if let Some(id) = hit {
            return resolve(tx, &id, DuplicateReason::Content);
        }
    }
    if let (true, Some(h)) = (settings.near_duplicates, fp.simhash) {
        let since = now - settings.window.as_millis() as i64;
        let mut best: Option<(u32, i64)> = None;
        let mut stmt = tx.prepare_cached(
            "SELECT item, simhash FROM simhash_bands WHERE band = ?1 AND value = ?2 AND created_at >= ?3",
        )?;
        for (band, value) in simhash_bands(h, settings.max_distance) {
            let rows = stmt.query_map(params![band, value as i64, since], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
            })?;
            for row in rows {
                let (item, other) = row?;
                let d = hamming(h, other as u64);
                if d <= settings.max_distance && best.is_none_or(|(bd, _)| d < bd) {
                    best = Some((d, item));
                }
            }
        }
        if let Some((_, item)) = best {
            let id: Option<String> = tx
                .prepare_cached("SELECT id FROM items WHERE rowid = ?1 AND id != ?2")?
                .query_row(params![item, own_id], |r| r.get(0))
                .optional()?;
            if let Some(id) = id {
                return resolve(tx, &id, DuplicateReason::Near);
            }
        }
    }
    Ok(None)
}

/// The story's first item (a match that is itself a duplicate points at its root).
fn resolve(
    tx: &Connection,
    id: &str,
    reason: DuplicateReason,
) -> Result<Option<Match>, StoreError> {
    let found = tx
        .prepare_cached("SELECT COALESCE(duplicate_of, id), feed_id FROM items WHERE id = ?1")?
        .query_row(params![id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })
        .optional()?;
    Ok(found.map(|(root, feed_id)| Match {
        root,
        reason,
        feed_id,
    }))
}

/// Adds the item's URL keys and SimHash bands to the indexes.
fn add_to_indexes(
    tx: &Transaction<'_>,
    id: &str,
    rowid: i64,
    fp: &Fingerprint,
    settings: &DedupSettings,
    now: i64,
) -> Result<(), StoreError> {
    let mut keys =
        tx.prepare_cached("INSERT OR IGNORE INTO url_keys (key, item_id) VALUES (?1, ?2)")?;
    for key in &fp.url_keys {
        keys.execute(params![key, id])?;
    }
    if let (true, Some(h)) = (settings.near_duplicates, fp.simhash) {
        let mut bands = tx.prepare_cached(
            "INSERT OR IGNORE INTO simhash_bands (band, value, item, simhash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for (band, value) in simhash_bands(h, settings.max_distance) {
            bands.execute(params![band, value as i64, rowid, h as i64, now])?;
        }
    }
    Ok(())
}

/// Re-cuts the bands when `max_distance` changed since they were written.
pub(super) fn prepare_bands(conn: &mut Connection, max_distance: u32) -> Result<(), StoreError> {
    let current: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'bands_max_distance'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if current.as_deref() == Some(max_distance.to_string().as_str()) {
        return Ok(());
    }
    let tx = conn.transaction()?;
    tx.execute("DELETE FROM simhash_bands", [])?;
    {
        let mut items =
            tx.prepare("SELECT rowid, simhash, created_at FROM items WHERE simhash IS NOT NULL")?;
        let rows = items.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        let mut insert = tx.prepare(
            "INSERT OR IGNORE INTO simhash_bands (band, value, item, simhash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for row in rows {
            let (item, h, created) = row?;
            for (band, value) in simhash_bands(h as u64, max_distance) {
                insert.execute(params![band, value as i64, item, h, created])?;
            }
        }
    }
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('bands_max_distance', ?1)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![max_distance.to_string()],
    )?;
    tx.commit()?;
    Ok(())
}

fn hex(bytes: [u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
