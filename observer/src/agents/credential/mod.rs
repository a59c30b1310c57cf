//! Credentials the way Azure users expect them, from the environment:
//! an explicit bearer token, AKS workload identity (federated token file),
//! App Service / Container Apps managed identity, or IMDS managed identity.
//!
//! Own code rather than the `azure_identity` crate: that crate is async-only
//! and its default transport is reqwest + hyper + aws-lc-rs (178 crates in
//! `cargo tree`, a second TLS stack and crypto provider next to kube's
//! rustls/ring); without its default features it needs a hand-written
//! `HttpClient` adapter. The three exchanges below are each one HTTP request.
mod env;
mod provider;
pub mod token;

use std::{path::PathBuf, time::Duration};

pub use env::resolve;
pub use provider::TokenProvider;
pub use token::{AccessToken, OAuthError, Secret};

/// The audience of the Foundry project API (azure-ai-projects
/// `credential_scopes`, and the spec's OAuth2 scope).
pub const SCOPE: &str = "https://ai.azure.com/.default";
/// The same audience as a v1 `resource` (managed identity endpoints).
pub const RESOURCE: &str = "https://ai.azure.com";

pub const ENV_TOKEN: &str = "GATEWATCH_AZURE_TOKEN";
pub const ENV_CREDENTIAL: &str = "GATEWATCH_AZURE_CREDENTIAL";
pub const AZURE_CLIENT_ID: &str = "AZURE_CLIENT_ID";
pub const AZURE_TENANT_ID: &str = "AZURE_TENANT_ID";
pub const AZURE_FEDERATED_TOKEN_FILE: &str = "AZURE_FEDERATED_TOKEN_FILE";
pub const AZURE_AUTHORITY_HOST: &str = "AZURE_AUTHORITY_HOST";
pub const IDENTITY_ENDPOINT: &str = "IDENTITY_ENDPOINT";
pub const IDENTITY_HEADER: &str = "IDENTITY_HEADER";
/// azure-identity's override of the IMDS address (also how tests keep IMDS on loopback).
pub const AZURE_POD_IDENTITY_AUTHORITY_HOST: &str = "AZURE_POD_IDENTITY_AUTHORITY_HOST";

pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
pub const DEFAULT_IMDS: &str = "http://169.254.169.254";
pub(crate) const IMDS_PATH: &str = "/metadata/identity/oauth2/token";
pub(crate) const IMDS_API_VERSION: &str = "2018-02-01";
pub(crate) const APP_SERVICE_API_VERSION: &str = "2019-08-01";
pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A cached token is renewed this long before it expires.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);

const GET_TOKEN_HINT: &str =
    "az account get-access-token --scope https://ai.azure.com/.default --query accessToken -o tsv";

/// Which credential to use (`--azure-credential`, `GATEWATCH_AZURE_CREDENTIAL`).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Deserialize,
    serde::Serialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// The first configured of: GATEWATCH_AZURE_TOKEN, workload identity,
    /// App Service managed identity; else IMDS managed identity.
    #[default]
    Auto,
    Token,
    WorkloadIdentity,
    ManagedIdentity,
}

/// A credential source with what it needs, read from the environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Explicit {
        token: Secret,
    },
    WorkloadIdentity {
        client_id: String,
        tenant_id: String,
        token_file: PathBuf,
        authority: String,
    },
    AppService {
        endpoint: String,
        header: Secret,
        client_id: Option<String>,
    },
    Imds {
        endpoint: String,
        client_id: Option<String>,
    },
}

impl Source {
    /// Names the credential in errors: which one, and with which identity.
    pub fn describe(&self) -> String {
        match self {
            Source::Explicit { .. } => format!("the bearer token in {ENV_TOKEN}"),
            Source::WorkloadIdentity {
                client_id,
                tenant_id,
                token_file,
                ..
            } => format!(
                "workload identity (AZURE_CLIENT_ID={client_id}, AZURE_TENANT_ID={tenant_id}, AZURE_FEDERATED_TOKEN_FILE={})",
                token_file.display()
            ),
            Source::AppService {
                endpoint,
                client_id,
                ..
            } => {
                format!(
                    "managed identity at IDENTITY_ENDPOINT={endpoint}{}",
                    client_note(client_id)
                )
            }
            Source::Imds {
                endpoint,
                client_id,
            } => {
                format!(
                    "managed identity from IMDS at {endpoint}{}",
                    client_note(client_id)
                )
            }
        }
    }

    /// What to change when the project API rejects this credential's token.
    pub fn fix(&self) -> String {
        match self {
            Source::Explicit { .. } => format!("set {ENV_TOKEN} to a fresh token for {RESOURCE} ({GET_TOKEN_HINT})"),
            Source::WorkloadIdentity { client_id, .. } => {
                format!("grant the identity with client ID {client_id} the Azure AI User role on the Foundry resource")
            }
            Source::AppService { .. } | Source::Imds { .. } => {
                "grant this managed identity the Azure AI User role on the Foundry resource, or set AZURE_CLIENT_ID to pick a user-assigned one".to_owned()
            }
        }
    }
}

fn client_note(client_id: &Option<String>) -> String {
    client_id
        .as_ref()
        .map(|c| format!(" (AZURE_CLIENT_ID={c})"))
        .unwrap_or_default()
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("{what} is half configured: {} unset. Set {} too{hint}", .missing.join(", "), .missing.join(" and "))]
    Incomplete {
        what: &'static str,
        missing: Vec<&'static str>,
        hint: &'static str,
    },
    #[error("{var}={value:?} is not usable: {reason}")]
    BadSetting {
        var: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error(
        "no Azure credential found. Tried: {}. Set {ENV_TOKEN} to a bearer token for {RESOURCE} ({GET_TOKEN_HINT}), \
         or run in a pod with AKS workload identity (AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE), \
         or give this machine a managed identity",
        .tried.join("; ")
    )]
    NoCredential { tried: Vec<String> },
    #[error("the token in {var} expired at {at}; set {var} to a fresh one ({GET_TOKEN_HINT})")]
    ExplicitExpired { var: &'static str, at: String },
    #[error(
        "{credential}: cannot read the federated token file: {source}. AKS workload identity mounts it when the pod has label azure.workload.identity/use=true"
    )]
    TokenFile {
        credential: String,
        source: std::io::Error,
    },
    #[error("{credential}: {endpoint} refused the token request (HTTP {status}: {detail}). {fix}")]
    Rejected {
        credential: String,
        endpoint: String,
        status: u16,
        detail: OAuthError,
        fix: String,
    },
    #[error("{credential}: {detail}")]
    Unreachable { credential: String, detail: String },
    #[error("{credential}: unexpected answer from {endpoint}: {detail}")]
    BadAnswer {
        credential: String,
        endpoint: String,
        detail: String,
    },
}
