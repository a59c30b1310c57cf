//! `cargo xtask bench`: gatewatch's overhead, measured side by side in one
//! run, written to BENCHMARKS.md (overwritten).
//!
//! Setup: nginx on loopback (private prefix), two sibling cgroups under the
//! cgroup v2 root, and one release gatewatch attached to the first
//! ("watched") only. A baseline run is the same load from the second
//! ("plain") cgroup, which no program is attached to; runs alternate
//! between the two in ABBA order so drift cancels. Then: per-program kernel
//! cost from BPF run-time statistics, gatewatch's CPU at a fixed connection
//! rate, a ramp of connection rates watching the drop counter, criterion
//! benchmarks of the userspace pipeline and parsers, and an in-process
//! memory measurement at 100k flows and names.
//!
//! Everything runs on loopback, is bounded in time, and is undone by drop
//! guards (processes stopped by pid, cgroups removed, statistics off).
mod deployed;
mod floor;
mod kstats;
mod load;
mod machine;
mod perf;
mod procs;
mod report;
mod tls;

use std::{
    collections::BTreeMap,
    path::PathBuf,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use load::LoadResult;
use procs::{BpfStats, Cgroup, Daemon, Nginx};

/// `GATEWATCH_BENCH_QUICK=1`: every phase shortened, to check the tooling
/// end to end in about a minute (numbers meaningless; the report says so).
const QUICK_ENV: &str = "GATEWATCH_BENCH_QUICK";

fn quick() -> bool {
    std::env::var(QUICK_ENV).is_ok_and(|v| v == "1")
}

/// Side-by-side pairs per throughput test, and seconds per wrk run.
fn pairs() -> usize {
    if quick() { 1 } else { 6 }
}
fn wrk_seconds() -> u32 {
    if quick() { 1 } else { 5 }
}
/// wrk shape: one thread (nginx has one worker: one core each).
const WRK_THREADS: u32 = 1;
const WRK_CONNS: u32 = 32;
const NGINX_WORKERS: u32 = 1;
/// Fixed rate for gatewatch's own CPU and RSS.
const CPU_RATE: f64 = 5_000.0;
fn cpu_seconds() -> f64 {
    if quick() { 2.0 } else { 10.0 }
}
/// Connection-rate ramp for the loss test.
const RAMP: [f64; 9] = [
    2_000.0, 5_000.0, 10_000.0, 15_000.0, 20_000.0, 25_000.0, 30_000.0, 40_000.0, 60_000.0,
];
fn ramp_seconds() -> f64 {
    if quick() { 1.0 } else { 3.0 }
}
const LOADGEN_THREADS: u32 = 16;
/// gatewatch reads the kernel drop counters once a second.
const SETTLE: Duration = Duration::from_millis(1_500);

pub fn run() -> anyhow::Result<()> {
    if let Ok(spec) = std::env::var(load::LOADGEN_ENV) {
        return load::loadgen_main(&spec);
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("cargo xtask bench attaches BPF programs and creates cgroups: run it as root");
    }
    let started = Instant::now();
    let (machine0, own0) = (machine::machine_cpu_seconds(), machine::own_cpu_seconds());
    let steal0 = machine::steal_seconds();
    let mut r = report::Report {
        date: machine::now_utc(),
        machine: machine::describe(),
        load_start: machine::load1(),
        builds_start: machine::other_builds(),
        quick: quick(),
        ..Default::default()
    };
    crate::install::toolchain()?;
    crate::install::debian_packages(&["nginx-light", "wrk", "bpftool", "linux-perf"])?;
    let bin = crate::build(true)?;
    // Compile the criterion and memory benchmarks now, so no compiler
    // competes with the measurements below.
    crate::status(crate::cargo().args(["bench", "--package", "observer", "--no-run"]))?;
    r.tools = tools(&bin);

    system(&bin, &mut r)?;
    userspace(&mut r)?;

    r.load_end = machine::load1();
    r.builds_end = machine::other_builds();
    r.minutes = started.elapsed().as_secs_f64() / 60.0;
    // CPU time the rest of the machine used meanwhile.
    r.others_cpu = ((machine::machine_cpu_seconds() - machine0)
        - (machine::own_cpu_seconds() - own0))
        .max(0.0);
    let capacity = started.elapsed().as_secs_f64() * r.machine.cpus.max(1) as f64;
    r.others_share = r.others_cpu / capacity;
    r.steal_cpu = (machine::steal_seconds() - steal0).max(0.0);
    r.steal_share = r.steal_cpu / capacity;
    let path = crate::workspace_root().join("BENCHMARKS.md");
    std::fs::write(&path, r.render()).with_context(|| format!("write {}", path.display()))?;
    println!("bench: wrote {}", path.display());
    Ok(())
}

fn tools(bin: &std::path::Path) -> Vec<(String, String)> {
    use std::process::Command;
    let sha = machine::command_line(
        Command::new("git")
            .args(["describe", "--always", "--dirty"])
            .current_dir(crate::workspace_root()),
    );
    vec![
        (
            "gatewatch".into(),
            format!(
                "{} (release build, git {sha})",
                machine::command_line(Command::new(bin).arg("--version"))
            ),
        ),
        (
            "nginx".into(),
            machine::command_line(Command::new("nginx").arg("-v")),
        ),
        (
            "wrk".into(),
            machine::command_line(Command::new("wrk").arg("-v")),
        ),
        (
            "bpftool".into(),
            machine::command_line(Command::new("bpftool").arg("version")),
        ),
    ]
}

/// Everything that needs the kernel programs, nginx and load, in phases.
fn system(bin: &std::path::Path, r: &mut report::Report) -> anyhow::Result<()> {
    let tag = format!("gw-bench-{}", std::process::id());
    let watched = Cgroup::new(&format!("{tag}-watched"))?;
    let plain = Cgroup::new(&format!("{tag}-plain"))?;
    let nginx = Nginx::start(NGINX_WORKERS)?;
    let daemon = Daemon::start(bin, &watched.path, &[])?;
    r.rss_idle_kib = daemon.status_kib("VmRSS:")?;
    r.root_programs = kstats::attached(&procs::cgroup2_root()?)
        .map(|m| m.len())
        .unwrap_or(0);
    r.nginx_workers = nginx.workers;
    let setup = Setup {
        daemon: &daemon,
        watched: &watched,
        plain: &plain,
        url: nginx.url(),
        targets: nginx.targets(),
    };
    setup.check()?;
    setup.throughput_pairs(r)?;
    setup.kernel_cost(r)?;
    setup.daemon_cpu(r)?;
    setup.ramp(r)?;
    r.rss_after_kib = daemon.status_kib("VmRSS:")?;
    r.hwm_kib = daemon.status_kib("VmHWM:")?;
    r.dropped_by_source = daemon
        .metrics()?
        .samples("gatewatch_events_dropped_total")
        .into_iter()
        .collect::<BTreeMap<_, _>>();
    daemon.stop()?;
    r.tls = tls::run(
        bin,
        &plain,
        &nginx.tls_url(),
        &format!("127.0.0.1:{}", nginx.tls_port),
        pairs(),
        wrk_seconds(),
    )?;
    r.deployed = deployed::run(
        bin,
        &plain,
        &nginx.url(),
        &nginx.targets()[0],
        pairs(),
        wrk_seconds(),
    )?;
    drop(nginx);
    Ok(())
}

/// A running daemon watching one cgroup, a plain cgroup beside it, and nginx.
struct Setup<'a> {
    daemon: &'a Daemon,
    watched: &'a Cgroup,
    plain: &'a Cgroup,
    url: String,
    targets: Vec<String>,
}

