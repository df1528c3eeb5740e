//! DRBD resource state: parses `drbdadm status` / `drbdsetup status
//! --verbose --statistics` (DRBD 9) and `/proc/drbd` (DRBD 8) into one model
//! and evaluates connection, roles, disk states, resync progress and
//! out-of-sync bytes, on one or more SAN servers.
//!
//! [`parse`] and [`evaluate`] are pure: they never do I/O. Only
//! [`DrbdCheck::run`] gathers text, through [`super::source`].

use super::source::{Fetch, Origin, Source};
use super::{perf, Findings, Thresholds};
use crate::plugin_output::{CheckOutput, State};

/// One DRBD resource as seen from one node.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Resource {
    /// Resource name (DRBD 9), or `drbdN` for minor N (`/proc/drbd` of DRBD 8).
    pub name: String,
    /// This node's role: `Primary`, `Secondary`, `Unknown` or `Unconfigured`.
    pub role: String,
    /// Local volumes.
    pub volumes: Vec<Volume>,
    /// Connections to peers.
    pub peers: Vec<Peer>,
}

/// A local volume of a resource.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Volume {
    /// Volume number within the resource.
    pub number: u32,
    /// Local disk state (`UpToDate`, `Inconsistent`, `Diskless`, ...).
    pub disk: String,
}

/// A connection to a peer node.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Peer {
    /// Peer node name (`peer` for DRBD 8, which does not name it).
    pub name: String,
    /// Connection state (`Connected`, `StandAlone`, `Connecting`, ...).
    pub connection: String,
    /// The peer's role as this node sees it.
    pub role: String,
    /// The peer's volumes.
    pub volumes: Vec<PeerVolume>,
}

/// A peer's volume: replication state, peer disk, progress, out-of-sync.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PeerVolume {
    /// Volume number.
    pub number: u32,
    /// Replication state (`Established`, `SyncSource`, `SyncTarget`, `Off`, ...).
    pub replication: String,
    /// The peer's disk state.
    pub peer_disk: String,
    /// Resync progress in percent, while syncing.
    pub done: Option<f64>,
    /// Out-of-sync data in bytes, when the tool reports it.
    pub out_of_sync: Option<u64>,
}

/// Everything one node reported.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DrbdStatus {
    /// The resources, in output order.
    pub resources: Vec<Resource>,
    /// The text mentions a split-brain.
    pub split_brain: bool,
}

/// Parses either format: `/proc/drbd` when it has `N: cs:` lines, else `drbdadm status`.
pub fn parse(text: &str) -> DrbdStatus {
    let is_proc = text.lines().any(|l| {
        let t = l.trim_start();
        t.split_once(": cs:")
            .is_some_and(|(m, _)| m.chars().all(|c| c.is_ascii_digit()))
            || t.starts_with("version:")
    });
    let mut status = if is_proc {
        parse_proc(text)
    } else {
        parse_status(text)
    };
    let lower = text.to_ascii_lowercase();
    status.split_brain = lower.contains("split-brain") || lower.contains("splitbrain");
    status
}

