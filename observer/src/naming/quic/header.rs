//! Long-header framing of one packet (RFC 9000 §17.2), read without keys:
//! enough to find the Destination Connection ID, the version, the type and
//! where the packet ends inside a datagram that coalesces several.
use super::{LongType, QuicError, Version, reader::Reader};

/// Connection IDs are at most 20 bytes in v1 and v2 (RFC 9000 §17.2).
pub const MAX_CID_LEN: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LongHeader<'a> {
    pub version: Version,
    pub kind: LongType,
    pub dcid: &'a [u8],
    pub scid: &'a [u8],
    /// Offset of the (protected) packet number within the packet.
    pub pn_offset: usize,
    /// Bytes from the packet's start to its end (header, packet number,
    /// payload and tag): the next coalesced packet starts here.
    pub packet_len: usize,
}

/// What the first bytes of a datagram say, before any decryption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peek<'a> {
    /// A long header of v1 or v2.
    Long(LongHeader<'a>),
    /// A long header of another version (0 is Version Negotiation).
    OtherVersion { version: u32, dcid: &'a [u8] },
    /// A short header (1-RTT): everything to the datagram's end.
    Short,
}

/// Reads the packet at the start of `bytes`.
pub fn peek(bytes: &[u8]) -> Result<Peek<'_>, QuicError> {
    let mut r = Reader::new(bytes);
    let first = r.u8("first byte")?;
    if first & 0x80 == 0 {
        return Ok(Peek::Short);
    }
    let wire = r.u32("version")?;
    // The version-independent part (RFC 8999): connection IDs of up to 255
    // bytes each.
    let dcid_len = usize::from(r.u8("destination connection id length")?);
    let dcid = r.take(dcid_len, "destination connection id")?;
    let Some(version) = Version::from_wire(wire) else {
        return Ok(Peek::OtherVersion {
            version: wire,
            dcid,
        });
    };
    if dcid_len > MAX_CID_LEN {
        return Err(QuicError::Malformed("connection id longer than 20 bytes"));
    }
    let scid_len = usize::from(r.u8("source connection id length")?);
    if scid_len > MAX_CID_LEN {
        return Err(QuicError::Malformed("connection id longer than 20 bytes"));
    }
    let scid = r.take(scid_len, "source connection id")?;
    let kind = version.long_type(first);
    match kind {
        LongType::Initial => {
            let token_len = r.length("token length")?;
            r.take(token_len, "token")?;
        }
        LongType::ZeroRtt | LongType::Handshake => {}
        // A Retry runs to the datagram's end and has no packet number.
        LongType::Retry => {
            return Ok(Peek::Long(LongHeader {
                version,
                kind,
                dcid,
                scid,
                pn_offset: bytes.len(),
                packet_len: bytes.len(),
            }));
        }
    }
    let rest_len = r.length("length")?;
    let pn_offset = r.pos();
    Ok(Peek::Long(LongHeader {
        version,
        kind,
        dcid,
        scid,
        pn_offset,
        packet_len: pn_offset + rest_len,
    }))
}
