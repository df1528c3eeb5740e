//! LVM: volume group free space, a VM's logical volumes, snapshot fill levels.
//!
//! Parses `vgs --noheadings --units b --nosuffix -o vg_name,vg_size,vg_free`
//! and `lvs --noheadings --units b --nosuffix -o
//! lv_name,vg_name,lv_attr,lv_size,data_percent,origin`, with columns
//! separated by blanks or by `--separator :` (what [`VgCheck::run`] and
//! friends ask for), and the plain `vgs`/`lvs` reports people capture
//! (told apart by their heading line; sizes such as `<99.50g` are exact to
//! half a hundredth of their unit, see [`parse_lvm_size`]). [`parse_vgs`],
//! [`parse_lvs`] and the `evaluate_*` functions are pure and never do I/O.

use super::source::{Origin, Source};
use super::{human_bytes, perf, Findings, MinLimit, Thresholds};
use crate::plugin_output::Range;
use crate::plugin_output::{CheckOutput, State};

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
#[error("unexpected {tool} output line {line:?} ({problem}; expected {expected})")]
pub struct LineError {
    /// `vgs` or `lvs`.
    pub tool: &'static str,
    /// The line.
    pub line: String,
    /// What is wrong with it.
    pub problem: String,
    /// The forms that are read.
    pub expected: &'static str,
}

/// The forms [`parse_vgs`] reads, for error messages.
const VGS_FORMS: &str = "the output of `vgs` with its heading line, or of `vgs --noheadings --units b --nosuffix --separator : -o vg_name,vg_size,vg_free`";

/// The forms [`parse_lvs`] reads, for error messages.
const LVS_FORMS: &str = "the output of `lvs` with its heading line, or of `lvs --noheadings --units b --nosuffix --separator : -o lv_name,vg_name,lv_attr,lv_size,data_percent,origin`";

fn fields(line: &str) -> Vec<&str> {
    if line.contains(':') {
        line.trim().split(':').map(str::trim).collect()
    } else {
        line.split_whitespace().collect()
    }
}

/// Reads a size as `vgs`/`lvs` print it: whole bytes (`1073741824`,
/// `1073741824B`) or a number in an LVM unit (`500.00m`, `1.82t`,
/// `<99.50g`). Lower-case units are powers of 1024 (`k m g t p e`),
/// upper-case ones powers of 1000 (`--units G`), `s` is a 512-byte sector.
/// The bytes are rounded down. LVM prints two decimals and writes `<` when
/// it rounded up: `<99.50g` is read as one byte less than 99.50 GiB, so a
/// limit equal to the printed value compares as the real value does.
/// A number without a unit must be whole (bytes): `2.00` of `--nosuffix`
/// could be any unit.
pub fn parse_lvm_size(s: &str) -> Option<u64> {
    let t = s.trim();
    let (rounded_up, t) = match t.strip_prefix('<') {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ','))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let whole = !num.is_empty() && num.bytes().all(|c| c.is_ascii_digit());
    let exact = match unit {
        "" | "b" | "B" if whole => num.parse::<u64>().ok(),
        "" => return None,
        _ => {
            let (base, power): (f64, i32) = match unit {
                "b" | "B" => (1.0, 1),
                "s" | "S" => (512.0, 1),
                "k" | "m" | "g" | "t" | "p" | "e" => (1024.0, 1 + "kmgtpe".find(unit)? as i32),
                "K" | "M" | "G" | "T" | "P" | "E" => (1000.0, 1 + "KMGTPE".find(unit)? as i32),
                _ => return None,
            };
            let v = (super::parse_decimal(num)? * base.powi(power)).floor();
            (v >= 0.0 && v < u64::MAX as f64).then_some(v as u64)
        }
    }?;
    Some(if rounded_up {
        exact.saturating_sub(1)
    } else {
        exact
    })
}

/// The heading line of a `vgs`/`lvs` report (plain `vgs`, `lvs`, any `-o`
/// and `--units`): the column names and where each column starts.
struct Heading {
    /// Column headings (`VG`, `VSize`, ...).
    names: Vec<String>,
    /// Character offset of each column, for blank-aligned reports.
    starts: Vec<usize>,
    /// Columns separated by `--separator :` instead of aligned by blanks.
    colon: bool,
}

