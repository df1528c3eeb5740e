//! systemd's notification protocol, with the test as systemd: a datagram
//! socket in a temp dir as `NOTIFY_SOCKET`.
//!
//! The real `laxmon run` says `READY=1`, pings the watchdog while it runs,
//! says `RELOADING=1` (with `MONOTONIC_USEC`) and `READY=1` again around a
//! SIGHUP, and `STOPPING=1` on SIGTERM; its plugins never see the
//! variables; a `WATCHDOG_PID` of another process turns the pings off. At
//! library level, the scheduler loop is the only pinger: a loop that is not
//! being polled (what a stuck loop looks like from outside) sends nothing,
//! and a stopped one neither.
//!
//! No timing assertions: presence within generous bounds, and absence over
//! windows many ping periods long.

mod support;

use laxmon::checks::Runner;
use laxmon::daemon::Scheduler;
use laxmon::systemd::{Notifier, Watchdog};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::bin::write_file;
use support::daemon::{field, Daemon};

/// The test's side of `NOTIFY_SOCKET`: every datagram on a channel.
struct Systemd {
    path: String,
    messages: Mutex<mpsc::Receiver<String>>,
}

impl Systemd {
    fn bind(dir: &Path) -> Systemd {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        let (tx, messages) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = socket.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                if tx.send(text).is_err() {
                    return;
                }
            }
        });
        Systemd {
            path: path.display().to_string(),
            messages: Mutex::new(messages),
        }
    }

    /// Waits (bounded) for a message with a line `line`; returns it.
    fn expect(&self, line: &str) -> String {
        let messages = self.messages.lock().expect("lock");
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            if let Ok(m) = messages.recv_timeout(Duration::from_millis(100)) {
                if m.lines().any(|l| l == line) {
                    return m;
                }
                seen.push(m);
            }
        }
        panic!("no {line:?} from laxmon; got {seen:?}");
    }

    /// Everything that arrives within `window`.
    fn collect(&self, window: Duration) -> Vec<String> {
        let messages = self.messages.lock().expect("lock");
        let end = Instant::now() + window;
        let mut out = Vec::new();
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            if let Ok(m) = messages.recv_timeout(left) {
                out.push(m);
            }
        }
        out
    }

    /// Waits (bounded) for `n` watchdog pings.
    fn expect_pings(&self, n: usize) {
        for _ in 0..n {
            self.expect("WATCHDOG=1");
        }
    }
}

fn value_of<'a>(message: &'a str, key: &str) -> Option<&'a str> {
    message
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

fn signal(daemon: &Daemon, sig: i32) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(daemon.pid() as i32, sig);
    }
}

