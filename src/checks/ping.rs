//! The `ping` check: native ICMP echo through shared sockets.
//!
//! One [`Pinger`] serves every ping check of the process: one ICMP socket per
//! address family, a global counter handing out (identifier, sequence) pairs
//! so thousands of concurrent echoes never collide, a large receive buffer and
//! a semaphore that bounds how many echoes may be answered at once. Results are
//! worded like `check_ping`'s so perfdata graphs stay continuous.
//!
//! This module must never open a socket per check, never block a thread, and
//! never send anything but echo requests to the configured address.

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use surge_ping::{Client, Config, IcmpPacket, PingIdentifier, PingSequence, SurgeError, ICMP};
use tokio::sync::{OnceCell, Semaphore};
use tokio::time::{sleep, sleep_until, timeout_at, Instant};

use super::{CheckOutput, PerfDatum, State};

/// Echoes that may wait for their reply at once, across all checks.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 512;

/// Receive buffer asked for on each ICMP socket, in bytes.
///
/// With `CAP_NET_ADMIN` (root) it is forced past `net.core.rmem_max`;
/// otherwise the kernel caps it there.
pub const DEFAULT_RECV_BUFFER: usize = 8 * 1024 * 1024;

/// How long an echo holds its in-flight permit before it is assumed lost as
/// far as reply bursts go. It keeps waiting for its reply until the check's
/// deadline, but unreachable hosts no longer starve the others of permits.
const REPLY_WINDOW: Duration = Duration::from_millis(500);

/// Echo payload size, the same as `ping`'s default (84-byte IPv4 packets).
const PAYLOAD: [u8; 56] = [0; 56];

/// Hands out echo numbers for the whole process: the low 16 bits become the
/// sequence number, the high bits vary the identifier.
static NEXT_ECHO: AtomicU32 = AtomicU32::new(0);

