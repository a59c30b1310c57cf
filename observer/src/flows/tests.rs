//! The flow table against the real outputs: what it counts, once, with
//! which labels, and how it follows a connection to its close.
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use observer_common::{TCP_ESTABLISHED, TCP_SYN_SENT};

use super::*;
use crate::{
    capture::{Chunk, Closed, ConnectEvent, Event, StateChange, StateEvent},
    classification::{Catalog, Classifier, Kind, rule},
    naming::{self, NameSource},
    outputs::{FlowLog, Metrics, Outputs},
};

fn table(wait_ms: u64, record_other: bool) -> (FlowTable<Outputs>, Arc<Metrics>) {
    table_sized(wait_ms, record_other, 4)
}

fn table_sized(
    wait_ms: u64,
    record_other: bool,
    max_pending: usize,
) -> (FlowTable<Outputs>, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    let rules = vec![
        rule("127.0.0.3:8443", Kind::Gateway, "corp-gw", "test").unwrap(),
        rule("127.0.0.2:443", Kind::Model, "openai", "test").unwrap(),
    ];
    let classifier = Classifier::new(rules, Catalog::builtin().clone(), Vec::new(), false);
    let settings = FlowSettings {
        name_wait: Duration::from_millis(wait_ms),
        record_other_endpoints: record_other,
        max_pending,
        dns_cache: 16,
        label_cap: 100,
        max_live: 2,
        series_ttl: Duration::from_secs(300),
        enforce: crate::enforcement::Mode::Off,
        tls_call_copy_max: crate::inspection::connection::CALL_COPY_MAX,
    };
    let identify: Identify = Box::new(|_, _, _| WorkloadInfo::default().into());
    let log = Arc::new(FlowLog::new());
    (
        FlowTable::new(
            settings,
            classifier,
            Outputs::new(metrics.clone(), log),
            identify,
        ),
        metrics,
    )
}

pub(super) fn connect(cookie: u64, dst: &str) -> Event {
    Event::Connect(ConnectEvent {
        ts_ns: 1,
        cookie,
        cgroup_id: 1,
        tgid: 10,
        pid: 10,
        uid: 0,
        protocol: 6,
        dst: dst.parse().unwrap(),
        comm: "client".into(),
        refused: false,
    })
}

/// route, provider, endpoint, process, name_source (no workload labels in these tests).
fn count(m: &Metrics, [route, provider, endpoint, source, process]: [&str; 5]) -> u64 {
    m.connections
        .with_label_values(&[
            route, provider, endpoint, "", "", "", process, "tcp", source,
        ])
        .get()
}

fn state(cookie: u64, ts_ns: u64, change: StateChange) -> Event {
    Event::State(StateEvent {
        ts_ns,
        cookie,
        change,
    })
}

fn closed(sent: u64, received: u64, old_state: u32, retrans: u32) -> StateChange {
    closed_rst(sent, received, old_state, retrans, false)
}

/// As the kernel reports a close; `peer_reset` when the peer sent a RST.
fn closed_rst(
    sent: u64,
    received: u64,
    old_state: u32,
    retrans: u32,
    peer_reset: bool,
) -> StateChange {
    StateChange::Closed(Closed {
        bytes_sent: sent,
        bytes_received: received,
        old_state,
        total_retrans: retrans,
        peer_reset,
        no_syn: false,
        datagram: false,
    })
}

/// As the release program reports a socket whose connect sent no SYN.
fn unsent(old_state: u32) -> StateChange {
    match closed(0, 0, old_state, 0) {
        StateChange::Closed(c) => StateChange::Closed(Closed { no_syn: true, ..c }),
        other => other,
    }
}

/// `gatewatch_connection_failures_total` of the `DIRECT` labels for `reason`.
fn direct_failures(m: &Metrics, reason: &str) -> u64 {
    let mut labels = vec![reason];
    labels.extend(DIRECT);
    m.failures.with_label_values(&labels).get()
}

const DIRECT: [&str; 8] = [
    "direct",
    "openai",
    "127.0.0.2:443",
    "",
    "",
    "",
    "client",
    "tcp",
];

