//! Publication → webhook latency for a feed pushed by a WebSub hub next to a polled one.
//!
//! ```sh
//! cargo build --release
//! cargo run --release --example websub_latency -- --bin target/release/feedwire --duration 3m
//! ```
//!
//! A publisher serves two Atom feeds on 127.0.0.1, both with a fixed `--interval` (60 s, as
//! in the load test); one advertises a hub written here (W3C WebSub: 202, then a
//! verification of intent, then signed distributions). The real daemon subscribes, and
//! every few seconds (at random) both feeds gain one entry at the same moment; the hub pushes
//! the new document of the first. A webhook receiver notes when each entry arrives. At the
//! end: the latency of each feed (median, 90th percentile, max).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use clap::Parser;
use rand::Rng;

#[derive(Parser, Debug)]
#[command(about = "WebSub push against polling: publication → webhook latency")]
struct Args {
    /// The feedwire binary.
    #[arg(long, default_value = "target/release/feedwire")]
    bin: PathBuf,
    /// How long entries are published for.
    #[arg(long, default_value = "3m", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// The fixed poll interval of both feeds.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// Longest pause between two publications (each pause is random below it).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    gap: Duration,
}

#[derive(Default)]
struct World {
    /// Entry numbers each feed lists.
    entries: HashMap<&'static str, Vec<u32>>,
    /// Verified subscriptions: (callback, secret).
    subscribers: Vec<(String, String)>,
    /// When each guid was published and when it arrived at the webhook.
    published: HashMap<String, Instant>,
    arrived: HashMap<String, Instant>,
}

type Shared = Arc<Mutex<World>>;

fn lock(w: &Shared) -> std::sync::MutexGuard<'_, World> {
    w.lock().unwrap_or_else(|e| e.into_inner())
}

