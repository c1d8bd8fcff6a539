//! How feedwire reaches a feed (`[[feeds]]` and their defaults under `[poll]`): credentials,
//! extra headers, user agent and proxy; and the daemon-wide `[daemon] proxy` / `no_proxy`.
//! Secrets are named here (an environment variable or a file) and read by `fetch` when they
//! are used, never written in the config.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use serde_json::Value;
use url::Url;

use super::SecretSource;
use super::read::{Flag, Leaf, Problems, Table, Text};
use crate::sinks::template::HeaderSource;

/// The proxy schemes feedwire speaks, as messages list them.
const PROXY_SCHEMES: &str = "http://, https://, socks5:// or socks5h://";

/// A proxy: `http://`, `https://`, `socks5://` (names resolved here) or `socks5h://` (names
/// resolved by the proxy), possibly with `user:password@` for the proxy itself.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ProxyUrl(Url);

impl ProxyUrl {
    /// The URL with its credentials, for the HTTP client only.
    pub fn url(&self) -> &Url {
        &self.0
    }

    /// The URL without its user name and password: what reports and logs show.
    pub fn shown(&self) -> String {
        let mut u = self.0.clone();
        // Setting these fails only for URLs that cannot carry them, which a proxy URL can.
        let _ = u.set_username("");
        let _ = u.set_password(None);
        u.as_str().trim_end_matches('/').to_string()
    }

    /// Whether the proxy resolves target names itself.
    pub fn resolves_names(&self) -> bool {
        self.0.scheme() == "socks5h"
    }
}

// The URL may hold the proxy's password: debug output shows it without.
impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProxyUrl({})", self.shown())
    }
}

impl fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown())
    }
}

impl Leaf for ProxyUrl {
    type Out = ProxyUrl;
    fn read(value: &Value, path: &str, problems: &Problems) -> Option<ProxyUrl> {
        let s = Text::read(value, path, problems)?;
        // Never echo the value: it may carry the proxy's password.
        let url = match Url::parse(s.trim()) {
            Ok(u) => u,
            Err(e) => {
                problems.add(path, format!("not a proxy URL ({e}); use {PROXY_SCHEMES}"));
                return None;
            }
        };
        if !matches!(url.scheme(), "http" | "https" | "socks5" | "socks5h") {
            problems.add(
                path,
                format!(
                    "proxy scheme {:?} is not supported; use {PROXY_SCHEMES}",
                    url.scheme()
                ),
            );
            return None;
        }
        if url.host_str().is_none_or(str::is_empty) {
            problems.add(path, "a proxy URL needs a host");
            return None;
        }
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            problems.add(
                path,
                "a proxy URL is scheme://host:port, without a path or query",
            );
            return None;
        }
        Some(ProxyUrl(url))
    }
}

/// A secret and the key that named it (`feeds[0].password_env`, `poll.cookie_env`), so a
/// missing variable or file is reported where the user wrote it.
#[derive(Debug, Clone, PartialEq)]
pub struct Secret {
    pub source: SecretSource,
    pub key: String,
}

/// One extra header of a feed's requests, and its key (`feeds[0].headers.Authorization`).
#[derive(Debug, Clone, PartialEq)]
pub struct FeedHeader {
    pub name: String,
    pub source: HeaderSource,
    pub key: String,
}

/// Basic authentication: `username` and `password_env` or `password_file`.
#[derive(Debug, Clone, PartialEq)]
pub struct BasicAuth {
    pub username: String,
    pub password: Secret,
}

/// A user name and password written in a feed's URL: taken out of the URL (so the URL shown
/// and sent in payloads has none) and sent as basic auth; `feedwire check` warns, naming the
/// keys to use instead.
#[derive(Clone, PartialEq)]
pub struct UrlCredentials {
    pub username: String,
    pub password: String,
    /// `feeds[N].url`.
    pub key: String,
}

// Never print the password, not even in debug output.
impl fmt::Debug for UrlCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UrlCredentials({}, ..)", self.key)
    }
}

