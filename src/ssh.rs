//! Remote execution through the system `ssh` binary, with connection
//! sharing: the one SSH command builder of laxmon, used by checks, actions,
//! cluster drivers and the stack checks alike.
//!
//! [`remote_argv`] builds the `ssh` command line (batch mode, connect
//! timeout, a ControlMaster socket per destination in a private directory,
//! then the configured options); [`execute`] runs it through the process
//! runner ([`crate::process`]), so timeouts, output caps and process-group
//! killing are the same as for local programs. [`SshOptions::from_settings`]
//! turns `engine.ssh` into options; [`SshOptions::to_env`] /
//! [`SshOptions::from_env`] carry them to a `laxmon plugin` child.
//!
//! This module must never pass a remote word unquoted to the remote shell,
//! never accept a destination that `ssh` could read as an option, never ask
//! for a password (BatchMode), and never wait longer than the run's timeout.
//!
//! Exit 255 from `ssh` means the connection failed; like Nagios'
//! `check_by_ssh`, that is UNKNOWN (we could not learn the service's state),
//! with the message `ssh to HOST failed: <first line ssh printed>`. A remote
//! command that itself exits 255 is reported the same way: ssh cannot tell
//! the two apart. The remote login shell must be a POSIX shell. This module
//! knows nothing of checks or states.

use crate::config::SshSettings;
use crate::process::{self, End, Execution, RunError, RunOptions};
use std::path::PathBuf;
use std::time::Duration;

/// How to reach remote hosts with `ssh`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshOptions {
    /// Directory for ControlMaster sockets (created 0700 if missing; keep the path short).
    pub control_dir: PathBuf,
    /// `ConnectTimeout`, rounded up to whole seconds (at least 1).
    pub connect_timeout: Duration,
    /// How long an idle master connection stays open (`ControlPersist`).
    pub control_persist: Duration,
    /// Extra `ssh` arguments placed before the destination (`-i KEY`, `-o ...`).
    /// Our `-o` options come first and ssh keeps the first value it sees, so
    /// these cannot override BatchMode, ConnectTimeout or the control options.
    pub extra_args: Vec<String>,
}

impl SshOptions {
    /// Options with a 10 s connect timeout and a 60 s ControlPersist.
    pub fn new(control_dir: impl Into<PathBuf>) -> SshOptions {
        SshOptions {
            control_dir: control_dir.into(),
            connect_timeout: Duration::from_secs(10),
            control_persist: Duration::from_secs(60),
            extra_args: Vec::new(),
        }
    }
}

/// Variables that carry [`SshOptions`] from the daemon to a `laxmon plugin`
/// child, so that its SSH uses `engine.ssh` and the daemon's master connections.
pub const ENV_CONTROL_DIR: &str = "LAXMON_SSH_CONTROL_DIR";
/// `ConnectTimeout` in seconds (see [`ENV_CONTROL_DIR`]).
pub const ENV_CONNECT_TIMEOUT: &str = "LAXMON_SSH_CONNECT_TIMEOUT";
/// `ControlPersist` in seconds (see [`ENV_CONTROL_DIR`]).
pub const ENV_CONTROL_PERSIST: &str = "LAXMON_SSH_CONTROL_PERSIST";
/// Extra `ssh` arguments, joined as a POSIX shell would quote them (see [`ENV_CONTROL_DIR`]).
pub const ENV_OPTIONS: &str = "LAXMON_SSH_OPTIONS";

impl SshOptions {
    /// The options `engine.ssh` configures.
    pub fn from_settings(s: &SshSettings) -> SshOptions {
        SshOptions {
            control_dir: s.control_dir.clone(),
            connect_timeout: s.connect_timeout,
            control_persist: s.control_persist,
            extra_args: s.options.clone(),
        }
    }

    /// These options as environment variables for a `laxmon plugin` child.
    pub fn to_env(&self) -> Vec<(String, String)> {
        vec![
            (
                ENV_CONTROL_DIR.into(),
                self.control_dir.to_string_lossy().into_owned(),
            ),
            (
                ENV_CONNECT_TIMEOUT.into(),
                self.connect_timeout.as_secs_f64().to_string(),
            ),
            (
                ENV_CONTROL_PERSIST.into(),
                self.control_persist.as_secs_f64().to_string(),
            ),
            (ENV_OPTIONS.into(), shell_words::join(&self.extra_args)),
        ]
    }

    /// Options from the variables [`SshOptions::to_env`] sets (read through
    /// `var`); each one that is missing or unreadable keeps `engine.ssh`'s
    /// default, so a `laxmon plugin` run by hand behaves as the daemon would
    /// with no `engine.ssh` configured.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> SshOptions {
        let mut opts = SshOptions::from_settings(&SshSettings::default());
        if let Some(dir) = var(ENV_CONTROL_DIR).filter(|d| !d.is_empty()) {
            opts.control_dir = PathBuf::from(dir);
        }
        let secs = |name| {
            var(name)
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(Duration::from_secs_f64)
        };
        if let Some(d) = secs(ENV_CONNECT_TIMEOUT) {
            opts.connect_timeout = d;
        }
        if let Some(d) = secs(ENV_CONTROL_PERSIST) {
            opts.control_persist = d;
        }
        if let Some(words) = var(ENV_OPTIONS).and_then(|v| shell_words::split(&v).ok()) {
            opts.extra_args = words;
        }
        opts
    }
}

