//! The effective configuration: the merged [`Settings`] checked and turned
//! into typed values. Every error names the field and what is allowed.
use std::{net::SocketAddr, path::PathBuf, time::Duration};

pub use super::settings::ConfigError;
use super::settings::{NamedPatterns, Settings};
use crate::{
    agents::{audit::MIN_INTERVAL, credential::Mode, endpoint::ProjectEndpoint, http::Roots},
    classification::{HostPattern, Kind, Pattern, Rule},
    enforcement::Mode as EnforceMode,
    workload::{GatewaySelector, WorkloadConfig},
};

pub const MAX_NAME_WAIT_MS: u64 = 10_000;
const PAGE_SIZE: u32 = 4096;

fn field_error(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Field {
        field: field.into(),
        reason: reason.into(),
    }
}

/// The effective, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The merged settings this was built from, as `/api/v1/config` shows them.
    pub settings: Settings,
    pub metrics_addr: SocketAddr,
    pub cgroup: Option<PathBuf>,
    pub name_wait: Duration,
    pub record_other_endpoints: bool,
    pub catalog_gateways: bool,
    /// `--tls-probes`: requests, models and tokens from TLS plaintext.
    pub tls_probes: bool,
    /// `--otlp-endpoint` and how often to export to it.
    pub otlp: Option<(String, Duration)>,
    pub ring_bytes: u32,
    /// UDP ports followed as QUIC, distinct, at most `QUIC_PORTS_MAX`.
    pub quic_ports: Vec<u16>,
    pub label_cap: usize,
    pub series_ttl: Duration,
    pub max_pending: usize,
    pub dns_cache: usize,
    pub rules: Vec<Rule>,
    pub ignore: Vec<HostPattern>,
    /// Where workload names come from; `cgroup_root` is set at attach time.
    pub workload_paths: WorkloadConfig,
    pub gateway_workloads: Vec<GatewaySelector>,
    /// `--enforce`.
    pub enforce: EnforceMode,
    /// `--allow-direct`: may call model endpoints directly under `--enforce`.
    pub allow_direct: Vec<GatewaySelector>,
    pub kube_api: bool,
    /// Set (not empty) whenever `kube_api` is.
    pub node_name: Option<String>,
    pub log_level: log::LevelFilter,
    pub ebpf_debug: bool,
    /// `--agent-audit`: audit Foundry agents on an interval.
    pub agent_audit: bool,
    /// What the agent audit (and `gatewatch agents`) reads and how.
    pub agents: AgentSettings,
}

/// The agent audit's settings, checked: shared by `run --agent-audit` and
/// `gatewatch agents`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSettings {
    /// The configured projects, the file's first, without duplicates.
    pub projects: Vec<ProjectEndpoint>,
    pub interval: Duration,
    pub roots: Roots,
    pub credential: Mode,
}

impl AgentSettings {
    /// Checks the agent settings of the file and the flags over the defaults.
    pub fn build(file: &Settings, flags: &Settings) -> Result<Self, ConfigError> {
        let s = Settings::defaults()
            .overlaid_with(file)
            .overlaid_with(flags);
        let mut projects: Vec<ProjectEndpoint> = Vec::new();
        for (layer, list) in [(Layer::File, file), (Layer::Flags, flags)] {
            for (i, text) in list.project_endpoints.iter().enumerate() {
                let endpoint = ProjectEndpoint::parse(text).map_err(|e| {
                    field_error(
                        layer.field("project_endpoints", "--project-endpoint", i),
                        e.to_string(),
                    )
                })?;
                if !projects.contains(&endpoint) {
                    projects.push(endpoint);
                }
            }
        }
        let secs = s.agent_audit_interval_secs.unwrap_or_default();
        let interval = Duration::from_secs(secs);
        if interval < MIN_INTERVAL {
            return Err(field_error(
                "agent_audit_interval_secs",
                format!(
                    "{secs} is too short: at least {} seconds",
                    MIN_INTERVAL.as_secs()
                ),
            ));
        }
        Ok(AgentSettings {
            projects,
            interval,
            roots: s
                .azure_ca_file
                .clone()
                .map_or(Roots::Platform, Roots::PemFile),
            credential: s.azure_credential.unwrap_or_default(),
        })
    }
}

