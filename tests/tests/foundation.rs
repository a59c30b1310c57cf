//! Foundation: real connects from a test cgroup are captured in the kernel,
//! classified by IP rules and counted in /metrics with exact labels; SIGTERM
//! detaches everything; bad config attaches nothing.
use std::process::Command;

use tests::{
    Gatewatch, Listener, TestCgroup, attached_programs, gatewatch_bin, privileged, run_ok, unique,
};

const CLIENT: &str = env!("CARGO_BIN_EXE_gwclient");
const CONNECTIONS: &str = "gatewatch_connections_total";

fn write_config(text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("{}.toml", unique("cfg")));
    std::fs::write(&path, text).expect("write config");
    path
}

#[test]
fn connections_are_counted_by_route_with_exact_labels() {
    if !privileged() {
        return;
    }
    let provider4 = Listener::bind("127.0.0.2:0");
    let gateway = Listener::bind("127.0.0.3:0");
    let provider6 = Listener::bind("[::1]:0");
    let unlisted = Listener::bind("127.0.0.4:0");
    let config = write_config(&format!(
        "[[gateways]]\nname = \"corp-gw\"\npatterns = [\"{}\"]\n\n[[providers]]\nname = \"openai\"\npatterns = [\"{}\", \"{}\"]\n",
        gateway.addr, provider4.addr, provider6.addr
    ));
    let cg = TestCgroup::new("found");
    let gw = Gatewatch::start(&cg, &["--config", config.to_str().expect("utf-8 path")]);

    let mapped = format!("[::ffff:127.0.0.2]:{}", provider4.addr.port());
    run_ok(
        cg.command(CLIENT)
            .args(["--count", "2"])
            .arg(provider4.addr.to_string()),
    );
    run_ok(
        cg.command(CLIENT)
            .arg(provider6.addr.to_string())
            .arg(&mapped),
    );
    run_ok(
        cg.command(CLIENT)
            .args(["--comm", "agent-x"])
            .arg(gateway.addr.to_string()),
    );
    run_ok(cg.command(CLIENT).arg(unlisted.addr.to_string()));

    let m = gw.wait_for("6 connections", |m| m.sum(CONNECTIONS, &[]) >= 6.0);
    let direct4 = [
        ("route", "direct"),
        ("provider", "openai"),
        ("endpoint", &*provider4.addr.to_string()),
        ("name_source", "ip"),
        ("process", "gwclient"),
    ];
    assert_eq!(
        m.sum(CONNECTIONS, &direct4),
        3.0,
        "two IPv4 and one IPv4-mapped IPv6 connect:\n{}",
        m.text
    );
    let direct6 = [
        ("route", "direct"),
        ("provider", "openai"),
        ("endpoint", &*provider6.addr.to_string()),
    ];
    assert_eq!(m.sum(CONNECTIONS, &direct6), 1.0, "{}", m.text);
    let gateway_labels = [
        ("route", "gateway"),
        ("provider", "corp-gw"),
        ("endpoint", &*gateway.addr.to_string()),
        ("process", "agent-x"),
    ];
    assert_eq!(m.sum(CONNECTIONS, &gateway_labels), 1.0, "{}", m.text);
    let other = [
        ("route", "other"),
        ("provider", ""),
        ("endpoint", ""),
        ("process", "gwclient"),
    ];
    assert_eq!(
        m.sum(CONNECTIONS, &other),
        1.0,
        "unlisted address, no endpoint by default:\n{}",
        m.text
    );
    assert_eq!(
        m.sum(CONNECTIONS, &[]),
        6.0,
        "nothing else counted:\n{}",
        m.text
    );
    assert_eq!(
        m.sum("gatewatch_events_total", &[("kind", "connect")]),
        6.0,
        "{}",
        m.text
    );
    assert_eq!(
        m.sum("gatewatch_events_dropped_total", &[]),
        0.0,
        "{}",
        m.text
    );
    assert_eq!(
        m.matching("gatewatch_build_info", &[]).count(),
        1,
        "{}",
        m.text
    );
    let _ = std::fs::remove_file(config);
}

#[test]
fn other_endpoints_are_recorded_when_opted_in() {
    if !privileged() {
        return;
    }
    let unlisted = Listener::bind("127.0.0.5:0");
    let cg = TestCgroup::new("other");
    let gw = Gatewatch::start(&cg, &["--record-other-endpoints"]);
    run_ok(cg.command(CLIENT).arg(unlisted.addr.to_string()));
    let m = gw.wait_for("1 connection", |m| m.sum(CONNECTIONS, &[]) >= 1.0);
    assert_eq!(
        m.sum(
            CONNECTIONS,
            &[
                ("route", "other"),
                ("endpoint", &*unlisted.addr.to_string())
            ]
        ),
        1.0,
        "{}",
        m.text
    );
}

#[test]
fn sigterm_detaches_every_program_and_exits_zero() {
    if !privileged() {
        return;
    }
    let cg = TestCgroup::new("term");
    let mut gw = Gatewatch::start(&cg, &[]);
    let mut attached = attached_programs(&cg.path);
    attached.sort();
    assert_eq!(attached, observer::capture::PROGRAMS, "while running");
    assert_eq!(gw.get("/healthz").0, 200);
    let status = gw.stop();
    assert!(
        status.success(),
        "gatewatch exit status after SIGTERM: {status}"
    );
    assert!(
        attached_programs(&cg.path).is_empty(),
        "programs left attached after SIGTERM"
    );
}

#[test]
fn bad_config_exits_nonzero_naming_the_field_and_attaches_nothing() {
    if !privileged() {
        return;
    }
    let cg = TestCgroup::new("badcfg");
    let config =
        write_config("[[providers]]\nname = \"openai\"\npatterns = [\"10.0.0.1:99999\"]\n");
    let out = Command::new(gatewatch_bin())
        .args(["run", "--metrics-addr", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--cgroup")
        .arg(&cg.path)
        .output()
        .expect("run gatewatch");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "bad config must fail");
    assert!(
        stderr.contains("providers[0].patterns[0]") && stderr.contains("99999"),
        "stderr: {stderr}"
    );
    assert!(
        attached_programs(&cg.path).is_empty(),
        "bad config attached programs"
    );
    let out = Command::new(gatewatch_bin())
        .args(["run", "--gateway", "not a host"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--gateway"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_file(config);
}

#[test]
fn a_missing_cgroup_is_one_clear_error() {
    if !privileged() {
        return;
    }
    let out = Command::new(gatewatch_bin())
        .args([
            "run",
            "--metrics-addr",
            "127.0.0.1:0",
            "--cgroup",
            "/nonexistent/cgroup",
        ])
        .output()
        .expect("run gatewatch");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/nonexistent/cgroup") && stderr.contains("--cgroup"),
        "{stderr}"
    );
}

#[test]
fn check_config_accepts_good_files_and_names_bad_fields() {
    let good = write_config(
        "[[gateways]]\nname = \"apim\"\npatterns = [\"contoso-apim.azure-api.net\"]\n",
    );
    let out = run_ok(Command::new(gatewatch_bin()).arg("check-config").arg(&good));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ok (1 rules"),
        "{out:?}"
    );
    let bad = write_config("name_wait_ms = \"soon\"\n");
    let out = Command::new(gatewatch_bin())
        .arg("check-config")
        .arg(&bad)
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("name_wait_ms"),
        "{out:?}"
    );
    let _ = std::fs::remove_file(good);
    let _ = std::fs::remove_file(bad);
}
