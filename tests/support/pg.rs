//! A fresh PostgreSQL database for every test.
//!
//! With `LAXMON_TEST_DATABASE_URL` set (a URL of a role that may create
//! databases), tests create their databases there. Otherwise the first test
//! that asks starts one throwaway cluster for this test process from the
//! installed server binaries: `initdb` into a temporary directory, `pg_ctl
//! start` on 127.0.0.1 and a free port, as an unprivileged user when the
//! tests run as root; it is stopped and removed when the process exits.
//! [`OwnCluster`] is a separate cluster a test controls (stop, restart) for
//! outage tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// A database that exists for one test; dropped (best effort) with the value.
pub struct TestDb {
    /// Connection URL of the test's own database.
    pub url: String,
    /// Its name.
    pub name: String,
    admin_url: String,
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin = self.admin_url.clone();
        let name = self.name.clone();
        // Drop on a thread of its own: a test's runtime may be shutting down.
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(async {
                    if let Ok((client, conn)) =
                        tokio_postgres::connect(&admin, tokio_postgres::NoTls).await
                    {
                        tokio::spawn(conn);
                        let _ = client
                            .execute(
                                &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
                                &[],
                            )
                            .await;
                    }
                });
            }
        })
        .join();
    }
}

static ADMIN_URL: OnceLock<String> = OnceLock::new();
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Creates a new, empty database for the calling test and returns its URL.
pub async fn fresh_database() -> TestDb {
    let admin_url = admin_url().to_string();
    let name = format!(
        "laxmon_test_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    );
    let (client, conn) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test PostgreSQL at {admin_url}: {e}"));
    tokio::spawn(conn);
    client
        .execute(&format!("CREATE DATABASE \"{name}\""), &[])
        .await
        .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
    TestDb {
        url: with_database(&admin_url, &name),
        name,
        admin_url,
    }
}

/// The admin URL: `LAXMON_TEST_DATABASE_URL`, or a cluster started for this process.
pub fn admin_url() -> &'static str {
    ADMIN_URL.get_or_init(|| match std::env::var("LAXMON_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => start_cluster(),
    })
}

/// Replaces the database part of a postgres URL.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    format!("{base}/{db}{query}")
}

struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    root: PathBuf,
    user: Option<(u32, u32)>,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();

fn find_server_bin() -> PathBuf {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    candidates.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    if let Some(dir) = candidates
        .into_iter()
        .rev()
        .find(|d| d.join("initdb").exists() && d.join("pg_ctl").exists())
    {
        return dir;
    }
    if let Ok(path) = std::env::var("PATH") {
        for dir in path.split(':') {
            let d = Path::new(dir);
            if d.join("initdb").exists() && d.join("pg_ctl").exists() {
                return d.to_path_buf();
            }
        }
    }
    panic!(
        "PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin or PATH.\n\
         Install them (Debian: apt-get install postgresql) or point LAXMON_TEST_DATABASE_URL at a server \
         where the user may create databases (postgres://USER@127.0.0.1:5432/postgres)."
    )
}

/// The uid/gid to run the server as when we are root: `postgres` if it exists, else `nobody`.
fn unprivileged_user() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    for wanted in ["postgres", "nobody"] {
        for line in passwd.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() > 3 && f[0] == wanted {
                if let (Ok(uid), Ok(gid)) = (f[2].parse(), f[3].parse()) {
                    return Some((uid, gid));
                }
            }
        }
    }
    panic!("running as root, but neither user postgres nor nobody exists to run the test PostgreSQL server")
}

