//! A simulated cluster kept in a JSON state file, for the demo and the tests.
//!
//! Servers are `up`, `down` (crashed: their VMs died with them),
//! `partitioned` (unreachable, but their VMs still run: the split-brain case
//! fencing exists for) or `fenced` (powered off by the fence command). Every
//! change happens under an exclusive lock on the file, so several processes
//! (laxmon, `laxmon sim fail`, the alive check) can share it. Operations take
//! a configurable delay before they take effect, like real ones.
//!
//! The sim enforces the rules a real cluster must never break and REFUSES
//! what would break them: it never starts a VM that runs anywhere (a
//! partitioned server included), never places a VM on a server that is not
//! up, and never overfills a server. Every operation, refused ones included,
//! is appended to `history` so tests can replay it.

use super::{Driver, DriverError, DriverFuture, RunningVm};
use crate::config::ClusterConfig;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The state of one simulated server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerState {
    /// Running and reachable.
    Up,
    /// Crashed: unreachable, its VMs are gone.
    Down,
    /// Unreachable, but its VMs still run.
    Partitioned,
    /// Powered off by the fence command; its VMs are gone.
    Fenced,
}

/// One simulated server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimServer {
    /// Server name.
    pub name: String,
    /// Memory for VMs, in MB.
    pub memory_mb: u64,
    /// Memory kept for dom0, in MB.
    #[serde(default)]
    pub reserve_mb: u64,
    /// Up, down, partitioned or fenced.
    pub state: ServerState,
}

/// One simulated VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimVm {
    /// VM name.
    pub name: String,
    /// Memory in MB.
    pub memory_mb: u64,
    /// Where it runs; `None` when it does not run.
    pub host: Option<String>,
}

/// One recorded operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimEvent {
    /// Position in the history, from 1.
    pub seq: u64,
    /// Milliseconds since the Unix epoch when it took effect (or was refused).
    pub at_ms: u64,
    /// `start`, `migrate`, `shutdown`, `destroy`, `fence`, `fail`, `partition`, `revive`.
    pub op: String,
    /// The VM, for VM operations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm: Option<String>,
    /// The server (a migration's source).
    pub host: String,
    /// A migration's destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Whether it took effect.
    pub ok: bool,
    /// Why it was refused, or what it did (e.g. the VMs a fence killed).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// The whole simulated cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimState {
    /// The servers.
    pub servers: Vec<SimServer>,
    /// The VMs.
    pub vms: Vec<SimVm>,
    /// Every operation, in order.
    #[serde(default)]
    pub history: Vec<SimEvent>,
}

impl SimState {
    /// A fresh simulated cluster from a cluster config: every server up,
    /// every VM running on its `home` (VMs without a home do not run).
    pub fn from_config(cluster: &ClusterConfig) -> SimState {
        SimState {
            servers: cluster
                .servers
                .iter()
                .map(|s| SimServer {
                    name: s.name.clone(),
                    memory_mb: s.memory_mb,
                    reserve_mb: s.reserve_mb,
                    state: ServerState::Up,
                })
                .collect(),
            vms: cluster
                .vms
                .iter()
                .map(|v| SimVm {
                    name: v.name.clone(),
                    memory_mb: v.memory_mb,
                    host: v.home.clone(),
                })
                .collect(),
            history: Vec::new(),
        }
    }

    /// The server of this name.
    pub fn server(&self, name: &str) -> Option<&SimServer> {
        self.servers.iter().find(|s| s.name == name)
    }

    fn server_state(&self, name: &str) -> Result<ServerState, DriverError> {
        self.server(name)
            .map(|s| s.state)
            .ok_or_else(|| DriverError::Refused(format!("no server {name} in the simulation")))
    }

    fn vm_mut(&mut self, name: &str) -> Result<&mut SimVm, DriverError> {
        self.vms
            .iter_mut()
            .find(|v| v.name == name)
            .ok_or_else(|| DriverError::Refused(format!("no VM {name} in the simulation")))
    }

    fn used_mb(&self, server: &str) -> u64 {
        self.vms
            .iter()
            .filter(|v| v.host.as_deref() == Some(server))
            .map(|v| v.memory_mb)
            .sum()
    }

    fn record(
        &mut self,
        op: &str,
        vm: Option<&str>,
        host: &str,
        target: Option<&str>,
        outcome: &Result<String, DriverError>,
    ) {
        let at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let (ok, note) = match outcome {
            Ok(note) => (true, note.clone()),
            Err(e) => (false, e.to_string()),
        };
        self.history.push(SimEvent {
            seq: self.history.len() as u64 + 1,
            at_ms,
            op: op.to_string(),
            vm: vm.map(str::to_string),
            host: host.to_string(),
            target: target.map(str::to_string),
            ok,
            note,
        });
    }

