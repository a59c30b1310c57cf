//! The Prometheus metric contract. Later versions add labels, never rename.
//!
//! Every label is bounded: `route`, `name_source`, `kind` and `source` are
//! small enums; `provider` comes from rules and the catalogue; `endpoint`
//! and the workload labels are capped per label
//! ([`crate::flows::labels::LabelCaps`]) with overflow folded into
//! `_other`; connections on route `other` carry no endpoint unless
//! `record_other_endpoints` is on. The agent audit's `project`, `agent` and
//! `model` are capped together: at most `label_cap` series, the rest folded
//! into `_other` per project and route ([`crate::agents::audit::series`]).
use prometheus::{
    Encoder as _, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder, core::Collector,
};

use std::collections::BTreeMap;

use crate::{
    agents::audit::SeriesKey,
    capture::{Event, ring::KERNEL_DROP_SOURCES},
    enforcement::{Mode, Stage},
    flows::{FLOW_LABELS, FlowLabels, labels::CAPPED_LABELS, lifecycle::FAILURE_REASONS},
    naming::{NameSource, opening::PARSE_KINDS},
};

/// What userspace loses: records it could not decode, connections counted
/// early from a full table, stream updates a slow reader skipped, QUIC
/// flows past the cap on hellos being assembled.
const USERSPACE_DROP_SOURCES: [&str; 5] = [
    "decode",
    "flow_table_full",
    "api_stream",
    crate::flows::QUIC_OPENINGS_FULL,
    crate::flows::TLS_UNJOINED,
];

/// Every `source` of `gatewatch_events_dropped_total`: each kernel slot,
/// then userspace.
pub const DROP_SOURCES: [&str; KERNEL_DROP_SOURCES.len() + USERSPACE_DROP_SOURCES.len()] = {
    let mut out = [""; KERNEL_DROP_SOURCES.len() + USERSPACE_DROP_SOURCES.len()];
    let mut i = 0;
    while i < KERNEL_DROP_SOURCES.len() {
        out[i] = KERNEL_DROP_SOURCES[i];
        i += 1;
    }
    let mut j = 0;
    while j < USERSPACE_DROP_SOURCES.len() {
        out[i + j] = USERSPACE_DROP_SOURCES[j];
        j += 1;
    }
    out
};

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
    /// `--agent-audit`: Foundry agents by the route of their model calls.
    pub agent_models: IntGaugeVec,
    pub agent_audits: IntCounterVec,
    /// `--enforce audit|deny`: direct model calls the policy forbade.
    pub denied: IntCounterVec,
    /// `--enforce deny`: what the enforcer could not do, by operation.
    pub enforce_errors: IntCounterVec,
    /// `--tls-probes`: requests read from AI connections' plaintext.
    pub requests: IntCounterVec,
    /// `--tls-probes`: tokens the responses reported, by type.
    pub tokens: IntCounterVec,
    /// `--otlp-endpoint`: exports by outcome.
    pub otlp_exports: IntCounterVec,
    /// The `--enforce` mode, for the series that start at 0.
    pub enforce: Mode,
}

/// Labels of `gatewatch_requests_total` (and, with `type`, of
/// `gatewatch_tokens_total`).
pub const REQUEST_LABELS: [&str; 9] = [
    "route",
    "provider",
    "operation",
    "model",
    "status_class",
    "namespace",
    "pod",
    "container",
    "process",
];

/// FLOW labels after `first`, for metrics that qualify a flow.
fn flow_labels_after(first: &'static str) -> Vec<&'static str> {
    let mut labels = vec![first];
    labels.extend(FLOW_LABELS);
    labels
}

fn register<C: Collector + Clone + 'static>(registry: &Registry, metric: C) -> C {
    registry
        .register(Box::new(metric.clone()))
        .expect("metric registered once");
    metric
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric =
        IntCounterVec::new(Opts::new(name, help), labels).expect("static metric definition");
    register(registry, metric)
}

fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let metric = IntGaugeVec::new(Opts::new(name, help), labels).expect("static metric definition");
    register(registry, metric)
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The operations of `gatewatch_enforce_errors_total`.
pub const ENFORCE_OPS: [&str; 2] = ["policy_write", "destroy"];

