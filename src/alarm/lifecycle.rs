//! The alarm lifecycle: one alarm per incident, from the HARD problem that
//! opens it to the recovery that resolves it, and what is due meanwhile.
//!
//! [`Alarms`] is fed every check result ([`Alarms::observe`]) and the
//! passing of time ([`Alarms::tick`]); both return [`Effect`]s: actions to
//! run, notifications to queue, alarms to persist. Per rule it honours the
//! `after` delay (of its actions and its first notifications alike: both
//! happen only if the alarm is still open then), `repeat`, escalation
//! levels, acknowledgement (which stops repeats and escalation and gives up
//! actions not yet due; it may expire, and a non-sticky one ends when the
//! check changes to another problem state; un-acknowledging resumes
//! repeats), on-call windows per contact and channel, maintenance windows
//! and silences (nothing runs, nothing is sent, the suppression is
//! recorded, and what was held back happens once the window or silence
//! ends),
//! flapping (a flapping check pages at most once per repeat interval) and
//! Monit-style restart-loop protection (after `restarts` action runs within
//! `within` cycles: stop, escalate, and say so in the alarm).
//!
//! Pure: time is passed in, nothing is sent or run here, and every
//! notification carries a deterministic idempotency key so that the outbox
//! can refuse a second copy.

use super::facts::Facts;
use super::rules::{maintenance_at, matching_rules, Subject};
use super::silence::{Held, Silence, SilenceId};
use crate::config::alarms::{Action, AlarmConfig, Rule};
use crate::config::Config;
use crate::plugin_output::{format_perfdata, State};
use crate::result::CheckResult;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Duration;

/// An alarm's number, unique over the daemon's life (persisted with [`Snapshot`]).
pub type AlarmId = u64;

/// How long a flapping check without a `repeat` interval stays quiet after a page.
pub const FLAP_HOLD: Duration = Duration::from_secs(3600);

/// How many resolved alarms stay in memory for queries and persistence.
const RECENT_RESOLVED: usize = 1000;

/// What a notification is about (Nagios's `$NOTIFICATIONTYPE$`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum NotificationType {
    /// The problem (first, repeated or escalated).
    Problem,
    /// The alarm resolved.
    Recovery,
    /// Someone acknowledged the alarm.
    Acknowledgement,
}

impl NotificationType {
    /// The upper-case name (`PROBLEM`, `RECOVERY`, `ACKNOWLEDGEMENT`).
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationType::Problem => "PROBLEM",
            NotificationType::Recovery => "RECOVERY",
            NotificationType::Acknowledgement => "ACKNOWLEDGEMENT",
        }
    }
}

/// Why something was not done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Suppression {
    /// A maintenance window covers the check.
    Maintenance {
        /// The window's name.
        window: String,
    },
    /// The check is flapping and paged within the repeat interval.
    Flapping,
    /// The channel is outside the contact's on-call windows.
    OffDuty,
    /// Restart-loop protection stopped the actions.
    RestartLoop,
    /// The alarm was acknowledged before the rule's actions came due.
    Acknowledged,
    /// A silence (maintenance declared at run time) covers the check.
    Silence {
        /// The silence's number.
        id: SilenceId,
        /// Who set it.
        by: String,
        /// When it ends.
        ends: DateTime<Utc>,
    },
}

impl Suppression {
    /// The reason's name, as in JSON (`maintenance`, `flapping`, ...).
    pub fn reason(&self) -> &'static str {
        match self {
            Suppression::Maintenance { .. } => "maintenance",
            Suppression::Flapping => "flapping",
            Suppression::OffDuty => "off_duty",
            Suppression::RestartLoop => "restart_loop",
            Suppression::Acknowledged => "acknowledged",
            Suppression::Silence { .. } => "silence",
        }
    }
}

/// One thing that happened to an alarm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// The alarm opened.
    Opened {
        /// The state that opened it.
        state: State,
        /// The check's output.
        output: String,
    },
    /// The check changed between non-OK states.
    StateChanged {
        /// Before.
        from: State,
        /// After.
        to: State,
        /// The check's output.
        output: String,
    },
    /// Flap detection says the check started (true) or stopped (false) flapping.
    Flapping {
        /// Started or stopped.
        started: bool,
    },
    /// An action was handed out to run.
    ActionRequested {
        /// The rule.
        rule: String,
        /// The action's kind.
        action: String,
    },
    /// An action was not run.
    ActionSuppressed {
        /// The rule.
        rule: String,
        /// The action's kind.
        action: String,
        /// Why.
        why: Suppression,
    },
    /// A notification was handed to the outbox.
    Notified {
        /// The rule.
        rule: String,
        /// Who.
        contact: String,
        /// Through which notifier.
        notifier: String,
        /// What about.
        kind: NotificationType,
        /// Escalation level (0 = the rule's `notify`).
        level: usize,
    },
    /// A notification was not sent.
    NotificationSuppressed {
        /// The rule.
        rule: String,
        /// Who would have been told (empty for a whole round).
        contact: String,
        /// Through which notifier (empty for a whole round).
        notifier: String,
        /// Why.
        why: Suppression,
    },
    /// The alarm reached an escalation level.
    Escalated {
        /// The rule.
        rule: String,
        /// The level, 1-based.
        level: usize,
    },
    /// Restart-loop protection tripped.
    RestartLoop {
        /// The rule.
        rule: String,
        /// Its `restarts`.
        restarts: u32,
        /// Its `within`.
        cycles: u32,
    },
    /// Someone acknowledged the alarm.
    Acknowledged {
        /// Who.
        by: String,
        /// Why.
        comment: String,
        /// When the acknowledgement expires, if it does.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires: Option<DateTime<Utc>>,
        /// Whether it holds until recovery (else it ends at the next change
        /// to another problem state).
        #[serde(default = "sticky")]
        sticky: bool,
    },
    /// The acknowledgement ended while the alarm stays open: repeats and
    /// escalation resume as the rules say.
    Unacknowledged {
        /// Who had acknowledged.
        ack_by: String,
        /// Why it ended.
        why: AckEnd,
    },
    /// The check recovered.
    Resolved {
        /// The check's output.
        output: String,
    },
}

