//! Result write throughput into PostgreSQL: the ResultWriter end to end,
//! `Store::write_results` alone, an UNNEST insert and a plain binary COPY of
//! the same rows (the ceiling), plus result-to-row latency at a paced rate.
//!
//! Run: `cargo bench --bench store` (starts a throwaway PostgreSQL like the
//! tests do, or uses `LAXMON_TEST_DATABASE_URL`). `BENCH_ROWS` sets the row
//! count (default 300000), `BENCH_RATE` the paced rate (default 50000/s),
//! `BENCH_STATES=0` leaves out the state snapshots. Under `cargo test
//! --all-targets` it makes a small smoke run instead.

#[allow(dead_code, unreachable_pub)]
#[path = "../tests/support/pg.rs"]
mod pg;

use chrono::{Duration as ChronoDuration, Utc};
use laxmon::checks::{CheckOutput, PerfDatum, State};
use laxmon::config::{Storage, StorageConfig};
use laxmon::state::{CheckState, Policy, Reachability};
use laxmon::store::{ResultRecord, ResultWriter, Store, SubmitError, WriterOptions};
use std::time::{Duration, Instant};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use uuid::Uuid;

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `n` results of 1,000 checks, 2 perfdata items each, with state snapshots.
fn make_rows(n: usize) -> Vec<ResultRecord> {
    let checks = 1000;
    let mut states: Vec<CheckState> = (0..checks).map(|_| CheckState::new()).collect();
    let t0 = Utc::now() - ChronoDuration::minutes(10);
    (0..n)
        .map(|i| {
            let c = i % checks;
            let state = if i % 97 == 0 {
                State::Critical
            } else {
                State::Ok
            };
            let at = t0 + ChronoDuration::microseconds(i as i64 * 10);
            let transition =
                states[c].apply(state, &Policy::default(), Reachability::Reachable, at);
            ResultRecord {
                result_id: Uuid::now_v7(),
                check: format!("check-{c:04}"),
                host: format!("host-{:03}", c % 100),
                kind: "plugin".into(),
                planned: at,
                started: at,
                duration_ms: 3.25,
                output: CheckOutput {
                    state,
                    output: format!("HTTP OK: HTTP/1.1 200 OK - 1234 bytes in 0.0{} s", i % 10),
                    long_output: String::new(),
                    perfdata: vec![
                        PerfDatum {
                            label: "time".into(),
                            value: 0.012,
                            uom: "s".into(),
                            warn: Some("1".into()),
                            crit: Some("2".into()),
                            min: Some(0.0),
                            max: None,
                        },
                        PerfDatum {
                            label: "size".into(),
                            value: 1234.0,
                            uom: "B".into(),
                            warn: None,
                            crit: None,
                            min: Some(0.0),
                            max: None,
                        },
                    ],
                },
                transition,
                check_state: (std::env::var("BENCH_STATES").as_deref() != Ok("0"))
                    .then(|| states[c].clone()),
            }
        })
        .collect()
}

