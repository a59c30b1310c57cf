//! Pod metadata from the kubelet's node-local log layout, no API needed:
//!
//! * `/var/log/pods/<namespace>_<pod>_<pod-uid>/<container>/` gives a pod
//!   uid's namespace, name and container names;
//! * `/var/log/containers/<pod>_<namespace>_<container>-<container-id>.log`
//!   gives a container id's pod, namespace and container name.
//!
//! Kubernetes names (DNS labels and subdomains) have no `_`, so splitting on
//! it is unambiguous; the container id is the 64 hex after the last `-`.
//! The kubelet creates the container link before starting the container.
use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use super::{cgroup_path::ContainerRef, throttle::RescanGate};

/// A miss rescans both directories at most this often.
pub const POD_RESCAN_INTERVAL: Duration = Duration::from_secs(2);
/// Entries read per directory; a node runs at most a few hundred pods.
pub const POD_SCAN_MAX_ENTRIES: usize = 16_384;

/// Where a container runs. `container` is empty when only the pod is known.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodInfo {
    pub namespace: String,
    pub pod: String,
    pub container: String,
}

/// A pod as its log directory describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodRecord {
    pub namespace: String,
    pub pod: String,
    /// Sorted; includes init containers that have run.
    pub containers: Vec<String>,
}

/// Pod and container names by uid and container id, refreshed from disk.
/// Each rescan replaces the maps, so deleted pods drop out.
#[derive(Debug)]
pub struct PodDirectory {
    pods_root: PathBuf,
    containers_root: PathBuf,
    by_uid: HashMap<String, PodRecord>,
    by_container: HashMap<String, PodInfo>,
    gate: RescanGate,
}

impl PodDirectory {
    pub fn new(pods_root: PathBuf, containers_root: PathBuf) -> Self {
        Self {
            pods_root,
            containers_root,
            by_uid: HashMap::new(),
            by_container: HashMap::new(),
            gate: RescanGate::new(POD_RESCAN_INTERVAL),
        }
    }

    /// Changes how often a miss may rescan (tests, tuning).
    pub fn with_rescan_interval(mut self, interval: Duration) -> Self {
        self.gate = RescanGate::new(interval);
        self
    }

    /// Names for a container: by its id, else by its pod's uid with an empty
    /// container name.
    pub fn lookup(&mut self, container: &ContainerRef) -> Option<PodInfo> {
        self.lookup_at(container, Instant::now())
    }

    /// The pod with this uid (dashed, lower case).
    pub fn pod(&mut self, uid: &str) -> Option<PodRecord> {
        if !self.by_uid.contains_key(uid) && self.gate.try_begin(Instant::now()) {
            self.rescan();
        }
        self.by_uid.get(uid).cloned()
    }

    fn lookup_at(&mut self, container: &ContainerRef, now: Instant) -> Option<PodInfo> {
        let id = container.container_id.as_str();
        if !self.by_container.contains_key(id) {
            // A new container (a new pod, a restart, a sidecar): learn just
            // it, whatever the rescan gate says, so churning pods are named
            // from their first connection. A full rescan, gated, also drops
            // what ended when the maps grow.
            if let Some(uid) = container.pod_uid.as_deref() {
                self.learn(uid, id);
            }
            let crowded = self.by_container.len() + self.by_uid.len() > POD_SCAN_MAX_ENTRIES;
            if (crowded || !self.by_container.contains_key(id)) && self.gate.try_begin(now) {
                self.rescan();
            }
        }
        if let Some(info) = self.by_container.get(id) {
            return Some(info.clone());
        }
        let pod = self.by_uid.get(container.pod_uid.as_deref()?)?;
        Some(PodInfo {
            namespace: pod.namespace.clone(),
            pod: pod.pod.clone(),
            container: String::new(),
        })
    }

