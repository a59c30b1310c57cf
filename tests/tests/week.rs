//! A week on a busy node, compressed: workloads come and go, and what
//! gatewatch reports about them stays true. Pods churn past the label cap
//! without any live pod folding into `_other`, and the series of pods that
//! ended leave `/metrics` after the series TTL.
use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use tests::{Gatewatch, Listener, Netns, kubelet::Node, lab::ChildGuard, privileged};

const CLIENT: &str = env!("CARGO_BIN_EXE_gwclient");
/// Pods made and removed, three times the label cap below.
const PODS: usize = 3000;
const LABEL_CAP: &str = "1000";
/// Pods alive at once: each lives while its connection is counted.
const ALIVE: usize = 40;
const SERIES_TTL: Duration = Duration::from_secs(2);
/// How long each job's process stays after its connection.
const HOLD_MS: &str = "300";

/// Per-workload series lines of an exposition: comments and the duration
/// histogram (by route and provider only, so bounded without expiry) left out.
fn series_count(text: &str) -> usize {
    text.lines()
        .filter(|l| l.starts_with("gatewatch_"))
        .filter(|l| !l.starts_with("gatewatch_connection_duration_seconds"))
        .count()
}

fn rss_kib(gw: &Gatewatch) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", gw.pid())).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn churning_pods_never_fold_live_pods_and_their_series_leave_after_the_ttl() {
    if !privileged() {
        return;
    }
    let provider = Listener::bind("127.0.0.2:0");
    let node = Node::new();
    let ttl = format!("{}s", SERIES_TTL.as_secs());
    let gw = node.gatewatch(&[
        "--provider",
        &format!("openai={}", provider.addr),
        "--label-cap",
        LABEL_CAP,
        "--series-ttl",
        &ttl,
    ]);
    let baseline = series_count(&gw.metrics().text);
    let rss_before = rss_kib(&gw);
    let started = Instant::now();
    let mut alive = VecDeque::new();
    for i in 0..PODS {
        let pod = node.pod("churn", &format!("job-{i}"), "job", i as u32 + 1);
        // A job's process outlives its connection a little, as real ones do.
        let client = pod
            .cgroup
            .command(CLIENT)
            .args(["--hold-ms", HOLD_MS, &provider.addr.to_string()])
            .spawn()
            .expect("start gwclient");
        alive.push_back((pod, ChildGuard(client)));
        if alive.len() > ALIVE {
            let (pod, mut client) = alive.pop_front().expect("a pod is alive");
            let status = client.0.wait().expect("wait for gwclient");
            assert!(status.success(), "gwclient failed: {status}");
            drop(pod);
        }
        if i % 250 == 249 {
            let m = gw.wait_for("the latest pod counted", |m| {
                m.sum(
                    "gatewatch_connections_total",
                    &[("pod", &format!("job-{i}"))],
                ) == 1.0
            });
            let folded = m.sum("gatewatch_label_values_folded_total", &[("label", "pod")]);
            assert_eq!(
                folded,
                0.0,
                "after {} pods, with at most {ALIVE} alive, a pod was folded into _other",
                i + 1
            );
        }
    }
    drop(alive);
    let churn = started.elapsed();
    // After the TTL and a sweep, only the series the daemon started with
    // (and those of the provider's idle label sets, gone too) remain.
    let m = gw.wait_for("the churned series to leave", |m| {
        series_count(&m.text) <= baseline
    });
    assert!(
        m.matching("gatewatch_connections_total", &[("namespace", "churn")])
            .next()
            .is_none(),
        "no series of an ended pod is left"
    );
    let rss_after = rss_kib(&gw);
    println!(
        "{PODS} pods in {churn:?}: series {baseline} before, {} after; RSS {rss_before} KiB before, {rss_after} KiB after",
        series_count(&m.text)
    );
}

/// A loopback server that answers one connection with `reply` and, a
/// moment later, `trailer`; then reads until the client closes or (with
/// `reset`) ends it with a RST.
fn serve_once(
    reply: &'static [u8],
    trailer: &'static [u8],
    reset: bool,
) -> (std::net::SocketAddr, std::thread::JoinHandle<()>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.2:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let handle = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf);
        let _ = s.write_all(reply);
        if !trailer.is_empty() {
            std::thread::sleep(Duration::from_millis(50));
            let _ = s.write_all(trailer);
        }
        if reset {
            // SO_LINGER 0: close() sends a RST instead of a FIN.
            let linger = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            // SAFETY: setsockopt on this socket's own fd with a valid struct.
            unsafe {
                libc::setsockopt(
                    std::os::fd::AsRawFd::as_raw_fd(&s),
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    (&raw const linger).cast(),
                    size_of::<libc::linger>() as u32,
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        } else {
            s.set_read_timeout(Some(Duration::from_secs(5))).ok();
            while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
        }
    });
    (addr, handle)
}

/// Runs a Python client inside the node's cgroup (and in `ns` when
/// given), to completion.
fn python_in(node: &Node, ns: Option<&Netns>, code: &str) {
    let mut cmd = match ns {
        Some(ns) => ns.command(Some(&node.root), "python3"),
        None => node.root.command("python3"),
    };
    let status = cmd.args(["-c", code]).status().expect("run python3");
    assert!(status.success(), "the Python client failed: {status}");
}

