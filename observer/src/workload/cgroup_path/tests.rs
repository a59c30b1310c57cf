use super::*;

const ID: &str = "4f797c539e6c745de61a93ca3ff892358ecbcaccd8414d5db545c38428142970";
const ID2: &str = "9ec39b91f3d70e1beff50a308f77067065ea6be0d91a3378375056cd4422cf3d";
const UID: &str = "74c13223-5a00-11e9-b385-42010a80018d";
const UID_: &str = "74c13223_5a00_11e9_b385_42010a80018d";
const STATIC_UID: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";

fn k8s(runtime: Runtime, uid: &str, qos: Qos) -> Option<ContainerRef> {
    Some(ContainerRef {
        runtime,
        container_id: ID.to_owned(),
        pod_uid: Some(uid.to_owned()),
        qos: Some(qos),
    })
}

fn bare(runtime: Runtime) -> Option<ContainerRef> {
    Some(ContainerRef {
        runtime,
        container_id: ID.to_owned(),
        pod_uid: None,
        qos: None,
    })
}

#[test]
fn real_world_path_shapes_parse_to_the_expected_container() {
    use Qos::*;
    use Runtime::*;
    let cases: Vec<(String, Option<ContainerRef>)> = vec![
        // systemd driver, containerd, each QoS class.
        (
            format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/cri-containerd-{ID}.scope"
            ),
            k8s(Containerd, UID, Burstable),
        ),
        (
            format!(
                "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/cri-containerd-{ID}.scope"
            ),
            k8s(Containerd, UID, BestEffort),
        ),
        (
            format!("/kubepods.slice/kubepods-pod{UID_}.slice/cri-containerd-{ID}.scope"),
            k8s(Containerd, UID, Guaranteed),
        ),
        // systemd driver, CRI-O, with crun's nested `container` cgroup.
        (
            format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/crio-{ID}.scope"
            ),
            k8s(CriO, UID, Burstable),
        ),
        (
            format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/crio-{ID}.scope/container"
            ),
            k8s(CriO, UID, Burstable),
        ),
        // CRI-O's monitor is not the container.
        (
            format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/crio-conmon-{ID}.scope"
            ),
            None,
        ),
        (format!("/system.slice/crio-conmon-{ID}.scope"), None),
        // systemd driver, Docker via dockershim / cri-dockerd.
        (
            format!(
                "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/docker-{ID}.scope"
            ),
            k8s(Docker, UID, BestEffort),
        ),
        // cgroupfs driver (k3s, older kubeadm): bare ids, dashed uids.
        (
            format!("/kubepods/burstable/pod{UID}/{ID}"),
            k8s(Unknown, UID, Burstable),
        ),
        (
            format!("/kubepods/pod{UID}/{ID}"),
            k8s(Unknown, UID, Guaranteed),
        ),
        (
            format!("/kubepods/besteffort/pod{UID}/{ID}"),
            k8s(Unknown, UID, BestEffort),
        ),
        (
            format!("/kubepods/besteffort/pod{UID}/crio-{ID}"),
            k8s(CriO, UID, BestEffort),
        ),
        (
            format!("/kubepods/besteffort/pod{UID}/crio-conmon-{ID}"),
            None,
        ),
        // Static (mirror) pod: uid is a 32-hex hash.
        (
            format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{STATIC_UID}.slice/cri-containerd-{ID}.scope"
            ),
            k8s(Containerd, STATIC_UID, Burstable),
        ),
        // Nested cgroups below the container scope belong to it.
        (
            format!("/kubepods.slice/kubepods-pod{UID_}.slice/cri-containerd-{ID}.scope/init"),
            k8s(Containerd, UID, Guaranteed),
        ),
        (
            format!(
                "/kubepods.slice/kubepods-pod{UID_}.slice/cri-containerd-{ID}.scope/docker/{ID2}"
            ),
            k8s(Containerd, UID, Guaranteed),
        ),
        // kind: a Kubernetes node inside a Docker container.
        (
            format!(
                "/system.slice/docker-{ID2}.scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{UID_}.slice/cri-containerd-{ID}.scope"
            ),
            k8s(Containerd, UID, BestEffort),
        ),
        // Plain Docker.
        (format!("/system.slice/docker-{ID}.scope"), bare(Docker)),
        (format!("/docker/{ID}"), bare(Docker)),
        (format!("/docker/{ID}/docker/{ID2}"), bare(Docker)),
        // containerd outside Kubernetes.
        (format!("/default/{ID}"), bare(Containerd)),
        (format!("/k8s.io/{ID}"), bare(Containerd)),
        (
            format!("/system.slice/nerdctl-{ID}.scope"),
            bare(Containerd),
        ),
        // Podman, rootful and rootless, and its monitor.
        (format!("/machine.slice/libpod-{ID}.scope"), bare(Podman)),
        (
            format!(
                "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope/container"
            ),
            bare(Podman),
        ),
        (format!("/machine.slice/libpod-conmon-{ID}.scope"), None),
        // Host cgroups.
        ("/".to_owned(), None),
        (String::new(), None),
        ("/system.slice/containerd.service".to_owned(), None),
        (
            "/user.slice/user-1000.slice/session-3.scope".to_owned(),
            None,
        ),
        ("/kubepods.slice/kubepods-burstable.slice".to_owned(), None),
        (format!("/kubepods.slice/kubepods-pod{UID_}.slice"), None),
    ];
    assert!(cases.len() >= 15);
    for (path, want) in cases {
        assert_eq!(parse_cgroup_path(&path), want, "path {path}");
    }
}

