//! When each feed is due, and the loop that hands due feeds to the pollers.
//!
//! The scheduler owns the one in-memory state of each feed ([`FeedState`]). A due feed's
//! state is moved out to the poll stage and comes back, updated, when its poll is finished
//! (or its items stored), so there is at most one poll per feed in flight and no copy of a
//! feed's state to keep in step. The rules (interval, adaptive rate, backoff, jitter, the
//! start-up spread) are pure functions below; the loop is [`Scheduler::run`].

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use rand::Rng;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::fetch::Validators;
use crate::model::Timestamp;
use crate::parse::Identity;

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

/// Feeds by next due time.
#[derive(Debug, Default)]
pub struct Queue {
    heap: BinaryHeap<Reverse<(Timestamp, i64)>>,
    /// The current due time of each feed; heap entries that disagree are stale.
    due: HashMap<i64, Timestamp>,
}

impl Queue {
    pub fn new() -> Queue {
        Queue::default()
    }

    /// (Re)schedules `feed` at `at`, replacing any earlier time.
    pub fn schedule(&mut self, feed: i64, at: Timestamp) {
        self.due.insert(feed, at);
        self.heap.push(Reverse((at, feed)));
    }

    /// Forgets `feed` (removed from the config, or being polled).
    pub fn remove(&mut self, feed: i64) {
        self.due.remove(&feed);
    }

    /// When the next feed is due.
    pub fn next_due(&mut self) -> Option<Timestamp> {
        while let Some(Reverse((at, feed))) = self.heap.peek().copied() {
            if self.due.get(&feed) == Some(&at) {
                return Some(at);
            }
            self.heap.pop();
        }
        None
    }

    /// Takes every feed due at or before `now`.
    pub fn pop_due(&mut self, now: Timestamp, out: &mut Vec<i64>) {
        out.clear();
        while let Some(at) = self.next_due() {
            if at > now {
                break;
            }
            if let Some(Reverse((_, feed))) = self.heap.pop() {
                self.due.remove(&feed);
                out.push(feed);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.due.is_empty()
    }
}

/// A feed as the scheduler keeps it between polls: the one state of a feed in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedState {
    /// The store's id of the feed.
    pub id: i64,
    pub feed: Arc<crate::config::Feed>,
    /// Where the feed moved permanently, when it did; else it is polled at its configured
    /// URL, which is not copied (10,000 feeds, one URL each in memory).
    pub moved: Option<Url>,
    pub validators: Validators,
    pub errors_in_row: u32,
    pub polls: i64,
    /// The feed's GUIDs were found unusable; items are identified by their links.
    pub guid_unreliable: bool,
    pub rate: Rate,
    /// The last poll that answered 200 or 304.
    pub last_ok_at: Option<Timestamp>,
    /// When the feed is polled next (`None`: as soon as the start-up spread allows).
    pub next_poll_at: Option<Timestamp>,
    /// A WebSub distribution this poll reads instead of fetching the feed.
    pub pushed: Option<crate::websub::Distribution>,
}

impl FeedState {
    /// The state of a stored feed, for its entry in the config.
    pub fn new(stored: &crate::store::StoredFeed, feed: Arc<crate::config::Feed>) -> FeedState {
        FeedState {
            id: stored.id,
            // The store's URL: the config's, or where the feed moved since.
            moved: Url::parse(&stored.url).ok().filter(|u| *u != feed.url),
            feed,
            validators: Validators {
                etag: stored.etag.clone(),
                last_modified: stored.last_modified.clone(),
            },
            errors_in_row: stored.errors_in_row,
            polls: stored.polls,
            guid_unreliable: stored.guid_unreliable,
            rate: stored.rate,
            last_ok_at: stored.last_ok_at,
            next_poll_at: stored.next_poll_at,
            pushed: None,
        }
    }

