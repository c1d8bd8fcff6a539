//! Load test: a farm of feeds on 127.0.0.1, the real daemon polling it, and the figures.
//!
//! ```sh
//! cargo build --release
//! cargo run --release --example loadtest -- --feeds 10000 --duration 5m
//! ```
//!
//! Phases, in order:
//! 1. the bare client: the same conditional requests (all 304) from a plain reqwest loop in a
//!    child process, at full speed and paced like the daemon, for its CPU per request;
//! 2. the first cycle: every feed answers 200 with its first items (backfill), every item logged;
//! 3. one interval of pure 304s: the daemon's CPU per 10,000 unchanged polls;
//! 4. change cycles: a share of the feeds gains 1-3 items each cycle; appearance → log latency;
//! 5. a burst: the next polled feeds gain many items at once, for the ingest rate;
//! 6. steady state until `--duration`: change cycles, RSS sampled throughout.
//!
//! Options for the cost of routing (issue: rules and templates): `--rules 20` adds twenty
//! regex and word rules that match nothing the farm serves, `--webhook` a webhook sink
//! posting to the farm beside the log sink, `--template` gives it a body template; compare
//! the burst of `--webhook` with that of `--webhook --template --rules 20`. `--callgrind
//! FILE` runs the daemon under callgrind and profiles just the 304 cycle.
//!
//! All traffic stays on loopback. The daemon runs with its state in a temp dir, which is
//! removed at the end; it is stopped with SIGTERM (then killed if it does not exit).

use std::collections::HashMap;
use std::io::{BufRead, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use clap::Parser;

#[path = "support/mod.rs"]
mod support;
use support::{cpu_ticks, daemon_binary};

/// Items each feed holds at the start (all new at the first poll).
const INITIAL_ITEMS: u32 = 2;
/// Items a feed document keeps, newest last (more right after a burst).
const FEED_WINDOW: usize = 10;
/// How often RSS and CPU are sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// How often the log file is read for new lines.
const TAIL_EVERY: Duration = Duration::from_millis(10);
/// How long the daemon gets to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(20);
/// How often the daemon's metrics are read during the burst.
const METRICS_EVERY: Duration = Duration::from_millis(100);
/// How long the bare client's paced run lasts.
const PACED_SPAN: Duration = Duration::from_secs(20);

#[derive(Parser, Debug, Clone)]
#[command(about = "Load test: a local feed farm, the real daemon, and the figures")]
struct Args {
    /// Feeds served by the farm and polled by the daemon.
    #[arg(long, default_value_t = 10_000)]
    feeds: usize,
    /// Change cycles (a share of the feeds gains items) before the burst.
    #[arg(long, default_value_t = 3)]
    cycles: usize,
    /// Total time of the daemon run; after the measured phases, steady-state change cycles
    /// fill it. Default: just the phases.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Fixed poll interval of every feed. Default: 6 ms per feed, at least 10s (60s for 10,000).
    #[arg(long, value_parser = humantime::parse_duration)]
    interval: Option<Duration>,
    /// Share of the feeds that gains new items each change cycle.
    #[arg(long, default_value_t = 0.01)]
    change_share: f64,
    /// Share of the feeds with `fetch_article = true` (pages served by the farm).
    #[arg(long, default_value_t = 0.01)]
    article_share: f64,
    /// Items handed out in the burst (0 = no burst).
    #[arg(long, default_value_t = 10_000)]
    burst: usize,
    /// New items per feed in the burst.
    #[arg(long, default_value_t = 50)]
    burst_per_feed: usize,
    /// Requests in flight: the daemon's max_connections and per_host_connections, and the
    /// bare client's concurrency.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// `[[rules]]` added to the config: regexes over the feed fields and the content that
    /// match none of the farm's items, so every item is still stored and sent.
    #[arg(long, default_value_t = 0)]
    rules: usize,
    /// A webhook sink beside the log sink, posting every item to the farm (`/hook`).
    #[arg(long)]
    webhook: bool,
    /// The webhook sink renders a body template (implies `--webhook`).
    #[arg(long)]
    template: bool,
    /// Runs the daemon under `valgrind --tool=callgrind`, its counts zeroed when the 304
    /// cycle starts and dumped when it ends (`FILE.1`): that cycle's instruction counts,
    /// which a loaded machine does not change. Use few feeds (callgrind is ~50x slower).
    #[arg(long)]
    callgrind: Option<PathBuf>,
    /// The daemon binary to run (default: `feedwire` next to this program's directory), to
    /// compare two builds on the same machine.
    #[arg(long)]
    daemon: Option<PathBuf>,
}

impl Args {
    fn webhook(&self) -> bool {
        self.webhook || self.template
    }

    fn interval(&self) -> Duration {
        self.interval.unwrap_or_else(|| {
            Duration::from_millis((self.feeds as u64 * 6).max(10_000)).max(Duration::from_secs(10))
        })
    }
}

fn main() {
    // The bare client runs in a child process, so its CPU is not mixed with the farm's.
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("bare-client") {
        bare_client(&argv[2..]);
        return;
    }
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = runtime.block_on(run(args)) {
        eprintln!("loadtest: {e}");
        std::process::exit(1);
    }
}

// ---- text ------------------------------------------------------------------------------------

/// splitmix64: deterministic pseudo-random numbers without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// `words` made-up words, different for each seed, so no two items look alike to dedup.
fn words(seed: u64, words: usize) -> String {
    const C: &[u8] = b"bcdfghklmnprstvz";
    const V: &[u8] = b"aeiou";
    let mut rng = Rng(seed);
    let mut out = String::with_capacity(words * 8);
    for w in 0..words {
        if w > 0 {
            out.push(if rng.below(12) == 0 { '.' } else { ' ' });
            if out.ends_with('.') {
                out.push(' ');
            }
        }
        for _ in 0..(2 + rng.below(2)) {
            out.push(C[rng.below(C.len() as u64) as usize] as char);
            out.push(V[rng.below(V.len() as u64) as usize] as char);
        }
    }
    out
}

fn seed(feed: usize, n: u32) -> u64 {
    ((feed as u64) << 32) | n as u64
}

// ---- the farm --------------------------------------------------------------------------------

struct FarmItem {
    n: u32,
    guid: String,
    published: chrono::DateTime<chrono::Utc>,
}

struct FeedDoc {
    items: Vec<FarmItem>,
    next_n: u32,
    version: u32,
    etag: String,
    body: Bytes,
    article: bool,
    /// Guids in the document not yet served in a 200.
    unserved: Vec<String>,
    served_once: bool,
}

/// When an item appeared in the farm and when a 200 first carried it.
struct Track {
    appeared: Instant,
    served: Option<Instant>,
    burst: bool,
}

struct FarmState {
    base: String,
    feeds: Vec<FeedDoc>,
    tracks: HashMap<String, Track>,
    /// Burst items still to hand out to the next feeds polled.
    burst_left: usize,
    burst_per_feed: usize,
    feeds_served: usize,
    rng: Rng,
}

#[derive(Default)]
struct Counters {
    ok: AtomicU64,
    not_modified: AtomicU64,
    articles: AtomicU64,
    other: AtomicU64,
    /// Events posted to the farm's `/hook` by the webhook sink.
    hooks: AtomicU64,
}

impl Counters {
    fn polls(&self) -> u64 {
        self.ok.load(Ordering::Relaxed) + self.not_modified.load(Ordering::Relaxed)
    }
}

#[derive(Clone)]
struct Farm {
    state: Arc<Mutex<FarmState>>,
    counters: Arc<Counters>,
    /// When the last event reached `/hook`.
    last_hook: Arc<Mutex<Option<Instant>>>,
}

impl FeedDoc {
    fn add_items(&mut self, feed: usize, count: u32) -> Vec<String> {
        let published = chrono::Utc::now();
        let mut added = Vec::new();
        for _ in 0..count {
            let n = self.next_n;
            self.next_n += 1;
            let guid = format!("lt-{feed}-{n}");
            self.items.push(FarmItem {
                n,
                guid: guid.clone(),
                published,
            });
            self.unserved.push(guid.clone());
            added.push(guid);
        }
        // Items not served yet stay in the document: a burst on a feed whose change the
        // daemon has not polled yet must not push that change out unseen.
        let keep = FEED_WINDOW.max(self.unserved.len());
        if self.items.len() > keep {
            self.items.drain(..self.items.len() - keep);
        }
        added
    }

    fn render(&mut self, feed: usize, base: &str) {
        self.version += 1;
        self.etag = format!("\"f{feed}-v{}\"", self.version);
        let mut s = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rss version=\"2.0\"><channel><title>Feed {feed}</title><link>{base}/</link><description>load test feed {feed}</description>\n"
        );
        for it in &self.items {
            let summary = words(seed(feed, it.n) ^ 0x5555, 20 + (it.n as usize * 7) % 50);
            s.push_str(&format!(
                "<item><guid isPermaLink=\"false\">{}</guid><title>Story {} of feed {feed}</title><link>{base}/a/{feed}/{}</link><pubDate>{}</pubDate><description>{summary}</description></item>\n",
                it.guid,
                it.n,
                it.n,
                it.published.to_rfc2822()
            ));
        }
        s.push_str("</channel></rss>\n");
        self.body = Bytes::from(s);
    }
}

