//! `laxmon plugin NAME [OPTIONS]`: the stack checks as Nagios plugins.
//!
//! Each plugin is a clap subcommand of `PluginCli`, a parser of its own
//! beside `laxmon`'s: a plugin's `-c` is `--critical`, not the global
//! `--config`, and clap must never exit the process here (its exit 2 is
//! CRITICAL to Nagios). [`parse_args`] turns the words after `laxmon plugin`
//! into an [`Invocation`] and every clap error into a one-line
//! [`UsageError`] naming the option and value; [`run_plugin`] runs the check
//! with a timeout and renders one Nagios line, long output and perfdata;
//! [`plugin_main`] prints that and returns the exit code (0 OK, 1 WARNING,
//! 2 CRITICAL, 3 UNKNOWN; bad usage is UNKNOWN, as the plugin guidelines
//! ask). Parsing arguments does no I/O.

use super::bonding::BondingCheck;
use super::clusterip::ClusterIpCheck;
use super::domains::{DomainTool, DomainsCheck};
use super::drbd::DrbdCheck;
use super::iscsi::{SessionCheck, TargetCheck, TargetTool};
use super::lvm::{SnapshotCheck, VgCheck, VmCheck};
use super::source::Origin;
use super::{parse_range, run_native, MinLimit, StackCheck, Thresholds};
use crate::checks::{format_perfdata, CheckOutput, State};
use crate::plugin_output::Range;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use std::convert::Infallible;
use std::time::Duration;

/// `laxmon plugin`: one subcommand per plugin.
#[derive(Debug, Parser)]
#[command(
    name = "plugin",
    bin_name = "laxmon plugin",
    display_name = "laxmon plugin",
    no_binary_name = true,
    version,
    propagate_version = true,
    about = "Cluster-stack checks as Nagios plugins: one status line with perfdata; \
exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (bad usage too)",
    override_usage = "laxmon plugin NAME [OPTIONS]",
    subcommand_value_name = "NAME",
    subcommand_help_heading = "Plugins",
    args_override_self = true,
    term_width = 0,
    color = clap::ColorChoice::Never,
    after_help = "laxmon plugin NAME --help shows a plugin's options and examples."
)]
struct PluginCli {
    #[command(subcommand)]
    plugin: Plugin,
}

/// The plugins, in the order `laxmon plugin help` lists them.
#[derive(Debug, Subcommand)]
enum Plugin {
    /// DRBD resources: connection, roles, disk states, resync, out-of-sync bytes
    Drbd(DrbdArgs),
    /// Targets and LUNs a SAN server exports (ietd, tgt, LIO)
    IscsiTarget(IscsiTargetArgs),
    /// iSCSI sessions and LUNs a cluster server is logged in to
    IscsiSession(IscsiSessionArgs),
    /// Free space of volume groups
    LvmVg(LvmVgArgs),
    /// A VM's logical volumes (VM-root, VM-swap) are present
    LvmVm(LvmVmArgs),
    /// Fill level of LVM snapshots
    LvmSnapshot(LvmSnapshotArgs),
    /// Each expected VM runs on exactly one cluster server (xl or virsh)
    Domains(DomainsArgs),
    /// Bonded links: slaves up, active slave, LACP aggregator
    Bonding(BondingArgs),
    /// The SAN cluster IP is held by exactly one SAN server
    ClusterIp(ClusterIpArgs),
}

// Options every plugin takes (flattened last into each).
#[derive(Debug, Args)]
struct Common {
    /// Give up after this long (10 means seconds)
    #[arg(short, long, value_name = "DURATION", default_value = "10s", value_parser = timeout)]
    timeout: Duration,
}

/// A `--server NAME[=SOURCE]`.
type Server = (String, Origin);

