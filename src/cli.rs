//! The command line: clap definitions and dispatch to the subcommands.
//!
//! Every subcommand loads what it needs, calls into the library and turns the
//! outcome into an exit status. Exit statuses: 0 success; `laxmon check` the
//! worst state (0..3, a Nagios plugin itself); 64 bad configuration or usage
//! (EX_USAGE); `laxmon plan` 2 for bad input; 1 other failures.

use crate::alarm::lifecycle::AckTerms;
use crate::alarm::silence::{self, NewSilence, SilenceMatch};
use crate::config::{self, Config};
use crate::logging::{self, LogFormat};
use crate::store::{Store, StoreError};
use crate::{query, render};
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Exit status for a bad configuration or bad usage (sysexits EX_USAGE).
pub const EXIT_CONFIG: u8 = 64;

/// laxmon: monitoring and self-healing alarms for virtualisation clusters.
#[derive(Debug, Parser)]
#[command(
    name = "laxmon",
    version,
    about = "Monitoring and self-healing alarm daemon for Xen/KVM clusters",
    long_about = "laxmon runs checks (TCP port, ping, init scripts, Nagios plugins; locally or \
over SSH), turns their results into soft and hard states, stores everything, opens alarms \
on confirmed problems and runs their actions: restart a service or VM, notify staff, \
reorganise the cluster.",
    after_help = "Examples (from the repository root, on the example configuration):\n  laxmon config check --config config/laxmon.yaml\n  laxmon check --config config/laxmon.yaml --json\n  laxmon run --config config/laxmon.yaml\n\nA real installation keeps its configuration in /etc/laxmon/laxmon.yaml (the default)."
)]
pub struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// Options every subcommand takes.
#[derive(Debug, Args)]
struct GlobalArgs {
    /// Configuration file.
    #[arg(long, short = 'c', global = true, env = "LAXMON_CONFIG", default_value = config::DEFAULT_CONFIG_PATH, value_name = "FILE")]
    config: PathBuf,
    /// Log line format on stderr.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        value_name = "FORMAT"
    )]
    log_format: LogFormat,
    /// Log level or filter (error, warn, info, debug, trace, or e.g. laxmon=debug); overrides RUST_LOG.
    #[arg(long, global = true, value_name = "LEVEL")]
    log_level: Option<String>,
    /// Talk to a running daemon's API (http://HOST:8470) instead of opening the store
    /// (alarms, ack, unack, history, silence).
    #[arg(long, global = true, env = "LAXMON_API", value_name = "URL")]
    api: Option<String>,
    /// With --api: the API token, on the first line of this file.
    #[arg(long, global = true, env = "LAXMON_TOKEN_FILE", value_name = "FILE")]
    token_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon: schedule every check, keep states, store results, raise alarms.
    #[command(
        after_help = "Example:\n  laxmon run --config config/laxmon.yaml --log-format json\n\nStops cleanly on SIGTERM or SIGINT: running checks finish within their timeout.\nSIGHUP reloads the configuration (an invalid one is logged and ignored); states,\nattempts, open alarms and queued notifications carry over."
    )]
    Run,
    /// Run checks once, now, and print their results (a Nagios plugin itself).
    #[command(
        after_help = "Examples:\n  laxmon check --config config/laxmon.yaml\n  laxmon check --config config/laxmon.yaml admin-ssh-port --json\n\nExit status is the worst state: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; 64 for a bad configuration."
    )]
    Check {
        /// Checks to run (all when none is named).
        #[arg(value_name = "NAME")]
        names: Vec<String>,
        /// Print one JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Work with the configuration file.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Run a cluster-stack check as a Nagios plugin (drbd, iscsi-target, iscsi-session,
    /// lvm-vg, lvm-vm, lvm-snapshot, domains, bonding, cluster-ip).
    #[command(
        after_help = "Examples (file: reads a captured output; on a cluster: -H root@san1):\n  laxmon plugin lvm-vg -H file:tests/fixtures/stack/lvm/vgs-healthy.txt -w 20% -c 10%\n  laxmon plugin bonding -H file:tests/fixtures/stack/bonding/8023ad-healthy.txt\n  laxmon plugin drbd --help\n\nPrints one Nagios status line with perfdata and exits 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN,\nso Nagios and Icinga can run it too."
    )]
    Plugin {
        /// The plugin's name and its options.
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "NAME [OPTIONS]"
        )]
        args: Vec<String>,
    },
    /// Plan where VMs run after cluster servers fail (offline; nothing is changed).
    #[command(
        after_help = "Examples (the demo cluster of checks/demo-cluster.yaml, cs2 down):\n  laxmon plan --cluster config/demo-cluster-plan.yaml\n  laxmon plan --cluster config/demo-cluster-plan.yaml --fail cs3 --json\n\nThe file lists hosts (name, memory_mb, reserve_mb, state) and VMs (name, host, memory_mb,\npriority, allowed_hosts, anti_affinity). Exit 0 when a plan was made, 2 for bad input."
    )]
    Plan {
        /// Cluster description (YAML).
        #[arg(long, value_name = "FILE")]
        cluster: PathBuf,
        /// Mark a host as failed (repeatable), in addition to hosts whose state is `down`.
        #[arg(long = "fail", value_name = "HOST")]
        fail: Vec<String>,
        /// Print exactly one JSON object: actions, placement, down, reasons.
        #[arg(long)]
        json: bool,
    },
    /// Reorganise a cluster, start, stop or migrate a VM by hand, or look at where its VMs run.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Show a check's stored results.
    #[command(
        after_help = "Examples:\n  laxmon history --config config/laxmon.yaml admin-load\n  laxmon history --config config/laxmon.yaml admin-load --since 24h --json"
    )]
    History {
        /// The check.
        #[arg(value_name = "CHECK")]
        check: String,
        /// How far back (a duration: 30m, 1h, 7d).
        #[arg(long, default_value = "1h", value_name = "DURATION")]
        since: String,
        /// Print one JSON array.
        #[arg(long)]
        json: bool,
    },
    /// List alarms (newest first).
    #[command(
        after_help = "Examples:\n  laxmon alarms --config config/laxmon.yaml --open\n  laxmon alarms --config config/laxmon.yaml --json"
    )]
    Alarms {
        /// Only alarms that are still open.
        #[arg(long)]
        open: bool,
        /// Print one JSON array, each alarm with its full record.
        #[arg(long)]
        json: bool,
    },
    /// Acknowledge an alarm: stops its repeats and escalation (the daemon applies it within seconds).
    #[command(
        after_help = "Examples:\n  laxmon ack --config config/laxmon.yaml 17 --comment \"disk ordered, replacing tonight\"\n  laxmon ack --config config/laxmon.yaml 17 --comment \"looking into it\" --expires 2h --not-sticky\n\nAn acknowledgement is sticky: it holds until the check recovers. With --not-sticky it ends\nwhen the check changes to another problem state (WARNING to CRITICAL, say), with --expires\nwhen the time is up; then repeats and escalation resume. Works with or without a running\ndaemon: it is stored and the daemon applies it."
    )]
    Ack {
        /// The alarm's number (see `laxmon alarms`).
        #[arg(value_name = "ID")]
        id: u64,
        /// Why, for the others on the team.
        #[arg(long, default_value = "", value_name = "TEXT")]
        comment: String,
        /// Who acknowledges (default: $SUDO_USER, else the account name of the calling user).
        #[arg(long, visible_alias = "author", value_name = "NAME")]
        by: Option<String>,
        /// The acknowledgement ends after this long (30m, 8h, 2d); default: at recovery.
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
        /// End the acknowledgement when the check changes to another problem state.
        #[arg(long)]
        not_sticky: bool,
    },
    /// Remove an alarm's acknowledgement: its repeats and escalation resume.
    #[command(
        after_help = "Example:\n  laxmon unack --config config/laxmon.yaml 17\n\nWorks with or without a running daemon: it is stored and the daemon applies it."
    )]
    Unack {
        /// The alarm's number (see `laxmon alarms`).
        #[arg(value_name = "ID")]
        id: u64,
        /// Who removes it (default: $SUDO_USER, else the account name of the calling user).
        #[arg(long, visible_alias = "author", value_name = "NAME")]
        by: Option<String>,
    },
    /// Silence the alarms of some checks for a while (maintenance declared at run time).
    #[command(subcommand)]
    Silence(SilenceCommand),
    /// Work with the database.
    #[command(subcommand)]
    Db(DbCommand),
    /// Drive the simulated cluster of the demo (the `sim` driver's state file).
    #[command(subcommand)]
    Sim(SimCommand),
    /// Make API tokens: print the hash that goes into `http.tokens`.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Print the hash of a token read from standard input (or of a new random token).
    #[command(
        after_help = "Example:\n  laxmon token hash --generate\n\nTo hash a token you already have: printf %s \"$TOKEN\" | laxmon token hash\n\nPut the printed hash into the configuration as\n  http:\n    tokens:\n      - {name: alice, role: operate, hash: \"sha256:...\"}\nand give the token itself to its user (`Authorization: Bearer TOKEN`)."
    )]
    Hash {
        /// Make a new random token and print it with its hash.
        #[arg(long)]
        generate: bool,
    },
}