impl Metrics {
    /// The whole metric contract, one registration per metric with its
    /// name, help and labels: kept in one place so it reads as the contract.
    pub fn new() -> Self {
        Self::with_enforce(Mode::Off)
    }

    /// The metrics of a daemon running with `--enforce mode`.
    pub fn with_enforce(enforce: Mode) -> Self {
        let r = Registry::new();
        let connections = counter(
            &r,
            "gatewatch_connections_total",
            "Outbound connections (TCP, and UDP flows to QUIC ports: transport=quic), by route (gateway, direct, gateway_upstream, agent_platform, other).",
            &[FLOW_LABELS.as_slice(), &["name_source"]].concat(),
        );
        let bytes = counter(
            &r,
            "gatewatch_bytes_total",
            "Payload bytes of finished connections, by direction (TCP: kernel counters, sent = acknowledged by the peer; QUIC: UDP payload bytes).",
            &flow_labels_after("direction"),
        );
        let duration = register(
            &r,
            HistogramVec::new(
                HistogramOpts::new(
                    "gatewatch_connection_duration_seconds",
                    "Time from connect() to close of finished connections.",
                )
                .buckets(DURATION_BUCKETS.to_vec()),
                &["route", "provider"],
            )
            .expect("static metric definition"),
        );
        let active = gauge(
            &r,
            "gatewatch_active_connections",
            "Established connections not yet closed.",
            &FLOW_LABELS,
        );
        let failures = counter(
            &r,
            "gatewatch_connection_failures_total",
            "Connections that failed: refused (no SYN retransmit), timeout (after SYN retransmits) or reset (closed straight from established).",
            &flow_labels_after("reason"),
        );
        let metrics = Self {
            flow_evictions: counter(
                &r,
                "gatewatch_flow_evictions_total",
                "Flows dropped from a full table before they closed, by table.",
                &["table"],
            ),
            events: counter(
                &r,
                "gatewatch_events_total",
                "Records read from the kernel ring buffer, by kind.",
                &["kind"],
            ),
            dropped: counter(
                &r,
                "gatewatch_events_dropped_total",
                "Events lost, by where they were lost (ring buffer full per record kind, or undecodable).",
                &["source"],
            ),
            parse_errors: counter(
                &r,
                "gatewatch_parse_errors_total",
                "Captured bytes that did not parse, by parser (tls, http, dns, quic).",
                &["kind"],
            ),
            label_overflow: counter(
                &r,
                "gatewatch_label_values_folded_total",
                "Label values folded into _other because the label reached its cap.",
                &["label"],
            ),
            agent_models: gauge(
                &r,
                "gatewatch_agent_models",
                "Foundry agents (--agent-audit) by project, agent, configured model and route of their model calls (gateway, direct, unknown).",
                &["project", "agent", "model", "route"],
            ),
            agent_audits: counter(
                &r,
                "gatewatch_agent_audits_total",
                "Agent audits (--agent-audit) by project and outcome (ok, error).",
                &["project", "outcome"],
            ),
            denied: counter(
                &r,
                "gatewatch_denied_total",
                "Direct model calls the --enforce policy forbade, by stage (connect: refused with EPERM; first_bytes: ClientHello or HTTP request head dropped and socket ended) and mode (deny: stopped; audit: only counted).",
                &[&["stage", "mode"], FLOW_LABELS.as_slice()].concat(),
            ),
            enforce_errors: counter(
                &r,
                "gatewatch_enforce_errors_total",
                "--enforce deny: operations that failed, by op (policy_write: a process's policy not given to the kernel; destroy: a denied socket not ended).",
                &["op"],
            ),
            requests: counter(
                &r,
                "gatewatch_requests_total",
                "Requests inside AI connections read from TLS libraries' plaintext (--tls-probes), by route (the call decides it on hosts serving both model and agent APIs), operation (OpenTelemetry GenAI names), model and response status class (none: no response).",
                &REQUEST_LABELS,
            ),
            tokens: counter(
                &r,
                "gatewatch_tokens_total",
                "Tokens the responses of those requests reported (usage), by type (input, output).",
                &[REQUEST_LABELS.as_slice(), &["type"]].concat(),
            ),
            otlp_exports: counter(
                &r,
                "gatewatch_otlp_exports_total",
                "OTLP exports of the GenAI metrics (--otlp-endpoint), by outcome (ok, error).",
                &["outcome"],
            ),
            enforce,
            registry: r,
            connections,
            bytes,
            duration,
            failures,
            active,
        };
        metrics.build_info();
        metrics.start_known_series_at_zero();
        metrics
    }

