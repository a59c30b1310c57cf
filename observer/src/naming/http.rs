//! HTTP/1.x request head → method, Host, path.
//!
//! Input is the start of a connection's outbound byte stream, possibly only
//! its first segment. `httparse` reads the head; a head cut short still
//! names its host once the Host line is whole (or the request line carries
//! the host, as absolute-form and CONNECT do). Every input gives a value or
//! an error, never a panic.
//!
//! Choices:
//! - Only the standard methods (RFC 9110 and PATCH) count as HTTP: the
//!   first bytes of other protocols (TLS, the HTTP/2 `PRI *` preface,
//!   Redis, SMTP...) are [`HttpError::NotHttp`], not malformed HTTP.
//! - `path` drops the query string: it can carry credentials (`?key=` API
//!   keys, SAS tokens) and this value ends up in logs and metrics.
//! - Absolute-form (`GET http://host/path`, sent to forward proxies) takes
//!   the host from the URI, which RFC 9112 §3.2.2 says wins over Host;
//!   userinfo is dropped. CONNECT takes it from its `host:port` target and
//!   keeps that target as `path`.
use std::{borrow::Cow, mem::MaybeUninit, net::Ipv6Addr};

use super::host::normalize_host;

/// What a request head names. `method` and `path` borrow from the input
/// where they can: naming needs only the host, so they cost no allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: &'static str,
    /// Host header without its port, lower-case.
    pub host: Option<String>,
    pub path: Cow<'a, str>,
}

impl Request<'_> {
    fn into_owned(self) -> Request<'static> {
        Request {
            method: self.method,
            host: self.host,
            path: Cow::Owned(self.path.into_owned()),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HttpError {
    #[error("not an HTTP/1.x request")]
    NotHttp,
    #[error("request head incomplete")]
    Incomplete,
    #[error("malformed request: {0}")]
    Malformed(String),
}

/// Methods recognised as the start of an HTTP/1.x request.
const METHODS: [&str; 9] = [
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE",
];

/// Headers read from one head. The kernel copies 2 KiB, so more than this
/// many is no real client's request.
const MAX_HEADERS: usize = 128;

pub fn parse_request(bytes: &[u8]) -> Result<Request<'_>, HttpError> {
    let method = check_method(bytes)?;
    // Uninitialised: filling 128 empty headers first cost more than
    // parsing a typical head.
    let mut headers = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(bytes, &mut headers) {
        Ok(httparse::Status::Complete(_)) => build(method, &req, true),
        Ok(httparse::Status::Partial) => {
            if req.version.is_none() {
                return Err(HttpError::Incomplete); // request line cut short
            }
            // httparse says nothing about the headers of a partial head, so
            // end the head after its last whole line and read that instead.
            // A header value ends at CR, so a trailing CR closes its line.
            let mut head = match bytes.last() {
                Some(b'\r') => [bytes, b"\n"].concat(),
                _ => {
                    let end = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
                    bytes[..end].to_vec()
                }
            };
            head.extend_from_slice(b"\r\n");
            let mut headers = [const { MaybeUninit::uninit() }; MAX_HEADERS];
            let mut req = httparse::Request::new(&mut []);
            match req.parse_with_uninit_headers(&head, &mut headers) {
                Ok(httparse::Status::Complete(_)) => {
                    build(method, &req, false).map(Request::into_owned)
                }
                Ok(httparse::Status::Partial) => Err(HttpError::Incomplete),
                Err(e) => Err(HttpError::Malformed(e.to_string())),
            }
        }
        Err(e) => Err(HttpError::Malformed(e.to_string())),
    }
}

/// The bytes must start with a known method and a space, after the empty
/// lines RFC 9112 §2.2 lets a server skip. Returns that method.
fn check_method(bytes: &[u8]) -> Result<&'static str, HttpError> {
    let start = bytes
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(bytes.len());
    let line = &bytes[start..];
    let token_len = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
    let token = &line[..token_len];
    if token_len < line.len() {
        return METHODS
            .into_iter()
            .find(|m| m.as_bytes() == token)
            .ok_or(HttpError::NotHttp);
    }
    // No space yet: only a prefix of a method may still become one.
    if METHODS.iter().any(|m| m.as_bytes().starts_with(token)) {
        Err(HttpError::Incomplete)
    } else {
        Err(HttpError::NotHttp)
    }
}

