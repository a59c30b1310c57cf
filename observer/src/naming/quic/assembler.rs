//! One flow's client datagrams → its ClientHello. Datagrams are pushed in
//! the order the kernel saw them; each may coalesce several packets
//! (Initial + 0-RTT, or two Initials), and the ClientHello may span packets
//! and datagrams, in any CRYPTO order. Bounded: at most `MAX_DATAGRAMS`
//! pushes and `MAX_CRYPTO_BYTES` of stream per flow.
use super::{
    LongType, QuicError, Version,
    crypto_stream::CryptoStream,
    frames::for_each_crypto,
    header::{LongHeader, MAX_CID_LEN, Peek, peek},
    keys::ClientKeys,
    packet::open,
};

/// Datagrams read per flow, as the kernel's capture of a TCP connection's
/// first segments is bounded ([`observer_common::PAYLOAD_SEGMENTS_MAX`], the
/// same 4). Two cover a hello that spans two Initials; the rest allow for
/// retransmissions and a Retry.
pub const MAX_DATAGRAMS: usize = 4;

/// Key sets kept per flow: one per version, as a compatible version
/// negotiation (RFC 9368) switches v1 → v2 and keeps the original DCID.
pub const MAX_KEY_SETS: usize = 2;

/// A whole ClientHello read from a flow's Initial packets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialHello {
    /// The version of the packets that carried it (the last one read).
    pub version: Version,
    /// The bare TLS handshake message (type 1, 3-byte length, body): QUIC
    /// carries no TLS record layer. See [`super::tls_records`].
    pub handshake: Vec<u8>,
}

impl InitialHello {
    /// The hello as a TLS record stream, as a TCP connection would carry
    /// it: what [`crate::naming::tls`] and [`crate::naming::read_opening`]
    /// read.
    pub fn tls_records(&self) -> Vec<u8> {
        super::tls_records(&self.handshake)
    }
}

/// What a pushed datagram achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// More of the hello is needed: `have` contiguous stream bytes, `need`
    /// the message length once its header arrived.
    NeedMore { have: usize, need: Option<usize> },
    /// The hello is whole: [`Assembler::finish`] returns it.
    Complete,
}

struct KeySet {
    version: Version,
    dcid: ([u8; MAX_CID_LEN], usize),
    keys: ClientKeys,
}

#[derive(Default)]
pub struct Assembler {
    stream: CryptoStream,
    key_sets: Vec<KeySet>,
    /// Which of `key_sets` last opened a packet: later packets try it first.
    current: usize,
    /// The Destination Connection ID the flow's keys come from: the first
    /// Initial's. Later Initials may carry the server's chosen ID but keep
    /// these keys (RFC 9001 §5.2); a Retry starts another flow.
    key_dcid: Option<([u8; MAX_CID_LEN], usize)>,
    largest_pn: Option<u64>,
    last_version: Option<Version>,
    datagrams: usize,
}

impl Assembler {
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads one client datagram (the UDP payload). On an error the flow's
    /// state is unchanged apart from the datagram count, so the caller may
    /// keep pushing or give up.
    pub fn push(&mut self, datagram: &[u8]) -> Result<Progress, QuicError> {
        if self.datagrams >= MAX_DATAGRAMS {
            return Err(QuicError::Limit("MAX_DATAGRAMS datagrams read"));
        }
        self.datagrams += 1;
        let mut pos = 0;
        let mut failure = None;
        let mut opened = false;
        let mut saw_initial = false;
        // Every iteration advances `pos` by a whole packet or stops.
        while pos < datagram.len() {
            let rest = &datagram[pos..];
            // Zeros after the last packet: datagram padding, not a packet.
            if rest[0] == 0 && pos > 0 {
                break;
            }
            let header = match peek(rest) {
                Ok(Peek::Long(h)) => h,
                Ok(Peek::OtherVersion { version, .. }) if pos == 0 => {
                    return Err(QuicError::UnknownVersion(version));
                }
                Ok(Peek::Short) if pos == 0 => return Err(QuicError::NotInitial),
                Ok(_) => break,
                Err(e) if pos == 0 => return Err(e),
                Err(e) => {
                    failure.get_or_insert(e);
                    break;
                }
            };
            let Some(packet) = rest.get(..header.packet_len) else {
                failure.get_or_insert(QuicError::Short("packet"));
                break;
            };
            if header.kind == LongType::Initial {
                saw_initial = true;
                match self.open_initial(packet, &header) {
                    Ok(()) => opened = true,
                    Err(e) => {
                        failure.get_or_insert(e);
                    }
                }
            }
            pos += header.packet_len.max(1);
        }
        if !opened {
            return Err(if saw_initial {
                failure.unwrap_or(QuicError::Decrypt)
            } else {
                QuicError::NotInitial
            });
        }
        match self.stream.hello() {
            Ok(_) => Ok(Progress::Complete),
            Err(QuicError::Incomplete { have, need }) => Ok(Progress::NeedMore { have, need }),
            Err(e) => Err(e),
        }
    }

