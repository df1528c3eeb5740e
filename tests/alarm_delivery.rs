//! Alarms end to end against real servers on loopback: an SMTP server
//! (Debian's python3-aiosmtpd), an HTTP server standing in for the SMS
//! gateway, ntfy and a webhook, and a real alarm script. Results go
//! through the real state machine and alarm lifecycle into the outbox and
//! out through the real senders; the message ids with the real store
//! (SQLite and PostgreSQL) behind the outbox.

mod support;

use chrono::{DateTime, Duration, Utc};
use laxmon::actions::notify::{deliver_due, enqueue, Notifiers};
use laxmon::alarm::lifecycle::{Alarms, Effect};
use laxmon::alarm::outbox::Outbox;
use laxmon::alarm::store::{MemoryStore, NotificationStore};
use laxmon::checks::{CheckOutput, State};
use laxmon::config::Config;
use laxmon::result::CheckResult;
use laxmon::state::{CheckState, Policy, Reachability};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use support::backend::{both, Env};
use support::http::serve;
use tokio::net::TcpListener;

/// The installation id of the tests that keep their outbox in memory.
const INSTALLATION: &str = "0123456789abcdef0123456789abcdef";

// ---- an SMTP sink: aiosmtpd writing each message to a JSON file ----

/// Records every message it is offered (raw, and subject, Message-ID and
/// body as Python's mail parser decodes them). With `greylist` 1 it answers
/// the first offer of each Message-ID `451` (try again later), as a
/// greylisting mail server does, and accepts it the next time.
const SMTP_SINK: &str = r#"
import email, email.policy, json, os, sys
from aiosmtpd.controller import Controller
port, out, greylist = int(sys.argv[1]), sys.argv[2], sys.argv[3] == '1'
seen = set()
class Sink:
    async def handle_DATA(self, server, session, envelope):
        n = len([f for f in os.listdir(out) if f.endswith('.json')])
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        rejected = greylist and str(msg['message-id']) not in seen
        seen.add(str(msg['message-id']))
        tmp = os.path.join(out, '.tmp')
        with open(tmp, 'w') as f:
            json.dump({'from': envelope.mail_from, 'to': envelope.rcpt_tos,
                       'data': envelope.content.decode('utf-8', 'replace'),
                       'subject': str(msg['subject']), 'message_id': str(msg['message-id']),
                       'body': msg.get_content(), 'rejected': rejected}, f)
        os.rename(tmp, os.path.join(out, '%04d.json' % n))
        return '451 try again later' if rejected else '250 OK'
c = Controller(Sink(), hostname='127.0.0.1', port=port)
c.start()
print('ready', flush=True)
sys.stdin.read()
c.stop()
"#;

struct SmtpSink {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl SmtpSink {
    fn start() -> SmtpSink {
        SmtpSink::start_with(false)
    }

    /// A sink that answers the first offer of each Message-ID `451`.
    fn start_greylisting() -> SmtpSink {
        SmtpSink::start_with(true)
    }

    fn start_with(greylist: bool) -> SmtpSink {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = support::free_port();
        // Debian's python3-aiosmtpd lives with the system Python, not a pyenv one.
        let python = if Path::new("/usr/bin/python3").exists() {
            "/usr/bin/python3"
        } else {
            "python3"
        };
        let mut child = Command::new(python)
            .args(["-c", SMTP_SINK, &port.to_string()])
            .arg(dir.path())
            .arg(if greylist { "1" } else { "0" })
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 with aiosmtpd (Debian: python3-aiosmtpd)");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("ready line");
        assert_eq!(line.trim(), "ready", "aiosmtpd did not start");
        SmtpSink { child, port, dir }
    }

