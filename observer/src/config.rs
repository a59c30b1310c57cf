//! Configuration: a TOML file plus flags (flags win; repeated rule flags add
//! to the file's rules). Every error names the field and what is allowed.
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};

use crate::{
    classify::{Kind, Rule},
    metrics::DEFAULT_LABEL_CAP,
    pattern::{HostPattern, Pattern},
    workload::{GatewaySelector, WorkloadConfig},
};

pub const DEFAULT_METRICS_ADDR: &str = "0.0.0.0:9464";
/// How long a new connection waits for its TLS SNI or HTTP Host before it
/// is counted with the best name known by then.
pub const DEFAULT_NAME_WAIT_MS: u64 = 250;
pub const MAX_NAME_WAIT_MS: u64 = 10_000;
/// Connections waiting for a name, at most; the oldest is counted early
/// when the table is full.
pub const DEFAULT_MAX_PENDING: usize = 65_536;
/// Destination IPs remembered from DNS answers (per cgroup and node-wide).
pub const DEFAULT_DNS_CACHE: usize = 100_000;
const PAGE_SIZE: u32 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{field}: {reason}")]
    Field { field: String, reason: String },
}

fn field_error(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Field {
        field: field.into(),
        reason: reason.into(),
    }
}

/// A named group of patterns: `[[gateways]]` or `[[providers]]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NamedPatterns {
    pub name: String,
    pub patterns: Vec<String>,
}

/// A `[[rules]]` entry: any kind, e.g. to override a catalogue host.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KindRule {
    pub pattern: String,
    pub kind: Kind,
    #[serde(default)]
    pub provider: String,
}

/// The config file, as written.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub metrics_addr: Option<String>,
    pub cgroup: Option<PathBuf>,
    pub name_wait_ms: Option<u64>,
    pub record_other_endpoints: Option<bool>,
    pub catalog_gateways: Option<bool>,
    pub ring_bytes: Option<u32>,
    pub label_cap: Option<usize>,
    pub max_pending: Option<usize>,
    pub dns_cache: Option<usize>,
    /// Host /proc, for executables (`/host/proc` in the DaemonSet).
    pub proc_root: Option<PathBuf>,
    /// The kubelet's /var/log/pods, for namespace and pod names.
    pub pod_logs: Option<PathBuf>,
    /// The kubelet's /var/log/containers, for container names.
    pub container_logs: Option<PathBuf>,
    /// Selectors of the gateway's own workloads, e.g. "namespace=ai-gateway".
    #[serde(default)]
    pub gateway_workloads: Vec<String>,
    #[serde(default)]
    pub ignore: Vec<String>,
    #[serde(default)]
    pub gateways: Vec<NamedPatterns>,
    #[serde(default)]
    pub providers: Vec<NamedPatterns>,
    #[serde(default)]
    pub rules: Vec<KindRule>,
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|message| ConfigError::Syntax {
            path: path.to_owned(),
            message,
        })
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())
    }
}

/// Settings given as flags; `None` and empty leave the file's value.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub metrics_addr: Option<String>,
    pub cgroup: Option<PathBuf>,
    pub name_wait_ms: Option<u64>,
    pub record_other_endpoints: bool,
    pub catalog_gateways: bool,
    pub ring_bytes: Option<u32>,
    pub label_cap: Option<usize>,
    /// `--gateway [NAME=]PATTERN`
    pub gateways: Vec<String>,
    /// `--provider NAME=PATTERN`
    pub providers: Vec<String>,
    pub proc_root: Option<PathBuf>,
    pub pod_logs: Option<PathBuf>,
    pub container_logs: Option<PathBuf>,
    /// `--gateway-workload KEY=VALUE[,KEY=VALUE]`
    pub gateway_workloads: Vec<String>,
    /// `--kube-api`: also name pods (and get labels) from the Kubernetes API.
    pub kube_api: bool,
    /// `--node-name` / `NODE_NAME`: whose pods `--kube-api` watches.
    pub node_name: Option<String>,
}

/// The effective, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub metrics_addr: SocketAddr,
    pub cgroup: Option<PathBuf>,
    pub name_wait: Duration,
    pub record_other_endpoints: bool,
    pub catalog_gateways: bool,
    pub ring_bytes: u32,
    pub label_cap: usize,
    pub max_pending: usize,
    pub dns_cache: usize,
    pub rules: Vec<Rule>,
    pub ignore: Vec<HostPattern>,
    /// Where workload names come from; `cgroup_root` is set at attach time.
    pub workload_paths: WorkloadConfig,
    pub gateway_workloads: Vec<GatewaySelector>,
    pub kube_api: bool,
    /// Set (not empty) whenever `kube_api` is.
    pub node_name: Option<String>,
}

