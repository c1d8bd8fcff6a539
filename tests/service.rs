//! Running under a service manager: sd_notify messages from the real binary, and SIGHUP
//! reloads of the feed list without a restart.

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

fn feed(server: &Server, path: &str, first: u32) {
    let base = server.url("");
    let entries: Vec<Entry> = (first..first + 2).map(|n| Entry::new(n, &base)).collect();
    server.set(path, Route::ok(rss(path, &entries), "application/rss+xml"));
}

fn feeds_config(server: &Server, feeds: &[&str]) -> String {
    let mut s = String::from("[article]\nfetch = false\n\n");
    for f in feeds {
        s.push_str(&format!(
            "[[feeds]]\nname = \"{f}\"\nurl = \"{}\"\ninterval = \"1s\"\n\n",
            server.url(&format!("/{f}.xml"))
        ));
    }
    s
}

/// Reads notifications until `want` arrived (in order, others in between allowed).
fn expect_in_order(socket: &UnixDatagram, want: &[&str], limit: Duration) -> Vec<String> {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut next = 0;
    let mut buf = [0u8; 512];
    while next < want.len() && start.elapsed() < limit {
        if let Ok(n) = socket.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).to_string();
            if msg.lines().any(|l| l == want[next]) {
                next += 1;
            }
            got.push(msg);
        }
    }
    assert_eq!(next, want.len(), "expected {want:?} in order, got {got:?}");
    got
}

#[test]
fn notifies_ready_watchdog_reloading_and_stopping_in_order() {
    let server = Server::start();
    feed(&server, "/a.xml", 1);
    let setup = Setup::new(&feeds_config(&server, &["a"]));
    let sock_path = setup.path("notify.sock");
    let socket = UnixDatagram::bind(&sock_path).expect("bind notify socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let mut child = setup
        .command(&["run"])
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "400000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");

    let got = expect_in_order(
        &socket,
        &["READY=1", "WATCHDOG=1", "WATCHDOG=1"],
        Duration::from_secs(10),
    );
    assert!(
        got.iter().any(|m| m.starts_with("STATUS=polling 1 feeds")),
        "{got:?}"
    );
    signal(&child, "HUP");
    expect_in_order(
        &socket,
        &["RELOADING=1", "READY=1"],
        Duration::from_secs(10),
    );
    signal(&child, "TERM");
    expect_in_order(&socket, &["STOPPING=1"], Duration::from_secs(10));
    let status = wait_exit(&mut child, Duration::from_secs(10)).expect("exits");
    assert!(status.success());
}

#[test]
fn sighup_applies_a_new_feed_list_without_restart_or_re_emission() {
    let server = Server::start();
    feed(&server, "/a.xml", 1);
    feed(&server, "/b.xml", 11);
    let setup = Setup::new(&feeds_config(&server, &["a"]));
    let log = std::fs::File::create(setup.path("stderr.log")).expect("log file");
    let mut child = setup
        .command(&["run"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn");
    let pid = child.id();

    assert!(
        wait_until(Duration::from_secs(10), || setup.lines().len() == 2),
        "feed a's items"
    );
    assert!(
        wait_until(Duration::from_secs(10), || server.seen("/a.xml").len() >= 2),
        "feed a polled again"
    );

    setup.write_config(&feeds_config(&server, &["b"]));
    signal(&child, "HUP");
    assert!(
        wait_until(Duration::from_secs(10), || setup.lines().len() == 4),
        "feed b's items after the reload"
    );
    let a_polls = server.seen("/a.xml").len();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        server.seen("/a.xml").len(),
        a_polls,
        "the removed feed is no longer polled"
    );
    assert!(
        server.seen("/b.xml").len() >= 2,
        "the added feed is polled on its interval"
    );
    let titles: Vec<String> = setup
        .lines()
        .iter()
        .map(|l| l["item"]["title"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        titles,
        vec![
            "Story number 1",
            "Story number 2",
            "Story number 11",
            "Story number 12"
        ]
    );

    // An invalid config is refused; the daemon goes on with the one it has.
    std::fs::write(setup.config_path(), "[poll]\ninterval = \"often\"\n").expect("write");
    signal(&child, "HUP");
    let b_polls = server.seen("/b.xml").len();
    assert!(
        wait_until(Duration::from_secs(5), || server.seen("/b.xml").len()
            > b_polls + 1),
        "still polling b"
    );
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "still running"
    );
    assert_eq!(child.id(), pid);

    signal(&child, "TERM");
    let status = wait_exit(&mut child, Duration::from_secs(10)).expect("exits");
    assert!(status.success());
    let stderr = std::fs::read_to_string(setup.path("stderr.log")).expect("stderr");
    assert!(stderr.contains("reload refused"), "{stderr}");
    assert!(
        stderr.contains("poll.interval"),
        "every problem is logged: {stderr}"
    );
    assert_eq!(setup.lines().len(), 4, "nothing emitted twice");
}
