//! The status page at `/`: feed health, recent items, dedup and delivery at a glance.
//!
//! Rendered on the server through minijinja, which escapes every value (feed titles, item
//! texts and error messages are hostile input); the page works without JavaScript, and
//! `assets/status.js` only adds sorting in place, a live text filter and an auto-refresh
//! that keeps the scroll position. Everything the browser loads is embedded in the binary
//! and served from here, under a `Content-Security-Policy` that allows nothing else.
//!
//! The feeds table is paged ([`FEEDS_PER_PAGE`]): the filter and sort run over every feed
//! on the server, only one page of rows is rendered.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, TimeZone, Timelike, Utc};
use serde::Serialize;

use crate::config::Config;
use crate::store::StoreError;
use crate::store::status::{FeedHealth, FeedRow, HourCount, Snapshot, SnapshotQuery};
use crate::store::{Reader, SinkState, Timestamp};

/// Feed rows rendered per page: the page stays fast with 10,000 feeds.
pub const FEEDS_PER_PAGE: usize = 100;
/// Recent items shown.
pub const RECENT_ITEMS: usize = 50;
/// Hours in the chart.
pub const CHART_HOURS: usize = 48;
/// Dead letters shown per sink (the CLI lists them all).
pub const DEAD_PER_SINK: usize = 20;
/// Characters of an item's text shown under its title.
const EXCERPT_CHARS: usize = 280;
/// Lines of an item's text shown under its title.
const EXCERPT_LINES: usize = 3;
/// Characters of an error message shown in a table cell (the whole one is in its tooltip).
const ERROR_CHARS: usize = 200;
/// How often the page refreshes itself when scripts run, in seconds.
const REFRESH_SECS: u32 = 30;

/// Nothing but this page's own embedded files: no inline script, no other origin.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

const TEMPLATE: &str = include_str!("assets/status.html");
const STYLE: &str = include_str!("assets/status.css");
const SCRIPT: &str = include_str!("assets/status.js");
const ICON: &str = include_str!("assets/favicon.svg");

/// What the page needs besides the store.
#[derive(Clone)]
pub struct StatusPage {
    reader: Reader,
    templates: Arc<minijinja::Environment<'static>>,
    started: Instant,
    node: String,
    /// What the page takes from the config; replaced on reload.
    shown: Arc<RwLock<Arc<Shown>>>,
    /// When set, the page answers only requests carrying it.
    token: Option<Arc<str>>,
}

/// The parts of the config the page shows.
struct Shown {
    /// Configured sinks, in name order.
    sinks: Vec<String>,
    /// Tags of each configured feed.
    tags: HashMap<String, Vec<String>>,
}

impl Shown {
    fn of(config: &Config) -> Shown {
        Shown {
            sinks: config.sinks.keys().cloned().collect(),
            tags: config
                .feeds
                .iter()
                .map(|f| (f.name.clone(), f.tags.clone()))
                .collect(),
        }
    }
}

/// Why the page could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("daemon.status_token_env: environment variable {0} is not set or empty")]
    MissingToken(String),
}

impl StatusPage {
    /// The page over the store's read-only side; reads its token, if one is configured.
    pub fn new(config: &Config, reader: Reader) -> Result<StatusPage, PageError> {
        let token = token(config)?;
        let mut env = minijinja::Environment::new();
        env.add_template("status.html", TEMPLATE)
            .expect("the embedded template is valid");
        Ok(StatusPage {
            reader,
            templates: Arc::new(env),
            started: Instant::now(),
            node: node_name(),
            shown: Arc::new(RwLock::new(Arc::new(Shown::of(config)))),
            token: token.map(Arc::from),
        })
    }

    /// Shows the sinks and tags of a reloaded config (the token and address stay until the
    /// next start, as `listen` does).
    pub fn reconfigure(&self, config: &Config) {
        let shown = Arc::new(Shown::of(config));
        *self.shown.write().unwrap_or_else(|p| p.into_inner()) = shown;
    }