/// `laxmon silence add`'s options.
#[derive(Debug, Args)]
struct SilenceAdd {
    /// A host entry to match (name or glob; repeatable).
    #[arg(long = "host", value_name = "GLOB")]
    hosts: Vec<String>,
    /// A check to match (name or glob; repeatable).
    #[arg(long = "check", value_name = "GLOB")]
    checks: Vec<String>,
    /// A tag of the check or its host to match (repeatable).
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// Why (required).
    #[arg(long, value_name = "TEXT")]
    comment: String,
    /// Who sets it (default: $SUDO_USER, else the account name of the calling user).
    #[arg(long, visible_alias = "author", value_name = "NAME")]
    by: Option<String>,
    /// When it starts: RFC 3339 (2026-12-01T22:00:00Z) or a duration from now (30m); default now.
    #[arg(long, value_name = "TIME")]
    start: Option<String>,
    /// When it ends: RFC 3339 or a duration from now.
    #[arg(
        long,
        value_name = "TIME",
        required_unless_present = "duration",
        conflicts_with = "duration"
    )]
    end: Option<String>,
    /// How long it lasts from its start (30m, 2h, 1d).
    #[arg(long, value_name = "DURATION")]
    duration: Option<String>,
    /// Show which configured checks it would cover; store nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the silence as one JSON object.
    #[arg(long)]
    json: bool,
}

