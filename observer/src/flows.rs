//! The flow table: joins each connection with the bytes its client sent
//! and the DNS answers its workload received, names it, classifies it and
//! counts it exactly once.
//!
//! A connection waits at most `name_wait` for its SNI or Host; then it is
//! counted with the best name known (SNI > HTTP Host > DNS answer for its
//! address, per cgroup then node-wide > none). The table is bounded: when
//! full, the oldest waiting connection is counted early (and the early
//! count is itself counted), so nothing grows without limit.
use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    num::NonZeroUsize,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use observer_common::{TCP_ESTABLISHED, TCP_SYN_SENT};

use crate::{
    classify::{Classifier, Route, Verdict},
    dns,
    events::{Chunk, ConnectEvent, Event, StateChange, StateEvent},
    flowlog::FlowLog,
    http,
    metrics::{LabelCaps, Metrics},
    names::NameCache,
    tls,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NameSource {
    Sni,
    HttpHost,
    Dns,
    Ip,
}

impl NameSource {
    pub fn as_str(self) -> &'static str {
        match self {
            NameSource::Sni => "sni",
            NameSource::HttpHost => "http_host",
            NameSource::Dns => "dns",
            NameSource::Ip => "ip",
        }
    }
}

/// Who made a connection: Kubernetes names (empty off Kubernetes) and
/// whether it is one of the configured gateway workloads.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadInfo {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub exe: String,
    pub is_gateway: bool,
}

/// Resolves a connection's workload from its cgroup id, tgid and comm.
pub type Identify = Box<dyn FnMut(u64, u32, &str) -> WorkloadInfo + Send>;

/// Where a connection is in its life, as the API shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowState {
    Connecting,
    Established,
    Closed,
    Failed,
}

/// One classified connection, as the API shows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FlowRecord {
    pub ts_ns: u64,
    pub cookie: u64,
    pub route: Route,
    pub provider: String,
    pub endpoint: String,
    pub name: Option<String>,
    pub name_source: NameSource,
    /// CNAME chain from DNS, as evidence only: never used to classify.
    pub cnames: Vec<String>,
    pub dst: SocketAddr,
    pub process: String,
    pub tgid: u32,
    pub cgroup_id: u64,
    pub workload: WorkloadInfo,
    pub alpn: Vec<String>,
    pub verdict: Verdict,
    pub state: FlowState,
    /// Wall-clock time the connection was counted.
    pub time_unix_ms: u64,
    /// Payload bytes, once closed.
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// connect() to close, once closed.
    pub duration_ms: Option<u64>,
}

#[derive(Clone, Debug)]
pub struct FlowSettings {
    pub name_wait: Duration,
    pub record_other_endpoints: bool,
    pub max_pending: usize,
    pub dns_cache: usize,
    pub label_cap: usize,
    /// Counted connections still open, tracked until they close.
    pub max_live: usize,
}

/// Open connections tracked for their close, at most (see `FlowSettings::max_live`).
pub const DEFAULT_MAX_LIVE: usize = 262_144;
/// A flow's metric label values, in `FLOW_LABELS` order.
type Labels = Arc<[String; 7]>;

/// Distinct label sets kept for sharing between live flows; past this the
/// interner starts over (flows keep their own copies).
const INTERNED_LABEL_SETS: usize = 65_536;

/// Closed cookies tolerated in the live order queue before it is compacted.
const LIVE_ORDER_SLACK: usize = 1024;

/// What the kernel said of a connection's end.
#[derive(Clone, Copy, Debug)]
struct Close {
    ts_ns: u64,
    bytes_sent: u64,
    bytes_received: u64,
    old_state: u32,
    total_retrans: u32,
}

struct Pending {
    conn: ConnectEvent,
    deadline: Instant,
    /// Copied segments, by stream offset (at most PAYLOAD_SEGMENTS_MAX).
    segments: Vec<(u32, Bytes)>,
    established: bool,
    closed: Option<Close>,
    /// Resolved at connect, while a short-lived client still exists.
    workload: WorkloadInfo,
}