/// A timestamped [`EventKind`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmEvent {
    /// When.
    pub at: DateTime<Utc>,
    /// What.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// Why an acknowledgement ended before its alarm did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum AckEnd {
    /// It reached its expiry time.
    Expired {
        /// The expiry time.
        expires: DateTime<Utc>,
    },
    /// It was not sticky and the check changed to another problem state.
    StateChanged {
        /// Before.
        from: State,
        /// After.
        to: State,
    },
    /// Someone removed it (`laxmon unack`, the HTTP API).
    Removed {
        /// Who.
        by: String,
    },
}

/// An acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// Who acknowledged.
    pub by: String,
    /// Their comment.
    pub comment: String,
    /// When.
    pub at: DateTime<Utc>,
    /// When it expires (the alarm is unacknowledged again then); `None`: never.
    #[serde(default)]
    pub expires: Option<DateTime<Utc>>,
    /// Sticky (the default, as in Icinga): holds until recovery. Not
    /// sticky: ends when the check changes to another problem state.
    #[serde(default = "sticky")]
    pub sticky: bool,
}

fn sticky() -> bool {
    true
}

/// What an operator says when acknowledging an alarm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckTerms {
    /// Who acknowledges.
    pub by: String,
    /// Why.
    pub comment: String,
    /// When the acknowledgement expires; `None`: never (until recovery).
    #[serde(default)]
    pub expires: Option<DateTime<Utc>>,
    /// Holds until recovery (true), or ends at the next change to another
    /// problem state (false).
    #[serde(default = "sticky")]
    pub sticky: bool,
}

impl AckTerms {
    /// A sticky acknowledgement that never expires.
    pub fn sticky(by: &str, comment: &str) -> AckTerms {
        AckTerms {
            by: by.to_string(),
            comment: comment.to_string(),
            expires: None,
            sticky: true,
        }
    }
}

/// How far one rule has got with one alarm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleProgress {
    /// The rule's name.
    pub rule: String,
    /// When the rule started to apply (alarm opened, or state changed into its states).
    pub started: DateTime<Utc>,
    /// The first round (the rule's `notify`) is done.
    pub initial_done: bool,
    /// Rounds of notifications so far (initial, repeats, escalations); part of the keys.
    pub rounds: u32,
    /// When the last round went out.
    pub last_round: Option<DateTime<Utc>>,
    /// Escalation levels reached.
    pub level: usize,
    /// Restart-loop protection asks to escalate at once.
    pub escalate_now: bool,
    /// A maintenance (or silence) suppression was recorded for the current
    /// window or silence (the name predates silences; snapshots keep it).
    pub in_maintenance: bool,
    /// The rule's actions are settled: handed out to run, or given up for
    /// good (restart loop, acknowledgement). Until then they are due at
    /// `started + after`. Snapshots written before actions waited for
    /// `after` lack the field; their actions ran when the alarm opened.
    #[serde(default = "settled")]
    pub actions_done: bool,
    /// Holding back the due actions was recorded for the current maintenance window or silence.
    #[serde(default)]
    pub actions_held: bool,
}

fn settled() -> bool {
    true
}

/// One incident of one check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alarm {
    /// Its number.
    pub id: AlarmId,
    /// The check.
    pub check: String,
    /// The check's host entry.
    pub host: String,
    /// The host's address.
    pub address: String,
    /// Tags of the check and its host.
    pub tags: Vec<String>,
    /// When it opened.
    pub opened: DateTime<Utc>,
    /// When it resolved.
    pub resolved: Option<DateTime<Utc>>,
    /// The check's current state.
    pub state: State,
    /// The state before the latest change.
    pub previous_state: State,
    /// Attempt of the latest result.
    pub attempt: u32,
    /// The check's `max_attempts`.
    pub max_attempts: u32,
    /// Latest output (first line).
    pub output: String,
    /// Latest long output.
    pub long_output: String,
    /// Latest perfdata, as the plugin wrote it.
    pub perfdata: String,
    /// The check is flapping.
    pub flapping: bool,
    /// The acknowledgement, once given.
    pub ack: Option<Ack>,
    /// A note for humans (e.g. that restart-loop protection tripped).
    pub note: Option<String>,
    /// What holds its notifications and actions back (a maintenance
    /// window, flapping), as of the latest look at it: every result and
    /// every [`Alarms::tick`] while open, the resolution once resolved.
    #[serde(default)]
    pub suppressed_by: Option<Suppression>,
    /// Progress of every rule that applies.
    pub rules: Vec<RuleProgress>,
    /// Who got the problem, through which notifier (recipients of recovery and ack).
    pub notified: Vec<(String, String)>,
    /// Every change while open.
    pub history: Vec<AlarmEvent>,
}

impl Alarm {
    /// Whether the alarm is still open.
    pub fn is_open(&self) -> bool {
        self.resolved.is_none()
    }

