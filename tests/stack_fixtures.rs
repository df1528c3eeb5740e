//! The stack checks against captured tool output (tests/fixtures/stack):
//! healthy and broken states of DRBD, bonding, iSCSI, LVM, Xen/libvirt
//! domains and the SAN cluster IP. Each case: fixture and options in,
//! state, output words and perfdata out. Every result must also survive a
//! round trip through the Nagios plugin output parser.

use laxmon::checks::{CheckOutput, State};
use laxmon::plugin_output;
use laxmon::stack::bonding::{self, BondingCheck};
use laxmon::stack::cli::format_output;
use laxmon::stack::clusterip;
use laxmon::stack::domains::{self, DomainTool, DomainsCheck};
use laxmon::stack::drbd::{self, DrbdCheck};
use laxmon::stack::iscsi::{self, SessionCheck, TargetCheck, TargetTool};
use laxmon::stack::lvm::{self, SnapshotCheck, VgCheck, VmCheck};
use laxmon::stack::{MinLimit, Origin, Thresholds};

fn fx(path: &str) -> String {
    let full = format!("{}/tests/fixtures/stack/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

struct Case {
    name: &'static str,
    out: CheckOutput,
    state: State,
    says: &'static [&'static str],
    perf: &'static [(&'static str, f64)],
}

fn check(cases: Vec<Case>) {
    for c in cases {
        let o = &c.out;
        assert_eq!(o.state, c.state, "{}: state of {o:#?}", c.name);
        assert!(
            o.output.contains(&format!(" {} - ", c.state)),
            "{}: output {:?} lacks the state",
            c.name,
            o.output
        );
        for word in c.says {
            assert!(
                o.output.contains(word),
                "{}: output {:?} lacks {word:?}",
                c.name,
                o.output
            );
        }
        assert!(!o.perfdata.is_empty(), "{}: no perfdata", c.name);
        for (label, value) in c.perf {
            let p = o
                .perfdata
                .iter()
                .find(|p| p.label == *label)
                .unwrap_or_else(|| panic!("{}: no perfdata {label} in {:?}", c.name, o.perfdata));
            assert!(
                (p.value - value).abs() < 1e-6,
                "{}: {label} = {} not {value}",
                c.name,
                p.value
            );
        }
        let text = format_output(o);
        let back = plugin_output::parse(o.state, &text);
        assert_eq!(&back, o, "{}: round trip of {text:?}", c.name);
    }
}

fn case(
    name: &'static str,
    out: CheckOutput,
    state: State,
    says: &'static [&'static str],
    perf: &'static [(&'static str, f64)],
) -> Case {
    Case {
        name,
        out,
        state,
        says,
        perf,
    }
}

// ---------------------------------------------------------------- DRBD

fn drbd_one(file: &str, opts: &DrbdCheck) -> CheckOutput {
    drbd::evaluate(&[("san1".into(), Ok(drbd::parse(&fx(file))))], opts)
}

fn drbd_two(a: &str, b: &str, opts: &DrbdCheck) -> CheckOutput {
    drbd::evaluate(
        &[
            ("san1".into(), Ok(drbd::parse(&fx(a)))),
            ("san2".into(), Ok(drbd::parse(&fx(b)))),
        ],
        opts,
    )
}

