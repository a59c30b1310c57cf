//! The project data-plane client: lists connections, deployments, agents and
//! classic agents of one project, following every page.
use std::time::SystemTime;

use url::Url;

use crate::agents::{
    credential::{CredentialError, Source, TokenProvider},
    endpoint::ProjectEndpoint,
    http::{Http, TransportError},
    paging::{CursorPager, LinkPager, PAGE_LIMIT, PagingError, Step},
    verdict::{AgentInfo, Api},
    wire::{self, ApiErrorBody, Connection, Deployment},
};

/// The GA data-plane version of the project API (connections, deployments,
/// agents) and of classic agents (azure-ai-projects 2.x and azure-ai-agents
/// 1.x both default to it).
pub const API_VERSION: &str = "v1";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    // Boxed: the credential errors carry several strings, and every list
    // call returns this type.
    #[error(transparent)]
    Credential(Box<CredentialError>),
    #[error("{url} rejected {credential} (HTTP 401{detail}): {why}. To fix: {fix}")]
    Unauthorized {
        url: String,
        credential: String,
        detail: String,
        why: String,
        fix: String,
    },
    #[error("{url} refused {credential} (HTTP 403{detail}). To fix: {fix}")]
    Forbidden {
        url: String,
        credential: String,
        detail: String,
        fix: String,
    },
    #[error(
        "{url} answered HTTP 404{detail}: check the project endpoint (https://<resource>.services.ai.azure.com/api/projects/<project>)"
    )]
    NotFound { url: String, detail: String },
    #[error("{url} answered HTTP {status}{detail}")]
    Status {
        url: String,
        status: u16,
        detail: String,
    },
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("{url}: {detail}")]
    Decode { url: String, detail: String },
    #[error("{url}: {source}")]
    Paging { url: String, source: PagingError },
}

impl From<CredentialError> for ApiError {
    fn from(e: CredentialError) -> Self {
        ApiError::Credential(Box::new(e))
    }
}

impl ApiError {
    fn is_not_found(&self) -> bool {
        matches!(self, ApiError::NotFound { .. })
    }
}

pub struct ProjectClient<'a> {
    http: &'a Http,
    creds: &'a mut TokenProvider,
    endpoint: &'a ProjectEndpoint,
}

impl<'a> ProjectClient<'a> {
    pub fn new(
        http: &'a Http,
        creds: &'a mut TokenProvider,
        endpoint: &'a ProjectEndpoint,
    ) -> Self {
        Self {
            http,
            creds,
            endpoint,
        }
    }

    /// One GET with the bearer token. A 401 on a token we fetched ourselves
    /// is retried once with a new one (it may have been revoked early); an
    /// explicit token is the user's to renew.
    fn get(&mut self, url: &Url) -> Result<Vec<u8>, ApiError> {
        for attempt in 0..2 {
            let token = self.creds.token(self.http, SystemTime::now())?;
            let bearer = format!("Bearer {}", token.expose());
            let reply = self.http.get(
                url.as_str(),
                &[("Authorization", &bearer), ("Accept", "application/json")],
            )?;
            if reply.status == 200 {
                return Ok(reply.body);
            }
            let body = wire::parse_error_body(&reply.body);
            let explicit = matches!(self.creds.source(), Source::Explicit { .. });
            if reply.status == 401 && attempt == 0 && !explicit && !is_permission_denied(&body) {
                self.creds.invalidate();
                continue;
            }
            return Err(self.status_error(
                url,
                reply.status,
                &body,
                reply.www_authenticate.as_deref(),
            ));
        }
        unreachable!("the loop returns on its second attempt")
    }

    fn status_error(
        &self,
        url: &Url,
        status: u16,
        body: &ApiErrorBody,
        www_auth: Option<&str>,
    ) -> ApiError {
        let url = strip_query(url);
        let detail = match (&body.code, &body.message) {
            (Some(c), Some(m)) => format!(", {c}: {m}"),
            (Some(c), None) => format!(", {c}"),
            (None, Some(m)) => format!(": {m}"),
            (None, None) => String::new(),
        };
        let source = self.creds.source();
        match status {
            401 => {
                let text = format!(
                    "{} {}",
                    body.message.as_deref().unwrap_or_default(),
                    www_auth.unwrap_or_default()
                )
                .to_ascii_lowercase();
                let why = if is_permission_denied(body) {
                    "the identity lacks the data action to read agents".to_owned()
                } else if text.contains("expired") {
                    "the token has expired".to_owned()
                } else {
                    "the token is not valid for this project (its audience must be https://ai.azure.com)".to_owned()
                };
                let fix = if is_permission_denied(body) {
                    "grant the identity the Azure AI User role on the Foundry resource".to_owned()
                } else {
                    source.fix()
                };
                ApiError::Unauthorized {
                    url,
                    credential: source.describe(),
                    detail,
                    why,
                    fix,
                }
            }
            403 => ApiError::Forbidden {
                url,
                credential: source.describe(),
                detail,
                fix: source.fix(),
            },
            404 => ApiError::NotFound { url, detail },
            _ => ApiError::Status {
                url,
                status,
                detail,
            },
        }
    }

    fn decode<T>(url: &Url, r: Result<T, wire::ParseError>) -> Result<T, ApiError> {
        r.map_err(|e| ApiError::Decode {
            url: strip_query(url),
            detail: e.to_string(),
        })
    }

