//! Rules, routing, templates and chat presets, through the real binary against local
//! stand-ins that check requests the way each service documents them.

mod common;
mod receivers;

use std::time::Duration;

use common::{Entry, Route, Server, Setup, assert_ok, wait_until};

/// A 5,000-character summary of mixed scripts, `&` and `<` included.
fn long_summary() -> String {
    let unit = "Überraschung & <Δ> 東京 — ça marche. ";
    let mut s = String::new();
    while s.chars().count() < 5_000 {
        s.push_str(unit);
    }
    s.chars().take(5_000).collect()
}

fn rss_item(
    id: &str,
    title: &str,
    link: &str,
    published: &str,
    summary: &str,
    extra: &str,
) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let date = chrono::DateTime::parse_from_rfc3339(published)
        .expect("date")
        .to_rfc2822();
    format!(
        "<item><guid isPermaLink=\"false\">{}</guid><title>{}</title><link>{}</link><pubDate>{date}</pubDate><description>{}</description>{extra}</item>\n",
        esc(id),
        esc(title),
        esc(link),
        esc(summary)
    )
}

fn rss(items: &[String]) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rss version=\"2.0\" xmlns:media=\"http://search.yahoo.com/mrss/\"><channel><title>Nouvelles</title><link>http://example.com/</link><description>d</description>\n{}</channel></rss>\n",
        items.concat()
    )
}

