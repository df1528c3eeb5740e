//! The hypervisor drivers: `sim` fully; `command` against recording scripts;
//! `xl` and `virsh` against fake toolstacks reached over a real sshd on
//! loopback. The fakes record their argv so the exact commands are asserted,
//! and print real `xl list` / `virsh list --all` output.

use laxmon::cluster::drivers::sim::{self, ServerState, SimDriver};
use laxmon::cluster::drivers::{self, command::CommandDriver, Driver, DriverError, RunningVm};
use laxmon::config::{
    ClusterConfig, CommandTemplates, DriverConfig, ServerConfig, SshSettings, VmConfig,
};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn words(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn server(name: &str, address: &str, ssh: Option<&str>) -> ServerConfig {
    ServerConfig {
        name: name.into(),
        address: address.into(),
        ssh: ssh.map(Into::into),
        memory_mb: 4096,
        reserve_mb: 0,
        alive: None,
        fence: None,
    }
}

fn vm(name: &str, memory_mb: u64, home: Option<&str>) -> VmConfig {
    VmConfig {
        name: name.into(),
        memory_mb,
        priority: 0,
        home: home.map(Into::into),
        allowed_hosts: None,
        anti_affinity: None,
    }
}

fn cluster(driver: DriverConfig, servers: Vec<ServerConfig>, vms: Vec<VmConfig>) -> ClusterConfig {
    ClusterConfig {
        name: "lax".into(),
        driver,
        servers,
        vms,
        max_parallel_migrations: 1,
        dry_run: false,
        allow_unfenced: false,
        restart_on_return: false,
        state_dir: PathBuf::from("unused"),
        operation_timeout: Duration::from_secs(20),
        shutdown_timeout: Duration::from_secs(20),
        fence_timeout: Duration::from_secs(20),
        ssh: SshSettings::default(),
    }
}

fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn names(vms: &[RunningVm]) -> Vec<&str> {
    vms.iter().map(|v| v.name.as_str()).collect()
}

// ---- sim ----

fn sim_cluster(state: &Path) -> ClusterConfig {
    cluster(
        DriverConfig::Sim {
            state: state.to_path_buf(),
            delay: Duration::ZERO,
        },
        vec![
            server("cs1", "127.0.0.1", None),
            server("cs2", "127.0.0.1", None),
        ],
        vec![
            vm("t1", 1024, Some("cs1")),
            vm("win3", 3072, Some("cs2")),
            vm("big", 3000, None),
        ],
    )
}

#[tokio::test]
async fn sim_lists_moves_starts_and_stops() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("sim.json");
    let c = sim_cluster(&state);
    let d = drivers::build(&c);
    assert_eq!(names(&d.list("cs1").await.expect("list")), vec!["t1"]);
    assert_eq!(
        d.list("cs2").await.expect("list")[0],
        RunningVm {
            name: "win3".into(),
            memory_mb: Some(3072)
        }
    );
    d.migrate("t1", "cs1", "cs2").await.expect("migrate");
    assert!(d.list("cs1").await.expect("list").is_empty());
    assert_eq!(
        names(&d.list("cs2").await.expect("list")),
        vec!["t1", "win3"]
    );
    d.shutdown("t1", "cs2", Duration::from_secs(1))
        .await
        .expect("shutdown");
    d.start("t1", "cs1").await.expect("start");
    d.destroy("t1", "cs1").await.expect("destroy");
    let s = sim::load(&state).expect("load");
    let ops: Vec<(&str, bool)> = s.history.iter().map(|e| (e.op.as_str(), e.ok)).collect();
    assert_eq!(
        ops,
        vec![
            ("migrate", true),
            ("shutdown", true),
            ("start", true),
            ("destroy", true)
        ]
    );
}

