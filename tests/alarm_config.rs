//! `laxmon config check` on broken alarm configurations: every error names
//! the file, line, column, the key and the value.

mod support;

use support::config::{assert_error, config_check};

/// Hosts, a check, a mail notifier and a contact every case can use (8 lines).
const BASE: &str = "checks:\n  - {name: web, kind: plugin, command: /bin/true}\nnotifiers:\n  - {name: mail, kind: smtp, host: localhost, tls: none, from: laxmon@localhost}\ncontacts:\n  - name: alice\n    email: alice@example.org\n";

#[test]
fn a_full_alarm_config_passes() {
    let yaml = format!(
        "{BASE}windows:\n  - {{name: days, cron: \"0 8 * * 1-5\", duration: 10h, timezone: Europe/Berlin}}\nrules:\n  - name: web\n    match: {{checks: [\"web*\"], states: [CRITICAL]}}\n    after: 1m\n    repeat: 30m\n    notify: [alice]\n    escalate:\n      - {{after: 15m, notify: [alice]}}\n    actions:\n      - script: fix-it\n        args: [\"$SERVICESTATE$\", \"{{{{host}}}}\"]\n      - restart-service: apache2.service\n      - restart-vm: web1\n        cluster: cl1\n      - clusterreorg: cl1\n    restarts: 3\n    within: 5\nmaintenance:\n  - {{name: m, match: {{checks: [web]}}, windows: [days]}}\n{CLUSTER}"
    );
    let (code, err, _) = config_check(&yaml);
    assert_eq!(code, 0, "{err}");
}

/// A sim cluster `cl1` with one server and the VM `web1`.
const CLUSTER: &str = "hosts:\n  - {name: cs1, address: 127.0.0.1}\nclusters:\n  - name: cl1\n    driver: sim\n    sim: {state: var/sim.json}\n    servers:\n      - {host: cs1, memory_mb: 4096}\n    vms:\n      - {name: web1, memory_mb: 1024}\n";

#[test]
fn cluster_actions_must_name_a_defined_cluster() {
    let yaml = format!(
        "{BASE}rules:\n  - name: r\n    match: {{checks: [web], states: [CRITICAL]}}\n    actions:\n      - clusterreorg: nope\n"
    );
    assert_error(
        &yaml,
        12,
        9,
        &["cluster \"nope\"", "not defined under clusters"],
    );
}

#[test]
fn crontab_weekday_out_of_range() {
    let yaml = format!("{BASE}windows:\n  - name: w\n    cron: \"0 8 * * 8\"\n    duration: 1h\n");
    assert_error(
        &yaml,
        10,
        11,
        &["window \"w\".cron", "day-of-week", "8", "0-7"],
    );
}

#[test]
fn crontab_with_seconds_field_is_rejected() {
    let yaml =
        format!("{BASE}windows:\n  - name: w\n    cron: \"0 0 8 * * *\"\n    duration: 1h\n");
    assert_error(&yaml, 10, 11, &["6 fields", "5 crontab fields"]);
}

#[test]
fn unknown_timezone() {
    let yaml = format!("{BASE}windows:\n  - {{name: w, cron: \"0 8 * * *\", duration: 1h, timezone: Europe/Berlinn}}\n");
    assert_error(&yaml, 9, 58, &["timezone", "Europe/Berlinn", "IANA"]);
}

#[test]
fn rule_names_unknown_contact() {
    let yaml = format!(
        "{BASE}rules:\n  - name: r\n    match: {{checks: [web]}}\n    notify: [alice, bbo]\n"
    );
    assert_error(&yaml, 11, 21, &["notify", "contact \"bbo\"", "not defined"]);
}

#[test]
fn rule_matches_unknown_check() {
    let yaml =
        format!("{BASE}rules:\n  - name: r\n    match: {{checks: [wbe]}}\n    notify: [alice]\n");
    assert_error(&yaml, 10, 22, &["match.checks", "\"wbe\"", "not defined"]);
}

#[test]
fn bad_glob() {
    let yaml = format!(
        "{BASE}rules:\n  - name: r\n    match: {{checks: [\"web[\"]}}\n    notify: [alice]\n"
    );
    assert_error(&yaml, 10, 22, &["match.checks", "web[", "not a valid glob"]);
}

