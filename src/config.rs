//! The configuration: what the user wrote (TOML plus `FEEDWIRE__SECTION__KEY` overrides),
//! validated into the [`Config`] the program uses, with every problem reported at once.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use crate::model::EventType;
use crate::sinks::queue::Template;

/// Events a queue sink has waiting for their ack at once, unless configured: a broker
/// acknowledges in well under a millisecond, so the round trip is what limits.
const QUEUE_CONCURRENCY: u64 = 16;

/// The sink types, as messages list them.
const SINK_TYPES: &str = "\"log\", \"webhook\", \"nats\" or \"amqp\"";

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
    pub feeds: Vec<Feed>,
    /// Politeness overrides by host name (`[hosts."example.com"]`).
    pub hosts: BTreeMap<String, Host>,
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
    pub backfill: Backfill,
}

/// Which items of a feed's first poll are emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backfill {
    All,
    Newest(usize),
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
    pub max_distance: u32,
    pub window: Duration,
    pub retention: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sink {
    pub name: String,
    pub kind: SinkKind,
    pub events: Vec<EventType>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SinkKind {
    Log { path: LogPath },
    Webhook(Webhook),
    Nats(Nats),
    Amqp(Amqp),
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
}

impl Config {
    /// The SQLite file inside `state_dir`.
    pub fn database_path(&self) -> PathBuf {
        self.daemon.state_dir.join("feedwire.db")
    }

    pub fn feed(&self, name: &str) -> Option<&Feed> {
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
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
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
    let text = std::fs::read_to_string(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound if path.as_os_str().is_empty() => ConfigError::NotFound,
        _ => ConfigError::Read {
            path: path.to_path_buf(),
            source,
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
    let merged = config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Toml))
        .add_source(
            config::Environment::with_prefix("FEEDWIRE")
                .prefix_separator("__")
                .separator("__")
                .source(Some(overrides)),
        )
        .build()
        .map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    let tree: Value = merged.try_deserialize().map_err(|e| ConfigError::Syntax {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;

    let mut v = Validator {
        problems: Vec::new(),
        lines: LineIndex::new(text),
    };
    let mut unknown = Vec::new();
    let raw: Result<RawConfig, _> =
        serde_ignored::deserialize(&tree, |p| unknown.push(display_path(&p)));
    let raw = match raw {
        Ok(raw) => raw,
        Err(e) => {
            v.problem("", format!("{e}"));
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                problems: v.problems,
            });
        }
    };
    for key in unknown {
        v.problem(
            &key,
            "unknown key (check its spelling and section)".to_string(),
        );
    }
    let config = v.config(raw);
    if v.problems.is_empty() {
        Ok(config)
    } else {
        let mut problems = v.problems;
        problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
        Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            problems,
        })
    }
}

/// serde_ignored prints sequence indices as `feeds.2.x`; show them as `feeds[2].x`.
/// A key path as the messages show it: `feeds[2].url`, `hosts."a.com".delay`.
fn display_path(p: &serde_ignored::Path<'_>) -> String {
    match p {
        serde_ignored::Path::Root => String::new(),
        serde_ignored::Path::Seq { parent, index } => format!("{}[{index}]", display_path(parent)),
        serde_ignored::Path::Map { parent, key } => {
            let parent = display_path(parent);
            let key = if key.contains('.') {
                format!("\"{key}\"")
            } else {
                key.clone()
            };
            if parent.is_empty() {
                key
            } else {
                format!("{parent}.{key}")
            }
        }
        serde_ignored::Path::Some { parent }
        | serde_ignored::Path::NewtypeStruct { parent }
        | serde_ignored::Path::NewtypeVariant { parent } => display_path(parent),
    }
}

// ---- what the user wrote --------------------------------------------------------------------

