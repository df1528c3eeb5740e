//! The embedded SQLite backend: one rusqlite connection (WAL mode) behind a
//! mutex, every call run on tokio's blocking pool; migrations under
//! `BEGIN IMMEDIATE`; results by prepared single-row inserts in one
//! transaction per batch.
//!
//! Never call rusqlite from an async task directly (it blocks): go through
//! [`SqliteStore::call`]. Timestamps are stored as fixed-width RFC 3339 UTC
//! text (microseconds, `Z`) so that text order is time order.

use super::alarms::{
    lifecycle_id, AlarmEventRow, AlarmRecord, OutboxRecord, PendingRow, RunRecord,
};
use super::latest_state_per_check;
use super::migrations::SQLITE;
use super::{
    AlarmRow, HistoryRow, ResultRecord, RetentionReport, Stats, StoreError, TableRows, WriteMode,
    TABLES,
};
use crate::config::Config;
use crate::state::CheckState;
use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod api;

/// How long a statement waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The SQLite store: the connection and the file it opened.
#[derive(Clone)]
pub(super) struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    ctx: Arc<Ctx>,
    migrated: Arc<AtomicBool>,
}

/// What error messages need to name the database.
pub(super) struct Ctx {
    path: PathBuf,
}

impl Ctx {
    pub(super) fn err(
        &self,
        what: impl Into<String>,
    ) -> impl FnOnce(rusqlite::Error) -> StoreError {
        let path = self.path.clone();
        let what = what.into();
        move |source| StoreError::Sqlite { path, what, source }
    }
}

pub(super) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse_ts(s: &str) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
        })
}

pub(super) fn get_ts(r: &Row, i: usize) -> rusqlite::Result<DateTime<Utc>> {
    parse_ts(&r.get::<_, String>(i)?)
}

pub(super) fn get_opt_ts(r: &Row, i: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    r.get::<_, Option<String>>(i)?
        .map(|s| parse_ts(&s))
        .transpose()
}

pub(super) fn get_json(r: &Row, i: usize) -> rusqlite::Result<serde_json::Value> {
    let s: String = r.get(i)?;
    serde_json::from_str(&s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    })
}

pub(super) fn json_text(v: &impl serde::Serialize, what: &str) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|source| StoreError::Json {
        what: format!("encoding {what}"),
        source,
    })
}

