//! Near-duplicate lookup against a store of 1,000,000 SimHash fingerprints: p50/p99 per
//! lookup, insert throughput, and the size of the index on disk.
//!
//! `cargo bench --bench dedup_index`; `FEEDWIRE_BENCH_FINGERPRINTS=100000` for a quicker run.

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use feedwire::dedup::Fingerprint;
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
        max_distance: 3,
        window: Duration::from_secs(30 * 24 * 3600),
    }
}

fn item(n: u64, simhash: u64) -> NewItem {
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
        fingerprint: Some(Fingerprint {
            url_keys: Vec::new(),
            content_hash: None,
            simhash: Some(simhash),
        }),
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
    let mut stored: Vec<u64> = Vec::with_capacity(total);
    let start = Instant::now();
    let mut n = 0u64;
    while (n as usize) < total {
        let items: Vec<NewItem> = (0..BATCH.min(total - n as usize))
            .map(|_| {
                n += 1;
                let h = rng.next();
                stored.push(h);
                item(n, h)
            })
            .collect();
        let batch = IngestBatch {
            feed_id,
            poll: poll(),
            items,
            dedup: settings(),
            render: Box::new(|_, _, _| String::new()),
        };
        rt.block_on(store.ingest(batch)).expect("ingest");
    }
    let took = start.elapsed();
    println!(
        "inserted {total} fingerprints in {:.1}s: {:.0} items/s (each also looked up before insert)",
        took.as_secs_f64(),
        total as f64 / took.as_secs_f64()
    );
    let sizes = rt.block_on(store.reader().table_sizes()).expect("sizes");
    for (name, bytes) in sizes
        .iter()
        .filter(|(n, _)| n.starts_with("simhash_bands") || n == "items")
    {
        println!("on disk: {name}: {:.1} MiB", *bytes as f64 / 1048576.0);
    }

    // Per-lookup latency: half near copies of stored fingerprints (1–3 bits flipped), half new.
    let mut times: Vec<Duration> = Vec::with_capacity(LOOKUPS);
    let mut hits = 0;
    for i in 0..LOOKUPS {
        let probe = if i % 2 == 0 {
            let base = stored[(rng.next() % stored.len() as u64) as usize];
            let flips = 1 + rng.next() % 3;
            (0..flips).fold(base, |h, _| h ^ (1u64 << (rng.next() % 64)))
        } else {
            rng.next()
        };
        let fp = Fingerprint {
            url_keys: Vec::new(),
            content_hash: None,
            simhash: Some(probe),
        };
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
        "lookup over {total} fingerprints: p50 {:?}, p99 {:?}, max {:?}; {hits}/{} near copies found",
        pct(0.50),
        pct(0.99),
        times[times.len() - 1],
        LOOKUPS / 2
    );

    c.bench_function("near-duplicate lookup (new fingerprint)", |b| {
        b.iter(|| {
            let fp = Fingerprint {
                url_keys: Vec::new(),
                content_hash: None,
                simhash: Some(rng.next()),
            };
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
