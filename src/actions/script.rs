//! Runs one program for an alarm: argv without a shell, the alarm's facts
//! in the environment (`LAXMON_*` and the Nagios `NAGIOS_*` names), a
//! timeout that kills the whole process group, output capped.
//!
//! Process handling is the checks' runner ([`crate::process::execute`])
//! with one difference: what the program leaves running (a service it
//! restarted) is left alone. This module never interprets what a script
//! means; the caller records the returned [`ActionRun`].

use crate::alarm::store::ActionRun;
use crate::process::{self, End, RunOptions};
use chrono::Utc;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Bytes of stdout and of stderr kept per run.
pub const OUTPUT_CAP: usize = process::DEFAULT_OUTPUT_CAP;

/// One program to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Exec {
    /// The program (a path; not looked up through a shell).
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment variables (on top of the daemon's).
    pub env: Vec<(String, String)>,
    /// The run is killed (process group, SIGTERM then SIGKILL) after this.
    pub timeout: Duration,
}

impl Exec {
    /// The argv as recorded.
    pub fn argv(&self) -> Vec<String> {
        let mut v = vec![self.program.to_string_lossy().into_owned()];
        v.extend(self.args.iter().cloned());
        v
    }
}

/// Runs `exec` and records it under `key` for alarm `alarm_id` as action `action`.
pub async fn run(exec: &Exec, key: &str, alarm_id: u64, action: &str) -> ActionRun {
    let started = Utc::now();
    let clock = Instant::now();
    let mut record = ActionRun {
        key: key.to_string(),
        alarm_id,
        action: action.to_string(),
        argv: exec.argv(),
        started,
        duration: Duration::ZERO,
        exit_code: None,
        timed_out: false,
        output: String::new(),
        error: None,
    };
    let mut opts = RunOptions::new(exec.timeout);
    opts.env = exec.env.clone();
    opts.keep_leftovers = true;
    match process::execute(&exec.argv(), &opts).await {
        Ok(done) => {
            record.output = join_output(&done.stdout.bytes, &done.stderr.bytes);
            match done.end {
                End::Exited(code) => record.exit_code = Some(code),
                End::Signaled(sig) => {
                    record.error = Some(format!(
                        "killed by signal {sig} ({})",
                        process::signal_name(sig)
                    ))
                }
                End::TimedOut(limit) => {
                    record.timed_out = true;
                    record.error = Some(format!(
                        "timed out after {}; process group killed",
                        crate::config::duration::format(limit)
                    ));
                }
            }
        }
        Err(e) => record.error = Some(format!("cannot start {}: {e}", exec.program.display())),
    }
    record.duration = clock.elapsed();
    record
}

/// stdout, then stderr on a line of its own, without a final newline.
fn join_output(out: &[u8], err: &[u8]) -> String {
    let mut s = String::from_utf8_lossy(out).into_owned();
    if !err.is_empty() {
        if !s.is_empty() && !s.ends_with('\n') {
            s.push('\n');
        }
        s.push_str(&String::from_utf8_lossy(err));
    }
    if s.ends_with('\n') {
        s.pop();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, timeout_ms: u64) -> Exec {
        Exec {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            env: vec![("LAXMON_CHECK".into(), "web".into())],
            timeout: Duration::from_millis(timeout_ms),
        }
    }

    #[tokio::test]
    async fn records_exit_output_and_env() {
        let r = run(
            &sh("echo out $LAXMON_CHECK; echo err >&2; exit 3", 10_000),
            "k",
            1,
            "script",
        )
        .await;
        assert_eq!(r.exit_code, Some(3));
        assert_eq!(r.output, "out web\nerr");
        assert!(!r.timed_out);
    }

    #[tokio::test]
    async fn timeout_kills_the_process_group() {
        // The grandchild keeps stdout open; only killing the group ends the run.
        let dir = tempfile::tempdir().expect("tempdir");
        let pids = dir.path().join("pids");
        let script = format!(
            "sleep 30 & echo $! $$ > {}; sleep 30; echo never",
            pids.display()
        );
        let r = run(&sh(&script, 300), "k", 1, "script").await;
        assert!(r.timed_out);
        assert_eq!(r.exit_code, None);
        let text = std::fs::read_to_string(&pids).expect("pids");
        for pid in text.split_whitespace() {
            // SIGKILL was sent to the group; the kernel ends the orphaned
            // grandchild a moment later (longer on a loaded machine).
            for _ in 0..100 {
                if !alive(pid) {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            assert!(
                !alive(pid),
                "process {pid} of the timed-out action still runs"
            );
        }
    }

    /// Whether `pid` runs (a zombie waiting for its reaper does not).
    fn alive(pid: &str) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
            .unwrap_or(false)
    }

    #[tokio::test]
    async fn a_service_the_action_started_keeps_running() {
        // A restart script starts a "daemon" that inherits stdout and exits 0:
        // the run ends as done, and the daemon is not killed.
        let dir = tempfile::tempdir().expect("tempdir");
        let pidfile = dir.path().join("daemon.pid");
        let script = format!("sleep 30 & echo $! > {}; echo restarted", pidfile.display());
        let r = run(&sh(&script, 10_000), "k", 1, "restart-service").await;
        assert_eq!(r.exit_code, Some(0), "{r:?}");
        assert!(!r.timed_out);
        assert_eq!(r.output, "restarted");
        let pid = std::fs::read_to_string(&pidfile).expect("pid");
        let pid = pid.trim();
        assert!(alive(pid), "the started service was killed");
        // SAFETY: kill(2) on the test's own stray sleep.
        unsafe {
            libc::kill(pid.parse().expect("pid number"), libc::SIGKILL);
        }
    }

    #[tokio::test]
    async fn missing_program_is_an_error_not_a_panic() {
        let mut e = sh("", 1000);
        e.program = "/nonexistent/laxmon-script".into();
        let r = run(&e, "k", 1, "script").await;
        assert!(r.error.as_deref().unwrap_or("").contains("cannot start"));
    }

    #[tokio::test]
    async fn output_is_capped() {
        let r = run(
            &sh("head -c 200000 /dev/zero | tr '\\0' x", 10_000),
            "k",
            1,
            "script",
        )
        .await;
        assert_eq!(r.exit_code, Some(0));
        assert_eq!(r.output.len(), OUTPUT_CAP);
    }
}