impl SilenceAdd {
    /// The silence these options ask for, set by `by`.
    fn silence(self, by: String, now: DateTime<Utc>) -> Result<NewSilence, String> {
        new_silence(
            SilenceMatch {
                hosts: self.hosts,
                checks: self.checks,
                tags: self.tags,
            },
            self.comment,
            by,
            (self.start, self.end, self.duration),
            now,
        )
    }
}

#[derive(Debug, Subcommand)]
enum SilenceCommand {
    /// Silence matching checks from now (or --start) until --end or for --duration.
    #[command(
        after_help = "Examples:\n  laxmon silence add --config config/laxmon.yaml --check 'admin-*' --duration 2h --comment patch\n  laxmon silence add --config config/laxmon.yaml --tag demo --duration 8h --comment move --dry-run\n\nTimes are RFC 3339 (--end 2026-12-01T22:00:00Z) or durations from now (--start 1h).\nEvery given --host, --check and --tag must match (globs; any of several of one kind).\nWhile a silence lasts, the alarms of the checks it covers run no actions and send no\nnotifications, as in a maintenance window; the suppression is recorded, and what was held\nback happens when the silence ends. A running daemon takes it up within seconds."
    )]
    Add(SilenceAdd),
    /// List the silences not over yet (with --all: every one ever set).
    #[command(
        after_help = "Examples:\n  laxmon silence list --config config/laxmon.yaml\n  laxmon silence list --config config/laxmon.yaml --all --json"
    )]
    List {
        /// Also silences that ended or were removed.
        #[arg(long)]
        all: bool,
        /// Print one JSON array.
        #[arg(long)]
        json: bool,
    },
    /// End a silence now: what it held back happens.
    #[command(after_help = "Example:\n  laxmon silence remove --config config/laxmon.yaml 1")]
    Remove {
        /// The silence's number (see `laxmon silence list`).
        #[arg(value_name = "ID")]
        id: u64,
        /// Who removes it (default: $SUDO_USER, else the account name of the calling user).
        #[arg(long, visible_alias = "author", value_name = "NAME")]
        by: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum DbCommand {
    /// Apply pending schema migrations (the daemon does this at start-up too).
    #[command(after_help = "Example:\n  laxmon db migrate --config config/laxmon.yaml")]
    Migrate,
    /// Rows per table, database size, oldest result.
    #[command(after_help = "Example:\n  laxmon db stats --config config/laxmon.yaml --json")]
    Stats {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Fence a failed server and bring its VMs back on the others (what the clusterreorg action does).
    #[command(
        after_help = "Examples:\n  laxmon cluster reorg --config config/laxmon.yaml --cluster demo --failed cs2 --dry-run\n  laxmon cluster reorg --config config/laxmon.yaml --cluster demo --failed cs2\n\nRefuses unless the server's fence command succeeds, or (allow_unfenced) its alive check\nsays CRITICAL now. Rerunning after an interruption resumes the stored plan.\nExit status: 0 done, 1 refused or a step failed (see the report), 64 bad configuration."
    )]
    Reorg {
        /// The cluster's name.
        #[arg(long, value_name = "NAME")]
        cluster: String,
        /// The server that failed.
        #[arg(long, value_name = "SERVER")]
        failed: String,
        /// Plan and report only; nothing is fenced, stopped, moved or started.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Restart the VMs a reorganisation stopped, once their server is back (restart_on_return).
    #[command(
        after_help = "Example:\n  laxmon cluster restore --config config/laxmon.yaml --cluster demo --server cs2"
    )]
    Restore {
        /// The cluster's name.
        #[arg(long, value_name = "NAME")]
        cluster: String,
        /// The server that returned.
        #[arg(long, value_name = "SERVER")]
        server: String,
        /// Plan and report only.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Start a VM by hand, on a given server or on the one with the most free memory where it fits.
    #[command(
        after_help = "Examples (stop the test box, see where it would go, start it on cs3):\n  laxmon cluster stop --config config/laxmon.yaml --cluster demo --vm debtest\n  laxmon cluster start --config config/laxmon.yaml --cluster demo --vm debtest --dry-run\n  laxmon cluster start --config config/laxmon.yaml --cluster demo --vm debtest --server cs3\n\nEvery server is asked first: refused while the VM runs anywhere, while a server that\nis neither fenced nor confirmed dead does not answer, or when the server lacks memory.\nNever stops or moves another VM to make room. Refused while a reorganisation or another\noperation of the cluster runs. Journalled like a reorganisation's steps.\nExit status: 0 done (or nothing to do), 1 refused or failed, 64 bad configuration."
    )]
    Start {
        /// The cluster's name.
        #[arg(long, value_name = "NAME")]
        cluster: String,
        /// The VM.
        #[arg(long, value_name = "NAME")]
        vm: String,
        /// Where to start it (default: the allowed server with the most free memory where it fits).
        #[arg(long, value_name = "SERVER")]
        server: Option<String>,
        /// Decide and report only; nothing is started.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Shut a VM down by hand where it runs (destroyed when it does not stop within shutdown_timeout).
    #[command(
        after_help = "Examples:\n  laxmon cluster stop --config config/laxmon.yaml --cluster demo --vm debtest --dry-run\n  laxmon cluster stop --config config/laxmon.yaml --cluster demo --vm debtest\n\nA VM that does not run is nothing to do (exit 0); refused when it may run on a server\nthat does not answer, or while a reorganisation or another operation of the cluster runs.\nExit status: 0 done (or nothing to do), 1 refused or failed, 64 bad configuration."
    )]
    Stop {
        /// The cluster's name.
        #[arg(long, value_name = "NAME")]
        cluster: String,
        /// The VM.
        #[arg(long, value_name = "NAME")]
        vm: String,
        /// Decide and report only; nothing is stopped.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Move a running VM to another server by hand (live migration, or --cold: stop, then start).
    #[command(
        after_help = "Examples:\n  laxmon cluster migrate --config config/laxmon.yaml --cluster demo --vm debtest --to cs1 --dry-run\n  laxmon cluster migrate --config config/laxmon.yaml --cluster demo --vm debtest --to cs1\n  laxmon cluster migrate --config config/laxmon.yaml --cluster demo --vm debtest --to cs3 --cold\n\nRefused when the server it runs on does not answer, when the target lacks memory, is not\nin the VM's allowed_hosts or runs a VM of its anti-affinity group, or while a\nreorganisation or another operation of the cluster runs. A cold migration's start is\nchecked like any start.\nExit status: 0 done (or nothing to do), 1 refused or failed, 64 bad configuration."
    )]
    Migrate {
        /// The cluster's name.
        #[arg(long, value_name = "NAME")]
        cluster: String,
        /// The VM.
        #[arg(long, value_name = "NAME")]
        vm: String,
        /// The server it is to run on.
        #[arg(long, value_name = "SERVER")]
        to: String,
        /// Stop it, then start it on the target, instead of a live migration.
        #[arg(long)]
        cold: bool,
        /// Decide and report only; nothing is moved.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Ask every server which VMs run there (live placement).
    #[command(
        after_help = "Example:\n  laxmon cluster status --config config/laxmon.yaml --cluster demo\n\nExit status: 0 when every server answered, 1 otherwise."
    )]
    Status {
        /// The cluster's name.
        #[arg(long, value_name = "NAME")]
        cluster: String,
        /// Print one JSON array.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum SimCommand {
    /// Crash a simulated server (its VMs die), or with --partition cut it off while its VMs run on.
    #[command(after_help = "Example:\n  laxmon sim fail cs2 --state var/sim-cluster.json")]
    Fail {
        /// The server.
        server: String,
        /// The state file.
        #[arg(long, value_name = "FILE")]
        state: PathBuf,
        /// Unreachable, but its VMs keep running (what fencing is for).
        #[arg(long)]
        partition: bool,
    },
    /// Bring a simulated server back up.
    #[command(after_help = "Example:\n  laxmon sim revive cs2 --state var/sim-cluster.json")]
    Revive {
        /// The server.
        server: String,
        /// The state file.
        #[arg(long, value_name = "FILE")]
        state: PathBuf,
    },
    /// Nagios plugin: exit 0 when the simulated server is up, 2 when it is not.
    #[command(after_help = "Example:\n  laxmon sim alive cs1 --state var/sim-cluster.json")]
    Alive {
        /// The server.
        server: String,
        /// The state file.
        #[arg(long, value_name = "FILE")]
        state: PathBuf,
    },
    /// Fence (power off) a simulated server: the sim's fence command.
    #[command(after_help = "Example:\n  laxmon sim fence cs2 --state var/sim-cluster.json")]
    Fence {
        /// The server.
        server: String,
        /// The state file.
        #[arg(long, value_name = "FILE")]
        state: PathBuf,
    },
    /// Print the simulated cluster: servers, where VMs run, (with --json) the history.
    #[command(after_help = "Example:\n  laxmon sim show --state var/sim-cluster.json")]
    Show {
        /// The state file.
        #[arg(long, value_name = "FILE")]
        state: PathBuf,
        /// The whole state as JSON, history included.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Load and validate the configuration; print every error as FILE:LINE:COLUMN: message.
    #[command(
        after_help = "Example:\n  laxmon config check --config config/laxmon.yaml\n\nExit status: 0 when valid, 64 with every error on stderr."
    )]
    Check,
}

