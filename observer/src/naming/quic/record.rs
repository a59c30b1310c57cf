//! QUIC CRYPTO frames carry bare TLS handshake messages (RFC 9001 §4): no
//! 5-byte record header. [`crate::naming::tls`] reads a TCP byte stream,
//! which has record headers, so the hello is wrapped in synthetic
//! handshake records to go down the same path (and the same SNI, ALPN and
//! ECH rules) unchanged.

/// Largest record payload (RFC 8446 §5.1).
pub const TLS_RECORD_MAX: usize = 1 << 14;
const CONTENT_HANDSHAKE: u8 = 0x16;
const RECORD_HEADER_LEN: usize = 5;
/// `legacy_record_version` of a first ClientHello record (RFC 8446 §5.1).
const RECORD_VERSION: [u8; 2] = [0x03, 0x01];

/// `handshake` in as many handshake records as it takes (one for any hello
/// this module returns, as `MAX_CRYPTO_BYTES` < `TLS_RECORD_MAX`).
pub fn tls_records(handshake: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        handshake.len() + RECORD_HEADER_LEN * handshake.len().div_ceil(TLS_RECORD_MAX),
    );
    for chunk in handshake.chunks(TLS_RECORD_MAX) {
        out.push(CONTENT_HANDSHAKE);
        out.extend_from_slice(&RECORD_VERSION);
        out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_message_is_split_into_full_records() {
        let stream = tls_records(&vec![7u8; TLS_RECORD_MAX + 10]);
        assert_eq!(&stream[..5], &[0x16, 0x03, 0x01, 0x40, 0x00]);
        let second = 5 + TLS_RECORD_MAX;
        assert_eq!(&stream[second..second + 5], &[0x16, 0x03, 0x01, 0x00, 10]);
        assert_eq!(stream.len(), TLS_RECORD_MAX + 10 + 10);
    }

    #[test]
    fn empty_message_gives_no_record() {
        assert!(tls_records(&[]).is_empty());
    }
}