impl Config {
    /// Checks the config file's settings and the flags over the defaults.
    /// List entries are checked in their own layer, so an error names the
    /// file key or the flag it came from.
    pub fn build(file: &Settings, flags: &Settings) -> Result<Config, ConfigError> {
        let s = Settings::defaults()
            .overlaid_with(file)
            .overlaid_with(flags);
        let or_default = |v: Option<bool>| v.unwrap_or(false);
        let metrics_addr = s.metrics_addr.as_deref().unwrap_or_default();
        let metrics_addr = metrics_addr.parse().map_err(|_| {
            field_error(
                "metrics_addr",
                format!("{metrics_addr:?} is not an address like 0.0.0.0:9464 or [::1]:9464"),
            )
        })?;
        let log_level = s.log_level.as_deref().unwrap_or_default();
        let log_level = log_level.parse().map_err(|_| {
            field_error(
                "log_level",
                format!("{log_level:?}: allowed error, warn, info, debug, trace"),
            )
        })?;
        let (name_wait, ring_bytes) = limits(&s)?;
        let node_name = s
            .node_name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned);
        let kube_api = or_default(s.kube_api);
        if kube_api && node_name.is_none() {
            return Err(field_error(
                "--node-name",
                "--kube-api watches this node's pods and needs its name: set --node-name or \
                 NODE_NAME (the DaemonSet sets it from spec.nodeName)",
            ));
        }
        let defaults = WorkloadConfig::default();
        let agents = AgentSettings::build(file, flags)?;
        Ok(Config {
            metrics_addr,
            cgroup: s.cgroup.clone(),
            name_wait,
            record_other_endpoints: or_default(s.record_other_endpoints),
            catalog_gateways: or_default(s.catalog_gateways),
            tls_probes: s.tls_probes.unwrap_or(false),
            otlp: otlp(s.otlp_endpoint.as_deref(), s.otlp_interval_secs)?,
            ring_bytes,
            quic_ports: quic_ports(&s.quic_ports)?,
            label_cap: at_least_one("label_cap", s.label_cap)?,
            series_ttl: series_ttl(s.series_ttl.as_deref().unwrap_or_default())?,
            max_pending: at_least_one("max_pending", s.max_pending)?,
            dns_cache: at_least_one("dns_cache", s.dns_cache)?,
            rules: [rules(file, Layer::File)?, rules(flags, Layer::Flags)?].concat(),
            ignore: [
                ignore_patterns(Layer::File, &file.ignore)?,
                ignore_patterns(Layer::Flags, &flags.ignore)?,
            ]
            .concat(),
            workload_paths: WorkloadConfig {
                cgroup_root: defaults.cgroup_root,
                proc_root: s.proc_root.clone().unwrap_or(defaults.proc_root),
                pods_root: s.pod_logs.clone().unwrap_or(defaults.pods_root),
                containers_root: s.container_logs.clone().unwrap_or(defaults.containers_root),
            },
            gateway_workloads: [
                selectors(Layer::File, &file.gateway_workloads)?,
                selectors(Layer::Flags, &flags.gateway_workloads)?,
            ]
            .concat(),
            enforce: s.enforce.unwrap_or_default(),
            allow_direct: [
                selectors_of(
                    Layer::File,
                    "allow_direct",
                    "--allow-direct",
                    &file.allow_direct,
                )?,
                selectors_of(
                    Layer::Flags,
                    "allow_direct",
                    "--allow-direct",
                    &flags.allow_direct,
                )?,
            ]
            .concat(),
            kube_api,
            node_name,
            log_level,
            ebpf_debug: or_default(s.ebpf_debug),
            agent_audit: or_default(s.agent_audit),
            agents,
            settings: s,
        })
    }

    /// The effective configuration for `GET /api/v1/config`: every setting
    /// under its file key, the rules as they apply, and the catalogue.
    /// gatewatch holds no secrets in its configuration; should one be
    /// added, it must be left out here.
    pub fn view(&self) -> serde_json::Value {
        let mut view = serde_json::to_value(&self.settings).expect("settings serialize");
        let rules: Vec<_> = self
            .rules
            .iter()
            .map(|r| {
                serde_json::json!({
                    "pattern": r.pattern.to_string(), "kind": r.kind, "provider": r.provider, "origin": r.origin,
                })
            })
            .collect();
        let catalog = crate::classification::Catalog::builtin();
        let map = view.as_object_mut().expect("settings are an object");
        map.insert("metrics_addr".into(), self.metrics_addr.to_string().into());
        map.insert("rules".into(), rules.into());
        map.insert("version".into(), crate::VERSION.into());
        map.insert("git_sha".into(), crate::GIT_SHA.into());
        map.insert(
            "catalog".into(),
            serde_json::json!({ "version": catalog.version, "entries": catalog.entries().len() }),
        );
        view
    }
}