    fn shown(&self) -> Arc<Shown> {
        // A poisoned lock only means a writer panicked between two whole values.
        self.shown.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Answers `/`: 401 without the token when one is configured.
    pub async fn respond(&self, query: Option<&str>, headers: &HeaderMap) -> Response {
        let params = Params::parse(query.unwrap_or(""));
        if let Some(token) = &self.token
            && !authorized(token, &params, headers)
        {
            return unauthorized();
        }
        let now = Utc::now();
        let snapshot = match self.snapshot_at(now).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "the status page cannot read the database");
                return page_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("the database cannot be read: {e}\n"),
                    "text/plain; charset=utf-8",
                );
            }
        };
        match self.render(&snapshot, &params, now) {
            Ok(html) => page_response(StatusCode::OK, html, "text/html; charset=utf-8"),
            Err(e) => {
                tracing::error!(error = %e, "the status page cannot be rendered");
                page_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the status page cannot be rendered\n".into(),
                    "text/plain; charset=utf-8",
                )
            }
        }
    }

    /// The page's HTML for a snapshot (public for the benchmark).
    pub fn render(
        &self,
        snapshot: &Snapshot,
        params: &Params,
        now: DateTime<Utc>,
    ) -> Result<String, minijinja::Error> {
        let view = View::build(self, snapshot, params, now);
        self.templates
            .get_template("status.html")
            .expect("the template was added at start")
            .render(&view)
    }

    /// Reads a snapshot as a page view does (public for the benchmark).
    pub async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        self.snapshot_at(Utc::now()).await
    }

    async fn snapshot_at(&self, now: DateTime<Utc>) -> Result<Snapshot, StoreError> {
        self.reader
            .status_snapshot(SnapshotQuery {
                now: Timestamp::from_datetime(now),
                today_start: today_start(now),
                hours: CHART_HOURS,
                recent: RECENT_ITEMS,
                sinks: self.shown().sinks.clone(),
                dead_per_sink: DEAD_PER_SINK,
            })
            .await
    }
}

/// The token from the variable `[daemon] status_token_env` names; an error when it is named
/// but unset, so a page meant to be closed never opens by mistake.
pub fn token(config: &Config) -> Result<Option<String>, PageError> {
    let Some(var) = &config.daemon.status_token_env else {
        return Ok(None);
    };
    match std::env::var(var) {
        Ok(t) if !t.trim().is_empty() => Ok(Some(t.trim().to_string())),
        _ => Err(PageError::MissingToken(var.clone())),
    }
}

/// Why `check` should warn about the status page: `listen` reachable from other hosts and no
/// token asked for.
pub fn exposure_warning(config: &Config) -> Option<String> {
    let addr = config.daemon.listen?;
    (!addr.ip().is_loopback() && config.daemon.status_token_env.is_none()).then(|| {
        format!(
            "daemon.listen = \"{addr}\" is reachable from other hosts and the status page has no token; \
             set daemon.status_token_env to the name of a variable holding one"
        )
    })
}

/// Serves the embedded stylesheet, script and icon.
pub fn asset(name: &str) -> Response {
    let (body, content_type) = match name {
        "status.css" => (STYLE, "text/css; charset=utf-8"),
        "status.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        "favicon.svg" => (ICON, "image/svg+xml"),
        _ => return (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
    };
    let mut response = (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "max-age=300"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response();
    security_headers(response.headers_mut());
    response
}

fn page_response(status: StatusCode, body: String, content_type: &'static str) -> Response {
    let mut response = (
        status,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response();
    security_headers(response.headers_mut());
    response
}

fn security_headers(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Links to articles must not carry a `?token=` to other sites.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

fn unauthorized() -> Response {
    let mut response = (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer realm=\"feedwire\"")],
        "a token is required: send it as `Authorization: Bearer …` or add ?token=…\n",
    )
        .into_response();
    security_headers(response.headers_mut());
    response
}

fn authorized(token: &str, params: &Params, headers: &HeaderMap) -> bool {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    [bearer, params.token.as_deref()]
        .into_iter()
        .flatten()
        .any(|given| same_secret(given.as_bytes(), token.as_bytes()))
}

/// Compares without stopping at the first difference, so timing tells nothing of the token.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn today_start(now: DateTime<Utc>) -> Timestamp {
    let midnight = now
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists in UTC");
    Timestamp::from_datetime(midnight.and_utc())
}

/// The node's name as other parts of feedwire will report it: host name and process id.
fn node_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}-{}", std::process::id())
}

// ---- the request --------------------------------------------------------------------------

/// How the feeds table is sorted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    #[default]
    Name,
    State,
    LastPoll,
    NextPoll,
    Errors,
    Rate,
}

impl SortKey {
    const ALL: [SortKey; 6] = [
        SortKey::Name,
        SortKey::State,
        SortKey::LastPoll,
        SortKey::NextPoll,
        SortKey::Errors,
        SortKey::Rate,
    ];

