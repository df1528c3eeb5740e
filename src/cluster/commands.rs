//! The `laxmon cluster ...` and `laxmon sim ...` subcommands: load what they
//! need, call the executor or the sim, print a report, return an exit status.
//!
//! `laxmon cluster reorg` uses the same [`super::reorganise`] the alarm
//! action uses. Without a fence command it runs the server's alive check once
//! to learn whether the server is confirmed dead. `laxmon cluster
//! start|stop|migrate` call [`super::operate`]; in a cluster with
//! `allow_unfenced` they run the alive checks of the servers without a fence
//! command first, so that a dead one need not answer. Nothing here decides
//! what to run: that is the executor's job.

use super::drivers::sim;
use super::executor::{self, ReorgOptions, ReorgReport, StepOutcome};
use super::manual::{self, OpOptions, OpOutcome, OpReport, VmOp};
use super::model::Action;
use crate::checks::Runner;
use crate::checks::State;
use crate::config::Config;
use std::fmt::Write as _;
use std::path::Path;

/// Exit status for a refused or incomplete run.
const EXIT_FAILED: u8 = 1;
/// Exit status for bad usage (as the CLI's EX_USAGE).
const EXIT_USAGE: u8 = 64;

fn cluster_of<'a>(config: &'a Config, name: &str) -> Result<&'a crate::config::ClusterConfig, u8> {
    config.cluster(name).ok_or_else(|| {
        let known: Vec<&str> = config.clusters.iter().map(|c| c.name.as_str()).collect();
        eprintln!(
            "{}: no cluster named {name:?} (clusters: {})",
            config.path.display(),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        );
        EXIT_USAGE
    })
}

/// `laxmon cluster reorg`: fence, plan and carry out; prints the report.
pub(crate) async fn reorg(
    config: &Config,
    name: &str,
    failed: &str,
    dry_run: bool,
    json: bool,
) -> u8 {
    let cluster = match cluster_of(config, name) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut opts = ReorgOptions {
        dry_run,
        confirmed_dead: false,
    };
    if let Some(server) = cluster.server(failed) {
        if server.fence.is_none() && cluster.allow_unfenced {
            if let Some(check) = server.alive.as_deref().and_then(|c| config.check(c)) {
                let run = Runner::new(config).run(check).await;
                eprintln!(
                    "alive check {}: {} - {}",
                    check.name,
                    run.output.state.as_str(),
                    run.output.output
                );
                opts.confirmed_dead = run.output.state == State::Critical;
            }
        }
    }
    finish(executor::reorganise(cluster, failed, &opts).await, json)
}

/// `laxmon cluster start|stop|migrate`: one VM by hand; prints the report.
pub(crate) async fn operate(
    config: &Config,
    name: &str,
    op: &VmOp,
    dry_run: bool,
    json: bool,
    by: String,
) -> u8 {
    let cluster = match cluster_of(config, name) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut opts = OpOptions {
        dry_run,
        confirmed_dead: Vec::new(),
        by,
    };
    if cluster.allow_unfenced {
        for server in cluster.servers.iter().filter(|s| s.fence.is_none()) {
            if let Some(check) = server.alive.as_deref().and_then(|c| config.check(c)) {
                let run = Runner::new(config).run(check).await;
                if run.output.state == State::Critical {
                    eprintln!(
                        "alive check {}: {} - {}",
                        check.name,
                        run.output.state.as_str(),
                        run.output.output
                    );
                    opts.confirmed_dead.push(server.name.clone());
                }
            }
        }
    }
    match manual::operate(cluster, op, &opts).await {
        Ok(report) => {
            if json {
                match serde_json::to_string(&report) {
                    Ok(s) => println!("{s}"),
                    Err(e) => eprintln!("laxmon: cannot print the report: {e}"),
                }
            } else {
                print!("{}", render_op(&report));
            }
            if report.succeeded() {
                0
            } else {
                EXIT_FAILED
            }
        }
        Err(e) => {
            eprintln!("laxmon: {e}");
            EXIT_FAILED
        }
    }
}