#[test]
fn bytes_duration_and_active_follow_the_connection_lifecycle() {
    let (mut t, m) = table(0, false);
    let now = Instant::now();
    t.handle(connect(1, "127.0.0.2:443"), now);
    t.handle(state(1, 2, StateChange::Established), now);
    assert_eq!(m.active.with_label_values(&DIRECT).get(), 1);
    // Closed from FIN_WAIT2: counters include our SYN and FIN and the peer's FIN.
    t.handle(state(1, 2_000_000_001, closed(302, 5001, 5, 0)), now);
    assert_eq!(m.active.with_label_values(&DIRECT).get(), 0);
    let mut sent = vec!["sent"];
    sent.extend(DIRECT);
    let mut received = vec!["received"];
    received.extend(DIRECT);
    assert_eq!(m.bytes.with_label_values(&sent).get(), 300);
    assert_eq!(m.bytes.with_label_values(&received).get(), 5000);
    let h = m.duration.with_label_values(&["direct", "openai"]);
    assert_eq!(h.get_sample_count(), 1);
    assert!(
        (h.get_sample_sum() - 2.0).abs() < 1e-6,
        "{}",
        h.get_sample_sum()
    );
    assert_eq!(
        m.failures
            .with_label_values(&[
                "reset", DIRECT[0], DIRECT[1], DIRECT[2], "", "", "", "client", "tcp"
            ])
            .get(),
        0
    );
}

#[test]
fn refused_timed_out_and_reset_connections_are_failures_by_reason() {
    let (mut t, m) = table(100, false);
    let now = Instant::now();
    let fail = |reason: &str| direct_failures(&m, reason);
    // Closed while still waiting for a name: applied when counted.
    t.handle(connect(1, "127.0.0.2:443"), now);
    t.handle(state(1, 5, closed_rst(0, 0, TCP_SYN_SENT, 0, true)), now);
    t.handle(connect(2, "127.0.0.2:443"), now);
    t.handle(state(2, 5, closed(0, 0, TCP_SYN_SENT, 2)), now);
    let done = t.expire(now + Duration::from_millis(100));
    assert_eq!(
        done.iter().map(|f| f.state).collect::<Vec<_>>(),
        [FlowState::Failed, FlowState::Failed]
    );
    assert_eq!((fail("refused"), fail("timeout")), (1, 1));
    t.handle(connect(3, "127.0.0.2:443"), now);
    t.handle(state(3, 5, StateChange::Established), now);
    t.expire(now + Duration::from_millis(200));
    t.handle(
        state(3, 9, closed_rst(10, 10, TCP_ESTABLISHED, 0, true)),
        now,
    );
    assert_eq!(fail("reset"), 1);
    assert_eq!(m.active.with_label_values(&DIRECT).get(), 0);
    assert_eq!(t.live_len(), 0, "closed flows leave the live table");
}

#[test]
fn a_connection_closed_before_it_is_named_leaves_the_active_gauge_at_zero() {
    let (mut t, m) = table(100, false);
    let now = Instant::now();
    t.handle(connect(1, "127.0.0.2:443"), now);
    t.handle(state(1, 2, StateChange::Established), now);
    t.handle(state(1, 3, closed(2, 2, 5, 0)), now);
    let done = t.expire(now + Duration::from_millis(100));
    assert_eq!(done[0].state, FlowState::Closed);
    assert_eq!(m.active.with_label_values(&DIRECT).get(), 0);
    assert_eq!(t.live_len(), 0);
}

#[test]
fn a_full_live_table_evicts_the_oldest_and_keeps_the_gauge_honest() {
    let (mut t, m) = table(0, false);
    let now = Instant::now();
    for cookie in 1..=3 {
        t.handle(connect(cookie, "127.0.0.2:443"), now);
        t.handle(state(cookie, 2, StateChange::Established), now);
    }
    assert_eq!(t.live_len(), 2);
    assert_eq!(m.flow_evictions.with_label_values(&["live"]).get(), 1);
    assert_eq!(m.active.with_label_values(&DIRECT).get(), 2);
    // A close for the evicted flow is ignored, not double-counted.
    t.handle(state(1, 9, closed(1, 1, 4, 0)), now);
    assert_eq!(m.active.with_label_values(&DIRECT).get(), 2);
}

#[test]
fn connections_are_counted_once_after_the_name_wait() {
    let (mut t, m) = table(100, false);
    let t0 = Instant::now();
    assert!(t.handle(connect(1, "127.0.0.2:443"), t0).is_empty());
    assert!(t.expire(t0 + Duration::from_millis(50)).is_empty());
    let done = t.expire(t0 + Duration::from_millis(100));
    assert_eq!(done.len(), 1);
    assert!(t.expire(t0 + Duration::from_secs(5)).is_empty());
    assert_eq!(
        count(&m, ["direct", "openai", "127.0.0.2:443", "ip", "client"]),
        1
    );
}

