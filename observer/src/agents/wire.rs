//! The data-plane JSON shapes this tool reads, and pure parsers from bytes.
//!
//! Sources: the Foundry data-plane TypeSpec in
//! Azure/azure-rest-api-specs (specification/ai-foundry/data-plane/Foundry/src/
//! connections, agents, common) and the generated azure-ai-projects 2.10.0 /
//! azure-ai-agents 1.1.0 Python clients. Only the fields the verdict needs are
//! read; unknown fields are ignored so newer API versions still parse, and
//! credentials (never present in list answers) are never modelled.
use serde::Deserialize;

/// An Azure.Core resource list page, `{ value, nextLink }`: `GET
/// /connections` and `GET /deployments`.
#[derive(Debug, Deserialize)]
pub struct LinkPage<T> {
    #[serde(default = "Vec::new")]
    pub value: Vec<T>,
    #[serde(rename = "nextLink", default)]
    pub next_link: Option<String>,
}

#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq, Eq)]
pub struct Connection {
    pub name: String,
    #[serde(default)]
    pub id: Option<String>,
    /// "Category of the connection": ApiManagement, ModelGateway, AzureOpenAI,
    /// AIServices, CognitiveSearch, ... (an open string union). ARM calls the
    /// same value `category`.
    #[serde(rename = "type", alias = "category", default)]
    pub category: String,
    #[serde(default)]
    pub target: Option<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Deployment {
    pub name: String,
    #[serde(rename = "modelName", default)]
    pub model_name: Option<String>,
    /// "Name of the connection the deployment comes from" (models added
    /// through a gateway connection are deployed automatically).
    #[serde(rename = "connectionName", default)]
    pub connection_name: Option<String>,
}

/// OpenAI-style list used by `/agents` and `/assistants`:
/// `{ object: "list", data, first_id, last_id, has_more }`.
#[derive(Debug, Deserialize)]
pub struct CursorPage<T> {
    #[serde(default = "Vec::new")]
    pub data: Vec<T>,
    #[serde(default)]
    pub last_id: Option<String>,
    #[serde(default)]
    pub has_more: Option<bool>,
}

/// An agent of the current API (`GET /agents?api-version=v1`): the model is in
/// `versions.latest.definition.model`, and only prompt agents have one.
#[derive(Clone, Debug, Deserialize)]
pub struct AgentObject {
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    #[serde(default)]
    pub versions: Option<AgentVersions>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct AgentVersions {
    #[serde(default)]
    pub latest: Option<AgentVersion>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct AgentVersion {
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub definition: Option<AgentDefinition>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct AgentDefinition {
    /// prompt | hosted | workflow | external | voice | ...
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
}

/// A classic agent (`GET /assistants?api-version=v1`, azure-ai-agents).
#[derive(Clone, Debug, Deserialize)]
pub struct Assistant {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
}

/// The error envelope both Azure.Core and the agents API use:
/// `{ "error": { "code": ..., "message": ... } }`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApiErrorBody {
    pub code: Option<String>,
    pub message: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(String);

fn parse<'a, T: Deserialize<'a>>(what: &str, bytes: &'a [u8]) -> Result<T, ParseError> {
    serde_json::from_slice(bytes).map_err(|e| ParseError(format!("{what}: {e}")))
}

pub fn parse_connection_page(bytes: &[u8]) -> Result<LinkPage<Connection>, ParseError> {
    parse("connections page", bytes)
}

pub fn parse_deployment_page(bytes: &[u8]) -> Result<LinkPage<Deployment>, ParseError> {
    parse("deployments page", bytes)
}

pub fn parse_agent_page(bytes: &[u8]) -> Result<CursorPage<AgentObject>, ParseError> {
    parse("agents page", bytes)
}

pub fn parse_assistant_page(bytes: &[u8]) -> Result<CursorPage<Assistant>, ParseError> {
    parse("assistants page", bytes)
}

/// Best effort: anything that is not the envelope yields an empty body, so a
/// proxy's HTML error page still gives a status-based message.
pub fn parse_error_body(bytes: &[u8]) -> ApiErrorBody {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return ApiErrorBody::default();
    };
    let err = &value["error"];
    // Some Azure services send the code as a number ("code": 401).
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    ApiErrorBody {
        code: text(&err["code"]),
        message: text(&err["message"]),
    }
}

impl AgentObject {
    pub fn latest(&self) -> Option<&AgentVersion> {
        self.versions.as_ref()?.latest.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_list_reads_category_target_and_next_link() {
        let page = parse_connection_page(
            br#"{"value":[{"name":"gw","id":"/subscriptions/s/.../connections/gw","type":"ApiManagement",
                "target":"https://contoso.azure-api.net/openai","isDefault":false,
                "credentials":{"type":"ApiKey"},"metadata":{"deploymentInPath":"true"}}],
                "nextLink":"https://h/api/projects/p/connections?api-version=v1&skip=1"}"#,
        )
        .unwrap();
        assert_eq!(page.value[0].category, "ApiManagement");
        assert_eq!(
            page.value[0].target.as_deref(),
            Some("https://contoso.azure-api.net/openai")
        );
        assert!(page.next_link.unwrap().contains("skip=1"));
    }

    #[test]
    fn agent_model_lives_under_versions_latest_definition() {
        let page = parse_agent_page(
            br#"{"object":"list","data":[{"object":"agent","id":"a1","name":"helper","state":"enabled",
                "versions":{"latest":{"object":"agent.version","id":"a1:3","name":"helper","version":"3",
                "definition":{"kind":"prompt","model":"gw/gpt-4.1-mini","tools":[]}}}}],
                "first_id":"a1","last_id":"a1","has_more":false}"#,
        )
        .unwrap();
        let def = page.data[0].latest().unwrap().definition.as_ref().unwrap();
        assert_eq!(def.model.as_deref(), Some("gw/gpt-4.1-mini"));
        assert_eq!(page.has_more, Some(false));
    }

    #[test]
    fn hosted_agent_without_model_still_parses() {
        let page = parse_agent_page(
            br#"{"data":[{"name":"h","versions":{"latest":{"definition":{"kind":"hosted","cpu":"1","memory":"2Gi"}}}}],"has_more":false}"#,
        )
        .unwrap();
        let def = page.data[0].latest().unwrap().definition.as_ref().unwrap();
        assert_eq!(def.kind.as_deref(), Some("hosted"));
        assert_eq!(def.model, None);
    }

    #[test]
    fn error_envelope_is_read_and_junk_is_tolerated() {
        let body = parse_error_body(
            br#"{"error":{"code":"PermissionDenied","message":"lacks data action"}}"#,
        );
        assert_eq!(body.code.as_deref(), Some("PermissionDenied"));
        assert_eq!(
            parse_error_body(br#"{"error":{"code":401,"message":"x"}}"#)
                .code
                .as_deref(),
            Some("401")
        );
        assert_eq!(
            parse_error_body(b"<html>403 Forbidden</html>"),
            ApiErrorBody::default()
        );
    }
}
