//! A node's kubelet layout, made by a test: pod cgroups (systemd driver,
//! containerd) under the test's cgroup, and the pod log directories
//! gatewatch reads names from. Removed by drop guards.
use std::path::{Path, PathBuf};

use crate::{Gatewatch, TestCgroup, unique};

/// A pod as the kubelet lays it out on a node: its cgroup (systemd driver,
/// containerd) under the test cgroup, and its log directories.
pub struct FakePod {
    pub cgroup: TestCgroup,
    /// The pod's log directory and container log link, removed with it.
    logs: Vec<PathBuf>,
}

impl Drop for FakePod {
    fn drop(&mut self) {
        for path in &self.logs {
            let _ = std::fs::remove_dir_all(path).or_else(|_| std::fs::remove_file(path));
        }
    }
}

pub struct Node {
    pub root: TestCgroup,
    logs: PathBuf,
}

impl Default for Node {
    fn default() -> Self {
        Self::new()
    }
}

impl Node {
    pub fn new() -> Self {
        let logs = std::env::temp_dir().join(unique("node"));
        std::fs::create_dir_all(logs.join("pods")).expect("pods dir");
        std::fs::create_dir_all(logs.join("containers")).expect("containers dir");
        Self {
            root: TestCgroup::new("attr"),
            logs,
        }
    }

    pub fn pod(&self, namespace: &str, pod: &str, container: &str, n: u32) -> FakePod {
        let uid = format!("1d2c3b4a-0000-4000-8000-{n:012}");
        let id = format!("{n:064x}");
        let slice = format!("kubepods-burstable-pod{}.slice", uid.replace('-', "_"));
        let path = self
            .root
            .path
            .join("kubepods.slice/kubepods-burstable.slice")
            .join(slice)
            .join(format!("cri-containerd-{id}.scope"));
        let pod_dir = self
            .logs
            .join("pods")
            .join(format!("{namespace}_{pod}_{uid}"))
            .join(container);
        std::fs::create_dir_all(&pod_dir).expect("pod log dir");
        std::fs::write(pod_dir.join("0.log"), b"").expect("pod log file");
        let link = self
            .logs
            .join("containers")
            .join(format!("{pod}_{namespace}_{container}-{id}.log"));
        std::os::unix::fs::symlink(pod_dir.join("0.log"), &link).expect("container log link");
        FakePod {
            cgroup: TestCgroup::at(path),
            logs: vec![pod_dir.parent().expect("pod dir").to_owned(), link],
        }
    }

    pub fn gatewatch(&self, extra: &[&str]) -> Gatewatch {
        let pods = self.logs.join("pods");
        let containers = self.logs.join("containers");
        let mut args = vec![
            "--pod-logs",
            path_str(&pods),
            "--container-logs",
            path_str(&containers),
        ];
        args.extend_from_slice(extra);
        let owned: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let refs: Vec<&str> = owned.iter().map(String::as_str).collect();
        Gatewatch::start(&self.root, &refs)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.logs);
    }
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}
