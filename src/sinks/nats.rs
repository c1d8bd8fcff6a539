//! The NATS JetStream sink: each event published to a subject made from its feed and type,
//! with `Nats-Msg-Id` set to the event's `webhook-id`, and accepted only once the stream's
//! PubAck came back. A publish repeated after a crash (the ack was never recorded) carries
//! the same id, so JetStream's duplicate window drops the copy.

use async_nats::jetstream::{self, context::PublishErrorKind, message::PublishMessage, stream};
use tokio::sync::Mutex;

use super::payload::route_of;
use super::queue::{Template, failure, read_secret, timed};
use super::webhook::SecretError;
use super::{BrokerFault, DeliverFuture, Fault, Outgoing, Sink, SinkError, TransportKind};
use crate::config::{BrokerAuth, Nats};

/// The name feedwire gives its connections, as the server's monitoring lists them.
const CLIENT_NAME: &str = "feedwire";

pub struct NatsSink {
    config: Nats,
    /// Resolved once at start: a missing variable or file is a config error, not a retry.
    auth: Credentials,
    /// The JetStream context, made on the first delivery and kept: the client reconnects
    /// on its own. A failed connect leaves it empty, so the next delivery tries again.
    context: Mutex<Option<jetstream::Context>>,
}

enum Credentials {
    None,
    Password(String, String),
    Token(String),
}

impl NatsSink {
    pub fn new(config: &Nats) -> Result<NatsSink, SecretError> {
        let auth = match &config.auth {
            BrokerAuth::None => Credentials::None,
            BrokerAuth::Password { username, password } => {
                Credentials::Password(username.clone(), read_secret(password)?)
            }
            BrokerAuth::Token(source) => Credentials::Token(read_secret(source)?),
        };
        Ok(NatsSink {
            config: config.clone(),
            auth,
            context: Mutex::new(None),
        })
    }

    /// The JetStream context, connecting (and creating the stream, when asked) first.
    async fn context(&self) -> Result<jetstream::Context, SinkError> {
        let mut guard = self.context.lock().await;
        if let Some(ctx) = guard.as_ref() {
            return Ok(ctx.clone());
        }
        let options = match &self.auth {
            Credentials::None => async_nats::ConnectOptions::new(),
            Credentials::Password(user, pass) => {
                async_nats::ConnectOptions::with_user_and_password(user.clone(), pass.clone())
            }
            Credentials::Token(token) => async_nats::ConnectOptions::with_token(token.clone()),
        }
        .name(CLIENT_NAME)
        .connection_timeout(self.config.delivery.timeout);
        let url = self.config.url.as_str();
        let client = options.connect(url).await.map_err(|e| {
            failure(
                Fault::Transport(TransportKind::Connect),
                format!("cannot reach {url}: {e}"),
            )
        })?;
        let mut ctx = jetstream::new(client);
        ctx.set_timeout(self.config.delivery.timeout);
        if let (Some(name), true) = (&self.config.stream, self.config.create_stream) {
            let subjects = stream_subjects(&self.config.subject);
            ctx.get_or_create_stream(stream::Config {
                name: name.clone(),
                subjects: vec![subjects],
                duplicate_window: self.config.duplicate_window,
                ..Default::default()
            })
            .await
            .map_err(|e| {
                failure(
                    Fault::Broker(BrokerFault::NoDestination),
                    format!("cannot create stream {name}: {e}"),
                )
            })?;
        }
        *guard = Some(ctx.clone());
        Ok(ctx)
    }

    async fn publish(&self, event: Outgoing<'_>) -> Result<(), SinkError> {
        let route = route_of(event.body).ok_or_else(|| {
            failure(
                Fault::Unsendable,
                "the event body is not a feedwire payload".into(),
            )
        })?;
        let subject = self.config.subject.render(&route);
        let ctx = self.context().await?;
        let mut message = PublishMessage::build()
            .payload(event.body.to_string().into())
            .message_id(event.webhook_id);
        if let Some(name) = &self.config.stream {
            // The event must land in this stream, not in whichever one captures the subject.
            message = message.expected_stream(name);
        }
        let ack = ctx
            .send_publish(subject.clone(), message)
            .await
            .map_err(|e| publish_error(&subject, e.kind(), &e.to_string()))?
            .await
            .map_err(|e| publish_error(&subject, e.kind(), &e.to_string()))?;
        if ack.duplicate {
            tracing::debug!(subject = %subject, id = event.webhook_id, "already in the stream");
        }
        Ok(())
    }
}

