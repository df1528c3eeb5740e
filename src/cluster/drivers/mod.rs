//! Hypervisor drivers: the five things the executor asks of a cluster.
//!
//! [`Driver`] is the one small trait: which VMs run on a server ([`Driver::list`]),
//! live migration, start, graceful shutdown with a timeout, and destroy.
//! `xl` and `virsh` run their toolstack on each server over ssh, `command`
//! runs configured argv templates on the admin server, and `sim` keeps a
//! simulated cluster in a JSON file. Drivers carry out one operation each and
//! report what happened; they never decide what to do next (that is the
//! executor's job) and never run a shell on the admin server.

pub mod command;
pub mod sim;
pub(crate) mod virsh;
pub(crate) mod xl;

use crate::config::{ClusterConfig, DriverConfig};
use crate::process::{self, End, Execution, RunOptions};
use crate::ssh::{self, SshError, SshOptions};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// A VM a server reports as running (or otherwise resident in memory).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunningVm {
    /// The domain name.
    pub name: String,
    /// Memory in MB when the hypervisor reports it.
    pub memory_mb: Option<u64>,
}

/// Why a driver operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DriverError {
    /// The server could not be reached (ssh failed, simulated server down).
    #[error("server {server} is unreachable: {message}")]
    Unreachable {
        /// The server.
        server: String,
        /// What went wrong.
        message: String,
    },
    /// The hypervisor command ran and failed.
    #[error("`{command}` on {server} failed: {message}")]
    Failed {
        /// Where it ran.
        server: String,
        /// The command line.
        command: String,
        /// Exit status and the first line of its output.
        message: String,
    },
    /// The command's output could not be understood.
    #[error("cannot read the output of `{command}` on {server}: {message}")]
    Output {
        /// Where it ran.
        server: String,
        /// The command line.
        command: String,
        /// What is wrong with it.
        message: String,
    },
    /// The simulated cluster refused an operation that would break its rules.
    #[error("sim refused: {0}")]
    Refused(String),
    /// The simulated cluster's state file could not be used.
    #[error("sim state file {path}: {message}")]
    State {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The server is not part of the cluster.
    #[error("{0} is not a server of this cluster")]
    UnknownServer(String),
}

/// A boxed future, so that drivers can be used as `dyn Driver`.
pub type DriverFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, DriverError>> + Send + 'a>>;

/// What the executor needs from a hypervisor toolstack.
pub trait Driver: Send + Sync {
    /// The VMs running on `server`; an error when the server cannot be asked.
    fn list<'a>(&'a self, server: &'a str) -> DriverFuture<'a, Vec<RunningVm>>;
    /// Live-migrates `vm` from `from` to `to`; returns when it runs on `to`.
    fn migrate<'a>(&'a self, vm: &'a str, from: &'a str, to: &'a str) -> DriverFuture<'a, ()>;
    /// Starts `vm` on `server`.
    fn start<'a>(&'a self, vm: &'a str, server: &'a str) -> DriverFuture<'a, ()>;
    /// Shuts `vm` down gracefully on `server`, waiting at most `timeout`.
    fn shutdown<'a>(
        &'a self,
        vm: &'a str,
        server: &'a str,
        timeout: Duration,
    ) -> DriverFuture<'a, ()>;
    /// Stops `vm` on `server` at once (pulls the plug).
    fn destroy<'a>(&'a self, vm: &'a str, server: &'a str) -> DriverFuture<'a, ()>;
}

/// Builds the configured driver of a cluster.
pub fn build(cluster: &ClusterConfig) -> Arc<dyn Driver> {
    match &cluster.driver {
        DriverConfig::Xl { config_dir } => Arc::new(xl::Xl::new(cluster, config_dir)),
        DriverConfig::Virsh { uri } => Arc::new(virsh::Virsh::new(cluster, uri)),
        DriverConfig::Command(t) => Arc::new(command::CommandDriver::new(cluster, t.clone())),
        DriverConfig::Sim { state, delay } => Arc::new(sim::SimDriver::new(
            state.clone(),
            *delay,
            Some(cluster.clone()),
        )),
    }
}

/// Where a driver command runs.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// On the admin server.
    Local,
    /// Over ssh.
    Ssh(String, SshOptions),
}

/// Runs `argv` for `server` and returns its stdout; a non-zero exit, a
/// signal or a timeout is [`DriverError::Failed`], an ssh failure
/// [`DriverError::Unreachable`].
pub(crate) async fn run(
    server: &str,
    target: &Target,
    argv: &[String],
    timeout: Duration,
) -> Result<String, DriverError> {
    let opts = RunOptions::new(timeout);
    let command = shell_words::join(argv);
    let failed = |message: String| DriverError::Failed {
        server: server.to_string(),
        command: command.clone(),
        message,
    };
    let exec: Execution = match target {
        Target::Local => process::execute(argv, &opts)
            .await
            .map_err(|e| failed(e.to_string()))?,
        Target::Ssh(dest, ssh_opts) => match ssh::execute(dest, ssh_opts, argv, &opts).await {
            Ok(e) => e,
            Err(SshError::Connect { message, .. }) => {
                return Err(DriverError::Unreachable {
                    server: server.to_string(),
                    message,
                })
            }
            Err(e) => return Err(failed(e.to_string())),
        },
    };
    let first = |e: &Execution| {
        let err = e.stderr.text();
        let out = e.stdout.text();
        err.lines()
            .chain(out.lines())
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("no output")
            .to_string()
    };
    match exec.end {
        End::Exited(0) => Ok(exec.stdout.text().into_owned()),
        End::Exited(code) => Err(failed(format!("exit {code}: {}", first(&exec)))),
        End::Signaled(sig) => Err(failed(format!("killed by signal {sig}"))),
        End::TimedOut(after) => Err(failed(format!(
            "no result within {} s, stopped",
            after.as_secs_f64()
        ))),
    }
}

/// Turns a list of words into owned strings.
pub(crate) fn words(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}