/// A value as written; checked and converted by the validator so that every problem is found.
type Leaf = Option<Value>;

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawConfig {
    daemon: RawDaemon,
    poll: RawPoll,
    article: RawArticle,
    dedup: RawDedup,
    sinks: BTreeMap<String, RawSink>,
    feeds: Vec<RawFeed>,
    hosts: BTreeMap<String, RawHost>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawHost {
    connections: Leaf,
    min_delay: Leaf,
    user_agent: Leaf,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawDaemon {
    state_dir: Leaf,
    user_agent: Leaf,
    max_connections: Leaf,
    per_host_connections: Leaf,
    listen: Leaf,
    log_format: Leaf,
    shutdown_grace: Leaf,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawPoll {
    interval: Leaf,
    min_interval: Leaf,
    max_interval: Leaf,
    timeout: Leaf,
    max_feed_size: Leaf,
    backfill: Leaf,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawArticle {
    fetch: Leaf,
    timeout: Leaf,
    max_page_size: Leaf,
    allowed_networks: Leaf,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawDedup {
    near_duplicates: Leaf,
    max_distance: Leaf,
    window: Leaf,
    retention: Leaf,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawSink {
    #[serde(rename = "type")]
    kind: Leaf,
    events: Leaf,
    path: Leaf,
    url: Leaf,
    secret_env: Leaf,
    secret_file: Leaf,
    timeout: Leaf,
    max_attempts: Leaf,
    max_age: Leaf,
    concurrency: Leaf,
    retry_schedule: Leaf,
    subject: Leaf,
    stream: Leaf,
    create_stream: Leaf,
    duplicate_window: Leaf,
    exchange: Leaf,
    routing_key: Leaf,
    username: Leaf,
    password_env: Leaf,
    password_file: Leaf,
    token_env: Leaf,
    token_file: Leaf,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawFeed {
    url: Leaf,
    name: Leaf,
    interval: Leaf,
    fetch_article: Leaf,
    sinks: Leaf,
    tags: Leaf,
}

// ---- validation -----------------------------------------------------------------------------

struct Validator {
    problems: Vec<Problem>,
    lines: LineIndex,
}

impl Validator {
    fn problem(&mut self, path: &str, message: String) {
        let line = self.lines.line_of(path);
        self.problems.push(Problem {
            path: path.to_string(),
            line,
            message,
        });
    }

    fn string(&mut self, path: &str, leaf: &Leaf) -> Option<String> {
        match leaf {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                self.problem(path, format!("expected a string, found {}", kind_of(other)));
                None
            }
        }
    }

    fn duration(&mut self, path: &str, leaf: &Leaf, default: &str) -> Duration {
        let fallback = humantime::parse_duration(default).unwrap_or_default();
        match leaf {
            None => fallback,
            Some(Value::String(s)) => match humantime::parse_duration(s.trim()) {
                Ok(d) if !d.is_zero() => d,
                Ok(_) => {
                    self.problem(path, format!("duration {s:?} must be more than zero"));
                    fallback
                }
                Err(e) => {
                    self.problem(
                        path,
                        format!(
                            "invalid duration {s:?} ({e}); write e.g. \"90s\", \"15m\", \"24h\""
                        ),
                    );
                    fallback
                }
            },
            Some(other) => {
                self.problem(
                    path,
                    format!(
                        "expected a duration string like \"15m\", found {}",
                        kind_of(other)
                    ),
                );
                fallback
            }
        }
    }

    fn size(&mut self, path: &str, leaf: &Leaf, default: &str) -> u64 {
        let fallback = default
            .parse::<bytesize::ByteSize>()
            .map(|b| b.as_u64())
            .unwrap_or(0);
        match leaf {
            None => fallback,
            Some(Value::String(s)) => match s.trim().parse::<bytesize::ByteSize>() {
                Ok(b) if b.as_u64() > 0 => b.as_u64(),
                Ok(_) => {
                    self.problem(path, format!("size {s:?} must be more than zero"));
                    fallback
                }
                Err(_) => {
                    self.problem(
                        path,
                        format!("invalid size {s:?}; write e.g. \"512KiB\", \"5MiB\""),
                    );
                    fallback
                }
            },
            Some(other) => {
                self.problem(
                    path,
                    format!(
                        "expected a size string like \"5MiB\", found {}",
                        kind_of(other)
                    ),
                );
                fallback
            }
        }
    }

    fn integer(&mut self, path: &str, leaf: &Leaf, default: u64, min: u64, max: u64) -> u64 {
        let n = match leaf {
            None => return default,
            Some(Value::Number(n)) => n.as_u64(),
            // Environment overrides always arrive as strings.
            Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
            Some(_) => None,
        };
        match n {
            Some(n) if (min..=max).contains(&n) => n,
            _ => {
                let shown = leaf.as_ref().map(|v| v.to_string()).unwrap_or_default();
                self.problem(
                    path,
                    format!("expected a whole number from {min} to {max}, found {shown}"),
                );
                default
            }
        }
    }

    fn boolean(&mut self, path: &str, leaf: &Leaf, default: bool) -> bool {
        match leaf {
            None => default,
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) if s == "true" => true,
            Some(Value::String(s)) if s == "false" => false,
            Some(other) => {
                self.problem(path, format!("expected true or false, found {other}"));
                default
            }
        }
    }

    fn strings(&mut self, path: &str, leaf: &Leaf) -> Option<Vec<String>> {
        match leaf {
            None => None,
            Some(Value::Array(items)) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::String(s) => out.push(s.clone()),
                        other => self.problem(
                            &format!("{path}[{i}]"),
                            format!("expected a string, found {}", kind_of(other)),
                        ),
                    }
                }
                Some(out)
            }
            // An environment override gives a comma-separated list.
            Some(Value::String(s)) => Some(
                s.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
            ),
            Some(other) => {
                self.problem(
                    path,
                    format!("expected a list of strings, found {}", kind_of(other)),
                );
                None
            }
        }
    }

    fn http_url(&mut self, path: &str, leaf: &Leaf) -> Option<Url> {
        let s = self.string(path, leaf)?;
        match Url::parse(s.trim()) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(u),
            Ok(u) => {
                self.problem(
                    path,
                    format!(
                        "{s:?} is not an http or https URL (scheme {:?})",
                        u.scheme()
                    ),
                );
                None
            }
            Err(e) => {
                self.problem(path, format!("invalid URL {s:?}: {e}"));
                None
            }
        }
    }

    fn events(&mut self, path: &str, leaf: &Leaf) -> Vec<EventType> {
        let Some(names) = self.strings(path, leaf) else {
            return vec![EventType::ItemNew];
        };
        let mut out = Vec::new();
        for name in names {
            match EventType::parse(&name) {
                Some(e) if !out.contains(&e) => out.push(e),
                Some(_) => {}
                None => {
                    let known: Vec<&str> = EventType::ALL.iter().map(|e| e.as_str()).collect();
                    self.problem(
                        path,
                        format!("unknown event {name:?}; known events: {}", known.join(", ")),
                    );
                }
            }
        }
        out
    }

    fn config(&mut self, raw: RawConfig) -> Config {
        let daemon = self.daemon(&raw.daemon);
        let poll = self.poll(&raw.poll);
        let article = self.article(&raw.article);
        let dedup = self.dedup(&raw.dedup);
        let mut sinks = BTreeMap::new();
        for (name, s) in &raw.sinks {
            if let Some(sink) = self.sink(name, s) {
                sinks.insert(name.clone(), sink);
            }
        }
        let known_sinks: HashSet<&String> = raw.sinks.keys().collect();
        let mut feeds = Vec::new();
        let mut names: HashSet<String> = HashSet::new();
        for (i, f) in raw.feeds.iter().enumerate() {
            if let Some(feed) = self.feed(i, f, &known_sinks, &article, &mut names) {
                feeds.push(feed);
            }
        }
        let mut hosts = BTreeMap::new();
        for (name, h) in &raw.hosts {
            let at = |key: &str| format!("hosts.\"{name}\".{key}");
            if name.is_empty() || name.contains(['/', ':', ' ', '"']) {
                self.problem(
                    &format!("hosts.\"{name}\""),
                    "use a bare host name, like \"example.com\"".into(),
                );
            }
            let connections = h
                .connections
                .as_ref()
                .map(|_| self.integer(&at("connections"), &h.connections, 2, 1, 1_000) as usize);
            let min_delay = match &h.min_delay {
                Some(Value::String(s)) if s.trim() == "0s" || s.trim() == "0" => Duration::ZERO,
                leaf => self.duration(&at("min_delay"), leaf, "0s"),
            };
            let user_agent = self.string(&at("user_agent"), &h.user_agent);
            if user_agent
                .as_ref()
                .is_some_and(|ua| ua.trim().is_empty() || ua.contains(['\r', '\n']))
            {
                self.problem(&at("user_agent"), "must be a non-empty single line".into());
            }
            hosts.insert(
                name.to_ascii_lowercase(),
                Host {
                    connections,
                    min_delay,
                    user_agent,
                },
            );
        }
        Config {
            daemon,
            poll,
            article,
            dedup,
            sinks,
            feeds,
            hosts,
        }
    }

    fn daemon(&mut self, r: &RawDaemon) -> Daemon {
        let state_dir = self
            .string("daemon.state_dir", &r.state_dir)
            .unwrap_or_else(|| "/var/lib/feedwire".into());
        if state_dir.trim().is_empty() {
            self.problem("daemon.state_dir", "must not be empty".into());
        }
        let user_agent = self
            .string("daemon.user_agent", &r.user_agent)
            .unwrap_or_else(|| concat!("feedwire/", env!("CARGO_PKG_VERSION")).to_string());
        if user_agent.trim().is_empty() || user_agent.contains(['\r', '\n']) {
            self.problem(
                "daemon.user_agent",
                "must be a non-empty single line".into(),
            );
        }
        let max_connections =
            self.integer("daemon.max_connections", &r.max_connections, 64, 1, 100_000) as usize;
        let per_host_connections = self.integer(
            "daemon.per_host_connections",
            &r.per_host_connections,
            2,
            1,
            1_000,
        ) as usize;
        if per_host_connections > max_connections {
            self.problem(
                "daemon.per_host_connections",
                format!(
                    "{per_host_connections} is more than daemon.max_connections ({max_connections})"
                ),
            );
        }
        let listen = match self.string("daemon.listen", &r.listen) {
            None => None,
            Some(s) if s.is_empty() => None,
            Some(s) => match s.parse::<SocketAddr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    self.problem(
                        "daemon.listen",
                        format!("{s:?} is not an address like \"127.0.0.1:9464\""),
                    );
                    None
                }
            },
        };
        let log_format = match self.string("daemon.log_format", &r.log_format).as_deref() {
            None | Some("auto") => LogFormat::Auto,
            Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                self.problem(
                    "daemon.log_format",
                    format!("{other:?} is not one of auto, text, json"),
                );
                LogFormat::Auto
            }
        };
        let shutdown_grace = self.duration("daemon.shutdown_grace", &r.shutdown_grace, "10s");
        Daemon {
            state_dir: PathBuf::from(state_dir),
            user_agent,
            max_connections,
            per_host_connections,
            listen,
            log_format,
            shutdown_grace,
        }
    }

    fn poll(&mut self, r: &RawPoll) -> Poll {
        let interval = self.duration("poll.interval", &r.interval, "15m");
        let min_interval = self.duration("poll.min_interval", &r.min_interval, "2m");
        let max_interval = self.duration("poll.max_interval", &r.max_interval, "6h");
        if min_interval > max_interval {
            self.problem(
                "poll.min_interval",
                format!(
                    "{} is longer than poll.max_interval ({})",
                    humantime::format_duration(min_interval),
                    humantime::format_duration(max_interval)
                ),
            );
        }
        let timeout = self.duration("poll.timeout", &r.timeout, "30s");
        let max_feed_size = self.size("poll.max_feed_size", &r.max_feed_size, "10MiB");
        let backfill = match &r.backfill {
            None => Backfill::All,
            Some(Value::String(s)) if s == "all" => Backfill::All,
            Some(Value::Number(n)) if n.as_u64().is_some() => {
                Backfill::Newest(n.as_u64().unwrap_or(0) as usize)
            }
            Some(Value::String(s)) if s.parse::<usize>().is_ok() => {
                Backfill::Newest(s.parse().unwrap_or(0))
            }
            Some(other) => {
                self.problem(
                    "poll.backfill",
                    format!("expected \"all\" or a whole number, found {other}"),
                );
                Backfill::All
            }
        };
        Poll {
            interval,
            min_interval,
            max_interval,
            timeout,
            max_feed_size,
            backfill,
        }
    }

    fn article(&mut self, r: &RawArticle) -> Article {
        let fetch = self.boolean("article.fetch", &r.fetch, true);
        let timeout = self.duration("article.timeout", &r.timeout, "30s");
        let max_page_size = self.size("article.max_page_size", &r.max_page_size, "5MiB");
        let mut allowed_networks = Vec::new();
        for (i, s) in self
            .strings("article.allowed_networks", &r.allowed_networks)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let parsed = s
                .parse::<IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from));
            match parsed {
                Ok(net) => allowed_networks.push(net),
                Err(_) => self.problem(
                    &format!("article.allowed_networks[{i}]"),
                    format!("{s:?} is not a network like \"127.0.0.1/32\" or \"fd00::/8\""),
                ),
            }
        }
        Article {
            fetch,
            timeout,
            max_page_size,
            allowed_networks,
        }
    }

    fn dedup(&mut self, r: &RawDedup) -> Dedup {
        Dedup {
            near_duplicates: self.boolean("dedup.near_duplicates", &r.near_duplicates, true),
            max_distance: self.integer("dedup.max_distance", &r.max_distance, 3, 0, 15) as u32,
            window: self.duration("dedup.window", &r.window, "30d"),
            retention: self.duration("dedup.retention", &r.retention, "180d"),
        }
    }

    fn sink(&mut self, name: &str, r: &RawSink) -> Option<Sink> {
        let at = |key: &str| format!("sinks.{name}.{key}");
        if !valid_name(name) {
            self.problem(
                &format!("sinks.{name}"),
                "sink names use letters, digits, '-' and '_' only".into(),
            );
        }
        let events = self.events(&at("events"), &r.events);
        let kind = self.string(&at("type"), &r.kind);
        // Every key a sink may have; each type takes some of them.
        let keys: [(&str, &Leaf); 20] = [
            ("path", &r.path),
            ("retry_schedule", &r.retry_schedule),
            ("url", &r.url),
            ("secret_env", &r.secret_env),
            ("secret_file", &r.secret_file),
            ("timeout", &r.timeout),
            ("max_attempts", &r.max_attempts),
            ("max_age", &r.max_age),
            ("concurrency", &r.concurrency),
            ("subject", &r.subject),
            ("stream", &r.stream),
            ("create_stream", &r.create_stream),
            ("duplicate_window", &r.duplicate_window),
            ("exchange", &r.exchange),
            ("routing_key", &r.routing_key),
            ("username", &r.username),
            ("password_env", &r.password_env),
            ("password_file", &r.password_file),
            ("token_env", &r.token_env),
            ("token_file", &r.token_file),
        ];
        const DELIVERY: [&str; 5] = [
            "timeout",
            "max_attempts",
            "max_age",
            "concurrency",
            "retry_schedule",
        ];
        let allowed: Vec<&str> = match kind.as_deref() {
            Some("log") => vec!["path"],
            Some("webhook") => [&["url", "secret_env", "secret_file"][..], &DELIVERY].concat(),
            Some("nats") => [
                &[
                    "url",
                    "subject",
                    "stream",
                    "create_stream",
                    "duplicate_window",
                    "username",
                    "password_env",
                    "password_file",
                    "token_env",
                    "token_file",
                ][..],
                &DELIVERY,
            ]
            .concat(),
            Some("amqp") => [
                &[
                    "url",
                    "exchange",
                    "routing_key",
                    "username",
                    "password_env",
                    "password_file",
                ][..],
                &DELIVERY,
            ]
            .concat(),
            _ => keys.iter().map(|(k, _)| *k).collect(),
        };
        for (key, leaf) in &keys {
            if leaf.is_some() && !allowed.contains(key) {
                let kind = kind.as_deref().unwrap_or_default();
                self.problem(&at(key), format!("not a setting of a {kind} sink"));
            }
        }
        let sink_kind = match kind.as_deref() {
            Some("log") => {
                let path = match self.string(&at("path"), &r.path).as_deref() {
                    None | Some("-") => LogPath::Stdout,
                    Some("") => {
                        self.problem(
                            &at("path"),
                            "must be \"-\" (standard output) or a file path".into(),
                        );
                        LogPath::Stdout
                    }
                    Some(p) => LogPath::File(PathBuf::from(p)),
                };
                SinkKind::Log { path }
            }
            Some("webhook") => {
                let url = match &r.url {
                    None => {
                        self.problem(&at("url"), "a webhook sink needs a url".into());
                        None
                    }
                    leaf => self.http_url(&at("url"), leaf),
                };
                let secret_env = self.string(&at("secret_env"), &r.secret_env);
                let secret_file = self.string(&at("secret_file"), &r.secret_file);
                let secret = match (secret_env, secret_file) {
                    (Some(_), Some(_)) => {
                        self.problem(
                            &at("secret_file"),
                            "give either secret_env or secret_file, not both".into(),
                        );
                        None
                    }
                    (Some(var), None) => Some(SecretSource::Env(var)),
                    (None, Some(file)) => Some(SecretSource::File(PathBuf::from(file))),
                    (None, None) => None,
                };
                let timeout = self.duration(&at("timeout"), &r.timeout, "10s");
                let max_attempts =
                    self.integer(&at("max_attempts"), &r.max_attempts, 15, 1, 1_000) as u32;
                let max_age = self.duration(&at("max_age"), &r.max_age, "72h");
                let concurrency =
                    self.integer(&at("concurrency"), &r.concurrency, 4, 1, 256) as usize;
                let retry_schedule = self.retry_schedule(name, r);
                SinkKind::Webhook(Webhook {
                    url: url?,
                    secret,
                    timeout,
                    max_attempts,
                    max_age,
                    concurrency,
                    retry_schedule,
                })
            }
            Some("nats") => SinkKind::Nats(self.nats_sink(name, r)?),
            Some("amqp") => SinkKind::Amqp(self.amqp_sink(name, r)?),
            Some(other) => {
                self.problem(
                    &at("type"),
                    format!("unknown sink type {other:?}; use {SINK_TYPES}"),
                );
                return None;
            }
            None => {
                self.problem(&at("type"), format!("a sink needs a type: {SINK_TYPES}"));
                return None;
            }
        };
        Some(Sink {
            name: name.to_string(),
            kind: sink_kind,
            events,
        })
    }

    fn nats_sink(&mut self, name: &str, r: &RawSink) -> Option<Nats> {
        let at = |key: &str| format!("sinks.{name}.{key}");
        let url = self.broker_url(
            &at("url"),
            &r.url,
            &["nats", "tls"],
            "nats://127.0.0.1:4222",
        );
        let create_stream = self.boolean(&at("create_stream"), &r.create_stream, false);
        let subject = self.template(&at("subject"), &r.subject, "feedwire.{feed}.{type}");
        if let Some(t) = &subject
            && let Some(problem) = crate::sinks::nats::subject_problem(t, create_stream)
        {
            self.problem(&at("subject"), problem);
        }
        let stream = self.string(&at("stream"), &r.stream);
        if let Some(s) = &stream
            && (s.is_empty() || s.contains(['.', '*', '>', ' ', '\t', '/', '\\']))
        {
            self.problem(
                &at("stream"),
                format!("{s:?} is not a stream name: no dots, spaces, slashes or wildcards"),
            );
        }
        if create_stream && stream.is_none() {
            self.problem(
                &at("create_stream"),
                "name the stream to create with stream = \"…\"".into(),
            );
        }
        let duplicate_window = self.duration(&at("duplicate_window"), &r.duplicate_window, "2m");
        if r.duplicate_window.is_some() && !create_stream {
            self.problem(
                &at("duplicate_window"),
                "applies to a stream feedwire creates (create_stream = true)".into(),
            );
        }
        let auth = self.broker_auth(name, r, true);
        let delivery = self.queue_delivery(name, r);
        Some(Nats {
            url: url?,
            subject: subject?,
            stream,
            create_stream,
            duplicate_window,
            auth,
            delivery,
        })
    }

    fn amqp_sink(&mut self, name: &str, r: &RawSink) -> Option<Amqp> {
        let at = |key: &str| format!("sinks.{name}.{key}");
        let url = self.broker_url(
            &at("url"),
            &r.url,
            &["amqp", "amqps"],
            "amqp://127.0.0.1:5672/%2f",
        );
        let exchange = self.string(&at("exchange"), &r.exchange);
        if exchange.is_none() {
            self.problem(
                &at("exchange"),
                "an amqp sink needs an exchange (\"\" is the default exchange)".into(),
            );
        }
        let routing_key =
            self.template(&at("routing_key"), &r.routing_key, "feedwire.{feed}.{type}");
        let auth = self.broker_auth(name, r, false);
        let delivery = self.queue_delivery(name, r);
        Some(Amqp {
            url: url?,
            exchange: exchange?,
            routing_key: routing_key?,
            auth,
            delivery,
        })
    }

    /// A broker's address: one of `schemes`, a host, and no credentials in it.
    fn broker_url(
        &mut self,
        path: &str,
        leaf: &Leaf,
        schemes: &[&str],
        example: &str,
    ) -> Option<Url> {
        let Some(s) = self.string(path, leaf) else {
            self.problem(path, format!("a url is needed, like \"{example}\""));
            return None;
        };
        match Url::parse(s.trim()) {
            Ok(u) if !schemes.contains(&u.scheme()) || u.host().is_none() => {
                self.problem(
                    path,
                    format!(
                        "{s:?} is not a {} URL, like \"{example}\"",
                        schemes.join(" or ")
                    ),
                );
                None
            }
            Ok(u) if !u.username().is_empty() || u.password().is_some() => {
                // Not even quoted back: the URL holds a secret.
                self.problem(
                    path,
                    "credentials do not go in the url: use username with password_env or password_file".into(),
                );
                None
            }
            Ok(u) => Some(u),
            Err(e) => {
                self.problem(path, format!("invalid URL {s:?}: {e}"));
                None
            }
        }
    }

    fn template(&mut self, path: &str, leaf: &Leaf, default: &str) -> Option<Template> {
        let text = self
            .string(path, leaf)
            .unwrap_or_else(|| default.to_string());
        match Template::parse(&text) {
            Ok(t) => Some(t),
            Err(e) => {
                self.problem(path, format!("{text:?}: {e}"));
                None
            }
        }
    }

    /// `username` with `password_env` or `password_file`; or (NATS) `token_env` or
    /// `token_file`.
    fn broker_auth(&mut self, name: &str, r: &RawSink, tokens: bool) -> BrokerAuth {
        let at = |key: &str| format!("sinks.{name}.{key}");
        let source = |v: &mut Validator, env: (&str, &Leaf), file: (&str, &Leaf)| {
            let e = v.string(&at(env.0), env.1);
            let f = v.string(&at(file.0), file.1);
            match (e, f) {
                (Some(_), Some(_)) => {
                    v.problem(
                        &at(file.0),
                        format!("give either {} or {}, not both", env.0, file.0),
                    );
                    None
                }
                (Some(var), None) => Some(SecretSource::Env(var)),
                (None, Some(file)) => Some(SecretSource::File(PathBuf::from(file))),
                (None, None) => None,
            }
        };
        let username = self.string(&at("username"), &r.username);
        let password = source(
            self,
            ("password_env", &r.password_env),
            ("password_file", &r.password_file),
        );
        let token = if tokens {
            source(
                self,
                ("token_env", &r.token_env),
                ("token_file", &r.token_file),
            )
        } else {
            None
        };
        match (username, password, token) {
            (Some(_), _, Some(_)) | (None, Some(_), Some(_)) => {
                self.problem(
                    &at("token_env"),
                    "give a token or a username and password, not both".into(),
                );
                BrokerAuth::None
            }
            (Some(username), Some(password), None) => BrokerAuth::Password { username, password },
            (Some(_), None, None) => {
                self.problem(
                    &at("username"),
                    "a username needs password_env or password_file".into(),
                );
                BrokerAuth::None
            }
            (None, Some(_), None) => {
                self.problem(
                    &at("username"),
                    "password_env and password_file need a username".into(),
                );
                BrokerAuth::None
            }
            (None, None, Some(token)) => BrokerAuth::Token(token),
            (None, None, None) => BrokerAuth::None,
        }
    }

    fn queue_delivery(&mut self, name: &str, r: &RawSink) -> QueueDelivery {
        let at = |key: &str| format!("sinks.{name}.{key}");
        QueueDelivery {
            timeout: self.duration(&at("timeout"), &r.timeout, "10s"),
            max_attempts: self.integer(&at("max_attempts"), &r.max_attempts, 15, 1, 1_000) as u32,
            max_age: self.duration(&at("max_age"), &r.max_age, "72h"),
            concurrency: self.integer(
                &at("concurrency"),
                &r.concurrency,
                QUEUE_CONCURRENCY,
                1,
                256,
            ) as usize,
            retry_schedule: self.retry_schedule(name, r),
        }
    }

    fn retry_schedule(&mut self, name: &str, r: &RawSink) -> Vec<Duration> {
        let at = format!("sinks.{name}.retry_schedule");
        let steps = self.strings(&at, &r.retry_schedule).unwrap_or_default();
        let mut schedule = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            let leaf = Some(Value::String(step.clone()));
            schedule.push(self.duration(&format!("{at}[{i}]"), &leaf, "5s"));
        }
        schedule
    }

    fn feed(
        &mut self,
        i: usize,
        r: &RawFeed,
        known_sinks: &HashSet<&String>,
        article: &Article,
        names: &mut HashSet<String>,
    ) -> Option<Feed> {
        let at = |key: &str| format!("feeds[{i}].{key}");
        let url = match &r.url {
            None => {
                self.problem(&at("url"), "a feed needs a url".into());
                None
            }
            leaf => self.http_url(&at("url"), leaf),
        };
        let given_name = self.string(&at("name"), &r.name);
        let interval = r
            .interval
            .as_ref()
            .map(|_| self.duration(&at("interval"), &r.interval, "15m"));
        let fetch_article = self.boolean(&at("fetch_article"), &r.fetch_article, article.fetch);
        let sinks = self.strings(&at("sinks"), &r.sinks);
        if let Some(sinks) = &sinks {
            for s in sinks {
                if !known_sinks.contains(s) {
                    self.problem(&at("sinks"), format!("no sink named {s:?} is configured"));
                }
            }
        }
        let tags = self.strings(&at("tags"), &r.tags).unwrap_or_default();
        let url = url?;
        let name = match given_name {
            Some(n) => {
                if !valid_name(&n) {
                    self.problem(
                        &at("name"),
                        format!("{n:?}: feed names use letters, digits, '.', '-' and '_' only"),
                    );
                }
                if !names.insert(n.clone()) {
                    self.problem(&at("name"), format!("another feed is already named {n:?}"));
                }
                n
            }
            None => {
                let base = url
                    .host_str()
                    .unwrap_or("feed")
                    .trim_start_matches("www.")
                    .to_string();
                let mut candidate = base.clone();
                let mut n = 2;
                while names.contains(&candidate) {
                    candidate = format!("{base}-{n}");
                    n += 1;
                }
                names.insert(candidate.clone());
                candidate
            }
        };
        Some(Feed {
            name,
            url,
            interval,
            fetch_article,
            sinks: sinks.unwrap_or_else(|| {
                let mut all: Vec<String> = known_sinks.iter().map(|s| s.to_string()).collect();
                all.sort();
                all
            }),
            tags,
        })
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a table",
    }
}

