//! The process-wide metrics registry: what the daemon counts about itself,
//! exposed as Prometheus text ([`render_text`]) and as a typed summary for a
//! status page ([`snapshot`]).
//!
//! One `static` of atomics with small, fixed label sets (check kind, state,
//! channel, action kind, outcome), so recording is a few relaxed atomic
//! adds: no lock, no allocation, nothing per check. A scrape costs the same
//! whatever the number of configured checks. Stages call the recording
//! functions at the point where the thing happens (the scheduler for check
//! runs, the result writer for the queue and the database, the alarm stage
//! for alarms, the outbox and actions, the cluster stage for
//! reorganisations, the reload path for configurations).
//!
//! Gauges hold the last value their owner set: one daemon has one scheduler,
//! one writer and one alarm stage at a time, so last-writer-wins is exact
//! there (tests that start several in one process see the latest).
//!
//! This module must never lock, allocate or do I/O on a recording path,
//! and never keep a series per check, host or alarm.

use crate::plugin_output::State;
use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The check kinds, the `kind` label of the check metrics.
const KINDS: [&str; 4] = ["ping", "port", "init", "plugin"];
/// The states, in the order of their exit codes (the `state` label).
const STATES: [State; 4] = [State::Ok, State::Warning, State::Critical, State::Unknown];
/// Notifier kinds, the `channel` label (as written in the config).
const CHANNELS: [&str; 4] = ["smtp", "sms", "ntfy", "webhook"];
/// Alarm action kinds, the `kind` label of `laxmon_actions_total`.
const ACTION_KINDS: [&str; 4] = ["script", "restart-service", "restart-vm", "clusterreorg"];
/// Outcomes of an action.
const ACTION_OUTCOMES: [&str; 3] = ["ok", "failed", "timeout"];
/// What the cluster stage runs, the `kind` label of reorganisations.
const REORG_KINDS: [&str; 2] = ["reorganise", "restore"];
/// Outcomes of a reorganisation.
const REORG_OUTCOMES: [&str; 4] = ["ok", "steps_failed", "error", "refused"];

/// Start lateness buckets: (upper bound in nanoseconds, `le` label).
const LATENESS_BUCKETS: &[(u64, &str)] = &[
    (1_000_000, "0.001"),
    (5_000_000, "0.005"),
    (10_000_000, "0.01"),
    (50_000_000, "0.05"),
    (100_000_000, "0.1"),
    (500_000_000, "0.5"),
    (1_000_000_000, "1"),
    (5_000_000_000, "5"),
    (10_000_000_000, "10"),
    (30_000_000_000, "30"),
    (60_000_000_000, "60"),
];
/// Run duration and database write buckets.
const DURATION_BUCKETS: &[(u64, &str)] = &[
    (1_000_000, "0.001"),
    (5_000_000, "0.005"),
    (10_000_000, "0.01"),
    (25_000_000, "0.025"),
    (50_000_000, "0.05"),
    (100_000_000, "0.1"),
    (250_000_000, "0.25"),
    (500_000_000, "0.5"),
    (1_000_000_000, "1"),
    (2_500_000_000, "2.5"),
    (5_000_000_000, "5"),
    (10_000_000_000, "10"),
    (30_000_000_000, "30"),
    (60_000_000_000, "60"),
];
/// Room for the longest bucket list plus the `+Inf` overflow.
const MAX_BUCKETS: usize = 16;

/// Seconds per window of the recent-lateness ring.
const WINDOW_SECS: u64 = 10;
/// Windows in the ring: "recent" is the last `WINDOWS * WINDOW_SECS` seconds.
const WINDOWS: usize = 6;

/// A histogram of durations with fixed buckets; counts are per bucket (not
/// cumulative), the last one for values above every bound.
struct Histogram {
    buckets: &'static [(u64, &'static str)],
    counts: [AtomicU64; MAX_BUCKETS],
    sum_ns: AtomicU64,
}

impl Histogram {
    const fn new(buckets: &'static [(u64, &'static str)]) -> Histogram {
        Histogram {
            buckets,
            counts: [const { AtomicU64::new(0) }; MAX_BUCKETS],
            sum_ns: AtomicU64::new(0),
        }
    }

    fn observe(&self, d: Duration) {
        let ns = nanos(d);
        let i = self
            .buckets
            .iter()
            .position(|(bound, _)| ns <= *bound)
            .unwrap_or(self.buckets.len());
        self.counts[i].fetch_add(1, Relaxed);
        self.sum_ns.fetch_add(ns, Relaxed);
    }

    /// Observations so far (the `+Inf` bucket, so `_count` always equals it).
    fn count(&self) -> u64 {
        self.counts[..=self.buckets.len()]
            .iter()
            .map(|c| c.load(Relaxed))
            .sum()
    }
}

