//! gatewatch as deployed: in a PID namespace of its own with the host's
//! /proc mounted aside (what the DaemonSet gives it, without hostPID), it
//! skips its own sockets and no other process's; and the image built from
//! deploy/Dockerfile runs the way deploy/daemonset.yaml runs it.
use std::{
    net::{SocketAddr, TcpStream},
    path::PathBuf,
    sync::atomic::Ordering,
    thread,
    time::{Duration, Instant},
};

use observer::capture::PROGRAMS;
use tests::{
    Listener, Metrics, TestCgroup, WAIT, cgroup2_root, free_port, gatewatch_bin,
    hardening::{Daemon, FastServer, attached_ids, eventually, tail},
    http_get,
    image::{BuiltImage, base_image},
    lab::ChildGuard,
    privileged, unique,
};

const CONNECTIONS: &str = "gatewatch_connections_total";
/// Connections gatewatch's own API client must have made after attaching
/// before its absence from the counts means anything.
const OWN_CONNECTIONS: u64 = 2;

/// A kubeconfig for a plain-HTTP fake API server at `addr`.
fn kubeconfig(addr: SocketAddr) -> String {
    format!(
        "apiVersion: v1\nkind: Config\n\
         clusters: [{{name: fake, cluster: {{server: \"http://{addr}\"}}}}]\n\
         users: [{{name: fake, user: {{}}}}]\n\
         contexts: [{{name: fake, context: {{cluster: fake, user: fake}}}}]\n\
         current-context: fake\n"
    )
}

/// A scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(unique(tag));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The `--debug` line in which gatewatch names the tgid it skips.
fn skipped_tgid(log: &str) -> Option<u32> {
    log.lines()
        .find_map(|l| l.split("own sockets skipped by tgid ").nth(1))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

/// gatewatch (pid P inside its own PID namespace, mount namespace with a
/// fresh /proc and the host's at a side path) and a host shell whose host
/// pid is that same P, both under the attached cgroup: the shell's
/// connections are counted, gatewatch's own (its Kubernetes API client's,
/// to a fake server) are not.
#[test]
fn own_connections_are_skipped_by_host_pid_inside_a_pid_namespace() {
    if !privileged() {
        return;
    }
    let host_provider = Listener::bind("127.0.0.2:0");
    let fake_api = FastServer::bind("127.0.0.3:0", 1);
    let scratch = Scratch::new("pidns");
    let host_proc = scratch.0.join("host-proc");
    std::fs::create_dir(&host_proc).expect("mkdir host-proc");
    let kubeconfig_path = scratch.0.join("kubeconfig");
    std::fs::write(&kubeconfig_path, kubeconfig(fake_api.addr)).expect("write kubeconfig");

    let parent = TestCgroup::new("pidns");
    let gw_cg = TestCgroup::at(parent.path.join("gatewatch"));
    let host_cg = TestCgroup::at(parent.path.join("host"));

    // bash connects from its own process (redirections on exec do not fork).
    let connect = format!(
        "while :; do exec 3<>/dev/tcp/127.0.0.2/{}; exec 3>&-; sleep 0.2; done",
        host_provider.addr.port()
    );
    let shell = ChildGuard(
        host_cg
            .command("bash")
            .args(["-c", &connect])
            .spawn()
            .expect("start bash"),
    );
    let shell_pid = shell.0.id();

    // Inside: pid 1 is sh; ns_last_pid makes its one child, gatewatch, pid
    // `shell_pid` there, the host pid of the shell above.
    let inner = format!(
        "set -e; mount --rbind /proc {hp}; mount -t proc proc /proc; \
         echo {last} > /proc/sys/kernel/ns_last_pid; \"$@\" & wait $!",
        hp = host_proc.display(),
        last = shell_pid - 1
    );
    let outer = format!(
        "echo $$ > {procs} && export KUBECONFIG={kc} && exec \"$@\"",
        procs = gw_cg.path.join("cgroup.procs").display(),
        kc = kubeconfig_path.display()
    );
    let wrapper: Vec<String> = [
        "sh",
        "-c",
        &outer,
        "sh",
        "unshare",
        "--pid",
        "--fork",
        "--mount",
        "--kill-child",
        "sh",
        "-c",
        &inner,
        "sh",
    ]
    .map(str::to_owned)
    .to_vec();
    let host_rule = format!("openai={}", host_provider.addr);
    let api_rule = format!("anthropic={}", fake_api.addr);
    let mut gw = Daemon::start(
        &wrapper,
        &parent,
        &[
            "--proc-root",
            host_proc.to_str().expect("utf-8 path"),
            "--kube-api",
            "--node-name",
            "testnode",
            "--provider",
            &host_rule,
            "--provider",
            &api_rule,
        ],
    );
    let served_at_ready = fake_api.served.load(Ordering::Relaxed);

    let host_labels = [("provider", "openai"), ("process", "bash")];
    gw.wait_for("the host shell's connections", |m| {
        m.sum(CONNECTIONS, &host_labels) >= 2.0
    });
    assert!(
        eventually(WAIT, || fake_api.served.load(Ordering::Relaxed)
            >= served_at_ready + OWN_CONNECTIONS),
        "gatewatch's API client did not reconnect after attaching:\n{}",
        tail(&gw.log(), 40)
    );
    // Past the name wait of the last of them.
    thread::sleep(Duration::from_secs(1));
    let m = gw.metrics();
    assert_eq!(
        m.sum(CONNECTIONS, &[("provider", "anthropic")]),
        0.0,
        "gatewatch counted its own connections to the API server:\n{}",
        m.text
    );

    // The tgid it skips is its host pid, not its pid inside (`shell_pid`).
    let procs = std::fs::read_to_string(gw_cg.path.join("cgroup.procs")).expect("cgroup.procs");
    let host_pid = procs
        .lines()
        .filter_map(|l| l.trim().parse::<u32>().ok())
        .find(|pid| {
            std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|e| e == gatewatch_bin())
        })
        .expect("gatewatch in its cgroup");
    assert_ne!(host_pid, shell_pid);
    assert_eq!(skipped_tgid(&gw.log()), Some(host_pid), "{}", gw.log());

    // SAFETY: signalling a process this test started (through the wrapper).
    unsafe { libc::kill(host_pid as i32, libc::SIGTERM) };
    let status = gw.wait_exit(WAIT);
    assert!(status.success(), "exit {status:?}:\n{}", gw.log());
    drop(shell);
}

