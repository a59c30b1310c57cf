//! A week on a busy node, compressed: workloads come and go, and what
//! gatewatch reports about them stays true. Pods churn past the label cap
//! without any live pod folding into `_other`, and the series of pods that
//! ended leave `/metrics` after the series TTL.
use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use tests::{Gatewatch, Listener, kubelet::Node, lab::ChildGuard, privileged};

const CLIENT: &str = env!("CARGO_BIN_EXE_gwclient");
/// Pods made and removed, three times the label cap below.
const PODS: usize = 3000;
const LABEL_CAP: &str = "1000";
/// Pods alive at once: each lives while its connection is counted.
const ALIVE: usize = 40;
const SERIES_TTL: Duration = Duration::from_secs(2);
/// How long each job's process stays after its connection.
const HOLD_MS: &str = "300";

/// Per-workload series lines of an exposition: comments and the duration
/// histogram (by route and provider only, so bounded without expiry) left out.
fn series_count(text: &str) -> usize {
    text.lines()
        .filter(|l| l.starts_with("gatewatch_"))
        .filter(|l| !l.starts_with("gatewatch_connection_duration_seconds"))
        .count()
}

fn rss_kib(gw: &Gatewatch) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", gw.pid())).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn churning_pods_never_fold_live_pods_and_their_series_leave_after_the_ttl() {
    if !privileged() {
        return;
    }
    let provider = Listener::bind("127.0.0.2:0");
    let node = Node::new();
    let ttl = format!("{}s", SERIES_TTL.as_secs());
    let gw = node.gatewatch(&[
        "--provider",
        &format!("openai={}", provider.addr),
        "--label-cap",
        LABEL_CAP,
        "--series-ttl",
        &ttl,
    ]);
    let baseline = series_count(&gw.metrics().text);
    let rss_before = rss_kib(&gw);
    let started = Instant::now();
    let mut alive = VecDeque::new();
    for i in 0..PODS {
        let pod = node.pod("churn", &format!("job-{i}"), "job", i as u32 + 1);
        // A job's process outlives its connection a little, as real ones do.
        let client = pod
            .cgroup
            .command(CLIENT)
            .args(["--hold-ms", HOLD_MS, &provider.addr.to_string()])
            .spawn()
            .expect("start gwclient");
        alive.push_back((pod, ChildGuard(client)));
        if alive.len() > ALIVE {
            let (pod, mut client) = alive.pop_front().expect("a pod is alive");
            let status = client.0.wait().expect("wait for gwclient");
            assert!(status.success(), "gwclient failed: {status}");
            drop(pod);
        }
        if i % 250 == 249 {
            let m = gw.wait_for("the latest pod counted", |m| {
                m.sum(
                    "gatewatch_connections_total",
                    &[("pod", &format!("job-{i}"))],
                ) == 1.0
            });
            let folded = m.sum("gatewatch_label_values_folded_total", &[("label", "pod")]);
            assert_eq!(
                folded,
                0.0,
                "after {} pods, with at most {ALIVE} alive, a pod was folded into _other",
                i + 1
            );
        }
    }
    drop(alive);
    let churn = started.elapsed();
    // After the TTL and a sweep, only the series the daemon started with
    // (and those of the provider's idle label sets, gone too) remain.
    let m = gw.wait_for("the churned series to leave", |m| {
        series_count(&m.text) <= baseline
    });
    assert!(
        m.matching("gatewatch_connections_total", &[("namespace", "churn")])
            .next()
            .is_none(),
        "no series of an ended pod is left"
    );
    let rss_after = rss_kib(&gw);
    println!(
        "{PODS} pods in {churn:?}: series {baseline} before, {} after; RSS {rss_before} KiB before, {rss_after} KiB after",
        series_count(&m.text)
    );
}
