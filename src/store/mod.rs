//! Where results, state changes, alarms and the notification outbox are
//! kept: one [`Store`] over two backends, PostgreSQL (`postgres.rs`) and
//! embedded SQLite (`sqlite.rs`).
//!
//! The check path never calls the store directly: results go through the
//! [`writer::ResultWriter`], which batches them and spools them to disk while
//! the database is away. The alarm stage persists through the
//! `alarm::store` traits (implemented in `alarms.rs`); CLI queries call the
//! typed async methods here. This module must never log a password: URLs
//! are shown through [`mask_url`] only.

mod alarm_requests;
mod alarms;
mod feed;
mod postgres;
mod series;
mod silences;
mod sqlite;
mod timeline;

pub mod migrations;
pub mod spool;
pub mod writer;

use crate::config::{Config, Storage, StorageConfig};
use crate::plugin_output::{CheckOutput, PerfDatum};
use crate::result::CheckResult;
use crate::state::{CheckState, Transition};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;
use uuid::Uuid;

pub use alarm_requests::{ack_command, unack_command, AlarmRequest, AlarmRequestOp};
pub use alarms::{AlarmEventRow, AlarmRow};
pub use feed::{
    AuditEntry, AuditFilter, AuditRow, EventRow, FeedKind, StoredResponse, IDEMPOTENCY_TTL,
};
pub use series::{
    HistorySeries, PerfStats, SeriesBucket, ValueStats, MAX_SERIES_POINTS, SERIES_STATE_CHANGES,
};
pub use timeline::{
    ActionRunRow, AlarmEventEntry, AlarmTimeline, NotificationRow, StateChangeRow, TimelineEntry,
    TIMELINE_STATE_CHANGES,
};
pub use writer::{resume_states, ResultWriter, SubmitError, WriterOptions, WriterStats};

/// Everything that can go wrong in the store, naming what failed on what.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The `storage:` settings cannot be used.
    #[error("storage configuration: {0}")]
    Config(String),
    /// The password file could not be read.
    #[error("cannot read the PostgreSQL password from {path}: {source}")]
    PasswordFile {
        /// The `password_file`.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The password environment variable is not set.
    #[error("environment variable {0} (storage.password_env) is not set")]
    PasswordEnv(String),
    /// TLS could not be set up.
    #[error("TLS for PostgreSQL: {0}")]
    Tls(String),
    /// A PostgreSQL statement or connection failed.
    #[error("PostgreSQL {url}: {what}: {source}")]
    Postgres {
        /// The masked URL.
        url: String,
        /// What was being done.
        what: String,
        /// The driver's error.
        source: tokio_postgres::Error,
    },
    /// No connection could be had from the pool.
    #[error("PostgreSQL {url}: no connection: {source}")]
    Pool {
        /// The masked URL.
        url: String,
        /// The pool's error.
        source: deadpool_postgres::PoolError,
    },
    /// An SQLite statement failed.
    #[error("SQLite {path}: {what}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What was being done.
        what: String,
        /// The driver's error.
        source: rusqlite::Error,
    },
    /// A file (database directory, spool) could not be used.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Stored JSON could not be encoded or decoded.
    #[error("{what}: {source}")]
    Json {
        /// What was being encoded or decoded.
        what: String,
        /// The serde error.
        source: serde_json::Error,
    },
    /// A stored value is not what the schema allows.
    #[error("unexpected value in the database: {0}")]
    Corrupt(String),
    /// The operating system gave no random bytes (for the installation id).
    #[error("cannot get random bytes from the operating system: {0}")]
    Random(String),
    /// A background database task died.
    #[error("database task failed: {0}")]
    Task(String),
    /// `laxmon ack` named an alarm that is not stored.
    #[error("no alarm {0}: list them with `laxmon alarms`")]
    NoSuchAlarm(u64),
    /// `laxmon ack` named a resolved alarm.
    #[error("alarm {id} is already resolved (at {at}); nothing to acknowledge")]
    AlarmResolved {
        /// The alarm.
        id: u64,
        /// When it resolved.
        at: DateTime<Utc>,
    },
    /// `laxmon ack` named an alarm someone acknowledged before.
    #[error("alarm {id} is already acknowledged by {by} (at {at})")]
    AlreadyAcknowledged {
        /// The alarm.
        id: u64,
        /// Who acknowledged it.
        by: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// `laxmon ack --expires` asked for an expiry that is not in the future.
    #[error(
        "alarm {id}: the acknowledgement would expire at {expires}, which is not in the future"
    )]
    AckExpiresInPast {
        /// The alarm.
        id: u64,
        /// The expiry asked for.
        expires: DateTime<Utc>,
    },
    /// `laxmon unack` named an alarm that is not acknowledged.
    #[error("alarm {0} is not acknowledged; nothing to remove")]
    NotAcknowledged(u64),
    /// A silence cannot be set as asked.
    #[error("silence: {0}")]
    InvalidSilence(crate::alarm::silence::SilenceError),
    /// `laxmon silence remove` named a silence that is not stored.
    #[error("no silence {0}: list them with `laxmon silence list --all`")]
    NoSuchSilence(u64),
    /// `laxmon silence remove` named a silence that ended or was removed.
    #[error("silence {id} is already over (since {at})")]
    SilenceOver {
        /// The silence.
        id: u64,
        /// When it ended or was removed.
        at: DateTime<Utc>,
    },
}

