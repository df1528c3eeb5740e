//! Turns the positioned YAML tree into typed config, collecting every error.
//!
//! Each decoder takes a node, reports what is wrong with it into an
//! [`Errors`] collector (file, line, column, naming the key and value), and
//! returns what it could make of it; validation of references across the
//! whole configuration (check -> host, duplicate names) runs at the end.
//! Nothing here touches the network or runs a check.

use super::read::{duration_in, integer, name, number, seq, string, string_list, Errors, MapView};
use super::yaml::{self, Node, Pos, Value};
use super::*;
use crate::suggest::did_you_mean;
use std::collections::HashMap;

/// Loads the configuration file at `path` with its includes and validates it.
/// Returns every error found, sorted by file and position.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let mut errors = Errors::default();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            return Err(ConfigErrors(vec![ConfigError {
                file: path.to_path_buf(),
                line: 0,
                column: 0,
                message: format!("cannot read configuration file: {e}"),
            }]))
        }
    };
    let mut files = vec![path.to_path_buf()];
    let mut raw = RawConfig::default();
    if let Some(root) = parse_file(path, &text, &mut errors) {
        decode_main(path, &root, &mut raw, &mut errors);
    }
    let base = path.parent().unwrap_or(Path::new("."));
    for (pattern, pos) in std::mem::take(&mut raw.includes) {
        let matched = expand_include(base, &pattern, path, pos, &mut errors);
        for file in matched {
            if files.contains(&file) {
                continue;
            }
            files.push(file.clone());
            match std::fs::read_to_string(&file) {
                Ok(text) => {
                    if let Some(root) = parse_file(&file, &text, &mut errors) {
                        decode_included(&file, &root, &mut raw, &mut errors);
                    }
                }
                Err(e) => errors.at(
                    &file,
                    Pos::default(),
                    format!("cannot read included file: {e}"),
                ),
            }
        }
    }
    let config = finish(path, files, raw, &mut errors);
    if errors.list.is_empty() {
        Ok(config)
    } else {
        let mut list = errors.list;
        list.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
        list.dedup();
        Err(ConfigErrors(list))
    }
}

/// A positioned name, kept so that later checks can point at it.
#[derive(Debug, Clone)]
struct Named<T> {
    value: T,
    file: PathBuf,
    pos: Pos,
}

#[derive(Default)]
struct RawConfig {
    includes: Vec<(String, Pos)>,
    defaults: CheckDefaults,
    hosts: Vec<RawHost>,
    checks: Vec<RawCheck>,
    storage: StorageConfig,
    engine: Engine,
    http: Option<super::http::HttpConfig>,
    alarms: super::alarms::RawAlarms,
    clusters: Vec<super::clusters::RawCluster>,
}

struct RawHost {
    host: Host,
    name_at: Named<()>,
    host_check_at: Option<Named<()>>,
}

/// A check before defaults are applied and references resolved.
struct RawCheck {
    name: Named<String>,
    host: Option<Named<String>>,
    kind: Option<CheckKind>,
    /// Where `run_on:` was written, when it was (plugin checks).
    run_on_at: Option<Named<()>>,
    interval: Option<Duration>,
    retry_interval: Option<Duration>,
    max_attempts: Option<u32>,
    timeout: Option<Duration>,
    tags: Vec<String>,
}

fn parse_file(file: &Path, text: &str, errors: &mut Errors) -> Option<Node> {
    match yaml::parse(text) {
        Ok(node) => Some(node),
        Err(e) => {
            errors.at(file, e.pos, format!("invalid YAML: {}", e.message));
            None
        }
    }
}

// ---- sections ----

const MAIN_KEYS: &[&str] = &[
    "include",
    "defaults",
    "hosts",
    "checks",
    "storage",
    "engine",
    "alarms",
    "windows",
    "contacts",
    "notifiers",
    "rules",
    "maintenance",
    "clusters",
    "http",
];
const INCLUDED_KEYS: &[&str] = &["hosts", "checks", "clusters"];