    /// Whether `vm` fits on `server` now (up, memory).
    fn check_room(&self, vm_mb: u64, server: &str) -> Result<(), DriverError> {
        let s = self
            .server(server)
            .ok_or_else(|| DriverError::Refused(format!("no server {server} in the simulation")))?;
        if s.state != ServerState::Up {
            return Err(DriverError::Refused(format!(
                "{server} is {:?}, not up",
                s.state
            )));
        }
        let free = s
            .memory_mb
            .saturating_sub(s.reserve_mb)
            .saturating_sub(self.used_mb(server));
        if vm_mb > free {
            return Err(DriverError::Refused(format!(
                "{server} has {free} MB free, the VM needs {vm_mb} MB"
            )));
        }
        Ok(())
    }

    fn start(&mut self, vm: &str, server: &str) -> Result<String, DriverError> {
        let v = self.vm_mut(vm)?.clone();
        if let Some(h) = &v.host {
            return Err(DriverError::Refused(format!(
                "{vm} already runs on {h}: a VM never runs twice"
            )));
        }
        self.check_room(v.memory_mb, server)?;
        self.vm_mut(vm)?.host = Some(server.to_string());
        Ok(String::new())
    }

    fn migrate(&mut self, vm: &str, from: &str, to: &str) -> Result<String, DriverError> {
        let v = self.vm_mut(vm)?.clone();
        if v.host.as_deref() != Some(from) {
            return Err(DriverError::Refused(format!(
                "{vm} does not run on {from} (it runs on {})",
                v.host.as_deref().unwrap_or("no server")
            )));
        }
        if self.server_state(from)? != ServerState::Up {
            return Err(DriverError::Unreachable {
                server: from.to_string(),
                message: "simulated server is not up".into(),
            });
        }
        self.check_room(v.memory_mb, to)?;
        self.vm_mut(vm)?.host = Some(to.to_string());
        Ok(String::new())
    }

    fn stop(&mut self, vm: &str, server: &str) -> Result<String, DriverError> {
        if self.server_state(server)? != ServerState::Up {
            return Err(DriverError::Unreachable {
                server: server.to_string(),
                message: "simulated server is not up".into(),
            });
        }
        let v = self.vm_mut(vm)?;
        if v.host.as_deref() != Some(server) {
            return Err(DriverError::Refused(format!(
                "{vm} does not run on {server}"
            )));
        }
        v.host = None;
        Ok(String::new())
    }

    /// Sets a server's state; `down` and `fenced` kill its VMs. Returns what happened.
    fn set_server(&mut self, server: &str, state: ServerState) -> Result<String, DriverError> {
        self.server_state(server)?;
        let mut killed = Vec::new();
        if matches!(state, ServerState::Down | ServerState::Fenced) {
            for v in self
                .vms
                .iter_mut()
                .filter(|v| v.host.as_deref() == Some(server))
            {
                v.host = None;
                killed.push(v.name.clone());
            }
        }
        for s in self.servers.iter_mut().filter(|s| s.name == server) {
            s.state = state;
        }
        Ok(if killed.is_empty() {
            String::new()
        } else {
            format!("stopped with it: {}", killed.join(", "))
        })
    }
}

/// Opens the state file locked, runs `f` on the state and writes it back.
/// `init` creates the state when the file is missing or empty.
fn with_state<T>(
    path: &Path,
    init: Option<&ClusterConfig>,
    f: impl FnOnce(&mut SimState) -> Result<T, DriverError>,
) -> Result<T, DriverError> {
    let err = |message: String| DriverError::State {
        path: path.display().to_string(),
        message,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    }
    let mut file = File::options()
        .read(true)
        .write(true)
        .create(init.is_some())
        .truncate(false)
        .open(path)
        .map_err(|e| err(format!("cannot open: {e}")))?;
    file.lock().map_err(|e| err(format!("cannot lock: {e}")))?;
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|e| err(format!("cannot read: {e}")))?;
    let fresh = text.trim().is_empty();
    let mut state = if fresh {
        match init {
            Some(c) => SimState::from_config(c),
            None => return Err(err("empty: run `laxmon cluster status` to create it".into())),
        }
    } else {
        serde_json::from_str(&text).map_err(|e| err(format!("not a sim state: {e}")))?
    };
    let before = state.clone();
    let out = f(&mut state);
    if fresh || state != before {
        let mut json = serde_json::to_string_pretty(&state).map_err(|e| err(e.to_string()))?;
        json.push('\n');
        file.set_len(0).map_err(|e| err(e.to_string()))?;
        file.rewind().map_err(|e| err(e.to_string()))?;
        file.write_all(json.as_bytes())
            .and_then(|()| file.sync_data())
            .map_err(|e| err(format!("cannot write: {e}")))?;
    }
    out
}

/// Reads the simulated cluster (under the lock).
pub fn load(path: &Path) -> Result<SimState, DriverError> {
    with_state(path, None, |s| Ok(s.clone()))
}

