//! Everything the benchmark starts or changes, each behind a guard that
//! undoes it on drop: cgroups, nginx, the gatewatch daemon, BPF run-time
//! statistics. Processes are stopped by their own pid, never by name.
use std::{
    ffi::CString,
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    os::unix::{ffi::OsStrExt as _, process::CommandExt as _},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

/// How long a started server gets to answer, and a stopped one to exit.
const START_WAIT: Duration = Duration::from_secs(20);
const STOP_WAIT: Duration = Duration::from_secs(10);

pub fn cgroup2_root() -> anyhow::Result<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
    let mounts: Vec<&str> = mountinfo
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            (post.split_whitespace().next()? == "cgroup2").then(|| pre.split_whitespace().nth(4))?
        })
        .collect();
    ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .into_iter()
        .find(|p| mounts.contains(p))
        .or_else(|| mounts.first().copied())
        .map(PathBuf::from)
        .context("no cgroup v2 mount on this machine")
}

/// A child cgroup of the cgroup v2 root, removed on drop (its processes
/// moved back to the root first).
pub struct Cgroup {
    pub path: PathBuf,
    root: PathBuf,
}

impl Cgroup {
    pub fn new(name: &str) -> anyhow::Result<Self> {
        let root = cgroup2_root()?;
        let path = root.join(name);
        std::fs::create_dir_all(&path)
            .with_context(|| format!("create cgroup {}", path.display()))?;
        Ok(Self { path, root })
    }