    fn as_str(self) -> &'static str {
        match self {
            SortKey::Name => "name",
            SortKey::State => "state",
            SortKey::LastPoll => "last_poll",
            SortKey::NextPoll => "next_poll",
            SortKey::Errors => "errors",
            SortKey::Rate => "rate",
        }
    }

    fn parse(s: &str) -> Option<SortKey> {
        SortKey::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// The page's query string: `state`, `tag`, `q`, `sort` (`-` first for descending), `page`,
/// `token`. Unknown or malformed values fall back to the defaults: a bad link still shows
/// the page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params {
    pub state: Option<FeedHealth>,
    pub tag: Option<String>,
    pub q: Option<String>,
    pub sort: SortKey,
    pub descending: bool,
    pub page: usize,
    pub token: Option<String>,
}

impl Params {
    pub fn parse(query: &str) -> Params {
        let mut p = Params::default();
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            let v = v.trim();
            match k.as_ref() {
                "state" => {
                    p.state = [
                        FeedHealth::Ok,
                        FeedHealth::Failing,
                        FeedHealth::Gone,
                        FeedHealth::New,
                    ]
                    .into_iter()
                    .find(|h| h.as_str() == v)
                }
                "tag" if !v.is_empty() => p.tag = Some(v.to_string()),
                "q" if !v.is_empty() => p.q = Some(v.to_string()),
                "sort" => {
                    let (desc, key) = match v.strip_prefix('-') {
                        Some(k) => (true, k),
                        None => (false, v),
                    };
                    if let Some(key) = SortKey::parse(key) {
                        p.sort = key;
                        p.descending = desc;
                    }
                }
                "page" => p.page = v.parse::<usize>().unwrap_or(1).saturating_sub(1),
                "token" if !v.is_empty() => p.token = Some(v.to_string()),
                _ => {}
            }
        }
        p
    }

    /// This query with some values changed, as `?…` for a link.
    fn link(&self, sort: Option<(SortKey, bool)>, page: Option<usize>) -> String {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        if let Some(state) = self.state {
            s.append_pair("state", state.as_str());
        }
        if let Some(tag) = &self.tag {
            s.append_pair("tag", tag);
        }
        if let Some(q) = &self.q {
            s.append_pair("q", q);
        }
        let (key, desc) = sort.unwrap_or((self.sort, self.descending));
        if key != SortKey::Name || desc {
            s.append_pair(
                "sort",
                &format!("{}{}", if desc { "-" } else { "" }, key.as_str()),
            );
        }
        let page = page.unwrap_or(self.page);
        if page > 0 {
            s.append_pair("page", &(page + 1).to_string());
        }
        if let Some(token) = &self.token {
            s.append_pair("token", token);
        }
        let query = s.finish();
        if query.is_empty() {
            "?".into()
        } else {
            format!("?{query}")
        }
    }
}

// ---- the view -----------------------------------------------------------------------------

/// Everything the template shows, already formatted; no value is marked safe.
#[derive(Serialize)]
struct View {
    version: &'static str,
    node: String,
    uptime: String,
    generated: String,
    refresh_secs: u32,
    counts: Counts,
    items_today: i64,
    /// Over the chart's window.
    stories: i64,
    items_48h: i64,
    duplicates_48h: i64,
    sinks: Vec<SinkView>,
    chart: Chart,
    feeds: FeedsView,
    recent: Vec<ItemView>,
    dead: Vec<DeadView>,
    /// Hidden input for forms when the token came in the query.
    token: Option<String>,
}

#[derive(Serialize, Default)]
struct Counts {
    all: usize,
    ok: usize,
    failing: usize,
    gone: usize,
    new: usize,
}

#[derive(Serialize)]
struct SinkView {
    name: String,
    /// `up` or `failing`.
    state: &'static str,
    detail: String,
    pending: i64,
    dead: i64,
    oldest: String,
    last_error: Option<String>,
}

#[derive(Serialize)]
struct FeedsView {
    rows: Vec<FeedView>,
    /// Feeds matching the filter, on every page.
    matching: usize,
    page: usize,
    pages: usize,
    prev: Option<String>,
    next: Option<String>,
    columns: Vec<Column>,
    state: Option<&'static str>,
    tag: Option<String>,
    q: Option<String>,
    tags: Vec<String>,
    states: Vec<StateOption>,
}

#[derive(Serialize)]
struct StateOption {
    value: &'static str,
    count: usize,
}

#[derive(Serialize)]
struct Column {
    key: &'static str,
    label: &'static str,
    href: String,
    /// `ascending`/`descending` for the column the table is sorted by.
    sorted: Option<&'static str>,
}

