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
//! entries, as in Nagios. The percent is always derived from the history,
//! never stored, so a resumed snapshot computes exactly what it would have.
//! Notifications are meant to be suppressed while [`Transition::flapping`]
//! is set.
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
//! that persists is confirmed by attempts 2..=`max_attempts` as usual. This
//! deviates on purpose from Nagios, which makes such a result HARD at once
//! and only suppresses notifications: laxmon opens alarms on HARD changes,
//! and a HARD state entered while the host was down would never open one
//! after the host came back. A problem
//! that was already HARD before the host went down stays HARD; its
//! recoveries and changes between non-OK states are still reported, marked
//! [`Transition::unreachable`].
//!
//! # Initial state
//!
//! [`CheckState::new`] is OK HARD attempt 1 with no times, Nagios's initial
//! state; laxmon has no PENDING state. A daemon restart resumes the persisted
//! [`CheckState`] instead.

use crate::plugin_output::State;
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
    /// A SOFT non-OK result: first detection, a retry, or another non-OK state while SOFT.
    SoftProblem,
    /// OK after a SOFT problem: the problem was never confirmed and the last hard state stays OK.
    SoftRecovery,
    /// A HARD non-OK state was entered: `max_attempts` reached, or a HARD problem changed state.
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

    /// The weighted percent state change of the flap history (computed, not stored).
    pub fn percent_state_change(&self) -> f64 {
        percent_state_change(&self.flap_history)
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
                (
                    status(result, StateType::Soft, attempt),
                    Change::SoftProblem,
                )
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
            percent_state_change: self.percent_state_change(),
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
        let percent = self.percent_state_change();
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const O: State = State::Ok;
    const W: State = State::Warning;
    const C: State = State::Critical;
    const U: State = State::Unknown;
    const S: StateType = StateType::Soft;
    const H: StateType = StateType::Hard;
    const R: Reachability = Reachability::Reachable;
    const X: Reachability = Reachability::Unreachable;

    use Change::{HardProblem, HardRecovery, SoftProblem, SoftRecovery, Unchanged};

    /// One result in, the status and change expected out.
    type Step = (State, Reachability, State, StateType, u32, Change);

    struct Scenario {
        name: &'static str,
        max_attempts: u32,
        steps: &'static [Step],
    }

    fn t(n: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + n * 60, 0)
            .single()
            .expect("valid timestamp")
    }

    fn policy(max_attempts: u32) -> Policy {
        Policy {
            max_attempts,
            ..Policy::default()
        }
    }

    fn run(scenario: &Scenario) -> Vec<Transition> {
        let mut cs = CheckState::new();
        let mut out = Vec::new();
        for (i, &(result, reach, state, state_type, attempt, change)) in
            scenario.steps.iter().enumerate()
        {
            let tr = cs.apply(result, &policy(scenario.max_attempts), reach, t(i as i64));
            let got = (
                tr.current.state,
                tr.current.state_type,
                tr.current.attempt,
                tr.change,
            );
            assert_eq!(
                got,
                (state, state_type, attempt, change),
                "{}: step {} ({:?}, {:?})",
                scenario.name,
                i + 1,
                result,
                reach
            );
            assert_eq!(tr.current, cs.status(), "{}: step {}", scenario.name, i + 1);
            assert_eq!(
                tr.unreachable,
                reach == X,
                "{}: step {}",
                scenario.name,
                i + 1
            );
            let retry = state_type == S && reach == R;
            let want = if retry {
                IntervalKind::Retry
            } else {
                IntervalKind::Normal
            };
            assert_eq!(tr.next_interval, want, "{}: step {}", scenario.name, i + 1);
            out.push(tr);
        }
        out
    }

    const SCENARIOS: &[Scenario] = &[
        Scenario {
            name: "one lost packet is a soft problem and a soft recovery",
            max_attempts: 3,
            steps: &[
                (C, R, C, S, 1, SoftProblem),
                (O, R, O, H, 1, SoftRecovery),
                (O, R, O, H, 1, Unchanged),
            ],
        },
        Scenario {
            name: "max_attempts 1 is hard at once",
            max_attempts: 1,
            steps: &[
                (C, R, C, H, 1, HardProblem),
                (C, R, C, H, 1, Unchanged),
                (W, R, W, H, 1, HardProblem),
                (O, R, O, H, 1, HardRecovery),
            ],
        },
        Scenario {
            name: "max_attempts 0 behaves as 1",
            max_attempts: 0,
            steps: &[(U, R, U, H, 1, HardProblem), (O, R, O, H, 1, HardRecovery)],
        },
        Scenario {
            name: "three criticals confirm a problem, ok is a hard recovery",
            max_attempts: 3,
            steps: &[
                (C, R, C, S, 1, SoftProblem),
                (C, R, C, S, 2, SoftProblem),
                (C, R, C, H, 3, HardProblem),
                (C, R, C, H, 3, Unchanged),
                (O, R, O, H, 1, HardRecovery),
                (C, R, C, S, 1, SoftProblem),
            ],
        },
        Scenario {
            name: "warning to critical while soft keeps counting",
            max_attempts: 3,
            steps: &[
                (W, R, W, S, 1, SoftProblem),
                (C, R, C, S, 2, SoftProblem),
                (C, R, C, H, 3, HardProblem),
            ],
        },
        Scenario {
            name: "unknown counts as a problem",
            max_attempts: 2,
            steps: &[(U, R, U, S, 1, SoftProblem), (W, R, W, H, 2, HardProblem)],
        },
        Scenario {
            name: "hard critical to warning is a hard change at once",
            max_attempts: 3,
            steps: &[
                (C, R, C, S, 1, SoftProblem),
                (C, R, C, S, 2, SoftProblem),
                (C, R, C, H, 3, HardProblem),
                (W, R, W, H, 3, HardProblem),
                (W, R, W, H, 3, Unchanged),
                (U, R, U, H, 3, HardProblem),
                (O, R, O, H, 1, HardRecovery),
            ],
        },
        Scenario {
            name: "a soft recovery restarts the count",
            max_attempts: 3,
            steps: &[
                (C, R, C, S, 1, SoftProblem),
                (C, R, C, S, 2, SoftProblem),
                (O, R, O, H, 1, SoftRecovery),
                (C, R, C, S, 1, SoftProblem),
                (C, R, C, S, 2, SoftProblem),
                (C, R, C, H, 3, HardProblem),
            ],
        },
        Scenario {
            // The example table of Nagios Core's "State Types" page
            // (max_check_attempts 3), with attempts as Nagios Core reports them.
            name: "nagios state types example",
            max_attempts: 3,
            steps: &[
                (C, R, C, S, 1, SoftProblem),
                (W, R, W, S, 2, SoftProblem),
                (C, R, C, H, 3, HardProblem),
                (W, R, W, H, 3, HardProblem),
                (W, R, W, H, 3, Unchanged),
                (O, R, O, H, 1, HardRecovery),
                (O, R, O, H, 1, Unchanged),
                (U, R, U, S, 1, SoftProblem),
                (O, R, O, H, 1, SoftRecovery),
                (O, R, O, H, 1, Unchanged),
            ],
        },
        Scenario {
            name: "unreachable results never confirm a problem",
            max_attempts: 3,
            steps: &[
                (C, X, C, S, 1, SoftProblem),
                (C, X, C, S, 1, SoftProblem),
                (C, X, C, S, 1, SoftProblem),
                (C, X, C, S, 1, SoftProblem),
                (C, R, C, S, 2, SoftProblem),
                (C, R, C, H, 3, HardProblem),
            ],
        },
        Scenario {
            name: "unreachable in the middle of a soft problem restarts confirmation",
            max_attempts: 3,
            steps: &[
                (C, R, C, S, 1, SoftProblem),
                (C, R, C, S, 2, SoftProblem),
                (C, X, C, S, 1, SoftProblem),
                (C, R, C, S, 2, SoftProblem),
                (C, R, C, H, 3, HardProblem),
            ],
        },
        Scenario {
            name: "unreachable with max_attempts 1 stays soft",
            max_attempts: 1,
            steps: &[(C, X, C, S, 1, SoftProblem), (C, R, C, H, 1, HardProblem)],
        },
        Scenario {
            name: "recoveries while unreachable are reported",
            max_attempts: 2,
            steps: &[
                (W, X, W, S, 1, SoftProblem),
                (O, X, O, H, 1, SoftRecovery),
                (C, R, C, S, 1, SoftProblem),
                (C, R, C, H, 2, HardProblem),
                (O, X, O, H, 1, HardRecovery),
            ],
        },
        Scenario {
            name: "a problem already hard stays hard while unreachable",
            max_attempts: 2,
            steps: &[
                (W, R, W, S, 1, SoftProblem),
                (W, R, W, H, 2, HardProblem),
                (W, X, W, H, 2, Unchanged),
                (C, X, C, H, 2, HardProblem),
                (C, R, C, H, 2, Unchanged),
            ],
        },
    ];

    #[test]
    fn scenarios() {
        for scenario in SCENARIOS {
            run(scenario);
        }
    }

    #[test]
    fn soft_recovery_leaves_hard_state_and_its_time_alone() {
        let trs = run(&SCENARIOS[0]);
        assert!(!trs.iter().any(Transition::is_hard_change));
        assert!(trs[1].is_recovery() && trs[1].is_state_change());
        let mut cs = CheckState::new();
        cs.apply(C, &policy(3), R, t(1));
        cs.apply(O, &policy(3), R, t(2));
        assert_eq!(cs.last_hard_state(), O);
        assert_eq!(cs.last_hard_state_change(), None);
        assert_eq!(cs.last_state_change(), Some(t(2)));
        assert_eq!(cs.last_check(), Some(t(2)));
    }

    #[test]
    fn times_follow_state_and_hard_state_changes() {
        let p = policy(2);
        let mut cs = CheckState::new();
        cs.apply(W, &p, R, t(1));
        assert_eq!(
            (cs.last_state_change(), cs.last_hard_state_change()),
            (Some(t(1)), None)
        );
        cs.apply(W, &p, R, t(2));
        assert_eq!(cs.last_hard_state(), W);
        assert_eq!(
            (cs.last_state_change(), cs.last_hard_state_change()),
            (Some(t(1)), Some(t(2)))
        );
        cs.apply(C, &p, R, t(3));
        assert_eq!(
            (cs.last_state_change(), cs.last_hard_state_change()),
            (Some(t(3)), Some(t(3)))
        );
        cs.apply(C, &p, R, t(4));
        assert_eq!(
            (cs.last_state_change(), cs.last_hard_state_change()),
            (Some(t(3)), Some(t(3)))
        );
        cs.apply(O, &p, R, t(5));
        assert_eq!(cs.last_hard_state(), O);
        assert_eq!(
            (cs.last_state_change(), cs.last_hard_state_change()),
            (Some(t(5)), Some(t(5)))
        );
        assert_eq!(cs.last_check(), Some(t(5)));
    }

    #[test]
    fn initial_state_is_ok_hard_attempt_one() {
        let cs = CheckState::new();
        assert_eq!(
            cs.status(),
            Status {
                state: O,
                state_type: H,
                attempt: 1
            }
        );
        assert_eq!(cs.last_hard_state(), O);
        assert_eq!(cs.flap_history(), &[O; FLAP_HISTORY_LEN]);
        assert!(!cs.is_flapping());
        assert_eq!(cs.percent_state_change(), 0.0);
        assert_eq!(cs.last_check(), None);
        assert_eq!(CheckState::default(), cs);
    }

    #[test]
    fn reachability_from_host_check() {
        let cases = [
            (None, R),
            (Some((O, H)), R),
            (Some((W, H)), R),
            (Some((U, H)), R),
            (Some((C, S)), R),
            (Some((W, S)), R),
            (Some((C, H)), X),
        ];
        for (host_check, want) in cases {
            assert_eq!(
                Reachability::from_host_check(host_check),
                want,
                "{host_check:?}"
            );
        }
    }

    #[test]
    fn unreachable_suppresses_notifications() {
        let mut cs = CheckState::new();
        let tr = cs.apply(C, &policy(1), X, t(0));
        assert!(tr.unreachable && tr.notifications_suppressed());
        assert!(!tr.is_hard_change());
        let tr = cs.apply(C, &policy(1), R, t(1));
        assert!(!tr.notifications_suppressed() && tr.is_hard_change());
    }

    // Flap detection. With weights w(p) = 0.75 + p/38 for the change at
    // position p (0 = oldest, 19 = newest) and percent = 5 * sum(w):
    //
    // after n alternating results on an all-OK history the changes sit at
    // p = 20-n..=19, so percent(n) = 3.75 n + 5 n (39 - n) / 76;
    //
    // after 20 alternations and then m equal results the k = 20 - m changes
    // left sit at p = 0..k, so percent(k) = 3.75 k + 5 k (k - 1) / 76.
    fn alternating_percent(n: u32) -> f64 {
        let n = f64::from(n);
        3.75 * n + 5.0 * n * (39.0 - n) / 76.0
    }

    fn settling_percent(k: u32) -> f64 {
        let k = f64::from(k);
        3.75 * k + 5.0 * k * (k - 1.0) / 76.0
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn flap_percent_hand_computed_values() {
        let cases: &[(f64, f64)] = &[
            (alternating_percent(1), 6.25),
            (alternating_percent(2), 12.368_421_052_631_579), // 5 * (1.25 + 1.25 - 1/38)
            (alternating_percent(8), 46.315_789_473_684_21),
            (alternating_percent(9), 51.513_157_894_736_84),
            (alternating_percent(20), 100.0),
            (settling_percent(7), 29.013_157_894_736_84),
            (settling_percent(6), 24.473_684_210_526_315),
            (settling_percent(1), 3.75),
        ];
        for (i, &(got, want)) in cases.iter().enumerate() {
            assert!(close(got, want), "case {i}: {got} != {want}");
        }
    }

    #[test]
    fn percent_state_change_of_histories() {
        let mut oldest = vec![C];
        oldest.extend([O; 20]);
        let mut newest = vec![O; 20];
        newest.push(C);
        let mut longer = vec![C; 5];
        longer.extend([O; 21]);
        let alternating: Vec<State> = (0..21).map(|i| if i % 2 == 0 { O } else { W }).collect();
        let cases: &[(&[State], f64)] = &[
            (&[], 0.0),
            (&[O], 0.0),
            (&[O; 21], 0.0),
            (&oldest, 3.75),
            (&newest, 6.25),
            (&[O, C], 6.25),
            (&[W, C, C], 5.0 * (0.75 + 18.0 / 38.0)),
            (&longer, 0.0),
            (&alternating, 100.0),
        ];
        for (history, want) in cases {
            let got = percent_state_change(history);
            assert!(close(got, *want), "{history:?}: {got} != {want}");
        }
    }

    #[test]
    fn flapping_starts_on_alternating_hard_results_and_stops_when_stable() {
        let p = policy(1);
        let mut cs = CheckState::new();
        let mut minute = 0;
        for n in 1..=20u32 {
            let result = if n % 2 == 1 { C } else { O };
            let tr = cs.apply(result, &p, R, t(minute));
            minute += 1;
            let want = alternating_percent(n);
            assert!(
                close(tr.percent_state_change, want),
                "n={n}: {}",
                tr.percent_state_change
            );
            assert!(close(cs.percent_state_change(), want));
            let flap_change = if n == 9 {
                Some(FlapChange::Started)
            } else {
                None
            };
            assert_eq!(tr.flap_change, flap_change, "n={n}");
            assert_eq!(tr.flapping, n >= 9, "n={n}");
            assert_eq!(tr.notifications_suppressed(), n >= 9, "n={n}");
        }
        // The 20th result was OK; stay OK.
        for m in 1..=20u32 {
            let tr = cs.apply(O, &p, R, t(minute));
            minute += 1;
            let want = settling_percent(20 - m);
            assert!(
                close(tr.percent_state_change, want),
                "m={m}: {}",
                tr.percent_state_change
            );
            let flap_change = if m == 14 {
                Some(FlapChange::Stopped)
            } else {
                None
            };
            assert_eq!(tr.flap_change, flap_change, "m={m}");
            assert_eq!(tr.flapping, m < 14, "m={m}");
        }
        assert_eq!(cs.percent_state_change(), 0.0);
    }

    #[test]
    fn flap_thresholds_compare_inclusively() {
        // One change at the newest position is exactly 6.25%.
        let p = Policy {
            max_attempts: 1,
            flap: FlapThresholds {
                low: 3.75,
                high: 6.25,
            },
        };
        let mut cs = CheckState::new();
        let tr = cs.apply(C, &p, R, t(0));
        assert_eq!(
            (tr.flap_change, tr.flapping),
            (Some(FlapChange::Started), true)
        );
        // Nineteen more CRITICALs push the change to the oldest position: 3.75%.
        for i in 1..19 {
            let tr = cs.apply(C, &p, R, t(i));
            assert_eq!((tr.flap_change, tr.flapping), (None, true), "i={i}");
        }
        let tr = cs.apply(C, &p, R, t(19));
        assert!(close(tr.percent_state_change, 3.75));
        assert_eq!(
            (tr.flap_change, tr.flapping),
            (Some(FlapChange::Stopped), false)
        );
        let tr = cs.apply(C, &p, R, t(20));
        assert_eq!((tr.percent_state_change, tr.flap_change), (0.0, None));
    }

    #[test]
    fn soft_problems_are_not_recorded_for_flap_detection() {
        // As in Nagios: only HARD states and soft recoveries enter the
        // history, so lost packets that never confirm cannot flap.
        let p = policy(3);
        let mut cs = CheckState::new();
        for i in 0..40 {
            let result = if i % 2 == 0 { C } else { O };
            let tr = cs.apply(result, &p, R, t(i));
            assert_eq!(
                (tr.percent_state_change, tr.flapping),
                (0.0, false),
                "i={i}"
            );
        }
        assert_eq!(cs.flap_history(), &[O; FLAP_HISTORY_LEN]);
    }

    #[test]
    fn flapping_holds_while_soft() {
        let mut cs = CheckState::new();
        for i in 0..10 {
            cs.apply(if i % 2 == 0 { C } else { O }, &policy(1), R, t(i));
        }
        assert!(cs.is_flapping());
        let before = (cs.percent_state_change(), cs.flap_history().to_vec());
        let tr = cs.apply(C, &policy(3), R, t(10));
        assert_eq!(tr.current.state_type, S);
        assert!(tr.flapping && tr.flap_change.is_none());
        assert_eq!(
            (cs.percent_state_change(), cs.flap_history().to_vec()),
            before
        );
    }

    #[test]
    fn serde_round_trip_resumes_exactly() {
        let p = policy(3);
        let inputs = [C, C, O, C, W, C, C, U, O, O, C, C, C, W, O];
        let mut a = CheckState::new();
        for (i, &r) in inputs.iter().take(7).enumerate() {
            a.apply(r, &p, R, t(i as i64));
        }
        let json = serde_json::to_string(&a).expect("serialize");
        let mut b: CheckState = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(a, b);
        for (i, &r) in inputs.iter().enumerate().skip(7) {
            let ta = a.apply(r, &p, R, t(i as i64));
            let tb = b.apply(r, &p, R, t(i as i64));
            assert_eq!(ta, tb, "step {i}");
        }
        assert_eq!(a, b);
    }

    #[test]
    fn serde_shape_and_defaults() {
        let mut cs = CheckState::new();
        cs.apply(W, &policy(3), R, t(0));
        let v = serde_json::to_value(&cs).expect("serialize");
        assert_eq!(v["state"], "WARNING");
        assert_eq!(v["state_type"], "SOFT");
        assert_eq!(v["attempt"], 1);
        assert_eq!(v["last_hard_state"], "OK");
        assert_eq!(
            v["flap_history"].as_array().map(Vec::len),
            Some(FLAP_HISTORY_LEN)
        );
        // A snapshot missing fields resumes with the initial values for them.
        let partial: CheckState = serde_json::from_str(
            r#"{"state":"CRITICAL","state_type":"HARD","attempt":3,"last_hard_state":"CRITICAL"}"#,
        )
        .expect("deserialize");
        assert_eq!(
            partial.status(),
            Status {
                state: C,
                state_type: H,
                attempt: 3
            }
        );
        assert_eq!(partial.flap_history(), &[O; FLAP_HISTORY_LEN]);
        let empty: CheckState = serde_json::from_str("{}").expect("deserialize");
        assert_eq!(empty, CheckState::new());
        let tr = {
            let mut t2 = Transition {
                previous: cs.status(),
                current: cs.status(),
                change: SoftProblem,
                unreachable: false,
                flapping: false,
                flap_change: Some(FlapChange::Started),
                percent_state_change: 0.0,
                next_interval: IntervalKind::Retry,
            };
            t2.current.state_type = H;
            serde_json::to_value(t2).expect("serialize")
        };
        assert_eq!(tr["change"], "soft_problem");
        assert_eq!(tr["flap_change"], "started");
        assert_eq!(tr["next_interval"], "retry");
        assert_eq!(tr["current"]["state_type"], "HARD");
    }

    /// A small deterministic generator (64-bit LCG, Knuth's constants).
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u32 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) as u32
        }

        fn below(&mut self, n: u32) -> u32 {
            self.next() % n
        }
    }

    #[test]
    fn invariants_hold_on_pseudo_random_sequences() {
        let mut rng = Lcg(0x1a5_c0de);
        for run in 0..400 {
            let max = 1 + rng.below(5);
            let flap = FlapThresholds {
                low: f64::from(rng.below(40)),
                high: f64::from(40 + rng.below(40)),
            };
            let p = Policy {
                max_attempts: max,
                flap,
            };
            // Some runs never lose the host; others lose it now and then.
            let unreachable_odds = [0, 0, 5, 30][run % 4];
            // Some runs are mostly OK, some mostly failing.
            let ok_odds = [20, 50, 80][run % 3];
            let mut cs = CheckState::new();
            // Non-OK results in a row; every one but the first must have been reachable.
            let mut confirmed = 0u32;
            let mut hard = O;
            let mut flapping = false;
            for step in 0..300 {
                let result = if rng.below(100) < ok_odds {
                    O
                } else {
                    [W, C, U][rng.below(3) as usize]
                };
                let reach = if rng.below(100) < unreachable_odds {
                    X
                } else {
                    R
                };
                confirmed = match (result, reach) {
                    (O, _) => 0,
                    (_, R) => confirmed + 1,
                    (_, X) => 1,
                };
                let prev = cs.status();
                let tr = cs.apply(result, &p, reach, t(step));
                let cur = tr.current;
                let ctx = format!(
                    "run {run} step {step} max {max}: {prev:?} + {result:?} {reach:?} -> {tr:?}"
                );

                assert_eq!(tr.previous, prev, "{ctx}");
                assert_eq!(cur, cs.status(), "{ctx}");
                assert_eq!(cur.state, result, "{ctx}");
                assert!((1..=max).contains(&cur.attempt), "{ctx}");
                if cur.state == O {
                    assert_eq!((cur.state_type, cur.attempt), (H, 1), "{ctx}");
                }
                match cur.state_type {
                    S => {
                        assert_ne!(cur.state, O, "{ctx}");
                        assert_eq!(cur.attempt, confirmed, "{ctx}");
                        if reach == R {
                            assert!(cur.attempt < max, "{ctx}");
                        }
                    }
                    H if cur.state != O => {
                        assert_eq!(cur.attempt, max, "{ctx}");
                        let was_hard_problem = prev.state != O && prev.state_type == H;
                        // HARD non-OK only after max_attempts confirmed non-OKs
                        // or from another HARD problem.
                        assert!(was_hard_problem || confirmed >= max, "{ctx}");
                        if !was_hard_problem {
                            assert_eq!(reach, R, "{ctx}");
                        }
                    }
                    H => {}
                }
                // A hard change is exactly a change of the last hard state.
                let new_hard = cs.last_hard_state();
                assert_eq!(tr.is_hard_change(), new_hard != hard, "{ctx}");
                hard = new_hard;
                if cur.state_type == H {
                    assert_eq!(new_hard, cur.state, "{ctx}");
                }
                assert_eq!(
                    tr.change == Unchanged,
                    prev.state == cur.state
                        && prev.state_type == cur.state_type
                        && cur.state_type == H,
                    "{ctx}"
                );
                assert_eq!(tr.unreachable, reach == X, "{ctx}");
                let retry = cur.state_type == S && reach == R;
                assert_eq!(tr.next_interval == IntervalKind::Retry, retry, "{ctx}");

                // Flap detection.
                assert!(
                    (0.0..=100.0 + 1e-9).contains(&tr.percent_state_change),
                    "{ctx}"
                );
                assert_eq!(cs.flap_history().len(), FLAP_HISTORY_LEN, "{ctx}");
                assert!(
                    close(
                        tr.percent_state_change,
                        percent_state_change(cs.flap_history())
                    ),
                    "{ctx}"
                );
                match tr.flap_change {
                    Some(FlapChange::Started) => {
                        assert!(!flapping && tr.percent_state_change >= flap.high, "{ctx}")
                    }
                    Some(FlapChange::Stopped) => {
                        assert!(flapping && tr.percent_state_change <= flap.low, "{ctx}")
                    }
                    None => assert_eq!(tr.flapping, flapping, "{ctx}"),
                }
                flapping = tr.flapping;
                assert_eq!(cs.is_flapping(), flapping, "{ctx}");

                // Resuming from a snapshot at any point changes nothing.
                if step % 37 == 0 {
                    let json = serde_json::to_string(&cs).expect("serialize");
                    let back: CheckState = serde_json::from_str(&json).expect("deserialize");
                    assert_eq!(back, cs, "{ctx}");
                }
            }
        }
    }
}
