//! `laxmon run`: the scheduler runs checks on time, SOFT problems become
//! HARD after max_attempts, and SIGTERM stops the daemon cleanly with the
//! runs in flight finished and logged.

mod support;

use std::time::{Duration, Instant};
use support::bin::write_file;
use support::daemon::{field, Daemon};

#[test]
fn soft_then_hard_then_recovery_and_clean_stop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display().to_string();
    std::fs::write(dir.path().join("code"), "0").expect("write code");
    let plugin = write_file(
        dir.path(),
        "flip.sh",
        "#!/bin/sh\ncode=$(cat \"$(dirname \"$0\")/code\")\necho \"FLIP state $code\"\nexit $code\n",
    );
    std::fs::set_permissions(&plugin, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let cfg = write_file(
        dir.path(),
        "laxmon.yaml",
        &format!(
            "storage: sqlite:{d}/db\nchecks:\n  - name: flip\n    kind: plugin\n    command: [\"{plugin}\"]\n    interval: 300ms\n    retry_interval: 200ms\n    max_attempts: 3\n"
        ),
    );
    let mut daemon = Daemon::start(&cfg);
    daemon.wait_for("first OK result", |v| {
        field(v, "check") == "flip" && field(v, "state") == "OK"
    });
    std::fs::write(dir.path().join("code"), "2").expect("write code");
    let soft = daemon.wait_for("SOFT CRITICAL", |v| {
        field(v, "state_type") == "SOFT" && field(v, "state") == "CRITICAL"
    });
    assert_eq!(soft["attempt"], 1, "{soft}");
    let hard = daemon.wait_for("HARD CRITICAL", |v| {
        field(v, "message") == "HARD state change"
    });
    assert_eq!(field(&hard, "state"), "CRITICAL");
    assert_eq!(hard["attempt"], 3, "{hard}");
    assert_eq!(field(&hard, "output"), "FLIP state 2");
    std::fs::write(dir.path().join("code"), "0").expect("write code");
    let rec = daemon.wait_for("recovery", |v| {
        field(v, "message") == "state change" && field(v, "state") == "OK"
    });
    assert_eq!(field(&rec, "previous"), "CRITICAL");
    assert_eq!(daemon.terminate(), 0);
    let mut saw_stop = false;
    while let Ok(v) = daemon.lines.recv_timeout(Duration::from_secs(5)) {
        saw_stop |= field(&v, "message") == "laxmon stopped";
    }
    assert!(saw_stop, "no 'laxmon stopped' line");
}

#[test]
fn sigterm_waits_for_runs_in_flight_and_leaves_nothing_running() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display().to_string();
    // A plugin that takes 1.5 s and leaves a pid file while it runs.
    let plugin = write_file(
        dir.path(),
        "slow.sh",
        "#!/bin/sh\necho $$ > \"$(dirname \"$0\")/pid\"\nsleep 1.5\necho 'SLOW OK - done'\n",
    );
    std::fs::set_permissions(&plugin, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let cfg = write_file(
        dir.path(),
        "laxmon.yaml",
        &format!("storage: sqlite:{d}/db\nchecks:\n  - name: slow\n    kind: plugin\n    command: [\"{plugin}\"]\n    interval: 1m\n    timeout: 10s\n"),
    );
    let mut daemon = Daemon::start(&cfg);
    daemon.wait_for("started", |v| field(v, "message") == "laxmon started");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !dir.path().join("pid").exists() {
        assert!(Instant::now() < deadline, "plugin never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid: i32 = std::fs::read_to_string(dir.path().join("pid"))
        .expect("pid")
        .trim()
        .parse()
        .expect("pid number");
    assert_eq!(daemon.terminate(), 0);
    let mut result_logged = false;
    while let Ok(v) = daemon.lines.recv_timeout(Duration::from_secs(5)) {
        result_logged |= field(&v, "check") == "slow" && field(&v, "state") == "OK";
    }
    assert!(
        result_logged,
        "the run in flight at SIGTERM was not finished and logged"
    );
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "plugin {pid} still running"
    );
}

#[test]
fn checks_of_an_unreachable_host_raise_no_problem_of_their_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display().to_string();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let cfg = write_file(
        dir.path(),
        "laxmon.yaml",
        &format!(
            "storage: sqlite:{d}/db\nhosts:\n  - name: h\n    address: 127.0.0.1\n    host_check: h-alive\nchecks:\n  - name: h-alive\n    kind: port\n    host: h\n    port: {closed}\n    max_attempts: 1\n    interval: 400ms\n  - name: h-service\n    kind: port\n    host: h\n    port: {closed}\n    max_attempts: 1\n    interval: 400ms\n"
        ),
    );
    let mut daemon = Daemon::start(&cfg);
    let hard = daemon.wait_for("host check HARD", |v| {
        field(v, "message") == "HARD state change"
    });
    assert_eq!(field(&hard, "check"), "h-alive", "{hard}");
    let first = daemon.wait_for("service result", |v| {
        field(v, "check") == "h-service" && field(v, "state") == "CRITICAL"
    });
    assert_eq!(first["unreachable"], true, "{first}");
    // Several more results of the service: none becomes a HARD problem.
    let mut results = 0;
    while results < 4 {
        let v = daemon.wait_for("more service results", |v| field(v, "check") == "h-service");
        assert_ne!(field(&v, "message"), "HARD state change", "{v}");
        assert_eq!(v["unreachable"], true, "{v}");
        results += 1;
    }
    assert_eq!(daemon.terminate(), 0);
}

#[test]
fn sighup_reloads_a_valid_config_and_ignores_a_broken_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display().to_string();
    let check = |name: &str| {
        format!("  - name: {name}\n    kind: plugin\n    command: [/usr/lib/nagios/plugins/check_dummy, \"0\", \"{name} fine\"]\n    interval: 300ms\n")
    };
    let cfg = write_file(
        dir.path(),
        "laxmon.yaml",
        &format!("storage: sqlite:{d}/db\nchecks:\n{}", check("one")),
    );
    let mut daemon = Daemon::start(&cfg);
    daemon.wait_for("a result of one", |v| field(v, "check") == "one");
    let hup = |daemon: &Daemon| {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(daemon.pid() as i32, libc::SIGHUP);
        }
    };
    // A broken config is reported and ignored: "one" keeps running.
    write_file(
        dir.path(),
        "laxmon.yaml",
        &format!(
            "storage: sqlite:{d}/db\nchecks:\n{}    colour: red\n",
            check("one")
        ),
    );
    hup(&daemon);
    let err = daemon.wait_for("the reload error", |v| {
        field(v, "message") == "configuration not reloaded"
    });
    assert!(
        field(&err, "error").contains("unknown key \"colour\""),
        "{err}"
    );
    daemon.wait_for("one still runs", |v| field(v, "check") == "one");
    // A valid config is taken over: "two" starts.
    write_file(
        dir.path(),
        "laxmon.yaml",
        &format!(
            "storage: sqlite:{d}/db\nchecks:\n{}{}",
            check("one"),
            check("two")
        ),
    );
    hup(&daemon);
    daemon.wait_for("reloading", |v| {
        field(v, "message") == "SIGHUP: reloading the configuration"
    });
    daemon.wait_for("a result of two", |v| field(v, "check") == "two");
    assert_eq!(daemon.terminate(), 0);
}