impl Heading {
    /// The heading when `line` is one: its first column is `required[0]`
    /// (`VG`, `LV`) and it has no digit. Such a line lacking another
    /// `required` column is an error; any other line is no heading (`None`).
    fn detect(
        line: &str,
        tool: &'static str,
        required: &[&str],
        expected: &'static str,
    ) -> Result<Option<Heading>, LineError> {
        let colon = line.contains(':');
        let names: Vec<String> = fields(line).iter().map(|n| n.to_string()).collect();
        if names.first().map(String::as_str) != required.first().copied()
            || line.contains(|c: char| c.is_ascii_digit())
        {
            return Ok(None);
        }
        if let Some(missing) = required.iter().find(|r| !names.iter().any(|n| n == *r)) {
            return Err(LineError {
                tool,
                line: line.to_string(),
                problem: format!("the heading has no {missing} column"),
                expected,
            });
        }
        let chars: Vec<char> = line.chars().collect();
        let starts = (0..chars.len())
            .filter(|&i| !chars[i].is_whitespace() && (i == 0 || chars[i - 1].is_whitespace()))
            .collect();
        Ok(Some(Heading {
            names,
            starts,
            colon,
        }))
    }

    /// The cells of a row, one per column. A blank-aligned row with empty
    /// cells (`lvs`: Pool, Origin, Data%) is cut at the heading's column
    /// starts: LVM left-aligns each heading at its column's start and pads
    /// every cell to the column's width.
    fn cells(&self, line: &str) -> Vec<String> {
        if self.colon {
            return fields(line).iter().map(|c| c.to_string()).collect();
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() == self.names.len() {
            return words.iter().map(|w| w.to_string()).collect();
        }
        let chars: Vec<char> = line.chars().collect();
        let ends = self.starts.iter().skip(1).copied().chain([chars.len()]);
        self.starts
            .iter()
            .zip(ends)
            .map(|(&start, end)| {
                let end = end.min(chars.len());
                let start = start.min(end);
                chars[start..end]
                    .iter()
                    .collect::<String>()
                    .trim()
                    .to_string()
            })
            .collect()
    }

    /// The first non-empty cell among the columns named `names`.
    fn cell<'c>(&self, cells: &'c [String], names: &[&str]) -> Option<&'c str> {
        names
            .iter()
            .filter_map(|n| self.names.iter().position(|h| h == n))
            .filter_map(|i| cells.get(i))
            .map(String::as_str)
            .find(|c| !c.is_empty())
    }
}

/// Parses `vgs` output in either form, telling them apart by the heading
/// line: a plain `vgs` report (sizes in LVM units, see [`parse_lvm_size`];
/// any columns among which `VG`, `VSize` and `VFree`), or the exact
/// `vgs --noheadings --units b --nosuffix --separator : -o vg_name,vg_size,vg_free`
/// that [`VgCheck::run`] asks for (blank-separated columns too).
pub fn parse_vgs(text: &str) -> Result<Vec<Vg>, LineError> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty()).peekable();
    let Some(first) = lines.peek() else {
        return Ok(Vec::new());
    };
    let err = |line: &str, problem: &str| LineError {
        tool: "vgs",
        line: line.to_string(),
        problem: problem.to_string(),
        expected: VGS_FORMS,
    };
    let size = |line: &str, s: Option<&str>, what: &str| {
        s.and_then(parse_lvm_size)
            .ok_or_else(|| err(line, &format!("no size in {what}")))
    };
    let mut out = Vec::new();
    if let Some(h) = Heading::detect(first, "vgs", &["VG", "VSize", "VFree"], VGS_FORMS)? {
        for line in lines.skip(1) {
            let cells = h.cells(line);
            let name = h.cell(&cells, &["VG"]).ok_or_else(|| err(line, "no VG"))?;
            out.push(Vg {
                name: name.to_string(),
                size: size(line, h.cell(&cells, &["VSize"]), "VSize")?,
                free: size(line, h.cell(&cells, &["VFree"]), "VFree")?,
            });
        }
        return Ok(out);
    }
    for line in lines {
        let [name, vg_size, vg_free] = fields(line)[..] else {
            return Err(err(line, "not 3 columns"));
        };
        out.push(Vg {
            name: name.to_string(),
            size: size(line, Some(vg_size), "vg_size")?,
            free: size(line, Some(vg_free), "vg_free")?,
        });
    }
    Ok(out)
}