impl Farm {
    fn new(feeds: usize, article_every: usize, burst_per_feed: usize) -> Farm {
        let now = Instant::now();
        let mut docs = Vec::with_capacity(feeds);
        for i in 0..feeds {
            docs.push(FeedDoc {
                items: Vec::new(),
                next_n: 0,
                version: 0,
                etag: String::new(),
                body: Bytes::new(),
                article: article_every > 0 && i % article_every == article_every / 2,
                unserved: Vec::new(),
                served_once: false,
            });
        }
        let mut tracks = HashMap::new();
        for (i, d) in docs.iter_mut().enumerate() {
            for g in d.add_items(i, INITIAL_ITEMS) {
                tracks.insert(
                    g,
                    Track {
                        appeared: now,
                        served: None,
                        burst: false,
                    },
                );
            }
        }
        Farm {
            state: Arc::new(Mutex::new(FarmState {
                base: String::new(),
                feeds: docs,
                tracks,
                burst_left: 0,
                burst_per_feed,
                feeds_served: 0,
                rng: Rng(0x1234_5678),
            })),
            counters: Arc::new(Counters::default()),
            last_hook: Arc::new(Mutex::new(None)),
        }
    }

    /// Renders every document for the farm's address; the first ETag of feed i is `"fi-v1"`.
    fn set_base(&self, base: &str) {
        let mut st = self.state.lock().expect("farm lock");
        st.base = base.to_string();
        let base = st.base.clone();
        for (i, d) in st.feeds.iter_mut().enumerate() {
            d.render(i, &base);
        }
    }

    /// A change cycle: `count` random feeds (a tenth of them with articles, when there are
    /// any) gain 1-3 items each. Returns the items added.
    fn change(&self, count: usize) -> usize {
        let mut st = self.state.lock().expect("farm lock");
        let now = Instant::now();
        let n = st.feeds.len();
        let article_feeds: Vec<usize> = (0..n).filter(|&i| st.feeds[i].article).collect();
        let mut chosen = std::collections::BTreeSet::new();
        let from_articles = if article_feeds.is_empty() {
            0
        } else {
            (count / 10).max(1).min(article_feeds.len())
        };
        while chosen.len() < from_articles {
            let k = st.rng.below(article_feeds.len() as u64) as usize;
            chosen.insert(article_feeds[k]);
        }
        while chosen.len() < count.min(n) {
            let k = st.rng.below(n as u64) as usize;
            chosen.insert(k);
        }
        let mut added = 0;
        let base = st.base.clone();
        for i in chosen {
            let c = 1 + st.rng.below(3) as u32;
            let guids = st.feeds[i].add_items(i, c);
            st.feeds[i].render(i, &base);
            added += guids.len();
            for g in guids {
                st.tracks.insert(
                    g,
                    Track {
                        appeared: now,
                        served: None,
                        burst: false,
                    },
                );
            }
        }
        added
    }

    fn start_burst(&self, items: usize) {
        self.state.lock().expect("farm lock").burst_left = items;
    }

