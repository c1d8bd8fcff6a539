//! Private feeds and proxies, end to end: credentials go only to the feed's own origin and
//! never into any output, feeds go through a local HTTP proxy and a local SOCKS5 proxy, the
//! address policy still holds for articles behind a proxy, and a refused feed says which
//! key to set.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PASSWORD: &str = "pw-7f3a91-secret";
const TOKEN: &str = "tok-55e0c2-secret";
const COOKIE: &str = "session=ck-9d41b7-secret";
const PROXY_PASSWORD: &str = "proxypw-31c8e2-secret";
const SECRETS: &[&str] = &[PASSWORD, TOKEN, "ck-9d41b7-secret", PROXY_PASSWORD];

/// `Basic base64(reader:PASSWORD)`, as a correct client sends it.
fn basic() -> String {
    use base64::Engine as _;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("reader:{PASSWORD}"));
    format!("Basic {token}")
}

fn feed_body(base: &str, tag: &str) -> String {
    let entries: Vec<Entry> = (1..=2)
        .map(|n| Entry {
            id: format!("urn:{tag}:{n}"),
            title: format!("{tag} story {n}"),
            link: format!("{base}/articles/{tag}/{n}"),
            published: format!("2026-11-2{n}T10:00:00Z"),
            summary: format!("<p>Summary of {tag} story {n}.</p>"),
        })
        .collect();
    rss(tag, &entries)
}

/// Answers `path` with the feed only when `header` has `expected`, else 401.
fn guarded(server: &Server, path: &str, header: &'static str, expected: String, tag: &str) {
    let body = feed_body(&format!("http://{}", server.addr), tag);
    server.respond(path, move |seen, _| {
        if seen.header(header).as_deref() == Some(expected.as_str()) {
            Route::ok(body.clone(), "application/rss+xml")
        } else {
            Route::status(401)
        }
    });
}

fn titles(setup: &Setup) -> Vec<String> {
    setup
        .lines()
        .iter()
        .filter(|l| l["type"] == "item.new")
        .filter_map(|l| l["item"]["title"].as_str().map(String::from))
        .collect()
}

/// Adds `keys` to the `[daemon]` table that [`Setup`] writes.
fn daemon_keys(setup: &Setup, keys: &str) {
    let text = std::fs::read_to_string(setup.config_path()).expect("config");
    let text = text.replacen("[daemon]\n", &format!("[daemon]\n{keys}\n"), 1);
    std::fs::write(setup.config_path(), text).expect("config");
}

fn with_secrets(setup: &Setup, args: &[&str]) -> std::process::Output {
    setup
        .command(args)
        .env("FEED_PASSWORD", PASSWORD)
        .env("FEED_TOKEN", format!("Bearer {TOKEN}"))
        .env("FEED_COOKIE", COOKIE)
        .output()
        .expect("run feedwire")
}

#[test]
fn basic_auth_header_and_cookie_feeds_answer_only_with_the_right_credentials() {
    let server = Server::start();
    guarded(&server, "/basic.xml", "authorization", basic(), "basic");
    guarded(
        &server,
        "/token.xml",
        "authorization",
        format!("Bearer {TOKEN}"),
        "token",
    );
    guarded(
        &server,
        "/cookie.xml",
        "cookie",
        COOKIE.to_string(),
        "cookie",
    );
    let body = format!(
        "[article]\nfetch = false\n\n\
         [[feeds]]\nname = \"basic\"\nurl = \"{}\"\nusername = \"reader\"\npassword_env = \"FEED_PASSWORD\"\n\n\
         [[feeds]]\nname = \"token\"\nurl = \"{}\"\nheaders = {{ Authorization = {{ env = \"FEED_TOKEN\" }} }}\n\n\
         [[feeds]]\nname = \"cookie\"\nurl = \"{}\"\ncookie_env = \"FEED_COOKIE\"\n",
        server.url("/basic.xml"),
        server.url("/token.xml"),
        server.url("/cookie.xml"),
    );
    let setup = Setup::new(&body);
    assert_ok(&with_secrets(&setup, &["check"]));
    assert_ok(&with_secrets(&setup, &["once"]));
    let mut got = titles(&setup);
    got.sort();
    assert_eq!(
        got,
        [
            "basic story 1",
            "basic story 2",
            "cookie story 1",
            "cookie story 2",
            "token story 1",
            "token story 2"
        ]
    );
    // `preview` of a configured feed sends its credentials, as the daemon does.
    let url = server.url("/cookie.xml");
    let shown = with_secrets(&setup, &["preview", &url]);
    assert_ok(&shown);
    assert!(String::from_utf8_lossy(&shown.stdout).contains("cookie story 1"));
    // The same feeds without the secrets' values: every one is refused.
    let other = Setup::new(&body);
    other
        .command(&["once"])
        .env("FEED_PASSWORD", "wrong")
        .env("FEED_TOKEN", "Bearer wrong")
        .env("FEED_COOKIE", "session=wrong")
        .output()
        .expect("run feedwire");
    assert!(other.lines().is_empty(), "{:?}", other.lines());
    let answered = other.feeds_json();
    assert_eq!(answered.len(), 3);
    for feed in answered {
        assert_eq!(feed["http_status"], 401, "{feed}");
        assert_eq!(feed["auth"], true, "{feed}");
    }
}

