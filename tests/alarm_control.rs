//! Acknowledgements that expire, `laxmon unack` and `laxmon silence`
//! through the real daemon, on SQLite and on PostgreSQL: the CLI writes to
//! the store, the running daemon picks it up, and the pages a webhook
//! receives (and the alarm's stored history) show what happened.
//!
//! Checks are plugins whose exit code the test sets through files; the rule
//! pages at once, and again every minute (the shortest `repeat`), so what
//! resumes after an acknowledgement ends is left to the lifecycle's unit
//! tests (src/alarm/tests.rs), which control time. Nothing here measures
//! time: the tests wait (bounded) for what the daemon logs, stores or
//! sends, and compare the order of the alarm's history.

mod support;

use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};
use support::bin::{laxmon, stderr, stdout, write_file};
use support::daemon::{field, Daemon};
use support::http::Recorder;

/// A scratch directory with a plugin whose exit code per check is in `NAME.code`.
struct Scene {
    dir: tempfile::TempDir,
    plugin: String,
}

impl Scene {
    fn new() -> Scene {
        let dir = tempfile::tempdir().expect("tempdir");
        let plugin = write_file(
            dir.path(),
            "plugin.sh",
            "#!/bin/sh\nd=$(dirname \"$0\")\ncode=$(cat \"$d/$1.code\" 2>/dev/null || echo 0)\necho \"$1 state $code\"\nexit $code\n",
        );
        std::fs::set_permissions(&plugin, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        Scene { dir, plugin }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn set(&self, check: &str, code: u8) {
        std::fs::write(self.path().join(format!("{check}.code")), code.to_string()).expect("code");
    }

    /// Checks `down` and `quiet`; rule `page` pages `ops` through the
    /// webhook on `hook_port`, at once and every minute.
    fn config(&self, storage: &str, hook_port: u16) -> String {
        let d = self.path().display();
        let check = |name: &str| {
            format!(
                "  - {{name: {name}, kind: plugin, command: [\"{}\", {name}], interval: 300ms, max_attempts: 1}}\n",
                self.plugin
            )
        };
        write_file(
            self.path(),
            "laxmon.yaml",
            &format!(
                "storage: {{url: \"{storage}\", spool_dir: {d}/spool}}\nchecks:\n{}{}alarms:\n  group_window: 0s\nnotifiers:\n  - {{name: hook, kind: webhook, url: \"http://127.0.0.1:{hook_port}/hook\"}}\ncontacts:\n  - {{name: ops, via: [hook]}}\nrules:\n  - name: page\n    match: {{checks: [down, quiet]}}\n    repeat: 1m\n    notify: [ops]\n",
                check("down"),
                check("quiet"),
            ),
        )
    }
}

/// Waits (bounded) until `pred` holds.
fn eventually(what: &str, mut pred: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !pred() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs `laxmon ARGS`, asserts exit 0 and returns stdout.
fn ok(args: &[&str]) -> String {
    let out = laxmon(args);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    stdout(&out)
}

fn json_out(args: &[&str]) -> Value {
    let text = ok(args);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}: {text}"))
}

/// The one alarm of `check` as `laxmon alarms --json` shows it.
fn alarm_of(cfg: &str, check: &str) -> Value {
    let all = json_out(&["alarms", "--config", cfg, "--json"]);
    let mine: Vec<&Value> = all
        .as_array()
        .expect("array")
        .iter()
        .filter(|a| a["check"] == check)
        .collect();
    assert_eq!(mine.len(), 1, "one alarm of {check}: {all}");
    mine[0].clone()
}

/// The alarm's stored history, oldest first.
fn history(alarm: &Value) -> Vec<Value> {
    alarm["detail"]["history"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Indexes in the history of events of kind `event` satisfying `pred`.
fn positions(alarm: &Value, event: &str, pred: impl Fn(&Value) -> bool) -> Vec<usize> {
    history(alarm)
        .iter()
        .enumerate()
        .filter(|(_, e)| e["event"] == event && pred(e))
        .map(|(i, _)| i)
        .collect()
}

fn problem_pages(alarm: &Value) -> Vec<usize> {
    positions(alarm, "notified", |e| e["kind"] == "PROBLEM")
}

/// The webhook requests about `check` of notification type `kind`.
fn hook_pages(hook: &Recorder, check: &str, kind: &str) -> usize {
    hook.all()
        .iter()
        .filter_map(|r| serde_json::from_str::<Value>(&r.body).ok())
        .filter(|b| b["facts"]["check"] == check && b["facts"]["notification_type"] == kind)
        .count()
}

fn is_hard_problem(v: &Value, check: &str) -> bool {
    field(v, "message") == "HARD state change" && field(v, "check") == check
}

fn ack_unack_and_silence_through_the_daemon(storage: &str, scene: &Scene) {
    let (port, hook) = support::http::serve_in_thread(200, "ok");
    scene.set("down", 2);
    let cfg = scene.config(storage, port);
    let mut daemon = Daemon::start(&cfg);
    daemon.wait_for("down HARD CRITICAL", |v| is_hard_problem(v, "down"));
    eventually("down is paged", || {
        hook_pages(&hook, "down", "PROBLEM") >= 1
    });
    let id = alarm_of(&cfg, "down")["id"].as_u64().expect("alarm id");
    let id = id.to_string();

    // An acknowledgement that expires: shown at once, applied by the
    // daemon, quiet while it holds, and gone when it expired.
    let line = ok(&[
        "ack",
        "--config",
        &cfg,
        &id,
        "--comment",
        "looking",
        "--expires",
        "3s",
        "--by",
        "alice",
    ]);
    assert!(
        line.contains("acknowledged by alice: looking until"),
        "{line}"
    );
    let shown = alarm_of(&cfg, "down");
    assert_eq!(shown["ack_by"], "alice", "{shown}");
    assert!(shown["ack_expires"].is_string(), "{shown}");
    assert_eq!(shown["ack_sticky"], true, "{shown}");
    eventually("the acknowledgement expired", || {
        !positions(&alarm_of(&cfg, "down"), "unacknowledged", |e| {
            e["why"]["reason"] == "expired" && e["ack_by"] == "alice"
        })
        .is_empty()
    });
    let a = alarm_of(&cfg, "down");
    let acked = positions(&a, "acknowledged", |e| {
        e["by"] == "alice" && e["expires"].is_string()
    });
    assert_eq!(acked.len(), 1, "{a}");
    let ended = positions(&a, "unacknowledged", |_| true)[0];
    assert!(
        !problem_pages(&a)
            .iter()
            .any(|p| (acked[0]..ended).contains(p)),
        "no page while acknowledged: {a}"
    );
    assert!(a["ack_by"].is_null(), "{a}");

    // A sticky acknowledgement, then `laxmon unack`.
    ok(&[
        "ack",
        "--config",
        &cfg,
        &id,
        "--comment",
        "mine",
        "--by",
        "bob",
    ]);
    eventually("the daemon applied bob's acknowledgement", || {
        !positions(&alarm_of(&cfg, "down"), "acknowledged", |e| {
            e["by"] == "bob"
        })
        .is_empty()
    });
    let line = ok(&["unack", "--config", &cfg, &id, "--by", "carol"]);
    assert!(line.contains("removed by carol"), "{line}");
    assert!(alarm_of(&cfg, "down")["ack_by"].is_null(), "shown at once");
    eventually("the daemon removed it", || {
        !positions(&alarm_of(&cfg, "down"), "unacknowledged", |e| {
            e["why"]["reason"] == "removed" && e["why"]["by"] == "carol" && e["ack_by"] == "bob"
        })
        .is_empty()
    });
    let a = alarm_of(&cfg, "down");
    assert!(a["ack_by"].is_null(), "{a}");
    eventually("both acknowledgements were told", || {
        hook_pages(&hook, "down", "ACKNOWLEDGEMENT") == 2
    });
    let again = laxmon(&["unack", "--config", &cfg, &id]);
    assert_eq!(again.status.code(), Some(1), "{}", stdout(&again));
    assert!(
        stderr(&again).contains("not acknowledged"),
        "{}",
        stderr(&again)
    );

    // A silence mutes `quiet`, which fails while it lasts; removing it
    // lets the page out.
    let added = json_out(&[
        "silence",
        "add",
        "--config",
        &cfg,
        "--check",
        "quiet",
        "--duration",
        "1h",
        "--comment",
        "resolver swap",
        "--by",
        "alice",
        "--json",
    ]);
    let silence = added["id"].as_u64().expect("silence id");
    daemon.wait_for("the daemon took up the silence", |v| {
        field(v, "message") == "silences changed"
    });
    scene.set("quiet", 2);
    daemon.wait_for("quiet HARD CRITICAL", |v| is_hard_problem(v, "quiet"));
    eventually("quiet's alarm held back by the silence", || {
        let a = alarm_of(&cfg, "quiet");
        a["suppressed_by"]["reason"] == "silence"
            && a["suppressed_by"]["id"] == silence
            && !positions(&a, "notification_suppressed", |e| {
                e["why"]["reason"] == "silence"
            })
            .is_empty()
    });
    for _ in 0..3 {
        daemon.wait_for("a result of quiet", |v| {
            field(v, "check") == "quiet" && field(v, "state") == "CRITICAL"
        });
    }
    assert_eq!(hook_pages(&hook, "quiet", "PROBLEM"), 0, "silenced");
    let table = ok(&["alarms", "--config", &cfg, "--open"]);
    assert!(
        table.contains(&format!("[silence {silence} by alice]")),
        "{table}"
    );
    let listed = json_out(&["silence", "list", "--config", &cfg, "--json"]);
    assert_eq!(listed[0]["id"], silence, "{listed}");
    assert_eq!(listed[0]["matchers"]["checks"][0], "quiet", "{listed}");
    let line = ok(&["silence", "remove", "--config", &cfg, &silence.to_string()]);
    assert!(line.contains(&format!("silence {silence}")), "{line}");
    eventually("quiet is paged once the silence is gone", || {
        hook_pages(&hook, "quiet", "PROBLEM") >= 1
    });
    assert!(alarm_of(&cfg, "quiet")["suppressed_by"].is_null());
    let listed = json_out(&["silence", "list", "--config", &cfg, "--json"]);
    assert_eq!(listed, serde_json::json!([]), "removed: not current");
    assert_eq!(daemon.terminate(), 0);
}

#[test]
fn ack_unack_and_silence_through_the_daemon_on_sqlite() {
    let scene = Scene::new();
    let storage = format!("sqlite:{}/laxmon.db", scene.path().display());
    ack_unack_and_silence_through_the_daemon(&storage, &scene);
}

#[tokio::test(flavor = "multi_thread")]
async fn ack_unack_and_silence_through_the_daemon_on_postgres() {
    let db = support::pg::fresh_database().await;
    let scene = Scene::new();
    let url = db.url.clone();
    tokio::task::spawn_blocking(move || ack_unack_and_silence_through_the_daemon(&url, &scene))
        .await
        .expect("scenario");
}
