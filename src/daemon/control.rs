//! The alarm stage's control handle: how the HTTP API (or anything else in
//! the daemon's process) acknowledges, un-acknowledges and silences, and
//! gets back the alarm's new state rather than "submitted".
//!
//! [`AlarmControl`] is cheap to clone. Each call sends one request over a
//! bounded channel into the alarm stage's select loop, with a oneshot for
//! the answer; the stage applies it to its lifecycle, persists it through
//! the same store paths as everything else (so a restart keeps it), and
//! answers with the alarm as it now has it. While no stage is running (it
//! waits for its state from the database at start, a reload is under way,
//! the daemon stops) a call answers [`ControlError::Unavailable`] at once.
//! The stage also publishes a per-check summary of its open alarms on a
//! watch channel ([`AlarmControl::alarms_by_check`]), so readers can tell
//! handled from unhandled checks without asking it.
//!
//! The handle outlives a stage: made once (held by [`super::Shared`]), each
//! stage attaches to it for its lifetime. Nothing here touches the store or
//! the lifecycle itself; the stage does (`alarms.rs`).

use crate::alarm::lifecycle::{AckTerms, Alarm, AlarmId, Suppression};
use crate::alarm::silence::{NewSilence, Silence, SilenceId};
use crate::plugin_output::State;
use crate::store::AlarmRow;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch, Mutex, OwnedMutexGuard};

/// How many requests may wait for the stage.
const QUEUE: usize = 64;
/// The longest a call waits for the stage's answer (it may be busy with a
/// slow database); then it answers `Unavailable`.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// An alarm as the stage now has it: the same shape `laxmon alarms --json`
/// shows (`state` is also its severity), built from the lifecycle.
pub type AlarmView = AlarmRow;

/// One check's open alarm, as the stage publishes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckAlarm {
    /// The open alarm.
    pub alarm_id: AlarmId,
    /// The check's state in it.
    pub state: State,
    /// Someone acknowledged it: it is handled.
    pub acked: bool,
    /// What holds it back (maintenance, silence, flapping), if anything.
    pub suppressed: Option<Suppression>,
}

/// Every check with an open alarm, by check name.
pub type AlarmsByCheck = Arc<HashMap<String, CheckAlarm>>;

/// Acknowledge one alarm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckCommand {
    /// The alarm.
    pub alarm_id: AlarmId,
    /// Who acknowledges (required).
    pub by: String,
    /// Why (required, not blank).
    pub comment: String,
    /// When the acknowledgement expires (`None`: at recovery).
    #[serde(default)]
    pub expires: Option<DateTime<Utc>>,
    /// Holds until recovery (default) or ends at the next change to another
    /// problem state.
    #[serde(default = "sticky")]
    pub sticky: bool,
}

fn sticky() -> bool {
    true
}

impl AckCommand {
    /// The lifecycle's terms of this acknowledgement.
    pub fn terms(&self) -> AckTerms {
        AckTerms {
            by: self.by.clone(),
            comment: self.comment.clone(),
            expires: self.expires,
            sticky: self.sticky,
        }
    }
}

/// Which open alarms a bulk request covers; every given criterion must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmFilter {
    /// The check's state in the alarm.
    #[serde(default)]
    pub state: Option<State>,
    /// The host entry, a name or glob.
    #[serde(default)]
    pub host: Option<String>,
    /// The check, a name or glob.
    #[serde(default)]
    pub check: Option<String>,
    /// A tag of the check or its host.
    #[serde(default)]
    pub tag: Option<String>,
    /// Only alarms nobody acknowledged.
    #[serde(default)]
    pub unacknowledged: bool,
}

/// Why a request was refused; each maps to one HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// No such alarm or silence (404).
    #[error("{0}")]
    NotFound(String),
    /// The request does not fit the current state: already acknowledged,
    /// not acknowledged, resolved, silence over (409).
    #[error("{0}")]
    Conflict(String),
    /// The request itself is wrong: no comment, a bad glob, an end in the past (422).
    #[error("{0}")]
    Invalid(String),
    /// No alarm stage is running (it waits for the database at start, or a
    /// reload or shutdown is under way), or it did not answer in time, or
    /// the store refused a write (503).
    #[error("{0}")]
    Unavailable(String),
}

impl ControlError {
    /// The HTTP status this error means.
    pub fn http_status(&self) -> u16 {
        match self {
            ControlError::NotFound(_) => 404,
            ControlError::Conflict(_) => 409,
            ControlError::Invalid(_) => 422,
            ControlError::Unavailable(_) => 503,
        }
    }
}

/// The answer channel of one request.
type Reply<T> = oneshot::Sender<Result<T, ControlError>>;

/// The result of a bulk acknowledgement: per alarm, its new view or why not.
pub type BulkAck = Vec<(AlarmId, Result<AlarmView, ControlError>)>;

