//! Items on PostgreSQL: the known-entry checks, the ingest transaction with the same-story
//! decision made exact across nodes, and pruning.
//!
//! The decision is the SQLite store's (`store/ingest.rs`): a URL key, then the exact content,
//! then a near copy found through a shared LSH band and verified on its stored sketch; a
//! duplicate points at the story's first item. Two nodes may ingest copies of one story at
//! the same instant, so before it reads anything the transaction takes an advisory lock on
//! every dedup key the decision reads (each URL key, each content hash, each band key), all
//! of them in one statement in one global order, so that two batches never wait on each
//! other in a cycle. The second of two copies then waits until the first is committed and
//! finds it. Items that share no key never wait on each other; a batch with very many keys
//! takes one lock for all instead (`MAX_KEY_LOCKS`).
//!
//! A batch costs a fixed number of round trips whatever its size: the locks, one insert of
//! its items, one read per kind of key against what is stored, the decisions made in memory
//! (the batch's own earlier items are candidates from there, as on SQLite), one write per
//! index and for the events and their outbox rows, then the poll's record.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{PgStore, now_ms, write_poll};
use crate::dedup::{DuplicateReason, Fingerprint, Sketch};
use crate::model::EventType;
use crate::store::ingest::{MAX_BAND_CANDIDATES, hex};
use crate::store::{DedupSettings, IngestBatch, IngestReport, KnownItem, NewItem, StoreError};

