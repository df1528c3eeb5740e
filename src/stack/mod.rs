//! Checks for the cluster stack: DRBD, iSCSI, LVM, Xen/libvirt domains,
//! bonding and the SAN cluster IP.
//!
//! Each subject has its own file with a pure parser (tool text in, typed
//! facts out) and a pure evaluator (facts and options in, [`CheckOutput`]
//! out). [`source`] is the only place that does I/O: it fetches the raw text
//! locally or over SSH. [`run_native`] glues the two for laxmon itself and
//! [`cli::plugin_main`] does the same as a Nagios plugin. Parsers and
//! evaluators must never do I/O, read the clock or panic on any input.
//!
//! Thresholds use the Nagios range semantics of [`Range`]; [`parse_range`]
//! adds size suffixes (`10G`) to the bounds.

pub mod bonding;
pub mod cli;
pub mod clusterip;
pub mod domains;
pub mod drbd;
pub mod iscsi;
pub mod lvm;
pub(crate) mod source;

pub use crate::plugin_output::Range;
use crate::plugin_output::{CheckOutput, PerfDatum, State};
pub use source::{gather, Fetch, GatherError, Origin, Source};

/// One stack check with its options: what [`run_native`] runs and what
/// `laxmon plugin NAME ...` builds from its arguments.
#[derive(Debug, Clone, PartialEq)]
pub enum StackCheck {
    /// DRBD resources on one or more SAN servers (`plugin drbd`).
    Drbd(drbd::DrbdCheck),
    /// Targets and LUNs a SAN server exports (`plugin iscsi-target`).
    IscsiTarget(iscsi::TargetCheck),
    /// iSCSI sessions a cluster server is logged in to (`plugin iscsi-session`).
    IscsiSession(iscsi::SessionCheck),
    /// Free space of volume groups (`plugin lvm-vg`).
    LvmVg(lvm::VgCheck),
    /// A VM's logical volumes (`plugin lvm-vm`).
    LvmVm(lvm::VmCheck),
    /// Snapshot fill levels (`plugin lvm-snapshot`).
    LvmSnapshot(lvm::SnapshotCheck),
    /// Each expected VM running on exactly one server (`plugin domains`).
    Domains(domains::DomainsCheck),
    /// Bonded links (`plugin bonding`).
    Bonding(bonding::BondingCheck),
    /// The SAN cluster IP held by exactly one server (`plugin cluster-ip`).
    ClusterIp(clusterip::ClusterIpCheck),
}

impl StackCheck {
    /// The plugin name as used after `laxmon plugin` (`drbd`, `lvm-vg`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            StackCheck::Drbd(_) => "drbd",
            StackCheck::IscsiTarget(_) => "iscsi-target",
            StackCheck::IscsiSession(_) => "iscsi-session",
            StackCheck::LvmVg(_) => "lvm-vg",
            StackCheck::LvmVm(_) => "lvm-vm",
            StackCheck::LvmSnapshot(_) => "lvm-snapshot",
            StackCheck::Domains(_) => "domains",
            StackCheck::Bonding(_) => "bonding",
            StackCheck::ClusterIp(_) => "cluster-ip",
        }
    }
}

/// Runs a stack check in-process: gathers the raw text, then evaluates it.
///
/// Never fails: a source that cannot be read makes the result UNKNOWN (or
/// worse, where the evaluator knows better). The caller applies its timeout.
pub async fn run_native(spec: &StackCheck) -> CheckOutput {
    match spec {
        StackCheck::Drbd(c) => c.run().await,
        StackCheck::IscsiTarget(c) => c.run().await,
        StackCheck::IscsiSession(c) => c.run().await,
        StackCheck::LvmVg(c) => c.run().await,
        StackCheck::LvmVm(c) => c.run().await,
        StackCheck::LvmSnapshot(c) => c.run().await,
        StackCheck::Domains(c) => c.run().await,
        StackCheck::Bonding(c) => c.run().await,
        StackCheck::ClusterIp(c) => c.run().await,
    }
}

