//! The scheduler loop: one task owns every check's [`Slot`] and
//! [`CheckState`], spawns runs and turns what they report into
//! [`CheckResult`]s.
//!
//! Runs report back over a channel, so a check never overlaps itself and no
//! state is shared between tasks. On shutdown it stops planning, waits for
//! the runs in flight and hands their results on before returning.
//! The loop itself pings systemd's watchdog, so a stuck loop stops the
//! pings and gets the daemon restarted.

use super::live::LiveView;
use super::CheckResult;
use crate::checks::Runner;
use crate::config::{Check, Config};
use crate::schedule::{Cadence, Slot};
use crate::state::{CheckState, IntervalKind, Policy, Reachability};
use chrono::{DateTime, Utc};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// How many requests to the scheduler may wait at once.
const CONTROL_QUEUE: usize = 256;

/// A request to the scheduler loop from outside (the operations API).
enum Command {
    /// Run check `index` now, unless it is running.
    RunNow {
        index: usize,
        reply: oneshot::Sender<RunNow>,
    },
}

/// What a request to run a check now did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunNow {
    /// A run started now; its result follows the usual way.
    Started,
    /// The check was running already; its result follows.
    AlreadyRunning,
}

/// Sends requests to a running scheduler.
#[derive(Clone)]
pub struct SchedulerControl {
    tx: mpsc::Sender<Command>,
}

impl SchedulerControl {
    /// Asks the scheduler to run check `index` (configuration order) now;
    /// `None` when the scheduler is not running (stopping or reloading).
    pub async fn run_now(&self, index: usize) -> Option<RunNow> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Command::RunNow { index, reply }).await.ok()?;
        rx.await.ok()
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

/// The scheduler: owns every check's timing and state.
pub struct Scheduler {
    checks: Vec<Arc<Check>>,
    slots: Vec<Slot>,
    states: Vec<CheckState>,
    /// For each check, the index of its host's host check, if any (and not itself).
    host_check: Vec<Option<usize>>,
    runner: Arc<Runner>,
    clock: Clock,
    live: Option<Arc<LiveView>>,
    control: Option<mpsc::Receiver<Command>>,
    /// Pinged from the loop itself, so a stuck loop stops the pings.
    watchdog: crate::systemd::Watchdog,
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
            live: None,
            control: None,
            watchdog: crate::systemd::Watchdog::disabled(),
        }
    }

    /// Has the loop ping `watchdog` (systemd's `WATCHDOG=1`) while it runs.
    pub fn with_watchdog(mut self, watchdog: crate::systemd::Watchdog) -> Scheduler {
        self.watchdog = watchdog;
        self
    }

    /// Keeps `live` told of every planned start.
    pub fn with_live(mut self, live: Arc<LiveView>) -> Scheduler {
        self.live = Some(live);
        self
    }

    /// A handle that asks this scheduler, once running, to run checks now.
    pub fn control(&mut self) -> SchedulerControl {
        let (tx, rx) = mpsc::channel(CONTROL_QUEUE);
        self.control = Some(rx);
        SchedulerControl { tx }
    }

    fn plan(
        &self,
        due: &mut BinaryHeap<Reverse<(Instant, usize, u32)>>,
        i: usize,
        at: Instant,
        epoch: u32,
    ) {
        if let Some(live) = &self.live {
            live.planned(i, self.clock.wall(at));
        }
        due.push(Reverse((at, i, epoch)));
    }

    /// Runs until `shutdown` resolves, sending every result to `results`; then
    /// waits for the runs in flight and sends their results too.
    pub async fn run(
        mut self,
        results: mpsc::UnboundedSender<CheckResult>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Finished>();
        // A queued start whose epoch is not its check's current one was
        // superseded by a run requested now, and is skipped.
        let mut epoch = vec![0u32; self.slots.len()];
        let mut running = vec![false; self.slots.len()];
        let mut due = BinaryHeap::with_capacity(self.slots.len());
        for i in 0..self.slots.len() {
            self.plan(&mut due, i, self.slots[i].planned, 0);
        }
        let mut control = self.control.take();
        let mut in_flight = 0usize;
        tokio::pin!(shutdown);
        loop {
            self.watchdog.ping_if_due();
            let next_due = due.peek().map(|Reverse((t, _, _))| *t);
            tokio::select! {
                biased;
                _ = &mut shutdown => break,
                Some(done) = done_rx.recv() => {
                    in_flight -= 1;
                    let i = done.index;
                    running[i] = false;
                    let result = self.finish(done);
                    let cadence = match result.transition.next_interval {
                        IntervalKind::Retry => Cadence::Retry,
                        IntervalKind::Normal => Cadence::Normal,
                    };
                    let skipped = self.slots[i].skipped;
                    let next = self.slots[i].next(cadence, Instant::now());
                    crate::metrics::missed_slots(self.slots[i].skipped - skipped);
                    self.plan(&mut due, i, next, epoch[i]);
                    let _ = results.send(result);
                }
                Some(command) = recv_opt(&mut control) => match command {
                    Command::RunNow { index, reply } if index < running.len() => {
                        if running[index] {
                            let _ = reply.send(RunNow::AlreadyRunning);
                        } else {
                            epoch[index] = epoch[index].wrapping_add(1);
                            running[index] = true;
                            in_flight += 1;
                            self.spawn_run(index, Instant::now(), done_tx.clone());
                            let _ = reply.send(RunNow::Started);
                        }
                    }
                    Command::RunNow { .. } => {}
                },
                _ = sleep_until_opt(next_due) => {
                    let now = Instant::now();
                    while let Some(&Reverse((t, i, e))) = due.peek() {
                        if t > now {
                            break;
                        }
                        due.pop();
                        if e != epoch[i] {
                            continue;
                        }
                        running[i] = true;
                        in_flight += 1;
                        self.spawn_run(i, t, done_tx.clone());
                    }
                }
                _ = self.watchdog.due() => {}
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
        crate::metrics::check_run_started();
        tokio::spawn(async move {
            // The run in a task of its own: should it panic (a bug), the check
            // still reports back (UNKNOWN) and shutdown does not wait for it forever.
            let started = chrono::Utc::now();
            let run = match tokio::spawn(async move { runner.run(&check).await }).await {
                Ok(run) => run,
                Err(e) => crate::checks::Run {
                    output: crate::checks::CheckOutput::unknown(format!("check run failed: {e}")),
                    started,
                    duration: std::time::Duration::ZERO,
                },
            };
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
        let result = CheckResult {
            check: check.name.clone(),
            host: check.host.clone(),
            kind: check.kind_name(),
            output: done.run.output,
            planned: self.clock.wall(done.planned),
            started: done.run.started,
            duration: done.run.duration,
            transition,
            state: self.states[done.index].clone(),
        };
        let s = &result;
        let state = s.output.state;
        crate::metrics::check_run_finished(s.kind, state, s.started, s.lateness(), s.duration);
        result
    }
}

async fn recv_opt(rx: &mut Option<mpsc::Receiver<Command>>) -> Option<Command> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
