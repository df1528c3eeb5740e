//! The whole pipeline through the real daemon: results into the store,
//! alarms with notifications and actions, `laxmon alarms`, `laxmon ack`,
//! `laxmon history`, and a restart that resumes states — on SQLite and on
//! PostgreSQL.

mod support;

use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};
use support::bin::{laxmon, stderr, stdout, write_file};
use support::daemon::{field, Daemon};
use support::http::{serve_in_thread, Recorder};

/// A scratch directory with a flipping plugin (exit code read from a file).
struct Scene {
    dir: tempfile::TempDir,
    plugin: String,
}

impl Scene {
    fn new() -> Scene {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("code"), "0").expect("code");
        let plugin = write_file(
            dir.path(),
            "flip.sh",
            "#!/bin/sh\ncode=$(cat \"$(dirname \"$0\")/code\")\necho \"FLIP state $code|value=$code;1;2;0;3\"\nexit $code\n",
        );
        std::fs::set_permissions(&plugin, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        Scene { dir, plugin }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn set(&self, code: u8) {
        std::fs::write(self.path().join("code"), code.to_string()).expect("code");
    }

    /// A config with the flip check, a webhook contact and a logging action.
    fn config(&self, storage: &str, hook_port: u16, extra_check: &str) -> String {
        let d = self.path().display();
        let scripts = concat!(env!("CARGO_MANIFEST_DIR"), "/alarm-scripts");
        write_file(
            self.path(),
            "laxmon.yaml",
            &format!(
                "storage: {{url: \"{storage}\", spool_dir: {d}/spool}}\nchecks:\n  - name: flip\n    kind: plugin\n    command: [\"{plugin}\"]\n    interval: 300ms\n    retry_interval: 200ms\n    max_attempts: 3\n{extra_check}alarms:\n  scripts_dir: {scripts}\n  group_window: 0s\n  delivery: {{first_retry: 1s, max_retry: 2s, give_up_after: 1h}}\nnotifiers:\n  - {{name: hook, kind: webhook, url: \"http://127.0.0.1:{hook_port}/hook\"}}\ncontacts:\n  - {{name: ops, via: [hook]}}\nrules:\n  - name: flip-rule\n    match: {{checks: [flip]}}\n    notify: [ops]\n    repeat: 1h\n    actions:\n      - {{script: log-alarm, args: [\"{d}/alarms.log\"], timeout: 10s}}\n",
                plugin = self.plugin
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

/// The notification types the webhook received, in order.
fn hook_types(rec: &Recorder) -> Vec<String> {
    rec.all()
        .iter()
        .filter_map(|r| serde_json::from_str::<Value>(&r.body).ok())
        .map(|v| {
            v["facts"]["notification_type"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

fn json_out(args: &[&str]) -> Value {
    let out = laxmon(args);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    serde_json::from_str(&stdout(&out))
        .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", stdout(&out)))
}

/// Problem -> HARD -> alarm with notification and action; ack through the
/// CLI reaches the daemon; recovery resolves the alarm; results are stored.
fn alarm_lifecycle_through_the_daemon(storage: &str, scene: &Scene) {
    let (port, hook) = serve_in_thread(200, "ok");
    let cfg = scene.config(storage, port, "");
    let mut daemon = Daemon::start(&cfg);
    daemon.wait_for("first OK", |v| {
        field(v, "check") == "flip" && field(v, "state") == "OK"
    });
    scene.set(2);
    daemon.wait_for("HARD CRITICAL", |v| {
        field(v, "message") == "HARD state change"
    });
    eventually("problem notification", || {
        hook_types(&hook).contains(&"PROBLEM".to_string())
    });
    let log = scene.path().join("alarms.log");
    eventually("the action ran", || {
        std::fs::read_to_string(&log).is_ok_and(|s| s.contains("check=flip"))
    });
    let logged = std::fs::read_to_string(&log).expect("alarms.log");
    assert!(logged.contains("state=CRITICAL/HARD attempt=3"), "{logged}");

    let open = json_out(&["alarms", "--config", &cfg, "--open", "--json"]);
    let open = open.as_array().expect("array");
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["check"], "flip");
    let id = open[0]["id"].as_u64().expect("id");

    let out = laxmon(&[
        "ack",
        "--config",
        &cfg,
        &id.to_string(),
        "--comment",
        "on it",
        "--by",
        "alice",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    eventually("acknowledgement notification", || {
        hook_types(&hook).contains(&"ACKNOWLEDGEMENT".to_string())
    });
    let again = laxmon(&["ack", "--config", &cfg, &id.to_string()]);
    assert_ne!(again.status.code(), Some(0), "a second ack must be refused");
    assert!(stderr(&again).contains("alice"), "{}", stderr(&again));

    scene.set(0);
    eventually("recovery notification", || {
        hook_types(&hook).contains(&"RECOVERY".to_string())
    });
    let open = json_out(&["alarms", "--config", &cfg, "--open", "--json"]);
    assert_eq!(open.as_array().map(Vec::len), Some(0), "{open}");
    let all = json_out(&["alarms", "--config", &cfg, "--json"]);
    assert_eq!(all[0]["ack_by"], "alice", "{all}");
    assert!(all[0]["resolved"].is_string(), "{all}");
    assert_eq!(daemon.terminate(), 0);

    // Each notification exactly once.
    let types = hook_types(&hook);
    for t in ["PROBLEM", "ACKNOWLEDGEMENT", "RECOVERY"] {
        assert_eq!(
            types.iter().filter(|x| *x == t).count(),
            1,
            "{t} in {types:?}"
        );
    }
    // Every result is in the store, with planned and actual start and perfdata.
    let history = json_out(&[
        "history", "--config", &cfg, "flip", "--since", "1h", "--json",
    ]);
    let rows = history.as_array().expect("history array");
    assert!(rows.len() >= 6, "{history}");
    let states: Vec<&str> = rows.iter().filter_map(|r| r["state"].as_str()).collect();
    assert!(
        states.contains(&"CRITICAL") && states.contains(&"OK"),
        "{states:?}"
    );
}

#[test]
fn alarm_lifecycle_on_sqlite() {
    let scene = Scene::new();
    let storage = format!("sqlite:{}/laxmon.db", scene.path().display());
    alarm_lifecycle_through_the_daemon(&storage, &scene);
}

#[tokio::test(flavor = "multi_thread")]
async fn alarm_lifecycle_on_postgres() {
    let db = support::pg::fresh_database().await;
    let scene = Scene::new();
    let url = db.url.clone();
    tokio::task::spawn_blocking(move || alarm_lifecycle_through_the_daemon(&url, &scene))
        .await
        .expect("scenario");
}

/// A SOFT attempt survives a restart: the next result continues the count.
#[test]
fn a_restarted_daemon_resumes_soft_attempts() {
    let scene = Scene::new();
    let (port, _hook) = serve_in_thread(200, "ok");
    let storage = format!("sqlite:{}/laxmon.db", scene.path().display());
    // A slow retry interval so that only one attempt happens before the stop.
    let cfg = scene.config(&storage, port, "");
    std::fs::write(
        &cfg,
        std::fs::read_to_string(&cfg).expect("cfg").replace(
            "retry_interval: 200ms\n    max_attempts: 3",
            "retry_interval: 1s\n    max_attempts: 5",
        ),
    )
    .expect("rewrite");
    scene.set(2);
    let mut daemon = Daemon::start(&cfg);
    let first = daemon.wait_for("SOFT attempt 1", |v| {
        field(v, "check") == "flip" && field(v, "state_type") == "SOFT"
    });
    assert_eq!(first["attempt"], 1, "{first}");
    assert_eq!(daemon.terminate(), 0);
    drop(daemon);
    let daemon = Daemon::start(&cfg);
    let next = daemon.wait_for("next result", |v| {
        field(v, "check") == "flip" && field(v, "state") == "CRITICAL"
    });
    assert_eq!(
        next["attempt"], 2,
        "attempt must continue after a restart: {next}"
    );
}

#[test]
fn db_migrate_and_stats_through_the_cli() {
    let scene = Scene::new();
    let (port, _hook) = serve_in_thread(200, "ok");
    let storage = format!("sqlite:{}/laxmon.db", scene.path().display());
    let cfg = scene.config(&storage, port, "");
    let out = laxmon(&["db", "migrate", "--config", &cfg]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let again = laxmon(&["db", "migrate", "--config", &cfg]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert_ne!(
        stdout(&out),
        stdout(&again),
        "the second migrate applies nothing"
    );
    let out = laxmon(&["check", "--config", &cfg]);
    assert_eq!(out.status.code(), Some(0));
    let mut daemon = Daemon::start(&cfg);
    daemon.wait_for("a result", |v| field(v, "check") == "flip");
    assert_eq!(daemon.terminate(), 0);
    let stats = json_out(&["db", "stats", "--config", &cfg, "--json"]);
    let latest = laxmon::store::migrations::SQLITE
        .last()
        .map_or(0, |m| m.version);
    assert_eq!(stats["schema_version"], latest, "{stats}");
    let results = stats["tables"]
        .as_array()
        .and_then(|t| t.iter().find(|r| r["table"] == "results"))
        .and_then(|r| r["rows"].as_i64());
    assert!(results.is_some_and(|n| n >= 1), "{stats}");
    assert!(stats["oldest_result"].is_string(), "{stats}");
}

/// The webhook is down when the alarm opens and the daemon is restarted
/// before it comes back: the notification waits in the outbox and arrives
/// exactly once.
#[test]
fn a_notification_survives_a_restart_and_arrives_once() {
    let scene = Scene::new();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let storage = format!("sqlite:{}/laxmon.db", scene.path().display());
    let cfg = scene.config(&storage, port, "");
    scene.set(2);
    let mut daemon = Daemon::start(&cfg);
    daemon.wait_for("HARD CRITICAL", |v| {
        field(v, "message") == "HARD state change"
    });
    daemon.wait_for("a failed delivery", |v| {
        field(v, "message") == "delivery failed"
    });
    assert_eq!(daemon.terminate(), 0);
    drop(daemon);
    let (_, hook) = support::http::serve_in_thread_on(port, 200, "ok");
    let mut daemon = Daemon::start(&cfg);
    eventually("the problem notification", || {
        hook_types(&hook).contains(&"PROBLEM".to_string())
    });
    // Let a few more delivery rounds and results pass: nothing is sent twice.
    daemon.wait_for("more results", |v| {
        field(v, "check") == "flip" && v["attempt"] == 3
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(daemon.terminate(), 0);
    let problems = hook_types(&hook).iter().filter(|t| *t == "PROBLEM").count();
    assert_eq!(problems, 1, "{:?}", hook_types(&hook));
}

/// One notifier hangs (its server accepts and never answers, 10-minute
/// timeout); the other contact still gets their message: deliveries run
/// side by side, so one slow server holds up nobody else.
#[test]
fn a_hanging_notifier_does_not_hold_up_the_others() {
    let scene = Scene::new();
    let hang = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let hang_port = hang.local_addr().expect("addr").port();
    let (ok_port, ok_hook) = serve_in_thread(200, "ok");
    let d = scene.path().display();
    let cfg = write_file(
        scene.path(),
        "laxmon.yaml",
        &format!(
            "storage: sqlite:{d}/laxmon.db\nchecks:\n  - name: flip\n    kind: plugin\n    command: [\"{plugin}\"]\n    interval: 300ms\n    retry_interval: 200ms\n    max_attempts: 2\nalarms:\n  group_window: 0s\nnotifiers:\n  - {{name: a-hang, kind: webhook, url: \"http://127.0.0.1:{hang_port}/hook\", timeout: 10m}}\n  - {{name: b-ok, kind: webhook, url: \"http://127.0.0.1:{ok_port}/hook\"}}\ncontacts:\n  - {{name: first, via: [a-hang]}}\n  - {{name: second, via: [b-ok]}}\nrules:\n  - {{name: r, match: {{checks: [flip]}}, notify: [first, second]}}\n",
            plugin = scene.plugin
        ),
    );
    scene.set(2);
    let mut daemon = Daemon::start(&cfg);
    daemon.wait_for("HARD CRITICAL", |v| {
        field(v, "message") == "HARD state change"
    });
    // The hanging server has accepted the first contact's request by now or soon;
    // the second contact's message must arrive while that request still hangs.
    eventually("the second contact's notification", || {
        hook_types(&ok_hook).contains(&"PROBLEM".to_string())
    });
    let (_conn, _) = hang.accept().expect("the hanging notifier was called");
    assert_eq!(daemon.terminate(), 0);
}

/// PostgreSQL goes away while the daemon runs: checks go on, results wait in
/// the spool, and when the database is back every result is stored exactly
/// once.
#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_keeps_checking_through_a_database_outage() {
    let cluster = std::sync::Arc::new(support::pg::OwnCluster::start());
    let url = cluster.url();
    let scene = Scene::new();
    let (port, _hook) = serve_in_thread(200, "ok");
    let cfg = scene.config(&url, port, "");
    let c = std::sync::Arc::clone(&cluster);
    let logged = tokio::task::spawn_blocking(move || {
        let mut daemon = Daemon::start(&cfg);
        let mut results = 0usize;
        let mut count = |daemon: &Daemon, n: usize| {
            for _ in 0..n {
                daemon.wait_for("a result", |v| {
                    field(v, "check") == "flip" && !v["state"].is_null()
                });
                results += 1;
            }
        };
        count(&daemon, 3);
        c.stop();
        // The check keeps running while the database is down.
        count(&daemon, 20);
        c.start_server();
        count(&daemon, 5);
        assert_eq!(daemon.terminate(), 0);
        // Every result line the daemon logged after start, drained.
        while let Ok(v) = daemon.lines.try_recv() {
            if field(&v, "check") == "flip" && !v["state"].is_null() {
                results += 1;
            }
        }
        (results, cfg)
    })
    .await
    .expect("daemon scenario");
    let (results, cfg) = logged;
    let history = json_out(&[
        "history", "--config", &cfg, "flip", "--since", "1h", "--json",
    ]);
    let rows = history.as_array().expect("rows");
    assert_eq!(rows.len(), results, "every logged result stored once");
    drop(cluster);
}

/// The alarm opens while PostgreSQL and the webhook are both down: the
/// notification waits in memory, is stored once the database is back, and
/// after a restart (webhook up again) it arrives exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn a_notification_made_while_the_database_is_down_is_not_lost() {
    let cluster = std::sync::Arc::new(support::pg::OwnCluster::start());
    let url = cluster.url();
    let scene = Scene::new();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let cfg = scene.config(&url, port, "");
    let c = std::sync::Arc::clone(&cluster);
    let hook = tokio::task::spawn_blocking(move || {
        let mut daemon = Daemon::start(&cfg);
        // The alarm state restored (it waits while the database is away).
        daemon.wait_for("the alarm stage", |v| {
            field(v, "message") == "alarm stage running"
        });
        daemon.wait_for("first OK", |v| {
            field(v, "check") == "flip" && field(v, "state") == "OK"
        });
        c.stop();
        scene.set(2);
        daemon.wait_for("HARD CRITICAL", |v| {
            field(v, "message") == "HARD state change"
        });
        daemon.wait_for("a failed delivery", |v| {
            field(v, "message") == "delivery failed"
        });
        c.start_server();
        // A few more results: the alarm stage stores what it could not before.
        for _ in 0..5 {
            daemon.wait_for("a result", |v| {
                field(v, "check") == "flip" && !v["state"].is_null()
            });
        }
        assert_eq!(daemon.terminate(), 0);
        drop(daemon);
        let (_, hook) = support::http::serve_in_thread_on(port, 200, "ok");
        let mut daemon = Daemon::start(&cfg);
        eventually("the problem notification after the restart", || {
            hook_types(&hook).contains(&"PROBLEM".to_string())
        });
        for _ in 0..5 {
            daemon.wait_for("more results", |v| {
                field(v, "check") == "flip" && !v["state"].is_null()
            });
        }
        assert_eq!(daemon.terminate(), 0);
        hook
    })
    .await
    .expect("scenario");
    let problems = hook_types(&hook).iter().filter(|t| *t == "PROBLEM").count();
    assert_eq!(problems, 1, "{:?}", hook_types(&hook));
    drop(cluster);
}
