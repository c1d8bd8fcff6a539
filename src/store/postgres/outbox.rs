//! The outbox on PostgreSQL: rows claimed by one node at a time with a lease, their
//! outcomes recorded only by the node holding them; sink health; WebSub subscriptions.
//!
//! A claim is `claimed_by` (the node) and `claimed_until` (wall-clock milliseconds, renewed
//! by [`PgStore::renew_leases`] while the node lives). A claim whose time has passed is no
//! claim: another node takes the row and delivers it under the same `webhook_id`, and the
//! first node's late record no longer applies, since the row is not its own any more. Rows
//! are due on the worker's clock (`now`); whether a claim is alive is decided on the wall
//! clock, the one every node shares.

use std::time::Duration;

use url::Url;

use super::{PgStore, now_ms};
use crate::store::{Attempt, Delivery, SinkStatus, StoreError, Timestamp};
use crate::websub::{SubState, Subscription};

/// The columns [`delivery`] reads, in its order (`o` is the outbox row, `e` its event).
const DELIVERY_COLUMNS: &str =
    "o.id, o.event_id, o.webhook_id, e.body, o.attempts, e.created_at, o.next_attempt_at";

/// An outbox row as [`PgStore::claim_due`] and [`PgStore::claim_probe`] select it.
fn delivery(r: &tokio_postgres::Row, sink: &str) -> Delivery {
    Delivery {
        outbox_id: r.get(0),
        event_id: r.get(1),
        webhook_id: r.get(2),
        sink: sink.to_string(),
        body: r.get(3),
        attempts: r.get::<_, i32>(4).max(0) as u32,
        created_at: Timestamp::from_millis(r.get(5)),
        next_attempt_at: Timestamp::from_millis(r.get(6)),
    }
}

