//! The PostgreSQL backend: a deadpool pool of tokio-postgres connections
//! (TLS via rustls when asked), migrations under `pg_advisory_xact_lock`,
//! new results by binary COPY straight into the day-partitioned `results`
//! table, replays by binary COPY into a per-connection staging table and
//! `INSERT .. SELECT .. ON CONFLICT DO NOTHING`.
//!
//! Never log the connection string itself (only [`super::mask_url`]'s form),
//! and never hold a pooled connection across an await that waits for
//! anything but this database.

use super::alarms::{
    lifecycle_id, AlarmEventRow, AlarmRecord, OutboxRecord, PendingRow, RunRecord,
};
use super::latest_state_per_check;
use super::migrations::{Migration, POSTGRES};
use super::{
    AlarmRow, HistoryRow, ResultRecord, RetentionReport, Stats, StoreError, TableRows, WriteMode,
    TABLES,
};
use crate::config::{Config, StorageConfig, TlsMode};
use crate::state::CheckState;
use chrono::{DateTime, Days, NaiveDate, Utc};
use deadpool_postgres::{Hook, HookError, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use std::collections::HashSet;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::config::SslMode;
use tokio_postgres::types::{Json, ToSql, Type};
use tokio_postgres::Row;

mod api;

/// Advisory lock key for migrations and partition creation ("laxmon" in ASCII).
const LOCK_KEY: i64 = 0x6c61_786d_6f6e;

/// Pool size: the writer uses one connection, the rest serve alarms and the CLI.
const POOL_SIZE: usize = 8;

/// Connect, wait-for-a-connection and recycle timeouts (deadpool's are all `None` by default).
const POOL_TIMEOUT: Duration = Duration::from_secs(5);

/// Days of partitions created ahead of today.
const PARTITIONS_AHEAD: u64 = 3;

/// The staging table every pooled connection gets once, for COPY.
const STAGE_SQL: &str = "CREATE TEMP TABLE IF NOT EXISTS results_stage (
    ord integer NOT NULL, result_id uuid NOT NULL, check_name text NOT NULL, host text NOT NULL,
    kind text NOT NULL, planned_at timestamptz NOT NULL, started_at timestamptz NOT NULL,
    duration_ms double precision NOT NULL, state text NOT NULL, state_type text NOT NULL,
    attempt integer NOT NULL, output text NOT NULL, long_output text NOT NULL, perfdata jsonb NOT NULL,
    previous_state text NOT NULL, previous_state_type text NOT NULL, change text NOT NULL,
    flapping boolean NOT NULL, unreachable boolean NOT NULL, state_change boolean NOT NULL,
    check_state jsonb
) ON COMMIT DELETE ROWS";

const STAGE_COPY: &str = "COPY results_stage (ord, result_id, check_name, host, kind, planned_at, \
    started_at, duration_ms, state, state_type, attempt, output, long_output, perfdata, previous_state, \
    previous_state_type, change, flapping, unreachable, state_change, check_state) FROM STDIN BINARY";

const STAGE_TYPES: &[Type] = &[
    Type::INT4,
    Type::UUID,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TIMESTAMPTZ,
    Type::TIMESTAMPTZ,
    Type::FLOAT8,
    Type::TEXT,
    Type::TEXT,
    Type::INT4,
    Type::TEXT,
    Type::TEXT,
    Type::JSONB,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::BOOL,
    Type::BOOL,
    Type::BOOL,
    Type::JSONB,
];

const RESULTS_COPY: &str =
    "COPY results (result_id, check_name, host, kind, planned_at, started_at, \
    duration_ms, state, state_type, attempt, output, long_output, perfdata) FROM STDIN BINARY";

const RESULTS_TYPES: &[Type] = &[
    Type::UUID,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TIMESTAMPTZ,
    Type::TIMESTAMPTZ,
    Type::FLOAT8,
    Type::TEXT,
    Type::TEXT,
    Type::INT4,
    Type::TEXT,
    Type::TEXT,
    Type::JSONB,
];

const STAGE_APPLY: &str = "
INSERT INTO results (result_id, check_name, host, kind, planned_at, started_at, duration_ms, state,
                     state_type, attempt, output, long_output, perfdata)
SELECT result_id, check_name, host, kind, planned_at, started_at, duration_ms, state, state_type,
       attempt, output, long_output, perfdata
FROM results_stage ORDER BY ord
ON CONFLICT DO NOTHING";

const STAGE_CHANGES: &str = "
INSERT INTO state_changes (result_id, check_name, host, at, previous_state, previous_state_type,
                           state, state_type, attempt, change, flapping, unreachable, output)
SELECT result_id, check_name, host, started_at, previous_state, previous_state_type, state,
       state_type, attempt, change, flapping, unreachable, output
