//! The queue sinks against real brokers: NATS JetStream (`FEEDWIRE_TEST_NATS`, e.g.
//! `nats://127.0.0.1:4222`) and RabbitMQ (`FEEDWIRE_TEST_AMQP`, e.g.
//! `amqp://guest:guest@127.0.0.1:5672/%2f`). Where a variable is unset the test says so and
//! passes; where it is set, a broker that does not answer fails the test.
//!
//! The daemon reaches each broker through a TCP proxy in the test that can hold back what
//! the broker says: once the first event is on its way, acks stop reaching the daemon, so a
//! kill -9 lands after the broker stored the events and before the daemon recorded them.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Events the feed holds.
const ITEMS: u32 = 6;
/// The longest wait for a broker or the daemon to get somewhere.
const DEADLINE: Duration = Duration::from_secs(30);
/// Seen on the wire only inside an event's body, so it marks the first publish.
const EVENT_MARK: &[u8] = b"\"type\":\"item.new\"";

/// The broker's address from `var`, or `None` after saying why the test is skipped.
fn broker(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Some(v.trim().to_string()),
        _ => {
            println!("skipped: {var} is not set (it names the broker this test needs)");
            None
        }
    }
}

/// A name no other run on this machine uses: streams, subjects, exchanges and queues are
/// shared by everyone on the broker.
fn unique(prefix: &str) -> String {
    format!("{prefix}{}", ulid::Ulid::new().to_string().to_lowercase())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("test runtime")
}

/// A TCP proxy to a broker. With `hold` armed, a connection stops passing the broker's
/// answers to the daemon as soon as the daemon sends its first event; new connections
/// after `release` pass everything.
struct Proxy {
    port: u16,
    hold: Arc<AtomicBool>,
}

impl Proxy {
    fn start(rt: &tokio::runtime::Runtime, upstream: String) -> Proxy {
        let hold = Arc::new(AtomicBool::new(true));
        let listener = rt
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let armed = hold.clone();
        rt.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                tokio::spawn(relay(client, server, armed.load(Ordering::SeqCst)));
            }
        });
        Proxy { port, hold }
    }

    fn release(&self) {
        self.hold.store(false, Ordering::SeqCst);
    }
}

async fn relay(client: TcpStream, server: TcpStream, hold: bool) {
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = server.into_split();
    let held = Arc::new(AtomicBool::new(false));
    let seen = held.clone();
    let upstream = async move {
        let mut buf = vec![0u8; 64 * 1024];
        // The tail of the previous read, so a mark split across two reads is still found.
        let mut tail: Vec<u8> = Vec::new();
        loop {
            let n = match client_rx.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if hold {
                tail.extend_from_slice(&buf[..n]);
                if tail.windows(EVENT_MARK.len()).any(|w| w == EVENT_MARK) {
                    // Set before the event goes out, so no ack for it can slip through.
                    seen.store(true, Ordering::SeqCst);
                }
                let keep = tail.len().saturating_sub(EVENT_MARK.len());
                tail.drain(..keep);
            }
            if server_tx.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    };
    let downstream = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match server_rx.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if held.load(Ordering::SeqCst) {
                // Swallow the broker's answers from now on; the daemon will be killed.
                continue;
            }
            if client_tx.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    };
    tokio::select! {
        _ = upstream => {}
        _ = downstream => {}
    }
}

/// A feed of `ITEMS` entries on a local server.
fn feed() -> Server {
    let feed = Server::start();
    let base = feed.url("");
    let entries: Vec<Entry> = (1..=ITEMS).map(|i| Entry::new(i, &base)).collect();
    feed.set(
        "/rss.xml",
        Route::ok(rss("Queue", &entries), "application/rss+xml"),
    );
    feed
}

/// (pending, delivered, dead) for `sink`, from `feedwire deliveries`.
fn backlog(setup: &Setup, sink: &str) -> (u64, u64, u64) {
    let out = setup.run(&["deliveries", "--sink", sink]);
    assert_ok(&out);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let row = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cols| cols.first() == Some(&sink))
        .unwrap_or_else(|| panic!("no row for sink {sink} in:\n{text}"));
    let n = |i: usize| row[i].parse::<u64>().expect("a count");
    (n(1), n(2), n(3))
}

