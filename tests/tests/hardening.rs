//! Hardening: gatewatch runs with exactly the capabilities the DaemonSet
//! grants and names the one that is missing; it leaves nothing attached
//! however it ends (SIGTERM, SIGINT, SIGKILL); a second instance on the
//! same cgroup coexists with the first, or fails clearly when its metrics
//! port is taken; label values stay under the cap on the real /metrics;
//! and a sustained load is counted exactly, without drops or memory growth.
//!
//! The soak runs SOAK_SECONDS (default 20) at SOAK_RATE connections/s
//! (default 2000); the long run is `tests/scripts/soak.sh` (10 minutes).
use std::{
    collections::BTreeSet,
    os::unix::process::ExitStatusExt as _,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use observer::capture::PROGRAMS;
use tests::{
    Gatewatch, Listener, Metrics, TestCgroup, WAIT, attached_programs, free_port,
    hardening::{
        DAEMONSET_CAPS, Daemon, FastServer, attached_ids, cap_bit, eventually, map_exists,
        nobody_with, prog_exists, root_with_only, status_caps, tail,
    },
    lab::ChildGuard,
    privileged, run_ok,
};

const CLIENT: &str = env!("CARGO_BIN_EXE_gwclient");
const LOAD: &str = env!("CARGO_BIN_EXE_gwload");
const CONNECTIONS: &str = "gatewatch_connections_total";
const FOLDED: &str = "gatewatch_label_values_folded_total";
/// How long the kernel gets to free a dead process's links, programs and maps.
const RELEASE: Duration = Duration::from_secs(10);

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn provider_arg(addr: std::net::SocketAddr) -> String {
    format!("openai={addr}")
}

fn caps_mask(caps: &[&str]) -> u64 {
    caps.iter().fold(0, |acc, c| acc | 1u64 << cap_bit(c))
}

fn uid_of(pid: u32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|euid| euid.parse().ok())
        .expect("Uid line")
}

/// Starts gatewatch under `wrapper`, checks it runs with exactly
/// `expect_caps` (as far as this host's bounding set allows) and uid
/// `expect_uid`, attaches, counts a connection with exact labels, and
/// detaches on SIGTERM.
fn least_privilege_run(tag: &str, wrapper: &[String], expect_caps: &[&str], expect_uid: u32) {
    let provider = Listener::bind("127.0.0.2:0");
    let cg = TestCgroup::new(tag);
    let mut gw = Daemon::start(wrapper, &cg, &["--provider", &provider_arg(provider.addr)]);

    let ours = status_caps(std::process::id(), "CapBnd");
    let want = caps_mask(expect_caps) & ours;
    let eff = status_caps(gw.pid(), "CapEff");
    assert_eq!(
        eff, want,
        "gatewatch CapEff {eff:016x}, expected exactly {want:016x} ({expect_caps:?} within this host's bounding set {ours:016x})"
    );
    assert_eq!(
        eff & (1 << cap_bit("sys_admin")),
        0,
        "CAP_SYS_ADMIN must not be needed"
    );
    if ours & (1 << cap_bit("sys_resource")) == 0 {
        eprintln!("note: this host withholds CAP_SYS_RESOURCE, so gatewatch ran without it");
    }
    assert_eq!(uid_of(gw.pid()), expect_uid, "gatewatch euid");
    assert_eq!(
        sorted(attached_programs(&cg.path)),
        PROGRAMS,
        "programs attached with reduced capabilities"
    );

    run_ok(cg.command(CLIENT).arg(provider.addr.to_string()));
    let labels = [
        ("route", "direct"),
        ("provider", "openai"),
        ("endpoint", &*provider.addr.to_string()),
        ("process", "gwclient"),
    ];
    let m = gw.wait_for("the connection counted", |m| {
        m.sum(CONNECTIONS, &labels) == 1.0
    });
    assert_eq!(m.sum(CONNECTIONS, &[]), 1.0, "{}", m.text);
    assert_eq!(
        m.sum("gatewatch_events_dropped_total", &[]),
        0.0,
        "{}",
        m.text
    );

    gw.signal(libc::SIGTERM);
    let status = gw.wait_exit(WAIT);
    assert_eq!(status.code(), Some(0), "exit after SIGTERM:\n{}", gw.log());
    assert!(
        attached_programs(&cg.path).is_empty(),
        "programs left attached after SIGTERM"
    );
}