/// Parses the command line, runs the subcommand and returns the exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = logging::init(cli.global.log_format, cli.global.log_level.as_deref()) {
        eprintln!("laxmon: {e}");
        return ExitCode::from(EXIT_CONFIG);
    }
    if let Some(url) = &cli.global.api {
        let code = over_api(url, cli.global.token_file.as_deref(), cli.command);
        return ExitCode::from(code);
    }
    let code = match cli.command {
        Command::Config(ConfigCommand::Check) => config_check(&cli.global.config),
        Command::Check { names, json } => check(&cli.global.config, &names, json),
        Command::Run => run(&cli.global.config),
        Command::Plugin { args } => crate::stack::cli::plugin_main(args).clamp(0, 255) as u8,
        Command::Plan {
            cluster,
            fail,
            json,
        } => crate::cluster::run_plan_command(&cluster, &fail, json).clamp(0, 255) as u8,
        Command::Cluster(c) => cluster(&cli.global.config, c),
        Command::History { check, since, json } => {
            history(&cli.global.config, &check, &since, json)
        }
        Command::Alarms { open, json } => store_command(&cli.global.config, |cfg| async move {
            let store = Store::open(&cfg.storage).await?;
            let rows = query::alarms(&store, open).await?;
            rendered(
                render::render(&rows[..], json, render::alarms_text),
                "alarms",
            )
        }),
        Command::Ack {
            id,
            comment,
            by,
            expires,
            not_sticky,
        } => {
            let expires = match expires.as_deref().map(in_future).transpose() {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("laxmon: --expires: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            let terms = AckTerms {
                by: by.unwrap_or_else(caller_name),
                comment,
                expires,
                sticky: !not_sticky,
            };
            store_command(&cli.global.config, |cfg| async move {
                crate::store::ack_command(&cfg.storage, id, &terms).await
            })
        }
        Command::Unack { id, by } => {
            let by = by.unwrap_or_else(caller_name);
            store_command(&cli.global.config, |cfg| async move {
                crate::store::unack_command(&cfg.storage, id, &by).await
            })
        }
        Command::Silence(c) => silence(&cli.global.config, c),
        Command::Db(DbCommand::Migrate) => store_command(&cli.global.config, |cfg| async move {
            crate::store::migrate_command(&cfg.storage).await
        }),
        Command::Db(DbCommand::Stats { json }) => {
            store_command(&cli.global.config, |cfg| async move {
                let store = Store::open(&cfg.storage).await?;
                let stats = query::db_stats(&store).await?;
                rendered(render::render(&stats, json, render::stats_text), "stats")
            })
        }
        Command::Sim(c) => sim(c),
        Command::Token(TokenCommand::Hash { generate }) => token_hash(generate),
    };
    ExitCode::from(code)
}

