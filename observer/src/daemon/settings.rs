//! Every setting of `gatewatch run`, defined once in [`Settings`]: the
//! field name is the config file key, clap derives the `--flag` and its
//! `GATEWATCH_*` variable from the same field, and `GET /api/v1/config`
//! shows the effective value under the same key.
//!
//! Layers, lowest first: [`Settings::defaults`], the config file, the
//! flags (and their variables). A set value replaces the one below; a list
//! adds to the one below (`--gateway` adds to the file's gateways).
use std::path::{Path, PathBuf};

use clap::{Args, builder::BoolishValueParser};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{agents::credential::Mode, classification::Kind, enforcement::Mode as EnforceMode};

/// Default of `otlp_interval_secs`.
pub const DEFAULT_OTLP_INTERVAL_SECS: u64 = 30;
/// Default of `agent_audit_interval_secs`.
pub const DEFAULT_AGENT_AUDIT_SECS: u64 = crate::agents::audit::DEFAULT_INTERVAL.as_secs();
/// Default of `metrics_addr`.
pub const DEFAULT_METRICS_ADDR: &str = "0.0.0.0:9464";
/// How long a new connection waits for its TLS SNI or HTTP Host before it
/// is counted with the best name known by then.
pub const DEFAULT_NAME_WAIT_MS: u64 = 250;
/// Connections waiting for a name, at most; the oldest is counted early
/// when the table is full.
pub const DEFAULT_MAX_PENDING: usize = 65_536;
/// Destination IPs remembered from DNS answers (per cgroup and node-wide).
pub const DEFAULT_DNS_CACHE: usize = 100_000;
/// How long the series of a workload that ended stay: minutes, so a
/// restarting pod keeps its series and a node's churn does not pile up.
pub const DEFAULT_SERIES_TTL: &str = "5m";

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

/// A named group of patterns: `[[gateways]]` or `[[providers]]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NamedPatterns {
    pub name: String,
    pub patterns: Vec<String>,
}

/// A `[[rules]]` entry: any kind, e.g. to override a catalogue host.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KindRule {
    pub pattern: String,
    pub kind: Kind,
    #[serde(default)]
    pub provider: String,
}