#[test]
fn other_route_has_no_endpoint_unless_opted_in() {
    let (mut t, m) = table(0, false);
    t.handle(connect(1, "127.0.0.9:80"), Instant::now());
    assert_eq!(count(&m, ["other", "", "", "ip", "client"]), 1);
    let (mut t, m) = table(0, true);
    t.handle(connect(1, "[::1]:80"), Instant::now());
    assert_eq!(count(&m, ["other", "", "[::1]:80", "ip", "client"]), 1);
}

#[test]
fn a_full_table_counts_the_oldest_early_and_says_so() {
    let (mut t, m) = table(1000, false);
    let now = Instant::now();
    for cookie in 1..=5 {
        t.handle(connect(cookie, "127.0.0.3:8443"), now);
    }
    assert_eq!(t.pending_len(), 4);
    assert_eq!(m.dropped.with_label_values(&["flow_table_full"]).get(), 1);
    assert_eq!(
        count(&m, ["gateway", "corp-gw", "127.0.0.3:8443", "ip", "client"]),
        1
    );
}

pub(super) fn payload(cookie: u64, offset: u32, data: &[u8]) -> Event {
    Event::Payload(Chunk {
        ts_ns: 1,
        cookie,
        cgroup_id: 1,
        offset,
        total: data.len() as u32,
        data: Bytes::copy_from_slice(data),
    })
}

pub(super) const CURL_HELLO: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/tls_curl_api_openai.bin"
));

#[test]
fn a_client_hello_in_two_segments_is_named_as_soon_as_it_is_whole() {
    let (mut t, m) = table(1000, false);
    let now = Instant::now();
    t.handle(connect(1, "127.0.0.9:443"), now);
    let (a, b) = CURL_HELLO.split_at(100);
    assert!(
        t.handle(payload(1, 0, a), now).is_empty(),
        "waits for the rest"
    );
    let done = t.handle(payload(1, 100, b), now);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].name.as_deref(), Some("api.openai.com"));
    assert_eq!(
        count(
            &m,
            ["direct", "openai", "api.openai.com:443", "sni", "client"]
        ),
        1
    );
}

#[test]
fn a_hello_still_incomplete_at_the_deadline_is_named_from_what_arrived() {
    let (mut t, m) = table(100, false);
    let now = Instant::now();
    t.handle(connect(1, "127.0.0.9:443"), now);
    // The tail never arrives, but the SNI extension is in the head.
    let cut = CURL_HELLO.len() - 40;
    t.handle(payload(1, 0, &CURL_HELLO[..cut]), now);
    let done = t.expire(now + Duration::from_millis(100));
    assert_eq!(done[0].name_source, NameSource::Sni, "{:?}", done[0]);
    assert_eq!(
        count(
            &m,
            ["direct", "openai", "api.openai.com:443", "sni", "client"]
        ),
        1
    );
}

#[test]
fn plain_http_is_named_by_its_host_header() {
    let (mut t, m) = table(1000, false);
    let now = Instant::now();
    t.handle(connect(1, "127.0.0.9:80"), now);
    t.handle(
        payload(
            1,
            0,
            b"GET /v1/models HTTP/1.1\r\nHost: api.openai.com\r\n\r\n",
        ),
        now,
    );
    assert_eq!(
        count(
            &m,
            [
                "direct",
                "openai",
                "api.openai.com:80",
                "http_host",
                "client"
            ]
        ),
        1
    );
}

#[test]
fn an_address_in_the_host_header_is_not_a_name() {
    let (mut t, m) = table(1000, false);
    let now = Instant::now();
    t.handle(connect(1, "127.0.0.2:443"), now);
    t.handle(
        payload(1, 0, b"GET / HTTP/1.1\r\nHost: 127.0.0.2:443\r\n\r\n"),
        now,
    );
    assert_eq!(
        count(&m, ["direct", "openai", "127.0.0.2:443", "ip", "client"]),
        1
    );
}

#[test]
fn a_local_abort_and_an_abandoned_connect_are_not_failures() {
    let (mut t, m) = table(0, false);
    let now = Instant::now();
    let failures = || {
        use prometheus::core::Collector as _;
        m.failures.collect()[0]
            .get_metric()
            .iter()
            .map(|s| s.get_counter().get_value())
            .sum::<f64>()
    };
    // A client closing with unread bytes (a TLS close_notify) sends a RST
    // itself: established → close without the peer's RST.
    t.handle(connect(1, "127.0.0.2:443"), now);
    t.handle(state(1, 2, StateChange::Established), now);
    let done = t.handle(state(1, 9, closed(300, 5000, TCP_ESTABLISHED, 0)), now);
    assert!(done.is_empty());
    // A Happy Eyeballs loser: closed while connecting, before any answer.
    t.handle(connect(2, "127.0.0.2:443"), now);
    t.handle(state(2, 3, closed(0, 0, TCP_SYN_SENT, 0)), now);
    assert_eq!(failures(), 0.0, "neither is a failure");
    assert_eq!(t.live_len(), 0);
}

