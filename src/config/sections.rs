//! One function per section of the file: its keys read from a [`Table`], defaults from
//! [`defaults`](super::defaults), and the checks that span several keys.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use super::defaults as d;
use super::read::{
    DurationOrZero, Events, Flag, HttpUrl, Int, List, Listen, Size, Strings, Table, Text,
};
use super::{
    Article, Backfill, Config, Daemon, Dedup, Feed, Host, LogFormat, LogPath, Poll, SecretSource,
    Sink, SinkKind, WebSub, Webhook,
};
use crate::model::EventType;
use crate::sinks::presets;

pub(super) fn config(root: &Table<'_>) -> Config {
    let daemon = daemon(&root.table("daemon"));
    let poll = poll(&root.table("poll"));
    let article = article(&root.table("article"));
    let dedup = dedup(&root.table("dedup"));
    let mut sinks = BTreeMap::new();
    let entries = root.entries("sinks");
    let sink_names: BTreeSet<String> = entries.iter().map(|(n, _)| n.to_string()).collect();
    for (name, t) in &entries {
        if let Some(sink) = sink(name, t) {
            sinks.insert(name.to_string(), sink);
        }
    }
    let mut feeds = Vec::new();
    let mut names = HashSet::new();
    // Most feeds reach their origin the same way ([poll]'s defaults): they share one copy.
    let mut common_access: Option<std::sync::Arc<super::FeedAccess>> = None;
    for t in root.array("feeds") {
        if let Some(mut f) = feed(&t, &sinks, &sink_names, &poll, &article, &mut names) {
            match &common_access {
                Some(common) if *common == f.access => f.access = common.clone(),
                Some(_) => {}
                None => common_access = Some(f.access.clone()),
            }
            if f.websub == Some(true) && !root.has("websub") {
                t.problem(
                    "websub",
                    "needs a [websub] section with the callback hubs reach this daemon at",
                );
            }
            feeds.push(std::sync::Arc::new(f));
        }
    }
    let feed_names: BTreeSet<String> = feeds.iter().map(|f| f.name.clone()).collect();
    for (name, sink) in &sinks {
        for f in &sink.feeds {
            if !feed_names.contains(f) {
                root.problem(
                    &format!("sinks.{name}.feeds"),
                    format!("no feed named {f:?} is configured"),
                );
            }
        }
    }
    let rules = super::rules::rules(&root.array("rules"), &feed_names, &sink_names);
    let mut hosts = BTreeMap::new();
    for (name, t) in root.entries("hosts") {
        if name.is_empty() || name.contains(['/', ':', ' ', '"']) {
            t.problem_here("use a bare host name, like \"example.com\"");
        }
        hosts.insert(name.to_ascii_lowercase(), host(&t));
    }
    let websub = root
        .has("websub")
        .then(|| websub(&root.table("websub"), &daemon))
        .flatten();
    let store = store(&root.table("store"), websub.is_some());
    root.finish();
    Config {
        store,
        websub,
        daemon,
        poll,
        article,
        dedup,
        sinks,
        feeds,
        hosts,
        rules,
    }
}

fn daemon(t: &Table<'_>) -> Daemon {
    let state_dir = t
        .get::<Text>("state_dir")
        .unwrap_or_else(|| d::STATE_DIR.into());
    if state_dir.trim().is_empty() {
        t.problem("state_dir", "must not be empty");
    }
    let user_agent = t
        .get::<Text>("user_agent")
        .unwrap_or_else(|| d::USER_AGENT.into());
    if !single_line(&user_agent) {
        t.problem("user_agent", "must be a non-empty single line");
    }
    let max_connections = t
        .get::<Int<1, 100_000>>("max_connections")
        .map_or(d::MAX_CONNECTIONS, |n| n as usize);
    let per_host_connections = t
        .get::<Int<1, 1_000>>("per_host_connections")
        .map_or(d::PER_HOST_CONNECTIONS, |n| n as usize);
    if per_host_connections > max_connections {
        t.problem(
            "per_host_connections",
            format!(
                "{per_host_connections} is more than daemon.max_connections ({max_connections})"
            ),
        );
    }
    let daemon = Daemon {
        state_dir: PathBuf::from(state_dir),
        user_agent,
        max_connections,
        per_host_connections,
        listen: t.get::<Listen>("listen").flatten(),
        log_format: t.get::<LogFormat>("log_format").unwrap_or(LogFormat::Auto),
        shutdown_grace: t
            .get::<Duration>("shutdown_grace")
            .unwrap_or(d::SHUTDOWN_GRACE),
        status_token_env: t
            .get::<Text>("status_token_env")
            .filter(|v| !v.trim().is_empty()),
        proxy: t.get::<super::ProxyUrl>("proxy"),
        no_proxy: super::NoProxy::new(t.get::<Strings>("no_proxy").unwrap_or_default()),
    };
    if daemon.proxy.is_none() && !daemon.no_proxy.entries().is_empty() {
        t.problem("no_proxy", "has no effect without daemon.proxy");
    }
    t.finish();
    daemon
}

