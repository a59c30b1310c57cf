//! Flows: one record per connection, joined from the kernel's records by
//! socket cookie, named and classified once, followed to its close.
//!
//! [`pending`] holds connections waiting for their name → [`table`] names
//! ([`crate::naming`]) and classifies ([`crate::classification`]) them,
//! builds their [`labels`] (typed, capped, interned) and [`record`] →
//! [`live`] follows counted flows to their close, where [`lifecycle`] turns
//! the kernel's counters into bytes and a failure reason → every fact goes
//! to a [`sink::FlowSink`] (the outputs).
pub mod labels;
pub mod lifecycle;
pub mod live;
pub mod pending;
pub mod record;
pub mod sink;
pub mod table;

#[cfg(test)]
mod enforce_tests;
#[cfg(test)]
mod tests;

pub use labels::{DEFAULT_LABEL_CAP, FLOW_LABELS, FlowLabels, OVERFLOW_VALUE};
pub use lifecycle::FlowEnd;
pub use live::DEFAULT_MAX_LIVE;
pub use record::{
    FlowRecord, FlowRequest, FlowState, Identify, REQUESTS_PER_FLOW_MAX, WorkloadInfo,
};
pub use sink::{FlowSink, Note};
pub use table::{FlowSettings, FlowTable, QUIC_OPENINGS_FULL, QUIC_OPENINGS_MAX, TLS_UNJOINED};
