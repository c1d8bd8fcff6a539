//! The WebSub subscriber (W3C Recommendation, 2018): a feed that advertises a hub is
//! subscribed to, the hub's verification of intent is answered, and content distributions
//! whose signature holds are handed to the poll stage as if a poll had read them.
//!
//! The rules are pure functions at the top of the module (discovery, signatures, the answer
//! to a verification, when a lease is renewed, what a poll's schedule becomes while a hub
//! pushes); [`Subscriber`] below keeps the subscriptions (in memory for the endpoint, in the
//! store for restarts), sends the hub requests and watches the leases.
//!
//! A subscription's state: `pending` (asked, not verified), `active` until its lease ends,
//! `failed` with the reason (the hub refused, denied, never verified, or went away), or
//! `unsubscribing` (the feed left the config). Polling goes on at `max_interval` while a
//! subscription is active; when it fails or its lease runs out the feed is polled again at
//! once and then on its normal schedule.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use rand::Rng;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::config::{self, Config};
use crate::model::Timestamp;
use crate::scheduler::Command;
use crate::store::{PollRecord, PollStatus, Store};

/// Distributions and verifications accepted per second on the callback, across hubs.
pub const CALLBACK_RATE: f64 = 20.0;
/// Requests the callback accepts at once before the rate applies.
pub const CALLBACK_BURST: f64 = 60.0;
/// A lease is renewed when this share of it is left.
pub const RENEW_SHARE: u32 = 5;
/// Leases and unanswered subscriptions are looked at least this often, and at each deadline.
pub const LEASE_CHECK: Duration = Duration::from_secs(1);
/// A subscription the hub did not verify in this long has failed.
pub const VERIFY_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// After a failure, the hub a feed still advertises is asked again after this long.
pub const RETRY_AFTER: Duration = Duration::from_secs(3600);
/// How long a hub may take to answer a (un)subscription request.
pub const HUB_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest reason kept from a hub's answer.
const REASON_MAX: usize = 200;

// ---- discovery ---------------------------------------------------------------------------------

/// Where a feed says it is pushed from: its hub and its topic (self) URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    pub hub: Url,
    /// The feed's `rel="self"` URL; else the URL it was fetched from.
    pub topic: Url,
}

/// The hub and self links of a feed, from the HTTP `Link` header first (the spec's order),
/// then the document: Atom `<link rel="hub">`, RSS `<atom:link rel="hub">`, JSON Feed `hubs`.
pub fn discover(body: &[u8], link_header: Option<&str>, fetched_from: &Url) -> Option<Discovery> {
    let (mut hub, mut topic) = link_header.map(links_in_header).unwrap_or_default();
    if hub.is_none() || topic.is_none() {
        let (doc_hub, doc_self) = links_in_document(body);
        hub = hub.or(doc_hub);
        topic = topic.or(doc_self);
    }
    let hub = fetched_from.join(hub?.trim()).ok()?;
    if !matches!(hub.scheme(), "http" | "https") {
        return None;
    }
    let topic = topic
        .and_then(|t| fetched_from.join(t.trim()).ok())
        .filter(|t| matches!(t.scheme(), "http" | "https"))
        .unwrap_or_else(|| fetched_from.clone());
    Some(Discovery { hub, topic })
}

/// `<https://hub.example/>; rel="hub", <https://example.com/feed>; rel="self"`.
fn links_in_header(value: &str) -> (Option<String>, Option<String>) {
    let (mut hub, mut this) = (None, None);
    for link in value.split(',') {
        let mut parts = link.split(';');
        let Some(target) = parts.next().map(str::trim) else {
            continue;
        };
        let Some(target) = target.strip_prefix('<').and_then(|t| t.strip_suffix('>')) else {
            continue;
        };
        for param in parts {
            let Some((k, v)) = param.split_once('=') else {
                continue;
            };
            if !k.trim().eq_ignore_ascii_case("rel") {
                continue;
            }
            for rel in v.trim().trim_matches('"').split_ascii_whitespace() {
                if rel.eq_ignore_ascii_case("hub") && hub.is_none() {
                    hub = Some(target.to_string());
                } else if rel.eq_ignore_ascii_case("self") && this.is_none() {
                    this = Some(target.to_string());
                }
            }
        }
    }
    (hub, this)
}