/// Why a remote command could not be run or reached.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// The destination is not `[user@]host` or `ssh://[user@]host[:port]`.
    #[error("invalid ssh destination {destination:?}: {reason}")]
    BadDestination {
        /// The destination as configured.
        destination: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The control socket directory could not be created.
    #[error("cannot create ssh control directory {dir}: {source}")]
    ControlDir {
        /// The directory.
        dir: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// `ssh` exited 255: connecting or authenticating failed.
    #[error("ssh to {host} failed: {message}")]
    Connect {
        /// The host part of the destination.
        host: String,
        /// The first meaningful line `ssh` printed.
        message: String,
    },
    /// `ssh` itself could not be started.
    #[error("ssh {0}")]
    Run(#[from] RunError),
}

/// A parsed destination: `user@host`, `host`, or `ssh://user@host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// Login user, if given.
    pub user: Option<String>,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port, if given in an `ssh://` destination.
    pub port: Option<u16>,
}

impl Destination {
    /// Parses and validates a destination so that `ssh` cannot mistake it for an option.
    pub fn parse(s: &str) -> Result<Destination, SshError> {
        let bad = |reason| SshError::BadDestination {
            destination: s.to_string(),
            reason,
        };
        if s.is_empty() {
            return Err(bad("it is empty"));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("it contains whitespace"));
        }
        let (user, hostport, is_uri) = match s.strip_prefix("ssh://") {
            Some(rest) => {
                let rest = rest.strip_suffix('/').unwrap_or(rest);
                match rest.rsplit_once('@') {
                    Some((u, h)) => (Some(u), h, true),
                    None => (None, rest, true),
                }
            }
            None => match s.rsplit_once('@') {
                Some((u, h)) => (Some(u), h, false),
                None => (None, s, false),
            },
        };
        let (host, port) = if !is_uri {
            (hostport, None)
        } else if let Some(bracketed) = hostport.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| bad("unclosed '['"))?;
            match after {
                "" => (host, None),
                p => (
                    host,
                    Some(
                        parse_port(p.strip_prefix(':').ok_or_else(|| bad("junk after ']'"))?)
                            .ok_or_else(|| bad("bad port"))?,
                    ),
                ),
            }
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(parse_port(p).ok_or_else(|| bad("bad port"))?)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err(bad("the host is empty"));
        }
        if host.starts_with('-') {
            return Err(bad("the host starts with '-'"));
        }
        if host.contains('/')
            || (!is_uri && host.contains(':') && host.parse::<std::net::Ipv6Addr>().is_err())
        {
            return Err(bad("the host is not a name or address"));
        }
        if let Some(u) = user {
            if u.is_empty() || u.starts_with('-') || u.contains(':') {
                return Err(bad("the user is empty, starts with '-' or has a password"));
            }
        }
        Ok(Destination {
            user: user.map(str::to_string),
            host: host.to_string(),
            port,
        })
    }

    /// `user@host` or `host`, as the destination word for `ssh`.
    pub fn target(&self) -> String {
        match &self.user {
            Some(u) => format!("{u}@{}", self.host),
            None => self.host.clone(),
        }
    }
}

fn parse_port(p: &str) -> Option<u16> {
    p.parse().ok().filter(|&port| port > 0)
}

/// Builds `ssh -o BatchMode=yes ... [extra] DEST -- 'quoted remote command'`.
pub fn remote_argv(
    destination: &str,
    opts: &SshOptions,
    remote_argv: &[String],
) -> Result<Vec<String>, SshError> {
    let dest = Destination::parse(destination)?;
    let connect_secs = opts.connect_timeout.as_secs_f64().ceil().max(1.0) as u64;
    let persist_secs = opts.control_persist.as_secs_f64().ceil() as u64;
    let mut argv: Vec<String> = vec!["ssh".into()];
    for o in [
        "BatchMode=yes".to_string(),
        format!("ConnectTimeout={connect_secs}"),
        "ControlMaster=auto".to_string(),
        format!("ControlPath={}/%C", opts.control_dir.display()),
        format!("ControlPersist={persist_secs}s"),
    ] {
        argv.push("-o".into());
        argv.push(o);
    }
    if let Some(port) = dest.port {
        argv.push("-p".into());
        argv.push(port.to_string());
    }
    argv.extend(opts.extra_args.iter().cloned());
    argv.push(dest.target());
    argv.push("--".into());
    // ssh hands the remote side one string for its shell: quote every word.
    argv.push(shell_words::join(remote_argv));
    Ok(argv)
}

