//! Inside the TLS: the plaintext that TLS libraries' probes copy (with
//! `--tls-probes`, only on connections already counted as AI) → the
//! requests it carried: operation, model, status and tokens.
//!
//! [`connection`] places the kernel's chunks and tells HTTP/1.1 from
//! HTTP/2 → [`h1`] (framing in [`http1`]) or [`h2`] (frames and HPACK)
//! pairs each [`request`] with its response → [`body_scan`] keeps a
//! request's `model` and [`response`] a response's `usage` (plain, SSE,
//! gzip/deflate) while the bodies pass → [`operation`] names the call
//! (and, on a host that serves both, whether it was inference or an agent
//! API). Nothing else is kept: bodies are dropped as they are read.
pub mod body_scan;
pub mod connection;
pub mod h1;
pub mod h2;
pub mod http1;
pub mod operation;
pub mod request;
pub mod response;

pub use body_scan::Usage;
pub use connection::Exchange;
pub use operation::{OPERATIONS, Operation};
pub use request::Request;
