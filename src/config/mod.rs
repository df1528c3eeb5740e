//! laxmon's configuration: YAML in, a typed and validated [`Config`] out.
//!
//! `yaml.rs` turns text into a positioned node tree, `decode.rs` turns the
//! tree into the types below and collects every error with its
//! `FILE:LINE:COLUMN`. The contract for hosts and checks is
//! `docs/checks.md`. Nothing here runs a check or opens a socket:
//! a loaded `Config` is plain data.

pub(crate) mod alarms;
pub(crate) mod clusters;
mod decode;
pub(crate) mod duration;
pub mod http;
mod read;
pub(crate) mod yaml;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use clusters::{ClusterConfig, CommandTemplates, DriverConfig, ServerConfig, VmConfig};
pub use decode::load;

/// The default configuration file when neither `--config` nor `LAXMON_CONFIG` is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/laxmon/laxmon.yaml";

/// The host name that means "the admin server itself".
pub const LOCAL_HOST: &str = "local";

/// A loaded, validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The main file it was loaded from.
    pub path: PathBuf,
    /// Every file that contributed (the main file first, then includes in order).
    pub files: Vec<PathBuf>,
    /// Monitored hosts, in file order.
    pub hosts: Vec<Host>,
    /// Checks, in file order.
    pub checks: Vec<Check>,
    /// Where results, state changes and alarms are stored.
    pub storage: StorageConfig,
    /// Engine limits and SSH settings.
    pub engine: Engine,
    /// Contacts, notifiers, rules and maintenance windows.
    pub alarms: alarms::AlarmConfig,
    /// Clusters whose VMs laxmon reorganises when a server fails.
    pub clusters: Vec<ClusterConfig>,
    /// The operations API (`http:`), if turned on.
    pub http: Option<http::HttpConfig>,
}

impl Config {
    /// The host entry of this name, if any (`local` has none).
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// The cluster of this name, if any.
    pub fn cluster(&self, name: &str) -> Option<&ClusterConfig> {
        self.clusters.iter().find(|c| c.name == name)
    }

    /// The check of this name, if any.
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// The address a check on `host` connects to: the host entry's address,
    /// `127.0.0.1` for [`LOCAL_HOST`], the name itself for an unknown host.
    pub fn address_of(&self, host: &str) -> String {
        connect_address(host, self.host(host).map(|h| h.address.as_str()))
    }

    /// Loads a file and validates it; see [`load`].
    pub fn from_file(path: &Path) -> Result<Config, ConfigErrors> {
        load(path)
    }
}

/// The address checks on `host` connect to, given its entry's `address`:
/// `127.0.0.1` for [`LOCAL_HOST`], the entry's address, else the name itself.
pub fn connect_address(host: &str, entry_address: Option<&str>) -> String {
    if host == LOCAL_HOST {
        return "127.0.0.1".to_string();
    }
    entry_address.unwrap_or(host).to_string()
}

/// A host laxmon watches.
#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    /// Unique name, `[A-Za-z0-9_.-]+`.
    pub name: String,
    /// IP address or DNS name; defaults to the name.
    pub address: String,
    /// SSH destination for remote init/plugin checks (`user@host` or `ssh://user@host:port`).
    pub ssh: Option<String>,
    /// Free-form tags.
    pub tags: Vec<String>,
    /// The check that says whether the host is reachable at all (e.g. its ping).
    /// While it is HARD CRITICAL, the host's other checks are unreachable.
    pub host_check: Option<String>,
}

/// One configured check.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// Unique name.
    pub name: String,
    /// Host entry name, or [`LOCAL_HOST`].
    pub host: String,
    /// Time between runs while OK or HARD.
    pub interval: Duration,
    /// Time between runs while a problem is not yet confirmed (SOFT).
    pub retry_interval: Duration,
    /// Attempts before a problem is HARD.
    pub max_attempts: u32,
    /// Hard limit on one run.
    pub timeout: Duration,
    /// Free-form tags.
    pub tags: Vec<String>,
    /// What the check does.
    pub kind: CheckKind,
}

