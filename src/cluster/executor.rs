//! The clusterreorg executor: fence, observe, plan, carry out, verify, resume.
//!
//! **Invariant: a VM is never started while any server may still run it.**
//! It is enforced three times over: (1) before anything else the failed
//! server is fenced by its fence command (exit 0 required), or, only when the
//! cluster sets `allow_unfenced`, the caller must confirm it dead by its alive
//! check; otherwise [`reorganise`] refuses. (2) After fencing, a failed server
//! that still answers with running VMs stops the reorganisation. (3) Right
//! before each start, every server of the cluster is asked again; the start
//! only goes ahead when the VM runs nowhere and every server answered (the
//! fenced one excepted). A server that cannot be asked may still run the VM.
//!
//! Steps are journalled `running` before and `done`/`failed` after their
//! driver operation, and every step first checks whether its effect is
//! already there, so a run killed at any point resumes without repeating a
//! step. Steps run in plan order, several at once only when the memory and
//! anti-affinity of every server stay within bounds whatever order they
//! finish in, and at most `max_parallel_migrations` operations per server.
//! A failed step stops new launches; the plan is then made again from the
//! live state, avoiding the host that failed, up to [`MAX_ROUNDS`] rounds.
//!
//! A run that changes anything holds the cluster lock (see [`lock`]) for its
//! whole length, waiting for a by-hand operation in progress to finish.

use super::drivers::{self, Driver, DriverError, RunningVm};
use super::journal::{
    ClusterLock, Journal, JournalError, LastSeen, LockHolder, Record, RunKind, StepState,
    Unfinished,
};
use super::model::{Action, Cluster, Host, HostState, Plan, Vm};
use crate::config::ClusterConfig;
use crate::process::{self, End, RunOptions};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::task::JoinSet;

/// Plan rounds per run: the first plan and up to three replans.
pub(crate) const MAX_ROUNDS: u32 = 4;

/// The planner's name for the VMs a restore restarts (a host that is down).
const STOPPED_HOST: &str = "(stopped-by-reorg)";

/// What the caller knows and wants beyond the cluster config.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReorgOptions {
    /// Plan and report only (also when the cluster sets `dry_run`).
    pub dry_run: bool,
    /// The failed server's alive check is HARD CRITICAL (needed without a fence command).
    pub confirmed_dead: bool,
}

/// How one step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepOutcome {
    /// The driver carried it out and the live state shows it.
    Done,
    /// Its effect was already there (e.g. done before a restart): nothing was run.
    AlreadyDone,
    /// It failed; the plan was made again.
    Failed,
}

/// One carried-out step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepReport {
    /// The plan round it belongs to.
    pub round: u32,
    /// Its index in that round's plan.
    pub index: usize,
    /// The action.
    pub action: Action,
    /// How it ended.
    pub outcome: StepOutcome,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How long it took, in milliseconds.
    pub millis: u64,
}

/// Where the time went, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Timings {
    /// Fencing the failed server (or confirming it dead).
    pub fencing_ms: f64,
    /// Asking the servers what runs where and planning.
    pub planning_ms: f64,
    /// Carrying the plan out, replans included.
    pub execution_ms: f64,
    /// The whole run.
    pub total_ms: f64,
}

/// The outcome of a reorganisation or restore, for the alarm action's record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReorgReport {
    /// The cluster.
    pub cluster: String,
    /// `reorg` or `restore`.
    pub kind: &'static str,
    /// The failed (or returned) server.
    pub server: String,
    /// The journal's run id (empty for a dry run).
    pub id: String,
    /// Nothing was changed.
    pub dry_run: bool,
    /// An unfinished run was picked up.
    pub resumed: bool,
    /// How the failed server was made safe.
    pub fencing: String,
    /// The first plan of the run.
    pub plan: Plan,
    /// Plans made (1 = no replan).
    pub rounds: u32,
    /// Every step carried out, in completion order.
    pub steps: Vec<StepReport>,
    /// Steps done (or found done).
    pub steps_done: usize,
    /// Steps failed.
    pub steps_failed: usize,
    /// Where the planned VMs run at the end (`None`: not running).
    pub placement: BTreeMap<String, Option<String>>,
    /// VMs that ran before and do not run now.
    pub stopped: Vec<String>,
    /// Where the time went.
    pub timings: Timings,
}

/// Why a reorganisation was refused or could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReorgError {
    /// The server is not in the cluster.
    #[error("cluster {cluster}: {server} is not one of its servers")]
    UnknownServer {
        /// The cluster.
        cluster: String,
        /// The name given.
        server: String,
    },
    /// No fence command and unfenced mode not allowed.
    #[error("refusing to reorganise cluster {cluster}: {server} has no fence command and allow_unfenced is off, so its VMs may still run; configure `fence:` (e.g. IPMI power off) or set allow_unfenced")]
    NoFence {
        /// The cluster.
        cluster: String,
        /// The failed server.
        server: String,
    },
    /// Unfenced mode, but the server is not confirmed dead.
    #[error("refusing to reorganise cluster {cluster}: {server} has no fence command and is not confirmed dead by its alive check {check}")]
    NotConfirmedDead {
        /// The cluster.
        cluster: String,
        /// The failed server.
        server: String,
        /// The alive check, or `(none)`.
        check: String,
    },
    /// The fence command did not succeed.
    #[error("refusing to reorganise cluster {cluster}: fencing {server} with `{command}` failed: {message}")]
    FenceFailed {
        /// The cluster.
        cluster: String,
        /// The failed server.
        server: String,
        /// The fence command line.
        command: String,
        /// How it failed.
        message: String,
    },
    /// The failed server still answers with running VMs.
    #[error("refusing to reorganise cluster {cluster}: {server} still runs {vms} after fencing")]
    StillRunning {
        /// The cluster.
        cluster: String,
        /// The failed server.
        server: String,
        /// The VMs it reported.
        vms: String,
    },
    /// The live state cannot be planned from.
    #[error("cluster {cluster}: {message}")]
    Inconsistent {
        /// The cluster.
        cluster: String,
        /// What is wrong.
        message: String,
    },
    /// Restore asked for, but `restart_on_return` is off.
    #[error("cluster {0}: restart_on_return is off: VMs stopped by a reorganisation stay stopped")]
    RestoreDisabled(String),
    /// Restore asked for, but the server does not answer.
    #[error("cluster {cluster}: {server} has not returned: {message}")]
    NotBack {
        /// The cluster.
        cluster: String,
        /// The server.
        server: String,
        /// What the driver said.
        message: String,
    },
    /// The journal could not be used.
    #[error("cluster journal: {0}")]
    Journal(#[from] JournalError),
    /// A VM or server name that the cluster does not know.
    #[error("cluster {cluster}: no {what} named {name:?}{hint}")]
    Unknown {
        /// The cluster.
        cluster: String,
        /// `VM` or `server`.
        what: &'static str,
        /// The name given.
        name: String,
        /// ` (did you mean "X"?)`, or empty.
        hint: String,
    },
    /// Another run or by-hand operation of the cluster is in progress.
    #[error("cluster {cluster} is busy: {holder} is in progress; try again when it has finished (`laxmon cluster status` shows it)")]
    Busy {
        /// The cluster.
        cluster: String,
        /// Who holds the cluster lock and what for.
        holder: String,
    },
}

