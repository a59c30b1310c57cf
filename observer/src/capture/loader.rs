//! Loads the embedded kernel programs and attaches them to the cgroup v2
//! tree. Attachments are bpf links owned by this process: they go away when
//! it exits, however it exits, so a crash never leaves a program behind.
use std::{
    fs::File,
    path::{Path, PathBuf},
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{MapData, PerCpuArray, RingBuf},
    programs::{
        CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, CgroupSock, CgroupSockAddr, ProgramError,
        SockOps, TracePoint, UProbe,
    },
};
use observer_common::{
    DROP_SLOTS, ENFORCE_DENY, ENFORCE_OFF, PAYLOAD_SEGMENTS_MAX, QUIC_PORTS_MAX,
};

use super::enforce_maps::{DenyAddrsMap, KernelTables, PolicyMap};
use super::tls_libs::{GO_TLS_READ_PROBE, TLS_ENTRY_PROBES, TlsLibraries, TlsPrograms};
use super::{
    cgroup::{find_cgroup2_root, is_cgroup2},
    own_tgid::own_host_tgid,
    privileges::{missing_capabilities, raise_memlock_limit},
    tracefs::{self, Tracefs},
};

/// The kernel programs, built by build.rs and embedded so the binary alone deploys.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/observer-ebpf"));

/// The kernel wakes the reader once ring_bytes / this is waiting.
const RING_WAKEUP_FRACTION: u32 = 8;
/// Lines of the verifier log shown when the kernel refuses a program.
const VERIFIER_LOG_TAIL: usize = 25;

/// On kernels with bpf links (5.7+) aya attaches through a link, which the
/// kernel always adds alongside other programs on the cgroup (it rejects
/// explicit flags there), so gatewatch coexists with Cilium and friends.
const ATTACH_MODE: CgroupAttachMode = CgroupAttachMode::Single;

