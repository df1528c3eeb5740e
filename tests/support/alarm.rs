//! Lifecycle alarms to seed a store with, the way the daemon saves them
//! (through `AlarmStore::save_alarm`). Never write alarm rows by hand: the
//! columns, the `detail` JSON and the history must agree as the daemon's do.

use chrono::{DateTime, Utc};
use laxmon::alarm::lifecycle::{Alarm, AlarmEvent, EventKind, RuleProgress};
use laxmon::checks::State;

/// A lifecycle alarm for `check`, opened CRITICAL at `opened` with its `opened` event.
pub fn alarm(id: u64, check: &str, opened: DateTime<Utc>) -> Alarm {
    Alarm {
        id,
        check: check.into(),
        host: "web1".into(),
        address: "192.0.2.10".into(),
        tags: vec!["prod".into()],
        opened,
        resolved: None,
        state: State::Critical,
        previous_state: State::Ok,
        attempt: 3,
        max_attempts: 3,
        output: format!("{check} is down"),
        long_output: String::new(),
        perfdata: "time=3s".into(),
        flapping: false,
        ack: None,
        note: None,
        suppressed_by: None,
        rules: vec![RuleProgress {
            rule: "page".into(),
            started: opened,
            initial_done: true,
            rounds: 1,
            last_round: Some(opened),
            level: 0,
            escalate_now: false,
            in_maintenance: false,
            actions_done: true,
            actions_held: false,
        }],
        notified: vec![("alice".into(), "mail".into())],
        history: vec![AlarmEvent {
            at: opened,
            kind: EventKind::Opened {
                state: State::Critical,
                output: format!("{check} is down"),
            },
        }],
    }
}