/// The feed-level hub and self links of an XML or JSON feed document.
fn links_in_document(body: &[u8]) -> (Option<String>, Option<String>) {
    let start = body.iter().position(|b| !b.is_ascii_whitespace());
    if start.is_some_and(|i| body[i] == b'{') {
        return links_in_json(body);
    }
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(body);
    reader.config_mut().check_end_names = false;
    let (mut hub, mut this) = (None, None);
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) => {
                let name = e.local_name();
                let name = name.as_ref();
                // Links inside entries are the entries' own.
                if name == "entry" || name == "item" {
                    break;
                }
                if name == "link" {
                    let (mut rel, mut href) = (None, None);
                    for a in e.attributes().flatten() {
                        let value = unescape(&a.value);
                        match a.key.local_name().as_ref() {
                            "rel" => rel = Some(value),
                            "href" => href = Some(value),
                            _ => {}
                        }
                    }
                    if let (Some(rel), Some(href)) = (rel, href) {
                        for r in rel.split_ascii_whitespace() {
                            if r.eq_ignore_ascii_case("hub") && hub.is_none() {
                                hub = Some(href.clone());
                            } else if r.eq_ignore_ascii_case("self") && this.is_none() {
                                this = Some(href.clone());
                            }
                        }
                    }
                }
            }
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => {}
        }
        buf.clear();
    }
    (hub, this)
}

/// The few entities an attribute holding a URL uses.
fn unescape(s: &str) -> String {
    s.replace("&amp;", "&")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
}

/// JSON Feed: `"hubs": [{"type": "WebSub", "url": …}]` and `"feed_url"`.
fn links_in_json(body: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return (None, None);
    };
    let hub = v["hubs"].as_array().and_then(|hubs| {
        hubs.iter()
            .find(|h| {
                h["type"]
                    .as_str()
                    .is_some_and(|t| t.eq_ignore_ascii_case("websub"))
            })
            .and_then(|h| h["url"].as_str().map(String::from))
    });
    (hub, v["feed_url"].as_str().map(String::from))
}

/// Whether WebSub applies to this feed: not turned off, and a callback configured.
pub fn wanted(config: &Config, feed: &config::Feed) -> bool {
    config.websub.is_some() && feed.websub != Some(false)
}

// ---- signatures --------------------------------------------------------------------------------

/// Why a content distribution was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no X-Hub-Signature header")]
    Missing,
    #[error("X-Hub-Signature is not METHOD=HEX")]
    Malformed,
    #[error("X-Hub-Signature method {0:?} is not sha1, sha256, sha384 or sha512")]
    Method(String),
    #[error("X-Hub-Signature does not match the body")]
    Mismatch,
}

/// Checks `X-Hub-Signature: METHOD=HEX` (the HMAC of `body` with `secret`); the comparison
/// takes the same time wherever the bytes differ.
pub fn verify_signature(
    header: Option<&str>,
    secret: &[u8],
    body: &[u8],
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let (method, hex) = header
        .trim()
        .split_once('=')
        .ok_or(SignatureError::Malformed)?;
    let expected = decode_hex(hex.trim()).ok_or(SignatureError::Malformed)?;
    fn check<M: Mac + hmac::digest::KeyInit>(
        secret: &[u8],
        body: &[u8],
        expected: &[u8],
    ) -> Result<(), SignatureError> {
        let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(secret)
            .map_err(|_| SignatureError::Mismatch)?;
        mac.update(body);
        mac.verify_slice(expected)
            .map_err(|_| SignatureError::Mismatch)
    }
    match method.trim().to_ascii_lowercase().as_str() {
        "sha1" => check::<Hmac<sha1::Sha1>>(secret, body, &expected),
        "sha256" => check::<Hmac<sha2::Sha256>>(secret, body, &expected),
        "sha384" => check::<Hmac<sha2::Sha384>>(secret, body, &expected),
        "sha512" => check::<Hmac<sha2::Sha512>>(secret, body, &expected),
        other => Err(SignatureError::Method(other.to_string())),
    }
}