impl StoreError {
    /// Whether retrying later may succeed (the database is away, busy or
    /// restarting), as opposed to an error in the data or the schema.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Pool { .. } | StoreError::Task(_) | StoreError::Io { .. } => true,
            StoreError::Postgres { source, .. } => match source.code() {
                None => true,
                Some(code) => {
                    let c = code.code();
                    ["08", "53", "57", "40", "58"]
                        .iter()
                        .any(|class| c.starts_with(class))
                }
            },
            StoreError::Sqlite { source, .. } => matches!(
                source.sqlite_error_code(),
                Some(
                    rusqlite::ErrorCode::DatabaseBusy
                        | rusqlite::ErrorCode::DatabaseLocked
                        | rusqlite::ErrorCode::DiskFull
                        | rusqlite::ErrorCode::SystemIoFailure
                        | rusqlite::ErrorCode::CannotOpen
                )
            ),
            _ => false,
        }
    }
}

/// One result on its way to the `results` table: a [`CheckResult`] with its
/// unique id (which makes replays idempotent) and, optionally, the check's
/// state after it (stored in `check_states` for resume).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultRecord {
    /// Unique id (UUIDv7, time-ordered), assigned once when the result is made.
    pub result_id: Uuid,
    /// The check's name.
    pub check: String,
    /// The host entry.
    pub host: String,
    /// The check's kind.
    pub kind: String,
    /// Planned start.
    pub planned: DateTime<Utc>,
    /// Actual start.
    pub started: DateTime<Utc>,
    /// Run time in milliseconds.
    pub duration_ms: f64,
    /// What the check said.
    pub output: CheckOutput,
    /// What it did to the state.
    pub transition: Transition,
    /// The check's full state after this result, for resume.
    pub check_state: Option<CheckState>,
}

impl ResultRecord {
    /// Makes the record for a finished run; `state` is the check's state after it.
    pub fn new(result: &CheckResult, state: Option<&CheckState>) -> ResultRecord {
        ResultRecord {
            result_id: Uuid::now_v7(),
            check: result.check.clone(),
            host: result.host.clone(),
            kind: result.kind.to_string(),
            planned: result.planned,
            started: result.started,
            duration_ms: result.duration.as_secs_f64() * 1000.0,
            output: result.output.clone(),
            transition: result.transition,
            check_state: state.cloned(),
        }
    }

    /// The `Change` as its serde name (`hard_problem`, ...).
    pub fn change_name(&self) -> String {
        serde_json::to_value(self.transition.change)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// Whether this result is a row in `state_changes`: the state or its
    /// type changed, or flapping started or stopped.
    pub fn is_state_change(&self) -> bool {
        let t = &self.transition;
        t.previous.state != t.current.state
            || t.previous.state_type != t.current.state_type
            || t.flap_change.is_some()
    }
}

/// Whether a batch of results may already be (partly) stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// The results may have been written before (a replay from the spool, a
    /// retry after an ambiguous failure): rows whose id exists are skipped.
    Replay,
    /// The results were never sent to the database: PostgreSQL copies them
    /// straight into `results`. Should one exist after all, the write fails
    /// as a whole (unique violation) and must be repeated as `Replay`.
    New,
}

/// One row of `laxmon history`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryRow {
    /// Actual start.
    pub started: DateTime<Utc>,
    /// Planned start.
    pub planned: DateTime<Utc>,
    /// Run time in milliseconds.
    pub duration_ms: f64,
    /// `OK`, `WARNING`, ...
    pub state: String,
    /// `SOFT` or `HARD`.
    pub state_type: String,
    /// Attempt number.
    pub attempt: i32,
    /// First line of output.
    pub output: String,
    /// Remaining lines.
    pub long_output: String,
    /// Performance data.
    pub perfdata: Vec<PerfDatum>,
}

