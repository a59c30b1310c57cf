//! Real Prometheus end to end: Debian's Prometheus server scrapes a running
//! gatewatch and evaluates the shipped alert rules. Gateway-only traffic
//! raises no direct-egress alert; direct traffic does, and the per-route
//! sums in Prometheus equal the connections made.
use std::{
    path::Path,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use tests::{
    WAIT, free_port, http_get,
    lab::{self, ChildGuard, NamingLab},
    privileged, unique,
};

/// Scrape and rule evaluation interval of the test Prometheus.
const INTERVAL: &str = "1s";

struct Prometheus {
    _server: ChildGuard,
    addr: std::net::SocketAddr,
    dir: std::path::PathBuf,
}

impl Prometheus {
    fn start(target: std::net::SocketAddr) -> Self {
        let dir = std::env::temp_dir().join(unique("prom"));
        std::fs::create_dir_all(&dir).expect("prometheus dir");
        let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus/rules.yaml");
        let config = format!(
            "global:\n  scrape_interval: {INTERVAL}\n  evaluation_interval: {INTERVAL}\nrule_files:\n  - {}\n\
             scrape_configs:\n  - job_name: gatewatch\n    static_configs:\n      - targets: ['{target}']\n",
            rules.display()
        );
        std::fs::write(dir.join("prometheus.yml"), config).expect("write prometheus.yml");
        let addr: std::net::SocketAddr =
            format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let server = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).expect("log file"))
            .spawn()
            .expect("start prometheus (cargo xtask install)");
        let prom = Self {
            _server: ChildGuard(server),
            addr,
            dir,
        };
        let deadline = Instant::now() + WAIT;
        while !matches!(http_get(addr, "/-/ready"), Ok((200, _))) {
            assert!(
                Instant::now() < deadline,
                "prometheus not ready:\n{}",
                prom.log()
            );
            thread::sleep(Duration::from_millis(100));
        }
        prom
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// Instant query; returns the result vector.
    fn query(&self, promql: &str) -> Vec<serde_json::Value> {
        let encoded: String = promql
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let (code, body) = http_get(self.addr, &format!("/api/v1/query?query={encoded}"))
            .expect("query prometheus");
        assert_eq!(code, 200, "{promql}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("prometheus JSON");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// Polls `promql` until `check` accepts its result.
    fn wait_for(
        &self,
        promql: &str,
        check: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            let result = self.query(promql);
            if check(&result) {
                return result;
            }
            assert!(
                Instant::now() < deadline,
                "timed out on {promql}: last {result:?}\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn by_route(result: &[serde_json::Value], route: &str) -> Option<f64> {
    result
        .iter()
        .find(|s| s["metric"]["route"] == route)
        .and_then(|s| s["value"][1].as_str())
        .and_then(|v| v.parse().ok())
}

const DIRECT_ALERT: &str = r#"ALERTS{alertname="GatewatchDirectModelEgress",alertstate="firing"}"#;

#[test]
fn prometheus_sums_routes_and_fires_the_direct_egress_alert_only_for_direct_traffic() {
    if !privileged() {
        return;
    }
    let lab = NamingLab::start(&["--gateway", "contoso-apim=contoso-apim.azure-api.net"]);
    let prom = Prometheus::start(lab.gw.addr);

    // Gateway traffic only: counted, no alert.
    for _ in 0..2 {
        lab.curl(&["https://contoso-apim.azure-api.net/openai/v1/models"]);
    }
    prom.wait_for("sum by (route) (gatewatch_connections_total)", |r| {
        by_route(r, "gateway") == Some(2.0)
    });
    // Several evaluations after the data arrived.
    thread::sleep(Duration::from_secs(3));
    assert!(
        prom.query(DIRECT_ALERT).is_empty(),
        "gateway traffic must not raise the direct-egress alert"
    );

    // Direct traffic: the alert fires, for the direct provider only.
    let resolve = format!("{}:443:{}", lab::OPENAI.0, lab::OPENAI.1);
    for _ in 0..3 {
        lab.curl(&["--resolve", &resolve, "https://api.openai.com/v1/models"]);
    }
    let sums = prom.wait_for("sum by (route) (gatewatch_connections_total)", |r| {
        by_route(r, "direct") == Some(3.0)
    });
    assert_eq!(by_route(&sums, "gateway"), Some(2.0), "{sums:?}");
    assert_eq!(sums.len(), 2, "only the routes used: {sums:?}");
    let alerts = prom.wait_for(DIRECT_ALERT, |r| !r.is_empty());
    assert!(
        alerts.iter().all(|a| a["metric"]["provider"] == "openai"),
        "{alerts:?}"
    );
    let up = prom.query(r#"up{job="gatewatch"}"#);
    assert_eq!(up[0]["value"][1], "1", "{up:?}");
}
