//! Near-duplicate lookup against a store of 1,000,000 sketched items: p50/p99 per lookup,
//! insert throughput, and the size on disk of the item rows, their sketches and the band index.
//!
//! Each item's shingle set is 150 to 400 random 64-bit shingle hashes (as many as a
//! 150–400 word text has), from which the sketch and the bands are built as for a text.
//! Random sets share no shingles, so unrelated items never share a band here; real texts
//! do now and then (`tests/dedup_corpus.rs` measures how often), which adds a sketch read
//! to a lookup, bounded per band by the store.
//!
//! `cargo bench --bench dedup_index`; `FEEDWIRE_BENCH_FINGERPRINTS=100000` for a quicker run.

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use feedwire::dedup::{Fingerprint, Sketch, bands};
use feedwire::store::{
    DedupSettings, FeedSpec, IngestBatch, NewItem, PollRecord, PollStatus, Store, Timestamp,
};

const BATCH: usize = 5_000;
const LOOKUPS: usize = 20_000;

/// A small deterministic generator, so every run stores the same fingerprints.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn settings() -> DedupSettings {
    DedupSettings {
        near_duplicates: true,
        window: Duration::from_secs(30 * 24 * 3600),
    }
}

/// The shingle hashes of stored item `n`, the same on every call.
fn shingles(n: u64) -> Vec<u64> {
    let mut rng = XorShift(n.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let len = 150 + rng.next() % 251;
    (0..len).map(|_| rng.next()).collect()
}

fn fingerprint(hashes: &[u64]) -> Fingerprint {
    Fingerprint {
        url_keys: Vec::new(),
        content_hash: None,
        sketch: Some((Sketch::from_hashes(hashes), bands(hashes))),
    }
}

fn item(n: u64, fingerprint: Fingerprint) -> NewItem {
    NewItem {
        id: format!("{n:026}"),
        key: format!("guid:{n}"),
        url: None,
        link: None,
        guid: None,
        title: None,
        published_at: None,
        content_source: None,
        emitted: false,
        not_sent: None,
        fingerprint: Some(fingerprint),
        new_sinks: Vec::new(),
        duplicate_sinks: Vec::new(),
        revision: None,
        update_of: None,
        updated_sinks: Vec::new(),
    }
}

fn poll() -> PollRecord {
    PollRecord {
        at: Timestamp::now(),
        status: PollStatus::Ok,
        http_status: Some(200),
        error: None,
        errors_in_row: 0,
        next_poll_at: Timestamp::now(),
        etag: None,
        last_modified: None,
        title: None,
        moved_to: None,
        rate: None,
        reason: None,
        event: None,
    }
}

fn bench(c: &mut Criterion) {
    let total: usize = std::env::var("FEEDWIRE_BENCH_FINGERPRINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("feedwire.db")).expect("store");
    let feed_id = rt
        .block_on(store.sync_feeds(vec![FeedSpec {
            name: "bench".into(),
            url: "http://bench.invalid/".into(),
        }]))
        .expect("feed")[0]
        .id;

    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    // Sketching is the processing stage's work, not the store's: only ingest is timed.
    let mut took = Duration::ZERO;
    let mut n = 0u64;
    while (n as usize) < total {
        let items: Vec<NewItem> = (0..BATCH.min(total - n as usize))
            .map(|_| {
                n += 1;
                item(n, fingerprint(&shingles(n)))
            })
            .collect();
        let batch = IngestBatch {
            feed_id,
            poll: poll(),
            items,
            dedup: settings(),
            render: Box::new(|_, _, _| String::new()),
        };
        let start = Instant::now();
        rt.block_on(store.ingest(batch)).expect("ingest");
        took += start.elapsed();
    }
    println!(
        "inserted {total} sketched items in {:.1}s: {:.0} items/s (each also looked up before insert)",
        took.as_secs_f64(),
        total as f64 / took.as_secs_f64()
    );
    let sizes = rt.block_on(store.reader().table_sizes()).expect("sizes");
    // The figure compared across versions: the item rows, their sketches and the band index
    // (the SimHash version's was the item rows and its band table).
    let mut dedup_bytes = 0;
    for (name, bytes) in &sizes {
        let counted = ["items", "item_sketches", "story_bands"].contains(&name.as_str());
        if counted {
            dedup_bytes += bytes;
        }
        println!(
            "on disk: {name}: {:.1} MiB{}",
            *bytes as f64 / 1048576.0,
            if counted { " (counted below)" } else { "" }
        );
    }
    println!(
        "on disk: items, sketches and band index together: {:.1} MiB, {:.0} bytes per item; whole database {:.1} MiB",
        dedup_bytes as f64 / 1048576.0,
        dedup_bytes as f64 / total as f64,
        sizes.iter().map(|(_, b)| b).sum::<i64>() as f64 / 1048576.0
    );

    // Per-lookup latency: half edited copies of stored items (a tenth of their shingles
    // replaced, a twentieth added: Jaccard about 0.8), half new texts.
    let mut times: Vec<Duration> = Vec::with_capacity(LOOKUPS);
    let mut hits = 0;
    for i in 0..LOOKUPS {
        let probe: Vec<u64> = if i % 2 == 0 {
            let mut hashes = shingles(1 + rng.next() % total as u64);
            let len = hashes.len();
            for _ in 0..len / 10 {
                let at = (rng.next() % len as u64) as usize;
                hashes[at] = rng.next();
            }
            hashes.extend((0..len / 20).map(|_| rng.next()));
            hashes
        } else {
            (0..150 + rng.next() % 251).map(|_| rng.next()).collect()
        };
        let fp = fingerprint(&probe);
        let t = Instant::now();
        if rt
            .block_on(store.find_duplicate(fp, settings()))
            .expect("lookup")
            .is_some()
        {
            hits += 1;
        }
        times.push(t.elapsed());
    }
    times.sort();
    let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    println!(
        "lookup over {total} sketched items: p50 {:?}, p99 {:?}, max {:?}; {hits}/{} edited copies found",
        pct(0.50),
        pct(0.99),
        times[times.len() - 1],
        LOOKUPS / 2
    );

    c.bench_function("near-duplicate lookup (new fingerprint)", |b| {
        b.iter(|| {
            let probe: Vec<u64> = (0..300).map(|_| rng.next()).collect();
            let fp = fingerprint(&probe);
            rt.block_on(store.find_duplicate(fp, settings()))
                .expect("lookup")
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
