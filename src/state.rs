//! The check-state machine: SOFT/HARD states, attempts, flap detection and
//! host reachability, with Nagios Core's semantics.
//!
//! This module is pure: it never does I/O and never reads a clock. The
//! caller hands in each result with the time it was taken and gets back a
//! [`Transition`], the small typed message the rest of the pipeline (store,
//! alarms, actions, scheduler) acts on. [`CheckState`] is serde-serializable
//! so a restarted daemon resumes states, attempts and flap history.
//!
//! # SOFT and HARD
//!
//! As in Nagios Core ("State Types"):
//!
//! - OK is always HARD with attempt 1.
//! - From OK, a non-OK result is SOFT attempt 1, or HARD at once when
//!   `max_attempts` is 1.
//! - Each further non-OK result while SOFT counts one more attempt, also when
//!   the state changes between non-OK states (WARNING -> CRITICAL); when the
//!   attempt reaches `max_attempts` the state becomes HARD: a
//!   [`Change::HardProblem`].
//! - A HARD non-OK state keeps `attempt == max_attempts` (what Nagios Core
//!   shows as "3/3"); a change to another non-OK state is a HARD change at
//!   once ([`Change::HardProblem`]).
//! - OK after a SOFT problem is a [`Change::SoftRecovery`]: the state becomes
//!   OK HARD attempt 1, but the last hard state was OK all along, so it is no
//!   hard change. OK after a HARD problem is a [`Change::HardRecovery`].
//! - While a result is SOFT non-OK the scheduler re-checks at
//!   `retry_interval` ([`IntervalKind::Retry`]), otherwise at `interval`.
//!
//! # Flap detection
//!
//! As in Nagios Core ("Detection and Handling of State Flapping", and
//! `base/flapping.c`): the last [`FLAP_HISTORY_LEN`] (21) recorded states are
//! kept; only HARD states and soft recoveries are recorded (a SOFT non-OK
//! result is not, and flapping is not re-evaluated for it). Each of the at
//! most 20 changes between neighbouring entries is weighted linearly by age,
//! from [`FLAP_WEIGHT_OLDEST`] (0.75) for the oldest possible change to
//! [`FLAP_WEIGHT_NEWEST`] (1.25) for the newest; the percent state change is
//! `sum(weights) / 20 * 100`. These are the constants of Nagios Core's code;
//! its documentation describes the same curve loosely ("the newest state
//! change carries 50% more weight than the oldest"). Flapping starts when the
//! percent is `>= high` and stops when it is `<= low`; in between nothing
//! changes (the exact comparisons of `flapping.c`). History starts as 21 OK
//! entries, as in Nagios. Notifications are meant to be suppressed while
//! [`Transition::flapping`] is set.
//!
//! # Reachability
//!
//! A check may depend on its host's host check (e.g. the host's ping). The
//! host is *unreachable* when that host check is HARD CRITICAL
//! ([`Reachability::from_host_check`]); WARNING means the host still answers
//! and UNKNOWN means the host check itself failed, so neither makes the host
//! unreachable, and a SOFT CRITICAL is not yet confirmed. A result taken
//! while unreachable is recorded (state, time, flap history) but never
//! raises a problem of its own: a non-OK result is SOFT attempt 1 (the
//! problem is seen, not confirmed), so no [`Change::HardProblem`] is opened
//! from OK or SOFT, and the check is re-checked at its normal interval (the
//! host check does the probing). Once the host is reachable again, a problem
//! that persists is confirmed by attempts 2..=`max_attempts` as usual. This deviates on purpose from Nagios,
//! which makes such a result HARD at once and only suppresses notifications:
//! laxmon opens alarms on HARD changes, and a HARD state entered while the
//! host was down would never open one after the host came back. A problem
//! that was already HARD before the host went down stays HARD; its
//! recoveries and changes between non-OK states are still reported, marked
//! [`Transition::unreachable`].
//!
//! # Initial state
//!
//! [`CheckState::new`] is OK HARD attempt 1 with no times, Nagios's initial
//! state; laxmon has no PENDING state. A daemon restart resumes the persisted
//! [`CheckState`] instead.

