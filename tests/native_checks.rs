//! The native `port` and `ping` checks against real sockets.
//!
//! Everything talks to 127.0.0.1 / ::1 only, or runs inside a network
//! namespace the test creates (and deletes on drop, even when the test
//! fails): that is where replies are dropped, links are throttled and names
//! fail to resolve, without a packet ever leaving the machine. Needs root (or
//! CAP_NET_RAW + CAP_SYS_ADMIN) and iproute2's `ip` and `tc`.

use std::future::Future;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use laxmon::checks::ping::{self, PingCheck, PingError, PingThresholds, Pinger};
use laxmon::checks::port::{self, PortCheck};
use laxmon::checks::{CheckOutput, PerfDatum, State};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Every test is bounded by this, so nothing hangs.
const BOUND: Duration = Duration::from_secs(60);

async fn bounded<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(BOUND, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {BOUND:?}"))
}

fn perf<'a>(out: &'a CheckOutput, label: &str) -> &'a PerfDatum {
    out.perfdata
        .iter()
        .find(|p| p.label == label)
        .unwrap_or_else(|| panic!("no perfdata {label:?} in {out:?}"))
}

// ---------------------------------------------------------------- namespaces

/// A network namespace with only `lo` up; deleted when dropped.
struct Netns {
    name: String,
}

impl Netns {
    fn new(tag: &str) -> Netns {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "lxm-test-{}-{tag}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        run_cmd(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        run_cmd(&["ip", "-n", &ns.name, "link", "set", "lo", "up"]);
        ns
    }

    /// Runs a command inside the namespace; panics when it fails.
    fn exec(&self, args: &[&str]) {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(args);
        run_cmd(&full);
    }

    /// Runs `make()`'s future on a fresh thread that has entered the
    /// namespace, on a runtime of its own: every socket the library opens
    /// there (TCP, ICMP, the resolver's) lives in the namespace.
    async fn run<F, Fut, T>(&self, make: F) -> T
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T>,
        T: Send + 'static,
    {
        let path = format!("/run/netns/{}", self.name);
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("open the namespace file");
            let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
            // SAFETY: fd is an open namespace file; setns affects this thread only.
            let rc = unsafe { libc::setns(fd, libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let _ = tx.send(rt.block_on(make()));
        });
        rx.await.expect("the namespace thread panicked")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn run_cmd(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------- port

/// A loopback server that reads a request, then answers `reply` and closes.
async fn answering_server(addr: &str, reply: &'static [u8]) -> u16 {
    let listener = TcpListener::bind(addr).await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = tokio::time::timeout(Duration::from_millis(200), conn.read(&mut buf)).await;
                let _ = conn.write_all(reply).await;
            });
        }
    });
    port
}

fn http_check(port: u16, expect: &str) -> PortCheck {
    let mut check = PortCheck::new("127.0.0.1", port);
    check.send = Some("HEAD / HTTP/1.0\r\n\r\n".to_string());
    check.expect = Some(expect.to_string());
    check.timeout = Duration::from_secs(5);
    check
}

#[tokio::test]
async fn port_with_the_expected_reply_is_ok() {
    let port = answering_server("127.0.0.1:0", b"HTTP/1.0 200 OK\r\n\r\n").await;
    let out = bounded("port check", port::run(&http_check(port, "HTTP/1."))).await;
    assert_eq!(out.state, State::Ok, "{out:?}");
    assert!(out.output.starts_with("TCP OK - "), "{}", out.output);
    assert!(
        out.output.ends_with(&format!(
            " second response time on 127.0.0.1 port {port} [HTTP/1.0 200 OK]"
        )),
        "{}",
        out.output
    );
    let time = perf(&out, "time");
    assert!(time.value >= 0.0);
    assert_eq!(time.uom, "s");
    assert_eq!((time.warn.clone(), time.crit.clone()), (None, None));
    assert_eq!((time.min, time.max), (Some(0.0), Some(5.0)));
}

