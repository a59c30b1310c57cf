//! TLS ClientHello parsing: no panic, and the properties callers rely on.
#![no_main]

use libfuzzer_sys::fuzz_target;
use observer::naming::tls::{
    TlsError, looks_like_tls, needed_len, parse_client_hello, parse_client_hello_truncated,
};

fuzz_target!(|data: &[u8]| {
    let _ = looks_like_tls(data);
    let needed = needed_len(data);
    let full = parse_client_hello(data);
    let truncated = parse_client_hello_truncated(data);

    match &full {
        Ok(hello) => {
            // The flow table decides to parse from `looks_like_tls` and from
            // `needed_len`: both must agree with a successful parse.
            assert!(looks_like_tls(data));
            let n = needed.expect("a parsed hello announces its length");
            assert!(n <= data.len(), "needed_len {n} > {} present", data.len());
            // Bytes after the hello never change the answer.
            assert_eq!(parse_client_hello(&data[..n]).as_ref(), Ok(hello));
            // The documented shape of names.
            if let Some(sni) = &hello.sni {
                assert!(!sni.is_empty() && !sni.ends_with('.'));
                assert!(
                    sni.bytes()
                        .all(|b| b.is_ascii_graphic() && !b.is_ascii_uppercase())
                );
            }
            // A whole hello reads the same either way.
            assert_eq!(truncated.as_ref(), Ok(hello));
        }
        Err(TlsError::Incomplete { have, need }) => {
            // "Call again with more bytes" must mean more bytes.
            assert_eq!(*have, data.len());
            assert!(need > have, "Incomplete needs {need} with {have} present");
            if let Some(n) = needed {
                assert!(n > data.len(), "needed_len {n} but Incomplete");
            }
        }
        Err(_) => {}
    }
    // The best-effort parse never names what the strict one refuses.
    if let Ok(partial) = &truncated
        && let Some(sni) = &partial.sni
    {
        assert!(!sni.is_empty() && !sni.ends_with('.'));
    }
});
