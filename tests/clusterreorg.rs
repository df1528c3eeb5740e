//! End to end: a simulated cluster of three servers with the seed's VMs, and
//! the real `laxmon cluster reorg` binary. The sim's history is replayed to
//! check that fencing comes before any start and that no VM ever runs on two
//! servers; a SIGKILL mid-plan and a rerun finish the plan without repeating
//! a step. Each run prints its time split (fencing, planning, execution).

mod support;

use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use support::bin::{laxmon_path, stderr, stdout, write_file};

/// A scratch directory with a config of the demo cluster in it.
struct Demo {
    dir: tempfile::TempDir,
    config: String,
}

#[derive(Clone, Copy)]
struct Setup {
    /// `fence:` of cs2: the sim's fence command, `false`, or none.
    fence: Fence,
    allow_unfenced: bool,
    delay_ms: u64,
    max_parallel: u32,
}

#[derive(Clone, Copy, PartialEq)]
enum Fence {
    Sim,
    Failing,
    None,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            fence: Fence::Sim,
            allow_unfenced: false,
            delay_ms: 20,
            max_parallel: 2,
        }
    }
}

/// The seed's screenshot VMs: (name, memory MB, priority, home).
const VMS: &[(&str, u64, i64, &str)] = &[
    ("newjoomla", 2048, 10, "cs2"),
    ("debtest", 1024, 1, "cs1"),
    ("clamxp2", 1024, 5, "cs2"),
    ("win3", 3072, 6, "cs3"),
    ("winxpc12", 2048, 4, "cs2"),
    ("t1", 4096, 2, "cs1"),
];

