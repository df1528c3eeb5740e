//! Wires the pipeline: schedule -> check -> state -> (store, alarm).
//!
//! One scheduler task owns every check's [`Slot`] and [`CheckState`]; runs
//! are spawned as tasks and report back over a channel, so no state is
//! shared between tasks and a check never overlaps itself. Each finished run
//! becomes a [`CheckResult`] that goes to the result sink. On SIGTERM/SIGINT
//! the scheduler stops planning, waits for the runs in flight (each ends
//! within its timeout) and hands every result to the sink before returning.

use crate::checks::{CheckOutput, Runner, State};
use crate::config::{Check, Config};
use crate::schedule::{Cadence, Slot};
use crate::state::{CheckState, IntervalKind, Policy, Reachability, Status, Transition};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

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

/// A run that finished, on its way back to the scheduler.
struct Finished {
    index: usize,
    planned: Instant,
    run: crate::checks::Run,
}

/// Converts monotonic instants to wall-clock times against one fixed pair.
#[derive(Clone, Copy)]
struct Clock {
    instant: Instant,
    wall: DateTime<Utc>,
}

impl Clock {
    fn now() -> Clock {
        Clock {
            instant: Instant::now(),
            wall: Utc::now(),
        }
    }

    fn wall(&self, at: Instant) -> DateTime<Utc> {
        let d = chrono::Duration::from_std(at.saturating_duration_since(self.instant))
            .unwrap_or_default();
        self.wall + d
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

/// The scheduler: owns every check's timing and state.
pub struct Scheduler {
    checks: Vec<Arc<Check>>,
    slots: Vec<Slot>,
    states: Vec<CheckState>,
    /// For each check, the index of its host's host check, if any (and not itself).
    host_check: Vec<Option<usize>>,
    runner: Arc<Runner>,
    clock: Clock,
}

impl Scheduler {
    /// Builds the scheduler for `config`; `resumed` holds states saved by an
    /// earlier run, by check name (missing checks start fresh).
    pub fn new(config: &Config, runner: Runner, resumed: Vec<(String, CheckState)>) -> Scheduler {
        let clock = Clock::now();
        let n = config.checks.len();
        let checks: Vec<Arc<Check>> = config.checks.iter().cloned().map(Arc::new).collect();
        let slots = checks
            .iter()
            .enumerate()
            .map(|(i, c)| Slot::spread(clock.instant, i, n, c.interval, c.retry_interval))
            .collect();
        let states = checks
            .iter()
            .map(|c| {
                resumed
                    .iter()
                    .find(|(name, _)| *name == c.name)
                    .map(|(_, s)| s.clone())
                    .unwrap_or_default()
            })
            .collect();
        let host_check = checks
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let hc = config.host(&c.host)?.host_check.as_deref()?;
                let j = checks.iter().position(|x| x.name == hc)?;
                (j != i).then_some(j)
            })
            .collect();
        Scheduler {
            checks,
            slots,
            states,
            host_check,
            runner: Arc::new(runner),
            clock,
        }
    }

    /// Runs until `shutdown` resolves, sending every result to `results`; then
    /// waits for the runs in flight and sends their results too.
    pub async fn run(
        mut self,
        results: mpsc::UnboundedSender<CheckResult>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Finished>();
        let mut due: BinaryHeap<Reverse<(Instant, usize)>> = self
            .slots
            .iter()
            .enumerate()
            .map(|(i, s)| Reverse((s.planned, i)))
            .collect();
        let mut in_flight = 0usize;
        tokio::pin!(shutdown);
        loop {
            let next_due = due.peek().map(|Reverse((t, _))| *t);
            tokio::select! {
                biased;
                _ = &mut shutdown => break,
                Some(done) = done_rx.recv() => {
                    in_flight -= 1;
                    let i = done.index;
                    let result = self.finish(done);
                    let cadence = match result.transition.next_interval {
                        IntervalKind::Retry => Cadence::Retry,
                        IntervalKind::Normal => Cadence::Normal,
                    };
                    let next = self.slots[i].next(cadence, Instant::now());
                    due.push(Reverse((next, i)));
                    let _ = results.send(result);
                }
                _ = sleep_until_opt(next_due) => {
                    let now = Instant::now();
                    while let Some(&Reverse((t, i))) = due.peek() {
                        if t > now {
                            break;
                        }
                        due.pop();
                        in_flight += 1;
                        self.spawn_run(i, t, done_tx.clone());
                    }
                }
            }
        }
        tracing::info!(in_flight, "waiting for running checks to finish");
        while in_flight > 0 {
            match done_rx.recv().await {
                Some(done) => {
                    in_flight -= 1;
                    let result = self.finish(done);
                    let _ = results.send(result);
                }
                None => break,
            }
        }
    }

    fn spawn_run(&self, index: usize, planned: Instant, done: mpsc::UnboundedSender<Finished>) {
        let check = Arc::clone(&self.checks[index]);
        let runner = Arc::clone(&self.runner);
        tokio::spawn(async move {
            let run = runner.run(&check).await;
            let _ = done.send(Finished {
                index,
                planned,
                run,
            });
        });
    }

    fn finish(&mut self, done: Finished) -> CheckResult {
        let check = &self.checks[done.index];
        let reach = Reachability::from_host_check(self.host_check[done.index].map(|j| {
            let s = &self.states[j];
            (s.state(), s.state_type())
        }));
        let policy = Policy {
            max_attempts: check.max_attempts,
            ..Policy::default()
        };
        let transition =
            self.states[done.index].apply(done.run.output.state, &policy, reach, done.run.started);
        CheckResult {
            check: check.name.clone(),
            host: check.host.clone(),
            kind: check.kind_name(),
            output: done.run.output,
            planned: self.clock.wall(done.planned),
            started: done.run.started,
            duration: done.run.duration,
            transition,
        }
    }
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
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