impl PgStore {
    /// Which of `keys` this feed already has, with their stored ids and revisions.
    pub async fn known_items(
        &self,
        feed_id: i64,
        keys: Vec<String>,
    ) -> Result<HashMap<String, KnownItem>, StoreError> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT key, id, revision FROM items WHERE feed_id = $1 AND key = ANY($2::text[])",
            )
            .await?;
        let rows = client.query(&stmt, &[&feed_id, &keys]).await?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    KnownItem {
                        id: r.get(1),
                        revision: r.get(2),
                    },
                )
            })
            .collect())
    }

    /// Stores a poll's new items, deciding for each whether it is a story already seen (by
    /// this node or any other), with its event and one outbox row per sink, together with
    /// the poll's record (which ends this node's lease of the feed), in one transaction.
    pub async fn ingest(&self, batch: IngestBatch) -> Result<IngestReport, StoreError> {
        // Taken apart so that no borrow of the renderer (not `Sync`) lives across an await.
        let IngestBatch {
            feed_id,
            poll,
            items,
            dedup,
            render,
        } = batch;
        let now = now_ms();
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let mut report = IngestReport::default();

        let fresh: Vec<&NewItem> = items.iter().filter(|i| i.update_of.is_none()).collect();
        let fingerprints: Vec<&Fingerprint> = fresh
            .iter()
            .filter_map(|i| i.fingerprint.as_ref())
            .collect();
        lock_keys(&tx, &fingerprints, &dedup).await?;
        let seqs = insert_items(&tx, feed_id, &fresh, now).await?;
        let inserted: Vec<&str> = seqs.keys().map(String::as_str).collect();
        let stored = Stored::read(&tx, &fingerprints, &inserted, &dedup, now).await?;

        // The batch's items as candidates for its later items, and what they add to the
        // indexes, written together after the decisions.
        let mut pending = Index::default();
        let mut writes = Writes::default();
        // New GUIDs on links this feed already had: the feed changes its GUIDs.
        let mut drifted = 0;
        let since = now - dedup.window.as_millis() as i64;
        for (index, item) in items.iter().enumerate() {
            if let Some(id) = &item.update_of {
                if update(&tx, id, item, &mut report).await? {
                    let body = render(index, EventType::ItemUpdated, None);
                    writes.emit(id, EventType::ItemUpdated, body, &item.updated_sinks);
                }
                continue;
            }
            let Some(&seq) = seqs.get(&item.id) else {
                report.already_known += 1;
                continue;
            };
            report.stored += 1;
            if let Some(reason) = &item.not_sent {
                report.not_sent.push(reason.clone());
            }
            let fp = item.fingerprint.as_ref();
            let found = fp.and_then(|fp| decide(fp, &dedup, since, &stored, &pending));
            if let Some(fp) = fp {
                let root = found.as_ref().map_or(item.id.as_str(), |m| m.root.as_str());
                let own = Hit {
                    root: root.to_string(),
                    feed_id,
                };
                pending.add(&item.id, seq, fp, &dedup, &own, now, &mut writes);
            }
            let same_feed_link = found
                .as_ref()
                .is_some_and(|m| m.feed_id == feed_id && m.reason == DuplicateReason::Url);
            if let Some(m) = &found {
                writes
                    .duplicates
                    .push((item.id.clone(), m.root.clone(), m.reason));
                report.duplicates += 1;
                report.duplicate_reasons.push(m.reason.as_str());
                if same_feed_link {
                    drifted += 1;
                }
            }
            let Some((kind, sinks)) =
                crate::store::ingest::item_event(item, found.is_some(), same_feed_link)
            else {
                continue;
            };
            if kind == EventType::ItemNew {
                report.emitted += 1;
            }
            if sinks.is_empty() {
                continue;
            }
            let body = render(index, kind, found.as_ref().map(|m| m.root.as_str()));
            writes.emit(&item.id, kind, body, sinks);
        }
        if report.stored >= 2 && drifted == report.stored {
            tx.execute(
                "UPDATE feeds SET guid_unreliable = TRUE WHERE id = $1",
                &[&feed_id],
            )
            .await?;
            report.guids_unreliable = true;
        }
        writes.write(&tx, now).await?;
        write_poll(&tx, &self.node, feed_id, &poll).await?;
        tx.commit().await?;
        Ok(report)
    }

    /// Which of these URL keys some stored item already has (the cheap check before an
    /// article is fetched).
    pub async fn known_url_keys(&self, keys: Vec<String>) -> Result<HashSet<String>, StoreError> {
        if keys.is_empty() {
            return Ok(HashSet::new());
        }
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT DISTINCT key FROM url_keys WHERE key = ANY($1::text[])")
            .await?;
        let rows = client.query(&stmt, &[&keys]).await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// The first item of the stored story `fp` belongs to, and why, if any (the lookup the
    /// ingest transaction makes, without storing or locking anything).
    pub async fn find_duplicate(
        &self,
        fp: Fingerprint,
        settings: DedupSettings,
    ) -> Result<Option<(String, DuplicateReason)>, StoreError> {
        let mut client = self.client().await?;
        // One snapshot for the reads, so that they agree with each other.
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let now = now_ms();
        let stored = Stored::read(&tx, &[&fp], &[], &settings, now).await?;
        tx.commit().await?;
        let since = now - settings.window.as_millis() as i64;
        Ok(decide(&fp, &settings, since, &stored, &Index::default()).map(|m| (m.root, m.reason)))
    }

    /// Drops what retention no longer needs: the sketches of items older than `window` with
    /// their band rows, and events older than `retention` whose deliveries are finished
    /// (their outbox rows go with them). Item rows stay (identity, URL keys, content hash),
    /// so an old item seen again is still not new. Returns the band rows and events dropped.
    ///
    /// Old sketches are found by their time rather than by `items.seq`: on a shared database
    /// numbers are handed out in the order transactions ran, which need not be the order of
    /// the nodes' clocks. The band rows of those items are found by a scan of the band table,
    /// once an hour, as on SQLite: cheaper than an index by item that every insert would pay
    /// for.
    pub async fn prune(
        &self,
        window: Duration,
        retention: Duration,
    ) -> Result<(usize, usize), StoreError> {
        let mut client = self.client().await?;
        let now = now_ms();
        let tx = client.transaction().await?;
        let bands = tx
            .execute(
                "WITH gone AS (DELETE FROM item_sketches WHERE created_at < $1 RETURNING item)
                 DELETE FROM story_bands WHERE item IN (SELECT item FROM gone)",
                &[&(now - window.as_millis() as i64)],
            )
            .await?;
        tx.commit().await?;
        let events = client
            .execute(
                "DELETE FROM events WHERE created_at < $1
                   AND NOT EXISTS (SELECT 1 FROM outbox o
                                   WHERE o.event_id = events.id AND o.state = 'pending')",
                &[&(now - retention.as_millis() as i64)],
            )
            .await?;
        Ok((bands as usize, events as usize))
    }
}

