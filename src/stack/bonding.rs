//! Bonded links: parses `/proc/net/bonding/bondN` and evaluates the bond's
//! MII status, every slave's MII status, the active slave (active-backup),
//! the LACP aggregator (802.3ad) and link failure counts.
//!
//! [`parse`] and [`evaluate`] are pure and never do I/O; only
//! [`BondingCheck::run`] reads the proc files.

use super::source::{Origin, Source};
use super::{perf, Findings, Thresholds};
use crate::plugin_output::Range;
use crate::plugin_output::{CheckOutput, State};

/// A bond as `/proc/net/bonding/bondN` describes it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Bond {
    /// `Bonding Mode` as written (`fault-tolerance (active-backup)`, ...).
    pub mode: String,
    /// The bond's own `MII Status`.
    pub mii_up: bool,
    /// `Currently Active Slave` (active-backup, balance-tlb/alb).
    pub active_slave: Option<String>,
    /// `Primary Slave`, when one is set.
    pub primary_slave: Option<String>,
    /// The active aggregator's ID (802.3ad).
    pub active_aggregator: Option<u32>,
    /// The LACP partner MAC of the active aggregator (802.3ad).
    pub partner_mac: Option<String>,
    /// The slaves in order.
    pub slaves: Vec<Slave>,
}

impl Bond {
    /// The mode is active-backup.
    pub fn is_active_backup(&self) -> bool {
        self.mode.contains("active-backup")
    }

    /// The mode is 802.3ad (LACP).
    pub fn is_lacp(&self) -> bool {
        self.mode.contains("802.3ad")
    }
}

/// One slave interface of a bond.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Slave {
    /// Interface name.
    pub name: String,
    /// `MII Status: up`.
    pub mii_up: bool,
    /// `Speed` as written (`1000 Mbps`, `Unknown`).
    pub speed: Option<String>,
    /// `Link Failure Count`.
    pub link_failures: u64,
    /// `Aggregator ID` (802.3ad).
    pub aggregator: Option<u32>,
}

/// Parses one `/proc/net/bonding/bondN` file; `None` when it is not one.
pub fn parse(text: &str) -> Option<Bond> {
    if !text.contains("Bonding Mode:") {
        return None;
    }
    let mut bond = Bond::default();
    let mut in_header = true;
    let mut in_partner_details = false;
    for line in text.lines() {
        let raw = line;
        let t = line.trim();
        let Some((key, value)) = t.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if key == "Slave Interface" {
            in_header = false;
            in_partner_details = false;
            bond.slaves.push(Slave {
                name: value.to_string(),
                ..Slave::default()
            });
            continue;
        }
        if raw.starts_with("details ") {
            in_partner_details = raw.starts_with("details partner");
            continue;
        }
        if in_header {
            match key {
                "Bonding Mode" => bond.mode = value.to_string(),
                "MII Status" => bond.mii_up = value == "up",
                "Currently Active Slave" => {
                    bond.active_slave = (value != "None").then(|| value.to_string())
                }
                "Primary Slave" => {
                    let name = value.split_whitespace().next().unwrap_or("");
                    bond.primary_slave =
                        (name != "None" && !name.is_empty()).then(|| name.to_string())
                }
                "Aggregator ID" => bond.active_aggregator = value.parse().ok(),
                "Partner Mac Address" => bond.partner_mac = Some(value.to_string()),
                _ => {}
            }
        } else if let Some(slave) = bond.slaves.last_mut() {
            if in_partner_details {
                continue;
            }
            match key {
                "MII Status" => slave.mii_up = value == "up",
                "Speed" => slave.speed = Some(value.to_string()),
                "Link Failure Count" => slave.link_failures = value.parse().unwrap_or(0),
                "Aggregator ID" => slave.aggregator = value.parse().ok(),
                _ => {}
            }
        }
    }
    Some(bond)
}

/// Options of the bonding check.
#[derive(Debug, Clone, PartialEq)]
pub struct BondingCheck {
    /// Where the proc files are read.
    pub origin: Origin,
    /// Bond names (`bond0`).
    pub bonds: Vec<String>,
    /// Thresholds on slaves up; default WARNING below all, CRITICAL below 1.
    pub slaves_up: Thresholds,
    /// Thresholds on the summed link failure count (a counter since boot).
    pub link_failures: Thresholds,
    /// Active-backup: WARNING when this slave is not the active one.
    pub expect_active: Option<String>,
}

impl BondingCheck {
    /// The source of one bond's proc file.
    pub fn source(&self, bond: &str) -> Source {
        Source::file(self.origin.clone(), format!("/proc/net/bonding/{bond}"))
    }

    /// Reads every bond and evaluates them. A captured source for several
    /// bonds must be a directory (`DIR/bond0`, `DIR/bond1`): one captured
    /// file would be read for every bond, so that is refused (UNKNOWN).
    pub async fn run(&self) -> CheckOutput {
        if self.bonds.len() > 1 && super::source::is_one_captured_file(&self.origin).await {
            return CheckOutput::unknown(format!(
                "BONDING UNKNOWN - {} is one captured file, but {} bonds are checked ({}) \
                 and each would be read from it; give a directory holding one file per bond, \
                 named as in /proc/net/bonding (file:DIR with DIR/{}), or check one bond per run",
                self.origin,
                self.bonds.len(),
                self.bonds.join(", "),
                self.bonds.join(", DIR/")
            ));
        }
        let sources: Vec<(String, Source)> = self
            .bonds
            .iter()
            .map(|b| (b.clone(), self.source(b)))
            .collect();
        let read: Vec<(String, Result<Option<Bond>, String>)> = super::gather_all(&sources)
            .await
            .into_iter()
            .map(|(n, r)| (n, r.map(|t| parse(&t)).map_err(|e| e.to_string())))
            .collect();
        evaluate(&read, self)
    }
}

