//! WebSub push against a hub written here to the W3C Recommendation: the binary subscribes
//! to the hub a feed advertises, answers the hub's verification of intent, takes signed
//! content distributions as polls, renews its lease, and falls back to polling when the hub
//! goes away.

mod common;
#[path = "common/receiver.rs"]
mod receiver;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use receiver::{Answer, Receiver};

/// A plain HTTP/1.1 request with `Connection: close`: (status, body).
fn http(method: &str, url: &str, headers: &[(&str, String)], body: &[u8]) -> Option<(u16, String)> {
    let url = url::Url::parse(url).ok()?;
    let addr = (url.host_str()?.to_string(), url.port_or_known_default()?);
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let target = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    let mut head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
        url.host_str()?,
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).ok()?;
    s.write_all(body).ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let raw = String::from_utf8_lossy(&raw).to_string();
    let status = raw.split_whitespace().nth(1)?.parse().ok()?;
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

fn query_string(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// One subscriber the hub verified.
#[derive(Clone, Debug)]
struct HubSub {
    topic: String,
    secret: String,
}

#[derive(Default)]
struct HubState {
    /// Verified subscriptions by callback URL.
    subs: HashMap<String, HubSub>,
    /// Every (un)subscription request: (mode, callback, when).
    requests: Vec<(String, String, Instant)>,
    /// Answers the hub refuses with 503 from now on (it went away).
    gone: bool,
}

/// A WebSub hub (W3C Recommendation §5–§7): takes (un)subscription requests with 202, then
/// verifies intent with a GET carrying a random challenge that the subscriber must echo;
/// publishes by POSTing the topic's content, signed with each subscriber's secret.
#[derive(Clone)]
struct Hub {
    server: Server,
    state: Arc<Mutex<HubState>>,
}

impl Hub {
    fn start(lease_seconds: u64) -> Hub {
        let server = Server::start();
        let state = Arc::new(Mutex::new(HubState::default()));
        let st = state.clone();
        server.respond("/hub", move |seen, _| {
            let form: HashMap<String, String> = url::form_urlencoded::parse(&seen.body)
                .into_owned()
                .collect();
            let (Some(mode), Some(callback), Some(topic)) = (
                form.get("hub.mode").cloned(),
                form.get("hub.callback").cloned(),
                form.get("hub.topic").cloned(),
            ) else {
                return Route::status(400);
            };
            {
                let mut s = st.lock().expect("lock");
                s.requests
                    .push((mode.clone(), callback.clone(), Instant::now()));
                if s.gone {
                    return Route::status(503);
                }
            }
            let secret = form.get("hub.secret").cloned().unwrap_or_default();
            let st = st.clone();
            // Verification of intent happens after the 202, as the spec has it.
            std::thread::spawn(move || {
                let challenge = format!("challenge-{}", rand::random::<u64>());
                let lease = lease_seconds.to_string();
                let mut pairs = vec![
                    ("hub.mode", mode.as_str()),
                    ("hub.topic", topic.as_str()),
                    ("hub.challenge", challenge.as_str()),
                ];
                if mode == "subscribe" {
                    pairs.push(("hub.lease_seconds", lease.as_str()));
                }
                let url = format!("{callback}?{}", query_string(&pairs));
                let answer = http("GET", &url, &[], b"");
                if answer.is_some_and(|(status, body)| status == 200 && body == challenge) {
                    let mut s = st.lock().expect("lock");
                    if mode == "subscribe" {
                        s.subs.insert(callback, HubSub { topic, secret });
                    } else {
                        s.subs.remove(&callback);
                    }
                }
            });
            Route::status(202)
        });
        Hub { server, state }
    }

    fn url(&self) -> String {
        self.server.url("/hub")
    }

    fn subscriptions(&self) -> Vec<(String, HubSub)> {
        let s = self.state.lock().expect("lock");
        s.subs.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    fn subscribe_requests(&self) -> usize {
        let s = self.state.lock().expect("lock");
        s.requests
            .iter()
            .filter(|(m, _, _)| m == "subscribe")
            .count()
    }

    fn go_away(&self) {
        self.state.lock().expect("lock").gone = true;
    }

    /// Content distribution: POSTs `body` to every subscriber of `topic`, signed unless
    /// `signature` overrides it; the subscribers' statuses.
    fn publish(&self, topic: &str, body: &str, signature: Option<&str>) -> Vec<u16> {
        self.subscriptions()
            .into_iter()
            .filter(|(_, s)| s.topic == topic)
            .map(|(callback, s)| {
                let sig = signature.map(String::from).unwrap_or_else(|| {
                    feedwire::websub::sha256_signature(s.secret.as_bytes(), body.as_bytes())
                });
                let mut headers = vec![("Content-Type", "application/atom+xml".to_string())];
                if !sig.is_empty() {
                    headers.push(("X-Hub-Signature", sig));
                }
                http("POST", &callback, &headers, body.as_bytes()).map_or(0, |(s, _)| s)
            })
            .collect()
    }
}

/// An Atom feed of entries 1..=n that advertises `hub` and its own URL as the topic.
fn feed(hub: &str, topic: &str, numbers: &[u32], base: &str) -> String {
    let entries: Vec<Entry> = numbers.iter().map(|n| Entry::new(*n, base)).collect();
    atom("Pushed", &entries).replace(
        "<id>urn:feed</id>",
        &format!(
            "<id>urn:feed</id><link rel=\"hub\" href=\"{hub}\"/><link rel=\"self\" href=\"{topic}\"/>"
        ),
    )
}

/// The daemon's config: the callback on `port`, the webhook `receiver`, and `feeds`.
fn write_config(setup: &Setup, port: u16, receiver: &Receiver, feeds: &str) {
    setup.write_config(&format!(
        "[article]\nfetch = false\nallowed_networks = [\"127.0.0.1/32\"]\n\n\
         [websub]\ncallback = \"http://127.0.0.1:{port}/websub\"\n\n\
         [sinks.hook]\ntype = \"webhook\"\nurl = \"{}\"\n\n{feeds}",
        receiver.url()
    ));
    let config = std::fs::read_to_string(setup.config_path()).expect("config");
    std::fs::write(
        setup.config_path(),
        config.replace(
            "[daemon]\n",
            &format!("[daemon]\nlisten = \"127.0.0.1:{port}\"\n"),
        ),
    )
    .expect("write config");
}

/// `feedwire run`, its standard error appended to `stderr.log`.
fn spawn(setup: &Setup) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(setup.path("stderr.log"))
        .expect("log file");
    setup
        .command(&["run"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn feedwire")
}

struct Fixture {
    hub: Hub,
    publisher: Server,
    receiver: Receiver,
    setup: Setup,
    child: Child,
    port: u16,
    topic: String,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Fixture {
    /// The daemon with one feed that advertises the hub, polled every `interval`.
    fn start(lease_seconds: u64, interval: &str) -> Fixture {
        let hub = Hub::start(lease_seconds);
        let publisher = Server::start();
        let topic = publisher.url("/feed.xml");
        publisher.set(
            "/feed.xml",
            Route::ok(
                feed(&hub.url(), &topic, &[1], &publisher.url("")),
                "application/atom+xml",
            ),
        );
        let receiver = Receiver::start(Duration::ZERO, |_| Answer::ok());
        let port = free_port();
        let setup = Setup::new("");
        write_config(
            &setup,
            port,
            &receiver,
            &format!(
                "[[feeds]]\nname = \"pushed\"\nurl = \"{topic}\"\ninterval = \"{interval}\"\n"
            ),
        );
        let child = spawn(&setup);
        Fixture {
            hub,
            publisher,
            receiver,
            setup,
            child,
            port,
            topic,
        }
    }

    /// The item.new payloads the receiver accepted, by guid, with when they arrived.
    fn arrived(&self) -> Vec<(String, Instant)> {
        self.receiver
            .records()
            .into_iter()
            .filter(|r| r.delivered())
            .filter(|r| r.json()["type"] == "item.new")
            .map(|r| {
                (
                    r.json()["item"]["guid"].as_str().unwrap_or("").to_string(),
                    r.arrived,
                )
            })
            .collect()
    }

    /// What the daemon logged, for failure messages.
    fn log(&self) -> String {
        std::fs::read_to_string(self.setup.path("stderr.log")).unwrap_or_default()
    }

    fn has(&self, guid: &str) -> bool {
        self.arrived().iter().any(|(g, _)| g == guid)
    }

    fn websub_state(&self) -> serde_json::Value {
        self.setup
            .feeds_json()
            .into_iter()
            .find(|f| f["name"] == "pushed")
            .map(|f| f["websub"].clone())
            .unwrap_or(serde_json::Value::Null)
    }

    /// Waits until the first poll's item is delivered and the hub verified us.
    fn subscribed(&self) {
        assert!(
            wait_until(Duration::from_secs(15), || self.has("urn:test:1")),
            "the first poll's item arrives"
        );
        assert!(
            wait_until(Duration::from_secs(15), || !self
                .hub
                .subscriptions()
                .is_empty()),
            "the hub verified a subscription"
        );
        assert!(
            wait_until(Duration::from_secs(10), || self.websub_state()["state"]
                == "active"),
            "feeds shows the subscription active: {}",
            self.websub_state()
        );
    }

    fn callback(&self) -> String {
        self.hub
            .subscriptions()
            .first()
            .map(|(c, _)| c.clone())
            .expect("a verified subscription")
    }

    fn body(&self, numbers: &[u32]) -> String {
        feed(
            &self.hub.url(),
            &self.topic,
            numbers,
            &self.publisher.url(""),
        )
    }
}

#[test]
fn a_signed_distribution_reaches_the_webhook_within_two_seconds() {
    let f = Fixture::start(3600, "1h");
    f.subscribed();
    let (callback, sub) = f.hub.subscriptions().remove(0);
    assert!(
        callback.starts_with(&format!("http://127.0.0.1:{}/websub/", f.port)),
        "{callback}"
    );
    assert_eq!(sub.topic, f.topic, "the topic is the feed's self URL");
    assert!(sub.secret.len() >= 32, "a random per-subscription secret");
    let active = f.websub_state();
    assert!(active["until"].is_string(), "{active}");

    let body = f.body(&[1, 2]);
    f.publisher
        .set("/feed.xml", Route::ok(body.clone(), "application/atom+xml"));
    let published = Instant::now();
    assert_eq!(f.hub.publish(&f.topic, &body, None), vec![202]);
    assert!(
        wait_until(Duration::from_secs(2), || f.has("urn:test:2")),
        "the pushed item arrives within 2 s (the feed is polled hourly)"
    );
    let (_, at) = f
        .arrived()
        .into_iter()
        .find(|(g, _)| g == "urn:test:2")
        .expect("arrived");
    assert!(at.duration_since(published) < Duration::from_secs(2));
    // The same item pushed again is not new.
    assert_eq!(f.hub.publish(&f.topic, &body, None), vec![202]);
    let row = f
        .setup
        .feeds_json()
        .into_iter()
        .find(|r| r["name"] == "pushed")
        .expect("feed row");
    assert!(
        wait_until(Duration::from_secs(5), || f
            .setup
            .feeds_json()
            .first()
            .is_some_and(|r| r["next_poll_reason"]
                .as_str()
                .is_some_and(|s| s.contains("safety net")))),
        "polling goes on at max_interval as the safety net: {row}"
    );
    assert_eq!(
        f.arrived()
            .iter()
            .filter(|(g, _)| g == "urn:test:2")
            .count(),
        1
    );
}

#[test]
fn unsigned_or_wrongly_signed_distributions_are_rejected_and_change_nothing() {
    let f = Fixture::start(3600, "1h");
    f.subscribed();
    let bad = f.body(&[1, 2]);
    assert_eq!(
        f.hub.publish(&f.topic, &bad, Some("sha256=00ff")),
        vec![403]
    );
    assert_eq!(
        f.hub.publish(
            &f.topic,
            &bad,
            Some("sha1=0123456789abcdef0123456789abcdef01234567")
        ),
        vec![403]
    );
    assert_eq!(
        f.hub.publish(&f.topic, &bad, Some("")),
        vec![403],
        "unsigned"
    );
    // Signed with the secret, but over another body than the one sent.
    let other = feedwire::websub::sha256_signature(
        f.hub.subscriptions()[0].1.secret.as_bytes(),
        b"something else",
    );
    assert_eq!(f.hub.publish(&f.topic, &bad, Some(&other)), vec![403]);
    // A good distribution afterwards goes through; the rejected item never does.
    let good = f.body(&[1, 3]);
    assert_eq!(f.hub.publish(&f.topic, &good, None), vec![202]);
    assert!(wait_until(Duration::from_secs(5), || f.has("urn:test:3")));
    assert!(!f.has("urn:test:2"), "{:?}", f.arrived());
    assert_eq!(f.websub_state()["state"], "active");
    let (_, metrics) = http(
        "GET",
        &format!("http://127.0.0.1:{}/metrics", f.port),
        &[],
        b"",
    )
    .expect("metrics");
    assert!(
        metrics.contains("feedwire_websub_requests_total{outcome=\"rejected\"} 4"),
        "{metrics}"
    );
}

#[test]
fn verification_for_a_topic_or_path_we_never_asked_for_gets_404() {
    let f = Fixture::start(3600, "1h");
    f.subscribed();
    let callback = f.callback();
    let q = |mode: &str, topic: &str| {
        query_string(&[
            ("hub.mode", mode),
            ("hub.topic", topic),
            ("hub.challenge", "xyz"),
            ("hub.lease_seconds", "60"),
        ])
    };
    let answer = |url: String| http("GET", &url, &[], b"").map(|(s, _)| s);
    assert_eq!(
        answer(format!(
            "{callback}?{}",
            q("subscribe", "http://other.example/feed")
        )),
        Some(404),
        "another topic on our path"
    );
    assert_eq!(
        answer(format!("{callback}?{}", q("subscribe", &f.topic))),
        Some(404),
        "already verified: nothing of ours is pending"
    );
    assert_eq!(
        answer(format!("{callback}?{}", q("unsubscribe", &f.topic))),
        Some(404),
        "we never asked to unsubscribe"
    );
    let unknown = format!("http://127.0.0.1:{}/websub/0123456789abcdef", f.port);
    assert_eq!(
        answer(format!("{unknown}?{}", q("subscribe", &f.topic))),
        Some(404),
        "a path that is no subscription"
    );
    let body = f.body(&[1, 2]);
    let sig = feedwire::websub::sha256_signature(b"guess", body.as_bytes());
    assert_eq!(
        http(
            "POST",
            &unknown,
            &[("X-Hub-Signature", sig)],
            body.as_bytes()
        )
        .map(|(s, _)| s),
        Some(404)
    );
    assert_eq!(f.websub_state()["state"], "active");
}

#[test]
fn a_short_lease_is_renewed_before_it_runs_out() {
    let f = Fixture::start(3, "1h");
    f.subscribed();
    let first_until = f.websub_state()["until"].clone();
    assert!(
        wait_until(Duration::from_secs(10), || f.hub.subscribe_requests() >= 3),
        "renewed again and again: {} subscribe requests\n{}",
        f.hub.subscribe_requests(),
        f.log()
    );
    let now = f.websub_state();
    assert_eq!(now["state"], "active", "{now}");
    assert_ne!(now["until"], first_until, "the lease was extended");
    // Still the one subscription, still pushing.
    assert_eq!(f.hub.subscriptions().len(), 1);
    let body = f.body(&[1, 2]);
    assert_eq!(f.hub.publish(&f.topic, &body, None), vec![202]);
    assert!(wait_until(Duration::from_secs(5), || f.has("urn:test:2")));
}

#[test]
fn a_hub_that_goes_away_falls_back_to_polling() {
    let f = Fixture::start(2, "1s");
    f.subscribed();
    // While the hub pushes, the feed is polled only as the safety net.
    let polls_when_active = f.publisher.seen("/feed.xml").len();
    f.hub.go_away();
    assert!(
        wait_until(Duration::from_secs(10), || f.websub_state()["state"]
            == "failed"),
        "the failed renewal is shown: {}",
        f.websub_state()
    );
    let failed = f.websub_state();
    assert!(
        failed["reason"].as_str().is_some_and(|r| r.contains("503")),
        "{failed}"
    );
    // Published without a push: polling finds it.
    f.publisher.set(
        "/feed.xml",
        Route::ok(f.body(&[1, 2]), "application/atom+xml"),
    );
    assert!(
        wait_until(Duration::from_secs(10), || f.has("urn:test:2")),
        "the item arrives by polling: {} polls since the hub went away\n{}",
        f.publisher.seen("/feed.xml").len() - polls_when_active,
        f.log()
    );
    assert!(f.publisher.seen("/feed.xml").len() > polls_when_active);
}

#[test]
fn a_feed_removed_from_the_config_is_unsubscribed_at_its_hub() {
    let f = Fixture::start(3600, "1h");
    f.subscribed();
    let callback = f.callback();
    let other = f.publisher.url("/other.xml");
    f.publisher.set(
        "/other.xml",
        Route::ok(rss("Other", &[]), "application/rss+xml"),
    );
    write_config(
        &f.setup,
        f.port,
        &f.receiver,
        &format!("[[feeds]]\nname = \"other\"\nurl = \"{other}\"\n"),
    );
    signal(&f.child, "HUP");
    assert!(
        wait_until(Duration::from_secs(10), || f.hub.subscriptions().is_empty()),
        "the hub verified our unsubscription\n{}",
        f.log()
    );
    let requests = f.hub.state.lock().expect("lock").requests.clone();
    assert!(
        requests
            .iter()
            .any(|(mode, cb, _)| mode == "unsubscribe" && *cb == callback),
        "{requests:?}"
    );
    // Its path is no subscription any more.
    let body = f.body(&[1, 2]);
    assert_eq!(
        http(
            "POST",
            &callback,
            &[("X-Hub-Signature", "sha256=00".into())],
            body.as_bytes()
        )
        .map(|(s, _)| s),
        Some(404)
    );
    assert!(
        wait_until(Duration::from_secs(5), || f
            .setup
            .feeds_json()
            .iter()
            .all(|r| r["websub"].is_null())),
        "no feed shows a subscription"
    );
}

#[test]
fn check_refuses_websub_without_listen() {
    let setup = Setup::new(
        "[websub]\ncallback = \"https://feedwire.example.com/websub\"\n\n[[feeds]]\nurl = \"https://example.com/feed.xml\"\n",
    );
    let out = setup.run(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("websub.callback") && stderr.contains("daemon.listen"),
        "{stderr}"
    );
}

#[test]
fn a_subscription_outlives_a_restart() {
    let mut f = Fixture::start(3600, "1h");
    f.subscribed();
    signal(&f.child, "TERM");
    assert!(wait_exit(&mut f.child, Duration::from_secs(10)).is_some_and(|s| s.success()));
    f.child = spawn(&f.setup);
    let metrics = format!("http://127.0.0.1:{}/metrics", f.port);
    assert!(
        wait_until(Duration::from_secs(10), || http("GET", &metrics, &[], b"")
            .is_some()),
        "the restarted daemon serves its callback"
    );
    // The same path and secret still work: the hub is not asked again.
    let body = f.body(&[1, 2]);
    assert_eq!(f.hub.publish(&f.topic, &body, None), vec![202]);
    assert!(
        wait_until(Duration::from_secs(5), || f.has("urn:test:2")),
        "{}",
        f.log()
    );
    assert_eq!(f.hub.subscribe_requests(), 1, "{}", f.log());
    assert_eq!(f.websub_state()["state"], "active");
}
