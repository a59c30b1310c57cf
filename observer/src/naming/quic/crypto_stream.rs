//! The client's Initial CRYPTO stream, rebuilt from frames that may arrive
//! out of order, overlap, or span packets and datagrams. Only its start is
//! kept: the ClientHello is the first (and, before a HelloRetryRequest, the
//! only) handshake message in it.
use super::QuicError;

/// Stream bytes kept per flow. A client's first flight is a few datagrams
/// of ≤ 1472 bytes (Ethernet MTU), and a flow's assembler reads at most
/// `MAX_DATAGRAMS` of them, so a longer hello could not be read anyway; one
/// with a post-quantum key share (X25519MLKEM768's is 1216 bytes) stays
/// well below.
pub const MAX_CRYPTO_BYTES: usize = 8192;

const HANDSHAKE_HEADER_LEN: usize = 4;
const CLIENT_HELLO: u8 = 0x01;
const WORD_BITS: usize = 64;

pub struct CryptoStream {
    /// Stream bytes from offset 0, grown to the furthest byte received.
    bytes: Vec<u8>,
    /// One bit per byte of `bytes`: received or not.
    present: [u64; MAX_CRYPTO_BYTES / WORD_BITS],
}

impl Default for CryptoStream {
    fn default() -> Self {
        Self {
            bytes: Vec::new(),
            present: [0; MAX_CRYPTO_BYTES / WORD_BITS],
        }
    }
}

impl CryptoStream {
    /// Adds a CRYPTO frame's data. Bytes past `MAX_CRYPTO_BYTES` are dropped:
    /// they can only belong to a later message, or to a hello too long to
    /// keep, which `message_len` then reports.
    pub fn insert(&mut self, offset: u64, data: &[u8]) {
        let Ok(start) = usize::try_from(offset) else {
            return;
        };
        if start >= MAX_CRYPTO_BYTES {
            return;
        }
        let end = start.saturating_add(data.len()).min(MAX_CRYPTO_BYTES);
        if self.bytes.len() < end {
            self.bytes.resize(end, 0);
        }
        // Retransmitted or overlapping data must be identical, and data
        // already received can be discarded (RFC 9000 §2.2, §19.6). So the
        // first copy wins: a hello once whole stays whole, whatever a later
        // (conflicting) copy says.
        for (i, &byte) in (start..end).zip(data) {
            let (word, bit) = (i / WORD_BITS, 1 << (i % WORD_BITS));
            if self.present[word] & bit == 0 {
                self.bytes[i] = byte;
                self.present[word] |= bit;
            }
        }
    }

    /// Bytes received without a gap from offset 0.
    pub fn contiguous(&self) -> usize {
        let mut n = 0;
        for word in self.present {
            let ones = word.trailing_ones() as usize;
            n += ones;
            if ones < WORD_BITS {
                break;
            }
        }
        n
    }

    /// The whole first handshake message's length (header included), once
    /// its header is present.
    pub fn message_len(&self) -> Result<Option<usize>, QuicError> {
        if self.contiguous() < HANDSHAKE_HEADER_LEN {
            return Ok(None);
        }
        let [kind, a, b, c] = [self.bytes[0], self.bytes[1], self.bytes[2], self.bytes[3]];
        if kind != CLIENT_HELLO {
            return Err(QuicError::Malformed(
                "CRYPTO stream does not start with a ClientHello",
            ));
        }
        let len =
            HANDSHAKE_HEADER_LEN + (usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c));
        if len > MAX_CRYPTO_BYTES {
            return Err(QuicError::Limit("ClientHello longer than MAX_CRYPTO_BYTES"));
        }
        Ok(Some(len))
    }

    /// The whole ClientHello handshake message, or what is still missing.
    pub fn hello(&self) -> Result<&[u8], QuicError> {
        let have = self.contiguous();
        match self.message_len()? {
            Some(need) if have >= need => Ok(&self.bytes[..need]),
            need => Err(QuicError::Incomplete { have, need }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello_of(len: usize) -> Vec<u8> {
        let mut m = vec![CLIENT_HELLO, 0, (len >> 8) as u8, len as u8];
        m.extend((0..len).map(|i| i as u8));
        m
    }

    #[test]
    fn fragments_in_any_order_rebuild_the_message() {
        let m = hello_of(300);
        let mut s = CryptoStream::default();
        s.insert(200, &m[200..]);
        assert_eq!(
            s.hello(),
            Err(QuicError::Incomplete {
                have: 0,
                need: None
            })
        );
        s.insert(2, &m[2..120]);
        s.insert(0, &m[..2]);
        assert_eq!(
            s.hello(),
            Err(QuicError::Incomplete {
                have: 120,
                need: Some(304)
            })
        );
        s.insert(100, &m[100..250]); // overlaps both neighbours
        assert_eq!(s.hello(), Ok(&m[..]));
    }

    #[test]
    fn conflicting_retransmission_does_not_change_bytes_already_received() {
        let m = hello_of(10);
        let mut s = CryptoStream::default();
        s.insert(0, &m);
        // Same range, another length in the header and other contents.
        s.insert(0, &[CLIENT_HELLO, 0, 0x01, 0, 0xee, 0xee]);
        assert_eq!(s.hello(), Ok(&m[..]));
        // A copy that starts inside and runs past still fills the gap after.
        s.insert(12, &[0xaa; 6]);
        assert_eq!(s.contiguous(), 18);
        assert_eq!(&s.bytes[12..14], &m[12..14]);
    }

    #[test]
    fn bytes_after_the_hello_are_not_part_of_it() {
        let mut m = hello_of(10);
        m.extend_from_slice(&[0xaa; 20]);
        let mut s = CryptoStream::default();
        s.insert(0, &m);
        assert_eq!(s.hello().unwrap().len(), 14);
    }

    #[test]
    fn data_past_the_bound_is_dropped_and_a_long_hello_is_a_limit() {
        let mut s = CryptoStream::default();
        s.insert(MAX_CRYPTO_BYTES as u64, &[1; 100]);
        s.insert(u64::MAX - 3, &[1; 3]);
        assert_eq!(s.contiguous(), 0);
        s.insert(0, &[CLIENT_HELLO, 0, 0x40, 0]);
        assert!(matches!(s.hello(), Err(QuicError::Limit(_))));
    }

    #[test]
    fn a_stream_starting_with_another_message_is_malformed() {
        let mut s = CryptoStream::default();
        s.insert(0, &[0x02, 0, 0, 1, 0]); // ServerHello
        assert!(matches!(s.hello(), Err(QuicError::Malformed(_))));
    }
}
