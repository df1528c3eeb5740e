//! The plan journal and the last known placement, kept in the cluster's
//! `state_dir` so that a daemon killed mid-plan resumes where it stopped.
//!
//! The journal is append-only JSON lines (`CLUSTER.journal.jsonl`), one
//! [`Record`] per line, each written and synced before the executor goes on:
//! a step is journalled `running` before its driver operation starts and
//! `done`/`failed` after it was verified. A torn last line (a kill during the
//! write) is ignored. The last known placement (`CLUSTER.placement.json`,
//! replaced atomically) remembers where each VM was last seen, so the VMs
//! of a server that can no longer be asked are known.
//!
//! By-hand operations on one VM (`laxmon cluster start|stop|migrate`) are
//! journalled the same way: an [`Record::Op`] line with its actions, then
//! its steps and its end. The cluster lock (`CLUSTER.lock`, an exclusive
//! `flock`) keeps reorganisations, restores, VM restarts and by-hand
//! operations of one cluster from running at once, across processes; the
//! holder writes who it is into the file so others can say what they wait for.
//!
//! This module only records; it never decides what to run.

use super::model::{Action, Plan};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{File, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What a journalled run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RunKind {
    /// Bring a failed server's VMs back elsewhere.
    Reorg,
    /// Restart the VMs a reorganisation stopped, after the server returned.
    Restore,
}

/// The state of one step in the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum StepState {
    /// Its driver operation was started; its effect is not verified yet.
    Running,
    /// Verified done.
    Done,
    /// Failed (the plan was made again from the live state).
    Failed,
}

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub(crate) enum Record {
    /// A run began.
    Begin {
        /// Run id.
        id: String,
        /// Reorganisation or restore.
        kind: RunKind,
        /// The failed (or returned) server.
        server: String,
        /// Milliseconds since the Unix epoch.
        at_ms: u64,
    },
    /// The failed server was fenced (or confirmed dead).
    Fenced {
        /// Run id.
        id: String,
        /// How.
        how: String,
        /// Milliseconds since the Unix epoch (0 in journals written before
        /// times were recorded).
        #[serde(default)]
        at_ms: u64,
    },
    /// A plan (round 0) or a replan (round 1, 2, ...).
    Plan {
        /// Run id.
        id: String,
        /// Round number.
        round: u32,
        /// The plan.
        plan: Plan,
    },
    /// A step changed state.
    Step {
        /// Run id.
        id: String,
        /// Round number.
        round: u32,
        /// Index into the round's plan actions.
        index: usize,
        /// Its new state.
        state: StepState,
        /// Why it failed.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        error: String,
        /// Milliseconds since the Unix epoch (0 in journals written before
        /// times were recorded).
        #[serde(default)]
        at_ms: u64,
    },
    /// The run ended.
    End {
        /// Run id.
        id: String,
        /// `finished`, `incomplete` or `superseded`.
        outcome: String,
        /// VMs that ran before and were stopped or left down by the run.
        #[serde(default)]
        stopped: Vec<String>,
        /// Milliseconds since the Unix epoch (0 in journals written before
        /// times were recorded).
        #[serde(default)]
        at_ms: u64,
    },
    /// The stopped VMs of these reorganisations were dealt with by a restore.
    Restored {
        /// The reorganisations' ids.
        ids: Vec<String>,
    },
    /// A by-hand operation on one VM began; its steps are `actions`, round 0.
    Op {
        /// Run id.
        id: String,
        /// `start`, `stop` or `migrate`.
        op: String,
        /// The VM.
        vm: String,
        /// The steps it carries out.
        actions: Vec<Action>,
        /// Who asked for it.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        by: String,
        /// Milliseconds since the Unix epoch.
        at_ms: u64,
    },
    /// A server that a reorganisation fenced answered again: its fencing no
    /// longer vouches that it runs nothing.
    Returned {
        /// The server.
        server: String,
        /// Milliseconds since the Unix epoch.
        at_ms: u64,
    },
}