#[derive(Serialize)]
struct FeedView {
    name: String,
    title: Option<String>,
    url: String,
    href: Option<String>,
    state: &'static str,
    http_status: Option<u16>,
    tags: Vec<String>,
    last_poll: String,
    last_poll_at: Option<String>,
    last_poll_ms: i64,
    next_poll: String,
    next_poll_at: Option<String>,
    next_poll_ms: i64,
    reason: Option<String>,
    errors_in_row: u32,
    last_error: Option<String>,
    last_error_full: Option<String>,
    rate: String,
    rate_value: f64,
    search: String,
}

#[derive(Serialize)]
struct ItemView {
    id: String,
    title: String,
    href: Option<String>,
    feed: String,
    time: String,
    time_at: String,
    source: Option<String>,
    excerpt: Option<String>,
    duplicate: Option<DuplicateView>,
}

#[derive(Serialize)]
struct DuplicateView {
    /// An anchor on this page when the original is listed too.
    anchor: Option<String>,
    href: Option<String>,
    title: String,
    feed: String,
    reason: Option<String>,
}

#[derive(Serialize)]
struct DeadView {
    sink: String,
    title: String,
    attempts: u32,
    status: Option<u16>,
    error: Option<String>,
    when: String,
}

#[derive(Serialize)]
struct Chart {
    width: u32,
    height: u32,
    /// The plot's top (the largest hour) and its label.
    max: i64,
    bars: Vec<Bar>,
    ticks: Vec<Tick>,
    top: u32,
    baseline: u32,
}

#[derive(Serialize)]
struct Bar {
    x: u32,
    width: u32,
    new_y: u32,
    new_h: u32,
    dup_y: u32,
    dup_h: u32,
    label: String,
}

#[derive(Serialize)]
struct Tick {
    x: u32,
    label: String,
}

impl View {
    fn build(page: &StatusPage, s: &Snapshot, p: &Params, now: DateTime<Utc>) -> View {
        let now = Timestamp::from_datetime(now);
        let mut counts = Counts {
            all: s.feeds.len(),
            ..Counts::default()
        };
        for f in &s.feeds {
            match f.health {
                FeedHealth::Ok => counts.ok += 1,
                FeedHealth::Failing => counts.failing += 1,
                FeedHealth::Gone => counts.gone += 1,
                FeedHealth::New => counts.new += 1,
            }
        }
        let items_48h: i64 = s.hours.iter().map(|h| h.new + h.duplicate).sum();
        let duplicates_48h: i64 = s.hours.iter().map(|h| h.duplicate).sum();
        View {
            version: env!("CARGO_PKG_VERSION"),
            node: page.node.clone(),
            uptime: span(page.started.elapsed().as_secs() as i64),
            generated: utc(now),
            refresh_secs: REFRESH_SECS,
            items_today: s.items_today,
            stories: items_48h - duplicates_48h,
            items_48h,
            duplicates_48h,
            sinks: s
                .sinks
                .iter()
                .map(|k| {
                    // The worker's recorded health when there is one, else what the outbox shows.
                    let state = k.state.map_or(
                        if k.retrying > 0 { "failing" } else { "up" },
                        SinkState::as_str,
                    );
                    SinkView {
                        name: k.name.clone(),
                        state,
                        detail: match (k.state, k.until, k.next_retry_at) {
                            (Some(SinkState::Paused), Some(until), _) => {
                                format!("paused, next probe {}", relative(until, now))
                            }
                            (_, _, Some(at)) if k.retrying > 0 => format!(
                                "{} retrying, next attempt {}",
                                k.retrying,
                                relative(at, now)
                            ),
                            _ => String::new(),
                        },
                        pending: k.pending,
                        dead: k.dead,
                        oldest: k
                            .oldest_pending_at
                            .map(|t| relative(t, now))
                            .unwrap_or_default(),
                        last_error: k
                            .reason
                            .as_deref()
                            .or(k.last_error.as_deref())
                            .map(|e| shorten(&redact(e))),
                    }
                })
                .collect(),
            chart: chart(&s.hours),
            feeds: feeds_view(&page.shown().tags, &s.feeds, p, now, &counts),
            recent: items_view(s, now),
            dead: s
                .dead
                .iter()
                .map(|d| DeadView {
                    sink: d.sink.clone(),
                    title: d.title.clone(),
                    attempts: d.attempts,
                    status: d.last_status,
                    error: d.last_error.as_deref().map(|e| shorten(&redact(e))),
                    when: d.dead_at.map(|t| relative(t, now)).unwrap_or_default(),
                })
                .collect(),
            counts,
            token: p.token.clone(),
        }
    }
}