/// The `X-Hub-Signature` a hub sends with `body` (the hub's side of
/// [`verify_signature`]): `sha256=` and the HMAC in lower-case hex. For local hubs in tests
/// and tools.
pub fn sha256_signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = <Hmac<sha2::Sha256> as hmac::digest::KeyInit>::new_from_slice(secret)
        .expect("HMAC takes a key of any length");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn random_hex(bytes: usize) -> String {
    let mut rng = rand::rng();
    (0..bytes)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

// ---- subscriptions -----------------------------------------------------------------------------

/// Where a subscription is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubState {
    /// Asked for; the hub has not verified it yet.
    Pending,
    /// Verified; the hub pushes until the lease ends.
    Active { until: Timestamp },
    /// The hub refused, denied, never verified, or went away.
    Failed { reason: String, at: Timestamp },
    /// The feed left the config: an unsubscription awaits the hub's verification.
    Unsubscribing,
}

impl SubState {
    pub fn as_str(&self) -> &'static str {
        match self {
            SubState::Pending => "pending",
            SubState::Active { .. } => "active",
            SubState::Failed { .. } => "failed",
            SubState::Unsubscribing => "unsubscribing",
        }
    }

    /// As `feedwire feeds` shows it: "pending", "active until …", "failed: reason".
    pub fn describe(&self) -> String {
        match self {
            SubState::Active { until } => format!(
                "active until {}",
                until.to_rfc3339().unwrap_or_else(|| "-".into())
            ),
            SubState::Failed { reason, .. } => format!("failed: {reason}"),
            other => other.as_str().to_string(),
        }
    }
}

/// One feed's subscription at its hub.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    pub feed_id: i64,
    /// The last segment of the callback path: which subscription a request is for.
    pub token: String,
    pub hub: Url,
    pub topic: Url,
    /// The key distributions are signed with; made here, given to the hub once.
    pub secret: String,
    pub state: SubState,
    /// A subscription request (first or renewal) awaits the hub's verification.
    pub awaiting: bool,
    /// The lease the hub granted.
    pub lease: Option<Duration>,
    pub updated_at: Timestamp,
}

impl Subscription {
    /// A new subscription to `found`, with a fresh path token and secret.
    pub fn new(feed_id: i64, found: &Discovery, now: Timestamp) -> Subscription {
        Subscription {
            feed_id,
            token: random_hex(16),
            hub: found.hub.clone(),
            topic: found.topic.clone(),
            secret: random_hex(32),
            state: SubState::Pending,
            awaiting: true,
            lease: None,
            updated_at: now,
        }
    }

    /// When the lease is renewed: with a fifth of it left.
    pub fn renew_at(&self) -> Option<Timestamp> {
        match (&self.state, self.lease) {
            (SubState::Active { until }, Some(lease)) => Some(until.before(lease / RENEW_SHARE)),
            _ => None,
        }
    }
}

/// What a poll or a verification asks of the subscription of a feed that advertises `found`.
pub fn needs_subscribe(current: Option<&Subscription>, found: &Discovery, now: Timestamp) -> bool {
    match current {
        None => true,
        Some(s) if s.hub != found.hub || s.topic != found.topic => {
            !s.awaiting && s.state != SubState::Unsubscribing
        }
        Some(Subscription {
            state: SubState::Failed { at, .. },
            ..
        }) => now.since(*at) >= RETRY_AFTER,
        Some(_) => false,
    }
}

/// A verification of intent, from the query of the hub's GET.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    Subscribe {
        topic: String,
        challenge: String,
        lease: Option<Duration>,
    },
    Unsubscribe {
        topic: String,
        challenge: String,
    },
    /// The hub refused the subscription (it may do so at any time).
    Denied {
        topic: String,
        reason: Option<String>,
    },
}

impl Verification {
    /// Reads `hub.mode`, `hub.topic`, `hub.challenge`, `hub.lease_seconds`, `hub.reason`.
    pub fn from_query(query: &str) -> Option<Verification> {
        let mut q: HashMap<String, String> = HashMap::new();
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            q.entry(k.into_owned()).or_insert_with(|| v.into_owned());
        }
        let topic = q.remove("hub.topic")?;
        match q.get("hub.mode").map(String::as_str) {
            Some("subscribe") => Some(Verification::Subscribe {
                topic,
                challenge: q.remove("hub.challenge")?,
                lease: q
                    .get("hub.lease_seconds")
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .map(Duration::from_secs),
            }),
            Some("unsubscribe") => Some(Verification::Unsubscribe {
                topic,
                challenge: q.remove("hub.challenge")?,
            }),
            Some("denied") => Some(Verification::Denied {
                topic,
                reason: q.remove("hub.reason"),
            }),
            _ => None,
        }
    }

    fn topic(&self) -> &str {
        match self {
            Verification::Subscribe { topic, .. }
            | Verification::Unsubscribe { topic, .. }
            | Verification::Denied { topic, .. } => topic,
        }
    }
}