/// One journalled run (reorganisation, restore or by-hand operation), for
/// people reading the cluster's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JournalRun {
    /// Run id.
    pub id: String,
    /// `reorg`, `restore`, `start`, `stop` or `migrate`.
    pub kind: String,
    /// The failed or returned server of a reorganisation or restore.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// The VM of a by-hand operation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vm: Option<String>,
    /// Who asked for a by-hand operation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// When it began, milliseconds since the Unix epoch.
    pub started_ms: u64,
    /// The actions of its latest plan (of the operation).
    pub actions: Vec<Action>,
    /// Steps journalled done.
    pub steps_done: usize,
    /// Steps journalled failed.
    pub steps_failed: usize,
    /// How it ended (`finished`, `incomplete`, `failed`, `superseded`,
    /// `interrupted`), or `unfinished` while it has not ended.
    pub state: String,
    /// When it ended, milliseconds since the Unix epoch (absent while it
    /// has not ended, and in journals written before times were recorded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_ms: Option<u64>,
    /// How a reorganisation made the failed server safe (fence command or
    /// confirmed dead), once it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fencing: Option<String>,
    /// When that was recorded, milliseconds since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fenced_ms: Option<u64>,
    /// Plans made (1: no replan; 0: not planned yet).
    pub rounds: u32,
    /// The VMs its latest plan leaves down, each with the planner's reason.
    pub left_down: BTreeMap<String, String>,
    /// VMs that ran before and were stopped or left down, as its end says.
    pub stopped: Vec<String>,
    /// Step by step: the started steps of earlier rounds (replanned after a
    /// failure), then every action of the latest round in plan order.
    pub steps: Vec<JournalStep>,
}

/// How far one step of a journalled run got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepProgress {
    /// Not started (yet, or ever: the run ended or replanned before it).
    NotStarted,
    /// Started; its end is not journalled (it runs, or the run was killed).
    Running,
    /// Verified done.
    Done,
    /// Failed.
    Failed,
}

/// One step of a journalled run, with its times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JournalStep {
    /// The plan round it belongs to.
    pub round: u32,
    /// Its index in that round's actions.
    pub index: usize,
    /// What it does.
    pub action: Action,
    /// How far it got.
    pub state: StepProgress,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it (last) started, milliseconds since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<u64>,
    /// When it was journalled done or failed, milliseconds since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_ms: Option<u64>,
}

impl JournalStep {
    /// How long it took, when both ends are known.
    pub fn took_ms(&self) -> Option<u64> {
        Some(self.ended_ms?.saturating_sub(self.started_ms?))
    }
}

/// Who holds a cluster's lock, as the holder wrote it into the lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    /// The holding process.
    pub pid: u32,
    /// What it does, e.g. `start debtest on cs3`.
    pub what: String,
    /// Since when, milliseconds since the Unix epoch.
    pub since_ms: u64,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (laxmon process {})", self.what, self.pid)
    }
}

/// The cluster lock, held until dropped (closing the file releases it).
#[derive(Debug)]
pub(crate) struct ClusterLock {
    file: File,
}

impl Drop for ClusterLock {
    fn drop(&mut self) {
        // Nobody holds it any more; a holder that dies leaves its entry,
        // which readers recognise as stale by its pid.
        let _ = self.file.set_len(0);
    }
}

/// An unfinished run found in the journal.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Unfinished {
    /// Run id.
    pub id: String,
    /// Its kind.
    pub kind: RunKind,
    /// Its server.
    pub server: String,
    /// Whether fencing was recorded.
    pub fenced: bool,
    /// The latest round and its plan, if planned.
    pub plan: Option<(u32, Plan)>,
    /// States of that round's steps.
    pub steps: HashMap<usize, StepState>,
}

/// Where a VM was last seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LastSeen {
    /// The server, or `None` when it was seen not running.
    pub host: Option<String>,
    /// Its memory then, in MB.
    pub memory_mb: u64,
}

/// Why the journal could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct JournalError {
    /// The file.
    pub path: String,
    /// What went wrong.
    pub message: String,
}

/// A cluster's journal and last known placement.
#[derive(Debug, Clone)]
pub(crate) struct Journal {
    path: PathBuf,
    placement: PathBuf,
    lock: PathBuf,
}