FROM results_stage WHERE state_change ORDER BY ord
ON CONFLICT (result_id) DO NOTHING";

const STAGE_STATES: &str = "
INSERT INTO check_states (check_name, state, updated_at)
SELECT DISTINCT ON (check_name) check_name, check_state, started_at
FROM results_stage WHERE check_state IS NOT NULL ORDER BY check_name, ord DESC
ON CONFLICT (check_name) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at
WHERE check_states.updated_at <= excluded.updated_at";

/// PostgreSQL store: the pool and what it has already made sure of.
#[derive(Clone)]
pub(super) struct PgStore {
    pool: Pool,
    url: String,
    migrated: Arc<AtomicBool>,
    partitions: Arc<Mutex<HashSet<NaiveDate>>>,
}

impl PgStore {
    /// Builds the pool; connects nothing yet.
    pub(super) fn new(url: &str, cfg: &StorageConfig) -> Result<PgStore, StoreError> {
        let masked = super::mask_url(url);
        let mut pg = tokio_postgres::Config::from_str(url)
            .map_err(|e| StoreError::Config(format!("invalid PostgreSQL URL {masked}: {e}")))?;
        if let Some(password) = read_password(cfg)? {
            pg.password(password);
        }
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(POOL_TIMEOUT);
        }
        pg.keepalives(true);
        pg.keepalives_idle(Duration::from_secs(30));
        pg.application_name("laxmon");
        let mgr_cfg = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match cfg.tls {
            TlsMode::Disable => {
                pg.ssl_mode(SslMode::Disable);
                Manager::from_config(pg, tokio_postgres::NoTls, mgr_cfg)
            }
            mode => {
                pg.ssl_mode(if mode == TlsMode::Require {
                    SslMode::Require
                } else {
                    SslMode::Prefer
                });
                let tls = tls_connector(cfg)?;
                Manager::from_config(pg, tls, mgr_cfg)
            }
        };
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .wait_timeout(Some(POOL_TIMEOUT))
            .create_timeout(Some(POOL_TIMEOUT))
            .recycle_timeout(Some(POOL_TIMEOUT))
            .runtime(Runtime::Tokio1)
            .post_create(Hook::async_fn(|client, _| {
                Box::pin(async move {
                    client
                        .batch_execute(STAGE_SQL)
                        .await
                        .map_err(HookError::Backend)
                })
            }))
            .build()
            .map_err(|e| StoreError::Config(format!("PostgreSQL pool for {masked}: {e}")))?;
        Ok(PgStore {
            pool,
            url: masked,
            migrated: Arc::new(AtomicBool::new(false)),
            partitions: Arc::new(Mutex::new(HashSet::new())),
        })
    }

    pub(super) fn describe(&self) -> String {
        format!("postgres {}", self.url)
    }

    pub(super) fn err(
        &self,
        what: impl Into<String>,
    ) -> impl FnOnce(tokio_postgres::Error) -> StoreError {
        let url = self.url.clone();
        let what = what.into();
        move |source| StoreError::Postgres { url, what, source }
    }

    pub(super) async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|source| StoreError::Pool {
            url: self.url.clone(),
            source,
        })
    }

    pub(super) async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(self.err("starting the migration transaction"))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
            .await
            .map_err(self.err("taking the migration lock"))?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version bigint PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await
        .map_err(self.err("creating schema_migrations"))?;
        let done: HashSet<i64> = tx
            .query("SELECT version FROM schema_migrations", &[])
            .await
            .map_err(self.err("reading schema_migrations"))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut applied = Vec::new();
        for Migration { version, name, sql } in POSTGRES {
            if done.contains(version) {
                continue;
            }
            tx.batch_execute(sql)
                .await
                .map_err(self.err(format!("applying migration {version} ({name})")))?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                &[version, name],
            )
            .await
            .map_err(self.err(format!("recording migration {version}")))?;
            tracing::info!(version, name, db = %self.url, "applied migration");
            applied.push(*version);
        }
        tx.execute(
            "INSERT INTO installation (id) VALUES ($1) ON CONFLICT DO NOTHING",
            &[&super::new_installation_id()?],
        )
        .await
        .map_err(self.err("making the installation id"))?;
        tx.commit()
            .await
            .map_err(self.err("committing migrations"))?;
        drop(client);
        self.migrated.store(true, Ordering::SeqCst);
        let today = Utc::now().date_naive();
        let days: Vec<NaiveDate> = (0..=PARTITIONS_AHEAD)
            .filter_map(|d| today.checked_add_days(Days::new(d)))
            .collect();
        self.ensure_partitions(&days).await?;
        Ok(applied)
    }

    pub(super) async fn ensure_migrated(&self) -> Result<(), StoreError> {
        if !self.migrated.load(Ordering::SeqCst) {
            self.migrate().await?;
        }
        Ok(())
    }

    pub(super) async fn installation_id(&self) -> Result<String, StoreError> {
        self.ensure_migrated().await?;
        let client = self.client().await?;
        client
            .query_opt("SELECT id FROM installation", &[])
            .await
            .map_err(self.err("reading the installation id"))?
            .map(|r| r.get(0))
            .ok_or_else(|| StoreError::Corrupt("the installation table has no row".into()))
    }

    pub(super) async fn schema_version(&self) -> Result<i64, StoreError> {
        let client = self.client().await?;
        let exists: bool = client
            .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
            .await
            .map_err(self.err("looking for schema_migrations"))?
            .get(0);
        if !exists {
            return Ok(0);
        }
        let v: Option<i64> = client
            .query_one("SELECT max(version) FROM schema_migrations", &[])
            .await
            .map_err(self.err("reading the schema version"))?
            .get(0);
        Ok(v.unwrap_or(0))
    }

    /// Creates the day partitions of `results` that are missing.
    async fn ensure_partitions(&self, days: &[NaiveDate]) -> Result<(), StoreError> {
        let missing: Vec<NaiveDate> = {
            let known = self
                .partitions
                .lock()
                .map_err(|_| StoreError::Task("partition cache poisoned".into()))?;
            let mut m: Vec<NaiveDate> = days
                .iter()
                .filter(|d| !known.contains(d))
                .copied()
                .collect();
            m.sort();
            m.dedup();
            m
        };
        if missing.is_empty() {
            return Ok(());
        }
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(self.err("starting partition creation"))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
            .await
            .map_err(self.err("taking the partition lock"))?;
        for day in &missing {
            let next = day.succ_opt().unwrap_or(*day);
            let sql = format!(
                "CREATE TABLE IF NOT EXISTS {} PARTITION OF results FOR VALUES FROM ('{} 00:00:00+00') TO ('{} 00:00:00+00')",
                partition_name(*day),
                day.format("%Y-%m-%d"),
                next.format("%Y-%m-%d")
            );
            tx.batch_execute(&sql)
                .await
                .map_err(self.err(format!("creating partition {}", partition_name(*day))))?;
        }
        tx.commit()
            .await
            .map_err(self.err("committing partition creation"))?;
        let mut known = self
            .partitions
            .lock()
            .map_err(|_| StoreError::Task("partition cache poisoned".into()))?;
        known.extend(missing);
        Ok(())
    }

    pub(super) async fn sync_config(
        &self,
        config: &Config,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.ensure_migrated().await?;
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(self.err("starting config sync"))?;
        for h in &config.hosts {
            let tags = serde_json::json!(h.tags);
            tx.execute(
                "INSERT INTO hosts (name, address, ssh, tags, host_check, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $6)
                 ON CONFLICT (name) DO UPDATE SET address = excluded.address, ssh = excluded.ssh,
                   tags = excluded.tags, host_check = excluded.host_check,
                   updated_at = excluded.updated_at, removed_at = NULL",
                &[&h.name, &h.address, &h.ssh, &tags, &h.host_check, &now],
            )
            .await
            .map_err(self.err(format!("upserting host {}", h.name)))?;
        }
        let names: Vec<&str> = config.hosts.iter().map(|h| h.name.as_str()).collect();
        tx.execute(
            "UPDATE hosts SET removed_at = $2 WHERE removed_at IS NULL AND NOT (name = ANY($1))",
            &[&names, &now],
        )
        .await
        .map_err(self.err("marking removed hosts"))?;
        for c in &config.checks {
            let tags = serde_json::json!(c.tags);
            let max_attempts = i32::try_from(c.max_attempts).unwrap_or(i32::MAX);
            tx.execute(
                "INSERT INTO checks (name, host, kind, interval_s, retry_interval_s, max_attempts,
                   timeout_s, tags, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
                 ON CONFLICT (name) DO UPDATE SET host = excluded.host, kind = excluded.kind,
                   interval_s = excluded.interval_s, retry_interval_s = excluded.retry_interval_s,
                   max_attempts = excluded.max_attempts, timeout_s = excluded.timeout_s,
                   tags = excluded.tags, updated_at = excluded.updated_at, removed_at = NULL",
                &[
                    &c.name,
                    &c.host,
                    &c.kind_name(),
                    &c.interval.as_secs_f64(),
                    &c.retry_interval.as_secs_f64(),
                    &max_attempts,
                    &c.timeout.as_secs_f64(),
                    &tags,
                    &now,
                ],
            )
            .await
            .map_err(self.err(format!("upserting check {}", c.name)))?;
        }
        let names: Vec<&str> = config.checks.iter().map(|c| c.name.as_str()).collect();
        tx.execute(
            "UPDATE checks SET removed_at = $2 WHERE removed_at IS NULL AND NOT (name = ANY($1))",
            &[&names, &now],
        )
        .await
        .map_err(self.err("marking removed checks"))?;
        tx.commit()
            .await
            .map_err(self.err("committing config sync"))
    }

    /// Writes a batch in one transaction. `Replay`: everything through the
    /// staging table and `INSERT .. ON CONFLICT DO NOTHING`. `New`: binary
    /// COPY straight into `results`; only state changes and the newest state
    /// per check go through the staging table.
    pub(super) async fn write_results(
        &self,
        records: &[&ResultRecord],
        mode: WriteMode,
    ) -> Result<u64, StoreError> {
        self.ensure_migrated().await?;
        let days: Vec<NaiveDate> = records.iter().map(|r| r.started.date_naive()).collect();
        self.ensure_partitions(&days).await?;
        let latest = latest_state_per_check(records);
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(self.err("starting the result batch"))?;
        let inserted = match mode {
            WriteMode::Replay => {
                let all = records.iter().zip(&latest).enumerate();
                self.copy_stage(&tx, all).await?;
                tx.execute(STAGE_APPLY, &[])
                    .await
                    .map_err(self.err("inserting results"))?
            }
            WriteMode::New => {
                let n = self.copy_results(&tx, records).await?;
                let subset = records
                    .iter()
                    .zip(&latest)
                    .enumerate()
                    .filter(|(_, (r, latest))| **latest || r.is_state_change());
                self.copy_stage(&tx, subset).await?;
                n
            }
        };
        tx.execute(STAGE_CHANGES, &[])
            .await
            .map_err(self.err("inserting state changes"))?;
        tx.execute(STAGE_STATES, &[])
            .await
            .map_err(self.err("upserting check states"))?;
        tx.commit()
            .await
            .map_err(self.err("committing the result batch"))?;
        Ok(inserted)
    }

    /// Binary COPY of the records straight into `results`; returns the row count.
    async fn copy_results(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        records: &[&ResultRecord],
    ) -> Result<u64, StoreError> {
        let sink = tx
            .copy_in(RESULTS_COPY)
            .await
            .map_err(self.err("starting COPY into results"))?;
        let writer = BinaryCopyInWriter::new(sink, RESULTS_TYPES);
        tokio::pin!(writer);
        for r in records {
            let t = &r.transition;
            let attempt = i32::try_from(t.current.attempt).unwrap_or(i32::MAX);
            let perfdata = Json(&r.output.perfdata);
            let values: [&(dyn ToSql + Sync); 13] = [
                &r.result_id,
                &r.check,
                &r.host,
                &r.kind,
                &r.planned,
                &r.started,
                &r.duration_ms,
                &t.current.state.as_str(),
                &t.current.state_type.as_str(),
                &attempt,
                &r.output.output,
                &r.output.long_output,
                &perfdata,
            ];
            writer
                .as_mut()
                .write(&values)
                .await
                .map_err(self.err("writing COPY rows into results"))?;
        }
        writer
            .finish()
            .await
            .map_err(self.err("finishing COPY into results"))
    }

    /// Binary COPY of `(position, (record, newest state of its check))` into
    /// the connection's staging table.
    async fn copy_stage<'a>(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        rows: impl Iterator<Item = (usize, (&'a &'a ResultRecord, &'a bool))>,
    ) -> Result<(), StoreError> {
        let sink = tx
            .copy_in(STAGE_COPY)
            .await
            .map_err(self.err("starting COPY into results_stage"))?;
        let writer = BinaryCopyInWriter::new(sink, STAGE_TYPES);
        tokio::pin!(writer);
        for (i, (r, latest)) in rows {
            let ord = i32::try_from(i).unwrap_or(i32::MAX);
            let t = &r.transition;
            let attempt = i32::try_from(t.current.attempt).unwrap_or(i32::MAX);
            let perfdata = Json(&r.output.perfdata);
            let change = r.change_name();
            let state_change = r.is_state_change();
            let check_state = r.check_state.as_ref().filter(|_| *latest).map(Json);
            let values: [&(dyn ToSql + Sync); 21] = [
                &ord,
                &r.result_id,
                &r.check,
                &r.host,
                &r.kind,
                &r.planned,
                &r.started,
                &r.duration_ms,
                &t.current.state.as_str(),
                &t.current.state_type.as_str(),
                &attempt,
                &r.output.output,
                &r.output.long_output,
                &perfdata,
                &t.previous.state.as_str(),
                &t.previous.state_type.as_str(),
                &change,
                &t.flapping,
                &t.unreachable,
                &state_change,
                &check_state,
            ];
            writer
                .as_mut()
                .write(&values)
                .await
                .map_err(self.err("writing COPY rows into results_stage"))?;
        }
        writer
            .finish()
            .await
            .map_err(self.err("finishing COPY into results_stage"))?;
        Ok(())
    }

    pub(super) async fn load_states(&self) -> Result<Vec<(String, CheckState)>, StoreError> {
        self.ensure_migrated().await?;
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT check_name, state FROM check_states ORDER BY check_name",
                &[],
            )
            .await
            .map_err(self.err("loading check states"))?;
        rows.iter()
            .map(|r| {
                let name: String = r.get(0);
                let v: serde_json::Value = r.get(1);
                let state = serde_json::from_value(v).map_err(|source| StoreError::Json {
                    what: format!("decoding the stored state of {name}"),
                    source,
                })?;
                Ok((name, state))
            })
            .collect()
    }

    pub(super) async fn history(
        &self,
        check: &str,
        from: DateTime<Utc>,
    ) -> Result<Vec<HistoryRow>, StoreError> {
        self.ensure_migrated().await?;
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT started_at, planned_at, duration_ms, state, state_type, attempt, output,
                        long_output, perfdata
                 FROM results WHERE check_name = $1 AND started_at >= $2
                 ORDER BY started_at, id",
                &[&check, &from],
            )
            .await
            .map_err(self.err(format!("reading the history of {check}")))?;
        rows.iter()
            .map(|r| {
                let perf: serde_json::Value = r.get(8);
                Ok(HistoryRow {
                    started: r.get(0),
                    planned: r.get(1),
                    duration_ms: r.get(2),
                    state: r.get(3),
                    state_type: r.get(4),
                    attempt: r.get(5),
                    output: r.get(6),
                    long_output: r.get(7),
                    perfdata: serde_json::from_value(perf).map_err(|source| StoreError::Json {
                        what: format!("decoding perfdata of {check}"),
                        source,
                    })?,
                })
            })
            .collect()
    }

    pub(super) async fn stats(&self) -> Result<Stats, StoreError> {
        self.ensure_migrated().await?;
        let version = self.schema_version().await?;
        let client = self.client().await?;
        let mut tables = Vec::new();
        for t in TABLES {
            // Counting a big table takes long: above a million rows, the
            // planner's estimate (summed over partitions) will do.
            let estimate: f64 = client
                .query_one(
                    "SELECT COALESCE(sum(greatest(c.reltuples, 0)), 0)::float8 FROM pg_class c
                     WHERE c.oid = $1::text::regclass
                        OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = $1::text::regclass)",
                    &[t],
                )
                .await
                .map_err(self.err(format!("estimating the rows of {t}")))?
                .get(0);
            let rows: i64 = if estimate > 1e6 {
                estimate as i64
            } else {
                client
                    .query_one(&format!("SELECT count(*) FROM {t}"), &[])
                    .await
                    .map_err(self.err(format!("counting {t}")))?
                    .get(0)
            };
            tables.push(TableRows {
                table: t.to_string(),
                rows,
            });
        }
        let size: i64 = client
            .query_one("SELECT pg_database_size(current_database())", &[])
            .await
            .map_err(self.err("reading the database size"))?
            .get(0);
        let oldest: Option<DateTime<Utc>> = client
            .query_one("SELECT min(started_at) FROM results", &[])
            .await
            .map_err(self.err("finding the oldest result"))?
            .get(0);
        Ok(Stats {
            database: self.describe(),
            schema_version: version,
            tables,
            size_bytes: size,
            oldest_result: oldest,
        })
    }

    pub(super) async fn retention(
        &self,
        now: DateTime<Utc>,
        results_before: DateTime<Utc>,
        events_before: DateTime<Utc>,
        keys_before: DateTime<Utc>,
    ) -> Result<RetentionReport, StoreError> {
        self.ensure_migrated().await?;
        let mut report = RetentionReport::default();
        let client = self.client().await?;
        let parts = client
            .query(
                "SELECT c.relname FROM pg_inherits i
                 JOIN pg_class c ON c.oid = i.inhrelid
                 JOIN pg_class p ON p.oid = i.inhparent
                 WHERE p.oid = 'results'::regclass ORDER BY c.relname",
                &[],
            )
            .await
            .map_err(self.err("listing result partitions"))?;
        for row in parts {
            let name: String = row.get(0);
            let Some(day) = partition_day(&name) else {
                continue;
            };
            let Some(end) = day.succ_opt().and_then(|d| d.and_hms_opt(0, 0, 0)) else {
                continue;
            };
            if end.and_utc() > results_before {
                continue;
            }
            let n: i64 = client
                .query_one(&format!("SELECT count(*) FROM {name}"), &[])
                .await
                .map_err(self.err(format!("counting {name}")))?
                .get(0);
            client
                .batch_execute(&format!("DROP TABLE IF EXISTS {name}"))
                .await
                .map_err(self.err(format!("dropping partition {name}")))?;
            if let Ok(mut known) = self.partitions.lock() {
                known.remove(&day);
            }
            tracing::info!(partition = %name, rows = n, "dropped old results");
            report.results += u64::try_from(n).unwrap_or(0);
            report.partitions_dropped.push(name);
        }
        for (sql, what) in [
            (
                "DELETE FROM state_changes WHERE at < $1",
                "deleting old state changes",
            ),
            (
                "DELETE FROM alarms WHERE resolved_at < $1",
                "deleting old alarms",
            ),
            (
                "DELETE FROM notifications WHERE status <> 'pending' AND created_at < $1",
                "deleting old notifications",
            ),
            (
                "DELETE FROM action_runs WHERE started_at < $1",
                "deleting old action runs",
            ),
            (
                "DELETE FROM cluster_plans WHERE finished_at < $1",
                "deleting old plans",
            ),
        ] {
            report.events += client
                .execute(sql, &[&events_before])
                .await
                .map_err(self.err(what))?;
        }
        let mut removed = [0u64; 3];
        for (n, (sql, before, what)) in [
            (
                "DELETE FROM events WHERE at < $1",
                events_before,
                "deleting old events",
            ),
            (
                "DELETE FROM audit WHERE at < $1",
                events_before,
                "deleting old audit entries",
            ),
            (
                "DELETE FROM idempotency WHERE at < $1",
                keys_before,
                "deleting expired idempotency keys",
            ),
        ]
        .into_iter()
        .enumerate()
        {
            removed[n] = client
                .execute(sql, &[&before])
                .await
                .map_err(self.err(what))?;
        }
        [report.feed_events, report.audit, report.idempotency_keys] = removed;
        drop(client);
        let today = now.date_naive();
        let days: Vec<NaiveDate> = (0..=PARTITIONS_AHEAD)
            .filter_map(|d| today.checked_add_days(Days::new(d)))
            .collect();
        self.ensure_partitions(&days).await?;
        Ok(report)
    }

    /// Runs one statement once the schema is in place; returns the rows changed.
    pub(super) async fn exec(
        &self,
        what: String,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        self.ensure_migrated().await?;
        let client = self.client().await?;
        client.execute(sql, params).await.map_err(self.err(what))
    }
}

