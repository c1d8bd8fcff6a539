//! The ingest transaction: new items, the duplicate decision against what is stored, their
//! fingerprints, events and outbox rows, and the poll's outcome, all or nothing.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::sqlite::{now_ms, write_poll};
use super::{IngestBatch, IngestReport, StoreError};
use crate::dedup::{DuplicateReason, Fingerprint, Sketch};
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
    // The batch's band rows, written together at the end (see `Bands`).
    let mut bands = Bands::default();
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
                content_source, content_hash, emitted, created_at, revision, not_sent)
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
            item.emitted,
            now,
            item.revision,
            item.not_sent
        ])?;
        if inserted == 0 {
            report.already_known += 1;
            continue;
        }
        let rowid = tx.last_insert_rowid();
        report.stored += 1;
        if let Some(reason) = &item.not_sent {
            report.not_sent.push(reason.clone());
        }
        let found = match fp {
            Some(fp) => find_duplicate(&tx, &item.id, fp, &batch.dedup, &bands, now)?,
            None => None,
        };
        if let Some(fp) = fp {
            add_to_indexes(&tx, &item.id, rowid, fp, &batch.dedup, &mut bands, now)?;
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
        let Some((kind, sinks)) = item_event(item, found.is_some(), same_feed_link) else {
            continue;
        };
        if kind == EventType::ItemNew {
            report.emitted += 1;
        }
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
    bands.write(&tx)?;
    write_poll(&tx, batch.feed_id, &batch.poll)?;
    tx.commit()?;
    Ok(report)
}

/// The band rows of a batch's items, held until the end of the ingest transaction and then
/// written in key order.
///
/// Band keys are hashes, so an item's rows land at random places in the band index: written
/// as they come, every row dirties its own page, and with more rows than the page cache
/// holds the same page is read, written out and read again. Sorted, the batch walks the index
/// once from the first key to the last. Until then the batch's own rows are candidates from
/// here, so a copy later in the same batch still finds the earlier one.
#[derive(Default)]
pub(super) struct Bands {
    /// The items (rowids, in insertion order) under each key.
    by_key: std::collections::HashMap<i32, Vec<i64>>,
    rows: usize,
}

impl Bands {
    fn add(&mut self, keys: &[i32], item: i64) {
        for key in keys {
            self.by_key.entry(*key).or_default().push(item);
            self.rows += 1;
        }
    }

    /// The batch's items under `key`, newest first.
    fn items(&self, key: i32) -> impl Iterator<Item = i64> + '_ {
        self.by_key
            .get(&key)
            .into_iter()
            .flat_map(|items| items.iter().rev().copied())
    }

    fn write(self, tx: &Transaction<'_>) -> Result<(), StoreError> {
        let mut rows: Vec<(i32, i64)> = Vec::with_capacity(self.rows);
        for (key, items) in self.by_key {
            rows.extend(items.into_iter().map(|item| (key, item)));
        }
        rows.sort_unstable();
        let mut chunks = rows.chunks_exact(BAND_INSERT_ROWS);
        let mut stmt = tx.prepare_cached(&band_insert(BAND_INSERT_ROWS))?;
        for chunk in &mut chunks {
            let args = chunk
                .iter()
                .flat_map(|(key, item)| [i64::from(*key), *item]);
            stmt.execute(rusqlite::params_from_iter(args))?;
        }
        let mut one = tx.prepare_cached(&band_insert(1))?;
        for (key, item) in chunks.remainder() {
            one.execute(params![key, item])?;
        }
        Ok(())
    }
}

/// Band rows per INSERT statement: fewer statement steps than one row each; the rest of a
/// batch goes one row at a time, so only two band statements sit in the statement cache.
const BAND_INSERT_ROWS: usize = 64;

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
/// then by near content inside the window (candidates through the band index, each
/// verified on its stored sketch).
pub(super) fn find_duplicate(
    tx: &Connection,
    own_id: &str,
    fp: &Fingerprint,
    settings: &DedupSettings,
    pending: &Bands,
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
    if let (true, Some((sketch, bands))) = (settings.near_duplicates, &fp.sketch)
        && let Some(item) = nearest(
            tx,
            sketch,
            bands,
            pending,
            now - settings.window.as_millis() as i64,
        )?
    {
        return resolve_rowid(tx, item, DuplicateReason::Near);
    }
    Ok(None)
}

