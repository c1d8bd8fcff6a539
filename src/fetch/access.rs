//! What one feed's requests carry and which way they go: its credentials (read from the
//! environment or a file when used, sent only to the feed's own origin), its user agent and
//! its proxy. The rule of which request gets the credentials lives here, once.

use std::sync::Arc;

use base64::Engine as _;
use reqwest::header::{self, HeaderMap, HeaderValue};
use url::{Origin, Url};

use crate::config::{self, FeedAccess, ProxyUrl, SecretSource};
use crate::sinks::template::{HeaderError, resolve_headers};

/// A secret that could not be read, named by the key that names it.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("{key}: environment variable {var} is not set")]
    MissingEnv { key: String, var: String },
    #[error("{key}: cannot read {path}: {source}")]
    File {
        key: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{key}: not a valid header value")]
    Invalid { key: String },
}

/// Headers that go only to one origin.
#[derive(Debug)]
pub struct Credentials {
    origin: Origin,
    headers: HeaderMap,
}

/// How one feed's requests go out. The default: no credentials, the daemon's user agent and
/// proxy.
#[derive(Debug, Clone, Default)]
pub struct Access {
    credentials: Option<Arc<Credentials>>,
    user_agent: Option<HeaderValue>,
    /// The feed's own proxy; `None`: `[daemon] proxy` (unless `no_proxy`), or none.
    pub proxy: Option<ProxyUrl>,
}

impl Access {
    /// Reads the feed's secrets now (so a rotated file is picked up at the next poll).
    pub fn resolve(feed: &config::Feed) -> Result<Access, AccessError> {
        let access = &feed.access;
        let user_agent = access
            .user_agent
            .as_deref()
            .and_then(|ua| HeaderValue::from_str(ua).ok());
        let headers = credential_headers(access)?;
        let credentials = (!headers.is_empty()).then(|| {
            Arc::new(Credentials {
                origin: feed.url.origin(),
                headers,
            })
        });
        Ok(Access {
            credentials,
            user_agent,
            proxy: access.proxy.clone(),
        })
    }

    /// The access of a feed's article fetches: its proxy and user agent, and its credentials
    /// only with `article_auth` (and then only to the feed's own origin).
    pub fn for_articles(feed: &config::Feed) -> Access {
        let plain = || Access {
            credentials: None,
            user_agent: feed
                .access
                .user_agent
                .as_deref()
                .and_then(|ua| HeaderValue::from_str(ua).ok()),
            proxy: feed.access.proxy.clone(),
        };
        if !feed.access.article_auth {
            return plain();
        }
        Access::resolve(feed).unwrap_or_else(|e| {
            tracing::warn!(feed = %feed.name, error = %e, "article fetches go without credentials");
            plain()
        })
    }

    /// The headers a request to `url` carries: the credentials only when `url` is on the
    /// feed's own origin (scheme, host and port), so a redirect elsewhere never gets them.
    pub(super) fn headers_for(&self, url: &Url) -> HeaderMap {
        let mut out = HeaderMap::new();
        if let Some(ua) = &self.user_agent {
            out.insert(header::USER_AGENT, ua.clone());
        }
        if let Some(c) = &self.credentials
            && url.origin() == c.origin
        {
            for (name, value) in &c.headers {
                out.insert(name.clone(), value.clone());
            }
        }
        out
    }
}

/// Basic auth, the cookie and the extra headers, each value read from where it lives.
fn credential_headers(access: &FeedAccess) -> Result<HeaderMap, AccessError> {
    let mut map = HeaderMap::new();
    for h in &access.headers {
        let one = resolve_headers(&[(h.name.clone(), h.source.clone())]).map_err(|e| match e {
            HeaderError::MissingEnv { var, .. } => AccessError::MissingEnv {
                key: h.key.clone(),
                var,
            },
            HeaderError::File { path, source, .. } => AccessError::File {
                key: h.key.clone(),
                path,
                source,
            },
            HeaderError::Invalid { .. } => AccessError::Invalid { key: h.key.clone() },
        })?;
        map.extend(one);
    }
    if let Some(basic) = &access.basic {
        let password = read_secret(&basic.password.source, &basic.password.key)?;
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{password}", basic.username));
        map.insert(
            header::AUTHORIZATION,
            sensitive(&format!("Basic {token}"), &basic.password.key)?,
        );
    }
    if access.basic.is_none()
        && let Some(c) = &access.in_url
    {
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", c.username, c.password));
        map.insert(
            header::AUTHORIZATION,
            sensitive(&format!("Basic {token}"), &c.key)?,
        );
    }
    if let Some(cookie) = &access.cookie {
        let value = read_secret(&cookie.source, &cookie.key)?;
        map.insert(header::COOKIE, sensitive(value.trim(), &cookie.key)?);
    }
    Ok(map)
}