    fn messages(&self) -> Vec<serde_json::Value> {
        let mut files: Vec<_> = std::fs::read_dir(self.dir.path())
            .expect("read dir")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| {
                serde_json::from_str(&std::fs::read_to_string(p).expect("read")).expect("json")
            })
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- config, results and the pipeline ----

fn load(dir: &Path, yaml: &str) -> Config {
    let path = dir.join("laxmon.yaml");
    std::fs::write(&path, yaml).expect("write config");
    laxmon::config::load(&path).unwrap_or_else(|e| panic!("config:\n{e}"))
}

/// Feeds results through the state machine and the lifecycle; the outbox
/// keeps its items in `store`.
struct Pipeline<S: NotificationStore = MemoryStore> {
    states: HashMap<String, CheckState>,
    alarms: Alarms,
    config: Config,
    outbox: Outbox,
    store: S,
    notifiers: Notifiers,
    now: DateTime<Utc>,
    runs: Vec<laxmon::alarm::lifecycle::ActionRequest>,
}

impl Pipeline<MemoryStore> {
    fn new(config: Config) -> Pipeline {
        Pipeline::with_store(config, MemoryStore::default(), INSTALLATION)
    }
}

impl<S: NotificationStore> Pipeline<S> {
    fn with_store(config: Config, store: S, installation: &str) -> Pipeline<S> {
        Pipeline {
            states: HashMap::new(),
            alarms: Alarms::new(&config),
            outbox: Outbox::new(&config.alarms, installation),
            store,
            notifiers: Notifiers::new(&config.alarms).expect("notifiers"),
            config,
            now: "2026-12-01T10:00:00Z".parse().expect("time"),
            runs: Vec::new(),
        }
    }

    /// What a restarted daemon does with its outbox: a new one, with the
    /// pending items of the store.
    async fn restart_outbox(&mut self, installation: &str) {
        self.outbox = Outbox::new(&self.config.alarms, installation);
        let pending = self.store.pending().await.expect("pending");
        self.outbox.restore(pending);
        self.notifiers = Notifiers::new(&self.config.alarms).expect("notifiers");
    }

    async fn result(&mut self, check: &str, state: State, output: &str) {
        let c = self.config.check(check).expect("check").clone();
        let policy = Policy {
            max_attempts: c.max_attempts,
            ..Policy::default()
        };
        let t = self.states.entry(check.to_string()).or_default().apply(
            state,
            &policy,
            Reachability::Reachable,
            self.now,
        );
        let r = CheckResult {
            check: check.into(),
            host: c.host.clone(),
            kind: c.kind_name(),
            output: CheckOutput::new(state, output),
            planned: self.now,
            started: self.now,
            duration: std::time::Duration::ZERO,
            transition: t,
            state: self.states[check].clone(),
        };
        let effects = self.alarms.observe(&r, self.now);
        self.handle(effects).await;
    }

    async fn tick(&mut self) {
        let effects = self.alarms.tick(self.now);
        self.handle(effects).await;
    }

    async fn handle(&mut self, effects: Vec<Effect>) {
        for e in effects {
            match e {
                Effect::Notify(n) => {
                    enqueue(
                        &mut self.outbox,
                        &self.store,
                        &self.config.alarms,
                        &n,
                        self.now,
                    )
                    .await
                    .expect("enqueue");
                }
                Effect::Run(r) => self.runs.push(r),
                Effect::Alarm(_) => {}
            }
        }
    }

    async fn deliver(&mut self) -> laxmon::actions::notify::DeliveryReport {
        deliver_due(&mut self.outbox, &self.store, &self.notifiers, self.now)
            .await
            .expect("deliver")
    }