fn decode_main(file: &Path, root: &Node, raw: &mut RawConfig, errors: &mut Errors) {
    if root.value == Value::Null {
        return;
    }
    let Some(mut map) = MapView::new(file, root, "the configuration", errors) else {
        return;
    };
    if let Some(node) = map.take("include") {
        let patterns = match &node.value {
            Value::Str(_) => std::slice::from_ref(node),
            _ => seq(file, "include", node, errors),
        };
        for p in patterns {
            if let Some(s) = string(file, "include", p, errors) {
                raw.includes.push((s, p.pos));
            }
        }
    }
    if let Some(node) = map.take("defaults") {
        decode_defaults(file, node, &mut raw.defaults, errors);
    }
    if let Some(node) = map.take("storage") {
        raw.storage = decode_storage(file, node, errors);
    }
    if let Some(node) = map.take("engine") {
        decode_engine(file, node, &mut raw.engine, errors);
    }
    if let Some(node) = map.take("http") {
        let base = file.parent().unwrap_or(Path::new("."));
        raw.http = Some(super::http::decode(file, base, node, errors));
    }
    decode_lists(file, &mut map, raw, errors);
    super::alarms::decode_top(file, &mut map, &mut raw.alarms, errors);
    map.finish("the configuration", MAIN_KEYS, errors);
}

fn decode_included(file: &Path, root: &Node, raw: &mut RawConfig, errors: &mut Errors) {
    if root.value == Value::Null {
        return;
    }
    let Some(mut map) = MapView::new(file, root, "an included file", errors) else {
        return;
    };
    decode_lists(file, &mut map, raw, errors);
    for key in MAIN_KEYS.iter().filter(|k| !INCLUDED_KEYS.contains(k)) {
        if let Some(node) = map.take(key) {
            errors.at(
                file,
                node.pos,
                format!(
                    "{key} may only be set in the main configuration file, not in an included file"
                ),
            );
        }
    }
    map.finish("an included file", INCLUDED_KEYS, errors);
}

fn decode_lists(file: &Path, map: &mut MapView, raw: &mut RawConfig, errors: &mut Errors) {
    if let Some(node) = map.take("hosts") {
        for h in seq(file, "hosts", node, errors) {
            if let Some(host) = decode_host(file, h, errors) {
                raw.hosts.push(host);
            }
        }
    }
    if let Some(node) = map.take("checks") {
        for c in seq(file, "checks", node, errors) {
            if let Some(check) = decode_check(file, c, errors) {
                raw.checks.push(check);
            }
        }
    }
    if let Some(node) = map.take("clusters") {
        for c in seq(file, "clusters", node, errors) {
            if let Some(cluster) = super::clusters::decode_cluster(file, c, errors) {
                raw.clusters.push(cluster);
            }
        }
    }
}

fn expand_include(
    base: &Path,
    pattern: &str,
    file: &Path,
    pos: Pos,
    errors: &mut Errors,
) -> Vec<PathBuf> {
    let full = if Path::new(pattern).is_absolute() {
        PathBuf::from(pattern)
    } else {
        base.join(pattern)
    };
    let full = full.to_string_lossy().into_owned();
    let paths = match glob::glob(&full) {
        Ok(p) => p,
        Err(e) => {
            errors.at(
                file,
                pos,
                format!("include {pattern:?} is not a valid glob: {e}"),
            );
            return Vec::new();
        }
    };
    let mut out: Vec<PathBuf> = paths
        .filter_map(Result::ok)
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    let has_wildcard = pattern.contains(['*', '?', '[']);
    if out.is_empty() && !has_wildcard {
        errors.at(file, pos, format!("include {pattern:?}: no such file"));
    }
    out
}

const DEFAULT_KEYS: &[&str] = &["interval", "retry_interval", "max_attempts", "timeout"];

fn decode_defaults(file: &Path, node: &Node, defaults: &mut CheckDefaults, errors: &mut Errors) {
    let Some(mut map) = MapView::new(file, node, "defaults", errors) else {
        return;
    };
    map.duration_into(
        "interval",
        "interval",
        (MIN_INTERVAL, MAX_INTERVAL),
        &mut defaults.interval,
        errors,
    );
    map.duration_into(
        "retry_interval",
        "retry_interval",
        (MIN_INTERVAL, MAX_INTERVAL),
        &mut defaults.retry_interval,
        errors,
    );
    if let Some(n) = map.take("max_attempts") {
        if let Some(i) = integer(file, "max_attempts", n, 1, MAX_ATTEMPTS, errors) {
            defaults.max_attempts = i as u32;
        }
    }
    map.duration_into(
        "timeout",
        "timeout",
        (MIN_TIMEOUT, MAX_TIMEOUT),
        &mut defaults.timeout,
        errors,
    );
    map.finish("defaults", DEFAULT_KEYS, errors);
}

