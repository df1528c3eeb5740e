//! The stack checks against the real tools on this machine: LVM on a loop
//! device, tgtd (userspace iSCSI target) on 127.0.0.1, `iscsiadm` without
//! sessions, libvirt's `virsh` with its built-in test driver, `ip addr`, and
//! `drbdsetup` failing without the DRBD kernel module.
//!
//! These need root and the Debian packages lvm2, tgt, open-iscsi,
//! libvirt-clients, drbd-utils and iproute2 (tests/run.sh installs them).
//! A missing prerequisite fails the test with a message; nothing is skipped.
//! Everything created (loop device, VG, tgtd) is removed by a Drop guard,
//! also when a test fails. No timing is asserted.

use laxmon::checks::State;
use laxmon::stack::domains::{self, DomainTool, DomainsCheck};
use laxmon::stack::iscsi::{self, SessionCheck, TargetCheck, TargetTool};
use laxmon::stack::lvm::{VgCheck, VmCheck};
use laxmon::stack::{
    clusterip::ClusterIpCheck, drbd::DrbdCheck, gather, run_native, MinLimit, Origin, Source,
    StackCheck, Thresholds,
};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

static SEQ: AtomicU32 = AtomicU32::new(0);

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::SeqCst)
    )
}

fn require_tool(tool: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{tool} is not installed: apt-get install {package} (tests/run.sh does)"
    );
}

fn require_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(euid, 0, "this test needs root (loop devices, LVM, tgtd)");
}