#[test]
fn runs_as_root_with_only_the_daemonset_capabilities() {
    if !privileged() {
        return;
    }
    least_privilege_run(
        "lproot",
        &root_with_only(&DAEMONSET_CAPS),
        &DAEMONSET_CAPS,
        0,
    );
}

#[test]
fn runs_as_non_root_with_only_bpf_perfmon_and_net_admin() {
    if !privileged() {
        return;
    }
    let caps = ["bpf", "perfmon", "net_admin"];
    least_privilege_run("lpnobody", &nobody_with(&caps), &caps, 65534);
}

#[test]
fn each_missing_capability_is_named_and_nothing_is_attached() {
    if !privileged() {
        return;
    }
    let cg = TestCgroup::new("lpmiss");
    let mut cases: Vec<(String, Vec<String>, &str)> = [
        ("bpf", "CAP_BPF"),
        ("perfmon", "CAP_PERFMON"),
        ("net_admin", "CAP_NET_ADMIN"),
    ]
    .into_iter()
    .map(|(drop, name)| {
        let caps: Vec<&str> = DAEMONSET_CAPS.into_iter().filter(|c| *c != drop).collect();
        (format!("root without {drop}"), root_with_only(&caps), name)
    })
    .collect();
    cases.push((
        "nobody without capabilities".into(),
        nobody_with(&[]),
        "CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN",
    ));
    for (what, wrapper, missing) in cases {
        let addr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let mut gw = Daemon::spawn(&wrapper, &cg, addr, &[]);
        let status = gw.wait_exit(WAIT);
        let log = gw.log();
        assert!(!status.success(), "{what}: must fail, log:\n{log}");
        assert!(
            log.contains(&format!("missing capabilities {missing}:")),
            "{what}: the error must name exactly {missing}:\n{log}"
        );
        assert!(
            attached_programs(&cg.path).is_empty(),
            "{what}: attached programs without its capabilities"
        );
    }
}

#[test]
fn sigint_detaches_every_program_and_exits_zero() {
    if !privileged() {
        return;
    }
    let provider = Listener::bind("127.0.0.2:0");
    let cg = TestCgroup::new("int");
    let mut gw = Daemon::start(&[], &cg, &["--provider", &provider_arg(provider.addr)]);
    assert_eq!(
        sorted(attached_programs(&cg.path)),
        PROGRAMS,
        "while running"
    );
    run_ok(cg.command(CLIENT).arg(provider.addr.to_string()));
    gw.wait_for("one connection", |m| m.sum(CONNECTIONS, &[]) == 1.0);
    gw.signal(libc::SIGINT);
    let status = gw.wait_exit(WAIT);
    let log = gw.log();
    assert_eq!(status.code(), Some(0), "exit after SIGINT:\n{log}");
    assert!(log.contains("SIGINT: detaching"), "{log}");
    assert!(
        attached_programs(&cg.path).is_empty(),
        "programs left attached after SIGINT"
    );
    run_ok(cg.command(CLIENT).arg(provider.addr.to_string()));
}

