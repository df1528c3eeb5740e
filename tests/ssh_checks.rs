//! Remote plugin and init checks through a real sshd on loopback.
//!
//! Each test starts its own `sshd -D` on 127.0.0.1 with throwaway host and
//! client keys; dropping the fixture stops the ControlMaster (`ssh -O exit`)
//! and sshd.

mod support;

use laxmon::checks::init::{self, InitTarget};
use laxmon::checks::location::Location;
use laxmon::checks::plugin;
use laxmon::checks::{CheckOutput, State};
use laxmon::process::{End, RunOptions};
use laxmon::ssh::{self, SshOptions};
use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;
use support::sshd::Sshd;

const PLUGINS: &str = "/usr/lib/nagios/plugins";

async fn bounded<F: Future>(fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), fut)
        .await
        .expect("test step did not finish within 60 s")
}

fn words(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn script(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path.to_string_lossy().into_owned()
}

#[tokio::test]
async fn remote_plugin_gives_state_and_perfdata_and_reuses_the_master() {
    let sshd = Sshd::start();
    let loc = sshd.location();
    let opts = RunOptions::new(Duration::from_secs(30));

    let argv = words(&[
        &format!("{PLUGINS}/check_dummy"),
        "1",
        "over ssh; it's $(fine) | x=5;1;2",
    ]);
    let exec = bounded(ssh::execute(
        "root@127.0.0.1",
        &sshd.options(),
        &argv,
        &opts,
    ))
    .await
    .expect("ssh runs");
    assert_eq!(exec.end, End::Exited(1));
    // The master went to the background without holding our pipes.
    assert!(!exec.leftovers_killed);
    // ssh's "Permanently added" warning is not passed on.
    assert_eq!(exec.stderr.text(), "");

    let sockets = sshd.control_sockets();
    assert_eq!(sockets.len(), 1, "one ControlMaster socket: {sockets:?}");
    assert!(sshd.control("check"), "master answers");

    let got = bounded(plugin::run_at(&loc, &argv, &opts)).await;
    assert_eq!(got.state, State::Warning);
    // Every remote word arrived intact: no shell expansion on either side.
    assert_eq!(got.output, "WARNING: over ssh; it's $(fine)");
    assert_eq!(got.perfdata.len(), 1);
    assert_eq!(got.perfdata[0].label, "x");
    assert_eq!(got.perfdata[0].value, 5.0);
    assert_eq!(got.perfdata[0].warn.as_deref(), Some("1"));
    assert_eq!(got.perfdata[0].crit.as_deref(), Some("2"));

    for state in ["0", "2", "3"] {
        let got = bounded(plugin::run_at(
            &loc,
            &words(&[&format!("{PLUGINS}/check_dummy"), state, "x"]),
            &opts,
        ))
        .await;
        assert_eq!(got.state.code().to_string(), state);
    }
    // Five runs, one login: the later ones went through the master.
    assert_eq!(sshd.logins(), 1, "{}", sshd.log());
    assert_eq!(sshd.control_sockets(), sockets);

    // The ssh:// form with a port reaches the same server.
    let mut uri_opts = sshd.options();
    uri_opts.extra_args.truncate(uri_opts.extra_args.len() - 2); // drop "-p PORT"
    let uri = Location::Ssh {
        destination: format!("ssh://root@127.0.0.1:{}", sshd.port),
        options: uri_opts,
    };
    let got = bounded(plugin::run_at(
        &uri,
        &words(&[&format!("{PLUGINS}/check_dummy"), "0", "uri"]),
        &opts,
    ))
    .await;
    assert_eq!(got, CheckOutput::new(State::Ok, "OK: uri"));
}

#[tokio::test]
async fn remote_init_scripts_and_missing_programs() {
    let sshd = Sshd::start();
    let loc = sshd.location();
    let opts = RunOptions::new(Duration::from_secs(30));
    let dir = tempfile::tempdir().expect("tempdir");
    let running = script(
        dir.path(),
        "running",
        "[ \"$1\" = status ] && echo 'svc is running' && exit 0\nexit 99",
    );
    let stopped = script(dir.path(), "stopped", "echo 'svc is not running'\nexit 3");
    let got = bounded(init::run(&InitTarget::Script(running.clone()), &loc, &opts)).await;
    assert_eq!(got.state, State::Ok, "{got:?}");
    assert_eq!(got.output, format!("{running} status: running (exit 0)"));
    assert_eq!(got.long_output, "svc is running");
    let got = bounded(init::run(&InitTarget::Script(stopped.clone()), &loc, &opts)).await;
    assert_eq!(got.state, State::Critical);
    assert_eq!(
        got.output,
        format!("{stopped} status: not running (exit 3)")
    );

    let missing = dir.path().join("missing").to_string_lossy().into_owned();
    let got = bounded(init::run(&InitTarget::Script(missing.clone()), &loc, &opts)).await;
    assert_eq!(got.state, State::Unknown);
    assert_eq!(
        got.output,
        format!("init script {missing} not found on 127.0.0.1")
    );
    assert!(got.long_output.contains(&missing), "{got:?}");

    let got = bounded(plugin::run_at(
        &loc,
        &words(&["/nonexistent/check_x", "-w", "1"]),
        &opts,
    ))
    .await;
    assert_eq!(got.state, State::Unknown);
    assert_eq!(
        got.output,
        "plugin /nonexistent/check_x not found on 127.0.0.1"
    );

    let got = bounded(init::run(
        &InitTarget::Unit("laxmon-no-such-unit.service".into()),
        &loc,
        &opts,
    ))
    .await;
    assert!(
        matches!(got.state, State::Critical | State::Unknown),
        "{got:?}"
    );

    // A remote command that outlives the timeout: UNKNOWN, naming the hop.
    let got = bounded(plugin::run_at(
        &loc,
        &words(&["/bin/sleep", "5"]),
        &RunOptions::new(Duration::from_secs(1)),
    ))
    .await;
    assert_eq!(
        got,
        CheckOutput::unknown("plugin (via ssh to 127.0.0.1) timed out after 1s")
    );
}

#[tokio::test]
async fn unreachable_hosts_are_unknown_within_the_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = SshOptions::new(dir.path().join("c"));
    opts.connect_timeout = Duration::from_secs(2);
    let closed = support::free_port();
    opts.extra_args = words(&[
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "StrictHostKeyChecking=no",
    ]);
    let run = RunOptions::new(Duration::from_secs(20));
    let argv = words(&[&format!("{PLUGINS}/check_dummy"), "0"]);

    // Nothing listens: ssh itself fails (exit 255).
    let loc = Location::Ssh {
        destination: format!("ssh://root@127.0.0.1:{closed}"),
        options: opts.clone(),
    };
    let got = bounded(plugin::run_at(&loc, &argv, &run)).await;
    assert_eq!(got.state, State::Unknown);
    assert!(
        got.output.starts_with("ssh to 127.0.0.1 failed: "),
        "{got:?}"
    );
    assert!(got.output.contains("Connection refused"), "{got:?}");

    // Accepts and never speaks: ssh's ConnectTimeout covers the banner.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let silent_port = silent.local_addr().expect("addr").port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = silent.accept().await {
            held.push(sock);
        }
    });
    let loc = Location::Ssh {
        destination: format!("ssh://root@127.0.0.1:{silent_port}"),
        options: opts.clone(),
    };
    let got = bounded(plugin::run_at(&loc, &argv, &run)).await;
    assert_eq!(got.state, State::Unknown);
    assert!(
        got.output.starts_with("ssh to 127.0.0.1 failed: "),
        "{got:?}"
    );
    assert!(got.output.contains("timed out"), "{got:?}");

    // Same with a connect timeout longer than the run's: our timeout wins.
    let mut slow = opts.clone();
    slow.connect_timeout = Duration::from_secs(300);
    let loc = Location::Ssh {
        destination: format!("ssh://root@127.0.0.1:{silent_port}"),
        options: slow,
    };
    let got = bounded(plugin::run_at(
        &loc,
        &argv,
        &RunOptions::new(Duration::from_secs(2)),
    ))
    .await;
    assert_eq!(
        got,
        CheckOutput::unknown("plugin (via ssh to 127.0.0.1) timed out after 2s")
    );
    holder.abort();

    // A destination ssh could read as an option is refused before anything runs.
    let loc = Location::Ssh {
        destination: "-oProxyCommand=touch /tmp/laxmon-pwned".into(),
        options: opts,
    };
    let got = bounded(plugin::run_at(&loc, &argv, &run)).await;
    assert_eq!(got.state, State::Unknown);
    assert!(got.output.starts_with("invalid ssh destination"), "{got:?}");
    assert!(!Path::new("/tmp/laxmon-pwned").exists());
}

