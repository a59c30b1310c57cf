//! What the JSON API serves: the most recent flows (bounded), a live
//! stream of flow updates, and a per-workload summary. Written by the flow
//! table on the event path, read by HTTP handlers; one short lock each.
use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, MutexGuard},
};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::{
    classification::Route,
    fast_map::FastMap,
    flows::{FlowEnd, FlowLabels, FlowRecord, FlowState, OVERFLOW_VALUE},
};

/// Flows kept for `GET /api/v1/flows`.
pub const RECENT_FLOWS: usize = 4096;
/// Flow updates buffered per stream subscriber; a slower reader skips ahead.
pub const STREAM_BUFFER: usize = 1024;
/// Summary rows (workload × route × provider); more fold into one `_other` row.
pub const SUMMARY_ROWS: usize = 10_000;

/// Which flows a query wants; every set field must match exactly.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FlowFilter {
    pub route: Option<Route>,
    pub provider: Option<String>,
    pub namespace: Option<String>,
    pub pod: Option<String>,
    pub process: Option<String>,
    /// At most this many flows (newest); `GET /api/v1/flows` only.
    pub limit: Option<usize>,
    /// Only flows the `--enforce` policy forbade (`?denied=true`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub denied: bool,
}

impl FlowFilter {
    pub fn matches(&self, f: &FlowRecord) -> bool {
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        self.route.is_none_or(|r| r == f.route)
            && eq(&self.provider, &f.provider)
            && eq(&self.namespace, &f.workload.namespace)
            && eq(&self.pod, &f.workload.pod)
            && eq(&self.process, &f.process)
            && (!self.denied || f.denied.is_some())
    }
}

#[derive(Clone, Debug, Default, Hash, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
pub struct SummaryKey {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub process: String,
    pub route: String,
    pub provider: String,
}

impl SummaryKey {
    /// The row of flows with these (capped) labels: the summary and the
    /// metrics agree on names, `_other` included.
    pub fn of(labels: &FlowLabels) -> Self {
        Self {
            namespace: labels.namespace.clone(),
            pod: labels.pod.clone(),
            container: labels.container.clone(),
            process: labels.process.clone(),
            route: labels.route.as_str().to_owned(),
            provider: labels.provider.clone(),
        }
    }

    fn overflow(&self) -> Self {
        Self {
            namespace: OVERFLOW_VALUE.into(),
            pod: OVERFLOW_VALUE.into(),
            container: OVERFLOW_VALUE.into(),
            process: OVERFLOW_VALUE.into(),
            route: self.route.clone(),
            provider: self.provider.clone(),
        }
    }
}

/// A summary key made once per label set: hashed once, compared by
/// address first, so finding a flow's row costs no string work.
#[derive(Clone, Debug)]
pub struct SummaryRef {
    hash: u64,
    key: Arc<SummaryKey>,
}

impl SummaryRef {
    pub fn new(key: SummaryKey) -> Self {
        use std::hash::{Hash as _, Hasher as _};
        // A fixed-key hasher: equal keys made at different times must hash
        // alike (label values are capped, so flooding is not a concern).
        let mut hasher = std::hash::DefaultHasher::new();
        key.hash(&mut hasher);
        let hash = hasher.finish();
        Self {
            hash,
            key: Arc::new(key),
        }
    }
}

impl std::hash::Hash for SummaryRef {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl PartialEq for SummaryRef {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.key, &other.key) || *self.key == *other.key
    }
}

impl Eq for SummaryRef {}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct SummaryRow {
    #[serde(flatten)]
    pub key: SummaryKey,
    pub connections: u64,
    pub active: i64,
    pub failures: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub last_seen_unix_ms: u64,
    /// `--tls-probes`: requests read inside these flows, and the tokens
    /// (input and output) their responses reported.
    #[serde(default)]
    pub requests: u64,
    #[serde(default)]
    pub tokens: u64,
}

/// A flow the log still holds: among the recent ones, or not yet closed.
/// An open flow that left the recent window keeps only what its summary
/// row needs, not its record: on a node with many long-lived connections
/// the record (names, workload, verdict) is most of a flow's memory.
struct Held {
    /// Set while the flow is among the recent ones.
    record: Option<Arc<FlowRecord>>,
    /// Its summary row's key.
    key: SummaryRef,
    open: bool,
}

