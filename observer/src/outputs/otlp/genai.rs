//! The OpenTelemetry GenAI client metrics, from the requests read inside
//! TLS: `gen_ai.client.token.usage` ({token}) and
//! `gen_ai.client.operation.duration` (s), cumulative histograms with the
//! conventions' bucket boundaries, one data point per attribute set.
//! Bounded like the Prometheus series: `model` values are capped (the rest
//! are `_other`) and a point no request updated for the series TTL goes.
use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use super::proto::{
    CUMULATIVE, ExportMetricsServiceRequest, Histogram, HistogramDataPoint, InstrumentationScope,
    KeyValue, Metric, Resource, ResourceMetrics, ScopeMetrics,
};
use crate::{
    classification::Route, flows::FlowLabels, inspection::Request, outputs::requests::ModelCap,
};

/// `gen_ai.client.token.usage` boundaries (the semantic conventions').
pub const TOKEN_BOUNDS: [f64; 14] = [
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];
/// `gen_ai.client.operation.duration` boundaries, in seconds.
pub const DURATION_BOUNDS: [f64; 14] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];

pub const TOKEN_USAGE: &str = "gen_ai.client.token.usage";
pub const OPERATION_DURATION: &str = "gen_ai.client.operation.duration";

/// One data point's attributes (the histogram's and, for tokens, the type).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Attrs {
    operation: &'static str,
    provider: String,
    model: String,
    server_address: String,
    server_port: Option<u16>,
    /// `error.type`: the HTTP status of a failed call, or `no_response`.
    error: Option<String>,
    route: Route,
    namespace: String,
    pod: String,
    container: String,
    process: String,
}

impl Attrs {
    fn key_values(&self) -> Vec<KeyValue> {
        let mut kv = vec![
            KeyValue::string("gen_ai.operation.name", self.operation),
            KeyValue::string("gen_ai.provider.name", &self.provider),
            KeyValue::string("gatewatch.route", self.route.as_str()),
        ];
        for (key, value) in [
            ("gen_ai.request.model", &self.model),
            ("server.address", &self.server_address),
            ("k8s.namespace.name", &self.namespace),
            ("k8s.pod.name", &self.pod),
            ("k8s.container.name", &self.container),
            ("process.executable.name", &self.process),
        ] {
            if !value.is_empty() {
                kv.push(KeyValue::string(key, value));
            }
        }
        if let Some(port) = self.server_port {
            kv.push(KeyValue::int("server.port", i64::from(port)));
        }
        if let Some(error) = &self.error {
            kv.push(KeyValue::string("error.type", error));
        }
        kv
    }
}

#[derive(Clone, Debug, Default)]
struct Hist {
    count: u64,
    sum: f64,
    buckets: Vec<u64>,
}

impl Hist {
    fn record(&mut self, bounds: &[f64], v: f64) {
        if self.buckets.is_empty() {
            self.buckets = vec![0; bounds.len() + 1];
        }
        let i = bounds.iter().position(|b| v <= *b).unwrap_or(bounds.len());
        self.buckets[i] += 1;
        self.count += 1;
        self.sum += v;
    }

    fn point(
        &self,
        attrs: Vec<KeyValue>,
        bounds: &[f64],
        start: u64,
        now: u64,
    ) -> HistogramDataPoint {
        HistogramDataPoint {
            attributes: attrs,
            start_time_unix_nano: start,
            time_unix_nano: now,
            count: self.count,
            sum: Some(self.sum),
            bucket_counts: self.buckets.clone(),
            explicit_bounds: bounds.to_vec(),
        }
    }
}

struct Point {
    start_unix_ns: u64,
    last: Instant,
    duration: Hist,
    input: Hist,
    output: Hist,
}

#[derive(Default)]
pub struct GenAiMetrics {
    points: HashMap<Attrs, Point>,
    models: ModelCap,
}

impl GenAiMetrics {
    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// One request read inside a flow with `flow`'s labels.
    pub fn record(&mut self, flow: &FlowLabels, req: &Request, now: Instant, now_unix_ns: u64) {
        let model = self.models.value(req.model.as_deref().unwrap_or_default());
        let (server_address, server_port) = match flow.endpoint.rsplit_once(':') {
            Some((host, port)) => (host.trim_matches(['[', ']']).to_owned(), port.parse().ok()),
            None => (flow.endpoint.clone(), None),
        };
        let attrs = Attrs {
            operation: req.operation.name(),
            provider: flow.provider.clone(),
            model,
            server_address,
            server_port,
            error: match req.status {
                0 => Some("no_response".to_owned()),
                s if s >= 400 => Some(s.to_string()),
                _ => None,
            },
            route: req.operation.route(flow.route),
            namespace: flow.namespace.clone(),
            pod: flow.pod.clone(),
            container: flow.container.clone(),
            process: flow.process.clone(),
        };
        if !self.points.contains_key(&attrs) {
            self.models.hold(&attrs.model);
        }
        let p = self.points.entry(attrs).or_insert_with(|| Point {
            start_unix_ns: now_unix_ns,
            last: now,
            duration: Hist::default(),
            input: Hist::default(),
            output: Hist::default(),
        });
        p.last = now;
        p.duration
            .record(&DURATION_BOUNDS, req.duration_ns as f64 / 1e9);
        if let Some(n) = req.usage.input {
            p.input.record(&TOKEN_BOUNDS, n as f64);
        }
        if let Some(n) = req.usage.output {
            p.output.record(&TOKEN_BOUNDS, n as f64);
        }
    }