/// An operation's report as text.
pub(crate) fn render_op(r: &OpReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "cluster {}: {}{}",
        r.cluster,
        r.request.describe(),
        if r.dry_run {
            " (dry run: nothing changed)"
        } else {
            ""
        }
    );
    for s in &r.observed {
        match &s.vms {
            Some(vms) => {
                let names: Vec<String> = vms
                    .iter()
                    .map(|v| format!("{}({})", v.name, v.priority))
                    .collect();
                let _ = writeln!(
                    out,
                    "  {:<12} {:>6}/{:<6} MB  {:>6} free  {}",
                    s.server,
                    s.used_mb,
                    s.capacity_mb,
                    s.free_mb,
                    if names.is_empty() {
                        "-".to_string()
                    } else {
                        names.join(" ")
                    }
                );
            }
            None => {
                let safe = r
                    .silent_but_safe
                    .get(&s.server)
                    .map(|why| format!(" ({why})"))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "  {:<12} UNREACHABLE: {}{safe}",
                    s.server,
                    s.error.as_deref().unwrap_or("")
                );
            }
        }
    }
    if let Some(why) = &r.choice {
        let _ = writeln!(out, "chosen: {why}");
    }
    for s in &r.steps {
        let outcome = match s.outcome {
            StepOutcome::Done => "done".to_string(),
            StepOutcome::AlreadyDone => "already done".to_string(),
            StepOutcome::Failed => format!("FAILED: {}", s.error.as_deref().unwrap_or("")),
        };
        let _ = writeln!(
            out,
            "  step {}: {:<40} {outcome} ({} ms)",
            s.index + 1,
            describe(&s.action),
            s.millis
        );
    }
    let word = match r.outcome {
        OpOutcome::Done => "done",
        OpOutcome::Unchanged => "nothing to do",
        OpOutcome::Planned => "dry run",
        OpOutcome::Refused => "REFUSED",
        OpOutcome::Failed => "FAILED",
    };
    let _ = writeln!(out, "{word}: {}", r.message);
    let t = &r.timings;
    let _ = writeln!(
        out,
        "time: observe {:.1} ms, execution {:.1} ms, total {:.1} ms",
        t.observe_ms, t.execution_ms, t.total_ms
    );
    out
}

/// `laxmon cluster restore`: restart VMs a reorganisation stopped.
pub(crate) async fn restore(
    config: &Config,
    name: &str,
    server: &str,
    dry_run: bool,
    json: bool,
) -> u8 {
    let cluster = match cluster_of(config, name) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let opts = ReorgOptions {
        dry_run,
        confirmed_dead: false,
    };
    finish(executor::restore(cluster, server, &opts).await, json)
}

fn finish(result: Result<ReorgReport, executor::ReorgError>, json: bool) -> u8 {
    match result {
        Ok(report) => {
            if json {
                match serde_json::to_string(&report) {
                    Ok(s) => println!("{s}"),
                    Err(e) => eprintln!("laxmon: cannot print the report: {e}"),
                }
            } else {
                print!("{}", render(&report));
            }
            if report.steps_failed > 0 {
                EXIT_FAILED
            } else {
                0
            }
        }
        Err(e) => {
            eprintln!("laxmon: {e}");
            EXIT_FAILED
        }
    }
}

fn describe(a: &Action) -> String {
    match a {
        Action::Stop { vm, host } => format!("stop    {vm} on {host}"),
        Action::Migrate { vm, from, to } => format!("migrate {vm} {from} -> {to}"),
        Action::Start { vm, host } => format!("start   {vm} on {host}"),
    }
}

