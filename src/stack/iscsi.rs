//! iSCSI: what a SAN server exports (target side) and what a cluster server
//! is logged in to (initiator side).
//!
//! Target side parses ietd's `/proc/net/iet/volume`, tgt's `tgtadm --lld
//! iscsi --mode target --op show` and LIO's `targetcli ls`; initiator side
//! parses `iscsiadm -m session` and `iscsiadm -m session -P 3`. A VM `deb1`
//! follows the naming convention: target `PREFIX:deb1`, LUNs backed by
//! `/dev/VG/deb1-root` and `/dev/VG/deb1-swap`. Parsers and evaluators are
//! pure and never do I/O; only the `run` methods gather.

use super::source::{GatherError, Origin, Source};
use super::{perf, Findings, Thresholds};
use crate::plugin_output::Range;
use crate::plugin_output::{CheckOutput, State};

/// An exported target and its data LUNs.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The IQN.
    pub name: String,
    /// Data LUNs (tgt's controller LUN 0 is left out).
    pub luns: Vec<Lun>,
}

/// One LUN of a target.
#[derive(Debug, Clone, PartialEq)]
pub struct Lun {
    /// LUN number.
    pub number: u32,
    /// Backing device or file, when the tool names one.
    pub path: Option<String>,
}

/// Which target implementation a SAN server runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetTool {
    /// iscsitarget / ietd: `/proc/net/iet/volume`.
    Iet,
    /// tgt: `tgtadm --lld iscsi --mode target --op show`.
    Tgt,
    /// LIO: `targetcli ls`.
    Lio,
}

impl TargetTool {
    /// Parses `ietd`/`iet`, `tgt`, `lio`/`targetcli`.
    pub fn parse(s: &str) -> Option<TargetTool> {
        match s {
            "iet" | "ietd" | "iscsitarget" => Some(TargetTool::Iet),
            "tgt" | "tgtd" | "tgtadm" => Some(TargetTool::Tgt),
            "lio" | "targetcli" => Some(TargetTool::Lio),
            _ => None,
        }
    }
}

/// Parses any of the three target listings, recognising the format by its text.
pub fn parse_targets(text: &str) -> Vec<Target> {
    if text.lines().any(|l| l.trim_start().starts_with("o- ")) {
        parse_targetcli(text)
    } else if text.lines().any(|l| l.starts_with("Target ")) {
        parse_tgtadm(text)
    } else {
        parse_iet_volume(text)
    }
}

/// Parses ietd's `/proc/net/iet/volume` (`tid:1 name:IQN` then `lun:0 ... path:/dev/...`).
pub fn parse_iet_volume(text: &str) -> Vec<Target> {
    let mut out: Vec<Target> = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("tid:") {
            if let Some(name) = t.split_whitespace().find_map(|w| w.strip_prefix("name:")) {
                out.push(Target {
                    name: name.to_string(),
                    luns: Vec::new(),
                });
            }
        } else if t.starts_with("lun:") {
            let mut number = None;
            let mut path = None;
            for w in t.split_whitespace() {
                if let Some(n) = w.strip_prefix("lun:") {
                    number = n.parse().ok();
                } else if let Some(p) = w.strip_prefix("path:") {
                    path = Some(p.to_string());
                }
            }
            if let (Some(number), Some(target)) = (number, out.last_mut()) {
                target.luns.push(Lun { number, path });
            }
        }
    }
    out
}

