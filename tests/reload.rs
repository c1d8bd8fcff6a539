//! Changing the config under a store that already holds work: sinks removed between runs,
//! and SIGHUP while deliveries are in flight.

mod common;

use common::*;

fn feed_with(n: u32) -> Server {
    let server = Server::start();
    let base = server.url("");
    let entries: Vec<Entry> = (1..=n).map(|i| Entry::new(i, &base)).collect();
    server.set(
        "/rss.xml",
        Route::ok(rss("F", &entries), "application/rss+xml"),
    );
    server
}

#[test]
fn once_after_a_sink_was_removed_exits_0_when_the_remaining_sinks_are_done() {
    let feed = feed_with(2);
    let receiver = Server::start();
    // The receiver keeps failing, so its rows stay pending.
    receiver.set("/hook", Route::status(503));
    let log_and_hook = |with_hook: bool| {
        let mut text = String::from("[article]\nfetch = false\n\n");
        text.push_str("[sinks.log]\ntype = \"log\"\npath = \"out.jsonl\"\n\n");
        if with_hook {
            text.push_str(&format!(
                "[sinks.hook]\ntype = \"webhook\"\nurl = \"{}\"\ntimeout = \"1s\"\n\n",
                receiver.url("/hook")
            ));
        }
        text.push_str(&format!(
            "[[feeds]]\nname = \"f\"\nurl = \"{}\"\n",
            feed.url("/rss.xml")
        ));
        text
    };
    let setup = Setup::new(&log_and_hook(true));
    let out = setup
        .command(&["once", "--timeout", "1s"])
        .current_dir(setup.dir.path())
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(1),
        "the failing hook's rows are pending: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The hook is removed: nothing will ever deliver its rows, so `once` does not wait for them.
    setup.write_config(&log_and_hook(false));
    let out = setup
        .command(&["once", "--timeout", "1s"])
        .current_dir(setup.dir.path())
        .output()
        .expect("run");
    assert_ok(&out);
    assert_eq!(read_lines(&setup.path("out.jsonl")).len(), 2);
}
