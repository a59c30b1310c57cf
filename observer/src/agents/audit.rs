//! Daemon mode (`--agent-audit`): which projects to audit, the last result of
//! each, and the bounded `gatewatch_agent_models` gauge built from them.
use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

use crate::{
    agents::{
        endpoint::ProjectEndpoint,
        verdict::{Route, Row},
    },
    flows::OVERFLOW_VALUE,
};

/// Projects audited at most (configured ones count too): each costs a few
/// API calls per interval and a block of series.
pub const MAX_PROJECTS: usize = 64;
/// `gatewatch_agent_models` series at most (the daemon uses its
/// `label_cap`, whose default this is); agents past it fold into
/// agent="_other", model="_other" per (project, route), so the route totals
/// stay right.
pub const MAX_AGENT_SERIES: usize = crate::flows::DEFAULT_LABEL_CAP;
/// A project's rows are dropped when its last good audit is this many intervals old.
pub const EXPIRY_INTERVALS: u32 = 3;
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(300);
/// Below this the audit would be a load on the project API for no news.
pub const MIN_INTERVAL: Duration = Duration::from_secs(30);

/// Foundry project API hosts, as the node sees them (SNI / Host).
const FOUNDRY_HOST_SUFFIXES: [&str; 1] = [".services.ai.azure.com"];

/// Whether a connection name observed on the node is a Foundry resource whose
/// default project can be audited. Only the host is visible: the project name
/// is in the (encrypted) path.
pub fn is_foundry_host(name: &str) -> bool {
    let host = name
        .rsplit_once(':')
        .map_or(name, |(h, _)| h)
        .trim_end_matches('.')
        .to_ascii_lowercase();
    FOUNDRY_HOST_SUFFIXES
        .iter()
        .any(|s| host.ends_with(s) && host.len() > s.len())
}

/// The projects to audit: configured endpoints first, then the default
/// project of each Foundry host seen in traffic that no configured endpoint
/// already covers. On a DaemonSet (`only_seen`), a configured project is
/// audited only once its host shows up in this node's traffic, so the load
/// on the project API follows real use instead of the node count.
#[derive(Debug, Default)]
pub struct ProjectSet {
    configured: Vec<ProjectEndpoint>,
    only_seen: bool,
    seen: BTreeSet<String>,
    observed: BTreeMap<String, ProjectEndpoint>,
}

impl ProjectSet {
    pub fn new(configured: Vec<ProjectEndpoint>, only_seen: bool) -> Self {
        let mut configured = configured;
        configured.truncate(MAX_PROJECTS);
        Self {
            configured,
            only_seen,
            seen: BTreeSet::new(),
            observed: BTreeMap::new(),
        }
    }

    /// Records a host seen in traffic; true when it adds a project to audit.
    pub fn observe_host(&mut self, host: &str) -> bool {
        let host = host.trim_end_matches(":443").to_ascii_lowercase();
        if self.seen.contains(&host) || self.seen.len() >= MAX_PROJECTS {
            return false;
        }
        self.seen.insert(host.clone());
        if self.configured.iter().any(|e| e.authority() == host) {
            return self.only_seen;
        }
        if self.configured.len() + self.observed.len() >= MAX_PROJECTS {
            return false;
        }
        match ProjectEndpoint::default_for_host(&host) {
            Ok(e) => {
                self.observed.insert(host, e);
                true
            }
            Err(_) => false,
        }
    }

    pub fn projects(&self) -> Vec<ProjectEndpoint> {
        self.configured
            .iter()
            .filter(|e| !self.only_seen || self.seen.contains(&e.authority()))
            .chain(self.observed.values())
            .cloned()
            .collect()
    }
}

#[derive(Debug)]
struct ProjectResult {
    rows: Vec<Row>,
    last_success: Option<Instant>,
}

/// Last audit result per project label.
#[derive(Debug, Default)]
pub struct AuditState {
    results: HashMap<String, ProjectResult>,
}

impl AuditState {
    pub fn record_success(&mut self, project: &str, rows: Vec<Row>, now: Instant) {
        self.results.insert(
            project.to_owned(),
            ProjectResult {
                rows,
                last_success: Some(now),
            },
        );
    }

    /// A failed audit keeps the previous rows until they expire.
    pub fn record_failure(&mut self, project: &str) {
        self.results
            .entry(project.to_owned())
            .or_insert(ProjectResult {
                rows: Vec::new(),
                last_success: None,
            });
    }

    /// Drops rows whose last good audit is older than EXPIRY_INTERVALS × interval.
    pub fn expire(&mut self, now: Instant, interval: Duration) {
        let max_age = interval * EXPIRY_INTERVALS;
        for r in self.results.values_mut() {
            if r.last_success
                .is_none_or(|t| now.duration_since(t) > max_age)
            {
                r.rows.clear();
            }
        }
    }

