//! The `plugin` check kind: runs a Nagios plugin through the process
//! runner ([`crate::process`]) here or over SSH ([`Location`]) and gives the
//! run the plugin API's meaning.
//!
//! This module must never run a shell and never start a process itself:
//! every run goes through [`process::execute`].
//!
//! Output policy: stdout is what the plugin API defines and what is parsed.
//! stderr is parsed in its place only when stdout is blank, and is appended
//! to the long output when the run ended abnormally (bad exit code, signal,
//! timeout); otherwise it is ignored, as Nagios does.

use super::location::Location;
use crate::checks::{CheckOutput, State};
use crate::plugin_output;
use crate::process::{self, human_duration, signal_name, End, Execution, RunOptions};
use std::borrow::Cow;
use std::time::Duration;

/// Runs a plugin with default options and the plugin API meaning of its result.
pub async fn run(argv: &[String], timeout: Duration) -> CheckOutput {
    run_with(argv, &RunOptions::new(timeout)).await
}

/// Runs a plugin with explicit options; every failure becomes an UNKNOWN output.
pub async fn run_with(argv: &[String], opts: &RunOptions) -> CheckOutput {
    match process::execute(argv, opts).await {
        Ok(exec) => interpret(&exec, "plugin"),
        Err(e) => CheckOutput::unknown(format!("plugin {e}")),
    }
}

/// Runs a plugin here or over ssh ([`Location`]) and applies the plugin API to the result.
pub async fn run_at(location: &Location, argv: &[String], opts: &RunOptions) -> CheckOutput {
    let noun = location.describe("plugin");
    match location.execute(argv, opts, "plugin").await {
        Ok(exec) => interpret(&exec, &noun),
        Err(out) => out,
    }
}

/// The plugin API meaning of a run: exit 0..3 are states, anything else UNKNOWN.
///
/// `noun` names the program in messages ("plugin", "plugin (via ssh to web1)").
pub fn interpret(exec: &Execution, noun: &str) -> CheckOutput {
    let code = match exec.end {
        End::Exited(code) => code,
        End::Signaled(sig) => return signaled(exec, noun, sig),
        End::TimedOut(after) => return timed_out(exec, noun, after),
    };
    match State::from_code(code) {
        Some(state) => {
            let mut out = plugin_output::parse(state, &main_text(exec));
            if out.output.is_empty() && out.long_output.is_empty() && out.perfdata.is_empty() {
                out.output = format!("({noun} printed nothing)");
            }
            append_truncation_notes(&mut out, exec);
            out
        }
        None => with_headline(
            exec,
            format!("{noun} exited with code {code} (out of bounds, expected 0-3)"),
            true,
        ),
    }
}

/// UNKNOWN output for a run that timed out or was killed by a signal, `None` for a normal exit.
pub fn abnormal_output(exec: &Execution, noun: &str) -> Option<CheckOutput> {
    match exec.end {
        End::Exited(_) => None,
        End::Signaled(sig) => Some(signaled(exec, noun, sig)),
        End::TimedOut(after) => Some(timed_out(exec, noun, after)),
    }
}

fn signaled(exec: &Execution, noun: &str, sig: i32) -> CheckOutput {
    let headline = format!("{noun} killed by signal {sig} ({})", signal_name(sig));
    with_headline(exec, headline, true)
}

fn timed_out(exec: &Execution, noun: &str, after: Duration) -> CheckOutput {
    let headline = format!("{noun} timed out after {}", human_duration(after));
    // Perfdata from a run cut short is not trustworthy: keep the text only.
    with_headline(exec, headline, false)
}

/// An UNKNOWN output led by `headline`, keeping what the program printed below it.
fn with_headline(exec: &Execution, headline: String, keep_perfdata: bool) -> CheckOutput {
    let printed = plugin_output::parse(State::Unknown, &main_text(exec));
    let mut long = Vec::new();
    if !printed.output.is_empty() {
        long.push(printed.output);
    }
    if !printed.long_output.is_empty() {
        long.push(printed.long_output);
    }
    if !exec.stdout.is_blank() && !exec.stderr.is_blank() {
        long.push(exec.stderr.text().trim_end().to_string());
    }
    let mut out = CheckOutput {
        state: State::Unknown,
        output: headline,
        long_output: long.join("\n"),
        perfdata: if keep_perfdata {
            printed.perfdata
        } else {
            Vec::new()
        },
    };
    append_truncation_notes(&mut out, exec);
    out
}

/// stdout, or stderr when stdout is blank.
fn main_text(exec: &Execution) -> Cow<'_, str> {
    if exec.stdout.is_blank() {
        exec.stderr.text()
    } else {
        exec.stdout.text()
    }
}

fn append_truncation_notes(out: &mut CheckOutput, exec: &Execution) {
    for (name, cap) in [("stdout", &exec.stdout), ("stderr", &exec.stderr)] {
        if cap.truncated() {
            if !out.long_output.is_empty() {
                out.long_output.push('\n');
            }
            out.long_output.push_str(&format!(
                "[{name} truncated: kept {} of {} bytes]",
                cap.bytes.len(),
                cap.total
            ));
        }
    }
}

/// Why a command string could not be split into words.
#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    /// Nothing but whitespace.
    #[error("empty command")]
    Empty,
    /// Unbalanced quotes or a trailing backslash.
    #[error("cannot split command {command:?}: {reason}")]
    Syntax {
        /// The command as written.
        command: String,
        /// What shell-words reported.
        reason: String,
    },
}

