//! The HTTP server: Prometheus metrics, health, readiness and the read-only
//! JSON API (`/api/v1/...`). It serves no payloads (gatewatch keeps none)
//! and accepts no writes.
use std::{
    convert::Infallible,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use axum::{
    Json, Router,
    body::{Body, Bytes},
    extract::{Query, State},
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use tokio::{net::TcpListener, sync::broadcast::error::RecvError};

use super::{
    super::agents::audit::WorkloadAgents,
    flow_log::{FlowFilter, FlowLog},
    metrics::Metrics,
};

pub struct AppState {
    pub metrics: Arc<Metrics>,
    pub log: Arc<FlowLog>,
    /// The effective configuration, as `GET /api/v1/config` shows it.
    pub config: serde_json::Value,
    /// Programs attached and the ring buffer being read.
    pub ready: AtomicBool,
    /// `--agent-audit`: per workload, the routes of the audited agents on
    /// the Foundry hosts it called; replaced after each audit round.
    pub agent_workloads: Mutex<Vec<WorkloadAgents>>,
}

impl AppState {
    pub fn new(metrics: Arc<Metrics>, log: Arc<FlowLog>, config: serde_json::Value) -> Self {
        Self {
            metrics,
            log,
            config,
            ready: AtomicBool::new(false),
            agent_workloads: Mutex::new(Vec::new()),
        }
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/api/v1/flows", get(flows))
        .route("/api/v1/flows/stream", get(stream))
        .route("/api/v1/summary", get(summary))
        .route("/api/v1/config", get(config))
        .route("/api/v1/agents/workloads", get(agent_workloads))
        .with_state(state)
}

async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
        state.metrics.render(),
    )
}

async fn readyz(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: programs not attached or ring buffer not read yet\n",
        )
    }
}

/// `GET /api/v1/flows?route=direct&namespace=team-a&limit=50`: recent flows, oldest first.
async fn flows(
    State(state): State<Arc<AppState>>,
    Query(filter): Query<FlowFilter>,
) -> impl IntoResponse {
    Json(state.log.recent(&filter))
}

/// `GET /api/v1/flows/stream?route=direct`: one JSON object per line for
/// every flow counted or updated from now on (chunked `application/x-ndjson`).
async fn stream(
    State(state): State<Arc<AppState>>,
    Query(filter): Query<FlowFilter>,
) -> impl IntoResponse {
    let rx = state.log.subscribe();
    let metrics = state.metrics.clone();
    let lines = futures_util::stream::unfold(
        (rx, filter, metrics),
        |(mut rx, filter, metrics)| async move {
            loop {
                match rx.recv().await {
                    Ok(flow) if filter.matches(&flow) => {
                        let mut line = serde_json::to_vec(&*flow).unwrap_or_default();
                        line.push(b'\n');
                        return Some((
                            Ok::<_, Infallible>(Bytes::from(line)),
                            (rx, filter, metrics),
                        ));
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(n)) => {
                        metrics.dropped.with_label_values(&["api_stream"]).inc_by(n)
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        },
    );
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
}

/// `GET /api/v1/summary`: per workload × route × provider totals, most direct first.
async fn summary(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    Json(state.log.summary())
}

/// `GET /api/v1/agents/workloads`: empty unless `--agent-audit` is on.
async fn agent_workloads(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let rows = state
        .agent_workloads
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    Json(rows)
}

async fn config(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    Json(state.config.clone())
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
