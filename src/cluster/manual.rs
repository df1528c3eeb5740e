//! By-hand operations on one VM: start, stop and migrate (`laxmon cluster
//! start|stop|migrate`, the LAX scripts' `vx-start`, `vx-stop`, `vx-move`),
//! under the executor's safety rules and journalled like its steps.
//!
//! **A VM is never started while any server may still run it.** Every
//! server is asked before the decision and again right before a start (the
//! executor's [`StepContext`] does the start, the stop and the migration,
//! with the same checks before and after). A server that does not answer
//! blocks a start unless a reorganisation fenced it and it has been silent
//! since, or the cluster sets `allow_unfenced` and the caller confirms it
//! dead by its alive check. An operation holds the cluster lock for its whole
//! length and is refused while a reorganisation, restore, VM restart or
//! another operation of the cluster holds it. It is journalled as an `op`
//! record with its actions, then its steps `running` and `done`/`failed`,
//! then its end, so the cluster's history shows it and an interrupted one
//! stays visible (the next run that takes the lock closes it as
//! `interrupted`).
//!
//! [`decide`] is the pure core: the observed cluster in, the actions (or why
//! not) out. It only ever acts on the one VM: it never stops or moves another
//! VM to make room (a reorganisation does that), and it chooses a server as
//! the planner's first rule does: the allowed server with the most free
//! memory where the VM fits, ties by name.

use super::drivers::{self, Driver};
use super::executor::{
    lock, memory_of, ms, now_ms, observe, remember, server_statuses, Observation, ReorgError,
    ServerStatus, StepContext, StepOutcome, StepReport,
};
use super::journal::{Journal, Record, StepState};
use super::model::Action;
use crate::config::ClusterConfig;
use crate::suggest::did_you_mean;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

/// A by-hand operation on one VM. Serialises as
/// `{"op":"start","vm":V,"server":S|null}`, `{"op":"stop","vm":V}` or
/// `{"op":"migrate","vm":V,"to":S,"cold":false}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum VmOp {
    /// Start a VM that runs nowhere.
    Start {
        /// The VM.
        vm: String,
        /// Where; `None`: the allowed server with the most free memory where it fits.
        #[serde(default)]
        server: Option<String>,
    },
    /// Shut a VM down gracefully where it runs (destroyed after `shutdown_timeout`).
    Stop {
        /// The VM.
        vm: String,
    },
    /// Move a running VM to another server.
    Migrate {
        /// The VM.
        vm: String,
        /// The server it is to run on.
        to: String,
        /// Stop it, then start it on `to`, instead of a live migration.
        #[serde(default)]
        cold: bool,
    },
}

impl VmOp {
    /// The VM it is about.
    pub fn vm(&self) -> &str {
        match self {
            VmOp::Start { vm, .. } | VmOp::Stop { vm } | VmOp::Migrate { vm, .. } => vm,
        }
    }

    /// `start`, `stop` or `migrate`.
    pub fn name(&self) -> &'static str {
        match self {
            VmOp::Start { .. } => "start",
            VmOp::Stop { .. } => "stop",
            VmOp::Migrate { .. } => "migrate",
        }
    }

    /// The operation in words, e.g. `migrate win3 to cs1`.
    pub fn describe(&self) -> String {
        match self {
            VmOp::Start {
                vm,
                server: Some(s),
            } => format!("start {vm} on {s}"),
            VmOp::Start { vm, server: None } => format!("start {vm}"),
            VmOp::Stop { vm } => format!("stop {vm}"),
            VmOp::Migrate { vm, to, cold } => {
                format!("migrate {vm} to {to}{}", if *cold { " (cold)" } else { "" })
            }
        }
    }
}

/// What the caller knows and wants beyond the operation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpOptions {
    /// Decide and report only; nothing is stopped, moved or started (also
    /// when the cluster sets `dry_run`).
    pub dry_run: bool,
    /// Servers whose alive check says CRITICAL now. Counts only when the
    /// cluster sets `allow_unfenced`: such a server need not answer before a start.
    pub confirmed_dead: Vec<String>,
    /// Who asks (journalled with the operation).
    pub by: String,
}

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OpOutcome {
    /// Carried out and verified.
    Done,
    /// Nothing to do: the VM already is as asked (e.g. stop of a VM that does not run).
    Unchanged,
    /// Dry run: `actions` is what it would do.
    Planned,
    /// Refused by a safety rule or for lack of room; nothing was run.
    Refused,
    /// A step failed (see `steps`).
    Failed,
}