    fn at(&mut self, seconds: i64) {
        self.now += Duration::seconds(seconds);
    }
}

fn checks_yaml(n: usize) -> String {
    let mut s =
        String::from("hosts:\n  - {name: cs1, address: 127.0.0.1, tags: [cluster]}\nchecks:\n");
    for i in 0..n {
        s.push_str(&format!(
            "  - {{name: svc{i:02}, kind: port, host: cs1, port: 9, max_attempts: 1}}\n"
        ));
    }
    s
}

#[tokio::test]
async fn mail_arrives_with_subject_body_and_recipients() {
    let smtp = SmtpSink::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = format!(
        "{}alarms: {{group_window: 0s}}\nnotifiers:\n  - name: mail\n    kind: smtp\n    host: 127.0.0.1\n    port: {}\n    tls: none\n    from: \"laxmon <laxmon@example.org>\"\n    subject: \"[laxmon] {{{{notification_type}}}} {{{{check}}}} is {{{{state}}}}\"\n    body: \"Output: {{{{output}}}}\\nAlarm: {{{{alarm_id}}}}\\n\"\ncontacts:\n  - {{name: alice, email: alice@example.org}}\n  - {{name: bob, email: bob@example.org}}\nrules:\n  - {{name: all, match: {{tags: [cluster]}}, notify: [alice, bob]}}\n",
        checks_yaml(1),
        smtp.port
    );
    let mut p = Pipeline::new(load(dir.path(), &yaml));
    p.result("svc00", State::Critical, "connection refused")
        .await;
    let report = p.deliver().await;
    assert_eq!(report.sent, 2, "{:?}", p.store.items());
    p.at(60);
    p.result("svc00", State::Ok, "port 9 open").await;
    assert_eq!(p.deliver().await.sent, 2);

    let msgs = smtp.messages();
    assert_eq!(msgs.len(), 4, "{msgs:?}");
    let mut to: Vec<String> = msgs
        .iter()
        .map(|m| m["to"][0].as_str().unwrap_or("").to_string())
        .collect();
    to.sort();
    assert_eq!(
        to,
        [
            "alice@example.org",
            "alice@example.org",
            "bob@example.org",
            "bob@example.org"
        ]
    );
    for m in &msgs {
        assert_eq!(m["from"], "laxmon@example.org");
    }
    let data: Vec<&str> = msgs
        .iter()
        .map(|m| m["data"].as_str().unwrap_or(""))
        .collect();
    assert!(
        data[0].contains("Subject: [laxmon] PROBLEM svc00 is CRITICAL"),
        "{}",
        data[0]
    );
    assert!(
        data[0].contains("Output: connection refused"),
        "{}",
        data[0]
    );
    assert!(data[0].contains("Alarm: 1"), "{}", data[0]);
    let id = msgs[0]["message_id"].as_str().unwrap_or("");
    assert!(
        id.starts_with(&format!("<{INSTALLATION}.1.all.1.alice.mail@")),
        "{id}"
    );
    assert!(
        data[2].contains("Subject: [laxmon] RECOVERY svc00 is OK"),
        "{}",
        data[2]
    );
}

#[tokio::test]
async fn sms_gateway_ntfy_and_webhook_get_the_right_requests() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let http = serve(listener, 201, "{\"status\": \"queued\"}");
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = format!(
        "{}alarms: {{group_window: 0s}}\nnotifiers:\n  - name: sms\n    kind: sms\n    url: http://127.0.0.1:{port}/2010-04-01/Accounts/AC1/Messages.json\n    headers: {{Authorization: \"Basic QUMxOnNlY3JldA==\", Content-Type: application/x-www-form-urlencoded}}\n    body: \"To={{{{to|url}}}}&From=%2B4900&Body={{{{message|url}}}}\"\n    success_status: [201]\n    body_must_contain: queued\n  - name: popup\n    kind: ntfy\n    server: http://127.0.0.1:{port}\n    topic: ops\n    priority: urgent\n    tags: [warning, skull]\n  - name: hook\n    kind: webhook\n    url: http://127.0.0.1:{port}/hook\ncontacts:\n  - {{name: alice, phone: \"+4917012345\", ntfy_topic: alice-screen}}\n  - {{name: chat, via: [hook]}}\nrules:\n  - {{name: all, match: {{checks: [\"*\"]}}, notify: [alice, chat]}}\n",
        checks_yaml(1)
    );
    let mut p = Pipeline::new(load(dir.path(), &yaml));
    p.result("svc00", State::Critical, "disk full").await;
    let report = p.deliver().await;
    assert_eq!(report.sent, 3, "{:?}", p.store.items());
    let reqs = http.all();
    assert_eq!(reqs.len(), 3);
    let sms = reqs
        .iter()
        .find(|r| r.path.ends_with("Messages.json"))
        .expect("sms request");
    assert_eq!(sms.method, "POST");
    assert_eq!(sms.headers["authorization"], "Basic QUMxOnNlY3JldA==");
    assert_eq!(
        sms.headers["content-type"],
        "application/x-www-form-urlencoded"
    );
    assert!(
        sms.body.starts_with(
            "To=%2B4917012345&From=%2B4900&Body=PROBLEM%20%231%20svc00%40cs1%20CRITICAL%3A%20disk%20full"
        ),
        "{}",
        sms.body
    );
    let pop = reqs
        .iter()
        .find(|r| r.path == "/alice-screen")
        .expect("ntfy request");
    assert_eq!(pop.method, "POST");
    assert_eq!(pop.headers["title"], "PROBLEM: svc00 on cs1 is CRITICAL");
    assert_eq!(pop.headers["priority"], "5");
    assert_eq!(pop.headers["tags"], "warning,skull");
    assert_eq!(pop.body, "disk full\nAlarm 1. Acknowledge: laxmon ack 1");
    let hook = reqs
        .iter()
        .find(|r| r.path == "/hook")
        .expect("webhook request");
    let json: serde_json::Value = serde_json::from_str(&hook.body).expect("json body");
    assert_eq!(json["facts"]["check"], "svc00");
    assert_eq!(json["facts"]["state"], "CRITICAL");
    assert_eq!(json["contact"], "chat");
    assert_eq!(json["subject"], "PROBLEM: svc00 on cs1 is CRITICAL");
    assert_eq!(
        hook.headers["idempotency-key"],
        format!("{INSTALLATION}.1.all.1.chat.hook")
    );
    assert_eq!(json["key"], hook.headers["idempotency-key"].as_str());
    assert_eq!(
        sms.headers["idempotency-key"],
        format!("{INSTALLATION}.1.all.1.alice.sms")
    );
}

#[tokio::test]
async fn gateway_answering_200_without_success_text_is_retried() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let http = serve(listener, 200, "ERROR: modem offline");
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = format!(
        "{}alarms: {{group_window: 0s}}\nnotifiers:\n  - {{name: sms, kind: sms, url: \"http://127.0.0.1:{port}/send?to={{{{to|url}}}}&text={{{{message|url}}}}\", method: GET, body_must_contain: \"OK\"}}\ncontacts:\n  - {{name: alice, phone: \"+4917012345\"}}\nrules:\n  - {{name: all, match: {{checks: [\"*\"]}}, notify: [alice]}}\n",
        checks_yaml(1)
    );
    let mut p = Pipeline::new(load(dir.path(), &yaml));
    p.result("svc00", State::Critical, "down").await;
    let report = p.deliver().await;
    assert_eq!((report.sent, report.failed), (0, 1));
    let item = &p.store.items()[0];
    assert!(item.is_pending());
    assert!(
        item.last_error
            .as_deref()
            .unwrap_or("")
            .contains("lacks \"OK\""),
        "{:?}",
        item.last_error
    );
    let reqs = http.all();
    assert_eq!(reqs[0].method, "GET");
    assert!(
        reqs[0]
            .path
            .starts_with("/send?to=%2B4917012345&text=PROBLEM"),
        "{}",
        reqs[0].path
    );
}

