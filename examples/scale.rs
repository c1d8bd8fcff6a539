//! Scale test: the same farm of feeds ingested by one daemon on SQLite, then by one, two and
//! three daemons sharing one PostgreSQL database; for each, the ingest rate of the first
//! cycle and the CPU of the cycle of unchanged polls (all 304) after it.
//!
//! ```sh
//! cargo build --release --examples --bins
//! ./target/release/examples/scale --feeds 1000 --items 100 --interval 20 --postgres postgres://postgres@127.0.0.1:5432/test
//! ```
//!
//! Each run gets a state dir (SQLite) or a schema (PostgreSQL) of its own, dropped at the
//! end. The farm serves every feed with an ETag: the first poll of each feed gets `--items`
//! new entries, every later one a 304. Items/s counts from the farm's first answer to the
//! last item in the database. The daemons spread their first polls over 50 ms per feed, at
//! most over the interval, so the offered rate is feeds × items / that window (5,000/s for
//! the command above); the figure is the ingest capacity when it stays below that. The 304
//! cycle's CPU is that of the daemons (utime + stime from /proc) and, on PostgreSQL, of the
//! server's processes, over one interval of all-304 polls, per 10,000 polls.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use clap::Parser;

#[path = "support/mod.rs"]
mod support;
use support::{cpu_ticks, daemon_binary};

#[derive(Parser, Debug, Clone)]
#[command(about = "Ingest rate and 304 CPU on SQLite and on 1-3 daemons sharing PostgreSQL")]
struct Args {
    /// Feeds served by the farm.
    #[arg(long, default_value_t = 2_000)]
    feeds: usize,
    /// New entries each feed has at its first poll.
    #[arg(long, default_value_t = 10)]
    items: usize,
    /// Each feed's fixed interval, in seconds: the length of the 304 cycle.
    #[arg(long, default_value_t = 30)]
    interval: u64,
    /// The PostgreSQL server (default: $FEEDWIRE_TEST_POSTGRES); without one only SQLite runs.
    #[arg(long)]
    postgres: Option<String>,
    /// Runs, as BACKEND:NODES.
    #[arg(long, default_value = "sqlite:1,postgres:1,postgres:2,postgres:3")]
    runs: String,
}

#[derive(Default)]
struct Counters {
    full: AtomicU64,
    not_modified: AtomicU64,
    first_answer_ms: AtomicU64,
}

#[derive(Clone)]
struct Farm {
    items: usize,
    counters: Arc<Counters>,
    start: Instant,
}

/// The feed's document: `items` entries, the same for every poll.
fn feed_body(feed: usize, items: usize) -> String {
    let mut s = format!(
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>feed {feed}</title><link>http://farm.test/</link><description>d</description>"
    );
    for n in 0..items {
        // Words of their own per entry, so no two entries are one story.
        let words: String = (0..40)
            .map(|w| format!("w{}", (feed * 7919 + n * 104_729 + w * 31) % 100_003))
            .collect::<Vec<_>>()
            .join(" ");
        s.push_str(&format!(
            "<item><guid>urn:f{feed}:{n}</guid><title>Feed {feed} entry {n}</title><link>http://farm.test/f{feed}/{n}</link><description>{words}</description></item>"
        ));
    }
    s.push_str("</channel></rss>");
    s
}

async fn handler(State(farm): State<Farm>, req: Request) -> Response {
    let feed: usize = req
        .uri()
        .path()
        .trim_start_matches("/f/")
        .trim_end_matches(".xml")
        .parse()
        .unwrap_or(0);
    let etag = format!("\"f{feed}-v1\"");
    let _ = farm.counters.first_answer_ms.compare_exchange(
        0,
        farm.start.elapsed().as_millis() as u64,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(etag.as_str());
    let response = Response::builder().header(header::ETAG, &etag);
    if matches {
        farm.counters.not_modified.fetch_add(1, Ordering::Relaxed);
        return response
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .expect("a 304");
    }
    farm.counters.full.fetch_add(1, Ordering::Relaxed);
    response
        .header(header::CONTENT_TYPE, "application/rss+xml")
        .body(Body::from(feed_body(feed, farm.items)))
        .expect("a feed")
}

/// The CPU of every PostgreSQL server process on this machine, in clock ticks.
fn postgres_ticks() -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.starts_with("postgres"))
        })
        .map(|pid| cpu_ticks(&pid.to_string()).unwrap_or(0))
        .sum()
}

