//! `laxmon config check` on broken configurations: every error names the
//! file, line, column and the problem, and all errors of a file come at once.

mod support;

use support::bin::{laxmon, stderr, stdout, write_file};
use support::config::{assert_error, config_check};

const HOST: &str = "hosts:\n  - name: cs1\n    address: 127.0.0.1\n";

#[test]
fn valid_config_passes() {
    let yaml = format!(
        "{HOST}checks:\n  - name: cs1-ping\n    kind: ping\n    host: cs1\n  - name: disk\n    kind: plugin\n    command: /usr/lib/nagios/plugins/check_dummy 0 fine\n"
    );
    let (code, err, _) = config_check(&yaml);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn the_example_config_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/laxmon.yaml");
    let out = laxmon(&["config", "check", "--config", path]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("OK"));
}

#[test]
fn unknown_top_level_key() {
    assert_error(
        "hostz: []\n",
        1,
        1,
        &["unknown key \"hostz\"", "did you mean \"hosts\""],
    );
}

#[test]
fn unknown_check_key_lists_allowed_keys() {
    let yaml = format!("{HOST}checks:\n  - name: p\n    kind: port\n    host: cs1\n    port: 22\n    expekt: SSH\n");
    assert_error(
        &yaml,
        9,
        5,
        &[
            "unknown key \"expekt\"",
            "check \"p\" (kind port)",
            "expect",
        ],
    );
}

#[test]
fn key_of_another_kind_is_unknown() {
    let yaml = format!("{HOST}checks:\n  - name: p\n    kind: ping\n    host: cs1\n    port: 22\n");
    assert_error(&yaml, 8, 5, &["unknown key \"port\"", "kind ping"]);
}

#[test]
fn duration_without_unit() {
    let yaml =
        format!("{HOST}checks:\n  - name: p\n    kind: ping\n    host: cs1\n    interval: 60\n");
    assert_error(&yaml, 8, 15, &["interval", "60", "no unit", "60s"]);
}

#[test]
fn duration_with_unknown_unit() {
    let yaml =
        format!("{HOST}checks:\n  - name: p\n    kind: ping\n    host: cs1\n    timeout: 10sec\n");
    assert_error(&yaml, 8, 14, &["timeout", "unknown unit \"sec\""]);
}

#[test]
fn wrong_type_for_port() {
    let yaml =
        format!("{HOST}checks:\n  - name: p\n    kind: port\n    host: cs1\n    port: [22]\n");
    assert_error(&yaml, 8, 11, &["port must be a whole number", "a list"]);
}

#[test]
fn port_out_of_range() {
    let yaml =
        format!("{HOST}checks:\n  - name: p\n    kind: port\n    host: cs1\n    port: 70000\n");
    assert_error(&yaml, 8, 11, &["port 70000 is out of range", "65535"]);
}

#[test]
fn max_attempts_out_of_range() {
    let yaml =
        format!("{HOST}checks:\n  - name: p\n    kind: ping\n    host: cs1\n    max_attempts: 0\n");
    assert_error(&yaml, 8, 19, &["max_attempts 0 is out of range"]);
}

#[test]
fn loss_out_of_range() {
    let yaml = format!("{HOST}checks:\n  - name: p\n    kind: ping\n    host: cs1\n    crit: {{rta: 500ms, loss: 160}}\n");
    assert_error(&yaml, 8, 30, &["crit.loss 160 is out of range", "100"]);
}

#[test]
fn duplicate_check_names() {
    let yaml = format!(
        "{HOST}checks:\n  - name: p\n    kind: ping\n    host: cs1\n  - name: p\n    kind: ping\n    host: cs1\n"
    );
    assert_error(&yaml, 8, 11, &["duplicate check name \"p\"", ":5:11"]);
}

#[test]
fn duplicate_host_names() {
    let yaml = "hosts:\n  - name: cs1\n  - name: cs1\n";
    assert_error(yaml, 3, 11, &["duplicate host name \"cs1\"", ":2:11"]);
}

#[test]
fn dangling_host_reference() {
    let yaml = format!("{HOST}checks:\n  - name: p\n    kind: ping\n    host: cs9\n");
    assert_error(&yaml, 7, 11, &["host \"cs9\"", "not defined"]);
}