    /// The whole ClientHello, or why there is none yet.
    pub fn finish(&self) -> Result<InitialHello, QuicError> {
        let version = self.last_version.ok_or(QuicError::NotInitial)?;
        Ok(InitialHello {
            version,
            handshake: self.stream.hello()?.to_vec(),
        })
    }

    /// Decrypts one Initial packet and adds its CRYPTO data to the stream.
    /// Frames are checked before anything is added, so a malformed packet
    /// leaves the stream as it was.
    fn open_initial(&mut self, packet: &[u8], h: &LongHeader<'_>) -> Result<(), QuicError> {
        let own = cid(h.dcid);
        let key_dcid = *self.key_dcid.get_or_insert(own);
        let index = self.key_set(h.version, key_dcid)?;
        let (pn, payload) = match open(
            &self.key_sets[index].keys,
            packet,
            h.pn_offset,
            self.largest_pn,
        ) {
            Ok(opened) => opened,
            // Keys of the packet's own DCID open it: the start of another
            // connection (after a Retry, or a second connection on the same
            // UDP socket). Its hello is not this flow's.
            Err(QuicError::Decrypt)
                if own != key_dcid
                    && open(
                        &ClientKeys::new(h.version, h.dcid),
                        packet,
                        h.pn_offset,
                        None,
                    )
                    .is_ok() =>
            {
                return Err(QuicError::OtherConnection);
            }
            Err(e) => return Err(e),
        };
        let mut fragments = Vec::new();
        for_each_crypto(&payload, |offset, data| {
            fragments.push((offset, data));
            Ok(())
        })?;
        for (offset, data) in fragments {
            self.stream.insert(offset, data);
        }
        self.current = index;
        self.largest_pn = Some(self.largest_pn.map_or(pn, |l| l.max(pn)));
        self.last_version = Some(h.version);
        Ok(())
    }

    /// The index of the key set for (version, dcid), derived on first use.
    fn key_set(
        &mut self,
        version: Version,
        dcid: ([u8; MAX_CID_LEN], usize),
    ) -> Result<usize, QuicError> {
        let found = |k: &KeySet| k.version == version && k.dcid == dcid;
        if self.key_sets.get(self.current).is_some_and(found) {
            return Ok(self.current);
        }
        if let Some(i) = self.key_sets.iter().position(found) {
            return Ok(i);
        }
        if self.key_sets.len() >= MAX_KEY_SETS {
            return Err(QuicError::Limit("MAX_KEY_SETS key sets derived"));
        }
        self.key_sets.push(KeySet {
            version,
            dcid,
            keys: ClientKeys::new(version, &dcid.0[..dcid.1]),
        });
        Ok(self.key_sets.len() - 1)
    }
}

/// A connection ID in a fixed array (the header parser bounds it to 20).
fn cid(bytes: &[u8]) -> ([u8; MAX_CID_LEN], usize) {
    let mut out = [0u8; MAX_CID_LEN];
    let n = bytes.len().min(MAX_CID_LEN);
    out[..n].copy_from_slice(&bytes[..n]);
    (out, n)
}