/// Map ids a program uses, from bpftool.
fn prog_map_ids(id: u32) -> Vec<u32> {
    let out = run_ok(Command::new("bpftool").args(["-j", "prog", "show", "id", &id.to_string()]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("bpftool JSON");
    v["map_ids"]
        .as_array()
        .map(|ids| {
            ids.iter()
                .filter_map(|i| i.as_u64().map(|i| i as u32))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn sigkill_leaves_nothing_behind_and_a_restart_attaches_cleanly() {
    if !privileged() {
        return;
    }
    let provider = Listener::bind_reply("127.0.0.2:0", 100);
    let cg = TestCgroup::new("kill");
    let args = ["--provider".to_owned(), provider_arg(provider.addr)];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut gw = Daemon::start(&[], &cg, &args);
    let progs = attached_ids(&cg.path);
    assert_eq!(
        sorted(progs.iter().map(|(_, n)| n.clone()).collect()),
        PROGRAMS
    );
    let maps: BTreeSet<u32> = progs.iter().flat_map(|(id, _)| prog_map_ids(*id)).collect();
    assert!(!maps.is_empty(), "bpftool lists no maps for {progs:?}");
    run_ok(cg.command(CLIENT).arg(provider.addr.to_string()));
    gw.wait_for("one connection", |m| m.sum(CONNECTIONS, &[]) == 1.0);

    // A connection open across the kill must finish normally.
    let mut holder = ChildGuard(
        cg.command(CLIENT)
            .args(["--hold-ms", "1500", "--send", "held", "--read"])
            .arg(provider.addr.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start gwclient"),
    );
    thread_sleep_ms(300);
    gw.signal(libc::SIGKILL);
    let status = gw.wait_exit(WAIT);
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");

    assert!(
        eventually(RELEASE, || attached_ids(&cg.path).is_empty()),
        "programs still attached {RELEASE:?} after SIGKILL: {:?}",
        attached_ids(&cg.path)
    );
    assert!(
        eventually(RELEASE, || progs.iter().all(|(id, _)| !prog_exists(*id))),
        "programs still loaded after SIGKILL: {:?}",
        progs
            .iter()
            .filter(|(id, _)| prog_exists(*id))
            .collect::<Vec<_>>()
    );
    assert!(
        eventually(RELEASE, || maps.iter().all(|id| !map_exists(*id))),
        "maps still alive after SIGKILL: {:?}",
        maps.iter()
            .filter(|id| map_exists(**id))
            .collect::<Vec<_>>()
    );
    let held = holder.0.wait().expect("wait gwclient");
    assert!(held.success(), "a connection open across SIGKILL failed");

    // Traffic from the cgroup is untouched, both ways and over IPv6 too.
    let out = run_ok(
        cg.command(CLIENT)
            .args(["--send", "after", "--read"])
            .arg(provider.addr.to_string()),
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "100");
    let v6 = Listener::bind("[::1]:0");
    run_ok(cg.command(CLIENT).arg(v6.addr.to_string()));

    // A restart attaches fresh programs and counts from zero.
    let mut again = Gatewatch::start(&cg, &args);
    let fresh = attached_ids(&cg.path);
    assert_eq!(
        sorted(fresh.iter().map(|(_, n)| n.clone()).collect()),
        PROGRAMS,
        "after restart"
    );
    assert!(
        fresh
            .iter()
            .all(|(id, _)| progs.iter().all(|(old, _)| old != id)),
        "restart reused program ids {progs:?} / {fresh:?}"
    );
    run_ok(cg.command(CLIENT).arg(provider.addr.to_string()));
    let m = again.wait_for("one connection after restart", |m| {
        m.sum(CONNECTIONS, &[]) >= 1.0
    });
    assert_eq!(
        m.sum(
            CONNECTIONS,
            &[
                ("route", "direct"),
                ("endpoint", &*provider.addr.to_string())
            ]
        ),
        1.0,
        "{}",
        m.text
    );
    assert!(again.stop().success());
    assert!(attached_programs(&cg.path).is_empty());
}

fn thread_sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

#[test]
fn a_second_instance_on_a_taken_metrics_port_fails_clearly_and_changes_nothing() {
    if !privileged() {
        return;
    }
    let provider = Listener::bind("127.0.0.2:0");
    let cg = TestCgroup::new("dup");
    let rule = provider_arg(provider.addr);
    let first = Gatewatch::start(&cg, &["--provider", &rule]);
    let before = attached_ids(&cg.path);
    assert_eq!(before.len(), PROGRAMS.len());

    let mut second = Daemon::spawn(&[], &cg, first.addr, &["--provider", &rule]);
    let status = second.wait_exit(WAIT);
    let log = second.log();
    assert!(!status.success(), "second instance on a busy port: {log}");
    assert!(
        log.contains(&format!("cannot listen on {} (--metrics-addr)", first.addr))
            && log.contains("another gatewatch"),
        "the error must name the address and the flag:\n{log}"
    );
    assert!(
        !log.contains("attached"),
        "it failed after attaching:\n{log}"
    );
    assert_eq!(
        attached_ids(&cg.path),
        before,
        "the failed instance changed what is attached"
    );
    run_ok(cg.command(CLIENT).arg(provider.addr.to_string()));
    first.wait_for("the first instance still counting", |m| {
        m.sum(CONNECTIONS, &[]) == 1.0
    });
}

#[test]
fn two_instances_on_one_cgroup_coexist_and_both_count() {
    if !privileged() {
        return;
    }
    let provider = Listener::bind("127.0.0.2:0");
    let cg = TestCgroup::new("two");
    let rule = provider_arg(provider.addr);
    let mut a = Daemon::start(&[], &cg, &["--provider", &rule]);
    let a_ids = attached_ids(&cg.path);
    let mut b = Daemon::start(&[], &cg, &["--provider", &rule]);
    let both = attached_ids(&cg.path);
    let mut names: Vec<String> = both.iter().map(|(_, n)| n.clone()).collect();
    names.sort();
    let twice: Vec<String> = PROGRAMS
        .iter()
        .flat_map(|p| [p.to_string(), p.to_string()])
        .collect();
    assert_eq!(names, twice, "each program attached once per instance");

    run_ok(cg.command(CLIENT).arg(provider.addr.to_string()));
    for (who, gw) in [("first", &a), ("second", &b)] {
        let m = gw.wait_for(&format!("the {who} instance counting"), |m| {
            m.sum(CONNECTIONS, &[]) >= 1.0
        });
        assert_eq!(m.sum(CONNECTIONS, &[]), 1.0, "{who}: {}", m.text);
    }

    b.signal(libc::SIGTERM);
    assert_eq!(b.wait_exit(WAIT).code(), Some(0), "{}", b.log());
    let mut left = attached_ids(&cg.path);
    left.sort();
    let mut a_sorted = a_ids.clone();
    a_sorted.sort();
    assert_eq!(
        left, a_sorted,
        "stopping the second detaches only its own programs"
    );
    run_ok(cg.command(CLIENT).arg(provider.addr.to_string()));
    a.wait_for("the first instance counting on", |m| {
        m.sum(CONNECTIONS, &[]) == 2.0
    });
    a.signal(libc::SIGTERM);
    assert_eq!(a.wait_exit(WAIT).code(), Some(0), "{}", a.log());
    assert!(attached_programs(&cg.path).is_empty());
}

/// Distinct values of `label` over every sample of every gatewatch metric.
fn label_values(m: &Metrics, label: &str) -> BTreeSet<String> {
    m.samples
        .iter()
        .filter(|s| s.name.starts_with("gatewatch_"))
        .filter_map(|s| s.labels.get(label).cloned())
        .collect()
}

#[test]
fn label_cap_folds_excess_endpoints_and_processes_into_other() {
    if !privileged() {
        return;
    }
    const CAP: usize = 5;
    const N: usize = 30;
    let listeners: Vec<Listener> = (1..=N)
        .map(|i| Listener::bind(&format!("127.0.3.{i}:0")))
        .collect();
    let cg = TestCgroup::new("card");
    let gw = Gatewatch::start(
        &cg,
        &[
            "--label-cap",
            &CAP.to_string(),
            "--provider",
            "openai=127.0.0.0/8",
        ],
    );
    for (i, l) in listeners.iter().enumerate() {
        run_ok(
            cg.command(CLIENT)
                .args(["--comm", &format!("agent-{i:02}")])
                .arg(l.addr.to_string()),
        );
    }
    let m = gw.wait_for("every connection counted and closed", |m| {
        m.sum(CONNECTIONS, &[]) >= N as f64
            && m.sum("gatewatch_connection_duration_seconds_count", &[]) >= N as f64
    });
    let folded = (N - CAP) as f64;
    assert_eq!(m.sum(CONNECTIONS, &[]), N as f64, "{}", m.text);
    let series = m.matching(CONNECTIONS, &[]).count();
    assert!(
        series <= CAP + 1,
        "{series} connection series for {N} distinct endpoints with --label-cap {CAP}:\n{}",
        m.text
    );
    for label in ["endpoint", "process"] {
        let values = label_values(&m, label);
        let kept: Vec<&String> = values
            .iter()
            .filter(|v| !v.is_empty() && *v != "_other")
            .collect();
        assert_eq!(
            kept.len(),
            CAP,
            "{label}: distinct values across all metrics: {values:?}"
        );
        assert!(values.contains("_other"), "{label}: {values:?}");
        assert_eq!(
            m.sum(CONNECTIONS, &[(label, "_other")]),
            folded,
            "{label}: connections folded into _other:\n{}",
            m.text
        );
        assert_eq!(
            m.sum(FOLDED, &[("label", label)]),
            folded,
            "{label}: folds counted:\n{}",
            m.text
        );
        for v in kept {
            assert_eq!(m.sum(CONNECTIONS, &[(label, v)]), 1.0, "{label}={v}");
        }
    }
    assert_eq!(
        m.sum(CONNECTIONS, &[("route", "direct"), ("provider", "openai")]),
        N as f64,
        "folding keeps route and provider:\n{}",
        m.text
    );
}

#[test]
fn connections_closed_before_they_are_named_leave_the_active_gauge_at_zero() {
    if !privileged() {
        return;
    }
    // Connect and close at once, sending nothing: each connection is
    // established and closed while it still waits for a name (as when its
    // payload record is lost under load), so it is counted already closed.
    let provider = Listener::bind("127.0.0.2:0");
    let cg = TestCgroup::new("gauge");
    let gw = Gatewatch::start(&cg, &["--provider", &provider_arg(provider.addr)]);
    run_ok(
        cg.command(CLIENT)
            .args(["--count", "3"])
            .arg(provider.addr.to_string()),
    );
    let m = gw.wait_for("three connections counted and closed", |m| {
        m.sum("gatewatch_connection_duration_seconds_count", &[]) >= 3.0
    });
    assert_eq!(m.sum(CONNECTIONS, &[]), 3.0, "{}", m.text);
    let active: Vec<String> = m
        .matching("gatewatch_active_connections", &[])
        .filter(|s| s.value != 0.0)
        .map(|s| format!("{:?} = {}", s.labels, s.value))
        .collect();
    assert!(
        active.is_empty(),
        "the active gauge must be back to 0 once every connection closed: {active:?}"
    );
}

fn env_f64(name: &str, default: f64) -> f64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

fn mean(xs: &[u64]) -> f64 {
    xs.iter().sum::<u64>() as f64 / xs.len().max(1) as f64
}

/// RSS growth rule: the mean VmRSS over the last quarter of the load may
/// exceed the mean over the second quarter (after warm-up: tables and
/// caches filled) by at most 10% plus 4 MiB.
const RSS_GROWTH_RATIO: f64 = 1.10;
const RSS_GROWTH_SLACK_KIB: f64 = 4096.0;

#[test]
fn soak_counts_every_connection_exactly_without_drops_or_memory_growth() {
    if !privileged() {
        return;
    }
    let seconds = env_f64("SOAK_SECONDS", 20.0);
    let rate = env_f64("SOAK_RATE", 2000.0);
    // More distinct Host names than the default label cap, so folding runs all along.
    let hosts = 5000;
    let server = FastServer::bind("127.0.0.2:0", 4);
    let cg = TestCgroup::new("soak");
    let gw = Daemon::start(
        &[],
        &cg,
        &["--provider", "soak=127.0.0.0/8", "--name-wait-ms", "250"],
    );
    let rss_idle = gw.rss_kib();
    let cpu_start = gw.cpu_time();

    let started = Instant::now();
    let mut load = ChildGuard(
        cg.command(LOAD)
            .args([
                "--rate",
                &rate.to_string(),
                "--seconds",
                &seconds.to_string(),
            ])
            .args(["--threads", "8", "--hosts", &hosts.to_string()])
            .arg(server.addr.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start gwload"),
    );
    // The load is bounded by its own --seconds; this bounds the test if it hangs.
    let limit = Duration::from_secs_f64(seconds * 3.0 + 60.0);
    let mut rss = Vec::new();
    let mut next = Instant::now();
    while load.0.try_wait().expect("wait gwload").is_none() {
        assert!(
            started.elapsed() < limit,
            "gwload still running after {limit:?}"
        );
        if Instant::now() >= next {
            rss.push(gw.rss_kib());
            next += Duration::from_secs(1);
        }
        thread_sleep_ms(50);
    }
    let mut out = String::new();
    let mut err = String::new();
    use std::io::Read as _;
    load.0
        .stdout
        .take()
        .expect("gwload stdout")
        .read_to_string(&mut out)
        .expect("read gwload output");
    load.0
        .stderr
        .take()
        .expect("gwload stderr")
        .read_to_string(&mut err)
        .expect("read gwload errors");
    let report: serde_json::Value =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("gwload output {out:?}: {e}"));
    let attempted = report["attempted"].as_u64().expect("attempted");
    let failed = report["failed"].as_u64().expect("failed");
    let achieved = report["rate"].as_f64().expect("rate");
    assert_eq!(failed, 0, "gwload connections failed: {report}\n{err}");
    assert_eq!(attempted, (rate * seconds).round() as u64, "{report}");

    let made = attempted as f64;
    let closed = "gatewatch_connection_duration_seconds_count";
    let deadline = Instant::now() + WAIT;
    let m = loop {
        let m = gw.metrics();
        if m.sum(CONNECTIONS, &[]) >= made && m.sum(closed, &[]) >= made {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "after {WAIT:?}: made {made}, counted {}, closed {}, active {}, events {:?}, dropped {:?}",
            m.sum(CONNECTIONS, &[]),
            m.sum(closed, &[]),
            m.sum("gatewatch_active_connections", &[]),
            ["connect", "payload", "state"]
                .map(|k| m.sum("gatewatch_events_total", &[("kind", k)])),
            m.matching("gatewatch_events_dropped_total", &[])
                .map(|s| (s.labels.clone(), s.value))
                .collect::<Vec<_>>(),
        );
        thread_sleep_ms(200);
    };
    let rss_end = gw.rss_kib();
    let cpu = (gw.cpu_time() - cpu_start).as_secs_f64();
    let dropped: Vec<String> = m
        .matching("gatewatch_events_dropped_total", &[])
        .filter(|s| s.value > 0.0)
        .map(|s| format!("{:?}={}", s.labels, s.value))
        .collect();
    let counted = m.sum(CONNECTIONS, &[]);
    let named = m.sum(
        CONNECTIONS,
        &[("route", "direct"), ("name_source", "http_host")],
    );
    let folded = m.sum(FOLDED, &[("label", "endpoint")]);
    let endpoints = label_values(&m, "endpoint").len();
    let q = rss.len() / 4;
    let (q2, q4) = if q > 0 {
        (mean(&rss[q..2 * q]), mean(&rss[rss.len() - q..]))
    } else {
        (0.0, 0.0)
    };
    eprintln!(
        "soak: {seconds} s at {rate}/s requested, {achieved:.0}/s achieved; made {attempted}, counted {counted}, named by Host {named}, \
         server answered {}; dropped {dropped:?}; endpoint folds {folded}, endpoint values {endpoints}; \
         gatewatch CPU {cpu:.1} s ({:.0}% of one core over the run); RSS KiB idle {rss_idle}, first sample {}, max {}, end {rss_end}, 2nd-quarter mean {q2:.0}, last-quarter mean {q4:.0} ({} samples: {:?})",
        server.served.load(std::sync::atomic::Ordering::Relaxed),
        100.0 * cpu / started.elapsed().as_secs_f64(),
        rss.first().copied().unwrap_or(0),
        rss.iter().max().copied().unwrap_or(0),
        rss.len(),
        // Ten evenly spaced samples, for the trend.
        (0..10)
            .filter_map(|i| rss.get(i * rss.len() / 10))
            .collect::<Vec<_>>()
    );

    assert!(
        dropped.is_empty(),
        "events dropped: {dropped:?}\n{}",
        m.text
    );
    assert_eq!(counted, made, "connections counted vs made:\n{}", m.text);
    // Named by the Host header unless the client stalled longer than the
    // name wait between connect() and its first write (allowed: 0.1%).
    assert_eq!(
        m.sum(CONNECTIONS, &[("route", "direct")]),
        made,
        "every connection direct"
    );
    assert!(
        named >= made * 0.999,
        "only {named} of {made} named by their Host header"
    );
    assert_eq!(
        m.sum("gatewatch_connection_failures_total", &[]),
        0.0,
        "{}",
        m.text
    );
    assert_eq!(
        m.sum("gatewatch_active_connections", &[]),
        0.0,
        "{}",
        m.text
    );
    assert_eq!(
        m.sum("gatewatch_flow_evictions_total", &[]),
        0.0,
        "{}",
        m.text
    );
    assert!(
        endpoints <= 1000 + 1,
        "{endpoints} endpoint values over the default cap"
    );
    assert_eq!(
        folded,
        m.sum(CONNECTIONS, &[("endpoint", "_other")]),
        "folds counted = connections folded"
    );
    assert!(
        q > 0,
        "too few RSS samples ({}) for the growth rule",
        rss.len()
    );
    assert!(
        q4 <= q2 * RSS_GROWTH_RATIO + RSS_GROWTH_SLACK_KIB,
        "RSS grew: last-quarter mean {q4:.0} KiB vs second-quarter mean {q2:.0} KiB (samples {rss:?})\nlog:\n{}",
        tail(&gw.log(), 20)
    );
}
