//! Where a stack check gets its raw text: a file or a command, run locally,
//! over SSH, or replaced by a captured file.
//!
//! This is the only I/O of the stack checks. [`gather`] runs programs
//! through the process runner ([`crate::process`]: no shell, a process
//! group of their own, killed when dropped) and reaches other hosts through
//! [`crate::ssh`], with the options the daemon passes in the environment
//! ([`SshOptions::from_env`]: `engine.ssh` and its shared master
//! connections), or `engine.ssh`'s defaults when run by hand. It never
//! parses what it fetched and never retries.

use crate::process::{self, End, RunOptions};
use crate::ssh::{self, Destination, SshError, SshOptions};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// Where the text comes from: this machine, an SSH destination, or a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Read the file or run the command on this machine.
    Local,
    /// Read the file or run the command over SSH on this destination
    /// (`[user@]host` or `ssh://[user@]host[:port]`, validated).
    Ssh(String),
    /// Ignore the fetch and read this file instead (captured output, tests);
    /// a directory holds one file per fetched file, by its name (`DIR/bond0`).
    Captured(PathBuf),
}

impl Origin {
    /// Parses `local`, `ssh://[user@]host[:port]`, `[user@]host` (SSH) or `file:PATH`.
    pub fn parse(s: &str) -> Result<Origin, GatherError> {
        let s = s.trim();
        let bad = || GatherError::BadOrigin(s.to_string());
        if s.is_empty() {
            return Err(bad());
        }
        if s == "local" {
            return Ok(Origin::Local);
        }
        if let Some(path) = s.strip_prefix("file:") {
            if path.is_empty() {
                return Err(bad());
            }
            return Ok(Origin::Captured(PathBuf::from(path)));
        }
        Destination::parse(s).map_err(|_| bad())?;
        Ok(Origin::Ssh(s.to_string()))
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Local => f.write_str("local"),
            Origin::Ssh(dest) => f.write_str(dest),
            Origin::Captured(p) => write!(f, "file:{}", p.display()),
        }
    }
}

/// What to fetch: a file's content or a command's standard output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetch {
    /// A file such as `/proc/drbd` (`cat` over SSH).
    File(PathBuf),
    /// A program and its arguments, run with `LC_ALL=C`.
    Command(Vec<String>),
}

impl fmt::Display for Fetch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fetch::File(p) => write!(f, "{}", p.display()),
            Fetch::Command(argv) => f.write_str(&shell_words::join(argv)),
        }
    }
}

/// One piece of raw text to gather: what, and from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Where it is fetched.
    pub origin: Origin,
    /// What is fetched.
    pub fetch: Fetch,
}

impl Source {
    /// A source for `fetch` at `origin`.
    pub fn new(origin: Origin, fetch: Fetch) -> Source {
        Source { origin, fetch }
    }

    /// A command given as words.
    pub fn command(origin: Origin, argv: &[&str]) -> Source {
        Source::new(
            origin,
            Fetch::Command(argv.iter().map(|s| s.to_string()).collect()),
        )
    }

    /// A file.
    pub fn file(origin: Origin, path: impl Into<PathBuf>) -> Source {
        Source::new(origin, Fetch::File(path.into()))
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Origin::Captured(p) => write!(f, "{}", p.display()),
            other => write!(f, "`{}` on {other}", self.fetch),
        }
    }
}

