//! A request path → the operation it performs, named as the OpenTelemetry
//! GenAI conventions name `gen_ai.operation.name` where they have a name
//! (`chat`, `text_completion`, `embeddings`, `generate_content`,
//! `create_agent`, `invoke_agent`), and the path with its ids and query
//! removed, so neither a label nor a log keeps a thread id or a key.
use crate::classification::Route;

/// Every operation name [`Operation::name`] gives (metric label values).
pub const OPERATIONS: [&str; 10] = [
    "chat",
    "text_completion",
    "embeddings",
    "responses",
    "generate_content",
    "create_agent",
    "invoke_agent",
    "agent_api",
    "list_models",
    "other",
];

/// Longest path template kept.
const TEMPLATE_MAX: usize = 160;

/// What a request does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Chat,
    TextCompletion,
    Embeddings,
    Responses,
    GenerateContent,
    CreateAgent,
    InvokeAgent,
    /// Any other call of a hosted agent service's API (threads, messages,
    /// files of an agent).
    AgentApi,
    ListModels,
    Other,
}

/// Path segments after which the next segment is an id.
const COLLECTIONS: [&str; 12] = [
    "deployments",
    "projects",
    "assistants",
    "agents",
    "threads",
    "runs",
    "files",
    "vector_stores",
    "batches",
    "steps",
    "connections",
    "responses",
];

impl Operation {
    pub fn name(self) -> &'static str {
        match self {
            Operation::Chat => "chat",
            Operation::TextCompletion => "text_completion",
            Operation::Embeddings => "embeddings",
            Operation::Responses => "responses",
            Operation::GenerateContent => "generate_content",
            Operation::CreateAgent => "create_agent",
            Operation::InvokeAgent => "invoke_agent",
            Operation::AgentApi => "agent_api",
            Operation::ListModels => "list_models",
            Operation::Other => "other",
        }
    }

    /// The operation of `method path` (query already removed or not).
    pub fn of(method: &str, path: &str) -> Operation {
        let path = path.split(['?', '#']).next().unwrap_or_default();
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let last = segments.last().copied().unwrap_or_default();
        let has = |s: &str| segments.contains(&s);
        let agent_api = has("assistants") || has("threads") || has("agents");
        if agent_api {
            let post = method.eq_ignore_ascii_case("POST");
            return match last {
                "assistants" | "agents" if post => Operation::CreateAgent,
                "runs" if post => Operation::InvokeAgent,
                _ => Operation::AgentApi,
            };
        }
        if last.ends_with(":generateContent") || last.ends_with(":streamGenerateContent") {
            return Operation::GenerateContent;
        }
        if last.ends_with(":embedContent") || last.ends_with(":batchEmbedContents") {
            return Operation::Embeddings;
        }
        let pair = match segments.as_slice() {
            [.., a, b] => (*a, *b),
            _ => ("", last),
        };
        match pair {
            ("chat", "completions") => Operation::Chat,
            (_, "messages") => Operation::Chat,
            (_, "completions") => Operation::TextCompletion,
            (_, "embeddings") => Operation::Embeddings,
            (_, "responses") => Operation::Responses,
            (_, "models") if method.eq_ignore_ascii_case("GET") => Operation::ListModels,
            _ => Operation::Other,
        }
    }

    /// Whether this is a model call (inference) rather than an agent
    /// service's own API.
    pub fn is_inference(self) -> bool {
        matches!(
            self,
            Operation::Chat
                | Operation::TextCompletion
                | Operation::Embeddings
                | Operation::Responses
                | Operation::GenerateContent
        )
    }

    fn is_agent(self) -> bool {
        matches!(
            self,
            Operation::CreateAgent | Operation::InvokeAgent | Operation::AgentApi
        )
    }

    /// The route of a request on a flow counted as `flow`: on a host that
    /// serves both a model API and an agent service's API (Foundry's
    /// `*.services.ai.azure.com`), the call decides which it was.
    pub fn route(self, flow: Route) -> Route {
        match flow {
            Route::Direct | Route::AgentPlatform if self.is_agent() => Route::AgentPlatform,
            Route::AgentPlatform if self.is_inference() => Route::Direct,
            other => other,
        }
    }
}

