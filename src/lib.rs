//! feedwire turns web feeds into a clean, de-duplicated, reliable stream of articles.
//!
//! # Layout
//!
//! The modules in the order an item passes through them:
//!
//! - [`config`]: the TOML the user wrote, validated into the [`config::Config`] the program uses.
//! - [`scheduler`]: owns every feed's state; releases due feeds (interval, spread, backoff).
//! - [`poll`]: one conditional GET and parse of a due feed → a [`poll::PollOutcome`], and the
//!   rules that follow from it.
//! - [`websub`]: the WebSub subscriber: hubs pushing feeds, handed to the poll stage as
//!   polls; polling stays as the safety net.
//! - [`fetch`]: the one HTTP client (conditional GET, body caps, per-host limits and pauses).
//! - [`parse`]: feed bytes to items with their identity; pure.
//! - [`rules`]: filter and routing rules (drop, keep, route); pure.
//! - [`ingest`]: a poll's new items processed and stored in one transaction.
//! - [`process`]: what ingest does to items: content, fingerprint, payloads.
//! - [`extract`]: page HTML to a clean article; pure.
//! - [`dedup`]: canonical URLs and content fingerprints; pure.
//! - [`store`]: the only module that knows SQL: feeds, items, events and the outbox, on
//!   SQLite (one daemon) or PostgreSQL (several daemons sharing feeds by leases).
//! - [`delivery`]: one worker per sink, started, stopped and replaced on reload.
//! - [`outbox`]: a worker's rounds: claim, deliver, retry decision, ack only after delivery.
//! - [`sinks`]: where events go (a JSON Lines log, webhooks) and their wire format.
//! - [`server`]: `/metrics`, `/healthz`, `/readyz` and the status page.
//! - [`app`]: wires the stages with bounded channels, owns shutdown.
//! - [`reload`]: a reloaded config applied as a diff to the running parts.
//! - [`upkeep`]: what runs beside the pipeline: the service manager's status and watchdog,
//!   pruning, lease renewal.
//! - [`model`] holds the plain domain types; [`blocking`] runs CPU work through a bounded
//!   queue; [`telemetry`] sets up logging; [`service`] speaks to the service manager
//!   (sd_notify); [`opml`] reads and writes subscription lists for the command line;
//!   [`preview`] shows what the daemon would emit for one feed, without the state directory.

pub mod config;
pub mod model;
pub mod scheduler;
pub mod poll;
pub mod websub;
pub mod fetch;
pub mod parse;
pub mod rules;
pub mod ingest;
pub mod process;
pub mod extract;
pub mod dedup;
pub mod store;
pub mod delivery;
pub mod outbox;
pub mod sinks;
pub mod blocking;
pub mod telemetry;
pub mod service;
pub mod server;
pub mod app;
pub mod reload;
pub mod upkeep;
pub mod opml;
pub mod preview;
