//! `feedwire feeds`, `items` and `deliveries`: what the store holds, read through the
//! store's read-only side.

use std::time::Duration;

use feedwire::config::Config;
use feedwire::store::{PollStatus, Reader, SinkState, Timestamp};
use feedwire::websub::SubState;

use super::{DeliveriesArgs, Failure, ItemsArgs};

fn when(t: Option<Timestamp>) -> String {
    let Some(t) = t else { return "-".to_string() };
    let now = Timestamp::now();
    let d = Duration::from_secs(now.since(t).max(now.until(t)).as_secs());
    let d = humantime::format_duration(d).to_string();
    let d = d.split(' ').next().unwrap_or("0s").to_string();
    if t >= now {
        format!("in {d}")
    } else {
        format!("{d} ago")
    }
}

fn rfc3339(t: Option<Timestamp>) -> Option<String> {
    t.and_then(Timestamp::to_rfc3339)
}

/// A feed's WebSub subscription in `feeds --json`: state, hub, and the lease's end or the
/// reason it failed.
fn websub_json(state: &SubState, hub: &str) -> serde_json::Value {
    let (until, reason) = match state {
        SubState::Active { until } => (rfc3339(Some(*until)), None),
        SubState::Failed { reason, .. } => (None, Some(reason.clone())),
        _ => (None, None),
    };
    serde_json::json!({ "state": state.as_str(), "hub": hub, "until": until, "reason": reason })
}

/// A stored feed URL without user name and password (a row written before the config took
/// them out of feed URLs may still hold them).
fn without_userinfo(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) => {
            // Both succeed on URLs with a host, the only ones that carry userinfo.
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => raw.to_string(),
    }
}

/// How a feed is reached, as reports show it: whether credentials are sent (never their
/// value) and the proxy (without its credentials), both from the config.
fn access_of(config: &Config, name: &str) -> (bool, Option<String>) {
    let Some(feed) = config.feed(name) else {
        return (false, None);
    };
    let proxy = feed.access.proxy.clone().or_else(|| {
        let host = feed.url.host_str().unwrap_or_default();
        config
            .daemon
            .proxy
            .clone()
            .filter(|_| !config.daemon.no_proxy.matches(host))
    });
    (feed.access.has_credentials(), proxy.map(|p| p.shown()))
}

