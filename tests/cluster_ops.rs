//! By-hand operations on one VM through the real binary: `laxmon cluster
//! start|stop|migrate` on a simulated cluster of three servers (the seed's
//! screenshot VMs). Every test replays the sim's history to check that no VM
//! ever ran on two servers, and that refused operations and dry runs
//! changed nothing. The journal shows every operation; an operation and a
//! reorganisation of one cluster never run at once.

mod support;

use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;
use support::bin::{laxmon_path, stderr, stdout, write_file};

/// The seed's screenshot VMs: (name, memory MB, priority, home). cs1 and
/// cs2 are full (5120 MB each), cs3 has 2048 MB free.
const VMS: &[(&str, u64, i64, &str)] = &[
    ("newjoomla", 2048, 10, "cs2"),
    ("debtest", 1024, 1, "cs1"),
    ("clamxp2", 1024, 5, "cs2"),
    ("win3", 3072, 6, "cs3"),
    ("winxpc12", 2048, 4, "cs2"),
    ("t1", 4096, 2, "cs1"),
];

#[derive(Clone, Copy)]
struct Setup {
    /// cs2 has the sim's fence command (else none).
    fence_cs2: bool,
    allow_unfenced: bool,
    delay_ms: u64,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            fence_cs2: true,
            allow_unfenced: false,
            delay_ms: 20,
        }
    }
}