/// Evaluates the bonds; the error of a bond that could not be read is UNKNOWN.
pub fn evaluate(
    bonds: &[(String, Result<Option<Bond>, String>)],
    opts: &BondingCheck,
) -> CheckOutput {
    let mut f = Findings::new("BONDING");
    let multi = bonds.len() > 1;
    let mut summary = Vec::new();
    for (name, r) in bonds {
        let label = |what: &str| {
            if multi {
                format!("{name}_{what}")
            } else {
                what.to_string()
            }
        };
        if !matches!(r, Ok(Some(_))) {
            // Nothing measured, but keep the series: no slave is known to be up.
            let none = Thresholds::default();
            f.perf(perf(label("slaves_up"), 0.0, "", &none, Some(0.0), None));
        }
        let bond = match r {
            Err(e) => {
                let state = if e.contains("No such file") {
                    State::Critical
                } else {
                    State::Unknown
                };
                f.problem(state, format!("{name}: {e}"));
                continue;
            }
            Ok(None) => {
                f.problem(State::Unknown, format!("{name}: not a bonding status file"));
                continue;
            }
            Ok(Some(b)) => b,
        };
        let total = bond.slaves.len();
        let up = bond.slaves.iter().filter(|s| s.mii_up).count();
        let failures: u64 = bond.slaves.iter().map(|s| s.link_failures).sum();
        let slaves_up = if opts.slaves_up == Thresholds::default() {
            Thresholds {
                warn: Some(Range {
                    start: total as f64,
                    end: f64::INFINITY,
                    inside: false,
                }),
                crit: Some(Range {
                    start: 1.0,
                    end: f64::INFINITY,
                    inside: false,
                }),
            }
        } else {
            opts.slaves_up
        };
        let down: Vec<&str> = bond
            .slaves
            .iter()
            .filter(|s| !s.mii_up)
            .map(|s| s.name.as_str())
            .collect();
        let mut text = format!("{name} {up}/{total} slaves up");
        if !down.is_empty() {
            text.push_str(&format!(" ({} down)", down.join(", ")));
        }
        let mut state = slaves_up.state(up as f64);
        if !bond.mii_up {
            state = State::Critical;
            text.push_str(", bond MII down");
        }
        f.problem(state, text.clone());
        if bond.is_active_backup() {
            match &bond.active_slave {
                None => f.problem(State::Critical, format!("{name}: no active slave")),
                Some(a) => {
                    if bond.slaves.iter().any(|s| &s.name == a && !s.mii_up) {
                        f.problem(State::Critical, format!("{name}: active slave {a} is down"));
                    }
                    let want = opts.expect_active.as_ref().or(bond.primary_slave.as_ref());
                    if let Some(w) = want.filter(|w| *w != a) {
                        let ok_anyway = bond.slaves.iter().any(|s| &s.name == w && !s.mii_up);
                        let s = if ok_anyway { State::Ok } else { State::Warning };
                        f.problem(s, format!("{name}: active slave {a}, not {w}"));
                    }
                    text.push_str(&format!(", active {a}"));
                }
            }
        }
        if bond.is_lacp() {
            if let Some(agg) = bond.active_aggregator {
                let outside: Vec<&str> = bond
                    .slaves
                    .iter()
                    .filter(|s| s.mii_up && s.aggregator.is_some_and(|a| a != agg))
                    .map(|s| s.name.as_str())
                    .collect();
                if !outside.is_empty() {
                    f.problem(
                        State::Warning,
                        format!(
                            "{name}: {} not in the active aggregator {agg}",
                            outside.join(", ")
                        ),
                    );
                }
            }
            if bond
                .partner_mac
                .as_deref()
                .is_some_and(|m| m == "00:00:00:00:00:00")
            {
                f.problem(State::Warning, format!("{name}: no LACP partner"));
            }
        }
        let fs = opts.link_failures.state(failures as f64);
        f.problem(fs, format!("{name}: {failures} link failures"));
        f.detail(format!(
            "{name}: {}, MII {}",
            bond.mode,
            if bond.mii_up { "up" } else { "down" }
        ));
        for s in &bond.slaves {
            f.detail(format!(
                "{name} slave {}: MII {}, speed {}, {} link failures{}",
                s.name,
                if s.mii_up { "up" } else { "down" },
                s.speed.as_deref().unwrap_or("?"),
                s.link_failures,
                s.aggregator
                    .map(|a| format!(", aggregator {a}"))
                    .unwrap_or_default()
            ));
        }
        f.perf(perf(
            label("slaves_up"),
            up as f64,
            "",
            &slaves_up,
            Some(0.0),
            Some(total as f64),
        ));
        f.perf(perf(
            label("link_failures"),
            failures as f64,
            "c",
            &opts.link_failures,
            Some(0.0),
            None,
        ));
        summary.push(text);
    }
    f.finish(summary.join(", "))
}