    /// Takes the state a shared store holds for the feed (another daemon may have polled it
    /// since this one last did): validators, history, rate and address.
    pub fn refresh(&mut self, stored: &crate::store::StoredFeed) {
        self.moved = Url::parse(&stored.url).ok().filter(|u| *u != self.feed.url);
        self.validators = Validators {
            etag: stored.etag.clone(),
            last_modified: stored.last_modified.clone(),
        };
        self.errors_in_row = stored.errors_in_row;
        self.polls = stored.polls;
        self.guid_unreliable = stored.guid_unreliable;
        self.rate = stored.rate;
        self.last_ok_at = stored.last_ok_at;
        self.next_poll_at = stored.next_poll_at;
    }

    /// Where the feed is polled: its configured URL, or where it moved permanently.
    pub fn url(&self) -> &Url {
        self.moved.as_ref().unwrap_or(&self.feed.url)
    }

    pub fn first_poll(&self) -> bool {
        self.polls == 0
    }

    pub fn identity(&self) -> Identity {
        if self.guid_unreliable {
            Identity::Link
        } else {
            Identity::Guid
        }
    }
}

/// Due feeds are released together at most this often: one wake-up per tick for every feed
/// due by then, instead of one per feed. Finished polls are taken back at the same ticks.
pub const TICK: Duration = Duration::from_secs(1);

/// Farther than any wake-up the loop needs to compute.
const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The loop wakes at least this often, to prove it is alive (the heartbeat).
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);

/// The scheduler's clock: wall time as it was at the start plus the runtime's monotonic time
/// since, so that a paused tokio clock (in tests) drives the schedule too.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    wall: Timestamp,
    start: tokio::time::Instant,
}

impl Clock {
    pub fn new() -> Clock {
        Clock {
            wall: Timestamp::now(),
            start: tokio::time::Instant::now(),
        }
    }

    pub fn now(&self) -> Timestamp {
        self.wall.after(self.start.elapsed())
    }

