//! gatewatch as deployed: attached at the cgroup v2 root, so the server's
//! sockets on the same node are observed too (the main setup attaches to a
//! bench-only cgroup and sees the client side only), with a `--provider`
//! rule naming the server so every connection is fully processed. The
//! baseline is the same load with no gatewatch running at all. The daemon
//! starts before and stops after each "with" run, so runs can alternate.
//! The same pairs run again under `--enforce deny` with nginx not named (it
//! is non-AI traffic there), for what enforcement costs everything else,
//! and once more with empty programs at the same hooks (`floor`), for what
//! the hooks cost before gatewatch does anything.
use std::{thread, time::Instant};

use super::{
    SETTLE, WRK_CONNS, WRK_THREADS,
    floor::Floor,
    load, perf,
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
    let provider = ["--provider".to_owned(), format!("bench={server}")];
    let mut d = Deployed::default();
    let perf_dir = TempDir::new("perf-daemon")?;
    let perf_data = perf_dir.0.join("daemon.data");
    let runs = Runs {
        bin,
        root: &root,
        cg,
        url,
        pairs,
        seconds,
    };
    for close in [false, true] {
        // The last new-connection run is also profiled (sampling costs the
        // daemon a little; the others are not sampled).
        let profile = close.then_some(perf_data.as_path());
        let (t, cpu) = runs.pairs("as deployed", With::Daemon(&provider), close, profile)?;
        if close {
            d.close = t;
            (d.cpu_seconds, d.connections, d.wall) = cpu;
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
    // --enforce deny with nginx not named: what non-AI traffic pays for
    // the kernel's first-bytes check.
    let deny = ["--enforce".to_owned(), "deny".to_owned()];
    (d.deny_keepalive, d.deny_close) =
        runs.both_shapes("under --enforce deny (non-AI)", With::Daemon(&deny))?;
    (d.floor_keepalive, d.floor_close) =
        runs.both_shapes("empty programs at the hooks", With::Floor)?;
    Ok(d)
}

/// The "with" side of a pair.
#[derive(Clone, Copy)]
enum With<'a> {
    /// gatewatch with these extra arguments.
    Daemon(&'a [String]),
    /// Empty programs at gatewatch's hooks, no daemon.
    Floor,
}

/// One load shape run in ABBA pairs without and with a daemon.
struct Runs<'a> {
    bin: &'a std::path::Path,
    root: &'a std::path::Path,
    cg: &'a Cgroup,
    url: &'a str,
    pairs: usize,
    seconds: u32,
}

impl Runs<'_> {
    /// Keep-alive pairs, then new-connection pairs, unprofiled.
    fn both_shapes(
        &self,
        what: &str,
        with_side: With<'_>,
    ) -> anyhow::Result<(Throughput, Throughput)> {
        let (keepalive, _) = self.pairs(what, with_side, false, None)?;
        let (close, _) = self.pairs(what, with_side, true, None)?;
        Ok((keepalive, close))
    }

    /// The pairs, and the daemon's (CPU seconds, connections, wall seconds)
    /// over the "with" runs; the last "with" run is profiled into
    /// `profile` when given.
    fn pairs(
        &self,
        what: &str,
        with_side: With<'_>,
        close: bool,
        profile: Option<&std::path::Path>,
    ) -> anyhow::Result<(Throughput, (f64, f64, f64))> {
        let mut t = Throughput::default();
        let mut cpu = (0.0, 0.0, 0.0);
        let wrk = || {
            load::wrk(
                self.cg,
                self.url,
                self.seconds,
                WRK_THREADS,
                WRK_CONNS,
                close,
            )
        };
        let shape = if close { "close" } else { "keep-alive" };
        t.pairs = load::abba(&format!("{what}, {shape}"), self.pairs, |i, with| {
            let extra = match (with, with_side) {
                (false, _) => return wrk(),
                (true, With::Floor) => {
                    let _floor = Floor::attach(self.root)?;
                    return wrk();
                }
                (true, With::Daemon(extra)) => extra,
            };
            let daemon = Daemon::start(self.bin, self.root, extra)?;
            let (cpu0, n0) = (daemon.cpu_seconds()?, connections(&daemon)?);
            let mut recorder = match profile {
                Some(data) if i + 1 == self.pairs => {
                    Some(perf::record_process(data, daemon.pid(), self.seconds)?)
                }
                _ => None,
            };
            let t0 = Instant::now();
            let res = wrk()?;
            let wall = t0.elapsed().as_secs_f64();
            if let Some(rec) = recorder.as_mut() {
                rec.wait()?;
            }
            // Let the daemon finish what the load left in the ring.
            thread::sleep(SETTLE);
            let n = connections(&daemon)? - n0;
            t.events += n;
            cpu.0 += daemon.cpu_seconds()? - cpu0;
            cpu.1 += n;
            cpu.2 += wall;
            daemon.stop()?;
            Ok(res)
        })?;
        Ok((t, cpu))
    }
}

fn connections(daemon: &Daemon) -> anyhow::Result<f64> {
    Ok(daemon.metrics()?.sum("gatewatch_connections_total", &[]))
}
