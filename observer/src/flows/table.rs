//! The flow table: joins each connection with the bytes its client sent
//! and the DNS answers its workload received, names it, classifies it and
//! reports it to the sink exactly once, then follows it to its close.
//!
//! A connection waits at most `name_wait` for its SNI or Host; then it is
//! counted with the best name known ([`crate::naming::precedence`]). Both
//! tables are bounded: a full pending table counts its oldest connection
//! early (and says so), a full live table evicts its oldest flow.
use std::{num::NonZeroUsize, sync::Arc, time::Duration, time::Instant};

use super::{
    labels::{Admit, FlowLabels, LabelRegistry, OVERFLOW_VALUE, endpoint_value},
    lifecycle::{Close, FlowEnd},
    live::{Live, LiveTable},
    pending::{Pending, PendingTable},
    record::{FlowRecord, FlowState, Identify, Transport, unix_ms},
    sink::{FlowSink, Note},
};
use observer_common::{IPPROTO_TCP, PolicyKey};

use crate::{
    capture::{Chunk, ConnectEvent, EnforceAction, EnforceEvent, Event, StateChange, StateEvent},
    classification::{Classifier, Route},
    enforcement::{Action, DnsAddrs, KernelDid, Mode, NameJudge, Policy},
    inspection::{Exchange, http1::Side},
    naming::{
        self, NameCache, Opening, Reading, dns,
        dns_tcp::{DEFAULT_DNS_TCP_STREAMS, DnsTcpStreams},
        name_cache::{MAX_TTL, MIN_TTL},
        quic::{HelloRead, QuicOpening, Step},
    },
};

#[derive(Clone, Debug)]
pub struct FlowSettings {
    pub name_wait: Duration,
    pub record_other_endpoints: bool,
    pub max_pending: usize,
    pub dns_cache: usize,
    pub label_cap: usize,
    /// Counted connections still open, tracked until they close.
    pub max_live: usize,
    /// How long a label set no flow uses keeps its series (and its values
    /// their room under `label_cap`).
    pub series_ttl: Duration,
    /// `--enforce`: whether direct model calls are judged, and stopped.
    pub enforce: Mode,
    /// `--tls-probes`: bytes of one TLS library call the kernel copies.
    pub tls_call_copy_max: u64,
}

/// QUIC flows whose ClientHello is being assembled at once: each holds up
/// to a few KiB (the CRYPTO stream and its keys) for at most the name wait.
/// Past this, a new QUIC flow is counted by DNS or address alone (and the
/// loss counted), so a flood of unfinished handshakes stays bounded.
pub const QUIC_OPENINGS_MAX: usize = 4096;
/// `source` of `gatewatch_events_dropped_total` for a QUIC flow that found
/// `QUIC_OPENINGS_MAX` hellos already being assembled.
pub const QUIC_OPENINGS_FULL: &str = "quic_openings_full";
/// `source` of `gatewatch_events_dropped_total` for TLS plaintext of a
/// connection not (or no longer) in the live table.
pub const TLS_UNJOINED: &str = "tls_unjoined";

pub struct FlowTable<S: FlowSink> {
    settings: FlowSettings,
    classifier: Classifier,
    sink: S,
    labels: LabelRegistry,
    names: NameCache,
    pending: PendingTable,
    live: LiveTable,
    dns_tcp: DnsTcpStreams,
    /// Pending flows holding a `QuicOpening`.
    quic_openings: usize,
    identify: Identify,
    policy: Policy,
    /// `--enforce deny`: which names are denied, and the addresses only
    /// denied names' DNS answers gave each cgroup.
    judge: Option<NameJudge>,
    dns_addrs: DnsAddrs,
    /// What `--enforce deny` asks of the enforcer; taken after each batch.
    actions: Vec<Action>,
    /// `--tls-probes`: cookies whose plaintext the kernel should stop
    /// copying (not AI, or no longer readable); taken after each batch.
    tls_skips: Vec<u64>,
    /// Processes with AI flows since the last `take_ai_tgids` (at most
    /// `AI_TGIDS_MAX`): their TLS libraries may have been loaded late.
    ai_tgids: std::collections::HashSet<u32>,
}

/// Processes remembered between two scans for TLS libraries.
const AI_TGIDS_MAX: usize = 4096;