struct Daemons(Vec<Child>);

impl Drop for Daemons {
    fn drop(&mut self) {
        for c in &self.0 {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
        }
        for c in &mut self.0 {
            let _ = c.wait();
        }
    }
}

enum Backend {
    Sqlite(PathBuf),
    Postgres {
        admin: tokio_postgres::Client,
        schema: String,
        url: String,
    },
}

impl Backend {
    async fn items(&self) -> u64 {
        match self {
            Backend::Sqlite(db) => {
                let db = db.clone();
                tokio::task::spawn_blocking(move || {
                    rusqlite::Connection::open_with_flags(
                        &db,
                        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                    )
                    .and_then(|c| {
                        c.query_row("SELECT COUNT(*) FROM items", [], |r| r.get::<_, i64>(0))
                    })
                    .map(|n| n as u64)
                    .unwrap_or(0)
                })
                .await
                .unwrap_or(0)
            }
            Backend::Postgres { admin, schema, .. } => admin
                .query_one(&format!("SELECT count(*) FROM {schema}.items"), &[])
                .await
                .map(|r| r.get::<_, i64>(0) as u64)
                .unwrap_or(0),
        }
    }
}

struct Row {
    label: String,
    items_per_s: f64,
    daemon_cpu_per_10k: f64,
    server_cpu_per_10k: Option<f64>,
}