/// A counted connection that has not closed yet.
struct Live {
    /// Shared by every flow with the same labels (see `FlowTable::intern`).
    labels: Labels,
    connect_ts_ns: u64,
    established: bool,
}

/// What the payload seen so far says about the connection's name.
enum Naming {
    Wait,
    Done {
        sni: Option<String>,
        host: Option<String>,
        alpn: Vec<String>,
    },
}

pub struct FlowTable {
    settings: FlowSettings,
    classifier: Classifier,
    metrics: Arc<Metrics>,
    caps: LabelCaps,
    names: NameCache,
    pending: HashMap<u64, Pending>,
    /// Cookies in connect order; deadlines are monotonic because
    /// `name_wait` is constant. Stale cookies (already counted) are skipped.
    order: VecDeque<u64>,
    live: HashMap<u64, Live>,
    /// Live cookies, oldest first, for eviction when `live` is full.
    live_order: VecDeque<u64>,
    log: Arc<FlowLog>,
    identify: Identify,
    /// Live flows mostly repeat a few label sets: one copy each.
    interned: std::collections::HashSet<Labels>,
}

impl FlowTable {
    pub fn new(
        settings: FlowSettings,
        classifier: Classifier,
        metrics: Arc<Metrics>,
        log: Arc<FlowLog>,
        identify: Identify,
    ) -> Self {
        let names =
            NameCache::new(NonZeroUsize::new(settings.dns_cache).unwrap_or(NonZeroUsize::MIN));
        Self {
            caps: LabelCaps::new(settings.label_cap),
            settings,
            classifier,
            metrics,
            names,
            pending: HashMap::new(),
            order: VecDeque::new(),
            live: HashMap::new(),
            live_order: VecDeque::new(),
            log,
            identify,
            interned: std::collections::HashSet::new(),
        }
    }

    fn intern(&mut self, labels: [String; 7]) -> Labels {
        if let Some(shared) = self.interned.get(&labels) {
            return shared.clone();
        }
        if self.interned.len() >= INTERNED_LABEL_SETS {
            self.interned.clear();
        }
        let shared = Arc::new(labels);
        self.interned.insert(shared.clone());
        shared
    }

