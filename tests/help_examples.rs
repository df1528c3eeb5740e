//! Every example that `--help` prints works on the shipped files: the test
//! walks `laxmon --help` and every subcommand's help, recursively, and every
//! `laxmon plugin NAME --help`, extracts the example command lines, checks
//! that the shipped files they name exist, and runs them from the repository
//! layout (a copy of the shipped directories, so the examples' state files in
//! var/ never touch the checkout). None may fail as a usage or configuration
//! error: exit 64, clap's exit 2 with its usage text, `laxmon plan`'s exit 2
//! (bad input) or a plugin's `STACK UNKNOWN` usage error; none may panic.
//! `laxmon run` examples are started, and stopped with SIGTERM once the
//! daemon has run a check; they must then exit 0.
//!
//! The examples contact nothing but this machine: the example configuration
//! checks 127.0.0.1, and plugin examples read captured outputs (`file:`) or
//! run the local tools.

mod support;

use laxmon::cluster::model::{Cluster, HostState};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use support::bin::{laxmon_path, stderr, stdout};

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// The shipped directories examples may name; the test runs in a copy of them.
const SHIPPED: &[&str] = &["config", "checks", "alarm-scripts", "tests/fixtures"];

/// How long one example (other than the daemon) may take.
const EXAMPLE_LIMIT: Duration = Duration::from_secs(120);

