//! Helpers for the hardening tests: gatewatch started under a wrapper (a
//! reduced capability set) with its pid at hand for signals and memory
//! samples, a fast loopback HTTP responder for load, and bpftool queries
//! for programs attached to a cgroup.
use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use crate::{
    Metrics, TEST_NAME_WAIT_MS, TestCgroup, WAIT, free_port, gatewatch_bin, http_get, run_ok,
    unique,
};

/// The capabilities deploy/daemonset.yaml adds (after dropping ALL), as
/// setpriv names them.
pub const DAEMONSET_CAPS: [&str; 4] = ["bpf", "perfmon", "net_admin", "sys_resource"];

/// Bit numbers of capabilities by setpriv name (linux/capability.h).
pub fn cap_bit(name: &str) -> u32 {
    match name {
        "net_admin" => 12,
        "sys_admin" => 21,
        "sys_resource" => 24,
        "perfmon" => 38,
        "bpf" => 39,
        other => panic!("no bit known for capability {other}"),
    }
}

/// A capability set read from a `/proc/PID/status` line (`CapEff:` etc.).
pub fn status_caps(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    u64::from_str_radix(hex.trim(), 16).expect("hex capability set")
}

/// `setpriv` arguments that run a program as root (uid 0) with only `caps`
/// in its bounding set, hence in its permitted and effective sets, and
/// no_new_privs: what a container with `runAsUser: 0`, `capabilities:
/// {drop: [ALL], add: caps}` and `allowPrivilegeEscalation: false` gets.
pub fn root_with_only(caps: &[&str]) -> Vec<String> {
    let list = caps_list(caps);
    vec![
        "setpriv".into(),
        "--no-new-privs".into(),
        "--inh-caps".into(),
        "-all".into(),
        "--bounding-set".into(),
        list,
        "--".into(),
    ]
}

/// `setpriv` arguments that run a program as `nobody` (uid/gid 65534, no
/// groups) with `caps` as ambient capabilities, so they survive exec into
/// a binary without file capabilities: no uid-0 privilege at all.
pub fn nobody_with(caps: &[&str]) -> Vec<String> {
    let list = caps_list(caps);
    [
        "setpriv",
        "--no-new-privs",
        "--reuid",
        "65534",
        "--regid",
        "65534",
        "--clear-groups",
        "--inh-caps",
        &list,
        "--ambient-caps",
        &list,
        "--bounding-set",
        &list,
        "--",
    ]
    .map(str::to_owned)
    .to_vec()
}

fn caps_list(caps: &[&str]) -> String {
    let mut list = String::from("-all");
    for c in caps {
        list.push_str(",+");
        list.push_str(c);
    }
    list
}

/// A gatewatch process started under an optional wrapper command, with its
/// pid available; SIGTERM then (after [`WAIT`]) SIGKILL on drop.
pub struct Daemon {
    child: Option<Child>,
    pid: u32,
    pub addr: SocketAddr,
    log: PathBuf,
}

