//! A naming lab: a network namespace with its own hosts and resolv.conf, a
//! real DNS server (dnsmasq) answering for the test names, a real HTTPS and
//! plain-HTTP peer, and gatewatch watching a test cgroup. Clients run in the
//! cgroup and the namespace; servers run in the namespace only, so just the
//! clients' connections are observed.
use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::OnceLock,
    thread,
    time::{Duration, Instant},
};

use crate::{Gatewatch, Netns, TestCgroup, WAIT, run_ok, unique};

/// Test names and the loopback addresses dnsmasq gives them.
pub const OPENAI: (&str, &str) = ("api.openai.com", "127.0.1.1");
pub const ANTHROPIC: (&str, &str) = ("api.anthropic.com", "127.0.1.2");
/// The CNAME trap: a direct Azure OpenAI name whose chain ends in the APIM
/// domain (as public Azure AI endpoints do).
pub const AZURE_OPENAI: &str = "contoso.openai.azure.com";
pub const AZURE_CHAIN: [&str; 3] = [
    "westeurope.api.cognitive.microsoft.com",
    "cognitiveweprod.azure-api.net",
    "cognitiveweprod-westeurope-01.regional.azure-api.net",
];
pub const AZURE_CHAIN_ADDR: &str = "127.0.1.3";
pub const APIM: (&str, &str) = ("contoso-apim.azure-api.net", "127.0.1.4");
pub const NON_AI: (&str, &str) = ("www.example.org", "127.0.1.5");
pub const LITELLM: (&str, &str) = ("litellm.ai-gateway.svc", "127.0.1.6");
/// A Foundry resource: model inference and the Agent Service API on one host.
pub const FOUNDRY: (&str, &str) = ("contoso.services.ai.azure.com", "127.0.1.7");
/// Where dnsmasq listens inside the namespace.
const DNS_ADDR: &str = "127.0.0.53";
pub const HTTP_GATEWAY_PORT: u16 = 4000;

/// Kills a helper process on drop.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A self-signed certificate for every test name (made once per test run).
pub struct Certs {
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub fn certs() -> &'static Certs {
    static CERTS: OnceLock<Certs> = OnceLock::new();
    CERTS.get_or_init(|| {
        let dir = std::env::temp_dir().join(unique("certs"));
        std::fs::create_dir_all(&dir).expect("cert dir");
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let names = [
            OPENAI.0,
            ANTHROPIC.0,
            AZURE_OPENAI,
            APIM.0,
            NON_AI.0,
            LITELLM.0,
            FOUNDRY.0,
        ];
        let san = names
            .iter()
            .map(|n| format!("DNS:{n}"))
            .collect::<Vec<_>>()
            .join(",");
        run_ok(
            Command::new("openssl")
                .args([
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                    "-nodes",
                ])
                .args(["-days", "2", "-subj", "/CN=gatewatch-test"])
                .arg("-addext")
                .arg(format!("subjectAltName={san},IP:::1"))
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert),
        );
        Certs { cert, key }
    })
}

pub struct NamingLab {
    // Drop order: gatewatch first, then the peers, then the cgroup and namespace.
    pub gw: Gatewatch,
    _peers: Vec<ChildGuard>,
    pub cg: TestCgroup,
    pub ns: Netns,
}

fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts")
}

impl NamingLab {
    /// Starts the lab; `gw_args` go to `gatewatch run`.
    pub fn start(gw_args: &[&str]) -> Self {
        let ns = Netns::new("nm");
        ns.etc_file(
            "hosts",
            "127.0.0.1 localhost\n::1 localhost ip6-localhost\n",
        );
        ns.etc_file(
            "resolv.conf",
            &format!("nameserver {DNS_ADDR}\noptions timeout:1 attempts:2\n"),
        );
        let certs = certs();

        let mut dnsmasq = ns.command(None, "dnsmasq");
        dnsmasq
            .args([
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--user=root",
            ])
            .args(["--pid-file", "--log-facility=-", "--port=53"])
            .arg(format!("--listen-address={DNS_ADDR}"));
        for (name, addr) in [
            OPENAI,
            ANTHROPIC,
            APIM,
            NON_AI,
            LITELLM,
            FOUNDRY,
            (AZURE_CHAIN[2], AZURE_CHAIN_ADDR),
        ] {
            dnsmasq.arg(format!("--host-record={name},{addr}"));
        }
        let chain = [AZURE_OPENAI, AZURE_CHAIN[0], AZURE_CHAIN[1], AZURE_CHAIN[2]];
        for pair in chain.windows(2) {
            dnsmasq.arg(format!("--cname={},{}", pair[0], pair[1]));
        }
        let dns = ChildGuard(
            dnsmasq
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start dnsmasq (cargo xtask install)"),
        );

        let mut peer = ns.command(None, "python3");
        peer.arg(scripts_dir().join("peer_server.py"))
            .arg("--cert")
            .arg(&certs.cert)
            .arg("--key")
            .arg(&certs.key)
            .args(["--http-port", &HTTP_GATEWAY_PORT.to_string()])
            .stdout(Stdio::piped());
        let mut peer = ChildGuard(peer.spawn().expect("start peer_server.py"));
        let mut line = String::new();
        BufReader::new(peer.0.stdout.take().expect("peer stdout"))
            .read_line(&mut line)
            .expect("read peer readiness");
        assert_eq!(line.trim(), "ready", "peer_server.py did not start");

        // dnsmasq is ready once it answers.
        let deadline = Instant::now() + WAIT;
        while !ns
            .command(None, "getent")
            .args(["hosts", OPENAI.0])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            assert!(
                Instant::now() < deadline,
                "dnsmasq did not answer within {WAIT:?}"
            );
            thread::sleep(Duration::from_millis(50));
        }

        let cg = TestCgroup::new("nm");
        let gw = Gatewatch::start(&cg, gw_args);
        Self {
            gw,
            _peers: vec![dns, peer],
            cg,
            ns,
        }
    }

    /// A command run by a client: inside the namespace and the watched cgroup.
    pub fn client(&self, program: &str) -> Command {
        self.ns.command(Some(&self.cg), program)
    }

    /// curl against the lab's HTTPS peer, trusting its certificate.
    pub fn curl(&self, args: &[&str]) {
        run_ok(
            self.client("curl")
                .args(["-sS", "-o", "/dev/null", "--max-time", "5", "--cacert"])
                .arg(&certs().cert)
                .args(args),
        );
    }

    /// Python code run by a client; `CERT` in the environment names the lab's certificate.
    pub fn python(&self, code: &str) {
        run_ok(
            self.client("python3")
                .args(["-c", code])
                .env("CERT", &certs().cert),
        );
    }
}
