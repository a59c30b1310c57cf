//! Builds protected client Initial packets from chosen frames, for tests
//! and the `quic_initial` fuzz target (feature `fuzzing`; the agent never
//! encrypts). The RFC vectors check it byte for byte; it lets tests send
//! CRYPTO data in any order, and lets the fuzzer put its bytes behind the
//! AEAD, which random bytes never pass.
use ring::aead::Aad;

use super::{MAX_CID_LEN, Version, keys::ClientKeys};

/// A CRYPTO frame (type 0x06) with 4-byte varints for offset and length.
pub fn crypto_frame(offset: u32, data: &[u8]) -> Vec<u8> {
    let mut f = vec![0x06];
    f.extend_from_slice(&(0x8000_0000 | offset).to_be_bytes());
    f.extend_from_slice(&(0x8000_0000 | data.len() as u32).to_be_bytes());
    f.extend_from_slice(data);
    f
}

/// One client Initial packet: `frames` (padded with PADDING so that the
/// packet is at least `min_len` bytes) protected with the keys of `dcid`.
/// `pn_len` is 1 to 4 bytes; the token is empty.
pub fn seal_initial(
    version: Version,
    dcid: &[u8],
    scid: &[u8],
    pn: u32,
    pn_len: usize,
    frames: &[u8],
    min_len: usize,
) -> Vec<u8> {
    seal_initial_keyed(version, dcid, dcid, scid, pn, pn_len, frames, min_len)
}

/// As [`seal_initial`], with keys from `key_dcid` while the header carries
/// `dcid`: a client's later Initials after the server chose its own ID.
#[expect(
    clippy::too_many_arguments,
    reason = "test builder mirrors the header fields"
)]
pub fn seal_initial_keyed(
    version: Version,
    key_dcid: &[u8],
    dcid: &[u8],
    scid: &[u8],
    pn: u32,
    pn_len: usize,
    frames: &[u8],
    min_len: usize,
) -> Vec<u8> {
    assert!((1..=4).contains(&pn_len) && dcid.len() <= MAX_CID_LEN && scid.len() <= MAX_CID_LEN);
    let keys = ClientKeys::new(version, key_dcid);
    let mut header = vec![0xc0 | version.initial_type_bits() | (pn_len as u8 - 1)];
    header.extend_from_slice(&version.wire().to_be_bytes());
    header.push(dcid.len() as u8);
    header.extend_from_slice(dcid);
    header.push(scid.len() as u8);
    header.extend_from_slice(scid);
    header.push(0); // token length
    let mut payload = frames.to_vec();
    // The length field takes 2 bytes below 16384, else 4.
    let fixed = |payload: usize| {
        let len = pn_len + payload + 16;
        header.len() + if len < 1 << 14 { 2 } else { 4 } + len
    };
    // Header protection samples 4 bytes past the packet number's start.
    let min_payload = 4 - pn_len;
    if payload.len() < min_payload {
        payload.resize(min_payload, 0);
    }
    if fixed(payload.len()) < min_len {
        let grow = min_len - fixed(payload.len());
        payload.resize(payload.len() + grow, 0);
    }
    let len = pn_len + payload.len() + 16;
    if len < 1 << 14 {
        header.extend_from_slice(&(0x4000 | len as u16).to_be_bytes());
    } else {
        header.extend_from_slice(&(0x8000_0000 | len as u32).to_be_bytes());
    }
    let pn_offset = header.len();
    header.extend_from_slice(&pn.to_be_bytes()[4 - pn_len..]);
    let tag = keys
        .packet
        .seal_in_place_separate_tag(keys.nonce(u64::from(pn)), Aad::from(&header), &mut payload)
        .expect("payload within AES-GCM limits");
    let mut packet = header;
    packet.extend_from_slice(&payload);
    packet.extend_from_slice(tag.as_ref());
    let sample = &packet[pn_offset + 4..pn_offset + 20];
    let mask = keys.mask(sample).expect("16-byte sample");
    packet[0] ^= mask[0] & 0x0f;
    for i in 0..pn_len {
        packet[pn_offset + i] ^= mask[1 + i];
    }
    packet
}
