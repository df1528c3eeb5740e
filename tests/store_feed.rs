//! What the HTTP API reads and records in the store, on SQLite and
//! PostgreSQL: the event feed written by migration 4's triggers, the audit
//! log, idempotency answers, alarm timelines and pages, downsampled history
//! series, their retention, and migration 4 over a version-3 database.

mod support;

use chrono::{DateTime, Duration as ChronoDuration, TimeZone, Utc};
use laxmon::alarm::facts::Facts;
use laxmon::alarm::lifecycle::{Ack, Alarm, AlarmEvent, EventKind, NotificationType};
use laxmon::alarm::outbox::{DeliveryStatus, OutboxItem};
use laxmon::alarm::store::{ActionRun, AlarmStore, NotificationStore};
use laxmon::checks::{CheckOutput, PerfDatum, State};
use laxmon::config::{Storage, LOCAL_HOST};
use laxmon::query;
use laxmon::state::{CheckState, Policy, Reachability};
use laxmon::store::migrations::{POSTGRES, SQLITE};
use laxmon::store::{
    AuditEntry, AuditFilter, EventRow, FeedKind, ResultRecord, Store, TimelineEntry,
};
use std::time::{Duration, Instant};
use support::alarm::alarm;
use support::backend::{both, Env};
use uuid::Uuid;

/// A fixed instant, `secs` seconds after 2024-05-01 12:00 UTC.
fn at(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0)
        .single()
        .expect("valid time")
        + ChronoDuration::seconds(secs)
}

/// How both backends write a timestamp into JSON details.
fn json_ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// A result of `check` in `state` at `when`, applied to `st`.
fn result(check: &str, st: &mut CheckState, state: State, when: DateTime<Utc>) -> ResultRecord {
    let transition = st.apply(state, &Policy::default(), Reachability::Reachable, when);
    ResultRecord {
        result_id: Uuid::now_v7(),
        check: check.into(),
        host: LOCAL_HOST.into(),
        kind: "plugin".into(),
        planned: when,
        started: when,
        duration_ms: 10.0,
        output: CheckOutput {
            state,
            output: format!("{check} is {state} at {}", when.timestamp()),
            long_output: String::new(),
            perfdata: Vec::new(),
        },
        transition,
        check_state: Some(st.clone()),
    }
}

/// An outbox item of alarm `alarm_id` for `contact`, queued at `now`.
fn item(key: &str, alarm_id: u64, contact: &str, now: DateTime<Utc>) -> OutboxItem {
    let mut facts = Facts::default();
    facts.set("check", "web");
    OutboxItem {
        key: key.into(),
        alarm_id,
        contact: contact.into(),
        notifier: "mail".into(),
        to: format!("{contact}@example.org"),
        subject: format!("PROBLEM web for {contact}"),
        body: "web is down".into(),
        facts,
        created: now,
        next_attempt: now,
        attempts: 0,
        status: DeliveryStatus::Pending,
        last_error: None,
    }
}

fn run(key: &str, alarm_id: u64, started: DateTime<Utc>) -> ActionRun {
    ActionRun {
        key: key.into(),
        alarm_id,
        action: "restart-service".into(),
        argv: vec!["systemctl".into(), "restart".into(), "nginx".into()],
        started,
        duration: Duration::from_millis(1500),
        exit_code: Some(0),
        timed_out: false,
        output: "restarted\n".into(),
        error: None,
    }
}

fn audit_entry(when: DateTime<Utc>, alarm_id: Option<u64>, check: Option<&str>) -> AuditEntry {
    AuditEntry {
        at: when,
        who: "ops-token".into(),
        source: "127.0.0.1:40000".into(),
        action: format!("POST /api/v1/alarms/{}/ack", alarm_id.unwrap_or(0)),
        target: format!("alarm {}", alarm_id.unwrap_or(0)),
        alarm_id,
        check: check.map(str::to_string),
        result: "200 acknowledged".into(),
        detail: serde_json::json!({"comment": "on it"}),
    }
}

fn push(a: &mut Alarm, secs: i64, kind: EventKind) {
    a.history.push(AlarmEvent { at: at(secs), kind });
}

/// All events after `after`, read in pages of 2 (exercising the paging).
async fn all_events_after(store: &Store, mut after: i64) -> Vec<EventRow> {
    let mut all = Vec::new();
    loop {
        let page = store.events_after(after, 2).await.expect("events");
        assert!(page.len() <= 2);
        let Some(last) = page.last() else {
            return all;
        };
        after = last.id;
        all.extend(page);
    }
}

fn kinds(events: &[EventRow]) -> Vec<(FeedKind, String)> {
    events
        .iter()
        .map(|e| {
            let sub = match e.kind {
                FeedKind::Alarm => e.detail["event"].as_str().unwrap_or("?").to_string(),
                FeedKind::Notification => e.detail["change"].as_str().unwrap_or("?").to_string(),
                FeedKind::StateChange => e.detail["state"].as_str().unwrap_or("?").to_string(),
                FeedKind::Action => e.detail["action"].as_str().unwrap_or("?").to_string(),
                FeedKind::Audit => e.detail["who"].as_str().unwrap_or("?").to_string(),
            };
            (e.kind, sub)
        })
        .collect()
}

