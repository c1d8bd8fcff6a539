use super::*;

const NOW: Timestamp = Timestamp::from_millis(1_000_000_000_000);

fn url(s: &str) -> Url {
    Url::parse(s).expect("url")
}

fn found() -> Discovery {
    Discovery {
        hub: url("https://hub.example/"),
        topic: url("https://example.com/feed.xml"),
    }
}

#[test]
fn discovers_the_hub_of_atom_rss_json_feeds_and_the_link_header() {
    let from = url("https://example.com/feed.xml");
    let atom = br#"<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom">
        <link rel="self" href="https://example.com/atom"/><link rel="hub" href="https://hub.example/a?x=1&amp;y=2"/>
        <entry><link rel="hub" href="https://wrong.example/"/></entry></feed>"#;
    assert_eq!(
        discover(atom, None, &from),
        Some(Discovery {
            hub: url("https://hub.example/a?x=1&y=2"),
            topic: url("https://example.com/atom"),
        })
    );
    let rss = br#"<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"><channel>
        <atom:link rel="hub" href="/hub"/><item><title>t</title></item></channel></rss>"#;
    assert_eq!(
        discover(rss, None, &from),
        Some(Discovery {
            hub: url("https://example.com/hub"),
            topic: from.clone(),
        }),
        "relative hub resolved; no self link: the fetched URL is the topic"
    );
    let json = br#"{"version":"https://jsonfeed.org/version/1.1","feed_url":"https://example.com/j","hubs":[{"type":"WebSub","url":"https://hub.example/j"}],"items":[]}"#;
    assert_eq!(
        discover(json, None, &from).map(|d| d.hub),
        Some(url("https://hub.example/j"))
    );
    let header = r#"<https://hub.example/h>; rel="hub", <https://example.com/self>; rel="self""#;
    assert_eq!(
        discover(atom, Some(header), &from),
        Some(Discovery {
            hub: url("https://hub.example/h"),
            topic: url("https://example.com/self"),
        }),
        "the Link header wins over the document"
    );
    let plain = br#"<rss version="2.0"><channel><item><link>x</link></item></channel></rss>"#;
    assert_eq!(discover(plain, None, &from), None);
}

fn sign<M: Mac + hmac::digest::KeyInit>(method: &str, secret: &[u8], body: &[u8]) -> String {
    let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(secret).expect("key");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{method}={hex}")
}

#[test]
fn signatures_of_every_method_are_checked_against_the_body() {
    let (secret, body) = (b"s3cret".as_slice(), b"<feed/>".as_slice());
    for header in [
        sign::<Hmac<sha1::Sha1>>("sha1", secret, body),
        sign::<Hmac<sha2::Sha256>>("sha256", secret, body),
        sign::<Hmac<sha2::Sha384>>("sha384", secret, body),
        sign::<Hmac<sha2::Sha512>>("sha512", secret, body),
    ] {
        assert_eq!(verify_signature(Some(&header), secret, body), Ok(()));
        assert_eq!(
            verify_signature(Some(&header), secret, b"<feed>changed</feed>"),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(Some(&header), b"other", body),
            Err(SignatureError::Mismatch)
        );
    }
    assert_eq!(
        verify_signature(None, secret, body),
        Err(SignatureError::Missing)
    );
    assert_eq!(
        verify_signature(Some("sha256"), secret, body),
        Err(SignatureError::Malformed)
    );
    assert_eq!(
        verify_signature(Some("md5=00ff"), secret, body),
        Err(SignatureError::Method("md5".into()))
    );
}

fn pending() -> Subscription {
    Subscription::new(7, &found(), NOW)
}

fn query(mode: &str, topic: &str) -> Verification {
    Verification::from_query(&format!(
        "hub.mode={mode}&hub.topic={}&hub.challenge=abc&hub.lease_seconds=600&hub.reason=no",
        url::form_urlencoded::byte_serialize(topic.as_bytes()).collect::<String>()
    ))
    .expect("a verification")
}