pub async fn feeds(store: &Reader, config: &Config, json: bool) -> Result<u8, Failure> {
    let feeds = store.feeds_report().await?;
    if json {
        let rows: Vec<serde_json::Value> = feeds
            .iter()
            .map(|f| {
                serde_json::json!({
                    "name": f.name, "url": without_userinfo(&f.url), "title": f.title, "active": f.active,
                    "last_poll": rfc3339(f.last_poll_at), "status": f.last_status.map(PollStatus::as_str),
                    "http_status": f.last_http_status, "error": f.last_error,
                    "errors_in_row": f.errors_in_row, "next_poll": rfc3339(f.next_poll_at),
                    "next_poll_reason": f.schedule_reason, "items": f.items,
                    "websub": f.websub.as_ref().map(|(state, hub)| websub_json(state, hub)),
                    "auth": access_of(config, &f.name).0, "proxy": access_of(config, &f.name).1,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(rows));
        return Ok(0);
    }
    println!(
        "{:<24} {:<13} {:>4} {:>6} {:<12} {:<12} {:>6} {:<4}",
        "FEED", "STATUS", "HTTP", "ERRORS", "LAST POLL", "NEXT POLL", "ITEMS", "AUTH"
    );
    for f in &feeds {
        let status = if f.active {
            f.last_status
                .map_or("never polled", PollStatus::as_str)
                .to_string()
        } else {
            "removed".into()
        };
        let (auth, proxy) = access_of(config, &f.name);
        println!(
            "{:<24} {:<13} {:>4} {:>6} {:<12} {:<12} {:>6} {:<4}",
            f.name,
            status,
            f.last_http_status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into()),
            f.errors_in_row,
            when(f.last_poll_at),
            if f.active && f.last_status != Some(PollStatus::Gone) {
                when(f.next_poll_at)
            } else {
                "never".into()
            },
            f.items,
            if auth { "yes" } else { "no" }
        );
        if let Some(p) = proxy {
            println!("    proxy: {p}");
        }
        if let Some(e) = &f.last_error {
            println!("    error: {e}");
        }
        if let Some(r) = f.schedule_reason.as_ref().filter(|_| f.active) {
            println!("    next poll: {r}");
        }
        if let Some((state, hub)) = &f.websub {
            println!("    websub: {} (hub {hub})", state.describe());
        }
    }
    Ok(0)
}

pub async fn items(store: &Reader, args: ItemsArgs) -> Result<u8, Failure> {
    let items = store.items_report(args.feed, args.limit).await?;
    if args.json {
        let rows: Vec<serde_json::Value> = items
            .iter()
            .map(|i| {
                serde_json::json!({
                    "id": i.id, "feed": i.feed, "title": i.title, "url": i.url,
                    "published": rfc3339(i.published_at), "seen": rfc3339(Some(i.created_at)),
                    "emitted": i.emitted, "duplicate_of": i.duplicate_of, "duplicate_reason": i.duplicate_reason,
                    "dropped_by": i.not_sent.as_deref().and_then(|r| r.strip_prefix("rule:")),
                    "not_sent": i.not_sent,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(rows));
        return Ok(0);
    }
    for i in &items {
        println!(
            "{}  {:<20} {}",
            i.id,
            i.feed,
            i.title.as_deref().unwrap_or("(untitled)")
        );
        if let Some(u) = &i.url {
            println!("    {u}");
        }
        if let Some(d) = &i.duplicate_of {
            println!(
                "    duplicate of {d} ({})",
                i.duplicate_reason.as_deref().unwrap_or("?")
            );
        } else if !i.emitted {
            match i.not_sent.as_deref() {
                Some(r) if r.starts_with("rule:") => {
                    println!("    dropped by rule {}", &r["rule:".len()..])
                }
                Some("max_item_age") => println!("    not emitted (published before max_item_age)"),
                _ => println!("    not emitted (backfill limit)"),
            }
        }
    }
    Ok(0)
}

pub async fn deliveries(store: &Reader, args: DeliveriesArgs) -> Result<u8, Failure> {
    let backlog = store.backlog().await?;
    let states = store.sink_statuses().await?;
    println!(
        "{:<20} {:>9} {:>10} {:>6} {:<14} {:<8}",
        "SINK", "PENDING", "DELIVERED", "DEAD", "OLDEST PENDING", "STATE"
    );
    for b in backlog
        .iter()
        .filter(|b| args.sink.as_ref().is_none_or(|s| s == &b.sink))
    {
        let state = states.iter().find(|s| s.sink == b.sink);
        println!(
            "{:<20} {:>9} {:>10} {:>6} {:<14} {:<8}",
            b.sink,
            b.pending,
            b.delivered,
            b.dead,
            when(b.oldest_pending_at),
            state.map_or("up", |s| s.state.as_str())
        );
        // A sink that is not up says why, and when its next probe goes out.
        if let Some(s) = state.filter(|s| s.state != SinkState::Up) {
            let since = s.since.map(|t| format!(" since {}", when(Some(t))));
            let until = s
                .until
                .filter(|_| s.state == SinkState::Paused)
                .map(|t| format!(", next probe {}", when(Some(t))));
            println!(
                "    {}{}{}: {}",
                s.state.as_str(),
                since.unwrap_or_default(),
                until.unwrap_or_default(),
                s.reason.as_deref().unwrap_or("no reason recorded")
            );
        }
    }
    let rows = store.deliveries_report(args.sink, args.dead, 100).await?;
    if !rows.is_empty() {
        println!();
        println!("{}:", if args.dead { "dead letters" } else { "pending" });
    }
    for r in &rows {
        println!(
            "{}  {:<12} attempts {:<3} {}  {}",
            r.webhook_id,
            r.sink,
            r.attempts,
            if args.dead {
                format!("created {}", when(Some(r.created_at)))
            } else {
                format!("next {}", when(Some(r.next_attempt_at)))
            },
            r.item_title.as_deref().unwrap_or("(untitled)")
        );
        if let Some(e) = &r.last_error {
            println!("    last error: {e}");
        }
    }
    Ok(0)
}