impl Journal {
    /// The journal of `cluster` in `state_dir` (created when missing).
    pub(crate) fn open(state_dir: &Path, cluster: &str) -> Result<Journal, JournalError> {
        std::fs::create_dir_all(state_dir).map_err(|e| JournalError {
            path: state_dir.display().to_string(),
            message: format!("cannot create the state directory: {e}"),
        })?;
        Ok(Journal {
            path: state_dir.join(format!("{cluster}.journal.jsonl")),
            placement: state_dir.join(format!("{cluster}.placement.json")),
            lock: state_dir.join(format!("{cluster}.lock")),
        })
    }

    fn lock_err(&self, message: String) -> JournalError {
        JournalError {
            path: self.lock.display().to_string(),
            message,
        }
    }

    /// Takes the cluster lock for `what` if nobody holds it; `Ok(Err(holder))`
    /// when someone does (`None` when the holder did not say who it is).
    pub(crate) fn try_lock(
        &self,
        what: &str,
    ) -> Result<Result<ClusterLock, Option<LockHolder>>, JournalError> {
        // Never truncate on open: the file says who holds the lock.
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.lock)
            .map_err(|e| self.lock_err(format!("cannot open the cluster lock: {e}")))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Ok(Err(self.holder())),
            Err(TryLockError::Error(e)) => {
                return Err(self.lock_err(format!("cannot lock the cluster: {e}")))
            }
        }
        let holder = LockHolder {
            pid: std::process::id(),
            what: what.to_string(),
            since_ms: now_ms(),
        };
        let mut line = serde_json::to_string(&holder).map_err(|e| self.lock_err(e.to_string()))?;
        line.push('\n');
        file.set_len(0)
            .and_then(|()| file.write_all(line.as_bytes()))
            .map_err(|e| self.lock_err(format!("cannot write the cluster lock: {e}")))?;
        Ok(Ok(ClusterLock { file }))
    }

    /// Who holds the cluster lock now, as far as the lock file tells: `None`
    /// when it is free or its holder's process is gone.
    pub(crate) fn holder(&self) -> Option<LockHolder> {
        let text = std::fs::read_to_string(&self.lock).ok()?;
        let holder: LockHolder = serde_json::from_str(text.trim()).ok()?;
        Path::new("/proc")
            .join(holder.pid.to_string())
            .exists()
            .then_some(holder)
    }

    fn err(&self, message: String) -> JournalError {
        JournalError {
            path: self.path.display().to_string(),
            message,
        }
    }

    /// Appends one record and syncs it to disk.
    pub(crate) fn append(&self, record: &Record) -> Result<(), JournalError> {
        let mut line = serde_json::to_string(record).map_err(|e| self.err(e.to_string()))?;
        line.push('\n');
        let mut f = std::fs::File::options()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| self.err(format!("cannot open the journal: {e}")))?;
        f.write_all(line.as_bytes())
            .and_then(|()| f.sync_data())
            .map_err(|e| self.err(format!("cannot write the journal: {e}")))
    }

    /// Every readable record, in order (a torn last line is skipped).
    pub(crate) fn records(&self) -> Result<Vec<Record>, JournalError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.err(format!("cannot read the journal: {e}"))),
        };
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let mut out = Vec::with_capacity(lines.len());
        for (i, line) in lines.iter().enumerate() {
            match serde_json::from_str(line) {
                Ok(r) => out.push(r),
                Err(_) if i + 1 == lines.len() => {}
                Err(e) => return Err(self.err(format!("line {}: {e}", i + 1))),
            }
        }
        Ok(out)
    }

    /// The runs that began and did not end, oldest first.
    pub(crate) fn unfinished(&self) -> Result<Vec<Unfinished>, JournalError> {
        let mut runs: Vec<Unfinished> = Vec::new();
        for r in self.records()? {
            match r {
                Record::Begin {
                    id, kind, server, ..
                } => runs.push(Unfinished {
                    id,
                    kind,
                    server,
                    fenced: false,
                    plan: None,
                    steps: HashMap::new(),
                }),
                Record::Fenced { id, .. } => {
                    if let Some(u) = runs.iter_mut().find(|u| u.id == id) {
                        u.fenced = true;
                    }
                }
                Record::Plan { id, round, plan } => {
                    if let Some(u) = runs.iter_mut().find(|u| u.id == id) {
                        u.plan = Some((round, plan));
                        u.steps.clear();
                    }
                }
                Record::Step {
                    id,
                    round,
                    index,
                    state,
                    ..
                } => {
                    if let Some(u) = runs.iter_mut().find(|u| u.id == id) {
                        if u.plan.as_ref().is_some_and(|(r, _)| *r == round) {
                            u.steps.insert(index, state);
                        }
                    }
                }
                Record::End { id, .. } => runs.retain(|u| u.id != id),
                Record::Restored { .. } | Record::Op { .. } | Record::Returned { .. } => {}
            }
        }
        Ok(runs)
    }

    /// The ids of by-hand operations that began and did not end.
    pub(crate) fn unfinished_ops(&self) -> Result<Vec<String>, JournalError> {
        let mut ids: Vec<String> = Vec::new();
        for r in self.records()? {
            match r {
                Record::Op { id, .. } => ids.push(id),
                Record::End { id, .. } => ids.retain(|i| *i != id),
                _ => {}
            }
        }
        Ok(ids)
    }

    /// The servers a reorganisation fenced that have not answered since.
    pub(crate) fn fenced_servers(&self) -> Result<BTreeSet<String>, JournalError> {
        Ok(fenced_servers(&self.records()?))
    }

    /// The newest `limit` runs, newest first.
    pub(crate) fn runs(&self, limit: usize) -> Result<Vec<JournalRun>, JournalError> {
        Ok(summarise(&self.records()?, limit))
    }

    /// VMs stopped or left down by finished reorganisations of `server` that
    /// no restore has dealt with yet, with those reorganisations' ids.
    pub(crate) fn stopped_by_reorgs(
        &self,
        server: &str,
    ) -> Result<(Vec<String>, Vec<String>), JournalError> {
        let mut kind_of: HashMap<String, (RunKind, String)> = HashMap::new();
        let mut pending: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in self.records()? {
            match r {
                Record::Begin {
                    id, kind, server, ..
                } => {
                    kind_of.insert(id, (kind, server));
                }
                Record::End { id, stopped, .. } => {
                    if let Some((RunKind::Reorg, s)) = kind_of.get(&id) {
                        if s == server && !stopped.is_empty() {
                            pending.insert(id, stopped);
                        }
                    }
                }
                Record::Restored { ids } => {
                    for id in ids {
                        pending.remove(&id);
                    }
                }
                _ => {}
            }
        }
        let mut vms: Vec<String> = pending.values().flatten().cloned().collect();
        vms.sort();
        vms.dedup();
        Ok((vms, pending.into_keys().collect()))
    }

    /// Where each VM was last seen.
    pub(crate) fn last_seen(&self) -> BTreeMap<String, LastSeen> {
        std::fs::read_to_string(&self.placement)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    /// Replaces the last known placement (write to a temporary file, rename).
    pub(crate) fn save_last_seen(
        &self,
        seen: &BTreeMap<String, LastSeen>,
    ) -> Result<(), JournalError> {
        // A temporary file of its own: a status query and a run may save at once.
        let tmp = self.placement.with_extension(format!(
            "json.{}.{}.tmp",
            std::process::id(),
            TMP_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let text = serde_json::to_string_pretty(seen).map_err(|e| self.err(e.to_string()))?;
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &self.placement))
            .map_err(|e| JournalError {
                path: self.placement.display().to_string(),
                message: format!("cannot write the last known placement: {e}"),
            })
    }
}

