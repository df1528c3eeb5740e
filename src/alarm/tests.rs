//! Scenario tests of the alarm lifecycle: a real state machine feeds
//! results at given times; the effects are compared with what the rules say.

use super::lifecycle::{Alarms, Effect, EventKind, NotificationType, Suppression};
use crate::checks::{CheckOutput, State};
use crate::config::Config;
use crate::daemon::CheckResult;
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
    state: CheckState,
    policy: Policy,
    alarms: Alarms,
    now: DateTime<Utc>,
}

impl Sim {
    fn new(rules: &str, max_attempts: u32) -> Sim {
        let cfg = config(rules, max_attempts);
        Sim {
            state: CheckState::new(),
            policy: Policy {
                max_attempts,
                ..Policy::default()
            },
            alarms: Alarms::new(&cfg),
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
fn alarm_opens_on_hard_problem_only_and_runs_actions_at_once() {
    let mut s = Sim::new(SIMPLE, 3);
    assert!(s.feed(State::Critical).is_empty()); // SOFT 1
    assert!(s.at(1).feed(State::Critical).is_empty()); // SOFT 2
    let e = s.at(1).feed(State::Critical); // HARD
    assert_eq!(runs(&e), vec!["restart-service"]);
    assert!(sent(&e).is_empty(), "after: 5m delays the page");
    assert_eq!(s.alarms.open_alarms().count(), 1);
    // Still failing: same alarm, no second action run.
    let e = s.at(1).feed(State::Critical);
    assert!(runs(&e).is_empty());
    assert_eq!(s.alarms.open_alarms().count(), 1);
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
    // 11:05: the window is over and the held-back page goes out.
    assert_eq!(sent(&s.at(10).tick()), vec![n("alice", "mail", PROBLEM)]);
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
        for _ in sent(&e) {
            pages.push(s.now);
        }
    }
    assert!(flapping_seen);
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
  - name: web
    match: {checks: [web]}
    notify: [alice]
    after: 1h
    escalate:
      - {after: 2h, notify: [bob]}
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
