//! Plugin runner against real monitoring-plugins and against misbehaving scripts.
//!
//! Tests that count processes or descriptors of this test process take the
//! exclusive side of `PROCESS_LOCK`; every other test takes the shared side,
//! so counts are not disturbed by runs in flight.

use laxmon::checks::init::{self, InitTarget};
use laxmon::checks::location::Location;
use laxmon::checks::plugin;
use laxmon::checks::{CheckOutput, PerfDatum, State};
use laxmon::plugin_output;
use laxmon::process::{self, End, RunOptions};
use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::RwLock;

const PLUGINS: &str = "/usr/lib/nagios/plugins";
static PROCESS_LOCK: RwLock<()> = RwLock::const_new(());

/// Bounds a test step so a bug can never hang the suite.
async fn bounded<F: Future>(fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), fut)
        .await
        .expect("test step did not finish within 60 s")
}

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

fn plugin(name: &str, args: &[&str]) -> Vec<String> {
    let mut v = vec![format!("{PLUGINS}/{name}")];
    v.extend(args.iter().map(|a| a.to_string()));
    v
}

/// Writes an executable `#!/bin/sh` script and returns its path.
fn script(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path.to_string_lossy().into_owned()
}

/// Runs the plugin directly (std, blocking) and parses its output independently.
fn run_raw(argv: &[String]) -> CheckOutput {
    let out = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .output()
        .expect("run plugin raw");
    let state = State::from_code(out.status.code().expect("exit code")).expect("0..3");
    plugin_output::parse_bytes(state, &out.stdout)
}

/// label, uom, warn, crit, min: the parts of a perfdata item stable between runs.
type Shape = (String, String, Option<String>, Option<String>, Option<f64>);

/// The parts of perfdata that do not change from one run to the next.
fn shape(p: &[PerfDatum]) -> Vec<Shape> {
    p.iter()
        .map(|d| {
            (
                d.label.clone(),
                d.uom.clone(),
                d.warn.clone(),
                d.crit.clone(),
                d.min,
            )
        })
        .collect()
}

/// (pid, state, ppid, pgrp) of every process, from /proc/*/stat.
fn processes() -> Vec<(i32, char, i32, i32)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let f: Vec<&str> = after.split_whitespace().collect();
        if f.len() < 3 {
            continue;
        }
        let state = f[0].chars().next().unwrap_or('?');
        out.push((
            pid,
            state,
            f[1].parse().unwrap_or(0),
            f[2].parse().unwrap_or(0),
        ));
    }
    out
}

/// Processes in group `pgid` that are still alive (zombies are dead already).
fn live_in_group(pgid: i32) -> Vec<i32> {
    processes()
        .into_iter()
        .filter(|&(_, state, _, pgrp)| pgrp == pgid && state != 'Z')
        .map(|(pid, ..)| pid)
        .collect()
}

fn is_alive(pid: i32) -> bool {
    processes()
        .iter()
        .any(|&(p, state, ..)| p == pid && state != 'Z')
}

fn my_zombies() -> Vec<i32> {
    let me = std::process::id() as i32;
    processes()
        .into_iter()
        .filter(|&(_, state, ppid, _)| ppid == me && state == 'Z')
        .map(|(pid, ..)| pid)
        .collect()
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("read fds")
        .count()
}

/// Waits (bounded) until `cond` holds; the kernel needs a moment to tear processes down.
async fn eventually(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..100 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: still not true after 5 s");
}

#[tokio::test]
async fn check_dummy_gives_all_four_states_and_text() {
    let _shared = PROCESS_LOCK.read().await;
    let cases = [
        ("0", State::Ok, "OK: all fine"),
        ("1", State::Warning, "WARNING: all fine"),
        ("2", State::Critical, "CRITICAL: all fine"),
        ("3", State::Unknown, "UNKNOWN: all fine"),
    ];
    for (code, state, output) in cases {
        let argv = plugin("check_dummy", &[code, "all fine"]);
        let got = bounded(plugin::run(&argv, Duration::from_secs(10))).await;
        assert_eq!(got, CheckOutput::new(state, output));
        assert_eq!(got, run_raw(&argv));
    }
    // Out-of-range arguments are check_dummy's own UNKNOWN.
    let got = bounded(plugin::run(
        &plugin("check_dummy", &["9"]),
        Duration::from_secs(10),
    ))
    .await;
    assert_eq!(got.state, State::Unknown);
}