/// One window of the recent-lateness ring.
struct Window {
    /// Which `WINDOW_SECS` period (of Unix time) it holds.
    epoch: AtomicU64,
    runs: AtomicU64,
    sum_ns: AtomicU64,
    max_ns: AtomicU64,
}

impl Window {
    const fn new() -> Window {
        Window {
            epoch: AtomicU64::new(u64::MAX),
            runs: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
            max_ns: AtomicU64::new(0),
        }
    }
}

/// Whether the store took the last write: unknown until the first one.
const STORE_UNKNOWN: u8 = 0;
const STORE_UP: u8 = 1;
const STORE_DOWN: u8 = 2;
/// The last SIGHUP's outcome: none yet, loaded, refused.
const RELOAD_NONE: u8 = 0;
const RELOAD_OK: u8 = 1;
const RELOAD_FAILED: u8 = 2;

/// Everything counted; one per process.
struct Registry {
    runs: [[AtomicU64; STATES.len()]; KINDS.len()],
    lateness: [Histogram; KINDS.len()],
    duration: [Histogram; KINDS.len()],
    recent: [Window; WINDOWS],
    in_flight: AtomicI64,
    missed_slots: AtomicU64,
    process_slots_in_use: AtomicI64,
    process_slots_limit: AtomicU64,
    checks_configured: [AtomicU64; KINDS.len()],
    queued_results: AtomicU64,
    spooled_results: AtomicU64,
    spool_bytes: AtomicU64,
    store_write: Histogram,
    store_state: AtomicU8,
    store_last_write_ns: AtomicU64,
    store_write_failures: AtomicU64,
    results_written: AtomicU64,
    alarms_open: [[AtomicU64; 2]; STATES.len()],
    notifications: [[AtomicU64; 2]; CHANNELS.len()],
    outbox_pending: AtomicU64,
    actions: [[AtomicU64; ACTION_OUTCOMES.len()]; ACTION_KINDS.len()],
    reorganisations: [[AtomicU64; REORG_OUTCOMES.len()]; REORG_KINDS.len()],
    reloads: [AtomicU64; 2],
    last_reload: AtomicU8,
    last_reload_ms: AtomicU64,
    config_generation: AtomicU64,
    config_loaded_ms: AtomicU64,
}

const fn zeros<const N: usize>() -> [AtomicU64; N] {
    [const { AtomicU64::new(0) }; N]
}

static REGISTRY: Registry = Registry {
    runs: [const { zeros() }; KINDS.len()],
    lateness: [const { Histogram::new(LATENESS_BUCKETS) }; KINDS.len()],
    duration: [const { Histogram::new(DURATION_BUCKETS) }; KINDS.len()],
    recent: [const { Window::new() }; WINDOWS],
    in_flight: AtomicI64::new(0),
    missed_slots: AtomicU64::new(0),
    process_slots_in_use: AtomicI64::new(0),
    process_slots_limit: AtomicU64::new(0),
    checks_configured: zeros(),
    queued_results: AtomicU64::new(0),
    spooled_results: AtomicU64::new(0),
    spool_bytes: AtomicU64::new(0),
    store_write: Histogram::new(DURATION_BUCKETS),
    store_state: AtomicU8::new(STORE_UNKNOWN),
    store_last_write_ns: AtomicU64::new(0),
    store_write_failures: AtomicU64::new(0),
    results_written: AtomicU64::new(0),
    alarms_open: [const { zeros() }; STATES.len()],
    notifications: [const { zeros() }; CHANNELS.len()],
    outbox_pending: AtomicU64::new(0),
    actions: [const { zeros() }; ACTION_KINDS.len()],
    reorganisations: [const { zeros() }; REORG_KINDS.len()],
    reloads: zeros(),
    last_reload: AtomicU8::new(RELOAD_NONE),
    last_reload_ms: AtomicU64::new(0),
    config_generation: AtomicU64::new(0),
    config_loaded_ms: AtomicU64::new(0),
};

/// When the process started: wall clock (for the exposition) and monotonic.
static START: OnceLock<(SystemTime, Instant)> = OnceLock::new();

