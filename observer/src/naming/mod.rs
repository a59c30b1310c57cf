//! Naming: the name each connection's client asked for, from bytes only.
//!
//! [`segments`] joins the first segments the kernel copied → [`opening`]
//! reads them with [`tls`] (ClientHello SNI, ALPN) or [`http`] (request head
//! `Host`) → [`dns`] parses DNS answers (over UDP, or over TCP as
//! [`dns_tcp`] cuts the stream) into the [`name_cache`] (names by
//! destination address, per cgroup and node-wide) → [`precedence`] picks one
//! name. [`host`] is the one host-name normaliser everything shares.
//! [`quic`] reads the ClientHello out of a QUIC client's Initial packets and
//! hands it to [`tls`] as records, for flows to QUIC ports.
pub mod dns;
pub mod dns_tcp;
pub mod host;
pub mod http;
pub mod name_cache;
pub mod opening;
pub mod precedence;
pub mod quic;
pub mod segments;
pub mod tls;

pub use name_cache::{NameCache, NameHit, Scope};
pub use opening::{Opening, ParseFailure, Reading, read_opening, read_opening_at_deadline};
pub use precedence::{ChosenName, NameSource, choose};
pub use segments::Segments;
