//! Deduplication in the daemon, end to end: local feeds, the real binary, a log sink that
//! also asks for `item.duplicate` events.

mod common;

use std::path::Path;

use common::*;

/// The clean text of a corpus item (everything after its `url:` line).
fn corpus_text(name: &str) -> String {
    let raw = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/dedup")
            .join(name),
    )
    .expect("corpus file");
    raw.split_once("\n\n")
        .map(|(_, t)| t.to_string())
        .unwrap_or(raw)
}

fn as_html(text: &str) -> String {
    text.split("\n\n").map(|p| format!("<p>{p}</p>")).collect()
}

fn entry(id: &str, title: &str, link: &str, text: &str) -> Entry {
    Entry {
        id: id.into(),
        title: title.into(),
        link: link.into(),
        published: "2026-11-20T10:00:00Z".into(),
        summary: as_html(text),
    }
}

fn config(server: &Server, feeds: &[&str], out: &Path) -> String {
    let mut s = format!(
        "[article]\nfetch = false\n\n[sinks.out]\ntype = \"log\"\npath = {:?}\nevents = [\"item.new\", \"item.duplicate\"]\n\n",
        out.display().to_string()
    );
    for f in feeds {
        s.push_str(&format!(
            "[[feeds]]\nname = \"{f}\"\nurl = \"{}\"\n\n",
            server.url(&format!("/{f}.xml"))
        ));
    }
    s
}

fn kinds(lines: &[serde_json::Value]) -> Vec<String> {
    let mut k: Vec<String> = lines
        .iter()
        .map(|l| l["type"].as_str().unwrap_or("").to_string())
        .collect();
    k.sort();
    k
}

#[test]
fn one_story_in_three_feeds_is_one_new_item_and_two_duplicates() {
    let server = Server::start();
    let wire = corpus_text("bahn--wire.txt");
    // Another site: the same copy with its chrome around it.
    let chrome = format!(
        "Startseite › Wirtschaft\n\nTeilen: Facebook · X · E-Mail\n\n{wire}\n\nMehr zum Thema: Bahnstreik\n\nNewsletter abonnieren"
    );
    // A third: retitled, with its own headline line above the same body.
    let edited = wire.replacen(
        "Bahn will 2026 mehr als 40 Strecken sanieren",
        "Milliarden für das marode Schienennetz",
        1,
    );
    assert_ne!(edited, wire);
    server.set(
        "/a.xml",
        Route::ok(
            rss(
                "A",
                &[entry(
                    "a-1",
                    "Bahn will 40 Strecken sanieren",
                    "https://a.example/bahn?utm_source=rss",
                    &wire,
                )],
            ),
            "application/rss+xml",
        ),
    );
    server.set(
        "/b.xml",
        Route::ok(
            atom(
                "B",
                &[entry(
                    "b-1",
                    "Bahn saniert 40 Strecken",
                    "https://b.example/wirtschaft/bahn-sanierung",
                    &chrome,
                )],
            ),
            "application/atom+xml",
        ),
    );
    server.set(
        "/c.xml",
        Route::ok(
            rss(
                "C",
                &[entry(
                    "c-1",
                    "Milliarden für das Netz",
                    "https://c.example/2026/11/bahn",
                    &edited,
                )],
            ),
            "application/rss+xml",
        ),
    );
    let setup = Setup::new("");
    let out = setup.path("events.jsonl");
    setup.write_config(&config(&server, &["a", "b", "c"], &out));

    assert_ok(&setup.run(&["once"]));
    let lines = read_lines(&out);
    assert_eq!(
        kinds(&lines),
        vec!["item.duplicate", "item.duplicate", "item.new"],
        "{lines:#?}"
    );
    let first = lines
        .iter()
        .find(|l| l["type"] == "item.new")
        .expect("one new item");
    for dup in lines.iter().filter(|l| l["type"] == "item.duplicate") {
        assert_eq!(
            dup["duplicate_of"], first["id"],
            "each duplicate points at the first item of the story"
        );
    }

    let items = setup.run(&["items", "--json"]);
    assert_ok(&items);
    let v: serde_json::Value = serde_json::from_slice(&items.stdout).expect("items --json");
    let reasons: Vec<&str> = v
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|i| i["duplicate_reason"].as_str())
        .collect();
    assert_eq!(reasons.len(), 2);
    assert!(
        reasons.iter().all(|r| *r == "near" || *r == "content"),
        "{reasons:?}"
    );
}