/// A configuration whose `engine.ssh` reaches `sshd` (key, port, no
/// known_hosts) through its own master-connection directory.
fn config_for(sshd: &Sshd, dir: &Path, checks: &str) -> String {
    let opts: Vec<String> = sshd
        .client_args()
        .iter()
        .map(|a| format!("{a:?}"))
        .collect();
    let text = format!(
        "storage: sqlite:{d}/db\nengine:\n  ssh:\n    control_dir: {control}\n    options: [{opts}]\n\
         hosts:\n  - name: cs1\n    address: 127.0.0.1\n    ssh: root@127.0.0.1\nchecks:\n{checks}",
        d = dir.display(),
        control = sshd.control_dir().display(),
        opts = opts.join(", ")
    );
    let path = dir.join("laxmon.yaml");
    std::fs::write(&path, text).expect("config");
    path.to_string_lossy().into_owned()
}

#[test]
fn stack_check_over_ssh_uses_engine_ssh_and_the_shared_master() {
    // `laxmon plugin` is a child of the daemon: it reaches the host with the
    // configured key, port and options, through the daemon's master directory.
    let sshd = Sshd::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config_for(
        &sshd,
        dir.path(),
        "  - name: cs1-bonding\n    kind: plugin\n    host: cs1\n    command: [laxmon, plugin, bonding, -H, \"root@$HOSTADDRESS$\", --bond, laxmon-test-bond9]\n",
    );
    let out = support::bin::laxmon(&["check", "--config", &cfg, "--json"]);
    let text = support::bin::stdout(&out);
    let v: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{e}: {}", support::bin::stderr(&out)));
    let output = v[0]["output"].as_str().unwrap_or_default();
    // It logged in and read the host's (missing) bond file; without the
    // configured key and port ssh would not have got in at all.
    assert!(!output.contains("ssh to"), "{v}");
    assert!(output.contains("laxmon-test-bond9"), "{v}");
    assert!(sshd.logins() >= 1, "{}", sshd.log());
    assert_eq!(
        sshd.control_sockets().len(),
        1,
        "master socket in engine.ssh.control_dir"
    );
}