impl<S: FlowSink> FlowTable<S> {
    pub fn new(
        settings: FlowSettings,
        classifier: Classifier,
        sink: S,
        identify: Identify,
    ) -> Self {
        let names =
            NameCache::new(NonZeroUsize::new(settings.dns_cache).unwrap_or(NonZeroUsize::MIN));
        Self {
            labels: LabelRegistry::new(settings.label_cap, settings.series_ttl),
            pending: PendingTable::new(settings.max_pending),
            live: LiveTable::new(settings.max_live),
            dns_tcp: DnsTcpStreams::new(DEFAULT_DNS_TCP_STREAMS),
            quic_openings: 0,
            policy: Policy {
                mode: settings.enforce,
            },
            judge: (settings.enforce == Mode::Deny).then(|| NameJudge::new(&classifier)),
            dns_addrs: DnsAddrs::default(),
            actions: Vec::new(),
            tls_skips: Vec::new(),
            ai_tgids: Default::default(),
            settings,
            classifier,
            sink,
            names,
            identify,
        }
    }

    pub fn live_len(&self) -> usize {
        self.live.len()
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    pub fn sink(&self) -> &S {
        &self.sink
    }

    pub fn sink_mut(&mut self) -> &mut S {
        &mut self.sink
    }

    /// What the enforcer should do since the last call (`--enforce deny`).
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    /// Cookies whose plaintext the kernel should no longer copy.
    pub fn take_tls_skips(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.tls_skips)
    }

    /// Processes that made AI connections since the last call.
    pub fn take_ai_tgids(&mut self) -> Vec<u32> {
        self.ai_tgids.drain().collect()
    }

    /// Handles one decoded event; returns the flows it counted.
    pub fn handle(&mut self, event: Event, now: Instant) -> Vec<Arc<FlowRecord>> {
        self.sink.note(Note::Event(event.kind()));
        match event {
            Event::Connect(conn) => self.on_connect(conn, now),
            Event::Payload(chunk) => self.on_payload(chunk, now).into_iter().collect(),
            Event::Dns(chunk) => {
                self.on_dns(&chunk.data, chunk.cgroup_id, now);
                Vec::new()
            }
            Event::Datagram(chunk) => self.on_datagram(&chunk, now).into_iter().collect(),
            Event::DnsTcp(chunk) => {
                let cgroup_id = chunk.cgroup_id;
                for message in self.dns_tcp.push(chunk.cookie, chunk.offset, chunk.data) {
                    self.on_dns(&message, cgroup_id, now);
                }
                Vec::new()
            }
            Event::State(state) => {
                self.on_state(state, now);
                Vec::new()
            }
            Event::Enforce(e) => {
                self.on_enforce(&e);
                Vec::new()
            }
            Event::TlsOut(chunk) => {
                self.on_plaintext(Side::Client, &chunk);
                Vec::new()
            }
            Event::TlsIn(chunk) => {
                self.on_plaintext(Side::Server, &chunk);
                Vec::new()
            }
        }
    }

    /// Ages out what ended: label sets (and their series) idle for the
    /// series TTL, expired DNS answers, and the sink's own per-workload
    /// state. Call periodically.
    pub fn sweep(&mut self, now: Instant) {
        for labels in self.labels.expire(now) {
            self.sink.label_set_expired(&labels);
        }
        self.names.purge_expired(now);
        self.actions
            .extend(self.dns_addrs.sweep(now).into_iter().map(Action::Addr));
        self.sink.sweep(self.settings.series_ttl);
    }

    pub fn label_sets_len(&self) -> usize {
        self.labels.sets_len()
    }

    /// Counts every connection whose wait for a name is over.
    pub fn expire(&mut self, now: Instant) -> Vec<Arc<FlowRecord>> {
        let mut done = Vec::new();
        while let Some(p) = self.pending.pop_expired(now) {
            let (reading, hello) = match &p.quic {
                Some(quic) => {
                    let (reading, hello) = quic.at_deadline();
                    (reading, Some(hello))
                }
                None => (
                    naming::read_opening_at_deadline(&p.segments.contiguous_prefix()),
                    None,
                ),
            };
            let opening = self.opening(reading);
            done.push(self.count(p, opening, hello, now));
        }
        done
    }

