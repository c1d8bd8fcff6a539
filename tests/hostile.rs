//! Hostile and broken answers: each gets one clear error while the other feeds go on.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use common::*;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).expect("gzip");
    enc.finish().expect("gzip")
}

/// A raw server that answers every request with headers, then one byte per 300 ms.
fn trickle_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = stream;
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nContent-Length: 100000\r\n\r\n");
                for _ in 0..200 {
                    if s.write_all(b"<").is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(300));
                }
            });
        }
    });
    port
}

#[test]
fn each_hostile_answer_is_one_clear_error_and_the_good_feed_goes_on() {
    let server = Server::start();
    let base = server.url("");
    let entries: Vec<Entry> = (1..=2).map(|n| Entry::new(n, &base)).collect();
    server.set(
        "/good.xml",
        Route::ok(rss("Good", &entries), "application/rss+xml"),
    );
    server.set(
        "/big.xml",
        Route::ok(
            rss(
                "Big",
                &(1..=400).map(|n| Entry::new(n, &base)).collect::<Vec<_>>(),
            ),
            "application/rss+xml",
        ),
    );
    let bomb = gzip(&vec![b' '; 64 * 1024 * 1024]);
    server.set(
        "/bomb.xml",
        Route {
            headers: vec![("content-encoding".into(), "gzip".into())],
            ..Route::ok(bomb, "application/rss+xml")
        },
    );
    server.set(
        "/loop",
        Route {
            headers: vec![("location".into(), "/loop".into())],
            ..Route::status(302)
        },
    );
    let laughs = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
<!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
<!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
<!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
<!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
<!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">]>
<rss version="2.0"><channel><title>Laughs</title><item><guid>l1</guid><title>&lol9;</title></item></channel></rss>"#;
    server.set("/laughs.xml", Route::ok(laughs, "application/rss+xml"));
    let xxe = r#"<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<rss version="2.0"><channel><title>XXE</title><item><guid>x1</guid><title>Leak &xxe; here</title></item></channel></rss>"#;
    server.set("/xxe.xml", Route::ok(xxe, "application/rss+xml"));
    server.set("/empty.xml", Route::ok(Vec::new(), "application/rss+xml"));
    server.set(
        "/page.html",
        Route::ok(
            "<!DOCTYPE html><html><head><link rel=\"alternate\" type=\"application/atom+xml\" href=\"/real.atom\"></head><body>Blog</body></html>",
            "text/html",
        ),
    );
    // Declared UTF-8, written in Latin-1.
    let mut lying =
        b"<?xml version=\"1.0\" encoding=\"utf-8\"?><rss version=\"2.0\"><channel><title>Caf"
            .to_vec();
    lying.extend_from_slice(&[0xE9]);
    lying.extend_from_slice(
        b"</title><item><guid>c1</guid><title>Cr\xE8me br\xFBl\xE9e</title></item></channel></rss>",
    );
    server.set("/latin1.xml", Route::ok(lying, "application/rss+xml"));
    let slow = trickle_server();
    // TLS spoken to a plain HTTP port.
    let tls = format!("https://127.0.0.1:{}/good.xml", server.addr.port());

    let feeds: Vec<(&str, String)> = vec![
        ("good", server.url("/good.xml")),
        ("big", server.url("/big.xml")),
        ("bomb", server.url("/bomb.xml")),
        ("loop", server.url("/loop")),
        ("laughs", server.url("/laughs.xml")),
        ("xxe", server.url("/xxe.xml")),
        ("empty", server.url("/empty.xml")),
        ("page", server.url("/page.html")),
        ("latin1", server.url("/latin1.xml")),
        ("slow", format!("http://127.0.0.1:{slow}/slow.xml")),
        ("tls", tls),
    ];
    let mut config = String::from(
        "[poll]\ntimeout = \"3s\"\nmax_feed_size = \"64KiB\"\n\n[article]\nfetch = false\n\n",
    );
    for (name, url) in &feeds {
        config.push_str(&format!(
            "[[feeds]]\nname = \"{name}\"\nurl = \"{url}\"\n\n"
        ));
    }
    let setup = Setup::new(&config);
    let started = std::time::Instant::now();
    assert_ok(&setup.run(&["once", "--timeout", "5s"]));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the slow server is cut at the poll deadline"
    );

    let report = setup.feeds_json();
    let error = |name: &str| -> String {
        let f = report
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("{name} listed"));
        f["error"].as_str().unwrap_or("").to_string()
    };
    assert_eq!(error("big"), "body is larger than the 65536-byte limit");
    assert_eq!(error("bomb"), "body is larger than the 65536-byte limit");
    assert!(error("loop").contains("redirect loop"), "{}", error("loop"));
    assert_eq!(error("empty"), "empty body: the server sent no feed");
    assert_eq!(
        error("page"),
        format!(
            "the answer is an HTML page, not a feed (the page links to: {})",
            server.url("/real.atom")
        )
    );
    assert!(
        error("slow").starts_with("no answer within 3s"),
        "{}",
        error("slow")
    );
    assert!(
        error("tls").starts_with("cannot connect"),
        "{}",
        error("tls")
    );

    let lines = setup.lines();
    let all = serde_json::to_string(&lines).expect("json");
    assert!(!all.contains("root:"), "no external entity is read");
    assert!(!all.contains("lollollollollol"), "no entity is expanded");
    // A feed that lies about its charset is read in the one it really uses.
    assert!(
        lines.iter().any(|l| l["item"]["title"] == "Crème brûlée"),
        "{all}"
    );
    // Entity feeds end as an error or as an item, never as a crash.
    for name in ["laughs", "xxe"] {
        let f = report.iter().find(|f| f["name"] == name).expect("listed");
        assert!(f["status"] == "ok" || f["status"] == "error", "{name}: {f}");
        eprintln!("{name}: {} {}", f["status"], f["error"]);
    }
    let good: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["feed"]["name"] == "good")
        .collect();
    assert_eq!(
        good.len(),
        2,
        "the good feed's items arrive whatever the others do"
    );
}
