//! Wires the pipeline: schedule -> check -> state -> store, alarm, cluster.
//!
//! [`run`] opens the store, resumes states, starts the alarm stage
//! ([`alarms`]) and the cluster stage ([`cluster`]), and runs the
//! [`Scheduler`]: one task that owns every check's timing and state and
//! spawns the runs, so a check never overlaps itself. Each finished run
//! becomes a [`CheckResult`] that a fan-out task hands to the result writer
//! (never blocking), the alarm stage (through its bounded [`intake`]) and
//! the cluster stage. On SIGTERM or SIGINT the scheduler stops planning, the
//! runs in flight finish within their timeout, and every stage drains before
//! [`run`] returns; SIGHUP returns [`Stop::Reload`] with the new
//! configuration. [`Shared`] is how the rest of the process (the HTTP API)
//! reaches into the running stages, across reloads.

pub(crate) mod alarms;
pub(crate) mod cluster;
pub mod control;
#[cfg(test)]
mod control_tests;
pub(crate) mod intake;
pub mod live;
mod scheduler;
pub mod shared;

pub use alarms::AlarmStage;
pub use cluster::{ClusterStage, ClusterWork};
pub use control::AlarmControl;
pub use live::LiveView;
pub use scheduler::{RunNow, Scheduler, SchedulerControl};
pub use shared::{Generation, ReloadOutcome, Shared};

use crate::checks::{CheckOutput, Runner, State};
use crate::config::{Check, Config};
use crate::result::CheckResult;
use crate::store::{self, ResultWriter, Store, WriterOptions};
use chrono::Utc;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How long shutdown waits for the result writer to flush (the rest stays in the spool).
const WRITER_FLUSH: Duration = Duration::from_secs(30);
/// How often the alarm state is tried again while the database is away at start.
const ALARM_RESTORE_RETRY: Duration = Duration::from_secs(5);
/// How long shutdown waits for cluster actions in progress.
const CLUSTER_GRACE: Duration = Duration::from_secs(60);
/// How often old results and events are dropped.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);
/// The systemd watchdog timeout while a reload stops and restarts the
/// pipeline (the scheduler does not ping meanwhile): the shutdown graces
/// (writer 30 s, actions 60 s, cluster 60 s, deliveries 5 s) and then some.
const RELOAD_WATCHDOG: Duration = Duration::from_secs(300);