#[test]
fn a_connect_that_never_sent_its_syn_is_a_not_sent_failure_and_leaves_the_live_table() {
    let (mut t, m) = table(100, false);
    let now = Instant::now();
    let fail = |reason: &str| direct_failures(&m, reason);
    // No route (or another program's EPERM): the release program reports
    // the socket, still in CLOSE.
    let mut done = t.handle(connect(1, "127.0.0.2:443"), now);
    done.extend(t.handle(state(1, 2, unsent(observer_common::TCP_CLOSE)), now));
    done.extend(t.expire(now + Duration::from_millis(100)));
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(done[0].close, Some(super::record::CloseHow::NotSent));
    assert_eq!(done[0].state, FlowState::Failed);
    assert_eq!(fail("not_sent"), 1);
    // A deferred Fast Open connect released before any write: given up,
    // not failed.
    let mut done = t.handle(connect(2, "127.0.0.2:443"), now);
    done.extend(t.handle(state(2, 3, unsent(TCP_SYN_SENT)), now));
    done.extend(t.expire(now + Duration::from_millis(200)));
    assert_eq!(done[0].close, Some(super::record::CloseHow::Abandoned));
    assert_eq!(fail("not_sent"), 1);
    assert_eq!(t.live_len(), 0, "nothing lingers");
}

