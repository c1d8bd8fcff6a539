//! Every default of the configuration, in one place: what a key is when the file leaves it out.
//!
//! The example `config/feedwire.toml` shows the same values; `config::tests` checks that an
//! empty file resolves to these.

use std::time::Duration;

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;
const MIB: u64 = 1024 * 1024;

// [daemon]
pub const STATE_DIR: &str = "/var/lib/feedwire";
pub const USER_AGENT: &str = concat!("feedwire/", env!("CARGO_PKG_VERSION"));
pub const MAX_CONNECTIONS: usize = 64;
pub const PER_HOST_CONNECTIONS: usize = 2;
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

// [poll]
pub const POLL_INTERVAL: Duration = Duration::from_secs(15 * MINUTE);
pub const POLL_MIN_INTERVAL: Duration = Duration::from_secs(2 * MINUTE);
pub const POLL_MAX_INTERVAL: Duration = Duration::from_secs(6 * HOUR);
pub const POLL_TIMEOUT: Duration = Duration::from_secs(30);
pub const MAX_FEED_SIZE: u64 = 10 * MIB;

// [article]
pub const ARTICLE_FETCH: bool = true;
pub const ARTICLE_TIMEOUT: Duration = Duration::from_secs(30);
pub const MAX_PAGE_SIZE: u64 = 5 * MIB;

// [dedup]
pub const NEAR_DUPLICATES: bool = true;
pub const DEDUP_WINDOW: Duration = Duration::from_secs(30 * DAY);
pub const RETENTION: Duration = Duration::from_secs(180 * DAY);

// [sinks.NAME], every type
/// The longest wait between two probes while a sink's receiver is down.
pub const SINK_PROBE_INTERVAL: Duration = Duration::from_secs(30);

// [sinks.NAME] with type = "webhook"
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
pub const WEBHOOK_MAX_ATTEMPTS: u32 = 15;
pub const WEBHOOK_MAX_AGE: Duration = Duration::from_secs(72 * HOUR);
pub const WEBHOOK_CONCURRENCY: usize = 4;

// [sinks.NAME] with a preset type (slack, discord, telegram, ntfy, matrix)
pub const PRESET_CONCURRENCY: usize = 1;
pub const TELEGRAM_API_URL: &str = "https://api.telegram.org/";
/// What a webhook template's body is sent as unless `content_type` says otherwise.
pub const TEMPLATE_CONTENT_TYPE: &str = "application/json";
// [sinks.NAME] with type = "nats" or "amqp"; retries as for webhooks
pub const QUEUE_TIMEOUT: Duration = WEBHOOK_TIMEOUT;
/// Events waiting for their broker ack at once: a broker acknowledges in well under a
/// millisecond, so the round trip is what limits, not the receiver.
pub const QUEUE_CONCURRENCY: usize = 16;
pub const QUEUE_SUBJECT: &str = "feedwire.{feed}.{type}";
/// JetStream's own default duplicate window.
pub const NATS_DUPLICATE_WINDOW: Duration = Duration::from_secs(2 * MINUTE);

// [store]
/// Connections each daemon keeps to PostgreSQL.
pub const STORE_POOL_SIZE: usize = 8;
/// How long a node holds a feed or an outbox row it claimed without renewing: after a node
/// dies, the others take its feeds and deliveries over once this has passed.
pub const STORE_LEASE: Duration = Duration::from_secs(60);