/// Every ingest that reads dedup keys holds this advisory lock shared, a batch with more keys
/// than [`MAX_KEY_LOCKS`] holds it alone ("fw" + 2, next to the migration lock's "fw" + 1).
const BATCH_LOCK: i64 = 0x6677_0002;

/// The most key locks one transaction takes. Advisory locks live in the server's shared
/// lock table, which holds `max_locks_per_transaction` (64 by default) times
/// `max_connections` (100) of them for the whole server: the first poll of a feed with
/// thousands of entries would need more (a default server refuses 20,000 in one
/// transaction: "out of shared memory"). Such a batch takes [`BATCH_LOCK`] exclusively
/// instead and runs alone, which is as exact and costs the other nodes a short wait. Each
/// node runs one ingest transaction at a time, so a few nodes stay far below the table's size.
const MAX_KEY_LOCKS: usize = 512;

/// Takes, for the rest of the transaction, the advisory lock of every dedup key the batch's
/// decisions read: [`BATCH_LOCK`] shared first, then the keys sorted, so every node takes
/// any two locks in the same order; a batch with too many keys takes [`BATCH_LOCK`] alone.
async fn lock_keys(
    tx: &deadpool_postgres::Transaction<'_>,
    fingerprints: &[&Fingerprint],
    settings: &DedupSettings,
) -> Result<(), StoreError> {
    let mut locks: Vec<i64> = Vec::new();
    for fp in fingerprints {
        locks.extend(fp.url_keys.iter().map(|k| lock_key(b"url", k.as_bytes())));
        locks.extend(fp.content_hash.iter().map(|h| lock_key(b"content", h)));
        if settings.near_duplicates
            && let Some((_, bands)) = &fp.sketch
        {
            locks.extend(bands.iter().map(|b| lock_key(b"band", &b.to_be_bytes())));
        }
    }
    // A batch that reads no key has nothing to decide against the other nodes.
    if locks.is_empty() {
        return Ok(());
    }
    locks.sort_unstable();
    locks.dedup();
    if locks.len() > MAX_KEY_LOCKS {
        let stmt = tx
            .prepare_cached("SELECT pg_advisory_xact_lock($1)")
            .await?;
        tx.execute(&stmt, &[&BATCH_LOCK]).await?;
        return Ok(());
    }
    let shared = tx
        .prepare_cached("SELECT pg_advisory_xact_lock_shared($1)")
        .await?;
    // `unnest` yields the array in its order, and each row's lock is taken as it comes.
    let keys = tx
        .prepare_cached("SELECT pg_advisory_xact_lock(k) FROM unnest($1::int8[]) AS k")
        .await?;
    // The shared lock first: a big batch waiting for it exclusively must not wait behind a
    // batch that holds key locks another holder of the shared lock waits for.
    tx.execute(&shared, &[&BATCH_LOCK]).await?;
    tx.execute(&keys, &[&locks]).await?;
    Ok(())
}

