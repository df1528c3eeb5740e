//! The `clusters:` section: cluster servers, their VMs, the hypervisor driver
//! and the safety switches of the clusterreorg executor.
//!
//! Decoding collects every error with its `FILE:LINE:COLUMN` like the rest of
//! the configuration; the cross-references (a server is a defined host, its
//! `alive` check exists, VMs name servers of their own cluster) are resolved
//! in `resolve` once every file is read. This module only describes a
//! cluster: it never talks to a hypervisor or runs a fence command.

use super::decode::{duration_in, integer, name, seq, string, string_list, Errors, MapView};
use super::yaml::{Node, Pos, Value};
use super::{Check, Host, SshSettings};
use crate::suggest::did_you_mean;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One cluster of hypervisor servers whose VMs laxmon may reorganise.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    /// Unique cluster name (also the `{cluster}` of command templates).
    pub name: String,
    /// How laxmon talks to the hypervisors.
    pub driver: DriverConfig,
    /// The cluster servers, in file order.
    pub servers: Vec<ServerConfig>,
    /// The VMs laxmon knows (memory and priority fallbacks for live state), in file order.
    pub vms: Vec<VmConfig>,
    /// Operations (migrations, starts, stops) in flight at once per server.
    pub max_parallel_migrations: usize,
    /// Plan and report only; nothing is fenced, stopped, moved or started.
    pub dry_run: bool,
    /// Without a fence command, proceed when the alive check confirms the server dead.
    pub allow_unfenced: bool,
    /// When the failed server returns, restart the VMs the reorganisation stopped or left down.
    pub restart_on_return: bool,
    /// Directory for the plan journal and the last known placement.
    pub state_dir: PathBuf,
    /// Limit on one start or migration.
    pub operation_timeout: Duration,
    /// Time a graceful shutdown may take before the VM is destroyed.
    pub shutdown_timeout: Duration,
    /// Limit on the fence command.
    pub fence_timeout: Duration,
    /// SSH settings for drivers that reach servers over ssh (from `engine.ssh`).
    pub ssh: SshSettings,
}

impl ClusterConfig {
    /// The server of this name, if it belongs to the cluster.
    pub fn server(&self, name: &str) -> Option<&ServerConfig> {
        self.servers.iter().find(|s| s.name == name)
    }

    /// The server whose `alive` check this is: the failed server when that
    /// check goes HARD CRITICAL.
    pub fn server_alive_by(&self, check: &str) -> Option<&ServerConfig> {
        self.servers
            .iter()
            .find(|s| s.alive.as_deref() == Some(check))
    }

    /// The VM of this name, if configured.
    pub fn vm(&self, name: &str) -> Option<&VmConfig> {
        self.vms.iter().find(|v| v.name == name)
    }
}

/// The hypervisor driver and its options.
#[derive(Debug, Clone, PartialEq)]
pub enum DriverConfig {
    /// Xen `xl` over ssh on every server.
    Xl {
        /// Directory of the domain configs on the servers: `xl create DIR/VM.cfg`.
        config_dir: String,
    },
    /// libvirt `virsh` over ssh on every server.
    Virsh {
        /// Connection URI used on the server itself (`virsh -c URI`).
        uri: String,
    },
    /// Command templates run on the admin server, for any toolstack.
    Command(CommandTemplates),
    /// The simulated cluster of the demo and the tests.
    Sim {
        /// The JSON state file.
        state: PathBuf,
        /// How long each simulated operation takes.
        delay: Duration,
    },
}

impl DriverConfig {
    /// The driver's name as written in the config.
    pub fn name(&self) -> &'static str {
        match self {
            DriverConfig::Xl { .. } => "xl",
            DriverConfig::Virsh { .. } => "virsh",
            DriverConfig::Command(_) => "command",
            DriverConfig::Sim { .. } => "sim",
        }
    }
}

/// Argv templates of the `command` driver; `{cluster}`, `{vm}`, `{host}` and
/// `{target}` are replaced word by word, no shell is involved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandTemplates {
    /// Prints the VMs running on `{host}`, one `NAME [MEMORY_MB]` per line.
    pub list: Vec<String>,
    /// Live-migrates `{vm}` from `{host}` to `{target}`.
    pub migrate: Vec<String>,
    /// Starts `{vm}` on `{host}`.
    pub start: Vec<String>,
    /// Shuts `{vm}` down gracefully on `{host}`.
    pub shutdown: Vec<String>,
    /// Stops `{vm}` on `{host}` at once; the shutdown template when not given.
    pub destroy: Vec<String>,
}

