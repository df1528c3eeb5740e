//! SQLite SQL for what the HTTP API reads and records: the event feed, the
//! audit log, idempotency answers, alarm timelines and pages, and
//! downsampled history series (see `feed.rs`, `timeline.rs`, `series.rs`
//! for what each means).
//!
//! Reads that combine several queries run in one (deferred) transaction,
//! so their parts agree. Never writes an event row: the triggers of
//! migration 4 do. Timestamps are the fixed-width text of [`super::ts`].

use super::{
    alarm_row_from, get_json, get_opt_ts, get_ts, json_text, ts, SqliteStore, ALARM_ROW_COLS,
};
use crate::store::alarms::lifecycle_id;
use crate::store::feed::{
    opt_lifecycle_id, AuditEntry, AuditQuery, AuditRecord, AuditRow, EventRow, FeedKind,
    IdempotencyRecord, StoredResponse,
};
use crate::store::series::{
    BucketPlan, BucketRow, PerfAccumulator, PerfRow, ValueStats, SEVERITY_SQL,
};
use crate::store::timeline::{
    ActionRunRow, AlarmEventEntry, NotificationRow, StateChangeRow, TimelineParts,
};
use crate::store::{AlarmRow, StoreError};
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, Row};

/// The columns of [`StateChangeRow`], in [`state_change_from`]'s order.
const STATE_CHANGE_COLS: &str = "id, at, check_name, host, previous_state, previous_state_type,
    state, state_type, attempt, change, flapping, unreachable, output";

/// The columns of [`AuditRow`], in [`audit_from`]'s order.
const AUDIT_COLS: &str =
    "id, at, who, source, action, target, alarm_id, check_name, result, detail";

/// A result's bucket: whole microseconds since the epoch (seconds from
/// `unixepoch`, the six fraction digits of the fixed-width text) minus the
/// range's start (`?4`), divided by the bucket width (`?5`).
const BUCKET_SQL: &str = "((unixepoch(started_at) * 1000000
    + CAST(substr(started_at, 21, 6) AS INTEGER)) - ?4) / ?5";

