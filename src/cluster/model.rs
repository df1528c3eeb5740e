//! The planner's input and output types, and loading the input from YAML.
//!
//! Input: a [`Cluster`] of hosts and VMs as `docs/clusterreorg.md` describes,
//! validated on load so the planner can trust it (every rejection is a
//! one-line [`PlanInputError`] naming the entry, with `file:line:column`).
//! Output: a [`Plan`] of [`Action`]s plus the final placement. Reading the
//! file in [`Cluster::load`] is the only I/O here; nothing in this file
//! executes a plan.

use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::Path;

/// Whether a host can run VMs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostState {
    /// Running and able to take VMs (the default).
    #[default]
    Up,
    /// Failed or switched off: its VMs are displaced.
    Down,
}

/// One hypervisor host (cluster server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Unique host name.
    pub name: String,
    /// Memory the host can give to VMs, in MB (> 0).
    pub memory_mb: u64,
    /// Memory kept free for dom0, in MB (< `memory_mb`).
    pub reserve_mb: u64,
    /// Up or down as the file says (`--fail` adds more down hosts).
    pub state: HostState,
}

impl Host {
    /// Memory available to VMs: `memory_mb - reserve_mb`.
    pub fn capacity_mb(&self) -> u64 {
        self.memory_mb.saturating_sub(self.reserve_mb)
    }
}

/// One virtual machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vm {
    /// Unique VM name.
    pub name: String,
    /// Where it runs now; `None` when not running (then it is not planned).
    pub host: Option<String>,
    /// Memory it needs, in MB (> 0).
    pub memory_mb: u64,
    /// Importance; higher is more important.
    pub priority: i64,
    /// The only hosts it may run on; `None` means any host.
    pub allowed_hosts: Option<Vec<String>>,
    /// Anti-affinity group: two running VMs of one group never share a host.
    pub anti_affinity: Option<String>,
}

/// The planner's input: every host and VM and where each VM runs now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cluster {
    /// Hosts, in file order.
    pub hosts: Vec<Host>,
    /// VMs, in file order.
    pub vms: Vec<Vm>,
}

