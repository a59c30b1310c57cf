//! Agents (issue 16) end to end: `gatewatch agents` and `gatewatch run
//! --agent-audit` against a local HTTPS fake of a Foundry project API, the
//! Entra token endpoint and an App Service managed identity endpoint
//! (scripts/fake_foundry.py, Python stdlib only), with a CA made by openssl
//! for each test. No cloud, loopback only. Only the daemon tests are
//! privileged (they attach); the one for a project seen in traffic runs the
//! fake, a workload and gatewatch in a network namespace whose hosts file
//! points a Foundry host name at the fake.
use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::atomic::{AtomicUsize, Ordering},
};

use tests::{Gatewatch, Netns, TestCgroup, gatewatch_bin, privileged, run_ok};

const CLIENT_ID: &str = "11111111-2222-3333-4444-555555555555";
const TENANT: &str = "contoso-tenant";
/// Closed loopback port: keeps any IMDS fallback off the network.
const NO_IMDS: &str = "http://127.0.0.1:9";
/// The Foundry host a workload calls in the seen-in-traffic test, and the
/// loopback address its namespace's hosts file gives it (the fake's).
const SEEN_HOST: (&str, &str) = ("contoso.services.ai.azure.com", "127.0.1.7");

struct Fake {
    dir: PathBuf,
    port: u16,
    child: Child,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Fake {
    fn start() -> Self {
        Self::start_in(None, "127.0.0.1", 0)
    }

    /// The fake listening on `addr:port` (0: any port), inside `netns` when given.
    fn start_in(netns: Option<&Netns>, addr: &str, port: u16) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "gatewatch-agents-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        openssl(
            &dir,
            &[
                &["req", "-x509"][..],
                &ec,
                &[
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.pem",
                    "-days",
                    "1",
                    "-subj",
                    "/CN=gatewatch test CA",
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign",
                ],
            ]
            .concat(),
        );
        openssl(
            &dir,
            &[
                &["req"][..],
                &ec,
                &[
                    "-keyout",
                    "server.key",
                    "-out",
                    "server.csr",
                    "-subj",
                    "/CN=localhost",
                ],
            ]
            .concat(),
        );
        std::fs::write(
            dir.join("ext.cnf"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1,DNS:contoso.services.ai.azure.com\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "1",
                "-extfile",
                "ext.cnf",
            ],
        );
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/fake_foundry.py");
        let mut cmd = match netns {
            Some(ns) => ns.command(None, "python3"),
            None => Command::new("python3"),
        };
        let mut child = cmd
            .arg(script)
            .args([
                "--cert",
                "server.pem",
                "--key",
                "server.key",
                "--log",
                "requests.log",
                "--lifetime",
                "60",
                "--addr",
                addr,
                "--port",
                &port.to_string(),
            ])
            .current_dir(&dir)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .expect("fake prints its port")
            .parse()
            .unwrap();
        Self { dir, port, child }
    }

    fn endpoint(&self) -> String {
        format!("https://localhost:{}/api/projects/proj", self.port)
    }

    fn authority(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    fn ca(&self) -> String {
        self.dir.join("ca.pem").display().to_string()
    }

    fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("requests.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// A federated token file as the AKS webhook mounts it.
    fn token_file(&self, content: &str) -> String {
        let path = self.dir.join("azure-identity-token");
        std::fs::write(&path, content).unwrap();
        path.display().to_string()
    }

    fn workload_identity(&self, assertion: &str) -> Vec<(&'static str, String)> {
        vec![
            ("AZURE_CLIENT_ID", CLIENT_ID.to_owned()),
            ("AZURE_TENANT_ID", TENANT.to_owned()),
            ("AZURE_FEDERATED_TOKEN_FILE", self.token_file(assertion)),
            ("AZURE_AUTHORITY_HOST", format!("{}/", self.authority())),
        ]
    }

    /// Runs the binary with only the given environment (and no IMDS).
    fn run(&self, args: &[&str], env: &[(&str, String)]) -> Output {
        let mut cmd = Command::new(gatewatch_bin());
        cmd.env_clear()
            .env("AZURE_POD_IDENTITY_AUTHORITY_HOST", NO_IMDS)
            .args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    fn agents(&self, extra: &[&str], env: &[(&str, String)]) -> Output {
        let ep = self.endpoint();
        let ca = self.ca();
        let mut args = vec!["agents", "--project-endpoint", &ep, "--azure-ca-file", &ca];
        args.extend_from_slice(extra);
        self.run(&args, env)
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn json_rows(out: &Output) -> Vec<serde_json::Value> {
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

fn row<'a>(rows: &'a [serde_json::Value], agent: &str) -> &'a serde_json::Value {
    rows.iter()
        .find(|r| r["agent"] == agent)
        .unwrap_or_else(|| panic!("no row for {agent}"))
}

#[test]
fn workload_identity_lists_every_agent_with_its_route() {
    let fake = Fake::start();
    let out = fake.agents(
        &["-o", "json"],
        &fake.workload_identity("federated-sa-token"),
    );
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let rows = json_rows(&out);
    assert_eq!(rows.len(), 7, "{rows:?}");
    let apim = row(&rows, "apim-agent");
    assert_eq!(apim["route"], "gateway");
    assert_eq!(apim["connection"], "corp-apim");
    assert_eq!(apim["category"], "ApiManagement");
    assert_eq!(apim["model"], "corp-apim/gpt-4.1-mini");
    assert_eq!(row(&rows, "direct-agent")["route"], "direct");
    let gw = row(&rows, "gw-agent");
    assert_eq!(
        (gw["route"].as_str(), gw["category"].as_str()),
        (Some("gateway"), Some("ModelGateway"))
    );
    assert_eq!(row(&rows, "aoai-agent")["route"], "direct");
    let hosted = row(&rows, "hosted-agent");
    assert_eq!(hosted["route"], "unknown");
    assert!(
        hosted["reason"]
            .as_str()
            .unwrap()
            .starts_with("hosted agent")
    );
    let ghost = row(&rows, "ghost-agent");
    assert_eq!(
        (ghost["route"].as_str(), ghost["connection"].as_str()),
        (Some("unknown"), Some("missing-conn"))
    );
    let classic = row(&rows, "classic-helper");
    assert_eq!(
        (classic["api"].as_str(), classic["route"].as_str()),
        (Some("assistants"), Some("direct"))
    );
    // The exchange happened once, then the token was reused for every page.
    let log = fake.requests();
    assert_eq!(
        log.iter()
            .filter(|l| l.starts_with("POST /contoso-tenant/oauth2/v2.0/token"))
            .count(),
        1,
        "{log:#?}"
    );
}

#[test]
fn long_lists_are_followed_over_every_page() {
    let fake = Fake::start();
    let out = fake.agents(
        &["-o", "json"],
        &[("GATEWATCH_AZURE_TOKEN", "good-token".to_owned())],
    );
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let log = fake.requests();
    let agent_pages: Vec<_> = log
        .iter()
        .filter(|l| l.starts_with("GET /api/projects/proj/agents?"))
        .collect();
    assert_eq!(agent_pages.len(), 3, "{log:#?}");
    assert!(!agent_pages[0].contains("after="));
    assert!(
        agent_pages[1].contains("after=direct-agent"),
        "{agent_pages:?}"
    );
    assert!(
        agent_pages[2].contains("after=hosted-agent"),
        "{agent_pages:?}"
    );
    let conn_pages: Vec<_> = log
        .iter()
        .filter(|l| l.starts_with("GET /api/projects/proj/connections?"))
        .collect();
    assert_eq!(conn_pages.len(), 2, "{log:#?}");
    // The nextLink said api-version=2025-05-01; the client pins its own.
    assert!(
        conn_pages[1].contains("api-version=v1") && conn_pages[1].contains("skipToken=3"),
        "{conn_pages:?}"
    );
    assert!(
        log.iter()
            .filter(|l| l.starts_with("GET /api/"))
            .all(|l| l.contains("api-version=v1")),
        "{log:#?}"
    );
    // All six agents plus the classic one came through.
    assert_eq!(json_rows(&out).len(), 7);
}

#[test]
fn table_output_names_route_and_reason() {
    let fake = Fake::start();
    let out = fake.agents(&[], &[("GATEWATCH_AZURE_TOKEN", "good-token".to_owned())]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let mut lines = stdout.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("PROJECT") && header.contains("ROUTE") && header.ends_with("REASON"),
        "{header}"
    );
    let apim = stdout.lines().find(|l| l.contains("apim-agent")).unwrap();
    assert!(
        apim.contains("corp-apim/gpt-4.1-mini") && apim.contains(" gateway "),
        "{apim}"
    );
    let direct = stdout.lines().find(|l| l.contains("direct-agent")).unwrap();
    assert!(direct.contains(" direct "), "{direct}");
}

#[test]
fn app_service_managed_identity_gets_a_token() {
    let fake = Fake::start();
    let env = [
        (
            "IDENTITY_ENDPOINT",
            format!("{}/msi/token", fake.authority()),
        ),
        ("IDENTITY_HEADER", "identity-header-secret".to_owned()),
        ("SSL_CERT_FILE", fake.ca()),
    ];
    // No --ca-file: the platform verifier must find the CA through SSL_CERT_FILE.
    let ep = fake.endpoint();
    let out = fake.run(&["agents", "--project-endpoint", &ep, "-o", "json"], &env);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(json_rows(&out).len(), 7);
    assert!(
        fake.requests()
            .iter()
            .any(|l| l.starts_with("GET /msi/token?api-version=2019-08-01&resource=https"))
    );
}

#[test]
fn expired_bearer_token_is_a_clear_error_naming_what_to_set() {
    let fake = Fake::start();
    let out = fake.agents(
        &[],
        &[("GATEWATCH_AZURE_TOKEN", "expired-token".to_owned())],
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("HTTP 401"), "{err}");
    assert!(err.contains("the token has expired"), "{err}");
    assert!(
        err.contains("the bearer token in GATEWATCH_AZURE_TOKEN"),
        "{err}"
    );
    assert!(
        err.contains("set GATEWATCH_AZURE_TOKEN to a fresh token"),
        "{err}"
    );
}

#[test]
fn expired_jwt_is_refused_before_any_request() {
    use base64::Engine as _;
    let fake = Fake::start();
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let jwt = format!(
        "{}.{}.sig",
        b64(r#"{"alg":"RS256"}"#),
        b64(r#"{"aud":"https://ai.azure.com","exp":1700000000}"#)
    );
    let out = fake.agents(&[], &[("GATEWATCH_AZURE_TOKEN", jwt)]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("GATEWATCH_AZURE_TOKEN expired at 2023-11-14T22:13:20Z"),
        "{err}"
    );
    assert!(fake.requests().is_empty(), "{:?}", fake.requests());
}

#[test]
fn missing_credential_lists_what_was_tried_and_what_to_set() {
    let fake = Fake::start();
    let out = fake.agents(&[], &[]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    for needle in [
        "no Azure credential found",
        "GATEWATCH_AZURE_TOKEN (unset)",
        "workload identity (AZURE_FEDERATED_TOKEN_FILE unset)",
        "App Service managed identity (IDENTITY_ENDPOINT unset)",
        "IMDS at http://127.0.0.1:9",
        "Set GATEWATCH_AZURE_TOKEN",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in: {err}");
    }
}

#[test]
fn stale_federated_token_names_the_token_file_and_the_entra_error() {
    let fake = Fake::start();
    let out = fake.agents(&[], &fake.workload_identity("stale-sa-token"));
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("workload identity (AZURE_CLIENT_ID=11111111-2222-3333-4444-555555555555"),
        "{err}"
    );
    assert!(err.contains("AADSTS700024"), "{err}");
    assert!(
        err.contains("AZURE_FEDERATED_TOKEN_FILE is current"),
        "{err}"
    );
    assert!(!err.contains("Trace ID"), "{err}");
}

#[test]
fn half_configured_workload_identity_names_the_missing_variables() {
    let fake = Fake::start();
    let env = [(
        "AZURE_FEDERATED_TOKEN_FILE",
        fake.token_file("federated-sa-token"),
    )];
    let out = fake.agents(&[], &env);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("AZURE_CLIENT_ID, AZURE_TENANT_ID unset"),
        "{err}"
    );
}

#[test]
fn missing_role_is_reported_with_the_role_to_grant() {
    let fake = Fake::start();
    let out = fake.agents(&[], &[("GATEWATCH_AZURE_TOKEN", "noperm-token".to_owned())]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("PermissionDenied"), "{err}");
    assert!(err.contains("Azure AI User"), "{err}");
}

#[test]
fn untrusted_certificate_says_how_to_trust_it() {
    let fake = Fake::start();
    let ep = fake.endpoint();
    let out = fake.run(
        &["agents", "--project-endpoint", &ep],
        &[
            ("GATEWATCH_AZURE_TOKEN", "good-token".to_owned()),
            ("SSL_CERT_FILE", "/dev/null".to_owned()),
        ],
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("SSL_CERT_FILE") && err.contains("--azure-ca-file"),
        "{err}"
    );
}

#[test]
fn daemon_agent_audit_exports_the_gauge_of_configured_projects() {
    if !privileged() {
        return;
    }
    let fake = Fake::start();
    let cgroup = TestCgroup::new("agents");
    let ep = fake.endpoint();
    let ca = fake.ca();
    let gw = Gatewatch::start_with_env(
        &cgroup,
        &[
            "--agent-audit",
            "--project-endpoint",
            &ep,
            "--azure-ca-file",
            &ca,
        ],
        &[
            ("GATEWATCH_AZURE_TOKEN", "good-token"),
            ("AZURE_POD_IDENTITY_AUTHORITY_HOST", NO_IMDS),
        ],
    );
    let project = format!("localhost:{}/proj", fake.port);
    let m = gw.wait_for("gatewatch_agent_models", |m| {
        m.sum(
            "gatewatch_agent_audits_total",
            &[("project", &project), ("outcome", "ok")],
        ) >= 1.0
    });
    assert_fake_agents_gauge(&m, &project);
    // No workload of this test called a *.services.ai.azure.com host, so
    // `top` has nothing to mark; the endpoint answers all the same.
    let (code, body) = gw.get("/api/v1/agents/workloads");
    assert_eq!((code, body.trim()), (200, "[]"));
}

#[test]
fn daemon_agent_audit_exports_the_gauge_of_a_project_seen_in_traffic() {
    if !privileged() {
        return;
    }
    let (host, addr) = SEEN_HOST;
    // Drop order (reverse): gatewatch, cgroup, fake, namespace.
    let ns = Netns::new("seen");
    ns.etc_file("hosts", &format!("127.0.0.1 localhost\n{addr} {host}\n"));
    // On 443: a project seen in traffic is https://HOST/api/projects/_project.
    let fake = Fake::start_in(Some(&ns), addr, 443);
    let cgroup = TestCgroup::new("seen");
    let ca = fake.ca();
    // No --project-endpoint: only traffic can name a project to audit.
    let gw = Gatewatch::start_in(
        &ns,
        &cgroup,
        &["--agent-audit", "--azure-ca-file", &ca],
        &[
            ("GATEWATCH_AZURE_TOKEN", "good-token"),
            ("AZURE_POD_IDENTITY_AUTHORITY_HOST", NO_IMDS),
        ],
    );
    // The workload: curl in the watched cgroup, resolving the Foundry host
    // through the namespace's hosts file; its TLS SNI names the host.
    run_ok(
        ns.command(Some(&cgroup), "curl")
            .args(["-sS", "-o", "/dev/null", "--max-time", "5", "--cacert", &ca])
            .args(["-H", "Authorization: Bearer good-token"])
            .arg(format!(
                "https://{host}/api/projects/_project/openai/responses"
            )),
    );
    let project = format!("{host}/_project");
    let m = gw.wait_for("the audit of the project seen in traffic", |m| {
        m.sum(
            "gatewatch_agent_audits_total",
            &[("project", &project), ("outcome", "ok")],
        ) >= 1.0
    });
    assert_fake_agents_gauge(&m, &project);
    // The daemon listed the host's default project (the workload's own
    // request went to another path).
    let log = fake.requests();
    assert!(
        log.iter()
            .any(|l| l.starts_with("GET /api/projects/_project/agents?")),
        "{log:#?}"
    );
    // And `top`'s marker joins the calling workload to that audit.
    let (code, body) = gw.get("/api/v1/agents/workloads");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(host) && body.contains("curl"), "{body}");
}

/// The fake project's three agents, each with its route, in the gauge.
fn assert_fake_agents_gauge(m: &tests::Metrics, project: &str) {
    for (agent, model, route) in [
        ("apim-agent", "corp-apim/gpt-4.1-mini", "gateway"),
        ("direct-agent", "gpt-4.1-mini", "direct"),
        ("ghost-agent", "missing-conn/gpt-4o", "unknown"),
    ] {
        let labels = [
            ("project", project),
            ("agent", agent),
            ("model", model),
            ("route", route),
        ];
        assert_eq!(
            m.sum("gatewatch_agent_models", &labels),
            1.0,
            "{labels:?} in:\n{}",
            m.text
        );
    }
}