fn feeds_view(
    all_tags: &HashMap<String, Vec<String>>,
    feeds: &[FeedRow],
    p: &Params,
    now: Timestamp,
    counts: &Counts,
) -> FeedsView {
    let no_tags = Vec::new();
    let tags_of = |name: &str| all_tags.get(name).unwrap_or(&no_tags);
    let needle = p.q.as_ref().map(|q| q.to_lowercase());
    let mut matching: Vec<&FeedRow> = feeds
        .iter()
        .filter(|f| p.state.is_none_or(|s| f.health == s))
        .filter(|f| p.tag.as_ref().is_none_or(|t| tags_of(&f.name).contains(t)))
        .filter(|f| {
            needle.as_ref().is_none_or(|q| {
                f.name.to_lowercase().contains(q)
                    || f.url.to_lowercase().contains(q)
                    || f.title
                        .as_ref()
                        .is_some_and(|t| t.to_lowercase().contains(q))
            })
        })
        .collect();
    let health_rank = |h: FeedHealth| match h {
        FeedHealth::Failing => 0,
        FeedHealth::Gone => 1,
        FeedHealth::New => 2,
        FeedHealth::Ok => 3,
    };
    matching.sort_by(|a, b| {
        let order = match p.sort {
            SortKey::Name => a.name.cmp(&b.name),
            SortKey::State => health_rank(a.health).cmp(&health_rank(b.health)),
            SortKey::LastPoll => a.last_poll_at.cmp(&b.last_poll_at),
            SortKey::NextPoll => a.next_poll_at.cmp(&b.next_poll_at),
            SortKey::Errors => a.errors_in_row.cmp(&b.errors_in_row),
            SortKey::Rate => a
                .items_per_hour
                .unwrap_or(0.0)
                .total_cmp(&b.items_per_hour.unwrap_or(0.0)),
        };
        let order = order.then_with(|| a.name.cmp(&b.name));
        if p.descending { order.reverse() } else { order }
    });
    let pages = matching.len().div_ceil(FEEDS_PER_PAGE).max(1);
    let current = p.page.min(pages - 1);
    let rows = matching
        .iter()
        .skip(current * FEEDS_PER_PAGE)
        .take(FEEDS_PER_PAGE)
        .map(|f| feed_view(f, tags_of(&f.name), now))
        .collect();
    let columns = [
        (SortKey::Name, "feed"),
        (SortKey::State, "state"),
        (SortKey::LastPoll, "last poll"),
        (SortKey::NextPoll, "next poll"),
        (SortKey::Errors, "errors in a row"),
        (SortKey::Rate, "items a day"),
    ]
    .into_iter()
    .map(|(key, label)| {
        let sorted = p.sort == key;
        Column {
            key: key.as_str(),
            label,
            // A second click on the sorted column turns the order round.
            href: p.link(Some((key, sorted && !p.descending)), Some(0)),
            sorted: sorted.then_some(if p.descending {
                "descending"
            } else {
                "ascending"
            }),
        }
    })
    .collect();
    let tags: BTreeSet<&String> = all_tags.values().flatten().collect();
    FeedsView {
        rows,
        matching: matching.len(),
        page: current + 1,
        pages,
        prev: (current > 0).then(|| p.link(None, Some(current - 1))),
        next: (current + 1 < pages).then(|| p.link(None, Some(current + 1))),
        columns,
        state: p.state.map(FeedHealth::as_str),
        tag: p.tag.clone(),
        q: p.q.clone(),
        tags: tags.into_iter().cloned().collect(),
        states: vec![
            StateOption {
                value: "ok",
                count: counts.ok,
            },
            StateOption {
                value: "failing",
                count: counts.failing,
            },
            StateOption {
                value: "gone",
                count: counts.gone,
            },
            StateOption {
                value: "new",
                count: counts.new,
            },
        ],
    }
}