#[test]
fn check_names_the_key_of_a_missing_secret_a_bad_proxy_and_a_url_with_a_password() {
    let setup = Setup::new("");
    // `feedwire check` on `config`: its exit code and what it printed on stderr.
    let check = |config: &str| {
        setup.write_config(config);
        let out = setup.run(&["check"]);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // A password in the URL still works, with a warning that names the keys to use.
    let (code, err) =
        check("[[feeds]]\nname = \"a\"\nurl = \"https://reader:hunter2@example.com/a.xml\"\n");
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("warning: feeds[0].url") && err.contains("password_env"),
        "{err}"
    );
    assert!(
        !err.contains("hunter2"),
        "the password is not echoed: {err}"
    );
    let (code, err) = check(
        "[[feeds]]\nname = \"b\"\nurl = \"https://example.com/b.xml\"\nproxy = \"ftp://me:hunter2@proxy.example:21\"\n",
    );
    assert_eq!(code, Some(2));
    assert!(
        err.contains("feeds[0].proxy") && err.contains("socks5://"),
        "{err}"
    );
    assert!(
        !err.contains("hunter2"),
        "the proxy's password is not echoed: {err}"
    );
    let (code, err) = check(
        "[[feeds]]\nname = \"c\"\nurl = \"https://example.com/c.xml\"\nusername = \"me\"\npassword_env = \"FEEDWIRE_TEST_UNSET_PASSWORD\"\n",
    );
    assert_eq!(code, Some(2));
    assert!(
        err.contains("feeds[0].password_env")
            && err.contains("FEEDWIRE_TEST_UNSET_PASSWORD is not set"),
        "{err}"
    );
}

