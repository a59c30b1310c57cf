//! A paced TCP load generator for the soak and hardening tests: opens
//! connections at a fixed rate for a fixed time, each one a complete
//! exchange (connect, send a small HTTP request, read the reply to EOF,
//! close), then prints what it did as one JSON line and exits. Bounded:
//! it stops after `--seconds` however the peers behave (each connection
//! has a 3 s connect and read timeout).
//!
//! gwload [--rate PER_SEC] [--seconds S] [--threads T] [--hosts N] ADDR...
//!
//! Connections go round-robin over the ADDRs; the request's Host header
//! cycles over `h0.soak.test` .. `h{N-1}.soak.test` (N = 1 by default), so
//! a run can also stress label caps. Its `comm` is `gwload`.
//!
//! Output: {"attempted":A,"ok":O,"failed":F,"seconds":S,"rate":R}
//! Exit status is non-zero when any connection failed.
use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

const IO_TIMEOUT: Duration = Duration::from_secs(3);
/// First errors are printed; the rest only counted.
const ERRORS_SHOWN: u64 = 5;

struct Opts {
    rate: f64,
    seconds: f64,
    threads: usize,
    hosts: u64,
    targets: Vec<SocketAddr>,
}

fn parse() -> Result<Opts, String> {
    let mut o = Opts {
        rate: 100.0,
        seconds: 5.0,
        threads: 4,
        hosts: 1,
        targets: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--rate" => o.rate = val()?.parse().map_err(|e| format!("--rate: {e}"))?,
            "--seconds" => o.seconds = val()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--threads" => o.threads = val()?.parse().map_err(|e| format!("--threads: {e}"))?,
            "--hosts" => o.hosts = val()?.parse().map_err(|e| format!("--hosts: {e}"))?,
            t => o
                .targets
                .push(t.parse().map_err(|e| format!("bad target {t:?}: {e}"))?),
        }
    }
    if o.targets.is_empty() {
        return Err("no target address".into());
    }
    if !(o.rate > 0.0 && o.seconds >= 0.0 && o.threads > 0 && o.hosts > 0) {
        return Err("--rate, --threads and --hosts must be positive".into());
    }
    Ok(o)
}

fn one(target: SocketAddr, host: u64) -> std::io::Result<()> {
    let mut s = TcpStream::connect_timeout(&target, IO_TIMEOUT)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    // One write, so the head leaves in one segment (gatewatch names plain
    // HTTP from the first segment only).
    let request =
        format!("GET /v1/models HTTP/1.1\r\nHost: h{host}.soak.test\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes())?;
    let mut reply = Vec::new();
    s.read_to_end(&mut reply)?;
    if !reply.starts_with(b"HTTP/1.") {
        return Err(std::io::Error::other("no HTTP reply"));
    }
    Ok(())
}

fn main() -> ExitCode {
    let o = match parse() {
        Ok(o) => Arc::new(o),
        Err(e) => {
            eprintln!("gwload: {e}");
            return ExitCode::from(2);
        }
    };
    let total = (o.rate * o.seconds).round() as u64;
    let next = Arc::new(AtomicU64::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..o.threads)
        .map(|_| {
            let (o, next, ok, failed) = (o.clone(), next.clone(), ok.clone(), failed.clone());
            thread::spawn(move || {
                loop {
                    // Connection n is due at n / rate seconds after the start.
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= total {
                        return;
                    }
                    let due = start + Duration::from_secs_f64(n as f64 / o.rate);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        thread::sleep(wait);
                    }
                    let target = o.targets[(n % o.targets.len() as u64) as usize];
                    match one(target, n % o.hosts) {
                        Ok(()) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            if failed.fetch_add(1, Ordering::Relaxed) < ERRORS_SHOWN {
                                eprintln!("gwload: {target}: {e}");
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    let seconds = start.elapsed().as_secs_f64();
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    println!(
        "{{\"attempted\":{},\"ok\":{ok},\"failed\":{failed},\"seconds\":{seconds:.3},\"rate\":{:.1}}}",
        ok + failed,
        (ok + failed) as f64 / seconds.max(1e-9)
    );
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
