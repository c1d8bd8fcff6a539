//! The configuration: what the user wrote (TOML plus `FEEDWIRE__SECTION__KEY` overrides),
//! validated into the [`Config`] the program uses, with every problem reported at once.
//!
//! # How a file becomes a [`Config`]
//!
//! 1. The `config` crate merges the file and the environment overrides into one tree.
//! 2. [`sections`] walks the tree one section at a time through [`read::Table`]: each key is
//!    read once with its key path and converted by its leaf kind ([`Duration`], `Size`,
//!    `HttpUrl`, `Int<MIN, MAX>`, …, in [`read`]); a bad value becomes a [`Problem`] and the walk
//!    goes on, so every problem is found in one pass. A key nobody read is unknown.
//! 3. The problems get their lines from one parse of the TOML spans, and are sorted by line.
//!
//! Defaults are named constants in [`defaults`], nowhere else.
//!
//! # Adding a key
//!
//! - A key of an existing section: a field in its struct below, and one line in its function
//!   in [`sections`]: `timeout: t.get::<Duration>("timeout").unwrap_or(d::WEBHOOK_TIMEOUT)`
//!   (plus the constant in [`defaults`]). Reading the key is what makes it known.
//! - A new kind of value (an enum, a regex): `impl Leaf` for it in [`read`], once.
//! - A new section or array of tables (`[store]`, `[[rules]]`): a struct here, a function in
//!   [`sections`] called from `sections::config` with `root.table("store")` or
//!   `root.array("rules")`, ending with `t.finish()`.
//! - A new sink type: a variant of [`SinkKind`] and an arm in `sections::sink` (the queue
//!   sinks read their keys in [`queues`]).
//! - A check across keys or sections: in the section's function, `t.problem(key, message)`.
//!
//! Messages are lower-case fragments; the key path and line are added for them.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use serde_json::Value;
use url::Url;

use crate::model::EventType;
use crate::rules::RuleSet;
use crate::sinks::presets::Preset;
use crate::sinks::queue::Template;
use crate::sinks::template::{HeaderSource, TemplateSource};

mod access;
pub mod defaults;
mod queues;
mod read;
mod presets;
mod rules;
mod sections;
#[cfg(test)]
mod tests;

pub use access::{BasicAuth, FeedAccess, FeedHeader, NoProxy, ProxyUrl, Secret, UrlCredentials};

/// Where the configuration is looked for when `--config` and `$FEEDWIRE_CONFIG` are absent.
pub const DEFAULT_PATHS: &[&str] = &["config/feedwire.toml", "/etc/feedwire/feedwire.toml"];

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub daemon: Daemon,
    pub poll: Poll,
    pub article: Article,
    pub dedup: Dedup,
    /// Sinks by name.
    pub sinks: BTreeMap<String, Sink>,
    /// Shared with the scheduler's feed states: 10,000 feeds are kept once, not twice.
    pub feeds: Vec<Arc<Feed>>,
    /// Politeness overrides by host name (`[hosts."example.com"]`).
    pub hosts: BTreeMap<String, Host>,
    /// Filter and routing rules (`[[rules]]`), compiled, in the order written.
    pub rules: RuleSet,
    /// WebSub push (`[websub]`), when a public callback is configured.
    pub websub: Option<WebSub>,
    /// Where the state lives (`[store]`).
    pub store: StoreConfig,
}

/// `[store]`: the embedded SQLite file (the default), or a PostgreSQL database that several
/// daemons share.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum StoreConfig {
    #[default]
    Sqlite,
    Postgres(PostgresStore),
}

/// `[store] backend = "postgres"`.
#[derive(Debug, Clone, PartialEq)]
pub struct PostgresStore {
    /// The connection string (`url_env` or `url_file`): a secret, read at start.
    pub url: SecretSource,
    /// The key that named it, for messages (`store.url_env`).
    pub url_key: String,
    pub pool_size: usize,
    /// This daemon's name in leases (default: host name and process id).
    pub node: Option<String>,
    pub lease: Duration,
}

