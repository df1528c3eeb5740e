//! systemd's service notification protocol (`sd_notify`): readiness,
//! reloads, stopping, a one-line status, and the watchdog.
//!
//! `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` are read once, at
//! the first use ([`init`] in `laxmon run`); children never see them
//! (`process` withholds them). Messages are datagrams on a non-blocking
//! socket: a notification that cannot be sent is logged at debug and
//! dropped, never waited for. Without `NOTIFY_SOCKET` everything here does
//! nothing.
//!
//! The watchdog claims that the scheduler loop is alive: only that loop
//! pings it, through the [`Watchdog`] it owns, so a stuck scheduler stops
//! the pings and systemd restarts the daemon. This module must never ping
//! the watchdog on its own (no timer task), and never block or fail the
//! daemon.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::time::Instant;

/// How often the status line is refreshed (only sent when it changed).
const STATUS_EVERY: Duration = Duration::from_secs(10);

/// A connection to a notification socket.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// Opens a notifier for a `NOTIFY_SOCKET` value: a socket path, or
    /// `@name` for an abstract socket.
    pub fn connect(notify_socket: &str) -> io::Result<Notifier> {
        let addr = match notify_socket.strip_prefix('@') {
            Some(name) => SocketAddr::from_abstract_name(name.as_bytes())?,
            None if notify_socket.starts_with('/') => SocketAddr::from_pathname(notify_socket)?,
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("NOTIFY_SOCKET={notify_socket:?}: only socket paths and @abstract names are supported"),
                ))
            }
        };
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        Ok(Notifier { socket, addr })
    }

    /// Sends one message (`KEY=VALUE` lines) without waiting.
    pub fn send(&self, message: &str) -> io::Result<()> {
        self.socket
            .send_to_addr(message.as_bytes(), &self.addr)
            .map(|_| ())
    }

    fn send_logged(&self, message: &str) {
        if let Err(e) = self.send(message) {
            tracing::debug!(error = %e, message, "cannot notify systemd");
        }
    }
}

/// What systemd handed us, read once.
struct Environment {
    notifier: Option<Arc<Notifier>>,
    /// `WATCHDOG_USEC`, when it is meant for this process.
    watchdog: Option<Duration>,
}

static ENV: OnceLock<Environment> = OnceLock::new();
/// The watchdog timeout was raised for a reload and must be put back at `READY=1`.
static WATCHDOG_RAISED: AtomicBool = AtomicBool::new(false);

fn read_env() -> Environment {
    let notifier = std::env::var("NOTIFY_SOCKET")
        .ok()
        .filter(|s| !s.is_empty())
        .and_then(|s| match Notifier::connect(&s) {
            Ok(n) => Some(Arc::new(n)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot use systemd's notification socket");
                None
            }
        });
    let for_us = std::env::var("WATCHDOG_PID")
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok())
        .is_none_or(|pid| pid == std::process::id());
    let watchdog = std::env::var("WATCHDOG_USEC")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&usec| usec > 0 && for_us && notifier.is_some())
        .map(Duration::from_micros);
    Environment { notifier, watchdog }
}

fn env() -> &'static Environment {
    ENV.get_or_init(read_env)
}

/// Reads systemd's variables now (later calls change nothing): call at the
/// start of `laxmon run`, before any child is started.
pub fn init() {
    env();
}

fn notify(message: &str) {
    if let Some(n) = &env().notifier {
        n.send_logged(message);
    }
}

/// A status text on one line (systemd shows it in `systemctl status`).
fn one_line(status: &str) -> String {
    status.replace(['\n', '\r'], " ")
}

/// `READY=1`: the scheduler is about to run; also the end of a reload.
pub fn ready(status: &str) {
    let mut message = format!("READY=1\nSTATUS={}", one_line(status));
    if let Some(usec) = env().watchdog {
        if WATCHDOG_RAISED.swap(false, Ordering::Relaxed) {
            message.push_str(&format!("\nWATCHDOG_USEC={}", usec.as_micros()));
        }
    }
    notify(&message);
}