/// Numbers the temporary files of one process.
static TMP_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The servers fenced by a reorganisation and not seen answering since.
fn fenced_servers(records: &[Record]) -> BTreeSet<String> {
    let mut server_of: HashMap<&str, &str> = HashMap::new();
    let mut fenced = BTreeSet::new();
    for r in records {
        match r {
            Record::Begin {
                id,
                kind: RunKind::Reorg,
                server,
                ..
            } => {
                server_of.insert(id, server);
            }
            Record::Fenced { id, .. } => {
                if let Some(s) = server_of.get(id.as_str()) {
                    fenced.insert(s.to_string());
                }
            }
            Record::Returned { server, .. } => {
                fenced.remove(server);
            }
            _ => {}
        }
    }
    fenced
}

/// A time from the journal: 0 means not recorded.
fn known(at_ms: u64) -> Option<u64> {
    (at_ms > 0).then_some(at_ms)
}

/// One run being summarised: its plans' actions per round and its steps.
struct Tally {
    run: JournalRun,
    /// The latest round.
    round: u32,
    /// Each round's actions.
    plans: BTreeMap<u32, Vec<Action>>,
    /// Each journalled step by (round, index).
    steps: BTreeMap<(u32, usize), JournalStep>,
}

impl Tally {
    fn new(run: JournalRun) -> Tally {
        let mut plans = BTreeMap::new();
        if !run.actions.is_empty() {
            plans.insert(0, run.actions.clone());
        }
        Tally {
            run,
            round: 0,
            plans,
            steps: BTreeMap::new(),
        }
    }