/// Splits a command string into words like a POSIX shell would, without running one.
pub fn split_command(s: &str) -> Result<Vec<String>, SplitError> {
    let words = shell_words::split(s).map_err(|e| SplitError::Syntax {
        command: s.to_string(),
        reason: e.to_string(),
    })?;
    if words.is_empty() {
        return Err(SplitError::Empty);
    }
    Ok(words)
}

/// Replaces `$HOSTNAME$` and `$HOSTADDRESS$` in every word; other text is kept as is.
pub fn expand_macros(argv: &[String], hostname: &str, address: &str) -> Vec<String> {
    argv.iter()
        .map(|word| {
            let mut out = String::with_capacity(word.len());
            let mut rest = word.as_str();
            while let Some(pos) = rest.find('$') {
                out.push_str(&rest[..pos]);
                let tail = &rest[pos..];
                if let Some(after) = tail.strip_prefix("$HOSTNAME$") {
                    out.push_str(hostname);
                    rest = after;
                } else if let Some(after) = tail.strip_prefix("$HOSTADDRESS$") {
                    out.push_str(address);
                    rest = after;
                } else {
                    out.push('$');
                    rest = &tail[1..];
                }
            }
            out.push_str(rest);
            out
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::Captured;

    fn words(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn exec(end: End, stdout: &str, stderr: &str) -> Execution {
        Execution {
            pid: 1,
            end,
            stdout: Captured {
                bytes: stdout.as_bytes().to_vec(),
                total: stdout.len() as u64,
            },
            stderr: Captured {
                bytes: stderr.as_bytes().to_vec(),
                total: stderr.len() as u64,
            },
            leftovers_killed: false,
        }
    }

    #[test]
    fn split_command_like_a_shell() {
        let cases: &[(&str, &[&str])] = &[
            (
                "/bin/check -w 10% -c 5%",
                &["/bin/check", "-w", "10%", "-c", "5%"],
            ),
            ("check 'a b' \"c d\" e\\ f", &["check", "a b", "c d", "e f"]),
            (
                "check -s 'HEAD / HTTP/1.0'",
                &["check", "-s", "HEAD / HTTP/1.0"],
            ),
            ("  check   $HOSTADDRESS$  ", &["check", "$HOSTADDRESS$"]),
            ("check ''", &["check", ""]),
            ("check a;b|c", &["check", "a;b|c"]),
        ];
        for (input, expected) in cases {
            assert_eq!(
                split_command(input).expect(input),
                words(expected),
                "{input}"
            );
        }
        assert!(matches!(split_command("   "), Err(SplitError::Empty)));
        assert!(matches!(
            split_command("check 'open"),
            Err(SplitError::Syntax { .. })
        ));
    }

    #[test]
    fn expands_host_macros() {
        let argv = words(&[
            "check",
            "-H",
            "$HOSTADDRESS$",
            "--name=$HOSTNAME$-x",
            "$$",
            "$OTHER$",
            "$HOSTNAME",
        ]);
        assert_eq!(
            expand_macros(&argv, "web1", "10.0.0.5"),
            words(&[
                "check",
                "-H",
                "10.0.0.5",
                "--name=web1-x",
                "$$",
                "$OTHER$",
                "$HOSTNAME"
            ])
        );
        // A value containing a macro is not expanded again.
        assert_eq!(
            expand_macros(&words(&["$HOSTNAME$"]), "$HOSTADDRESS$", "x"),
            words(&["$HOSTADDRESS$"])
        );
    }

    #[test]
    fn interprets_ends_like_the_plugin_api() {
        let cases: Vec<(Execution, State, &str)> = vec![
            (
                exec(End::Exited(0), "OK fine | a=1\n", ""),
                State::Ok,
                "OK fine",
            ),
            (
                exec(End::Exited(1), "WARN\n", "noise"),
                State::Warning,
                "WARN",
            ),
            (
                exec(End::Exited(2), "", "only stderr\n"),
                State::Critical,
                "only stderr",
            ),
            (
                exec(End::Exited(3), " \n", ""),
                State::Unknown,
                "(plugin printed nothing)",
            ),
            (
                exec(End::Exited(7), "seven\n", ""),
                State::Unknown,
                "plugin exited with code 7 (out of bounds, expected 0-3)",
            ),
            (
                exec(End::Signaled(9), "", ""),
                State::Unknown,
                "plugin killed by signal 9 (SIGKILL)",
            ),
            (
                exec(End::TimedOut(Duration::from_secs(10)), "partial | a=1", ""),
                State::Unknown,
                "plugin timed out after 10s",
            ),
        ];
        for (e, state, output) in cases {
            let got = interpret(&e, "plugin");
            assert_eq!((got.state, got.output.as_str()), (state, output), "{e:?}");
        }
        let timed_out = interpret(
            &exec(End::TimedOut(Duration::from_secs(10)), "partial | a=1", ""),
            "plugin",
        );
        assert_eq!(timed_out.long_output, "partial");
        assert!(timed_out.perfdata.is_empty());
        let seven = interpret(&exec(End::Exited(7), "seven | a=1\n", "oops\n"), "plugin");
        assert_eq!(seven.long_output, "seven\noops");
        assert_eq!(seven.perfdata.len(), 1);
    }

    #[test]
    fn notes_truncation() {
        let mut e = exec(End::Exited(0), "OK\n", "");
        e.stdout.total = 1000;
        let got = interpret(&e, "plugin");
        assert_eq!(got.long_output, "[stdout truncated: kept 3 of 1000 bytes]");
    }
}