fn kvs(tokens: &[&str]) -> Vec<(String, String)> {
    tokens
        .iter()
        .filter_map(|t| t.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn get<'a>(kv: &'a [(String, String)], key: &str) -> Option<&'a str> {
    kv.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn apply_volume(v: &mut Volume, kv: &[(String, String)]) {
    if let Some(n) = get(kv, "volume").and_then(|n| n.parse().ok()) {
        v.number = n;
    }
    if let Some(d) = get(kv, "disk") {
        v.disk = d.to_string();
    }
}

fn apply_peer_volume(v: &mut PeerVolume, kv: &[(String, String)]) {
    if let Some(n) = get(kv, "volume").and_then(|n| n.parse().ok()) {
        v.number = n;
    }
    if let Some(r) = get(kv, "replication") {
        v.replication = r.to_string();
    }
    if let Some(d) = get(kv, "peer-disk") {
        v.peer_disk = d.to_string();
    }
    if let Some(d) = get(kv, "done").and_then(super::parse_decimal) {
        v.done = Some(d);
    }
    if let Some(o) = get(kv, "out-of-sync").and_then(|o| o.parse::<u64>().ok()) {
        v.out_of_sync = Some(o.saturating_mul(1024));
    }
}

/// Parses DRBD 9 `drbdadm status` / `drbdsetup status [--verbose --statistics]`.
///
/// The non-verbose form leaves out `connection:Connected` and
/// `replication:Established`; they are filled in here.
pub fn parse_status(text: &str) -> DrbdStatus {
    let mut resources: Vec<Resource> = Vec::new();
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let tokens: Vec<&str> = line.split_whitespace().collect();
        let Some(first) = tokens.first() else {
            continue;
        };
        if !first.contains(':') {
            let kv = kvs(&tokens[1..]);
            if indent == 0 {
                resources.push(Resource {
                    name: first.to_string(),
                    role: get(&kv, "role").unwrap_or("Unknown").to_string(),
                    ..Resource::default()
                });
            } else if let Some(res) = resources.last_mut() {
                res.peers.push(Peer {
                    name: first.to_string(),
                    connection: get(&kv, "connection").unwrap_or("Connected").to_string(),
                    role: get(&kv, "role").unwrap_or("Unknown").to_string(),
                    volumes: Vec::new(),
                });
            }
            continue;
        }
        let Some(res) = resources.last_mut() else {
            continue;
        };
        let kv = kvs(&tokens);
        let first_key = kv.first().map(|(k, _)| k.as_str()).unwrap_or("");
        if let Some(peer) = res.peers.last_mut() {
            if first_key == "volume" || peer.volumes.is_empty() {
                peer.volumes.push(PeerVolume::default());
            }
            if let Some(v) = peer.volumes.last_mut() {
                apply_peer_volume(v, &kv);
            }
        } else if first_key == "volume" || (res.volumes.is_empty() && get(&kv, "disk").is_some()) {
            let mut v = Volume::default();
            apply_volume(&mut v, &kv);
            res.volumes.push(v);
        } else if let Some(v) = res.volumes.last_mut() {
            apply_volume(v, &kv);
        } else if let Some(role) = get(&kv, "role") {
            res.role = role.to_string();
        }
    }
    for res in &mut resources {
        for peer in &mut res.peers {
            for v in &mut peer.volumes {
                if v.replication.is_empty() {
                    v.replication = if peer.connection == "Connected" {
                        "Established".into()
                    } else {
                        "Off".into()
                    };
                }
                if v.peer_disk.is_empty() {
                    v.peer_disk = "DUnknown".into();
                }
            }
            if peer.volumes.is_empty() {
                let replication = if peer.connection == "Connected" {
                    "Established"
                } else {
                    "Off"
                };
                peer.volumes.push(PeerVolume {
                    replication: replication.into(),
                    peer_disk: "DUnknown".into(),
                    ..PeerVolume::default()
                });
            }
        }
    }
    DrbdStatus {
        resources,
        split_brain: false,
    }
}

/// DRBD 8 connection states that mean "connected, and replicating like this".
const REPLICATING: &[&str] = &[
    "SyncSource",
    "SyncTarget",
    "PausedSyncS",
    "PausedSyncT",
    "VerifyS",
    "VerifyT",
    "StartingSyncS",
    "StartingSyncT",
    "WFBitMapS",
    "WFBitMapT",
    "WFSyncUUID",
    "Ahead",
    "Behind",
];

