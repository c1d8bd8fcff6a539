//! The status page of the running binary, in a real headless Chromium driven over the
//! DevTools protocol, and its token and security headers over plain HTTP.
//!
//! The browser test needs Debian's `chromium` (`.ci/run` installs it); on a machine without
//! it, it says that it skipped (unless `FEEDWIRE_REQUIRE_BROWSER` is set, as in CI). Set `FEEDWIRE_SCREENSHOT=docs/status.png` to keep a copy of
//! the screenshot the run takes (that is how the README's picture is made).

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;
use serde_json::{Value, json};

const TOKEN: &str = "s3cret-status-token";
/// A feed title that must show as text, never run.
const HOSTILE: &str = "<script>alert(1)</script> Hostile";
/// How long one DevTools answer or page load may take on a busy machine.
const CDP_TIMEOUT: Duration = Duration::from_secs(30);

/// Three feeds (one with a hostile title, one carrying a copy of its story, one failing) and
/// a webhook that refuses everything, served by the daemon on `port` with a token.
fn start_daemon(port: u16) -> (Server, Setup, Killed) {
    let server = Server::start();
    let base = server.url("");
    let mut alpha: Vec<Entry> = (1..=3).map(|n| Entry::new(n, &base)).collect();
    alpha[0].title = "River levels rise overnight".into();
    alpha[0].summary =
        "<p>The river rose by two metres overnight.</p><p>The lower town is flooded.</p>".into();
    // The same story under another GUID and tracking parameters: a duplicate by URL.
    let mut copy = Entry::new(1, &base);
    copy.id = "urn:copy:1".into();
    copy.title = "River levels rise (syndicated)".into();
    copy.link = format!("{base}/articles/1?utm_medium=social");
    // Escaped twice in the XML, so the title's text itself holds the markup.
    let hostile_title = HOSTILE.replace('<', "&amp;lt;").replace('>', "&amp;gt;");
    server.set(
        "/alpha.xml",
        Route::ok(rss(&hostile_title, &alpha), "application/rss+xml"),
    );
    server.set(
        "/beta.xml",
        Route::ok(rss("Beta wire", &[copy]), "application/rss+xml"),
    );
    server.set("/broken.xml", Route::status(404));
    server.set("/hook", Route::status(400));
    let setup = Setup::new("");
    setup.write_config_with_daemon(
        &format!("listen = \"127.0.0.1:{port}\"\nstatus_token_env = \"STATUS_TEST_TOKEN\"\n"),
        &format!(
        "[article]\nfetch = false\n\n\
         [sinks.out]\ntype = \"log\"\npath = {out:?}\nevents = [\"item.new\", \"item.duplicate\"]\n\n\
         [sinks.hook]\ntype = \"webhook\"\nurl = \"{hook}\"\n\n\
         [[feeds]]\nname = \"alpha\"\nurl = \"{alpha}\"\ntags = [\"news\"]\n\
         username = \"reader\"\npassword_env = \"STATUS_TEST_PASSWORD\"\n\n\
         [[feeds]]\nname = \"beta\"\nurl = \"{beta}\"\ntags = [\"wire\", \"news\"]\n\n\
         [[feeds]]\nname = \"broken\"\nurl = \"{broken}\"\n",
        out = setup.path("out.jsonl").display().to_string(),
        hook = server.url("/hook"),
        alpha = server.url("/alpha.xml"),
        beta = server.url("/beta.xml"),
        broken = server.url("/broken.xml"),
    ),
    );
    // The feed's credentials must never reach the page.
    let child = setup
        .command(&["run"])
        .env("STATUS_TEST_TOKEN", TOKEN)
        .env("STATUS_TEST_PASSWORD", "hunter2")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn feedwire");
    let child = Killed(child);
    // Four items stored (one a copy of another), the three new ones dead-lettered by the hook.
    let auth = format!("Authorization: Bearer {TOKEN}\r\n");
    assert!(
        wait_until(Duration::from_secs(20), || {
            http_get(port, "/", &auth).is_some_and(|(s, _, body)| {
                s == 200
                    && body.contains("id=\"items-today\">4<")
                    && body.contains("HTTP 404")
                    && body.contains("3 dead")
            })
        }),
        "the daemon did not poll its feeds: {:?}",
        http_get(port, "/", &auth).map(|(_, _, b)| b)
    );
    (server, setup, child)
}