impl SqliteStore {
    /// Opens (creating it and its directory if needed) the database file in WAL mode.
    pub(super) fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                what: "creating the database directory".into(),
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let ctx = Ctx {
            path: path.to_path_buf(),
        };
        let conn = Connection::open(path).map_err(ctx.err("opening"))?;
        // The busy timeout first: every statement below then waits for
        // another process's lock instead of failing.
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(ctx.err("setting the busy timeout"))?;
        // SQLite does not call the busy handler when switching a fresh
        // database to WAL collides with another process's first write (the
        // switch holds a read lock while it waits for the write lock), so a
        // daemon and a CLI command opening a new database together retry.
        retry_while_busy(|| conn.pragma_update(None, "journal_mode", "WAL"))
            .map_err(ctx.err("switching to WAL mode"))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(ctx.err("setting synchronous"))?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(ctx.err("enabling foreign keys"))?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            ctx: Arc::new(ctx),
            migrated: Arc::new(AtomicBool::new(false)),
        })
    }

    pub(super) fn describe(&self) -> String {
        format!("sqlite {}", self.ctx.path.display())
    }

    /// Runs `f` with the connection on the blocking pool, applying pending
    /// migrations first (once per store), so a lazily opened store works.
    pub(super) async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &Ctx) -> Result<T, StoreError> + Send + 'static,
    {
        let migrated = Arc::clone(&self.migrated);
        self.call_raw(move |conn, ctx| {
            if !migrated.load(Ordering::SeqCst) {
                migrate_conn(conn, ctx)?;
                migrated.store(true, Ordering::SeqCst);
            }
            f(conn, ctx)
        })
        .await
    }

    /// Runs `f` with the connection on the blocking pool, as it is.
    async fn call_raw<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &Ctx) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        let ctx = Arc::clone(&self.ctx);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .map_err(|_| StoreError::Task("SQLite connection mutex poisoned".into()))?;
            f(&mut guard, &ctx)
        })
        .await
        .map_err(|e| StoreError::Task(format!("SQLite call: {e}")))?
    }

    pub(super) async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
        let migrated = Arc::clone(&self.migrated);
        self.call_raw(move |conn, ctx| {
            let applied = migrate_conn(conn, ctx)?;
            migrated.store(true, Ordering::SeqCst);
            Ok(applied)
        })
        .await
    }

    pub(super) async fn installation_id(&self) -> Result<String, StoreError> {
        self.call(|conn, ctx| {
            conn.query_row("SELECT id FROM installation", [], |r| r.get(0))
                .optional()
                .map_err(ctx.err("reading the installation id"))?
                .ok_or_else(|| StoreError::Corrupt("the installation table has no row".into()))
        })
        .await
    }

    pub(super) async fn schema_version(&self) -> Result<i64, StoreError> {
        self.call_raw(|conn, ctx| {
            let exists: bool = conn
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations')",
                    [],
                    |r| r.get(0),
                )
                .map_err(ctx.err("looking for schema_migrations"))?;
            if !exists {
                return Ok(0);
            }
            conn.query_row("SELECT COALESCE(max(version), 0) FROM schema_migrations", [], |r| r.get(0))
                .map_err(ctx.err("reading the schema version"))
        })
        .await
    }

    pub(super) async fn sync_config(
        &self,
        config: &Config,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let hosts = config.hosts.clone();
        let checks = config.checks.clone();
        let now = ts(now);
        self.call(move |conn, ctx| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(ctx.err("starting config sync"))?;
            tx.execute_batch("CREATE TEMP TABLE IF NOT EXISTS configured (kind TEXT, name TEXT); DELETE FROM configured")
                .map_err(ctx.err("preparing config sync"))?;
            for h in &hosts {
                let (name, tags) = (&h.name, json_text(&h.tags, "host tags")?);
                tx.execute(
                    "INSERT INTO hosts (name, address, ssh, tags, host_check, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)
                     ON CONFLICT (name) DO UPDATE SET address = excluded.address, ssh = excluded.ssh,
                       tags = excluded.tags, host_check = excluded.host_check,
                       updated_at = excluded.updated_at, removed_at = NULL",
                    params![name, h.address, h.ssh, tags, h.host_check, now],
                )
                .map_err(ctx.err(format!("upserting host {name}")))?;
                tx.execute("INSERT INTO configured VALUES ('host', ?1)", [name])
                    .map_err(ctx.err("noting a configured host"))?;
            }
            for c in &checks {
                let (name, tags) = (&c.name, json_text(&c.tags, "check tags")?);
                tx.execute(
                    "INSERT INTO checks (name, host, kind, interval_s, retry_interval_s, max_attempts,
                       timeout_s, tags, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)
                     ON CONFLICT (name) DO UPDATE SET host = excluded.host, kind = excluded.kind,
                       interval_s = excluded.interval_s, retry_interval_s = excluded.retry_interval_s,
                       max_attempts = excluded.max_attempts, timeout_s = excluded.timeout_s,
                       tags = excluded.tags, updated_at = excluded.updated_at, removed_at = NULL",
                    params![
                        name,
                        c.host,
                        c.kind_name(),
                        c.interval.as_secs_f64(),
                        c.retry_interval.as_secs_f64(),
                        c.max_attempts,
                        c.timeout.as_secs_f64(),
                        tags,
                        now
                    ],
                )
                .map_err(ctx.err(format!("upserting check {name}")))?;
                tx.execute("INSERT INTO configured VALUES ('check', ?1)", [name])
                    .map_err(ctx.err("noting a configured check"))?;
            }
            tx.execute(
                "UPDATE hosts SET removed_at = ?1 WHERE removed_at IS NULL
                 AND name NOT IN (SELECT name FROM configured WHERE kind = 'host')",
                [&now],
            )
            .map_err(ctx.err("marking removed hosts"))?;
            tx.execute(
                "UPDATE checks SET removed_at = ?1 WHERE removed_at IS NULL
                 AND name NOT IN (SELECT name FROM configured WHERE kind = 'check')",
                [&now],
            )
            .map_err(ctx.err("marking removed checks"))?;
            tx.execute_batch("DELETE FROM configured")
                .map_err(ctx.err("finishing config sync"))?;
            tx.commit().map_err(ctx.err("committing config sync"))
        })
        .await
    }

    /// Both write modes are the same here: `ON CONFLICT DO NOTHING` costs little in SQLite.
    pub(super) async fn write_results(
        &self,
        records: &[&ResultRecord],
        _mode: WriteMode,
    ) -> Result<u64, StoreError> {
        let latest = latest_state_per_check(records);
        let rows: Vec<SqliteRow> = records
            .iter()
            .zip(latest)
            .map(|(r, latest)| SqliteRow::new(r, latest))
            .collect::<Result<_, _>>()?;
        self.call(move |conn, ctx| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(ctx.err("starting the result batch"))?;
            let mut inserted = 0u64;
            {
                let mut ins = tx
                    .prepare_cached(
                        "INSERT INTO results (result_id, check_name, host, kind, planned_at, started_at,
                           duration_ms, state, state_type, attempt, output, long_output, perfdata)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
                         ON CONFLICT (result_id) DO NOTHING",
                    )
                    .map_err(ctx.err("preparing the result insert"))?;
                let mut change = tx
                    .prepare_cached(
                        "INSERT INTO state_changes (result_id, check_name, host, at, previous_state,
                           previous_state_type, state, state_type, attempt, change, flapping, unreachable, output)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
                         ON CONFLICT (result_id) DO NOTHING",
                    )
                    .map_err(ctx.err("preparing the state change insert"))?;
                let mut state = tx
                    .prepare_cached(
                        "INSERT INTO check_states (check_name, state, updated_at) VALUES (?1, ?2, ?3)
                         ON CONFLICT (check_name) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at
                         WHERE check_states.updated_at <= excluded.updated_at",
                    )
                    .map_err(ctx.err("preparing the check state upsert"))?;
                for r in &rows {
                    inserted += ins
                        .execute(params![
                            r.result_id, r.check, r.host, r.kind, r.planned, r.started, r.duration_ms,
                            r.state, r.state_type, r.attempt, r.output, r.long_output, r.perfdata
                        ])
                        .map_err(ctx.err(format!("inserting a result of {}", r.check)))?
                        as u64;
                    if r.state_change {
                        change
                            .execute(params![
                                r.result_id, r.check, r.host, r.started, r.previous_state,
                                r.previous_state_type, r.state, r.state_type, r.attempt, r.change,
                                r.flapping, r.unreachable, r.output
                            ])
                            .map_err(ctx.err(format!("inserting a state change of {}", r.check)))?;
                    }
                    if let Some(s) = &r.check_state {
                        state
                            .execute(params![r.check, s, r.started])
                            .map_err(ctx.err(format!("upserting the state of {}", r.check)))?;
                    }
                }
            }
            tx.commit().map_err(ctx.err("committing the result batch"))?;
            Ok(inserted)
        })
        .await
    }

    pub(super) async fn load_states(&self) -> Result<Vec<(String, CheckState)>, StoreError> {
        self.call(|conn, ctx| {
            let mut stmt = conn
                .prepare("SELECT check_name, state FROM check_states ORDER BY check_name")
                .map_err(ctx.err("loading check states"))?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .map_err(ctx.err("loading check states"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(ctx.err("loading check states"))?;
            rows.into_iter()
                .map(|(name, text)| {
                    let state = serde_json::from_str(&text).map_err(|source| StoreError::Json {
                        what: format!("decoding the stored state of {name}"),
                        source,
                    })?;
                    Ok((name, state))
                })
                .collect()
        })
        .await
    }

    pub(super) async fn history(
        &self,
        check: &str,
        from: DateTime<Utc>,
    ) -> Result<Vec<HistoryRow>, StoreError> {
        let check = check.to_string();
        self.call(move |conn, ctx| {
            let mut stmt = conn
                .prepare(
                    "SELECT started_at, planned_at, duration_ms, state, state_type, attempt, output,
                            long_output, perfdata
                     FROM results WHERE check_name = ?1 AND started_at >= ?2
                     ORDER BY started_at, id",
                )
                .map_err(ctx.err("preparing the history query"))?;
            let rows = stmt
                .query_map(params![check, ts(from)], |r| {
                    let perf = get_json(r, 8)?;
                    Ok((
                        HistoryRow {
                            started: get_ts(r, 0)?,
                            planned: get_ts(r, 1)?,
                            duration_ms: r.get(2)?,
                            state: r.get(3)?,
                            state_type: r.get(4)?,
                            attempt: r.get(5)?,
                            output: r.get(6)?,
                            long_output: r.get(7)?,
                            perfdata: Vec::new(),
                        },
                        perf,
                    ))
                })
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(ctx.err(format!("reading the history of {check}")))?;
            rows.into_iter()
                .map(|(mut row, perf)| {
                    row.perfdata =
                        serde_json::from_value(perf).map_err(|source| StoreError::Json {
                            what: format!("decoding perfdata of {check}"),
                            source,
                        })?;
                    Ok(row)
                })
                .collect()
        })
        .await
    }

    pub(super) async fn stats(&self) -> Result<Stats, StoreError> {
        let version = self.schema_version().await?;
        let database = self.describe();
        self.call(move |conn, ctx| {
            let mut tables = Vec::new();
            for t in TABLES {
                let rows: i64 = conn
                    .query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))
                    .map_err(ctx.err(format!("counting {t}")))?;
                tables.push(TableRows {
                    table: t.to_string(),
                    rows,
                });
            }
            let size: i64 = conn
                .query_row(
                    "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
                    [],
                    |r| r.get(0),
                )
                .map_err(ctx.err("reading the database size"))?;
            let oldest: Option<String> = conn
                .query_row("SELECT min(started_at) FROM results", [], |r| r.get(0))
                .map_err(ctx.err("finding the oldest result"))?;
            let oldest_result = oldest
                .map(|s| parse_ts(&s))
                .transpose()
                .map_err(ctx.err("decoding the oldest result time"))?;
            Ok(Stats {
                database,
                schema_version: version,
                tables,
                size_bytes: size,
                oldest_result,
            })
        })
        .await
    }

    pub(super) async fn retention(
        &self,
        _now: DateTime<Utc>,
        results_before: DateTime<Utc>,
        events_before: DateTime<Utc>,
        keys_before: DateTime<Utc>,
    ) -> Result<RetentionReport, StoreError> {
        let (rb, eb, kb) = (ts(results_before), ts(events_before), ts(keys_before));
        self.call(move |conn, ctx| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(ctx.err("starting retention"))?;
            let results = tx
                .execute("DELETE FROM results WHERE started_at < ?1", [&rb])
                .map_err(ctx.err("deleting old results"))? as u64;
            let mut events = 0u64;
            for (sql, what) in [
                (
                    "DELETE FROM state_changes WHERE at < ?1",
                    "deleting old state changes",
                ),
                (
                    "DELETE FROM alarms WHERE resolved_at < ?1",
                    "deleting old alarms",
                ),
                (
                    "DELETE FROM notifications WHERE status <> 'pending' AND created_at < ?1",
                    "deleting old notifications",
                ),
                (
                    "DELETE FROM action_runs WHERE started_at < ?1",
                    "deleting old action runs",
                ),
                (
                    "DELETE FROM cluster_plans WHERE finished_at < ?1",
                    "deleting old plans",
                ),
            ] {
                events += tx.execute(sql, [&eb]).map_err(ctx.err(what))? as u64;
            }
            let count = |sql: &str, before: &str, what: &str| {
                tx.execute(sql, [before])
                    .map(|n| n as u64)
                    .map_err(ctx.err(what))
            };
            let feed_events = count(
                "DELETE FROM events WHERE at < ?1",
                &eb,
                "deleting old events",
            )?;
            let audit = count(
                "DELETE FROM audit WHERE at < ?1",
                &eb,
                "deleting old audit entries",
            )?;
            let idempotency_keys = count(
                "DELETE FROM idempotency WHERE at < ?1",
                &kb,
                "deleting expired idempotency keys",
            )?;
            tx.commit().map_err(ctx.err("committing retention"))?;
            Ok(RetentionReport {
                results,
                partitions_dropped: Vec::new(),
                events,
                feed_events,
                audit,
                idempotency_keys,
            })
        })
        .await
    }

    /// Runs one statement with owned parameters.
    pub(super) async fn exec(
        &self,
        what: String,
        sql: &'static str,
        values: Vec<rusqlite::types::Value>,
    ) -> Result<u64, StoreError> {
        self.call(move |conn, ctx| {
            conn.execute(sql, rusqlite::params_from_iter(values))
                .map(|n| n as u64)
                .map_err(ctx.err(what))
        })
        .await
    }
}