/// Loads the configuration or prints every error and returns the exit status.
fn load_config(path: &Path) -> Result<Config, u8> {
    config::load(path).map_err(|errors| {
        eprintln!("{errors}");
        EXIT_CONFIG
    })
}

fn config_check(path: &Path) -> u8 {
    match load_config(path) {
        Ok(cfg) => {
            println!(
                "{}: OK ({} hosts, {} checks, {} files)",
                path.display(),
                cfg.hosts.len(),
                cfg.checks.len(),
                cfg.files.len()
            );
            0
        }
        Err(code) => code,
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, u8> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("laxmon: cannot start the async runtime: {e}");
            1
        })
}

fn check(path: &Path, names: &[String], json: bool) -> u8 {
    let cfg = match load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    for n in names {
        if cfg.check(n).is_none() {
            eprintln!("{}: no check named {n:?}", path.display());
            return EXIT_CONFIG;
        }
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(crate::daemon::check_once(&cfg, names, json))
}

fn run(path: &Path) -> u8 {
    crate::metrics::mark_start();
    crate::systemd::init();
    let mut cfg = match load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let shared = crate::daemon::Shared::new(&cfg.path);
    let _api = rt.block_on(async { crate::api::Server::start(&cfg, &shared).await });
    let mut api = match _api {
        Ok(server) => server,
        Err(e) => {
            eprintln!("laxmon: {e}");
            return 1;
        }
    };
    loop {
        match rt.block_on(crate::daemon::run(cfg, std::sync::Arc::clone(&shared))) {
            Ok(crate::daemon::Stop::Terminated) => return 0,
            // Everything (states, alarms, outbox, spool) was handed to the
            // store on the way out; the next run resumes it.
            Ok(crate::daemon::Stop::Reload(new)) => {
                cfg = *new;
                // A changed `http:` section takes effect with the reload.
                if let Err(e) = rt.block_on(api.reconfigure(&cfg, &shared)) {
                    tracing::error!(error = %e, "operations API not restarted; it keeps its old settings");
                }
            }
            Err(e) => {
                eprintln!("laxmon: {e:#}");
                return 1;
            }
        }
    }
}

/// The commands that work over a daemon's API (`--api URL`).
fn over_api(url: &str, token_file: Option<&Path>, command: Command) -> u8 {
    let client = match crate::api::client::ApiClient::new(url, token_file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("laxmon: {e}");
            return EXIT_CONFIG;
        }
    };
    let ignored_by = |by: &Option<String>| {
        if by.is_some() {
            eprintln!(
                "laxmon: --by is ignored with --api: the token's name is recorded as the author"
            );
        }
    };
    match command {
        Command::Alarms { open, json } => printed(crate::remote::alarms(&client, open, json)),
        Command::Ack {
            id,
            comment,
            by,
            expires,
            not_sticky,
        } => {
            ignored_by(&by);
            printed(crate::remote::ack(
                &client,
                id,
                &comment,
                expires.as_deref(),
                !not_sticky,
            ))
        }
        Command::Unack { id, by } => {
            ignored_by(&by);
            printed(crate::remote::unack(&client, id))
        }
        Command::History { check, since, json } => match config::duration::parse(&since) {
            Ok(since) => printed(crate::remote::history(&client, &check, since, json)),
            Err(e) => {
                eprintln!("laxmon: --since: {e}");
                EXIT_CONFIG
            }
        },
        Command::Silence(SilenceCommand::List { all, json }) => {
            printed(crate::remote::silences(&client, all, json))
        }
        Command::Silence(SilenceCommand::Remove { id, by }) => {
            ignored_by(&by);
            printed(crate::remote::remove_silence(&client, id))
        }
        Command::Silence(SilenceCommand::Add(add)) => {
            ignored_by(&add.by);
            let (dry_run, json) = (add.dry_run, add.json);
            let new = match add.silence(String::new(), Utc::now()) {
                Ok(new) => new,
                Err(e) => {
                    eprintln!("laxmon: {e}");
                    return EXIT_CONFIG;
                }
            };
            printed(crate::remote::add_silence(&client, &new, dry_run, json))
        }
        _ => {
            eprintln!("laxmon: --api works with alarms, ack, unack, history and silence; this command runs on the admin server itself");
            EXIT_CONFIG
        }
    }
}

