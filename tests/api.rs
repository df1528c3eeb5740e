//! The operations API through a real HTTP client against the real daemon,
//! on SQLite and PostgreSQL: status, checks (filters, cursor paging, one
//! check), run now, reload (refused with its errors, then taken), auth and
//! role refusals that change nothing, bad JSON and unknown fields, and TLS
//! with a certificate that is replaced while the daemon runs.

mod support;

use reqwest::blocking::{Client, RequestBuilder, Response};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};
use support::bin::write_file;
use support::daemon::{field, Daemon};

const READ: &str = "read-token-0123456789";
const OPERATE: &str = "operate-token-0123456789";
const ADMIN: &str = "admin-token-0123456789";

fn hash(token: &str) -> String {
    laxmon::api::auth::format_hash(&laxmon::api::auth::hash_token(token))
}

/// The test's daemon and how to reach its API.
struct Api {
    base: String,
    client: Client,
    daemon: Daemon,
    /// What the webhook notifier received.
    hook: Option<support::http::Recorder>,
    /// The test's directory.
    dir: std::path::PathBuf,
}

impl Api {
    fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.send(self.client.get(format!("{}{path}", self.base)), token)
    }

    fn post(&self, path: &str, token: Option<&str>, body: &str) -> Response {
        let rb = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_string());
        self.send(rb, token)
    }

    fn send(&self, rb: RequestBuilder, token: Option<&str>) -> Response {
        let rb = match token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        };
        rb.send().expect("request")
    }

    /// GET returning (status, JSON).
    fn json(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let r = self.get(path, token);
        let status = r.status().as_u16();
        (status, r.json().expect("JSON body"))
    }
}

fn checks_yaml(dir: &Path) -> String {
    let d = dir.display();
    let mut checks = String::new();
    // 12 quiet checks to page through, and one that flips on a file.
    for i in 0..12 {
        checks.push_str(&format!(
            "  - {{name: quiet-{i:02}, kind: plugin, command: [/usr/lib/nagios/plugins/check_dummy, \"0\", \"quiet {i}\"], interval: 5s, tags: [{}]}}\n",
            if i % 2 == 0 { "even" } else { "odd" }
        ));
    }
    checks.push_str(&format!(
        "  - {{name: flip, kind: plugin, host: web1, run_on: local, command: [\"{d}/flip.sh\"], interval: 1h, retry_interval: 1h, max_attempts: 1}}\n"
    ));
    checks
}

fn config_yaml(dir: &Path, storage: &str, port: u16, extra_checks: &str) -> String {
    let hook = std::fs::read_to_string(dir.join("hook.port")).expect("hook port");
    let scripts = concat!(env!("CARGO_MANIFEST_DIR"), "/alarm-scripts");
    format!(
        "alarms:\n  group_window: 0s\n  scripts_dir: {scripts}\nnotifiers:\n  - {{name: hook, kind: webhook, url: \"http://127.0.0.1:{hook}/hook\"}}\ncontacts:\n  - {{name: ops, via: [hook]}}\nrules:\n  - name: page\n    match: {{checks: [flip]}}\n    notify: [ops]\n    repeat: 1h\n    actions:\n      - {{script: log-alarm, args: [\"{d}/actions.log\"], timeout: 10s}}\nstorage: {{url: \"{storage}\", spool_dir: {d}/spool}}\nhttp:\n  listen: 127.0.0.1:{port}\n  tokens:\n    - {{name: reader, role: read, hash: \"{r}\"}}\n    - {{name: operator, role: operate, hash: \"{o}\"}}\n    - {{name: boss, role: admin, hash: \"{a}\"}}\nhosts:\n  - {{name: web1, address: 127.0.0.1, tags: [web]}}\nchecks:\n{checks}{extra_checks}",
        d = dir.display(),
        r = hash(READ),
        o = hash(OPERATE),
        a = hash(ADMIN),
        checks = checks_yaml(dir),
    )
}