const MIN_INTERVAL: Duration = Duration::from_millis(100);
const MAX_INTERVAL: Duration = Duration::from_secs(7 * 86400);
const MIN_TIMEOUT: Duration = Duration::from_millis(10);
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
const MAX_ATTEMPTS: i64 = 100;

/// Where results wait while the database is away, when `spool_dir` is not
/// set: beside an SQLite database (so two daemons with two databases never
/// share a spool), `var/spool` for PostgreSQL.
fn default_spool_dir(backend: &Storage) -> PathBuf {
    match backend {
        Storage::Sqlite(path) => match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.join("spool"),
            _ => PathBuf::from("spool"),
        },
        Storage::Postgres(_) => PathBuf::from("var/spool"),
    }
}

fn storage_url(file: &Path, node: &Node, errors: &mut Errors) -> Option<Storage> {
    let s = string(file, "storage", node, errors)?;
    if let Some(path) = s.strip_prefix("sqlite:") {
        if path.is_empty() {
            errors.at(
                file,
                node.pos,
                "storage \"sqlite:\" needs a path, e.g. sqlite:var/laxmon.db",
            );
            return None;
        }
        return Some(Storage::Sqlite(PathBuf::from(path)));
    }
    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        if let Err(e) = s.parse::<tokio_postgres::Config>() {
            errors.at(
                file,
                node.pos,
                format!("storage URL is not a valid PostgreSQL URL: {e}"),
            );
            return None;
        }
        return Some(Storage::Postgres(s));
    }
    errors.at(
        file,
        node.pos,
        "storage must be sqlite:PATH or a postgres://USER@HOST/DB URL".to_string(),
    );
    None
}

const STORAGE_KEYS: &[&str] = &[
    "url",
    "password_file",
    "password_env",
    "tls",
    "ca_file",
    "keep_results",
    "keep_events",
    "spool_dir",
    "queue_capacity",
];

fn decode_storage(file: &Path, node: &Node, errors: &mut Errors) -> StorageConfig {
    let mut cfg = StorageConfig::default();
    if let Value::Str(_) = node.value {
        if let Some(backend) = storage_url(file, node, errors) {
            cfg.spool_dir = default_spool_dir(&backend);
            cfg.backend = backend;
        }
        return cfg;
    }
    let Some(mut map) = MapView::new(file, node, "storage", errors) else {
        return cfg;
    };
    match map.take("url") {
        Some(n) => {
            if let Some(backend) = storage_url(file, n, errors) {
                cfg.backend = backend;
            }
        }
        None => errors.at(
            file,
            node.pos,
            "storage needs `url:` (sqlite:PATH or postgres://...)",
        ),
    }
    if let Some(n) = map.take("password_file") {
        cfg.password_file = string(file, "storage.password_file", n, errors).map(PathBuf::from);
    }
    if let Some(n) = map.take("password_env") {
        cfg.password_env = string(file, "storage.password_env", n, errors);
    }
    if let Some(n) = map.take("tls") {
        match string(file, "storage.tls", n, errors).as_deref() {
            Some("disable") => cfg.tls = TlsMode::Disable,
            Some("prefer") => cfg.tls = TlsMode::Prefer,
            Some("require") => cfg.tls = TlsMode::Require,
            Some(other) => errors.at(
                file,
                n.pos,
                format!(
                    "storage.tls {other:?} is not one of disable, prefer, require{}",
                    did_you_mean(other, &["disable", "prefer", "require"])
                ),
            ),
            None => {}
        }
    }
    if let Some(n) = map.take("ca_file") {
        cfg.ca_file = string(file, "storage.ca_file", n, errors).map(PathBuf::from);
    }
    let day = Duration::from_secs(86400);
    map.duration_into(
        "keep_results",
        "storage.keep_results",
        (Duration::from_secs(3600), 3650 * day),
        &mut cfg.keep_results,
        errors,
    );
    map.duration_into(
        "keep_events",
        "storage.keep_events",
        (Duration::from_secs(3600), 3650 * day),
        &mut cfg.keep_events,
        errors,
    );
    match map.take("spool_dir") {
        Some(n) => {
            if let Some(s) = string(file, "storage.spool_dir", n, errors) {
                cfg.spool_dir = PathBuf::from(s);
            }
        }
        None => cfg.spool_dir = default_spool_dir(&cfg.backend),
    }
    if let Some(n) = map.take("queue_capacity") {
        if let Some(i) = integer(file, "storage.queue_capacity", n, 100, 100_000_000, errors) {
            cfg.queue_capacity = i as usize;
        }
    }
    map.finish("storage", STORAGE_KEYS, errors);
    cfg
}

