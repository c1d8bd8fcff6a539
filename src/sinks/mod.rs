//! Where events go: a JSON Lines log, webhooks and message brokers (NATS JetStream, AMQP),
//! behind one [`Sink`] trait; and the payload they all carry.
//!
//! A sink reports facts about a failed delivery ([`SinkError`]: what the receiver answered,
//! or how the transport failed, its `Retry-After`, how long the attempt took); it never
//! decides whether to retry. `outbox::decide` does, for every sink type alike.

pub mod amqp;
pub mod log;
pub mod nats;
pub mod payload;
pub mod presets;
pub mod sample;
pub mod queue;
pub mod template;
pub mod webhook;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{self, SinkKind};
use crate::outbox::RetryPolicy;

/// Why a delivery did not succeed, as the sink observed it. `message` is what operators
/// read (`feedwire deliveries`, the logs); the other fields are what the retry decision
/// reads.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct SinkError {
    pub fault: Fault,
    /// The receiver's own request to wait (HTTP `Retry-After`, a broker's back-off hint).
    pub retry_after: Option<Duration>,
    /// How long the attempt took, until the failure was known.
    pub elapsed: Duration,
    pub message: String,
}

/// What went wrong, in terms every sink type can report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The receiver answered with this HTTP status, not a 2xx. Sinks that speak HTTP (webhooks,
    /// chat presets) report the status as received; what it means is decided elsewhere.
    Status(u16),
    /// A message broker (NATS JetStream, AMQP) answered with a negative acknowledgement; the
    /// sink maps its protocol's codes to these kinds, and quotes the code in `message`.
    Broker(BrokerFault),
    /// No answer: the event did not reach the receiver, or its answer never came back.
    Transport(TransportKind),
    /// The sink cannot make a request of this event at all (its body is not a payload the
    /// sink can render): sending it again fails again, and the receiver was never asked.
    Unsendable,
}

/// A broker's refusal, in the terms common to brokers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerFault {
    /// Up, but cannot take messages now: a full stream, a resource alarm, flow control, no
    /// responders for the moment.
    Busy,
    /// This message is refused as such (too large, malformed headers); sending it again fails
    /// again.
    Rejected,
    /// Credentials or permissions refused.
    Denied,
    /// The destination (stream, subject, exchange) does not exist or is no longer there.
    NoDestination,
}

/// How a request failed without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// Could not connect: refused, unreachable, name not resolved, TLS handshake failed.
    Connect,
    /// The connection was closed or reset before an answer came.
    Closed,
    /// No answer within the sink's timeout.
    Timeout,
    /// The answer was not the protocol's (garbled HTTP, a frame the broker never sends).
    Protocol,
    /// A local write failed (a full disk, a closed pipe): the log sink's "receiver".
    Io,
}

/// How a request that got no answer failed, from reqwest's error (for the sinks that speak
/// HTTP).
pub(crate) fn transport_kind(e: &reqwest::Error) -> TransportKind {
    if e.is_timeout() {
        TransportKind::Timeout
    } else if e.is_connect() {
        TransportKind::Connect
    } else if e.is_decode() {
        TransportKind::Protocol
    } else {
        // Sent (or being sent) and then the connection went away: closed, reset, or an
        // answer cut short.
        TransportKind::Closed
    }
}

impl SinkError {
    /// The HTTP status, kept with the row for `feedwire deliveries`.
    pub fn status(&self) -> Option<u16> {
        match self.fault {
            Fault::Status(s) => Some(s),
            _ => None,
        }
    }
}

/// One event handed to a sink.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing<'a> {
    /// Stable per event and sink, identical on every attempt.
    pub webhook_id: &'a str,
    pub body: &'a str,
}

pub type DeliverFuture<'a> = Pin<Box<dyn Future<Output = Result<(), SinkError>> + Send + 'a>>;

/// A destination for events. `deliver` returns `Ok` only once the event is accepted; the
/// outbox row is acknowledged after that and not before. On failure it returns the facts
/// ([`SinkError`]) and nothing more: retry, dead letter and pausing the sink are decided by
/// the delivery worker, the same way for every sink type.
pub trait Sink: Send + Sync {
    fn deliver<'a>(&'a self, event: Outgoing<'a>) -> DeliverFuture<'a>;

    /// Events this sink may have in flight at once.
    fn concurrency(&self) -> usize {
        1
    }

    /// Events claimed per round trip to the store; delivered `concurrency` at a time.
    fn batch_size(&self) -> usize {
        self.concurrency()
    }
}

/// Why a sink could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot open its log file: {0}")]
    Log(#[source] std::io::Error),
    #[error(transparent)]
    Webhook(#[from] webhook::SecretError),
    #[error(transparent)]
    Preset(#[from] presets::PresetError),
}

/// A queue sink retries as a webhook does.
fn queue_policy(d: &config::QueueDelivery) -> RetryPolicy {
    RetryPolicy {
        max_attempts: d.max_attempts,
        max_age: Some(d.max_age),
        schedule: d.retry_schedule.clone(),
    }
}

/// The sink a configured `[sinks.NAME]` describes, and how its deliveries are retried.
pub fn build(
    sink: &config::Sink,
    user_agent: &str,
) -> Result<(Arc<dyn Sink>, RetryPolicy), SetupError> {
    Ok(match &sink.kind {
        SinkKind::Log { path } => (
            Arc::new(log::LogSink::new(path.clone()).map_err(SetupError::Log)?),
            RetryPolicy::forever(),
        ),
        SinkKind::Webhook(w) => (
            Arc::new(webhook::WebhookSink::new(w, user_agent)?),
            RetryPolicy {
                max_attempts: w.max_attempts,
                max_age: Some(w.max_age),
                schedule: w.retry_schedule.clone(),
            },
        ),
        SinkKind::Nats(n) => (Arc::new(nats::NatsSink::new(n)?), queue_policy(&n.delivery)),
        SinkKind::Amqp(a) => (Arc::new(amqp::AmqpSink::new(a)?), queue_policy(&a.delivery)),
        SinkKind::Preset(p) => (
            Arc::new(presets::PresetSink::new(
                &p.preset,
                user_agent,
                p.timeout,
                p.concurrency,
            )?),
            RetryPolicy {
                max_attempts: p.max_attempts,
                max_age: Some(p.max_age),
                schedule: p.retry_schedule.clone(),
            },
        ),
    })
}