use crate::checks::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// How many recorded states flap detection looks at (Nagios's `MAX_STATE_HISTORY_ENTRIES`).
pub const FLAP_HISTORY_LEN: usize = 21;

/// Weight of the oldest possible state change in the flap history (Nagios's `low_curve_value`).
pub const FLAP_WEIGHT_OLDEST: f64 = 0.75;

/// Weight of the newest possible state change in the flap history (Nagios's `high_curve_value`).
pub const FLAP_WEIGHT_NEWEST: f64 = 1.25;

/// Whether a state is confirmed (HARD) or still being retried (SOFT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum StateType {
    /// A non-OK state not yet confirmed by `max_attempts` results.
    Soft,
    /// A confirmed state; OK is always HARD.
    Hard,
}

impl StateType {
    /// The upper-case name used in output and the store (`SOFT`, `HARD`).
    pub fn as_str(self) -> &'static str {
        match self {
            StateType::Soft => "SOFT",
            StateType::Hard => "HARD",
        }
    }
}

impl fmt::Display for StateType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Flap detection thresholds in percent state change.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FlapThresholds {
    /// Flapping stops when the percent state change is at or below this.
    pub low: f64,
    /// Flapping starts when the percent state change is at or above this.
    pub high: f64,
}

impl Default for FlapThresholds {
    /// laxmon's defaults: low 25%, high 50% (Nagios Core's compiled-in defaults are 20% and 30%).
    fn default() -> Self {
        FlapThresholds {
            low: 25.0,
            high: 50.0,
        }
    }
}

/// The per-check settings the state machine needs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// Consecutive non-OK results before a problem is HARD; 0 is treated as 1.
    pub max_attempts: u32,
    /// Flap detection thresholds.
    pub flap: FlapThresholds,
}

impl Default for Policy {
    /// `max_attempts` 3 (the configuration default) and the default flap thresholds.
    fn default() -> Self {
        Policy {
            max_attempts: 3,
            flap: FlapThresholds::default(),
        }
    }
}

/// Whether the host a check runs against can be reached at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Reachability {
    /// The host is reachable, or the check has no host check: results count normally.
    #[default]
    Reachable,
    /// The host check is HARD CRITICAL: results are recorded but raise no problem.
    Unreachable,
}

impl Reachability {
    /// Reachability given the host check's current state; `None` when the check has no host check.
    ///
    /// Only a HARD CRITICAL host check makes the host unreachable.
    pub fn from_host_check(host_check: Option<(State, StateType)>) -> Reachability {
        match host_check {
            Some((State::Critical, StateType::Hard)) => Reachability::Unreachable,
            _ => Reachability::Reachable,
        }
    }
}

/// Which scheduling interval applies until the next check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IntervalKind {
    /// The check's `interval`: the state is OK, HARD, or the host is unreachable.
    Normal,
    /// The check's `retry_interval`: a SOFT problem is being confirmed.
    Retry,
}

/// What a result did to the SOFT/HARD state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Same state, same type: OK stays OK, or a HARD problem persists.
    Unchanged,
    /// A SOFT non-OK result: first detection, a retry, or a change between non-OK states while SOFT.
    SoftProblem,
    /// OK after a SOFT problem: the problem was never confirmed and the last hard state stays OK.
    SoftRecovery,
    /// A HARD non-OK state was entered: attempts reached `max_attempts`, or a HARD problem changed state.
    HardProblem,
    /// OK after a HARD problem.
    HardRecovery,
}

/// Flap detection's verdict changed with this result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlapChange {
    /// The percent state change reached the high threshold: the check is now flapping.
    Started,
    /// The percent state change fell to the low threshold: the check stopped flapping.
    Stopped,
}

/// A check's state at one moment: value, type and attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Status {
    /// The state value.
    pub state: State,
    /// SOFT or HARD.
    pub state_type: StateType,
    /// The attempt, 1..=max_attempts (1 whenever the state is OK).
    pub attempt: u32,
}