impl Config {
    pub fn build(file: FileConfig, flags: Overrides) -> Result<Config, ConfigError> {
        let metrics_addr = flags
            .metrics_addr
            .or(file.metrics_addr)
            .unwrap_or_else(|| DEFAULT_METRICS_ADDR.to_owned());
        let metrics_addr = metrics_addr.parse().map_err(|_| {
            field_error(
                "metrics_addr",
                format!("{metrics_addr:?} is not an address like 0.0.0.0:9464 or [::1]:9464"),
            )
        })?;
        let name_wait_ms = flags
            .name_wait_ms
            .or(file.name_wait_ms)
            .unwrap_or(DEFAULT_NAME_WAIT_MS);
        if name_wait_ms > MAX_NAME_WAIT_MS {
            return Err(field_error(
                "name_wait_ms",
                format!("{name_wait_ms} is too long: allowed 0 to {MAX_NAME_WAIT_MS}"),
            ));
        }
        let ring_bytes = flags
            .ring_bytes
            .or(file.ring_bytes)
            .unwrap_or(observer_common::RING_BUF_BYTES);
        if !ring_bytes.is_power_of_two() || ring_bytes < PAGE_SIZE {
            return Err(field_error(
                "ring_bytes",
                format!(
                    "{ring_bytes} must be a power of two of at least {PAGE_SIZE} (e.g. 8388608)"
                ),
            ));
        }
        let label_cap = flags
            .label_cap
            .or(file.label_cap)
            .unwrap_or(DEFAULT_LABEL_CAP);
        let max_pending = file.max_pending.unwrap_or(DEFAULT_MAX_PENDING);
        let dns_cache = file.dns_cache.unwrap_or(DEFAULT_DNS_CACHE);
        for (field, value) in [
            ("label_cap", label_cap),
            ("max_pending", max_pending),
            ("dns_cache", dns_cache),
        ] {
            if value == 0 {
                return Err(field_error(field, "must be at least 1"));
            }
        }

        let mut rules = Vec::new();
        for (section, kind, groups) in [
            ("gateways", Kind::Gateway, &file.gateways),
            ("providers", Kind::Model, &file.providers),
        ] {
            for (i, group) in groups.iter().enumerate() {
                if group.name.trim().is_empty() {
                    return Err(field_error(
                        format!("{section}[{i}].name"),
                        "must not be empty",
                    ));
                }
                if group.patterns.is_empty() {
                    return Err(field_error(
                        format!("{section}[{i}].patterns"),
                        "needs at least one pattern",
                    ));
                }
                for (j, p) in group.patterns.iter().enumerate() {
                    let field = format!("{section}[{i}].patterns[{j}]");
                    rules.push(make_rule(
                        &field,
                        p,
                        kind,
                        &group.name,
                        &format!("config {section}[{i}]"),
                    )?);
                }
            }
        }
        for (i, r) in file.rules.iter().enumerate() {
            let field = format!("rules[{i}].pattern");
            rules.push(make_rule(
                &field,
                &r.pattern,
                r.kind,
                &r.provider,
                &format!("config rules[{i}]"),
            )?);
        }
        for g in &flags.gateways {
            let (name, pattern) = match g.split_once('=') {
                Some((name, pattern)) => (name, pattern),
                None => (g.as_str(), g.as_str()),
            };
            rules.push(make_rule(
                "--gateway",
                pattern,
                Kind::Gateway,
                name,
                "--gateway",
            )?);
        }
        for p in &flags.providers {
            let (name, pattern) = p.split_once('=').ok_or_else(|| {
                field_error(
                    "--provider",
                    format!("{p:?} must be NAME=PATTERN, e.g. openai=10.0.0.0/8:443"),
                )
            })?;
            rules.push(make_rule(
                "--provider",
                pattern,
                Kind::Model,
                name,
                "--provider",
            )?);
        }
        let ignore = file
            .ignore
            .iter()
            .enumerate()
            .map(|(i, p)| {
                HostPattern::parse(p)
                    .map_err(|e| field_error(format!("ignore[{i}]"), e.to_string()))
            })
            .collect::<Result<_, _>>()?;

        let mut gateway_workloads = Vec::new();
        for (i, sel) in file.gateway_workloads.iter().enumerate() {
            let parsed = GatewaySelector::parse(sel)
                .map_err(|e| field_error(format!("gateway_workloads[{i}]"), e.to_string()))?;
            gateway_workloads.push(parsed);
        }
        for sel in &flags.gateway_workloads {
            gateway_workloads.push(
                GatewaySelector::parse(sel)
                    .map_err(|e| field_error("--gateway-workload", e.to_string()))?,
            );
        }
        let node_name = flags
            .node_name
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty());
        if flags.kube_api && node_name.is_none() {
            return Err(field_error(
                "--node-name",
                "--kube-api watches this node's pods and needs its name: set --node-name or \
                 NODE_NAME (the DaemonSet sets it from spec.nodeName)",
            ));
        }
        let defaults = WorkloadConfig::default();
        let workload_paths = WorkloadConfig {
            cgroup_root: defaults.cgroup_root,
            proc_root: flags
                .proc_root
                .or(file.proc_root)
                .unwrap_or(defaults.proc_root),
            pods_root: flags
                .pod_logs
                .or(file.pod_logs)
                .unwrap_or(defaults.pods_root),
            containers_root: flags
                .container_logs
                .or(file.container_logs)
                .unwrap_or(defaults.containers_root),
        };