#[test]
fn credentials_do_not_follow_a_redirect_to_another_origin_nor_go_to_articles_unasked() {
    let home = Server::start();
    let elsewhere = Server::start();
    let other_feed = feed_body(&format!("http://{}", home.addr), "moved");
    elsewhere.set("/feed.xml", Route::ok(other_feed, "application/rss+xml"));
    let to = elsewhere.url("/feed.xml");
    home.respond("/redirect.xml", move |_, _| Route {
        headers: vec![("location".into(), to.clone())],
        ..Route::status(302)
    });
    // A feed on `home` whose articles are on `home` and on `elsewhere`.
    let entries = [
        Entry {
            link: home.url("/page/1"),
            ..Entry::new(1, "")
        },
        Entry {
            link: elsewhere.url("/page/2"),
            ..Entry::new(2, "")
        },
    ];
    home.set(
        "/auth.xml",
        Route::ok(rss("auth", &entries), "application/rss+xml"),
    );
    let page = "<html><body><article><p>Some words.</p></article></body></html>";
    for s in [&home, &elsewhere] {
        s.respond_prefix("/page/", move |_, _| Route::ok(page, "text/html"));
    }
    let setup = Setup::new(&format!(
        "[article]\nallowed_networks = [\"127.0.0.1/32\"]\n\n\
         [[feeds]]\nname = \"redirected\"\nurl = \"{}\"\nusername = \"reader\"\npassword_env = \"FEED_PASSWORD\"\n\
         headers = {{ X-Token = {{ env = \"FEED_TOKEN\" }} }}\ncookie_env = \"FEED_COOKIE\"\nfetch_article = false\n\n\
         [[feeds]]\nname = \"auth\"\nurl = \"{}\"\nheaders = {{ X-Token = {{ env = \"FEED_TOKEN\" }} }}\narticle_auth = true\n\
         user_agent = \"private-agent/1\"\n",
        home.url("/redirect.xml"),
        home.url("/auth.xml"),
    ));
    assert_ok(&with_secrets(&setup, &["once"]));
    let first = &home.seen("/redirect.xml")[0];
    assert_eq!(first.header("authorization"), Some(basic()));
    assert!(first.header("x-token").is_some() && first.header("cookie").is_some());
    let after = &elsewhere.seen("/feed.xml");
    assert_eq!(after.len(), 1, "the redirect was followed");
    for name in ["authorization", "x-token", "cookie"] {
        assert_eq!(after[0].header(name), None, "{name} went to another origin");
    }
    // article_auth: the token goes to the article on the feed's origin, not the other one.
    let agent = home.seen("/auth.xml")[0].header("user-agent");
    assert_eq!(
        agent.as_deref(),
        Some("private-agent/1"),
        "the feed's own user agent"
    );
    let same = home.seen("/page/1");
    assert!(
        same.iter().any(|s| s.header("x-token").is_some()),
        "{same:?}"
    );
    let other = elsewhere.seen("/page/2");
    assert!(!other.is_empty() && other.iter().all(|s| s.header("x-token").is_none()));
    assert!(titles(&setup).len() >= 2, "{:?}", setup.lines());

    // Without article_auth, no article request carries them.
    let plain_home = Server::start();
    let plain_entries = [Entry {
        link: plain_home.url("/page/1"),
        ..Entry::new(1, "")
    }];
    plain_home.set(
        "/plain.xml",
        Route::ok(rss("plain", &plain_entries), "application/rss+xml"),
    );
    plain_home.respond_prefix("/page/", move |_, _| Route::ok(page, "text/html"));
    let plain = Setup::new(&format!(
        "[article]\nallowed_networks = [\"127.0.0.1/32\"]\n\n\
         [[feeds]]\nname = \"plain\"\nurl = \"{}\"\nheaders = {{ X-Token = {{ env = \"FEED_TOKEN\" }} }}\n",
        plain_home.url("/plain.xml"),
    ));
    assert_ok(&with_secrets(&plain, &["once"]));
    assert!(plain_home.seen("/plain.xml")[0].header("x-token").is_some());
    let pages = plain_home.seen("/page/1");
    assert!(!pages.is_empty() && pages.iter().all(|s| s.header("x-token").is_none()));
}

#[test]
fn a_refused_feed_says_authentication_failed_and_which_key_to_set() {
    let server = Server::start();
    server.set("/private.xml", Route::status(401));
    server.set("/forbidden.xml", Route::status(403));
    let setup = Setup::new("");
    let log = setup.path("out.jsonl");
    setup.write_config(&format!(
        "[sinks.out]\ntype = \"log\"\npath = {:?}\nevents = [\"item.new\", \"feed.failing\"]\n\n\
         [[feeds]]\nname = \"nocreds\"\nurl = \"{}\"\n\n\
         [[feeds]]\nname = \"wrong\"\nurl = \"{}\"\nusername = \"reader\"\npassword_env = \"FEED_PASSWORD\"\n",
        log.display().to_string(),
        server.url("/private.xml"),
        server.url("/forbidden.xml"),
    ));
    // feed.failing comes with the third failure in a row.
    for _ in 0..3 {
        let _ = with_secrets(&setup, &["once"]);
    }
    let out = setup.run(&["feeds"]);
    assert_ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("authentication failed (HTTP 401)"), "{text}");
    assert!(
        text.contains("password_env") && text.contains("cookie_env"),
        "{text}"
    );
    assert!(
        text.contains("authentication failed (HTTP 403)")
            && text.contains("check the value behind feeds[1].password_env"),
        "{text}"
    );
    let failing: Vec<serde_json::Value> = read_lines(&log)
        .into_iter()
        .filter(|l| l["type"] == "feed.failing")
        .collect();
    assert_eq!(failing.len(), 2, "{failing:?}");
    for event in &failing {
        let text = event.to_string();
        assert!(text.contains("authentication failed"), "{text}");
        assert!(
            text.contains("password_env"),
            "the hint names the key: {text}"
        );
    }
}