/// Parses DRBD 8 `/proc/drbd`; resources are named `drbdN` by minor number.
pub fn parse_proc(text: &str) -> DrbdStatus {
    let mut resources: Vec<Resource> = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if let Some((minor, rest)) = t.split_once(": cs:") {
            if !minor.is_empty() && minor.chars().all(|c| c.is_ascii_digit()) {
                let tokens: Vec<&str> = rest.split_whitespace().collect();
                let cs = tokens.first().copied().unwrap_or("Unknown");
                let kv = kvs(&tokens);
                let roles = get(&kv, "ro").or_else(|| get(&kv, "st")).unwrap_or("");
                let (role, peer_role) = roles.split_once('/').unwrap_or((roles, "Unknown"));
                let disks = get(&kv, "ds").unwrap_or("");
                let (disk, peer_disk) = disks.split_once('/').unwrap_or((disks, "DUnknown"));
                let mut res = Resource {
                    name: format!("drbd{minor}"),
                    role: if cs == "Unconfigured" {
                        "Unconfigured".into()
                    } else {
                        role.to_string()
                    },
                    volumes: Vec::new(),
                    peers: Vec::new(),
                };
                if cs != "Unconfigured" {
                    let (connection, replication) = if cs == "Connected" {
                        ("Connected", "Established")
                    } else if REPLICATING.contains(&cs) {
                        ("Connected", cs)
                    } else {
                        (cs, "Off")
                    };
                    res.volumes.push(Volume {
                        number: 0,
                        disk: disk.to_string(),
                    });
                    res.peers.push(Peer {
                        name: "peer".into(),
                        connection: connection.into(),
                        role: peer_role.to_string(),
                        volumes: vec![PeerVolume {
                            number: 0,
                            replication: replication.into(),
                            peer_disk: peer_disk.to_string(),
                            done: None,
                            out_of_sync: None,
                        }],
                    });
                }
                resources.push(res);
                continue;
            }
        }
        let Some(pv) = resources
            .last_mut()
            .and_then(|r| r.peers.last_mut())
            .and_then(|p| p.volumes.last_mut())
        else {
            continue;
        };
        if t.starts_with("ns:") {
            let tokens: Vec<&str> = t.split_whitespace().collect();
            let kv = kvs(&tokens);
            if let Some(o) = get(&kv, "oos").and_then(|o| o.parse::<u64>().ok()) {
                pv.out_of_sync = Some(o.saturating_mul(1024));
            }
        } else if let Some(pos) = t.find("sync'ed:").or_else(|| t.find("verified:")) {
            let after = &t[pos..];
            let pct = after
                .split_whitespace()
                .nth(1)
                .and_then(super::parse_decimal);
            if pct.is_some() {
                pv.done = pct;
            }
        }
    }
    DrbdStatus {
        resources,
        split_brain: false,
    }
}

/// Options of the DRBD check.
#[derive(Debug, Clone, PartialEq)]
pub struct DrbdCheck {
    /// Servers to ask, by name (one `local` entry by default).
    pub servers: Vec<(String, Origin)>,
    /// Read `/proc/drbd` (DRBD 8) instead of running `drbdsetup status`.
    pub proc_drbd: bool,
    /// Resources to check (names; `drbdN` or `N` for minors of `/proc/drbd`); empty: all.
    pub resources: Vec<String>,
    /// Thresholds on out-of-sync bytes per resource.
    pub oos: Thresholds,
    /// CRITICAL when no server has the resource Primary.
    pub require_primary: bool,
}

impl Default for DrbdCheck {
    fn default() -> Self {
        DrbdCheck {
            servers: vec![("local".into(), Origin::Local)],
            proc_drbd: false,
            resources: Vec::new(),
            oos: Thresholds::default(),
            require_primary: false,
        }
    }
}

impl DrbdCheck {
    /// The source of one server's text.
    pub fn source(&self, origin: &Origin) -> Source {
        if self.proc_drbd {
            Source::file(origin.clone(), "/proc/drbd")
        } else {
            Source::new(
                origin.clone(),
                Fetch::Command(
                    ["drbdsetup", "status", "--verbose", "--statistics"]
                        .map(String::from)
                        .to_vec(),
                ),
            )
        }
    }

    /// Gathers every server's text and evaluates it.
    pub async fn run(&self) -> CheckOutput {
        let servers: Vec<(String, Source)> = self
            .servers
            .iter()
            .map(|(n, o)| (n.clone(), self.source(o)))
            .collect();
        let texts = super::gather_all(&servers).await;
        let parsed: Vec<(String, Result<DrbdStatus, String>)> = texts
            .into_iter()
            .map(|(n, r)| (n, r.map(|t| parse(&t)).map_err(|e| e.to_string())))
            .collect();
        evaluate(&parsed, self)
    }
}

/// The local node receives the resync (`SyncTarget`, `PausedSyncT`, `VerifyT`, ...).
fn is_target_side(replication: &str) -> bool {
    replication == "SyncTarget" || replication.ends_with('T')
}

fn is_syncing(replication: &str) -> bool {
    REPLICATING.contains(&replication) && replication != "Ahead" && replication != "Behind"
}