/// The WebSub subscriber (`[websub]`): where hubs reach this daemon.
#[derive(Debug, Clone, PartialEq)]
pub struct WebSub {
    /// The public URL whose path `[daemon] listen` serves; each subscription gets a path
    /// below it.
    pub callback: Url,
    /// The lease asked of hubs (`hub.lease_seconds`); `None`: the hub's default.
    pub lease: Option<Duration>,
}

/// How feedwire treats one host, feeds and article pages alike.
#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    /// Requests in flight to this host (else `daemon.per_host_connections`).
    pub connections: Option<usize>,
    /// Least time between the starts of two requests to this host.
    pub min_delay: Duration,
    /// Sent instead of `daemon.user_agent`.
    pub user_agent: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Daemon {
    pub state_dir: PathBuf,
    pub user_agent: String,
    pub max_connections: usize,
    pub per_host_connections: usize,
    pub listen: Option<SocketAddr>,
    pub log_format: LogFormat,
    pub shutdown_grace: Duration,
    /// The environment variable holding the status page's token, when the page asks for one.
    pub status_token_env: Option<String>,
    /// Every request goes through this proxy, but to `no_proxy` hosts and feeds with their own.
    pub proxy: Option<ProxyUrl>,
    pub no_proxy: NoProxy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Auto,
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Poll {
    pub interval: Duration,
    pub min_interval: Duration,
    pub max_interval: Duration,
    pub timeout: Duration,
    pub max_feed_size: u64,
    /// The default for feeds that set none.
    pub backfill: Backfill,
    /// The default for feeds that set none: entries published earlier are not sent.
    pub max_item_age: Option<Duration>,
    /// The defaults of every feed's credentials, headers, user agent and proxy.
    pub access: FeedAccess,
}

/// Which items of a feed's first poll are emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backfill {
    All,
    Newest(usize),
    /// Nothing of the first poll is sent; only what appears after it.
    None,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Article {
    pub fetch: bool,
    pub timeout: Duration,
    pub max_page_size: u64,
    pub allowed_networks: Vec<IpNet>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dedup {
    pub near_duplicates: bool,
    pub window: Duration,
    pub retention: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sink {
    pub name: String,
    pub kind: SinkKind,
    pub events: Vec<EventType>,
    /// Feeds this sink takes, by name; with `tags` empty too, every feed.
    pub feeds: Vec<String>,
    pub tags: Vec<String>,
    /// The longest wait between two probes while the sink is paused (its receiver down).
    pub probe_interval: Duration,
}

impl Sink {
    /// Whether the sink takes items of this feed (its `feeds` / `tags` selection).
    pub fn selects(&self, feed: &str, tags: &[String]) -> bool {
        (self.feeds.is_empty() && self.tags.is_empty())
            || self.feeds.iter().any(|f| f == feed)
            || self.tags.iter().any(|t| tags.contains(t))
    }

    /// Whether the sink reads a file when it starts (a secret, a header value, a template),
    /// which a reload must read again even when the config did not change.
    pub fn reads_files(&self) -> bool {
        let file = |s: &SecretSource| matches!(s, SecretSource::File(_));
        let broker = |a: &BrokerAuth| match a {
            BrokerAuth::None => false,
            BrokerAuth::Password { password, .. } => file(password),
            BrokerAuth::Token(token) => file(token),
        };
        match &self.kind {
            SinkKind::Log { .. } => false,
            SinkKind::Webhook(w) => {
                w.secret.as_ref().is_some_and(file)
                    || matches!(w.template, Some(TemplateSource::File(_)))
                    || w.headers
                        .iter()
                        .any(|(_, h)| matches!(h, HeaderSource::File(_)))
            }
            SinkKind::Preset(p) => match &p.preset {
                Preset::Slack { url } | Preset::Discord { url } => file(url),
                Preset::Telegram { token, .. } | Preset::Matrix { token, .. } => file(token),
                Preset::Ntfy { token, .. } => token.as_ref().is_some_and(file),
            },
            SinkKind::Nats(n) => broker(&n.auth),
            SinkKind::Amqp(a) => broker(&a.auth),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum SinkKind {
    Log {
        path: LogPath,
    },
    Webhook(Webhook),
    /// A chat or push service (`type = "slack"`, `"discord"`, `"telegram"`, `"ntfy"`, `"matrix"`).
    Preset(PresetSink),
    Nats(Nats),
    Amqp(Amqp),
}

/// A preset sink: the service and how its deliveries are retried.
#[derive(Debug, Clone, PartialEq)]
pub struct PresetSink {
    pub preset: Preset,
    pub timeout: Duration,
    pub max_attempts: u32,
    pub max_age: Duration,
    /// Chat services limit their rate per channel: one at a time by default, in order.
    pub concurrency: usize,
    pub retry_schedule: Vec<Duration>,
}

/// Where a log sink writes.
#[derive(Debug, Clone, PartialEq)]
pub enum LogPath {
    Stdout,
    File(PathBuf),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    pub url: Url,
    pub secret: Option<SecretSource>,
    pub timeout: Duration,
    pub max_attempts: u32,
    pub max_age: Duration,
    pub concurrency: usize,
    /// Delays before retry 1, 2, …; the last repeats. Empty: the Standard Webhooks schedule.
    pub retry_schedule: Vec<Duration>,
    /// The body template (over the §5 payload); without one, the payload itself is sent.
    pub template: Option<TemplateSource>,
    /// Sent as `Content-Type`.
    pub content_type: String,
    /// Extra headers, their values written here or read from the environment or a file.
    pub headers: Vec<(String, HeaderSource)>,
}

/// A NATS JetStream sink.
#[derive(Debug, Clone, PartialEq)]
pub struct Nats {
    /// `nats://` or `tls://`, without credentials.
    pub url: Url,
    pub subject: Template,
    /// The stream the events must land in; `None`: whichever stream captures the subject.
    pub stream: Option<String>,
    /// Create `stream` (capturing every subject the template makes) when it is missing.
    pub create_stream: bool,
    /// The duplicate window of a stream feedwire creates.
    pub duplicate_window: Duration,
    pub auth: BrokerAuth,
    pub delivery: QueueDelivery,
}

/// An AMQP 0-9-1 (RabbitMQ) sink.
#[derive(Debug, Clone, PartialEq)]
pub struct Amqp {
    /// `amqp://` or `amqps://`, without credentials; the path is the virtual host.
    pub url: Url,
    pub exchange: String,
    pub routing_key: Template,
    pub auth: BrokerAuth,
    pub delivery: QueueDelivery,
}

/// How a queue sink waits and retries: the same keys, and defaults, as a webhook's, but
/// for `concurrency`.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueDelivery {
    /// The longest wait for the broker's ack (PubAck or publisher confirm).
    pub timeout: Duration,
    pub max_attempts: u32,
    pub max_age: Duration,
    pub concurrency: usize,
    pub retry_schedule: Vec<Duration>,
}

/// Who a queue sink connects as; a password or token is read from the environment or a
/// file, never written in the config.
#[derive(Debug, Clone, PartialEq)]
pub enum BrokerAuth {
    None,
    Password {
        username: String,
        password: SecretSource,
    },
    Token(SecretSource),
}

/// Where a webhook secret is read from; the secret itself is never in the config.
#[derive(Debug, Clone, PartialEq)]
pub enum SecretSource {
    Env(String),
    File(PathBuf),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Feed {
    pub name: String,
    pub url: Url,
    /// A fixed interval, when the user gave one.
    pub interval: Option<Duration>,
    pub fetch_article: bool,
    /// Names of the sinks this feed's items go to.
    pub sinks: Vec<String>,
    pub tags: Vec<String>,
    /// Which items of the first poll are sent (else `poll.backfill`).
    pub backfill: Backfill,
    /// Entries published longer ago are stored as seen and not sent (else `poll.max_item_age`).
    pub max_item_age: Option<Duration>,
    /// WebSub push for this feed: `Some(false)` never, `Some(true)` or `None` when the feed
    /// advertises a hub and `[websub]` is configured.
    pub websub: Option<bool>,
    /// Credentials, headers, user agent and proxy (with `[poll]`'s defaults applied).
    pub access: Arc<FeedAccess>,
}

impl Config {
    /// The SQLite file inside `state_dir`.
    pub fn database_path(&self) -> PathBuf {
        self.daemon.state_dir.join("feedwire.db")
    }

    pub fn feed(&self, name: &str) -> Option<&Arc<Feed>> {
        self.feeds.iter().find(|f| f.name == name)
    }
}

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Key path such as `poll.interval` or `feeds[2].url`.
    pub path: String,
    /// Line in the file, when the key is there (not for environment overrides).
    pub line: Option<usize>,
    pub message: String,
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    // The message carries its cause, kept in `cause` rather than `source` (which thiserror
    // would also report as the source), so a printed error chain shows it once.
    #[error("cannot read config file {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("no config file found: pass --config PATH, set FEEDWIRE_CONFIG, or create {}", DEFAULT_PATHS.join(" or "))]
    NotFound,
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{}", Invalid { path, problems })]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

struct Invalid<'a> {
    path: &'a Path,
    problems: &'a [Problem],
}

impl fmt::Display for Invalid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "config file {} has {n} problem{}",
            self.path.display(),
            if n == 1 { "" } else { "s" }
        )?;
        for p in self.problems {
            match p.line {
                Some(line) => write!(
                    f,
                    "\n  {}:{line}: {}: {}",
                    self.path.display(),
                    p.path,
                    p.message
                )?,
                None => write!(f, "\n  {}: {}", p.path, p.message)?,
            }
        }
        Ok(())
    }
}

/// Finds the config file: `--config`, else `$FEEDWIRE_CONFIG`, else the default paths.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, ConfigError> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("FEEDWIRE_CONFIG").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    DEFAULT_PATHS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or(ConfigError::NotFound)
}

/// Loads the file at `path` with the process environment's overrides.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    load_with_env(path, &env)
}

