//! The `init` check kind: is a service running, per its init script or systemd.
//!
//! An init script is asked `SCRIPT status` and answers with an LSB exit code;
//! systemd is asked `systemctl is-active -- UNIT`. Both run through the
//! process runner ([`crate::process::execute`]) here or over ssh
//! ([`super::location::Location`]); this file only gives the result its meaning.
//!
//! This module must never start, stop or restart anything: it only asks.

use super::location::Location;
use super::plugin;
use crate::checks::{CheckOutput, State};
use crate::process::{End, Execution, RunOptions};

pub use crate::config::InitTarget;

impl InitTarget {
    /// The command that asks for the status.
    pub fn argv(&self) -> Vec<String> {
        match self {
            InitTarget::Script(script) => vec![script.clone(), "status".into()],
            InitTarget::Unit(unit) => vec![
                "systemctl".into(),
                "is-active".into(),
                "--".into(),
                unit.clone(),
            ],
        }
    }

    /// The word(s) before a program name in "not found" messages.
    fn kind(&self) -> &'static str {
        match self {
            InitTarget::Script(_) => "init script",
            InitTarget::Unit(_) => "",
        }
    }

    fn noun(&self) -> String {
        match self {
            InitTarget::Script(script) => format!("init script {script}"),
            InitTarget::Unit(unit) => format!("systemctl is-active {unit}"),
        }
    }
}

/// Runs the status query here or over ssh and maps the answer to a state.
pub async fn run(target: &InitTarget, location: &Location, opts: &RunOptions) -> CheckOutput {
    let noun = location.describe(&target.noun());
    match location.execute(&target.argv(), opts, target.kind()).await {
        Ok(exec) => interpret(target, &exec, &noun),
        Err(out) => out,
    }
}

/// The LSB meaning of a `status` exit code and the state it maps to.
pub fn lsb_status(code: i32) -> (State, &'static str) {
    match code {
        0 => (State::Ok, "running"),
        1 => (State::Critical, "dead, pid file exists"),
        2 => (State::Critical, "dead, lock file exists"),
        3 => (State::Critical, "not running"),
        4 => (State::Unknown, "status unknown"),
        _ => (State::Unknown, "not an LSB status code"),
    }
}

/// Gives a finished status query its meaning (pure).
pub fn interpret(target: &InitTarget, exec: &Execution, noun: &str) -> CheckOutput {
    let code = match exec.end {
        End::Exited(code) => code,
        // Timeouts and signals mean the same for every kind: the runner's UNKNOWN.
        End::Signaled(_) | End::TimedOut(_) => return plugin::interpret(exec, noun),
    };
    let printed = printed_text(exec);
    match target {
        InitTarget::Script(script) => {
            let (state, meaning) = lsb_status(code);
            CheckOutput {
                state,
                output: format!("{script} status: {meaning} (exit {code})"),
                long_output: printed,
                perfdata: Vec::new(),
            }
        }
        InitTarget::Unit(unit) => {
            let answer = exec
                .stdout
                .text()
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_string();
            let (state, output) = match answer.as_str() {
                "active" => (State::Ok, format!("{unit} is active")),
                // No answer at all: systemctl could not ask systemd.
                "" => (
                    State::Unknown,
                    format!("{noun} gave no state (exit {code})"),
                ),
                other => (State::Critical, format!("{unit} is {other}")),
            };
            CheckOutput {
                state,
                output,
                long_output: if answer.is_empty() {
                    printed
                } else {
                    String::new()
                },
                perfdata: Vec::new(),
            }
        }
    }
}

/// stdout then stderr, trimmed, lossily decoded.
fn printed_text(exec: &Execution) -> String {
    [exec.stdout.text(), exec.stderr.text()]
        .iter()
        .map(|t| t.trim_end())
        .filter(|t| !t.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::Captured;
    use std::time::Duration;

    fn exec(end: End, stdout: &str, stderr: &str) -> Execution {
        let cap = |s: &str| Captured {
            bytes: s.as_bytes().to_vec(),
            total: s.len() as u64,
        };
        Execution {
            pid: 1,
            end,
            stdout: cap(stdout),
            stderr: cap(stderr),
            leftovers_killed: false,
        }
    }

    #[test]
    fn lsb_exit_codes() {
        let script = InitTarget::Script("/etc/init.d/apache2".into());
        let cases = [
            (0, State::Ok, "/etc/init.d/apache2 status: running (exit 0)"),
            (
                1,
                State::Critical,
                "/etc/init.d/apache2 status: dead, pid file exists (exit 1)",
            ),
            (
                2,
                State::Critical,
                "/etc/init.d/apache2 status: dead, lock file exists (exit 2)",
            ),
            (
                3,
                State::Critical,
                "/etc/init.d/apache2 status: not running (exit 3)",
            ),
            (
                4,
                State::Unknown,
                "/etc/init.d/apache2 status: status unknown (exit 4)",
            ),
            (
                5,
                State::Unknown,
                "/etc/init.d/apache2 status: not an LSB status code (exit 5)",
            ),
            (
                150,
                State::Unknown,
                "/etc/init.d/apache2 status: not an LSB status code (exit 150)",
            ),
        ];
        for (code, state, output) in cases {
            let got = interpret(
                &script,
                &exec(End::Exited(code), "apache2 is running.\n", ""),
                "x",
            );
            assert_eq!(
                (got.state, got.output.as_str()),
                (state, output),
                "exit {code}"
            );
            assert_eq!(got.long_output, "apache2 is running.");
        }
    }

    #[test]
    fn systemd_answers() {
        let unit = InitTarget::Unit("apache2.service".into());
        let cases = [
            (0, "active\n", "", State::Ok, "apache2.service is active"),
            (
                3,
                "inactive\n",
                "",
                State::Critical,
                "apache2.service is inactive",
            ),
            (
                3,
                "failed\n",
                "",
                State::Critical,
                "apache2.service is failed",
            ),
            (
                3,
                "activating\n",
                "",
                State::Critical,
                "apache2.service is activating",
            ),
            (
                1,
                "",
                "System has not been booted with systemd as init system (PID 1). Can't operate.\n",
                State::Unknown,
                "q gave no state (exit 1)",
            ),
        ];
        for (code, stdout, stderr, state, output) in cases {
            let got = interpret(&unit, &exec(End::Exited(code), stdout, stderr), "q");
            assert_eq!(
                (got.state, got.output.as_str()),
                (state, output),
                "{stdout:?}"
            );
        }
    }

    #[test]
    fn timeouts_and_signals_are_unknown() {
        let script = InitTarget::Script("/etc/init.d/x".into());
        let got = interpret(
            &script,
            &exec(End::TimedOut(Duration::from_secs(3)), "", ""),
            "init script /etc/init.d/x",
        );
        assert_eq!(got.state, State::Unknown);
        assert_eq!(got.output, "init script /etc/init.d/x timed out after 3s");
        let got = interpret(
            &script,
            &exec(End::Signaled(11), "", ""),
            "init script /etc/init.d/x",
        );
        assert_eq!(
            got.output,
            "init script /etc/init.d/x killed by signal 11 (SIGSEGV)"
        );
    }

    #[test]
    fn argv_never_lets_a_unit_look_like_an_option() {
        assert_eq!(
            InitTarget::Unit("--force".into()).argv(),
            vec!["systemctl", "is-active", "--", "--force"]
        );
        assert_eq!(
            InitTarget::Script("/etc/init.d/x".into()).argv(),
            vec!["/etc/init.d/x", "status"]
        );
    }
}