/// `method` is the one `check_method` found, which httparse read too.
/// `complete`: the head was whole, so a missing Host is final.
fn build<'b>(
    method: &'static str,
    req: &httparse::Request<'_, 'b>,
    complete: bool,
) -> Result<Request<'b>, HttpError> {
    let Some(target) = req.path else {
        return Err(HttpError::Incomplete);
    };
    let (uri_host, path) = split_target(method, target)?;
    let host = match uri_host {
        Some(host) => Some(host),
        None => host_header(req.headers)?,
    };
    if host.is_none() && !complete {
        // The Host line may be in the part not captured yet.
        return Err(HttpError::Incomplete);
    }
    Ok(Request { method, host, path })
}

/// The host named by the request target, if any, and the path to report.
fn split_target<'b>(
    method: &str,
    target: &'b str,
) -> Result<(Option<String>, Cow<'b, str>), HttpError> {
    if method == "CONNECT" {
        return Ok((host_of(target)?, target.into()));
    }
    let scheme = |s: &str| {
        target
            .get(..s.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(s))
    };
    let after_scheme = if scheme("http://") {
        Some(&target[7..])
    } else if scheme("https://") {
        Some(&target[8..])
    } else {
        None
    };
    let Some(rest) = after_scheme else {
        return Ok((None, strip_query(target).into()));
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    // userinfo@ carries credentials: never kept.
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let host = host_of(authority)?;
    if host.is_none() {
        return Err(HttpError::Malformed("absolute URI without a host".into()));
    }
    let path = strip_query(path);
    let path = if path.is_empty() { "/" } else { path };
    Ok((host, path.into()))
}

fn strip_query(target: &str) -> &str {
    target.find(['?', '#']).map_or(target, |i| &target[..i])
}

fn host_header(headers: &[httparse::Header<'_>]) -> Result<Option<String>, HttpError> {
    let mut found: Option<&[u8]> = None;
    for header in headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("host"))
    {
        match found {
            None => found = Some(header.value),
            // RFC 9112 §3.2: a server must reject this, so no reading of it
            // is the one the server acts on.
            Some(first) if first != header.value => {
                return Err(HttpError::Malformed("conflicting Host headers".into()));
            }
            Some(_) => {}
        }
    }
    let Some(value) = found else {
        return Ok(None);
    };
    let value = std::str::from_utf8(value)
        .map_err(|_| HttpError::Malformed("Host header is not UTF-8".into()))?;
    host_of(value)
}

/// `host[:port]`, `[v6][:port]` → lower-case host without port or brackets;
/// `None` for an empty value (allowed when the target has no authority).
fn host_of(value: &str) -> Result<Option<String>, HttpError> {
    let bad = || HttpError::Malformed(format!("bad host {value:?}"));
    let value = value.trim_matches([' ', '\t']);
    if value.is_empty() {
        return Ok(None);
    }
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        let (inside, after) = rest.split_once(']').ok_or_else(bad)?;
        inside.parse::<Ipv6Addr>().map_err(|_| bad())?;
        let port = match after {
            "" => "",
            _ => after.strip_prefix(':').ok_or_else(bad)?,
        };
        (inside, port)
    } else if value.matches(':').count() > 1 {
        // A bare IPv6 address is not valid in Host, but its meaning is plain.
        value.parse::<Ipv6Addr>().map_err(|_| bad())?;
        (value, "")
    } else {
        value.split_once(':').unwrap_or((value, ""))
    };
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let host = normalize_host(host);
    // RFC 3986 reg-name characters, plus ':' for the IPv6 forms above.
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=:".contains(&b);
    if host.is_empty() || !host.bytes().all(allowed) {
        return Err(bad());
    }
    Ok(Some(host))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real request heads, captured offline by fixtures/gen_http.py from curl
    // 7.88 and Python's http.client talking to a loopback socket.
    const CURL_GET: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/http_curl_get_models.bin"
    ));
    const CURL_POST: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/http_curl_post_chat.bin"
    ));
    const CURL_PROXY: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/http_curl_forward_proxy.bin"
    ));
    const CURL_CONNECT: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/http_curl_connect_tunnel.bin"
    ));
    const PYTHON_IPV6: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/http_python_ipv6_host.bin"
    ));
    const TLS_HELLO: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/tls_curl_api_openai.bin"
    ));

    fn request<'a>(method: &'static str, host: Option<&str>, path: &'a str) -> Request<'a> {
        Request {
            method,
            host: host.map(Into::into),
            path: path.into(),
        }
    }

    #[test]
    fn curl_get_gives_method_host_path() {
        assert_eq!(
            parse_request(CURL_GET),
            Ok(request("GET", Some("api.openai.com"), "/v1/models"))
        );
    }

    #[test]
    fn curl_post_host_is_lowercased_port_and_query_dropped() {
        // Host: API.OpenAI.com:8080, target has ?api-version=..., a body follows.
        assert_eq!(
            parse_request(CURL_POST),
            Ok(request(
                "POST",
                Some("api.openai.com"),
                "/v1/chat/completions"
            ))
        );
    }

    #[test]
    fn python_ipv6_host_loses_brackets_and_port() {
        assert!(PYTHON_IPV6.windows(9).any(|w| w == b"Host: [::"));
        assert_eq!(
            parse_request(PYTHON_IPV6),
            Ok(request("GET", Some("::1"), "/v1/models"))
        );
    }

    #[test]
    fn forward_proxy_absolute_form_uses_uri_host() {
        assert_eq!(
            parse_request(CURL_PROXY),
            Ok(request("GET", Some("api.openai.com"), "/v1/models"))
        );
    }

    #[test]
    fn absolute_form_uri_wins_over_host_header() {
        let head = b"GET HTTPS://user:secret@API.OpenAI.com:443?x=1 HTTP/1.1\r\nHost: gateway.corp\r\n\r\n";
        assert_eq!(
            parse_request(head),
            Ok(request("GET", Some("api.openai.com"), "/"))
        );
    }

    #[test]
    fn connect_tunnel_names_its_target() {
        assert_eq!(
            parse_request(CURL_CONNECT),
            Ok(request(
                "CONNECT",
                Some("api.openai.com"),
                "api.openai.com:443"
            ))
        );
    }

    #[test]
    fn missing_host_in_complete_head_is_none() {
        assert_eq!(
            parse_request(b"GET /v1/models HTTP/1.0\r\nAccept: */*\r\n\r\n"),
            Ok(request("GET", None, "/v1/models"))
        );
        assert_eq!(
            parse_request(b"GET / HTTP/1.1\r\nHost:\r\n\r\n"),
            Ok(request("GET", None, "/"))
        );
    }

    #[test]
    fn head_cut_after_host_line_still_names_host() {
        let host_end = CURL_GET
            .windows(2)
            .enumerate()
            .filter(|(_, w)| w == b"\r\n")
            .nth(1)
            .map(|(i, _)| i)
            .unwrap();
        // From "Host: api.openai.com\r" to one byte short of the whole head.
        for cut in host_end + 1..CURL_GET.len() {
            assert_eq!(
                parse_request(&CURL_GET[..cut]),
                Ok(request("GET", Some("api.openai.com"), "/v1/models")),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn head_cut_before_host_is_complete_is_incomplete() {
        let host_end = CURL_GET.windows(4).position(|w| w == b".com").unwrap() + 4;
        for cut in 0..host_end {
            assert_eq!(
                parse_request(&CURL_GET[..cut]),
                Err(HttpError::Incomplete),
                "cut at {cut}: {:?}",
                String::from_utf8_lossy(&CURL_GET[..cut])
            );
        }
    }

    #[test]
    fn connect_cut_after_request_line_names_host() {
        assert_eq!(
            parse_request(b"CONNECT api.openai.com:443 HTTP/1.1\r\n"),
            Ok(request(
                "CONNECT",
                Some("api.openai.com"),
                "api.openai.com:443"
            ))
        );
    }

    #[test]
    fn leading_empty_lines_are_skipped() {
        assert_eq!(
            parse_request(b"\r\nGET / HTTP/1.1\r\nHost: a.example\r\n\r\n"),
            Ok(request("GET", Some("a.example"), "/"))
        );
    }

    #[test]
    fn host_forms_are_normalised() {
        for (value, want) in [
            ("api.openai.com", "api.openai.com"),
            ("API.OPENAI.COM.:443", "api.openai.com"),
            ("api.openai.com:", "api.openai.com"),
            ("10.0.0.1:8080", "10.0.0.1"),
            ("[::1]:4000", "::1"),
            ("[2001:DB8::1]", "2001:db8::1"),
            ("::1", "::1"),
            (" spaced.example ", "spaced.example"),
        ] {
            assert_eq!(host_of(value), Ok(Some(want.into())), "{value}");
        }
        assert_eq!(host_of(""), Ok(None));
    }

    #[test]
    fn host_with_repeated_trailing_dots_is_the_same_name() {
        // Found by fuzzing: only one dot was dropped, so `a.com..` became an
        // endpoint label apart from `a.com`.
        let head = b"GET /els HTTP/1.1\r\nHost:'api.op.ea88..\r\ncpt: */\r\n\r\n";
        assert_eq!(
            parse_request(head),
            Ok(request("GET", Some("'api.op.ea88"), "/els"))
        );
        assert_eq!(
            host_of("API.OpenAI.com..:443"),
            Ok(Some("api.openai.com".into()))
        );
        assert!(matches!(host_of("..."), Err(HttpError::Malformed(_))));
    }

    #[test]
    fn bad_hosts_are_malformed() {
        for value in [
            "api.openai.com:https",
            "[::1",
            "[::1]x",
            "[not-v6]:80",
            "a:b:c",
            ":443",
            "two words",
            "slash/host",
        ] {
            assert!(
                matches!(host_of(value), Err(HttpError::Malformed(_))),
                "{value}"
            );
        }
    }

    #[test]
    fn conflicting_host_headers_are_malformed() {
        let head = b"GET / HTTP/1.1\r\nHost: api.openai.com\r\nHost: gateway.corp\r\n\r\n";
        assert!(matches!(parse_request(head), Err(HttpError::Malformed(_))));
        let same = b"GET / HTTP/1.1\r\nHost: a.example\r\nhost: a.example\r\n\r\n";
        assert_eq!(
            parse_request(same),
            Ok(request("GET", Some("a.example"), "/"))
        );
    }

    #[test]
    fn tls_bytes_are_not_http() {
        assert_eq!(parse_request(TLS_HELLO), Err(HttpError::NotHttp));
        assert_eq!(parse_request(&TLS_HELLO[..1]), Err(HttpError::NotHttp));
    }

    #[test]
    fn other_protocols_are_not_http() {
        for bytes in [
            &b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..], // h2c prior knowledge
            b"EHLO mail.example\r\n",
            b"*1\r\n$4\r\nPING\r\n",
            b"get / HTTP/1.1\r\n\r\n", // methods are case-sensitive
            b"\x00\x01\x02\x03",
            b"SSH-2.0-OpenSSH_9.2\r\n",
        ] {
            assert_eq!(parse_request(bytes), Err(HttpError::NotHttp), "{bytes:?}");
        }
    }

    #[test]
    fn prefix_of_a_method_is_incomplete() {
        for bytes in [&b""[..], b"G", b"PO", b"CONNEC", b"\r\n"] {
            assert_eq!(
                parse_request(bytes),
                Err(HttpError::Incomplete),
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn broken_heads_are_malformed() {
        for bytes in [
            &b"GET / HTTP/2.0\r\nHost: a\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHo st: a\r\n\r\n",
            b"GET / FTP/1.1\r\n\r\n",
            b"GET /\x01 HTTP/1.1\r\n\r\n",
            b"GET http:///path HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\xffb\r\n\r\n",
        ] {
            assert!(
                matches!(parse_request(bytes), Err(HttpError::Malformed(_))),
                "{:?} → {:?}",
                String::from_utf8_lossy(bytes),
                parse_request(bytes)
            );
        }
    }

    #[test]
    fn too_many_headers_is_malformed_not_a_panic() {
        let mut head = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            head.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        assert!(matches!(parse_request(&head), Err(HttpError::Malformed(_))));
    }

    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn mutated_real_heads_never_panic() {
        let mut state = 0x9e37_79b9_7f4a_7c15;
        for bytes in [CURL_GET, CURL_POST, CURL_PROXY, CURL_CONNECT, PYTHON_IPV6] {
            for _ in 0..3000 {
                let mut v = bytes.to_vec();
                for _ in 0..1 + xorshift(&mut state) % 4 {
                    let at = (xorshift(&mut state) as usize) % v.len();
                    // Mostly interesting bytes: separators and brackets.
                    let pick = xorshift(&mut state);
                    v[at] = match pick % 4 {
                        0 => b"[]:@/?# \r\n."[(pick >> 8) as usize % 11],
                        _ => (pick >> 16) as u8,
                    };
                }
                let cut = (xorshift(&mut state) as usize) % (v.len() + 1);
                let _ = parse_request(&v);
                let _ = parse_request(&v[..cut]);
            }
        }
    }
}
