//! The outbox on PostgreSQL: rows claimed by one node at a time with a lease, their
//! outcomes recorded only by the node holding them; sink health; WebSub subscriptions.

use super::{PgError, PgStore};
use crate::store::{Attempt, Delivery, SinkStatus, StoreError, Timestamp};

impl PgStore {
    pub async fn claim_due(
        &self,
        _sink: &str,
        _limit: usize,
        _now: Timestamp,
    ) -> Result<Vec<Delivery>, StoreError> {
        Err(PgError::Unsupported("claim_due").into())
    }

    pub async fn finish_many(
        &self,
        _outcomes: Vec<(i64, Attempt)>,
        _untried: Vec<i64>,
    ) -> Result<(), StoreError> {
        Err(PgError::Unsupported("finish_many").into())
    }

    pub async fn next_due(&self, _sink: &str) -> Result<Option<Timestamp>, StoreError> {
        Err(PgError::Unsupported("next_due").into())
    }

    pub async fn claim_probe(
        &self,
        _sink: &str,
        _now: Timestamp,
    ) -> Result<Option<Delivery>, StoreError> {
        Err(PgError::Unsupported("claim_probe").into())
    }

    pub async fn resume_sink(&self, _sink: &str, _now: Timestamp) -> Result<usize, StoreError> {
        Err(PgError::Unsupported("resume_sink").into())
    }

    pub async fn expire(
        &self,
        _sink: &str,
        _created_before: Timestamp,
        _why: String,
        _suffix: String,
    ) -> Result<usize, StoreError> {
        Err(PgError::Unsupported("expire").into())
    }

    pub async fn set_sink_status(&self, _status: SinkStatus) -> Result<(), StoreError> {
        Err(PgError::Unsupported("set_sink_status").into())
    }

    pub async fn redeliver(
        &self,
        _sink: &str,
        _dead_only: bool,
        _since: Option<Timestamp>,
    ) -> Result<usize, StoreError> {
        Err(PgError::Unsupported("redeliver").into())
    }

    pub async fn websub_subscriptions(
        &self,
    ) -> Result<Vec<crate::websub::Subscription>, StoreError> {
        Err(PgError::Unsupported("websub").into())
    }

    pub async fn websub_save(&self, _sub: crate::websub::Subscription) -> Result<(), StoreError> {
        Err(PgError::Unsupported("websub").into())
    }

    pub async fn websub_delete(&self, _feed_id: i64) -> Result<(), StoreError> {
        Err(PgError::Unsupported("websub").into())
    }
}
