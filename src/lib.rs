//! feedwire turns web feeds into a clean, de-duplicated, reliable stream of articles.
//!
//! # Layout
//!
//! The modules in the order an item passes through them:
//!
//! - [`config`]: the TOML the user wrote, validated into the [`config::Config`] the program uses.
//! - [`scheduler`]: which feed is due when (interval, start-up spread, error backoff).
//! - [`fetch`]: the one HTTP client (conditional GET, body caps, per-host limits).
//! - [`parse`]: feed bytes to items with their identity; pure.
//! - [`rules`]: filter and routing rules (drop, keep, route); pure.
//! - [`process`]: a poll's new items to storable items: content, fingerprint, payloads.
//! - [`extract`]: page HTML to a clean article; pure.
//! - [`dedup`]: canonical URLs and content fingerprints; pure.
//! - [`store`]: the only module that knows SQL: feeds, items, events and the outbox.
//! - [`outbox`]: delivery workers draining the outbox into the sinks, acking only after delivery.
//! - [`sinks`]: where events go (a JSON Lines log, webhooks) and their wire format.
//! - [`server`]: `/metrics`, `/healthz`, `/readyz` and the status page.
//! - [`app`]: wires the stages with bounded channels and owns shutdown.
//! - [`model`] holds the plain domain types; [`telemetry`] sets up logging; [`service`] speaks
//!   to the service manager (sd_notify); [`opml`] reads and
//!   writes subscription lists for the command line; [`preview`] shows what the daemon would
//!   emit for one feed, without the state directory.

pub mod config;
pub mod model;
pub mod scheduler;
pub mod fetch;
pub mod parse;
pub mod rules;
pub mod process;
pub mod extract;
pub mod dedup;
pub mod store;
pub mod outbox;
pub mod sinks;
pub mod telemetry;
pub mod service;
pub mod server;
pub mod app;
pub mod opml;
pub mod preview;