fn start(dir: &Path, storage: &str) -> Api {
    let (hook_port, hook) = support::http::serve_in_thread(200, "ok");
    std::fs::write(dir.join("hook.port"), hook_port.to_string()).expect("hook port");
    let flip = write_file(
        dir,
        "flip.sh",
        "#!/bin/sh\ncode=$(cat \"$(dirname \"$0\")/code\" 2>/dev/null || echo 0)\necho \"FLIP state $code | value=$code;1;2;0\"\nexit $code\n",
    );
    std::fs::set_permissions(&flip, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let port = support::free_port();
    let cfg = write_file(dir, "laxmon.yaml", &config_yaml(dir, storage, port, ""));
    let daemon = Daemon::start_logging(&cfg, "info");
    daemon.wait_api_up();
    Api {
        base: format!("http://127.0.0.1:{port}/api/v1"),
        client: Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client"),
        daemon,
        hook: Some(hook),
        dir: dir.to_path_buf(),
    }
}

/// Polls `GET path` until `pred` holds (bounded), returning the last body.
fn poll(api: &Api, path: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, v) = api.json(path, Some(READ));
        if status == 200 && pred(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{path}: condition never held; last: {status} {v}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn scenario(storage: &str, dir: &Path) {
    let api = start(dir, storage);

    // Status: version, generation 1, the database reachable, 13 checks.
    let (status, s) = api.json("/status", Some(READ));
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(s["generation"], 1, "{s}");
    assert_eq!(s["database"]["reachable"], true, "{s}");
    assert_eq!(s["checks"]["configured"], 13, "{s}");

    // Checks: every quiet check runs; paging by 5 gives 5, 5, 3 in name order.
    poll(&api, "/checks?name=quiet-*&state=ok&limit=100", |v| {
        v["checks"].as_array().is_some_and(|a| a.len() == 12)
    });
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/checks?limit=5&cursor={c}"),
            None => "/checks?limit=5".to_string(),
        };
        let (status, page) = api.json(&path, Some(READ));
        assert_eq!(status, 200, "{page}");
        pages += 1;
        for c in page["checks"].as_array().expect("checks") {
            names.push(c["name"].as_str().expect("name").to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert_eq!(names.len(), 13);
    assert_eq!(names[0], "flip");
    // Filters: tag, host.
    let (_, even) = api.json("/checks?tag=even", Some(READ));
    assert_eq!(even["checks"].as_array().map(Vec::len), Some(6), "{even}");
    let (_, web) = api.json("/checks?host=web1", Some(READ));
    assert_eq!(web["checks"][0]["name"], "flip", "{web}");
    assert_eq!(web["checks"][0]["tags"], json!(["web"]), "{web}");

    // Run now: the result comes back in the answer (the check runs hourly,
    // its first run spread somewhere in the first hour).
    let r = api.post("/checks/flip/run", Some(OPERATE), "");
    assert_eq!(r.status().as_u16(), 200);
    let run: Value = r.json().expect("json");
    assert_eq!(run["result"]["state"], "OK", "{run}");

    // One check: its last result in full, with perfdata.
    let one = poll(&api, "/checks/flip", |v| !v["last_result"].is_null());
    assert_eq!(one["state"], "OK", "{one}");
    assert_eq!(one["last_result"]["perfdata"][0]["label"], "value", "{one}");
    assert!(one["next_run"].is_string(), "{one}");
    let (status, missing) = api.json("/checks/flp", Some(READ));
    assert_eq!(status, 404);
    assert!(
        missing["detail"]
            .as_str()
            .unwrap_or("")
            .contains("did you mean \"flip\""),
        "{missing}"
    );

    // Run now again, on a problem.
    std::fs::write(dir.join("code"), "2").expect("code");
    let r = api.post("/checks/flip/run", Some(OPERATE), "{}");
    assert_eq!(r.status().as_u16(), 200);
    let run: Value = r.json().expect("json");
    assert_eq!(run["run"], "started", "{run}");
    assert_eq!(run["result"]["state"], "CRITICAL", "{run}");
    assert_eq!(run["result"]["output"], "FLIP state 2", "{run}");
    let listed = poll(&api, "/checks?state=problem", |v| {
        v["checks"].as_array().is_some_and(|a| a.len() == 1)
    });
    assert_eq!(listed["checks"][0]["name"], "flip");

    alarms_and_silences(&api);

    // /metrics: the Prometheus text format, as a scraper reads it.
    let r = api
        .client
        .get(api.base.replace("/api/v1", "/metrics"))
        .bearer_auth(READ)
        .send()
        .expect("scrape");
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("text/plain; version=0.0.4"),
        "{:?}",
        r.headers()
    );
    let text = r.text().expect("text");
    let scrape =
        prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("parses");
    let runs: f64 = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "laxmon_check_runs_total")
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum();
    assert!(runs >= 14.0, "runs counted: {runs}\n{text}");
    assert!(scrape
        .samples
        .iter()
        .any(|s| s.metric == "laxmon_build_info"));
    assert_eq!(
        api.client
            .get(api.base.replace("/api/v1", "/metrics"))
            .send()
            .expect("scrape")
            .status()
            .as_u16(),
        401
    );
    let (_, s) = api.json("/status", Some(READ));
    assert!(
        s["engine"]["check_runs"].as_u64().is_some_and(|n| n >= 14),
        "{s}"
    );

    // Refusals change nothing: no token, an unknown token, a role too low.
    let before = api.json("/checks/flip", Some(READ)).1["last_run"].clone();
    assert_eq!(
        api.post("/checks/flip/run", None, "{}").status().as_u16(),
        401
    );
    assert_eq!(
        api.post("/checks/flip/run", Some("not-a-token"), "{}")
            .status()
            .as_u16(),
        401
    );
    let r = api.post("/checks/flip/run", Some(READ), "{}");
    assert_eq!(r.status().as_u16(), 403);
    let body: Value = r.json().expect("json");
    assert_eq!(body["error"], "forbidden", "{body}");
    assert_eq!(
        api.post("/reload", Some(OPERATE), "{}").status().as_u16(),
        403
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(api.json("/checks/flip", Some(READ)).1["last_run"], before);
    assert_eq!(api.get("/status", None).status().as_u16(), 401);

    // Bad input: malformed JSON, an unknown field, an unknown query parameter.
    let r = api.post("/checks/flip/run", Some(OPERATE), "{\"wait_s\": ");
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().expect("json");
    assert_eq!(body["error"], "bad_request", "{body}");
    let r = api.post("/checks/flip/run", Some(OPERATE), "{\"wiat_s\": 1}");
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().expect("json");
    assert!(
        body["detail"].as_str().unwrap_or("").contains("wiat_s"),
        "{body}"
    );
    let (status, body) = api.json("/checks?colour=red", Some(READ));
    assert_eq!(status, 400, "{body}");
    assert!(
        body["detail"].as_str().unwrap_or("").contains("colour"),
        "{body}"
    );
    let (status, _) = api.json("/checks?state=purple", Some(READ));
    assert_eq!(status, 400);
    let (status, body) = api.json("/nothing-here", Some(READ));
    assert_eq!(status, 404, "{body}");

    // Reload: an invalid file is refused with its errors and nothing changes.
    let cfg_path = dir.join("laxmon.yaml");
    let good = std::fs::read_to_string(&cfg_path).expect("config");
    std::fs::write(
        &cfg_path,
        format!("{good}  - {{name: broken, kind: prot}}\n"),
    )
    .expect("write");
    let r = api.post("/reload", Some(ADMIN), "{}");
    assert_eq!(r.status().as_u16(), 422);
    let body: Value = r.json().expect("json");
    let detail = body["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains("laxmon.yaml:") && detail.contains("prot"),
        "{body}"
    );
    let (_, s) = api.json("/status", Some(READ));
    assert_eq!(s["generation"], 1, "{s}");
    assert_eq!(s["last_reload"]["ok"], false, "{s}");
    // A valid one with one more check is taken: generation 2, 14 checks.
    let port = api
        .base
        .split(':')
        .nth(2)
        .and_then(|p| p.split('/').next())
        .unwrap_or("");
    let extra = "  - {name: added, kind: plugin, command: [/usr/lib/nagios/plugins/check_dummy, \"0\"], interval: 1m}\n";
    let port: u16 = port.parse().expect("port");
    std::fs::write(&cfg_path, config_yaml(dir, storage, port, extra)).expect("write");
    let r = api.post("/reload", Some(ADMIN), "{}");
    let status = r.status().as_u16();
    let body: Value = r.json().expect("json");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["generation"], 2, "{body}");
    let (_, s) = api.json("/status", Some(READ));
    assert_eq!(s["generation"], 2, "{s}");
    assert_eq!(s["checks"]["configured"], 14, "{s}");
    assert_eq!(s["last_reload"]["ok"], true, "{s}");
    // The state survived the reload (it came from the store).
    let (_, flip) = api.json("/checks/flip", Some(READ));
    // (flip recovered in the event stream test; a fresh state would be pending)
    assert_eq!(flip["state"], "OK", "{flip}");
    assert_eq!(flip["pending"], false, "{flip}");
    drop(api.daemon);
}

#[test]
fn api_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = format!("sqlite:{}/laxmon.db", dir.path().display());
    scenario(&storage, dir.path());
}

