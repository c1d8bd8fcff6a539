//! When each feed is due: its interval, a start-up spread, error backoff and jitter.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

use rand::Rng;

/// First delay after a failed poll; doubled for each further error in a row.
pub const ERROR_BACKOFF_BASE: Duration = Duration::from_secs(60);

/// Start-up spread per feed never polled (or overdue): 10,000 feeds spread over ~8 minutes
/// (bounded by their interval), three feeds start within a fraction of a second.
pub const STARTUP_SPREAD_PER_FEED: Duration = Duration::from_millis(50);

/// Share of an interval by which a next poll is moved at random, so feeds polled together
/// once drift apart instead of firing together forever.
pub const JITTER_FRACTION: f64 = 0.1;

/// Delay before the next poll after `errors_in_row` failures in a row (at least 1):
/// exponential from [`ERROR_BACKOFF_BASE`], never above `max_interval`.
pub fn error_backoff(errors_in_row: u32, max_interval: Duration) -> Duration {
    let exp = errors_in_row.saturating_sub(1).min(20);
    ERROR_BACKOFF_BASE
        .saturating_mul(1u32 << exp)
        .min(max_interval)
}

/// `base` moved by up to ±[`JITTER_FRACTION`], at random.
pub fn jittered(base: Duration) -> Duration {
    let spread = base.as_secs_f64() * JITTER_FRACTION;
    let offset = rand::rng().random_range(-spread..=spread);
    Duration::from_secs_f64((base.as_secs_f64() + offset).max(0.0))
}

/// The window over which feeds that are due at start-up are spread.
pub fn startup_window(due_feeds: usize, interval: Duration) -> Duration {
    STARTUP_SPREAD_PER_FEED
        .saturating_mul(due_feeds.min(u32::MAX as usize) as u32)
        .min(interval)
}

/// Weight kept by the item-rate history at each poll: older polls count less, so the rate
/// follows a feed that becomes busier or quieter within a few days.
pub const RATE_DECAY: f64 = 0.9;

/// A feed's observed publishing rate: items and hours seen, both decayed at each poll.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rate {
    pub items: f64,
    pub hours: f64,
}

impl Rate {
    /// After a poll that found `new_items` over `elapsed` since the previous successful one.
    pub fn observe(self, new_items: usize, elapsed: Duration) -> Rate {
        Rate {
            items: self.items * RATE_DECAY + new_items as f64,
            hours: self.hours * RATE_DECAY + elapsed.as_secs_f64() / 3600.0,
        }
    }

    /// Items per hour, once there is something to go on.
    pub fn per_hour(self) -> Option<f64> {
        (self.hours > 0.0).then(|| self.items / self.hours)
    }
}

