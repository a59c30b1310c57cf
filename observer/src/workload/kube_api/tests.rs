use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader},
    net::{TcpListener, TcpStream, tcp::OwnedWriteHalf},
    sync::mpsc,
};

use super::*;
use crate::workload::{
    CgroupResolver, GatewaySelector, PodDirectory, ProcessCache, Workloads, test_support::TempDir,
};

const NODE: &str = "node-a";
const UID_A: &str = "74c13223-5a00-11e9-b385-42010a80018d";
const UID_B: &str = "0b4ff6e4-1c5a-4a57-9d5e-0d2f0d7c2b11";
const ID_A: &str = "4f797c539e6c745de61a93ca3ff892358ecbcaccd8414d5db545c38428142970";
const ID_A_INIT: &str = "9ec39b91f3d70e1beff50a308f77067065ea6be0d91a3378375056cd4422cf3d";
const ID_B: &str = "1111111111111111111111111111111111111111111111111111111111111111";

/// A pod as the API server sends it (list items carry no kind).
fn pod_json(uid: &str, name: &str, labels: Value, containers: &[(&str, &str)]) -> Value {
    let statuses: Vec<Value> = containers
        .iter()
        .map(|(name, id)| {
            json!({"name": name, "containerID": id, "image": "img", "imageID": "",
                   "ready": true, "restartCount": 0})
        })
        .collect();
    json!({
        "metadata": {"name": name, "namespace": "ai-gw", "uid": uid,
                     "resourceVersion": "100", "labels": labels},
        "spec": {"nodeName": NODE, "containers": [{"name": "proxy"}]},
        "status": {"phase": "Running", "containerStatuses": statuses},
    })
}

fn litellm_pod() -> Value {
    let mut pod = pod_json(
        UID_A,
        "litellm-0",
        json!({"app": "litellm", "tier": "gw"}),
        &[("proxy", &format!("containerd://{ID_A}"))],
    );
    pod["status"]["initContainerStatuses"] = json!([{"name": "migrate",
        "containerID": format!("containerd://{ID_A_INIT}"), "image": "img", "imageID": "",
        "ready": false, "restartCount": 0}]);
    pod
}

fn watch_event(kind: &str, mut pod: Value, rv: &str) -> String {
    pod["apiVersion"] = json!("v1");
    pod["kind"] = json!("Pod");
    pod["metadata"]["resourceVersion"] = json!(rv);
    json!({"type": kind, "object": pod}).to_string()
}

/// A tiny API server on 127.0.0.1: `GET /api/v1/pods` lists `list`; with
/// `watch=true` it streams what the test sends (`None` ends that watch).
/// While `down`, every request gets a 500 (kube's client retries 429, 503
/// and 504 itself; a 500 reaches the watcher).
struct FakeApi {
    url: String,
    requests: Arc<Mutex<Vec<String>>>,
    events: mpsc::UnboundedSender<Option<String>>,
    down: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

struct Shared {
    list: String,
    requests: Arc<Mutex<Vec<String>>>,
    events: tokio::sync::Mutex<mpsc::UnboundedReceiver<Option<String>>>,
    down: Arc<AtomicBool>,
}

impl FakeApi {
    async fn start(pods: Vec<Value>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = mpsc::unbounded_channel();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let down = Arc::new(AtomicBool::new(false));
        let list = json!({"apiVersion": "v1", "kind": "PodList",
                          "metadata": {"resourceVersion": "100"}, "items": pods});
        let shared = Arc::new(Shared {
            list: list.to_string(),
            requests: requests.clone(),
            events: tokio::sync::Mutex::new(rx),
            down: down.clone(),
        });
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, shared.clone()));
            }
        });
        Self {
            url,
            requests,
            events: tx,
            down,
            task,
        }
    }

    fn send(&self, event: Option<String>) {
        self.events.send(event).unwrap();
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    /// A kubeconfig file pointing at this server, read as kubectl would.
    async fn config(&self, dir: &TempDir) -> kube::Config {
        let path = dir.write(
            "kubeconfig",
            &format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: fake\n\
                 clusters:\n- name: fake\n  cluster:\n    server: {}\n\
                 users:\n- name: fake\n  user: {{}}\n\
                 contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n",
                self.url
            ),
        );
        let kubeconfig = kube::config::Kubeconfig::read_from(path).unwrap();
        kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap()
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(stream: TcpStream, api: Arc<Shared>) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let target = line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        loop {
            let mut header = String::new();
            if r.read_line(&mut header).await? == 0 {
                return Ok(());
            }
            if header == "\r\n" {
                break;
            }
        }
        api.requests.lock().unwrap().push(target.clone());
        if api.down.load(Ordering::SeqCst) {
            let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                "message": "down for the test", "reason": "InternalError",
                                "code": 500});
            respond(&mut w, "500 Internal Server Error", &status.to_string()).await?;
        } else if !target.starts_with("/api/v1/pods?") {
            respond(&mut w, "404 Not Found", "{}").await?;
        } else if target.contains("watch=true") {
            w.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                  transfer-encoding: chunked\r\n\r\n",
            )
            .await?;
            let mut events = api.events.lock().await;
            while let Some(Some(event)) = events.recv().await {
                let chunk = format!("{event}\n");
                w.write_all(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes())
                    .await?;
            }
            w.write_all(b"0\r\n\r\n").await?;
            return Ok(());
        } else {
            respond(&mut w, "200 OK", &api.list).await?;
        }
    }
}

