//! `laxmon plugin NAME [OPTIONS]`: the stack checks as Nagios plugins.
//!
//! [`parse_args`] turns the words after `laxmon plugin` into a
//! [`StackCheck`]; [`run_plugin`] runs it with a timeout and renders one
//! Nagios line, long output and perfdata; [`plugin_main`] prints that and
//! returns the exit code (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; bad usage
//! is UNKNOWN, as the plugin guidelines ask). Parsing arguments does no I/O.

use super::bonding::BondingCheck;
use super::clusterip::ClusterIpCheck;
use super::domains::{DomainTool, DomainsCheck};
use super::drbd::DrbdCheck;
use super::iscsi::{SessionCheck, TargetCheck, TargetTool};
use super::lvm::{SnapshotCheck, VgCheck, VmCheck};
use super::source::Origin;
use super::{run_native, MinLimit, StackCheck, Thresholds};
use crate::checks::{format_perfdata, CheckOutput, State};
use std::time::Duration;

/// The plugins and a one-line description each.
pub const PLUGINS: &[(&str, &str)] = &[
    (
        "drbd",
        "DRBD resources: connection, roles, disk states, resync, out-of-sync bytes",
    ),
    (
        "iscsi-target",
        "targets and LUNs a SAN server exports (ietd, tgt, LIO)",
    ),
    (
        "iscsi-session",
        "iSCSI sessions and LUNs a cluster server is logged in to",
    ),
    ("lvm-vg", "free space of volume groups"),
    (
        "lvm-vm",
        "a VM's logical volumes (VM-root, VM-swap) are present",
    ),
    ("lvm-snapshot", "fill level of LVM snapshots"),
    (
        "domains",
        "each expected VM runs on exactly one cluster server (xl or virsh)",
    ),
    (
        "bonding",
        "bonded links: slaves up, active slave, LACP aggregator",
    ),
    (
        "cluster-ip",
        "the SAN cluster IP is held by exactly one SAN server",
    ),
];

/// Options every plugin takes.
const COMMON: &[(&str, bool, &str)] = &[
    (
        "timeout",
        true,
        "-t, --timeout DURATION  give up after this long (default 10s; 10 means seconds)",
    ),
    ("help", false, "-h, --help              this text"),
];