/// One layer of settings: unset fields (`None`, empty lists) leave the
/// layer below in force.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address of the HTTP server for /metrics, /healthz, /readyz and /api/v1 [default: 0.0.0.0:9464].
    #[arg(long, env = "GATEWATCH_METRICS_ADDR", value_name = "ADDR")]
    pub metrics_addr: Option<String>,
    /// cgroup v2 directory to attach to [default: the cgroup v2 mount, found in /proc/self/mountinfo].
    #[arg(long, env = "GATEWATCH_CGROUP", value_name = "PATH")]
    pub cgroup: Option<PathBuf>,
    /// Milliseconds a new connection waits for its TLS SNI or HTTP Host before it is counted [default: 250].
    #[arg(long, env = "GATEWATCH_NAME_WAIT_MS", value_name = "MS")]
    pub name_wait_ms: Option<u64>,
    /// Record the endpoint of route=other connections too (one series per destination: high cardinality) [default: false].
    #[arg(long, env = "GATEWATCH_RECORD_OTHER_ENDPOINTS", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub record_other_endpoints: Option<bool>,
    /// Count catalogue gateways (e.g. *.azure-api.net, gateway.ai.cloudflare.com) as route=gateway [default: false].
    #[arg(long, env = "GATEWATCH_CATALOG_GATEWAYS", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub catalog_gateways: Option<bool>,
    /// Export the GenAI metrics read inside TLS (gen_ai.client.token.usage, gen_ai.client.operation.duration) over OTLP/HTTP protobuf to this collector URL (e.g. http://otel-collector:4318) [default: off].
    #[arg(long, env = "GATEWATCH_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// Seconds between OTLP exports, at least 1 [default: 30].
    #[arg(long, env = "GATEWATCH_OTLP_INTERVAL_SECS", value_name = "SECS")]
    pub otlp_interval_secs: Option<u64>,
    /// Read requests, models and tokens inside AI connections from TLS libraries' plaintext (uprobes on OpenSSL and Go crypto/tls). Every call of a probed library traps into the kernel, in every process that maps it, AI or not (see the README's benchmarks) [default: false].
    #[arg(long, env = "GATEWATCH_TLS_PROBES", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub tls_probes: Option<bool>,
    /// Size of the kernel event ring buffer in bytes, a power of two [default: 8388608].
    #[arg(long, env = "GATEWATCH_RING_BYTES", value_name = "BYTES")]
    pub ring_bytes: Option<u32>,
    /// Distinct values kept per capped label (endpoint, namespace, pod, container, process) before folding into _other [default: 1000].
    #[arg(long, env = "GATEWATCH_LABEL_CAP", value_name = "N")]
    pub label_cap: Option<usize>,
    /// Connections waiting for their name, at most; when full the oldest is counted early [default: 65536].
    #[arg(long, env = "GATEWATCH_MAX_PENDING", value_name = "N")]
    pub max_pending: Option<usize>,
    /// Destination addresses remembered from DNS answers, per cgroup and node-wide [default: 100000].
    #[arg(long, env = "GATEWATCH_DNS_CACHE", value_name = "N")]
    pub dns_cache: Option<usize>,
    /// How long the series of a label set no connection uses stay in /metrics (and its values count under label_cap), e.g. 5m or 90s [default: 5m].
    #[arg(long, env = "GATEWATCH_SERIES_TTL", value_name = "DURATION")]
    pub series_ttl: Option<String>,
    /// Host /proc, for process executables [default: /proc; /host/proc in the DaemonSet].
    #[arg(long, env = "GATEWATCH_PROC_ROOT", value_name = "PATH")]
    pub proc_root: Option<PathBuf>,
    /// The kubelet's pod log directory, for namespace and pod names [default: /var/log/pods].
    #[arg(long, env = "GATEWATCH_POD_LOGS", value_name = "PATH")]
    pub pod_logs: Option<PathBuf>,
    /// The kubelet's container log directory, for container names [default: /var/log/containers].
    #[arg(long, env = "GATEWATCH_CONTAINER_LOGS", value_name = "PATH")]
    pub container_logs: Option<PathBuf>,
    /// UDP destination port whose flows are followed and named as QUIC (HTTP/3); 443 always is. Repeatable, at most 4 in all.
    #[arg(
        long = "quic-port",
        env = "GATEWATCH_QUIC_PORT",
        value_delimiter = ',',
        value_name = "PORT"
    )]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quic_ports: Vec<u16>,
    /// An AI gateway: [NAME=]PATTERN, PATTERN = host, *.suffix, IP or CIDR, optionally :PORT. Repeatable (comma-separated in the variable).
    #[arg(
        long = "gateway",
        env = "GATEWATCH_GATEWAY",
        value_delimiter = ',',
        value_name = "[NAME=]PATTERN"
    )]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateway: Vec<String>,
    /// A model provider endpoint: NAME=PATTERN (as for --gateway). Repeatable.
    #[arg(
        long = "provider",
        env = "GATEWATCH_PROVIDER",
        value_delimiter = ',',
        value_name = "NAME=PATTERN"
    )]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provider: Vec<String>,
    /// The gateway's own workloads: KEY=VALUE[,KEY=VALUE] with keys namespace, pod, container, process, exe (globs) and label=NAME=VALUE (needs --kube-api). Their provider calls are gateway_upstream. Repeatable (;-separated in the variable).
    #[arg(
        long = "gateway-workload",
        env = "GATEWATCH_GATEWAY_WORKLOAD",
        value_delimiter = ';',
        value_name = "SELECTOR"
    )]
    #[serde(default)]
    pub gateway_workloads: Vec<String>,
    /// Make the gateway the only way to a model: off, audit (count direct model calls from workloads that are neither gateway workloads nor on --allow-direct) or deny (also stop them: connect() refused or first bytes dropped and the socket ended). Restart to change the policy [default: off].
    #[arg(long, env = "GATEWATCH_ENFORCE", value_enum, value_name = "MODE")]
    pub enforce: Option<EnforceMode>,
    /// Workloads that may call model endpoints directly under --enforce, besides the gateway workloads: the --gateway-workload selector syntax. Repeatable (;-separated in the variable).
    #[arg(
        long = "allow-direct",
        env = "GATEWATCH_ALLOW_DIRECT",
        value_delimiter = ';',
        value_name = "SELECTOR"
    )]
    #[serde(default)]
    pub allow_direct: Vec<String>,
    /// A host pattern whose catalogue match is ignored (counted as other). Repeatable.
    #[arg(
        long = "ignore",
        env = "GATEWATCH_IGNORE",
        value_delimiter = ',',
        value_name = "PATTERN"
    )]
    #[serde(default)]
    pub ignore: Vec<String>,
    /// Also name pods from the Kubernetes API, with their labels (for label selectors): this node's pods only, watched. Needs the in-cluster service account (or KUBECONFIG) and get/list/watch on pods (deploy/rbac.yaml) [default: false].
    #[arg(long, env = "GATEWATCH_KUBE_API", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub kube_api: Option<bool>,
    /// This node's name, for --kube-api (the DaemonSet sets NODE_NAME from spec.nodeName).
    #[arg(long, env = "NODE_NAME", value_name = "NAME")]
    pub node_name: Option<String>,
    /// Log level: error, warn, info, debug, trace [default: info].
    #[arg(long, env = "GATEWATCH_LOG_LEVEL", value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Also forward the kernel programs' debug log lines (costly; for debugging) [default: false].
    #[arg(long, env = "GATEWATCH_EBPF_DEBUG", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub ebpf_debug: Option<bool>,
    /// Audit Foundry agents on an interval: the --project-endpoint projects and the default project of each Foundry resource seen in traffic; exports gatewatch_agent_models. Needs an Azure credential (README: agents) [default: false].
    #[arg(long, env = "GATEWATCH_AGENT_AUDIT", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub agent_audit: Option<bool>,
    /// A Foundry project endpoint, https://<resource>.services.ai.azure.com/api/projects/<project>, for --agent-audit and `gatewatch agents`. Repeatable.
    #[arg(
        long = "project-endpoint",
        env = "GATEWATCH_PROJECT_ENDPOINT",
        value_delimiter = ',',
        value_name = "URL"
    )]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub project_endpoints: Vec<String>,
    /// Seconds between agent audits, at least 30 [default: 300].
    #[arg(long, env = "GATEWATCH_AGENT_AUDIT_INTERVAL_SECS", value_name = "SECS")]
    pub agent_audit_interval_secs: Option<u64>,
    /// Trust only the CA certificates in this PEM file for the Foundry API and token endpoints [default: the system store; SSL_CERT_FILE is honoured].
    #[arg(long, env = "GATEWATCH_AZURE_CA_FILE", value_name = "PEM")]
    pub azure_ca_file: Option<PathBuf>,
    /// Azure credential for the agent audit: auto (first configured of GATEWATCH_AZURE_TOKEN, workload identity, App Service identity, else IMDS), token, workload-identity, managed-identity [default: auto].
    #[arg(
        long,
        env = "GATEWATCH_AZURE_CREDENTIAL",
        value_enum,
        value_name = "MODE"
    )]
    pub azure_credential: Option<Mode>,
    /// `[[gateways]]` tables: a name and its patterns (file only).
    #[arg(skip)]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<NamedPatterns>,
    /// `[[providers]]` tables (file only).
    #[arg(skip)]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<NamedPatterns>,
    /// `[[rules]]` tables: a pattern of any kind (file only).
    #[arg(skip)]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<KindRule>,
}