fn start() -> (SystemTime, Instant) {
    *START.get_or_init(|| (SystemTime::now(), Instant::now()))
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn state_index(s: State) -> usize {
    match s {
        State::Ok => 0,
        State::Warning => 1,
        State::Critical => 2,
        State::Unknown => 3,
    }
}

fn index_of(names: &[&str], name: &str) -> Option<usize> {
    names.iter().position(|n| *n == name)
}

/// Records the process start (uptime counts from here); call first thing in
/// `laxmon run`. Later calls change nothing.
pub fn mark_start() {
    start();
}

/// A check run was spawned (the in-flight gauge).
pub fn check_run_started() {
    REGISTRY.in_flight.fetch_add(1, Relaxed);
}

/// A check run of `kind` (`ping`, `port`, `init`, `plugin`) finished with
/// `state`; it `started` `lateness` after its planned start and took
/// `duration`. (Its start time places it among the recent runs, so that
/// recording reads no clock.)
pub fn check_run_finished(
    kind: &str,
    state: State,
    started: DateTime<Utc>,
    lateness: Duration,
    duration: Duration,
) {
    let r = &REGISTRY;
    r.in_flight.fetch_sub(1, Relaxed);
    let Some(k) = index_of(&KINDS, kind) else {
        return;
    };
    r.runs[k][state_index(state)].fetch_add(1, Relaxed);
    r.lateness[k].observe(lateness);
    r.duration[k].observe(duration);
    let ns = nanos(lateness);
    let epoch = window_of(started);
    let w = &r.recent[(epoch % WINDOWS as u64) as usize];
    // Only the scheduler task records runs, so resetting a window that moved
    // on races with nothing but readers, who may see it half reset.
    if w.epoch.load(Relaxed) != epoch && w.epoch.swap(epoch, Relaxed) != epoch {
        w.runs.store(0, Relaxed);
        w.sum_ns.store(0, Relaxed);
        w.max_ns.store(0, Relaxed);
    }
    w.runs.fetch_add(1, Relaxed);
    w.sum_ns.fetch_add(ns, Relaxed);
    if ns > w.max_ns.load(Relaxed) {
        w.max_ns.fetch_max(ns, Relaxed);
    }
}

/// Grid slots a check skipped because its previous run took too long.
pub fn missed_slots(n: u64) {
    if n > 0 {
        REGISTRY.missed_slots.fetch_add(n, Relaxed);
    }
}

/// Holds one process slot (`engine.max_processes`) in the in-use gauge
/// while it lives.
#[derive(Debug)]
pub struct ProcessSlot(());

impl ProcessSlot {
    /// Counts a slot as in use until the returned value is dropped.
    pub fn hold() -> ProcessSlot {
        REGISTRY.process_slots_in_use.fetch_add(1, Relaxed);
        ProcessSlot(())
    }
}

impl Drop for ProcessSlot {
    fn drop(&mut self) {
        REGISTRY.process_slots_in_use.fetch_sub(1, Relaxed);
    }
}

/// The process slot limit (`engine.max_processes`).
pub fn set_process_slots_limit(n: usize) {
    REGISTRY.process_slots_limit.store(n as u64, Relaxed);
}

/// A configuration was put to work (at start and after every reload): the
/// configuration generation goes up by one and the configured checks are
/// counted by kind (`kinds`: one kind name per check).
pub fn config_loaded<'a>(kinds: impl IntoIterator<Item = &'a str>) {
    let r = &REGISTRY;
    let mut counts = [0u64; KINDS.len()];
    for k in kinds {
        if let Some(i) = index_of(&KINDS, k) {
            counts[i] += 1;
        }
    }
    for (gauge, n) in r.checks_configured.iter().zip(counts) {
        gauge.store(n, Relaxed);
    }
    r.config_loaded_ms
        .store(unix_ms(SystemTime::now()), Relaxed);
    r.config_generation.fetch_add(1, Relaxed);
}

/// A SIGHUP was handled: the new configuration loaded (`ok`) or was refused.
pub fn config_reload(ok: bool) {
    let r = &REGISTRY;
    r.reloads[usize::from(!ok)].fetch_add(1, Relaxed);
    r.last_reload_ms.store(unix_ms(SystemTime::now()), Relaxed);
    r.last_reload
        .store(if ok { RELOAD_OK } else { RELOAD_FAILED }, Relaxed);
}

/// The configuration generation: 1 for the configuration the daemon started
/// with, one more for every reload put to work (0 before the first).
pub fn config_generation() -> u64 {
    REGISTRY.config_generation.load(Relaxed)
}

