//! The keys of the queue sinks, `type = "nats"` and `type = "amqp"`: broker address,
//! subject or routing key, credentials (from the environment or a file, never inline) and
//! the same retry keys as a webhook.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use url::Url;

use super::defaults as d;
use super::read::{Flag, Int, Leaf, List, Problems, Table, Text};
use super::{Amqp, BrokerAuth, Nats, QueueDelivery, SecretSource};
use crate::sinks::queue::Template;

pub(super) fn nats(t: &Table<'_>) -> Option<Nats> {
    let url = broker_url(t, &["nats", "tls"], "nats://127.0.0.1:4222");
    let create_stream = t.get::<Flag>("create_stream").unwrap_or(false);
    let subject = template(t, "subject");
    if let Some(s) = &subject
        && let Some(problem) = crate::sinks::nats::subject_problem(s, create_stream)
    {
        t.problem("subject", problem);
    }
    let stream = t.get::<Text>("stream");
    if let Some(s) = &stream
        && (s.is_empty() || s.contains(['.', '*', '>', ' ', '\t', '/', '\\']))
    {
        t.problem(
            "stream",
            format!("{s:?} is not a stream name: no dots, spaces, slashes or wildcards"),
        );
    }
    if create_stream && stream.is_none() {
        t.problem(
            "create_stream",
            "name the stream to create with stream = \"…\"",
        );
    }
    let duplicate_window = t
        .get::<Duration>("duplicate_window")
        .unwrap_or(d::NATS_DUPLICATE_WINDOW);
    if t.has("duplicate_window") && !create_stream {
        t.problem(
            "duplicate_window",
            "applies to a stream feedwire creates (create_stream = true)",
        );
    }
    let auth = auth(t, true);
    let delivery = delivery(t);
    Some(Nats {
        url: url?,
        subject: subject?,
        stream,
        create_stream,
        duplicate_window,
        auth,
        delivery,
    })
}

pub(super) fn amqp(t: &Table<'_>) -> Option<Amqp> {
    let url = broker_url(t, &["amqp", "amqps"], "amqp://127.0.0.1:5672/%2f");
    let exchange = t.get::<Text>("exchange");
    if !t.has("exchange") {
        t.problem(
            "exchange",
            "an amqp sink needs an exchange (\"\" is the default exchange)",
        );
    }
    let routing_key = template(t, "routing_key");
    let auth = auth(t, false);
    let delivery = delivery(t);
    Some(Amqp {
        url: url?,
        exchange: exchange?,
        routing_key: routing_key?,
        auth,
        delivery,
    })
}

/// A subject or routing key with `{feed}` / `{type}` placeholders.
struct TemplateLeaf;

impl Leaf for TemplateLeaf {
    type Out = Template;
    fn read(value: &Value, path: &str, problems: &Problems) -> Option<Template> {
        let text = Text::read(value, path, problems)?;
        Template::parse(&text)
            .map_err(|e| problems.add(path, format!("{text:?}: {e}")))
            .ok()
    }
}

fn template(t: &Table<'_>, key: &str) -> Option<Template> {
    if t.has(key) {
        t.get::<TemplateLeaf>(key)
    } else {
        Some(Template::parse(d::QUEUE_SUBJECT).expect("the default template is valid"))
    }
}

/// A broker's address: one of `schemes`, a host, and no credentials in it.
fn broker_url(t: &Table<'_>, schemes: &[&str], example: &str) -> Option<Url> {
    let Some(s) = t.get::<Text>("url") else {
        if !t.has("url") {
            t.problem("url", format!("a url is needed, like \"{example}\""));
        }
        return None;
    };
    match Url::parse(s.trim()) {
        Ok(u) if !schemes.contains(&u.scheme()) || u.host().is_none() => {
            t.problem(
                "url",
                format!(
                    "{s:?} is not a {} URL, like \"{example}\"",
                    schemes.join(" or ")
                ),
            );
            None
        }
        Ok(u) if !u.username().is_empty() || u.password().is_some() => {
            // Not quoted back: the URL holds a secret.
            t.problem(
                "url",
                "credentials do not go in the url: use username with password_env or password_file",
            );
            None
        }
        Ok(u) => Some(u),
        Err(e) => {
            t.problem("url", format!("invalid URL {s:?}: {e}"));
            None
        }
    }
}

/// `ENV` or `FILE` as a secret's source; both is a problem.
fn secret(t: &Table<'_>, env: &str, file: &str) -> Option<SecretSource> {
    match (t.get::<Text>(env), t.get::<Text>(file)) {
        (Some(_), Some(_)) => {
            t.problem(file, format!("give either {env} or {file}, not both"));
            None
        }
        (Some(var), None) => Some(SecretSource::Env(var)),
        (None, Some(path)) => Some(SecretSource::File(PathBuf::from(path))),
        (None, None) => None,
    }
}

/// `username` with `password_env` or `password_file`; or (NATS) `token_env` or `token_file`.
fn auth(t: &Table<'_>, tokens: bool) -> BrokerAuth {
    let username = t.get::<Text>("username");
    let password = secret(t, "password_env", "password_file");
    let token = if tokens {
        secret(t, "token_env", "token_file")
    } else {
        None
    };
    match (username, password, token) {
        (Some(_), _, Some(_)) | (None, Some(_), Some(_)) => {
            t.problem(
                "token_env",
                "give a token or a username and password, not both",
            );
            BrokerAuth::None
        }
        (Some(username), Some(password), None) => BrokerAuth::Password { username, password },
        (Some(_), None, None) => {
            t.problem("username", "a username needs password_env or password_file");
            BrokerAuth::None
        }
        (None, Some(_), None) => {
            t.problem("username", "password_env and password_file need a username");
            BrokerAuth::None
        }
        (None, None, Some(token)) => BrokerAuth::Token(token),
        (None, None, None) => BrokerAuth::None,
    }
}

fn delivery(t: &Table<'_>) -> QueueDelivery {
    QueueDelivery {
        timeout: t.get::<Duration>("timeout").unwrap_or(d::QUEUE_TIMEOUT),
        max_attempts: t
            .get::<Int<1, 1_000>>("max_attempts")
            .map_or(d::WEBHOOK_MAX_ATTEMPTS, |n| n as u32),
        max_age: t.get::<Duration>("max_age").unwrap_or(d::WEBHOOK_MAX_AGE),
        concurrency: t
            .get::<Int<1, 256>>("concurrency")
            .map_or(d::QUEUE_CONCURRENCY, |n| n as usize),
        retry_schedule: t
            .get::<List<Duration>>("retry_schedule")
            .unwrap_or_default(),
    }
}