/// Takes the user name and password out of `url`, decoded.
pub(super) fn take_userinfo(url: &mut Url, key: String) -> Option<UrlCredentials> {
    if url.username().is_empty() && url.password().is_none() {
        return None;
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .to_string()
    };
    let credentials = UrlCredentials {
        username: decode(url.username()),
        password: decode(url.password().unwrap_or_default()),
        key,
    };
    // Setting these fails only for URLs that cannot carry them, which an http URL can.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Some(credentials)
}

/// What a feed's requests carry and which way they go.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FeedAccess {
    pub headers: Vec<FeedHeader>,
    pub basic: Option<BasicAuth>,
    /// The `Cookie` header's value, from this environment variable.
    pub cookie: Option<Secret>,
    /// Sent instead of `daemon.user_agent` on this feed's requests.
    pub user_agent: Option<String>,
    /// This feed's requests (and its articles') go through this proxy, not `[daemon] proxy`.
    pub proxy: Option<ProxyUrl>,
    /// The credentials also go with article fetches on the feed's own origin.
    pub article_auth: bool,
    /// Basic auth written in the feed's URL (when `username` is not set).
    pub in_url: Option<UrlCredentials>,
}

impl FeedAccess {
    /// Whether any credential (basic auth, a cookie, a header from env or file) is set.
    pub fn has_credentials(&self) -> bool {
        self.basic.is_some()
            || self.in_url.is_some()
            || self.cookie.is_some()
            || self
                .headers
                .iter()
                .any(|h| !matches!(h.source, HeaderSource::Value(_)))
    }

    /// The keys that carry credentials, as a hint names them.
    pub fn credential_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = Vec::new();
        if let Some(b) = &self.basic {
            keys.push(b.password.key.clone());
        } else if let Some(u) = &self.in_url {
            keys.push(format!("the password in {}", u.key));
        }
        if let Some(c) = &self.cookie {
            keys.push(c.key.clone());
        }
        keys.extend(
            self.headers
                .iter()
                .filter(|h| !matches!(h.source, HeaderSource::Value(_)))
                .map(|h| h.key.clone()),
        );
        keys
    }
}

/// The access keys of `[poll]` (defaults) or of one `[[feeds]]` table; `defaults` is what
/// `[poll]` gave, which a feed's own keys override (headers by name).
pub(super) fn access(t: &Table<'_>, defaults: Option<&FeedAccess>) -> FeedAccess {
    let mut headers: Vec<FeedHeader> = defaults.map(|d| d.headers.clone()).unwrap_or_default();
    let given = super::presets::headers(t);
    if !given.is_empty() {
        // A table, since presets::headers found headers in it.
        let table = t.table("headers");
        for (name, source) in given {
            let credential = ["authorization", "cookie", "proxy-authorization"]
                .contains(&name.to_ascii_lowercase().as_str());
            if credential && matches!(source, HeaderSource::Value(_)) {
                table.problem(
                    &name,
                    "a credential is never written in the config: use { env = \"VAR\" } or { file = \"/path\" }",
                );
                continue;
            }
            headers.retain(|h| !h.name.eq_ignore_ascii_case(&name));
            let key = table.path_of(&name);
            headers.push(FeedHeader { name, source, key });
        }
    }
    let basic = basic(t).or_else(|| defaults.and_then(|d| d.basic.clone()));
    let cookie = t
        .get::<Text>("cookie_env")
        .filter(|v| {
            let ok = !v.trim().is_empty();
            if !ok {
                t.problem("cookie_env", "must name an environment variable");
            }
            ok
        })
        .map(|var| Secret {
            source: SecretSource::Env(var),
            key: t.path_of("cookie_env"),
        })
        .or_else(|| defaults.and_then(|d| d.cookie.clone()));
    let user_agent = t.get::<Text>("user_agent");
    if user_agent
        .as_deref()
        .is_some_and(|ua| ua.trim().is_empty() || ua.contains(['\r', '\n']))
    {
        t.problem("user_agent", "must be a non-empty single line");
    }
    let user_agent = user_agent.or_else(|| defaults.and_then(|d| d.user_agent.clone()));
    let proxy = t
        .get::<ProxyUrl>("proxy")
        .or_else(|| defaults.and_then(|d| d.proxy.clone()));
    // Only a feed has article_auth: it is about that feed's own origin.
    let article_auth = match defaults {
        Some(_) => t.get::<Flag>("article_auth").unwrap_or(false),
        None => false,
    };
    let access = FeedAccess {
        headers,
        basic,
        cookie,
        user_agent,
        proxy,
        article_auth,
        in_url: None,
    };
    if access.basic.is_some()
        && let Some(h) = access
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("authorization"))
    {
        t.problem(
            "username",
            format!("give either username (basic auth) or {}, not both", h.key),
        );
    }
    if access.cookie.is_some()
        && let Some(h) = access
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("cookie"))
    {
        t.problem(
            "cookie_env",
            format!("give either cookie_env or {}, not both", h.key),
        );
    }
    access
}