/// The result writer's backlog: results in memory, and results and bytes in
/// the spool, not yet written to the database.
pub fn set_result_backlog(queued: u64, spooled: u64, spool_bytes: u64) {
    let r = &REGISTRY;
    r.queued_results.store(queued, Relaxed);
    r.spooled_results.store(spooled, Relaxed);
    r.spool_bytes.store(spool_bytes, Relaxed);
}

/// One batch write to the database took `elapsed`: `Some(rows)` inserted,
/// or `None` when it failed (the store counts as away until one succeeds).
pub fn store_write(elapsed: Duration, inserted: Option<u64>) {
    let r = &REGISTRY;
    match inserted {
        Some(rows) => {
            r.store_write.observe(elapsed);
            r.store_last_write_ns.store(nanos(elapsed), Relaxed);
            r.results_written.fetch_add(rows, Relaxed);
            r.store_state.store(STORE_UP, Relaxed);
        }
        None => {
            r.store_write_failures.fetch_add(1, Relaxed);
            r.store_state.store(STORE_DOWN, Relaxed);
        }
    }
}

/// The open alarms, each as (the check's state, acknowledged).
pub fn set_open_alarms(alarms: impl IntoIterator<Item = (State, bool)>) {
    let mut counts = [[0u64; 2]; STATES.len()];
    for (state, acked) in alarms {
        counts[state_index(state)][usize::from(acked)] += 1;
    }
    for (gauges, n) in REGISTRY.alarms_open.iter().zip(counts) {
        for (gauge, n) in gauges.iter().zip(n) {
            gauge.store(n, Relaxed);
        }
    }
}

/// Notifications in the outbox still to be delivered.
pub fn set_outbox_pending(n: usize) {
    REGISTRY.outbox_pending.store(n as u64, Relaxed);
}

/// One delivery through a notifier of kind `channel` (`smtp`, `sms`, `ntfy`,
/// `webhook`) was sent or failed.
pub fn notification(channel: &str, sent: bool) {
    if let Some(c) = index_of(&CHANNELS, channel) {
        REGISTRY.notifications[c][usize::from(!sent)].fetch_add(1, Relaxed);
    }
}

/// An alarm action of `kind` (`script`, `restart-service`, `restart-vm`,
/// `clusterreorg`) finished: succeeded, ran into its timeout, or failed.
pub fn action_finished(kind: &str, succeeded: bool, timed_out: bool) {
    let outcome = match (succeeded, timed_out) {
        (_, true) => 2,
        (true, false) => 0,
        (false, false) => 1,
    };
    if let Some(k) = index_of(&ACTION_KINDS, kind) {
        REGISTRY.actions[k][outcome].fetch_add(1, Relaxed);
    }
}

/// What the cluster stage ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReorgKind {
    /// A reorganisation after a server failed.
    Reorganise,
    /// Restoring VMs when the failed server is back.
    Restore,
}

/// How a reorganisation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReorgOutcome {
    /// Every step done.
    Ok,
    /// It ran, but some steps failed.
    StepsFailed,
    /// The executor refused or failed as a whole.
    Error,
    /// Not started: the request did not come from a CRITICAL liveness check.
    Refused,
}

/// The cluster stage finished (or refused) a run.
pub fn reorganisation(kind: ReorgKind, outcome: ReorgOutcome) {
    let k = match kind {
        ReorgKind::Reorganise => 0,
        ReorgKind::Restore => 1,
    };
    let o = match outcome {
        ReorgOutcome::Ok => 0,
        ReorgOutcome::StepsFailed => 1,
        ReorgOutcome::Error => 2,
        ReorgOutcome::Refused => 3,
    };
    REGISTRY.reorganisations[k][o].fetch_add(1, Relaxed);
}

/// Start lateness of the check runs of the last minute or so.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct RecentLateness {
    /// The span summarised, in seconds.
    pub window_seconds: u64,
    /// Runs finished in it.
    pub runs: u64,
    /// Mean start lateness, in seconds (0 without runs).
    pub mean_seconds: f64,
    /// Largest start lateness, in seconds.
    pub max_seconds: f64,
}

/// The last SIGHUP reload.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LastReload {
    /// When it was handled.
    pub at: DateTime<Utc>,
    /// Whether the new configuration loaded (a refused one leaves the old running).
    pub ok: bool,
}