/// The name wait and ring size, in their allowed ranges.
fn limits(s: &Settings) -> Result<(Duration, u32), ConfigError> {
    let name_wait_ms = s.name_wait_ms.unwrap_or_default();
    if name_wait_ms > MAX_NAME_WAIT_MS {
        return Err(field_error(
            "name_wait_ms",
            format!("{name_wait_ms} is too long: allowed 0 to {MAX_NAME_WAIT_MS}"),
        ));
    }
    let ring_bytes = s.ring_bytes.unwrap_or_default();
    if !ring_bytes.is_power_of_two() || ring_bytes < PAGE_SIZE {
        return Err(field_error(
            "ring_bytes",
            format!("{ring_bytes} must be a power of two of at least {PAGE_SIZE} (e.g. 8388608)"),
        ));
    }
    Ok((Duration::from_millis(name_wait_ms), ring_bytes))
}

/// The QUIC ports, deduplicated, each a real port, few enough for the
/// kernel's table.
/// `otlp_endpoint` (an http or https URL) and its interval.
fn otlp(
    endpoint: Option<&str>,
    secs: Option<u64>,
) -> Result<Option<(String, Duration)>, ConfigError> {
    let Some(endpoint) = endpoint.filter(|e| !e.is_empty()) else {
        return Ok(None);
    };
    match url::Url::parse(endpoint) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
        _ => {
            return Err(field_error(
                "otlp_endpoint",
                format!(
                    "{endpoint:?} is not an http:// or https:// URL (e.g. http://otel-collector:4318)"
                ),
            ));
        }
    }
    let secs = secs.unwrap_or(crate::daemon::settings::DEFAULT_OTLP_INTERVAL_SECS);
    if secs == 0 {
        return Err(field_error(
            "otlp_interval_secs",
            "0 is too short: at least 1 second",
        ));
    }
    Ok(Some((endpoint.to_owned(), Duration::from_secs(secs))))
}

fn quic_ports(given: &[u16]) -> Result<Vec<u16>, ConfigError> {
    let mut ports: Vec<u16> = Vec::new();
    for &port in given {
        if port == 0 {
            return Err(field_error(
                "quic_ports",
                "0 is not a port: allowed 1 to 65535",
            ));
        }
        if !ports.contains(&port) {
            ports.push(port);
        }
    }
    if ports.len() > observer_common::QUIC_PORTS_MAX {
        return Err(field_error(
            "quic_ports",
            format!(
                "{ports:?}: at most {} ports (443 included) can be followed",
                observer_common::QUIC_PORTS_MAX
            ),
        ));
    }
    Ok(ports)
}

/// Shortest and longest `series_ttl`: a series must outlive a scrape or
/// two, and churned workloads must not stay for days.
const SERIES_TTL_RANGE: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(24 * 3600));

fn series_ttl(text: &str) -> Result<Duration, ConfigError> {
    let (min, max) = SERIES_TTL_RANGE;
    match humantime::parse_duration(text) {
        Ok(ttl) if (min..=max).contains(&ttl) => Ok(ttl),
        Ok(_) => Err(field_error(
            "series_ttl",
            format!("{text:?} is out of range: allowed 1s to 24h"),
        )),
        Err(e) => Err(field_error(
            "series_ttl",
            format!("{text:?} is not a duration like 5m or 90s ({e})"),
        )),
    }
}