#[tokio::test]
async fn check_tcp_against_open_and_closed_loopback_ports() {
    let _shared = PROCESS_LOCK.read().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port().to_string();
    let server = tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            drop(sock);
        }
    });
    let got = bounded(plugin::run(
        &plugin("check_tcp", &["-H", "127.0.0.1", "-p", &port]),
        Duration::from_secs(10),
    ))
    .await;
    assert_eq!(got.state, State::Ok, "{got:?}");
    assert!(got.output.starts_with("TCP OK"), "{got:?}");
    assert_eq!(got.perfdata.len(), 1, "{got:?}");
    assert_eq!(
        (got.perfdata[0].label.as_str(), got.perfdata[0].uom.as_str()),
        ("time", "s")
    );
    assert_eq!(got.perfdata[0].min, Some(0.0));
    server.abort();

    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port().to_string()
    };
    let got = bounded(plugin::run(
        &plugin("check_tcp", &["-H", "127.0.0.1", "-p", &closed]),
        Duration::from_secs(10),
    ))
    .await;
    assert_eq!(got.state, State::Critical, "{got:?}");
    assert!(got.output.contains("Connection refused"), "{got:?}");
    assert!(got.perfdata.is_empty());
}

#[tokio::test]
async fn check_ping_loopback() {
    let _shared = PROCESS_LOCK.read().await;
    let argv = plugin(
        "check_ping",
        &[
            "-H",
            "127.0.0.1",
            "-w",
            "100,20%",
            "-c",
            "500,60%",
            "-p",
            "2",
        ],
    );
    let got = bounded(plugin::run(&argv, Duration::from_secs(20))).await;
    assert_eq!(got.state, State::Ok, "{got:?}");
    assert!(
        got.output.starts_with("PING OK - Packet loss = 0%"),
        "{got:?}"
    );
    let labels: Vec<_> = got
        .perfdata
        .iter()
        .map(|p| (p.label.as_str(), p.uom.as_str()))
        .collect();
    assert_eq!(labels, [("rta", "ms"), ("pl", "%")]);
    assert_eq!(got.perfdata[1].value, 0.0);
    assert_eq!(got.perfdata[1].warn.as_deref(), Some("20"));
    assert_eq!(got.perfdata[1].crit.as_deref(), Some("60"));
    assert_eq!(shape(&got.perfdata), shape(&run_raw(&argv).perfdata));
}

/// Serves `status_line` with a small body to every connection, HTTP/1.0 style.
async fn http_server(status_line: &'static str) -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let task = tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let body = "hello from laxmon test\n";
                let reply = format!(
                    "{status_line}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(reply.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (port, task)
}

// Multi-threaded: the raw comparison run blocks a thread while the server answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_http_against_a_loopback_server() {
    let _shared = PROCESS_LOCK.read().await;
    let (port, server) = http_server("HTTP/1.0 200 OK").await;
    let argv = plugin(
        "check_http",
        &["-H", "127.0.0.1", "-p", &port.to_string(), "-s", "hello"],
    );
    let got = bounded(plugin::run(&argv, Duration::from_secs(10))).await;
    assert_eq!(got.state, State::Ok, "{got:?}");
    assert!(
        got.output.starts_with("HTTP OK: HTTP/1.0 200 OK"),
        "{got:?}"
    );
    let labels: Vec<_> = got
        .perfdata
        .iter()
        .map(|p| (p.label.as_str(), p.uom.as_str()))
        .collect();
    assert_eq!(labels, [("time", "s"), ("size", "B")]);
    let size = &got.perfdata[1];
    assert!(size.value > 0.0, "{got:?}");
    // Sizes are identical between runs; times are not.
    let raw = run_raw(&argv);
    assert_eq!(raw.perfdata[1], got.perfdata[1]);
    assert_eq!(shape(&raw.perfdata), shape(&got.perfdata));
    server.abort();

    let (port, server) = http_server("HTTP/1.0 500 Internal Server Error").await;
    let got = bounded(plugin::run(
        &plugin("check_http", &["-H", "127.0.0.1", "-p", &port.to_string()]),
        Duration::from_secs(10),
    ))
    .await;
    assert_eq!(got.state, State::Critical, "{got:?}");
    assert!(got.output.contains("500"), "{got:?}");
    server.abort();
}

