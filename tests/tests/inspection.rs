//! `--tls-probes`: requests, models and tokens read from TLS libraries'
//! plaintext. Real clients (the `openai` SDK on Python's OpenSSL, curl)
//! against the lab's TLS peer in a network namespace made by the test,
//! which answers OpenAI-shaped JSON and server-sent events with usage.
use tests::{
    Gatewatch, TestCgroup,
    lab::{self, NamingLab},
    privileged,
};

const REQUESTS: &str = "gatewatch_requests_total";
const TOKENS: &str = "gatewatch_tokens_total";
const OPENAI_DIRECT: &str = "https://api.openai.com/v1";

/// The `openai` SDK on one runtime.
#[derive(Clone, Copy, Debug)]
enum Sdk {
    /// Python's, on its ssl module (OpenSSL as a shared library).
    Python,
    /// The npm package on Node.js (OpenSSL linked into node, fed through
    /// memory BIOs).
    Node,
    /// Go's net/http and crypto/tls (no OpenSSL at all).
    Go,
}

/// A Go program from tests/scripts, built with Debian's Go into a
/// directory of its own.
fn go_build(script: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(tests::unique("go"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let bin = dir.join(script.trim_end_matches(".go"));
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(script);
    tests::run_ok(
        std::process::Command::new("go")
            .arg("build")
            .arg("-o")
            .arg(&bin)
            .arg(src)
            .current_dir(&dir)
            .env("GO111MODULE", "off"),
    );
    bin
}

/// The Go client, built once per test run.
fn go_client() -> &'static std::path::Path {
    static BIN: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| go_build("genai_client.go"))
}

impl Sdk {
    fn process(self) -> &'static str {
        match self {
            Sdk::Python => "python3",
            Sdk::Node => "node",
            Sdk::Go => "genai_client",
        }
    }
}

/// Runs the `openai` SDK making `calls` against `base_url`; asserts each
/// call succeeded.
fn sdk(lab: &NamingLab, runtime: Sdk, base_url: &str, calls: &[&str]) {
    let scripts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts");
    let mut cmd = match runtime {
        Sdk::Python => {
            let mut c = lab.client("python3");
            c.arg(scripts.join("genai_client.py"));
            c
        }
        Sdk::Node => {
            let mut c = lab.client("node");
            c.arg(scripts.join("genai_client.cjs"))
                .env("NODE_EXTRA_CA_CERTS", &lab::certs().cert);
            c
        }
        Sdk::Go => lab.client(&go_client().to_string_lossy()),
    };
    let out = cmd
        .arg(base_url)
        .args(calls)
        .env("CERT", &lab::certs().cert)
        .output()
        .unwrap_or_else(|e| panic!("run the {runtime:?} client: {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.lines().count() == calls.len(),
        "client failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in text.lines() {
        assert!(line.ends_with(" ok"), "a call failed: {text}");
    }
}

#[test]
fn the_python_openai_sdk_gives_exact_requests_models_and_tokens() {
    exact_requests_models_and_tokens(Sdk::Python);
}

#[test]
fn the_node_openai_sdk_gives_exact_requests_models_and_tokens() {
    exact_requests_models_and_tokens(Sdk::Node);
}

#[test]
fn a_go_client_gives_exact_requests_models_and_tokens() {
    exact_requests_models_and_tokens(Sdk::Go);
}

fn exact_requests_models_and_tokens(runtime: Sdk) {
    if !privileged() {
        return;
    }
    let lab = NamingLab::start(&["--tls-probes"]);
    let calls = ["chat", "stream", "embeddings", "chat"];
    match runtime {
        Sdk::Python | Sdk::Node => sdk(&lab, runtime, OPENAI_DIRECT, &calls),
        Sdk::Go => {
            // A Go program is probed when it first connects (its binary
            // is its TLS library): a first, non-AI call gets it probed.
            let warm_up = format!("nonai=https://{}/", lab::NON_AI.0);
            let mut all = vec![warm_up.as_str(), "pause"];
            all.extend(calls);
            sdk(&lab, runtime, OPENAI_DIRECT, &all);
        }
    }
    let direct = [
        ("route", "direct"),
        ("provider", "openai"),
        ("process", runtime.process()),
    ];
    let m = lab
        .gw
        .wait_for("four requests", |m| m.sum(REQUESTS, &direct) >= 4.0);
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut labels = direct.to_vec();
        labels.extend_from_slice(extra);
        labels
    };
    let chat = with(&[
        ("operation", "chat"),
        ("model", "gpt-4o"),
        ("status_class", "2xx"),
    ]);
    let stream = with(&[("operation", "chat"), ("model", "gpt-4o-mini")]);
    let embeddings = with(&[
        ("operation", "embeddings"),
        ("model", "text-embedding-3-small"),
    ]);
    let typed = |labels: &[(&'static str, &'static str)], t: &'static str| {
        let mut l = labels.to_vec();
        l.push(("type", t));
        m.sum(TOKENS, &l)
    };
    let got = [
        m.sum(REQUESTS, &chat),
        typed(&chat, "input"),
        typed(&chat, "output"),
        m.sum(REQUESTS, &stream),
        typed(&stream, "input"),
        typed(&stream, "output"),
        m.sum(REQUESTS, &embeddings),
        typed(&embeddings, "input"),
        typed(&embeddings, "output"),
    ];
    // The peer's usage: chat 11 in / 7 out, streamed 21 / 3, embeddings 8.
    assert_eq!(
        got,
        [2.0, 22.0, 14.0, 1.0, 21.0, 3.0, 1.0, 8.0, 0.0],
        "{}",
        m.text
    );
    let (status, body) = lab.gw.get("/api/v1/flows?route=direct");
    assert_eq!(status, 200);
    assert!(
        body.contains(r#""operation":"chat","route":"direct","method":"POST","path":"/v1/chat/completions","model":"gpt-4o","status":200,"input_tokens":11,"output_tokens":7"#),
        "flow records list their requests: {body}"
    );
    assert!(
        !body.contains("\"content\"") && !body.contains("\"hi\""),
        "nothing of the content is kept: {body}"
    );
    if matches!(runtime, Sdk::Python) {
        // The model after a 12 KiB prompt: one write the kernel copies in
        // several chunks.
        sdk(&lab, runtime, OPENAI_DIRECT, &["bigchat"]);
        lab.gw.wait_for("the long request", |m| {
            m.sum(
                REQUESTS,
                &[("model", "gpt-4o-long"), ("status_class", "2xx")],
            ) == 1.0
        });
    }
}