const ENGINE_KEYS: &[&str] = &["max_processes", "ssh"];
const SSH_KEYS: &[&str] = &[
    "control_dir",
    "connect_timeout",
    "control_persist",
    "options",
];

fn decode_engine(file: &Path, node: &Node, engine: &mut Engine, errors: &mut Errors) {
    let Some(mut map) = MapView::new(file, node, "engine", errors) else {
        return;
    };
    if let Some(n) = map.take("max_processes") {
        if let Some(i) = integer(file, "engine.max_processes", n, 1, 4096, errors) {
            engine.max_processes = i as usize;
        }
    }
    if let Some(n) = map.take("ssh") {
        if let Some(mut ssh) = MapView::new(file, n, "engine.ssh", errors) {
            if let Some(v) = ssh.take("control_dir") {
                if let Some(s) = string(file, "engine.ssh.control_dir", v, errors) {
                    engine.ssh.control_dir = PathBuf::from(s);
                }
            }
            if let Some(v) = ssh.take("connect_timeout") {
                let max = Duration::from_secs(300);
                if let Some(d) = duration_in(
                    file,
                    "engine.ssh.connect_timeout",
                    v,
                    Duration::from_secs(1),
                    max,
                    errors,
                ) {
                    engine.ssh.connect_timeout = d;
                }
            }
            ssh.duration_into(
                "control_persist",
                "engine.ssh.control_persist",
                (Duration::from_secs(1), MAX_INTERVAL),
                &mut engine.ssh.control_persist,
                errors,
            );
            if let Some(v) = ssh.take("options") {
                engine.ssh.options = string_list(file, "engine.ssh.options", v, errors);
            }
            ssh.finish("engine.ssh", SSH_KEYS, errors);
        }
    }
    map.finish("engine", ENGINE_KEYS, errors);
}

const HOST_KEYS: &[&str] = &["name", "address", "ssh", "tags", "host_check"];

fn decode_host(file: &Path, node: &Node, errors: &mut Errors) -> Option<RawHost> {
    let mut map = MapView::new(file, node, "a host entry", errors)?;
    let name_node = map.take("name");
    let name = match name_node {
        Some(n) => self::name(file, "host name", n, errors),
        None => {
            errors.at(file, node.pos, "host entry has no name: add `name: ...`");
            None
        }
    };
    let address = map.take("address").and_then(|n| {
        let a = string(file, "address", n, errors)?;
        if a.trim().is_empty() || a.contains(char::is_whitespace) {
            errors.at(
                file,
                n.pos,
                format!("address {a:?} is not an IP address or DNS name"),
            );
            return None;
        }
        Some(a)
    });
    let ssh = map.take("ssh").and_then(|n| {
        let s = string(file, "ssh", n, errors)?;
        if s.trim().is_empty() || s.contains(char::is_whitespace) || s.starts_with('-') {
            errors.at(
                file,
                n.pos,
                format!(
                    "ssh {s:?} is not an SSH destination such as root@cs1 or ssh://root@cs1:22"
                ),
            );
            return None;
        }
        Some(s)
    });
    let tags = map
        .take("tags")
        .map(|n| string_list(file, "tags", n, errors))
        .unwrap_or_default();
    let host_check = map
        .take("host_check")
        .and_then(|n| self::name(file, "host_check", n, errors).map(|s| (s, n.pos)));
    map.finish("a host entry", HOST_KEYS, errors);
    let name = name?;
    let name_pos = name_node.map(|n| n.pos).unwrap_or(node.pos);
    if name == LOCAL_HOST {
        errors.at(
            file,
            name_pos,
            "host name \"local\" is reserved for the admin server itself; choose another name",
        );
        return None;
    }
    Some(RawHost {
        host: Host {
            address: address.unwrap_or_else(|| name.clone()),
            name,
            ssh,
            tags,
            host_check: host_check.as_ref().map(|(s, _)| s.clone()),
        },
        name_at: Named {
            value: (),
            file: file.to_path_buf(),
            pos: name_pos,
        },
        host_check_at: host_check.map(|(_, pos)| Named {
            value: (),
            file: file.to_path_buf(),
            pos,
        }),
    })
}

const COMMON_CHECK_KEYS: &[&str] = &[
    "name",
    "kind",
    "host",
    "interval",
    "retry_interval",
    "max_attempts",
    "timeout",
    "tags",
];
const KINDS: &[&str] = &["ping", "port", "init", "plugin"];

