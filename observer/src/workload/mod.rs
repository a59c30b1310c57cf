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
//! Kubernetes fields are simply empty. With `--kube-api`, a [`PodWatcher`]
//! keeps this node's pods from the API in [`KubePods`]; [`Workloads`] then
//! asks it first (an in-memory lookup, no directory scan) and falls back to
//! the node-local files for what it lacks (the API not synced yet, a
//! container whose status the kubelet has not reported yet). Labels come
//! only from the API.
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::Instant,
};

mod cgroup_path;
mod cgroup_resolver;
mod glob;
mod kube_api;
mod pods;
mod process;
mod recent;
mod selector;
mod throttle;

#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests;

pub use cgroup_path::{ContainerRef, Qos, Runtime, parse_cgroup_path};
pub use cgroup_resolver::{
    CGROUP_CACHE_CAPACITY, CGROUP_RESCAN_INTERVAL, CGROUP_SCAN_MAX_DEPTH, CGROUP_SCAN_MAX_DIRS,
    CgroupResolver,
};
pub use glob::Glob;
pub use kube_api::{
    KUBE_MAX_CONTAINERS, KUBE_MAX_LABELS, KUBE_MAX_PODS, KubePod, KubePods, PodWatcher,
};
pub use pods::{POD_RESCAN_INTERVAL, POD_SCAN_MAX_ENTRIES, PodDirectory, PodInfo, PodRecord};
pub use process::{
    PROCESS_CACHE_CAPACITY, PROCESS_RECHECK, ProcessCache, Seen, parse_start_time, read_comm,
    read_start_time,
};
pub use recent::{RECENT_MAX, RECENT_TTL, Recent};
pub use selector::{GatewaySelector, SELECTOR_KEYS, SelectorError, describe_workload};

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
    /// Pod labels; empty without `--kube-api`. Shared with the pod's entry.
    pub labels: Arc<BTreeMap<String, String>>,
}

/// Resolves cgroup ids and tgids to workloads, caching each step. Every
/// miss costs at most a bounded, rate-limited directory scan; missing
/// directories just leave fields empty.
#[derive(Debug)]
pub struct Workloads {
    cgroups: CgroupResolver,
    pods: PodDirectory,
    processes: ProcessCache,
    kube: Option<KubePods>,
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
            kube: None,
        }
    }

    /// Also names pods from the Kubernetes API (`--kube-api`), with labels.
    pub fn with_kube_pods(mut self, pods: KubePods) -> Self {
        self.kube = Some(pods);
        self
    }

    /// Who made a connection, from what the kernel recorded at its
    /// `connect()`: the cgroup id, the tgid and the thread's comm.
    pub fn identify(&mut self, cgroup_id: u64, tgid: u32, comm: &str) -> Workload {
        let seen = Seen::new(cgroup_id, comm);
        let mut w = Workload {
            exe: self
                .processes
                .exe_seen(tgid, seen, Instant::now())
                .unwrap_or_default(),
            ..Workload::default()
        };
        let proc = Some((self.processes.root(), tgid));
        let Some(path) = self.cgroups.resolve_for(cgroup_id, proc) else {
            return w;
        };
        let container = parse_cgroup_path(&path);
        w.cgroup_path = path;
        let Some(container) = container else {
            return w;
        };
        // The API's pod first: a map lookup, and the only source of labels.
        if let Some(uid) = container.pod_uid.as_deref()
            && let Some(pod) = self.kube.as_ref().and_then(|k| k.get(uid))
        {
            w.namespace.clone_from(&pod.namespace);
            w.pod.clone_from(&pod.name);
            w.labels = pod.labels.clone();
            if let Some(name) = pod.containers.get(&container.container_id) {
                w.container.clone_from(name);
            }
        }
        // Only Kubernetes containers have a pod uid in their path; asking
        // the pod directory about others would only cost rescans.
        if container.pod_uid.is_some()
            && w.container.is_empty()
            && let Some(pod) = self.pods.lookup(&container)
        {
            for (field, value) in [
                (&mut w.namespace, pod.namespace),
                (&mut w.pod, pod.pod),
                (&mut w.container, pod.container),
            ] {
                if field.is_empty() {
                    *field = value;
                }
            }
        }
        w.container_id = container.container_id;
        w
    }
}
