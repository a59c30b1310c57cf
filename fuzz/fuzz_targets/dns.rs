//! DNS responses: no panic, and answers of the documented shape.
#![no_main]

use libfuzzer_sys::fuzz_target;
use observer::naming::dns::parse_response;

fn is_host_name(name: &str) -> bool {
    !name.is_empty()
        && !name.ends_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b.is_ascii_uppercase())
}

fuzz_target!(|data: &[u8]| {
    let Ok(answer) = parse_response(data) else {
        return;
    };
    assert!(is_host_name(&answer.question), "{answer:?}");
    for (i, name) in answer.cnames.iter().enumerate() {
        assert!(is_host_name(name), "{answer:?}");
        // The chain never loops back, so following it ends.
        assert_ne!(name, &answer.question, "{answer:?}");
        assert!(!answer.cnames[..i].contains(name), "{answer:?}");
    }
    // Every answer comes from a record of at least 11 bytes after the header.
    assert!(answer.addrs.len() <= data.len() / 11, "{answer:?}");
    for (_, ttl) in &answer.addrs {
        assert!(*ttl <= i32::MAX as u32, "{answer:?}");
    }
});
