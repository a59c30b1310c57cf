//! Pod metadata from the Kubernetes API, for `gatewatch run --kube-api`:
//! namespace, pod and container names as the node-local files give them,
//! plus the pod labels that only the API has (for `label=` selectors).
//!
//! What it reads: the pods on this node only, `GET /api/v1/pods` with the
//! field selector `spec.nodeName=<node>`, listed once and then watched
//! (kube-runtime's [`watcher`]: list, watch from that resource version,
//! re-list when the watch falls out of the API server's window). Lists ask
//! for `resourceVersion=0`, served from the API server's watch cache. The node
//! name comes from `--node-name` / `NODE_NAME`, which the DaemonSet sets from
//! the downward API. RBAC: `get`, `list` and `watch` on `pods`
//! (`deploy/rbac.yaml`). The client is configured like kubectl's: in-cluster
//! service account by default ([`kube::Config::infer`]), `KUBECONFIG` or
//! `~/.kube/config` off-cluster.
//!
//! What it keeps: per pod uid, its namespace, name, labels and the names of
//! its containers by container id (from `status.containerStatuses`, init
//! and ephemeral ones too, with the `containerd://`, `cri-o://` or
//! `docker://` prefix stripped). Mirror pods of static pods are keyed by
//! their `kubernetes.io/config.mirror` hash, which is the uid the kubelet
//! uses in cgroup paths. Deleted pods are dropped. Bounded: at most
//! [`KUBE_MAX_PODS`] pods (a node runs a few hundred at most), each with at
//! most [`KUBE_MAX_LABELS`] labels and [`KUBE_MAX_CONTAINERS`] containers.
//! Pods over the bound are left out (named from node-local files only) with
//! one warning; labels and containers over theirs are left out silently.
//!
//! Failure behaviour: the watcher task never touches the event path except
//! through [`KubePods`], whose lock is held only for one insert, remove or
//! swap (a re-list is collected aside and swapped in whole). When the API
//! server is unreachable, or answers with an error, the last known map is
//! kept and the watch is retried with kube-runtime's default backoff
//! (0.8 s doubling to 30 s, with jitter; kube's client also retries 429,
//! 503 and 504 answers itself); the first failure is logged as a warning,
//! the recovery at info. The node-local files still name workloads
//! meanwhile; a pod created during an outage has no labels until the watch
//! is back.
use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    pin::pin,
    sync::{Arc, PoisonError, RwLock},
};

use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, Client,
    runtime::{WatchStreamExt as _, watcher},
};

/// Pods kept at most; more than a node can run (kubelet `maxPods` is 110 by
/// default, a few hundred at most), including finished pods not yet deleted.
pub const KUBE_MAX_PODS: usize = 4096;
/// Labels kept per pod; the rest (in name order) are left out.
pub const KUBE_MAX_LABELS: usize = 64;
/// Containers (regular, init and ephemeral) kept per pod.
pub const KUBE_MAX_CONTAINERS: usize = 64;

/// The annotation that marks a mirror pod; its value is the static pod's
/// uid as the kubelet (and so the cgroup path) knows it.
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// One pod as the API describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KubePod {
    pub namespace: String,
    pub name: String,
    /// Shared with every [`Workload`](super::Workload) of the pod.
    pub labels: Arc<BTreeMap<String, String>>,
    /// Container id (lower-case hex, runtime prefix stripped) → name.
    pub containers: HashMap<String, String>,
}

/// The pods on this node by uid (lower case), shared between the watcher
/// task and the event path. Cheap to clone.
#[derive(Clone, Default)]
pub struct KubePods(Arc<RwLock<HashMap<String, Arc<KubePod>>>>);

impl KubePods {
    pub fn new() -> Self {
        Self::default()
    }

    /// The pod with this uid (dashed UUID, or the 32-hex static pod hash).
    pub fn get(&self, uid: &str) -> Option<Arc<KubePod>> {
        let map = self.0.read().unwrap_or_else(PoisonError::into_inner);
        map.get(uid).cloned()
    }

    pub fn len(&self) -> usize {
        self.0.read().unwrap_or_else(PoisonError::into_inner).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds or replaces one pod; false when it is new and the map is full.
    fn insert(&self, uid: String, pod: KubePod) -> bool {
        let mut map = self.0.write().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= KUBE_MAX_PODS && !map.contains_key(&uid) {
            return false;
        }
        map.insert(uid, Arc::new(pod));
        true
    }

    fn remove(&self, uid: &str) {
        self.0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(uid);
    }

    fn replace(&self, pods: HashMap<String, Arc<KubePod>>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = pods;
    }
}

impl fmt::Debug for KubePods {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubePods")
            .field("pods", &self.len())
            .finish()
    }
}

/// The background task that keeps a [`KubePods`] up to date. Dropping it
/// stops the task; the map keeps its last contents.
#[derive(Debug)]
pub struct PodWatcher {
    pods: KubePods,
    task: tokio::task::JoinHandle<()>,
}

