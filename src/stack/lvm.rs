//! LVM: volume group free space, a VM's logical volumes, snapshot fill levels.
//!
//! Parses `vgs --noheadings --units b --nosuffix -o vg_name,vg_size,vg_free`
//! and `lvs --noheadings --units b --nosuffix -o
//! lv_name,vg_name,lv_attr,lv_size,data_percent,origin`, with columns
//! separated by blanks or by `--separator :` (what [`VgCheck::run`] and
//! friends ask for). [`parse_vgs`], [`parse_lvs`] and the `evaluate_*`
//! functions are pure and never do I/O.

use super::source::{Origin, Source};
use super::{human_bytes, perf, Findings, MinLimit, Thresholds};
use crate::checks::{CheckOutput, State};
use crate::plugin_output::Range;

/// A volume group: name, size and free bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Vg {
    /// VG name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Free bytes.
    pub free: u64,
}

/// A logical volume.
#[derive(Debug, Clone, PartialEq)]
pub struct Lv {
    /// LV name (`deb1-root`).
    pub name: String,
    /// Its VG.
    pub vg: String,
    /// `lv_attr` (`-wi-ao----`, `swi-a-s---`, ...).
    pub attr: String,
    /// Size in bytes.
    pub size: u64,
    /// `data_percent`: fill level of snapshots and thin volumes.
    pub data_percent: Option<f64>,
    /// The origin LV of a snapshot.
    pub origin: Option<String>,
}

impl Lv {
    /// An old-style snapshot (`s`) or an invalid one (`S`).
    pub fn is_snapshot(&self) -> bool {
        matches!(self.attr.chars().next(), Some('s' | 'S'))
    }

    /// The snapshot is invalid (overflowed or merge failed).
    pub fn is_invalid(&self) -> bool {
        self.attr.starts_with('S') || self.attr.chars().nth(4) == Some('I')
    }

    /// Active per `lv_attr`.
    pub fn is_active(&self) -> bool {
        self.attr.chars().nth(4) == Some('a')
    }
}

/// A line of `vgs`/`lvs` output that does not have the expected columns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unexpected {tool} output line {line:?} (expected {expected})")]
pub struct LineError {
    /// `vgs` or `lvs`.
    pub tool: &'static str,
    /// The line.
    pub line: String,
    /// The expected columns.
    pub expected: &'static str,
}

fn fields(line: &str) -> Vec<&str> {
    if line.contains(':') {
        line.trim().split(':').map(str::trim).collect()
    } else {
        line.split_whitespace().collect()
    }
}

fn bytes(s: &str) -> Option<u64> {
    let s = s.trim().trim_end_matches(['B', 'b']);
    s.parse::<u64>()
        .ok()
        .or_else(|| super::parse_decimal(s).map(|v| v as u64))
}

/// Parses `vgs --noheadings --units b --nosuffix -o vg_name,vg_size,vg_free`.
pub fn parse_vgs(text: &str) -> Result<Vec<Vg>, LineError> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f = fields(line);
        let err = || LineError {
            tool: "vgs",
            line: line.to_string(),
            expected: "vg_name vg_size vg_free",
        };
        let [name, size, free] = f[..] else {
            return Err(err());
        };
        out.push(Vg {
            name: name.to_string(),
            size: bytes(size).ok_or_else(err)?,
            free: bytes(free).ok_or_else(err)?,
        });
    }
    Ok(out)
}

/// Parses `lvs --noheadings --units b --nosuffix -o lv_name,vg_name,lv_attr,lv_size,data_percent,origin`.
///
/// With blank-separated columns the empty trailing ones vanish; a fifth
/// column that is not a number is then the origin (an inactive snapshot).
pub fn parse_lvs(text: &str) -> Result<Vec<Lv>, LineError> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f = fields(line);
        let err = || LineError {
            tool: "lvs",
            line: line.to_string(),
            expected: "lv_name vg_name lv_attr lv_size [data_percent] [origin]",
        };
        if f.len() < 4 || f.len() > 6 {
            return Err(err());
        }
        let col = |i: usize| f.get(i).copied().filter(|s| !s.is_empty());
        let (data_percent, origin) = match (col(4), col(5)) {
            (Some(d), Some(o)) => (
                Some(super::parse_decimal(d).ok_or_else(err)?),
                Some(o.to_string()),
            ),
            (Some(d), None) => match super::parse_decimal(d) {
                Some(v) => (Some(v), None),
                None => (None, Some(d.to_string())),
            },
            (None, o) => (None, o.map(|o| o.to_string())),
        };
        out.push(Lv {
            name: f[0].to_string(),
            vg: f[1].to_string(),
            attr: f[2].to_string(),
            size: bytes(f[3]).ok_or_else(err)?,
            data_percent,
            origin,
        });
    }
    Ok(out)
}