#[test]
fn drbd_states() {
    let d = DrbdCheck::default();
    let oos = DrbdCheck {
        oos: Thresholds::parse(Some("512M"), Some("2G")).unwrap(),
        ..DrbdCheck::default()
    };
    let only0 = DrbdCheck {
        resources: vec!["0".into()],
        ..DrbdCheck::default()
    };
    check(vec![
        case("9 healthy", drbd_one("drbd/drbd9-healthy.txt", &d), State::Ok,
            &["r0 Primary/Secondary Connected", "r1 Primary/Secondary Connected"],
            &[("r0_oos", 0.0), ("r0_sync", 100.0), ("r1_oos", 0.0)]),
        case("9 verbose healthy", drbd_one("drbd/drbd9-verbose-healthy.txt", &d), State::Ok,
            &["r0 Primary/Secondary Connected"], &[("r0_oos", 0.0), ("r0_sync", 100.0)]),
        case("9 out of sync above -w", drbd_one("drbd/drbd9-verbose-oos.txt", &oos), State::Warning,
            &["r0: 1073741824 B out of sync"], &[("r0_oos", 1024.0 * 1048576.0)]),
        case("9 sync source", drbd_one("drbd/drbd9-syncsource.txt", &d), State::Warning,
            &["r0: SyncSource 42.4% done"], &[("r0_sync", 42.37)]),
        case("9 sync target", drbd_one("drbd/drbd9-synctarget.txt", &d), State::Warning,
            &["r0: SyncTarget 42.4% done", "disk Inconsistent"], &[("r0_sync", 42.37)]),
        case("9 standalone", drbd_one("drbd/drbd9-standalone.txt", &d), State::Critical,
            &["r0: san2 StandAlone (split-brain"], &[("r0_oos", 0.0)]),
        case("9 split-brain on both", drbd_two("drbd/drbd9-standalone.txt", "drbd/drbd9-san2-standalone-primary.txt", &d),
            State::Critical, &["r0: split-brain: Primary on san1 and san2"], &[("san1_r0_oos", 0.0), ("san2_r0_oos", 0.0)]),
        case("9 connecting", drbd_one("drbd/drbd9-connecting.txt", &d), State::Critical,
            &["r0: san2 Connecting"], &[]),
        case("9 diskless", drbd_one("drbd/drbd9-diskless.txt", &d), State::Critical,
            &["r0: disk Diskless"], &[("r0_sync", 0.0)]),
        case("9 outdated peer", drbd_one("drbd/drbd9-outdated-peer.txt", &d), State::Warning,
            &["r0: san2 peer-disk Outdated"], &[]),
        case("9 missing resource", drbd_one("drbd/drbd9-healthy.txt", &DrbdCheck { resources: vec!["r7".into()], ..DrbdCheck::default() }),
            State::Critical, &["r7: not configured"], &[]),
        case("8 healthy", drbd_one("drbd/proc-drbd8-healthy.txt", &d), State::Ok,
            &["drbd0 Primary/Secondary Connected"], &[("drbd0_oos", 0.0), ("drbd0_sync", 100.0)]),
        case("8.3 with an unconfigured minor", drbd_one("drbd/proc-drbd83-healthy.txt", &d), State::Critical,
            &["drbd1: Unconfigured"], &[]),
        case("8.3 minor 0 only", drbd_one("drbd/proc-drbd83-healthy.txt", &only0), State::Ok,
            &["drbd0 Primary/Secondary Connected"], &[("drbd0_oos", 0.0)]),
        case("8 syncing", drbd_one("drbd/proc-drbd8-syncing.txt", &d), State::Warning,
            &["drbd0: SyncSource 26.1% done"], &[("drbd0_sync", 26.1), ("drbd0_oos", 7755248.0 * 1024.0)]),
        case("8 split-brain, one side", drbd_one("drbd/proc-drbd8-splitbrain-san1.txt", &d), State::Critical,
            &["drbd0: peer StandAlone"], &[("drbd0_oos", 20480.0 * 1024.0)]),
        case("8 split-brain, both Primary", drbd_two("drbd/proc-drbd8-splitbrain-san1.txt", "drbd/proc-drbd8-splitbrain-san2.txt", &d),
            State::Critical, &["drbd0: split-brain: Primary on san1 and san2 while not connected"], &[("san2_drbd0_oos", 4096.0 * 1024.0)]),
        case("8 diskless", drbd_one("drbd/proc-drbd8-diskless.txt", &d), State::Critical,
            &["drbd0: disk Diskless"], &[]),
        case("8 waiting for the peer", drbd_one("drbd/proc-drbd8-wfconnection.txt", &d), State::Critical,
            &["drbd0: peer WFConnection"], &[]),
        case("8 out of sync below -w", drbd_one("drbd/proc-drbd8-wfconnection.txt", &oos), State::Critical,
            &["WFConnection"], &[("drbd0_oos", 8192.0 * 1024.0)]),
        case("split-brain in the text", drbd::evaluate(&[("san1".into(), Ok(drbd::parse("r0 role:Secondary\n  disk:UpToDate\n  san2 connection:StandAlone\n# kernel: drbd r0: Split-Brain detected\n")))], &d),
            State::Critical, &["split-brain reported"], &[]),
        case("server unreachable", drbd::evaluate(&[("san1".into(), Err("ssh: connect to host san1 port 22: Connection refused".into())), ("san2".into(), Ok(drbd::parse(&fx("drbd/drbd9-healthy.txt"))))], &d),
            State::Unknown, &["san1: ssh: connect"], &[("san2_r0_oos", 0.0)]),
        case("require primary, one Primary", drbd_two("drbd/drbd9-syncsource.txt", "drbd/drbd9-synctarget.txt", &DrbdCheck { require_primary: true, ..DrbdCheck::default() }),
            State::Warning, &["SyncTarget"], &[]),
    ]);
    // both Secondary and nothing Primary: CRITICAL with --require-primary
    let secondary =
        "r0 role:Secondary\n  disk:UpToDate\n  san2 role:Secondary\n    peer-disk:UpToDate\n";
    let out = drbd::evaluate(
        &[("san1".into(), Ok(drbd::parse(secondary)))],
        &DrbdCheck {
            require_primary: true,
            ..DrbdCheck::default()
        },
    );
    assert_eq!(out.state, State::Critical);
    assert!(out.output.contains("r0: Primary nowhere"), "{}", out.output);
}

// ---------------------------------------------------------------- bonding

fn bond(file: &str, opts: &BondingCheck) -> CheckOutput {
    bonding::evaluate(&[("bond0".into(), Ok(bonding::parse(&fx(file))))], opts)
}

