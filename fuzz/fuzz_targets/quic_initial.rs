//! QUIC Initial packets → ClientHello: no panic, and the properties callers
//! rely on. Random bytes almost never pass the AEAD, so the input is read
//! twice: as client datagrams, and as the frames of Initial packets sealed
//! with a fixed connection's keys, so that the frame walker, the CRYPTO
//! reassembly and the bounds see fuzzer-chosen plaintext.
#![no_main]

use libfuzzer_sys::fuzz_target;
use observer::naming::{
    quic::{
        Assembler, InitialHello, MAX_CRYPTO_BYTES, Progress, QuicError, Version, client_hello,
        seal::seal_initial,
    },
    tls,
};

/// The Destination Connection ID of RFC 9001 Appendix A.
const DCID: &[u8] = &[0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08];
/// Datagram size the sealed single packet is padded to (RFC 9000 §14.1).
const MIN_INITIAL_DATAGRAM: usize = 1200;

fuzz_target!(|data: &[u8]| {
    // 1. The bytes as datagrams: whole, and split where the first byte says.
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let (a, b) = data.split_at(split);
    check(client_hello([data]));
    check(client_hello([a, b]));
    check(pushed(&[data]));
    // 2. The bytes as frames: one sealed Initial, then two Initials pushed
    //    in reverse order (a hello spanning packets, out of order).
    let version = if data.len().is_multiple_of(2) {
        Version::V1
    } else {
        Version::V2
    };
    let one = seal_initial(version, DCID, &[], 0, 4, data, MIN_INITIAL_DATAGRAM);
    check(client_hello([one.as_slice()]));
    let first = seal_initial(version, DCID, &[], 0, 1, a, 0);
    let second = seal_initial(version, DCID, &[], 1, 2, b, 0);
    check(pushed(&[&second, &first]));
});

/// Pushes `datagrams` into one assembler; what `push` said must agree with
/// what `finish` then returns.
fn pushed(datagrams: &[&[u8]]) -> Result<InitialHello, QuicError> {
    let mut assembler = Assembler::new();
    let mut complete = false;
    for datagram in datagrams {
        match assembler.push(datagram) {
            Ok(Progress::Complete) => complete = true,
            Ok(Progress::NeedMore { have, need }) => {
                // Once complete, a later datagram cannot undo it.
                assert!(!complete, "NeedMore after Complete");
                if let Some(need) = need {
                    assert!(have < need, "NeedMore with {have} of {need}");
                }
            }
            Err(_) => {}
        }
    }
    let hello = assembler.finish();
    if complete {
        assert!(hello.is_ok(), "Complete but finish gave {hello:?}");
    }
    hello
}

fn check(result: Result<InitialHello, QuicError>) {
    match result {
        Ok(hello) => {
            // Exactly one whole ClientHello message, within the bound.
            let m = &hello.handshake;
            assert_eq!(m[0], 0x01, "a ClientHello");
            let len = usize::from(m[1]) << 16 | usize::from(m[2]) << 8 | usize::from(m[3]);
            assert_eq!(m.len(), 4 + len, "exactly one message");
            assert!(m.len() <= MAX_CRYPTO_BYTES);
            // The records are what the TCP path reads: one record, all of
            // it needed, and the TLS parser's answer is the same as for the
            // same hello sent over TCP (whatever that answer is).
            let records = hello.tls_records();
            assert_eq!(records.len(), m.len() + 5);
            assert_eq!(&records[5..], &m[..]);
            assert!(tls::looks_like_tls(&records));
            assert_eq!(tls::needed_len(&records), Some(records.len()));
            if let Err(tls::TlsError::Incomplete { .. }) = tls::parse_client_hello(&records) {
                panic!("a whole hello in records is incomplete to the TLS parser");
            }
        }
        Err(QuicError::Incomplete {
            have,
            need: Some(need),
        }) => assert!(have < need, "Incomplete with {have} of {need}"),
        Err(_) => {}
    }
}