#[test]
fn token_is_required_and_headers_are_strict() {
    let port = free_port();
    let (_server, setup, mut child) = start_daemon(port);

    let (status, head, _) = http_get(port, "/", "").expect("page");
    assert_eq!(status, 401, "no token: {head}");
    assert!(head.contains("www-authenticate: bearer"), "{head}");
    let (status, _, _) = http_get(port, "/?token=wrong", "").expect("page");
    assert_eq!(status, 401);
    let (status, _, _) = http_get(port, "/", "Authorization: Bearer wrong\r\n").expect("page");
    assert_eq!(status, 401);

    for (path, headers) in [
        (format!("/?token={TOKEN}"), String::new()),
        (
            "/".to_string(),
            format!("Authorization: Bearer {TOKEN}\r\n"),
        ),
    ] {
        let (status, head, body) = http_get(port, &path, &headers).expect("page");
        assert_eq!(status, 200, "{path}: {head}");
        let csp = head
            .lines()
            .find_map(|l| l.strip_prefix("content-security-policy: "))
            .unwrap_or_else(|| panic!("no CSP header: {head}"));
        assert!(
            csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        // No inline script: the only script is the embedded file.
        assert_eq!(body.matches("<script").count(), 1, "{body}");
        assert!(body.contains("<script src=\"/assets/status.js\""), "{body}");
        // The hostile title is escaped, the feed's credentials are not shown.
        assert!(
            body.contains("<span class=\"title\">&lt;script&gt;alert(1)&lt;"),
            "{body}"
        );
        assert!(!body.contains("<script>alert"), "{body}");
        assert!(
            !body.contains("hunter2") && !body.contains("reader:"),
            "{body}"
        );
    }
    // Health and metrics stay open to probes; assets are the same for everyone.
    assert_eq!(http_get(port, "/healthz", "").map(|r| r.0), Some(200));
    let (status, head, _) = http_get(port, "/assets/status.js", "").expect("asset");
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/javascript"), "{head}");
    assert_eq!(
        http_get(port, "/assets/nothing.js", "").map(|r| r.0),
        Some(404)
    );

    // A reload that adds a sink and a tag: the page shows them without a restart.
    let config = std::fs::read_to_string(setup.config_path()).expect("config");
    let extra = setup.path("extra.jsonl").display().to_string();
    std::fs::write(
        setup.config_path(),
        config.replace("tags = [\"news\"]", "tags = [\"news\", \"reloaded\"]")
            + &format!("\n[sinks.extra]\ntype = \"log\"\npath = {extra:?}\n"),
    )
    .expect("write config");
    signal(&child.0, "HUP");
    let auth = format!("Authorization: Bearer {TOKEN}\r\n");
    assert!(
        wait_until(Duration::from_secs(10), || http_get(port, "/", &auth)
            .is_some_and(|(_, _, body)| body.contains("data-sink=\"extra\"")
                && body.contains("<span class=\"tag\">reloaded</span>"))),
        "the reloaded sink and tag are not shown"
    );

    signal(&child.0, "TERM");
    assert!(wait_exit(&mut child.0, Duration::from_secs(10)).is_some_and(|s| s.success()));
}

#[test]
fn status_page_in_a_real_browser() {
    let Some(chromium) = find_chromium() else {
        // CI installs chromium and sets this, so a broken install fails instead of skipping.
        assert!(
            std::env::var_os("FEEDWIRE_REQUIRE_BROWSER").is_none(),
            "FEEDWIRE_REQUIRE_BROWSER is set but no chromium was found"
        );
        println!(
            "skipped: no chromium on this machine (apt-get install chromium; .ci/run installs it)"
        );
        return;
    };
    let port = free_port();
    let (_server, setup, mut child) = start_daemon(port);
    let mut browser = Browser::launch(&chromium, &setup.path("chromium-profile"));
    let page_url = format!("http://127.0.0.1:{port}/?token={TOKEN}");
    browser.navigate(&page_url);

    // The expected feeds, in name order, with their states.
    let feeds = browser.eval(
        "Array.from(document.querySelectorAll('tr.feed')).map(r => [r.dataset.name, r.dataset.state])",
    );
    assert_eq!(
        feeds,
        json!([["alpha", "ok"], ["beta", "ok"], ["broken", "failing"]])
    );
    // Figures: feeds by state, items today, what dedup saved, the sinks.
    let text = |browser: &mut Browser, id: &str| {
        browser
            .eval(&format!(
                "document.getElementById('{id}').textContent.trim()"
            ))
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(text(&mut browser, "feeds-count"), "3");
    assert_eq!(text(&mut browser, "feeds-ok"), "2 ok");
    assert_eq!(text(&mut browser, "feeds-failing"), "1 failing");
    assert_eq!(text(&mut browser, "items-today"), "4");
    assert_eq!(
        text(&mut browser, "dedup-saved"),
        "1 duplicate not sent again"
    );
    let sinks = browser.eval(
        "Array.from(document.querySelectorAll('.figure.sink')).map(s => [s.dataset.sink, s.querySelector('.badge').textContent])",
    );
    assert_eq!(sinks, json!([["hook", "up"], ["out", "up"]]));
    // The chart has its 48 hours, and the current one holds the four items.
    let chart = browser.eval(
        "(() => { const g = document.querySelectorAll('svg.chart g'); \
          return [g.length, g[g.length - 1].querySelector('title').textContent]; })()",
    );
    assert_eq!(chart[0], json!(48));
    assert!(
        chart[1]
            .as_str()
            .is_some_and(|t| t.ends_with("3 new, 1 duplicate")),
        "{chart}"
    );

    // The hostile title is text: no element came out of it, no dialog opened.
    let hostile = browser.eval(
        "(() => { const row = document.querySelector('tr.feed[data-name=alpha]'); \
          return [row.querySelector('.title').textContent, row.querySelectorAll('script').length, \
                  document.scripts.length]; })()",
    );
    assert_eq!(hostile, json!([HOSTILE, 0, 1]));
    // Recent items: linked titles, the duplicate pointing at its original on the page.
    let items = browser.eval(
        "Array.from(document.querySelectorAll('li.item')).map(i => ({\
           id: i.id, \
           title: i.querySelector('.item-title').textContent, \
           href: i.querySelector('.item-title').getAttribute('href'), \
           dup: (i.querySelector('.dup-of a') || {}).hash || null, \
           text: (i.querySelector('.excerpt') || {}).textContent || null}))",
    );
    let items = items.as_array().expect("items").clone();
    assert_eq!(items.len(), 4, "{items:?}");
    // Whichever feed was polled first holds the original; the other's item points at it.
    let copies: Vec<&Value> = items.iter().filter(|i| !i["dup"].is_null()).collect();
    assert_eq!(copies.len(), 1, "{items:?}");
    let original = items
        .iter()
        .find(|i| copies[0]["dup"] == format!("#{}", i["id"].as_str().unwrap_or("")))
        .expect("the duplicate links to its original on the page");
    assert!(
        original["title"]
            .as_str()
            .is_some_and(|t| t.starts_with("River levels rise")),
        "{original}"
    );
    let story = items
        .iter()
        .find(|i| i["title"] == "River levels rise overnight")
        .expect("alpha's story is listed");
    assert!(
        story["href"]
            .as_str()
            .is_some_and(|h| h.ends_with("/articles/1")),
        "{story}"
    );
    assert!(
        story["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("The river rose by two metres overnight.")),
        "{story}"
    );
    // Dead letters: the refusing webhook, with its status.
    let dead = browser.eval("document.querySelectorAll('#dead-letters tbody tr').length");
    assert_eq!(dead, json!(3));

    // The live filter hides what does not match, without a request.
    browser.eval(
        "(() => { const q = document.getElementById('filter-q'); q.value = 'wire'; \
          q.dispatchEvent(new Event('input')); })()",
    );
    let visible = browser.eval(
        "Array.from(document.querySelectorAll('tr.feed')).filter(r => r.offsetParent !== null).map(r => r.dataset.name)",
    );
    assert_eq!(visible, json!(["beta"]));
    // Sorting in place: by errors in a row, most first.
    browser.eval(
        "(() => { const a = document.querySelector('th[data-key=errors] a'); a.click(); a.click(); })()",
    );
    let first = browser.eval("document.querySelector('tr.feed').dataset.name");
    assert_eq!(first, json!("broken"));

    // The state filter goes to the server (it works without scripts too).
    browser.eval(
        "(() => { const q = document.getElementById('filter-q'); q.value = ''; \
          const s = document.getElementById('filter-state'); s.value = 'failing'; \
          s.dispatchEvent(new Event('change')); })()",
    );
    browser.wait_for_load();
    let filtered = browser.eval(
        "[location.search, Array.from(document.querySelectorAll('tr.feed')).map(r => r.dataset.name)]",
    );
    assert!(
        filtered[0]
            .as_str()
            .is_some_and(|s| s.contains("state=failing") && s.contains("token=")),
        "{filtered}"
    );
    assert_eq!(filtered[1], json!(["broken"]));

    // Back to the whole page for the picture.
    browser.navigate(&page_url);
    let shot = setup.path("status.png");
    browser.screenshot(&shot);
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    if let Some(keep) = std::env::var_os("FEEDWIRE_SCREENSHOT") {
        std::fs::copy(&shot, &keep).expect("copy the screenshot");
        println!("screenshot kept at {}", PathBuf::from(keep).display());
    }

    let errors = browser.errors();
    assert!(errors.is_empty(), "the page logged errors: {errors:#?}");
    drop(browser);
    signal(&child.0, "TERM");
    assert!(wait_exit(&mut child.0, Duration::from_secs(10)).is_some_and(|s| s.success()));
}

fn find_chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CHROMIUM").map(PathBuf::from) {
        return p.exists().then_some(p);
    }
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

// ---- a small DevTools client -----------------------------------------------------------------

/// Headless Chromium with one page, driven over its DevTools WebSocket.
struct Browser {
    _child: Killed,
    ws: tungstenite::WebSocket<TcpStream>,
    next_id: u64,
    /// The page's session; commands without one go to the browser.
    session: Option<String>,
    /// Events read while waiting for answers, oldest first.
    events: Vec<Value>,
}

impl Browser {
    fn launch(chromium: &Path, profile: &Path) -> Browser {
        let child = Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
                "--remote-debugging-port=0",
                "--window-size=1280,1600",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chromium");
        // Killed on drop from here on, so a failing test leaves no browser behind.
        let mut child = Killed(child);
        // Chromium prints where its DevTools endpoint listens on standard error.
        let stderr = child.0.stderr.take().expect("piped stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("ws://") {
                    let _ = tx.send(line[at..].trim().to_string());
                }
            }
        });
        let browser_ws = rx
            .recv_timeout(CDP_TIMEOUT)
            .expect("chromium printed its DevTools address");
        let port: u16 = browser_ws["ws://127.0.0.1:".len()..]
            .split('/')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a DevTools port");
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to DevTools");
        stream.set_read_timeout(Some(CDP_TIMEOUT)).expect("timeout");
        let (ws, _) = tungstenite::client(browser_ws.as_str(), stream).expect("DevTools handshake");
        // Short reads from now on, so waiting loops can look at their deadline.
        ws.get_ref()
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let mut browser = Browser {
            _child: child,
            ws,
            next_id: 0,
            session: None,
            events: Vec::new(),
        };
        // A page of our own, spoken to through a flat session on the browser's socket.
        let target = browser.call("Target.createTarget", json!({ "url": "about:blank" }));
        let session = browser.call(
            "Target.attachToTarget",
            json!({ "targetId": target["targetId"], "flatten": true }),
        );
        browser.session = Some(
            session["sessionId"]
                .as_str()
                .expect("a session id")
                .to_string(),
        );
        for domain in ["Page.enable", "Runtime.enable", "Log.enable"] {
            browser.call(domain, json!({}));
        }
        browser
    }

    fn read(&mut self, deadline: Instant) -> Option<Value> {
        while Instant::now() < deadline {
            match self.ws.read() {
                Ok(tungstenite::Message::Text(t)) => {
                    return Some(serde_json::from_str(&t).expect("DevTools sends JSON"));
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("DevTools connection failed: {e}"),
            }
        }
        None
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(session) = &self.session {
            msg["sessionId"] = json!(session);
        }
        let msg = msg.to_string();
        self.ws
            .send(tungstenite::Message::text(msg))
            .expect("send to DevTools");
        let deadline = Instant::now() + CDP_TIMEOUT;
        loop {
            let msg = self
                .read(deadline)
                .unwrap_or_else(|| panic!("no answer to {method} within {CDP_TIMEOUT:?}"));
            if msg["id"] == id {
                assert!(msg.get("error").is_none(), "{method} failed: {msg}");
                return msg["result"].clone();
            }
            self.events.push(msg);
        }
    }

    /// Waits for an event not seen yet, and forgets the ones of that name before it.
    fn wait_event(&mut self, method: &str) -> Value {
        let deadline = Instant::now() + CDP_TIMEOUT;
        loop {
            if let Some(i) = self.events.iter().position(|e| e["method"] == method) {
                let event = self.events.remove(i);
                return event;
            }
            match self.read(deadline) {
                Some(msg) => self.events.push(msg),
                None => panic!("no {method} within {CDP_TIMEOUT:?}"),
            }
        }
    }

    fn navigate(&mut self, url: &str) {
        self.events.retain(|e| e["method"] != "Page.loadEventFired");
        self.call("Page.navigate", json!({ "url": url }));
        self.wait_for_load();
    }

    fn wait_for_load(&mut self) {
        self.wait_event("Page.loadEventFired");
        // Scripts are deferred: wait until they ran (the refresh switch shows).
        let deadline = Instant::now() + CDP_TIMEOUT;
        while Instant::now() < deadline {
            let ready = self.eval(
                "document.readyState === 'complete' && !document.querySelector('label.refresh').hidden",
            );
            if ready == json!(true) {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("the page's script never ran");
    }

    /// Evaluates an expression in the page and returns its value.
    fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
        );
        assert!(
            result.get("exceptionDetails").is_none(),
            "{expression} threw: {result}"
        );
        result["result"]["value"].clone()
    }

    fn screenshot(&mut self, path: &Path) {
        let shot = self.call(
            "Page.captureScreenshot",
            json!({ "format": "png", "captureBeyondViewport": true }),
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("image data"))
            .expect("base64 image");
        std::fs::write(path, png).expect("write screenshot");
    }

    /// Console errors, uncaught exceptions, failed loads, CSP violations and dialogs.
    fn errors(&mut self) -> Vec<Value> {
        // Collect what arrived since the last call.
        let deadline = Instant::now() + Duration::from_millis(300);
        while let Some(msg) = self.read(deadline) {
            self.events.push(msg);
        }
        self.events
            .iter()
            .filter(|e| match e["method"].as_str() {
                Some("Runtime.exceptionThrown") | Some("Page.javascriptDialogOpening") => true,
                Some("Runtime.consoleAPICalled") => {
                    matches!(e["params"]["type"].as_str(), Some("error" | "assert"))
                }
                Some("Log.entryAdded") => e["params"]["entry"]["level"] == "error",
                _ => false,
            })
            .cloned()
            .collect()
    }
}