#[tokio::test]
async fn a_gateway_down_for_a_while_gets_every_message_exactly_once() {
    let port = support::free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = format!(
        "{}alarms:\n  group_window: 0s\n  delivery: {{first_retry: 10s, max_retry: 2m, give_up_after: 1d}}\nnotifiers:\n  - {{name: sms, kind: sms, url: \"http://127.0.0.1:{port}/sms\", body: \"{{{{to}}}}|{{{{message}}}}\", timeout: 2s}}\ncontacts:\n  - {{name: alice, phone: \"+491\"}}\n  - {{name: bob, phone: \"+492\"}}\nrules:\n  - {{name: all, match: {{checks: [\"*\"]}}, notify: [alice, bob]}}\n",
        checks_yaml(5)
    );
    let mut p = Pipeline::new(load(dir.path(), &yaml));
    for i in 0..5 {
        p.result(&format!("svc{i:02}"), State::Critical, "down")
            .await;
    }
    // Gateway down: every attempt fails, and the outbox backs off.
    let mut failures = 0;
    for _ in 0..6 {
        let r = p.deliver().await;
        assert_eq!(r.sent, 0);
        failures += r.failed;
        p.at(130);
    }
    assert!(failures >= 10, "{failures}");
    // The same notifications offered again are refused by their keys.
    p.tick().await;
    assert_eq!(p.store.items().len(), 10);
    // The gateway comes back on the same port.
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("rebind");
    let http = serve(listener, 200, "OK");
    let mut sent = 0;
    for _ in 0..4 {
        sent += p.deliver().await.sent;
        p.at(130);
        p.tick().await;
    }
    assert_eq!(sent, 10);
    let mut bodies: Vec<String> = http.all().into_iter().map(|r| r.body).collect();
    bodies.sort();
    let unique = bodies.iter().collect::<std::collections::BTreeSet<_>>();
    assert_eq!(bodies.len(), 10, "{bodies:?}");
    assert_eq!(unique.len(), 10, "no message twice: {bodies:?}");
    assert!(p.store.items().iter().all(|i| !i.is_pending()));
    // A restarted daemon resumes only what is pending: nothing.
    let pending = laxmon::alarm::store::NotificationStore::pending(&p.store)
        .await
        .expect("pending");
    assert!(pending.is_empty());
}

