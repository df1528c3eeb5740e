//! The cluster stage: carries out `clusterreorg` and `restart-vm` alarm
//! actions, restores VMs when a failed server's liveness check recovers
//! (`restart_on_return`), and resumes reorganisations a killed daemon left
//! unfinished.
//!
//! One reorganisation per cluster runs at a time (a lock per cluster), so two
//! alarms for one cluster never plan against each other. The executor owns
//! every safety rule (fence first, ask every server before a start); this
//! stage only decides when to call it and records what it did.

use super::CheckResult;
use crate::alarm::lifecycle::ActionRequest;
use crate::alarm::store::ActionRun;
use crate::checks::State;
use crate::cluster::executor::{self, ReorgOptions, ReorgReport};
use crate::cluster::journal::{Journal, RunKind};
use crate::cluster::restart;
use crate::config::alarms::Action;
use crate::config::{ClusterConfig, Config, DriverConfig};
use crate::metrics::{ReorgKind, ReorgOutcome};
use crate::state::Change;
use chrono::Utc;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinSet;

/// Work for the cluster stage besides alarm actions.
#[derive(Debug)]
pub enum ClusterWork {
    /// A check result (only results of liveness checks matter).
    Result(CheckResult),
}

/// The cluster stage: one task that spawns executor runs.
pub struct ClusterStage {
    config: Arc<Config>,
    /// Unfinished reorganisations waiting for their server's liveness check
    /// to confirm it dead again (unfenced mode), by (cluster, server).
    awaiting_confirmation: Vec<(String, String)>,
    locks: HashMap<String, Arc<Mutex<()>>>,
    runs: JoinSet<Option<ActionRun>>,
    /// Finished action runs go back to the alarm stage to be recorded.
    done: mpsc::UnboundedSender<ActionRun>,
}

impl ClusterStage {
    /// A stage for the clusters of `config`; finished runs go to `done`.
    pub fn new(config: Arc<Config>, done: mpsc::UnboundedSender<ActionRun>) -> ClusterStage {
        let locks = config
            .clusters
            .iter()
            .map(|c| (c.name.clone(), Arc::new(Mutex::new(()))))
            .collect();
        ClusterStage {
            config,
            awaiting_confirmation: Vec::new(),
            locks,
            runs: JoinSet::new(),
            done,
        }
    }

    /// Runs until both `work` and `actions` close, then waits for the
    /// executor runs in flight.
    pub async fn run(
        mut self,
        mut work: mpsc::UnboundedReceiver<ClusterWork>,
        mut actions: mpsc::UnboundedReceiver<ActionRequest>,
    ) {
        self.init_simulated().await;
        self.resume_unfinished();
        let (mut work_open, mut actions_open) = (true, true);
        while work_open || actions_open {
            tokio::select! {
                w = work.recv(), if work_open => match w {
                    Some(ClusterWork::Result(r)) => self.result(&r),
                    None => work_open = false,
                },
                a = actions.recv(), if actions_open => match a {
                    Some(req) => self.action(req),
                    None => actions_open = false,
                },
                Some(done) = self.runs.join_next(), if !self.runs.is_empty() => self.finished(done),
            }
        }
        while let Some(done) = self.runs.join_next().await {
            self.finished(done);
        }
    }