/// Parses `lvs` output in either form, telling them apart by the heading
/// line: a plain `lvs` report (any columns among which `LV`, `VG`, `Attr`
/// and `LSize`; `Origin` and `Data%` or the older `Snap%` when present), or
/// the exact `lvs --noheadings --units b --nosuffix --separator : -o
/// lv_name,vg_name,lv_attr,lv_size,data_percent,origin` that
/// [`VmCheck::run`] asks for.
///
/// With blank-separated columns and no heading the empty trailing ones
/// vanish; a fifth column that is not a number is then the origin (an
/// inactive snapshot).
pub fn parse_lvs(text: &str) -> Result<Vec<Lv>, LineError> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty()).peekable();
    let Some(first) = lines.peek() else {
        return Ok(Vec::new());
    };
    let err = |line: &str, problem: &str| LineError {
        tool: "lvs",
        line: line.to_string(),
        problem: problem.to_string(),
        expected: LVS_FORMS,
    };
    let mut out = Vec::new();
    if let Some(h) = Heading::detect(first, "lvs", &["LV", "VG", "Attr", "LSize"], LVS_FORMS)? {
        for line in lines.skip(1) {
            let cells = h.cells(line);
            let cell = |names: &[&str]| {
                h.cell(&cells, names)
                    .ok_or_else(|| err(line, &format!("no {}", names[0])))
            };
            let data_percent = match h.cell(&cells, &["Data%", "Snap%"]) {
                None => None,
                Some(d) => Some(
                    super::parse_decimal(d).ok_or_else(|| err(line, "Data% is not a number"))?,
                ),
            };
            out.push(Lv {
                name: cell(&["LV"])?.to_string(),
                vg: cell(&["VG"])?.to_string(),
                attr: cell(&["Attr"])?.to_string(),
                size: parse_lvm_size(cell(&["LSize"])?)
                    .ok_or_else(|| err(line, "LSize is not a size"))?,
                data_percent,
                origin: h.cell(&cells, &["Origin"]).map(str::to_string),
            });
        }
        return Ok(out);
    }
    for line in lines {
        let f = fields(line);
        let bad = |problem: &str| err(line, problem);
        if f.len() < 4 || f.len() > 6 {
            return Err(bad("not 4 to 6 columns"));
        }
        let col = |i: usize| f.get(i).copied().filter(|s| !s.is_empty());
        let (data_percent, origin) = match (col(4), col(5)) {
            (Some(d), Some(o)) => (
                Some(super::parse_decimal(d).ok_or_else(|| bad("data_percent is not a number"))?),
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
            size: parse_lvm_size(f[3]).ok_or_else(|| bad("lv_size is not a size"))?,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lvm_sizes() {
        const G: f64 = 1073741824.0;
        let cases: &[(&str, Option<u64>)] = &[
            ("1073741824", Some(1 << 30)),
            ("1073741824B", Some(1 << 30)),
            ("0", Some(0)),
            ("500.00m", Some(500 << 20)),
            ("99.50g", Some((99.5 * G) as u64)),
            ("<99.50g", Some((99.5 * G) as u64 - 1)),
            ("1.82t", Some((1.82 * 1024.0 * G).floor() as u64)),
            ("<1.82t", Some((1.82 * 1024.0 * G).floor() as u64 - 1)),
            ("2.14G", Some(2_140_000_000)),
            ("4194304S", Some(4194304 * 512)),
            ("1,50g", Some((1.5 * G) as u64)),
            ("2.00", None),
            ("", None),
            ("<", None),
            ("g", None),
            ("10x", None),
            ("-1g", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_lvm_size(s), *want, "{s}");
        }
    }

    #[test]
    fn rounded_sizes_compare_with_limits_as_the_real_ones() {
        // `<10.00g` is really below 10 GiB, `10.00g` at or above it.
        let opts = VgCheck {
            origin: Origin::Local,
            vgs: vec!["system".into()],
            warn: Some(MinLimit::parse("10G").unwrap()),
            crit: Some(MinLimit::parse("1G").unwrap()),
        };
        let heading = "  VG     #PV #LV #SN Attr   VSize   VFree  \n";
        for (free, want) in [("<10.00g", State::Warning), ("10.00g", State::Ok)] {
            let text = format!("{heading}  system   1   2   0 wz--n- 100.00g {free:>7}\n");
            let out = evaluate_vgs(&parse_vgs(&text).unwrap(), &opts);
            assert_eq!(out.state, want, "{free}: {out:?}");
        }
    }

    #[test]
    fn aligned_cells_are_cut_at_the_heading() {
        let h = Heading::detect(
            "  LV        VG     Attr       LSize   Pool Origin    Data%",
            "lvs",
            &["LV", "VG", "Attr", "LSize"],
            LVS_FORMS,
        )
        .unwrap()
        .unwrap();
        let cells = h.cells("  deb1-snap system swi-a-s---   1.00g      deb1-root  95.12");
        assert_eq!(
            cells,
            [
                "deb1-snap",
                "system",
                "swi-a-s---",
                "1.00g",
                "",
                "deb1-root",
                "95.12"
            ]
        );
        let cells = h.cells("  deb1-root system owi-aos---  10.00g");
        assert_eq!(
            cells,
            ["deb1-root", "system", "owi-aos---", "10.00g", "", "", ""]
        );
        assert!(
            Heading::detect("  system:100:50", "vgs", &["VG"], VGS_FORMS)
                .unwrap()
                .is_none()
        );
    }
}