fn failures(m: &tests::Metrics) -> f64 {
    m.sum("gatewatch_connection_failures_total", &[])
}

/// Waits until exactly `n` failures have `reason`, and returns the scrape.
fn failed_with(gw: &Gatewatch, reason: &str, n: f64) -> tests::Metrics {
    gw.wait_for(&format!("{n} {reason} failures"), |m| {
        m.sum("gatewatch_connection_failures_total", &[("reason", reason)]) == n
    })
}

#[test]
fn a_client_closing_with_unread_bytes_after_a_whole_response_is_not_a_failure() {
    if !privileged() {
        return;
    }
    // The response, then bytes the client never reads (as a TLS
    // close_notify often is): closing with them unread sends a RST.
    let (addr, server) = serve_once(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        b"UNREAD-TRAILING-BYTES",
        false,
    );
    let node = Node::new();
    let gw = node.gatewatch(&["--provider", &format!("openai={addr}")]);
    let code = format!(
        "import http.client,time\nc=http.client.HTTPConnection('{}',{})\nc.request('GET','/v1/models')\nr=c.getresponse()\nassert r.read()==b'ok'\ntime.sleep(0.2)\nc.sock.close()\n",
        addr.ip(),
        addr.port()
    );
    python_in(&node, None, &code);
    server.join().expect("server thread");
    let m = gw.wait_for("the closed connection", |m| {
        m.sum("gatewatch_connection_duration_seconds_count", &[]) >= 1.0
    });
    assert_eq!(
        failures(&m),
        0.0,
        "a local abort is not a failure:\n{}",
        m.text
    );
    let (_, flows) = gw.get("/api/v1/flows?route=direct");
    assert!(flows.contains(r#""close":"local_abort""#), "{flows}");
}

#[test]
fn a_server_that_answers_with_a_reset_is_counted_reset() {
    if !privileged() {
        return;
    }
    let (addr, server) = serve_once(b"HTTP/1.1 200 OK\r\n", b"", true);
    let node = Node::new();
    let gw = node.gatewatch(&["--provider", &format!("openai={addr}")]);
    let code = format!(
        "import socket,time\ns=socket.create_connection(('{}',{}))\ns.sendall(b'GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n')\ntime.sleep(0.5)\ns.close()\n",
        addr.ip(),
        addr.port()
    );
    python_in(&node, None, &code);
    server.join().expect("server thread");
    let m = failed_with(&gw, "reset", 1.0);
    assert_eq!(failures(&m), 1.0, "{}", m.text);
}

#[test]
fn a_connect_that_fails_before_its_syn_is_a_not_sent_failure_and_leaves_no_live_flow() {
    if !privileged() {
        return;
    }
    // A namespace with only loopback: connect() to anything else fails with
    // ENETUNREACH before a SYN exists, which the TCP state machine never
    // reports. The client retries on the same socket, then closes it.
    let ns = Netns::new("unsent");
    let node = Node::new();
    let gw = node.gatewatch(&["--provider", "openai=10.9.9.9:443"]);
    let code = "import socket,errno\ns=socket.socket()\nfor _ in range(2):\n    try:\n        s.connect(('10.9.9.9',443))\n        raise SystemExit('connected')\n    except OSError as e:\n        assert e.errno==errno.ENETUNREACH, e\ns.close()\n";
    python_in(&node, Some(&ns), code);
    let m = failed_with(&gw, "not_sent", 2.0);
    assert_eq!(failures(&m), 2.0, "only not_sent:\n{}", m.text);
    assert_eq!(
        m.sum("gatewatch_active_connections", &[]),
        0.0,
        "nothing lingers as active:\n{}",
        m.text
    );
    let (_, flows) = gw.get("/api/v1/flows?route=direct");
    assert_eq!(flows.matches(r#""close":"not_sent""#).count(), 2, "{flows}");
}

#[test]
fn a_syn_nobody_answers_is_a_timeout_failure() {
    if !privileged() {
        return;
    }
    // The SYN and its retransmit go out of a veth to a neighbour that does
    // not exist (its peer end drops frames not addressed to it); the client
    // gives up after 1.5 s, as an SDK with a short connect timeout does.
    let ns = Netns::new("silent");
    ns.ip(&["link", "add", "va", "type", "veth", "peer", "name", "vb"]);
    ns.ip(&["addr", "add", "10.9.8.1/24", "dev", "va"]);
    ns.ip(&["link", "set", "va", "up"]);
    ns.ip(&["link", "set", "vb", "up"]);
    ns.ip(&[
        "neigh",
        "add",
        "10.9.8.2",
        "lladdr",
        "02:00:00:00:00:02",
        "dev",
        "va",
        "nud",
        "permanent",
    ]);
    let node = Node::new();
    let gw = node.gatewatch(&["--provider", "openai=10.9.8.2:443"]);
    let code = "import socket\ns=socket.socket()\ns.settimeout(1.5)\ntry:\n    s.connect(('10.9.8.2',443))\n    raise SystemExit('connected')\nexcept socket.timeout:\n    pass\ns.close()\n";
    python_in(&node, Some(&ns), code);
    let m = failed_with(&gw, "timeout", 1.0);
    assert_eq!(failures(&m), 1.0, "only the timeout:\n{}", m.text);
}