/// The report as text.
pub(crate) fn render(r: &ReorgReport) -> String {
    let mut out = String::new();
    let what = if r.kind == "restore" {
        format!("restore after {} returned", r.server)
    } else {
        format!("reorganisation after {} failed", r.server)
    };
    let _ = writeln!(
        out,
        "cluster {}: {what}{}{}",
        r.cluster,
        if r.dry_run {
            " (dry run: nothing changed)"
        } else {
            ""
        },
        if r.resumed { " (resumed)" } else { "" }
    );
    let _ = writeln!(out, "safety: {}", r.fencing);
    let _ = writeln!(
        out,
        "plan: {} action(s), {} stop(s), {} migration(s); {} VM(s) left down",
        r.plan.actions.len(),
        r.plan.stops(),
        r.plan.migrations(),
        r.plan.down.len()
    );
    if r.dry_run {
        for (i, a) in r.plan.actions.iter().enumerate() {
            let _ = writeln!(out, "  {:>3}. {}", i + 1, describe(a));
        }
    }
    for s in &r.steps {
        let outcome = match s.outcome {
            StepOutcome::Done => "done".to_string(),
            StepOutcome::AlreadyDone => "already done".to_string(),
            StepOutcome::Failed => format!("FAILED: {}", s.error.as_deref().unwrap_or("")),
        };
        let _ = writeln!(
            out,
            "  round {} step {:>3}: {:<40} {outcome} ({} ms)",
            s.round,
            s.index + 1,
            describe(&s.action),
            s.millis
        );
    }
    for (vm, reason) in &r.plan.reasons {
        let _ = writeln!(out, "  down: {vm}: {reason}");
    }
    if !r.dry_run {
        let _ = writeln!(
            out,
            "steps: {} done, {} failed, {} plan round(s)",
            r.steps_done, r.steps_failed, r.rounds
        );
        let placed: Vec<String> = r
            .placement
            .iter()
            .map(|(vm, h)| format!("{vm}@{}", h.as_deref().unwrap_or("-")))
            .collect();
        let _ = writeln!(out, "placement: {}", placed.join(" "));
    }
    let t = &r.timings;
    let _ = writeln!(
        out,
        "time: fencing {:.1} ms, planning {:.1} ms, execution {:.1} ms, total {:.1} ms",
        t.fencing_ms, t.planning_ms, t.execution_ms, t.total_ms
    );
    out
}

/// `laxmon cluster status`: the live placement per server.
pub(crate) async fn status(config: &Config, name: &str, json: bool) -> u8 {
    let cluster = match cluster_of(config, name) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let status = match crate::query::cluster_status(cluster).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("laxmon: {e}");
            return EXIT_FAILED;
        }
    };
    // JSON keeps its shape: the list of servers.
    match crate::render::render(&status.servers, json, |_| {
        crate::render::cluster_status_text(&status)
    }) {
        Ok(text) => print!("{text}{}", if json { "\n" } else { "" }),
        Err(e) => eprintln!("laxmon: {e}"),
    }
    if status.all_answered() {
        0
    } else {
        EXIT_FAILED
    }
}

/// What `laxmon sim` does to a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SimOp {
    /// Crash it (or partition it).
    Fail {
        /// Unreachable but its VMs keep running.
        partition: bool,
    },
    /// Bring it back.
    Revive,
    /// Power it off (the fence command).
    Fence,
    /// Nagios plugin: OK when up, CRITICAL otherwise.
    Alive,
}

/// `laxmon sim ...`: changes or checks a simulated server.
pub(crate) fn sim(op: SimOp, server: &str, state: &Path) -> u8 {
    let result = match op {
        SimOp::Fail { partition } => sim::fail(state, server, partition),
        SimOp::Revive => sim::revive(state, server),
        SimOp::Fence => sim::fence(state, server),
        SimOp::Alive => {
            return match sim::alive(state, server) {
                Ok(true) => {
                    println!("SIM OK - {server} is up");
                    0
                }
                Ok(false) => {
                    println!("SIM CRITICAL - {server} is down");
                    2
                }
                Err(e) => {
                    println!("SIM UNKNOWN - {e}");
                    3
                }
            }
        }
    };
    match result {
        Ok(msg) => {
            println!("{msg}");
            0
        }
        Err(e) => {
            eprintln!("laxmon sim: {e}");
            EXIT_FAILED
        }
    }
}

/// `laxmon sim show`: the simulated cluster and its history.
pub(crate) fn sim_show(state: &Path, json: bool) -> u8 {
    match sim::load(state) {
        Ok(s) => {
            if json {
                match serde_json::to_string_pretty(&s) {
                    Ok(t) => println!("{t}"),
                    Err(e) => eprintln!("laxmon sim: {e}"),
                }
                return 0;
            }
            for srv in &s.servers {
                let vms: Vec<&str> = s
                    .vms
                    .iter()
                    .filter(|v| v.host.as_deref() == Some(srv.name.as_str()))
                    .map(|v| v.name.as_str())
                    .collect();
                println!(
                    "{:<12} {:<12} {}",
                    srv.name,
                    format!("{:?}", srv.state).to_lowercase(),
                    vms.join(" ")
                );
            }
            let stopped: Vec<&str> = s
                .vms
                .iter()
                .filter(|v| v.host.is_none())
                .map(|v| v.name.as_str())
                .collect();
            println!("{:<12} {:<12} {}", "(stopped)", "", stopped.join(" "));
            0
        }
        Err(e) => {
            eprintln!("laxmon sim: {e}");
            EXIT_FAILED
        }
    }
}
