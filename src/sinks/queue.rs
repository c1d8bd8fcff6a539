//! What the queue sinks (NATS JetStream, AMQP) share: the subject or routing-key template,
//! and broker credentials read from the environment or a file.

use std::fmt;

use super::payload::Route;
use super::webhook::SecretError;
use super::{Fault, SinkError, TransportKind};
use crate::config::SecretSource;

/// A subject or routing key with `{feed}` and `{type}` placeholders, checked once when the
/// config is read and rendered for every event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Feed,
    Type,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown placeholder {{{0}}}; use {{feed}} or {{type}}")]
    Unknown(String),
    #[error("a '{{' without its '}}'")]
    Unclosed,
    #[error("a '}}' without its '{{'")]
    Unopened,
    #[error("must not be empty")]
    Empty,
}

impl Template {
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        if source.is_empty() {
            return Err(TemplateError::Empty);
        }
        let mut parts = Vec::new();
        let mut rest = source;
        while !rest.is_empty() {
            match (rest.find('{'), rest.find('}')) {
                (_, Some(close)) if rest.find('{').is_none_or(|open| close < open) => {
                    return Err(TemplateError::Unopened);
                }
                (Some(open), _) => {
                    if open > 0 {
                        parts.push(Part::Text(rest[..open].to_string()));
                    }
                    let after = &rest[open + 1..];
                    let close = after.find('}').ok_or(TemplateError::Unclosed)?;
                    parts.push(match &after[..close] {
                        "feed" => Part::Feed,
                        "type" => Part::Type,
                        other => return Err(TemplateError::Unknown(other.to_string())),
                    });
                    rest = &after[close + 1..];
                }
                (None, _) => {
                    parts.push(Part::Text(rest.to_string()));
                    rest = "";
                }
            }
        }
        Ok(Template {
            source: source.to_string(),
            parts,
        })
    }

    /// The subject or key of one event.
    pub fn render(&self, route: &Route) -> String {
        let mut out = String::with_capacity(self.source.len() + 16);
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Feed => out.push_str(&route.feed),
                Part::Type => out.push_str(&route.kind),
            }
        }
        out
    }

    /// The text before the first placeholder (all of it when there is none).
    pub fn fixed_prefix(&self) -> &str {
        match self.parts.first() {
            Some(Part::Text(t)) => t,
            _ => "",
        }
    }

    pub fn has_placeholders(&self) -> bool {
        self.parts.iter().any(|p| !matches!(p, Part::Text(_)))
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Reads a password or token: the whole variable, or the file's content without its
/// trailing newline.
pub fn read_secret(source: &SecretSource) -> Result<String, SecretError> {
    let text = match source {
        SecretSource::Env(var) => {
            std::env::var(var).map_err(|_| SecretError::MissingEnv(var.clone()))?
        }
        SecretSource::File(path) => {
            std::fs::read_to_string(path).map_err(|cause| SecretError::File {
                path: path.display().to_string(),
                cause,
            })?
        }
    };
    let text = text.trim_end_matches(['\r', '\n']).to_string();
    if text.is_empty() {
        return Err(SecretError::Empty);
    }
    Ok(text)
}

/// A broker's failure before the attempt's time is known; [`timed`] sets it.
pub fn failure(fault: Fault, message: String) -> SinkError {
    SinkError {
        fault,
        retry_after: None,
        elapsed: std::time::Duration::ZERO,
        message,
    }
}

/// Runs one publish under the sink's delivery timeout and stamps how long the attempt
/// took. `waited_for` names what did not come in time ("PubAck", "confirm").
pub async fn timed<F>(
    timeout: std::time::Duration,
    waited_for: &str,
    publish: F,
) -> Result<(), SinkError>
where
    F: std::future::Future<Output = Result<(), SinkError>>,
{
    let started = std::time::Instant::now();
    let result = match tokio::time::timeout(timeout, publish).await {
        Ok(result) => result,
        Err(_) => Err(failure(
            Fault::Transport(TransportKind::Timeout),
            format!(
                "no {waited_for} within {}",
                humantime::format_duration(timeout)
            ),
        )),
    };
    result.map_err(|mut e| {
        e.elapsed = started.elapsed();
        e
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route() -> Route {
        Route {
            kind: "item.new".into(),
            feed: "le-monde".into(),
        }
    }

    #[test]
    fn placeholders_are_replaced() {
        let t = Template::parse("feedwire.{feed}.{type}").expect("valid");
        assert_eq!(t.render(&route()), "feedwire.le-monde.item.new");
        assert_eq!(t.fixed_prefix(), "feedwire.");
        let t = Template::parse("{type}-{feed}").expect("valid");
        assert_eq!(t.render(&route()), "item.new-le-monde");
        assert_eq!(t.fixed_prefix(), "");
        let t = Template::parse("all.events").expect("valid");
        assert_eq!(t.render(&route()), "all.events");
        assert!(!t.has_placeholders());
    }

    #[test]
    fn bad_templates_are_refused() {
        assert_eq!(
            Template::parse("a.{title}"),
            Err(TemplateError::Unknown("title".into()))
        );
        assert_eq!(Template::parse("a.{feed"), Err(TemplateError::Unclosed));
        assert_eq!(Template::parse("a.feed}"), Err(TemplateError::Unopened));
        assert_eq!(Template::parse(""), Err(TemplateError::Empty));
    }
}