impl Daemon {
    /// Starts `wrapper... gatewatch run --cgroup CG --metrics-addr ADDR
    /// [--name-wait-ms 100] args...` without waiting for readiness (the
    /// short name wait unless `args` sets one).
    pub fn spawn(wrapper: &[String], cgroup: &TestCgroup, addr: SocketAddr, args: &[&str]) -> Self {
        let log = std::env::temp_dir().join(format!("{}.log", unique("hlog")));
        let log_file = std::fs::File::create(&log).expect("create log file");
        let mut cmd = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(gatewatch_bin());
                c
            }
            None => Command::new(gatewatch_bin()),
        };
        cmd.arg("run")
            .arg("--cgroup")
            .arg(&cgroup.path)
            .args(["--metrics-addr", &addr.to_string()]);
        if !args.contains(&"--name-wait-ms") {
            cmd.args(["--name-wait-ms", TEST_NAME_WAIT_MS]);
        }
        cmd.args(args)
            .env("GATEWATCH_LOG_LEVEL", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("start {cmd:?}: {e}"));
        Self {
            pid: child.id(),
            child: Some(child),
            addr,
            log,
        }
    }

    /// [`Daemon::spawn`] on a free loopback port, then waits until /readyz is 200.
    pub fn start(wrapper: &[String], cgroup: &TestCgroup, args: &[&str]) -> Self {
        let addr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let mut d = Self::spawn(wrapper, cgroup, addr, args);
        d.wait_ready();
        d
    }

    pub fn wait_ready(&mut self) {
        let (addr, log) = (self.addr, self.log.clone());
        crate::wait_ready(
            addr,
            || self.try_wait(),
            || std::fs::read_to_string(&log).unwrap_or_default(),
        );
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn try_wait(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().expect("wait gatewatch")?;
        self.child = None;
        Some(status)
    }

    pub fn running(&mut self) -> bool {
        self.child.is_some() && self.try_wait().is_none()
    }

    pub fn signal(&self, sig: i32) {
        assert!(self.child.is_some(), "gatewatch already exited");
        // SAFETY: signalling our own, not yet reaped, child.
        let rc = unsafe { libc::kill(self.pid as i32, sig) };
        assert_eq!(rc, 0, "kill({}, {sig}) failed", self.pid);
    }

    /// Waits until the process exits (it is reaped, so its fds are closed);
    /// panics after `within`, killing it.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(st) = self.try_wait() {
                return st;
            }
            if Instant::now() > deadline {
                if let Some(mut c) = self.child.take() {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                panic!("gatewatch still running after {within:?}:\n{}", self.log());
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn metrics(&self) -> Metrics {
        let (code, body) = http_get(self.addr, "/metrics").expect("scrape /metrics");
        assert_eq!(code, 200, "/metrics answered {code}");
        Metrics::parse(&body)
    }

    /// Scrapes until `check` passes or `within` runs out; returns the last scrape.
    pub fn wait_for_within(
        &self,
        what: &str,
        within: Duration,
        check: impl Fn(&Metrics) -> bool,
    ) -> Metrics {
        let deadline = Instant::now() + within;
        loop {
            let m = self.metrics();
            if check(&m) {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {within:?} waiting for {what}; last scrape:\n{}\nlog (tail):\n{}",
                m.text,
                tail(&self.log(), 40)
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn wait_for(&self, what: &str, check: impl Fn(&Metrics) -> bool) -> Metrics {
        self.wait_for_within(what, WAIT, check)
    }

    pub fn cpu_time(&self) -> Duration {
        cpu_time(self.pid)
    }

    /// Resident memory of the process in KiB (VmRSS).
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: signalling our own, not yet reaped, child.
            unsafe { libc::kill(self.pid as i32, libc::SIGTERM) };
            let deadline = Instant::now() + WAIT;
            while child.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// VmRSS of `pid` in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

/// CPU time (user + system) the process has used so far.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/stat: {e}"));
    // Fields after the parenthesised comm: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').expect("stat comm").1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

/// `(id, name)` of every program attached directly to `cgroup`, from bpftool.
pub fn attached_ids(cgroup: &Path) -> Vec<(u32, String)> {
    let out = run_ok(Command::new("bpftool").args(["cgroup", "show"]).arg(cgroup));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut cols = l.split_whitespace();
            let id = cols.next()?.parse().ok()?;
            Some((id, l.split_whitespace().last()?.to_owned()))
        })
        .collect()
}

/// True while the kernel still has a program with this id.
pub fn prog_exists(id: u32) -> bool {
    Command::new("bpftool")
        .args(["prog", "show", "id", &id.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run bpftool")
        .success()
}

/// True while the kernel still has a map with this id.
pub fn map_exists(id: u32) -> bool {
    Command::new("bpftool")
        .args(["map", "show", "id", &id.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run bpftool")
        .success()
}

/// Polls `cond` every 50 ms until it holds or `within` runs out.
pub fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// A loopback HTTP responder for load: each connection's request is read
/// up to its blank line, answered with an empty 200 and closed by the
/// server (so the client's socket closes through LAST_ACK, never reset).
/// `threads` accept loops; stopped and joined on drop.
pub struct FastServer {
    pub addr: SocketAddr,
    pub served: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl FastServer {
    pub fn bind(addr: &str, threads: usize) -> Self {
        let listener = TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        let addr = listener.local_addr().expect("local addr");
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicU64::new(0));
        let threads = (0..threads)
            .map(|_| {
                let l = listener.try_clone().expect("clone listener");
                let (stop, served) = (stop.clone(), served.clone());
                thread::spawn(move || {
                    for conn in l.incoming() {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        if let Ok(s) = conn
                            && answer(s)
                        {
                            served.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        Self {
            addr,
            served,
            stop,
            threads,
        }
    }
}

fn answer(mut s: TcpStream) -> bool {
    let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
    let mut buf = [0u8; 1024];
    let mut seen = Vec::new();
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                seen.extend_from_slice(&buf[..n]);
                if seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            Err(_) => return false,
        }
    }
    s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .is_ok()
}

impl Drop for FastServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake every blocked accept() so its loop sees the flag.
        for _ in &self.threads {
            let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