fn poll(t: &Table<'_>) -> Poll {
    let poll = Poll {
        interval: t.get::<Duration>("interval").unwrap_or(d::POLL_INTERVAL),
        min_interval: t
            .get::<Duration>("min_interval")
            .unwrap_or(d::POLL_MIN_INTERVAL),
        max_interval: t
            .get::<Duration>("max_interval")
            .unwrap_or(d::POLL_MAX_INTERVAL),
        timeout: t.get::<Duration>("timeout").unwrap_or(d::POLL_TIMEOUT),
        max_feed_size: t.get::<Size>("max_feed_size").unwrap_or(d::MAX_FEED_SIZE),
        backfill: t.get::<Backfill>("backfill").unwrap_or(Backfill::All),
        max_item_age: t.get::<Duration>("max_item_age"),
        access: super::access::access(t, None),
    };
    if poll.min_interval > poll.max_interval {
        t.problem(
            "min_interval",
            format!(
                "{} is longer than poll.max_interval ({})",
                humantime::format_duration(poll.min_interval),
                humantime::format_duration(poll.max_interval)
            ),
        );
    }
    t.finish();
    poll
}

fn article(t: &Table<'_>) -> Article {
    let article = Article {
        fetch: t.get::<Flag>("fetch").unwrap_or(d::ARTICLE_FETCH),
        timeout: t.get::<Duration>("timeout").unwrap_or(d::ARTICLE_TIMEOUT),
        max_page_size: t.get::<Size>("max_page_size").unwrap_or(d::MAX_PAGE_SIZE),
        allowed_networks: t.get::<List<IpNet>>("allowed_networks").unwrap_or_default(),
    };
    t.finish();
    article
}

/// What an old config with the SimHash distance is told.
const MAX_DISTANCE_GONE: &str = "is no longer a setting: near-duplicates are now found by \
    shingle overlap at thresholds measured on a labelled corpus (see the README, \
    Deduplication); remove the line, `near_duplicates = false` turns them off";

fn dedup(t: &Table<'_>) -> Dedup {
    // Read (so it is not also called unknown) only to say what replaced it.
    if t.value("max_distance").is_some() {
        t.problem("max_distance", MAX_DISTANCE_GONE);
    }
    let dedup = Dedup {
        near_duplicates: t
            .get::<Flag>("near_duplicates")
            .unwrap_or(d::NEAR_DUPLICATES),
        window: t.get::<Duration>("window").unwrap_or(d::DEDUP_WINDOW),
        retention: t.get::<Duration>("retention").unwrap_or(d::RETENTION),
    };
    t.finish();
    dedup
}

/// The sink types, as the messages list them.
const SINK_TYPES: &str = "\"log\", \"webhook\", \"nats\", \"amqp\", \"slack\", \"discord\", \"telegram\", \"ntfy\" or \"matrix\"";

fn sink(name: &str, t: &Table<'_>) -> Option<Sink> {
    if !valid_name(name) {
        t.problem_here("sink names use letters, digits, '-' and '_' only");
    }
    let events = t
        .get::<Events>("events")
        .unwrap_or_else(|| vec![EventType::ItemNew]);
    let feeds = t.get::<Strings>("feeds").unwrap_or_default();
    let tags = t.get::<Strings>("tags").unwrap_or_default();
    let probe_interval = t
        .get::<Duration>("probe_interval")
        .unwrap_or(d::SINK_PROBE_INTERVAL);
    let kind = match t.get::<Text>("type").as_deref() {
        Some("log") => {
            let path = match t.get::<Text>("path").as_deref() {
                None | Some("-") => LogPath::Stdout,
                Some("") => {
                    t.problem("path", "must be \"-\" (standard output) or a file path");
                    LogPath::Stdout
                }
                Some(p) => LogPath::File(PathBuf::from(p)),
            };
            t.finish_with("not a setting of a log sink");
            SinkKind::Log { path }
        }
        Some("webhook") => {
            let webhook = webhook(t);
            t.finish_with("not a setting of a webhook sink");
            SinkKind::Webhook(webhook?)
        }
        Some(kind) if presets::KINDS.contains(&kind) => {
            let preset = super::presets::preset(kind, t);
            t.finish_with(&format!("not a setting of a {kind} sink"));
            SinkKind::Preset(preset?)
        }
        Some("nats") => {
            let nats = super::queues::nats(t);
            t.finish_with("not a setting of a nats sink");
            SinkKind::Nats(nats?)
        }
        Some("amqp") => {
            let amqp = super::queues::amqp(t);
            t.finish_with("not a setting of an amqp sink");
            SinkKind::Amqp(amqp?)
        }
        Some(other) => {
            t.problem(
                "type",
                format!("unknown sink type {other:?}; use {SINK_TYPES}"),
            );
            return None;
        }
        None => {
            if !t.has("type") {
                t.problem("type", format!("a sink needs a type: {SINK_TYPES}"));
            }
            return None;
        }
    };
    Some(Sink {
        name: name.to_string(),
        kind,
        events,
        feeds,
        tags,
        probe_interval,
    })
}