fn at_least_one(field: &str, value: Option<usize>) -> Result<usize, ConfigError> {
    match value {
        Some(n) if n >= 1 => Ok(n),
        _ => Err(field_error(field, "must be at least 1")),
    }
}

/// Where a list entry came from, for error messages and rule origins.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Layer {
    File,
    Flags,
}

impl Layer {
    /// The field an entry is reported under: the flag, or the file key
    /// with its index.
    fn field(self, key: &str, flag: &str, i: usize) -> String {
        match self {
            Layer::File => format!("{key}[{i}]"),
            Layer::Flags => flag.to_owned(),
        }
    }

    fn origin(self, key: &str, flag: &str, i: usize) -> String {
        match self {
            Layer::File => format!("config {key}[{i}]"),
            Layer::Flags => flag.to_owned(),
        }
    }
}

/// A layer's user rules: `[[gateways]]`, `[[providers]]`, `[[rules]]`, then
/// the `gateway` and `provider` lists (file keys or flags).
fn rules(s: &Settings, layer: Layer) -> Result<Vec<Rule>, ConfigError> {
    let mut rules = Vec::new();
    for (section, kind, groups) in [
        ("gateways", Kind::Gateway, &s.gateways),
        ("providers", Kind::Model, &s.providers),
    ] {
        for (i, group) in groups.iter().enumerate() {
            rules.extend(group_rules(section, i, kind, group)?);
        }
    }
    for (i, r) in s.rules.iter().enumerate() {
        let field = format!("rules[{i}].pattern");
        let origin = format!("config rules[{i}]");
        rules.push(make_rule(&field, &r.pattern, r.kind, &r.provider, &origin)?);
    }
    for (i, g) in s.gateway.iter().enumerate() {
        let (name, pattern) = g.split_once('=').unwrap_or((g.as_str(), g.as_str()));
        let field = layer.field("gateway", "--gateway", i);
        let origin = layer.origin("gateway", "--gateway", i);
        rules.push(make_rule(&field, pattern, Kind::Gateway, name, &origin)?);
    }
    for (i, p) in s.provider.iter().enumerate() {
        let field = layer.field("provider", "--provider", i);
        let (name, pattern) = p.split_once('=').ok_or_else(|| {
            field_error(
                &field,
                format!("{p:?} must be NAME=PATTERN, e.g. openai=10.0.0.0/8:443"),
            )
        })?;
        let origin = layer.origin("provider", "--provider", i);
        rules.push(make_rule(&field, pattern, Kind::Model, name, &origin)?);
    }
    Ok(rules)
}

fn group_rules(
    section: &str,
    i: usize,
    kind: Kind,
    group: &NamedPatterns,
) -> Result<Vec<Rule>, ConfigError> {
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
    let origin = format!("config {section}[{i}]");
    group
        .patterns
        .iter()
        .enumerate()
        .map(|(j, p)| {
            let field = format!("{section}[{i}].patterns[{j}]");
            make_rule(&field, p, kind, &group.name, &origin)
        })
        .collect()
}

fn ignore_patterns(layer: Layer, patterns: &[String]) -> Result<Vec<HostPattern>, ConfigError> {
    patterns
        .iter()
        .enumerate()
        .map(|(i, p)| {
            HostPattern::parse(p)
                .map_err(|e| field_error(layer.field("ignore", "--ignore", i), e.to_string()))
        })
        .collect()
}

fn selectors(layer: Layer, selectors: &[String]) -> Result<Vec<GatewaySelector>, ConfigError> {
    selectors_of(layer, "gateway_workloads", "--gateway-workload", selectors)
}

