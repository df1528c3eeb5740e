//! The control handle against a real alarm stage on a real (SQLite) store:
//! results go in through the stage's intake, requests through the handle,
//! and the answers, the per-check summary and the store are compared with
//! what the lifecycle says. The binary-level tests (tests/alarm_control.rs)
//! cover the CLI's path on SQLite and PostgreSQL.

use super::control::{AckCommand, AlarmControl, AlarmFilter, ControlError};
use super::intake::{intake, IntakeSender};
use super::AlarmStage;
use crate::alarm::lifecycle::{AckTerms, Suppression};
use crate::alarm::silence::{NewSilence, SilenceMatch};
use crate::config::Config;
use crate::plugin_output::{CheckOutput, State};
use crate::result::CheckResult;
use crate::state::{CheckState, Policy, Reachability};
use crate::store::Store;
use chrono::{Duration, Utc};
use std::sync::Arc;
use tokio::task::JoinHandle;

/// Long enough for anything that does not hang.
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

fn config(dir: &std::path::Path) -> Config {
    let path = dir.join("laxmon.yaml");
    let text = format!(
        "storage: sqlite:{}/laxmon.db\nhosts:\n  - {{name: cs1, address: 127.0.0.21, tags: [cluster]}}\nchecks:\n  - {{name: web, kind: port, host: cs1, port: 80, max_attempts: 1}}\n  - {{name: dns, kind: port, host: cs1, port: 53, max_attempts: 1}}\n",
        dir.display()
    );
    std::fs::write(&path, text).expect("write config");
    crate::config::load(&path).unwrap_or_else(|e| panic!("config: {e}"))
}

/// One check's results through the real state machine.
struct Check {
    name: &'static str,
    state: CheckState,
}

impl Check {
    fn new(name: &'static str) -> Check {
        Check {
            name,
            state: CheckState::new(),
        }
    }

    fn result(&mut self, state: State) -> CheckResult {
        let now = Utc::now();
        let policy = Policy {
            max_attempts: 1,
            ..Policy::default()
        };
        let t = self
            .state
            .apply(state, &policy, Reachability::Reachable, now);
        CheckResult {
            check: self.name.into(),
            host: "cs1".into(),
            kind: "port",
            output: CheckOutput::new(state, format!("{} {state}", self.name)),
            planned: now,
            started: now,
            duration: std::time::Duration::ZERO,
            transition: t,
            state: self.state.clone(),
        }
    }
}