/// Why a cluster file or a `--fail` argument was rejected; `Display` is one line.
#[derive(Debug, thiserror::Error)]
pub enum PlanInputError {
    /// The file could not be read.
    #[error("{path}: cannot read cluster file: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The YAML does not parse or does not have the expected shape.
    #[error("{at}: unreadable cluster YAML: {message}")]
    Yaml {
        /// `file:line:column` or `file`.
        at: String,
        /// The parser's message, on one line.
        message: String,
    },
    /// Two hosts or two VMs share a name.
    #[error("{at}: duplicate {kind} name `{name}`")]
    Duplicate {
        /// Where the second one is.
        at: String,
        /// `host` or `VM`.
        kind: &'static str,
        /// The repeated name.
        name: String,
    },
    /// A memory figure is zero, negative or leaves no capacity.
    #[error("{at}: {kind} `{name}`: {message}")]
    Memory {
        /// Where the entry is.
        at: String,
        /// `host` or `VM`.
        kind: &'static str,
        /// The entry's name.
        name: String,
        /// What is wrong with it.
        message: String,
    },
    /// A VM names a host that is not in the file.
    #[error("{at}: VM `{vm}`: {field} names unknown host `{host}`")]
    UnknownHost {
        /// Where the VM is.
        at: String,
        /// The VM.
        vm: String,
        /// `host` or `allowed_hosts`.
        field: &'static str,
        /// The unknown name.
        host: String,
    },
    /// The VMs on an up host already need more than its capacity.
    #[error(
        "{at}: host `{host}` is over capacity now: its VMs use {used_mb} MB of {capacity_mb} MB"
    )]
    OverCapacity {
        /// Where the host is.
        at: String,
        /// The host.
        host: String,
        /// Memory of the VMs on it.
        used_mb: u64,
        /// Its capacity.
        capacity_mb: u64,
    },
    /// A VM runs now on a host outside its `allowed_hosts`.
    #[error("{at}: VM `{vm}` runs on `{host}`, which is not in its allowed_hosts")]
    NotAllowedNow {
        /// Where the VM is.
        at: String,
        /// The VM.
        vm: String,
        /// Its current host.
        host: String,
    },
    /// Two VMs of one anti-affinity group run on one up host now.
    #[error("{at}: VM `{vm}` shares host `{host}` with `{other}`, both in anti-affinity group `{group}`")]
    AntiAffinityNow {
        /// Where the VM is.
        at: String,
        /// The second VM of the group on that host.
        vm: String,
        /// The first one.
        other: String,
        /// The host.
        host: String,
        /// The group.
        group: String,
    },
    /// `--fail HOST` names a host that is not in the file.
    #[error("--fail {host}: no such host in {origin}")]
    UnknownFailedHost {
        /// The argument.
        host: String,
        /// The cluster file.
        origin: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    #[serde(default)]
    hosts: Vec<RawHost>,
    #[serde(default)]
    vms: Vec<RawVm>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    name: Spanned<String>,
    memory_mb: i64,
    #[serde(default)]
    reserve_mb: i64,
    #[serde(default)]
    state: HostState,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVm {
    name: Spanned<String>,
    #[serde(default)]
    host: Option<String>,
    memory_mb: i64,
    #[serde(default)]
    priority: i64,
    #[serde(default)]
    allowed_hosts: Option<Vec<String>>,
    #[serde(default)]
    anti_affinity: Option<String>,
}

/// Where each entry is, for error messages: `origin:line:column`.
struct Locator {
    hosts: Vec<String>,
    vms: Vec<String>,
}

impl Locator {
    fn plain(origin: &str, cluster: &Cluster) -> Locator {
        Locator {
            hosts: vec![origin.to_string(); cluster.hosts.len()],
            vms: vec![origin.to_string(); cluster.vms.len()],
        }
    }
}

fn at(origin: &str, loc: serde_saphyr::Location) -> String {
    if loc.line() == 0 {
        origin.to_string()
    } else {
        format!("{origin}:{}:{}", loc.line(), loc.column())
    }
}

fn memory(value: i64, at: &str, kind: &'static str, name: &str) -> Result<u64, PlanInputError> {
    u64::try_from(value)
        .ok()
        .filter(|m| *m > 0)
        .ok_or_else(|| PlanInputError::Memory {
            at: at.to_string(),
            kind,
            name: name.to_string(),
            message: format!("memory_mb must be > 0, got {value}"),
        })
}

impl Cluster {
    /// Reads and validates a cluster file together with the `--fail` hosts.
    pub fn load(path: &Path, failed: &[String]) -> Result<Cluster, PlanInputError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| PlanInputError::Read {
            path: origin.clone(),
            source,
        })?;
        Cluster::from_yaml(&text, &origin, failed)
    }

    /// Parses and validates cluster YAML with the `--fail` hosts; `origin`
    /// names the source in errors.
    pub fn from_yaml(
        text: &str,
        origin: &str,
        failed: &[String],
    ) -> Result<Cluster, PlanInputError> {
        let raw: RawCluster = serde_saphyr::from_str(text).map_err(|e| PlanInputError::Yaml {
            at: e
                .location()
                .map(|l| at(origin, l))
                .unwrap_or_else(|| origin.to_string()),
            message: one_line(&e.without_snippet().to_string()),
        })?;
        let mut locator = Locator {
            hosts: Vec::new(),
            vms: Vec::new(),
        };
        let mut cluster = Cluster::default();
        for h in raw.hosts {
            let here = at(origin, h.name.referenced);
            let name = h.name.value;
            let memory_mb = memory(h.memory_mb, &here, "host", &name)?;
            let reserve_mb = u64::try_from(h.reserve_mb)
                .ok()
                .filter(|r| *r < memory_mb)
                .ok_or_else(|| PlanInputError::Memory {
                    at: here.clone(),
                    kind: "host",
                    name: name.clone(),
                    message: format!(
                        "reserve_mb must be >= 0 and below memory_mb {memory_mb}, got {}",
                        h.reserve_mb
                    ),
                })?;
            locator.hosts.push(here);
            cluster.hosts.push(Host {
                name,
                memory_mb,
                reserve_mb,
                state: h.state,
            });
        }
        for v in raw.vms {
            let here = at(origin, v.name.referenced);
            let name = v.name.value;
            let memory_mb = memory(v.memory_mb, &here, "VM", &name)?;
            locator.vms.push(here);
            cluster.vms.push(Vm {
                name,
                host: v.host,
                memory_mb,
                priority: v.priority,
                allowed_hosts: v.allowed_hosts,
                anti_affinity: v.anti_affinity,
            });
        }
        cluster.validate_at(&locator, failed, origin)?;
        Ok(cluster)
    }

    /// Checks a cluster built in code, with the `--fail` hosts, the way
    /// [`Cluster::from_yaml`] checks a file.
    pub fn validate(&self, failed: &[String]) -> Result<(), PlanInputError> {
        self.validate_at(&Locator::plain("cluster", self), failed, "the cluster")
    }

    /// The semantic checks. The current state must already obey every
    /// constraint on the hosts that stay up (capacity, `allowed_hosts`,
    /// anti-affinity): rule 1 asks them to hold at every step, step 0
    /// included, so a file that breaks one is bad input rather than something
    /// to plan around. Hosts that are down or failed are not checked: their
    /// VMs are displaced and only their memory sizes matter (the examples in
    /// `docs/clusterreorg.md` overfill the host that fails).
    fn validate_at(
        &self,
        loc: &Locator,
        failed: &[String],
        origin: &str,
    ) -> Result<(), PlanInputError> {
        let mut host_index: HashMap<&str, usize> = HashMap::new();
        for (i, h) in self.hosts.iter().enumerate() {
            if h.memory_mb == 0 || h.reserve_mb >= h.memory_mb {
                return Err(PlanInputError::Memory {
                    at: loc.hosts[i].clone(),
                    kind: "host",
                    name: h.name.clone(),
                    message: format!(
                        "memory_mb {} minus reserve_mb {} leaves no capacity",
                        h.memory_mb, h.reserve_mb
                    ),
                });
            }
            if host_index.insert(&h.name, i).is_some() {
                return Err(PlanInputError::Duplicate {
                    at: loc.hosts[i].clone(),
                    kind: "host",
                    name: h.name.clone(),
                });
            }
        }
        if let Some(f) = failed.iter().find(|f| !host_index.contains_key(f.as_str())) {
            return Err(PlanInputError::UnknownFailedHost {
                host: f.clone(),
                origin: origin.to_string(),
            });
        }
        let mut seen_vm: HashMap<&str, usize> = HashMap::new();
        let mut used = vec![0u64; self.hosts.len()];
        let mut group_on: HashMap<(usize, &str), &str> = HashMap::new();
        for (i, v) in self.vms.iter().enumerate() {
            let here = || loc.vms[i].clone();
            if seen_vm.insert(&v.name, i).is_some() {
                return Err(PlanInputError::Duplicate {
                    at: here(),
                    kind: "VM",
                    name: v.name.clone(),
                });
            }
            if v.memory_mb == 0 {
                return Err(PlanInputError::Memory {
                    at: here(),
                    kind: "VM",
                    name: v.name.clone(),
                    message: "memory_mb must be > 0, got 0".to_string(),
                });
            }
            for a in v.allowed_hosts.iter().flatten() {
                if !host_index.contains_key(a.as_str()) {
                    return Err(PlanInputError::UnknownHost {
                        at: here(),
                        vm: v.name.clone(),
                        field: "allowed_hosts",
                        host: a.clone(),
                    });
                }
            }
            let Some(host) = &v.host else { continue };
            let Some(&h) = host_index.get(host.as_str()) else {
                return Err(PlanInputError::UnknownHost {
                    at: here(),
                    vm: v.name.clone(),
                    field: "host",
                    host: host.clone(),
                });
            };
            if self.hosts[h].state == HostState::Down || failed.contains(host) {
                continue;
            }
            used[h] += v.memory_mb;
            if let Some(allowed) = &v.allowed_hosts {
                if !allowed.contains(host) {
                    return Err(PlanInputError::NotAllowedNow {
                        at: here(),
                        vm: v.name.clone(),
                        host: host.clone(),
                    });
                }
            }
            if let Some(g) = &v.anti_affinity {
                if let Some(other) = group_on.insert((h, g), &v.name) {
                    return Err(PlanInputError::AntiAffinityNow {
                        at: here(),
                        vm: v.name.clone(),
                        other: other.to_string(),
                        host: host.clone(),
                        group: g.clone(),
                    });
                }
            }
        }
        for (i, h) in self.hosts.iter().enumerate() {
            if used[i] > h.capacity_mb() {
                return Err(PlanInputError::OverCapacity {
                    at: loc.hosts[i].clone(),
                    host: h.name.clone(),
                    used_mb: used[i],
                    capacity_mb: h.capacity_mb(),
                });
            }
        }
        Ok(())
    }
}

fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// One step of a plan. Serialises as `{"op":"stop","vm":..,"host":..}`,
/// `{"op":"migrate","vm":..,"from":..,"to":..}` or `{"op":"start","vm":..,"host":..}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Action {
    /// Shut a running VM down to free its memory.
    Stop {
        /// The VM.
        vm: String,
        /// Where it runs.
        host: String,
    },
    /// Live-migrate a running VM.
    Migrate {
        /// The VM.
        vm: String,
        /// Its current host.
        from: String,
        /// Its new host.
        to: String,
    },
    /// Start a displaced VM.
    Start {
        /// The VM.
        vm: String,
        /// Where to start it.
        host: String,
    },
}

/// Which planner made a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlannerKind {
    /// Branch-and-bound search: optimal under the policy.
    Exact,
    /// The search hit its node budget: the best plan found, not proven optimal.
    ExactTruncated,
    /// Greedy placement with local repair, for large clusters.
    Heuristic,
}

/// The planner's output. JSON keys `actions`, `placement` and `down` are the
/// contract; `reasons` and `planner` are extra.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The ordered actions; every prefix keeps the cluster feasible.
    pub actions: Vec<Action>,
    /// Final host of every VM that was running before; `None` = not running.
    pub placement: BTreeMap<String, Option<String>>,
    /// The VMs whose final placement is `None`, sorted by name.
    pub down: Vec<String>,
    /// For every VM in `down`, why it could not run.
    pub reasons: BTreeMap<String, String>,
    /// Which planner produced this plan.
    pub planner: PlannerKind,
}

