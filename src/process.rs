//! Runs external programs (plugins, init scripts, `ssh`, alarm scripts,
//! fence commands, stack tools) as supervised child processes: the one
//! process runner of laxmon, used by every caller.
//!
//! [`execute`] is the one place that spawns and supervises a child: no shell,
//! stdin from `/dev/null`, stdout and stderr captured up to a cap (the rest
//! is read and thrown away so the child never blocks on a full pipe), its own
//! process group so a timeout can kill the whole tree, and the child always
//! reaped. Callers give the [`Execution`] its meaning (the plugin API, LSB
//! exit codes, an action's outcome).
//!
//! Children never inherit variables meant for laxmon itself: systemd's
//! `NOTIFY_SOCKET`, `WATCHDOG_*` and `LISTEN_*`, and any variable registered
//! with [`withhold_from_children`] (the database password's).
//!
//! This module must never run a shell, never leave a process of a finished
//! run holding our pipes, never leave a zombie, and never wait on a child
//! longer than its timeout plus the short graces in [`RunOptions`]. It knows
//! nothing of checks, states or alarms.
//!
//! Leftover policy: when the program exits but something it started still
//! holds stdout or stderr open, we wait [`RunOptions::pipe_grace`] and then
//! SIGKILL the program's process group. Children that closed our pipes (or
//! left the group with `setsid`) are left alone. The process group id is the
//! program's pid; signalling it after the program was reaped is safe while a
//! group member still holds our pipe (the id cannot be reused while the group
//! exists), and the pid counter would have to wrap within the grace otherwise.

use std::borrow::Cow;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio::time::{sleep_until, Instant};

/// Variables of laxmon's own environment that no child inherits: systemd's
/// notification, watchdog and socket-activation protocol belongs to laxmon.
const WITHHELD: &[&str] = &[
    "NOTIFY_SOCKET",
    "WATCHDOG_PID",
    "WATCHDOG_USEC",
    "LISTEN_PID",
    "LISTEN_PIDFDID",
    "LISTEN_FDS",
    "LISTEN_FDNAMES",
];

/// Further variable names withheld from children (secrets named in the config).
static WITHHELD_EXTRA: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Withholds the variable `name` from every child started from now on
/// (e.g. the one that carries the database password).
pub fn withhold_from_children(name: &str) {
    let mut names = WITHHELD_EXTRA
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if !names.iter().any(|n| n == name) {
        names.push(name.to_string());
    }
}

/// Every variable name a child must not inherit.
fn withheld() -> Vec<String> {
    let extra = WITHHELD_EXTRA
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    WITHHELD
        .iter()
        .map(|s| s.to_string())
        .chain(extra.iter().cloned())
        .collect()
}

/// Bytes of stdout (and, separately, of stderr) kept by default; more is read and discarded.
pub const DEFAULT_OUTPUT_CAP: usize = 64 * 1024;

/// How to supervise one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOptions {
    /// Wall-clock limit for the plugin itself; then its process group gets SIGTERM.
    pub timeout: Duration,
    /// Bytes kept of stdout and of stderr each.
    pub output_cap: usize,
    /// Time between SIGTERM and SIGKILL after a timeout.
    pub kill_grace: Duration,
    /// Time the plugin's leftovers may keep its pipes open after it exited.
    pub pipe_grace: Duration,
    /// Extra environment variables, on top of laxmon's own.
    pub env: Vec<(String, String)>,
    /// Leave processes the program started and left running alone (a
    /// service an action restarted): stop reading their pipes after
    /// `pipe_grace` instead of killing them. Checks leave this off, so a
    /// plugin's stray children never outlive it.
    pub keep_leftovers: bool,
}

impl RunOptions {
    /// Options with the given timeout and default cap (64 KiB) and graces (1 s, 500 ms).
    pub fn new(timeout: Duration) -> RunOptions {
        RunOptions {
            timeout,
            output_cap: DEFAULT_OUTPUT_CAP,
            kill_grace: Duration::from_secs(1),
            pipe_grace: Duration::from_millis(500),
            env: Vec::new(),
            keep_leftovers: false,
        }
    }
}

/// Why a command could not be started (or supervised).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The argument vector is empty.
    #[error("empty command: nothing to run")]
    EmptyCommand,
    /// The program does not exist.
    #[error("{program} not found (no such file or directory)")]
    NotFound {
        /// The program as configured.
        program: String,
    },
    /// The program exists but its `#!` interpreter does not.
    #[error("{program} exists but its interpreter (the #! line) was not found")]
    InterpreterNotFound {
        /// The program as configured.
        program: String,
    },
    /// The program exists but may not be executed.
    #[error("{program} is not executable (permission denied)")]
    NotExecutable {
        /// The program as configured.
        program: String,
    },
    /// Any other failure to start the program.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program as configured.
        program: String,
        /// What the OS said.
        source: io::Error,
    },
    /// Waiting for the program failed (should not happen).
    #[error("cannot wait for {program}: {source}")]
    Wait {
        /// The program as configured.
        program: String,
        /// What the OS said.
        source: io::Error,
    },
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The program exited with this code.
    Exited(i32),
    /// The program was killed by this signal (not by us).
    Signaled(i32),
    /// The program ran longer than the timeout and its group was killed.
    TimedOut(Duration),
}

