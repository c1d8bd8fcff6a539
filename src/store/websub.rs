//! WebSub subscriptions, one row per feed (migration 11).

use std::time::Duration;

use rusqlite::{Connection, params};
use url::Url;

use super::sqlite::Sqlite;
use super::{StoreError, Timestamp};
use crate::websub::{SubState, Subscription};

const COLUMNS: &str = "feed_id, token, hub, topic, secret, state, awaiting, lease_until, lease_ms, reason, updated_at";

/// A row as the table holds it, before its URLs and state are read back.
fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Option<Subscription>> {
    let (hub, topic): (String, String) = (r.get(2)?, r.get(3)?);
    let (Ok(hub), Ok(topic)) = (Url::parse(&hub), Url::parse(&topic)) else {
        return Ok(None);
    };
    let state: String = r.get(5)?;
    let until: Option<Timestamp> = r.get(7)?;
    let reason: Option<String> = r.get(9)?;
    let updated_at: Timestamp = r.get(10)?;
    let state = match (state.as_str(), until) {
        ("pending", _) => SubState::Pending,
        ("active", Some(until)) => SubState::Active { until },
        ("unsubscribing", _) => SubState::Unsubscribing,
        ("failed", _) => SubState::Failed {
            reason: reason.unwrap_or_default(),
            at: updated_at,
        },
        _ => return Ok(None),
    };
    let lease: Option<i64> = r.get(8)?;
    Ok(Some(Subscription {
        feed_id: r.get(0)?,
        token: r.get(1)?,
        hub,
        topic,
        secret: r.get(4)?,
        state,
        awaiting: r.get(6)?,
        lease: lease.map(|ms| Duration::from_millis(ms.max(0) as u64)),
        updated_at,
    }))
}

/// Every subscription, for the subscriber at start-up.
fn all(conn: &Connection) -> Result<Vec<Subscription>, StoreError> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM websub"))?;
    let rows = stmt.query_map([], row)?;
    let mut out = Vec::new();
    for r in rows {
        // A row this version cannot read is asked again from the feed's hub.
        if let Some(sub) = r? {
            out.push(sub);
        }
    }
    Ok(out)
}

impl Sqlite {
    pub async fn websub_subscriptions(&self) -> Result<Vec<Subscription>, StoreError> {
        self.call(|conn| all(conn)).await
    }

    /// Writes `sub` over the feed's subscription.
    pub async fn websub_save(&self, sub: Subscription) -> Result<(), StoreError> {
        self.call(move |conn| {
            let (until, reason) = match &sub.state {
                SubState::Active { until } => (Some(*until), None),
                SubState::Failed { reason, .. } => (None, Some(reason.clone())),
                _ => (None, None),
            };
            conn.execute(
                &format!(
                    "INSERT OR REPLACE INTO websub ({COLUMNS})
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
                ),
                params![
                    sub.feed_id,
                    sub.token,
                    sub.hub.as_str(),
                    sub.topic.as_str(),
                    sub.secret,
                    sub.state.as_str(),
                    sub.awaiting,
                    until,
                    sub.lease.map(|l| l.as_millis() as i64),
                    reason,
                    sub.updated_at,
                ],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn websub_delete(&self, feed_id: i64) -> Result<(), StoreError> {
        self.call(move |conn| {
            conn.execute("DELETE FROM websub WHERE feed_id = ?1", params![feed_id])?;
            Ok(())
        })
        .await
    }
}

/// The WebSub state of every feed that has a subscription, by feed id (for reports).
pub(super) fn states(
    conn: &Connection,
) -> Result<std::collections::HashMap<i64, (SubState, String)>, StoreError> {
    Ok(all(conn)?
        .into_iter()
        .map(|s| (s.feed_id, (s.state, s.hub.to_string())))
        .collect())
}