#[test]
fn repeat_without_unit() {
    let yaml = format!("{BASE}rules:\n  - name: r\n    match: {{checks: [web]}}\n    repeat: 30\n    notify: [alice]\n");
    assert_error(&yaml, 11, 13, &["repeat", "30", "no unit"]);
}

#[test]
fn escalation_levels_out_of_order() {
    let yaml = format!("{BASE}rules:\n  - name: r\n    match: {{checks: [web]}}\n    notify: [alice]\n    escalate:\n      - {{after: 30m, notify: [alice]}}\n      - {{after: 10m, notify: [alice]}}\n");
    assert_error(
        &yaml,
        14,
        9,
        &["escalate levels must come in order", "10m", "30m"],
    );
}

#[test]
fn missing_script() {
    let yaml = format!("{BASE}rules:\n  - name: r\n    match: {{checks: [web]}}\n    actions:\n      - script: fix-itt\n");
    assert_error(
        &yaml,
        12,
        17,
        &["script \"fix-itt\"", "does not exist", "alarm-scripts"],
    );
}

#[test]
fn two_action_kinds_in_one_entry() {
    let yaml = format!("{BASE}rules:\n  - name: r\n    match: {{checks: [web]}}\n    actions:\n      - script: fix-it\n        restart-service: apache2\n");
    assert_error(
        &yaml,
        13,
        26,
        &["restart-service", "script", "write two actions"],
    );
}

#[test]
fn restart_limit_that_cannot_trigger() {
    let yaml = format!("{BASE}rules:\n  - name: r\n    match: {{checks: [web]}}\n    notify: [alice]\n    restarts: 5\n    within: 3\n");
    assert_error(&yaml, 9, 5, &["restarts 5 within 3", "can never trigger"]);
}

#[test]
fn smtp_tls_mode_and_sender() {
    let yaml =
        "notifiers:\n  - name: m\n    kind: smtp\n    host: x\n    tls: ssl\n    from: nobody\n";
    assert_error(yaml, 5, 10, &["tls \"ssl\"", "none, starttls, tls"]);
    assert_error(yaml, 6, 11, &["from \"nobody\"", "mail address"]);
}

#[test]
fn sms_template_with_unknown_key() {
    let yaml = "notifiers:\n  - name: s\n    kind: sms\n    url: https://sms.example.org/send\n    body: \"to={{to|url}}&text={{mesage|url}}\"\n";
    assert_error(yaml, 5, 11, &["body", "unknown key \"mesage\"", "message"]);
}

#[test]
fn contact_via_unknown_notifier_and_on_call_window() {
    let yaml = format!("{BASE}    via: [mail, pager]\n    on_call: {{mail: nights}}\n");
    assert_error(
        &yaml,
        8,
        17,
        &["via names notifier \"pager\"", "not defined"],
    );
    assert_error(&yaml, 9, 21, &["window \"nights\"", "not defined"]);
}

#[test]
fn unknown_rule_key_suggests() {
    let yaml = format!("{BASE}rules:\n  - name: r\n    match: {{checks: [web]}}\n    notify: [alice]\n    repaet: 1h\n");
    assert_error(
        &yaml,
        12,
        5,
        &["unknown key \"repaet\"", "did you mean \"repeat\""],
    );
}

#[test]
fn maintenance_without_windows() {
    let yaml = format!("{BASE}maintenance:\n  - name: m\n    match: {{checks: [web]}}\n");
    assert_error(&yaml, 9, 5, &["maintenance \"m\"", "needs `windows:`"]);
}

#[test]
fn all_errors_of_a_file_come_at_once() {
    let yaml = format!("{BASE}rules:\n  - name: r\n    match: {{checks: [wbe]}}\n    notify: [bob]\n    after: soon\n");
    let (code, err, _) = config_check(&yaml);
    assert_eq!(code, 64);
    assert!(err.lines().count() >= 3, "{err}");
}

#[test]
fn clusterreorg_acts_only_on_critical() {
    let yaml = format!(
        "{BASE}rules:\n  - name: r\n    match: {{checks: [web]}}\n    actions:\n      - clusterreorg: cl1\n{CLUSTER}"
    );
    assert_error(
        &yaml,
        12,
        9,
        &["clusterreorg", "states: [CRITICAL]", "UNKNOWN"],
    );
}
