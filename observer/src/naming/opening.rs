//! What the first bytes a client sent say about the name it asked for: a
//! TLS ClientHello (SNI, ALPN) or an HTTP request head (`Host`). Pure: the
//! caller hands in the reassembled stream prefix.
use super::{http, tls};

/// The names an opening carried.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Opening {
    pub sni: Option<String>,
    pub host: Option<String>,
    pub alpn: Vec<String>,
    /// The hello carried `encrypted_client_hello`: its SNI may be a relay's
    /// public name rather than the destination.
    pub ech: bool,
}

/// Which parser refused the bytes, for `gatewatch_parse_errors_total{kind}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseFailure {
    Tls,
    Http,
    /// QUIC Initial packets that did not open or parse.
    Quic,
}

/// Every parser that can refuse bytes (`kind` of `gatewatch_parse_errors_total`).
pub const PARSE_KINDS: [&str; 4] = ["tls", "http", "dns", "quic"];

impl ParseFailure {
    pub fn kind(self) -> &'static str {
        match self {
            ParseFailure::Tls => "tls",
            ParseFailure::Http => "http",
            ParseFailure::Quic => "quic",
        }
    }
}

/// The verdict on a stream prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reading {
    /// A message has started but is not whole yet: wait for more bytes.
    Incomplete,
    /// Done: the names found (none for a protocol that carries none).
    Named(Opening),
    /// Done: the bytes claimed to be TLS or HTTP but did not parse.
    Malformed(ParseFailure),
}

/// Reads the opening of a client's stream.
pub fn read_opening(stream: &[u8]) -> Reading {
    if tls::looks_like_tls(stream) {
        return match tls::parse_client_hello(stream) {
            Ok(hello) => Reading::Named(Opening {
                sni: hello.sni,
                host: None,
                alpn: hello.alpn,
                ech: hello.ech,
            }),
            Err(tls::TlsError::Incomplete { .. }) => Reading::Incomplete,
            Err(_) => Reading::Malformed(ParseFailure::Tls),
        };
    }
    match http::parse_request(stream) {
        Ok(req) => Reading::Named(Opening {
            host: req.host,
            ..Opening::default()
        }),
        Err(http::HttpError::Incomplete) => Reading::Incomplete,
        Err(http::HttpError::NotHttp) => Reading::Named(Opening::default()),
        Err(http::HttpError::Malformed(_)) => Reading::Malformed(ParseFailure::Http),
    }
}

/// Reads what there is when time is up: a ClientHello still incomplete
/// (a lost segment, or longer than the capture) gives the extensions that
/// did arrive.
pub fn read_opening_at_deadline(stream: &[u8]) -> Reading {
    match read_opening(stream) {
        Reading::Incomplete => match tls::parse_client_hello_truncated(stream) {
            Ok(hello) => Reading::Named(Opening {
                sni: hello.sni,
                host: None,
                alpn: hello.alpn,
                ech: hello.ech,
            }),
            Err(_) => Reading::Named(Opening::default()),
        },
        done => done,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CURL_HELLO: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/tls_curl_api_openai.bin"
    ));

    #[test]
    fn a_whole_hello_is_named_by_its_sni_and_a_prefix_waits() {
        let Reading::Named(o) = read_opening(CURL_HELLO) else {
            panic!("a whole hello names the flow");
        };
        assert_eq!(o.sni.as_deref(), Some("api.openai.com"));
        assert_eq!(read_opening(&CURL_HELLO[..100]), Reading::Incomplete);
    }

    #[test]
    fn an_http_head_is_named_by_its_host_and_other_bytes_by_nothing() {
        let Reading::Named(o) = read_opening(b"GET / HTTP/1.1\r\nHost: api.openai.com\r\n\r\n")
        else {
            panic!("a whole head names the flow");
        };
        assert_eq!(o.host.as_deref(), Some("api.openai.com"));
        assert_eq!(
            read_opening(b"\x00\x01binary"),
            Reading::Named(Opening::default())
        );
    }

    #[test]
    fn at_the_deadline_a_cut_hello_still_gives_its_sni() {
        let cut = &CURL_HELLO[..CURL_HELLO.len() - 40];
        assert_eq!(read_opening(cut), Reading::Incomplete);
        let Reading::Named(o) = read_opening_at_deadline(cut) else {
            panic!("named at the deadline");
        };
        assert_eq!(o.sni.as_deref(), Some("api.openai.com"));
    }
}
