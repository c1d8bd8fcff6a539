//! Test support: real HTTP servers on 127.0.0.1, a temp state dir, and the real binary.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// What the server answers on one path.
#[derive(Clone, Debug)]
pub struct Route {
    pub status: u16,
    pub body: Vec<u8>,
    pub content_type: String,
    /// Sent as ETag; a matching If-None-Match gets a 304.
    pub etag: Option<String>,
    /// Never answer (until the client gives up).
    pub hang: bool,
    /// Answer only after this long (the request is seen at once).
    pub delay: Duration,
    pub headers: Vec<(String, String)>,
}

impl Route {
    pub fn ok(body: impl Into<Vec<u8>>, content_type: &str) -> Route {
        let body = body.into();
        let etag = format!("\"{:x}\"", fxhash(&body));
        Route {
            status: 200,
            body,
            content_type: content_type.into(),
            etag: Some(etag),
            hang: false,
            delay: Duration::ZERO,
            headers: vec![],
        }
    }

    pub fn status(status: u16) -> Route {
        Route {
            status,
            body: Vec::new(),
            content_type: "text/plain".into(),
            etag: None,
            hang: false,
            delay: Duration::ZERO,
            headers: vec![],
        }
    }

    pub fn hang() -> Route {
        Route {
            hang: true,
            ..Route::status(200)
        }
    }
}

fn fxhash(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf29ce484222325u64, |h, x| {
        (h ^ *x as u64).wrapping_mul(0x100000001b3)
    })
}

/// One request the server saw.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    }
}

type Responder = Arc<dyn Fn(&Seen, usize) -> Route + Send + Sync>;

#[derive(Default)]
struct ServerState {
    routes: HashMap<String, Route>,
    /// Dynamic answers: called with the request and how many requests this path had before.
    responders: HashMap<String, Responder>,
    /// Dynamic answers for every path under a prefix (when no exact path matches).
    prefix_responders: Vec<(String, Responder)>,
    seen: Vec<Seen>,
    /// Requests whose answer was ready while the client still waited (a client that went
    /// away during `delay` drops the handler before it gets here).
    answered: Vec<Seen>,
}

/// A real HTTP/1.1 server on 127.0.0.1 with routes that tests change while it runs.
#[derive(Clone)]
pub struct Server {
    pub addr: SocketAddr,
    state: Arc<Mutex<ServerState>>,
}

impl Server {
    pub fn start() -> Server {
        Server::start_on(0)
    }

    /// Starts on a given port (0 = any) in a thread of its own.
    pub fn start_on(port: u16) -> Server {
        let state = Arc::new(Mutex::new(ServerState::default()));
        let (tx, rx) = std::sync::mpsc::channel();
        let st = state.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                    .await
                    .expect("bind");
                tx.send(listener.local_addr().expect("addr"))
                    .expect("send addr");
                let app = axum::Router::new().fallback(handle).with_state(st);
                axum::serve(listener, app).await.expect("serve");
            });
        });
        let addr = rx.recv().expect("server address");
        Server { addr, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn set(&self, path: &str, route: Route) {
        self.state
            .lock()
            .expect("lock")
            .routes
            .insert(path.to_string(), route);
    }

    pub fn respond(&self, path: &str, f: impl Fn(&Seen, usize) -> Route + Send + Sync + 'static) {
        self.state
            .lock()
            .expect("lock")
            .responders
            .insert(path.to_string(), Arc::new(f));
    }

    /// Answers every path that starts with `prefix` (and has no route or responder of its own).
    pub fn respond_prefix(
        &self,
        prefix: &str,
        f: impl Fn(&Seen, usize) -> Route + Send + Sync + 'static,
    ) {
        self.state
            .lock()
            .expect("lock")
            .prefix_responders
            .push((prefix.to_string(), Arc::new(f)));
    }

    pub fn seen(&self, path: &str) -> Vec<Seen> {
        self.state
            .lock()
            .expect("lock")
            .seen
            .iter()
            .filter(|s| s.path == path)
            .cloned()
            .collect()
    }

    /// The requests of `path` the server answered, as opposed to those cut short.
    pub fn answered(&self, path: &str) -> Vec<Seen> {
        self.state
            .lock()
            .expect("lock")
            .answered
            .iter()
            .filter(|s| s.path == path)
            .cloned()
            .collect()
    }

    pub fn all_seen(&self) -> Vec<Seen> {
        self.state.lock().expect("lock").seen.clone()
    }
}

