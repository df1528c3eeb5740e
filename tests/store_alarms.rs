//! The alarm side's persistence on the real store, on SQLite and PostgreSQL:
//! lifecycle alarms with their history, acknowledgements and their removal
//! from `laxmon ack`/`unack` (requests the daemon applies), silences,
//! the notification outbox, the lifecycle snapshot, action runs and the
//! installation id.

mod support;

use chrono::{DateTime, Duration as ChronoDuration, SubsecRound, TimeZone, Utc};
use laxmon::alarm::facts::Facts;
use laxmon::alarm::lifecycle::{
    Ack, AckTerms, Alarm, AlarmEvent, CheckMemory, EventKind, NotificationType, Snapshot,
    Suppression,
};
use laxmon::alarm::outbox::{DeliveryStatus, OutboxItem};
use laxmon::alarm::silence::{NewSilence, SilenceMatch};
use laxmon::alarm::store::{ActionRun, AlarmStore, NotificationStore};
use laxmon::checks::State;
use laxmon::config::Storage;
use laxmon::store::{self, AlarmRequestOp, Store, StoreError};
use std::collections::BTreeMap;
use std::time::Duration;
use support::alarm::alarm;
use support::backend::{both, Env};

/// A fixed instant, `secs` seconds into the test's day.
fn at(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0)
        .single()
        .expect("valid time")
        + ChronoDuration::seconds(secs)
}

/// An outbox item for alarm `alarm_id`, queued at `now`.
fn item(key: &str, alarm_id: u64, now: DateTime<Utc>) -> OutboxItem {
    let mut facts = Facts::default();
    facts.set("check", "web");
    facts.set("state", "CRITICAL");
    OutboxItem {
        key: key.into(),
        alarm_id,
        contact: "alice".into(),
        notifier: "mail".into(),
        to: "alice@example.org".into(),
        subject: "PROBLEM web".into(),
        body: "web is down\nsince 12:00".into(),
        facts,
        created: now,
        next_attempt: now,
        attempts: 0,
        status: DeliveryStatus::Pending,
        last_error: None,
    }
}