/// Runs `op` again, with a growing pause, while SQLite answers "busy" or
/// "locked", for up to [`BUSY_TIMEOUT`]; returns its last outcome. Only for
/// the few set-up statements the busy handler does not cover; it blocks the
/// calling thread.
fn retry_while_busy<T>(mut op: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    let mut pause = Duration::from_millis(5);
    loop {
        match op() {
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                ) && std::time::Instant::now() + pause < deadline =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(200));
            }
            outcome => return outcome,
        }
    }
}

/// Applies pending migrations inside `BEGIN IMMEDIATE` (which two
/// processes cannot hold at once); returns the versions applied now.
fn migrate_conn(conn: &mut Connection, ctx: &Ctx) -> Result<Vec<i64>, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(ctx.err("taking the migration lock (BEGIN IMMEDIATE)"))?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
                version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
    )
    .map_err(ctx.err("creating schema_migrations"))?;
    let mut applied = Vec::new();
    for m in SQLITE {
        let done: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = ?1)",
                [m.version],
                |r| r.get(0),
            )
            .map_err(ctx.err("reading schema_migrations"))?;
        if done {
            continue;
        }
        tx.execute_batch(m.sql)
            .map_err(ctx.err(format!("applying migration {} ({})", m.version, m.name)))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            params![m.version, m.name, ts(Utc::now())],
        )
        .map_err(ctx.err(format!("recording migration {}", m.version)))?;
        tracing::info!(version = m.version, name = m.name, db = %ctx.path.display(), "applied migration");
        applied.push(m.version);
    }
    tx.execute(
        "INSERT INTO installation (single, id, created_at) VALUES (1, ?1, ?2)
         ON CONFLICT (single) DO NOTHING",
        params![super::new_installation_id()?, ts(Utc::now())],
    )
    .map_err(ctx.err("making the installation id"))?;
    tx.commit().map_err(ctx.err("committing migrations"))?;
    Ok(applied)
}

