//! Who and how much: connections carry the namespace, pod, container and
//! process of the workload that made them (from kubelet-shaped cgroups and
//! pod log directories the test creates), byte counts from the kernel's TCP
//! counters, failures and the active gauge; a designated gateway workload's
//! provider calls are `gateway_upstream`.
use std::{
    io::{BufRead as _, BufReader},
    process::Stdio,
};

use tests::{Listener, Metrics, free_port, kubelet::Node, lab::ChildGuard, privileged, run_ok};

const CLIENT: &str = env!("CARGO_BIN_EXE_gwclient");
const PROXY: &str = env!("CARGO_BIN_EXE_gwproxy");
const CONNECTIONS: &str = "gatewatch_connections_total";

fn provider_rule(addr: std::net::SocketAddr) -> String {
    format!("openai={addr}")
}

#[test]
fn connections_carry_namespace_pod_container_and_process() {
    if !privileged() {
        return;
    }
    let provider = Listener::bind("127.0.0.2:0");
    let node = Node::new();
    let agent = node.pod("team-a", "agent-7f9c", "agent", 1);
    let gw = node.gatewatch(&["--provider", &provider_rule(provider.addr)]);
    run_ok(agent.cgroup.command(CLIENT).arg(provider.addr.to_string()));
    let labels = [
        ("route", "direct"),
        ("provider", "openai"),
        ("namespace", "team-a"),
        ("pod", "agent-7f9c"),
        ("container", "agent"),
        ("process", "gwclient"),
    ];
    gw.wait_for("a direct connection with workload labels", |m| {
        m.sum(CONNECTIONS, &labels) == 1.0
    });
}

#[test]
fn a_gateway_workloads_provider_calls_are_gateway_upstream() {
    if !privileged() {
        return;
    }
    let provider = Listener::bind_reply("127.0.0.2:0", 100);
    let node = Node::new();
    let agent = node.pod("team-a", "agent-7f9c", "agent", 2);
    let gateway_pod = node.pod("ai-gateway", "litellm-0", "proxy", 3);
    let gateway_addr = format!("127.0.0.3:{}", free_port());
    let gw = node.gatewatch(&[
        "--provider",
        &provider_rule(provider.addr),
        "--gateway",
        &format!("litellm={gateway_addr}"),
        "--gateway-workload",
        "namespace=ai-gateway,container=proxy",
    ]);
    let mut proxy = gateway_pod.cgroup.command(PROXY);
    proxy
        .args([&gateway_addr, &provider.addr.to_string()])
        .stdout(Stdio::piped());
    let mut proxy = ChildGuard(proxy.spawn().expect("start gwproxy"));
    let mut ready = String::new();
    BufReader::new(proxy.0.stdout.take().expect("proxy stdout"))
        .read_line(&mut ready)
        .expect("proxy ready");
    assert_eq!(ready.trim(), "ready");

    let out =
        run_ok(
            agent
                .cgroup
                .command(CLIENT)
                .args(["--send", "hello", "--read", &gateway_addr]),
        );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "100",
        "reply through the proxy"
    );
    let m = gw.wait_for("client and upstream connections", |m| {
        m.sum(CONNECTIONS, &[]) >= 2.0
    });
    let client = [
        ("route", "gateway"),
        ("provider", "litellm"),
        ("namespace", "team-a"),
        ("process", "gwclient"),
    ];
    assert_eq!(m.sum(CONNECTIONS, &client), 1.0, "{}", m.text);
    let upstream = [
        ("route", "gateway_upstream"),
        ("provider", "openai"),
        ("namespace", "ai-gateway"),
        ("pod", "litellm-0"),
        ("process", "gwproxy"),
    ];
    assert_eq!(m.sum(CONNECTIONS, &upstream), 1.0, "{}", m.text);
    assert_eq!(
        m.sum(CONNECTIONS, &[("route", "direct")]),
        0.0,
        "the gateway's own calls are not direct:\n{}",
        m.text
    );
}

#[test]
fn bytes_sent_and_received_match_the_traffic() {
    if !privileged() {
        return;
    }
    const SENT: usize = 1234;
    const RECEIVED: usize = 7000;
    let provider = Listener::bind_reply("127.0.0.2:0", RECEIVED);
    let node = Node::new();
    let agent = node.pod("team-b", "batch-1", "worker", 4);
    let gw = node.gatewatch(&["--provider", &provider_rule(provider.addr)]);
    let out = run_ok(
        agent
            .cgroup
            .command(CLIENT)
            .args(["--send-bytes", &SENT.to_string(), "--read"])
            .arg(provider.addr.to_string()),
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        RECEIVED.to_string()
    );
    let bytes = "gatewatch_bytes_total";
    let base = [
        ("route", "direct"),
        ("namespace", "team-b"),
        ("pod", "batch-1"),
        ("container", "worker"),
    ];
    let m = gw.wait_for("byte counters after close", |m| {
        m.sum(bytes, &[("direction", "received")]) > 0.0
    });
    let with = |dir: &'static str| {
        let mut l = base.to_vec();
        l.push(("direction", dir));
        l
    };
    // Plain TCP: the kernel's counters are exactly the application bytes.
    assert_eq!(m.sum(bytes, &with("sent")), SENT as f64, "{}", m.text);
    assert_eq!(
        m.sum(bytes, &with("received")),
        RECEIVED as f64,
        "{}",
        m.text
    );
    assert_eq!(
        m.sum(
            "gatewatch_connection_duration_seconds_count",
            &[("route", "direct")]
        ),
        1.0,
        "{}",
        m.text
    );
    assert_eq!(
        m.sum("gatewatch_connection_failures_total", &[]),
        0.0,
        "a clean close is no failure:\n{}",
        m.text
    );
}

#[test]
fn refused_connects_are_failures_and_active_returns_to_zero() {
    if !privileged() {
        return;
    }
    let provider = Listener::bind("127.0.0.2:0");
    let closed_port = format!("127.0.0.2:{}", free_port());
    let node = Node::new();
    let agent = node.pod("team-c", "svc-1", "app", 5);
    let gw = node.gatewatch(&["--provider", "openai=127.0.0.2"]);

    let out = agent
        .cgroup
        .command(CLIENT)
        .arg(&closed_port)
        .output()
        .expect("run gwclient");
    assert!(!out.status.success(), "connect to a closed port must fail");
    let refused = [
        ("reason", "refused"),
        ("route", "direct"),
        ("namespace", "team-c"),
    ];
    gw.wait_for("a refused connection", |m| {
        m.sum("gatewatch_connection_failures_total", &refused) == 1.0
    });

    let active = "gatewatch_active_connections";
    let mut holder = ChildGuard(
        agent
            .cgroup
            .command(CLIENT)
            .args(["--hold-ms", "3000"])
            .arg(provider.addr.to_string())
            .spawn()
            .expect("gwclient"),
    );
    gw.wait_for("one active connection", |m| {
        m.sum(active, &[("route", "direct"), ("pod", "svc-1")]) == 1.0
    });
    assert!(holder.0.wait().expect("wait gwclient").success());
    let m: Metrics = gw.wait_for("active back to zero", |m| {
        m.sum(active, &[("route", "direct")]) == 0.0
    });
    assert_eq!(
        m.sum(CONNECTIONS, &[("route", "direct")]),
        2.0,
        "{}",
        m.text
    );
}
