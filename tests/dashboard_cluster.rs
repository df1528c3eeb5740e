//! The dashboard's cluster view in a real browser (headless Chromium over
//! WebDriver) against the real daemon on loopback with the simulated demo
//! cluster: a server fails, the daemon reorganises, and the page shows the
//! failed server fenced, the VMs where the API says they run now, and the
//! reorganisation step by step with its timings; then an admin logged in
//! through the login form previews and stops a VM and starts it on a chosen
//! server through the page's forms, and the API reports each result.
//! Screenshots (desktop and phone) are saved under
//! `target/tmp/dashboard/cluster/` and their paths printed.

mod support;

use fantoccini::Locator;
use serde_json::Value;
use std::path::Path;
use support::bin::{laxmon_path, write_file};
use support::browser::{Browser, Viewport};
use support::daemon::Daemon;
use support::dashboard::{browser_dir, click, fits, login, text_of, ApiReader, WAIT};

const ADMIN: &str = "admin-token-0123456789";
const READ: &str = "read-token-0123456789";

fn hash(token: &str) -> String {
    laxmon::api::auth::format_hash(&laxmon::api::auth::hash_token(token))
}

/// The demo cluster's VMs: (name, memory MB, priority, home).
const VMS: &[(&str, u64, i64, &str)] = &[
    ("newjoomla", 2048, 10, "cs2"),
    ("debtest", 1024, 1, "cs1"),
    ("clamxp2", 1024, 5, "cs2"),
    ("win3", 3072, 6, "cs3"),
    ("winxpc12", 2048, 4, "cs2"),
    ("t1", 4096, 2, "cs1"),
];

/// The daemon with the simulated three-server cluster, an alive check per
/// server and the rule that reorganises when one goes HARD CRITICAL.
struct Site {
    _daemon: Daemon,
    base: String,
    /// The API, read with the read token.
    api: ApiReader,
    sim_state: String,
}

