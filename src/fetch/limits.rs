//! The politeness budget of each origin, shared by feed polls and article fetches: requests
//! in flight (all hosts, and per origin), the least delay between two requests to one host,
//! and pauses a host asked for.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use url::Url;

use crate::config::Host;

/// Above this many remembered origins, idle ones are forgotten.
const PRUNE_ABOVE: usize = 4096;

#[derive(Clone)]
pub struct HostLimiter {
    /// `max_connections`: requests in flight, all hosts together.
    global: Arc<Semaphore>,
    /// Per origin (scheme, host, port): its slots and when its next request may start.
    origins: Arc<Mutex<HashMap<String, Arc<Origin>>>>,
    /// `per_host_connections`, unless a host rule says otherwise.
    per_origin: usize,
    /// `[hosts."name"]` rules by lower-case host name.
    rules: Arc<HashMap<String, Host>>,
    /// Origins that asked us to wait (429/503 with `Retry-After`): no request to them, feed
    /// or article, until then (ms since the epoch).
    paused: Arc<Mutex<HashMap<String, i64>>>,
}

struct Origin {
    slots: Arc<Semaphore>,
    min_delay: Duration,
    /// When the next request to this origin may start.
    next_start: Mutex<Instant>,
}

/// Both permits; dropping it frees them.
pub struct Permit {
    _origin: OwnedSemaphorePermit,
    _global: OwnedSemaphorePermit,
}

impl HostLimiter {
    pub fn new(
        max_connections: usize,
        per_origin: usize,
        rules: HashMap<String, Host>,
    ) -> HostLimiter {
        HostLimiter {
            global: Arc::new(Semaphore::new(max_connections.max(1))),
            origins: Arc::new(Mutex::new(HashMap::new())),
            per_origin: per_origin.max(1),
            rules: Arc::new(rules),
            paused: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The rule for `url`'s host, if the config has one.
    pub fn rule(&self, url: &Url) -> Option<&Host> {
        // Most configs have no host rules: then nothing is looked up (or lower-cased).
        if self.rules.is_empty() {
            return None;
        }
        url.host_str()
            .and_then(|h| self.rules.get(&h.to_ascii_lowercase()))
    }

    /// Until when `url`'s origin asked to be left alone, if it still does.
    pub fn paused_until(&self, url: &Url, now_ms: i64) -> Option<i64> {
        let mut paused = self.paused.lock().unwrap_or_else(|e| e.into_inner());
        // Almost always empty: then no origin is serialised for the lookup.
        if paused.is_empty() {
            return None;
        }
        let key = origin_key(url);
        match paused.get(key.as_ref()) {
            Some(&until) if until > now_ms => Some(until),
            Some(_) => {
                paused.remove(key.as_ref());
                None
            }
            None => None,
        }
    }

    /// Pauses every request to `url`'s origin until `until` (ms since the epoch); an earlier
    /// pause that ends later stays.
    pub fn pause(&self, url: &Url, until: i64) {
        let mut paused = self.paused.lock().unwrap_or_else(|e| e.into_inner());
        let entry = paused.entry(origin_key(url).into_owned()).or_insert(until);
        *entry = (*entry).max(until);
    }

    /// Waits for a slot for `url`'s origin and its turn after the host's least delay, then
    /// for a global slot (in that order, so a busy host does not hold global slots while it
    /// waits for itself).
    pub async fn acquire(&self, url: &Url) -> Option<Permit> {
        let origin = self.origin(url);
        let slot = origin.slots.clone().acquire_owned().await.ok()?;
        if !origin.min_delay.is_zero() {
            let wait = {
                let mut next = origin.next_start.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                let start = (*next).max(now);
                *next = start + origin.min_delay;
                start - now
            };
            tokio::time::sleep(wait).await;
        }
        let global = self.global.clone().acquire_owned().await.ok()?;
        Some(Permit {
            _origin: slot,
            _global: global,
        })
    }

    fn origin(&self, url: &Url) -> Arc<Origin> {
        let key = origin_key(url);
        let mut map = self.origins.lock().unwrap_or_else(|e| e.into_inner());
        // Looked up by the borrowed key first: a known origin costs no allocation.
        if let Some(origin) = map.get(key.as_ref()) {
            return origin.clone();
        }
        if map.len() > PRUNE_ABOVE {
            map.retain(|_, o| Arc::strong_count(o) > 1 || Arc::strong_count(&o.slots) > 1);
        }
        map.entry(key.into_owned())
            .or_insert_with(|| {
                let rule = self.rule(url);
                Arc::new(Origin {
                    slots: Arc::new(Semaphore::new(
                        rule.and_then(|r| r.connections).unwrap_or(self.per_origin),
                    )),
                    min_delay: rule.map_or(Duration::ZERO, |r| r.min_delay),
                    next_start: Mutex::new(Instant::now()),
                })
            })
            .clone()
    }
}

/// `url`'s origin (scheme, host, port) as a map key: the URL's own text up to its path when
/// it has no user name or password (the parser already lower-cased the host, encoded it in
/// ASCII and dropped a default port), so the key of every poll costs no allocation.
fn origin_key(url: &Url) -> Cow<'_, str> {
    if url.username().is_empty() && url.password().is_none() && url.has_host() {
        Cow::Borrowed(&url[..url::Position::BeforePath])
    } else {
        Cow::Owned(url.origin().ascii_serialization())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_origin_key_is_the_serialised_origin() {
        for url in [
            "https://Example.COM/feed.xml",
            "http://example.com:80/a?b",
            "http://127.0.0.1:8080/f/1",
            "https://user:pw@example.com:8443/x",
            "https://bücher.example/feed",
        ] {
            let url = Url::parse(url).expect("url");
            assert_eq!(
                origin_key(&url),
                url.origin().ascii_serialization(),
                "{url}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_host_rule_spaces_requests_and_limits_slots() {
        let mut rules = HashMap::new();
        rules.insert(
            "slow.example".to_string(),
            Host {
                connections: Some(1),
                min_delay: Duration::from_secs(2),
                user_agent: None,
            },
        );
        let limiter = HostLimiter::new(8, 4, rules);
        let url = Url::parse("https://slow.example/feed").expect("url");
        let start = Instant::now();
        for n in 0..3u32 {
            let permit = limiter.acquire(&url).await.expect("permit");
            assert_eq!(
                Instant::now() - start,
                Duration::from_secs(2) * n,
                "request {n} waits its turn"
            );
            drop(permit);
        }
        let other = Url::parse("https://other.example/feed").expect("url");
        let t = Instant::now();
        let _a = limiter.acquire(&other).await.expect("permit");
        let _b = limiter.acquire(&other).await.expect("permit");
        assert_eq!(Instant::now(), t, "hosts without a rule are not delayed");
    }
}
