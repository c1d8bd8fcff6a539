//! Where events go: a JSON Lines log, webhooks and message brokers (NATS JetStream, AMQP),
//! behind one [`Sink`] trait; and the payload they all carry.

pub mod amqp;
pub mod log;
pub mod nats;
pub mod payload;
pub mod presets;
pub mod queue;
pub mod template;
pub mod webhook;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// Why a delivery did not succeed, and whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// A failure that may pass (network, 5xx, 429, a full disk); `retry_after` is the
    /// receiver's own request, when it made one.
    #[error("{message}")]
    Retryable {
        status: Option<u16>,
        message: String,
        retry_after: Option<Duration>,
    },
    /// A failure that repeating the same request will not fix (a 4xx).
    #[error("{message}")]
    Permanent {
        status: Option<u16>,
        message: String,
    },
}

impl SinkError {
    pub fn status(&self) -> Option<u16> {
        match self {
            SinkError::Retryable { status, .. } | SinkError::Permanent { status, .. } => *status,
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
/// outbox row is acknowledged after that and not before.
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