impl Check {
    /// The kind's name as written in the config (`ping`, `port`, `init`, `plugin`).
    pub fn kind_name(&self) -> &'static str {
        self.kind.name()
    }

    /// Whether the check's process runs over SSH on its host: `init` checks
    /// of a host other than `local`, and `plugin` checks with `run_on: host`.
    pub fn runs_on_host(&self) -> bool {
        if self.host == LOCAL_HOST {
            return false;
        }
        match &self.kind {
            CheckKind::Init(_) => true,
            CheckKind::Plugin { run_on, .. } => *run_on == RunOn::Host,
            CheckKind::Ping(_) | CheckKind::Port(_) => false,
        }
    }

    /// Whether the check runs as an external process (and so counts against
    /// the process limit).
    pub fn is_external(&self) -> bool {
        matches!(self.kind, CheckKind::Init(_) | CheckKind::Plugin { .. })
    }
}

/// The kind-specific part of a check.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckKind {
    /// ICMP echo.
    Ping(PingSpec),
    /// TCP connect with optional send/expect.
    Port(PortSpec),
    /// LSB init script `status` or systemd unit.
    Init(InitTarget),
    /// A Nagios plugin; argv without a shell.
    Plugin {
        /// Program and arguments, `$HOSTNAME$`/`$HOSTADDRESS$` not yet expanded.
        command: Vec<String>,
        /// Where the command runs: on the admin server (the default) or on the check's host.
        run_on: RunOn,
    },
}

/// Where a plugin check's command runs (`run_on:` in the config).
///
/// The default is [`RunOn::Local`], as in Nagios: the admin server runs the
/// plugin *for* the host, with `$HOSTNAME$`/`$HOSTADDRESS$` taken from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunOn {
    /// On the admin server (`run_on: local`).
    #[default]
    Local,
    /// Over SSH on the check's host, through the host's `ssh:` destination (`run_on: host`).
    Host,
}

impl RunOn {
    /// The value as written in the config.
    pub fn name(self) -> &'static str {
        match self {
            RunOn::Local => "local",
            RunOn::Host => "host",
        }
    }
}

impl CheckKind {
    /// The kind's name as written in the config.
    pub fn name(&self) -> &'static str {
        match self {
            CheckKind::Ping(_) => "ping",
            CheckKind::Port(_) => "port",
            CheckKind::Init(_) => "init",
            CheckKind::Plugin { .. } => "plugin",
        }
    }
}

/// Settings of a ping check.
#[derive(Debug, Clone, PartialEq)]
pub struct PingSpec {
    /// Echo requests per run.
    pub count: u32,
    /// Warning thresholds.
    pub warn: PingThresholds,
    /// Critical thresholds.
    pub crit: PingThresholds,
}

/// Round-trip average and packet-loss thresholds; a threshold is reached at or above it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PingThresholds {
    /// Round-trip average.
    pub rta: Option<Duration>,
    /// Packet loss in percent.
    pub loss: Option<f64>,
}

/// Settings of a port check.
#[derive(Debug, Clone, PartialEq)]
pub struct PortSpec {
    /// TCP port.
    pub port: u16,
    /// Bytes to send after connecting.
    pub send: Option<String>,
    /// Text the reply must contain.
    pub expect: Option<String>,
    /// Response time at which the state is WARNING.
    pub warn: Option<Duration>,
    /// Response time at which the state is CRITICAL.
    pub crit: Option<Duration>,
}

/// What an init check asks.
#[derive(Debug, Clone, PartialEq)]
pub enum InitTarget {
    /// `SCRIPT status`, LSB exit codes.
    Script(String),
    /// `systemctl is-active UNIT`.
    Unit(String),
}

/// Which database laxmon keeps its data in.
#[derive(Debug, Clone, PartialEq)]
pub enum Storage {
    /// Embedded SQLite database at this path (relative to the working directory).
    Sqlite(PathBuf),
    /// PostgreSQL connection string (`postgres://...`); the password may come
    /// from [`StorageConfig::password_file`] or [`StorageConfig::password_env`] instead.
    Postgres(String),
}

