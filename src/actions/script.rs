//! Runs one program for an alarm: argv without a shell, the alarm's facts
//! in the environment (`LAXMON_*` and the Nagios `NAGIOS_*` names), a
//! timeout that kills the whole process group, output capped.
//!
//! Interim: the plugin runner in `checks::plugin` does the same for checks;
//! the two should be unified. This module never interprets what a script
//! means; the caller records the returned [`ActionRun`].

use crate::alarm::store::ActionRun;
use chrono::Utc;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Bytes of stdout + stderr kept per run.
pub const OUTPUT_CAP: usize = 64 * 1024;

/// One program to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Exec {
    /// The program (a path; not looked up through a shell).
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment variables (on top of the daemon's).
    pub env: Vec<(String, String)>,
    /// The run is killed (process group, SIGKILL) after this.
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
    let mut cmd = tokio::process::Command::new(&exec.program);
    cmd.args(&exec.args)
        .envs(exec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            record.error = Some(format!("cannot start {}: {e}", exec.program.display()));
            record.duration = clock.elapsed();
            return record;
        }
    };
    let pgid = child.id();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let reader = async {
        let (a, b) = tokio::join!(read_capped(stdout), read_capped(stderr));
        (a, b)
    };
    let waited = tokio::time::timeout(exec.timeout, async {
        let (out, err) = reader.await;
        let status = child.wait().await;
        (out, err, status)
    })
    .await;
    match waited {
        Ok((out, err, status)) => {
            record.output = join_output(out, err);
            match status {
                Ok(s) => record.exit_code = s.code(),
                Err(e) => {
                    record.error = Some(format!("waiting for {}: {e}", exec.program.display()))
                }
            }
        }
        Err(_) => {
            record.timed_out = true;
            if let Some(pid) = pgid {
                kill_group(pid);
            }
            let _ = child.wait().await;
            record.error = Some(format!(
                "timed out after {}; process group killed",
                crate::config::duration::format(exec.timeout)
            ));
        }
    }
    record.duration = clock.elapsed();
    record
}

fn kill_group(pid: u32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: killpg only sends a signal; the group is the child's own (process_group(0)).
        unsafe {
            libc::killpg(pid, libc::SIGKILL);
        }
    }
}

async fn read_capped<R: AsyncRead + Unpin>(r: Option<R>) -> Vec<u8> {
    let Some(mut r) = r else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = OUTPUT_CAP.saturating_sub(out.len());
                out.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
    out
}

fn join_output(out: Vec<u8>, err: Vec<u8>) -> String {
    let mut s = String::from_utf8_lossy(&out).into_owned();
    if !err.is_empty() {
        if !s.is_empty() && !s.ends_with('\n') {
            s.push('\n');
        }
        s.push_str(&String::from_utf8_lossy(&err));
    }
    let mut s: String = s.chars().take(OUTPUT_CAP).collect();
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
        let r = run(
            &sh("sleep 30 & sleep 30; echo never", 300),
            "k",
            1,
            "script",
        )
        .await;
        assert!(r.timed_out);
        assert_eq!(r.exit_code, None);
        assert!(r.duration < Duration::from_secs(20));
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
