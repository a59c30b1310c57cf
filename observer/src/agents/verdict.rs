//! The verdict: does an agent's model call go through the AI gateway?
//!
//! Pure: connections + deployments + agents in, one row per agent out. The
//! rule is the one Foundry documents for "bring your own model": an agent
//! whose model is `<connection-name>/<model-name>`, where the connection's
//! category is `ApiManagement` or `ModelGateway`, is served through that
//! gateway; a plain deployment name is a deployment of the project's own
//! resource, called from inside Microsoft's cloud without the gateway.
use serde::Serialize;

use crate::agents::wire::{Connection, Deployment};

/// Connection categories that put a gateway between the agent and the model
/// (ai-gateway.md: "Category value" column).
pub const GATEWAY_CATEGORIES: [&str; 2] = ["ApiManagement", "ModelGateway"];

/// Connection categories that are a model resource themselves: calls through
/// them reach the model with no gateway in between.
pub const MODEL_CATEGORIES: [&str; 4] =
    ["AzureOpenAI", "AIServices", "AzureAIServices", "Serverless"];

/// Hosts that serve models directly. A `ModelGateway` connection may point at
/// one ("connected models": another Foundry resource's endpoint), and then
/// nothing gateway-like sits in the path. The daemon swaps this list for its
/// catalogue (kinds `model` and `mixed`).
pub const MODEL_HOST_SUFFIXES: [&str; 6] = [
    ".openai.azure.com",
    ".services.ai.azure.com",
    ".cognitiveservices.azure.com",
    ".models.ai.azure.com",
    "api.openai.com",
    "api.anthropic.com",
];

/// Which list an agent came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    /// `/agents` (current Foundry Agent Service).
    Agents,
    /// `/assistants` (classic agents).
    Assistants,
}

/// What the lists say about one agent, independent of the API shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentInfo {
    pub api: Api,
    pub name: String,
    pub id: Option<String>,
    pub version: Option<String>,
    pub kind: Option<String>,
    pub model: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Route {
    Gateway,
    Direct,
    Unknown,
}

impl Route {
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Gateway => "gateway",
            Route::Direct => "direct",
            Route::Unknown => "unknown",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Row {
    pub project: String,
    pub api: Api,
    pub agent: String,
    pub agent_id: Option<String>,
    pub version: Option<String>,
    pub kind: Option<String>,
    pub model: Option<String>,
    pub connection: Option<String>,
    pub category: Option<String>,
    pub target: Option<String>,
    pub route: Route,
    pub reason: String,
}

/// What is known about the project besides its agents.
#[derive(Clone, Copy, Debug)]
pub struct Inventory<'a> {
    pub connections: &'a [Connection],
    /// None when `/deployments` could not be read (it only refines).
    pub deployments: Option<&'a [Deployment]>,
}

/// Default target check for [`audit`].
pub fn is_model_host(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    MODEL_HOST_SUFFIXES.iter().any(|s| {
        if s.starts_with('.') {
            host.ends_with(s)
        } else {
            host == *s
        }
    })
}

/// One row per agent, in the order given.
pub fn audit(
    project: &str,
    inventory: Inventory<'_>,
    agents: &[AgentInfo],
    model_host: &dyn Fn(&str) -> bool,
) -> Vec<Row> {
    agents
        .iter()
        .map(|a| {
            let decision = decide(a, inventory, model_host);
            Row {
                project: project.to_owned(),
                api: a.api,
                agent: a.name.clone(),
                agent_id: a.id.clone(),
                version: a.version.clone(),
                kind: a.kind.clone(),
                model: a.model.clone(),
                connection: decision
                    .connection
                    .map(|c| c.name.clone())
                    .or(decision.named_connection),
                category: decision.connection.map(|c| c.category.clone()),
                target: decision.connection.and_then(|c| c.target.clone()),
                route: decision.route,
                reason: decision.reason,
            }
        })
        .collect()
}

struct Decision<'a> {
    connection: Option<&'a Connection>,
    /// A connection the model names but the project does not list.
    named_connection: Option<String>,
    route: Route,
    reason: String,
}

impl<'a> Decision<'a> {
    fn unknown(reason: impl Into<String>) -> Self {
        Self {
            connection: None,
            named_connection: None,
            route: Route::Unknown,
            reason: reason.into(),
        }
    }
}