    fn step(&mut self, round: u32, index: usize, state: StepState, error: &str, at_ms: u64) {
        let Some(action) = self.plans.get(&round).and_then(|a| a.get(index)) else {
            return;
        };
        let step = self.steps.entry((round, index)).or_insert(JournalStep {
            round,
            index,
            action: action.clone(),
            state: StepProgress::NotStarted,
            error: None,
            started_ms: None,
            ended_ms: None,
        });
        match state {
            StepState::Running => {
                step.state = StepProgress::Running;
                step.started_ms = known(at_ms);
                step.ended_ms = None;
                step.error = None;
            }
            StepState::Done | StepState::Failed => {
                step.state = if state == StepState::Done {
                    StepProgress::Done
                } else {
                    StepProgress::Failed
                };
                step.ended_ms = known(at_ms);
                step.error = Some(error.to_string()).filter(|e| !e.is_empty());
            }
        }
    }

    fn finish(mut self) -> JournalRun {
        let latest = self.round;
        let mut steps: Vec<JournalStep> = Vec::new();
        for ((round, _), step) in &self.steps {
            if *round < latest {
                steps.push(step.clone());
            }
        }
        for (index, action) in self.plans.get(&latest).into_iter().flatten().enumerate() {
            steps.push(
                self.steps
                    .remove(&(latest, index))
                    .unwrap_or_else(|| JournalStep {
                        round: latest,
                        index,
                        action: action.clone(),
                        state: StepProgress::NotStarted,
                        error: None,
                        started_ms: None,
                        ended_ms: None,
                    }),
            );
        }
        let latest_steps = steps.iter().filter(|s| s.round == latest);
        self.run.steps_done = latest_steps
            .clone()
            .filter(|s| s.state == StepProgress::Done)
            .count();
        self.run.steps_failed = latest_steps
            .filter(|s| s.state == StepProgress::Failed)
            .count();
        self.run.steps = steps;
        self.run
    }
}

