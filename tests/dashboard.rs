//! The web dashboard in a real browser (headless Chromium over WebDriver)
//! against the real daemon on loopback: log in with a token, watch a check
//! fail live on the problems page without a reload, keep a half-typed
//! comment through live refreshes, acknowledge from the page and see the API
//! report it; the hosts view, the check detail with its charts and "run
//! now", silences with a preview, the alarm timeline; and, without a
//! browser, the session cookie and CSRF rules. Screenshots are saved under
//! `target/tmp/dashboard/TEST/` (cargo's target tmp dir) and their paths
//! printed.

mod support;

use fantoccini::Locator;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};
use support::bin::write_file;
use support::browser::{Browser, Viewport};
use support::daemon::Daemon;
use support::dashboard::{
    browser_dir, click, fits, login, text_of, type_into, value_of, ApiReader, WAIT,
};

const OPERATE: &str = "operate-token-0123456789";
const READ: &str = "read-token-0123456789";

fn hash(token: &str) -> String {
    laxmon::api::auth::format_hash(&laxmon::api::auth::hash_token(token))
}

/// A daemon with two checks that fail on demand (`flip` and `flop`, each
/// reading its exit code from a file), one quiet check per host on three
/// hosts, an alarm rule for the flipping ones and a webhook to tell.
struct Site {
    _daemon: Daemon,
    base: String,
    /// The API, read with the read token.
    api: ApiReader,
    dir: std::path::PathBuf,
    _hook: support::http::Recorder,
}

