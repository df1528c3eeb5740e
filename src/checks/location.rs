//! Where a check's command runs: on the admin server or over SSH on its
//! host. The `plugin` and `init` kinds run a command here or there with one
//! call and get failures already phrased as UNKNOWN outputs.
//!
//! This module must never build an `ssh` command line itself (that is
//! [`crate::ssh`]) nor start a process other than through
//! [`crate::process::execute`].

use crate::checks::CheckOutput;
use crate::process::{self, End, Execution, RunOptions};
use crate::ssh::{self, Destination, SshError, SshOptions};

impl From<SshError> for CheckOutput {
    fn from(e: SshError) -> CheckOutput {
        CheckOutput::unknown(e.to_string())
    }
}

/// Where a check's command runs: on this machine or over ssh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// On the admin server itself.
    Local,
    /// On a remote host, through ssh.
    Ssh {
        /// `user@host` or `ssh://user@host:port`.
        destination: String,
        /// How to run ssh.
        options: SshOptions,
    },
}

impl Location {
    /// The host name used in messages: `local` or the ssh destination's host.
    pub fn host(&self) -> String {
        match self {
            Location::Local => "local".into(),
            Location::Ssh { destination, .. } => Destination::parse(destination)
                .map(|d| d.host)
                .unwrap_or_else(|_| destination.clone()),
        }
    }

    /// Runs `argv` here or there; the error is already phrased as an UNKNOWN output.
    ///
    /// `kind` ("plugin", "init script") prefixes messages that name the
    /// program itself: "plugin /x not found ...". Remotely, exit 127/126 (the
    /// remote shell could not find/execute the program) become UNKNOWN here.
    pub async fn execute(
        &self,
        argv: &[String],
        opts: &RunOptions,
        kind: &str,
    ) -> Result<Execution, CheckOutput> {
        match self {
            Location::Local => process::execute(argv, opts)
                .await
                .map_err(|e| CheckOutput::unknown(prefixed(kind, &e.to_string()))),
            Location::Ssh {
                destination,
                options,
            } => {
                let exec = ssh::execute(destination, options, argv, opts)
                    .await
                    .map_err(CheckOutput::from)?;
                let program = argv.first().map(String::as_str).unwrap_or("");
                let host = self.host();
                let problem = match exec.end {
                    End::Exited(127) => Some("not found"),
                    End::Exited(126) => Some("not executable"),
                    _ => None,
                };
                if let Some(problem) = problem {
                    let mut out = CheckOutput::unknown(prefixed(
                        kind,
                        &format!("{program} {problem} on {host}"),
                    ));
                    out.long_output = exec.stderr.text().trim_end().to_string();
                    return Err(out);
                }
                Ok(exec)
            }
        }
    }

    /// The noun for messages: `noun` locally, `noun (via ssh to HOST)` remotely.
    pub fn describe(&self, noun: &str) -> String {
        match self {
            Location::Local => noun.to_string(),
            Location::Ssh { .. } => format!("{noun} (via ssh to {})", self.host()),
        }
    }
}

/// `kind rest`, or just `rest` when there is no kind.
fn prefixed(kind: &str, rest: &str) -> String {
    if kind.is_empty() {
        rest.to_string()
    } else {
        format!("{kind} {rest}")
    }
}