        Ok(Config {
            metrics_addr,
            cgroup: flags.cgroup.or(file.cgroup),
            name_wait: Duration::from_millis(name_wait_ms),
            record_other_endpoints: flags.record_other_endpoints
                || file.record_other_endpoints.unwrap_or(false),
            catalog_gateways: flags.catalog_gateways || file.catalog_gateways.unwrap_or(false),
            ring_bytes,
            label_cap,
            max_pending,
            dns_cache,
            rules,
            ignore,
            workload_paths,
            gateway_workloads,
            kube_api: flags.kube_api,
            node_name,
        })
    }
}

impl Config {
    /// The effective configuration for `GET /api/v1/config`. gatewatch
    /// holds no secrets in its configuration; should one be added, it must
    /// be left out here.
    pub fn view(&self) -> serde_json::Value {
        let rules: Vec<_> = self
            .rules
            .iter()
            .map(|r| {
                serde_json::json!({
                    "pattern": r.pattern.to_string(), "kind": r.kind, "provider": r.provider, "origin": r.origin,
                })
            })
            .collect();
        let catalog = crate::catalog::Catalog::builtin();
        serde_json::json!({
            "version": crate::VERSION,
            "git_sha": crate::GIT_SHA,
            "metrics_addr": self.metrics_addr.to_string(),
            "cgroup": self.cgroup,
            "name_wait_ms": self.name_wait.as_millis() as u64,
            "record_other_endpoints": self.record_other_endpoints,
            "catalog_gateways": self.catalog_gateways,
            "ring_bytes": self.ring_bytes,
            "label_cap": self.label_cap,
            "max_pending": self.max_pending,
            "dns_cache": self.dns_cache,
            "rules": rules,
            "ignore": self.ignore.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
            "gateway_workloads": self.gateway_workloads.iter().map(|g| g.to_string()).collect::<Vec<_>>(),
            "proc_root": self.workload_paths.proc_root,
            "pod_logs": self.workload_paths.pods_root,
            "container_logs": self.workload_paths.containers_root,
            "kube_api": self.kube_api,
            "node_name": self.node_name,
            "catalog": { "version": catalog.version, "entries": catalog.entries().len() },
        })
    }
}