#[test]
fn metric_handles_of_a_label_set_leave_with_its_series_after_the_ttl() {
    let (mut t, m) = table(0, false);
    let now = Instant::now();
    t.handle(connect(1, "127.0.0.2:443"), now);
    t.handle(state(1, 2, StateChange::Established), now);
    t.handle(state(1, 3, closed(10, 10, TCP_ESTABLISHED, 0)), now);
    assert_eq!(t.sink().series_len(), 1, "one label set in use");
    // Still within the TTL: kept.
    t.sweep(now + Duration::from_secs(299));
    assert_eq!(t.sink().series_len(), 1);
    t.sweep(now + Duration::from_secs(301));
    assert_eq!(t.sink().series_len(), 0, "handles age out with the set");
    assert!(
        !m.render().contains(r#"endpoint="127.0.0.2:443""#),
        "and so do its series"
    );
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

fn udp_connect(cookie: u64, dst: &str) -> Event {
    match connect(cookie, dst) {
        Event::Connect(c) => Event::Connect(ConnectEvent {
            protocol: observer_common::IPPROTO_UDP,
            ..c
        }),
        other => other,
    }
}

fn datagram(cookie: u64, index: u32, data: &[u8]) -> Event {
    match payload(cookie, index, data) {
        Event::Payload(c) => Event::Datagram(c),
        other => other,
    }
}

fn udp_released(sent: u64, received: u64) -> StateChange {
    match closed(sent, received, observer_common::TCP_CLOSE, 0) {
        StateChange::Closed(c) => StateChange::Closed(Closed {
            datagram: true,
            ..c
        }),
        other => other,
    }
}

#[test]
fn a_quic_flow_is_named_by_the_sni_in_its_initial_and_ends_with_its_udp_bytes() {
    let (mut t, m) = table(1000, false);
    let now = Instant::now();
    t.handle(udp_connect(1, "127.0.0.9:443"), now);
    let done = t.handle(
        datagram(1, 0, &fixture("quic/aioquic_v1_api_openai_0.bin")),
        now,
    );
    assert_eq!(done.len(), 1, "named by its first Initial");
    let flow = &done[0];
    assert_eq!(flow.name.as_deref(), Some("api.openai.com"));
    assert_eq!(flow.name_source, NameSource::Sni);
    assert_eq!(flow.alpn, ["h3"]);
    assert_eq!(flow.transport, record::Transport::Quic);
    assert_eq!(flow.quic_hello, Some(naming::quic::HelloRead::Read));
    let labels = [
        "direct",
        "openai",
        "api.openai.com:443",
        "",
        "",
        "",
        "client",
        "quic",
    ];
    assert_eq!(m.active.with_label_values(&labels).get(), 1);
    t.handle(state(1, 2_000_000_001, udp_released(2521, 6613)), now);
    assert_eq!(m.active.with_label_values(&labels).get(), 0);
    let mut sent = vec!["sent"];
    sent.extend(labels);
    assert_eq!(
        m.bytes.with_label_values(&sent).get(),
        2521,
        "UDP bytes as counted, nothing taken off for a handshake"
    );
    for reason in lifecycle::FAILURE_REASONS {
        let mut failed = vec![reason];
        failed.extend(labels);
        assert_eq!(m.failures.with_label_values(&failed).get(), 0, "{reason}");
    }
}

#[test]
fn a_quic_hello_over_two_initials_waits_for_the_second() {
    let (mut t, _) = table(1000, false);
    let now = Instant::now();
    t.handle(udp_connect(1, "127.0.0.9:443"), now);
    let first = fixture("quic/aioquic_v2_two_initials_0.bin");
    assert!(t.handle(datagram(1, 0, &first), now).is_empty());
    let done = t.handle(
        datagram(1, 1, &fixture("quic/aioquic_v2_two_initials_1.bin")),
        now,
    );
    assert_eq!(done[0].name.as_deref(), Some("contoso.openai.azure.com"));
}

#[test]
fn a_quic_flow_that_cannot_be_read_is_still_counted_and_says_why() {
    let (mut t, m) = table(100, false);
    let now = Instant::now();
    // An unknown version: counted at once, by address.
    t.handle(udp_connect(1, "127.0.0.2:443"), now);
    let mut unknown = fixture("quic/aioquic_v1_api_openai_0.bin");
    unknown[1..5].copy_from_slice(&[0x0a, 0x0a, 0x0a, 0x0a]);
    let done = t.handle(datagram(1, 0, &unknown), now);
    assert_eq!(
        done[0].quic_hello,
        Some(naming::quic::HelloRead::UnknownVersion)
    );
    assert_eq!(done[0].route, crate::classification::Route::Direct);
    // A corrupted Initial: counted at the deadline as unreadable.
    t.handle(udp_connect(2, "127.0.0.2:443"), now);
    let mut corrupt = fixture("quic/aioquic_v1_api_openai_0.bin");
    corrupt[100] ^= 0xff;
    assert!(t.handle(datagram(2, 0, &corrupt), now).is_empty());
    let done = t.expire(now + Duration::from_secs(1));
    assert_eq!(
        done[0].quic_hello,
        Some(naming::quic::HelloRead::Unreadable)
    );
    assert_eq!(m.parse_errors.with_label_values(&["quic"]).get(), 1);
}

#[test]
fn a_dns_answer_over_tcp_split_over_segments_names_a_later_connection() {
    let (mut t, m) = table(0, false);
    let now = Instant::now();
    let answer = fixture("dns_api_openai_a.bin");
    let addr = naming::dns::parse_response(&answer).unwrap().addrs[0].0;
    let mut stream = (answer.len() as u16).to_be_bytes().to_vec();
    stream.extend_from_slice(&answer);
    let (a, b) = stream.split_at(7);
    for (offset, part) in [(0, a), (7, b)] {
        t.handle(
            Event::DnsTcp(Chunk {
                ts_ns: 1,
                cookie: 50,
                cgroup_id: 1,
                offset,
                total: part.len() as u32,
                data: Bytes::copy_from_slice(part),
            }),
            now,
        );
    }
    t.handle(connect(1, &format!("{addr}:443")), now);
    assert_eq!(
        count(
            &m,
            ["direct", "openai", "api.openai.com:443", "dns", "client"]
        ),
        1
    );
}

#[test]
fn quic_hellos_assembled_at_once_are_capped_and_the_overflow_still_counted() {
    let (mut t, m) = table_sized(1000, false, QUIC_OPENINGS_MAX + 10);
    let now = Instant::now();
    for cookie in 0..=QUIC_OPENINGS_MAX as u64 {
        t.handle(udp_connect(cookie, "127.0.0.9:443"), now);
    }
    assert_eq!(m.dropped.with_label_values(&[QUIC_OPENINGS_FULL]).get(), 1);
    // The one past the cap cannot be read from its Initial...
    let hello = fixture("quic/aioquic_v1_api_openai_0.bin");
    let over = QUIC_OPENINGS_MAX as u64;
    assert!(t.handle(datagram(over, 0, &hello), now).is_empty());
    // ...but is counted at the deadline, and the cap frees up again.
    let done = t.expire(now + Duration::from_secs(2));
    assert_eq!(done.len(), QUIC_OPENINGS_MAX + 1);
    let last = done.iter().find(|f| f.cookie == over).expect("counted");
    assert_eq!(last.quic_hello, Some(naming::quic::HelloRead::Incomplete));
    t.handle(udp_connect(9999, "127.0.0.9:443"), now);
    let named = t.handle(datagram(9999, 0, &hello), now);
    assert_eq!(named[0].name.as_deref(), Some("api.openai.com"));
}