/// The answer to a verification, and what becomes of the subscription.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// 200 with the challenge: the subscription is now `Some` (or deleted when `None`).
    Confirm {
        challenge: String,
        then: Option<Subscription>,
    },
    /// 200 without a body: the hub denied; the subscription has failed.
    Denied(Subscription),
    /// 404: not a request of ours (unknown path, another topic, a mode we did not ask for).
    NotOurs,
}

/// Whether `v` confirms what `sub` asked for: only a request of ours, awaiting verification,
/// for the same topic and mode, gets its challenge echoed.
pub fn verdict(sub: &Subscription, v: &Verification, now: Timestamp) -> Verdict {
    if v.topic() != sub.topic.as_str() {
        return Verdict::NotOurs;
    }
    match v {
        Verification::Subscribe {
            challenge, lease, ..
        } if sub.awaiting && sub.state != SubState::Unsubscribing => {
            // A hub that names no lease gives one it does not tell; assume a day, renewed at
            // four fifths like any other.
            let lease = lease.unwrap_or(DEFAULT_LEASE).max(MIN_LEASE);
            Verdict::Confirm {
                challenge: challenge.clone(),
                then: Some(Subscription {
                    state: SubState::Active {
                        until: now.after(lease),
                    },
                    awaiting: false,
                    lease: Some(lease),
                    updated_at: now,
                    ..sub.clone()
                }),
            }
        }
        Verification::Unsubscribe { challenge, .. } if sub.state == SubState::Unsubscribing => {
            Verdict::Confirm {
                challenge: challenge.clone(),
                then: None,
            }
        }
        Verification::Denied { reason, .. } if sub.state != SubState::Unsubscribing => {
            let reason = reason
                .as_deref()
                .map(|r| format!("the hub denied the subscription: {}", clip(r)))
                .unwrap_or_else(|| "the hub denied the subscription".to_string());
            Verdict::Denied(Subscription {
                state: SubState::Failed { reason, at: now },
                awaiting: false,
                updated_at: now,
                ..sub.clone()
            })
        }
        _ => Verdict::NotOurs,
    }
}

/// The lease assumed when a hub's verification names none.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(24 * 3600);
/// A lease shorter than this is taken as this long, so renewals cannot spin.
pub const MIN_LEASE: Duration = Duration::from_secs(1);

fn clip(s: &str) -> String {
    let s: String = s.chars().filter(|c| !c.is_control()).collect();
    match s.char_indices().nth(REASON_MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}

/// How long the lease watcher sleeps: until the next renewal, lease end or verification
/// deadline of `subs`, at most [`LEASE_CHECK`] (subscriptions made meanwhile are seen then).
pub fn next_check<'a>(subs: impl Iterator<Item = &'a Subscription>, now: Timestamp) -> Duration {
    subs.filter_map(|s| match s.state {
        SubState::Active { until } if s.awaiting => Some(until),
        SubState::Active { until } => s.renew_at().map(|r| r.min(until)),
        SubState::Pending => Some(s.updated_at.after(VERIFY_TIMEOUT)),
        _ => None,
    })
    .map(|at| now.until(at))
    .fold(LEASE_CHECK, Duration::min)
    .max(LEASE_CHECK_MIN)
}

/// The shortest sleep of the lease watcher, so that a deadline just passed cannot spin it.
const LEASE_CHECK_MIN: Duration = Duration::from_millis(10);

