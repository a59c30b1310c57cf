//! `gatewatch run`: attach, read the ring buffer, count, serve; detach on
//! SIGTERM or SIGINT.
use std::{sync::Arc, sync::atomic::Ordering, time::Duration};

use anyhow::Context as _;
use tokio::{
    io::{Interest, unix::AsyncFd},
    net::TcpListener,
    signal::unix::{SignalKind, signal},
    sync::watch,
    time::{Instant, MissedTickBehavior, interval},
};

use crate::{
    api::{self, AppState},
    catalog::Catalog,
    classify::Classifier,
    config::Config,
    events,
    flowlog::FlowLog,
    flows::{FlowSettings, FlowTable, WorkloadInfo},
    loader::{LoadOptions, Probes},
    metrics::Metrics,
    workload::{KubePods, PodWatcher, WorkloadConfig, Workloads},
};

/// How often the ring is drained without a wakeup and waiting connections
/// are checked against their name deadline: the bound on reporting latency
/// at low rates.
const TICK: Duration = Duration::from_millis(25);
/// How often the kernel's per-CPU drop counters are read.
const DROPS_EVERY: Duration = Duration::from_secs(1);
/// `source` labels of the kernel drop slots, in slot order.
const DROP_SOURCES: [&str; observer_common::DROP_SLOTS as usize] = [
    "ringbuf_connect",
    "ringbuf_payload",
    "ringbuf_dns",
    "ringbuf_state",
];

pub async fn run(cfg: Config, ebpf_debug: bool) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new());
    let log = Arc::new(FlowLog::new());
    let state = Arc::new(AppState::new(metrics.clone(), log.clone(), cfg.view()));
    // Bind before attaching: a busy port fails without touching the kernel.
    let listener = TcpListener::bind(cfg.metrics_addr).await.with_context(|| {
        format!(
            "cannot listen on {} (--metrics-addr): is another gatewatch running?",
            cfg.metrics_addr
        )
    })?;

    // Before attaching too: a client that cannot be configured fails early.
    let kube = kube_api(&cfg).await?;

    let mut probes = Probes::load_and_attach(&LoadOptions {
        cgroup: cfg.cgroup.clone(),
        ring_bytes: cfg.ring_bytes,
        ebpf_debug,
    })?;
    let ring = probes.take_ring()?;
    // SAFETY: the AsyncFd owns the ring buffer, so its fd stays open for as
    // long as it is registered.
    let mut ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
        .context("cannot poll the ring buffer")?;

    let (stop_tx, mut stop_rx) = watch::channel(false);
    let server = {
        let mut stop = stop_rx.clone();
        tokio::spawn(api::serve(listener, state.clone(), async move {
            let _ = stop.wait_for(|s| *s).await;
        }))
    };
    let classifier = Classifier::new(
        cfg.rules.clone(),
        Catalog::builtin().clone(),
        cfg.ignore.clone(),
        cfg.catalog_gateways,
    );
    let mut table = FlowTable::new(
        FlowSettings {
            name_wait: cfg.name_wait,
            record_other_endpoints: cfg.record_other_endpoints,
            max_pending: cfg.max_pending,
            dns_cache: cfg.dns_cache,
            label_cap: cfg.label_cap,
            max_live: crate::flows::DEFAULT_MAX_LIVE,
        },
        classifier,
        metrics.clone(),
        log,
        identify(
            &cfg,
            probes.cgroup.clone(),
            kube.as_ref().map(PodWatcher::pods),
        ),
    );
    let mut sigterm = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut sigint = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut tick = interval(TICK);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut drops = DropCounters::default();
    let mut next_drops = Instant::now();

    state.ready.store(true, Ordering::Release);
    log::info!("ready: metrics on http://{}/metrics", cfg.metrics_addr);
    loop {
        tokio::select! {
            guard = ring.readable_mut() => {
                let mut guard = guard.context("ring buffer poll failed")?;
                drain(guard.get_inner_mut(), &mut table, &metrics);
                guard.clear_ready();
            }
                        _ = tick.tick() => {
                // Records below the kernel's wakeup threshold arrive without a
                // wakeup: the tick collects them.
                drain(ring.get_mut(), &mut table, &metrics);
                table.expire(Instant::now().into_std());
                if Instant::now() >= next_drops {
                    drops.update(&probes, &metrics);
                    next_drops = Instant::now() + DROPS_EVERY;
                }
            }
            _ = sigterm.recv() => { log::info!("SIGTERM: detaching"); break; }
            _ = sigint.recv() => { log::info!("SIGINT: detaching"); break; }
            _ = stop_rx.changed() => break,
        }
    }
    state.ready.store(false, Ordering::Release);
    // Count what is already in the ring, then detach before flushing so no
    // connection is left half-seen.
    drain(ring.get_mut(), &mut table, &metrics);
    drops.update(&probes, &metrics);
    drop(ring);
    drop(probes);
    table.expire(Instant::now().into_std() + Duration::from_secs(3600));
    let _ = stop_tx.send(true);
    server
        .await
        .context("HTTP server task failed")?
        .context("HTTP server failed")?;
    log::info!("detached; bye");
    Ok(())
}

