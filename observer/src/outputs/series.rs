//! Metric handles per label set. Asking a prometheus vec for a series
//! hashes every label value and builds a label vector on each update; a
//! connection makes about five updates. The flow table shares one
//! [`SharedLabels`] per label set, so its handles are looked up once by the
//! set's address and kept until the set expires.

use prometheus::{Histogram, IntCounter, IntGauge};

use super::{
    Metrics,
    flow_log::{SummaryKey, SummaryRef},
};
use crate::{
    classification::Route,
    enforcement::{Denial, Mode, Stage},
    fast_map::FastMap,
    flows::{FlowEnd, labels::SharedLabels, lifecycle::FAILURE_REASONS},
    naming::NameSource,
};

const DIRECTIONS: [&str; 2] = ["sent", "received"];

/// The series of every label set in use.
#[derive(Default)]
pub struct SeriesCache {
    /// By the address of the set's shared copy; each entry holds a clone,
    /// so the address cannot be reused while its entry lives.
    by_set: FastMap<usize, Series>,
}

impl SeriesCache {
    pub fn get(&mut self, labels: &SharedLabels) -> &mut Series {
        self.by_set
            .entry(key(labels))
            .or_insert_with(|| Series::new(labels.clone()))
    }

    /// Forgets a set whose series were removed.
    pub fn remove(&mut self, labels: &SharedLabels) {
        self.by_set.remove(&key(labels));
    }

    pub fn len(&self) -> usize {
        self.by_set.len()
    }
}

fn key(labels: &SharedLabels) -> usize {
    std::sync::Arc::as_ptr(labels) as usize
}

/// One label set's handles, each made on first use so that series appear
/// exactly when they did through the vecs.
pub struct Series {
    labels: SharedLabels,
    connections: [Option<IntCounter>; NameSource::ALL.len()],
    bytes: [Option<IntCounter>; DIRECTIONS.len()],
    duration: Option<Histogram>,
    failures: [Option<IntCounter>; FAILURE_REASONS.len()],
    active: Option<IntGauge>,
    /// `gatewatch_denied_total` by stage (the mode is the daemon's).
    denied: [Option<IntCounter>; Stage::ALL.len()],
    /// The flow log's summary row for this set.
    summary: SummaryRef,
}

impl Series {
    fn new(labels: SharedLabels) -> Self {
        Self {
            summary: SummaryRef::new(SummaryKey::of(&labels)),
            labels,
            connections: Default::default(),
            bytes: Default::default(),
            duration: None,
            failures: Default::default(),
            active: None,
            denied: Default::default(),
        }
    }

    pub fn summary(&self) -> &SummaryRef {
        &self.summary
    }

    /// A connection was counted, named by `source`.
    pub fn connection(&mut self, m: &Metrics, source: NameSource) {
        let i = NameSource::ALL
            .iter()
            .position(|s| *s == source)
            .unwrap_or_default();
        let labels = &self.labels;
        self.connections[i]
            .get_or_insert_with(|| {
                let mut values = labels.values().to_vec();
                values.push(source.as_str());
                m.connections.with_label_values(&values)
            })
            .inc();
    }

    /// A connection finished: bytes, duration and failure reason.
    pub fn finished(&mut self, m: &Metrics, end: &FlowEnd) {
        let labels = &self.labels;
        for (i, n) in [end.bytes_sent, end.bytes_received].into_iter().enumerate() {
            if n > 0 {
                self.bytes[i]
                    .get_or_insert_with(|| with_first(&m.bytes, DIRECTIONS[i], labels))
                    .inc_by(n);
            }
        }
        self.duration
            .get_or_insert_with(|| {
                m.duration
                    .with_label_values(&[labels.route.as_str(), &labels.provider])
            })
            .observe(end.duration_ns as f64 / 1e9);
        if let Some(reason) = end.failure
            && let Some(i) = FAILURE_REASONS.iter().position(|r| *r == reason)
        {
            self.failures[i]
                .get_or_insert_with(|| with_first(&m.failures, reason, labels))
                .inc();
        }
    }

    /// One more (`delta` 1) or one fewer (-1) established connection.
    pub fn active(&mut self, m: &Metrics, delta: i64) {
        let labels = &self.labels;
        self.active
            .get_or_insert_with(|| m.active.with_label_values(&labels.values()))
            .add(delta);
    }

    /// Failure series at 0 from the set's first use, for AI routes (alerts
    /// watch them; `other` flows are too many to double their series);
    /// with `--enforce`, denial series at 0 for `direct` sets.
    pub fn failures_at_zero(&mut self, m: &Metrics) {
        if self.labels.route == Route::Other {
            return;
        }
        let labels = &self.labels;
        for (slot, reason) in self.failures.iter_mut().zip(FAILURE_REASONS) {
            slot.get_or_insert_with(|| with_first(&m.failures, reason, labels));
        }
        if m.enforce != Mode::Off && labels.route == Route::Direct {
            for (i, stage) in Stage::ALL.into_iter().enumerate() {
                self.denied_series(m, i, stage);
            }
        }
    }

    /// A connection the `--enforce` policy forbade.
    pub fn denied(&mut self, m: &Metrics, denial: &Denial) {
        if let Some(i) = Stage::ALL.iter().position(|s| *s == denial.stage) {
            self.denied_series(m, i, denial.stage).inc();
        }
    }

    fn denied_series(&mut self, m: &Metrics, i: usize, stage: Stage) -> &IntCounter {
        let labels = &self.labels;
        self.denied[i].get_or_insert_with(|| {
            let mut values = vec![stage.as_str(), m.enforce.as_str()];
            values.extend_from_slice(&labels.values());
            m.denied.with_label_values(&values)
        })
    }
}

/// The series of `vec` whose first label is `first`, then the flow labels.
fn with_first(vec: &prometheus::IntCounterVec, first: &str, labels: &SharedLabels) -> IntCounter {
    let mut values = vec![first];
    values.extend_from_slice(&labels.values());
    vec.with_label_values(&values)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::flows::FlowLabels;

    #[test]
    fn handles_count_into_the_same_series_the_exposition_shows() {
        let m = Metrics::new();
        let mut cache = SeriesCache::default();
        let labels = Arc::new(FlowLabels::direct_openai("python3"));
        cache.get(&labels).connection(&m, NameSource::Sni);
        cache.get(&labels).connection(&m, NameSource::Sni);
        cache.get(&labels).active(&m, 1);
        let text = m.render();
        assert!(
            text.contains(r#"gatewatch_connections_total{container="",endpoint="api.openai.com:443",name_source="sni",namespace="",pod="",process="python3",provider="openai",route="direct",transport="tcp"} 2"#),
            "{text}"
        );
        assert!(
            !text.contains(r#"name_source="dns""#),
            "made on first use only:\n{text}"
        );
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn an_expired_set_leaves_the_cache_and_a_new_copy_starts_afresh() {
        let m = Metrics::new();
        let mut cache = SeriesCache::default();
        let labels = Arc::new(FlowLabels::direct_openai("python3"));
        cache.get(&labels).failures_at_zero(&m);
        assert!(m.render().contains(r#"reason="not_sent""#));
        m.remove_series(&labels);
        cache.remove(&labels);
        assert_eq!(cache.len(), 0);
        let again = Arc::new(FlowLabels::direct_openai("python3"));
        cache.get(&again).connection(&m, NameSource::Dns);
        let text = m.render();
        assert!(
            text.contains(r#"name_source="dns",namespace="",pod="",process="python3",provider="openai",route="direct",transport="tcp"} 1"#),
            "{text}"
        );
    }
}
