//! `gatewatch run`: attach, read the ring buffer, count, serve; detach on
//! SIGTERM or SIGINT.
use std::{sync::Arc, sync::atomic::Ordering, time::Duration};

use anyhow::Context as _;
use aya::maps::{MapData, RingBuf};
use tokio::{
    io::{Interest, unix::AsyncFd},
    net::TcpListener,
    signal::unix::{SignalKind, signal},
    sync::watch,
    time::{Instant, MissedTickBehavior, interval},
};

use super::{agent_audit, config::Config};
use crate::{
    capture::{
        Event, LoadError, LoadOptions, Probes,
        ring::{DropCounters, drain},
    },
    classification::{Catalog, Classifier},
    enforcement::{Enforcer, Mode as EnforceMode, kernel_tables},
    flows::{
        DEFAULT_MAX_LIVE, FlowSettings, FlowSink as _, FlowTable, Identify, Note, WorkloadInfo,
    },
    outputs::{AppState, FlowLog, Metrics, Outputs, api, otlp},
    workload::{KubePods, PodWatcher, Recent, WorkloadConfig, Workloads, read_comm},
};

/// How often the ring is drained without a wakeup and waiting connections
/// are checked against their name deadline: the bound on reporting latency
/// at low rates.
const TICK: Duration = Duration::from_millis(25);
/// How often the kernel's per-CPU drop counters are read and what ended is
/// swept (label sets past the series TTL, expired DNS answers).
const DROPS_EVERY: Duration = Duration::from_secs(1);
/// How often `--enforce deny` forgets the policy of processes that ended.
const POLICY_SWEEP_EVERY: Duration = Duration::from_secs(30);
/// How often `--tls-probes` looks for TLS libraries in new processes.
const TLS_SCAN_EVERY: Duration = Duration::from_secs(10);

pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::with_enforce(cfg.enforce));
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
    let (stop_tx, stop_rx) = watch::channel(false);
    // Before attaching too: a bad CA file or credential setting fails early.
    let agent_audit = agent_audit::spawn(&cfg, state.clone(), stop_rx.clone())?;
    let mut outputs = Outputs::new(metrics.clone(), log);
    let otlp = cfg.otlp.as_ref().map(|(endpoint, interval)| {
        let genai = otlp::SharedGenAi::default();
        outputs.set_genai(genai.clone());
        otlp::spawn(endpoint, *interval, genai, metrics.clone(), stop_rx.clone())
    });
    let mut pipeline = Pipeline::attach(&cfg, kube.as_ref(), outputs)?;

    let server = {
        let mut stop = stop_rx.clone();
        tokio::spawn(api::serve(listener, state.clone(), async move {
            let _ = stop.wait_for(|s| *s).await;
        }))
    };
    state.ready.store(true, Ordering::Release);
    log::info!("ready: metrics on http://{}/metrics", cfg.metrics_addr);
    pipeline.run_until_stopped(stop_rx).await?;
    state.ready.store(false, Ordering::Release);
    pipeline.detach();
    let _ = stop_tx.send(true);
    // An audit round in flight is not waited for: its requests end by
    // their own timeouts.
    if let Some(task) = agent_audit {
        task.abort();
    }
    // The last export, with what the drain added; bounded by its timeout.
    if let Some(task) = otlp {
        let _ = task.await;
    }
    server
        .await
        .context("HTTP server task failed")?
        .context("HTTP server failed")?;
    log::info!("detached; bye");
    Ok(())
}

/// The attached programs, their ring buffer and the flow table it feeds.
struct Pipeline {
    probes: Probes,
    ring: AsyncFd<RingBuf<MapData>>,
    table: FlowTable<Outputs>,
    drops: DropCounters,
    /// `--enforce deny` only.
    enforcer: Option<Enforcer>,
    /// `--tls-probes` only: cookies whose plaintext is not read.
    tls_skip: Option<aya::maps::HashMap<MapData, u64, u8>>,
    /// Processes that connected since the last batch (`--tls-probes`
    /// probes their libraries unless it has).
    connected: Vec<u32>,
    proc_root: std::path::PathBuf,
}

