//! The webhook sink: a signed POST of the payload (Standard Webhooks headers).

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use sha2::Sha256;
use url::Url;

use super::template::{HeaderError, Template, TemplateError, resolve_headers};
use super::{DeliverFuture, Fault, Outgoing, Sink, SinkError, TransportKind, transport_kind};
use crate::config::{SecretSource, Webhook};
use crate::fetch::parse_retry_after;

/// At most this much of a receiver's answer is read (for the error message).
pub const MAX_RESPONSE_BODY: usize = 64 * 1024;

/// The prefix of a Standard Webhooks secret whose rest is the base64 key.
const SECRET_PREFIX: &str = "whsec_";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {0} is not set")]
    MissingEnv(String),
    // The message carries its cause (not `source`), so a printed chain shows it once.
    #[error("cannot read secret file {path}: {cause}")]
    File { path: String, cause: std::io::Error },
    #[error("the secret is empty")]
    Empty,
    #[error("a \"whsec_\" secret must be followed by base64")]
    BadBase64,
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Header(#[from] HeaderError),
}

pub struct WebhookSink {
    client: reqwest::Client,
    url: Url,
    /// Signing keys; during a rotation each signs, and the receiver accepts any.
    keys: Vec<Vec<u8>>,
    timeout: Duration,
    concurrency: usize,
    /// Renders the body from the payload; without it the payload is the body.
    template: Option<Template>,
    content_type: HeaderValue,
    headers: reqwest::header::HeaderMap,
}

impl WebhookSink {
    pub fn new(config: &Webhook, user_agent: &str) -> Result<WebhookSink, SecretError> {
        let keys = match &config.secret {
            None => Vec::new(),
            Some(source) => load_keys(source)?,
        };
        crate::fetch::install_crypto_provider();
        let client = reqwest::Client::builder()
            .user_agent(user_agent)
            // A receiver that moved must be reconfigured; following could leak the payload.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.timeout)
            .build()
            .map_err(|e| SecretError::Client(e.to_string()))?;
        let template = match &config.template {
            Some(source) => Some(Template::compile(&source.read()?, &config.content_type)?),
            None => None,
        };
        let content_type = HeaderValue::from_str(&config.content_type)
            .unwrap_or_else(|_| HeaderValue::from_static("application/json"));
        Ok(WebhookSink {
            client,
            url: config.url.clone(),
            keys,
            timeout: config.timeout,
            concurrency: config.concurrency,
            template,
            content_type,
            headers: resolve_headers(&config.headers)?,
        })
    }

    async fn post(&self, event: Outgoing<'_>, started: Instant) -> Result<(), SinkError> {
        let timestamp = chrono::Utc::now().timestamp();
        // The signature covers the body as sent: the rendered one when there is a template.
        let rendered = match &self.template {
            Some(t) => Some(t.render(event.body).map_err(|e| SinkError {
                fault: Fault::Unsendable,
                retry_after: None,
                elapsed: std::time::Duration::ZERO,
                message: e.to_string(),
            })?),
            None => None,
        };
        let body = rendered.as_deref().unwrap_or(event.body);
        let event = Outgoing {
            webhook_id: event.webhook_id,
            body,
        };
        let mut request = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, self.content_type.clone())
            .header("webhook-id", event.webhook_id)
            .header("webhook-timestamp", timestamp.to_string())
            .body(event.body.to_string());
        if !self.keys.is_empty() {
            let signatures: Vec<String> = self
                .keys
                .iter()
                .map(|k| sign(k, event.webhook_id, timestamp, event.body.as_bytes()))
                .collect();
            request = request.header("webhook-signature", signatures.join(" "));
        }
        let mut response = request.send().await.map_err(|e| SinkError {
            fault: Fault::Transport(transport_kind(&e)),
            retry_after: None,
            elapsed: started.elapsed(),
            message: format!("cannot reach {}: {}", self.url, error_chain(&e)),
        })?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        // Read a bounded part of the answer so the connection can be reused and the error
        // message can quote it.
        let mut answer = Vec::new();
        while answer.len() < MAX_RESPONSE_BODY {
            match response.chunk().await {
                Ok(Some(chunk)) => answer
                    .extend_from_slice(&chunk[..chunk.len().min(MAX_RESPONSE_BODY - answer.len())]),
                _ => break,
            }
        }
        if (200..300).contains(&status) {
            return Ok(());
        }
        let snippet: String = String::from_utf8_lossy(&answer).chars().take(200).collect();
        let snippet = snippet.split_whitespace().collect::<Vec<_>>().join(" ");
        let message = if snippet.is_empty() {
            format!("receiver answered HTTP {status}")
        } else {
            format!("receiver answered HTTP {status}: {snippet}")
        };
        Err(SinkError {
            fault: Fault::Status(status),
            retry_after,
            elapsed: started.elapsed(),
            message,
        })
    }
}

