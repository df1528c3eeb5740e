//! The `port` check: a native TCP connect, optional send, optional expect.
//!
//! It answers "does this TCP service accept connections (and say what we
//! expect) in time?" the way `check_tcp` does, without forking a plugin. The
//! output and the `time` perfdata follow `check_tcp`'s format so dashboards and
//! graphs do not notice the switch.
//!
//! This module must never block a thread (everything is tokio I/O under one
//! deadline), never read more than [`MAX_RESPONSE`] bytes of a reply, and never
//! panic on what a peer sends.

use std::fmt::Write as _;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout_at;

use super::{CheckOutput, PerfDatum, State};

/// The most bytes of a reply that are read while looking for `expect`.
pub const MAX_RESPONSE: usize = 64 * 1024;

/// How many bytes of an unexpected reply are quoted in the output.
const QUOTE_LIMIT: usize = 120;

/// One configured TCP port check.
#[derive(Debug, Clone, PartialEq)]
pub struct PortCheck {
    /// IP address or DNS name to connect to.
    pub address: String,
    /// TCP port.
    pub port: u16,
    /// Bytes written right after connecting, if any.
    pub send: Option<String>,
    /// A substring the reply must contain; the reply is only read when set.
    pub expect: Option<String>,
    /// Response time strictly above which the result is WARNING.
    pub warn: Option<Duration>,
    /// Response time strictly above which the result is CRITICAL.
    pub crit: Option<Duration>,
    /// Deadline for the whole run: resolve, connect, send and read.
    pub timeout: Duration,
}

impl PortCheck {
    /// A check of `address:port` with no send/expect, no thresholds and the
    /// spec's default timeout of 10 s.
    pub fn new(address: impl Into<String>, port: u16) -> PortCheck {
        PortCheck {
            address: address.into(),
            port,
            send: None,
            expect: None,
            warn: None,
            crit: None,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Runs one port check and describes the result like `check_tcp` does.
///
/// Names are resolved with the system resolver; every resolved address is
/// tried in turn until one accepts, all within `check.timeout`.
pub async fn run(check: &PortCheck) -> CheckOutput {
    let started = Instant::now();
    let deadline = tokio::time::Instant::from_std(started + check.timeout);
    let timed_out = |doing: &str| {
        CheckOutput::new(
            State::Critical,
            format!(
                "CRITICAL - Socket timeout after {} seconds {doing}",
                seconds(check.timeout)
            ),
        )
    };

    let addrs = match timeout_at(deadline, resolve(&check.address, check.port)).await {
        Err(_) => return timed_out(&format!("resolving {}", check.address)),
        Ok(Err(err)) => {
            return CheckOutput::new(
                State::Critical,
                format!(
                    "TCP CRITICAL - Invalid hostname, address or socket: {}: {err}",
                    check.address
                ),
            )
        }
        Ok(Ok(addrs)) => addrs,
    };

    let mut stream = None;
    let mut last_error = None;
    for addr in &addrs {
        match timeout_at(deadline, TcpStream::connect(addr)).await {
            Err(_) => {
                return timed_out(&format!(
                    "connecting to address {} and port {}",
                    addr.ip(),
                    addr.port()
                ))
            }
            Ok(Ok(s)) => {
                stream = Some(s);
                break;
            }
            Ok(Err(err)) => last_error = Some((addr, err)),
        }
    }
    let Some(mut stream) = stream else {
        let text = match last_error {
            Some((addr, err)) => format!(
                "connect to address {} and port {}: {}",
                addr.ip(),
                addr.port(),
                io_text(&err)
            ),
            None => format!("TCP CRITICAL - No address found for {}", check.address),
        };
        return CheckOutput::new(State::Critical, text);
    };

    if let Some(send) = &check.send {
        match timeout_at(deadline, stream.write_all(send.as_bytes())).await {
            Err(_) => return timed_out("sending"),
            Ok(Err(err)) => {
                return CheckOutput::new(
                    State::Critical,
                    format!("TCP CRITICAL - Error sending to host: {}", io_text(&err)),
                )
            }
            Ok(Ok(())) => {}
        }
    }

    let mut quoted = String::new();
    if let Some(expect) = &check.expect {
        match timeout_at(deadline, read_until(&mut stream, expect.as_bytes())).await {
            Err(_) => return timed_out(&format!("waiting for {expect:?}")),
            Ok(Err(err)) => {
                return CheckOutput::new(
                    State::Critical,
                    format!(
                        "TCP CRITICAL - Error receiving from host: {}",
                        io_text(&err)
                    ),
                )
            }
            Ok(Ok(Reply::Matched(reply))) => quoted = format!(" [{}]", quote(&reply)),
            Ok(Ok(Reply::Unmatched(reply))) => {
                let elapsed = started.elapsed();
                let text = if reply.is_empty() {
                    "TCP CRITICAL - No data received from host".to_string()
                } else {
                    format!(
                        "TCP CRITICAL - Unexpected response from host/socket: {}",
                        quote(&reply)
                    )
                };
                let mut out = CheckOutput::new(State::Critical, text);
                out.perfdata.push(time_perfdatum(check, elapsed));
                return out;
            }
        }
    }
    let elapsed = started.elapsed();
    // Closing politely is not part of the measured time; errors do not matter.
    let _ = stream.shutdown().await;

    let state = time_state(elapsed, check.warn, check.crit);
    let mut out = CheckOutput::new(
        state,
        format!(
            "TCP {state} - {:.3} second response time on {} port {}{quoted}",
            elapsed.as_secs_f64(),
            check.address,
            check.port
        ),
    );
    out.perfdata.push(time_perfdatum(check, elapsed));
    out
}

/// What came back while looking for `expect`.
enum Reply {
    /// The expected bytes were found in this reply.
    Matched(Vec<u8>),
    /// The peer closed, or [`MAX_RESPONSE`] bytes arrived, without a match.
    Unmatched(Vec<u8>),
}

async fn read_until(stream: &mut TcpStream, expect: &[u8]) -> io::Result<Reply> {
    let mut reply = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if contains(&reply, expect) {
            return Ok(Reply::Matched(reply));
        }
        if reply.len() >= MAX_RESPONSE {
            return Ok(Reply::Unmatched(reply));
        }
        let room = (MAX_RESPONSE - reply.len()).min(chunk.len());
        let n = stream.read(&mut chunk[..room]).await?;
        if n == 0 {
            return Ok(Reply::Unmatched(reply));
        }
        reply.extend_from_slice(&chunk[..n]);
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

async fn resolve(address: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    let trimmed = address.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = trimmed.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((address, port)).await?.collect();
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "the name has no addresses",
        ));
    }
    Ok(addrs)
}

/// WARNING/CRITICAL when the response time is strictly above a threshold, as
/// `check_tcp` decides.
fn time_state(elapsed: Duration, warn: Option<Duration>, crit: Option<Duration>) -> State {
    if crit.is_some_and(|c| elapsed > c) {
        State::Critical
    } else if warn.is_some_and(|w| elapsed > w) {
        State::Warning
    } else {
        State::Ok
    }
}

/// `time=0.000123s;[warn];[crit];0.000000;[timeout]`, as `check_tcp` writes it.
fn time_perfdatum(check: &PortCheck, elapsed: Duration) -> PerfDatum {
    PerfDatum {
        label: "time".to_string(),
        value: round6(elapsed.as_secs_f64()),
        uom: "s".to_string(),
        warn: check.warn.map(|d| format!("{:.6}", d.as_secs_f64())),
        crit: check.crit.map(|d| format!("{:.6}", d.as_secs_f64())),
        min: Some(0.0),
        max: Some(check.timeout.as_secs_f64()),
    }
}

/// The value check_tcp prints with `%f`: six decimals.
fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// `10` for whole seconds, `0.5` otherwise.
fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    let mut text = format!("{s:.3}");
    while text.ends_with('0') {
        text.pop();
    }
    if text.ends_with('.') {
        text.pop();
    }
    text
}

