//! `/metrics` without the HTTP server: the real daemon (`daemon::run` in
//! this process, on SQLite) runs plugin and port checks, opens an alarm,
//! delivers notifications to a webhook that answers 200 and one that
//! answers 500, runs a script action, refuses an invalid reload and takes a
//! valid one; then `metrics::render_text()` is parsed with a Prometheus
//! text-format parser and every family is checked for name, type, labels
//! and values, and `metrics::snapshot()` for what a status page shows.
//!
//! One test in this binary: the registry is process-wide. The daemon is
//! stopped with SIGHUP/SIGTERM sent to this process, as systemd would
//! (tokio's handlers catch them once the scheduler runs).

mod support;

use laxmon::daemon::{self, Stop};
use laxmon::metrics;
use prometheus_parse::{Sample, Scrape, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use support::bin::write_file;

/// Waits (bounded) until `pred` holds for the snapshot.
async fn eventually(what: &str, pred: impl Fn(&metrics::MetricsSnapshot) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = metrics::snapshot();
        if pred(&s) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for: {what}; snapshot {s:?}\n{}",
            metrics::render_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn signal_self(sig: i32) {
    // SAFETY: kill(2) on our own pid; tokio's handler for `sig` is installed.
    unsafe {
        libc::kill(std::process::id() as i32, sig);
    }
}

/// The samples of `name`, each as (labels, value); histograms as their `+Inf` count.
fn values(scrape: &Scrape, name: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .map(|s| {
            let labels = s
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let v = match &s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
                Value::Histogram(b) => b.last().map_or(f64::NAN, |b| b.count),
                Value::Summary(_) => f64::NAN,
            };
            (labels, v)
        })
        .collect()
}

/// The value of `name` with exactly `labels`.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let hits: Vec<f64> = values(scrape, name)
        .into_iter()
        .filter(|(l, _)| *l == want)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(hits.len(), 1, "one sample {name}{labels:?}: {hits:?}");
    hits[0]
}

/// The label sets of `name`, as `k=v,...` strings.
fn label_sets(scrape: &Scrape, name: &str) -> BTreeSet<String> {
    values(scrape, name)
        .into_iter()
        .map(|(l, _)| {
            l.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect()
}

/// What the parser forgives: every line is a HELP, a TYPE or a well-formed
/// sample; every family has one HELP and one TYPE, before its samples;
/// names follow the naming rules.
fn check_text_format(text: &str) -> BTreeMap<String, String> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut helps = BTreeSet::new();
    let valid_name = |n: &str| {
        !n.is_empty()
            && n.starts_with("laxmon_")
            && n.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP has text");
            assert!(valid_name(name) && !help.is_empty(), "{line}");
            assert!(helps.insert(name.to_string()), "second HELP: {line}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE has a type");
            assert!(valid_name(name), "{line}");
            assert!(helps.contains(name), "TYPE before HELP: {line}");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "second TYPE: {line}"
            );
            continue;
        }
        let (series, v) = line.rsplit_once(' ').expect("sample has a value");
        v.parse::<f64>()
            .unwrap_or_else(|e| panic!("{line}: value {v:?}: {e}"));
        let name = series.split('{').next().unwrap_or("");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|s| name.strip_suffix(s))
            .find(|f| types.get(*f).is_some_and(|t| t == "histogram"))
            .unwrap_or(name);
        assert!(types.contains_key(family), "sample before its TYPE: {line}");
        if let Some(labels) = series.strip_prefix(name) {
            if !labels.is_empty() {
                assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
                for pair in labels[1..labels.len() - 1].split(',') {
                    let (k, v) = pair.split_once('=').expect("label k=v");
                    assert!(
                        k.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                        "{line}"
                    );
                    assert!(v.starts_with('"') && v.ends_with('"'), "{line}");
                }
            }
        }
    }
    for (name, kind) in &types {
        assert_eq!(
            name.ends_with("_total"),
            kind == "counter",
            "`_total` is for counters and every counter has it: {name} ({kind})"
        );
        if kind == "histogram" {
            assert!(name.ends_with("_seconds"), "histograms in seconds: {name}");
        }
    }
    types
}

