//! Acknowledgements and their removal asked for outside the daemon
//! (`laxmon ack`, `laxmon unack`), as requests in the `alarm_requests`
//! table of migration 0005.
//!
//! The alarm lifecycle is the one writer of an alarm's ack columns: another
//! process never touches them, it queues a request; the daemon polls for
//! the requests not yet applied, applies each to its lifecycle (which
//! saves the alarm as it is then) and notes the outcome. Until then, the
//! read side shows an alarm as it will be once its requests are applied
//! ([`Store::with_pending_requests`]), so `laxmon ack` is visible at once,
//! with or without a daemon. This file holds the SQL of both backends for
//! this one table.

use super::alarms::{db_id, lifecycle_id};
use super::postgres::PgStore;
use super::sqlite::{get_opt_ts, get_ts, ts, SqliteStore};
use super::{dispatch, AlarmRow, Backend, Store, StoreError};
use crate::alarm::lifecycle::AckTerms;
use crate::config::StorageConfig;
use chrono::{DateTime, Utc};
use rusqlite::params;

/// What an operator asked of an alarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlarmRequestOp {
    /// Acknowledge it on these terms.
    Ack(AckTerms),
    /// Remove its acknowledgement.
    Unack {
        /// Who removes it.
        by: String,
    },
}

/// One request not yet applied by the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmRequest {
    /// The request's number (applied in this order).
    pub id: u64,
    /// The alarm (the lifecycle's id).
    pub alarm_id: u64,
    /// What is asked.
    pub op: AlarmRequestOp,
    /// When it was asked.
    pub at: DateTime<Utc>,
}

/// A request's columns, in [`COLS`] order.
type Columns = (
    i64,
    i64,
    String,
    String,
    String,
    Option<DateTime<Utc>>,
    bool,
    DateTime<Utc>,
);

/// A request as the backends write and read it.
struct RequestRecord {
    id: i64,
    alarm_id: i64,
    op: &'static str,
    by: String,
    comment: String,
    expires: Option<DateTime<Utc>>,
    sticky: bool,
    at: DateTime<Utc>,
}

impl RequestRecord {
    fn new(alarm_id: u64, op: &AlarmRequestOp, at: DateTime<Utc>) -> Result<Self, StoreError> {
        let (op, by, comment, expires, sticky) = match op {
            AlarmRequestOp::Ack(t) => ("ack", t.by.clone(), t.comment.clone(), t.expires, t.sticky),
            AlarmRequestOp::Unack { by } => ("unack", by.clone(), String::new(), None, true),
        };
        Ok(RequestRecord {
            id: 0,
            alarm_id: db_id(alarm_id)?,
            op,
            by,
            comment,
            expires,
            sticky,
            at,
        })
    }

    fn from_columns(c: Columns) -> Result<RequestRecord, StoreError> {
        let (id, alarm_id, op, by, comment, expires, sticky, at) = c;
        let op = match op.as_str() {
            "ack" => "ack",
            "unack" => "unack",
            other => {
                return Err(StoreError::Corrupt(format!(
                    "alarm request {id} has the unknown op {other:?}"
                )))
            }
        };
        Ok(RequestRecord {
            id,
            alarm_id,
            op,
            by,
            comment,
            expires,
            sticky,
            at,
        })
    }

    fn into_request(self) -> Result<AlarmRequest, StoreError> {
        let op = match self.op {
            "ack" => AlarmRequestOp::Ack(AckTerms {
                by: self.by,
                comment: self.comment,
                expires: self.expires,
                sticky: self.sticky,
            }),
            _ => AlarmRequestOp::Unack { by: self.by },
        };
        Ok(AlarmRequest {
            id: u64::try_from(self.id)
                .map_err(|_| StoreError::Corrupt(format!("negative request id {}", self.id)))?,
            alarm_id: lifecycle_id(self.alarm_id)?,
            op,
            at: self.at,
        })
    }
}

impl Store {
    /// The requests the daemon has not applied yet, oldest first.
    pub async fn pending_alarm_requests(&self) -> Result<Vec<AlarmRequest>, StoreError> {
        let rows = dispatch!(self, b => b.pending_requests().await)?;
        rows.into_iter().map(RequestRecord::into_request).collect()
    }

