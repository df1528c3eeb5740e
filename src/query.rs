//! The read side: what people read about laxmon's state (alarms, a check's
//! history, silences, the database, a cluster's live placement), as typed values.
//!
//! The CLI renders these values as text or JSON in one place
//! ([`crate::render`]); the HTTP API will serialise the same values. This
//! module never writes to the store or to a cluster, and never formats.

use crate::alarm::silence::Silence;
pub use crate::cluster::executor::ServerStatus;
use crate::cluster::executor::{self, ReorgError};
use crate::config::ClusterConfig;
use crate::store::{AlarmRow, HistoryRow, Stats, Store, StoreError};
use serde::Serialize;
use std::time::Duration;

/// How many alarms a listing shows at most, newest first.
pub const ALARM_LIST_LIMIT: u32 = 200;

/// The newest alarms (only open ones with `open_only`), newest first.
pub async fn alarms(store: &Store, open_only: bool) -> Result<Vec<AlarmRow>, StoreError> {
    store.list_alarms(open_only, ALARM_LIST_LIMIT).await
}

/// The silences not over yet (with `all`, every one ever set), by number.
pub async fn silences(store: &Store, all: bool) -> Result<Vec<Silence>, StoreError> {
    store.silences(all, chrono::Utc::now()).await
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
