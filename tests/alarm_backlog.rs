//! Start-up with PostgreSQL down and 20,000 checks: the alarm stage cannot
//! restore its state, so results wait for it. The real daemon must stay
//! within a bounded memory while they wait, and once the database is back
//! every problem that became HARD meanwhile has its alarm: still open when
//! the problem is, resolved when it recovered while the database was away.

mod support;

use serde_json::Value;
use std::collections::BTreeSet;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::bin::{laxmon, stderr, stdout, write_file};
use support::daemon::{field, Daemon};

/// Checks against a port that always answers.
const UP: usize = 19_900;
/// Checks against a port nobody listens on: HARD CRITICAL for good.
const DOWN: usize = 50;
/// Checks whose port opens after they became HARD, while the database is still away.
const BACK: usize = 50;
/// How long the database stays away after every problem was confirmed and
/// half of them recovered: 20,000 checks every 10 s (2,000 results a
/// second) pile up six more results each.
const MORE_OUTAGE: Duration = Duration::from_secs(60);
/// The daemon's resident memory must stay below this while the database is
/// away. Measured with this scenario (debug build, 2 shared cores,
/// 2026-12): with the bounded intake 96 MiB when the problems had recovered
/// and still 96 MiB 60 s later; with the unbounded channel it had before,
/// 106 MiB and then 246 MiB, growing 2.4 MiB a second for as long as the
/// database stayed away. Twice the bounded figure leaves room for allocator
/// noise and slower machines (where checks run later, not more of them at
/// once), and an unbounded queue crosses it within this outage.
const RSS_BOUND_KIB: u64 = 192 * 1024;

/// Accepts and closes every connection on `listener`, for ever (the thread
/// ends with the test process).
fn answer(listener: TcpListener) {
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            drop(conn);
        }
    });
}