    fn instant_at(&self, at: Timestamp) -> tokio::time::Instant {
        // Capped so that a far-off time (a gone feed's NEVER) cannot overflow an Instant.
        self.start + at.since(self.wall).min(FAR_FUTURE)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

/// What the scheduler can be told while it runs.
#[derive(Debug)]
pub enum Command {
    /// The config changed: these are the feeds now, with their stored state. Feeds not in
    /// the list are dropped (when their poll in flight returns), new ones added, changed ones
    /// take their new settings.
    Reconfigure { feeds: Vec<FeedState> },
    /// A WebSub hub pushed the feed's content: poll it from this body, at once.
    Pushed(crate::websub::Distribution),
    /// The feed's hub stopped pushing: poll it now, then on its normal schedule.
    PollSoon { feed: i64 },
}

/// Distributions kept per feed while its poll is in flight; beyond, the oldest is dropped
/// (a later poll, pushed or not, reads the feed as it is then).
pub const PUSH_BACKLOG: usize = 2;

/// The scheduler loop and the feeds it owns.
pub struct Scheduler {
    clock: Clock,
    queue: Queue,
    /// Feeds waiting for their time.
    idle: HashMap<i64, FeedState>,
    /// Feeds being polled: their state is with the poll stage.
    in_flight: HashSet<i64>,
    /// New settings for feeds in flight, applied when they come back (`None`: removed).
    on_return: HashMap<i64, Option<FeedState>>,
    /// Spread feeds due at start over this window (the start-up spread).
    interval: Duration,
    /// WebSub distributions waiting for their feed to be released.
    pushes: HashMap<i64, VecDeque<crate::websub::Distribution>>,
    /// Feeds in flight whose hub stopped pushing meanwhile: polled again as soon as they come
    /// back, whatever their poll's record says (it may have been written while pushed).
    soon: HashSet<i64>,
    /// A store other daemons share: a due feed is polled only once this node holds its lease.
    shared: Option<crate::store::Store>,
}

/// How long a feed waits when the shared store could not be asked for its lease.
const LEASE_RETRY: Duration = Duration::from_secs(5);

impl Scheduler {
    /// A scheduler for `feeds`; those due now (never polled, or overdue after downtime) are
    /// spread over the start-up window instead of all polled at once.
    pub fn new(clock: Clock, feeds: Vec<FeedState>, interval: Duration) -> Scheduler {
        let mut s = Scheduler {
            clock,
            queue: Queue::new(),
            idle: HashMap::new(),
            in_flight: HashSet::new(),
            on_return: HashMap::new(),
            interval,
            pushes: HashMap::new(),
            soon: HashSet::new(),
            shared: None,
        };
        s.add(feeds);
        s
    }

    /// Polls a due feed only after leasing it from `store`, which other daemons share: a feed
    /// another node holds (or polled since) is asked for again when that node is done with it.
    pub fn sharing(mut self, store: crate::store::Store) -> Scheduler {
        self.shared = Some(store);
        self
    }

    /// Keeps in `ready` the due feeds this node now holds the lease of, with their state as
    /// the shared store has it; the others go back to the queue for when they are free.
    async fn lease(&mut self, store: &crate::store::Store, ready: &mut Vec<i64>) {
        use crate::store::FeedLease;
        let asked: Vec<i64> = std::mem::take(ready);
        let now = self.clock.now();
        match store.lease_feeds(asked.clone()).await {
            Ok(answers) => {
                let mut answered = HashSet::with_capacity(answers.len());
                for answer in answers {
                    match answer {
                        FeedLease::Held(stored) => {
                            answered.insert(stored.id);
                            if let Some(state) = self.idle.get_mut(&stored.id) {
                                state.refresh(&stored);
                                ready.push(stored.id);
                            }
                        }
                        FeedLease::Busy { id, retry_at } => {
                            answered.insert(id);
                            self.queue.schedule(id, retry_at.max(now));
                        }
                    }
                }
                // Feeds the shared list no longer has active (another node's config): asked
                // again a lease from now, in case a node lists them again.
                let later = now.after(store.lease().unwrap_or(LEASE_RETRY));
                for id in asked.into_iter().filter(|id| !answered.contains(id)) {
                    self.queue.schedule(id, later);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, feeds = asked.len(), "cannot lease due feeds from the shared store; asking again shortly");
                for id in asked {
                    self.queue.schedule(id, now.after(LEASE_RETRY));
                }
            }
        }
    }

    fn add(&mut self, feeds: Vec<FeedState>) {
        let now = self.clock.now();
        let due_now = feeds
            .iter()
            .filter(|f| f.next_poll_at.is_none_or(|t| t <= now))
            .count();
        let window = startup_window(due_now, self.interval);
        for f in feeds {
            let at = match f.next_poll_at {
                Some(t) if t > now => t,
                _ if !window.is_zero() => {
                    now.after(rand::rng().random_range(Duration::ZERO..window))
                }
                _ => now,
            };
            self.queue.schedule(f.id, at);
            self.idle.insert(f.id, f);
        }
    }

    /// How many feeds the scheduler owns (idle or in flight).
    pub fn len(&self) -> usize {
        self.idle.len() + self.in_flight.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A feed came back from its poll.
    fn returned(&mut self, mut state: FeedState) {
        self.in_flight.remove(&state.id);
        match self.on_return.remove(&state.id) {
            Some(None) => {
                self.pushes.remove(&state.id);
                self.soon.remove(&state.id);
                return;
            }
            Some(Some(new)) => state = merge(state, new),
            None => {}
        }
        match state.next_poll_at {
            // A gone feed stays known (a reload may bring it back) but is not polled again.
            Some(Timestamp::NEVER) => {}
            _ if self.soon.remove(&state.id) => self.queue.schedule(state.id, self.clock.now()),
            at => self
                .queue
                .schedule(state.id, at.unwrap_or_else(|| self.clock.now())),
        }
        self.soon.remove(&state.id);
        if self.pushes.get(&state.id).is_some_and(|q| !q.is_empty()) {
            self.queue.schedule(state.id, self.clock.now());
        }
        self.idle.insert(state.id, state);
    }

    /// A hub pushed `d`: its feed is polled from it at the next release.
    fn pushed(&mut self, d: crate::websub::Distribution) {
        let id = d.feed_id;
        if !self.idle.contains_key(&id) && !self.in_flight.contains(&id) {
            tracing::debug!(
                feed_id = id,
                "WebSub distribution for a feed no longer configured"
            );
            return;
        }
        let queue = self.pushes.entry(id).or_default();
        if queue.len() >= PUSH_BACKLOG {
            queue.pop_front();
            tracing::warn!(
                feed_id = id,
                "WebSub distributions arrive faster than they are read; the oldest waiting one is dropped"
            );
        }
        queue.push_back(d);
        if self.idle.contains_key(&id) {
            self.queue.schedule(id, self.clock.now());
        }
    }

    /// The feed's hub stopped pushing: poll it now.
    fn poll_soon(&mut self, id: i64) {
        if self.idle.contains_key(&id) {
            self.queue.schedule(id, self.clock.now());
        } else if self.in_flight.contains(&id) {
            self.soon.insert(id);
        }
    }

    fn reconfigure(&mut self, feeds: Vec<FeedState>) {
        let keep: HashSet<i64> = feeds.iter().map(|f| f.id).collect();
        let gone: Vec<i64> = self
            .idle
            .keys()
            .copied()
            .filter(|id| !keep.contains(id))
            .collect();
        for id in gone {
            self.idle.remove(&id);
            self.queue.remove(id);
            self.pushes.remove(&id);
        }
        for id in &self.in_flight {
            if !keep.contains(id) {
                self.on_return.insert(*id, None);
            }
        }
        let mut added = Vec::new();
        for new in feeds {
            if self.in_flight.contains(&new.id) {
                self.on_return.insert(new.id, Some(new));
            } else if let Some(old) = self.idle.remove(&new.id) {
                let moved = old.feed.url != new.feed.url;
                let merged = merge(old, new);
                if moved {
                    // A new address: poll it soon, as a feed never seen.
                    self.queue.remove(merged.id);
                    added.push(merged);
                } else {
                    self.idle.insert(merged.id, merged);
                }
            } else {
                added.push(new);
            }
        }
        self.add(added);
    }

    /// Hands out due feeds on `due` until `stop`, taking them back from `done`. Every
    /// [`TICK`] at most, all feeds due by then are released together, and every finished
    /// poll is taken back: one wake-up per tick, not one per feed going out or coming back
    /// (a returned feed is due an interval later, so a tick's delay costs nothing).
    pub async fn run(
        mut self,
        due: mpsc::Sender<FeedState>,
        mut done: mpsc::UnboundedReceiver<FeedState>,
        mut commands: mpsc::Receiver<Command>,
        heartbeat: Arc<AtomicI64>,
        stop: CancellationToken,
    ) {
        let mut ready = Vec::new();
        // The first tick is not held back.
        let start = tokio::time::Instant::now();
        let mut last_tick = start.checked_sub(TICK).unwrap_or(start);
        loop {
            heartbeat.store(Timestamp::now().as_millis(), Ordering::Relaxed);
            let now = tokio::time::Instant::now();
            let mut wake = self
                .queue
                .next_due()
                .map(|at| self.clock.instant_at(at).max(last_tick + TICK))
                .unwrap_or(now + HEARTBEAT_EVERY)
                .min(now + HEARTBEAT_EVERY);
            if !self.in_flight.is_empty() {
                // Polls in flight come back at the next tick.
                wake = wake.min(last_tick + TICK);
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                Some(command) = commands.recv() => match command {
                    Command::Reconfigure { feeds } => {
                        // Feeds that came back first, so that their new settings apply now.
                        if !self.take_back(&mut done) {
                            return;
                        }
                        self.reconfigure(feeds)
                    }
                    // A push is news to read now, not at the next tick: rare, so the
                    // release it brings forward costs nothing on the cheap path.
                    Command::Pushed(d) => {
                        self.pushed(d);
                        last_tick = tokio::time::Instant::now().checked_sub(TICK).unwrap_or(last_tick);
                    }
                    Command::PollSoon { feed } => {
                        self.poll_soon(feed);
                        last_tick = tokio::time::Instant::now().checked_sub(TICK).unwrap_or(last_tick);
                    }
                },
                _ = tokio::time::sleep_until(wake) => {
                    last_tick = tokio::time::Instant::now();
                    if !self.take_back(&mut done) {
                        return;
                    }
                    self.queue.pop_due(self.clock.now(), &mut ready);
                    if let Some(store) = self.shared.clone()
                        && !ready.is_empty()
                    {
                        self.lease(&store, &mut ready).await;
                    }
                    for id in ready.drain(..) {
                        let Some(mut state) = self.idle.remove(&id) else { continue };
                        state.pushed = self.pushes.get_mut(&id).and_then(VecDeque::pop_front);
                        self.in_flight.insert(id);
                        tokio::select! {
                            sent = due.send(state) => if sent.is_err() { return },
                            _ = stop.cancelled() => return,
                        }
                    }
                }
            }
        }
    }

    /// Takes back every feed whose poll is done; false when no stage can report back any
    /// more (shutting down).
    fn take_back(&mut self, done: &mut mpsc::UnboundedReceiver<FeedState>) -> bool {
        loop {
            match done.try_recv() {
                Ok(state) => self.returned(state),
                Err(mpsc::error::TryRecvError::Empty) => return true,
                Err(mpsc::error::TryRecvError::Disconnected) => return false,
            }
        }
    }
}

/// A feed's state after the config changed it: the new settings, the old polling history.
/// When its configured URL changed, the stored state (validators reset) wins.
fn merge(old: FeedState, new: FeedState) -> FeedState {
    if old.feed.url != new.feed.url {
        return new;
    }
    FeedState {
        feed: new.feed,
        ..old
    }
}

/// The stored state of every configured feed, after making the store's feeds match.
pub async fn feed_states(
    store: &crate::store::Store,
    config: &crate::config::Config,
) -> anyhow::Result<Vec<FeedState>> {
    let specs = config
        .feeds
        .iter()
        .map(|f| crate::store::FeedSpec {
            name: f.name.clone(),
            url: f.url.to_string(),
        })
        .collect();
    let stored = store.sync_feeds(specs).await?;
    let by_name: HashMap<&str, &Arc<crate::config::Feed>> =
        config.feeds.iter().map(|f| (f.name.as_str(), f)).collect();
    Ok(stored
        .iter()
        .filter_map(|s| Some(FeedState::new(s, Arc::clone(by_name.get(s.name.as_str())?))))
        .collect())
}

/// Each feed's store id and name.
pub fn feed_ids(feeds: &[FeedState]) -> Vec<(i64, String)> {
    feeds.iter().map(|f| (f.id, f.feed.name.clone())).collect()
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
        let t = Timestamp::from_millis;
        let mut q = Queue::new();
        q.schedule(1, t(300));
        q.schedule(2, t(100));
        q.schedule(3, t(200));
        q.schedule(1, t(50));
        assert_eq!(q.next_due(), Some(t(50)));
        let mut due = Vec::new();
        q.pop_due(t(200), &mut due);
        assert_eq!(due, vec![1, 2, 3]);
        assert!(q.is_empty());
        q.schedule(4, t(10));
        q.remove(4);
        assert_eq!(q.next_due(), None);
    }

    fn feed(id: i64, next: Option<Timestamp>) -> FeedState {
        let url = Url::parse(&format!("https://example.com/{id}.xml")).expect("url");
        FeedState {
            id,
            feed: Arc::new(crate::config::Feed {
                name: format!("f{id}"),
                url: url.clone(),
                interval: None,
                fetch_article: false,
                sinks: vec![],
                tags: vec![],
                backfill: crate::config::Backfill::All,
                max_item_age: None,
                websub: None,
                access: Default::default(),
            }),
            moved: None,
            validators: Validators::default(),
            errors_in_row: 0,
            polls: 1,
            guid_unreliable: false,
            rate: Rate::default(),
            last_ok_at: None,
            next_poll_at: next,
            pushed: None,
        }
    }

    struct Running {
        due: mpsc::Receiver<FeedState>,
        done: mpsc::UnboundedSender<FeedState>,
        commands: mpsc::Sender<Command>,
        stop: CancellationToken,
        clock: Clock,
    }

    fn start(feeds: impl FnOnce(&Clock) -> Vec<FeedState>) -> Running {
        let clock = Clock::new();
        let scheduler = Scheduler::new(clock, feeds(&clock), Duration::from_secs(900));
        let (due_tx, due) = mpsc::channel(16);
        let (done, done_rx) = mpsc::unbounded_channel();
        let (commands, commands_rx) = mpsc::channel(4);
        let stop = CancellationToken::new();
        tokio::spawn(scheduler.run(
            due_tx,
            done_rx,
            commands_rx,
            Arc::new(AtomicI64::new(0)),
            stop.clone(),
        ));
        Running {
            due,
            done,
            commands,
            stop,
            clock,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn feeds_come_due_at_their_time_and_together_within_a_tick() {
        let mut s = start(|c| {
            vec![
                feed(1, Some(c.now().after(Duration::from_secs(60)))),
                feed(2, Some(c.now().after(Duration::from_millis(60_050)))),
                feed(3, Some(c.now().after(Duration::from_secs(120)))),
            ]
        });
        let first = s.due.recv().await.expect("due");
        let elapsed = s.clock.now().since(s.clock.wall);
        assert_eq!(first.id, 1);
        assert!(elapsed >= Duration::from_secs(60), "{elapsed:?}");
        // Feed 2 is due 50 ms later: released in the next tick, not on a wake-up of its own.
        let second = s.due.recv().await.expect("due");
        assert_eq!(second.id, 2);
        let gap = s.clock.now().since(s.clock.wall) - elapsed;
        assert!(gap <= TICK, "{gap:?}");
        let third = s.due.recv().await.expect("due");
        assert_eq!(third.id, 3);
        assert!(s.clock.now().since(s.clock.wall) >= Duration::from_secs(120));
        s.stop.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn a_returned_feed_is_polled_again_at_its_next_time() {
        let mut s = start(|c| vec![feed(1, Some(c.now()))]);
        let mut f = s.due.recv().await.expect("due");
        let back_at = s.clock.now().after(Duration::from_secs(300));
        f.next_poll_at = Some(back_at);
        f.errors_in_row = 2;
        s.done.send(f).expect("send");
        let again = s.due.recv().await.expect("due again");
        assert!(s.clock.now() >= back_at);
        assert_eq!(
            again.errors_in_row, 2,
            "the state comes back as it was returned"
        );
        s.stop.cancel();
    }

    fn distribution(feed_id: i64, body: &str) -> crate::websub::Distribution {
        crate::websub::Distribution {
            feed_id,
            body: body.as_bytes().to_vec(),
            content_type: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_pushed_feed_is_released_at_once_with_its_distribution() {
        let mut s = start(|c| vec![feed(1, Some(c.now().after(Duration::from_secs(3600))))]);
        let pushed_at = s.clock.now();
        s.commands
            .send(Command::Pushed(distribution(1, "<feed/>")))
            .await
            .expect("send");
        let f = s.due.recv().await.expect("due");
        assert!(
            s.clock.now().since(pushed_at) <= TICK,
            "released within a tick"
        );
        assert_eq!(f.pushed, Some(distribution(1, "<feed/>")));
        s.stop.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn a_distribution_for_a_feed_in_flight_waits_for_its_return() {
        let mut s = start(|c| vec![feed(1, Some(c.now()))]);
        let mut f = s.due.recv().await.expect("due");
        assert_eq!(f.pushed, None, "a scheduled poll fetches");
        // Pushed while the poll is in flight: at most one poll per feed, so it waits.
        s.commands
            .send(Command::Pushed(distribution(1, "a")))
            .await
            .expect("send");
        let early = tokio::time::timeout(Duration::from_secs(1), s.due.recv()).await;
        assert!(early.is_err(), "released while its poll was in flight");
        f.next_poll_at = Some(s.clock.now().after(Duration::from_secs(3600)));
        s.done.send(f).expect("send");
        let again = tokio::time::timeout(Duration::from_secs(1), s.due.recv())
            .await
            .expect("released on return, not an hour later")
            .expect("due");
        assert_eq!(again.pushed, Some(distribution(1, "a")));
        s.stop.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn a_feed_whose_hub_went_away_is_polled_now() {
        let mut s = start(|c| vec![feed(1, Some(c.now().after(Duration::from_secs(6 * 3600))))]);
        s.commands
            .send(Command::PollSoon { feed: 1 })
            .await
            .expect("send");
        let f = tokio::time::timeout(Duration::from_secs(1), s.due.recv())
            .await
            .expect("polled now, not at the safety net's time")
            .expect("due");
        assert_eq!(f.pushed, None);
        s.stop.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn a_feed_whose_hub_went_away_while_in_flight_is_polled_when_it_returns() {
        let mut s = start(|c| vec![feed(1, Some(c.now()))]);
        let mut f = s.due.recv().await.expect("due");
        s.commands
            .send(Command::PollSoon { feed: 1 })
            .await
            .expect("send");
        // Paused time moves only once the scheduler has taken the command.
        tokio::time::sleep(Duration::from_millis(1)).await;
        // The poll's record was made while the hub still pushed: the safety net's time.
        f.next_poll_at = Some(s.clock.now().after(Duration::from_secs(6 * 3600)));
        s.done.send(f).expect("send");
        let again = tokio::time::timeout(Duration::from_secs(1), s.due.recv())
            .await
            .expect("polled again at once, not at the safety net's time")
            .expect("due");
        assert_eq!(again.id, 1);
        s.stop.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn a_gone_feed_is_not_polled_again() {
        let mut s = start(|c| vec![feed(1, Some(c.now()))]);
        let mut f = s.due.recv().await.expect("due");
        f.next_poll_at = Some(Timestamp::NEVER);
        s.done.send(f).expect("send");
        let nothing = tokio::time::timeout(Duration::from_secs(2 * 24 * 3600), s.due.recv()).await;
        assert!(nothing.is_err(), "a gone feed came due again");
        s.stop.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn reconfigure_drops_removed_feeds_even_in_flight_and_adds_new_ones() {
        let mut s = start(|c| {
            vec![
                feed(1, Some(c.now())),
                feed(2, Some(c.now().after(Duration::from_secs(3600)))),
            ]
        });
        let in_flight = s.due.recv().await.expect("feed 1 is polled");
        assert_eq!(in_flight.id, 1);
        // Feed 1 (in flight) and 2 (idle) are removed, feed 3 is added.
        s.commands
            .send(Command::Reconfigure {
                feeds: vec![feed(3, None)],
            })
            .await
            .expect("send");
        let mut returned = in_flight;
        returned.next_poll_at = Some(s.clock.now());
        s.done.send(returned).expect("send");
        let next = s.due.recv().await.expect("feed 3 comes due");
        assert_eq!(next.id, 3);
        let nothing = tokio::time::timeout(Duration::from_secs(2 * 3600), s.due.recv()).await;
        assert!(
            nothing.is_err(),
            "a removed feed came due: {:?}",
            nothing.map(|f| f.map(|f| f.id))
        );
        s.stop.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn a_changed_feed_keeps_its_history_and_takes_its_new_settings() {
        let mut s = start(|c| vec![feed(1, Some(c.now().after(Duration::from_secs(60))))]);
        let mut changed = feed(1, None);
        let mut settings = (*changed.feed).clone();
        settings.tags = vec!["new".into()];
        changed.feed = Arc::new(settings);
        changed.polls = 0;
        s.commands
            .send(Command::Reconfigure {
                feeds: vec![changed],
            })
            .await
            .expect("send");
        let f = s.due.recv().await.expect("due");
        assert_eq!(f.feed.tags, vec!["new".to_string()]);
        assert_eq!(f.polls, 1, "the polling history is kept");
        assert!(
            s.clock.now().since(s.clock.wall) >= Duration::from_secs(60),
            "and its time"
        );
        s.stop.cancel();
    }
}