/// The outcome of applying one result: what the pipeline acts on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// The status before the result.
    pub previous: Status,
    /// The status after the result.
    pub current: Status,
    /// What the result did to the SOFT/HARD state.
    pub change: Change,
    /// The host was unreachable: the result was recorded but raises no problem of its own.
    pub unreachable: bool,
    /// The check is flapping after this result (notifications are suppressed).
    pub flapping: bool,
    /// Flapping started or stopped with this result.
    pub flap_change: Option<FlapChange>,
    /// The weighted percent state change over the flap history, 0..=100.
    pub percent_state_change: f64,
    /// Which interval the scheduler should use for the next check.
    pub next_interval: IntervalKind,
}

impl Transition {
    /// The state value changed (e.g. OK -> CRITICAL or WARNING -> CRITICAL), whatever the type.
    pub fn is_state_change(&self) -> bool {
        self.previous.state != self.current.state
    }

    /// The hard state changed: a HARD problem was entered or changed, or a HARD recovery.
    pub fn is_hard_change(&self) -> bool {
        matches!(self.change, Change::HardProblem | Change::HardRecovery)
    }

    /// The result was OK after a problem, SOFT or HARD.
    pub fn is_recovery(&self) -> bool {
        matches!(self.change, Change::SoftRecovery | Change::HardRecovery)
    }

    /// Notifications for this result should be held back: the check is flapping or unreachable.
    pub fn notifications_suppressed(&self) -> bool {
        self.flapping || self.unreachable
    }
}

/// Everything the state machine remembers about one check; serializable for resuming.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CheckState {
    state: State,
    state_type: StateType,
    attempt: u32,
    last_hard_state: State,
    last_check: Option<DateTime<Utc>>,
    last_state_change: Option<DateTime<Utc>>,
    last_hard_state_change: Option<DateTime<Utc>>,
    flapping: bool,
    percent_state_change: f64,
    /// Recorded states for flap detection, oldest first, at most [`FLAP_HISTORY_LEN`].
    flap_history: Vec<State>,
}

impl Default for CheckState {
    /// Same as [`CheckState::new`].
    fn default() -> Self {
        CheckState::new()
    }
}

impl CheckState {
    /// The initial state: OK HARD attempt 1, never checked, not flapping, history all OK.
    pub fn new() -> CheckState {
        CheckState {
            state: State::Ok,
            state_type: StateType::Hard,
            attempt: 1,
            last_hard_state: State::Ok,
            last_check: None,
            last_state_change: None,
            last_hard_state_change: None,
            flapping: false,
            percent_state_change: 0.0,
            flap_history: vec![State::Ok; FLAP_HISTORY_LEN],
        }
    }

    /// The current state value.
    pub fn state(&self) -> State {
        self.state
    }

    /// The current state type.
    pub fn state_type(&self) -> StateType {
        self.state_type
    }

    /// The current attempt.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// State value, type and attempt together.
    pub fn status(&self) -> Status {
        Status {
            state: self.state,
            state_type: self.state_type,
            attempt: self.attempt,
        }
    }

    /// The last HARD state (OK while a problem is only SOFT).
    pub fn last_hard_state(&self) -> State {
        self.last_hard_state
    }

    /// When the last result was applied.
    pub fn last_check(&self) -> Option<DateTime<Utc>> {
        self.last_check
    }

    /// When the state value last changed, SOFT or HARD.
    pub fn last_state_change(&self) -> Option<DateTime<Utc>> {
        self.last_state_change
    }

    /// When the hard state last changed.
    pub fn last_hard_state_change(&self) -> Option<DateTime<Utc>> {
        self.last_hard_state_change
    }

    /// Whether the check is currently flapping.
    pub fn is_flapping(&self) -> bool {
        self.flapping
    }

    /// The weighted percent state change computed at the last recorded result.
    pub fn percent_state_change(&self) -> f64 {
        self.percent_state_change
    }

    /// The states recorded for flap detection, oldest first.
    pub fn flap_history(&self) -> &[State] {
        &self.flap_history
    }