/// Parses `tgtadm --lld iscsi --mode target --op show`.
pub fn parse_tgtadm(text: &str) -> Vec<Target> {
    let mut out: Vec<Target> = Vec::new();
    let mut controller = false;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Target ") {
            if let Some((_, name)) = rest.split_once(": ") {
                out.push(Target {
                    name: name.trim().to_string(),
                    luns: Vec::new(),
                });
            }
            continue;
        }
        let Some(target) = out.last_mut() else {
            continue;
        };
        let t = line.trim();
        if let Some(n) = t.strip_prefix("LUN: ") {
            if let Ok(number) = n.trim().parse() {
                target.luns.push(Lun { number, path: None });
                controller = false;
            }
        } else if let Some(ty) = t.strip_prefix("Type: ") {
            controller = ty.trim() == "controller";
            if controller {
                target.luns.pop();
            }
        } else if let Some(p) = t.strip_prefix("Backing store path: ") {
            if !controller {
                if let Some(lun) = target.luns.last_mut() {
                    let p = p.trim();
                    lun.path = (p != "None" && !p.is_empty()).then(|| p.to_string());
                }
            }
        }
    }
    out
}

/// Parses the `iscsi` branch of `targetcli ls` (LIO).
pub fn parse_targetcli(text: &str) -> Vec<Target> {
    let mut out: Vec<Target> = Vec::new();
    let mut iscsi_depth: Option<usize> = None;
    let mut target_depth: Option<usize> = None;
    for line in text.lines() {
        let Some(depth) = line.find("o- ") else {
            continue;
        };
        let rest = &line[depth + 3..];
        let name = rest.split_whitespace().next().unwrap_or("");
        match iscsi_depth {
            Some(d) if depth <= d => {
                iscsi_depth = None;
                target_depth = None;
            }
            _ => {}
        }
        if name == "iscsi" {
            iscsi_depth = Some(depth);
            continue;
        }
        let Some(_) = iscsi_depth else {
            continue;
        };
        let td = *target_depth.get_or_insert(depth);
        if depth == td {
            out.push(Target {
                name: name.to_string(),
                luns: Vec::new(),
            });
        } else if let Some(n) = name.strip_prefix("lun").and_then(|n| n.parse::<u32>().ok()) {
            let bracket = rest.rfind('[').map(|i| &rest[i..]).unwrap_or("");
            let path = bracket
                .split('(')
                .skip(1)
                .filter_map(|p| p.split(')').next())
                .find(|p| p.starts_with('/'))
                .map(str::to_string);
            if let Some(t) = out.last_mut() {
                t.luns.push(Lun { number: n, path });
            }
        }
    }
    out
}

/// The LV path suffixes a VM's LUN may be backed by: `/VG/LV` or the
/// device-mapper name `/VG-LV` with dashes doubled.
fn backs(path: &str, vg: &str, lv: &str) -> bool {
    let dm = format!("/{}-{}", vg.replace('-', "--"), lv.replace('-', "--"));
    path.ends_with(&format!("/{vg}/{lv}")) || path.ends_with(&dm)
}

/// Options of the target-side check.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetCheck {
    /// Where the listing is read.
    pub origin: Origin,
    /// The target implementation.
    pub tool: TargetTool,
    /// Targets that must be exported.
    pub targets: Vec<String>,
    /// VMs whose target `PREFIX:VM` must export their LVs.
    pub vms: Vec<String>,
    /// The IQN prefix of VM targets (`iqn.san1.klasse.kurs`).
    pub iqn_prefix: Option<String>,
    /// The VG of the VMs' LVs.
    pub vg: String,
    /// LV suffixes each VM target must export (`root`, `swap`).
    pub suffixes: Vec<String>,
}

impl TargetCheck {
    /// The source of the listing.
    pub fn source(&self) -> Source {
        match self.tool {
            TargetTool::Iet => Source::file(self.origin.clone(), "/proc/net/iet/volume"),
            TargetTool::Tgt => Source::command(
                self.origin.clone(),
                &[
                    "tgtadm", "--lld", "iscsi", "--mode", "target", "--op", "show",
                ],
            ),
            TargetTool::Lio => Source::command(self.origin.clone(), &["targetcli", "ls"]),
        }
    }

    /// Gathers and evaluates.
    pub async fn run(&self) -> CheckOutput {
        match super::gather(&self.source()).await {
            Ok(text) => evaluate_targets(&parse_targets(&text), self),
            Err(e) => CheckOutput::unknown(format!("ISCSI-TARGET UNKNOWN - {e}")),
        }
    }
}

