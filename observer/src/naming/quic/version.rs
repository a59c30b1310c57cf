//! The QUIC versions whose Initial packets we can read, and what differs
//! between them: the salt, the HKDF labels and the long-header type bits.
//! Sources: RFC 9001 §5.2 (v1), RFC 9369 §3 (v2).

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// RFC 9000 / RFC 9001.
    V1,
    /// RFC 9369.
    V2,
}

/// Long-header packet types (RFC 9000 §17.2, RFC 9369 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LongType {
    Initial,
    ZeroRtt,
    Handshake,
    Retry,
}

impl Version {
    pub const V1_WIRE: u32 = 0x0000_0001;
    pub const V2_WIRE: u32 = 0x6b33_43cf;

    pub fn from_wire(version: u32) -> Option<Self> {
        match version {
            Self::V1_WIRE => Some(Self::V1),
            Self::V2_WIRE => Some(Self::V2),
            _ => None,
        }
    }

    pub fn wire(self) -> u32 {
        match self {
            Self::V1 => Self::V1_WIRE,
            Self::V2 => Self::V2_WIRE,
        }
    }

    pub(super) fn initial_salt(self) -> &'static [u8; 20] {
        match self {
            Self::V1 => &[
                0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8,
                0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a,
            ],
            Self::V2 => &[
                0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26,
                0x9d, 0xcb, 0xf9, 0xbd, 0x2e, 0xd9,
            ],
        }
    }

    /// HKDF-Expand-Label labels for the packet key, IV and header-protection
    /// key ("client in" is the same in both versions).
    pub(super) fn labels(self) -> [&'static [u8]; 3] {
        match self {
            Self::V1 => [b"quic key", b"quic iv", b"quic hp"],
            Self::V2 => [b"quicv2 key", b"quicv2 iv", b"quicv2 hp"],
        }
    }

    /// The packet type from the two type bits of a long header's first byte.
    pub fn long_type(self, first_byte: u8) -> LongType {
        let bits = (first_byte >> 4) & 0x03;
        let v1_bits = match self {
            Self::V1 => bits,
            // v2 rotates the v1 values by one: Initial 0b01, 0-RTT 0b10,
            // Handshake 0b11, Retry 0b00.
            Self::V2 => bits.wrapping_sub(1) & 0x03,
        };
        match v1_bits {
            0 => LongType::Initial,
            1 => LongType::ZeroRtt,
            2 => LongType::Handshake,
            _ => LongType::Retry,
        }
    }

    /// The type bits (already shifted into place) of an Initial packet.
    pub fn initial_type_bits(self) -> u8 {
        match self {
            Self::V1 => 0x00,
            Self::V2 => 0x10,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_type_bits_are_the_rfc_9369_values() {
        let of = |bits: u8| Version::V2.long_type(0xc0 | bits << 4);
        assert_eq!(of(0b01), LongType::Initial);
        assert_eq!(of(0b10), LongType::ZeroRtt);
        assert_eq!(of(0b11), LongType::Handshake);
        assert_eq!(of(0b00), LongType::Retry);
        assert_eq!(
            Version::V2.long_type(0xc0 | Version::V2.initial_type_bits()),
            LongType::Initial
        );
    }

    #[test]
    fn v1_type_bits_are_the_rfc_9000_values() {
        let of = |bits: u8| Version::V1.long_type(0xc0 | bits << 4);
        assert_eq!(of(0b00), LongType::Initial);
        assert_eq!(of(0b01), LongType::ZeroRtt);
        assert_eq!(of(0b10), LongType::Handshake);
        assert_eq!(of(0b11), LongType::Retry);
    }

    #[test]
    fn only_v1_and_v2_are_known() {
        assert_eq!(Version::from_wire(1), Some(Version::V1));
        assert_eq!(Version::from_wire(0x6b33_43cf), Some(Version::V2));
        for unknown in [0, 0xff00_001d, 0x0a0a_0a0a, 2] {
            assert_eq!(Version::from_wire(unknown), None);
        }
    }
}