/// What a status page shows of the daemon's own health.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricsSnapshot {
    /// laxmon's version.
    pub version: &'static str,
    /// The git commit it was built from (`unknown` without one).
    pub commit: &'static str,
    /// When the process started.
    pub started_at: DateTime<Utc>,
    /// Seconds since then.
    pub uptime_seconds: f64,
    /// Configuration generation: 1 at start, one more per reload put to work.
    pub config_generation: u64,
    /// When the configuration running now was put to work.
    pub config_loaded_at: Option<DateTime<Utc>>,
    /// The last SIGHUP reload, if there was one.
    pub last_reload: Option<LastReload>,
    /// Checks configured.
    pub checks_configured: u64,
    /// Check runs finished since start.
    pub check_runs: u64,
    /// Check runs started and not finished yet.
    pub runs_in_flight: u64,
    /// Process slots in use (external checks running).
    pub process_slots_in_use: u64,
    /// The process slot limit (`engine.max_processes`).
    pub process_slots_limit: u64,
    /// Start lateness lately.
    pub lateness: RecentLateness,
    /// Grid slots skipped since start because a run took too long.
    pub missed_slots: u64,
    /// Results in the writer's memory, not yet in the database.
    pub writer_queued: u64,
    /// Results in the spool, not yet in the database.
    pub spool_results: u64,
    /// Bytes of those spooled results.
    pub spool_bytes: u64,
    /// Whether the last database write succeeded (`None` before the first).
    pub store_available: Option<bool>,
    /// How long the last successful write took, in seconds.
    pub store_last_write_seconds: Option<f64>,
    /// Failed database writes since start.
    pub store_write_failures: u64,
    /// Open alarms.
    pub open_alarms: u64,
    /// Of those, acknowledged.
    pub open_alarms_acknowledged: u64,
    /// Notifications waiting in the outbox.
    pub outbox_backlog: u64,
}

fn time_of_ms(ms: u64) -> Option<DateTime<Utc>> {
    if ms == 0 {
        return None;
    }
    Utc.timestamp_millis_opt(i64::try_from(ms).ok()?).single()
}

fn gauge(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The recent-lateness window a time falls in.
fn window_of(t: DateTime<Utc>) -> u64 {
    u64::try_from(t.timestamp()).unwrap_or(0) / WINDOW_SECS
}

fn recent_lateness() -> RecentLateness {
    let now = window_of(Utc::now());
    let (mut runs, mut sum, mut max) = (0u64, 0u64, 0u64);
    for w in &REGISTRY.recent {
        let epoch = w.epoch.load(Relaxed);
        if epoch <= now && now - epoch < WINDOWS as u64 {
            runs += w.runs.load(Relaxed);
            sum = sum.saturating_add(w.sum_ns.load(Relaxed));
            max = max.max(w.max_ns.load(Relaxed));
        }
    }
    RecentLateness {
        window_seconds: WINDOWS as u64 * WINDOW_SECS,
        runs,
        mean_seconds: if runs == 0 {
            0.0
        } else {
            sum as f64 / runs as f64 / 1e9
        },
        max_seconds: max as f64 / 1e9,
    }
}

/// The daemon's health as a status page shows it.
pub fn snapshot() -> MetricsSnapshot {
    let r = &REGISTRY;
    let (started, t0) = start();
    let open: Vec<[u64; 2]> = r
        .alarms_open
        .iter()
        .map(|a| [a[0].load(Relaxed), a[1].load(Relaxed)])
        .collect();
    let last_reload = match r.last_reload.load(Relaxed) {
        RELOAD_NONE => None,
        state => time_of_ms(r.last_reload_ms.load(Relaxed)).map(|at| LastReload {
            at,
            ok: state == RELOAD_OK,
        }),
    };
    MetricsSnapshot {
        version: env!("CARGO_PKG_VERSION"),
        commit: env!("LAXMON_COMMIT"),
        started_at: DateTime::<Utc>::from(started),
        uptime_seconds: t0.elapsed().as_secs_f64(),
        config_generation: r.config_generation.load(Relaxed),
        config_loaded_at: time_of_ms(r.config_loaded_ms.load(Relaxed)),
        last_reload,
        checks_configured: r.checks_configured.iter().map(|c| c.load(Relaxed)).sum(),
        check_runs: r.runs.iter().flatten().map(|c| c.load(Relaxed)).sum(),
        runs_in_flight: gauge(r.in_flight.load(Relaxed)),
        process_slots_in_use: gauge(r.process_slots_in_use.load(Relaxed)),
        process_slots_limit: r.process_slots_limit.load(Relaxed),
        lateness: recent_lateness(),
        missed_slots: r.missed_slots.load(Relaxed),
        writer_queued: r.queued_results.load(Relaxed),
        spool_results: r.spooled_results.load(Relaxed),
        spool_bytes: r.spool_bytes.load(Relaxed),
        store_available: match r.store_state.load(Relaxed) {
            STORE_UP => Some(true),
            STORE_DOWN => Some(false),
            _ => None,
        },
        store_last_write_seconds: match r.store_write.count() {
            0 => None,
            _ => Some(r.store_last_write_ns.load(Relaxed) as f64 / 1e9),
        },
        store_write_failures: r.store_write_failures.load(Relaxed),
        open_alarms: open.iter().map(|a| a[0] + a[1]).sum(),
        open_alarms_acknowledged: open.iter().map(|a| a[1]).sum(),
        outbox_backlog: r.outbox_pending.load(Relaxed),
    }
}

/// One short line for systemd's `STATUS=`, e.g. `120 checks, 3 runs in
/// flight, 2 open alarms (1 acknowledged)`, with the database's absence and
/// a refused reload when they apply.
pub fn status_line() -> String {
    let s = snapshot();
    let mut line = format!(
        "{} checks, {} runs in flight, {} open alarms",
        s.checks_configured, s.runs_in_flight, s.open_alarms
    );
    if s.open_alarms_acknowledged > 0 {
        let _ = write!(line, " ({} acknowledged)", s.open_alarms_acknowledged);
    }
    if s.store_available == Some(false) {
        let _ = write!(
            line,
            "; database away, {} results spooled",
            s.spool_results + s.writer_queued
        );
    }
    if s.last_reload.is_some_and(|r| !r.ok) {
        line.push_str("; last reload refused (see the log)");
    }
    line
}

/// A label value as the text format wants it: `\`, `"` and newline escaped.
fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Writes the exposition, family by family.
struct Text {
    out: String,
}

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        // HELP texts are ours: plain ASCII without `\` or newlines.
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &Histogram) {
        let mut cumulative = 0u64;
        let bucket = format!("{name}_bucket");
        let mut with_le: Vec<(&str, &str)> = labels.to_vec();
        with_le.push(("le", ""));
        let last = with_le.len() - 1;
        for (i, (_, le)) in h.buckets.iter().enumerate() {
            cumulative += h.counts[i].load(Relaxed);
            with_le[last].1 = le;
            self.sample(&bucket, &with_le, cumulative);
        }
        cumulative += h.counts[h.buckets.len()].load(Relaxed);
        with_le[last].1 = "+Inf";
        self.sample(&bucket, &with_le, cumulative);
        self.sample(
            &format!("{name}_sum"),
            labels,
            h.sum_ns.load(Relaxed) as f64 / 1e9,
        );
        self.sample(&format!("{name}_count"), labels, cumulative);
    }
}

