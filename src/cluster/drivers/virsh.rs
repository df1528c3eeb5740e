//! libvirt through `virsh`, run on each server over ssh.
//!
//! `virsh -c URI list --all` (parsed by [`parse_virsh_list`]; memory from
//! `virsh dominfo`, parsed by [`parse_dominfo_memory_mb`]),
//! `virsh migrate --live VM qemu+ssh://ADDRESS/system`, `virsh start`,
//! `virsh shutdown` (then polling until the domain is gone or the timeout
//! passes) and `virsh destroy`. Domains must be defined on every server they
//! may start on (shared storage clusters usually define them everywhere).

use super::xl::Servers;
use super::{words, Driver, DriverError, DriverFuture, RunningVm};
use crate::config::ClusterConfig;
use std::time::Duration;

/// The `virsh` driver.
#[derive(Debug, Clone)]
pub(crate) struct Virsh {
    servers: Servers,
    uri: String,
}

/// Parses `virsh list --all`: ` Id  Name  State` with a dashed rule, then one
/// domain per line. Domains with an id (running, paused, in shutdown) are
/// resident and reported; `shut off` ones (id `-`) are not.
pub(crate) fn parse_virsh_list(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.is_empty() || cols[0] == "Id" || cols[0].starts_with("---") {
            continue;
        }
        if cols.len() < 3 {
            return Err(format!("unexpected line {line:?}"));
        }
        if cols[0] == "-" {
            continue;
        }
        if cols[0].parse::<u64>().is_err() {
            return Err(format!("domain id {:?} is not a number", cols[0]));
        }
        out.push(cols[1].to_string());
    }
    Ok(out)
}

/// The `Used memory:` (else `Max memory:`) line of `virsh dominfo`, in MB.
pub(crate) fn parse_dominfo_memory_mb(text: &str) -> Option<u64> {
    let field = |key: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            if k.trim() != key {
                return None;
            }
            let mut it = v.split_whitespace();
            let n: u64 = it.next()?.parse().ok()?;
            match it.next().unwrap_or("KiB") {
                "KiB" => Some(n / 1024),
                "MiB" => Some(n),
                "GiB" => Some(n * 1024),
                _ => None,
            }
        })
    };
    field("Used memory").or_else(|| field("Max memory"))
}

impl Virsh {
    /// A `virsh` driver for `cluster`, connecting to `uri` on each server.
    pub(crate) fn new(cluster: &ClusterConfig, uri: &str) -> Virsh {
        Virsh {
            servers: Servers::new(cluster),
            uri: uri.to_string(),
        }
    }

    fn argv(&self, rest: &[&str]) -> Vec<String> {
        let mut v = words(&["virsh", "-c", &self.uri]);
        v.extend(words(rest));
        v
    }

    async fn names(&self, server: &str) -> Result<Vec<String>, DriverError> {
        let argv = self.argv(&["list", "--all"]);
        let text = self.servers.run(server, &argv, None).await?;
        parse_virsh_list(&text).map_err(|message| DriverError::Output {
            server: server.to_string(),
            command: shell_words::join(&argv),
            message,
        })
    }
}

impl Driver for Virsh {
    fn list<'a>(&'a self, server: &'a str) -> DriverFuture<'a, Vec<RunningVm>> {
        Box::pin(async move {
            let mut out = Vec::new();
            for name in self.names(server).await? {
                let info = self
                    .servers
                    .run(server, &self.argv(&["dominfo", &name]), None)
                    .await
                    .unwrap_or_default();
                out.push(RunningVm {
                    memory_mb: parse_dominfo_memory_mb(&info),
                    name,
                });
            }
            Ok(out)
        })
    }

    fn migrate<'a>(&'a self, vm: &'a str, from: &'a str, to: &'a str) -> DriverFuture<'a, ()> {
        Box::pin(async move {
            let dest = format!("qemu+ssh://{}/system", self.servers.address(to)?);
            let argv = self.argv(&["migrate", "--live", vm, &dest]);
            self.servers.run(from, &argv, None).await.map(drop)
        })
    }

    fn start<'a>(&'a self, vm: &'a str, server: &'a str) -> DriverFuture<'a, ()> {
        Box::pin(async move {
            let argv = self.argv(&["start", vm]);
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
            let argv = self.argv(&["shutdown", vm]);
            self.servers.run(server, &argv, Some(timeout)).await?;
            // `virsh shutdown` only asks the guest; wait until it is gone.
            let deadline = tokio::time::Instant::now() + timeout;
            loop {
                if !self.names(server).await?.iter().any(|n| n == vm) {
                    return Ok(());
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(DriverError::Failed {
                        server: server.to_string(),
                        command: shell_words::join(&argv),
                        message: format!(
                            "{vm} still runs {} s after the shutdown request",
                            timeout.as_secs()
                        ),
                    });
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    }

    fn destroy<'a>(&'a self, vm: &'a str, server: &'a str) -> DriverFuture<'a, ()> {
        Box::pin(async move {
            let argv = self.argv(&["destroy", vm]);
            self.servers.run(server, &argv, None).await.map(drop)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_real_virsh_list_all_output() {
        let text = " Id   Name        State\n\
-------------------------------\n\
 1    debtest     running\n\
 7    win3        paused\n\
 -    winxpc12    shut off\n\n";
        assert_eq!(
            parse_virsh_list(text),
            Ok(vec!["debtest".to_string(), "win3".to_string()])
        );
    }

    #[test]
    fn parses_dominfo_memory() {
        let text = "Id:             1\nName:           debtest\nMax memory:     2097152 KiB\nUsed memory:    1048576 KiB\n";
        assert_eq!(parse_dominfo_memory_mb(text), Some(1024));
        assert_eq!(
            parse_dominfo_memory_mb("Max memory:     2097152 KiB\n"),
            Some(2048)
        );
        assert_eq!(parse_dominfo_memory_mb("Name: x\n"), None);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse_virsh_list(" Id Name State\n x y running\n").is_err());
    }
}