fn kind_keys(kind: &str) -> &'static [&'static str] {
    match kind {
        "ping" => &["count", "warn", "crit"],
        "port" => &["port", "send", "expect", "warn", "crit"],
        "init" => &["script", "unit"],
        "plugin" => &["command", "run_on"],
        _ => &[],
    }
}

fn decode_check(file: &Path, node: &Node, errors: &mut Errors) -> Option<RawCheck> {
    let mut map = MapView::new(file, node, "a check entry", errors)?;
    let name_node = map.take("name");
    let name = match name_node {
        Some(n) => self::name(file, "check name", n, errors),
        None => {
            errors.at(file, node.pos, "check entry has no name: add `name: ...`");
            None
        }
    };
    let what = match &name {
        Some(n) => format!("check {n:?}"),
        None => "a check entry".to_string(),
    };
    let host = map.take("host").and_then(|n| {
        self::name(file, "host", n, errors).map(|value| Named {
            value,
            file: file.to_path_buf(),
            pos: n.pos,
        })
    });
    let interval = map
        .take("interval")
        .and_then(|n| duration_in(file, "interval", n, MIN_INTERVAL, MAX_INTERVAL, errors));
    let retry_interval = map.take("retry_interval").and_then(|n| {
        duration_in(
            file,
            "retry_interval",
            n,
            MIN_INTERVAL,
            MAX_INTERVAL,
            errors,
        )
    });
    let max_attempts = map
        .take("max_attempts")
        .and_then(|n| integer(file, "max_attempts", n, 1, MAX_ATTEMPTS, errors))
        .map(|i| i as u32);
    let timeout = map
        .take("timeout")
        .and_then(|n| duration_in(file, "timeout", n, MIN_TIMEOUT, MAX_TIMEOUT, errors));
    let tags = map
        .take("tags")
        .map(|n| string_list(file, "tags", n, errors))
        .unwrap_or_default();

    let kind_node = map.take("kind");
    let kind_name = match kind_node {
        None => {
            errors.at(
                file,
                node.pos,
                format!(
                    "{what} has no kind: add `kind:` with one of {}",
                    KINDS.join(", ")
                ),
            );
            None
        }
        Some(n) => match string(file, "kind", n, errors) {
            Some(k) if KINDS.contains(&k.as_str()) => Some(k),
            Some(k) => {
                errors.at(
                    file,
                    n.pos,
                    format!(
                        "unknown kind {k:?} in {what}{}: use one of {}",
                        did_you_mean(&k, KINDS),
                        KINDS.join(", ")
                    ),
                );
                None
            }
            None => None,
        },
    };
    let mut run_on_at = None;
    let kind = match kind_name.as_deref() {
        Some("ping") => decode_ping(file, &mut map, errors).map(CheckKind::Ping),
        Some("port") => decode_port(file, node, &what, &mut map, errors).map(CheckKind::Port),
        Some("init") => decode_init(file, node, &what, &mut map, errors).map(CheckKind::Init),
        Some("plugin") => decode_plugin(file, node, &what, &mut map, &mut run_on_at, errors),
        _ => {
            // Unknown kind: take every kind-specific key so only truly unknown keys are reported.
            for k in KINDS.iter().flat_map(|k| kind_keys(k)) {
                map.take(k);
            }
            None
        }
    };
    if host.is_none() && matches!(kind_name.as_deref(), Some("ping" | "port")) {
        errors.at(
            file,
            node.pos,
            format!("{what} needs a host: add `host:` naming a host entry"),
        );
    }
    let allowed: Vec<&str> = COMMON_CHECK_KEYS
        .iter()
        .chain(kind_name.as_deref().map(kind_keys).unwrap_or(&[]))
        .copied()
        .collect();
    let what_kind = match kind_name.as_deref() {
        Some(k) => format!("{what} (kind {k})"),
        None => what.clone(),
    };
    map.finish(&what_kind, &allowed, errors);
    Some(RawCheck {
        name: Named {
            value: name?,
            file: file.to_path_buf(),
            pos: name_node.map(|n| n.pos).unwrap_or(node.pos),
        },
        host,
        kind,
        run_on_at,
        interval,
        retry_interval,
        max_attempts,
        timeout,
        tags,
    })
}

