//! The built-in catalogue of model providers, AI gateways and agent
//! platforms, compiled in from `catalog.toml` (the data lives there, with a
//! source and certainty per entry).
use std::sync::OnceLock;

use serde::Deserialize;

use super::{kind::Kind, pattern::HostPattern};

const BUILTIN: &str = include_str!("catalog.toml");

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalogue is not valid TOML: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("catalogue entry {index} ({provider}): pattern {pattern:?}: {reason}")]
    Pattern {
        index: usize,
        provider: String,
        pattern: String,
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Certainty {
    /// Stated in the vendor's own documentation.
    D,
    /// Listed in a public catalogue or SDK.
    C,
    /// Inferred.
    I,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    patterns: Vec<String>,
    provider: String,
    kind: Kind,
    certainty: Certainty,
    source: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    ports: Vec<u16>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    version: String,
    entry: Vec<RawEntry>,
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub patterns: Vec<HostPattern>,
    pub provider: String,
    pub kind: Kind,
    pub certainty: Certainty,
    pub source: String,
    pub note: String,
    /// When non-empty, the entry only matches these destination ports.
    pub ports: Vec<u16>,
}

#[derive(Debug, Clone)]
pub struct Catalog {
    pub version: String,
    entries: Vec<Entry>,
}

impl Catalog {
    /// The catalogue compiled into the binary.
    pub fn builtin() -> &'static Catalog {
        static BUILT: OnceLock<Catalog> = OnceLock::new();
        BUILT.get_or_init(|| {
            Catalog::from_toml(BUILTIN).expect("built-in catalogue is valid (tested)")
        })
    }

    pub fn empty() -> Catalog {
        Catalog {
            version: String::new(),
            entries: Vec::new(),
        }
    }

    pub fn from_toml(text: &str) -> Result<Catalog, CatalogError> {
        let raw: RawCatalog = toml::from_str(text)?;
        let mut entries = Vec::with_capacity(raw.entry.len());
        for (index, e) in raw.entry.into_iter().enumerate() {
            let patterns = e
                .patterns
                .iter()
                .map(|p| {
                    HostPattern::parse(p).map_err(|err| CatalogError::Pattern {
                        index,
                        provider: e.provider.clone(),
                        pattern: p.clone(),
                        reason: err.to_string(),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            entries.push(Entry {
                patterns,
                provider: e.provider,
                kind: e.kind,
                certainty: e.certainty,
                source: e.source,
                note: e.note,
                ports: e.ports,
            });
        }
        Ok(Catalog {
            version: raw.version,
            entries,
        })
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The most specific entry matching `host` (already normalised), with
    /// the pattern that matched. An exact name beats any wildcard; a longer
    /// suffix beats a shorter one, so an `exclude` entry for a narrower
    /// suffix overrides a broad gateway wildcard.
    pub fn lookup(&self, host: &str, port: u16) -> Option<(&Entry, &HostPattern)> {
        let (e, p) = self.lookup_index(host, port)?;
        let entry = &self.entries[e];
        Some((entry, &entry.patterns[p]))
    }

    /// As [`Catalog::lookup`], by position: (entry, pattern within it).
    pub fn lookup_index(&self, host: &str, port: u16) -> Option<(usize, usize)> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.ports.is_empty() || e.ports.contains(&port))
            .flat_map(|(i, e)| e.patterns.iter().enumerate().map(move |(j, p)| (i, j, p)))
            .filter(|(_, _, p)| p.matches(host))
            .max_by_key(|(_, _, p)| p.specificity())
            .map(|(i, j, _)| (i, j))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalogue_parses() {
        let c = Catalog::builtin();
        assert!(!c.version.is_empty());
        assert!(!c.entries().is_empty());
    }

    #[test]
    fn exact_names_beat_wildcards() {
        let c = Catalog::from_toml(
            r#"
version = "t"
[[entry]]
patterns = ["*.example.net"]
provider = "wide"
kind = "gateway"
certainty = "I"
source = "test"
[[entry]]
patterns = ["api.example.net"]
provider = "exact"
kind = "model"
certainty = "I"
source = "test"
"#,
        )
        .expect("test catalogue parses");
        assert_eq!(
            c.lookup("api.example.net", 443)
                .map(|(e, _)| e.provider.as_str()),
            Some("exact")
        );
        assert_eq!(
            c.lookup("x.example.net", 443)
                .map(|(e, _)| e.provider.as_str()),
            Some("wide")
        );
        assert!(c.lookup("example.net", 443).is_none());
    }

    #[test]
    fn bad_patterns_name_the_entry() {
        let err = Catalog::from_toml(
            "version = \"t\"\n[[entry]]\npatterns = [\"a..b\"]\nprovider = \"x\"\nkind = \"model\"\ncertainty = \"D\"\nsource = \"s\"\n",
        )
        .expect_err("bad pattern must fail");
        assert!(err.to_string().contains("entry 0 (x)"), "{err}");
    }

    // ---- The built-in catalogue's data (catalog.toml) ----

    use std::collections::{BTreeSet, HashSet};

    use crate::naming::host::normalize_host;

    /// `lookup` on the built-in catalogue, as (provider, kind). The name must
    /// already be normalised, as the classifier does before calling it.
    fn builtin(host: &str) -> Option<(&'static str, Kind)> {
        Catalog::builtin()
            .lookup(host, 443)
            .map(|(e, _)| (e.provider.as_str(), e.kind))
    }

    fn is_model(kind: Kind) -> bool {
        matches!(kind, Kind::Model | Kind::Mixed)
    }

    /// OpenTelemetry `gen_ai.provider.name` values (semconv, last in-repo copy).
    const OTEL_PROVIDERS: &[&str] = &[
        "openai",
        "anthropic",
        "cohere",
        "azure.ai.openai",
        "azure.ai.inference",
        "aws.bedrock",
        "gcp.gen_ai",
        "gcp.vertex_ai",
        "gcp.gemini",
        "ibm.watsonx.ai",
        "mistral_ai",
        "groq",
        "deepseek",
        "perplexity",
        "x_ai",
    ];

    /// A catalogue label must be a known OTel value or a short name made of
    /// `[a-z0-9_.]` (it becomes a metric label value).
    fn label_ok(label: &str) -> bool {
        OTEL_PROVIDERS.contains(&label)
            || (!label.is_empty()
                && label.len() <= 32
                && label.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.'
                })
                && !label.starts_with(['.', '_'])
                && !label.ends_with(['.', '_'])
                && !label.contains(".."))
    }

    #[test]
    fn builtin_has_enough_model_providers_and_gateways() {
        let c = Catalog::builtin();
        let models: Vec<&Entry> = c.entries().iter().filter(|e| is_model(e.kind)).collect();
        let model_patterns: usize = models.iter().map(|e| e.patterns.len()).sum();
        assert!(
            model_patterns >= 40,
            "only {model_patterns} model/mixed patterns"
        );
        // Not satisfied by region enumeration alone.
        assert!(
            models.len() >= 30,
            "only {} model/mixed entries",
            models.len()
        );
        let model_providers: HashSet<&str> = models.iter().map(|e| e.provider.as_str()).collect();
        assert!(
            model_providers.len() >= 25,
            "only {} model providers",
            model_providers.len()
        );

        let gateways = c
            .entries()
            .iter()
            .filter(|e| e.kind == Kind::Gateway)
            .count();
        assert!(gateways >= 8, "only {gateways} gateway entries");
        for kind in [
            Kind::Mixed,
            Kind::AgentPlatform,
            Kind::ModelControl,
            Kind::Exclude,
        ] {
            assert!(
                c.entries().iter().any(|e| e.kind == kind),
                "no {} entry",
                kind.as_str()
            );
        }
    }

    #[test]
    fn builtin_provider_labels_are_bounded_and_stable() {
        let labels: BTreeSet<&str> = Catalog::builtin()
            .entries()
            .iter()
            .map(|e| e.provider.as_str())
            .collect();
        for label in &labels {
            assert!(
                label_ok(label),
                "provider label {label:?} is not an OTel value nor [a-z0-9_.]+"
            );
        }
        assert!(
            labels.len() <= 64,
            "{} provider labels: keep the label set small",
            labels.len()
        );
        assert!(label_ok("azure.ai.openai") && !label_ok("Azure OpenAI") && !label_ok("open-ai"));
    }

    #[test]
    fn builtin_patterns_are_unique_across_entries() {
        let mut seen = HashSet::new();
        for e in Catalog::builtin().entries() {
            assert!(
                !e.patterns.is_empty(),
                "entry {} has no pattern",
                e.provider
            );
            for p in &e.patterns {
                assert!(
                    seen.insert(p.to_string()),
                    "pattern {p} is listed twice (second time in {})",
                    e.provider
                );
            }
        }
    }

    #[test]
    fn builtin_entries_cite_a_source_without_invented_urls() {
        for e in Catalog::builtin().entries() {
            let first = e.patterns[0].to_string();
            assert!(!e.source.trim().is_empty(), "{first}: empty source");
            assert!(
                !e.source.contains("://"),
                "{first}: source should be citation text, not a URL"
            );
            assert!(
                !e.note.contains("://"),
                "{first}: note should not carry a URL"
            );
        }
    }

    #[test]
    fn builtin_wildcards_are_not_too_broad() {
        // Suffixes shared by unrelated services: a wildcard on one of these
        // would classify half the cloud.
        const SHARED: &[&str] = &[
            ".amazonaws.com",
            ".amazonaws.com.cn",
            ".amazonaws.eu",
            ".api.aws",
            ".vpce.amazonaws.com",
            ".googleapis.com",
            ".p.googleapis.com",
            ".azure.com",
            ".ai.azure.com",
            ".microsoft.com",
            ".cloudflare.com",
            ".huggingface.co",
            ".github.ai",
            ".nip.io",
        ];
        for e in Catalog::builtin().entries() {
            for p in &e.patterns {
                if let HostPattern::Suffix(suffix) = p {
                    assert!(
                        suffix.matches('.').count() >= 2,
                        "{p}: wildcard over a bare top-level name"
                    );
                    assert!(
                        !SHARED.contains(&suffix.as_str()),
                        "{p}: wildcard over a shared cloud suffix"
                    );
                }
            }
        }
    }

    #[test]
    fn builtin_lookup_table() {
        use Kind::*;
        let table: &[(&str, Option<(&str, Kind)>)] = &[
            ("api.openai.com", Some(("openai", Model))),
            ("eu.api.openai.com", Some(("openai", Model))),
            ("api.anthropic.com", Some(("anthropic", Model))),
            ("contoso.openai.azure.com", Some(("azure.ai.openai", Model))),
            (
                "contoso.privatelink.openai.azure.com",
                Some(("azure.ai.openai", Model)),
            ),
            (
                "contoso.cognitiveservices.azure.com",
                Some(("azure.ai.openai", Mixed)),
            ),
            (
                "x.services.ai.azure.com",
                Some(("azure.ai.inference", Mixed)),
            ),
            (
                "llama-3.eastus2.models.ai.azure.com",
                Some(("azure.ai.inference", Model)),
            ),
            (
                "models.inference.ai.azure.com",
                Some(("github_models", Model)),
            ),
            ("models.github.ai", Some(("github_models", Model))),
            (
                "my-ep.westeurope.inference.ml.azure.com",
                Some(("azure.ml", Model)),
            ),
            (
                "westeurope.api.azureml.ms",
                Some(("azure.ml", AgentPlatform)),
            ),
            ("contoso.openai.azure.us", Some(("azure.ai.openai", Model))),
            (
                "contoso.cognitiveservices.azure.cn",
                Some(("azure.ai.openai", Mixed)),
            ),
            ("contoso-apim.azure-api.net", Some(("azure.apim", Gateway))),
            (
                "contoso-westeurope-01.regional.azure-api.net",
                Some(("azure.apim", Gateway)),
            ),
            (
                "cognitiveweprod.azure-api.net",
                Some(("azure.cognitive_services", Exclude)),
            ),
            (
                "westeurope.api.cognitive.microsoft.com",
                Some(("azure.cognitive_services", Exclude)),
            ),
            (
                "foo.management.azure-api.net",
                Some(("azure.apim", Exclude)),
            ),
            ("foo.developer.azure-api.net", Some(("azure.apim", Exclude))),
            (
                "bedrock-runtime.us-east-1.amazonaws.com",
                Some(("aws.bedrock", Model)),
            ),
            (
                "bedrock-runtime-fips.us-gov-west-1.amazonaws.com",
                Some(("aws.bedrock", Model)),
            ),
            (
                "bedrock-runtime.eu-central-1.api.aws",
                Some(("aws.bedrock", Model)),
            ),
            (
                "bedrock-mantle.us-east-1.api.aws",
                Some(("aws.bedrock", Model)),
            ),
            (
                "vpce-0a1b-c2d3.bedrock-runtime.us-east-1.vpce.amazonaws.com",
                Some(("aws.bedrock", Model)),
            ),
            (
                "bedrock.us-east-1.amazonaws.com",
                Some(("aws.bedrock", ModelControl)),
            ),
            (
                "bedrock-agent.eu-west-1.amazonaws.com",
                Some(("aws.bedrock", ModelControl)),
            ),
            (
                "bedrock-agent-runtime.us-west-2.amazonaws.com",
                Some(("aws.bedrock", AgentPlatform)),
            ),
            (
                "my-gw-abc.gateway.bedrock-agentcore.us-east-1.amazonaws.com",
                Some(("aws.bedrock_agentcore", Exclude)),
            ),
            (
                "a1b2c3.execute-api.us-east-1.amazonaws.com",
                Some(("aws.api_gateway", Gateway)),
            ),
            ("s3.us-east-1.amazonaws.com", None),
            (
                "generativelanguage.googleapis.com",
                Some(("gcp.gemini", Model)),
            ),
            (
                "us-central1-aiplatform.googleapis.com",
                Some(("gcp.vertex_ai", Mixed)),
            ),
            ("aiplatform.googleapis.com", Some(("gcp.vertex_ai", Mixed))),
            ("storage.googleapis.com", None),
            (
                "gateway.ai.cloudflare.com",
                Some(("cloudflare_ai_gateway", Gateway)),
            ),
            ("api.cloudflare.com", Some(("cloudflare", Exclude))),
            ("oai.helicone.ai", Some(("helicone", Gateway))),
            ("us.helicone.ai", Some(("helicone", Exclude))),
            ("www.helicone.ai", Some(("helicone", Exclude))),
            ("oai.hconeai.com", Some(("helicone", Gateway))),
            ("openrouter.ai", Some(("openrouter", Gateway))),
            ("api.portkey.ai", Some(("portkey", Gateway))),
            ("ai-gateway.vercel.sh", Some(("vercel_ai_gateway", Gateway))),
            ("myorg-prod.apigee.net", Some(("apigee", Gateway))),
            ("api.mistral.ai", Some(("mistral_ai", Model))),
            ("api.cohere.ai", Some(("cohere", Model))),
            ("api.groq.com", Some(("groq", Model))),
            ("api.deepseek.com", Some(("deepseek", Model))),
            ("api.x.ai", Some(("x_ai", Model))),
            ("api.perplexity.ai", Some(("perplexity", Model))),
            ("api.together.xyz", Some(("together_ai", Model))),
            ("api.fireworks.ai", Some(("fireworks_ai", Model))),
            ("router.huggingface.co", Some(("huggingface", Model))),
            (
                "abc123.us-east-1.aws.endpoints.huggingface.cloud",
                Some(("huggingface", Model)),
            ),
            ("integrate.api.nvidia.com", Some(("nvidia_nim", Model))),
            ("example.com", None),
            ("openai.com", None),
            ("azure-api.net", None),
            ("openai.azure.com", None),
            ("evilopenai.azure.com", None),
        ];
        let mut wrong = Vec::new();
        for (host, want) in table {
            let got = builtin(host);
            if got != *want {
                wrong.push(format!("{host}: got {got:?}, want {want:?}"));
            }
        }
        assert!(wrong.is_empty(), "lookup mismatches:\n{}", wrong.join("\n"));
    }

    #[test]
    fn builtin_lookup_expects_normalised_names() {
        // The classifier lower-cases and strips the trailing dot first.
        assert_eq!(builtin("API.OpenAI.com."), None);
        assert_eq!(
            builtin(&normalize_host("API.OpenAI.com.")),
            Some(("openai", Kind::Model))
        );
        assert_eq!(
            builtin(&normalize_host("Contoso-APIM.azure-api.net.")),
            Some(("azure.apim", Kind::Gateway))
        );
    }

    #[test]
    fn builtin_azure_cname_chain_never_reads_as_a_gateway() {
        // x.cognitiveservices.azure.com -> westeurope.api.cognitive.microsoft.com
        // -> cognitiveweprod.azure-api.net -> ...regional.azure-api.net
        let chain = [
            "x.cognitiveservices.azure.com",
            "westeurope.api.cognitive.microsoft.com",
            "cognitiveweprod.azure-api.net",
            "cognitiveweprod-westeurope-01.regional.azure-api.net",
        ];
        assert_eq!(builtin(chain[0]).map(|(_, k)| k), Some(Kind::Mixed));
        for name in &chain[1..] {
            assert_eq!(builtin(name).map(|(_, k)| k), Some(Kind::Exclude), "{name}");
        }
    }

    #[test]
    fn builtin_non_gateway_hosts_under_gateway_wildcards() {
        for host in [
            "foo.developer.azure-api.net",
            "foo.management.azure-api.net",
            "foo.scm.azure-api.net",
            "foo.portal.azure-api.net",
            "foo.configuration.azure-api.net",
            "us.helicone.ai",
            "www.helicone.ai",
            "docs.helicone.ai",
            "api.cloudflare.com",
        ] {
            let kind = builtin(host).map(|(_, k)| k);
            assert!(kind.is_some_and(|k| k != Kind::Gateway), "{host}: {kind:?}");
        }
    }

    /// The regions enumerated for `<prefix><region><suffix>` exact names.
    fn regions(prefix: &str, suffix: &str) -> BTreeSet<String> {
        Catalog::builtin()
            .entries()
            .iter()
            .flat_map(|e| &e.patterns)
            .filter_map(|p| match p {
                HostPattern::Exact(name) => name
                    .strip_prefix(prefix)?
                    .strip_suffix(suffix)
                    .map(str::to_owned),
                HostPattern::Suffix(_) => None,
            })
            .filter(|region| !region.contains('.'))
            .collect()
    }

    #[test]
    fn builtin_aws_regional_families_cover_the_same_regions() {
        let all = regions("bedrock-runtime.", ".amazonaws.com");
        assert!(
            (15..=30).contains(&all.len()),
            "{} Bedrock regions: {all:?}",
            all.len()
        );
        assert!(
            all.contains("us-east-1")
                && all.contains("eu-central-1")
                && all.contains("ap-northeast-1")
        );
        for r in &all {
            let want: [(String, Option<(&str, Kind)>); 8] = [
                (
                    format!("bedrock-runtime.{r}.api.aws"),
                    Some(("aws.bedrock", Kind::Model)),
                ),
                (
                    format!("bedrock-mantle.{r}.api.aws"),
                    Some(("aws.bedrock", Kind::Model)),
                ),
                (
                    format!("vpce-1.bedrock-runtime.{r}.vpce.amazonaws.com"),
                    Some(("aws.bedrock", Kind::Model)),
                ),
                (
                    format!("bedrock.{r}.amazonaws.com"),
                    Some(("aws.bedrock", Kind::ModelControl)),
                ),
                (
                    format!("bedrock-agent.{r}.amazonaws.com"),
                    Some(("aws.bedrock", Kind::ModelControl)),
                ),
                (
                    format!("bedrock-agent-runtime.{r}.amazonaws.com"),
                    Some(("aws.bedrock", Kind::AgentPlatform)),
                ),
                (
                    format!("g.gateway.bedrock-agentcore.{r}.amazonaws.com"),
                    Some(("aws.bedrock_agentcore", Kind::Exclude)),
                ),
                (
                    format!("api1.execute-api.{r}.amazonaws.com"),
                    Some(("aws.api_gateway", Kind::Gateway)),
                ),
            ];
            for (host, expected) in want {
                assert_eq!(builtin(&host), expected, "{host}");
            }
        }
        let fips = regions("bedrock-runtime-fips.", ".amazonaws.com");
        assert!(
            !fips.is_empty() && fips.is_subset(&all),
            "FIPS regions {fips:?}"
        );
        for r in &fips {
            for (host, kind) in [
                (format!("bedrock-runtime-fips.{r}.api.aws"), Kind::Model),
                (
                    format!("bedrock-fips.{r}.amazonaws.com"),
                    Kind::ModelControl,
                ),
                (
                    format!("bedrock-agent-runtime-fips.{r}.amazonaws.com"),
                    Kind::AgentPlatform,
                ),
            ] {
                assert_eq!(builtin(&host), Some(("aws.bedrock", kind)), "{host}");
            }
        }
    }

    #[test]
    fn builtin_vertex_regions_are_enumerated() {
        let vertex = regions("", "-aiplatform.googleapis.com");
        assert!(
            (15..=30).contains(&vertex.len()),
            "{} Vertex regions: {vertex:?}",
            vertex.len()
        );
        for r in ["us-central1", "europe-west4", "asia-northeast1"] {
            assert!(vertex.contains(r), "missing Vertex region {r}");
        }
    }
}