    fn on_connect(&mut self, conn: ConnectEvent, now: Instant) -> Vec<Arc<FlowRecord>> {
        let mut done = Vec::new();
        while self.pending.is_full() {
            let Some(oldest) = self.pending.pop_oldest() else {
                break;
            };
            self.sink.note(Note::Dropped("flow_table_full"));
            done.push(self.count(oldest, Opening::default(), None, now));
        }
        let workload = (self.identify)(conn.cgroup_id, conn.tgid, &conn.comm);
        let quic = Transport::of_protocol(conn.protocol) == Transport::Quic;
        let opening = if quic && self.quic_openings < QUIC_OPENINGS_MAX {
            self.quic_openings += 1;
            Some(Box::new(QuicOpening::new()))
        } else {
            if quic {
                self.sink.note(Note::Dropped(QUIC_OPENINGS_FULL));
            }
            None
        };
        let refused = conn.refused;
        let fresh = Pending {
            conn,
            deadline: now + self.settings.name_wait,
            segments: Default::default(),
            quic: opening,
            // UDP has no handshake: a flow is under way once it sends.
            established: quic,
            closed: None,
            workload,
            kernel: KernelDid {
                refused_connect: refused,
                dropped_first_bytes: false,
            },
        };
        if let Some(previous) = self.pending.insert(fresh) {
            // A cookie is unique per socket; a repeat means a second connect()
            // on the same socket (or a UDP socket's next destination): count
            // the first attempt as it stands.
            done.push(self.count(previous, Opening::default(), None, now));
        }
        if self.settings.name_wait.is_zero() {
            done.extend(self.expire(now));
        }
        done
    }

    fn on_payload(&mut self, chunk: Chunk, now: Instant) -> Option<Arc<FlowRecord>> {
        let pending = self.pending.get_mut(chunk.cookie)?;
        pending.segments.add(chunk.offset, chunk.data);
        let reading = naming::read_opening(&pending.segments.contiguous_prefix());
        if reading == Reading::Incomplete {
            return None;
        }
        let opening = self.opening(reading);
        let p = self.pending.remove(chunk.cookie)?;
        Some(self.count(p, opening, None, now))
    }

    fn on_datagram(&mut self, chunk: &Chunk, now: Instant) -> Option<Arc<FlowRecord>> {
        let quic = self.pending.get_mut(chunk.cookie)?.quic.as_mut()?;
        let Step::Done(reading, hello) = quic.push(&chunk.data) else {
            return None;
        };
        let opening = self.opening(reading);
        let p = self.pending.remove(chunk.cookie)?;
        Some(self.count(p, opening, Some(hello), now))
    }

    /// The names a finished reading gives; a parse failure is counted and
    /// names nothing.
    fn opening(&mut self, reading: Reading) -> Opening {
        match reading {
            Reading::Named(opening) => opening,
            Reading::Malformed(failure) => {
                self.sink.note(Note::ParseError(failure.kind()));
                Opening::default()
            }
            Reading::Incomplete => Opening::default(),
        }
    }

    fn on_dns(&mut self, message: &[u8], cgroup_id: u64, now: Instant) {
        match dns::parse_response(message) {
            Ok(answer) => {
                self.names.learn(cgroup_id, &answer, now);
                self.learn_denied_addrs(cgroup_id, &answer, now);
            }
            Err(dns::DnsError::NotResponse) => {}
            Err(_) => self.sink.note(Note::ParseError("dns")),
        }
    }

    /// `--enforce deny`: the addresses of a denied name's answer are
    /// refused at connect for that cgroup, unless another name shares them.
    fn learn_denied_addrs(&mut self, cgroup_id: u64, answer: &dns::DnsAnswer, now: Instant) {
        let Some(judge) = &self.judge else {
            return;
        };
        if answer.addrs.is_empty() {
            return;
        }
        let denied = judge.denies(&self.classifier, &answer.question);
        for &(ip, ttl) in &answer.addrs {
            let ttl = Duration::from_secs(ttl.into()).clamp(MIN_TTL, MAX_TTL);
            let expires = now.checked_add(ttl).unwrap_or(now);
            if let Some(change) = self.dns_addrs.learn(cgroup_id, ip, denied, expires, now) {
                self.actions.push(Action::Addr(change));
            }
        }
    }