/// The kinds of an alarm's stored events, oldest first.
async fn event_kinds(store: &Store, id: u64) -> Vec<String> {
    store
        .alarm_events(id)
        .await
        .expect("alarm events")
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

/// One stored action run, read back with the backend's own driver.
#[derive(Debug, PartialEq)]
struct StoredRun {
    alarm_id: Option<i64>,
    key: Option<String>,
    action: String,
    argv: serde_json::Value,
    exit_status: Option<i32>,
    timed_out: bool,
    output: String,
    error: Option<String>,
    duration_ms: f64,
}

async fn stored_runs(env: &Env) -> Vec<StoredRun> {
    const SQL: &str = "SELECT alarm_id, action_key, action, argv, exit_status, timed_out, output, \
                       error, duration_ms FROM action_runs ORDER BY id";
    match &env.cfg.backend {
        Storage::Sqlite(path) => {
            let conn = rusqlite::Connection::open(path).expect("open sqlite");
            let mut stmt = conn.prepare(SQL).expect("prepare");
            stmt.query_map([], |r| {
                let argv: String = r.get(3)?;
                Ok(StoredRun {
                    alarm_id: r.get(0)?,
                    key: r.get(1)?,
                    action: r.get(2)?,
                    argv: serde_json::from_str(&argv).expect("argv JSON"),
                    exit_status: r.get(4)?,
                    timed_out: r.get(5)?,
                    output: r.get(6)?,
                    error: r.get(7)?,
                    duration_ms: r.get(8)?,
                })
            })
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
        }
        Storage::Postgres(url) => {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .expect("connect");
            tokio::spawn(conn);
            client
                .query(SQL, &[])
                .await
                .expect("query")
                .iter()
                .map(|r| StoredRun {
                    alarm_id: r.get(0),
                    key: r.get(1),
                    action: r.get(2),
                    argv: r.get(3),
                    exit_status: r.get(4),
                    timed_out: r.get(5),
                    output: r.get(6),
                    error: r.get(7),
                    duration_ms: r.get(8),
                })
                .collect()
        }
    }
}

// --- alarms ------------------------------------------------------------------

both!(alarm_round_trips_and_history_is_appended_once);
async fn alarm_round_trips_and_history_is_appended_once(env: Env) {
    let store = env.open().await;
    let mut a = alarm(7, "web", at(0));
    store.save_alarm(&a).await.expect("save");
    store.save_alarm(&a).await.expect("save again, unchanged");
    assert_eq!(event_kinds(&store, 7).await, vec!["opened"]);

    a.history.push(AlarmEvent {
        at: at(60),
        kind: EventKind::Notified {
            rule: "page".into(),
            contact: "alice".into(),
            notifier: "mail".into(),
            kind: NotificationType::Problem,
            level: 0,
        },
    });
    a.history.push(AlarmEvent {
        at: at(120),
        kind: EventKind::Escalated {
            rule: "page".into(),
            level: 2,
        },
    });
    a.rules[0].level = 2;
    a.rules[0].last_round = Some(at(120));
    a.state = State::Warning;
    a.output = "web is slow".into();
    a.suppressed_by = Some(Suppression::Maintenance {
        window: "patchday".into(),
    });
    store.save_alarm(&a).await.expect("save with more history");
    store.save_alarm(&a).await.expect("save once more");
    assert_eq!(
        event_kinds(&store, 7).await,
        vec!["opened", "notified", "escalated"],
        "each history entry stored exactly once"
    );
    let events = store.alarm_events(7).await.expect("events");
    assert_eq!(events[2].at, at(120));
    assert_eq!(events[2].detail["level"], 2);
    assert_eq!(events[2].detail["event"], "escalated");
    let timeline: Vec<AlarmEvent> = events
        .iter()
        .map(|e| serde_json::from_value(e.detail.clone()).expect("detail is an AlarmEvent"))
        .collect();
    assert_eq!(
        timeline, a.history,
        "the timeline reads back as the lifecycle wrote it"
    );
    assert!(
        store
            .alarm_events(8)
            .await
            .expect("unknown alarm")
            .is_empty(),
        "an alarm never saved has no timeline"
    );

    let rows = store.list_alarms(false, 10).await.expect("list");
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row.id, 7);
    assert_eq!((row.check.as_str(), row.host.as_str()), ("web", "web1"));
    assert_eq!(row.state, "WARNING");
    assert_eq!(row.summary, "web is slow");
    assert_eq!(row.opened, at(0));
    assert_eq!(row.resolved, None);
    assert_eq!(row.escalation_level, 2);
    assert!(
        row.suppressed,
        "an alarm in maintenance is stored as suppressed"
    );
    assert_eq!(row.suppressed_by, a.suppressed_by, "and says why");
    let table = laxmon::render::alarms_text(&rows);
    assert!(table.contains("[maintenance patchday]"), "{table}");
    let detail: Alarm =
        serde_json::from_value(row.detail.clone().expect("detail")).expect("detail is an Alarm");
    assert_eq!(detail, a, "the whole lifecycle alarm round-trips");

    a.resolved = Some(at(300));
    a.state = State::Ok;
    store.save_alarm(&a).await.expect("save resolved");
    let rows = store.list_alarms(false, 10).await.expect("list");
    assert_eq!(rows[0].resolved, Some(at(300)));
    assert!(store.list_alarms(true, 10).await.expect("open").is_empty());
}