/// A 64-bit advisory-lock key for one dedup key of one kind; the same on every node.
fn lock_key(kind: &[u8], key: &[u8]) -> i64 {
    let digest = Sha256::new()
        .chain_update(kind)
        .chain_update([0])
        .chain_update(key)
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

/// Inserts the batch's new items in one statement; returns the number (`seq`) of each item
/// inserted, by id. An item whose feed already has its key is left out.
async fn insert_items(
    tx: &deadpool_postgres::Transaction<'_>,
    feed_id: i64,
    items: &[&NewItem],
    now: i64,
) -> Result<HashMap<String, i64>, StoreError> {
    if items.is_empty() {
        return Ok(HashMap::new());
    }
    let col = |f: fn(&NewItem) -> Option<String>| -> Vec<Option<String>> {
        items.iter().map(|i| f(i)).collect()
    };
    let ids: Vec<&str> = items.iter().map(|i| i.id.as_str()).collect();
    let keys: Vec<&str> = items.iter().map(|i| i.key.as_str()).collect();
    let published: Vec<Option<i64>> = items
        .iter()
        .map(|i| i.published_at.map(|t| t.as_millis()))
        .collect();
    let emitted: Vec<bool> = items.iter().map(|i| i.emitted).collect();
    let stmt = tx
        .prepare_cached(
            "INSERT INTO items (id, feed_id, key, url, link, guid, title, published_at,
                content_source, content_hash, emitted, created_at, revision, not_sent)
             SELECT id, $1, key, url, link, guid, title, published_at, content_source,
                content_hash, emitted, $2, revision, not_sent
             FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                $9::int8[], $10::text[], $11::text[], $12::bool[], $13::text[], $14::text[])
                AS t(id, key, url, link, guid, title, published_at, content_source,
                     content_hash, emitted, revision, not_sent)
             ON CONFLICT (feed_id, key) DO NOTHING
             RETURNING id, seq",
        )
        .await?;
    let rows = tx
        .query(
            &stmt,
            &[
                &feed_id,
                &now,
                &ids,
                &keys,
                &col(|i| i.url.clone()),
                &col(|i| i.link.clone()),
                &col(|i| i.guid.clone()),
                &col(|i| i.title.clone()),
                &published,
                &col(|i| i.content_source.map(str::to_string)),
                &col(|i| i.fingerprint.as_ref().and_then(|f| f.content_hash).map(hex)),
                &emitted,
                &col(|i| i.revision.clone()),
                &col(|i| i.not_sent.clone()),
            ],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// A new revision of a stored item: the revision is recorded; returns whether its
/// `item.updated` event is due (the text changed and some sink asked for it).
async fn update(
    tx: &deadpool_postgres::Transaction<'_>,
    id: &str,
    item: &NewItem,
    report: &mut IngestReport,
) -> Result<bool, StoreError> {
    let stmt = tx
        .prepare_cached(
            "UPDATE items SET revision = $2, title = COALESCE($3, title)
             WHERE id = $1 AND revision IS DISTINCT FROM $2",
        )
        .await?;
    let changed = tx
        .execute(&stmt, &[&id, &item.revision, &item.title])
        .await?;
    if changed == 0 {
        return Ok(false);
    }
    report.updated += 1;
    Ok(!item.updated_sinks.is_empty())
}

/// The story an item that matched belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hit {
    /// The first item of the story.
    root: String,
    /// The feed of the item that matched.
    feed_id: i64,
}

/// A match and why.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Match {
    root: String,
    reason: DuplicateReason,
    feed_id: i64,
}

impl Match {
    fn new(hit: &Hit, reason: DuplicateReason) -> Match {
        Match {
            root: hit.root.clone(),
            reason,
            feed_id: hit.feed_id,
        }
    }
}

/// A near-copy candidate: its time, its sketch and its story.
struct Candidate {
    created_at: i64,
    sketch: Sketch,
    hit: Hit,
}

/// Dedup keys and what is known under them: the stored items ([`Stored`]) or the batch's own
/// earlier items.
#[derive(Default)]
struct Index {
    /// The first item under each URL key.
    url: HashMap<String, Hit>,
    /// The first item with each content hash (hex).
    content: HashMap<String, Hit>,
    /// The items (`seq`) under each band key: stored ones newest first, the batch's in the
    /// order they came.
    bands: HashMap<i32, Vec<i64>>,
    /// The candidates' sketches, by `seq`.
    sketches: HashMap<i64, Candidate>,
}

/// What is stored under a batch's keys, read once, before any decision.
type Stored = Index;

