//! `--tls-probes`: which TLS library files to probe, and probing them.
//! A uprobe is set on a file (an inode), so one attachment covers every
//! process that maps it, containers included, now and later. Files are
//! found in the maps of running processes (through `/proc/PID/root`, so a
//! container's own copy is probed as itself) and in the host's library
//! directories, and each is attached once.
use std::{
    collections::HashSet,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use super::go_binary::{GO_TLS_READ, GO_TLS_WRITE, GoTls, go_tls};
use aya::{
    Ebpf,
    programs::{
        ProgramError, UProbe,
        uprobe::{UProbeAttachLocation, UProbeError, UProbeScope},
    },
};

/// Library files probed, at most: each costs eleven perf-event links.
pub const TLS_LIBRARIES_MAX: usize = 256;
/// Host directories searched for TLS libraries at start.
const HOST_LIBRARY_DIRS: [&str; 7] = [
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/lib64",
    "/usr/bin",
    "/usr/local/bin",
];

/// The programs that copy plaintext, in the variant this kernel verifies:
/// up to `TLS_CHUNKS_MAX` chunks a call, or `TLS_CHUNKS_LITE` where the
/// verifier gives up on the longer copy (6.1 does).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsPrograms {
    /// The return probe of OpenSSL's reads and writes.
    pub ret: &'static str,
    pub go_write: &'static str,
    pub go_read_ret: &'static str,
    /// Chunks copied per call.
    pub chunks: u32,
}

impl TlsPrograms {
    pub const FULL: TlsPrograms = TlsPrograms {
        ret: "ssl_return",
        go_write: "go_tls_write",
        go_read_ret: "go_tls_read_ret",
        chunks: observer_common::TLS_CHUNKS_MAX,
    };
    pub const LITE: TlsPrograms = TlsPrograms {
        ret: "ssl_return_lite",
        go_write: "go_tls_write_lite",
        go_read_ret: "go_tls_read_ret_lite",
        chunks: observer_common::TLS_CHUNKS_LITE,
    };

    pub fn names(&self) -> [&'static str; 3] {
        [self.ret, self.go_write, self.go_read_ret]
    }

    /// Bytes of one library call copied at most.
    pub fn call_copy_max(&self) -> u64 {
        u64::from(self.chunks) * observer_common::PAYLOAD_CAPTURE_MAX as u64
    }
}

/// The Go program with no copy: `(*Conn).Read` at entry.
pub const GO_TLS_READ_PROBE: &str = "go_tls_read";

/// Entry probes by program name and the symbol they go on; the return
/// probe `ssl_return` goes on each read and write function too.
pub const TLS_ENTRY_PROBES: [(&str, &str); 7] = [
    ("ssl_set_fd", "SSL_set_fd"),
    ("ssl_handshake", "SSL_do_handshake"),
    ("ssl_handshake", "SSL_connect"),
    ("ssl_write", "SSL_write"),
    ("ssl_write_ex", "SSL_write_ex"),
    ("ssl_read", "SSL_read"),
    ("ssl_read_ex", "SSL_read_ex"),
];

/// Whether a mapped file is a TLS library gatewatch reads: OpenSSL 1.1
/// and 3 as shared libraries, and Node.js, which links OpenSSL statically
/// and exports its symbols.
pub fn is_tls_library(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or_default();
    name.starts_with("libssl.so") || NODE_BINARIES.contains(&name)
}

/// Executable names of Node.js builds.
const NODE_BINARIES: [&str; 2] = ["node", "nodejs"];

