//! gatewatch: which workloads call LLM providers directly, bypassing the AI
//! gateway. Data path, one module per step:
//!
//! kernel hooks (observer-ebpf) → ring buffer → [`events`] (decode) →
//! [`tls`] / [`http`] / [`dns`] (names from bytes) → [`flows`] (join and name
//! each connection) → [`classify`] with the [`catalog`] → [`metrics`] /
//! [`api`] / [`cli`].
//!
//! Everything but [`loader`] and [`run`] works on values, never on sockets,
//! so it is unit-tested and fuzzed without privileges.

pub mod api;
pub mod catalog;
pub mod classify;
pub mod cli;
pub mod config;
pub mod dns;
pub mod events;
pub mod flowlog;
pub mod flows;
pub mod http;
pub mod loader;
pub mod metrics;
pub mod names;
pub mod pattern;
pub mod run;
pub mod tls;
pub mod workload;

/// Version and commit baked in at build time.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const GIT_SHA: &str = env!("GATEWATCH_GIT_SHA");
