//! The SAN cluster IP: Heartbeat moves it to the active SAN server, and
//! exactly one SAN server may hold it. Two holders answer ARP for the same
//! address and split the initiators between two servers; none stops all
//! iSCSI traffic.
//!
//! Parses `ip -o addr show` (also plain `ip addr show`) per server.
//! [`parse_addresses`] and [`evaluate`] are pure and never do I/O; only
//! [`ClusterIpCheck::run`] gathers.

use super::source::{Origin, Source};
use super::{perf, Findings, Thresholds};
use crate::plugin_output::Range;
use crate::plugin_output::{CheckOutput, State};

/// An address configured on an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// Interface (or label, such as Heartbeat's `eth0:0`).
    pub interface: String,
    /// The address without prefix length.
    pub address: String,
}

/// Parses `ip -o addr show` or `ip addr show`: every `inet`/`inet6` address.
pub fn parse_addresses(text: &str) -> Vec<Address> {
    let mut out = Vec::new();
    let mut iface = String::new();
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        // "2: eth0: <...>" (plain) or "2: eth0    inet ..." (one-line)
        if w.len() >= 2
            && w[0].ends_with(':')
            && w[0][..w[0].len() - 1].chars().all(|c| c.is_ascii_digit())
        {
            iface = w[1]
                .trim_end_matches(':')
                .split('@')
                .next()
                .unwrap_or("")
                .to_string();
        }
        for (i, word) in w.iter().enumerate() {
            if (*word == "inet" || *word == "inet6") && i + 1 < w.len() {
                let addr = w[i + 1].split('/').next().unwrap_or("").to_string();
                // A label (eth0:0) is the last word before "\" or at the end.
                let label = w
                    .iter()
                    .skip(i + 2)
                    .take_while(|x| **x != "\\" && **x != "valid_lft")
                    .map(|x| x.trim_end_matches('\\'))
                    .last()
                    .filter(|l| l.starts_with(iface.as_str()) && l.contains(':'))
                    .map(|l| l.to_string());
                out.push(Address {
                    interface: label.unwrap_or_else(|| iface.clone()),
                    address: addr,
                });
            }
        }
    }
    out
}

/// Options of the cluster IP check.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterIpCheck {
    /// The cluster IP.
    pub ip: String,
    /// SAN servers by name.
    pub servers: Vec<(String, Origin)>,
}

impl ClusterIpCheck {
    /// The source of one server's addresses: `ip -o addr show`.
    pub fn source(&self, origin: &Origin) -> Source {
        Source::command(origin.clone(), &["ip", "-o", "addr", "show"])
    }

    /// Gathers every server's addresses and evaluates them.
    pub async fn run(&self) -> CheckOutput {
        let servers: Vec<(String, Source)> = self
            .servers
            .iter()
            .map(|(n, o)| (n.clone(), self.source(o)))
            .collect();
        let facts: Vec<(String, Result<Vec<Address>, String>)> = super::gather_all(&servers)
            .await
            .into_iter()
            .map(|(n, r)| (n, r.map(|t| parse_addresses(&t)).map_err(|e| e.to_string())))
            .collect();
        evaluate(&facts, &self.ip)
    }
}

/// Evaluates who holds `ip`: exactly one holder is OK, none or two CRITICAL;
/// an unreachable server makes the answer uncertain (WARNING or UNKNOWN).
pub fn evaluate(servers: &[(String, Result<Vec<Address>, String>)], ip: &str) -> CheckOutput {
    let mut f = Findings::new("CLUSTER-IP");
    let mut holders: Vec<String> = Vec::new();
    let mut unreachable: Vec<&str> = Vec::new();
    for (name, r) in servers {
        match r {
            Err(e) => {
                unreachable.push(name);
                f.detail(format!("{name}: cannot ask: {e}"));
            }
            Ok(addrs) => match addrs.iter().find(|a| a.address == ip) {
                Some(a) => {
                    holders.push(format!("{name} ({})", a.interface));
                    f.detail(format!("{name}: holds {ip} on {}", a.interface));
                }
                None => f.detail(format!("{name}: does not hold {ip}")),
            },
        }
    }
    let n = holders.len();
    let not_asked = unreachable.join(", ");
    match (n, unreachable.is_empty()) {
        (0, true) => f.problem(State::Critical, format!("{ip} held by no server")),
        (0, false) => f.problem(
            State::Unknown,
            format!("{ip} held by no reachable server ({not_asked} not asked)"),
        ),
        (1, false) => f.problem(
            State::Warning,
            format!(
                "{ip} on {}; {not_asked} not asked, a second holder is not ruled out",
                holders[0]
            ),
        ),
        (1, true) => {}
        _ => f.problem(
            State::Critical,
            format!(
                "{ip} held by {} servers at once: {}",
                n,
                holders.join(" and ")
            ),
        ),
    }
    let exactly_one = Thresholds {
        warn: None,
        crit: Some(Range {
            start: 1.0,
            end: 1.0,
            inside: false,
        }),
    };
    f.perf(perf(
        "holders",
        n as f64,
        "",
        &exactly_one,
        Some(0.0),
        Some(servers.len() as f64),
    ));
    f.finish(format!(
        "{ip} held by {}",
        holders.first().map(String::as_str).unwrap_or("none")
    ))
}