both!(a_new_alarm_of_a_check_resolves_its_stale_open_one);
async fn a_new_alarm_of_a_check_resolves_its_stale_open_one(env: Env) {
    let store = env.open().await;
    store
        .save_alarm(&alarm(1, "web", at(0)))
        .await
        .expect("first");
    // The daemon crashed before saving alarm 1 resolved; its lifecycle now opens alarm 2.
    store
        .save_alarm(&alarm(2, "web", at(600)))
        .await
        .expect("a second open alarm of the same check is accepted");
    let rows = store.list_alarms(false, 10).await.expect("list");
    let ids: Vec<u64> = rows.iter().map(|r| r.id).collect();
    assert_eq!(ids, vec![2, 1], "newest first");
    assert_eq!(rows[0].resolved, None);
    assert_eq!(
        rows[1].resolved,
        Some(at(600)),
        "the stale one ends when the new one opened"
    );
    let open: Vec<u64> = store
        .list_alarms(true, 10)
        .await
        .expect("open")
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(open, vec![2]);
}

both!(cli_ack_and_unack_are_requests_shown_at_once_until_the_daemon_applies_them);
async fn cli_ack_and_unack_are_requests_shown_at_once_until_the_daemon_applies_them(env: Env) {
    let store = env.open().await;
    let mut a = alarm(3, "web", at(0));
    store.save_alarm(&a).await.expect("save");
    assert!(store
        .pending_alarm_requests()
        .await
        .expect("requests")
        .is_empty());

    // Whole seconds: the databases keep microseconds.
    let expires = Utc::now().trunc_subsecs(0) + ChronoDuration::hours(2);
    let terms = AckTerms {
        by: "alice".into(),
        comment: "on it".into(),
        expires: Some(expires),
        sticky: false,
    };
    let line = store::ack_command(&env.cfg, 3, &terms).await.expect("ack");
    assert!(line.contains("alarm 3"), "{line}");
    assert!(
        line.contains("acknowledged by alice: on it until"),
        "{line}"
    );
    assert!(line.contains("not sticky"), "{line}");

    // The daemon has not applied it yet and saves its un-acked alarm: the
    // request stays, and the read side shows the alarm as it will be.
    a.output = "still down".into();
    store.save_alarm(&a).await.expect("save un-acked");
    let pending = store.pending_alarm_requests().await.expect("requests");
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0].alarm_id, 3);
    assert_eq!(pending[0].op, AlarmRequestOp::Ack(terms.clone()));
    let acked_at = pending[0].at;
    let row = &store.list_alarms(true, 10).await.expect("list")[0];
    assert_eq!(row.ack_by.as_deref(), Some("alice"));
    assert_eq!(row.ack_comment.as_deref(), Some("on it"));
    assert_eq!(row.ack_at, Some(acked_at));
    assert_eq!(row.ack_expires, Some(expires));
    assert_eq!(row.ack_sticky, Some(false));
    assert_eq!(row.summary, "still down", "the rest was saved");

    // The daemon applies it: the lifecycle's ack is what is stored then.
    a.ack = Some(Ack {
        by: "alice".into(),
        comment: "on it".into(),
        at: acked_at,
        expires: Some(expires),
        sticky: false,
    });
    store.save_alarm(&a).await.expect("save acked");
    store
        .finish_alarm_request(pending[0].id, Utc::now(), "applied")
        .await
        .expect("finish");
    assert!(store
        .pending_alarm_requests()
        .await
        .expect("requests")
        .is_empty());
    let row = store.alarm_row(3).await.expect("row").expect("alarm 3");
    assert_eq!(row.ack_by.as_deref(), Some("alice"));
    assert_eq!(row.ack_at, Some(acked_at));
    assert_eq!(row.ack_expires, Some(expires), "from the lifecycle's alarm");
    assert_eq!(row.ack_sticky, Some(false));

    // `laxmon unack`: shown at once, applied by the daemon later.
    let line = store::unack_command(&env.cfg, 3, "bob")
        .await
        .expect("unack");
    assert!(
        line.contains("no longer acknowledged (was by alice); removed by bob"),
        "{line}"
    );
    let row = store.alarm_row(3).await.expect("row").expect("alarm 3");
    assert_eq!((row.ack_by, row.ack_at, row.ack_sticky), (None, None, None));
    let err = store::unack_command(&env.cfg, 3, "bob")
        .await
        .expect_err("nothing left to remove");
    assert!(matches!(err, StoreError::NotAcknowledged(3)), "{err:?}");
    let pending = store.pending_alarm_requests().await.expect("requests");
    assert_eq!(
        pending.iter().map(|r| r.op.clone()).collect::<Vec<_>>(),
        vec![AlarmRequestOp::Unack { by: "bob".into() }]
    );
    // The daemon's lifecycle drops the ack: the columns follow it.
    a.ack = None;
    store.save_alarm(&a).await.expect("save un-acked again");
    store
        .finish_alarm_request(pending[0].id, Utc::now(), "applied")
        .await
        .expect("finish");
    let row = store.alarm_row(3).await.expect("row").expect("alarm 3");
    assert_eq!(
        (row.ack_by, row.ack_at),
        (None, None),
        "the ack columns are cleared"
    );

    a.resolved = Some(at(900));
    store.save_alarm(&a).await.expect("save resolved");
    let err = store::unack_command(&env.cfg, 3, "bob")
        .await
        .expect_err("resolved");
    assert!(
        matches!(err, StoreError::AlarmResolved { id: 3, .. }),
        "{err:?}"
    );
}