/// `article_auth` without any credential to send (checked once the URL's are known too).
pub(super) fn check_article_auth(t: &Table<'_>, access: &FeedAccess) {
    if access.article_auth && !access.has_credentials() {
        t.problem(
            "article_auth",
            "there are no credentials to send: set username, cookie_env or headers from env/file",
        );
    }
}

fn basic(t: &Table<'_>) -> Option<BasicAuth> {
    let username = t.get::<Text>("username");
    let password = match (
        t.get::<Text>("password_env"),
        t.get::<Text>("password_file"),
    ) {
        (Some(_), Some(_)) => {
            t.problem(
                "password_file",
                "give either password_env or password_file, not both",
            );
            None
        }
        (Some(var), None) => Some(Secret {
            source: SecretSource::Env(var),
            key: t.path_of("password_env"),
        }),
        (None, Some(file)) => Some(Secret {
            source: SecretSource::File(PathBuf::from(file)),
            key: t.path_of("password_file"),
        }),
        (None, None) => None,
    };
    match (username, password) {
        (Some(u), _) if u.contains(':') || u.contains(['\r', '\n']) => {
            t.problem(
                "username",
                "a basic-auth user name has no ':' and no line break",
            );
            None
        }
        (Some(username), Some(password)) => Some(BasicAuth { username, password }),
        (Some(_), None) => {
            t.problem(
                "username",
                "basic auth needs the password too: password_env or password_file (never inline)",
            );
            None
        }
        (None, Some(p)) => {
            t.problem(
                p.key.rsplit('.').next().unwrap_or("password_env"),
                "a password needs its username",
            );
            None
        }
        (None, None) => None,
    }
}

/// `[daemon] no_proxy`: hosts, domains (`example.com` also covers its subdomains), IP
/// addresses and CIDR blocks reached directly instead of through `[daemon] proxy`; `*` is
/// every host.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NoProxy(Vec<String>);

impl NoProxy {
    pub fn new(entries: Vec<String>) -> NoProxy {
        NoProxy(
            entries
                .into_iter()
                .map(|e| e.trim().trim_start_matches('.').to_ascii_lowercase())
                .filter(|e| !e.is_empty())
                .collect(),
        )
    }

    pub fn entries(&self) -> &[String] {
        &self.0
    }

