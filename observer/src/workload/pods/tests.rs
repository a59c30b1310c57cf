use super::*;
use crate::workload::{cgroup_path::Runtime, test_support::TempDir};

const ID: &str = "4f797c539e6c745de61a93ca3ff892358ecbcaccd8414d5db545c38428142970";
const ID2: &str = "9ec39b91f3d70e1beff50a308f77067065ea6be0d91a3378375056cd4422cf3d";
const UID: &str = "74c13223-5a00-11e9-b385-42010a80018d";

struct Node {
    tree: TempDir,
}

impl Node {
    fn new(tag: &str) -> Self {
        let tree = TempDir::new(tag);
        tree.mkdir("pods");
        tree.mkdir("containers");
        Self { tree }
    }

    fn pod(&self, namespace: &str, pod: &str, uid: &str, containers: &[&str]) {
        for c in containers {
            self.tree
                .write(&format!("pods/{namespace}_{pod}_{uid}/{c}/0.log"), "");
        }
    }

    fn link(&self, pod: &str, namespace: &str, container: &str, id: &str) {
        let target = format!("/var/log/pods/{namespace}_{pod}_{UID}/{container}/0.log");
        self.tree.symlink(
            &target,
            &format!("containers/{pod}_{namespace}_{container}-{id}.log"),
        );
    }

    fn directory(&self, interval: Duration) -> PodDirectory {
        let root = self.tree.path();
        PodDirectory::new(root.join("pods"), root.join("containers")).with_rescan_interval(interval)
    }
}

fn cref(id: &str, uid: Option<&str>) -> ContainerRef {
    ContainerRef {
        runtime: Runtime::Containerd,
        container_id: id.to_owned(),
        pod_uid: uid.map(str::to_owned),
        qos: None,
    }
}

fn info(namespace: &str, pod: &str, container: &str) -> PodInfo {
    PodInfo {
        namespace: namespace.into(),
        pod: pod.into(),
        container: container.into(),
    }
}

#[test]
fn container_log_link_names_pod_namespace_and_container() {
    let node = Node::new("pods-link");
    node.pod("ai-gw", "litellm-7d9f8-x2x4q", UID, &["proxy"]);
    node.link("litellm-7d9f8-x2x4q", "ai-gw", "proxy", ID);
    let mut dir = node.directory(Duration::ZERO);
    assert_eq!(
        dir.lookup(&cref(ID, Some(UID))),
        Some(info("ai-gw", "litellm-7d9f8-x2x4q", "proxy"))
    );
    // The link alone is enough, even with no pod uid in the cgroup path.
    assert_eq!(
        dir.lookup(&cref(ID, None)),
        Some(info("ai-gw", "litellm-7d9f8-x2x4q", "proxy"))
    );
}

#[test]
fn pod_uid_alone_gives_namespace_and_pod_with_empty_container() {
    let node = Node::new("pods-uid");
    node.pod("kube-system", "coredns-5d78c9869d-abcde", UID, &["coredns"]);
    let mut dir = node.directory(Duration::ZERO);
    assert_eq!(
        dir.lookup(&cref(ID, Some(UID))),
        Some(info("kube-system", "coredns-5d78c9869d-abcde", ""))
    );
    assert_eq!(dir.lookup(&cref(ID, None)), None);
}

#[test]
fn pod_record_lists_container_names_sorted() {
    let node = Node::new("pods-record");
    node.pod("ns", "web", UID, &["sidecar", "app", "init-db"]);
    let mut dir = node.directory(Duration::ZERO);
    let record = dir.pod(UID).expect("pod");
    assert_eq!(record.namespace, "ns");
    assert_eq!(record.pod, "web");
    assert_eq!(record.containers, ["app", "init-db", "sidecar"]);
}

#[test]
fn names_with_dots_and_dashes_survive() {
    let node = Node::new("pods-dots");
    node.link("web.v1-2-abc", "team-a.prod", "app-main", ID);
    let mut dir = node.directory(Duration::ZERO);
    assert_eq!(
        dir.lookup(&cref(ID, None)),
        Some(info("team-a.prod", "web.v1-2-abc", "app-main"))
    );
}

