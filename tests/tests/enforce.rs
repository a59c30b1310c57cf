//! `--enforce`: the gateway as the only way to a model. Real clients (the
//! `openai` SDK, Python's ssl module, curl) against the lab's TLS peer in a
//! network namespace made by the test; each asserts how fast the client
//! learns it was stopped, and what gatewatch counted.
use std::time::{Duration, Instant};

use tests::{
    lab::{self, NamingLab},
    privileged,
};

const DENIED: &str = "gatewatch_denied_total";

fn script() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/enforce_client.py")
}

/// Runs `enforce_client.py args` as a client of `lab`: per call, what the
/// client saw (`ok`, an exception class or an errno name) and the seconds
/// it took.
fn calls(lab: &NamingLab, args: &[&str]) -> Vec<(String, f64)> {
    let out = lab
        .client("python3")
        .arg(script())
        .args(args)
        .env("CERT", &lab::certs().cert)
        .output()
        .expect("run python3");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "client failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .map(|line| {
            let (what, secs) = line
                .split_once(' ')
                .unwrap_or_else(|| panic!("bad client line {line:?}"));
            let secs = secs
                .parse()
                .unwrap_or_else(|_| panic!("no timing in {line:?}"));
            (what.to_owned(), secs)
        })
        .collect()
}

/// The `openai` SDK calling `base_url` once from a process named `comm`.
fn sdk_call(lab: &NamingLab, base_url: &str, comm: &str) -> (String, f64) {
    let mut out = calls(lab, &["sdk", base_url, comm]);
    assert_eq!(out.len(), 1, "one call: {out:?}");
    out.remove(0)
}

const OPENAI_DIRECT: &str = "https://api.openai.com/v1";

fn denied(lab: &NamingLab, labels: &[(&str, &str)], want: f64) {
    lab.gw
        .wait_for(&format!("{want} denials with {labels:?}"), |m| {
            m.sum(DENIED, labels) >= want
        });
}