/// The columns of [`AlarmRow`], in [`alarm_row_from`]'s order.
const ALARM_ROW_COLS: &str = "id, check_name, host, state, opened_at, resolved_at, acknowledged_by,
    acknowledged_at, ack_comment, summary, suppressed, escalation_level, detail";

/// The lifecycle's persistence (see `alarms.rs` for what goes where).
impl SqliteStore {
    pub(super) async fn save_alarm(&self, a: AlarmRecord) -> Result<(), StoreError> {
        let detail = json_text(&a.detail, "an alarm")?;
        let events = a
            .events
            .iter()
            .map(|e| {
                Ok((
                    ts(e.at),
                    e.kind.clone(),
                    json_text(&e.detail, "an alarm event")?,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.call(move |conn, ctx| {
            let what = |w: &str| format!("{w} alarm {} of {}", a.id, a.check);
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(ctx.err(what("starting to save")))?;
            if a.resolved.is_none() {
                // The lifecycle says this is the check's open alarm: any other
                // still open here is stale (a crash between saves) and ends when
                // this one opened (never before it opened itself).
                tx.execute(
                    "UPDATE alarms SET resolved_at = max(opened_at, ?3)
                     WHERE check_name = ?1 AND resolved_at IS NULL AND id <> ?2",
                    params![a.check, a.id, ts(a.opened)],
                )
                .map_err(ctx.err(what("resolving stale open alarms before")))?;
            }
            let (ack_at, ack_by, ack_comment) = match &a.ack {
                Some((at, by, comment)) => (Some(ts(*at)), Some(by.clone()), Some(comment.clone())),
                None => (None, None, None),
            };
            tx.execute(
                "INSERT INTO alarms (id, check_name, host, opened_at, resolved_at, state, severity, summary,
                    acknowledged_at, acknowledged_by, ack_comment, escalation_level, last_notified_at,
                    suppressed, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
                 ON CONFLICT (id) DO UPDATE SET
                    check_name = excluded.check_name, host = excluded.host,
                    opened_at = excluded.opened_at, resolved_at = excluded.resolved_at,
                    state = excluded.state, severity = excluded.severity, summary = excluded.summary,
                    acknowledged_at = excluded.acknowledged_at,
                    acknowledged_by = excluded.acknowledged_by, ack_comment = excluded.ack_comment,
                    escalation_level = excluded.escalation_level,
                    last_notified_at = excluded.last_notified_at,
                    suppressed = excluded.suppressed, detail = excluded.detail",
                params![
                    a.id,
                    a.check,
                    a.host,
                    ts(a.opened),
                    a.resolved.map(ts),
                    a.state,
                    a.summary,
                    ack_at,
                    ack_by,
                    ack_comment,
                    a.escalation_level,
                    a.last_notified.map(ts),
                    a.suppressed,
                    detail,
                ],
            )
            .map_err(ctx.err(what("saving")))?;
            let stored: i64 = tx
                .query_row(
                    "SELECT count(*) FROM alarm_events WHERE alarm_id = ?1",
                    [a.id],
                    |r| r.get(0),
                )
                .map_err(ctx.err(what("counting the events of")))?;
            let stored = usize::try_from(stored).unwrap_or(0);
            if stored < events.len() {
                let mut insert = tx
                    .prepare("INSERT INTO alarm_events (alarm_id, at, kind, detail) VALUES (?1, ?2, ?3, ?4)")
                    .map_err(ctx.err("preparing to add alarm events"))?;
                for (at, kind, detail) in &events[stored..] {
                    insert
                        .execute(params![a.id, at, kind, detail])
                        .map_err(ctx.err(what(&format!("adding event {kind} to"))))?;
                }
            }
            tx.commit().map_err(ctx.err(what("committing")))
        })
        .await
    }

    pub(super) async fn save_action_run(&self, r: RunRecord) -> Result<(), StoreError> {
        let argv = json_text(&r.argv, "an action's argv")?;
        self.call(move |conn, ctx| {
            conn.execute(
                "INSERT INTO action_runs (alarm_id, action_key, action, argv, started_at, duration_ms,
                    exit_status, timed_out, output, error)
                 VALUES ((SELECT id FROM alarms WHERE id = ?1), ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    r.alarm_id,
                    r.key,
                    r.action,
                    argv,
                    ts(r.started),
                    r.duration_ms,
                    r.exit_status,
                    r.timed_out,
                    r.output,
                    r.error,
                ],
            )
            .map_err(ctx.err(format!("recording action run {} ({})", r.key, r.action)))?;
            Ok(())
        })
        .await
    }

    pub(super) async fn put_state(
        &self,
        key: &str,
        value: serde_json::Value,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let value = json_text(&value, &format!("daemon state {key}"))?;
        self.exec(
            format!("saving daemon state {key}"),
            "INSERT INTO daemon_state (key, value, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            vec![key.to_string().into(), value.into(), ts(at).into()],
        )
        .await
        .map(drop)
    }

    pub(super) async fn get_state(
        &self,
        key: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let key = key.to_string();
        self.call(move |conn, ctx| {
            conn.query_row(
                "SELECT value FROM daemon_state WHERE key = ?1",
                [&key],
                |r| get_json(r, 0),
            )
            .optional()
            .map_err(ctx.err(format!("reading daemon state {key}")))
        })
        .await
    }

    pub(super) async fn outbox_enqueue(&self, n: OutboxRecord) -> Result<bool, StoreError> {
        let payload = json_text(&n.payload, "an outbox item")?;
        let inserted = self
            .exec(
                format!("enqueueing notification {}", n.key),
                "INSERT INTO notifications (alarm_id, contact, channel, idempotency_key, payload,
                    status, attempts, next_attempt_at, created_at)
                 VALUES ((SELECT id FROM alarms WHERE id = ?1), ?2, ?3, ?4, ?5, 'pending', ?6, ?7, ?8)
                 ON CONFLICT (idempotency_key) DO NOTHING",
                vec![
                    n.alarm_id.into(),
                    n.contact.into(),
                    n.channel.into(),
                    n.key.into(),
                    payload.into(),
                    n.attempts.into(),
                    ts(n.next_attempt).into(),
                    ts(n.created).into(),
                ],
            )
            .await?;
        Ok(inserted == 1)
    }

    pub(super) async fn outbox_pending(&self) -> Result<Vec<PendingRow>, StoreError> {
        self.call(|conn, ctx| {
            let mut stmt = conn
                .prepare(
                    "SELECT payload, attempts, next_attempt_at, last_error FROM notifications
                     WHERE status = 'pending' ORDER BY created_at, id",
                )
                .map_err(ctx.err("listing pending notifications"))?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(PendingRow {
                        payload: get_json(r, 0)?,
                        attempts: r.get(1)?,
                        next_attempt: get_ts(r, 2)?,
                        last_error: r.get(3)?,
                    })
                })
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(ctx.err("listing pending notifications"))?;
            Ok(rows)
        })
        .await
    }

