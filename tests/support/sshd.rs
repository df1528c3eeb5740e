//! A private OpenSSH server on loopback for tests of remote checks.

use laxmon::checks::location::Location;
use laxmon::ssh::SshOptions;
use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn words(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A private sshd on loopback plus the client options that reach it.
pub struct Sshd {
    dir: tempfile::TempDir,
    /// The port it listens on.
    pub port: u16,
    sshd: Child,
}

impl Sshd {
    /// Starts sshd on 127.0.0.1 and a free port, with fresh host and client keys.
    pub fn start() -> Sshd {
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
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys"))
            .expect("authorized_keys");
        // sshd's privilege separation directory.
        std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
        let port = super::free_port();
        let config = format!(
            "ListenAddress 127.0.0.1\nPort {port}\nHostKey {dir}/host_key\n\
             AuthorizedKeysFile {dir}/authorized_keys\nPidFile {dir}/sshd.pid\n\
             UsePAM no\nStrictModes no\nPermitRootLogin yes\nPasswordAuthentication no\n",
            dir = d.display()
        );
        std::fs::write(d.join("sshd_config"), config).expect("sshd_config");
        let log = std::fs::File::create(d.join("sshd.log")).expect("log");
        let sshd = Command::new("/usr/sbin/sshd")
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start sshd");
        let me = Sshd { dir, port, sshd };
        for _ in 0..200 {
            if me.log().contains("Server listening on") {
                return me;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("sshd did not start: {}", me.log());
    }

    /// sshd's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// A ControlMaster socket directory for clients of this sshd.
    pub fn control_dir(&self) -> PathBuf {
        self.dir.path().join("c")
    }

    /// Client options: our key, no known_hosts, the sshd's port.
    pub fn options(&self) -> SshOptions {
        let mut o = SshOptions::new(self.control_dir());
        o.connect_timeout = Duration::from_secs(5);
        o.extra_args = self.client_args();
        o
    }

    /// ssh arguments that reach this sshd: key, no known_hosts, port.
    pub fn client_args(&self) -> Vec<String> {
        words(&[
            "-i",
            &self.dir.path().join("client_key").to_string_lossy(),
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "StrictHostKeyChecking=no",
            "-p",
            &self.port.to_string(),
        ])
    }

    /// A remote location on this sshd as root.
    pub fn location(&self) -> Location {
        Location::Ssh {
            destination: "root@127.0.0.1".into(),
            options: self.options(),
        }
    }

    /// `ssh -O CMD` against the master for our destination; true on success.
    pub fn control(&self, cmd: &str) -> bool {
        Command::new("ssh")
            .arg("-o")
            .arg(format!("ControlPath={}/%C", self.control_dir().display()))
            .args(self.client_args())
            .args(["-O", cmd, "root@127.0.0.1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// ControlMaster sockets now open.
    pub fn control_sockets(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.control_dir())
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_socket()))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Successful logins so far.
    pub fn logins(&self) -> usize {
        self.log().matches("Accepted publickey").count()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.control("exit");
        let _ = self.sshd.kill();
        let _ = self.sshd.wait();
    }
}