fn vm_target(prefix: Option<&str>, vm: &str) -> String {
    match prefix {
        Some(p) => format!("{}:{vm}", p.trim_end_matches(':')),
        None => vm.to_string(),
    }
}

/// Evaluates the exported targets against the expected ones.
pub fn evaluate_targets(targets: &[Target], opts: &TargetCheck) -> CheckOutput {
    let mut f = Findings::new("ISCSI-TARGET");
    let mut missing = 0usize;
    let find = |name: &str| targets.iter().find(|t| t.name == name);
    for name in &opts.targets {
        match find(name) {
            None => {
                missing += 1;
                f.problem(State::Critical, format!("target {name} not exported"));
            }
            Some(t) if t.luns.is_empty() => {
                missing += 1;
                f.problem(State::Critical, format!("target {name} exports no LUN"));
            }
            Some(_) => {}
        }
    }
    for vm in &opts.vms {
        let name = vm_target(opts.iqn_prefix.as_deref(), vm);
        let Some(t) = find(&name) else {
            missing += opts.suffixes.len().max(1);
            f.problem(State::Critical, format!("{vm}: target {name} not exported"));
            continue;
        };
        for suffix in &opts.suffixes {
            let lv = format!("{vm}-{suffix}");
            let found = t
                .luns
                .iter()
                .any(|l| l.path.as_deref().is_some_and(|p| backs(p, &opts.vg, &lv)));
            if !found {
                missing += 1;
                f.problem(
                    State::Critical,
                    format!("{vm}: no LUN for /dev/{}/{lv} in {name}", opts.vg),
                );
            }
        }
    }
    let expecting = !opts.targets.is_empty() || !opts.vms.is_empty();
    if !expecting && targets.is_empty() {
        f.problem(State::Critical, "no targets exported");
    }
    let mut luns = 0usize;
    for t in targets {
        luns += t.luns.len();
        let list = t
            .luns
            .iter()
            .map(|l| format!("LUN {} {}", l.number, l.path.as_deref().unwrap_or("-")))
            .collect::<Vec<_>>()
            .join(", ");
        f.detail(format!(
            "{}: {}",
            t.name,
            if list.is_empty() { "no LUNs" } else { &list }
        ));
    }
    let none = Thresholds::default();
    f.perf(perf(
        "targets",
        targets.len() as f64,
        "",
        &none,
        Some(0.0),
        None,
    ));
    f.perf(perf("luns", luns as f64, "", &none, Some(0.0), None));
    f.perf(perf("missing", missing as f64, "", &none, Some(0.0), None));
    let summary = if expecting {
        let mut all: Vec<String> = opts.targets.clone();
        all.extend(
            opts.vms
                .iter()
                .map(|v| vm_target(opts.iqn_prefix.as_deref(), v)),
        );
        format!(
            "{} exported ({} targets, {luns} LUNs in all)",
            all.join(", "),
            targets.len()
        )
    } else {
        format!("{} targets, {luns} LUNs exported", targets.len())
    };
    f.finish(summary)
}

/// An initiator's session to a target.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// The target IQN.
    pub target: String,
    /// `address:port,tpgt`.
    pub portal: String,
    /// `iSCSI Session State` (`LOGGED_IN`, `FAILED`, ...), shown with `-P 1` and more.
    pub state: Option<String>,
    /// Attached LUNs, shown with `-P 3`; `None` when the output does not tell.
    pub luns: Option<Vec<SessionLun>>,
}

/// A LUN attached through a session.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionLun {
    /// LUN number.
    pub number: u32,
    /// Block device (`sdb`).
    pub disk: Option<String>,
    /// SCSI device state (`running`, `blocked`, `offline`).
    pub state: Option<String>,
}