/// Restores a stage from `store`, attaches it to `control` and runs it.
async fn start(
    config: &Arc<Config>,
    store: &Store,
    control: &AlarmControl,
) -> (IntakeSender, JoinHandle<()>) {
    let stage = AlarmStage::restore(Arc::clone(config), store.clone())
        .await
        .expect("restore")
        .with_control(control.clone());
    let (tx, rx) = intake();
    // No cluster stage: its channel is closed from the start.
    let (_, done_rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(stage.run(rx, done_rx));
    let attached = async {
        while !control.is_ready() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(PATIENCE, attached)
        .await
        .expect("the stage attaches to the handle");
    (tx, task)
}

/// Waits (bounded) until the per-check summary satisfies `pred`.
async fn summary_until(
    control: &AlarmControl,
    what: &str,
    pred: impl Fn(&super::control::AlarmsByCheck) -> bool,
) {
    let mut rx = control.alarms_by_check();
    tokio::time::timeout(PATIENCE, rx.wait_for(|m| pred(m)))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for: {what}"))
        .expect("summary channel open");
}

fn ack(alarm_id: u64, by: &str, comment: &str) -> AckCommand {
    AckCommand {
        alarm_id,
        by: by.into(),
        comment: comment.into(),
        expires: None,
        sticky: true,
    }
}

fn is<T: std::fmt::Debug>(r: &Result<T, ControlError>, status: u16) -> bool {
    matches!(r, Err(e) if e.http_status() == status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_handle_acks_unacks_and_silences_through_the_stage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Arc::new(config(dir.path()));
    let store = Store::open(&config.storage).await.expect("store");
    let control = AlarmControl::new();

    // No stage yet (it would be waiting for the database): answered at once.
    let early = tokio::time::timeout(PATIENCE, control.ack(ack(1, "alice", "on it")))
        .await
        .expect("an answer, not a hang");
    assert!(is(&early, 503), "{early:?}");
    assert!(!control.is_ready());

    let (tx, task) = start(&config, &store, &control).await;
    let mut web = Check::new("web");
    let mut dns = Check::new("dns");
    tx.send(web.result(State::Critical));
    tx.send(dns.result(State::Warning));
    summary_until(&control, "both alarms open", |m| m.len() == 2).await;
    let by_check = control.alarms_by_check().borrow().clone();
    let id = by_check["web"].alarm_id;
    let dns_id = by_check["dns"].alarm_id;
    assert_eq!(by_check["web"].state, State::Critical);
    assert!(!by_check["web"].acked);

    // Acknowledge: the answer is the alarm as acknowledged.
    let blank = control.ack(ack(id, "alice", " ")).await;
    assert!(is(&blank, 422), "a comment is required: {blank:?}");
    let expires = Utc::now() + Duration::hours(2);
    let view = control
        .ack(AckCommand {
            expires: Some(expires),
            sticky: false,
            ..ack(id, "alice", "on it")
        })
        .await
        .expect("ack");
    assert_eq!(view.id, id);
    assert_eq!(view.check, "web");
    assert_eq!(view.state, "CRITICAL");
    assert_eq!(view.ack_by.as_deref(), Some("alice"));
    assert_eq!(view.ack_comment.as_deref(), Some("on it"));
    assert_eq!(view.ack_expires, Some(expires));
    assert_eq!(view.ack_sticky, Some(false));
    let again = control.ack(ack(id, "bob", "me too")).await;
    assert!(is(&again, 409), "already acknowledged: {again:?}");
    let unknown = control.ack(ack(999, "bob", "which?")).await;
    assert!(is(&unknown, 404), "{unknown:?}");
    let past = control
        .ack(AckCommand {
            expires: Some(Utc::now() - Duration::minutes(1)),
            ..ack(dns_id, "bob", "late")
        })
        .await;
    assert!(is(&past, 422), "an expiry in the past: {past:?}");
    summary_until(&control, "web acknowledged", |m| m["web"].acked).await;
    // Persisted through the store's paths, as `laxmon ack` is.
    let row = store.alarm_row(id).await.expect("row").expect("stored");
    assert_eq!(row.ack_by.as_deref(), Some("alice"));
    assert_eq!(row.ack_sticky, Some(false));

    // A restart keeps it: the new stage answers from the store's state.
    drop(tx);
    task.await.expect("stage stops");
    assert!(!control.is_ready());
    let stopped = control.alarm(id).await;
    assert!(is(&stopped, 503), "{stopped:?}");
    let (tx, task) = start(&config, &store, &control).await;
    let view = control.alarm(id).await.expect("alarm after restart");
    assert_eq!(view.ack_by.as_deref(), Some("alice"));
    assert_eq!(view.ack_expires, Some(expires));

    // Un-acknowledge, twice.
    let view = control.unack(id, "bob").await.expect("unack");
    assert_eq!((view.ack_by, view.ack_at), (None, None));
    let twice = control.unack(id, "bob").await;
    assert!(is(&twice, 409), "{twice:?}");
    summary_until(&control, "web unacknowledged", |m| !m["web"].acked).await;

    // Bulk: every unacknowledged open alarm on cs1 in CRITICAL.
    let bulk = control
        .ack_matching(
            AlarmFilter {
                state: Some(State::Critical),
                host: Some("cs*".into()),
                unacknowledged: true,
                ..AlarmFilter::default()
            },
            AckTerms::sticky("carol", "all of cs1"),
        )
        .await
        .expect("bulk");
    assert_eq!(bulk.len(), 1, "{bulk:?}");
    assert_eq!(bulk[0].0, id);
    let acked = bulk[0].1.as_ref().expect("acked");
    assert_eq!(acked.ack_by.as_deref(), Some("carol"));
    let bad = control
        .ack_matching(
            AlarmFilter {
                check: Some("[".into()),
                ..AlarmFilter::default()
            },
            AckTerms::sticky("carol", "x"),
        )
        .await;
    assert!(is(&bad, 422), "{bad:?}");

    // Silences: stored, applied at once, listed, removed.
    let invalid = control
        .add_silence(NewSilence {
            matchers: SilenceMatch::default(),
            comment: "everything".into(),
            by: "alice".into(),
            starts: None,
            ends: Utc::now() + Duration::hours(1),
        })
        .await;
    assert!(is(&invalid, 422), "{invalid:?}");
    let silence = control
        .add_silence(NewSilence {
            matchers: SilenceMatch {
                checks: vec!["dns".into()],
                ..SilenceMatch::default()
            },
            comment: "resolver swap".into(),
            by: "alice".into(),
            starts: None,
            ends: Utc::now() + Duration::hours(1),
        })
        .await
        .expect("silence");
    summary_until(&control, "dns silenced", |m| {
        matches!(&m["dns"].suppressed, Some(Suppression::Silence { id, .. }) if *id == silence.id)
    })
    .await;
    assert!(control.alarms_by_check().borrow()["web"]
        .suppressed
        .is_none());
    let listed = control.silences().await.expect("silences");
    assert_eq!(
        listed.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![silence.id]
    );
    let stored = store.silences(false, Utc::now()).await.expect("stored");
    assert_eq!(stored.len(), 1);
    let removed = control
        .remove_silence(silence.id, "bob")
        .await
        .expect("remove");
    assert_eq!(removed.removed_by.as_deref(), Some("bob"));
    summary_until(&control, "dns no longer silenced", |m| {
        m["dns"].suppressed.is_none()
    })
    .await;
    let twice = control.remove_silence(silence.id, "bob").await;
    assert!(is(&twice, 409), "{twice:?}");
    let unknown = control.remove_silence(999, "bob").await;
    assert!(is(&unknown, 404), "{unknown:?}");
    assert!(control.silences().await.expect("silences").is_empty());

    // A resolved alarm cannot be acknowledged.
    tx.send(dns.result(State::Ok));
    summary_until(&control, "dns resolved", |m| !m.contains_key("dns")).await;
    let resolved = control.ack(ack(dns_id, "bob", "too late")).await;
    assert!(is(&resolved, 409), "{resolved:?}");

    drop(tx);
    task.await.expect("stage stops");
    let after = control.silences().await;
    assert!(is(&after, 503), "{after:?}");
}
