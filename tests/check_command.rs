//! `laxmon check`: runs checks once, prints them as a table or as the JSON
//! `docs/checks.md` pins, and exits with the worst state.

mod support;

use serde_json::Value;
use support::bin::{laxmon, stderr, stdout, write_file};

const DUMMY: &str = "/usr/lib/nagios/plugins/check_dummy";

fn config(dir: &std::path::Path, checks: &str) -> String {
    write_file(
        dir,
        "laxmon.yaml",
        &format!("storage: sqlite:{}/db\nchecks:\n{checks}", dir.display()),
    )
}

fn dummy(name: &str, code: u8, text: &str) -> String {
    format!(
        "  - name: {name}\n    kind: plugin\n    command: [\"{DUMMY}\", \"{code}\", \"{text}\"]\n"
    )
}

#[test]
fn json_output_matches_the_spec() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = write_file(
        dir.path(),
        "plugin.sh",
        "#!/bin/sh\necho 'DISK WARNING - free space: / 3326 MB (8% inode=95%);| /=36223MB;37000;38500;0;39556'\necho 'second line'\necho \"third | 'a b'=1s;~:2;@3:4\"\nexit 1\n",
    );
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let cfg = config(
        dir.path(),
        &format!("  - name: san1-disk\n    kind: plugin\n    command: [\"{script}\"]\n"),
    );
    let out = laxmon(&["check", "--config", &cfg, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).expect("stdout is one JSON array");
    let items = v.as_array().expect("array");
    assert_eq!(items.len(), 1);
    let r = &items[0];
    let keys: Vec<&str> = r
        .as_object()
        .expect("object")
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(keys.len(), 7, "{keys:?}");
    assert_eq!(r["name"], "san1-disk");
    assert_eq!(r["kind"], "plugin");
    assert_eq!(r["state"], "WARNING");
    assert_eq!(
        r["output"],
        "DISK WARNING - free space: / 3326 MB (8% inode=95%);"
    );
    assert_eq!(r["long_output"], "second line\nthird");
    let p = r["perfdata"].as_array().expect("perfdata array");
    assert_eq!(p.len(), 2);
    assert_eq!(p[0]["label"], "/");
    assert_eq!(p[0]["value"].as_f64(), Some(36223.0));
    assert_eq!(p[0]["uom"], "MB");
    assert_eq!(p[0]["warn"], "37000");
    assert_eq!(p[0]["crit"], "38500");
    assert_eq!(p[0]["min"].as_f64(), Some(0.0));
    assert_eq!(p[0]["max"].as_f64(), Some(39556.0));
    assert_eq!(p[1]["label"], "a b");
    assert_eq!(p[1]["uom"], "s");
    assert_eq!(p[1]["warn"], "~:2");
    assert_eq!(p[1]["crit"], "@3:4");
    assert!(p[1]["min"].is_null() && p[1]["max"].is_null());
    assert!(r["duration_ms"].as_f64().expect("duration") >= 0.0);
}

#[test]
fn exit_status_is_the_worst_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(
        dir.path(),
        &[
            dummy("ok", 0, "fine"),
            dummy("warn", 1, "hmm"),
            dummy("unknown", 3, "what"),
            dummy("crit", 2, "bad"),
        ]
        .concat(),
    );
    let cases: [(&[&str], i32); 5] = [
        (&["ok"], 0),
        (&["ok", "warn"], 1),
        (&["ok", "unknown"], 3),
        (&["warn", "unknown", "crit"], 2),
        (&[], 2),
    ];
    for (names, code) in cases {
        let mut args = vec!["check", "--config", &cfg];
        args.extend_from_slice(names);
        let out = laxmon(&args);
        assert_eq!(out.status.code(), Some(code), "{names:?}: {}", stdout(&out));
    }
}