impl Settings {
    /// The bottom layer: every setting that has a default.
    pub fn defaults() -> Self {
        let paths = crate::workload::WorkloadConfig::default();
        Settings {
            metrics_addr: Some(DEFAULT_METRICS_ADDR.to_owned()),
            name_wait_ms: Some(DEFAULT_NAME_WAIT_MS),
            record_other_endpoints: Some(false),
            catalog_gateways: Some(false),
            tls_probes: Some(false),
            otlp_interval_secs: Some(DEFAULT_OTLP_INTERVAL_SECS),
            ring_bytes: Some(observer_common::RING_BUF_BYTES),
            quic_ports: vec![observer_common::QUIC_PORT_DEFAULT],
            label_cap: Some(crate::flows::DEFAULT_LABEL_CAP),
            max_pending: Some(DEFAULT_MAX_PENDING),
            dns_cache: Some(DEFAULT_DNS_CACHE),
            series_ttl: Some(DEFAULT_SERIES_TTL.to_owned()),
            proc_root: Some(paths.proc_root),
            pod_logs: Some(paths.pods_root),
            container_logs: Some(paths.containers_root),
            kube_api: Some(false),
            log_level: Some("info".to_owned()),
            ebpf_debug: Some(false),
            agent_audit: Some(false),
            agent_audit_interval_secs: Some(DEFAULT_AGENT_AUDIT_SECS),
            azure_credential: Some(Mode::Auto),
            enforce: Some(EnforceMode::Off),
            ..Settings::default()
        }
    }