#[test]
fn the_same_link_with_tracking_parameters_in_two_feeds_is_a_url_duplicate() {
    let server = Server::start();
    let text = "A short note that is too short to fingerprint by its text alone.";
    server.set(
        "/a.xml",
        Route::ok(
            rss(
                "A",
                &[entry(
                    "a-1",
                    "Note",
                    "https://news.example/story/42?utm_source=a",
                    text,
                )],
            ),
            "application/rss+xml",
        ),
    );
    server.set(
        "/b.xml",
        Route::ok(
            rss(
                "B",
                &[entry(
                    "b-1",
                    "Note!",
                    "https://news.example/story/42?fbclid=xyz#comments",
                    "Different words entirely here.",
                )],
            ),
            "application/rss+xml",
        ),
    );
    let setup = Setup::new("");
    let out = setup.path("events.jsonl");
    setup.write_config(&config(&server, &["a"], &out));
    assert_ok(&setup.run(&["once"]));
    setup.write_config(&config(&server, &["a", "b"], &out));
    assert_ok(&setup.run(&["once"]));
    let lines = read_lines(&out);
    assert_eq!(kinds(&lines), vec!["item.duplicate", "item.new"]);
    assert_eq!(lines[1]["item"]["url"], "https://news.example/story/42");
}

#[test]
fn different_stories_from_one_template_are_both_new() {
    let server = Server::start();
    let q2 = corpus_text("earnings_q2--release.txt");
    let q3 = corpus_text("earnings_q3--release.txt");
    server.set(
        "/a.xml",
        Route::ok(
            rss(
                "A",
                &[
                    entry("q2", "Q2", "https://corp.example/q2", &q2),
                    entry("q3", "Q3", "https://corp.example/q3", &q3),
                ],
            ),
            "application/rss+xml",
        ),
    );
    let setup = Setup::new("");
    let out = setup.path("events.jsonl");
    setup.write_config(&config(&server, &["a"], &out));
    assert_ok(&setup.run(&["once"]));
    assert_eq!(kinds(&read_lines(&out)), vec!["item.new", "item.new"]);
}

/// The text of a base story of the corpus (`stories/NAME.txt`).
fn base_story(name: &str) -> String {
    corpus_text(&format!("stories/{name}.txt"))
}

#[test]
fn a_copy_with_one_added_sentence_in_another_feed_is_a_duplicate() {
    let server = Server::start();
    let wire = base_story("hospital");
    let sentence = "A spokesperson for the regional health board said the situation was being reviewed every hour.";
    let copy = wire.replacen(
        "health officials said on Tuesday.",
        &format!("health officials said on Tuesday. {sentence}"),
        1,
    );
    assert_ne!(copy, wire, "the sentence is added");
    server.set(
        "/a.xml",
        Route::ok(
            rss(
                "A",
                &[entry(
                    "a-1",
                    "Hospitals cancel operations after cyberattack",
                    "https://wire.example/health/cyberattack",
                    &wire,
                )],
            ),
            "application/rss+xml",
        ),
    );
    server.set(
        "/b.xml",
        Route::ok(
            rss(
                "B",
                &[entry(
                    "b-1",
                    "Cyberattack hits Braxford hospitals",
                    "https://courier.example/news/braxford-hospitals",
                    &copy,
                )],
            ),
            "application/rss+xml",
        ),
    );
    let setup = Setup::new("");
    let out = setup.path("events.jsonl");
    setup.write_config(&config(&server, &["a"], &out));
    assert_ok(&setup.run(&["once"]));
    setup.write_config(&config(&server, &["a", "b"], &out));
    assert_ok(&setup.run(&["once"]));
    let lines = read_lines(&out);
    assert_eq!(
        kinds(&lines),
        vec!["item.duplicate", "item.new"],
        "{lines:#?}"
    );
    assert_eq!(lines[0]["type"], "item.new");
    assert_eq!(lines[1]["duplicate_of"], lines[0]["id"]);
    assert_eq!(lines[1]["feed"]["name"], "b");

    let items = setup.run(&["items", "--json"]);
    assert_ok(&items);
    let v: serde_json::Value = serde_json::from_slice(&items.stdout).expect("items --json");
    let reasons: Vec<&str> = v
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|i| i["duplicate_reason"].as_str())
        .collect();
    assert_eq!(reasons, ["near"]);
}

