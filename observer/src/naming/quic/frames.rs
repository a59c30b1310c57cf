//! The frames of a decrypted Initial packet. Only PADDING, PING, ACK,
//! CRYPTO and CONNECTION_CLOSE (0x1c) may appear there (RFC 9000 §12.4);
//! anything else means the bytes are not what we think they are.
use super::{QuicError, reader::Reader};

const PADDING: u64 = 0x00;
const PING: u64 = 0x01;
const ACK: u64 = 0x02;
const ACK_ECN: u64 = 0x03;
const CRYPTO: u64 = 0x06;
const CONNECTION_CLOSE: u64 = 0x1c;

/// Calls `on_crypto(offset, data)` for every CRYPTO frame, in packet order.
pub fn for_each_crypto<'a>(
    payload: &'a [u8],
    mut on_crypto: impl FnMut(u64, &'a [u8]) -> Result<(), QuicError>,
) -> Result<(), QuicError> {
    let mut r = Reader::new(payload);
    // Every iteration consumes at least the frame type byte.
    while !r.is_empty() {
        match r.varint("frame type")? {
            PADDING => r.skip_zeros(),
            PING => {}
            kind @ (ACK | ACK_ECN) => {
                r.varint("ack largest")?;
                r.varint("ack delay")?;
                let ranges = r.varint("ack range count")?;
                r.varint("ack first range")?;
                // Each range takes at least two bytes, so this loop ends
                // within the payload whatever the count says.
                for _ in 0..ranges {
                    r.varint("ack gap")?;
                    r.varint("ack range")?;
                }
                if kind == ACK_ECN {
                    for _ in 0..3 {
                        r.varint("ecn count")?;
                    }
                }
            }
            CRYPTO => {
                let offset = r.varint("crypto offset")?;
                let len = r.length("crypto length")?;
                let data = r.take(len, "crypto data")?;
                if offset
                    .checked_add(len as u64)
                    .is_none_or(|end| end >= 1 << 62)
                {
                    return Err(QuicError::Malformed("CRYPTO frame past 2^62"));
                }
                on_crypto(offset, data)?;
            }
            CONNECTION_CLOSE => {
                r.varint("close error code")?;
                r.varint("close frame type")?;
                let len = r.length("close reason length")?;
                r.take(len, "close reason")?;
            }
            _ => return Err(QuicError::Malformed("frame type not allowed in Initial")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crypto_of(payload: &[u8]) -> Result<Vec<(u64, Vec<u8>)>, QuicError> {
        let mut out = Vec::new();
        for_each_crypto(payload, |o, d| {
            out.push((o, d.to_vec()));
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn crypto_frames_between_padding_ping_and_ack_are_found() {
        let payload = [
            0x01, // PING
            0x02, 0x05, 0x00, 0x01, 0x00, 0x01, 0x02, // ACK, one extra range
            0x00, 0x00, // PADDING
            0x06, 0x40, 0x10, 0x03, b'a', b'b', b'c', // CRYPTO offset 16
            0x03, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x03, // ACK_ECN
            0x06, 0x00, 0x02, b'x', b'y', // CRYPTO offset 0
            0x1c, 0x0a, 0x00, 0x02, b'h', b'i', // CONNECTION_CLOSE
            0x00, 0x00, 0x00,
        ];
        assert_eq!(
            crypto_of(&payload).unwrap(),
            [(16, b"abc".to_vec()), (0, b"xy".to_vec())]
        );
    }

    #[test]
    fn stream_frame_in_an_initial_is_malformed() {
        assert_eq!(
            crypto_of(&[0x08, 0x00, b'x']),
            Err(QuicError::Malformed("frame type not allowed in Initial"))
        );
    }

    #[test]
    fn crypto_frame_longer_than_the_packet_is_short() {
        assert_eq!(
            crypto_of(&[0x06, 0x00, 0x05, b'a']),
            Err(QuicError::Short("crypto length"))
        );
    }

    #[test]
    fn ack_with_a_huge_range_count_ends_at_the_payload_end() {
        let payload = [0x02, 0x00, 0x00, 0xbf, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00];
        assert!(matches!(crypto_of(&payload), Err(QuicError::Short(_))));
    }
}