fn decide<'a>(
    agent: &AgentInfo,
    inv: Inventory<'a>,
    model_host: &dyn Fn(&str) -> bool,
) -> Decision<'a> {
    let Some(model) = agent
        .model
        .as_deref()
        .map(str::trim)
        .filter(|m| !m.is_empty())
    else {
        return Decision::unknown(match agent.kind.as_deref() {
            Some("hosted") => {
                "hosted agent: its container code picks the model; the definition names none"
            }
            Some("workflow") => "workflow agent: the model calls belong to the agents it invokes",
            Some("external") => "external agent: runs outside Foundry",
            _ => "the API returned no model for this agent",
        });
    };
    // A deployment entry can name the connection a plain model comes from.
    let deployment = inv
        .deployments
        .and_then(|ds| ds.iter().find(|d| d.name == model));
    if let Some(conn_name) = deployment.and_then(|d| d.connection_name.as_deref()) {
        return through_connection(conn_name, inv, model_host, "deployment");
    }
    if let Some((conn_name, _model_name)) = model.split_once('/') {
        return through_connection(conn_name, inv, model_host, "model");
    }
    let mut reason =
        "a deployment of the project's own resource: its inference runs in Microsoft's cloud without the gateway"
            .to_owned();
    if inv.deployments.is_some() && deployment.is_none() {
        reason.push_str(" (not in the project's deployments list)");
    }
    Decision {
        connection: None,
        named_connection: None,
        route: Route::Direct,
        reason,
    }
}