fn rate(rows: usize, d: Duration) -> f64 {
    rows as f64 / d.as_secs_f64()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

/// Feeds `rows` through a writer at `per_sec` (0 = as fast as it takes
/// them); returns the elapsed time until the last row was committed and
/// each row's result-to-row latency.
async fn through_writer(
    store: &Store,
    spool: &std::path::Path,
    rows: &[ResultRecord],
    per_sec: usize,
) -> (Duration, Vec<Duration>) {
    let opts = WriterOptions {
        // Room for every row: this measures the database path, not the spool.
        queue_capacity: rows.len().max(100_000),
        spool_dir: spool.to_path_buf(),
        ..WriterOptions::from_config(&StorageConfig::default())
    };
    let writer = std::sync::Arc::new(ResultWriter::start(store.clone(), opts).expect("writer"));
    let n = rows.len() as u64;
    let start = Instant::now();
    // Poll the committed count: rows commit in order, so row k is visible
    // once `written` exceeds k.
    let poller = {
        let writer = std::sync::Arc::clone(&writer);
        tokio::spawn(async move {
            let mut seen: Vec<(u64, Instant)> = Vec::new();
            loop {
                let w = writer.stats().written;
                if seen.last().map(|s| s.0) != Some(w) {
                    seen.push((w, Instant::now()));
                }
                if w >= n {
                    return seen;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let mut submitted = Vec::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate() {
        if per_sec > 0 {
            let due = start + Duration::from_secs_f64(i as f64 / per_sec as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                if wait > Duration::from_millis(1) {
                    tokio::time::sleep(wait).await;
                }
            }
        }
        loop {
            match writer.submit(r.clone()) {
                Ok(()) => break,
                Err(SubmitError::Full(_)) => tokio::task::yield_now().await,
                Err(e) => panic!("{e}"),
            }
        }
        submitted.push(Instant::now());
    }
    let seen = poller.await.expect("poller");
    let elapsed = start.elapsed();
    let mut lat = Vec::with_capacity(rows.len());
    let mut j = 0;
    for (k, t) in submitted.iter().enumerate() {
        while seen[j].0 <= k as u64 {
            j += 1;
        }
        lat.push(seen[j].1.saturating_duration_since(*t));
    }
    lat.sort();
    let writer =
        std::sync::Arc::try_unwrap(writer).unwrap_or_else(|_| panic!("writer still shared"));
    writer.shutdown(Duration::from_secs(60)).await;
    (elapsed, lat)
}

async fn plain_copy(client: &tokio_postgres::Client, rows: &[ResultRecord]) -> Duration {
    client
        .batch_execute(
            "CREATE TABLE results_baseline (LIKE results INCLUDING DEFAULTS INCLUDING INDEXES)",
        )
        .await
        .expect("baseline table");
    let types = [
        Type::UUID,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TIMESTAMPTZ,
        Type::TIMESTAMPTZ,
        Type::FLOAT8,
        Type::TEXT,
        Type::TEXT,
        Type::INT4,
        Type::TEXT,
        Type::TEXT,
        Type::JSONB,
    ];
    let start = Instant::now();
    let sink = client
        .copy_in(
            "COPY results_baseline (result_id, check_name, host, kind, planned_at, started_at, \
             duration_ms, state, state_type, attempt, output, long_output, perfdata) FROM STDIN BINARY",
        )
        .await
        .expect("copy");
    let w = BinaryCopyInWriter::new(sink, &types);
    tokio::pin!(w);
    for r in rows {
        let t = &r.transition;
        let perf = serde_json::to_value(&r.output.perfdata).expect("perf");
        let attempt = t.current.attempt as i32;
        let values: [&(dyn ToSql + Sync); 13] = [
            &r.result_id,
            &r.check,
            &r.host,
            &r.kind,
            &r.planned,
            &r.started,
            &r.duration_ms,
            &t.current.state.as_str(),
            &t.current.state_type.as_str(),
            &attempt,
            &r.output.output,
            &r.output.long_output,
            &perf,
        ];
        w.as_mut().write(&values).await.expect("copy row");
    }
    w.finish().await.expect("copy finish");
    start.elapsed()
}

async fn unnest_insert(client: &tokio_postgres::Client, rows: &[ResultRecord]) -> Duration {
    client
        .batch_execute(
            "CREATE TABLE results_unnest (LIKE results INCLUDING DEFAULTS INCLUDING INDEXES)",
        )
        .await
        .expect("unnest table");
    let start = Instant::now();
    for chunk in rows.chunks(5000) {
        let ids: Vec<Uuid> = chunk.iter().map(|r| r.result_id).collect();
        let checks: Vec<&str> = chunk.iter().map(|r| r.check.as_str()).collect();
        let hosts: Vec<&str> = chunk.iter().map(|r| r.host.as_str()).collect();
        let kinds: Vec<&str> = chunk.iter().map(|r| r.kind.as_str()).collect();
        let planned: Vec<_> = chunk.iter().map(|r| r.planned).collect();
        let started: Vec<_> = chunk.iter().map(|r| r.started).collect();
        let dur: Vec<f64> = chunk.iter().map(|r| r.duration_ms).collect();
        let state: Vec<&str> = chunk
            .iter()
            .map(|r| r.transition.current.state.as_str())
            .collect();
        let stype: Vec<&str> = chunk
            .iter()
            .map(|r| r.transition.current.state_type.as_str())
            .collect();
        let att: Vec<i32> = chunk
            .iter()
            .map(|r| r.transition.current.attempt as i32)
            .collect();
        let out: Vec<&str> = chunk.iter().map(|r| r.output.output.as_str()).collect();
        let long: Vec<&str> = chunk
            .iter()
            .map(|r| r.output.long_output.as_str())
            .collect();
        let perf: Vec<serde_json::Value> = chunk
            .iter()
            .map(|r| serde_json::to_value(&r.output.perfdata).expect("perf"))
            .collect();
        client
            .execute(
                "INSERT INTO results_unnest (result_id, check_name, host, kind, planned_at, started_at,
                   duration_ms, state, state_type, attempt, output, long_output, perfdata)
                 SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],
                   $6::timestamptz[], $7::float8[], $8::text[], $9::text[], $10::int4[], $11::text[],
                   $12::text[], $13::jsonb[])
                 ON CONFLICT DO NOTHING",
                &[
                    &ids, &checks, &hosts, &kinds, &planned, &started, &dur, &state, &stype, &att,
                    &out, &long, &perf,
                ],
            )
            .await
            .expect("unnest insert");
    }
    start.elapsed()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run());
}

async fn run() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` does not and
    // gets a small smoke run instead of the measurement.
    let measuring = std::env::args().any(|a| a == "--bench");
    let n = env_num("BENCH_ROWS", if measuring { 300_000 } else { 5_000 });
    let paced = env_num("BENCH_RATE", if measuring { 50_000 } else { 5_000 });
    let db = pg::fresh_database().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = StorageConfig {
        backend: Storage::Postgres(db.url.clone()),
        spool_dir: dir.path().join("spool"),
        ..StorageConfig::default()
    };
    let store = Store::open(&cfg).await.expect("open store");
    let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    println!("laxmon store benchmark: {n} results of 1,000 checks into PostgreSQL");
    let rows = make_rows(n);

    // 1. The ResultWriter as fast as it accepts results.
    let (t_writer, lat_fast) = through_writer(&store, &dir.path().join("s1"), &rows, 0).await;
    let writer_rate = rate(n, t_writer);
    println!(
        "ResultWriter, unpaced {:>9.0} rows/s  ({n} rows in {:.2} s; latency p50 {:.0} ms, p99 {:.0} ms: queueing)",
        writer_rate,
        t_writer.as_secs_f64(),
        percentile(&lat_fast, 0.5).as_secs_f64() * 1000.0,
        percentile(&lat_fast, 0.99).as_secs_f64() * 1000.0,
    );

    // 2. Store::write_results alone (the replay path the writer takes for the
    //    spool) in batches of 5,000, every row with its state snapshot.
    let rows2 = make_rows(n);
    let start = Instant::now();
    for chunk in rows2.chunks(5000) {
        store.write_results(chunk).await.expect("write");
    }
    let direct = start.elapsed();
    println!(
        "Store::write_results, replay path (COPY->stage->INSERT ON CONFLICT, + state changes + every snapshot) {:>9.0} rows/s",
        rate(n, direct)
    );

    // 3. UNNEST insert of the same rows (results columns only).
    let t_unnest = unnest_insert(&client, &rows).await;
    println!(
        "UNNEST INSERT .. ON CONFLICT, batches of 5,000 (results only) {:>9.0} rows/s",
        rate(n, t_unnest)
    );

    // 4. Plain binary COPY of the same rows: the ceiling.
    let t_copy = plain_copy(&client, &rows).await;
    let copy_rate = rate(n, t_copy);
    println!(
        "plain binary COPY, one stream (results only) {:>9.0} rows/s",
        copy_rate
    );
    println!(
        "ratio ResultWriter / plain COPY: {:.2}",
        writer_rate / copy_rate
    );

    // 5. Latency at a paced rate.
    let paced_n = (paced * 5).min(n);
    let rows3 = make_rows(paced_n);
    let (t_paced, lat) = through_writer(&store, &dir.path().join("s2"), &rows3, paced).await;
    println!(
        "ResultWriter paced at {paced}/s for {paced_n} rows: achieved {:.0} rows/s; result-to-row latency p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        rate(paced_n, t_paced),
        percentile(&lat, 0.5).as_secs_f64() * 1000.0,
        percentile(&lat, 0.99).as_secs_f64() * 1000.0,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1000.0,
    );
}