#[test]
fn bonding_states() {
    let d = BondingCheck {
        origin: Origin::Local,
        bonds: vec!["bond0".into()],
        slaves_up: Thresholds::default(),
        link_failures: Thresholds::default(),
        expect_active: None,
    };
    let failures = BondingCheck {
        link_failures: Thresholds::parse(Some("2"), Some("10")).unwrap(),
        ..d.clone()
    };
    let want_eth0 = BondingCheck {
        expect_active: Some("eth0".into()),
        ..d.clone()
    };
    check(vec![
        case("active-backup healthy", bond("bonding/active-backup-healthy.txt", &d), State::Ok,
            &["bond0 2/2 slaves up, active eth0"], &[("slaves_up", 2.0), ("link_failures", 0.0)]),
        case("active-backup one down", bond("bonding/active-backup-one-down.txt", &d), State::Warning,
            &["bond0 1/2 slaves up (eth0 down)"], &[("slaves_up", 1.0), ("link_failures", 3.0)]),
        case("active-backup all down", bond("bonding/active-backup-all-down.txt", &d), State::Critical,
            &["bond0 0/2 slaves up (eth0, eth1 down), bond MII down", "bond0: no active slave"], &[("slaves_up", 0.0)]),
        case("link failures over -w", bond("bonding/active-backup-one-down.txt", &failures), State::Warning,
            &["bond0: 3 link failures"], &[("link_failures", 3.0)]),
        case("expected active slave is down: no extra alarm", bond("bonding/active-backup-one-down.txt", &want_eth0), State::Warning,
            &["eth0 down"], &[]),
        case("not the expected active slave", bond("bonding/active-backup-healthy.txt", &BondingCheck { expect_active: Some("eth1".into()), ..d.clone() }),
            State::Warning, &["bond0: active slave eth0, not eth1"], &[]),
        case("802.3ad healthy", bond("bonding/8023ad-healthy.txt", &d), State::Ok,
            &["bond0 2/2 slaves up"], &[("slaves_up", 2.0)]),
        case("802.3ad one down", bond("bonding/8023ad-one-down.txt", &d), State::Warning,
            &["bond0 1/2 slaves up (enp1s0f1 down)"], &[("slaves_up", 1.0), ("link_failures", 2.0)]),
        case("-c 2: makes one down critical", bond("bonding/8023ad-one-down.txt", &BondingCheck { slaves_up: Thresholds::parse(Some("2:"), Some("2:")).unwrap(), ..d.clone() }),
            State::Critical, &["1/2 slaves up"], &[]),
        case("no such bond", bonding::evaluate(&[("bond9".into(), Err("cannot read /proc/net/bonding/bond9: No such file or directory (os error 2)".into()))], &d),
            State::Critical, &["bond9: cannot read"], &[]),
    ]);
    let p = bonding::parse(&fx("bonding/8023ad-one-down.txt")).unwrap();
    assert_eq!(p.active_aggregator, Some(1));
    assert_eq!(p.slaves[1].aggregator, Some(2));
    let out = bond("bonding/8023ad-healthy.txt", &d);
    let sl = out
        .perfdata
        .iter()
        .find(|p| p.label == "slaves_up")
        .unwrap();
    assert_eq!(
        (sl.warn.as_deref(), sl.crit.as_deref(), sl.max),
        (Some("2:"), Some("1:"), Some(2.0))
    );
}

// ---------------------------------------------------------------- iSCSI

fn targets(vms: &[&str], tgts: &[&str]) -> TargetCheck {
    TargetCheck {
        origin: Origin::Local,
        tool: TargetTool::Iet,
        targets: tgts.iter().map(|s| s.to_string()).collect(),
        vms: vms.iter().map(|s| s.to_string()).collect(),
        iqn_prefix: Some("iqn.san1.klasse.kurs".into()),
        vg: "system".into(),
        suffixes: vec!["root".into(), "swap".into()],
    }
}

fn tgt(file: &str, opts: &TargetCheck) -> CheckOutput {
    iscsi::evaluate_targets(&iscsi::parse_targets(&fx(file)), opts)
}