#[tokio::test]
async fn check_disk_load_and_procs_parse_like_the_raw_output() {
    let _shared = PROCESS_LOCK.read().await;
    let cases = [
        plugin("check_disk", &["-w", "10%", "-c", "5%", "-p", "/"]),
        plugin("check_load", &["-w", "50,40,30", "-c", "100,80,60"]),
        plugin("check_procs", &["-w", "5000", "-c", "10000"]),
    ];
    for argv in cases {
        let got = bounded(plugin::run(&argv, Duration::from_secs(10))).await;
        let raw = run_raw(&argv);
        assert_eq!(got.state, raw.state, "{argv:?}: {got:?}");
        assert!(!got.perfdata.is_empty(), "{argv:?}: {got:?}");
        assert_eq!(shape(&got.perfdata), shape(&raw.perfdata), "{argv:?}");
    }

    let disk = bounded(plugin::run(
        &plugin("check_disk", &["-w", "1%", "-c", "1%", "-p", "/"]),
        Duration::from_secs(10),
    ))
    .await;
    assert!(disk.output.starts_with("DISK "), "{disk:?}");
    assert_eq!(disk.perfdata[0].label, "/");
    assert!(disk.perfdata[0]
        .max
        .is_some_and(|m| m >= disk.perfdata[0].value));

    let load = bounded(plugin::run(
        &plugin("check_load", &["-w", "50,40,30", "-c", "100,80,60"]),
        Duration::from_secs(10),
    ))
    .await;
    assert_eq!(load.state, State::Ok, "{load:?}");
    let labels: Vec<_> = load.perfdata.iter().map(|p| p.label.as_str()).collect();
    assert_eq!(labels, ["load1", "load5", "load15"]);
    assert_eq!(load.perfdata[0].warn.as_deref(), Some("50.000"));

    let procs = bounded(plugin::run(
        &plugin("check_procs", &["-w", "5000", "-c", "10000"]),
        Duration::from_secs(10),
    ))
    .await;
    assert_eq!(procs.state, State::Ok, "{procs:?}");
    assert_eq!(procs.perfdata[0].label, "procs");
    assert!(procs.perfdata[0].value >= 1.0);
}

#[tokio::test]
async fn hanging_plugin_times_out_and_its_whole_group_is_gone() {
    let _shared = PROCESS_LOCK.read().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let pidfile = dir.path().join("pid");
    // The second one ignores SIGTERM (and so does its sleep): needs the SIGKILL.
    for (name, body) in [
        (
            "hang",
            format!(
                "echo $$ > {}\necho starting\nsleep 1000\n",
                pidfile.display()
            ),
        ),
        (
            "stubborn",
            format!(
                "trap '' TERM\necho $$ > {}\necho starting\nsleep 1000\n",
                pidfile.display()
            ),
        ),
    ] {
        let path = script(dir.path(), name, &body);
        let got = bounded(plugin::run(&argv(&[&path]), Duration::from_secs(1))).await;
        assert_eq!(got.state, State::Unknown, "{name}");
        assert_eq!(got.output, "plugin timed out after 1s", "{name}");
        assert_eq!(got.long_output, "starting", "{name}");
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .expect("pidfile")
            .trim()
            .parse()
            .expect("pid");
        eventually(&format!("{name}: group {pid} gone"), || {
            live_in_group(pid).is_empty()
        })
        .await;
    }
}

#[tokio::test]
async fn background_child_holding_stdout_is_killed_and_result_comes_back() {
    let _shared = PROCESS_LOCK.read().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = script(
        dir.path(),
        "forker",
        "sleep 1000 &\necho \"OK started $!\"\nexit 0",
    );
    let exec = bounded(process::execute(
        &argv(&[&path]),
        &RunOptions::new(Duration::from_secs(30)),
    ))
    .await
    .expect("runs");
    assert_eq!(exec.end, End::Exited(0));
    assert!(exec.leftovers_killed);
    let out = plugin::interpret(&exec, "plugin");
    assert_eq!(out.state, State::Ok);
    let child: i32 = out
        .output
        .trim_start_matches("OK started ")
        .parse()
        .expect("child pid");
    eventually("background child killed", || !is_alive(child)).await;

    // A child that let go of our pipes is not ours to kill.
    let path = script(
        dir.path(),
        "detacher",
        "sleep 1000 >/dev/null 2>&1 &\necho \"OK started $!\"",
    );
    let exec = bounded(process::execute(
        &argv(&[&path]),
        &RunOptions::new(Duration::from_secs(30)),
    ))
    .await
    .expect("runs");
    assert!(!exec.leftovers_killed);
    let out = plugin::interpret(&exec, "plugin");
    let child: i32 = out
        .output
        .trim_start_matches("OK started ")
        .parse()
        .expect("child pid");
    assert!(is_alive(child));
    // SAFETY: plain kill(2) of the sleep this test started.
    unsafe {
        libc::kill(child, libc::SIGKILL);
    }
    eventually("detached child cleaned up", || !is_alive(child)).await;
}