#[tokio::test]
async fn port_with_another_reply_is_critical() {
    let port = answering_server("127.0.0.1:0", b"HTTP/1.0 200 OK\r\n\r\n").await;
    let out = bounded("port check", port::run(&http_check(port, "SSH-2.0"))).await;
    assert_eq!(out.state, State::Critical, "{out:?}");
    assert_eq!(
        out.output,
        "TCP CRITICAL - Unexpected response from host/socket: HTTP/1.0 200 OK"
    );
    assert_eq!(perf(&out, "time").uom, "s");
}

#[tokio::test]
async fn port_that_closes_without_a_word_is_critical() {
    let port = answering_server("127.0.0.1:0", b"").await;
    let out = bounded("port check", port::run(&http_check(port, "HTTP/1."))).await;
    assert_eq!(out.state, State::Critical, "{out:?}");
    assert_eq!(out.output, "TCP CRITICAL - No data received from host");
}

#[tokio::test]
async fn port_connect_only_with_thresholds_is_ok() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mut check = PortCheck::new("127.0.0.1", port);
    check.warn = Some(Duration::from_secs(5));
    check.crit = Some(Duration::from_secs(9));
    let out = bounded("port check", port::run(&check)).await;
    assert_eq!(out.state, State::Ok, "{out:?}");
    assert!(
        out.output.ends_with(&format!("on 127.0.0.1 port {port}")),
        "{}",
        out.output
    );
    let time = perf(&out, "time");
    assert_eq!(time.warn.as_deref(), Some("5.000000"));
    assert_eq!(time.crit.as_deref(), Some("9.000000"));
    assert_eq!(time.max, Some(10.0));
}

#[tokio::test]
async fn port_on_ipv6_loopback_is_ok() {
    let port = answering_server("[::1]:0", b"SSH-2.0-test\r\n").await;
    let mut check = PortCheck::new("::1", port);
    check.expect = Some("SSH-2.0".to_string());
    let out = bounded("port check", port::run(&check)).await;
    assert_eq!(out.state, State::Ok, "{out:?}");
    assert!(
        out.output
            .contains(&format!("on ::1 port {port} [SSH-2.0-test]")),
        "{}",
        out.output
    );
}

#[tokio::test]
async fn port_by_name_is_resolved() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let out = bounded("port check", port::run(&PortCheck::new("localhost", port))).await;
    assert_eq!(out.state, State::Ok, "{out:?}");
    assert!(
        out.output.contains(&format!("on localhost port {port}")),
        "{}",
        out.output
    );
}

#[tokio::test]
async fn closed_port_is_refused_and_critical() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let out = bounded("port check", port::run(&PortCheck::new("127.0.0.1", port))).await;
    assert_eq!(out.state, State::Critical, "{out:?}");
    assert_eq!(
        out.output,
        format!("connect to address 127.0.0.1 and port {port}: Connection refused")
    );
    assert!(out.perfdata.is_empty());
}

#[tokio::test]
async fn silent_listener_times_out_waiting_for_expect() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let holder = tokio::spawn(async move {
        let (conn, _) = listener.accept().await.expect("accept");
        tokio::time::sleep(BOUND).await;
        drop(conn);
    });
    let mut check = PortCheck::new("127.0.0.1", port);
    check.expect = Some("220 ".to_string());
    check.timeout = Duration::from_millis(500);
    let out = bounded("port check", port::run(&check)).await;
    holder.abort();
    assert_eq!(out.state, State::Critical, "{out:?}");
    assert_eq!(
        out.output,
        "CRITICAL - Socket timeout after 0.5 seconds waiting for \"220 \""
    );
}

#[tokio::test]
async fn unanswered_syn_times_out_connecting() {
    // In the namespace, `lo` gets a queue of length zero: every packet,
    // the SYN included, is dropped, so connect() hangs until the deadline.
    let ns = Netns::new("syn");
    ns.exec(&[
        "tc", "qdisc", "add", "dev", "lo", "root", "pfifo", "limit", "0",
    ]);
    let out = bounded(
        "port check in namespace",
        ns.run(|| async {
            let mut check = PortCheck::new("127.0.0.1", 80);
            check.timeout = Duration::from_secs(1);
            port::run(&check).await
        }),
    )
    .await;
    assert_eq!(out.state, State::Critical, "{out:?}");
    assert_eq!(
        out.output,
        "CRITICAL - Socket timeout after 1 seconds connecting to address 127.0.0.1 and port 80"
    );
}