fn decode_ping(file: &Path, map: &mut MapView, errors: &mut Errors) -> Option<PingSpec> {
    let count = match map.take("count") {
        Some(n) => integer(file, "count", n, 1, 100, errors)? as u32,
        None => 5,
    };
    let warn = map
        .take("warn")
        .map(|n| ping_thresholds(file, "warn", n, errors))
        .unwrap_or_default();
    let crit = map
        .take("crit")
        .map(|n| ping_thresholds(file, "crit", n, errors))
        .unwrap_or_default();
    Some(PingSpec { count, warn, crit })
}

fn ping_thresholds(file: &Path, key: &str, node: &Node, errors: &mut Errors) -> PingThresholds {
    let mut t = PingThresholds::default();
    let Some(mut map) = MapView::new(file, node, key, errors) else {
        return t;
    };
    if let Some(n) = map.take("rta") {
        t.rta = duration_in(
            file,
            &format!("{key}.rta"),
            n,
            Duration::ZERO,
            MAX_TIMEOUT,
            errors,
        );
    }
    if let Some(n) = map.take("loss") {
        t.loss = number(file, &format!("{key}.loss"), n, 0.0, 100.0, errors);
    }
    map.finish(key, &["rta", "loss"], errors);
    t
}

fn decode_port(
    file: &Path,
    node: &Node,
    what: &str,
    map: &mut MapView,
    errors: &mut Errors,
) -> Option<PortSpec> {
    let port = match map.take("port") {
        Some(n) => integer(file, "port", n, 1, 65535, errors).map(|p| p as u16),
        None => {
            errors.at(file, node.pos, format!("{what} (kind port) needs `port:`"));
            None
        }
    };
    let send = map
        .take("send")
        .and_then(|n| string(file, "send", n, errors));
    let expect = map
        .take("expect")
        .and_then(|n| string(file, "expect", n, errors));
    let warn = map
        .take("warn")
        .and_then(|n| time_threshold(file, "warn", n, errors));
    let crit = map
        .take("crit")
        .and_then(|n| time_threshold(file, "crit", n, errors));
    Some(PortSpec {
        port: port?,
        send,
        expect,
        warn,
        crit,
    })
}

fn time_threshold(file: &Path, key: &str, node: &Node, errors: &mut Errors) -> Option<Duration> {
    let mut map = MapView::new(file, node, key, errors)?;
    let t = map.take("time").and_then(|n| {
        duration_in(
            file,
            &format!("{key}.time"),
            n,
            Duration::ZERO,
            MAX_TIMEOUT,
            errors,
        )
    });
    map.finish(key, &["time"], errors);
    t
}

fn decode_init(
    file: &Path,
    node: &Node,
    what: &str,
    map: &mut MapView,
    errors: &mut Errors,
) -> Option<InitTarget> {
    let script = map.take("script");
    let unit = map.take("unit");
    match (script, unit) {
        (Some(s), None) => {
            let path = string(file, "script", s, errors)?;
            if path.trim().is_empty() {
                errors.at(
                    file,
                    s.pos,
                    "script must name an init script such as /etc/init.d/apache2",
                );
                return None;
            }
            Some(InitTarget::Script(path))
        }
        (None, Some(u)) => {
            let unit = string(file, "unit", u, errors)?;
            if unit.trim().is_empty() || unit.contains(char::is_whitespace) {
                errors.at(
                    file,
                    u.pos,
                    format!("unit {unit:?} is not a systemd unit name such as apache2.service"),
                );
                return None;
            }
            Some(InitTarget::Unit(unit))
        }
        (Some(_), Some(u)) => {
            errors.at(
                file,
                u.pos,
                format!("{what} sets both script and unit: choose one"),
            );
            None
        }
        (None, None) => {
            errors.at(file, node.pos, format!("{what} (kind init) needs `script:` (an init script) or `unit:` (a systemd unit)"));
            None
        }
    }
}

const RUN_ON: &[&str] = &["local", "host"];

