//! Alarm rules through the real daemon: a rule's `after` delays its
//! actions as it delays its notifications (also across a restart), and an
//! alarm in a maintenance window says so in `laxmon alarms --json`, on
//! SQLite and on PostgreSQL.
//!
//! Checks are plugins whose exit code the test sets through files; the
//! action is the shipped `log-alarm` script, whose log shows what ran.
//! Nothing here measures time: the tests wait (bounded) for what the daemon
//! logs or stores, and compare the times the daemon recorded.

mod support;

use chrono::{DateTime, Utc};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};
use support::bin::{laxmon, stderr, stdout, write_file};
use support::daemon::{field, Daemon};

/// A scratch directory with a plugin per check: `NAME.code` holds the exit
/// code; a `NAME.once` file makes the next run fail once (and is removed).
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
            "#!/bin/sh\nd=$(dirname \"$0\")\nif [ -e \"$d/$1.once\" ]; then rm -f \"$d/$1.once\"; echo \"$1 fails once\"; exit 2; fi\ncode=$(cat \"$d/$1.code\" 2>/dev/null || echo 0)\necho \"$1 state $code\"\nexit $code\n",
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

    fn fail_once(&self, check: &str) {
        std::fs::write(self.path().join(format!("{check}.once")), "").expect("once");
    }

    /// Writes the config: checks `blip` and `down`, rule `delayed` (`after`
    /// unless empty, a webhook page to `ops`, the `log-alarm` action), and
    /// `extra` YAML.
    fn config(&self, storage: &str, after: &str, hook_port: u16, extra: &str) -> String {
        let after = match after {
            "" => String::new(),
            a => format!("    after: {a}\n"),
        };
        let d = self.path().display();
        let scripts = concat!(env!("CARGO_MANIFEST_DIR"), "/alarm-scripts");
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
                "storage: {{url: \"{storage}\", spool_dir: {d}/spool}}\nchecks:\n{}{}alarms:\n  scripts_dir: {scripts}\n  group_window: 0s\nnotifiers:\n  - {{name: hook, kind: webhook, url: \"http://127.0.0.1:{hook_port}/hook\"}}\ncontacts:\n  - {{name: ops, via: [hook]}}\nrules:\n  - name: delayed\n    match: {{checks: [blip, down]}}\n{after}    notify: [ops]\n    actions:\n      - {{script: log-alarm, args: [\"{d}/actions.log\"], timeout: 10s}}\n{extra}",
                check("blip"),
                check("down"),
            ),
        )
    }

    /// The lines `log-alarm` wrote, one per action run.
    fn actions(&self) -> Vec<String> {
        std::fs::read_to_string(self.path().join("actions.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
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

fn json_out(args: &[&str]) -> Value {
    let out = laxmon(args);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    serde_json::from_str(&stdout(&out))
        .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", stdout(&out)))
}

/// Every alarm `laxmon alarms --json` lists.
fn alarms(cfg: &str) -> Vec<Value> {
    json_out(&["alarms", "--config", cfg, "--json"])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The one alarm of `check`.
fn alarm_of(cfg: &str, check: &str) -> Value {
    let all = alarms(cfg);
    let mine: Vec<&Value> = all.iter().filter(|a| a["check"] == check).collect();
    assert_eq!(mine.len(), 1, "one alarm of {check}: {all:?}");
    mine[0].clone()
}

/// The entries of an alarm's history of kind `event`.
fn events(alarm: &Value, event: &str) -> Vec<Value> {
    alarm["detail"]["history"]
        .as_array()
        .map(|h| h.iter().filter(|e| e["event"] == event).cloned().collect())
        .unwrap_or_default()
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a time: {v}"))
}

fn is_hard_problem(v: &Value, check: &str) -> bool {
    field(v, "message") == "HARD state change" && field(v, "check") == check
}

fn is_result(v: &Value, check: &str, state: &str) -> bool {
    field(v, "check") == check && field(v, "state") == state
}

/// `blip` fails once and recovers before `after: 3s`: its action never
/// runs. `down` stays CRITICAL: its action runs once, `after` past the
/// alarm's opening, before the page.
#[test]
fn an_action_waits_for_after_and_does_not_run_if_the_problem_recovers() {
    let scene = Scene::new();
    let (port, hook) = support::http::serve_in_thread(200, "ok");
    let storage = format!("sqlite:{}/laxmon.db", scene.path().display());
    let cfg = scene.config(&storage, "3s", port, "");
    let mut daemon = Daemon::start(&cfg);
    daemon.wait_for("blip OK", |v| is_result(v, "blip", "OK"));
    daemon.wait_for("down OK", |v| is_result(v, "down", "OK"));

    scene.fail_once("blip");
    daemon.wait_for("blip HARD CRITICAL", |v| is_hard_problem(v, "blip"));
    daemon.wait_for("blip recovered", |v| is_result(v, "blip", "OK"));
    eventually("blip's alarm resolved", || {
        alarms(&cfg)
            .iter()
            .any(|a| a["check"] == "blip" && a["resolved"].is_string())
    });

    // `down` opens after blip's alarm resolved, so once its action ran,
    // blip's `after` has long passed too.
    scene.set("down", 2);
    daemon.wait_for("down HARD CRITICAL", |v| is_hard_problem(v, "down"));
    let ran = daemon.wait_for("down's action", |v| {
        field(v, "message") == "running action" && field(v, "check") == "down"
    });
    assert_eq!(ran["rule"], "delayed", "{ran}");
    eventually("down's page", || !hook.all().is_empty());
    assert_eq!(daemon.terminate(), 0);

    let ran = scene.actions();
    assert_eq!(ran.len(), 1, "exactly one action ran: {ran:?}");
    assert!(ran[0].contains("check=down"), "{ran:?}");

    let blip = alarm_of(&cfg, "blip");
    assert!(blip["resolved"].is_string(), "{blip}");
    assert!(events(&blip, "action_requested").is_empty(), "{blip}");
    assert!(events(&blip, "notified").is_empty(), "{blip}");

    let down = alarm_of(&cfg, "down");
    assert!(down["resolved"].is_null(), "{down}");
    let requested = events(&down, "action_requested");
    assert_eq!(requested.len(), 1, "{down}");
    let opened = time(&down["opened"]);
    let acted = time(&requested[0]["at"]);
    assert!(
        acted - opened >= chrono::Duration::seconds(3),
        "the action waited for `after`: opened {opened}, acted {acted}"
    );
    let notified = events(&down, "notified");
    assert_eq!(notified.len(), 1, "{down}");
    assert!(time(&notified[0]["at"]) >= acted, "{down}");
}

/// An action still waiting for `after` when the daemon stops runs after the
/// restart, once; a third start does not run it again. The first daemon's
/// rule waits an hour, so the action is certainly pending when it stops;
/// the restarted one's waits 3 s, counted from the alarm's opening.
#[test]
fn a_pending_action_survives_a_restart_and_runs_once() {
    let scene = Scene::new();
    let (port, _hook) = support::http::serve_in_thread(200, "ok");
    let storage = format!("sqlite:{}/laxmon.db", scene.path().display());
    scene.set("down", 2);
    let cfg = scene.config(&storage, "1h", port, "");
    let mut daemon = Daemon::start(&cfg);
    daemon.wait_for("down HARD CRITICAL", |v| is_hard_problem(v, "down"));
    assert_eq!(daemon.terminate(), 0);
    drop(daemon);
    let down = alarm_of(&cfg, "down");
    assert!(events(&down, "action_requested").is_empty(), "{down}");
    assert!(scene.actions().is_empty());

    let cfg = scene.config(&storage, "3s", port, "");
    let mut daemon = Daemon::start(&cfg);
    let ran = daemon.wait_for("the pending action", |v| {
        field(v, "message") == "running action" && field(v, "check") == "down"
    });
    assert_eq!(ran["alarm"], down["id"], "{ran}");
    assert_eq!(daemon.terminate(), 0);
    drop(daemon);
    assert_eq!(scene.actions().len(), 1, "{:?}", scene.actions());

    // A third start sees the action as done; its results pass the alarm
    // stage (a clean stop handles every result and waits for actions).
    let mut daemon = Daemon::start(&cfg);
    for _ in 0..3 {
        daemon.wait_for("a result", |v| is_result(v, "down", "CRITICAL"));
    }
    assert_eq!(daemon.terminate(), 0);
    let ran = scene.actions();
    assert_eq!(ran.len(), 1, "the action ran once: {ran:?}");
    let down = alarm_of(&cfg, "down");
    let requested = events(&down, "action_requested");
    assert_eq!(requested.len(), 1, "{down}");
    assert!(
        time(&requested[0]["at"]) - time(&down["opened"]) >= chrono::Duration::seconds(3),
        "{down}"
    );
}

/// `down` fails inside a maintenance window: its alarm is listed as
/// suppressed by that window, its history records the held-back action and
/// page, and nothing ran or was sent.
fn an_alarm_in_maintenance_says_so(storage: &str, scene: &Scene) {
    let (port, hook) = support::http::serve_in_thread(200, "ok");
    scene.set("down", 2);
    // Opens every minute for an hour: always open.
    let maintenance = "maintenance:\n  - {name: patchday, match: {checks: [down]}, windows: [{cron: \"* * * * *\", duration: 1h}]}\n";
    let cfg = scene.config(storage, "", port, maintenance);
    let mut daemon = Daemon::start(&cfg);
    daemon.wait_for("down HARD CRITICAL", |v| is_hard_problem(v, "down"));
    let held = |a: &Value, event: &str| {
        events(a, event)
            .iter()
            .any(|e| e["why"]["reason"] == "maintenance" && e["why"]["window"] == "patchday")
    };
    eventually("the alarm with its held-back action and page", || {
        alarms(&cfg)
            .iter()
            .any(|a| held(a, "action_suppressed") && held(a, "notification_suppressed"))
    });
    // Let a few more results through the alarm stage.
    for _ in 0..3 {
        daemon.wait_for("a result", |v| is_result(v, "down", "CRITICAL"));
    }
    assert_eq!(daemon.terminate(), 0);

    let open = json_out(&["alarms", "--config", &cfg, "--open", "--json"]);
    let open = open.as_array().expect("array");
    assert_eq!(open.len(), 1, "{open:?}");
    let a = &open[0];
    let window = serde_json::json!({"reason": "maintenance", "window": "patchday"});
    assert_eq!(a["suppressed"], true, "{a}");
    assert_eq!(a["suppressed_by"], window, "{a}");
    assert_eq!(a["detail"]["suppressed_by"], window, "{a}");
    assert!(events(a, "action_requested").is_empty(), "{a}");
    assert!(events(a, "notified").is_empty(), "{a}");
    let table = laxmon(&["alarms", "--config", &cfg, "--open"]);
    assert!(
        stdout(&table).contains("[maintenance patchday]"),
        "{}",
        stdout(&table)
    );
    assert!(scene.actions().is_empty(), "{:?}", scene.actions());
    assert!(hook.all().is_empty(), "nothing is sent in maintenance");
}

#[test]
fn an_alarm_in_maintenance_says_so_on_sqlite() {
    let scene = Scene::new();
    let storage = format!("sqlite:{}/laxmon.db", scene.path().display());
    an_alarm_in_maintenance_says_so(&storage, &scene);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alarm_in_maintenance_says_so_on_postgres() {
    let db = support::pg::fresh_database().await;
    let scene = Scene::new();
    let url = db.url.clone();
    tokio::task::spawn_blocking(move || an_alarm_in_maintenance_says_so(&url, &scene))
        .await
        .expect("scenario");
}