fn make_rule(
    field: &str,
    pattern: &str,
    kind: Kind,
    name: &str,
    origin: &str,
) -> Result<Rule, ConfigError> {
    if name.trim().is_empty() {
        return Err(field_error(field, "the name before '=' must not be empty"));
    }
    let parsed: Pattern = pattern
        .parse()
        .map_err(|e| field_error(field, format!("{e}")))?;
    Ok(Rule {
        pattern: parsed,
        kind,
        provider: name.trim().to_owned(),
        origin: origin.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(text: &str, flags: Overrides) -> Result<Config, ConfigError> {
        Config::build(
            FileConfig::parse(text).map_err(|m| field_error("file", m))?,
            flags,
        )
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let c = build("", Overrides::default()).expect("empty config is valid");
        assert_eq!(c.metrics_addr, DEFAULT_METRICS_ADDR.parse().unwrap());
        assert_eq!(c.name_wait, Duration::from_millis(DEFAULT_NAME_WAIT_MS));
        assert!(c.rules.is_empty() && !c.record_other_endpoints);
    }

    #[test]
    fn file_rules_and_flags_combine_and_flags_win() {
        let text = r#"
metrics_addr = "127.0.0.1:9000"
[[gateways]]
name = "corp-gw"
patterns = ["127.0.0.3:8443", "gw.corp.example"]
[[providers]]
name = "openai"
patterns = ["127.0.0.2:443", "[::1]:443"]
"#;
        let flags = Overrides {
            metrics_addr: Some("127.0.0.1:9999".into()),
            gateways: vec!["litellm=10.0.0.9:4000".into()],
            ..Default::default()
        };
        let c = build(text, flags).expect("valid");
        assert_eq!(c.metrics_addr.port(), 9999);
        assert_eq!(c.rules.len(), 5);
        assert!(
            c.rules
                .iter()
                .any(|r| r.provider == "litellm" && r.origin == "--gateway")
        );
    }

    #[test]
    fn errors_name_the_field_and_what_is_allowed() {
        let err = build(
            "[[providers]]\nname = \"x\"\npatterns = [\"10.0.0.1:99999\"]\n",
            Overrides::default(),
        )
        .expect_err("bad port");
        assert!(
            err.to_string().starts_with("providers[0].patterns[0]:"),
            "{err}"
        );
        let err = build("name_wait_ms = 60000\n", Overrides::default()).expect_err("too long");
        assert!(err.to_string().contains("allowed 0 to"), "{err}");
        let err =
            build("ring_bytes = 1000\n", Overrides::default()).expect_err("not a power of two");
        assert!(err.to_string().starts_with("ring_bytes:"), "{err}");
        let err = build(
            "",
            Overrides {
                providers: vec!["10.0.0.1".into()],
                ..Default::default()
            },
        )
        .expect_err("provider flag needs a name");
        assert!(err.to_string().contains("NAME=PATTERN"), "{err}");
    }

    #[test]
    fn gateway_workload_selectors_are_validated_by_field() {
        let c = build(
            "gateway_workloads = [\"namespace=ai-gw,container=proxy\"]\n",
            Overrides::default(),
        )
        .expect("valid");
        assert_eq!(c.gateway_workloads.len(), 1);
        let err = build(
            "gateway_workloads = [\"colour=blue\"]\n",
            Overrides::default(),
        )
        .expect_err("bad key");
        assert!(
            err.to_string().starts_with("gateway_workloads[0]:")
                && err.to_string().contains("namespace"),
            "{err}"
        );
        let flags = Overrides {
            gateway_workloads: vec!["pod".into()],
            ..Default::default()
        };
        assert!(
            build("", flags)
                .expect_err("no value")
                .to_string()
                .starts_with("--gateway-workload:")
        );
    }

    #[test]
    fn kube_api_needs_a_node_name() {
        let flags = |node: Option<&str>| Overrides {
            kube_api: true,
            node_name: node.map(str::to_owned),
            ..Default::default()
        };
        for node in [None, Some(" ")] {
            let err = build("", flags(node)).expect_err("no node name");
            assert!(
                err.to_string().starts_with("--node-name:")
                    && err.to_string().contains("NODE_NAME"),
                "{err}"
            );
        }
        let c = build("", flags(Some("node-a"))).expect("valid");
        assert!(c.kube_api && c.node_name.as_deref() == Some("node-a"));
        assert!(!build("", Overrides::default()).unwrap().kube_api);
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_name() {
        let err = FileConfig::parse("metrics_adr = \"x\"\n").expect_err("typo");
        assert!(err.contains("metrics_adr"), "{err}");
    }

    #[test]
    fn kind_rules_override_catalogue_hosts() {
        let c = build(
            "[[rules]]\npattern = \"*.services.ai.azure.com\"\nkind = \"agent_platform\"\nprovider = \"azure.ai.agents\"\n",
            Overrides::default(),
        )
        .expect("valid");
        assert_eq!(c.rules[0].kind, Kind::AgentPlatform);
        let err = build(
            "[[rules]]\npattern = \"x\"\nkind = \"bogus\"\n",
            Overrides::default(),
        )
        .expect_err("bad kind");
        assert!(err.to_string().contains("bogus"), "{err}");
    }
}