impl Pipeline {
    fn attach(cfg: &Config, kube: Option<&PodWatcher>, outputs: Outputs) -> anyhow::Result<Self> {
        let classifier = Classifier::new(
            cfg.rules.clone(),
            Catalog::builtin().clone(),
            cfg.ignore.clone(),
            cfg.catalog_gateways,
        );
        let enforce = (cfg.enforce == EnforceMode::Deny).then(|| kernel_tables(&classifier));
        if let Some(tables) = &enforce {
            tables
                .check_size()
                .map_err(|e| anyhow::anyhow!("--enforce deny: {e}"))?;
        }
        let mut probes = Probes::load_and_attach(&LoadOptions {
            cgroup: cfg.cgroup.clone(),
            ring_bytes: cfg.ring_bytes,
            ebpf_debug: cfg.ebpf_debug,
            proc_root: cfg.workload_paths.proc_root.clone(),
            quic_ports: cfg.quic_ports.clone(),
            enforce,
            tls_probes: cfg.tls_probes,
        })
        .map_err(|e| too_complex_for_this_kernel(e, cfg.enforce))?;
        let enforcer = match cfg.enforce {
            EnforceMode::Deny => {
                log::info!(
                    "--enforce deny: direct model calls are stopped except from gateway workloads and --allow-direct"
                );
                Some(Enforcer::new(
                    probes.take_policy()?,
                    probes.take_deny_addrs()?,
                    cfg.workload_paths.proc_root.clone(),
                    outputs.metrics.clone(),
                ))
            }
            EnforceMode::Audit => {
                log::info!("--enforce audit: direct model calls are counted, never stopped");
                None
            }
            EnforceMode::Off => None,
        };
        let tls_skip = probes.take_tls_skip()?;
        let ring = probes.take_ring()?;
        // SAFETY: the AsyncFd owns the ring buffer, so its fd stays open for as
        // long as it is registered.
        let ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
            .context("cannot poll the ring buffer")?;
        let settings = FlowSettings {
            name_wait: cfg.name_wait,
            record_other_endpoints: cfg.record_other_endpoints,
            max_pending: cfg.max_pending,
            dns_cache: cfg.dns_cache,
            label_cap: cfg.label_cap,
            max_live: DEFAULT_MAX_LIVE,
            series_ttl: cfg.series_ttl,
            enforce: cfg.enforce,
            tls_call_copy_max: probes
                .tls_call_copy_max()
                .unwrap_or(crate::inspection::connection::CALL_COPY_MAX),
        };
        let identify = identify(cfg, probes.cgroup.clone(), kube.map(PodWatcher::pods));
        Ok(Self {
            table: FlowTable::new(settings, classifier, outputs, identify),
            probes,
            ring,
            drops: DropCounters::default(),
            enforcer,
            tls_skip,
            connected: Vec::new(),
            proc_root: cfg.workload_paths.proc_root.clone(),
        })
    }

    /// Reads the ring on wakeups and on a short tick until SIGTERM, SIGINT
    /// or `stop`.
    async fn run_until_stopped(&mut self, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        let mut sigterm = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        let mut sigint = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
        let mut tick = interval(TICK);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut next_drops = Instant::now();
        let mut next_policy_sweep = Instant::now() + POLICY_SWEEP_EVERY;
        let mut next_tls_scan = Instant::now() + TLS_SCAN_EVERY;
        loop {
            tokio::select! {
                guard = self.ring.readable_mut() => {
                    let mut guard = guard.context("ring buffer poll failed")?;
                    drain_into(guard.get_inner_mut(), &mut self.table, &mut self.connected);
                    guard.clear_ready();
                    self.enforce();
                }
                _ = tick.tick() => {
                    // Records below the kernel's wakeup threshold arrive
                    // without a wakeup: the tick collects them.
                    drain_into(self.ring.get_mut(), &mut self.table, &mut self.connected);
                    self.table.expire(Instant::now().into_std());
                    self.enforce();
                    if Instant::now() >= next_drops {
                        self.count_kernel_drops();
                        self.table.sweep(Instant::now().into_std());
                        next_drops = Instant::now() + DROPS_EVERY;
                    }
                    if Instant::now() >= next_policy_sweep {
                        if let Some(enforcer) = &mut self.enforcer {
                            enforcer.sweep();
                        }
                        next_policy_sweep = Instant::now() + POLICY_SWEEP_EVERY;
                    }
                    if Instant::now() >= next_tls_scan {
                        let again = self.table.take_ai_tgids();
                        self.probes.scan_tls_libraries(&self.proc_root, &again);
                        next_tls_scan = Instant::now() + TLS_SCAN_EVERY;
                    }
                }
                _ = sigterm.recv() => { log::info!("SIGTERM: detaching"); return Ok(()); }
                _ = sigint.recv() => { log::info!("SIGINT: detaching"); return Ok(()); }
                _ = stop.changed() => return Ok(()),
            }
        }
    }