/// Buckets never decrease, `+Inf` equals `_count`, for every labelled histogram.
fn check_histograms(scrape: &Scrape, text: &str, name: &str) {
    let hists: Vec<&Sample> = scrape.samples.iter().filter(|s| s.metric == name).collect();
    assert!(!hists.is_empty(), "histogram {name} has samples");
    for h in hists {
        let Value::Histogram(buckets) = &h.value else {
            panic!("{name} parsed as {:?}", h.value)
        };
        assert!(buckets.windows(2).all(|w| w[0].less_than < w[1].less_than));
        assert!(
            buckets.windows(2).all(|w| w[0].count <= w[1].count),
            "{buckets:?}"
        );
        let last = buckets.last().expect("buckets");
        assert!(last.less_than.is_infinite(), "{name} ends in +Inf");
        let labels: Vec<String> = {
            let mut l: Vec<String> = h
                .labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{v}\""))
                .collect();
            l.sort();
            l
        };
        let count_line = if labels.is_empty() {
            format!("{name}_count ")
        } else {
            format!("{name}_count{{{}}} ", labels.join(","))
        };
        let count: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix(&count_line))
            .unwrap_or_else(|| panic!("no {count_line:?}"))
            .parse()
            .expect("count");
        assert_eq!(count, last.count, "{name}{labels:?}: _count equals +Inf");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_after_real_work_parse_and_add_up() {
    metrics::mark_start();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display().to_string();
    let plugin = write_file(
        dir.path(),
        "plugin.sh",
        "#!/bin/sh\necho \"$1 state $2\"\nexit $2\n",
    );
    std::fs::set_permissions(&plugin, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let open_port = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = open_port.local_addr().expect("addr").port();
    let ok_hook = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let ok_port = ok_hook.local_addr().expect("addr").port();
    let bad_hook = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let bad_port = bad_hook.local_addr().expect("addr").port();
    let ok_rec = support::http::serve(ok_hook, 200, "ok");
    let _bad_rec = support::http::serve(bad_hook, 500, "broken");
    tokio::spawn(async move { while let Ok((_sock, _)) = open_port.accept().await {} });
    let scripts = concat!(env!("CARGO_MANIFEST_DIR"), "/alarm-scripts");
    let yaml = format!(
        "storage: {{url: \"sqlite:{d}/db\", spool_dir: {d}/spool}}\n\
         engine: {{max_processes: 7}}\n\
         hosts:\n  - {{name: lo, address: 127.0.0.1}}\n\
         checks:\n\
         \x20 - {{name: fine, kind: plugin, command: [\"{plugin}\", fine, \"0\"], interval: 300ms}}\n\
         \x20 - {{name: down, kind: plugin, command: [\"{plugin}\", down, \"2\"], interval: 300ms, max_attempts: 1}}\n\
         \x20 - {{name: web, kind: port, host: lo, port: {port}, interval: 300ms}}\n\
         alarms:\n  scripts_dir: {scripts}\n  group_window: 0s\n\
         notifiers:\n\
         \x20 - {{name: hook, kind: webhook, url: \"http://127.0.0.1:{ok_port}/hook\"}}\n\
         \x20 - {{name: bad, kind: webhook, url: \"http://127.0.0.1:{bad_port}/hook\"}}\n\
         contacts:\n  - {{name: ops, via: [hook, bad]}}\n\
         rules:\n\
         \x20 - name: page\n    match: {{checks: [down]}}\n    notify: [ops]\n\
         \x20   actions:\n      - {{script: log-alarm, args: [\"{d}/actions.log\"], timeout: 10s}}\n"
    );
    let cfg_path = write_file(dir.path(), "laxmon.yaml", &yaml);
    let config = laxmon::config::load(std::path::Path::new(&cfg_path)).expect("config loads");

    // The daemon, restarted on reload as `laxmon run` does.
    let shared = daemon::Shared::new(std::path::Path::new(&cfg_path));
    let daemon = tokio::spawn(async move {
        let mut config = config;
        let mut runs = 0;
        loop {
            runs += 1;
            match daemon::run(config, std::sync::Arc::clone(&shared))
                .await
                .expect("daemon runs")
            {
                Stop::Terminated => return runs,
                Stop::Reload(new) => config = *new,
            }
        }
    });

    eventually("checks ran, an alarm is open, notified and acted on", |s| {
        s.config_generation == 1
            && s.check_runs >= 6
            && s.open_alarms == 1
            && s.store_available == Some(true)
            && std::fs::read_to_string(dir.path().join("actions.log"))
                .is_ok_and(|l| l.contains("check=down"))
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while ok_rec.all().is_empty() {
        assert!(Instant::now() < deadline, "webhook never called");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A reload with an invalid configuration is refused; the old one runs on.
    std::fs::write(&cfg_path, "checks: [oops\n").expect("break config");
    signal_self(libc::SIGHUP);
    eventually("the invalid reload is counted", |s| {
        s.last_reload.is_some_and(|r| !r.ok)
    })
    .await;
    assert_eq!(metrics::snapshot().config_generation, 1);
    let text = metrics::render_text();
    assert!(
        text.contains("\nlaxmon_config_last_reload_successful 0\n"),
        "{text}"
    );
    // A valid one is put to work: generation 2.
    std::fs::write(&cfg_path, &yaml).expect("restore config");
    signal_self(libc::SIGHUP);
    eventually("the reloaded configuration runs", |s| {
        s.config_generation == 2 && s.last_reload.is_some_and(|r| r.ok) && s.open_alarms == 1
    })
    .await;
    let runs_before = metrics::snapshot().check_runs;
    eventually("checks run after the reload", |s| {
        s.check_runs >= runs_before + 3
    })
    .await;
    signal_self(libc::SIGTERM);
    let pipelines = tokio::time::timeout(Duration::from_secs(120), daemon)
        .await
        .expect("daemon stops after SIGTERM")
        .expect("daemon task");
    assert_eq!(pipelines, 2, "started, reloaded once, stopped");

    let text = metrics::render_text();
    let types = check_text_format(&text);
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("parses");
    for name in types.keys() {
        assert!(scrape.docs.contains_key(name), "HELP of {name}");
    }
    let want_types = [
        ("laxmon_build_info", "gauge"),
        ("laxmon_start_time_seconds", "gauge"),
        ("laxmon_uptime_seconds", "gauge"),
        ("laxmon_config_generation", "gauge"),
        ("laxmon_config_reloads_total", "counter"),
        ("laxmon_config_last_reload_successful", "gauge"),
        (
            "laxmon_config_last_reload_success_timestamp_seconds",
            "gauge",
        ),
        ("laxmon_checks_configured", "gauge"),
        ("laxmon_check_runs_total", "counter"),
        ("laxmon_check_runs_in_flight", "gauge"),
        ("laxmon_check_start_lateness_seconds", "histogram"),
        ("laxmon_check_duration_seconds", "histogram"),
        ("laxmon_check_missed_slots_total", "counter"),
        ("laxmon_process_slots_in_use", "gauge"),
        ("laxmon_process_slots_limit", "gauge"),
        ("laxmon_store_queued_results", "gauge"),
        ("laxmon_store_spooled_results", "gauge"),
        ("laxmon_store_spool_bytes", "gauge"),
        ("laxmon_store_up", "gauge"),
        ("laxmon_store_write_duration_seconds", "histogram"),
        ("laxmon_store_write_failures_total", "counter"),
        ("laxmon_store_results_written_total", "counter"),
        ("laxmon_alarms_open", "gauge"),
        ("laxmon_notifications_total", "counter"),
        ("laxmon_outbox_pending", "gauge"),
        ("laxmon_actions_total", "counter"),
        ("laxmon_cluster_reorganisations_total", "counter"),
    ];
    let got: Vec<(&str, &str)> = types
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let mut want = want_types.to_vec();
    want.sort();
    assert_eq!(got, want);

    // Build and process.
    let build = values(&scrape, "laxmon_build_info");
    assert_eq!(build.len(), 1);
    assert_eq!(build[0].1, 1.0);
    assert_eq!(build[0].0["version"], env!("CARGO_PKG_VERSION"));
    assert!(!build[0].0["commit"].is_empty());
    let started = value(&scrape, "laxmon_start_time_seconds", &[]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    assert!(started > 1.7e9 && started <= now, "{started}");
    assert!(value(&scrape, "laxmon_uptime_seconds", &[]) > 0.0);

    // Configuration.
    assert_eq!(value(&scrape, "laxmon_config_generation", &[]), 2.0);
    assert_eq!(
        value(&scrape, "laxmon_config_reloads_total", &[("result", "ok")]),
        1.0
    );
    assert_eq!(
        value(
            &scrape,
            "laxmon_config_reloads_total",
            &[("result", "invalid")]
        ),
        1.0
    );
    assert_eq!(
        value(&scrape, "laxmon_config_last_reload_successful", &[]),
        1.0
    );
    let loaded = value(
        &scrape,
        "laxmon_config_last_reload_success_timestamp_seconds",
        &[],
    );
    assert!(loaded >= started && loaded <= now, "{loaded}");
    for (kind, n) in [("plugin", 2.0), ("port", 1.0), ("ping", 0.0), ("init", 0.0)] {
        assert_eq!(
            value(&scrape, "laxmon_checks_configured", &[("kind", kind)]),
            n,
            "{kind}"
        );
    }

    // Check runs: a fixed label set, and counts that agree with the histograms.
    let kinds = ["init", "ping", "plugin", "port"];
    let states = ["CRITICAL", "OK", "UNKNOWN", "WARNING"];
    let want_sets: BTreeSet<String> = kinds
        .iter()
        .flat_map(|k| states.iter().map(move |s| format!("kind={k},state={s}")))
        .collect();
    assert_eq!(label_sets(&scrape, "laxmon_check_runs_total"), want_sets);
    let runs = |kind: &str, state: &str| {
        value(
            &scrape,
            "laxmon_check_runs_total",
            &[("kind", kind), ("state", state)],
        )
    };
    assert!(runs("plugin", "OK") >= 2.0, "fine ran in both generations");
    assert!(
        runs("plugin", "CRITICAL") >= 2.0,
        "down ran in both generations"
    );
    assert!(runs("port", "OK") >= 2.0, "web ran in both generations");
    assert_eq!(runs("plugin", "WARNING") + runs("port", "CRITICAL"), 0.0);
    for kind in kinds {
        let total: f64 = states.iter().map(|s| runs(kind, s)).sum();
        for h in [
            "laxmon_check_duration_seconds",
            "laxmon_check_start_lateness_seconds",
        ] {
            assert_eq!(value(&scrape, h, &[("kind", kind)]), total, "{h} {kind}");
        }
    }
    assert_eq!(
        metrics::snapshot().check_runs as f64,
        kinds
            .iter()
            .flat_map(|k| states.iter().map(move |s| runs(k, s)))
            .sum::<f64>()
    );
    check_histograms(&scrape, &text, "laxmon_check_duration_seconds");
    check_histograms(&scrape, &text, "laxmon_check_start_lateness_seconds");
    check_histograms(&scrape, &text, "laxmon_store_write_duration_seconds");
    assert_eq!(value(&scrape, "laxmon_check_runs_in_flight", &[]), 0.0);
    assert_eq!(value(&scrape, "laxmon_process_slots_in_use", &[]), 0.0);
    assert_eq!(value(&scrape, "laxmon_process_slots_limit", &[]), 7.0);
    assert_eq!(value(&scrape, "laxmon_check_missed_slots_total", &[]), 0.0);

    // Store: written, nothing left behind after the clean stop.
    assert_eq!(value(&scrape, "laxmon_store_up", &[]), 1.0);
    assert!(value(&scrape, "laxmon_store_results_written_total", &[]) >= 6.0);
    assert!(value(&scrape, "laxmon_store_write_duration_seconds", &[]) >= 1.0);
    assert_eq!(
        value(&scrape, "laxmon_store_write_failures_total", &[]),
        0.0
    );
    assert_eq!(value(&scrape, "laxmon_store_queued_results", &[]), 0.0);
    assert_eq!(value(&scrape, "laxmon_store_spooled_results", &[]), 0.0);
    assert_eq!(value(&scrape, "laxmon_store_spool_bytes", &[]), 0.0);

    // Alarms, notifications, actions.
    assert_eq!(
        value(
            &scrape,
            "laxmon_alarms_open",
            &[("state", "CRITICAL"), ("acked", "false")]
        ),
        1.0
    );
    let open: f64 = values(&scrape, "laxmon_alarms_open")
        .iter()
        .map(|(_, v)| v)
        .sum();
    assert_eq!(open, 1.0);
    assert_eq!(label_sets(&scrape, "laxmon_alarms_open").len(), 8);
    let notified = |outcome: &str| {
        value(
            &scrape,
            "laxmon_notifications_total",
            &[("channel", "webhook"), ("outcome", outcome)],
        )
    };
    assert!(notified("sent") >= 1.0);
    assert!(notified("failed") >= 1.0);
    assert_eq!(
        value(
            &scrape,
            "laxmon_notifications_total",
            &[("channel", "smtp"), ("outcome", "sent")]
        ),
        0.0
    );
    assert!(
        value(&scrape, "laxmon_outbox_pending", &[]) >= 1.0,
        "the failing webhook's notification waits for its retry"
    );
    assert!(
        value(
            &scrape,
            "laxmon_actions_total",
            &[("kind", "script"), ("outcome", "ok")]
        ) >= 1.0
    );
    assert_eq!(
        value(
            &scrape,
            "laxmon_actions_total",
            &[("kind", "script"), ("outcome", "failed")]
        ),
        0.0
    );
    assert_eq!(label_sets(&scrape, "laxmon_actions_total").len(), 12);
    let reorgs: f64 = values(&scrape, "laxmon_cluster_reorganisations_total")
        .iter()
        .map(|(_, v)| v)
        .sum();
    assert_eq!(reorgs, 0.0);

    // What a status page shows, as JSON.
    let snap = serde_json::to_value(metrics::snapshot()).expect("serialises");
    assert_eq!(snap["config_generation"], 2);
    assert_eq!(snap["checks_configured"], 3);
    assert_eq!(snap["runs_in_flight"], 0);
    assert_eq!(snap["process_slots_limit"], 7);
    assert_eq!(snap["store_available"], true);
    assert_eq!(snap["open_alarms"], 1);
    assert_eq!(snap["open_alarms_acknowledged"], 0);
    assert_eq!(snap["last_reload"]["ok"], true);
    assert!(
        snap["lateness"]["runs"].as_u64().is_some_and(|n| n >= 1),
        "{snap}"
    );
    assert!(
        snap["store_last_write_seconds"].as_f64().is_some(),
        "{snap}"
    );
    assert!(
        snap["outbox_backlog"].as_u64().is_some_and(|n| n >= 1),
        "{snap}"
    );
    let status = metrics::status_line();
    assert!(
        status.starts_with("3 checks, 0 runs in flight, 1 open alarms"),
        "{status}"
    );

    // A scrape with many checks configured costs the same: nothing per check.
    metrics::config_loaded(std::iter::repeat_n("plugin", 60_000));
    let t = Instant::now();
    let big = metrics::render_text();
    println!(
        "render_text with 60,000 checks configured: {} bytes in {:?}",
        big.len(),
        t.elapsed()
    );
    assert!(big.contains("laxmon_checks_configured{kind=\"plugin\"} 60000\n"));
    assert_eq!(big.lines().count(), text.lines().count(), "same series");
    database_away_shows_in_the_store_metrics(dir.path()).await;
}

/// A result writer whose PostgreSQL refuses connections: the store counts as
/// away, failed writes are counted and the spool's results and bytes show.
async fn database_away_shows_in_the_store_metrics(dir: &std::path::Path) {
    use laxmon::checks::{CheckOutput, State};
    use laxmon::config::{Storage, StorageConfig};
    use laxmon::state::{CheckState, Policy, Reachability};
    use laxmon::store::{ResultRecord, ResultWriter, Store, WriterOptions};

    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let cfg = StorageConfig {
        backend: Storage::Postgres(format!("postgres://laxmon@127.0.0.1:{port}/laxmon")),
        spool_dir: dir.join("away-spool"),
        ..StorageConfig::default()
    };
    let store = Store::open_lazy(&cfg).expect("store");
    let writer = ResultWriter::start(store, WriterOptions::from_config(&cfg)).expect("writer");
    let failures_before = metrics::snapshot().store_write_failures;
    let mut state = CheckState::new();
    for i in 0..50 {
        let now = chrono::Utc::now();
        let transition = state.apply(State::Ok, &Policy::default(), Reachability::Reachable, now);
        writer
            .submit(ResultRecord {
                result_id: uuid::Uuid::now_v7(),
                check: format!("away-{i}"),
                host: "local".into(),
                kind: "port".into(),
                planned: now,
                started: now,
                duration_ms: 1.0,
                output: CheckOutput::unknown("away".to_string()),
                transition,
                check_state: None,
            })
            .expect("submit");
    }
    eventually("the database is away and the results are spooled", |s| {
        s.store_available == Some(false)
            && s.store_write_failures > failures_before
            && s.spool_results + s.writer_queued == 50
            && s.spool_results > 0
            && s.spool_bytes > 0
    })
    .await;
    let text = metrics::render_text();
    check_text_format(&text);
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("parses");
    assert_eq!(value(&scrape, "laxmon_store_up", &[]), 0.0);
    assert!(value(&scrape, "laxmon_store_write_failures_total", &[]) >= 1.0);
    assert!(value(&scrape, "laxmon_store_spooled_results", &[]) >= 1.0);
    assert!(value(&scrape, "laxmon_store_spool_bytes", &[]) >= 100.0);
    let status = metrics::status_line();
    assert!(
        status.contains("database away, 50 results spooled"),
        "{status}"
    );
    writer.shutdown(Duration::from_secs(5)).await;
}