/// Where the time went, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct OpTimings {
    /// Asking every server what runs there, and deciding.
    pub observe_ms: f64,
    /// Carrying the steps out, verification included.
    pub execution_ms: f64,
    /// The whole operation.
    pub total_ms: f64,
}

/// What a by-hand operation found, did and came to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpReport {
    /// The cluster.
    pub cluster: String,
    /// The operation as asked for.
    pub request: VmOp,
    /// The VM.
    pub vm: String,
    /// The journal's run id (empty when nothing ran).
    pub id: String,
    /// Nothing was changed (asked for, or the cluster sets `dry_run`).
    pub dry_run: bool,
    /// How it ended.
    pub outcome: OpOutcome,
    /// One sentence: what happened, or why not.
    pub message: String,
    /// The server it starts the VM on or moves it to, or stops it on.
    pub server: Option<String>,
    /// Why that server, when laxmon chose it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub choice: Option<String>,
    /// Where the VM ran before (`None`: nowhere, as far as the servers said).
    pub was_on: Option<String>,
    /// Where it runs afterwards, as the servers say.
    pub now_on: Option<String>,
    /// The steps decided on, in order (a cold migration: stop, then start).
    pub actions: Vec<Action>,
    /// Every step carried out, with its outcome and time.
    pub steps: Vec<StepReport>,
    /// Every server's answer before anything was done.
    pub observed: Vec<ServerStatus>,
    /// Servers that did not answer but cannot run a VM, and why (fenced,
    /// confirmed dead).
    pub silent_but_safe: BTreeMap<String, String>,
    /// Where the time went.
    pub timings: OpTimings,
}

impl OpReport {
    /// Whether the operation did (or, dry, would do) what was asked:
    /// `done`, `unchanged` or `planned`.
    pub fn succeeded(&self) -> bool {
        matches!(
            self.outcome,
            OpOutcome::Done | OpOutcome::Unchanged | OpOutcome::Planned
        )
    }
}

/// Carries out `op` on `cluster` with its configured driver.
pub async fn operate(
    cluster: &ClusterConfig,
    op: &VmOp,
    opts: &OpOptions,
) -> Result<OpReport, ReorgError> {
    operate_with(cluster, drivers::build(cluster), op, opts).await
}