/// Takes the cluster lock for `what`. With `wait`, waits for the holder to
/// finish (a reorganisation must go on); otherwise a held lock is
/// [`ReorgError::Busy`]. By-hand operations the lock finds unfinished were
/// interrupted (nobody runs them now) and are closed as such.
pub(crate) async fn lock(
    cluster: &ClusterConfig,
    journal: &Journal,
    what: &str,
    wait: bool,
) -> Result<ClusterLock, ReorgError> {
    let mut told = false;
    let lock = loop {
        match journal.try_lock(what)? {
            Ok(lock) => break lock,
            Err(holder) => {
                let holder = holder
                    .as_ref()
                    .map(LockHolder::to_string)
                    .unwrap_or_else(|| "another laxmon run".into());
                if !wait {
                    return Err(ReorgError::Busy {
                        cluster: cluster.name.clone(),
                        holder,
                    });
                }
                if !told {
                    tracing::warn!(cluster = %cluster.name, %holder, "waiting for the cluster lock before: {what}");
                    told = true;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    for id in journal.unfinished_ops()? {
        journal.append(&Record::End {
            id,
            outcome: "interrupted".into(),
            stopped: Vec::new(),
            at_ms: now_ms(),
        })?;
    }
    Ok(lock)
}

/// One server's answer to "what runs on you?".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerStatus {
    /// The server.
    pub server: String,
    /// Its VMs when it answered.
    pub vms: Option<Vec<VmStatus>>,
    /// Why it did not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Memory in use by its VMs, in MB (configured memory when not reported).
    pub used_mb: u64,
    /// Memory it can give to VMs, in MB.
    pub capacity_mb: u64,
    /// Memory still free for VMs, in MB (`capacity_mb - used_mb`, at least 0).
    pub free_mb: u64,
}

/// A VM a server runs, with what the cluster configuration says about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VmStatus {
    /// The domain name.
    pub name: String,
    /// Its memory in MB: as the hypervisor reports it, else as configured.
    pub memory_mb: Option<u64>,
    /// Its priority (higher is more important); 0 when not configured.
    pub priority: i64,
    /// Whether the cluster's `vms:` lists it.
    pub configured: bool,
}

/// Every server's answer in `obs` with memory and configured priorities.
pub(crate) fn server_statuses(cluster: &ClusterConfig, obs: &Observation) -> Vec<ServerStatus> {
    cluster
        .servers
        .iter()
        .map(|s| {
            let (vms, error) = match obs.get(&s.name) {
                Some(Ok(v)) => (
                    Some(
                        v.iter()
                            .map(|r| VmStatus {
                                name: r.name.clone(),
                                memory_mb: memory_of(cluster, r),
                                priority: cluster.vm(&r.name).map(|c| c.priority).unwrap_or(0),
                                configured: cluster.vm(&r.name).is_some(),
                            })
                            .collect::<Vec<_>>(),
                    ),
                    None,
                ),
                Some(Err(e)) => (None, Some(e.to_string())),
                None => (None, Some("not asked".into())),
            };
            let used_mb = vms.iter().flatten().map(|v| v.memory_mb.unwrap_or(0)).sum();
            let capacity_mb = s.memory_mb.saturating_sub(s.reserve_mb);
            ServerStatus {
                used_mb,
                capacity_mb,
                free_mb: capacity_mb.saturating_sub(used_mb),
                server: s.name.clone(),
                vms,
                error,
            }
        })
        .collect()
}

/// Asks every server what runs there (live placement), and remembers it.
pub(crate) async fn status(cluster: &ClusterConfig) -> Result<Observation, ReorgError> {
    let driver = drivers::build(cluster);
    let journal = Journal::open(&cluster.state_dir, &cluster.name)?;
    let obs = observe(cluster, &driver).await;
    remember(&journal, cluster, &obs)?;
    Ok(obs)
}

/// Reorganises `cluster` after `failed` failed, with its configured driver:
/// fence, plan, carry out, verify; resumes an unfinished run for the same server.
pub async fn reorganise(
    cluster: &ClusterConfig,
    failed: &str,
    opts: &ReorgOptions,
) -> Result<ReorgReport, ReorgError> {
    reorganise_with(cluster, drivers::build(cluster), failed, opts).await
}

/// [`reorganise`] with a given driver.
pub(crate) async fn reorganise_with(
    cluster: &ClusterConfig,
    driver: Arc<dyn Driver>,
    failed: &str,
    opts: &ReorgOptions,
) -> Result<ReorgReport, ReorgError> {
    let t0 = Instant::now();
    let server = cluster
        .server(failed)
        .ok_or_else(|| ReorgError::UnknownServer {
            cluster: cluster.name.clone(),
            server: failed.to_string(),
        })?;
    let dry_run = cluster.dry_run || opts.dry_run;
    let journal = Journal::open(&cluster.state_dir, &cluster.name)?;
    let _lock = if dry_run {
        None
    } else {
        let what = format!("the reorganisation after {failed} failed");
        Some(lock(cluster, &journal, &what, true).await?)
    };
    let resume = if dry_run {
        None
    } else {
        take_unfinished(&journal, RunKind::Reorg, failed)?
    };
    let resumed = resume.is_some();
    // The run begins (with the lock held) before fencing, though it is
    // journalled after it: the journal shows how long fencing took.
    let began_ms = now_ms();

    // (a) Fence first, or refuse.
    // A resumed run skips fencing only when the server was fenced by its fence
    // command; an unfenced run must be confirmed dead again (the server may
    // have come back while laxmon was down).
    let fencing = if let Some(u) = resume
        .as_ref()
        .filter(|u| u.fenced && server.fence.is_some())
    {
        format!("fenced earlier (resumed run {})", u.id)
    } else if dry_run {
        match safety(cluster, failed, opts) {
            Ok(how) => format!("dry run: would {how}"),
            Err(e) => format!("dry run: would refuse: {e}"),
        }
    } else {
        let how = safety(cluster, failed, opts)?;
        if let Some(fence) = &server.fence {
            run_fence(cluster, failed, fence).await?;
        }
        how
    };
    let fencing_time = t0.elapsed();
    let id = match &resume {
        Some(u) => u.id.clone(),
        None if dry_run => String::new(),
        None => {
            let id = new_id(failed);
            journal.append(&Record::Begin {
                id: id.clone(),
                kind: RunKind::Reorg,
                server: failed.to_string(),
                at_ms: began_ms,
            })?;
            id
        }
    };
    if !dry_run && !resume.as_ref().is_some_and(|u| u.fenced) {
        journal.append(&Record::Fenced {
            id: id.clone(),
            how: fencing.clone(),
            at_ms: now_ms(),
        })?;
    }

    // (b) + (c) Observe and plan.
    let t1 = Instant::now();
    let obs = observe(cluster, &driver).await;
    if !dry_run {
        if let Some(Ok(vms)) = obs.get(failed) {
            if !vms.is_empty() {
                return Err(ReorgError::StillRunning {
                    cluster: cluster.name.clone(),
                    server: failed.to_string(),
                    vms: vms
                        .iter()
                        .map(|v| v.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
    }
    let seen = remember(&journal, cluster, &obs)?;
    let run = Run {
        cluster: cluster.clone(),
        driver,
        journal,
        id,
        exempt: Some(failed.to_string()),
        dry_run,
    };
    let displaced = displaced_from(cluster, &obs, &seen, failed);
    let input = planning_input(cluster, &obs, &seen, &displaced, failed, &[])?;
    let (round, plan, steps) = match resume.as_ref().and_then(|u| u.plan.clone()) {
        Some((round, plan)) => (round, plan, resume.map(|u| u.steps).unwrap_or_default()),
        None => {
            let plan = super::plan(&input, &[failed.to_string()]);
            if !dry_run {
                run.journal.append(&Record::Plan {
                    id: run.id.clone(),
                    round: 0,
                    plan: plan.clone(),
                })?;
            }
            (0, plan, HashMap::new())
        }
    };
    let planning_time = t1.elapsed();
    let report = ReorgReport {
        cluster: cluster.name.clone(),
        kind: "reorg",
        server: failed.to_string(),
        id: run.id.clone(),
        dry_run,
        resumed,
        fencing,
        plan: plan.clone(),
        rounds: round + 1,
        steps: Vec::new(),
        steps_done: 0,
        steps_failed: 0,
        placement: plan.placement.clone(),
        stopped: plan.down.clone(),
        timings: Timings {
            fencing_ms: ms(fencing_time),
            planning_ms: ms(planning_time),
            ..Timings::default()
        },
    };
    run.carry_out(report, round, plan, steps, displaced, t0)
        .await
}

/// Restarts, after `server` returned, the VMs that reorganisations of it
/// stopped or left down (`restart_on_return`); no fencing, same safety checks.
pub async fn restore(
    cluster: &ClusterConfig,
    server: &str,
    opts: &ReorgOptions,
) -> Result<ReorgReport, ReorgError> {
    restore_with(cluster, drivers::build(cluster), server, opts).await
}

/// [`restore`] with a given driver.
pub(crate) async fn restore_with(
    cluster: &ClusterConfig,
    driver: Arc<dyn Driver>,
    server: &str,
    opts: &ReorgOptions,
) -> Result<ReorgReport, ReorgError> {
    let t0 = Instant::now();
    if cluster.server(server).is_none() {
        return Err(ReorgError::UnknownServer {
            cluster: cluster.name.clone(),
            server: server.to_string(),
        });
    }
    if !cluster.restart_on_return {
        return Err(ReorgError::RestoreDisabled(cluster.name.clone()));
    }
    let dry_run = cluster.dry_run || opts.dry_run;
    let journal = Journal::open(&cluster.state_dir, &cluster.name)?;
    let _lock = if dry_run {
        None
    } else {
        let what = format!("the restore after {server} returned");
        Some(lock(cluster, &journal, &what, true).await?)
    };
    let resume = if dry_run {
        None
    } else {
        take_unfinished(&journal, RunKind::Restore, server)?
    };
    let resumed = resume.is_some();
    let (wanted, reorg_ids) = journal.stopped_by_reorgs(server)?;
    let obs = observe(cluster, &driver).await;
    if let Some(Err(e)) = obs.get(server) {
        return Err(ReorgError::NotBack {
            cluster: cluster.name.clone(),
            server: server.to_string(),
            message: e.to_string(),
        });
    }
    let seen = remember(&journal, cluster, &obs)?;
    let id = match &resume {
        Some(u) => u.id.clone(),
        None if dry_run => String::new(),
        None => {
            let id = new_id(server);
            journal.append(&Record::Begin {
                id: id.clone(),
                kind: RunKind::Restore,
                server: server.to_string(),
                at_ms: now_ms(),
            })?;
            id
        }
    };
    let running: HashSet<&str> = obs
        .values()
        .flatten()
        .flatten()
        .map(|v| v.name.as_str())
        .collect();
    let displaced: Vec<String> = wanted
        .into_iter()
        .filter(|v| !running.contains(v.as_str()))
        .collect();
    let input = planning_input(cluster, &obs, &seen, &displaced, STOPPED_HOST, &[])?;
    let (round, plan, steps) = match resume.and_then(|u| u.plan.map(|p| (p, u.steps))) {
        Some(((round, plan), steps)) => (round, plan, steps),
        None => {
            let plan = super::plan(&input, &[]);
            if !dry_run {
                journal.append(&Record::Plan {
                    id: id.clone(),
                    round: 0,
                    plan: plan.clone(),
                })?;
            }
            (0, plan, HashMap::new())
        }
    };
    let planning_time = t0.elapsed();
    let run = Run {
        cluster: cluster.clone(),
        driver,
        journal,
        id: id.clone(),
        exempt: None,
        dry_run,
    };
    let report = ReorgReport {
        cluster: cluster.name.clone(),
        kind: "restore",
        server: server.to_string(),
        id,
        dry_run,
        resumed,
        fencing: "not needed: restarting VMs stopped by a reorganisation".into(),
        plan: plan.clone(),
        rounds: round + 1,
        steps: Vec::new(),
        steps_done: 0,
        steps_failed: 0,
        placement: plan.placement.clone(),
        stopped: plan.down.clone(),
        timings: Timings {
            planning_ms: ms(planning_time),
            ..Timings::default()
        },
    };
    let report = run
        .carry_out(report, round, plan, steps, displaced, t0)
        .await?;
    if !dry_run && !reorg_ids.is_empty() {
        run.journal.append(&Record::Restored { ids: reorg_ids })?;
    }
    Ok(report)
}

/// The unfinished run of this kind for this server, if any; unfinished runs
/// of other kinds or servers are closed as superseded (the new run plans from
/// the live state, which includes whatever they did).
fn take_unfinished(
    journal: &Journal,
    kind: RunKind,
    server: &str,
) -> Result<Option<Unfinished>, ReorgError> {
    let mut found = None;
    for u in journal.unfinished()? {
        if u.kind == kind && u.server == server && found.is_none() {
            found = Some(u);
        } else {
            journal.append(&Record::End {
                id: u.id,
                outcome: "superseded".into(),
                stopped: Vec::new(),
                at_ms: now_ms(),
            })?;
        }
    }
    Ok(found)
}

/// Whether the reorganisation may go ahead without fencing or after it;
/// returns how the server is made safe.
fn safety(
    cluster: &ClusterConfig,
    failed: &str,
    opts: &ReorgOptions,
) -> Result<String, ReorgError> {
    let server = cluster
        .server(failed)
        .ok_or_else(|| ReorgError::UnknownServer {
            cluster: cluster.name.clone(),
            server: failed.to_string(),
        })?;
    if let Some(fence) = &server.fence {
        return Ok(format!("fence with `{}`", shell_words::join(fence)));
    }
    if !cluster.allow_unfenced {
        return Err(ReorgError::NoFence {
            cluster: cluster.name.clone(),
            server: failed.to_string(),
        });
    }
    let check = server.alive.clone().unwrap_or_else(|| "(none)".into());
    if !opts.confirmed_dead || server.alive.is_none() {
        return Err(ReorgError::NotConfirmedDead {
            cluster: cluster.name.clone(),
            server: failed.to_string(),
            check,
        });
    }
    Ok(format!(
        "proceed unfenced: {failed} confirmed dead by its alive check {check} (allow_unfenced)"
    ))
}

async fn run_fence(
    cluster: &ClusterConfig,
    failed: &str,
    fence: &[String],
) -> Result<(), ReorgError> {
    let command = shell_words::join(fence);
    let fail = |message: String| ReorgError::FenceFailed {
        cluster: cluster.name.clone(),
        server: failed.to_string(),
        command: command.clone(),
        message,
    };
    let exec = process::execute(fence, &RunOptions::new(cluster.fence_timeout))
        .await
        .map_err(|e| fail(e.to_string()))?;
    let said = || {
        let err = exec.stderr.text();
        let out = exec.stdout.text();
        err.lines()
            .chain(out.lines())
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("no output")
            .to_string()
    };
    match exec.end {
        End::Exited(0) => Ok(()),
        End::Exited(code) => Err(fail(format!("exit {code}: {}", said()))),
        End::Signaled(sig) => Err(fail(format!("killed by signal {sig}"))),
        End::TimedOut(t) => Err(fail(format!("no result within {} s", t.as_secs()))),
    }
}

/// Each server's answer, by name.
pub(crate) type Observation = BTreeMap<String, Result<Vec<RunningVm>, DriverError>>;

/// Asks every server at once what runs there.
pub(crate) async fn observe(cluster: &ClusterConfig, driver: &Arc<dyn Driver>) -> Observation {
    let mut set = JoinSet::new();
    for s in &cluster.servers {
        let (driver, name) = (driver.clone(), s.name.clone());
        set.spawn(async move {
            let r = driver.list(&name).await;
            (name, r)
        });
    }
    let mut obs = Observation::new();
    while let Some(joined) = set.join_next().await {
        if let Ok((name, r)) = joined {
            obs.insert(name, r);
        }
    }
    for s in &cluster.servers {
        obs.entry(s.name.clone()).or_insert_with(|| {
            Err(DriverError::Unreachable {
                server: s.name.clone(),
                message: "the query task failed".into(),
            })
        });
    }
    obs
}

pub(crate) fn memory_of(cluster: &ClusterConfig, vm: &RunningVm) -> Option<u64> {
    vm.memory_mb
        .or_else(|| cluster.vm(&vm.name).map(|c| c.memory_mb))
}

/// Updates the last known placement with what the servers that answered
/// said, and journals that a fenced server answered again.
pub(crate) fn remember(
    journal: &Journal,
    cluster: &ClusterConfig,
    obs: &Observation,
) -> Result<BTreeMap<String, LastSeen>, ReorgError> {
    for server in journal.fenced_servers()? {
        if matches!(obs.get(&server), Some(Ok(_))) {
            journal.append(&Record::Returned {
                server,
                at_ms: now_ms(),
            })?;
        }
    }
    let mut seen = journal.last_seen();
    let mut now_running = HashSet::new();
    for (server, vms) in obs {
        let Ok(vms) = vms else { continue };
        for v in vms {
            now_running.insert(v.name.clone());
            seen.insert(
                v.name.clone(),
                LastSeen {
                    host: Some(server.clone()),
                    memory_mb: memory_of(cluster, v).unwrap_or(0),
                },
            );
        }
    }
    for (name, last) in seen.iter_mut() {
        let asked = last
            .host
            .as_ref()
            .is_some_and(|h| matches!(obs.get(h), Some(Ok(_))));
        if asked && !now_running.contains(name) {
            last.host = None;
        }
    }
    journal.save_last_seen(&seen)?;
    Ok(seen)
}

/// VMs that ran on `failed` as far as laxmon knows and run nowhere now:
/// last seen there, or never seen and configured with `home: failed`.
fn displaced_from(
    cluster: &ClusterConfig,
    obs: &Observation,
    seen: &BTreeMap<String, LastSeen>,
    failed: &str,
) -> Vec<String> {
    let running: HashSet<&str> = obs
        .values()
        .flatten()
        .flatten()
        .map(|v| v.name.as_str())
        .collect();
    let mut names: Vec<String> = seen
        .iter()
        .filter(|(_, l)| l.host.as_deref() == Some(failed))
        .map(|(n, _)| n.clone())
        .chain(
            cluster
                .vms
                .iter()
                .filter(|v| v.home.as_deref() == Some(failed) && !seen.contains_key(&v.name))
                .map(|v| v.name.clone()),
        )
        .filter(|n| !running.contains(n.as_str()))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The planner's input: servers that answered are up, the others down;
/// running VMs where they run; `displaced` VMs on `down_host` (the failed
/// server, or a placeholder for a restore). `exclude` lists (VM, server)
/// pairs that failed and are not to be planned again.
fn planning_input(
    cluster: &ClusterConfig,
    obs: &Observation,
    seen: &BTreeMap<String, LastSeen>,
    displaced: &[String],
    down_host: &str,
    exclude: &[(String, String)],
) -> Result<Cluster, ReorgError> {
    let inconsistent = |message: String| ReorgError::Inconsistent {
        cluster: cluster.name.clone(),
        message,
    };
    let mut input = Cluster::default();
    for s in &cluster.servers {
        let up = s.name != down_host && matches!(obs.get(&s.name), Some(Ok(_)));
        input.hosts.push(Host {
            name: s.name.clone(),
            memory_mb: s.memory_mb,
            reserve_mb: s.reserve_mb,
            state: if up { HostState::Up } else { HostState::Down },
        });
    }
    let all_servers: Vec<String> = cluster.servers.iter().map(|s| s.name.clone()).collect();
    let vm_entry = |name: &str, host: Option<String>, memory_mb: u64| {
        let cfg = cluster.vm(name);
        let allowed = cfg
            .and_then(|c| c.allowed_hosts.clone())
            .unwrap_or_else(|| all_servers.clone());
        let allowed: Vec<String> = allowed
            .into_iter()
            .filter(|h| {
                host.as_deref() == Some(h.as_str())
                    || !exclude.iter().any(|(v, s)| v == name && s == h)
            })
            .collect();
        Vm {
            name: name.to_string(),
            host,
            memory_mb,
            priority: cfg.map(|c| c.priority).unwrap_or(0),
            allowed_hosts: Some(allowed),
            anti_affinity: cfg.and_then(|c| c.anti_affinity.clone()),
        }
    };
    let mut placed: HashMap<String, String> = HashMap::new();
    for s in &cluster.servers {
        let Some(Ok(vms)) = obs.get(&s.name) else {
            continue;
        };
        for v in vms {
            if let Some(other) = placed.insert(v.name.clone(), s.name.clone()) {
                return Err(inconsistent(format!(
                    "VM {} is reported on both {other} and {}; resolve that by hand first",
                    v.name, s.name
                )));
            }
            let memory = memory_of(cluster, v).ok_or_else(|| {
                inconsistent(format!(
                    "VM {} on {}: its memory is neither reported nor configured; add it under vms:",
                    v.name, s.name
                ))
            })?;
            input
                .vms
                .push(vm_entry(&v.name, Some(s.name.clone()), memory));
        }
    }
    if input.hosts.iter().all(|h| h.name != down_host) {
        let memory_mb = displaced
            .iter()
            .map(|v| vm_memory(cluster, seen, v))
            .sum::<u64>()
            + 1;
        input.hosts.push(Host {
            name: down_host.to_string(),
            memory_mb,
            reserve_mb: 0,
            state: HostState::Down,
        });
    }
    for v in displaced {
        if placed.contains_key(v) {
            continue;
        }
        let memory = vm_memory(cluster, seen, v);
        if memory == 0 {
            continue;
        }
        input
            .vms
            .push(vm_entry(v, Some(down_host.to_string()), memory));
    }
    input
        .validate(&[down_host.to_string()])
        .map_err(|e| inconsistent(format!("the live state cannot be planned from: {e}")))?;
    Ok(input)
}

fn vm_memory(cluster: &ClusterConfig, seen: &BTreeMap<String, LastSeen>, vm: &str) -> u64 {
    cluster
        .vm(vm)
        .map(|c| c.memory_mb)
        .or_else(|| seen.get(vm).map(|l| l.memory_mb))
        .unwrap_or(0)
}

/// One run being carried out.
struct Run {
    cluster: ClusterConfig,
    driver: Arc<dyn Driver>,
    journal: Journal,
    id: String,
    /// The fenced (or confirmed dead) server, which need not answer before a start.
    exempt: Option<String>,
    dry_run: bool,
}

/// The memory and anti-affinity bookkeeping that lets steps overlap safely:
/// a step reserves its target when it starts and frees its source when it
/// has finished, so the state is within bounds whatever order steps end in.
struct Ledger {
    used: HashMap<String, u64>,
    capacity: HashMap<String, u64>,
    groups: HashSet<(String, String)>,
    busy: HashMap<String, usize>,
    limit: usize,
    memory: HashMap<String, u64>,
    group_of: HashMap<String, String>,
}

impl Ledger {
    fn new(cluster: &ClusterConfig, input: &Cluster) -> Ledger {
        let mut l = Ledger {
            used: HashMap::new(),
            capacity: cluster
                .servers
                .iter()
                .map(|s| (s.name.clone(), s.memory_mb.saturating_sub(s.reserve_mb)))
                .collect(),
            groups: HashSet::new(),
            busy: HashMap::new(),
            limit: cluster.max_parallel_migrations.max(1),
            memory: HashMap::new(),
            group_of: HashMap::new(),
        };
        let up: HashSet<&str> = input
            .hosts
            .iter()
            .filter(|h| h.state == HostState::Up)
            .map(|h| h.name.as_str())
            .collect();
        for v in &input.vms {
            l.memory.insert(v.name.clone(), v.memory_mb);
            if let Some(g) = &v.anti_affinity {
                l.group_of.insert(v.name.clone(), g.clone());
            }
            if let Some(h) = v.host.as_deref().filter(|h| up.contains(h)) {
                *l.used.entry(h.to_string()).or_default() += v.memory_mb;
                if let Some(g) = &v.anti_affinity {
                    l.groups.insert((h.to_string(), g.clone()));
                }
            }
        }
        l
    }

    fn servers(a: &Action) -> Vec<&str> {
        match a {
            Action::Stop { host, .. } | Action::Start { host, .. } => vec![host],
            Action::Migrate { from, to, .. } => vec![from, to],
        }
    }

    /// Why `a` cannot start now, if it cannot.
    fn blocked(&self, a: &Action) -> Option<String> {
        for s in Self::servers(a) {
            if self.busy.get(s).copied().unwrap_or(0) >= self.limit {
                return Some(format!("{s} is at its limit of parallel operations"));
            }
        }
        let (vm, target) = match a {
            Action::Stop { .. } => return None,
            Action::Start { vm, host } => (vm, host),
            Action::Migrate { vm, to, .. } => (vm, to),
        };
        let Some(&need) = self.memory.get(vm) else {
            return Some(format!("{vm} is not in the live state"));
        };
        let used = self.used.get(target).copied().unwrap_or(0);
        let cap = self.capacity.get(target).copied().unwrap_or(0);
        if used + need > cap {
            return Some(format!(
                "{target} has {} MB free, {vm} needs {need} MB",
                cap.saturating_sub(used)
            ));
        }
        if let Some(g) = self.group_of.get(vm) {
            if self.groups.contains(&(target.clone(), g.clone())) {
                return Some(format!(
                    "{target} already runs a VM of anti-affinity group {g}"
                ));
            }
        }
        None
    }

    fn launch(&mut self, a: &Action) {
        for s in Self::servers(a) {
            *self.busy.entry(s.to_string()).or_default() += 1;
        }
        let (vm, target) = match a {
            Action::Stop { .. } => return,
            Action::Start { vm, host } => (vm, host),
            Action::Migrate { vm, to, .. } => (vm, to),
        };
        *self.used.entry(target.clone()).or_default() += self.memory.get(vm).copied().unwrap_or(0);
        if let Some(g) = self.group_of.get(vm) {
            self.groups.insert((target.clone(), g.clone()));
        }
    }

    fn finish(&mut self, a: &Action, ok: bool) {
        for s in Self::servers(a) {
            if let Some(b) = self.busy.get_mut(s) {
                *b = b.saturating_sub(1);
            }
        }
        if !ok {
            return; // no more launches this round: the reservations may stay.
        }
        let (vm, source) = match a {
            Action::Start { .. } => return,
            Action::Stop { vm, host } => (vm, host),
            Action::Migrate { vm, from, .. } => (vm, from),
        };
        let m = self.memory.get(vm).copied().unwrap_or(0);
        if let Some(u) = self.used.get_mut(source) {
            *u = u.saturating_sub(m);
        }
        if let Some(g) = self.group_of.get(vm) {
            self.groups.remove(&(source.clone(), g.clone()));
        }
    }
}

impl Run {
    /// Carries out `plan` (round `round`, `steps` already journalled) and
    /// replans after failures; finishes the report.
    async fn carry_out(
        &self,
        mut report: ReorgReport,
        mut round: u32,
        mut plan: Plan,
        mut steps: HashMap<usize, StepState>,
        displaced: Vec<String>,
        t0: Instant,
    ) -> Result<ReorgReport, ReorgError> {
        if self.dry_run {
            report.timings.total_ms = ms(t0.elapsed());
            return Ok(report);
        }
        let t2 = Instant::now();
        let mut exclude: Vec<(String, String)> = Vec::new();
        let down_host = self
            .exempt
            .clone()
            .unwrap_or_else(|| STOPPED_HOST.to_string());
        let before: Vec<String> = report.plan.placement.keys().cloned().collect();
        loop {
            let obs = observe(&self.cluster, &self.driver).await;
            let seen = remember(&self.journal, &self.cluster, &obs)?;
            let input =
                planning_input(&self.cluster, &obs, &seen, &displaced, &down_host, &exclude)?;
            let failures = self
                .round(round, &plan, &steps, &input, &mut report)
                .await?;
            if failures.is_empty() || round + 1 >= MAX_ROUNDS {
                break;
            }
            for a in failures {
                match a {
                    Action::Start { vm, host } => exclude.push((vm, host)),
                    Action::Migrate { vm, to, .. } => exclude.push((vm, to)),
                    Action::Stop { .. } => {}
                }
            }
            // Replan from the live state.
            let obs = observe(&self.cluster, &self.driver).await;
            let seen = remember(&self.journal, &self.cluster, &obs)?;
            let still: Vec<String> = displaced
                .iter()
                .filter(|v| !obs.values().flatten().flatten().any(|r| &r.name == *v))
                .cloned()
                .collect();
            let input = planning_input(&self.cluster, &obs, &seen, &still, &down_host, &exclude)?;
            plan = super::plan(&input, std::slice::from_ref(&down_host));
            round += 1;
            report.rounds = round + 1;
            steps.clear();
            self.journal.append(&Record::Plan {
                id: self.id.clone(),
                round,
                plan: plan.clone(),
            })?;
            if plan.actions.is_empty() {
                break;
            }
        }
        report.timings.execution_ms = ms(t2.elapsed());
        let obs = observe(&self.cluster, &self.driver).await;
        let mut placement = BTreeMap::new();
        for vm in &before {
            let at = obs.iter().find_map(|(s, r)| {
                r.as_ref()
                    .ok()
                    .filter(|vms| vms.iter().any(|v| &v.name == vm))
                    .map(|_| s.clone())
            });
            placement.insert(vm.clone(), at);
        }
        report.stopped = placement
            .iter()
            .filter(|(_, h)| h.is_none())
            .map(|(v, _)| v.clone())
            .collect();
        report.placement = placement;
        report.steps_done = report
            .steps
            .iter()
            .filter(|s| s.outcome != StepOutcome::Failed)
            .count();
        report.steps_failed = report.steps.len() - report.steps_done;
        let complete = self.last_round_clean(&report);
        self.journal.append(&Record::End {
            id: self.id.clone(),
            outcome: if complete { "finished" } else { "incomplete" }.into(),
            stopped: report.stopped.clone(),
            at_ms: now_ms(),
        })?;
        report.timings.total_ms = ms(t0.elapsed());
        Ok(report)
    }

    fn last_round_clean(&self, report: &ReorgReport) -> bool {
        let last = report.rounds.saturating_sub(1);
        report
            .steps
            .iter()
            .filter(|s| s.round == last)
            .all(|s| s.outcome != StepOutcome::Failed)
    }

    /// Runs one round's steps; returns the actions that failed.
    async fn round(
        &self,
        round: u32,
        plan: &Plan,
        steps: &HashMap<usize, StepState>,
        input: &Cluster,
        report: &mut ReorgReport,
    ) -> Result<Vec<Action>, ReorgError> {
        let mut ledger = Ledger::new(&self.cluster, input);
        let mut pending = Vec::new();
        for (i, action) in plan.actions.iter().enumerate() {
            if steps.get(&i) == Some(&StepState::Done) {
                continue;
            }
            // Resumed: a step whose effect the live state already shows (it
            // took effect before the kill, unjournalled) is done, and the
            // ledger, built from the live state, already counts it.
            if steps.contains_key(&i) && effect_present(action, input) {
                self.record(
                    round,
                    i,
                    action,
                    Ok(StepOutcome::AlreadyDone),
                    Duration::ZERO,
                    report,
                )?;
                continue;
            }
            pending.push(i);
        }
        let mut next = 0;
        let mut failures = Vec::new();
        let mut set: JoinSet<(usize, Result<StepOutcome, String>, Duration)> = JoinSet::new();
        loop {
            while failures.is_empty() && next < pending.len() {
                let i = pending[next];
                let action = &plan.actions[i];
                if ledger.blocked(action).is_some() {
                    break;
                }
                ledger.launch(action);
                self.journal.append(&Record::Step {
                    id: self.id.clone(),
                    round,
                    index: i,
                    state: StepState::Running,
                    error: String::new(),
                    at_ms: now_ms(),
                })?;
                let ctx = StepContext {
                    driver: self.driver.clone(),
                    servers: self
                        .cluster
                        .servers
                        .iter()
                        .map(|s| s.name.clone())
                        .collect(),
                    exempt: self.exempt.iter().cloned().collect(),
                    shutdown_timeout: self.cluster.shutdown_timeout,
                };
                let action = action.clone();
                set.spawn(async move {
                    let t = Instant::now();
                    let r = ctx.step(&action).await;
                    (i, r, t.elapsed())
                });
                next += 1;
            }
            let Some(joined) = set.join_next().await else {
                if failures.is_empty() && next < pending.len() {
                    // Nothing runs and the next step still does not fit: the
                    // live state is not what the plan expects.
                    let i = pending[next];
                    let action = plan.actions[i].clone();
                    let why = ledger
                        .blocked(&action)
                        .unwrap_or_else(|| "it cannot start".into());
                    self.record(round, i, &action, Err(why), Duration::ZERO, report)?;
                    failures.push(action);
                }
                break;
            };
            let (i, result, took) = match joined {
                Ok(x) => x,
                Err(e) => {
                    // A panicked step leaves its journal entry `running`: a
                    // rerun verifies it against the live state.
                    return Err(ReorgError::Inconsistent {
                        cluster: self.cluster.name.clone(),
                        message: format!("a step task failed: {e}"),
                    });
                }
            };
            let action = plan.actions[i].clone();
            ledger.finish(&action, result.is_ok());
            if result.is_err() {
                failures.push(action.clone());
            }
            self.record(round, i, &action, result, took, report)?;
        }
        Ok(failures)
    }

    fn record(
        &self,
        round: u32,
        index: usize,
        action: &Action,
        result: Result<StepOutcome, String>,
        took: Duration,
        report: &mut ReorgReport,
    ) -> Result<(), ReorgError> {
        let (state, outcome, error) = match result {
            Ok(o) => (StepState::Done, o, None),
            Err(e) => (StepState::Failed, StepOutcome::Failed, Some(e)),
        };
        self.journal.append(&Record::Step {
            id: self.id.clone(),
            round,
            index,
            state,
            error: error.clone().unwrap_or_default(),
            at_ms: now_ms(),
        })?;
        match &error {
            Some(e) => tracing::warn!(cluster = %self.cluster.name, ?action, "step failed: {e}"),
            None => tracing::info!(cluster = %self.cluster.name, ?action, ?outcome, "step done"),
        }
        report.steps.push(StepReport {
            round,
            index,
            action: action.clone(),
            outcome,
            error,
            millis: took.as_millis() as u64,
        });
        Ok(())
    }
}

/// Whether the planner input (the live state) already shows `action`'s effect.
fn effect_present(action: &Action, input: &Cluster) -> bool {
    let host_of = |vm: &str| {
        input
            .vms
            .iter()
            .find(|v| v.name == vm)
            .and_then(|v| v.host.as_deref())
    };
    match action {
        Action::Start { vm, host } => host_of(vm) == Some(host.as_str()),
        Action::Migrate { vm, to, .. } => host_of(vm) == Some(to.as_str()),
        Action::Stop { vm, host } => host_of(vm) != Some(host.as_str()),
    }
}

/// What a step task needs.
pub(crate) struct StepContext {
    /// The cluster's driver.
    pub(crate) driver: Arc<dyn Driver>,
    /// Every server of the cluster, asked before each start.
    pub(crate) servers: Vec<String>,
    /// Servers made safe (fenced, or confirmed dead) that need not answer.
    pub(crate) exempt: Vec<String>,
    /// How long a graceful shutdown may take before a destroy.
    pub(crate) shutdown_timeout: Duration,
}

impl StepContext {
    async fn runs_on(&self, vm: &str, server: &str) -> Result<bool, String> {
        self.driver
            .list(server)
            .await
            .map(|vms| vms.iter().any(|v| v.name == vm))
            .map_err(|e| e.to_string())
    }

    /// Where `vm` runs, asking every server; an error when a server that is
    /// not fenced cannot rule it out.
    async fn locate(&self, vm: &str) -> Result<Option<String>, String> {
        let mut found = None;
        for s in &self.servers {
            match self.driver.list(s).await {
                Ok(vms) => {
                    if vms.iter().any(|v| v.name == vm) {
                        if let Some(first) = &found {
                            return Err(format!("{vm} runs on both {first} and {s}"));
                        }
                        found = Some(s.clone());
                    }
                }
                Err(_) if self.exempt.contains(s) => {}
                Err(e) => {
                    return Err(format!(
                        "cannot rule out that {vm} runs on {s}, so it is not started: {e}"
                    ))
                }
            }
        }
        Ok(found)
    }

    /// Verifies-then-runs one action and verifies its effect.
    pub(crate) async fn step(&self, action: &Action) -> Result<StepOutcome, String> {
        match action {
            Action::Start { vm, host } => {
                match self.locate(vm).await? {
                    Some(h) if &h == host => return Ok(StepOutcome::AlreadyDone),
                    Some(h) => return Err(format!("{vm} already runs on {h}: not started twice")),
                    None => {}
                }
                self.driver
                    .start(vm, host)
                    .await
                    .map_err(|e| e.to_string())?;
                if self.runs_on(vm, host).await? {
                    Ok(StepOutcome::Done)
                } else {
                    Err(format!("{vm} was started but {host} does not list it"))
                }
            }
            Action::Stop { vm, host } => {
                if !self.runs_on(vm, host).await? {
                    return Ok(StepOutcome::AlreadyDone);
                }
                if let Err(e) = self.driver.shutdown(vm, host, self.shutdown_timeout).await {
                    tracing::warn!(
                        "graceful shutdown of {vm} on {host} failed ({e}); destroying it"
                    );
                    if self.runs_on(vm, host).await? {
                        self.driver
                            .destroy(vm, host)
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                }
                if self.runs_on(vm, host).await? {
                    Err(format!(
                        "{vm} still runs on {host} after shutdown and destroy"
                    ))
                } else {
                    Ok(StepOutcome::Done)
                }
            }
            Action::Migrate { vm, from, to } => {
                let on_to = self.runs_on(vm, to).await?;
                let on_from = self.runs_on(vm, from).await?;
                match (on_from, on_to) {
                    (false, true) => return Ok(StepOutcome::AlreadyDone),
                    (false, false) => return Err(format!("{vm} no longer runs on {from}")),
                    (true, true) => return Err(format!("{vm} is listed on both {from} and {to}")),
                    (true, false) => {}
                }
                self.driver
                    .migrate(vm, from, to)
                    .await
                    .map_err(|e| e.to_string())?;
                if self.runs_on(vm, to).await? && !self.runs_on(vm, from).await? {
                    Ok(StepOutcome::Done)
                } else {
                    Err(format!("{vm} did not arrive on {to}"))
                }
            }
        }
    }
}

/// A duration in milliseconds, to 0.1 ms.
pub(crate) fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn new_id(server: &str) -> String {
    format!("{}-{server}-{}", now_ms(), std::process::id())
}