/// Runs the daemon until SIGTERM or SIGINT: every check on its schedule, each
/// result through the state machine into the store, the alarm stage and the
/// cluster stage. Starts even while the database is away (results wait in
/// the spool); resumes states, attempts, open alarms and the outbox. The
/// stages answer `shared`'s handles while they run.
pub async fn run(config: Config, shared: Arc<Shared>) -> anyhow::Result<Stop> {
    withhold_secrets(&config);
    let config = Arc::new(config);
    crate::metrics::config_loaded(config.checks.iter().map(|c| c.kind_name()));
    let store = Store::open_lazy(&config.storage)?;
    tracing::info!(store = %store.describe(), "opening the store");
    match store.migrate().await {
        Ok(applied) if !applied.is_empty() => tracing::info!(?applied, "database migrated"),
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %e, "database not ready; results wait in the spool until it is")
        }
    }
    if let Err(e) = store.sync_config(&config).await {
        tracing::warn!(error = %e, "cannot record the configured hosts and checks");
    }
    let resumed = store::resume_states(&store, &config.storage.spool_dir)
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot resume check states; starting fresh");
            Vec::new()
        });
    if !resumed.is_empty() {
        tracing::info!(checks = resumed.len(), "resumed check states");
    }
    let writer = ResultWriter::start(store.clone(), WriterOptions::from_config(&config.storage))?;
    let live = Arc::new(LiveView::new(&config, &resumed));
    let mut scheduler = Scheduler::new(&config, Runner::new(&config), resumed)
        .with_live(Arc::clone(&live))
        .with_watchdog(crate::systemd::Watchdog::from_env());
    let generation = shared.start_generation(
        Arc::clone(&config),
        store.clone(),
        Arc::clone(&live),
        scheduler.control(),
    );

    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let (cluster_tx, cluster_rx) = mpsc::unbounded_channel();
    let (alarm_tx, alarm_rx) = intake::intake();
    let (result_tx, mut result_rx) = mpsc::unbounded_channel::<CheckResult>();

    let (action_tx, action_rx) = mpsc::unbounded_channel();
    let alarm_config = Arc::clone(&config);
    let alarm_store = store.clone();
    let alarm_control = shared.alarms().clone();
    let alarms = tokio::spawn(async move {
        // The alarm state must come from the store (ids, open alarms, the
        // outbox): starting empty would reuse alarm ids and notification keys.
        // While the database is away, results wait in the intake, coalesced
        // per check so that memory stays bounded however long that lasts.
        let stage = loop {
            match AlarmStage::restore(Arc::clone(&alarm_config), alarm_store.clone()).await {
                Ok(stage) => break stage,
                Err(e) if alarm_rx.is_closed() => {
                    tracing::error!(error = %e, "stopping before the alarm state could be restored");
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, waiting = alarm_rx.len(), "alarm state not restored yet; alarms wait for the database");
                    tokio::time::sleep(ALARM_RESTORE_RETRY).await;
                }
            }
        };
        stage
            .with_cluster_actions(action_tx)
            .with_control(alarm_control)
            .run(alarm_rx, done_rx)
            .await;
    });
    let cluster =
        tokio::spawn(ClusterStage::new(Arc::clone(&config), done_tx).run(cluster_rx, action_rx));
    let alive_checks: std::collections::HashSet<String> = config
        .clusters
        .iter()
        .flat_map(|c| c.servers.iter().filter_map(|s| s.alive.clone()))
        .collect();
    let fanout_generation = Arc::clone(&generation);
    let fanout = tokio::spawn(async move {
        while let Some(result) = result_rx.recv().await {
            log_result(&result);
            live.record(&result);
            fanout_generation.publish(&result);
            if let Err(e) = writer.submit_result(&result, Some(&result.state)) {
                tracing::error!(error = %e, "result not stored");
            }
            if alive_checks.contains(&result.check) {
                let _ = cluster_tx.send(ClusterWork::Result(result.clone()));
            }
            alarm_tx.send(result);
        }
        writer
    });
    let retention_store = store.clone();
    let retention = tokio::spawn(async move {
        let mut every = tokio::time::interval(RETENTION_EVERY);
        loop {
            every.tick().await;
            match retention_store.retention().await {
                Ok(r) => {
                    tracing::info!(results = r.results, events = r.events, partitions = ?r.partitions_dropped, "retention")
                }
                Err(e) => tracing::warn!(error = %e, "retention failed; trying again later"),
            }
        }
    });

    let status = tokio::spawn(crate::systemd::report_status());
    tracing::info!(
        checks = config.checks.len(),
        hosts = config.hosts.len(),
        clusters = config.clusters.len(),
        config = %config.path.display(),
        generation = generation.number,
        "laxmon started"
    );
    drop(generation);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let stop_shared = Arc::clone(&shared);
    let stop_signal = async move {
        let stop = tokio::select! {
            stop = stop_signal(&stop_shared) => stop,
            stop = stop_shared.reload_requested() => stop,
        };
        // The API stops reaching this generation before it drains.
        stop_shared.end_generation();
        let _ = stop_tx.send(stop);
    };
    crate::systemd::ready(&crate::metrics::status_line());
    scheduler.run(result_tx, stop_signal).await;
    retention.abort();
    status.abort();
    // Results first: the writer flushes (or spools) before the stages finish
    // their actions and deliveries.
    let writer = fanout.await?;
    let stats = writer.shutdown(WRITER_FLUSH).await;
    // A reorganisation in progress gets a grace; after it, it is abandoned
    // and resumed from its journal at the next start.
    let mut cluster = cluster;
    if tokio::time::timeout(CLUSTER_GRACE, &mut cluster)
        .await
        .is_err()
    {
        tracing::warn!("cluster actions still running at shutdown; they resume from their journal at the next start");
        cluster.abort();
    }
    alarms.await?;
    tracing::info!(
        written = stats.written,
        spooled = stats.spooled,
        queued = stats.queued,
        "laxmon stopped"
    );
    Ok(stop_rx.await.unwrap_or(Stop::Terminated))
}

/// Why [`run`] returned.
#[derive(Debug)]
pub enum Stop {
    /// SIGTERM or SIGINT: exit.
    Terminated,
    /// SIGHUP with a valid configuration: run again with it.
    Reload(Box<Config>),
}

/// Waits for SIGTERM/SIGINT (stop) or SIGHUP (reload the configuration
/// file). A SIGHUP with a configuration that does not load is logged with
/// every error, remembered as the last reload's outcome, and ignored: the
/// daemon keeps running on what it has.
pub async fn stop_signal(shared: &Shared) -> Stop {
    use tokio::signal::unix::{signal, SignalKind};
    let path = shared.config_path();
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        shutdown_signal().await;
        crate::systemd::stopping();
        return Stop::Terminated;
    };
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => {
                crate::systemd::stopping();
                return Stop::Terminated;
            }
            _ = hup.recv() => match reload(path) {
                Ok(config) => {
                    tracing::info!(config = %path.display(), "SIGHUP: reloading the configuration");
                    shared.record_reload(ReloadOutcome::taken("SIGHUP"));
                    return Stop::Reload(Box::new(config));
                }
                Err(errors) => {
                    for e in &errors.0 {
                        tracing::error!(error = %e, "configuration not reloaded");
                    }
                    shared.record_reload(ReloadOutcome::refused("SIGHUP", &errors));
                }
            },
        }
    }
}

