//! HTTP/1.x request heads: no panic, and names of the documented shape.
#![no_main]

use libfuzzer_sys::fuzz_target;
use observer::naming::http::parse_request;

const METHODS: [&str; 9] = [
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE",
];

fuzz_target!(|data: &[u8]| {
    match parse_request(data) {
        Ok(req) => {
            assert!(METHODS.contains(&req.method), "{req:?}");
            if let Some(host) = &req.host {
                assert!(!host.is_empty() && !host.ends_with('.'), "{req:?}");
                assert!(!host.bytes().any(|b| b.is_ascii_uppercase()), "{req:?}");
            }
            // The query string can carry credentials: it must never be kept
            // (CONNECT's path is its host:port target).
            if req.method != "CONNECT" {
                assert!(!req.path.contains(['?', '#']), "{req:?}");
            }
        }
        Err(_) => {}
    }
});