fn drain(
    ring: &mut aya::maps::RingBuf<aya::maps::MapData>,
    table: &mut FlowTable,
    metrics: &Metrics,
) {
    let now = std::time::Instant::now();
    while let Some(item) = ring.next() {
        match events::decode(&item) {
            Ok(event) => {
                table.handle(event, now);
            }
            Err(e) => {
                metrics.dropped.with_label_values(&["decode"]).inc();
                log::debug!("skipped a malformed ring record: {e}");
            }
        }
    }
}

#[derive(Default)]
struct DropCounters {
    last: [u64; observer_common::DROP_SLOTS as usize],
}

impl DropCounters {
    fn update(&mut self, probes: &Probes, metrics: &Metrics) {
        match probes.drop_counts() {
            Ok(now) => {
                for (slot, source) in DROP_SOURCES.iter().enumerate() {
                    let delta = now[slot].saturating_sub(self.last[slot]);
                    if delta > 0 {
                        metrics.dropped.with_label_values(&[source]).inc_by(delta);
                    }
                }
                self.last = now;
            }
            Err(e) => log::warn!("cannot read kernel drop counters: {e}"),
        }
    }
}

/// Workload names for flows: cgroup path → container → pod (kubelet's
/// node-local files), the process's executable, and whether it is one of
/// the configured gateway workloads.
fn identify(
    cfg: &Config,
    cgroup_root: std::path::PathBuf,
    kube: Option<KubePods>,
) -> crate::flows::Identify {
    let mut workloads = Workloads::new(WorkloadConfig {
        cgroup_root,
        ..cfg.workload_paths.clone()
    });
    if let Some(pods) = kube {
        workloads = workloads.with_kube_pods(pods);
    }
    let selectors = cfg.gateway_workloads.clone();
    Box::new(move |cgroup_id, tgid, comm| {
        let w = workloads.identify(cgroup_id, tgid);
        let is_gateway = selectors.iter().any(|s| s.matches(&w, comm));
        WorkloadInfo {
            namespace: w.namespace,
            pod: w.pod,
            container: w.container,
            exe: w.exe,
            is_gateway,
        }
    })
}

/// With `--kube-api`, the task watching this node's pods (stopped when
/// dropped). A client that cannot be configured is an error; an API server
/// that cannot be reached is not: the watcher retries with backoff and the
/// node-local files name workloads meanwhile.
async fn kube_api(cfg: &Config) -> anyhow::Result<Option<PodWatcher>> {
    if !cfg.kube_api {
        if cfg
            .gateway_workloads
            .iter()
            .any(|s| s.needs_kubernetes_api())
        {
            log::warn!("--gateway-workload: label= terms never match without --kube-api");
        }
        return Ok(None);
    }
    let node = cfg.node_name.as_deref().unwrap_or_default();
    let config = kube::Config::infer().await.context(
        "--kube-api: no Kubernetes client configuration (in-cluster service account, \
         KUBECONFIG or ~/.kube/config)",
    )?;
    let watcher = PodWatcher::spawn(config, node).context("--kube-api")?;
    log::info!("--kube-api: watching the pods on node {node}");
    Ok(Some(watcher))
}