    pub(super) async fn outbox_mark_sent(
        &self,
        key: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.exec(
            format!("marking notification {key} sent"),
            "UPDATE notifications SET status = 'sent', sent_at = ?2, last_error = NULL
             WHERE idempotency_key = ?1",
            vec![key.to_string().into(), ts(at).into()],
        )
        .await
        .map(drop)
    }

    pub(super) async fn outbox_mark_failed(
        &self,
        key: &str,
        attempts: i32,
        error: &str,
        next: Option<DateTime<Utc>>,
        next_json: Option<serde_json::Value>,
    ) -> Result<(), StoreError> {
        let status = if next.is_some() { "pending" } else { "failed" };
        let text = |v: Option<String>| -> rusqlite::types::Value {
            v.map_or(rusqlite::types::Value::Null, Into::into)
        };
        let next_json = next_json.and_then(|v| v.as_str().map(str::to_string));
        self.exec(
            format!("marking notification {key} failed"),
            "UPDATE notifications SET status = ?2, attempts = ?3, last_error = ?4,
                next_attempt_at = COALESCE(?5, next_attempt_at),
                payload = json_set(payload, '$.attempts', ?3, '$.last_error', ?4,
                    '$.next_attempt', COALESCE(?6, json_extract(payload, '$.next_attempt')))
             WHERE idempotency_key = ?1 AND status <> 'sent'",
            vec![
                key.to_string().into(),
                status.to_string().into(),
                attempts.into(),
                error.to_string().into(),
                text(next.map(ts)),
                text(next_json),
            ],
        )
        .await
        .map(drop)
    }

