//! The HTTP API's own records in the store: the event feed (`events`), the
//! audit log (`audit`) and the answers kept for idempotency keys
//! (`idempotency`), as typed values over both backends.
//!
//! Nothing here writes an event: the triggers of migration 4 append one for
//! every state change, alarm event, notification (queued and each delivery
//! outcome), action run and audit entry, in the same transaction as that
//! record, so no write path can forget one. The SQL lives with each backend.

use super::alarms::db_id;
use super::{dispatch, Backend, Store, StoreError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How long the answer to an idempotency key is kept (and honoured).
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);

/// What an event of the feed reports; the stable names clients see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedKind {
    /// A check's state or state type changed, or flapping started or stopped
    /// (a row of `state_changes`).
    StateChange,
    /// Something happened to an alarm (a row of `alarm_events`: opened,
    /// notified, escalated, acknowledged, resolved, ...).
    Alarm,
    /// A notification was queued, sent, failed for good or failed with a
    /// retry to come (`detail.change` says which).
    Notification,
    /// An action ran (a row of `action_runs`).
    Action,
    /// Someone did something through the API (a row of `audit`).
    Audit,
}

impl FeedKind {
    /// The name as stored and serialised (`state_change`, `alarm`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            FeedKind::StateChange => "state_change",
            FeedKind::Alarm => "alarm",
            FeedKind::Notification => "notification",
            FeedKind::Action => "action",
            FeedKind::Audit => "audit",
        }
    }

    /// The kind for a stored name.
    pub(super) fn parse(s: &str) -> Result<FeedKind, StoreError> {
        [
            FeedKind::StateChange,
            FeedKind::Alarm,
            FeedKind::Notification,
            FeedKind::Action,
            FeedKind::Audit,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown event kind {s:?} in events")))
    }
}

/// One event of the feed. Ids only grow, in commit order, and are never
/// reused: a client that has seen id N asks for what came after N.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRow {
    /// Its id.
    pub id: i64,
    /// When the reported thing happened (a notification's outcome: when it
    /// was recorded).
    pub at: DateTime<Utc>,
    /// What it reports.
    pub kind: FeedKind,
    /// The check concerned, if any.
    pub check: Option<String>,
    /// The check's host, if known.
    pub host: Option<String>,
    /// The alarm concerned, if any.
    pub alarm_id: Option<u64>,
    /// What a client needs to show it (fields per kind; timestamps as
    /// RFC 3339 UTC text with microseconds).
    pub detail: serde_json::Value,
}

/// One thing someone did through the API, to record with [`Store::record_audit`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// Who (the token's name or user).
    pub who: String,
    /// From where (the peer address).
    pub source: String,
    /// What was asked, e.g. `POST /api/v1/alarms/12/ack`.
    pub action: String,
    /// What it was done to, in words, e.g. `alarm 12`.
    pub target: String,
    /// The alarm concerned, if any (the entry then shows in its timeline).
    pub alarm_id: Option<u64>,
    /// The check concerned, if any.
    pub check: Option<String>,
    /// The outcome, e.g. `200 acknowledged` or `409 already resolved`.
    pub result: String,
    /// Anything else worth keeping (the request's comment, ...).
    pub detail: serde_json::Value,
}

/// A stored [`AuditEntry`] with its id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRow {
    /// Its id.
    pub id: i64,
    /// The entry.
    #[serde(flatten)]
    pub entry: AuditEntry,
}

/// Which audit entries [`Store::audit`] lists, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only those about this alarm.
    pub alarm_id: Option<u64>,
    /// Only those about this check.
    pub check: Option<String>,
    /// Only those older than this id (the next page).
    pub before_id: Option<i64>,
    /// At most this many.
    pub limit: u32,
}

impl Default for AuditFilter {
    fn default() -> AuditFilter {
        AuditFilter {
            alarm_id: None,
            check: None,
            before_id: None,
            limit: 100,
        }
    }
}

/// The answer kept for an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredResponse {
    /// The hash of the request that got it (a retry with another body is
    /// a client error, not a retry).
    pub request_hash: String,
    /// Its HTTP status.
    pub status: u16,
    /// Its body, as sent.
    pub body: String,
    /// When it was stored.
    pub at: DateTime<Utc>,
}

/// An audit entry as the backends write it.
#[derive(Debug, Clone)]
pub(super) struct AuditRecord {
    pub(super) at: DateTime<Utc>,
    pub(super) who: String,
    pub(super) source: String,
    pub(super) action: String,
    pub(super) target: String,
    pub(super) alarm_id: Option<i64>,
    pub(super) check: Option<String>,
    pub(super) result: String,
    pub(super) detail: serde_json::Value,
}