/// A scratch directory with a config of the demo cluster in it.
struct Demo {
    dir: tempfile::TempDir,
    config: String,
}

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
            "clusters:\n  - name: demo\n    driver: sim\n    sim: {{state: {state}, delay: {}ms}}\n    state_dir: {d}/state\n    max_parallel_migrations: 1\n    allow_unfenced: {}\n    servers:\n",
            setup.delay_ms, setup.allow_unfenced
        );
        for s in ["cs1", "cs2", "cs3"] {
            let fence = if s != "cs2" || setup.fence_cs2 {
                format!(", fence: [{bin}, sim, fence, {s}, --state, {state}]")
            } else {
                String::new()
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

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(laxmon_path());
        c.args(args)
            .args(["--config", &self.config, "--log-level", "warn"])
            .env_remove("LAXMON_CONFIG")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        c
    }

    fn laxmon(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("laxmon runs")
    }

    /// `laxmon cluster OP --cluster demo ARGS --json`: the exit status and
    /// the report (when one was printed).
    fn op(&self, op: &str, args: &[&str]) -> (Option<i32>, Value, String) {
        let out = self.laxmon(&self.op_args(op, args));
        let report = serde_json::from_str(stdout(&out).trim()).unwrap_or(Value::Null);
        (out.status.code(), report, stderr(&out))
    }

    fn op_args<'a>(&self, op: &'a str, args: &[&'a str]) -> Vec<&'a str> {
        let mut a = vec!["cluster", op, "--cluster", "demo", "--json"];
        a.extend_from_slice(args);
        a
    }

    fn spawn_op(&self, op: &str, args: &[&str]) -> Child {
        self.command(&self.op_args(op, args))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn laxmon")
    }

    fn sim(&self, args: &[&str]) {
        let state = self.dir.path().join("sim.json").display().to_string();
        let mut a = vec!["sim"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["--state", &state]);
        let out = self.laxmon(&a);
        assert_eq!(out.status.code(), Some(0), "{a:?}: {}", stderr(&out));
    }

    fn sim_state(&self) -> Value {
        let text = std::fs::read_to_string(self.dir.path().join("sim.json")).expect("sim state");
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
                    s(&v["name"]).to_string(),
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

    /// The VM operations the sim carried out: `op vm host[>target]`.
    fn vm_ops(&self) -> Vec<String> {
        self.history()
            .iter()
            .filter(|e| !e["vm"].is_null())
            .map(|e| {
                let target = e["target"]
                    .as_str()
                    .map(|t| format!(">{t}"))
                    .unwrap_or_default();
                let ok = if e["ok"] == Value::Bool(true) {
                    ""
                } else {
                    " REFUSED"
                };
                format!(
                    "{} {} {}{target}{ok}",
                    s(&e["op"]),
                    s(&e["vm"]),
                    s(&e["host"])
                )
            })
            .collect()
    }

    fn journal_path(&self) -> PathBuf {
        self.dir.path().join("state/demo.journal.jsonl")
    }

    fn journal(&self) -> Vec<Value> {
        std::fs::read_to_string(self.journal_path())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn wait_for_journal(&self, what: &str, child: &mut Child, event: &str) {
        for _ in 0..3000 {
            if self.journal().iter().any(|r| r["event"] == event) {
                return;
            }
            if let Some(status) = child.try_wait().expect("try_wait") {
                panic!("{what} ended ({status}) before its {event} record");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("no {event} record of {what} in the journal");
    }
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// Replays the sim history and panics if a VM was ever started while it
/// ran somewhere.
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

fn on(demo: &Demo, vm: &str) -> Option<String> {
    demo.placement().get(vm).cloned().flatten()
}

#[test]
fn start_on_a_given_server_and_on_the_one_laxmon_chooses() {
    let demo = Demo::new(Setup::default());
    let (code, r, err) = demo.op("stop", &["--vm", "debtest"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(r["outcome"], "done", "{r}");
    assert_eq!(r["was_on"], "cs1");
    assert_eq!(r["now_on"], Value::Null);
    assert_eq!(on(&demo, "debtest"), None);

    let (code, r, err) = demo.op("start", &["--vm", "debtest", "--server", "cs1"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(r["outcome"], "done", "{r}");
    assert_eq!(r["server"], "cs1");
    assert_eq!(r["choice"], Value::Null, "not chosen: asked for");
    assert_eq!(r["now_on"], "cs1");
    let steps = r["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 1, "{r}");
    assert_eq!(steps[0]["action"]["op"], "start");
    assert_eq!(steps[0]["outcome"], "done");
    assert!(steps[0]["millis"].is_u64(), "{r}");
    assert_eq!(on(&demo, "debtest").as_deref(), Some("cs1"));

    // Without a server: cs3 has the most free memory (2048 MB, cs1 1024 MB).
    demo.op("stop", &["--vm", "debtest"]);
    let (code, r, err) = demo.op("start", &["--vm", "debtest"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(r["server"], "cs3", "{r}");
    let choice = s(&r["choice"]);
    assert!(
        choice.starts_with(
            "cs3 has the most free memory (2048 MB) of the 2 server(s) debtest fits on"
        ),
        "{choice}"
    );
    assert!(
        choice.contains("cs2: 0 MB free, debtest needs 1024 MB"),
        "{choice}"
    );
    assert_eq!(on(&demo, "debtest").as_deref(), Some("cs3"));
    // What was observed before: every server with its free memory and the
    // VMs' priorities.
    let cs3 = &r["observed"][2];
    assert_eq!(cs3["server"], "cs3");
    assert_eq!(cs3["free_mb"], 2048);
    assert_eq!(cs3["vms"][0]["name"], "win3");
    assert_eq!(cs3["vms"][0]["priority"], 6);

    assert_eq!(
        demo.vm_ops(),
        [
            "shutdown debtest cs1",
            "start debtest cs1",
            "shutdown debtest cs1",
            "start debtest cs3"
        ]
    );
    assert_never_on_two_servers(&demo.history());
}

#[test]
fn the_text_report_says_what_was_chosen_and_done() {
    let demo = Demo::new(Setup::default());
    demo.op("stop", &["--vm", "debtest"]);
    let out = demo.laxmon(&["cluster", "start", "--cluster", "demo", "--vm", "debtest"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    for want in [
        "cluster demo: start debtest\n",
        "cs3            3072/5120   MB    2048 free  win3(6)",
        "chosen: cs3 has the most free memory",
        "step 1: start   debtest on cs3",
        "done: debtest runs on cs3\n",
        "time: observe ",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }
}

#[test]
fn a_stop_of_a_vm_that_does_not_run_is_nothing_to_do() {
    let demo = Demo::new(Setup::default());
    assert_eq!(demo.op("stop", &["--vm", "t1"]).0, Some(0));
    let (code, r, _) = demo.op("stop", &["--vm", "t1"]);
    assert_eq!(code, Some(0));
    assert_eq!(r["outcome"], "unchanged", "{r}");
    assert_eq!(r["message"], "t1 does not run: nothing to stop");
    assert_eq!(r["id"], "", "nothing journalled");
    // A start where it already runs is nothing to do either.
    let (code, r, _) = demo.op("start", &["--vm", "win3", "--server", "cs3"]);
    assert_eq!(code, Some(0));
    assert_eq!(r["outcome"], "unchanged", "{r}");
    assert_eq!(demo.vm_ops(), ["shutdown t1 cs1"]);
}

#[test]
fn migrate_live_and_cold() {
    let demo = Demo::new(Setup::default());
    let (code, r, err) = demo.op("migrate", &["--vm", "debtest", "--to", "cs3"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(r["outcome"], "done", "{r}");
    assert_eq!((s(&r["was_on"]), s(&r["now_on"])), ("cs1", "cs3"));
    assert_eq!(
        r["actions"],
        serde_json::json!([{"op": "migrate", "vm": "debtest", "from": "cs1", "to": "cs3"}])
    );
    let (code, r, err) = demo.op("migrate", &["--vm", "debtest", "--to", "cs1", "--cold"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(r["steps"].as_array().map(Vec::len), Some(2), "{r}");
    assert_eq!(r["now_on"], "cs1");
    assert_eq!(
        demo.vm_ops(),
        [
            "migrate debtest cs1>cs3",
            "shutdown debtest cs3",
            "start debtest cs1"
        ]
    );
    // Where it already runs: nothing to do.
    let (code, r, _) = demo.op("migrate", &["--vm", "debtest", "--to", "cs1"]);
    assert_eq!((code, s(&r["outcome"])), (Some(0), "unchanged"));
    assert_never_on_two_servers(&demo.history());
}

#[test]
fn refusals_change_nothing_and_say_why() {
    let demo = Demo::new(Setup::default());
    demo.op("stop", &["--vm", "t1"]);
    let (code, _, err) = demo.op("migrate", &["--vm", "clamxp2", "--to", "cs1"]);
    assert_eq!(code, Some(0), "{err}");
    // cs1: debtest, clamxp2 (3072 MB free); cs2: newjoomla, winxpc12 (1024
    // MB free); cs3: win3 (2048 MB free); t1 does not run.
    let ops_before = demo.vm_ops();
    // (operation, arguments, the refusal)
    let cases: &[(&str, &[&str], &str)] = &[
        (
            "start",
            &["--vm", "debtest", "--server", "cs3"],
            "debtest already runs on cs1: a VM never runs on two servers (to move it: laxmon cluster migrate)",
        ),
        ("start", &["--vm", "debtest"], "debtest already runs on cs1"),
        (
            "start",
            &["--vm", "t1", "--server", "cs3"],
            "cannot start t1 on cs3: 2048 MB free, t1 needs 4096 MB",
        ),
        (
            "start",
            &["--vm", "t1", "--server", "cs1"],
            "cannot start t1 on cs1: 3072 MB free, t1 needs 4096 MB; lower priority there: debtest (priority 1, 1024 MB)",
        ),
        (
            "start",
            &["--vm", "t1"],
            "no server can start t1 (4096 MB, priority 2): cs1: 3072 MB free",
        ),
        (
            "migrate",
            &["--vm", "win3", "--to", "cs2"],
            "cannot move win3 to cs2: 1024 MB free, win3 needs 3072 MB; lower priority there: winxpc12 (priority 4, 2048 MB)",
        ),
        (
            "migrate",
            &["--vm", "winxpc12", "--to", "cs1"],
            "cannot move winxpc12 to cs1: it runs clamxp2 of the same anti-affinity group av",
        ),
        (
            "migrate",
            &["--vm", "t1", "--to", "cs3"],
            "t1 does not run: nothing to migrate",
        ),
    ];
    for (op, args, want) in cases {
        let (code, r, err) = demo.op(op, args);
        assert_eq!(code, Some(1), "{op} {args:?}: {r} {err}");
        assert_eq!(r["outcome"], "refused", "{op} {args:?}: {r}");
        assert_eq!(r["steps"], serde_json::json!([]), "{op} {args:?}");
        assert!(
            s(&r["message"]).starts_with(want),
            "{op} {args:?}: {}",
            r["message"]
        );
    }
    assert_eq!(demo.vm_ops(), ops_before, "a refusal runs nothing");
    // The text says so for people.
    let out = demo.laxmon(&[
        "cluster",
        "start",
        "--cluster",
        "demo",
        "--vm",
        "t1",
        "--server",
        "cs3",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("REFUSED: cannot start t1 on cs3: 2048 MB free, t1 needs 4096 MB"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn unknown_names_are_refused_with_a_suggestion() {
    let demo = Demo::new(Setup::default());
    let cases: &[(&str, &[&str], &str)] = &[
        (
            "start",
            &["--vm", "debtets"],
            "cluster demo: no VM named \"debtets\" (did you mean \"debtest\"?)",
        ),
        (
            "stop",
            &["--vm", "newjomla"],
            "no VM named \"newjomla\" (did you mean \"newjoomla\"?)",
        ),
        (
            "start",
            &["--vm", "debtest", "--server", "cs7"],
            "no server named \"cs7\" (did you mean \"cs1\"?)",
        ),
        (
            "migrate",
            &["--vm", "win3", "--to", "sc3"],
            "no server named \"sc3\" (did you mean \"cs3\"?)",
        ),
        ("stop", &["--vm", "nosuchvm"], "no VM named \"nosuchvm\""),
    ];
    for (op, args, want) in cases {
        let (code, r, err) = demo.op(op, args);
        assert_eq!(code, Some(1), "{op} {args:?}");
        assert_eq!(r, Value::Null, "no report for a bad name");
        assert!(err.contains(want), "{op} {args:?}: {err}");
    }
    let out = demo.laxmon(&["cluster", "stop", "--cluster", "demi", "--vm", "t1"]);
    assert_eq!(
        out.status.code(),
        Some(64),
        "an unknown cluster is bad usage"
    );
    assert!(demo.vm_ops().is_empty());
}

#[test]
fn a_silent_server_blocks_a_start_unless_it_is_fenced() {
    let demo = Demo::new(Setup::default());
    demo.op("stop", &["--vm", "debtest"]);
    // Cut off, its VMs running on: it might run debtest too.
    demo.sim(&["fail", "cs2", "--partition"]);
    for args in [
        &["--vm", "debtest", "--server", "cs3"][..],
        &["--vm", "debtest"][..],
    ] {
        let (code, r, _) = demo.op("start", args);
        assert_eq!(code, Some(1), "{r}");
        assert!(
            s(&r["message"]).starts_with("cs2 (server cs2 is unreachable: simulated server is partitioned) did not answer and is not fenced or confirmed dead: debtest may run there, so it is not started"),
            "{}",
            r["message"]
        );
        assert!(r["observed"][1]["error"].is_string(), "{r}");
    }
    // A cold migration starts too: refused.
    let (code, r, _) = demo.op("migrate", &["--vm", "t1", "--to", "cs3", "--cold"]);
    assert_eq!((code, s(&r["outcome"])), (Some(1), "refused"), "{r}");
    assert!(
        s(&r["message"]).starts_with("cs2 (server cs2 is unreachable"),
        "{r}"
    );
    // Its VMs cannot be stopped or moved while it does not answer.
    let (code, r, _) = demo.op("stop", &["--vm", "newjoomla"]);
    assert_eq!(code, Some(1));
    assert!(
        s(&r["message"]).contains("newjoomla runs on no server that answered"),
        "{r}"
    );
    let (code, r, _) = demo.op("migrate", &["--vm", "newjoomla", "--to", "cs3"]);
    assert_eq!(code, Some(1));
    assert!(
        s(&r["message"]).contains("cannot tell where newjoomla runs"),
        "{r}"
    );
    assert_eq!(demo.vm_ops(), ["shutdown debtest cs1"]);

    // Fenced by a reorganisation: it runs nothing, so a start may go ahead.
    let out = demo.laxmon(&["cluster", "reorg", "--cluster", "demo", "--failed", "cs2"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (code, r, err) = demo.op("start", &["--vm", "debtest"]);
    assert_eq!(code, Some(0), "{r} {err}");
    assert_eq!(
        r["silent_but_safe"]["cs2"],
        "fenced by a reorganisation (its fence command) and silent since"
    );
    assert!(on(&demo, "debtest").is_some());
    // Back, and then cut off again: the old fencing no longer counts.
    demo.sim(&["revive", "cs2"]);
    assert_eq!(demo.op("stop", &["--vm", "debtest"]).0, Some(0));
    demo.sim(&["fail", "cs2", "--partition"]);
    let (code, r, _) = demo.op("start", &["--vm", "debtest"]);
    assert_eq!(code, Some(1), "{r}");
    assert!(s(&r["message"]).contains("is not fenced"), "{r}");
    assert_never_on_two_servers(&demo.history());
}

#[test]
fn unfenced_mode_lets_a_server_whose_alive_check_is_critical_be_silent() {
    let demo = Demo::new(Setup {
        fence_cs2: false,
        allow_unfenced: true,
        ..Setup::default()
    });
    demo.op("stop", &["--vm", "debtest"]);
    demo.sim(&["fail", "cs2"]);
    let (code, r, err) = demo.op("start", &["--vm", "debtest", "--server", "cs1"]);
    assert_eq!(code, Some(0), "{r} {err}");
    assert!(err.contains("alive check cs2-alive: CRITICAL"), "{err}");
    assert_eq!(
        r["silent_but_safe"]["cs2"],
        "confirmed dead by its alive check cs2-alive (allow_unfenced)"
    );
    assert_never_on_two_servers(&demo.history());
}

#[test]
fn a_dry_run_decides_and_changes_nothing() {
    let demo = Demo::new(Setup::default());
    demo.op("stop", &["--vm", "t1"]);
    let journal = std::fs::read_to_string(demo.journal_path()).expect("journal");
    let ops = demo.vm_ops();
    let cases: &[(&str, &[&str], &str)] = &[
        ("start", &["--vm", "t1"], "would start t1 on cs1"),
        ("stop", &["--vm", "win3"], "would stop win3 on cs3"),
        (
            "migrate",
            &["--vm", "debtest", "--to", "cs3"],
            "would migrate debtest live from cs1 to cs3",
        ),
        (
            "migrate",
            &["--vm", "debtest", "--to", "cs3", "--cold"],
            "would stop debtest on cs1, then start debtest on cs3",
        ),
    ];
    for (op, args, want) in cases {
        let mut a = args.to_vec();
        a.push("--dry-run");
        let (code, r, err) = demo.op(op, &a);
        assert_eq!(code, Some(0), "{op} {args:?}: {err}");
        assert_eq!(r["outcome"], "planned", "{r}");
        assert_eq!(r["dry_run"], true);
        assert_eq!(r["message"], *want);
        assert_eq!(r["steps"], serde_json::json!([]));
    }
    // A refusal is reported in a dry run too.
    let (code, r, _) = demo.op("start", &["--vm", "win3", "--server", "cs1", "--dry-run"]);
    assert_eq!((code, s(&r["outcome"])), (Some(1), "refused"));
    assert_eq!(demo.vm_ops(), ops, "nothing was run");
    assert_eq!(
        std::fs::read_to_string(demo.journal_path()).expect("journal"),
        journal,
        "nothing was journalled"
    );
}

#[test]
fn operations_are_journalled_and_shown_in_the_cluster_status() {
    let demo = Demo::new(Setup::default());
    let (_, r, _) = demo.op("migrate", &["--vm", "debtest", "--to", "cs3"]);
    let id = s(&r["id"]).to_string();
    assert!(!id.is_empty());
    let records: Vec<Value> = demo
        .journal()
        .into_iter()
        .filter(|r| r["id"] == id.as_str())
        .collect();
    let events: Vec<String> = records
        .iter()
        .map(|r| match s(&r["event"]) {
            "step" => format!("step {} {}", r["index"], s(&r["state"])),
            "end" => format!("end {}", s(&r["outcome"])),
            other => other.to_string(),
        })
        .collect();
    assert_eq!(
        events,
        ["op", "step 0 running", "step 0 done", "end finished"]
    );
    assert_eq!(records[0]["op"], "migrate");
    assert_eq!(records[0]["vm"], "debtest");
    assert_eq!(
        records[0]["actions"],
        serde_json::json!([{"op": "migrate", "vm": "debtest", "from": "cs1", "to": "cs3"}])
    );
    assert!(records[0]["by"].is_string(), "who asked: {}", records[0]);

    let out = demo.laxmon(&["cluster", "status", "--cluster", "demo"]);
    let text = stdout(&out);
    assert!(
        text.contains("migrate debtest") && text.contains("finished"),
        "{text}"
    );
    assert!(
        text.contains("cs3            4096/5120   MB    1024 free  debtest(1) win3(6)"),
        "{text}"
    );
}

#[test]
fn cluster_status_json_keeps_its_shape_and_adds_memory_and_priorities() {
    let demo = Demo::new(Setup::default());
    demo.op("stop", &["--vm", "t1"]);
    let out = demo.laxmon(&["cluster", "status", "--cluster", "demo", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let servers: Value = serde_json::from_str(&stdout(&out)).expect("json");
    let servers = servers.as_array().expect("still the list of servers");
    assert_eq!(servers.len(), 3);
    assert_eq!(servers[0]["server"], "cs1");
    assert_eq!(servers[0]["used_mb"], 1024);
    assert_eq!(servers[0]["capacity_mb"], 5120);
    assert_eq!(servers[0]["free_mb"], 4096);
    assert_eq!(
        servers[0]["vms"],
        serde_json::json!([{"name": "debtest", "memory_mb": 1024, "priority": 1, "configured": true}])
    );
    let out = demo.laxmon(&["cluster", "status", "--cluster", "demo"]);
    assert!(
        stdout(&out).contains("not running  t1(2)"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn an_operation_killed_midway_shows_as_interrupted_and_is_closed_by_the_next() {
    let demo = Demo::new(Setup {
        delay_ms: 3000,
        ..Setup::default()
    });
    let mut child = demo.spawn_op("stop", &["--vm", "debtest"]);
    demo.wait_for_journal("the stop", &mut child, "step");
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    let out = demo.laxmon(&["cluster", "status", "--cluster", "demo"]);
    let text = stdout(&out);
    let line = text
        .lines()
        .find(|l| l.contains("stop debtest"))
        .unwrap_or_else(|| panic!("no stop in:\n{text}"));
    assert!(line.contains("INTERRUPTED"), "{text}");
    // The next operation takes the lock, so nobody runs the old one: closed.
    let (code, r, err) = demo.op("stop", &["--vm", "debtest"]);
    assert_eq!(code, Some(0), "{r} {err}");
    let ends: Vec<String> = demo
        .journal()
        .iter()
        .filter(|r| r["event"] == "end")
        .map(|r| s(&r["outcome"]).to_string())
        .collect();
    assert_eq!(ends, ["interrupted", "finished"]);
}

#[test]
fn an_operation_is_refused_while_a_reorganisation_runs() {
    let demo = Demo::new(Setup {
        delay_ms: 1000,
        ..Setup::default()
    });
    demo.sim(&["fail", "cs2"]);
    let mut reorg = demo
        .command(&["cluster", "reorg", "--cluster", "demo", "--failed", "cs2"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn reorg");
    demo.wait_for_journal("the reorganisation", &mut reorg, "plan");
    let (code, r, err) = demo.op("stop", &["--vm", "win3"]);
    assert!(
        reorg.try_wait().expect("try_wait").is_none(),
        "the reorganisation was still running"
    );
    assert_eq!(code, Some(1), "{r}");
    assert!(
        err.contains("cluster demo is busy: the reorganisation after cs2 failed (laxmon process"),
        "{err}"
    );
    // The status shows who holds the cluster meanwhile.
    let out = demo.laxmon(&["cluster", "status", "--cluster", "demo"]);
    assert!(
        stdout(&out).contains("busy: the reorganisation after cs2 failed"),
        "{}",
        stdout(&out)
    );
    assert!(reorg.wait().expect("reorg ends").success());
    assert!(
        !demo.vm_ops().iter().any(|o| o.contains("win3")),
        "{:?}",
        demo.vm_ops()
    );
    // A second operation while one runs: refused as well.
    let mut first = demo.spawn_op("stop", &["--vm", "debtest"]);
    demo.wait_for_journal("the stop", &mut first, "op");
    let (code, _, err) = demo.op("stop", &["--vm", "win3"]);
    assert!(first.try_wait().expect("try_wait").is_none());
    assert_eq!(code, Some(1));
    assert!(
        err.contains("is busy: stop debtest (laxmon process"),
        "{err}"
    );
    assert!(first.wait().expect("stop ends").success());
    assert_never_on_two_servers(&demo.history());
}

#[test]
fn a_reorganisation_waits_for_an_operation_in_progress() {
    let demo = Demo::new(Setup {
        delay_ms: 1500,
        ..Setup::default()
    });
    let mut op = demo.spawn_op("stop", &["--vm", "debtest"]);
    demo.wait_for_journal("the stop", &mut op, "op");
    demo.sim(&["fail", "cs2"]);
    let reorg = demo
        .command(&["cluster", "reorg", "--cluster", "demo", "--failed", "cs2"])
        .output()
        .expect("reorg runs");
    assert_eq!(reorg.status.code(), Some(0), "{}", stderr(&reorg));
    assert!(
        stderr(&reorg).contains("waiting for the cluster lock"),
        "{}",
        stderr(&reorg)
    );
    assert!(op.wait().expect("stop ends").success());
    // In the journal the operation ends before the reorganisation begins,
    // and in the sim debtest stopped before cs2 was fenced.
    let events: Vec<String> = demo
        .journal()
        .iter()
        .filter(|r| matches!(s(&r["event"]), "op" | "begin" | "end"))
        .map(|r| s(&r["event"]).to_string())
        .collect();
    assert_eq!(events, ["op", "end", "begin", "end"]);
    let history = demo.history();
    let stop = history
        .iter()
        .position(|e| s(&e["op"]) == "shutdown")
        .expect("stopped");
    let fence = history
        .iter()
        .position(|e| s(&e["op"]) == "fence")
        .expect("fenced");
    assert!(stop < fence, "{history:?}");
    assert_never_on_two_servers(&history);
}