/// Row count of one table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableRows {
    /// Table name.
    pub table: String,
    /// Rows in it: exact, or (PostgreSQL, above a million rows) the planner's estimate.
    pub rows: i64,
}

/// `laxmon db stats`: what the database holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    /// The backend and its (masked) location.
    pub database: String,
    /// Applied schema version.
    pub schema_version: i64,
    /// Rows per table.
    pub tables: Vec<TableRows>,
    /// Database size in bytes.
    pub size_bytes: i64,
    /// Start of the oldest stored result.
    pub oldest_result: Option<DateTime<Utc>>,
}

/// What [`Store::retention`] removed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RetentionReport {
    /// Results removed (SQLite) or estimated in dropped partitions (PostgreSQL).
    pub results: u64,
    /// PostgreSQL partitions dropped.
    pub partitions_dropped: Vec<String>,
    /// State changes, alarms, events, notifications and action runs removed.
    pub events: u64,
    /// Rows of the event feed (`events`) removed, by the same age.
    pub feed_events: u64,
    /// Audit entries removed, by the same age.
    pub audit: u64,
    /// Idempotency answers removed (older than [`IDEMPOTENCY_TTL`]).
    pub idempotency_keys: u64,
}

/// Which database, with its connection.
#[derive(Clone)]
enum Backend {
    Postgres(postgres::PgStore),
    Sqlite(sqlite::SqliteStore),
}

/// The store: one handle over PostgreSQL or SQLite. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    keep_results: Duration,
    keep_events: Duration,
}

macro_rules! dispatch {
    ($self:ident, $b:ident => $e:expr) => {
        match &$self.backend {
            Backend::Postgres($b) => $e,
            Backend::Sqlite($b) => $e,
        }
    };
}
pub(crate) use dispatch;

impl Store {
    /// Connects and applies pending migrations.
    pub async fn open(cfg: &StorageConfig) -> Result<Store, StoreError> {
        let store = Store::open_lazy(cfg)?;
        store.migrate().await?;
        Ok(store)
    }

    /// Prepares the store without touching the database (PostgreSQL connects
    /// on first use, migrations run on the first write): for a daemon that
    /// must start while the database is away.
    pub fn open_lazy(cfg: &StorageConfig) -> Result<Store, StoreError> {
        let backend = match &cfg.backend {
            Storage::Postgres(url) => Backend::Postgres(postgres::PgStore::new(url, cfg)?),
            Storage::Sqlite(path) => Backend::Sqlite(sqlite::SqliteStore::open(path)?),
        };
        Ok(Store {
            backend,
            keep_results: cfg.keep_results,
            keep_events: cfg.keep_events,
        })
    }

    /// The backend and its location, password masked (for logs).
    pub fn describe(&self) -> String {
        dispatch!(self, b => b.describe())
    }

    /// Applies pending migrations under a lock; returns the versions applied now.
    pub async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
        dispatch!(self, b => b.migrate().await)
    }

    /// This database's installation id: 32 hex digits of random, made once
    /// when the database was first migrated and never changed. Every
    /// notification's Message-ID and Idempotency-Key starts with it, so a
    /// fresh database or a second installation never repeats one.
    pub async fn installation_id(&self) -> Result<String, StoreError> {
        dispatch!(self, b => b.installation_id().await)
    }

    /// The highest applied migration (0 for an empty database).
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        dispatch!(self, b => b.schema_version().await)
    }

    /// Upserts the configured hosts and checks and marks the ones no longer
    /// configured as removed (their rows and history stay).
    pub async fn sync_config(&self, config: &Config) -> Result<(), StoreError> {
        dispatch!(self, b => b.sync_config(config, Utc::now()).await)
    }

    /// Writes results, their state changes and the latest check states in one
    /// transaction; a result whose id is already stored is skipped. Returns
    /// the number of new result rows.
    pub async fn write_results(&self, records: &[ResultRecord]) -> Result<u64, StoreError> {
        let refs: Vec<&ResultRecord> = records.iter().collect();
        self.write_result_refs(&refs, WriteMode::Replay).await
    }

    /// [`Store::write_results`] on borrowed records, with the duplicate
    /// check chosen by `mode` (the [`ResultWriter`] uses this).
    pub async fn write_result_refs(
        &self,
        records: &[&ResultRecord],
        mode: WriteMode,
    ) -> Result<u64, StoreError> {
        if records.is_empty() {
            return Ok(0);
        }
        dispatch!(self, b => b.write_results(records, mode).await)
    }

    /// The latest stored state of every check, for resuming.
    pub async fn load_states(&self) -> Result<Vec<(String, CheckState)>, StoreError> {
        dispatch!(self, b => b.load_states().await)
    }

    /// Results of one check started within `since` before now, oldest first.
    pub async fn history(
        &self,
        check: &str,
        since: Duration,
    ) -> Result<Vec<HistoryRow>, StoreError> {
        let from = before(Utc::now(), since);
        dispatch!(self, b => b.history(check, from).await)
    }

    /// Rows per table, database size and the oldest result.
    pub async fn stats(&self) -> Result<Stats, StoreError> {
        dispatch!(self, b => b.stats().await)
    }

    /// Drops results older than `keep_results`, events (state changes,
    /// resolved alarms, finished notifications, action runs, the event feed,
    /// audit entries) older than `keep_events` and idempotency answers older
    /// than [`IDEMPOTENCY_TTL`]; PostgreSQL also creates the next days'
    /// partitions.
    /// Call it hourly.
    pub async fn retention(&self) -> Result<RetentionReport, StoreError> {
        self.retention_at(Utc::now()).await
    }

    /// [`Store::retention`] as if it were `now`.
    pub async fn retention_at(&self, now: DateTime<Utc>) -> Result<RetentionReport, StoreError> {
        let results_before = before(now, self.keep_results);
        let events_before = before(now, self.keep_events);
        let keys_before = feed::idempotency_cutoff(now);
        dispatch!(self, b => b.retention(now, results_before, events_before, keys_before).await)
    }
}