fn decode_plugin(
    file: &Path,
    node: &Node,
    what: &str,
    map: &mut MapView,
    run_on_at: &mut Option<Named<()>>,
    errors: &mut Errors,
) -> Option<CheckKind> {
    let run_on = match map.take("run_on") {
        None => RunOn::Local,
        Some(n) => {
            *run_on_at = Some(Named {
                value: (),
                file: file.to_path_buf(),
                pos: n.pos,
            });
            match string(file, "run_on", n, errors)?.as_str() {
                "local" => RunOn::Local,
                "host" => RunOn::Host,
                other => {
                    errors.at(
                        file,
                        n.pos,
                        format!(
                            "unknown run_on {other:?} in {what}: use one of {}",
                            RUN_ON.join(", ")
                        ),
                    );
                    return None;
                }
            }
        }
    };
    let Some(n) = map.take("command") else {
        errors.at(
            file,
            node.pos,
            format!("{what} (kind plugin) needs `command:` (a string or a list of words)"),
        );
        return None;
    };
    let command = match &n.value {
        Value::Str(s) => match shell_words::split(s) {
            Ok(words) => words,
            Err(e) => {
                errors.at(
                    file,
                    n.pos,
                    format!("command {s:?} cannot be split into words: {e}"),
                );
                return None;
            }
        },
        Value::Seq(_) => string_list(file, "command", n, errors),
        other => {
            errors.at(
                file,
                n.pos,
                format!(
                    "command must be a string or a list of words, found {}",
                    other.describe()
                ),
            );
            return None;
        }
    };
    if command.is_empty() || command[0].trim().is_empty() {
        errors.at(file, n.pos, "command is empty: name the plugin to run");
        return None;
    }
    Some(CheckKind::Plugin { command, run_on })
}

/// Whether a plugin command says which host it checks: a `$HOSTNAME$` or
/// `$HOSTADDRESS$` macro, or a `-H` / `--hostname` / `--host` option.
///
/// A host-bound plugin check whose command does neither checks the admin
/// server, where it runs, and not its host: the form that ran over SSH on
/// the host before `run_on` existed.
fn names_its_host(command: &[String]) -> bool {
    command.iter().any(|w| {
        w.contains("$HOSTNAME$")
            || w.contains("$HOSTADDRESS$")
            || w.starts_with("-H")
            || w == "--hostname"
            || w.starts_with("--hostname=")
            || w == "--host"
            || w.starts_with("--host=")
    })
}

// ---- whole-configuration validation ----

