//! cgroup v2 id → cgroup path.
//!
//! `bpf_get_current_cgroup_id()` returns the kernfs id of the task's cgroup,
//! which on 64-bit kernels is the inode number of its directory under the
//! cgroup v2 mount. So resolving walks that mount and matches inode numbers.
//! The root must be the v2 (unified) mount; on a v1-only host nothing
//! resolves.
use std::{
    fs,
    num::NonZeroUsize,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use lru::LruCache;

use super::throttle::RescanGate;

/// Paths kept; a node has a few thousand cgroups at most.
pub const CGROUP_CACHE_CAPACITY: usize = 16_384;
/// A miss rescans the tree at most this often.
pub const CGROUP_RESCAN_INTERVAL: Duration = Duration::from_secs(2);
/// A cached path is trusted without a `stat` for this long. cgroup ids are
/// never reused while the kernel runs, so a hit can only go stale by a
/// rename, which container runtimes do not do; re-checking once in a while
/// still catches it.
pub const CGROUP_RECHECK: Duration = Duration::from_secs(30);
/// A scan stops after this many directories, bounding its cost.
pub const CGROUP_SCAN_MAX_DIRS: usize = 65_536;
/// …and does not descend deeper than this below the root.
pub const CGROUP_SCAN_MAX_DEPTH: usize = 32;

/// Maps cgroup ids to paths relative to the cgroup root, written as
/// `/proc/<pid>/cgroup` writes them: with a leading `/`, the root is `/`.
#[derive(Debug)]
pub struct CgroupResolver {
    root: PathBuf,
    cache: LruCache<u64, Cached>,
    gate: RescanGate,
}

#[derive(Debug)]
struct Cached {
    path: String,
    checked_at: Instant,
}

impl CgroupResolver {
    pub fn new(cgroup_root: PathBuf) -> Self {
        Self {
            root: cgroup_root,
            cache: LruCache::new(capacity(CGROUP_CACHE_CAPACITY)),
            gate: RescanGate::new(CGROUP_RESCAN_INTERVAL),
        }
    }

    /// Changes how often a miss may rescan (tests, tuning).
    pub fn with_rescan_interval(mut self, interval: Duration) -> Self {
        self.gate = RescanGate::new(interval);
        self
    }

    pub fn resolve(&mut self, id: u64) -> Option<String> {
        self.resolve_at(id, None, Instant::now())
    }

    /// Resolves `id`, asking `{proc_root}/{tgid}/cgroup` first when the
    /// connecting process is given: a new cgroup (a pod that just started)
    /// resolves at once, without waiting for the rescan gate.
    pub fn resolve_for(&mut self, id: u64, proc: Option<(&Path, u32)>) -> Option<String> {
        self.resolve_at(id, proc, Instant::now())
    }

    fn resolve_at(&mut self, id: u64, proc: Option<(&Path, u32)>, now: Instant) -> Option<String> {
        if let Some(hit) = self.cache.get_mut(&id) {
            if now.saturating_duration_since(hit.checked_at) < CGROUP_RECHECK {
                return Some(hit.path.clone());
            }
            // Renamed since? Check before trusting it for another while.
            if inode_of(&self.root, &hit.path) == Some(id) {
                hit.checked_at = now;
                return Some(hit.path.clone());
            }
            self.cache.pop(&id);
        }
        // The process's own view of its cgroup, checked against the id. It
        // is relative to the cgroup v2 mount; when gatewatch is attached
        // below it, the path relative to the attach point is a suffix.
        if let Some(full) = proc.and_then(|(root, tgid)| proc_cgroup_path(root, tgid))
            && let Some(path) = path_suffixes(&full).find(|p| inode_of(&self.root, p) == Some(id))
        {
            self.cache.put(
                id,
                Cached {
                    path: path.clone(),
                    checked_at: now,
                },
            );
            return Some(path);
        }
        if !self.gate.try_begin(now) {
            return None;
        }
        let found = self.rescan(id, now);
        if let Some(path) = &found {
            // Put last so it survives a scan bigger than the cache.
            self.cache.put(
                id,
                Cached {
                    path: path.clone(),
                    checked_at: now,
                },
            );
        }
        found
    }

    /// Walks the tree, caching every directory; returns the path of `wanted`.
    fn rescan(&mut self, wanted: u64, now: Instant) -> Option<String> {
        let mut found = None;
        let mut seen = 0usize;
        let mut stack = vec![(self.root.clone(), String::from("/"), 0usize)];
        while let Some((dir, rel, depth)) = stack.pop() {
            if seen == CGROUP_SCAN_MAX_DIRS {
                log::warn!(
                    "cgroup scan of {} stopped at {CGROUP_SCAN_MAX_DIRS} directories",
                    self.root.display()
                );
                break;
            }
            let Ok(meta) = fs::symlink_metadata(&dir) else {
                continue; // removed while we walked
            };
            seen += 1;
            if meta.ino() == wanted {
                found = Some(rel.clone());
            }
            if depth < CGROUP_SCAN_MAX_DEPTH {
                push_children(&dir, &rel, depth, &mut stack);
            }
            self.cache.put(
                meta.ino(),
                Cached {
                    path: rel,
                    checked_at: now,
                },
            );
        }
        found
    }
}

/// `/a/b/c`, `/b/c`, `/c`: where a path may start below the attach point.
fn path_suffixes(full: &str) -> impl Iterator<Item = String> + '_ {
    full.match_indices('/')
        .map(|(i, _)| full[i..].to_owned())
        .take(CGROUP_SCAN_MAX_DEPTH)
}

/// The cgroup v2 path in `/proc/<tgid>/cgroup` (the `0::` line).
fn proc_cgroup_path(proc_root: &Path, tgid: u32) -> Option<String> {
    let text = fs::read_to_string(proc_root.join(tgid.to_string()).join("cgroup")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .filter(|p| p.starts_with('/'))
        .map(str::to_owned)
}

fn push_children(dir: &Path, rel: &str, depth: usize, stack: &mut Vec<(PathBuf, String, usize)>) {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) => {
            log::debug!("cgroup scan: cannot read {}: {err}", dir.display());
            return;
        }
    };
    for entry in entries.flatten() {
        // file_type() comes from readdir: no extra syscall for the many
        // interface files, and symlinks are not followed.
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue; // cgroup names are UTF-8 in practice; skip oddities
        };
        let child_rel = if rel == "/" {
            format!("/{name}")
        } else {
            format!("{rel}/{name}")
        };
        stack.push((entry.path(), child_rel, depth + 1));
    }
}

fn inode_of(root: &Path, rel: &str) -> Option<u64> {
    // Joining an absolute path would replace the root.
    let path = root.join(rel.trim_start_matches('/'));
    fs::symlink_metadata(path).ok().map(|m| m.ino())
}

fn capacity(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)
}

#[cfg(test)]
mod tests;