fn sensitive(value: &str, key: &str) -> Result<HeaderValue, AccessError> {
    let mut v = HeaderValue::from_str(value).map_err(|_| AccessError::Invalid {
        key: key.to_string(),
    })?;
    // Secrets are kept out of debug output.
    v.set_sensitive(true);
    Ok(v)
}

/// A secret's value; a file's trailing newline is not part of it.
fn read_secret(source: &SecretSource, key: &str) -> Result<String, AccessError> {
    match source {
        SecretSource::Env(var) => std::env::var(var).map_err(|_| AccessError::MissingEnv {
            key: key.to_string(),
            var: var.clone(),
        }),
        SecretSource::File(path) => std::fs::read_to_string(path)
            .map(|s| s.trim_end_matches(['\r', '\n']).to_string())
            .map_err(|source| AccessError::File {
                key: key.to_string(),
                path: path.display().to_string(),
                source,
            }),
    }
}

/// What a 401 or 403 on a feed says: authentication failed, and which key to set or check.
/// `polled` is the address asked: after a permanent move to another origin, the credentials
/// stay behind, and the hint says so.
pub fn auth_failed(status: u16, feed: &config::Feed, polled: &Url) -> String {
    let keys = feed.access.credential_keys();
    let moved = polled.origin() != feed.url.origin();
    if moved && !keys.is_empty() {
        format!(
            "authentication failed (HTTP {status}): the feed moved to {}, where its credentials \
             are not sent (they go only to {}); put the new address in the feed's url",
            polled.origin().ascii_serialization(),
            feed.url.origin().ascii_serialization()
        )
    } else if keys.is_empty() {
        let at = format!("feed {:?}", feed.name);
        format!(
            "authentication failed (HTTP {status}): the feed asks for credentials; set username \
             with password_env or password_file, cookie_env, or headers = {{ Authorization = {{ env = \"…\" }} }} \
             for {at}"
        )
    } else {
        format!(
            "authentication failed (HTTP {status}): the server refused the credentials; check \
             the value behind {}",
            keys.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BasicAuth, Secret};

    fn feed(access: FeedAccess) -> config::Feed {
        config::Feed {
            name: "private".into(),
            url: Url::parse("https://feeds.example/private.xml").expect("url"),
            interval: None,
            fetch_article: true,
            sinks: vec![],
            tags: vec![],
            backfill: config::Backfill::All,
            max_item_age: None,
            websub: None,
            access: access.into(),
        }
    }

    fn with_password(file: &std::path::Path) -> FeedAccess {
        FeedAccess {
            basic: Some(BasicAuth {
                username: "reader".into(),
                password: Secret {
                    source: SecretSource::File(file.to_path_buf()),
                    key: "feeds[0].password_file".into(),
                },
            }),
            ..FeedAccess::default()
        }
    }

    #[test]
    fn credentials_go_to_the_feeds_origin_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("pw");
        std::fs::write(&file, "s3cret\n").expect("write");
        let access = Access::resolve(&feed(with_password(&file))).expect("resolves");
        let u = |s: &str| Url::parse(s).expect("url");
        let auth = access.headers_for(&u("https://feeds.example/other.xml"));
        // base64("reader:s3cret"): the file's newline is not part of the password.
        assert_eq!(
            auth.get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok()),
            Some("Basic cmVhZGVyOnMzY3JldA==")
        );
        for elsewhere in [
            "http://feeds.example/private.xml",
            "https://feeds.example:8443/private.xml",
            "https://cdn.example/private.xml",
        ] {
            assert!(access.headers_for(&u(elsewhere)).is_empty(), "{elsewhere}");
        }
        let plain = Access::for_articles(&feed(with_password(&file)));
        assert!(
            plain
                .headers_for(&u("https://feeds.example/a/1"))
                .is_empty()
        );
    }

    #[test]
    fn a_missing_secret_names_its_key() {
        let missing = std::path::Path::new("/nonexistent/feedwire/pw");
        let err = Access::resolve(&feed(with_password(missing))).expect_err("no file");
        assert!(
            err.to_string()
                .starts_with("feeds[0].password_file: cannot read"),
            "{err}"
        );
    }

    #[test]
    fn a_refusal_hint_names_the_keys() {
        let at = Url::parse("https://feeds.example/private.xml").expect("url");
        let none = auth_failed(401, &feed(FeedAccess::default()), &at);
        assert!(
            none.starts_with("authentication failed (HTTP 401)"),
            "{none}"
        );
        assert!(
            none.contains("password_env") && none.contains("cookie_env"),
            "{none}"
        );
        let f = feed(with_password(std::path::Path::new("/pw")));
        let some = auth_failed(403, &f, &at);
        assert!(
            some.contains("check the value behind feeds[0].password_file"),
            "{some}"
        );
        let moved = Url::parse("https://new.example/private.xml").expect("url");
        let moved = auth_failed(401, &f, &moved);
        assert!(moved.contains("moved to https://new.example"), "{moved}");
    }
}
