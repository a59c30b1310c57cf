//! Which Foundry agents send their model calls through the AI gateway: an
//! extra output that joins cloud facts to what the node sees.
//!
//! The node sees a workload call
//! `https://<resource>.services.ai.azure.com/...` (only the host: the path
//! is inside TLS). The agent's own model calls happen inside Microsoft's
//! cloud, out of the node's sight, so this asks the project's data-plane API
//! how each agent reaches its model.
//!
//! - [`endpoint`]: the project endpoint, parsed and checked;
//! - [`wire`]: the API's JSON shapes, parsed from bytes;
//! - [`paging`]: when to ask for the next page (pure);
//! - [`credential`]: tokens from the environment (explicit, workload
//!   identity, managed identity);
//! - [`http`]: the one blocking HTTPS client and its trust roots;
//! - [`client`]: the list calls with typed errors that say what to fix;
//! - [`verdict`]: gateway, direct or unknown per agent (pure);
//! - [`output`]: table and JSON lines;
//! - [`audit`]: the daemon's `--agent-audit` state (which projects, last
//!   results, bounded series).
pub mod audit;
pub mod client;
pub mod credential;
pub mod endpoint;
pub mod http;
pub mod output;
pub mod paging;
pub mod verdict;
pub mod wire;

use client::{ApiError, ProjectClient};

use crate::classification::{Catalog, Kind};
use credential::TokenProvider;
use endpoint::ProjectEndpoint;
use http::Http;
use verdict::Row;

/// Whether the built-in catalogue calls `host` a model endpoint (kind
/// `model` or `mixed`): a gateway connection whose target is one (e.g.
/// another Foundry resource) is a direct route, whatever its category says.
pub fn catalogue_model_host(host: &str) -> bool {
    Catalog::builtin()
        .lookup(host, 443)
        .is_some_and(|(e, _)| matches!(e.kind, Kind::Model | Kind::Mixed))
}

/// The result of auditing one project.
#[derive(Debug)]
pub struct Report {
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
}

/// Lists one project's connections, deployments and agents and judges each
/// agent; `model_host` tells which connection targets are model endpoints.
pub fn audit_project(
    http: &Http,
    creds: &mut TokenProvider,
    endpoint: &ProjectEndpoint,
    model_host: &dyn Fn(&str) -> bool,
) -> Result<Report, ApiError> {
    let mut client = ProjectClient::new(http, creds, endpoint);
    let inv = client::collect(&mut client)?;
    let rows = verdict::audit(
        &endpoint.label(),
        verdict::Inventory {
            connections: &inv.connections,
            deployments: inv.deployments.as_deref(),
        },
        &inv.agents,
        model_host,
    );
    Ok(Report {
        rows,
        notes: inv.notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_model_hosts_include_foundry_and_azure_openai_but_not_gateways() {
        assert!(catalogue_model_host("other.services.ai.azure.com"));
        assert!(catalogue_model_host("contoso.openai.azure.com"));
        assert!(!catalogue_model_host("contoso-apim.azure-api.net"));
        assert!(!catalogue_model_host("llm-gateway.contoso.example"));
    }
}