fn recent(hours: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::hours(hours))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[test]
fn presets_send_what_each_service_accepts() {
    let server = Server::start();
    let base = server.url("");
    let summary = long_summary();
    let title = "Ünïcødé «titre» & 東京 🎉";
    let feed = rss(&[
        rss_item(
            "a",
            title,
            &format!("{base}/articles/1"),
            &recent(2),
            &summary,
            "",
        ),
        rss_item(
            "b",
            "Short one",
            &format!("{base}/articles/2"),
            &recent(1),
            "Just a line.",
            &format!(
                "<media:content url=\"{base}/img/2.png\" medium=\"image\" type=\"image/png\"/>"
            ),
        ),
    ]);
    server.set("/feed.xml", Route::ok(feed, "application/rss+xml"));
    let slack = receivers::slack(&server, "/slack/hook");
    let discord = receivers::discord(&server, "/discord/hook", 1, 0.3);
    let telegram = receivers::telegram(&server, "123:secret", true);
    let ntfy = receivers::ntfy(&server, "/alerts", Some("tk_ntfy"));
    let matrix = receivers::matrix(&server, "mx_token", 1);

    let setup = Setup::new(&format!(
        r#"
[sinks.out]
type = "log"
path = {out:?}

[sinks.slack]
type = "slack"
url_env = "FW_TEST_SLACK_URL"

[sinks.discord]
type = "discord"
url_env = "FW_TEST_DISCORD_URL"

[sinks.tg]
type = "telegram"
token_env = "FW_TEST_TG_TOKEN"
chat_id = "-1001234567890"
api_url = "{base}"

[sinks.push]
type = "ntfy"
url = "{base}/alerts"
token_env = "FW_TEST_NTFY_TOKEN"

[sinks.mx]
type = "matrix"
homeserver = "{base}"
room = "!room:example.org"
token_env = "FW_TEST_MX_TOKEN"

[[feeds]]
url = "{base}/feed.xml"
name = "nouvelles"
fetch_article = false
tags = ["news", "fr"]
"#,
        out = "OUT",
    ));
    // The log sink path is the setup's own file.
    let config = std::fs::read_to_string(setup.config_path())
        .expect("config")
        .replace(
            "\"OUT\"",
            &format!("{:?}", setup.path("out.jsonl").display().to_string()),
        );
    std::fs::write(setup.config_path(), config).expect("config");

    let out = setup
        .command(&["once", "--timeout", "30s"])
        .env("FW_TEST_SLACK_URL", server.url("/slack/hook"))
        .env("FW_TEST_DISCORD_URL", server.url("/discord/hook"))
        .env("FW_TEST_TG_TOKEN", "123:secret")
        .env("FW_TEST_NTFY_TOKEN", "tk_ntfy")
        .env("FW_TEST_MX_TOKEN", "mx_token")
        .output()
        .expect("run");
    assert_ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("123:secret"),
        "the bot token leaked into the log"
    );

    for (name, acc) in [
        ("slack", &slack),
        ("discord", &discord),
        ("telegram", &telegram),
        ("ntfy", &ntfy),
        ("matrix", &matrix),
    ] {
        assert!(
            acc.errors().is_empty(),
            "{name} refused: {:?}",
            acc.errors()
        );
        assert_eq!(acc.values().len(), 2, "{name} got {:?}", acc.values());
    }

    // Slack: the title as a link, escaped; the long summary cut, with a link to the article.
    let s = slack.values();
    let text = s
        .iter()
        .filter_map(|v| v["text"].as_str())
        .find(|t| t.contains("/articles/1"))
        .expect("the long item");
    assert!(
        text.starts_with(&format!(
            "<{base}/articles/1|Ünïcødé «titre» &amp; 東京 🎉>"
        )),
        "{text}"
    );
    assert!(
        text.ends_with(&format!("<{base}/articles/1|Read more>")),
        "{text}"
    );

    // Discord: retried after the 429's own retry_after, not the default schedule.
    let hits = server.seen("/discord/hook");
    assert_eq!(hits.len(), 3, "one 429, then two deliveries");
    let retry = hits[1..]
        .iter()
        .find(|h| h.body == hits[0].body)
        .expect("the refused message was sent again");
    let gap = retry.at.duration_since(hits[0].at);
    assert!(
        gap >= Duration::from_millis(250) && gap < Duration::from_secs(2),
        "retried after {gap:?}"
    );
    let d = discord.values();
    let embeds: Vec<&serde_json::Value> = d.iter().map(|v| &v["embeds"][0]).collect();
    let long = embeds
        .iter()
        .find(|e| e["url"] == format!("{base}/articles/1"))
        .expect("embed of the long item");
    assert_eq!(long["title"], title);
    assert!(
        long["description"]
            .as_str()
            .is_some_and(|t| t.ends_with(&format!("[Read more]({base}/articles/1)")))
    );
    let short = embeds
        .iter()
        .find(|e| e["url"] == format!("{base}/articles/2"))
        .expect("embed of the short item");
    assert_eq!(short["image"]["url"], format!("{base}/img/2.png"));

    // Telegram: the photo was refused, the text went instead; both within limits (checked
    // by the stand-in), the title escaped.
    let t = telegram.values();
    assert!(t.iter().all(|v| v["method"] == "sendMessage"));
    assert_eq!(server.seen("/bot123:secret/sendPhoto").len(), 1);
    let long = t
        .iter()
        .find(|v| v["text"].as_str().is_some_and(|s| s.contains("articles/1")))
        .expect("long item");
    let visible = receivers::telegram_visible(long["text"].as_str().expect("text")).expect("valid");
    assert!(visible.starts_with(title), "{visible}");
    assert!(visible.contains("Read more"));

    // ntfy: the title decoded from its encoded words, the click link, the feed's tags.
    let n = ntfy.values();
    let long = n
        .iter()
        .find(|v| v["headers"]["click"] == format!("{base}/articles/1"))
        .expect("long item");
    assert_eq!(long["headers"]["title"], title);
    assert_eq!(long["headers"]["tags"], "news,fr");
    assert!(
        long["message"]
            .as_str()
            .is_some_and(|m| m.ends_with(&format!("…\n{base}/articles/1")))
    );

    // Matrix: the retry after M_LIMIT_EXCEEDED reused the transaction id.
    let paths: Vec<String> = server
        .all_seen()
        .into_iter()
        .filter(|s| s.path.starts_with("/_matrix/"))
        .map(|s| s.path)
        .collect();
    assert_eq!(paths.len(), 3, "{paths:?}");
    assert!(
        paths[1..].contains(&paths[0]),
        "the retry of the refused request is the same transaction: {paths:?}"
    );
    let m = matrix.values();
    assert!(m.iter().all(|v| v["room"] == "!room:example.org"));
}