/// Per plugin: (option, takes a value, help line).
fn options(plugin: &str) -> Option<&'static [(&'static str, bool, &'static str)]> {
    Some(match plugin {
        "drbd" => &[
            ("server", true, "--server NAME[=SOURCE]  a SAN server to ask (repeatable; default: local)"),
            ("source", true, "-H, --source SOURCE     ask only this one: local, ssh://[user@]host[:port], user@host, file:PATH"),
            ("resource", true, "--resource NAME[,NAME]  only these resources (minor numbers with --proc)"),
            ("proc", false, "--proc                  read /proc/drbd (DRBD 8) instead of drbdsetup status (DRBD 9)"),
            ("warning", true, "-w, --warning RANGE     out-of-sync bytes per resource (Nagios range, sizes allowed: 1G)"),
            ("critical", true, "-c, --critical RANGE    out-of-sync bytes per resource"),
            ("require-primary", false, "--require-primary       CRITICAL when no server has the resource Primary"),
        ],
        "iscsi-target" => &[
            ("source", true, "-H, --source SOURCE     where to read (default local)"),
            ("tool", true, "--tool ietd|tgt|lio     the target implementation (default ietd)"),
            ("target", true, "--target IQN            a target that must be exported (repeatable)"),
            ("vm", true, "--vm NAME[,NAME]        VMs whose target PREFIX:VM must export /dev/VG/VM-root, -swap"),
            ("iqn-prefix", true, "--iqn-prefix PREFIX     e.g. iqn.san1.klasse.kurs"),
            ("vg", true, "--vg VG                 the VMs' volume group (default system)"),
            ("lv", true, "--lv SUFFIX[,SUFFIX]    LV suffixes per VM (default root,swap)"),
        ],
        "iscsi-session" => &[
            ("source", true, "-H, --source SOURCE     where iscsiadm runs (default local)"),
            ("target", true, "--target IQN            a target that must have a session (repeatable)"),
            ("vm", true, "--vm NAME[,NAME]        VMs whose target PREFIX:VM must have a session with --lun attached"),
            ("iqn-prefix", true, "--iqn-prefix PREFIX     e.g. iqn.san1.klasse.kurs"),
            ("lun", true, "--lun N[,N]             LUNs each VM needs attached (default 0,1: root, swap)"),
            ("portal", true, "--portal ADDRESS        sessions must use this portal (the SAN cluster IP)"),
            ("warning", true, "-w, --warning RANGE     on the number of logged-in sessions (e.g. 4:)"),
            ("critical", true, "-c, --critical RANGE    on the number of logged-in sessions (e.g. 1:)"),
        ],
        "lvm-vg" => &[
            ("source", true, "-H, --source SOURCE     where vgs runs (default local)"),
            ("vg", true, "--vg VG[,VG]            volume groups (default: all)"),
            ("warning", true, "-w, --warning LIMIT     WARNING when free space is below (20% or 10G)"),
            ("critical", true, "-c, --critical LIMIT    CRITICAL when free space is below (10% or 5G)"),
        ],
        "lvm-vm" => &[
            ("source", true, "-H, --source SOURCE     where lvs runs (default local)"),
            ("vg", true, "--vg VG                 the VMs' volume group (default system)"),
            ("vm", true, "--vm NAME[,NAME]        VMs (required)"),
            ("lv", true, "--lv SUFFIX[,SUFFIX]    LV suffixes per VM (default root,swap)"),
            ("active", false, "--active                CRITICAL when an LV is not active"),
        ],
        "lvm-snapshot" => &[
            ("source", true, "-H, --source SOURCE     where lvs runs (default local)"),
            ("vg", true, "--vg VG                 only this volume group"),
            ("lv", true, "--lv NAME[,NAME]        only these snapshots (CRITICAL when missing)"),
            ("warning", true, "-w, --warning RANGE     fill level in percent (default 80)"),
            ("critical", true, "-c, --critical RANGE    fill level in percent (default 90)"),
        ],
        "domains" => &[
            ("server", true, "--server NAME[=SOURCE]  a cluster server (repeatable, required)"),
            ("expect", true, "--expect VM[,VM]        VMs that must run on exactly one server"),
            ("tool", true, "--tool xl|virsh         how to list domains (default xl)"),
            ("connect", true, "--connect URI           virsh -c URI (e.g. qemu:///system)"),
            ("absent-warning", false, "--absent-warning        a VM running nowhere is WARNING, not CRITICAL"),
        ],
        "bonding" => &[
            ("source", true, "-H, --source SOURCE     where /proc/net/bonding is read (default local)"),
            ("bond", true, "--bond NAME[,NAME]      bonds (default bond0)"),
            ("warning", true, "-w, --warning RANGE     on slaves up (default: all of them, N:)"),
            ("critical", true, "-c, --critical RANGE    on slaves up (default 1:)"),
            ("failures-warning", true, "--failures-warning RANGE  on the summed link failure count"),
            ("failures-critical", true, "--failures-critical RANGE on the summed link failure count"),
            ("active", true, "--active IFACE          active-backup: WARNING when IFACE is up but not active"),
        ],
        "cluster-ip" => &[
            ("ip", true, "--ip ADDRESS            the cluster IP (required)"),
            ("server", true, "--server NAME[=SOURCE]  a SAN server (repeatable, required)"),
        ],
        _ => return None,
    })
}

/// What the arguments ask for.
#[derive(Debug, Clone, PartialEq)]
pub enum Invocation {
    /// Run this check with this timeout.
    Run(StackCheck, Duration),
    /// Print this help text and exit 0.
    Help(String),
}

