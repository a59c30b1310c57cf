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
pub mod otlp;
pub mod requests;
mod series;

pub use api::AppState;
pub use flow_log::{FlowChange, FlowFilter, FlowLog};
pub use metrics::Metrics;

use crate::flows::{
    FlowEnd, FlowRecord, FlowRequest, FlowSink, FlowState, Note, labels::SharedLabels,
};
use requests::RequestSeries;
use series::SeriesCache;

/// The metrics and the flow log, fed by the flow table.
pub struct Outputs {
    pub metrics: Arc<Metrics>,
    pub log: Arc<FlowLog>,
    series: SeriesCache,
    requests: RequestSeries,
    /// `--otlp-endpoint`: the GenAI metrics the exporter sends.
    genai: Option<otlp::SharedGenAi>,
    /// `gatewatch_events_total` by kind: counted on every ring record.
    events: Vec<(&'static str, prometheus::IntCounter)>,
}

impl Outputs {
    pub fn new(metrics: Arc<Metrics>, log: Arc<FlowLog>) -> Self {
        Self {
            metrics,
            log,
            series: SeriesCache::default(),
            requests: RequestSeries::default(),
            genai: None,
            events: Vec::new(),
        }
    }

    /// Also records the GenAI metrics `--otlp-endpoint` exports.
    pub fn set_genai(&mut self, genai: otlp::SharedGenAi) {
        self.genai = Some(genai);
    }

    /// Label sets whose metric handles are kept (for tests and bounds).
    pub fn series_len(&self) -> usize {
        self.series.len()
    }
}

impl FlowSink for Outputs {
    fn counted(&mut self, flow: &Arc<FlowRecord>, labels: &SharedLabels, end: Option<&FlowEnd>) {
        let (m, series) = (&self.metrics, self.series.get(labels));
        series.connection(m, flow.name_source);
        if let Some(denial) = &flow.denied {
            series.denied(m, denial);
        }
        match end {
            Some(end) => series.finished(m, end),
            None if flow.state == FlowState::Established => series.active(m, 1),
            None => {}
        }
        self.log.opened(Arc::clone(flow), series.summary());
    }

    fn established(&mut self, cookie: u64, labels: &SharedLabels) {
        self.series.get(labels).active(&self.metrics, 1);
        self.log.updated(cookie, false, &FlowChange::Established);
    }

    fn closed(&mut self, cookie: u64, labels: &SharedLabels, end: &FlowEnd, was_active: bool) {
        let (m, series) = (&self.metrics, self.series.get(labels));
        series.finished(m, end);
        if was_active {
            series.active(m, -1);
        }
        self.log
            .updated(cookie, was_active, &FlowChange::Ended(*end));
    }

    fn evicted(&mut self, cookie: u64, labels: &SharedLabels, was_active: bool) {
        self.metrics
            .flow_evictions
            .with_label_values(&["live"])
            .inc();
        if was_active {
            self.series.get(labels).active(&self.metrics, -1);
        }
        self.log.evicted(cookie, was_active);
    }

    fn label_set_added(&mut self, labels: &SharedLabels) {
        self.series.get(labels).failures_at_zero(&self.metrics);
    }

    fn label_set_expired(&mut self, labels: &SharedLabels) {
        self.series.remove(labels);
        self.metrics.remove_series(labels);
    }

    fn request(
        &mut self,
        cookie: u64,
        labels: &SharedLabels,
        request: &crate::inspection::Request,
    ) {
        let now = std::time::Instant::now();
        if self.requests.count(&self.metrics, labels, request, now) {
            self.note(Note::LabelFolded("model"));
        }
        self.log
            .request(cookie, FlowRequest::of(request, labels.route));
        if let Some(genai) = &self.genai
            && let Ok(mut g) = genai.lock()
        {
            let unix_ns = crate::flows::record::unix_ms().saturating_mul(1_000_000);
            g.record(labels, request, now, unix_ns);
        }
    }

    fn sweep(&mut self, idle_for: std::time::Duration) {
        self.log.expire_rows(idle_for);
        let now = std::time::Instant::now();
        self.requests.expire(&self.metrics, idle_for, now);
        if let Some(genai) = &self.genai
            && let Ok(mut g) = genai.lock()
        {
            g.expire(idle_for, now);
        }
    }

    fn note(&mut self, note: Note) {
        let m = &self.metrics;
        match note {
            Note::Event(kind) => match self.events.iter().find(|(k, _)| *k == kind) {
                Some((_, counter)) => counter.inc(),
                None => {
                    let counter = m.events.with_label_values(&[kind]);
                    counter.inc();
                    self.events.push((kind, counter));
                }
            },
            Note::Dropped(source) => m.dropped.with_label_values(&[source]).inc(),
            Note::ParseError(kind) => m.parse_errors.with_label_values(&[kind]).inc(),
            Note::LabelFolded(label) => m.label_overflow.with_label_values(&[label]).inc(),
        }
    }
}