/// A poll of a feed whose hub pushes: the next poll is the safety net, `max_interval` away.
pub fn safety_net(
    record: &mut PollRecord,
    poll: &config::Poll,
    jitter: impl Fn(Duration) -> Duration,
) {
    if matches!(record.status, PollStatus::Ok | PollStatus::NotModified) {
        record.next_poll_at = record.at.after(jitter(poll.max_interval));
        record.reason = Some(format!(
            "pushed by its WebSub hub; polled every {} as the safety net",
            humantime::format_duration(poll.max_interval)
        ));
    }
}

// ---- the subscriber ----------------------------------------------------------------------------

/// Why a request to a hub failed.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("{0}")]
    Refused(String),
    #[error("the hub did not answer: {0}")]
    Transport(String),
    /// `said` is empty or `": "` and what the hub's body said.
    #[error("the hub answered HTTP {status}{said}")]
    Status { status: u16, said: String },
}

/// Subscriptions by feed and by path token; the store keeps them across restarts.
#[derive(Default)]
struct Book {
    by_feed: HashMap<i64, Subscription>,
    by_token: HashMap<String, i64>,
}

impl Book {
    fn put(&mut self, sub: Subscription) {
        if let Some(old) = self.by_feed.get(&sub.feed_id)
            && old.token != sub.token
        {
            self.by_token.remove(&old.token);
        }
        self.by_token.insert(sub.token.clone(), sub.feed_id);
        self.by_feed.insert(sub.feed_id, sub);
    }

    fn remove(&mut self, feed_id: i64) {
        if let Some(old) = self.by_feed.remove(&feed_id) {
            self.by_token.remove(&old.token);
        }
    }
}

/// What the callback endpoint hands on: a distribution whose signature holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Distribution {
    pub feed_id: i64,
    pub body: Vec<u8>,
    pub content_type: Option<String>,
}

/// How the callback endpoint answers one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// 200 with this body (a challenge, or empty).
    Ok(String),
    /// 202: the distribution goes to the poll stage.
    Accepted,
    NotFound,
    /// 403: unsigned or wrongly signed; nothing changed.
    Forbidden(String),
    /// 429: over the callback's rate.
    TooMany,
    /// 503: the scheduler's queue is full; the hub retries.
    Busy,
}

/// The subscriber: its subscriptions, the hub client, the callback's rate limit.
pub struct Subscriber {
    book: Mutex<Book>,
    store: Store,
    client: reqwest::Client,
    /// Hubs advertised inside feeds are not trusted more than article links: the address
    /// policy applies to them too.
    allowed_networks: Vec<ipnet::IpNet>,
    callback: Url,
    lease: Option<Duration>,
    /// Distributions and fallbacks go to the scheduler, which owns the feeds.
    scheduler: mpsc::Sender<Command>,
    /// (tokens, last refill) of the callback's token bucket.
    bucket: Mutex<(f64, Instant)>,
    metrics: Arc<crate::telemetry::Metrics>,
}

