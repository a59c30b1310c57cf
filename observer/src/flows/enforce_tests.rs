//! The flow table under `--enforce`: what it records, counts and asks of
//! the enforcer, whether the kernel acted first or not at all.
use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use observer_common::PolicyKey;

use super::{
    tests::{CURL_HELLO, connect, payload},
    *,
};
use crate::{
    capture::{EnforceAction, EnforceEvent, Event},
    classification::{Catalog, Classifier},
    enforcement::{Action, Denial, Mode, Stage},
    outputs::{FlowLog, Metrics, Outputs},
};

/// A table enforcing `mode` whose workloads are gateway workloads when
/// `gateway` is set.
fn table(mode: Mode, gateway: bool) -> (FlowTable<Outputs>, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::with_enforce(mode));
    let classifier = Classifier::new(Vec::new(), Catalog::builtin().clone(), Vec::new(), false);
    let settings = FlowSettings {
        name_wait: Duration::from_millis(1000),
        record_other_endpoints: false,
        max_pending: 8,
        dns_cache: 16,
        label_cap: 100,
        max_live: 8,
        series_ttl: Duration::from_secs(300),
        enforce: mode,
        tls_call_copy_max: crate::inspection::connection::CALL_COPY_MAX,
    };
    let identify: Identify = Box::new(move |_, _, _| {
        WorkloadInfo {
            is_gateway: gateway,
            ..WorkloadInfo::default()
        }
        .into()
    });
    let outputs = Outputs::new(metrics.clone(), Arc::new(FlowLog::new()));
    (
        FlowTable::new(settings, classifier, outputs, identify),
        metrics,
    )
}

const DST: &str = "127.0.0.9:443";

fn kernel(cookie: u64, action: EnforceAction) -> Event {
    Event::Enforce(EnforceEvent {
        ts_ns: 2,
        cookie,
        cgroup_id: 1,
        tgid: 10,
        action,
        src: "127.0.0.1:40000".parse().unwrap(),
        dst: DST.parse().unwrap(),
    })
}

fn denied_total(m: &Metrics, stage: &str, mode: &str) -> u64 {
    m.denied
        .with_label_values(&[
            stage,
            mode,
            "direct",
            "openai",
            "api.openai.com:443",
            "",
            "",
            "",
            "client",
            "tcp",
        ])
        .get()
}

fn end(src: Option<&str>) -> Action {
    Action::End {
        tgid: 10,
        cookie: 1,
        protocol: 6,
        dst: DST.parse::<SocketAddr>().unwrap(),
        src: src.map(|s| s.parse().unwrap()),
    }
}

#[test]
fn a_direct_call_the_kernel_let_through_is_denied_and_ended_from_userspace() {
    let (mut t, m) = table(Mode::Deny, false);
    let now = Instant::now();
    t.handle(connect(1, DST), now);
    let flows = t.handle(payload(1, 0, CURL_HELLO), now);
    let denial = Denial {
        stage: Stage::FirstBytes,
        mode: Mode::Deny,
    };
    assert_eq!(flows[0].denied, Some(denial));
    assert_eq!(t.take_actions(), vec![end(None)]);
    assert_eq!(denied_total(&m, "first_bytes", "deny"), 1);
    assert_eq!(denied_total(&m, "connect", "deny"), 0, "exists at 0");
}

#[test]
fn a_kernel_drop_is_ended_with_its_addresses_and_counted_once() {
    let (mut t, m) = table(Mode::Deny, false);
    let now = Instant::now();
    t.handle(connect(1, DST), now);
    // The kernel reports its drop before the bytes it copied.
    t.handle(kernel(1, EnforceAction::Denied), now);
    let flows = t.handle(payload(1, 0, CURL_HELLO), now);
    assert!(flows[0].denied.is_some());
    assert_eq!(t.take_actions(), vec![end(Some("127.0.0.1:40000"))]);
    assert_eq!(denied_total(&m, "first_bytes", "deny"), 1);
}