/// Parses `iscsiadm -m session` (one line per session) or `-P 3` (blocks).
/// "No active sessions" and empty text are no sessions.
pub fn parse_sessions(text: &str) -> Vec<Session> {
    let mut out: Vec<Session> = Vec::new();
    let verbose = text.lines().any(|l| l.starts_with("Target: "));
    let mut target = String::new();
    for line in text.lines() {
        let t = line.trim();
        if !verbose {
            // tcp: [1] 192.168.30.5:3260,1 iqn.san1.klasse.kurs:deb1 (non-flash)
            let w: Vec<&str> = t.split_whitespace().collect();
            if w.len() >= 4 && w[0].ends_with(':') && w[1].starts_with('[') {
                out.push(Session {
                    target: w[3].to_string(),
                    portal: w[2].to_string(),
                    state: None,
                    luns: None,
                });
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("Target: ") {
            target = rest.split_whitespace().next().unwrap_or("").to_string();
        } else if let Some(p) = t.strip_prefix("Current Portal: ") {
            out.push(Session {
                target: target.clone(),
                portal: p.trim().to_string(),
                state: None,
                luns: Some(Vec::new()),
            });
        } else if let Some(s) = t.strip_prefix("iSCSI Session State: ") {
            if let Some(sess) = out.last_mut() {
                sess.state = Some(s.trim().to_string());
            }
        } else if let Some(pos) = t.find("Lun: ") {
            if let (Ok(n), Some(sess)) = (t[pos + 5..].trim().parse(), out.last_mut()) {
                sess.luns.get_or_insert_with(Vec::new).push(SessionLun {
                    number: n,
                    disk: None,
                    state: None,
                });
            }
        } else if let Some(rest) = t.strip_prefix("Attached scsi disk ") {
            let mut words = rest.split_whitespace();
            let disk = words.next().map(str::to_string);
            let state = rest.split_once("State:").map(|(_, s)| s.trim().to_string());
            if let Some(lun) = out
                .last_mut()
                .and_then(|s| s.luns.as_mut())
                .and_then(|l| l.last_mut())
            {
                lun.disk = disk;
                lun.state = state;
            }
        }
    }
    out
}

/// Options of the initiator-side check.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionCheck {
    /// Where `iscsiadm` runs (a cluster server).
    pub origin: Origin,
    /// Targets that must have a session.
    pub targets: Vec<String>,
    /// VMs whose target `PREFIX:VM` must have a session with [`Self::luns`] attached.
    pub vms: Vec<String>,
    /// The IQN prefix of VM targets.
    pub iqn_prefix: Option<String>,
    /// LUNs each VM's session must have attached (per the seed: 0 root, 1 swap).
    pub luns: Vec<u32>,
    /// Sessions must go to this portal address (the SAN cluster IP).
    pub portal: Option<String>,
    /// Thresholds on the number of logged-in sessions.
    pub count: Thresholds,
}

impl SessionCheck {
    /// The source: `iscsiadm -m session -P 3`.
    pub fn source(&self) -> Source {
        Source::command(
            self.origin.clone(),
            &["iscsiadm", "-m", "session", "-P", "3"],
        )
    }

    /// Gathers and evaluates; iscsiadm's exit 21 ("No active sessions") is no sessions.
    pub async fn run(&self) -> CheckOutput {
        match super::gather(&self.source()).await {
            Ok(text) => evaluate_sessions(&parse_sessions(&text), self),
            Err(GatherError::Failed { code: Some(21), .. }) => evaluate_sessions(&[], self),
            Err(e) => CheckOutput::unknown(format!("ISCSI-SESSION UNKNOWN - {e}")),
        }
    }
}

fn portal_address(portal: &str) -> &str {
    let p = portal.split(',').next().unwrap_or(portal);
    match p.rsplit_once(':') {
        Some((a, _)) => a.trim_matches(['[', ']']),
        None => p,
    }
}

/// Evaluates the sessions against the expected targets, LUNs and portal.
pub fn evaluate_sessions(sessions: &[Session], opts: &SessionCheck) -> CheckOutput {
    let mut f = Findings::new("ISCSI-SESSION");
    fn logged_in(s: &Session) -> bool {
        s.state.as_deref().is_none_or(|st| st == "LOGGED_IN")
    }
    let up = sessions.iter().filter(|s| logged_in(s)).count();
    let mut expected: Vec<(String, Option<&str>)> =
        opts.targets.iter().map(|t| (t.clone(), None)).collect();
    expected.extend(
        opts.vms
            .iter()
            .map(|v| (vm_target(opts.iqn_prefix.as_deref(), v), Some(v.as_str()))),
    );
    let mut missing = 0usize;
    for (target, vm) in &expected {
        let mine: Vec<&Session> = sessions.iter().filter(|s| &s.target == target).collect();
        let Some(best) = mine.iter().find(|s| logged_in(s)).or(mine.first()) else {
            missing += 1;
            f.problem(State::Critical, format!("no session to {target}"));
            continue;
        };
        if let Some(st) = best.state.as_deref().filter(|s| *s != "LOGGED_IN") {
            missing += 1;
            let s = if st == "FAILED" {
                State::Critical
            } else {
                State::Warning
            };
            f.problem(s, format!("{target}: session {st}"));
        }
        if let Some(want) = &opts.portal {
            if !mine.iter().any(|s| portal_address(&s.portal) == want) {
                f.problem(
                    State::Warning,
                    format!("{target} via {} instead of {want}", best.portal),
                );
            }
        }
        if vm.is_some() {
            match &best.luns {
                Some(luns) => {
                    for n in &opts.luns {
                        match luns.iter().find(|l| l.number == *n) {
                            None => f.problem(
                                State::Critical,
                                format!("{target}: LUN {n} not attached"),
                            ),
                            Some(l) => {
                                let st = l.state.as_deref().unwrap_or("running");
                                let s = match st {
                                    "running" => State::Ok,
                                    "blocked" | "quiesce" | "created" => State::Warning,
                                    _ => State::Critical,
                                };
                                f.problem(s, format!("{target}: LUN {n} {st}"));
                            }
                        }
                    }
                }
                None => f.detail(format!(
                    "{target}: LUNs not shown (run iscsiadm -m session -P 3 to see them)"
                )),
            }
        }
    }
    let have_limits = opts.count.warn.is_some() || opts.count.crit.is_some();
    let count = if have_limits || !expected.is_empty() {
        opts.count
    } else {
        // Nothing expected: at least one session.
        Thresholds {
            warn: None,
            crit: Some(Range {
                start: 1.0,
                end: f64::INFINITY,
                inside: false,
            }),
        }
    };
    let cs = count.state(up as f64);
    f.problem(cs, format!("{up} sessions logged in"));
    for s in sessions {
        let luns = match &s.luns {
            Some(l) => l
                .iter()
                .map(|l| {
                    format!(
                        "LUN {} {} {}",
                        l.number,
                        l.disk.as_deref().unwrap_or("-"),
                        l.state.as_deref().unwrap_or("")
                    )
                    .trim_end()
                    .to_string()
                })
                .collect::<Vec<_>>()
                .join(", "),
            None => String::new(),
        };
        f.detail(
            format!(
                "{} via {} {} {luns}",
                s.target,
                s.portal,
                s.state.as_deref().unwrap_or("")
            )
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
        );
    }
    f.perf(perf("sessions", up as f64, "", &count, Some(0.0), None));
    f.perf(perf(
        "missing",
        missing as f64,
        "",
        &Thresholds::default(),
        Some(0.0),
        Some(expected.len() as f64),
    ));
    let summary = if expected.is_empty() {
        format!("{up} sessions logged in")
    } else {
        format!(
            "{up} sessions logged in, all {} expected present",
            expected.len()
        )
    };
    f.finish(summary)
}