/// Gathers the text of several named servers concurrently, keeping their order.
///
/// The gathers run inside the caller's task (not spawned), so dropping the
/// returned future (a timeout) drops them and kills their processes.
pub(crate) async fn gather_all(
    servers: &[(String, Source)],
) -> Vec<(String, Result<String, GatherError>)> {
    use std::future::Future;
    let mut runs: Vec<_> = servers
        .iter()
        .map(|(_, src)| Box::pin(gather(src)))
        .collect();
    let mut results: Vec<Option<Result<String, GatherError>>> =
        servers.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (run, slot) in runs.iter_mut().zip(results.iter_mut()) {
            if slot.is_none() {
                match run.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    servers
        .iter()
        .zip(results)
        .map(|((name, _), r)| {
            let r = r.unwrap_or_else(|| Err(GatherError::Lost(name.clone())));
            (name.clone(), r)
        })
        .collect()
}

/// The worse of two states: OK < WARNING < UNKNOWN < CRITICAL.
pub fn worst(a: State, b: State) -> State {
    if b.severity() > a.severity() {
        b
    } else {
        a
    }
}

/// Why a threshold given on the command line is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThresholdError {
    /// Not a Nagios range.
    #[error(
        "threshold {0:?} is not a Nagios range ([@][start:][end], e.g. 10, 10:, ~:10, @10:20)"
    )]
    BadRange(String),
    /// Not a size or percentage.
    #[error(
        "threshold {0:?} is not a size (e.g. 10G, 512M, 1073741824) or a percentage (e.g. 20%)"
    )]
    BadLimit(String),
}

/// Parses a byte count with an optional binary suffix: `512`, `10K`, `2.5G`, `1TiB`, `100B`.
pub fn parse_size(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    (n.is_finite() && n >= 0.0).then_some(n * mult)
}

/// Parses a Nagios range whose bounds may carry size suffixes (`@10G:20G`, `1G`).
pub fn parse_range(s: &str) -> Result<Range, ThresholdError> {
    let bad = || ThresholdError::BadRange(s.to_string());
    let t = s.trim();
    let (inside, body) = match t.strip_prefix('@') {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    let bound = |b: &str| -> Result<String, ThresholdError> {
        match b {
            "" | "~" => Ok(b.to_string()),
            _ => match b.parse::<f64>() {
                Ok(_) => Ok(b.to_string()),
                Err(_) => parse_size(b).map(|v| v.to_string()).ok_or_else(bad),
            },
        }
    };
    let plain = match body.split_once(':') {
        Some((a, b)) => format!("{}:{}", bound(a)?, bound(b)?),
        None => bound(body)?,
    };
    let plain = if inside { format!("@{plain}") } else { plain };
    Range::parse(&plain).map_err(|_| bad())
}

/// A "keep at least this much" limit: a percentage of a total or an absolute size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MinLimit {
    /// At least this percentage of the total.
    Percent(f64),
    /// At least this many bytes.
    Bytes(f64),
}

impl MinLimit {
    /// Parses `20%`, `10G`, `1073741824`.
    pub fn parse(s: &str) -> Result<MinLimit, ThresholdError> {
        let t = s.trim();
        if let Some(p) = t.strip_suffix('%') {
            return match p.trim().parse::<f64>() {
                Ok(v) if (0.0..=100.0).contains(&v) => Ok(MinLimit::Percent(v)),
                _ => Err(ThresholdError::BadLimit(s.to_string())),
            };
        }
        parse_size(t)
            .map(MinLimit::Bytes)
            .ok_or_else(|| ThresholdError::BadLimit(s.to_string()))
    }

    /// The limit in bytes for a total of `total` bytes.
    pub fn bytes(&self, total: f64) -> f64 {
        match *self {
            MinLimit::Percent(p) => (total * p / 100.0).floor(),
            MinLimit::Bytes(b) => b,
        }
    }
}

/// Warning and critical ranges; either may be absent.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Thresholds {
    /// Alert WARNING per this range.
    pub warn: Option<Range>,
    /// Alert CRITICAL per this range.
    pub crit: Option<Range>,
}

impl Thresholds {
    /// Parses optional `-w` and `-c` strings with [`parse_range`].
    pub fn parse(warn: Option<&str>, crit: Option<&str>) -> Result<Thresholds, ThresholdError> {
        Ok(Thresholds {
            warn: warn.map(parse_range).transpose()?,
            crit: crit.map(parse_range).transpose()?,
        })
    }

    /// The state of `value`: CRITICAL before WARNING before OK.
    pub fn state(&self, value: f64) -> State {
        if self.crit.is_some_and(|r| r.alerts(value)) {
            State::Critical
        } else if self.warn.is_some_and(|r| r.alerts(value)) {
            State::Warning
        } else {
            State::Ok
        }
    }
}

/// Builds a perfdata item.
pub(crate) fn perf(
    label: impl Into<String>,
    value: f64,
    uom: &str,
    th: &Thresholds,
    min: Option<f64>,
    max: Option<f64>,
) -> PerfDatum {
    PerfDatum {
        label: label.into(),
        value,
        uom: uom.to_string(),
        warn: th.warn.map(|r| r.to_string()),
        crit: th.crit.map(|r| r.to_string()),
        min,
        max,
    }
}