/// Bad arguments: the message says which and what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Option name -> values, in order.
struct Opts(Vec<(String, String)>);

impl Opts {
    fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| v.split(','))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect()
    }
    fn last(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    fn flag(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }
}

/// Per plugin: example command lines for its help page. They run as they
/// are from the repository root (captured outputs under tests/fixtures/stack,
/// or the local machine) and contact nothing else; `tests/help_examples.rs` runs them.
fn examples(plugin: &str) -> &'static [&'static str] {
    match plugin {
        "drbd" => &[
            "laxmon plugin drbd -H file:tests/fixtures/stack/drbd/drbd9-healthy.txt --require-primary",
            "laxmon plugin drbd --proc --server san1=file:tests/fixtures/stack/drbd/proc-drbd8-splitbrain-san1.txt --server san2=file:tests/fixtures/stack/drbd/proc-drbd8-splitbrain-san2.txt",
        ],
        "iscsi-target" => &[
            "laxmon plugin iscsi-target -H file:tests/fixtures/stack/iscsi/iet-volume.txt --iqn-prefix iqn.san1.klasse.kurs --vm deb1,win3",
            "laxmon plugin iscsi-target -H file:tests/fixtures/stack/iscsi/tgtadm-show.txt --tool tgt --target iqn.san1.klasse.kurs:deb1",
        ],
        "iscsi-session" => &[
            "laxmon plugin iscsi-session -H file:tests/fixtures/stack/iscsi/iscsiadm-session-P3.txt --iqn-prefix iqn.san1.klasse.kurs --vm deb1,win3 --portal 192.168.30.10",
            "laxmon plugin iscsi-session -H file:tests/fixtures/stack/iscsi/iscsiadm-session-P3-missing-lun.txt --iqn-prefix iqn.san1.klasse.kurs --vm deb1,win3",
        ],
        "lvm-vg" => &[
            "laxmon plugin lvm-vg -H file:tests/fixtures/stack/lvm/vgs-healthy.txt --vg system -w 20% -c 10%",
            "laxmon plugin lvm-vg --vg system -w 10G -c 5G",
        ],
        "lvm-vm" => &[
            "laxmon plugin lvm-vm -H file:tests/fixtures/stack/lvm/lvs-healthy.txt --vg system --vm deb1,win3 --active",
            "laxmon plugin lvm-vm -H file:tests/fixtures/stack/lvm/lvs-missing-lv.txt --vg system --vm deb1",
        ],
        "lvm-snapshot" => &[
            "laxmon plugin lvm-snapshot -H file:tests/fixtures/stack/lvm/lvs-snapshot-95.txt --vg system",
            "laxmon plugin lvm-snapshot -H file:tests/fixtures/stack/lvm/lvs-snapshot-95.txt --lv win3-snap -w 10 -c 50",
        ],
        "domains" => &[
            "laxmon plugin domains --expect deb1,win3,t1 --server cs1=file:tests/fixtures/stack/domains/xl-cs1.txt --server cs2=file:tests/fixtures/stack/domains/xl-cs2.txt",
            "laxmon plugin domains --tool virsh --server cs1=file:tests/fixtures/stack/domains/virsh-cs1.txt --server cs2=file:tests/fixtures/stack/domains/virsh-cs2.txt",
        ],
        "bonding" => &[
            "laxmon plugin bonding -H file:tests/fixtures/stack/bonding/8023ad-healthy.txt --bond bond0",
            "laxmon plugin bonding -H file:tests/fixtures/stack/bonding/active-backup-one-down.txt --active eth0",
        ],
        "cluster-ip" => &[
            "laxmon plugin cluster-ip --ip 192.168.30.10 --server san1=file:tests/fixtures/stack/clusterip/ip-san1-holder.txt --server san2=file:tests/fixtures/stack/clusterip/ip-san2.txt",
        ],
        _ => &[],
    }
}

