//! The Xen `xl` toolstack, run on each server over ssh.
//!
//! `xl list` (parsed by [`parse_xl_list`]), `xl migrate VM ADDRESS` on the
//! source server, `xl create DIR/VM.cfg`, `xl shutdown -w VM` and
//! `xl destroy VM`. Domain-0 is never reported and never touched.

use super::{run, words, Driver, DriverError, DriverFuture, RunningVm, Target};
use crate::config::ClusterConfig;
use std::collections::HashMap;
use std::time::Duration;

/// How to reach each server: its ssh target and its address.
#[derive(Debug, Clone)]
pub(crate) struct Servers {
    by_name: HashMap<String, (Target, String)>,
    /// Limit on one start or migration.
    pub(crate) timeout: Duration,
}

impl Servers {
    /// The servers of `cluster`; a server without `ssh:` is this machine.
    pub(crate) fn new(cluster: &ClusterConfig) -> Servers {
        let opts = crate::ssh::SshOptions::from_settings(&cluster.ssh);
        let by_name = cluster
            .servers
            .iter()
            .map(|s| {
                let target = match &s.ssh {
                    Some(dest) => Target::Ssh(dest.clone(), opts.clone()),
                    None => Target::Local,
                };
                (s.name.clone(), (target, s.address.clone()))
            })
            .collect();
        Servers {
            by_name,
            timeout: cluster.operation_timeout,
        }
    }

    /// The ssh target of `server`.
    pub(crate) fn target(&self, server: &str) -> Result<&Target, DriverError> {
        self.by_name
            .get(server)
            .map(|(t, _)| t)
            .ok_or_else(|| DriverError::UnknownServer(server.to_string()))
    }

    /// The address of `server` (the migration destination).
    pub(crate) fn address(&self, server: &str) -> Result<&str, DriverError> {
        self.by_name
            .get(server)
            .map(|(_, a)| a.as_str())
            .ok_or_else(|| DriverError::UnknownServer(server.to_string()))
    }

    /// Runs `argv` on `server` with the operation timeout (or `timeout`).
    pub(crate) async fn run(
        &self,
        server: &str,
        argv: &[String],
        timeout: Option<Duration>,
    ) -> Result<String, DriverError> {
        run(
            server,
            self.target(server)?,
            argv,
            timeout.unwrap_or(self.timeout),
        )
        .await
    }
}

/// The `xl` driver.
#[derive(Debug, Clone)]
pub(crate) struct Xl {
    servers: Servers,
    config_dir: String,
}

impl Xl {
    /// An `xl` driver for `cluster`, creating domains from `config_dir/VM.cfg`.
    pub(crate) fn new(cluster: &ClusterConfig, config_dir: &str) -> Xl {
        Xl {
            servers: Servers::new(cluster),
            config_dir: config_dir.trim_end_matches('/').to_string(),
        }
    }
}

/// Parses `xl list`: a header line, then `Name ID Mem VCPUs State Time(s)`
/// per domain. Domain-0 is left out.
pub(crate) fn parse_xl_list(text: &str) -> Result<Vec<RunningVm>, String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.is_empty() || cols[0] == "Name" {
            continue;
        }
        if cols.len() < 3 {
            return Err(format!("unexpected line {line:?}"));
        }
        if cols[0] == "Domain-0" {
            continue;
        }
        let memory_mb = cols[2]
            .parse::<u64>()
            .map_err(|_| format!("memory {:?} of {} is not a number", cols[2], cols[0]))?;
        out.push(RunningVm {
            name: cols[0].to_string(),
            memory_mb: Some(memory_mb),
        });
    }
    Ok(out)
}

impl Driver for Xl {
    fn list<'a>(&'a self, server: &'a str) -> DriverFuture<'a, Vec<RunningVm>> {
        Box::pin(async move {
            let argv = words(&["xl", "list"]);
            let text = self.servers.run(server, &argv, None).await?;
            parse_xl_list(&text).map_err(|message| DriverError::Output {
                server: server.to_string(),
                command: "xl list".into(),
                message,
            })
        })
    }

    fn migrate<'a>(&'a self, vm: &'a str, from: &'a str, to: &'a str) -> DriverFuture<'a, ()> {
        Box::pin(async move {
            let address = self.servers.address(to)?;
            let argv = words(&["xl", "migrate", vm, address]);
            self.servers.run(from, &argv, None).await.map(drop)
        })
    }

    fn start<'a>(&'a self, vm: &'a str, server: &'a str) -> DriverFuture<'a, ()> {
        Box::pin(async move {
            let cfg = format!("{}/{vm}.cfg", self.config_dir);
            let argv = words(&["xl", "create", &cfg]);
            self.servers.run(server, &argv, None).await.map(drop)
        })
    }

    fn shutdown<'a>(
        &'a self,
        vm: &'a str,
        server: &'a str,
        timeout: Duration,
    ) -> DriverFuture<'a, ()> {
        Box::pin(async move {
            let argv = words(&["xl", "shutdown", "-w", vm]);
            self.servers
                .run(server, &argv, Some(timeout))
                .await
                .map(drop)
        })
    }

    fn destroy<'a>(&'a self, vm: &'a str, server: &'a str) -> DriverFuture<'a, ()> {
        Box::pin(async move {
            let argv = words(&["xl", "destroy", vm]);
            self.servers.run(server, &argv, None).await.map(drop)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_real_xl_list_output() {
        let text = "Name                                        ID   Mem VCPUs\tState\tTime(s)\n\
Domain-0                                     0  2048     4     r-----   12345.6\n\
clamxp2                                      3  1024     1     -b----     812.1\n\
newjoomla                                   12  2048     2     r-----    4711.0\n";
        let vms = parse_xl_list(text).expect("parses");
        assert_eq!(
            vms,
            vec![
                RunningVm {
                    name: "clamxp2".into(),
                    memory_mb: Some(1024)
                },
                RunningVm {
                    name: "newjoomla".into(),
                    memory_mb: Some(2048)
                },
            ]
        );
    }

    #[test]
    fn only_domain0_is_an_empty_server() {
        let text = "Name ID Mem VCPUs State Time(s)\nDomain-0 0 2048 4 r----- 1.0\n";
        assert_eq!(parse_xl_list(text), Ok(vec![]));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse_xl_list("Name ID Mem\nweird\n").is_err());
        assert!(parse_xl_list("Name ID Mem\nvm 3 lots 1 r 1\n").is_err());
    }
}
