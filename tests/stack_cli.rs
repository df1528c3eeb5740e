//! `laxmon plugin NAME ...` as Nagios runs it: [`plugin_main`] and
//! [`run_plugin`] called directly, with captured tool output (`file:`
//! sources) and with the real `ip` tool. Each result must be one valid
//! Nagios line (`SUBJECT STATE - text | perfdata`), long output after it,
//! and the exit code of its state.

use laxmon::checks::State;
use laxmon::plugin_output;
use laxmon::stack::cli::{plugin_main, run_plugin};

fn fx(path: &str) -> String {
    format!(
        "file:{}/tests/fixtures/stack/{path}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn args(words: &[&str]) -> Vec<String> {
    words.iter().map(|s| s.to_string()).collect()
}

/// Runs the plugin and checks the Nagios output contract; returns the parsed output.
fn run(words: &[&str], code: i32, says: &str) -> laxmon::checks::CheckOutput {
    let (text, got) = run_plugin(args(words));
    assert_eq!(got, code, "{words:?}: exit code of {text:?}");
    let first = text.lines().next().unwrap_or("");
    let state = State::from_code(code).expect("code 0..3");
    assert!(
        first.contains(&format!(" {state} - ")),
        "{words:?}: first line {first:?}"
    );
    assert!(first.contains(says), "{words:?}: {first:?} lacks {says:?}");
    assert!(first.contains(" | "), "{words:?}: no perfdata in {first:?}");
    assert!(text.ends_with('\n'));
    let parsed = plugin_output::parse(state, &text);
    assert!(
        !parsed.perfdata.is_empty(),
        "{words:?}: perfdata of {text:?}"
    );
    parsed
}

#[test]
fn plugins_on_captured_output() {
    run(
        &["drbd", "--source", &fx("drbd/drbd9-healthy.txt")],
        0,
        "DRBD OK - r0 Primary/Secondary Connected",
    );
    run(
        &[
            "drbd",
            "--server",
            &format!("san1={}", fx("drbd/proc-drbd8-splitbrain-san1.txt")),
            "--server",
            &format!("san2={}", fx("drbd/proc-drbd8-splitbrain-san2.txt")),
        ],
        2,
        "split-brain: Primary on san1 and san2",
    );
    let p = run(
        &[
            "drbd",
            "-H",
            &fx("drbd/drbd9-verbose-oos.txt"),
            "-w",
            "512M",
            "-c",
            "2G",
            "--resource",
            "r0",
        ],
        1,
        "out of sync",
    );
    assert_eq!(p.perfdata[0].warn.as_deref(), Some("536870912"));
    run(
        &[
            "plugin",
            "drbd",
            "--source",
            &fx("drbd/drbd9-syncsource.txt"),
        ],
        1,
        "SyncSource 42.4% done",
    );
    run(
        &[
            "iscsi-target",
            "--source",
            &fx("iscsi/iet-volume-missing-lun.txt"),
            "--vm",
            "deb1,win3",
            "--iqn-prefix",
            "iqn.san1.klasse.kurs",
        ],
        2,
        "win3: no LUN for /dev/system/win3-swap",
    );
    run(
        &[
            "iscsi-target",
            "--tool",
            "lio",
            "--source",
            &fx("iscsi/targetcli-ls.txt"),
            "--target",
            "iqn.san1.klasse.kurs:deb1",
        ],
        0,
        "exported",
    );
    run(
        &[
            "iscsi-session",
            "--source",
            &fx("iscsi/iscsiadm-session-P3.txt"),
            "--vm",
            "deb1",
            "--iqn-prefix",
            "iqn.san1.klasse.kurs",
            "--portal",
            "192.168.30.10",
        ],
        0,
        "2 sessions logged in",
    );
    let p = run(
        &[
            "lvm-vg",
            "--source",
            &fx("lvm/vgs-full.txt"),
            "--vg",
            "system",
            "-w",
            "20%",
            "-c",
            "10%",
        ],
        2,
        "system 4.0 GiB free of 100.0 GiB (4%)",
    );
    assert_eq!(
        p.perfdata[0].to_string(),
        "free=4294967296B;21474836480:;10737418240:;0;107374182400"
    );
    run(
        &[
            "lvm-vm",
            "--source",
            &fx("lvm/lvs-missing-lv.txt"),
            "--vg",
            "system",
            "--vm",
            "deb1",
        ],
        2,
        "system/deb1-swap missing",
    );
    run(
        &["lvm-snapshot", "--source", &fx("lvm/lvs-snapshot-95.txt")],
        2,
        "deb1-snap 95.1% full",
    );
    run(
        &[
            "lvm-snapshot",
            "--source",
            &fx("lvm/lvs-snapshot-95.txt"),
            "-w",
            "96",
            "-c",
            "98",
        ],
        0,
        "fullest system/deb1-snap 95.1%",
    );
    run(
        &[
            "domains",
            "--expect",
            "deb1,win3",
            "--server",
            &format!("cs1={}", fx("domains/xl-cs1.txt")),
            "--server",
            &format!("cs2={}", fx("domains/xl-cs2-dup.txt")),
        ],
        2,
        "deb1 runs on cs1 and cs2 at once",
    );
    run(
        &[
            "domains",
            "--tool",
            "virsh",
            "--expect",
            "win3",
            "--server",
            &format!("cs1={}", fx("domains/virsh-cs1.txt")),
        ],
        2,
        "win3 runs nowhere",
    );
    run(
        &[
            "domains",
            "--tool",
            "virsh",
            "--expect",
            "win3",
            "--absent-warning",
            "--server",
            &format!("cs1={}", fx("domains/virsh-cs1.txt")),
        ],
        1,
        "win3 runs nowhere",
    );
    let bond = fx("bonding/active-backup-one-down.txt");
    // --bond names the bond; a captured source replaces the proc file.
    run(
        &["bonding", "-H", &bond],
        1,
        "bond0 1/2 slaves up (eth0 down)",
    );
    run(
        &["bonding", "-H", &fx("bonding/active-backup-healthy.txt")],
        0,
        "bond0 2/2 slaves up, active eth0",
    );
    // A directory holds one captured file per bond, named as in /proc/net/bonding.
    let p = run(
        &[
            "bonding",
            "-H",
            &fx("bonding/proc-net-bonding"),
            "--bond",
            "bond0,bond1",
        ],
        1,
        "bond1 1/2 slaves up (enp1s0f1 down)",
    );
    assert!(
        p.long_output.contains("bond0 slave eth1: MII up"),
        "bond0 read from its own file: {p:?}"
    );
    let labels: Vec<&str> = p.perfdata.iter().map(|d| d.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "bond0_slaves_up",
            "bond0_link_failures",
            "bond1_slaves_up",
            "bond1_link_failures"
        ]
    );
    run(
        &[
            "bonding",
            "-H",
            &fx("bonding/proc-net-bonding"),
            "--bond",
            "bond0,bond7",
        ],
        2,
        "bond7: cannot read",
    );
    run(
        &[
            "domains",
            "--expect",
            "deb1,win3",
            "--server",
            &format!("cs1={}", fx("domains/xl-cs1.txt")),
            "--server",
            &format!("cs2={}", fx("domains/xl-cs2-newjoomla-crashed.txt")),
        ],
        2,
        "newjoomla on cs2 is crashed (----c-)",
    );
    run(
        &[
            "domains",
            "--expect",
            "deb1,win3",
            "--server",
            &format!("cs1={}", fx("domains/xl-cs1.txt")),
            "--server",
            &format!("cs2={}", fx("domains/xl-cs2-paused.txt")),
        ],
        1,
        "t1 on cs2 is paused (--p---)",
    );
    // Plain `vgs`/`lvs` captures read like the machine form.
    let p = run(
        &[
            "lvm-vg",
            "--source",
            &fx("lvm/vgs-human-loop.txt"),
            "--vg",
            "system",
            "-w",
            "10%",
            "-c",
            "5%",
        ],
        1,
        "system 136.0 MiB free of 2.0 GiB (7%)",
    );
    assert_eq!(p.perfdata[0].label, "free");
    run(
        &["lvm-vg", "--source", &fx("lvm/vgs-human-loop.txt")],
        0,
        "backup 563.0 GiB free of 1.8 TiB (30%)",
    );
    run(
        &[
            "lvm-snapshot",
            "--source",
            &fx("lvm/lvs-human-snapshot-95.txt"),
        ],
        2,
        "deb1-snap 95.1% full",
    );
    run(
        &[
            "cluster-ip",
            "--ip",
            "192.168.30.10",
            "--server",
            &format!("san1={}", fx("clusterip/ip-san1-holder.txt")),
            "--server",
            &format!("san2={}", fx("clusterip/ip-san2-holder.txt")),
        ],
        2,
        "held by 2 servers at once",
    );
}