#[tokio::test]
async fn sim_refuses_a_second_start_and_overfilling() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("sim.json");
    let d = drivers::build(&sim_cluster(&state));
    let e = d.start("t1", "cs2").await.expect_err("t1 runs on cs1");
    assert!(e.to_string().contains("already runs on cs1"), "{e}");
    let e = d.start("big", "cs2").await.expect_err("cs2 is too full");
    assert!(e.to_string().contains("1024 MB free"), "{e}");
    let e = d
        .migrate("win3", "cs1", "cs2")
        .await
        .expect_err("not there");
    assert!(matches!(e, DriverError::Refused(_)), "{e}");
    let s = sim::load(&state).expect("load");
    assert_eq!(s.history.len(), 3);
    assert!(s.history.iter().all(|e| !e.ok && !e.note.is_empty()));
}

#[tokio::test]
async fn sim_partition_keeps_vms_and_refuses_their_start_until_fenced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("sim.json");
    let d = drivers::build(&sim_cluster(&state));
    d.list("cs1").await.expect("creates the state");
    sim::fail(&state, "cs2", true).expect("partition");
    assert!(!sim::alive(&state, "cs2").expect("alive"));
    let e = d.list("cs2").await.expect_err("unreachable");
    assert!(matches!(e, DriverError::Unreachable { .. }), "{e}");
    let e = d.start("win3", "cs1").await.expect_err("still runs on cs2");
    assert!(e.to_string().contains("already runs on cs2"), "{e}");
    let msg = sim::fence(&state, "cs2").expect("fence");
    assert!(msg.contains("win3"), "{msg}");
    d.start("win3", "cs1").await.expect("start after fencing");
    sim::revive(&state, "cs2").expect("revive");
    assert!(sim::alive(&state, "cs2").expect("alive"));
    assert!(d.list("cs2").await.expect("list").is_empty());
    let s = sim::load(&state).expect("load");
    assert_eq!(s.server("cs2").map(|s| s.state), Some(ServerState::Up));
}

#[tokio::test]
async fn sim_crash_kills_the_vms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("sim.json");
    let d = drivers::build(&sim_cluster(&state));
    d.list("cs1").await.expect("creates the state");
    let msg = sim::fail(&state, "cs1", false).expect("fail");
    assert!(msg.contains("t1"), "{msg}");
    d.start("t1", "cs2").await.expect("t1 died with cs1");
}

#[tokio::test]
async fn sim_lock_lets_exactly_one_of_racing_starts_win() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("sim.json");
    let c = sim_cluster(&state);
    drivers::build(&c)
        .list("cs1")
        .await
        .expect("creates the state");
    let mut tasks = Vec::new();
    for i in 0..16 {
        let d = SimDriver::new(state.clone(), Duration::ZERO, None);
        let target = if i % 2 == 0 { "cs1" } else { "cs2" };
        tasks.push(tokio::spawn(async move {
            d.start("big", target).await.is_ok() || d.start("big", "cs1").await.is_ok()
        }));
    }
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.expect("task"));
    }
    assert_eq!(wins, 1, "exactly one start of `big` succeeds");
    let s = sim::load(&state).expect("load");
    assert_eq!(s.history.iter().filter(|e| e.ok).count(), 1);
}

// ---- command ----

#[tokio::test]
async fn command_driver_runs_the_templates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("log");
    let fake = dir.path().join("vx");
    script(
        &fake,
        &format!(
            "echo \"$*\" >> {log}\ncase \"$1\" in list) printf '# VMs on %s\\nclamxp2 1024\\nnewjoomla\\n' \"$3\";; fail) echo 'vx: no such VM' >&2; exit 3;; esac",
            log = log.display()
        ),
    );
    let f = fake.to_string_lossy().to_string();
    let t = |rest: &[&str]| {
        let mut v = vec![f.clone()];
        v.extend(words(rest));
        v
    };
    let templates = CommandTemplates {
        list: t(&["list", "{cluster}", "{host}"]),
        migrate: t(&["vx-move", "{cluster}", "{vm}", "{target}"]),
        start: t(&["vx-start", "{cluster}", "{vm}"]),
        shutdown: t(&["vx-stop", "{cluster}", "{vm}"]),
        destroy: t(&["fail", "{vm}"]),
    };
    let c = cluster(
        DriverConfig::Command(templates.clone()),
        vec![server("cs1", "cs1", None), server("cs2", "cs2", None)],
        vec![],
    );
    let d = CommandDriver::new(&c, templates);
    let vms = d.list("cs1").await.expect("list");
    assert_eq!(names(&vms), vec!["clamxp2", "newjoomla"]);
    assert_eq!(vms[0].memory_mb, Some(1024));
    assert_eq!(vms[1].memory_mb, None);
    d.migrate("t1", "cs1", "cs2").await.expect("migrate");
    d.start("win3", "cs2").await.expect("start");
    d.shutdown("debtest", "cs1", Duration::from_secs(5))
        .await
        .expect("shutdown");
    let e = d.destroy("t1", "cs1").await.expect_err("exit 3");
    assert!(e.to_string().contains("exit 3: vx: no such VM"), "{e}");
    let logged = std::fs::read_to_string(&log).expect("log");
    assert_eq!(
        logged,
        "list lax cs1\nvx-move lax t1 cs2\nvx-start lax win3\nvx-stop lax debtest\nfail t1\n"
    );
}