#[test]
fn a_held_process_gets_its_answer_from_its_workload() {
    for (gateway, may_direct) in [(false, false), (true, true)] {
        let (mut t, _) = table(Mode::Deny, gateway);
        let now = Instant::now();
        t.handle(connect(1, DST), now);
        t.handle(kernel(1, EnforceAction::Held), now);
        let decide = Action::Decide {
            key: PolicyKey {
                cgroup_id: 1,
                tgid: 10,
                _pad: 0,
            },
            may_direct,
        };
        assert_eq!(t.take_actions(), vec![decide], "gateway: {gateway}");
        let flows = t.handle(payload(1, 0, CURL_HELLO), now);
        assert_eq!(flows[0].denied.is_some(), !may_direct);
    }
}

#[test]
fn a_gateway_workloads_provider_call_is_never_denied() {
    let (mut t, m) = table(Mode::Deny, true);
    let now = Instant::now();
    t.handle(connect(1, DST), now);
    let flows = t.handle(payload(1, 0, CURL_HELLO), now);
    assert_eq!(
        flows[0].route,
        crate::classification::Route::GatewayUpstream
    );
    assert_eq!(flows[0].denied, None);
    assert!(t.take_actions().is_empty());
    assert!(
        !m.render().contains("gatewatch_denied_total{"),
        "{}",
        m.render()
    );
}

#[test]
fn audit_counts_and_asks_nothing_of_the_enforcer() {
    let (mut t, m) = table(Mode::Audit, false);
    let now = Instant::now();
    t.handle(connect(1, DST), now);
    let flows = t.handle(payload(1, 0, CURL_HELLO), now);
    assert_eq!(flows[0].denied.map(|d| d.mode), Some(Mode::Audit));
    assert!(t.take_actions().is_empty());
    assert_eq!(denied_total(&m, "first_bytes", "audit"), 1);
}

#[test]
fn off_neither_judges_nor_makes_denial_series() {
    let (mut t, m) = table(Mode::Off, false);
    let now = Instant::now();
    t.handle(connect(1, DST), now);
    let flows = t.handle(payload(1, 0, CURL_HELLO), now);
    assert_eq!(flows[0].denied, None);
    assert!(t.take_actions().is_empty());
    assert!(!m.render().contains("gatewatch_denied_total{"));
}

#[test]
fn a_refused_connect_is_a_connect_stage_denial_and_not_ended_again() {
    let (mut t, m) = table(Mode::Deny, false);
    let now = Instant::now();
    let Event::Connect(mut c) = connect(1, DST) else {
        unreachable!()
    };
    c.refused = true;
    t.handle(Event::Connect(c), now);
    let flows = t.expire(now + Duration::from_secs(2));
    assert_eq!(flows[0].denied.map(|d| d.stage), Some(Stage::Connect));
    assert!(t.take_actions().is_empty(), "nothing left to end");
    let m = m.render();
    assert!(m.contains(r#"stage="connect""#), "{m}");
}

const OPENAI_A: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/dns_api_openai_a.bin"
));

fn dns(cgroup_id: u64, data: &[u8]) -> Event {
    let Event::Payload(mut chunk) = payload(0, 0, data) else {
        unreachable!()
    };
    chunk.cgroup_id = cgroup_id;
    Event::Dns(chunk)
}

#[test]
fn a_denied_names_dns_answer_makes_its_addresses_refused_at_connect_for_that_cgroup() {
    let (mut t, _) = table(Mode::Deny, false);
    t.handle(dns(7, OPENAI_A), Instant::now());
    let actions = t.take_actions();
    assert!(!actions.is_empty(), "the answer has addresses");
    for a in &actions {
        assert!(
            matches!(a, Action::Addr(crate::enforcement::AddrChange::Deny(7, _))),
            "{actions:?}"
        );
    }
    // Forgotten with the answer (its TTL, at most the name cache's cap).
    let later = Instant::now() + crate::naming::name_cache::MAX_TTL + Duration::from_secs(1);
    t.sweep(later);
    let forgotten = t.take_actions();
    assert_eq!(forgotten.len(), actions.len(), "{forgotten:?}");
}

#[test]
fn only_deny_follows_dns_answers() {
    for mode in [Mode::Off, Mode::Audit] {
        let (mut t, _) = table(mode, false);
        t.handle(dns(7, OPENAI_A), Instant::now());
        assert!(t.take_actions().is_empty(), "{mode:?}");
    }
}
