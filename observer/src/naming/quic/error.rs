//! What can stop us from reading a ClientHello out of QUIC Initial packets.
//! Every variant is an answer the caller can count: a flow whose name cannot
//! be read is still a flow.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuicError {
    /// A short-header packet, a Version Negotiation packet, a long header of
    /// another type, or bytes that are not QUIC at all.
    #[error("not a QUIC Initial packet")]
    NotInitial,
    /// A long header of a version whose Initial keys we cannot derive
    /// (drafts, greased versions, future versions): the name is unreadable.
    #[error("QUIC version {0:#010x} is not one whose Initial packets we can read")]
    UnknownVersion(u32),
    /// The packet ends before the field named here.
    #[error("QUIC packet cut short in {0}")]
    Short(&'static str),
    /// Header protection removed, but the AEAD tag does not verify: not a
    /// client Initial of this connection (a server Initial, a corrupted or
    /// forged packet, or keys from another Destination Connection ID).
    #[error("QUIC Initial packet did not decrypt")]
    Decrypt,
    /// An Initial of another connection: it opens with keys of its own
    /// Destination Connection ID, not with this flow's. After a Retry, or
    /// when one UDP socket carries several connections: start another
    /// [`super::Assembler`] for it.
    #[error("Initial packet of another QUIC connection")]
    OtherConnection,
    /// The CRYPTO stream does not yet hold the whole ClientHello. `need` is
    /// the handshake message's length once its 4-byte header arrived.
    #[error("ClientHello incomplete: have {have} contiguous bytes of {need:?}")]
    Incomplete { have: usize, need: Option<usize> },
    /// The decrypted packet breaks QUIC or TLS framing.
    #[error("malformed QUIC Initial: {0}")]
    Malformed(&'static str),
    /// A bound of this module was reached (`MAX_DATAGRAMS`, `MAX_KEY_SETS`,
    /// `MAX_CRYPTO_BYTES`).
    #[error("limit reached: {0}")]
    Limit(&'static str),
}
