//! QUIC Initial packets → the TLS ClientHello they carry (QUIC v1, RFC 9001;
//! v2, RFC 9369), from the UDP payloads of a client's first datagrams.
//!
//! Initial packets are encrypted with keys anyone can derive from the first
//! packet's Destination Connection ID, so an observer can read the hello,
//! and with it the SNI and ALPN of an HTTP/3 connection. Pure: bytes in,
//! values or typed errors out; no sockets.
//!
//! ```text
//! peek(datagram)            → version, packet type, DCID (no decryption)
//! Assembler::push(datagram) → NeedMore { have, need } | Complete
//! Assembler::finish()       → InitialHello { version, handshake }
//! client_hello(datagrams)   → the same in one call
//! InitialHello::tls_records → a TLS record stream for `naming::tls`
//! ```
//!
//! One job per module: `reader` (bounds-checked cursor, varints) → `header`
//! (long header without keys) → `keys` (HKDF from the DCID, per `version`)
//! → `packet` (header protection, packet number, AEAD) → `frames` (the
//! frames an Initial may carry) → `crypto_stream` (CRYPTO reassembly) →
//! `assembler` (a flow's datagrams → the hello) → `record` (synthetic TLS
//! records, so the SNI goes through the same parser as for TCP) →
//! `opening` (a flow's verdict, as TCP openings give it). `error`
//! says why there is no hello; `seal` builds packets for tests and fuzzing.
//!
//! The flow table keeps one [`QuicOpening`] per QUIC flow waiting for its
//! name and pushes the client datagrams the kernel copied
//! (`QUIC_DATAGRAMS_MAX`, long-header packets only). Memory per
//! pending flow is bounded by [`MAX_CRYPTO_BYTES`] (plus its 1 KiB bitmap)
//! and [`MAX_KEY_SETS`]; the caller bounds how many flows it assembles.
mod assembler;
mod crypto_stream;
mod error;
mod frames;
mod header;
mod keys;
mod opening;
mod packet;
mod reader;
mod record;
#[cfg(any(test, feature = "fuzzing"))]
pub mod seal;
mod version;

#[cfg(test)]
mod tests;

pub use assembler::{Assembler, InitialHello, MAX_DATAGRAMS, MAX_KEY_SETS, Progress, client_hello};
pub use crypto_stream::MAX_CRYPTO_BYTES;
pub use error::QuicError;
pub use header::{LongHeader, MAX_CID_LEN, Peek, peek};
pub use keys::{InitialSecrets, initial_secrets};
pub use opening::{HelloRead, QuicOpening, Step};
pub use record::{TLS_RECORD_MAX, tls_records};
pub use version::{LongType, Version};
