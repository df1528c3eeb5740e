//! Scenario tests of the alarm lifecycle: a real state machine feeds
//! results at given times; the effects are compared with what the rules say.

use super::lifecycle::{Alarms, Effect, EventKind, NotificationType, Suppression};
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
