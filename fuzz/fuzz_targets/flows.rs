//! The flow table fed a sequence of events: connects (TCP and QUIC),
//! captured bytes and datagrams (real captures cut anywhere, or arbitrary
//! bytes), DNS answers over UDP and TCP, state changes and the passing of
//! time. Small cookie and table sizes make collisions,
//! evictions and early counts common.
//!
//! What must hold: every connect is counted exactly once, the tables stay
//! within their bounds, the active-connections gauge never goes negative,
//! and nothing is asked of the enforcer unless enforcing or told by the
//! kernel.
#![no_main]

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::Arc,
    time::{Duration, Instant},
};

use libfuzzer_sys::{
    arbitrary::{Result, Unstructured},
    fuzz_target,
};
use observer::{
    capture::decode::{
        Chunk, Closed, ConnectEvent, EnforceAction, EnforceEvent, Event, StateChange, StateEvent,
    },
    classification::{Catalog, Classifier},
    enforcement::Mode,
    flows::{FlowSettings, FlowTable, Identify, WorkloadInfo},
    outputs::{FlowLog, Metrics, Outputs},
};
use prometheus::core::Collector as _;

/// Real captures, read from the repository at build time.
const STREAMS: [&[u8]; 9] = [
    include_bytes!("../../observer/fixtures/tls_curl_api_openai.bin"),
    include_bytes!("../../observer/fixtures/tls_curl_ip_no_sni.bin"),
    include_bytes!("../../observer/fixtures/tls_python_api_openai.bin"),
    include_bytes!("../../observer/fixtures/tls_python_ip_no_sni.bin"),
    include_bytes!("../../observer/fixtures/http_curl_connect_tunnel.bin"),
    include_bytes!("../../observer/fixtures/http_curl_forward_proxy.bin"),
    include_bytes!("../../observer/fixtures/http_curl_get_models.bin"),
    include_bytes!("../../observer/fixtures/http_curl_post_chat.bin"),
    include_bytes!("../../observer/fixtures/http_python_ipv6_host.bin"),
];
const ANSWERS: [&[u8]; 4] = [
    include_bytes!("../../observer/fixtures/dns_api_openai_a.bin"),
    include_bytes!("../../observer/fixtures/dns_api_openai_aaaa.bin"),
    include_bytes!("../../observer/fixtures/dns_blocked_nxdomain.bin"),
    include_bytes!("../../observer/fixtures/dns_contoso_cname_chain_a.bin"),
];
/// DNS-over-TCP answer streams (2-byte length prefixes included).
const TCP_ANSWERS: [&[u8]; 2] = [
    include_bytes!("../../observer/fixtures/tcpdns_https_good_ech.bin"),
    include_bytes!("../../observer/fixtures/tcpdns_svcb_port.bin"),
];
/// QUIC client datagrams: Initials of one hello, and of a hello over two.
const DATAGRAMS: [&[u8]; 4] = [
    include_bytes!("../../observer/fixtures/quic/aioquic_v1_api_openai_0.bin"),
    include_bytes!("../../observer/fixtures/quic/aioquic_v2_two_initials_0.bin"),
    include_bytes!("../../observer/fixtures/quic/aioquic_v2_two_initials_1.bin"),
    include_bytes!("../../observer/fixtures/quic/h3run_v1_api_openai_1.bin"),
];
/// Addresses the captures name, and some they do not.
const DESTINATIONS: [&str; 6] = [
    "162.159.140.245:443",
    "10.20.30.40:443",
    "127.0.0.2:443",
    "[2606:4700:3032::ac43:8c10]:443",
    "[::ffff:10.0.0.1]:80",
    "192.0.2.1:8080",
];

const MAX_PENDING: usize = 4;
const MAX_LIVE: usize = 4;

fn table(
    u: &mut Unstructured<'_>,
    metrics: Arc<Metrics>,
    mode: Mode,
) -> Result<FlowTable<Outputs>> {
    let settings = FlowSettings {
        name_wait: Duration::from_millis(u.int_in_range(0..=300)?),
        record_other_endpoints: u.arbitrary()?,
        max_pending: MAX_PENDING,
        dns_cache: 8,
        label_cap: 4,
        max_live: MAX_LIVE,
        series_ttl: Duration::from_secs(300),
        enforce: mode,
        tls_call_copy_max: observer::inspection::connection::CALL_COPY_MAX,
    };
    let classifier = Classifier::new(Vec::new(), Catalog::builtin().clone(), Vec::new(), false);
    let identify: Identify = Box::new(|_, _, _| WorkloadInfo::default().into());
    Ok(FlowTable::new(
        settings,
        classifier,
        Outputs::new(metrics, Arc::new(FlowLog::new())),
        identify,
    ))
}

/// What an OpenAI-shaped client writes and reads inside TLS.
const PLAINTEXT_OUT: [&[u8]; 2] = [
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\nContent-Length: 27\r\n\r\n{\"model\":\"gpt-4o\",\"n\":1}",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0",
];
const PLAINTEXT_IN: [&[u8]; 2] = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 45\r\n\r\n{\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}",
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n5\r\ndata:\r\n0\r\n\r\n",
];