#[tokio::test(flavor = "multi_thread")]
async fn api_on_postgres() {
    let db = support::pg::fresh_database().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let url = db.url.clone();
    let path = dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || scenario(&url, &path))
        .await
        .expect("scenario");
}

/// A CA of its own and a server certificate for 127.0.0.1 that it signed,
/// as PEM: (the CA's certificate, the server's certificate, its key).
fn certificate(dir: &Path, stem: &str) -> (String, String, String) {
    let p = |ext: &str| dir.join(format!("{stem}.{ext}"));
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ca_key = format!("{stem}-ca.key");
    let ca_crt = format!("{stem}-ca.crt");
    let key = format!("{stem}.key");
    let csr = format!("{stem}.csr");
    let crt = format!("{stem}.crt");
    let ext = format!("{stem}.ext");
    std::fs::write(
        dir.join(&ext),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .expect("ext");
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "2",
        "-subj",
        &format!("/CN={stem} test CA"),
        "-keyout",
        &ca_key,
        "-out",
        &ca_crt,
    ]);
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        &key,
        "-out",
        &csr,
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca_crt,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &ext,
        "-out",
        &crt,
    ]);
    let read = |f: std::path::PathBuf| std::fs::read_to_string(f).expect("pem");
    (
        read(p("ca.crt").with_file_name(&ca_crt)),
        read(p("crt")),
        read(p("key")),
    )
}

fn tls_client(ca_pem: &str) -> Client {
    Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("pem"))
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

