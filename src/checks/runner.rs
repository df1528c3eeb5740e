//! Runs one configured check: picks the kind, builds its arguments from the
//! config, holds a process slot for external checks, and times the run.
//!
//! The runner never decides states beyond what a check reports and never
//! touches the store; it is shared by `laxmon check` and the scheduler.

use super::location::Location;
use super::ping::{PingCheck, Pinger};
use super::plugin;
use super::port::PortCheck;
use super::{init, ping, port, CheckOutput};
use crate::config::{connect_address, Check, CheckKind, Config, LOCAL_HOST};
use crate::process::{self, RunOptions};
use crate::ssh::SshOptions;

use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OnceCell, Semaphore};

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

/// Where a host is and how to reach it, as the runner needs it.
#[derive(Debug, Clone)]
struct HostInfo {
    address: String,
    ssh: Option<String>,
}

/// Runs checks of any kind; share it behind an `Arc`.
///
/// Holds the one ICMP client all ping checks share (opened at the first ping)
/// and the semaphore that bounds external processes.
pub struct Runner {
    hosts: HashMap<String, HostInfo>,
    processes: Arc<Semaphore>,
    ssh: SshOptions,
    pinger: OnceCell<Result<Pinger, String>>,
}

impl Runner {
    /// A runner for the checks of `config`.
    pub fn new(config: &Config) -> Runner {
        let hosts = config
            .hosts
            .iter()
            .map(|h| {
                (
                    h.name.clone(),
                    HostInfo {
                        address: h.address.clone(),
                        ssh: h.ssh.clone(),
                    },
                )
            })
            .collect();
        crate::metrics::set_process_slots_limit(config.engine.max_processes.max(1));
        Runner {
            hosts,
            processes: Arc::new(Semaphore::new(config.engine.max_processes.max(1))),
            ssh: SshOptions::from_settings(&config.engine.ssh),
            pinger: OnceCell::new(),
        }
    }

    /// Runs `check` once. External checks first wait for a process slot;
    /// `started` is when the check really began.
    pub async fn run(&self, check: &Check) -> Run {
        let _permit = if check.is_external() {
            // The semaphore is never closed, so acquiring only fails if it were.
            self.processes.acquire().await.ok()
        } else {
            None
        };
        let _slot = _permit
            .as_ref()
            .map(|_| crate::metrics::ProcessSlot::hold());
        let started = Utc::now();
        let t = std::time::Instant::now();
        let output = self.run_kind(check).await;
        Run {
            output,
            started,
            duration: t.elapsed(),
        }
    }

    fn address(&self, host: &str) -> String {
        connect_address(host, self.hosts.get(host).map(|h| h.address.as_str()))
    }

    fn location(&self, host: &str) -> Result<Location, CheckOutput> {
        if host == LOCAL_HOST {
            return Ok(Location::Local);
        }
        match self.hosts.get(host).and_then(|h| h.ssh.clone()) {
            Some(destination) => Ok(Location::Ssh {
                destination,
                options: self.ssh.clone(),
            }),
            None => Err(CheckOutput::unknown(format!(
                "host {host} has no ssh destination to run this check on"
            ))),
        }
    }

    async fn pinger(&self) -> Result<&Pinger, String> {
        self.pinger
            .get_or_init(|| async { Pinger::new().map_err(|e| e.to_string()) })
            .await
            .as_ref()
            .map_err(|e| e.clone())
    }

    async fn run_kind(&self, check: &Check) -> CheckOutput {
        let opts = RunOptions::new(check.timeout);
        match &check.kind {
            CheckKind::Port(spec) => {
                let pc = PortCheck {
                    address: self.address(&check.host),
                    port: spec.port,
                    send: spec.send.clone(),
                    expect: spec.expect.clone(),
                    warn: spec.warn,
                    crit: spec.crit,
                    timeout: check.timeout,
                };
                port::run(&pc).await
            }
            CheckKind::Ping(spec) => {
                let pinger = match self.pinger().await {
                    Ok(p) => p,
                    Err(e) => return CheckOutput::unknown(e),
                };
                let mut pc = PingCheck::new(self.address(&check.host));
                pc.count = spec.count;
                pc.timeout = check.timeout;
                pc.warn = ping::PingThresholds {
                    rta: spec.warn.rta,
                    loss: spec.warn.loss.map(|l| l.round().clamp(0.0, 100.0) as u8),
                };
                pc.crit = ping::PingThresholds {
                    rta: spec.crit.rta,
                    loss: spec.crit.loss.map(|l| l.round().clamp(0.0, 100.0) as u8),
                };
                ping::run(pinger, &pc).await
            }
            CheckKind::Init(target) => match self.location(&check.host) {
                Ok(location) => init::run(target, &location, &opts).await,
                Err(out) => out,
            },
            CheckKind::Plugin { command, .. } => {
                let argv = plugin::expand_macros(command, &check.host, &self.address(&check.host));
                if check.runs_on_host() {
                    return match self.location(&check.host) {
                        Ok(location) => plugin::run_at(&location, &argv, &opts).await,
                        Err(out) => out,
                    };
                }
                // A `laxmon plugin` child reaches hosts with engine.ssh's
                // options and the daemon's master connections.
                let mut opts = opts;
                opts.env.extend(self.ssh.to_env());
                match process::execute(&argv, &opts).await {
                    Ok(exec) => plugin::interpret(&exec, "plugin"),
                    Err(e @ process::RunError::NotFound { .. })
                        if self.hosts.get(&check.host).is_some_and(|h| h.ssh.is_some()) =>
                    {
                        // Perhaps the form that ran on the host before
                        // `run_on` existed: say where it ran and how to move it.
                        CheckOutput::unknown(format!(
                            "plugin {e} on the admin server, where plugin checks run; \
                             add `run_on: host` to run it on {} over SSH",
                            check.host
                        ))
                    }
                    Err(e) => CheckOutput::unknown(format!("plugin {e}")),
                }
            }
        }
    }
}