/// [`operate`] with a given driver.
pub(crate) async fn operate_with(
    cluster: &ClusterConfig,
    driver: Arc<dyn Driver>,
    op: &VmOp,
    opts: &OpOptions,
) -> Result<OpReport, ReorgError> {
    let t0 = Instant::now();
    let dry_run = cluster.dry_run || opts.dry_run;
    let target = match op {
        VmOp::Start { server, .. } => server.as_deref(),
        VmOp::Migrate { to, .. } => Some(to.as_str()),
        VmOp::Stop { .. } => None,
    };
    if let Some(s) = target.filter(|s| cluster.server(s).is_none()) {
        let known: Vec<&str> = cluster.servers.iter().map(|s| s.name.as_str()).collect();
        return Err(unknown(cluster, "server", s, &known));
    }
    let journal = Journal::open(&cluster.state_dir, &cluster.name)?;
    let _lock = if dry_run {
        None
    } else {
        Some(lock(cluster, &journal, &op.describe(), false).await?)
    };
    let obs = observe(cluster, &driver).await;
    remember(&journal, cluster, &obs)?;
    let vm = op.vm();
    let running = obs.values().flatten().flatten().any(|r| r.name == vm);
    if cluster.vm(vm).is_none() && !running {
        let mut known: Vec<&str> = cluster.vms.iter().map(|v| v.name.as_str()).collect();
        known.extend(obs.values().flatten().flatten().map(|r| r.name.as_str()));
        return Err(unknown(cluster, "VM", vm, &known));
    }
    let safe = silent_but_safe(cluster, &journal, &obs, &opts.confirmed_dead)?;
    let views = views(cluster, &obs, &safe);
    let decision = decide(&views, &spec(cluster, &obs, vm), op);
    let observed = server_statuses(cluster, &obs);
    let was_on = running_on(&obs, vm);
    let mut report = OpReport {
        cluster: cluster.name.clone(),
        request: op.clone(),
        vm: vm.to_string(),
        id: String::new(),
        dry_run,
        outcome: OpOutcome::Refused,
        message: String::new(),
        server: None,
        choice: None,
        now_on: was_on.clone(),
        was_on,
        actions: Vec::new(),
        steps: Vec::new(),
        observed,
        silent_but_safe: safe.clone(),
        timings: OpTimings {
            observe_ms: ms(t0.elapsed()),
            ..OpTimings::default()
        },
    };
    let (actions, server, choice) = match decision {
        Decision::Refused(why) => {
            report.message = why;
            report.timings.total_ms = ms(t0.elapsed());
            return Ok(report);
        }
        Decision::Unchanged(why) => {
            report.outcome = OpOutcome::Unchanged;
            report.message = why;
            report.timings.total_ms = ms(t0.elapsed());
            return Ok(report);
        }
        Decision::Run {
            actions,
            server,
            choice,
        } => (actions, server, choice),
    };
    report.server = Some(server);
    report.choice = choice;
    report.actions = actions.clone();
    if dry_run {
        report.outcome = OpOutcome::Planned;
        report.message = format!("would {}", steps_in_words(&actions));
        report.timings.total_ms = ms(t0.elapsed());
        return Ok(report);
    }

    let t1 = Instant::now();
    let id = format!("{}-{}-{vm}-{}", now_ms(), op.name(), std::process::id());
    report.id = id.clone();
    journal.append(&Record::Op {
        id: id.clone(),
        op: op.name().to_string(),
        vm: vm.to_string(),
        actions: actions.clone(),
        by: opts.by.clone(),
        at_ms: now_ms(),
    })?;
    let ctx = StepContext {
        driver: driver.clone(),
        servers: cluster.servers.iter().map(|s| s.name.clone()).collect(),
        exempt: safe.keys().cloned().collect(),
        shutdown_timeout: cluster.shutdown_timeout,
    };
    let mut failure = None;
    for (index, action) in actions.iter().enumerate() {
        journal.append(&Record::Step {
            id: id.clone(),
            round: 0,
            index,
            state: StepState::Running,
            error: String::new(),
            at_ms: now_ms(),
        })?;
        let t = Instant::now();
        let result = ctx.step(action).await;
        let (state, outcome, error) = match result {
            Ok(o) => (StepState::Done, o, None),
            Err(e) => (StepState::Failed, StepOutcome::Failed, Some(e)),
        };
        journal.append(&Record::Step {
            id: id.clone(),
            round: 0,
            index,
            state,
            error: error.clone().unwrap_or_default(),
            at_ms: now_ms(),
        })?;
        report.steps.push(StepReport {
            round: 0,
            index,
            action: action.clone(),
            outcome,
            error: error.clone(),
            millis: t.elapsed().as_millis() as u64,
        });
        if let Some(e) = error {
            failure = Some(e);
            break;
        }
    }
    let after = observe(cluster, &driver).await;
    remember(&journal, cluster, &after)?;
    report.now_on = running_on(&after, vm);
    journal.append(&Record::End {
        id,
        outcome: if failure.is_some() {
            "failed"
        } else {
            "finished"
        }
        .into(),
        stopped: Vec::new(),
        at_ms: now_ms(),
    })?;
    match failure {
        Some(e) => {
            report.outcome = OpOutcome::Failed;
            let now = match &report.now_on {
                Some(s) => format!("{vm} runs on {s} now"),
                None => format!("{vm} does not run now"),
            };
            report.message = format!("{} failed: {e}; {now}", op.describe());
            tracing::warn!(cluster = %cluster.name, vm, "{}", report.message);
        }
        None => {
            report.outcome = OpOutcome::Done;
            report.message = match &report.now_on {
                Some(s) => format!("{vm} runs on {s}"),
                None => format!("{vm} does not run any more"),
            };
            tracing::info!(cluster = %cluster.name, vm, op = op.name(), "{}", report.message);
        }
    }
    report.timings.execution_ms = ms(t1.elapsed());
    report.timings.total_ms = ms(t0.elapsed());
    Ok(report)
}

/// The servers that did not answer in `obs` but cannot run a VM, and why:
/// fenced by a reorganisation (by its fence command) and silent since, or,
/// with `allow_unfenced`, named in `confirmed_dead` (alive check CRITICAL).
pub(crate) fn silent_but_safe(
    cluster: &ClusterConfig,
    journal: &Journal,
    obs: &Observation,
    confirmed_dead: &[String],
) -> Result<BTreeMap<String, String>, ReorgError> {
    let fenced = journal.fenced_servers()?;
    let mut safe = BTreeMap::new();
    for s in &cluster.servers {
        if matches!(obs.get(&s.name), Some(Ok(_))) {
            continue;
        }
        if fenced.contains(&s.name) && s.fence.is_some() {
            safe.insert(
                s.name.clone(),
                "fenced by a reorganisation (its fence command) and silent since".to_string(),
            );
        } else if cluster.allow_unfenced && confirmed_dead.contains(&s.name) {
            let check = s.alive.as_deref().unwrap_or("(none)");
            safe.insert(
                s.name.clone(),
                format!("confirmed dead by its alive check {check} (allow_unfenced)"),
            );
        }
    }
    Ok(safe)
}

