//! The status page with 10,000 feeds: reading its snapshot on the read-only connection, and
//! rendering one page of it (filter and sort over every feed, 100 rows rendered), alone and
//! together. The target is under 200 ms for the whole view.
//! `cargo bench --bench status`

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tokio::runtime::Runtime;

use feedwire::server::status::{Params, StatusPage};
use feedwire::store::{
    DedupSettings, FeedSpec, IngestBatch, NewItem, PollRecord, PollStatus, Store, Timestamp,
};

const FEEDS: usize = 10_000;
/// Feeds that have items, and how many each.
const FEEDS_WITH_ITEMS: usize = 500;
const ITEMS_PER_FEED: usize = 10;
/// One feed in this many failed its last poll.
const FAILING_EVERY: usize = 20;

fn poll(at: Timestamp, failing: bool) -> PollRecord {
    PollRecord {
        at,
        status: if failing {
            PollStatus::Error
        } else {
            PollStatus::Ok
        },
        http_status: Some(if failing { 503 } else { 200 }),
        error: failing.then(|| "HTTP status 503 Service Unavailable".to_string()),
        errors_in_row: u32::from(failing),
        next_poll_at: at.after(Duration::from_secs(900)),
        etag: None,
        last_modified: None,
        title: Some("A feed with a title".into()),
        moved_to: None,
        rate: None,
        reason: Some("default interval 15m (learning the feed's rate)".into()),
        event: None,
    }
}

fn body(feed: usize, n: usize) -> String {
    let text = "A paragraph of the cleaned article, running to a few sentences. ".repeat(20);
    serde_json::json!({
        "type": "item.new",
        "feed": {"name": format!("feed-{feed:05}")},
        "item": {"title": format!("Story {n}"), "content_text": text, "summary": null},
    })
    .to_string()
}

/// A state directory with 10,000 feeds polled once, 5,000 items, and the page over it.
fn setup(rt: &Runtime) -> (tempfile::TempDir, StatusPage) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut toml = format!(
        "[daemon]\nstate_dir = {:?}\n\n[sinks.out]\ntype = \"log\"\npath = {:?}\n\n",
        dir.path().join("state").display().to_string(),
        dir.path().join("out.jsonl").display().to_string()
    );
    for i in 0..FEEDS {
        toml.push_str(&format!(
            "[[feeds]]\nname = \"feed-{i:05}\"\nurl = \"https://host{}.example.com/feed.xml\"\ntags = [\"t{}\"]\n",
            i % 500,
            i % 7
        ));
    }
    let path = dir.path().join("feedwire.toml");
    std::fs::write(&path, toml).expect("write config");
    let config = feedwire::config::load(&path).expect("valid config");
    let store = Store::open(&config.database_path()).expect("open store");
    rt.block_on(async {
        let states = store
            .sync_feeds(
                config
                    .feeds
                    .iter()
                    .map(|f| FeedSpec {
                        name: f.name.clone(),
                        url: f.url.to_string(),
                    })
                    .collect(),
            )
            .await
            .expect("sync feeds");
        let now = Timestamp::now();
        for (i, s) in states.iter().enumerate() {
            if i < FEEDS_WITH_ITEMS {
                let feed = i;
                let items = (0..ITEMS_PER_FEED)
                    .map(|n| NewItem {
                        id: ulid::Ulid::new().to_string(),
                        key: format!("guid:{i}:{n}"),
                        url: Some(format!("https://host{i}.example.com/a/{n}")),
                        link: None,
                        guid: None,
                        title: Some(format!("Story {n} of feed {i}")),
                        published_at: Some(now),
                        content_source: Some("article"),
                        emitted: true,
                        not_sent: None,
                        fingerprint: None,
                        new_sinks: vec!["out".into()],
                        duplicate_sinks: Vec::new(),
                        revision: None,
                        update_of: None,
                        updated_sinks: Vec::new(),
                    })
                    .collect();
                store
                    .ingest(IngestBatch {
                        feed_id: s.id,
                        poll: poll(now, false),
                        items,
                        dedup: DedupSettings {
                            near_duplicates: false,
                            window: Duration::ZERO,
                        },
                        render: Box::new(move |n, _, _| body(feed, n)),
                    })
                    .await
                    .expect("ingest");
            } else {
                store
                    .record_poll(s.id, poll(now, i % FAILING_EVERY == 0))
                    .await
                    .expect("record poll");
            }
        }
    });
    let page = StatusPage::new(&config, store.reader()).expect("status page");
    (dir, page)
}

fn bench(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let (_dir, page) = setup(&rt);
    let snapshot = rt.block_on(page.snapshot()).expect("snapshot");
    assert_eq!(snapshot.feeds.len(), FEEDS);
    let first = Params::default();
    // The slowest ordinary view: every feed sorted by a computed key, a filter, page 50.
    let sorted = Params::parse("sort=-rate&tag=t3&page=10");

    let mut group = c.benchmark_group("status page, 10,000 feeds");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("snapshot (read-only connection)", |b| {
        b.iter(|| rt.block_on(page.snapshot()).expect("snapshot"))
    });
    group.bench_function("render first page", |b| {
        b.iter(|| {
            page.render(&snapshot, &first, chrono::Utc::now())
                .expect("render")
        })
    });
    group.bench_function("render sorted, filtered page", |b| {
        b.iter(|| {
            page.render(&snapshot, &sorted, chrono::Utc::now())
                .expect("render")
        })
    });
    group.bench_function("snapshot + render (one view)", |b| {
        b.iter(|| {
            let s = rt.block_on(page.snapshot()).expect("snapshot");
            page.render(&s, &first, chrono::Utc::now()).expect("render")
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