impl Subscriber {
    /// The subscriber of `config` (which has `[websub]`), with the subscriptions stored.
    pub async fn start(
        config: &Config,
        settings: &config::WebSub,
        store: Store,
        scheduler: mpsc::Sender<Command>,
        metrics: Arc<crate::telemetry::Metrics>,
    ) -> anyhow::Result<Arc<Subscriber>> {
        crate::fetch::install_crypto_provider();
        let mut client = reqwest::Client::builder()
            .user_agent(config.daemon.user_agent.clone())
            .timeout(HUB_TIMEOUT)
            // A redirect could lead past the address policy.
            .redirect(reqwest::redirect::Policy::none())
            // Proxies come only from the config, as for every other request.
            .no_proxy();
        if let Some(proxy) = &config.daemon.proxy {
            // Hubs are reached the way out the daemon is given, but for `no_proxy` hosts.
            let (url, no_proxy) = (proxy.url().clone(), config.daemon.no_proxy.clone());
            client = client.proxy(reqwest::Proxy::custom(move |u| {
                (!no_proxy.matches(u.host_str().unwrap_or_default())).then(|| url.clone())
            }));
        }
        let client = client.build()?;
        let mut book = Book::default();
        for sub in store.websub_subscriptions().await? {
            book.put(sub);
        }
        Ok(Arc::new(Subscriber {
            book: Mutex::new(book),
            store,
            client,
            allowed_networks: config.article.allowed_networks.clone(),
            callback: settings.callback.clone(),
            lease: settings.lease,
            scheduler,
            bucket: Mutex::new((CALLBACK_BURST, Instant::now())),
            metrics,
        }))
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the feed's hub pushes to us now (so polling is only the safety net).
    pub fn is_active(&self, feed_id: i64) -> bool {
        self.book()
            .by_feed
            .get(&feed_id)
            .is_some_and(|s| matches!(s.state, SubState::Active { .. }))
    }

    /// The callback path the endpoint serves: subscriptions live below it.
    pub fn callback_path(&self) -> String {
        self.callback.path().trim_end_matches('/').to_string()
    }

    fn callback_for(&self, token: &str) -> String {
        format!("{}/{token}", self.callback.as_str().trim_end_matches('/'))
    }

    /// A poll read `found` in feed `feed_id`: subscribe when there is no subscription yet,
    /// the hub or topic changed, or the last one failed long enough ago.
    pub fn advertised(self: &Arc<Self>, feed_id: i64, feed: &str, found: Discovery) {
        let now = Timestamp::now();
        let sub = {
            let mut book = self.book();
            if !needs_subscribe(book.by_feed.get(&feed_id), &found, now) {
                return;
            }
            let sub = Subscription::new(feed_id, &found, now);
            book.put(sub.clone());
            sub
        };
        tracing::info!(feed = %feed, hub = %sub.hub, topic = %sub.topic, "subscribing at the feed's WebSub hub");
        let this = self.clone();
        tokio::spawn(async move { this.subscribe(sub).await });
    }

    /// Sends a subscription request (first or renewal) for `sub`, which is already in the
    /// book, awaiting verification.
    async fn subscribe(self: Arc<Self>, sub: Subscription) {
        // Stored before the request: a hub may verify before it answers.
        self.save(&sub).await;
        let mut form = vec![
            ("hub.mode", "subscribe".to_string()),
            ("hub.topic", sub.topic.to_string()),
            ("hub.callback", self.callback_for(&sub.token)),
            ("hub.secret", sub.secret.clone()),
        ];
        if let Some(lease) = self.lease {
            form.push(("hub.lease_seconds", lease.as_secs().to_string()));
        }
        if let Err(e) = self.request(&sub.hub, &form).await {
            tracing::warn!(feed_id = sub.feed_id, hub = %sub.hub, error = %e, "WebSub subscription failed; the feed is polled as before");
            self.fail(sub.feed_id, &sub.token, format!("subscribing failed: {e}"))
                .await;
        }
    }

    /// Marks the subscription `token` of `feed_id` failed (when it is still that one) and,
    /// when the hub was pushing, has the feed polled at once.
    async fn fail(&self, feed_id: i64, token: &str, reason: String) {
        let now = Timestamp::now();
        let failed = {
            let mut book = self.book();
            let Some(current) = book.by_feed.get(&feed_id).filter(|s| s.token == token) else {
                return;
            };
            let failed = Subscription {
                state: SubState::Failed { reason, at: now },
                awaiting: false,
                updated_at: now,
                ..current.clone()
            };
            book.put(failed.clone());
            failed
        };
        self.save(&failed).await;
        self.poll_soon(feed_id);
    }

    fn poll_soon(&self, feed_id: i64) {
        // Full only under a burst of commands; the feed is then polled on its schedule.
        let _ = self.scheduler.try_send(Command::PollSoon { feed: feed_id });
    }

    async fn request(&self, hub: &Url, form: &[(&str, String)]) -> Result<(), HubError> {
        crate::fetch::check_url(hub, &self.allowed_networks)
            .map_err(|r| HubError::Refused(r.to_string()))?;
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let response = self
            .client
            .post(hub.clone())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
            .send()
            .await
            .map_err(|e| HubError::Transport(e.to_string()))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        let said = match body.trim() {
            "" => String::new(),
            text => format!(": {}", clip(text)),
        };
        Err(HubError::Status {
            status: status.as_u16(),
            said,
        })
    }

    async fn save(&self, sub: &Subscription) {
        if let Err(e) = self.store.websub_save(sub.clone()).await {
            tracing::error!(feed_id = sub.feed_id, error = %e, "cannot store a WebSub subscription; it is asked again after a restart");
        }
    }

    /// The feeds now configured: subscriptions of the others (removed, or `websub = false`)
    /// are ended at their hub.
    pub async fn configure(self: &Arc<Self>, config: &Config, feeds: &[(i64, String)]) {
        let wanted: HashSet<i64> = feeds
            .iter()
            .filter(|(_, name)| config.feed(name).is_some_and(|f| wanted(config, f)))
            .map(|(id, _)| *id)
            .collect();
        let ending: Vec<Subscription> = self
            .book()
            .by_feed
            .values()
            .filter(|s| !wanted.contains(&s.feed_id) && s.state != SubState::Unsubscribing)
            .cloned()
            .collect();
        for sub in ending {
            let this = self.clone();
            tokio::spawn(async move { this.unsubscribe(sub).await });
        }
    }

    async fn unsubscribe(self: Arc<Self>, sub: Subscription) {
        if matches!(sub.state, SubState::Failed { .. }) {
            // Nothing to end at the hub.
            self.book().remove(sub.feed_id);
            if let Err(e) = self.store.websub_delete(sub.feed_id).await {
                tracing::warn!(feed_id = sub.feed_id, error = %e, "cannot forget a WebSub subscription");
            }
            return;
        }
        let ending = Subscription {
            state: SubState::Unsubscribing,
            awaiting: true,
            updated_at: Timestamp::now(),
            ..sub
        };
        self.book().put(ending.clone());
        self.save(&ending).await;
        tracing::info!(feed_id = ending.feed_id, hub = %ending.hub, "unsubscribing: the feed left the config");
        let form = [
            ("hub.mode", "unsubscribe".to_string()),
            ("hub.topic", ending.topic.to_string()),
            ("hub.callback", self.callback_for(&ending.token)),
        ];
        if let Err(e) = self.request(&ending.hub, &form).await {
            // The lease ends on its own; the distributions it brings meanwhile get 404.
            tracing::warn!(feed_id = ending.feed_id, hub = %ending.hub, error = %e, "WebSub unsubscription failed; forgotten anyway");
            self.book().remove(ending.feed_id);
            let _ = self.store.websub_delete(ending.feed_id).await;
        }
    }

    /// Renews leases with a fifth left, fails subscriptions whose lease ran out or that the
    /// hub never verified; until `stop`.
    pub async fn watch(self: Arc<Self>, stop: CancellationToken) {
        loop {
            let wait = {
                let book = self.book();
                next_check(book.by_feed.values(), Timestamp::now())
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.cancelled() => return,
            }
            let now = Timestamp::now();
            let (mut renew, mut expired, mut unverified) = (Vec::new(), Vec::new(), Vec::new());
            {
                let mut book = self.book();
                let subs: Vec<Subscription> = book.by_feed.values().cloned().collect();
                for s in subs {
                    match s.state {
                        SubState::Active { until } if until <= now => expired.push(s),
                        SubState::Active { .. }
                            if !s.awaiting && s.renew_at().is_some_and(|t| t <= now) =>
                        {
                            let renewing = Subscription {
                                awaiting: true,
                                updated_at: now,
                                ..s
                            };
                            book.put(renewing.clone());
                            renew.push(renewing);
                        }
                        SubState::Pending if now.since(s.updated_at) >= VERIFY_TIMEOUT => {
                            unverified.push(s)
                        }
                        _ => {}
                    }
                }
            }
            for s in renew {
                tracing::debug!(feed_id = s.feed_id, hub = %s.hub, "renewing the WebSub lease");
                tokio::spawn(self.clone().subscribe(s));
            }
            for s in expired {
                tracing::warn!(feed_id = s.feed_id, hub = %s.hub, "the WebSub lease ran out without a renewal; the feed is polled as before");
                self.fail(
                    s.feed_id,
                    &s.token,
                    "the lease ran out without a renewal".into(),
                )
                .await;
            }
            for s in unverified {
                self.fail(
                    s.feed_id,
                    &s.token,
                    "the hub never verified the subscription".into(),
                )
                .await;
            }
        }
    }

    /// Takes one request from the rate limit; false when over it.
    fn admit(&self) -> bool {
        let mut b = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        b.0 = (b.0 + now.duration_since(b.1).as_secs_f64() * CALLBACK_RATE).min(CALLBACK_BURST);
        b.1 = now;
        if b.0 >= 1.0 {
            b.0 -= 1.0;
            true
        } else {
            false
        }
    }

    /// The hub's verification of intent (a GET on the subscription's path).
    pub async fn verify(&self, token: &str, query: &str) -> Reply {
        let reply = self.answer_verification(token, query).await;
        self.metrics.websub(match &reply {
            Reply::Ok(challenge) if challenge.is_empty() => "denied",
            Reply::Ok(_) => "verified",
            Reply::TooMany => "rate_limited",
            _ => "not_ours",
        });
        reply
    }

    async fn answer_verification(&self, token: &str, query: &str) -> Reply {
        if !self.admit() {
            return Reply::TooMany;
        }
        let Some(v) = Verification::from_query(query) else {
            return Reply::NotFound;
        };
        let now = Timestamp::now();
        let (verdict, was_active, feed_id) = {
            let mut book = self.book();
            let Some(sub) = book.by_token.get(token).and_then(|id| book.by_feed.get(id)) else {
                return Reply::NotFound;
            };
            let (was_active, feed_id) = (matches!(sub.state, SubState::Active { .. }), sub.feed_id);
            let verdict = verdict(sub, &v, now);
            match &verdict {
                Verdict::Confirm { then: Some(s), .. } | Verdict::Denied(s) => book.put(s.clone()),
                Verdict::Confirm { then: None, .. } => book.remove(feed_id),
                Verdict::NotOurs => {}
            }
            (verdict, was_active, feed_id)
        };
        match verdict {
            Verdict::Confirm {
                challenge,
                then: Some(sub),
            } => {
                tracing::info!(feed_id = sub.feed_id, hub = %sub.hub, state = %sub.state.describe(), "WebSub subscription verified");
                self.save(&sub).await;
                Reply::Ok(challenge)
            }
            Verdict::Confirm {
                challenge,
                then: None,
            } => {
                tracing::info!(feed_id, "WebSub unsubscription verified");
                if let Err(e) = self.store.websub_delete(feed_id).await {
                    tracing::warn!(feed_id, error = %e, "cannot forget a WebSub subscription");
                }
                Reply::Ok(challenge)
            }
            Verdict::Denied(sub) => {
                tracing::warn!(feed_id = sub.feed_id, hub = %sub.hub, state = %sub.state.describe(), "WebSub subscription denied; the feed is polled as before");
                self.save(&sub).await;
                if was_active {
                    self.poll_soon(sub.feed_id);
                }
                Reply::Ok(String::new())
            }
            Verdict::NotOurs => Reply::NotFound,
        }
    }

    /// A content distribution (a POST on the subscription's path); `body` is already capped.
    pub fn distribute(
        &self,
        token: &str,
        signature: Option<&str>,
        content_type: Option<String>,
        body: Vec<u8>,
    ) -> Reply {
        let reply = self.take_distribution(token, signature, content_type, body);
        self.metrics.websub(match &reply {
            Reply::Accepted => "accepted",
            Reply::Forbidden(_) => "rejected",
            Reply::TooMany => "rate_limited",
            Reply::Busy => "busy",
            _ => "not_ours",
        });
        reply
    }

    fn take_distribution(
        &self,
        token: &str,
        signature: Option<&str>,
        content_type: Option<String>,
        body: Vec<u8>,
    ) -> Reply {
        if !self.admit() {
            return Reply::TooMany;
        }
        let (feed_id, secret) = {
            let book = self.book();
            let Some(sub) = book.by_token.get(token).and_then(|id| book.by_feed.get(id)) else {
                return Reply::NotFound;
            };
            if !matches!(sub.state, SubState::Active { .. }) {
                return Reply::NotFound;
            }
            (sub.feed_id, sub.secret.clone())
        };
        if let Err(e) = verify_signature(signature, secret.as_bytes(), &body) {
            tracing::warn!(feed_id, error = %e, "WebSub distribution rejected");
            return Reply::Forbidden(e.to_string());
        }
        let distribution = Distribution {
            feed_id,
            body,
            content_type,
        };
        match self.scheduler.try_send(Command::Pushed(distribution)) {
            Ok(()) => Reply::Accepted,
            Err(_) => Reply::Busy,
        }
    }
}

#[cfg(test)]
mod tests;
