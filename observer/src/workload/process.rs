//! Process executable paths from procfs, cached per tgid.
//!
//! A pid can be reused by a new process, so each entry remembers the
//! process start time (field 22 of `/proc/<pid>/stat`, clock ticks since
//! boot) and is trusted only while it still matches. The path is the one
//! the kernel prints for `/proc/<pid>/exe`: inside the process's mount
//! namespace for containers, with ` (deleted)` appended if the file was
//! replaced. Reading it needs ptrace access to the process (root with
//! CAP_SYS_PTRACE in the DaemonSet).
use std::{fs, num::NonZeroUsize, path::PathBuf};

use lru::LruCache;

/// Processes remembered; enough for every process on a busy node.
pub const PROCESS_CACHE_CAPACITY: usize = 8_192;

/// Index of `starttime` among the fields after the `(comm)` field:
/// field 22 overall, fields 3.. follow the closing parenthesis.
const STARTTIME_AFTER_COMM: usize = 22 - 3;

#[derive(Debug)]
struct Entry {
    start_time: u64,
    /// `None` remembers a failed readlink (kernel thread, no permission).
    exe: Option<String>,
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
        if tgid == 0 {
            return None; // the idle task; no /proc entry
        }
        let Some(start_time) = self.start_time(tgid) else {
            // Exited (short-lived clients often have by the time their event
            // is read): the last process seen with this pid is the best guess.
            return self.cache.get(&tgid).and_then(|e| e.exe.clone());
        };
        if let Some(entry) = self.cache.get(&tgid)
            && entry.start_time == start_time
        {
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
            },
        );
        exe
    }

    fn start_time(&self, tgid: u32) -> Option<u64> {
        let stat = fs::read_to_string(self.proc_root.join(tgid.to_string()).join("stat")).ok()?;
        parse_start_time(&stat)
    }
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