fn sh(argv: &[&str]) -> String {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .env("LVM_SUPPRESS_FD_WARNINGS", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    assert!(
        out.status.success(),
        "{argv:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

// ---------------------------------------------------------------- LVM

/// A VG on a loop device; removed (VG, PV, loop device, image) on drop.
struct LoopVg {
    _dir: tempfile::TempDir,
    loopdev: String,
    vg: String,
}

impl LoopVg {
    fn new(size_mb: u32) -> LoopVg {
        require_root();
        require_tool("losetup", "mount");
        require_tool("vgcreate", "lvm2");
        let dir = tempfile::tempdir().expect("tempdir");
        let img = dir.path().join("pv.img");
        let f = std::fs::File::create(&img).expect("create image");
        f.set_len(u64::from(size_mb) * 1024 * 1024)
            .expect("size image");
        let loopdev = sh(&["losetup", "-f", "--show", &img.to_string_lossy()])
            .trim()
            .to_string();
        let vg = unique("lxmtestvg");
        let guard = LoopVg {
            _dir: dir,
            loopdev,
            vg,
        };
        sh(&["pvcreate", "-q", &guard.loopdev]);
        sh(&["vgcreate", "-q", &guard.vg, &guard.loopdev]);
        guard
    }

    /// Creates an LV without activating it: this sandbox has no
    /// device-mapper, so LVs can exist only in the metadata.
    fn lvcreate(&self, name: &str, size: &str) {
        let size_opt = if size.contains('%') { "-l" } else { "-L" };
        sh(&[
            "lvcreate",
            "-q",
            "--driverloaded",
            "n",
            "-an",
            "-Zn",
            "-y",
            "-n",
            name,
            size_opt,
            size,
            &self.vg,
        ]);
    }
}

impl Drop for LoopVg {
    fn drop(&mut self) {
        let run = |argv: &[&str]| {
            let _ = Command::new(argv[0])
                .args(&argv[1..])
                .env("LVM_SUPPRESS_FD_WARNINGS", "1")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        };
        run(&["vgremove", "-q", "-f", "--driverloaded", "n", &self.vg]);
        run(&["pvremove", "-q", "-f", &self.loopdev]);
        run(&["losetup", "-d", &self.loopdev]);
    }
}

#[test]
fn lvm_on_a_loop_device() {
    let vg = LoopVg::new(64);
    vg.lvcreate("deb1-root", "12M");
    vg.lvcreate("deb1-swap", "4M");
    let rt = rt();

    let vg_check = |w: &str, c: &str| {
        StackCheck::LvmVg(VgCheck {
            origin: Origin::Local,
            vgs: vec![vg.vg.clone()],
            warn: Some(MinLimit::parse(w).expect("limit")),
            crit: Some(MinLimit::parse(c).expect("limit")),
        })
    };
    // 64 MiB image, 4 MiB extents, one for metadata: 60 MiB, 16 MiB used.
    let out = rt.block_on(run_native(&vg_check("20%", "10%")));
    assert_eq!(out.state, State::Ok, "{out:#?}");
    let free = &out.perfdata[0];
    assert_eq!(free.label, "free");
    assert_eq!(free.value, 44.0 * 1048576.0, "{out:#?}");
    assert_eq!(free.max, Some(60.0 * 1048576.0));
    assert!(
        out.output.contains("44.0 MiB free of 60.0 MiB (73%)"),
        "{}",
        out.output
    );

    let out = rt.block_on(run_native(&vg_check("50M", "40M")));
    assert_eq!(out.state, State::Warning, "{out:#?}");

    let vm = |name: &str, active: bool| {
        StackCheck::LvmVm(VmCheck {
            origin: Origin::Local,
            vg: vg.vg.clone(),
            vms: vec![name.to_string()],
            suffixes: vec!["root".into(), "swap".into()],
            require_active: active,
        })
    };
    let out = rt.block_on(run_native(&vm("deb1", false)));
    assert_eq!(out.state, State::Ok, "{out:#?}");
    assert_eq!(out.perfdata[0].value, 2.0);
    let out = rt.block_on(run_native(&vm("win3", false)));
    assert_eq!(out.state, State::Critical, "{out:#?}");
    assert!(
        out.output.contains(&format!("{}/win3-root missing", vg.vg)),
        "{}",
        out.output
    );
    // The LVs exist only in metadata here (no device-mapper): not active.
    let out = rt.block_on(run_native(&vm("deb1", true)));
    assert_eq!(out.state, State::Critical, "{out:#?}");
    assert!(out.output.contains("not active"), "{}", out.output);

    // Fill the VG: free space 0 is CRITICAL.
    vg.lvcreate("filler", "100%FREE");
    let out = rt.block_on(run_native(&vg_check("20%", "10%")));
    assert_eq!(out.state, State::Critical, "{out:#?}");
    assert_eq!(out.perfdata[0].value, 0.0);

    // A VG that does not exist is CRITICAL (not UNKNOWN: vgs lists all VGs).
    let missing = unique("lxmnosuchvg");
    let out = rt.block_on(run_native(&StackCheck::LvmVg(VgCheck {
        origin: Origin::Local,
        vgs: vec![missing.clone()],
        warn: None,
        crit: None,
    })));
    assert_eq!(out.state, State::Critical, "{out:#?}");
    assert!(
        out.output.contains(&format!("VG {missing} not found")),
        "{}",
        out.output
    );
}

// ---------------------------------------------------------------- tgt

/// A private tgtd on 127.0.0.1 with its own control port; killed on drop.
struct Tgtd {
    child: Child,
    control: String,
    dir: tempfile::TempDir,
}

impl Tgtd {
    fn start() -> Tgtd {
        require_root();
        require_tool("tgtd", "tgt");
        let n = 100 + (std::process::id() % 800);
        let control = n.to_string();
        let portal = format!("portal=127.0.0.1:{}", 20000 + n);
        let child = Command::new("tgtd")
            .args(["-f", "-C", &control, "--iscsi", &portal])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tgtd");
        let t = Tgtd {
            child,
            control,
            dir: tempfile::tempdir().expect("tempdir"),
        };
        // Wait until tgtd answers on its control socket (bounded, no timing asserted).
        for _ in 0..100 {
            let ok = Command::new("tgtadm")
                .args(["-C", &t.control, "--mode", "system", "--op", "show"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return t;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("tgtd -C {} did not answer", t.control);
    }

    fn adm(&self, args: &[&str]) {
        let mut argv = vec!["tgtadm", "-C", &self.control, "--lld", "iscsi"];
        argv.extend(args);
        sh(&argv);
    }

    /// A target for `vm` with LUNs backed by files named like the LVs.
    fn export(&self, tid: u32, vm: &str, suffixes: &[&str]) {
        let tid = tid.to_string();
        let iqn = format!("iqn.san1.klasse.kurs:{vm}");
        self.adm(&[
            "--mode",
            "target",
            "--op",
            "new",
            "--tid",
            &tid,
            "--targetname",
            &iqn,
        ]);
        for (i, suffix) in suffixes.iter().enumerate() {
            let path = self.backing(&format!("{vm}-{suffix}"));
            let lun = (i + 1).to_string();
            self.adm(&[
                "--mode",
                "logicalunit",
                "--op",
                "new",
                "--tid",
                &tid,
                "--lun",
                &lun,
                "--backing-store",
                &path.to_string_lossy(),
            ]);
        }
        self.adm(&[
            "--mode",
            "target",
            "--op",
            "bind",
            "--tid",
            &tid,
            "--initiator-address",
            "ALL",
        ]);
    }

    fn backing(&self, lv: &str) -> PathBuf {
        let dir = self.dir.path().join("system");
        std::fs::create_dir_all(&dir).expect("backing dir");
        let path = dir.join(lv);
        let f = std::fs::File::create(&path).expect("backing file");
        f.set_len(4 * 1024 * 1024).expect("size backing file");
        path
    }

    fn show(&self) -> Source {
        Source::command(
            Origin::Local,
            &[
                "tgtadm",
                "-C",
                &self.control,
                "--lld",
                "iscsi",
                "--mode",
                "target",
                "--op",
                "show",
            ],
        )
    }
}

impl Drop for Tgtd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(
            Path::new("/var/run/tgtd").join(format!("socket.{}", self.control)),
        );
        let _ = std::fs::remove_file(
            Path::new("/var/run/tgtd").join(format!("socket.{}.lock", self.control)),
        );
    }
}

#[test]
fn tgtd_targets_and_luns() {
    let tgtd = Tgtd::start();
    tgtd.export(1, "deb1", &["root", "swap"]);
    tgtd.export(2, "win3", &["root"]);
    let text = rt().block_on(gather(&tgtd.show())).expect("tgtadm show");
    let targets = iscsi::parse_targets(&text);
    assert_eq!(targets.len(), 2, "{text}");
    assert_eq!(
        targets[0].luns.len(),
        2,
        "controller LUN left out: {targets:?}"
    );
    let check = |vms: &[&str]| TargetCheck {
        origin: Origin::Local,
        tool: TargetTool::Tgt,
        targets: Vec::new(),
        vms: vms.iter().map(|s| s.to_string()).collect(),
        iqn_prefix: Some("iqn.san1.klasse.kurs".into()),
        vg: "system".into(),
        suffixes: vec!["root".into(), "swap".into()],
    };
    let out = iscsi::evaluate_targets(&targets, &check(&["deb1"]));
    assert_eq!(out.state, State::Ok, "{out:#?}");
    let out = iscsi::evaluate_targets(&targets, &check(&["deb1", "win3"]));
    assert_eq!(out.state, State::Critical, "{out:#?}");
    assert!(
        out.output
            .contains("win3: no LUN for /dev/system/win3-swap"),
        "{}",
        out.output
    );
    assert_eq!(
        out.perfdata
            .iter()
            .find(|p| p.label == "luns")
            .map(|p| p.value),
        Some(3.0)
    );
}

// ---------------------------------------------------------------- iscsiadm

#[test]
fn iscsiadm_without_sessions() {
    require_tool("iscsiadm", "open-iscsi");
    let check = StackCheck::IscsiSession(SessionCheck {
        origin: Origin::Local,
        targets: Vec::new(),
        vms: vec!["deb1".into()],
        iqn_prefix: Some("iqn.san1.klasse.kurs".into()),
        luns: vec![0, 1],
        portal: None,
        count: Thresholds::default(),
    });
    // This machine has no iSCSI sessions: iscsiadm exits 21, which is "none".
    let out = rt().block_on(run_native(&check));
    assert_eq!(out.state, State::Critical, "{out:#?}");
    assert!(
        out.output
            .contains("no session to iqn.san1.klasse.kurs:deb1"),
        "{}",
        out.output
    );
    assert_eq!(out.perfdata[0].label, "sessions");
    assert_eq!(out.perfdata[0].value, 0.0);
}

// ---------------------------------------------------------------- virsh

const NODE_XML: &str = "<node>
  <domain type='test'><name>deb1</name><memory>262144</memory><os><type>hvm</type></os></domain>
  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
    <name>win3</name><memory>524288</memory><os><type>hvm</type></os><test:runstate>5</test:runstate>
  </domain>
</node>
";

const NODE2_XML: &str = "<node>
  <domain type='test'><name>win3</name><memory>524288</memory><os><type>hvm</type></os></domain>
  <domain type='test'><name>deb1</name><memory>262144</memory><os><type>hvm</type></os></domain>
</node>
";

#[test]
fn virsh_test_driver_two_servers() {
    require_tool("virsh", "libvirt-clients");
    let dir = tempfile::tempdir().expect("tempdir");
    let cs1 = dir.path().join("cs1.xml");
    let cs2 = dir.path().join("cs2.xml");
    std::fs::write(&cs1, NODE_XML).expect("write");
    std::fs::write(&cs2, NODE2_XML).expect("write");
    let list = |xml: &Path| {
        let uri = format!("test://{}", xml.display());
        Source::command(Origin::Local, &["virsh", "-c", &uri, "list", "--all"])
    };
    let rt = rt();
    let text1 = rt.block_on(gather(&list(&cs1))).expect("virsh cs1");
    let text2 = rt.block_on(gather(&list(&cs2))).expect("virsh cs2");
    let opts = |expect: &[&str]| DomainsCheck {
        servers: Vec::new(),
        tool: DomainTool::Virsh,
        connect: None,
        expect: expect.iter().map(|s| s.to_string()).collect(),
        absent_warning: false,
    };
    // cs1 alone: deb1 runs, win3 is shut off.
    let out = domains::evaluate(
        &[("cs1".into(), Ok(domains::parse(&text1)))],
        &opts(&["deb1", "win3"]),
    );
    assert_eq!(out.state, State::Critical, "{text1}\n{out:#?}");
    assert!(out.output.contains("win3 runs nowhere"), "{}", out.output);
    // Both: deb1 on two servers.
    let out = domains::evaluate(
        &[
            ("cs1".into(), Ok(domains::parse(&text1))),
            ("cs2".into(), Ok(domains::parse(&text2))),
        ],
        &opts(&["deb1", "win3"]),
    );
    assert_eq!(out.state, State::Critical, "{out:#?}");
    assert!(
        out.output.contains("deb1 runs on cs1 and cs2 at once"),
        "{}",
        out.output
    );
    assert!(
        !out.output.contains("win3"),
        "win3 runs on cs2 only: {}",
        out.output
    );

    // In-process, through the check's own gathering: the default test node
    // seen from two "servers" has its domain `test` on both.
    let out = rt.block_on(run_native(&StackCheck::Domains(DomainsCheck {
        servers: vec![("cs1".into(), Origin::Local), ("cs2".into(), Origin::Local)],
        tool: DomainTool::Virsh,
        connect: Some("test:///default".into()),
        expect: vec!["test".into()],
        absent_warning: false,
    })));
    assert_eq!(out.state, State::Critical, "{out:#?}");
    assert!(
        out.output.contains("test runs on cs1 and cs2 at once"),
        "{}",
        out.output
    );
}

// ---------------------------------------------------------------- ip addr

#[test]
fn cluster_ip_from_ip_addr() {
    require_tool("ip", "iproute2");
    let rt = rt();
    let check = |ip: &str, n: usize| {
        StackCheck::ClusterIp(ClusterIpCheck {
            ip: ip.into(),
            servers: (1..=n)
                .map(|i| (format!("san{i}"), Origin::Local))
                .collect(),
        })
    };
    let out = rt.block_on(run_native(&check("127.0.0.1", 1)));
    assert_eq!(out.state, State::Ok, "{out:#?}");
    assert!(
        out.output.contains("127.0.0.1 held by san1 (lo)"),
        "{}",
        out.output
    );
    let out = rt.block_on(run_native(&check("127.0.0.1", 2)));
    assert_eq!(out.state, State::Critical, "{out:#?}");
    assert!(
        out.output.contains("held by 2 servers at once"),
        "{}",
        out.output
    );
    let out = rt.block_on(run_native(&check("192.0.2.77", 2)));
    assert_eq!(out.state, State::Critical, "{out:#?}");
    assert!(out.output.contains("held by no server"), "{}", out.output);
}

// ---------------------------------------------------------------- drbd

#[test]
fn drbdsetup_without_the_kernel_module() {
    require_tool("drbdsetup", "drbd-utils");
    assert!(
        !Path::new("/proc/drbd").exists(),
        "this test expects a machine without DRBD loaded"
    );
    let out = rt().block_on(run_native(&StackCheck::Drbd(DrbdCheck::default())));
    assert_eq!(out.state, State::Unknown, "{out:#?}");
    assert!(out.output.contains("drbdsetup status"), "{}", out.output);
    let out = rt().block_on(run_native(&StackCheck::Drbd(DrbdCheck {
        proc_drbd: true,
        ..DrbdCheck::default()
    })));
    assert_eq!(out.state, State::Unknown, "{out:#?}");
    assert!(
        out.output.contains("cannot read /proc/drbd"),
        "{}",
        out.output
    );
}