both!(ack_command_refuses_unknown_resolved_and_acknowledged_alarms);
async fn ack_command_refuses_unknown_resolved_and_acknowledged_alarms(env: Env) {
    let store = env.open().await;
    let mut resolved = alarm(1, "db", at(0));
    resolved.resolved = Some(at(60));
    store.save_alarm(&resolved).await.expect("save resolved");
    store
        .save_alarm(&alarm(2, "web", at(0)))
        .await
        .expect("save open");

    let err = store::ack_command(&env.cfg, 99, &AckTerms::sticky("bob", ""))
        .await
        .expect_err("unknown alarm");
    assert!(matches!(err, StoreError::NoSuchAlarm(99)), "{err:?}");
    assert!(err.to_string().contains("no alarm 99"), "{err}");

    let err = store::ack_command(&env.cfg, 1, &AckTerms::sticky("bob", ""))
        .await
        .expect_err("resolved alarm");
    assert!(
        matches!(err, StoreError::AlarmResolved { id: 1, at: when } if when == at(60)),
        "{err:?}"
    );
    assert!(err.to_string().contains("already resolved"), "{err}");

    store::ack_command(&env.cfg, 2, &AckTerms::sticky("alice", ""))
        .await
        .expect("first ack");
    let err = store::ack_command(&env.cfg, 2, &AckTerms::sticky("bob", "me too"))
        .await
        .expect_err("second ack");
    assert!(
        matches!(&err, StoreError::AlreadyAcknowledged { id: 2, by, .. } if by == "alice"),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("already acknowledged by alice"),
        "{err}"
    );
    let row = store.alarm_row(2).await.expect("row").expect("alarm 2");
    assert_eq!(row.ack_by.as_deref(), Some("alice"), "the first ack stays");

    store
        .save_alarm(&alarm(4, "dns", at(0)))
        .await
        .expect("save open");
    let past = AckTerms {
        expires: Some(Utc::now() - ChronoDuration::minutes(1)),
        ..AckTerms::sticky("bob", "too late")
    };
    let err = store::ack_command(&env.cfg, 4, &past)
        .await
        .expect_err("expiry in the past");
    assert!(
        matches!(err, StoreError::AckExpiresInPast { id: 4, .. }),
        "{err:?}"
    );
    assert!(
        store
            .pending_alarm_requests()
            .await
            .expect("requests")
            .len()
            == 1
    );
}

