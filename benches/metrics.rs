//! The metrics registry's costs: recording one check run (what the
//! scheduler pays per run), the same from several threads at once, and one
//! scrape (`render_text`) with 60,000 checks configured.
//!
//! Run: `cargo bench --bench metrics` (prints figures; `BENCH_RUNS` sets the
//! recorded runs, default 10,000,000). `--print` also prints one exposition.
//! Under `cargo test --all-targets` it makes a small smoke run instead.

use laxmon::checks::State;
use laxmon::metrics;
use std::time::{Duration, Instant};

const KINDS: [&str; 4] = ["ping", "port", "init", "plugin"];
const STATES: [State; 4] = [State::Ok, State::Warning, State::Critical, State::Unknown];

fn record(n: usize, salt: usize) {
    let now = chrono::Utc::now();
    for i in 0..n {
        let j = i + salt;
        metrics::check_run_started();
        metrics::check_run_finished(
            KINDS[j % 4],
            STATES[(j / 4) % 4],
            now + chrono::Duration::milliseconds((i / 1000) as i64),
            Duration::from_micros((j % 5000) as u64),
            Duration::from_micros((j % 70_000) as u64),
        );
    }
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let print = std::env::args().any(|a| a == "--print");
    let n: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if measuring { 10_000_000 } else { 10_000 });
    metrics::mark_start();
    metrics::config_loaded((0..60_000).map(|i| if i % 3 == 0 { "port" } else { "plugin" }));

    let t = Instant::now();
    record(n, 0);
    let one = t.elapsed();
    println!(
        "check_run_started + check_run_finished, 1 thread: {:>6.1} ns per run ({n} runs in {:.2?})",
        one.as_nanos() as f64 / n as f64,
        one
    );

    let threads = 4;
    let t = Instant::now();
    std::thread::scope(|s| {
        for k in 0..threads {
            s.spawn(move || record(n / threads, k));
        }
    });
    let many = t.elapsed();
    println!(
        "same, {threads} threads at once:                {:>6.1} ns per run (wall clock over all runs)",
        many.as_nanos() as f64 / (n / threads * threads) as f64
    );

    let scrapes = if measuring { 2000 } else { 20 };
    let mut times = Vec::with_capacity(scrapes);
    let mut bytes = 0;
    for _ in 0..scrapes {
        let t = Instant::now();
        let text = metrics::render_text();
        times.push(t.elapsed());
        bytes = text.len();
    }
    times.sort();
    println!(
        "render_text, 60,000 checks configured: median {:.1?}, p99 {:.1?}, max {:.1?} ({bytes} bytes, {} lines)",
        times[times.len() / 2],
        times[times.len() * 99 / 100],
        times[times.len() - 1],
        metrics::render_text().lines().count(),
    );
    let t = Instant::now();
    for _ in 0..scrapes {
        std::hint::black_box(metrics::snapshot());
    }
    println!("snapshot: {:.1?} each", t.elapsed() / scrapes as u32);
    if print {
        print!("{}", metrics::render_text());
    }
}