#[derive(Debug, Args)]
struct DrbdArgs {
    /// A SAN server to ask; NAME alone is ssh to NAME (repeatable; default: -H)
    #[arg(long = "server", value_name = "NAME[=SOURCE]", value_parser = server, conflicts_with = "source")]
    servers: Vec<Server>,
    /// Ask only this source
    #[arg(short = 'H', long, value_name = "SOURCE", default_value = "local", value_parser = origin)]
    source: Origin,
    /// Only these resources (minor numbers with --proc)
    #[arg(long = "resource", value_name = "NAME[,NAME]", value_delimiter = ',', value_parser = item)]
    resources: Vec<String>,
    /// Read /proc/drbd (DRBD 8) instead of drbdsetup status (DRBD 9)
    #[arg(long = "proc")]
    proc_drbd: bool,
    /// Out-of-sync bytes per resource (Nagios range, sizes allowed: 1G)
    #[arg(short, long, value_name = "RANGE", value_parser = range, allow_hyphen_values = true)]
    warning: Option<Range>,
    /// Out-of-sync bytes per resource
    #[arg(short, long, value_name = "RANGE", value_parser = range, allow_hyphen_values = true)]
    critical: Option<Range>,
    /// CRITICAL when no server has the resource Primary
    #[arg(long)]
    require_primary: bool,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
struct IscsiTargetArgs {
    /// Where to read
    #[arg(short = 'H', long, value_name = "SOURCE", default_value = "local", value_parser = origin)]
    source: Origin,
    /// The target implementation
    #[arg(long, value_name = "ietd|tgt|lio", default_value = "ietd", value_parser = target_tool)]
    tool: TargetTool,
    /// A target that must be exported (repeatable)
    #[arg(long = "target", value_name = "IQN", value_delimiter = ',', value_parser = item)]
    targets: Vec<String>,
    /// VMs whose target PREFIX:VM must export /dev/VG/VM-root, -swap (needs --iqn-prefix)
    #[arg(long = "vm", value_name = "NAME[,NAME]", value_delimiter = ',', value_parser = item, requires = "iqn_prefix")]
    vms: Vec<String>,
    /// The targets' IQN prefix, e.g. iqn.san1.klasse.kurs
    #[arg(long, value_name = "PREFIX")]
    iqn_prefix: Option<String>,
    /// The VMs' volume group
    #[arg(long, value_name = "VG", default_value = "system")]
    vg: String,
    /// LV suffixes per VM
    #[arg(long = "lv", value_name = "SUFFIX[,SUFFIX]", value_delimiter = ',', value_parser = item, default_value = "root,swap")]
    suffixes: Vec<String>,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
struct IscsiSessionArgs {
    /// Where iscsiadm runs
    #[arg(short = 'H', long, value_name = "SOURCE", default_value = "local", value_parser = origin)]
    source: Origin,
    /// A target that must have a session (repeatable)
    #[arg(long = "target", value_name = "IQN", value_delimiter = ',', value_parser = item)]
    targets: Vec<String>,
    /// VMs whose target PREFIX:VM must have a session with --lun attached (needs --iqn-prefix)
    #[arg(long = "vm", value_name = "NAME[,NAME]", value_delimiter = ',', value_parser = item, requires = "iqn_prefix")]
    vms: Vec<String>,
    /// The targets' IQN prefix, e.g. iqn.san1.klasse.kurs
    #[arg(long, value_name = "PREFIX")]
    iqn_prefix: Option<String>,
    /// LUNs each VM needs attached (root, swap)
    #[arg(long = "lun", value_name = "N[,N]", value_delimiter = ',', value_parser = lun, default_value = "0,1")]
    luns: Vec<u32>,
    /// Sessions must use this portal (the SAN cluster IP)
    #[arg(long, value_name = "ADDRESS")]
    portal: Option<String>,
    /// On the number of logged-in sessions (e.g. 4:)
    #[arg(short, long, value_name = "RANGE", value_parser = range, allow_hyphen_values = true)]
    warning: Option<Range>,
    /// On the number of logged-in sessions (e.g. 1:)
    #[arg(short, long, value_name = "RANGE", value_parser = range, allow_hyphen_values = true)]
    critical: Option<Range>,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
struct LvmVgArgs {
    /// Where vgs runs
    #[arg(short = 'H', long, value_name = "SOURCE", default_value = "local", value_parser = origin)]
    source: Origin,
    /// Volume groups (default: all)
    #[arg(long = "vg", value_name = "VG[,VG]", value_delimiter = ',', value_parser = item)]
    vgs: Vec<String>,
    /// WARNING when free space is below (20% or 10G)
    #[arg(short, long, value_name = "LIMIT", value_parser = min_limit)]
    warning: Option<MinLimit>,
    /// CRITICAL when free space is below (10% or 5G)
    #[arg(short, long, value_name = "LIMIT", value_parser = min_limit)]
    critical: Option<MinLimit>,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
struct LvmVmArgs {
    /// Where lvs runs
    #[arg(short = 'H', long, value_name = "SOURCE", default_value = "local", value_parser = origin)]
    source: Origin,
    /// The VMs' volume group
    #[arg(long, value_name = "VG", default_value = "system")]
    vg: String,
    /// VMs
    #[arg(long = "vm", value_name = "NAME[,NAME]", value_delimiter = ',', value_parser = item, required = true)]
    vms: Vec<String>,
    /// LV suffixes per VM
    #[arg(long = "lv", value_name = "SUFFIX[,SUFFIX]", value_delimiter = ',', value_parser = item, default_value = "root,swap")]
    suffixes: Vec<String>,
    /// CRITICAL when an LV is not active
    #[arg(long)]
    active: bool,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
struct LvmSnapshotArgs {
    /// Where lvs runs
    #[arg(short = 'H', long, value_name = "SOURCE", default_value = "local", value_parser = origin)]
    source: Origin,
    /// Only this volume group
    #[arg(long, value_name = "VG")]
    vg: Option<String>,
    /// Only these snapshots (CRITICAL when missing)
    #[arg(long = "lv", value_name = "NAME[,NAME]", value_delimiter = ',', value_parser = item)]
    lvs: Vec<String>,
    /// Fill level in percent
    #[arg(short, long, value_name = "RANGE", default_value = "80", value_parser = range, allow_hyphen_values = true)]
    warning: Range,
    /// Fill level in percent
    #[arg(short, long, value_name = "RANGE", default_value = "90", value_parser = range, allow_hyphen_values = true)]
    critical: Range,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
struct DomainsArgs {
    /// A cluster server; NAME alone is ssh to NAME (repeatable)
    #[arg(long = "server", value_name = "NAME[=SOURCE]", value_parser = server, required = true)]
    servers: Vec<Server>,
    /// VMs that must run on exactly one server
    #[arg(long, value_name = "VM[,VM]", value_delimiter = ',', value_parser = item)]
    expect: Vec<String>,
    /// How to list domains
    #[arg(long, value_name = "xl|virsh", default_value = "xl", value_parser = domain_tool)]
    tool: DomainTool,
    /// virsh -c URI (e.g. qemu:///system)
    #[arg(long, value_name = "URI")]
    connect: Option<String>,
    /// A VM running nowhere is WARNING, not CRITICAL
    #[arg(long)]
    absent_warning: bool,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
struct BondingArgs {
    /// Where /proc/net/bonding is read
    #[arg(short = 'H', long, value_name = "SOURCE", default_value = "local", value_parser = origin)]
    source: Origin,
    /// Bonds
    #[arg(long = "bond", value_name = "NAME[,NAME]", value_delimiter = ',', value_parser = item, default_value = "bond0")]
    bonds: Vec<String>,
    /// On slaves up (default: all of them, N:)
    #[arg(short, long, value_name = "RANGE", value_parser = range, allow_hyphen_values = true)]
    warning: Option<Range>,
    /// On slaves up (default 1:)
    #[arg(short, long, value_name = "RANGE", value_parser = range, allow_hyphen_values = true)]
    critical: Option<Range>,
    /// On the summed link failure count
    #[arg(long, value_name = "RANGE", value_parser = range, allow_hyphen_values = true)]
    failures_warning: Option<Range>,
    /// On the summed link failure count
    #[arg(long, value_name = "RANGE", value_parser = range, allow_hyphen_values = true)]
    failures_critical: Option<Range>,
    /// Active-backup: WARNING when IFACE is up but not active
    #[arg(long, value_name = "IFACE")]
    active: Option<String>,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
struct ClusterIpArgs {
    /// The cluster IP
    #[arg(long, value_name = "ADDRESS", required = true)]
    ip: String,
    /// A SAN server; NAME alone is ssh to NAME (repeatable)
    #[arg(long = "server", value_name = "NAME[=SOURCE]", value_parser = server, required = true)]
    servers: Vec<Server>,
    #[command(flatten)]
    common: Common,
}

/// What the arguments ask for.
#[derive(Debug, Clone, PartialEq)]
pub enum Invocation {
    /// Run this check with this timeout.
    Run(StackCheck, Duration),
    /// Print this text (help or version) and exit 0.
    Help(String),
}

/// Bad arguments, in one line: which option and value, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

// Value parsers: each names what is wrong with the value; clap adds the option.

fn origin(s: &str) -> Result<Origin, String> {
    Origin::parse(s).map_err(|e| e.to_string())
}

/// `NAME=SOURCE`, or `NAME` alone (then SSH to NAME).
fn server(s: &str) -> Result<Server, String> {
    match s.split_once('=') {
        Some((name, source)) if !name.trim().is_empty() => {
            Ok((name.trim().to_string(), origin(source)?))
        }
        Some(_) => Err("the name before = is empty (NAME=SOURCE)".into()),
        None => Ok((s.trim().to_string(), origin(s)?)),
    }
}

/// A list item, trimmed; empty items are dropped afterwards by [`items`].
fn item(s: &str) -> Result<String, Infallible> {
    Ok(s.trim().to_string())
}

fn range(s: &str) -> Result<Range, String> {
    parse_range(s).map_err(|e| e.to_string())
}

fn min_limit(s: &str) -> Result<MinLimit, String> {
    MinLimit::parse(s).map_err(|e| e.to_string())
}

fn lun(s: &str) -> Result<u32, String> {
    s.trim().parse().map_err(|_| "not a LUN number".to_string())
}

/// A plain number is seconds; otherwise a duration (10s, 500ms, 1m30s).
fn timeout(s: &str) -> Result<Duration, String> {
    match s.trim().parse::<u64>() {
        Ok(secs) => Ok(Duration::from_secs(secs)),
        Err(_) => crate::config::duration::parse(s),
    }
}

fn target_tool(s: &str) -> Result<TargetTool, String> {
    TargetTool::parse(s).ok_or_else(|| "use ietd, tgt or lio".to_string())
}

fn domain_tool(s: &str) -> Result<DomainTool, String> {
    match s {
        "xl" | "xm" => Ok(DomainTool::Xl),
        "virsh" | "libvirt" => Ok(DomainTool::Virsh),
        _ => Err("use xl or virsh".into()),
    }
}

/// A comma-separated list without its empty items (`deb1,,win3`, a trailing comma).
fn items(v: Vec<String>) -> Vec<String> {
    v.into_iter().filter(|s| !s.is_empty()).collect()
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

/// The end of a plugin's help page: its examples and the SOURCE forms.
fn page_footer(plugin: &str) -> String {
    let mut s =
        String::from("Examples (from the repository root; file: reads a captured output):\n");
    for line in examples(plugin) {
        s.push_str(&format!("  {line}\n"));
    }
    s.push_str(
        "\nSOURCE: local, ssh://[user@]host[:port], [user@]host, or file:PATH (captured output);\n",
    );
    s.push_str("on a cluster usually ssh, e.g. -H root@san1 or --server san1=root@san1");
    s
}

/// The `laxmon plugin` command, each plugin's help page with its footer.
fn command() -> clap::Command {
    let mut cmd = PluginCli::command();
    for name in plugin_names() {
        let footer = page_footer(&name);
        cmd = cmd.mut_subcommand(&name, |sub| {
            sub.display_name(format!("laxmon plugin {name}"))
                .after_help(footer)
        });
    }
    cmd
}

/// The plugins' names, in help order.
fn plugin_names() -> Vec<String> {
    PluginCli::command()
        .get_subcommands()
        .map(|sub| sub.get_name().to_string())
        .collect()
}

/// Parses the words after `laxmon plugin` (a leading `plugin` is skipped
/// too). Never exits the process: help and version text come back as
/// [`Invocation::Help`], every clap error as a one-line [`UsageError`].
pub fn parse_args(args: &[String]) -> Result<Invocation, UsageError> {
    let args = match args.first().map(String::as_str) {
        Some("plugin") => &args[1..],
        _ => args,
    };
    let parsed = command()
        .try_get_matches_from(args)
        .and_then(|m| PluginCli::from_arg_matches(&m));
    match parsed {
        Ok(cli) => cli.plugin.into_invocation(),
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            Ok(Invocation::Help(e.render().to_string()))
        }
        Err(e) => {
            let plugin = args
                .first()
                .map(String::as_str)
                .filter(|a| plugin_names().iter().any(|n| n == a));
            Err(usage_error(&e, plugin))
        }
    }
}

/// A context value of a clap error as text (lists joined by ", ").
fn context(e: &clap::Error, kind: ContextKind) -> String {
    match e.get(kind) {
        Some(ContextValue::String(s)) => s.clone(),
        Some(ContextValue::Strings(v)) => v.join(", "),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

/// `--warning` of clap's `--warning <RANGE>`.
fn option_name(arg: &str) -> &str {
    arg.split([' ', '=']).next().unwrap_or(arg)
}

/// ` (did you mean "--vg"?)` for a mistyped long option of `plugin`.
fn option_hint(plugin: &str, typed: &str) -> String {
    let Some(bare) = typed.strip_prefix("--") else {
        return String::new();
    };
    let cmd = PluginCli::command();
    let longs: Vec<&str> = cmd
        .find_subcommand(plugin)
        .into_iter()
        .flat_map(|sub| sub.get_arguments())
        .filter_map(|a| a.get_long())
        .chain(["help", "version"])
        .collect();
    crate::suggest::closest(bare, &longs)
        .map(|long| format!(" (did you mean \"--{long}\"?)"))
        .unwrap_or_default()
}

/// Turns a clap error into one line that names the plugin, option and value.
fn usage_error(e: &clap::Error, plugin: Option<&str>) -> UsageError {
    let arg = context(e, ContextKind::InvalidArg);
    let option = option_name(&arg);
    let value = context(e, ContextKind::InvalidValue);
    let plugins = plugin_names();
    let names = plugins.join(", ");
    let message = match (e.kind(), plugin) {
        (ErrorKind::InvalidSubcommand, _) => {
            let typed = context(e, ContextKind::InvalidSubcommand);
            format!(
                "unknown plugin {typed:?}{}; plugins: {names}",
                crate::suggest::did_you_mean(
                    &typed,
                    &plugins.iter().map(String::as_str).collect::<Vec<_>>()
                )
            )
        }
        (
            ErrorKind::MissingSubcommand | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand,
            _,
        ) => format!("name a plugin: {names} (laxmon plugin help describes them)"),
        (ErrorKind::UnknownArgument, None) => format!(
            "unknown option {arg} before the plugin's name; usage: laxmon plugin NAME [OPTIONS]"
        ),
        (ErrorKind::UnknownArgument, Some(p)) if arg.starts_with('-') => format!(
            "unknown option {arg} for {p}{}; see laxmon plugin {p} --help",
            option_hint(p, option)
        ),
        (ErrorKind::UnknownArgument, Some(p)) => format!(
            "unexpected argument {arg:?} for {p}; options start with --, see laxmon plugin {p} --help"
        ),
        (ErrorKind::InvalidValue, Some(p)) if value.is_empty() => {
            format!("option {option} of {p} needs a value ({arg})")
        }
        (ErrorKind::ValueValidation, _) => {
            let why = std::error::Error::source(e)
                .map(|s| s.to_string())
                .unwrap_or_else(|| "invalid value".into());
            format!("{option} {value:?}: {why}")
        }
        (ErrorKind::TooManyValues, Some(p)) => {
            format!("option {option} of {p} takes no value (got {value:?})")
        }
        (ErrorKind::ArgumentConflict, Some(p)) => {
            let prior = context(e, ContextKind::PriorArg);
            // Alphabetical, whichever came first on the command line.
            let mut both = [option, option_name(&prior)];
            both.sort_unstable();
            format!("{p}: give {} or {}, not both", both[0], both[1])
        }
        (ErrorKind::MissingRequiredArgument, Some(p)) => {
            format!("{p} needs {arg}; see laxmon plugin {p} --help")
        }
        // Anything else: clap's own first line, which names the argument.
        _ => e
            .to_string()
            .lines()
            .next()
            .unwrap_or("bad usage")
            .trim_start_matches("error: ")
            .to_string(),
    };
    UsageError(message)
}

impl Plugin {
    /// The check and its timeout, after the checks clap cannot express.
    fn into_invocation(self) -> Result<Invocation, UsageError> {
        let (check, common) = match self {
            Plugin::Drbd(a) => {
                let servers = if a.servers.is_empty() {
                    vec![("local".to_string(), a.source)]
                } else {
                    a.servers
                };
                let check = StackCheck::Drbd(DrbdCheck {
                    servers,
                    proc_drbd: a.proc_drbd,
                    resources: items(a.resources),
                    oos: Thresholds {
                        warn: a.warning,
                        crit: a.critical,
                    },
                    require_primary: a.require_primary,
                });
                (check, a.common)
            }
            Plugin::IscsiTarget(a) => {
                let check = StackCheck::IscsiTarget(TargetCheck {
                    origin: a.source,
                    tool: a.tool,
                    targets: items(a.targets),
                    vms: items(a.vms),
                    iqn_prefix: a.iqn_prefix,
                    vg: a.vg,
                    suffixes: items(a.suffixes),
                });
                (check, a.common)
            }
            Plugin::IscsiSession(a) => {
                let check = StackCheck::IscsiSession(SessionCheck {
                    origin: a.source,
                    targets: items(a.targets),
                    vms: items(a.vms),
                    iqn_prefix: a.iqn_prefix,
                    luns: a.luns,
                    portal: a.portal,
                    count: Thresholds {
                        warn: a.warning,
                        crit: a.critical,
                    },
                });
                (check, a.common)
            }
            Plugin::LvmVg(a) => {
                let check = StackCheck::LvmVg(VgCheck {
                    origin: a.source,
                    vgs: items(a.vgs),
                    warn: a.warning,
                    crit: a.critical,
                });
                (check, a.common)
            }
            Plugin::LvmVm(a) => {
                let vms = items(a.vms);
                if vms.is_empty() {
                    return Err(UsageError(
                        "lvm-vm needs --vm NAME; see laxmon plugin lvm-vm --help".into(),
                    ));
                }
                let check = StackCheck::LvmVm(VmCheck {
                    origin: a.source,
                    vg: a.vg,
                    vms,
                    suffixes: items(a.suffixes),
                    require_active: a.active,
                });
                (check, a.common)
            }
            Plugin::LvmSnapshot(a) => {
                let check = StackCheck::LvmSnapshot(SnapshotCheck {
                    origin: a.source,
                    vg: a.vg,
                    lvs: items(a.lvs),
                    fill: Thresholds {
                        warn: Some(a.warning),
                        crit: Some(a.critical),
                    },
                });
                (check, a.common)
            }
            Plugin::Domains(a) => {
                let check = StackCheck::Domains(DomainsCheck {
                    servers: a.servers,
                    tool: a.tool,
                    connect: a.connect,
                    expect: items(a.expect),
                    absent_warning: a.absent_warning,
                });
                (check, a.common)
            }
            Plugin::Bonding(a) => {
                let check = StackCheck::Bonding(BondingCheck {
                    origin: a.source,
                    bonds: items(a.bonds),
                    slaves_up: Thresholds {
                        warn: a.warning,
                        crit: a.critical,
                    },
                    link_failures: Thresholds {
                        warn: a.failures_warning,
                        crit: a.failures_critical,
                    },
                    expect_active: a.active,
                });
                (check, a.common)
            }
            Plugin::ClusterIp(a) => {
                let check = StackCheck::ClusterIp(ClusterIpCheck {
                    ip: a.ip,
                    servers: a.servers,
                });
                (check, a.common)
            }
        };
        Ok(Invocation::Run(check, common.timeout))
    }
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
            let out = CheckOutput::unknown(format!("STACK UNKNOWN - {e}"));
            return (format_output(&out), State::Unknown.code());
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
    fn the_parser_is_consistent() {
        command().debug_assert();
        assert_eq!(plugin_names().len(), 9);
    }

    #[test]
    fn every_plugin_has_help_with_examples() {
        for name in &plugin_names() {
            match parse_args(&words(&format!("{name} --help"))).unwrap() {
                Invocation::Help(t) => {
                    assert!(
                        t.contains(&format!("laxmon plugin {name} [OPTIONS]")),
                        "{t}"
                    );
                    assert!(t.contains(&format!("  laxmon plugin {name} ")), "{t}");
                    assert!(t.contains("-t, --timeout <DURATION>"), "{t}");
                }
                other => panic!("{other:?}"),
            }
            assert!(!examples(name).is_empty(), "{name}");
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
        let Invocation::Run(StackCheck::Domains(d), t) = parse_args(&words(
            "domains --expect deb1,win3 --server cs1=ssh://root@cs1 --server cs2 --tool virsh",
        ))
        .unwrap() else {
            panic!()
        };
        assert_eq!(d.expect, vec!["deb1", "win3"]);
        assert_eq!(d.servers[1].0, "cs2");
        assert_eq!(d.tool, DomainTool::Virsh);
        assert_eq!(t, Duration::from_secs(10));
    }

    #[test]
    fn defaults_lists_and_repeats() {
        let Invocation::Run(StackCheck::LvmVm(c), t) =
            parse_args(&words("lvm-vm --vm deb1,,win3, --vm t1 -t 7")).unwrap()
        else {
            panic!()
        };
        assert_eq!(c.vms, ["deb1", "win3", "t1"]);
        assert_eq!(c.vg, "system");
        assert_eq!(c.suffixes, ["root", "swap"]);
        assert_eq!(c.origin, Origin::Local);
        assert_eq!(t, Duration::from_secs(7));
        let Invocation::Run(StackCheck::IscsiSession(s), _) =
            parse_args(&words("iscsi-session -H root@san1 -H file:/x")).unwrap()
        else {
            panic!()
        };
        assert_eq!(s.luns, [0, 1]);
        assert_eq!(s.origin, Origin::Captured("/x".into()), "the last -H wins");
        let Invocation::Run(StackCheck::LvmSnapshot(s), _) =
            parse_args(&words("lvm-snapshot -w 85 -w 96")).unwrap()
        else {
            panic!()
        };
        assert_eq!(s.fill.warn, Some(parse_range("96").unwrap()));
        assert_eq!(s.fill.crit, Some(parse_range("90").unwrap()));
        let Invocation::Run(StackCheck::Bonding(b), _) =
            parse_args(&words("bonding -w ~:5 -c @-1:0")).unwrap()
        else {
            panic!()
        };
        assert_eq!(b.bonds, ["bond0"]);
        assert_eq!(b.slaves_up.crit, Some(parse_range("@-1:0").unwrap()));
        let Invocation::Run(StackCheck::Drbd(d), _) =
            parse_args(&words("drbd -w 1G --resource r0,r1")).unwrap()
        else {
            panic!()
        };
        assert_eq!(d.servers, [("local".to_string(), Origin::Local)]);
        assert_eq!(d.resources, ["r0", "r1"]);
        assert_eq!(d.oos.warn, Some(parse_range("1073741824").unwrap()));
    }

    #[test]
    fn help_and_version_are_not_errors() {
        for args in [
            "",
            "--help",
            "-h",
            "help",
            "help lvm-vg",
            "-V",
            "lvm-vg -V",
            "drbd -h",
        ] {
            let args = words(args);
            match parse_args(&args) {
                Ok(Invocation::Help(t)) => assert!(t.contains("laxmon plugin"), "{args:?}: {t}"),
                Err(e) if args.is_empty() => assert!(e.0.contains("name a plugin"), "{e}"),
                other => panic!("{args:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn usage_errors_name_the_problem() {
        let cases = [
            ("nosuch", "unknown plugin \"nosuch\"; plugins: drbd, "),
            (
                "lvm-gv",
                "unknown plugin \"lvm-gv\" (did you mean \"lvm-vg\"?)",
            ),
            ("lvm-vg --bogus", "unknown option --bogus for lvm-vg; see"),
            (
                "lvm-vg --vgg system",
                "unknown option --vgg for lvm-vg (did you mean \"--vg\"?)",
            ),
            ("lvm-vg --bogus=1", "unknown option --bogus"),
            ("lvm-vg -x", "unknown option -x for lvm-vg"),
            ("-x lvm-vg", "unknown option -x before the plugin's name"),
            ("lvm-vg -w", "option --warning of lvm-vg needs a value"),
            ("lvm-vg --vg", "option --vg of lvm-vg needs a value"),
            (
                "lvm-vg -w abc",
                "--warning \"abc\": threshold \"abc\" is not a size",
            ),
            ("lvm-vg -c 120%", "--critical \"120%\": threshold \"120%\""),
            (
                "drbd -w 1X",
                "--warning \"1X\": threshold \"1X\" is not a Nagios range",
            ),
            ("bonding --failures-critical x", "--failures-critical \"x\""),
            ("lvm-vg -t xyz", "--timeout \"xyz\": invalid duration"),
            (
                "lvm-vg -H file:",
                "--source \"file:\": \"file:\" is not a source",
            ),
            ("iscsi-session --lun 0,x", "--lun \"x\": not a LUN number"),
            (
                "iscsi-target --tool iet3",
                "--tool \"iet3\": use ietd, tgt or lio",
            ),
            (
                "domains --server a --tool kvm",
                "--tool \"kvm\": use xl or virsh",
            ),
            ("lvm-vm --vg system", "lvm-vm needs --vm <NAME[,NAME]>"),
            ("lvm-vm --vm ,", "lvm-vm needs --vm NAME"),
            (
                "domains --expect deb1",
                "domains needs --server <NAME[=SOURCE]>",
            ),
            (
                "cluster-ip --server san1",
                "cluster-ip needs --ip <ADDRESS>",
            ),
            ("drbd stray", "unexpected argument \"stray\" for drbd"),
            (
                "iscsi-target --vm deb1",
                "iscsi-target needs --iqn-prefix <PREFIX>",
            ),
            (
                "drbd --server =local",
                "--server \"=local\": the name before = is empty",
            ),
            ("drbd --server san1= ", "--server \"san1=\""),
            (
                "drbd --server a=local -H local",
                "drbd: give --server or --source, not both",
            ),
            (
                "drbd -H local --server a=local",
                "drbd: give --server or --source, not both",
            ),
            (
                "drbd --proc=yes",
                "option --proc of drbd takes no value (got \"yes\")",
            ),
        ];
        for (args, want) in cases {
            let e = parse_args(&words(args)).unwrap_err();
            assert!(e.0.contains(want), "{args}: {e}");
            assert!(!e.0.contains('\n'), "{args}: one line: {e:?}");
        }
    }
}
