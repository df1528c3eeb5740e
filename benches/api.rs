//! The operations API and the web dashboard at scale: the real daemon with
//! 60,000 checks configured (check_dummy, hourly, so the engine is nearly
//! idle; one in a hundred CRITICAL, every 10 s, so the problems page has
//! 600 problems to count, sort and list), and sequential keep-alive
//! requests to each endpoint and page (server-side rendering included). The floor, measured in
//! the same run, is a request the router answers 404 after authentication:
//! what HTTP, auth and routing cost with no work behind them.
//!
//! `cargo bench --bench api`. Tunables: `LAXMON_BENCH_API_CHECKS` (default
//! 60000), `LAXMON_BENCH_API_REQUESTS` (per endpoint, default 200). Under
//! `cargo test --all-targets` it makes a small smoke run instead. Talks only
//! to 127.0.0.1.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Milliseconds per request: (mean, p50, p99, max).
fn measure(client: &reqwest::blocking::Client, url: &str, n: usize) -> (f64, f64, f64, f64, usize) {
    let mut times = Vec::with_capacity(n);
    let mut bytes = 0;
    for _ in 0..n {
        let t = Instant::now();
        let r = client.get(url).send().expect("request");
        assert!(
            r.status().is_success() || url.ends_with("/nothing"),
            "{url}: {}",
            r.status()
        );
        let body = r.bytes().expect("body");
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        bytes = body.len();
    }
    times.sort_by(f64::total_cmp);
    let mean = times.iter().sum::<f64>() / n as f64;
    let at = |q: f64| times[((n as f64 * q) as usize).min(n - 1)];
    (mean, at(0.5), at(0.99), times[n - 1], bytes)
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let n_checks = env_num(
        "LAXMON_BENCH_API_CHECKS",
        if measuring { 60_000 } else { 500 },
    );
    let n_req = env_num("LAXMON_BENCH_API_REQUESTS", if measuring { 200 } else { 5 });
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display().to_string();
    let port = free_port();
    let mut yaml = format!(
        "storage: {{url: \"sqlite:{d}/laxmon.db\", spool_dir: {d}/spool}}\nhttp:\n  listen: 127.0.0.1:{port}\n  anonymous: read\nhosts:\n"
    );
    for h in 0..(n_checks / 20).max(1) {
        yaml.push_str(&format!(
            "  - {{name: h{h:05}, address: 127.0.0.1, tags: [rack{}]}}\n",
            h % 10
        ));
    }
    yaml.push_str("checks:\n");
    let failing = |i: usize| i % 100 == 50;
    for i in 0..n_checks {
        let (code, interval) = if failing(i) {
            ("2", "10s")
        } else {
            ("0", "1h")
        };
        yaml.push_str(&format!(
            "  - {{name: c{i:06}, host: h{:05}, run_on: local, kind: plugin, command: [/usr/lib/nagios/plugins/check_dummy, \"{code}\", \"output of c{i:06}\"], interval: {interval}, max_attempts: 1}}\n",
            i / 20
        ));
    }
    let n_failing = (0..n_checks).filter(|&i| failing(i)).count();
    let cfg = dir.path().join("laxmon.yaml");
    std::fs::write(&cfg, yaml).expect("config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_laxmon"))
        .args(["run", "--config"])
        .arg(&cfg)
        .args(["--log-format", "json", "--log-level", "warn"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start laxmon");
    let stderr = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("\"ERROR\"") || line.contains("panicked") {
                eprintln!("laxmon: {line}");
            }
        }
    });
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    loop {
        let running = client
            .get(format!("{base}/api/v1/status"))
            .send()
            .ok()
            .and_then(|r| r.json::<serde_json::Value>().ok())
            .is_some_and(|v| v["running"] == true);
        if running {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the daemon never came up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Every failing check has run once: the problems page lists them all.
    loop {
        let critical = client
            .get(format!("{base}/api/v1/checks?state=critical&limit=5000"))
            .send()
            .ok()
            .and_then(|r| r.json::<serde_json::Value>().ok())
            .and_then(|v| v["checks"].as_array().map(Vec::len))
            .unwrap_or(0);
        if critical >= n_failing {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "only {critical} of {n_failing} failing checks ran"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    println!(
        "laxmon API benchmark: {n_checks} checks configured ({n_failing} CRITICAL), {n_req} sequential keep-alive requests per endpoint (up in {:.1} s, RSS {} MiB)",
        started.elapsed().as_secs_f64(),
        rss_kib(child.id()) / 1024
    );
    let endpoints: &[(&str, &str)] = &[
        ("floor: 404 after auth+routing", "/api/v1/nothing"),
        ("status", "/api/v1/status"),
        ("checks, first page of 100", "/api/v1/checks?limit=100"),
        (
            "checks, page of 100 mid-way (cursor)",
            "/api/v1/checks?limit=100&cursor=c030000",
        ),
        ("checks, page of 1000", "/api/v1/checks?limit=1000"),
        (
            "checks, state=critical (scans all, first 100 of 600)",
            "/api/v1/checks?state=critical",
        ),
        (
            "checks, tag=rack3 page of 100",
            "/api/v1/checks?tag=rack3&limit=100",
        ),
        (
            "checks, name glob matching one",
            "/api/v1/checks?name=c05999*",
        ),
        (
            "one check (with its last result from the store)",
            "/api/v1/checks/c000001",
        ),
        ("metrics", "/metrics"),
        ("dashboard: problems page (counts all, lists 500)", "/"),
        ("dashboard: hosts view, first 500 checks", "/hosts"),
        (
            "dashboard: hosts view, state=problem (scans all)",
            "/hosts?state=problem",
        ),
        (
            "dashboard: hosts view, name glob c0599*",
            "/hosts?name=c0599*",
        ),
        (
            "dashboard: check detail (24 h charts from the store)",
            "/check/c000050",
        ),
    ];
    let mut floor = None;
    println!(
        "{:<50} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "endpoint", "mean ms", "p50 ms", "p99 ms", "max ms", "x floor", "bytes"
    );
    for (name, path) in endpoints {
        let (mean, p50, p99, max, bytes) = measure(&client, &format!("{base}{path}"), n_req);
        let f = *floor.get_or_insert(mean);
        println!(
            "{name:<50} {mean:>9.3} {p50:>9.3} {p99:>9.3} {max:>9.3} {:>9.1} {bytes:>8}",
            mean / f
        );
    }
    println!("RSS after: {} MiB", rss_kib(child.id()) / 1024);
    let _ = child.kill();
    let _ = child.wait();
}