/// VmRSS of a process in KiB, from /proc.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Samples `pid`'s resident memory every 200 ms, keeping the highest value,
/// until `stop` is set.
fn watch_rss(pid: u32, peak: Arc<AtomicU64>, stop: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            if let Some(kib) = rss_kib(pid) {
                peak.fetch_max(kib, Ordering::SeqCst);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
}

/// Reads log lines until every check in `names` logged a line that
/// satisfies `pred` (a generous deadline guards against a hang).
fn wait_all(
    daemon: &Daemon,
    what: &str,
    mut names: BTreeSet<String>,
    pred: impl Fn(&Value) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(180);
    while !names.is_empty() {
        assert!(
            Instant::now() < deadline,
            "{what}: still waiting for {} checks, e.g. {:?}",
            names.len(),
            names.iter().next()
        );
        match daemon.lines.recv_timeout(Duration::from_millis(200)) {
            Ok(v) if pred(&v) => {
                names.remove(field(&v, "check"));
            }
            Ok(v) if !v["raw"].is_null() => panic!("laxmon: {}", v["raw"]),
            Ok(_) | Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(e) => panic!("laxmon exited while waiting for {what}: {e}"),
        }
    }
}

fn names(prefix: &str, n: usize) -> BTreeSet<String> {
    (0..n).map(|i| format!("{prefix}-{i:05}")).collect()
}

/// 20,000 port checks; the result writer's own memory queue (bounded by
/// `queue_capacity`, tested with the store) is kept small so that the
/// daemon's memory shows what waits for the alarm stage.
fn config(dir: &std::path::Path, url: &str, up: u16, down: u16, back: u16) -> String {
    let mut yaml = format!(
        "storage: {{url: \"{url}\", spool_dir: {}/spool, queue_capacity: 1000}}\n\
         defaults: {{interval: 10s, retry_interval: 1s, max_attempts: 2, timeout: 2s}}\n\
         hosts:\n  - {{name: lo, address: 127.0.0.1}}\n\
         checks:\n",
        dir.display()
    );
    for (prefix, n, port) in [("up", UP, up), ("down", DOWN, down), ("back", BACK, back)] {
        for name in names(prefix, n) {
            yaml.push_str(&format!(
                "  - {{name: {name}, kind: port, host: lo, port: {port}}}\n"
            ));
        }
    }
    write_file(dir, "laxmon.yaml", &yaml)
}

/// Every alarm in the store: (check, still open).
fn alarms(cfg: &str) -> Vec<(String, bool)> {
    let out = laxmon(&["alarms", "--config", cfg, "--json"]);
    if out.status.code() != Some(0) {
        return Vec::new();
    }
    let rows: Value = serde_json::from_str(&stdout(&out))
        .unwrap_or_else(|e| panic!("laxmon alarms --json: {e}: {}", stderr(&out)));
    rows.as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    (
                        r["check"].as_str().unwrap_or("").to_string(),
                        r["resolved"].is_null(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn starting_with_the_database_down_keeps_memory_bounded_and_loses_no_alarm() {
    let cluster = support::pg::OwnCluster::init();
    let dir = tempfile::tempdir().expect("tempdir");
    let up = TcpListener::bind("127.0.0.1:0").expect("bind");
    let up_port = up.local_addr().expect("address").port();
    answer(up);
    let (down_port, back_port) = (support::free_port(), support::free_port());
    let cfg = config(dir.path(), &cluster.url(), up_port, down_port, back_port);

    let mut daemon = Daemon::start_logging(&cfg, "info");
    let peak = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    watch_rss(daemon.pid(), Arc::clone(&peak), Arc::clone(&stop));

    let failing: BTreeSet<String> = names("down", DOWN)
        .union(&names("back", BACK))
        .cloned()
        .collect();
    wait_all(&daemon, "HARD CRITICAL", failing, |v| {
        field(v, "message") == "HARD state change" && field(v, "state") == "CRITICAL"
    });
    answer(TcpListener::bind(("127.0.0.1", back_port)).expect("bind the recovering port"));
    wait_all(&daemon, "recovery", names("back", BACK), |v| {
        field(v, "message") == "state change" && field(v, "state") == "OK"
    });
    let at_recovery = rss_kib(daemon.pid()).unwrap_or(0);
    // Results keep coming while the database stays away.
    let until = Instant::now() + MORE_OUTAGE;
    while Instant::now() < until {
        let _ = daemon.lines.recv_timeout(Duration::from_millis(200));
    }
    let outage_peak = peak.load(Ordering::SeqCst);
    let at_end = rss_kib(daemon.pid()).unwrap_or(0);
    eprintln!(
        "VmRSS while the database was away: {at_recovery} KiB when the problems had recovered, \
         {at_end} KiB {} s later, peak {outage_peak} KiB",
        MORE_OUTAGE.as_secs()
    );

    cluster.start_server();
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        while daemon.lines.try_recv().is_ok() {}
        seen = alarms(&cfg);
        let open = seen
            .iter()
            .filter(|(c, open)| c.starts_with("down-") && *open)
            .count();
        let resolved = seen
            .iter()
            .filter(|(c, open)| c.starts_with("back-") && !*open)
            .count();
        if open == DOWN && resolved == BACK {
            break;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    stop.store(true, Ordering::SeqCst);
    eprintln!(
        "peak VmRSS up to the alarms being stored: {} KiB",
        peak.load(Ordering::SeqCst)
    );
    assert_eq!(daemon.terminate(), 0);

    let mut expected: Vec<(String, bool)> = names("down", DOWN)
        .into_iter()
        .map(|c| (c, true))
        .chain(names("back", BACK).into_iter().map(|c| (c, false)))
        .collect();
    expected.sort();
    seen.sort();
    assert_eq!(
        seen, expected,
        "one alarm per confirmed problem: open for the ports still closed, resolved for the one that opened"
    );
    assert!(
        outage_peak < RSS_BOUND_KIB,
        "VmRSS reached {outage_peak} KiB while the database was away (bound {RSS_BOUND_KIB} KiB)"
    );
}