impl Index {
    /// Reads the stored items under the keys of `fingerprints` (the items `own` excluded):
    /// the first one per URL key and per content hash, and for each band key its newest
    /// [`MAX_BAND_CANDIDATES`] items with their sketches inside the window.
    async fn read(
        tx: &deadpool_postgres::Transaction<'_>,
        fingerprints: &[&Fingerprint],
        own: &[&str],
        settings: &DedupSettings,
        now: i64,
    ) -> Result<Index, StoreError> {
        let mut found = Index::default();
        let mut url_keys: Vec<&str> = fingerprints
            .iter()
            .flat_map(|fp| fp.url_keys.iter().map(String::as_str))
            .collect();
        distinct(&mut url_keys);
        if !url_keys.is_empty() {
            // The batch's own keys are written after the decisions, so none is its own hit.
            let stmt = tx
                .prepare_cached(
                    "SELECT DISTINCT ON (u.key) u.key, COALESCE(i.duplicate_of, i.id), i.feed_id
                     FROM url_keys u JOIN items i ON i.id = u.item_id
                     WHERE u.key = ANY($1::text[])
                     ORDER BY u.key, i.seq",
                )
                .await?;
            for r in tx.query(&stmt, &[&url_keys]).await? {
                found.url.insert(r.get(0), hit(&r));
            }
        }
        let mut hashes: Vec<String> = fingerprints
            .iter()
            .filter_map(|fp| fp.content_hash.map(hex))
            .collect();
        distinct(&mut hashes);
        if !hashes.is_empty() {
            let stmt = tx
                .prepare_cached(
                    "SELECT DISTINCT ON (content_hash) content_hash, COALESCE(duplicate_of, id), feed_id
                     FROM items
                     WHERE content_hash = ANY($1::text[]) AND NOT (id = ANY($2::text[]))
                     ORDER BY content_hash, created_at, seq",
                )
                .await?;
            for r in tx.query(&stmt, &[&hashes, &own]).await? {
                found.content.insert(r.get(0), hit(&r));
            }
        }
        if !settings.near_duplicates {
            return Ok(found);
        }
        let mut bands: Vec<i32> = fingerprints
            .iter()
            .filter_map(|fp| fp.sketch.as_ref())
            .flat_map(|(_, bands)| bands.iter().copied())
            .collect();
        distinct(&mut bands);
        if bands.is_empty() {
            return Ok(found);
        }
        // Each band searched newest first, at most so deep: one index search per band.
        let stmt = tx
            .prepare_cached(&format!(
                "SELECT b.key, s.item FROM unnest($1::int4[]) AS b(key)
                 CROSS JOIN LATERAL (
                     SELECT item FROM story_bands WHERE key = b.key
                     ORDER BY item DESC LIMIT {MAX_BAND_CANDIDATES}) s
                 ORDER BY b.key, s.item DESC"
            ))
            .await?;
        let mut candidates: Vec<i64> = Vec::new();
        for r in tx.query(&stmt, &[&bands]).await? {
            let item: i64 = r.get(1);
            found.bands.entry(r.get(0)).or_default().push(item);
            candidates.push(item);
        }
        distinct(&mut candidates);
        if candidates.is_empty() {
            return Ok(found);
        }
        let stmt = tx
            .prepare_cached(
                "SELECT s.item, s.created_at, s.sketch, COALESCE(i.duplicate_of, i.id), i.feed_id
                 FROM item_sketches s JOIN items i ON i.seq = s.item
                 WHERE s.item = ANY($1::int8[]) AND s.created_at >= $2",
            )
            .await?;
        let since = now - settings.window.as_millis() as i64;
        for r in tx.query(&stmt, &[&candidates, &since]).await? {
            let item: i64 = r.get(0);
            let Some(sketch) = Sketch::from_bytes(r.get(2)) else {
                tracing::warn!(item, "stored sketch is unreadable, skipped");
                continue;
            };
            found.sketches.insert(
                item,
                Candidate {
                    created_at: r.get(1),
                    sketch,
                    hit: Hit {
                        root: r.get(3),
                        feed_id: r.get(4),
                    },
                },
            );
        }
        Ok(found)
    }

