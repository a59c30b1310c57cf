//! Inside the TLS: the plaintext that TLS libraries' probes copy (with
//! `--tls-probes`, only on connections already counted as AI) → the
//! requests it carried: operation, model, status and tokens.
//!
//! [`http1`] frames each direction → [`body_scan`] keeps a request's
//! `model` and a response's `usage` while the body passes → [`exchange`]
//! pairs requests with responses → [`operation`] names the call (and, on
//! a host that serves both, whether it was inference or an agent API).
//! Nothing else is kept: bodies are dropped as they are read.
pub mod body_scan;
pub mod exchange;
pub mod http1;
pub mod operation;

pub use body_scan::Usage;
pub use exchange::{Exchange, Request};
pub use operation::{OPERATIONS, Operation};