async fn run_one(
    args: &Args,
    bin: &Path,
    postgres: Option<&str>,
    nodes: usize,
) -> Result<Row, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let counters = Arc::new(Counters::default());
    let farm = Farm {
        items: args.items,
        counters: counters.clone(),
        start: Instant::now(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let app = axum::Router::new()
        .fallback(handler)
        .with_state(farm.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let backend = match postgres {
        None => Backend::Sqlite(dir.path().join("state/feedwire.db")),
        Some(base) => {
            let (admin, conn) = tokio_postgres::connect(base, tokio_postgres::NoTls)
                .await
                .map_err(|e| format!("{base} does not answer: {e}"))?;
            tokio::spawn(conn);
            let schema = format!("fwscale_{}", ulid::Ulid::new().to_string().to_lowercase());
            admin
                .batch_execute(&format!("CREATE SCHEMA {schema}"))
                .await
                .map_err(|e| e.to_string())?;
            let sep = if base.contains('?') { '&' } else { '?' };
            let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
            Backend::Postgres { admin, schema, url }
        }
    };
    let mut config = format!(
        "[daemon]\nstate_dir = {:?}\nmax_connections = 64\nper_host_connections = 16\n\n\
         [article]\nfetch = false\n\n[sinks.out]\ntype = \"log\"\npath = \"/dev/null\"\n\n",
        dir.path().join("state").display().to_string()
    );
    if let Backend::Postgres { .. } = backend {
        config.push_str("[store]\nbackend = \"postgres\"\nurl_env = \"FEEDWIRE_DATABASE_URL\"\n\n");
    }
    for i in 0..args.feeds {
        config.push_str(&format!(
            "[[feeds]]\nname = \"f{i}\"\nurl = \"http://{addr}/f/{i}.xml\"\ninterval = \"{}s\"\n\n",
            args.interval
        ));
    }
    let config_path = dir.path().join("feedwire.toml");
    std::fs::write(&config_path, config).map_err(|e| e.to_string())?;

    let mut daemons = Daemons(Vec::new());
    for n in 0..nodes {
        let mut c = Command::new(bin);
        c.arg("--config")
            .arg(&config_path)
            .arg("run")
            .env("RUST_LOG", "feedwire=warn")
            .env("FEEDWIRE__STORE__NODE", format!("node-{n}"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if let Backend::Postgres { url, .. } = &backend {
            c.env("FEEDWIRE_DATABASE_URL", url);
        } else {
            c.env_remove("FEEDWIRE__STORE__NODE");
        }
        daemons.0.push(
            c.spawn()
                .map_err(|e| format!("cannot start {}: {e}", bin.display()))?,
        );
    }

    // The first cycle: every feed's entries are new.
    let want = (args.feeds * args.items) as u64;
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        if backend.items().await >= want {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "only {} of {want} items stored",
                backend.items().await
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let done = farm.start.elapsed();
    let first = Duration::from_millis(counters.first_answer_ms.load(Ordering::Relaxed));
    let items_per_s = want as f64 / (done - first).as_secs_f64();

    // The next cycle: every poll is a 304.
    let polls0 = counters.not_modified.load(Ordering::Relaxed);
    let cpu = |d: &Daemons| {
        d.0.iter()
            .map(|c| cpu_ticks(&c.id().to_string()).unwrap_or(0))
            .sum::<u64>()
    };
    let (cpu0, pg0) = (cpu(&daemons), postgres_ticks());
    let deadline = Instant::now() + Duration::from_secs(args.interval * 3 + 60);
    while counters.not_modified.load(Ordering::Relaxed) < polls0 + args.feeds as u64 {
        if Instant::now() > deadline {
            return Err("the 304 cycle did not complete".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let polls = (counters.not_modified.load(Ordering::Relaxed) - polls0) as f64;
    let per_10k = |ticks: u64| ticks as f64 / 100.0 / polls * 10_000.0;
    let daemon_cpu_per_10k = per_10k(cpu(&daemons) - cpu0);
    let server_cpu_per_10k = match &backend {
        Backend::Postgres { .. } => Some(per_10k(postgres_ticks() - pg0)),
        Backend::Sqlite(_) => None,
    };
    drop(daemons);
    server.abort();
    if let Backend::Postgres { admin, schema, .. } = &backend {
        let _ = admin
            .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .await;
    }
    let label = match postgres {
        None => "sqlite, 1 daemon".to_string(),
        Some(_) => format!(
            "postgres, {nodes} daemon{}",
            if nodes > 1 { "s" } else { "" }
        ),
    };
    Ok(Row {
        label,
        items_per_s,
        daemon_cpu_per_10k,
        server_cpu_per_10k,
    })
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let bin = match daemon_binary() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("scale: {e}");
            std::process::exit(2);
        }
    };
    let postgres = args
        .postgres
        .clone()
        .or_else(|| std::env::var("FEEDWIRE_TEST_POSTGRES").ok());
    println!(
        "{} feeds x {} items, {}s interval, {} cores",
        args.feeds,
        args.items,
        args.interval,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "| store | items/s (first cycle) | daemons' CPU s per 10,000 304 polls | server CPU s per 10,000 |"
    );
    println!("|---|---|---|---|");
    for run in args.runs.split(',') {
        let (backend, nodes) = run.split_once(':').unwrap_or((run, "1"));
        let nodes: usize = nodes.parse().unwrap_or(1);
        let pg = match backend {
            "sqlite" if nodes != 1 => {
                println!("| {run} | skipped: one daemon owns a SQLite file | | |");
                continue;
            }
            "sqlite" => None,
            "postgres" => match &postgres {
                Some(p) => Some(p.as_str()),
                None => {
                    println!(
                        "| {run} | skipped: no --postgres and no FEEDWIRE_TEST_POSTGRES | | |"
                    );
                    continue;
                }
            },
            other => {
                eprintln!("scale: unknown backend {other:?} in --runs");
                std::process::exit(2);
            }
        };
        match run_one(&args, &bin, pg, nodes).await {
            Ok(r) => println!(
                "| {} | {:.0} | {:.3} | {} |",
                r.label,
                r.items_per_s,
                r.daemon_cpu_per_10k,
                r.server_cpu_per_10k
                    .map_or("-".to_string(), |c| format!("{c:.3}"))
            ),
            Err(e) => println!("| {run} | failed: {e} | | |"),
        }
    }
}