/// Starts `feedwire run`, waits until `stored()` says the broker has every event, kills the
/// daemon with SIGKILL and checks that none of them was recorded as delivered.
fn kill_after_publish(setup: &Setup, sink: &str, mut stored: impl FnMut() -> bool) {
    let mut child = setup
        .command(&["run"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn feedwire run");
    let reached = wait_until(DEADLINE, &mut stored);
    signal(&child, "KILL");
    let status = wait_exit(&mut child, Duration::from_secs(10)).expect("the daemon dies");
    let mut log = String::new();
    if let Some(mut err) = child.stderr.take() {
        use std::io::Read;
        let _ = err.read_to_string(&mut log);
    }
    assert!(
        reached,
        "the broker did not get all {ITEMS} events within {DEADLINE:?}\n{log}"
    );
    assert_eq!(status.signal(), Some(9), "killed, not exited:\n{log}");
    assert_eq!(
        backlog(setup, sink),
        (ITEMS as u64, 0, 0),
        "the kill landed after the broker stored the events and before any ack was recorded"
    );
}

#[test]
fn nats_consumer_gets_every_event_exactly_once_across_a_kill_9_between_publish_and_ack() {
    let Some(url) = broker("FEEDWIRE_TEST_NATS") else {
        return;
    };
    let rt = runtime();
    // The JetStream context spawns its acker on the runtime it is made in.
    let _inside = rt.enter();
    let client = rt
        .block_on(async_nats::connect(url.as_str()))
        .unwrap_or_else(|e| panic!("FEEDWIRE_TEST_NATS={url} does not answer: {e}"));
    let js = async_nats::jetstream::new(client);
    let upstream = url
        .trim_start_matches("nats://")
        .trim_end_matches('/')
        .to_string();
    let proxy = Proxy::start(&rt, upstream);
    let stream = unique("FWTEST_").to_uppercase();
    let prefix = unique("fwtest");

    let feed = feed();
    let setup = Setup::new(&format!(
        "[article]\nfetch = false\n\n\
         [sinks.bus]\ntype = \"nats\"\nurl = \"nats://127.0.0.1:{}\"\n\
         subject = \"{prefix}.{{feed}}.{{type}}\"\nstream = \"{stream}\"\ncreate_stream = true\n\
         timeout = \"20s\"\nretry_schedule = [\"100ms\"]\n\n\
         [[feeds]]\nname = \"f\"\nurl = \"{}\"\ninterval = \"1h\"\n",
        proxy.port,
        feed.url("/rss.xml"),
    ));

    let messages = || {
        rt.block_on(async {
            match js.get_stream(&stream).await {
                Ok(mut s) => s.info().await.map(|i| i.state.messages).unwrap_or(0),
                Err(_) => 0,
            }
        })
    };
    kill_after_publish(&setup, "bus", || messages() == ITEMS as u64);

    // Acks pass again: the restarted daemon publishes every event a second time.
    proxy.release();
    let out = setup.run(&["once", "--timeout", "30s"]);
    assert_ok(&out);
    assert_eq!(backlog(&setup, "bus"), (0, ITEMS as u64, 0));
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        log.matches("already in the stream").count(),
        ITEMS as usize,
        "every event was published again and JetStream called each a duplicate:\n{log}"
    );
    assert_eq!(messages(), ITEMS as u64, "the copies were dropped");
    let created = rt.block_on(async {
        let mut s = js.get_stream(&stream).await.expect("the stream exists");
        s.info().await.expect("stream info").config.clone()
    });
    assert_eq!(created.subjects, vec![format!("{prefix}.>")]);
    assert_eq!(created.duplicate_window, Duration::from_secs(120));
    assert_eq!(
        created.storage,
        async_nats::jetstream::stream::StorageType::File
    );
    assert_eq!(
        (created.max_bytes, created.max_messages),
        (-1, -1),
        "no limits"
    );

    // A consumer reading the stream from the start sees each event once.
    let received = rt.block_on(async {
        let s = js.get_stream(&stream).await.expect("the stream exists");
        let consumer = s
            .create_consumer(async_nats::jetstream::consumer::pull::Config::default())
            .await
            .expect("create a consumer");
        let mut batch = consumer
            .fetch()
            .max_messages(ITEMS as usize * 2)
            .expires(Duration::from_secs(2))
            .messages()
            .await
            .expect("fetch");
        let mut received = Vec::new();
        while let Some(message) = batch.next().await {
            let message = message.expect("a message");
            let id = message
                .headers
                .as_ref()
                .and_then(|h| h.get("Nats-Msg-Id"))
                .map(|v| v.as_str().to_string())
                .expect("each message has a Nats-Msg-Id");
            let body: serde_json::Value =
                serde_json::from_slice(&message.payload).expect("the body is the JSON payload");
            received.push((message.subject.to_string(), id, body));
            let _ = message.ack().await;
        }
        let _ = js.delete_stream(&stream).await;
        received
    });
    assert_eq!(received.len(), ITEMS as usize, "{received:?}");
    let ids: BTreeSet<&str> = received.iter().map(|(_, id, _)| id.as_str()).collect();
    assert_eq!(ids.len(), ITEMS as usize, "one Nats-Msg-Id per event");
    let guids: BTreeSet<String> = received
        .iter()
        .map(|(_, _, b)| b["item"]["guid"].as_str().expect("guid").to_string())
        .collect();
    let expected: BTreeSet<String> = (1..=ITEMS).map(|i| format!("urn:test:{i}")).collect();
    assert_eq!(guids, expected);
    for (subject, _, body) in &received {
        assert_eq!(subject, &format!("{prefix}.f.item.new"));
        assert_eq!(body["type"], "item.new");
    }
}

#[test]
fn amqp_queue_gets_every_event_at_least_once_with_its_message_id_across_a_kill_9() {
    use lapin::options::{
        BasicGetOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
        QueueDeclareOptions, QueueDeleteOptions,
    };
    use lapin::types::FieldTable;

    let Some(url) = broker("FEEDWIRE_TEST_AMQP") else {
        return;
    };
    let parsed = url::Url::parse(&url).expect("FEEDWIRE_TEST_AMQP is a URL");
    let rt = runtime();
    let conn = rt
        .block_on(lapin::Connection::connect(
            &url,
            lapin::ConnectionProperties::default(),
        ))
        .unwrap_or_else(|e| panic!("FEEDWIRE_TEST_AMQP does not answer: {e}"));
    let channel = rt.block_on(conn.create_channel()).expect("a channel");
    let exchange = unique("fwtest.");
    let queue = unique("fwtest.");
    rt.block_on(async {
        channel
            .exchange_declare(
                exchange.as_str().into(),
                lapin::ExchangeKind::Topic,
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("declare the exchange");
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("declare the queue");
        channel
            .queue_bind(
                queue.as_str().into(),
                exchange.as_str().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind the queue");
    });
    let host = parsed.host_str().expect("a host");
    let port = parsed.port().unwrap_or(5672);
    let proxy = Proxy::start(&rt, format!("{host}:{port}"));
    let vhost = parsed.path().trim_start_matches('/');
    let vhost = if vhost.is_empty() { "%2f" } else { vhost };
    let password_file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(
        password_file.path(),
        format!("{}\n", parsed.password().unwrap_or("guest")),
    )
    .expect("write the password");
    let user = match parsed.username() {
        "" => "guest",
        u => u,
    };

    let feed = feed();
    let setup = Setup::new(&format!(
        "[article]\nfetch = false\n\n\
         [sinks.rabbit]\ntype = \"amqp\"\nurl = \"amqp://127.0.0.1:{}/{vhost}\"\n\
         exchange = \"{exchange}\"\nrouting_key = \"{{feed}}.{{type}}\"\n\
         username = \"{user}\"\npassword_file = {:?}\n\
         timeout = \"20s\"\nretry_schedule = [\"100ms\"]\n\n\
         [[feeds]]\nname = \"f\"\nurl = \"{}\"\ninterval = \"1h\"\n",
        proxy.port,
        password_file.path().display().to_string(),
        feed.url("/rss.xml"),
    ));

    let queued = || {
        rt.block_on(async {
            channel
                .queue_declare(
                    queue.as_str().into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map(|q| q.message_count())
                .unwrap_or(0)
        })
    };
    kill_after_publish(&setup, "rabbit", || queued() >= ITEMS);

    proxy.release();
    let out = setup.run(&["once", "--timeout", "30s"]);
    assert_ok(&out);
    assert_eq!(backlog(&setup, "rabbit"), (0, ITEMS as u64, 0));

    let received = rt.block_on(async {
        let mut received = Vec::new();
        while let Some(m) = channel
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .expect("basic.get")
        {
            let props = &m.delivery.properties;
            let id = props
                .message_id()
                .as_ref()
                .map(|s| s.to_string())
                .expect("each message has a message_id");
            assert_eq!(*props.delivery_mode(), Some(2), "persistent");
            assert_eq!(
                props.content_type().as_ref().map(|s| s.to_string()),
                Some("application/json".to_string())
            );
            let body: serde_json::Value =
                serde_json::from_slice(&m.delivery.data).expect("the body is the JSON payload");
            received.push((m.delivery.routing_key.to_string(), id, body));
        }
        let _ = channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await;
        let _ = channel
            .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
            .await;
        received
    });
    // Every event at least once (the restart sent them all again); every copy of one event
    // under the one id, so a consumer can drop the repeats.
    assert_eq!(received.len(), 2 * ITEMS as usize, "{received:#?}");
    let mut ids_by_guid: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (key, id, body) in &received {
        assert_eq!(key, "f.item.new");
        ids_by_guid
            .entry(body["item"]["guid"].as_str().expect("guid").to_string())
            .or_default()
            .insert(id.clone());
    }
    let expected: BTreeSet<String> = (1..=ITEMS).map(|i| format!("urn:test:{i}")).collect();
    assert_eq!(
        ids_by_guid.keys().cloned().collect::<BTreeSet<_>>(),
        expected
    );
    assert!(
        ids_by_guid.values().all(|ids| ids.len() == 1),
        "one message_id per event: {ids_by_guid:?}"
    );
    let all: BTreeSet<&String> = ids_by_guid.values().flatten().collect();
    assert_eq!(all.len(), ITEMS as usize, "events do not share ids");
}

/// A broker nobody runs: the daemon keeps the events queued and retries, as for a webhook
/// receiver that is down; nothing is dead-lettered.
#[test]
fn a_broker_that_is_down_is_retried_not_dead_lettered() {
    let feed = feed();
    let nats_port = free_port();
    let amqp_port = free_port();
    let setup = Setup::new(&format!(
        "[article]\nfetch = false\n\n\
         [sinks.bus]\ntype = \"nats\"\nurl = \"nats://127.0.0.1:{nats_port}\"\ntimeout = \"2s\"\n\n\
         [sinks.rabbit]\ntype = \"amqp\"\nurl = \"amqp://127.0.0.1:{amqp_port}/%2f\"\nexchange = \"x\"\ntimeout = \"2s\"\n\n\
         [[feeds]]\nname = \"f\"\nurl = \"{}\"\n",
        feed.url("/rss.xml"),
    ));
    let out = setup.run(&["once", "--timeout", "3s"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "pending deliveries make once exit 1: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for sink in ["bus", "rabbit"] {
        assert_eq!(backlog(&setup, sink), (ITEMS as u64, 0, 0), "sink {sink}");
    }
    let report = setup.run(&["deliveries"]);
    let text = String::from_utf8_lossy(&report.stdout);
    assert!(
        text.contains(&format!("cannot reach nats://127.0.0.1:{nats_port}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("cannot reach amqp://127.0.0.1:{amqp_port}")),
        "{text}"
    );
}

/// Bad queue sink settings are each named with their key.
#[test]
fn bad_queue_sink_settings_are_reported_by_key() {
    let setup = Setup::new(
        "[sinks.bus]\ntype = \"nats\"\nurl = \"nats://user:secret@127.0.0.1:4222\"\n\
         subject = \"a.{title}\"\ncreate_stream = true\n\n\
         [sinks.rabbit]\ntype = \"amqp\"\nurl = \"http://127.0.0.1\"\nusername = \"u\"\nsubject = \"x\"\n\n\
         [[feeds]]\nurl = \"http://127.0.0.1:9/f\"\n",
    );
    let out = setup.run(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stderr);
    for key in [
        "sinks.bus.url",
        "sinks.bus.subject",
        "sinks.bus.create_stream",
        "sinks.rabbit.url",
        "sinks.rabbit.exchange",
        "sinks.rabbit.username",
        "sinks.rabbit.subject",
    ] {
        assert!(text.contains(key), "{key} is named in:\n{text}");
    }
    assert!(
        !text.contains("secret"),
        "the password is not echoed:\n{text}"
    );
}