/// One cluster server (a hypervisor host).
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// The host entry's name.
    pub name: String,
    /// The host entry's address (migration target for `xl`/`virsh`).
    pub address: String,
    /// The host entry's ssh destination.
    pub ssh: Option<String>,
    /// Memory the server can give to VMs, in MB.
    pub memory_mb: u64,
    /// Memory kept free for dom0, in MB.
    pub reserve_mb: u64,
    /// The check that says whether the server is alive.
    pub alive: Option<String>,
    /// The fence command (argv, run on the admin server); exit 0 means fenced.
    pub fence: Option<Vec<String>>,
}

/// One VM of a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmConfig {
    /// Unique VM name (the domain name on the hypervisor).
    pub name: String,
    /// Memory in MB, used when the driver does not report it.
    pub memory_mb: u64,
    /// Importance; higher is more important.
    pub priority: i64,
    /// The server it normally runs on: where it is assumed to have run when
    /// laxmon never saw it running.
    pub home: Option<String>,
    /// The only servers it may run on; `None` means any.
    pub allowed_hosts: Option<Vec<String>>,
    /// Two running VMs of one group never share a server.
    pub anti_affinity: Option<String>,
}

/// A cluster as decoded from one file, before references are resolved.
pub(super) struct RawCluster {
    file: PathBuf,
    pos: Pos,
    name: Option<String>,
    driver: Option<DriverConfig>,
    servers: Vec<RawServer>,
    vms: Vec<(VmConfig, Pos, Vec<Pos>)>,
    max_parallel_migrations: usize,
    dry_run: bool,
    allow_unfenced: bool,
    restart_on_return: bool,
    state_dir: PathBuf,
    operation_timeout: Duration,
    shutdown_timeout: Duration,
    fence_timeout: Duration,
}

impl RawCluster {
    /// The cluster's name, when it has a valid one.
    pub(super) fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
}

struct RawServer {
    pos: Pos,
    host: String,
    memory_mb: u64,
    reserve_mb: u64,
    alive: Option<(String, Pos)>,
    fence: Option<Vec<String>>,
}

const CLUSTER_KEYS: &[&str] = &[
    "name",
    "driver",
    "xl",
    "virsh",
    "command",
    "sim",
    "servers",
    "vms",
    "max_parallel_migrations",
    "dry_run",
    "allow_unfenced",
    "restart_on_return",
    "state_dir",
    "operation_timeout",
    "shutdown_timeout",
    "fence_timeout",
];
const DRIVERS: &[&str] = &["xl", "virsh", "command", "sim"];
const SERVER_KEYS: &[&str] = &["host", "memory_mb", "reserve_mb", "alive", "fence"];
const VM_KEYS: &[&str] = &[
    "name",
    "memory_mb",
    "priority",
    "home",
    "allowed_hosts",
    "anti_affinity",
];
const TEMPLATE_KEYS: &[&str] = &["list", "migrate", "start", "shutdown", "destroy"];
const PLACEHOLDERS: &[&str] = &["cluster", "vm", "host", "target"];
const MAX_MEMORY_MB: i64 = 1 << 40;

fn boolean(file: &Path, key: &str, node: &Node, errors: &mut Errors) -> Option<bool> {
    match node.value {
        Value::Bool(b) => Some(b),
        ref other => {
            errors.at(
                file,
                node.pos,
                format!("{key} must be true or false, found {}", other.describe()),
            );
            None
        }
    }
}

/// An argv given as a string (split like a shell would, without running one) or a list.
fn argv(file: &Path, key: &str, node: &Node, errors: &mut Errors) -> Option<Vec<String>> {
    let words = match &node.value {
        Value::Str(s) => match shell_words::split(s) {
            Ok(w) => w,
            Err(e) => {
                errors.at(
                    file,
                    node.pos,
                    format!("{key} {s:?} cannot be split into words: {e}"),
                );
                return None;
            }
        },
        Value::Seq(items) => {
            // YAML 1.1 reads `off`, `on`, `yes`, `no` as booleans.
            if let Some(b) = items.iter().find(|n| matches!(n.value, Value::Bool(_))) {
                errors.at(
                    file,
                    b.pos,
                    format!(
                        "{key}: a word here was read as {} (YAML reads off/on/yes/no as booleans): quote it, e.g. \"off\"",
                        b.value.describe()
                    ),
                );
                return None;
            }
            string_list(file, key, node, errors)
        }
        other => {
            errors.at(
                file,
                node.pos,
                format!(
                    "{key} must be a command: a string or a list of words, found {}",
                    other.describe()
                ),
            );
            return None;
        }
    };
    if words.first().is_none_or(|w| w.trim().is_empty()) {
        errors.at(
            file,
            node.pos,
            format!("{key} is empty: name the program to run"),
        );
        return None;
    }
    Some(words)
}

