//! Xen/libvirt domains across the cluster servers: each expected VM must run
//! on exactly one server. A VM on two servers writes to one disk from two
//! kernels and destroys it: CRITICAL, whether expected or not. A crashed
//! domain is CRITICAL and a paused one WARNING, expected or not, too.
//!
//! Parses `xl list` (also `xm list`) and `virsh list --all`. [`parse`] and
//! [`evaluate`] are pure and never do I/O; only [`DomainsCheck::run`] gathers.

use super::source::{Origin, Source};
use super::{perf, Findings, Thresholds};
use crate::plugin_output::{CheckOutput, State};

/// A domain as one server lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Domain {
    /// Domain name.
    pub name: String,
    /// State as the tool wrote it (`-b----`, `running`, `paused`, ...).
    pub state: String,
    /// How the state counts.
    pub health: Health,
}

/// What a listed domain's state means for its disk and service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Running or idle.
    Running,
    /// Paused, suspended or shutting down: holds its disk, serves nothing.
    Held,
    /// Crashed or dying.
    Crashed,
    /// Defined but shut off (virsh): not on this server for the disk's sake.
    Off,
}

/// Which tool lists the domains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainTool {
    /// Xen's `xl list`.
    Xl,
    /// libvirt's `virsh list --all`.
    Virsh,
}

/// Parses `xl list` / `xm list` or `virsh list --all`, recognising the format.
/// Xen's `Domain-0` is left out.
pub fn parse(text: &str) -> Vec<Domain> {
    let xen = text
        .lines()
        .any(|l| l.starts_with("Name") && l.contains("VCPUs"));
    let mut out = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with("Name") || t.starts_with("Id") || t.starts_with("---") {
            continue;
        }
        let w: Vec<&str> = t.split_whitespace().collect();
        if xen {
            // Name ID Mem VCPUs State Time(s)
            if w.len() < 5 || w[0] == "Domain-0" {
                continue;
            }
            let flags = w[4];
            let has = |c: char| flags.contains(c);
            let health = if has('c') || has('d') {
                Health::Crashed
            } else if has('p') || has('s') {
                Health::Held
            } else {
                Health::Running
            };
            out.push(Domain {
                name: w[0].to_string(),
                state: flags.to_string(),
                health,
            });
        } else {
            // Id Name State (the state may be two words: "shut off", "in shutdown")
            if w.len() < 3 {
                continue;
            }
            let state = w[2..].join(" ");
            let health = match state.as_str() {
                "running" | "idle" | "no state" => Health::Running,
                "shut off" => Health::Off,
                "crashed" | "dying" => Health::Crashed,
                _ => Health::Held,
            };
            out.push(Domain {
                name: w[1].to_string(),
                state,
                health,
            });
        }
    }
    out
}

/// Options of the domains check.
#[derive(Debug, Clone, PartialEq)]
pub struct DomainsCheck {
    /// Cluster servers by name.
    pub servers: Vec<(String, Origin)>,
    /// Which tool lists domains.
    pub tool: DomainTool,
    /// `virsh -c URI`, for libvirt.
    pub connect: Option<String>,
    /// VMs that must run on exactly one server.
    pub expect: Vec<String>,
    /// A VM that runs nowhere is WARNING instead of CRITICAL.
    pub absent_warning: bool,
}

impl DomainsCheck {
    /// The source of one server's listing.
    pub fn source(&self, origin: &Origin) -> Source {
        match self.tool {
            DomainTool::Xl => Source::command(origin.clone(), &["xl", "list"]),
            DomainTool::Virsh => {
                let mut argv = vec!["virsh"];
                if let Some(uri) = &self.connect {
                    argv.extend(["-c", uri.as_str()]);
                }
                argv.extend(["list", "--all"]);
                Source::command(origin.clone(), &argv)
            }
        }
    }

    /// Gathers every server's listing and evaluates them together.
    pub async fn run(&self) -> CheckOutput {
        let servers: Vec<(String, Source)> = self
            .servers
            .iter()
            .map(|(n, o)| (n.clone(), self.source(o)))
            .collect();
        let listed: Vec<(String, Result<Vec<Domain>, String>)> = super::gather_all(&servers)
            .await
            .into_iter()
            .map(|(n, r)| (n, r.map(|t| parse(&t)).map_err(|e| e.to_string())))
            .collect();
        evaluate(&listed, self)
    }
}