#[tokio::test]
async fn unresolvable_name_is_critical() {
    // Inside a namespace with only `lo` the resolver cannot reach any
    // nameserver, so the query fails without leaving the machine.
    let ns = Netns::new("dns");
    let out = bounded(
        "port check in namespace",
        ns.run(|| async { port::run(&PortCheck::new("no-such-host.invalid", 80)).await }),
    )
    .await;
    assert_eq!(out.state, State::Critical, "{out:?}");
    assert!(
        out.output.starts_with(
            "TCP CRITICAL - Invalid hostname, address or socket: no-such-host.invalid"
        ),
        "{}",
        out.output
    );
}

// ---------------------------------------------------------------------- ping

fn ping_check(address: &str) -> PingCheck {
    let mut check = PingCheck::new(address);
    check.interval = Duration::from_millis(20);
    check.warn = PingThresholds {
        rta: Some(Duration::from_millis(100)),
        loss: Some(20),
    };
    check.crit = PingThresholds {
        rta: Some(Duration::from_millis(500)),
        loss: Some(60),
    };
    check.timeout = Duration::from_secs(5);
    check
}

fn assert_ping_ok(out: &CheckOutput) {
    assert!(
        out.output.starts_with("PING OK - Packet loss = 0%, RTA = ") && out.output.ends_with(" ms"),
        "{out:?}"
    );
    let rta = perf(out, "rta");
    assert!(rta.value >= 0.0, "{rta:?}");
    assert_eq!(rta.uom, "ms");
    assert_eq!(rta.warn.as_deref(), Some("100.000000"));
    assert_eq!(rta.crit.as_deref(), Some("500.000000"));
    assert_eq!(rta.min, Some(0.0));
    let pl = perf(out, "pl");
    assert_eq!((pl.value, pl.uom.as_str()), (0.0, "%"));
    assert_eq!(
        (pl.warn.as_deref(), pl.crit.as_deref()),
        (Some("20"), Some("60"))
    );
    assert_eq!(pl.min, Some(0.0));
}

#[tokio::test]
async fn ping_ipv4_loopback_is_ok() {
    let pinger = Pinger::new().expect("ICMP sockets (run the tests as root)");
    let out = bounded("ping", ping::run(&pinger, &ping_check("127.0.0.1"))).await;
    assert_eq!(out.state, State::Ok, "{out:?}");
    assert_ping_ok(&out);
}

#[tokio::test]
async fn ping_ipv6_loopback_is_ok() {
    let pinger = Pinger::new().expect("ICMP sockets (run the tests as root)");
    let out = bounded("ping", ping::run(&pinger, &ping_check("::1"))).await;
    assert_eq!(out.state, State::Ok, "{out:?}");
    assert_ping_ok(&out);
}

#[tokio::test]
async fn ping_by_name_is_resolved() {
    let pinger = Pinger::new().expect("ICMP sockets (run the tests as root)");
    let out = bounded("ping", ping::run(&pinger, &ping_check("localhost"))).await;
    assert_eq!(out.state, State::Ok, "{out:?}");
}

#[tokio::test]
async fn ignored_echoes_are_total_loss_and_critical() {
    let ns = Netns::new("mute");
    ns.exec(&["sysctl", "-q", "-w", "net.ipv4.icmp_echo_ignore_all=1"]);
    ns.exec(&["sysctl", "-q", "-w", "net.ipv6.icmp.echo_ignore_all=1"]);
    let (v4, v6) = bounded(
        "ping in namespace",
        ns.run(|| async {
            let pinger = Pinger::new().expect("ICMP sockets");
            let mut check = ping_check("127.0.0.1");
            check.timeout = Duration::from_secs(1);
            let v4 = ping::run(&pinger, &check).await;
            check.address = "::1".to_string();
            (v4, ping::run(&pinger, &check).await)
        }),
    )
    .await;
    for out in [v4, v6] {
        assert_eq!(out.state, State::Critical, "{out:?}");
        assert_eq!(out.output, "PING CRITICAL - Packet loss = 100%");
        assert_eq!(perf(&out, "pl").value, 100.0);
        assert!(out.perfdata.iter().all(|p| p.label != "rta"), "{out:?}");
    }
}