/// The TLS library files in one `/proc/PID/maps` text.
pub fn libraries_in_maps(maps: &str) -> Vec<&str> {
    let mut out: Vec<&str> = maps
        .lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .filter(|path| path.starts_with('/') && is_tls_library(path))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Files probed so far, by device and inode.
pub struct TlsLibraries {
    programs: TlsPrograms,
    attached: HashSet<(u64, u64)>,
    /// Processes whose maps were read, so each is read once.
    scanned: HashSet<u32>,
    /// Executables checked for Go's `crypto/tls`, by device and inode.
    checked_exes: HashSet<(u64, u64)>,
}

/// Processes and executables remembered as read, at most (then forgotten
/// and read again: a bound, not a cache policy).
const SCANNED_MAX: usize = 65536;

impl TlsLibraries {
    /// Nothing probed yet, with `programs` loaded; gatewatch's own
    /// executable is never read.
    pub fn new(programs: TlsPrograms) -> Self {
        let mut libs = Self {
            programs,
            attached: HashSet::new(),
            scanned: HashSet::new(),
            checked_exes: HashSet::new(),
        };
        if let Ok(meta) = std::fs::metadata("/proc/self/exe") {
            libs.checked_exes.insert((meta.dev(), meta.ino()));
        }
        libs
    }

    pub fn len(&self) -> usize {
        self.attached.len()
    }

    /// Bytes of one library call the loaded programs copy at most.
    pub fn call_copy_max(&self) -> u64 {
        self.programs.call_copy_max()
    }

    pub fn is_empty(&self) -> bool {
        self.attached.is_empty()
    }

    /// Probes the host's own copies: under `proc_root/1/root` (the host's
    /// root from a DaemonSet with the host's PID namespace), or under
    /// gatewatch's own root where that cannot be read.
    pub fn scan_host(&mut self, ebpf: &mut Ebpf, proc_root: &Path) {
        let host = proc_root.join("1/root");
        let root = if std::fs::read_dir(&host).is_ok() {
            host
        } else {
            proc_root.join("self/root")
        };
        for dir in HOST_LIBRARY_DIRS {
            let Ok(entries) = std::fs::read_dir(root.join(dir.trim_start_matches('/'))) else {
                continue;
            };
            for entry in entries.flatten() {
                if is_tls_library(&entry.file_name().to_string_lossy()) {
                    self.attach(ebpf, &entry.path());
                }
            }
        }
    }

    /// Reads the maps of processes not read before (and of `again`, which
    /// may have loaded a library since), and probes what they map.
    pub fn scan_processes(&mut self, ebpf: &mut Ebpf, proc_root: &Path, again: &[u32]) {
        let Ok(entries) = std::fs::read_dir(proc_root) else {
            return;
        };
        let mut alive = HashSet::new();
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            alive.insert(pid);
            if !self.scanned.contains(&pid) || again.contains(&pid) {
                self.scan_process(ebpf, proc_root, pid);
            }
        }
        // Forget processes that ended, so the set stays as large as /proc.
        self.scanned.retain(|pid| alive.contains(pid));
    }

    /// Probes the libraries of processes that just connected, if not read
    /// yet: a process is probed before its first TLS call, unless that
    /// comes within milliseconds of its first connection.
    pub fn scan_new(&mut self, ebpf: &mut Ebpf, proc_root: &Path, tgids: &[u32]) {
        for &tgid in tgids {
            if !self.scanned.contains(&tgid) {
                self.scan_process(ebpf, proc_root, tgid);
            }
        }
    }

    fn scan_process(&mut self, ebpf: &mut Ebpf, proc_root: &Path, pid: u32) {
        if self.scanned.len() >= SCANNED_MAX {
            self.scanned.clear();
        }
        self.scanned.insert(pid);
        let dir = proc_root.join(pid.to_string());
        if let Ok(maps) = std::fs::read_to_string(dir.join("maps")) {
            for lib in libraries_in_maps(&maps) {
                let in_root = dir.join("root").join(lib.trim_start_matches('/'));
                self.attach(ebpf, &in_root);
            }
        }
        self.check_go(ebpf, &dir.join("exe"));
    }

    /// Probes a Go program's `crypto/tls`, once per binary.
    fn check_go(&mut self, ebpf: &mut Ebpf, exe: &Path) {
        let Ok(meta) = std::fs::metadata(exe) else {
            return;
        };
        let id = (meta.dev(), meta.ino());
        if self.checked_exes.len() >= SCANNED_MAX {
            self.checked_exes.clear();
        }
        if !self.checked_exes.insert(id) || self.attached.contains(&id) {
            return;
        }
        match go_tls(exe) {
            Ok(Some(points)) => {
                if self.attached.len() >= TLS_LIBRARIES_MAX {
                    return;
                }
                self.attached.insert(id);
                match attach_go(ebpf, exe, &points, &self.programs) {
                    Ok(n) => log::info!("--tls-probes: {n} probes on Go program {}", exe.display()),
                    Err(e) => log::warn!("--tls-probes: cannot probe {}: {e}", exe.display()),
                }
            }
            Ok(None) => {}
            Err(e) => log::debug!("--tls-probes: {}: {e}", exe.display()),
        }
    }

    fn attach(&mut self, ebpf: &mut Ebpf, path: &Path) {
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        let id = (meta.dev(), meta.ino());
        if self.attached.contains(&id) {
            return;
        }
        if self.attached.len() >= TLS_LIBRARIES_MAX {
            log::warn!(
                "--tls-probes: {} not probed: {TLS_LIBRARIES_MAX} library files already are",
                path.display()
            );
            return;
        }
        self.attached.insert(id);
        match attach_file(ebpf, path, self.programs.ret) {
            Ok(0) => log::debug!("--tls-probes: {} has no OpenSSL symbols", path.display()),
            Ok(n) => log::info!("--tls-probes: {n} probes on {}", path.display()),
            Err(e) => log::warn!("--tls-probes: cannot probe {}: {e}", path.display()),
        }
    }
}

