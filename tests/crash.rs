//! At-least-once delivery across crashes: the daemon is killed with SIGKILL at random
//! moments while webhook deliveries are in flight, restarted, and in the end every item has
//! arrived, each under one `webhook-id` only.
//!
//! The kill delays come from a seeded xorshift generator; the seed is printed, and
//! `FEEDWIRE_CRASH_SEED=<seed>` replays the same delays. A second test kills the daemon while
//! its sink is paused by an outage.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::OpenOptions;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::*;

const ITERATIONS: u32 = 50;
/// Items the feed gains before each start of the daemon.
const ITEMS_PER_ITERATION: u32 = 3;
/// Kills land between 0 and this long after the start: before the first poll, while
/// deliveries are in flight, and after they finished.
const MAX_KILL_DELAY_MS: u64 = 400;
/// The receiver holds each request up to this long before its 200, so kills catch some.
const MAX_ANSWER_DELAY_MS: u64 = 120;

/// xorshift64*: small, deterministic, good enough to spread delays.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn seed() -> u64 {
    match std::env::var("FEEDWIRE_CRASH_SEED") {
        Ok(s) => s.parse().expect("FEEDWIRE_CRASH_SEED is a number"),
        Err(_) => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock after 1970")
                .as_nanos() as u64;
            nanos | 1
        }
    }
}

/// One request the receiver saw, reduced to what the assertions need.
struct Received {
    webhook_id: String,
    body: Vec<u8>,
    item_id: String,
    guid: String,
}

fn received(requests: Vec<Seen>) -> Vec<Received> {
    requests
        .into_iter()
        .map(|s| {
            let v: serde_json::Value =
                serde_json::from_slice(&s.body).expect("each webhook body is JSON");
            Received {
                webhook_id: s
                    .header("webhook-id")
                    .expect("each request has a webhook-id"),
                item_id: v["id"].as_str().expect("body has an id").to_string(),
                guid: v["item"]["guid"]
                    .as_str()
                    .expect("body has item.guid")
                    .to_string(),
                body: s.body,
            }
        })
        .collect()
}

/// `feedwire --config <setup's config> args…`, run from `bin`.
fn feedwire(bin: &Path, setup: &Setup, args: &[&str]) -> Command {
    let mut c = Command::new(bin);
    c.arg("--config").arg(setup.config_path()).args(args);
    c.env_remove("RUST_LOG").env("RUST_LOG", "feedwire=debug");
    c
}

/// A copy of the binary in the test's own directory, ready to run. Until every process that
/// another test thread forked while the copy was open for writing has called exec, running
/// the copy fails with "text file busy"; that lasts moments, so the copy is tried until it
/// runs.
fn private_binary(setup: &Setup) -> std::path::PathBuf {
    let bin = setup.path("feedwire");
    std::fs::copy(BIN, &bin).expect("copy the feedwire binary");
    let ready = wait_until(Duration::from_secs(10), || {
        match Command::new(&bin).arg("--version").output() {
            Ok(_) => true,
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => false,
            Err(e) => panic!("cannot run the copied binary: {e}"),
        }
    });
    assert!(ready, "the copied binary stayed busy for 10 s");
    bin
}

fn output(mut c: Command) -> Output {
    c.output().expect("run feedwire")
}

