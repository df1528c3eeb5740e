//! Check kinds and the result every check produces.
//!
//! One file per kind (`port`, `ping`, `init`, `plugin`), `location` for
//! running a command here or over SSH; this module
//! holds the types they share, and [`Runner`] dispatches one configured
//! check to its kind. Checks never touch the store or the state machine: they
//! return a [`CheckOutput`] and the caller decides what it means.

use serde::Serialize;
use std::fmt;

/// A check's state, as Nagios defines it; the numeric value is the exit code.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum State {
    /// Everything fine (exit 0).
    Ok = 0,
    /// A threshold was crossed (exit 1).
    Warning = 1,
    /// A problem (exit 2).
    Critical = 2,
    /// The check itself could not decide (exit 3).
    Unknown = 3,
}

impl State {
    /// The Nagios exit code of this state.
    pub fn code(self) -> i32 {
        self as i32
    }

    /// The state for a Nagios exit code, `None` for anything outside 0..=3.
    pub fn from_code(code: i32) -> Option<State> {
        match code {
            0 => Some(State::Ok),
            1 => Some(State::Warning),
            2 => Some(State::Critical),
            3 => Some(State::Unknown),
            _ => None,
        }
    }

    /// The upper-case name used in output, JSON and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Ok => "OK",
            State::Warning => "WARNING",
            State::Critical => "CRITICAL",
            State::Unknown => "UNKNOWN",
        }
    }

    /// Parses the upper-case name (`OK`, `WARNING`, ...).
    pub fn parse(s: &str) -> Option<State> {
        match s {
            "OK" => Some(State::Ok),
            "WARNING" => Some(State::Warning),
            "CRITICAL" => Some(State::Critical),
            "UNKNOWN" => Some(State::Unknown),
            _ => None,
        }
    }

    /// Severity for "worst state" ordering: OK < WARNING < UNKNOWN < CRITICAL.
    pub fn severity(self) -> u8 {
        match self {
            State::Ok => 0,
            State::Warning => 1,
            State::Unknown => 2,
            State::Critical => 3,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One performance data item, as the Nagios plugin API defines it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct PerfDatum {
    /// The label, unquoted.
    pub label: String,
    /// The measured value.
    pub value: f64,
    /// Unit of measurement as written (`s`, `ms`, `%`, `B`, `KB`, `MB`, `c`, ...), empty when none.
    pub uom: String,
    /// The warning range string exactly as the plugin wrote it.
    pub warn: Option<String>,
    /// The critical range string exactly as the plugin wrote it.
    pub crit: Option<String>,
    /// Minimum possible value.
    pub min: Option<f64>,
    /// Maximum possible value.
    pub max: Option<f64>,
}

/// What one run of a check says: state, text and perfdata.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct CheckOutput {
    /// The state the check reported.
    pub state: State,
    /// First line of output, without perfdata.
    pub output: String,
    /// Remaining lines, without perfdata.
    pub long_output: String,
    /// Every perfdata item in order.
    pub perfdata: Vec<PerfDatum>,
}

impl CheckOutput {
    /// An output with a state and a one-line message and nothing else.
    pub fn new(state: State, output: impl Into<String>) -> CheckOutput {
        CheckOutput {
            state,
            output: output.into(),
            long_output: String::new(),
            perfdata: Vec::new(),
        }
    }

    /// An UNKNOWN output: the check could not run or could not decide.
    pub fn unknown(output: impl Into<String>) -> CheckOutput {
        CheckOutput::new(State::Unknown, output)
    }
}

pub mod init;
pub mod location;
pub mod ping;
pub mod plugin;
pub mod port;
mod runner;

pub use runner::{Run, Runner};

impl fmt::Display for PerfDatum {
    /// Formats the item as a plugin writes it: `'label'=value[UOM];[warn];[crit];[min];[max]`,
    /// with trailing empty fields left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = if self.label.contains([' ', '\'', '=']) {
            format!("'{}'", self.label.replace('\'', "''"))
        } else {
            self.label.clone()
        };
        let num = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
        let mut fields = vec![
            self.warn.clone().unwrap_or_default(),
            self.crit.clone().unwrap_or_default(),
            num(self.min),
            num(self.max),
        ];
        while fields.last().is_some_and(|s| s.is_empty()) {
            fields.pop();
        }
        write!(f, "{label}={}{}", self.value, self.uom)?;
        for field in fields {
            write!(f, ";{field}")?;
        }
        Ok(())
    }
}

/// Formats perfdata items as a plugin writes them, separated by spaces.
pub fn format_perfdata(items: &[PerfDatum]) -> String {
    items
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}