// ---- xl and virsh over a real sshd ----

/// A private sshd on loopback whose sessions find our fakes first on PATH.
struct Sshd {
    dir: tempfile::TempDir,
    sshd: Child,
}

impl Sshd {
    async fn start(bin: &Path) -> Sshd {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        for key in ["host_key", "client_key"] {
            let ok = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(d.join(key))
                .status()
                .expect("ssh-keygen");
            assert!(ok.success());
        }
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).expect("keys");
        std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let config = format!(
            "ListenAddress 127.0.0.1\nPort {port}\nHostKey {dir}/host_key\n\
             AuthorizedKeysFile {dir}/authorized_keys\nPidFile {dir}/sshd.pid\n\
             UsePAM no\nStrictModes no\nPermitRootLogin yes\nPasswordAuthentication no\n\
             SetEnv PATH={bin}:/usr/sbin:/usr/bin:/sbin:/bin\n",
            dir = d.display(),
            bin = bin.display()
        );
        std::fs::write(d.join("sshd_config"), config).expect("sshd_config");
        let log = std::fs::File::create(d.join("sshd.log")).expect("log");
        let sshd = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start sshd");
        std::fs::write(d.join("port"), port.to_string()).expect("port file");
        let me = Sshd { dir, sshd };
        for _ in 0..200 {
            if me.log().contains("Server listening on") {
                return me;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("sshd did not start: {}", me.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    fn settings(&self) -> SshSettings {
        let d = self.dir.path();
        let port = std::fs::read_to_string(d.join("port")).expect("port");
        SshSettings {
            control_dir: d.join("c"),
            connect_timeout: Duration::from_secs(5),
            control_persist: Duration::from_secs(5),
            options: words(&[
                "-i",
                &d.join("client_key").to_string_lossy(),
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "StrictHostKeyChecking=no",
                "-p",
                &port,
            ]),
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = Command::new("ssh")
            .arg("-o")
            .arg(format!("ControlPath={}/c/%C", self.dir.path().display()))
            .args(self.settings().options)
            .args(["-O", "exit", "root@127.0.0.1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.sshd.kill();
        let _ = self.sshd.wait();
    }
}

fn ssh_cluster(driver: DriverConfig, sshd: &Sshd) -> ClusterConfig {
    let mut c = cluster(
        driver,
        vec![
            // Migration targets are addresses only passed to the fakes.
            server("cs1", "127.0.0.11", Some("root@127.0.0.1")),
            server("cs2", "127.0.0.12", Some("root@127.0.0.1")),
        ],
        vec![],
    );
    c.ssh = sshd.settings();
    c
}

const XL_LIST: &str = "Name                                        ID   Mem VCPUs\tState\tTime(s)
Domain-0                                     0  2048     4     r-----   12345.6
clamxp2                                      3  1024     1     -b----     812.1
newjoomla                                   12  2048     2     r-----    4711.0";

#[tokio::test]
async fn xl_over_ssh_runs_the_xl_commands() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("xl.log");
    script(
        &dir.path().join("xl"),
        &format!(
            "echo \"xl $*\" >> {log}\ncase \"$1\" in list) cat <<'END'\n{XL_LIST}\nEND\n;; destroy) echo 'libxl: error: domain not found' >&2; exit 1;; esac",
            log = log.display()
        ),
    );
    let sshd = Sshd::start(dir.path()).await;
    let c = ssh_cluster(
        DriverConfig::Xl {
            config_dir: "/etc/xen".into(),
        },
        &sshd,
    );
    let d = drivers::build(&c);
    let vms = d.list("cs1").await.expect("xl list");
    assert_eq!(names(&vms), vec!["clamxp2", "newjoomla"]);
    assert_eq!(vms[1].memory_mb, Some(2048));
    d.migrate("clamxp2", "cs1", "cs2").await.expect("migrate");
    d.start("win3", "cs2").await.expect("create");
    d.shutdown("t1", "cs1", Duration::from_secs(10))
        .await
        .expect("shutdown");
    let e = d.destroy("t1", "cs1").await.expect_err("fake fails");
    assert!(e.to_string().contains("domain not found"), "{e}");
    let logged = std::fs::read_to_string(&log).expect("log");
    assert_eq!(
        logged,
        "xl list\nxl migrate clamxp2 127.0.0.12\nxl create /etc/xen/win3.cfg\nxl shutdown -w t1\nxl destroy t1\n"
    );
}

const VIRSH_LIST: &str = " Id   Name        State
-------------------------------
 1    debtest     running
 7    win3        paused
 -    winxpc12    shut off
";

#[tokio::test]
async fn virsh_over_ssh_runs_the_virsh_commands() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("virsh.log");
    let gone = dir.path().join("gone");
    script(
        &dir.path().join("virsh"),
        &format!(
            "echo \"virsh $*\" >> {log}\ncase \"$3\" in\n list) if [ -e {gone} ]; then printf ' Id Name State\\n---\\n'; else cat <<'END'\n{VIRSH_LIST}\nEND\nfi;;\n dominfo) printf 'Name: %s\\nMax memory:     2097152 KiB\\nUsed memory:    1048576 KiB\\n' \"$4\";;\n shutdown) touch {gone};;\nesac",
            log = log.display(),
            gone = gone.display()
        ),
    );
    let sshd = Sshd::start(dir.path()).await;
    let c = ssh_cluster(
        DriverConfig::Virsh {
            uri: "qemu:///system".into(),
        },
        &sshd,
    );
    let d = drivers::build(&c);
    let vms = d.list("cs1").await.expect("virsh list");
    assert_eq!(names(&vms), vec!["debtest", "win3"]);
    assert_eq!(vms[0].memory_mb, Some(1024));
    d.migrate("debtest", "cs1", "cs2").await.expect("migrate");
    d.start("winxpc12", "cs2").await.expect("start");
    d.shutdown("win3", "cs1", Duration::from_secs(10))
        .await
        .expect("shutdown waits until it is gone");
    d.destroy("t1", "cs1").await.expect("destroy");
    let logged = std::fs::read_to_string(&log).expect("log");
    assert_eq!(
        logged,
        "virsh -c qemu:///system list --all\n\
         virsh -c qemu:///system dominfo debtest\n\
         virsh -c qemu:///system dominfo win3\n\
         virsh -c qemu:///system migrate --live debtest qemu+ssh://127.0.0.12/system\n\
         virsh -c qemu:///system start winxpc12\n\
         virsh -c qemu:///system shutdown win3\n\
         virsh -c qemu:///system list --all\n\
         virsh -c qemu:///system destroy t1\n"
    );
}

#[tokio::test]
async fn an_unreachable_server_is_unreachable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let mut c = cluster(
        DriverConfig::Xl {
            config_dir: "/etc/xen".into(),
        },
        vec![server("cs1", "127.0.0.1", Some("root@127.0.0.1"))],
        vec![],
    );
    c.ssh = SshSettings {
        control_dir: dir.path().join("c"),
        connect_timeout: Duration::from_secs(2),
        control_persist: Duration::from_secs(1),
        options: words(&[
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-p",
            &port.to_string(),
        ]),
    };
    let e = drivers::build(&c)
        .list("cs1")
        .await
        .expect_err("closed port");
    assert!(matches!(e, DriverError::Unreachable { .. }), "{e}");
}