fn feed_view(f: &FeedRow, tags: &[String], now: Timestamp) -> FeedView {
    let url = display_url(&f.url);
    let per_day = f.items_per_hour.map(|r| r * 24.0);
    FeedView {
        search: format!(
            "{} {} {}",
            f.name.to_lowercase(),
            f.title.as_deref().unwrap_or("").to_lowercase(),
            url.to_lowercase()
        ),
        name: f.name.clone(),
        title: f.title.clone().filter(|t| t != &f.name),
        href: safe_href(&f.url),
        url,
        state: f.health.as_str(),
        http_status: f.http_status,
        tags: tags.to_vec(),
        last_poll: f
            .last_poll_at
            .map(|t| relative(t, now))
            .unwrap_or_else(|| "never".into()),
        last_poll_at: f.last_poll_at.map(utc),
        last_poll_ms: f.last_poll_at.map_or(0, Timestamp::as_millis),
        next_poll: match (f.health, f.next_poll_at) {
            (FeedHealth::Gone, _) => "never (gone)".into(),
            (_, Some(t)) => relative(t, now),
            (_, None) => "soon".into(),
        },
        next_poll_at: f
            .next_poll_at
            .filter(|_| f.health != FeedHealth::Gone)
            .map(utc),
        next_poll_ms: f.next_poll_at.unwrap_or(Timestamp::NEVER).as_millis(),
        reason: f.schedule_reason.clone(),
        errors_in_row: f.errors_in_row,
        last_error: f.last_error.as_deref().map(|e| shorten(&redact(e))),
        last_error_full: f.last_error.as_deref().map(redact),
        rate: per_day.map_or_else(|| "–".into(), |r| format!("{r:.1}")),
        rate_value: per_day.unwrap_or(0.0),
    }
}

fn items_view(s: &Snapshot, now: Timestamp) -> Vec<ItemView> {
    let listed: BTreeSet<&str> = s.recent.iter().map(|i| i.id.as_str()).collect();
    s.recent
        .iter()
        .map(|i| ItemView {
            id: i.id.clone(),
            title: i
                .title
                .clone()
                .filter(|t| !t.trim().is_empty())
                .unwrap_or_else(|| "(untitled)".into()),
            href: i.url.as_deref().and_then(safe_href),
            feed: i.feed.clone(),
            time: relative(i.created_at, now),
            time_at: utc(i.created_at),
            source: i.content_source.clone(),
            excerpt: i
                .payload
                .as_deref()
                .and_then(crate::sinks::payload::item_text)
                .map(|t| excerpt(&t))
                .filter(|t| !t.is_empty()),
            duplicate: i.duplicate_of.as_ref().map(|d| DuplicateView {
                anchor: listed
                    .contains(d.id.as_str())
                    .then(|| format!("#item-{}", d.id)),
                href: d.url.as_deref().and_then(safe_href),
                title: d
                    .title
                    .clone()
                    .filter(|t| !t.trim().is_empty())
                    .unwrap_or_else(|| "(untitled)".into()),
                feed: d.feed.clone(),
                reason: i.duplicate_reason.clone(),
            }),
        })
        .collect()
}

/// Chart geometry, in SVG user units.
const CHART_WIDTH: u32 = 960;
const CHART_HEIGHT: u32 = 180;
const CHART_TOP: u32 = 14;
const CHART_BOTTOM: u32 = 22;
const BAR_GAP: u32 = 2;
/// A labelled tick every this many hours.
const TICK_EVERY: u32 = 6;

fn chart(hours: &[HourCount]) -> Chart {
    let max = hours
        .iter()
        .map(|h| h.new + h.duplicate)
        .max()
        .unwrap_or(0)
        .max(1);
    let plot = CHART_HEIGHT - CHART_TOP - CHART_BOTTOM;
    let baseline = CHART_HEIGHT - CHART_BOTTOM;
    let slot = CHART_WIDTH / hours.len().max(1) as u32;
    let scale = |n: i64| ((n as f64 / max as f64) * plot as f64).round() as u32;
    let bars = hours
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let new_h = scale(h.new);
            let dup_h = scale(h.new + h.duplicate) - new_h;
            let start = datetime(h.start);
            let label = start.map_or_else(String::new, |s| s.format("%a %H:00").to_string());
            Bar {
                x: i as u32 * slot,
                width: slot - BAR_GAP,
                new_y: baseline - new_h,
                new_h,
                dup_y: baseline - new_h - dup_h,
                dup_h,
                label: format!(
                    "{label} UTC: {} new, {} duplicate{}",
                    h.new,
                    h.duplicate,
                    if h.duplicate == 1 { "" } else { "s" }
                ),
            }
        })
        .collect();
    let ticks = hours
        .iter()
        .enumerate()
        // Whole multiples of six hours, UTC.
        .filter(|(_, h)| datetime(h.start).is_some_and(|t| t.hour() % TICK_EVERY == 0))
        .map(|(i, h)| Tick {
            x: i as u32 * slot,
            label: datetime(h.start).map_or_else(String::new, |s| s.format("%H:00").to_string()),
        })
        .collect();
    Chart {
        width: CHART_WIDTH,
        height: CHART_HEIGHT,
        max,
        bars,
        ticks,
        top: CHART_TOP,
        baseline,
    }
}