/// `laxmon token hash`: the hash of a token from stdin, or a new token and its hash.
fn token_hash(generate: bool) -> u8 {
    use crate::api::auth::{format_hash, hash_token, new_token};
    if generate {
        return match new_token() {
            Ok(token) => {
                println!("token: {token}");
                println!("hash:  {}", format_hash(&hash_token(&token)));
                0
            }
            Err(e) => {
                eprintln!("laxmon: no randomness from the operating system: {e}");
                1
            }
        };
    }
    let mut token = String::new();
    if let Err(e) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut token) {
        eprintln!("laxmon: cannot read the token from standard input: {e}");
        return 1;
    }
    let token = token.trim();
    if token.is_empty() {
        eprintln!("laxmon: no token on standard input (pipe one in, or use --generate)");
        return EXIT_CONFIG;
    }
    println!("{}", format_hash(&hash_token(token)));
    0
}

/// Loads the config, runs a store command and prints its text; exit 1 on a store error.
fn store_command<F, Fut>(path: &Path, command: F) -> u8
where
    F: FnOnce(Config) -> Fut,
    Fut: std::future::Future<Output = Result<String, crate::store::StoreError>>,
{
    match load_config(path) {
        Ok(cfg) => printed(command(cfg)),
        Err(code) => code,
    }
}

