//! PostgreSQL SQL for what the HTTP API reads and records: the event feed,
//! the audit log, idempotency answers, alarm timelines and pages, and
//! downsampled history series (see `feed.rs`, `timeline.rs`, `series.rs`
//! for what each means).
//!
//! Reads that combine several queries run in one read-only REPEATABLE READ
//! transaction, so their parts agree. Never writes an event row: the
//! triggers of migration 4 do.

use super::{alarm_row_from, PgStore, ALARM_ROW_COLS};
use crate::store::alarms::lifecycle_id;
use crate::store::feed::{
    opt_lifecycle_id, AuditEntry, AuditQuery, AuditRecord, AuditRow, EventRow, FeedKind,
    IdempotencyRecord, StoredResponse,
};
use crate::store::series::{BucketPlan, BucketRow, PerfRow, ValueStats, SEVERITY_SQL};
use crate::store::timeline::{
    ActionRunRow, AlarmEventEntry, NotificationRow, StateChangeRow, TimelineParts,
};
use crate::store::{AlarmRow, StoreError};
use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use tokio_postgres::{IsolationLevel, Row};

/// The columns of [`StateChangeRow`], in [`state_change_from`]'s order.
const STATE_CHANGE_COLS: &str = "id, at, check_name, host, previous_state, previous_state_type,
    state, state_type, attempt, change, flapping, unreachable, output";

/// The columns of [`AuditRow`], in [`audit_from`]'s order.
const AUDIT_COLS: &str =
    "id, at, who, source, action, target, alarm_id, check_name, result, detail";

impl PgStore {
    pub(in crate::store) async fn events_after(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<EventRow>, StoreError> {
        self.ensure_migrated().await?;
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, at, kind, check_name, host, alarm_id, detail FROM events
                 WHERE id > $1 ORDER BY id LIMIT $2",
                &[&after, &limit],
            )
            .await
            .map_err(self.err(format!("reading events after {after}")))?;
        rows.iter()
            .map(|r| {
                Ok(EventRow {
                    id: r.get(0),
                    at: r.get(1),
                    kind: FeedKind::parse(r.get(2))?,
                    check: r.get(3),
                    host: r.get(4),
                    alarm_id: opt_lifecycle_id(r.get(5))?,
                    detail: r.get(6),
                })
            })
            .collect()
    }

    pub(in crate::store) async fn latest_event_id(&self) -> Result<i64, StoreError> {
        self.ensure_migrated().await?;
        let client = self.client().await?;
        let row = client
            .query_one("SELECT COALESCE(max(id), 0) FROM events", &[])
            .await
            .map_err(self.err("reading the latest event id"))?;
        Ok(row.get(0))
    }