impl Setup<'_> {
    fn events(&self) -> anyhow::Result<f64> {
        Ok(self.daemon.metrics()?.sum("gatewatch_events_total", &[]))
    }

    /// The watched cgroup is observed, the plain one not.
    fn check(&self) -> anyhow::Result<()> {
        let before = self.events()?;
        load::paced(self.plain, 200.0, 0.5, 2, &self.targets)?;
        thread::sleep(Duration::from_millis(400));
        let mid = self.events()?;
        load::paced(self.watched, 200.0, 0.5, 2, &self.targets)?;
        thread::sleep(Duration::from_millis(600));
        let after = self.events()?;
        if mid != before || after <= mid {
            bail!(
                "setup check failed: events from the plain cgroup {}, from the watched one {}",
                mid - before,
                after - mid
            );
        }
        println!(
            "bench: setup ok ({} events from 100 watched connections, none from the plain cgroup)",
            after - mid
        );
        Ok(())
    }

    /// wrk → nginx without and with gatewatch, keep-alive and new
    /// connections, in ABBA pairs.
    fn throughput_pairs(&self, r: &mut report::Report) -> anyhow::Result<()> {
        // Warm up both paths once (page cache, nginx, TCP memory).
        for cg in [self.plain, self.watched] {
            load::wrk(cg, &self.url, 1, WRK_THREADS, WRK_CONNS, false)?;
            load::wrk(cg, &self.url, 1, WRK_THREADS, WRK_CONNS, true)?;
        }
        for close in [false, true] {
            let events_before = self.events()?;
            let shape = if close { "close" } else { "keep-alive" };
            let pairs = load::abba(shape, self::pairs(), |_, with| {
                let cg = if with { self.watched } else { self.plain };
                load::wrk(cg, &self.url, wrk_seconds(), WRK_THREADS, WRK_CONNS, close)
            })?;
            let events = self.events()? - events_before;
            let t = report::Throughput { pairs, events };
            if close {
                r.close = t;
            } else {
                r.keepalive = t;
            }
        }
        Ok(())
    }

    /// Kernel cost per program, from BPF run-time statistics, and where
    /// that time goes (perf call graphs over another run, separate so
    /// sampling does not inflate the statistics).
    fn kernel_cost(&self, r: &mut report::Report) -> anyhow::Result<()> {
        let stats = BpfStats::enable()?;
        r.stats_how = stats.how().into();
        let mut ids = kstats::attached(&self.watched.path)?;
        // --tls-probes' tracepoint runs on every connect() too.
        ids.extend(kstats::of_process(
            self.daemon.pid(),
            &["sys_enter_connect"],
        )?);
        let s0 = kstats::snapshot(&ids)?;
        let ka = load::wrk(
            self.watched,
            &self.url,
            wrk_seconds(),
            WRK_THREADS,
            WRK_CONNS,
            false,
        )?;
        let s1 = kstats::snapshot(&ids)?;
        let cl = load::wrk(
            self.watched,
            &self.url,
            wrk_seconds(),
            WRK_THREADS,
            WRK_CONNS,
            true,
        )?;
        let s2 = kstats::snapshot(&ids)?;
        r.kcost_keepalive = kstats::delta(&s0, &s1);
        r.kcost_close = kstats::delta(&s1, &s2);
        r.kcost_rps = (ka.rps, cl.rps);
        drop(stats);
        let names: Vec<String> = ids.keys().cloned().collect();
        r.kprofile_loaded = kstats::loaded_with_names(&names)?;
        match kernel_profile(self.watched, &self.url, &names) {
            Ok(a) => r.kprofile = Some(a),
            Err(e) => r.kprofile_error = Some(format!("{e:#}")),
        }
        Ok(())
    }

    /// gatewatch's own CPU and RSS at a fixed connection rate.
    fn daemon_cpu(&self, r: &mut report::Report) -> anyhow::Result<()> {
        let daemon = self.daemon;
        let cs0 = daemon.context_switches()?;
        let cpu0 = daemon.cpu_seconds()?;
        let e0 = self.events()?;
        let t0 = Instant::now();
        let res = load::paced(
            self.watched,
            CPU_RATE,
            cpu_seconds(),
            LOADGEN_THREADS,
            &self.targets,
        )?;
        let wall = t0.elapsed().as_secs_f64();
        let cpu = daemon.cpu_seconds()? - cpu0;
        let switches = daemon.context_switches()? - cs0;
        thread::sleep(SETTLE);
        r.cpu = report::CpuRun {
            switches,
            load: res,
            cpu_percent: 100.0 * cpu / wall,
            events: self.events()? - e0,
            wall,
            rss_kib: daemon.status_kib("VmRSS:")?,
        };
        println!(
            "bench: {:.0} conn/s: gatewatch at {:.1}% of a core",
            res.rate(),
            r.cpu.cpu_percent
        );
        Ok(())
    }

    /// Connection rates up the ramp until the drop counter moves or the
    /// machine cannot go faster.
    fn ramp(&self, r: &mut report::Report) -> anyhow::Result<()> {
        let mut saturated = 0;
        for rate in RAMP {
            let step = ramp_step(self.daemon, self.watched, rate, &self.targets)?;
            println!(
                "bench: ramp {:.0}/s: achieved {:.0}/s, {} dropped, gatewatch {:.1}%",
                rate,
                step.load.rate(),
                step.dropped,
                step.cpu_percent
            );
            let drops = step.dropped > 0.0;
            if step.load.rate() < 0.85 * rate {
                saturated += 1;
            }
            r.ramp.push(step);
            if drops || saturated >= 2 {
                break;
            }
        }
        Ok(())
    }
}