#[tokio::test]
async fn an_alert_storm_is_one_message_per_contact_and_window() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let http = serve(listener, 200, "OK");
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = format!(
        "{}alarms: {{group_window: 30s}}\nnotifiers:\n  - {{name: hook, kind: webhook, url: \"http://127.0.0.1:{port}/hook\"}}\n  - {{name: sms, kind: sms, url: \"http://127.0.0.1:{port}/sms\", body: \"{{{{message}}}}\"}}\ncontacts:\n  - {{name: alice, phone: \"+491\"}}\n  - {{name: chat, via: [hook]}}\nrules:\n  - {{name: all, match: {{tags: [cluster]}}, notify: [alice, chat]}}\n",
        checks_yaml(40)
    );
    let mut p = Pipeline::new(load(dir.path(), &yaml));
    for i in 0..40 {
        p.result(&format!("svc{i:02}"), State::Critical, "cs1 is down")
            .await;
    }
    assert_eq!(p.deliver().await.sent, 0, "held for the group window");
    p.at(30);
    assert_eq!(p.deliver().await.sent, 2);
    let reqs = http.all();
    assert_eq!(reqs.len(), 2);
    let hook = reqs.iter().find(|r| r.path == "/hook").expect("hook");
    let json: serde_json::Value = serde_json::from_str(&hook.body).expect("json");
    assert_eq!(json["count"], 40);
    let sms = reqs.iter().find(|r| r.path == "/sms").expect("sms");
    assert!(sms.body.starts_with("40 alarms: "), "{}", sms.body);
    assert!(sms.body.chars().count() <= 160);
}

#[tokio::test]
async fn alarm_script_gets_the_nagios_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env_file = dir.path().join("env.txt");
    let script = dir.path().join("alarm-scripts/handler");
    std::fs::create_dir_all(script.parent().expect("parent")).expect("mkdir");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nenv > {}\necho \"args: $*\"\nexit 0\n",
            env_file.display()
        ),
    )
    .expect("write script");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let yaml = format!(
        "{}rules:\n  - name: heal\n    match: {{checks: [svc00]}}\n    actions:\n      - script: handler\n        args: [\"$SERVICESTATE$\", \"$SERVICESTATETYPE$\", \"$SERVICEATTEMPT$\", \"{{{{host}}}}\"]\n",
        checks_yaml(1).replace("max_attempts: 1", "max_attempts: 2")
    );
    let config = load(dir.path(), &yaml);
    let mut p = Pipeline::new(config.clone());
    p.result("svc00", State::Critical, "connection refused")
        .await;
    assert!(p.runs.is_empty(), "SOFT: no alarm yet");
    p.at(10);
    p.result("svc00", State::Critical, "connection refused")
        .await;
    assert_eq!(p.runs.len(), 1);
    let run = laxmon::actions::restart::run(&p.runs[0], &config).await;
    assert_eq!(run.exit_code, Some(0), "{run:?}");
    assert_eq!(run.output, "args: CRITICAL HARD 2 cs1");
    let env = std::fs::read_to_string(&env_file).expect("env file");
    for want in [
        "NAGIOS_HOSTNAME=cs1",
        "NAGIOS_HOSTADDRESS=127.0.0.1",
        "NAGIOS_SERVICEDESC=svc00",
        "NAGIOS_SERVICESTATE=CRITICAL",
        "NAGIOS_SERVICESTATEID=2",
        "NAGIOS_SERVICESTATETYPE=HARD",
        "NAGIOS_SERVICEATTEMPT=2",
        "NAGIOS_MAXSERVICEATTEMPTS=2",
        "NAGIOS_SERVICEOUTPUT=connection refused",
        "NAGIOS_LASTSERVICESTATE=CRITICAL",
        "LAXMON_ALARM_ID=1",
        "LAXMON_CHECK=svc00",
        "LAXMON_RULE=",
    ] {
        if want.ends_with('=') && !env.contains(want) {
            continue;
        }
        assert!(env.lines().any(|l| l == want), "{want} missing in:\n{env}");
    }
}