fn run_as(cluster_user: Option<(u32, u32)>, cmd: &mut Command) -> std::process::Output {
    use std::os::unix::process::CommandExt;
    if let Some((uid, gid)) = cluster_user {
        cmd.uid(uid).gid(gid);
    }
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

extern "C" fn stop_cluster_at_exit() {
    if let Some(c) = CLUSTER.get() {
        let _ = pg_ctl_stop(&c.bin, &c.data, c.user, "immediate");
        let _ = std::fs::remove_dir_all(&c.root);
    }
}

/// Runs `initdb` into `root/data` (as the unprivileged user when root) and
/// returns the server binaries' directory, the data directory and the user.
fn init_cluster(root: &Path) -> (PathBuf, PathBuf, Option<(u32, u32)>) {
    let bin = find_server_bin();
    let user = unprivileged_user();
    let data = root.join("data");
    std::fs::create_dir_all(root).expect("create the test cluster directory");
    if let Some((uid, gid)) = user {
        std::os::unix::fs::chown(root, Some(uid), Some(gid))
            .expect("chown the test cluster directory");
    }
    let out = run_as(
        user,
        Command::new(bin.join("initdb"))
            .args([
                "-A",
                "trust",
                "-U",
                "laxmon",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&data)
            .env("LC_ALL", "C"),
    );
    assert!(
        out.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (bin, data, user)
}

/// `pg_ctl start` on 127.0.0.1:`port`, socket and log in `root`, with
/// `extra` server options (`-c name=value ...`).
fn pg_ctl_start(
    bin: &Path,
    data: &Path,
    root: &Path,
    user: Option<(u32, u32)>,
    port: u16,
    extra: &str,
) {
    let opts = format!(
        "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 {extra}",
        root.display()
    );
    let out = run_as(
        user,
        Command::new(bin.join("pg_ctl"))
            .args(["start", "-w", "-t", "60", "-D"])
            .arg(data)
            .arg("-l")
            .arg(root.join("server.log"))
            .args(["-o", &opts]),
    );
    assert!(
        out.status.success(),
        "pg_ctl start failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(root.join("server.log")).unwrap_or_default()
    );
}

/// `pg_ctl stop` with the given shutdown mode (`fast`, `immediate`).
fn pg_ctl_stop(bin: &Path, data: &Path, user: Option<(u32, u32)>, mode: &str) -> bool {
    let mut cmd = Command::new(bin.join("pg_ctl"));
    cmd.args(["stop", "-m", mode, "-w", "-D"]).arg(data);
    run_as(user, &mut cmd).status.success()
}

fn start_cluster() -> String {
    let root =
        std::env::temp_dir().join(format!("laxmon-pg-{}-{}", std::process::id(), free_port()));
    let (bin, data, user) = init_cluster(&root);
    let port = free_port();
    pg_ctl_start(&bin, &data, &root, user, port, "");
    let _ = CLUSTER.set(Cluster {
        bin,
        data,
        root,
        user,
    });
    // SAFETY: registering a plain extern "C" function with no captured state.
    unsafe {
        libc::atexit(stop_cluster_at_exit);
    }
    format!("postgres://laxmon@127.0.0.1:{port}/postgres")
}

/// A PostgreSQL cluster of a test's own, which the test may stop and start
/// again (outage tests) or configure before starting (TLS tests); always on
/// the server binaries, never on `LAXMON_TEST_DATABASE_URL`. Stopped and
/// removed on drop.
pub struct OwnCluster {
    bin: PathBuf,
    data: PathBuf,
    root: PathBuf,
    user: Option<(u32, u32)>,
    port: u16,
    options: String,
}

impl OwnCluster {
    /// Creates and starts a new cluster on a free port.
    pub fn start() -> OwnCluster {
        let c = OwnCluster::init();
        c.start_server();
        c
    }

    /// Creates a new cluster (`initdb`) without starting it.
    pub fn init() -> OwnCluster {
        static N: AtomicU32 = AtomicU32::new(0);
        let root = std::env::temp_dir().join(format!(
            "laxmon-own-pg-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&root);
        let (bin, data, user) = init_cluster(&root);
        OwnCluster {
            bin,
            data,
            root,
            user,
            port: free_port(),
            options: String::new(),
        }
    }

    /// The data directory (for `pg_hba.conf` and the like).
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The uid/gid the server runs as (files it must own), `None` when not root.
    pub fn server_user(&self) -> Option<(u32, u32)> {
        self.user
    }

    /// Extra server options (`-c name=value ...`) for the next start.
    pub fn set_server_options(&mut self, options: &str) {
        self.options = options.to_string();
    }

    /// URL of its `postgres` database (superuser `laxmon`, trust auth).
    pub fn url(&self) -> String {
        format!("postgres://laxmon@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server (`pg_ctl stop -m fast`: connections are cut).
    pub fn stop(&self) {
        assert!(
            pg_ctl_stop(&self.bin, &self.data, self.user, "fast"),
            "pg_ctl stop failed"
        );
    }

    /// Starts the (stopped or never started) server, always on the same port.
    pub fn start_server(&self) {
        pg_ctl_start(
            &self.bin,
            &self.data,
            &self.root,
            self.user,
            self.port,
            &self.options,
        );
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = pg_ctl_stop(&self.bin, &self.data, self.user, "immediate");
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
