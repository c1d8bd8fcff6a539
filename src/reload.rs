//! A reloaded config applied as a diff to the running parts: feeds and sinks are added,
//! removed or changed; the store, the HTTP client (with its per-origin pauses) and the workers
//! of unchanged sinks stay. Settings those long-lived parts were built with take effect at the
//! next start, and the log says which.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::app::Shared;
use crate::config::Config;
use crate::delivery::Deliveries;
use crate::scheduler::{self, Command};

/// Applies `new`: the feeds are synced with the store and handed to the scheduler, the sinks
/// to their workers. When the feeds cannot be synced, the previous config stays in force.
pub async fn apply(
    ctx: &Shared,
    deliveries: &mut Deliveries,
    scheduler: &mpsc::Sender<Command>,
    new: Config,
) {
    let old = ctx.config();
    for settings in at_next_start(&old, &new) {
        tracing::warn!("changes to {settings} take effect at the next start");
    }
    let new = Arc::new(new);
    let feeds = match scheduler::feed_states(&ctx.store, &new).await {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "reload refused: cannot update the feeds; still running on the previous config");
            crate::service::notify("READY=1");
            return;
        }
    };
    ctx.set_config(new.clone());
    if let Some(subscriber) = &ctx.websub {
        subscriber
            .configure(&new, &scheduler::feed_ids(&feeds))
            .await;
    }
    for problem in deliveries.reconfigure(&new).await {
        tracing::error!(error = %problem, "a sink could not be started; the other sinks go on");
    }
    let count = feeds.len();
    if scheduler
        .send(Command::Reconfigure { feeds })
        .await
        .is_err()
    {
        return;
    }
    tracing::info!(feeds = count, sinks = new.sinks.len(), "reloaded");
    crate::service::notify("READY=1");
}

/// The groups of settings that differ between `old` and `new` but are read only at start:
/// those of the HTTP client, the listener and state directory, and the WebSub subscriber.
pub fn at_next_start(old: &Config, new: &Config) -> Vec<&'static str> {
    let (o, n) = (&old.daemon, &new.daemon);
    let mut changed = Vec::new();
    if old.hosts != new.hosts
        || o.user_agent != n.user_agent
        || o.max_connections != n.max_connections
        || o.per_host_connections != n.per_host_connections
        || old.article.allowed_networks != new.article.allowed_networks
    {
        changed.push("[daemon] connections, user_agent, [hosts] or [article] allowed_networks");
    }
    if o.proxy != n.proxy || o.no_proxy != n.no_proxy {
        changed.push("[daemon] proxy or no_proxy");
    }
    if o.state_dir != n.state_dir || o.listen != n.listen {
        changed.push("[daemon] state_dir or listen");
    }
    if old.websub != new.websub {
        changed.push("[websub]");
    }
    changed
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config(toml: &str) -> Config {
        crate::config::parse(toml, Path::new("test.toml"), &Default::default())
            .expect("valid config")
    }

    #[test]
    fn only_start_time_settings_are_named() {
        let base = config("[[feeds]]\nname = \"a\"\nurl = \"https://example.com/a.xml\"\n");
        let more_feeds = config(
            "[[feeds]]\nname = \"a\"\nurl = \"https://example.com/a.xml\"\n\
             [[feeds]]\nname = \"b\"\nurl = \"https://example.com/b.xml\"\n\
             [poll]\ninterval = \"5m\"\n",
        );
        assert!(
            at_next_start(&base, &more_feeds).is_empty(),
            "feeds and poll settings apply at once"
        );
        let agent = config(
            "[daemon]\nuser_agent = \"other/1\"\nlisten = \"127.0.0.1:9999\"\n\
             [[feeds]]\nname = \"a\"\nurl = \"https://example.com/a.xml\"\n",
        );
        assert_eq!(
            at_next_start(&base, &agent),
            vec![
                "[daemon] connections, user_agent, [hosts] or [article] allowed_networks",
                "[daemon] state_dir or listen",
            ]
        );
    }
}
