//! A classified connection as the API, the CLI and the flow log see it.
use std::{net::SocketAddr, sync::Arc};

use serde::{Deserialize, Serialize};

use crate::{
    classification::{Route, Verdict},
    naming::{NameSource, dns::ServiceHint, quic::HelloRead},
};

/// Who made a connection: Kubernetes names (empty off Kubernetes) and
/// whether it is one of the configured gateway workloads.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadInfo {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub exe: String,
    pub is_gateway: bool,
    /// On the `--allow-direct` list: may call model endpoints directly.
    #[serde(default)]
    pub allowed_direct: bool,
}

/// Resolves a connection's workload from its cgroup id, tgid and comm.
/// Shared: one process's connections carry the same answer.
pub type Identify = Box<dyn FnMut(u64, u32, &str) -> Arc<WorkloadInfo> + Send>;

/// How a connection carries its bytes: TCP, or UDP to a QUIC port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    #[default]
    Tcp,
    /// UDP to one of the QUIC ports (`quic_ports`; 443 by default).
    Quic,
}

impl Transport {
    /// The transport of a connect record: UDP flows are only reported for
    /// QUIC ports.
    pub fn of_protocol(protocol: u8) -> Self {
        if protocol == observer_common::IPPROTO_UDP {
            Transport::Quic
        } else {
            Transport::Tcp
        }
    }

    /// Every `transport` label value.
    pub const ALL: [Transport; 2] = [Transport::Tcp, Transport::Quic];

    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Quic => "quic",
        }
    }
}

/// Where a connection is in its life, as the API shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowState {
    Connecting,
    Established,
    Closed,
    Failed,
}

/// How a connection ended, as the flow record tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseHow {
    /// The FIN handshake (either side first).
    Fin,
    /// This side aborted an established connection (a RST it sent, e.g. a
    /// client closing with a TLS close_notify still unread): not a failure.
    LocalAbort,
    /// The peer reset an established connection: `reset`.
    PeerReset,
    /// The peer answered the SYN with a RST: `refused`.
    Refused,
    /// No answer to the SYN and its retransmits: `timeout`.
    Timeout,
    /// This side gave up while connecting, before any answer (a Happy
    /// Eyeballs loser, a short connect timeout): not a failure.
    Abandoned,
    /// `connect()` failed before any packet left (no route to the
    /// destination, or another cgroup program refused it): `not_sent`.
    NotSent,
    /// A UDP flow ended: its socket was closed, or it went on to another
    /// destination. UDP says nothing of success, so never a failure.
    Released,
}

/// One classified connection, as the API shows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FlowRecord {
    pub ts_ns: u64,
    pub cookie: u64,
    pub route: Route,
    pub provider: String,
    pub endpoint: String,
    pub name: Option<String>,
    pub name_source: NameSource,
    /// CNAME chain from DNS, as evidence only: never used to classify.
    pub cnames: Vec<String>,
    pub dst: SocketAddr,
    #[serde(default)]
    pub transport: Transport,
    /// What the name's `HTTPS`/`SVCB` DNS records advertised to this
    /// workload (ALPN such as `h3`, ECH): evidence only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_service: Option<std::sync::Arc<ServiceHint>>,
    /// For QUIC flows: how far the ClientHello in the Initials was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quic_hello: Option<HelloRead>,
    pub process: String,
    pub tgid: u32,
    pub cgroup_id: u64,
    pub workload: Arc<WorkloadInfo>,
    pub alpn: Vec<String>,
    /// The ClientHello used Encrypted Client Hello: its SNI was an outer,
    /// public name, so a DNS answer named the flow when there was one.
    #[serde(default)]
    pub ech: bool,
    pub verdict: Verdict,
    pub state: FlowState,
    /// Wall-clock time the connection was counted.
    pub time_unix_ms: u64,
    /// Payload bytes, once closed.
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// connect() to close, once closed.
    pub duration_ms: Option<u64>,
    /// How it closed, once closed.
    #[serde(default)]
    pub close: Option<CloseHow>,
    /// `--enforce audit|deny`: the policy forbade this direct model call
    /// (stopped under `deny`, only counted under `audit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denied: Option<crate::enforcement::Denial>,
    /// `--tls-probes`: the requests read from this connection's plaintext,
    /// the first `REQUESTS_PER_FLOW_MAX` of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requests: Vec<FlowRequest>,
}

impl FlowRequest {
    pub fn of(r: &crate::inspection::Request, flow_route: Route) -> Self {
        FlowRequest {
            operation: r.operation.name().to_owned(),
            route: r.operation.route(flow_route),
            method: r.method.clone(),
            path: r.path.clone(),
            model: r.model.clone(),
            status: r.status,
            input_tokens: r.usage.input,
            output_tokens: r.usage.output,
            streamed: r.streamed,
            duration_ms: r.duration_ns / 1_000_000,
        }
    }
}

/// Requests a flow record lists; later ones are only counted.
pub const REQUESTS_PER_FLOW_MAX: usize = 16;

/// One request inside a flow, as read from its TLS library's plaintext:
/// what was called and what it cost, nothing of its content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowRequest {
    pub operation: String,
    /// The request's route, when the call decided it (a host serving both
    /// a model API and an agent service's API).
    pub route: Route,
    pub method: String,
    /// Path without ids or query.
    pub path: String,
    pub model: Option<String>,
    /// 0 when no response came.
    pub status: u16,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub streamed: bool,
    pub duration_ms: u64,
}

/// Milliseconds since the Unix epoch, now.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