    /// Drops the points no request updated for `idle_for`.
    pub fn expire(&mut self, idle_for: Duration, now: Instant) {
        let models = &mut self.models;
        self.points.retain(|attrs, p| {
            let keep = now.duration_since(p.last) < idle_for;
            if !keep {
                models.release(&attrs.model);
            }
            keep
        });
    }

    /// Everything as one OTLP export request.
    pub fn export(&self, resource: Vec<KeyValue>, now_unix_ns: u64) -> ExportMetricsServiceRequest {
        let (mut tokens, mut durations) = (Vec::new(), Vec::new());
        let mut points: Vec<(&Attrs, &Point)> = self.points.iter().collect();
        points.sort_by_key(|(_, p)| p.start_unix_ns);
        for (attrs, p) in points {
            let kv = attrs.key_values();
            durations.push(p.duration.point(
                kv.clone(),
                &DURATION_BOUNDS,
                p.start_unix_ns,
                now_unix_ns,
            ));
            for (kind, hist) in [("input", &p.input), ("output", &p.output)] {
                if hist.count > 0 {
                    let mut kv = kv.clone();
                    kv.push(KeyValue::string("gen_ai.token.type", kind));
                    tokens.push(hist.point(kv, &TOKEN_BOUNDS, p.start_unix_ns, now_unix_ns));
                }
            }
        }
        let histogram = |name: &str, description: &str, unit: &str, points| Metric {
            name: name.to_owned(),
            description: description.to_owned(),
            unit: unit.to_owned(),
            histogram: Some(Histogram {
                data_points: points,
                aggregation_temporality: CUMULATIVE,
            }),
        };
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(Resource {
                    attributes: resource,
                }),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(InstrumentationScope {
                        name: "gatewatch".to_owned(),
                        version: crate::VERSION.to_owned(),
                    }),
                    metrics: vec![
                        histogram(
                            TOKEN_USAGE,
                            "Tokens used by GenAI calls read inside TLS, by type.",
                            "{token}",
                            tokens,
                        ),
                        histogram(
                            OPERATION_DURATION,
                            "Duration of GenAI calls read inside TLS, request to last response byte.",
                            "s",
                            durations,
                        ),
                    ],
                }],
            }],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspection::{Operation, Usage};
    use prost::Message as _;

    fn chat(model: &str, input: u64, output: u64, status: u16) -> Request {
        Request {
            operation: Operation::Chat,
            method: "POST".into(),
            path: "/v1/chat/completions".into(),
            model: Some(model.into()),
            status,
            usage: Usage {
                input: Some(input),
                output: Some(output),
            },
            streamed: false,
            duration_ns: 250_000_000,
        }
    }

    #[test]
    fn token_usage_and_duration_are_cumulative_histograms_per_attribute_set() {
        let mut m = GenAiMetrics::default();
        let flow = FlowLabels::direct_openai("agent");
        let now = Instant::now();
        m.record(&flow, &chat("gpt-4o", 11, 7, 200), now, 1);
        m.record(&flow, &chat("gpt-4o", 100, 2, 200), now, 2);
        m.record(&flow, &chat("gpt-4o", 5, 0, 429), now, 3);
        let req = m.export(vec![KeyValue::string("service.name", "gatewatch")], 10);
        let bytes = req.encode_to_vec();
        let back = ExportMetricsServiceRequest::decode(bytes.as_slice()).expect("round trip");
        let metrics = &back.resource_metrics[0].scope_metrics[0].metrics;
        assert_eq!(metrics[0].name, TOKEN_USAGE);
        let points = &metrics[0].histogram.as_ref().unwrap().data_points;
        // Two attribute sets (200 and 429) × two token types.
        assert_eq!(points.len(), 4);
        let ok_input = &points[0];
        assert_eq!((ok_input.count, ok_input.sum), (2, Some(111.0)));
        assert_eq!(ok_input.bucket_counts.iter().sum::<u64>(), 2);
        assert!(
            ok_input
                .attributes
                .contains(&KeyValue::string("gen_ai.token.type", "input"))
        );
        assert!(
            ok_input
                .attributes
                .contains(&KeyValue::string("server.address", "api.openai.com"))
        );
        assert!(
            points[2]
                .attributes
                .contains(&KeyValue::string("error.type", "429"))
        );
        let durations = &metrics[1].histogram.as_ref().unwrap().data_points;
        assert_eq!(durations[0].count, 2);
        assert_eq!(
            durations[0].bucket_counts[5], 2,
            "0.25 s falls in (0.16, 0.32]"
        );
        m.expire(Duration::from_secs(60), now + Duration::from_secs(61));
        assert!(m.is_empty());
    }
}