fn usage(plugin: &str) -> String {
    let mut s = String::new();
    match options(plugin) {
        None => {
            s.push_str("usage: laxmon plugin NAME [OPTIONS]\n\nplugins:\n");
            for (n, d) in PLUGINS {
                s.push_str(&format!("  {n:<14} {d}\n"));
            }
            s.push_str("\nlaxmon plugin NAME --help shows a plugin's options.\n");
        }
        Some(opts) => {
            let desc = PLUGINS
                .iter()
                .find(|(n, _)| *n == plugin)
                .map(|(_, d)| *d)
                .unwrap_or("");
            s.push_str(&format!(
                "usage: laxmon plugin {plugin} [OPTIONS]\n{desc}\n\noptions:\n"
            ));
            for (_, _, help) in opts.iter().chain(COMMON) {
                s.push_str(&format!("  {help}\n"));
            }
            s.push_str("\nExamples (from the repository root; file: reads a captured output):\n");
            for line in examples(plugin) {
                s.push_str(&format!("  {line}\n"));
            }
            s.push_str("\nSOURCE: local, ssh://[user@]host[:port], [user@]host, or file:PATH (captured output);\n");
            s.push_str("on a cluster usually ssh, e.g. -H root@san1 or --server san1=root@san1\n");
        }
    }
    s
}

fn long_name(short: char) -> Option<&'static str> {
    match short {
        'w' => Some("warning"),
        'c' => Some("critical"),
        'H' => Some("source"),
        't' => Some("timeout"),
        'h' => Some("help"),
        _ => None,
    }
}

fn split_opts(plugin: &str, args: &[String]) -> Result<Opts, UsageError> {
    let spec = options(plugin).unwrap_or(&[]);
    let takes = |name: &str| {
        spec.iter()
            .chain(COMMON)
            .find(|(n, _, _)| *n == name)
            .map(|(_, v, _)| *v)
    };
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (name, inline) = if let Some(long) = arg.strip_prefix("--") {
            match long.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (long.to_string(), None),
            }
        } else if let Some(short) = arg.strip_prefix('-').filter(|s| !s.is_empty()) {
            let mut chars = short.chars();
            let c = chars.next().unwrap_or('?');
            let rest: String = chars.collect();
            match long_name(c) {
                Some(n) => (
                    n.to_string(),
                    (!rest.is_empty()).then(|| rest.trim_start_matches('=').to_string()),
                ),
                None => {
                    return Err(UsageError(format!(
                        "unknown option {arg} for {plugin}; see laxmon plugin {plugin} --help"
                    )))
                }
            }
        } else {
            return Err(UsageError(format!(
                "unexpected argument {arg:?} for {plugin}; options start with --, see laxmon plugin {plugin} --help"
            )));
        };
        let Some(with_value) = takes(&name) else {
            return Err(UsageError(format!(
                "unknown option --{name} for {plugin}; see laxmon plugin {plugin} --help"
            )));
        };
        let value = if with_value {
            match inline {
                Some(v) => v,
                None => it.next().cloned().ok_or_else(|| {
                    UsageError(format!("option --{name} of {plugin} needs a value"))
                })?,
            }
        } else {
            if inline.is_some() {
                return Err(UsageError(format!("option --{name} takes no value")));
            }
            String::new()
        };
        out.push((name, value));
    }
    Ok(Opts(out))
}

fn origin(s: &str) -> Result<Origin, UsageError> {
    Origin::parse(s).map_err(|e| UsageError(e.to_string()))
}

fn single_origin(o: &Opts) -> Result<Origin, UsageError> {
    o.last("source").map(origin).unwrap_or(Ok(Origin::Local))
}

