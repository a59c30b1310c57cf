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
use serde::Serialize;

use crate::{
    classify::{Classifier, Route, Verdict},
    dns,
    events::{Chunk, ConnectEvent, Event},
    http,
    metrics::{LabelCaps, Metrics},
    names::NameCache,
    tls,
};

/// Finished flows kept for the API's recent-flows view.
pub const RECENT_FLOWS: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
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

/// One classified connection, as the API shows it.
#[derive(Clone, Debug, Serialize)]
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
    pub alpn: Vec<String>,
    pub verdict: Verdict,
}

#[derive(Clone, Debug)]
pub struct FlowSettings {
    pub name_wait: Duration,
    pub record_other_endpoints: bool,
    pub max_pending: usize,
    pub dns_cache: usize,
    pub label_cap: usize,
}

struct Pending {
    conn: ConnectEvent,
    deadline: Instant,
    /// Copied segments, by stream offset (at most PAYLOAD_SEGMENTS_MAX).
    segments: Vec<(u32, Bytes)>,
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
    recent: VecDeque<FlowRecord>,
}

impl FlowTable {
    pub fn new(settings: FlowSettings, classifier: Classifier, metrics: Arc<Metrics>) -> Self {
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
            recent: VecDeque::with_capacity(RECENT_FLOWS),
        }
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    pub fn recent(&self) -> impl Iterator<Item = &FlowRecord> {
        self.recent.iter()
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
        if let Some(previous) = self.pending.insert(
            cookie,
            Pending {
                conn,
                deadline,
                segments: Vec::new(),
            },
        ) {
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
                            Naming::Wait => None,
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
        let (name, source, cnames) = if let Some(sni) = sni {
            (Some(sni), NameSource::Sni, Vec::new())
        } else if let Some(host) = host {
            (Some(host), NameSource::HttpHost, Vec::new())
        } else if let Some(hit) = self.names.lookup(conn.cgroup_id, conn.dst.ip(), now) {
            (Some(hit.name), NameSource::Dns, hit.cnames)
        } else {
            (None, NameSource::Ip, Vec::new())
        };
        let verdict =
            self.classifier
                .classify(name.as_deref(), conn.dst.ip(), conn.dst.port(), false);
        let endpoint = match (&name, verdict.route) {
            (_, Route::Other) if !self.settings.record_other_endpoints => String::new(),
            (Some(name), _) => format!("{name}:{}", conn.dst.port()),
            (None, _) => conn.dst.to_string(),
        };
        let m = &self.metrics;
        let endpoint_label = self
            .caps
            .admit("endpoint", &endpoint, &m.label_overflow)
            .to_owned();
        let process_label = self
            .caps
            .admit("process", &conn.comm, &m.label_overflow)
            .to_owned();
        m.connections
            .with_label_values(&[
                verdict.route.as_str(),
                verdict.provider.as_str(),
                endpoint_label.as_str(),
                source.as_str(),
                process_label.as_str(),
            ])
            .inc();
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
            alpn,
            verdict,
        };
        if self.recent.len() == RECENT_FLOWS {
            self.recent.pop_front();
        }
        self.recent.push_back(record.clone());
        record
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
        };
        (
            FlowTable::new(settings, classifier, metrics.clone()),
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

    fn count(m: &Metrics, labels: [&str; 5]) -> u64 {
        m.connections.with_label_values(&labels).get()
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