fn through_connection<'a>(
    name: &str,
    inv: Inventory<'a>,
    model_host: &dyn Fn(&str) -> bool,
    via: &str,
) -> Decision<'a> {
    // Exact name first; Azure resource names compare case-insensitively.
    let conn = inv.connections.iter().find(|c| c.name == name).or_else(|| {
        inv.connections
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    });
    let Some(conn) = conn else {
        return Decision {
            named_connection: Some(name.to_owned()),
            ..Decision::unknown(format!(
                "the {via} names connection {name:?}, which the project's connection list does not contain"
            ))
        };
    };
    let host = conn
        .target
        .as_deref()
        .and_then(|t| url::Url::parse(t).ok())
        .and_then(|u| u.host_str().map(str::to_owned));
    let is = |set: &[&str]| set.iter().any(|c| c.eq_ignore_ascii_case(&conn.category));
    let (route, reason) = if is(&GATEWAY_CATEGORIES) {
        match host.as_deref() {
            Some(h) if model_host(h) => (
                Route::Direct,
                format!(
                    "{} connection {:?} targets {h}, a model endpoint itself, not a gateway",
                    conn.category, conn.name
                ),
            ),
            Some(h) => (
                Route::Gateway,
                format!(
                    "model behind {} connection {:?} ({h})",
                    conn.category, conn.name
                ),
            ),
            None => (
                Route::Gateway,
                format!("model behind {} connection {:?}", conn.category, conn.name),
            ),
        }
    } else if is(&MODEL_CATEGORIES) {
        (
            Route::Direct,
            format!(
                "{} connection {:?} is a model resource{}: no gateway in between",
                conn.category,
                conn.name,
                host.map(|h| format!(" ({h})")).unwrap_or_default()
            ),
        )
    } else {
        (
            Route::Unknown,
            format!(
                "connection {:?} has category {:?}, not a model gateway or model resource category",
                conn.name, conn.category
            ),
        )
    };
    Decision {
        connection: Some(conn),
        named_connection: None,
        route,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(name: &str, category: &str, target: &str) -> Connection {
        Connection {
            name: name.into(),
            id: None,
            category: category.into(),
            target: Some(target.into()),
        }
    }

    fn agent(name: &str, kind: Option<&str>, model: Option<&str>) -> AgentInfo {
        AgentInfo {
            api: Api::Agents,
            name: name.into(),
            id: None,
            version: Some("1".into()),
            kind: kind.map(Into::into),
            model: model.map(Into::into),
        }
    }

    fn connections() -> Vec<Connection> {
        vec![
            conn(
                "corp-apim",
                "ApiManagement",
                "https://contoso-apim.azure-api.net/openai",
            ),
            conn(
                "corp-gw",
                "ModelGateway",
                "https://llm-gw.contoso.example/v1",
            ),
            conn(
                "other-foundry",
                "ModelGateway",
                "https://other.services.ai.azure.com/api/projects/p",
            ),
            conn("aoai", "AzureOpenAI", "https://contoso.openai.azure.com/"),
            conn("search", "CognitiveSearch", "https://s.search.windows.net"),
        ]
    }

    fn one(a: AgentInfo, deployments: Option<&[Deployment]>) -> Row {
        let cs = connections();
        let inv = Inventory {
            connections: &cs,
            deployments,
        };
        audit("h/p", inv, &[a], &is_model_host).remove(0)
    }

    #[test]
    fn model_behind_an_api_management_connection_is_gateway() {
        let r = one(
            agent("a", Some("prompt"), Some("corp-apim/gpt-4.1-mini")),
            None,
        );
        assert_eq!(r.route, Route::Gateway);
        assert_eq!(r.connection.as_deref(), Some("corp-apim"));
        assert_eq!(r.category.as_deref(), Some("ApiManagement"));
        assert!(
            r.reason.contains("contoso-apim.azure-api.net"),
            "{}",
            r.reason
        );
    }

    #[test]
    fn model_behind_a_model_gateway_connection_is_gateway() {
        let r = one(
            agent("a", Some("prompt"), Some("corp-gw/llama-3.3-70b")),
            None,
        );
        assert_eq!(r.route, Route::Gateway);
        assert_eq!(r.category.as_deref(), Some("ModelGateway"));
    }

    #[test]
    fn plain_deployment_name_is_direct() {
        let r = one(agent("a", Some("prompt"), Some("gpt-4.1-mini")), None);
        assert_eq!(r.route, Route::Direct);
        assert_eq!(r.connection, None);
    }

    #[test]
    fn plain_name_missing_from_known_deployments_is_still_direct_and_says_so() {
        let ds = [Deployment {
            name: "gpt-4o".into(),
            model_name: None,
            connection_name: None,
        }];
        let r = one(agent("a", Some("prompt"), Some("gpt-4.1-mini")), Some(&ds));
        assert_eq!(r.route, Route::Direct);
        assert!(r.reason.contains("not in the project's deployments list"));
    }

    #[test]
    fn a_deployment_that_comes_from_a_gateway_connection_is_gateway() {
        let ds = [Deployment {
            name: "gpt-4o-gw".into(),
            model_name: None,
            connection_name: Some("corp-apim".into()),
        }];
        let r = one(agent("a", Some("prompt"), Some("gpt-4o-gw")), Some(&ds));
        assert_eq!(r.route, Route::Gateway);
        assert_eq!(r.connection.as_deref(), Some("corp-apim"));
    }

    #[test]
    fn model_gateway_connection_to_another_foundry_resource_is_direct() {
        let r = one(
            agent("a", Some("prompt"), Some("other-foundry/gpt-4o")),
            None,
        );
        assert_eq!(r.route, Route::Direct);
        assert!(
            r.reason.contains("other.services.ai.azure.com"),
            "{}",
            r.reason
        );
    }

    #[test]
    fn azure_openai_connection_is_direct() {
        let r = one(agent("a", Some("prompt"), Some("aoai/gpt-4o")), None);
        assert_eq!(r.route, Route::Direct);
        assert_eq!(r.category.as_deref(), Some("AzureOpenAI"));
    }

    #[test]
    fn unlisted_connection_is_unknown_with_its_name() {
        let r = one(agent("a", Some("prompt"), Some("shared-gw/gpt-4o")), None);
        assert_eq!(r.route, Route::Unknown);
        assert_eq!(r.connection.as_deref(), Some("shared-gw"));
        assert!(r.reason.contains("does not contain"));
    }

    #[test]
    fn connection_of_a_non_model_category_is_unknown() {
        let r = one(agent("a", Some("prompt"), Some("search/x")), None);
        assert_eq!(r.route, Route::Unknown);
        assert!(r.reason.contains("CognitiveSearch"));
    }

    #[test]
    fn agents_without_a_model_are_unknown_with_the_kind_as_reason() {
        assert!(
            one(agent("h", Some("hosted"), None), None)
                .reason
                .starts_with("hosted agent")
        );
        assert!(
            one(agent("w", Some("workflow"), None), None)
                .reason
                .starts_with("workflow agent")
        );
        let r = one(agent("x", None, Some("  ")), None);
        assert_eq!(r.route, Route::Unknown);
        assert_eq!(r.reason, "the API returned no model for this agent");
    }

    #[test]
    fn connection_names_match_case_insensitively_as_a_fallback() {
        let r = one(agent("a", Some("prompt"), Some("CORP-APIM/gpt-4o")), None);
        assert_eq!(r.route, Route::Gateway);
        assert_eq!(r.connection.as_deref(), Some("corp-apim"));
    }

    #[test]
    fn model_host_list_matches_suffixes_and_exact_names() {
        assert!(is_model_host("x.openai.azure.com"));
        assert!(is_model_host("API.OPENAI.COM."));
        assert!(!is_model_host("contoso-apim.azure-api.net"));
        assert!(!is_model_host("notapi.openai.com"));
    }
}