/// `vgs` for every VG: naming a VG that does not exist would make vgs fail
/// (UNKNOWN) where a missing VG is CRITICAL; the evaluators filter instead.
fn vgs_source(origin: &Origin) -> Source {
    Source::command(
        origin.clone(),
        &[
            "vgs",
            "--noheadings",
            "--units",
            "b",
            "--nosuffix",
            "--separator",
            ":",
            "-o",
            "vg_name,vg_size,vg_free",
        ],
    )
}

/// `lvs` for every LV (see [`vgs_source`] for why no VG is named).
fn lvs_source(origin: &Origin) -> Source {
    Source::command(
        origin.clone(),
        &[
            "lvs",
            "--noheadings",
            "--units",
            "b",
            "--nosuffix",
            "--separator",
            ":",
            "-o",
            "lv_name,vg_name,lv_attr,lv_size,data_percent,origin",
        ],
    )
}

/// Options of the VG free-space check.
#[derive(Debug, Clone, PartialEq)]
pub struct VgCheck {
    /// Where `vgs` runs.
    pub origin: Origin,
    /// VGs to check; empty: every VG.
    pub vgs: Vec<String>,
    /// WARNING when free space is below this.
    pub warn: Option<MinLimit>,
    /// CRITICAL when free space is below this.
    pub crit: Option<MinLimit>,
}

impl VgCheck {
    /// The source of the `vgs` text.
    pub fn source(&self) -> Source {
        vgs_source(&self.origin)
    }

    /// Gathers and evaluates.
    pub async fn run(&self) -> CheckOutput {
        match super::gather(&self.source()).await {
            Ok(text) => match parse_vgs(&text) {
                Ok(vgs) => evaluate_vgs(&vgs, self),
                Err(e) => CheckOutput::unknown(format!("LVM-VG UNKNOWN - {e}")),
            },
            Err(e) => CheckOutput::unknown(format!("LVM-VG UNKNOWN - {e}")),
        }
    }
}

/// Evaluates VG free space against the "at least" limits.
pub fn evaluate_vgs(vgs: &[Vg], opts: &VgCheck) -> CheckOutput {
    let mut f = Findings::new("LVM-VG");
    let mut summary = Vec::new();
    let label = |vg: &str| {
        if opts.vgs.len() == 1 {
            "free".to_string()
        } else {
            format!("{vg}_free")
        }
    };
    for wanted in &opts.vgs {
        if !vgs.iter().any(|v| &v.name == wanted) {
            f.problem(State::Critical, format!("VG {wanted} not found"));
            let none = Thresholds::default();
            f.perf(perf(label(wanted), 0.0, "B", &none, Some(0.0), None));
        }
    }
    let selected: Vec<&Vg> = vgs
        .iter()
        .filter(|v| opts.vgs.is_empty() || opts.vgs.contains(&v.name))
        .collect();
    if selected.is_empty() && opts.vgs.is_empty() {
        f.problem(State::Critical, "no volume groups");
        f.perf(perf(
            "vgs",
            0.0,
            "",
            &Thresholds::default(),
            Some(0.0),
            None,
        ));
    }
    for vg in selected {
        let size = vg.size as f64;
        let free = vg.free as f64;
        let limit = |l: &Option<MinLimit>| {
            l.map(|l| Range {
                start: l.bytes(size),
                end: f64::INFINITY,
                inside: false,
            })
        };
        let th = Thresholds {
            warn: limit(&opts.warn),
            crit: limit(&opts.crit),
        };
        let pct = if size > 0.0 { free * 100.0 / size } else { 0.0 };
        let text = format!(
            "{} {} free of {} ({pct:.0}%)",
            vg.name,
            human_bytes(free),
            human_bytes(size)
        );
        f.problem(th.state(free), text.clone());
        f.detail(format!("{text}: {} of {} bytes free", vg.free, vg.size));
        summary.push(text);
        f.perf(perf(label(&vg.name), free, "B", &th, Some(0.0), Some(size)));
    }
    f.finish(summary.join(", "))
}

/// Options of the "a VM's LVs are present" check.
#[derive(Debug, Clone, PartialEq)]
pub struct VmCheck {
    /// Where `lvs` runs.
    pub origin: Origin,
    /// The VG holding the VMs' LVs (`system`).
    pub vg: String,
    /// VM names (`deb1`); each needs `VM-SUFFIX` for every suffix.
    pub vms: Vec<String>,
    /// LV name suffixes (`root`, `swap`).
    pub suffixes: Vec<String>,
    /// CRITICAL when an LV is present but not active.
    pub require_active: bool,
}

impl VmCheck {
    /// The source of the `lvs` text.
    pub fn source(&self) -> Source {
        lvs_source(&self.origin)
    }

    /// Gathers and evaluates.
    pub async fn run(&self) -> CheckOutput {
        with_lvs(&self.source(), "LVM-VM", |lvs| evaluate_vm(lvs, self)).await
    }
}