/// Makes `server` fail: crash (its VMs die) or, with `partition`, unreachable
/// while its VMs keep running. Returns a one-line description.
pub fn fail(path: &Path, server: &str, partition: bool) -> Result<String, DriverError> {
    let (op, state) = if partition {
        ("partition", ServerState::Partitioned)
    } else {
        ("fail", ServerState::Down)
    };
    mutate(path, op, server, state)
}

/// Brings `server` back up (VMs that survived a partition still run there).
pub fn revive(path: &Path, server: &str) -> Result<String, DriverError> {
    mutate(path, "revive", server, ServerState::Up)
}

/// Fences `server`: powers it off, whatever state it is in; its VMs stop.
pub fn fence(path: &Path, server: &str) -> Result<String, DriverError> {
    mutate(path, "fence", server, ServerState::Fenced)
}

/// Whether `server` is up.
pub fn alive(path: &Path, server: &str) -> Result<bool, DriverError> {
    let state = load(path)?;
    state
        .server(server)
        .map(|s| s.state == ServerState::Up)
        .ok_or_else(|| DriverError::UnknownServer(server.to_string()))
}

fn mutate(path: &Path, op: &str, server: &str, to: ServerState) -> Result<String, DriverError> {
    with_state(path, None, |s| {
        let out = s.set_server(server, to);
        s.record(op, None, server, None, &out);
        out.map(|note| {
            if note.is_empty() {
                format!("{server} is {to:?}").to_lowercase()
            } else {
                format!("{} ({note})", format!("{server} is {to:?}").to_lowercase())
            }
        })
    })
}

/// The `sim` driver: operations on the state file, after the configured delay.
#[derive(Debug, Clone)]
pub struct SimDriver {
    path: PathBuf,
    delay: Duration,
    init: Option<ClusterConfig>,
}

impl SimDriver {
    /// A driver on the state file at `path`; `init` creates it when missing.
    pub fn new(path: PathBuf, delay: Duration, init: Option<ClusterConfig>) -> SimDriver {
        SimDriver { path, delay, init }
    }

    async fn op(
        &self,
        op: &'static str,
        vm: &str,
        host: &str,
        target: Option<&str>,
    ) -> Result<(), DriverError> {
        tokio::time::sleep(self.delay).await;
        let (path, init) = (self.path.clone(), self.init.clone());
        let (vm, host, target) = (vm.to_string(), host.to_string(), target.map(str::to_string));
        let task = tokio::task::spawn_blocking(move || {
            with_state(&path, init.as_ref(), |s| {
                let out = match op {
                    "start" => s.start(&vm, &host),
                    "migrate" => s.migrate(&vm, &host, target.as_deref().unwrap_or_default()),
                    _ => s.stop(&vm, &host),
                };
                s.record(op, Some(&vm), &host, target.as_deref(), &out);
                out.map(drop)
            })
        });
        task.await.map_err(|e| DriverError::State {
            path: self.path.display().to_string(),
            message: e.to_string(),
        })?
    }
}

impl Driver for SimDriver {
    fn list<'a>(&'a self, server: &'a str) -> DriverFuture<'a, Vec<RunningVm>> {
        Box::pin(async move {
            let (path, init, server) = (self.path.clone(), self.init.clone(), server.to_string());
            let task = tokio::task::spawn_blocking(move || {
                with_state(&path, init.as_ref(), |s| match s.server_state(&server)? {
                    ServerState::Up => Ok(s
                        .vms
                        .iter()
                        .filter(|v| v.host.as_deref() == Some(server.as_str()))
                        .map(|v| RunningVm {
                            name: v.name.clone(),
                            memory_mb: Some(v.memory_mb),
                        })
                        .collect()),
                    other => Err(DriverError::Unreachable {
                        server: server.clone(),
                        message: format!("simulated server is {other:?}").to_lowercase(),
                    }),
                })
            });
            task.await.map_err(|e| DriverError::State {
                path: self.path.display().to_string(),
                message: e.to_string(),
            })?
        })
    }

    fn migrate<'a>(&'a self, vm: &'a str, from: &'a str, to: &'a str) -> DriverFuture<'a, ()> {
        Box::pin(self.op("migrate", vm, from, Some(to)))
    }

    fn start<'a>(&'a self, vm: &'a str, server: &'a str) -> DriverFuture<'a, ()> {
        Box::pin(self.op("start", vm, server, None))
    }

    fn shutdown<'a>(
        &'a self,
        vm: &'a str,
        server: &'a str,
        _timeout: Duration,
    ) -> DriverFuture<'a, ()> {
        Box::pin(self.op("shutdown", vm, server, None))
    }

    fn destroy<'a>(&'a self, vm: &'a str, server: &'a str) -> DriverFuture<'a, ()> {
        Box::pin(self.op("destroy", vm, server, None))
    }
}