#[tokio::test]
async fn ten_megabytes_of_output_are_capped_and_the_plugin_finishes() {
    let _shared = PROCESS_LOCK.read().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = script(
        dir.path(),
        "chatty",
        "yes 'OK this line repeats | n=1' | head -c 10485760\nyes 'err' | head -c 1048576 >&2",
    );
    let exec = bounded(process::execute(
        &argv(&[&path]),
        &RunOptions::new(Duration::from_secs(30)),
    ))
    .await
    .expect("runs");
    assert_eq!(exec.end, End::Exited(0));
    assert_eq!(exec.stdout.total, 10 * 1024 * 1024);
    assert_eq!(exec.stdout.bytes.len(), process::DEFAULT_OUTPUT_CAP);
    assert_eq!(exec.stderr.total, 1024 * 1024);
    assert_eq!(exec.stderr.bytes.len(), process::DEFAULT_OUTPUT_CAP);
    let out = plugin::interpret(&exec, "plugin");
    assert_eq!(out.state, State::Ok);
    assert_eq!(out.output, "OK this line repeats");
    assert!(out.long_output.ends_with(
        "[stdout truncated: kept 65536 of 10485760 bytes]\n[stderr truncated: kept 65536 of 1048576 bytes]"
    ));
    // Only the first line's perfdata counts; the rest is long output... with pipes in it.
    assert_eq!(out.perfdata[0].label, "n");

    let small = RunOptions {
        output_cap: 10,
        ..RunOptions::new(Duration::from_secs(30))
    };
    let got = bounded(plugin::run_with(&argv(&[&path]), &small)).await;
    assert_eq!(got.output, "OK this li");
}

