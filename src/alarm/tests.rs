//! Scenario tests of the alarm lifecycle: a real state machine feeds
//! results at given times; the effects are compared with what the rules say.

use super::lifecycle::{
    AckEnd, AckTerms, AlarmError, AlarmId, Alarms, Effect, EventKind, NotificationType, Suppression,
};
use super::silence::{preview, NewSilence, Silence, SilenceError, SilenceMatch};
use crate::config::Config;
use crate::plugin_output::{CheckOutput, State};
use crate::result::CheckResult;
use crate::state::{CheckState, Policy, Reachability};
use chrono::{DateTime, Duration, Utc};

const BASE: &str = r#"
hosts:
  - name: cs1
    address: 127.0.0.21
    tags: [cluster]
checks:
  - name: web
    kind: port
    host: cs1
    port: 80
    max_attempts: MAXATT
windows:
  - name: days
    cron: "0 8 * * *"
    duration: 12h
    timezone: UTC
  - name: nights
    cron: "0 20 * * *"
    duration: 12h
    timezone: UTC
notifiers:
  - name: mail
    kind: smtp
    host: 127.0.0.1
    tls: none
    from: laxmon@example.org
  - name: sms
    kind: sms
    url: http://127.0.0.1:9/send
contacts:
  - name: alice
    email: alice@example.org
    phone: "+4917000001"
    on_call: {mail: days, sms: nights}
  - name: bob
    email: bob@example.org
    via: [mail]
RULES
"#;

fn config(rules: &str, max_attempts: u32) -> Config {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("laxmon.yaml");
    let text = BASE
        .replace("RULES", rules)
        .replace("MAXATT", &max_attempts.to_string());
    std::fs::write(&path, text).expect("write");
    crate::config::load(&path).unwrap_or_else(|e| panic!("config: {e}"))
}

/// A check fed through the real state machine into the lifecycle.
struct Sim {
    config: Config,
    state: CheckState,
    policy: Policy,
    alarms: Alarms,
    now: DateTime<Utc>,
}

impl Sim {
    fn new(rules: &str, max_attempts: u32) -> Sim {
        let cfg = config(rules, max_attempts);
        Sim {
            alarms: Alarms::new(&cfg),
            config: cfg,
            state: CheckState::new(),
            policy: Policy {
                max_attempts,
                ..Policy::default()
            },
            // 2026-12-01 10:00 UTC: day time, alice's mail window.
            now: "2026-12-01T10:00:00Z".parse().expect("time"),
        }
    }

    fn at(&mut self, minutes: i64) -> &mut Self {
        self.now += Duration::minutes(minutes);
        self
    }

    fn feed(&mut self, state: State) -> Vec<Effect> {
        let t = self
            .state
            .apply(state, &self.policy, Reachability::Reachable, self.now);
        let r = CheckResult {
            check: "web".into(),
            host: "cs1".into(),
            kind: "port",
            output: CheckOutput::new(state, format!("port 80 {state}")),
            planned: self.now,
            started: self.now,
            duration: std::time::Duration::ZERO,
            transition: t,
            state: self.state.clone(),
        };
        self.alarms.observe(&r, self.now)
    }

    fn tick(&mut self) -> Vec<Effect> {
        self.alarms.tick(self.now)
    }

    /// A restart: the lifecycle resumes from its snapshot, through JSON as the store keeps it.
    fn restart(&mut self) {
        let json = serde_json::to_value(self.alarms.snapshot()).expect("encode");
        let snapshot = serde_json::from_value(json).expect("decode");
        self.alarms = Alarms::restore(&self.config, snapshot);
    }
}

/// (contact, notifier, type) of each notification.
fn sent(effects: &[Effect]) -> Vec<(String, String, NotificationType)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Notify(n) => Some((n.contact.clone(), n.notifier.clone(), n.kind)),
            _ => None,
        })
        .collect()
}

fn runs(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Run(r) => Some(r.action.kind().to_string()),
            _ => None,
        })
        .collect()
}

fn n(c: &str, via: &str, k: NotificationType) -> (String, String, NotificationType) {
    (c.to_string(), via.to_string(), k)
}

use NotificationType::{Acknowledgement as ACK, Problem as PROBLEM, Recovery as RECOVERY};

const SIMPLE: &str = r#"rules:
  - name: web
    match: {checks: [web]}
    after: 5m
    repeat: 30m
    notify: [alice]
    escalate:
      - {after: 20m, notify: [bob]}
    actions:
      - restart-service: apache2.service
"#;

#[test]
fn alarm_opens_on_hard_problem_only_and_acts_after_the_delay() {
    let mut s = Sim::new(SIMPLE, 3);
    assert!(s.feed(State::Critical).is_empty()); // SOFT 1
    assert!(s.at(1).feed(State::Critical).is_empty()); // SOFT 2
    let e = s.at(1).feed(State::Critical); // HARD
    assert!(runs(&e).is_empty(), "after: 5m delays the action");
    assert!(sent(&e).is_empty(), "after: 5m delays the page");
    assert_eq!(s.alarms.open_alarms().count(), 1);
    // Five minutes on: the action first, then the page, in one go.
    let e = s.at(5).tick();
    let order: Vec<&str> = e
        .iter()
        .map(|e| match e {
            Effect::Run(_) => "run",
            Effect::Notify(_) => "notify",
            Effect::Alarm(_) => "alarm",
        })
        .collect();
    assert_eq!(order, vec!["run", "notify", "alarm"]);
    // Still failing: same alarm, no second action run.
    let e = s.at(1).feed(State::Critical);
    assert!(runs(&e).is_empty());
    assert_eq!(s.alarms.open_alarms().count(), 1);
}

