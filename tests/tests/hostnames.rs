//! Hostnames: every connection is named by what its client asked for (TLS
//! SNI, HTTP Host, DNS answers) and classified against the built-in
//! catalogue, with real clients, a real DNS server and real TLS peers in a
//! network namespace made by the test.
use tests::{
    Metrics,
    lab::{self, NamingLab},
    privileged, run_ok,
};

const CLIENT: &str = env!("CARGO_BIN_EXE_gwclient");
const CONNECTIONS: &str = "gatewatch_connections_total";

fn wait_count(lab: &NamingLab, labels: &[(&str, &str)], want: f64) -> Metrics {
    lab.gw
        .wait_for(&format!("{want} connections with {labels:?}"), |m| {
            m.sum(CONNECTIONS, labels) >= want
        })
}

#[test]
fn openai_by_sni_is_direct_with_no_configuration() {
    if !privileged() {
        return;
    }
    let lab = NamingLab::start(&[]);
    let resolve = format!("{}:443:{}", lab::OPENAI.0, lab::OPENAI.1);
    lab.curl(&["--resolve", &resolve, "https://api.openai.com/v1/models"]);
    let labels = [
        ("route", "direct"),
        ("provider", "openai"),
        ("endpoint", "api.openai.com:443"),
        ("name_source", "sni"),
        ("process", "curl"),
    ];
    let m = wait_count(&lab, &labels, 1.0);
    assert_eq!(
        m.sum(CONNECTIONS, &[]),
        1.0,
        "one connection, counted once:\n{}",
        m.text
    );
}

#[test]
fn openai_over_ipv6_is_direct() {
    if !privileged() {
        return;
    }
    let lab = NamingLab::start(&[]);
    lab.curl(&[
        "-6",
        "--resolve",
        "api.openai.com:443:[::1]",
        "https://api.openai.com/v1/models",
    ]);
    wait_count(
        &lab,
        &[
            ("route", "direct"),
            ("provider", "openai"),
            ("name_source", "sni"),
        ],
        1.0,
    );
}

#[test]
fn configured_gateway_is_gateway_for_the_openai_sdk() {
    if !privileged() {
        return;
    }
    let lab = NamingLab::start(&["--gateway", "contoso-apim=contoso-apim.azure-api.net"]);
    lab.python(
        "import os, httpx, openai\n\
         c = openai.OpenAI(base_url='https://contoso-apim.azure-api.net/openai/v1', api_key='test',\n\
             http_client=httpx.Client(verify=os.environ['CERT']), max_retries=0)\n\
         r = c.chat.completions.create(model='gpt-4o', messages=[{'role': 'user', 'content': 'hi'}])\n\
         assert r.choices[0].message.content == 'hi'\n",
    );
    let labels = [
        ("route", "gateway"),
        ("provider", "contoso-apim"),
        ("endpoint", "contoso-apim.azure-api.net:443"),
        ("name_source", "sni"),
    ];
    let m = wait_count(&lab, &labels, 1.0);
    assert_eq!(
        m.sum(CONNECTIONS, &[("route", "direct")]),
        0.0,
        "{}",
        m.text
    );
}

#[test]
fn azure_openai_name_stays_direct_although_its_cname_chain_ends_in_apim() {
    if !privileged() {
        return;
    }
    // Even with catalogue gateways on, the chain's *.azure-api.net tail must not count.
    let lab = NamingLab::start(&["--catalog-gateways"]);
    // TLS through the system resolver: SNI names it.
    lab.curl(&["https://contoso.openai.azure.com/openai/models"]);
    // No payload at all: only the DNS answer names it.
    lab.python("import socket; socket.create_connection(('contoso.openai.azure.com', 443), timeout=3).close()");
    let m = wait_count(
        &lab,
        &[("route", "direct"), ("provider", "azure.ai.openai")],
        2.0,
    );
    let by_dns = [
        ("route", "direct"),
        ("endpoint", "contoso.openai.azure.com:443"),
        ("name_source", "dns"),
    ];
    assert_eq!(m.sum(CONNECTIONS, &by_dns), 1.0, "{}", m.text);
    assert_eq!(
        m.sum(CONNECTIONS, &[("route", "gateway")]),
        0.0,
        "CNAME tail must not decide:\n{}",
        m.text
    );
}

#[test]
fn a_name_known_only_from_dns_names_plain_tcp() {
    if !privileged() {
        return;
    }
    let lab = NamingLab::start(&[]);
    lab.python(
        "import socket; socket.create_connection(('api.anthropic.com', 443), timeout=3).close()",
    );
    let labels = [
        ("route", "direct"),
        ("provider", "anthropic"),
        ("endpoint", "api.anthropic.com:443"),
        ("name_source", "dns"),
    ];
    wait_count(&lab, &labels, 1.0);
}