/// Which audit rows a backend reads.
#[derive(Debug, Clone)]
pub(super) struct AuditQuery {
    pub(super) alarm_id: Option<i64>,
    pub(super) check: Option<String>,
    pub(super) before_id: Option<i64>,
    pub(super) limit: i64,
}

/// An idempotency answer as the backends write it.
#[derive(Debug, Clone)]
pub(super) struct IdempotencyRecord {
    pub(super) scope: String,
    pub(super) key: String,
    pub(super) request_hash: String,
    pub(super) status: i32,
    pub(super) body: String,
    pub(super) at: DateTime<Utc>,
}

impl AuditRecord {
    fn new(e: &AuditEntry) -> Result<AuditRecord, StoreError> {
        Ok(AuditRecord {
            at: e.at,
            who: e.who.clone(),
            source: e.source.clone(),
            action: e.action.clone(),
            target: e.target.clone(),
            alarm_id: e.alarm_id.map(db_id).transpose()?,
            check: e.check.clone(),
            result: e.result.clone(),
            detail: e.detail.clone(),
        })
    }
}

/// An alarm id column (nullable) as the lifecycle numbers alarms.
pub(super) fn opt_lifecycle_id(id: Option<i64>) -> Result<Option<u64>, StoreError> {
    id.map(super::alarms::lifecycle_id).transpose()
}

/// `now - IDEMPOTENCY_TTL`: answers stored before this are expired.
pub(super) fn idempotency_cutoff(now: DateTime<Utc>) -> DateTime<Utc> {
    super::before(now, IDEMPOTENCY_TTL)
}

impl Store {
    /// At most `limit` events with an id above `after_id`, oldest first
    /// (`after_id` 0 starts at the oldest kept).
    pub async fn events_after(
        &self,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<EventRow>, StoreError> {
        dispatch!(self, b => b.events_after(after_id, i64::from(limit)).await)
    }

    /// The id of the newest event, 0 when there is none: a client that
    /// wants only what comes next starts after it.
    pub async fn latest_event_id(&self) -> Result<i64, StoreError> {
        dispatch!(self, b => b.latest_event_id().await)
    }

    /// Records what someone did through the API; returns the entry's id.
    /// The entry also appears in the event feed and, with an alarm id, in
    /// that alarm's timeline.
    pub async fn record_audit(&self, entry: &AuditEntry) -> Result<i64, StoreError> {
        let rec = AuditRecord::new(entry)?;
        dispatch!(self, b => b.record_audit(rec).await)
    }

    /// Audit entries matching `filter`, newest first.
    pub async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRow>, StoreError> {
        let q = AuditQuery {
            alarm_id: filter.alarm_id.map(db_id).transpose()?,
            check: filter.check.clone(),
            before_id: filter.before_id,
            limit: i64::from(filter.limit),
        };
        dispatch!(self, b => b.audit(q).await)
    }

    /// The answer stored for `key` of `scope`, unless it is older than
    /// [`IDEMPOTENCY_TTL`].
    pub async fn idempotency_get(
        &self,
        scope: &str,
        key: &str,
    ) -> Result<Option<StoredResponse>, StoreError> {
        let since = idempotency_cutoff(Utc::now());
        dispatch!(self, b => b.idempotency_get(scope, key, since).await)
    }

    /// Stores the answer for `key` of `scope` unless one is stored already;
    /// returns whether this call stored it. Of two concurrent calls exactly
    /// one wins; the loser reads the winner's with [`Store::idempotency_get`].
    /// An expired answer (see [`IDEMPOTENCY_TTL`]) not yet removed by
    /// retention is replaced.
    pub async fn idempotency_put(
        &self,
        scope: &str,
        key: &str,
        request_hash: &str,
        status: u16,
        body: &str,
    ) -> Result<bool, StoreError> {
        let now = Utc::now();
        let rec = IdempotencyRecord {
            scope: scope.to_string(),
            key: key.to_string(),
            request_hash: request_hash.to_string(),
            status: i32::from(status),
            body: body.to_string(),
            at: now,
        };
        dispatch!(self, b => b.idempotency_put(rec, idempotency_cutoff(now)).await)
    }
}

#[cfg(test)]
mod tests {
    use super::FeedKind;

    #[test]
    fn feed_kinds_round_trip_their_names() {
        for k in [
            FeedKind::StateChange,
            FeedKind::Alarm,
            FeedKind::Notification,
            FeedKind::Action,
            FeedKind::Audit,
        ] {
            assert_eq!(FeedKind::parse(k.as_str()).expect("known"), k);
            assert_eq!(
                serde_json::to_value(k).expect("json"),
                serde_json::json!(k.as_str())
            );
        }
        assert!(FeedKind::parse("nope").is_err());
    }
}
