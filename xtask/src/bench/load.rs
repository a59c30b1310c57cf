//! Load: `wrk` for throughput, and a paced connection generator for fixed
//! connection rates. The generator is this same xtask binary started again
//! with `GATEWATCH_BENCH_LOADGEN` set, so it can be placed in a cgroup as
//! its own process.
use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use super::procs::Cgroup;

pub const LOADGEN_ENV: &str = "GATEWATCH_BENCH_LOADGEN";
const IO_TIMEOUT: Duration = Duration::from_secs(3);
/// Past its planned length a generator run stops starting connections
/// after this much extra time, however far behind it is.
const OVERRUN: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, Default)]
pub struct WrkResult {
    pub rps: f64,
    pub errors: u64,
}

/// `pairs` side-by-side pairs of `run(pair, with)` (false: the baseline,
/// true: the side measured), alternating which side runs first (ABBA) so
/// drift cancels; (baseline, with) per pair, each printed as it ends.
pub fn abba(
    what: &str,
    pairs: usize,
    mut run: impl FnMut(usize, bool) -> anyhow::Result<WrkResult>,
) -> anyhow::Result<Vec<(WrkResult, WrkResult)>> {
    let mut out = Vec::with_capacity(pairs);
    for i in 0..pairs {
        let mut pair = (WrkResult::default(), WrkResult::default());
        let order = if i.is_multiple_of(2) {
            [false, true]
        } else {
            [true, false]
        };
        for with in order {
            let res = run(i, with)?;
            if with {
                pair.1 = res;
            } else {
                pair.0 = res;
            }
        }
        println!(
            "bench: {what} pair {}: {:.0} → {:.0} req/s",
            i + 1,
            pair.0.rps,
            pair.1.rps
        );
        out.push(pair);
    }
    Ok(out)
}

/// One `wrk` run from inside `cgroup`: `conns` connections on `threads`
/// threads for `seconds`; `close` adds `Connection: close`, so nginx
/// closes after each answer and wrk reconnects (one connection per request).
pub fn wrk(
    cgroup: &Cgroup,
    url: &str,
    seconds: u32,
    threads: u32,
    conns: u32,
    close: bool,
) -> anyhow::Result<WrkResult> {
    let mut cmd = Command::new("wrk");
    cmd.args([
        &format!("-t{threads}"),
        &format!("-c{conns}"),
        &format!("-d{seconds}s"),
        "--timeout",
        "5s",
    ]);
    if close {
        cmd.args(["-H", "Connection: close"]);
    }
    cmd.arg(url).stdin(Stdio::null());
    cgroup.place(&mut cmd);
    let out = cmd.output().context("start wrk (is wrk installed?)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "wrk failed ({}): {text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parse_wrk(&text).with_context(|| format!("unexpected wrk output:\n{text}"))
}

fn parse_wrk(text: &str) -> Option<WrkResult> {
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))?
        .trim()
        .parse()
        .ok()?;
    // "Socket errors: connect 0, read 0, write 0, timeout 0"
    let errors = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Socket errors:"))
        .map(|rest| {
            rest.split(',')
                .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    Some(WrkResult { rps, errors })
}

#[derive(Debug, Clone, Copy, Default)]
pub struct LoadResult {
    pub ok: u64,
    pub failed: u64,
    pub seconds: f64,
}

impl LoadResult {
    /// Completed connections per second.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.seconds.max(1e-9)
    }
}

/// Runs the paced generator inside `cgroup`: `rate` connections per second
/// for `seconds` over `threads` threads, round-robin over `targets`. Each
/// connection is connect, one HTTP request with `Connection: close`, read
/// the answer to EOF, close.
pub fn paced(
    cgroup: &Cgroup,
    rate: f64,
    seconds: f64,
    threads: u32,
    targets: &[String],
) -> anyhow::Result<LoadResult> {
    // This very binary, even if cargo has since replaced the file.
    let exe = "/proc/self/exe";
    let spec = format!("{rate} {seconds} {threads} {}", targets.join(","));
    let mut cmd = Command::new(exe);
    cmd.arg("bench")
        .env(LOADGEN_ENV, spec)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    cgroup.place(&mut cmd);
    let out = cmd.output().context("start the load generator")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("load generator failed ({}): {text}", out.status);
    }
    let nums: Vec<f64> = text
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let [ok, failed, seconds] = nums[..] else {
        bail!("unexpected load generator output: {text:?}");
    };
    Ok(LoadResult {
        ok: ok as u64,
        failed: failed as u64,
        seconds,
    })
}

/// The generator's own process: parses the spec from the environment and
/// prints `OK FAILED SECONDS`.
pub fn loadgen_main(spec: &str) -> anyhow::Result<()> {
    let mut words = spec.split_whitespace();
    let mut next = |what: &str| words.next().with_context(|| format!("spec lacks {what}"));
    let rate: f64 = next("rate")?.parse()?;
    let seconds: f64 = next("seconds")?.parse()?;
    let threads: usize = next("threads")?.parse()?;
    let targets: Vec<SocketAddr> = next("targets")?
        .split(',')
        .map(|t| t.parse())
        .collect::<Result<_, _>>()?;
    if !(rate > 0.0 && seconds > 0.0 && threads > 0 && !targets.is_empty()) {
        bail!("bad load generator spec {spec:?}");
    }
    let targets = Arc::new(targets);
    let total = (rate * seconds).round() as u64;
    let (next_n, ok, failed) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let start = Instant::now();
    let stop_at = start + Duration::from_secs_f64(seconds) + OVERRUN;
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (targets, next_n, ok, failed) =
                (targets.clone(), next_n.clone(), ok.clone(), failed.clone());
            thread::spawn(move || {
                loop {
                    // Connection n is due n / rate seconds after the start.
                    let n = next_n.fetch_add(1, Ordering::Relaxed);
                    if n >= total || Instant::now() > stop_at {
                        return;
                    }
                    let due = start + Duration::from_secs_f64(n as f64 / rate);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        thread::sleep(wait);
                    }
                    let target = targets[(n % targets.len() as u64) as usize];
                    let counter = if one(target).is_ok() { &ok } else { &failed };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    println!(
        "{} {} {:.4}",
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn one(target: SocketAddr) -> std::io::Result<()> {
    let mut s = TcpStream::connect_timeout(&target, IO_TIMEOUT)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.write_all(
        b"GET /v1/models HTTP/1.1\r\nHost: api.bench.gatewatch.test\r\nConnection: close\r\n\r\n",
    )?;
    const CAP: usize = 1024;
    let mut reply = [0u8; CAP];
    let mut got = 0;
    loop {
        match s.read(&mut reply[got.min(CAP - 1)..])? {
            0 => break,
            n => got += n,
        }
    }
    if !reply.starts_with(b"HTTP/1.") {
        return Err(std::io::Error::other("no HTTP answer"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_wrk_output() {
        let text = "Running 4s test @ http://127.0.0.1:1/\n  1 threads and 32 connections\n\
  Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency   1.00ms  0.5ms  10ms  90%\n\
  123456 requests in 4.00s, 20.00MB read\n  Socket errors: connect 0, read 3, write 0, timeout 1\n\
Requests/sec:  30864.00\nTransfer/sec:      5.00MB\n";
        let r = parse_wrk(text).unwrap();
        assert_eq!((r.rps, r.errors), (30864.0, 4));
    }
}