// ---- proxies written for the test ---------------------------------------------------------------

/// What a proxy was asked for: `host:port` targets, as the client named them.
#[derive(Clone, Default)]
struct Asked(Arc<Mutex<Vec<String>>>);

impl Asked {
    fn push(&self, target: String) {
        self.0.lock().expect("lock").push(target);
    }
    fn all(&self) -> Vec<String> {
        self.0.lock().expect("lock").clone()
    }
}

/// Runs `serve` for each connection accepted on 127.0.0.1, on a thread of its own.
fn start_proxy<F, Fut>(serve: F) -> (SocketAddr, Asked)
where
    F: Fn(TcpStream, Asked) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = std::io::Result<()>> + Send + 'static,
{
    let asked = Asked::default();
    let (tx, rx) = std::sync::mpsc::channel();
    let seen = asked.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            tx.send(listener.local_addr().expect("addr")).expect("send");
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(serve(conn, seen.clone()));
            }
        });
    });
    (rx.recv().expect("proxy address"), asked)
}

/// An HTTP proxy: `CONNECT host:port` is tunnelled; an absolute-form request is forwarded
/// (one per connection). Only a client with the proxy password is served.
fn http_proxy() -> (SocketAddr, Asked) {
    start_proxy(|mut client: TcpStream, asked: Asked| async move {
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut b = [0u8; 1];
            if client.read(&mut b).await? == 0 {
                return Ok(());
            }
            head.push(b[0]);
        }
        let head = String::from_utf8_lossy(&head).to_string();
        let mut lines = head.split("\r\n");
        let request = lines.next().unwrap_or_default().to_string();
        let mut parts = request.split(' ');
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        use base64::Engine as _;
        let auth = format!(
            "proxy-authorization: basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("fw:{PROXY_PASSWORD}"))
                .to_ascii_lowercase()
        );
        if !head.to_ascii_lowercase().contains(&auth) {
            client
                .write_all(
                    b"HTTP/1.1 407 Proxy Authentication Required\r\ncontent-length: 0\r\n\r\n",
                )
                .await?;
            return Ok(());
        }
        if method == "CONNECT" {
            asked.push(format!("CONNECT {target}"));
            let mut upstream = TcpStream::connect(target).await?;
            client
                .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                .await?;
            tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
            return Ok(());
        }
        let Some(rest) = target.strip_prefix("http://") else {
            return Ok(());
        };
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        asked.push(authority.to_string());
        let mut upstream = TcpStream::connect(authority).await?;
        let mut forwarded = format!(
            "{method} {} HTTP/1.1\r\n",
            if path.is_empty() { "/" } else { path }
        );
        for line in lines.filter(|l| !l.is_empty()) {
            let name = line.split(':').next().unwrap_or("").to_ascii_lowercase();
            if !matches!(
                name.as_str(),
                "proxy-authorization" | "proxy-connection" | "connection"
            ) {
                forwarded.push_str(line);
                forwarded.push_str("\r\n");
            }
        }
        // One request per connection keeps this proxy small.
        forwarded.push_str("connection: close\r\n\r\n");
        upstream.write_all(forwarded.as_bytes()).await?;
        tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
        Ok(())
    })
}

