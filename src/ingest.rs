//! The ingest stage: a poll's new entries get their content (article fetch and cleaning,
//! several feeds at once), then are stored with the poll's record in one transaction, and the
//! sinks that got rows are woken. The feed goes back to the scheduler when its items are
//! stored — or, when they could not be, as a failed poll that keeps the old validators, so
//! the same entries are read again.

use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc};
use tokio_util::task::TaskTracker;

use crate::app::Shared;
use crate::model::{FeedItem, Timestamp};
use crate::poll::{self, Finish, PollOutcome};
use crate::process::{self, Prepared};
use crate::scheduler::{self, FeedState};
use crate::store::{DedupSettings, IngestBatch, PollRecord};
use crate::telemetry::ItemLabel;

/// Batches whose articles are fetched at the same time.
pub const ARTICLE_BATCHES: usize = 8;

/// A poll whose new entries still have to be processed and stored.
pub struct Batch {
    pub state: FeedState,
    pub record: PollRecord,
    pub title: Option<String>,
    pub items: Vec<FeedItem>,
    /// Known entries whose text changed, with their stored ids.
    pub updates: Vec<(FeedItem, String)>,
}

/// A batch ready for the store.
struct Ready {
    state: FeedState,
    record: PollRecord,
    prepared: Prepared,
}

/// Gives each batch its content, then stores it; runs until `batches` closes and drains.
pub async fn run(ctx: Arc<Shared>, batches: mpsc::Receiver<Batch>, finish: Finish) {
    let (ready_tx, ready_rx) = mpsc::channel::<Ready>(ARTICLE_BATCHES);
    let processing = tokio::spawn(process_batches(
        ctx.clone(),
        batches,
        ready_tx,
        finish.clone(),
    ));
    store_batches(ctx, ready_rx, finish).await;
    // The storer ends when the processor dropped its sender, so this is already done.
    let _ = processing.await;
}

/// Content and fingerprints for each batch; [`ARTICLE_BATCHES`] at once, so one slow
/// publisher does not hold up the other feeds.
async fn process_batches(
    ctx: Arc<Shared>,
    mut batches: mpsc::Receiver<Batch>,
    ready: mpsc::Sender<Ready>,
    finish: Finish,
) {
    let slots = Arc::new(Semaphore::new(ARTICLE_BATCHES));
    let tasks = TaskTracker::new();
    while let Some(batch) = batches.recv().await {
        let permit = slots
            .clone()
            .acquire_owned()
            .await
            .expect("the batch semaphore is never closed");
        let (ctx, ready, finish) = (ctx.clone(), ready.clone(), finish.clone());
        tasks.spawn(async move {
            let config = ctx.config();
            let feed = batch.state.feed.clone();
            let contents = process::contents(&config, &ctx, &feed, batch.items).await;
            let mut items = match contents {
                Ok(items) => items,
                Err(e) => {
                    // Nothing of the batch is stored: the poll counts as failed and keeps
                    // the old validators, so the entries are read again next time.
                    tracing::error!(feed = %feed.name, error = %e, "processing an item failed; the feed is polled again");
                    failed(&ctx, &finish, batch.state, &batch.record, format!("processing: {e}")).await;
                    return;
                }
            };
            items.extend(process::updates(batch.updates));
            let prepared = process::prepare(
                &config,
                feed,
                batch.title,
                batch.state.first_poll(),
                items,
            );
            // The receiver is gone only at shutdown; the feed is polled again next time.
            let _ = ready
                .send(Ready {
                    state: batch.state,
                    record: batch.record,
                    prepared,
                })
                .await;
            drop(permit);
        });
    }
    tasks.close();
    tasks.wait().await;
}

/// Records `record`'s poll as failed with `error` (the batch was not stored).
async fn failed(
    ctx: &Shared,
    finish: &Finish,
    state: FeedState,
    record: &PollRecord,
    error: String,
) {
    let config = ctx.config();
    let outcome = PollOutcome::Failed {
        http_status: record.http_status,
        error,
        retry_after: None,
    };
    let record = poll::record(
        &outcome,
        &state,
        &config.poll,
        Timestamp::now(),
        scheduler::jittered,
    );
    finish.record(ctx, state, record).await;
}

/// Writes batches to the store, then wakes the sinks that got rows.
async fn store_batches(ctx: Arc<Shared>, mut ready: mpsc::Receiver<Ready>, finish: Finish) {
    while let Some(Ready {
        mut state,
        mut record,
        prepared,
    }) = ready.recv().await
    {
        let config = ctx.config();
        let mut touched: Vec<String> = prepared
            .items
            .iter()
            .flat_map(|i| {
                i.new_sinks
                    .iter()
                    .chain(&i.duplicate_sinks)
                    .chain(&i.updated_sinks)
                    .cloned()
            })
            .collect();
        let errors_before = state.errors_in_row;
        record.event = poll::feed_event(&config, &state, errors_before, &record);
        if let Some(event) = &record.event {
            touched.extend(event.sinks.iter().cloned());
        }
        touched.sort();
        touched.dedup();
        let name = state.feed.name.clone();
        let batch = IngestBatch {
            feed_id: state.id,
            poll: record.clone(),
            items: prepared.items,
            dedup: DedupSettings {
                near_duplicates: config.dedup.near_duplicates,
                window: config.dedup.window,
            },
            render: prepared.render,
        };
        match ctx.store.ingest(batch).await {
            Ok(report) => {
                let new = ItemLabel {
                    kind: "new",
                    reason: "",
                };
                ctx.metrics
                    .items
                    .get_or_create(&new)
                    .inc_by(report.emitted as u64);
                for reason in &report.not_sent {
                    let (reason, rule) = match reason.strip_prefix(process::NOT_SENT_RULE) {
                        Some(rule) => ("rule".to_string(), rule.to_string()),
                        None => (reason.clone(), String::new()),
                    };
                    ctx.metrics
                        .items_not_sent
                        .get_or_create(&crate::telemetry::NotSentLabel { reason, rule })
                        .inc();
                }
                for reason in &report.duplicate_reasons {
                    ctx.metrics
                        .items
                        .get_or_create(&ItemLabel {
                            kind: "duplicate",
                            reason,
                        })
                        .inc();
                }
                tracing::info!(feed = %name, new = report.emitted, duplicates = report.duplicates, updated = report.updated,
                    stored = report.stored, "new items");
                if report.guids_unreliable {
                    tracing::warn!(feed = %name, "the feed changes its GUIDs; its items are now identified by their links");
                }
                ctx.wakes.wake(&touched);
                if errors_before > 0 {
                    tracing::info!(feed = %name, failed_polls = errors_before, "feed recovered");
                }
                poll::apply(&mut state, &record);
                state.guid_unreliable |= report.guids_unreliable;
                // The scheduler is gone only at shutdown.
                let _ = finish.scheduler.send(state);
            }
            Err(e) => {
                tracing::error!(feed = %name, error = %e, "cannot store new items; the feed is polled again");
                failed(&ctx, &finish, state, &record, format!("database: {e}")).await;
            }
        }
    }
}