    /// Adds one of the batch's items (number `seq`, belonging to `own`'s story) as a
    /// candidate for the batch's later items, and its rows to `writes`.
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        id: &str,
        seq: i64,
        fp: &Fingerprint,
        settings: &DedupSettings,
        own: &Hit,
        now: i64,
        writes: &mut Writes,
    ) {
        for key in &fp.url_keys {
            self.url.entry(key.clone()).or_insert_with(|| own.clone());
            writes.url_keys.push((key.clone(), id.to_string()));
        }
        if let Some(hash) = fp.content_hash {
            self.content.entry(hex(hash)).or_insert_with(|| own.clone());
        }
        // A sketch is read only through a band row, so an item without bands stores none.
        if let (true, Some((sketch, bands))) = (settings.near_duplicates, &fp.sketch)
            && !bands.is_empty()
        {
            for key in bands {
                self.bands.entry(*key).or_default().push(seq);
                writes.bands.push((*key, seq));
            }
            self.sketches.insert(
                seq,
                Candidate {
                    created_at: now,
                    sketch: sketch.clone(),
                    hit: own.clone(),
                },
            );
            writes.sketches.push((seq, sketch.to_bytes()));
        }
    }
}

/// Sorts `keys` and drops repeats.
fn distinct<T: Ord>(keys: &mut Vec<T>) {
    keys.sort_unstable();
    keys.dedup();
}

/// The story a row of the URL or content lookup names: root in column 1, feed in column 2.
fn hit(r: &tokio_postgres::Row) -> Hit {
    Hit {
        root: r.get(1),
        feed_id: r.get(2),
    }
}

/// The first story `fp` belongs to among what is stored and the batch's earlier items: by
/// URL key, then by exact content, then by near content inside the window (candidates
/// through the band keys, the batch's own newest first, each verified on its sketch).
fn decide(
    fp: &Fingerprint,
    settings: &DedupSettings,
    since: i64,
    stored: &Stored,
    pending: &Index,
) -> Option<Match> {
    for key in &fp.url_keys {
        if let Some(hit) = stored.url.get(key).or_else(|| pending.url.get(key)) {
            return Some(Match::new(hit, DuplicateReason::Url));
        }
    }
    if let Some(hash) = fp.content_hash.map(hex)
        && let Some(hit) = stored
            .content
            .get(&hash)
            .or_else(|| pending.content.get(&hash))
    {
        return Some(Match::new(hit, DuplicateReason::Content));
    }
    let (true, Some((sketch, bands))) = (settings.near_duplicates, &fp.sketch) else {
        return None;
    };
    let limit = MAX_BAND_CANDIDATES as usize;
    let mut candidates: Vec<i64> = Vec::new();
    for key in bands {
        let batch = pending.bands.get(key).into_iter().flatten().rev();
        let older = stored.bands.get(key).into_iter().flatten();
        for item in batch.chain(older).take(limit) {
            if !candidates.contains(item) {
                candidates.push(*item);
            }
        }
    }
    let mut best: Option<(f64, &Candidate)> = None;
    for item in candidates {
        let Some(c) = pending
            .sketches
            .get(&item)
            .or_else(|| stored.sketches.get(&item))
        else {
            // Pruned with its window, or its item is gone.
            continue;
        };
        if c.created_at < since {
            continue;
        }
        let similarity = sketch.similarity(&c.sketch);
        if similarity.is_match() && best.is_none_or(|(j, _)| similarity.jaccard > j) {
            best = Some((similarity.jaccard, c));
        }
    }
    best.map(|(_, c)| Match::new(&c.hit, DuplicateReason::Near))
}

