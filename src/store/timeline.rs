//! An alarm's whole story for the HTTP API's read side: the alarm row and,
//! in time order, its lifecycle events, its check's state changes while it
//! was open, its notifications with their delivery outcome, its action runs
//! and the audit entries about it; plus cursor paging over alarms.
//!
//! Read-only: nothing here writes. The backends read the parts in one
//! snapshot; merging them into one ordered list is pure ([`merge`]).

use super::alarms::db_id;
use super::feed::AuditRow;
use super::{dispatch, AlarmRow, Backend, Store, StoreError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// At most this many state changes go into one timeline (a flapping check
/// with a long alarm has many); [`AlarmTimeline::state_changes_truncated`]
/// says when more were left out.
pub const TIMELINE_STATE_CHANGES: u32 = 5000;

/// One row of `state_changes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateChangeRow {
    /// Its id.
    pub id: i64,
    /// When (the result's start).
    pub at: DateTime<Utc>,
    /// The check.
    pub check: String,
    /// Its host.
    pub host: String,
    /// State before (`OK`, ...).
    pub previous_state: String,
    /// State type before (`SOFT`, `HARD`).
    pub previous_state_type: String,
    /// State after.
    pub state: String,
    /// State type after.
    pub state_type: String,
    /// Attempt number after.
    pub attempt: i32,
    /// The state machine's name for it (`soft_problem`, `hard_problem`, ...).
    pub change: String,
    /// Whether the check is flapping.
    pub flapping: bool,
    /// Whether its host is unreachable.
    pub unreachable: bool,
    /// The result's first line of output.
    pub output: String,
}

/// One notification with its delivery outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationRow {
    /// Its id.
    pub id: i64,
    /// When it was queued.
    pub created: DateTime<Utc>,
    /// Who.
    pub contact: String,
    /// Through which notifier.
    pub channel: String,
    /// Its idempotency key (Message-ID / Idempotency-Key suffix).
    pub key: String,
    /// Its subject, if it has one.
    pub subject: Option<String>,
    /// `pending`, `sent` or `failed` (given up).
    pub status: String,
    /// Delivery attempts that failed so far.
    pub attempts: i32,
    /// When the next attempt is due (while pending).
    pub next_attempt: DateTime<Utc>,
    /// When it was sent.
    pub sent: Option<DateTime<Utc>>,
    /// The last delivery error.
    pub last_error: Option<String>,
}

/// One run of an action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRunRow {
    /// Its id.
    pub id: i64,
    /// Its request key (`ALARM:RULE:INDEX`), if recorded.
    pub key: Option<String>,
    /// The action's kind (`script`, `restart-service`, ...).
    pub action: String,
    /// The command line that ran.
    pub argv: Vec<String>,
    /// When it started.
    pub started: DateTime<Utc>,
    /// How long it ran, in milliseconds.
    pub duration_ms: f64,
    /// Its exit status; `None` when killed or never started.
    pub exit_status: Option<i32>,
    /// Whether it was killed for taking too long.
    pub timed_out: bool,
    /// What it printed.
    pub output: String,
    /// Why it could not run, if it could not.
    pub error: Option<String>,
}

/// One entry of the alarm's own history (`alarm_events`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmEventEntry {
    /// Its id.
    pub id: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// The lifecycle's event name (`opened`, `notified`, `escalated`, ...).
    pub event: String,
    /// The whole lifecycle event as JSON.
    pub detail: serde_json::Value,
}

/// One entry of an alarm's timeline; serialised with `kind` naming the variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TimelineEntry {
    /// The lifecycle recorded something.
    Alarm(AlarmEventEntry),
    /// The check changed state.
    StateChange(StateChangeRow),
    /// A notification (at the time it was queued, with its outcome).
    Notification(NotificationRow),
    /// An action ran.
    Action(ActionRunRow),
    /// Someone did something about the alarm through the API.
    Audit(AuditRow),
}

impl TimelineEntry {
    /// When it happened.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            TimelineEntry::Alarm(e) => e.at,
            TimelineEntry::StateChange(s) => s.at,
            TimelineEntry::Notification(n) => n.created,
            TimelineEntry::Action(a) => a.started,
            TimelineEntry::Audit(a) => a.entry.at,
        }
    }

    /// At the same instant, cause before effect: a state change opens or
    /// changes an alarm, which queues notifications and runs actions.
    fn rank(&self) -> (u8, i64) {
        match self {
            TimelineEntry::StateChange(s) => (0, s.id),
            TimelineEntry::Alarm(e) => (1, e.id),
            TimelineEntry::Notification(n) => (2, n.id),
            TimelineEntry::Action(a) => (3, a.id),
            TimelineEntry::Audit(a) => (4, a.id),
        }
    }
}

/// An alarm and everything that happened to it, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmTimeline {
    /// The alarm.
    pub alarm: AlarmRow,
    /// What happened, in time order.
    pub entries: Vec<TimelineEntry>,
    /// More than [`TIMELINE_STATE_CHANGES`] state changes fell into the
    /// alarm's time; only the first ones are listed.
    pub state_changes_truncated: bool,
}