#[test]
fn tls_is_served_and_a_replaced_certificate_is_picked_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (ca1, cert1, key1) = certificate(d, "one");
    let (ca2, cert2, key2) = certificate(d, "two");
    std::fs::write(d.join("api.crt"), &cert1).expect("cert");
    std::fs::write(d.join("api.key"), &key1).expect("key");
    let port = support::free_port();
    let cfg = write_file(
        d,
        "laxmon.yaml",
        &format!(
            "storage: sqlite:{}/db\nhttp:\n  listen: 127.0.0.1:{port}\n  tls: {{cert: api.crt, key: api.key}}\n  tokens:\n    - {{name: reader, role: read, hash: \"{}\"}}\nchecks:\n  - {{name: c, kind: plugin, command: [/usr/lib/nagios/plugins/check_dummy, \"0\"]}}\n",
            d.display(),
            hash(READ)
        ),
    );
    let daemon = Daemon::start_logging(&cfg, "info");
    daemon.wait_api_up();
    let url = format!("https://127.0.0.1:{port}/api/v1/status");
    let trusts_one = tls_client(&ca1);
    let trusts_two = tls_client(&ca2);
    let ok = trusts_one
        .get(&url)
        .bearer_auth(READ)
        .send()
        .expect("https");
    assert_eq!(ok.status().as_u16(), 200);
    assert!(
        trusts_two.get(&url).bearer_auth(READ).send().is_err(),
        "cert two is not served yet"
    );
    // Plain HTTP on the TLS port gets nothing useful.
    let plain = Client::new()
        .get(format!("http://127.0.0.1:{port}/api/v1/status"))
        .send();
    assert!(plain.map(|r| r.status().as_u16() != 200).unwrap_or(true));

    // Renew: the new certificate is served without a restart.
    std::fs::write(d.join("api.key"), &key2).expect("key");
    std::fs::write(d.join("api.crt"), &cert2).expect("cert");
    daemon.wait_for("reload logged", |v| {
        field(v, "message") == "TLS certificate reloaded"
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // A fresh client per try: a kept-alive connection would keep the old certificate.
        if let Ok(r) = tls_client(&ca2).get(&url).bearer_auth(READ).send() {
            assert_eq!(r.status().as_u16(), 200);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(tls_client(&ca1).get(&url).bearer_auth(READ).send().is_err());
}

#[test]
fn an_address_in_use_does_not_stop_the_checks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let cfg = write_file(
        d,
        "laxmon.yaml",
        &format!(
            "storage: sqlite:{}/db\nhttp:\n  listen: 127.0.0.1:{port}\nchecks:\n  - {{name: c, kind: plugin, command: [/usr/lib/nagios/plugins/check_dummy, \"0\"], interval: 300ms}}\n",
            d.display()
        ),
    );
    let daemon = Daemon::start(&cfg);
    let e = daemon.wait_for("bind error", |v| {
        field(v, "message") == "operations API cannot listen; trying again"
    });
    assert!(field(&e, "error").contains("in use"), "{e}");
    daemon.wait_for("a check result", |v| field(v, "check") == "c");
    // Once the address is free, the API comes up by itself.
    drop(taken);
    daemon.wait_for("API listening", |v| {
        field(v, "message") == "operations API listening"
    });
}

/// The cluster endpoints on a simulated cluster of two servers: listing,
/// live placement, a dry-run plan, and by-hand operations that follow the
/// executor's rules (admin only; a refusal is a 409 with the report).
#[test]
fn cluster_endpoints_on_the_simulated_cluster() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display().to_string();
    let bin = support::bin::laxmon_path();
    let state = format!("{d}/sim.json");
    let port = support::free_port();
    let mut yaml = format!(
        "storage: sqlite:{d}/db\nhttp:\n  listen: 127.0.0.1:{port}\n  tokens:\n    - {{name: reader, role: read, hash: \"{}\"}}\n    - {{name: operator, role: operate, hash: \"{}\"}}\n    - {{name: boss, role: admin, hash: \"{}\"}}\nhosts:\n",
        hash(READ),
        hash(OPERATE),
        hash(ADMIN)
    );
    for s in ["cs1", "cs2"] {
        yaml += &format!("  - {{name: {s}, address: 127.0.0.1}}\n");
    }
    yaml += "checks:\n";
    for s in ["cs1", "cs2"] {
        yaml += &format!(
            "  - {{name: {s}-alive, kind: plugin, interval: 1h, command: [{bin}, sim, alive, {s}, --state, {state}]}}\n"
        );
    }
    yaml += &format!("clusters:\n  - name: demo\n    driver: sim\n    sim: {{state: {state}, delay: 10ms}}\n    state_dir: {d}/state\n    servers:\n");
    for s in ["cs1", "cs2"] {
        yaml += &format!(
            "      - {{host: {s}, memory_mb: 4096, reserve_mb: 512, alive: {s}-alive, fence: [{bin}, sim, fence, {s}, --state, {state}]}}\n"
        );
    }
    yaml += "    vms:\n      - {name: web, memory_mb: 1024, priority: 5, home: cs1}\n      - {name: db, memory_mb: 2048, priority: 9, home: cs2}\n";
    let cfg = write_file(dir.path(), "laxmon.yaml", &yaml);
    let daemon = Daemon::start_logging(&cfg, "info");
    daemon.wait_api_up();
    let api = Api {
        base: format!("http://127.0.0.1:{port}/api/v1"),
        client: Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client"),
        daemon,
        hook: None,
        dir: dir.path().to_path_buf(),
    };

    let (status, list) = api.json("/clusters", Some(READ));
    assert_eq!(status, 200, "{list}");
    assert_eq!(list[0]["name"], "demo");
    assert_eq!(list[0]["servers"], json!(["cs1", "cs2"]));
    let (status, placement) = api.json("/clusters/demo", Some(READ));
    assert_eq!(status, 200, "{placement}");
    let servers = placement["servers"].as_array().expect("servers");
    let cs1 = servers.iter().find(|s| s["server"] == "cs1").expect("cs1");
    assert_eq!(cs1["vms"][0]["name"], "web", "{placement}");
    assert_eq!(cs1["vms"][0]["priority"], 5, "{placement}");
    let (status, missing) = api.json("/clusters/demp", Some(READ));
    assert_eq!(status, 404);
    assert!(
        missing["detail"]
            .as_str()
            .unwrap_or("")
            .contains("\"demo\""),
        "{missing}"
    );

    // A plan for cs2 failing moves db to cs1 (it fits: 4096 - 512 - 1024 free).
    let (status, plan) = api.json("/clusters/demo/plan?failed=cs2", Some(READ));
    assert_eq!(status, 200, "{plan}");
    assert!(plan.to_string().contains("db"), "{plan}");

    // Operations need admin; a dry run changes nothing; a stop is done.
    let stop = "/clusters/demo/vms/web/stop";
    assert_eq!(api.post(stop, Some(OPERATE), "{}").status().as_u16(), 403);
    let r = api.post(stop, Some(ADMIN), "{\"dry_run\": true}");
    assert_eq!(r.status().as_u16(), 200);
    let report: Value = r.json().expect("json");
    assert_eq!(report["outcome"], "planned", "{report}");
    let (_, placement) = api.json("/clusters/demo", Some(READ));
    assert!(placement.to_string().contains("\"web\""), "{placement}");
    let r = api.post(stop, Some(ADMIN), "{}");
    let report: Value = r.json().expect("json");
    assert_eq!(report["outcome"], "done", "{report}");
    // Starting db, which runs on cs2, on cs1 is refused by the rules: 409 with the report.
    let r = api.post(
        "/clusters/demo/vms/db/start",
        Some(ADMIN),
        "{\"server\": \"cs1\"}",
    );
    assert_eq!(r.status().as_u16(), 409);
    let report: Value = r.json().expect("json");
    assert_eq!(report["outcome"], "refused", "{report}");
    // Start web again on cs2 (chosen by hand), then migrate it home.
    let r = api.post(
        "/clusters/demo/vms/web/start",
        Some(ADMIN),
        "{\"server\": \"cs2\"}",
    );
    let report: Value = r.json().expect("json");
    assert_eq!(report["outcome"], "done", "{report}");
    let r = api.post(
        "/clusters/demo/vms/web/migrate",
        Some(ADMIN),
        "{\"to\": \"cs1\"}",
    );
    let report: Value = r.json().expect("json");
    assert_eq!(report["outcome"], "done", "{report}");
    assert_eq!(report["now_on"], "cs1", "{report}");
    // Bad requests name what is wrong.
    let r = api.post("/clusters/demo/vms/web/migrate", Some(ADMIN), "{}");
    assert_eq!(r.status().as_u16(), 400);
    let r = api.post("/clusters/demo/vms/web/reboot", Some(ADMIN), "{}");
    assert_eq!(r.status().as_u16(), 404);
    let r = api.post("/clusters/demo/vms/wbe/stop", Some(ADMIN), "{}");
    assert_eq!(r.status().as_u16(), 404);
}