impl PgStore {
    /// Claims for this node up to `limit` rows of `sink` due at `now` that no live claim
    /// holds, oldest first; rows another node is claiming at this instant are skipped, not
    /// waited for.
    pub async fn claim_due(
        &self,
        sink: &str,
        limit: usize,
        now: Timestamp,
    ) -> Result<Vec<Delivery>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "WITH claimed AS (
                     UPDATE outbox SET claimed_by = $1, claimed_until = $2
                     WHERE id IN (
                         SELECT id FROM outbox
                         WHERE sink = $3 AND state = 'pending' AND next_attempt_at <= $4
                           AND (claimed_until IS NULL OR claimed_until < $5)
                         ORDER BY next_attempt_at, id
                         LIMIT $6
                         FOR UPDATE SKIP LOCKED)
                     RETURNING id, event_id, webhook_id, attempts, next_attempt_at)
                 SELECT {DELIVERY_COLUMNS}
                 FROM claimed o JOIN events e ON e.id = o.event_id
                 ORDER BY o.next_attempt_at, o.id"
            ))
            .await?;
        let rows = client
            .query(
                &stmt,
                &[
                    &self.node,
                    &self.lease_end(),
                    &sink,
                    &now.as_millis(),
                    &now_ms(),
                    &(limit as i64),
                ],
            )
            .await?;
        Ok(rows.iter().map(|r| delivery(r, sink)).collect())
    }

    /// Records what became of a round of attempts, and releases the claims of rows that
    /// were not tried, in one transaction. Only rows this node still holds are written: a
    /// row whose lease passed to another node is that node's to record.
    pub async fn finish_many(
        &self,
        outcomes: Vec<(i64, Attempt)>,
        untried: Vec<i64>,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let now = now_ms();
        let node = self.node.as_str();
        // The common round delivers everything: one statement for all of those.
        let mut delivered = Vec::new();
        for (id, attempt) in outcomes {
            match attempt {
                Attempt::Delivered => delivered.push(id),
                Attempt::Retry {
                    at,
                    status,
                    error,
                    outage,
                } => {
                    let stmt = tx
                        .prepare_cached(
                            "UPDATE outbox SET attempts = attempts + 1, claimed_by = NULL,
                                claimed_until = NULL, next_attempt_at = $3, last_status = $4,
                                last_error = $5, outage = $6
                             WHERE id = $1 AND claimed_by = $2",
                        )
                        .await?;
                    tx.execute(
                        &stmt,
                        &[
                            &id,
                            &node,
                            &at.as_millis(),
                            &status.map(i32::from),
                            &error,
                            &outage,
                        ],
                    )
                    .await?;
                }
                Attempt::Dead { status, error } => {
                    let stmt = tx
                        .prepare_cached(
                            "UPDATE outbox SET state = 'dead', attempts = attempts + 1,
                                claimed_by = NULL, claimed_until = NULL, done_at = $3,
                                last_status = $4, last_error = $5, outage = FALSE
                             WHERE id = $1 AND claimed_by = $2",
                        )
                        .await?;
                    tx.execute(&stmt, &[&id, &node, &now, &status.map(i32::from), &error])
                        .await?;
                }
                // A probe ahead of the row's time: its count and time stay, the error changes.
                Attempt::Probed { status, error } => {
                    let stmt = tx
                        .prepare_cached(
                            "UPDATE outbox SET claimed_by = NULL, claimed_until = NULL,
                                last_status = $3, last_error = $4, outage = TRUE
                             WHERE id = $1 AND claimed_by = $2",
                        )
                        .await?;
                    tx.execute(&stmt, &[&id, &node, &status.map(i32::from), &error])
                        .await?;
                }
            }
        }
        if !delivered.is_empty() {
            let stmt = tx
                .prepare_cached(
                    "UPDATE outbox SET state = 'delivered', attempts = attempts + 1,
                        claimed_by = NULL, claimed_until = NULL, done_at = $3,
                        last_status = NULL, last_error = NULL, outage = FALSE
                     WHERE id = ANY($1) AND claimed_by = $2",
                )
                .await?;
            tx.execute(&stmt, &[&delivered, &node, &now]).await?;
        }
        if !untried.is_empty() {
            let stmt = tx
                .prepare_cached(
                    "UPDATE outbox SET claimed_by = NULL, claimed_until = NULL
                     WHERE id = ANY($1) AND claimed_by = $2",
                )
                .await?;
            tx.execute(&stmt, &[&untried, &node]).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// When the next pending row of `sink` that this node could claim is due: unclaimed
    /// rows at their time, rows another node holds when its lease ends (so a dead node's
    /// rows are taken over on time). Rows this node holds are its own round's.
    pub async fn next_due(&self, sink: &str) -> Result<Option<Timestamp>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT MIN(CASE
                     WHEN claimed_until IS NULL OR claimed_until < $2 THEN next_attempt_at
                     WHEN claimed_by IS DISTINCT FROM $3
                         THEN GREATEST(next_attempt_at, claimed_until + 1)
                 END)
                 FROM outbox WHERE sink = $1 AND state = 'pending'",
                &[&sink, &now_ms(), &self.node],
            )
            .await?;
        Ok(row.get::<_, Option<i64>>(0).map(Timestamp::from_millis))
    }

    /// Claims the probe of a paused sink: the row due first among those that already failed
    /// (it may not be due yet), else the oldest fresh row; `None` when nothing waits or every
    /// waiting row is held.
    pub async fn claim_probe(
        &self,
        sink: &str,
        _now: Timestamp,
    ) -> Result<Option<Delivery>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "WITH claimed AS (
                     UPDATE outbox SET claimed_by = $1, claimed_until = $2
                     WHERE id IN (
                         SELECT id FROM outbox
                         WHERE sink = $3 AND state = 'pending'
                           AND (claimed_until IS NULL OR claimed_until < $4)
                         ORDER BY attempts = 0, next_attempt_at, id
                         LIMIT 1
                         FOR UPDATE SKIP LOCKED)
                     RETURNING id, event_id, webhook_id, attempts, next_attempt_at)
                 SELECT {DELIVERY_COLUMNS}
                 FROM claimed o JOIN events e ON e.id = o.event_id"
            ))
            .await?;
        let row = client
            .query_opt(&stmt, &[&self.node, &self.lease_end(), &sink, &now_ms()])
            .await?;
        Ok(row.map(|r| delivery(&r, sink)))
    }

    /// The receiver answers again: every row of `sink` that waited only because of the
    /// outage is due now. Returns how many.
    pub async fn resume_sink(&self, sink: &str, now: Timestamp) -> Result<usize, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE outbox SET next_attempt_at = LEAST(next_attempt_at, $2), outage = FALSE
                 WHERE sink = $1 AND state = 'pending' AND outage",
                &[&sink, &now.as_millis()],
            )
            .await?;
        Ok(n as usize)
    }

    /// Dead-letters the pending rows of `sink` created before `created_before` that no live
    /// claim holds: their `max_age` passed while the sink was paused. Each keeps its last
    /// error, or gets `why`.
    pub async fn expire(
        &self,
        sink: &str,
        created_before: Timestamp,
        why: String,
        suffix: String,
    ) -> Result<usize, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE outbox SET state = 'dead', done_at = $3, claimed_by = NULL,
                    claimed_until = NULL, outage = FALSE,
                    last_error = COALESCE(last_error, $4) || $5
                 WHERE sink = $1 AND state = 'pending' AND created_at < $2
                   AND (claimed_until IS NULL OR claimed_until < $3)",
                &[&sink, &created_before.as_millis(), &now_ms(), &why, &suffix],
            )
            .await?;
        Ok(n as usize)
    }

    /// Records a sink's health (one row per sink, shared by the nodes: the last one to see
    /// a change writes it).
    pub async fn set_sink_status(&self, status: SinkStatus) -> Result<(), StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "INSERT INTO sink_state (sink, state, reason, since, until, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (sink) DO UPDATE SET state = EXCLUDED.state,
                    reason = EXCLUDED.reason, since = EXCLUDED.since, until = EXCLUDED.until,
                    updated_at = EXCLUDED.updated_at",
            )
            .await?;
        client
            .execute(
                &stmt,
                &[
                    &status.sink,
                    &status.state.as_str(),
                    &status.reason,
                    &status.since.map(Timestamp::as_millis),
                    &status.until.map(Timestamp::as_millis),
                    &status.updated_at.as_millis(),
                ],
            )
            .await?;
        Ok(())
    }

    /// Queues rows of `sink` again: dead ones, or every row created since `since`. They
    /// keep their `webhook_id`; a claim on them is voided. Returns how many were queued.
    pub async fn redeliver(
        &self,
        sink: &str,
        dead_only: bool,
        since: Option<Timestamp>,
    ) -> Result<usize, StoreError> {
        let client = self.client().await?;
        let now = now_ms();
        let n = if dead_only {
            client
                .execute(
                    "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = $2,
                        claimed_by = NULL, claimed_until = NULL, done_at = NULL
                     WHERE sink = $1 AND state = 'dead'",
                    &[&sink, &now],
                )
                .await?
        } else {
            client
                .execute(
                    "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = $2,
                        claimed_by = NULL, claimed_until = NULL, done_at = NULL
                     WHERE sink = $1 AND created_at >= $3",
                    &[&sink, &now, &since.unwrap_or_default().as_millis()],
                )
                .await?
        };
        Ok(n as usize)
    }

    /// Every WebSub subscription, for the subscriber at start-up.
    pub async fn websub_subscriptions(&self) -> Result<Vec<Subscription>, StoreError> {
        let client = self.client().await?;
        subscriptions(&client).await
    }

    /// Writes `sub` over the feed's subscription (and over any row with its token, as the
    /// SQLite store's `INSERT OR REPLACE` does).
    pub async fn websub_save(&self, sub: Subscription) -> Result<(), StoreError> {
        let (until, reason) = match &sub.state {
            SubState::Active { until } => (Some(until.as_millis()), None),
            SubState::Failed { reason, .. } => (None, Some(reason.clone())),
            _ => (None, None),
        };
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "DELETE FROM websub WHERE feed_id = $1 OR token = $2",
            &[&sub.feed_id, &sub.token],
        )
        .await?;
        tx.execute(
            &format!(
                "INSERT INTO websub ({WEBSUB_COLUMNS})
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
            ),
            &[
                &sub.feed_id,
                &sub.token,
                &sub.hub.as_str(),
                &sub.topic.as_str(),
                &sub.secret,
                &sub.state.as_str(),
                &sub.awaiting,
                &until,
                &sub.lease.map(|l| l.as_millis() as i64),
                &reason,
                &sub.updated_at.as_millis(),
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Forgets a feed's subscription.
    pub async fn websub_delete(&self, feed_id: i64) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute("DELETE FROM websub WHERE feed_id = $1", &[&feed_id])
            .await?;
        Ok(())
    }
}

