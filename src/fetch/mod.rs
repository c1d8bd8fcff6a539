//! The one HTTP client: conditional GET, whole-request deadlines, bodies capped after
//! decompression, and in-flight limits for all hosts and per origin.

mod access;
mod limits;
mod policy;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipnet::IpNet;

use reqwest::header::{self, HeaderMap, HeaderValue};
use url::Url;

pub use access::{Access, AccessError, auth_failed};
pub use limits::HostLimiter;
pub use policy::{Refused, check_url, refusal};

use crate::config::{NoProxy, ProxyUrl};

/// The longest pause a host's `Retry-After` can impose.
pub const MAX_HOST_PAUSE: Duration = Duration::from_secs(6 * 3600);
/// The pause after a 429 that gives no `Retry-After`.
pub const DEFAULT_429_PAUSE: Duration = Duration::from_secs(60);

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// Redirects followed for one request.
pub const MAX_REDIRECTS: usize = 5;
/// Deadline for a TCP (and TLS) connection, inside the whole-request deadline.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle keep-alive connections are closed after this long.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Validators from the previous answer, for a conditional GET.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Fetched {
    /// 304: nothing changed since the validators were issued.
    NotModified {
        validators: Validators,
        /// How long the publisher says the answer stays fresh (Cache-Control, Expires).
        fresh_for: Option<Duration>,
    },
    Body(Box<Body>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Body {
    pub status: u16,
    /// The URL after redirects.
    pub url: Url,
    pub content_type: Option<String>,
    /// `Content-Location`: the base of a feed's relative links when it declares none.
    pub content_location: Option<String>,
    pub validators: Validators,
    /// Decompressed bytes, at most the cap given to [`HttpClient::get`].
    pub bytes: Vec<u8>,
    /// Where a feed lives now, when every redirect on the way was permanent (301/308).
    pub moved_to: Option<Url>,
    /// How long the publisher says the answer stays fresh (Cache-Control, Expires).
    pub fresh_for: Option<Duration>,
    /// The `Link` header, where a feed may advertise its WebSub hub.
    pub link: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("no answer within {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    #[error("body is larger than the {0}-byte limit")]
    TooLarge(u64),
    #[error("HTTP status {status}")]
    Status {
        status: u16,
        retry_after: Option<Duration>,
    },
    #[error("{0}")]
    Transport(String),
    /// The origin answered 429/503 with `Retry-After` (to this or an earlier request): no
    /// request goes there before `until` (ms since the epoch).
    #[error("the host asked to wait until {}", rfc3339(*until))]
    HostPaused { until: i64 },
    /// A redirect the client did not follow itself (feeds follow theirs hop by hop).
    #[error("HTTP status {status} to {location}")]
    Redirect { status: u16, location: String },
    /// The address policy refused the URL or where it resolves or redirects to.
    #[error("{0}")]
    Refused(String),
}

impl FetchError {
    /// The HTTP status, when the server answered with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            FetchError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Settings of the client.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub user_agent: String,
    /// Networks exempt from the address policy for article URLs.
    pub allowed_networks: Vec<IpNet>,
    /// `[hosts."name"]` politeness rules.
    pub hosts: std::collections::BTreeMap<String, crate::config::Host>,
    pub max_connections: usize,
    pub per_host_connections: usize,
    /// `[daemon] proxy`, for every request but to `no_proxy` hosts and feeds with their own.
    pub proxy: Option<ProxyUrl>,
    pub no_proxy: NoProxy,
}

impl ClientSettings {
    /// The settings a config asks for.
    pub fn of(config: &crate::config::Config) -> ClientSettings {
        ClientSettings {
            hosts: config.hosts.clone(),
            allowed_networks: config.article.allowed_networks.clone(),
            user_agent: config.daemon.user_agent.clone(),
            max_connections: config.daemon.max_connections,
            per_host_connections: config.daemon.per_host_connections,
            proxy: config.daemon.proxy.clone(),
            no_proxy: config.daemon.no_proxy.clone(),
        }
    }
}

/// The clients of one way out: direct (or `[daemon] proxy`), or one feed proxy.
#[derive(Clone)]
struct Clients {
    /// For feeds, which the config names and so are trusted.
    feeds: reqwest::Client,
    /// For article pages, whose URLs come from feeds: the address policy applies to every
    /// resolved address (and, through a proxy, to the target before the request).
    articles: reqwest::Client,
}

/// The HTTP client shared by feed polls and article fetches. Redirects are followed hop by
/// hop here, so each hop is checked (the address policy for articles) and credentials go
/// only to their feed's origin.
#[derive(Clone)]
pub struct HttpClient {
    /// Requests of feeds without a proxy of their own.
    default: Clients,
    /// Feeds' own proxies, built when first used (a reload may bring a new one).
    by_proxy: Arc<Mutex<HashMap<ProxyUrl, Clients>>>,
    daemon_proxy: Option<ProxyUrl>,
    no_proxy: NoProxy,
    user_agent: String,
    allowed: Arc<Vec<IpNet>>,
    /// In-flight requests, all hosts and per origin.
    limits: HostLimiter,
}

impl HttpClient {
    pub fn new(settings: &ClientSettings) -> Result<HttpClient, FetchError> {
        install_crypto_provider();
        let allowed = Arc::new(settings.allowed_networks.clone());
        let default = match &settings.proxy {
            Some(p) => build_clients(
                &settings.user_agent,
                &allowed,
                Some((p, settings.no_proxy.clone())),
            )?,
            None => build_clients(&settings.user_agent, &allowed, None)?,
        };
        Ok(HttpClient {
            default,
            by_proxy: Arc::default(),
            daemon_proxy: settings.proxy.clone(),
            no_proxy: settings.no_proxy.clone(),
            user_agent: settings.user_agent.clone(),
            allowed,
            limits: HostLimiter::new(
                settings.max_connections,
                settings.per_host_connections,
                settings.hosts.clone().into_iter().collect(),
            ),
        })
    }

    /// GETs an article page found in a feed: the address policy applies (URL, resolved
    /// addresses, every redirect hop), then the same deadline and cap as [`HttpClient::get`].
    pub async fn get_article(
        &self,
        url: &Url,
        timeout: Duration,
        max_size: u64,
    ) -> Result<Body, FetchError> {
        self.get_article_via(url, &Access::default(), timeout, max_size)
            .await
    }

    /// [`HttpClient::get_article`] the way a feed's requests go (its proxy, and its
    /// credentials when `access` has them for articles).
    pub async fn get_article_via(
        &self,
        url: &Url,
        access: &Access,
        timeout: Duration,
        max_size: u64,
    ) -> Result<Body, FetchError> {
        let clients = self.clients(access)?;
        let hops = Hops::Article(access);
        match self
            .follow(&clients.articles, url, None, hops, timeout, max_size)
            .await?
        {
            Fetched::Body(mut body) => {
                body.moved_to = None;
                Ok(*body)
            }
            Fetched::NotModified { .. } => Err(FetchError::Status {
                status: 304,
                retry_after: None,
            }),
        }
    }

    /// GETs `url` within `timeout` (connection, headers and body together), sending the
    /// validators when given, and reading at most `max_size` decompressed bytes.
    pub async fn get(
        &self,
        url: &Url,
        validators: Option<&Validators>,
        timeout: Duration,
        max_size: u64,
    ) -> Result<Fetched, FetchError> {
        self.get_feed(url, validators, &Access::default(), timeout, max_size)
            .await
    }

    /// [`HttpClient::get`] with a feed's access: its proxy, user agent and credentials (the
    /// credentials on its own origin only, redirects included).
    pub async fn get_feed(
        &self,
        url: &Url,
        validators: Option<&Validators>,
        access: &Access,
        timeout: Duration,
        max_size: u64,
    ) -> Result<Fetched, FetchError> {
        let clients = self.clients(access)?;
        self.follow(
            &clients.feeds,
            url,
            validators,
            Hops::Feed(access),
            timeout,
            max_size,
        )
        .await
    }

    /// The clients `access` goes out through.
    fn clients(&self, access: &Access) -> Result<Clients, FetchError> {
        let Some(proxy) = &access.proxy else {
            return Ok(self.default.clone());
        };
        let mut built = self.by_proxy.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = built.get(proxy) {
            return Ok(c.clone());
        }
        let clients = build_clients(
            &self.user_agent,
            &self.allowed,
            Some((proxy, NoProxy::default())),
        )?;
        built.insert(proxy.clone(), clients.clone());
        Ok(clients)
    }

    /// Whether a request to `url` with `access` goes through a proxy (which, not this
    /// process, then connects to the target).
    fn proxied(&self, access: &Access, url: &Url) -> bool {
        access.proxy.is_some()
            || (self.daemon_proxy.is_some()
                && !self.no_proxy.matches(url.host_str().unwrap_or_default()))
    }

    /// Whether `url`'s host is the name of a proxy `access` may use.
    fn names_a_proxy(&self, access: &Access, url: &Url) -> bool {
        let host = url.host_str().unwrap_or_default();
        [access.proxy.as_ref(), self.daemon_proxy.as_ref()]
            .into_iter()
            .flatten()
            .any(|p| {
                p.url()
                    .host_str()
                    .is_some_and(|h| h.eq_ignore_ascii_case(host))
            })
    }

    /// Follows redirects hop by hop (at most [`MAX_REDIRECTS`], no loops, http and https
    /// only). An article hop is checked by the address policy first; through a proxy, its
    /// name is resolved and every address checked before the request.
    async fn follow(
        &self,
        client: &reqwest::Client,
        url: &Url,
        validators: Option<&Validators>,
        hops: Hops<'_>,
        timeout: Duration,
        max_size: u64,
    ) -> Result<Fetched, FetchError> {
        let access = match hops {
            Hops::Feed(a) | Hops::Article(a) => a,
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let mut current = url.clone();
        let mut seen: Vec<Url> = Vec::new();
        let mut permanent = true;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Err(FetchError::Timeout(timeout));
            }
            if let Hops::Article(_) = hops {
                check_url(&current, &self.allowed).map_err(|e| FetchError::Refused(e.0))?;
                // A proxy's own name is resolved without the policy (it is trusted), so a
                // page on that name is checked here too, whichever way it goes.
                if self.proxied(access, &current) || self.names_a_proxy(access, &current) {
                    match tokio::time::timeout(
                        left,
                        policy::check_resolved(&current, &self.allowed),
                    )
                    .await
                    {
                        Ok(checked) => checked.map_err(|e| FetchError::Refused(e.0))?,
                        Err(_) => return Err(FetchError::Timeout(timeout)),
                    }
                }
            }
            let headers = access.headers_for(&current);
            match self
                .request(client, &current, validators, headers, left, max_size)
                .await
            {
                Err(FetchError::Redirect { status, location }) => {
                    let next = current.join(&location).map_err(|e| {
                        FetchError::Transport(format!("invalid redirect to {location:?}: {e}"))
                    })?;
                    if seen.len() >= MAX_REDIRECTS {
                        return Err(FetchError::Refused(format!(
                            "more than {MAX_REDIRECTS} redirects"
                        )));
                    }
                    if next == current || seen.contains(&next) {
                        return Err(FetchError::Refused(format!("redirect loop at {next}")));
                    }
                    if !matches!(next.scheme(), "http" | "https") {
                        return Err(FetchError::Refused(format!(
                            "redirect to {next}: only http and https"
                        )));
                    }
                    permanent &= matches!(status, 301 | 308);
                    seen.push(std::mem::replace(&mut current, next));
                }
                Ok(Fetched::Body(mut body)) => {
                    if permanent && !seen.is_empty() {
                        // A feed URL never carries credentials (the config refuses them).
                        let mut to = current;
                        let _ = to.set_username("");
                        let _ = to.set_password(None);
                        body.moved_to = Some(to);
                    }
                    return Ok(Fetched::Body(body));
                }
                // The deadline is the whole request's, redirects included.
                Err(FetchError::Timeout(_)) => return Err(FetchError::Timeout(timeout)),
                other => return other,
            }
        }
    }

    /// One request under the politeness rules: nothing is sent to an origin that asked to
    /// wait; a 429, or a 503 with `Retry-After`, pauses its whole origin (capped).
    async fn request(
        &self,
        client: &reqwest::Client,
        url: &Url,
        validators: Option<&Validators>,
        extra: HeaderMap,
        timeout: Duration,
        max_size: u64,
    ) -> Result<Fetched, FetchError> {
        let now = chrono::Utc::now().timestamp_millis();
        if let Some(until) = self.limits.paused_until(url, now) {
            return Err(FetchError::HostPaused { until });
        }
        let agent = self.limits.rule(url).and_then(|r| r.user_agent.clone());
        let _permit = self.limits.acquire(url).await;
        let fetch = fetch_body(client, url, validators, agent.as_deref(), extra, max_size);
        let result = match tokio::time::timeout(timeout, fetch).await {
            Ok(result) => result,
            Err(_) => Err(FetchError::Timeout(timeout)),
        };
        if let Err(FetchError::Status {
            status,
            retry_after,
        }) = &result
        {
            let pause = match (status, retry_after) {
                (429 | 503, Some(d)) => Some((*d).min(MAX_HOST_PAUSE)),
                (429, None) => Some(DEFAULT_429_PAUSE),
                _ => None,
            };
            if let Some(p) = pause {
                tracing::warn!(origin = %url.origin().ascii_serialization(), status, pause = %humantime::format_duration(p),
                    "the host asked to slow down: no request goes there until the pause ends");
                self.limits.pause(url, now + p.as_millis() as i64);
            }
        }
        result
    }
}

/// One GET with `client`: conditional when `validators` are given, body capped at
/// `max_size` bytes after decompression.
async fn fetch_body(
    client: &reqwest::Client,
    url: &Url,
    validators: Option<&Validators>,
    user_agent: Option<&str>,
    extra: HeaderMap,
    max_size: u64,
) -> Result<Fetched, FetchError> {
    let mut headers = HeaderMap::new();
    if let Some(agent) = user_agent.and_then(|a| HeaderValue::from_str(a).ok()) {
        headers.insert(header::USER_AGENT, agent);
    }
    // The feed's own user agent and its credentials (already limited to its origin).
    headers.extend(extra);
    if let Some(v) = validators {
        if let Some(etag) = v
            .etag
            .as_deref()
            .and_then(|s| HeaderValue::from_str(s).ok())
        {
            headers.insert(header::IF_NONE_MATCH, etag);
        }
        if let Some(lm) = v
            .last_modified
            .as_deref()
            .and_then(|s| HeaderValue::from_str(s).ok())
        {
            headers.insert(header::IF_MODIFIED_SINCE, lm);
        }
    }
    let mut response = client
        .get(url.clone())
        .headers(headers)
        .send()
        .await
        .map_err(transport)?;
    let status = response.status().as_u16();
    let validators = Validators {
        etag: header_string(response.headers(), header::ETAG),
        last_modified: header_string(response.headers(), header::LAST_MODIFIED),
    };
    if status == 304 {
        let fresh_for = freshness(response.headers());
        return Ok(Fetched::NotModified {
            validators,
            fresh_for,
        });
    }
    if response.status().is_redirection()
        && let Some(location) = header_string(response.headers(), header::LOCATION)
    {
        return Err(FetchError::Redirect { status, location });
    }
    if !response.status().is_success() {
        let retry_after = header_string(response.headers(), header::RETRY_AFTER)
            .and_then(|v| parse_retry_after(&v));
        return Err(FetchError::Status {
            status,
            retry_after,
        });
    }
    let content_type = header_string(response.headers(), header::CONTENT_TYPE);
    let content_location = header_string(response.headers(), header::CONTENT_LOCATION);
    let fresh_for = freshness(response.headers());
    let link = header_string(response.headers(), header::LINK);
    let final_url = response.url().clone();
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        if bytes.len() as u64 + chunk.len() as u64 > max_size {
            return Err(FetchError::TooLarge(max_size));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Fetched::Body(Box::new(Body {
        status,
        url: final_url,
        content_type,
        content_location,
        validators,
        bytes,
        moved_to: None,
        fresh_for,
        link,
    })))
}

/// Which rules the hops of one request follow.
#[derive(Clone, Copy)]
enum Hops<'a> {
    /// A feed: trusted, credentials on its origin.
    Feed(&'a Access),
    /// An article page: the address policy on every hop.
    Article(&'a Access),
}

/// The feed and article clients of one way out. Proxies come only from the config: the
/// `HTTP(S)_PROXY` variables are not read, so no proxy the policy does not know about is used.
fn build_clients(
    user_agent: &str,
    allowed: &Arc<Vec<IpNet>>,
    proxy: Option<(&ProxyUrl, NoProxy)>,
) -> Result<Clients, FetchError> {
    let base = || {
        reqwest::Client::builder()
            .user_agent(user_agent.to_string())
            // Redirects are followed hop by hop in `follow`.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
    };
    let mut feeds = base();
    let mut articles = base();
    let mut exempt = Vec::new();
    if let Some((proxy, no_proxy)) = proxy {
        if let Some(host) = proxy.url().host_str() {
            // The proxy is named in the config: its own address is trusted.
            exempt.push(host.to_ascii_lowercase());
        }
        feeds = feeds.proxy(route(proxy.url().clone(), no_proxy.clone()));
        // Article names are resolved here, through the policy, and the proxy is given the
        // checked address: socks5h (names resolved by the proxy) becomes socks5.
        let mut checked = proxy.url().clone();
        if proxy.resolves_names() {
            checked
                .set_scheme("socks5")
                .map_err(|()| FetchError::Transport("cannot use the socks5 proxy".into()))?;
        }
        articles = articles.proxy(route(checked, no_proxy));
    }
    let articles = articles.dns_resolver(Arc::new(policy::PolicyResolver {
        allowed: allowed.clone(),
        exempt,
    }));
    Ok(Clients {
        feeds: feeds.build().map_err(transport)?,
        articles: articles.build().map_err(transport)?,
    })
}

/// Every request through `proxy`, but to the `no_proxy` hosts (the same rule as
/// [`HttpClient::proxied`] and the reports, since it is the same function).
fn route(proxy: Url, no_proxy: NoProxy) -> reqwest::Proxy {
    reqwest::Proxy::custom(move |url| {
        if no_proxy.matches(url.host_str().unwrap_or_default()) {
            None
        } else {
            Some(proxy.clone())
        }
    })
}

/// rustls needs a process-wide crypto provider; ring builds faster than aws-lc.
pub(crate) fn install_crypto_provider() {
    // Fails only when one is installed already, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn header_string(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// How long an answer stays fresh by its own headers: `Cache-Control: max-age` (or
/// `s-maxage`), else `Expires` against `Date` (or now). `no-cache`/`no-store` say nothing.
fn freshness(headers: &HeaderMap) -> Option<Duration> {
    if let Some(cc) = header_string(headers, header::CACHE_CONTROL) {
        let mut max_age = None;
        for directive in cc.split(',').map(|d| d.trim().to_ascii_lowercase()) {
            if let Some(v) = directive
                .strip_prefix("s-maxage=")
                .or_else(|| directive.strip_prefix("max-age="))
                && let Ok(secs) = v.trim_matches('"').parse::<u64>()
            {
                max_age = Some(max_age.map_or(secs, |m: u64| m.max(secs)));
            }
        }
        if max_age.is_some() {
            return max_age.map(Duration::from_secs);
        }
    }
    let expires = httpdate::parse_http_date(&header_string(headers, header::EXPIRES)?).ok()?;
    let date = header_string(headers, header::DATE)
        .and_then(|d| httpdate::parse_http_date(&d).ok())
        .unwrap_or_else(std::time::SystemTime::now);
    expires.duration_since(date).ok()
}

/// `Retry-After` as seconds or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    if let Ok(secs) = value.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value.trim()).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// A transport error: refused by the address policy, or a network failure.
fn transport(err: reqwest::Error) -> FetchError {
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(&err);
    while let Some(e) = source {
        if let Some(refused) = e.downcast_ref::<Refused>() {
            return FetchError::Refused(refused.0.clone());
        }
        source = e.source();
    }
    FetchError::Transport(describe(&err))
}

/// One line from an error and its causes, without repeating what a cause already says
/// (reqwest's outer message names the URL, which the caller logs anyway).
fn describe(err: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(err);
    while let Some(e) = source {
        let text = e.to_string();
        // hyper's wrappers say nothing the kind below does not.
        let wrapper =
            text.starts_with("client error (") || text.starts_with("error sending request");
        if !wrapper && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = e.source();
    }
    let kind = if err.is_connect() {
        "cannot connect"
    } else if err.is_timeout() {
        "timed out"
    } else if err.is_redirect() {
        "too many redirects"
    } else if err.is_decode() || err.is_body() {
        "broken body"
    } else {
        "request failed"
    };
    if parts.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {}", parts.join(": "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness_from_cache_control_or_expires() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(*k, HeaderValue::from_static(v));
            }
            m
        };
        assert_eq!(
            freshness(&h(&[("cache-control", "public, max-age=3600")])),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(freshness(&h(&[("cache-control", "no-cache")])), None);
        assert_eq!(
            freshness(&h(&[
                ("date", "Wed, 21 Oct 2015 07:28:00 GMT"),
                ("expires", "Wed, 21 Oct 2015 09:28:00 GMT")
            ])),
            Some(Duration::from_secs(7200))
        );
    }

    #[test]
    fn retry_after_in_seconds_or_date() {
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