    fn feeds_served(&self) -> usize {
        self.state.lock().expect("farm lock").feeds_served
    }
}

async fn farm_handler(State(farm): State<Farm>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    if path == "/hook" {
        // The body is read so that the connection is reused, as a real receiver would.
        let _ = axum::body::to_bytes(req.into_body(), usize::MAX).await;
        farm.counters.hooks.fetch_add(1, Ordering::Relaxed);
        *farm.last_hook.lock().expect("hook lock") = Some(Instant::now());
        return StatusCode::NO_CONTENT.into_response();
    }
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["f", id] => {
            let Ok(i) = id.parse::<usize>() else {
                return not_found(&farm);
            };
            let inm = req
                .headers()
                .get(header::IF_NONE_MATCH)
                .and_then(|v| v.to_str().ok())
                .map(String::from);
            serve_feed(&farm, i, inm.as_deref())
        }
        ["a", feed, n] => {
            let (Ok(feed), Ok(n)) = (feed.parse::<usize>(), n.parse::<u32>()) else {
                return not_found(&farm);
            };
            farm.counters.articles.fetch_add(1, Ordering::Relaxed);
            let body = words(seed(feed, n) ^ 0xaaaa, 320);
            let paras: Vec<String> = body
                .split(". ")
                .collect::<Vec<_>>()
                .chunks(6)
                .map(|c| format!("<p>{}.</p>", c.join(". ")))
                .collect();
            let html = format!(
                "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Story {n} of feed {feed}</title></head><body><nav><a href=\"/\">Home</a> <a href=\"/news\">News</a> <a href=\"/about\">About</a></nav><article><h1>Story {n} of feed {feed}</h1><p class=\"byline\">By A. Writer</p>{}</article><footer>Copyright the farm. <a href=\"/privacy\">Privacy</a></footer></body></html>",
                paras.join("")
            );
            ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
        }
        _ => not_found(&farm),
    }
}

fn not_found(farm: &Farm) -> Response {
    farm.counters.other.fetch_add(1, Ordering::Relaxed);
    (StatusCode::NOT_FOUND, "no such feed").into_response()
}

fn serve_feed(farm: &Farm, i: usize, inm: Option<&str>) -> Response {
    let mut st = farm.state.lock().expect("farm lock");
    if i >= st.feeds.len() {
        drop(st);
        return not_found(farm);
    }
    let now = Instant::now();
    // The burst: the next feeds polled (not those with articles, to measure the pipeline
    // rather than page fetches) gain many items at once.
    if st.burst_left > 0 && !st.feeds[i].article {
        let count = st.burst_left.min(st.burst_per_feed);
        st.burst_left -= count;
        let base = st.base.clone();
        let guids = st.feeds[i].add_items(i, count as u32);
        st.feeds[i].render(i, &base);
        for g in guids {
            st.tracks.insert(
                g,
                Track {
                    appeared: now,
                    served: None,
                    burst: true,
                },
            );
        }
    }
    let doc = &st.feeds[i];
    if inm == Some(doc.etag.as_str()) {
        let etag = doc.etag.clone();
        drop(st);
        farm.counters.not_modified.fetch_add(1, Ordering::Relaxed);
        return Response::builder()
            .status(304)
            .header(header::ETAG, etag)
            .body(Body::empty())
            .expect("response");
    }
    let (etag, body) = (doc.etag.clone(), doc.body.clone());
    if !st.feeds[i].served_once {
        st.feeds[i].served_once = true;
        st.feeds_served += 1;
    }
    let unserved = std::mem::take(&mut st.feeds[i].unserved);
    for g in unserved {
        if let Some(t) = st.tracks.get_mut(&g)
            && t.served.is_none()
        {
            t.served = Some(now);
        }
    }
    drop(st);
    farm.counters.ok.fetch_add(1, Ordering::Relaxed);
    Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "application/rss+xml")
        .header(header::ETAG, etag)
        .body(Body::from(body))
        .expect("response")
}

// ---- the daemon ------------------------------------------------------------------------------

/// The running daemon; stopped with SIGTERM (then SIGKILL) when dropped.
struct Daemon {
    child: Child,
}

