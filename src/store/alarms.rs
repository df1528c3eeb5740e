//! The alarm side's persistence on the real [`Store`]: the lifecycle's
//! alarms with their history ([`AlarmStore`]), the notification outbox
//! ([`NotificationStore`]), what `laxmon alarms` and `laxmon ack` need, and
//! the alarm timeline kept for the HTTP API's read side.
//!
//! This file turns lifecycle values into backend-neutral records (which
//! columns get what) and back; the SQL lives with each backend. The
//! lifecycle is the source of truth for an alarm, its acknowledgement
//! included: `laxmon ack` and `laxmon unack` (other processes) queue
//! requests (`alarm_requests.rs`) that the daemon applies, and the read
//! side here shows an alarm as it will be once they are. Nothing here
//! reads the daemon's memory.

use super::{dispatch, Backend, Store, StoreError};
use crate::alarm::lifecycle::{Ack, Alarm, Snapshot, Suppression};
use crate::alarm::outbox::{DeliveryStatus, OutboxItem};
use crate::alarm::store::{ActionRun, AlarmStore, NotificationStore};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The `daemon_state` key of the lifecycle snapshot.
pub(super) const SNAPSHOT_KEY: &str = "alarm_snapshot";

/// One alarm as `laxmon alarms` shows it, and as the alarm stage's control
/// handle returns it ([`AlarmRow::from_alarm`]), so the CLI and the HTTP
/// API show the same thing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmRow {
    /// Its id.
    pub id: u64,
    /// The check.
    pub check: String,
    /// The check's host.
    pub host: String,
    /// The latest check state (`CRITICAL`, ...).
    pub state: String,
    /// When it opened.
    pub opened: DateTime<Utc>,
    /// When it resolved; `None` while open.
    pub resolved: Option<DateTime<Utc>>,
    /// Who acknowledged it.
    pub ack_by: Option<String>,
    /// When it was acknowledged.
    pub ack_at: Option<DateTime<Utc>>,
    /// The acknowledgement's comment.
    pub ack_comment: Option<String>,
    /// When the acknowledgement expires (`None`: never, or not acknowledged).
    pub ack_expires: Option<DateTime<Utc>>,
    /// Whether the acknowledgement holds until recovery (`None` when not
    /// acknowledged); one that is not ends at the next change of problem state.
    pub ack_sticky: Option<bool>,
    /// The check's latest output.
    pub summary: String,
    /// Its notifications and actions are held back (see `suppressed_by`).
    pub suppressed: bool,
    /// Why: a maintenance window (with its name), a silence or flapping; taken from
    /// `detail`, `None` when nothing holds the alarm back or it was stored
    /// before laxmon recorded the reason.
    pub suppressed_by: Option<Suppression>,
    /// Highest escalation level any rule reached.
    pub escalation_level: i32,
    /// The lifecycle's whole alarm as JSON (`None` for alarms stored without it).
    pub detail: Option<serde_json::Value>,
}

/// One entry of an alarm's stored timeline (the `alarm_events` table): what
/// the lifecycle recorded, e.g. opened, notified, action requested,
/// acknowledged, resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmEventRow {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// The lifecycle's event name (`opened`, `notified`, `escalated`, ...).
    pub kind: String,
    /// The whole lifecycle event as JSON (its `event` field is `kind`).
    pub detail: serde_json::Value,
}

/// A lifecycle alarm as the backends write it.
#[derive(Debug, Clone)]
pub(super) struct AlarmRecord {
    pub(super) id: i64,
    pub(super) check: String,
    pub(super) host: String,
    pub(super) opened: DateTime<Utc>,
    pub(super) resolved: Option<DateTime<Utc>>,
    pub(super) state: &'static str,
    pub(super) summary: String,
    /// `(at, by, comment)`; `None`: not acknowledged (the lifecycle is the
    /// only writer of these columns).
    pub(super) ack: Option<(DateTime<Utc>, String, String)>,
    pub(super) escalation_level: i32,
    pub(super) last_notified: Option<DateTime<Utc>>,
    pub(super) suppressed: bool,
    pub(super) detail: serde_json::Value,
    /// The whole history; the backend appends the entries past those stored.
    pub(super) events: Vec<EventRecord>,
}

