//! Outputs: what gatewatch tells the world about the flows.
//!
//! [`metrics`] (the Prometheus contract) and [`flow_log`] (recent flows, the
//! live stream and the per-workload summary) receive every fact from the
//! flow table through [`Outputs`], its [`FlowSink`]; [`api`] serves both
//! over HTTP for Prometheus and the CLI.
use std::sync::Arc;

pub mod api;
pub mod flow_log;
pub mod metrics;

pub use api::AppState;
pub use flow_log::{FlowFilter, FlowLog};
pub use metrics::Metrics;

use crate::flows::{FlowEnd, FlowLabels, FlowRecord, FlowSink, FlowState, Note};

/// The metrics and the flow log, fed by the flow table.
pub struct Outputs {
    pub metrics: Arc<Metrics>,
    pub log: Arc<FlowLog>,
}

impl Outputs {
    pub fn new(metrics: Arc<Metrics>, log: Arc<FlowLog>) -> Self {
        Self { metrics, log }
    }
}

impl FlowSink for Outputs {
    fn counted(&mut self, flow: &FlowRecord, labels: &FlowLabels, end: Option<&FlowEnd>) {
        self.metrics.connection(labels, flow.name_source);
        match end {
            Some(end) => self.metrics.finished(labels, end),
            None if flow.state == FlowState::Established => self.metrics.active(labels, 1),
            None => {}
        }
        self.log.opened(flow.clone());
    }

    fn established(&mut self, cookie: u64, labels: &FlowLabels) {
        self.metrics.active(labels, 1);
        self.log
            .updated(cookie, false, |f| f.state = FlowState::Established);
    }

    fn closed(&mut self, cookie: u64, labels: &FlowLabels, end: &FlowEnd, was_active: bool) {
        self.metrics.finished(labels, end);
        if was_active {
            self.metrics.active(labels, -1);
        }
        self.log.updated(cookie, was_active, |f| {
            f.state = end.state;
            f.bytes_sent = end.bytes_sent;
            f.bytes_received = end.bytes_received;
            f.duration_ms = Some(end.duration_ms());
            f.close = Some(end.how);
        });
    }

    fn evicted(&mut self, cookie: u64, labels: &FlowLabels, was_active: bool) {
        self.metrics
            .flow_evictions
            .with_label_values(&["live"])
            .inc();
        if was_active {
            self.metrics.active(labels, -1);
        }
        self.log.evicted(cookie, was_active);
    }

    fn label_set_added(&mut self, labels: &FlowLabels) {
        self.metrics.failures_at_zero(labels);
    }

    fn label_set_expired(&mut self, labels: &FlowLabels) {
        self.metrics.remove_series(labels);
    }

    fn sweep(&mut self, idle_for: std::time::Duration) {
        self.log.expire_rows(idle_for);
    }

    fn note(&mut self, note: Note) {
        let m = &self.metrics;
        match note {
            Note::Event(kind) => m.events.with_label_values(&[kind]).inc(),
            Note::Dropped(source) => m.dropped.with_label_values(&[source]).inc(),
            Note::ParseError(kind) => m.parse_errors.with_label_values(&[kind]).inc(),
            Note::LabelFolded(label) => m.label_overflow.with_label_values(&[label]).inc(),
        }
    }
}