    pub(super) async fn list_alarms(
        &self,
        open_only: bool,
        limit: i64,
    ) -> Result<Vec<AlarmRow>, StoreError> {
        self.call(move |conn, ctx| {
            let filter = if open_only {
                "WHERE resolved_at IS NULL"
            } else {
                ""
            };
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {ALARM_ROW_COLS} FROM alarms {filter}
                     ORDER BY opened_at DESC, id DESC LIMIT ?1"
                ))
                .map_err(ctx.err("listing alarms"))?;
            let rows = stmt
                .query_map([limit], alarm_row_from)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(ctx.err("listing alarms"))?;
            rows.into_iter().collect()
        })
        .await
    }

    pub(super) async fn alarm_row(&self, id: i64) -> Result<Option<AlarmRow>, StoreError> {
        self.call(move |conn, ctx| {
            conn.query_row(
                &format!("SELECT {ALARM_ROW_COLS} FROM alarms WHERE id = ?1"),
                [id],
                alarm_row_from,
            )
            .optional()
            .map_err(ctx.err(format!("reading alarm {id}")))?
            .transpose()
        })
        .await
    }

    pub(super) async fn alarm_events(&self, id: i64) -> Result<Vec<AlarmEventRow>, StoreError> {
        self.call(move |conn, ctx| {
            let mut stmt = conn
                .prepare(
                    "SELECT at, kind, detail FROM alarm_events WHERE alarm_id = ?1 ORDER BY at, id",
                )
                .map_err(ctx.err("listing alarm events"))?;
            let rows = stmt
                .query_map([id], |r| {
                    Ok(AlarmEventRow {
                        at: get_ts(r, 0)?,
                        kind: r.get(1)?,
                        detail: get_json(r, 2)?,
                    })
                })
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(ctx.err(format!("listing events of alarm {id}")))?;
            Ok(rows)
        })
        .await
    }
}