/// One step of a scenario.
#[derive(Debug, Clone, Copy)]
enum Step {
    Feed(State),
    Tick,
    Ack,
    Restart,
}

/// A rule with a script-like action, waiting `after`, and a page.
const DELAYED: &str = r#"maintenance:
  - name: patchday
    match: {hosts: [cs1]}
    windows: [{cron: "0 12 * * *", duration: 1h, timezone: UTC}]
rules:
  - name: web
    match: {checks: [web]}
    after: 5m
    notify: [bob]
    actions:
      - restart-service: apache2.service
"#;

const AT_ONCE: &str = r#"rules:
  - name: web
    match: {checks: [web]}
    notify: [bob]
    actions:
      - restart-service: apache2.service
"#;

#[test]
fn actions_wait_for_after_like_notifications() {
    use State::{Critical as CRIT, Ok as OK};
    use Step::{Ack, Feed, Restart, Tick};
    // (minutes since the previous step, step, action runs, problem pages,
    // the alarm's suppressed_by afterwards). Day starts 10:00; patchday
    // is 12:00-13:00.
    type Row = (i64, Step, usize, usize, Option<&'static str>);
    let cases: &[(&str, &str, &[Row])] = &[
        (
            "due only at open + after",
            DELAYED,
            &[
                (0, Feed(CRIT), 0, 0, None),
                (4, Tick, 0, 0, None),
                (1, Tick, 1, 1, None),
                (1, Feed(CRIT), 0, 0, None),
                (60, Tick, 0, 0, None),
            ],
        ),
        (
            "not run at all when resolved before after",
            DELAYED,
            &[
                (0, Feed(CRIT), 0, 0, None),
                (4, Tick, 0, 0, None),
                (0, Feed(OK), 0, 0, None),
                (1, Tick, 0, 0, None),
                (60, Tick, 0, 0, None),
            ],
        ),
        (
            "run at once without after",
            AT_ONCE,
            &[
                (0, Feed(CRIT), 1, 1, None),
                (1, Tick, 0, 0, None),
                (1, Feed(CRIT), 0, 0, None),
            ],
        ),
        (
            "acknowledged before after: given up",
            DELAYED,
            &[
                (0, Feed(CRIT), 0, 0, None),
                (2, Ack, 0, 0, None),
                (3, Tick, 0, 0, None),
                (60, Feed(CRIT), 0, 0, None),
            ],
        ),
        (
            "acknowledged after it ran: nothing more",
            DELAYED,
            &[
                (0, Feed(CRIT), 0, 0, None),
                (5, Tick, 1, 1, None),
                (1, Ack, 0, 0, None),
                (60, Tick, 0, 0, None),
            ],
        ),
        (
            "due in maintenance: held back, runs when the window ends",
            DELAYED,
            &[
                (120, Feed(CRIT), 0, 0, Some("maintenance")), // 12:00
                (5, Tick, 0, 0, Some("maintenance")),
                (30, Feed(CRIT), 0, 0, Some("maintenance")),
                (30, Tick, 1, 1, None), // 13:05
                (5, Tick, 0, 0, None),
            ],
        ),
        (
            "due in maintenance, resolved in it: never runs",
            DELAYED,
            &[
                (120, Feed(CRIT), 0, 0, Some("maintenance")),
                (10, Tick, 0, 0, Some("maintenance")),
                (10, Feed(OK), 0, 0, Some("maintenance")),
                (60, Tick, 0, 0, Some("maintenance")),
            ],
        ),
        (
            "opened before maintenance, due in it: held back",
            DELAYED,
            &[
                (118, Feed(CRIT), 0, 0, None), // 11:58
                (2, Tick, 0, 0, Some("maintenance")),
                (5, Tick, 0, 0, Some("maintenance")),
                (60, Tick, 1, 1, None),
            ],
        ),
        (
            "opened in maintenance, due after it: runs when due",
            DELAYED,
            &[
                (178, Feed(CRIT), 0, 0, Some("maintenance")), // 12:58
                (2, Tick, 0, 0, None),
                (3, Tick, 1, 1, None),
            ],
        ),
        (
            "a restart while it waits: runs once, when due",
            DELAYED,
            &[
                (0, Feed(CRIT), 0, 0, None),
                (2, Restart, 0, 0, None),
                (2, Tick, 0, 0, None),
                (1, Tick, 1, 1, None),
                (0, Restart, 0, 0, None),
                (1, Tick, 0, 0, None),
                (60, Feed(CRIT), 0, 0, None),
            ],
        ),
    ];
    for (name, rules, steps) in cases {
        let mut s = Sim::new(rules, 1);
        let mut last = None;
        for (i, (minutes, step, want_runs, want_pages, want_held)) in steps.iter().enumerate() {
            s.at(*minutes);
            let e = match step {
                Step::Feed(state) => s.feed(*state),
                Step::Tick => s.tick(),
                Step::Ack => {
                    let id = last.expect("an alarm to acknowledge");
                    let now = s.now;
                    s.alarms.acknowledge(id, "bob", "", now).expect("ack")
                }
                Step::Restart => {
                    s.restart();
                    Vec::new()
                }
            };
            for effect in &e {
                if let Effect::Alarm(id) = effect {
                    last = Some(*id);
                }
            }
            let pages = sent(&e).iter().filter(|p| p.2 == PROBLEM).count();
            let held = last
                .and_then(|id| s.alarms.alarm(id))
                .and_then(|a| a.suppressed_by.as_ref())
                .map(|w| w.reason());
            assert_eq!(
                (runs(&e).len(), pages, held),
                (*want_runs, *want_pages, *want_held),
                "{name}, step {i} ({step:?} at {}): {e:?}",
                s.now
            );
            if matches!(step, Step::Feed(_) | Step::Tick) {
                assert!(
                    s.alarms.next_due().is_none_or(|t| t > s.now),
                    "{name}, step {i}: something due now was left for later (a busy loop)"
                );
            }
        }
    }
}

#[test]
fn what_held_back_an_action_is_in_the_history() {
    let suppressed = |s: &Sim| -> Vec<Suppression> {
        let alarm = s
            .alarms
            .open_alarms()
            .next()
            .expect("an open alarm")
            .clone();
        alarm
            .history
            .iter()
            .filter_map(|h| match &h.kind {
                EventKind::ActionSuppressed { why, .. } => Some(why.clone()),
                _ => None,
            })
            .collect()
    };
    // Acknowledged before `after`: recorded once.
    let mut s = Sim::new(DELAYED, 1);
    s.feed(State::Critical);
    let id = s.alarms.open_alarms().next().expect("open").id;
    let now = s.at(1).now;
    s.alarms.acknowledge(id, "bob", "mine", now).expect("ack");
    s.at(10).tick();
    assert_eq!(suppressed(&s), vec![Suppression::Acknowledged]);
    // Maintenance: recorded once per window, however often it is looked at.
    let mut s = Sim::new(DELAYED, 1);
    s.at(120).feed(State::Critical);
    for _ in 0..6 {
        s.at(5).tick();
    }
    assert_eq!(
        suppressed(&s),
        vec![Suppression::Maintenance {
            window: "patchday".into()
        }]
    );
}

#[test]
fn snapshots_from_before_delayed_actions_do_not_run_them_again() {
    // Before `after` delayed actions, a snapshot had no `actions_done`:
    // its open alarms' actions ran when they opened.
    let mut s = Sim::new(AT_ONCE, 1);
    assert_eq!(runs(&s.feed(State::Critical)), vec!["restart-service"]);
    let mut json = serde_json::to_value(s.alarms.snapshot()).expect("encode");
    for alarm in json["open"].as_array_mut().expect("open") {
        for p in alarm["rules"].as_array_mut().expect("rules") {
            p.as_object_mut().expect("progress").remove("actions_done");
        }
    }
    let snapshot = serde_json::from_value(json).expect("decode");
    let mut restored = Alarms::restore(&s.config, snapshot);
    assert!(runs(&restored.tick(s.now + Duration::minutes(5))).is_empty());
}

#[test]
fn suppression_reasons_match_their_json() {
    for why in [
        Suppression::Maintenance { window: "w".into() },
        Suppression::Flapping,
        Suppression::OffDuty,
        Suppression::RestartLoop,
        Suppression::Acknowledged,
        Suppression::Silence {
            id: 3,
            by: "alice".into(),
            ends: "2026-12-01T12:00:00Z".parse().expect("time"),
        },
    ] {
        let json = serde_json::to_value(&why).expect("encode");
        assert_eq!(json["reason"], why.reason(), "{json}");
    }
}

#[test]
fn delay_repeat_escalation_and_recovery() {
    let mut s = Sim::new(SIMPLE, 1);
    s.feed(State::Critical); // opens at t0
    type Sent = Vec<(String, String, NotificationType)>;
    let table: &[(i64, Sent)] = &[
        (4, vec![]),                            // t0+4m: before `after`
        (1, vec![n("alice", "mail", PROBLEM)]), // t0+5m: first page (day: mail only)
        (10, vec![]),                           // t0+15m
        (5, vec![n("bob", "mail", PROBLEM)]),   // t0+20m: escalation
        (15, vec![]), // t0+35m: the escalation round restarted the repeat clock
        (
            15,
            vec![n("alice", "mail", PROBLEM), n("bob", "mail", PROBLEM)],
        ), // t0+50m: repeat to every level reached
        (10, vec![]),
    ];
    for (i, (step, want)) in table.iter().enumerate() {
        let e = s.at(*step).tick();
        assert_eq!(&sent(&e), want, "step {i}");
    }
    let e = s.at(1).feed(State::Ok);
    assert_eq!(
        sent(&e),
        vec![n("alice", "mail", RECOVERY), n("bob", "mail", RECOVERY)]
    );
    assert_eq!(s.alarms.open_alarms().count(), 0);
}

#[test]
fn recovery_before_delay_notifies_nobody() {
    let mut s = Sim::new(SIMPLE, 1);
    s.feed(State::Critical);
    assert!(sent(&s.at(2).tick()).is_empty());
    let e = s.at(1).feed(State::Ok);
    assert!(sent(&e).is_empty());
    assert!(sent(&s.at(60).tick()).is_empty());
}

#[test]
fn acknowledgement_stops_repeats_and_escalation() {
    let mut s = Sim::new(SIMPLE, 1);
    s.feed(State::Critical);
    assert_eq!(sent(&s.at(5).tick()), vec![n("alice", "mail", PROBLEM)]);
    let id = s.alarms.open_alarms().next().expect("open").id;
    let now = s.now;
    let e = s
        .alarms
        .acknowledge(id, "alice", "on it", now)
        .expect("ack");
    assert_eq!(sent(&e), vec![n("alice", "mail", ACK)]);
    assert!(s.alarms.acknowledge(id, "bob", "", now).is_err());
    for _ in 0..10 {
        assert!(sent(&s.at(15).tick()).is_empty());
    }
    assert_eq!(
        sent(&s.at(1).feed(State::Ok)),
        vec![n("alice", "mail", RECOVERY)]
    );
}

#[test]
fn on_call_windows_choose_the_channel() {
    let mut s = Sim::new(SIMPLE, 1);
    s.now = "2026-12-01T23:00:00Z".parse().expect("time"); // night: SMS only
    s.feed(State::Critical);
    let e = s.at(5).tick();
    assert_eq!(sent(&e), vec![n("alice", "sms", PROBLEM)]);
    let alarm = s.alarms.open_alarms().next().expect("open");
    assert!(alarm.history.iter().any(|h| matches!(
        &h.kind,
        EventKind::NotificationSuppressed { contact, notifier, why: Suppression::OffDuty, .. }
            if contact == "alice" && notifier == "mail"
    )));
}

#[test]
fn keys_are_unique_and_stable_across_restore() {
    let mut s = Sim::new(SIMPLE, 1);
    s.feed(State::Critical);
    let mut keys = Vec::new();
    for _ in 0..8 {
        for e in s.at(10).tick() {
            if let Effect::Notify(n) = e {
                keys.push(n.key);
            }
        }
    }
    let mut unique = keys.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), keys.len(), "{keys:?}");
    // A restored lifecycle computes the same next round as the original.
    let cfg = config(SIMPLE, 1);
    let mut restored = Alarms::restore(&cfg, s.alarms.snapshot());
    let later = s.now + Duration::minutes(30);
    assert_eq!(restored.tick(later), s.alarms.tick(later));
}