fn document(base: &str, name: &str, entries: &[u32]) -> String {
    let hub = if name == "pushed" {
        format!(
            "<link rel=\"hub\" href=\"{base}/hub\"/><link rel=\"self\" href=\"{base}/pushed.xml\"/>"
        )
    } else {
        String::new()
    };
    let mut s = format!(
        "<?xml version=\"1.0\"?><feed xmlns=\"http://www.w3.org/2005/Atom\"><title>{name}</title><id>urn:{name}</id>{hub}<updated>2026-12-01T00:00:00Z</updated>"
    );
    for n in entries {
        s.push_str(&format!(
            "<entry><id>urn:{name}:{n}</id><title>{name} entry {n}</title><link href=\"{base}/{name}/{n}\"/><updated>2026-12-01T00:00:00Z</updated><summary>The {name} feed's entry number {n}.</summary></entry>"
        ));
    }
    s.push_str("</feed>");
    s
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let world: Shared = Arc::new(Mutex::new(World::default()));
    let client = reqwest::Client::new();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    {
        let mut w = lock(&world);
        w.entries.insert("pushed", vec![]);
        w.entries.insert("polled", vec![]);
    }
    let app = {
        let (b1, b2) = (base.clone(), base.clone());
        let hub_client = client.clone();
        axum::Router::new()
            .route(
                "/pushed.xml",
                axum::routing::get(move |State(w): State<Shared>| async move {
                    let entries = lock(&w).entries["pushed"].clone();
                    document(&b1, "pushed", &entries)
                }),
            )
            .route(
                "/polled.xml",
                axum::routing::get(move |State(w): State<Shared>| async move {
                    let entries = lock(&w).entries["polled"].clone();
                    document(&b2, "polled", &entries)
                }),
            )
            .route(
                "/hub",
                axum::routing::post(move |State(w): State<Shared>, body: Bytes| {
                    let client = hub_client.clone();
                    async move {
                        let form: HashMap<String, String> =
                            url::form_urlencoded::parse(&body).into_owned().collect();
                        let (Some(callback), Some(topic)) = (
                            form.get("hub.callback").cloned(),
                            form.get("hub.topic").cloned(),
                        ) else {
                            return StatusCode::BAD_REQUEST;
                        };
                        let secret = form.get("hub.secret").cloned().unwrap_or_default();
                        let mode = form.get("hub.mode").cloned().unwrap_or_default();
                        tokio::spawn(async move {
                            let challenge = format!("c{}", rand::rng().random::<u64>());
                            let q = url::form_urlencoded::Serializer::new(String::new())
                                .append_pair("hub.mode", &mode)
                                .append_pair("hub.topic", &topic)
                                .append_pair("hub.challenge", &challenge)
                                .append_pair("hub.lease_seconds", "86400")
                                .finish();
                            let answer = client.get(format!("{callback}?{q}")).send().await;
                            if let Ok(r) = answer
                                && r.status().is_success()
                                && r.text().await.is_ok_and(|t| t == challenge)
                                && mode == "subscribe"
                            {
                                lock(&w).subscribers.push((callback, secret));
                            }
                        });
                        StatusCode::ACCEPTED
                    }
                }),
            )
            .route(
                "/hook",
                axum::routing::post(|State(w): State<Shared>, body: Bytes| async move {
                    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body)
                        && v["type"] == "item.new"
                        && let Some(guid) = v["item"]["guid"].as_str()
                    {
                        lock(&w)
                            .arrived
                            .entry(guid.to_string())
                            .or_insert_with(Instant::now);
                    }
                    StatusCode::OK.into_response()
                }),
            )
            .with_state(world.clone())
    };
    tokio::spawn(async move { axum::serve(listener, app).await });

    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let dir = tempfile::tempdir()?;
    let interval = humantime::format_duration(args.interval).to_string();
    let config = format!(
        "[daemon]\nstate_dir = {state:?}\nlisten = \"127.0.0.1:{port}\"\n\n\
         [article]\nfetch = false\nallowed_networks = [\"127.0.0.1/32\"]\n\n\
         [dedup]\nnear_duplicates = false\n\n\
         [websub]\ncallback = \"http://127.0.0.1:{port}/websub\"\n\n\
         [sinks.hook]\ntype = \"webhook\"\nurl = \"{base}/hook\"\n\n\
         [[feeds]]\nname = \"pushed\"\nurl = \"{base}/pushed.xml\"\ninterval = \"{interval}\"\n\n\
         [[feeds]]\nname = \"polled\"\nurl = \"{base}/polled.xml\"\ninterval = \"{interval}\"\n",
        state = dir.path().join("state").display().to_string(),
    );
    let config_path = dir.path().join("feedwire.toml");
    std::fs::write(&config_path, config)?;
    let mut daemon = Command::new(&args.bin)
        .arg("--config")
        .arg(&config_path)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;

    let deadline = Instant::now() + Duration::from_secs(30);
    while lock(&world).subscribers.is_empty() {
        if Instant::now() > deadline {
            let _ = daemon.kill();
            anyhow::bail!("the daemon did not subscribe within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "subscribed; publishing for {}",
        humantime::format_duration(args.duration)
    );

    let end = Instant::now() + args.duration;
    let mut n = 0;
    while Instant::now() < end {
        let pause =
            rand::rng().random_range(Duration::ZERO..args.gap.max(Duration::from_millis(1)));
        tokio::time::sleep(pause).await;
        n += 1;
        let (doc, subscribers) = {
            let mut w = lock(&world);
            let now = Instant::now();
            for feed in ["pushed", "polled"] {
                if let Some(e) = w.entries.get_mut(feed) {
                    e.push(n);
                }
                w.published.insert(format!("urn:{feed}:{n}"), now);
            }
            let entries = w.entries["pushed"].clone();
            (document(&base, "pushed", &entries), w.subscribers.clone())
        };
        for (callback, secret) in subscribers {
            let _ = client
                .post(&callback)
                .header("Content-Type", "application/atom+xml")
                .header(
                    "X-Hub-Signature",
                    feedwire::websub::sha256_signature(secret.as_bytes(), doc.as_bytes()),
                )
                .body(doc.clone())
                .send()
                .await;
        }
    }
    // Polled entries arrive up to one interval later.
    let wait_until = Instant::now() + args.interval + Duration::from_secs(10);
    while Instant::now() < wait_until && lock(&world).arrived.len() < 2 * n as usize {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(daemon.id().to_string())
        .status();
    let _ = daemon.wait();

    let w = lock(&world);
    for feed in ["pushed", "polled"] {
        let mut lat: Vec<Duration> = (1..=n)
            .filter_map(|i| {
                let guid = format!("urn:{feed}:{i}");
                Some(
                    w.arrived
                        .get(&guid)?
                        .duration_since(*w.published.get(&guid)?),
                )
            })
            .collect();
        lat.sort();
        println!(
            "{feed}: {} of {n} entries arrived; publication → webhook p50 {:.3} s, p90 {:.3} s, max {:.3} s",
            lat.len(),
            percentile(&lat, 0.5).as_secs_f64(),
            percentile(&lat, 0.9).as_secs_f64(),
            lat.last().copied().unwrap_or_default().as_secs_f64(),
        );
    }
    Ok(())
}
