//! The read side: what people read about laxmon's state (alarms and their
//! timelines, a check's history and its downsampled series, the event feed,
//! the audit log, the database, a cluster's live placement), as typed values.
//!
//! The CLI renders these values as text or JSON in one place
//! ([`crate::render`]); the HTTP API will serialise the same values. This
//! module never writes to the store or to a cluster, and never formats.

pub use crate::cluster::executor::ServerStatus;
use crate::cluster::executor::{self, ReorgError};
use crate::config::ClusterConfig;
use crate::store::{
    AlarmRow, AlarmTimeline, AuditFilter, AuditRow, EventRow, HistoryRow, HistorySeries, Stats,
    Store, StoreError,
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::time::Duration;

/// How many alarms a listing shows at most, newest first.
pub const ALARM_LIST_LIMIT: u32 = 200;

/// The newest alarms (only open ones with `open_only`), newest first.
pub async fn alarms(store: &Store, open_only: bool) -> Result<Vec<AlarmRow>, StoreError> {
    store.list_alarms(open_only, ALARM_LIST_LIMIT).await
}

/// The most events one read of the feed returns.
pub const EVENT_PAGE_LIMIT: u32 = 1000;

/// The most alarms or audit entries one page holds.
pub const PAGE_LIMIT: u32 = 1000;

/// A page of alarms (only open ones with `open_only`), newest first, with
/// ids below `before_id` when given; at most `limit` (capped at [`PAGE_LIMIT`]).
pub async fn alarms_page(
    store: &Store,
    open_only: bool,
    before_id: Option<u64>,
    limit: u32,
) -> Result<Vec<AlarmRow>, StoreError> {
    store
        .list_alarms_page(open_only, before_id, limit.min(PAGE_LIMIT))
        .await
}

/// One alarm with everything that happened to it, in time order (`None`
/// for an unknown alarm).
pub async fn alarm_timeline(store: &Store, id: u64) -> Result<Option<AlarmTimeline>, StoreError> {
    store.alarm_timeline(id).await
}

/// Events with ids above `after_id`, oldest first; at most `limit` (capped
/// at [`EVENT_PAGE_LIMIT`]).
pub async fn events(store: &Store, after_id: i64, limit: u32) -> Result<Vec<EventRow>, StoreError> {
    store
        .events_after(after_id, limit.min(EVENT_PAGE_LIMIT))
        .await
}

/// The newest event's id (0 when there is none): where a live stream starts.
pub async fn latest_event_id(store: &Store) -> Result<i64, StoreError> {
    store.latest_event_id().await
}

/// Audit entries matching `filter`, newest first (its limit capped at [`PAGE_LIMIT`]).
pub async fn audit(store: &Store, filter: &AuditFilter) -> Result<Vec<AuditRow>, StoreError> {
    let filter = AuditFilter {
        limit: filter.limit.min(PAGE_LIMIT),
        ..filter.clone()
    };
    store.audit(&filter).await
}

/// A check's history in `[from, to)` for a chart: state changes and results
/// in at most `points` buckets.
pub async fn history_series(
    store: &Store,
    check: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    points: u32,
) -> Result<HistorySeries, StoreError> {
    store.history_series(check, from, to, points).await
}

/// A check's stored results of the last `since`, oldest first.
pub async fn history(
    store: &Store,
    check: &str,
    since: Duration,
) -> Result<Vec<HistoryRow>, StoreError> {
    store.history(check, since).await
}

/// Rows per table, size, schema version and oldest result.
pub async fn db_stats(store: &Store) -> Result<Stats, StoreError> {
    store.stats().await
}

/// A cluster's live placement: what each server says runs on it.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterStatus {
    /// The cluster's name.
    pub cluster: String,
    /// Its driver (`xl`, `virsh`, `command`, `sim`).
    pub driver: String,
    /// Every server's answer, in configuration order.
    pub servers: Vec<ServerStatus>,
}

impl ClusterStatus {
    /// Whether every server answered.
    pub fn all_answered(&self) -> bool {
        self.servers.iter().all(|s| s.vms.is_some())
    }
}

/// Asks every server of `cluster` what runs there (and remembers it in the
/// cluster's journal, as every observation is).
pub async fn cluster_status(cluster: &ClusterConfig) -> Result<ClusterStatus, ReorgError> {
    let servers = executor::status(cluster).await?;
    Ok(ClusterStatus {
        cluster: cluster.name.clone(),
        driver: cluster.driver.name().to_string(),
        servers,
    })
}