#[test]
fn remote_plugin_needs_ssh() {
    let yaml = format!(
        "{HOST}checks:\n  - name: d\n    kind: plugin\n    host: cs1\n    run_on: host\n    command: [check_disk]\n"
    );
    assert_error(&yaml, 7, 11, &["over SSH", "no `ssh:`"]);
}

#[test]
fn host_bound_plugin_naming_its_host_runs_locally_without_ssh() {
    for command in [
        "check_tcp -H $HOSTADDRESS$ -p 80",
        "check_http --hostname=$HOSTNAME$",
        "[check_ping, -H, cs1]",
    ] {
        let yaml = format!(
            "{HOST}checks:\n  - name: d\n    kind: plugin\n    host: cs1\n    command: {command}\n"
        );
        let (code, err, _) = config_check(&yaml);
        assert_eq!(code, 0, "{command}: {err}");
    }
}

#[test]
fn old_form_host_plugin_is_an_error_not_a_silent_move() {
    // Before `run_on`, a plugin check on a host ran there over SSH. Such a
    // check (no host macro, no -H) would now check the admin server instead.
    let yaml = "hosts:\n  - name: cs1\n    ssh: root@127.0.0.1\nchecks:\n  - name: d\n    kind: plugin\n    host: cs1\n    command: [check_disk, -w, 10%]\n";
    assert_error(
        yaml,
        7,
        11,
        &["\"d\"", "admin server", "run_on: host", "run_on: local"],
    );
    for run_on in ["host", "local"] {
        let ok = yaml.replace(
            "    command:",
            &format!("    run_on: {run_on}\n    command:"),
        );
        let (code, err, _) = config_check(&ok);
        assert_eq!(code, 0, "run_on: {run_on}: {err}");
    }
}

#[test]
fn run_on_values_and_place() {
    let bad = format!(
        "{HOST}checks:\n  - name: d\n    kind: plugin\n    host: cs1\n    run_on: remote\n    command: [check_disk]\n"
    );
    assert_error(&bad, 8, 13, &["unknown run_on \"remote\"", "local, host"]);
    let no_host =
        "checks:\n  - name: d\n    kind: plugin\n    run_on: host\n    command: [check_disk]\n";
    assert_error(no_host, 4, 13, &["run_on: host", "has no host"]);
    let wrong_kind = format!(
        "{HOST}checks:\n  - name: p\n    kind: port\n    host: cs1\n    port: 22\n    run_on: host\n"
    );
    assert_error(&wrong_kind, 9, 5, &["unknown key \"run_on\""]);
}

#[test]
fn unknown_kind() {
    let yaml = format!("{HOST}checks:\n  - name: p\n    kind: pong\n    host: cs1\n");
    assert_error(
        &yaml,
        6,
        11,
        &["unknown kind \"pong\"", "ping, port, init, plugin"],
    );
}

#[test]
fn missing_kind() {
    let yaml = format!("{HOST}checks:\n  - name: p\n    host: cs1\n");
    assert_error(&yaml, 5, 5, &["check \"p\" has no kind"]);
}

#[test]
fn init_with_script_and_unit() {
    let yaml = "checks:\n  - name: a\n    kind: init\n    script: /etc/init.d/apache2\n    unit: apache2.service\n";
    assert_error(yaml, 5, 11, &["both script and unit"]);
}

#[test]
fn plugin_command_with_unbalanced_quote() {
    let yaml = "checks:\n  - name: a\n    kind: plugin\n    command: \"check_dummy 0 'oops\"\n";
    assert_error(yaml, 4, 14, &["cannot be split into words"]);
}

#[test]
fn invalid_name_characters() {
    let yaml = "hosts:\n  - name: \"cs 1\"\n";
    assert_error(yaml, 2, 11, &["\"cs 1\" is not a valid name"]);
}

#[test]
fn yaml_syntax_error() {
    let yaml = "hosts:\n  - name: cs1\n   address: [1\n";
    let (code, err, path) = config_check(yaml);
    assert_eq!(code, 64);
    assert!(err.starts_with(&format!("{path}:")), "{err}");
    assert!(err.contains("invalid YAML"), "{err}");
}

#[test]
fn duplicate_yaml_key() {
    let yaml = "checks:\n  - name: a\n    name: b\n    kind: plugin\n    command: x\n";
    assert_error(yaml, 3, 5, &["invalid YAML", "duplicate mapping key: name"]);
}