    /// The alarm's facts at `now`, for templates, scripts and webhooks.
    pub fn facts(&self, now: DateTime<Utc>) -> Facts {
        let mut f = Facts::default();
        f.set("alarm_id", self.id.to_string());
        f.set("check", &self.check);
        f.set("host", &self.host);
        f.set("address", &self.address);
        f.set("tags", self.tags.join(","));
        f.set("state", self.state.as_str());
        f.set("state_id", self.state.code().to_string());
        f.set("state_type", "HARD");
        f.set("previous_state", self.previous_state.as_str());
        f.set("attempt", self.attempt.to_string());
        f.set("max_attempts", self.max_attempts.to_string());
        f.set("output", &self.output);
        f.set("long_output", &self.long_output);
        f.set("perfdata", &self.perfdata);
        f.set("flapping", if self.flapping { "1" } else { "0" });
        f.set("opened", self.opened.to_rfc3339());
        let since = (now - self.opened).to_std().unwrap_or_default();
        f.set("since", super::facts::human_duration(since));
        f.set("time", now.to_rfc3339());
        f.set("timet", now.timestamp().to_string());
        f.set("note", self.note.clone().unwrap_or_default());
        if let Some(a) = &self.ack {
            f.set("ack_by", &a.by);
            f.set("ack_comment", &a.comment);
        }
        f
    }

    fn record(&mut self, at: DateTime<Utc>, kind: EventKind) {
        self.history.push(AlarmEvent { at, kind });
    }
}

/// An action to run for an alarm.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionRequest {
    /// Unique per alarm, rule and action: `ALARM:RULE:INDEX`.
    pub key: String,
    /// The alarm.
    pub alarm_id: AlarmId,
    /// The rule that asks for it.
    pub rule: String,
    /// What to run.
    pub action: Action,
    /// The check.
    pub check: String,
    /// The check's host entry.
    pub host: String,
    /// The alarm's facts (environment of scripts).
    pub facts: Facts,
}

/// A notification to queue in the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Idempotency key: the same notification always has the same key.
    pub key: String,
    /// The alarm.
    pub alarm_id: AlarmId,
    /// The rule.
    pub rule: String,
    /// The contact.
    pub contact: String,
    /// The notifier.
    pub notifier: String,
    /// What about.
    pub kind: NotificationType,
    /// Escalation level.
    pub level: usize,
    /// Facts for the templates.
    pub facts: Facts,
}

/// What the caller must do after feeding the lifecycle.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// This alarm was opened or changed: persist `Alarms::alarm(id)`.
    Alarm(AlarmId),
    /// Run this action and record the outcome.
    Run(ActionRequest),
    /// Queue this notification.
    Notify(Notification),
}

/// Errors of operator requests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlarmError {
    /// No alarm has this number.
    #[error("no alarm {0}: list them with `laxmon alarms`")]
    NotFound(AlarmId),
    /// The alarm is resolved.
    #[error("alarm {0} is already resolved")]
    Resolved(AlarmId),
    /// The alarm is already acknowledged.
    #[error("alarm {0} is already acknowledged by {1}")]
    AlreadyAcknowledged(AlarmId, String),
    /// The alarm is not acknowledged (nothing to remove).
    #[error("alarm {0} is not acknowledged")]
    NotAcknowledged(AlarmId),
    /// The acknowledgement would expire before it starts.
    #[error("alarm {0}: the acknowledgement would expire at {1}, which is not in the future")]
    ExpiresInPast(AlarmId, DateTime<Utc>),
}

/// Per-check memory that outlives one alarm.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckMemory {
    /// Results seen (Monit's cycles).
    pub cycle: u64,
    /// Cycles in which actions ran, newest last.
    pub restarts: VecDeque<u64>,
    /// When this check last paged anyone.
    pub last_paged: Option<DateTime<Utc>>,
    /// The open alarm, if any.
    pub open: Option<AlarmId>,
}

/// What must survive a restart: persist after every [`Effect::Alarm`] (or periodically).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The next alarm number.
    pub next_id: AlarmId,
    /// Open alarms.
    pub open: Vec<Alarm>,
    /// Per-check memory, by check name.
    pub checks: BTreeMap<String, CheckMemory>,
}

#[derive(Debug, Clone)]
struct CheckInfo {
    tags: Vec<String>,
    address: String,
    max_attempts: u32,
}

/// Every alarm and what is due for it.
#[derive(Debug, Clone)]
pub struct Alarms {
    config: AlarmConfig,
    checks: HashMap<String, CheckInfo>,
    memory: HashMap<String, CheckMemory>,
    open: BTreeMap<AlarmId, Alarm>,
    resolved: VecDeque<Alarm>,
    next_id: AlarmId,
    /// Silences not over yet (set by the stage from the store).
    silences: Vec<Held>,
}

impl Alarms {
    /// An empty lifecycle for `config`.
    pub fn new(config: &Config) -> Alarms {
        let checks = config
            .checks
            .iter()
            .map(|c| {
                let mut tags = c.tags.clone();
                if let Some(h) = config.host(&c.host) {
                    tags.extend(h.tags.iter().cloned());
                }
                let info = CheckInfo {
                    tags,
                    address: config.address_of(&c.host),
                    max_attempts: c.max_attempts,
                };
                (c.name.clone(), info)
            })
            .collect();
        Alarms {
            config: config.alarms.clone(),
            checks,
            memory: HashMap::new(),
            open: BTreeMap::new(),
            resolved: VecDeque::new(),
            next_id: 1,
            silences: Vec::new(),
        }
    }

    /// Resumes from a persisted snapshot.
    pub fn restore(config: &Config, snapshot: Snapshot) -> Alarms {
        let mut a = Alarms::new(config);
        a.next_id = snapshot.next_id.max(1);
        a.memory = snapshot.checks.into_iter().collect();
        for alarm in snapshot.open {
            a.next_id = a.next_id.max(alarm.id + 1);
            a.open.insert(alarm.id, alarm);
        }
        a
    }

