//! `--agent-audit`: the projects named by configuration and by the Foundry
//! hosts this node's workloads call, audited on an interval. The audit is
//! blocking HTTPS, so it runs on tokio's blocking pool; the event path only
//! feeds the flow log, whose live stream this task reads.
use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use tokio::{
    sync::{broadcast::error::RecvError, watch},
    task::JoinHandle,
};

use super::config::Config;
use crate::{
    agents::{
        self,
        audit::{AuditState, Callers, ProjectSet, WorkloadKey, is_foundry_host, series},
        credential::TokenProvider,
        endpoint::ProjectEndpoint,
        http::Http,
    },
    outputs::AppState,
};

/// How soon a project first seen in traffic is audited: new hosts arriving
/// together share one round.
const FIRST_SIGHTING_DELAY: Duration = Duration::from_secs(5);

/// Starts the audit task when `--agent-audit` is on. A CA file that cannot
/// be read or a half-configured credential fails here, before attaching.
pub fn spawn(
    cfg: &Config,
    api: Arc<AppState>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Option<JoinHandle<()>>> {
    if !cfg.agent_audit {
        return Ok(None);
    }
    let http = Http::new(&cfg.agents.roots).context("--azure-ca-file")?;
    let creds = TokenProvider::from_env(cfg.agents.credential).context("--agent-audit")?;
    let auditor = Auditor {
        set: ProjectSet::new(cfg.agents.projects.clone(), false),
        state: AuditState::default(),
        http,
        creds: Some(creds),
        interval: cfg.agents.interval,
        series_cap: cfg.label_cap,
        callers: Callers::default(),
        api: api.clone(),
        last_error: HashMap::new(),
    };
    log::info!(
        "--agent-audit: {} configured projects, every {}s, plus the Foundry resources seen in traffic",
        cfg.agents.projects.len(),
        cfg.agents.interval.as_secs()
    );
    Ok(Some(tokio::spawn(auditor.run(api.log.subscribe(), stop))))
}

struct Auditor {
    set: ProjectSet,
    state: AuditState,
    http: Http,
    /// Lent to the blocking round and given back (`None` meanwhile).
    creds: Option<TokenProvider>,
    interval: Duration,
    series_cap: usize,
    /// Which workloads called which Foundry host, for `top`'s marker.
    callers: Callers,
    /// The metrics and the API's agent_workloads, both rebuilt each round.
    api: Arc<AppState>,
    /// The last error logged per project, so a failing project logs once
    /// per distinct message, not every round.
    last_error: HashMap<String, String>,
}

type Outcome = (ProjectEndpoint, Result<agents::Report, String>);

impl Auditor {
    async fn run(
        mut self,
        mut flows: tokio::sync::broadcast::Receiver<Arc<crate::flows::FlowRecord>>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut next = tokio::time::Instant::now();
        loop {
            tokio::select! {
                flow = flows.recv() => match flow {
                    Ok(flow) => {
                        let Some(name) = flow.name.as_deref() else { continue };
                        if !is_foundry_host(name) {
                            continue;
                        }
                        self.callers.add(name, WorkloadKey {
                            namespace: flow.workload.namespace.clone(),
                            pod: flow.workload.pod.clone(),
                            container: flow.workload.container.clone(),
                            process: flow.process.clone(),
                        });
                        if self.set.observe_host(name) {
                            log::info!("--agent-audit: {name} seen in traffic; auditing its projects");
                            next = next.min(tokio::time::Instant::now() + FIRST_SIGHTING_DELAY);
                        }
                    }
                    // Missed flows only delay a sighting: the host comes again.
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return,
                },
                _ = tokio::time::sleep_until(next) => {
                    self.round().await;
                    next = tokio::time::Instant::now() + self.interval;
                }
                _ = stop.changed() => return,
            }
        }
    }

    /// Audits every project once on the blocking pool, then republishes the gauge.
    async fn round(&mut self) {
        let projects = self.set.projects();
        let Some(mut creds) = self.creds.take() else {
            return;
        };
        let http = self.http.clone();
        let done = tokio::task::spawn_blocking(move || {
            let outcomes: Vec<Outcome> = projects
                .into_iter()
                .map(|p| {
                    let r =
                        agents::audit_project(&http, &mut creds, &p, &agents::catalogue_model_host)
                            .map_err(|e| e.to_string());
                    (p, r)
                })
                .collect();
            (creds, outcomes)
        })
        .await;
        let (creds, outcomes) = match done {
            Ok(done) => done,
            Err(e) => {
                log::error!("--agent-audit: the audit round failed: {e}; auditing stops");
                return;
            }
        };
        self.creds = Some(creds);
        let now = Instant::now();
        let counted: Vec<(String, &str)> = outcomes
            .into_iter()
            .map(|(project, outcome)| {
                let label = project.label();
                let result = self.record(&label, outcome, now);
                (label, result)
            })
            .collect();
        self.state.expire(now, self.interval);
        self.api
            .metrics
            .agent_models(&series(self.state.rows(), self.series_cap));
        let joined = self.callers.join(self.state.rows());
        *self
            .api
            .agent_workloads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = joined;
        // Counted once the gauge and the workloads are published, so a
        // reader that sees a round counted sees its results too.
        for (label, result) in counted {
            self.api
                .metrics
                .agent_audits
                .with_label_values(&[&label, result])
                .inc();
        }
    }

    /// Keeps a project's outcome; returns the `outcome` label to count.
    fn record(
        &mut self,
        label: &str,
        outcome: Result<agents::Report, String>,
        now: Instant,
    ) -> &'static str {
        match outcome {
            Ok(report) => {
                if self.last_error.remove(label).is_some() {
                    log::info!("--agent-audit: {label}: audited again");
                }
                for note in &report.notes {
                    log::debug!("--agent-audit: {label}: {note}");
                }
                self.state.record_success(label, report.rows, now);
                "ok"
            }
            Err(e) => {
                if self.last_error.get(label) != Some(&e) {
                    log::warn!("--agent-audit: {label}: {e}");
                    self.last_error.insert(label.to_owned(), e);
                }
                self.state.record_failure(label);
                "error"
            }
        }
    }
}