/// Reports `{word}` placeholders a template may not use.
fn check_placeholders(file: &Path, key: &str, node: &Node, words: &[String], errors: &mut Errors) {
    for w in words {
        let mut rest = w.as_str();
        while let Some(open) = rest.find('{') {
            let after = &rest[open + 1..];
            let Some(close) = after.find('}') else { break };
            let p = &after[..close];
            if !PLACEHOLDERS.contains(&p) {
                errors.at(
                    file,
                    node.pos,
                    format!(
                        "{key}: unknown placeholder {{{p}}}{}; use {}",
                        did_you_mean(p, PLACEHOLDERS),
                        PLACEHOLDERS
                            .iter()
                            .map(|p| format!("{{{p}}}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
            rest = &after[close + 1..];
        }
    }
}

fn memory(file: &Path, key: &str, node: &Node, min: i64, errors: &mut Errors) -> Option<u64> {
    integer(file, key, node, min, MAX_MEMORY_MB, errors).map(|m| m as u64)
}

/// Decodes one entry of `clusters:`.
pub(super) fn decode_cluster(file: &Path, node: &Node, errors: &mut Errors) -> Option<RawCluster> {
    let mut map = MapView::new(file, node, "a cluster", errors)?;
    let name = match map.take("name") {
        Some(n) => name(file, "cluster name", n, errors),
        None => {
            errors.at(file, node.pos, "a cluster needs `name:`");
            None
        }
    };
    let what = match &name {
        Some(n) => format!("cluster {n:?}"),
        None => "the cluster".to_string(),
    };
    let driver_name = match map.take("driver") {
        Some(n) => match string(file, "driver", n, errors) {
            Some(d) if DRIVERS.contains(&d.as_str()) => Some(d),
            Some(d) => {
                errors.at(
                    file,
                    n.pos,
                    format!(
                        "unknown driver {d:?} in {what}{}: use one of {}",
                        did_you_mean(&d, DRIVERS),
                        DRIVERS.join(", ")
                    ),
                );
                None
            }
            None => None,
        },
        None => {
            errors.at(
                file,
                node.pos,
                format!(
                    "{what} needs `driver:` ({}); `sim` simulates a cluster",
                    DRIVERS.join(", ")
                ),
            );
            None
        }
    };
    // Options of the other drivers are mistakes, not silently ignored.
    let mut options = HashMap::new();
    for d in DRIVERS {
        if let Some(n) = map.take(d) {
            if driver_name.as_deref().is_some_and(|chosen| chosen != *d) {
                errors.at(
                    file,
                    n.pos,
                    format!(
                        "{what} sets `{d}:` options but uses driver {:?}",
                        driver_name.as_deref().unwrap_or("")
                    ),
                );
            }
            options.insert(*d, n);
        }
    }
    let driver = driver_name
        .as_deref()
        .and_then(|d| decode_driver(file, node, &what, d, options.get(d).copied(), errors));
    let mut servers = Vec::new();
    match map.take("servers") {
        Some(n) => {
            for s in seq(file, "servers", n, errors) {
                if let Some(s) = decode_server(file, s, errors) {
                    servers.push(s);
                }
            }
            if servers.is_empty() && matches!(n.value, Value::Seq(ref v) if v.is_empty()) {
                errors.at(file, n.pos, format!("{what} has no servers"));
            }
        }
        None => errors.at(
            file,
            node.pos,
            format!("{what} needs `servers:` (host, memory_mb, alive, fence)"),
        ),
    }
    let mut vms = Vec::new();
    if let Some(n) = map.take("vms") {
        for v in seq(file, "vms", n, errors) {
            if let Some(v) = decode_vm(file, v, errors) {
                vms.push(v);
            }
        }
    }
    let max_parallel_migrations = map
        .take("max_parallel_migrations")
        .and_then(|n| integer(file, "max_parallel_migrations", n, 1, 64, errors))
        .map(|i| i as usize)
        .unwrap_or(1);
    let flag = |map: &mut MapView, key: &str, errors: &mut Errors| {
        map.take(key)
            .and_then(|n| boolean(file, key, n, errors))
            .unwrap_or(false)
    };
    let dry_run = flag(&mut map, "dry_run", errors);
    let allow_unfenced = flag(&mut map, "allow_unfenced", errors);
    let restart_on_return = flag(&mut map, "restart_on_return", errors);
    let state_dir = map
        .take("state_dir")
        .and_then(|n| string(file, "state_dir", n, errors))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("var/cluster"));
    let secs = Duration::from_secs;
    let mut timeout = |key: &str, default: Duration, errors: &mut Errors| {
        map.take(key)
            .and_then(|n| duration_in(file, key, n, secs(1), secs(86400), errors))
            .unwrap_or(default)
    };
    let operation_timeout = timeout("operation_timeout", secs(600), errors);
    let shutdown_timeout = timeout("shutdown_timeout", secs(120), errors);
    let fence_timeout = timeout("fence_timeout", secs(60), errors);
    map.finish(&what, CLUSTER_KEYS, errors);
    Some(RawCluster {
        file: file.to_path_buf(),
        pos: node.pos,
        name,
        driver,
        servers,
        vms,
        max_parallel_migrations,
        dry_run,
        allow_unfenced,
        restart_on_return,
        state_dir,
        operation_timeout,
        shutdown_timeout,
        fence_timeout,
    })
}

fn decode_driver(
    file: &Path,
    cluster: &Node,
    what: &str,
    driver: &str,
    options: Option<&Node>,
    errors: &mut Errors,
) -> Option<DriverConfig> {
    let mut map = match options {
        Some(n) => Some(MapView::new(file, n, &format!("{driver} options"), errors)?),
        None => None,
    };
    let mut take = |key: &str| map.as_mut().and_then(|m| m.take(key));
    let cfg = match driver {
        "xl" => {
            let config_dir = take("config_dir")
                .and_then(|n| string(file, "xl.config_dir", n, errors))
                .unwrap_or_else(|| "/etc/xen".to_string());
            Some(DriverConfig::Xl { config_dir })
        }
        "virsh" => {
            let uri = take("uri")
                .and_then(|n| string(file, "virsh.uri", n, errors))
                .unwrap_or_else(|| "qemu:///system".to_string());
            Some(DriverConfig::Virsh { uri })
        }
        "sim" => {
            let state = match take("state") {
                Some(n) => string(file, "sim.state", n, errors).map(PathBuf::from),
                None => {
                    errors.at(
                        file,
                        options.map(|n| n.pos).unwrap_or(cluster.pos),
                        format!("{what} uses driver sim: add `sim: {{state: FILE}}` (the simulated cluster's JSON file)"),
                    );
                    None
                }
            };
            let delay = take("delay")
                .and_then(|n| {
                    duration_in(
                        file,
                        "sim.delay",
                        n,
                        Duration::ZERO,
                        Duration::from_secs(60),
                        errors,
                    )
                })
                .unwrap_or(Duration::from_millis(100));
            state.map(|state| DriverConfig::Sim { state, delay })
        }
        _ => {
            let mut templates: HashMap<&str, Vec<String>> = HashMap::new();
            for key in TEMPLATE_KEYS {
                if let Some(n) = take(key) {
                    let k = format!("command.{key}");
                    if let Some(words) = argv(file, &k, n, errors) {
                        check_placeholders(file, &k, n, &words, errors);
                        templates.insert(key, words);
                    }
                }
            }
            let missing: Vec<&str> = ["list", "migrate", "start", "shutdown"]
                .into_iter()
                .filter(|k| !templates.contains_key(k))
                .collect();
            if !missing.is_empty() {
                errors.at(
                    file,
                    options.map(|n| n.pos).unwrap_or(cluster.pos),
                    format!(
                        "{what} uses driver command: `command:` needs the templates {} (e.g. start: [vx-start, \"{{cluster}}\", \"{{vm}}\"])",
                        missing.join(", ")
                    ),
                );
                None
            } else {
                let shutdown = templates.remove("shutdown").unwrap_or_default();
                let destroy = templates
                    .remove("destroy")
                    .unwrap_or_else(|| shutdown.clone());
                Some(DriverConfig::Command(CommandTemplates {
                    list: templates.remove("list").unwrap_or_default(),
                    migrate: templates.remove("migrate").unwrap_or_default(),
                    start: templates.remove("start").unwrap_or_default(),
                    shutdown,
                    destroy,
                }))
            }
        }
    };
    let allowed: &[&str] = match driver {
        "xl" => &["config_dir"],
        "virsh" => &["uri"],
        "sim" => &["state", "delay"],
        _ => TEMPLATE_KEYS,
    };
    if let Some(m) = map {
        m.finish(&format!("{driver} options"), allowed, errors);
    }
    cfg
}

fn decode_server(file: &Path, node: &Node, errors: &mut Errors) -> Option<RawServer> {
    let mut map = MapView::new(file, node, "a cluster server", errors)?;
    let host = match map.take("host") {
        Some(n) => name(file, "server host", n, errors),
        None => {
            errors.at(
                file,
                node.pos,
                "a cluster server needs `host:` naming a host entry",
            );
            None
        }
    };
    let memory_mb = match map.take("memory_mb") {
        Some(n) => memory(file, "memory_mb", n, 1, errors),
        None => {
            errors.at(
                file,
                node.pos,
                "a cluster server needs `memory_mb:` (memory it can give to VMs)",
            );
            None
        }
    };
    let reserve_mb = map
        .take("reserve_mb")
        .and_then(|n| {
            let r = memory(file, "reserve_mb", n, 0, errors)?;
            if memory_mb.is_some_and(|m| r >= m) {
                errors.at(
                    file,
                    n.pos,
                    format!(
                        "reserve_mb {r} leaves no memory for VMs: it must be below memory_mb {}",
                        memory_mb.unwrap_or(0)
                    ),
                );
                return None;
            }
            Some(r)
        })
        .unwrap_or(0);
    let alive = map
        .take("alive")
        .and_then(|n| string(file, "alive", n, errors).map(|s| (s, n.pos)));
    let fence = map
        .take("fence")
        .and_then(|n| argv(file, "fence", n, errors));
    map.finish("a cluster server", SERVER_KEYS, errors);
    Some(RawServer {
        pos: node.pos,
        host: host?,
        memory_mb: memory_mb?,
        reserve_mb,
        alive,
        fence,
    })
}

fn decode_vm(file: &Path, node: &Node, errors: &mut Errors) -> Option<(VmConfig, Pos, Vec<Pos>)> {
    let mut map = MapView::new(file, node, "a cluster VM", errors)?;
    let vm_name = match map.take("name") {
        Some(n) => name(file, "VM name", n, errors),
        None => {
            errors.at(file, node.pos, "a cluster VM needs `name:`");
            None
        }
    };
    let memory_mb = match map.take("memory_mb") {
        Some(n) => memory(file, "memory_mb", n, 1, errors),
        None => {
            errors.at(file, node.pos, "a cluster VM needs `memory_mb:`");
            None
        }
    };
    let priority = map
        .take("priority")
        .and_then(|n| integer(file, "priority", n, -1_000_000, 1_000_000, errors))
        .unwrap_or(0);
    let mut refs = Vec::new();
    let home = map.take("home").and_then(|n| {
        refs.push(n.pos);
        string(file, "home", n, errors)
    });
    let allowed_hosts = map.take("allowed_hosts").map(|n| {
        refs.push(n.pos);
        string_list(file, "allowed_hosts", n, errors)
    });
    let anti_affinity = map
        .take("anti_affinity")
        .and_then(|n| string(file, "anti_affinity", n, errors));
    map.finish("a cluster VM", VM_KEYS, errors);
    Some((
        VmConfig {
            name: vm_name?,
            memory_mb: memory_mb?,
            priority,
            home,
            allowed_hosts,
            anti_affinity,
        },
        node.pos,
        refs,
    ))
}

/// Resolves references of every cluster against the hosts and checks and
/// reports duplicates; returns the clusters that are complete.
pub(super) fn resolve(
    raw: Vec<RawCluster>,
    hosts: &[Host],
    checks: &[Check],
    ssh: &SshSettings,
    errors: &mut Errors,
) -> Vec<ClusterConfig> {
    let mut out = Vec::new();
    let mut names: HashSet<String> = HashSet::new();
    let mut server_in: HashMap<String, String> = HashMap::new();
    for c in raw {
        let file = c.file.as_path();
        let what = c
            .name
            .as_deref()
            .map(|n| format!("cluster {n:?}"))
            .unwrap_or_else(|| "the cluster".into());
        let mut ok = c.name.is_some() && c.driver.is_some();
        if let Some(n) = &c.name {
            if !names.insert(n.clone()) {
                errors.at(file, c.pos, format!("duplicate cluster name {n:?}"));
                ok = false;
            }
        }
        let needs_ssh = matches!(
            c.driver,
            Some(DriverConfig::Xl { .. } | DriverConfig::Virsh { .. })
        );
        let mut servers = Vec::new();
        let mut seen = HashSet::new();
        for s in &c.servers {
            let Some(host) = hosts.iter().find(|h| h.name == s.host) else {
                errors.at(
                    file,
                    s.pos,
                    format!(
                        "{what}: server {:?} is not a defined host: add it under hosts: (with its ssh: destination)",
                        s.host
                    ),
                );
                ok = false;
                continue;
            };
            if !seen.insert(s.host.clone()) {
                errors.at(
                    file,
                    s.pos,
                    format!("{what}: server {:?} is listed twice", s.host),
                );
                ok = false;
            }
            if let Some(other) = server_in.insert(s.host.clone(), what.clone()) {
                if other != what {
                    errors.at(
                        file,
                        s.pos,
                        format!("{what}: server {:?} already belongs to {other}", s.host),
                    );
                    ok = false;
                }
            }
            if needs_ssh && host.ssh.is_none() {
                errors.at(
                    file,
                    s.pos,
                    format!(
                        "{what} uses driver {} over ssh, but host {:?} has no `ssh:` destination",
                        c.driver.as_ref().map(DriverConfig::name).unwrap_or(""),
                        s.host
                    ),
                );
                ok = false;
            }
            if let Some((alive, pos)) = &s.alive {
                if !checks.iter().any(|k| &k.name == alive) {
                    errors.at(
                        file,
                        *pos,
                        format!(
                            "{what}: server {:?} names alive check {alive:?}, which is not a defined check",
                            s.host
                        ),
                    );
                    ok = false;
                }
            }
            if s.fence.is_none() && s.alive.is_none() && c.allow_unfenced {
                errors.at(
                    file,
                    s.pos,
                    format!(
                        "{what}: server {:?} has neither `fence:` nor `alive:`: allow_unfenced needs an alive check to confirm it dead",
                        s.host
                    ),
                );
                ok = false;
            }
            servers.push(ServerConfig {
                name: s.host.clone(),
                address: host.address.clone(),
                ssh: host.ssh.clone(),
                memory_mb: s.memory_mb,
                reserve_mb: s.reserve_mb,
                alive: s.alive.as_ref().map(|(a, _)| a.clone()),
                fence: s.fence.clone(),
            });
        }
        let server_names: HashSet<&str> = c.servers.iter().map(|s| s.host.as_str()).collect();
        let mut vm_names = HashSet::new();
        for (vm, pos, refs) in &c.vms {
            if !vm_names.insert(vm.name.clone()) {
                errors.at(
                    file,
                    *pos,
                    format!("{what}: duplicate VM name {:?}", vm.name),
                );
                ok = false;
            }
            let mut refs = refs.iter();
            if let Some(home) = &vm.home {
                let at = refs.next().copied().unwrap_or(*pos);
                if !server_names.contains(home.as_str()) {
                    errors.at(
                        file,
                        at,
                        format!(
                            "{what}: VM {:?} has home {home:?}, which is not a server of this cluster",
                            vm.name
                        ),
                    );
                    ok = false;
                }
            }
            if let Some(allowed) = &vm.allowed_hosts {
                let at = refs.next().copied().unwrap_or(*pos);
                for a in allowed {
                    if !server_names.contains(a.as_str()) {
                        errors.at(
                            file,
                            at,
                            format!(
                                "{what}: VM {:?} allows host {a:?}, which is not a server of this cluster",
                                vm.name
                            ),
                        );
                        ok = false;
                    }
                }
                if allowed.is_empty() {
                    errors.at(
                        file,
                        at,
                        format!(
                            "{what}: VM {:?} has an empty allowed_hosts: it could never run",
                            vm.name
                        ),
                    );
                    ok = false;
                }
            }
        }
        if !ok {
            continue;
        }
        let (Some(name), Some(driver)) = (c.name, c.driver) else {
            continue;
        };
        out.push(ClusterConfig {
            name,
            driver,
            servers,
            vms: c.vms.into_iter().map(|(v, _, _)| v).collect(),
            max_parallel_migrations: c.max_parallel_migrations,
            dry_run: c.dry_run,
            allow_unfenced: c.allow_unfenced,
            restart_on_return: c.restart_on_return,
            state_dir: c.state_dir,
            operation_timeout: c.operation_timeout,
            shutdown_timeout: c.shutdown_timeout,
            fence_timeout: c.fence_timeout,
            ssh: ssh.clone(),
        });
    }
    out
}