fn webhook(t: &Table<'_>) -> Option<Webhook> {
    let url = t.get::<HttpUrl>("url");
    if !t.has("url") {
        t.problem("url", "a webhook sink needs a url");
    }
    let secret = match (t.get::<Text>("secret_env"), t.get::<Text>("secret_file")) {
        (Some(_), Some(_)) => {
            t.problem(
                "secret_file",
                "give either secret_env or secret_file, not both",
            );
            None
        }
        (Some(var), None) => Some(SecretSource::Env(var)),
        (None, Some(file)) => Some(SecretSource::File(PathBuf::from(file))),
        (None, None) => None,
    };
    let webhook = Webhook {
        url: url?,
        secret,
        timeout: t.get::<Duration>("timeout").unwrap_or(d::WEBHOOK_TIMEOUT),
        max_attempts: t
            .get::<Int<1, 1_000>>("max_attempts")
            .map_or(d::WEBHOOK_MAX_ATTEMPTS, |n| n as u32),
        max_age: t.get::<Duration>("max_age").unwrap_or(d::WEBHOOK_MAX_AGE),
        concurrency: t
            .get::<Int<1, 256>>("concurrency")
            .map_or(d::WEBHOOK_CONCURRENCY, |n| n as usize),
        retry_schedule: t
            .get::<List<Duration>>("retry_schedule")
            .unwrap_or_default(),
        template: None,
        content_type: t
            .get::<Text>("content_type")
            .unwrap_or_else(|| d::TEMPLATE_CONTENT_TYPE.into()),
        headers: super::presets::headers(t),
    };
    let template = super::presets::template(t, &webhook.content_type);
    Some(Webhook {
        template,
        ..webhook
    })
}

fn feed(
    t: &Table<'_>,
    sinks_by_name: &BTreeMap<String, Sink>,
    known_sinks: &BTreeSet<String>,
    poll: &Poll,
    article: &Article,
    names: &mut HashSet<String>,
) -> Option<Feed> {
    let url = t.get::<HttpUrl>("url");
    if !t.has("url") {
        t.problem("url", "a feed needs a url");
    }
    let given_name = t.get::<Text>("name");
    let interval = t.get::<Duration>("interval");
    let fetch_article = t.get::<Flag>("fetch_article").unwrap_or(article.fetch);
    let sinks = t.get::<Strings>("sinks");
    for s in sinks.iter().flatten() {
        if !known_sinks.contains(s) {
            t.problem("sinks", format!("no sink named {s:?} is configured"));
        }
    }
    let tags = t.get::<Strings>("tags").unwrap_or_default();
    let backfill = t.get::<Backfill>("backfill").unwrap_or(poll.backfill);
    let max_item_age = t.get::<Duration>("max_item_age").or(poll.max_item_age);
    let websub = t.get::<Flag>("websub");
    let mut access = super::access::access(t, Some(&poll.access));
    t.finish();
    let mut url = url?;
    // Never kept in the URL, which logs, reports and payloads show; `check` warns about it.
    access.in_url = super::access::take_userinfo(&mut url, t.path_of("url"));
    super::access::check_article_auth(t, &access);
    let name = match given_name {
        Some(n) => {
            if !valid_name(&n) {
                t.problem(
                    "name",
                    format!("{n:?}: feed names use letters, digits, '.', '-' and '_' only"),
                );
            }
            if !names.insert(n.clone()) {
                t.problem("name", format!("another feed is already named {n:?}"));
            }
            n
        }
        None => derived_name(&url, names),
    };
    // A sink that selects feeds (`feeds` / `tags`) takes only those.
    let selects = |s: &String| {
        sinks_by_name
            .get(s)
            .is_none_or(|sink| sink.selects(&name, &tags))
    };
    let sinks = match sinks {
        Some(listed) => {
            for s in listed.iter().filter(|s| !selects(s)) {
                t.problem(
                    "sinks",
                    format!("sink {s:?} does not take this feed (see its feeds and tags)"),
                );
            }
            listed
        }
        // A feed that names no sinks goes to every sink that takes it.
        None => known_sinks.iter().filter(|s| selects(s)).cloned().collect(),
    };
    Some(Feed {
        name,
        url,
        interval,
        fetch_article,
        sinks,
        tags,
        backfill,
        max_item_age,
        websub,
        access: std::sync::Arc::new(access),
    })
}