/// `NAME=SOURCE` or `NAME` (then SSH to NAME).
fn servers(o: &Opts) -> Result<Vec<(String, Origin)>, UsageError> {
    o.0.iter()
        .filter(|(k, _)| k == "server")
        .map(|(_, v)| match v.split_once('=') {
            Some((n, s)) if !n.is_empty() => Ok((n.to_string(), origin(s)?)),
            Some(_) => Err(UsageError(format!(
                "--server {v:?}: the name before = is empty"
            ))),
            None => Ok((v.clone(), origin(v)?)),
        })
        .collect()
}

fn thresholds(o: &Opts, w: &str, c: &str) -> Result<Thresholds, UsageError> {
    Thresholds::parse(o.last(w), o.last(c)).map_err(|e| UsageError(e.to_string()))
}

fn list_or(o: &Opts, name: &str, default: &[&str]) -> Vec<String> {
    let v = o.all(name);
    if v.is_empty() {
        default.iter().map(|s| s.to_string()).collect()
    } else {
        v
    }
}

/// Parses the words after `laxmon plugin` (a leading `plugin` is skipped too).
pub fn parse_args(args: &[String]) -> Result<Invocation, UsageError> {
    let args = match args.first().map(String::as_str) {
        Some("plugin") => &args[1..],
        _ => args,
    };
    let Some((plugin, rest)) = args.split_first() else {
        return Err(UsageError(format!("name a plugin\n{}", usage(""))));
    };
    let plugin = plugin.as_str();
    if plugin == "--help" || plugin == "-h" || plugin == "help" {
        return Ok(Invocation::Help(usage("")));
    }
    if options(plugin).is_none() {
        let names: Vec<&str> = PLUGINS.iter().map(|(n, _)| *n).collect();
        return Err(UsageError(format!(
            "unknown plugin {plugin:?}; plugins: {}",
            names.join(", ")
        )));
    }
    let o = split_opts(plugin, rest)?;
    if o.flag("help") {
        return Ok(Invocation::Help(usage(plugin)));
    }
    let timeout = match o.last("timeout") {
        None => Duration::from_secs(10),
        Some(t) => match t.parse::<u64>() {
            Ok(secs) => Duration::from_secs(secs),
            Err(_) => crate::config::duration::parse(t)
                .map_err(|e| UsageError(format!("--timeout {t:?}: {e}")))?,
        },
    };
    let need = |what: &str| {
        UsageError(format!(
            "{plugin} needs {what}; see laxmon plugin {plugin} --help"
        ))
    };
    let check = match plugin {
        "drbd" => {
            let mut srv = servers(&o)?;
            if srv.is_empty() {
                srv.push(("local".into(), single_origin(&o)?));
            } else if o.last("source").is_some() {
                return Err(UsageError(
                    "drbd: give --server or --source, not both".into(),
                ));
            }
            StackCheck::Drbd(DrbdCheck {
                servers: srv,
                proc_drbd: o.flag("proc"),
                resources: o.all("resource"),
                oos: thresholds(&o, "warning", "critical")?,
                require_primary: o.flag("require-primary"),
            })
        }
        "iscsi-target" => {
            let tool = match o.last("tool") {
                None => TargetTool::Iet,
                Some(t) => TargetTool::parse(t)
                    .ok_or_else(|| UsageError(format!("--tool {t:?}: use ietd, tgt or lio")))?,
            };
            let vms = o.all("vm");
            if !vms.is_empty() && o.last("iqn-prefix").is_none() {
                return Err(need("--iqn-prefix with --vm (e.g. iqn.san1.klasse.kurs)"));
            }
            StackCheck::IscsiTarget(TargetCheck {
                origin: single_origin(&o)?,
                tool,
                targets: o.all("target"),
                vms,
                iqn_prefix: o.last("iqn-prefix").map(str::to_string),
                vg: o.last("vg").unwrap_or("system").to_string(),
                suffixes: list_or(&o, "lv", &["root", "swap"]),
            })
        }
        "iscsi-session" => {
            let vms = o.all("vm");
            if !vms.is_empty() && o.last("iqn-prefix").is_none() {
                return Err(need("--iqn-prefix with --vm (e.g. iqn.san1.klasse.kurs)"));
            }
            let luns = list_or(&o, "lun", &["0", "1"])
                .iter()
                .map(|l| {
                    l.parse::<u32>()
                        .map_err(|_| UsageError(format!("--lun {l:?} is not a LUN number")))
                })
                .collect::<Result<Vec<u32>, _>>()?;
            StackCheck::IscsiSession(SessionCheck {
                origin: single_origin(&o)?,
                targets: o.all("target"),
                vms,
                iqn_prefix: o.last("iqn-prefix").map(str::to_string),
                luns,
                portal: o.last("portal").map(str::to_string),
                count: thresholds(&o, "warning", "critical")?,
            })
        }
        "lvm-vg" => {
            let limit = |n: &str| {
                o.last(n)
                    .map(MinLimit::parse)
                    .transpose()
                    .map_err(|e| UsageError(e.to_string()))
            };
            StackCheck::LvmVg(VgCheck {
                origin: single_origin(&o)?,
                vgs: o.all("vg"),
                warn: limit("warning")?,
                crit: limit("critical")?,
            })
        }
        "lvm-vm" => {
            let vms = o.all("vm");
            if vms.is_empty() {
                return Err(need("--vm NAME"));
            }
            StackCheck::LvmVm(VmCheck {
                origin: single_origin(&o)?,
                vg: o.last("vg").unwrap_or("system").to_string(),
                vms,
                suffixes: list_or(&o, "lv", &["root", "swap"]),
                require_active: o.flag("active"),
            })
        }
        "lvm-snapshot" => StackCheck::LvmSnapshot(SnapshotCheck {
            origin: single_origin(&o)?,
            vg: o.last("vg").map(str::to_string),
            lvs: o.all("lv"),
            fill: Thresholds::parse(
                Some(o.last("warning").unwrap_or("80")),
                Some(o.last("critical").unwrap_or("90")),
            )
            .map_err(|e| UsageError(e.to_string()))?,
        }),
        "domains" => {
            let srv = servers(&o)?;
            if srv.is_empty() {
                return Err(need("at least one --server NAME[=SOURCE]"));
            }
            let tool = match o.last("tool") {
                None | Some("xl") | Some("xm") => DomainTool::Xl,
                Some("virsh") | Some("libvirt") => DomainTool::Virsh,
                Some(t) => return Err(UsageError(format!("--tool {t:?}: use xl or virsh"))),
            };
            StackCheck::Domains(DomainsCheck {
                servers: srv,
                tool,
                connect: o.last("connect").map(str::to_string),
                expect: o.all("expect"),
                absent_warning: o.flag("absent-warning"),
            })
        }
        "bonding" => StackCheck::Bonding(BondingCheck {
            origin: single_origin(&o)?,
            bonds: list_or(&o, "bond", &["bond0"]),
            slaves_up: thresholds(&o, "warning", "critical")?,
            link_failures: thresholds(&o, "failures-warning", "failures-critical")?,
            expect_active: o.last("active").map(str::to_string),
        }),
        "cluster-ip" => {
            let ip = o.last("ip").ok_or_else(|| need("--ip ADDRESS"))?;
            let srv = servers(&o)?;
            if srv.is_empty() {
                return Err(need("at least one --server NAME[=SOURCE]"));
            }
            StackCheck::ClusterIp(ClusterIpCheck {
                ip: ip.to_string(),
                servers: srv,
            })
        }
        _ => return Err(UsageError(format!("unknown plugin {plugin:?}"))),
    };
    Ok(Invocation::Run(check, timeout))
}

