//! The real `laxmon run` daemon as a child process, its JSON log lines on a channel.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The daemon with its JSON log lines arriving on a channel.
pub struct Daemon {
    child: Child,
    /// Every JSON log line, in order.
    pub lines: mpsc::Receiver<Value>,
}

impl Daemon {
    /// Starts `laxmon run --config CONFIG` with JSON logs at debug level.
    pub fn start(config: &str) -> Daemon {
        Daemon::start_logging(config, "debug")
    }

    /// Starts `laxmon run --config CONFIG` with JSON logs at `level` (`info`
    /// keeps the log small when thousands of checks run).
    pub fn start_logging(config: &str, level: &str) -> Daemon {
        Daemon::start_with_env(config, level, &[])
    }

    /// Starts `laxmon run` like [`Daemon::start_logging`], with `env` added
    /// to its environment (e.g. systemd's `NOTIFY_SOCKET`).
    pub fn start_with_env(config: &str, level: &str, env: &[(&str, &str)]) -> Daemon {
        let mut child = Command::new(super::bin::laxmon_path())
            .envs(env.iter().copied())
            .args([
                "run",
                "--config",
                config,
                "--log-format",
                "json",
                "--log-level",
                level,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start laxmon run");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // Lines that are not JSON (e.g. a fatal start-up error) arrive as {"raw": line}.
                let v = serde_json::from_str::<Value>(&line)
                    .unwrap_or_else(|_| serde_json::json!({ "raw": line }));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        Daemon { child, lines }
    }

    /// Waits (bounded) for a log line satisfying `pred`, returning it.
    pub fn wait_for(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = std::collections::VecDeque::new();
        while Instant::now() < deadline {
            match self.lines.recv_timeout(Duration::from_millis(200)) {
                Ok(v) if pred(&v) => return v,
                Ok(v) => {
                    last.push_back(v);
                    if last.len() > 20 {
                        last.pop_front();
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("laxmon exited before logging {what}; last lines: {last:?}");
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
        panic!("no log line for: {what}; last lines: {last:?}");
    }

    /// Waits until the operations API listens and the checks run (the two
    /// come in either order).
    pub fn wait_api_up(&self) {
        let mut seen = (false, false);
        while seen != (true, true) {
            let v = self.wait_for("API listening and checks started", |v| {
                matches!(
                    field(v, "message"),
                    "operations API listening" | "laxmon started"
                )
            });
            match field(&v, "message") {
                "operations API listening" => seen.0 = true,
                _ => seen.1 = true,
            }
        }
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(&mut self) -> i32 {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "laxmon did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A string field of a log line, empty when missing.
pub fn field<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}
