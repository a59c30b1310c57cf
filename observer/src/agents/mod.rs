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
use credential::TokenProvider;
use endpoint::ProjectEndpoint;
use http::Http;
use verdict::Row;

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