both!(silences_are_stored_listed_and_removed_once);
async fn silences_are_stored_listed_and_removed_once(env: Env) {
    let store = env.open().await;
    let now = at(0);
    let new = NewSilence {
        matchers: SilenceMatch {
            hosts: vec!["cs*".into()],
            checks: vec!["apache-*".into()],
            tags: vec![],
        },
        comment: "kernel update".into(),
        by: "alice".into(),
        starts: None,
        ends: now + ChronoDuration::hours(2),
    };
    let later = NewSilence {
        matchers: SilenceMatch {
            tags: vec!["db".into()],
            ..SilenceMatch::default()
        },
        starts: Some(now + ChronoDuration::hours(1)),
        ..new.clone()
    };
    let first = store.add_silence(&new, now).await.expect("add");
    assert_eq!(first.starts, now, "starts now by default");
    assert_eq!((first.by.as_str(), first.removed), ("alice", None));
    let second = store.add_silence(&later, now).await.expect("add later");
    assert!(second.id > first.id);
    let listed = store.silences(false, now).await.expect("list");
    assert_eq!(listed, vec![first.clone(), second.clone()], "round trip");

    for (bad, why) in [
        (
            NewSilence {
                matchers: SilenceMatch::default(),
                ..new.clone()
            },
            "no matcher",
        ),
        (
            NewSilence {
                comment: "  ".into(),
                ..new.clone()
            },
            "no comment",
        ),
        (
            NewSilence {
                ends: now - ChronoDuration::minutes(1),
                ..new.clone()
            },
            "ended",
        ),
        (
            NewSilence {
                matchers: SilenceMatch {
                    checks: vec!["[".into()],
                    ..SilenceMatch::default()
                },
                ..new.clone()
            },
            "bad glob",
        ),
    ] {
        let err = store.add_silence(&bad, now).await.expect_err(why);
        assert!(
            matches!(err, StoreError::InvalidSilence(_)),
            "{why}: {err:?}"
        );
    }

    let removed = store
        .remove_silence(first.id, "bob", now)
        .await
        .expect("remove");
    assert_eq!(removed.removed, Some(now));
    assert_eq!(removed.removed_by.as_deref(), Some("bob"));
    let err = store
        .remove_silence(first.id, "bob", now)
        .await
        .expect_err("twice");
    assert!(matches!(err, StoreError::SilenceOver { .. }), "{err:?}");
    let err = store
        .remove_silence(999, "bob", now)
        .await
        .expect_err("unknown");
    assert!(matches!(err, StoreError::NoSuchSilence(999)), "{err:?}");
    let current: Vec<u64> = store
        .silences(false, now)
        .await
        .expect("list")
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(current, vec![second.id]);
    let after_end: Vec<u64> = store
        .silences(false, now + ChronoDuration::hours(3))
        .await
        .expect("list")
        .iter()
        .map(|s| s.id)
        .collect();
    assert!(after_end.is_empty(), "over at its end");
    let all = store.silences(true, now).await.expect("all");
    assert_eq!(all.len(), 2);
    assert_eq!(all[0], removed);
}

both!(list_alarms_open_only_and_all);
async fn list_alarms_open_only_and_all(env: Env) {
    let store = env.open().await;
    for (id, check, opened, resolved) in [
        (1, "a", 0, Some(100)),
        (2, "b", 200, Some(300)),
        (3, "c", 400, None),
        (4, "d", 500, None),
    ] {
        let mut a = alarm(id, check, at(opened));
        a.resolved = resolved.map(at);
        store.save_alarm(&a).await.expect("save");
    }
    let ids = |rows: Vec<store::AlarmRow>| rows.iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.list_alarms(false, 10).await.expect("all")),
        vec![4, 3, 2, 1]
    );
    assert_eq!(
        ids(store.list_alarms(false, 2).await.expect("limited")),
        vec![4, 3]
    );
    assert_eq!(
        ids(store.list_alarms(true, 10).await.expect("open")),
        vec![4, 3]
    );

    // What `laxmon alarms [--open] [--json]` prints.
    let listing = |open: bool, json: bool| {
        let store = &store;
        async move {
            let rows = laxmon::query::alarms(store, open).await.expect("alarms");
            laxmon::render::render(&rows[..], json, laxmon::render::alarms_text).expect("render")
        }
    };
    let text = listing(false, false).await;
    assert_eq!(text.lines().count(), 5, "header and four alarms:\n{text}");
    assert!(
        text.lines().next().is_some_and(|h| h.contains("CHECK")),
        "{text}"
    );
    assert!(text.contains("c is down"), "{text}");
    let open_text = listing(true, false).await;
    assert_eq!(open_text.lines().count(), 3, "{open_text}");
    assert!(!open_text.contains("a is down"), "{open_text}");

    let json = listing(true, true).await;
    let v: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    let list = v.as_array().expect("an array");
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["id"], 4);
    assert_eq!(list[0]["check"], "d");
    assert_eq!(list[0]["detail"]["history"][0]["event"], "opened");
    assert_eq!(list[0]["detail"]["notified"][0][0], "alice");
}