/// Attaches every probe whose symbol `path` has; returns how many.
fn attach_file(ebpf: &mut Ebpf, path: &Path, ret: &str) -> Result<usize, ProgramError> {
    let mut attached = 0;
    for (program, symbol) in TLS_ENTRY_PROBES {
        if !attach_one(ebpf, program, symbol, path)? {
            continue;
        }
        attached += 1;
        // Reads and writes report their bytes at return.
        let returns = program.starts_with("ssl_write") || program.starts_with("ssl_read");
        if returns && attach_one(ebpf, ret, symbol, path)? {
            attached += 1;
        }
    }
    Ok(attached)
}

/// The Go programs: `Write` and `Read` at entry, and every RET of `Read`.
fn attach_go(
    ebpf: &mut Ebpf,
    exe: &Path,
    points: &GoTls,
    programs: &TlsPrograms,
) -> Result<usize, ProgramError> {
    let mut attached = 0;
    for (program, symbol) in [
        (programs.go_write, GO_TLS_WRITE),
        (GO_TLS_READ_PROBE, GO_TLS_READ),
    ] {
        attached += usize::from(attach_one(ebpf, program, symbol, exe)?);
    }
    let Some(prog) = ebpf.program_mut(programs.go_read_ret) else {
        return Ok(attached);
    };
    let prog: &mut UProbe = prog.try_into()?;
    for &offset in &points.read_returns {
        let at = UProbeAttachLocation::SymbolOffset(GO_TLS_READ, offset);
        prog.attach(at, exe, UProbeScope::AllProcesses)?;
        attached += 1;
    }
    Ok(attached)
}

/// One probe; false when the file lacks the symbol (OpenSSL 1.1.0 has no
/// `_ex` functions).
fn attach_one(
    ebpf: &mut Ebpf,
    program: &str,
    symbol: &str,
    path: &Path,
) -> Result<bool, ProgramError> {
    let Some(prog) = ebpf.program_mut(program) else {
        return Ok(false);
    };
    let prog: &mut UProbe = prog.try_into()?;
    match prog.attach(symbol, PathBuf::from(path), UProbeScope::AllProcesses) {
        Ok(_) => Ok(true),
        Err(ProgramError::UProbeError(UProbeError::SymbolError { .. })) => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_openssl_in_a_processes_maps_once() {
        let maps = "\
7f00-7f10 r--p 00000000 08:01 1234 /usr/lib/x86_64-linux-gnu/libssl.so.3
7f10-7f20 r-xp 00010000 08:01 1234 /usr/lib/x86_64-linux-gnu/libssl.so.3
7f20-7f30 r-xp 00000000 08:01 99 /usr/lib/x86_64-linux-gnu/libcrypto.so.3
7f30-7f40 rw-p 00000000 00:00 0 [heap]
7f40-7f50 r-xp 00000000 08:01 77 /opt/app/lib/libssl.so.1.1
7f50-7f60 rw-p 00000000 00:00 0
";
        assert_eq!(
            libraries_in_maps(maps),
            [
                "/opt/app/lib/libssl.so.1.1",
                "/usr/lib/x86_64-linux-gnu/libssl.so.3"
            ]
        );
        assert!(libraries_in_maps("garbage\n\n1 2 3").is_empty());
    }
}
