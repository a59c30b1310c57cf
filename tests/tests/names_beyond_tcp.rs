//! Names beyond the TCP ClientHello: QUIC (HTTP/3 on UDP) named by the
//! ClientHello in its Initial packets, DNS answers received over TCP, and
//! IPv6 packets that carry extension headers. Real clients (aioquic,
//! Python sockets) against peers in a network namespace made by the test.
use std::{
    io::{BufRead as _, BufReader},
    path::Path,
    process::Stdio,
};

use tests::{
    Metrics,
    lab::{self, ChildGuard, NamingLab},
    privileged, run_ok,
};

const CONNECTIONS: &str = "gatewatch_connections_total";
const BYTES: &str = "gatewatch_bytes_total";
/// Body the HTTP/3 peer answers with.
const H3_BODY: u64 = 5000;

fn script(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name)
        .display()
        .to_string()
}

/// The HTTP/3 peer on UDP 443 of the OpenAI and Azure OpenAI test
/// addresses, in the lab's namespace (not in the watched cgroup).
fn h3_server(lab: &NamingLab) -> ChildGuard {
    let certs = lab::certs();
    let mut cmd = lab.ns.command(None, "python3");
    cmd.arg(script("h3_server.py"))
        .arg("--cert")
        .arg(&certs.cert)
        .arg("--key")
        .arg(&certs.key)
        .args(["--host", lab::OPENAI.1, "--host", lab::AZURE_CHAIN_ADDR])
        .args(["--body-bytes", &H3_BODY.to_string()])
        .stdout(Stdio::piped());
    let mut child = ChildGuard(cmd.spawn().expect("start h3_server.py (aioquic)"));
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().expect("h3 server stdout"))
        .read_line(&mut line)
        .expect("read h3 server readiness");
    assert_eq!(line.trim(), "ready", "h3_server.py did not start");
    child
}