/// One captured stream: the kept bytes and how many were read in total.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captured {
    /// The first `output_cap` bytes.
    pub bytes: Vec<u8>,
    /// Every byte read, kept or not.
    pub total: u64,
}

impl Captured {
    /// Whether bytes were discarded because of the cap.
    pub fn truncated(&self) -> bool {
        self.total > self.bytes.len() as u64
    }

    /// The kept bytes as text, invalid UTF-8 replaced.
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.bytes)
    }

    /// Whether nothing but whitespace was captured.
    pub fn is_blank(&self) -> bool {
        self.bytes.iter().all(u8::is_ascii_whitespace)
    }
}

/// What one supervised run produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    /// The child's pid, which is also its process group id.
    pub pid: u32,
    /// How it ended.
    pub end: End,
    /// Captured stdout.
    pub stdout: Captured,
    /// Captured stderr.
    pub stderr: Captured,
    /// Whether leftovers still holding the pipes after the plugin exited were killed.
    pub leftovers_killed: bool,
}

/// `10s`, `1.5s`, `250ms`: a duration as a person would write it.
pub fn human_duration(d: Duration) -> String {
    if d.as_secs() == 0 {
        return format!("{}ms", d.as_millis());
    }
    if d.subsec_millis() == 0 {
        return format!("{}s", d.as_secs());
    }
    let s = format!("{:.3}", d.as_secs_f64());
    format!("{}s", s.trim_end_matches('0'))
}

/// The symbolic name of a signal number (`SIGKILL`), or `SIG?` when unknown.
pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGCHLD => "SIGCHLD",
        libc::SIGCONT => "SIGCONT",
        libc::SIGSTOP => "SIGSTOP",
        libc::SIGTSTP => "SIGTSTP",
        libc::SIGTTIN => "SIGTTIN",
        libc::SIGTTOU => "SIGTTOU",
        libc::SIGURG => "SIGURG",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGVTALRM => "SIGVTALRM",
        libc::SIGPROF => "SIGPROF",
        libc::SIGWINCH => "SIGWINCH",
        libc::SIGIO => "SIGIO",
        libc::SIGSYS => "SIGSYS",
        _ => "SIG?",
    }
}

/// Kills the child's process group when a run is abandoned half-way (its future dropped).
struct GroupGuard {
    pgid: libc::pid_t,
    armed: bool,
}

