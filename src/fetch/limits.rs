//! In-flight request limits: one budget for all hosts, one per origin.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use url::Url;

/// Above this many remembered origins, idle ones are forgotten.
const PRUNE_ABOVE: usize = 4096;

#[derive(Clone)]
pub struct HostLimiter {
    /// `max_connections`: requests in flight, all hosts together.
    global: Arc<Semaphore>,
    /// `per_host_connections`: requests in flight to one origin (scheme, host, port).
    origins: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
    per_origin: usize,
    /// Origins that asked us to wait (429/503 with `Retry-After`): no request to them, feed
    /// or article, until then (ms since the epoch).
    paused: Arc<Mutex<HashMap<String, i64>>>,
}

/// Both permits; dropping it frees them.
pub struct Permit {
    _origin: OwnedSemaphorePermit,
    _global: OwnedSemaphorePermit,
}

impl HostLimiter {
    pub fn new(max_connections: usize, per_origin: usize) -> HostLimiter {
        HostLimiter {
            global: Arc::new(Semaphore::new(max_connections.max(1))),
            origins: Arc::new(Mutex::new(HashMap::new())),
            per_origin: per_origin.max(1),
            paused: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Until when `url`'s origin asked to be left alone, if it still does.
    pub fn paused_until(&self, url: &Url, now_ms: i64) -> Option<i64> {
        let mut paused = self.paused.lock().unwrap_or_else(|e| e.into_inner());
        let key = url.origin().ascii_serialization();
        match paused.get(&key) {
            Some(&until) if until > now_ms => Some(until),
            Some(_) => {
                paused.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Pauses every request to `url`'s origin until `until` (ms since the epoch); an earlier
    /// pause that ends later stays.
    pub fn pause(&self, url: &Url, until: i64) {
        let mut paused = self.paused.lock().unwrap_or_else(|e| e.into_inner());
        let entry = paused
            .entry(url.origin().ascii_serialization())
            .or_insert(until);
        *entry = (*entry).max(until);
    }

    /// Waits for a slot for `url`'s origin, then for a global one (in that order, so a
    /// busy host does not hold global slots while it waits for itself).
    pub async fn acquire(&self, url: &Url) -> Option<Permit> {
        let origin = self.origin_semaphore(url);
        let origin = origin.acquire_owned().await.ok()?;
        let global = self.global.clone().acquire_owned().await.ok()?;
        Some(Permit {
            _origin: origin,
            _global: global,
        })
    }

    fn origin_semaphore(&self, url: &Url) -> Arc<Semaphore> {
        let key = url.origin().ascii_serialization();
        let mut map = match self.origins.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        if map.len() > PRUNE_ABOVE {
            map.retain(|_, s| Arc::strong_count(s) > 1);
        }
        map.entry(key)
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_origin)))
            .clone()
    }
}