/// Why raw text could not be gathered.
#[derive(Debug, thiserror::Error)]
pub enum GatherError {
    /// The origin string is not `local`, `ssh://...`, `user@host` or `file:PATH`.
    #[error(
        "{0:?} is not a source: use local, ssh://[user@]host[:port], [user@]host or file:PATH"
    )]
    BadOrigin(String),
    /// A local file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A program could not be started.
    #[error("cannot run {program}: {source} (is it installed and in PATH?)")]
    Spawn {
        /// The program (`ssh` for remote sources).
        program: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The command ran and failed.
    #[error("{what} exited with {}: {}", code.map(|c| c.to_string()).unwrap_or_else(|| "a signal".into()), last_line(stderr))]
    Failed {
        /// The command and where it ran.
        what: String,
        /// Exit code; `None` when killed by a signal. SSH itself fails with 255.
        code: Option<i32>,
        /// Its standard output (some tools report on stdout and still fail).
        stdout: String,
        /// Its standard error.
        stderr: String,
    },
    /// SSH could not reach the host (or its destination is invalid).
    #[error(transparent)]
    Ssh(#[from] SshError),
    /// A concurrent gather vanished (a bug; reported rather than panicking).
    #[error("gathering from {0} did not finish")]
    Lost(String),
}

/// The last non-empty line: tools end with their summary ("Failed to modprobe drbd").
fn last_line(s: &str) -> String {
    let line = s.lines().map(str::trim).rfind(|l| !l.is_empty());
    line.unwrap_or("(no message)").to_string()
}

/// Fetches the raw text of `source`. Commands run without a shell; over
/// SSH the remote shell gets one quoted command line, run with `LC_ALL=C`.
pub async fn gather(source: &Source) -> Result<String, GatherError> {
    match (&source.origin, &source.fetch) {
        (Origin::Captured(path), fetch) => read(&captured_file(path, fetch).await).await,
        (Origin::Local, Fetch::File(path)) => read(path).await,
        (Origin::Local, Fetch::Command(argv)) => run(None, argv, &source.to_string()).await,
        (Origin::Ssh(dest), fetch) => {
            run(Some(dest), &remote_words(fetch), &source.to_string()).await
        }
    }
}

/// Reads a local file, lossily as UTF-8.
async fn read(path: &Path) -> Result<String, GatherError> {
    tokio::fs::read(path)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .map_err(|e| GatherError::Read {
            path: path.to_path_buf(),
            source: e,
        })
}

/// The file a captured source stands for: PATH itself, or, when PATH is a
/// directory and a file is fetched, the file of that name in it
/// (`DIR/bond0` for `/proc/net/bonding/bond0`).
async fn captured_file(path: &Path, fetch: &Fetch) -> PathBuf {
    if let Fetch::File(wanted) = fetch {
        if let Some(name) = wanted.file_name() {
            if tokio::fs::metadata(path).await.is_ok_and(|m| m.is_dir()) {
                return path.join(name);
            }
        }
    }
    path.to_path_buf()
}

/// Whether `origin` is one captured file (not a directory): it then stands
/// for every fetch, so a check that fetches several files cannot use it.
pub(crate) async fn is_one_captured_file(origin: &Origin) -> bool {
    match origin {
        Origin::Captured(path) => tokio::fs::metadata(path).await.is_ok_and(|m| !m.is_dir()),
        Origin::Local | Origin::Ssh(_) => false,
    }
}

/// The words run on the remote host for `fetch`.
pub(crate) fn remote_words(fetch: &Fetch) -> Vec<String> {
    match fetch {
        Fetch::File(p) => vec!["cat".into(), p.to_string_lossy().into_owned()],
        Fetch::Command(argv) => ["env", "LC_ALL=C"]
            .iter()
            .map(|s| s.to_string())
            .chain(argv.iter().cloned())
            .collect(),
    }
}

/// The SSH options of this process: from the daemon's environment, else defaults.
fn ssh_options() -> &'static SshOptions {
    static OPTIONS: OnceLock<SshOptions> = OnceLock::new();
    OPTIONS.get_or_init(|| SshOptions::from_env(|name| std::env::var(name).ok()))
}

/// Output kept of a gathering command (tool listings can be long).
const GATHER_CAP: usize = 16 * 1024 * 1024;