/// Loads the configuration for a SIGHUP, telling systemd (`RELOADING=1`)
/// and counting the outcome.
pub fn reload(path: &std::path::Path) -> Result<Config, crate::config::ConfigErrors> {
    crate::systemd::reloading(RELOAD_WATCHDOG);
    let loaded = crate::config::load(path);
    crate::metrics::config_reload(loaded.is_ok());
    if loaded.is_err() {
        // Refused: the daemon goes on as it was.
        crate::systemd::ready(&crate::metrics::status_line());
    }
    loaded
}

/// Keeps the variables that carry laxmon's own secrets (the database
/// password's `storage.password_env`) out of every child's environment.
fn withhold_secrets(config: &Config) {
    if let Some(var) = &config.storage.password_env {
        crate::process::withhold_from_children(var);
    }
}

/// Resolves when SIGTERM or SIGINT arrives.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: stopping"),
                _ = int.recv() => tracing::info!("SIGINT: stopping"),
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Logs every state change; the default sink when nothing else consumes results.
pub async fn log_results(mut rx: mpsc::UnboundedReceiver<CheckResult>) {
    while let Some(r) = rx.recv().await {
        log_result(&r);
    }
}

/// Logs one result: state changes at info (hard problems at warn), the rest at debug.
pub fn log_result(r: &CheckResult) {
    let t = &r.transition;
    let cur = t.current;
    if t.is_hard_change() && cur.state != State::Ok {
        tracing::warn!(check = %r.check, host = %r.host, state = %cur.state, state_type = %cur.state_type, attempt = cur.attempt, unreachable = t.unreachable, output = %r.output.output, "HARD state change");
    } else if t.is_state_change() || t.is_hard_change() || t.flap_change.is_some() {
        tracing::info!(check = %r.check, host = %r.host, state = %cur.state, state_type = %cur.state_type, attempt = cur.attempt, previous = %t.previous.state, flapping = t.flapping, unreachable = t.unreachable, output = %r.output.output, "state change");
    } else {
        tracing::debug!(check = %r.check, state = %cur.state, state_type = %cur.state_type, attempt = cur.attempt, unreachable = t.unreachable, duration_ms = r.duration.as_secs_f64() * 1000.0, lateness_ms = r.lateness().as_secs_f64() * 1000.0, "result");
    }
}

/// One line of `laxmon check --json`, exactly as `docs/checks.md` pins it.
#[derive(Debug, Serialize)]
struct JsonResult<'a> {
    name: &'a str,
    kind: &'a str,
    state: State,
    output: &'a str,
    long_output: &'a str,
    perfdata: &'a [crate::checks::PerfDatum],
    duration_ms: f64,
}

/// `laxmon check`: runs the named checks (all when none) once, concurrently,
/// prints them, and returns the worst state as exit status.
pub async fn check_once(config: &Config, names: &[String], json: bool) -> u8 {
    withhold_secrets(config);
    let runner = Arc::new(Runner::new(config));
    let selected: Vec<&Check> = if names.is_empty() {
        config.checks.iter().collect()
    } else {
        names.iter().filter_map(|n| config.check(n)).collect()
    };
    let mut handles = Vec::new();
    for c in &selected {
        let check = (*c).clone();
        let runner = Arc::clone(&runner);
        handles.push(tokio::spawn(async move { runner.run(&check).await }));
    }
    let mut runs = Vec::new();
    for (c, h) in selected.iter().zip(handles) {
        let run = match h.await {
            Ok(run) => run,
            Err(e) => crate::checks::Run {
                output: CheckOutput::unknown(format!("check task failed: {e}")),
                started: Utc::now(),
                duration: Duration::ZERO,
            },
        };
        runs.push((*c, run));
    }
    let worst = runs
        .iter()
        .map(|(_, r)| r.output.state)
        .max_by_key(|s| s.severity())
        .unwrap_or(State::Ok);
    if json {
        let items: Vec<JsonResult> = runs
            .iter()
            .map(|(c, r)| JsonResult {
                name: &c.name,
                kind: c.kind_name(),
                state: r.output.state,
                output: &r.output.output,
                long_output: &r.output.long_output,
                perfdata: &r.output.perfdata,
                duration_ms: (r.duration.as_secs_f64() * 1_000_000.0).round() / 1000.0,
            })
            .collect();
        match serde_json::to_string(&items) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("laxmon: cannot encode results as JSON: {e}");
                return State::Unknown.code() as u8;
            }
        }
    } else {
        let width = runs
            .iter()
            .map(|(c, _)| c.name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        for (c, r) in &runs {
            let perf = crate::checks::format_perfdata(&r.output.perfdata);
            let perf = if perf.is_empty() {
                String::new()
            } else {
                format!(" | {perf}")
            };
            println!(
                "{:width$}  {:8}  {:>8.1}ms  {}{}",
                c.name,
                r.output.state.as_str(),
                r.duration.as_secs_f64() * 1000.0,
                r.output.output,
                perf,
            );
            for line in r.output.long_output.lines() {
                println!("{:width$}  {line}", "");
            }
        }
    }
    worst.code() as u8
}