/// What the backends read for a timeline, in one snapshot.
#[derive(Debug, Clone, Default)]
pub(super) struct TimelineParts {
    pub(super) events: Vec<AlarmEventEntry>,
    pub(super) state_changes: Vec<StateChangeRow>,
    pub(super) notifications: Vec<NotificationRow>,
    pub(super) actions: Vec<ActionRunRow>,
    pub(super) audit: Vec<AuditRow>,
}

/// All parts as one list in time order (ties: cause before effect, then id).
pub(super) fn merge(parts: TimelineParts) -> Vec<TimelineEntry> {
    let mut all: Vec<TimelineEntry> = parts
        .events
        .into_iter()
        .map(TimelineEntry::Alarm)
        .chain(
            parts
                .state_changes
                .into_iter()
                .map(TimelineEntry::StateChange),
        )
        .chain(
            parts
                .notifications
                .into_iter()
                .map(TimelineEntry::Notification),
        )
        .chain(parts.actions.into_iter().map(TimelineEntry::Action))
        .chain(parts.audit.into_iter().map(TimelineEntry::Audit))
        .collect();
    all.sort_by_key(|e| (e.at(), e.rank()));
    all
}

impl Store {
    /// One alarm with everything that happened to it, in time order;
    /// `None` for an unknown alarm. The state changes are those of its
    /// check from the change that started the problem (the last one from
    /// OK at or before the alarm opened) until it resolved.
    pub async fn alarm_timeline(&self, id: u64) -> Result<Option<AlarmTimeline>, StoreError> {
        let id = db_id(id)?;
        let limit = i64::from(TIMELINE_STATE_CHANGES);
        let Some((row, mut parts)) = dispatch!(self, b => b.alarm_timeline(id, limit + 1).await)?
        else {
            return Ok(None);
        };
        let truncated = parts.state_changes.len() > TIMELINE_STATE_CHANGES as usize;
        parts
            .state_changes
            .truncate(TIMELINE_STATE_CHANGES as usize);
        Ok(Some(AlarmTimeline {
            alarm: row.with_reason()?,
            entries: merge(parts),
            state_changes_truncated: truncated,
        }))
    }

    /// At most `limit` alarms (only open ones when `open_only`), newest
    /// (highest id) first, with ids below `before_id` when given: the next
    /// page starts before the last id of this one.
    pub async fn list_alarms_page(
        &self,
        open_only: bool,
        before_id: Option<u64>,
        limit: u32,
    ) -> Result<Vec<AlarmRow>, StoreError> {
        let before = before_id.map(db_id).transpose()?;
        let rows =
            dispatch!(self, b => b.list_alarms_page(open_only, before, i64::from(limit)).await)?;
        rows.into_iter().map(AlarmRow::with_reason).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::feed::AuditEntry;
    use chrono::TimeZone;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + secs, 0)
            .single()
            .expect("valid")
    }

    fn change(id: i64, at: i64) -> StateChangeRow {
        StateChangeRow {
            id,
            at: t(at),
            check: "web".into(),
            host: "h".into(),
            previous_state: "OK".into(),
            previous_state_type: "HARD".into(),
            state: "CRITICAL".into(),
            state_type: "HARD".into(),
            attempt: 1,
            change: "hard_problem".into(),
            flapping: false,
            unreachable: false,
            output: String::new(),
        }
    }

    fn event(id: i64, at: i64) -> AlarmEventEntry {
        AlarmEventEntry {
            id,
            at: t(at),
            event: "opened".into(),
            detail: serde_json::json!({}),
        }
    }

    fn audit(id: i64, at: i64) -> AuditRow {
        AuditRow {
            id,
            entry: AuditEntry {
                at: t(at),
                who: "ops".into(),
                source: "127.0.0.1".into(),
                action: "POST".into(),
                target: "alarm 1".into(),
                alarm_id: Some(1),
                check: None,
                result: "200".into(),
                detail: serde_json::json!({}),
            },
        }
    }

    #[test]
    fn merge_orders_by_time_then_cause_then_id() {
        let parts = TimelineParts {
            events: vec![event(2, 10), event(1, 5)],
            state_changes: vec![change(7, 5), change(3, 0)],
            audit: vec![audit(1, 5)],
            ..TimelineParts::default()
        };
        let order: Vec<(i64, u8, i64)> = merge(parts)
            .iter()
            .map(|e| {
                let (rank, id) = e.rank();
                (e.at().timestamp() - 1_700_000_000, rank, id)
            })
            .collect();
        assert_eq!(
            order,
            vec![(0, 0, 3), (5, 0, 7), (5, 1, 1), (5, 4, 1), (10, 1, 2)]
        );
    }

    #[test]
    fn entries_serialise_with_their_kind() {
        let v = serde_json::to_value(TimelineEntry::Audit(audit(4, 0))).expect("json");
        assert_eq!(v["kind"], "audit");
        assert_eq!(v["id"], 4);
        assert_eq!(v["who"], "ops");
        let v = serde_json::to_value(TimelineEntry::StateChange(change(1, 0))).expect("json");
        assert_eq!(v["kind"], "state_change");
        assert_eq!(v["state"], "CRITICAL");
    }
}
