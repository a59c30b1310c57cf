//! The Prometheus metric contract. Later versions add labels, never rename.
//!
//! Every label is bounded: `route`, `name_source`, `kind` and `source` are
//! small enums; `provider` comes from rules and the catalogue; `endpoint`
//! and `process` are capped per label ([`LabelCaps`]) with overflow folded
//! into `_other`; connections on route `other` carry no endpoint unless
//! `record_other_endpoints` is on.
use std::collections::{HashMap, HashSet};

use prometheus::{
    Encoder as _, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Value that replaces a label value once its label reached its cap.
pub const OVERFLOW_VALUE: &str = "_other";

/// Default number of distinct values kept per capped label.
pub const DEFAULT_LABEL_CAP: usize = 1000;

/// Labels that identify a flow's destination and workload, in order; the
/// per-flow metrics share them so series join cleanly.
pub const FLOW_LABELS: [&str; 7] = [
    "route",
    "provider",
    "endpoint",
    "namespace",
    "pod",
    "container",
    "process",
];

/// Buckets of `gatewatch_connection_duration_seconds`: LLM calls stream
/// for seconds to minutes, so the buckets reach ten minutes.
pub const DURATION_BUCKETS: [f64; 13] = [
    0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

pub struct Metrics {
    registry: Registry,
    pub connections: IntCounterVec,
    pub bytes: IntCounterVec,
    pub duration: HistogramVec,
    pub failures: IntCounterVec,
    pub active: IntGaugeVec,
    pub flow_evictions: IntCounterVec,
    pub events: IntCounterVec,
    pub dropped: IntCounterVec,
    pub parse_errors: IntCounterVec,
    pub label_overflow: IntCounterVec,
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric =
        IntCounterVec::new(Opts::new(name, help), labels).expect("static metric definition");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric registered once");
    metric
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let connections = counter(
            &registry,
            "gatewatch_connections_total",
            "Outbound TCP connections, by route (gateway, direct, gateway_upstream, agent_platform, other).",
            // The flow labels and how the name was learnt.
            &[FLOW_LABELS.as_slice(), &["name_source"]].concat(),
        );
        let mut bytes_labels = vec!["direction"];
        bytes_labels.extend(FLOW_LABELS);
        let bytes = counter(
            &registry,
            "gatewatch_bytes_total",
            "TCP payload bytes of finished connections (kernel counters: sent = acknowledged by the peer), by direction.",
            &bytes_labels,
        );
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "gatewatch_connection_duration_seconds",
                "Time from connect() to close of finished connections.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["route", "provider"],
        )
        .expect("static metric definition");
        registry
            .register(Box::new(duration.clone()))
            .expect("metric registered once");
        let mut failure_labels = vec!["reason"];
        failure_labels.extend(FLOW_LABELS);
        let failures = counter(
            &registry,
            "gatewatch_connection_failures_total",
            "Connections that failed: refused (no SYN retransmit), timeout (after SYN retransmits) or reset (closed straight from established).",
            &failure_labels,
        );
        let active = IntGaugeVec::new(
            Opts::new(
                "gatewatch_active_connections",
                "Established connections not yet closed.",
            ),
            &FLOW_LABELS,
        )
        .expect("static metric definition");
        registry
            .register(Box::new(active.clone()))
            .expect("metric registered once");
        let flow_evictions = counter(
            &registry,
            "gatewatch_flow_evictions_total",
            "Flows dropped from a full table before they closed, by table.",
            &["table"],
        );
        let events = counter(
            &registry,
            "gatewatch_events_total",
            "Records read from the kernel ring buffer, by kind.",
            &["kind"],
        );
        let dropped = counter(
            &registry,
            "gatewatch_events_dropped_total",
            "Events lost, by where they were lost (ring buffer full per record kind, or undecodable).",
            &["source"],
        );
        let parse_errors = counter(
            &registry,
            "gatewatch_parse_errors_total",
            "Captured bytes that did not parse, by parser (tls, http, dns).",
            &["kind"],
        );
        let label_overflow = counter(
            &registry,
            "gatewatch_label_values_folded_total",
            "Label values folded into _other because the label reached its cap.",
            &["label"],
        );
        let build_info = IntGaugeVec::new(
            Opts::new(
                "gatewatch_build_info",
                "Build of the running gatewatch (always 1).",
            ),
            &["version", "git_sha"],
        )
        .expect("static metric definition");
        registry
            .register(Box::new(build_info.clone()))
            .expect("metric registered once");
        build_info
            .with_label_values(&[crate::VERSION, crate::GIT_SHA])
            .set(1);
        Self {
            registry,
            connections,
            bytes,
            duration,
            failures,
            active,
            flow_evictions,
            events,
            dropped,
            parse_errors,
            label_overflow,
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding into a Vec cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

/// Caps the number of distinct values per label.
#[derive(Debug)]
pub struct LabelCaps {
    cap: usize,
    seen: HashMap<&'static str, HashSet<String>>,
}

impl LabelCaps {
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            seen: HashMap::new(),
        }
    }

    /// Returns `value`, or [`OVERFLOW_VALUE`] once `label` has `cap` other
    /// values (counted in `folded`).
    pub fn admit<'a>(
        &mut self,
        label: &'static str,
        value: &'a str,
        folded: &IntCounterVec,
    ) -> &'a str {
        if value.is_empty() {
            return value;
        }
        let seen = self.seen.entry(label).or_default();
        if seen.contains(value) {
            return value;
        }
        if seen.len() < self.cap {
            seen.insert(value.to_owned());
            return value;
        }
        folded.with_label_values(&[label]).inc();
        OVERFLOW_VALUE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_build_info_and_counters() {
        let m = Metrics::new();
        m.connections
            .with_label_values(&[
                "direct",
                "openai",
                "api.openai.com:443",
                "",
                "",
                "",
                "python3",
                "sni",
            ])
            .inc();
        let text = m.render();
        assert!(text.contains("gatewatch_build_info{"), "{text}");
        assert!(
            text.contains(r#"gatewatch_connections_total{container="",endpoint="api.openai.com:443",name_source="sni",namespace="",pod="",process="python3",provider="openai",route="direct"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn label_values_past_the_cap_fold_into_other_and_are_counted() {
        let m = Metrics::new();
        let mut caps = LabelCaps::new(2);
        assert_eq!(caps.admit("endpoint", "a", &m.label_overflow), "a");
        assert_eq!(caps.admit("endpoint", "b", &m.label_overflow), "b");
        assert_eq!(caps.admit("endpoint", "a", &m.label_overflow), "a");
        assert_eq!(
            caps.admit("endpoint", "c", &m.label_overflow),
            OVERFLOW_VALUE
        );
        assert_eq!(caps.admit("process", "c", &m.label_overflow), "c");
        assert_eq!(m.label_overflow.with_label_values(&["endpoint"]).get(), 1);
    }
}