/// Finds the line of a key path in the TOML text, for messages.
struct LineIndex {
    text: String,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        LineIndex {
            text: text.to_string(),
        }
    }

    fn line_of(&self, path: &str) -> Option<usize> {
        let doc = toml::de::DeTable::parse(&self.text).ok()?;
        let mut span = doc.span();
        let mut table = doc.get_ref();
        let mut current: Option<&toml::Spanned<toml::de::DeValue<'_>>> = None;
        // A missing key (a required one, or one set only from the environment) points at the
        // deepest part of its path that is in the file.
        for seg in split_path(path) {
            let next = match (seg, current) {
                (Seg::Key(k), None) => table.get(k),
                (Seg::Key(k), Some(v)) => v.get_ref().as_table().and_then(|t| t.get(k)),
                (Seg::Index(i), Some(v)) => v.get_ref().as_array().and_then(|a| a.get(i)),
                (Seg::Index(_), None) => None,
            };
            let Some(value) = next else { break };
            span = value.span();
            current = Some(value);
            if let Some(t) = value.get_ref().as_table() {
                table = t;
            }
        }
        current?;
        Some(
            self.text[..span.start.min(self.text.len())]
                .matches('\n')
                .count()
                + 1,
        )
    }
}

enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

fn split_path(path: &str) -> Vec<Seg<'_>> {
    // Split on dots outside double quotes: `hosts."a.com".min_delay` has three parts.
    let mut parts = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in path.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '.' if !quoted => {
                parts.push(&path[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&path[start..]);
    let mut out = Vec::new();
    for part in parts {
        if let Some(inner) = part.strip_prefix('"').and_then(|p| p.strip_suffix('"')) {
            out.push(Seg::Key(inner));
            continue;
        }
        let (key, rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
        if !key.is_empty() {
            out.push(Seg::Key(key));
        }
        for idx in rest.split('[') {
            if let Ok(i) = idx.trim_end_matches(']').parse() {
                out.push(Seg::Index(i));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Config, ConfigError> {
        parse(text, Path::new("test.toml"), &BTreeMap::new())
    }

    #[test]
    fn example_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/feedwire.toml");
        let config = load_with_env(&path, &BTreeMap::new()).expect("the example config is valid");
        assert!(!config.feeds.is_empty());
        assert!(config.sinks.contains_key("stdout"));
    }

    #[test]
    fn defaults_fill_an_empty_file() {
        let c = parse_str("").expect("empty config is valid");
        assert_eq!(c.poll.interval, Duration::from_secs(15 * 60));
        assert_eq!(c.poll.max_feed_size, 10 * 1024 * 1024);
        assert_eq!(c.daemon.per_host_connections, 2);
        assert_eq!(c.dedup.max_distance, 3);
        assert_eq!(c.poll.backfill, Backfill::All);
    }

    #[test]
    fn reports_every_problem_with_path_and_line() {
        let text = "[poll]\ninterval = \"soon\"\nmax_feed_size = \"lots\"\n\n[[feeds]]\nurl = \"ftp://x\"\nintervall = \"5m\"\n";
        let Err(ConfigError::Invalid { problems, .. }) = parse_str(text) else {
            panic!("config with mistakes must be rejected");
        };
        let paths: Vec<(&str, Option<usize>)> =
            problems.iter().map(|p| (p.path.as_str(), p.line)).collect();
        assert_eq!(
            paths,
            vec![
                ("poll.interval", Some(2)),
                ("poll.max_feed_size", Some(3)),
                ("feeds[0].url", Some(6)),
                ("feeds[0].intervall", Some(7)),
            ]
        );
    }

    #[test]
    fn environment_overrides_use_double_underscores() {
        let mut env = BTreeMap::new();
        env.insert("FEEDWIRE__POLL__INTERVAL".to_string(), "5m".to_string());
        env.insert(
            "FEEDWIRE__DAEMON__MAX_CONNECTIONS".to_string(),
            "8".to_string(),
        );
        env.insert("FEEDWIRE_CONFIG".to_string(), "ignored.toml".to_string());
        let c = parse("[poll]\ninterval = \"1h\"\n", Path::new("t.toml"), &env).expect("valid");
        assert_eq!(c.poll.interval, Duration::from_secs(300));
        assert_eq!(c.daemon.max_connections, 8);
    }

    #[test]
    fn feed_names_default_to_host_and_stay_unique() {
        let c = parse_str(
            "[[feeds]]\nurl = \"https://www.example.com/a.xml\"\n[[feeds]]\nurl = \"https://example.com/b.xml\"\n",
        )
        .expect("valid");
        let names: Vec<&str> = c.feeds.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, vec!["example.com", "example.com-2"]);
    }

    #[test]
    fn host_overrides_are_read_and_checked() {
        let c = parse_str(
            "[hosts.\"Example.com\"]\nmin_delay = \"2s\"\nuser_agent = \"me\"\nconnections = 1\n",
        )
        .expect("valid");
        let h = &c.hosts["example.com"];
        assert_eq!(
            (h.min_delay, h.user_agent.as_deref(), h.connections),
            (Duration::from_secs(2), Some("me"), Some(1))
        );
        let Err(ConfigError::Invalid { problems, .. }) =
            parse_str("[hosts.\"a.com\"]\nmin_delay = \"soon\"\ndelay = 1\n")
        else {
            panic!("must be rejected");
        };
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            vec!["hosts.\"a.com\".min_delay", "hosts.\"a.com\".delay"]
        );
    }

    #[test]
    fn sinks_are_checked_by_type() {
        let text = "[sinks.a]\ntype = \"log\"\nurl = \"http://x\"\n[sinks.b]\ntype = \"webhook\"\n[[feeds]]\nurl = \"http://e.com/f\"\nsinks = [\"c\"]\n";
        let Err(ConfigError::Invalid { problems, .. }) = parse_str(text) else {
            panic!("must be rejected");
        };
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, vec!["sinks.a.url", "sinks.b.url", "feeds[0].sinks"]);
    }
}