    /// A config file's layer.
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

    /// Parses a config file's text; the error names the key.
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())
    }

    /// This layer with `upper` over it: `upper`'s set values win, lists add up.
    pub fn overlaid_with(&self, upper: &Settings) -> Settings {
        let mut merged = to_object(self);
        for (key, value) in to_object(upper) {
            match (merged.get_mut(&key), value) {
                (_, Value::Null) => {}
                (Some(Value::Array(below)), Value::Array(above)) => below.extend(above),
                (_, value) => {
                    merged.insert(key, value);
                }
            }
        }
        serde_json::from_value(Value::Object(merged))
            .expect("merging two valid layers gives a valid layer")
    }
}

fn to_object(settings: &Settings) -> serde_json::Map<String, Value> {
    match serde_json::to_value(settings) {
        Ok(Value::Object(map)) => map,
        _ => unreachable!("Settings serializes to an object"),
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory as _, Parser};

    use super::*;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        settings: Settings,
    }

    fn flags(args: &[&str]) -> Settings {
        Flags::try_parse_from(std::iter::once("gatewatch").chain(args.iter().copied()))
            .expect("valid flags")
            .settings
    }

    #[test]
    fn flags_win_over_the_file_and_lists_add_up() {
        let file = Settings::parse(
            "metrics_addr = \"127.0.0.1:9000\"\nlabel_cap = 5\ngateway = [\"a=10.0.0.1\"]\n",
        )
        .expect("valid file");
        let merged = Settings::defaults()
            .overlaid_with(&file)
            .overlaid_with(&flags(&[
                "--metrics-addr",
                "127.0.0.1:9999",
                "--gateway",
                "b=10.0.0.2",
            ]));
        assert_eq!(merged.metrics_addr.as_deref(), Some("127.0.0.1:9999"));
        assert_eq!(merged.label_cap, Some(5), "the file beats the default");
        assert_eq!(merged.gateway, ["a=10.0.0.1", "b=10.0.0.2"]);
        assert_eq!(merged.name_wait_ms, Some(DEFAULT_NAME_WAIT_MS));
    }

    #[test]
    fn boolean_flags_take_an_optional_value() {
        assert_eq!(flags(&["--kube-api"]).kube_api, Some(true));
        assert_eq!(flags(&["--kube-api=false"]).kube_api, Some(false));
        assert_eq!(flags(&[]).kube_api, None, "unset leaves the file's value");
    }

    #[test]
    fn every_flag_but_node_name_has_its_gatewatch_variable() {
        for arg in Flags::command().get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
            let want = if long == "node-name" {
                "NODE_NAME".to_owned()
            } else {
                format!("GATEWATCH_{}", long.to_uppercase().replace('-', "_"))
            };
            assert_eq!(env.as_deref(), Some(want.as_str()), "--{long}");
        }
    }

    #[test]
    fn each_default_in_the_help_is_the_default_in_force() {
        let defaults = to_object(&Settings::defaults());
        for arg in Flags::command().get_arguments() {
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            let Some(said) = help
                .split("[default: ")
                .nth(1)
                .and_then(|rest| rest.split([']', ';']).next())
            else {
                continue;
            };
            let key = arg.get_id().as_str();
            let Some(value) = defaults.get(key).filter(|v| !v.is_null()) else {
                continue; // no static default (e.g. found at attach time)
            };
            let value = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            assert_eq!(said, value, "--{key}: help says {said}, default is {value}");
        }
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_name() {
        let err = Settings::parse("metrics_adr = \"x\"\n").expect_err("typo");
        assert!(err.contains("metrics_adr"), "{err}");
    }
}
