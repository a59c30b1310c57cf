//! Workload attribution: which Kubernetes namespace, pod and container, and
//! which executable, made a connection, from the client's cgroup v2 id and
//! tgid that the kernel hooks record.
//!
//! Steps, one submodule each, all reading only node-local files under
//! configurable roots (the DaemonSet mounts the host's at `/host/...`):
//!
//! cgroup id → [`CgroupResolver`] (walk the cgroup v2 mount by inode) →
//! [`parse_cgroup_path`] (container id, pod uid) → [`PodDirectory`]
//! (kubelet log layout: names) and tgid → [`ProcessCache`] (`/proc/<pid>/exe`).
//! [`Workloads`] joins them; [`GatewaySelector`] matches the result.
//!
//! Without the Kubernetes API there are no pod labels; off Kubernetes the
//! Kubernetes fields are simply empty.
use std::path::{Path, PathBuf};

mod cgroup_path;
mod cgroup_resolver;
mod glob;
mod pods;
mod process;
mod selector;
mod throttle;

#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;

pub use cgroup_path::{ContainerRef, Qos, Runtime, parse_cgroup_path};
pub use cgroup_resolver::{
    CGROUP_CACHE_CAPACITY, CGROUP_RESCAN_INTERVAL, CGROUP_SCAN_MAX_DEPTH, CGROUP_SCAN_MAX_DIRS,
    CgroupResolver,
};
pub use glob::Glob;
pub use pods::{POD_RESCAN_INTERVAL, POD_SCAN_MAX_ENTRIES, PodDirectory, PodInfo, PodRecord};
pub use process::{PROCESS_CACHE_CAPACITY, ProcessCache, parse_start_time};
pub use selector::{GatewaySelector, SELECTOR_KEYS, SelectorError};

/// Where the host's files are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadConfig {
    /// The cgroup v2 mount, e.g. `/host/sys/fs/cgroup`.
    pub cgroup_root: PathBuf,
    /// The host's procfs, e.g. `/host/proc`.
    pub proc_root: PathBuf,
    /// The kubelet's `/var/log/pods`.
    pub pods_root: PathBuf,
    /// The kubelet's `/var/log/containers`.
    pub containers_root: PathBuf,
}

impl WorkloadConfig {
    /// The standard host paths below `prefix` (`/` on the host itself,
    /// `/host` in the DaemonSet).
    pub fn under(prefix: &Path) -> Self {
        Self {
            cgroup_root: prefix.join("sys/fs/cgroup"),
            proc_root: prefix.join("proc"),
            pods_root: prefix.join("var/log/pods"),
            containers_root: prefix.join("var/log/containers"),
        }
    }
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        Self::under(Path::new("/"))
    }
}

/// Who made a connection. Empty strings mean unknown.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Workload {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    /// 64 hex, for any container runtime, in Kubernetes or not.
    pub container_id: String,
    pub exe: String,
    /// As in `/proc/<pid>/cgroup`, e.g. `/system.slice/sshd.service`.
    pub cgroup_path: String,
}

/// Resolves cgroup ids and tgids to workloads, caching each step. Every
/// miss costs at most a bounded, rate-limited directory scan; missing
/// directories just leave fields empty.
#[derive(Debug)]
pub struct Workloads {
    cgroups: CgroupResolver,
    pods: PodDirectory,
    processes: ProcessCache,
}

impl Workloads {
    pub fn new(config: WorkloadConfig) -> Self {
        Self::from_parts(
            CgroupResolver::new(config.cgroup_root),
            PodDirectory::new(config.pods_root, config.containers_root),
            ProcessCache::new(config.proc_root),
        )
    }

    /// Built from configured parts (e.g. other rescan intervals).
    pub fn from_parts(
        cgroups: CgroupResolver,
        pods: PodDirectory,
        processes: ProcessCache,
    ) -> Self {
        Self {
            cgroups,
            pods,
            processes,
        }
    }

    pub fn identify(&mut self, cgroup_id: u64, tgid: u32) -> Workload {
        let mut w = Workload {
            exe: self.processes.exe(tgid).unwrap_or_default(),
            ..Workload::default()
        };
        let Some(path) = self.cgroups.resolve(cgroup_id) else {
            return w;
        };
        let container = parse_cgroup_path(&path);
        w.cgroup_path = path;
        let Some(container) = container else {
            return w;
        };
        // Only Kubernetes containers have a pod uid in their path; asking
        // the pod directory about others would only cost rescans.
        if container.pod_uid.is_some()
            && let Some(pod) = self.pods.lookup(&container)
        {
            w.namespace = pod.namespace;
            w.pod = pod.pod;
            w.container = pod.container;
        }
        w.container_id = container.container_id;
        w
    }
}