fn laxmon_cmd(args: &[&str]) -> Command {
    let mut cmd = Command::new(laxmon_path());
    cmd.args(args)
        .env_remove("LAXMON_CONFIG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    cmd
}

/// `laxmon ARGS` (a help request); asserts exit 0 and returns stdout.
fn help_text(args: &[&str]) -> String {
    let out = laxmon_cmd(args).output().expect("laxmon runs");
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    stdout(&out)
}

/// The subcommands a clap help page lists under `Commands:` (without `help`).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| l.trim_end() != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("    "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

/// The example command lines of a help page: the indented `laxmon ...`
/// lines under a heading that starts with `Example`, up to a blank line.
/// A line in such a block that is not a command (a wrapped one) fails.
fn examples(page: &str, help: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut in_block = false;
    for line in help.lines() {
        if line.starts_with("Example") && line.trim_end().ends_with(':') {
            in_block = true;
        } else if line.trim().is_empty() {
            in_block = false;
        } else if in_block {
            let command = line.trim_start();
            assert!(
                line.starts_with("  ") && command.starts_with("laxmon "),
                "{page}: example line {line:?} is not a command (wrapped?)"
            );
            found.push(command.to_string());
        }
    }
    found
}

/// Every help page: (the words before --help, its text), depth first.
fn help_pages(prefix: &[String], pages: &mut Vec<(Vec<String>, String)>) {
    let mut args: Vec<&str> = prefix.iter().map(String::as_str).collect();
    args.push("--help");
    let text = help_text(&args);
    let children = subcommands(&text);
    pages.push((prefix.to_vec(), text));
    for child in children {
        let mut next = prefix.to_vec();
        next.push(child);
        help_pages(&next, pages);
    }
}

/// The plugin names `laxmon plugin help` lists (without `help`).
fn plugin_names() -> Vec<String> {
    help_text(&["plugin", "help"])
        .lines()
        .skip_while(|l| l.trim_end() != "Plugins:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

/// The relative paths an example names: arguments, `NAME=VALUE` values and
/// `file:` sources that contain a `/`, except runtime state under `var/`.
fn named_paths(words: &[String]) -> Vec<String> {
    let mut paths = Vec::new();
    for w in words {
        let value = w.split_once('=').map(|(_, v)| v).unwrap_or(w);
        let value = value.strip_prefix("file:").unwrap_or(value);
        if !value.contains('/') || value.contains("://") || value.starts_with("var/") {
            continue;
        }
        paths.push(value.to_string());
    }
    paths
}

/// The SOURCEs of a plugin example (`-H`/`--source` values and the value
/// part of `--server NAME=SOURCE`, or the bare `--server SOURCE`).
fn plugin_sources(words: &[String]) -> Vec<String> {
    let mut sources = Vec::new();
    for pair in words.windows(2) {
        let value = pair[1].as_str();
        match pair[0].as_str() {
            "-H" | "--source" => sources.push(value.to_string()),
            "--server" => sources.push(
                value
                    .split_once('=')
                    .map(|(_, s)| s)
                    .unwrap_or(value)
                    .to_string(),
            ),
            _ => {}
        }
    }
    sources
}

/// Whether a SOURCE stays on this machine: local tools, a captured file,
/// or ssh to a loopback address.
fn is_loopback_source(source: &str) -> bool {
    let host = source
        .strip_prefix("ssh://")
        .unwrap_or(source)
        .rsplit('@')
        .next()
        .unwrap_or("");
    let host = host.split(':').next().unwrap_or("");
    source == "local"
        || source.starts_with("file:")
        || host == "localhost"
        || host.starts_with("127.")
}

/// Copies the shipped directories into a fresh directory laid out like the repository.
fn shipped_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for sub in SHIPPED {
        let to = dir.path().join(sub);
        let parent = to.parent().expect("a parent");
        std::fs::create_dir_all(parent).expect("create parent");
        let status = Command::new("cp")
            .arg("-a")
            .arg(Path::new(REPO).join(sub))
            .arg(parent)
            .status()
            .expect("cp runs");
        assert!(status.success(), "copying {sub}");
    }
    dir
}

/// Runs a non-daemon example with a time limit.
fn run_example(root: &Path, words: &[String]) -> Output {
    let args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
    let child = laxmon_cmd(&args)
        .current_dir(root)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the example");
    wait_limited(child, EXAMPLE_LIMIT, words)
}

fn wait_limited(mut child: Child, limit: Duration, words: &[String]) -> Output {
    let deadline = Instant::now() + limit;
    // Drain the pipes in threads so a chatty example cannot block on them.
    let out = child.stdout.take().expect("stdout");
    let err = child.stderr.take().expect("stderr");
    let read = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let (out, err) = (read(Box::new(out)), read(Box::new(err)));
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{words:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// Starts a `laxmon run` example, waits until it has started and reported a
/// check result (its signal handlers are in place by then), stops it with
/// SIGTERM and returns its exit status and log.
fn run_daemon_example(root: &Path, words: &[String]) -> (Option<i32>, String) {
    let args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
    let mut child = laxmon_cmd(&args)
        .current_dir(root)
        // Results are logged at debug; the example sets no level.
        .env("RUST_LOG", "laxmon=debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the daemon example");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut log = Vec::new();
    let mut started = false;
    let mut ready = false;
    while !ready {
        assert!(
            Instant::now() < deadline,
            "{words:?}: no check result within 90 s; log:\n{}",
            log.join("\n")
        );
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                started |= line.contains("laxmon started");
                ready = started && (line.contains(" check=") || line.contains("\"check\":"));
                log.push(line);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let _ = child.wait();
                panic!(
                    "{words:?} exited before it was ready; log:\n{}",
                    log.join("\n")
                );
            }
        }
    }
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let stop = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > stop {
            let _ = child.kill();
            panic!("{words:?} did not stop after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
        log.push(line);
    }
    (status.code(), log.join("\n"))
}

/// Why an example's outcome is a usage or configuration error, if it is one.
fn usage_error(words: &[String], code: Option<i32>, out: &str, err: &str) -> Option<String> {
    let command = words.get(1).map(String::as_str).unwrap_or("");
    if err.contains("panicked") {
        return Some("it panicked".into());
    }
    match code {
        None => Some("killed by a signal".into()),
        Some(64) => Some("exit 64: bad configuration or usage".into()),
        Some(2) if err.contains("Usage:") || err.starts_with("error:") => {
            Some("exit 2 with clap's usage error".into())
        }
        Some(2) if command == "plan" => Some("laxmon plan exit 2: bad input".into()),
        Some(3) if command == "plugin" && out.starts_with("STACK UNKNOWN") => {
            Some("the plugin's usage error (STACK UNKNOWN)".into())
        }
        _ => None,
    }
}

#[test]
fn every_help_example_runs_on_the_shipped_files() {
    let mut pages = Vec::new();
    help_pages(&[], &mut pages);
    let mut all: Vec<(String, String)> = Vec::new();
    for (prefix, text) in &pages {
        let page = ["laxmon", &prefix.join(" "), "--help"]
            .iter()
            .filter(|w| !w.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        let found = examples(&page, text);
        let leaf = subcommands(text).is_empty();
        assert!(!leaf || !found.is_empty(), "{page} has no example:\n{text}");
        all.extend(found.into_iter().map(|e| (page.clone(), e)));
    }
    let plugins = plugin_names();
    assert!(plugins.len() >= 9, "plugins: {plugins:?}");
    for name in &plugins {
        let page = format!("laxmon plugin {name} --help");
        let text = help_text(&["plugin", name, "--help"]);
        let found = examples(&page, &text);
        assert!(!found.is_empty(), "{page} has no example:\n{text}");
        all.extend(found.into_iter().map(|e| (page.clone(), e)));
    }
    assert!(all.len() >= 40, "only {} examples found", all.len());

    let root = shipped_copy();
    let mut failures = Vec::new();
    for (page, line) in &all {
        let words = shell_words::split(line).unwrap_or_else(|e| panic!("{page}: {line}: {e}"));
        assert_eq!(words[0], "laxmon", "{page}: {line}");
        for path in named_paths(&words) {
            assert!(
                !path.starts_with('/'),
                "{page}: {line}: names {path}, not a shipped file"
            );
            assert!(
                SHIPPED.iter().any(|s| path.starts_with(&format!("{s}/"))),
                "{page}: {line}: names {path}, outside the shipped directories {SHIPPED:?}"
            );
            assert!(
                PathBuf::from(REPO).join(&path).exists(),
                "{page}: {line}: {path} is not in the repository"
            );
        }
        if words.get(1).map(String::as_str) == Some("plugin") {
            for source in plugin_sources(&words) {
                assert!(
                    is_loopback_source(&source),
                    "{page}: {line}: SOURCE {source} would contact another machine; use file: or local"
                );
            }
        }
        let (code, out, err) = if words.get(1).map(String::as_str) == Some("run") {
            let (code, log) = run_daemon_example(root.path(), &words);
            if code != Some(0) {
                failures.push(format!(
                    "{page}: {line}: daemon exit {code:?} after SIGTERM\n{log}"
                ));
            }
            (code, String::new(), log)
        } else {
            let o = run_example(root.path(), &words);
            (o.status.code(), stdout(&o), stderr(&o))
        };
        eprintln!("exit {code:?}: {line}");
        if let Some(why) = usage_error(&words, code, &out, &err) {
            failures.push(format!(
                "{page}: {line}: {why}\nstdout: {out}\nstderr: {err}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_shipped_plan_file_is_the_demo_cluster() {
    let plan = Cluster::load(&Path::new(REPO).join("config/demo-cluster-plan.yaml"), &[])
        .expect("the plan file loads");
    let config = laxmon::config::load(&Path::new(REPO).join("config/laxmon.yaml"))
        .expect("the example configuration loads");
    let demo = config
        .clusters
        .iter()
        .find(|c| c.name == "demo")
        .expect("cluster demo");
    let hosts: Vec<(String, u64, u64)> = plan
        .hosts
        .iter()
        .map(|h| (h.name.clone(), h.memory_mb, h.reserve_mb))
        .collect();
    let servers: Vec<(String, u64, u64)> = demo
        .servers
        .iter()
        .map(|s| (s.name.clone(), s.memory_mb, s.reserve_mb))
        .collect();
    assert_eq!(hosts, servers);
    let down: Vec<&str> = plan
        .hosts
        .iter()
        .filter(|h| h.state == HostState::Down)
        .map(|h| h.name.as_str())
        .collect();
    assert_eq!(
        down,
        ["cs2"],
        "the plan file shows the demo after cs2 failed"
    );
    type VmRow = (String, Option<String>, u64, i64, Option<String>);
    let vms: Vec<VmRow> = plan
        .vms
        .iter()
        .map(|v| {
            (
                v.name.clone(),
                v.host.clone(),
                v.memory_mb,
                v.priority,
                v.anti_affinity.clone(),
            )
        })
        .collect();
    let configured: Vec<VmRow> = demo
        .vms
        .iter()
        .map(|v| {
            (
                v.name.clone(),
                v.home.clone(),
                v.memory_mb,
                v.priority,
                v.anti_affinity.clone(),
            )
        })
        .collect();
    assert_eq!(vms, configured);
}

#[test]
fn extraction_of_examples_and_paths() {
    let help = "Usage: x\n\nExamples (from the root):\n  laxmon a --config config/laxmon.yaml\n  laxmon b\n\nExit 0.\nExample:\n  laxmon c\n";
    assert_eq!(
        examples("t", help),
        vec![
            "laxmon a --config config/laxmon.yaml",
            "laxmon b",
            "laxmon c"
        ]
    );
    let words: Vec<String> = [
        "laxmon",
        "--server",
        "san1=file:tests/fixtures/x.txt",
        "--state",
        "var/sim.json",
        "--connect",
        "qemu:///system",
        "20%",
        "--config",
        "config/laxmon.yaml",
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(
        named_paths(&words),
        vec!["tests/fixtures/x.txt", "config/laxmon.yaml"]
    );
    let words: Vec<String> = "laxmon plugin drbd -H root@san1 --server a=file:x --server b=local --server cs2 --source ssh://root@127.0.0.1:2222"
        .split(' ')
        .map(String::from)
        .collect();
    let sources = plugin_sources(&words);
    assert_eq!(
        sources,
        [
            "root@san1",
            "file:x",
            "local",
            "cs2",
            "ssh://root@127.0.0.1:2222"
        ]
    );
    let loopback: Vec<bool> = sources.iter().map(|s| is_loopback_source(s)).collect();
    assert_eq!(loopback, [false, true, true, false, true]);
}