    /// Notes that request `id` was applied at `at`, with its outcome
    /// (`applied`, or why it was refused).
    pub async fn finish_alarm_request(
        &self,
        id: u64,
        at: DateTime<Utc>,
        outcome: &str,
    ) -> Result<(), StoreError> {
        let id = i64::try_from(id).map_err(|_| StoreError::Corrupt(format!("request id {id}")))?;
        dispatch!(self, b => b.finish_request(id, at, outcome).await)
    }

    /// Queues a request for the daemon.
    async fn request(
        &self,
        alarm_id: u64,
        op: &AlarmRequestOp,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let rec = RequestRecord::new(alarm_id, op, at)?;
        dispatch!(self, b => b.insert_request(&rec).await)
    }

    /// `rows` as they will be once the pending requests are applied: an
    /// open alarm's acknowledgement as asked for, or removed.
    pub(super) async fn with_pending_requests(
        &self,
        mut rows: Vec<AlarmRow>,
    ) -> Result<Vec<AlarmRow>, StoreError> {
        if rows.iter().all(|r| r.resolved.is_some()) {
            return Ok(rows);
        }
        for req in self.pending_alarm_requests().await? {
            let Some(row) = rows
                .iter_mut()
                .find(|r| r.id == req.alarm_id && r.resolved.is_none())
            else {
                continue;
            };
            match req.op {
                AlarmRequestOp::Ack(t) if row.ack_at.is_none() => {
                    row.ack_by = Some(t.by);
                    row.ack_comment = Some(t.comment);
                    row.ack_at = Some(req.at);
                    row.ack_expires = t.expires;
                    row.ack_sticky = Some(t.sticky);
                }
                AlarmRequestOp::Unack { .. } if row.ack_at.is_some() => {
                    row.ack_by = None;
                    row.ack_comment = None;
                    row.ack_at = None;
                    row.ack_expires = None;
                    row.ack_sticky = None;
                }
                _ => {}
            }
        }
        Ok(rows)
    }
}

/// The open alarm `id` as the read side shows it, or why it cannot take a request.
async fn open_row(store: &Store, id: u64) -> Result<AlarmRow, StoreError> {
    let Some(row) = store.alarm_row(id).await? else {
        return Err(StoreError::NoSuchAlarm(id));
    };
    if let Some(at) = row.resolved {
        return Err(StoreError::AlarmResolved { id, at });
    }
    Ok(row)
}

/// `laxmon ack ID`: asks the daemon to acknowledge an open, unacknowledged
/// alarm on `terms` (the caller passes `$SUDO_USER` or the account name as
/// `by` by default); the daemon applies it on its next poll, and the read
/// side shows it at once. Returns a confirmation line.
pub async fn ack_command(
    cfg: &StorageConfig,
    id: u64,
    terms: &AckTerms,
) -> Result<String, StoreError> {
    let store = Store::open(cfg).await?;
    let row = open_row(&store, id).await?;
    if let Some(at) = row.ack_at {
        return Err(StoreError::AlreadyAcknowledged {
            id,
            by: row.ack_by.unwrap_or_else(|| "someone".into()),
            at,
        });
    }
    let now = Utc::now();
    if let Some(expires) = terms.expires.filter(|t| *t <= now) {
        return Err(StoreError::AckExpiresInPast { id, expires });
    }
    store
        .request(id, &AlarmRequestOp::Ack(terms.clone()), now)
        .await?;
    let comment = if terms.comment.is_empty() {
        String::new()
    } else {
        format!(": {}", terms.comment)
    };
    let until = match terms.expires {
        Some(t) => format!(" until {}", t.format("%Y-%m-%d %H:%M:%S UTC")),
        None => String::new(),
    };
    let sticky = if terms.sticky {
        ""
    } else {
        " (not sticky: ends when the state changes)"
    };
    Ok(format!(
        "alarm {id} ({} on {}, {}) acknowledged by {}{comment}{until}{sticky}\n",
        row.check, row.host, row.state, terms.by
    ))
}