const MAINT: &str = r#"maintenance:
  - name: patchday
    match: {hosts: [cs1]}
    windows: [{cron: "0 10 * * *", duration: 1h, timezone: UTC}]
rules:
  - name: web
    match: {tags: [cluster]}
    notify: [alice]
    actions:
      - restart-service: apache2.service
"#;

#[test]
fn maintenance_suppresses_actions_and_pages_and_records_it() {
    let mut s = Sim::new(MAINT, 1);
    let e = s.at(5).feed(State::Critical); // 10:05, inside 10:00-11:00
    assert!(runs(&e).is_empty());
    assert!(sent(&e).is_empty());
    for _ in 0..5 {
        assert!(sent(&s.at(10).tick()).is_empty());
    }
    let alarm = s.alarms.open_alarms().next().expect("open");
    let suppressed = |why: &dyn Fn(&Suppression) -> bool| {
        alarm
            .history
            .iter()
            .filter(|h| match &h.kind {
                EventKind::ActionSuppressed { why: w, .. } => why(w),
                EventKind::NotificationSuppressed { why: w, .. } => why(w),
                _ => false,
            })
            .count()
    };
    let is_maint =
        |w: &Suppression| matches!(w, Suppression::Maintenance { window } if window == "patchday");
    assert_eq!(
        suppressed(&is_maint),
        2,
        "one action, one page round: {:?}",
        alarm.history
    );
    assert_eq!(
        alarm.suppressed_by,
        Some(Suppression::Maintenance {
            window: "patchday".into()
        })
    );
    // 11:05: the window is over; the held-back action runs and the page goes out.
    let e = s.at(10).tick();
    assert_eq!(runs(&e), vec!["restart-service"]);
    assert_eq!(sent(&e), vec![n("alice", "mail", PROBLEM)]);
    let alarm = s.alarms.open_alarms().next().expect("open");
    assert_eq!(alarm.suppressed_by, None);
}