#[test]
fn kill_9_during_deliveries_loses_nothing_and_keeps_one_webhook_id_per_item() {
    let seed = seed();
    println!("crash test seed: {seed} (FEEDWIRE_CRASH_SEED={seed} replays these kill delays)");
    let mut rng = XorShift(seed);
    let started = Instant::now();

    // The feed grows by a few items before each start.
    let feed = Server::start();
    let listed = Arc::new(AtomicU32::new(0));
    {
        let listed = listed.clone();
        let base = feed.url("");
        feed.respond("/rss.xml", move |_, _| {
            let n = listed.load(Ordering::SeqCst);
            let entries: Vec<Entry> = (1..=n).map(|i| Entry::new(i, &base)).collect();
            Route::ok(rss("Crash", &entries), "application/rss+xml")
        });
    }

    // The receiver records each request on arrival and answers 200 after a varying delay; an
    // event counts as accepted only if the daemon still waited for that answer.
    let receiver = Server::start();
    receiver.respond("/hook", |_, before| {
        let mut mix = XorShift((before as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        Route {
            delay: Duration::from_millis(mix.below(MAX_ANSWER_DELAY_MS + 1)),
            ..Route::status(200)
        }
    });

    let setup = Setup::new(&format!(
        "[article]\nfetch = false\n\n\
         [sinks.hook]\ntype = \"webhook\"\nurl = \"{}\"\ntimeout = \"5s\"\nconcurrency = 4\n\
         retry_schedule = [\"100ms\"]\n\n\
         [[feeds]]\nname = \"f\"\nurl = \"{}\"\ninterval = \"1s\"\n",
        receiver.url("/hook"),
        feed.url("/rss.xml"),
    ));
    // One copy of the binary for all restarts, so that a rebuild during the run (a target
    // directory shared with other checkouts) cannot swap it between two starts.
    let bin = private_binary(&setup);
    let log_path = setup.path("daemon.log");
    let log_tail = || {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    };

    let mut delays = Vec::new();
    for i in 0..ITERATIONS {
        listed.fetch_add(ITEMS_PER_ITERATION, Ordering::SeqCst);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("open daemon log");
        let mut child = feedwire(&bin, &setup, &["run"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn feedwire run");
        let delay = rng.below(MAX_KILL_DELAY_MS + 1);
        delays.push(delay);
        std::thread::sleep(Duration::from_millis(delay));
        signal(&child, "KILL");
        let status = wait_exit(&mut child, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("iteration {i}: the daemon did not die after SIGKILL"));
        assert_eq!(
            status.signal(),
            Some(9),
            "iteration {i} (seed {seed}): the daemon was still running when killed {delay} ms \
             after its start, not stopped on its own ({status:?})\n{}",
            log_tail()
        );
    }
    let requests_during_kills = receiver.seen("/hook").len();

    // A last start with nothing killing it: everything still queued goes out.
    let out = output(feedwire(&bin, &setup, &["once", "--timeout", "30s"]));
    assert_ok(&out);

    let total = listed.load(Ordering::SeqCst);
    let got = received(receiver.seen("/hook"));
    let accepted: BTreeSet<String> = received(receiver.answered("/hook"))
        .into_iter()
        .map(|r| r.guid)
        .collect();

    let mut ids_by_guid: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut item_ids_by_guid: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut guids_by_id: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut bodies_by_id: BTreeMap<&str, BTreeSet<&[u8]>> = BTreeMap::new();
    for r in &got {
        ids_by_guid
            .entry(&r.guid)
            .or_default()
            .insert(&r.webhook_id);
        item_ids_by_guid
            .entry(&r.guid)
            .or_default()
            .insert(&r.item_id);
        guids_by_id
            .entry(&r.webhook_id)
            .or_default()
            .insert(&r.guid);
        bodies_by_id
            .entry(&r.webhook_id)
            .or_default()
            .insert(&r.body);
    }

    let missing: Vec<u32> = (1..=total)
        .filter(|n| !accepted.contains(&format!("urn:test:{n}")))
        .collect();
    assert!(
        missing.is_empty(),
        "seed {seed}: items the feed listed were never accepted by the receiver: {missing:?}"
    );
    assert_eq!(
        ids_by_guid.len(),
        total as usize,
        "seed {seed}: the receiver got items the feed never listed"
    );
    for (guid, ids) in &ids_by_guid {
        assert_eq!(
            ids.len(),
            1,
            "seed {seed}: item {guid} was delivered under several webhook-ids: {ids:?}"
        );
    }
    for (guid, ids) in &item_ids_by_guid {
        assert_eq!(
            ids.len(),
            1,
            "seed {seed}: item {guid} was stored more than once (payload ids {ids:?})"
        );
    }
    for (id, guids) in &guids_by_id {
        assert_eq!(
            guids.len(),
            1,
            "seed {seed}: webhook-id {id} was used for several items: {guids:?}"
        );
    }
    for (id, bodies) in &bodies_by_id {
        assert_eq!(
            bodies.len(),
            1,
            "seed {seed}: the redeliveries of {id} changed the body"
        );
    }

    // Some kills must have cut deliveries short, or this test proved nothing.
    let redelivered = got.len() - ids_by_guid.len();
    let cut_short = got.len() - receiver.answered("/hook").len();
    println!(
        "{ITERATIONS} kills (delays {}..{} ms), {total} items, {} requests ({requests_during_kills} \
         before the last start), {cut_short} cut short by a kill, {redelivered} redeliveries, {:.1}s",
        delays.iter().min().copied().unwrap_or(0),
        delays.iter().max().copied().unwrap_or(0),
        got.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        cut_short > 0,
        "seed {seed}: no kill landed while a delivery was in flight; the test exercised nothing"
    );

    let out = output(feedwire(&bin, &setup, &["deliveries"]));
    assert_ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    let row = text
        .lines()
        .find(|l| l.starts_with("hook"))
        .unwrap_or_else(|| panic!("deliveries lists the sink: {text}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    let delivered = total.to_string();
    assert_eq!(
        &cols[1..4],
        &["0", delivered.as_str(), "0"],
        "seed {seed}: nothing pending or dead, one outbox row per item: {text}"
    );
}

#[path = "common/receiver.rs"]
mod receiver;

/// A sink paused by an outage survives kill -9: its rows are all still queued, the pause is
/// still recorded, and the restarted daemon probes at once and delivers every row under the
/// webhook-id it already had.
#[test]
fn kill_9_during_an_outage_loses_nothing_and_keeps_the_webhook_ids() {
    use receiver::{Answer, Receiver};
    const ITEMS: u32 = 10;
    let feed = Server::start();
    let base = feed.url("");
    let entries: Vec<Entry> = (1..=ITEMS).map(|i| Entry::new(i, &base)).collect();
    feed.set(
        "/rss.xml",
        Route::ok(rss("Outage", &entries), "application/rss+xml"),
    );
    // Down: each request is read, then the socket closed without an answer.
    let receiver = Receiver::start(Duration::from_millis(10), |_| Answer::Close);
    let setup = Setup::new(&format!(
        "[article]\nfetch = false\n\n\
         [sinks.hook]\ntype = \"webhook\"\nurl = \"{}\"\ntimeout = \"5s\"\nconcurrency = 4\n\
         probe_interval = \"2s\"\n\n\
         [[feeds]]\nname = \"f\"\nurl = \"{}\"\n",
        receiver.url(),
        feed.url("/rss.xml"),
    ));
    let bin = private_binary(&setup);
    let log = std::fs::File::create(setup.path("daemon.log")).expect("daemon log");
    let mut child = feedwire(&bin, &setup, &["run"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn feedwire run");
    let sink_row = || {
        let out = output(feedwire(&bin, &setup, &["deliveries"]));
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let cols: Vec<String> = text
            .lines()
            .find(|l| l.starts_with("hook"))
            .map(|l| l.split_whitespace().map(String::from).collect())
            .unwrap_or_default();
        (cols, text)
    };
    // Killed while paused, after at least one probe.
    let paused = wait_until(Duration::from_secs(20), || {
        receiver.records().len() > 4 && sink_row().0.last().map(String::as_str) == Some("paused")
    });
    signal(&child, "KILL");
    let status = wait_exit(&mut child, Duration::from_secs(10)).expect("dies after SIGKILL");
    assert_eq!(status.signal(), Some(9));
    assert!(
        paused,
        "the sink paused during the outage: {}",
        std::fs::read_to_string(setup.path("daemon.log")).unwrap_or_default()
    );
    let (cols, text) = sink_row();
    assert_eq!(cols[1..4], ["10", "0", "0"], "all still queued: {text}");
    assert_eq!(cols.last().map(String::as_str), Some("paused"), "{text}");
    let ids_while_down: BTreeSet<String> = receiver
        .records()
        .into_iter()
        .map(|r| r.webhook_id)
        .collect();

    // Back up; a restart probes at once, then delivers everything.
    receiver.script(|_| Answer::ok());
    let started = Instant::now();
    assert_ok(&output(feedwire(
        &bin,
        &setup,
        &["once", "--timeout", "30s"],
    )));
    println!(
        "restart after kill -9 during an outage: all delivered in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let delivered: Vec<receiver::Record> = receiver
        .records()
        .into_iter()
        .filter(|r| r.delivered())
        .collect();
    let mut ids_by_guid: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in &delivered {
        let guid = r.json()["item"]["guid"]
            .as_str()
            .expect("body has item.guid")
            .to_string();
        ids_by_guid
            .entry(guid)
            .or_default()
            .insert(r.webhook_id.clone());
    }
    assert_eq!(
        ids_by_guid.len(),
        ITEMS as usize,
        "nothing lost: {ids_by_guid:?}"
    );
    for (guid, ids) in &ids_by_guid {
        assert_eq!(ids.len(), 1, "{guid} under several webhook-ids: {ids:?}");
    }
    let delivered_ids: BTreeSet<String> = delivered.into_iter().map(|r| r.webhook_id).collect();
    assert!(
        ids_while_down.is_subset(&delivered_ids),
        "the rows tried during the outage went out under the same webhook-ids"
    );
    let (cols, text) = sink_row();
    assert_eq!(cols[1..4], ["0", "10", "0"], "{text}");
    assert_eq!(cols.last().map(String::as_str), Some("up"), "{text}");
}