/// A feed that carries a story and, further down, a copy of it with one sentence added (a
/// live blog's digest, an aggregator): the copy is a duplicate although both are stored in
/// the same ingest transaction, whose index rows are written only at its end.
#[test]
fn a_copy_in_the_same_poll_is_a_duplicate() {
    let server = Server::start();
    let wire = base_story("hospital");
    let copy = wire.replacen(
        "health officials said on Tuesday.",
        "health officials said on Tuesday. A spokesperson for the regional health board said the situation was being reviewed every hour.",
        1,
    );
    assert_ne!(copy, wire, "the sentence is added");
    server.set(
        "/a.xml",
        Route::ok(
            rss(
                "A",
                &[
                    entry(
                        "a-1",
                        "Hospitals cancel operations after cyberattack",
                        "https://wire.example/health/cyberattack",
                        &wire,
                    ),
                    entry(
                        "a-2",
                        "Cyberattack hits Braxford hospitals",
                        "https://courier.example/news/braxford-hospitals",
                        &copy,
                    ),
                ],
            ),
            "application/rss+xml",
        ),
    );
    let setup = Setup::new("");
    let out = setup.path("events.jsonl");
    setup.write_config(&config(&server, &["a"], &out));
    assert_ok(&setup.run(&["once"]));
    let lines = read_lines(&out);
    assert_eq!(
        kinds(&lines),
        vec!["item.duplicate", "item.new"],
        "{lines:#?}"
    );
    let new = lines
        .iter()
        .find(|l| l["type"] == "item.new")
        .expect("one new item");
    let dup = lines
        .iter()
        .find(|l| l["type"] == "item.duplicate")
        .expect("one duplicate");
    assert_eq!(dup["duplicate_of"], new["id"]);
}

#[test]
fn template_reports_and_a_follow_up_in_other_feeds_stay_new() {
    let server = Server::start();
    let feeds = [
        (
            "a",
            "market_0312--report.txt",
            "https://markets.example/0312",
        ),
        (
            "b",
            "market_0313--report.txt",
            "https://other.example/markets/0313",
        ),
        ("c", "stories/bridge.txt", "https://wire.example/bridge"),
        (
            "d",
            "stories/bridge_followup.txt",
            "https://courier.example/bridge-repairs",
        ),
    ];
    for (name, file, link) in feeds {
        server.set(
            &format!("/{name}.xml"),
            Route::ok(
                rss(
                    name,
                    &[entry(&format!("{name}-1"), name, link, &corpus_text(file))],
                ),
                "application/rss+xml",
            ),
        );
    }
    let setup = Setup::new("");
    let out = setup.path("events.jsonl");
    setup.write_config(&config(&server, &["a", "b", "c", "d"], &out));
    assert_ok(&setup.run(&["once"]));
    assert_eq!(
        kinds(&read_lines(&out)),
        vec!["item.new", "item.new", "item.new", "item.new"]
    );
}

#[test]
fn an_old_config_with_max_distance_is_told_what_changed() {
    let setup = Setup::new("[dedup]\nmax_distance = 3\n");
    let out = setup.run(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("dedup.max_distance"), "{err}");
    assert!(err.contains("is no longer a setting"), "{err}");
    assert!(err.contains("remove the line"), "{err}");
}

#[test]
fn a_feed_that_reshuffles_its_guids_sends_nothing_twice() {
    let server = Server::start();
    let stories: Vec<(String, String)> = (1..=3)
        .map(|n| (format!("https://site.example/n/{n}"), format!("Story {n}")))
        .collect();
    let feed = |round: u32| -> String {
        let entries: Vec<Entry> = stories
            .iter()
            .map(|(link, title)| {
                entry(
                    &format!("{link}#r{round}-{}", ulid_like(round, title)),
                    title,
                    link,
                    &format!("<p>{title} text.</p>"),
                )
            })
            .collect();
        rss("Shuffle", &entries)
    };
    let setup = Setup::new("");
    let out = setup.path("events.jsonl");
    setup.write_config(&config(&server, &["s"], &out));
    for round in 0..4 {
        server.set("/s.xml", Route::ok(feed(round), "application/rss+xml"));
        assert_ok(&setup.run(&["once"]));
    }
    let lines = read_lines(&out);
    assert_eq!(
        kinds(&lines),
        vec!["item.new", "item.new", "item.new"],
        "{lines:#?}"
    );
    // A restart on the same state changes nothing either.
    assert_ok(&setup.run(&["once"]));
    assert_eq!(read_lines(&out).len(), 3);
}

