//! The whole check engine under load: scheduler + runner + state machine.
//!
//! (a) N plugin checks (Debian's check_dummy) on a fixed interval: checks
//!     completed per minute, CPU seconds per 1000 checks (laxmon and its
//!     children), start lateness, against the raw fork/exec rate of the same
//!     plugin measured first in the same run (tokio `Command`, 32 in flight);
//! (b) N native checks (port checks against loopback listeners in this
//!     process, pings of 127.0.0.1) through the same scheduler;
//! (c) mean and max start lateness (actual start minus planned start) at each level.
//!
//! `cargo bench --bench engine` (as root, for ICMP). Tunables:
//! `LAXMON_BENCH_SECS` (measuring window per level, default 20),
//! `LAXMON_BENCH_PLUGIN_LEVELS` (plugin checks per minute, default 30000,60000,90000,120000,150000),
//! `LAXMON_BENCH_NATIVE_LEVELS` (native checks per minute, default 100000,300000,600000).
//! Talks only to 127.0.0.1.

use laxmon::checks::{Runner, State};
use laxmon::daemon::Scheduler;
use laxmon::result::CheckResult;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const DUMMY: &str = "/usr/lib/nagios/plugins/check_dummy";
const INTERVAL_SECS: u64 = 10;

fn env_list(name: &str, default: &[u64]) -> Vec<u64> {
    std::env::var(name)
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}

/// User + system CPU seconds of this process and its reaped children.
fn cpu_seconds() -> f64 {
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let mut total = 0.0;
    for who in [libc::RUSAGE_SELF, libc::RUSAGE_CHILDREN] {
        // SAFETY: getrusage only writes into the zeroed struct we pass.
        let u = unsafe {
            let mut u: libc::rusage = std::mem::zeroed();
            libc::getrusage(who, &mut u);
            u
        };
        total += tv(u.ru_utime) + tv(u.ru_stime);
    }
    total
}

/// Raw spawn rate of check_dummy: runs/s and CPU-ms per run.
async fn raw_spawn_rate(runs: usize, in_flight: usize) -> (f64, f64) {
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(in_flight));
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..runs {
        let permit = sem.clone().acquire_owned().await.expect("semaphore open");
        set.spawn(async move {
            let out = tokio::process::Command::new(DUMMY)
                .args(["0", "OK"])
                .stdin(std::process::Stdio::null())
                .output()
                .await;
            drop(permit);
            out.map(|o| o.status.success()).unwrap_or(false)
        });
    }
    let mut ok = 0;
    while let Some(r) = set.join_next().await {
        ok += usize::from(matches!(r, Ok(true)));
    }
    let wall = t0.elapsed().as_secs_f64();
    assert_eq!(ok, runs, "check_dummy failed during the baseline");
    (
        runs as f64 / wall,
        (cpu_seconds() - cpu0) * 1000.0 / runs as f64,
    )
}

struct Level {
    per_minute: u64,
    done_per_minute: f64,
    cpu_per_1000: f64,
    mean_late_ms: f64,
    max_late_ms: f64,
    non_ok: u64,
}

/// Runs `checks_yaml` (N checks on a 10 s interval) through the scheduler
/// for `secs` seconds and measures what completed.
async fn run_level(per_minute: u64, checks_yaml: String, secs: u64) -> Level {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("laxmon.yaml");
    let yaml = format!(
        "storage: sqlite:{}/db\nengine:\n  max_processes: 32\ndefaults:\n  interval: {INTERVAL_SECS}s\n  timeout: 10s\n{checks_yaml}",
        dir.path().display()
    );
    std::fs::write(&path, yaml).expect("write config");
    let config = laxmon::config::load(&path).expect("bench config is valid");
    let scheduler = Scheduler::new(&config, Runner::new(&config), Vec::new());
    let (tx, mut rx) = mpsc::unbounded_channel::<CheckResult>();
    let window = Duration::from_secs(secs);
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let stop = tokio::time::sleep(window);
    let sched = tokio::spawn(scheduler.run(tx, stop));
    let mut done = 0u64;
    let mut non_ok = 0u64;
    let mut late_sum = 0f64;
    let mut late_max = 0f64;
    while let Some(r) = rx.recv().await {
        done += 1;
        non_ok += u64::from(r.output.state != State::Ok);
        let late = r.lateness().as_secs_f64() * 1000.0;
        late_sum += late;
        late_max = late_max.max(late);
    }
    let _ = sched.await;
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    Level {
        per_minute,
        done_per_minute: done as f64 * 60.0 / wall,
        cpu_per_1000: cpu * 1000.0 / done.max(1) as f64,
        mean_late_ms: late_sum / done.max(1) as f64,
        max_late_ms: late_max,
        non_ok,
    }
}