#[test]
fn iscsi_target_states() {
    let both = targets(&["deb1", "win3"], &[]);
    check(vec![
        case(
            "ietd healthy",
            tgt("iscsi/iet-volume.txt", &both),
            State::Ok,
            &["iqn.san1.klasse.kurs:deb1, iqn.san1.klasse.kurs:win3 exported"],
            &[("targets", 2.0), ("luns", 4.0), ("missing", 0.0)],
        ),
        case(
            "ietd missing LUN",
            tgt("iscsi/iet-volume-missing-lun.txt", &both),
            State::Critical,
            &["win3: no LUN for /dev/system/win3-swap in iqn.san1.klasse.kurs:win3"],
            &[("luns", 3.0), ("missing", 1.0)],
        ),
        case(
            "LIO healthy",
            tgt("iscsi/targetcli-ls.txt", &both),
            State::Ok,
            &["exported"],
            &[("targets", 2.0), ("luns", 4.0)],
        ),
        case(
            "LIO missing LUN",
            tgt("iscsi/targetcli-ls-missing-lun.txt", &both),
            State::Critical,
            &["win3: no LUN for /dev/system/win3-swap"],
            &[("luns", 3.0)],
        ),
        case(
            "tgt: deb1 fine",
            tgt("iscsi/tgtadm-show.txt", &targets(&["deb1"], &[])),
            State::Ok,
            &["exported"],
            &[("targets", 2.0), ("luns", 3.0)],
        ),
        case(
            "tgt: win3 lacks swap",
            tgt("iscsi/tgtadm-show.txt", &both),
            State::Critical,
            &["win3: no LUN for /dev/system/win3-swap"],
            &[],
        ),
        case(
            "target not exported",
            tgt(
                "iscsi/iet-volume.txt",
                &targets(&[], &["iqn.san1.klasse.kurs:t1"]),
            ),
            State::Critical,
            &["target iqn.san1.klasse.kurs:t1 not exported"],
            &[("missing", 1.0)],
        ),
        case(
            "VM without a target",
            tgt("iscsi/iet-volume.txt", &targets(&["t1"], &[])),
            State::Critical,
            &["t1: target iqn.san1.klasse.kurs:t1 not exported"],
            &[("missing", 2.0)],
        ),
        case(
            "nothing expected, something exported",
            tgt("iscsi/targetcli-ls.txt", &targets(&[], &[])),
            State::Ok,
            &["2 targets, 4 LUNs exported"],
            &[],
        ),
        case(
            "nothing exported",
            iscsi::evaluate_targets(&iscsi::parse_targets(""), &targets(&[], &[])),
            State::Critical,
            &["no targets exported"],
            &[("targets", 0.0)],
        ),
    ]);
    let t = iscsi::parse_targets(&fx("iscsi/targetcli-ls.txt"));
    assert_eq!(t[0].luns[1].path.as_deref(), Some("/dev/system/deb1-swap"));
    let t = iscsi::parse_targets(&fx("iscsi/tgtadm-show.txt"));
    assert_eq!(
        t[0].luns.iter().map(|l| l.number).collect::<Vec<_>>(),
        vec![1, 2],
        "controller LUN 0 left out"
    );
}

fn sessions(vms: &[&str]) -> SessionCheck {
    SessionCheck {
        origin: Origin::Local,
        targets: Vec::new(),
        vms: vms.iter().map(|s| s.to_string()).collect(),
        iqn_prefix: Some("iqn.san1.klasse.kurs".into()),
        luns: vec![0, 1],
        portal: None,
        count: Thresholds::default(),
    }
}

fn sess(file: &str, opts: &SessionCheck) -> CheckOutput {
    iscsi::evaluate_sessions(&iscsi::parse_sessions(&fx(file)), opts)
}

#[test]
fn iscsi_session_states() {
    let both = sessions(&["deb1", "win3"]);
    check(vec![
        case(
            "two sessions",
            sess("iscsi/iscsiadm-session.txt", &both),
            State::Ok,
            &["2 sessions logged in, all 2 expected present"],
            &[("sessions", 2.0), ("missing", 0.0)],
        ),
        case(
            "-P 3 with LUNs",
            sess("iscsi/iscsiadm-session-P3.txt", &both),
            State::Ok,
            &["2 sessions"],
            &[("sessions", 2.0)],
        ),
        case(
            "-P 3 missing LUN",
            sess("iscsi/iscsiadm-session-P3-missing-lun.txt", &both),
            State::Critical,
            &["iqn.san1.klasse.kurs:win3: LUN 1 not attached"],
            &[],
        ),
        case(
            "no sessions",
            sess("iscsi/iscsiadm-no-sessions.txt", &both),
            State::Critical,
            &[
                "no session to iqn.san1.klasse.kurs:deb1",
                "no session to iqn.san1.klasse.kurs:win3",
            ],
            &[("sessions", 0.0), ("missing", 2.0)],
        ),
        case(
            "no sessions, nothing expected",
            sess("iscsi/iscsiadm-no-sessions.txt", &sessions(&[])),
            State::Critical,
            &["0 sessions logged in"],
            &[("sessions", 0.0)],
        ),
        case(
            "VM without session",
            sess("iscsi/iscsiadm-session.txt", &sessions(&["t1"])),
            State::Critical,
            &["no session to iqn.san1.klasse.kurs:t1"],
            &[("missing", 1.0)],
        ),
        case(
            "wrong portal",
            sess(
                "iscsi/iscsiadm-session.txt",
                &SessionCheck {
                    portal: Some("192.168.30.5".into()),
                    ..both.clone()
                },
            ),
            State::Warning,
            &["iqn.san1.klasse.kurs:deb1 via 192.168.30.10:3260,1 instead of 192.168.30.5"],
            &[],
        ),
        case(
            "right portal",
            sess(
                "iscsi/iscsiadm-session.txt",
                &SessionCheck {
                    portal: Some("192.168.30.10".into()),
                    ..both.clone()
                },
            ),
            State::Ok,
            &[],
            &[],
        ),
        case(
            "too few sessions",
            sess(
                "iscsi/iscsiadm-session.txt",
                &SessionCheck {
                    count: Thresholds::parse(Some("3:"), Some("1:")).unwrap(),
                    ..sessions(&[])
                },
            ),
            State::Warning,
            &["2 sessions logged in"],
            &[],
        ),
    ]);
    let out = sess("iscsi/iscsiadm-session.txt", &both);
    assert!(
        out.long_output.contains("LUNs not shown"),
        "{}",
        out.long_output
    );
}