fn ulid_like(round: u32, title: &str) -> String {
    format!(
        "{:x}",
        ((round as u64 + 1) * 0x9e37_79b9) ^ title.len() as u64
    )
}

#[test]
fn an_edited_entry_is_sent_again_as_item_updated_only_when_its_text_changed() {
    let server = Server::start();
    let text = "The council approved the new budget on Monday after a long debate.";
    let set = |summary: &str| {
        server.set(
            "/u.xml",
            Route::ok(
                rss(
                    "U",
                    &[entry(
                        "u-1",
                        "Budget approved",
                        "https://u.example/budget",
                        summary,
                    )],
                ),
                "application/rss+xml",
            ),
        );
    };
    let setup = Setup::new("");
    let out = setup.path("events.jsonl");
    let with_updates = config(&server, &["u"], &out).replace(
        "events = [\"item.new\", \"item.duplicate\"]",
        "events = [\"item.new\", \"item.updated\"]",
    );
    setup.write_config(&with_updates);
    set(text);
    assert_ok(&setup.run(&["once"]));
    // Only markup, case and spacing change: not a new revision.
    set(&format!(
        "<p><b>{}</b></p>",
        text.to_uppercase().replace(' ', "  ")
    ));
    assert_ok(&setup.run(&["once"]));
    assert_eq!(kinds(&read_lines(&out)), vec!["item.new"]);
    // A correction in the text is.
    set(&text.replace("Monday", "Tuesday"));
    assert_ok(&setup.run(&["once"]));
    let lines = read_lines(&out);
    assert_eq!(kinds(&lines), vec!["item.new", "item.updated"]);
    assert_eq!(
        lines[0]["id"], lines[1]["id"],
        "an update carries the item's own id"
    );
    assert!(
        lines[1]["item"]["summary"]
            .as_str()
            .unwrap_or("")
            .contains("Tuesday")
    );
    // The same again is not another update.
    assert_ok(&setup.run(&["once"]));
    assert_eq!(read_lines(&out).len(), 2);
}

#[test]
fn retention_prunes_payloads_but_an_old_item_seen_again_is_not_new() {
    let server = Server::start();
    let text = "A story that will be older than the retention period by the time it comes back.";
    server.set(
        "/r.xml",
        Route::ok(
            rss("R", &[entry("r-1", "Old", "https://r.example/old", text)]),
            "application/rss+xml",
        ),
    );
    let setup = Setup::new("");
    let out = setup.path("events.jsonl");
    let base = config(&server, &["r"], &out);
    setup.write_config(&format!(
        "[dedup]\nretention = \"1s\"\nwindow = \"1s\"\n\n{base}"
    ));
    assert_ok(&setup.run(&["once"]));
    assert_eq!(read_lines(&out).len(), 1);
    std::thread::sleep(std::time::Duration::from_millis(1500));

    // The daemon prunes at start.
    let mut child = setup
        .command(&["run"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let db = setup.path("state/feedwire.db");
    let count = |sql: &str| -> i64 {
        rusqlite::Connection::open(&db)
            .and_then(|c| c.query_row(sql, [], |r| r.get(0)))
            .unwrap_or(-1)
    };
    assert!(
        wait_until(std::time::Duration::from_secs(10), || count(
            "SELECT COUNT(*) FROM events"
        ) == 0),
        "old payloads pruned"
    );
    signal(&child, "TERM");
    assert!(wait_exit(&mut child, std::time::Duration::from_secs(10)).is_some_and(|s| s.success()));
    assert_eq!(
        count("SELECT COUNT(*) FROM items"),
        1,
        "the item's identity stays"
    );

    // The feed lists it again (new ETag): it is still not new.
    server.set(
        "/r.xml",
        Route::ok(
            rss("R", &[entry("r-1", "Old", "https://r.example/old", text)]).replace(
                "<description>d</description>",
                "<description>again</description>",
            ),
            "application/rss+xml",
        ),
    );
    assert_ok(&setup.run(&["once"]));
    assert_eq!(read_lines(&out).len(), 1);
}