/// Collects problems, details and perfdata of one evaluation and turns them
/// into a Nagios-style [`CheckOutput`]: `SUBJECT STATE - text`.
#[derive(Debug)]
pub(crate) struct Findings {
    subject: &'static str,
    problems: Vec<(State, String)>,
    details: Vec<String>,
    perfdata: Vec<PerfDatum>,
}

impl Findings {
    /// Empty findings for a subject such as `DRBD`.
    pub(crate) fn new(subject: &'static str) -> Findings {
        Findings {
            subject,
            problems: Vec::new(),
            details: Vec::new(),
            perfdata: Vec::new(),
        }
    }

    /// Records a problem; OK problems are ignored.
    pub(crate) fn problem(&mut self, state: State, text: impl Into<String>) {
        if state != State::Ok {
            self.problems.push((state, text.into()));
        }
    }

    /// Adds a line of long output.
    pub(crate) fn detail(&mut self, text: impl Into<String>) {
        self.details.push(text.into());
    }

    /// Adds a perfdata item.
    pub(crate) fn perf(&mut self, p: PerfDatum) {
        self.perfdata.push(p);
    }

    /// The worst state recorded so far.
    pub(crate) fn state(&self) -> State {
        self.problems
            .iter()
            .fold(State::Ok, |acc, (s, _)| worst(acc, *s))
    }

    /// Finishes: the output names the problems (worst first) or, when there
    /// are none, the `ok_summary`.
    pub(crate) fn finish(mut self, ok_summary: impl Into<String>) -> CheckOutput {
        let state = self.state();
        self.problems
            .sort_by_key(|(s, _)| std::cmp::Reverse(s.severity()));
        let text = if self.problems.is_empty() {
            ok_summary.into()
        } else {
            self.problems
                .iter()
                .map(|(_, t)| t.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        };
        CheckOutput {
            state,
            output: format!("{} {} - {}", self.subject, state, text),
            long_output: self.details.join("\n"),
            perfdata: self.perfdata,
        }
    }
}

/// Formats bytes for people: `10.0 GiB`, `256.0 MiB`, `512 B`.
pub fn human_bytes(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024.0 {
        return format!("{bytes} B");
    }
    let mut v = bytes / 1024.0;
    let mut unit = UNITS[0];
    for u in &UNITS[1..] {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

/// Reads a number that may use a decimal comma (`42,37`).
pub(crate) fn parse_decimal(s: &str) -> Option<f64> {
    let s = s.trim().trim_end_matches('%');
    s.parse::<f64>()
        .ok()
        .or_else(|| s.replacen(',', ".", 1).parse::<f64>().ok())
        .filter(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let cases: &[(&str, Option<f64>)] = &[
            ("512", Some(512.0)),
            ("10K", Some(10240.0)),
            ("2.5G", Some(2.5 * 1073741824.0)),
            ("1TiB", Some(1099511627776.0)),
            ("100B", Some(100.0)),
            ("", None),
            ("G", None),
            ("10X", None),
            ("-1", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_size(s), *want, "{s}");
        }
    }

    #[test]
    fn ranges_with_sizes() {
        let r = parse_range("1G").unwrap();
        assert_eq!((r.start, r.end, r.inside), (0.0, 1073741824.0, false));
        let r = parse_range("@1K:2K").unwrap();
        assert_eq!((r.start, r.end, r.inside), (1024.0, 2048.0, true));
        let r = parse_range("2:").unwrap();
        assert!(r.alerts(1.0) && !r.alerts(2.0));
        assert!(parse_range("abc").is_err());
        assert!(parse_range("5:1").is_err());
    }

    #[test]
    fn min_limits() {
        assert_eq!(MinLimit::parse("20%").unwrap().bytes(1000.0), 200.0);
        assert_eq!(MinLimit::parse("1K").unwrap().bytes(1e9), 1024.0);
        assert!(MinLimit::parse("120%").is_err());
        assert!(MinLimit::parse("x").is_err());
    }

    #[test]
    fn thresholds_pick_critical_first() {
        let t = Thresholds {
            warn: Some(parse_range("10").unwrap()),
            crit: Some(parse_range("20").unwrap()),
        };
        assert_eq!(t.state(5.0), State::Ok);
        assert_eq!(t.state(15.0), State::Warning);
        assert_eq!(t.state(25.0), State::Critical);
    }

    #[test]
    fn findings_sort_worst_first() {
        let mut f = Findings::new("X");
        f.problem(State::Warning, "w");
        f.problem(State::Critical, "c");
        f.problem(State::Ok, "ignored");
        let out = f.finish("fine");
        assert_eq!(out.state, State::Critical);
        assert_eq!(out.output, "X CRITICAL - c; w");
        assert_eq!(Findings::new("X").finish("fine").output, "X OK - fine");
    }
}