fn post_json(api: &Api, path: &str, token: &str, body: Value) -> (u16, Value) {
    let r = api.post(path, Some(token), &body.to_string());
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

/// flip is HARD CRITICAL with an open alarm: acknowledge, un-acknowledge,
/// in bulk, and silence, each answered with the new state.
fn alarms_and_silences(api: &Api) {
    let flip = poll(api, "/checks/flip", |v| v["alarm"]["alarm_id"].is_u64());
    let id = flip["alarm"]["alarm_id"].as_u64().expect("alarm id");
    assert_eq!(flip["alarm"]["acked"], false, "{flip}");
    let unhandled = api
        .json("/checks?state=problem&handled=false", Some(READ))
        .1;
    assert_eq!(unhandled["checks"][0]["name"], "flip", "{unhandled}");
    let handled = api.json("/checks?handled=true", Some(READ)).1;
    assert_eq!(handled["checks"], json!([]), "{handled}");

    let ack = format!("/alarms/{id}/ack");
    // A reader may not; a comment is required; an unknown alarm is 404.
    assert_eq!(
        post_json(api, &ack, READ, json!({"comment": "mine"})).0,
        403
    );
    let (status, body) = post_json(api, &ack, OPERATE, json!({"comment": "  "}));
    assert_eq!(status, 400, "{body}");
    let (status, _) = post_json(api, "/alarms/999999/ack", OPERATE, json!({"comment": "x"}));
    assert_eq!(status, 404);
    // The answer is the alarm's new state.
    let (status, alarm) = post_json(
        api,
        &ack,
        OPERATE,
        json!({"comment": "on it", "expires": "2h"}),
    );
    assert_eq!(status, 200, "{alarm}");
    assert_eq!(alarm["id"], id, "{alarm}");
    assert_eq!(alarm["ack_by"], "operator", "{alarm}");
    assert_eq!(alarm["ack_comment"], "on it", "{alarm}");
    assert!(alarm["ack_expires"].is_string(), "{alarm}");
    let (status, again) = post_json(api, &ack, OPERATE, json!({"comment": "me too"}));
    assert_eq!(status, 409, "{again}");
    let handled = poll(api, "/checks?handled=true", |v| {
        v["checks"][0]["name"] == "flip"
    });
    assert_eq!(handled["checks"][0]["alarm"]["acked"], true, "{handled}");
    let (status, alarm) = post_json(api, &format!("/alarms/{id}/unack"), OPERATE, json!({}));
    assert_eq!(status, 200, "{alarm}");
    assert!(alarm["ack_by"].is_null(), "{alarm}");

    // Bulk, by filter: an empty filter is refused, a check glob acks flip.
    let (status, _) = post_json(
        api,
        "/alarms/ack",
        OPERATE,
        json!({"filter": {}, "comment": "all"}),
    );
    assert_eq!(status, 400);
    let (status, bulk) = post_json(
        api,
        "/alarms/ack",
        OPERATE,
        json!({"filter": {"check": "fl*"}, "comment": "bulk"}),
    );
    assert_eq!(status, 200, "{bulk}");
    assert_eq!(bulk["changed"], 1, "{bulk}");
    assert_eq!(bulk["results"][0]["alarm"]["ack_comment"], "bulk", "{bulk}");
    poll(api, "/checks?handled=true", |v| {
        v["checks"][0]["name"] == "flip"
    });
    let (status, bulk) = post_json(
        api,
        "/alarms/unack",
        OPERATE,
        json!({"filter": {"host": "web1"}}),
    );
    assert_eq!(status, 200, "{bulk}");
    assert_eq!(bulk["changed"], 1, "{bulk}");

    // Silences: a dry run lists what would be muted and changes nothing.
    let req = json!({"matchers": {"checks": ["quiet-0*"]}, "comment": "rack move", "ends": "1h", "dry_run": true});
    let (status, dry) = post_json(api, "/silences", READ, req);
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["checks"].as_array().map(Vec::len), Some(10), "{dry}");
    assert!(dry["silence"].is_null());
    assert_eq!(api.json("/silences", Some(READ)).1, json!([]));
    let req = json!({"matchers": {"checks": ["flip"]}, "comment": "deploying", "ends": "1h"});
    assert_eq!(post_json(api, "/silences", READ, req.clone()).0, 403);
    let (status, made) = post_json(api, "/silences", OPERATE, req);
    assert_eq!(status, 201, "{made}");
    let sid = made["silence"]["id"].as_u64().expect("silence id");
    let listed = api.json("/silences", Some(READ)).1;
    assert_eq!(listed[0]["id"], sid, "{listed}");
    let silenced = poll(api, "/checks?handled=true", |v| {
        v["checks"][0]["name"] == "flip"
    });
    assert_eq!(
        silenced["checks"][0]["alarm"]["suppressed"]["reason"], "silence",
        "{silenced}"
    );
    let r = api
        .client
        .delete(format!("{}/silences/{sid}", api.base))
        .bearer_auth(OPERATE)
        .send()
        .expect("delete");
    assert_eq!(r.status().as_u16(), 200);
    let (status, bad) = post_json(
        api,
        "/silences",
        OPERATE,
        json!({"matchers": {}, "comment": "x", "ends": "1h"}),
    );
    assert_eq!(status, 422, "{bad}");
    cli_over_the_api(api, id);
    idempotency_audit_and_timeline(api, id);
    event_stream_resumes_where_it_left_off(api);

    // The webhook heard about the problem.
    if let Some(hook) = &api.hook {
        let deadline = Instant::now() + Duration::from_secs(30);
        while hook.all().is_empty() {
            assert!(
                Instant::now() < deadline,
                "no notification reached the webhook"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// `laxmon alarms|ack|unack|history|silence --api URL --token-file FILE`:
/// the same commands, against the daemon instead of the store.
fn cli_over_the_api(api: &Api, id: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = write_file(dir.path(), "token", &format!("{OPERATE}\n"));
    let wrong = write_file(dir.path(), "wrong", "nope\n");
    let url = api.base.replace("/api/v1", "");
    let cli = |args: &[&str], token: &str| {
        let mut all = vec!["--api", url.as_str(), "--token-file", token];
        all.extend_from_slice(args);
        support::bin::laxmon(&all)
    };
    let out = cli(&["alarms", "--open", "--json"], &token);
    assert_eq!(out.status.code(), Some(0), "{}", support::bin::stderr(&out));
    let alarms: Value = serde_json::from_str(&support::bin::stdout(&out)).expect("json");
    assert_eq!(alarms[0]["id"], id, "{alarms}");
    let out = cli(
        &["ack", &id.to_string(), "--comment", "via the CLI"],
        &token,
    );
    assert_eq!(out.status.code(), Some(0), "{}", support::bin::stderr(&out));
    assert!(support::bin::stdout(&out).contains("acknowledged by operator"));
    let (_, flip) = api.json("/checks/flip", Some(READ));
    assert_eq!(flip["alarm"]["acked"], true, "{flip}");
    let out = cli(&["ack", &id.to_string(), "--comment", "again"], &token);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        support::bin::stderr(&out).contains("409"),
        "{}",
        support::bin::stderr(&out)
    );
    let out = cli(&["unack", &id.to_string()], &token);
    assert_eq!(out.status.code(), Some(0), "{}", support::bin::stderr(&out));
    let out = cli(&["history", "flip", "--since", "1h", "--json"], &token);
    assert_eq!(out.status.code(), Some(0), "{}", support::bin::stderr(&out));
    let rows: Value = serde_json::from_str(&support::bin::stdout(&out)).expect("json");
    assert!(rows.as_array().is_some_and(|r| r.len() >= 2), "{rows}");
    let out = cli(&["silence", "list"], &token);
    assert_eq!(out.status.code(), Some(0), "{}", support::bin::stderr(&out));
    let out = cli(&["alarms"], &wrong);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        support::bin::stderr(&out).contains("401"),
        "{}",
        support::bin::stderr(&out)
    );
    let out = cli(&["db", "stats"], &token);
    assert_eq!(out.status.code(), Some(64));
}

fn post_keyed(api: &Api, path: &str, key: &str, body: Value) -> (u16, Value, bool) {
    let r = api
        .client
        .post(format!("{}{path}", api.base))
        .bearer_auth(OPERATE)
        .header("idempotency-key", key)
        .json(&body)
        .send()
        .expect("request");
    let status = r.status().as_u16();
    let replayed = r.headers().get("idempotent-replayed").is_some();
    (status, r.json().unwrap_or(Value::Null), replayed)
}

/// A retried acknowledgement with the same Idempotency-Key acks once; the
/// audit log and the alarm's timeline show who did what.
fn idempotency_audit_and_timeline(api: &Api, id: u64) {
    let path = format!("/alarms/{id}/ack");
    let body = json!({"comment": "retried over a bad link"});
    let (s1, first, r1) = post_keyed(api, &path, "key-1", body.clone());
    assert_eq!((s1, r1), (200, false), "{first}");
    let (s2, second, r2) = post_keyed(api, &path, "key-1", body);
    assert_eq!(
        (s2, r2),
        (200, true),
        "a retry gets the first answer: {second}"
    );
    assert_eq!(first, second);
    let (s3, other, _) = post_keyed(api, &path, "key-1", json!({"comment": "something else"}));
    assert_eq!(s3, 422, "{other}");
    // Without the key, the same request is a second acknowledgement: refused.
    assert_eq!(
        post_json(api, &path, OPERATE, json!({"comment": "again"})).0,
        409
    );

    // The audit log: the ack by operator, the refused one too; none for the replay.
    let (status, audit) = api.json(&format!("/audit?alarm={id}"), Some(READ));
    assert_eq!(status, 200, "{audit}");
    let entries = audit["entries"].as_array().expect("entries");
    let acks: Vec<&Value> = entries
        .iter()
        .filter(|e| e["action"] == format!("POST /api/v1/alarms/{id}/ack"))
        .collect();
    assert!(
        acks.iter().any(|e| e["who"] == "operator"
            && e["result"] == "200 OK"
            && e["source"] == "127.0.0.1"),
        "{audit}"
    );
    assert!(
        acks.iter().any(|e| e["result"] == "409 Conflict"),
        "{audit}"
    );
    assert!(
        acks.iter()
            .any(|e| e["who"] == "reader" && e["result"] == "403 Forbidden"),
        "{audit}"
    );
    // Bulk acks are audited per alarm.
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "POST /api/v1/alarms/ack" && e["alarm_id"] == id),
        "{audit}"
    );

    // The alarm's timeline: state change, notifications with their outcome,
    // the action with its exit status, acknowledgements, audit entries.
    let (status, timeline) = api.json(&format!("/alarms/{id}"), Some(READ));
    assert_eq!(status, 200, "{timeline}");
    assert_eq!(timeline["alarm"]["id"], id);
    let kinds: Vec<&str> = timeline["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    for k in ["state_change", "alarm", "notification", "action", "audit"] {
        assert!(
            kinds.contains(&k),
            "no {k} in the timeline: {kinds:?}\n{timeline}"
        );
    }
    assert_eq!(api.json("/alarms/424242", Some(READ)).0, 404);
    let (_, page) = api.json("/alarms?limit=1", Some(READ));
    assert_eq!(page["alarms"][0]["id"], id, "{page}");

    // The check's history as a chart: buckets and the state changes.
    let (status, series) = api.json("/checks/flip/history?range=1h&points=10", Some(READ));
    assert_eq!(status, 200, "{series}");
    assert!(
        series["buckets"].as_array().is_some_and(|b| !b.is_empty()),
        "{series}"
    );
    assert!(series.to_string().contains("CRITICAL"), "{series}");
    assert_eq!(api.json("/checks/flip/history?points=0", Some(READ)).0, 400);
    assert_eq!(
        api.json("/checks/flip/history?range=soon", Some(READ)).0,
        400
    );
}

