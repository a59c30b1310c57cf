//! What the JSON API serves: the most recent flows (bounded), a live
//! stream of flow updates, and a per-workload summary. Written by the flow
//! table on the event path, read by HTTP handlers; one short lock each.
use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::{
    classification::Route,
    flows::{FlowRecord, FlowState, OVERFLOW_VALUE},
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
}

impl FlowFilter {
    pub fn matches(&self, f: &FlowRecord) -> bool {
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        self.route.is_none_or(|r| r == f.route)
            && eq(&self.provider, &f.provider)
            && eq(&self.namespace, &f.workload.namespace)
            && eq(&self.pod, &f.workload.pod)
            && eq(&self.process, &f.process)
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
}

struct Inner {
    recent: VecDeque<Arc<FlowRecord>>,
    summary: HashMap<SummaryKey, SummaryRow>,
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

fn key_of(f: &FlowRecord) -> SummaryKey {
    SummaryKey {
        namespace: f.workload.namespace.clone(),
        pod: f.workload.pod.clone(),
        container: f.workload.container.clone(),
        process: f.process.clone(),
        route: f.route.as_str().to_owned(),
        provider: f.provider.clone(),
    }
}

impl FlowLog {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(STREAM_BUFFER);
        Self {
            inner: Mutex::new(Inner {
                recent: VecDeque::with_capacity(RECENT_FLOWS),
                summary: HashMap::new(),
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
    pub fn opened(&self, flow: FlowRecord) {
        let flow = Arc::new(flow);
        {
            let mut inner = self.lock();
            let row = summary_row(&mut inner.summary, key_of(&flow));
            row.connections += 1;
            row.last_seen_unix_ms = row.last_seen_unix_ms.max(flow.time_unix_ms);
            match flow.state {
                FlowState::Established => row.active += 1,
                FlowState::Failed => row.failures += 1,
                FlowState::Connecting | FlowState::Closed => {}
            }
            row.bytes_sent = row.bytes_sent.saturating_add(flow.bytes_sent);
            row.bytes_received = row.bytes_received.saturating_add(flow.bytes_received);
            if inner.recent.len() == RECENT_FLOWS {
                inner.recent.pop_front();
            }
            inner.recent.push_back(flow.clone());
        }
        let _ = self.tx.send(flow);
    }

    /// A counted connection changed state (established, closed or failed).
    pub fn updated(
        &self,
        cookie: u64,
        was_established: bool,
        update: impl FnOnce(&mut FlowRecord),
    ) {
        let flow = {
            let mut inner = self.lock();
            let Some(slot) = inner.recent.iter_mut().rev().find(|f| f.cookie == cookie) else {
                return;
            };
            let mut flow = (**slot).clone();
            update(&mut flow);
            let flow = Arc::new(flow);
            *slot = flow.clone();
            let row = summary_row(&mut inner.summary, key_of(&flow));
            match flow.state {
                FlowState::Established if !was_established => row.active += 1,
                FlowState::Closed | FlowState::Failed if was_established => row.active -= 1,
                _ => {}
            }
            if flow.state == FlowState::Failed {
                row.failures += 1;
            }
            row.bytes_sent = row.bytes_sent.saturating_add(flow.bytes_sent);
            row.bytes_received = row.bytes_received.saturating_add(flow.bytes_received);
            flow
        };
        let _ = self.tx.send(flow);
    }

    /// The newest flows matching `filter`, oldest first.
    pub fn recent(&self, filter: &FlowFilter) -> Vec<Arc<FlowRecord>> {
        let limit = filter.limit.unwrap_or(RECENT_FLOWS).min(RECENT_FLOWS);
        let inner = self.lock();
        let mut out: Vec<_> = inner
            .recent
            .iter()
            .rev()
            .filter(|f| filter.matches(f))
            .take(limit)
            .cloned()
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

fn summary_row(summary: &mut HashMap<SummaryKey, SummaryRow>, key: SummaryKey) -> &mut SummaryRow {
    let key = if summary.len() >= SUMMARY_ROWS && !summary.contains_key(&key) {
        SummaryKey {
            namespace: OVERFLOW_VALUE.into(),
            pod: OVERFLOW_VALUE.into(),
            container: OVERFLOW_VALUE.into(),
            process: OVERFLOW_VALUE.into(),
            route: key.route,
            provider: key.provider,
        }
    } else {
        key
    };
    summary.entry(key.clone()).or_insert_with(|| SummaryRow {
        key,
        ..Default::default()
    })
}