/// One `alarms` row; the outer error is the driver's, the inner a bad id.
fn alarm_row_from(r: &Row) -> rusqlite::Result<Result<AlarmRow, StoreError>> {
    let detail = r
        .get::<_, Option<String>>(12)?
        .map(|s| {
            serde_json::from_str(&s).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    12,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })
        })
        .transpose()?;
    let id: i64 = r.get(0)?;
    let row = AlarmRow {
        id: 0,
        check: r.get(1)?,
        host: r.get(2)?,
        state: r.get(3)?,
        opened: get_ts(r, 4)?,
        resolved: get_opt_ts(r, 5)?,
        ack_by: r.get(6)?,
        ack_at: get_opt_ts(r, 7)?,
        ack_comment: r.get(8)?,
        ack_expires: None, // from `detail`, in store::alarms
        ack_sticky: None,
        summary: r.get(9)?,
        suppressed: r.get(10)?,
        suppressed_by: None, // from `detail`, in store::alarms
        escalation_level: r.get(11)?,
        detail,
    };
    Ok(lifecycle_id(id).map(|id| AlarmRow { id, ..row }))
}

/// One result prepared for SQLite's parameters.
struct SqliteRow {
    result_id: String,
    check: String,
    host: String,
    kind: String,
    planned: String,
    started: String,
    duration_ms: f64,
    state: &'static str,
    state_type: &'static str,
    attempt: u32,
    output: String,
    long_output: String,
    perfdata: String,
    previous_state: &'static str,
    previous_state_type: &'static str,
    change: String,
    flapping: bool,
    unreachable: bool,
    state_change: bool,
    check_state: Option<String>,
}

impl SqliteRow {
    fn new(r: &ResultRecord, latest: bool) -> Result<SqliteRow, StoreError> {
        let t = &r.transition;
        Ok(SqliteRow {
            result_id: r.result_id.to_string(),
            check: r.check.clone(),
            host: r.host.clone(),
            kind: r.kind.clone(),
            planned: ts(r.planned),
            started: ts(r.started),
            duration_ms: r.duration_ms,
            state: t.current.state.as_str(),
            state_type: t.current.state_type.as_str(),
            attempt: t.current.attempt,
            output: r.output.output.clone(),
            long_output: r.output.long_output.clone(),
            perfdata: json_text(&r.output.perfdata, "perfdata")?,
            previous_state: t.previous.state.as_str(),
            previous_state_type: t.previous.state_type.as_str(),
            change: r.change_name(),
            flapping: t.flapping,
            unreachable: t.unreachable,
            state_change: r.is_state_change(),
            check_state: r
                .check_state
                .as_ref()
                .filter(|_| latest)
                .map(|s| json_text(s, "the check state"))
                .transpose()?,
        })
    }
}