    /// Reads just one pod's directory and its container's link: one listing
    /// of the pods directory (for the uid), one of the pod's directory and a
    /// `stat` per container name, however many pods the node runs.
    fn learn(&mut self, uid: &str, container_id: &str) {
        let suffix = format!("_{uid}");
        let Some(dir) = dir_names(&self.pods_root, true)
            .unwrap_or_default()
            .into_iter()
            .find(|name| name.to_ascii_lowercase().ends_with(&suffix))
        else {
            return;
        };
        let Some((namespace, pod, _)) = parse_pod_dir(&dir) else {
            return;
        };
        let mut containers = dir_names(&self.pods_root.join(&dir), true).unwrap_or_default();
        containers.sort();
        let container = containers.iter().find(|c| {
            let link = format!("{pod}_{namespace}_{c}-{container_id}.log");
            fs::symlink_metadata(self.containers_root.join(link)).is_ok()
        });
        if let Some(c) = container {
            self.by_container.insert(
                container_id.to_owned(),
                PodInfo {
                    namespace: namespace.to_owned(),
                    pod: pod.to_owned(),
                    container: c.clone(),
                },
            );
        }
        let record = PodRecord {
            namespace: namespace.to_owned(),
            pod: pod.to_owned(),
            containers,
        };
        self.by_uid.insert(uid.to_owned(), record);
    }

    fn rescan(&mut self) {
        if let Some(by_uid) = scan_pods(&self.pods_root) {
            self.by_uid = by_uid;
        }
        if let Some(by_container) = scan_containers(&self.containers_root) {
            self.by_container = by_container;
        }
    }
}

/// `None` when the directory cannot be read (keep what we had).
fn scan_pods(root: &Path) -> Option<HashMap<String, PodRecord>> {
    let mut out = HashMap::new();
    for name in dir_names(root, true)? {
        let Some((namespace, pod, uid)) = parse_pod_dir(&name) else {
            continue;
        };
        let mut containers = dir_names(&root.join(&name), true).unwrap_or_default();
        containers.sort();
        let record = PodRecord {
            namespace: namespace.to_owned(),
            pod: pod.to_owned(),
            containers,
        };
        out.insert(uid.to_ascii_lowercase(), record);
    }
    Some(out)
}

fn scan_containers(root: &Path) -> Option<HashMap<String, PodInfo>> {
    let mut out = HashMap::new();
    for name in dir_names(root, false)? {
        if let Some((id, info)) = parse_container_log(&name) {
            out.insert(id, info);
        }
    }
    Some(out)
}

/// Names in `dir`, directories only or (for log links) anything, capped.
fn dir_names(dir: &Path, dirs_only: bool) -> Option<Vec<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) => {
            log::debug!("pod scan: cannot read {}: {err}", dir.display());
            return None;
        }
    };
    let names = entries
        .flatten()
        .filter(|e| !dirs_only || e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .take(POD_SCAN_MAX_ENTRIES)
        .collect();
    Some(names)
}

/// `<namespace>_<pod>_<uid>` → (namespace, pod, uid).
pub(crate) fn parse_pod_dir(name: &str) -> Option<(&str, &str, &str)> {
    let mut parts = name.split('_');
    let (namespace, pod, uid) = (parts.next()?, parts.next()?, parts.next()?);
    let ok = parts.next().is_none() && ![namespace, pod, uid].contains(&"");
    ok.then_some((namespace, pod, uid))
}

/// `<pod>_<namespace>_<container>-<id>.log` → (id, names).
pub(crate) fn parse_container_log(name: &str) -> Option<(String, PodInfo)> {
    let (head, id) = name.strip_suffix(".log")?.rsplit_once('-')?;
    if id.len() != 64 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let mut parts = head.split('_');
    let (pod, namespace, container) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || [pod, namespace, container].contains(&"") {
        return None;
    }
    let info = PodInfo {
        namespace: namespace.to_owned(),
        pod: pod.to_owned(),
        container: container.to_owned(),
    };
    Some((id.to_ascii_lowercase(), info))
}

#[cfg(test)]
mod tests;