/// Every metric in the Prometheus text exposition format (version 0.0.4):
/// what `/metrics` serves. Its size and cost do not depend on the number
/// of configured checks.
pub fn render_text() -> String {
    let r = &REGISTRY;
    let mut t = Text {
        out: String::with_capacity(24 * 1024),
    };
    let (started, t0) = start();

    t.family(
        "laxmon_build_info",
        "gauge",
        "laxmon's version and the git commit it was built from; always 1.",
    );
    t.sample(
        "laxmon_build_info",
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("commit", env!("LAXMON_COMMIT")),
        ],
        1,
    );
    t.family(
        "laxmon_start_time_seconds",
        "gauge",
        "When the process started, in seconds since the Unix epoch.",
    );
    t.sample(
        "laxmon_start_time_seconds",
        &[],
        unix_ms(started) as f64 / 1e3,
    );
    t.family(
        "laxmon_uptime_seconds",
        "gauge",
        "Seconds since the process started.",
    );
    t.sample("laxmon_uptime_seconds", &[], t0.elapsed().as_secs_f64());

    t.family(
        "laxmon_config_generation",
        "gauge",
        "Configurations put to work: 1 at start, one more per reload.",
    );
    t.sample(
        "laxmon_config_generation",
        &[],
        r.config_generation.load(Relaxed),
    );
    t.family(
        "laxmon_config_reloads_total",
        "counter",
        "SIGHUP reloads, by result (ok: the new configuration is put to work; invalid: it did not load and the old one runs on).",
    );
    for (i, result) in ["ok", "invalid"].iter().enumerate() {
        t.sample(
            "laxmon_config_reloads_total",
            &[("result", result)],
            r.reloads[i].load(Relaxed),
        );
    }
    t.family(
        "laxmon_config_last_reload_successful",
        "gauge",
        "Whether the last configuration load succeeded (1) or a SIGHUP brought an invalid one (0).",
    );
    t.sample(
        "laxmon_config_last_reload_successful",
        &[],
        u8::from(r.last_reload.load(Relaxed) != RELOAD_FAILED),
    );
    t.family(
        "laxmon_config_last_reload_success_timestamp_seconds",
        "gauge",
        "When the configuration running now was put to work, in seconds since the Unix epoch.",
    );
    t.sample(
        "laxmon_config_last_reload_success_timestamp_seconds",
        &[],
        r.config_loaded_ms.load(Relaxed) as f64 / 1e3,
    );
    t.family(
        "laxmon_checks_configured",
        "gauge",
        "Checks in the configuration, by kind.",
    );
    for (i, kind) in KINDS.iter().enumerate() {
        t.sample(
            "laxmon_checks_configured",
            &[("kind", kind)],
            r.checks_configured[i].load(Relaxed),
        );
    }

    t.family(
        "laxmon_check_runs_total",
        "counter",
        "Check runs finished, by kind and the state they reported.",
    );
    for (k, kind) in KINDS.iter().enumerate() {
        for (s, state) in STATES.iter().enumerate() {
            t.sample(
                "laxmon_check_runs_total",
                &[("kind", kind), ("state", state.as_str())],
                r.runs[k][s].load(Relaxed),
            );
        }
    }
    t.family(
        "laxmon_check_runs_in_flight",
        "gauge",
        "Check runs started and not finished yet.",
    );
    t.sample(
        "laxmon_check_runs_in_flight",
        &[],
        gauge(r.in_flight.load(Relaxed)),
    );
    t.family(
        "laxmon_check_start_lateness_seconds",
        "histogram",
        "How long after its planned start a check run began (waiting for a process slot included), by kind.",
    );
    for (k, kind) in KINDS.iter().enumerate() {
        t.histogram(
            "laxmon_check_start_lateness_seconds",
            &[("kind", kind)],
            &r.lateness[k],
        );
    }
    t.family(
        "laxmon_check_duration_seconds",
        "histogram",
        "How long check runs took, by kind.",
    );
    for (k, kind) in KINDS.iter().enumerate() {
        t.histogram(
            "laxmon_check_duration_seconds",
            &[("kind", kind)],
            &r.duration[k],
        );
    }
    t.family(
        "laxmon_check_missed_slots_total",
        "counter",
        "Grid slots skipped because a check's previous run was still going (never queued).",
    );
    t.sample(
        "laxmon_check_missed_slots_total",
        &[],
        r.missed_slots.load(Relaxed),
    );
    t.family(
        "laxmon_process_slots_in_use",
        "gauge",
        "External check processes running now.",
    );
    t.sample(
        "laxmon_process_slots_in_use",
        &[],
        gauge(r.process_slots_in_use.load(Relaxed)),
    );
    t.family(
        "laxmon_process_slots_limit",
        "gauge",
        "The most external check processes run at once (engine.max_processes).",
    );
    t.sample(
        "laxmon_process_slots_limit",
        &[],
        r.process_slots_limit.load(Relaxed),
    );

    t.family(
        "laxmon_store_queued_results",
        "gauge",
        "Results in the writer's memory, not yet written to the database.",
    );
    t.sample(
        "laxmon_store_queued_results",
        &[],
        r.queued_results.load(Relaxed),
    );
    t.family(
        "laxmon_store_spooled_results",
        "gauge",
        "Results in the on-disk spool, waiting for the database.",
    );
    t.sample(
        "laxmon_store_spooled_results",
        &[],
        r.spooled_results.load(Relaxed),
    );
    t.family(
        "laxmon_store_spool_bytes",
        "gauge",
        "Bytes of spooled results not yet written to the database.",
    );
    t.sample("laxmon_store_spool_bytes", &[], r.spool_bytes.load(Relaxed));
    match r.store_state.load(Relaxed) {
        STORE_UNKNOWN => {}
        state => {
            t.family(
                "laxmon_store_up",
                "gauge",
                "Whether the last write to the database succeeded (absent before the first write).",
            );
            t.sample("laxmon_store_up", &[], u8::from(state == STORE_UP));
        }
    }
    t.family(
        "laxmon_store_write_duration_seconds",
        "histogram",
        "How long successful batch writes of results to the database took.",
    );
    t.histogram("laxmon_store_write_duration_seconds", &[], &r.store_write);
    t.family(
        "laxmon_store_write_failures_total",
        "counter",
        "Batch writes to the database that failed (their results stay queued or spooled).",
    );
    t.sample(
        "laxmon_store_write_failures_total",
        &[],
        r.store_write_failures.load(Relaxed),
    );
    t.family(
        "laxmon_store_results_written_total",
        "counter",
        "Result rows written to the database.",
    );
    t.sample(
        "laxmon_store_results_written_total",
        &[],
        r.results_written.load(Relaxed),
    );

    t.family(
        "laxmon_alarms_open",
        "gauge",
        "Open alarms, by their check's state and whether they are acknowledged.",
    );
    for (s, state) in STATES.iter().enumerate() {
        for (a, acked) in ["false", "true"].iter().enumerate() {
            t.sample(
                "laxmon_alarms_open",
                &[("state", state.as_str()), ("acked", acked)],
                r.alarms_open[s][a].load(Relaxed),
            );
        }
    }
    t.family(
        "laxmon_notifications_total",
        "counter",
        "Notification deliveries, by notifier kind and outcome (a failed one is retried with backoff).",
    );
    for (c, channel) in CHANNELS.iter().enumerate() {
        for (o, outcome) in ["sent", "failed"].iter().enumerate() {
            t.sample(
                "laxmon_notifications_total",
                &[("channel", channel), ("outcome", outcome)],
                r.notifications[c][o].load(Relaxed),
            );
        }
    }
    t.family(
        "laxmon_outbox_pending",
        "gauge",
        "Notifications in the outbox not delivered yet.",
    );
    t.sample("laxmon_outbox_pending", &[], r.outbox_pending.load(Relaxed));
    t.family(
        "laxmon_actions_total",
        "counter",
        "Alarm actions finished, by kind and outcome.",
    );
    for (k, kind) in ACTION_KINDS.iter().enumerate() {
        for (o, outcome) in ACTION_OUTCOMES.iter().enumerate() {
            t.sample(
                "laxmon_actions_total",
                &[("kind", kind), ("outcome", outcome)],
                r.actions[k][o].load(Relaxed),
            );
        }
    }
    t.family(
        "laxmon_cluster_reorganisations_total",
        "counter",
        "Cluster reorganisations and restores, by outcome.",
    );
    for (k, kind) in REORG_KINDS.iter().enumerate() {
        for (o, outcome) in REORG_OUTCOMES.iter().enumerate() {
            t.sample(
                "laxmon_cluster_reorganisations_total",
                &[("kind", kind), ("outcome", outcome)],
                r.reorganisations[k][o].load(Relaxed),
            );
        }
    }
    t.out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let cases = [
            ("plain", "plain"),
            ("a\"b", "a\\\"b"),
            ("back\\slash", "back\\\\slash"),
            ("two\nlines", "two\\nlines"),
            ("ünïcode", "ünïcode"),
        ];
        for (input, want) in cases {
            assert_eq!(escape_label(input), want, "{input:?}");
        }
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_in_the_count() {
        static H: Histogram = Histogram::new(LATENESS_BUCKETS);
        for ms in [0, 1, 3, 70, 2_000, 120_000] {
            H.observe(Duration::from_millis(ms));
        }
        let mut t = Text { out: String::new() };
        t.histogram("x_seconds", &[("kind", "ping")], &H);
        let lines: Vec<&str> = t.out.lines().collect();
        assert_eq!(lines[0], r#"x_seconds_bucket{kind="ping",le="0.001"} 2"#);
        assert_eq!(lines[1], r#"x_seconds_bucket{kind="ping",le="0.005"} 3"#);
        assert_eq!(lines[4], r#"x_seconds_bucket{kind="ping",le="0.1"} 4"#);
        assert_eq!(lines[7], r#"x_seconds_bucket{kind="ping",le="5"} 5"#);
        assert_eq!(lines[11], r#"x_seconds_bucket{kind="ping",le="+Inf"} 6"#);
        assert_eq!(lines[12], r#"x_seconds_sum{kind="ping"} 122.074"#);
        assert_eq!(lines[13], r#"x_seconds_count{kind="ping"} 6"#);
    }

    #[test]
    fn bucket_bounds_match_their_labels_and_fit() {
        for buckets in [LATENESS_BUCKETS, DURATION_BUCKETS] {
            assert!(buckets.len() < MAX_BUCKETS);
            for w in buckets.windows(2) {
                assert!(w[0].0 < w[1].0);
            }
            for (ns, le) in buckets {
                let secs: f64 = le.parse().expect("le is a number");
                assert_eq!((secs * 1e9).round() as u64, *ns, "{le}");
            }
        }
    }
}