/// Runs `work` and prints its text; exit 1 (and the error) when it fails.
fn printed<E: std::fmt::Display>(work: impl std::future::Future<Output = Result<String, E>>) -> u8 {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match rt.block_on(work) {
        Ok(text) => {
            if !text.is_empty() {
                println!("{}", text.trim_end());
            }
            0
        }
        Err(e) => {
            eprintln!("laxmon: {e}");
            1
        }
    }
}

fn history(path: &Path, check: &str, since: &str, json: bool) -> u8 {
    let since = match config::duration::parse(since) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("laxmon: --since: {e}");
            return EXIT_CONFIG;
        }
    };
    let check = check.to_string();
    store_command(path, |cfg| async move {
        if cfg.check(&check).is_none() {
            tracing::warn!(check = %check, "no such check in the configuration; showing what is stored");
        }
        let store = Store::open(&cfg.storage).await?;
        let rows = query::history(&store, &check, since).await?;
        rendered(
            render::render(&rows[..], json, |r| render::history_text(&check, r)),
            "history",
        )
    })
}

/// `laxmon silence add|list|remove`, through the store (a running daemon
/// takes the change up on its next poll).
fn silence(path: &Path, command: SilenceCommand) -> u8 {
    match command {
        SilenceCommand::Add(add) => {
            let now = Utc::now();
            let (dry_run, json) = (add.dry_run, add.json);
            let by = add.by.clone().unwrap_or_else(caller_name);
            let new = match add.silence(by, now) {
                Ok(new) => new,
                Err(e) => {
                    eprintln!("laxmon: {e}");
                    return EXIT_CONFIG;
                }
            };
            store_command(path, |cfg| async move {
                let covered =
                    silence::preview(&new.matchers, &cfg).map_err(StoreError::InvalidSilence)?;
                if dry_run {
                    return Ok(render::silence_preview_text(&new, &covered));
                }
                let store = Store::open(&cfg.storage).await?;
                let added = store.add_silence(&new, now).await?;
                rendered(
                    render::render(&added, json, |s| render::silence_added_text(s, &covered)),
                    "the silence",
                )
            })
        }
        SilenceCommand::List { all, json } => store_command(path, |cfg| async move {
            let store = Store::open(&cfg.storage).await?;
            let rows = query::silences(&store, all).await?;
            rendered(
                render::render(&rows[..], json, render::silences_text),
                "silences",
            )
        }),
        SilenceCommand::Remove { id, by } => {
            let by = by.unwrap_or_else(caller_name);
            store_command(path, |cfg| async move {
                let store = Store::open(&cfg.storage).await?;
                let removed = store.remove_silence(id, &by, Utc::now()).await?;
                Ok(format!(
                    "silence {id} ({}) removed by {by}; what it held back happens now\n",
                    removed.matchers
                ))
            })
        }
    }
}

/// The silence `laxmon silence add` asks for, validated at `now`:
/// `(start, end, duration)` as given on the command line.
fn new_silence(
    matchers: SilenceMatch,
    comment: String,
    by: String,
    (start, end, duration): (Option<String>, Option<String>, Option<String>),
    now: DateTime<Utc>,
) -> Result<NewSilence, String> {
    let starts = start
        .as_deref()
        .map(|t| when(t, now).map_err(|e| format!("--start: {e}")))
        .transpose()?;
    let ends = match (end, duration) {
        (Some(end), _) => when(&end, now).map_err(|e| format!("--end: {e}"))?,
        (None, Some(d)) => {
            let d = config::duration::parse(&d).map_err(|e| format!("--duration: {e}"))?;
            after(starts.unwrap_or(now), d).map_err(|e| format!("--duration: {e}"))?
        }
        (None, None) => return Err("say when the silence ends: --end TIME or --duration D".into()),
    };
    let new = NewSilence {
        matchers,
        comment,
        by,
        starts,
        ends,
    };
    new.validate(now).map_err(|e| e.to_string())?;
    Ok(new)
}

/// A time on the command line: RFC 3339, or a duration from `now`.
fn when(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let d = config::duration::parse(text).map_err(|e| {
        format!("{text:?} is neither a time (2026-12-01T22:00:00Z) nor a duration from now: {e}")
    })?;
    after(now, d)
}