/// A new installation id: 128 random bits from the operating system as 32
/// lower-case hex digits (the migration runners store it once, see
/// [`Store::installation_id`]).
fn new_installation_id() -> Result<String, StoreError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| StoreError::Random(e.to_string()))?;
    Ok(bytes.iter().fold(String::with_capacity(32), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    }))
}

/// For each record, whether it carries the newest state snapshot of its
/// check within the batch (only those are written to `check_states`).
pub(crate) fn latest_state_per_check(records: &[&ResultRecord]) -> Vec<bool> {
    let mut seen = std::collections::HashSet::new();
    let mut latest = vec![false; records.len()];
    for (i, r) in records.iter().enumerate().rev() {
        if r.check_state.is_some() && seen.insert(r.check.as_str()) {
            latest[i] = true;
        }
    }
    latest
}

/// `t - d`, or the earliest representable time when that is out of range.
fn before(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// `laxmon db migrate`: applies pending migrations and says what it did.
pub async fn migrate_command(cfg: &StorageConfig) -> Result<String, StoreError> {
    let store = Store::open_lazy(cfg)?;
    let applied = store.migrate().await?;
    let version = store.schema_version().await?;
    Ok(if applied.is_empty() {
        format!(
            "{}: schema up to date (version {version})\n",
            store.describe()
        )
    } else {
        format!(
            "{}: applied migrations {:?}; schema version {version}\n",
            store.describe(),
            applied
        )
    })
}

/// The tables `stats` counts, in schema order.
pub(crate) const TABLES: &[&str] = &[
    "hosts",
    "checks",
    "results",
    "state_changes",
    "check_states",
    "alarms",
    "alarm_events",
    "notifications",
    "action_runs",
    "cluster_plans",
    "plan_steps",
    "daemon_state",
    "silences",
    "alarm_requests",
    "events",
    "audit",
    "idempotency",
];

/// A connection string with any password replaced by `***`, fit for logs.
pub fn mask_url(url: &str) -> String {
    if let Some(scheme_end) = url.find("://") {
        let rest = &url[scheme_end + 3..];
        let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
        if let Some(at) = rest[..auth_end].rfind('@') {
            if let Some(colon) = rest[..at].find(':') {
                return format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &rest[..colon],
                    &rest[at..]
                );
            }
        }
        // password=... in the query string
        return mask_keyword(url);
    }
    mask_keyword(url)
}

fn mask_keyword(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("password=") {
        out.push_str(&rest[..i + "password=".len()]);
        out.push_str("***");
        let tail = &rest[i + "password=".len()..];
        let end = tail.find([' ', '&']).unwrap_or(tail.len());
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::{before, mask_url};
    use chrono::Utc;
    use std::time::Duration;

    #[test]
    fn huge_durations_do_not_overflow() {
        let far = before(Utc::now(), Duration::from_secs(u64::MAX));
        assert_eq!(far, chrono::DateTime::<Utc>::MIN_UTC);
    }

    #[test]
    fn masks_passwords() {
        assert_eq!(
            mask_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(mask_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            mask_url("postgres://u@h/db?password=x&sslmode=require"),
            "postgres://u@h/db?password=***&sslmode=require"
        );
        assert_eq!(
            mask_url("host=h password=x user=u"),
            "host=h password=*** user=u"
        );
    }
}