/// A SOCKS5 proxy (RFC 1928, no authentication, CONNECT only) that records each target as
/// the client gave it: an IP address or a name.
fn socks5_proxy() -> (SocketAddr, Asked) {
    start_proxy(|mut client: TcpStream, asked: Asked| async move {
        let mut greeting = [0u8; 2];
        client.read_exact(&mut greeting).await?;
        let mut methods = vec![0u8; greeting[1] as usize];
        client.read_exact(&mut methods).await?;
        client.write_all(&[5, 0]).await?;
        let mut req = [0u8; 4];
        client.read_exact(&mut req).await?;
        let host = match req[3] {
            1 => {
                let mut ip = [0u8; 4];
                client.read_exact(&mut ip).await?;
                std::net::Ipv4Addr::from(ip).to_string()
            }
            3 => {
                let mut len = [0u8; 1];
                client.read_exact(&mut len).await?;
                let mut name = vec![0u8; len[0] as usize];
                client.read_exact(&mut name).await?;
                String::from_utf8_lossy(&name).to_string()
            }
            _ => {
                let mut ip = [0u8; 16];
                client.read_exact(&mut ip).await?;
                format!("[{}]", std::net::Ipv6Addr::from(ip))
            }
        };
        let mut port = [0u8; 2];
        client.read_exact(&mut port).await?;
        let target = format!("{host}:{}", u16::from_be_bytes(port));
        asked.push(target.clone());
        let mut upstream = TcpStream::connect(&target).await?;
        client.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
        tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
        Ok(())
    })
}

#[test]
fn feeds_are_fetched_through_an_http_proxy_and_a_socks5_proxy() {
    let origin = Server::start();
    origin.set(
        "/via-http.xml",
        Route::ok(
            feed_body("http://example.com", "viahttp"),
            "application/rss+xml",
        ),
    );
    origin.set(
        "/via-socks.xml",
        Route::ok(
            feed_body("http://example.com", "viasocks"),
            "application/rss+xml",
        ),
    );
    origin.set(
        "/via-daemon.xml",
        Route::ok(
            feed_body("http://example.com", "viadaemon"),
            "application/rss+xml",
        ),
    );
    let (http, http_asked) = http_proxy();
    let (socks, socks_asked) = socks5_proxy();
    let setup = Setup::new(&format!(
        "[article]\nfetch = false\n\n\
         [[feeds]]\nname = \"viahttp\"\nurl = \"{}\"\nproxy = \"http://fw:{PROXY_PASSWORD}@{http}\"\n\n\
         [[feeds]]\nname = \"viasocks\"\nurl = \"{}\"\nproxy = \"socks5://{socks}\"\n\n\
         [[feeds]]\nname = \"viadaemon\"\nurl = \"{}\"\n",
        origin.url("/via-http.xml"),
        origin.url("/via-socks.xml"),
        origin.url("/via-daemon.xml"),
    ));
    daemon_keys(&setup, &format!("proxy = \"socks5h://{socks}\""));
    assert_ok(&setup.run(&["once"]));
    let mut got = titles(&setup);
    got.sort();
    assert_eq!(got.len(), 6, "{got:?}");
    let origin_at = origin.addr.to_string();
    assert!(
        http_asked.all().contains(&origin_at),
        "{:?}",
        http_asked.all()
    );
    assert_eq!(
        socks_asked
            .all()
            .iter()
            .filter(|t| **t == origin_at)
            .count(),
        2,
        "the feed's socks5 proxy and the daemon's: {:?}",
        socks_asked.all()
    );
    for feed in setup.feeds_json() {
        let proxy = feed["proxy"].as_str().unwrap_or_default().to_string();
        let expected = match feed["name"].as_str() {
            Some("viahttp") => format!("http://{http}"),
            Some("viasocks") => format!("socks5://{socks}"),
            _ => format!("socks5h://{socks}"),
        };
        assert_eq!(proxy, expected, "{feed}");
    }
}

