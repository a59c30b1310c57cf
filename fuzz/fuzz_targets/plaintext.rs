//! TLS plaintext of one connection, both directions, in pieces: the HTTP
//! framing, body scanning and request pairing never panic, never keep a
//! query, and report only bounded values.
//!
//! Input: a sequence of pieces, each a control byte (bit 0: direction;
//! bits 1-7: the piece's length) then that many bytes; a control byte of
//! 0xff is a gap (bytes the kernel did not copy) of the next byte's size.
#![no_main]

use libfuzzer_sys::fuzz_target;
use observer::inspection::{Exchange, OPERATIONS, Request, http1::Side};

fn check(r: &Request) {
    assert!(!r.path.contains(['?', '#']), "{r:?}");
    assert!(r.path.len() <= 200, "{r:?}");
    assert!(OPERATIONS.contains(&r.operation.name()), "{r:?}");
    assert!(r.model.as_ref().is_none_or(|m| m.len() <= 4 * 128), "{r:?}");
}

fuzz_target!(|data: &[u8]| {
    let mut ex = Exchange::new();
    let (mut out_off, mut in_off) = (0u32, 0u32);
    let mut rest = data;
    while let Some((&control, tail)) = rest.split_first() {
        if control == 0xff {
            let Some((&gap, tail)) = tail.split_first() else {
                break;
            };
            // A gap: the next chunk of a long call arrives further on.
            out_off = out_off.saturating_add(u32::from(gap) + 1);
            rest = tail;
            continue;
        }
        let len = usize::from(control >> 1).min(tail.len());
        let (piece, tail) = tail.split_at(len);
        let side = if control & 1 == 0 {
            Side::Client
        } else {
            Side::Server
        };
        let off = if side == Side::Client {
            &mut out_off
        } else {
            &mut in_off
        };
        // Each piece is its own call unless a gap made it a later chunk.
        let total = off.saturating_add(len as u32);
        ex.chunk(side, *off, total, piece, 0);
        *off = 0;
        for r in ex.take_done() {
            check(&r);
        }
        rest = tail;
    }
    for r in ex.closed(1) {
        check(&r);
    }
});