#[tokio::test]
async fn misbehaving_plugins_are_unknown_with_a_reason() {
    let _shared = PROCESS_LOCK.read().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let segv = script(dir.path(), "segv", "echo 'about to crash'\nkill -SEGV $$");
    let got = bounded(plugin::run(&argv(&[&segv]), Duration::from_secs(10))).await;
    assert_eq!(got.state, State::Unknown);
    assert_eq!(got.output, "plugin killed by signal 11 (SIGSEGV)");
    assert_eq!(got.long_output, "about to crash");

    let seven = script(
        dir.path(),
        "seven",
        "echo 'weird | x=1'\necho 'detail' >&2\nexit 7",
    );
    let got = bounded(plugin::run(&argv(&[&seven]), Duration::from_secs(10))).await;
    assert_eq!(got.state, State::Unknown);
    assert_eq!(
        got.output,
        "plugin exited with code 7 (out of bounds, expected 0-3)"
    );
    assert_eq!(got.long_output, "weird\ndetail");
    assert_eq!(got.perfdata.len(), 1);

    let binary = script(
        dir.path(),
        "binary",
        "printf 'OK \\377\\376 bytes | a=1\\n\\200\\n'",
    );
    let got = bounded(plugin::run(&argv(&[&binary]), Duration::from_secs(10))).await;
    assert_eq!(got.state, State::Ok);
    assert_eq!(got.output, "OK \u{fffd}\u{fffd} bytes");
    assert_eq!(got.long_output, "\u{fffd}");
    assert_eq!(got.perfdata[0].label, "a");

    let missing = dir
        .path()
        .join("no-such-plugin")
        .to_string_lossy()
        .into_owned();
    let got = bounded(plugin::run(
        &argv(&[&missing, "-w", "1"]),
        Duration::from_secs(10),
    ))
    .await;
    assert_eq!(
        got,
        CheckOutput::unknown(format!(
            "plugin {missing} not found (no such file or directory)"
        ))
    );

    let not_exec = dir.path().join("not-exec");
    std::fs::write(&not_exec, "#!/bin/sh\necho hi\n").expect("write");
    let not_exec = not_exec.to_string_lossy().into_owned();
    let got = bounded(plugin::run(&argv(&[&not_exec]), Duration::from_secs(10))).await;
    assert_eq!(
        got,
        CheckOutput::unknown(format!(
            "plugin {not_exec} is not executable (permission denied)"
        ))
    );

    let bad_interp = dir.path().join("bad-interp");
    std::fs::write(&bad_interp, "#!/nonexistent/interpreter\n").expect("write");
    std::fs::set_permissions(&bad_interp, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let bad_interp = bad_interp.to_string_lossy().into_owned();
    let got = bounded(plugin::run(&argv(&[&bad_interp]), Duration::from_secs(10))).await;
    assert_eq!(got.state, State::Unknown);
    assert!(
        got.output.contains(&bad_interp) && got.output.contains("interpreter"),
        "{got:?}"
    );

    let got = bounded(plugin::run(&[], Duration::from_secs(10))).await;
    assert_eq!(
        got,
        CheckOutput::unknown("plugin empty command: nothing to run")
    );

    let stderr_only = script(
        dir.path(),
        "stderr-only",
        "echo 'CRITICAL - said on stderr' >&2\nexit 2",
    );
    let got = bounded(plugin::run(&argv(&[&stderr_only]), Duration::from_secs(10))).await;
    assert_eq!(
        got,
        CheckOutput::new(State::Critical, "CRITICAL - said on stderr")
    );

    let stderr_ignored = script(
        dir.path(),
        "stderr-ignored",
        "echo 'OK fine'\necho 'debug chatter' >&2",
    );
    let got = bounded(plugin::run(
        &argv(&[&stderr_ignored]),
        Duration::from_secs(10),
    ))
    .await;
    assert_eq!(got, CheckOutput::new(State::Ok, "OK fine"));

    let silent = script(dir.path(), "silent", "exit 0");
    let got = bounded(plugin::run(&argv(&[&silent]), Duration::from_secs(10))).await;
    assert_eq!(got, CheckOutput::new(State::Ok, "(plugin printed nothing)"));

    // stdin is /dev/null: a plugin reading it sees EOF instead of hanging.
    let reader = script(
        dir.path(),
        "reader",
        "cat >/dev/null\necho 'OK stdin closed'",
    );
    let got = bounded(plugin::run(&argv(&[&reader]), Duration::from_secs(10))).await;
    assert_eq!(got, CheckOutput::new(State::Ok, "OK stdin closed"));
}

#[tokio::test]
async fn no_shell_is_involved() {
    let _shared = PROCESS_LOCK.read().await;
    let argv = plugin(
        "check_dummy",
        &["0", "$(echo injected); `id` | x=1 > /tmp/laxmon-never"],
    );
    let got = bounded(plugin::run(&argv, Duration::from_secs(10))).await;
    assert_eq!(got.output, "OK: $(echo injected); `id`");
    assert!(!Path::new("/tmp/laxmon-never").exists());
    let split =
        plugin::split_command("/usr/lib/nagios/plugins/check_dummy 1 'two words'").expect("splits");
    let got = bounded(plugin::run(&split, Duration::from_secs(10))).await;
    assert_eq!(got, CheckOutput::new(State::Warning, "WARNING: two words"));
    let expanded = plugin::expand_macros(
        &argv_of("check_dummy 0 $HOSTNAME$@$HOSTADDRESS$"),
        "web1",
        "127.0.0.1",
    );
    let got = bounded(plugin::run(&expanded, Duration::from_secs(10))).await;
    assert_eq!(got.output, "OK: web1@127.0.0.1");
}

fn argv_of(cmd: &str) -> Vec<String> {
    plugin::split_command(&format!("{PLUGINS}/{cmd}")).expect("splits")
}

#[tokio::test]
async fn local_init_scripts_and_plugins_through_location() {
    let _shared = PROCESS_LOCK.read().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = RunOptions::new(Duration::from_secs(10));
    let cases = [
        (0, State::Ok, "running"),
        (1, State::Critical, "dead, pid file exists"),
        (2, State::Critical, "dead, lock file exists"),
        (3, State::Critical, "not running"),
        (4, State::Unknown, "status unknown"),
        (9, State::Unknown, "not an LSB status code"),
    ];
    for (code, state, meaning) in cases {
        let path = script(
            dir.path(),
            &format!("svc{code}"),
            &format!("[ \"$1\" = status ] || exit 99\necho \"svc says {code}\"\nexit {code}"),
        );
        let got = bounded(init::run(
            &InitTarget::Script(path.clone()),
            &Location::Local,
            &opts,
        ))
        .await;
        assert_eq!(got.state, state, "exit {code}");
        assert_eq!(
            got.output,
            format!("{path} status: {meaning} (exit {code})")
        );
        assert_eq!(got.long_output, format!("svc says {code}"));
    }

    let missing = dir.path().join("nope").to_string_lossy().into_owned();
    let got = bounded(init::run(
        &InitTarget::Script(missing.clone()),
        &Location::Local,
        &opts,
    ))
    .await;
    assert_eq!(
        got,
        CheckOutput::unknown(format!(
            "init script {missing} not found (no such file or directory)"
        ))
    );

    let hang = script(dir.path(), "hang", "sleep 1000");
    let got = bounded(init::run(
        &InitTarget::Script(hang.clone()),
        &Location::Local,
        &RunOptions::new(Duration::from_millis(300)),
    ))
    .await;
    assert_eq!(
        got,
        CheckOutput::unknown(format!("init script {hang} timed out after 300ms"))
    );

    // Whether or not systemd runs here, a unit that does not exist is never OK.
    let got = bounded(init::run(
        &InitTarget::Unit("laxmon-no-such-unit.service".into()),
        &Location::Local,
        &opts,
    ))
    .await;
    assert!(
        matches!(got.state, State::Critical | State::Unknown),
        "{got:?}"
    );

    let got = bounded(plugin::run_at(
        &Location::Local,
        &plugin("check_dummy", &["1", "local"]),
        &opts,
    ))
    .await;
    assert_eq!(got, CheckOutput::new(State::Warning, "WARNING: local"));
}

#[tokio::test]
async fn no_zombies_after_many_concurrent_runs() {
    let _exclusive = PROCESS_LOCK.write().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let forker = script(dir.path(), "forker", "sleep 1000 &\necho OK");
    let dummy = plugin("check_dummy", &["0", "fine"]);
    let forker = argv(&[&forker]);
    let opts = RunOptions::new(Duration::from_secs(30));
    let runs = (0..200).map(|i| {
        let argv = if i % 10 == 0 {
            forker.clone()
        } else {
            dummy.clone()
        };
        let opts = opts.clone();
        tokio::spawn(async move { plugin::run_with(&argv, &opts).await })
    });
    let results = bounded(async {
        let mut out = Vec::new();
        for run in runs.collect::<Vec<_>>() {
            out.push(run.await.expect("join"));
        }
        out
    })
    .await;
    assert_eq!(results.len(), 200);
    assert!(results.iter().all(|r| r.state == State::Ok), "{results:?}");
    assert_eq!(my_zombies(), Vec::<i32>::new());
}

#[tokio::test]
async fn no_descriptor_leaks() {
    let _exclusive = PROCESS_LOCK.write().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let forker = script(dir.path(), "forker", "sleep 1000 &\necho OK");
    let hang = script(dir.path(), "hang", "sleep 1000");
    let dummy = plugin("check_dummy", &["0", "fine"]);
    let missing = argv(&["/nonexistent/plugin"]);
    let opts = RunOptions {
        kill_grace: Duration::from_millis(100),
        pipe_grace: Duration::from_millis(100),
        ..RunOptions::new(Duration::from_millis(200))
    };
    // Warm up: the runtime opens its signal/process plumbing on first use.
    bounded(plugin::run_with(&dummy, &opts)).await;
    let before = open_fds();
    for i in 0..60 {
        let argv = match i % 4 {
            0 => argv(&[&forker]),
            1 => argv(&[&hang]),
            2 => missing.clone(),
            _ => dummy.clone(),
        };
        bounded(plugin::run_with(&argv, &opts)).await;
    }
    // Killed groups are torn down by the kernel and reaped by the runtime a
    // moment later (a loaded machine stretches that); a leak never recovers.
    eventually(&format!("descriptors back to {before}"), || {
        open_fds() == before
    })
    .await;
    assert_eq!(my_zombies(), Vec::<i32>::new());
}

#[tokio::test]
async fn a_dropped_run_kills_its_group() {
    let _shared = PROCESS_LOCK.read().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let pidfile = dir.path().join("pid");
    let path = script(
        dir.path(),
        "hang",
        &format!("echo $$ > {}\nsleep 1000", pidfile.display()),
    );
    let args = argv(&[&path]);
    let mut run = Box::pin(plugin::run(&args, Duration::from_secs(600)));
    // Let it start, then give up on the run from outside, as a shutting-down daemon would.
    bounded(async {
        loop {
            tokio::select! {
                out = &mut run => panic!("a 1000 s sleep finished: {out:?}"),
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
            if std::fs::read_to_string(&pidfile).is_ok_and(|s| s.ends_with('\n')) {
                break;
            }
        }
    })
    .await;
    drop(run);
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .expect("pidfile")
        .trim()
        .parse()
        .expect("pid");
    eventually("dropped run's group gone", || live_in_group(pid).is_empty()).await;
}