// --- outbox ------------------------------------------------------------------

both!(outbox_is_idempotent_and_round_trips_items);
async fn outbox_is_idempotent_and_round_trips_items(env: Env) {
    let store = env.open().await;
    store
        .save_alarm(&alarm(1, "web", at(0)))
        .await
        .expect("alarm");
    // Nanoseconds on purpose: the database keeps microseconds.
    let now = Utc::now();
    let first = item("1:page:0:alice:mail", 1, now);
    let mut second = item(
        "1:page:0:bob:sms",
        1,
        now + ChronoDuration::nanoseconds(1500),
    );
    second.contact = "bob".into();
    second.notifier = "sms".into();
    // An item whose alarm was never saved is kept all the same.
    let orphan = item("9:page:0:alice:mail", 9, now + ChronoDuration::seconds(1));

    assert!(store.enqueue(&first).await.expect("enqueue"));
    assert!(!store.enqueue(&first).await.expect("enqueue again"));
    assert!(store.enqueue(&second).await.expect("enqueue second"));
    assert!(store.enqueue(&orphan).await.expect("enqueue orphan"));
    assert_eq!(
        store.pending().await.expect("pending"),
        vec![first.clone(), second.clone(), orphan.clone()],
        "pending items come back exactly, in queue order"
    );

    store
        .mark_sent(&first.key, now + ChronoDuration::seconds(2))
        .await
        .expect("sent");
    let retry = now + ChronoDuration::seconds(30);
    store
        .mark_failed(&second.key, 1, "gateway: 503", Some(retry))
        .await
        .expect("failed once");
    let mut expected = second.clone();
    expected.attempts = 1;
    expected.next_attempt = retry;
    expected.last_error = Some("gateway: 503".into());
    assert_eq!(
        store.pending().await.expect("pending"),
        vec![expected, orphan.clone()],
        "sent is gone, failed-with-retry stays with its new attempt time"
    );

    store
        .mark_failed(&second.key, 5, "gateway: 503", None)
        .await
        .expect("given up");
    store
        .mark_failed(&first.key, 1, "late failure report", None)
        .await
        .expect("a failure after the send");
    assert_eq!(store.pending().await.expect("pending"), vec![orphan]);
    assert!(
        !store.enqueue(&first).await.expect("sent key"),
        "a sent key is never queued again"
    );
    assert!(
        !store.enqueue(&second).await.expect("given-up key"),
        "a given-up key is never queued again"
    );
}

// --- snapshot and action runs -----------------------------------------------

