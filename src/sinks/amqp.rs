//! The AMQP 0-9-1 sink (RabbitMQ): each event published to an exchange with a routing key
//! made from its feed and type, as a persistent message whose `message_id` is the event's
//! `webhook-id`, and accepted only once the broker confirmed it (publisher confirms). A
//! message no queue takes is returned (`mandatory`) and counts as a failure, not a delivery.

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::uri::{AMQPUri, AMQPUserInfo};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use tokio::sync::Mutex;

use super::payload::route_of;
use super::queue::{failure, read_secret, timed};
use super::webhook::SecretError;
use super::{BrokerFault, DeliverFuture, Fault, Outgoing, Sink, SinkError, TransportKind};
use crate::config::{Amqp, BrokerAuth};

/// AMQP `delivery_mode` 2: the broker writes the message to disk (in a durable queue).
const PERSISTENT: u8 = 2;

/// The name feedwire gives its connections, as the broker's management lists them.
const CLIENT_NAME: &str = "feedwire";

pub struct AmqpSink {
    config: Amqp,
    /// The broker's address with the credentials filled in; never logged.
    uri: AMQPUri,
    /// The connection and its confirming channel, made on the first delivery; dropped
    /// after an error so that the next delivery opens fresh ones.
    channel: Mutex<Option<(Connection, Channel)>>,
}

impl AmqpSink {
    pub fn new(config: &Amqp) -> Result<AmqpSink, SecretError> {
        let mut uri: AMQPUri = config
            .url
            .as_str()
            .parse()
            .map_err(|e: String| SecretError::Client(format!("bad AMQP url: {e}")))?;
        match &config.auth {
            BrokerAuth::None => {}
            BrokerAuth::Password { username, password } => {
                uri.authority.userinfo = AMQPUserInfo {
                    username: username.clone(),
                    password: read_secret(password)?,
                };
            }
            BrokerAuth::Token(_) => {
                return Err(SecretError::Client(
                    "an AMQP sink takes a username and password, not a token".into(),
                ));
            }
        }
        Ok(AmqpSink {
            config: config.clone(),
            uri,
            channel: Mutex::new(None),
        })
    }

    async fn channel(&self) -> Result<Channel, SinkError> {
        let mut guard = self.channel.lock().await;
        if let Some((conn, channel)) = guard.as_ref() {
            if conn.status().connected() && channel.status().connected() {
                return Ok(channel.clone());
            }
            *guard = None;
        }
        let url = &self.config.url;
        let properties = ConnectionProperties::default().with_connection_name(CLIENT_NAME.into());
        let conn = lapin::Connect::connect(self.uri.clone(), properties)
            .await
            .map_err(|e| {
                failure(
                    Fault::Transport(TransportKind::Connect),
                    format!("cannot reach {url}: {e}"),
                )
            })?;
        let channel = conn.create_channel().await.map_err(|e| {
            failure(
                Fault::Transport(TransportKind::Protocol),
                format!("cannot open a channel on {url}: {e}"),
            )
        })?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| {
                failure(
                    Fault::Transport(TransportKind::Protocol),
                    format!("{url} refused publisher confirms: {e}"),
                )
            })?;
        *guard = Some((conn, channel.clone()));
        Ok(channel)
    }

    /// Forgets the connection after a failure: a closed channel is not reused.
    async fn reset(&self) {
        if let Some((conn, _)) = self.channel.lock().await.take() {
            // Best effort: the broker may already be gone.
            let _ = conn.close(0, "feedwire reconnects".into()).await;
        }
    }

    async fn publish(&self, event: Outgoing<'_>) -> Result<(), SinkError> {
        let route = route_of(event.body).ok_or_else(|| {
            failure(
                Fault::Unsendable,
                "the event body is not a feedwire payload".into(),
            )
        })?;
        let key = self.config.routing_key.render(&route);
        let exchange = &self.config.exchange;
        let channel = self.channel().await?;
        let properties = BasicProperties::default()
            .with_delivery_mode(PERSISTENT)
            .with_message_id(event.webhook_id.into())
            .with_content_type("application/json".into())
            .with_type(route.kind.as_str().into());
        let options = BasicPublishOptions {
            // Unroutable messages come back instead of vanishing.
            mandatory: true,
            ..Default::default()
        };
        let confirm = channel
            .basic_publish(
                exchange.as_str().into(),
                key.as_str().into(),
                options,
                event.body.as_bytes(),
                properties,
            )
            .await;
        let confirmation = match confirm {
            Ok(pending) => pending.await,
            Err(e) => Err(e),
        };
        let failure_kind: (Fault, String) = match confirmation {
            Ok(Confirmation::Ack(None)) => return Ok(()),
            Ok(Confirmation::Ack(Some(returned))) => {
                return Err(failure(
                    Fault::Broker(BrokerFault::NoDestination),
                    format!(
                        "exchange {exchange:?} routes {key:?} to no queue: {} {}",
                        returned.reply_code, returned.reply_text
                    ),
                ));
            }
            Ok(Confirmation::Nack(_)) => (
                Fault::Broker(BrokerFault::Busy),
                format!("the broker refused the message for {key:?}"),
            ),
            Ok(Confirmation::NotRequested) => (
                Fault::Transport(TransportKind::Protocol),
                "the broker did not confirm the message".into(),
            ),
            // A closed channel: a missing exchange (404) closes it too, hence reconnecting.
            Err(e) => (
                Fault::Transport(TransportKind::Closed),
                format!("cannot publish to exchange {exchange:?}: {e}"),
            ),
        };
        self.reset().await;
        Err(failure(failure_kind.0, failure_kind.1))
    }
}

impl Sink for AmqpSink {
    fn deliver<'a>(&'a self, event: Outgoing<'a>) -> DeliverFuture<'a> {
        Box::pin(async move {
            let result = timed(self.config.delivery.timeout, "confirm", self.publish(event)).await;
            if result
                .as_ref()
                .is_err_and(|e| e.fault == Fault::Transport(TransportKind::Timeout))
            {
                // The channel may still owe the confirm: start the next attempt on a new one.
                self.reset().await;
            }
            result
        })
    }

    fn concurrency(&self) -> usize {
        self.config.delivery.concurrency
    }
}