/// One request to the stage.
pub(crate) enum Request {
    /// Acknowledge one alarm.
    Ack {
        alarm_id: AlarmId,
        terms: AckTerms,
        reply: Reply<AlarmView>,
    },
    /// Remove an alarm's acknowledgement.
    Unack {
        alarm_id: AlarmId,
        by: String,
        reply: Reply<AlarmView>,
    },
    /// Acknowledge every open alarm the filter matches.
    AckMatching {
        filter: AlarmMatcher,
        terms: AckTerms,
        reply: Reply<BulkAck>,
    },
    /// One alarm as the stage has it.
    Alarm {
        alarm_id: AlarmId,
        reply: Reply<AlarmView>,
    },
    /// Set a silence.
    AddSilence {
        new: NewSilence,
        reply: Reply<Silence>,
    },
    /// Remove a silence.
    RemoveSilence {
        id: SilenceId,
        by: String,
        reply: Reply<Silence>,
    },
    /// The silences not over yet.
    Silences { reply: Reply<Vec<Silence>> },
}

/// An [`AlarmFilter`] with its globs compiled.
#[derive(Debug, Clone)]
pub(crate) struct AlarmMatcher {
    state: Option<State>,
    host: Option<glob::Pattern>,
    check: Option<glob::Pattern>,
    tag: Option<String>,
    unacknowledged: bool,
}

impl AlarmMatcher {
    /// Compiles `f`'s globs.
    fn new(f: &AlarmFilter) -> Result<AlarmMatcher, ControlError> {
        let glob = |what: &str, g: &Option<String>| {
            g.as_deref()
                .map(|g| {
                    glob::Pattern::new(g).map_err(|e| {
                        ControlError::Invalid(format!("{what} {g:?} is not a valid pattern: {e}"))
                    })
                })
                .transpose()
        };
        Ok(AlarmMatcher {
            state: f.state,
            host: glob("host", &f.host)?,
            check: glob("check", &f.check)?,
            tag: f.tag.clone(),
            unacknowledged: f.unacknowledged,
        })
    }

    /// Whether the open alarm `a` is covered.
    pub(crate) fn matches(&self, a: &Alarm) -> bool {
        self.state.is_none_or(|s| a.state == s)
            && self.host.as_ref().is_none_or(|p| p.matches(&a.host))
            && self.check.as_ref().is_none_or(|p| p.matches(&a.check))
            && self.tag.as_ref().is_none_or(|t| a.tags.contains(t))
            && (!self.unacknowledged || a.ack.is_none())
    }
}

/// What the handle and the attached stage share.
struct Shared {
    /// The stage's end of the channel, held by the attached stage.
    inbox: Arc<Mutex<mpsc::Receiver<Request>>>,
    /// A stage is attached and running its loop.
    ready: AtomicBool,
    /// The per-check summary of open alarms.
    by_check: watch::Sender<AlarmsByCheck>,
}

/// The handle into the running alarm stage. Cheap to clone; made once and
/// kept across reloads.
#[derive(Clone)]
pub struct AlarmControl {
    tx: mpsc::Sender<Request>,
    shared: Arc<Shared>,
}

impl Default for AlarmControl {
    fn default() -> Self {
        AlarmControl::new()
    }
}

impl std::fmt::Debug for AlarmControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlarmControl")
            .field("ready", &self.is_ready())
            .finish_non_exhaustive()
    }
}

impl AlarmControl {
    /// A handle with no stage attached yet.
    pub fn new() -> AlarmControl {
        let (tx, rx) = mpsc::channel(QUEUE);
        let (by_check, _) = watch::channel(AlarmsByCheck::default());
        AlarmControl {
            tx,
            shared: Arc::new(Shared {
                inbox: Arc::new(Mutex::new(rx)),
                ready: AtomicBool::new(false),
                by_check,
            }),
        }
    }

    /// Whether an alarm stage is running and takes requests.
    pub fn is_ready(&self) -> bool {
        self.shared.ready.load(Ordering::SeqCst)
    }

    /// Every check with an open alarm, updated by the stage whenever that
    /// changes (empty until a stage has restored its state; the last one
    /// published while none runs).
    pub fn alarms_by_check(&self) -> watch::Receiver<AlarmsByCheck> {
        self.shared.by_check.subscribe()
    }

    /// Acknowledges one open alarm; returns it as acknowledged. A blank
    /// comment or author is `Invalid`; an alarm acknowledged already or
    /// resolved is a `Conflict`.
    pub async fn ack(&self, cmd: AckCommand) -> Result<AlarmView, ControlError> {
        let terms = cmd.terms();
        check_terms(&terms)?;
        self.call(|reply| Request::Ack {
            alarm_id: cmd.alarm_id,
            terms,
            reply,
        })
        .await
    }

    /// Removes an open alarm's acknowledgement as `by`; returns the alarm
    /// as it is then (repeats and escalation resume). Not acknowledged or
    /// resolved: a `Conflict`.
    pub async fn unack(&self, alarm_id: AlarmId, by: &str) -> Result<AlarmView, ControlError> {
        if by.trim().is_empty() {
            return Err(ControlError::Invalid(
                "say who removes the acknowledgement".into(),
            ));
        }
        let by = by.to_string();
        self.call(|reply| Request::Unack {
            alarm_id,
            by,
            reply,
        })
        .await
    }