#[test]
fn usage_errors_are_unknown() {
    let (text, code) = run_plugin(args(&["lvm-vg", "--frobnicate"]));
    assert_eq!(code, 3);
    assert!(
        text.starts_with("STACK UNKNOWN - unknown option --frobnicate"),
        "{text}"
    );
    let (text, code) = run_plugin(args(&["nosuch"]));
    assert_eq!(code, 3);
    assert!(text.contains("unknown plugin"), "{text}");
    let (text, code) = run_plugin(args(&[]));
    assert_eq!(code, 3);
    assert!(text.contains("cluster-ip"), "lists the plugins: {text}");
    let (text, code) = run_plugin(args(&["domains", "--help"]));
    assert_eq!(code, 0);
    assert!(text.contains("--expect <VM[,VM]>"), "{text}");
}

/// Bad usages, each: the words after `laxmon plugin`, and what the one
/// `STACK UNKNOWN` line must say (the option or plugin and the value at fault).
const BAD_USAGES: &[(&[&str], &str)] = &[
    (
        &["lvm-vg", "--frobnicate"],
        "unknown option --frobnicate for lvm-vg; see laxmon plugin lvm-vg --help",
    ),
    (
        &["bonding", "--bnod", "bond0"],
        "unknown option --bnod for bonding (did you mean \"--bond\"?)",
    ),
    (&["drbd", "-q"], "unknown option -q for drbd"),
    (
        &["--source", "local"],
        "unknown option --source before the plugin's name",
    ),
    (&["drbd", "stray"], "unexpected argument \"stray\" for drbd"),
    (
        &["lvm-snapshot", "-c"],
        "option --critical of lvm-snapshot needs a value",
    ),
    (
        &["cluster-ip", "--ip"],
        "option --ip of cluster-ip needs a value",
    ),
    (
        &["bonding", "-w", "x:y"],
        "--warning \"x:y\": threshold \"x:y\" is not a Nagios range",
    ),
    (
        &["lvm-vg", "-c", "101%"],
        "--critical \"101%\": threshold \"101%\" is not a size",
    ),
    (
        &["lvm-vg", "-t", "soon"],
        "--timeout \"soon\": invalid duration",
    ),
    (
        &["lvm-vm", "--vm", "deb1", "-H", "file:"],
        "--source \"file:\"",
    ),
    (
        &["domains", "--server", "cs1=ssh://"],
        "--server \"cs1=ssh://\": \"ssh://\" is not a source",
    ),
    (
        &["iscsi-session", "--lun", "root"],
        "--lun \"root\": not a LUN number",
    ),
    (
        &["domains", "--server", "cs1", "--tool", "kvm"],
        "--tool \"kvm\": use xl or virsh",
    ),
    (&["lvm-vm"], "lvm-vm needs --vm <NAME[,NAME]>"),
    (
        &["cluster-ip", "--ip", "10.0.0.1"],
        "cluster-ip needs --server",
    ),
    (
        &["iscsi-target", "--vm", "deb1"],
        "iscsi-target needs --iqn-prefix <PREFIX>",
    ),
    (
        &["drbd", "--server", "san1", "-H", "local"],
        "drbd: give --server or --source, not both",
    ),
    (
        &["drbd", "--proc=yes"],
        "option --proc of drbd takes no value (got \"yes\")",
    ),
    (
        &["lvm-gv"],
        "unknown plugin \"lvm-gv\" (did you mean \"lvm-vg\"?)",
    ),
    (
        &["drdb"],
        "unknown plugin \"drdb\" (did you mean \"drbd\"?)",
    ),
    (
        &["zfs"],
        "unknown plugin \"zfs\"; plugins: drbd, iscsi-target,",
    ),
    (&[], "name a plugin: drbd, iscsi-target,"),
];