/// Workload selectors of the setting `key` (`--flag`), checked by field.
fn selectors_of(
    layer: Layer,
    key: &str,
    flag: &str,
    selectors: &[String],
) -> Result<Vec<GatewaySelector>, ConfigError> {
    selectors
        .iter()
        .enumerate()
        .map(|(i, sel)| {
            GatewaySelector::parse(sel)
                .map_err(|e| field_error(layer.field(key, flag, i), e.to_string()))
        })
        .collect()
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
    use crate::daemon::settings::{DEFAULT_METRICS_ADDR, DEFAULT_NAME_WAIT_MS};

    fn build(text: &str, flags: Settings) -> Result<Config, ConfigError> {
        Config::build(
            &Settings::parse(text).map_err(|m| field_error("file", m))?,
            &flags,
        )
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let c = build("", Settings::default()).expect("empty config is valid");
        assert_eq!(c.metrics_addr, DEFAULT_METRICS_ADDR.parse().unwrap());
        assert_eq!(c.name_wait, Duration::from_millis(DEFAULT_NAME_WAIT_MS));
        assert_eq!(c.log_level, log::LevelFilter::Info);
        assert!(c.rules.is_empty() && !c.record_other_endpoints);
    }

    #[test]
    fn quic_ports_add_to_443_and_bad_ones_name_the_field() {
        assert_eq!(build("", Settings::default()).unwrap().quic_ports, [443]);
        let flags = Settings {
            quic_ports: vec![8443, 443],
            ..Default::default()
        };
        let c = build("quic_ports = [8443]", flags).expect("valid");
        assert_eq!(c.quic_ports, [443, 8443], "defaults first, duplicates once");
        let err = build("quic_ports = [0]", Settings::default()).unwrap_err();
        assert!(
            err.to_string().starts_with("quic_ports: 0 is not a port"),
            "{err}"
        );
        let err = build("quic_ports = [1, 2, 3, 4]", Settings::default()).unwrap_err();
        assert!(err.to_string().contains("at most 4 ports"), "{err}");
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
        let flags = Settings {
            metrics_addr: Some("127.0.0.1:9999".into()),
            gateway: vec!["litellm=10.0.0.9:4000".into()],
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
            Settings::default(),
        )
        .expect_err("bad port");
        assert!(
            err.to_string().starts_with("providers[0].patterns[0]:"),
            "{err}"
        );
        let err = build("name_wait_ms = 60000\n", Settings::default()).expect_err("too long");
        assert!(err.to_string().contains("allowed 0 to"), "{err}");
        let err = build("series_ttl = \"forever\"\n", Settings::default()).expect_err("no unit");
        assert!(err.to_string().starts_with("series_ttl:"), "{err}");
        let c = build("series_ttl = \"90s\"\n", Settings::default()).expect("valid");
        assert_eq!(c.series_ttl, Duration::from_secs(90));
        let err =
            build("ring_bytes = 1000\n", Settings::default()).expect_err("not a power of two");
        assert!(err.to_string().starts_with("ring_bytes:"), "{err}");
        let err = build(
            "",
            Settings {
                provider: vec!["10.0.0.1".into()],
                ..Default::default()
            },
        )
        .expect_err("provider flag needs a name");
        assert!(err.to_string().contains("NAME=PATTERN"), "{err}");
    }

    #[test]
    fn otlp_endpoint_must_be_an_http_url_and_its_interval_positive() {
        let c = build(
            "otlp_endpoint = \"http://collector:4318\"\n",
            Settings::default(),
        )
        .expect("valid");
        assert_eq!(
            c.otlp,
            Some(("http://collector:4318".to_owned(), Duration::from_secs(30)))
        );
        for bad in [
            "otlp_endpoint = \"collector:4318\"\n",
            "otlp_endpoint = \"ftp://c\"\n",
        ] {
            let err = build(bad, Settings::default()).expect_err(bad);
            assert!(err.to_string().starts_with("otlp_endpoint"), "{err}");
        }
        let err = build(
            "otlp_endpoint = \"http://c\"\notlp_interval_secs = 0\n",
            Settings::default(),
        )
        .expect_err("zero");
        assert!(err.to_string().starts_with("otlp_interval_secs"), "{err}");
    }

    #[test]
    fn enforce_and_allow_direct_are_read_from_file_and_flags() {
        let c = build(
            "enforce = \"audit\"\nallow_direct = [\"namespace=batch\"]\n",
            Settings {
                allow_direct: vec!["process=jupyter".into()],
                ..Settings::default()
            },
        )
        .expect("valid");
        assert_eq!(c.enforce, EnforceMode::Audit);
        assert_eq!(c.allow_direct.len(), 2);
        let err = build("allow_direct = [\"colour=blue\"]\n", Settings::default())
            .expect_err("bad selector");
        assert!(err.to_string().starts_with("allow_direct[0]:"), "{err}");
        let err = build("enforce = \"block\"\n", Settings::default()).expect_err("bad mode");
        assert!(err.to_string().contains("enforce"), "{err}");
    }

    #[test]
    fn gateway_workload_selectors_are_validated_by_field() {
        let c = build(
            "gateway_workloads = [\"namespace=ai-gw,container=proxy\"]\n",
            Settings::default(),
        )
        .expect("valid");
        assert_eq!(c.gateway_workloads.len(), 1);
        let err = build(
            "gateway_workloads = [\"colour=blue\"]\n",
            Settings::default(),
        )
        .expect_err("bad key");
        assert!(
            err.to_string().starts_with("gateway_workloads[0]:")
                && err.to_string().contains("namespace"),
            "{err}"
        );
        let flags = Settings {
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
        let flags = |node: Option<&str>| Settings {
            kube_api: Some(true),
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
        assert!(!build("", Settings::default()).unwrap().kube_api);
    }

    #[test]
    fn the_config_view_shows_every_setting_under_its_file_key() {
        let c = build("label_cap = 7\n", Settings::default()).expect("valid");
        let view = c.view();
        for key in [
            "metrics_addr",
            "name_wait_ms",
            "label_cap",
            "max_pending",
            "dns_cache",
            "proc_root",
            "pod_logs",
            "container_logs",
            "kube_api",
            "rules",
            "catalog",
            "version",
        ] {
            assert!(view.get(key).is_some(), "{key} missing from {view}");
        }
        assert_eq!(view["label_cap"], 7);
    }

    #[test]
    fn kind_rules_override_catalogue_hosts() {
        let c = build(
            "[[rules]]\npattern = \"*.services.ai.azure.com\"\nkind = \"agent_platform\"\nprovider = \"azure.ai.agents\"\n",
            Settings::default(),
        )
        .expect("valid");
        assert_eq!(c.rules[0].kind, Kind::AgentPlatform);
        let err = build(
            "[[rules]]\npattern = \"x\"\nkind = \"bogus\"\n",
            Settings::default(),
        )
        .expect_err("bad kind");
        assert!(err.to_string().contains("bogus"), "{err}");
    }

    #[test]
    fn agent_audit_settings_are_checked_by_field() {
        let c = build(
            "project_endpoints = [\"https://a.services.ai.azure.com/api/projects/sales\"]\n",
            Settings {
                agent_audit: Some(true),
                project_endpoints: vec![
                    "https://a.services.ai.azure.com/api/projects/sales".into(),
                    "https://b.services.ai.azure.com/api/projects/ops".into(),
                ],
                ..Default::default()
            },
        )
        .expect("valid");
        assert!(c.agent_audit);
        assert_eq!(c.agents.projects.len(), 2, "duplicates are dropped");
        assert_eq!(c.agents.interval, crate::agents::audit::DEFAULT_INTERVAL);
        assert_eq!(c.agents.credential, Mode::Auto);
        let err = build(
            "project_endpoints = [\"http://a.services.ai.azure.com/api/projects/p\"]\n",
            Settings::default(),
        )
        .expect_err("http");
        assert!(
            err.to_string().starts_with("project_endpoints[0]:"),
            "{err}"
        );
        let err = build("agent_audit_interval_secs = 5\n", Settings::default()).expect_err("short");
        assert!(err.to_string().contains("at least 30"), "{err}");
        assert!(!build("", Settings::default()).unwrap().agent_audit);
    }
}
