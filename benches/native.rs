//! Throughput and CPU cost of the native `port` and `ping` checks.
//!
//! Runs half port checks (connect to one of 16 loopback listeners served by
//! this same process) and half ping checks of 127.0.0.1 (5 echoes 200 ms apart,
//! the defaults) through one shared `Pinger`, issued evenly at increasing rates,
//! and prints the rate achieved and the CPU seconds (user + system, from
//! `getrusage(RUSAGE_SELF)`, listeners included) per 1000 checks.
//! The goal: 100,000 checks a minute on less than one core.
//!
//! `cargo bench --bench native` (as root, for the ICMP socket). Tunables:
//! `LAXMON_BENCH_SECS` (seconds per level, default 10),
//! `LAXMON_BENCH_LEVELS` (checks per minute, default `1000,10000,50000,100000,200000`),
//! `LAXMON_BENCH_PING_COUNT` (echoes per ping check, default 5).
//! It only ever talks to 127.0.0.1.

use std::time::Duration;

use laxmon::checks::ping::{self, PingCheck, Pinger};
use laxmon::checks::port::{self, PortCheck};
use laxmon::checks::State;
use tokio::net::TcpListener;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// User + system CPU seconds of this process so far.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes into the zeroed struct we pass.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

struct Level {
    per_minute: u64,
    issued: u64,
    ok: u64,
    wall: f64,
    cpu: f64,
    worst_lateness: Duration,
}

async fn run_level(
    per_minute: u64,
    secs: u64,
    ports: &[u16],
    pinger: &Pinger,
    ping_count: u32,
) -> Level {
    let per_second = per_minute as f64 / 60.0;
    let total = (per_second * secs as f64).round().max(1.0) as u64;
    let mut tasks = tokio::task::JoinSet::new();
    let cpu0 = cpu_seconds();
    let start = tokio::time::Instant::now();
    let mut worst_lateness = Duration::ZERO;
    for i in 0..total {
        let at = start + Duration::from_secs_f64(i as f64 / per_second);
        tokio::time::sleep_until(at).await;
        worst_lateness =
            worst_lateness.max(tokio::time::Instant::now().saturating_duration_since(at));
        if i % 2 == 0 {
            let mut check = PortCheck::new("127.0.0.1", ports[(i / 2) as usize % ports.len()]);
            check.timeout = Duration::from_secs(10);
            tasks.spawn(async move { port::run(&check).await.state });
        } else {
            let pinger = pinger.clone();
            let mut check = PingCheck::new("127.0.0.1");
            check.count = ping_count;
            tasks.spawn(async move { ping::run(&pinger, &check).await.state });
        }
    }
    let mut ok = 0;
    while let Some(state) = tasks.join_next().await {
        if matches!(state, Ok(State::Ok)) {
            ok += 1;
        }
    }
    Level {
        per_minute,
        issued: total,
        ok,
        wall: start.elapsed().as_secs_f64(),
        cpu: cpu_seconds() - cpu0,
        worst_lateness,
    }
}

async fn serve(listener: TcpListener) {
    // Accept and close at once: the check only needs the handshake.
    while let Ok((conn, _)) = listener.accept().await {
        drop(conn);
    }
}

fn main() {
    let secs: u64 = env_or("LAXMON_BENCH_SECS", 10);
    let ping_count: u32 = env_or("LAXMON_BENCH_PING_COUNT", 5);
    let levels: Vec<u64> = std::env::var("LAXMON_BENCH_LEVELS")
        .unwrap_or_else(|_| "1000,10000,50000,100000,200000".to_string())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let pinger = Pinger::new().expect("ICMP socket (run the benchmark as root)");
        let mut ports = Vec::new();
        for _ in 0..16 {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            ports.push(listener.local_addr().expect("addr").port());
            tokio::spawn(serve(listener));
        }
        println!(
            "native checks: half port (connect), half ping ({ping_count} echoes, 200 ms apart); \
             {secs} s per level, {} worker threads",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        println!(
            "{:>12} {:>8} {:>8} {:>12} {:>16} {:>10} {:>12}",
            "target/min", "issued", "ok", "achieved/min", "CPU s/1000 chk", "cores", "max late ms"
        );
        for per_minute in levels {
            let l = run_level(per_minute, secs, &ports, &pinger, ping_count).await;
            // The issue window is `secs`; the tail only waits for the last replies.
            let achieved = l.issued as f64 / secs as f64 * 60.0;
            println!(
                "{:>12} {:>8} {:>8} {:>12.0} {:>16.4} {:>10.3} {:>12.1}",
                l.per_minute,
                l.issued,
                l.ok,
                achieved,
                l.cpu / l.issued as f64 * 1000.0,
                l.cpu / l.wall,
                l.worst_lateness.as_secs_f64() * 1000.0
            );
        }
    });
}