    pub(in crate::store) async fn record_audit(&self, a: AuditRecord) -> Result<i64, StoreError> {
        self.ensure_migrated().await?;
        let client = self.client().await?;
        let row = client
            .query_one(
                "INSERT INTO audit (at, who, source, action, target, alarm_id, check_name, result, detail)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                &[
                    &a.at,
                    &a.who,
                    &a.source,
                    &a.action,
                    &a.target,
                    &a.alarm_id,
                    &a.check,
                    &a.result,
                    &a.detail,
                ],
            )
            .await
            .map_err(self.err(format!("recording audit entry {} by {}", a.action, a.who)))?;
        Ok(row.get(0))
    }

    pub(in crate::store) async fn audit(&self, q: AuditQuery) -> Result<Vec<AuditRow>, StoreError> {
        self.ensure_migrated().await?;
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {AUDIT_COLS} FROM audit
                     WHERE ($1::bigint IS NULL OR alarm_id = $1)
                       AND ($2::text IS NULL OR check_name = $2)
                       AND ($3::bigint IS NULL OR id < $3)
                     ORDER BY id DESC LIMIT $4"
                ),
                &[&q.alarm_id, &q.check, &q.before_id, &q.limit],
            )
            .await
            .map_err(self.err("listing audit entries"))?;
        rows.iter().map(audit_from).collect()
    }

    pub(in crate::store) async fn idempotency_get(
        &self,
        scope: &str,
        key: &str,
        since: DateTime<Utc>,
    ) -> Result<Option<StoredResponse>, StoreError> {
        self.ensure_migrated().await?;
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT request_hash, status, body, at FROM idempotency
                 WHERE scope = $1 AND key = $2 AND at >= $3",
                &[&scope, &key, &since],
            )
            .await
            .map_err(self.err(format!("reading idempotency key {key} of {scope}")))?;
        row.map(|r| {
            let status: i32 = r.get(1);
            Ok(StoredResponse {
                request_hash: r.get(0),
                status: u16::try_from(status).map_err(|_| {
                    StoreError::Corrupt(format!("idempotency key {key}: status {status}"))
                })?,
                body: r.get(2),
                at: r.get(3),
            })
        })
        .transpose()
    }

    pub(in crate::store) async fn idempotency_put(
        &self,
        k: IdempotencyRecord,
        expired_before: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let n = self
            .exec(
                format!("storing idempotency key {} of {}", k.key, k.scope),
                "INSERT INTO idempotency (scope, key, request_hash, status, body, at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (scope, key) DO UPDATE SET request_hash = excluded.request_hash,
                    status = excluded.status, body = excluded.body, at = excluded.at
                 WHERE idempotency.at < $7",
                &[
                    &k.scope,
                    &k.key,
                    &k.request_hash,
                    &k.status,
                    &k.body,
                    &k.at,
                    &expired_before,
                ],
            )
            .await?;
        Ok(n == 1)
    }

    pub(in crate::store) async fn list_alarms_page(
        &self,
        open_only: bool,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AlarmRow>, StoreError> {
        self.ensure_migrated().await?;
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {ALARM_ROW_COLS} FROM alarms
                     WHERE (NOT $1 OR resolved_at IS NULL) AND ($2::bigint IS NULL OR id < $2)
                     ORDER BY id DESC LIMIT $3"
                ),
                &[&open_only, &before, &limit],
            )
            .await
            .map_err(self.err("listing a page of alarms"))?;
        rows.iter().map(alarm_row_from).collect()
    }

    /// Starts a read-only transaction that sees one snapshot throughout.
    async fn snapshot<'a>(
        &self,
        client: &'a mut deadpool_postgres::Object,
        what: &str,
    ) -> Result<Transaction<'a>, StoreError> {
        client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(self.err(format!("starting to read {what}")))
    }

    pub(in crate::store) async fn alarm_timeline(
        &self,
        id: i64,
        change_limit: i64,
    ) -> Result<Option<(AlarmRow, TimelineParts)>, StoreError> {
        self.ensure_migrated().await?;
        let mut client = self.client().await?;
        let what = format!("the timeline of alarm {id}");
        let tx = self.snapshot(&mut client, &what).await?;
        let err = || self.err(format!("reading {what}"));
        let Some(alarm) = tx
            .query_opt(
                &format!("SELECT {ALARM_ROW_COLS} FROM alarms WHERE id = $1"),
                &[&id],
            )
            .await
            .map_err(err())?
        else {
            return Ok(None);
        };
        let alarm = alarm_row_from(&alarm)?;
        let events = tx
            .query(
                "SELECT id, at, kind, detail FROM alarm_events WHERE alarm_id = $1 ORDER BY at, id",
                &[&id],
            )
            .await
            .map_err(err())?
            .iter()
            .map(|r| AlarmEventEntry {
                id: r.get(0),
                at: r.get(1),
                event: r.get(2),
                detail: r.get(3),
            })
            .collect();
        // From the change that started the problem (the last one away from
        // OK at or before the opening) until the alarm resolved.
        let state_changes = tx
            .query(
                &format!(
                    "SELECT {STATE_CHANGE_COLS} FROM state_changes
                     WHERE check_name = $1
                       AND at >= COALESCE((SELECT max(at) FROM state_changes
                                           WHERE check_name = $1 AND at <= $2
                                             AND previous_state = 'OK' AND state <> 'OK'), $2)
                       AND ($3::timestamptz IS NULL OR at <= $3)
                     ORDER BY at, id LIMIT $4"
                ),
                &[&alarm.check, &alarm.opened, &alarm.resolved, &change_limit],
            )
            .await
            .map_err(err())?
            .iter()
            .map(state_change_from)
            .collect();
        let notifications = tx
            .query(
                "SELECT id, created_at, contact, channel, idempotency_key, payload ->> 'subject',
                        status, attempts, next_attempt_at, sent_at, last_error
                 FROM notifications WHERE alarm_id = $1 ORDER BY created_at, id",
                &[&id],
            )
            .await
            .map_err(err())?
            .iter()
            .map(|r| NotificationRow {
                id: r.get(0),
                created: r.get(1),
                contact: r.get(2),
                channel: r.get(3),
                key: r.get(4),
                subject: r.get(5),
                status: r.get(6),
                attempts: r.get(7),
                next_attempt: r.get(8),
                sent: r.get(9),
                last_error: r.get(10),
            })
            .collect();
        let actions = tx
            .query(
                "SELECT id, action_key, action, argv, started_at, duration_ms, exit_status,
                        timed_out, output, error
                 FROM action_runs WHERE alarm_id = $1 ORDER BY started_at, id",
                &[&id],
            )
            .await
            .map_err(err())?
            .iter()
            .map(|r| {
                let argv: serde_json::Value = r.get(3);
                Ok(ActionRunRow {
                    id: r.get(0),
                    key: r.get(1),
                    action: r.get(2),
                    argv: serde_json::from_value(argv).map_err(|source| StoreError::Json {
                        what: format!("decoding the argv of an action run of alarm {id}"),
                        source,
                    })?,
                    started: r.get(4),
                    duration_ms: r.get(5),
                    exit_status: r.get(6),
                    timed_out: r.get(7),
                    output: r.get(8),
                    error: r.get(9),
                })
            })
            .collect::<Result<_, StoreError>>()?;
        let audit = tx
            .query(
                &format!("SELECT {AUDIT_COLS} FROM audit WHERE alarm_id = $1 ORDER BY at, id"),
                &[&id],
            )
            .await
            .map_err(err())?
            .iter()
            .map(audit_from)
            .collect::<Result<_, StoreError>>()?;
        tx.commit().await.map_err(err())?;
        Ok(Some((
            alarm,
            TimelineParts {
                events,
                state_changes,
                notifications,
                actions,
                audit,
            },
        )))
    }

    pub(in crate::store) async fn history_series(
        &self,
        check: &str,
        plan: BucketPlan,
        change_limit: i64,
    ) -> Result<(Vec<BucketRow>, Vec<PerfRow>, Vec<StateChangeRow>), StoreError> {
        self.ensure_migrated().await?;
        let mut client = self.client().await?;
        let what = format!("the history series of {check}");
        let tx = self.snapshot(&mut client, &what).await?;
        let err = || self.err(format!("reading {what}"));
        let (from, to) = (plan.from(), plan.to());
        let bucket = "((extract(epoch FROM started_at) * 1000000)::bigint - $4) / $5";
        let buckets = tx
            .query(
                &format!(
                    "SELECT {bucket} AS b, count(*), max({SEVERITY_SQL}),
                            min(duration_ms), avg(duration_ms), max(duration_ms)
                     FROM results WHERE check_name = $1 AND started_at >= $2 AND started_at < $3
                     GROUP BY b ORDER BY b"
                ),
                &[&check, &from, &to, &plan.from_us, &plan.width_us],
            )
            .await
            .map_err(err())?
            .iter()
            .map(|r| BucketRow {
                bucket: r.get(0),
                count: r.get(1),
                worst: i64::from(r.get::<_, i32>(2)),
                duration: ValueStats {
                    min: r.get(3),
                    avg: r.get(4),
                    max: r.get(5),
                },
            })
            .collect();
        // Each item's value is cast once (jsonb to float8, no text), in a
        // subquery kept apart from the aggregate by OFFSET 0.
        let perf = tx
            .query(
                &format!(
                    "SELECT b, label, uom, count(*), min(v), avg(v), max(v) FROM (
                        SELECT {bucket} AS b, (e ->> 'label') COLLATE \"C\" AS label,
                               COALESCE(e ->> 'uom', '') COLLATE \"C\" AS uom,
                               (e -> 'value')::float8 AS v
                        FROM results CROSS JOIN LATERAL jsonb_array_elements(
                            CASE WHEN jsonb_typeof(perfdata) = 'array' THEN perfdata ELSE '[]' END) e
                        WHERE check_name = $1 AND started_at >= $2 AND started_at < $3
                          AND jsonb_typeof(e -> 'value') = 'number'
                          AND jsonb_typeof(e -> 'label') = 'string'
                        OFFSET 0) items
                     GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
                ),
                &[&check, &from, &to, &plan.from_us, &plan.width_us],
            )
            .await
            .map_err(err())?
            .iter()
            .map(|r| PerfRow {
                bucket: r.get(0),
                label: r.get(1),
                uom: r.get(2),
                count: r.get(3),
                values: ValueStats {
                    min: r.get(4),
                    avg: r.get(5),
                    max: r.get(6),
                },
            })
            .collect();
        let changes = tx
            .query(
                &format!(
                    "SELECT {STATE_CHANGE_COLS} FROM state_changes
                     WHERE check_name = $1 AND at >= $2 AND at < $3 ORDER BY at, id LIMIT $4"
                ),
                &[&check, &from, &to, &change_limit],
            )
            .await
            .map_err(err())?
            .iter()
            .map(state_change_from)
            .collect();
        tx.commit().await.map_err(err())?;
        Ok((buckets, perf, changes))
    }
}

fn state_change_from(r: &Row) -> StateChangeRow {
    StateChangeRow {
        id: r.get(0),
        at: r.get(1),
        check: r.get(2),
        host: r.get(3),
        previous_state: r.get(4),
        previous_state_type: r.get(5),
        state: r.get(6),
        state_type: r.get(7),
        attempt: r.get(8),
        change: r.get(9),
        flapping: r.get(10),
        unreachable: r.get(11),
        output: r.get(12),
    }
}

fn audit_from(r: &Row) -> Result<AuditRow, StoreError> {
    Ok(AuditRow {
        id: r.get(0),
        entry: AuditEntry {
            at: r.get(1),
            who: r.get(2),
            source: r.get(3),
            action: r.get(4),
            target: r.get(5),
            alarm_id: r.get::<_, Option<i64>>(6).map(lifecycle_id).transpose()?,
            check: r.get(7),
            result: r.get(8),
            detail: r.get(9),
        },
    })
}