/// `laxmon unack ID`: asks the daemon to remove the acknowledgement of an
/// open alarm, as `by`; repeats and escalation resume. Returns a
/// confirmation line.
pub async fn unack_command(cfg: &StorageConfig, id: u64, by: &str) -> Result<String, StoreError> {
    let store = Store::open(cfg).await?;
    let row = open_row(&store, id).await?;
    let Some(acked_by) = row.ack_by.filter(|_| row.ack_at.is_some()) else {
        return Err(StoreError::NotAcknowledged(id));
    };
    store
        .request(id, &AlarmRequestOp::Unack { by: by.into() }, Utc::now())
        .await?;
    Ok(format!(
        "alarm {id} ({} on {}, {}) no longer acknowledged (was by {acked_by}); removed by {by}\n",
        row.check, row.host, row.state
    ))
}

/// The columns of a request, in [`Columns`] order.
const COLS: &str = "id, alarm_id, op, requested_by, comment, expires_at, sticky, requested_at";

impl PgStore {
    async fn insert_request(&self, r: &RequestRecord) -> Result<(), StoreError> {
        self.exec(
            format!("queueing {} of alarm {}", r.op, r.alarm_id),
            "INSERT INTO alarm_requests (alarm_id, op, requested_by, comment, expires_at, sticky, requested_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[&r.alarm_id, &r.op, &r.by, &r.comment, &r.expires, &r.sticky, &r.at],
        )
        .await
        .map(drop)
    }

    async fn pending_requests(&self) -> Result<Vec<RequestRecord>, StoreError> {
        self.ensure_migrated().await?;
        let client = self.client().await?;
        let rows = client
            .query(
                &format!("SELECT {COLS} FROM alarm_requests WHERE applied_at IS NULL ORDER BY id"),
                &[],
            )
            .await
            .map_err(self.err("listing pending alarm requests"))?;
        rows.iter()
            .map(|r| {
                RequestRecord::from_columns((
                    r.get(0),
                    r.get(1),
                    r.get(2),
                    r.get(3),
                    r.get(4),
                    r.get(5),
                    r.get(6),
                    r.get(7),
                ))
            })
            .collect()
    }

    async fn finish_request(
        &self,
        id: i64,
        at: DateTime<Utc>,
        outcome: &str,
    ) -> Result<(), StoreError> {
        self.exec(
            format!("noting alarm request {id} as applied"),
            "UPDATE alarm_requests SET applied_at = $2, outcome = $3 WHERE id = $1",
            &[&id, &at, &outcome],
        )
        .await
        .map(drop)
    }
}

impl SqliteStore {
    async fn insert_request(&self, r: &RequestRecord) -> Result<(), StoreError> {
        let what = format!("queueing {} of alarm {}", r.op, r.alarm_id);
        let values = vec![
            r.alarm_id.into(),
            r.op.to_string().into(),
            r.by.clone().into(),
            r.comment.clone().into(),
            r.expires
                .map_or(rusqlite::types::Value::Null, |t| ts(t).into()),
            r.sticky.into(),
            ts(r.at).into(),
        ];
        self.exec(
            what,
            "INSERT INTO alarm_requests (alarm_id, op, requested_by, comment, expires_at, sticky, requested_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            values,
        )
        .await
        .map(drop)
    }

    async fn pending_requests(&self) -> Result<Vec<RequestRecord>, StoreError> {
        self.call(|conn, ctx| {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {COLS} FROM alarm_requests WHERE applied_at IS NULL ORDER BY id"
                ))
                .map_err(ctx.err("listing pending alarm requests"))?;
            let rows = stmt
                .query_map(params![], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        get_opt_ts(r, 5)?,
                        r.get::<_, bool>(6)?,
                        get_ts(r, 7)?,
                    ))
                })
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(ctx.err("listing pending alarm requests"))?;
            rows.into_iter().map(RequestRecord::from_columns).collect()
        })
        .await
    }

    async fn finish_request(
        &self,
        id: i64,
        at: DateTime<Utc>,
        outcome: &str,
    ) -> Result<(), StoreError> {
        self.exec(
            format!("noting alarm request {id} as applied"),
            "UPDATE alarm_requests SET applied_at = ?2, outcome = ?3 WHERE id = ?1",
            vec![id.into(), ts(at).into(), outcome.to_string().into()],
        )
        .await
        .map(drop)
    }
}