    /// Counters whose label values are all known up front exist from the
    /// start at 0, so `increase()` sees their first event.
    fn start_known_series_at_zero(&self) {
        let series: [(&IntCounterVec, &[&str]); 8] = [
            (&self.enforce_errors, &ENFORCE_OPS),
            (&self.events, &Event::KINDS),
            (&self.dropped, &DROP_SOURCES),
            (&self.parse_errors, &PARSE_KINDS),
            (&self.label_overflow, &CAPPED_LABELS),
            (&self.label_overflow, &["model"]),
            (&self.otlp_exports, &super::otlp::EXPORT_OUTCOMES),
            (&self.flow_evictions, &["live"]),
        ];
        for (counter, values) in series {
            for value in values {
                counter.with_label_values(&[value]);
            }
        }
    }

    fn build_info(&self) {
        let build_info = gauge(
            &self.registry,
            "gatewatch_build_info",
            "Build of the running gatewatch (always 1).",
            &["version", "git_sha"],
        );
        build_info
            .with_label_values(&[crate::VERSION, crate::GIT_SHA])
            .set(1);
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Removes every series of `labels` (its workload ended): connections
    /// by name source, bytes by direction, failures by reason, active.
    pub fn remove_series(&self, labels: &FlowLabels) {
        let values = labels.values();
        let with = |first: &'static str| {
            let mut v = vec![first];
            v.extend_from_slice(&values);
            v
        };
        for source in NameSource::ALL {
            let mut v = values.to_vec();
            v.push(source.as_str());
            let _ = self.connections.remove_label_values(&v);
        }
        for direction in ["sent", "received"] {
            let _ = self.bytes.remove_label_values(&with(direction));
        }
        for reason in FAILURE_REASONS {
            let _ = self.failures.remove_label_values(&with(reason));
        }
        for stage in Stage::ALL {
            for mode in Mode::ALL {
                let mut v = vec![stage.as_str(), mode.as_str()];
                v.extend_from_slice(&values);
                let _ = self.denied.remove_label_values(&v);
            }
        }
        let _ = self.active.remove_label_values(&values);
    }

    /// Replaces every `gatewatch_agent_models` series with `series`: agents
    /// and projects that are gone disappear at the next audit.
    pub fn agent_models(&self, series: &BTreeMap<SeriesKey, i64>) {
        self.agent_models.reset();
        for ((project, agent, model, route), n) in series {
            self.agent_models
                .with_label_values(&[project, agent, model, route.as_str()])
                .set(*n);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_with_known_labels_start_at_zero() {
        let text = Metrics::new().render();
        for line in [
            r#"gatewatch_events_total{kind="connect"} 0"#,
            r#"gatewatch_events_dropped_total{source="ringbuf_payload"} 0"#,
            r#"gatewatch_events_dropped_total{source="api_stream"} 0"#,
            r#"gatewatch_parse_errors_total{kind="tls"} 0"#,
            r#"gatewatch_label_values_folded_total{label="pod"} 0"#,
            r#"gatewatch_flow_evictions_total{table="live"} 0"#,
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }

    #[test]
    fn exposition_has_build_info() {
        let text = Metrics::new().render();
        assert!(text.contains("gatewatch_build_info{"), "{text}");
    }

    #[test]
    fn agent_series_of_agents_that_are_gone_disappear() {
        use crate::agents::verdict::Route;
        let m = Metrics::new();
        let key = |agent: &str, route| ("p".to_owned(), agent.to_owned(), "m".to_owned(), route);
        m.agent_models(&BTreeMap::from([(key("old", Route::Direct), 1)]));
        m.agent_models(&BTreeMap::from([(key("new", Route::Gateway), 1)]));
        let text = m.render();
        assert!(
            text.contains(
                r#"gatewatch_agent_models{agent="new",model="m",project="p",route="gateway"} 1"#
            ),
            "{text}"
        );
        assert!(!text.contains(r#"agent="old""#), "{text}");
    }
}