/// What happened to a counted flow since it was counted.
#[derive(Clone, Copy, Debug)]
pub enum FlowChange {
    Established,
    Ended(FlowEnd),
}

impl FlowChange {
    fn state(&self) -> FlowState {
        match self {
            FlowChange::Established => FlowState::Established,
            FlowChange::Ended(end) => end.state,
        }
    }

    fn apply(&self, f: &mut FlowRecord) {
        f.state = self.state();
        if let FlowChange::Ended(end) = self {
            f.bytes_sent = end.bytes_sent;
            f.bytes_received = end.bytes_received;
            f.duration_ms = Some(end.duration_ms());
            f.close = Some(end.how);
        }
    }
}

struct Inner {
    /// Cookies of the most recent flows, oldest first (at most `RECENT_FLOWS`).
    recent: VecDeque<u64>,
    /// Every recent or still open flow by cookie, so an update finds its
    /// flow however long it lived (bounded by the live table plus
    /// `RECENT_FLOWS`).
    held: FastMap<u64, Held>,
    summary: FastMap<SummaryRef, SummaryRow>,
}

impl Inner {
    /// Drops a held flow once it is neither recent nor open.
    fn release_if_done(&mut self, cookie: u64) {
        if self
            .held
            .get(&cookie)
            .is_some_and(|h| h.record.is_none() && !h.open)
        {
            self.held.remove(&cookie);
        }
    }
}

pub struct FlowLog {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<FlowRecord>>,
}

impl Default for FlowLog {
    fn default() -> Self {
        Self::new()
    }
}