    /// Applies one check result taken at `now` and says what happened.
    pub fn apply(
        &mut self,
        result: State,
        policy: &Policy,
        reachability: Reachability,
        now: DateTime<Utc>,
    ) -> Transition {
        let max_attempts = policy.max_attempts.max(1);
        let unreachable = reachability == Reachability::Unreachable;
        let previous = self.status();
        let was_problem = previous.state != State::Ok;
        let was_hard_problem = was_problem && previous.state_type == StateType::Hard;

        let (current, change) = if result == State::Ok {
            let change = match (was_problem, was_hard_problem) {
                (false, _) => Change::Unchanged,
                (true, false) => Change::SoftRecovery,
                (true, true) => Change::HardRecovery,
            };
            (status(State::Ok, StateType::Hard, 1), change)
        } else if was_hard_problem {
            let change = if result == previous.state {
                Change::Unchanged
            } else {
                Change::HardProblem
            };
            (status(result, StateType::Hard, max_attempts), change)
        } else {
            // From OK or from a SOFT problem.
            let attempt = if was_problem && !unreachable {
                previous.attempt.saturating_add(1).min(max_attempts)
            } else {
                1
            };
            if !unreachable && attempt >= max_attempts {
                (
                    status(result, StateType::Hard, max_attempts),
                    Change::HardProblem,
                )
            } else {
                (status(result, StateType::Soft, attempt), Change::SoftProblem)
            }
        };

        self.state = current.state;
        self.state_type = current.state_type;
        self.attempt = current.attempt;
        self.last_check = Some(now);
        if current.state != previous.state {
            self.last_state_change = Some(now);
        }
        if current.state_type == StateType::Hard && current.state != self.last_hard_state {
            self.last_hard_state = current.state;
            self.last_hard_state_change = Some(now);
        }

        let flap_change = self.detect_flapping(&current, &policy.flap);

        let soft_problem = current.state_type == StateType::Soft;
        Transition {
            previous,
            current,
            change,
            unreachable,
            flapping: self.flapping,
            flap_change,
            percent_state_change: self.percent_state_change,
            next_interval: if soft_problem && !unreachable {
                IntervalKind::Retry
            } else {
                IntervalKind::Normal
            },
        }
    }

    /// Records the new status in the flap history (unless SOFT non-OK) and
    /// re-evaluates flapping, as Nagios's `check_for_service_flapping` does.
    fn detect_flapping(
        &mut self,
        current: &Status,
        thresholds: &FlapThresholds,
    ) -> Option<FlapChange> {
        if current.state_type == StateType::Soft && current.state != State::Ok {
            return None;
        }
        self.flap_history.push(current.state);
        if self.flap_history.len() > FLAP_HISTORY_LEN {
            let excess = self.flap_history.len() - FLAP_HISTORY_LEN;
            self.flap_history.drain(..excess);
        }
        let percent = percent_state_change(&self.flap_history);
        self.percent_state_change = percent;
        if !self.flapping && percent >= thresholds.high {
            self.flapping = true;
            Some(FlapChange::Started)
        } else if self.flapping && percent <= thresholds.low {
            self.flapping = false;
            Some(FlapChange::Stopped)
        } else {
            None
        }
    }
}

fn status(state: State, state_type: StateType, attempt: u32) -> Status {
    Status {
        state,
        state_type,
        attempt,
    }
}

/// The weighted percent state change of a flap history (oldest first), 0..=100.
///
/// Only the last [`FLAP_HISTORY_LEN`] entries count. The change into entry
/// `x` (1..=20, 20 the newest) weighs
/// `0.75 + (x - 1) * (1.25 - 0.75) / 19`; the result is the sum of weights
/// over 20, in percent. A shorter history is aligned to the newest end.
pub fn percent_state_change(history: &[State]) -> f64 {
    let start = history.len().saturating_sub(FLAP_HISTORY_LEN);
    let window = &history[start..];
    let offset = FLAP_HISTORY_LEN - window.len();
    let possible = (FLAP_HISTORY_LEN - 1) as f64;
    let step = (FLAP_WEIGHT_NEWEST - FLAP_WEIGHT_OLDEST) / (possible - 1.0);
    let weighted: f64 = window
        .windows(2)
        .enumerate()
        .filter(|(_, pair)| pair[0] != pair[1])
        .map(|(i, _)| {
            // Position of this change among the 20 possible ones, 0 = oldest.
            let position = (i + offset) as f64;
            FLAP_WEIGHT_OLDEST + position * step
        })
        .sum();
    weighted * 100.0 / possible
}
