//! Shared by the benchmarks: a flow table built as `gatewatch run` builds
//! it (default settings, built-in catalogue), and ring records encoded as
//! the kernel writes them.
#![allow(dead_code, reason = "each benchmark uses a different part")]

use std::{net::Ipv4Addr, path::PathBuf, sync::Arc, time::Duration};

use observer::{
    capture::decode::encode,
    classification::{Catalog, Classifier},
    daemon::settings::{DEFAULT_DNS_CACHE, DEFAULT_MAX_PENDING, DEFAULT_NAME_WAIT_MS},
    flows::DEFAULT_LABEL_CAP,
    flows::{DEFAULT_MAX_LIVE, FlowSettings, FlowTable, Identify, WorkloadInfo},
    outputs::{FlowLog, Metrics, Outputs},
};
use observer_common as common;

/// The daemon's defaults (config.rs), with no user rules: the built-in
/// catalogue classifies. Workload lookup is a constant (the daemon's reads
/// /proc and kubelet files once per new process, then caches).
pub fn table() -> (FlowTable<Outputs>, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    let classifier = Classifier::new(Vec::new(), Catalog::builtin().clone(), Vec::new(), false);
    let settings = FlowSettings {
        name_wait: Duration::from_millis(DEFAULT_NAME_WAIT_MS),
        record_other_endpoints: false,
        max_pending: DEFAULT_MAX_PENDING,
        dns_cache: DEFAULT_DNS_CACHE,
        label_cap: DEFAULT_LABEL_CAP,
        max_live: DEFAULT_MAX_LIVE,
        series_ttl: Duration::from_secs(300),
        enforce: observer::enforcement::Mode::Off,
        tls_call_copy_max: observer::inspection::connection::CALL_COPY_MAX,
    };
    // One shared answer, as the daemon's recent-answer cache gives.
    let workload = Arc::new(WorkloadInfo {
        exe: "/usr/bin/python3".into(),
        ..WorkloadInfo::default()
    });
    let identify: Identify = Box::new(move |_, _, _| Arc::clone(&workload));
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

pub fn fixture(name: &str) -> Vec<u8> {
    let path = fixtures_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// A `connect()` record for IPv4 `dst:port`.
pub fn connect(cookie: u64, cgroup_id: u64, dst: Ipv4Addr, port: u16) -> Vec<u8> {
    let mut daddr = [0u8; 16];
    daddr[..4].copy_from_slice(&dst.octets());
    let mut comm = [0u8; common::COMM_LEN];
    comm[..7].copy_from_slice(b"python3");
    encode::connect(&common::ConnectEvent {
        kind: common::EVENT_CONNECT,
        family: common::AF_INET,
        protocol: common::IPPROTO_TCP,
        refused: 0,
        ts_ns: 1_000,
        cookie,
        cgroup_id,
        tgid: 4242,
        pid: 4242,
        uid: 1000,
        dport: port,
        _pad1: 0,
        daddr,
        comm,
    })
}

pub fn established(cookie: u64) -> Vec<u8> {
    state(cookie, common::STATE_ESTABLISHED, 0, 0, 0)
}

/// Closed from FIN_WAIT2, as a client that closes first.
pub fn closed(cookie: u64) -> Vec<u8> {
    state(cookie, common::STATE_CLOSED, 5, 1_200, 45_000)
}

fn state(cookie: u64, state: u32, old_state: u32, sent: u64, received: u64) -> Vec<u8> {
    encode::state(&common::StateEvent {
        kind: common::EVENT_STATE,
        state,
        ts_ns: 2_000_000_000,
        cookie,
        bytes_sent: sent,
        bytes_received: received,
        old_state,
        total_retrans: 0,
        close_flags: 0,
        _pad: 0,
    })
}

pub fn payload(cookie: u64, data: &[u8]) -> Vec<u8> {
    encode::chunk(common::EVENT_PAYLOAD, cookie, 0, 0, data)
}

pub fn dns(cgroup_id: u64, message: &[u8]) -> Vec<u8> {
    encode::chunk(common::EVENT_DNS, 0, cgroup_id, 0, message)
}

/// A DNS response (NOERROR, one question, one A answer) in wire format.
pub fn dns_a_response(id: u16, name: &str, addr: Ipv4Addr, ttl: u32) -> Vec<u8> {
    let mut m = Vec::with_capacity(32 + 2 * name.len());
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&0x8180u16.to_be_bytes()); // response, RD, RA, NOERROR
    for count in [1u16, 1, 0, 0] {
        m.extend_from_slice(&count.to_be_bytes());
    }
    for label in name.split('.') {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.push(0);
    m.extend_from_slice(&1u16.to_be_bytes()); // A
    m.extend_from_slice(&1u16.to_be_bytes()); // IN
    m.extend_from_slice(&0xc00cu16.to_be_bytes()); // pointer to the question
    m.extend_from_slice(&1u16.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    m.extend_from_slice(&ttl.to_be_bytes());
    m.extend_from_slice(&4u16.to_be_bytes());
    m.extend_from_slice(&addr.octets());
    m
}

/// The i-th address of a /8 for benchmarks (10.0.0.0/8, skipping .0).
pub fn addr(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0a00_0001 + i)
}