async fn handle(State(state): State<Arc<Mutex<ServerState>>>, req: Request) -> Response {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let headers = req.headers().clone();
    let body = axum::body::to_bytes(req.into_body(), 16 * 1024 * 1024)
        .await
        .map(|b| b.to_vec())
        .unwrap_or_default();
    let seen = Seen {
        method,
        path: path.clone(),
        headers: headers.clone(),
        body,
        at: Instant::now(),
    };
    let route = {
        let mut st = state.lock().expect("lock");
        let before = st.seen.iter().filter(|s| s.path == path).count();
        st.seen.push(seen.clone());
        match st.responders.get(&path).cloned() {
            Some(f) => Some(f(&seen, before)),
            None => st.routes.get(&path).cloned().or_else(|| {
                let (prefix, f) = st
                    .prefix_responders
                    .iter()
                    .find(|(p, _)| path.starts_with(p.as_str()))?;
                let before = st
                    .seen
                    .iter()
                    .filter(|s| s.path.starts_with(prefix.as_str()))
                    .count()
                    - 1;
                Some(f(&seen, before))
            }),
        }
    };
    let Some(route) = route else {
        return (StatusCode::NOT_FOUND, "no such route").into_response();
    };
    if route.hang {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    if !route.delay.is_zero() {
        tokio::time::sleep(route.delay).await;
    }
    state.lock().expect("lock").answered.push(seen);
    if let (Some(etag), Some(inm)) = (&route.etag, headers.get(header::IF_NONE_MATCH))
        && inm.to_str().ok() == Some(etag.as_str())
    {
        return Response::builder()
            .status(304)
            .header(header::ETAG, etag)
            .body(Body::empty())
            .expect("response");
    }
    let mut builder = Response::builder()
        .status(route.status)
        .header(header::CONTENT_TYPE, &route.content_type);
    if let Some(etag) = &route.etag {
        builder = builder.header(header::ETAG, etag);
    }
    for (k, v) in &route.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    builder.body(Body::from(route.body)).expect("response")
}

// ---- feeds ------------------------------------------------------------------------------------

pub struct Entry {
    pub id: String,
    pub title: String,
    pub link: String,
    pub published: String,
    pub summary: String,
}

impl Entry {
    pub fn new(n: u32, base: &str) -> Entry {
        Entry {
            id: format!("urn:test:{n}"),
            title: format!("Story number {n}"),
            link: format!("{base}/articles/{n}?utm_source=rss"),
            published: format!("2026-11-{:02}T10:00:00Z", (n % 27) + 1),
            summary: format!("<p>Summary of <b>story</b> {n}.</p>"),
        }
    }
}

fn rfc2822(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .expect("date")
        .to_rfc2822()
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub fn rss(title: &str, entries: &[Entry]) -> String {
    let mut s = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rss version=\"2.0\"><channel><title>{title}</title><link>http://example.com/</link><description>d</description>\n"
    );
    for e in entries {
        s.push_str(&format!(
            "<item><guid isPermaLink=\"false\">{}</guid><title>{}</title><link>{}</link><pubDate>{}</pubDate><description>{}</description></item>\n",
            esc(&e.id), esc(&e.title), esc(&e.link), rfc2822(&e.published), esc(&e.summary)
        ));
    }
    s.push_str("</channel></rss>\n");
    s
}

pub fn atom(title: &str, entries: &[Entry]) -> String {
    let mut s = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\"><title>{title}</title><id>urn:feed</id><updated>2026-11-27T00:00:00Z</updated>\n"
    );
    for e in entries {
        s.push_str(&format!(
            "<entry><id>{}</id><title>{}</title><link rel=\"alternate\" href=\"{}\"/><published>{}</published><updated>{}</updated><summary type=\"html\">{}</summary><author><name>Ann Writer</name></author></entry>\n",
            esc(&e.id), esc(&e.title), esc(&e.link), e.published, e.published, esc(&e.summary)
        ));
    }
    s.push_str("</feed>\n");
    s
}