#[test]
fn an_article_behind_a_proxy_that_resolves_to_a_refused_address_is_still_refused() {
    let pages = Server::start();
    pages.respond_prefix("/", |_, _| {
        Route::ok(
            "<html><body><article><p>Internal page.</p></article></body></html>",
            "text/html",
        )
    });
    // `localhost` resolves to a loopback address: a name, so only resolving it shows that.
    let link = format!("http://localhost:{}", pages.addr.port());
    let feeds = Server::start();
    feeds.set(
        "/feed.xml",
        Route::ok(feed_body(&link, "internal"), "application/rss+xml"),
    );
    let (http, http_asked) = http_proxy();
    let (socks, socks_asked) = socks5_proxy();
    for proxy in [
        format!("http://fw:{PROXY_PASSWORD}@{http}"),
        format!("socks5h://{socks}"),
        format!("socks5://{socks}"),
    ] {
        let setup = Setup::new(&format!(
            "[[feeds]]\nname = \"internal\"\nurl = \"{}\"\nproxy = \"{proxy}\"\n",
            feeds.url("/feed.xml")
        ));
        assert_ok(&setup.run(&["once"]));
        let lines = setup.lines();
        assert_eq!(lines.len(), 2, "{lines:?}");
        for l in &lines {
            assert_eq!(l["item"]["content_source"], "feed", "{l}");
            let error = l["item"]["content_error"].as_str().unwrap_or_default();
            assert!(error.contains("refused localhost"), "{proxy}: {error}");
        }
    }
    let page_port = format!(":{}", pages.addr.port());
    let asked: Vec<String> = http_asked
        .all()
        .into_iter()
        .chain(socks_asked.all())
        .collect();
    assert!(
        asked.iter().all(|t| !t.ends_with(&page_port)),
        "no proxy was asked for the page: {asked:?}"
    );
    assert!(pages.all_seen().is_empty());

    // Allowed, the page goes through the socks5h proxy, which is given the checked address
    // rather than the name it could resolve elsewhere.
    let setup = Setup::new(&format!(
        "[article]\nallowed_networks = [\"127.0.0.1/32\", \"::1/128\"]\n\n\
         [[feeds]]\nname = \"internal\"\nurl = \"{}\"\nproxy = \"socks5h://{socks}\"\n",
        feeds.url("/feed.xml")
    ));
    assert_ok(&setup.run(&["once"]));
    let to_page: Vec<String> = socks_asked
        .all()
        .into_iter()
        .filter(|t| t.ends_with(&page_port))
        .collect();
    assert!(
        !to_page.is_empty() && to_page.iter().all(|t| !t.starts_with("localhost")),
        "{to_page:?}"
    );
}

/// A plain HTTP/1.0 GET of the daemon's own listener: the body.
fn get(port: u16, path: &str) -> String {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
    let mut raw = String::new();
    let _ = s.read_to_string(&mut raw);
    raw
}

