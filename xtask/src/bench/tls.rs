//! `--tls-probes`: what reading inside TLS costs. wrk (OpenSSL, keep-alive)
//! against nginx's HTTPS listener, named by a `--provider` rule so every
//! request is copied and parsed, in ABBA pairs: the daemon with
//! `--tls-probes=false` (baseline) and with the probes on. Per probe, its
//! BPF run time per call (the uprobe trap itself is not in it: the
//! throughput ratio shows that); and the daemon's CPU per request read.
use std::{collections::BTreeMap, thread, time::Instant};

use super::{
    SETTLE, WRK_CONNS, WRK_THREADS, kstats,
    load::{self, WrkResult},
    procs::{BpfStats, Cgroup, Daemon},
    report::{Throughput, TlsProbes},
};

/// The programs `--tls-probes` loads for OpenSSL (observer-ebpf's tls.rs),
/// as the kernel names them (15 bytes at most).
pub const TLS_PROGRAMS: [&str; 9] = [
    "sys_enter_conne",
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
    let provider = ["--provider".to_owned(), format!("bench={server}")];
    let off = [provider.to_vec(), vec!["--tls-probes=false".to_owned()]].concat();
    let stats = BpfStats::enable()?;
    let mut out = TlsProbes::default();
    let mut t = Throughput::default();
    for i in 0..pairs {
        let mut pair = (WrkResult::default(), WrkResult::default());
        let order = if i % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for with in order {
            let daemon = Daemon::start(bin, &cg.path, if with { &provider } else { &off })?;
            let ids = kstats::of_process(daemon.pid(), &TLS_PROGRAMS)?;
            let s0 = kstats::snapshot(&ids)?;
            let (cpu0, n0) = (daemon.cpu_seconds()?, requests(&daemon)?);
            let t0 = Instant::now();
            let res = load::wrk(cg, url, seconds, WRK_THREADS, WRK_CONNS, false)?;
            let wall = t0.elapsed().as_secs_f64();
            thread::sleep(SETTLE);
            if with {
                pair.1 = res;
                let n = requests(&daemon)? - n0;
                out.cpu_seconds += daemon.cpu_seconds()? - cpu0;
                out.requests += n;
                out.wall += wall;
                t.events += n;
                merge(
                    &mut out.probe_cost,
                    kstats::delta(&s0, &kstats::snapshot(&ids)?),
                );
            } else {
                pair.0 = res;
            }
            daemon.stop()?;
        }
        println!(
            "bench: --tls-probes, HTTPS keep-alive pair {}: {:.0} → {:.0} req/s",
            i + 1,
            pair.0.rps,
            pair.1.rps
        );
        t.pairs.push(pair);
    }
    drop(stats);
    out.keepalive = t;
    Ok(out)
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