// ---- formatting ---------------------------------------------------------------------------

fn datetime(t: Timestamp) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(t.as_millis()).single()
}

fn utc(t: Timestamp) -> String {
    datetime(t).map_or_else(String::new, |t| {
        t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
    })
}

/// "3m ago" or "in 5m".
fn relative(t: Timestamp, now: Timestamp) -> String {
    let secs = (now.as_millis() - t.as_millis()) / 1000;
    if secs >= 0 {
        format!("{} ago", span(secs))
    } else {
        format!("in {}", span(-secs))
    }
}

/// A short duration: "42s", "5m", "3h 2m", "2d 4h".
fn span(secs: i64) -> String {
    let (d, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m"),
        (0, _, 0) => format!("{h}h"),
        (0, _, _) => format!("{h}h {m}m"),
        (_, 0, _) => format!("{d}d"),
        _ => format!("{d}d {h}h"),
    }
}

/// Query parameters whose values are hidden in shown URLs: private feeds often carry their
/// credentials there (`?token=…`, `?api_key=…`).
const SECRET_PARAMS: &[&str] = &["token", "key", "secret", "pass", "auth", "sig", "session"];

/// A URL as shown: without user name and password, secret-looking query values hidden.
fn display_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) => {
            if !u.username().is_empty() || u.password().is_some() {
                // Both always succeed on URLs with a host, the only ones carrying userinfo.
                let _ = u.set_username("");
                let _ = u.set_password(None);
            }
            let secret = |k: &str| {
                let k = k.to_ascii_lowercase();
                SECRET_PARAMS.iter().any(|s| k.contains(s))
            };
            if u.query_pairs().any(|(k, _)| secret(&k)) {
                let pairs: Vec<(String, String)> = u
                    .query_pairs()
                    .map(|(k, v)| {
                        let v = if secret(&k) {
                            "***".into()
                        } else {
                            v.into_owned()
                        };
                        (k.into_owned(), v)
                    })
                    .collect();
                u.query_pairs_mut().clear().extend_pairs(pairs);
            }
            u.to_string()
        }
        Err(_) => redact(raw),
    }
}

/// A link target, only for http(s) URLs (never `javascript:` and the like), without userinfo.
fn safe_href(raw: &str) -> Option<String> {
    let u = url::Url::parse(raw).ok()?;
    matches!(u.scheme(), "http" | "https").then(|| display_url(raw))
}

/// Removes the userinfo of every URL inside a message (`scheme://user:pass@host` → `scheme://host`).
fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let authority_end = tail
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace() || c == '"')
            .unwrap_or(tail.len());
        let authority = &tail[..authority_end];
        match authority.rfind('@') {
            Some(i) => out.push_str(&authority[i + 1..]),
            None => out.push_str(authority),
        }
        rest = &tail[authority_end..];
    }
    out.push_str(rest);
    out
}

fn shorten(s: &str) -> String {
    cut(s, ERROR_CHARS)
}

/// At most `max` characters, cut at a word when there is one near, with an ellipsis.
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let head: String = s.chars().take(max).collect();
    let at = head.rfind(char::is_whitespace).filter(|&i| i > max / 2);
    format!("{}…", head[..at.unwrap_or(head.len())].trim_end())
}