/// Programs by ELF name, sorted (as tests compare them with what bpftool lists).
pub const PROGRAMS: [&str; 8] = [
    "connect4",
    "connect6",
    "egress",
    "ingress",
    "lifecycle",
    "release",
    "sendmsg4",
    "sendmsg6",
];

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "no cgroup v2 mount found in /proc/self/mountinfo: mount one (mount -t cgroup2 none /sys/fs/cgroup) or pass --cgroup PATH"
    )]
    NoCgroup2,
    #[error(
        "cannot open cgroup {path}: {source}; pass an existing cgroup v2 directory with --cgroup"
    )]
    OpenCgroup {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{0} is not a cgroup v2 directory; pass the cgroup v2 mount (e.g. /sys/fs/cgroup or /sys/fs/cgroup/unified) with --cgroup"
    )]
    NotCgroup2(PathBuf),
    #[error(
        "missing capabilities {missing}: run as root, or grant CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN"
    )]
    Capabilities { missing: String },
    #[error(
        "not permitted to {action} ({source}): run as root, or grant CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN"
    )]
    Permission {
        action: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("the kernel refused program {program}: {error}\nverifier log (last lines):\n{log}")]
    Verifier {
        program: String,
        error: String,
        log: String,
    },
    #[error(transparent)]
    Tracefs(#[from] tracefs::MountError),
    #[error("{action} failed: {source}")]
    Other {
        action: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

fn classify_err(
    action: impl Into<String>,
    err: impl std::error::Error + Send + Sync + 'static,
) -> LoadError {
    let action = action.into();
    let text = format!("{err:?}");
    if text.contains("PermissionDenied") || text.contains("Operation not permitted") {
        LoadError::Permission {
            action,
            source: Box::new(err),
        }
    } else {
        LoadError::Other {
            action,
            source: Box::new(err),
        }
    }
}

pub struct LoadOptions {
    pub cgroup: Option<PathBuf>,
    pub ring_bytes: u32,
    /// Forward the programs' aya-log debug lines (off by default: they cost
    /// ring buffer space on every connect).
    pub ebpf_debug: bool,
    /// The host's procfs (--proc-root): `{proc_root}/self` names gatewatch's
    /// host tgid, which the programs compare to skip its own sockets.
    pub proc_root: PathBuf,
    /// UDP destination ports followed as QUIC (at most `QUIC_PORTS_MAX`).
    pub quic_ports: Vec<u16>,
    /// `--enforce deny`: the tables the kernel decides with, written
    /// before any program is attached.
    pub enforce: Option<KernelTables>,
    /// `--tls-probes`: probe TLS libraries' plaintext.
    pub tls_probes: bool,
}

/// Loaded and attached programs. Dropping this detaches everything.
pub struct Probes {
    ebpf: Ebpf,
    pub cgroup: PathBuf,
    /// `--tls-probes`: the library files probed so far.
    tls: Option<TlsLibraries>,
}

impl Probes {
    pub fn load_and_attach(opts: &LoadOptions) -> Result<Probes, LoadError> {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let missing = missing_capabilities(&status);
        if !missing.is_empty() {
            return Err(LoadError::Capabilities {
                missing: missing.join(", "),
            });
        }
        let (cgroup, cgroup_file) = open_cgroup(opts.cgroup.as_deref())?;
        raise_memlock_limit();
        let mut ebpf = load(opts)?;
        if let Some(tables) = &opts.enforce {
            tables.write(&mut ebpf)?;
        }
        attach_all(&mut ebpf, &cgroup_file, &cgroup)?;
        log::info!(
            "attached {} programs to {} (payload capture: up to {} segments per connection)",
            PROGRAMS.len(),
            cgroup.display(),
            PAYLOAD_SEGMENTS_MAX
        );
        // Reading inside TLS is an extra: a kernel or host where it cannot
        // load (no tracefs, no uprobes) still observes every connection.
        let tls = match opts.tls_probes.then(|| load_tls(&mut ebpf)) {
            Some(Ok(programs)) => {
                let started = std::time::Instant::now();
                let mut libs = TlsLibraries::new(programs);
                libs.scan_host(&mut ebpf, &opts.proc_root);
                libs.scan_processes(&mut ebpf, &opts.proc_root, &[]);
                log::debug!("--tls-probes: libraries found in {:?}", started.elapsed());
                log::info!("--tls-probes: {} TLS library files probed", libs.len());
                Some(libs)
            }
            Some(Err(e)) => {
                log::warn!(
                    "--tls-probes: off, the probes could not be set ({e}); connections are \
                     still observed. Run with --tls-probes=false to silence this"
                );
                None
            }
            None => None,
        };
        Ok(Probes { ebpf, cgroup, tls })
    }

    /// `--tls-probes`: probes the TLS libraries of processes started since
    /// the last scan, and of `again` (which may have loaded one since).
    pub fn scan_tls_libraries(&mut self, proc_root: &Path, again: &[u32]) {
        if let Some(libs) = &mut self.tls {
            libs.scan_processes(&mut self.ebpf, proc_root, again);
        }
    }

    /// `--tls-probes`: bytes of one TLS library call the kernel copies at
    /// most (none when the probes are off).
    pub fn tls_call_copy_max(&self) -> Option<u64> {
        self.tls.as_ref().map(TlsLibraries::call_copy_max)
    }

    /// `--tls-probes`: probes the TLS libraries of processes that just
    /// connected, unless read before.
    pub fn scan_new_tls_processes(&mut self, proc_root: &Path, tgids: &[u32]) {
        if let Some(libs) = &mut self.tls {
            libs.scan_new(&mut self.ebpf, proc_root, tgids);
        }
    }

    /// `--tls-probes`: the cookies whose plaintext is not read; call once.
    /// None when the probes are off (or could not be set).
    pub fn take_tls_skip(
        &mut self,
    ) -> Result<Option<aya::maps::HashMap<MapData, u64, u8>>, LoadError> {
        if self.tls.is_none() {
            return Ok(None);
        }
        let map = self.take("TLS_SKIP")?;
        aya::maps::HashMap::try_from(map)
            .map(Some)
            .map_err(|e| classify_err("open the TLS_SKIP map", e))
    }

    /// The event ring buffer; call once.
    pub fn take_ring(&mut self) -> Result<RingBuf<MapData>, LoadError> {
        let map = self
            .ebpf
            .take_map("EVENTS")
            .ok_or_else(|| LoadError::Other {
                action: "find map EVENTS".into(),
                source: "not in the eBPF object".into(),
            })?;
        RingBuf::try_from(map).map_err(|e| classify_err("open the EVENTS ring buffer", e))
    }

    /// The per-process policy map (`--enforce deny`); call once.
    pub fn take_policy(&mut self) -> Result<PolicyMap, LoadError> {
        let map = self.take("POLICY")?;
        PolicyMap::try_from(map).map_err(|e| classify_err("open the POLICY map", e))
    }

    /// The DNS-learned addresses `connect()` refuses (`--enforce deny`);
    /// call once.
    pub fn take_deny_addrs(&mut self) -> Result<DenyAddrsMap, LoadError> {
        let map = self.take("DENY_ADDRS")?;
        DenyAddrsMap::try_from(map).map_err(|e| classify_err("open the DENY_ADDRS map", e))
    }

    fn take(&mut self, name: &str) -> Result<aya::maps::Map, LoadError> {
        self.ebpf.take_map(name).ok_or_else(|| LoadError::Other {
            action: format!("find map {name}"),
            source: "not in the eBPF object".into(),
        })
    }

    /// Total records lost per drop slot, summed over CPUs.
    pub fn drop_counts(&self) -> Result<[u64; DROP_SLOTS as usize], LoadError> {
        let map = self.ebpf.map("DROPS").ok_or_else(|| LoadError::Other {
            action: "find map DROPS".into(),
            source: "not in the eBPF object".into(),
        })?;
        let drops: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(map).map_err(|e| classify_err("open the DROPS map", e))?;
        let mut out = [0u64; DROP_SLOTS as usize];
        for (slot, total) in out.iter_mut().enumerate() {
            let values = drops
                .get(&(slot as u32), 0)
                .map_err(|e| classify_err("read the DROPS map", e))?;
            *total = values.iter().sum();
        }
        Ok(out)
    }
}

/// The cgroup to attach to (given, or the cgroup v2 mount), checked and opened.
fn open_cgroup(given: Option<&Path>) -> Result<(PathBuf, File), LoadError> {
    let cgroup = match given {
        Some(path) => path.to_owned(),
        None => {
            let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
            find_cgroup2_root(&mountinfo).ok_or(LoadError::NoCgroup2)?
        }
    };
    match is_cgroup2(&cgroup) {
        Ok(true) => {}
        Ok(false) => return Err(LoadError::NotCgroup2(cgroup)),
        Err(source) => {
            return Err(LoadError::OpenCgroup {
                path: cgroup,
                source,
            });
        }
    }
    let file = File::open(&cgroup).map_err(|source| LoadError::OpenCgroup {
        path: cgroup.clone(),
        source,
    })?;
    Ok((cgroup, file))
}

/// Loads the object with its load-time globals and sizes set.
fn load(opts: &LoadOptions) -> Result<Ebpf, LoadError> {
    let (own_tgid, source) = own_host_tgid(&opts.proc_root);
    log::debug!("own sockets skipped by tgid {own_tgid} ({source:?})");
    let log_level: u8 = if opts.ebpf_debug { 4 } else { 0 };
    // Wake the reader once an eighth of the ring is waiting; below that,
    // the reader's timer drains it (see capture::ring).
    let wakeup_bytes = u64::from(opts.ring_bytes / RING_WAKEUP_FRACTION);
    let mut quic_ports = [0u16; QUIC_PORTS_MAX];
    for (slot, port) in quic_ports.iter_mut().zip(&opts.quic_ports) {
        *slot = *port;
    }
    let tls_probes = u32::from(opts.tls_probes);
    let enforce = if opts.enforce.is_some() {
        ENFORCE_DENY
    } else {
        ENFORCE_OFF
    };
    let mut ebpf = EbpfLoader::new()
        .override_global("OWN_TGID", &own_tgid, true)
        .override_global("ENFORCE", &enforce, true)
        .override_global("TLS_PROBES", &tls_probes, true)
        .override_global("QUIC_PORTS", &quic_ports, true)
        .override_global("WAKEUP_BYTES", &wakeup_bytes, true)
        .override_global("AYA_LOG_LEVEL", &log_level, false)
        .map_max_entries("EVENTS", opts.ring_bytes)
        .load(EBPF_OBJECT)
        .map_err(|e| classify_err("load the eBPF object (maps and BTF)", e))?;
    if opts.ebpf_debug {
        match aya_log::EbpfLogger::init(&mut ebpf) {
            Ok(logger) => spawn_ebpf_logger(logger),
            Err(e) => log::warn!("eBPF debug logging unavailable: {e}"),
        }
    }
    Ok(ebpf)
}

/// Loads every program into the kernel and attaches it to `cgroup`.
fn attach_all(ebpf: &mut Ebpf, cgroup_file: &File, cgroup: &Path) -> Result<(), LoadError> {
    let attach_err = |name: &str| {
        let action = format!("attach {name} to {}", cgroup.display());
        move |e| classify_err(action, e)
    };
    for name in ["connect4", "connect6", "sendmsg4", "sendmsg6"] {
        let prog: &mut CgroupSockAddr = program(ebpf, name)?;
        prog.load().map_err(|e| load_error(name, e))?;
        prog.attach(cgroup_file, ATTACH_MODE)
            .map_err(attach_err(name))?;
    }
    for (name, dir) in [
        ("egress", CgroupSkbAttachType::Egress),
        ("ingress", CgroupSkbAttachType::Ingress),
    ] {
        let prog: &mut CgroupSkb = program(ebpf, name)?;
        prog.load().map_err(|e| load_error(name, e))?;
        prog.attach(cgroup_file, dir, ATTACH_MODE)
            .map_err(attach_err(name))?;
    }
    let prog: &mut SockOps = program(ebpf, "lifecycle")?;
    prog.load().map_err(|e| load_error("lifecycle", e))?;
    prog.attach(cgroup_file, ATTACH_MODE)
        .map_err(attach_err("lifecycle"))?;
    let prog: &mut CgroupSock = program(ebpf, "release")?;
    prog.load().map_err(|e| load_error("release", e))?;
    prog.attach(cgroup_file, ATTACH_MODE)
        .map_err(attach_err("release"))?;
    Ok(())
}

/// The sends that join a TLS session to its socket when the library does
/// not say which descriptor it uses (`sys_enter_send`).
const TLS_SEND_SYSCALLS: [&str; 4] = [
    "sys_enter_write",
    "sys_enter_writev",
    "sys_enter_sendto",
    "sys_enter_sendmsg",
];

/// `--tls-probes`: loads the uprobe programs (attached per library file
/// later), in the variant this kernel's verifier accepts, and attaches the
/// tracepoints that join descriptors and sessions to sockets.
fn load_tls(ebpf: &mut Ebpf) -> Result<TlsPrograms, LoadError> {
    match tracefs::ensure_mounted()? {
        Tracefs::Found(dir) => log::debug!("--tls-probes: tracefs at {}", dir.display()),
        Tracefs::Mounted(dir) => log::info!(
            "--tls-probes: tracefs was not mounted; mounted it at {} for the syscall tracepoints",
            dir.display()
        ),
    }
    let mut names: Vec<&str> = TLS_ENTRY_PROBES.iter().map(|(name, _)| *name).collect();
    names.dedup();
    names.push(GO_TLS_READ_PROBE);
    for name in names {
        let prog: &mut UProbe = program(ebpf, name)?;
        prog.load().map_err(|e| load_error(name, e))?;
    }
    let programs = match load_copiers(ebpf, TlsPrograms::FULL) {
        Ok(()) => TlsPrograms::FULL,
        Err(LoadError::Verifier { program, .. }) => {
            log::info!(
                "--tls-probes: this kernel's verifier gives up on {program}'s {} KiB copy; \
                 copying {} KiB of each TLS call instead",
                TlsPrograms::FULL.call_copy_max() / 1024,
                TlsPrograms::LITE.call_copy_max() / 1024
            );
            load_copiers(ebpf, TlsPrograms::LITE)?;
            TlsPrograms::LITE
        }
        Err(e) => return Err(e),
    };
    let prog: &mut TracePoint = program(ebpf, "sys_enter_connect")?;
    prog.load()
        .map_err(|e| load_error("sys_enter_connect", e))?;
    prog.attach("syscalls", "sys_enter_connect")
        .map_err(|e| classify_err("attach the syscalls/sys_enter_connect tracepoint", e))?;
    let prog: &mut TracePoint = program(ebpf, "sys_enter_send")?;
    prog.load().map_err(|e| load_error("sys_enter_send", e))?;
    for syscall in TLS_SEND_SYSCALLS {
        prog.attach("syscalls", syscall)
            .map_err(|e| classify_err(format!("attach the syscalls/{syscall} tracepoint"), e))?;
    }
    Ok(programs)
}

/// The programs that copy plaintext, in one variant.
fn load_copiers(ebpf: &mut Ebpf, programs: TlsPrograms) -> Result<(), LoadError> {
    for name in programs.names() {
        let started = std::time::Instant::now();
        let prog: &mut UProbe = program(ebpf, name)?;
        prog.load().map_err(|e| load_error(name, e))?;
        log::debug!("--tls-probes: {name} loaded in {:?}", started.elapsed());
    }
    Ok(())
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut T, LoadError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
{
    let prog = ebpf.program_mut(name).ok_or_else(|| LoadError::Other {
        action: format!("find program {name}"),
        source: "not in the eBPF object".into(),
    })?;
    prog.try_into()
        .map_err(|e| classify_err(format!("open program {name}"), e))
}

fn load_error(program: &str, err: ProgramError) -> LoadError {
    match err {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            if io_error.kind() == std::io::ErrorKind::PermissionDenied
                && verifier_log.to_string().trim().is_empty()
            {
                return classify_err(format!("load program {program}"), io_error);
            }
            let log = verifier_log.to_string();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(VERIFIER_LOG_TAIL)..].join("\n");
            LoadError::Verifier {
                program: program.to_owned(),
                error: io_error.to_string(),
                log: tail,
            }
        }
        other => classify_err(format!("load program {program}"), other),
    }
}

fn spawn_ebpf_logger(logger: aya_log::EbpfLogger<&'static dyn log::Log>) {
    tokio::spawn(async move {
        // SAFETY: the AsyncFd owns the logger and so its fd.
        let registered = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(logger, tokio::io::Interest::READABLE)
        };
        let Ok(mut fd) = registered else {
            return;
        };
        loop {
            let Ok(mut guard) = fd.readable_mut().await else {
                return;
            };
            guard.get_inner_mut().flush();
            guard.clear_ready();
        }
    });
}