/// A plan's value under policy rules 2 and 4; a greater score is a better plan.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PlanScore {
    /// `(priority, running VMs of that priority)`, highest priority first,
    /// one entry per priority present among planned VMs.
    pub running_by_priority: Vec<(i64, u32)>,
    /// Stops, negated so that fewer is greater.
    pub neg_stops: i64,
    /// Migrations, negated so that fewer is greater.
    pub neg_migrations: i64,
}

impl Plan {
    /// The plan as one line of JSON plus a newline.
    pub fn to_json(&self) -> String {
        // Serialising plain strings and maps cannot fail.
        let mut s =
            serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
        s.push('\n');
        s
    }

    /// Number of stop actions.
    pub fn stops(&self) -> usize {
        self.actions
            .iter()
            .filter(|a| matches!(a, Action::Stop { .. }))
            .count()
    }

    /// Number of migrate actions.
    pub fn migrations(&self) -> usize {
        self.actions
            .iter()
            .filter(|a| matches!(a, Action::Migrate { .. }))
            .count()
    }

    /// The plan as a human-readable table.
    pub fn to_table(&self, cluster: &Cluster, failed: &[String]) -> String {
        let mut out = String::new();
        let down_hosts: Vec<&str> = cluster
            .hosts
            .iter()
            .filter(|h| h.state == HostState::Down || failed.contains(&h.name))
            .map(|h| h.name.as_str())
            .collect();
        let _ = writeln!(
            out,
            "plan ({}) for down host(s) {}: {} action(s), {} stop(s), {} migration(s), {} VM(s) down",
            match self.planner {
                PlannerKind::Exact => "exact",
                PlannerKind::ExactTruncated => "exact, search truncated",
                PlannerKind::Heuristic => "heuristic",
            },
            if down_hosts.is_empty() { "-".to_string() } else { down_hosts.join(", ") },
            self.actions.len(),
            self.stops(),
            self.migrations(),
            self.down.len()
        );
        if !self.actions.is_empty() {
            let _ = writeln!(
                out,
                "\n{:>4}  {:<8} {:<20} {:<12} {:<12}",
                "#", "op", "vm", "from", "to"
            );
            for (i, a) in self.actions.iter().enumerate() {
                let (op, vm, from, to) = match a {
                    Action::Stop { vm, host } => ("stop", vm, host.as_str(), "-"),
                    Action::Migrate { vm, from, to } => ("migrate", vm, from.as_str(), to.as_str()),
                    Action::Start { vm, host } => ("start", vm, "-", host.as_str()),
                };
                let _ = writeln!(
                    out,
                    "{:>4}  {:<8} {:<20} {:<12} {:<12}",
                    i + 1,
                    op,
                    vm,
                    from,
                    to
                );
            }
        }
        let before: HashMap<&str, &str> = cluster
            .vms
            .iter()
            .filter_map(|v| v.host.as_deref().map(|h| (v.name.as_str(), h)))
            .collect();
        let _ = writeln!(out, "\n{:<20} {:<12} {:<12}", "vm", "before", "after");
        for (vm, after) in &self.placement {
            let _ = writeln!(
                out,
                "{:<20} {:<12} {:<12}",
                vm,
                before.get(vm.as_str()).copied().unwrap_or("-"),
                after.as_deref().unwrap_or("(down)")
            );
        }
        if !self.down.is_empty() {
            let _ = writeln!(out, "\ndown:");
            for vm in &self.down {
                let _ = writeln!(
                    out,
                    "  {vm}: {}",
                    self.reasons.get(vm).map(String::as_str).unwrap_or("-")
                );
            }
        }
        let mut trimmed: String = out
            .lines()
            .map(str::trim_end)
            .collect::<Vec<_>>()
            .join("\n");
        trimmed.push('\n');
        trimmed
    }
}