/// The first lines of an item's text.
fn excerpt(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(EXCERPT_LINES)
        .collect();
    cut(&lines.join(" "), EXCERPT_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_never_shown() {
        assert_eq!(
            display_url("https://reader:s3cret@example.com/feed.xml"),
            "https://example.com/feed.xml"
        );
        assert_eq!(
            redact("error sending request for url (https://u:p@example.com/x): timed out"),
            "error sending request for url (https://example.com/x): timed out"
        );
        assert_eq!(redact("no url here"), "no url here");
        assert_eq!(
            display_url("https://example.com/feed?user=me&api_key=abc123&Token=x"),
            "https://example.com/feed?user=me&api_key=***&Token=***"
        );
    }

    #[test]
    fn only_web_links_are_links() {
        assert_eq!(safe_href("javascript:alert(1)"), None);
        assert_eq!(safe_href("data:text/html,x"), None);
        assert_eq!(
            safe_href("https://a:b@example.com/x").as_deref(),
            Some("https://example.com/x")
        );
    }

    #[test]
    fn query_round_trips_through_links() {
        let p = Params::parse("state=failing&tag=news&sort=-errors&page=3&token=t%26x&x=1");
        assert_eq!(p.state, Some(FeedHealth::Failing));
        assert_eq!(p.sort, SortKey::Errors);
        assert!(p.descending);
        assert_eq!(p.page, 2);
        assert_eq!(Params::parse(&p.link(None, None)[1..]), p);
        // A malformed value falls back to the default.
        assert_eq!(Params::parse("page=zero&sort=bogus"), Params::default());
    }

    fn feed(i: usize, health: FeedHealth) -> FeedRow {
        FeedRow {
            name: format!("feed-{i:03}"),
            url: format!("https://example.com/{i}.xml"),
            title: None,
            health,
            http_status: None,
            last_poll_at: None,
            next_poll_at: None,
            schedule_reason: None,
            errors_in_row: (i % 5) as u32,
            last_error: None,
            items_per_hour: None,
        }
    }

    #[test]
    fn feeds_are_filtered_sorted_and_paged_over_all_feeds() {
        let feeds: Vec<FeedRow> = (0..250)
            .map(|i| {
                feed(
                    i,
                    if i % 10 == 0 {
                        FeedHealth::Failing
                    } else {
                        FeedHealth::Ok
                    },
                )
            })
            .collect();
        let tags: HashMap<String, Vec<String>> = (0..250)
            .filter(|i| i % 2 == 0)
            .map(|i| (format!("feed-{i:03}"), vec!["even".to_string()]))
            .collect();
        let counts = Counts::default();
        let view = |q: &str| {
            feeds_view(
                &tags,
                &feeds,
                &Params::parse(q),
                Timestamp::from_millis(0),
                &counts,
            )
        };

        let all = view("");
        assert_eq!(
            (all.matching, all.pages, all.rows.len()),
            (250, 3, FEEDS_PER_PAGE)
        );
        let last = view("page=3");
        assert_eq!(last.rows.len(), 50);
        assert_eq!(last.rows[0].name, "feed-200");
        assert!(last.next.is_none() && last.prev.as_deref() == Some("?page=2"));
        // A page past the end shows the last one.
        assert_eq!(view("page=99").page, 3);

        let failing = view("state=failing&tag=even&sort=-name");
        assert_eq!(failing.matching, 25);
        assert_eq!(failing.rows[0].name, "feed-240");
        assert!(failing.rows.iter().all(|r| r.state == "failing"));
        // The sorted column's link turns the order round, and keeps the filter.
        let name = &failing.columns[0];
        assert_eq!(name.sorted, Some("descending"));
        assert_eq!(name.href, "?state=failing&tag=even");

        let most_errors = view("sort=-errors");
        assert_eq!(most_errors.rows[0].errors_in_row, 4);
        assert_eq!(view("q=FEED-01").matching, 10);
    }

    #[test]
    fn chart_stacks_duplicates_on_new_items() {
        let mut hours: Vec<HourCount> = (0..CHART_HOURS as i64)
            .map(|i| HourCount {
                start: Timestamp::from_millis(i * 3_600_000),
                new: 0,
                duplicate: 0,
            })
            .collect();
        hours[47].new = 2;
        hours[47].duplicate = 1;
        hours[10].new = 1;
        let c = chart(&hours);
        let plot = CHART_HEIGHT - CHART_TOP - CHART_BOTTOM;
        assert_eq!((c.max, c.bars.len()), (3, CHART_HOURS));
        let b = &c.bars[47];
        assert_eq!(b.new_h + b.dup_h, plot);
        assert_eq!(b.new_y, c.baseline - b.new_h);
        assert_eq!(b.dup_y + b.dup_h, b.new_y);
        assert_eq!(c.bars[10].new_h, (plot as f64 / 3.0).round() as u32);
        assert_eq!(c.bars[0].new_h + c.bars[0].dup_h, 0);
        assert!(b.label.ends_with("2 new, 1 duplicate"), "{}", b.label);
        // Ticks at 00:00, 06:00, 12:00 and 18:00 UTC.
        assert_eq!(c.ticks.len(), 8);
        assert_eq!(c.ticks[1].label, "06:00");
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
    }

    #[test]
    fn spans_and_excerpts_read_well() {
        assert_eq!(span(42), "42s");
        assert_eq!(span(3 * 3600 + 120), "3h 2m");
        assert_eq!(span(2 * 86_400 + 4 * 3600), "2d 4h");
        assert_eq!(
            excerpt("\n  First line.\n\nSecond.\nThird.\nFourth."),
            "First line. Second. Third."
        );
        let long = "word ".repeat(100);
        assert!(excerpt(&long).chars().count() <= EXCERPT_CHARS + 1);
    }
}