/// `now` plus a duration from the command line, which must be positive.
fn in_future(text: &str) -> Result<DateTime<Utc>, String> {
    let d = config::duration::parse(text)?;
    if d.is_zero() {
        return Err(format!("{text:?} is no time at all"));
    }
    after(Utc::now(), d)
}

fn after(t: DateTime<Utc>, d: std::time::Duration) -> Result<DateTime<Utc>, String> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .ok_or_else(|| format!("{} s from {t} is out of range", d.as_secs()))
}

/// A rendering's text, or its JSON encoding failure as a store command error.
fn rendered(text: Result<String, serde_json::Error>, what: &str) -> Result<String, StoreError> {
    text.map_err(|source| StoreError::Json {
        what: format!("encoding {what}"),
        source,
    })
}

/// Who runs this command, for an acknowledgement: the user behind `sudo`
/// (`$SUDO_USER`), else the account name of the real uid from the password
/// database (environment variables such as `$USER` are not set under
/// `sudo -i`, systemd or cron), else `$LOGNAME`/`$USER`, else `uid N`.
fn caller_name() -> String {
    let non_empty = |v: String| (!v.is_empty()).then_some(v);
    // SAFETY: getuid(2) cannot fail and touches no memory of ours.
    let uid = unsafe { libc::getuid() };
    std::env::var("SUDO_USER")
        .ok()
        .and_then(non_empty)
        .or_else(|| account_name(uid))
        .or_else(|| std::env::var("LOGNAME").ok().and_then(non_empty))
        .or_else(|| std::env::var("USER").ok().and_then(non_empty))
        .unwrap_or_else(|| format!("uid {uid}"))
}

/// The account name of `uid` (getpwuid_r), `None` when it has no entry.
fn account_name(uid: libc::uid_t) -> Option<String> {
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: `passwd` is plain old data; getpwuid_r fills it with
        // pointers into `buf`, which outlives every use of them below.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        let rc = unsafe {
            libc::getpwuid_r(
                uid,
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut found,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 || found.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        // SAFETY: pw_name is a NUL-terminated string inside `buf`.
        let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
        return Some(name.to_string_lossy().into_owned()).filter(|n| !n.is_empty());
    }
}

fn cluster(path: &Path, command: ClusterCommand) -> u8 {
    use crate::cluster::{commands, VmOp};
    let cfg = match load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match command {
        ClusterCommand::Reorg {
            cluster,
            failed,
            dry_run,
            json,
        } => rt.block_on(commands::reorg(&cfg, &cluster, &failed, dry_run, json)),
        ClusterCommand::Restore {
            cluster,
            server,
            dry_run,
            json,
        } => rt.block_on(commands::restore(&cfg, &cluster, &server, dry_run, json)),
        ClusterCommand::Status { cluster, json } => {
            rt.block_on(commands::status(&cfg, &cluster, json))
        }
        ClusterCommand::Start {
            cluster,
            vm,
            server,
            dry_run,
            json,
        } => {
            let op = VmOp::Start { vm, server };
            rt.block_on(commands::operate(
                &cfg,
                &cluster,
                &op,
                dry_run,
                json,
                caller_name(),
            ))
        }
        ClusterCommand::Stop {
            cluster,
            vm,
            dry_run,
            json,
        } => {
            let op = VmOp::Stop { vm };
            rt.block_on(commands::operate(
                &cfg,
                &cluster,
                &op,
                dry_run,
                json,
                caller_name(),
            ))
        }
        ClusterCommand::Migrate {
            cluster,
            vm,
            to,
            cold,
            dry_run,
            json,
        } => {
            let op = VmOp::Migrate { vm, to, cold };
            rt.block_on(commands::operate(
                &cfg,
                &cluster,
                &op,
                dry_run,
                json,
                caller_name(),
            ))
        }
    }
}

fn sim(command: SimCommand) -> u8 {
    use crate::cluster::commands::{self, SimOp};
    match command {
        SimCommand::Fail {
            server,
            state,
            partition,
        } => commands::sim(SimOp::Fail { partition }, &server, &state),
        SimCommand::Revive { server, state } => commands::sim(SimOp::Revive, &server, &state),
        SimCommand::Alive { server, state } => commands::sim(SimOp::Alive, &server, &state),
        SimCommand::Fence { server, state } => commands::sim(SimOp::Fence, &server, &state),
        SimCommand::Show { state, json } => commands::sim_show(&state, json),
    }
}

#[cfg(test)]
mod tests {
    use super::account_name;

    #[test]
    fn account_names_from_the_password_database() {
        assert_eq!(account_name(0).as_deref(), Some("root"));
        assert_eq!(account_name(4_000_000_000), None);
    }
}
