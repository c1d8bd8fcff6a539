//! Events per second published with acks through the real outbox path: SQLite claim, the
//! sink, SQLite ack. The queue sinks wait for a JetStream PubAck (`FEEDWIRE_TEST_NATS`) or an
//! AMQP publisher confirm on a persistent message (`FEEDWIRE_TEST_AMQP`); next to them, the
//! signed webhook to a local receiver that answers 200 at once, measured the same way. A
//! broker whose variable is unset is skipped, with a line saying so.
//!
//! One criterion iteration is one delivery, so the figures read as events per second.
//! Rows are stored before the clock starts. `cargo bench --bench queues`

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tokio::runtime::Runtime;

use feedwire::config::{Amqp, BrokerAuth, Nats, QueueDelivery, SecretSource, Webhook};
use feedwire::sinks::Sink;
use feedwire::sinks::amqp::AmqpSink;
use feedwire::sinks::nats::NatsSink;
use feedwire::sinks::queue::Template;
use feedwire::sinks::webhook::WebhookSink;

/// Events in flight per sink in every run: the queue sinks' default.
const CONCURRENCY: usize = 16;

mod support;
use support::*;

fn delivery() -> QueueDelivery {
    QueueDelivery {
        timeout: Duration::from_secs(10),
        max_attempts: 15,
        max_age: Duration::from_secs(72 * 3600),
        concurrency: CONCURRENCY,
        retry_schedule: Vec::new(),
    }
}

fn unique(prefix: &str) -> String {
    format!("{prefix}{}", ulid::Ulid::new().to_string().to_lowercase())
}

/// Runs one group member: `iters` rows stored, then the clock runs until all are acked.
fn measure(c: &mut Criterion, rt: &Runtime, name: &str, sink: Arc<dyn Sink>) {
    let mut g = c.benchmark_group("queue_sinks");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    let mut bench = Bench::new(rt, |_| sink);
    g.bench_function(format!("{name}, concurrency {CONCURRENCY}"), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let target = bench.delivered.load(Ordering::SeqCst) + iters;
                bench.ingest(iters, false).await;
                let start = Instant::now();
                bench.wake.notify_one();
                bench.drained(target).await;
                start.elapsed()
            })
        })
    });
    g.finish();
}

fn webhook(c: &mut Criterion) {
    let rt = runtime();
    let url = start_receiver(None);
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, SECRET).expect("write secret");
    let config = Webhook {
        url: url.parse().expect("receiver url"),
        secret: Some(SecretSource::File(secret)),
        timeout: Duration::from_secs(10),
        max_attempts: 15,
        max_age: Duration::from_secs(72 * 3600),
        concurrency: CONCURRENCY,
        retry_schedule: Vec::new(),
        template: None,
        content_type: "application/json".into(),
        headers: Vec::new(),
    };
    let sink = Arc::new(WebhookSink::new(&config, "feedwire-bench").expect("webhook sink"));
    measure(c, &rt, "webhook (local receiver)", sink);
}

fn nats(c: &mut Criterion) {
    let Ok(url) = std::env::var("FEEDWIRE_TEST_NATS") else {
        println!("skipped nats: FEEDWIRE_TEST_NATS is not set");
        return;
    };
    let rt = runtime();
    let stream = unique("FWBENCH_").to_uppercase();
    let config = Nats {
        url: url.parse().expect("FEEDWIRE_TEST_NATS is a URL"),
        subject: Template::parse(&format!("{}.{{feed}}.{{type}}", unique("fwbench")))
            .expect("template"),
        stream: Some(stream.clone()),
        create_stream: true,
        duplicate_window: Duration::from_secs(120),
        auth: BrokerAuth::None,
        delivery: delivery(),
    };
    let sink = Arc::new(NatsSink::new(&config).expect("nats sink"));
    measure(c, &rt, "nats jetstream (file stream, PubAck)", sink);
    rt.block_on(async {
        if let Ok(client) = async_nats::connect(url.as_str()).await {
            let _ = async_nats::jetstream::new(client)
                .delete_stream(&stream)
                .await;
        }
    });
}

fn amqp(c: &mut Criterion) {
    use lapin::options::{
        ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
        QueueDeleteOptions,
    };
    use lapin::types::FieldTable;
    let Ok(url) = std::env::var("FEEDWIRE_TEST_AMQP") else {
        println!("skipped amqp: FEEDWIRE_TEST_AMQP is not set");
        return;
    };
    let rt = runtime();
    let parsed = url::Url::parse(&url).expect("FEEDWIRE_TEST_AMQP is a URL");
    let exchange = unique("fwbench.");
    let queue = unique("fwbench.");
    let conn = rt
        .block_on(lapin::Connection::connect(
            &url,
            lapin::ConnectionProperties::default(),
        ))
        .expect("FEEDWIRE_TEST_AMQP answers");
    let channel = rt.block_on(conn.create_channel()).expect("channel");
    rt.block_on(async {
        channel
            .exchange_declare(
                exchange.as_str().into(),
                lapin::ExchangeKind::Topic,
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("declare exchange");
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("declare queue");
        channel
            .queue_bind(
                queue.as_str().into(),
                exchange.as_str().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind queue");
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let password = dir.path().join("password");
    std::fs::write(&password, parsed.password().unwrap_or("guest")).expect("write password");
    let mut bare = parsed.clone();
    let user = match parsed.username() {
        "" => "guest".to_string(),
        u => u.to_string(),
    };
    let _ = bare.set_username("");
    let _ = bare.set_password(None);
    let config = Amqp {
        url: bare,
        exchange: exchange.clone(),
        routing_key: Template::parse("{feed}.{type}").expect("template"),
        auth: BrokerAuth::Password {
            username: user,
            password: SecretSource::File(password),
        },
        delivery: delivery(),
    };
    let sink = Arc::new(AmqpSink::new(&config).expect("amqp sink"));
    measure(
        c,
        &rt,
        "rabbitmq (durable queue, persistent, confirms)",
        sink,
    );
    rt.block_on(async {
        let _ = channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await;
        let _ = channel
            .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
            .await;
    });
}

criterion_group!(benches, webhook, nats, amqp);
criterion_main!(benches);