#[test]
fn non_ai_and_unprobed_tls_are_counted_without_requests() {
    if !privileged() {
        return;
    }
    let lab = NamingLab::start(&["--tls-probes"]);
    // Python's OpenSSL to a non-AI name, four requests on one connection:
    // its first call is copied, then the kernel is told to stop.
    lab.python(&format!(
        "import ssl, socket, os, time\n\
         ctx = ssl.create_default_context(cafile=os.environ['CERT'])\n\
         with socket.create_connection(('{0}', 443)) as s, ctx.wrap_socket(s, server_hostname='{0}') as t:\n\
         \x20   for i in range(4):\n\
         \x20       t.sendall(b'GET / HTTP/1.1\\r\\nHost: {0}\\r\\n\\r\\n')\n\
         \x20       got = b''\n\
         \x20       while not got.endswith(b'ok\\n'):\n\
         \x20           got += t.recv(1000)\n\
         \x20       time.sleep(0.5 if i == 0 else 0)\n",
        lab::NON_AI.0
    ));
    // gnutls-cli: a TLS library gatewatch does not probe, to a provider.
    let out = lab
        .client("sh")
        .arg("-c")
        .arg(format!(
            "printf 'GET /v1/models HTTP/1.1\\r\\nHost: {0}\\r\\nConnection: close\\r\\n\\r\\n' | \
             gnutls-cli --x509cafile {1} --logfile /dev/null {0}",
            lab::OPENAI.0,
            lab::certs().cert.display()
        ))
        .output()
        .expect("run gnutls-cli");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("HTTP/1.1 200"),
        "gnutls-cli failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let m = lab.gw.wait_for("both connections", |m| {
        m.sum("gatewatch_connections_total", &[("route", "other")]) >= 1.0
            && m.sum("gatewatch_connections_total", &[("route", "direct")]) >= 1.0
    });
    assert_eq!(m.sum(REQUESTS, &[]), 0.0, "{}", m.text);
    assert_eq!(
        m.sum("gatewatch_events_total", &[("kind", "tls_out")]),
        1.0,
        "the kernel stops copying a non-AI connection after its first call: {}",
        m.text
    );
}

#[test]
fn tls_probes_are_off_by_default_and_connections_count_the_same() {
    if !privileged() {
        return;
    }
    let lab = NamingLab::start(&[]);
    sdk(&lab, Sdk::Python, OPENAI_DIRECT, &["chat"]);
    let m = lab.gw.wait_for("the direct call", |m| {
        m.sum("gatewatch_connections_total", &[("route", "direct")]) >= 1.0
    });
    assert_eq!(m.sum(REQUESTS, &[]), 0.0, "{}", m.text);
    assert_eq!(m.sum("gatewatch_events_total", &[("kind", "tls_out")]), 0.0);
}