/// `path` without query, fragment or ids: a segment after a collection
/// name (`deployments/{id}`), and any segment that looks generated (long
/// with digits, or a UUID), become `{id}`; Gemini's `models/NAME:verb`
/// keeps its verb.
pub fn template(path: &str) -> String {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let mut out = String::new();
    let mut after_collection = false;
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        out.push('/');
        let (name, verb) = match segment.split_once(':') {
            Some((n, v)) => (n, Some(v)),
            None => (segment, None),
        };
        if after_collection || looks_generated(name) || out.ends_with("/models/") && verb.is_some()
        {
            out.push_str("{id}");
        } else {
            out.push_str(name);
        }
        if let Some(verb) = verb {
            out.push(':');
            out.push_str(verb);
        }
        after_collection = verb.is_none() && COLLECTIONS.contains(&name);
        if out.len() > TEMPLATE_MAX {
            out.truncate(TEMPLATE_MAX);
            break;
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// The model a path names (Gemini: `models/NAME:verb`).
pub fn path_model(path: &str) -> Option<String> {
    let (before, _) = path.split_once(':')?;
    let name = before.rsplit_once("/models/")?.1;
    (!name.is_empty() && !name.contains('/') && name.len() <= 128).then(|| name.to_owned())
}

fn looks_generated(segment: &str) -> bool {
    let digits = segment.bytes().filter(u8::is_ascii_digit).count();
    (segment.len() >= 16 && digits >= 2) || (segment.len() >= 8 && digits * 2 >= segment.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_provider_paths_as_otel_genai_operations() {
        for (method, path, want) in [
            ("POST", "/v1/chat/completions", Operation::Chat),
            (
                "POST",
                "/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21",
                Operation::Chat,
            ),
            ("POST", "/v1/messages", Operation::Chat),
            ("POST", "/v1/completions", Operation::TextCompletion),
            ("POST", "/v1/embeddings", Operation::Embeddings),
            ("POST", "/openai/v1/responses", Operation::Responses),
            (
                "POST",
                "/v1beta/models/gemini-2.0-flash:streamGenerateContent",
                Operation::GenerateContent,
            ),
            ("GET", "/v1/models", Operation::ListModels),
            (
                "POST",
                "/api/projects/p1/assistants",
                Operation::CreateAgent,
            ),
            (
                "POST",
                "/api/projects/p1/threads/thread_abc/runs",
                Operation::InvokeAgent,
            ),
            (
                "GET",
                "/api/projects/p1/threads/thread_abc/messages",
                Operation::AgentApi,
            ),
            ("GET", "/healthz", Operation::Other),
        ] {
            assert_eq!(Operation::of(method, path), want, "{method} {path}");
        }
    }

    #[test]
    fn on_a_mixed_host_the_call_decides_the_route() {
        let infer = Operation::of("POST", "/openai/v1/chat/completions");
        let agent = Operation::of("POST", "/api/projects/p/threads/t/runs");
        assert_eq!(infer.route(Route::Direct), Route::Direct);
        assert_eq!(agent.route(Route::Direct), Route::AgentPlatform);
        assert_eq!(infer.route(Route::AgentPlatform), Route::Direct);
        assert_eq!(agent.route(Route::Gateway), Route::Gateway);
        assert_eq!(infer.route(Route::GatewayUpstream), Route::GatewayUpstream);
    }

    #[test]
    fn templates_drop_ids_queries_and_keys() {
        for (path, want) in [
            (
                "/openai/deployments/gpt4o-prod/chat/completions?api-version=2024&api-key=SECRET",
                "/openai/deployments/{id}/chat/completions",
            ),
            (
                "/api/projects/contoso/threads/thread_9f8e7d6c5b4a3/runs/run_123456789",
                "/api/projects/{id}/threads/{id}/runs/{id}",
            ),
            ("/v1/chat/completions", "/v1/chat/completions"),
            (
                "/v1beta/models/gemini-2.0-flash:generateContent?key=SECRET",
                "/v1beta/models/{id}:generateContent",
            ),
            (
                "/v1/files/3f2b8c1e-1111-2222-3333-444455556666",
                "/v1/files/{id}",
            ),
            ("", "/"),
        ] {
            assert_eq!(template(path), want, "{path}");
        }
        assert!(template(&"/a".repeat(500)).len() <= TEMPLATE_MAX);
        assert_eq!(
            path_model("/v1beta/models/gemini-2.0-flash:generateContent").as_deref(),
            Some("gemini-2.0-flash")
        );
        assert_eq!(path_model("/v1/chat/completions"), None);
    }

    #[test]
    fn every_operation_name_is_in_the_label_list() {
        for op in [
            Operation::Chat,
            Operation::TextCompletion,
            Operation::Embeddings,
            Operation::Responses,
            Operation::GenerateContent,
            Operation::CreateAgent,
            Operation::InvokeAgent,
            Operation::AgentApi,
            Operation::ListModels,
            Operation::Other,
        ] {
            assert!(OPERATIONS.contains(&op.name()));
        }
    }
}