/// Why a [`Pinger`] could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum PingError {
    /// The kernel refused an ICMP socket.
    #[error(
        "cannot open an ICMP socket for {family} ping ({reason}): laxmon needs CAP_NET_RAW \
         (run as root, or in its systemd unit `AmbientCapabilities=CAP_NET_RAW`, or \
         `setcap cap_net_raw+ep` on the binary), or unprivileged ICMP allowed for its group \
         (`sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"`, which covers IPv6 too)"
    )]
    Socket {
        /// `IPv4` or `IPv6`.
        family: &'static str,
        /// What the kernel said, in a few words.
        reason: String,
        /// The error itself.
        #[source]
        source: io::Error,
    },
    /// Sockets were asked for outside a tokio runtime.
    #[error("a Pinger must be created inside a tokio runtime (its receive task runs there)")]
    NoRuntime,
}

/// The shared ICMP machinery for every ping check; cheap to clone.
///
/// The sockets belong to the network namespace of the thread that creates
/// them: the IPv4 socket is opened by [`Pinger::new`], the IPv6 socket by the
/// first IPv6 ping (or [`Pinger::open_v6`]). A `Pinger` made on a thread that
/// has `setns()`-ed into another namespace therefore pings inside it, which is
/// how the tests reach addresses they may not reach from the host. Use it in
/// the runtime it was created in: its receive tasks run there.
#[derive(Clone)]
pub struct Pinger {
    inner: Arc<PingerInner>,
}

struct PingerInner {
    v4: Client,
    v6: OnceCell<Client>,
    in_flight: Arc<Semaphore>,
    recv_buffer: usize,
    ident_base: u16,
}

impl std::fmt::Debug for Pinger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pinger")
            .field("v6_open", &self.inner.v6.initialized())
            .field("permits", &self.inner.in_flight.available_permits())
            .finish()
    }
}

impl Pinger {
    /// Opens the IPv4 socket with the default limits; must run inside a tokio runtime.
    pub fn new() -> Result<Pinger, PingError> {
        Pinger::with_limits(DEFAULT_MAX_IN_FLIGHT, DEFAULT_RECV_BUFFER)
    }

    /// Like [`Pinger::new`] with a chosen in-flight limit and receive buffer size.
    pub fn with_limits(max_in_flight: usize, recv_buffer: usize) -> Result<Pinger, PingError> {
        let v4 = open_client(ICMP::V4, recv_buffer)?;
        Ok(Pinger {
            inner: Arc::new(PingerInner {
                v4,
                v6: OnceCell::new(),
                in_flight: Arc::new(Semaphore::new(max_in_flight.max(1))),
                recv_buffer,
                // Differ from other pingers (and ping(8)) on the same host when
                // raw sockets expose the identifier.
                ident_base: (std::process::id() as u16).rotate_left(7) ^ 0x4c58,
            }),
        })
    }

    /// Opens the IPv6 socket now rather than at the first IPv6 ping.
    pub async fn open_v6(&self) -> Result<(), PingError> {
        self.client_for(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST))
            .await
            .map(|_| ())
    }

    async fn client_for(&self, ip: IpAddr) -> Result<&Client, PingError> {
        match ip {
            IpAddr::V4(_) => Ok(&self.inner.v4),
            IpAddr::V6(_) => {
                let recv_buffer = self.inner.recv_buffer;
                self.inner
                    .v6
                    .get_or_try_init(|| async move { open_client(ICMP::V6, recv_buffer) })
                    .await
            }
        }
    }

    /// Sends one echo request to `host` and waits for its reply until `deadline`.
    async fn echo(&self, client: &Client, host: IpAddr, deadline: Instant) -> Echo {
        let permit = match timeout_at(deadline, self.inner.in_flight.clone().acquire_owned()).await
        {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) | Err(_) => return Echo::Lost,
        };
        let mut permit = Some(permit);
        // A (host, identifier, sequence) still awaited from long ago is
        // skipped by taking the next number; a few tries always suffice.
        for _ in 0..4 {
            let wait = deadline.saturating_duration_since(Instant::now());
            if wait.is_zero() {
                return Echo::Lost;
            }
            let (ident, seq) = next_echo_numbers(self.inner.ident_base);
            let mut pinger = client.pinger(host, ident).await;
            pinger.timeout(wait);
            let reply = pinger.ping(seq, &PAYLOAD);
            tokio::pin!(reply);
            let result = tokio::select! {
                r = &mut reply => r,
                _ = sleep(REPLY_WINDOW), if permit.is_some() => {
                    permit = None;
                    reply.await
                }
            };
            return match result {
                Ok((packet, rtt)) => match packet {
                    IcmpPacket::V4(p) if p.get_icmp_type().0 == 0 => Echo::Reply(rtt),
                    IcmpPacket::V6(p) if p.get_icmpv6_type().0 == 129 => Echo::Reply(rtt),
                    other => Echo::Error(icmp_error_text(&other)),
                },
                Err(SurgeError::Timeout { .. }) => Echo::Lost,
                Err(SurgeError::IdenticalRequests { .. }) => continue,
                Err(SurgeError::IOError(err)) => Echo::Error(format!("sendto: {}", io_text(&err))),
                Err(err) => Echo::Error(err.to_string()),
            };
        }
        Echo::Error("no free ICMP sequence number".to_string())
    }
}

/// What became of one echo request.
#[derive(Debug, Clone, PartialEq)]
enum Echo {
    /// An echo reply came back after this round trip.
    Reply(Duration),
    /// Nothing came back in time.
    Lost,
    /// Sending failed, or an ICMP error came back instead of a reply.
    Error(String),
}

fn next_echo_numbers(ident_base: u16) -> (PingIdentifier, PingSequence) {
    let n = NEXT_ECHO.fetch_add(1, Ordering::Relaxed);
    (
        PingIdentifier(ident_base ^ (n >> 16) as u16),
        PingSequence(n as u16),
    )
}

fn open_client(kind: ICMP, recv_buffer: usize) -> Result<Client, PingError> {
    let family = match kind {
        ICMP::V4 => "IPv4",
        ICMP::V6 => "IPv6",
    };
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(PingError::NoRuntime);
    }
    let config = Config::builder().kind(kind).build();
    let client = Client::new(&config).map_err(|source| PingError::Socket {
        family,
        reason: socket_error_reason(&source),
        source,
    })?;
    let socket = client.get_socket();
    let fd = socket.get_native_sock();
    if let Err(err) = set_recv_buffer(fd, recv_buffer) {
        tracing::warn!(%err, family, "cannot enlarge the ICMP receive buffer; bursts may lose replies");
    }
    if socket.get_type() == socket2::Type::RAW {
        if let Err(err) = set_raw_icmp_filter(fd, kind) {
            tracing::debug!(%err, family, "cannot filter the raw ICMP socket");
        }
    }
    Ok(client)
}

fn setsockopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    let len = libc::socklen_t::try_from(std::mem::size_of::<T>())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `fd` is an open socket owned by the surge-ping client that is
    // alive for this call, and `value` points to `len` readable bytes.
    let rc = unsafe { libc::setsockopt(fd, level, name, (value as *const T).cast(), len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Asks for `bytes` of receive buffer, past `rmem_max` when privileged.
fn set_recv_buffer(fd: RawFd, bytes: usize) -> io::Result<()> {
    let bytes = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &bytes)
        .or_else(|_| setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &bytes))
}

/// A raw ICMP socket gets a copy of every ICMP packet the host receives; keep
/// only echo replies and the errors that answer an echo (unreachable, time
/// exceeded). On loopback this also drops the copies of our own requests.
fn set_raw_icmp_filter(fd: RawFd, kind: ICMP) -> io::Result<()> {
    // <linux/icmp.h> ICMP_FILTER and <linux/icmpv6.h> ICMPV6_FILTER: set bits
    // are the types to block.
    const ICMP_FILTER: libc::c_int = 1;
    const ICMPV6_FILTER: libc::c_int = 1;
    match kind {
        ICMP::V4 => {
            let pass: u32 = (1 << 0) | (1 << 3) | (1 << 11);
            setsockopt(fd, libc::SOL_RAW, ICMP_FILTER, &!pass)
        }
        ICMP::V6 => {
            let mut block = [u32::MAX; 8];
            for t in [1u32, 3, 129] {
                block[(t >> 5) as usize] &= !(1 << (t & 31));
            }
            setsockopt(fd, libc::IPPROTO_ICMPV6, ICMPV6_FILTER, &block)
        }
    }
}

fn icmp_error_text(packet: &IcmpPacket) -> String {
    let (kind, code) = match packet {
        IcmpPacket::V4(p) => match p.get_icmp_type().0 {
            3 => ("Destination Unreachable", p.get_icmp_code().0),
            11 => ("Time to live exceeded", p.get_icmp_code().0),
            _ => ("ICMP error", p.get_icmp_code().0),
        },
        IcmpPacket::V6(p) => match p.get_icmpv6_type().0 {
            1 => ("Destination Unreachable", p.get_icmpv6_code().0),
            3 => ("Time to live exceeded", p.get_icmpv6_code().0),
            _ => ("ICMPv6 error", p.get_icmpv6_code().0),
        },
    };
    format!("{kind} (code {code}) from {}", source_of(packet))
}

fn source_of(packet: &IcmpPacket) -> IpAddr {
    match packet {
        IcmpPacket::V4(p) => IpAddr::V4(p.get_source()),
        IcmpPacket::V6(p) => IpAddr::V6(p.get_source()),
    }
}

/// surge-ping wraps a refused socket in a multi-line hint of its own; keep
/// only what the kernel said, our message says what to grant.
fn socket_error_reason(err: &io::Error) -> String {
    match err.kind() {
        io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => io_text(err).lines().next().unwrap_or_default().to_string(),
    }
}

fn io_text(err: &io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// Round-trip average and packet loss limits; a limit is reached at or above it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PingThresholds {
    /// Round-trip average limit.
    pub rta: Option<Duration>,
    /// Packet loss limit in percent (0..=100).
    pub loss: Option<u8>,
}

/// One configured ping check.
#[derive(Debug, Clone, PartialEq)]
pub struct PingCheck {
    /// IP address or DNS name to ping.
    pub address: String,
    /// Echo requests per run (at least one is sent).
    pub count: u32,
    /// Time between two echo requests of one run.
    ///
    /// Defaults to 200 ms: five echoes take under a second, yet are spread
    /// enough not to look like a flood or to be dropped by rate limits.
    /// `check_ping` waits 1 s because `ping(8)` does.
    pub interval: Duration,
    /// WARNING limits.
    pub warn: PingThresholds,
    /// CRITICAL limits.
    pub crit: PingThresholds,
    /// Deadline for the whole run; an echo unanswered by then is lost.
    pub timeout: Duration,
}

impl PingCheck {
    /// A check of `address` with the defaults: 5 echoes 200 ms apart, no
    /// thresholds, 10 s timeout.
    pub fn new(address: impl Into<String>) -> PingCheck {
        PingCheck {
            address: address.into(),
            count: 5,
            interval: Duration::from_millis(200),
            warn: PingThresholds::default(),
            crit: PingThresholds::default(),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Runs one ping check through the shared `pinger`, worded like `check_ping`.
pub async fn run(pinger: &Pinger, check: &PingCheck) -> CheckOutput {
    let start = Instant::now();
    let deadline = start + check.timeout;

    let ip = match timeout_at(deadline, resolve(&check.address)).await {
        Ok(Ok(ip)) => ip,
        Ok(Err(err)) => {
            return CheckOutput::unknown(format!(
                "PING UNKNOWN - Invalid hostname/address - {}: {err}",
                check.address
            ))
        }
        Err(_) => {
            return CheckOutput::new(
                State::Critical,
                format!("PING CRITICAL - Timeout resolving {}", check.address),
            )
        }
    };
    let client = match pinger.client_for(ip).await {
        Ok(client) => client,
        Err(err) => return CheckOutput::unknown(format!("PING UNKNOWN - {err}")),
    };

    let count = check.count.max(1);
    let echoes = (0..count).map(|k| {
        let send_at = start + check.interval * k;
        async move {
            if send_at >= deadline {
                return Echo::Lost;
            }
            sleep_until(send_at).await;
            pinger.echo(client, ip, deadline).await
        }
    });
    let echoes = join_all(echoes.collect()).await;

    let rtts: Vec<Duration> = echoes
        .iter()
        .filter_map(|e| match e {
            Echo::Reply(rtt) => Some(*rtt),
            _ => None,
        })
        .collect();
    let first_error = echoes.iter().find_map(|e| match e {
        Echo::Error(text) => Some(text.as_str()),
        _ => None,
    });
    evaluate(check, count, &rtts, first_error)
}

async fn resolve(address: &str) -> io::Result<IpAddr> {
    let trimmed = address.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = trimmed.parse::<IpAddr>() {
        return Ok(ip);
    }
    tokio::net::lookup_host((address, 0))
        .await?
        .next()
        .map(|sa| sa.ip())
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the name has no addresses"))
}

/// Polls every future in place until all are done, keeping their order.
///
/// The handful of echoes of one check run inside the check's own task, so
/// dropping the check cancels them and unregisters their waiters.
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// The state, text and perfdata of a run, from what came back (pure).
fn evaluate(check: &PingCheck, sent: u32, rtts: &[Duration], error: Option<&str>) -> CheckOutput {
    let sent = sent.max(1);
    let received = u32::try_from(rtts.len()).unwrap_or(u32::MAX).min(sent);
    let loss = (sent - received) * 100 / sent;
    let reached = |t: &PingThresholds, rta_ms: f64| {
        t.loss.is_some_and(|l| loss >= u32::from(l)) || t.rta.is_some_and(|r| rta_ms >= ms(r))
    };

    let mut perfdata = Vec::new();
    let (state, output) = if received == 0 {
        let why = error.map(|e| format!(" ({e})")).unwrap_or_default();
        (
            State::Critical,
            format!("PING CRITICAL - Packet loss = 100%{why}"),
        )
    } else {
        let rta_ms = rtts.iter().map(|d| ms(*d)).sum::<f64>() / f64::from(received);
        let state = if reached(&check.crit, rta_ms) {
            State::Critical
        } else if reached(&check.warn, rta_ms) {
            State::Warning
        } else {
            State::Ok
        };
        perfdata.push(PerfDatum {
            label: "rta".to_string(),
            value: (rta_ms * 1e6).round() / 1e6,
            uom: "ms".to_string(),
            warn: check.warn.rta.map(|d| format!("{:.6}", ms(d))),
            crit: check.crit.rta.map(|d| format!("{:.6}", ms(d))),
            min: Some(0.0),
            max: None,
        });
        (
            state,
            format!("PING {state} - Packet loss = {loss}%, RTA = {rta_ms:.2} ms"),
        )
    };
    perfdata.push(PerfDatum {
        label: "pl".to_string(),
        value: f64::from(loss),
        uom: "%".to_string(),
        warn: check.warn.loss.map(|l| l.to_string()),
        crit: check.crit.loss.map(|l| l.to_string()),
        min: Some(0.0),
        max: None,
    });
    CheckOutput {
        state,
        output,
        long_output: String::new(),
        perfdata,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check() -> PingCheck {
        let mut c = PingCheck::new("127.0.0.1");
        c.warn = PingThresholds {
            rta: Some(Duration::from_millis(100)),
            loss: Some(20),
        };
        c.crit = PingThresholds {
            rta: Some(Duration::from_millis(500)),
            loss: Some(60),
        };
        c
    }

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn all_replies_fast_is_ok_like_check_ping() {
        let out = evaluate(&check(), 5, &[us(50); 5], None);
        assert_eq!(out.state, State::Ok);
        assert_eq!(out.output, "PING OK - Packet loss = 0%, RTA = 0.05 ms");
        let rta = &out.perfdata[0];
        assert_eq!(
            (rta.label.as_str(), rta.value, rta.uom.as_str()),
            ("rta", 0.05, "ms")
        );
        assert_eq!(rta.warn.as_deref(), Some("100.000000"));
        assert_eq!(rta.crit.as_deref(), Some("500.000000"));
        assert_eq!((rta.min, rta.max), (Some(0.0), None));
        let pl = &out.perfdata[1];
        assert_eq!(
            (pl.label.as_str(), pl.value, pl.uom.as_str()),
            ("pl", 0.0, "%")
        );
        assert_eq!(
            (pl.warn.as_deref(), pl.crit.as_deref()),
            (Some("20"), Some("60"))
        );
        assert_eq!((pl.min, pl.max), (Some(0.0), None));
    }

    #[test]
    fn thresholds_are_reached_at_or_above() {
        let ms = Duration::from_millis;
        let cases: &[(u32, &[Duration], State, &str)] = &[
            (
                5,
                &[ms(99); 5],
                State::Ok,
                "PING OK - Packet loss = 0%, RTA = 99.00 ms",
            ),
            (
                5,
                &[ms(100); 5],
                State::Warning,
                "PING WARNING - Packet loss = 0%, RTA = 100.00 ms",
            ),
            (
                5,
                &[ms(500); 5],
                State::Critical,
                "PING CRITICAL - Packet loss = 0%, RTA = 500.00 ms",
            ),
            (
                5,
                &[ms(1); 4],
                State::Warning,
                "PING WARNING - Packet loss = 20%, RTA = 1.00 ms",
            ),
            (
                5,
                &[ms(1); 2],
                State::Critical,
                "PING CRITICAL - Packet loss = 60%, RTA = 1.00 ms",
            ),
            (
                3,
                &[ms(1); 2],
                State::Warning,
                "PING WARNING - Packet loss = 33%, RTA = 1.00 ms",
            ),
            (
                5,
                &[],
                State::Critical,
                "PING CRITICAL - Packet loss = 100%",
            ),
        ];
        for (sent, rtts, state, output) in cases {
            let out = evaluate(&check(), *sent, rtts, None);
            assert_eq!((out.state, out.output.as_str()), (*state, *output));
        }
    }

    #[test]
    fn total_loss_has_no_rta_and_names_the_error() {
        let out = evaluate(&check(), 5, &[], Some("sendto: Network is unreachable"));
        assert_eq!(
            out.output,
            "PING CRITICAL - Packet loss = 100% (sendto: Network is unreachable)"
        );
        assert_eq!(out.perfdata.len(), 1);
        assert_eq!(
            (out.perfdata[0].label.as_str(), out.perfdata[0].value),
            ("pl", 100.0)
        );
    }

    #[test]
    fn without_thresholds_only_silence_is_a_problem() {
        let c = PingCheck::new("h");
        assert_eq!(evaluate(&c, 5, &[us(900_000); 1], None).state, State::Ok);
        assert_eq!(evaluate(&c, 5, &[], None).state, State::Critical);
        let out = evaluate(&c, 5, &[us(50)], None);
        assert_eq!(
            (out.perfdata[0].warn.clone(), out.perfdata[1].crit.clone()),
            (None, None)
        );
    }

    #[test]
    fn echo_numbers_do_not_repeat_within_a_sequence_cycle() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..70_000 {
            let (ident, seq) = next_echo_numbers(0x1234);
            assert!(seen.insert((ident.0, seq.0)), "repeated");
        }
    }

    #[tokio::test]
    async fn join_all_keeps_order() {
        let futures = (0..5u64).map(|i| async move {
            tokio::time::sleep(Duration::from_millis(10 * (5 - i))).await;
            i
        });
        assert_eq!(join_all(futures.collect()).await, vec![0, 1, 2, 3, 4]);
    }
}