const FLAPPY: &str = r#"rules:
  - name: web
    match: {checks: [web]}
    repeat: 30m
    notify: [alice]
"#;

#[test]
fn flapping_check_pages_at_most_once_per_repeat_interval() {
    let mut s = Sim::new(FLAPPY, 1);
    let mut pages: Vec<DateTime<Utc>> = Vec::new();
    let mut flapping_seen = false;
    let mut held_for_flapping = false;
    // Four hours of a check that fails every other minute.
    for i in 0..240 {
        let state = if i % 2 == 0 {
            State::Critical
        } else {
            State::Ok
        };
        let mut e = s.at(1).feed(state);
        e.extend(s.tick());
        flapping_seen |= s.state.is_flapping();
        held_for_flapping |= s
            .alarms
            .open_alarms()
            .any(|a| a.suppressed_by == Some(Suppression::Flapping));
        for _ in sent(&e) {
            pages.push(s.now);
        }
    }
    assert!(flapping_seen);
    assert!(held_for_flapping, "a flapping alarm says so");
    // Before flap detection kicks in a few pages go out; once flapping,
    // consecutive pages are at least 30 minutes apart.
    let flapping_pages: Vec<_> = pages.iter().skip(12).collect();
    for w in flapping_pages.windows(2) {
        assert!(*w[1] - *w[0] >= Duration::minutes(30), "{pages:?}");
    }
    assert!(
        pages.len() <= 12 + 8 + 1,
        "{} pages: {pages:?}",
        pages.len()
    );
}