impl Site {
    fn start(dir: &Path, anonymous: bool) -> Site {
        let (hook_port, hook) = support::http::serve_in_thread(200, "ok");
        for name in ["flip", "flop"] {
            let script = write_file(
                dir,
                &format!("{name}.sh"),
                &format!(
                    "#!/bin/sh\ncode=$(cat \"$(dirname \"$0\")/{name}.code\" 2>/dev/null || echo 0)\necho \"{name} says $code | time=0.0${{code}}s;1;2;0 size=12${{code}}B\"\nexit $code\n"
                ),
            );
            std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .expect("chmod");
        }
        let d = dir.display();
        let port = support::free_port();
        let mut quiet = String::new();
        for host in ["db1", "web1", "web2"] {
            quiet.push_str(&format!(
                "  - {{name: {host}-load, host: {host}, run_on: local, kind: plugin, command: [/usr/lib/nagios/plugins/check_dummy, \"0\", \"load fine\"], interval: 5s}}\n"
            ));
        }
        let yaml = format!(
            "alarms:\n  group_window: 0s\nnotifiers:\n  - {{name: hook, kind: webhook, url: \"http://127.0.0.1:{hook_port}/hook\"}}\ncontacts:\n  - {{name: ops, via: [hook]}}\nrules:\n  - name: page\n    match: {{checks: [\"fl*\"]}}\n    notify: [ops]\n    repeat: 1h\nstorage: {{url: \"sqlite://{d}/laxmon.db\", spool_dir: {d}/spool}}\nhttp:\n  listen: 127.0.0.1:{port}\n{anon}  tokens:\n    - {{name: operator, role: operate, hash: \"{o}\"}}\n    - {{name: reader, role: read, hash: \"{r}\"}}\nhosts:\n  - {{name: web1, address: 127.0.0.1, tags: [web]}}\n  - {{name: web2, address: 127.0.0.1, tags: [web]}}\n  - {{name: db1, address: 127.0.0.1, tags: [db]}}\nchecks:\n  - {{name: flip, host: web1, run_on: local, kind: plugin, command: [\"{d}/flip.sh\"], interval: 1s, retry_interval: 1s, max_attempts: 1}}\n  - {{name: flop, host: web2, run_on: local, kind: plugin, command: [\"{d}/flop.sh\"], interval: 1s, retry_interval: 1s, max_attempts: 1}}\n{quiet}",
            anon = if anonymous { "  anonymous: read\n" } else { "" },
            o = hash(OPERATE),
            r = hash(READ),
        );
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
            dir: dir.to_path_buf(),
            _hook: hook,
        }
    }

    fn set(&self, check: &str, code: u8) {
        std::fs::write(self.dir.join(format!("{check}.code")), code.to_string()).expect("code");
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// The id of the element that has the focus.
async fn focused(b: &Browser) -> String {
    b.client()
        .execute(
            "return document.activeElement ? document.activeElement.id : ''",
            vec![],
        )
        .await
        .expect("script")
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_appears_live_and_is_acknowledged_from_the_page() {
    let dir = tempfile::tempdir().expect("temp dir");
    let site = Site::start(dir.path(), true);
    let shots = browser_dir("live-ack");
    let b = Browser::start(&shots.join("desktop"))
        .await
        .expect("browser");
    login(&b, &site.base, OPERATE, "/", "operator (operate)").await;

    // The session cookie is HttpOnly: the page's scripts cannot read it.
    let cookies: Value = b
        .client()
        .execute("return document.cookie", vec![])
        .await
        .expect("script");
    assert!(
        !cookies.as_str().unwrap_or("").contains("laxmon_session"),
        "{cookies}"
    );
    let jar = b.client().get_all_cookies().await.expect("cookies");
    let session = jar
        .iter()
        .find(|c| c.name() == "laxmon_session")
        .expect("a session cookie");
    assert_eq!(session.http_only(), Some(true));
    assert_eq!(format!("{:?}", session.same_site()), "Some(Strict)");

    // Everything is fine; the page is live.
    b.wait_until_text("#problems", "Nothing unhandled", WAIT)
        .await
        .expect("all good");
    b.wait_until_text("#live-status", "live", WAIT)
        .await
        .expect("live updates on");
    b.screenshot("1-all-good").await.expect("screenshot");
    // A mark that a reload would wipe out.
    b.client()
        .execute("window.stillTheSamePage = true", vec![])
        .await
        .expect("mark the page");

    // flip fails: its row appears without a reload, with an alarm to acknowledge.
    site.set("flip", 2);
    let row = b
        .wait_for("#p-flip", WAIT)
        .await
        .expect("flip's row appears live");
    assert!(row.text().await.expect("row").contains("CRITICAL"));
    let alarm = site
        .api
        .until("/checks/flip", |v| v["alarm"]["alarm_id"].is_u64())
        .await["alarm"]["alarm_id"]
        .as_u64()
        .expect("alarm id");
    let comment = format!("#ack-comment-{alarm}");
    b.wait_for(&comment, WAIT)
        .await
        .expect("inline acknowledge field");
    b.screenshot("2-flip-failed").await.expect("screenshot");

    // Half a comment typed, the cursor in the field: flop fails too, the
    // list refreshes, and the text, the focus and the page stay.
    click(&b, &comment).await;
    type_into(&b, &comment, "looking at the disk").await;
    site.set("flop", 1);
    b.wait_for("#p-flop", WAIT)
        .await
        .expect("flop's row appears live");
    b.wait_until_text("#counters", "WARNING", WAIT)
        .await
        .expect("counters");
    assert_eq!(value_of(&b, &comment).await, "looking at the disk");
    assert_eq!(focused(&b).await, comment.trim_start_matches('#'));
    let same: Value = b
        .client()
        .execute("return window.stillTheSamePage === true", vec![])
        .await
        .expect("script");
    assert_eq!(same, Value::Bool(true), "the page was reloaded");
    b.screenshot("3-typing-through-a-refresh")
        .await
        .expect("screenshot");

    // Finish the comment and acknowledge with Enter, from the keyboard.
    type_into(&b, &comment, " on web1\u{E007}").await;
    b.wait_until_text("#flash", &format!("Acknowledged alarm #{alarm}"), WAIT)
        .await
        .expect("the page says it is acknowledged");
    let a = site
        .api
        .until(&format!("/alarms/{alarm}"), |v| {
            v["alarm"]["ack_by"].is_string()
        })
        .await;
    assert_eq!(a["alarm"]["ack_by"], "operator", "{a}");
    assert_eq!(
        a["alarm"]["ack_comment"], "looking at the disk on web1",
        "{a}"
    );
    // flip leaves the unhandled list; flop stays; the counters move.
    let deadline = Instant::now() + WAIT;
    while b.client().find(Locator::Css("#p-flip")).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "flip is still listed as unhandled"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(text_of(&b, "#problems").await.contains("flop"));
    b.screenshot("4-acknowledged").await.expect("screenshot");

    // Bulk: tick flop and acknowledge the ticked ones.
    let flop_alarm = site
        .api
        .until("/checks/flop", |v| v["alarm"]["alarm_id"].is_u64())
        .await["alarm"]["alarm_id"]
        .as_u64()
        .expect("flop's alarm");
    click(&b, &format!("#sel-{flop_alarm}")).await;
    type_into(&b, "#bulk-comment", "rebooting web2").await;
    click(&b, "form.bulk button[type=submit]").await;
    b.wait_until_text("#flash", "Acknowledged 1 alarm", WAIT)
        .await
        .expect("bulk done");
    site.api
        .until(&format!("/alarms/{flop_alarm}"), |v| {
            v["alarm"]["ack_comment"] == "rebooting web2"
        })
        .await;
    b.wait_until_text("#problems", "Nothing unhandled", WAIT)
        .await
        .expect("all handled");

    // The feed says what happened, in words.
    b.wait_until_text("#feed", "flip: OK → CRITICAL", WAIT)
        .await
        .expect("feed");
    b.wait_until_text("#feed", "to ops: delivered", WAIT)
        .await
        .expect("delivery in the feed");
    b.screenshot("5-all-handled").await.expect("screenshot");

    // The alarm's page: the timeline with the delivery and the acknowledgement.
    b.open(&site.url(&format!("/alarm/{alarm}")))
        .await
        .expect("alarm page");
    b.wait_until_text("table.timeline", "delivered", WAIT)
        .await
        .expect("delivery");
    b.wait_until_text("table.timeline", "audit: operator", WAIT)
        .await
        .expect("audit entry");
    b.wait_until_text("#alarm", "looking at the disk on web1", WAIT)
        .await
        .expect("ack shown");
    b.screenshot("6-alarm-timeline").await.expect("screenshot");

    // On a phone the problems page still reads.
    drop(b);
    let phone = Browser::start_with(&shots.join("phone"), Viewport::PHONE)
        .await
        .expect("phone browser");
    site.set("flip", 0);
    site.set("flop", 2);
    phone.open(&site.url("/")).await.expect("problems page");
    phone
        .wait_until_text("#counters", "CRITICAL", WAIT)
        .await
        .expect("counters");
    phone.screenshot("7-phone").await.expect("screenshot");
    assert!(
        fits(&phone).await,
        "a table or section of the problems page is wider than a phone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_check_detail_run_now_and_silences() {
    let dir = tempfile::tempdir().expect("temp dir");
    let site = Site::start(dir.path(), false);
    site.set("flop", 1);
    let b = Browser::start(&browser_dir("hosts-check-silences"))
        .await
        .expect("browser");

    // Without anonymous reads a page asks for a token first, then returns.
    b.open(&site.url("/hosts?tag=web")).await.expect("hosts");
    b.wait_for("#token", WAIT).await.expect("the login form");
    b.wait_for("#token", WAIT)
        .await
        .expect("token")
        .send_keys(OPERATE)
        .await
        .expect("type");
    b.client()
        .find(Locator::Css("section.login button[type=submit]"))
        .await
        .expect("button")
        .click()
        .await
        .expect("click");
    b.wait_until_text("h1", "Hosts & services", WAIT)
        .await
        .expect("back at the hosts view");
    // The tag filter keeps web1's and web2's checks, grouped by host, not db1's.
    b.wait_until_text("#cells", "WARNING", WAIT)
        .await
        .expect("flop's cell");
    let cells = text_of(&b, "#cells").await;
    assert!(
        cells.contains("web1") && cells.contains("web2") && !cells.contains("db1"),
        "{cells}"
    );
    assert!(cells.contains("4 of 5 checks match"), "{cells}");
    b.screenshot("1-hosts-tag-web").await.expect("screenshot");

    // Filter by name from the keyboard: "/" jumps to the first search field.
    b.open(&site.url("/hosts")).await.expect("hosts");
    b.wait_for("#cells", WAIT).await.expect("cells");
    b.client()
        .find(Locator::Css("body"))
        .await
        .expect("body")
        .send_keys("/")
        .await
        .expect("slash");
    let host = b
        .wait_for("input[name=host]", WAIT)
        .await
        .expect("host field");
    let active: Value = b
        .client()
        .execute(
            "return document.activeElement === document.querySelector('input[name=host]')",
            vec![],
        )
        .await
        .expect("script");
    assert_eq!(active, Value::Bool(true));
    host.send_keys("db*\u{E007}").await.expect("type and Enter");
    b.wait_until_text("#cells", "1 of 5 checks match", WAIT)
        .await
        .expect("filtered");

    // Check detail: output, perfdata, charts from the store.
    b.open(&site.url("/check/flop")).await.expect("check page");
    b.wait_until_text("#summary", "flop says 1", WAIT)
        .await
        .expect("output");
    b.wait_until_text("table.perf", "time", WAIT)
        .await
        .expect("perfdata table");
    b.wait_for("svg.chart.strip rect.st-warning", WAIT)
        .await
        .expect("state strip");
    b.wait_for("svg.chart.line polyline.mean", WAIT)
        .await
        .expect("run-time chart");
    b.screenshot("2-check-detail").await.expect("screenshot");

    // Run now: the new result shows up on the page.
    site.set("flop", 2);
    click(&b, "#run-now").await;
    b.wait_until_text("#flash", "Ran flop: CRITICAL flop says 2", WAIT)
        .await
        .expect("ran");
    b.wait_until_text("#summary", "flop says 2", WAIT)
        .await
        .expect("the new output on the page");

    // Silence: preview lists what it would cover, then set it.
    b.open(&site.url("/silences?checks=fl*"))
        .await
        .expect("silences");
    b.wait_for("#silence-comment", WAIT)
        .await
        .expect("comment")
        .send_keys("web maintenance")
        .await
        .expect("type");
    b.client()
        .find(Locator::Css("#silence-preview"))
        .await
        .expect("preview button")
        .click()
        .await
        .expect("click");
    b.wait_until_text("#preview", "It would cover 2 checks now", WAIT)
        .await
        .expect("preview");
    let listed = text_of(&b, "#preview").await;
    assert!(
        listed.contains("flip") && listed.contains("flop"),
        "{listed}"
    );
    assert_eq!(
        value_of(&b, "#silence-comment").await,
        "web maintenance",
        "the form keeps its fields"
    );
    b.screenshot("3-silence-preview").await.expect("screenshot");
    b.client()
        .find(Locator::Css("#silence-create"))
        .await
        .expect("create")
        .click()
        .await
        .expect("click");
    b.wait_until_text("#flash", "set until", WAIT)
        .await
        .expect("silence set");
    b.wait_until_text("#silences", "web maintenance", WAIT)
        .await
        .expect("listed");
    let silences = site.api.get("/silences").await;
    assert_eq!(silences[0]["comment"], "web maintenance", "{silences}");
    assert_eq!(silences[0]["by"], "operator", "{silences}");
    b.screenshot("4-silence-set").await.expect("screenshot");

    // End it from the page.
    click(&b, "form.end button").await;
    b.wait_until_text("#flash", "ended", WAIT)
        .await
        .expect("ended");
    let left = site.api.get("/silences").await;
    assert_eq!(left.as_array().map(Vec::len), Some(0), "{left}");
}

/// Posts a form with `cookie`, returning status and body.
async fn post_form(
    url: &str,
    cookie: Option<&str>,
    origin: Option<&str>,
    form: &[(&str, &str)],
) -> (u16, String) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let mut r = client
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body(serde_urlencoded::to_string(form).expect("form"));
    if let Some(c) = cookie {
        r = r.header("cookie", format!("laxmon_session={c}"));
    }
    if let Some(o) = origin {
        r = r.header("origin", o);
    }
    let r = r.send().await.expect("post");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_need_their_csrf_token_and_never_change_things_through_the_api() {
    let dir = tempfile::tempdir().expect("temp dir");
    let site = Site::start(dir.path(), true);
    site.set("flip", 2);
    let v = site
        .api
        .until("/checks/flip", |v| v["alarm"]["alarm_id"].is_u64())
        .await;
    let alarm = v["alarm"]["alarm_id"].as_u64().expect("alarm");
    let ack = site.url(&format!("/ui/alarms/{alarm}/ack"));
    let csrf = laxmon::api::auth::csrf_token(OPERATE);
    let own = site.base.clone();

    // Anonymous (loopback, allowed to read): the page reads, the form refuses.
    let page = reqwest::get(site.url("/")).await.expect("page");
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.expect("body").contains("flip"));
    let (status, body) =
        post_form(&ack, None, Some(&own), &[("comment", "x"), ("csrf", &csrf)]).await;
    assert_eq!(status, 401, "{body}");

    // A session without the CSRF token, with another's, or from another origin: refused.
    let (status, body) = post_form(&ack, Some(OPERATE), Some(&own), &[("comment", "x")]).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("CSRF"), "{body}");
    let other = laxmon::api::auth::csrf_token(READ);
    let (status, _) = post_form(
        &ack,
        Some(OPERATE),
        Some(&own),
        &[("comment", "x"), ("csrf", &other)],
    )
    .await;
    assert_eq!(status, 403);
    let (status, body) = post_form(
        &ack,
        Some(OPERATE),
        Some("http://127.0.0.1:1"),
        &[("comment", "x"), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(status, 403, "{body}");
    // The session cookie alone never changes anything through /api/v1.
    let r = reqwest::Client::new()
        .post(site.url(&format!("/api/v1/alarms/{alarm}/ack")))
        .header("cookie", format!("laxmon_session={OPERATE}"))
        .header("content-type", "application/json")
        .body(r#"{"comment":"via cookie"}"#)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 403);
    // ... but it may read (the page's event stream uses it).
    let r = reqwest::Client::new()
        .get(site.url("/api/v1/status"))
        .header("cookie", format!("laxmon_session={READ}"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status().as_u16(), 200);
    let a = site.api.get(&format!("/alarms/{alarm}")).await;
    assert!(
        a["alarm"]["ack_by"].is_null(),
        "a refused request changed the alarm: {a}"
    );

    // A read-only session sees the API's refusal; an empty comment is refused too.
    let (status, body) = post_form(
        &ack,
        Some(READ),
        Some(&own),
        &[("comment", "x"), ("csrf", &other)],
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("operate"), "{body}");
    let (status, body) = post_form(
        &ack,
        Some(OPERATE),
        Some(&own),
        &[("comment", " "), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("comment is required"), "{body}");

    // The right session, token and origin: done, audited under the token's name.
    let (status, body) = post_form(
        &ack,
        Some(OPERATE),
        Some(&own),
        &[("comment", "on it"), ("csrf", &csrf), ("idem", "k1")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(answer["ok"], true);
    assert_eq!(answer["answer"]["ack_by"], "operator", "{answer}");
    // The same form sent twice (a double click, a reload) is done once.
    let (status, again) = post_form(
        &ack,
        Some(OPERATE),
        Some(&own),
        &[("comment", "on it"), ("csrf", &csrf), ("idem", "k1")],
    )
    .await;
    assert_eq!(status, 200, "{again}");
    let audit = site.api.get(&format!("/audit?alarm={alarm}")).await;
    let acks: Vec<&Value> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| {
            e["action"].as_str().is_some_and(|a| a.ends_with("/ack"))
                && e["result"].as_str().is_some_and(|r| r.starts_with("200"))
        })
        .collect();
    assert_eq!(acks.len(), 1, "{audit}");
    assert_eq!(acks[0]["who"], "operator");

    // Without JavaScript: the form answers with a redirect back and a message.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let r = client
        .post(site.url(&format!("/ui/alarms/{alarm}/unack")))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", format!("laxmon_session={OPERATE}"))
        .body(
            serde_urlencoded::to_string([("csrf", csrf.as_str()), ("back", "/check/flip")])
                .expect("form"),
        )
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(r.headers()["location"], "/check/flip");
    let flash = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("laxmon_flash="))
        .expect("a flash cookie")
        .to_string();
    assert!(
        flash.contains("HttpOnly") && flash.contains("SameSite=Strict"),
        "{flash}"
    );
    let a = site.api.get(&format!("/alarms/{alarm}")).await;
    assert!(a["alarm"]["ack_by"].is_null(), "{a}");
    drop(site);
}