/// `RELOADING=1` with `MONOTONIC_USEC` as systemd wants it: a SIGHUP is being
/// handled. The pipeline stops and starts again, so the scheduler does not
/// ping for a while: the watchdog timeout is raised to `watchdog_grace` (if
/// that is longer) until [`ready`] puts it back.
pub fn reloading(watchdog_grace: Duration) {
    let mut message = format!(
        "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=reloading the configuration",
        monotonic_usec()
    );
    if let Some(usec) = env().watchdog {
        if watchdog_grace > usec {
            WATCHDOG_RAISED.store(true, Ordering::Relaxed);
            message.push_str(&format!("\nWATCHDOG_USEC={}", watchdog_grace.as_micros()));
        }
    }
    notify(&message);
}

/// `STOPPING=1`: shutting down (systemd stops watching the watchdog).
pub fn stopping() {
    notify("STOPPING=1\nSTATUS=stopping: running checks finish, results are written");
}

/// Keeps systemd's `STATUS=` up to date with [`crate::metrics::status_line`]
/// until aborted; returns at once without a notification socket.
pub async fn report_status() {
    let Some(n) = &env().notifier else {
        return;
    };
    let mut every = tokio::time::interval(STATUS_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = String::new();
    loop {
        every.tick().await;
        let line = one_line(&crate::metrics::status_line());
        if line != last {
            n.send_logged(&format!("STATUS={line}"));
            last = line;
        }
    }
}

/// CLOCK_MONOTONIC in microseconds, the clock systemd compares `MONOTONIC_USEC` with.
fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own; CLOCK_MONOTONIC always exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000)
        .saturating_add(ts.tv_nsec as u64 / 1_000)
}

/// The watchdog pinger the scheduler loop owns: `WATCHDOG=1` every half
/// timeout, sent only when the loop calls [`Watchdog::ping_if_due`].
#[derive(Debug)]
pub struct Watchdog {
    notifier: Option<Arc<Notifier>>,
    every: Duration,
    next: Instant,
}

impl Watchdog {
    /// A watchdog that never pings (no systemd watchdog configured).
    pub fn disabled() -> Watchdog {
        Watchdog {
            notifier: None,
            every: Duration::MAX,
            next: Instant::now(),
        }
    }

    /// Pings `notifier` at half of `timeout`, the first time at once.
    pub fn new(notifier: Arc<Notifier>, timeout: Duration) -> Watchdog {
        Watchdog {
            notifier: Some(notifier),
            every: (timeout / 2).max(Duration::from_millis(1)),
            next: Instant::now(),
        }
    }

    /// The watchdog systemd configured for this process (`WATCHDOG_USEC`,
    /// honouring `WATCHDOG_PID`), or a disabled one.
    pub fn from_env() -> Watchdog {
        let e = env();
        match (&e.notifier, e.watchdog) {
            (Some(n), Some(timeout)) => Watchdog::new(Arc::clone(n), timeout),
            _ => Watchdog::disabled(),
        }
    }

    /// Sends `WATCHDOG=1` if half the timeout passed since the last ping.
    pub fn ping_if_due(&mut self) {
        let Some(n) = &self.notifier else {
            return;
        };
        let now = Instant::now();
        if now >= self.next {
            n.send_logged("WATCHDOG=1");
            self.next = now + self.every;
        }
    }

    /// Resolves when the next ping is due (never, when disabled), so that
    /// an idle loop wakes up for it.
    pub async fn due(&self) {
        match self.notifier {
            Some(_) => tokio::time::sleep_until(self.next).await,
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_socket_values() {
        assert!(Notifier::connect("/run/systemd/notify").is_ok());
        assert!(Notifier::connect("@abstract/notify").is_ok());
        let e = Notifier::connect("vsock:2:1234").expect_err("vsock is not supported");
        assert!(e.to_string().contains("vsock:2:1234"), "{e}");
    }

    #[test]
    fn status_stays_on_one_line() {
        assert_eq!(one_line("a\nb\r\nc"), "a b  c");
    }

    #[test]
    fn monotonic_clock_moves_forward() {
        let a = monotonic_usec();
        let b = monotonic_usec();
        assert!(a > 0 && b >= a);
    }
}