/// One-shot: a flow's client datagrams in send order → its ClientHello.
pub fn client_hello<'a>(
    datagrams: impl IntoIterator<Item = &'a [u8]>,
) -> Result<InitialHello, QuicError> {
    let mut assembler = Assembler::new();
    let mut last_err = None;
    for datagram in datagrams {
        match assembler.push(datagram) {
            Ok(Progress::Complete) => return assembler.finish(),
            Ok(Progress::NeedMore { .. }) => last_err = None,
            Err(e @ (QuicError::Limit(_) | QuicError::OtherConnection)) => return Err(e),
            Err(e) => last_err = Some(e),
        }
    }
    // Nothing opened at all: say why the last datagram failed.
    match (assembler.finish(), last_err) {
        (Err(QuicError::NotInitial), Some(e)) => Err(e),
        (result, _) => result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::naming::quic::seal::{crypto_frame, seal_initial, seal_initial_keyed};

    const DCID: &[u8] = &[1, 2, 3, 4, 5, 6, 7, 8];
    const SERVER_CID: &[u8] = &[9, 9, 9, 9];

    /// A ClientHello-shaped message of `len` body bytes.
    fn hello(len: usize) -> Vec<u8> {
        let mut m = vec![0x01, (len >> 16) as u8, (len >> 8) as u8, len as u8];
        m.extend((0..len).map(|i| (i * 7) as u8));
        m
    }

    #[test]
    fn crypto_frames_out_of_order_across_packets_and_datagrams() {
        let m = hello(1500);
        // Datagram 1: the middle, then the end, in one packet (as Chrome's
        // scrambled CRYPTO frames look); datagram 2: the start.
        let mut frames = crypto_frame(600, &m[600..1000]);
        frames.extend(crypto_frame(1000, &m[1000..]));
        frames.insert(0, 0x01); // PING first
        let first = seal_initial(Version::V1, DCID, &[], 0, 2, &frames, 1200);
        let second = seal_initial(
            Version::V1,
            DCID,
            &[],
            1,
            2,
            &crypto_frame(0, &m[..600]),
            1200,
        );
        let mut a = Assembler::new();
        assert_eq!(
            a.push(&first),
            Ok(Progress::NeedMore {
                have: 0,
                need: None
            })
        );
        assert_eq!(a.push(&second), Ok(Progress::Complete));
        assert_eq!(a.finish().unwrap().handshake, m);
    }

    #[test]
    fn later_initial_with_the_server_chosen_dcid_keeps_the_first_keys() {
        let m = hello(900);
        let first = seal_initial(
            Version::V1,
            DCID,
            &[],
            0,
            1,
            &crypto_frame(0, &m[..500]),
            1200,
        );
        let later = seal_initial_keyed(
            Version::V1,
            DCID,
            SERVER_CID,
            &[],
            1,
            1,
            &crypto_frame(500, &m[500..]),
            1200,
        );
        let mut a = Assembler::new();
        assert!(matches!(a.push(&first), Ok(Progress::NeedMore { .. })));
        assert_eq!(a.push(&later), Ok(Progress::Complete));
    }

    #[test]
    fn initial_after_a_retry_is_another_connection_and_changes_nothing() {
        let m = hello(900);
        let first = seal_initial(
            Version::V1,
            DCID,
            &[],
            0,
            1,
            &crypto_frame(0, &m[..500]),
            1200,
        );
        // After a Retry the client's keys come from the Retry's SCID.
        let retried = seal_initial(
            Version::V1,
            SERVER_CID,
            &[],
            1,
            1,
            &crypto_frame(0, &m),
            1200,
        );
        let mut a = Assembler::new();
        assert!(a.push(&first).is_ok());
        assert_eq!(a.push(&retried), Err(QuicError::OtherConnection));
        assert_eq!(
            a.finish(),
            Err(QuicError::Incomplete {
                have: 500,
                need: Some(904)
            })
        );
        // A new assembler for it reads the whole hello.
        assert_eq!(client_hello([retried.as_slice()]).unwrap().handshake, m);
    }

    #[test]
    fn compatible_switch_from_v1_to_v2_keeps_reading() {
        let m = hello(900);
        let v1 = seal_initial(
            Version::V1,
            DCID,
            &[],
            0,
            1,
            &crypto_frame(0, &m[..500]),
            1200,
        );
        let v2 = seal_initial(
            Version::V2,
            DCID,
            &[],
            1,
            1,
            &crypto_frame(500, &m[500..]),
            1200,
        );
        let hello = client_hello([v1.as_slice(), v2.as_slice()]).unwrap();
        assert_eq!(hello.version, Version::V2);
        assert_eq!(hello.handshake, m);
    }

    #[test]
    fn coalesced_zero_rtt_packet_after_the_initial_is_skipped() {
        let m = hello(300);
        let mut datagram = seal_initial(Version::V1, DCID, &[], 0, 1, &crypto_frame(0, &m), 0);
        // A 0-RTT long header (type 0b01 in v1) of 30 bytes we cannot open.
        datagram.extend_from_slice(&[0xd0, 0, 0, 0, 1, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0x40, 30]);
        datagram.extend_from_slice(&[0xee; 30]);
        assert_eq!(client_hello([datagram.as_slice()]).unwrap().handshake, m);
    }

    #[test]
    fn coalesced_packet_cut_short_after_a_good_initial_still_counts_the_initial() {
        let m = hello(300);
        let mut datagram = seal_initial(Version::V1, DCID, &[], 0, 1, &crypto_frame(0, &m), 0);
        datagram.extend_from_slice(&[0xd0, 0, 0, 0, 1, 8, 1, 2]);
        assert_eq!(Assembler::new().push(&datagram), Ok(Progress::Complete));
    }

    #[test]
    fn malformed_frames_leave_the_stream_as_it_was() {
        let m = hello(900);
        let good = seal_initial(
            Version::V1,
            DCID,
            &[],
            0,
            1,
            &crypto_frame(0, &m[..500]),
            1200,
        );
        // CRYPTO for the rest, then a STREAM frame, which Initials never carry.
        let mut frames = crypto_frame(500, &m[500..]);
        frames.extend_from_slice(&[0x08, 0x00, 0x01, b'x']);
        let bad = seal_initial(Version::V1, DCID, &[], 1, 1, &frames, 1200);
        let mut a = Assembler::new();
        assert!(a.push(&good).is_ok());
        assert!(matches!(a.push(&bad), Err(QuicError::Malformed(_))));
        assert_eq!(
            a.finish(),
            Err(QuicError::Incomplete {
                have: 500,
                need: Some(904)
            })
        );
    }

    #[test]
    fn one_byte_packet_numbers_past_255_still_decrypt() {
        let m = hello(100);
        let mut a = Assembler::new();
        let pre = seal_initial(Version::V1, DCID, &[], 255, 1, &[0x01], 1200);
        assert_eq!(
            a.push(&pre),
            Ok(Progress::NeedMore {
                have: 0,
                need: None
            })
        );
        // Packet number 256 sent in one byte (0x00): decoded near 255.
        let next = seal_initial(Version::V1, DCID, &[], 256, 1, &crypto_frame(0, &m), 1200);
        assert_eq!(a.push(&next), Ok(Progress::Complete));
    }
}