impl Sink for NatsSink {
    fn deliver<'a>(&'a self, event: Outgoing<'a>) -> DeliverFuture<'a> {
        // The ack wait has the same timeout; this one also bounds the connect and a publish
        // waiting for room in the client's buffer.
        Box::pin(timed(
            self.config.delivery.timeout,
            "PubAck",
            self.publish(event),
        ))
    }

    fn concurrency(&self) -> usize {
        self.config.delivery.concurrency
    }
}

/// The subjects of a stream feedwire creates: every subject the template can make, that is
/// its fixed leading tokens followed by `>` (or the subject itself when it has no
/// placeholder). The config check makes sure there is a fixed leading token.
pub fn stream_subjects(subject: &Template) -> String {
    if !subject.has_placeholders() {
        return subject.as_str().to_string();
    }
    let prefix = subject.fixed_prefix();
    // Only whole tokens: "feedwire.x{feed}" keeps "feedwire." and not the partial "x".
    let whole = &prefix[..prefix.rfind('.').map_or(0, |i| i + 1)];
    format!("{whole}>")
}

/// Why a subject template cannot be used by NATS: subjects are dot-separated tokens without
/// spaces or wildcards.
pub fn subject_problem(subject: &Template, create_stream: bool) -> Option<String> {
    let sample = subject.render(&super::payload::Route {
        kind: "item.new".into(),
        feed: "feed".into(),
    });
    if sample.chars().any(char::is_whitespace) {
        return Some("a NATS subject has no spaces".into());
    }
    if sample.split('.').any(|t| t.is_empty()) {
        return Some(
            "a NATS subject has no empty tokens (no leading, trailing or double dots)".into(),
        );
    }
    if sample.split('.').any(|t| t == "*" || t == ">") {
        return Some("a NATS subject to publish to has no wildcards".into());
    }
    if create_stream && subject.has_placeholders() && stream_subjects(subject) == ">" {
        return Some(
            "a stream feedwire creates needs a subject that begins with a fixed token, like \"feedwire.{feed}.{type}\"".into(),
        );
    }
    None
}

fn publish_error(subject: &str, kind: PublishErrorKind, error: &str) -> SinkError {
    let fault = match kind {
        // The same message can never fit, nor meet a failed expectation.
        PublishErrorKind::MaxPayloadExceeded
        | PublishErrorKind::WrongLastMessageId
        | PublishErrorKind::WrongLastSequence => Fault::Broker(BrokerFault::Rejected),
        PublishErrorKind::StreamNotFound => Fault::Broker(BrokerFault::NoDestination),
        PublishErrorKind::TimedOut => Fault::Transport(TransportKind::Timeout),
        PublishErrorKind::BrokenPipe => Fault::Transport(TransportKind::Closed),
        // Too many acks outstanding, or the server's error answer: may pass.
        _ => Fault::Broker(BrokerFault::Busy),
    };
    failure(fault, format!("cannot publish to {subject}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Template {
        Template::parse(s).expect("valid template")
    }

    #[test]
    fn created_streams_capture_every_subject_the_template_makes() {
        assert_eq!(stream_subjects(&t("feedwire.{feed}.{type}")), "feedwire.>");
        assert_eq!(stream_subjects(&t("news.fw{feed}")), "news.>");
        assert_eq!(stream_subjects(&t("news.items")), "news.items");
        assert_eq!(stream_subjects(&t("{feed}.x")), ">");
    }

    #[test]
    fn subjects_nats_cannot_take_are_named() {
        assert!(subject_problem(&t("feedwire.{feed}.{type}"), true).is_none());
        assert!(subject_problem(&t("a b.{feed}"), false).is_some());
        assert!(subject_problem(&t("a..{feed}"), false).is_some());
        assert!(subject_problem(&t("a.*.{feed}"), false).is_some());
        assert!(subject_problem(&t("{feed}.{type}"), false).is_none());
        assert!(subject_problem(&t("{feed}.{type}"), true).is_some());
    }
}