/// A config with one plugin that writes its environment to `env.txt`.
fn env_config(dir: &Path) -> String {
    let d = dir.display();
    let plugin = write_file(
        dir,
        "env.sh",
        "#!/bin/sh\nenv > \"$(dirname \"$0\")/env.tmp\"\nmv \"$(dirname \"$0\")/env.tmp\" \"$(dirname \"$0\")/env.txt\"\necho 'ENV OK'\n",
    );
    std::fs::set_permissions(&plugin, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    write_file(
        dir,
        "laxmon.yaml",
        &format!(
            "storage: {{url: \"sqlite:{d}/db\", spool_dir: {d}/spool}}\nchecks:\n  - {{name: env, kind: plugin, command: [\"{plugin}\"], interval: 300ms}}\n"
        ),
    )
}

#[test]
fn ready_watchdog_reload_and_stop_reach_systemd_and_not_the_plugins() {
    let dir = tempfile::tempdir().expect("tempdir");
    let systemd = Systemd::bind(dir.path());
    let cfg = env_config(dir.path());
    let mut daemon = Daemon::start_with_env(
        &cfg,
        "info",
        &[
            ("NOTIFY_SOCKET", systemd.path.as_str()),
            ("WATCHDOG_USEC", "400000"),
        ],
    );
    let ready = systemd.expect("READY=1");
    let status = value_of(&ready, "STATUS").expect("READY=1 comes with a status");
    assert!(status.starts_with("1 checks"), "{status}");
    assert_eq!(value_of(&ready, "WATCHDOG_USEC"), None, "{ready}");
    systemd.expect_pings(5);

    // The plugin ran without systemd's variables (and with the usual ones).
    let env_file = dir.path().join("env.txt");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !env_file.exists() {
        assert!(Instant::now() < deadline, "the plugin never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    let env = std::fs::read_to_string(&env_file).expect("env.txt");
    assert!(env.lines().any(|l| l.starts_with("PATH=")), "{env}");
    for var in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
        assert!(
            !env.lines().any(|l| l.starts_with(&format!("{var}="))),
            "the plugin saw {var}: {env}"
        );
    }

    // SIGHUP: RELOADING=1 with the monotonic clock and a raised watchdog
    // timeout for the restart of the pipeline, then READY=1 putting it back.
    let before = monotonic_usec();
    signal(&daemon, libc::SIGHUP);
    let reloading = systemd.expect("RELOADING=1");
    let after = monotonic_usec();
    let stamp: u64 = value_of(&reloading, "MONOTONIC_USEC")
        .expect("MONOTONIC_USEC")
        .parse()
        .expect("a number");
    assert!(
        before <= stamp && stamp <= after,
        "{before} <= {stamp} <= {after}"
    );
    assert_eq!(value_of(&reloading, "WATCHDOG_USEC"), Some("300000000"));
    let ready = systemd.expect("READY=1");
    assert_eq!(value_of(&ready, "WATCHDOG_USEC"), Some("400000"), "{ready}");
    daemon.wait_for("the reloaded pipeline", |v| {
        field(v, "message") == "laxmon started"
    });
    systemd.expect_pings(3);

    // SIGTERM: STOPPING=1, then a clean exit.
    signal(&daemon, libc::SIGTERM);
    systemd.expect("STOPPING=1");
    assert_eq!(daemon.terminate(), 0);
}

#[test]
fn a_watchdog_meant_for_another_process_is_not_pinged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let systemd = Systemd::bind(dir.path());
    let cfg = env_config(dir.path());
    let mut daemon = Daemon::start_with_env(
        &cfg,
        "info",
        &[
            ("NOTIFY_SOCKET", systemd.path.as_str()),
            ("WATCHDOG_USEC", "200000"),
            ("WATCHDOG_PID", "1"),
        ],
    );
    systemd.expect("READY=1");
    // Twenty ping periods: a ping would have come many times over.
    let later = systemd.collect(Duration::from_secs(2));
    assert!(
        !later.iter().any(|m| m.lines().any(|l| l == "WATCHDOG=1")),
        "{later:?}"
    );
    assert_eq!(daemon.terminate(), 0);
}

/// Pings in `messages`.
fn pings(messages: &[String]) -> usize {
    messages
        .iter()
        .filter(|m| m.lines().any(|l| l == "WATCHDOG=1"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_running_scheduler_loop_pings_the_watchdog() {
    let dir = tempfile::tempdir().expect("tempdir");
    let systemd = Arc::new(Systemd::bind(dir.path()));
    // One check that runs once and then not for an hour: the loop is idle
    // and must still wake up for its pings.
    let d = dir.path().display();
    let cfg = write_file(
        dir.path(),
        "laxmon.yaml",
        &format!(
            "storage: {{url: \"sqlite:{d}/db\", spool_dir: {d}/spool}}\nhosts:\n  - {{name: lo, address: 127.0.0.1}}\nchecks:\n  - {{name: closed, kind: port, host: lo, port: 9, interval: 1h}}\n"
        ),
    );
    let config = laxmon::config::load(Path::new(&cfg)).expect("config loads");
    let notifier = Arc::new(Notifier::connect(&systemd.path).expect("notifier"));
    // Timeout 200 ms: a ping every 100 ms while the loop runs.
    let watchdog = Watchdog::new(notifier, Duration::from_millis(200));
    let scheduler =
        Scheduler::new(&config, Runner::new(&config), Vec::new()).with_watchdog(watchdog);
    let (results_tx, mut results) = tokio::sync::mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = scheduler.run(results_tx, async {
        let _ = stop_rx.await;
    });
    tokio::pin!(run);

    let blocking = |f: fn(&Systemd) -> Vec<String>| {
        let s = Arc::clone(&systemd);
        tokio::task::spawn_blocking(move || f(&s))
    };

    // 1. The loop runs: pings arrive, and the check runs (the test polls
    //    the loop meanwhile).
    let running = async {
        blocking(|s| {
            s.expect_pings(3);
            Vec::new()
        })
        .await
        .expect("pings");
        results.recv().await.expect("the check ran once")
    };
    let result = tokio::select! {
        _ = &mut run => panic!("the scheduler stopped by itself"),
        r = running => r,
    };
    assert_eq!(result.check, "closed");

    // 2. The loop stalls (nobody polls it, as when it is stuck in a call
    //    that never returns): after what it sent before has arrived, twenty
    //    ping periods without a single ping.
    let stalled = blocking(|s| {
        s.collect(Duration::from_millis(500));
        s.collect(Duration::from_secs(2))
    })
    .await
    .expect("collect");
    assert_eq!(
        pings(&stalled),
        0,
        "pinged while the loop stood still: {stalled:?}"
    );

    // 3. It runs again: the pings come back.
    let waiting = blocking(|s| {
        s.expect_pings(2);
        Vec::new()
    });
    tokio::select! {
        _ = &mut run => panic!("the scheduler stopped by itself"),
        r = waiting => { r.expect("pings"); }
    }

    // 4. Stopped: it returns, and nothing pings any more.
    stop_tx.send(()).expect("stop");
    tokio::time::timeout(Duration::from_secs(60), &mut run)
        .await
        .expect("the scheduler stops");
    let after = blocking(|s| {
        s.collect(Duration::from_millis(500));
        s.collect(Duration::from_secs(2))
    })
    .await
    .expect("collect");
    assert_eq!(pings(&after), 0, "pinged after the loop stopped: {after:?}");
}