/// A feed's name when it gives none: its host without `www.`, numbered when taken.
fn derived_name(url: &url::Url, names: &mut HashSet<String>) -> String {
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

/// `[websub]`: the callback is served on `[daemon] listen`, so it needs one.
fn websub(t: &Table<'_>, daemon: &Daemon) -> Option<WebSub> {
    let callback = t.get::<HttpUrl>("callback");
    if !t.has("callback") {
        t.problem(
            "callback",
            "[websub] needs a callback: the public URL hubs reach this daemon at, like \"https://feedwire.example.com/websub\"",
        );
    }
    let lease = t.get::<Duration>("lease");
    if daemon.listen.is_none() && t.has("callback") {
        t.problem(
            "callback",
            "is served on [daemon] listen, which is not set: set daemon.listen (the address the callback's requests reach)",
        );
    }
    if let Some(c) = &callback
        && (c.query().is_some() || c.fragment().is_some())
    {
        t.problem("callback", "must have no query or fragment");
    }
    t.finish();
    Some(WebSub {
        callback: callback?,
        lease,
    })
}

/// `[store]`: `backend`, and for PostgreSQL where to connect (never inline: the string may
/// hold a password), the pool, the node's name and the lease.
fn store(t: &Table<'_>, websub: bool) -> super::StoreConfig {
    let backend = t.get::<Text>("backend");
    match backend.as_deref() {
        None | Some("sqlite") => {
            for key in ["url_env", "url_file", "pool_size", "node", "lease"] {
                if t.has(key) {
                    t.problem(key, "is for store.backend = \"postgres\"");
                }
            }
            let _ = (t.get::<Text>("url_env"), t.get::<Text>("url_file"));
            let _ = (t.get::<Int<1, 1_000>>("pool_size"), t.get::<Text>("node"));
            let _ = t.get::<Duration>("lease");
            t.finish();
            return super::StoreConfig::Sqlite;
        }
        Some("postgres") => {
            if websub {
                t.problem(
                    "backend",
                    "[websub] is not available with the postgres store yet: remove [websub], or use the sqlite store",
                );
            }
        }
        Some(other) => {
            t.problem(
                "backend",
                format!("{other:?} is not a store: use \"sqlite\" or \"postgres\""),
            );
            t.finish();
            return super::StoreConfig::Sqlite;
        }
    }
    if t.get::<Text>("url").is_some() {
        t.problem(
            "url",
            "a connection string is a secret: give url_env (a variable holding it) or url_file",
        );
    }
    let url = match (t.get::<Text>("url_env"), t.get::<Text>("url_file")) {
        (Some(_), Some(_)) => {
            t.problem("url_file", "give either url_env or url_file, not both");
            None
        }
        (Some(var), None) => Some((SecretSource::Env(var), t.path_of("url_env"))),
        (None, Some(file)) => Some((
            SecretSource::File(PathBuf::from(file)),
            t.path_of("url_file"),
        )),
        (None, None) => {
            if !t.has("url") {
                t.problem_here(
                    "store.backend = \"postgres\" needs url_env (a variable holding the connection string) or url_file",
                );
            }
            None
        }
    };
    let node = t.get::<Text>("node");
    if let Some(n) = &node
        && (n.trim().is_empty() || !single_line(n))
    {
        t.problem("node", "must be a non-empty single line");
    }
    let pool_size = t
        .get::<Int<1, 1_000>>("pool_size")
        .map_or(d::STORE_POOL_SIZE, |n| n as usize);
    let lease = t.get::<Duration>("lease").unwrap_or(d::STORE_LEASE);
    if lease < Duration::from_secs(2) {
        t.problem("lease", "must be at least 2s");
    }
    t.finish();
    // Without a connection string the problem above fails the config.
    let Some((url, url_key)) = url else {
        return super::StoreConfig::Sqlite;
    };
    super::StoreConfig::Postgres(super::PostgresStore {
        url,
        url_key,
        pool_size,
        node,
        lease,
    })
}

fn host(t: &Table<'_>) -> Host {
    let host = Host {
        connections: t.get::<Int<1, 1_000>>("connections").map(|n| n as usize),
        min_delay: t.get::<DurationOrZero>("min_delay").unwrap_or_default(),
        user_agent: t.get::<Text>("user_agent"),
    };
    if host
        .user_agent
        .as_deref()
        .is_some_and(|ua| !single_line(ua))
    {
        t.problem("user_agent", "must be a non-empty single line");
    }
    t.finish();
    host
}

fn single_line(s: &str) -> bool {
    !s.trim().is_empty() && !s.contains(['\r', '\n'])
}

pub(super) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
}