fn print_level(l: &Level, raw_per_minute: Option<f64>) {
    let ratio = raw_per_minute
        .map(|r| format!("{:>6.1}%", 100.0 * l.done_per_minute / r))
        .unwrap_or_else(|| "     -".into());
    println!(
        "{:>10} {:>12.0} {:>8} {:>10.3} {:>10.2} {:>10.1} {:>7}",
        l.per_minute,
        l.done_per_minute,
        ratio,
        l.cpu_per_1000,
        l.mean_late_ms,
        l.max_late_ms,
        l.non_ok
    );
}

fn header(what: &str) {
    println!("\n{what}");
    println!(
        "{:>10} {:>12} {:>8} {:>10} {:>10} {:>10} {:>7}",
        "offered/m", "done/m", "vs raw", "CPU-s/1k", "late-mean", "late-max", "non-OK"
    );
}

fn main() {
    let secs: u64 = std::env::var("LAXMON_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let plugin_levels = env_list(
        "LAXMON_BENCH_PLUGIN_LEVELS",
        &[30_000, 60_000, 90_000, 120_000, 150_000],
    );
    let native_levels = env_list("LAXMON_BENCH_NATIVE_LEVELS", &[100_000, 300_000, 600_000]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        if !std::path::Path::new(DUMMY).exists() {
            eprintln!("{DUMMY} missing: apt-get install monitoring-plugins-basic");
            std::process::exit(1);
        }
        let (raw_rate, raw_cpu_ms) = raw_spawn_rate(5000, 32).await;
        let raw_per_minute = raw_rate * 60.0;
        println!("raw fork/exec of check_dummy (tokio Command, 32 in flight): {:.0} runs/min, {:.3} CPU-ms per run", raw_per_minute, raw_cpu_ms);

        header(&format!("(a) plugin checks (check_dummy), {INTERVAL_SECS}s interval, {secs}s window; lateness in ms"));
        for &per_minute in &plugin_levels {
            let n = per_minute * INTERVAL_SECS / 60;
            let mut yaml = String::from("checks:\n");
            for i in 0..n {
                yaml.push_str(&format!("  - {{name: p{i}, kind: plugin, command: [\"{DUMMY}\", \"0\", \"OK\"]}}\n"));
            }
            let l = run_level(per_minute, yaml, secs).await;
            print_level(&l, Some(raw_per_minute));
        }

        // 16 loopback listeners that accept and close.
        let mut ports = Vec::new();
        for _ in 0..16 {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            ports.push(l.local_addr().expect("addr").port());
            tokio::spawn(async move {
                while let Ok((s, _)) = l.accept().await {
                    drop(s);
                }
            });
        }
        header(&format!("(b) native checks: half port (16 loopback listeners), half ping 127.0.0.1 (1 echo), {INTERVAL_SECS}s interval"));
        for &per_minute in &native_levels {
            let n = per_minute * INTERVAL_SECS / 60;
            let mut yaml = String::from("hosts:\n  - {name: lo, address: 127.0.0.1}\nchecks:\n");
            for i in 0..n {
                if i % 2 == 0 {
                    yaml.push_str(&format!("  - {{name: c{i}, kind: port, host: lo, port: {}}}\n", ports[i as usize % ports.len()]));
                } else {
                    yaml.push_str(&format!("  - {{name: c{i}, kind: ping, host: lo, count: 1}}\n"));
                }
            }
            let l = run_level(per_minute, yaml, secs).await;
            print_level(&l, None);
        }
    });
}