fn finish(path: &Path, files: Vec<PathBuf>, raw: RawConfig, errors: &mut Errors) -> Config {
    let mut host_seen: HashMap<String, &Named<()>> = HashMap::new();
    for h in &raw.hosts {
        if let Some(first) = host_seen.get(&h.host.name) {
            errors.at(
                &h.name_at.file,
                h.name_at.pos,
                format!(
                    "duplicate host name {:?}: already defined at {}:{}:{}",
                    h.host.name,
                    first.file.display(),
                    first.pos.line,
                    first.pos.column
                ),
            );
        } else {
            host_seen.insert(h.host.name.clone(), &h.name_at);
        }
    }
    let mut check_seen: HashMap<&str, &Named<String>> = HashMap::new();
    for c in &raw.checks {
        if let Some(first) = check_seen.get(c.name.value.as_str()) {
            errors.at(
                &c.name.file,
                c.name.pos,
                format!(
                    "duplicate check name {:?}: already defined at {}:{}:{}",
                    c.name.value,
                    first.file.display(),
                    first.pos.line,
                    first.pos.column
                ),
            );
        } else {
            check_seen.insert(&c.name.value, &c.name);
        }
    }
    let hosts_by_name: HashMap<&str, &Host> = raw
        .hosts
        .iter()
        .map(|h| (h.host.name.as_str(), &h.host))
        .collect();
    let defaults = raw.defaults;
    let mut checks = Vec::new();
    for c in &raw.checks {
        let host_name = c
            .host
            .as_ref()
            .map(|h| h.value.clone())
            .unwrap_or_else(|| LOCAL_HOST.to_string());
        if let Some(h) = &c.host {
            if h.value != LOCAL_HOST {
                match hosts_by_name.get(h.value.as_str()) {
                    None => errors.at(
                        &h.file,
                        h.pos,
                        format!(
                            "check {:?} names host {:?}, which is not defined: add it under hosts: or use `local`",
                            c.name.value, h.value
                        ),
                    ),
                    Some(host) => {
                        let remote = matches!(
                            c.kind,
                            Some(CheckKind::Init(_) | CheckKind::Plugin { run_on: RunOn::Host, .. })
                        );
                        if remote && host.ssh.is_none() {
                            errors.at(
                                &h.file,
                                h.pos,
                                format!(
                                    "check {:?} runs on host {:?} over SSH, but that host has no `ssh:` destination",
                                    c.name.value, h.value
                                ),
                            );
                        }
                        if let Some(CheckKind::Plugin { command, .. }) = &c.kind {
                            if c.run_on_at.is_none() && !names_its_host(command) {
                                errors.at(
                                    &h.file,
                                    h.pos,
                                    format!(
                                        "plugin check {:?} is bound to host {:?} but its command names neither $HOSTADDRESS$/$HOSTNAME$ nor -H, \
                                         so on the admin server, where plugin checks run, it would check the admin server instead: \
                                         add `run_on: host` to run it on {:?} over SSH (what laxmon did before `run_on` existed), \
                                         or `run_on: local` if the admin server is meant",
                                        c.name.value, h.value, h.value
                                    ),
                                );
                            }
                        }
                    }
                }
            }
        }
        if let (
            Some(CheckKind::Plugin {
                run_on: RunOn::Host,
                ..
            }),
            Some(at),
        ) = (&c.kind, &c.run_on_at)
        {
            if host_name == LOCAL_HOST {
                errors.at(
                    &at.file,
                    at.pos,
                    format!(
                        "check {:?} says `run_on: host` but has no host: add `host:` naming a host entry with `ssh:`, or drop run_on",
                        c.name.value
                    ),
                );
            }
        }
        let retry_interval = c.retry_interval.unwrap_or(defaults.retry_interval);
        let timeout = c.timeout.unwrap_or(defaults.timeout);
        if let Some(CheckKind::Ping(p)) = &c.kind {
            check_order(&c.name, "rta", p.warn.rta, p.crit.rta, errors);
            if let (Some(w), Some(cr)) = (p.warn.loss, p.crit.loss) {
                if w > cr {
                    errors.at(
                        &c.name.file,
                        c.name.pos,
                        format!(
                            "check {:?}: warn.loss {w} is above crit.loss {cr}",
                            c.name.value
                        ),
                    );
                }
            }
        }
        if let Some(CheckKind::Port(p)) = &c.kind {
            check_order(&c.name, "time", p.warn, p.crit, errors);
        }
        if let Some(kind) = &c.kind {
            checks.push(Check {
                name: c.name.value.clone(),
                host: host_name,
                interval: c.interval.unwrap_or(defaults.interval),
                retry_interval,
                max_attempts: c.max_attempts.unwrap_or(defaults.max_attempts),
                timeout,
                tags: c.tags.clone(),
                kind: kind.clone(),
            });
        }
    }
    let checks_by_name: HashMap<&str, &RawCheck> = raw
        .checks
        .iter()
        .map(|c| (c.name.value.as_str(), c))
        .collect();
    for h in &raw.hosts {
        if let (Some(hc), Some(at)) = (&h.host.host_check, &h.host_check_at) {
            match checks_by_name.get(hc.as_str()) {
                None => errors.at(
                    &at.file,
                    at.pos,
                    format!(
                        "host {:?} names host_check {hc:?}, which is not a defined check",
                        h.host.name
                    ),
                ),
                Some(c) => {
                    let on = c
                        .host
                        .as_ref()
                        .map(|n| n.value.as_str())
                        .unwrap_or(LOCAL_HOST);
                    if on != h.host.name {
                        errors.at(
                            &at.file,
                            at.pos,
                            format!(
                                "host {:?} names host_check {hc:?}, but that check runs on host {on:?}",
                                h.host.name
                            ),
                        );
                    }
                }
            }
        }
    }
    let hosts: Vec<Host> = raw.hosts.into_iter().map(|h| h.host).collect();
    let cluster_names: Vec<String> = raw
        .clusters
        .iter()
        .filter_map(|c| c.name().map(str::to_string))
        .collect();
    let alarms = super::alarms::finish(raw.alarms, &checks, &hosts, &cluster_names, errors);
    let clusters = super::clusters::resolve(raw.clusters, &hosts, &checks, &raw.engine.ssh, errors);
    Config {
        path: path.to_path_buf(),
        files,
        hosts,
        checks,
        storage: raw.storage,
        engine: raw.engine,
        alarms,
        clusters,
        http: raw.http,
    }
}

fn check_order(
    name: &Named<String>,
    key: &str,
    warn: Option<Duration>,
    crit: Option<Duration>,
    errors: &mut Errors,
) {
    if let (Some(w), Some(c)) = (warn, crit) {
        if w > c {
            errors.at(
                &name.file,
                name.pos,
                format!(
                    "check {:?}: warn.{key} {} is above crit.{key} {}",
                    name.value,
                    duration::format(w),
                    duration::format(c)
                ),
            );
        }
    }
}