/// Why a feed's next poll is when it is (shown by `feedwire feeds`).
#[derive(Debug, Clone, PartialEq)]
pub enum Why {
    /// The feed's own `interval` from the config.
    Fixed,
    /// Not enough history yet: `poll.interval`.
    Default,
    /// About one poll per new item, from the observed rate, within the bounds.
    Adaptive { per_hour: f64 },
    /// The publisher asked for no more often than this (Cache-Control, Expires, `<ttl>`,
    /// `sy:updatePeriod`).
    Publisher { source: &'static str },
}

impl Why {
    pub fn describe(&self, interval: Duration) -> String {
        let every = humantime::format_duration(Duration::from_secs(interval.as_secs()));
        match self {
            Why::Fixed => format!("fixed interval {every}"),
            Why::Default => format!("default interval {every} (learning the feed's rate)"),
            Why::Adaptive { per_hour } => {
                format!(
                    "adaptive: about {:.1} new items a day, so every {every}",
                    per_hour * 24.0
                )
            }
            Why::Publisher { source } => {
                format!("the publisher asks for at most every {every} ({source})")
            }
        }
    }
}

/// The interval before the next poll after a successful one: the feed's fixed interval when
/// it has one; else about one poll per new item, within `[min, max]`; never shorter than
/// what the publisher asks.
pub fn next_interval(
    fixed: Option<Duration>,
    rate: Rate,
    default: Duration,
    min: Duration,
    max: Duration,
    publisher: Option<(Duration, &'static str)>,
) -> (Duration, Why) {
    if let Some(f) = fixed {
        return (f, Why::Fixed);
    }
    let (interval, why) = match rate.per_hour() {
        // Too little history to trust (less than one default interval observed).
        _ if rate.hours * 3600.0 < default.as_secs_f64() => (default.clamp(min, max), Why::Default),
        Some(per_hour) if per_hour > 0.0 => {
            let gap = Duration::from_secs_f64((3600.0 / per_hour).min(max.as_secs_f64()));
            (gap.clamp(min, max), Why::Adaptive { per_hour })
        }
        _ => (max, Why::Adaptive { per_hour: 0.0 }),
    };
    match publisher {
        // The publisher's wish is honoured even above `max_interval`, within reason.
        Some((asked, source)) if asked > interval => {
            (asked.min(MAX_PUBLISHER_INTERVAL), Why::Publisher { source })
        }
        _ => (interval, why),
    }
}

/// The longest interval a publisher's hint can impose.
pub const MAX_PUBLISHER_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// Feeds by next due time (milliseconds since the epoch).
#[derive(Debug, Default)]
pub struct Queue {
    heap: BinaryHeap<Reverse<(i64, i64)>>,
    /// The current due time of each feed; heap entries that disagree are stale.
    due: HashMap<i64, i64>,
}

impl Queue {
    pub fn new() -> Queue {
        Queue::default()
    }

    /// (Re)schedules `feed` at `at`, replacing any earlier time.
    pub fn schedule(&mut self, feed: i64, at: i64) {
        self.due.insert(feed, at);
        self.heap.push(Reverse((at, feed)));
    }

    /// Forgets `feed` (removed from the config, or being polled).
    pub fn remove(&mut self, feed: i64) {
        self.due.remove(&feed);
    }

    /// When the next feed is due.
    pub fn next_due(&mut self) -> Option<i64> {
        while let Some(Reverse((at, feed))) = self.heap.peek().copied() {
            if self.due.get(&feed) == Some(&at) {
                return Some(at);
            }
            self.heap.pop();
        }
        None
    }

    /// Takes every feed due at or before `now`.
    pub fn pop_due(&mut self, now: i64) -> Vec<i64> {
        let mut out = Vec::new();
        while let Some(at) = self.next_due() {
            if at > now {
                break;
            }
            if let Some(Reverse((_, feed))) = self.heap.pop() {
                self.due.remove(&feed);
                out.push(feed);
            }
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.due.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_ceiling() {
        let max = Duration::from_secs(6 * 3600);
        let got: Vec<u64> = (1..=10).map(|n| error_backoff(n, max).as_secs()).collect();
        assert_eq!(
            got,
            vec![60, 120, 240, 480, 960, 1920, 3840, 7680, 15360, 21600]
        );
        assert_eq!(error_backoff(1000, max), max);
    }

    #[test]
    fn startup_spread_is_short_for_few_feeds_and_bounded_by_the_interval() {
        let interval = Duration::from_secs(900);
        assert_eq!(startup_window(3, interval), Duration::from_millis(150));
        assert_eq!(startup_window(100_000, interval), interval);
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        let base = Duration::from_secs(1000);
        for _ in 0..1000 {
            let j = jittered(base).as_secs_f64();
            assert!((900.0..=1100.0).contains(&j), "{j}");
        }
    }

    #[test]
    fn the_interval_follows_the_rate_within_bounds_and_never_beats_the_publisher() {
        let (min, max, default) = (
            Duration::from_secs(120),
            Duration::from_secs(6 * 3600),
            Duration::from_secs(900),
        );
        let busy = Rate {
            items: 48.0,
            hours: 4.0,
        };
        let (i, why) = next_interval(None, busy, default, min, max, None);
        assert_eq!(
            (i, why),
            (Duration::from_secs(300), Why::Adaptive { per_hour: 12.0 })
        );
        let frantic = Rate {
            items: 400.0,
            hours: 2.0,
        };
        assert_eq!(next_interval(None, frantic, default, min, max, None).0, min);
        let quiet = Rate {
            items: 0.0,
            hours: 48.0,
        };
        assert_eq!(next_interval(None, quiet, default, min, max, None).0, max);
        let fresh = Rate {
            items: 3.0,
            hours: 0.05,
        };
        assert_eq!(
            next_interval(None, fresh, default, min, max, None),
            (default, Why::Default)
        );
        let asks = Some((Duration::from_secs(3600), "Cache-Control max-age"));
        assert_eq!(
            next_interval(None, busy, default, min, max, asks).0,
            Duration::from_secs(3600)
        );
        let fixed = Some(Duration::from_secs(60));
        assert_eq!(
            next_interval(fixed, busy, default, min, max, asks),
            (Duration::from_secs(60), Why::Fixed)
        );
    }

    #[test]
    fn the_rate_forgets_slowly() {
        let mut r = Rate::default();
        for _ in 0..20 {
            r = r.observe(1, Duration::from_secs(3600));
        }
        assert!((r.per_hour().unwrap_or(0.0) - 1.0).abs() < 1e-9);
        for _ in 0..10 {
            r = r.observe(0, Duration::from_secs(3600));
        }
        let after = r.per_hour().unwrap_or(1.0);
        assert!(after < 0.5 && after > 0.1, "{after}");
    }

    #[test]
    fn queue_pops_due_feeds_in_order_and_honours_reschedules() {
        let mut q = Queue::new();
        q.schedule(1, 300);
        q.schedule(2, 100);
        q.schedule(3, 200);
        q.schedule(1, 50);
        assert_eq!(q.next_due(), Some(50));
        assert_eq!(q.pop_due(200), vec![1, 2, 3]);
        assert!(q.is_empty());
        q.schedule(4, 10);
        q.remove(4);
        assert_eq!(q.next_due(), None);
    }
}
