//! Items on PostgreSQL: the known-entry checks, the ingest transaction with the same-story
//! decision made exact across nodes, and pruning.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use super::{PgError, PgStore};
use crate::dedup::{DuplicateReason, Fingerprint};
use crate::store::{DedupSettings, IngestBatch, IngestReport, KnownItem, StoreError};

impl PgStore {
    pub async fn known_items(
        &self,
        _feed_id: i64,
        _keys: Vec<String>,
    ) -> Result<HashMap<String, KnownItem>, StoreError> {
        Err(PgError::Unsupported("known_items").into())
    }

    pub async fn ingest(&self, _batch: IngestBatch) -> Result<IngestReport, StoreError> {
        Err(PgError::Unsupported("ingest").into())
    }

    pub async fn known_url_keys(&self, _keys: Vec<String>) -> Result<HashSet<String>, StoreError> {
        Err(PgError::Unsupported("known_url_keys").into())
    }

    pub async fn find_duplicate(
        &self,
        _fp: Fingerprint,
        _settings: DedupSettings,
    ) -> Result<Option<(String, DuplicateReason)>, StoreError> {
        Err(PgError::Unsupported("find_duplicate").into())
    }

    pub async fn prune(
        &self,
        _window: Duration,
        _retention: Duration,
    ) -> Result<(usize, usize), StoreError> {
        Err(PgError::Unsupported("prune").into())
    }
}