/// The columns of [`AlarmRow`], in [`alarm_row_from`]'s order.
const ALARM_ROW_COLS: &str = "id, check_name, host, state, opened_at, resolved_at, acknowledged_by,
    acknowledged_at, ack_comment, summary, suppressed, escalation_level, detail";

/// The lifecycle's persistence (see `alarms.rs` for what goes where).
impl PgStore {
    pub(super) async fn save_alarm(&self, a: AlarmRecord) -> Result<(), StoreError> {
        self.ensure_migrated().await?;
        let mut client = self.client().await?;
        let what = |w: &str| format!("{w} alarm {} of {}", a.id, a.check);
        let tx = client
            .transaction()
            .await
            .map_err(self.err(what("starting to save")))?;
        if a.resolved.is_none() {
            // The lifecycle says this is the check's open alarm: any other
            // still open here is stale (a crash between saves) and ends when
            // this one opened (never before it opened itself).
            tx.execute(
                "UPDATE alarms SET resolved_at = GREATEST(opened_at, $3)
                 WHERE check_name = $1 AND resolved_at IS NULL AND id <> $2",
                &[&a.check, &a.id, &a.opened],
            )
            .await
            .map_err(self.err(what("resolving stale open alarms before")))?;
        }
        let (ack_at, ack_by, ack_comment) = match &a.ack {
            Some((at, by, comment)) => (Some(*at), Some(by.as_str()), Some(comment.as_str())),
            None => (None, None, None),
        };
        tx.execute(
            "INSERT INTO alarms (id, check_name, host, opened_at, resolved_at, state, severity, summary,
                acknowledged_at, acknowledged_by, ack_comment, escalation_level, last_notified_at,
                suppressed, detail)
             VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8, $9, $10, $11, $12, $13, $14)
             ON CONFLICT (id) DO UPDATE SET
                check_name = excluded.check_name, host = excluded.host,
                opened_at = excluded.opened_at, resolved_at = excluded.resolved_at,
                state = excluded.state, severity = excluded.severity, summary = excluded.summary,
                acknowledged_at = excluded.acknowledged_at,
                acknowledged_by = excluded.acknowledged_by, ack_comment = excluded.ack_comment,
                escalation_level = excluded.escalation_level,
                last_notified_at = excluded.last_notified_at,
                suppressed = excluded.suppressed, detail = excluded.detail",
            &[
                &a.id,
                &a.check,
                &a.host,
                &a.opened,
                &a.resolved,
                &a.state,
                &a.summary,
                &ack_at,
                &ack_by,
                &ack_comment,
                &a.escalation_level,
                &a.last_notified,
                &a.suppressed,
                &a.detail,
            ],
        )
        .await
        .map_err(self.err(what("saving")))?;
        let stored: i64 = tx
            .query_one(
                "SELECT count(*) FROM alarm_events WHERE alarm_id = $1",
                &[&a.id],
            )
            .await
            .map_err(self.err(what("counting the events of")))?
            .get(0);
        let stored = usize::try_from(stored).unwrap_or(0);
        if stored < a.events.len() {
            let insert = tx
                .prepare(
                    "INSERT INTO alarm_events (alarm_id, at, kind, detail) VALUES ($1, $2, $3, $4)",
                )
                .await
                .map_err(self.err("preparing to add alarm events"))?;
            for e in &a.events[stored..] {
                tx.execute(&insert, &[&a.id, &e.at, &e.kind, &e.detail])
                    .await
                    .map_err(self.err(what(&format!("adding event {} to", e.kind))))?;
            }
        }
        tx.commit().await.map_err(self.err(what("committing")))
    }

    pub(super) async fn save_action_run(&self, r: RunRecord) -> Result<(), StoreError> {
        self.exec(
            format!("recording action run {} ({})", r.key, r.action),
            "INSERT INTO action_runs (alarm_id, action_key, action, argv, started_at, duration_ms,
                exit_status, timed_out, output, error)
             VALUES ((SELECT id FROM alarms WHERE id = $1), $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            &[
                &r.alarm_id,
                &r.key,
                &r.action,
                &r.argv,
                &r.started,
                &r.duration_ms,
                &r.exit_status,
                &r.timed_out,
                &r.output,
                &r.error,
            ],
        )
        .await
        .map(drop)
    }

    pub(super) async fn put_state(
        &self,
        key: &str,
        value: serde_json::Value,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.exec(
            format!("saving daemon state {key}"),
            "INSERT INTO daemon_state (key, value, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            &[&key, &value, &at],
        )
        .await
        .map(drop)
    }

    pub(super) async fn get_state(
        &self,
        key: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        self.ensure_migrated().await?;
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT value FROM daemon_state WHERE key = $1", &[&key])
            .await
            .map_err(self.err(format!("reading daemon state {key}")))?;
        Ok(row.map(|r| r.get(0)))
    }

    pub(super) async fn outbox_enqueue(&self, n: OutboxRecord) -> Result<bool, StoreError> {
        let inserted = self
            .exec(
                format!("enqueueing notification {}", n.key),
                "INSERT INTO notifications (alarm_id, contact, channel, idempotency_key, payload,
                    status, attempts, next_attempt_at, created_at)
                 VALUES ((SELECT id FROM alarms WHERE id = $1), $2, $3, $4, $5, 'pending', $6, $7, $8)
                 ON CONFLICT (idempotency_key) DO NOTHING",
                &[
                    &n.alarm_id,
                    &n.contact,
                    &n.channel,
                    &n.key,
                    &n.payload,
                    &n.attempts,
                    &n.next_attempt,
                    &n.created,
                ],
            )
            .await?;
        Ok(inserted == 1)
    }

    pub(super) async fn outbox_pending(&self) -> Result<Vec<PendingRow>, StoreError> {
        self.ensure_migrated().await?;
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT payload, attempts, next_attempt_at, last_error FROM notifications
                 WHERE status = 'pending' ORDER BY created_at, id",
                &[],
            )
            .await
            .map_err(self.err("listing pending notifications"))?;
        Ok(rows
            .iter()
            .map(|r| PendingRow {
                payload: r.get(0),
                attempts: r.get(1),
                next_attempt: r.get(2),
                last_error: r.get(3),
            })
            .collect())
    }

    pub(super) async fn outbox_mark_sent(
        &self,
        key: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.exec(
            format!("marking notification {key} sent"),
            "UPDATE notifications SET status = 'sent', sent_at = $2, last_error = NULL
             WHERE idempotency_key = $1",
            &[&key, &at],
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
        self.exec(
            format!("marking notification {key} failed"),
            "UPDATE notifications SET status = $2, attempts = $3, last_error = $4,
                next_attempt_at = COALESCE($5, next_attempt_at),
                payload = jsonb_set(jsonb_set(jsonb_set(payload,
                    '{attempts}', to_jsonb($3::integer)),
                    '{last_error}', to_jsonb($4::text)),
                    '{next_attempt}', COALESCE($6::jsonb, payload -> 'next_attempt'))
             WHERE idempotency_key = $1 AND status <> 'sent'",
            &[&key, &status, &attempts, &error, &next, &next_json],
        )
        .await
        .map(drop)
    }

    pub(super) async fn list_alarms(
        &self,
        open_only: bool,
        limit: i64,
    ) -> Result<Vec<AlarmRow>, StoreError> {
        self.ensure_migrated().await?;
        let client = self.client().await?;
        let filter = if open_only {
            "WHERE resolved_at IS NULL"
        } else {
            ""
        };
        let rows = client
            .query(
                &format!(
                    "SELECT {ALARM_ROW_COLS} FROM alarms {filter}
                     ORDER BY opened_at DESC, id DESC LIMIT $1"
                ),
                &[&limit],
            )
            .await
            .map_err(self.err("listing alarms"))?;
        rows.iter().map(alarm_row_from).collect()
    }

    pub(super) async fn alarm_row(&self, id: i64) -> Result<Option<AlarmRow>, StoreError> {
        self.ensure_migrated().await?;
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!("SELECT {ALARM_ROW_COLS} FROM alarms WHERE id = $1"),
                &[&id],
            )
            .await
            .map_err(self.err(format!("reading alarm {id}")))?;
        row.as_ref().map(alarm_row_from).transpose()
    }

    pub(super) async fn alarm_events(&self, id: i64) -> Result<Vec<AlarmEventRow>, StoreError> {
        self.ensure_migrated().await?;
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT at, kind, detail FROM alarm_events WHERE alarm_id = $1 ORDER BY at, id",
                &[&id],
            )
            .await
            .map_err(self.err(format!("listing events of alarm {id}")))?;
        Ok(rows
            .iter()
            .map(|r| AlarmEventRow {
                at: r.get(0),
                kind: r.get(1),
                detail: r.get(2),
            })
            .collect())
    }
}

