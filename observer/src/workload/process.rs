//! Process executable paths from procfs, cached per tgid.
//!
//! A pid can be reused by a new process, so each entry remembers the
//! process start time (field 22 of `/proc/<pid>/stat`, clock ticks since
//! boot) and is trusted only while it still matches. Reading `stat` on
//! every connection would cost more than everything else gatewatch does
//! for it, so an entry is trusted without a read while the connection
//! comes from the same cgroup under the same comm (an exec changes the
//! comm) and it was checked less than `PROCESS_RECHECK` ago. The path is the one
//! the kernel prints for `/proc/<pid>/exe`: inside the process's mount
//! namespace for containers, with ` (deleted)` appended if the file was
//! replaced. Reading it needs ptrace access to the process (root with
//! CAP_SYS_PTRACE in the DaemonSet).
use std::{
    fs,
    num::NonZeroUsize,
    path::PathBuf,
    time::{Duration, Instant},
};

use lru::LruCache;

/// Processes remembered; enough for every process on a busy node.
pub const PROCESS_CACHE_CAPACITY: usize = 8_192;

/// A cached process seen again (same cgroup, same comm) is trusted without
/// reading procfs for this long; then its start time is checked again.
pub const PROCESS_RECHECK: Duration = Duration::from_secs(5);

/// Index of `starttime` among the fields after the `(comm)` field:
/// field 22 overall, fields 3.. follow the closing parenthesis.
const STARTTIME_AFTER_COMM: usize = 22 - 3;

#[derive(Debug)]
struct Entry {
    start_time: u64,
    /// `None` remembers a failed readlink (kernel thread, no permission).
    exe: Option<String>,
    /// Who the kernel last said made a connection with this tgid.
    seen: Seen,
    checked_at: Instant,
}

/// What the kernel tells about the process at each connection, for free.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    pub cgroup_id: u64,
    pub comm: [u8; 16],
}

impl Seen {
    pub fn new(cgroup_id: u64, comm: &str) -> Self {
        let mut bytes = [0u8; 16];
        let n = comm.len().min(bytes.len());
        bytes[..n].copy_from_slice(&comm.as_bytes()[..n]);
        Self {
            cgroup_id,
            comm: bytes,
        }
    }
}

#[derive(Debug)]
pub struct ProcessCache {
    proc_root: PathBuf,
    cache: LruCache<u32, Entry>,
}

impl ProcessCache {
    pub fn new(proc_root: PathBuf) -> Self {
        let cap = NonZeroUsize::new(PROCESS_CACHE_CAPACITY).unwrap_or(NonZeroUsize::MIN);
        Self {
            proc_root,
            cache: LruCache::new(cap),
        }
    }

    /// The executable of process `tgid`, if it can be read.
    /// The procfs this reads (the host's).
    pub fn root(&self) -> &std::path::Path {
        &self.proc_root
    }

    pub fn exe(&mut self, tgid: u32) -> Option<String> {
        self.exe_at(tgid, Seen::default(), None)
    }

    /// The executable of process `tgid`, seen by the kernel as `seen` at
    /// `now`: served from the cache without a syscall when the same process
    /// was checked recently.
    pub fn exe_seen(&mut self, tgid: u32, seen: Seen, now: Instant) -> Option<String> {
        self.exe_at(tgid, seen, Some(now))
    }

    fn exe_at(&mut self, tgid: u32, seen: Seen, now: Option<Instant>) -> Option<String> {
        if tgid == 0 {
            return None; // the idle task; no /proc entry
        }
        if let (Some(now), Some(entry)) = (now, self.cache.get(&tgid))
            && entry.seen == seen
            && now.saturating_duration_since(entry.checked_at) < PROCESS_RECHECK
        {
            return entry.exe.clone();
        }
        let now = now.unwrap_or_else(Instant::now);
        let Some(start_time) = self.start_time(tgid) else {
            // Exited (short-lived clients often have by the time their event
            // is read): the last process seen with this pid is the best guess.
            return self.cache.get(&tgid).and_then(|e| e.exe.clone());
        };
        if let Some(entry) = self.cache.get_mut(&tgid)
            && entry.start_time == start_time
        {
            entry.seen = seen;
            entry.checked_at = now;
            return entry.exe.clone();
        }
        let exe = fs::read_link(self.proc_root.join(tgid.to_string()).join("exe"))
            .ok()
            .map(|p| p.to_string_lossy().into_owned());
        // The pid may have been reused between the two reads; then the path
        // could be the newcomer's, so give nothing rather than a wrong name.
        if self.start_time(tgid) != Some(start_time) {
            return None;
        }
        self.cache.put(
            tgid,
            Entry {
                start_time,
                exe: exe.clone(),
                seen,
                checked_at: now,
            },
        );
        exe
    }

    fn start_time(&self, tgid: u32) -> Option<u64> {
        read_start_time(&self.proc_root, tgid)
    }
}

/// The comm of process `tgid` under `proc_root`, as the kernel reports it
/// in connect records; `None` once it is gone.
pub fn read_comm(proc_root: &std::path::Path, tgid: u32) -> Option<String> {
    let comm = fs::read_to_string(proc_root.join(tgid.to_string()).join("comm")).ok()?;
    Some(comm.trim_end_matches('\n').to_owned())
}

/// The start time of process `tgid` under `proc_root`; `None` once it is
/// gone. With the tgid it names one process, even after pid reuse.
pub fn read_start_time(proc_root: &std::path::Path, tgid: u32) -> Option<u64> {
    let stat = fs::read_to_string(proc_root.join(tgid.to_string()).join("stat")).ok()?;
    parse_start_time(&stat)
}

/// `starttime` from the text of `/proc/<pid>/stat`. The comm field can hold
/// spaces and parentheses, so fields are counted from the last `)`.
pub fn parse_start_time(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_ascii_whitespace()
        .nth(STARTTIME_AFTER_COMM)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests;
