//! Client Initial keys from the Destination Connection ID of the client's
//! first Initial packet (RFC 9001 §5.2): HKDF-Extract with the version's
//! salt, then HKDF-Expand-Label to the client secret, the AES-128-GCM key,
//! the IV and the header-protection key. Anyone on the path can do this by
//! design; it is what lets a middlebox read the SNI.
use ring::{aead, hkdf};

use super::Version;

pub const KEY_LEN: usize = 16;
pub const IV_LEN: usize = 12;
pub const HP_LEN: usize = 16;
/// SHA-256 output: the client Initial secret.
pub const SECRET_LEN: usize = 32;

/// The raw client Initial key material, public for the tests against the
/// RFC's intermediate values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialSecrets {
    pub client_secret: [u8; SECRET_LEN],
    pub key: [u8; KEY_LEN],
    pub iv: [u8; IV_LEN],
    pub hp: [u8; HP_LEN],
}

/// Ready-to-use client Initial keys for one connection.
pub struct ClientKeys {
    pub(super) packet: aead::LessSafeKey,
    iv: [u8; IV_LEN],
    header: aead::quic::HeaderProtectionKey,
}

/// An HKDF output length that ring accepts as a key type.
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-Expand-Label(secret, label, "", N) from TLS 1.3 (RFC 8446 §7.1):
/// the info is `u16 N || u8 len || "tls13 " label || u8 0`.
fn expand_label<const N: usize>(secret: &hkdf::Prk, label: &[u8]) -> [u8; N] {
    const PREFIX: &[u8] = b"tls13 ";
    let length = (N as u16).to_be_bytes();
    let label_len = [(PREFIX.len() + label.len()) as u8];
    let info: [&[u8]; 5] = [&length, &label_len, PREFIX, label, &[0]];
    let mut out = [0u8; N];
    // Only fails when N exceeds 255 * 32 bytes, which no caller asks for.
    secret
        .expand(&info, Len(N))
        .and_then(|okm| okm.fill(&mut out))
        .expect("HKDF output within its limit");
    out
}

/// The client's Initial secrets for a connection whose first Initial
/// carried `dcid`.
pub fn initial_secrets(version: Version, dcid: &[u8]) -> InitialSecrets {
    let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, version.initial_salt());
    let initial = salt.extract(dcid);
    let client_secret: [u8; SECRET_LEN] = expand_label(&initial, b"client in");
    let client = hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, &client_secret);
    let [key_label, iv_label, hp_label] = version.labels();
    InitialSecrets {
        client_secret,
        key: expand_label(&client, key_label),
        iv: expand_label(&client, iv_label),
        hp: expand_label(&client, hp_label),
    }
}

impl ClientKeys {
    pub fn new(version: Version, dcid: &[u8]) -> Self {
        let s = initial_secrets(version, dcid);
        // Both constructors only fail on a wrong key length, fixed above.
        let key = aead::UnboundKey::new(&aead::AES_128_GCM, &s.key).expect("16-byte AES key");
        let header = aead::quic::HeaderProtectionKey::new(&aead::quic::AES_128, &s.hp)
            .expect("16-byte header protection key");
        Self {
            packet: aead::LessSafeKey::new(key),
            iv: s.iv,
            header,
        }
    }

    /// The 5-byte header-protection mask for a 16-byte ciphertext sample.
    pub fn mask(&self, sample: &[u8]) -> Option<[u8; 5]> {
        self.header.new_mask(sample).ok()
    }

    /// The AEAD nonce: the IV with the packet number XORed into its end
    /// (RFC 9001 §5.3).
    pub fn nonce(&self, packet_number: u64) -> aead::Nonce {
        let mut nonce = self.iv;
        for (n, p) in nonce[IV_LEN - 8..]
            .iter_mut()
            .zip(packet_number.to_be_bytes())
        {
            *n ^= p;
        }
        aead::Nonce::assume_unique_for_key(nonce)
    }
}