impl PodWatcher {
    /// Starts watching the pods on `node_name` with a client made from
    /// `config` (e.g. [`kube::Config::infer`]). Returns at once, with the map
    /// empty until the first list arrives. Must be called within a Tokio
    /// runtime.
    pub fn spawn(config: kube::Config, node_name: &str) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !node_name.trim().is_empty(),
            "the Kubernetes API watch needs this node's name (--node-name or NODE_NAME)"
        );
        let client = Client::try_from(config)?;
        let pods = KubePods::new();
        let task = tokio::spawn(watch_pods(
            client,
            node_name.trim().to_owned(),
            pods.clone(),
        ));
        Ok(Self { pods, task })
    }

    /// The shared map this watcher fills.
    pub fn pods(&self) -> KubePods {
        self.pods.clone()
    }
}

impl Drop for PodWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// List and watch the node's pods forever, retrying with backoff.
async fn watch_pods(client: Client, node: String, pods: KubePods) {
    let api: Api<Pod> = Api::all(client);
    let mut config = watcher::Config::default()
        .fields(&format!("spec.nodeName={node}"))
        .any_semantic();
    // Unpaginated, so that `resourceVersion=0` applies: served from the API
    // server's watch cache rather than a quorum read of every pod in etcd,
    // which matters when every node of a big cluster lists at once. One
    // node's pods fit in one answer.
    config.page_size = None;
    let mut events = pin!(watcher(api, config).default_backoff());
    // A re-list in progress, swapped in whole when done.
    let mut relist: Option<HashMap<String, Arc<KubePod>>> = None;
    let mut failing = false;
    let mut warned_full = false;
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(event) => event,
            Err(err) => {
                if failing {
                    log::debug!("kubernetes API: {err}");
                } else {
                    log::warn!(
                        "kubernetes API: {err}; keeping {} known pods and retrying with backoff",
                        pods.len()
                    );
                }
                failing = true;
                continue;
            }
        };
        if std::mem::take(&mut failing) {
            log::info!("kubernetes API: watching pods on {node} again");
        }
        let mut full = false;
        match event {
            watcher::Event::Init => relist = Some(HashMap::new()),
            watcher::Event::InitApply(pod) => {
                if let (Some(buf), Some((uid, entry))) = (relist.as_mut(), pod_entry(&pod)) {
                    if buf.len() < KUBE_MAX_PODS || buf.contains_key(&uid) {
                        buf.insert(uid, Arc::new(entry));
                    } else {
                        full = true;
                    }
                }
            }
            watcher::Event::InitDone => {
                if let Some(buf) = relist.take() {
                    log::info!("kubernetes API: {} pods on {node}", buf.len());
                    pods.replace(buf);
                }
            }
            watcher::Event::Apply(pod) => {
                if let Some((uid, entry)) = pod_entry(&pod) {
                    full = !pods.insert(uid, entry);
                }
            }
            watcher::Event::Delete(pod) => {
                if let Some(uid) = pod_key(&pod) {
                    pods.remove(&uid);
                }
            }
        }
        if full && !std::mem::replace(&mut warned_full, true) {
            log::warn!(
                "kubernetes API: more than {KUBE_MAX_PODS} pods on {node}; \
                 the rest are named from node-local files only, without labels"
            );
        }
    }
}

/// The uid the kubelet uses for this pod: the mirror hash for a static
/// pod's mirror, else `metadata.uid`; lower case.
fn pod_key(pod: &Pod) -> Option<String> {
    let meta = &pod.metadata;
    let mirror = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(MIRROR_ANNOTATION))
        .filter(|v| !v.is_empty());
    let uid = mirror.or(meta.uid.as_ref())?;
    Some(uid.to_ascii_lowercase())
}

/// What we keep of a pod, under its key; `None` without a uid.
pub(crate) fn pod_entry(pod: &Pod) -> Option<(String, KubePod)> {
    let uid = pod_key(pod)?;
    let meta = &pod.metadata;
    let labels = meta
        .labels
        .iter()
        .flatten()
        .take(KUBE_MAX_LABELS)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let statuses = pod.status.iter().flat_map(|s| {
        [
            &s.container_statuses,
            &s.init_container_statuses,
            &s.ephemeral_container_statuses,
        ]
    });
    let containers = statuses
        .flatten()
        .flatten()
        .filter_map(|c| Some((container_id(c.container_id.as_deref()?)?, c.name.clone())))
        .take(KUBE_MAX_CONTAINERS)
        .collect();
    let entry = KubePod {
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
        labels: Arc::new(labels),
        containers,
    };
    Some((uid, entry))
}

/// `containerd://<id>`, `cri-o://<id>`, `docker://<id>` (any `scheme://`)
/// → `<id>` in lower case, as the cgroup path has it.
pub(crate) fn container_id(status_id: &str) -> Option<String> {
    let id = status_id
        .split_once("://")
        .map_or(status_id, |(_, id)| id)
        .trim();
    (!id.is_empty()).then(|| id.to_ascii_lowercase())
}

#[cfg(test)]
mod tests;