#[test]
fn a_new_container_is_learned_at_once_even_while_rescans_are_gated() {
    let node = Node::new("pods-new-ctr");
    node.pod("ns", "web", UID, &["app"]);
    let mut dir = node.directory(Duration::from_secs(2));
    let t0 = Instant::now();
    assert_eq!(
        dir.lookup_at(&cref(ID, Some(UID)), t0),
        Some(info("ns", "web", ""))
    );
    node.link("web", "ns", "app", ID);
    // Within the rescan interval: the pod's own directory names it.
    assert_eq!(
        dir.lookup_at(&cref(ID, Some(UID)), t0 + Duration::from_secs(1)),
        Some(info("ns", "web", "app"))
    );
    assert_eq!(
        dir.lookup_at(&cref(ID, Some(UID)), t0 + Duration::from_secs(2)),
        Some(info("ns", "web", "app"))
    );
}

#[test]
fn deleted_pod_drops_out_on_rescan() {
    let node = Node::new("pods-deleted");
    node.pod("ns", "web", UID, &["app"]);
    node.link("web", "ns", "app", ID);
    let mut dir = node.directory(Duration::ZERO);
    assert!(dir.lookup(&cref(ID, Some(UID))).is_some());
    fs::remove_dir_all(node.tree.path().join("pods")).unwrap();
    fs::create_dir(node.tree.path().join("pods")).unwrap();
    fs::remove_file(
        node.tree
            .path()
            .join(format!("containers/web_ns_app-{ID}.log")),
    )
    .unwrap();
    // A lookup of another id triggers the rescan that forgets the pod.
    assert_eq!(dir.lookup(&cref(ID2, None)), None);
    assert_eq!(dir.lookup(&cref(ID, Some(UID))), None);
}

#[test]
fn missing_directories_yield_none() {
    let tree = TempDir::new("pods-missing");
    let mut dir = PodDirectory::new(tree.path().join("a"), tree.path().join("b"));
    assert_eq!(dir.lookup(&cref(ID, Some(UID))), None);
    assert_eq!(dir.pod(UID), None);
}

#[test]
fn unreadable_directory_keeps_previous_knowledge() {
    let node = Node::new("pods-vanish");
    node.link("web", "ns", "app", ID);
    let mut dir = node.directory(Duration::ZERO);
    assert!(dir.lookup(&cref(ID, None)).is_some());
    // The whole mount going away is more likely a glitch than every pod gone.
    fs::remove_dir_all(node.tree.path().join("containers")).unwrap();
    assert_eq!(dir.lookup(&cref(ID2, None)), None);
    assert_eq!(dir.lookup(&cref(ID, None)), Some(info("ns", "web", "app")));
}

#[test]
fn pod_dir_names_parse() {
    assert_eq!(
        parse_pod_dir("kube-system_etcd-node1_a1b2c3d4e5f60718293a4b5c6d7e8f90"),
        Some((
            "kube-system",
            "etcd-node1",
            "a1b2c3d4e5f60718293a4b5c6d7e8f90"
        ))
    );
    assert_eq!(parse_pod_dir("a_b"), None);
    assert_eq!(parse_pod_dir("a_b_c_d"), None);
    assert_eq!(parse_pod_dir("a__c"), None);
}

#[test]
fn container_log_names_parse() {
    let name = format!("litellm-0_ai-gw_proxy-{ID}.log");
    assert_eq!(
        parse_container_log(&name),
        Some((ID.to_owned(), info("ai-gw", "litellm-0", "proxy")))
    );
    let upper = format!("p_n_c-{}.log", ID.to_uppercase());
    assert_eq!(
        parse_container_log(&upper).map(|(id, _)| id),
        Some(ID.to_owned())
    );
    for bad in [
        format!("p_n_c-{ID}.txt"),
        format!("p_n_c-{}.log", &ID[..63]),
        format!("p_n_c_x-{ID}.log"),
        format!("p_n-{ID}.log"),
        format!("_n_c-{ID}.log"),
        format!("p_n_-{ID}.log"),
        format!("{ID}.log"),
    ] {
        assert_eq!(parse_container_log(&bad), None, "{bad}");
    }
}

#[test]
fn stray_files_in_the_directories_are_ignored() {
    let node = Node::new("pods-stray");
    node.tree.write("pods/not-a-pod", "");
    node.tree.mkdir("pods/also_not");
    node.tree.write("containers/README", "");
    node.link("web", "ns", "app", ID);
    let mut dir = node.directory(Duration::ZERO);
    assert_eq!(dir.lookup(&cref(ID, None)), Some(info("ns", "web", "app")));
}