both!(snapshot_round_trips);
async fn snapshot_round_trips(env: Env) {
    let store = env.open().await;
    assert_eq!(store.load_snapshot().await.expect("load empty"), None);
    let mut checks = BTreeMap::new();
    checks.insert(
        "web".to_string(),
        CheckMemory {
            cycle: 42,
            restarts: [40, 41].into_iter().collect(),
            last_paged: Some(Utc::now()),
            open: Some(5),
        },
    );
    let snapshot = Snapshot {
        next_id: 6,
        open: vec![alarm(5, "web", Utc::now())],
        checks,
    };
    store.save_snapshot(&snapshot).await.expect("save");
    assert_eq!(
        store.load_snapshot().await.expect("load"),
        Some(snapshot.clone())
    );

    let later = Snapshot {
        next_id: 7,
        open: Vec::new(),
        checks: BTreeMap::new(),
    };
    store.save_snapshot(&later).await.expect("replace");
    assert_eq!(store.load_snapshot().await.expect("load"), Some(later));
    let reopened = env.open().await;
    assert_eq!(
        reopened
            .load_snapshot()
            .await
            .expect("load from a new handle")
            .map(|s| s.next_id),
        Some(7)
    );
}

both!(action_runs_are_recorded_with_their_alarm);
async fn action_runs_are_recorded_with_their_alarm(env: Env) {
    let store = env.open().await;
    store
        .save_alarm(&alarm(4, "web", at(0)))
        .await
        .expect("alarm");
    let ran = ActionRun {
        key: "4:restart:0".into(),
        alarm_id: 4,
        action: "restart-service".into(),
        argv: vec!["systemctl".into(), "restart".into(), "nginx".into()],
        started: at(10),
        duration: Duration::from_millis(1500),
        exit_code: Some(0),
        timed_out: false,
        output: "restarted\n".into(),
        error: None,
    };
    let failed = ActionRun {
        key: "8:script:1".into(),
        alarm_id: 8,
        action: "script".into(),
        argv: Vec::new(),
        started: at(20),
        duration: Duration::ZERO,
        exit_code: None,
        timed_out: true,
        output: String::new(),
        error: Some("no such file: /opt/fix.sh".into()),
    };
    store.save_action_run(&ran).await.expect("save run");
    store
        .save_action_run(&failed)
        .await
        .expect("save run of an unsaved alarm");

    let runs = stored_runs(&env).await;
    assert_eq!(
        runs,
        vec![
            StoredRun {
                alarm_id: Some(4),
                key: Some("4:restart:0".into()),
                action: "restart-service".into(),
                argv: serde_json::json!(["systemctl", "restart", "nginx"]),
                exit_status: Some(0),
                timed_out: false,
                output: "restarted\n".into(),
                error: None,
                duration_ms: 1500.0,
            },
            StoredRun {
                alarm_id: None,
                key: Some("8:script:1".into()),
                action: "script".into(),
                argv: serde_json::json!([]),
                exit_status: None,
                timed_out: true,
                output: String::new(),
                error: Some("no such file: /opt/fix.sh".into()),
                duration_ms: 0.0,
            },
        ]
    );
}

both!(the_installation_id_is_made_once_per_database);
/// Two stores opening a fresh database at once agree on its installation
/// id (made once, in the migration's locked transaction); a reopened store
/// reads the same; a lazily opened one too; another database has another.
async fn the_installation_id_is_made_once_per_database(env: Env) {
    let (a, b) = tokio::join!(Store::open(&env.cfg), Store::open(&env.cfg));
    let (a, b) = (a.expect("open a"), b.expect("open b"));
    let (ia, ib) = tokio::join!(a.installation_id(), b.installation_id());
    let id = ia.expect("installation id a");
    assert_eq!(ib.expect("installation id b"), id);
    assert!(
        id.len() == 32 && id.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')),
        "{id}"
    );
    drop((a, b));
    let reopened = env.open().await;
    assert_eq!(reopened.installation_id().await.expect("reopened"), id);
    assert!(reopened.migrate().await.expect("migrate again").is_empty());
    assert_eq!(reopened.installation_id().await.expect("migrated"), id);
    let lazy = Store::open_lazy(&env.cfg).expect("lazy");
    assert_eq!(lazy.installation_id().await.expect("lazy"), id);
    let other = if env.is_postgres() {
        Env::postgres().await
    } else {
        Env::sqlite().await
    };
    let other_id = other
        .open()
        .await
        .installation_id()
        .await
        .expect("other installation id");
    assert_ne!(other_id, id);
}