impl Default for Storage {
    fn default() -> Self {
        Storage::Sqlite(PathBuf::from("var/laxmon.db"))
    }
}

/// TLS to PostgreSQL (`sslmode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsMode {
    /// Plain TCP.
    #[default]
    Disable,
    /// TLS when the server offers it.
    Prefer,
    /// TLS or no connection.
    Require,
}

/// The `storage:` section: `storage: sqlite:PATH` or `storage: {url: ..., ...}`.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageConfig {
    /// The database.
    pub backend: Storage,
    /// File whose first line is the PostgreSQL password.
    pub password_file: Option<PathBuf>,
    /// Environment variable holding the PostgreSQL password.
    pub password_env: Option<String>,
    /// TLS mode for PostgreSQL.
    pub tls: TlsMode,
    /// CA certificate file (PEM) to verify the PostgreSQL server with; system roots otherwise.
    pub ca_file: Option<PathBuf>,
    /// Check results older than this are dropped.
    pub keep_results: Duration,
    /// State changes, alarms and notifications older than this are dropped.
    pub keep_events: Duration,
    /// Directory where results wait while the database is unreachable
    /// (default: `spool/` beside an SQLite database, `var/spool` for PostgreSQL).
    pub spool_dir: PathBuf,
    /// Results held in memory before they spill to the spool file.
    pub queue_capacity: usize,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            backend: Storage::default(),
            password_file: None,
            password_env: None,
            tls: TlsMode::Disable,
            ca_file: None,
            keep_results: Duration::from_secs(30 * 86400),
            keep_events: Duration::from_secs(400 * 86400),
            spool_dir: PathBuf::from("var/spool"),
            queue_capacity: 100_000,
        }
    }
}

/// Engine-wide limits and settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Engine {
    /// At most this many external processes (plugins, init scripts, ssh) at once.
    pub max_processes: usize,
    /// How remote checks reach their hosts.
    pub ssh: SshSettings,
}

impl Default for Engine {
    fn default() -> Self {
        Engine {
            max_processes: 32,
            ssh: SshSettings::default(),
        }
    }
}

/// Settings for the system `ssh` used by remote checks.
#[derive(Debug, Clone, PartialEq)]
pub struct SshSettings {
    /// Directory for ControlMaster sockets.
    pub control_dir: PathBuf,
    /// `ConnectTimeout`.
    pub connect_timeout: Duration,
    /// `ControlPersist`: how long an idle master connection stays.
    pub control_persist: Duration,
    /// Extra arguments given to every `ssh` (e.g. `-i KEY`, `-o Option=value`).
    pub options: Vec<String>,
}

impl Default for SshSettings {
    fn default() -> Self {
        SshSettings {
            control_dir: std::env::temp_dir().join("laxmon-ssh"),
            connect_timeout: Duration::from_secs(5),
            control_persist: Duration::from_secs(300),
            options: Vec::new(),
        }
    }
}

/// Defaults for the common check keys (`defaults:` block).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CheckDefaults {
    /// Default `interval`.
    pub interval: Duration,
    /// Default `retry_interval`.
    pub retry_interval: Duration,
    /// Default `max_attempts`.
    pub max_attempts: u32,
    /// Default `timeout`.
    pub timeout: Duration,
}

impl Default for CheckDefaults {
    fn default() -> Self {
        CheckDefaults {
            interval: Duration::from_secs(60),
            retry_interval: Duration::from_secs(10),
            max_attempts: 3,
            timeout: Duration::from_secs(10),
        }
    }
}

/// One configuration problem with its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line, 0 when the problem concerns the whole file.
    pub line: u32,
    /// 1-based column, 0 when the problem concerns the whole file.
    pub column: u32,
    /// What is wrong, naming the key and value.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.line,
                self.column,
                self.message
            )
        }
    }
}

/// Every problem found in a configuration, in file and line order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