// --- the event feed ----------------------------------------------------------

both!(every_record_writes_its_event);
/// Each trigger: state change, alarm events (opened, escalated,
/// acknowledged, resolved), notification queued / retry / failed / sent,
/// action run, audit entry; ids grow; details carry what a client shows.
async fn every_record_writes_its_event(env: Env) {
    let store = env.open().await;
    assert_eq!(store.latest_event_id().await.expect("latest"), 0);
    assert!(store.events_after(0, 10).await.expect("none").is_empty());

    let mut st = CheckState::new();
    let ok = result("db", &mut st, State::Ok, at(-60));
    let crit = result("db", &mut st, State::Critical, at(0));
    store
        .write_results(&[ok, crit.clone()])
        .await
        .expect("write");

    let mut a = alarm(5, "db", at(1));
    store.save_alarm(&a).await.expect("open");
    store
        .save_alarm(&a)
        .await
        .expect("save unchanged: no event");
    push(
        &mut a,
        120,
        EventKind::Escalated {
            rule: "page".into(),
            level: 1,
        },
    );
    push(
        &mut a,
        130,
        EventKind::Acknowledged {
            by: "alice".into(),
            comment: "on it".into(),
            expires: None,
            sticky: true,
        },
    );
    a.ack = Some(Ack {
        by: "alice".into(),
        comment: "on it".into(),
        at: at(130),
        expires: None,
        sticky: true,
    });
    store.save_alarm(&a).await.expect("escalate and ack");

    let retry = item("5:page:0:alice:mail", 5, "alice", at(2));
    let given_up = item("5:page:0:bob:mail", 5, "bob", at(3));
    assert!(store.enqueue(&retry).await.expect("enqueue"));
    assert!(!store.enqueue(&retry).await.expect("again: no event"));
    assert!(store.enqueue(&given_up).await.expect("enqueue"));
    store
        .mark_failed(&retry.key, 1, "smtp: 451", Some(at(60)))
        .await
        .expect("retry");
    store
        .mark_failed(&given_up.key, 5, "smtp: 550 no such user", None)
        .await
        .expect("give up");
    store.mark_sent(&retry.key, at(61)).await.expect("sent");
    store
        .mark_sent(&retry.key, at(62))
        .await
        .expect("sent again: no event");
    store
        .save_action_run(&run("5:page:0", 5, at(4)))
        .await
        .expect("action");
    let audit_id = store
        .record_audit(&audit_entry(at(140), Some(5), None))
        .await
        .expect("audit");

    push(
        &mut a,
        600,
        EventKind::Resolved {
            output: "db is OK".into(),
        },
    );
    a.resolved = Some(at(600));
    a.state = State::Ok;
    store.save_alarm(&a).await.expect("resolve");

    let events = all_events_after(&store, 0).await;
    let s = |x: &str| x.to_string();
    assert_eq!(
        kinds(&events),
        vec![
            (FeedKind::StateChange, s("CRITICAL")),
            (FeedKind::Alarm, s("opened")),
            (FeedKind::Alarm, s("escalated")),
            (FeedKind::Alarm, s("acknowledged")),
            (FeedKind::Notification, s("queued")),
            (FeedKind::Notification, s("queued")),
            (FeedKind::Notification, s("retry")),
            (FeedKind::Notification, s("failed")),
            (FeedKind::Notification, s("sent")),
            (FeedKind::Action, s("restart-service")),
            (FeedKind::Audit, s("ops-token")),
            (FeedKind::Alarm, s("resolved")),
        ]
    );
    assert!(
        events.windows(2).all(|w| w[0].id < w[1].id),
        "ids grow: {:?}",
        events.iter().map(|e| e.id).collect::<Vec<_>>()
    );
    let last = events.last().expect("events").id;
    assert_eq!(store.latest_event_id().await.expect("latest"), last);
    assert!(store.events_after(last, 10).await.expect("none").is_empty());
    assert_eq!(
        store.events_after(events[9].id, 10).await.expect("tail"),
        events[10..].to_vec(),
        "reading after an id gives exactly what came after it"
    );

    // What each kind carries.
    let sc = &events[0];
    assert_eq!(sc.at, at(0));
    assert_eq!(sc.check.as_deref(), Some("db"));
    assert_eq!(sc.host.as_deref(), Some(LOCAL_HOST));
    assert_eq!(sc.alarm_id, None);
    assert_eq!(sc.detail["previous_state"], "OK");
    assert_eq!(sc.detail["previous_state_type"], "HARD");
    assert_eq!(sc.detail["state_type"], "SOFT");
    assert_eq!(sc.detail["attempt"], 1);
    assert_eq!(sc.detail["change"], crit.change_name());
    assert_eq!(sc.detail["flapping"], false);
    assert_eq!(sc.detail["output"], crit.output.output);

    let opened = &events[1];
    assert_eq!((opened.at, opened.alarm_id), (at(1), Some(5)));
    assert_eq!(opened.check.as_deref(), Some("db"));
    assert_eq!(opened.host.as_deref(), Some("web1"));
    assert_eq!(opened.detail["entry"]["output"], "db is down");
    assert_eq!(opened.detail["summary"], "db is down");
    assert_eq!(opened.detail["opened_at"], json_ts(at(1)));
    assert_eq!(events[2].detail["entry"]["level"], 1);
    assert_eq!(events[3].detail["entry"]["by"], "alice");
    assert_eq!(events[3].detail["acknowledged_by"], "alice");

    let queued = &events[4];
    assert_eq!((queued.at, queued.alarm_id), (at(2), Some(5)));
    assert_eq!(queued.check.as_deref(), Some("db"));
    assert_eq!(queued.detail["contact"], "alice");
    assert_eq!(queued.detail["channel"], "mail");
    assert_eq!(queued.detail["subject"], "PROBLEM web for alice");
    assert_eq!(queued.detail["status"], "pending");
    assert_eq!(queued.detail["next_attempt_at"], json_ts(at(2)));
    let retried = &events[6];
    assert_eq!(retried.detail["attempts"], 1);
    assert_eq!(retried.detail["last_error"], "smtp: 451");
    assert_eq!(retried.detail["status"], "pending");
    assert_eq!(retried.detail["next_attempt_at"], json_ts(at(60)));
    let failed = &events[7];
    assert_eq!(failed.detail["contact"], "bob");
    assert_eq!(failed.detail["status"], "failed");
    assert_eq!(failed.detail["attempts"], 5);
    assert_eq!(failed.detail["last_error"], "smtp: 550 no such user");
    let sent = &events[8];
    assert_eq!(sent.at, at(61));
    assert_eq!(sent.detail["status"], "sent");
    assert_eq!(sent.detail["sent_at"], json_ts(at(61)));
    assert_eq!(sent.detail["last_error"], serde_json::Value::Null);

    let action = &events[9];
    assert_eq!((action.at, action.alarm_id), (at(4), Some(5)));
    assert_eq!(action.detail["action_key"], "5:page:0");
    assert_eq!(
        action.detail["argv"],
        serde_json::json!(["systemctl", "restart", "nginx"])
    );
    assert_eq!(action.detail["exit_status"], 0);
    assert_eq!(action.detail["duration_ms"].as_f64(), Some(1500.0));
    assert_eq!(action.detail["timed_out"], false);
    assert_eq!(action.detail["output"], "restarted\n");
    assert_eq!(action.detail["output_truncated"], false);

    let audit = &events[10];
    assert_eq!((audit.at, audit.alarm_id), (at(140), Some(5)));
    assert_eq!(audit.check.as_deref(), Some("db"), "the alarm's check");
    assert_eq!(audit.detail["audit_id"], audit_id);
    assert_eq!(audit.detail["action"], "POST /api/v1/alarms/5/ack");
    assert_eq!(audit.detail["result"], "200 acknowledged");
    assert_eq!(audit.detail["detail"]["comment"], "on it");

    let resolved = &events[11];
    assert_eq!(resolved.detail["state"], "OK");
    assert_eq!(resolved.detail["resolved_at"], json_ts(at(600)));

    // The feed as the read side gives it, and as JSON.
    let page = query::events(&store, 0, 3).await.expect("query");
    assert_eq!(page, events[..3].to_vec());
    let v = serde_json::to_value(&events[0]).expect("json");
    assert_eq!(v["kind"], "state_change");
    assert_eq!(v["check"], "db");
    assert_eq!(query::latest_event_id(&store).await.expect("latest"), last);
}