#[test]
fn warn_above_crit() {
    let yaml = format!(
        "{HOST}checks:\n  - name: p\n    kind: port\n    host: cs1\n    port: 22\n    warn: {{time: 5s}}\n    crit: {{time: 1s}}\n"
    );
    assert_error(&yaml, 5, 11, &["warn.time 5s is above crit.time 1s"]);
}

#[test]
fn storage_url_is_validated() {
    assert_error(
        "storage: mysql://x\n",
        1,
        10,
        &["storage must be sqlite:PATH or a postgres://"],
    );
}

#[test]
fn host_check_must_exist_and_run_on_the_host() {
    let yaml = "hosts:\n  - name: cs1\n    host_check: nope\n";
    assert_error(yaml, 3, 17, &["host_check \"nope\"", "not a defined check"]);
}

#[test]
fn all_errors_of_a_file_come_at_once() {
    let yaml = format!(
        "{HOST}checks:\n  - name: a\n    kind: ping\n    host: cs1\n    interval: 60\n  - name: b\n    kind: port\n    host: nope\n    port: 0\n  - name: c\n    kind: plugin\n    colour: red\n    command: x\n"
    );
    let (code, err, path) = config_check(&yaml);
    assert_eq!(code, 64);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 4, "{err}");
    assert!(lines[0].starts_with(&format!("{path}:8:15: ")), "{err}");
    assert!(lines[1].starts_with(&format!("{path}:11:11: ")), "{err}");
    assert!(lines[2].starts_with(&format!("{path}:12:11: ")), "{err}");
    assert!(lines[3].starts_with(&format!("{path}:15:5: ")), "{err}");
}

#[test]
fn errors_in_included_files_name_that_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let main = write_file(
        dir.path(),
        "laxmon.yaml",
        &format!("include: [\"checks/*.yaml\"]\n{HOST}"),
    );
    write_file(
        dir.path(),
        "checks/a.yaml",
        "checks:\n  - name: a\n    kind: ping\n    host: cs1\n",
    );
    let b = write_file(
        dir.path(),
        "checks/b.yaml",
        "checks:\n  - name: a\n    kind: ping\n    host: cs1\n    count: -1\n",
    );
    let out = laxmon(&["config", "check", "--config", &main]);
    assert_eq!(out.status.code(), Some(64));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{b}:2:11: duplicate check name \"a\"")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{b}:5:12: count -1 is out of range")),
        "{err}"
    );
}

#[test]
fn includes_are_merged_when_valid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let main = write_file(
        dir.path(),
        "laxmon.yaml",
        &format!("include: checks/*.yaml\n{HOST}"),
    );
    write_file(
        dir.path(),
        "checks/a.yaml",
        "checks:\n  - name: a\n    kind: ping\n    host: cs1\n",
    );
    write_file(dir.path(), "checks/b.yaml", "hosts:\n  - name: cs2\nchecks:\n  - name: b\n    kind: port\n    host: cs2\n    port: 22\n");
    let out = laxmon(&["config", "check", "--config", &main]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("2 hosts, 2 checks, 3 files"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn missing_file_is_a_clear_error() {
    let out = laxmon(&["config", "check", "--config", "/nonexistent/laxmon.yaml"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(stderr(&out).contains("/nonexistent/laxmon.yaml: cannot read configuration file"));
}

#[test]
fn config_path_comes_from_the_environment() {
    let out = std::process::Command::new(support::bin::laxmon_path())
        .args(["config", "check"])
        .env("LAXMON_CONFIG", "/nonexistent/from-env.yaml")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(64));
    assert!(stderr(&out).contains("/nonexistent/from-env.yaml"));
}

#[test]
fn help_texts_have_examples() {
    let commands: &[&[&str]] = &[
        &[],
        &["run"],
        &["check"],
        &["config", "check"],
        &["plugin"],
        &["plan"],
        &["cluster", "reorg"],
        &["cluster", "restore"],
        &["cluster", "status"],
        &["sim", "fail"],
        &["sim", "revive"],
        &["sim", "alive"],
        &["sim", "fence"],
        &["sim", "show"],
        &["history"],
        &["alarms"],
        &["ack"],
        &["db", "migrate"],
        &["db", "stats"],
    ];
    for command in commands {
        let mut args = command.to_vec();
        args.push("--help");
        let out = laxmon(&args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let text = stdout(&out);
        assert!(
            text.contains("Example"),
            "{args:?} help lacks an example:\n{text}"
        );
    }
}