    /// `--enforce deny` acted in the kernel. A held process gets its
    /// policy; a denied connection is marked (so it is not ended twice)
    /// and its socket ended.
    fn on_enforce(&mut self, e: &EnforceEvent) {
        log::debug!(
            "--enforce: kernel {:?} socket {} of pid {} to {}",
            e.action,
            e.cookie,
            e.tgid,
            e.dst
        );
        match e.action {
            EnforceAction::Held => {
                let workload = match self.pending.get_mut(e.cookie) {
                    Some(p) => p.workload.clone(),
                    None => (self.identify)(e.cgroup_id, e.tgid, ""),
                };
                self.actions.push(Action::Decide {
                    key: PolicyKey {
                        cgroup_id: e.cgroup_id,
                        tgid: e.tgid,
                        _pad: 0,
                    },
                    may_direct: Policy::may_call_directly(&workload),
                });
            }
            EnforceAction::Denied => {
                if let Some(p) = self.pending.get_mut(e.cookie) {
                    p.kernel.dropped_first_bytes = true;
                }
                self.actions.push(Action::End {
                    tgid: e.tgid,
                    cookie: e.cookie,
                    protocol: IPPROTO_TCP,
                    dst: e.dst,
                    src: Some(e.src),
                });
            }
        }
    }

    /// `--tls-probes`: plaintext of a counted connection. Only AI flows are
    /// read; the kernel is told to stop copying the others, and any flow
    /// whose HTTP stopped making sense (HTTP/2, lost bytes in a head).
    fn on_plaintext(&mut self, side: Side, chunk: &Chunk) {
        let Some(live) = self.live.get_mut(chunk.cookie) else {
            // Not counted yet (or already closed): nothing to join it to.
            self.sink.note(Note::Dropped(TLS_UNJOINED));
            return;
        };
        if live.labels.route == Route::Other {
            if live.exchange.is_none() {
                self.tls_skips.push(chunk.cookie);
            }
            return;
        }
        let copy_max = self.settings.tls_call_copy_max;
        let exchange = live
            .exchange
            .get_or_insert_with(|| Box::new(Exchange::with_call_copy_max(copy_max)));
        exchange.chunk(side, chunk.offset, chunk.total, &chunk.data, chunk.ts_ns);
        if !exchange.is_readable() {
            self.tls_skips.push(chunk.cookie);
        }
        let labels = live.labels.clone();
        for request in exchange.take_done() {
            self.sink.request(chunk.cookie, &labels, &request);
        }
    }

    fn on_state(&mut self, ev: StateEvent, now: Instant) {
        if !self.dns_tcp.is_empty() && matches!(ev.change, StateChange::Closed(_)) {
            self.dns_tcp.remove(ev.cookie);
        }
        if let Some(p) = self.pending.get_mut(ev.cookie) {
            match ev.change {
                StateChange::Established => p.established = true,
                StateChange::Closed(close) => p.closed = Some(close_at(ev.ts_ns, close)),
            }
            return;
        }
        match ev.change {
            StateChange::Established => {
                if let Some(live) = self.live.get_mut(ev.cookie)
                    && !live.established
                {
                    live.established = true;
                    self.sink.established(ev.cookie, &live.labels);
                }
            }
            StateChange::Closed(close) => {
                if let Some(mut live) = self.live.remove(ev.cookie) {
                    if let Some(exchange) = &mut live.exchange {
                        for request in exchange.closed(ev.ts_ns) {
                            self.sink.request(ev.cookie, &live.labels, &request);
                        }
                    }
                    let close = close_at(ev.ts_ns, close);
                    let end = FlowEnd::from_close(&close, live.connect_ts_ns, live.established);
                    self.sink
                        .closed(ev.cookie, &live.labels, &end, live.established);
                    self.labels.release(&live.labels, now);
                }
            }
        }
    }