    fn finished(&self, done: Result<Option<ActionRun>, tokio::task::JoinError>) {
        match done {
            Ok(Some(run)) => {
                let _ = self.done.send(run);
            }
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "cluster task failed"),
        }
    }

    /// Creates the state of simulated clusters (from their config) if it does
    /// not exist yet, so their liveness checks have something to ask.
    async fn init_simulated(&self) {
        for cluster in &self.config.clusters {
            if matches!(cluster.driver, DriverConfig::Sim { .. }) {
                if let Err(e) = executor::status(cluster).await {
                    tracing::warn!(cluster = %cluster.name, error = %e, "cannot set up the simulated cluster");
                }
            }
        }
    }

    /// Picks up reorganisations and restores a killed daemon left unfinished.
    fn resume_unfinished(&mut self) {
        for cluster in self.config.clusters.clone() {
            let unfinished = match Journal::open(&cluster.state_dir, &cluster.name)
                .and_then(|j| j.unfinished())
            {
                Ok(u) => u,
                Err(e) => {
                    tracing::error!(cluster = %cluster.name, error = %e, "cannot read the cluster journal");
                    continue;
                }
            };
            for u in unfinished {
                tracing::warn!(cluster = %cluster.name, server = %u.server, run = %u.id, "resuming an unfinished cluster run");
                let fenced_by_command =
                    cluster.server(&u.server).is_some_and(|s| s.fence.is_some());
                match u.kind {
                    // Without a fence command the server must be confirmed dead
                    // again: wait for its liveness check to say HARD CRITICAL.
                    RunKind::Reorg if !fenced_by_command => {
                        tracing::warn!(cluster = %cluster.name, server = %u.server, "unfenced run resumes once the liveness check confirms the server dead");
                        self.awaiting_confirmation
                            .push((cluster.name.clone(), u.server));
                    }
                    RunKind::Reorg => {
                        self.spawn(cluster.clone(), u.server, Job::Reorg, None, false)
                    }
                    RunKind::Restore => {
                        self.spawn(cluster.clone(), u.server, Job::Restore, None, false)
                    }
                }
            }
        }
    }

    fn action(&mut self, req: ActionRequest) {
        if matches!(req.action, Action::ClusterReorg { .. }) && req.facts.get("state") != "CRITICAL"
        {
            let msg = format!(
                "not reorganising: {} is {}, not CRITICAL; a server is replaced only when its liveness check confirms it dead",
                req.check,
                req.facts.get("state")
            );
            tracing::error!(alarm = req.alarm_id, "{msg}");
            crate::metrics::reorganisation(ReorgKind::Reorganise, ReorgOutcome::Refused);
            let _ = self.done.send(failed_run(&req, msg));
            return;
        }
        let (cluster_name, job) = match &req.action {
            Action::ClusterReorg { cluster } => (Some(cluster.clone()), Job::Reorg),
            Action::RestartVm { vm, cluster } => (cluster.clone(), Job::RestartVm(vm.clone())),
            _ => return,
        };
        let cluster = match cluster_name {
            Some(name) => self.config.cluster(&name).cloned(),
            None => match &job {
                Job::RestartVm(vm) => self
                    .config
                    .clusters
                    .iter()
                    .find(|c| c.vm(vm).is_some())
                    .cloned(),
                _ => None,
            },
        };
        let Some(cluster) = cluster else {
            tracing::error!(
                alarm = req.alarm_id,
                action = req.action.kind(),
                "the action names no configured cluster"
            );
            let _ = self
                .done
                .send(failed_run(&req, "no such cluster is configured".into()));
            return;
        };
        let server = match &job {
            // Only a server's own liveness check says it is dead: a CRITICAL
            // disk or service check on the same host must never fence it.
            Job::Reorg => match cluster.server_alive_by(&req.check) {
                Some(s) => s.name.clone(),
                None => {
                    let msg = format!(
                        "not reorganising: check {} is not the liveness check (`alive:`) of a server of cluster {}",
                        req.check, cluster.name
                    );
                    tracing::error!(alarm = req.alarm_id, "{msg}");
                    crate::metrics::reorganisation(ReorgKind::Reorganise, ReorgOutcome::Refused);
                    let _ = self.done.send(failed_run(&req, msg));
                    return;
                }
            },
            _ => req.host.clone(),
        };
        // The alarm opened on a HARD CRITICAL liveness check: the server is confirmed dead.
        self.spawn(cluster, server, job, Some(req), true);
    }

    fn result(&mut self, r: &CheckResult) {
        let confirmed_dead = r.transition.current.state == State::Critical
            && r.transition.current.state_type == crate::state::StateType::Hard;
        if confirmed_dead && !self.awaiting_confirmation.is_empty() {
            let waiting = std::mem::take(&mut self.awaiting_confirmation);
            for (cluster_name, server) in waiting {
                let cluster = self.config.cluster(&cluster_name).cloned();
                match cluster {
                    Some(c)
                        if c.server_alive_by(&r.check)
                            .is_some_and(|s| s.name == server) =>
                    {
                        tracing::warn!(cluster = %c.name, server = %server, "server confirmed dead again; resuming its reorganisation");
                        self.spawn(c, server, Job::Reorg, None, true);
                    }
                    _ => self.awaiting_confirmation.push((cluster_name, server)),
                }
            }
        }
        // Only a server that was down (HARD CRITICAL) comes back; a check that
        // could not decide (UNKNOWN) and recovers changed nothing.
        if r.transition.change != Change::HardRecovery
            || r.transition.previous.state != State::Critical
        {
            return;
        }
        for cluster in self.config.clusters.clone() {
            if !cluster.restart_on_return {
                continue;
            }
            if let Some(server) = cluster.server_alive_by(&r.check) {
                tracing::info!(cluster = %cluster.name, server = %server.name, "server is back: restoring the VMs its reorganisation stopped");
                let host = server.name.clone();
                self.spawn(cluster, host, Job::Restore, None, false);
            }
        }
    }

    fn spawn(
        &mut self,
        cluster: ClusterConfig,
        server: String,
        job: Job,
        req: Option<ActionRequest>,
        confirmed_dead: bool,
    ) {
        let lock = Arc::clone(self.locks.entry(cluster.name.clone()).or_default());
        self.runs.spawn(async move {
            let _guard = lock.lock().await;
            let started = Utc::now();
            let t0 = Instant::now();
            let opts = ReorgOptions {
                dry_run: false,
                confirmed_dead,
            };
            let outcome = match &job {
                Job::Reorg => executor::reorganise(&cluster, &server, &opts).await.map(|r| {
                    log_report(&r);
                    (r.steps_failed > 0, serde_json::to_string(&r))
                }),
                Job::Restore => executor::restore(&cluster, &server, &opts).await.map(|r| {
                    log_report(&r);
                    (r.steps_failed > 0, serde_json::to_string(&r))
                }),
                Job::RestartVm(vm) => restart::restart_vm(&cluster, vm).await.map(|r| {
                    tracing::warn!(cluster = %r.cluster, vm = %r.vm, server = %r.server, stopped_by = r.stopped_by, "VM restarted");
                    (false, serde_json::to_string(&r))
                }),
            };
            let duration = t0.elapsed();
            if let Some(kind) = job.reorg_kind() {
                let result = match &outcome {
                    Ok((false, _)) => ReorgOutcome::Ok,
                    Ok((true, _)) => ReorgOutcome::StepsFailed,
                    Err(_) => ReorgOutcome::Error,
                };
                crate::metrics::reorganisation(kind, result);
            }
            if let Err(e) = &outcome {
                tracing::error!(cluster = %cluster.name, server = %server, error = %e, "cluster action refused or failed");
            }
            let req = req?;
            let (exit_code, output, error) = match outcome {
                Ok((failed, json)) => (Some(i32::from(failed)), json.unwrap_or_default(), None),
                Err(e) => (None, String::new(), Some(e.to_string())),
            };
            Some(ActionRun {
                key: req.key.clone(),
                alarm_id: req.alarm_id,
                action: req.action.kind().to_string(),
                argv: Vec::new(),
                started,
                duration,
                exit_code,
                timed_out: false,
                output,
                error,
            })
        });
    }
}