fn unknown(cluster: &ClusterConfig, what: &'static str, name: &str, known: &[&str]) -> ReorgError {
    ReorgError::Unknown {
        cluster: cluster.name.clone(),
        what,
        name: name.to_string(),
        hint: did_you_mean(name, known),
    }
}

/// The one server that answered with `vm` running, if exactly one did.
fn running_on(obs: &Observation, vm: &str) -> Option<String> {
    let mut on = obs
        .iter()
        .filter(|(_, r)| r.as_ref().is_ok_and(|vms| vms.iter().any(|v| v.name == vm)))
        .map(|(s, _)| s.clone());
    match (on.next(), on.next()) {
        (Some(s), None) => Some(s),
        _ => None,
    }
}

fn steps_in_words(actions: &[Action]) -> String {
    let words: Vec<String> = actions
        .iter()
        .map(|a| match a {
            Action::Start { vm, host } => format!("start {vm} on {host}"),
            Action::Stop { vm, host } => format!("stop {vm} on {host}"),
            Action::Migrate { vm, from, to } => format!("migrate {vm} live from {from} to {to}"),
        })
        .collect();
    words.join(", then ")
}

/// The servers as [`decide`] sees them, in configuration order.
fn views(
    cluster: &ClusterConfig,
    obs: &Observation,
    safe: &BTreeMap<String, String>,
) -> Vec<ServerView> {
    cluster
        .servers
        .iter()
        .map(|s| {
            let (vms, unanswered) = match obs.get(&s.name) {
                Some(Ok(vms)) => (
                    vms.iter()
                        .map(|r| {
                            let cfg = cluster.vm(&r.name);
                            VmView {
                                name: r.name.clone(),
                                memory_mb: memory_of(cluster, r),
                                priority: cfg.map(|c| c.priority).unwrap_or(0),
                                group: cfg.and_then(|c| c.anti_affinity.clone()),
                            }
                        })
                        .collect(),
                    None,
                ),
                Some(Err(e)) => (Vec::new(), Some(e.to_string())),
                None => (Vec::new(), Some("not asked".to_string())),
            };
            ServerView {
                name: s.name.clone(),
                capacity_mb: s.memory_mb.saturating_sub(s.reserve_mb),
                vms,
                unanswered,
                safe: safe.get(&s.name).cloned(),
            }
        })
        .collect()
}

/// What [`decide`] needs to know about the VM: its configuration, or what
/// the hypervisor reports of a running VM that is not configured.
fn spec(cluster: &ClusterConfig, obs: &Observation, vm: &str) -> VmSpec {
    let reported = obs
        .values()
        .flatten()
        .flatten()
        .find(|r| r.name == vm)
        .and_then(|r| memory_of(cluster, r));
    match cluster.vm(vm) {
        Some(c) => VmSpec {
            name: vm.to_string(),
            memory_mb: reported.or(Some(c.memory_mb)),
            priority: c.priority,
            allowed: c.allowed_hosts.clone(),
            group: c.anti_affinity.clone(),
        },
        None => VmSpec {
            name: vm.to_string(),
            memory_mb: reported,
            priority: 0,
            allowed: None,
            group: None,
        },
    }
}

/// One server as [`decide`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerView {
    name: String,
    /// Memory it can give to VMs, in MB.
    capacity_mb: u64,
    /// The VMs it runs (empty when it did not answer).
    vms: Vec<VmView>,
    /// Why it did not answer; `None` when it did.
    unanswered: Option<String>,
    /// Why a server that does not answer cannot run VMs (fenced, confirmed dead).
    safe: Option<String>,
}

/// A running VM as [`decide`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VmView {
    name: String,
    memory_mb: Option<u64>,
    priority: i64,
    group: Option<String>,
}

/// The VM an operation is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VmSpec {
    name: String,
    /// Its memory: reported when it runs, else configured.
    memory_mb: Option<u64>,
    priority: i64,
    /// `allowed_hosts`; `None`: any server.
    allowed: Option<Vec<String>>,
    /// Its anti-affinity group.
    group: Option<String>,
}