impl GroupGuard {
    fn signal(&self, sig: libc::c_int) {
        // SAFETY: killpg only sends a signal; a missing group (ESRCH) is fine to ignore.
        unsafe {
            libc::killpg(self.pgid, sig);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.armed {
            self.signal(libc::SIGKILL);
        }
    }
}

/// Starts `argv` and supervises it to the end: capture, timeout, leftovers, reaping.
pub async fn execute(argv: &[String], opts: &RunOptions) -> Result<Execution, RunError> {
    let (program, args) = argv.split_first().ok_or(RunError::EmptyCommand)?;
    let mut child = spawn(program, args, &opts.env).await?;
    let pid = child.id().ok_or_else(|| RunError::Wait {
        program: program.clone(),
        source: io::Error::other("child has no pid right after spawn"),
    })?;
    let mut group = GroupGuard {
        pgid: pid as libc::pid_t,
        armed: true,
    };
    let mut stdout = Captured::default();
    let mut stderr = Captured::default();
    let (end, leftovers_killed) = supervise(&mut child, &group, opts, &mut stdout, &mut stderr)
        .await
        .map_err(|source| RunError::Wait {
            program: program.clone(),
            source,
        })?;
    group.armed = false;
    Ok(Execution {
        pid,
        end,
        stdout,
        stderr,
        leftovers_killed,
    })
}

/// Drains the pipes while waiting for the exit or the timeout, then handles leftovers.
///
/// Returns how the run ended and whether leftovers holding the pipes were killed.
async fn supervise(
    child: &mut Child,
    group: &GroupGuard,
    opts: &RunOptions,
    stdout: &mut Captured,
    stderr: &mut Captured,
) -> io::Result<(End, bool)> {
    let out_reader = read_capped(child.stdout.take(), opts.output_cap, stdout);
    let err_reader = read_capped(child.stderr.take(), opts.output_cap, stderr);
    tokio::pin!(out_reader, err_reader);
    let mut out_done = false;
    let mut err_done = false;

    // Phase 1: the plugin runs, we drain its pipes, until it exits or time is up.
    let deadline = Instant::now() + opts.timeout;
    let exited = loop {
        tokio::select! {
            _ = &mut out_reader, if !out_done => out_done = true,
            _ = &mut err_reader, if !err_done => err_done = true,
            status = child.wait() => break Some(status),
            _ = sleep_until(deadline) => break None,
        }
    };

    let end = match exited {
        Some(status) => end_of(status?),
        None => {
            // Phase 1b: timeout. SIGTERM the group, give it a grace, then SIGKILL.
            group.signal(libc::SIGTERM);
            let grace = Instant::now() + opts.kill_grace;
            let mut reaped = false;
            loop {
                tokio::select! {
                    _ = &mut out_reader, if !out_done => out_done = true,
                    _ = &mut err_reader, if !err_done => err_done = true,
                    _ = child.wait(), if !reaped => reaped = true,
                    _ = sleep_until(grace) => break,
                }
                if reaped && out_done && err_done {
                    break;
                }
            }
            group.signal(libc::SIGKILL);
            if !reaped {
                reap_killed(child).await;
            }
            End::TimedOut(opts.timeout)
        }
    };

    // Phase 2: the plugin is gone; its leftovers get a short grace to close our
    // pipes, then the group is killed and we read one more grace at most (what
    // still holds the pipes then has left our group and is abandoned).
    let mut leftovers_killed = false;
    let rounds = if opts.keep_leftovers { 1 } else { 2 };
    for attempt in 0..rounds {
        if out_done && err_done {
            break;
        }
        if attempt == 1 {
            group.signal(libc::SIGKILL);
            leftovers_killed = true;
        }
        let grace = Instant::now() + opts.pipe_grace;
        loop {
            tokio::select! {
                _ = &mut out_reader, if !out_done => out_done = true,
                _ = &mut err_reader, if !err_done => err_done = true,
                _ = sleep_until(grace) => break,
            }
            if out_done && err_done {
                break;
            }
        }
    }
    Ok((end, leftovers_killed))
}

/// The file to execute for `program`: a program named exactly `laxmon` is
/// the running laxmon binary (so `laxmon plugin ...` and `laxmon sim ...`
/// commands work without laxmon on `PATH`); anything else is looked up as usual.
fn resolve_program(program: &str) -> std::path::PathBuf {
    if program == "laxmon" {
        if let Ok(exe) = std::env::current_exe() {
            if exe.file_name().is_some_and(|n| n == "laxmon") {
                return exe;
            }
        }
    }
    std::path::PathBuf::from(program)
}

/// Spawns without a shell in a new process group; retries briefly on ETXTBSY.
async fn spawn(
    program: &str,
    args: &[String],
    env: &[(String, String)],
) -> Result<Child, RunError> {
    let mut attempts = 0;
    let file = resolve_program(program);
    let withheld = withheld();
    loop {
        let mut command = Command::new(&file);
        for name in &withheld {
            command.env_remove(name);
        }
        let result = command
            .args(args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn();
        match result {
            Ok(child) => return Ok(child),
            // A just-written script can be briefly "busy" while another thread
            // forks with its write descriptor still open; that passes quickly.
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempts < 20 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(e) => return Err(spawn_error(program, e)),
        }
    }
}

fn spawn_error(program: &str, source: io::Error) -> RunError {
    let program = program.to_string();
    match source.kind() {
        io::ErrorKind::NotFound
            if program.contains('/') && std::path::Path::new(&program).is_file() =>
        {
            RunError::InterpreterNotFound { program }
        }
        io::ErrorKind::NotFound => RunError::NotFound { program },
        io::ErrorKind::PermissionDenied => RunError::NotExecutable { program },
        _ => RunError::Spawn { program, source },
    }
}

/// Reaps a child we sent SIGKILL; if even that does not end it soon (stuck in
/// the kernel), gives up and leaves it to tokio's orphan reaper.
async fn reap_killed(child: &mut Child) {
    let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
}

fn end_of(status: ExitStatus) -> End {
    match (status.code(), status.signal()) {
        (Some(code), _) => End::Exited(code),
        (None, Some(sig)) => End::Signaled(sig),
        // Neither code nor signal: stopped/continued, which wait() never reports.
        (None, None) => End::Exited(-1),
    }
}

/// Reads a pipe to EOF, keeping the first `cap` bytes in `sink` and counting the rest.
async fn read_capped<R: AsyncRead + Unpin>(pipe: Option<R>, cap: usize, sink: &mut Captured) {
    let Some(mut pipe) = pipe else { return };
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) => return,
            Ok(n) => {
                let keep = cap.saturating_sub(sink.bytes.len()).min(n);
                sink.bytes.extend_from_slice(&buf[..keep]);
                sink.total += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(Duration::from_secs(10)), "10s");
        assert_eq!(human_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(human_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(human_duration(Duration::from_millis(2005)), "2.005s");
    }

    #[test]
    fn signal_names() {
        assert_eq!(signal_name(9), "SIGKILL");
        assert_eq!(signal_name(11), "SIGSEGV");
        assert_eq!(signal_name(15), "SIGTERM");
        assert_eq!(signal_name(200), "SIG?");
    }
}
