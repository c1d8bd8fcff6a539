//! Logging setup: human text on a terminal, JSON lines under systemd; `RUST_LOG` filtering.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Whether `auto` means JSON: under systemd (its journal or a service manager started us).
fn under_systemd() -> bool {
    std::env::var_os("JOURNAL_STREAM").is_some() || std::env::var_os("INVOCATION_ID").is_some()
}

/// Installs the global subscriber writing to standard error (standard output is for the
/// log sink's JSON lines). Safe to call twice; the second call does nothing.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => under_systemd(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    } else {
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
    };
}

// ---- metrics ----------------------------------------------------------------------------------

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ItemLabel {
    /// `new` or `duplicate`.
    pub kind: &'static str,
    /// For duplicates: `url`, `content` or `near`; empty for new items.
    pub reason: &'static str,
}

/// Why a new item was stored as seen without being sent.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NotSentLabel {
    /// `rule`, `max_item_age` or `backfill`.
    pub reason: String,
    /// The rule's name, for `reason="rule"`; else empty.
    pub rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabel {
    pub sink: String,
    /// `delivered`, `retry` or `dead`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkLabel {
    pub sink: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkStateLabel {
    pub sink: String,
    /// One of [`SINK_STATES`].
    pub state: &'static str,
}

/// The values of `feedwire_sink_state`'s `state` label: each sink has 1 on one of them.
pub const SINK_STATES: [&str; 3] = ["up", "failing", "paused"];

/// Every metric the daemon exports, by name, in one place (prefix `feedwire_`, base units,
/// counters end in `_total`; no URL labels). Counters live as long as the process, across
/// reloads; gauges are read from the store when scraped.
pub struct Metrics {
    registry: Registry,
    /// `feedwire_polls_total{outcome="ok|not_modified|error"}`
    pub polls: Family<OutcomeLabel, Counter>,
    /// `feedwire_items_total{kind, reason}`
    pub items: Family<ItemLabel, Counter>,
    /// `feedwire_items_not_sent_total{reason="rule|max_item_age|backfill", rule}`
    pub items_not_sent: Family<NotSentLabel, Counter>,
    /// `feedwire_extractions_total{outcome="article|fallback"}`
    pub extractions: Family<OutcomeLabel, Counter>,
    /// `feedwire_extraction_duration_seconds`: fetch and clean of one article page.
    pub extraction_seconds: Histogram,
    /// `feedwire_deliveries_total{sink, outcome}`
    pub deliveries: Family<DeliveryLabel, Counter>,
    /// `feedwire_outbox_pending{sink}`
    pub outbox_pending: Family<SinkLabel, Gauge>,
    /// `feedwire_outbox_oldest_pending_age_seconds{sink}`
    pub outbox_oldest_seconds: Family<SinkLabel, Gauge<f64, AtomicU64>>,
    /// `feedwire_sink_state{sink, state="up|failing|paused"}`: 1 for the sink's state, else 0.
    pub sink_state: Family<SinkStateLabel, Gauge>,
    /// `feedwire_feeds_in_error`
    pub feeds_in_error: Gauge,
    /// `feedwire_feeds`
    pub feeds: Gauge,
    /// `feedwire_websub_requests_total{outcome}`: requests on the WebSub callback, one of
    /// [`WEBSUB_OUTCOMES`].
    pub websub_requests: Family<OutcomeLabel, Counter>,
}

/// What became of a request on the WebSub callback: `verified` (challenge echoed), `denied`
/// (the hub's denial recorded), `not_ours` (404), `accepted` (a distribution handed on),
/// `rejected` (unsigned or wrongly signed), `rate_limited`, `busy`.
pub const WEBSUB_OUTCOMES: [&str; 7] = [
    "verified",
    "denied",
    "not_ours",
    "accepted",
    "rejected",
    "rate_limited",
    "busy",
];

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("feedwire");
        let polls = Family::<OutcomeLabel, Counter>::default();
        registry.register("polls", "Feed polls by outcome", polls.clone());
        let items = Family::<ItemLabel, Counter>::default();
        registry.register(
            "items",
            "Items stored, new or duplicate by reason",
            items.clone(),
        );
        let items_not_sent = Family::<NotSentLabel, Counter>::default();
        registry.register(
            "items_not_sent",
            "New items stored as seen but not sent, by reason and rule",
            items_not_sent.clone(),
        );
        let extractions = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "extractions",
            "Article pages: cleaned, or fallback to the feed's content",
            extractions.clone(),
        );
        let extraction_seconds = Histogram::new([0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]);
        registry.register_with_unit(
            "extraction_duration",
            "Time to fetch and clean one article page",
            prometheus_client::registry::Unit::Seconds,
            extraction_seconds.clone(),
        );
        let deliveries = Family::<DeliveryLabel, Counter>::default();
        registry.register(
            "deliveries",
            "Delivery attempts by sink and outcome",
            deliveries.clone(),
        );
        let outbox_pending = Family::<SinkLabel, Gauge>::default();
        registry.register(
            "outbox_pending",
            "Deliveries waiting per sink",
            outbox_pending.clone(),
        );
        let outbox_oldest_seconds = Family::<SinkLabel, Gauge<f64, AtomicU64>>::default();
        registry.register_with_unit(
            "outbox_oldest_pending_age",
            "Age of the oldest waiting delivery per sink",
            prometheus_client::registry::Unit::Seconds,
            outbox_oldest_seconds.clone(),
        );
        let sink_state = Family::<SinkStateLabel, Gauge>::default();
        registry.register(
            "sink_state",
            "Each sink's delivery state: 1 on up, failing or paused",
            sink_state.clone(),
        );
        let feeds_in_error = Gauge::default();
        registry.register(
            "feeds_in_error",
            "Feeds whose last poll failed",
            feeds_in_error.clone(),
        );
        let feeds = Gauge::default();
        registry.register("feeds", "Feeds configured", feeds.clone());
        let websub_requests = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "websub_requests",
            "Requests on the WebSub callback by outcome",
            websub_requests.clone(),
        );
        registry.register(
            "build",
            "Build information",
            Info::new(vec![(
                "version".to_string(),
                env!("CARGO_PKG_VERSION").to_string(),
            )]),
        );
        Metrics {
            registry,
            polls,
            items,
            items_not_sent,
            extractions,
            extraction_seconds,
            deliveries,
            outbox_pending,
            outbox_oldest_seconds,
            sink_state,
            feeds_in_error,
            feeds,
            websub_requests,
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    pub fn websub(&self, outcome: &'static str) {
        self.websub_requests
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    pub fn poll(&self, outcome: &'static str) {
        self.polls.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    /// Sets `feedwire_sink_state` for `sink`: 1 on `state`, 0 on the others.
    pub fn sink_state(&self, sink: &str, state: &str) {
        for s in SINK_STATES {
            self.sink_state
                .get_or_create(&SinkStateLabel {
                    sink: sink.to_string(),
                    state: s,
                })
                .set(i64::from(s == state));
        }
    }

    /// Drops `feedwire_sink_state` of a sink that is no longer running (a reload removed or
    /// replaced it; a replacement sets its state again when it starts).
    pub fn forget_sink(&self, sink: &str) {
        for s in SINK_STATES {
            self.sink_state.remove(&SinkStateLabel {
                sink: sink.to_string(),
                state: s,
            });
        }
    }

    pub fn delivery(&self, sink: &str, outcome: &'static str) {
        self.deliveries
            .get_or_create(&DeliveryLabel {
                sink: sink.to_string(),
                outcome,
            })
            .inc();
    }
}
