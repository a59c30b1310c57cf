//! Label cardinality under a flood, without the kernel: 100k distinct
//! hostnames and then 100k distinct pods (with their own namespaces,
//! containers and processes) go through the real flow table. Every capped
//! label keeps at most `DEFAULT_LABEL_CAP` values plus `_other` in every
//! metric, folds are counted exactly, no connection is lost, and the flow
//! log and tables stay bounded.
use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use observer::{
    capture::decode::{Chunk, Closed, ConnectEvent, Event, StateChange, StateEvent},
    classification::{Catalog, Classifier, Kind, rule},
    flows::{DEFAULT_LABEL_CAP, OVERFLOW_VALUE},
    flows::{DEFAULT_MAX_LIVE, FlowSettings, FlowTable, Identify, WorkloadInfo},
    outputs::flow_log::{FlowFilter, FlowLog, RECENT_FLOWS, SUMMARY_ROWS},
    outputs::{Metrics, Outputs},
};

const N: u64 = 100_000;
const CAP: usize = DEFAULT_LABEL_CAP;
/// Labels capped by `LabelCaps`.
const CAPPED: [&str; 5] = ["endpoint", "namespace", "pod", "container", "process"];
/// The one workload of the hostname flood (phase 1).
const FIXED_CGROUP: u64 = 0;
/// TCP_FIN_WAIT2: a clean close.
const FIN_WAIT2: u32 = 5;

fn table() -> (FlowTable<Outputs>, Arc<Metrics>, Arc<FlowLog>) {
    let metrics = Arc::new(Metrics::new());
    let log = Arc::new(FlowLog::new());
    let rules = vec![rule("*.ai.test", Kind::Model, "openai", "test").expect("rule")];
    let classifier = Classifier::new(rules, Catalog::builtin().clone(), Vec::new(), false);
    let settings = FlowSettings {
        name_wait: Duration::from_millis(250),
        record_other_endpoints: false,
        max_pending: 65_536,
        dns_cache: 1024,
        label_cap: CAP,
        max_live: DEFAULT_MAX_LIVE,
        series_ttl: Duration::from_secs(300),
        enforce: observer::enforcement::Mode::Off,
        tls_call_copy_max: observer::inspection::connection::CALL_COPY_MAX,
    };
    // Every cgroup but the fixed one is its own pod, namespace and container.
    let identify: Identify = Box::new(|cgroup_id, _, _| {
        std::sync::Arc::new(if cgroup_id == FIXED_CGROUP {
            WorkloadInfo {
                namespace: "team-a".into(),
                pod: "agent-0".into(),
                container: "agent".into(),
                exe: "/usr/bin/agent".into(),
                is_gateway: false,
                allowed_direct: false,
            }
        } else {
            WorkloadInfo {
                namespace: format!("ns-{cgroup_id}"),
                pod: format!("pod-{cgroup_id}"),
                container: format!("c-{cgroup_id}"),
                exe: "/usr/bin/agent".into(),
                is_gateway: false,
                allowed_direct: false,
            }
        })
    });
    (
        FlowTable::new(
            settings,
            classifier,
            Outputs::new(metrics.clone(), log.clone()),
            identify,
        ),
        metrics,
        log,
    )
}

/// One whole connection: connect, established, an HTTP request naming
/// `host`, and a clean close.
fn connection(t: &mut FlowTable<Outputs>, cookie: u64, cgroup_id: u64, comm: &str, host: &str) {
    let now = Instant::now();
    let dst: SocketAddr = "127.0.9.9:80".parse().expect("addr");
    t.handle(
        Event::Connect(ConnectEvent {
            ts_ns: 1,
            cookie,
            cgroup_id,
            tgid: 10,
            pid: 10,
            uid: 0,
            protocol: 6,
            dst,
            comm: comm.to_owned(),
            refused: false,
        }),
        now,
    );
    t.handle(
        Event::State(StateEvent {
            ts_ns: 2,
            cookie,
            change: StateChange::Established,
        }),
        now,
    );
    let head = format!("GET /v1/models HTTP/1.1\r\nHost: {host}\r\n\r\n");
    let done = t.handle(
        Event::Payload(Chunk {
            ts_ns: 3,
            cookie,
            cgroup_id,
            offset: 0,
            total: head.len() as u32,
            data: Bytes::from(head),
        }),
        now,
    );
    assert_eq!(
        done.len(),
        1,
        "connection {cookie} counted once its Host is seen"
    );
    t.handle(
        Event::State(StateEvent {
            ts_ns: 4_000_000,
            cookie,
            change: StateChange::Closed(Closed {
                bytes_sent: 60,
                bytes_received: 40,
                old_state: FIN_WAIT2,
                total_retrans: 0,
                peer_reset: false,
                no_syn: false,
                datagram: false,
            }),
        }),
        now,
    );
}

/// Per metric family: its series, and the distinct values of each capped label.
struct Family {
    series: usize,
    values: BTreeMap<&'static str, BTreeSet<String>>,
}