pub fn json_feed(title: &str, entries: &[Entry]) -> String {
    let items: Vec<serde_json::Value> = entries
        .iter()
        .map(|e| serde_json::json!({"id": e.id, "title": e.title, "url": e.link, "date_published": e.published, "content_html": e.summary}))
        .collect();
    serde_json::json!({"version": "https://jsonfeed.org/version/1.1", "title": title, "items": items}).to_string()
}

// ---- the binary -------------------------------------------------------------------------------

pub const BIN: &str = env!("CARGO_BIN_EXE_feedwire");

/// A temp dir with a config file and a state dir.
pub struct Setup {
    pub dir: tempfile::TempDir,
}

impl Setup {
    /// Writes `config.toml` with `[daemon] state_dir` pointing into the temp dir; `body` is
    /// the rest of the config. The log sink "out" writes to `out.jsonl` unless `body` has sinks.
    pub fn new(body: &str) -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let setup = Setup { dir };
        setup.write_config(body);
        setup
    }

    pub fn write_config(&self, body: &str) {
        self.write_config_with_daemon("", body);
    }

    /// As [`Setup::write_config`], with more `[daemon]` lines (`listen = …`).
    pub fn write_config_with_daemon(&self, daemon: &str, body: &str) {
        let state = self.dir.path().join("state");
        let out = self.dir.path().join("out.jsonl");
        let mut text = format!(
            "[daemon]\nstate_dir = {:?}\nshutdown_grace = \"3s\"\n{daemon}\n",
            state.display().to_string()
        );
        if !body.contains("[sinks.") {
            text.push_str(&format!(
                "[sinks.out]\ntype = \"log\"\npath = {:?}\n\n",
                out.display().to_string()
            ));
        }
        text.push_str(body);
        std::fs::write(self.config_path(), text).expect("write config");
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--config").arg(self.config_path()).args(args);
        c.env_remove("RUST_LOG").env("RUST_LOG", "feedwire=debug");
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run feedwire")
    }

    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn feedwire")
    }

    /// The JSON lines the log sink wrote so far.
    pub fn lines(&self) -> Vec<serde_json::Value> {
        read_lines(&self.path("out.jsonl"))
    }

    pub fn feeds_json(&self) -> Vec<serde_json::Value> {
        let out = self.run(&["feeds", "--json"]);
        assert!(
            out.status.success(),
            "feeds --json failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("feeds --json prints JSON");
        v.as_array().cloned().unwrap_or_default()
    }
}

pub fn read_lines(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

/// Waits until `f` holds, up to `limit`; returns whether it did.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    f()
}

pub fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(status.success());
}

/// Waits for the child to exit, up to `limit`.
pub fn wait_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// A port nothing listens on (yet).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

pub fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "feedwire failed with {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A plain HTTP/1.0 GET to a daemon's `listen` port: (status, lower-cased head, body).
/// `headers` are extra request lines, each ending in `\r\n`.
pub fn http_get(port: u16, path: &str, headers: &str) -> Option<(u16, String, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n{headers}\r\n").ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let status = raw.split_whitespace().nth(1)?.parse().ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    Some((status, head.to_lowercase(), body.to_string()))
}

/// The body of a GET that answered 200.
pub fn get_ok(port: u16, path: &str) -> Option<String> {
    http_get(port, path, "").and_then(|(status, _, body)| (status == 200).then_some(body))
}

/// The value of one sample in a Prometheus text scrape, parsed with a Prometheus parser.
pub fn metric_sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("valid exposition");
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
}

/// `feedwire_sink_state{sink, state}` from a scrape.
pub fn sink_state(metrics: &str, sink: &str, state: &str) -> Option<f64> {
    metric_sample(
        metrics,
        "feedwire_sink_state",
        &[("sink", sink), ("state", state)],
    )
}

/// A child process killed (and reaped) when the test ends, whatever the outcome.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
