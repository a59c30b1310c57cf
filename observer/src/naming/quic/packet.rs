//! Opening one client Initial packet: remove header protection (RFC 9001
//! §5.4), rebuild the packet number (RFC 9000 §A.3), decrypt with
//! AES-128-GCM (RFC 9001 §5.3). The input is never modified: the packet is
//! copied once (it is at most one datagram long).
use ring::aead::Aad;

use super::{QuicError, keys::ClientKeys};

const SAMPLE_LEN: usize = 16;
/// The sample starts 4 bytes after the packet number's start, whatever the
/// packet number's real length (RFC 9001 §5.4.2).
const SAMPLE_OFFSET: usize = 4;

/// Decrypts `packet` (exactly one packet, header included) whose packet
/// number starts at `pn_offset`; `largest_pn` is the largest packet number
/// decrypted so far on this flow. Returns the packet number and the frames.
pub fn open(
    keys: &ClientKeys,
    packet: &[u8],
    pn_offset: usize,
    largest_pn: Option<u64>,
) -> Result<(u64, Vec<u8>), QuicError> {
    let sample_at = pn_offset + SAMPLE_OFFSET;
    let sample = packet
        .get(sample_at..sample_at + SAMPLE_LEN)
        .ok_or(QuicError::Short("header protection sample"))?;
    let mask = keys.mask(sample).ok_or(QuicError::Decrypt)?;
    let mut buf = packet.to_vec();
    // Long header: the low four bits of the first byte are protected.
    buf[0] ^= mask[0] & 0x0f;
    let pn_len = usize::from(buf[0] & 0x03) + 1;
    let mut truncated = 0u64;
    for i in 0..pn_len {
        buf[pn_offset + i] ^= mask[1 + i];
        truncated = truncated << 8 | u64::from(buf[pn_offset + i]);
    }
    let pn = decode_packet_number(largest_pn, truncated, pn_len * 8);
    let (header, body) = buf.split_at_mut(pn_offset + pn_len);
    let plain = keys
        .packet
        .open_in_place(keys.nonce(pn), Aad::from(&*header), body)
        .map_err(|_| QuicError::Decrypt)?;
    Ok((pn, plain.to_vec()))
}

/// The full packet number closest to the next expected one (RFC 9000 §A.3).
pub fn decode_packet_number(largest: Option<u64>, truncated: u64, bits: usize) -> u64 {
    const MAX_PN: u64 = (1 << 62) - 1;
    let expected = largest.map_or(0, |l| l.saturating_add(1));
    let window = 1u64 << bits;
    let half = window / 2;
    let candidate = (expected & !(window - 1)) | truncated;
    if candidate.saturating_add(half) <= expected && candidate < (1 << 62) - window {
        candidate + window
    } else if candidate > expected.saturating_add(half) && candidate >= window {
        candidate - window
    } else {
        candidate.min(MAX_PN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_number_decodes_as_rfc_9000_appendix_a3_example() {
        // Largest 0xa82f30ea, 16-bit truncated 0x9b32 → 0xa82f9b32.
        assert_eq!(
            decode_packet_number(Some(0xa82f_30ea), 0x9b32, 16),
            0xa82f_9b32
        );
    }

    #[test]
    fn first_packets_decode_from_zero() {
        assert_eq!(decode_packet_number(None, 2, 32), 2);
        assert_eq!(decode_packet_number(None, 0, 8), 0);
        assert_eq!(decode_packet_number(Some(0), 1, 8), 1);
        assert_eq!(decode_packet_number(Some(255), 0, 8), 256);
    }
}