/// One history entry as stored in `alarm_events`.
#[derive(Debug, Clone)]
pub(super) struct EventRecord {
    pub(super) at: DateTime<Utc>,
    pub(super) kind: String,
    pub(super) detail: serde_json::Value,
}

/// An action run as the backends write it.
#[derive(Debug, Clone)]
pub(super) struct RunRecord {
    pub(super) alarm_id: i64,
    pub(super) key: String,
    pub(super) action: String,
    pub(super) argv: serde_json::Value,
    pub(super) started: DateTime<Utc>,
    pub(super) duration_ms: f64,
    pub(super) exit_status: Option<i32>,
    pub(super) timed_out: bool,
    pub(super) output: String,
    pub(super) error: Option<String>,
}

/// An outbox item as the backends write it.
#[derive(Debug, Clone)]
pub(super) struct OutboxRecord {
    pub(super) alarm_id: i64,
    pub(super) contact: String,
    pub(super) channel: String,
    pub(super) key: String,
    pub(super) payload: serde_json::Value,
    pub(super) attempts: i32,
    pub(super) next_attempt: DateTime<Utc>,
    pub(super) created: DateTime<Utc>,
}

/// A pending outbox row as the backends read it.
#[derive(Debug, Clone)]
pub(super) struct PendingRow {
    pub(super) payload: serde_json::Value,
    pub(super) attempts: i32,
    pub(super) next_attempt: DateTime<Utc>,
    pub(super) last_error: Option<String>,
}

/// An alarm id as the database column holds it.
pub(super) fn db_id(id: u64) -> Result<i64, StoreError> {
    i64::try_from(id).map_err(|_| StoreError::Corrupt(format!("alarm id {id} exceeds i64")))
}

/// A database id as the lifecycle numbers alarms.
pub(super) fn lifecycle_id(id: i64) -> Result<u64, StoreError> {
    u64::try_from(id).map_err(|_| StoreError::Corrupt(format!("negative alarm id {id}")))
}

fn to_json(v: &impl Serialize, what: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(v).map_err(|source| StoreError::Json {
        what: format!("encoding {what}"),
        source,
    })
}

fn from_json<T: serde::de::DeserializeOwned>(
    v: serde_json::Value,
    what: &str,
) -> Result<T, StoreError> {
    serde_json::from_value(v).map_err(|source| StoreError::Json {
        what: format!("decoding {what}"),
        source,
    })
}

/// Whether two instants agree to the microsecond (the databases' precision).
fn same_micros(a: DateTime<Utc>, b: DateTime<Utc>) -> bool {
    a.timestamp_micros() == b.timestamp_micros()
}