const LOOP: &str = r#"rules:
  - name: page
    match: {checks: [web]}
    notify: [alice]
    after: 1h
    escalate:
      - {after: 2h, notify: [bob]}
  - name: heal
    match: {checks: [web]}
    restarts: 2
    within: 6
    actions:
      - restart-service: apache2.service
"#;

#[test]
fn restart_loop_protection_stops_restarting_and_escalates() {
    let mut s = Sim::new(LOOP, 1);
    let mut all = Vec::new();
    // Fails, recovers after each restart, fails again: CRIT OK CRIT OK CRIT.
    for state in [
        State::Critical,
        State::Ok,
        State::Critical,
        State::Ok,
        State::Critical,
    ] {
        all.push(s.at(1).feed(state));
    }
    assert_eq!(runs(&all[0]), vec!["restart-service"]);
    assert_eq!(runs(&all[2]), vec!["restart-service"]);
    assert!(
        runs(&all[4]).is_empty(),
        "third restart within 6 cycles is refused"
    );
    // Escalated at once, without waiting for `after` or the escalation delay.
    let mut pages = sent(&all[4]);
    pages.sort();
    assert_eq!(
        pages,
        vec![n("alice", "mail", PROBLEM), n("bob", "mail", PROBLEM)]
    );
    let alarm = s.alarms.open_alarms().next().expect("open");
    assert!(alarm.note.as_deref().unwrap_or("").contains("restart loop"));
    assert_eq!(
        alarm.facts(s.now).get("note"),
        alarm.note.clone().unwrap_or_default()
    );
    // Outside the window of cycles, restarts are allowed again.
    for _ in 0..6 {
        s.at(1).feed(State::Critical);
    }
    s.at(1).feed(State::Ok);
    assert_eq!(
        runs(&s.at(1).feed(State::Critical)),
        vec!["restart-service"]
    );
}

#[test]
fn rules_with_states_start_when_the_state_matches() {
    let rules = r#"rules:
  - name: crit-only
    match: {checks: [web], states: [CRITICAL]}
    notify: [bob]
"#;
    let mut s = Sim::new(rules, 1);
    assert!(sent(&s.feed(State::Warning)).is_empty());
    assert_eq!(s.alarms.open_alarms().count(), 1);
    assert_eq!(
        sent(&s.at(1).feed(State::Critical)),
        vec![n("bob", "mail", PROBLEM)]
    );
    assert_eq!(s.alarms.open_alarms().count(), 1, "one alarm per incident");
}

/// The id of the one open alarm.
fn open_id(s: &Sim) -> AlarmId {
    s.alarms.open_alarms().next().expect("an open alarm").id
}

/// Why each acknowledgement of the open alarm ended, oldest first.
fn ack_ends(s: &Sim, id: AlarmId) -> Vec<AckEnd> {
    s.alarms
        .alarm(id)
        .expect("alarm")
        .history
        .iter()
        .filter_map(|h| match &h.kind {
            EventKind::Unacknowledged { why, .. } => Some(why.clone()),
            _ => None,
        })
        .collect()
}

fn terms(expires: Option<DateTime<Utc>>, sticky: bool) -> AckTerms {
    AckTerms {
        by: "alice".into(),
        comment: "on it".into(),
        expires,
        sticky,
    }
}

#[test]
fn an_expiring_acknowledgement_ends_and_escalation_and_repeats_resume() {
    let mut s = Sim::new(SIMPLE, 1);
    s.feed(State::Critical); // t0
    assert_eq!(sent(&s.at(5).tick()), vec![n("alice", "mail", PROBLEM)]);
    let id = open_id(&s);
    let now = s.at(1).now; // t0+6m
    let expires = now + Duration::hours(1); // t0+66m
    let e = s
        .alarms
        .acknowledge_with(id, &terms(Some(expires), true), now)
        .expect("ack");
    assert_eq!(sent(&e), vec![n("alice", "mail", ACK)]);
    assert_eq!(s.alarms.next_due(), Some(expires), "the expiry is due next");
    // (minutes since the previous step, pages). Quiet while acknowledged;
    // at the expiry the escalation (due since t0+20m) goes out, and the
    // repeat clock runs from there.
    type Pages = Vec<(String, String, NotificationType)>;
    let table: &[(i64, Pages)] = &[
        (14, vec![]),                         // t0+20m: escalation held back by the ack
        (30, vec![]),                         // t0+50m: no repeat either
        (15, vec![]),                         // t0+65m
        (1, vec![n("bob", "mail", PROBLEM)]), // t0+66m: expired
        (29, vec![]),
        (
            1,
            vec![n("alice", "mail", PROBLEM), n("bob", "mail", PROBLEM)],
        ), // t0+96m: a reminder to every level reached
    ];
    for (i, (minutes, want)) in table.iter().enumerate() {
        let e = s.at(*minutes).tick();
        assert_eq!(&sent(&e), want, "step {i} at {}", s.now);
        assert!(s.alarms.next_due().is_none_or(|t| t > s.now), "step {i}");
    }
    assert_eq!(ack_ends(&s, id), vec![AckEnd::Expired { expires }]);
    assert_eq!(s.alarms.alarm(id).expect("alarm").ack, None);
    // Another acknowledgement may follow; one that expired already is refused.
    let now = s.now;
    assert_eq!(
        s.alarms
            .acknowledge_with(id, &terms(Some(now), true), now)
            .expect_err("expired already"),
        AlarmError::ExpiresInPast(id, now)
    );
    assert!(s.alarms.acknowledge(id, "bob", "again", now).is_ok());
}