/// Evaluates the listings of all servers (a server that could not be asked
/// carries its error).
pub fn evaluate(
    servers: &[(String, Result<Vec<Domain>, String>)],
    opts: &DomainsCheck,
) -> CheckOutput {
    let mut f = Findings::new("DOMAINS");
    let unreachable: Vec<&str> = servers
        .iter()
        .filter(|(_, r)| r.is_err())
        .map(|(n, _)| n.as_str())
        .collect();
    for (name, r) in servers {
        match r {
            Err(e) => f.problem(State::Unknown, format!("{name}: {e}")),
            Ok(doms) => {
                let list = doms
                    .iter()
                    .filter(|d| d.health != Health::Off)
                    .map(|d| format!("{} ({})", d.name, d.state))
                    .collect::<Vec<_>>()
                    .join(", ");
                f.detail(format!(
                    "{name}: {}",
                    if list.is_empty() { "no domains" } else { &list }
                ));
            }
        }
    }
    // Every domain name that holds its disk somewhere, with where.
    let mut placed: Vec<(String, Vec<(&str, &Domain)>)> = Vec::new();
    for (server, r) in servers {
        for d in r.iter().flatten().filter(|d| d.health != Health::Off) {
            match placed.iter_mut().find(|(n, _)| n == &d.name) {
                Some((_, on)) => on.push((server.as_str(), d)),
                None => placed.push((d.name.clone(), vec![(server.as_str(), d)])),
            }
        }
    }
    let mut duplicates = 0usize;
    for (name, on) in &placed {
        if on.len() > 1 {
            duplicates += 1;
            let servers: Vec<&str> = on.iter().map(|(s, _)| *s).collect();
            f.problem(
                State::Critical,
                format!(
                    "{name} runs on {} at once (its disk is being destroyed)",
                    servers.join(" and ")
                ),
            );
        }
    }
    // A crashed or paused domain is a problem wherever it runs, expected or not.
    let mut running = 0usize;
    for (name, on) in &placed {
        let [(server, d)] = on.as_slice() else {
            continue; // on two servers: reported above
        };
        match d.health {
            Health::Running => running += usize::from(opts.expect.contains(name)),
            Health::Held => f.problem(
                State::Warning,
                format!("{name} on {server} is {}", describe(d)),
            ),
            Health::Crashed => f.problem(
                State::Critical,
                format!("{name} on {server} is {}", describe(d)),
            ),
            Health::Off => {} // never placed
        }
    }
    let mut missing = 0usize;
    for vm in &opts.expect {
        if placed.iter().any(|(n, _)| n == vm) {
            continue;
        }
        missing += 1;
        if unreachable.is_empty() {
            let s = if opts.absent_warning {
                State::Warning
            } else {
                State::Critical
            };
            f.problem(s, format!("{vm} runs nowhere"));
        } else {
            f.problem(
                State::Unknown,
                format!(
                    "{vm} runs on no reachable server ({} not asked)",
                    unreachable.join(", ")
                ),
            );
        }
    }
    let none = Thresholds::default();
    let expected = opts.expect.len() as f64;
    f.perf(perf(
        "running",
        running as f64,
        "",
        &none,
        Some(0.0),
        Some(expected),
    ));
    f.perf(perf(
        "duplicates",
        duplicates as f64,
        "",
        &none,
        Some(0.0),
        None,
    ));
    f.perf(perf(
        "missing",
        missing as f64,
        "",
        &none,
        Some(0.0),
        Some(expected),
    ));
    let summary = if opts.expect.is_empty() {
        format!("{} domains, none on two servers", placed.len())
    } else {
        format!(
            "{running}/{} expected VMs each running on exactly one server",
            opts.expect.len()
        )
    };
    f.finish(summary)
}

fn describe(d: &Domain) -> String {
    let xen = d.state.len() == 6 && d.state.chars().all(|c| "rbpscd-".contains(c));
    let word = match (xen, d.health) {
        (true, Health::Crashed) if d.state.contains('d') => "dying",
        (_, Health::Crashed) => "crashed",
        (true, _) if d.state.contains('p') => "paused",
        (true, _) if d.state.contains('s') => "shutting down",
        _ => return d.state.clone(),
    };
    format!("{word} ({})", d.state)
}
