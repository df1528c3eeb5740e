//! Runs one configured check: picks the kind, builds its arguments from the
//! config, holds a process slot for external checks, and times the run.
//!
//! The runner never decides states beyond what a check reports and never
//! touches the store; it is shared by `laxmon check` and the scheduler.

use super::CheckOutput;
use crate::config::{Check, Config};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// One run of a check: what it said, when it really started and how long it took.
#[derive(Debug, Clone)]
pub struct Run {
    /// What the check reported.
    pub output: CheckOutput,
    /// When the check really started (after waiting for a process slot).
    pub started: DateTime<Utc>,
    /// How long it ran.
    pub duration: Duration,
}

/// Runs checks of any kind; cheap to share behind an `Arc`.
pub struct Runner {}

impl Runner {
    /// A runner for the checks of `config`.
    pub fn new(_config: &Config) -> Runner {
        Runner {}
    }

    /// Runs `check` once.
    pub async fn run(&self, check: &Check) -> Run {
        let started = Utc::now();
        let t = std::time::Instant::now();
        let output = CheckOutput::unknown(format!("kind {} is being wired", check.kind_name()));
        Run {
            output,
            started,
            duration: t.elapsed(),
        }
    }
}