fn alarm_row_from(r: &Row) -> Result<AlarmRow, StoreError> {
    Ok(AlarmRow {
        id: lifecycle_id(r.get(0))?,
        check: r.get(1),
        host: r.get(2),
        state: r.get(3),
        opened: r.get(4),
        resolved: r.get(5),
        ack_by: r.get(6),
        ack_at: r.get(7),
        ack_comment: r.get(8),
        ack_expires: None, // from `detail`, in store::alarms
        ack_sticky: None,
        summary: r.get(9),
        suppressed: r.get(10),
        suppressed_by: None, // from `detail`, in store::alarms
        escalation_level: r.get(11),
        detail: r.get(12),
    })
}

fn partition_name(day: NaiveDate) -> String {
    format!("results_p{}", day.format("%Y%m%d"))
}

fn partition_day(name: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(name.strip_prefix("results_p")?, "%Y%m%d").ok()
}

/// The password from `password_file` (first line) or `password_env`, if configured.
fn read_password(cfg: &StorageConfig) -> Result<Option<String>, StoreError> {
    if let Some(path) = &cfg.password_file {
        let text = std::fs::read_to_string(path).map_err(|source| StoreError::PasswordFile {
            path: path.clone(),
            source,
        })?;
        return Ok(Some(text.lines().next().unwrap_or("").to_string()));
    }
    if let Some(var) = &cfg.password_env {
        return std::env::var(var)
            .map(Some)
            .map_err(|_| StoreError::PasswordEnv(var.clone()));
    }
    Ok(None)
}

/// A rustls connector trusting `ca_file`, or the webpki roots when none is given.
fn tls_connector(
    cfg: &StorageConfig,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    match &cfg.ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path).map_err(|e| {
                StoreError::Tls(format!("cannot read ca_file {}: {e}", path.display()))
            })?;
            for cert in certs {
                let cert = cert.map_err(|e| {
                    StoreError::Tls(format!("bad certificate in {}: {e}", path.display()))
                })?;
                roots.add(cert).map_err(|e| {
                    StoreError::Tls(format!("unusable certificate in {}: {e}", path.display()))
                })?;
            }
            if roots.is_empty() {
                return Err(StoreError::Tls(format!(
                    "ca_file {} holds no certificate",
                    path.display()
                )));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Tls(format!("protocol versions: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_round_trip() {
        let d = NaiveDate::from_ymd_opt(2026, 1, 31).expect("date");
        assert_eq!(partition_name(d), "results_p20260131");
        assert_eq!(partition_day("results_p20260131"), Some(d));
        assert_eq!(partition_day("results_default"), None);
    }
}