#[test]
fn rules_drop_keep_and_route_and_dropped_items_stay_dropped() {
    let server = Server::start();
    let base = server.url("");
    let feed = rss(&[
        rss_item(
            "1",
            "Football: the final",
            &format!("{base}/a/1"),
            &recent(5),
            "Goals.",
            "",
        ),
        rss_item(
            "2",
            "Rust 2.0 released",
            &format!("{base}/a/2"),
            &recent(4),
            "Faster builds.",
            "",
        ),
        rss_item(
            "3",
            "Gardening in winter",
            &format!("{base}/a/3"),
            &recent(3),
            "Frost.",
            "",
        ),
        rss_item(
            "4",
            "Old news about RUST",
            &format!("{base}/a/4"),
            &recent(24 * 30),
            "Ancient.",
            "",
        ),
    ]);
    server.set("/feed.xml", Route::ok(feed, "application/rss+xml"));
    server.set(
        "/tech.xml",
        Route::ok(
            rss(&[
                rss_item(
                    "t1",
                    "Rust and Go",
                    &format!("{base}/t/1"),
                    &recent(2),
                    "Langs.",
                    "",
                ),
                rss_item(
                    "t2",
                    "Cooking pasta",
                    &format!("{base}/t/2"),
                    &recent(2),
                    "Food.",
                    "",
                ),
            ]),
            "application/rss+xml",
        ),
    );
    let chat = receivers::slack(&server, "/chat");
    let setup = Setup::new("");
    let out = setup.path("out.jsonl").display().to_string();
    setup.write_config(&format!(
        r#"
[sinks.out]
type = "log"
path = {out:?}

[sinks.chat]
type = "slack"
url_env = "FW_TEST_CHAT_URL"

[[rules]]
name = "no-sport"
match = {{ title = "football|cricket" }}
action = "drop"

[[rules]]
name = "fresh-only"
older_than = "7d"
action = "drop"

[[rules]]
name = "gardening-out"
feeds = ["main"]
words = {{ title = ["gardening"] }}
action = "drop"

[[rules]]
name = "rust-to-chat"
words = {{ title = ["rust"] }}
action = "route"
sinks = ["chat"]

[[rules]]
name = "tech-keeps-langs"
tags = ["tech"]
words = {{ title = ["rust", "go", "python"] }}
action = "keep"

[[feeds]]
url = "{base}/feed.xml"
name = "main"
fetch_article = false

[[feeds]]
url = "{base}/tech.xml"
name = "tech"
fetch_article = false
tags = ["tech"]
"#
    ));
    let run = || {
        setup
            .command(&["once", "--timeout", "20s"])
            .env("FW_TEST_CHAT_URL", server.url("/chat"))
            .output()
            .expect("run")
    };
    assert_ok(&run());
    let titles = |lines: &[serde_json::Value]| -> Vec<String> {
        let mut t: Vec<String> = lines
            .iter()
            .filter_map(|l| l["item"]["title"].as_str().map(String::from))
            .collect();
        t.sort();
        t
    };
    assert_eq!(titles(&setup.lines()), ["Rust 2.0 released", "Rust and Go"]);
    let chat_titles: Vec<String> = chat
        .values()
        .iter()
        .map(|v| v["text"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(chat_titles.len(), 2, "{chat_titles:?}");
    assert!(chat_titles.iter().any(|t| t.contains("Rust 2.0 released")));
    assert!(chat_titles.iter().any(|t| t.contains("Rust and Go")));

    // `feedwire items` says why each was not sent.
    let items = setup.run(&["items", "--json"]);
    assert_ok(&items);
    let items: serde_json::Value = serde_json::from_slice(&items.stdout).expect("json");
    let dropped_by = |title: &str| {
        items
            .as_array()
            .expect("array")
            .iter()
            .find(|i| i["title"] == title)
            .map(|i| i["dropped_by"].clone())
            .expect("item listed")
    };
    assert_eq!(dropped_by("Football: the final"), "no-sport");
    assert_eq!(dropped_by("Old news about RUST"), "fresh-only");
    assert_eq!(dropped_by("Gardening in winter"), "gardening-out");
    assert_eq!(dropped_by("Cooking pasta"), "tech-keeps-langs");
    assert_eq!(dropped_by("Rust and Go"), serde_json::Value::Null);

    // A second run (a restart) with the same feeds: nothing dropped comes back as new.
    assert_ok(&run());
    assert_eq!(setup.lines().len(), 2);
    assert_eq!(chat.values().len(), 2);
}

#[test]
fn check_reports_a_bad_regex_with_its_rule() {
    let setup = Setup::new(
        r#"
[[rules]]
name = "broken"
match = { title = "foo(bar" }
action = "drop"

[[rules]]
name = "routes-nowhere"
words = { title = ["x"] }
action = "route"
sinks = ["missing"]

[[feeds]]
url = "https://example.com/feed.xml"
"#,
    );
    let out = setup.run(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rules[0].match.title"), "{err}");
    assert!(err.contains("broken"), "{err}");
    assert!(err.contains("foo(bar"), "{err}");
    assert!(err.contains("rules[1].sinks"), "{err}");
    assert!(err.contains("missing"), "{err}");
}

#[test]
fn max_item_age_and_backfill_none_store_items_without_sending() {
    let server = Server::start();
    let base = server.url("");
    server.set(
        "/old.xml",
        Route::ok(
            rss(&[
                rss_item(
                    "o1",
                    "Resurfaced",
                    &format!("{base}/o/1"),
                    &recent(24 * 40),
                    "Old.",
                    "",
                ),
                rss_item(
                    "o2",
                    "Fresh",
                    &format!("{base}/o/2"),
                    &recent(1),
                    "New.",
                    "",
                ),
            ]),
            "application/rss+xml",
        ),
    );
    let entries: Vec<Entry> = (1..=3).map(|n| Entry::new(n, &base)).collect();
    server.set(
        "/quiet.xml",
        Route::ok(common::rss("Quiet", &entries), "application/rss+xml"),
    );
    let setup = Setup::new(&format!(
        r#"
[poll]
max_item_age = "30d"

[[feeds]]
url = "{base}/old.xml"
name = "old"
fetch_article = false

[[feeds]]
url = "{base}/quiet.xml"
name = "quiet"
fetch_article = false
backfill = "none"
"#
    ));
    assert_ok(&setup.run(&["once", "--timeout", "20s"]));
    let titles: Vec<String> = setup
        .lines()
        .iter()
        .filter_map(|l| l["item"]["title"].as_str().map(String::from))
        .collect();
    assert_eq!(titles, ["Fresh"]);
    // The next poll of the quiet feed sends what is new since.
    let mut more = entries;
    more.push(Entry::new(4, &base));
    server.set(
        "/quiet.xml",
        Route::ok(common::rss("Quiet", &more), "application/rss+xml"),
    );
    assert_ok(&setup.run(&["once", "--timeout", "20s"]));
    let titles: Vec<String> = setup
        .lines()
        .iter()
        .filter_map(|l| l["item"]["title"].as_str().map(String::from))
        .collect();
    assert_eq!(titles, ["Fresh", "Story number 4"]);
    let items = setup.run(&["items", "--feed", "old"]);
    assert!(String::from_utf8_lossy(&items.stdout).contains("published before max_item_age"));
}

#[test]
fn templates_render_sign_and_dead_letter_with_the_reason() {
    let server = Server::start();
    let base = server.url("");
    server.set(
        "/feed.xml",
        Route::ok(
            rss(&[rss_item(
                "1",
                "Ça \"marche\"",
                &format!("{base}/a/1"),
                &recent(1),
                "Résumé.",
                "",
            )]),
            "application/rss+xml",
        ),
    );
    server.set("/hook", Route::status(204));
    server.set("/typo", Route::status(204));
    let setup = Setup::new("");
    let secret = setup.path("hook.secret");
    std::fs::write(&secret, "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD\n").expect("secret");
    let auth = setup.path("auth");
    std::fs::write(&auth, "Bearer from-a-file\n").expect("auth");
    setup.write_config(&format!(
        r#"
[sinks.hook]
type = "webhook"
url = "{base}/hook"
secret_file = {secret:?}
template = '{{"text": {{{{ (item.title ~ " " ~ item.url) | tojson }}}}, "feed": {{{{ feed.name | tojson }}}}}}'
content_type = "application/json"
headers = {{ Authorization = {{ file = {auth:?} }}, X-Source = "feedwire" }}

[sinks.typo]
type = "webhook"
url = "{base}/typo"
template = "{{{{ item.titel }}}}"
content_type = "text/plain"
max_attempts = 1

[[feeds]]
url = "{base}/feed.xml"
name = "ex"
fetch_article = false
"#,
        secret = secret.display().to_string(),
        auth = auth.display().to_string(),
    ));
    let out = setup.run(&["once", "--timeout", "20s"]);
    assert_ok(&out);
    let hits = server.seen("/hook");
    assert_eq!(hits.len(), 1);
    let hit = &hits[0];
    let body: serde_json::Value = serde_json::from_slice(&hit.body).expect("rendered JSON");
    assert_eq!(body["text"], format!("Ça \"marche\" {base}/a/1"));
    assert_eq!(body["feed"], "ex");
    assert_eq!(
        hit.header("authorization").as_deref(),
        Some("Bearer from-a-file")
    );
    assert_eq!(hit.header("x-source").as_deref(), Some("feedwire"));
    // The signature covers the rendered body, as sent.
    let key = feedwire::sinks::webhook::decode_secret("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD")
        .expect("key");
    let ts: i64 = hit
        .header("webhook-timestamp")
        .expect("ts")
        .parse()
        .expect("number");
    assert!(feedwire::sinks::webhook::verify(
        &key,
        &hit.header("webhook-id").expect("id"),
        ts,
        &hit.body,
        &hit.header("webhook-signature").expect("signature"),
    ));
    // The template with a typo never reached its receiver; the dead letter says why.
    assert!(server.seen("/typo").is_empty());
    assert!(wait_until(Duration::from_secs(5), || {
        let dead = setup.run(&["deliveries", "--sink", "typo", "--dead"]);
        String::from_utf8_lossy(&dead.stdout).contains("undefined")
    }));
}

#[test]
fn test_sink_shows_the_body_and_sends_only_when_asked() {
    let server = Server::start();
    let acc = receivers::discord(&server, "/d", 0, 0.0);
    let setup = Setup::new(
        r#"
[sinks.chat]
type = "discord"
url_env = "FW_TEST_DISCORD_URL"

[[feeds]]
url = "https://example.com/feed.xml"
name = "ex"
"#,
    );
    let run = |args: &[&str]| {
        setup
            .command(args)
            .env("FW_TEST_DISCORD_URL", server.url("/d"))
            .output()
            .expect("run")
    };
    let shown = run(&["test-sink", "chat"]);
    assert_ok(&shown);
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(text.contains("\"embeds\""), "{text}");
    assert!(!text.contains("/d"), "the webhook URL is a secret: {text}");
    assert!(server.seen("/d").is_empty(), "nothing sent without --send");
    assert_ok(&run(&["test-sink", "chat", "--send"]));
    assert_eq!(acc.values().len(), 1, "{:?}", acc.errors());
    let missing = run(&["test-sink", "nope"]);
    assert_eq!(missing.status.code(), Some(2));
}
