//! Feeds the web serves, one fixture per family of trouble (old formats, escaped markup,
//! encodings and the headers that name them, categories, authors, podcasts, broken XML),
//! through the real daemon against a local server that sends each one's Content-Type; and
//! `feedwire preview` on a file and a URL.

mod common;

use std::path::PathBuf;

use common::*;
use serde_json::Value;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/feeds")
}

fn cases() -> Vec<Value> {
    let text = std::fs::read_to_string(fixtures().join("cases.json")).expect("cases.json");
    serde_json::from_str(&text).expect("cases.json is JSON")
}

fn serve(server: &Server, case: &Value) -> String {
    let file = case["file"].as_str().expect("file");
    let bytes = std::fs::read(fixtures().join(file)).expect("fixture");
    let headers = case["headers"]
        .as_object()
        .map(|h| {
            h.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default();
    let path = format!("/{file}");
    server.set(
        &path,
        Route {
            headers,
            ..Route::ok(bytes, case["content_type"].as_str().expect("content_type"))
        },
    );
    server.url(&path)
}

#[test]
fn every_family_of_feed_yields_its_entries_with_the_right_fields() {
    let server = Server::start();
    let cases = cases();
    let mut config = String::from("[article]\nfetch = false\n\n");
    for (n, case) in cases.iter().enumerate() {
        let url = serve(&server, case);
        config.push_str(&format!(
            "[[feeds]]\nname = \"f{n:02}\"\nurl = \"{url}\"\n\n"
        ));
    }
    let setup = Setup::new(&config);
    let out = setup.run(&["once", "--timeout", "20s"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = setup.lines();
    let mut failures = Vec::new();
    for (n, case) in cases.iter().enumerate() {
        let file = case["file"].as_str().unwrap_or("");
        let items: Vec<&Value> = lines
            .iter()
            .filter(|l| l["feed"]["name"] == format!("f{n:02}").as_str())
            .map(|l| &l["item"])
            .collect();
        if items.is_empty() {
            failures.push(format!("{file}: no item"));
            continue;
        }
        for (field, want) in case["expect"].as_object().expect("expect") {
            if field == "guids" {
                let mut got: Vec<&str> = items.iter().filter_map(|i| i["guid"].as_str()).collect();
                got.sort_unstable();
                let want: Vec<&str> = want
                    .as_array()
                    .expect("a list")
                    .iter()
                    .filter_map(Value::as_str)
                    .collect();
                if got != want {
                    failures.push(format!("{file}: guids {got:?}, want {want:?}"));
                }
                continue;
            }
            if !items.iter().any(|i| &i[field] == want) {
                let got: Vec<&Value> = items.iter().map(|i| &i[field]).collect();
                failures.push(format!("{file}: {field} is {got:?}, want {want}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn preview_prints_what_the_daemon_would_emit_for_a_file_and_a_url() {
    let setup = Setup::new("");
    let file = fixtures().join("podcast.xml");
    let out = setup.run(&[
        "preview",
        file.to_str().expect("utf-8 path"),
        "--format",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(doc["feed"]["title"], "A podcast");
    let items = doc["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    let one = items
        .iter()
        .find(|i| i["guid"] == "ep1")
        .expect("episode one");
    assert_eq!(one["identity"], "guid:ep1");
    assert_eq!(one["enclosures"][0]["duration"], 2496);
    assert_eq!(one["content_source"], "feed");
    assert!(
        !setup.path("state").exists(),
        "preview leaves the state directory alone"
    );

    let server = Server::start();
    let url = serve(
        &server,
        &serde_json::json!({"file": "atom03.xml", "content_type": "application/atom+xml"}),
    );
    let out = setup.run(&["preview", &url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("title: Fish & chips"), "{text}");
    assert!(
        text.contains("url: http://example.org/2004/01/fish"),
        "{text}"
    );
    assert!(!setup.path("state").exists());
}

#[test]
fn preview_of_something_that_is_no_feed_fails_with_the_reason() {
    let setup = Setup::new("");
    let page = setup.path("page.html");
    std::fs::write(&page, "<!DOCTYPE html><html><body>hello</body></html>").expect("write");
    let out = setup.run(&["preview", page.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not parse as a feed: the answer is an HTML page, not a feed"),
        "{err}"
    );
    let out = setup.run(&["preview", "/no/such/feed.xml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /no/such/feed.xml"));
}