/// Runs `remote` on `destination` through ssh; exit 255 becomes [`SshError::Connect`].
pub async fn execute(
    destination: &str,
    ssh: &SshOptions,
    remote: &[String],
    opts: &RunOptions,
) -> Result<Execution, SshError> {
    let argv = remote_argv(destination, ssh, remote)?;
    ensure_control_dir(ssh).await?;
    let mut exec = process::execute(&argv, opts).await?;
    exec.stderr.bytes = strip_ssh_noise(&exec.stderr.bytes);
    if exec.end == End::Exited(255) {
        let host = Destination::parse(destination)?.host;
        let message = first_line(&exec.stderr.text())
            .or_else(|| first_line(&exec.stdout.text()))
            .unwrap_or_else(|| "ssh exited 255 without a message".to_string());
        return Err(SshError::Connect { host, message });
    }
    Ok(exec)
}

/// Creates the ControlMaster socket directory (mode 0700) if it is missing.
pub async fn ensure_control_dir(ssh: &SshOptions) -> Result<(), SshError> {
    use std::os::unix::fs::PermissionsExt;
    let dir = &ssh.control_dir;
    let err = |source| SshError::ControlDir {
        dir: dir.display().to_string(),
        source,
    };
    if tokio::fs::metadata(dir).await.is_ok_and(|m| m.is_dir()) {
        return Ok(());
    }
    tokio::fs::create_dir_all(dir).await.map_err(err)?;
    tokio::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .await
        .map_err(err)
}

/// Drops the "Warning: Permanently added ... to the list of known hosts." lines ssh prints.
fn strip_ssh_noise(stderr: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(stderr.len());
    for line in stderr.split_inclusive(|&b| b == b'\n') {
        if !line.starts_with(b"Warning: Permanently added ") {
            out.extend_from_slice(line);
        }
    }
    out
}

fn first_line(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn parses_destinations() {
        let d = |user: Option<&str>, host: &str, port: Option<u16>| Destination {
            user: user.map(Into::into),
            host: host.into(),
            port,
        };
        let cases = [
            ("root@192.168.30.11", d(Some("root"), "192.168.30.11", None)),
            ("cs1", d(None, "cs1", None)),
            (
                "ssh://admin@web1:2222",
                d(Some("admin"), "web1", Some(2222)),
            ),
            ("ssh://web1", d(None, "web1", None)),
            ("ssh://root@[::1]:22", d(Some("root"), "::1", Some(22))),
            ("ssh://[fe80::1]", d(None, "fe80::1", None)),
            ("root@::1", d(Some("root"), "::1", None)),
        ];
        for (text, expected) in cases {
            assert_eq!(Destination::parse(text).expect(text), expected, "{text}");
        }
        for bad in [
            "",
            "-oProxyCommand=x",
            "root@-oProxyCommand=x",
            "-l@host",
            "ssh://host:0",
            "ssh://host:99999",
            "ssh://host:abc",
            "ssh://[::1",
            "host name",
            "user:pw@host",
            "@host",
            "host:22",
            "ssh://",
        ] {
            assert!(
                Destination::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn builds_ssh_argv_with_quoted_remote_command() {
        let mut opts = SshOptions::new("/run/laxmon/ssh");
        opts.connect_timeout = Duration::from_millis(2500);
        opts.extra_args = s(&["-i", "/etc/laxmon/id"]);
        let argv = remote_argv(
            "ssh://root@cs1:2222",
            &opts,
            &s(&[
                "/usr/lib/nagios/plugins/check_dummy",
                "0",
                "all good; rm -rf /",
                "$(x)",
                "it's",
            ]),
        )
        .expect("valid");
        assert_eq!(
            argv,
            s(&[
                "ssh",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=3",
                "-o",
                "ControlMaster=auto",
                "-o",
                "ControlPath=/run/laxmon/ssh/%C",
                "-o",
                "ControlPersist=60s",
                "-p",
                "2222",
                "-i",
                "/etc/laxmon/id",
                "root@cs1",
                "--",
                "/usr/lib/nagios/plugins/check_dummy 0 'all good; rm -rf /' '$(x)' 'it'\\''s'",
            ])
        );
        // The remote shell splits the string back into exactly the original words.
        let remote = argv.last().expect("command");
        assert_eq!(
            shell_words::split(remote).expect("splits"),
            s(&[
                "/usr/lib/nagios/plugins/check_dummy",
                "0",
                "all good; rm -rf /",
                "$(x)",
                "it's"
            ])
        );
    }

    #[test]
    fn strips_known_hosts_warnings_only() {
        let stderr = b"Warning: Permanently added '[127.0.0.1]:2222' (ED25519) to the list of known hosts.\r\nreal error\n";
        assert_eq!(strip_ssh_noise(stderr), b"real error\n");
    }
}