/// The most similar stored item (its rowid) inside the window that shares a band with
/// `bands` and whose sketch matches ([`crate::dedup::Similarity::is_match`]).
///
/// Each band is read newest first and at most [`MAX_BAND_CANDIDATES`] rows deep, the batch's
/// own rows (`pending`, the newest of all) first, so a lookup costs at most that many sketch
/// reads per band whatever is stored. The item being ingested has no band rows yet, so it is
/// never its own candidate.
fn nearest(
    tx: &Connection,
    sketch: &Sketch,
    bands: &[i32],
    pending: &Bands,
    since: i64,
) -> Result<Option<i64>, StoreError> {
    let limit = MAX_BAND_CANDIDATES as usize;
    let mut candidates: Vec<i64> = Vec::new();
    let mut band = tx.prepare_cached(&band_rows())?;
    for key in bands {
        let stored = band
            .query_map(params![key], |r| r.get::<_, i64>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        for item in pending.items(*key).chain(stored).take(limit) {
            if !candidates.contains(&item) {
                candidates.push(item);
            }
        }
    }
    let mut best: Option<(f64, i64)> = None;
    let mut stmt = tx.prepare_cached(CANDIDATE_SKETCH)?;
    for item in candidates {
        let row: Option<(i64, Vec<u8>)> = stmt
            .query_row(params![item], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        // No sketch: pruned with its window (its band rows go in the same prune).
        let Some((created_at, bytes)) = row else {
            continue;
        };
        if created_at < since {
            continue;
        }
        let Some(other) = Sketch::from_bytes(&bytes) else {
            tracing::warn!(item, "stored sketch is unreadable, skipped");
            continue;
        };
        let similarity = sketch.similarity(&other);
        if similarity.is_match() && best.is_none_or(|(j, _)| similarity.jaccard > j) {
            best = Some((similarity.jaccard, item));
        }
    }
    Ok(best.map(|(_, item)| item))
}

/// The items under one band key (`?1`), newest first and at most [`MAX_BAND_CANDIDATES`]. The
/// primary key (key, item) is the whole row, so this is one search of the index and reads
/// nothing else.
///
/// One statement run once per band rather than one UNION ALL of every band: SQLite prepared
/// that compound statement anew on every run (`sqlite3Reprepare` under each first step, a
/// twentieth of the insert benchmark's time in a profile), which cost more than the six
/// searches themselves.
fn band_rows() -> String {
    format!(
        "SELECT item FROM story_bands WHERE key = ?1 ORDER BY item DESC LIMIT {MAX_BAND_CANDIDATES}"
    )
}

/// `n` band rows (`?1, ?2` the first key and item, and so on).
fn band_insert(n: usize) -> String {
    let rows: Vec<String> = (0..n)
        .map(|i| format!("(?{}, ?{})", 2 * i + 1, 2 * i + 2))
        .collect();
    format!(
        "INSERT OR IGNORE INTO story_bands (key, item) VALUES {}",
        rows.join(", ")
    )
}

/// A candidate's time and stored sketch.
const CANDIDATE_SKETCH: &str = "SELECT created_at, sketch FROM item_sketches WHERE item = ?1";

/// Rows read per band in one lookup. Items share a band by chance only rarely (see
/// `crate::dedup::LSH_ROWS`); a band holding more than this is a story told many times
/// over, and its newest copies are the ones a new copy resembles most.
pub(super) const MAX_BAND_CANDIDATES: i64 = 16;

/// [`resolve`] for the item at `rowid`.
fn resolve_rowid(
    tx: &Connection,
    rowid: i64,
    reason: DuplicateReason,
) -> Result<Option<Match>, StoreError> {
    root_of(
        tx,
        "SELECT COALESCE(duplicate_of, id), feed_id FROM items WHERE rowid = ?1",
        &rowid,
        reason,
    )
}

/// The story's first item (a match that is itself a duplicate points at its root).
fn resolve(
    tx: &Connection,
    id: &str,
    reason: DuplicateReason,
) -> Result<Option<Match>, StoreError> {
    root_of(
        tx,
        "SELECT COALESCE(duplicate_of, id), feed_id FROM items WHERE id = ?1",
        &id,
        reason,
    )
}

/// The root and feed of the one item `sql` selects by `key`.
fn root_of(
    tx: &Connection,
    sql: &str,
    key: &dyn rusqlite::ToSql,
    reason: DuplicateReason,
) -> Result<Option<Match>, StoreError> {
    let found = tx
        .prepare_cached(sql)?
        .query_row([key], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .optional()?;
    Ok(found.map(|(root, feed_id)| Match {
        root,
        reason,
        feed_id,
    }))
}

/// The event a decided item gets, with its sinks: `item.new` when no stored story matched,
/// `item.duplicate` when one did; none for an item that is not emitted, or for the feed's own
/// item seen under a new GUID (not news, not even as a duplicate). The same rule on both
/// backends.
pub(super) fn item_event(
    item: &super::NewItem,
    duplicate: bool,
    same_feed_link: bool,
) -> Option<(EventType, &[String])> {
    match (item.emitted, duplicate) {
        (false, _) => None,
        (true, false) => Some((EventType::ItemNew, &item.new_sinks)),
        (true, true) if same_feed_link => None,
        (true, true) => Some((EventType::ItemDuplicate, &item.duplicate_sinks)),
    }
}

/// Adds the item's URL keys to their index and, with near duplicates on, its sketch to the
/// sketches and its band keys to the batch's band rows.
fn add_to_indexes(
    tx: &Transaction<'_>,
    id: &str,
    rowid: i64,
    fp: &Fingerprint,
    settings: &DedupSettings,
    bands: &mut Bands,
    now: i64,
) -> Result<(), StoreError> {
    let mut keys =
        tx.prepare_cached("INSERT OR IGNORE INTO url_keys (key, item_id) VALUES (?1, ?2)")?;
    for key in &fp.url_keys {
        keys.execute(params![key, id])?;
    }
    // A sketch is read only through a band row, so an item without bands stores none.
    if let (true, Some((sketch, keys))) = (settings.near_duplicates, &fp.sketch)
        && !keys.is_empty()
    {
        // Rowids only grow, so this appends; REPLACE for a rowid SQLite hands out again
        // after the newest items were deleted with their feed.
        tx.prepare_cached(
            "INSERT OR REPLACE INTO item_sketches (item, created_at, sketch) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![rowid, now, sketch.to_bytes()])?;
        bands.add(keys, rowid);
    }
    Ok(())
}

/// A content hash as stored (both backends keep the same text).
pub(super) fn hex(bytes: [u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The near-duplicate lookup is two index searches, never a scan: SQLite's plan for
    /// each statement searches by key.
    #[test]
    fn near_lookup_is_indexed() {
        let mut conn = Connection::open_in_memory().expect("db");
        super::super::schema::migrate(&mut conn).expect("schema");
        for sql in [band_rows(), CANDIDATE_SKETCH.into()] {
            let mut stmt = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .expect("plan");
            let args = rusqlite::params_from_iter(1..=stmt.parameter_count() as i64);
            let plan: Vec<String> = stmt
                .query_map(args, |r| r.get::<_, String>(3))
                .expect("rows")
                .collect::<Result<_, _>>()
                .expect("plan rows");
            // A scan of a table, or a sort, would be a cost that grows with what is stored;
            // scanning a subquery reads only the rows its search returned.
            let scans_or_sorts = plan.iter().any(|step| {
                step.starts_with("SCAN") && !step.starts_with("SCAN (subquery")
                    || step.contains("TEMP B-TREE")
            });
            assert!(
                plan.iter().any(|step| step.starts_with("SEARCH")) && !scans_or_sorts,
                "{sql}: {plan:?}"
            );
        }
    }
}