    /// What to persist so that [`Alarms::restore`] resumes exactly.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            next_id: self.next_id,
            open: self.open.values().cloned().collect(),
            checks: self
                .memory
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// An open or recently resolved alarm.
    pub fn alarm(&self, id: AlarmId) -> Option<&Alarm> {
        self.open
            .get(&id)
            .or_else(|| self.resolved.iter().find(|a| a.id == id))
    }

    /// Open alarms, oldest first.
    pub fn open_alarms(&self) -> impl Iterator<Item = &Alarm> {
        self.open.values()
    }

    /// Feeds one check result; returns what is due because of it.
    pub fn observe(&mut self, r: &CheckResult, now: DateTime<Utc>) -> Vec<Effect> {
        self.refresh_silences(now);
        let info = self.checks.get(&r.check).cloned().unwrap_or(CheckInfo {
            tags: Vec::new(),
            address: r.host.clone(),
            max_attempts: r.transition.current.attempt,
        });
        let mem = self.memory.entry(r.check.clone()).or_default();
        mem.cycle += 1;
        let t = &r.transition;
        let cur = t.current;
        let mut effects = Vec::new();
        let open_id = mem.open;
        match open_id {
            None if cur.state != State::Ok && cur.state_type == crate::state::StateType::Hard => {
                let id = self.next_id;
                self.next_id += 1;
                let mut alarm = Alarm {
                    id,
                    check: r.check.clone(),
                    host: r.host.clone(),
                    address: info.address.clone(),
                    tags: info.tags.clone(),
                    opened: now,
                    resolved: None,
                    state: cur.state,
                    previous_state: t.previous.state,
                    attempt: cur.attempt,
                    max_attempts: info.max_attempts,
                    output: r.output.output.clone(),
                    long_output: r.output.long_output.clone(),
                    perfdata: format_perfdata(&r.output.perfdata),
                    flapping: t.flapping,
                    ack: None,
                    note: None,
                    suppressed_by: None,
                    rules: Vec::new(),
                    notified: Vec::new(),
                    history: Vec::new(),
                };
                alarm.record(
                    now,
                    EventKind::Opened {
                        state: cur.state,
                        output: r.output.output.clone(),
                    },
                );
                mem.open = Some(id);
                self.open.insert(id, alarm);
                self.apply_rules(id, now);
                effects.push(Effect::Alarm(id));
            }
            None => {}
            Some(id) => {
                let Some(alarm) = self.open.get_mut(&id) else {
                    mem.open = None;
                    return effects;
                };
                alarm.flapping = t.flapping;
                if let Some(fc) = t.flap_change {
                    alarm.record(
                        now,
                        EventKind::Flapping {
                            started: fc == crate::state::FlapChange::Started,
                        },
                    );
                    effects.push(Effect::Alarm(id));
                }
                alarm.attempt = cur.attempt;
                alarm.output = r.output.output.clone();
                alarm.long_output = r.output.long_output.clone();
                alarm.perfdata = format_perfdata(&r.output.perfdata);
                if cur.state == State::Ok {
                    alarm.previous_state = alarm.state;
                    alarm.state = State::Ok;
                    self.resolve(id, now, &mut effects);
                    return effects;
                }
                if cur.state != alarm.state {
                    alarm.previous_state = alarm.state;
                    alarm.state = cur.state;
                    alarm.record(
                        now,
                        EventKind::StateChanged {
                            from: alarm.previous_state,
                            to: cur.state,
                            output: r.output.output.clone(),
                        },
                    );
                    // A non-sticky acknowledgement covers one problem state only.
                    if let Some(ack) = alarm.ack.take_if(|a| !a.sticky) {
                        let why = AckEnd::StateChanged {
                            from: alarm.previous_state,
                            to: cur.state,
                        };
                        alarm.record(
                            now,
                            EventKind::Unacknowledged {
                                ack_by: ack.by,
                                why,
                            },
                        );
                    }
                    self.apply_rules(id, now);
                    effects.push(Effect::Alarm(id));
                }
            }
        }
        if let Some(id) = self.memory.get(&r.check).and_then(|m| m.open) {
            self.due_for(id, now, &mut effects);
        }
        dedup_alarm_effects(effects)
    }

    /// Everything that came due by `now`: delayed first notifications,
    /// repeats, escalations, expired acknowledgements, and what maintenance
    /// or a silence held back.
    pub fn tick(&mut self, now: DateTime<Utc>) -> Vec<Effect> {
        self.refresh_silences(now);
        let mut effects = Vec::new();
        let ids: Vec<AlarmId> = self.open.keys().copied().collect();
        for id in ids {
            self.due_for(id, now, &mut effects);
        }
        dedup_alarm_effects(effects)
    }