both!(an_action_output_is_cut_in_the_feed_but_not_in_the_timeline);
async fn an_action_output_is_cut_in_the_feed_but_not_in_the_timeline(env: Env) {
    let store = env.open().await;
    store
        .save_alarm(&alarm(1, "web", at(0)))
        .await
        .expect("alarm");
    let mut long = run("1:page:0", 1, at(1));
    long.output = "x".repeat(5000);
    store.save_action_run(&long).await.expect("run");
    let events = store.events_after(0, 10).await.expect("events");
    let action = events.last().expect("action event");
    assert_eq!(action.kind, FeedKind::Action);
    assert_eq!(action.detail["output"].as_str().map(str::len), Some(4000));
    assert_eq!(action.detail["output_truncated"], true);
    let timeline = store
        .alarm_timeline(1)
        .await
        .expect("timeline")
        .expect("alarm");
    let full = timeline.entries.iter().find_map(|e| match e {
        TimelineEntry::Action(a) => Some(a.output.len()),
        _ => None,
    });
    assert_eq!(full, Some(5000));
}

// --- audit and idempotency ---------------------------------------------------

both!(audit_round_trips_and_filters);
async fn audit_round_trips_and_filters(env: Env) {
    let store = env.open().await;
    let mut ids = Vec::new();
    for (i, (alarm_id, check)) in [
        (Some(1), None),
        (None, Some("web")),
        (Some(2), Some("db")),
        (Some(1), Some("web")),
    ]
    .into_iter()
    .enumerate()
    {
        let entry = audit_entry(at(i as i64), alarm_id, check);
        ids.push(store.record_audit(&entry).await.expect("record"));
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let all = store.audit(&AuditFilter::default()).await.expect("all");
    assert_eq!(
        all.iter().map(|r| r.id).rev().collect::<Vec<_>>(),
        ids,
        "newest first"
    );
    assert_eq!(
        all[3].entry,
        audit_entry(at(0), Some(1), None),
        "round trip"
    );
    let ids_of = |rows: Vec<laxmon::store::AuditRow>| rows.iter().map(|r| r.id).collect::<Vec<_>>();
    let of_alarm_1 = AuditFilter {
        alarm_id: Some(1),
        ..AuditFilter::default()
    };
    assert_eq!(
        ids_of(store.audit(&of_alarm_1).await.expect("alarm 1")),
        vec![ids[3], ids[0]]
    );
    let of_web = AuditFilter {
        check: Some("web".into()),
        ..AuditFilter::default()
    };
    assert_eq!(
        ids_of(store.audit(&of_web).await.expect("web")),
        vec![ids[3], ids[1]]
    );
    let page = AuditFilter {
        before_id: Some(ids[3]),
        limit: 2,
        ..AuditFilter::default()
    };
    assert_eq!(
        ids_of(query::audit(&store, &page).await.expect("page")),
        vec![ids[2], ids[1]]
    );
    let both_filters = AuditFilter {
        alarm_id: Some(1),
        check: Some("web".into()),
        ..AuditFilter::default()
    };
    assert_eq!(
        ids_of(store.audit(&both_filters).await.expect("both")),
        vec![ids[3]]
    );
}

both!(idempotency_keys_are_insert_if_absent);
async fn idempotency_keys_are_insert_if_absent(env: Env) {
    let store = env.open().await;
    assert_eq!(store.idempotency_get("ops", "k1").await.expect("get"), None);
    assert!(store
        .idempotency_put("ops", "k1", "h1", 201, r#"{"id":1}"#)
        .await
        .expect("put"));
    assert!(
        !store
            .idempotency_put("ops", "k1", "h2", 500, "other")
            .await
            .expect("second put"),
        "the first answer stays"
    );
    let got = store
        .idempotency_get("ops", "k1")
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(
        (got.request_hash.as_str(), got.status, got.body.as_str()),
        ("h1", 201, r#"{"id":1}"#)
    );
    assert!(
        store
            .idempotency_put("other-token", "k1", "h3", 200, "")
            .await
            .expect("another scope"),
        "keys are per scope"
    );

    // Two stores (two connections) racing for the same keys: exactly one wins each.
    let other = env.open().await;
    for n in 0..20 {
        let key = format!("race-{n}");
        let (a, b) = tokio::join!(
            store.idempotency_put("ops", &key, "ha", 200, "from a"),
            other.idempotency_put("ops", &key, "hb", 200, "from b"),
        );
        let (a, b) = (a.expect("put a"), b.expect("put b"));
        assert!(
            a ^ b,
            "{key}: exactly one of two racing puts wins ({a}, {b})"
        );
        let stored = store
            .idempotency_get("ops", &key)
            .await
            .expect("get")
            .expect("stored");
        assert_eq!(stored.body, if a { "from a" } else { "from b" });
    }
}

// --- retention ---------------------------------------------------------------

both!(retention_removes_old_events_audit_and_idempotency_keys);
async fn retention_removes_old_events_audit_and_idempotency_keys(env: Env) {
    let store = env.open().await;
    let now = Utc::now();
    let ancient = now - ChronoDuration::days(500);
    let mut st = CheckState::new();
    store
        .write_results(&[
            result(
                "old",
                &mut st,
                State::Ok,
                ancient - ChronoDuration::seconds(1),
            ),
            result("old", &mut st, State::Critical, ancient),
        ])
        .await
        .expect("old state change");
    store
        .record_audit(&audit_entry(ancient, None, Some("old")))
        .await
        .expect("old audit");
    store
        .record_audit(&audit_entry(now, None, Some("new")))
        .await
        .expect("new audit");
    let mut st = CheckState::new();
    store
        .write_results(&[
            result("new", &mut st, State::Ok, now - ChronoDuration::seconds(2)),
            result(
                "new",
                &mut st,
                State::Critical,
                now - ChronoDuration::seconds(1),
            ),
        ])
        .await
        .expect("new state change");
    assert!(store
        .idempotency_put("ops", "k", "h", 200, "{}")
        .await
        .expect("put"));
    let before = store.events_after(0, 100).await.expect("events");
    assert_eq!(before.len(), 4);

    let report = store.retention_at(now).await.expect("retention");
    assert_eq!(
        (report.feed_events, report.audit, report.idempotency_keys),
        (2, 1, 0)
    );
    let after = store.events_after(0, 100).await.expect("events");
    assert_eq!(
        after,
        before[2..].to_vec(),
        "the new events stay, ids unchanged"
    );
    assert_eq!(
        store
            .audit(&AuditFilter::default())
            .await
            .expect("audit")
            .len(),
        1
    );
    assert!(store
        .idempotency_get("ops", "k")
        .await
        .expect("get")
        .is_some());

    // A day and more later the key is gone; the feed goes on above the old ids.
    let report = store
        .retention_at(now + ChronoDuration::hours(25))
        .await
        .expect("retention");
    assert_eq!(report.idempotency_keys, 1);
    assert!(store
        .idempotency_get("ops", "k")
        .await
        .expect("get")
        .is_none());
    let latest = store.latest_event_id().await.expect("latest");
    store
        .record_audit(&audit_entry(now, None, None))
        .await
        .expect("audit");
    let next = store.events_after(latest, 10).await.expect("next");
    assert_eq!(next.len(), 1);
    assert!(next[0].id > latest);
}

// --- alarm timeline and pages ------------------------------------------------

both!(alarm_timeline_tells_the_whole_story_in_order);
async fn alarm_timeline_tells_the_whole_story_in_order(env: Env) {
    let store = env.open().await;
    // The check's history: an earlier SOFT blip, the problem, a change
    // while open, the recovery, and a new problem after it.
    let mut st = CheckState::new();
    let script = [
        (-2000, State::Critical),
        (-1900, State::Ok),
        (-600, State::Ok),
        (-300, State::Critical),
        (-240, State::Critical),
        (-180, State::Critical),
        (60, State::Warning),
        (600, State::Ok),
        (1000, State::Critical),
    ];
    let records: Vec<ResultRecord> = script
        .iter()
        .map(|(t, s)| result("web", &mut st, *s, at(*t)))
        .collect();
    store.write_results(&records).await.expect("results");
    let mut other = CheckState::new();
    store
        .write_results(&[
            result("db", &mut other, State::Ok, at(-10)),
            result("db", &mut other, State::Critical, at(0)),
        ])
        .await
        .expect("another check");

    let mut a = alarm(1, "web", at(-170));
    push(
        &mut a,
        -170,
        EventKind::Notified {
            rule: "page".into(),
            contact: "alice".into(),
            notifier: "mail".into(),
            kind: NotificationType::Problem,
            level: 0,
        },
    );
    store.save_alarm(&a).await.expect("open");
    let note = item("1:page:0:alice:mail", 1, "alice", at(-170));
    store.enqueue(&note).await.expect("enqueue");
    store.mark_sent(&note.key, at(-160)).await.expect("sent");
    store
        .save_action_run(&run("1:page:0", 1, at(-165)))
        .await
        .expect("action");
    push(
        &mut a,
        0,
        EventKind::Escalated {
            rule: "page".into(),
            level: 1,
        },
    );
    store.save_alarm(&a).await.expect("escalate");
    store
        .record_audit(&audit_entry(at(20), Some(1), None))
        .await
        .expect("audit");
    store
        .record_audit(&audit_entry(at(21), Some(2), None))
        .await
        .expect("audit of another alarm");
    push(
        &mut a,
        30,
        EventKind::Acknowledged {
            by: "alice".into(),
            comment: "on it".into(),
            expires: None,
            sticky: true,
        },
    );
    push(
        &mut a,
        61,
        EventKind::StateChanged {
            from: State::Critical,
            to: State::Warning,
            output: "web is slow".into(),
        },
    );
    push(
        &mut a,
        605,
        EventKind::Resolved {
            output: "web is OK".into(),
        },
    );
    a.resolved = Some(at(605));
    a.state = State::Ok;
    store.save_alarm(&a).await.expect("resolve");
    store
        .save_alarm(&alarm(2, "db", at(1)))
        .await
        .expect("another alarm");

    let timeline = query::alarm_timeline(&store, 1)
        .await
        .expect("timeline")
        .expect("alarm 1");
    assert_eq!(timeline.alarm.id, 1);
    assert_eq!(timeline.alarm.resolved, Some(at(605)));
    assert!(!timeline.state_changes_truncated);
    let story: Vec<(i64, String)> = timeline
        .entries
        .iter()
        .map(|e| {
            let what = match e {
                TimelineEntry::Alarm(x) => format!("alarm {}", x.event),
                TimelineEntry::StateChange(x) => format!(
                    "change {} {} -> {} {}",
                    x.previous_state, x.previous_state_type, x.state, x.state_type
                ),
                TimelineEntry::Notification(x) => {
                    format!("notification {} {} {}", x.contact, x.channel, x.status)
                }
                TimelineEntry::Action(x) => format!("action {} {:?}", x.action, x.exit_status),
                TimelineEntry::Audit(x) => format!("audit {}", x.entry.action),
            };
            (e.at().timestamp() - at(0).timestamp(), what)
        })
        .collect();
    let s = |t: i64, w: &str| (t, w.to_string());
    assert_eq!(
        story,
        vec![
            s(-300, "change OK HARD -> CRITICAL SOFT"),
            s(-180, "change CRITICAL SOFT -> CRITICAL HARD"),
            s(-170, "alarm opened"),
            s(-170, "alarm notified"),
            s(-170, "notification alice mail sent"),
            s(-165, "action restart-service Some(0)"),
            s(0, "alarm escalated"),
            s(20, "audit POST /api/v1/alarms/1/ack"),
            s(30, "alarm acknowledged"),
            s(60, "change CRITICAL HARD -> WARNING HARD"),
            s(61, "alarm state_changed"),
            s(600, "change WARNING HARD -> OK HARD"),
            s(605, "alarm resolved"),
        ]
    );
    let note_row = timeline.entries.iter().find_map(|e| match e {
        TimelineEntry::Notification(n) => Some(n.clone()),
        _ => None,
    });
    let note_row = note_row.expect("notification");
    assert_eq!(note_row.sent, Some(at(-160)));
    assert_eq!(note_row.attempts, 0);
    assert_eq!(note_row.subject.as_deref(), Some("PROBLEM web for alice"));
    assert_eq!(note_row.key, "1:page:0:alice:mail");
    let action = timeline.entries.iter().find_map(|e| match e {
        TimelineEntry::Action(a) => Some(a.clone()),
        _ => None,
    });
    let action = action.expect("action");
    assert_eq!(action.argv, vec!["systemctl", "restart", "nginx"]);
    assert_eq!(action.output, "restarted\n");
    assert_eq!(action.duration_ms, 1500.0);

    let v = serde_json::to_value(&timeline).expect("json");
    assert_eq!(v["alarm"]["id"], 1);
    assert_eq!(v["entries"][0]["kind"], "state_change");
    assert_eq!(v["entries"][2]["kind"], "alarm");
    assert_eq!(v["entries"][2]["event"], "opened");
    assert_eq!(v["entries"][7]["kind"], "audit");
    assert_eq!(v["entries"][7]["who"], "ops-token");

    // An alarm still open lists the state changes up to now.
    let open = store
        .alarm_timeline(2)
        .await
        .expect("timeline")
        .expect("alarm 2");
    let changes: Vec<i64> = open
        .entries
        .iter()
        .filter_map(|e| match e {
            TimelineEntry::StateChange(c) => Some(c.at.timestamp() - at(0).timestamp()),
            _ => None,
        })
        .collect();
    assert_eq!(changes, vec![0]);
    assert!(store.alarm_timeline(99).await.expect("unknown").is_none());
}

both!(alarms_page_by_cursor);
async fn alarms_page_by_cursor(env: Env) {
    let store = env.open().await;
    for id in 1..=7u64 {
        let mut a = alarm(id, &format!("c{id}"), at(id as i64 * 10));
        if id % 2 == 0 {
            a.resolved = Some(at(id as i64 * 10 + 5));
        }
        store.save_alarm(&a).await.expect("save");
    }
    let ids = |rows: Vec<laxmon::store::AlarmRow>| rows.iter().map(|r| r.id).collect::<Vec<u64>>();
    assert_eq!(
        ids(store.list_alarms_page(false, None, 3).await.expect("p1")),
        vec![7, 6, 5]
    );
    assert_eq!(
        ids(store.list_alarms_page(false, Some(5), 3).await.expect("p2")),
        vec![4, 3, 2]
    );
    assert_eq!(
        ids(store.list_alarms_page(false, Some(2), 3).await.expect("p3")),
        vec![1]
    );
    assert_eq!(
        ids(query::alarms_page(&store, true, None, 2)
            .await
            .expect("open p1")),
        vec![7, 5]
    );
    assert_eq!(
        ids(query::alarms_page(&store, true, Some(5), 10)
            .await
            .expect("open p2")),
        vec![3, 1]
    );
    assert_eq!(
        ids(query::alarms(&store, false).await.expect("the old listing")),
        vec![7, 6, 5, 4, 3, 2, 1]
    );
}

// --- history series ----------------------------------------------------------

/// Result `i` of the known series: every 30 s from `at(0)`; run time
/// `i % 12 + 1` ms; `time` = i s; `size` = 2i B on even results only;
/// bucket 3 holds a WARNING and a CRITICAL, bucket 5 an UNKNOWN, bucket 7
/// a WARNING.
fn series_record(st: &mut CheckState, i: i64) -> ResultRecord {
    let state = match i {
        40 => State::Warning,
        41 => State::Critical,
        65 => State::Unknown,
        90 => State::Warning,
        _ => State::Ok,
    };
    let mut r = result("web", st, state, at(i * 30));
    r.duration_ms = (i % 12 + 1) as f64;
    let datum = |label: &str, value: f64, uom: &str| PerfDatum {
        label: label.into(),
        value,
        uom: uom.into(),
        warn: None,
        crit: None,
        min: None,
        max: None,
    };
    r.output.perfdata = vec![datum("time", i as f64, "s")];
    if i % 2 == 0 {
        r.output.perfdata.push(datum("size", (2 * i) as f64, "B"));
    }
    r
}

both!(history_series_buckets_a_known_data_set);
async fn history_series_buckets_a_known_data_set(env: Env) {
    let store = env.open().await;
    let mut st = CheckState::new();
    let mut records: Vec<ResultRecord> = (0..120).map(|i| series_record(&mut st, i)).collect();
    // Outside the range: one just before, one at its (exclusive) end, and another check.
    records.insert(
        0,
        result("web", &mut CheckState::new(), State::Critical, at(-1)),
    );
    records.push(result("web", &mut st, State::Critical, at(3600)));
    let mut other = CheckState::new();
    records.push(result("db", &mut other, State::Critical, at(100)));
    store.write_results(&records).await.expect("write");

    let series = query::history_series(&store, "web", at(0), at(3600), 10)
        .await
        .expect("series");
    assert_eq!((series.from, series.to), (at(0), at(3600)));
    assert_eq!(series.bucket_ms, 360_000.0);
    assert_eq!(series.buckets.len(), 10);
    for (b, bucket) in series.buckets.iter().enumerate() {
        let b = b as i64;
        assert_eq!(bucket.start, at(b * 360), "bucket {b}");
        assert_eq!(bucket.end, at(b * 360 + 360), "bucket {b}");
        assert_eq!(bucket.count, 12, "bucket {b}");
        let worst = match b {
            3 => State::Critical,
            5 => State::Unknown,
            7 => State::Warning,
            _ => State::Ok,
        };
        assert_eq!(bucket.worst_state, worst, "bucket {b}");
        assert_eq!(
            (
                bucket.duration_ms.min,
                bucket.duration_ms.avg,
                bucket.duration_ms.max
            ),
            (1.0, 6.5, 12.0),
            "bucket {b}"
        );
        let labels: Vec<(&str, &str, u64, f64, f64, f64)> = bucket
            .perfdata
            .iter()
            .map(|p| {
                (
                    p.label.as_str(),
                    p.uom.as_str(),
                    p.count,
                    p.values.min,
                    p.values.avg,
                    p.values.max,
                )
            })
            .collect();
        let f = |x: i64| x as f64;
        assert_eq!(
            labels,
            vec![
                ("size", "B", 6, f(24 * b), f(24 * b) + 10.0, f(24 * b + 20)),
                ("time", "s", 12, f(12 * b), f(12 * b) + 5.5, f(12 * b + 11)),
            ],
            "bucket {b}"
        );
    }
    let changes: Vec<(i64, &str)> = series
        .state_changes
        .iter()
        .map(|c| (c.at.timestamp() - at(0).timestamp(), c.state.as_str()))
        .collect();
    assert_eq!(
        changes,
        vec![
            (1200, "WARNING"),
            (1230, "CRITICAL"),
            (1260, "OK"),
            (1950, "UNKNOWN"),
            (1980, "OK"),
            (2700, "WARNING"),
            (2730, "OK"),
        ],
        "the state changes in the range (the one at -1 s and the one at its end are outside)"
    );
    assert!(!series.state_changes_truncated);
    let v = serde_json::to_value(&series).expect("json");
    assert_eq!(v["buckets"][3]["worst_state"], "CRITICAL");
    assert_eq!(v["buckets"][0]["perfdata"][1]["label"], "time");

    // Fewer points than asked when the range is short; a range with no
    // results has no buckets; an empty range neither.
    let fine = store
        .history_series("web", at(0), at(60), 1000)
        .await
        .expect("fine");
    assert_eq!(fine.buckets.iter().map(|b| b.count).sum::<u64>(), 2);
    assert_eq!(fine.buckets.len(), 2);
    let none = store
        .history_series("web", at(-7200), at(-3600), 10)
        .await
        .expect("none");
    assert!(none.buckets.is_empty() && none.state_changes.is_empty());
    let empty = store
        .history_series("web", at(10), at(10), 10)
        .await
        .expect("empty");
    assert!(empty.buckets.is_empty());
}

both!(history_series_of_a_day_and_a_week_of_a_one_minute_check);
/// 1,440 results (a day) and 10,080 (a week) of a one-minute check with two
/// perfdata labels; prints how long the series takes (no timing asserted).
async fn history_series_of_a_day_and_a_week_of_a_one_minute_check(env: Env) {
    let store = env.open().await;
    let start = at(0);
    let mut st = CheckState::new();
    let records: Vec<ResultRecord> = (0..10_080i64)
        .map(|i| {
            let state = if i % 500 == 7 {
                State::Critical
            } else {
                State::Ok
            };
            let mut r = result("minute", &mut st, state, start + ChronoDuration::minutes(i));
            r.duration_ms = (i % 100) as f64;
            r.output.perfdata = vec![
                PerfDatum {
                    label: "rta".into(),
                    value: (i % 10) as f64,
                    uom: "ms".into(),
                    warn: Some("100".into()),
                    crit: Some("200".into()),
                    min: Some(0.0),
                    max: None,
                },
                PerfDatum {
                    label: "pl".into(),
                    value: 0.0,
                    uom: "%".into(),
                    warn: Some("20".into()),
                    crit: Some("60".into()),
                    min: Some(0.0),
                    max: Some(100.0),
                },
            ];
            r
        })
        .collect();
    for chunk in records.chunks(2000) {
        store.write_results(chunk).await.expect("write");
    }
    let backend = if env.is_postgres() {
        "postgres"
    } else {
        "sqlite"
    };
    for (what, days, points, per_bucket) in [("24 h", 1, 288, 5), ("7 days", 7, 168, 60)] {
        let to = start + ChronoDuration::days(days);
        let mut times = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let series = store
                .history_series("minute", start, to, points)
                .await
                .expect("series");
            times.push(t.elapsed());
            assert_eq!(series.buckets.len(), points as usize, "{what}");
            assert!(
                series.buckets.iter().all(|b| b.count == per_bucket),
                "{what}: {per_bucket} results per bucket"
            );
            assert!(series.buckets.iter().all(|b| b.perfdata.len() == 2));
        }
        times.sort();
        eprintln!(
            "history_series {backend} {what} ({} rows, {points} buckets): median {:?}, min {:?}, max {:?}",
            days * 1440,
            times[2],
            times[0],
            times[4]
        );
    }
}

// --- migration 4 over a version-3 database -------------------------------------

/// Data written the way versions 1-3 of the schema hold it.
const V3_DATA: &str = "
INSERT INTO state_changes (result_id, check_name, host, at, previous_state, previous_state_type,
    state, state_type, attempt, change, flapping, unreachable, output)
VALUES ('01900000-0000-7000-8000-000000000001', 'web', 'web1', '2024-05-01T11:59:00.000000Z',
    'OK', 'HARD', 'CRITICAL', 'HARD', 1, 'hard_problem', false, false, 'web is down');
INSERT INTO alarms (id, check_name, host, opened_at, state, severity, summary)
VALUES (3, 'web', 'web1', '2024-05-01T12:00:00.000000Z', 'CRITICAL', 'CRITICAL', 'web is down');
INSERT INTO alarm_events (alarm_id, at, kind, detail)
VALUES (3, '2024-05-01T12:00:00.000000Z', 'opened',
    '{\"at\":\"2024-05-01T12:00:00Z\",\"event\":\"opened\",\"state\":\"CRITICAL\",\"output\":\"web is down\"}');
INSERT INTO notifications (alarm_id, contact, channel, idempotency_key, payload, status, attempts,
    next_attempt_at, created_at)
VALUES (3, 'alice', 'mail', '3:page:0:alice:mail', '{\"subject\":\"PROBLEM web\"}', 'pending', 0,
    '2024-05-01T12:00:01.000000Z', '2024-05-01T12:00:01.000000Z');
";

both!(migration_4_applies_over_a_version_3_database_with_data);
async fn migration_4_applies_over_a_version_3_database_with_data(env: Env) {
    match &env.cfg.backend {
        Storage::Sqlite(path) => {
            std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
            let conn = rusqlite::Connection::open(path).expect("open");
            conn.execute_batch(
                "CREATE TABLE schema_migrations (
                    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
            )
            .expect("schema_migrations");
            for m in &SQLITE[..3] {
                conn.execute_batch(m.sql).expect("old migration");
                conn.execute(
                    "INSERT INTO schema_migrations VALUES (?1, ?2, '2024-01-01T00:00:00.000000Z')",
                    rusqlite::params![m.version, m.name],
                )
                .expect("record");
            }
            conn.execute_batch(
                "INSERT INTO installation VALUES (1, '0123456789abcdef0123456789abcdef', '2024-01-01T00:00:00.000000Z')",
            )
            .expect("installation");
            conn.execute_batch(V3_DATA).expect("data");
        }
        Storage::Postgres(url) => {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .expect("connect");
            tokio::spawn(conn);
            client
                .batch_execute(
                    "CREATE TABLE schema_migrations (
                        version bigint PRIMARY KEY, name text NOT NULL,
                        applied_at timestamptz NOT NULL DEFAULT now())",
                )
                .await
                .expect("schema_migrations");
            for m in &POSTGRES[..3] {
                client.batch_execute(m.sql).await.expect("old migration");
                client
                    .execute(
                        "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                        &[&m.version, &m.name],
                    )
                    .await
                    .expect("record");
            }
            client
                .batch_execute(
                    "INSERT INTO installation (id) VALUES ('0123456789abcdef0123456789abcdef')",
                )
                .await
                .expect("installation");
            client.batch_execute(V3_DATA).await.expect("data");
        }
    }
    let store = laxmon::store::Store::open_lazy(&env.cfg).expect("lazy");
    assert_eq!(store.schema_version().await.expect("version"), 3);
    // 4 (this one) and every later one.
    assert_eq!(store.migrate().await.expect("migrate"), vec![4, 5]);
    assert_eq!(store.schema_version().await.expect("version"), 5);
    assert_eq!(
        store.installation_id().await.expect("installation id"),
        "0123456789abcdef0123456789abcdef",
        "kept"
    );
    assert_eq!(
        store.latest_event_id().await.expect("latest"),
        0,
        "old data makes no events"
    );
    let timeline = store
        .alarm_timeline(3)
        .await
        .expect("timeline")
        .expect("alarm 3");
    let kinds: Vec<&str> = timeline
        .entries
        .iter()
        .map(|e| match e {
            TimelineEntry::Alarm(_) => "alarm",
            TimelineEntry::StateChange(_) => "state_change",
            TimelineEntry::Notification(_) => "notification",
            TimelineEntry::Action(_) => "action",
            TimelineEntry::Audit(_) => "audit",
        })
        .collect();
    assert_eq!(kinds, vec!["state_change", "alarm", "notification"]);

    // New records of old rows make events.
    store
        .mark_sent("3:page:0:alice:mail", at(5))
        .await
        .expect("sent");
    let events = store.events_after(0, 10).await.expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, FeedKind::Notification);
    assert_eq!(events[0].check.as_deref(), Some("web"));
    assert_eq!(events[0].detail["subject"], "PROBLEM web");
    assert_eq!(events[0].detail["change"], "sent");
}