async fn respond(w: &mut OwnedWriteHalf, status: &str, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    w.write_all(head.as_bytes()).await?;
    w.write_all(body.as_bytes()).await
}

async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn watcher_fills_updates_and_empties_the_map() {
    let api = FakeApi::start(vec![litellm_pod()]).await;
    let dir = TempDir::new("kube-api");
    let watcher = PodWatcher::spawn(api.config(&dir).await, NODE).unwrap();
    let pods = watcher.pods();
    eventually("the initial list", || pods.get(UID_A).is_some()).await;

    let a = pods.get(UID_A).unwrap();
    assert_eq!(
        (a.namespace.as_str(), a.name.as_str()),
        ("ai-gw", "litellm-0")
    );
    let labels = BTreeMap::from([
        ("app".into(), "litellm".into()),
        ("tier".into(), "gw".into()),
    ]);
    assert_eq!(*a.labels, labels);
    assert_eq!(a.containers.get(ID_A).map(String::as_str), Some("proxy"));
    assert_eq!(
        a.containers.get(ID_A_INIT).map(String::as_str),
        Some("migrate")
    );
    let list = api.requests()[0].clone();
    assert!(
        list.starts_with("/api/v1/pods?")
            && list.contains("fieldSelector=spec.nodeName%3Dnode-a")
            && list.contains("resourceVersion=0"),
        "{list}"
    );

    // A connection from A's container is named from the API alone (this
    // host has no kubelet log files) and `label=` selects it.
    let host = TempDir::new("kube-api-host");
    let cg = format!(
        "kubepods.slice/kubepods-pod{}.slice/cri-containerd-{ID_A}.scope",
        UID_A.replace('-', "_")
    );
    host.mkdir(&cg);
    let mut workloads = Workloads::from_parts(
        CgroupResolver::new(host.path().to_owned()).with_rescan_interval(Duration::ZERO),
        PodDirectory::new(
            host.path().join("no-pods"),
            host.path().join("no-containers"),
        ),
        ProcessCache::new(host.path().join("no-proc")),
    )
    .with_kube_pods(pods.clone());
    let gateway = GatewaySelector::parse("label=app=litellm").unwrap();
    let w = workloads.identify(host.ino(&cg), 0, "");
    assert_eq!(
        (w.namespace.as_str(), w.pod.as_str(), w.container.as_str()),
        ("ai-gw", "litellm-0", "proxy")
    );
    assert!(gateway.matches(&w, "litellm"));
    assert!(
        !GatewaySelector::parse("label=app=web")
            .unwrap()
            .matches(&w, "litellm")
    );

    // Watched: a new pod appears, a deleted one goes.
    let b = pod_json(
        UID_B,
        "web-1",
        json!({"app": "web"}),
        &[("app", &format!("cri-o://{ID_B}"))],
    );
    api.send(Some(watch_event("ADDED", b.clone(), "101")));
    eventually("the ADDED pod", || pods.get(UID_B).is_some()).await;
    assert_eq!(pods.get(UID_B).unwrap().containers[ID_B], "app");
    api.send(Some(watch_event("DELETED", litellm_pod(), "102")));
    eventually("the DELETED pod to go", || pods.get(UID_A).is_none()).await;
    let w = workloads.identify(host.ino(&cg), 0, "");
    assert!(w.pod.is_empty() && w.labels.is_empty());
    assert!(!gateway.matches(&w, "litellm"));
    assert_eq!(pods.len(), 1);
    let watches = api
        .requests()
        .iter()
        .filter(|r| r.contains("watch=true"))
        .count();
    assert!(watches >= 1);

    // API down: the map is kept and the watch retried.
    api.down.store(true, Ordering::SeqCst);
    api.send(None);
    let before = api.requests().len();
    eventually("a failed retry", || api.requests().len() > before).await;
    assert_eq!(
        pods.len(),
        1,
        "the last known pods are kept while the API is down"
    );
    api.down.store(false, Ordering::SeqCst);
    api.send(Some(watch_event("DELETED", b.clone(), "103")));
    eventually("the watch to resume", || pods.is_empty()).await;

    // Watch window expired: a re-list replaces the map whole, so a pod
    // deleted while nobody watched (B, absent from the list) goes too.
    api.send(Some(watch_event("ADDED", b, "104")));
    eventually("B again", || pods.get(UID_B).is_some()).await;
    let expired = json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1",
        "status": "Failure", "message": "too old resource version", "reason": "Expired",
        "code": 410}});
    api.send(Some(expired.to_string()));
    api.send(None);
    eventually("the re-list", || {
        pods.get(UID_A).is_some() && pods.get(UID_B).is_none()
    })
    .await;
    let lists = api
        .requests()
        .iter()
        .filter(|r| !r.contains("watch=true"))
        .count();
    assert_eq!(lists, 2);

    drop(watcher);
}