#[tokio::test]
async fn throttled_link_gives_partial_loss() {
    // A token bucket of 1 kB/s with room for three 98-byte packets and a
    // one-packet queue: the first echo and its reply pass, most of the ten
    // sent 20 ms apart are dropped (the send fails with ENOBUFS).
    let ns = Netns::new("tbf");
    ns.exec(&[
        "tc", "qdisc", "add", "dev", "lo", "root", "tbf", "rate", "8kbit", "burst", "300", "limit",
        "100",
    ]);
    let out = bounded(
        "ping in namespace",
        ns.run(|| async {
            let pinger = Pinger::new().expect("ICMP sockets");
            let mut check = ping_check("127.0.0.1");
            check.count = 10;
            check.warn = PingThresholds {
                rta: None,
                loss: Some(1),
            };
            check.crit = PingThresholds {
                rta: None,
                loss: Some(100),
            };
            ping::run(&pinger, &check).await
        }),
    )
    .await;
    let pl = perf(&out, "pl").value;
    assert!(pl > 0.0 && pl < 100.0, "{out:?}");
    assert_eq!(out.state, State::Warning, "{out:?}");
    assert!(
        out.output.starts_with("PING WARNING - Packet loss = "),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_pings_share_one_pinger_without_collisions() {
    let pinger = Pinger::new().expect("ICMP sockets (run the tests as root)");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..1000 {
        let pinger = pinger.clone();
        tasks.spawn(async move {
            let mut check = PingCheck::new(if i % 2 == 0 { "127.0.0.1" } else { "::1" });
            check.count = 1;
            check.timeout = Duration::from_secs(10);
            ping::run(&pinger, &check).await
        });
    }
    let outputs = bounded("1000 pings", tasks.join_all()).await;
    let failed: Vec<_> = outputs.iter().filter(|o| o.state != State::Ok).collect();
    assert!(
        failed.is_empty(),
        "{} of 1000 failed, e.g. {:?}",
        failed.len(),
        failed.first()
    );
    assert!(outputs.iter().all(|o| perf(o, "pl").value == 0.0));
}

#[test]
fn pinger_outside_a_runtime_is_an_error() {
    assert!(matches!(Pinger::new(), Err(PingError::NoRuntime)));
}

/// Drops CAP_NET_RAW from this thread's effective capabilities.
fn drop_cap_net_raw() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    const CAP_NET_RAW: u32 = 13;
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget/capset with a v3 header and two data structs, as the
    // kernel ABI requires; pid 0 is the calling thread only.
    unsafe {
        assert_eq!(
            libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()),
            0
        );
        data[0].effective &= !(1 << CAP_NET_RAW);
        assert_eq!(
            libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()),
            0
        );
    }
}

#[test]
fn pinger_without_icmp_permission_says_what_to_grant() {
    let groups = std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range").expect("sysctl");
    let result = std::thread::spawn(|| {
        drop_cap_net_raw();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async { Pinger::new().map(|_| ()) })
    })
    .join()
    .expect("thread");
    if groups.split_whitespace().collect::<Vec<_>>() != ["1", "0"] {
        // Unprivileged ICMP is allowed here, so there is nothing to refuse.
        assert!(result.is_ok(), "{result:?}");
        return;
    }
    let err = result.expect_err("ICMP sockets must be refused without CAP_NET_RAW");
    let text = err.to_string();
    for needle in [
        "CAP_NET_RAW",
        "AmbientCapabilities=CAP_NET_RAW",
        "ping_group_range",
        "IPv4",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from: {text}");
    }
}
