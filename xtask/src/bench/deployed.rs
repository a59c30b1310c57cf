//! gatewatch as deployed: attached at the cgroup v2 root, so the server's
//! sockets on the same node are observed too (the main setup attaches to a
//! bench-only cgroup and sees the client side only), with a `--provider`
//! rule naming the server so every connection is fully processed. The
//! baseline is the same load with no gatewatch running at all. The daemon
//! starts before and stops after each "with" run, so runs can alternate.
use std::{thread, time::Instant};

use super::{
    SETTLE, WRK_CONNS, WRK_THREADS,
    load::{self, WrkResult},
    perf,
    procs::{Cgroup, Daemon, TempDir, cgroup2_root},
    report::{Deployed, Throughput},
};

/// Functions listed from the daemon's profile.
const PROFILE_ROWS: usize = 20;

pub fn run(
    bin: &std::path::Path,
    cg: &Cgroup,
    url: &str,
    server: &str,
    pairs: usize,
    seconds: u32,
) -> anyhow::Result<Deployed> {
    let root = cgroup2_root()?;
    let extra = ["--provider".to_owned(), format!("bench={server}")];
    let mut d = Deployed::default();
    let perf_dir = TempDir::new("perf-daemon")?;
    let perf_data = perf_dir.0.join("daemon.data");
    for close in [false, true] {
        let mut t = Throughput::default();
        for i in 0..pairs {
            let mut pair = (WrkResult::default(), WrkResult::default());
            let order = if i % 2 == 0 {
                [false, true]
            } else {
                [true, false]
            };
            for with in order {
                if !with {
                    pair.0 = load::wrk(cg, url, seconds, WRK_THREADS, WRK_CONNS, close)?;
                    continue;
                }
                let daemon = Daemon::start(bin, &root, &extra)?;
                let (cpu0, n0) = (daemon.cpu_seconds()?, connections(&daemon)?);
                // The last new-connection run is also profiled (sampling
                // costs the daemon a little; the others are not sampled).
                let profiled = close && i + 1 == pairs;
                let mut recorder = if profiled {
                    Some(perf::record_process(&perf_data, daemon.pid(), seconds)?)
                } else {
                    None
                };
                let t0 = Instant::now();
                pair.1 = load::wrk(cg, url, seconds, WRK_THREADS, WRK_CONNS, close)?;
                let wall = t0.elapsed().as_secs_f64();
                if let Some(rec) = recorder.as_mut() {
                    rec.wait()?;
                }
                // Let the daemon finish what the load left in the ring.
                thread::sleep(SETTLE);
                let cpu = daemon.cpu_seconds()? - cpu0;
                let n = connections(&daemon)? - n0;
                t.events += n;
                if close {
                    d.cpu_seconds += cpu;
                    d.connections += n;
                    d.wall += wall;
                }
                daemon.stop()?;
            }
            println!(
                "bench: as deployed, {} pair {}: {:.0} → {:.0} req/s",
                if close { "close" } else { "keep-alive" },
                i + 1,
                pair.0.rps,
                pair.1.rps
            );
            t.pairs.push(pair);
        }
        if close {
            d.close = t;
            match perf::top_functions(&perf_data, PROFILE_ROWS) {
                Ok((rows, kernel)) => {
                    d.profile = rows;
                    d.profile_kernel = kernel;
                }
                Err(e) => d.profile_error = Some(format!("{e:#}")),
            }
        } else {
            d.keepalive = t;
        }
    }
    Ok(d)
}

fn connections(daemon: &Daemon) -> anyhow::Result<f64> {
    Ok(daemon.metrics()?.sum("gatewatch_connections_total", &[]))
}
