//! What the alarm side needs from the database, as two small traits, and
//! an in-memory implementation for tests and for running without a store.
//!
//! The store engineer implements [`NotificationStore`] and [`AlarmStore`]
//! on the real store; the contract is in each method's comment. Nothing
//! here talks to a database.

use super::lifecycle::{Alarm, Snapshot};
use super::outbox::OutboxItem;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

/// One finished action run, as recorded with its alarm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRun {
    /// The request's key (`ALARM:RULE:INDEX`).
    pub key: String,
    /// The alarm.
    pub alarm_id: u64,
    /// The action's kind (`script`, `restart-service`, ...).
    pub action: String,
    /// The argv that ran (empty when nothing could be started).
    pub argv: Vec<String>,
    /// When it started.
    pub started: DateTime<Utc>,
    /// How long it ran.
    pub duration: Duration,
    /// Exit code; `None` when killed by a signal, timed out or not started.
    pub exit_code: Option<i32>,
    /// It ran into its timeout and its process group was killed.
    pub timed_out: bool,
    /// stdout and stderr, capped.
    pub output: String,
    /// Why it could not start, if it could not.
    pub error: Option<String>,
}

impl ActionRun {
    /// Whether the action succeeded (exit 0).
    pub fn succeeded(&self) -> bool {
        self.exit_code == Some(0)
    }
}

/// The outbox's persistence: every notification exactly once, across restarts.
pub trait NotificationStore {
    /// The store's error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Inserts a pending item; `Ok(false)` and no change when an item with
    /// this key exists already (in any status). Unique index on `key`.
    fn enqueue(&self, item: &OutboxItem) -> impl Future<Output = Result<bool, Self::Error>> + Send;

    /// Every item still pending (not sent, not given up), to resume after a restart.
    fn pending(&self) -> impl Future<Output = Result<Vec<OutboxItem>, Self::Error>> + Send;

    /// The item was delivered at `at`: never hand it out again.
    fn mark_sent(
        &self,
        key: &str,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// A delivery attempt failed: store attempts, error and the next attempt
    /// (`None`: given up for good).
    fn mark_failed(
        &self,
        key: &str,
        attempts: u32,
        error: &str,
        next_attempt: Option<DateTime<Utc>>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// Alarm persistence: alarms with their history, action runs, and the lifecycle snapshot.
pub trait AlarmStore {
    /// The store's error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Inserts or replaces an alarm by id (with its history; `laxmon alarms` reads these).
    fn save_alarm(&self, alarm: &Alarm) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Appends an action run to its alarm's record.
    fn save_action_run(
        &self,
        run: &ActionRun,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Replaces the lifecycle snapshot (open alarms, per-check memory, next id).
    fn save_snapshot(
        &self,
        snapshot: &Snapshot,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// The last saved snapshot, if any.
    fn load_snapshot(&self) -> impl Future<Output = Result<Option<Snapshot>, Self::Error>> + Send;
}

/// The in-memory store can only fail by a poisoned lock.
#[derive(Debug, thiserror::Error)]
#[error("in-memory alarm store: a lock was poisoned by a panic")]
pub struct MemoryError;

/// Both stores in memory: for tests, and until the database store lands.
#[derive(Debug, Default)]
pub struct MemoryStore {
    items: Mutex<Vec<OutboxItem>>,
    alarms: Mutex<Vec<Alarm>>,
    runs: Mutex<Vec<ActionRun>>,
    snapshot: Mutex<Option<Snapshot>>,
}

impl MemoryStore {
    /// Every outbox item, in insertion order.
    pub fn items(&self) -> Vec<OutboxItem> {
        self.items.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Every action run recorded.
    pub fn runs(&self) -> Vec<ActionRun> {
        self.runs.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl NotificationStore for MemoryStore {
    type Error = MemoryError;

    async fn enqueue(&self, item: &OutboxItem) -> Result<bool, MemoryError> {
        let mut items = self.items.lock().map_err(|_| MemoryError)?;
        if items.iter().any(|i| i.key == item.key) {
            return Ok(false);
        }
        items.push(item.clone());
        Ok(true)
    }

    async fn pending(&self) -> Result<Vec<OutboxItem>, MemoryError> {
        let items = self.items.lock().map_err(|_| MemoryError)?;
        Ok(items.iter().filter(|i| i.is_pending()).cloned().collect())
    }

    async fn mark_sent(&self, key: &str, at: DateTime<Utc>) -> Result<(), MemoryError> {
        let mut items = self.items.lock().map_err(|_| MemoryError)?;
        if let Some(i) = items.iter_mut().find(|i| i.key == key) {
            i.status = super::outbox::DeliveryStatus::Sent { at };
        }
        Ok(())
    }

    async fn mark_failed(
        &self,
        key: &str,
        attempts: u32,
        error: &str,
        next_attempt: Option<DateTime<Utc>>,
    ) -> Result<(), MemoryError> {
        let mut items = self.items.lock().map_err(|_| MemoryError)?;
        if let Some(i) = items.iter_mut().find(|i| i.key == key) {
            i.attempts = attempts;
            i.last_error = Some(error.to_string());
            match next_attempt {
                Some(t) => i.next_attempt = t,
                None => i.status = super::outbox::DeliveryStatus::GaveUp,
            }
        }
        Ok(())
    }
}

impl AlarmStore for MemoryStore {
    type Error = MemoryError;

    async fn save_alarm(&self, alarm: &Alarm) -> Result<(), MemoryError> {
        let mut alarms = self.alarms.lock().map_err(|_| MemoryError)?;
        alarms.retain(|a| a.id != alarm.id);
        alarms.push(alarm.clone());
        Ok(())
    }

    async fn save_action_run(&self, run: &ActionRun) -> Result<(), MemoryError> {
        self.runs.lock().map_err(|_| MemoryError)?.push(run.clone());
        Ok(())
    }

    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), MemoryError> {
        *self.snapshot.lock().map_err(|_| MemoryError)? = Some(snapshot.clone());
        Ok(())
    }

    async fn load_snapshot(&self) -> Result<Option<Snapshot>, MemoryError> {
        Ok(self.snapshot.lock().map_err(|_| MemoryError)?.clone())
    }
}