    pub fn rows(&self) -> impl Iterator<Item = &Row> {
        self.results.values().flat_map(|r| r.rows.iter())
    }
}

/// Workloads remembered per Foundry host, at most: enough for `top`'s
/// marker; later callers of a busy host are not marked.
pub const MAX_CALLERS_PER_HOST: usize = 256;

/// A workload as `gatewatch top` and `/api/v1/summary` name it.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WorkloadKey {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub process: String,
}

/// The audited agents on the Foundry hosts a workload called, by route
/// (`GET /api/v1/agents/workloads`, the marker in `gatewatch top`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadAgents {
    #[serde(flatten)]
    pub workload: WorkloadKey,
    pub hosts: Vec<String>,
    pub direct: usize,
    pub gateway: usize,
    pub unknown: usize,
}

/// Which workloads called which Foundry host (bounded: [`MAX_PROJECTS`]
/// hosts × [`MAX_CALLERS_PER_HOST`]).
#[derive(Debug, Default)]
pub struct Callers {
    by_host: BTreeMap<String, BTreeSet<WorkloadKey>>,
}

impl Callers {
    /// Records that `workload` called `host` (a name as the node saw it).
    pub fn add(&mut self, host: &str, workload: WorkloadKey) {
        let host = host_only(host);
        if !self.by_host.contains_key(&host) && self.by_host.len() >= MAX_PROJECTS {
            return;
        }
        let set = self.by_host.entry(host).or_default();
        if set.len() < MAX_CALLERS_PER_HOST {
            set.insert(workload);
        }
    }

    /// Per workload, the routes of the audited agents on the hosts it called.
    pub fn join<'a>(&self, rows: impl Iterator<Item = &'a Row>) -> Vec<WorkloadAgents> {
        let mut by_host: HashMap<String, [usize; 3]> = HashMap::new();
        for r in rows {
            let authority = r.project.split('/').next().unwrap_or_default();
            let counts = by_host.entry(host_only(authority)).or_default();
            counts[match r.route {
                Route::Direct => 0,
                Route::Gateway => 1,
                Route::Unknown => 2,
            }] += 1;
        }
        let mut out: BTreeMap<WorkloadKey, WorkloadAgents> = BTreeMap::new();
        for (host, workloads) in &self.by_host {
            let Some(counts) = by_host.get(host) else {
                continue;
            };
            for w in workloads {
                let e = out.entry(w.clone()).or_insert_with(|| WorkloadAgents {
                    workload: w.clone(),
                    ..Default::default()
                });
                e.hosts.push(host.clone());
                e.direct += counts[0];
                e.gateway += counts[1];
                e.unknown += counts[2];
            }
        }
        out.into_values().collect()
    }
}

