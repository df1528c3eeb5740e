//! Wires the pipeline: schedule -> check -> state -> (store, alarm).
//!
//! One scheduler task owns every check's [`Slot`] and [`CheckState`]; runs
//! are spawned as tasks and report back over a channel, so no state is
//! shared between tasks and a check never overlaps itself. Each finished run
//! becomes a [`CheckResult`] that goes to the result sink. On SIGTERM/SIGINT
//! the scheduler stops planning, waits for the runs in flight (each ends
//! within its timeout) and hands every result to the sink before returning.

pub mod cluster;
mod scheduler;

pub use scheduler::Scheduler;

use crate::checks::{CheckOutput, Runner, State};
use crate::config::{Check, Config};
use crate::state::{Status, Transition};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// One finished run of a check, with the state it led to.
#[derive(Debug, Clone)]
pub struct CheckResult {
    /// The check's name.
    pub check: String,
    /// The host entry it ran against (`local` for the admin server).
    pub host: String,
    /// The check's kind (`ping`, `port`, `init`, `plugin`).
    pub kind: &'static str,
    /// What the check said.
    pub output: CheckOutput,
    /// When the run was planned to start.
    pub planned: DateTime<Utc>,
    /// When it really started (after waiting for a process slot, for external checks).
    pub started: DateTime<Utc>,
    /// How long the run took.
    pub duration: Duration,
    /// What the result did to the check's state.
    pub transition: Transition,
}

impl CheckResult {
    /// Start lateness: actual start minus planned start (never negative).
    pub fn lateness(&self) -> Duration {
        (self.started - self.planned)
            .to_std()
            .unwrap_or(Duration::ZERO)
    }

    /// The state after this result.
    pub fn status(&self) -> Status {
        self.transition.current
    }
}

/// Runs the daemon until SIGTERM or SIGINT: every check on its schedule, each
/// result through the state machine and into the log.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let (tx, rx) = mpsc::unbounded_channel();
    let sink = tokio::spawn(log_results(rx));
    let scheduler = Scheduler::new(&config, Runner::new(&config), Vec::new());
    tracing::info!(
        checks = config.checks.len(),
        hosts = config.hosts.len(),
        config = %config.path.display(),
        "laxmon started"
    );
    scheduler.run(tx, shutdown_signal()).await;
    sink.await?;
    tracing::info!("laxmon stopped");
    Ok(())
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

/// One line of `laxmon check --json`, exactly as the spec pins it.
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
