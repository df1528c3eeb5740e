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
//! This module only records; it never decides what to run.

use super::model::Plan;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
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
    },
    /// The stopped VMs of these reorganisations were dealt with by a restore.
    Restored {
        /// The reorganisations' ids.
        ids: Vec<String>,
    },
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
        })
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
                Record::Restored { .. } => {}
            }
        }
        Ok(runs)
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
        let tmp = self.placement.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(seen).map_err(|e| self.err(e.to_string()))?;
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &self.placement))
            .map_err(|e| JournalError {
                path: self.placement.display().to_string(),
                message: format!("cannot write the last known placement: {e}"),
            })
    }
}