/// What a batch adds to the dedup indexes, written after its decisions, one statement each.
#[derive(Default)]
struct Writes {
    /// (item, root, reason) of each duplicate.
    duplicates: Vec<(String, String, DuplicateReason)>,
    /// (key, item id).
    url_keys: Vec<(String, String)>,
    /// (`seq`, encoded sketch).
    sketches: Vec<(i64, Vec<u8>)>,
    /// (band key, `seq`).
    bands: Vec<(i32, i64)>,
    /// (event id, item id, type, body) of each item event, in the batch's order.
    events: Vec<(String, String, &'static str, String)>,
    /// (event id, sink, `webhook-id`): one outbox row per sink of each event.
    outbox: Vec<(String, String, String)>,
}

impl Writes {
    /// An event of an item and one outbox row per sink, each row with its own `webhook-id`
    /// (kept across retries and redeliveries), as `super::emit` writes them.
    fn emit(&mut self, item_id: &str, kind: EventType, body: String, sinks: &[String]) {
        let event_id = ulid::Ulid::new().to_string();
        for sink in sinks {
            let webhook_id = format!("msg_{}", ulid::Ulid::new());
            self.outbox
                .push((event_id.clone(), sink.clone(), webhook_id));
        }
        self.events
            .push((event_id, item_id.to_string(), kind.as_str(), body));
    }