impl Daemon {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then waits; kills after [`STOP_GRACE`]. Returns how long the exit took.
    fn stop(&mut self) -> Option<Duration> {
        if let Ok(Some(_)) = self.child.try_wait() {
            return None;
        }
        let start = Instant::now();
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        while start.elapsed() < STOP_GRACE {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("loadtest: the daemon did not exit after SIGTERM; killing it");
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

fn clock_ticks() -> (f64, bool) {
    let out = Command::new("getconf").arg("CLK_TCK").output();
    match out
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
    {
        Some(t) if t > 0.0 => (t, true),
        _ => (100.0, false),
    }
}

/// Set for a bare client under callgrind: it zeroes its counts after warming its pool and
/// dumps them when its requests are done.
const BARE_CALLGRIND: &str = "LOADTEST_BARE_CALLGRIND";

/// The instructions a callgrind dump counted (its `totals:` or `summary:` line).
fn callgrind_total(file: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines()
        .find_map(|l| {
            l.strip_prefix("totals:")
                .or_else(|| l.strip_prefix("summary:"))
        })?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Tells the daemon's callgrind to do something (`--zero`, `--dump=…`); waits for it.
fn callgrind_control(pid: u32, what: &str) {
    let done = Command::new("callgrind_control")
        .arg(what)
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .status();
    if !done.is_ok_and(|s| s.success()) {
        eprintln!("loadtest: callgrind_control {what} failed");
    }
}

/// A `Vm…` line of /proc/<pid>/status, in KiB.
fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn write_config(
    dir: &Path,
    args: &Args,
    base: &str,
    article_every: usize,
    listen: &str,
) -> PathBuf {
    let interval = humantime::format_duration(args.interval()).to_string();
    let mut s = format!(
        "[daemon]\nstate_dir = {:?}\nlisten = {listen:?}\nmax_connections = {c}\nper_host_connections = {c}\nlog_format = \"text\"\nshutdown_grace = \"10s\"\n\n\
         [poll]\ninterval = {interval:?}\n\n\
         [article]\nfetch = false\nallowed_networks = [\"127.0.0.0/8\"]\n\n\
         [sinks.out]\ntype = \"log\"\npath = {:?}\n\n",
        dir.join("state").display().to_string(),
        dir.join("out.jsonl").display().to_string(),
        c = args.concurrency,
    );
    if args.webhook() {
        s.push_str(&format!(
            "[sinks.hook]\ntype = \"webhook\"\nurl = \"{base}/hook\"\nconcurrency = {HOOK_CONCURRENCY}\n"
        ));
        if args.template {
            s.push_str(&format!("template = '{HOOK_TEMPLATE}'\n"));
        }
        s.push('\n');
    }
    for r in 0..args.rules {
        s.push_str(&rule(r));
    }
    for i in 0..args.feeds {
        s.push_str(&format!(
            "[[feeds]]\nurl = \"{base}/f/{i}\"\nname = \"f{i}\"\ninterval = {interval:?}\n"
        ));
        if article_every > 0 && i % article_every == article_every / 2 {
            s.push_str("fetch_article = true\n");
        }
    }
    let path = dir.join("feedwire.toml");
    std::fs::write(&path, s).expect("write the daemon's config");
    path
}

/// The webhook sink's body template: a chat-style message, as a user would write one.
const HOOK_TEMPLATE: &str = r#"{"text": {{ ("*" ~ item.title ~ "*\n" ~ item.summary ~ "\n" ~ item.url) | tojson }}, "feed": {{ feed.name | tojson }}{% if item.author %}, "by": {{ item.author | tojson }}{% endif %}}"#;

/// Events the webhook sink posts at once.
const HOOK_CONCURRENCY: usize = 16;

/// Topics of the rules: real words, which the farm's made-up words never contain.
const RULE_TOPICS: [&str; 10] = [
    "football",
    "cricket",
    "tennis",
    "golf",
    "rugby",
    "formula one",
    "boxing",
    "cycling",
    "baseball",
    "hockey",
];

/// Rule `i` of `--rules`: words or a regex over one field (title, summary, categories, URL,
/// or the content, which is decided after the article), dropping what matches. Nothing the
/// farm serves matches, so every rule is evaluated in full for every item.
fn rule(i: usize) -> String {
    let topic = RULE_TOPICS[i % RULE_TOPICS.len()];
    let condition = match i % 5 {
        0 => format!("words = {{ title = [{topic:?}, \"sport\"] }}"),
        1 => format!("match = {{ summary = '\\b{topic}\\w*\\b' }}"),
        2 => format!("match = {{ categories = '^(?:{topic}|sport)$' }}"),
        3 => format!("match = {{ url = '/{topic}/\\d+' }}"),
        _ => format!("match = {{ content = '(?:{topic}).*results' }}"),
    };
    format!("[[rules]]\nname = \"rule-{i}\"\n{condition}\naction = \"drop\"\n\n")
}

// ---- the log sink ----------------------------------------------------------------------------

#[derive(Default)]
struct Logged {
    at: HashMap<String, Instant>,
    lines: usize,
    unparsed: usize,
}

/// Reads the log sink's file as it grows; records when each guid's line appeared.
fn tail(path: PathBuf, logged: Arc<Mutex<Logged>>, stop: Arc<AtomicBool>) {
    let mut file = None;
    let mut pending = Vec::new();
    let mut offset = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if file.is_none() {
            file = std::fs::File::open(&path).ok();
        }
        if let Some(f) = file.as_mut() {
            let _ = f.seek(SeekFrom::Start(offset));
            let mut buf = Vec::new();
            if let Ok(n) = f.read_to_end(&mut buf) {
                offset += n as u64;
                pending.extend_from_slice(&buf);
            }
            let now = Instant::now();
            if let Some(end) = pending.iter().rposition(|&b| b == b'\n') {
                let complete: Vec<u8> = pending.drain(..=end).collect();
                let mut lg = logged.lock().expect("logged lock");
                for line in complete.as_slice().lines() {
                    let Ok(line) = line else { continue };
                    if line.trim().is_empty() {
                        continue;
                    }
                    lg.lines += 1;
                    let guid = serde_json::from_str::<serde_json::Value>(&line)
                        .ok()
                        .and_then(|v| v["item"]["guid"].as_str().map(String::from));
                    match guid {
                        Some(g) => {
                            lg.at.entry(g).or_insert(now);
                        }
                        None => lg.unparsed += 1,
                    }
                }
            }
        }
        std::thread::sleep(TAIL_EVERY);
    }
}

// ---- sampling --------------------------------------------------------------------------------

#[derive(Clone, Copy)]
struct Sample {
    t: Duration,
    rss_kib: u64,
}

// ---- the bare client -------------------------------------------------------------------------

/// `bare-client BASE FEEDS CONCURRENCY RATE COUNT`: COUNT conditional GETs of `BASE/f/i`
/// with the farm's first ETag (all 304), CONCURRENCY in flight, at RATE per second (0 = as
/// fast as possible). Prints `ticks requests not_modified seconds` of just that loop.
fn bare_client(argv: &[String]) {
    let base = argv[0].clone();
    let feeds: usize = argv[1].parse().expect("feeds");
    let concurrency: usize = argv[2].parse().expect("concurrency");
    let rate: f64 = argv[3].parse().expect("rate");
    let count: usize = argv[4].parse().expect("count");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .user_agent("feedwire-loadtest/bare")
            .redirect(reqwest::redirect::Policy::limited(5))
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        let get = move |client: reqwest::Client, i: usize, base: String| async move {
            let url = format!("{base}/f/{}", i % feeds);
            let etag = format!("\"f{}-v1\"", i % feeds);
            match client
                .get(&url)
                .header(reqwest::header::IF_NONE_MATCH, etag)
                .send()
                .await
            {
                Ok(r) => r.status().as_u16() == 304,
                Err(_) => false,
            }
        };
        // Warm the connection pool, as the daemon's is in the middle of a run.
        let mut warm = tokio::task::JoinSet::new();
        for i in 0..concurrency {
            warm.spawn(get(client.clone(), i, base.clone()));
        }
        while warm.join_next().await.is_some() {}

        let self_pid = std::process::id().to_string();
        let under_callgrind = std::env::var_os(BARE_CALLGRIND).is_some();
        if under_callgrind {
            callgrind_control(std::process::id(), "--zero");
        }
        let t0 = cpu_ticks(&self_pid).unwrap_or(0);
        let start = Instant::now();
        let ok = Arc::new(AtomicUsize::new(0));
        if rate <= 0.0 {
            let next = Arc::new(AtomicUsize::new(0));
            let mut workers = tokio::task::JoinSet::new();
            for _ in 0..concurrency {
                let (client, next, ok, base) =
                    (client.clone(), next.clone(), ok.clone(), base.clone());
                workers.spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= count {
                            break;
                        }
                        if get(client.clone(), i, base.clone()).await {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
            while workers.join_next().await.is_some() {}
        } else {
            let slots = Arc::new(tokio::sync::Semaphore::new(concurrency));
            let mut tasks = tokio::task::JoinSet::new();
            for i in 0..count {
                let at = start + Duration::from_secs_f64(i as f64 / rate);
                tokio::time::sleep_until(at.into()).await;
                let permit = slots.clone().acquire_owned().await.expect("semaphore");
                let (client, ok, base) = (client.clone(), ok.clone(), base.clone());
                tasks.spawn(async move {
                    if get(client, i, base).await {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    drop(permit);
                });
                while tasks.try_join_next().is_some() {}
            }
            while tasks.join_next().await.is_some() {}
        }
        let secs = start.elapsed().as_secs_f64();
        let t1 = cpu_ticks(&self_pid).unwrap_or(0);
        if under_callgrind {
            callgrind_control(std::process::id(), "--dump=bare");
        }
        println!(
            "{} {} {} {secs}",
            t1 - t0,
            count,
            ok.load(Ordering::Relaxed)
        );
    });
}

struct BareResult {
    ticks: u64,
    requests: u64,
    not_modified: u64,
    seconds: f64,
}

fn run_bare(
    base: &str,
    feeds: usize,
    concurrency: usize,
    rate: f64,
    count: usize,
    callgrind: Option<&Path>,
) -> Result<BareResult, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut command = match callgrind {
        Some(out) => {
            let mut c = Command::new("valgrind");
            c.arg("--tool=callgrind")
                .arg(format!("--callgrind-out-file={}", out.display()))
                .env(BARE_CALLGRIND, "1")
                .arg(exe);
            c
        }
        None => Command::new(exe),
    };
    let out = command
        .args([
            "bare-client",
            base,
            &feeds.to_string(),
            &concurrency.to_string(),
            &rate.to_string(),
            &count.to_string(),
        ])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot start the bare client: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let f: Vec<&str> = text.split_whitespace().collect();
    if !out.status.success() || f.len() < 4 {
        return Err(format!("the bare client failed: {text}"));
    }
    Ok(BareResult {
        ticks: f[0].parse().map_err(|_| "bad bare output")?,
        requests: f[1].parse().map_err(|_| "bad bare output")?,
        not_modified: f[2].parse().map_err(|_| "bad bare output")?,
        seconds: f[3].parse().map_err(|_| "bad bare output")?,
    })
}

// ---- the run ---------------------------------------------------------------------------------

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

struct Latencies {
    appear_to_log: Vec<f64>,
    serve_to_log: Vec<f64>,
    missing: usize,
    first_served: Option<Instant>,
    last_logged: Option<Instant>,
    count: usize,
}

fn latencies(farm: &Farm, logged: &Logged, burst: bool, since: Instant) -> Latencies {
    let st = farm.state.lock().expect("farm lock");
    let mut l = Latencies {
        appear_to_log: Vec::new(),
        serve_to_log: Vec::new(),
        missing: 0,
        first_served: None,
        last_logged: None,
        count: 0,
    };
    for (g, t) in &st.tracks {
        if t.burst != burst || t.appeared < since {
            continue;
        }
        l.count += 1;
        match logged.at.get(g) {
            Some(&at) => {
                l.appear_to_log
                    .push(at.saturating_duration_since(t.appeared).as_secs_f64());
                if let Some(s) = t.served {
                    l.serve_to_log
                        .push(at.saturating_duration_since(s).as_secs_f64());
                    l.first_served = Some(l.first_served.map_or(s, |f: Instant| f.min(s)));
                }
                l.last_logged = Some(l.last_logged.map_or(at, |x: Instant| x.max(at)));
            }
            None => l.missing += 1,
        }
    }
    l.appear_to_log.sort_by(f64::total_cmp);
    l.serve_to_log.sort_by(f64::total_cmp);
    l
}

/// `feedwire_items_total{kind="new"}` from the daemon's metrics: items stored as new.
async fn items_stored(client: &reqwest::Client, url: &str) -> Option<u64> {
    let text = client.get(url).send().await.ok()?.text().await.ok()?;
    text.lines()
        .find(|l| l.starts_with("feedwire_items_total{") && l.contains("kind=\"new\""))?
        .split_whitespace()
        .last()?
        .parse::<f64>()
        .ok()
        .map(|v| v as u64)
}

/// Waits until `f` holds or `limit` passes; returns whether it held.
async fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    f()
}

fn file_size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

async fn run(args: Args) -> Result<(), String> {
    let daemon_bin = match &args.daemon {
        Some(path) => path.clone(),
        None => daemon_binary()?,
    };
    let (tck, tck_known) = clock_ticks();
    let interval = args.interval();
    let n = args.feeds;
    let article_every = if args.article_share > 0.0 {
        (1.0 / args.article_share).round().max(1.0) as usize
    } else {
        0
    };
    println!(
        "loadtest: {n} feeds, interval {}, concurrency {}, {} change cycles, burst {} items ({} per feed), {} rules, {}",
        humantime::format_duration(interval),
        args.concurrency,
        args.cycles,
        args.burst,
        args.burst_per_feed,
        args.rules,
        match (args.webhook(), args.template) {
            (false, _) => "log sink only",
            (true, false) => "log and webhook sinks",
            (true, true) => "log and templated webhook sinks",
        }
    );

    // The farm, on this process's runtime.
    let farm = Farm::new(n, article_every, args.burst_per_feed);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot bind the farm: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let base = format!("http://{addr}");
    farm.set_base(&base);
    let app = axum::Router::new()
        .fallback(farm_handler)
        .with_state(farm.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    println!("farm: {base}");

    // 1. The bare client, before the daemon starts, so neither disturbs the other.
    println!(
        "bare client: {n} conditional requests, {} in flight, full speed",
        args.concurrency
    );
    let bare_fast = tokio::task::spawn_blocking({
        let base = base.clone();
        let c = args.concurrency;
        move || run_bare(&base, n, c, 0.0, n, None)
    })
    .await
    .map_err(|e| e.to_string())??;
    // Under callgrind too, when the daemon will be: instructions per request, which a loaded
    // machine does not change.
    let bare_counted = match &args.callgrind {
        Some(file) => {
            let out = PathBuf::from(format!("{}.bare", file.display()));
            println!("bare client: {n} requests under callgrind, full speed");
            let bare = tokio::task::spawn_blocking({
                let (base, c, out) = (base.clone(), args.concurrency, out.clone());
                move || run_bare(&base, n, c, 0.0, n, Some(&out))
            })
            .await
            .map_err(|e| e.to_string())??;
            let dump = PathBuf::from(format!("{}.1", out.display()));
            callgrind_total(&dump).map(|ir| (ir, bare.requests))
        }
        None => None,
    };
    let rate = n as f64 / interval.as_secs_f64();
    let paced_count = ((rate * PACED_SPAN.as_secs_f64()) as usize).clamp(1, n);
    println!("bare client: {paced_count} requests paced at {rate:.0}/s, like the daemon");
    let bare_paced = tokio::task::spawn_blocking({
        let base = base.clone();
        let c = args.concurrency;
        move || run_bare(&base, n, c, rate, paced_count, None)
    })
    .await
    .map_err(|e| e.to_string())??;

    // 2. The daemon.
    let dir = tempfile::Builder::new()
        .prefix("feedwire-load")
        .tempdir()
        .map_err(|e| format!("cannot create a temp dir: {e}"))?;
    // The metrics endpoint tells when the burst's items are stored, apart from logged.
    let listen = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("cannot find a free port: {e}"))?
        .to_string();
    let config = write_config(dir.path(), &args, &base, article_every, &listen);
    let stderr = std::fs::File::create(dir.path().join("daemon.err")).map_err(|e| e.to_string())?;
    let polls_before_daemon = farm.counters.polls();
    let mut command = match &args.callgrind {
        Some(out) => {
            let mut c = Command::new("valgrind");
            c.arg("--tool=callgrind")
                .arg(format!("--callgrind-out-file={}", out.display()))
                .arg(&daemon_bin);
            c
        }
        None => Command::new(&daemon_bin),
    };
    let child = command
        .arg("--config")
        .arg(&config)
        .arg("run")
        .env_remove("FEEDWIRE_CONFIG")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", daemon_bin.display()))?;
    let mut daemon = Daemon { child };
    let pid = daemon.pid();
    let pid_s = pid.to_string();
    let started = Instant::now();
    println!("daemon: pid {pid}, state in a temp dir");

    let logged = Arc::new(Mutex::new(Logged::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let tailer = std::thread::spawn({
        let (path, logged, stop) = (dir.path().join("out.jsonl"), logged.clone(), stop.clone());
        move || tail(path, logged, stop)
    });
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let sampler = tokio::spawn({
        let samples = samples.clone();
        let stop = stop.clone();
        async move {
            while !stop.load(Ordering::Relaxed) {
                if let Some(rss) = status_kib(pid, "VmRSS:") {
                    samples.lock().expect("samples").push(Sample {
                        t: started.elapsed(),
                        rss_kib: rss,
                    });
                }
                tokio::time::sleep(SAMPLE_EVERY).await;
            }
        }
    });
    let cpu = || cpu_ticks(&pid_s).unwrap_or(0);
    let alive = |d: &mut Daemon| matches!(d.child.try_wait(), Ok(None));
    let lines = || logged.lock().expect("logged").lines;

    // 3. First cycle: every feed answers 200 once; every initial item is logged.
    let initial_items = n * INITIAL_ITEMS as usize;
    let limit = interval * 3 + Duration::from_secs(60);
    let first_ok = wait_for(limit, || {
        farm.feeds_served() >= n && lines() >= initial_items
    })
    .await;
    if !alive(&mut daemon) {
        return Err(format!(
            "the daemon exited; its log: {}",
            tail_text(&dir.path().join("daemon.err"))
        ));
    }
    let first_cycle = started.elapsed();
    let first_cpu = cpu();
    println!(
        "first cycle: {} feeds served, {} lines logged in {:.1}s{}",
        farm.feeds_served(),
        lines(),
        first_cycle.as_secs_f64(),
        if first_ok { "" } else { " (timed out)" }
    );

    // 4. One interval of nothing new: every poll is a 304.
    if args.callgrind.is_some() {
        // Counted from here: what start-up and the first cycle cost is dropped.
        callgrind_control(pid, "--zero");
    }
    let (c0, ok0, nm0, t0) = (
        cpu(),
        farm.counters.ok.load(Ordering::Relaxed),
        farm.counters.not_modified.load(Ordering::Relaxed),
        Instant::now(),
    );
    tokio::time::sleep(interval).await;
    let (c1, ok1, nm1, t1) = (
        cpu(),
        farm.counters.ok.load(Ordering::Relaxed),
        farm.counters.not_modified.load(Ordering::Relaxed),
        Instant::now(),
    );
    if args.callgrind.is_some() {
        callgrind_control(pid, "--dump=304-cycle");
    }
    let quiet_polls = (ok1 - ok0) + (nm1 - nm0);
    let quiet_ticks = c1 - c0;
    let quiet_secs = (t1 - t0).as_secs_f64();
    println!(
        "304 cycle: {} polls ({} answered 200) in {quiet_secs:.1}s, {quiet_ticks} CPU ticks",
        quiet_polls,
        ok1 - ok0
    );

    // 5. Change cycles.
    let changes_start = Instant::now();
    let (cc0, cp0) = (cpu(), farm.counters.polls());
    let mut changed_items = 0;
    let per_cycle = ((n as f64 * args.change_share).round() as usize).max(1);
    for c in 0..args.cycles {
        changed_items += farm.change(per_cycle);
        tokio::time::sleep(interval).await;
        println!(
            "change cycle {}: {changed_items} items so far, {} lines logged",
            c + 1,
            lines()
        );
    }
    let cycle_items = changed_items;
    let (cc1, cp1) = (cpu(), farm.counters.polls());
    let change_polls = cp1 - cp0;
    let change_ticks = cc1 - cc0;

    // 6. The burst.
    let mut burst_report = None;
    let mut stored_at: Option<Instant> = None;
    if args.burst > 0 {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::new();
        let metrics_url = format!("http://{listen}/metrics");
        let before = lines();
        let hooks_before = farm.counters.hooks.load(Ordering::Relaxed);
        let stored_before = items_stored(&client, &metrics_url).await.unwrap_or(0);
        let (bc0, bt0) = (cpu(), Instant::now());
        farm.start_burst(args.burst);
        let limit = interval * 2 + Duration::from_secs(120);
        let mut done = false;
        while bt0.elapsed() < limit {
            if stored_at.is_none()
                && items_stored(&client, &metrics_url)
                    .await
                    .is_some_and(|n| n >= stored_before + args.burst as u64)
            {
                stored_at = Some(Instant::now());
            }
            let hooked = !args.webhook()
                || farm.counters.hooks.load(Ordering::Relaxed) >= hooks_before + args.burst as u64;
            if lines() >= before + args.burst && stored_at.is_some() && hooked {
                done = true;
                break;
            }
            tokio::time::sleep(METRICS_EVERY).await;
        }
        let (bc1, bt1) = (cpu(), Instant::now());
        println!(
            "burst: {} of {} items logged{}",
            lines() - before,
            args.burst,
            if done { "" } else { " (timed out)" }
        );
        if args.webhook() {
            println!(
                "burst: {} of {} items posted to the webhook",
                farm.counters.hooks.load(Ordering::Relaxed) - hooks_before,
                args.burst
            );
        }
        burst_report = Some((bc1 - bc0, (bt1 - bt0).as_secs_f64()));
    }

    // 7. Steady state until --duration.
    let mut steady_cycles = 0;
    if let Some(total) = args.duration {
        while started.elapsed() + interval <= total && alive(&mut daemon) {
            changed_items += farm.change(per_cycle);
            tokio::time::sleep(interval).await;
            steady_cycles += 1;
            let last = samples.lock().expect("samples").last().copied();
            println!(
                "steady cycle {steady_cycles}: {:.0}s, RSS {:.1} MiB, {} lines logged",
                started.elapsed().as_secs_f64(),
                last.map_or(0.0, |s| mib(s.rss_kib)),
                lines()
            );
        }
    }
    // Let the last changes reach the log (they are polled within one interval).
    let expected = initial_items + changed_items + args.burst;
    wait_for(interval + Duration::from_secs(10), || lines() >= expected).await;

    // 8. The end: sizes, peak memory, stop.
    let run_secs = started.elapsed().as_secs_f64();
    let total_ticks = cpu();
    let total_polls = farm.counters.polls() - polls_before_daemon;
    let hwm = status_kib(pid, "VmHWM:").unwrap_or(0);
    let state = dir.path().join("state");
    let db = file_size(&state.join("feedwire.db"));
    let wal = file_size(&state.join("feedwire.db-wal"));
    let articles = farm.counters.articles.load(Ordering::Relaxed);
    let stop_took = daemon.stop();
    stop.store(true, Ordering::Relaxed);
    let _ = tailer.join();
    let _ = sampler.await;
    let err_text = std::fs::read_to_string(dir.path().join("daemon.err")).unwrap_or_default();
    let warns = err_text.lines().filter(|l| l.contains("WARN")).count();
    let errors = err_text.lines().filter(|l| l.contains("ERROR")).count();

    // ---- the report ----
    let logged = logged.lock().expect("logged");
    let per10k = |ticks: u64, polls: u64| -> f64 {
        if polls == 0 {
            f64::NAN
        } else {
            ticks as f64 / tck / polls as f64 * 10_000.0
        }
    };
    let changes = latencies(&farm, &logged, false, changes_start);
    let burst = latencies(&farm, &logged, true, started);
    let samples = samples.lock().expect("samples").clone();

    println!();
    println!(
        "== feedwire load test: {n} feeds, interval {} ==",
        humantime::format_duration(interval)
    );
    println!(
        "CPU times from /proc/<pid>/stat at {tck} ticks/s{}",
        if tck_known {
            " (getconf CLK_TCK)"
        } else {
            " (assumed; getconf failed)"
        }
    );
    let row = |k: &str, v: String| println!("  {k:<48} {v}");
    row(
        "run time of the daemon",
        format!(
            "{run_secs:.0} s ({} polls, {:.0} polls/s)",
            total_polls,
            total_polls as f64 / run_secs
        ),
    );
    row(
        "first cycle (all 200, backfill)",
        format!(
            "{:.1} s, {initial_items} items, {:.2} CPU s",
            first_cycle.as_secs_f64(),
            first_cpu as f64 / tck
        ),
    );
    row(
        "304 cycle: polls/s",
        format!(
            "{:.0} ({quiet_polls} polls in {quiet_secs:.0} s)",
            quiet_polls as f64 / quiet_secs
        ),
    );
    row(
        "304 cycle: daemon CPU s per 10,000 polls",
        format!("{:.3}", per10k(quiet_ticks, quiet_polls)),
    );
    let bare_fast_10k = per10k(bare_fast.ticks, bare_fast.requests);
    let bare_paced_10k = per10k(bare_paced.ticks, bare_paced.requests);
    row(
        "bare reqwest, full speed: CPU s per 10,000",
        format!(
            "{bare_fast_10k:.3} ({} requests, {} were 304, {:.0}/s)",
            bare_fast.requests,
            bare_fast.not_modified,
            bare_fast.requests as f64 / bare_fast.seconds
        ),
    );
    row(
        "bare reqwest, paced like the daemon",
        format!(
            "{bare_paced_10k:.3} ({} requests, {} were 304, {:.0}/s)",
            bare_paced.requests,
            bare_paced.not_modified,
            bare_paced.requests as f64 / bare_paced.seconds
        ),
    );
    let q = per10k(quiet_ticks, quiet_polls);
    row(
        "304 cycle / bare (target <= 2)",
        format!(
            "{:.1}x full speed, {:.1}x paced",
            q / bare_fast_10k,
            q / bare_paced_10k
        ),
    );
    if let Some(file) = &args.callgrind {
        let daemon = callgrind_total(&PathBuf::from(format!("{}.1", file.display())));
        match (daemon, bare_counted) {
            (Some(d), Some((b, requests))) if quiet_polls > 0 && requests > 0 => {
                let (d, b) = (d as f64 / quiet_polls as f64, b as f64 / requests as f64);
                row(
                    "304 cycle: instructions per poll (callgrind)",
                    format!("{d:.0} daemon, {b:.0} bare full speed: {:.2}x", d / b),
                );
            }
            _ => row(
                "304 cycle: instructions per poll (callgrind)",
                "not counted (a dump is missing)".to_string(),
            ),
        }
    }
    row(
        "change cycles: CPU s per 10,000 polls",
        format!(
            "{:.3} ({change_polls} polls, {cycle_items} new items)",
            per10k(change_ticks, change_polls)
        ),
    );
    row(
        "all of the run: CPU s per 10,000 polls",
        format!(
            "{:.3} ({:.1} CPU s)",
            per10k(total_ticks, total_polls),
            total_ticks as f64 / tck
        ),
    );
    row(
        "appearance -> log line, p50 / p99",
        format!(
            "{:.2} s / {:.2} s ({} items, {} not logged)",
            percentile(&changes.appear_to_log, 0.5),
            percentile(&changes.appear_to_log, 0.99),
            changes.count,
            changes.missing
        ),
    );
    row(
        "served in a 200 -> log line, p50 / p99",
        format!(
            "{:.3} s / {:.3} s",
            percentile(&changes.serve_to_log, 0.5),
            percentile(&changes.serve_to_log, 0.99)
        ),
    );
    if let Some((ticks, _)) = burst_report {
        let span = match (burst.first_served, burst.last_logged) {
            (Some(a), Some(b)) => b.saturating_duration_since(a).as_secs_f64(),
            _ => f64::NAN,
        };
        let logged_n = burst.count - burst.missing;
        row(
            "burst ingest (first served -> last logged)",
            format!(
                "{:.0} items/s ({logged_n} items in {span:.2} s, {:.2} CPU s, {} not logged)",
                logged_n as f64 / span,
                ticks as f64 / tck,
                burst.missing
            ),
        );
        if let (Some(a), Some(b)) = (burst.first_served, stored_at) {
            let span = b.saturating_duration_since(a).as_secs_f64();
            row(
                "burst stored (first served -> all counted)",
                format!(
                    "{:.0} items/s ({} items in {span:.2} s; metrics read every {} ms)",
                    args.burst as f64 / span,
                    args.burst,
                    METRICS_EVERY.as_millis()
                ),
            );
        }
        let last_hook = *farm.last_hook.lock().expect("hook lock");
        if let (true, Some(a), Some(b)) = (args.webhook(), burst.first_served, last_hook) {
            let span = b.saturating_duration_since(a).as_secs_f64();
            row(
                "burst posted (first served -> last webhook)",
                format!(
                    "{:.0} items/s ({} items in {span:.2} s)",
                    args.burst as f64 / span,
                    args.burst
                ),
            );
        }
        row(
            "burst: served -> log line, p50 / p99",
            format!(
                "{:.2} s / {:.2} s",
                percentile(&burst.serve_to_log, 0.5),
                percentile(&burst.serve_to_log, 0.99)
            ),
        );
    }
    row("article pages served", format!("{articles}"));
    row("peak RSS (VmHWM)", format!("{:.1} MiB", mib(hwm)));
    row(
        "SQLite size (db + wal)",
        format!(
            "{:.1} MiB ({:.1} + {:.1})",
            (db + wal) as f64 / 1048576.0,
            db as f64 / 1048576.0,
            wal as f64 / 1048576.0
        ),
    );
    row(
        "log lines (unparsed)",
        format!("{} ({})", logged.lines, logged.unparsed),
    );
    row(
        "daemon stderr",
        format!("{warns} WARN, {errors} ERROR lines"),
    );
    row(
        "exit after SIGTERM",
        stop_took.map_or("killed or already gone".into(), |d| {
            format!("{:.2} s", d.as_secs_f64())
        }),
    );
    // From the end of the first cycle on: start-up and backfill are not the steady state.
    let steady: Vec<Sample> = samples
        .iter()
        .copied()
        .filter(|s| s.t >= first_cycle)
        .collect();
    if let (Some(first), Some(last)) = (steady.first(), samples.last()) {
        let min = steady.iter().map(|s| s.rss_kib).min().unwrap_or(0);
        let max = steady.iter().map(|s| s.rss_kib).max().unwrap_or(0);
        row(
            "RSS after the first cycle: first/min/max/last",
            format!(
                "{:.1} / {:.1} / {:.1} / {:.1} MiB ({} samples)",
                mib(first.rss_kib),
                mib(min),
                mib(max),
                mib(last.rss_kib),
                steady.len()
            ),
        );
        // About twenty points over the run.
        let step = (samples.len() / 20).max(1);
        let points: Vec<String> = samples
            .iter()
            .step_by(step)
            .chain(std::iter::once(last))
            .map(|s| format!("{:.0}s {:.1}", s.t.as_secs_f64(), mib(s.rss_kib)))
            .collect();
        println!("  RSS over time (MiB): {}", points.join(", "));
    }
    if errors > 0 {
        for l in err_text.lines().filter(|l| l.contains("ERROR")).take(5) {
            println!("  daemon error: {l}");
        }
    }
    Ok(())
}

/// The last lines of a file, for an error message.
fn tail_text(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}