// ---------------------------------------------------------------- LVM

fn vg_check(vgs: &[&str], w: &str, c: &str) -> VgCheck {
    VgCheck {
        origin: Origin::Local,
        vgs: vgs.iter().map(|s| s.to_string()).collect(),
        warn: Some(MinLimit::parse(w).unwrap()),
        crit: Some(MinLimit::parse(c).unwrap()),
    }
}

fn vgs(file: &str, opts: &VgCheck) -> CheckOutput {
    lvm::evaluate_vgs(&lvm::parse_vgs(&fx(file)).unwrap(), opts)
}

fn vm_check(vms: &[&str], active: bool) -> VmCheck {
    VmCheck {
        origin: Origin::Local,
        vg: "system".into(),
        vms: vms.iter().map(|s| s.to_string()).collect(),
        suffixes: vec!["root".into(), "swap".into()],
        require_active: active,
    }
}

fn lvs(file: &str) -> Vec<lvm::Lv> {
    lvm::parse_lvs(&fx(file)).unwrap()
}

fn snaps() -> SnapshotCheck {
    SnapshotCheck {
        origin: Origin::Local,
        vg: None,
        lvs: Vec::new(),
        fill: Thresholds::parse(Some("80"), Some("90")).unwrap(),
    }
}

#[test]
fn lvm_states() {
    check(vec![
        case(
            "VG healthy",
            vgs("lvm/vgs-healthy.txt", &vg_check(&["system"], "20%", "10%")),
            State::Ok,
            &["system 50.0 GiB free of 100.0 GiB (50%)"],
            &[("free", 53687091200.0)],
        ),
        case(
            "VG full",
            vgs("lvm/vgs-full.txt", &vg_check(&["system"], "20%", "10%")),
            State::Critical,
            &["system 4.0 GiB free of 100.0 GiB (4%)"],
            &[("free", 4294967296.0)],
        ),
        case(
            "VG full, size limits",
            vgs("lvm/vgs-full.txt", &vg_check(&["system"], "10G", "2G")),
            State::Warning,
            &["system 4.0 GiB free"],
            &[],
        ),
        case(
            "all VGs",
            vgs("lvm/vgs-full.txt", &vg_check(&[], "20%", "10%")),
            State::Critical,
            &["system 4.0 GiB free"],
            &[
                ("system_free", 4294967296.0),
                ("backup_free", 322122547200.0),
            ],
        ),
        case(
            "no such VG",
            vgs("lvm/vgs-healthy.txt", &vg_check(&["vmdata"], "20%", "10%")),
            State::Critical,
            &["VG vmdata not found"],
            &[],
        ),
        case(
            "VM LVs present",
            lvm::evaluate_vm(
                &lvs("lvm/lvs-healthy.txt"),
                &vm_check(&["deb1", "win3"], true),
            ),
            State::Ok,
            &["4/4 LVs present in system for deb1, win3"],
            &[("lvs_present", 4.0)],
        ),
        case(
            "VM LV missing",
            lvm::evaluate_vm(&lvs("lvm/lvs-missing-lv.txt"), &vm_check(&["deb1"], false)),
            State::Critical,
            &["system/deb1-swap missing"],
            &[("lvs_present", 1.0)],
        ),
        case(
            "VM LV inactive",
            lvm::evaluate_vm(&lvs("lvm/lvs-missing-lv.txt"), &vm_check(&["win3"], true)),
            State::Critical,
            &["system/win3-swap not active (-wi-------)"],
            &[("lvs_present", 2.0)],
        ),
        case(
            "VM LV inactive, not required",
            lvm::evaluate_vm(&lvs("lvm/lvs-missing-lv.txt"), &vm_check(&["win3"], false)),
            State::Ok,
            &["2/2 LVs present"],
            &[],
        ),
        case(
            "snapshot 95% full",
            lvm::evaluate_snapshots(&lvs("lvm/lvs-snapshot-95.txt"), &snaps()),
            State::Critical,
            &["system/deb1-snap 95.1% full"],
            &[
                ("deb1-snap", 95.12),
                ("win3-snap", 12.5),
                ("snapshots", 2.0),
            ],
        ),
        case(
            "snapshot invalid",
            lvm::evaluate_snapshots(&lvs("lvm/lvs-snapshot-invalid.txt"), &snaps()),
            State::Critical,
            &["system/deb1-snap invalid (overflowed)"],
            &[("deb1-snap", 100.0)],
        ),
        case(
            "only win3-snap",
            lvm::evaluate_snapshots(
                &lvs("lvm/lvs-snapshot-95.txt"),
                &SnapshotCheck {
                    lvs: vec!["win3-snap".into()],
                    ..snaps()
                },
            ),
            State::Ok,
            &["1 snapshot(s), fullest system/win3-snap 12.5%"],
            &[("win3-snap", 12.5)],
        ),
        case(
            "no snapshots",
            lvm::evaluate_snapshots(&lvs("lvm/lvs-healthy.txt"), &snaps()),
            State::Ok,
            &["no snapshots"],
            &[("snapshots", 0.0)],
        ),
        case(
            "colon separated",
            lvm::evaluate_snapshots(&lvs("lvm/lvs-separator.txt"), &snaps()),
            State::Ok,
            &["fullest system/deb1-snap 42.0%"],
            &[("deb1-snap", 42.0)],
        ),
    ]);
    assert!(lvm::parse_vgs("  system 100\n").is_err());
    assert!(lvm::parse_lvs("  x system -wi-a----- notanumber\n").is_err());
    let inactive_snap = lvm::parse_lvs("  snap system swi---s--- 1024 deb1-root\n").unwrap();
    assert_eq!(inactive_snap[0].origin.as_deref(), Some("deb1-root"));
    assert_eq!(inactive_snap[0].data_percent, None);
}