#[test]
fn check_warns_about_a_public_page_without_token() {
    let setup = Setup::new("[[feeds]]\nname = \"f\"\nurl = \"http://127.0.0.1:9/f.xml\"\n");
    let config = std::fs::read_to_string(setup.config_path()).expect("config");
    let with = |daemon_keys: &str| {
        std::fs::write(
            setup.config_path(),
            config.replace("[daemon]\n", &format!("[daemon]\n{daemon_keys}")),
        )
        .expect("write config");
    };

    with("listen = \"0.0.0.0:9464\"\n");
    let out = setup.run(&["check"]);
    assert_ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: daemon.listen = \"0.0.0.0:9464\" is reachable from other hosts")
            && stderr.contains("status_token_env"),
        "{stderr}"
    );

    // On loopback there is nothing to warn about.
    with("listen = \"127.0.0.1:9464\"\n");
    let out = setup.run(&["check"]);
    assert_ok(&out);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("warning"));

    // A token asked for but not set is a problem, not a page left open.
    with("listen = \"0.0.0.0:9464\"\nstatus_token_env = \"FEEDWIRE_TEST_UNSET_TOKEN\"\n");
    let out = setup
        .command(&["check"])
        .env_remove("FEEDWIRE_TEST_UNSET_TOKEN")
        .output()
        .expect("run check");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("daemon.status_token_env") && stderr.contains("FEEDWIRE_TEST_UNSET_TOKEN"),
        "{stderr}"
    );
    let out = setup
        .command(&["check"])
        .env("FEEDWIRE_TEST_UNSET_TOKEN", "t0ken")
        .output()
        .expect("run check");
    assert_ok(&out);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("warning"));
}
