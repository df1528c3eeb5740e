//! The read side: what people read about laxmon's state (alarms and their
//! timelines, a check's history and its downsampled series, the event feed,
//! the audit log, silences, the database, a cluster's live placement), as
//! typed values.
//!
//! The CLI renders these values as text or JSON in one place
//! ([`crate::render`]); the HTTP API will serialise the same values. This
//! module never writes to the store or to a cluster, and never formats.

use crate::alarm::silence::Silence;
use crate::cluster::executor::{self, ReorgError, ReorgOptions, ReorgReport};
pub use crate::cluster::executor::{ServerStatus, VmStatus};
use crate::cluster::journal::Journal;
pub use crate::cluster::journal::{JournalRun, JournalStep, LockHolder, StepProgress};
use crate::cluster::manual;
use crate::config::ClusterConfig;
use crate::store::{
    AlarmRow, AlarmTimeline, AuditFilter, AuditRow, EventRow, HistoryRow, HistorySeries, Stats,
    Store, StoreError,
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
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

/// How many journalled runs a cluster status lists, newest first.
pub const CLUSTER_RUNS_LIMIT: usize = 10;

/// A cluster's live placement: what each server says runs on it, every VM
/// with its configuration, and the cluster's recent runs.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterStatus {
    /// The cluster's name.
    pub cluster: String,
    /// Its driver (`xl`, `virsh`, `command`, `sim`).
    pub driver: String,
    /// Every server's answer, in configuration order.
    pub servers: Vec<ServerStatus>,
    /// Every configured VM (configuration order), then running VMs that are
    /// not configured (by name), each with where it runs.
    pub vms: Vec<ClusterVm>,
    /// Servers that did not answer but cannot run a VM (fenced by a
    /// reorganisation and silent since), and why.
    pub silent_but_safe: BTreeMap<String, String>,
    /// Who holds the cluster lock (a reorganisation, restore, VM restart or
    /// by-hand operation in progress), if anyone.
    pub busy: Option<LockHolder>,
    /// The newest journalled runs, newest first; an unfinished one is
    /// `running` while the lock is held, else `interrupted`.
    pub runs: Vec<JournalRun>,
}

/// One VM of a cluster, as configured and as observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterVm {
    /// The domain name.
    pub name: String,
    /// `running`, `stopped` (no server may run it), or `unknown` (it runs on
    /// no server that answered, but a server that may run it did not answer).
    pub state: &'static str,
    /// Where it runs.
    pub server: Option<String>,
    /// Memory in MB: reported by the hypervisor when it runs, else configured.
    pub memory_mb: Option<u64>,
    /// Priority; higher is more important (0 when not configured).
    pub priority: i64,
    /// Whether the cluster's `vms:` lists it.
    pub configured: bool,
    /// The server it normally runs on.
    pub home: Option<String>,
    /// The only servers it may run on; `None`: any.
    pub allowed_hosts: Option<Vec<String>>,
    /// Its anti-affinity group.
    pub anti_affinity: Option<String>,
}

impl ClusterStatus {
    /// Whether every server answered.
    pub fn all_answered(&self) -> bool {
        self.servers.iter().all(|s| s.vms.is_some())
    }
}

/// Asks every server of `cluster` what runs there (and remembers it in the
/// cluster's journal, as every observation is), with the cluster's VMs and
/// recent runs.
pub async fn cluster_status(cluster: &ClusterConfig) -> Result<ClusterStatus, ReorgError> {
    let obs = executor::status(cluster).await?;
    let journal = Journal::open(&cluster.state_dir, &cluster.name)?;
    let safe = manual::silent_but_safe(cluster, &journal, &obs, &[])?;
    let servers = executor::server_statuses(cluster, &obs);
    let unsure = servers
        .iter()
        .any(|s| s.vms.is_none() && !safe.contains_key(&s.server));
    let running: BTreeMap<&str, (&str, &VmStatus)> = servers
        .iter()
        .flat_map(|s| {
            s.vms
                .iter()
                .flatten()
                .map(move |v| (v.name.as_str(), (s.server.as_str(), v)))
        })
        .collect();
    let mut vms: Vec<ClusterVm> = cluster
        .vms
        .iter()
        .map(|c| {
            let at = running.get(c.name.as_str());
            ClusterVm {
                name: c.name.clone(),
                state: match (at, unsure) {
                    (Some(_), _) => "running",
                    (None, false) => "stopped",
                    (None, true) => "unknown",
                },
                server: at.map(|(s, _)| s.to_string()),
                memory_mb: at.and_then(|(_, v)| v.memory_mb).or(Some(c.memory_mb)),
                priority: c.priority,
                configured: true,
                home: c.home.clone(),
                allowed_hosts: c.allowed_hosts.clone(),
                anti_affinity: c.anti_affinity.clone(),
            }
        })
        .collect();
    for (name, (server, v)) in &running {
        if cluster.vm(name).is_none() {
            vms.push(ClusterVm {
                name: name.to_string(),
                state: "running",
                server: Some(server.to_string()),
                memory_mb: v.memory_mb,
                priority: 0,
                configured: false,
                home: None,
                allowed_hosts: None,
                anti_affinity: None,
            });
        }
    }
    let (busy, runs) = journalled(&journal)?;
    Ok(ClusterStatus {
        cluster: cluster.name.clone(),
        driver: cluster.driver.name().to_string(),
        servers,
        vms,
        silent_but_safe: safe,
        busy,
        runs,
    })
}

/// Who holds a cluster's lock and its newest journalled runs (as in
/// [`ClusterStatus`]), read from its journal alone, without asking any
/// server: what is still known when the servers do not answer.
pub fn cluster_journal(
    cluster: &ClusterConfig,
) -> Result<(Option<LockHolder>, Vec<JournalRun>), ReorgError> {
    let journal = Journal::open(&cluster.state_dir, &cluster.name)?;
    journalled(&journal)
}

/// The lock holder and the newest runs; an unfinished run is `running`
/// while the lock is held, else `interrupted`.
fn journalled(journal: &Journal) -> Result<(Option<LockHolder>, Vec<JournalRun>), ReorgError> {
    let busy = journal.holder();
    let mut runs = journal.runs(CLUSTER_RUNS_LIMIT)?;
    for r in runs.iter_mut().filter(|r| r.state == "unfinished") {
        r.state = if busy.is_some() {
            "running"
        } else {
            "interrupted"
        }
        .into();
    }
    Ok((busy, runs))
}

/// What a reorganisation after `failed` failed would do now, planned from
/// the live state and changing nothing (what `laxmon cluster reorg
/// --dry-run` prints). `confirmed_dead`: the server's alive check says
/// CRITICAL (matters only without a fence command, with `allow_unfenced`);
/// the report's `fencing` says whether the reorganisation would be refused.
pub async fn cluster_plan(
    cluster: &ClusterConfig,
    failed: &str,
    confirmed_dead: bool,
) -> Result<ReorgReport, ReorgError> {
    let opts = ReorgOptions {
        dry_run: true,
        confirmed_dead,
    };
    executor::reorganise(cluster, failed, &opts).await
}