fn kernel_profile(cg: &Cgroup, url: &str, names: &[String]) -> anyhow::Result<perf::Attribution> {
    let dir = procs::TempDir::new("perf")?;
    let data = dir.0.join("perf.data");
    let secs = wrk_seconds();
    let mut rec = perf::record(&data, secs)?;
    thread::sleep(Duration::from_millis(300));
    let res = load::wrk(cg, url, secs, WRK_THREADS, WRK_CONNS, true);
    let st = rec.wait()?;
    res?;
    if !st.success() {
        bail!("perf record failed: {st}");
    }
    perf::attribute(&data, names)
}

fn ramp_step(
    daemon: &Daemon,
    cg: &Cgroup,
    rate: f64,
    targets: &[String],
) -> anyhow::Result<report::RampStep> {
    let m0 = daemon.metrics()?;
    let cpu0 = daemon.cpu_seconds()?;
    let t0 = Instant::now();
    let load: LoadResult = load::paced(cg, rate, ramp_seconds(), LOADGEN_THREADS, targets)?;
    let wall = t0.elapsed().as_secs_f64();
    let cpu = daemon.cpu_seconds()? - cpu0;
    thread::sleep(SETTLE);
    let m1 = daemon.metrics()?;
    let d = |name: &str, needles: &[&str]| m1.sum(name, needles) - m0.sum(name, needles);
    Ok(report::RampStep {
        target: rate,
        load,
        events: d("gatewatch_events_total", &[]),
        connections: d("gatewatch_connections_total", &[]),
        dropped: d("gatewatch_events_dropped_total", &[]),
        dropped_ring: d("gatewatch_events_dropped_total", &["source=\"ringbuf_"]),
        cpu_percent: 100.0 * cpu / wall,
        cpu_seconds: cpu,
    })
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join("target"))
}