#[test]
fn plain_http_gateway_is_named_by_host_header() {
    if !privileged() {
        return;
    }
    let lab = NamingLab::start(&["--gateway", "litellm=litellm.ai-gateway.svc:4000"]);
    let resolve = format!("{}:4000:{}", lab::LITELLM.0, lab::LITELLM.1);
    run_ok(
        lab.client("curl")
            .args([
                "-sS",
                "-o",
                "/dev/null",
                "--max-time",
                "5",
                "--resolve",
                &resolve,
            ])
            .arg(format!(
                "http://{}:{}/v1/models",
                lab::LITELLM.0,
                lab::HTTP_GATEWAY_PORT
            )),
    );
    let labels = [
        ("route", "gateway"),
        ("provider", "litellm"),
        ("endpoint", "litellm.ai-gateway.svc:4000"),
        ("name_source", "http_host"),
    ];
    wait_count(&lab, &labels, 1.0);
}

#[test]
fn an_http_request_head_split_over_segments_is_named_by_its_host_header() {
    if !privileged() {
        return;
    }
    let lab = NamingLab::start(&["--gateway", "litellm=litellm.ai-gateway.svc:4000"]);
    let head = "POST /v1/chat/completions HTTP/1.1\\r\\nUser-Agent: split-test\\r\\nHost: litellm.ai-gateway.svc:4000\\r\\n\\r\\n";
    let target = format!("{}:{}", lab::LITELLM.1, lab::HTTP_GATEWAY_PORT);
    run_ok(
        lab.client(CLIENT)
            .args(["--send", head, "--split", "3", "--gap-ms", "30", &target]),
    );
    let labels = [
        ("route", "gateway"),
        ("provider", "litellm"),
        ("name_source", "http_host"),
    ];
    wait_count(&lab, &labels, 1.0);
}

#[test]
fn ordinary_https_stays_other_without_per_destination_detail() {
    if !privileged() {
        return;
    }
    let lab = NamingLab::start(&[]);
    let resolve = format!("{}:443:{}", lab::NON_AI.0, lab::NON_AI.1);
    lab.curl(&["--resolve", &resolve, "https://www.example.org/"]);
    let m = wait_count(&lab, &[("route", "other")], 1.0);
    assert_eq!(
        m.sum(
            CONNECTIONS,
            &[("route", "other"), ("endpoint", ""), ("provider", "")]
        ),
        1.0,
        "{}",
        m.text
    );
    assert_eq!(m.sum(CONNECTIONS, &[]), 1.0, "{}", m.text);
}

/// A real ClientHello (from Python's ssl module, no network) for `host`.
fn client_hello(host: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(tests::unique("hello"));
    let code = format!(
        "import ssl, sys\n\
         ctx = ssl.create_default_context()\n\
         i, o = ssl.MemoryBIO(), ssl.MemoryBIO()\n\
         s = ctx.wrap_bio(i, o, server_hostname='{host}')\n\
         try:\n    s.do_handshake()\n\
         except ssl.SSLWantReadError:\n    pass\n\
         open(sys.argv[1], 'wb').write(o.read())\n"
    );
    run_ok(
        std::process::Command::new("python3")
            .args(["-c", &code])
            .arg(&path),
    );
    path
}

#[test]
fn client_hello_split_over_several_segments_is_reassembled() {
    if !privileged() {
        return;
    }
    let lab = NamingLab::start(&[]);
    let hello = client_hello(lab::ANTHROPIC.0);
    let len = std::fs::metadata(&hello).expect("hello file").len();
    assert!(len > 200, "ClientHello of {len} bytes");
    // Four writes with TCP_NODELAY and a pause: four segments, the SNI
    // extension after the first.
    let target = format!("{}:443", lab::ANTHROPIC.1);
    run_ok(
        lab.client(CLIENT)
            .arg("--send-file")
            .arg(&hello)
            .args(["--split", "4", "--gap-ms", "30", &target]),
    );
    // A lowered MTU: the stack splits a single write into segments.
    lab.ns.ip(&["link", "set", "lo", "mtu", "300"]);
    run_ok(
        lab.client(CLIENT)
            .arg("--send-file")
            .arg(&hello)
            .arg(&target),
    );
    let labels = [
        ("route", "direct"),
        ("provider", "anthropic"),
        ("endpoint", "api.anthropic.com:443"),
        ("name_source", "sni"),
    ];
    let m = wait_count(&lab, &labels, 2.0);
    assert_eq!(
        m.sum("gatewatch_parse_errors_total", &[]),
        0.0,
        "{}",
        m.text
    );
    let _ = std::fs::remove_file(hello);
}
