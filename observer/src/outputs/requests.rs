//! `gatewatch_requests_total` and `gatewatch_tokens_total`: one series per
//! (flow labels, route, operation, model, status class), with its handles
//! kept so a request costs no label hashing in prometheus. Bounded like
//! every label: at most `MODELS_MAX` model names are alive at once (the
//! rest are `_other`), and a series no request touched for the series TTL
//! leaves `/metrics`.
use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use prometheus::IntCounter;

use super::Metrics;
use crate::{
    classification::Route,
    flows::{FlowLabels, OVERFLOW_VALUE},
    inspection::Request,
};

/// Distinct `model` label values alive at once.
pub const MODELS_MAX: usize = 256;

/// `model` values alive across a set of series, capped at `MODELS_MAX`:
/// shared by the Prometheus request series and the OTLP GenAI points.
#[derive(Default)]
pub struct ModelCap {
    /// Series alive per model value.
    alive: HashMap<String, usize>,
}

impl ModelCap {
    /// The value to use for `model`: itself, or `_other` when the cap is
    /// reached and it is not alive yet.
    pub fn value(&self, model: &str) -> String {
        let folded =
            !model.is_empty() && !self.alive.contains_key(model) && self.alive.len() >= MODELS_MAX;
        if folded { OVERFLOW_VALUE } else { model }.to_owned()
    }

    /// A series with this (capped) value was created.
    pub fn hold(&mut self, value: &str) {
        *self.alive.entry(value.to_owned()).or_default() += 1;
    }

    /// A series with this value went.
    pub fn release(&mut self, value: &str) {
        if let Some(n) = self.alive.get_mut(value) {
            *n -= 1;
            if *n == 0 {
                self.alive.remove(value);
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    route: Route,
    provider: String,
    operation: &'static str,
    model: String,
    status_class: &'static str,
    namespace: String,
    pod: String,
    container: String,
    process: String,
}

impl Key {
    fn values(&self) -> [&str; 9] {
        [
            self.route.as_str(),
            &self.provider,
            self.operation,
            &self.model,
            self.status_class,
            &self.namespace,
            &self.pod,
            &self.container,
            &self.process,
        ]
    }
}

struct Handles {
    requests: IntCounter,
    input: IntCounter,
    output: IntCounter,
    last: Instant,
}

#[derive(Default)]
pub struct RequestSeries {
    by_key: HashMap<Key, Handles>,
    models: ModelCap,
}

impl RequestSeries {
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Counts one request; returns true when its model was folded.
    pub fn count(&mut self, m: &Metrics, flow: &FlowLabels, req: &Request, now: Instant) -> bool {
        let model = req.model.as_deref().unwrap_or_default();
        let capped = self.models.value(model);
        let folded = capped != model;
        let key = Key {
            route: req.operation.route(flow.route),
            provider: flow.provider.clone(),
            operation: req.operation.name(),
            model: capped,
            status_class: req.status_class(),
            namespace: flow.namespace.clone(),
            pod: flow.pod.clone(),
            container: flow.container.clone(),
            process: flow.process.clone(),
        };
        if !self.by_key.contains_key(&key) {
            self.models.hold(&key.model);
        }
        let h = self.by_key.entry(key).or_insert_with_key(|key| {
            let values = key.values();
            let typed = |t: &'static str| {
                let mut v = values.to_vec();
                v.push(t);
                m.tokens.with_label_values(&v)
            };
            Handles {
                requests: m.requests.with_label_values(&values),
                input: typed("input"),
                output: typed("output"),
                last: now,
            }
        });
        h.requests.inc();
        h.input.inc_by(req.usage.input.unwrap_or(0));
        h.output.inc_by(req.usage.output.unwrap_or(0));
        h.last = now;
        folded
    }

    /// Removes the series no request touched for `idle_for`.
    pub fn expire(&mut self, m: &Metrics, idle_for: Duration, now: Instant) {
        let models = &mut self.models;
        self.by_key.retain(|key, h| {
            if now.duration_since(h.last) < idle_for {
                return true;
            }
            let values = key.values();
            let _ = m.requests.remove_label_values(&values);
            for t in ["input", "output"] {
                let mut v = values.to_vec();
                v.push(t);
                let _ = m.tokens.remove_label_values(&v);
            }
            models.release(&key.model);
            false
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspection::{Operation, Usage};

    fn request(model: &str, input: u64, output: u64) -> Request {
        Request {
            operation: Operation::Chat,
            method: "POST".into(),
            path: "/v1/chat/completions".into(),
            model: Some(model.into()),
            status: 200,
            usage: Usage {
                input: Some(input),
                output: Some(output),
            },
            streamed: false,
            duration_ns: 0,
        }
    }

    #[test]
    fn counts_requests_and_tokens_and_series_age_out() {
        let m = Metrics::new();
        let mut s = RequestSeries::default();
        let flow = FlowLabels::direct_openai("agent");
        let t0 = Instant::now();
        s.count(&m, &flow, &request("gpt-4o", 11, 7), t0);
        s.count(&m, &flow, &request("gpt-4o", 1, 2), t0);
        let text = m.render();
        assert!(
            text.contains(r#"gatewatch_tokens_total{container="",model="gpt-4o",namespace="",operation="chat",pod="",process="agent",provider="openai",route="direct",status_class="2xx",type="input"} 12"#),
            "{text}"
        );
        s.expire(&m, Duration::from_secs(60), t0 + Duration::from_secs(61));
        assert!(s.is_empty());
        assert!(!m.render().contains("gatewatch_requests_total{"));
    }

    #[test]
    fn models_past_the_cap_fold_into_other() {
        let m = Metrics::new();
        let mut s = RequestSeries::default();
        let flow = FlowLabels::direct_openai("agent");
        let now = Instant::now();
        for i in 0..MODELS_MAX {
            assert!(!s.count(&m, &flow, &request(&format!("m{i}"), 1, 1), now));
        }
        assert!(s.count(&m, &flow, &request("one-too-many", 1, 1), now));
        assert!(m.render().contains(r#"model="_other""#));
    }
}