fn local_disk_state(disk: &str, sync_target: bool) -> State {
    match disk {
        "UpToDate" => State::Ok,
        "Inconsistent" if sync_target => State::Warning,
        "Outdated" | "Consistent" | "Attaching" | "Detaching" | "Negotiating" => State::Warning,
        "Diskless" | "Inconsistent" | "Failed" | "DUnknown" => State::Critical,
        _ => State::Unknown,
    }
}

fn peer_disk_state(disk: &str, sync_source: bool) -> State {
    match disk {
        "UpToDate" | "DUnknown" => State::Ok,
        "Inconsistent" if sync_source => State::Warning,
        "Outdated" | "Consistent" | "Attaching" | "Detaching" | "Negotiating" => State::Warning,
        "Diskless" | "Inconsistent" | "Failed" => State::Critical,
        _ => State::Unknown,
    }
}

/// Evaluates what each server reported (or why it could not be asked).
pub fn evaluate(servers: &[(String, Result<DrbdStatus, String>)], opts: &DrbdCheck) -> CheckOutput {
    let mut f = Findings::new("DRBD");
    let multi = servers.len() > 1;
    let wanted: Vec<String> = opts
        .resources
        .iter()
        .map(|r| {
            if !r.is_empty() && r.chars().all(|c| c.is_ascii_digit()) {
                format!("drbd{r}")
            } else {
                r.clone()
            }
        })
        .collect();
    let mut summary = Vec::new();
    // resource name -> servers where it is Primary, and whether all were connected
    let mut primaries: Vec<(String, Vec<String>, bool)> = Vec::new();
    for (server, status) in servers {
        let at = if multi {
            format!("{server} ")
        } else {
            String::new()
        };
        let status = match status {
            Ok(s) => s,
            Err(e) => {
                f.problem(State::Unknown, format!("{server}: {e}"));
                continue;
            }
        };
        if status.split_brain {
            f.problem(State::Critical, format!("{at}split-brain reported"));
        }
        let selected: Vec<&Resource> = status
            .resources
            .iter()
            .filter(|r| wanted.is_empty() || wanted.contains(&r.name))
            .collect();
        for name in &wanted {
            if !status.resources.iter().any(|r| &r.name == name) {
                f.problem(State::Critical, format!("{at}{name}: not configured"));
                let label = if multi {
                    format!("{server}_{name}_sync")
                } else {
                    format!("{name}_sync")
                };
                let none = Thresholds::default();
                f.perf(perf(label, 0.0, "%", &none, Some(0.0), Some(100.0)));
            }
        }
        if wanted.is_empty() && selected.is_empty() {
            f.problem(State::Critical, format!("{at}no DRBD resources"));
        }
        for res in selected {
            let name = format!("{at}{}", res.name);
            let mut connected = !res.peers.is_empty();
            let mut oos: u64 = 0;
            let mut syncing: Vec<f64> = Vec::new();
            if res.role == "Unconfigured" {
                f.problem(State::Critical, format!("{name}: Unconfigured"));
            }
            if res.peers.is_empty() && res.role != "Unconfigured" {
                f.problem(
                    State::Warning,
                    format!("{name}: no peer connection configured"),
                );
            }
            let sync_target = res
                .peers
                .iter()
                .flat_map(|p| &p.volumes)
                .any(|v| is_syncing(&v.replication) && is_target_side(&v.replication));
            for v in &res.volumes {
                let s = local_disk_state(&v.disk, sync_target);
                f.problem(s, format!("{name}: disk {}", v.disk));
            }
            let mut detail = format!(
                "{name}: role {}, disk {}",
                res.role,
                res.volumes
                    .iter()
                    .map(|v| v.disk.as_str())
                    .collect::<Vec<_>>()
                    .join("/")
            );
            for peer in &res.peers {
                if peer.connection != "Connected" {
                    connected = false;
                    let why = if peer.connection == "StandAlone" {
                        " (split-brain or disconnected by an admin)"
                    } else {
                        ""
                    };
                    f.problem(
                        State::Critical,
                        format!("{name}: {} {}{why}", peer.name, peer.connection),
                    );
                }
                for v in &peer.volumes {
                    oos = oos.saturating_add(v.out_of_sync.unwrap_or(0));
                    let source = is_syncing(&v.replication) && !is_target_side(&v.replication);
                    let ps = peer_disk_state(&v.peer_disk, source);
                    f.problem(
                        ps,
                        format!("{name}: {} peer-disk {}", peer.name, v.peer_disk),
                    );
                    if is_syncing(&v.replication) {
                        let done = v.done.unwrap_or(0.0);
                        syncing.push(done);
                        f.problem(
                            State::Warning,
                            format!("{name}: {} {:.1}% done", v.replication, done),
                        );
                    } else if v.replication == "Ahead" || v.replication == "Behind" {
                        f.problem(State::Warning, format!("{name}: {}", v.replication));
                    }
                    detail.push_str(&format!(
                        "; {} {} role {} peer-disk {} replication {}",
                        peer.name, peer.connection, peer.role, v.peer_disk, v.replication
                    ));
                    if let Some(d) = v.done {
                        detail.push_str(&format!(" done {d:.2}%"));
                    }
                }
            }
            detail.push_str(&format!("; out-of-sync {oos} B"));
            let local_ok =
                !res.volumes.is_empty() && res.volumes.iter().all(|v| v.disk == "UpToDate");
            let sync = match syncing.iter().copied().reduce(f64::min) {
                Some(done) => done,
                None if local_ok => 100.0,
                None => 0.0,
            };
            f.detail(detail);
            let oos_state = opts.oos.state(oos as f64);
            f.problem(oos_state, format!("{name}: {oos} B out of sync"));
            let label = |what: &str| {
                if multi {
                    format!("{server}_{}_{what}", res.name)
                } else {
                    format!("{}_{what}", res.name)
                }
            };
            f.perf(perf(
                label("oos"),
                oos as f64,
                "B",
                &opts.oos,
                Some(0.0),
                None,
            ));
            f.perf(perf(
                label("sync"),
                sync,
                "%",
                &Thresholds::default(),
                Some(0.0),
                Some(100.0),
            ));
            let roles = std::iter::once(res.role.as_str())
                .chain(res.peers.iter().map(|p| p.role.as_str()))
                .collect::<Vec<_>>()
                .join("/");
            summary.push(format!(
                "{name} {roles} {}",
                res.peers
                    .first()
                    .map(|p| p.connection.as_str())
                    .unwrap_or("no peer")
            ));
            match primaries.iter_mut().find(|(r, _, _)| r == &res.name) {
                Some((_, on, all)) => {
                    if res.role == "Primary" {
                        on.push(server.clone());
                    }
                    *all &= connected;
                }
                None => primaries.push((
                    res.name.clone(),
                    if res.role == "Primary" {
                        vec![server.clone()]
                    } else {
                        Vec::new()
                    },
                    connected,
                )),
            }
        }
    }
    let asked = servers.iter().filter(|(_, s)| s.is_ok()).count();
    for (res, on, all_connected) in &primaries {
        if on.len() >= 2 && !all_connected {
            f.problem(
                State::Critical,
                format!(
                    "{res}: split-brain: Primary on {} while not connected",
                    on.join(" and ")
                ),
            );
        }
        if opts.require_primary && on.is_empty() && asked == servers.len() {
            f.problem(State::Critical, format!("{res}: Primary nowhere"));
        }
    }
    f.finish(summary.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_multi_volume_verbose() {
        let text = "r0 node-id:0 role:Primary suspended:no\n    write-ordering:flush\n  volume:0 minor:0 disk:UpToDate\n      size:100 read:1\n  volume:1 minor:1 disk:UpToDate\n  san2 node-id:1 connection:Connected role:Secondary\n    volume:0 replication:Established peer-disk:UpToDate\n        received:0 sent:1 out-of-sync:4 pending:0\n    volume:1 replication:SyncSource peer-disk:Inconsistent done:10.50\n        received:0 sent:1 out-of-sync:8\n";
        let s = parse(text);
        assert_eq!(s.resources.len(), 1);
        let r = &s.resources[0];
        assert_eq!(r.role, "Primary");
        assert_eq!(r.volumes.len(), 2);
        assert_eq!(r.peers[0].volumes.len(), 2);
        assert_eq!(r.peers[0].volumes[0].out_of_sync, Some(4096));
        assert_eq!(r.peers[0].volumes[1].done, Some(10.5));
        assert_eq!(r.peers[0].volumes[1].replication, "SyncSource");
    }
}
