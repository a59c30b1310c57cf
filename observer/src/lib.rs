//! gatewatch: which workloads call LLM providers directly, bypassing the AI
//! gateway. One folder per stage of the data path, in its order:
//!
//! - kernel hooks (the `observer-ebpf` crate) → one ring buffer;
//! - [`capture`]: load and attach the programs, drain the ring, decode records;
//! - [`naming`]: the name each client asked for (TLS SNI, HTTP `Host`, the
//!   ClientHello in QUIC Initials, DNS answers over UDP and TCP);
//! - [`workload`]: which process, container and pod made a connection;
//! - [`classification`]: its route (gateway, direct, gateway_upstream, agent_platform, other);
//! - [`flows`]: one record per connection (TCP) or UDP flow to a QUIC port,
//!   joined by socket cookie, followed to its close;
//! - [`inspection`]: with `--tls-probes`, the requests inside AI
//!   connections (operation, model, status, tokens) from TLS libraries'
//!   plaintext;
//! - [`enforcement`]: with `--enforce audit|deny`, the policy that only
//!   gateway workloads (and an allow list) call model endpoints directly,
//!   the kernel's tables for it, and ending denied sockets;
//! - [`outputs`]: Prometheus metrics, the flow log and the JSON API;
//! - [`agents`]: an extra output joining cloud facts: how the Foundry
//!   agents a workload calls reach their models (gateway or direct), from
//!   the project's API (`gatewatch agents`, `run --agent-audit`);
//! - [`cli`]: the commands that start the daemon and read its API.
//!
//! [`daemon`] wires the stages together. Everything but `capture`, the
//! daemon and the agents' HTTP client works on values, never on sockets, so it is unit-tested and
//! fuzzed without privileges.

pub mod agents;
pub mod capture;
pub mod classification;
pub mod cli;
pub mod daemon;
pub mod enforcement;
pub mod fast_map;
pub mod flows;
pub mod inspection;
pub mod naming;
pub mod outputs;
pub mod workload;

/// Version and commit baked in at build time.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const GIT_SHA: &str = env!("GATEWATCH_GIT_SHA");