/// What an operation comes to in the observed state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Carry out `actions`; `server` is the target (or where it stops).
    Run {
        actions: Vec<Action>,
        server: String,
        /// Why this server, when it was chosen.
        choice: Option<String>,
    },
    /// Nothing to do, and why.
    Unchanged(String),
    /// Not allowed or not possible, and why.
    Refused(String),
}

/// Decides `op` on the observed `servers` (pure): the actions to carry out,
/// or why nothing is done. It never touches another VM.
pub(crate) fn decide(servers: &[ServerView], vm: &VmSpec, op: &VmOp) -> Decision {
    let name = vm.name.as_str();
    let on: Vec<&str> = servers
        .iter()
        .filter(|s| s.unanswered.is_none() && s.vms.iter().any(|v| v.name == name))
        .map(|s| s.name.as_str())
        .collect();
    if on.len() > 1 {
        return Decision::Refused(format!(
            "{name} runs on {} at once: resolve that by hand first (its disk is at risk)",
            on.join(" and ")
        ));
    }
    let blockers: Vec<&ServerView> = servers
        .iter()
        .filter(|s| s.unanswered.is_some() && s.safe.is_none())
        .collect();
    let silent = |why: &str| {
        let list: Vec<String> = blockers
            .iter()
            .map(|s| format!("{} ({})", s.name, s.unanswered.as_deref().unwrap_or("")))
            .collect();
        format!(
            "{} did not answer and {} not fenced or confirmed dead: {why}",
            list.join(", "),
            if blockers.len() == 1 { "is" } else { "are" }
        )
    };
    let start_blocked = || {
        Decision::Refused(silent(&format!(
            "{name} may run there, so it is not started (fence it with `laxmon cluster reorg --failed SERVER`, or bring it back)"
        )))
    };
    match op {
        VmOp::Start { server, .. } => {
            if let Some(&h) = on.first() {
                return if server.as_deref() == Some(h) {
                    Decision::Unchanged(format!("{name} already runs on {h}"))
                } else {
                    Decision::Refused(format!(
                        "{name} already runs on {h}: a VM never runs on two servers (to move it: laxmon cluster migrate)"
                    ))
                };
            }
            if !blockers.is_empty() {
                return start_blocked();
            }
            match server {
                Some(s) => match servers.iter().find(|v| v.name == *s).map(|v| fit(v, vm)) {
                    Some(Ok(_)) => Decision::Run {
                        actions: vec![Action::Start {
                            vm: name.to_string(),
                            host: s.clone(),
                        }],
                        server: s.clone(),
                        choice: None,
                    },
                    Some(Err(why)) => {
                        Decision::Refused(format!("cannot start {name} on {s}: {why}"))
                    }
                    None => Decision::Refused(format!("{s} is not a server of this cluster")),
                },
                None => match choose(servers, vm) {
                    Ok((s, why)) => Decision::Run {
                        actions: vec![Action::Start {
                            vm: name.to_string(),
                            host: s.clone(),
                        }],
                        server: s,
                        choice: Some(why),
                    },
                    Err(why) => Decision::Refused(why),
                },
            }
        }
        VmOp::Stop { .. } => match on.first() {
            Some(&h) => Decision::Run {
                actions: vec![Action::Stop {
                    vm: name.to_string(),
                    host: h.to_string(),
                }],
                server: h.to_string(),
                choice: None,
            },
            None if blockers.is_empty() => {
                Decision::Unchanged(format!("{name} does not run: nothing to stop"))
            }
            None => Decision::Refused(silent(&format!(
                "{name} runs on no server that answered, and may run there"
            ))),
        },
        VmOp::Migrate { to, cold, .. } => {
            let Some(&from) = on.first() else {
                return Decision::Refused(if blockers.is_empty() {
                    format!("{name} does not run: nothing to migrate (start it with laxmon cluster start)")
                } else {
                    silent(&format!(
                        "cannot tell where {name} runs, so it is not moved"
                    ))
                });
            };
            if from == to {
                return Decision::Unchanged(format!("{name} already runs on {to}"));
            }
            if *cold && !blockers.is_empty() {
                return start_blocked();
            }
            match servers.iter().find(|v| v.name == *to).map(|v| fit(v, vm)) {
                Some(Ok(_)) => {}
                Some(Err(why)) => {
                    return Decision::Refused(format!("cannot move {name} to {to}: {why}"))
                }
                None => return Decision::Refused(format!("{to} is not a server of this cluster")),
            }
            let actions = if *cold {
                vec![
                    Action::Stop {
                        vm: name.to_string(),
                        host: from.to_string(),
                    },
                    Action::Start {
                        vm: name.to_string(),
                        host: to.clone(),
                    },
                ]
            } else {
                vec![Action::Migrate {
                    vm: name.to_string(),
                    from: from.to_string(),
                    to: to.clone(),
                }]
            };
            Decision::Run {
                actions,
                server: to.clone(),
                choice: None,
            }
        }
    }
}