/// The newest `limit` runs of a journal, newest first.
fn summarise(records: &[Record], limit: usize) -> Vec<JournalRun> {
    let mut runs: Vec<Tally> = Vec::new();
    let blank = |id: &str, kind: String, at_ms: u64| JournalRun {
        id: id.to_string(),
        kind,
        server: None,
        vm: None,
        by: None,
        started_ms: at_ms,
        actions: Vec::new(),
        steps_done: 0,
        steps_failed: 0,
        state: "unfinished".into(),
        ended_ms: None,
        fencing: None,
        fenced_ms: None,
        rounds: 0,
        left_down: BTreeMap::new(),
        stopped: Vec::new(),
        steps: Vec::new(),
    };
    for r in records {
        match r {
            Record::Begin {
                id,
                kind,
                server,
                at_ms,
            } => {
                let kind = match kind {
                    RunKind::Reorg => "reorg",
                    RunKind::Restore => "restore",
                };
                let mut run = blank(id, kind.to_string(), *at_ms);
                run.server = Some(server.clone());
                runs.push(Tally::new(run));
            }
            Record::Op {
                id,
                op,
                vm,
                actions,
                by,
                at_ms,
            } => {
                let mut run = blank(id, op.clone(), *at_ms);
                run.vm = Some(vm.clone());
                run.by = Some(by.clone()).filter(|b| !b.is_empty());
                run.actions = actions.clone();
                run.rounds = 1;
                runs.push(Tally::new(run));
            }
            Record::Fenced { id, how, at_ms } => {
                if let Some(t) = runs.iter_mut().find(|t| t.run.id == *id) {
                    t.run.fencing = Some(how.clone());
                    t.run.fenced_ms = known(*at_ms);
                }
            }
            Record::Plan { id, round, plan } => {
                if let Some(t) = runs.iter_mut().find(|t| t.run.id == *id) {
                    t.run.actions = plan.actions.clone();
                    t.run.rounds = round + 1;
                    t.run.left_down = plan
                        .down
                        .iter()
                        .map(|vm| {
                            (
                                vm.clone(),
                                plan.reasons.get(vm).cloned().unwrap_or_default(),
                            )
                        })
                        .collect();
                    t.round = *round;
                    t.plans.insert(*round, plan.actions.clone());
                }
            }
            Record::Step {
                id,
                round,
                index,
                state,
                error,
                at_ms,
            } => {
                if let Some(t) = runs.iter_mut().find(|t| t.run.id == *id) {
                    t.step(*round, *index, *state, error, *at_ms);
                }
            }
            Record::End {
                id,
                outcome,
                stopped,
                at_ms,
            } => {
                if let Some(t) = runs.iter_mut().find(|t| t.run.id == *id) {
                    t.run.state = outcome.clone();
                    t.run.stopped = stopped.clone();
                    t.run.ended_ms = known(*at_ms);
                }
            }
            Record::Restored { .. } | Record::Returned { .. } => {}
        }
    }
    let keep = runs.len().saturating_sub(limit);
    runs.drain(..keep);
    runs.into_iter().rev().map(Tally::finish).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn begin(id: &str, kind: RunKind, server: &str) -> Record {
        Record::Begin {
            id: id.into(),
            kind,
            server: server.into(),
            at_ms: 1,
        }
    }

    fn fenced(id: &str) -> Record {
        Record::Fenced {
            id: id.into(),
            how: "fence with `x`".into(),
            at_ms: 0,
        }
    }

    #[test]
    fn a_fenced_server_stays_fenced_until_it_answers_again() {
        let returned = |s: &str| Record::Returned {
            server: s.into(),
            at_ms: 2,
        };
        let cases: Vec<(Vec<Record>, Vec<&str>)> = vec![
            (vec![], vec![]),
            (vec![begin("r1", RunKind::Reorg, "cs2")], vec![]),
            (
                vec![begin("r1", RunKind::Reorg, "cs2"), fenced("r1")],
                vec!["cs2"],
            ),
            (
                vec![
                    begin("r1", RunKind::Reorg, "cs2"),
                    fenced("r1"),
                    returned("cs2"),
                ],
                vec![],
            ),
            (
                vec![
                    begin("r1", RunKind::Reorg, "cs2"),
                    fenced("r1"),
                    returned("cs2"),
                    begin("r2", RunKind::Reorg, "cs2"),
                    fenced("r2"),
                    begin("r3", RunKind::Reorg, "cs1"),
                    fenced("r3"),
                ],
                vec!["cs1", "cs2"],
            ),
            // A restore never fences.
            (
                vec![begin("x", RunKind::Restore, "cs3"), fenced("x")],
                vec![],
            ),
        ];
        for (records, want) in cases {
            let got: Vec<String> = fenced_servers(&records).into_iter().collect();
            assert_eq!(got, want, "{records:?}");
        }
    }

    fn plan(id: &str, round: u32, actions: Vec<Action>, down: &[(&str, &str)]) -> Record {
        Record::Plan {
            id: id.into(),
            round,
            plan: Plan {
                actions,
                placement: BTreeMap::new(),
                down: down.iter().map(|(vm, _)| vm.to_string()).collect(),
                reasons: down
                    .iter()
                    .map(|(vm, why)| (vm.to_string(), why.to_string()))
                    .collect(),
                planner: super::super::model::PlannerKind::Exact,
            },
        }
    }

    fn step(id: &str, round: u32, index: usize, state: StepState, at_ms: u64) -> Record {
        Record::Step {
            id: id.into(),
            round,
            index,
            state,
            error: if state == StepState::Failed {
                "no memory".into()
            } else {
                String::new()
            },
            at_ms,
        }
    }

    fn end(id: &str, outcome: &str, stopped: &[&str], at_ms: u64) -> Record {
        Record::End {
            id: id.into(),
            outcome: outcome.into(),
            stopped: stopped.iter().map(|s| s.to_string()).collect(),
            at_ms,
        }
    }

    fn start(vm: &str, host: &str) -> Action {
        Action::Start {
            vm: vm.into(),
            host: host.into(),
        }
    }

    #[test]
    fn runs_are_summarised_newest_first_with_the_latest_rounds_steps() {
        let records = vec![
            begin("r1", RunKind::Reorg, "cs2"),
            plan("r1", 0, vec![start("a", "cs1"), start("a", "cs1")], &[]),
            step("r1", 0, 0, StepState::Failed, 0),
            plan("r1", 1, vec![start("a", "cs1")], &[]),
            step("r1", 1, 0, StepState::Running, 0),
            step("r1", 1, 0, StepState::Done, 0),
            end("r1", "finished", &[], 0),
            Record::Op {
                id: "o1".into(),
                op: "start".into(),
                vm: "a".into(),
                actions: vec![start("a", "cs1")],
                by: "admin".into(),
                at_ms: 5,
            },
            step("o1", 0, 0, StepState::Running, 0),
        ];
        let runs = summarise(&records, 10);
        assert_eq!(runs.len(), 2);
        assert_eq!(
            (runs[0].kind.as_str(), runs[0].state.as_str()),
            ("start", "unfinished")
        );
        assert_eq!(runs[0].vm.as_deref(), Some("a"));
        assert_eq!(runs[0].by.as_deref(), Some("admin"));
        assert_eq!((runs[0].steps_done, runs[0].steps_failed), (0, 0));
        assert_eq!(runs[0].steps[0].state, StepProgress::Running);
        assert_eq!(
            (runs[1].kind.as_str(), runs[1].state.as_str()),
            ("reorg", "finished")
        );
        assert_eq!((runs[1].steps_done, runs[1].steps_failed), (1, 0));
        assert_eq!(runs[1].actions, vec![start("a", "cs1")]);
        assert_eq!(runs[1].rounds, 2);
        // Round 0's failed step is kept before round 1's; its unstarted
        // second step is not.
        let steps: Vec<(u32, usize, StepProgress)> = runs[1]
            .steps
            .iter()
            .map(|s| (s.round, s.index, s.state))
            .collect();
        assert_eq!(
            steps,
            [(0, 0, StepProgress::Failed), (1, 0, StepProgress::Done)]
        );
        assert_eq!(runs[1].steps[0].error.as_deref(), Some("no memory"));
        // Journals without times give no times, not zeros.
        assert_eq!(runs[1].steps[1].took_ms(), None);
        assert_eq!(runs[1].ended_ms, None);
        assert_eq!(summarise(&records, 1).len(), 1);
        assert_eq!(summarise(&records, 1)[0].id, "o1");
    }

    #[test]
    fn steps_carry_their_times_state_and_the_plans_reasons() {
        let records = vec![
            begin("r1", RunKind::Reorg, "cs2"),
            Record::Fenced {
                id: "r1".into(),
                how: "fenced with `ipmi`".into(),
                at_ms: 1_300,
            },
            plan(
                "r1",
                0,
                vec![
                    Action::Stop {
                        vm: "t1".into(),
                        host: "cs1".into(),
                    },
                    start("db", "cs1"),
                    start("web", "cs3"),
                ],
                &[("t1", "priority 2 is lowest: stopped to make room for db")],
            ),
            step("r1", 0, 0, StepState::Running, 2_000),
            step("r1", 0, 0, StepState::Done, 4_100),
            step("r1", 0, 1, StepState::Running, 4_200),
        ];
        let run = &summarise(&records, 10)[0];
        assert_eq!(run.fencing.as_deref(), Some("fenced with `ipmi`"));
        assert_eq!(run.fenced_ms, Some(1_300));
        assert_eq!(run.rounds, 1);
        assert_eq!(
            run.left_down.get("t1").map(String::as_str),
            Some("priority 2 is lowest: stopped to make room for db")
        );
        type Times = (Option<u64>, Option<u64>, Option<u64>);
        let got: Vec<(StepProgress, Times)> = run
            .steps
            .iter()
            .map(|s| (s.state, (s.started_ms, s.ended_ms, s.took_ms())))
            .collect();
        assert_eq!(
            got,
            [
                (StepProgress::Done, (Some(2_000), Some(4_100), Some(2_100))),
                (StepProgress::Running, (Some(4_200), None, None)),
                (StepProgress::NotStarted, (None, None, None)),
            ]
        );
        assert_eq!(run.state, "unfinished");

        // A resumed step starts again: its latest start counts.
        let mut more = records.clone();
        more.push(step("r1", 0, 1, StepState::Running, 9_000));
        more.push(step("r1", 0, 1, StepState::Failed, 9_500));
        more.push(end("r1", "incomplete", &["t1"], 9_600));
        let run = &summarise(&more, 10)[0];
        assert_eq!(run.steps[1].state, StepProgress::Failed);
        assert_eq!(run.steps[1].took_ms(), Some(500));
        assert_eq!(run.steps[1].error.as_deref(), Some("no memory"));
        assert_eq!((run.steps_done, run.steps_failed), (1, 1));
        assert_eq!(run.ended_ms, Some(9_600));
        assert_eq!(run.stopped, ["t1"]);
        assert_eq!(run.state, "incomplete");
    }

    #[test]
    fn journals_written_before_times_were_recorded_still_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let j = Journal::open(dir.path(), "demo").expect("journal");
        let old = concat!(
            r#"{"event":"begin","id":"r1","kind":"reorg","server":"cs2","at_ms":1000}"#,
            "\n",
            r#"{"event":"fenced","id":"r1","how":"fence"}"#,
            "\n",
            r#"{"event":"plan","id":"r1","round":0,"plan":{"actions":[{"op":"start","vm":"a","host":"cs1"}],"placement":{"a":"cs1"},"down":[],"reasons":{},"planner":"exact"}}"#,
            "\n",
            r#"{"event":"step","id":"r1","round":0,"index":0,"state":"done"}"#,
            "\n",
            r#"{"event":"end","id":"r1","outcome":"finished"}"#,
            "\n",
        );
        std::fs::write(dir.path().join("demo.journal.jsonl"), old).expect("write");
        let runs = j.runs(10).expect("runs");
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].steps[0].state, StepProgress::Done);
        assert_eq!(runs[0].steps[0].ended_ms, None);
        assert_eq!(runs[0].fenced_ms, None);
        assert_eq!(runs[0].ended_ms, None);
        assert_eq!(runs[0].state, "finished");
        // New records carry their time.
        j.append(&step("r2", 0, 0, StepState::Running, 77))
            .expect("append");
        let last = j.records().expect("records").pop();
        assert!(
            matches!(last, Some(Record::Step { at_ms: 77, .. })),
            "{last:?}"
        );
    }

    #[test]
    fn the_lock_is_exclusive_and_says_who_holds_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let j = Journal::open(dir.path(), "demo").expect("journal");
        let held = j.try_lock("start a on cs1").expect("lock").expect("free");
        match j.try_lock("stop b").expect("lock") {
            Ok(_) => panic!("the lock was taken twice"),
            Err(holder) => {
                let h = holder.expect("the holder says who it is");
                assert_eq!(h.what, "start a on cs1");
                assert_eq!(h.pid, std::process::id());
            }
        }
        assert!(j.holder().is_some());
        drop(held);
        assert_eq!(j.holder(), None);
        let again = j.try_lock("stop b").expect("lock");
        assert!(again.is_ok(), "free again after the holder let go");
    }
}