#[test]
fn bad_usages_are_one_unknown_line_naming_the_culprit() {
    for (words, says) in BAD_USAGES {
        let (text, code) = run_plugin(args(words));
        assert_eq!(code, 3, "{words:?}: {text}");
        assert!(
            text.starts_with("STACK UNKNOWN - ") && text.lines().count() == 1,
            "{words:?}: one UNKNOWN line: {text:?}"
        );
        assert!(text.contains(says), "{words:?}: {text:?} lacks {says:?}");
    }
}

/// The binary, as Nagios runs it: clap's exit 2 (CRITICAL to Nagios) and
/// its stderr message must not leak out of `laxmon plugin`.
#[test]
fn the_binary_exits_3_on_bad_usage_and_0_on_help_and_version() {
    let laxmon = |words: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_laxmon"))
            .arg("plugin")
            .args(words)
            .env_remove("LAXMON_CONFIG")
            .output()
            .expect("laxmon runs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.code(), stdout, out.stderr)
    };
    for (words, says) in BAD_USAGES.iter().take(4) {
        let (code, stdout, stderr) = laxmon(words);
        assert_eq!(code, Some(3), "{words:?}: {stdout}");
        assert!(
            stdout.starts_with("STACK UNKNOWN - ") && stdout.contains(says),
            "{stdout}"
        );
        assert!(
            stderr.is_empty(),
            "{words:?}: {}",
            String::from_utf8_lossy(&stderr)
        );
    }
    let (code, stdout, _) = laxmon(&["lvm-vg", "-h"]);
    assert_eq!(code, Some(0));
    assert!(
        stdout.starts_with("Free space of volume groups\n"),
        "{stdout}"
    );
    assert!(stdout.contains("-w, --warning <LIMIT>"), "{stdout}");
    let (code, stdout, _) = laxmon(&["help"]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("Plugins:\n  drbd "), "{stdout}");
    let (code, stdout, _) = laxmon(&["lvm-vg", "-V"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        stdout,
        format!("laxmon plugin lvm-vg {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn one_captured_file_for_several_bonds_is_refused() {
    let file = fx("bonding/active-backup-healthy.txt");
    let (text, code) = run_plugin(args(&["bonding", "-H", &file, "--bond", "bond0,bond1"]));
    assert_eq!(code, 3, "{text}");
    assert!(
        text.starts_with("BONDING UNKNOWN - ")
            && text.contains("is one captured file, but 2 bonds are checked (bond0, bond1)"),
        "{text}"
    );
    assert!(
        text.contains("file:DIR with DIR/bond0, DIR/bond1"),
        "{text}"
    );
}

#[test]
fn plain_vgs_without_its_heading_is_unknown_and_names_the_forms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("vgs.txt");
    std::fs::write(&f, "  system   1   4   0 wz--n- <2.00g  136.00m\n").expect("write");
    let (text, code) = run_plugin(args(&[
        "lvm-vg",
        "--source",
        &format!("file:{}", f.display()),
    ]));
    assert_eq!(code, 3, "{text}");
    assert!(
        text.starts_with("LVM-VG UNKNOWN - unexpected vgs output line"),
        "{text}"
    );
    assert!(text.contains("`vgs` with its heading line"), "{text}");
}

#[test]
fn unreadable_source_is_unknown() {
    let (text, code) = run_plugin(args(&[
        "lvm-vg",
        "--source",
        "file:/nonexistent/laxmon-vgs.txt",
    ]));
    assert_eq!(code, 3, "{text}");
    assert!(
        text.starts_with("LVM-VG UNKNOWN - cannot read /nonexistent/laxmon-vgs.txt"),
        "{text}"
    );
}

#[test]
fn plugin_main_returns_the_exit_code_with_the_real_ip_tool() {
    // 127.0.0.1 is on lo here: one holder; the same machine twice: two.
    assert_eq!(
        plugin_main(args(&[
            "cluster-ip",
            "--ip",
            "127.0.0.1",
            "--server",
            "san1=local"
        ])),
        0
    );
    assert_eq!(
        plugin_main(args(&[
            "cluster-ip",
            "--ip",
            "127.0.0.1",
            "--server",
            "san1=local",
            "--server",
            "san2=local"
        ])),
        2
    );
}