/// Plain `vgs`/`lvs` reports (heading line, LVM units such as `<99.50g`)
/// read like the machine form of the same volumes: the same facts where the
/// sizes are exact, the same verdicts where LVM rounded them.
#[test]
fn lvm_human_reports_read_like_the_machine_form() {
    let exact_vgs = [
        ("lvm/vgs-human-healthy.txt", "lvm/vgs-healthy.txt"),
        ("lvm/vgs-human-full.txt", "lvm/vgs-full.txt"),
    ];
    for (human, machine) in exact_vgs {
        assert_eq!(
            lvm::parse_vgs(&fx(human)).unwrap(),
            lvm::parse_vgs(&fx(machine)).unwrap(),
            "{human}"
        );
    }
    let exact_lvs = [
        ("lvm/lvs-human-snapshot-95.txt", "lvm/lvs-snapshot-95.txt"),
        (
            "lvm/lvs-human-snapshot-invalid.txt",
            "lvm/lvs-snapshot-invalid.txt",
        ),
        ("lvm/lvs-human-missing-lv.txt", "lvm/lvs-missing-lv.txt"),
    ];
    for (human, machine) in exact_lvs {
        assert_eq!(lvs(human), lvs(machine), "{human}");
    }
    check(vec![
        case(
            "human VG full",
            vgs(
                "lvm/vgs-human-full.txt",
                &vg_check(&["system"], "20%", "10%"),
            ),
            State::Critical,
            &["system 4.0 GiB free of 100.0 GiB (4%)"],
            &[("free", 4294967296.0)],
        ),
        case(
            "human VG healthy, all VGs",
            vgs("lvm/vgs-human-healthy.txt", &vg_check(&[], "20%", "10%")),
            State::Ok,
            &["system 50.0 GiB free of 100.0 GiB (50%)"],
            &[
                ("system_free", 53687091200.0),
                ("backup_free", 322122547200.0),
            ],
        ),
        case(
            "human snapshot 95% full",
            lvm::evaluate_snapshots(&lvs("lvm/lvs-human-snapshot-95.txt"), &snaps()),
            State::Critical,
            &["system/deb1-snap 95.1% full"],
            &[("deb1-snap", 95.12), ("win3-snap", 12.5)],
        ),
        case(
            "human snapshot invalid",
            lvm::evaluate_snapshots(&lvs("lvm/lvs-human-snapshot-invalid.txt"), &snaps()),
            State::Critical,
            &["system/deb1-snap invalid (overflowed)"],
            &[("deb1-snap", 100.0)],
        ),
        case(
            "human VM LV missing",
            lvm::evaluate_vm(
                &lvs("lvm/lvs-human-missing-lv.txt"),
                &vm_check(&["deb1"], false),
            ),
            State::Critical,
            &["system/deb1-swap missing"],
            &[("lvs_present", 1.0)],
        ),
    ]);

    // Captured from two loop-device VGs (LVM 2.03.16): `vgs`, `vgs --units G
    // --separator :` and the machine form, of the same VGs. Rounded sizes
    // are within half a hundredth of their unit; the verdicts agree.
    let machine = lvm::parse_vgs(&fx("lvm/vgs-loop.txt")).unwrap();
    for (human, unit) in [
        ("lvm/vgs-human-loop.txt", 1024f64.powi(4)),
        ("lvm/vgs-human-si-colon.txt", 1e9),
    ] {
        let read = lvm::parse_vgs(&fx(human)).unwrap();
        assert_eq!(read.len(), machine.len(), "{human}");
        for (h, m) in read.iter().zip(&machine) {
            assert_eq!(h.name, m.name, "{human}");
            for (a, b) in [(h.size, m.size), (h.free, m.free)] {
                assert!(
                    (a as f64 - b as f64).abs() <= 0.005 * unit,
                    "{human}: {h:?} vs {m:?}"
                );
            }
        }
        let limits = [
            (&["system"][..], "20%", "10%", State::Critical),
            (&["system"][..], "10%", "5%", State::Warning),
            (&["system"][..], "100M", "50M", State::Ok),
            (&["backup"][..], "600G", "100G", State::Warning),
            (&["backup"][..], "25%", "20%", State::Ok),
            (&[][..], "20%", "10%", State::Critical),
        ];
        for (vg, w, c, want) in limits {
            let opts = vg_check(vg, w, c);
            let h = lvm::evaluate_vgs(&read, &opts);
            let m = lvm::evaluate_vgs(&machine, &opts);
            assert_eq!(
                (h.state, m.state),
                (want, want),
                "{human} {vg:?} -w {w} -c {c}"
            );
            let labels = |o: &CheckOutput| {
                o.perfdata
                    .iter()
                    .map(|p| p.label.clone())
                    .collect::<Vec<_>>()
            };
            assert_eq!(labels(&h), labels(&m));
        }
    }
    let human = lvs("lvm/lvs-human-loop.txt");
    let machine = lvs("lvm/lvs-loop.txt");
    assert_eq!(human.len(), 5);
    for (h, m) in human.iter().zip(&machine) {
        assert_eq!((&h.name, &h.vg, &h.attr), (&m.name, &m.vg, &m.attr));
        assert!(
            (h.size as f64 - m.size as f64).abs() <= 0.005 * 1024f64.powi(4),
            "{h:?} {m:?}"
        );
        assert_eq!((h.data_percent, &h.origin), (None, &None));
    }
    for vm in [["deb1"], ["win3"]] {
        let opts = vm_check(&vm, false);
        assert_eq!(
            lvm::evaluate_vm(&human, &opts),
            lvm::evaluate_vm(&machine, &opts)
        );
    }

    // What is neither form says which forms are read.
    let headless = "  system   1   4   0 wz--n- <2.00g  136.00m\n";
    let e = lvm::parse_vgs(headless).unwrap_err().to_string();
    assert!(
        e.contains("not 3 columns") && e.contains("`vgs` with its heading line"),
        "{e}"
    );
    assert!(
        e.contains(
            "vgs --noheadings --units b --nosuffix --separator : -o vg_name,vg_size,vg_free"
        ),
        "{e}"
    );
    let e = lvm::parse_vgs("  VG     VFree\n  system 136.00m\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("the heading has no VSize column"), "{e}");
    let e = lvm::parse_vgs("  VG     VSize VFree\n  system  2.00  0.14\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no size in VSize"),
        "a unitless fraction is not bytes: {e}"
    );
    let e = lvm::parse_lvs("  LV   VG   LSize\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("the heading has no Attr column"), "{e}");
}

// ---------------------------------------------------------------- domains

fn doms(
    files: &[(&str, &str)],
    tool: DomainTool,
    expect: &[&str],
    absent_warning: bool,
) -> CheckOutput {
    let listed: Vec<(String, Result<Vec<domains::Domain>, String>)> = files
        .iter()
        .map(|(s, f)| (s.to_string(), Ok(domains::parse(&fx(f)))))
        .collect();
    domains::evaluate(
        &listed,
        &DomainsCheck {
            servers: Vec::new(),
            tool,
            connect: None,
            expect: expect.iter().map(|s| s.to_string()).collect(),
            absent_warning,
        },
    )
}

#[test]
fn domain_states() {
    let xl = DomainTool::Xl;
    let healthy = [("cs1", "domains/xl-cs1.txt"), ("cs2", "domains/xl-cs2.txt")];
    let paused = [
        ("cs1", "domains/xl-cs1.txt"),
        ("cs2", "domains/xl-cs2-paused.txt"),
    ];
    let dup = [
        ("cs1", "domains/xl-cs1.txt"),
        ("cs2", "domains/xl-cs2-dup.txt"),
    ];
    let virsh = [
        ("cs1", "domains/virsh-cs1.txt"),
        ("cs2", "domains/virsh-cs2.txt"),
    ];
    check(vec![
        case(
            "xl healthy",
            doms(&healthy, xl, &["deb1", "win3"], false),
            State::Ok,
            &["2/2 expected VMs each running on exactly one server"],
            &[("running", 2.0), ("duplicates", 0.0), ("missing", 0.0)],
        ),
        case(
            "xl VM on two servers",
            doms(&dup, xl, &["deb1", "win3"], false),
            State::Critical,
            &["deb1 runs on cs1 and cs2 at once"],
            &[("running", 1.0), ("duplicates", 1.0)],
        ),
        case(
            "duplicate not expected is still critical",
            doms(&dup, xl, &[], false),
            State::Critical,
            &["deb1 runs on cs1 and cs2"],
            &[("duplicates", 1.0)],
        ),
        case(
            "xl paused",
            doms(&paused, xl, &["t1"], false),
            State::Warning,
            &["t1 on cs2 is paused (--p---)"],
            &[("running", 0.0)],
        ),
        case(
            "paused, not expected, is still a warning",
            doms(&paused, xl, &["deb1", "win3"], false),
            State::Warning,
            &["t1 on cs2 is paused (--p---)"],
            &[("running", 2.0), ("missing", 0.0)],
        ),
        case(
            "crashed, not expected, is still critical",
            doms(
                &[
                    ("cs1", "domains/xl-cs1.txt"),
                    ("cs2", "domains/xl-cs2-newjoomla-crashed.txt"),
                ],
                xl,
                &["deb1", "win3"],
                false,
            ),
            State::Critical,
            &["newjoomla on cs2 is crashed (----c-)"],
            &[("running", 2.0), ("duplicates", 0.0), ("missing", 0.0)],
        ),
        case(
            "crashed and paused without --expect",
            doms(
                &[
                    ("cs1", "domains/xl-cs1.txt"),
                    ("cs2", "domains/xl-cs2-newjoomla-crashed.txt"),
                ],
                xl,
                &[],
                false,
            ),
            State::Critical,
            &["newjoomla on cs2 is crashed (----c-)"],
            &[("duplicates", 0.0)],
        ),
        case(
            "virsh paused and crashed, not expected",
            doms(
                &[("cs1", "domains/virsh-cs1-paused-crashed.txt")],
                DomainTool::Virsh,
                &["deb1"],
                false,
            ),
            State::Critical,
            &["newjoomla on cs1 is crashed", "t1 on cs1 is paused"],
            &[("running", 1.0)],
        ),
        case(
            "xl crashed",
            doms(
                &[
                    ("cs1", "domains/xl-cs1.txt"),
                    ("cs2", "domains/xl-cs2-crashed.txt"),
                ],
                xl,
                &["win3"],
                false,
            ),
            State::Critical,
            &["win3 on cs2 is crashed (----c-)"],
            &[],
        ),
        case(
            "runs nowhere",
            doms(&healthy, xl, &["newjoomla"], false),
            State::Critical,
            &["newjoomla runs nowhere"],
            &[("missing", 1.0)],
        ),
        case(
            "runs nowhere, warning",
            doms(&healthy, xl, &["newjoomla"], true),
            State::Warning,
            &["newjoomla runs nowhere"],
            &[],
        ),
        case(
            "virsh VM on two servers",
            doms(&virsh, DomainTool::Virsh, &["deb1", "win3"], false),
            State::Critical,
            &["deb1 runs on cs1 and cs2 at once"],
            &[("running", 1.0), ("duplicates", 1.0)],
        ),
        case(
            "virsh shut off is not running",
            doms(&virsh, DomainTool::Virsh, &["t1"], false),
            State::Critical,
            &["t1 runs nowhere"],
            &[],
        ),
    ]);
    let out = domains::evaluate(
        &[
            ("cs1".into(), Ok(domains::parse(&fx("domains/xl-cs1.txt")))),
            (
                "cs2".into(),
                Err("ssh: connect to host cs2 port 22: No route to host".into()),
            ),
        ],
        &DomainsCheck {
            servers: Vec::new(),
            tool: xl,
            connect: None,
            expect: vec!["deb1".into(), "win3".into()],
            absent_warning: false,
        },
    );
    assert_eq!(out.state, State::Unknown, "{out:?}");
    assert!(
        out.output
            .contains("win3 runs on no reachable server (cs2 not asked)"),
        "{}",
        out.output
    );
    assert!(domains::parse(&fx("domains/xl-cs1.txt"))
        .iter()
        .all(|d| d.name != "Domain-0"));
}

// ---------------------------------------------------------------- cluster IP

fn cip(files: &[(&str, &str)]) -> CheckOutput {
    let facts: Vec<(String, Result<Vec<clusterip::Address>, String>)> = files
        .iter()
        .map(|(s, f)| (s.to_string(), Ok(clusterip::parse_addresses(&fx(f)))))
        .collect();
    clusterip::evaluate(&facts, "192.168.30.10")
}

#[test]
fn cluster_ip_states() {
    check(vec![
        case(
            "one holder",
            cip(&[
                ("san1", "clusterip/ip-san1-holder.txt"),
                ("san2", "clusterip/ip-san2.txt"),
            ]),
            State::Ok,
            &["192.168.30.10 held by san1 (eth0:0)"],
            &[("holders", 1.0)],
        ),
        case(
            "two holders",
            cip(&[
                ("san1", "clusterip/ip-san1-holder.txt"),
                ("san2", "clusterip/ip-san2-holder.txt"),
            ]),
            State::Critical,
            &["held by 2 servers at once: san1 (eth0:0) and san2 (eth0:0)"],
            &[("holders", 2.0)],
        ),
        case(
            "no holder",
            cip(&[
                ("san1", "clusterip/ip-san2.txt"),
                ("san2", "clusterip/ip-san2.txt"),
            ]),
            State::Critical,
            &["192.168.30.10 held by no server"],
            &[("holders", 0.0)],
        ),
        case(
            "plain ip addr",
            cip(&[
                ("san1", "clusterip/ip-addr-plain-san1.txt"),
                ("san2", "clusterip/ip-san2.txt"),
            ]),
            State::Ok,
            &["held by san1 (eth0:0)"],
            &[],
        ),
    ]);
    let out = clusterip::evaluate(
        &[
            (
                "san1".into(),
                Ok(clusterip::parse_addresses(&fx(
                    "clusterip/ip-san1-holder.txt",
                ))),
            ),
            (
                "san2".into(),
                Err("ssh: connect to host san2 port 22: Connection timed out".into()),
            ),
        ],
        "192.168.30.10",
    );
    assert_eq!(out.state, State::Warning);
    assert!(out.output.contains("san2 not asked"), "{}", out.output);
}