#[tokio::test]
async fn restart_over_ssh_uses_engine_ssh_and_reuses_the_master() {
    let sshd = Sshd::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("restarted");
    let init = script(
        dir.path(),
        "initscript",
        &format!(
            "case \"$1\" in status) exit 0;; restart) echo done > {};; esac",
            marker.display()
        ),
    );
    let cfg = config_for(
        &sshd,
        dir.path(),
        &format!("  - name: svc\n    kind: init\n    host: cs1\n    script: {init}\n"),
    );
    let config = laxmon::config::load(Path::new(&cfg)).unwrap_or_else(|e| panic!("{e}"));
    // A check over SSH opens the master connection ...
    let out = support::bin::laxmon(&["check", "--config", &cfg, "svc"]);
    assert_eq!(out.status.code(), Some(0), "{}", support::bin::stdout(&out));
    let logins = sshd.logins();
    assert!(logins >= 1, "{}", sshd.log());
    // ... and the restart action goes through it, with the same options.
    let target = laxmon::config::InitTarget::Script(init.clone());
    let exec = laxmon::actions::restart::restart_service(
        &target,
        "cs1",
        &config,
        Vec::new(),
        Duration::from_secs(30),
    )
    .expect("restart command");
    let argv = exec.argv();
    let control = format!("ControlPath={}/%C", sshd.control_dir().display());
    assert!(argv.contains(&control), "{argv:?}");
    assert!(
        argv.contains(&"UserKnownHostsFile=/dev/null".to_string()),
        "{argv:?}"
    );
    let run = bounded(laxmon::actions::script::run(
        &exec,
        "k",
        1,
        "restart-service",
    ))
    .await;
    assert_eq!(run.exit_code, Some(0), "{run:?}");
    assert!(marker.exists(), "the restart ran on the host");
    assert_eq!(sshd.logins(), logins, "no new login: the master was reused");
}