#[test]
fn ids_are_lower_cased() {
    let path = format!(
        "/kubepods.slice/kubepods-pod{}.slice/cri-containerd-{}.scope",
        UID_.to_uppercase(),
        ID.to_uppercase()
    );
    assert_eq!(
        parse_cgroup_path(&path),
        k8s(Runtime::Containerd, UID, Qos::Guaranteed)
    );
}

#[test]
fn surrounding_whitespace_and_doubled_slashes_are_ignored() {
    let path = format!(" //docker//{ID}/\n");
    assert_eq!(parse_cgroup_path(&path), bare(Runtime::Docker));
}

#[test]
fn truncated_or_non_hex_ids_are_not_containers() {
    let short = &ID[..63];
    let bad = format!("{}g", &ID[..63]);
    for path in [
        format!("/system.slice/docker-{short}.scope"),
        format!("/system.slice/docker-{bad}.scope"),
        format!("/docker/{short}"),
        format!("/docker/{ID}0"),
    ] {
        assert_eq!(parse_cgroup_path(&path), None, "path {path}");
    }
}

#[test]
fn bare_id_outside_known_parents_is_not_a_container() {
    // A 64-hex directory name elsewhere could be anything.
    assert_eq!(parse_cgroup_path(&format!("/system.slice/{ID}")), None);
    assert_eq!(parse_cgroup_path(&format!("/{ID}")), None);
    // A `.scope` named only by an id is some other systemd unit.
    assert_eq!(parse_cgroup_path(&format!("/docker/{ID}.scope")), None);
}

#[test]
fn malformed_pod_uid_is_not_a_pod() {
    let path = format!("/kubepods.slice/kubepods-podnotauid.slice/cri-containerd-{ID}.scope");
    assert_eq!(parse_cgroup_path(&path), bare(Runtime::Containerd));
    let path = format!("/kubepods/burstable/pod{UID}x/{ID}");
    assert_eq!(parse_cgroup_path(&path), None);
}

#[test]
fn slice_ending_in_pod_uid_without_kubepods_is_not_a_pod() {
    let path = format!("/machine.slice/machine-pod{UID_}.slice/libpod-{ID}.scope");
    assert_eq!(parse_cgroup_path(&path), bare(Runtime::Podman));
}

#[test]
fn cgroupfs_pod_under_unknown_parent_has_no_qos() {
    let path = format!("/custom/pod{UID}/{ID}");
    let got = parse_cgroup_path(&path).expect("container");
    assert_eq!(got.pod_uid.as_deref(), Some(UID));
    assert_eq!(got.qos, None);
}

#[test]
fn outermost_pod_wins_when_kubernetes_runs_inside_a_pod() {
    let inner_uid_ = "11111111_2222_3333_4444_555555555555";
    let path = format!(
        "/kubepods.slice/kubepods-pod{UID_}.slice/cri-containerd-{ID}.scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod{inner_uid_}.slice/cri-containerd-{ID2}.scope"
    );
    assert_eq!(
        parse_cgroup_path(&path),
        k8s(Runtime::Containerd, UID, Qos::Guaranteed)
    );
}