#[test]
fn table_output_names_every_check_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(
        dir.path(),
        &[dummy("first", 0, "one"), dummy("second", 2, "two")].concat(),
    );
    let out = laxmon(&["check", "--config", &cfg]);
    assert_eq!(out.status.code(), Some(2));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with("first ") && lines[0].contains("OK") && lines[0].ends_with("OK: one"),
        "{text}"
    );
    assert!(
        lines[1].starts_with("second")
            && lines[1].contains("CRITICAL")
            && lines[1].ends_with("CRITICAL: two"),
        "{text}"
    );
}

#[test]
fn unknown_check_name_is_a_usage_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), &dummy("ok", 0, "fine"));
    let out = laxmon(&["check", "--config", &cfg, "nope"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(
        stderr(&out).contains("no check named \"nope\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_config_exits_64_with_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write_file(
        dir.path(),
        "laxmon.yaml",
        "checks:\n  - name: x\n    kind: plugin\n    command: x\n    interval: 5\n",
    );
    let out = laxmon(&["check", "--config", &cfg, "--json"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(stdout(&out).is_empty());
    assert!(
        stderr(&out).starts_with(&format!("{cfg}:5:15: interval")),
        "{}",
        stderr(&out)
    );
}

#[test]
fn checks_run_concurrently() {
    // Three plugins that each wait for the other two to have started: only a
    // concurrent run lets all three see the others' marker files.
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display();
    let mut checks = String::new();
    for i in 0..3 {
        let script = format!(
            "touch {d}/started.{i}; for n in $(seq 1 100); do [ $(ls {d}/started.* | wc -l) -eq 3 ] && {{ echo OK - saw all; exit 0; }}; sleep 0.1; done; echo CRITICAL - alone; exit 2"
        );
        checks.push_str(&format!("  - name: c{i}\n    kind: plugin\n    command: [\"sh\", \"-c\", {script:?}]\n    timeout: 30s\n"));
    }
    let cfg = config(dir.path(), &checks);
    let out = laxmon(&["check", "--config", &cfg]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn external_processes_respect_max_processes() {
    // Six plugins, at most two at once: each records how many run beside it.
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display();
    let mut checks = String::new();
    for i in 0..6 {
        let script = format!(
            "touch {d}/run.{i}; ls {d}/run.* | wc -l >> {d}/seen; sleep 0.3; rm {d}/run.{i}; echo OK - {i}"
        );
        checks.push_str(&format!(
            "  - name: c{i}\n    kind: plugin\n    command: [\"sh\", \"-c\", {script:?}]\n"
        ));
    }
    let cfg = write_file(
        dir.path(),
        "laxmon.yaml",
        &format!("storage: sqlite:{d}/db\nengine:\n  max_processes: 2\nchecks:\n{checks}"),
    );
    let out = laxmon(&["check", "--config", &cfg]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let seen = std::fs::read_to_string(dir.path().join("seen")).expect("seen");
    let counts: Vec<u32> = seen
        .lines()
        .map(|l| l.trim().parse().expect("count"))
        .collect();
    assert_eq!(counts.len(), 6);
    assert!(
        counts.iter().all(|&c| c <= 2),
        "more than 2 at once: {counts:?}"
    );
}

#[test]
fn remote_checks_run_over_ssh_as_configured() {
    let sshd = support::sshd::Sshd::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display();
    let opts: Vec<String> = sshd
        .client_args()
        .iter()
        .map(|a| format!("{a:?}"))
        .collect();
    let init = write_file(
        dir.path(),
        "initscript",
        "#!/bin/sh\n[ \"$1\" = status ] && exit 3\nexit 4\n",
    );
    std::fs::set_permissions(&init, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let cfg = write_file(
        dir.path(),
        "laxmon.yaml",
        &format!(
            "storage: sqlite:{d}/db\nengine:\n  ssh:\n    control_dir: {control}\n    options: [{opts}]\nhosts:\n  - name: cs1\n    address: 127.0.0.1\n    ssh: root@127.0.0.1\nchecks:\n  - name: remote-dummy\n    kind: plugin\n    host: cs1\n    run_on: host\n    command: \"{DUMMY} 1 'remote $HOSTNAME$ $HOSTADDRESS$'\"\n  - name: remote-init\n    kind: init\n    host: cs1\n    script: {init}\n",
            control = sshd.control_dir().display(),
            opts = opts.join(", ")
        ),
    );
    let out = laxmon(&["check", "--config", &cfg, "--json"]);
    let v: Value =
        serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)));
    assert_eq!(v[0]["state"], "WARNING", "{v}");
    assert_eq!(v[0]["output"], "WARNING: remote cs1 127.0.0.1", "{v}");
    assert_eq!(v[1]["state"], "CRITICAL", "{v}");
    assert_eq!(out.status.code(), Some(2));
    assert!(sshd.logins() >= 1, "{}", sshd.log());
}

#[test]
fn host_bound_plugin_runs_on_the_admin_server_with_the_hosts_macros() {
    // No sshd at all: a plugin check bound to a host runs here, as in Nagios,
    // with $HOSTNAME$ and $HOSTADDRESS$ from its host entry.
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write_file(
        dir.path(),
        "laxmon.yaml",
        &format!(
            "storage: sqlite:{d}/db\nhosts:\n  - name: web1\n    address: 127.0.0.9\n    ssh: root@127.0.0.1\nchecks:\n  - name: for-web1\n    kind: plugin\n    host: web1\n    command: \"{DUMMY} 0 'for $HOSTNAME$ at $HOSTADDRESS$'\"\n  - name: gone\n    kind: plugin\n    host: web1\n    command: [/nonexistent/check_thing, -H, $HOSTADDRESS$]\n",
            d = dir.path().display()
        ),
    );
    let out = laxmon(&["check", "--config", &cfg, "--json"]);
    let v: Value =
        serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)));
    assert_eq!(v[0]["state"], "OK", "{v}");
    assert_eq!(v[0]["output"], "OK: for web1 at 127.0.0.9", "{v}");
    // A program that is not on the admin server says where it ran and how to move it.
    assert_eq!(v[1]["state"], "UNKNOWN", "{v}");
    let msg = v[1]["output"].as_str().unwrap_or_default();
    assert!(msg.contains("/nonexistent/check_thing"), "{msg}");
    assert!(msg.contains("run_on: host"), "{msg}");
    assert!(msg.contains("web1"), "{msg}");
}

#[test]
fn children_do_not_inherit_laxmons_own_variables() {
    let dir = tempfile::tempdir().expect("tempdir");
    let probe = write_file(
        dir.path(),
        "probe.sh",
        "#!/bin/sh\nfor v in NOTIFY_SOCKET WATCHDOG_PID WATCHDOG_USEC LISTEN_PID LISTEN_FDS LISTEN_FDNAMES LAXMON_TEST_DB_PASSWORD; do\n  eval \"[ -n \\\"\\${$v+x}\\\" ]\" && { echo \"LEAKED $v\"; exit 2; }\ndone\necho \"CLEAN keep=$LAXMON_TEST_KEEP\"\n",
    );
    std::fs::set_permissions(&probe, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let cfg = write_file(
        dir.path(),
        "laxmon.yaml",
        &format!(
            "storage:\n  url: postgres://laxmon@127.0.0.1:1/x\n  password_env: LAXMON_TEST_DB_PASSWORD\nchecks:\n  - name: probe\n    kind: plugin\n    command: [{probe}]\n"
        ),
    );
    let out = std::process::Command::new(support::bin::laxmon_path())
        .args(["check", "--config", &cfg, "--json"])
        .env("NOTIFY_SOCKET", "/run/systemd/notify")
        .env("WATCHDOG_PID", "1")
        .env("WATCHDOG_USEC", "30000000")
        .env("LISTEN_PID", "1")
        .env("LISTEN_FDS", "1")
        .env("LISTEN_FDNAMES", "http")
        .env("LAXMON_TEST_DB_PASSWORD", "secret")
        .env("LAXMON_TEST_KEEP", "yes")
        .output()
        .expect("run laxmon");
    let v: Value =
        serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)));
    // Everything else is inherited as before.
    assert_eq!(v[0]["output"], "CLEAN keep=yes", "{v}");
    assert_eq!(v[0]["state"], "OK", "{v}");
}