/// Loads the file at `path`, overridden by the `FEEDWIRE__…` variables of `env`.
pub fn load_with_env(path: &Path, env: &BTreeMap<String, String>) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|cause| match cause.kind() {
        std::io::ErrorKind::NotFound if path.as_os_str().is_empty() => ConfigError::NotFound,
        _ => ConfigError::Read {
            path: path.to_path_buf(),
            cause,
        },
    })?;
    parse(&text, path, env)
}

/// Parses configuration text; `path` is only used in messages.
pub fn parse(
    text: &str,
    path: &Path,
    env: &BTreeMap<String, String>,
) -> Result<Config, ConfigError> {
    let overrides: config::Map<String, String> = env
        .iter()
        .filter(|(k, _)| k.starts_with("FEEDWIRE__"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let syntax = |e: config::ConfigError| ConfigError::Syntax {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let tree: Value = config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Toml))
        .add_source(
            config::Environment::with_prefix("FEEDWIRE")
                .prefix_separator("__")
                .separator("__")
                .source(Some(overrides)),
        )
        .build()
        .map_err(syntax)?
        .try_deserialize()
        .map_err(syntax)?;

    let problems = read::Problems::default();
    let config = sections::config(&read::Table::root(&tree, &problems));
    let mut problems = problems.into_inner();
    if problems.is_empty() {
        return Ok(config);
    }
    read::add_lines(text, &mut problems);
    problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
    Err(ConfigError::Invalid {
        path: path.to_path_buf(),
        problems,
    })
}