/// Runs `argv` here, or over SSH on `dest`, through the process runner (no
/// shell, own process group, `LC_ALL=C`); the caller bounds the time (a
/// dropped run kills its group).
async fn run(dest: Option<&str>, argv: &[String], what: &str) -> Result<String, GatherError> {
    let mut opts = RunOptions::new(Duration::from_secs(24 * 3600));
    opts.output_cap = GATHER_CAP;
    opts.env = vec![("LC_ALL".into(), "C".into())];
    let done = match dest {
        None => process::execute(argv, &opts)
            .await
            .map_err(|e| GatherError::Spawn {
                program: argv.first().cloned().unwrap_or_default(),
                source: std::io::Error::other(e.to_string()),
            })?,
        Some(dest) => ssh::execute(dest, ssh_options(), argv, &opts).await?,
    };
    let stdout = String::from_utf8_lossy(&done.stdout.bytes).into_owned();
    let code = match done.end {
        End::Exited(0) => return Ok(stdout),
        End::Exited(code) => Some(code),
        End::Signaled(_) | End::TimedOut(_) => None,
    };
    Err(GatherError::Failed {
        what: what.to_string(),
        code,
        stdout,
        stderr: String::from_utf8_lossy(&done.stderr.bytes).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let ssh = |d: &str| Some(Origin::Ssh(d.to_string()));
        let cases: &[(&str, Option<Origin>)] = &[
            ("local", Some(Origin::Local)),
            ("ssh://root@cs1", ssh("ssh://root@cs1")),
            ("ssh://root@cs1:2222", ssh("ssh://root@cs1:2222")),
            ("root@192.168.30.11", ssh("root@192.168.30.11")),
            ("ssh://[fe80::1]:22", ssh("ssh://[fe80::1]:22")),
            ("fe80::1", ssh("fe80::1")),
            ("file:/tmp/x", Some(Origin::Captured("/tmp/x".into()))),
            ("", None),
            ("file:", None),
            ("ssh://cs1:notaport", None),
            ("-oProxyCommand=x", None),
            ("root@-oProxyCommand=x", None),
        ];
        for (s, want) in cases {
            assert_eq!(Origin::parse(s).ok(), *want, "{s}");
        }
    }

    #[test]
    fn remote_command_lines() {
        let f = Fetch::Command(vec![
            "lvs".into(),
            "--separator".into(),
            ":".into(),
            "my vg".into(),
        ]);
        let words = remote_words(&f);
        assert_eq!(
            words,
            ["env", "LC_ALL=C", "lvs", "--separator", ":", "my vg"]
        );
        // Through the one SSH command builder, with the daemon's options.
        let mut opts = SshOptions::new("/run/laxmon/ssh");
        opts.extra_args = vec!["-i".into(), "/etc/laxmon/id".into()];
        let env: std::collections::HashMap<String, String> = opts.to_env().into_iter().collect();
        let from_env = SshOptions::from_env(|k| env.get(k).cloned());
        assert_eq!(from_env, opts);
        let argv = ssh::remote_argv("ssh://root@san1:2222", &from_env, &words).expect("argv");
        assert!(
            argv.contains(&"ControlPath=/run/laxmon/ssh/%C".to_string()),
            "{argv:?}"
        );
        assert!(
            argv.windows(2).any(|w| w == ["-i", "/etc/laxmon/id"]),
            "{argv:?}"
        );
        assert_eq!(
            argv.last().map(String::as_str),
            Some("env 'LC_ALL=C' lvs --separator : 'my vg'")
        );
        let f = Fetch::File("/proc/net/bonding/bond0".into());
        assert_eq!(remote_words(&f), ["cat", "/proc/net/bonding/bond0"]);
    }

    #[tokio::test]
    async fn local_command_and_file() {
        let src = Source::command(Origin::Local, &["sh", "-c", "echo hello"]);
        assert_eq!(gather(&src).await.unwrap(), "hello\n");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x");
        std::fs::write(&f, "content").unwrap();
        let src = Source::file(Origin::Local, &f);
        assert_eq!(gather(&src).await.unwrap(), "content");
        let captured = Source::command(Origin::Captured(f.clone()), &["false"]);
        assert_eq!(gather(&captured).await.unwrap(), "content");
        // A captured directory holds the fetched files by name.
        let dir_origin = Origin::Captured(dir.path().to_path_buf());
        let in_dir = Source::file(dir_origin.clone(), "/proc/net/bonding/x");
        assert_eq!(gather(&in_dir).await.unwrap(), "content");
        let absent = Source::file(dir_origin, "/proc/net/bonding/y");
        assert!(matches!(
            gather(&absent).await.unwrap_err(),
            GatherError::Read { path, .. } if path == dir.path().join("y")
        ));
    }

    #[tokio::test]
    async fn failures_say_what_failed() {
        let src = Source::command(Origin::Local, &["sh", "-c", "echo oops >&2; exit 21"]);
        let err = gather(&src).await.unwrap_err();
        assert!(matches!(err, GatherError::Failed { code: Some(21), .. }));
        assert!(err.to_string().contains("exited with 21: oops"), "{err}");
        let src = Source::command(Origin::Local, &["/nonexistent/laxmon-tool"]);
        assert!(matches!(
            gather(&src).await.unwrap_err(),
            GatherError::Spawn { .. }
        ));
        let src = Source::file(Origin::Local, "/nonexistent/laxmon-file");
        assert!(matches!(
            gather(&src).await.unwrap_err(),
            GatherError::Read { .. }
        ));
    }
}