/// Renders a result as a Nagios plugin prints it: `OUTPUT | PERFDATA`, then
/// the long output lines.
pub fn format_output(out: &CheckOutput) -> String {
    let mut s = out.output.replace(['|', '\n'], " ");
    if !out.perfdata.is_empty() {
        s.push_str(" | ");
        s.push_str(&format_perfdata(&out.perfdata));
    }
    s.push('\n');
    for line in out.long_output.lines() {
        s.push_str(&line.replace('|', "/"));
        s.push('\n');
    }
    s
}

/// Parses, runs and renders; returns the text to print and the exit code.
/// Builds its own single-threaded runtime: call it outside any tokio runtime.
pub fn run_plugin(args: Vec<String>) -> (String, i32) {
    let (check, timeout) = match parse_args(&args) {
        Ok(Invocation::Help(text)) => return (text, 0),
        Ok(Invocation::Run(c, t)) => (c, t),
        Err(e) => {
            let out = CheckOutput::unknown(format!("STACK UNKNOWN - {}", e.0.replace('\n', " ")));
            let mut text = format_output(&out);
            if e.0.contains('\n') {
                text = format!("{}\n", out.output.lines().next().unwrap_or(""));
                text.push_str(&usage(""));
            }
            return (text, State::Unknown.code());
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let out = CheckOutput::unknown(format!("STACK UNKNOWN - cannot start a runtime: {e}"));
            return (format_output(&out), State::Unknown.code());
        }
    };
    let out = rt.block_on(async {
        match tokio::time::timeout(timeout, run_native(&check)).await {
            Ok(out) => out,
            Err(_) => CheckOutput::unknown(format!(
                "{} UNKNOWN - no answer within {}",
                check.name().to_ascii_uppercase(),
                crate::config::duration::format(timeout)
            )),
        }
    });
    (format_output(&out), out.state.code())
}