#[test]
fn deny_stops_the_sdk_calling_a_provider_directly_within_a_second() {
    if !privileged() {
        return;
    }
    let lab = NamingLab::start(&["--enforce", "deny"]);
    let (what, secs) = sdk_call(&lab, OPENAI_DIRECT, "agent");
    assert_eq!(what, "APIConnectionError", "the call must fail to connect");
    assert!(
        secs < 1.0,
        "the client learned it was stopped after {secs} s; gatewatch log:\n{}\n{}",
        tests::hardening::tail(&lab.gw.log(), 40),
        lab.gw.metrics().text
    );
    denied(
        &lab,
        &[
            ("stage", "first_bytes"),
            ("mode", "deny"),
            ("route", "direct"),
            ("provider", "openai"),
            ("process", "agent"),
        ],
        1.0,
    );
    // A new process calling twice: its first call is held until gatewatch
    // judges it and stopped at its first bytes; its second connect() is
    // refused, as the address came only in api.openai.com's DNS answer.
    let out = calls(&lab, &["sdk", OPENAI_DIRECT, "agent", "2"]);
    for (what, secs) in &out {
        assert_eq!(what, "APIConnectionError", "{out:?}");
        assert!(*secs < 1.0, "{out:?}");
    }
    denied(&lab, &[("stage", "connect"), ("mode", "deny")], 1.0);
    let m = lab.gw.metrics();
    assert_eq!(
        m.sum(DENIED, &[("stage", "first_bytes"), ("mode", "deny")]),
        2.0,
        "{}",
        m.text
    );
    let (status, body) = lab.gw.get("/api/v1/flows?route=direct");
    assert_eq!(status, 200);
    assert!(
        body.contains(r#""denied":{"stage":"first_bytes","mode":"deny"}"#),
        "flow records carry the decision: {body}"
    );
}

#[test]
fn gateway_workloads_and_the_allow_list_still_reach_providers_under_deny() {
    if !privileged() {
        return;
    }
    let lab = NamingLab::start(&[
        "--enforce",
        "deny",
        "--gateway-workload",
        "process=litellm",
        "--allow-direct",
        "process=batch-eval",
    ]);
    for comm in ["litellm", "batch-eval"] {
        // The first call of a process gatewatch has not judged waits for
        // one retransmission of its ClientHello; later calls do not.
        let out = calls(&lab, &["sdk", OPENAI_DIRECT, comm, "2"]);
        for (what, _) in &out {
            assert_eq!(what, "ok", "{comm} may call the provider directly: {out:?}");
        }
        eprintln!("{comm}: first call {} s, second {} s", out[0].1, out[1].1);
    }
    let (what, _) = sdk_call(&lab, OPENAI_DIRECT, "agent");
    assert_eq!(what, "APIConnectionError");
    let m = lab.gw.metrics();
    assert_eq!(m.sum(DENIED, &[]), 1.0, "{}", m.text);
    let (status, body) = lab.gw.get("/api/v1/flows?denied=true");
    assert_eq!(status, 200);
    assert!(
        body.contains(r#""process":"agent""#)
            && body.contains(r#""denied":{"stage":"first_bytes","mode":"deny"}"#)
            && !body.contains(r#""process":"litellm""#),
        "only the agent's flow is listed as denied: {body}"
    );
    let (_, config) = lab.gw.get("/api/v1/config");
    assert!(
        config.contains(r#""enforce":"deny""#)
            && config.contains(r#""allow_direct":["process=batch-eval"]"#),
        "the policy is in the effective configuration: {config}"
    );
    assert_eq!(
        m.sum(
            "gatewatch_connections_total",
            &[("route", "gateway_upstream"), ("process", "litellm")]
        ),
        2.0,
        "{}",
        m.text
    );
}

#[test]
fn a_non_ai_name_on_the_same_address_passes_while_the_ai_name_is_stopped() {
    if !privileged() {
        return;
    }
    let lab = NamingLab::start(&["--enforce", "deny"]);
    // Both names on the provider's address, as behind a shared CDN; the
    // AI name twice: first held while the process is judged, then dropped
    // by the kernel at once.
    let out = calls(
        &lab,
        &[
            "tls",
            lab::OPENAI.1,
            lab::NON_AI.0,
            lab::OPENAI.0,
            lab::OPENAI.0,
        ],
    );
    assert_eq!(out.len(), 3, "{out:?}");
    assert_eq!(
        out[0].0, "ok",
        "the non-AI name on the shared address passes"
    );
    for (what, secs) in &out[1..] {
        assert_ne!(what, "ok", "the AI name is stopped: {out:?}");
        assert!(*secs < 1.0, "stopped after {secs} s: {out:?}");
    }
    assert!(
        lab.gw.log().contains("kernel Denied"),
        "the second AI call was dropped by the kernel"
    );
    denied(
        &lab,
        &[("stage", "first_bytes"), ("provider", "openai")],
        1.0,
    );
}

#[test]
fn a_hard_coded_address_is_stopped_at_its_first_bytes_and_refused_at_connect_after() {
    if !privileged() {
        return;
    }
    // The provider's address as a user rule: the second connect() of a
    // process already judged is refused before any packet leaves.
    let provider = format!("openai={}:443", lab::OPENAI.1);
    let lab = NamingLab::start(&["--enforce", "deny", "--provider", &provider]);
    let out = calls(&lab, &["tls", lab::OPENAI.1, lab::OPENAI.0, lab::OPENAI.0]);
    assert_eq!(out.len(), 2, "{out:?}");
    assert_ne!(out[0].0, "ok", "the first call is stopped");
    assert!(out[0].1 < 1.0, "first call stopped after {} s", out[0].1);
    assert_eq!(out[1].0, "EPERM", "the second connect() is refused");
    denied(&lab, &[("stage", "connect"), ("mode", "deny")], 1.0);
    denied(&lab, &[("stage", "first_bytes"), ("mode", "deny")], 1.0);
}

#[test]
fn an_http_host_naming_a_model_endpoint_is_stopped_before_it_leaves() {
    if !privileged() {
        return;
    }
    // Plain HTTP to the provider's address, no DNS: only the request
    // head's Host names where it goes (as through a forward proxy).
    let lab = NamingLab::start(&["--enforce", "deny"]);
    let target = format!("{}:{}", lab::OPENAI.1, lab::HTTP_GATEWAY_PORT);
    let out = calls(
        &lab,
        &["http", &target, lab::NON_AI.0, lab::OPENAI.0, lab::OPENAI.0],
    );
    assert_eq!(out.len(), 3, "{out:?}");
    assert_eq!(out[0].0, "ok", "a non-AI Host passes: {out:?}");
    for (what, secs) in &out[1..] {
        // The server would have answered at once: no answer means the
        // request never reached it.
        assert_ne!(what, "ok", "the request reached the server: {out:?}");
        assert_ne!(
            what, "bad-answer",
            "the request reached the server: {out:?}"
        );
        assert!(
            *secs < 1.0,
            "the client learned it was stopped after {secs} s: {out:?}\n{}",
            tests::hardening::tail(&lab.gw.log(), 40)
        );
    }
    denied(
        &lab,
        &[
            ("stage", "first_bytes"),
            ("mode", "deny"),
            ("provider", "openai"),
            ("route", "direct"),
        ],
        2.0,
    );
}

#[test]
fn audit_counts_what_deny_would_stop_and_stops_nothing() {
    if !privileged() {
        return;
    }
    let lab = NamingLab::start(&[
        "--enforce",
        "audit",
        "--gateway-workload",
        "process=litellm",
    ]);
    let (what, _) = sdk_call(&lab, OPENAI_DIRECT, "agent");
    assert_eq!(what, "ok", "audit never stops a call");
    let (what, _) = sdk_call(&lab, OPENAI_DIRECT, "litellm");
    assert_eq!(what, "ok");
    denied(&lab, &[("mode", "audit"), ("process", "agent")], 1.0);
    let m = lab.gw.metrics();
    assert_eq!(m.sum(DENIED, &[]), 1.0, "only the agent's call: {}", m.text);
    assert_eq!(
        m.sum(DENIED, &[("mode", "deny")]),
        0.0,
        "nothing is counted as stopped: {}",
        m.text
    );
}

#[test]
fn nothing_stays_denied_after_gatewatch_stops_or_is_killed() {
    if !privileged() {
        return;
    }
    let mut lab = NamingLab::start(&["--enforce", "deny"]);
    let (what, _) = sdk_call(&lab, OPENAI_DIRECT, "agent");
    assert_eq!(what, "APIConnectionError");
    lab.gw.stop();
    let (what, _) = sdk_call(&lab, OPENAI_DIRECT, "agent");
    assert_eq!(what, "ok", "after SIGTERM the call goes through");

    lab.gw = tests::Gatewatch::start(&lab.cg, &["--enforce", "deny"]);
    let (what, _) = sdk_call(&lab, OPENAI_DIRECT, "agent");
    assert_eq!(what, "APIConnectionError");
    let pid = lab.gw.pid();
    // SAFETY: signalling the daemon this test started.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::path::Path::new(&format!("/proc/{pid}/stat")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
    {
        assert!(Instant::now() < deadline, "gatewatch did not die");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (what, _) = sdk_call(&lab, OPENAI_DIRECT, "agent");
    assert_eq!(what, "ok", "after SIGKILL the call goes through");
}

/// LiteLLM's proxy port in the lab, and its master key.
const LITELLM_PORT: u16 = 4001;
const LITELLM_KEY: &str = "sk-gatewatch-test";

/// A LiteLLM proxy in the lab's namespace and watched cgroup, forwarding
/// `gpt-4o` to the lab's api.openai.com; ready when its liveness answers.
fn litellm(lab: &NamingLab) -> lab::ChildGuard {
    let dir = std::env::temp_dir().join(tests::unique("litellm"));
    std::fs::create_dir_all(&dir).expect("litellm dir");
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "model_list:\n\
             \x20 - model_name: gpt-4o\n\
             \x20   litellm_params:\n\
             \x20     model: openai/gpt-4o\n\
             \x20     api_base: https://{}/v1\n\
             \x20     api_key: test\n\
             litellm_settings:\n\
             \x20 ssl_verify: {}\n",
            lab::OPENAI.0,
            lab::certs().cert.display()
        ),
    )
    .expect("write litellm config");
    let log = std::fs::File::create(dir.join("litellm.log")).expect("litellm log");
    let child = lab
        .client(
            tests::pip_program("litellm", "litellm[proxy]")
                .to_str()
                .expect("utf-8 path"),
        )
        .arg("--config")
        .arg(&config)
        .args(["--host", "127.0.0.1", "--port", &LITELLM_PORT.to_string()])
        .env("LITELLM_MASTER_KEY", LITELLM_KEY)
        .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        .env("SSL_CERT_FILE", &lab::certs().cert)
        .env("NO_PROXY", "*")
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start litellm");
    let guard = lab::ChildGuard(child);
    let ready = tests::hardening::eventually(Duration::from_secs(90), || {
        lab.ns.enter(|| {
            tests::http_get(
                format!("127.0.0.1:{LITELLM_PORT}").parse().expect("addr"),
                "/health/liveliness",
            )
            .is_ok_and(|(status, _)| status == 200)
        })
    });
    assert!(
        ready,
        "litellm did not start within 90 s:\n{}",
        std::fs::read_to_string(dir.join("litellm.log")).unwrap_or_default()
    );
    guard
}

#[test]
fn the_sdk_through_litellm_succeeds_while_its_direct_call_is_stopped() {
    if !privileged() {
        return;
    }
    let gateway = format!("litellm=127.0.0.1:{LITELLM_PORT}");
    let lab = NamingLab::start(&[
        "--enforce",
        "deny",
        "--gateway",
        &gateway,
        "--gateway-workload",
        "process=litellm",
    ]);
    let _proxy = litellm(&lab);
    let via_gateway = format!("http://127.0.0.1:{LITELLM_PORT}/v1");
    let out = calls(&lab, &["sdk-key", &via_gateway, "agent", LITELLM_KEY]);
    assert_eq!(out[0].0, "ok", "the call through LiteLLM succeeds: {out:?}");
    let (what, secs) = sdk_call(&lab, OPENAI_DIRECT, "agent");
    assert_eq!(what, "APIConnectionError", "the direct call is stopped");
    assert!(secs < 1.0, "stopped after {secs} s");
    let m = lab
        .gw
        .wait_for("LiteLLM's upstream call and the denial", |m| {
            m.sum(
                "gatewatch_connections_total",
                &[("route", "gateway_upstream"), ("process", "litellm")],
            ) >= 1.0
                && m.sum(DENIED, &[("process", "agent")]) >= 1.0
        });
    assert_eq!(
        m.sum(
            "gatewatch_connections_total",
            &[("route", "gateway"), ("process", "agent")]
        ),
        1.0,
        "{}",
        m.text
    );
    assert_eq!(m.sum(DENIED, &[]), 1.0, "only the direct call: {}", m.text);
}