#[test]
fn no_secret_appears_in_logs_reports_metrics_payloads_or_the_status_page() {
    let server = Server::start();
    guarded(&server, "/basic.xml", "authorization", basic(), "basic");
    guarded(&server, "/token.xml", "x-token", TOKEN.to_string(), "token");
    guarded(
        &server,
        "/cookie.xml",
        "cookie",
        COOKIE.to_string(),
        "cookie",
    );
    guarded(&server, "/inurl.xml", "authorization", basic(), "inurl");
    server.set("/refused.xml", Route::status(403));
    server.respond_prefix("/articles/", |_, _| Route::status(401));
    let (http, http_asked) = http_proxy();
    let port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).expect("token file");
    let setup = Setup::new(&format!(
        "[article]\nallowed_networks = [\"127.0.0.1/32\"]\n\n\
         [[feeds]]\nname = \"basic\"\nurl = \"{}\"\nusername = \"reader\"\npassword_env = \"FEED_PASSWORD\"\narticle_auth = true\n\
         proxy = \"http://fw:{PROXY_PASSWORD}@{http}\"\n\n\
         [[feeds]]\nname = \"token\"\nurl = \"{}\"\nheaders = {{ X-Token = {{ file = {:?} }} }}\n\n\
         [[feeds]]\nname = \"cookie\"\nurl = \"{}\"\ncookie_env = \"FEED_COOKIE\"\n\n\
         [[feeds]]\nname = \"refused\"\nurl = \"{}\"\ncookie_env = \"FEED_COOKIE\"\n\n\
         [[feeds]]\nname = \"deadproxy\"\nurl = \"{}\"\nproxy = \"http://fw:{PROXY_PASSWORD}@127.0.0.1:{}\"\n\n\
         [[feeds]]\nname = \"inurl\"\nurl = \"{}\"\n",
        server.url("/basic.xml"),
        server.url("/token.xml"),
        token_file.display().to_string(),
        server.url("/cookie.xml"),
        server.url("/refused.xml"),
        server.url("/dead.xml"),
        free_port(),
        server
            .url("/inurl.xml")
            .replace("://", &format!("://reader:{PASSWORD}@")),
    ));
    daemon_keys(&setup, &format!("listen = \"127.0.0.1:{port}\""));
    let mut child = setup
        .command(&["run"])
        .env("FEED_PASSWORD", PASSWORD)
        .env("FEED_COOKIE", COOKIE)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn feedwire");
    // Every feed polled once: the items of four, the refusal and the dead proxy recorded.
    let arrived = wait_until(Duration::from_secs(30), || {
        titles(&setup).len() >= 8
            && setup
                .feeds_json()
                .iter()
                .filter(|f| f["errors_in_row"] == 1)
                .count()
                == 2
    });
    let metrics = get(port, "/metrics");
    let status = get(port, "/");
    signal(&child, "TERM");
    let exited = wait_exit(&mut child, Duration::from_secs(15));
    let mut stderr = String::new();
    let mut stdout = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut stdout);
    }
    assert!(arrived, "items: {:?}\nstderr: {stderr}", titles(&setup));
    assert!(exited.is_some(), "the daemon stops on SIGTERM");
    assert!(
        !http_asked.all().is_empty(),
        "the basic feed went through the proxy"
    );
    assert!(metrics.contains("feedwire_"), "{metrics}");
    assert!(status.contains("basic"), "{status}");
    let feeds_json = String::from_utf8_lossy(&setup.run(&["feeds", "--json"]).stdout).to_string();
    let feeds_text = String::from_utf8_lossy(&setup.run(&["feeds"]).stdout).to_string();
    assert!(
        feeds_text.contains("cannot connect"),
        "the dead proxy is an error: {feeds_text}"
    );
    assert!(
        feeds_text.contains("authentication failed (HTTP 403)"),
        "{feeds_text}"
    );
    let sink = std::fs::read_to_string(setup.path("out.jsonl")).unwrap_or_default();
    let outputs = [
        ("stderr", &stderr),
        ("stdout", &stdout),
        ("feeds --json", &feeds_json),
        ("feeds", &feeds_text),
        ("/metrics", &metrics),
        ("status page", &status),
        ("log sink", &sink),
    ];
    for (name, text) in outputs {
        for secret in SECRETS {
            assert!(
                !text.contains(secret),
                "{secret} appears in {name}:\n{text}"
            );
        }
        assert!(
            !text.contains(&basic()[6..]),
            "the basic-auth token appears in {name}"
        );
    }
    assert!(
        stderr.contains("feed"),
        "the daemon logged at debug level: {stderr}"
    );
}

/// The test CA and the certificate of `127.0.0.1` / `localhost` it signed (made once with
/// openssl for these tests, valid for a century; the key protects nothing).
fn tls_fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

/// An HTTPS server on 127.0.0.1 answering every request with `body` (one per connection).
fn https_feed(body: String) -> SocketAddr {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(tls_fixture("server.pem"))
            .expect("certificate fixture")
            .collect::<Result<_, _>>()
            .expect("certificate");
    let key = PrivateKeyDer::from_pem_file(tls_fixture("server.key")).expect("key fixture");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocols")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("server config");
    let config = Arc::new(config);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let config = config.clone();
            let body = body.clone();
            std::thread::spawn(move || {
                let Ok(tls) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let mut stream = rustls::StreamOwned::new(tls, conn);
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut b) {
                        Ok(1) => head.push(b[0]),
                        _ => return,
                    }
                }
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/rss+xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                stream.conn.send_close_notify();
                let _ = stream.flush();
            });
        }
    });
    addr
}

#[test]
fn an_https_feed_goes_through_the_http_proxy_in_a_connect_tunnel() {
    let feed = https_feed(feed_body("http://example.com", "tunnelled"));
    let (http, http_asked) = http_proxy();
    let setup = Setup::new(&format!(
        "[article]\nfetch = false\n\n\
         [[feeds]]\nname = \"tunnelled\"\nurl = \"https://{feed}/feed.xml\"\nproxy = \"http://fw:{PROXY_PASSWORD}@{http}\"\n",
    ));
    // The test CA is the only one the client trusts here.
    let out = setup
        .command(&["once"])
        .env("SSL_CERT_FILE", tls_fixture("ca.pem"))
        .output()
        .expect("run feedwire");
    assert_ok(&out);
    assert_eq!(
        titles(&setup).len(),
        2,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(http_asked.all(), [format!("CONNECT {feed}")]);
}