/// `laxmon plugin NAME [OPTIONS]`: prints the plugin output and returns the
/// exit code (0..3). `args` are the words after `laxmon plugin`.
pub fn plugin_main(args: Vec<String>) -> i32 {
    let (text, code) = run_plugin(args);
    print!("{text}");
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn every_plugin_has_help() {
        for (name, _) in PLUGINS {
            match parse_args(&words(&format!("{name} --help"))).unwrap() {
                Invocation::Help(t) => assert!(t.contains(name), "{t}"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn parses_options() {
        let Invocation::Run(StackCheck::LvmVg(c), t) =
            parse_args(&words("plugin lvm-vg --vg system -w 20% -c=10% -t 5s")).unwrap()
        else {
            panic!()
        };
        assert_eq!(c.vgs, vec!["system"]);
        assert_eq!(c.warn, Some(MinLimit::Percent(20.0)));
        assert_eq!(c.crit, Some(MinLimit::Percent(10.0)));
        assert_eq!(t, Duration::from_secs(5));
        let Invocation::Run(StackCheck::Domains(d), _) = parse_args(&words(
            "domains --expect deb1,win3 --server cs1=ssh://root@cs1 --server cs2 --tool virsh",
        ))
        .unwrap() else {
            panic!()
        };
        assert_eq!(d.expect, vec!["deb1", "win3"]);
        assert_eq!(d.servers[1].0, "cs2");
        assert_eq!(d.tool, DomainTool::Virsh);
    }

    #[test]
    fn usage_errors_name_the_problem() {
        let cases = [
            ("nosuch", "unknown plugin"),
            ("lvm-vg --bogus", "unknown option --bogus"),
            ("lvm-vg -w", "needs a value"),
            ("lvm-vg -w abc", "not a size"),
            ("lvm-vm --vg system", "needs --vm"),
            ("domains --expect deb1", "--server"),
            ("cluster-ip --server san1", "--ip"),
            ("drbd stray", "unexpected argument"),
            ("iscsi-target --vm deb1", "--iqn-prefix"),
            ("drbd --server =local", "name before ="),
        ];
        for (args, want) in cases {
            let e = parse_args(&words(args)).unwrap_err();
            assert!(e.0.contains(want), "{args}: {e}");
        }
    }
}