/// Whether `vm` may run on `server` beside what runs there now: the server
/// answered, allows it, has the memory and no VM of its anti-affinity group.
/// Returns the free memory before it is placed, in MB.
pub(crate) fn fit(server: &ServerView, vm: &VmSpec) -> Result<u64, String> {
    if let Some(e) = &server.unanswered {
        return Err(format!("it does not answer ({e})"));
    }
    if let Some(allowed) = &vm.allowed {
        if !allowed.contains(&server.name) {
            return Err(format!(
                "{} may only run on {} (allowed_hosts)",
                vm.name,
                allowed.join(", ")
            ));
        }
    }
    let Some(need) = vm.memory_mb else {
        return Err(format!(
            "the memory of {} is neither reported nor configured",
            vm.name
        ));
    };
    let mut used = 0;
    for v in server.vms.iter().filter(|v| v.name != vm.name) {
        used += v.memory_mb.ok_or_else(|| {
            format!(
                "the memory of {} on it is neither reported nor configured",
                v.name
            )
        })?;
    }
    let free = server.capacity_mb.saturating_sub(used);
    if need > free {
        let mut lower: Vec<&VmView> = server
            .vms
            .iter()
            .filter(|v| v.priority < vm.priority)
            .collect();
        lower.sort_by(|a, b| a.priority.cmp(&b.priority).then(a.name.cmp(&b.name)));
        let mut why = format!("{free} MB free, {} needs {need} MB", vm.name);
        if !lower.is_empty() {
            let list: Vec<String> = lower
                .iter()
                .map(|v| {
                    format!(
                        "{} (priority {}, {} MB)",
                        v.name,
                        v.priority,
                        v.memory_mb.unwrap_or(0)
                    )
                })
                .collect();
            let _ = write!(why, "; lower priority there: {}", list.join(", "));
        }
        return Err(why);
    }
    if let Some(g) = &vm.group {
        if let Some(other) = server
            .vms
            .iter()
            .find(|v| v.name != vm.name && v.group.as_ref() == Some(g))
        {
            return Err(format!(
                "it runs {} of the same anti-affinity group {g}",
                other.name
            ));
        }
    }
    Ok(free)
}