fn bytes(u: &mut Unstructured<'_>, real: &[&[u8]]) -> Result<Vec<u8>> {
    if u.ratio(3, 4)? {
        // A real capture, cut anywhere.
        let whole = *u.choose(real)?;
        let start = u.int_in_range(0..=whole.len())?;
        let end = u.int_in_range(start..=whole.len())?;
        Ok(whole[start..end].to_vec())
    } else {
        let len = u.int_in_range(0..=2048)?;
        Ok(u.bytes(len.min(u.len()))?.to_vec())
    }
}

fn chunk(u: &mut Unstructured<'_>, cookie: u64, real: &[&[u8]]) -> Result<Chunk> {
    let data = bytes(u, real)?;
    Ok(Chunk {
        ts_ns: u.arbitrary()?,
        cookie,
        cgroup_id: u.int_in_range(1..=2)?,
        offset: if u.ratio(1, 2)? {
            0
        } else {
            u.int_in_range(0..=4096)?
        },
        total: data.len() as u32,
        data: data.into(),
    })
}

fn event(u: &mut Unstructured<'_>) -> Result<Event> {
    let cookie = u.int_in_range(1..=6)?;
    Ok(match u.int_in_range(0..=9)? {
        0 => {
            let dst = if u.ratio(3, 4)? {
                u.choose(&DESTINATIONS)?.parse().expect("valid address")
            } else {
                SocketAddr::new(
                    IpAddr::V4(Ipv4Addr::from(u.arbitrary::<u32>()?)),
                    u.arbitrary()?,
                )
            };
            Event::Connect(ConnectEvent {
                ts_ns: u.arbitrary()?,
                cookie,
                cgroup_id: u.int_in_range(1..=2)?,
                tgid: 10,
                pid: 10,
                uid: 0,
                // TCP, or a UDP flow to a QUIC port.
                protocol: *u.choose(&[6, 17])?,
                dst,
                comm: "client".into(),
                refused: u.arbitrary()?,
            })
        }
        1 => Event::Payload(chunk(u, cookie, &STREAMS)?),
        2 => Event::Dns(chunk(u, cookie, &ANSWERS)?),
        3 => Event::Datagram(chunk(u, cookie, &DATAGRAMS)?),
        4 => Event::DnsTcp(chunk(u, cookie, &TCP_ANSWERS)?),
        5 => Event::State(StateEvent {
            ts_ns: u.arbitrary()?,
            cookie,
            change: StateChange::Established,
        }),
        // TLS plaintext (--tls-probes): an HTTP/1.1 exchange, or bytes.
        8 => Event::TlsOut(chunk(u, cookie, &PLAINTEXT_OUT)?),
        9 => Event::TlsIn(chunk(u, cookie, &PLAINTEXT_IN)?),
        6 => Event::Enforce(EnforceEvent {
            ts_ns: u.arbitrary()?,
            cookie,
            cgroup_id: u.int_in_range(1..=2)?,
            tgid: 10,
            action: *u.choose(&[EnforceAction::Held, EnforceAction::Denied])?,
            src: "10.0.0.9:40000".parse().expect("valid address"),
            dst: u.choose(&DESTINATIONS)?.parse().expect("valid address"),
        }),
        _ => Event::State(StateEvent {
            ts_ns: u.arbitrary()?,
            cookie,
            change: StateChange::Closed(Closed {
                // The kernel's per-socket counters: 2^48 bytes (256 TiB) is
                // past any real connection, and keeps the flow log's u64
                // totals of many connections from overflowing, which
                // arbitrary u64 counts do.
                bytes_sent: u.int_in_range(0..=1 << 48)?,
                bytes_received: u.int_in_range(0..=1 << 48)?,
                old_state: u.int_in_range(0..=12)?,
                total_retrans: u.arbitrary()?,
                peer_reset: u.arbitrary()?,
                no_syn: u.arbitrary()?,
                datagram: u.arbitrary()?,
            }),
        }),
    })
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let mode = *u.choose(&Mode::ALL)?;
    let metrics = Arc::new(Metrics::with_enforce(mode));
    let mut flows = table(u, metrics.clone(), mode)?;
    let mut had_enforce_events = false;
    let mut now = Instant::now();
    let (mut connects, mut counted) = (0usize, 0usize);
    while !u.is_empty() {
        if u.ratio(1, 5)? {
            now += Duration::from_millis(u.int_in_range(0..=400)?);
            counted += flows.expire(now).len();
        } else {
            let event = event(u)?;
            connects += usize::from(matches!(event, Event::Connect(_)));
            had_enforce_events |= matches!(event, Event::Enforce(_));
            counted += flows.handle(event, now).len();
        }
        // What the enforcer would carry out: only under deny.
        let actions = flows.take_actions();
        assert!(
            actions.is_empty() || mode == Mode::Deny || had_enforce_events,
            "{actions:?}"
        );
        assert!(flows.pending_len() <= MAX_PENDING);
        assert!(flows.live_len() <= MAX_LIVE);
        assert!(
            counted <= connects,
            "{counted} counted of {connects} connects"
        );
    }
    counted += flows.expire(now + Duration::from_secs(3600)).len();
    assert_eq!(flows.pending_len(), 0);
    assert_eq!(counted, connects, "each connect is counted exactly once");
    // Every decrement matched an increment of the same labels.
    for family in metrics.active.collect() {
        for gauge in family.get_metric() {
            let value = gauge.get_gauge().get_value();
            assert!(value >= 0.0, "active gauge {value}: {gauge:?}");
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