/// The first line of a reply, printable, at most [`QUOTE_LIMIT`] characters.
fn quote(reply: &[u8]) -> String {
    let text = String::from_utf8_lossy(reply);
    let line = text.lines().next().unwrap_or("").trim();
    let mut out = String::new();
    for c in line.chars().take(QUOTE_LIMIT) {
        if c.is_control() || c == '|' {
            let _ = write!(out, "\\x{:02x}", u32::from(c) & 0xff);
        } else {
            out.push(c);
        }
    }
    out
}

/// The OS error text without Rust's " (os error 111)" suffix.
fn io_text(err: &io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_thresholds_are_strict_like_check_tcp() {
        let ms = Duration::from_millis;
        let cases = [
            (ms(5), None, None, State::Ok),
            (ms(5), Some(ms(10)), Some(ms(20)), State::Ok),
            (ms(10), Some(ms(10)), Some(ms(20)), State::Ok),
            (ms(11), Some(ms(10)), Some(ms(20)), State::Warning),
            (ms(21), Some(ms(10)), Some(ms(20)), State::Critical),
            (ms(21), None, Some(ms(20)), State::Critical),
        ];
        for (elapsed, warn, crit, want) in cases {
            assert_eq!(time_state(elapsed, warn, crit), want, "{elapsed:?}");
        }
    }

    #[test]
    fn perfdatum_matches_check_tcp() {
        let mut check = PortCheck::new("127.0.0.1", 80);
        check.warn = Some(Duration::from_secs(1));
        check.crit = Some(Duration::from_secs(5));
        check.timeout = Duration::from_secs(7);
        let p = time_perfdatum(&check, Duration::from_nanos(395_842_400));
        assert_eq!(p.label, "time");
        assert_eq!(p.value, 0.395842);
        assert_eq!(p.uom, "s");
        assert_eq!(p.warn.as_deref(), Some("1.000000"));
        assert_eq!(p.crit.as_deref(), Some("5.000000"));
        assert_eq!((p.min, p.max), (Some(0.0), Some(7.0)));

        let p = time_perfdatum(&PortCheck::new("h", 1), Duration::from_micros(96));
        assert_eq!((p.warn, p.crit, p.max), (None, None, Some(10.0)));
    }

    #[test]
    fn substring_search() {
        assert!(contains(b"HTTP/1.0 200 OK", b"HTTP/1."));
        assert!(contains(b"abc", b""));
        assert!(!contains(b"HTTP", b"HTTP/1."));
        assert!(!contains(b"SSH-2.0", b"HTTP"));
    }

    #[test]
    fn quotes_first_line_and_escapes_controls() {
        assert_eq!(
            quote(b"HTTP/1.0 200 OK\r\nServer: x\r\n"),
            "HTTP/1.0 200 OK"
        );
        assert_eq!(quote(b"a\x07b|c"), "a\\x07b\\x7cc");
        assert_eq!(quote(&[b'x'; 500]).len(), QUOTE_LIMIT);
    }

    #[test]
    fn seconds_are_short() {
        assert_eq!(seconds(Duration::from_secs(10)), "10");
        assert_eq!(seconds(Duration::from_millis(500)), "0.5");
        assert_eq!(seconds(Duration::from_millis(1250)), "1.25");
    }
}