#[test]
fn tls_probes_mount_tracefs_where_the_host_has_not() {
    if !privileged() {
        return;
    }
    let cgroup = TestCgroup::new("tracefs");
    let gw = Gatewatch::start_without_tracefs(&cgroup, &["--tls-probes"]);
    let log = gw.log();
    assert!(
        log.contains("tracefs was not mounted; mounted it at /sys/kernel/tracing"),
        "gatewatch did not mount tracefs itself:\n{log}"
    );
    assert!(
        log.contains("TLS library files probed") && !log.contains("--tls-probes: off"),
        "--tls-probes did not come up on the tracefs it mounted:\n{log}"
    );
    let mounts = std::fs::read_to_string(format!("/proc/{}/mountinfo", gw.pid()))
        .expect("read gatewatch's mountinfo");
    assert!(
        mounts
            .lines()
            .any(|l| l.contains(" /sys/kernel/tracing ") && l.contains(" - tracefs ")),
        "no tracefs at /sys/kernel/tracing in gatewatch's mount namespace:\n{mounts}"
    );
}

#[test]
fn on_a_foundry_host_agent_service_calls_and_model_calls_get_their_own_routes() {
    if !privileged() {
        return;
    }
    let lab = NamingLab::start(&["--tls-probes"]);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/foundry_client.py");
    let out = lab
        .client("python3")
        .arg(script)
        .arg(lab::FOUNDRY.0)
        .env("CERT", &lab::certs().cert)
        .output()
        .expect("run python3");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ok",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = lab
        .gw
        .wait_for("four requests", |m| m.sum(REQUESTS, &[]) >= 4.0);
    let agent = |op| m.sum(REQUESTS, &[("route", "agent_platform"), ("operation", op)]);
    assert_eq!(
        [
            agent("create_agent"),
            agent("agent_api"),
            agent("invoke_agent")
        ],
        [1.0, 1.0, 1.0],
        "{}",
        m.text
    );
    let inference = [
        ("route", "direct"),
        ("operation", "chat"),
        ("model", "gpt-4o"),
        ("status_class", "2xx"),
    ];
    assert_eq!(m.sum(REQUESTS, &inference), 1.0, "{}", m.text);
    let mut input = inference.to_vec();
    input.push(("type", "input"));
    assert_eq!(m.sum(TOKENS, &input), 11.0, "{}", m.text);
    let (_, body) = lab.gw.get("/api/v1/flows");
    assert!(
        body.contains(r#""path":"/api/projects/{id}/threads/{id}/runs""#)
            && body.contains(r#""path":"/openai/deployments/{id}/chat/completions""#),
        "paths are kept without ids or query: {body}"
    );
}

#[test]
fn a_go_client_over_http2_gives_exact_requests_models_and_tokens() {
    if !privileged() {
        return;
    }
    let lab = NamingLab::start(&["--tls-probes"]);
    // Go's own server: HTTP/2 over TLS, in the lab's namespace (not in
    // the watched cgroup), beside the HTTP/1.1 peer on 443.
    let server = go_build("h2_server.go");
    let certs = lab::certs();
    let mut child = lab
        .ns
        .command(None, &server.to_string_lossy())
        .arg("[::]:8443")
        .arg(&certs.cert)
        .arg(&certs.key)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start h2_server");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("h2_server readiness");
    let _server = lab::ChildGuard(child);
    assert_eq!(line.trim(), "ready");
    let warm_up = format!("nonai=https://{}/", lab::NON_AI.0);
    let out = lab
        .client(&go_client().to_string_lossy())
        .arg("https://api.openai.com:8443/v1")
        .args([
            warm_up.as_str(),
            "pause",
            "chat",
            "stream",
            "embeddings",
            "chat",
        ])
        .env("CERT", &certs.cert)
        .env("H2", "1")
        .output()
        .expect("run the Go client");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().count() == 6 && text.lines().all(|l| l.ends_with(" ok")),
        "the calls: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let direct = [("route", "direct"), ("process", "genai_client")];
    let m = lab
        .gw
        .wait_for("four requests", |m| m.sum(REQUESTS, &direct) >= 4.0);
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut l = direct.to_vec();
        l.extend_from_slice(extra);
        l
    };
    let chat = with(&[
        ("operation", "chat"),
        ("model", "gpt-4o"),
        ("status_class", "2xx"),
    ]);
    let stream = with(&[("operation", "chat"), ("model", "gpt-4o-mini")]);
    let embeddings = with(&[
        ("operation", "embeddings"),
        ("model", "text-embedding-3-small"),
    ]);
    let typed = |labels: &[(&'static str, &'static str)], t: &'static str| {
        let mut l = labels.to_vec();
        l.push(("type", t));
        m.sum(TOKENS, &l)
    };
    assert_eq!(
        [
            m.sum(REQUESTS, &chat),
            typed(&chat, "input"),
            typed(&chat, "output"),
            m.sum(REQUESTS, &stream),
            typed(&stream, "input"),
            typed(&stream, "output"),
            m.sum(REQUESTS, &embeddings),
            typed(&embeddings, "input"),
        ],
        [2.0, 22.0, 14.0, 1.0, 21.0, 3.0, 1.0, 8.0],
        "{}",
        m.text
    );
}