    /// Acknowledges every open alarm `filter` matches, on `terms`; returns
    /// each one's outcome, oldest alarm first. The whole call fails only
    /// for bad terms or filter, or when no stage runs.
    pub async fn ack_matching(
        &self,
        filter: AlarmFilter,
        terms: AckTerms,
    ) -> Result<BulkAck, ControlError> {
        check_terms(&terms)?;
        let filter = AlarmMatcher::new(&filter)?;
        self.call(|reply| Request::AckMatching {
            filter,
            terms,
            reply,
        })
        .await
    }

    /// One alarm as the stage now has it (open, or resolved recently; one
    /// resolved long ago as stored).
    pub async fn alarm(&self, alarm_id: AlarmId) -> Result<AlarmView, ControlError> {
        self.call(|reply| Request::Alarm { alarm_id, reply }).await
    }

    /// Stores a silence and applies it at once; returns it with its number.
    pub async fn add_silence(&self, new: NewSilence) -> Result<Silence, ControlError> {
        self.call(|reply| Request::AddSilence { new, reply }).await
    }

    /// Removes a silence as `by` and lets out what it held back; returns it
    /// as removed. Unknown: `NotFound`; over already: `Conflict`.
    pub async fn remove_silence(&self, id: SilenceId, by: &str) -> Result<Silence, ControlError> {
        if by.trim().is_empty() {
            return Err(ControlError::Invalid("say who removes the silence".into()));
        }
        let by = by.to_string();
        self.call(|reply| Request::RemoveSilence { id, by, reply })
            .await
    }

    /// The silences not over yet (active or still to start), by number.
    pub async fn silences(&self) -> Result<Vec<Silence>, ControlError> {
        self.call(|reply| Request::Silences { reply }).await
    }

    /// Sends one request and waits (bounded) for its answer.
    async fn call<T>(&self, request: impl FnOnce(Reply<T>) -> Request) -> Result<T, ControlError> {
        if !self.is_ready() {
            return Err(not_running());
        }
        let (reply, answer) = oneshot::channel();
        let asked = async {
            self.tx
                .send(request(reply))
                .await
                .map_err(|_| not_running())?;
            answer.await.map_err(|_| not_running())?
        };
        tokio::time::timeout(REPLY_TIMEOUT, asked)
            .await
            .unwrap_or_else(|_| {
                Err(ControlError::Unavailable(format!(
                    "the alarm stage did not answer within {} s",
                    REPLY_TIMEOUT.as_secs()
                )))
            })
    }

    /// Attaches a stage: it takes the requests until the returned inbox is
    /// dropped. `None` when another stage is attached already.
    pub(crate) fn attach(&self) -> Option<Inbox> {
        let rx = Arc::clone(&self.shared.inbox).try_lock_owned().ok()?;
        self.shared.ready.store(true, Ordering::SeqCst);
        Some(Inbox {
            rx,
            shared: Arc::clone(&self.shared),
        })
    }
}

/// The attached stage's end: requests in, summaries out.
pub(crate) struct Inbox {
    rx: OwnedMutexGuard<mpsc::Receiver<Request>>,
    shared: Arc<Shared>,
}

impl Inbox {
    /// The next request.
    pub(crate) async fn recv(&mut self) -> Option<Request> {
        self.rx.recv().await
    }

    /// Publishes the per-check summary of `open` alarms, if it changed.
    pub(crate) fn publish<'a>(&self, open: impl Iterator<Item = &'a Alarm>) {
        let map: HashMap<String, CheckAlarm> = open
            .map(|a| {
                let summary = CheckAlarm {
                    alarm_id: a.id,
                    state: a.state,
                    acked: a.ack.is_some(),
                    suppressed: a.suppressed_by.clone(),
                };
                (a.check.clone(), summary)
            })
            .collect();
        self.shared.by_check.send_if_modified(|current| {
            if **current == map {
                return false;
            }
            *current = Arc::new(map);
            true
        });
    }
}

impl Drop for Inbox {
    /// The stage stops taking requests: new calls answer `Unavailable`, and
    /// so do the ones still queued (their answer channels close).
    fn drop(&mut self) {
        self.shared.ready.store(false, Ordering::SeqCst);
        while self.rx.try_recv().is_ok() {}
    }
}

fn not_running() -> ControlError {
    ControlError::Unavailable(
        "the alarm stage is not running (waiting for the database, reloading or stopping); try again"
            .into(),
    )
}

/// An acknowledgement must say who and why.
fn check_terms(terms: &AckTerms) -> Result<(), ControlError> {
    if terms.by.trim().is_empty() {
        return Err(ControlError::Invalid("say who acknowledges".into()));
    }
    if terms.comment.trim().is_empty() {
        return Err(ControlError::Invalid(
            "an acknowledgement needs a comment saying why".into(),
        ));
    }
    Ok(())
}
