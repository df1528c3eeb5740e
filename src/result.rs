//! The pipeline's message: one finished run of a check with the state it
//! led to. The scheduler makes it; the store, the alarm stage and the
//! cluster stage consume it. It sits below all of them so that none of them
//! imports the module that wires the stages.
//!
//! Plain data: this file must never do I/O or decide anything.

use crate::plugin_output::CheckOutput;
use crate::state::{CheckState, Status, Transition};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// One finished run of a check, with the state it led to.
#[derive(Debug, Clone)]
pub struct CheckResult {
    /// The check's name.
    pub check: String,
    /// The host entry it ran against (`local` for the admin server).
    pub host: String,
    /// The check's kind (`ping`, `port`, `init`, `plugin`).
    pub kind: &'static str,
    /// What the check said.
    pub output: CheckOutput,
    /// When the run was planned to start.
    pub planned: DateTime<Utc>,
    /// When it really started (after waiting for a process slot, for external checks).
    pub started: DateTime<Utc>,
    /// How long the run took.
    pub duration: Duration,
    /// What the result did to the check's state.
    pub transition: Transition,
    /// The check's whole state after this result (persisted so a restarted
    /// daemon resumes attempts and flap history).
    pub state: CheckState,
}

impl CheckResult {
    /// Start lateness: actual start minus planned start (never negative).
    pub fn lateness(&self) -> Duration {
        (self.started - self.planned)
            .to_std()
            .unwrap_or(Duration::ZERO)
    }

    /// The state after this result.
    pub fn status(&self) -> Status {
        self.transition.current
    }
}
