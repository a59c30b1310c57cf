//! Where the flow table reports what it learns. The outputs (metrics, flow
//! log) implement [`FlowSink`]; the table depends on this trait only, so
//! the data path runs one way: flows → outputs.
use std::sync::Arc;

use super::{labels::SharedLabels, lifecycle::FlowEnd, record::FlowRecord};

/// Facts about gatewatch's own work, for its self-metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Note {
    /// A record of this kind was handled (`gatewatch_events_total{kind}`).
    Event(&'static str),
    /// Something was lost here (`gatewatch_events_dropped_total{source}`).
    Dropped(&'static str),
    /// Captured bytes did not parse (`gatewatch_parse_errors_total{kind}`).
    ParseError(&'static str),
    /// A label value was folded into `_other`.
    LabelFolded(&'static str),
}

pub trait FlowSink {
    /// A connection was counted, once. `end` is set when it had already
    /// closed while it waited for its name. The record is shared, not
    /// copied: the flow log keeps this very allocation.
    fn counted(&mut self, flow: &Arc<FlowRecord>, labels: &SharedLabels, end: Option<&FlowEnd>);
    /// A counted connection completed its handshake.
    fn established(&mut self, cookie: u64, labels: &SharedLabels);
    /// A counted connection closed; `was_active` when it was established.
    fn closed(&mut self, cookie: u64, labels: &SharedLabels, end: &FlowEnd, was_active: bool);
    /// A live flow was dropped from the full live table before it closed.
    fn evicted(&mut self, cookie: u64, labels: &SharedLabels, was_active: bool);
    /// `--tls-probes`: a request inside a counted AI connection ended
    /// (its response read, or the connection closed).
    fn request(&mut self, cookie: u64, labels: &SharedLabels, request: &crate::inspection::Request);
    /// A label set is used for the first time (or again after it expired).
    fn label_set_added(&mut self, labels: &SharedLabels);
    /// No flow used this label set for the series TTL: its series go.
    fn label_set_expired(&mut self, labels: &SharedLabels);
    /// Periodic: what the sink keeps per workload may age out too.
    fn sweep(&mut self, idle_for: std::time::Duration);
    fn note(&mut self, note: Note);
}
