//! `--otlp-endpoint`: the requests read inside TLS, exported as the
//! OpenTelemetry GenAI client metrics over OTLP/HTTP (protobuf) on an
//! interval, and once more when gatewatch stops. Exports run off the event
//! path (a blocking task); a collector that is down costs a logged warning
//! and `gatewatch_otlp_exports_total{outcome="error"}`, never a stall.
pub mod genai;
pub mod proto;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use prost::Message as _;
use tokio::sync::watch;

use super::Metrics;
pub use genai::GenAiMetrics;
use proto::KeyValue;

/// How long one export may take before it counts as failed.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Outcomes of `gatewatch_otlp_exports_total`.
pub const EXPORT_OUTCOMES: [&str; 2] = ["ok", "error"];

/// The GenAI metrics, shared by the event loop (which records) and the
/// exporter (which reads).
pub type SharedGenAi = Arc<Mutex<GenAiMetrics>>;

/// `URL` as given, or with OTLP/HTTP's metrics path added to a base URL.
pub fn metrics_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with("/v1/metrics") {
        base.to_owned()
    } else {
        format!("{base}/v1/metrics")
    }
}

/// Exports every `interval` until `stop`, then once more.
pub fn spawn(
    endpoint: &str,
    interval: Duration,
    genai: SharedGenAi,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let url = metrics_url(endpoint);
    log::info!("--otlp-endpoint: GenAI metrics to {url} every {interval:?}");
    tokio::spawn(async move {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(EXPORT_TIMEOUT))
            .http_status_as_error(true)
            .build()
            .into();
        let mut tick = tokio::time::interval(interval);
        tick.tick().await;
        loop {
            let last = tokio::select! {
                _ = tick.tick() => false,
                _ = stop.wait_for(|s| *s) => true,
            };
            let body = encode(&genai);
            let (agent, url) = (agent.clone(), url.clone());
            let sent = tokio::task::spawn_blocking(move || {
                agent
                    .post(&url)
                    .header("Content-Type", "application/x-protobuf")
                    .send(&body[..])
                    .map(|_| ())
            })
            .await;
            let outcome = match sent {
                Ok(Ok(())) => "ok",
                Ok(Err(e)) => {
                    log::warn!("--otlp-endpoint: export failed: {e}");
                    "error"
                }
                Err(e) => {
                    log::warn!("--otlp-endpoint: export task failed: {e}");
                    "error"
                }
            };
            metrics.otlp_exports.with_label_values(&[outcome]).inc();
            if last {
                return;
            }
        }
    })
}

fn encode(genai: &SharedGenAi) -> Vec<u8> {
    let resource = vec![
        KeyValue::string("service.name", "gatewatch"),
        KeyValue::string("service.version", crate::VERSION),
        KeyValue::string("host.name", &hostname()),
    ];
    let now = crate::flows::record::unix_ms().saturating_mul(1_000_000);
    let request = match genai.lock() {
        Ok(g) => g.export(resource, now),
        Err(poisoned) => poisoned.into_inner().export(resource, now),
    };
    request.encode_to_vec()
}

fn hostname() -> String {
    std::env::var("NODE_NAME").ok().unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metrics_path_is_added_to_a_base_url_once() {
        assert_eq!(metrics_url("http://c:4318"), "http://c:4318/v1/metrics");
        assert_eq!(metrics_url("http://c:4318/"), "http://c:4318/v1/metrics");
        assert_eq!(metrics_url("https://c/v1/metrics"), "https://c/v1/metrics");
    }
}