    pub fn connections(&mut self) -> Result<Vec<Connection>, ApiError> {
        self.link_paged("connections", wire::parse_connection_page)
    }

    pub fn deployments(&mut self) -> Result<Vec<Deployment>, ApiError> {
        self.link_paged("deployments", wire::parse_deployment_page)
    }

    /// Every item of an Azure.Core list, following `nextLink` (only to the
    /// project's own host, so the token never leaves it).
    fn link_paged<T>(
        &mut self,
        path: &str,
        parse: fn(&[u8]) -> Result<wire::LinkPage<T>, wire::ParseError>,
    ) -> Result<Vec<T>, ApiError> {
        let mut url = self.endpoint.url(path, &[("api-version", API_VERSION)]);
        let (mut out, mut pager) = (Vec::new(), LinkPager::default());
        loop {
            let page = Self::decode(&url, parse(&self.get(&url)?))?;
            out.extend(page.value);
            match pager.after_page(self.endpoint, page.next_link.as_deref(), API_VERSION) {
                Ok(Step::Done) => return Ok(out),
                Ok(Step::Next(next)) => url = next,
                Err(source) => {
                    return Err(ApiError::Paging {
                        url: strip_query(&url),
                        source,
                    });
                }
            }
        }
    }

    /// Walks an OpenAI-style list, handing each page's bytes to `each`, which
    /// returns (has_more, last_id, items on the page).
    fn cursor_list(
        &mut self,
        path: &str,
        mut each: impl FnMut(&Url, &[u8]) -> Result<(Option<bool>, Option<String>, usize), ApiError>,
    ) -> Result<(), ApiError> {
        let mut pager = CursorPager::default();
        let mut after: Option<String> = None;
        loop {
            let mut query = vec![
                ("api-version", API_VERSION),
                ("limit", PAGE_LIMIT),
                ("order", "asc"),
            ];
            if let Some(a) = &after {
                query.push(("after", a));
            }
            let url = self.endpoint.url(path, &query);
            let body = self.get(&url)?;
            let (has_more, last_id, n) = each(&url, &body)?;
            match pager.after_page(has_more, last_id.as_deref(), n) {
                Ok(Step::Done) => return Ok(()),
                Ok(Step::Next(cursor)) => after = Some(cursor),
                Err(source) => {
                    return Err(ApiError::Paging {
                        url: strip_query(&url),
                        source,
                    });
                }
            }
        }
    }

    pub fn agents(&mut self) -> Result<Vec<AgentInfo>, ApiError> {
        let mut out = Vec::new();
        self.cursor_list("agents", |url, body| {
            let page = Self::decode(url, wire::parse_agent_page(body))?;
            let n = page.data.len();
            for a in page.data {
                let latest = a.latest();
                let def = latest.and_then(|l| l.definition.as_ref());
                out.push(AgentInfo {
                    api: Api::Agents,
                    version: latest.and_then(|l| l.version.clone()),
                    kind: def.and_then(|d| d.kind.clone()),
                    model: def.and_then(|d| d.model.clone()),
                    id: a.id,
                    name: a.name,
                });
            }
            Ok((page.has_more, page.last_id, n))
        })?;
        Ok(out)
    }

    pub fn assistants(&mut self) -> Result<Vec<AgentInfo>, ApiError> {
        let mut out = Vec::new();
        self.cursor_list("assistants", |url, body| {
            let page = Self::decode(url, wire::parse_assistant_page(body))?;
            let n = page.data.len();
            for a in page.data {
                out.push(AgentInfo {
                    api: Api::Assistants,
                    name: a
                        .name
                        .filter(|n| !n.is_empty())
                        .unwrap_or_else(|| a.id.clone()),
                    id: Some(a.id),
                    version: None,
                    kind: Some("classic".to_owned()),
                    model: a.model,
                });
            }
            Ok((page.has_more, page.last_id, n))
        })?;
        Ok(out)
    }
}

fn is_permission_denied(body: &ApiErrorBody) -> bool {
    body.code.as_deref() == Some("PermissionDenied")
}

/// URLs in messages without their query (cursors, api-version).
fn strip_query(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.into()
}

/// Everything known about one project, ready for the verdict.
#[derive(Debug)]
pub struct Inventory {
    pub connections: Vec<Connection>,
    pub deployments: Option<Vec<Deployment>>,
    pub agents: Vec<AgentInfo>,
    /// Lists that could not be read without making the audit fail.
    pub notes: Vec<String>,
}

/// Connections and agents are required; deployments only refine the verdict
/// and classic agents may be switched off, so their failures become notes.
pub fn collect(client: &mut ProjectClient<'_>) -> Result<Inventory, ApiError> {
    let connections = client.connections()?;
    let mut agents = client.agents()?;
    let mut notes = Vec::new();
    let deployments = match client.deployments() {
        Ok(d) => Some(d),
        Err(e) => {
            notes.push(format!(
                "deployments not read ({e}); plain model names are judged without them"
            ));
            None
        }
    };
    match client.assistants() {
        Ok(a) => agents.extend(a),
        Err(e) if e.is_not_found() => {
            notes.push("no classic agents API on this project".to_owned())
        }
        Err(e) => notes.push(format!("classic agents not read: {e}")),
    }
    Ok(Inventory {
        connections,
        deployments,
        agents,
        notes,
    })
}
