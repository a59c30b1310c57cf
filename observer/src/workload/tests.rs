use std::time::Duration;

use super::*;
use test_support::TempDir;

const ID: &str = "4f797c539e6c745de61a93ca3ff892358ecbcaccd8414d5db545c38428142970";
const ID2: &str = "9ec39b91f3d70e1beff50a308f77067065ea6be0d91a3378375056cd4422cf3d";
const UID: &str = "74c13223-5a00-11e9-b385-42010a80018d";
const UID_: &str = "74c13223_5a00_11e9_b385_42010a80018d";

/// A fake host: cgroup tree and kubelet logs in a temp dir, the real /proc.
fn host() -> (TempDir, Workloads) {
    let tree = TempDir::new("facade");
    let config = WorkloadConfig {
        proc_root: PathBuf::from("/proc"),
        ..WorkloadConfig::under(tree.path())
    };
    tree.mkdir("sys/fs/cgroup/system.slice/sshd.service");
    tree.mkdir("var/log/pods");
    tree.mkdir("var/log/containers");
    let w = Workloads::from_parts(
        CgroupResolver::new(config.cgroup_root).with_rescan_interval(Duration::ZERO),
        PodDirectory::new(config.pods_root, config.containers_root)
            .with_rescan_interval(Duration::ZERO),
        ProcessCache::new(config.proc_root),
    );
    (tree, w)
}

fn own_exe() -> String {
    std::env::current_exe()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn kubernetes_container_gets_every_field() {
    let (tree, mut w) = host();
    let cg = format!(
        "sys/fs/cgroup/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/cri-containerd-{ID}.scope"
    );
    tree.mkdir(&cg);
    tree.write(
        &format!("var/log/pods/ai-gw_litellm-0_{UID}/proxy/0.log"),
        "",
    );
    tree.symlink(
        "/var/log/pods/x/proxy/0.log",
        &format!("var/log/containers/litellm-0_ai-gw_proxy-{ID}.log"),
    );
    let got = w.identify(tree.ino(&cg), std::process::id(), "");
    assert_eq!(
        got,
        Workload {
            namespace: "ai-gw".into(),
            pod: "litellm-0".into(),
            container: "proxy".into(),
            container_id: ID.into(),
            exe: own_exe(),
            cgroup_path: cg.trim_start_matches("sys/fs/cgroup").into(),
            ..Workload::default()
        }
    );
}

#[test]
fn pod_without_container_link_gets_namespace_and_pod_only() {
    let (tree, mut w) = host();
    let cg = format!("sys/fs/cgroup/kubepods/besteffort/pod{UID}/{ID}");
    tree.mkdir(&cg);
    tree.mkdir(&format!("var/log/pods/default_web_{UID}/app"));
    let got = w.identify(tree.ino(&cg), 0, "");
    assert_eq!(got.namespace, "default");
    assert_eq!(got.pod, "web");
    assert_eq!(got.container, "");
    assert_eq!(got.container_id, ID);
    assert_eq!(got.exe, "");
}

#[test]
fn plain_docker_container_has_id_but_no_kubernetes_labels() {
    let (tree, mut w) = host();
    let cg = format!("sys/fs/cgroup/system.slice/docker-{ID2}.scope");
    tree.mkdir(&cg);
    let got = w.identify(tree.ino(&cg), std::process::id(), "");
    assert_eq!(got.container_id, ID2);
    assert_eq!(got.cgroup_path, format!("/system.slice/docker-{ID2}.scope"));
    assert_eq!((got.namespace.as_str(), got.pod.as_str()), ("", ""));
    assert_eq!(got.exe, own_exe());
}

#[test]
fn host_process_has_only_path_and_exe() {
    let (tree, mut w) = host();
    let got = w.identify(
        tree.ino("sys/fs/cgroup/system.slice/sshd.service"),
        std::process::id(),
        "",
    );
    assert_eq!(
        got,
        Workload {
            cgroup_path: "/system.slice/sshd.service".into(),
            exe: own_exe(),
            ..Workload::default()
        }
    );
}

#[test]
fn missing_directories_yield_empty_fields_without_panicking() {
    let tree = TempDir::new("facade-missing");
    let mut w = Workloads::new(WorkloadConfig::under(&tree.path().join("absent")));
    assert_eq!(w.identify(12345, 1, ""), Workload::default());
    assert_eq!(w.identify(0, 0, ""), Workload::default());
    assert_eq!(w.identify(u64::MAX, u32::MAX, ""), Workload::default());
}

#[test]
fn unknown_cgroup_id_still_reports_exe() {
    let (_tree, mut w) = host();
    let got = w.identify(u64::MAX, std::process::id(), "");
    assert_eq!(got.cgroup_path, "");
    assert_eq!(got.exe, own_exe());
}

#[test]
fn config_under_prefix_uses_standard_host_paths() {
    let c = WorkloadConfig::under(Path::new("/host"));
    assert_eq!(c.cgroup_root, Path::new("/host/sys/fs/cgroup"));
    assert_eq!(c.proc_root, Path::new("/host/proc"));
    assert_eq!(c.pods_root, Path::new("/host/var/log/pods"));
    assert_eq!(c.containers_root, Path::new("/host/var/log/containers"));
    assert_eq!(WorkloadConfig::default().proc_root, Path::new("/proc"));
}

#[test]
fn identified_workload_feeds_a_selector() {
    let (tree, mut w) = host();
    let cg =
        format!("sys/fs/cgroup/kubepods.slice/kubepods-pod{UID_}.slice/crio-{ID}.scope/container");
    tree.mkdir(&cg);
    tree.symlink(
        "/dev/null",
        &format!("var/log/containers/litellm-5c_ai-gw_proxy-{ID}.log"),
    );
    let got = w.identify(tree.ino(&cg), 0, "");
    let selector = GatewaySelector::parse("namespace=ai-gw,pod=litellm-*").unwrap();
    assert!(selector.matches(&got, "litellm"));
}