/// One Server-Sent Event: (id, kind, data).
type Sse = (Option<i64>, String, Value);

/// Reads `GET /events` (resuming after `last_id` when given) until `done`
/// holds for what came, or a minute passes.
fn read_events(api: &Api, last_id: Option<i64>, done: impl Fn(&[Sse]) -> bool) -> Vec<Sse> {
    use std::io::BufRead;
    let mut rb = api
        .client
        .get(format!("{}/events", api.base))
        .bearer_auth(READ);
    if let Some(id) = last_id {
        rb = rb.header("last-event-id", id.to_string());
    }
    let response = rb.send().expect("events");
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap_or("")
        .starts_with("text/event-stream"));
    let (tx, rx) = std::sync::mpsc::channel::<Sse>();
    std::thread::spawn(move || {
        let (mut id, mut kind, mut data) = (None, String::new(), String::new());
        for line in std::io::BufReader::new(response)
            .lines()
            .map_while(Result::ok)
        {
            if line.is_empty() {
                let v = serde_json::from_str(&data).unwrap_or(Value::Null);
                if !kind.is_empty() && tx.send((id.take(), std::mem::take(&mut kind), v)).is_err() {
                    return;
                }
                data.clear();
            } else if let Some(v) = line.strip_prefix("id:") {
                id = v.trim().parse().ok();
            } else if let Some(v) = line.strip_prefix("event:") {
                kind = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim_start());
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut got = Vec::new();
    while !done(&got) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(e) => got.push(e),
            Err(_) => panic!("the event stream never delivered what was expected; got {got:?}"),
        }
    }
    got
}