impl Site {
    fn start(dir: &Path) -> Site {
        let d = dir.display();
        let bin = laxmon_path();
        let state = format!("{d}/sim.json");
        let port = support::free_port();
        let mut yaml = format!(
            "storage: {{url: \"sqlite://{d}/laxmon.db\", spool_dir: {d}/spool}}\nhttp:\n  listen: 127.0.0.1:{port}\n  anonymous: read\n  tokens:\n    - {{name: boss, role: admin, hash: \"{}\"}}\n    - {{name: reader, role: read, hash: \"{}\"}}\nhosts:\n",
            hash(ADMIN),
            hash(READ)
        );
        for s in ["cs1", "cs2", "cs3"] {
            yaml += &format!("  - {{name: {s}, address: 127.0.0.1}}\n");
        }
        yaml += "checks:\n";
        for s in ["cs1", "cs2", "cs3"] {
            yaml += &format!(
                "  - {{name: {s}-alive, kind: plugin, interval: 1s, retry_interval: 500ms, max_attempts: 2, command: [{bin}, sim, alive, {s}, --state, {state}]}}\n"
            );
        }
        yaml += "rules:\n  - name: failover\n    match: {checks: [cs1-alive, cs2-alive, cs3-alive], states: [CRITICAL]}\n    actions:\n      - clusterreorg: demo\n";
        yaml += &format!(
            "clusters:\n  - name: demo\n    driver: sim\n    sim: {{state: {state}, delay: 200ms}}\n    state_dir: {d}/state\n    servers:\n"
        );
        for s in ["cs1", "cs2", "cs3"] {
            yaml += &format!(
                "      - {{host: {s}, memory_mb: 6144, reserve_mb: 1024, alive: {s}-alive, fence: [{bin}, sim, fence, {s}, --state, {state}]}}\n"
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
        let cfg = write_file(dir, "laxmon.yaml", &yaml);
        let daemon = Daemon::start_logging(&cfg, "info");
        daemon.wait_api_up();
        Site {
            _daemon: daemon,
            base: format!("http://127.0.0.1:{port}"),
            api: ApiReader {
                base: format!("http://127.0.0.1:{port}"),
                token: READ.to_string(),
            },
            sim_state: state,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `laxmon sim ARGS --state STATE`.
    fn sim(&self, args: &[&str]) {
        let out = std::process::Command::new(laxmon_path())
            .arg("sim")
            .args(args)
            .args(["--state", &self.sim_state])
            .output()
            .expect("laxmon sim");
        assert!(
            out.status.success(),
            "sim {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Where a VM runs, as `GET /clusters/demo` says (None: not running).
fn server_of(status: &Value, vm: &str) -> Option<String> {
    status["vms"].as_array()?.iter().find(|v| v["name"] == vm)?["server"]
        .as_str()
        .map(str::to_string)
}

/// Scrolls `css` to the top of the window and saves a screenshot.
async fn shot_at(b: &Browser, css: &str, name: &str) {
    let script = format!("document.querySelector({css:?}).scrollIntoView(true)");
    b.client().execute(&script, vec![]).await.expect("scroll");
    b.screenshot(name).await.expect("screenshot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_failure_shows_the_new_placement_and_a_vm_is_operated_from_the_page() {
    let dir = tempfile::tempdir().expect("temp dir");
    let site = Site::start(dir.path());
    let shots = browser_dir("cluster");
    let b = Browser::start(&shots.join("desktop"))
        .await
        .expect("browser");

    // Every server up, each with its VMs and memory in numbers.
    b.open(&site.url("/clusters")).await.expect("clusters page");
    b.wait_until_text("#server-demo-cs2", "UP", WAIT)
        .await
        .expect("cs2 up");
    b.wait_until_text("#server-demo-cs2", "newjoomla", WAIT)
        .await
        .expect("cs2 runs newjoomla");
    b.wait_until_text("#live-status", "live", WAIT)
        .await
        .expect("live updates on");
    let cs1 = text_of(&b, "#server-demo-cs1").await;
    assert!(
        cs1.contains("5120 of 5120 MB used (100 %), 0 MB free"),
        "{cs1}"
    );
    assert!(cs1.contains("full"), "{cs1}");
    b.screenshot("1-clusters-all-up").await.expect("screenshot");

    // cs2 fails: the daemon fences it and reorganises; the page follows
    // without a reload.
    site.sim(&["fail", "cs2"]);
    let after = site
        .api
        .until("/clusters/demo", |v| {
            v["runs"][0]["kind"] == "reorg" && v["runs"][0]["state"] == "finished"
        })
        .await;
    b.wait_until_text("#server-demo-cs2", "FENCED", WAIT)
        .await
        .expect("cs2 is marked fenced");
    b.wait_until_text(
        "#cluster-demo",
        "Last run: the reorganisation after cs2 failed",
        WAIT,
    )
    .await
    .expect("the reorganisation is named");
    b.wait_until_text("#cluster-demo", "finished", WAIT)
        .await
        .expect("and finished");
    // Every VM is shown where the API says it runs now: cs2's on cs1 or cs3.
    for (vm, ..) in VMS {
        match server_of(&after, vm) {
            Some(server) => {
                assert_ne!(server, "cs2", "{vm} still on the failed server: {after}");
                let card = text_of(&b, &format!("#server-demo-{server}")).await;
                assert!(card.contains(vm), "{vm} not shown on {server}: {card}");
            }
            None => {
                let down = text_of(&b, &format!("#down-demo-{vm}")).await;
                assert!(
                    down.contains("the reorganisation after cs2 failed"),
                    "{vm} is down without the reorganisation's reason: {down}"
                );
            }
        }
    }
    for vm in ["newjoomla", "clamxp2", "winxpc12"] {
        let at = server_of(&after, vm);
        assert!(
            matches!(at.as_deref(), Some("cs1" | "cs3")),
            "{vm} on {at:?}"
        );
    }
    assert!(fits(&b).await, "the clusters page is wider than the window");
    b.screenshot("2-clusters-after-cs2-failed")
        .await
        .expect("screenshot");

    // The cluster's page lists the reorganisation step by step with timings.
    b.open(&site.url("/cluster/demo"))
        .await
        .expect("cluster page");
    let run = b
        .wait_until_text(
            "#runs article.run",
            "The reorganisation after cs2 failed: finished",
            WAIT,
        )
        .await
        .expect("the last reorganisation");
    let steps = run.text().await.expect("steps");
    assert!(steps.contains("Made safe: fence with"), "{steps}");
    let listed = b
        .client()
        .find_all(Locator::Css("#runs article.run ol.steps li"))
        .await
        .expect("steps");
    assert_eq!(
        listed.len(),
        after["runs"][0]["steps"].as_array().map_or(0, Vec::len),
        "{steps}"
    );
    assert!(!listed.is_empty(), "no steps listed: {steps}");
    for li in &listed {
        let t = li.text().await.expect("step");
        assert!(t.contains(" — done in "), "{t}");
    }
    for vm in ["newjoomla", "clamxp2", "winxpc12"] {
        if let Some(server) = server_of(&after, vm) {
            let want = format!("start {vm} on {server}");
            assert!(steps.contains(&want), "{want} not in {steps}");
        }
    }
    // The dry run for the failed server is shown, as cs2's alive check is CRITICAL.
    b.wait_until_text("#plan", "If cs2 failed", WAIT)
        .await
        .expect("dry run for cs2");
    // Reading needs no login; acting does.
    b.wait_until_text("#vms", "Log in to act", WAIT)
        .await
        .expect("read-only forms");
    assert!(fits(&b).await, "the cluster page is wider than the window");
    b.screenshot("3-cluster-page-after-reorg")
        .await
        .expect("screenshot");
    shot_at(&b, "#runs", "3b-cluster-page-steps").await;
    shot_at(&b, "#plan", "3c-cluster-page-dry-run").await;

    // An admin logs in through the form (an HttpOnly cookie).
    login(&b, &site.base, ADMIN, "/cluster/demo", "boss (admin)").await;
    click(&b, "#vm-debtest summary").await;
    let stop = "form[action='/ui/clusters/demo/vms/debtest/stop']";
    b.wait_for(stop, WAIT).await.expect("debtest's stop form");
    assert_eq!(server_of(&after, "debtest").as_deref(), Some("cs1"));

    // Preview: says what it would do, changes nothing.
    click(&b, &format!("{stop} button[name=intent][value=preview]")).await;
    b.wait_until_text("#flash", "stop debtest: planned", WAIT)
        .await
        .expect("preview answered");
    shot_at(&b, "#vms", "4a-vm-forms-preview").await;
    assert_eq!(
        server_of(&site.api.get("/clusters/demo").await, "debtest").as_deref(),
        Some("cs1"),
        "a preview stopped the VM"
    );

    // Stop for real: tick the confirmation, then the button.
    click(&b, "#confirm-stop-debtest").await;
    click(&b, &format!("{stop} button:not([name])")).await;
    b.wait_until_text("#flash", "stop debtest: done", WAIT)
        .await
        .expect("stop answered");
    let stopped = site
        .api
        .until("/clusters/demo", |v| {
            v["vms"].as_array().is_some_and(|vms| {
                vms.iter()
                    .any(|x| x["name"] == "debtest" && x["state"] == "stopped")
            })
        })
        .await;
    assert_eq!(stopped["runs"][0]["kind"], "stop", "{stopped}");
    assert_eq!(stopped["runs"][0]["by"], "API (boss)", "{stopped}");
    assert_eq!(stopped["runs"][0]["steps"][0]["state"], "done", "{stopped}");
    // The live part of the page says why debtest is down now.
    b.wait_until_text(
        "#down-demo-debtest",
        "the by-hand stop of debtest by API (boss)",
        WAIT,
    )
    .await
    .expect("why debtest is down");
    b.screenshot("4-debtest-stopped-by-hand")
        .await
        .expect("screenshot");

    // Start it again on the server chosen in the form.
    b.open(&site.url("/cluster/demo"))
        .await
        .expect("cluster page");
    let start = "form[action='/ui/clusters/demo/vms/debtest/start']";
    click(&b, "#vm-debtest summary").await;
    b.wait_for(start, WAIT).await.expect("debtest's start form");
    click(&b, "#server-debtest option[value=cs3]").await;
    click(&b, "#confirm-start-debtest").await;
    click(&b, &format!("{start} button:not([name])")).await;
    b.wait_until_text("#flash", "start debtest: done", WAIT)
        .await
        .expect("start answered");
    let started = site
        .api
        .until("/clusters/demo", |v| server_of(v, "debtest").is_some())
        .await;
    assert_eq!(
        server_of(&started, "debtest").as_deref(),
        Some("cs3"),
        "{started}"
    );
    b.wait_until_text("#server-demo-cs3", "debtest", WAIT)
        .await
        .expect("debtest shown on cs3");
    b.screenshot("5-debtest-started-on-cs3")
        .await
        .expect("screenshot");
    shot_at(&b, "#runs", "5b-runs-with-by-hand-operations").await;
    drop(b);

    // On a phone both pages still read.
    let phone = Browser::start_with(&shots.join("phone"), Viewport::PHONE)
        .await
        .expect("phone browser");
    phone
        .open(&site.url("/clusters"))
        .await
        .expect("clusters page");
    phone
        .wait_until_text("#server-demo-cs2", "FENCED", WAIT)
        .await
        .expect("cs2 fenced");
    phone
        .screenshot("6-phone-clusters")
        .await
        .expect("screenshot");
    assert!(
        fits(&phone).await,
        "the clusters page is wider than a phone"
    );
    phone
        .open(&site.url("/cluster/demo"))
        .await
        .expect("cluster page");
    phone
        .wait_until_text("#runs", "The reorganisation after cs2 failed", WAIT)
        .await
        .expect("last reorganisation");
    phone
        .screenshot("7-phone-cluster")
        .await
        .expect("screenshot");
    shot_at(&phone, "#runs", "7b-phone-steps").await;
    login(&phone, &site.base, ADMIN, "/cluster/demo", "boss (admin)").await;
    click(&phone, "#vm-winxpc12 summary").await;
    phone
        .wait_for("#confirm-migrate-winxpc12", WAIT)
        .await
        .expect("winxpc12's migrate form");
    shot_at(&phone, "#vm-winxpc12", "7c-phone-vm-forms").await;
    assert!(fits(&phone).await, "the VM forms are wider than a phone");
    assert!(fits(&phone).await, "the cluster page is wider than a phone");
}