#[test]
fn spawn_needs_a_node_name() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let config = kube::Config::new("http://127.0.0.1:1".parse().unwrap());
    let err = PodWatcher::spawn(config, " ").unwrap_err();
    assert!(err.to_string().contains("NODE_NAME"), "{err}");
}

#[test]
fn container_ids_lose_their_runtime_prefix() {
    assert_eq!(
        container_id(&format!("containerd://{ID_A}")).as_deref(),
        Some(ID_A)
    );
    assert_eq!(
        container_id(&format!("cri-o://{ID_A}")).as_deref(),
        Some(ID_A)
    );
    assert_eq!(
        container_id(&format!("docker://{}", ID_A.to_uppercase())).as_deref(),
        Some(ID_A)
    );
    assert_eq!(container_id(ID_A).as_deref(), Some(ID_A));
    assert_eq!(container_id("containerd://"), None);
    assert_eq!(container_id(""), None);
}

fn parse(pod: Value) -> Pod {
    serde_json::from_value(pod).unwrap()
}

#[test]
fn mirror_pods_are_keyed_by_the_kubelet_uid() {
    let hash = "0123456789ABCDEF0123456789abcdef";
    let mut pod = pod_json(UID_B, "etcd-node-a", json!({"component": "etcd"}), &[]);
    pod["metadata"]["annotations"] = json!({MIRROR_ANNOTATION: hash});
    let (key, entry) = pod_entry(&parse(pod)).unwrap();
    assert_eq!(key, hash.to_ascii_lowercase());
    assert_eq!(entry.name, "etcd-node-a");
    assert!(entry.containers.is_empty());
}

#[test]
fn pods_without_uid_or_status_are_handled() {
    let mut pod = pod_json(UID_A, "x", json!(null), &[]);
    pod["status"] = json!(null);
    let (key, entry) = pod_entry(&parse(pod.clone())).unwrap();
    assert_eq!(key, UID_A);
    assert!(entry.labels.is_empty() && entry.containers.is_empty());
    pod["metadata"]["uid"] = json!(null);
    assert!(pod_entry(&parse(pod)).is_none());
}

#[test]
fn labels_containers_and_pods_are_bounded() {
    let labels: serde_json::Map<String, Value> = (0..KUBE_MAX_LABELS + 10)
        .map(|i| (format!("l{i:03}"), json!("v")))
        .collect();
    let ids: Vec<(String, String)> = (0..KUBE_MAX_CONTAINERS + 10)
        .map(|i| (format!("c{i}"), format!("containerd://{i:064x}")))
        .collect();
    let ids: Vec<(&str, &str)> = ids.iter().map(|(n, i)| (n.as_str(), i.as_str())).collect();
    let (_, entry) =
        pod_entry(&parse(pod_json(UID_A, "big", Value::Object(labels), &ids))).unwrap();
    assert_eq!(entry.labels.len(), KUBE_MAX_LABELS);
    assert_eq!(entry.containers.len(), KUBE_MAX_CONTAINERS);

    let pods = KubePods::new();
    for i in 0..KUBE_MAX_PODS {
        assert!(pods.insert(format!("uid-{i}"), KubePod::default()));
    }
    assert!(!pods.insert("one-too-many".into(), KubePod::default()));
    assert!(
        pods.insert("uid-0".into(), KubePod::default()),
        "updates still apply"
    );
    assert_eq!(pods.len(), KUBE_MAX_PODS);
}
