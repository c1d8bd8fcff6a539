//! Reports on PostgreSQL, read through the pool: `feeds`, `items`, `deliveries`, the status
//! page and `/metrics`.

use super::{PgError, PgStore};
use crate::store::status::{Snapshot, SnapshotQuery};
use crate::store::{
    DeliveryReport, FeedCounts, FeedReport, ItemReport, SinkBacklog, SinkStatus, StoreError,
};

impl PgStore {
    pub async fn pending(&self, _sinks: &[String]) -> Result<i64, StoreError> {
        Err(PgError::Unsupported("pending").into())
    }

    pub async fn feed_counts(&self) -> Result<FeedCounts, StoreError> {
        Err(PgError::Unsupported("feed_counts").into())
    }

    pub async fn table_sizes(&self) -> Result<Vec<(String, i64)>, StoreError> {
        Err(PgError::Unsupported("table_sizes").into())
    }

    pub async fn feeds_report(&self) -> Result<Vec<FeedReport>, StoreError> {
        Err(PgError::Unsupported("feeds_report").into())
    }

    pub async fn items_report(
        &self,
        _feed: Option<String>,
        _limit: usize,
    ) -> Result<Vec<ItemReport>, StoreError> {
        Err(PgError::Unsupported("items_report").into())
    }

    pub async fn backlog(&self) -> Result<Vec<SinkBacklog>, StoreError> {
        Err(PgError::Unsupported("backlog").into())
    }

    pub async fn sink_statuses(&self) -> Result<Vec<SinkStatus>, StoreError> {
        Err(PgError::Unsupported("sink_statuses").into())
    }

    pub async fn deliveries_report(
        &self,
        _sink: Option<String>,
        _dead_only: bool,
        _limit: usize,
    ) -> Result<Vec<DeliveryReport>, StoreError> {
        Err(PgError::Unsupported("deliveries_report").into())
    }

    pub async fn status_snapshot(&self, _q: SnapshotQuery) -> Result<Snapshot, StoreError> {
        Err(PgError::Unsupported("status_snapshot").into())
    }
}