/// The image from deploy/Dockerfile (prebuilt binary on a Debian-package
/// base), run with the DaemonSet's capabilities, mounts and arguments: it
/// becomes ready, counts a host connection as route=direct, skips its own
/// Kubernetes API connections and leaves nothing attached when stopped.
#[test]
fn the_image_runs_the_way_the_daemonset_runs_it() {
    if !privileged() {
        return;
    }
    let started = Instant::now();
    let base = base_image();
    let image = BuiltImage::build(&base, &gatewatch_bin());
    eprintln!("image ready after {:?}", started.elapsed());

    let host_provider = Listener::bind("127.0.0.2:0");
    let fake_api = FastServer::bind("127.0.0.3:0", 1);
    let etc = Scratch::new("imgetc");
    std::fs::write(etc.0.join("kubeconfig"), kubeconfig(fake_api.addr)).expect("kubeconfig");
    std::fs::write(
        etc.0.join("config.toml"),
        format!(
            "[[providers]]\nname = \"openai\"\npatterns = [\"{}\"]\n\n\
             [[providers]]\nname = \"anthropic\"\npatterns = [\"{}\"]\n",
            host_provider.addr, fake_api.addr
        ),
    )
    .expect("config.toml");
    let logs = Scratch::new("imglogs");
    for d in ["pods", "containers"] {
        std::fs::create_dir(logs.0.join(d)).expect("mkdir logs");
    }

    let root = cgroup2_root();
    let before: Vec<u32> = attached_ids(&root).into_iter().map(|(id, _)| id).collect();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let container = image.run(&[
        // deploy/daemonset.yaml: securityContext.
        "--cap-drop=ALL",
        "--cap-add=BPF,PERFMON,NET_ADMIN,SYS_RESOURCE",
        "--security-opt=seccomp=unconfined",
        "--security-opt=no-new-privileges",
        "--user=0:0",
        "--read-only",
        // No hostPID: a PID namespace of its own.
        "--pid=private",
        // volumeMounts.
        &format!("--volume={}:/etc/gatewatch:ro", etc.0.display()),
        &format!("--volume={}:/host/sys/fs/cgroup:ro", root.display()),
        "--volume=/proc:/host/proc:ro",
        &format!("--volume={}/pods:/host/var/log/pods:ro", logs.0.display()),
        &format!(
            "--volume={}/containers:/host/var/log/containers:ro",
            logs.0.display()
        ),
        "--env=NODE_NAME=testnode",
        "--env=GATEWATCH_LOG_LEVEL=debug",
        "--env=KUBECONFIG=/etc/gatewatch/kubeconfig",
        "--",
        &image.tag,
        // args, as in deploy/daemonset.yaml (metrics on loopback here).
        "run",
        "--config=/etc/gatewatch/config.toml",
        "--cgroup=/host/sys/fs/cgroup",
        &format!("--metrics-addr={addr}"),
        "--proc-root=/host/proc",
        "--pod-logs=/host/var/log/pods",
        "--container-logs=/host/var/log/containers",
        "--gateway-workload=namespace=ai-gateway",
        "--kube-api",
    ]);

    let deadline = Instant::now() + WAIT;
    while !matches!(http_get(addr, "/readyz"), Ok((200, _))) {
        assert!(
            Instant::now() < deadline && container.running(),
            "not ready within {WAIT:?}:\n{}",
            container.logs()
        );
        thread::sleep(Duration::from_millis(100));
    }
    eprintln!("container ready after {:?}", started.elapsed());
    let ours: Vec<(u32, String)> = attached_ids(&root)
        .into_iter()
        .filter(|(id, _)| !before.contains(id))
        .collect();
    let mut names: Vec<&str> = ours.iter().map(|(_, n)| n.as_str()).collect();
    names.sort();
    assert_eq!(names, PROGRAMS, "attached to the cgroup root");
    let served_at_ready = fake_api.served.load(Ordering::Relaxed);

    for _ in 0..3 {
        drop(TcpStream::connect(host_provider.addr).expect("connect to the provider"));
    }
    let scrape = || {
        let (code, body) = http_get(addr, "/metrics").expect("scrape");
        assert_eq!(code, 200);
        Metrics::parse(&body)
    };
    let direct = [("route", "direct"), ("provider", "openai")];
    let deadline = Instant::now() + WAIT;
    loop {
        let m = scrape();
        if m.sum(CONNECTIONS, &direct) == 3.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "3 direct connections not counted:\n{}\n{}",
            m.text,
            container.logs()
        );
        thread::sleep(Duration::from_millis(100));
    }

    assert!(
        eventually(WAIT, || fake_api.served.load(Ordering::Relaxed)
            >= served_at_ready + OWN_CONNECTIONS),
        "gatewatch's API client did not reconnect after attaching:\n{}",
        container.logs()
    );
    thread::sleep(Duration::from_secs(1));
    let m = scrape();
    assert_eq!(
        m.sum(CONNECTIONS, &[("provider", "anthropic")]),
        0.0,
        "the container counted its own connections:\n{}",
        m.text
    );
    let host_pid = container.host_pid();
    assert_ne!(host_pid, 1);
    assert_eq!(
        skipped_tgid(&container.logs()),
        Some(host_pid),
        "{}",
        container.logs()
    );

    assert_eq!(container.stop(), 0, "exit code:\n{}", container.logs());
    assert!(
        eventually(WAIT, || {
            let now: Vec<u32> = attached_ids(&root).into_iter().map(|(id, _)| id).collect();
            ours.iter().all(|(id, _)| !now.contains(id))
        }),
        "programs left on {} after stop: {:?}",
        root.display(),
        attached_ids(&root)
    );
    eprintln!("done after {:?}", started.elapsed());
}