    /// Makes `cmd`'s process start inside this cgroup: it writes its own
    /// pid into `cgroup.procs` between fork and exec.
    pub fn place(&self, cmd: &mut Command) {
        let procs = CString::new(self.path.join("cgroup.procs").as_os_str().as_bytes())
            .expect("cgroup paths have no NUL");
        // SAFETY: only async-signal-safe calls (open, write, close) on a
        // path allocated before fork.
        unsafe {
            cmd.pre_exec(move || {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let n = libc::write(fd, b"0".as_ptr().cast(), 1);
                let err = std::io::Error::last_os_error();
                libc::close(fd);
                if n != 1 {
                    return Err(err);
                }
                Ok(())
            });
        }
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        if let Ok(pids) = std::fs::read_to_string(self.path.join("cgroup.procs")) {
            for pid in pids.lines() {
                let _ = std::fs::write(self.root.join("cgroup.procs"), pid);
            }
        }
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// A private temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> anyhow::Result<Self> {
        let dir =
            std::env::temp_dir().join(format!("gatewatch-bench-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        Ok(Self(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// SIGTERM to our child, then SIGKILL if it has not exited in time.
fn stop_child(child: &mut Child, signal: i32) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    // SAFETY: signalling a child we started, by its pid.
    unsafe { libc::kill(child.id() as i32, signal) };
    let deadline = Instant::now() + STOP_WAIT;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn wait_for_port(addr: SocketAddr, child: &mut Child, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + START_WAIT;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if let Some(st) = child.try_wait()? {
            bail!("{what} exited before listening on {addr}: {st}");
        }
        if Instant::now() > deadline {
            bail!("{what} not listening on {addr} after {START_WAIT:?}");
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Loopback addresses nginx listens on; clients spread connections over
/// them so no 4-tuple space runs short at high connection rates.
pub const LOOPBACK_ADDRS: [&str; 4] = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"];

/// nginx on loopback with a private prefix and config: one worker, no
/// access log, a fixed 200 answer, keep-alive without a request limit.
pub struct Nginx {
    child: Child,
    pub port: u16,
    /// An HTTPS listener on 127.0.0.1 (self-signed), for the TLS probes.
    pub tls_port: u16,
    pub workers: u32,
    _dir: TempDir,
}

impl Nginx {
    pub fn start(workers: u32) -> anyhow::Result<Self> {
        let dir = TempDir::new("nginx")?;
        let port = free_port()?;
        let tls_port = free_port()?;
        let d = dir.0.display();
        let status = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ])
            .args(["-nodes", "-days", "2", "-subj", "/CN=bench"])
            .arg("-keyout")
            .arg(dir.0.join("key.pem"))
            .arg("-out")
            .arg(dir.0.join("cert.pem"))
            .stderr(Stdio::null())
            .status()
            .context("openssl (a certificate for nginx's HTTPS listener)")?;
        if !status.success() {
            bail!("openssl could not make a certificate for nginx");
        }
        let listens: String = LOOPBACK_ADDRS
            .iter()
            .map(|a| format!("    listen {a}:{port} backlog=4096;\n"))
            .collect();
        let conf = format!(
            "daemon off;\nmaster_process on;\nworker_processes {workers};\n\
             pid {d}/nginx.pid;\nerror_log {d}/error.log warn;\nworker_rlimit_nofile 65536;\n\
             events {{ worker_connections 16384; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
               keepalive_requests 100000000;\n  keepalive_timeout 120s;\n\
               server {{\n{listens}    location / {{ return 200 \"ok\\n\"; }}\n  }}\n\
               server {{\n    listen 127.0.0.1:{tls_port} ssl backlog=4096;\n\
                 ssl_certificate {d}/cert.pem;\n    ssl_certificate_key {d}/key.pem;\n\
                 location / {{ return 200 \"ok\\n\"; }}\n  }}\n}}\n"
        );
        std::fs::write(dir.0.join("nginx.conf"), conf)?;
        let mut child = Command::new("nginx")
            .arg("-p")
            .arg(&dir.0)
            .arg("-c")
            .arg(dir.0.join("nginx.conf"))
            .arg("-e")
            .arg(dir.0.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("start nginx (is nginx-light installed?)")?;
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        if let Err(e) = wait_for_port(addr, &mut child, "nginx") {
            let mut err = String::new();
            if let Some(mut s) = child.stderr.take() {
                let _ = s.read_to_string(&mut err);
            }
            stop_child(&mut child, libc::SIGTERM);
            bail!("{e}: {err}");
        }
        Ok(Self {
            child,
            port,
            tls_port,
            workers,
            _dir: dir,
        })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    pub fn tls_url(&self) -> String {
        format!("https://127.0.0.1:{}/", self.tls_port)
    }

    pub fn targets(&self) -> Vec<String> {
        LOOPBACK_ADDRS
            .iter()
            .map(|a| format!("{a}:{}", self.port))
            .collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM to the master: fast shutdown, the workers exit with it.
        stop_child(&mut self.child, libc::SIGTERM);
    }
}

/// The gatewatch daemon attached to one cgroup, stopped with SIGTERM on drop.
pub struct Daemon {
    child: Child,
    pub addr: SocketAddr,
    log: PathBuf,
}

impl Daemon {
    pub fn start(bin: &Path, cgroup: &Path, extra: &[String]) -> anyhow::Result<Self> {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let log = std::env::temp_dir().join(format!("gatewatch-bench-{}.log", std::process::id()));
        let log_file = std::fs::File::create(&log)?;
        let mut child = Command::new(bin)
            .arg("run")
            .arg("--cgroup")
            .arg(cgroup)
            .arg("--metrics-addr")
            .arg(addr.to_string())
            .args(extra)
            .env("GATEWATCH_LOG_LEVEL", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        let deadline = Instant::now() + START_WAIT;
        loop {
            if matches!(http_get(addr, "/readyz"), Ok((200, _))) {
                break;
            }
            if let Some(st) = child.try_wait()? {
                let log_text = std::fs::read_to_string(&log).unwrap_or_default();
                bail!("gatewatch exited before ready ({st}):\n{log_text}");
            }
            if Instant::now() > deadline {
                stop_child(&mut child, libc::SIGTERM);
                bail!("gatewatch not ready after {START_WAIT:?}");
            }
            thread::sleep(Duration::from_millis(50));
        }
        Ok(Self { child, addr, log })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn metrics(&self) -> anyhow::Result<Scrape> {
        let (code, body) = http_get(self.addr, "/metrics")?;
        if code != 200 {
            bail!("/metrics answered {code}");
        }
        Ok(Scrape(body))
    }

    /// (utime + stime) in seconds, from /proc/PID/stat.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        cpu_seconds(self.pid())
    }

    /// A field of /proc/PID/status in KiB (VmRSS:, VmHWM:).
    pub fn status_kib(&self, field: &str) -> anyhow::Result<u64> {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        text.lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("no {field} in /proc/{}/status", self.pid()))
    }

    /// Context switches (voluntary + involuntary) over all its threads.
    pub fn context_switches(&self) -> anyhow::Result<u64> {
        let mut total = 0;
        for task in std::fs::read_dir(format!("/proc/{}/task", self.pid()))? {
            let status = std::fs::read_to_string(task?.path().join("status")).unwrap_or_default();
            total += status
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        }
        Ok(total)
    }

    pub fn stop(mut self) -> anyhow::Result<()> {
        stop_child(&mut self.child, libc::SIGTERM);
        Ok(())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        stop_child(&mut self.child, libc::SIGTERM);
        let _ = std::fs::remove_file(&self.log);
    }
}

pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which may hold spaces: state is the
    // 3rd field, utime the 14th and stime the 15th.
    let rest = stat.rsplit_once(')').context("bad /proc/PID/stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields
        .get(11)
        .zip(fields.get(12))
        .and_then(|(u, s)| Some(u.parse::<u64>().ok()? + s.parse::<u64>().ok()?))
        .context("bad utime/stime in /proc/PID/stat")?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok(ticks as f64 / hz)
}

/// A Prometheus text scrape.
pub struct Scrape(pub String);

impl Scrape {
    /// Sum of the samples of `name` whose labels contain every `needle`
    /// (e.g. `source="ringbuf_`).
    pub fn sum(&self, name: &str, needles: &[&str]) -> f64 {
        self.0
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                let metric = series.split('{').next()?;
                (metric == name && needles.iter().all(|n| series.contains(n)))
                    .then(|| value.parse::<f64>().ok())?
            })
            .sum()
    }

    /// Samples of `name` as (labels, value).
    pub fn samples(&self, name: &str) -> Vec<(String, f64)> {
        self.0
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                let (metric, labels) = series.split_once('{').unwrap_or((series, ""));
                (metric == name).then(|| {
                    (
                        labels.trim_end_matches('}').to_owned(),
                        value.parse::<f64>().unwrap_or(0.0),
                    )
                })
            })
            .collect()
    }
}

pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
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

/// BPF run-time statistics on while held. Uses BPF_ENABLE_STATS, whose
/// effect ends when its fd closes (even if this process dies), so the
/// `kernel.bpf_stats_enabled` sysctl is never touched; on kernels without
/// it, sets the sysctl and restores its previous value on drop.
pub enum BpfStats {
    Fd(libc::c_int),
    Sysctl(String),
}

const BPF_ENABLE_STATS: libc::c_long = 32;
const BPF_STATS_RUN_TIME: u32 = 0;
const SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";

impl BpfStats {
    pub fn enable() -> anyhow::Result<Self> {
        let mut attr = [0u8; 16];
        attr[..4].copy_from_slice(&BPF_STATS_RUN_TIME.to_ne_bytes());
        // SAFETY: bpf(BPF_ENABLE_STATS) reads a union whose first field is
        // the u32 `type`; the rest of the buffer is zero.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_ENABLE_STATS,
                attr.as_ptr(),
                attr.len() as libc::c_uint,
            )
        };
        if fd >= 0 {
            return Ok(Self::Fd(fd as libc::c_int));
        }
        let before = std::fs::read_to_string(SYSCTL)
            .with_context(|| format!("read {SYSCTL}"))?
            .trim()
            .to_owned();
        std::fs::write(SYSCTL, "1").with_context(|| format!("write {SYSCTL}"))?;
        Ok(Self::Sysctl(before))
    }

    pub fn how(&self) -> &'static str {
        match self {
            Self::Fd(_) => "BPF_ENABLE_STATS (sysctl untouched)",
            Self::Sysctl(_) => "kernel.bpf_stats_enabled=1, restored afterwards",
        }
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        match self {
            // SAFETY: closing the fd this guard owns.
            Self::Fd(fd) => unsafe {
                libc::close(*fd);
            },
            Self::Sysctl(before) => {
                let _ = std::fs::write(SYSCTL, before.as_bytes());
            }
        }
    }
}