impl Demo {
    fn new(setup: Setup) -> Demo {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display().to_string();
        let bin = laxmon_path();
        let state = format!("{d}/sim.json");
        let mut yaml = String::from("hosts:\n");
        for s in ["cs1", "cs2", "cs3"] {
            yaml += &format!("  - {{name: {s}, address: 127.0.0.1}}\n");
        }
        yaml += "checks:\n";
        for s in ["cs1", "cs2", "cs3"] {
            yaml += &format!(
                "  - {{name: {s}-alive, kind: plugin, command: [{bin}, sim, alive, {s}, --state, {state}]}}\n"
            );
        }
        yaml += &format!(
            "clusters:\n  - name: demo\n    driver: sim\n    sim: {{state: {state}, delay: {}ms}}\n    state_dir: {d}/state\n    max_parallel_migrations: {}\n    allow_unfenced: {}\n    restart_on_return: true\n    servers:\n",
            setup.delay_ms, setup.max_parallel, setup.allow_unfenced
        );
        for s in ["cs1", "cs2", "cs3"] {
            let fence = match (s, setup.fence) {
                ("cs2", Fence::Failing) => {
                    ", fence: [sh, -c, 'echo IPMI timeout >&2; exit 1']".to_string()
                }
                ("cs2", Fence::None) => String::new(),
                _ => format!(", fence: [{bin}, sim, fence, {s}, --state, {state}]"),
            };
            yaml += &format!(
                "      - {{host: {s}, memory_mb: 6144, reserve_mb: 1024, alive: {s}-alive{fence}}}\n"
            );
        }
        yaml += "    vms:\n";
        for (name, mem, prio, home) in VMS {
            let aa = if matches!(*name, "clamxp2" | "winxpc12") {
                ", anti_affinity: av"
            } else {
                ""
            };
            yaml += &format!(
                "      - {{name: {name}, memory_mb: {mem}, priority: {prio}, home: {home}{aa}}}\n"
            );
        }
        let config = write_file(dir.path(), "laxmon.yaml", &yaml);
        let demo = Demo { dir, config };
        let out = demo.laxmon(&["cluster", "status", "--cluster", "demo"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        demo
    }

    fn state(&self) -> String {
        self.dir.path().join("sim.json").display().to_string()
    }

    fn journal(&self) -> PathBuf {
        self.dir.path().join("state/demo.journal.jsonl")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(laxmon_path());
        c.args(args)
            .args(["--config", &self.config, "--log-level", "warn"])
            .env_remove("LAXMON_CONFIG")
            .env_remove("RUST_LOG");
        c
    }

    fn laxmon(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("laxmon runs")
    }

    fn sim(&self, args: &[&str]) -> Output {
        let state = self.state();
        let mut a = vec!["sim"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["--state", &state]);
        self.laxmon(&a)
    }

    fn reorg(&self, extra: &[&str]) -> (Output, Option<Value>) {
        let mut a = vec![
            "cluster",
            "reorg",
            "--cluster",
            "demo",
            "--failed",
            "cs2",
            "--json",
        ];
        a.extend_from_slice(extra);
        let out = self.laxmon(&a);
        let report = serde_json::from_str(stdout(&out).trim()).ok();
        (out, report)
    }

    fn sim_state(&self) -> Value {
        let text = std::fs::read_to_string(self.state()).expect("sim state");
        serde_json::from_str(&text).expect("sim json")
    }

    /// Where each VM runs now, from the sim.
    fn placement(&self) -> BTreeMap<String, Option<String>> {
        self.sim_state()["vms"]
            .as_array()
            .expect("vms")
            .iter()
            .map(|v| {
                (
                    v["name"].as_str().expect("name").to_string(),
                    v["host"].as_str().map(str::to_string),
                )
            })
            .collect()
    }

    fn history(&self) -> Vec<Value> {
        self.sim_state()["history"]
            .as_array()
            .expect("history")
            .clone()
    }
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// Replays the sim history with the test's own model of the cluster and
/// panics if a VM is ever started while it runs somewhere (two servers).
fn assert_never_on_two_servers(history: &[Value]) {
    let mut at: HashMap<String, String> = VMS
        .iter()
        .map(|(n, _, _, h)| (n.to_string(), h.to_string()))
        .collect();
    for e in history.iter().filter(|e| e["ok"] == Value::Bool(true)) {
        let vm = s(&e["vm"]).to_string();
        let host = s(&e["host"]).to_string();
        match s(&e["op"]) {
            "start" => {
                assert!(
                    !at.contains_key(&vm),
                    "{vm} started on {host} while running on {:?}: {e}",
                    at.get(&vm)
                );
                at.insert(vm, host);
            }
            "migrate" => {
                assert_eq!(at.get(&vm), Some(&host), "{e}");
                at.insert(vm, s(&e["target"]).to_string());
            }
            "shutdown" | "destroy" => {
                assert_eq!(at.remove(&vm), Some(host), "{e}");
            }
            "fail" | "fence" => at.retain(|_, h| h != &host),
            _ => {}
        }
    }
}

fn report_timings(label: &str, report: &Value) {
    let t = &report["timings"];
    println!(
        "{label}: fencing {} ms, planning {} ms, execution {} ms, total {} ms ({} steps)",
        t["fencing_ms"],
        t["planning_ms"],
        t["execution_ms"],
        t["total_ms"],
        report["steps"].as_array().map(Vec::len).unwrap_or(0)
    );
}

fn wanted(report: &Value) -> BTreeMap<String, Option<String>> {
    report["plan"]["placement"]
        .as_object()
        .expect("placement")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().map(str::to_string)))
        .collect()
}

#[test]
fn reorg_fences_first_and_ends_as_planned() {
    let demo = Demo::new(Setup::default());
    assert_eq!(demo.sim(&["fail", "cs2"]).status.code(), Some(0));
    let (out, report) = demo.reorg(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = report.expect("a JSON report");
    report_timings("reorg", &report);
    // The plan: t1 (priority 2) makes room for the three VMs of cs2.
    let actions: Vec<String> = report["plan"]["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .map(|a| format!("{} {}", s(&a["op"]), s(&a["vm"])))
        .collect();
    assert_eq!(actions[0], "stop t1", "{actions:?}");
    assert_eq!(actions.len(), 4, "{actions:?}");
    assert_eq!(report["steps_failed"], 0);
    assert_eq!(report["steps_done"], 4);
    // The final state is the plan's placement.
    let mut plan = wanted(&report);
    let now = demo.placement();
    for (vm, host) in &now {
        plan.entry(vm.clone()).or_insert(None);
        assert_eq!(plan.get(vm), Some(host), "{vm}: plan {plan:?} sim {now:?}");
    }
    let history = demo.history();
    let fence = history
        .iter()
        .position(|e| s(&e["op"]) == "fence" && s(&e["host"]) == "cs2")
        .expect("cs2 was fenced");
    for (i, e) in history.iter().enumerate() {
        if s(&e["op"]) == "start" {
            assert!(i > fence, "start before fencing: {e}");
        }
    }
    assert!(
        history.iter().all(|e| e["ok"] == Value::Bool(true)),
        "{history:?}"
    );
    assert_never_on_two_servers(&history);
}

#[test]
fn a_failing_fence_command_refuses_the_reorg() {
    let demo = Demo::new(Setup {
        fence: Fence::Failing,
        ..Setup::default()
    });
    demo.sim(&["fail", "cs2"]);
    let (out, _) = demo.reorg(&[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("refusing to reorganise cluster demo: fencing cs2"),
        "{err}"
    );
    assert!(err.contains("IPMI timeout"), "{err}");
    assert!(
        demo.history().iter().all(|e| s(&e["op"]) == "fail"),
        "nothing but the failure happened"
    );
}

#[test]
fn no_fence_and_unfenced_mode_not_allowed_refuses() {
    let demo = Demo::new(Setup {
        fence: Fence::None,
        ..Setup::default()
    });
    demo.sim(&["fail", "cs2"]);
    let (out, _) = demo.reorg(&[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("has no fence command and allow_unfenced is off"),
        "{err}"
    );
    assert_eq!(demo.history().len(), 1);
}

#[test]
fn unfenced_mode_needs_the_alive_check_to_say_dead() {
    let demo = Demo::new(Setup {
        fence: Fence::None,
        allow_unfenced: true,
        ..Setup::default()
    });
    // cs2 is up: its alive check is OK, so it is not confirmed dead.
    let (out, _) = demo.reorg(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not confirmed dead by its alive check cs2-alive"));
    // Crashed: the alive check is CRITICAL and the operator allowed this mode.
    demo.sim(&["fail", "cs2"]);
    let (out, report) = demo.reorg(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = report.expect("report");
    assert!(s(&report["fencing"]).contains("confirmed dead"), "{report}");
    assert_never_on_two_servers(&demo.history());
}

#[test]
fn unfenced_mode_on_a_partitioned_server_never_starts_a_vm_twice() {
    let demo = Demo::new(Setup {
        fence: Fence::None,
        allow_unfenced: true,
        ..Setup::default()
    });
    // Unreachable, but its VMs still run: exactly what fencing prevents.
    demo.sim(&["fail", "cs2", "--partition"]);
    let (out, report) = demo.reorg(&[]);
    assert_eq!(out.status.code(), Some(1), "the starts cannot succeed");
    let report = report.expect("report");
    assert!(report["steps_failed"].as_u64().unwrap_or(0) > 0, "{report}");
    let history = demo.history();
    assert!(
        history
            .iter()
            .all(|e| !(s(&e["op"]) == "start" && e["ok"] == Value::Bool(true))),
        "no start succeeded: {history:?}"
    );
    assert_never_on_two_servers(&history);
    for vm in ["newjoomla", "clamxp2", "winxpc12"] {
        assert_eq!(demo.placement()[vm].as_deref(), Some("cs2"));
    }
}

#[test]
fn dry_run_plans_and_changes_nothing() {
    let demo = Demo::new(Setup::default());
    demo.sim(&["fail", "cs2"]);
    let (out, report) = demo.reorg(&["--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = report.expect("report");
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["plan"]["actions"].as_array().map(Vec::len), Some(4));
    assert!(s(&report["fencing"]).starts_with("dry run: would fence with"));
    assert_eq!(demo.history().len(), 1, "only the failure");
    assert!(
        !demo.journal().exists()
            || std::fs::read_to_string(demo.journal())
                .unwrap_or_default()
                .is_empty()
    );
}

#[test]
fn restore_restarts_what_the_reorg_stopped_when_the_server_returns() {
    let demo = Demo::new(Setup::default());
    demo.sim(&["fail", "cs2"]);
    let (out, report) = demo.reorg(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = report.expect("report");
    assert_eq!(report["stopped"], serde_json::json!(["t1"]));
    let out = demo.laxmon(&["cluster", "restore", "--cluster", "demo", "--server", "cs2"]);
    assert_eq!(out.status.code(), Some(1), "cs2 is not back yet");
    assert!(
        stderr(&out).contains("cs2 has not returned"),
        "{}",
        stderr(&out)
    );
    demo.sim(&["revive", "cs2"]);
    let out = demo.laxmon(&["cluster", "restore", "--cluster", "demo", "--server", "cs2"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("start   t1 on cs2"),
        "{}",
        stdout(&out)
    );
    assert_eq!(demo.placement()["t1"].as_deref(), Some("cs2"));
    // Restored once: a second restore has nothing to do.
    let out = demo.laxmon(&[
        "cluster",
        "restore",
        "--cluster",
        "demo",
        "--server",
        "cs2",
        "--json",
    ]);
    let again: Value = serde_json::from_str(stdout(&out).trim()).expect("report");
    assert_eq!(again["plan"]["actions"], serde_json::json!([]));
    assert_never_on_two_servers(&demo.history());
}

fn journal_done_steps(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("\"event\":\"step\"") && l.contains("\"state\":\"done\""))
        .count()
}

#[test]
fn sigkill_mid_plan_then_rerun_finishes_without_repeating_a_step() {
    let demo = Demo::new(Setup {
        delay_ms: 300,
        max_parallel: 1,
        ..Setup::default()
    });
    demo.sim(&["fail", "cs2"]);
    let mut child = demo
        .command(&[
            "cluster",
            "reorg",
            "--cluster",
            "demo",
            "--failed",
            "cs2",
            "--json",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn laxmon");
    // Wait (bounded) until the first step is journalled done, then SIGKILL.
    let mut waited = 0;
    while journal_done_steps(&demo.journal()) < 1 {
        assert!(waited < 600, "laxmon made no progress");
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "finished too early"
        );
        std::thread::sleep(Duration::from_millis(20));
        waited += 1;
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    let before = demo.history();
    let vm_ops_before = before.iter().filter(|e| !e["vm"].is_null()).count();
    assert!(
        vm_ops_before < 4,
        "killed before the plan finished: {before:?}"
    );
    println!("killed after {vm_ops_before} of 4 operations");

    let (out, report) = demo.reorg(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = report.expect("report");
    report_timings("resumed reorg", &report);
    assert_eq!(report["resumed"], true, "{report}");
    assert!(
        s(&report["fencing"]).starts_with("fenced earlier"),
        "{report}"
    );

    let history = demo.history();
    assert_never_on_two_servers(&history);
    // Every planned action happened exactly once, none was refused.
    assert!(
        history.iter().all(|e| e["ok"] == Value::Bool(true)),
        "{history:?}"
    );
    for a in report["plan"]["actions"].as_array().expect("actions") {
        let op = match s(&a["op"]) {
            "stop" => "shutdown",
            other => other,
        };
        let n = history
            .iter()
            .filter(|e| s(&e["op"]) == op && e["vm"] == a["vm"])
            .count();
        assert_eq!(n, 1, "{a} happened {n} times: {history:?}");
    }
    assert_eq!(
        history.iter().filter(|e| s(&e["op"]) == "fence").count(),
        1,
        "fenced once"
    );
    let plan = wanted(&report);
    let now = demo.placement();
    for (vm, host) in &plan {
        assert_eq!(now.get(vm), Some(host), "{vm}");
    }
}

#[test]
fn a_step_done_but_not_journalled_is_verified_not_rerun() {
    let demo = Demo::new(Setup::default());
    demo.sim(&["fail", "cs2"]);
    let (out, _) = demo.reorg(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Cut the journal as if laxmon died after the last operation took effect
    // but before it wrote `done` (and `end`).
    let text = std::fs::read_to_string(demo.journal()).expect("journal");
    let mut lines: Vec<&str> = text.lines().collect();
    let last_done = lines
        .iter()
        .rposition(|l| l.contains("\"state\":\"done\""))
        .expect("a done step");
    lines.truncate(last_done);
    std::fs::write(demo.journal(), lines.join("\n") + "\n").expect("rewrite");
    let history_before = demo.history().len();

    let (out, report) = demo.reorg(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = report.expect("report");
    assert_eq!(report["resumed"], true);
    let steps = report["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 1, "only the unconfirmed step: {report}");
    assert_eq!(steps[0]["outcome"], "already_done");
    assert_eq!(
        demo.history().len(),
        history_before,
        "nothing was run again"
    );
}

// ---- through the daemon: a liveness check goes HARD CRITICAL ----

/// A loopback listener standing in for a cluster server's SSH port; it can
/// be stopped (the server dies) and started again (it returns).
struct Liveness {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Liveness {
    fn start(port: u16) -> Liveness {
        let listener =
            std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind liveness port");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(std::sync::atomic::Ordering::SeqCst) {
                match listener.accept() {
                    Ok((sock, _)) => drop(sock),
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Liveness {
            port,
            stop,
            thread: Some(thread),
        }
    }

    fn stop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Liveness {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The demo cluster with real port checks as liveness checks and an alarm
/// rule whose action is `clusterreorg`.
fn daemon_demo(setup: Setup) -> (Demo, Vec<Liveness>) {
    let demo = Demo::new(setup);
    let live: Vec<Liveness> = (0..3).map(|_| Liveness::start(0)).collect();
    let mut yaml = std::fs::read_to_string(&demo.config).expect("config");
    for (i, s) in ["cs1", "cs2", "cs3"].iter().enumerate() {
        let start = yaml
            .find(&format!("  - {{name: {s}-alive,"))
            .expect("alive check line");
        let end = start + yaml[start..].find('\n').expect("line end");
        yaml.replace_range(
            start..end,
            &format!(
                "  - {{name: {s}-alive, kind: port, host: {s}, port: {}, interval: 300ms, retry_interval: 200ms, max_attempts: 2, timeout: 1s}}",
                live[i].port
            ),
        );
    }
    let d = demo.dir.path().display();
    yaml = format!("storage: {{url: \"sqlite:{d}/laxmon.db\", spool_dir: {d}/spool}}\n{yaml}rules:\n  - name: failover\n    match: {{checks: [cs1-alive, cs2-alive, cs3-alive], states: [CRITICAL]}}\n    actions:\n      - clusterreorg: demo\n");
    std::fs::write(&demo.config, yaml).expect("write config");
    (demo, live)
}

fn daemon(demo: &Demo) -> support::daemon::Daemon {
    support::daemon::Daemon::start(&demo.config)
}

fn is_msg(v: &Value, m: &str) -> bool {
    v["message"] == m
}

#[test]
fn the_daemon_fails_over_when_a_liveness_check_goes_hard_critical() {
    let (demo, mut live) = daemon_demo(Setup::default());
    let mut d = daemon(&demo);
    d.wait_for("cs2-alive OK", |v| {
        v["check"] == "cs2-alive" && v["state"] == "OK"
    });
    let failed_at = std::time::Instant::now();
    live[1].stop();
    demo.sim(&["fail", "cs2"]);
    let hard = d.wait_for("cs2-alive HARD", |v| {
        is_msg(v, "HARD state change") && v["check"] == "cs2-alive"
    });
    let detected = failed_at.elapsed();
    assert_eq!(hard["state"], "CRITICAL");
    let done = d.wait_for("reorganised", |v| is_msg(v, "cluster reorganised"));
    let total = failed_at.elapsed();
    assert_eq!(done["server"], "cs2", "{done}");
    assert_eq!(done["steps_failed"], 0, "{done}");
    println!(
        "failure to last VM started: {} ms = detection {} ms + fencing {} ms + planning {} ms + execution {} ms (+ scheduling)",
        total.as_millis(),
        detected.as_millis(),
        done["fencing_ms"],
        done["planning_ms"],
        done["execution_ms"]
    );
    let history = demo.history();
    assert_never_on_two_servers(&history);
    let fence = history
        .iter()
        .position(|e| s(&e["op"]) == "fence")
        .expect("fenced");
    let first_start = history
        .iter()
        .position(|e| s(&e["op"]) == "start")
        .expect("started");
    assert!(
        fence < first_start,
        "fence must come before any start: {history:?}"
    );
    let now = demo.placement();
    for vm in ["newjoomla", "clamxp2", "winxpc12"] {
        let host = now.get(vm).cloned().flatten();
        assert!(
            matches!(host.as_deref(), Some("cs1" | "cs3")),
            "{vm} on {host:?}"
        );
    }
    assert_ne!(now.get("clamxp2"), now.get("winxpc12"), "anti-affinity");

    // cs2 returns: the VMs the reorganisation stopped are started again.
    let stopped: Vec<String> = now
        .iter()
        .filter(|(_, h)| h.is_none())
        .map(|(v, _)| v.clone())
        .collect();
    demo.sim(&["revive", "cs2"]);
    let _back = Liveness::start(live[1].port);
    d.wait_for("restored", |v| {
        is_msg(v, "cluster reorganised") && v["kind"] == "restore"
    });
    let after = demo.placement();
    for vm in &stopped {
        assert!(
            after.get(vm).cloned().flatten().is_some(),
            "{vm} not restarted: {after:?}"
        );
    }
    assert_never_on_two_servers(&demo.history());
    assert_eq!(d.terminate(), 0);
    let alarms = demo.laxmon(&["alarms", "--json"]);
    let alarms: Value = serde_json::from_str(&stdout(&alarms)).expect("alarms json");
    assert!(
        alarms
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["check"] == "cs2-alive")),
        "{alarms}"
    );
}

#[test]
fn a_daemon_killed_mid_plan_finishes_it_after_restart() {
    let (demo, mut live) = daemon_demo(Setup {
        delay_ms: 300,
        max_parallel: 1,
        ..Setup::default()
    });
    let d = daemon(&demo);
    d.wait_for("cs2-alive OK", |v| {
        v["check"] == "cs2-alive" && v["state"] == "OK"
    });
    live[1].stop();
    demo.sim(&["fail", "cs2"]);
    let mut waited = 0;
    while journal_done_steps(&demo.journal()) < 1 {
        assert!(waited < 3000, "the daemon made no progress");
        std::thread::sleep(Duration::from_millis(20));
        waited += 1;
    }
    drop(d); // SIGKILL
    let ops_before = demo.history().iter().filter(|e| !e["vm"].is_null()).count();
    println!("daemon killed after {ops_before} VM operations");
    let d = daemon(&demo);
    d.wait_for("resumed and finished", |v| is_msg(v, "cluster reorganised"));
    let history = demo.history();
    assert_never_on_two_servers(&history);
    assert!(
        history.iter().all(|e| e["ok"] == Value::Bool(true)),
        "{history:?}"
    );
    assert_eq!(
        history.iter().filter(|e| s(&e["op"]) == "fence").count(),
        1,
        "fenced once"
    );
    let mut seen = std::collections::HashSet::new();
    for e in history.iter().filter(|e| !e["vm"].is_null()) {
        let key = format!("{}:{}", s(&e["op"]), s(&e["vm"]));
        assert!(seen.insert(key.clone()), "{key} repeated: {history:?}");
    }
}