/// Each kind of notification says what it is in laxmon's own texts (no
/// `subject:`/`body:` configured): problem, reminder, escalation,
/// acknowledgement, and a recovery that says how long the problem lasted
/// and asks for nothing.
#[tokio::test]
async fn every_kind_of_mail_says_what_it_is() {
    let smtp = SmtpSink::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = format!(
        "{}alarms: {{group_window: 0s}}\nnotifiers:\n  - {{name: mail, kind: smtp, host: 127.0.0.1, port: {}, tls: none, from: \"laxmon <laxmon@example.org>\"}}\ncontacts:\n  - {{name: alice, email: alice@example.org}}\n  - {{name: bob, email: bob@example.org}}\nrules:\n  - {{name: page, match: {{checks: [\"*\"]}}, notify: [alice], repeat: 2m, escalate: [{{after: 3m, notify: [bob]}}]}}\n",
        checks_yaml(1),
        smtp.port
    );
    let mut p = Pipeline::new(load(dir.path(), &yaml));
    p.result("svc00", State::Critical, "connection refused")
        .await;
    assert_eq!(p.deliver().await.sent, 1, "problem");
    p.at(120);
    p.tick().await;
    assert_eq!(p.deliver().await.sent, 1, "reminder");
    p.at(60);
    p.tick().await;
    assert_eq!(p.deliver().await.sent, 1, "escalation");
    p.at(30);
    let acked = p
        .alarms
        .acknowledge(1, "carol", "on it", p.now)
        .expect("acknowledge");
    p.handle(acked).await;
    assert_eq!(p.deliver().await.sent, 2, "acknowledgement to both");
    p.at(42);
    p.result("svc00", State::Ok, "port 9 open").await;
    assert_eq!(p.deliver().await.sent, 2, "recovery to both");

    let msgs = smtp.messages();
    let got: Vec<(String, String)> = msgs
        .iter()
        .map(|m| {
            (
                m["to"][0].as_str().unwrap_or("").to_string(),
                m["subject"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let want = [
        ("alice", "[laxmon] PROBLEM: svc00 on cs1 is CRITICAL"),
        (
            "alice",
            "[laxmon] REMINDER: svc00 on cs1 is still CRITICAL after 2m",
        ),
        (
            "bob",
            "[laxmon] ESCALATION: svc00 on cs1 is still CRITICAL after 3m",
        ),
        (
            "alice",
            "[laxmon] ACKNOWLEDGED: svc00 on cs1 (CRITICAL) by carol",
        ),
        (
            "bob",
            "[laxmon] ACKNOWLEDGED: svc00 on cs1 (CRITICAL) by carol",
        ),
        (
            "alice",
            "[laxmon] RECOVERED: svc00 on cs1 is OK again after 4m 12s",
        ),
        (
            "bob",
            "[laxmon] RECOVERED: svc00 on cs1 is OK again after 4m 12s",
        ),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(to, s)| (format!("{to}@example.org"), s.to_string()))
        .collect();
    assert_eq!(got, want);
    let body = |i: usize| msgs[i]["body"].as_str().unwrap_or("").to_string();
    assert!(body(0).contains("Acknowledge: laxmon ack 1"), "{}", body(0));
    assert!(
        body(2).contains("escalated to level 1 of rule page"),
        "{}",
        body(2)
    );
    assert!(body(3).contains("Comment: on it"), "{}", body(3));
    let recovery = body(5);
    assert_eq!(
        recovery.lines().next(),
        Some("svc00 on cs1 (127.0.0.1) recovered after 4m 12s: it is OK again (it was CRITICAL).")
    );
    assert!(recovery.contains("port 9 open"), "{recovery}");
    assert!(recovery.contains("is resolved"), "{recovery}");
    for stale in ["laxmon ack", "open since", "Acknowledge"] {
        assert!(!recovery.contains(stale), "{stale:?} in:\n{recovery}");
    }
}

/// This machine's name as the kernel has it (what the Message-ID names).
fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("host name")
        .trim()
        .to_string()
}

/// Two fresh databases with the same configuration make the same alarm and
/// the same notification keys, yet every message id differs (each database
/// has its own installation id); a message retried after a restart carries
/// the id of its first attempt. Mail through a greylisting aiosmtpd (the
/// first offer is refused, the retry accepted), SMS through a gateway that
/// answers 503.
async fn message_ids_are_unique_per_database_and_stable_on_retry(env: Env) {
    let second = if env.is_postgres() {
        Env::postgres().await
    } else {
        Env::sqlite().await
    };
    let smtp = SmtpSink::start_greylisting();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let http = serve(listener, 503, "busy");
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = format!(
        "{}alarms: {{group_window: 0s}}\nnotifiers:\n  - {{name: mail, kind: smtp, host: 127.0.0.1, port: {}, tls: none, from: \"laxmon <laxmon@example.org>\"}}\n  - {{name: sms, kind: sms, url: \"http://127.0.0.1:{port}/sms\", body: \"{{{{message}}}}\"}}\ncontacts:\n  - {{name: alice, email: alice@example.org, phone: \"+491\"}}\nrules:\n  - {{name: all, match: {{checks: [\"*\"]}}, notify: [alice]}}\n",
        checks_yaml(1),
        smtp.port
    );
    let config = load(dir.path(), &yaml);
    let mut installations = Vec::new();
    for env in [&env, &second] {
        let store = env.open().await;
        let installation = store.installation_id().await.expect("installation id");
        assert!(
            installation.len() == 32
                && installation
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
            "{installation}"
        );
        let mut p = Pipeline::with_store(config.clone(), store, &installation);
        p.result("svc00", State::Critical, "down").await;
        let r = p.deliver().await;
        assert_eq!((r.sent, r.failed), (0, 2), "greylisted and 503");
        // A restart: a new store handle and outbox, resumed from the database.
        p.store = env.open().await;
        let again = p.store.installation_id().await.expect("installation id");
        assert_eq!(again, installation, "the id stays with the database");
        p.restart_outbox(&again).await;
        p.at(3600);
        let r = p.deliver().await;
        assert_eq!((r.sent, r.failed), (1, 1), "mail accepted, SMS 503 again");
        installations.push(installation);
    }
    assert_ne!(installations[0], installations[1]);

    let host = this_host();
    let mails = smtp.messages();
    let ids: Vec<&str> = mails
        .iter()
        .map(|m| m["message_id"].as_str().unwrap_or(""))
        .collect();
    let rejected: Vec<bool> = mails
        .iter()
        .map(|m| m["rejected"].as_bool().unwrap_or(false))
        .collect();
    assert_eq!(rejected, [true, false, true, false], "{ids:?}");
    for (i, inst) in installations.iter().enumerate() {
        let want = format!("<{inst}.1.all.1.alice.mail@{host}>");
        assert_eq!(ids[2 * i], want, "first attempt, database {i}");
        assert_eq!(
            ids[2 * i + 1],
            want,
            "retry after the restart, database {i}"
        );
    }
    let keys: Vec<String> = http
        .all()
        .iter()
        .map(|r| {
            r.headers
                .get("idempotency-key")
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    let want: Vec<String> = installations
        .iter()
        .flat_map(|inst| vec![format!("{inst}.1.all.1.alice.sms"); 2])
        .collect();
    assert_eq!(keys, want);
}

both!(message_ids_are_unique_per_database_and_stable_on_retry);