/// The columns [`subscription`] reads, in its order.
const WEBSUB_COLUMNS: &str = "feed_id, token, hub, topic, secret, state, awaiting, lease_until, lease_ms, reason, updated_at";

/// Every subscription this version can read (a row it cannot is asked again from the
/// feed's hub, as on SQLite).
pub(super) async fn subscriptions(
    client: &tokio_postgres::Client,
) -> Result<Vec<Subscription>, StoreError> {
    let rows = client
        .query(&format!("SELECT {WEBSUB_COLUMNS} FROM websub"), &[])
        .await?;
    Ok(rows.iter().filter_map(subscription).collect())
}

/// A row as the table holds it, read back into a subscription; `None` when its URLs or
/// state are not ones this version writes.
fn subscription(r: &tokio_postgres::Row) -> Option<Subscription> {
    let hub = Url::parse(r.get::<_, &str>(2)).ok()?;
    let topic = Url::parse(r.get::<_, &str>(3)).ok()?;
    let until: Option<i64> = r.get(7);
    let reason: Option<String> = r.get(9);
    let updated_at = Timestamp::from_millis(r.get(10));
    let state = match (r.get::<_, &str>(5), until) {
        ("pending", _) => SubState::Pending,
        ("active", Some(until)) => SubState::Active {
            until: Timestamp::from_millis(until),
        },
        ("unsubscribing", _) => SubState::Unsubscribing,
        ("failed", _) => SubState::Failed {
            reason: reason.unwrap_or_default(),
            at: updated_at,
        },
        _ => return None,
    };
    let lease: Option<i64> = r.get(8);
    Some(Subscription {
        feed_id: r.get(0),
        token: r.get(1),
        hub,
        topic,
        secret: r.get(4),
        state,
        awaiting: r.get(6),
        lease: lease.map(|ms| Duration::from_millis(ms.max(0) as u64)),
        updated_at,
    })
}