impl Sink for WebhookSink {
    fn deliver<'a>(&'a self, event: Outgoing<'a>) -> DeliverFuture<'a> {
        Box::pin(async move {
            let started = Instant::now();
            match tokio::time::timeout(self.timeout, self.post(event, started)).await {
                Ok(result) => result,
                Err(_) => Err(SinkError {
                    fault: Fault::Transport(TransportKind::Timeout),
                    retry_after: None,
                    elapsed: started.elapsed(),
                    message: format!(
                        "no answer from {} within {}",
                        self.url,
                        humantime::format_duration(self.timeout)
                    ),
                }),
            }
        })
    }

    fn concurrency(&self) -> usize {
        self.concurrency
    }
}

/// Reads the signing keys: several secrets (one per line in a file, or separated by
/// spaces in a variable) during a rotation.
fn load_keys(source: &SecretSource) -> Result<Vec<Vec<u8>>, SecretError> {
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
    let keys = text
        .split_whitespace()
        .map(decode_secret)
        .collect::<Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Err(SecretError::Empty);
    }
    Ok(keys)
}

/// `whsec_` + base64 is decoded to the key; any other string is the key's bytes.
pub fn decode_secret(secret: &str) -> Result<Vec<u8>, SecretError> {
    let secret = secret.trim();
    if secret.is_empty() {
        return Err(SecretError::Empty);
    }
    match secret.strip_prefix(SECRET_PREFIX) {
        Some(b64) => BASE64.decode(b64).map_err(|_| SecretError::BadBase64),
        None => Ok(secret.as_bytes().to_vec()),
    }
}

/// `v1,` + base64 HMAC-SHA256 of `id.timestamp.body`.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

/// Checks a `webhook-signature` header against `key` (what a receiver does).
pub fn verify(key: &[u8], id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return false;
    };
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    header.split_whitespace().any(|sig| {
        sig.strip_prefix("v1,")
            .and_then(|b64| BASE64.decode(b64).ok())
            .is_some_and(|raw| mac.clone().verify_slice(&raw).is_ok())
    })
}

fn error_chain(err: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(err);
    while let Some(e) = source {
        parts.push(e.to_string());
        source = e.source();
    }
    if parts.is_empty() {
        err.to_string()
    } else {
        parts.join(": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const TS: i64 = 1649367553;
    const BODY: &str = r#"{"email":"test@example.com","username":"test_user"}"#;
    const EXPECTED: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    #[test]
    fn standard_webhooks_reference_vector() {
        let key = decode_secret(SECRET).expect("valid secret");
        assert_eq!(sign(&key, ID, TS, BODY.as_bytes()), EXPECTED);
        assert!(verify(&key, ID, TS, BODY.as_bytes(), EXPECTED));
        assert!(verify(
            &key,
            ID,
            TS,
            BODY.as_bytes(),
            &format!("v1,bm90IGl0 {EXPECTED}")
        ));
    }

    #[test]
    fn bare_or_truncated_signatures_fail() {
        let key = decode_secret(SECRET).expect("valid secret");
        assert!(!verify(&key, ID, TS, BODY.as_bytes(), "v1,"));
        assert!(!verify(
            &key,
            ID,
            TS,
            BODY.as_bytes(),
            &EXPECTED[..EXPECTED.len() - 4]
        ));
        assert!(!verify(&key, ID, TS + 1, BODY.as_bytes(), EXPECTED));
    }

    #[test]
    fn raw_secrets_are_their_bytes() {
        assert_eq!(decode_secret("hunter2").expect("raw"), b"hunter2".to_vec());
        assert!(matches!(
            decode_secret("whsec_!!"),
            Err(SecretError::BadBase64)
        ));
    }
}
