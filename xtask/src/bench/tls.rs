//! `--tls-probes`: what reading inside TLS costs. wrk (OpenSSL, keep-alive)
//! against nginx's HTTPS listener in ABBA pairs, the daemon with
//! `--tls-probes=false` (baseline) and with the probes on: once with nginx
//! named by a `--provider` rule, so every request is copied and parsed, and
//! once unnamed (non-AI traffic, which pays the uprobe traps only). Per probe, its
//! BPF run time per call (the uprobe trap itself is not in it: the
//! throughput ratio shows that); and the daemon's CPU per request read.
use std::{collections::BTreeMap, thread, time::Instant};

use super::{
    SETTLE, WRK_CONNS, WRK_THREADS, kstats, load,
    procs::{BpfStats, Cgroup, Daemon},
    report::{Throughput, TlsProbes},
};

/// The programs `--tls-probes` loads for OpenSSL (observer-ebpf's tls.rs).
pub const TLS_PROGRAMS: [&str; 9] = [
    "sys_enter_connect",
    "sys_enter_send",
    "ssl_set_fd",
    "ssl_handshake",
    "ssl_write",
    "ssl_write_ex",
    "ssl_read",
    "ssl_read_ex",
    "ssl_return",
];

pub fn run(
    bin: &std::path::Path,
    cg: &Cgroup,
    url: &str,
    server: &str,
    pairs: usize,
    seconds: u32,
) -> anyhow::Result<TlsProbes> {
    let stats = BpfStats::enable()?;
    let mut out = TlsProbes::default();
    let runs = Runs {
        bin,
        cg,
        url,
        pairs,
        seconds,
    };
    // AI traffic: nginx named by a provider rule, every request read.
    let provider = ["--provider".to_owned(), format!("bench={server}")];
    out.keepalive = runs.pairs("AI", &provider, &mut out)?;
    // Non-AI traffic: the probes still trap on every call; nothing is
    // copied after each connection's first call.
    let mut other = TlsProbes::default();
    out.keepalive_other = runs.pairs("non-AI", &[], &mut other)?;
    drop(stats);
    Ok(out)
}

struct Runs<'a> {
    bin: &'a std::path::Path,
    cg: &'a Cgroup,
    url: &'a str,
    pairs: usize,
    seconds: u32,
}

impl Runs<'_> {
    /// ABBA pairs with `extra`, probes off and on; the "with" runs' cost
    /// goes into `out`.
    fn pairs(
        &self,
        what: &str,
        extra: &[String],
        out: &mut TlsProbes,
    ) -> anyhow::Result<Throughput> {
        let on = [extra.to_vec(), vec!["--tls-probes".to_owned()]].concat();
        let off = [extra.to_vec(), vec!["--tls-probes=false".to_owned()]].concat();
        let mut t = Throughput::default();
        let label = format!("--tls-probes, {what} HTTPS keep-alive");
        t.pairs = load::abba(&label, self.pairs, |_, with| {
            let daemon = Daemon::start(self.bin, &self.cg.path, if with { &on } else { &off })?;
            let ids = kstats::of_process(daemon.pid(), &TLS_PROGRAMS)?;
            let s0 = kstats::snapshot(&ids)?;
            let (cpu0, n0) = (daemon.cpu_seconds()?, requests(&daemon)?);
            let t0 = Instant::now();
            let res = load::wrk(
                self.cg,
                self.url,
                self.seconds,
                WRK_THREADS,
                WRK_CONNS,
                false,
            )?;
            let wall = t0.elapsed().as_secs_f64();
            thread::sleep(SETTLE);
            if with {
                let n = requests(&daemon)? - n0;
                out.cpu_seconds += daemon.cpu_seconds()? - cpu0;
                out.requests += n;
                out.wall += wall;
                t.events += n;
                merge(
                    &mut out.probe_cost,
                    kstats::delta(&s0, &kstats::snapshot(&ids)?),
                );
            }
            daemon.stop()?;
            Ok(res)
        })?;
        Ok(t)
    }
}

/// Adds one run's (runs, mean ns) per program to the totals.
fn merge(
    total: &mut BTreeMap<String, (u64, Option<f64>)>,
    run: BTreeMap<String, (u64, Option<f64>)>,
) {
    for (name, (cnt, mean)) in run {
        let e = total.entry(name).or_insert((0, None));
        let ns = e.1.unwrap_or(0.0) * e.0 as f64 + mean.unwrap_or(0.0) * cnt as f64;
        e.0 += cnt;
        e.1 = (e.0 > 0).then(|| ns / e.0 as f64);
    }
}

fn requests(daemon: &Daemon) -> anyhow::Result<f64> {
    Ok(daemon.metrics()?.sum("gatewatch_requests_total", &[]))
}