/// What the stage asks the executor for.
#[derive(Debug, Clone)]
enum Job {
    Reorg,
    Restore,
    RestartVm(String),
}

impl Job {
    /// How `/metrics` counts it: reorganisations and restores, not VM restarts
    /// (those count as actions).
    fn reorg_kind(&self) -> Option<ReorgKind> {
        match self {
            Job::Reorg => Some(ReorgKind::Reorganise),
            Job::Restore => Some(ReorgKind::Restore),
            Job::RestartVm(_) => None,
        }
    }
}

fn log_report(r: &ReorgReport) {
    if r.steps.is_empty() && r.kind == "restore" {
        tracing::info!(cluster = %r.cluster, server = %r.server, "server is back; nothing to restore");
        return;
    }
    tracing::warn!(
        cluster = %r.cluster,
        server = %r.server,
        kind = r.kind,
        steps_done = r.steps_done,
        steps_failed = r.steps_failed,
        down = ?r.stopped,
        fencing = %r.fencing,
        fencing_ms = r.timings.fencing_ms,
        planning_ms = r.timings.planning_ms,
        execution_ms = r.timings.execution_ms,
        "cluster reorganised"
    );
}

fn failed_run(req: &ActionRequest, error: String) -> ActionRun {
    ActionRun {
        key: req.key.clone(),
        alarm_id: req.alarm_id,
        action: req.action.kind().to_string(),
        argv: Vec::new(),
        started: Utc::now(),
        duration: Duration::ZERO,
        exit_code: None,
        timed_out: false,
        output: String::new(),
        error: Some(error),
    }
}