    /// Names, classifies and reports a connection whose wait is over; keeps
    /// it in the live table until it closes.
    fn count(
        &mut self,
        p: Pending,
        opening: Opening,
        quic_hello: Option<HelloRead>,
        now: Instant,
    ) -> Arc<FlowRecord> {
        if p.quic.is_some() {
            self.quic_openings -= 1;
        }
        let transport = Transport::of_protocol(p.conn.protocol);
        // Counted before its hello was read (early, or past the cap on
        // openings): what its Initials gave so far.
        let quic_hello = quic_hello.or_else(|| {
            (transport == Transport::Quic).then(|| {
                p.quic
                    .as_ref()
                    .map_or(HelloRead::Incomplete, |q| q.at_deadline().1)
            })
        });
        let Pending {
            conn,
            workload,
            established,
            closed,
            kernel,
            ..
        } = p;
        let alpn = opening.alpn.clone();
        let names = &mut self.names;
        let chosen = naming::choose(opening, || names.lookup(conn.cgroup_id, conn.dst.ip(), now));
        let dns_service = chosen
            .name
            .as_deref()
            .and_then(|name| self.names.service(conn.cgroup_id, name, now));
        let verdict = self.classifier.classify(
            chosen.name.as_deref(),
            conn.dst.ip(),
            conn.dst.port(),
            workload.is_gateway,
        );
        if verdict.route != Route::Other && self.ai_tgids.len() < AI_TGIDS_MAX {
            self.ai_tgids.insert(conn.tgid);
        }
        let endpoint = match (&chosen.name, verdict.route) {
            (_, Route::Other) if !self.settings.record_other_endpoints => String::new(),
            (name, _) => endpoint_value(name.as_deref(), conn.dst),
        };
        let labels = FlowLabels {
            route: verdict.route,
            provider: verdict.provider.clone(),
            endpoint: self.admit("endpoint", &endpoint),
            namespace: self.admit("namespace", &workload.namespace),
            pod: self.admit("pod", &workload.pod),
            container: self.admit("container", &workload.container),
            process: self.admit("process", &conn.comm),
            transport,
        };
        let end = closed.map(|c| FlowEnd::from_close(&c, conn.ts_ns, established));
        let denied = self.policy.judge(verdict.route, &workload, kernel);
        if let Some(d) = denied
            && d.mode == Mode::Deny
            && kernel == KernelDid::default()
            && end.is_none()
        {
            // The kernel let it through (no name in its first segment, a
            // QUIC flow, a port-dependent rule): end it from here.
            self.actions.push(Action::End {
                tgid: conn.tgid,
                cookie: conn.cookie,
                protocol: conn.protocol,
                dst: conn.dst,
                src: None,
            });
        }
        let record = Arc::new(FlowRecord {
            ts_ns: conn.ts_ns,
            cookie: conn.cookie,
            route: verdict.route,
            provider: verdict.provider.clone(),
            endpoint,
            name: chosen.name,
            name_source: chosen.source,
            cnames: chosen.cnames,
            dst: conn.dst,
            transport,
            dns_service,
            quic_hello,
            process: conn.comm,
            tgid: conn.tgid,
            cgroup_id: conn.cgroup_id,
            workload,
            alpn,
            ech: chosen.ech,
            verdict,
            state: match (&end, established) {
                (Some(end), _) => end.state,
                (None, true) => FlowState::Established,
                (None, false) => FlowState::Connecting,
            },
            time_unix_ms: unix_ms(),
            bytes_sent: end.map_or(0, |e| e.bytes_sent),
            bytes_received: end.map_or(0, |e| e.bytes_received),
            duration_ms: end.map(|e| e.duration_ms()),
            close: end.map(|e| e.how),
            denied,
            requests: Vec::new(),
        });
        let (labels, new) = self.labels.acquire(labels, now);
        if new {
            self.sink.label_set_added(&labels);
        }
        self.sink.counted(&record, &labels, end.as_ref());
        if end.is_some() {
            self.labels.release(&labels, now);
        } else {
            let live = Live {
                labels,
                connect_ts_ns: record.ts_ns,
                established,
                exchange: None,
            };
            let (sink, registry) = (&mut self.sink, &mut self.labels);
            self.live.insert(record.cookie, live, |cookie, old| {
                sink.evicted(cookie, &old.labels, old.established);
                registry.release(&old.labels, now);
            });
        }
        record
    }

    fn admit(&mut self, label: &'static str, value: &str) -> String {
        match self.labels.admit(label, value) {
            Admit::Kept(v) => v.to_owned(),
            Admit::Folded => {
                self.sink.note(Note::LabelFolded(label));
                OVERFLOW_VALUE.to_owned()
            }
        }
    }
}

fn close_at(ts_ns: u64, c: crate::capture::Closed) -> Close {
    Close {
        ts_ns,
        bytes_sent: c.bytes_sent,
        bytes_received: c.bytes_received,
        old_state: c.old_state,
        total_retrans: c.total_retrans,
        peer_reset: c.peer_reset,
        no_syn: c.no_syn,
        datagram: c.datagram,
    }
}
