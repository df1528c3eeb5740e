//! `laxmon config check` on broken `clusters:` sections: every error names
//! the file, line, column and the problem.

mod support;

use support::bin::{laxmon, stderr, stdout, write_file};
use support::config::{assert_error, config_check};

/// Lines 1-9: two hosts (cs2 without ssh) and an alive check.
const BASE: &str = "hosts:
  - {name: cs1, address: 127.0.0.1, ssh: root@127.0.0.1}
  - {name: cs2, address: 127.0.0.1}
checks:
  - name: cs1-alive
    kind: port
    host: cs1
    port: 22
clusters:
";

fn cluster(body: &str) -> String {
    format!("{BASE}{body}")
}

#[test]
fn a_valid_cluster_passes() {
    let yaml = cluster(
        "  - name: lax
    driver: command
    command:
      list: [vx-list, \"{cluster}\", \"{host}\"]
      start: vx-start {cluster} {vm}
      migrate: [vx-move, \"{cluster}\", \"{vm}\", \"{target}\"]
      shutdown: [vx-stop, \"{cluster}\", \"{vm}\"]
    allow_unfenced: true
    servers:
      - {host: cs1, memory_mb: 16384, reserve_mb: 1024, alive: cs1-alive, fence: [ipmitool, -H, 127.0.0.11, chassis, power, \"off\"]}
      - {host: cs2, memory_mb: 16384, alive: cs1-alive}
    vms:
      - {name: t1, memory_mb: 1024, priority: 3, home: cs1, allowed_hosts: [cs1, cs2], anti_affinity: dns}
",
    );
    let (code, err, _) = config_check(&yaml);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn the_demo_cluster_is_valid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/checks/demo-cluster.yaml");
    let main = write_file(dir.path(), "laxmon.yaml", &format!("include: [{demo}]\n"));
    let out = laxmon(&["config", "check", "--config", &main]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("OK"));
}

#[test]
fn server_must_be_a_defined_host() {
    let yaml = cluster(
        "  - name: lax
    driver: sim
    sim: {state: s.json}
    servers:
      - {host: cs9, memory_mb: 4096}
",
    );
    assert_error(
        &yaml,
        14,
        9,
        &["cluster \"lax\"", "\"cs9\"", "not a defined host"],
    );
}

#[test]
fn alive_must_be_a_defined_check() {
    let yaml = cluster(
        "  - name: lax
    driver: sim
    sim: {state: s.json}
    servers:
      - host: cs1
        memory_mb: 4096
        alive: cs1-ping
",
    );
    assert_error(
        &yaml,
        16,
        16,
        &["alive check \"cs1-ping\"", "not a defined check"],
    );
}

#[test]
fn unknown_driver() {
    let yaml = cluster("  - name: lax\n    driver: xen\n    servers: []\n");
    assert_error(
        &yaml,
        11,
        13,
        &["unknown driver \"xen\"", "xl, virsh, command, sim"],
    );
}

#[test]
fn xl_needs_ssh_on_every_server() {
    let yaml = cluster(
        "  - name: lax
    driver: xl
    servers:
      - {host: cs1, memory_mb: 4096}
      - {host: cs2, memory_mb: 4096}
",
    );
    assert_error(
        &yaml,
        14,
        9,
        &["driver xl over ssh", "\"cs2\"", "no `ssh:`"],
    );
}

#[test]
fn command_driver_needs_its_templates() {
    let yaml = cluster(
        "  - name: lax
    driver: command
    command:
      start: [vx-start, \"{cluster}\", \"{vm}\"]
    servers:
      - {host: cs1, memory_mb: 4096}
",
    );
    assert_error(&yaml, 13, 7, &["list, migrate, shutdown", "vx-start"]);
}

#[test]
fn unknown_placeholder_in_a_template() {
    let yaml = cluster(
        "  - name: lax
    driver: command
    command:
      list: [vx-list, \"{host}\"]
      start: [vx-start, \"{clusterr}\", \"{vm}\"]
      migrate: [vx-move, \"{vm}\", \"{target}\"]
      shutdown: [vx-stop, \"{vm}\"]
    servers:
      - {host: cs1, memory_mb: 4096}
",
    );
    assert_error(&yaml, 14, 14, &["command.start", "{clusterr}", "{cluster}"]);
}

#[test]
fn options_of_another_driver() {
    let yaml = cluster(
        "  - name: lax
    driver: sim
    sim: {state: s.json}
    xl: {config_dir: /etc/xen}
    servers:
      - {host: cs1, memory_mb: 4096}
",
    );
    assert_error(&yaml, 13, 9, &["sets `xl:` options", "driver \"sim\""]);
}

#[test]
fn reserve_must_leave_memory() {
    let yaml = cluster(
        "  - name: lax
    driver: sim
    sim: {state: s.json}
    servers:
      - {host: cs1, memory_mb: 4096, reserve_mb: 4096}
",
    );
    assert_error(&yaml, 14, 50, &["reserve_mb 4096", "below memory_mb 4096"]);
}

#[test]
fn vm_references_and_duplicates() {
    let yaml = cluster(
        "  - name: lax
    driver: sim
    sim: {state: s.json}
    servers:
      - {host: cs1, memory_mb: 4096}
    vms:
      - {name: t1, memory_mb: 1024, home: cs7}
      - {name: t1, memory_mb: 1024, allowed_hosts: [cs1, cs2]}
      - {name: win3, memory_mb: 0}
",
    );
    assert_error(
        &yaml,
        16,
        43,
        &["VM \"t1\"", "home \"cs7\"", "not a server of this cluster"],
    );
    assert_error(&yaml, 17, 9, &["duplicate VM name \"t1\""]);
    assert_error(&yaml, 17, 52, &["allows host \"cs2\""]);
    assert_error(&yaml, 18, 33, &["memory_mb 0 is out of range"]);
}

#[test]
fn a_server_in_two_clusters_and_a_duplicate_cluster() {
    let yaml = cluster(
        "  - name: lax
    driver: sim
    sim: {state: s.json}
    servers: [{host: cs1, memory_mb: 4096}]
  - name: lax2
    driver: sim
    sim: {state: t.json}
    servers: [{host: cs1, memory_mb: 4096}]
  - name: lax
    driver: sim
    sim: {state: u.json}
    servers: [{host: cs2, memory_mb: 4096}]
",
    );
    assert_error(
        &yaml,
        17,
        15,
        &["cluster \"lax2\"", "already belongs to cluster \"lax\""],
    );
    assert_error(&yaml, 18, 5, &["duplicate cluster name \"lax\""]);
}

#[test]
fn unknown_keys_and_bad_flags() {
    let yaml = cluster(
        "  - name: lax
    driver: sim
    sim: {state: s.json, dealy: 1s}
    dry_run: yes please
    servers:
      - {host: cs1, memory_mb: 4096, fense: [x]}
",
    );
    assert_error(
        &yaml,
        12,
        26,
        &["unknown key \"dealy\"", "did you mean \"delay\""],
    );
    assert_error(&yaml, 13, 14, &["dry_run must be true or false"]);
    assert_error(
        &yaml,
        15,
        38,
        &["unknown key \"fense\"", "did you mean \"fence\""],
    );
}

#[test]
fn unquoted_off_in_a_fence_command() {
    let yaml = cluster(
        "  - name: lax
    driver: sim
    sim: {state: s.json}
    servers:
      - host: cs1
        memory_mb: 4096
        fence: [ipmitool, -H, 127.0.0.11, chassis, power, off]
",
    );
    assert_error(&yaml, 16, 59, &["fence", "the boolean false", "quote it"]);
}

#[test]
fn sim_needs_a_state_file_and_fence_needs_a_program() {
    let yaml = cluster(
        "  - name: lax
    driver: sim
    servers:
      - {host: cs1, memory_mb: 4096, fence: []}
",
    );
    assert_error(&yaml, 10, 5, &["add `sim: {state: FILE}`"]);
    assert_error(&yaml, 13, 45, &["fence is empty"]);
}