fn families(m: &Metrics) -> BTreeMap<String, Family> {
    let mut out = BTreeMap::new();
    for family in m.registry().gather() {
        let mut f = Family {
            series: family.get_metric().len(),
            values: BTreeMap::new(),
        };
        for metric in family.get_metric() {
            for pair in metric.get_label() {
                if let Some(label) = CAPPED.iter().find(|l| **l == pair.name()) {
                    f.values
                        .entry(*label)
                        .or_default()
                        .insert(pair.value().to_owned());
                }
            }
        }
        out.insert(family.name().to_owned(), f);
    }
    out
}

fn counter_sum(m: &Metrics, name: &str, label: Option<(&str, &str)>) -> u64 {
    m.registry()
        .gather()
        .iter()
        .filter(|f| f.name() == name)
        .flat_map(|f| f.get_metric().iter())
        .filter(|s| {
            label.is_none_or(|(k, v)| {
                s.get_label()
                    .iter()
                    .any(|p| p.name() == k && p.value() == v)
            })
        })
        .map(|s| s.get_counter().get_value() as u64)
        .sum()
}

#[test]
fn a_flood_of_distinct_hostnames_and_pods_stays_under_the_label_cap() {
    let (mut t, m, log) = table();
    // Phase 1: one workload, 100k distinct hostnames.
    for i in 0..N {
        connection(
            &mut t,
            i + 1,
            FIXED_CGROUP,
            "agent",
            &format!("h{i}.ai.test"),
        );
    }
    // Phase 2: 100k distinct pods (and namespaces, containers, processes),
    // all calling one host.
    for i in 0..N {
        connection(&mut t, N + i + 1, i + 1, &format!("p{i}"), "api.ai.test");
    }
    assert_eq!(t.pending_len(), 0, "every connection was named and counted");
    assert_eq!(t.live_len(), 0, "every connection closed");

    let connections = "gatewatch_connections_total";
    assert_eq!(
        counter_sum(&m, connections, None),
        2 * N,
        "folding loses no connection"
    );
    assert_eq!(
        counter_sum(&m, connections, Some(("route", "direct"))),
        2 * N
    );

    let fams = families(&m);
    for (name, f) in &fams {
        for (label, values) in &f.values {
            let named = values
                .iter()
                .filter(|v| !v.is_empty() && *v != OVERFLOW_VALUE)
                .count();
            assert!(
                named <= CAP,
                "{name}: {named} distinct {label} values over the cap {CAP}"
            );
        }
    }
    // Phase 1 adds at most CAP + 1 series (kept hostnames, _other); phase 2
    // at most CAP + 1 more (kept workloads, _other), all with endpoint _other.
    let bound = 2 * (CAP + 1);
    for name in [
        connections,
        "gatewatch_bytes_total",
        "gatewatch_active_connections",
    ] {
        let f = fams
            .get(name)
            .unwrap_or_else(|| panic!("{name} not exported"));
        // Bytes have one series per direction.
        let per = if name == "gatewatch_bytes_total" {
            2
        } else {
            1
        };
        assert!(
            f.series <= bound * per,
            "{name}: {} series after {} distinct flows (bound {})",
            f.series,
            2 * N,
            bound * per
        );
    }
    let conns = &fams[connections];
    for label in CAPPED {
        assert!(
            conns.values[label].contains(OVERFLOW_VALUE),
            "{label} never folded: {:?}",
            conns.values[label].len()
        );
    }

    // Folds are counted exactly: the hostname flood folds N - CAP values; in
    // phase 2 the one new host arrives after the cap is reached (every one
    // of its N connections folds), and the workload labels keep CAP - 1 new
    // values each (phase 1 took one).
    let folded = "gatewatch_label_values_folded_total";
    let expect = [
        ("endpoint", 2 * N - CAP as u64),
        ("namespace", N - (CAP as u64 - 1)),
        ("pod", N - (CAP as u64 - 1)),
        ("container", N - (CAP as u64 - 1)),
        ("process", N - (CAP as u64 - 1)),
    ];
    for (label, n) in expect {
        assert_eq!(
            counter_sum(&m, folded, Some(("label", label))),
            n,
            "{folded}{{label={label:?}}}"
        );
        assert_eq!(
            counter_sum(&m, connections, Some((label, OVERFLOW_VALUE))),
            n,
            "connections counted with {label}=_other"
        );
    }

    // The exposition stays small, and so do the flow log's views.
    let text = m.render();
    assert!(
        text.len() < 4 << 20,
        "/metrics is {} bytes after the flood",
        text.len()
    );
    assert!(log.recent(&FlowFilter::default()).len() <= RECENT_FLOWS);
    let rows = log.summary().len();
    assert!(
        rows <= SUMMARY_ROWS + 1,
        "{rows} summary rows (cap {SUMMARY_ROWS} plus one _other row)"
    );
    // Closed connections leave the active gauge at zero everywhere.
    for family in m.registry().gather() {
        if family.name() == "gatewatch_active_connections" {
            for s in family.get_metric() {
                assert_eq!(s.get_gauge().get_value(), 0.0, "{:?}", s.get_label());
            }
        }
    }
}