/// A rule paging on WARNING and CRITICAL every 30 minutes, and one paging
/// bob on CRITICAL only.
const TWO_STATES: &str = r#"rules:
  - name: any
    match: {checks: [web]}
    repeat: 30m
    notify: [alice]
  - name: crit
    match: {checks: [web], states: [CRITICAL]}
    notify: [bob]
"#;

#[test]
fn a_sticky_ack_holds_until_recovery_a_non_sticky_one_ends_at_a_state_change() {
    // (sticky, acknowledged after WARNING -> CRITICAL, pages at the change,
    // pages 30 minutes later).
    type Pages = Vec<(String, String, NotificationType)>;
    let cases: &[(bool, bool, Pages, Pages)] = &[
        (true, true, vec![], vec![]),
        (
            false,
            false,
            vec![n("bob", "mail", PROBLEM)],
            vec![n("alice", "mail", PROBLEM)],
        ),
    ];
    for (sticky, still_acked, at_change, later) in cases {
        let mut s = Sim::new(TWO_STATES, 1);
        assert_eq!(
            sent(&s.feed(State::Warning)),
            vec![n("alice", "mail", PROBLEM)]
        );
        let id = open_id(&s);
        let now = s.at(1).now;
        s.alarms
            .acknowledge_with(id, &terms(None, *sticky), now)
            .expect("ack");
        // Same state again: nothing changes either way.
        assert!(sent(&s.at(1).feed(State::Warning)).is_empty());
        let e = s.at(1).feed(State::Critical);
        assert_eq!(&sent(&e), at_change, "sticky {sticky}");
        let alarm = s.alarms.alarm(id).expect("alarm");
        assert_eq!(alarm.ack.is_some(), *still_acked, "sticky {sticky}");
        let want_ends = if *still_acked {
            vec![]
        } else {
            vec![AckEnd::StateChanged {
                from: State::Warning,
                to: State::Critical,
            }]
        };
        assert_eq!(ack_ends(&s, id), want_ends, "sticky {sticky}");
        assert_eq!(&sent(&s.at(30).tick()), later, "sticky {sticky}");
        // Recovery resolves the alarm; an ack never outlives it.
        s.at(1).feed(State::Ok);
        assert_eq!(s.alarms.open_alarms().count(), 0);
    }
}

#[test]
fn unacknowledging_resumes_repeats_and_is_refused_when_there_is_nothing_to_remove() {
    let mut s = Sim::new(FLAPPY, 1);
    assert_eq!(
        sent(&s.feed(State::Critical)),
        vec![n("alice", "mail", PROBLEM)]
    );
    let id = open_id(&s);
    let keys = |e: &[Effect]| -> Vec<String> {
        e.iter()
            .filter_map(|e| match e {
                Effect::Notify(n) if n.kind == ACK => Some(n.key.clone()),
                _ => None,
            })
            .collect()
    };
    let now = s.at(1).now;
    let first = s.alarms.acknowledge(id, "alice", "mine", now).expect("ack");
    assert_eq!(keys(&first), vec![format!("{id}:ack:alice:mail")]);
    assert!(sent(&s.at(45).tick()).is_empty(), "acknowledged: no repeat");
    let now = s.now;
    // The repeat was due 16 minutes ago: it goes out at once.
    let e = s.alarms.unacknowledge(id, "bob", now).expect("unack");
    assert_eq!(sent(&e), vec![n("alice", "mail", PROBLEM)]);
    assert!(e.contains(&Effect::Alarm(id)));
    assert_eq!(ack_ends(&s, id), vec![AckEnd::Removed { by: "bob".into() }]);
    assert_eq!(
        s.alarms.unacknowledge(id, "bob", now),
        Err(AlarmError::NotAcknowledged(id))
    );
    assert_eq!(
        s.alarms.unacknowledge(99, "bob", now),
        Err(AlarmError::NotFound(99))
    );
    assert_eq!(
        sent(&s.at(30).tick()),
        vec![n("alice", "mail", PROBLEM)],
        "repeats go on"
    );
    // Acknowledged again: told again, under a key of its own.
    let now = s.now;
    let again = s
        .alarms
        .acknowledge(id, "carol", "mine now", now)
        .expect("ack");
    assert_eq!(keys(&again), vec![format!("{id}:ack2:alice:mail")]);
    s.at(1).feed(State::Ok);
    let now = s.now;
    assert_eq!(
        s.alarms.unacknowledge(id, "bob", now),
        Err(AlarmError::Resolved(id))
    );
}

#[test]
fn old_snapshots_acks_are_sticky_and_never_expire() {
    let mut s = Sim::new(SIMPLE, 1);
    s.feed(State::Critical);
    let id = open_id(&s);
    let now = s.now;
    s.alarms.acknowledge(id, "alice", "", now).expect("ack");
    let mut json = serde_json::to_value(s.alarms.snapshot()).expect("encode");
    let ack = json["open"][0]["ack"].as_object_mut().expect("ack");
    ack.remove("expires");
    ack.remove("sticky");
    let snapshot = serde_json::from_value(json).expect("decode");
    let restored = Alarms::restore(&s.config, snapshot);
    let ack = restored.alarm(id).and_then(|a| a.ack.clone()).expect("ack");
    assert_eq!((ack.expires, ack.sticky), (None, true));
}