/// Criterion benchmarks and the in-process memory measurement.
fn userspace(r: &mut report::Report) -> anyhow::Result<()> {
    let criterion = target_dir().join("criterion");
    for group in ["pipeline", "tls", "http", "dns"] {
        let _ = std::fs::remove_dir_all(criterion.join(group));
    }
    let mut cmd = crate::cargo();
    cmd.args([
        "bench",
        "--package",
        "observer",
        "--bench",
        "pipeline",
        "--bench",
        "parsers",
    ]);
    if quick() {
        cmd.args(["--", "--warm-up-time", "0.1", "--measurement-time", "0.2"]);
    }
    crate::status(&mut cmd)?;
    for name in [
        "tls_flow",
        "http_flow",
        "dns_named_flow",
        "dns_answer",
        "mixed",
    ] {
        let ns = estimate(&criterion.join("pipeline").join(name))?;
        r.pipeline.push((name.to_owned(), ns));
    }
    let fixtures = crate::workspace_root().join("observer/fixtures");
    for group in ["tls", "http", "dns"] {
        let mut rows = Vec::new();
        for entry in std::fs::read_dir(criterion.join(group))
            .with_context(|| format!("no criterion results for {group}"))?
        {
            let entry = entry?;
            if !entry.path().join("new").is_dir() {
                continue; // criterion's report/ directory
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let bytes = std::fs::metadata(fixtures.join(format!("{name}.bin")))
                .map(|m| m.len())
                .unwrap_or(0);
            rows.push((name, bytes, estimate(&entry.path())?));
        }
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        r.parsers.push((group.to_owned(), rows));
    }

    let out = crate::cargo()
        .args(["bench", "--package", "observer", "--bench", "memory"])
        .output()
        .context("run the memory benchmark")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "memory benchmark failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let line = text
        .lines()
        .find(|l| l.starts_with("{\"flows\""))
        .with_context(|| format!("no result line from the memory benchmark: {text}"))?;
    r.memory = Some(serde_json::from_str(line).context("memory benchmark output")?);
    Ok(())
}

/// Criterion's mean time per iteration, in ns.
fn estimate(dir: &std::path::Path) -> anyhow::Result<f64> {
    let path = dir.join("new/estimates.json");
    let v: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&path).with_context(|| format!("read {}", path.display()))?,
    )?;
    v["mean"]["point_estimate"]
        .as_f64()
        .with_context(|| format!("no mean in {}", path.display()))
}