    /// Carries out what the flow table decided (`--enforce deny`), and
    /// tells the kernel which plaintext not to copy (`--tls-probes`).
    fn enforce(&mut self) {
        if self.tls_skip.is_some() {
            self.probes
                .scan_new_tls_processes(&self.proc_root, &self.connected);
        }
        self.connected.clear();
        let skips = self.table.take_tls_skips();
        if let Some(map) = &mut self.tls_skip {
            for cookie in skips {
                if let Err(e) = map.insert(cookie, 1, 0) {
                    log::debug!("--tls-probes: cannot mark socket {cookie} unread: {e}");
                }
            }
        }
        let actions = self.table.take_actions();
        if let Some(enforcer) = &mut self.enforcer {
            enforcer.apply(actions);
        }
    }

    /// Counts what is already in the ring, then detaches before flushing so
    /// no connection is left half-seen.
    fn detach(mut self) {
        drain_into(self.ring.get_mut(), &mut self.table, &mut self.connected);
        self.count_kernel_drops();
        drop(self.ring);
        drop(self.probes);
        self.table
            .expire(Instant::now().into_std() + Duration::from_secs(3600));
    }

    /// Adds the kernel's drops since the last reading to the metrics.
    fn count_kernel_drops(&mut self) {
        match self.drops.deltas(&self.probes) {
            Ok(deltas) => {
                let dropped = &self.table.sink().metrics.dropped;
                for (source, delta) in deltas {
                    if delta > 0 {
                        dropped.with_label_values(&[source]).inc_by(delta);
                    }
                }
            }
            Err(e) => log::warn!("cannot read kernel drop counters: {e}"),
        }
    }
}

/// `--enforce deny` adds a check of each connection's first bytes to the
/// egress program, which a kernel's verifier could reject as too complex
/// (6.1, 6.12 and 6.18 accept it): say so, and what to run instead.
fn too_complex_for_this_kernel(e: LoadError, enforce: EnforceMode) -> anyhow::Error {
    let too_large = matches!(&e, LoadError::Verifier { error, log, .. }
        if error.contains("Argument list too long") || log.contains("too large"));
    if enforce == EnforceMode::Deny && too_large {
        anyhow::Error::new(e).context(
            "--enforce deny: this kernel's BPF verifier rejects the first-bytes check as too \
             complex (it loads on Linux 6.1, 6.12 and 6.18). Run --enforce audit on this node, \
             or upgrade its kernel",
        )
    } else {
        e.into()
    }
}

/// Hands every waiting record to the flow table; malformed ones are
/// counted as `decode` drops.
fn drain_into(
    ring: &mut RingBuf<MapData>,
    table: &mut FlowTable<Outputs>,
    connected: &mut Vec<u32>,
) {
    let now = std::time::Instant::now();
    drain(ring, |record| match record {
        Ok(event) => {
            if let Event::Connect(c) = &event {
                connected.push(c.tgid);
            }
            table.handle(event, now);
        }
        Err(e) => {
            table.sink_mut().note(Note::Dropped("decode"));
            log::debug!("skipped a malformed ring record: {e}");
        }
    });
}

/// Workload names for flows: cgroup path → container → pod (kubelet's
/// node-local files), the process's executable, and whether it is one of
/// the configured gateway workloads.
fn identify(cfg: &Config, cgroup_root: std::path::PathBuf, kube: Option<KubePods>) -> Identify {
    let mut workloads = Workloads::new(WorkloadConfig {
        cgroup_root,
        ..cfg.workload_paths.clone()
    });
    if let Some(pods) = kube {
        workloads = workloads.with_kube_pods(pods);
    }
    let selectors = cfg.gateway_workloads.clone();
    let allow_direct = cfg.allow_direct.clone();
    let proc_root = cfg.workload_paths.proc_root.clone();
    let mut recent = Recent::default();
    Box::new(move |cgroup_id, tgid, comm| {
        // A caller without the connect record (a process held by
        // --enforce after its flow was counted) has no comm: read it.
        let read;
        let comm = if comm.is_empty() {
            read = read_comm(&proc_root, tgid).unwrap_or_default();
            read.as_str()
        } else {
            comm
        };
        let now = std::time::Instant::now();
        if let Some(info) = recent.get(cgroup_id, tgid, comm, now) {
            return info;
        }
        let w = workloads.identify(cgroup_id, tgid, comm);
        let is_gateway = selectors.iter().any(|s| s.matches(&w, comm));
        let allowed_direct = allow_direct.iter().any(|s| s.matches(&w, comm));
        // A container whose pod is not named yet is asked again next time.
        let complete = w.container_id.is_empty() || !w.pod.is_empty();
        let info = Arc::new(WorkloadInfo {
            namespace: w.namespace,
            pod: w.pod,
            container: w.container,
            exe: w.exe,
            is_gateway,
            allowed_direct,
        });
        if complete {
            recent.put(cgroup_id, tgid, comm, now, info.clone());
        }
        info
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