fn silence(id: u64, hosts: &[&str], starts: DateTime<Utc>, minutes: i64) -> Silence {
    Silence {
        id,
        matchers: SilenceMatch {
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            ..SilenceMatch::default()
        },
        comment: "kernel update".into(),
        by: "alice".into(),
        created: starts,
        starts,
        ends: starts + Duration::minutes(minutes),
        removed: None,
        removed_by: None,
    }
}

/// One step of a silence scenario.
#[derive(Debug, Clone, Copy)]
enum SilenceStep {
    Feed(State),
    Tick,
    /// Silence 1 on `cs1`, from `start` minutes from now for `minutes`.
    Set {
        start: i64,
        minutes: i64,
    },
    /// No silences any more (removed).
    Clear,
}

#[test]
fn a_silence_holds_an_alarm_back_as_maintenance_does_and_lets_it_out_when_it_ends() {
    use SilenceStep::{Clear, Feed, Set, Tick};
    use State::{Critical as CRIT, Ok as OK};
    // (minutes since the previous step, step, action runs, pages, the
    // alarm's suppressed_by afterwards). Day starts 10:00; the patchday
    // maintenance of DELAYED (12:00-13:00) is not reached.
    type Row = (i64, SilenceStep, usize, usize, Option<&'static str>);
    let cases: &[(&str, &str, &[Row])] = &[
        (
            "opened in a silence: held back until it ends",
            AT_ONCE,
            &[
                (
                    0,
                    Set {
                        start: 0,
                        minutes: 30,
                    },
                    0,
                    0,
                    None,
                ),
                (1, Feed(CRIT), 0, 0, Some("silence")),
                (10, Tick, 0, 0, Some("silence")),
                (10, Feed(CRIT), 0, 0, Some("silence")),
                (8, Tick, 0, 0, Some("silence")),
                (1, Tick, 1, 1, None), // 10:30: over
                (5, Tick, 0, 0, None),
            ],
        ),
        (
            "removed early: what it held back happens at once",
            DELAYED,
            &[
                (
                    0,
                    Set {
                        start: 0,
                        minutes: 60,
                    },
                    0,
                    0,
                    None,
                ),
                (0, Feed(CRIT), 0, 0, Some("silence")),
                (10, Tick, 0, 0, Some("silence")),
                (1, Clear, 1, 1, None),
                (10, Tick, 0, 0, None),
            ],
        ),
        (
            "resolved in the silence: nothing ever runs",
            AT_ONCE,
            &[
                (
                    0,
                    Set {
                        start: 0,
                        minutes: 60,
                    },
                    0,
                    0,
                    None,
                ),
                (0, Feed(CRIT), 0, 0, Some("silence")),
                (10, Feed(OK), 0, 0, Some("silence")),
                (60, Tick, 0, 0, Some("silence")),
            ],
        ),
        (
            "a silence starting later: the alarm pages until it starts",
            DELAYED,
            &[
                (
                    0,
                    Set {
                        start: 10,
                        minutes: 30,
                    },
                    0,
                    0,
                    None,
                ),
                (0, Feed(CRIT), 0, 0, None),
                (5, Tick, 1, 1, None),
                (5, Tick, 0, 0, Some("silence")),
                (31, Tick, 0, 0, None),
            ],
        ),
        (
            "a silence of another host changes nothing",
            AT_ONCE,
            &[
                (
                    0,
                    Set {
                        start: 0,
                        minutes: 60,
                    },
                    0,
                    0,
                    None,
                ),
                (0, Feed(CRIT), 1, 1, None),
            ],
        ),
    ];
    for (name, rules, steps) in cases {
        let mut s = Sim::new(rules, 1);
        let mut last = None;
        let host = if name.contains("another host") {
            "cs2"
        } else {
            "cs1"
        };
        for (i, (minutes, step, want_runs, want_pages, want_held)) in steps.iter().enumerate() {
            s.at(*minutes);
            let now = s.now;
            let e = match step {
                Feed(state) => s.feed(*state),
                Tick => s.tick(),
                Set { start, minutes } => s.alarms.set_silences(
                    vec![silence(
                        1,
                        &[host],
                        now + Duration::minutes(*start),
                        *minutes,
                    )],
                    now,
                ),
                Clear => s.alarms.set_silences(Vec::new(), now),
            };
            for effect in &e {
                if let Effect::Alarm(id) = effect {
                    last = Some(*id);
                }
            }
            let pages = sent(&e).iter().filter(|p| p.2 == PROBLEM).count();
            let held = last
                .and_then(|id| s.alarms.alarm(id))
                .and_then(|a| a.suppressed_by.as_ref())
                .map(|w| w.reason());
            assert_eq!(
                (runs(&e).len(), pages, held),
                (*want_runs, *want_pages, *want_held),
                "{name}, step {i} ({step:?} at {}): {e:?}",
                s.now
            );
            assert!(
                s.alarms.next_due().is_none_or(|t| t > s.now),
                "{name}, step {i}: something due now was left for later"
            );
        }
    }
}

#[test]
fn a_silence_is_recorded_once_and_named_in_the_suppression() {
    let mut s = Sim::new(MAINT, 1);
    s.at(-60); // 09:00, before patchday
    let now = s.now;
    let sil = silence(7, &["cs*"], now, 30);
    s.alarms.set_silences(vec![sil.clone()], now);
    s.at(1).feed(State::Critical);
    for _ in 0..5 {
        assert!(sent(&s.at(5).tick()).is_empty());
    }
    let want = Suppression::Silence {
        id: 7,
        by: "alice".into(),
        ends: sil.ends,
    };
    let alarm = s.alarms.open_alarms().next().expect("open");
    assert_eq!(alarm.suppressed_by.as_ref(), Some(&want));
    let held: Vec<&Suppression> = alarm
        .history
        .iter()
        .filter_map(|h| match &h.kind {
            EventKind::ActionSuppressed { why, .. }
            | EventKind::NotificationSuppressed { why, .. } => Some(why),
            _ => None,
        })
        .collect();
    assert_eq!(held, vec![&want, &want], "one action, one page round");
    assert_eq!(
        s.alarms.silences().cloned().collect::<Vec<_>>(),
        vec![sil.clone()]
    );
    assert_eq!(s.alarms.next_due(), Some(sil.ends), "the end is due next");
    // 09:31: over, and forgotten.
    let e = s.at(5).tick();
    assert_eq!(runs(&e), vec!["restart-service"]);
    assert_eq!(sent(&e), vec![n("alice", "mail", PROBLEM)]);
    assert_eq!(s.alarms.silences().count(), 0);
}

#[test]
fn new_silences_are_validated() {
    let now: DateTime<Utc> = "2026-12-01T10:00:00Z".parse().expect("time");
    let good = NewSilence {
        matchers: SilenceMatch {
            checks: vec!["web*".into()],
            ..SilenceMatch::default()
        },
        comment: "kernel update".into(),
        by: "alice".into(),
        starts: None,
        ends: now + Duration::hours(1),
    };
    let later = now + Duration::hours(2);
    let cases: Vec<(NewSilence, Result<DateTime<Utc>, SilenceError>)> = vec![
        (good.clone(), Ok(now)),
        (
            NewSilence {
                starts: Some(now + Duration::minutes(30)),
                ..good.clone()
            },
            Ok(now + Duration::minutes(30)),
        ),
        (
            NewSilence {
                matchers: SilenceMatch::default(),
                ..good.clone()
            },
            Err(SilenceError::NoMatcher),
        ),
        (
            NewSilence {
                comment: " ".into(),
                ..good.clone()
            },
            Err(SilenceError::NoComment),
        ),
        (
            NewSilence {
                by: String::new(),
                ..good.clone()
            },
            Err(SilenceError::NoAuthor),
        ),
        (
            NewSilence {
                ends: now,
                ..good.clone()
            },
            Err(SilenceError::EndsInPast { ends: now }),
        ),
        (
            NewSilence {
                starts: Some(later),
                ..good.clone()
            },
            Err(SilenceError::EndsBeforeStart {
                starts: later,
                ends: good.ends,
            }),
        ),
    ];
    for (i, (new, want)) in cases.iter().enumerate() {
        assert_eq!(&new.validate(now), want, "case {i}: {new:?}");
    }
    let bad_glob = NewSilence {
        matchers: SilenceMatch {
            hosts: vec!["cs[".into()],
            ..SilenceMatch::default()
        },
        ..good
    };
    assert!(matches!(
        bad_glob.validate(now),
        Err(SilenceError::BadGlob { what: "host", .. })
    ));
}

#[test]
fn preview_lists_the_configured_checks_a_silence_covers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("laxmon.yaml");
    std::fs::write(
        &path,
        r#"
hosts:
  - {name: cs1, address: 127.0.0.21, tags: [cluster]}
  - {name: cs2, address: 127.0.0.22, tags: [cluster]}
  - {name: db1, address: 127.0.0.23}
checks:
  - {name: apache-cs1, kind: port, host: cs1, port: 80}
  - {name: apache-cs2, kind: port, host: cs2, port: 80}
  - {name: ssh-cs1, kind: port, host: cs1, port: 22, tags: [ssh]}
  - {name: pg-db1, kind: port, host: db1, port: 5432, tags: [db]}
"#,
    )
    .expect("write");
    let config = crate::config::load(&path).unwrap_or_else(|e| panic!("config: {e}"));
    let m = |hosts: &[&str], checks: &[&str], tags: &[&str]| SilenceMatch {
        hosts: hosts.iter().map(|s| s.to_string()).collect(),
        checks: checks.iter().map(|s| s.to_string()).collect(),
        tags: tags.iter().map(|s| s.to_string()).collect(),
    };
    let cases: &[(SilenceMatch, &[&str])] = &[
        (m(&["cs1"], &[], &[]), &["apache-cs1", "ssh-cs1"]),
        (
            m(&["cs*"], &["apache-*"], &[]),
            &["apache-cs1", "apache-cs2"],
        ),
        (
            m(&[], &[], &["cluster"]),
            &["apache-cs1", "apache-cs2", "ssh-cs1"],
        ),
        (m(&[], &[], &["db", "ssh"]), &["ssh-cs1", "pg-db1"]),
        (m(&["cs2"], &[], &["ssh"]), &[]),
        (m(&[], &["nothing-*"], &[]), &[]),
    ];
    for (matchers, want) in cases {
        assert_eq!(
            preview(matchers, &config).expect("preview"),
            want.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            "{matchers}"
        );
    }
    assert_eq!(
        preview(&SilenceMatch::default(), &config),
        Err(SilenceError::NoMatcher)
    );
}