#[test]
fn only_a_pending_request_of_ours_gets_its_challenge_echoed() {
    let topic = "https://example.com/feed.xml";
    match verdict(&pending(), &query("subscribe", topic), NOW) {
        Verdict::Confirm {
            challenge,
            then: Some(s),
        } => {
            assert_eq!(challenge, "abc");
            assert_eq!(
                s.state,
                SubState::Active {
                    until: NOW.after(Duration::from_secs(600))
                }
            );
            assert!(!s.awaiting);
            assert_eq!(s.renew_at(), Some(NOW.after(Duration::from_secs(480))));
            // Verified once: a second verification is not ours any more.
            assert_eq!(
                verdict(&s, &query("subscribe", topic), NOW),
                Verdict::NotOurs
            );
        }
        other => panic!("expected a confirmation, got {other:?}"),
    }
    assert_eq!(
        verdict(
            &pending(),
            &query("subscribe", "https://other.example/"),
            NOW
        ),
        Verdict::NotOurs,
        "another topic"
    );
    assert_eq!(
        verdict(&pending(), &query("unsubscribe", topic), NOW),
        Verdict::NotOurs,
        "a mode we did not ask for"
    );
    let ending = Subscription {
        state: SubState::Unsubscribing,
        ..pending()
    };
    assert!(matches!(
        verdict(&ending, &query("unsubscribe", topic), NOW),
        Verdict::Confirm { then: None, .. }
    ));
    match verdict(&pending(), &query("denied", topic), NOW) {
        Verdict::Denied(s) => assert_eq!(
            s.state,
            SubState::Failed {
                reason: "the hub denied the subscription: no".into(),
                at: NOW
            }
        ),
        other => panic!("expected a denial, got {other:?}"),
    }
    assert_eq!(Verification::from_query("hub.mode=subscribe"), None);
}

#[test]
fn a_feed_is_subscribed_once_and_again_only_after_a_failure_has_aged() {
    let f = found();
    assert!(needs_subscribe(None, &f, NOW));
    assert!(!needs_subscribe(Some(&pending()), &f, NOW));
    let failed = Subscription {
        state: SubState::Failed {
            reason: "x".into(),
            at: NOW,
        },
        awaiting: false,
        ..pending()
    };
    assert!(!needs_subscribe(
        Some(&failed),
        &f,
        NOW.after(Duration::from_secs(60))
    ));
    assert!(needs_subscribe(Some(&failed), &f, NOW.after(RETRY_AFTER)));
    let active = Subscription {
        state: SubState::Active {
            until: NOW.after(Duration::from_secs(600)),
        },
        awaiting: false,
        ..pending()
    };
    let moved = Discovery {
        hub: url("https://hub2.example/"),
        ..found()
    };
    assert!(needs_subscribe(Some(&active), &moved, NOW), "a new hub");
}

#[test]
fn a_pushed_feed_is_polled_at_max_interval_but_errors_keep_their_backoff() {
    let poll = config::Poll {
        interval: Duration::from_secs(900),
        min_interval: Duration::from_secs(120),
        max_interval: Duration::from_secs(6 * 3600),
        timeout: Duration::from_secs(30),
        max_feed_size: 1 << 20,
        backfill: config::Backfill::All,
        max_item_age: None,
        access: Default::default(),
    };
    let mut record = PollRecord {
        at: NOW,
        status: PollStatus::Ok,
        http_status: Some(200),
        error: None,
        errors_in_row: 0,
        next_poll_at: NOW.after(Duration::from_secs(900)),
        etag: None,
        last_modified: None,
        title: None,
        moved_to: None,
        rate: None,
        reason: None,
        event: None,
    };
    safety_net(&mut record, &poll, |d| d);
    assert_eq!(record.next_poll_at, NOW.after(poll.max_interval));
    let mut failed = PollRecord {
        status: PollStatus::Error,
        next_poll_at: NOW.after(Duration::from_secs(60)),
        ..record
    };
    safety_net(&mut failed, &poll, |d| d);
    assert_eq!(failed.next_poll_at, NOW.after(Duration::from_secs(60)));
}

#[test]
fn the_lease_watcher_wakes_at_the_next_renewal() {
    let active = Subscription {
        state: SubState::Active {
            until: NOW.after(Duration::from_millis(3000)),
        },
        awaiting: false,
        lease: Some(Duration::from_secs(3)),
        ..pending()
    };
    assert_eq!(
        next_check([&active].into_iter(), NOW),
        Duration::from_millis(1000),
        "at most LEASE_CHECK"
    );
    let later = NOW.after(Duration::from_millis(2300));
    assert_eq!(
        next_check([&active].into_iter(), later),
        Duration::from_millis(100)
    );
    assert_eq!(next_check(std::iter::empty(), NOW), LEASE_CHECK);
}