/// `host[:port]` → lower-case host without port or trailing dot.
fn host_only(name: &str) -> String {
    name.rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(name, |(h, _)| h)
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// (project, agent, model, route) of one `gatewatch_agent_models` series.
pub type SeriesKey = (String, String, String, Route);

/// Counts rows per label set; past `cap` distinct sets, new ones fold into
/// `_other` agent/model of their project and route. Sorted so the same
/// state always keeps the same series.
pub fn series<'a>(rows: impl Iterator<Item = &'a Row>, cap: usize) -> BTreeMap<SeriesKey, i64> {
    let mut rows: Vec<&Row> = rows.collect();
    rows.sort_by(|a, b| (&a.project, &a.agent, &a.model).cmp(&(&b.project, &b.agent, &b.model)));
    let mut out: BTreeMap<SeriesKey, i64> = BTreeMap::new();
    let mut kept = 0;
    for r in rows {
        let key = (
            r.project.clone(),
            r.agent.clone(),
            r.model.clone().unwrap_or_default(),
            r.route,
        );
        let key = if out.contains_key(&key) || kept < cap {
            key
        } else {
            (
                r.project.clone(),
                OVERFLOW_VALUE.to_owned(),
                OVERFLOW_VALUE.to_owned(),
                r.route,
            )
        };
        if !out.contains_key(&key) {
            kept += 1;
        }
        *out.entry(key).or_default() += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::verdict::Api;

    fn row(project: &str, agent: &str, route: Route) -> Row {
        Row {
            project: project.into(),
            api: Api::Agents,
            agent: agent.into(),
            agent_id: None,
            version: None,
            kind: Some("prompt".into()),
            model: Some("m".into()),
            connection: None,
            category: None,
            target: None,
            route,
            reason: String::new(),
        }
    }

    #[test]
    fn foundry_hosts_are_recognised_with_or_without_port() {
        assert!(is_foundry_host("contoso.services.ai.azure.com:443"));
        assert!(is_foundry_host("Contoso.Services.AI.Azure.com."));
        assert!(!is_foundry_host("services.ai.azure.com"));
        assert!(!is_foundry_host("contoso.openai.azure.com"));
    }

    #[test]
    fn observed_hosts_add_their_default_project_unless_configured() {
        let configured =
            ProjectEndpoint::parse("https://a.services.ai.azure.com/api/projects/sales").unwrap();
        let mut set = ProjectSet::new(vec![configured], false);
        assert!(!set.observe_host("a.services.ai.azure.com:443"));
        assert!(set.observe_host("b.services.ai.azure.com:443"));
        assert!(!set.observe_host("b.services.ai.azure.com"));
        let labels: Vec<_> = set.projects().iter().map(ProjectEndpoint::label).collect();
        assert_eq!(
            labels,
            [
                "a.services.ai.azure.com/sales",
                "b.services.ai.azure.com/_project"
            ]
        );
    }

    #[test]
    fn on_a_daemonset_configured_projects_wait_for_their_host_in_traffic() {
        let configured =
            ProjectEndpoint::parse("https://a.services.ai.azure.com/api/projects/sales").unwrap();
        let mut set = ProjectSet::new(vec![configured], true);
        assert!(set.projects().is_empty());
        assert!(set.observe_host("a.services.ai.azure.com:443"));
        let labels: Vec<_> = set.projects().iter().map(ProjectEndpoint::label).collect();
        assert_eq!(labels, ["a.services.ai.azure.com/sales"]);
    }

    #[test]
    fn project_set_is_capped() {
        let mut set = ProjectSet::default();
        for i in 0..MAX_PROJECTS + 5 {
            set.observe_host(&format!("r{i}.services.ai.azure.com"));
        }
        assert_eq!(set.projects().len(), MAX_PROJECTS);
    }

    #[test]
    fn series_past_the_cap_fold_into_other_per_project_and_route() {
        let rows = [
            row("p", "a", Route::Direct),
            row("p", "b", Route::Gateway),
            row("p", "c", Route::Direct),
            row("p", "d", Route::Direct),
        ];
        let s = series(rows.iter(), 2);
        assert_eq!(s.len(), 3);
        assert_eq!(
            s[&("p".into(), "_other".into(), "_other".into(), Route::Direct)],
            2
        );
        assert_eq!(s.values().sum::<i64>(), 4);
    }

    #[test]
    fn rows_expire_after_missed_audits_and_stay_through_one_failure() {
        let t0 = Instant::now();
        let mut state = AuditState::default();
        state.record_success("p", vec![row("p", "a", Route::Direct)], t0);
        state.record_failure("p");
        state.expire(t0 + DEFAULT_INTERVAL, DEFAULT_INTERVAL);
        assert_eq!(state.rows().count(), 1);
        state.expire(
            t0 + DEFAULT_INTERVAL * (EXPIRY_INTERVALS + 1),
            DEFAULT_INTERVAL,
        );
        assert_eq!(state.rows().count(), 0);
    }

    #[test]
    fn workloads_are_joined_to_the_agents_of_the_hosts_they_called() {
        let mut callers = Callers::default();
        let bot = WorkloadKey {
            namespace: "team-a".into(),
            pod: "bot".into(),
            ..Default::default()
        };
        callers.add("Contoso.services.ai.azure.com:443", bot.clone());
        callers.add("other.services.ai.azure.com", WorkloadKey::default());
        let rows = [
            row("contoso.services.ai.azure.com/_project", "a", Route::Direct),
            row("contoso.services.ai.azure.com/sales", "b", Route::Gateway),
            row(
                "fabrikam.services.ai.azure.com/_project",
                "c",
                Route::Direct,
            ),
        ];
        let joined = callers.join(rows.iter());
        assert_eq!(joined.len(), 1, "no audit for the other host: {joined:?}");
        assert_eq!(joined[0].workload, bot);
        assert_eq!((joined[0].direct, joined[0].gateway), (1, 1));
        assert_eq!(joined[0].hosts, ["contoso.services.ai.azure.com"]);
    }

    #[test]
    fn callers_are_bounded_per_host() {
        let mut callers = Callers::default();
        for i in 0..MAX_CALLERS_PER_HOST + 10 {
            let w = WorkloadKey {
                pod: format!("p{i}"),
                ..Default::default()
            };
            callers.add("a.services.ai.azure.com", w);
        }
        let rows = [row("a.services.ai.azure.com/_project", "x", Route::Direct)];
        assert_eq!(callers.join(rows.iter()).len(), MAX_CALLERS_PER_HOST);
    }
}