    /// The earliest time something may come due (call [`Alarms::tick`] then,
    /// and at least every minute while maintenance or on-call windows matter).
    /// What a maintenance window holds back is left out: it is due already
    /// and goes out on the first tick after the window ends. The start and
    /// end of every silence and the expiry of every acknowledgement count.
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        let mut best: Option<DateTime<Utc>> = None;
        let mut consider = |t: DateTime<Utc>| {
            best = Some(best.map_or(t, |b| b.min(t)));
        };
        for held in &self.silences {
            consider(if held.started {
                held.silence.ends
            } else {
                held.silence.starts
            });
        }
        for alarm in self.open.values() {
            if let Some(expires) = alarm.ack.as_ref().and_then(|a| a.expires) {
                consider(expires);
            }
            for p in &alarm.rules {
                let Some(rule) = self.rule(&p.rule) else {
                    continue;
                };
                if alarm.ack.is_some() {
                    continue;
                }
                if !p.actions_done && !p.actions_held {
                    consider(p.started + chrono_dur(rule.after));
                }
                if p.in_maintenance {
                    continue;
                }
                if !p.initial_done {
                    consider(p.started + chrono_dur(rule.after));
                }
                if let Some(level) = rule.escalate.get(p.level) {
                    consider(alarm.opened + chrono_dur(level.after));
                }
                if let (Some(rep), Some(last)) = (rule.repeat, p.last_round) {
                    consider(last + chrono_dur(rep));
                }
            }
        }
        best
    }

    /// Acknowledges an open alarm, sticky and without expiry: see
    /// [`Alarms::acknowledge_with`].
    pub fn acknowledge(
        &mut self,
        id: AlarmId,
        by: &str,
        comment: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Effect>, AlarmError> {
        self.acknowledge_with(id, &AckTerms::sticky(by, comment), now)
    }

    /// Acknowledges an open alarm: stops its repeats and escalation, gives
    /// up the actions still waiting for their rule's `after`, and tells
    /// everyone who got the problem. The acknowledgement ends at
    /// `terms.expires`, or (not sticky) at the next change to another
    /// problem state, or by [`Alarms::unacknowledge`].
    pub fn acknowledge_with(
        &mut self,
        id: AlarmId,
        terms: &AckTerms,
        now: DateTime<Utc>,
    ) -> Result<Vec<Effect>, AlarmError> {
        let alarm = open_alarm(&mut self.open, &self.resolved, id)?;
        if let Some(a) = &alarm.ack {
            return Err(AlarmError::AlreadyAcknowledged(id, a.by.clone()));
        }
        if let Some(expires) = terms.expires.filter(|t| *t <= now) {
            return Err(AlarmError::ExpiresInPast(id, expires));
        }
        alarm.ack = Some(Ack {
            by: terms.by.clone(),
            comment: terms.comment.clone(),
            at: now,
            expires: terms.expires,
            sticky: terms.sticky,
        });
        alarm.record(
            now,
            EventKind::Acknowledged {
                by: terms.by.clone(),
                comment: terms.comment.clone(),
                expires: terms.expires,
                sticky: terms.sticky,
            },
        );
        for pi in 0..alarm.rules.len() {
            if alarm.rules[pi].actions_done {
                continue;
            }
            alarm.rules[pi].actions_done = true;
            let Some(rule) = self
                .config
                .rules
                .iter()
                .find(|r| r.name == alarm.rules[pi].rule)
            else {
                continue;
            };
            for a in &rule.actions {
                alarm.record(
                    now,
                    EventKind::ActionSuppressed {
                        rule: rule.name.clone(),
                        action: a.kind().to_string(),
                        why: Suppression::Acknowledged,
                    },
                );
            }
        }
        let mut effects = vec![Effect::Alarm(id)];
        let recipients = alarm.notified.clone();
        let facts = alarm.facts(now);
        let rule = alarm
            .rules
            .first()
            .map(|p| p.rule.clone())
            .unwrap_or_default();
        // An alarm may be acknowledged again after an acknowledgement
        // ended: each one is told, under a key of its own.
        let nth = alarm
            .history
            .iter()
            .filter(|h| matches!(h.kind, EventKind::Acknowledged { .. }))
            .count();
        let ack = match nth {
            0 | 1 => "ack".to_string(),
            n => format!("ack{n}"),
        };
        for (contact, notifier) in recipients {
            let n = self.notification(
                id,
                &rule,
                &contact,
                &notifier,
                NotificationType::Acknowledgement,
                0,
                format!("{id}:{ack}:{contact}:{notifier}"),
                &facts,
            );
            effects.push(Effect::Notify(n));
        }
        Ok(effects)
    }

    /// Removes the acknowledgement of an open alarm (recorded with who did
    /// it): its repeats and escalation resume as the rules say, starting
    /// with whatever is due at `now`.
    pub fn unacknowledge(
        &mut self,
        id: AlarmId,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Effect>, AlarmError> {
        let alarm = open_alarm(&mut self.open, &self.resolved, id)?;
        let Some(ack) = alarm.ack.take() else {
            return Err(AlarmError::NotAcknowledged(id));
        };
        alarm.record(
            now,
            EventKind::Unacknowledged {
                ack_by: ack.by,
                why: AckEnd::Removed { by: by.to_string() },
            },
        );
        let mut effects = vec![Effect::Alarm(id)];
        self.due_for(id, now, &mut effects);
        Ok(dedup_alarm_effects(effects))
    }

    /// Replaces the silences (the store's, not over yet) and looks at every
    /// open alarm again: a new silence holds it back, a removed one lets out
    /// what it held back. Silences whose matchers do not compile are left
    /// out (they cannot be stored that way).
    pub fn set_silences(&mut self, silences: Vec<Silence>, now: DateTime<Utc>) -> Vec<Effect> {
        self.silences = silences.into_iter().filter_map(Held::new).collect();
        self.tick(now)
    }

    /// The silences not over yet (active or still to start), by number.
    pub fn silences(&self) -> impl Iterator<Item = &Silence> {
        self.silences.iter().map(|h| &h.silence)
    }

    /// Forgets silences that are over at `now` and notes which have started.
    fn refresh_silences(&mut self, now: DateTime<Utc>) {
        self.silences.retain(|h| !h.silence.is_over(now));
        for h in &mut self.silences {
            h.started = h.silence.starts <= now;
        }
        self.silences.sort_by_key(|h| h.silence.id);
    }

    /// What holds `subject` back at `now` besides flapping: the first
    /// maintenance window covering it, else the first active silence.
    fn quiet(&self, subject: &Subject, now: DateTime<Utc>) -> Option<Suppression> {
        if let Some(window) = maintenance_at(&self.config.maintenance, subject, now) {
            return Some(Suppression::Maintenance {
                window: window.to_string(),
            });
        }
        self.silences
            .iter()
            .find(|h| h.silence.is_active(now) && h.covers(subject))
            .map(|h| Suppression::Silence {
                id: h.silence.id,
                by: h.silence.by.clone(),
                ends: h.silence.ends,
            })
    }

    fn rule(&self, name: &str) -> Option<&Rule> {
        self.config.rules.iter().find(|r| r.name == name)
    }

    /// Starts every rule that newly applies to the alarm; what each asks
    /// for comes due in [`Alarms::due_for`].
    fn apply_rules(&mut self, id: AlarmId, now: DateTime<Utc>) {
        let Some(alarm) = self.open.get_mut(&id) else {
            return;
        };
        let subject = Subject {
            check: &alarm.check,
            host: &alarm.host,
            tags: &alarm.tags,
            state: alarm.state,
        };
        let started: Vec<RuleProgress> = matching_rules(&self.config.rules, &subject)
            .into_iter()
            .filter(|r| !alarm.rules.iter().any(|p| p.rule == r.name))
            .map(|rule| RuleProgress {
                rule: rule.name.clone(),
                started: now,
                initial_done: false,
                rounds: 0,
                last_round: None,
                level: 0,
                escalate_now: false,
                in_maintenance: false,
                actions_done: rule.actions.is_empty(),
                actions_held: false,
            })
            .collect();
        alarm.rules.extend(started);
    }

    /// Hands out the actions that are due at `now` (their rule's `after`
    /// has passed since it started), holds them back while a maintenance
    /// window or silence (`quiet`) covers the check (recorded once per
    /// window; they run once it ends), or gives them up when restart-loop
    /// protection trips. Returns whether the alarm changed.
    fn due_actions(
        &mut self,
        id: AlarmId,
        now: DateTime<Utc>,
        quiet: Option<&Suppression>,
        effects: &mut Vec<Effect>,
    ) -> bool {
        let Some(alarm) = self.open.get_mut(&id) else {
            return false;
        };
        let mut changed = false;
        for pi in 0..alarm.rules.len() {
            let p = &alarm.rules[pi];
            if p.actions_done {
                continue;
            }
            let Some(rule) = self.config.rules.iter().find(|r| r.name == p.rule) else {
                continue;
            };
            if now < p.started + chrono_dur(rule.after) {
                continue;
            }
            if let Some(why) = quiet {
                if !p.actions_held {
                    alarm.rules[pi].actions_held = true;
                    for a in &rule.actions {
                        alarm.record(
                            now,
                            EventKind::ActionSuppressed {
                                rule: rule.name.clone(),
                                action: a.kind().to_string(),
                                why: why.clone(),
                            },
                        );
                    }
                    changed = true;
                }
                continue;
            }
            alarm.rules[pi].actions_held = false;
            alarm.rules[pi].actions_done = true;
            changed = true;
            if rule.actions.is_empty() {
                continue;
            }
            let mem = self.memory.entry(alarm.check.clone()).or_default();
            let limit = rule.restart_limit;
            let oldest = mem.cycle.saturating_sub(u64::from(limit.cycles));
            while mem.restarts.front().is_some_and(|c| *c <= oldest) {
                mem.restarts.pop_front();
            }
            if mem.restarts.len() >= limit.restarts as usize {
                let note = format!(
                    "restart loop: {} restarts within {} cycles; stopped restarting and escalated",
                    limit.restarts, limit.cycles
                );
                alarm.note = Some(note);
                alarm.record(
                    now,
                    EventKind::RestartLoop {
                        rule: rule.name.clone(),
                        restarts: limit.restarts,
                        cycles: limit.cycles,
                    },
                );
                for a in &rule.actions {
                    alarm.record(
                        now,
                        EventKind::ActionSuppressed {
                            rule: rule.name.clone(),
                            action: a.kind().to_string(),
                            why: Suppression::RestartLoop,
                        },
                    );
                }
                for p in alarm.rules.iter_mut() {
                    p.escalate_now = true;
                }
                continue;
            }
            mem.restarts.push_back(mem.cycle);
            let facts = alarm.facts(now);
            for (i, a) in rule.actions.iter().enumerate() {
                alarm.record(
                    now,
                    EventKind::ActionRequested {
                        rule: rule.name.clone(),
                        action: a.kind().to_string(),
                    },
                );
                effects.push(Effect::Run(ActionRequest {
                    key: format!("{id}:{}:{i}", rule.name),
                    alarm_id: id,
                    rule: rule.name.clone(),
                    action: a.clone(),
                    check: alarm.check.clone(),
                    host: alarm.host.clone(),
                    facts: facts.clone(),
                }));
            }
        }
        changed
    }

    fn resolve(&mut self, id: AlarmId, now: DateTime<Utc>, effects: &mut Vec<Effect>) {
        let Some(mut alarm) = self.open.remove(&id) else {
            return;
        };
        alarm.resolved = Some(now);
        alarm.record(
            now,
            EventKind::Resolved {
                output: alarm.output.clone(),
            },
        );
        let subject = Subject {
            check: &alarm.check,
            host: &alarm.host,
            tags: &alarm.tags,
            state: alarm.state,
        };
        let quiet = self.quiet(&subject, now);
        let mem = self.memory.entry(alarm.check.clone()).or_default();
        mem.open = None;
        alarm.suppressed_by = held_back(quiet.clone(), alarm.flapping);
        let wants_recovery = alarm
            .rules
            .iter()
            .filter_map(|p| self.config.rules.iter().find(|r| r.name == p.rule))
            .find(|r| r.recovery)
            .map(|r| (r.name.clone(), r.repeat));
        if let (Some((rule, repeat)), false) = (wants_recovery, alarm.notified.is_empty()) {
            let why = if let Some(why) = quiet {
                Some(why)
            } else if alarm.flapping && paged_within(mem.last_paged, repeat, now) {
                Some(Suppression::Flapping)
            } else {
                None
            };
            match why {
                Some(why) => alarm.record(
                    now,
                    EventKind::NotificationSuppressed {
                        rule,
                        contact: String::new(),
                        notifier: String::new(),
                        why,
                    },
                ),
                None => {
                    if alarm.flapping {
                        mem.last_paged = Some(now);
                    }
                    let facts = alarm.facts(now);
                    for (contact, notifier) in alarm.notified.clone() {
                        alarm.record(
                            now,
                            EventKind::Notified {
                                rule: rule.clone(),
                                contact: contact.clone(),
                                notifier: notifier.clone(),
                                kind: NotificationType::Recovery,
                                level: 0,
                            },
                        );
                        effects.push(Effect::Notify(self.notification(
                            id,
                            &rule,
                            &contact,
                            &notifier,
                            NotificationType::Recovery,
                            0,
                            format!("{id}:recovery:{contact}:{notifier}"),
                            &facts,
                        )));
                    }
                }
            }
        }
        effects.push(Effect::Alarm(id));
        self.resolved.push_back(alarm);
        while self.resolved.len() > RECENT_RESOLVED {
            self.resolved.pop_front();
        }
    }

    /// Works out the notification rounds due for one alarm at `now`.
    fn due_for(&mut self, id: AlarmId, now: DateTime<Utc>, effects: &mut Vec<Effect>) {
        let mut changed = false;
        if let Some(alarm) = self.open.get_mut(&id) {
            let expired = alarm.ack.as_ref().and_then(|a| a.expires);
            if let Some(expires) = expired.filter(|t| *t <= now) {
                if let Some(ack) = alarm.ack.take() {
                    alarm.record(
                        now,
                        EventKind::Unacknowledged {
                            ack_by: ack.by,
                            why: AckEnd::Expired { expires },
                        },
                    );
                    changed = true;
                }
            }
        }
        let Some(alarm) = self.open.get(&id) else {
            return;
        };
        let subject = Subject {
            check: &alarm.check,
            host: &alarm.host,
            tags: &alarm.tags,
            state: alarm.state,
        };
        let quiet = self.quiet(&subject, now);
        let acked = alarm.ack.is_some();
        let progress_count = alarm.rules.len();
        let suppressed_by = held_back(quiet.clone(), alarm.flapping);
        if alarm.suppressed_by != suppressed_by {
            if let Some(a) = self.open.get_mut(&id) {
                a.suppressed_by = suppressed_by;
                changed = true;
            }
        }
        changed |= self.due_actions(id, now, quiet.as_ref(), effects);
        let mut sent: BTreeSet<(String, String)> = BTreeSet::new();
        for pi in 0..progress_count {
            let Some(alarm) = self.open.get(&id) else {
                return;
            };
            let p = alarm.rules[pi].clone();
            let Some(rule) = self.rule(&p.rule).cloned() else {
                continue;
            };
            // Which rounds are due: (level, contacts).
            let mut rounds: Vec<(usize, Vec<String>)> = Vec::new();
            // A repeat round reminds; it never comes with a first round or an escalation.
            let mut reminder = false;
            let mut next = p.clone();
            if !acked {
                if !next.initial_done
                    && (now >= next.started + chrono_dur(rule.after) || next.escalate_now)
                {
                    rounds.push((0, rule.notify.clone()));
                    next.initial_done = true;
                }
                while next.level < rule.escalate.len() {
                    let level = &rule.escalate[next.level];
                    if now >= alarm.opened + chrono_dur(level.after) || next.escalate_now {
                        next.level += 1;
                        next.escalate_now = false;
                        rounds.push((next.level, level.notify.clone()));
                    } else {
                        break;
                    }
                }
                next.escalate_now = false;
                if rounds.is_empty() && next.initial_done {
                    if let (Some(rep), Some(last)) = (rule.repeat, next.last_round) {
                        if now >= last + chrono_dur(rep) {
                            let mut everyone = rule.notify.clone();
                            for l in rule.escalate.iter().take(next.level) {
                                everyone.extend(l.notify.iter().cloned());
                            }
                            rounds.push((next.level, everyone));
                            reminder = true;
                        }
                    }
                }
            }
            if rounds.is_empty() {
                if quiet.is_none() && p.in_maintenance {
                    if let Some(a) = self.open.get_mut(&id) {
                        a.rules[pi].in_maintenance = false;
                    }
                }
                continue;
            }
            if let Some(why) = &quiet {
                // Hold everything back; record it once per window or silence.
                if !p.in_maintenance {
                    if let Some(a) = self.open.get_mut(&id) {
                        a.rules[pi].in_maintenance = true;
                        a.record(
                            now,
                            EventKind::NotificationSuppressed {
                                rule: rule.name.clone(),
                                contact: String::new(),
                                notifier: String::new(),
                                why: why.clone(),
                            },
                        );
                        changed = true;
                    }
                }
                continue;
            }
            next.in_maintenance = false;
            next.last_round = Some(now);
            let mem = self.memory.entry(alarm.check.clone()).or_default();
            let flapping_hold = alarm.flapping && paged_within(mem.last_paged, rule.repeat, now);
            let facts = alarm.facts(now);
            let mut out: Vec<Notification> = Vec::new();
            let mut events: Vec<EventKind> = Vec::new();
            for (level, contacts) in &rounds {
                next.rounds += 1;
                if *level > 0 {
                    events.push(EventKind::Escalated {
                        rule: rule.name.clone(),
                        level: *level,
                    });
                }
                if flapping_hold {
                    events.push(EventKind::NotificationSuppressed {
                        rule: rule.name.clone(),
                        contact: String::new(),
                        notifier: String::new(),
                        why: Suppression::Flapping,
                    });
                    continue;
                }
                for contact in contacts {
                    let Some(c) = self.config.contact(contact) else {
                        continue;
                    };
                    for notifier in &c.via {
                        let on_duty = c
                            .on_call
                            .get(notifier)
                            .is_none_or(|ws| ws.iter().any(|w| w.contains(now)));
                        if !on_duty {
                            events.push(EventKind::NotificationSuppressed {
                                rule: rule.name.clone(),
                                contact: contact.clone(),
                                notifier: notifier.clone(),
                                why: Suppression::OffDuty,
                            });
                            continue;
                        }
                        if !sent.insert((contact.clone(), notifier.clone())) {
                            continue;
                        }
                        events.push(EventKind::Notified {
                            rule: rule.name.clone(),
                            contact: contact.clone(),
                            notifier: notifier.clone(),
                            kind: NotificationType::Problem,
                            level: *level,
                        });
                        let mut n = self.notification(
                            id,
                            &rule.name,
                            contact,
                            notifier,
                            NotificationType::Problem,
                            *level,
                            format!("{id}:{}:{}:{contact}:{notifier}", rule.name, next.rounds),
                            &facts,
                        );
                        if reminder {
                            n.facts.set("notification_kind", "REMINDER");
                        } else if *level > 0 {
                            n.facts.set("notification_kind", "ESCALATION");
                        }
                        out.push(n);
                    }
                }
            }
            if !out.is_empty() {
                if let Some(m) = self.memory.get_mut(&subject_check(&self.open, id)) {
                    m.last_paged = Some(now);
                }
            }
            let Some(alarm) = self.open.get_mut(&id) else {
                return;
            };
            alarm.rules[pi] = next;
            for e in events {
                alarm.record(now, e);
            }
            for n in &out {
                let pair = (n.contact.clone(), n.notifier.clone());
                if !alarm.notified.contains(&pair) {
                    alarm.notified.push(pair);
                }
            }
            effects.extend(out.into_iter().map(Effect::Notify));
            changed = true;
        }
        if changed {
            effects.push(Effect::Alarm(id));
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn notification(
        &self,
        id: AlarmId,
        rule: &str,
        contact: &str,
        notifier: &str,
        kind: NotificationType,
        level: usize,
        key: String,
        facts: &Facts,
    ) -> Notification {
        let mut facts = facts.clone();
        facts.set("notification_type", kind.as_str());
        // PROBLEM, RECOVERY or ACKNOWLEDGEMENT; a problem round refines it
        // to ESCALATION or REMINDER.
        facts.set("notification_kind", kind.as_str());
        facts.set("rule", rule);
        facts.set("level", level.to_string());
        facts.set("contact", contact);
        facts.set("count", "1");
        if let Some(c) = self.config.contact(contact) {
            facts.set("contact_email", c.email.clone().unwrap_or_default());
            facts.set("contact_phone", c.phone.clone().unwrap_or_default());
        }
        Notification {
            key,
            alarm_id: id,
            rule: rule.to_string(),
            contact: contact.to_string(),
            notifier: notifier.to_string(),
            kind,
            level,
            facts,
        }
    }
}

/// The open alarm `id`, or why there is none.
fn open_alarm<'a>(
    open: &'a mut BTreeMap<AlarmId, Alarm>,
    resolved: &VecDeque<Alarm>,
    id: AlarmId,
) -> Result<&'a mut Alarm, AlarmError> {
    match open.get_mut(&id) {
        Some(alarm) => Ok(alarm),
        None if resolved.iter().any(|a| a.id == id) => Err(AlarmError::Resolved(id)),
        None => Err(AlarmError::NotFound(id)),
    }
}

fn subject_check(open: &BTreeMap<AlarmId, Alarm>, id: AlarmId) -> String {
    open.get(&id).map(|a| a.check.clone()).unwrap_or_default()
}

/// What holds an alarm back: a maintenance window or silence covering it
/// (`quiet`), else flapping.
fn held_back(quiet: Option<Suppression>, flapping: bool) -> Option<Suppression> {
    quiet.or_else(|| flapping.then_some(Suppression::Flapping))
}

fn paged_within(last: Option<DateTime<Utc>>, repeat: Option<Duration>, now: DateTime<Utc>) -> bool {
    let hold = chrono_dur(repeat.unwrap_or(FLAP_HOLD));
    last.is_some_and(|t| now < t + hold)
}

fn chrono_dur(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Keeps one `Effect::Alarm` per alarm, at the end.
fn dedup_alarm_effects(effects: Vec<Effect>) -> Vec<Effect> {
    let mut ids = Vec::new();
    let mut out = Vec::new();
    for e in effects {
        match e {
            Effect::Alarm(id) => {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            other => out.push(other),
        }
    }
    out.extend(ids.into_iter().map(Effect::Alarm));
    out
}