/// Gathers and parses `lvs` output, then evaluates it; UNKNOWN (labelled
/// `subject`) when either step fails.
async fn with_lvs(
    source: &Source,
    subject: &str,
    evaluate: impl FnOnce(&[Lv]) -> CheckOutput,
) -> CheckOutput {
    let parsed = match super::gather(source).await {
        Ok(text) => parse_lvs(&text).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match parsed {
        Ok(lvs) => evaluate(&lvs),
        Err(e) => CheckOutput::unknown(format!("{subject} UNKNOWN - {e}")),
    }
}

/// Evaluates whether every VM has its LVs (`VM-root`, `VM-swap`, ...).
pub fn evaluate_vm(lvs: &[Lv], opts: &VmCheck) -> CheckOutput {
    let mut f = Findings::new("LVM-VM");
    let mut present = 0usize;
    let mut expected = 0usize;
    for vm in &opts.vms {
        for suffix in &opts.suffixes {
            expected += 1;
            let name = format!("{vm}-{suffix}");
            match lvs.iter().find(|l| l.name == name && l.vg == opts.vg) {
                None => {
                    f.problem(State::Critical, format!("{}/{name} missing", opts.vg));
                    f.detail(format!("{}/{name}: missing", opts.vg));
                }
                Some(lv) => {
                    present += 1;
                    if opts.require_active && !lv.is_active() {
                        f.problem(
                            State::Critical,
                            format!("{}/{name} not active ({})", opts.vg, lv.attr),
                        );
                    }
                    f.detail(format!(
                        "{}/{name}: {} {}",
                        opts.vg,
                        lv.attr,
                        human_bytes(lv.size as f64)
                    ));
                }
            }
        }
    }
    let crit = Thresholds {
        warn: None,
        crit: Some(Range {
            start: expected as f64,
            end: f64::INFINITY,
            inside: false,
        }),
    };
    f.perf(perf(
        "lvs_present",
        present as f64,
        "",
        &crit,
        Some(0.0),
        Some(expected as f64),
    ));
    f.finish(format!(
        "{present}/{expected} LVs present in {} for {}",
        opts.vg,
        opts.vms.join(", ")
    ))
}

/// Options of the snapshot fill-level check.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotCheck {
    /// Where `lvs` runs.
    pub origin: Origin,
    /// Only this VG; `None`: all.
    pub vg: Option<String>,
    /// Only these snapshot LVs; empty: every snapshot.
    pub lvs: Vec<String>,
    /// Thresholds on the fill level in percent (default WARNING above 80, CRITICAL above 90).
    pub fill: Thresholds,
}

impl SnapshotCheck {
    /// The source of the `lvs` text.
    pub fn source(&self) -> Source {
        lvs_source(&self.origin)
    }

    /// Gathers and evaluates.
    pub async fn run(&self) -> CheckOutput {
        with_lvs(&self.source(), "LVM-SNAPSHOT", |lvs| {
            evaluate_snapshots(lvs, self)
        })
        .await
    }
}

/// Evaluates snapshot fill levels; an invalid (overflowed) snapshot is CRITICAL.
pub fn evaluate_snapshots(lvs: &[Lv], opts: &SnapshotCheck) -> CheckOutput {
    let mut f = Findings::new("LVM-SNAPSHOT");
    let snaps: Vec<&Lv> = lvs
        .iter()
        .filter(|l| l.is_snapshot())
        .filter(|l| opts.vg.as_ref().is_none_or(|vg| &l.vg == vg))
        .filter(|l| opts.lvs.is_empty() || opts.lvs.contains(&l.name))
        .collect();
    for wanted in &opts.lvs {
        if !snaps.iter().any(|l| &l.name == wanted) {
            f.problem(State::Critical, format!("snapshot {wanted} not found"));
        }
    }
    let mut fullest: Option<(f64, String)> = None;
    for lv in &snaps {
        let pct = lv
            .data_percent
            .unwrap_or(if lv.is_invalid() { 100.0 } else { 0.0 });
        let name = format!("{}/{}", lv.vg, lv.name);
        if lv.is_invalid() {
            f.problem(
                State::Critical,
                format!("{name} invalid (overflowed), its backup is lost"),
            );
        } else {
            f.problem(opts.fill.state(pct), format!("{name} {pct:.1}% full"));
        }
        f.detail(format!(
            "{name}: snapshot of {} {} {pct:.2}% full ({})",
            lv.origin.as_deref().unwrap_or("?"),
            human_bytes(lv.size as f64),
            lv.attr
        ));
        f.perf(perf(&lv.name, pct, "%", &opts.fill, Some(0.0), Some(100.0)));
        if fullest.as_ref().is_none_or(|(p, _)| pct > *p) {
            fullest = Some((pct, name));
        }
    }
    f.perf(perf(
        "snapshots",
        snaps.len() as f64,
        "",
        &Thresholds::default(),
        Some(0.0),
        None,
    ));
    let summary = match fullest {
        None => "no snapshots".to_string(),
        Some((pct, name)) => format!("{} snapshot(s), fullest {name} {pct:.1}%", snaps.len()),
    };
    f.finish(summary)
}