#[test]
fn the_genai_metrics_reach_an_otlp_receiver_as_otel_names() {
    if !privileged() {
        return;
    }
    let port = tests::free_port();
    let receiver =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/otlp_receiver.py");
    let mut child = std::process::Command::new("python3")
        .arg(receiver)
        .arg(port.to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start otlp_receiver.py");
    let stdout = child.stdout.take().expect("receiver stdout");
    let _receiver = lab::ChildGuard(child);
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    assert_eq!(
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .as_deref(),
        Ok("ready"),
        "the receiver did not start"
    );
    let endpoint = format!("http://127.0.0.1:{port}");
    let lab = NamingLab::start(&[
        "--tls-probes",
        "--otlp-endpoint",
        &endpoint,
        "--otlp-interval-secs",
        "1",
    ]);
    sdk(&lab, Sdk::Python, OPENAI_DIRECT, &["chat", "embeddings"]);
    // Cumulative points arrive on every export; wait for the ones that
    // carry both calls.
    let wanted =
        |p: &serde_json::Value, metric: &str, op: &str, model: &str, kind: Option<&str>| {
            let a = &p["attributes"];
            p["metric"] == metric
                && a["gen_ai.operation.name"] == op
                && a["gen_ai.request.model"] == model
                && a["gen_ai.provider.name"] == "openai"
                && a["server.address"] == "api.openai.com"
                && a["process.executable.name"] == "python3"
                && kind.is_none_or(|k| a["gen_ai.token.type"] == k)
                && p["temporality"] == 2
        };
    let deadline = std::time::Instant::now() + tests::WAIT;
    let mut seen: Vec<serde_json::Value> = Vec::new();
    let found = |seen: &[serde_json::Value], metric, op, model, kind, count: u64, sum: f64| {
        seen.iter().any(|p| {
            wanted(p, metric, op, model, kind)
                && p["count"] == count
                && p["sum"].as_f64() == Some(sum)
        })
    };
    let all = |seen: &[serde_json::Value]| {
        found(
            seen,
            "gen_ai.client.token.usage",
            "chat",
            "gpt-4o",
            Some("input"),
            1,
            11.0,
        ) && found(
            seen,
            "gen_ai.client.token.usage",
            "chat",
            "gpt-4o",
            Some("output"),
            1,
            7.0,
        ) && found(
            seen,
            "gen_ai.client.token.usage",
            "embeddings",
            "text-embedding-3-small",
            Some("input"),
            1,
            8.0,
        ) && seen.iter().any(|p| {
            wanted(
                p,
                "gen_ai.client.operation.duration",
                "chat",
                "gpt-4o",
                None,
            ) && p["unit"] == "s"
                && p["count"] == 1
        })
    };
    while !all(&seen) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => seen.push(serde_json::from_str(&line).expect("receiver JSON line")),
            Err(_) => panic!(
                "the receiver did not get the GenAI points; it got:\n{}\ngatewatch log:\n{}\n{}",
                seen.iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join("\n"),
                lab.gw.log(),
                lab.gw
                    .metrics()
                    .text
                    .lines()
                    .filter(
                        |l| l.starts_with("gatewatch_otlp") || l.starts_with("gatewatch_requests")
                    )
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        }
    }
    let m = lab.gw.metrics();
    assert!(
        m.sum("gatewatch_otlp_exports_total", &[("outcome", "ok")]) >= 1.0
            && m.sum("gatewatch_otlp_exports_total", &[("outcome", "error")]) == 0.0,
        "{}",
        m.text
    );
}