    async fn write(
        mut self,
        tx: &deadpool_postgres::Transaction<'_>,
        now: i64,
    ) -> Result<(), StoreError> {
        if !self.duplicates.is_empty() {
            let ids: Vec<&str> = self.duplicates.iter().map(|d| d.0.as_str()).collect();
            let roots: Vec<&str> = self.duplicates.iter().map(|d| d.1.as_str()).collect();
            let reasons: Vec<&str> = self.duplicates.iter().map(|d| d.2.as_str()).collect();
            let stmt = tx
                .prepare_cached(
                    "UPDATE items SET duplicate_of = d.root, duplicate_reason = d.reason
                     FROM unnest($1::text[], $2::text[], $3::text[]) AS d(id, root, reason)
                     WHERE items.id = d.id",
                )
                .await?;
            tx.execute(&stmt, &[&ids, &roots, &reasons]).await?;
        }
        if !self.url_keys.is_empty() {
            let (keys, ids): (Vec<&str>, Vec<&str>) = self
                .url_keys
                .iter()
                .map(|(k, id)| (k.as_str(), id.as_str()))
                .unzip();
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO url_keys (key, item_id) SELECT * FROM unnest($1::text[], $2::text[])
                     ON CONFLICT DO NOTHING",
                )
                .await?;
            tx.execute(&stmt, &[&keys, &ids]).await?;
        }
        if !self.sketches.is_empty() {
            let (seqs, bytes): (Vec<i64>, Vec<Vec<u8>>) = self.sketches.into_iter().unzip();
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO item_sketches (item, created_at, sketch)
                     SELECT item, $1, sketch FROM unnest($2::int8[], $3::bytea[]) AS t(item, sketch)
                     ON CONFLICT (item) DO UPDATE
                        SET created_at = EXCLUDED.created_at, sketch = EXCLUDED.sketch",
                )
                .await?;
            tx.execute(&stmt, &[&now, &seqs, &bytes]).await?;
        }
        if !self.bands.is_empty() {
            // In key order: the batch walks the band index once from its first key to its last.
            self.bands.sort_unstable();
            let (keys, seqs): (Vec<i32>, Vec<i64>) = self.bands.into_iter().unzip();
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO story_bands (key, item) SELECT * FROM unnest($1::int4[], $2::int8[])
                     ON CONFLICT DO NOTHING",
                )
                .await?;
            tx.execute(&stmt, &[&keys, &seqs]).await?;
        }
        if !self.events.is_empty() {
            let ids: Vec<&str> = self.events.iter().map(|e| e.0.as_str()).collect();
            let items: Vec<&str> = self.events.iter().map(|e| e.1.as_str()).collect();
            let kinds: Vec<&str> = self.events.iter().map(|e| e.2).collect();
            let bodies: Vec<&str> = self.events.iter().map(|e| e.3.as_str()).collect();
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO events (id, item_id, type, body, created_at)
                     SELECT id, item_id, type, body, $1
                     FROM unnest($2::text[], $3::text[], $4::text[], $5::text[])
                        AS t(id, item_id, type, body)",
                )
                .await?;
            tx.execute(&stmt, &[&now, &ids, &items, &kinds, &bodies])
                .await?;
        }
        if !self.outbox.is_empty() {
            let events: Vec<&str> = self.outbox.iter().map(|o| o.0.as_str()).collect();
            let sinks: Vec<&str> = self.outbox.iter().map(|o| o.1.as_str()).collect();
            let webhook_ids: Vec<&str> = self.outbox.iter().map(|o| o.2.as_str()).collect();
            // Row ids are handed out in the array's order: the batch's items are delivered
            // in the order they came.
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO outbox (event_id, sink, webhook_id, next_attempt_at, created_at)
                     SELECT event_id, sink, webhook_id, $1, $1
                     FROM unnest($2::text[], $3::text[], $4::text[]) WITH ORDINALITY
                        AS t(event_id, sink, webhook_id, n)
                     ORDER BY n",
                )
                .await?;
            tx.execute(&stmt, &[&now, &events, &sinks, &webhook_ids])
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(root: &str, feed_id: i64) -> Hit {
        Hit {
            root: root.into(),
            feed_id,
        }
    }

    const SETTINGS: DedupSettings = DedupSettings {
        near_duplicates: true,
        window: Duration::from_secs(3600),
    };

    /// A stored item outranks the batch's own under the same key, and a URL key outranks
    /// the content.
    #[test]
    fn stored_story_first_then_url_before_content() {
        let fp = Fingerprint {
            url_keys: vec!["example.com/a".into()],
            content_hash: Some([7; 32]),
            sketch: None,
        };
        let mut stored = Index::default();
        let mut pending = Index::default();
        pending.url.insert("example.com/a".into(), hit("batch", 1));
        stored.content.insert(hex([7; 32]), hit("old", 2));
        let m = decide(&fp, &SETTINGS, 0, &stored, &pending).expect("a match");
        assert_eq!((m.root.as_str(), m.reason), ("batch", DuplicateReason::Url));
        stored.url.insert("example.com/a".into(), hit("stored", 3));
        let m = decide(&fp, &SETTINGS, 0, &stored, &pending).expect("a match");
        assert_eq!(
            (m.root.as_str(), m.reason, m.feed_id),
            ("stored", DuplicateReason::Url, 3)
        );
    }

    /// A near copy matches through a shared band only inside the window, and not at all with
    /// near duplicates off.
    #[test]
    fn near_copy_through_a_band_inside_the_window() {
        let text: String = (0..120).map(|i| format!("word{i} ")).collect();
        let copy = format!("{text} extra");
        let (sketch, bands) = crate::dedup::sketch(&text).expect("long enough");
        let fp = Fingerprint {
            url_keys: Vec::new(),
            content_hash: None,
            sketch: crate::dedup::sketch(&copy),
        };
        let mut stored = Index::default();
        for key in &bands {
            stored.bands.insert(*key, vec![5]);
        }
        stored.sketches.insert(
            5,
            Candidate {
                created_at: 100,
                sketch,
                hit: hit("first", 1),
            },
        );
        let pending = Index::default();
        let m = decide(&fp, &SETTINGS, 50, &stored, &pending).expect("a near copy");
        assert_eq!(
            (m.root.as_str(), m.reason),
            ("first", DuplicateReason::Near)
        );
        assert_eq!(decide(&fp, &SETTINGS, 150, &stored, &pending), None);
        let off = DedupSettings {
            near_duplicates: false,
            ..SETTINGS
        };
        assert_eq!(decide(&fp, &off, 50, &stored, &pending), None);
    }

    /// Lock keys differ by kind for the same bytes, and are the same on every call.
    #[test]
    fn lock_keys_are_stable_and_kinds_never_meet() {
        assert_eq!(lock_key(b"url", b"x"), lock_key(b"url", b"x"));
        assert_ne!(lock_key(b"url", b"x"), lock_key(b"content", b"x"));
    }
}