impl AlarmRecord {
    /// Maps a lifecycle alarm to its columns, history entries and JSON.
    pub(super) fn new(a: &Alarm) -> Result<AlarmRecord, StoreError> {
        let events = a
            .history
            .iter()
            .map(|e| {
                let detail = to_json(e, "an alarm event")?;
                let kind = detail
                    .get("event")
                    .and_then(|k| k.as_str())
                    .ok_or_else(|| {
                        StoreError::Corrupt(format!("alarm {} event without a kind", a.id))
                    })?
                    .to_string();
                Ok(EventRecord {
                    at: e.at,
                    kind,
                    detail,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let level = a.rules.iter().map(|r| r.level).max().unwrap_or(0);
        Ok(AlarmRecord {
            id: db_id(a.id)?,
            check: a.check.clone(),
            host: a.host.clone(),
            opened: a.opened,
            resolved: a.resolved,
            state: a.state.as_str(),
            summary: a.output.clone(),
            ack: a
                .ack
                .as_ref()
                .map(|k| (k.at, k.by.clone(), k.comment.clone())),
            escalation_level: i32::try_from(level).unwrap_or(i32::MAX),
            last_notified: a.rules.iter().filter_map(|r| r.last_round).max(),
            suppressed: a.suppressed_by.is_some(),
            detail: to_json(a, "an alarm")?,
            events,
        })
    }
}

impl AlarmRow {
    /// The lifecycle's alarm as the read side shows it (what a saved alarm
    /// reads back as, its requests applied).
    pub fn from_alarm(a: &Alarm) -> Result<AlarmRow, StoreError> {
        let level = a.rules.iter().map(|r| r.level).max().unwrap_or(0);
        Ok(AlarmRow {
            id: a.id,
            check: a.check.clone(),
            host: a.host.clone(),
            state: a.state.as_str().to_string(),
            opened: a.opened,
            resolved: a.resolved,
            ack_by: a.ack.as_ref().map(|k| k.by.clone()),
            ack_at: a.ack.as_ref().map(|k| k.at),
            ack_comment: a.ack.as_ref().map(|k| k.comment.clone()),
            ack_expires: a.ack.as_ref().and_then(|k| k.expires),
            ack_sticky: a.ack.as_ref().map(|k| k.sticky),
            summary: a.output.clone(),
            suppressed: a.suppressed_by.is_some(),
            suppressed_by: a.suppressed_by.clone(),
            escalation_level: i32::try_from(level).unwrap_or(i32::MAX),
            detail: Some(to_json(a, "an alarm")?),
        })
    }

    /// Fills `suppressed_by`, `ack_expires` and `ack_sticky` from the
    /// lifecycle's alarm in `detail` (the columns keep only whether it is
    /// suppressed, and who acknowledged when).
    pub(super) fn with_reason(mut self) -> Result<AlarmRow, StoreError> {
        let reason = self.detail.as_ref().and_then(|d| d.get("suppressed_by"));
        if let Some(reason) = reason {
            self.suppressed_by = from_json(reason.clone(), "why an alarm is suppressed")?;
        }
        if self.ack_at.is_some() {
            let ack = self.detail.as_ref().and_then(|d| d.get("ack"));
            let ack: Option<Ack> = match ack {
                Some(a) if !a.is_null() => from_json(a.clone(), "an alarm's acknowledgement")?,
                _ => None,
            };
            self.ack_expires = ack.as_ref().and_then(|a| a.expires);
            self.ack_sticky = Some(ack.is_none_or(|a| a.sticky));
        }
        Ok(self)
    }
}

impl RunRecord {
    /// Maps a finished action run to its columns.
    pub(super) fn new(r: &ActionRun) -> Result<RunRecord, StoreError> {
        Ok(RunRecord {
            alarm_id: db_id(r.alarm_id)?,
            key: r.key.clone(),
            action: r.action.clone(),
            argv: to_json(&r.argv, "an action's argv")?,
            started: r.started,
            duration_ms: r.duration.as_secs_f64() * 1000.0,
            exit_status: r.exit_code,
            timed_out: r.timed_out,
            output: r.output.clone(),
            error: r.error.clone(),
        })
    }
}

impl OutboxRecord {
    /// Maps an outbox item to its columns; the payload is the whole item.
    pub(super) fn new(item: &OutboxItem) -> Result<OutboxRecord, StoreError> {
        Ok(OutboxRecord {
            alarm_id: db_id(item.alarm_id)?,
            contact: item.contact.clone(),
            channel: item.notifier.clone(),
            key: item.key.clone(),
            payload: to_json(item, "an outbox item")?,
            attempts: i32::try_from(item.attempts).unwrap_or(i32::MAX),
            next_attempt: item.next_attempt,
            created: item.created,
        })
    }
}

impl PendingRow {
    /// The stored item with attempts, next attempt and last error from the
    /// columns (the payload keeps sub-microsecond digits the columns cannot).
    fn into_item(self) -> Result<OutboxItem, StoreError> {
        let mut item: OutboxItem = from_json(self.payload, "an outbox item")?;
        item.attempts = u32::try_from(self.attempts).unwrap_or(0);
        if !same_micros(item.next_attempt, self.next_attempt) {
            item.next_attempt = self.next_attempt;
        }
        item.last_error = self.last_error;
        item.status = DeliveryStatus::Pending;
        Ok(item)
    }
}

impl NotificationStore for Store {
    type Error = StoreError;

    async fn enqueue(&self, item: &OutboxItem) -> Result<bool, StoreError> {
        let rec = OutboxRecord::new(item)?;
        dispatch!(self, b => b.outbox_enqueue(rec).await)
    }

    async fn pending(&self) -> Result<Vec<OutboxItem>, StoreError> {
        let rows = dispatch!(self, b => b.outbox_pending().await)?;
        rows.into_iter().map(PendingRow::into_item).collect()
    }

    async fn mark_sent(&self, key: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        dispatch!(self, b => b.outbox_mark_sent(key, at).await)
    }

    async fn mark_failed(
        &self,
        key: &str,
        attempts: u32,
        error: &str,
        next_attempt: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let attempts = i32::try_from(attempts).unwrap_or(i32::MAX);
        // The payload follows the columns, keeping the time's full precision.
        let next_json = next_attempt
            .map(|t| to_json(&t, "the next attempt time"))
            .transpose()?;
        dispatch!(self, b => b.outbox_mark_failed(key, attempts, error, next_attempt, next_json).await)
    }
}

impl AlarmStore for Store {
    type Error = StoreError;

    async fn save_alarm(&self, alarm: &Alarm) -> Result<(), StoreError> {
        let rec = AlarmRecord::new(alarm)?;
        dispatch!(self, b => b.save_alarm(rec).await)
    }

    async fn save_action_run(&self, run: &ActionRun) -> Result<(), StoreError> {
        let rec = RunRecord::new(run)?;
        dispatch!(self, b => b.save_action_run(rec).await)
    }

    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        let value = to_json(snapshot, "the alarm snapshot")?;
        dispatch!(self, b => b.put_state(SNAPSHOT_KEY, value, Utc::now()).await)
    }

    async fn load_snapshot(&self) -> Result<Option<Snapshot>, StoreError> {
        match dispatch!(self, b => b.get_state(SNAPSHOT_KEY).await)? {
            Some(v) => from_json(v, "the alarm snapshot").map(Some),
            None => Ok(None),
        }
    }
}

impl Store {
    /// At most `limit` alarms (only open ones when `open_only`), newest first.
    pub async fn list_alarms(
        &self,
        open_only: bool,
        limit: u32,
    ) -> Result<Vec<AlarmRow>, StoreError> {
        let rows = dispatch!(self, b => b.list_alarms(open_only, i64::from(limit)).await)?;
        let rows = rows
            .into_iter()
            .map(AlarmRow::with_reason)
            .collect::<Result<Vec<_>, _>>()?;
        self.with_pending_requests(rows).await
    }

    /// One alarm, if it exists.
    pub async fn alarm_row(&self, id: u64) -> Result<Option<AlarmRow>, StoreError> {
        let id = db_id(id)?;
        let row = dispatch!(self, b => b.alarm_row(id).await)?;
        let Some(row) = row.map(AlarmRow::with_reason).transpose()? else {
            return Ok(None);
        };
        Ok(self.with_pending_requests(vec![row]).await?.pop())
    }

    /// One alarm's timeline, oldest first (empty for an unknown alarm).
    /// Kept for the HTTP API's read side; nothing in the daemon reads it.
    pub async fn alarm_events(&self, id: u64) -> Result<Vec<AlarmEventRow>, StoreError> {
        let id = db_id(id)?;
        dispatch!(self, b => b.alarm_events(id).await)
    }
}