    pub fn live_len(&self) -> usize {
        self.live.len()
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Handles one decoded event; returns the flows it finished.
    pub fn handle(&mut self, event: Event, now: Instant) -> Vec<FlowRecord> {
        self.metrics.events.with_label_values(&[event.kind()]).inc();
        match event {
            Event::Connect(conn) => self.on_connect(conn, now),
            Event::Payload(chunk) => self.on_payload(chunk, now).into_iter().collect(),
            Event::Dns(chunk) => {
                self.on_dns(&chunk, now);
                Vec::new()
            }
            Event::State(state) => {
                self.on_state(state);
                Vec::new()
            }
        }
    }

    fn on_state(&mut self, ev: StateEvent) {
        if let Some(p) = self.pending.get_mut(&ev.cookie) {
            match ev.change {
                StateChange::Established => p.established = true,
                StateChange::Closed {
                    bytes_sent,
                    bytes_received,
                    old_state,
                    total_retrans,
                } => {
                    p.closed = Some(Close {
                        ts_ns: ev.ts_ns,
                        bytes_sent,
                        bytes_received,
                        old_state,
                        total_retrans,
                    })
                }
            }
            return;
        }
        match ev.change {
            StateChange::Established => {
                if let Some(live) = self.live.get_mut(&ev.cookie)
                    && !live.established
                {
                    live.established = true;
                    self.metrics
                        .active
                        .with_label_values(&label_refs(&live.labels))
                        .inc();
                    self.log
                        .updated(ev.cookie, false, |f| f.state = FlowState::Established);
                }
            }
            StateChange::Closed {
                bytes_sent,
                bytes_received,
                old_state,
                total_retrans,
            } => {
                if let Some(live) = self.live.remove(&ev.cookie) {
                    let close = Close {
                        ts_ns: ev.ts_ns,
                        bytes_sent,
                        bytes_received,
                        old_state,
                        total_retrans,
                    };
                    let state = self.apply_close(&live, &close, true);
                    let (sent, received) = payload_bytes(&close, live.established);
                    let duration_ms = close.ts_ns.saturating_sub(live.connect_ts_ns) / 1_000_000;
                    self.log.updated(ev.cookie, live.established, |f| {
                        f.state = state;
                        f.bytes_sent = sent;
                        f.bytes_received = received;
                        f.duration_ms = Some(duration_ms);
                    });
                }
            }
        }
    }

    /// Records a finished connection: bytes, duration, failure reason, and
    /// the end of its share of the active gauge (`in_gauge`: the flow was
    /// counted there, which a connection that closed while still waiting
    /// for its name never was). Returns its final state.
    fn apply_close(&self, live: &Live, close: &Close, in_gauge: bool) -> FlowState {
        let m = &self.metrics;
        let labels = label_refs(&live.labels);
        let (sent, received) = payload_bytes(close, live.established);
        for (direction, n) in [("sent", sent), ("received", received)] {
            if n > 0 {
                let mut with_dir = vec![direction];
                with_dir.extend_from_slice(&labels);
                m.bytes.with_label_values(&with_dir).inc_by(n);
            }
        }
        let seconds = close.ts_ns.saturating_sub(live.connect_ts_ns) as f64 / 1e9;
        m.duration
            .with_label_values(&[labels[0], labels[1]])
            .observe(seconds);
        if in_gauge && live.established {
            m.active.with_label_values(&labels).dec();
        }
        match failure_reason(close, live.established) {
            Some(reason) => {
                let mut with_reason = vec![reason];
                with_reason.extend_from_slice(&labels);
                m.failures.with_label_values(&with_reason).inc();
                FlowState::Failed
            }
            None => FlowState::Closed,
        }
    }

    fn track_live(&mut self, cookie: u64, live: Live) {
        while self.live.len() >= self.settings.max_live {
            let Some(oldest) = self.live_order.pop_front() else {
                break;
            };
            if let Some(evicted) = self.live.remove(&oldest) {
                self.metrics
                    .flow_evictions
                    .with_label_values(&["live"])
                    .inc();
                if evicted.established {
                    self.metrics
                        .active
                        .with_label_values(&label_refs(&evicted.labels))
                        .dec();
                }
            }
        }
        if live.established {
            self.metrics
                .active
                .with_label_values(&label_refs(&live.labels))
                .inc();
        }
        self.live.insert(cookie, live);
        self.live_order.push_back(cookie);
        // Keep the order queue from growing with closed cookies: compact once
        // stale entries outnumber live ones (amortised O(1) per insert).
        if self.live_order.len() > 2 * self.live.len() + LIVE_ORDER_SLACK {
            let live = &self.live;
            self.live_order.retain(|c| live.contains_key(c));
        }
    }

    fn on_connect(&mut self, conn: ConnectEvent, now: Instant) -> Vec<FlowRecord> {
        let mut done = Vec::new();
        while self.pending.len() >= self.settings.max_pending {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(p) = self.pending.remove(&oldest) {
                self.metrics
                    .dropped
                    .with_label_values(&["flow_table_full"])
                    .inc();
                done.push(self.finish(p, None, now));
            }
        }
        let cookie = conn.cookie;
        let deadline = now + self.settings.name_wait;
        let workload = (self.identify)(conn.cgroup_id, conn.tgid, &conn.comm);
        let fresh = Pending {
            conn,
            deadline,
            segments: Vec::new(),
            established: false,
            closed: None,
            workload,
        };
        if let Some(previous) = self.pending.insert(cookie, fresh) {
            // A cookie is unique per socket; a repeat means a second connect()
            // on the same socket: count the first attempt as it stands.
            done.push(self.finish(previous, None, now));
        }
        self.order.push_back(cookie);
        if self.settings.name_wait.is_zero() {
            done.extend(self.expire(now));
        }
        done
    }

    fn on_payload(&mut self, chunk: Chunk, now: Instant) -> Option<FlowRecord> {
        let pending = self.pending.get_mut(&chunk.cookie)?;
        if !pending.segments.iter().any(|(off, _)| *off == chunk.offset) {
            pending.segments.push((chunk.offset, chunk.data));
            pending.segments.sort_by_key(|(off, _)| *off);
        }
        let stream = contiguous_prefix(&pending.segments);
        match self.naming(&stream) {
            Naming::Wait => None,
            Naming::Done { sni, host, alpn } => {
                let p = self.pending.remove(&chunk.cookie)?;
                Some(self.finish(p, Some((sni, host, alpn)), now))
            }
        }
    }

    fn naming(&self, stream: &[u8]) -> Naming {
        if tls::looks_like_tls(stream) {
            match tls::parse_client_hello(stream) {
                Ok(hello) => Naming::Done {
                    sni: hello.sni,
                    host: None,
                    alpn: hello.alpn,
                },
                Err(tls::TlsError::Incomplete { .. }) => Naming::Wait,
                Err(_) => {
                    self.metrics.parse_errors.with_label_values(&["tls"]).inc();
                    Naming::Done {
                        sni: None,
                        host: None,
                        alpn: Vec::new(),
                    }
                }
            }
        } else {
            match http::parse_request(stream) {
                Ok(req) => Naming::Done {
                    sni: None,
                    host: req.host,
                    alpn: Vec::new(),
                },
                Err(http::HttpError::Incomplete) => Naming::Wait,
                Err(http::HttpError::NotHttp) => Naming::Done {
                    sni: None,
                    host: None,
                    alpn: Vec::new(),
                },
                Err(http::HttpError::Malformed(_)) => {
                    self.metrics.parse_errors.with_label_values(&["http"]).inc();
                    Naming::Done {
                        sni: None,
                        host: None,
                        alpn: Vec::new(),
                    }
                }
            }
        }
    }

    fn on_dns(&mut self, chunk: &Chunk, now: Instant) {
        match dns::parse_response(&chunk.data) {
            Ok(answer) => self.names.learn(chunk.cgroup_id, &answer, now),
            Err(dns::DnsError::NotResponse) => {}
            Err(_) => self.metrics.parse_errors.with_label_values(&["dns"]).inc(),
        }
    }

    /// Counts every connection whose wait for a name is over.
    pub fn expire(&mut self, now: Instant) -> Vec<FlowRecord> {
        let mut done = Vec::new();
        while let Some(&cookie) = self.order.front() {
            match self.pending.get(&cookie) {
                None => {
                    self.order.pop_front();
                }
                Some(p) if p.deadline <= now => {
                    self.order.pop_front();
                    if let Some(p) = self.pending.remove(&cookie) {
                        let stream = contiguous_prefix(&p.segments);
                        let named = match self.naming(&stream) {
                            Naming::Done { sni, host, alpn } => Some((sni, host, alpn)),
                            // Out of time with a hello still incomplete (lost
                            // segment, or longer than the capture): use the
                            // extensions that did arrive.
                            Naming::Wait => tls::parse_client_hello_truncated(&stream)
                                .ok()
                                .map(|hello| (hello.sni, None, hello.alpn)),
                        };
                        done.push(self.finish(p, named, now));
                    }
                }
                Some(_) => break,
            }
        }
        done
    }

    fn finish(
        &mut self,
        p: Pending,
        named: Option<(Option<String>, Option<String>, Vec<String>)>,
        now: Instant,
    ) -> FlowRecord {
        let conn = p.conn;
        let (sni, host, alpn) = named.unwrap_or_default();
        // An address in Host (curl's default for http://10.0.0.5/) names nothing.
        let host = host.filter(|h| h.parse::<std::net::IpAddr>().is_err());
        let (name, source, cnames) = if let Some(sni) = sni {
            (Some(sni), NameSource::Sni, Vec::new())
        } else if let Some(host) = host {
            (Some(host), NameSource::HttpHost, Vec::new())
        } else if let Some(hit) = self.names.lookup(conn.cgroup_id, conn.dst.ip(), now) {
            (Some(hit.name), NameSource::Dns, hit.cnames)
        } else {
            (None, NameSource::Ip, Vec::new())
        };
        let workload = p.workload;
        let verdict = self.classifier.classify(
            name.as_deref(),
            conn.dst.ip(),
            conn.dst.port(),
            workload.is_gateway,
        );
        let endpoint = match (&name, verdict.route) {
            (_, Route::Other) if !self.settings.record_other_endpoints => String::new(),
            (Some(name), _) => format!("{name}:{}", conn.dst.port()),
            (None, _) => conn.dst.to_string(),
        };
        let m = &self.metrics;
        let mut admit = |label: &'static str, value: &str| {
            self.caps.admit(label, value, &m.label_overflow).to_owned()
        };
        let labels = [
            verdict.route.as_str().to_owned(),
            verdict.provider.clone(),
            admit("endpoint", &endpoint),
            admit("namespace", &workload.namespace),
            admit("pod", &workload.pod),
            admit("container", &workload.container),
            admit("process", &conn.comm),
        ];
        let mut with_source = label_refs(&labels).to_vec();
        with_source.push(source.as_str());
        m.connections.with_label_values(&with_source).inc();

        let live = Live {
            labels: self.intern(labels),
            connect_ts_ns: conn.ts_ns,
            established: p.established,
        };
        let state = match (&p.closed, p.established) {
            (Some(close), _) => self.apply_close(&live, close, false),
            (None, true) => FlowState::Established,
            (None, false) => FlowState::Connecting,
        };
        let duration_ms = p
            .closed
            .map(|c| c.ts_ns.saturating_sub(conn.ts_ns) / 1_000_000);
        let (bytes_sent, bytes_received) = p
            .closed
            .map_or((0, 0), |c| payload_bytes(&c, p.established));
        if p.closed.is_none() {
            self.track_live(conn.cookie, live);
        }
        let record = FlowRecord {
            ts_ns: conn.ts_ns,
            cookie: conn.cookie,
            route: verdict.route,
            provider: verdict.provider.clone(),
            endpoint,
            name,
            name_source: source,
            cnames,
            dst: conn.dst,
            process: conn.comm,
            tgid: conn.tgid,
            cgroup_id: conn.cgroup_id,
            workload,
            alpn,
            verdict,
            state,
            time_unix_ms: unix_ms(),
            bytes_sent,
            bytes_received,
            duration_ms,
        };
        self.log.opened(record.clone());
        record
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn label_refs(labels: &[String; 7]) -> [&str; 7] {
    labels.each_ref().map(String::as_str)
}

/// Payload bytes from the kernel's counters, which count in TCP sequence
/// space: `bytes_acked` includes our SYN and our FIN once acknowledged,
/// `bytes_received` the peer's FIN once processed. The state the socket
/// closed from says which were exchanged. Exact for ordinary closes; in
/// the one ambiguous case (FIN_WAIT2 after the application closed first,
/// where the peer's FIN reaches the time-wait socket instead) `received`
/// is one byte low.
fn payload_bytes(close: &Close, established: bool) -> (u64, u64) {
    const FIN_WAIT2: u32 = 5;
    const TIME_WAIT: u32 = 6;
    const CLOSE_WAIT: u32 = 8;
    const LAST_ACK: u32 = 9;
    const CLOSING: u32 = 11;
    let our_fin_acked = matches!(close.old_state, FIN_WAIT2 | TIME_WAIT | LAST_ACK | CLOSING);
    let peer_fin = matches!(
        close.old_state,
        FIN_WAIT2 | TIME_WAIT | CLOSE_WAIT | LAST_ACK | CLOSING
    );
    let sent = close
        .bytes_sent
        .saturating_sub(u64::from(established) + u64::from(our_fin_acked));
    let received = close.bytes_received.saturating_sub(u64::from(peer_fin));
    (sent, received)
}

/// Why a connection failed, from the state it closed from: a connect that
/// never completed was refused (no SYN retransmit) or timed out; an
/// established connection that closed without the FIN handshake was reset
/// (or aborted).
fn failure_reason(close: &Close, established: bool) -> Option<&'static str> {
    match close.old_state {
        TCP_SYN_SENT if close.total_retrans > 0 => Some("timeout"),
        TCP_SYN_SENT => Some("refused"),
        TCP_ESTABLISHED if established => Some("reset"),
        _ => None,
    }
}

/// The stream bytes from offset 0 up to the first gap.
fn contiguous_prefix(segments: &[(u32, Bytes)]) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::new();
    for (offset, data) in segments {
        let offset = *offset as usize;
        if offset > out.len() {
            break;
        }
        let skip = out.len() - offset;
        if skip < data.len() {
            out.extend_from_slice(&data[skip..]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        catalog::Catalog,
        classify::{Kind, rule},
    };

    fn table(wait_ms: u64, record_other: bool) -> (FlowTable, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::new());
        let rules = vec![
            rule("127.0.0.3:8443", Kind::Gateway, "corp-gw", "test").unwrap(),
            rule("127.0.0.2:443", Kind::Model, "openai", "test").unwrap(),
        ];
        let classifier = Classifier::new(rules, Catalog::builtin().clone(), Vec::new(), false);
        let settings = FlowSettings {
            name_wait: Duration::from_millis(wait_ms),
            record_other_endpoints: record_other,
            max_pending: 4,
            dns_cache: 16,
            label_cap: 100,
            max_live: 2,
        };
        let identify: Identify = Box::new(|_, _, _| WorkloadInfo::default());
        let log = Arc::new(FlowLog::new());
        (
            FlowTable::new(settings, classifier, metrics.clone(), log, identify),
            metrics,
        )
    }

    fn connect(cookie: u64, dst: &str) -> Event {
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
        })
    }

    /// route, provider, endpoint, process, name_source (no workload labels in these tests).
    fn count(m: &Metrics, [route, provider, endpoint, source, process]: [&str; 5]) -> u64 {
        m.connections
            .with_label_values(&[route, provider, endpoint, "", "", "", process, source])
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
        StateChange::Closed {
            bytes_sent: sent,
            bytes_received: received,
            old_state,
            total_retrans: retrans,
        }
    }

    const DIRECT: [&str; 7] = ["direct", "openai", "127.0.0.2:443", "", "", "", "client"];

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
                    "reset", DIRECT[0], DIRECT[1], DIRECT[2], "", "", "", "client"
                ])
                .get(),
            0
        );
    }

    #[test]
    fn refused_timed_out_and_reset_connections_are_failures_by_reason() {
        let (mut t, m) = table(100, false);
        let now = Instant::now();
        let fail = |reason: &str| {
            let mut labels = vec![reason];
            labels.extend(DIRECT);
            m.failures.with_label_values(&labels).get()
        };
        // Closed while still waiting for a name: applied when counted.
        t.handle(connect(1, "127.0.0.2:443"), now);
        t.handle(state(1, 5, closed(0, 0, TCP_SYN_SENT, 0)), now);
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
        t.handle(state(3, 9, closed(10, 10, TCP_ESTABLISHED, 0)), now);
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

    fn payload(cookie: u64, offset: u32, data: &[u8]) -> Event {
        Event::Payload(Chunk {
            ts_ns: 1,
            cookie,
            cgroup_id: 1,
            offset,
            total: data.len() as u32,
            data: Bytes::copy_from_slice(data),
        })
    }

    const CURL_HELLO: &[u8] = include_bytes!("fixtures/tls_curl_api_openai.bin");

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
    fn contiguous_prefix_joins_segments_and_stops_at_gaps() {
        let segs = vec![
            (0, Bytes::from_static(b"abc")),
            (3, Bytes::from_static(b"def")),
            (10, Bytes::from_static(b"x")),
        ];
        assert_eq!(contiguous_prefix(&segs), b"abcdef");
        let overlapping = vec![
            (0, Bytes::from_static(b"abc")),
            (2, Bytes::from_static(b"cde")),
        ];
        assert_eq!(contiguous_prefix(&overlapping), b"abcde");
    }
}