impl FlowLog {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(STREAM_BUFFER);
        Self {
            inner: Mutex::new(Inner {
                recent: VecDeque::with_capacity(RECENT_FLOWS),
                held: FastMap::default(),
                summary: FastMap::default(),
            }),
            tx,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave these plain collections
        // inconsistent, so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A connection was counted.
    /// A connection was counted, under the summary row `key`
    /// (`SummaryRef::new(SummaryKey::of(labels))`, kept per label set).
    pub fn opened(&self, flow: Arc<FlowRecord>, key: &SummaryRef) {
        {
            let mut inner = self.lock();
            let key = summary_key(&inner.summary, key);
            let row = summary_row(&mut inner.summary, &key);
            row.connections += 1;
            row.last_seen_unix_ms = row.last_seen_unix_ms.max(flow.time_unix_ms);
            match flow.state {
                FlowState::Established => row.active += 1,
                FlowState::Failed => row.failures += 1,
                FlowState::Connecting | FlowState::Closed => {}
            }
            row.bytes_sent = row.bytes_sent.saturating_add(flow.bytes_sent);
            row.bytes_received = row.bytes_received.saturating_add(flow.bytes_received);
            if inner.recent.len() == RECENT_FLOWS
                && let Some(oldest) = inner.recent.pop_front()
                && let Some(h) = inner.held.get_mut(&oldest)
            {
                h.record = None;
                if !h.open {
                    inner.held.remove(&oldest);
                }
            }
            inner.recent.push_back(flow.cookie);
            let open = !matches!(flow.state, FlowState::Closed | FlowState::Failed);
            inner.held.insert(
                flow.cookie,
                Held {
                    record: Some(flow.clone()),
                    key,
                    open,
                },
            );
        }
        self.publish(flow);
    }

    /// Sends to live streams, if anyone listens (a send keeps a reference,
    /// which would make the next update copy the record).
    fn publish(&self, flow: Arc<FlowRecord>) {
        if self.tx.receiver_count() > 0 {
            let _ = self.tx.send(flow);
        }
    }

    /// A counted connection changed state (established, closed or failed).
    pub fn updated(&self, cookie: u64, was_established: bool, change: &FlowChange) {
        let flow = {
            let mut inner = self.lock();
            let Some(held) = inner.held.get_mut(&cookie) else {
                return;
            };
            // In place unless a reader (API, stream) still holds the record.
            let flow = held.record.as_mut().map(|record| {
                change.apply(Arc::make_mut(record));
                Arc::clone(record)
            });
            let state = change.state();
            let key = held.key.clone();
            held.open = !matches!(state, FlowState::Closed | FlowState::Failed);
            if held.record.is_none() && !held.open {
                inner.held.remove(&cookie);
            }
            let row = summary_row(&mut inner.summary, &key);
            row.last_seen_unix_ms = row.last_seen_unix_ms.max(crate::flows::record::unix_ms());
            match state {
                FlowState::Established if !was_established => row.active += 1,
                FlowState::Closed | FlowState::Failed if was_established => row.active -= 1,
                _ => {}
            }
            if state == FlowState::Failed {
                row.failures += 1;
            }
            if let FlowChange::Ended(end) = change {
                row.bytes_sent = row.bytes_sent.saturating_add(end.bytes_sent);
                row.bytes_received = row.bytes_received.saturating_add(end.bytes_received);
            }
            flow
        };
        if let Some(flow) = flow {
            self.publish(flow);
        }
    }

    /// `--tls-probes`: a request read inside a held flow: counted in its
    /// summary row; its record lists the first `REQUESTS_PER_FLOW_MAX`.
    pub fn request(&self, cookie: u64, request: crate::flows::FlowRequest) {
        let flow = {
            let mut inner = self.lock();
            let Some(held) = inner.held.get_mut(&cookie) else {
                return;
            };
            let key = held.key.clone();
            let tokens = request.input_tokens.unwrap_or(0) + request.output_tokens.unwrap_or(0);
            let flow = held.record.as_mut().and_then(|record| {
                (record.requests.len() < crate::flows::REQUESTS_PER_FLOW_MAX).then(|| {
                    Arc::make_mut(record).requests.push(request);
                    Arc::clone(record)
                })
            });
            let row = summary_row(&mut inner.summary, &key);
            row.requests += 1;
            row.tokens = row.tokens.saturating_add(tokens);
            row.last_seen_unix_ms = crate::flows::record::unix_ms();
            flow
        };
        if let Some(flow) = flow {
            self.publish(flow);
        }
    }

    /// A counted flow left the live table before it closed (the table was
    /// full): it no longer counts as active and is no longer held.
    pub fn evicted(&self, cookie: u64, was_established: bool) {
        let mut inner = self.lock();
        let Some(held) = inner.held.get_mut(&cookie) else {
            return;
        };
        held.open = false;
        let key = held.key.clone();
        inner.release_if_done(cookie);
        if was_established && let Some(row) = inner.summary.get_mut(&key) {
            row.active -= 1;
        }
    }

    /// Drops summary rows with no active flow and nothing new for `idle_for`
    /// (workloads that ended).
    pub fn expire_rows(&self, idle_for: std::time::Duration) {
        let cutoff = crate::flows::record::unix_ms().saturating_sub(idle_for.as_millis() as u64);
        self.lock()
            .summary
            .retain(|_, row| row.active > 0 || row.last_seen_unix_ms >= cutoff);
    }

    /// Flows held for updates (recent or still open), for tests and bounds.
    pub fn held_len(&self) -> usize {
        self.lock().held.len()
    }

    /// The newest flows matching `filter`, oldest first.
    pub fn recent(&self, filter: &FlowFilter) -> Vec<Arc<FlowRecord>> {
        let limit = filter.limit.unwrap_or(RECENT_FLOWS).min(RECENT_FLOWS);
        let inner = self.lock();
        let mut out: Vec<_> = inner
            .recent
            .iter()
            .rev()
            .filter_map(|c| inner.held.get(c).and_then(|h| h.record.clone()))
            .filter(|f| filter.matches(f))
            .take(limit)
            .collect();
        out.reverse();
        out
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<FlowRecord>> {
        self.tx.subscribe()
    }

    /// Rows sorted by direct connections, then connections, descending.
    pub fn summary(&self) -> Vec<SummaryRow> {
        let mut rows: Vec<SummaryRow> = self.lock().summary.values().cloned().collect();
        rows.sort_by(|a, b| {
            let direct = |r: &SummaryRow| {
                if r.key.route == "direct" {
                    r.connections
                } else {
                    0
                }
            };
            direct(b)
                .cmp(&direct(a))
                .then(b.connections.cmp(&a.connections))
                .then(a.key.cmp(&b.key))
        });
        rows
    }
}

/// The key a new flow's row has: its own, or the overflow row's once the
/// summary is full.
fn summary_key(summary: &FastMap<SummaryRef, SummaryRow>, key: &SummaryRef) -> SummaryRef {
    if summary.len() >= SUMMARY_ROWS && !summary.contains_key(key) {
        SummaryRef::new(key.key.overflow())
    } else {
        key.clone()
    }
}

/// The row of `key`, made when missing (a row that aged out comes back).
fn summary_row<'a>(
    summary: &'a mut FastMap<SummaryRef, SummaryRow>,
    key: &SummaryRef,
) -> &'a mut SummaryRow {
    summary.entry(key.clone()).or_insert_with(|| SummaryRow {
        key: (*key.key).clone(),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        classification::Verdict,
        flows::{FlowState, WorkloadInfo},
        naming::NameSource,
    };

    fn key() -> SummaryRef {
        SummaryRef::new(SummaryKey::of(&FlowLabels::direct_openai("agent")))
    }

    fn flow(cookie: u64, state: FlowState) -> Arc<FlowRecord> {
        Arc::new(FlowRecord {
            ts_ns: 0,
            cookie,
            route: Route::Direct,
            provider: "openai".into(),
            endpoint: "api.openai.com:443".into(),
            name: Some("api.openai.com".into()),
            name_source: NameSource::Sni,
            cnames: Vec::new(),
            dst: "127.0.0.2:443".parse().unwrap(),
            transport: Default::default(),
            dns_service: None,
            quic_hello: None,
            process: "agent".into(),
            tgid: 1,
            cgroup_id: 1,
            workload: WorkloadInfo::default().into(),
            alpn: Vec::new(),
            ech: false,
            verdict: Verdict {
                route: Route::Direct,
                provider: "openai".into(),
                kind: None,
                matched: None,
            },
            state,
            time_unix_ms: 0,
            bytes_sent: 0,
            bytes_received: 0,
            duration_ms: None,
            close: None,
            denied: None,
            requests: Vec::new(),
        })
    }

    fn ended(bytes_sent: u64, bytes_received: u64) -> FlowChange {
        FlowChange::Ended(FlowEnd {
            state: FlowState::Closed,
            failure: None,
            how: crate::flows::record::CloseHow::Fin,
            bytes_sent,
            bytes_received,
            duration_ns: 1_000_000,
        })
    }

    #[test]
    fn a_flow_that_outlives_the_recent_window_still_closes_in_the_summary() {
        let log = FlowLog::new();
        let long_lived = flow(1, FlowState::Established);
        log.opened(Arc::clone(&long_lived), &key());
        for cookie in 2..(RECENT_FLOWS as u64 + 100) {
            log.opened(flow(cookie, FlowState::Closed), &key());
        }
        assert_eq!(log.summary()[0].active, 1);
        assert_eq!(
            Arc::strong_count(&long_lived),
            1,
            "an open flow past the recent window no longer holds its record"
        );
        log.updated(1, true, &ended(300, 5000));
        let row = &log.summary()[0];
        assert_eq!(row.active, 0, "the long-lived flow closed");
        assert_eq!((row.bytes_sent, row.bytes_received), (300, 5000));
        assert_eq!(
            log.held_len(),
            RECENT_FLOWS,
            "only the recent flows stay held"
        );
    }

    #[test]
    fn a_recent_flow_is_updated_in_place() {
        let log = FlowLog::new();
        log.opened(flow(1, FlowState::Connecting), &key());
        log.updated(1, false, &FlowChange::Established);
        log.updated(1, true, &ended(1, 2));
        let recent = log.recent(&FlowFilter::default());
        assert_eq!(recent[0].state, FlowState::Closed);
        assert_eq!((recent[0].bytes_sent, recent[0].bytes_received), (1, 2));
        assert_eq!(log.summary()[0].active, 0);
    }

    #[test]
    fn an_evicted_flow_leaves_the_active_count() {
        let log = FlowLog::new();
        log.opened(flow(1, FlowState::Established), &key());
        log.evicted(1, true);
        assert_eq!(log.summary()[0].active, 0);
    }
}

#[cfg(test)]
mod summary_ref_tests {
    use super::*;

    #[test]
    fn equal_keys_made_apart_find_the_same_row() {
        let a = SummaryRef::new(SummaryKey::of(&FlowLabels::direct_openai("agent")));
        let b = SummaryRef::new(SummaryKey::of(&FlowLabels::direct_openai("agent")));
        let c = SummaryRef::new(SummaryKey::of(&FlowLabels::direct_openai("other")));
        let mut rows = std::collections::HashMap::new();
        rows.insert(a, 1);
        assert_eq!(rows.get(&b), Some(&1));
        assert_eq!(rows.get(&c), None);
    }
}