impl SqliteStore {
    pub(in crate::store) async fn events_after(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<EventRow>, StoreError> {
        self.call(move |conn, ctx| {
            let what = || ctx.err(format!("reading events after {after}"));
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, at, kind, check_name, host, alarm_id, detail FROM events
                     WHERE id > ?1 ORDER BY id LIMIT ?2",
                )
                .map_err(what())?;
            let rows = stmt
                .query_map([after, limit], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        get_ts(r, 1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, Option<String>>(4)?,
                        r.get::<_, Option<i64>>(5)?,
                        get_json(r, 6)?,
                    ))
                })
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(what())?;
            rows.into_iter()
                .map(|(id, at, kind, check, host, alarm_id, detail)| {
                    Ok(EventRow {
                        id,
                        at,
                        kind: FeedKind::parse(&kind)?,
                        check,
                        host,
                        alarm_id: opt_lifecycle_id(alarm_id)?,
                        detail,
                    })
                })
                .collect()
        })
        .await
    }

    pub(in crate::store) async fn latest_event_id(&self) -> Result<i64, StoreError> {
        self.call(|conn, ctx| {
            conn.query_row("SELECT COALESCE(max(id), 0) FROM events", [], |r| r.get(0))
                .map_err(ctx.err("reading the latest event id"))
        })
        .await
    }

    pub(in crate::store) async fn record_audit(&self, a: AuditRecord) -> Result<i64, StoreError> {
        let detail = json_text(&a.detail, "an audit entry's detail")?;
        self.call(move |conn, ctx| {
            conn.query_row(
                "INSERT INTO audit (at, who, source, action, target, alarm_id, check_name, result, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING id",
                params![
                    ts(a.at),
                    a.who,
                    a.source,
                    a.action,
                    a.target,
                    a.alarm_id,
                    a.check,
                    a.result,
                    detail
                ],
                |r| r.get(0),
            )
            .map_err(ctx.err(format!("recording audit entry {} by {}", a.action, a.who)))
        })
        .await
    }

    pub(in crate::store) async fn audit(&self, q: AuditQuery) -> Result<Vec<AuditRow>, StoreError> {
        self.call(move |conn, ctx| {
            let what = || ctx.err("listing audit entries");
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {AUDIT_COLS} FROM audit
                     WHERE (?1 IS NULL OR alarm_id = ?1) AND (?2 IS NULL OR check_name = ?2)
                       AND (?3 IS NULL OR id < ?3)
                     ORDER BY id DESC LIMIT ?4"
                ))
                .map_err(what())?;
            let rows = stmt
                .query_map(
                    params![q.alarm_id, q.check, q.before_id, q.limit],
                    audit_from,
                )
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(what())?;
            rows.into_iter().collect()
        })
        .await
    }

    pub(in crate::store) async fn idempotency_get(
        &self,
        scope: &str,
        key: &str,
        since: DateTime<Utc>,
    ) -> Result<Option<StoredResponse>, StoreError> {
        let (scope, key) = (scope.to_string(), key.to_string());
        self.call(move |conn, ctx| {
            let row = conn
                .query_row(
                    "SELECT request_hash, status, body, at FROM idempotency
                     WHERE scope = ?1 AND key = ?2 AND at >= ?3",
                    params![scope, key, ts(since)],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, String>(2)?,
                            get_ts(r, 3)?,
                        ))
                    },
                )
                .optional()
                .map_err(ctx.err(format!("reading idempotency key {key} of {scope}")))?;
            row.map(|(request_hash, status, body, at)| {
                Ok(StoredResponse {
                    request_hash,
                    status: u16::try_from(status).map_err(|_| {
                        StoreError::Corrupt(format!("idempotency key {key}: status {status}"))
                    })?,
                    body,
                    at,
                })
            })
            .transpose()
        })
        .await
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
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (scope, key) DO UPDATE SET request_hash = excluded.request_hash,
                    status = excluded.status, body = excluded.body, at = excluded.at
                 WHERE idempotency.at < ?7",
                vec![
                    k.scope.into(),
                    k.key.into(),
                    k.request_hash.into(),
                    k.status.into(),
                    k.body.into(),
                    ts(k.at).into(),
                    ts(expired_before).into(),
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
        self.call(move |conn, ctx| {
            let what = || ctx.err("listing a page of alarms");
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {ALARM_ROW_COLS} FROM alarms
                     WHERE (NOT ?1 OR resolved_at IS NULL) AND (?2 IS NULL OR id < ?2)
                     ORDER BY id DESC LIMIT ?3"
                ))
                .map_err(what())?;
            let rows = stmt
                .query_map(params![open_only, before, limit], alarm_row_from)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(what())?;
            rows.into_iter().collect()
        })
        .await
    }

    pub(in crate::store) async fn alarm_timeline(
        &self,
        id: i64,
        change_limit: i64,
    ) -> Result<Option<(AlarmRow, TimelineParts)>, StoreError> {
        self.call(move |conn, ctx| {
            let what = format!("reading the timeline of alarm {id}");
            let err = || ctx.err(what.clone());
            let tx = conn.transaction().map_err(err())?;
            let Some(alarm) = tx
                .query_row(
                    &format!("SELECT {ALARM_ROW_COLS} FROM alarms WHERE id = ?1"),
                    [id],
                    alarm_row_from,
                )
                .optional()
                .map_err(err())?
            else {
                return Ok(None);
            };
            let alarm = alarm?;
            let events = tx
                .prepare("SELECT id, at, kind, detail FROM alarm_events WHERE alarm_id = ?1 ORDER BY at, id")
                .and_then(|mut s| {
                    s.query_map([id], |r| {
                        Ok(AlarmEventEntry {
                            id: r.get(0)?,
                            at: get_ts(r, 1)?,
                            event: r.get(2)?,
                            detail: get_json(r, 3)?,
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()
                })
                .map_err(err())?;
            // From the change that started the problem (the last one away
            // from OK at or before the opening) until the alarm resolved.
            let state_changes = tx
                .prepare(&format!(
                    "SELECT {STATE_CHANGE_COLS} FROM state_changes
                     WHERE check_name = ?1
                       AND at >= COALESCE((SELECT max(at) FROM state_changes
                                           WHERE check_name = ?1 AND at <= ?2
                                             AND previous_state = 'OK' AND state <> 'OK'), ?2)
                       AND (?3 IS NULL OR at <= ?3)
                     ORDER BY at, id LIMIT ?4"
                ))
                .and_then(|mut s| {
                    s.query_map(
                        params![alarm.check, ts(alarm.opened), alarm.resolved.map(ts), change_limit],
                        state_change_from,
                    )?
                    .collect::<Result<Vec<_>, _>>()
                })
                .map_err(err())?;
            let notifications = tx
                .prepare(
                    "SELECT id, created_at, contact, channel, idempotency_key,
                            json_extract(payload, '$.subject'), status, attempts, next_attempt_at,
                            sent_at, last_error
                     FROM notifications WHERE alarm_id = ?1 ORDER BY created_at, id",
                )
                .and_then(|mut s| {
                    s.query_map([id], |r| {
                        Ok(NotificationRow {
                            id: r.get(0)?,
                            created: get_ts(r, 1)?,
                            contact: r.get(2)?,
                            channel: r.get(3)?,
                            key: r.get(4)?,
                            subject: r.get(5)?,
                            status: r.get(6)?,
                            attempts: r.get(7)?,
                            next_attempt: get_ts(r, 8)?,
                            sent: get_opt_ts(r, 9)?,
                            last_error: r.get(10)?,
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()
                })
                .map_err(err())?;
            let actions = tx
                .prepare(
                    "SELECT id, action_key, action, argv, started_at, duration_ms, exit_status,
                            timed_out, output, error
                     FROM action_runs WHERE alarm_id = ?1 ORDER BY started_at, id",
                )
                .and_then(|mut s| {
                    s.query_map([id], |r| {
                        let argv = get_json(r, 3)?;
                        Ok(ActionRunRow {
                            id: r.get(0)?,
                            key: r.get(1)?,
                            action: r.get(2)?,
                            argv: serde_json::from_value(argv).map_err(|e| {
                                rusqlite::Error::FromSqlConversionFailure(
                                    3,
                                    rusqlite::types::Type::Text,
                                    Box::new(e),
                                )
                            })?,
                            started: get_ts(r, 4)?,
                            duration_ms: r.get(5)?,
                            exit_status: r.get(6)?,
                            timed_out: r.get(7)?,
                            output: r.get(8)?,
                            error: r.get(9)?,
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()
                })
                .map_err(err())?;
            let audit = tx
                .prepare(&format!(
                    "SELECT {AUDIT_COLS} FROM audit WHERE alarm_id = ?1 ORDER BY at, id"
                ))
                .and_then(|mut s| s.query_map([id], audit_from)?.collect::<Result<Vec<_>, _>>())
                .map_err(err())?
                .into_iter()
                .collect::<Result<Vec<_>, StoreError>>()?;
            tx.commit().map_err(err())?;
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
        })
        .await
    }

    pub(in crate::store) async fn history_series(
        &self,
        check: &str,
        plan: BucketPlan,
        change_limit: i64,
    ) -> Result<(Vec<BucketRow>, Vec<PerfRow>, Vec<StateChangeRow>), StoreError> {
        let check = check.to_string();
        self.call(move |conn, ctx| {
            let what = format!("reading the history series of {check}");
            let err = || ctx.err(what.clone());
            let (from, to) = (ts(plan.from()), ts(plan.to()));
            let tx = conn.transaction().map_err(err())?;
            let buckets = tx
                .prepare_cached(&format!(
                    "SELECT {BUCKET_SQL} AS b, count(*), max({SEVERITY_SQL}),
                            min(duration_ms), avg(duration_ms), max(duration_ms)
                     FROM results WHERE check_name = ?1 AND started_at >= ?2 AND started_at < ?3
                     GROUP BY b ORDER BY b"
                ))
                .and_then(|mut s| {
                    s.query_map(
                        params![check, from, to, plan.from_us, plan.width_us],
                        |r| {
                            Ok(BucketRow {
                                bucket: r.get(0)?,
                                count: r.get(1)?,
                                worst: r.get(2)?,
                                duration: ValueStats {
                                    min: r.get(3)?,
                                    avg: r.get(4)?,
                                    max: r.get(5)?,
                                },
                            })
                        },
                    )?
                    .collect::<Result<Vec<_>, _>>()
                })
                .map_err(err())?;
            // The perfdata is aggregated in Rust: SQLite's JSON functions
            // would parse every item once per field (see series.rs).
            let mut acc = PerfAccumulator::default();
            {
                let mut stmt = tx
                    .prepare_cached(&format!(
                        "SELECT {BUCKET_SQL} AS b, perfdata
                         FROM results WHERE check_name = ?1 AND started_at >= ?2 AND started_at < ?3"
                    ))
                    .map_err(err())?;
                let mut rows = stmt
                    .query(params![check, from, to, plan.from_us, plan.width_us])
                    .map_err(err())?;
                while let Some(r) = rows.next().map_err(err())? {
                    let bucket: i64 = r.get(0).map_err(err())?;
                    let perfdata = r.get_ref(1).and_then(|v| Ok(v.as_str()?)).map_err(err())?;
                    acc.add(bucket, perfdata)
                        .map_err(|source| StoreError::Json {
                            what: format!("decoding perfdata of {check}"),
                            source,
                        })?;
                }
            }
            let perf = acc.finish();
            let changes = tx
                .prepare_cached(&format!(
                    "SELECT {STATE_CHANGE_COLS} FROM state_changes
                     WHERE check_name = ?1 AND at >= ?2 AND at < ?3 ORDER BY at, id LIMIT ?4"
                ))
                .and_then(|mut s| {
                    s.query_map(params![check, from, to, change_limit], state_change_from)?
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(err())?;
            tx.commit().map_err(err())?;
            Ok((buckets, perf, changes))
        })
        .await
    }
}

fn state_change_from(r: &Row) -> rusqlite::Result<StateChangeRow> {
    Ok(StateChangeRow {
        id: r.get(0)?,
        at: get_ts(r, 1)?,
        check: r.get(2)?,
        host: r.get(3)?,
        previous_state: r.get(4)?,
        previous_state_type: r.get(5)?,
        state: r.get(6)?,
        state_type: r.get(7)?,
        attempt: r.get(8)?,
        change: r.get(9)?,
        flapping: r.get(10)?,
        unreachable: r.get(11)?,
        output: r.get(12)?,
    })
}

/// One `audit` row; the outer error is the driver's, the inner a bad id.
fn audit_from(r: &Row) -> rusqlite::Result<Result<AuditRow, StoreError>> {
    let alarm_id: Option<i64> = r.get(6)?;
    let entry = AuditEntry {
        at: get_ts(r, 1)?,
        who: r.get(2)?,
        source: r.get(3)?,
        action: r.get(4)?,
        target: r.get(5)?,
        alarm_id: None,
        check: r.get(7)?,
        result: r.get(8)?,
        detail: get_json(r, 9)?,
    };
    let id: i64 = r.get(0)?;
    Ok(alarm_id
        .map(lifecycle_id)
        .transpose()
        .map(|alarm_id| AuditRow {
            id,
            entry: AuditEntry { alarm_id, ..entry },
        }))
}
