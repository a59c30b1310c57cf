//! Operator experience: the JSON API and the CLI that reads it (`flows`,
//! `flows --follow`, `top`), errors that say what to do, completions, and
//! a /metrics exposition that promtool accepts.
use std::{
    io::{BufRead as _, BufReader, Write as _},
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use tests::{
    Gatewatch, Listener, TestCgroup, WAIT, free_port, gatewatch_bin, lab::ChildGuard, privileged,
    run_ok,
};

const CLIENT: &str = env!("CARGO_BIN_EXE_gwclient");

/// gatewatch with a provider and a gateway on loopback, and `direct`
/// direct plus `gateway` gateway connections already counted.
struct Scene {
    gw: Gatewatch,
    cg: TestCgroup,
    provider: Listener,
    _gateway: Listener,
}

fn scene(direct: usize, gateway: usize) -> Scene {
    let provider = Listener::bind("127.0.0.2:0");
    let gateway_l = Listener::bind("127.0.0.3:0");
    let cg = TestCgroup::new("op");
    let gw = Gatewatch::start(
        &cg,
        &[
            "--provider",
            &format!("openai={}", provider.addr),
            "--gateway",
            &format!("corp={}", gateway_l.addr),
        ],
    );
    if direct > 0 {
        run_ok(
            cg.command(CLIENT)
                .args(["--count", &direct.to_string()])
                .arg(provider.addr.to_string()),
        );
    }
    if gateway > 0 {
        run_ok(
            cg.command(CLIENT)
                .args(["--count", &gateway.to_string()])
                .arg(gateway_l.addr.to_string()),
        );
    }
    let want = (direct + gateway) as f64;
    gw.wait_for("the scene's connections", |m| {
        m.sum("gatewatch_connections_total", &[]) >= want
    });
    Scene {
        gw,
        cg,
        provider,
        _gateway: gateway_l,
    }
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(gatewatch_bin())
        .args(args)
        .output()
        .expect("run gatewatch CLI")
}

#[test]
fn the_flows_api_lists_recent_flows_and_filters_them() {
    if !privileged() {
        return;
    }
    let s = scene(2, 1);
    let (code, body) = s.gw.get("/api/v1/flows");
    assert_eq!(code, 200, "{body}");
    let all = json(&body);
    let flows = all.as_array().expect("an array of flows");
    assert_eq!(flows.len(), 3, "{body}");
    let direct: Vec<_> = flows.iter().filter(|f| f["route"] == "direct").collect();
    assert_eq!(direct.len(), 2, "{body}");
    assert_eq!(direct[0]["provider"], "openai");
    assert_eq!(direct[0]["endpoint"], s.provider.addr.to_string());
    assert_eq!(direct[0]["process"], "gwclient");
    assert!(
        direct[0]["time_unix_ms"].as_u64().is_some_and(|t| t > 0),
        "{body}"
    );

    let (_, body) = s.gw.get("/api/v1/flows?route=gateway&limit=10");
    let gateway = json(&body);
    assert_eq!(gateway.as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(gateway[0]["provider"], "corp");
    let (_, body) = s.gw.get("/api/v1/flows?route=direct&limit=1");
    assert_eq!(
        json(&body).as_array().map(Vec::len),
        Some(1),
        "limit: {body}"
    );

    let (code, body) = s.gw.get("/api/v1/flows?rout=direct");
    assert_eq!(code, 400, "a typo is a clear error: {body}");
    assert!(body.contains("rout") && body.contains("route"), "{body}");
    let (code, body) = s.gw.get("/api/v1/flows?route=sideways");
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("sideways") && body.contains("direct"),
        "{body}"
    );
}

#[test]
fn summary_and_config_describe_what_the_daemon_sees_and_uses() {
    if !privileged() {
        return;
    }
    let s = scene(3, 1);
    let (_, body) = s.gw.get("/api/v1/summary");
    let rows = json(&body);
    assert_eq!(rows[0]["route"], "direct", "most direct first: {body}");
    assert_eq!(rows[0]["connections"], 3, "{body}");
    let (_, body) = s.gw.get("/api/v1/config");
    let config = json(&body);
    let rules = config["rules"].as_array().expect("rules");
    assert!(
        rules
            .iter()
            .any(|r| r["provider"] == "openai" && r["kind"] == "model"),
        "{body}"
    );
    assert!(
        config["catalog"]["entries"]
            .as_u64()
            .is_some_and(|n| n >= 40),
        "{body}"
    );
}

#[test]
fn flows_cli_prints_a_table_in_80_columns_or_json_lines() {
    if !privileged() {
        return;
    }
    let s = scene(2, 1);
    let addr = s.gw.addr.to_string();
    let out = cli(&["flows", "--addr", &addr]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "header and three flows:\n{text}");
    assert!(
        lines[0].starts_with("TIME") && lines.iter().all(|l| l.chars().count() <= 80),
        "{text}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains(" direct ") && l.contains("openai"))
            .count(),
        2,
        "{text}"
    );

    let out = cli(&[
        "flows", "--addr", &addr, "--output", "json", "--route", "gateway",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    let objects: Vec<serde_json::Value> = text.lines().map(json).collect();
    assert_eq!(objects.len(), 1, "{text}");
    assert_eq!(objects[0]["provider"], "corp");
}

#[test]
fn flows_follow_streams_each_new_connection() {
    if !privileged() {
        return;
    }
    let s = scene(0, 0);
    let mut follower = Command::new(gatewatch_bin());
    follower
        .args([
            "flows",
            "--follow",
            "--output",
            "json",
            "--route",
            "direct",
            "--addr",
            &s.gw.addr.to_string(),
        ])
        .stdout(Stdio::piped());
    let mut follower = ChildGuard(follower.spawn().expect("start flows --follow"));
    let stdout = follower.0.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // The stream only carries flows counted after it connected: keep
    // connecting until the first line arrives.
    let deadline = Instant::now() + WAIT;
    let line = loop {
        run_ok(s.cg.command(CLIENT).arg(s.provider.addr.to_string()));
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
            break line;
        }
        assert!(Instant::now() < deadline, "flows --follow printed nothing");
    };
    let flow = json(&line);
    assert_eq!(
        (flow["route"].as_str(), flow["provider"].as_str()),
        (Some("direct"), Some("openai")),
        "{line}"
    );
}

#[test]
fn top_once_ranks_workloads_by_direct_traffic() {
    if !privileged() {
        return;
    }
    let s = scene(2, 5);
    let out = cli(&["top", "--once", "--addr", &s.gw.addr.to_string()]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("WORKLOAD"), "{text}");
    assert!(
        lines[1].contains("direct") && lines[1].contains("openai"),
        "direct first:\n{text}"
    );
    assert!(
        lines[1].trim_end().ends_with("29%"),
        "2 of 7 connections direct:\n{text}"
    );
}

#[test]
fn cli_says_what_to_do_when_no_daemon_answers() {
    let addr = format!("127.0.0.1:{}", free_port());
    for args in [
        vec!["flows", "--addr", &addr],
        vec!["top", "--once", "--addr", &addr],
    ] {
        let out = cli(&args);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&addr) && stderr.contains("gatewatch run") && stderr.contains("--addr"),
            "{stderr}"
        );
        assert!(out.stdout.is_empty(), "no header before the error: {out:?}");
    }
}

#[test]
fn completions_and_version_print() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run_ok(Command::new(gatewatch_bin()).args(["completions", shell]));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("gatewatch") && text.contains("flows"),
            "{shell} completions:\n{text}"
        );
    }
    let out = run_ok(Command::new(gatewatch_bin()).arg("version"));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("gatewatch "),
        "{out:?}"
    );
    let out = run_ok(Command::new(gatewatch_bin()).args(["classify", "api.openai.com", "--json"]));
    let verdict = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(
        (verdict["route"].as_str(), verdict["provider"].as_str()),
        (Some("direct"), Some("openai"))
    );
}

#[test]
fn metrics_exposition_passes_promtool_check_metrics() {
    if !privileged() {
        return;
    }
    let s = scene(1, 1);
    let (_, text) = s.gw.get("/metrics");
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (cargo xtask install)");
    promtool
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("feed promtool");
    let out = promtool.wait_with_output().expect("promtool");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool check metrics:\n{report}\n{text}"
    );
}