/// A client reading from the start sees every kind; one that reconnects
/// with Last-Event-ID gets what happened while it was away, in order.
fn event_stream_resumes_where_it_left_off(api: &Api) {
    let from_start = read_events_after(api, 0, |got| {
        ["state_change", "alarm", "notification", "action", "audit"]
            .iter()
            .all(|k| got.iter().any(|(_, kind, _)| kind == k))
    });
    let ids: Vec<i64> = from_start.iter().filter_map(|(id, _, _)| *id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids grow: {ids:?}");
    let last = *ids.last().expect("an id");

    // Away: flip recovers (a state change, the alarm resolves).
    std::fs::write(api_dir(api).join("code"), "0").expect("code");
    let r = api.post("/checks/flip/run", Some(OPERATE), "{}");
    assert_eq!(r.status().as_u16(), 200);

    let resumed = read_events(api, Some(last), |got| {
        got.iter().any(|(_, kind, v)| {
            kind == "state_change" && v["check"] == "flip" && v["detail"]["state"] == "OK"
        })
    });
    let again: Vec<i64> = resumed.iter().filter_map(|(id, _, _)| *id).collect();
    assert!(
        again.first().is_some_and(|&f| f > last),
        "resumed after {last}: {again:?}"
    );
    assert!(again.windows(2).all(|w| w[0] < w[1]), "{again:?}");
    // Nothing missed: the feed has no id between `last` and the first resumed one.
    let (_, feed) = (
        0,
        read_events_after(api, last, |got| {
            got.iter().any(|(id, _, _)| *id == again.first().copied())
        }),
    );
    let first_after: Vec<i64> = feed.iter().filter_map(|(id, _, _)| *id).collect();
    assert_eq!(
        first_after.first(),
        again.first(),
        "{first_after:?} vs {again:?}"
    );
    let (status, bad) = api.json("/events?kinds=weather", Some(READ));
    assert_eq!(status, 400, "{bad}");
}

fn read_events_after(api: &Api, after: i64, done: impl Fn(&[Sse]) -> bool) -> Vec<Sse> {
    read_events(api, Some(after), done)
}

/// The scenario's directory (where flip.sh reads its exit code).
fn api_dir(api: &Api) -> std::path::PathBuf {
    api.dir.clone()
}

/// A client that never finishes its request headers is cut off (it would
/// otherwise hold one of the listener's connections for ever), while the
/// API goes on answering others.
#[test]
fn a_silent_client_is_disconnected() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let port = support::free_port();
    let cfg = write_file(
        d,
        "laxmon.yaml",
        &format!(
            "storage: sqlite:{}/db\nhttp:\n  listen: 127.0.0.1:{port}\n  anonymous: read\nchecks:\n  - {{name: c, kind: plugin, command: [/usr/lib/nagios/plugins/check_dummy, \"0\"]}}\n",
            d.display()
        ),
    );
    let daemon = Daemon::start_logging(&cfg, "info");
    daemon.wait_api_up();
    let mut slow = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    slow.write_all(b"GET /api/v1/status HTTP/1.1\r\nHost: x\r\n")
        .expect("half a request");
    let started = Instant::now();
    // Meanwhile others are served.
    let r = Client::new()
        .get(format!("http://127.0.0.1:{port}/api/v1/status"))
        .send()
        .expect("status");
    assert_eq!(r.status().as_u16(), 200);
    slow.set_read_timeout(Some(Duration::from_secs(90)))
        .expect("read timeout");
    let mut buf = Vec::new();
    let read = slow.read_to_end(&mut buf);
    assert!(
        read.is_ok() && started.elapsed() < Duration::from_secs(90),
        "the half-open connection was not closed: {read:?} after {:?}",
        started.elapsed()
    );
    drop(daemon);
}