/// One HTTP/3 GET by aioquic in the watched cgroup; returns its report.
fn h3_get(lab: &NamingLab, host: &str, sni: &str, extra: &[&str]) -> String {
    let out = run_ok(
        lab.client("python3")
            .arg(script("h3_client.py"))
            .args(["--host", host, "--sni", sni])
            .args(extra),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_sum(lab: &NamingLab, name: &str, labels: &[(&str, &str)], want: f64) -> Metrics {
    lab.gw
        .wait_for(&format!("{name} ≥ {want} with {labels:?}"), |m| {
            m.sum(name, labels) >= want
        })
}

#[test]
fn an_http3_client_is_named_by_the_sni_in_its_initial_and_its_bytes_are_counted() {
    if !privileged() {
        return;
    }
    let lab = NamingLab::start(&[]);
    let _h3 = h3_server(&lab);
    let report = h3_get(&lab, lab::OPENAI.1, lab::OPENAI.0, &[]);
    assert!(
        report.contains(&format!("status 200 body {H3_BODY}")),
        "the HTTP/3 exchange worked: {report}"
    );
    let quic = [
        ("route", "direct"),
        ("provider", "openai"),
        ("endpoint", "api.openai.com:443"),
        ("name_source", "sni"),
        ("transport", "quic"),
        ("process", "python3"),
    ];
    let m = wait_sum(&lab, CONNECTIONS, &quic, 1.0);
    assert_eq!(
        m.sum(CONNECTIONS, &[]),
        1.0,
        "one QUIC flow, counted once, nothing else:\n{}",
        m.text
    );
    // The client's socket is closed when it exits: the flow ends with its
    // UDP payload bytes, the body and the handshake included.
    let received = [("direction", "received"), ("transport", "quic")];
    let m = wait_sum(&lab, BYTES, &received, H3_BODY as f64);
    let sent = m.sum(BYTES, &[("direction", "sent"), ("transport", "quic")]);
    assert!(
        sent >= 1200.0,
        "the client's Initial alone is 1200 bytes, counted {sent}:\n{}",
        m.text
    );
    assert_eq!(
        m.sum("gatewatch_active_connections", &[("transport", "quic")]),
        0.0,
        "{}",
        m.text
    );
    assert_eq!(
        m.sum("gatewatch_connection_failures_total", &[]),
        0.0,
        "{}",
        m.text
    );
}

#[test]
fn a_quic_v2_hello_spanning_two_initials_is_named() {
    if !privileged() {
        return;
    }
    let lab = NamingLab::start(&[]);
    let _h3 = h3_server(&lab);
    let report = h3_get(
        &lab,
        lab::AZURE_CHAIN_ADDR,
        lab::AZURE_OPENAI,
        &["--version", "2", "--alpn-count", "40"],
    );
    assert!(report.contains("version 0x6b3343cf"), "QUIC v2: {report}");
    wait_sum(
        &lab,
        CONNECTIONS,
        &[
            ("route", "direct"),
            ("provider", "azure.ai.openai"),
            ("endpoint", "contoso.openai.azure.com:443"),
            ("name_source", "sni"),
            ("transport", "quic"),
        ],
        1.0,
    );
}

/// Python: `a_query(name)`, a DNS A query for `name` as the wire carries
/// it (no resolver involved, so only the answer the test reads names).
const DNS_QUERY_PY: &str = "import socket, struct\n\
def a_query(name):\n\
\x20   q = struct.pack('>HHHHHH', 0x1234, 0x0100, 1, 0, 0, 0)\n\
\x20   q += b''.join(bytes([len(p)]) + p.encode() for p in name.split('.')) + b'\\x00'\n\
\x20   return q + struct.pack('>HH', 1, 1)\n";

#[test]
fn a_dns_answer_received_over_tcp_names_a_later_connection() {
    if !privileged() {
        return;
    }
    let lab = NamingLab::start(&[]);
    // A hand-made A query over TCP to dnsmasq, then a connection to the
    // answer with no payload: only the TCP answer can name it.
    lab.python(&format!(
        "{DNS_QUERY_PY}q = a_query('{name}')\n\
         s = socket.create_connection(('127.0.0.53', 53), timeout=3)\n\
         s.sendall(struct.pack('>H', len(q)) + q)\n\
         (n,) = struct.unpack('>H', s.recv(2, socket.MSG_WAITALL))\n\
         msg = s.recv(n, socket.MSG_WAITALL)\n\
         s.close()\n\
         addr = socket.inet_ntoa(msg[-4:])\n\
         assert addr == '{addr}', addr\n\
         socket.create_connection((addr, 443), timeout=3).close()\n",
        name = lab::ANTHROPIC.0,
        addr = lab::ANTHROPIC.1,
    ));
    let m = wait_sum(
        &lab,
        CONNECTIONS,
        &[
            ("route", "direct"),
            ("provider", "anthropic"),
            ("endpoint", "api.anthropic.com:443"),
            ("name_source", "dns"),
            ("transport", "tcp"),
        ],
        1.0,
    );
    assert_eq!(
        m.sum("gatewatch_parse_errors_total", &[("kind", "dns")]),
        0.0,
        "{}",
        m.text
    );
}

/// Sticky IPv6 options (RFC 3542): every packet of the socket carries a
/// hop-by-hop or destination-options header of one PadN option.
const EXT_HEADER_PY: &str = "import socket\nPADN_8 = bytes([0, 0, 1, 4, 0, 0, 0, 0])\n";

#[test]
fn an_ipv6_client_whose_packets_carry_extension_headers_is_named() {
    if !privileged() {
        return;
    }
    let lab = NamingLab::start(&[]);
    // TLS over IPv6 with a hop-by-hop header on every segment: named by SNI.
    lab.python(&format!(
        "{EXT_HEADER_PY}import os, ssl\n\
         s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)\n\
         s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_HOPOPTS, PADN_8)\n\
         s.settimeout(5)\n\
         s.connect(('::1', 443))\n\
         t = ssl.create_default_context(cafile=os.environ['CERT']).wrap_socket(s, server_hostname='{openai}')\n\
         t.sendall(b'GET /v1/models HTTP/1.1\\r\\nHost: {openai}\\r\\nConnection: close\\r\\n\\r\\n')\n\
         assert t.recv(100).startswith(b'HTTP/1.')\n\
         t.close()\n",
        openai = lab::OPENAI.0,
    ));
    // A DNS answer in IPv6 packets with a destination-options header (a
    // responder on [::1]:53 whose socket carries it), then a connection to
    // the answer: named by DNS.
    lab.python(&format!(
        "{EXT_HEADER_PY}{DNS_QUERY_PY}import threading\n\
         srv = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\n\
         srv.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_DSTOPTS, PADN_8)\n\
         srv.bind(('::1', 53))\n\
         def answer():\n\
         \x20   q, peer = srv.recvfrom(512)\n\
         \x20   head = q[:2] + struct.pack('>HHHHH', 0x8180, 1, 1, 0, 0)\n\
         \x20   rr = b'\\xc0\\x0c' + struct.pack('>HHIH', 1, 1, 60, 4) + socket.inet_aton('{addr}')\n\
         \x20   srv.sendto(head + q[12:] + rr, peer)\n\
         threading.Thread(target=answer, daemon=True).start()\n\
         c = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\n\
         c.settimeout(3)\n\
         c.sendto(a_query('{name}'), ('::1', 53))\n\
         r = c.recv(512)\n\
         assert socket.inet_ntoa(r[-4:]) == '{addr}'\n\
         socket.create_connection(('{addr}', 443), timeout=3).close()\n",
        name = lab::ANTHROPIC.0,
        addr = lab::ANTHROPIC.1,
    ));
    let m = wait_sum(
        &lab,
        CONNECTIONS,
        &[
            ("route", "direct"),
            ("provider", "anthropic"),
            ("name_source", "dns"),
        ],
        1.0,
    );
    assert_eq!(
        m.sum(
            CONNECTIONS,
            &[
                ("route", "direct"),
                ("provider", "openai"),
                ("name_source", "sni")
            ]
        ),
        1.0,
        "{}",
        m.text
    );
    assert_eq!(
        m.sum(
            "gatewatch_events_dropped_total",
            &[("source", "ipv6_extension_headers")]
        ),
        0.0,
        "{}",
        m.text
    );
}