/// The server to start `vm` on, as the planner's first rule chooses: of the
/// servers where it fits, the one with the most free memory (ties: by
/// name). Returns it with the reason, or why no server fits.
pub(crate) fn choose(servers: &[ServerView], vm: &VmSpec) -> Result<(String, String), String> {
    let mut fits: Vec<(&str, u64)> = Vec::new();
    let mut not: Vec<String> = Vec::new();
    for s in servers {
        match fit(s, vm) {
            Ok(free) => fits.push((&s.name, free)),
            Err(why) => not.push(format!("{}: {why}", s.name)),
        }
    }
    fits.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    match fits.first() {
        Some(&(s, free)) => {
            let mut why = format!(
                "{s} has the most free memory ({free} MB) of the {} server(s) {} fits on",
                fits.len(),
                vm.name
            );
            if !not.is_empty() {
                let _ = write!(why, "; not {}", not.join("; "));
            }
            Ok((s.to_string(), why))
        }
        None => Err(format!(
            "no server can start {} ({} MB, priority {}): {} (laxmon never stops or moves another VM for a start; stop or migrate one first)",
            vm.name,
            vm.memory_mb
                .map(|m| m.to_string())
                .unwrap_or_else(|| "?".into()),
            vm.priority,
            not.join("; ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `name:capacity:vm/mem/prio/group,...`; `!` after the name: did not
    /// answer; `!!`: did not answer but is fenced.
    fn server(desc: &str) -> ServerView {
        let parts: Vec<&str> = desc.split(':').collect();
        let (name, unanswered, safe) = if let Some(n) = parts[0].strip_suffix("!!") {
            (n, Some("down".to_string()), Some("fenced".to_string()))
        } else if let Some(n) = parts[0].strip_suffix('!') {
            (n, Some("down".to_string()), None)
        } else {
            (parts[0], None, None)
        };
        let vms = parts
            .get(2)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.split(',')
                    .map(|v| {
                        let f: Vec<&str> = v.split('/').collect();
                        VmView {
                            name: f[0].into(),
                            memory_mb: f[1].parse().ok(),
                            priority: f[2].parse().expect("priority"),
                            group: f.get(3).map(|g| g.to_string()),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        ServerView {
            name: name.into(),
            capacity_mb: parts[1].parse().expect("capacity"),
            vms,
            unanswered,
            safe,
        }
    }

    fn vm(name: &str, memory_mb: u64, priority: i64) -> VmSpec {
        VmSpec {
            name: name.into(),
            memory_mb: Some(memory_mb),
            priority,
            allowed: None,
            group: None,
        }
    }

    fn start(v: &str, s: Option<&str>) -> VmOp {
        VmOp::Start {
            vm: v.into(),
            server: s.map(str::to_string),
        }
    }

    fn run_on(d: &Decision) -> Option<(&str, Vec<String>)> {
        match d {
            Decision::Run {
                actions, server, ..
            } => Some((
                server.as_str(),
                actions
                    .iter()
                    .map(|a| serde_json::to_string(a).expect("json"))
                    .collect(),
            )),
            _ => None,
        }
    }

    fn refused(d: &Decision) -> &str {
        match d {
            Decision::Refused(why) => why,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn an_automatic_start_takes_the_server_with_most_free_memory_where_it_fits() {
        // (servers, VM memory, chosen server)
        let cases: &[(&[&str], u64, &str)] = &[
            (
                &["cs1:4096:", "cs2:4096:a/1024/0", "cs3:4096:"],
                1024,
                "cs1",
            ),
            (&["cs1:4096:a/3072/0", "cs2:8192:b/2048/0"], 1024, "cs2"),
            // The roomier server is too small for it: the next that fits.
            (&["cs1:2048:", "cs2:8192:b/7168/0"], 1024, "cs1"),
            // A server that did not answer is never a target, even fenced.
            (&["cs1!!:9999:", "cs2:2048:"], 2048, "cs2"),
        ];
        for (servers, mem, want) in cases {
            let views: Vec<ServerView> = servers.iter().map(|d| server(d)).collect();
            let d = decide(&views, &vm("x", *mem, 1), &start("x", None));
            assert_eq!(run_on(&d).map(|r| r.0), Some(*want), "{servers:?}: {d:?}");
        }
    }

    #[test]
    fn the_choice_honours_allowed_hosts_and_anti_affinity_and_says_why() {
        let views: Vec<ServerView> = ["cs1:8192:", "cs2:8192:a/1024/0/av", "cs3:4096:"]
            .iter()
            .map(|d| server(d))
            .collect();
        let mut x = vm("x", 1024, 1);
        x.allowed = Some(vec!["cs2".into(), "cs3".into()]);
        let (s, why) = choose(&views, &x).expect("a server");
        assert_eq!(s, "cs2");
        assert!(
            why.contains("cs2 has the most free memory (7168 MB)"),
            "{why}"
        );
        assert!(why.contains("cs1: x may only run on cs2, cs3"), "{why}");
        x.group = Some("av".into());
        let (s, why) = choose(&views, &x).expect("a server");
        assert_eq!(s, "cs3");
        assert!(
            why.contains("cs2: it runs a of the same anti-affinity group av"),
            "{why}"
        );
    }

    #[test]
    fn no_room_is_refused_with_the_memory_needed_and_free() {
        let views: Vec<ServerView> = ["cs1:5120:debtest/1024/1,t1/4096/2", "cs2:2048:"]
            .iter()
            .map(|d| server(d))
            .collect();
        let why = refused(&decide(
            &views,
            &vm("big", 3072, 5),
            &start("big", Some("cs1")),
        ))
        .to_string();
        assert!(
            why.starts_with("cannot start big on cs1: 0 MB free, big needs 3072 MB"),
            "{why}"
        );
        assert!(
            why.contains(
                "lower priority there: debtest (priority 1, 1024 MB), t1 (priority 2, 4096 MB)"
            ),
            "{why}"
        );
        let why = refused(&decide(&views, &vm("big", 3072, 0), &start("big", None))).to_string();
        assert!(why.starts_with("no server can start big (3072 MB"), "{why}");
        assert!(
            why.contains("cs2: 2048 MB free, big needs 3072 MB"),
            "{why}"
        );
    }

    #[test]
    fn a_start_is_refused_while_the_vm_may_run_anywhere() {
        let cases: &[(&[&str], Option<&str>, &str)] = &[
            (
                &["cs1:8192:x/1024/0", "cs2:8192:"],
                Some("cs2"),
                "x already runs on cs1",
            ),
            (
                &["cs1:8192:x/1024/0", "cs2:8192:"],
                None,
                "x already runs on cs1",
            ),
            (
                &["cs1!:8192:", "cs2:8192:"],
                Some("cs2"),
                "cs1 (down) did not answer and is not fenced or confirmed dead: x may run there",
            ),
            (
                &["cs1:8192:x/1024/0", "cs2:8192:x/1024/0"],
                None,
                "x runs on cs1 and cs2 at once",
            ),
        ];
        for (servers, target, want) in cases {
            let views: Vec<ServerView> = servers.iter().map(|d| server(d)).collect();
            let d = decide(&views, &vm("x", 1024, 0), &start("x", *target));
            assert!(refused(&d).starts_with(want), "{servers:?}: {d:?}");
        }
        // Fenced and silent: not a reason to refuse.
        let views: Vec<ServerView> = ["cs1!!:8192:", "cs2:8192:"]
            .iter()
            .map(|d| server(d))
            .collect();
        let d = decide(&views, &vm("x", 1024, 0), &start("x", Some("cs2")));
        assert_eq!(run_on(&d).map(|r| r.0), Some("cs2"));
        // Already where it was asked to start: nothing to do.
        let views: Vec<ServerView> = ["cs1:8192:x/1024/0"].iter().map(|d| server(d)).collect();
        let d = decide(&views, &vm("x", 1024, 0), &start("x", Some("cs1")));
        assert_eq!(d, Decision::Unchanged("x already runs on cs1".into()));
    }

    #[test]
    fn stops_and_migrations() {
        let stop = VmOp::Stop { vm: "x".into() };
        let migrate = |to: &str, cold| VmOp::Migrate {
            vm: "x".into(),
            to: to.into(),
            cold,
        };
        let views = |d: &[&str]| d.iter().map(|d| server(d)).collect::<Vec<_>>();
        let x = vm("x", 1024, 0);
        let up = views(&["cs1:4096:x/1024/0", "cs2:4096:"]);
        assert_eq!(
            run_on(&decide(&up, &x, &stop)),
            Some((
                "cs1",
                vec![r#"{"op":"stop","vm":"x","host":"cs1"}"#.to_string()]
            ))
        );
        assert_eq!(
            run_on(&decide(&up, &x, &migrate("cs2", false))),
            Some((
                "cs2",
                vec![r#"{"op":"migrate","vm":"x","from":"cs1","to":"cs2"}"#.to_string()]
            ))
        );
        assert_eq!(
            run_on(&decide(&up, &x, &migrate("cs2", true))).map(|r| r.1),
            Some(vec![
                r#"{"op":"stop","vm":"x","host":"cs1"}"#.to_string(),
                r#"{"op":"start","vm":"x","host":"cs2"}"#.to_string()
            ])
        );
        assert_eq!(
            decide(&up, &x, &migrate("cs1", false)),
            Decision::Unchanged("x already runs on cs1".into())
        );
        let idle = views(&["cs1:4096:", "cs2:4096:"]);
        assert_eq!(
            decide(&idle, &x, &stop),
            Decision::Unchanged("x does not run: nothing to stop".into())
        );
        assert!(refused(&decide(&idle, &x, &migrate("cs2", false))).starts_with("x does not run"));
        // The source does not answer: where it runs is unknown.
        let silent = views(&["cs1!:4096:", "cs2:4096:"]);
        assert!(refused(&decide(&silent, &x, &stop)).contains("x runs on no server that answered"));
        assert!(refused(&decide(&silent, &x, &migrate("cs2", false)))
            .contains("cannot tell where x runs"));
        // Live migration beside a silent third server is fine; a cold one starts, so not.
        let third = views(&["cs1:4096:x/1024/0", "cs2:4096:", "cs3!:4096:"]);
        assert!(run_on(&decide(&third, &x, &migrate("cs2", false))).is_some());
        assert!(refused(&decide(&third, &x, &migrate("cs2", true)))
            .contains("cs3 (down) did not answer"));
        // The target is full.
        let full = views(&["cs1:4096:x/1024/0", "cs2:2048:y/2048/3"]);
        assert_eq!(
            refused(&decide(&full, &x, &migrate("cs2", false))),
            "cannot move x to cs2: 0 MB free, x needs 1024 MB"
        );
    }
}