    /// Whether requests to `host` skip the daemon's proxy.
    pub fn matches(&self, host: &str) -> bool {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let ip: Option<IpAddr> = host.parse().ok();
        self.0.iter().any(|entry| {
            if entry == "*" {
                return true;
            }
            if let (Some(ip), Ok(net)) = (ip, entry.parse::<IpNet>()) {
                return net.contains(&ip);
            }
            if let (Some(ip), Ok(one)) = (ip, entry.parse::<IpAddr>()) {
                return ip == one;
            }
            host == *entry || host.ends_with(&format!(".{entry}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_proxy_matches_hosts_their_subdomains_addresses_and_networks() {
        let n = NoProxy::new(vec![
            "intranet.example".into(),
            ".corp.example".into(),
            "10.0.0.0/8".into(),
            "::1".into(),
        ]);
        assert!(n.matches("intranet.example"));
        assert!(n.matches("feeds.intranet.example"));
        assert!(n.matches("a.corp.example"));
        assert!(!n.matches("notintranet.example"));
        assert!(n.matches("10.2.3.4"));
        assert!(n.matches("[::1]"));
        assert!(!n.matches("11.0.0.1"));
        assert!(NoProxy::new(vec!["*".into()]).matches("anything"));
    }

    fn parse(text: &str) -> Result<super::super::Config, super::super::ConfigError> {
        super::super::parse(text, std::path::Path::new("t.toml"), &Default::default())
    }

    #[test]
    fn poll_defaults_apply_and_a_feeds_own_keys_win() {
        let c = parse(
            "[poll]\nusername = \"all\"\npassword_env = \"ALL_PW\"\nproxy = \"socks5h://p:1080\"\n\
             headers = { X-A = \"1\", X-B = { env = \"B\" } }\n\
             [[feeds]]\nurl = \"https://a.example/f\"\n\
             [[feeds]]\nurl = \"https://b.example/f\"\nusername = \"me\"\npassword_file = \"/pw\"\n\
             proxy = \"http://q:3128\"\nheaders = { x-b = \"2\" }\narticle_auth = true\n",
        )
        .expect("valid");
        let (a, b) = (&c.feeds[0].access, &c.feeds[1].access);
        let basic = a.basic.as_ref().expect("the default basic auth");
        assert_eq!(
            (basic.username.as_str(), basic.password.key.as_str()),
            ("all", "poll.password_env")
        );
        assert_eq!(
            a.proxy.as_ref().map(ProxyUrl::shown).as_deref(),
            Some("socks5h://p:1080")
        );
        assert_eq!(a.headers.len(), 2);
        assert!(a.has_credentials() && !a.article_auth);
        let basic = b.basic.as_ref().expect("the feed's basic auth");
        assert_eq!(
            (basic.username.as_str(), basic.password.key.as_str()),
            ("me", "feeds[1].password_file")
        );
        assert_eq!(
            b.proxy.as_ref().map(ProxyUrl::shown).as_deref(),
            Some("http://q:3128")
        );
        let names: Vec<&str> = b.headers.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(
            names,
            ["X-A", "x-b"],
            "a feed's header replaces the default of that name"
        );
        assert!(b.article_auth);
    }

    #[test]
    fn access_mistakes_are_reported_at_their_keys() {
        let Err(super::super::ConfigError::Invalid { problems, .. }) = parse(
            "[poll]\narticle_auth = true\n\
             [daemon]\nno_proxy = [\"a.example\"]\n\
             [[feeds]]\nurl = \"https://a.example/f\"\nusername = \"me\"\n\
             [[feeds]]\nurl = \"https://b.example/f\"\npassword_env = \"X\"\npassword_file = \"/x\"\n\
             [[feeds]]\nurl = \"https://c.example/f\"\nproxy = \"socks4://p:1080\"\narticle_auth = true\n\
             [[feeds]]\nurl = \"https://d.example/f\"\nusername = \"me\"\npassword_env = \"P\"\n\
             headers = { Authorization = { env = \"T\" } }\n\
             [[feeds]]\nurl = \"https://e.example/f\"\nheaders = { Cookie = \"id=1\" }\n",
        ) else {
            panic!("must be rejected");
        };
        let mut paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        paths.sort();
        assert_eq!(
            paths,
            [
                "daemon.no_proxy",
                "feeds[0].username",
                "feeds[1].password_file",
                "feeds[2].article_auth",
                "feeds[2].proxy",
                "feeds[3].username",
                "feeds[4].headers.Cookie",
                "poll.article_auth",
            ]
        );
    }

    #[test]
    fn a_proxy_is_shown_without_its_credentials() {
        let p = ProxyUrl(Url::parse("socks5h://me:s3cret@proxy.example:1080").expect("url"));
        assert_eq!(p.shown(), "socks5h://proxy.example:1080");
        assert!(!format!("{p:?}").contains("s3cret"));
    }
}
