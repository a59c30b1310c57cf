//! Container and pod identity from a cgroup v2 path alone.
//!
//! Recognised shapes (a leading `/` is optional):
//!
//! * systemd driver: `kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid_with_underscores>.slice/<prefix>-<id>.scope`,
//!   with guaranteed pods directly under `kubepods.slice/kubepods-pod<uid>.slice`
//!   and any prefix before `kubepods` (kind nodes use `kubelet-kubepods-…`);
//! * cgroupfs driver: `kubepods[/burstable|/besteffort]/pod<uid>/<id>` (also
//!   `crio-<id>` there);
//! * outside Kubernetes: `system.slice/docker-<id>.scope`, `docker/<id>`,
//!   containerd namespaces `default/<id>` and `k8s.io/<id>`,
//!   `nerdctl-<id>.scope`, podman `libpod-<id>.scope`.
//!
//! Prefixes: `cri-containerd-` and `nerdctl-` (containerd), `crio-` (CRI-O),
//! `docker-` (Docker), `libpod-` (Podman). Monitor cgroups
//! (`crio-conmon-<id>`, `libpod-conmon-<id>`) hold the runtime's supervisor,
//! not the container, so they yield `None`.
//!
//! Nesting: the first pod cgroup from the root wins (a Kubernetes-in-a-pod
//! setup is attributed to the host's pod, the one the host kubelet knows),
//! then the first container cgroup after it; anything below the container
//! (`…/crio-<id>.scope/container`, `…/cri-containerd-<id>.scope/init`, a
//! nested runtime) belongs to that container. With no pod cgroup, the first
//! container cgroup from the root wins (Docker-in-Docker is the outer one).

/// Which container runtime created the cgroup, as far as its name tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Runtime {
    Containerd,
    CriO,
    Docker,
    Podman,
    /// A bare id (cgroupfs driver) does not name its runtime.
    Unknown,
}

/// Kubernetes quality-of-service class, from the pod's parent cgroup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Qos {
    Guaranteed,
    Burstable,
    BestEffort,
}

/// A container named by its cgroup path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ContainerRef {
    pub runtime: Runtime,
    /// 64 lower-case hex digits.
    pub container_id: String,
    /// Dashed UUID (`8-4-4-4-12`), or 32 hex digits for static pods, whose
    /// uid is the kubelet's hash of the manifest. Lower case.
    pub pod_uid: Option<String>,
    pub qos: Option<Qos>,
}

/// Length of a full container id in hex.
const CONTAINER_ID_LEN: usize = 64;

/// Name prefixes of container cgroups, longest first so `crio-conmon-`
/// is tried before `crio-`. `None` marks a runtime monitor, not a container.
const PREFIXES: &[(&str, Option<Runtime>)] = &[
    ("cri-containerd-", Some(Runtime::Containerd)),
    ("libpod-conmon-", None),
    ("crio-conmon-", None),
    ("nerdctl-", Some(Runtime::Containerd)),
    ("libpod-", Some(Runtime::Podman)),
    ("docker-", Some(Runtime::Docker)),
    ("crio-", Some(Runtime::CriO)),
];

/// containerd puts containers it runs without a cgroup parent under
/// `/<namespace>/<id>`; these are its usual namespaces.
const CONTAINERD_NAMESPACES: &[&str] = &["default", "k8s.io"];

/// What one path component is.
#[derive(Debug, PartialEq, Eq)]
enum Component {
    Container(Runtime, String),
    Monitor,
    Other,
}

/// The container (and pod, if any) that a cgroup path belongs to; `None`
/// for host cgroups and runtime monitors.
pub fn parse_cgroup_path(path: &str) -> Option<ContainerRef> {
    let parts: Vec<&str> = path.trim().split('/').filter(|p| !p.is_empty()).collect();
    let pod = parts.iter().enumerate().find_map(|(i, part)| {
        let parent = i.checked_sub(1).and_then(|p| parts.get(p)).copied();
        parse_pod(part, parent).map(|(uid, qos)| (i, uid, qos))
    });
    let start = pod.as_ref().map_or(0, |(i, _, _)| i + 1);
    for (i, part) in parts.iter().enumerate().skip(start) {
        let parent = i.checked_sub(1).and_then(|p| parts.get(p)).copied();
        match parse_container(part, parent, pod.is_some()) {
            Component::Container(runtime, container_id) => {
                let (pod_uid, qos) = match pod {
                    Some((_, uid, qos)) => (Some(uid), qos),
                    None => (None, None),
                };
                return Some(ContainerRef {
                    runtime,
                    container_id,
                    pod_uid,
                    qos,
                });
            }
            Component::Monitor => return None,
            Component::Other => {}
        }
    }
    None
}

/// A pod cgroup: `<…kubepods[-qos]>-pod<uid_>.slice` (systemd) or
/// `pod<uid>` (cgroupfs). Returns the uid and, when the name says, the QoS.
fn parse_pod(part: &str, parent: Option<&str>) -> Option<(String, Option<Qos>)> {
    if let Some(unit) = part.strip_suffix(".slice") {
        let (prefix, pod) = unit.rsplit_once('-')?;
        let uid = normalize_pod_uid(&pod.strip_prefix("pod")?.replace('_', "-"))?;
        let qos = if prefix.ends_with("kubepods-burstable") {
            Qos::Burstable
        } else if prefix.ends_with("kubepods-besteffort") {
            Qos::BestEffort
        } else if prefix.ends_with("kubepods") {
            Qos::Guaranteed
        } else {
            return None;
        };
        return Some((uid, Some(qos)));
    }
    let uid = normalize_pod_uid(part.strip_prefix("pod")?)?;
    let qos = match parent {
        Some("burstable") => Some(Qos::Burstable),
        Some("besteffort") => Some(Qos::BestEffort),
        Some("kubepods") => Some(Qos::Guaranteed),
        _ => None,
    };
    Some((uid, qos))
}

/// A dashed UUID or a 32-hex static-pod hash, lower-cased.
fn normalize_pod_uid(uid: &str) -> Option<String> {
    let is_uuid = uid.len() == 36
        && uid.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        });
    let is_hash = uid.len() == 32 && uid.chars().all(|c| c.is_ascii_hexdigit());
    (is_uuid || is_hash).then(|| uid.to_ascii_lowercase())
}

fn parse_container(part: &str, parent: Option<&str>, in_pod: bool) -> Component {
    let name = part.strip_suffix(".scope").unwrap_or(part);
    for (prefix, runtime) in PREFIXES {
        if let Some(id) = name.strip_prefix(prefix).and_then(normalize_container_id) {
            return match runtime {
                Some(runtime) => Component::Container(*runtime, id),
                None => Component::Monitor,
            };
        }
    }
    // A bare id is a container only where runtimes put bare ids, and never
    // with a `.scope` suffix (that would be some other systemd unit).
    if name.len() != part.len() {
        return Component::Other;
    }
    let Some(id) = normalize_container_id(name) else {
        return Component::Other;
    };
    let runtime = match parent {
        _ if in_pod => Runtime::Unknown,
        Some("docker") => Runtime::Docker,
        Some(ns) if CONTAINERD_NAMESPACES.contains(&ns) => Runtime::Containerd,
        _ => return Component::Other,
    };
    Component::Container(runtime, id)
}

fn normalize_container_id(id: &str) -> Option<String> {
    (id.len() == CONTAINER_ID_LEN && id.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| id.to_ascii_lowercase())
}

#[cfg(test)]
mod tests;
