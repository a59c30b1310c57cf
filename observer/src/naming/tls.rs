//! TLS ClientHello → SNI, ALPN, ECH.
//!
//! Input is the start of a connection's outbound byte stream as the kernel
//! copied it: possibly cut short, possibly a ClientHello fragmented over
//! several handshake records. Records are reassembled here; the message and
//! its extensions are decoded with `tls-parser`. Every input, however
//! broken, gives a value or an error, never a panic.
//!
//! Limits:
//! - Only the first handshake message is read, and it must be a ClientHello.
//! - `ech` is the presence of the `encrypted_client_hello` extension. The
//!   outer SNI is then the provider's public name, not the real destination,
//!   and GREASE ECH (sent by Chrome when it has no ECH config) looks the same
//!   by design.
//! - SSLv2-style hellos are not TLS handshake records ([`TlsError::NotHandshake`]).
use tls_parser::{
    SNIType, TlsExtension, nom, parse_tls_extension_alpn_content, parse_tls_extension_sni_content,
    parse_tls_extension_unknown, parse_tls_handshake_client_hello, parse_tls_record_header,
};

use super::host::normalize_host;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientHello {
    /// `server_name` host name, lower-case, without a trailing dot.
    pub sni: Option<String>,
    /// ALPN protocol ids in the client's order (non-UTF-8 bytes replaced).
    pub alpn: Vec<String>,
    /// The `encrypted_client_hello` extension is present.
    pub ech: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TlsError {
    #[error("not a TLS handshake record")]
    NotHandshake,
    /// `need` is exact when the rest of the message arrives in full-size
    /// records (always so for the usual single-record hello), otherwise a
    /// lower bound: call again with more bytes.
    #[error("ClientHello incomplete: have {have} of {need} bytes")]
    Incomplete { have: usize, need: usize },
    #[error("malformed ClientHello: {0}")]
    Malformed(String),
}

const CONTENT_HANDSHAKE: u8 = 0x16;
const HANDSHAKE_CLIENT_HELLO: u8 = 0x01;
const RECORD_HEADER_LEN: usize = 5;
const HANDSHAKE_HEADER_LEN: usize = 4;
/// Largest plaintext record payload (RFC 8446 §5.1).
const MAX_FRAGMENT_LEN: usize = 1 << 14;
/// Largest body the ClientHello's own length prefixes allow: version, random,
/// session id, cipher suites, compression methods, extensions. Anything
/// announcing more is not a ClientHello.
const MAX_CLIENT_HELLO_LEN: usize = 2 + 32 + (1 + 32) + (2 + 0xfffe) + (1 + 0xff) + (2 + 0xffff);

const EXT_SERVER_NAME: u16 = 0;
const EXT_ALPN: u16 = 16;
const EXT_ENCRYPTED_CLIENT_HELLO: u16 = 0xfe0d;

/// True when `bytes` start like a TLS record carrying a ClientHello: judged
/// on the bytes present, so a short prefix of one still counts.
pub fn looks_like_tls(bytes: &[u8]) -> bool {
    bytes.len() >= 2 && prefix_fits(bytes)
}

/// Every byte present agrees with a ClientHello record header (an empty
/// input agrees too: nothing has been said yet).
fn prefix_fits(bytes: &[u8]) -> bool {
    bytes.first().is_none_or(|&t| t == CONTENT_HANDSHAKE)
        && bytes.get(1).is_none_or(|&major| major == 0x03)
        // SSL 3.0 to TLS 1.3 record versions.
        && bytes.get(2).is_none_or(|&minor| minor <= 0x04)
        && bytes.get(5).is_none_or(|&t| t == HANDSHAKE_CLIENT_HELLO)
}

/// Stream bytes (record headers included) that the whole first handshake
/// message takes, as announced by the records seen so far; `None` when the
/// bytes are not a handshake or too short to announce a length. When the
/// message continues past the records present, the rest is counted as
/// full-size records, so the answer is then a lower bound.
pub fn needed_len(bytes: &[u8]) -> Option<usize> {
    match reassemble(bytes) {
        Ok(Reassembled::Complete { stream_len, .. }) => Some(stream_len),
        Ok(Reassembled::Partial {
            need,
            length_known: true,
            ..
        }) => Some(need),
        _ => None,
    }
}

/// Parses the ClientHello at the start of `bytes`, which must hold all of it.
pub fn parse_client_hello(bytes: &[u8]) -> Result<ClientHello, TlsError> {
    let message = match reassemble(bytes)? {
        Reassembled::Complete { message, .. } => message,
        Reassembled::Partial { need, .. } => {
            return Err(TlsError::Incomplete {
                have: bytes.len(),
                need,
            });
        }
    };
    let body = message.get(HANDSHAKE_HEADER_LEN..).unwrap_or_default();
    let (rest, hello) = parse_tls_handshake_client_hello(body).map_err(|e| malformed(&e))?;
    // tls-parser treats an extensions block that overruns the message as
    // absent; here the message is whole, so leftovers mean a bad length.
    if !rest.is_empty() {
        return Err(TlsError::Malformed(format!(
            "{} bytes after the ClientHello fields",
            rest.len()
        )));
    }
    let mut out = ClientHello::default();
    scan_extensions(hello.ext.unwrap_or_default(), Mode::Strict, &mut out)?;
    Ok(out)
}

/// Best effort for a ClientHello the capture cut short (the kernel copies at
/// most 2 KiB, and a hello with a post-quantum key share plus a resumption
/// ticket can be longer): reads the extensions that lie whole within `bytes`.
/// An extension past the cut is missed, so a `None` SNI or empty ALPN means
/// "not seen", not "not sent". A complete hello gives the same answer as
/// [`parse_client_hello`]; a cut before the extensions gives `Incomplete`.
pub fn parse_client_hello_truncated(bytes: &[u8]) -> Result<ClientHello, TlsError> {
    let (message, need) = match reassemble(bytes)? {
        Reassembled::Complete { .. } => return parse_client_hello(bytes),
        Reassembled::Partial { message, need, .. } => (message, need),
    };
    let incomplete = TlsError::Incomplete {
        have: bytes.len(),
        need,
    };
    let body = message.get(HANDSHAKE_HEADER_LEN..).unwrap_or_default();
    let extensions = extensions_block(body).ok_or(incomplete)?;
    let mut out = ClientHello::default();
    scan_extensions(extensions, Mode::Truncated, &mut out)?;
    Ok(out)
}

enum Reassembled {
    /// `message` is the whole handshake message (header included), which
    /// ends `stream_len` bytes into the stream.
    Complete { message: Vec<u8>, stream_len: usize },
    /// The stream ends first: `message` is what is present and `need` the
    /// stream length it takes (see [`TlsError::Incomplete`]). `length_known`
    /// once the handshake header has been seen.
    Partial {
        message: Vec<u8>,
        need: usize,
        length_known: bool,
    },
}

/// Concatenates handshake record payloads until the first handshake message
/// is whole or the bytes run out.
fn reassemble(bytes: &[u8]) -> Result<Reassembled, TlsError> {
    let mut message = Vec::new();
    let mut pos = 0;
    loop {
        let total = message_len(&message)?;
        if let Some(total) = total
            && message.len() >= total
        {
            // Whatever follows in the last record is not part of it.
            let stream_len = pos - (message.len() - total);
            message.truncate(total);
            return Ok(Reassembled::Complete {
                message,
                stream_len,
            });
        }
        let rest = &bytes[pos..];
        let header = match parse_tls_record_header(rest) {
            Ok((_, header)) => header,
            Err(nom::Err::Incomplete(_)) if pos == 0 && !prefix_fits(rest) => {
                return Err(TlsError::NotHandshake);
            }
            // The bytes end at (or within the header of) the next record.
            Err(_) => {
                let missing = total.unwrap_or(HANDSHAKE_HEADER_LEN) - message.len();
                return Ok(Reassembled::Partial {
                    message,
                    need: pos + in_new_records(missing),
                    length_known: total.is_some(),
                });
            }
        };
        let version_ok = header.version.0 >> 8 == 0x03 && header.version.0 & 0xff <= 0x04;
        if u8::from(header.record_type) != CONTENT_HANDSHAKE || !version_ok {
            if pos == 0 {
                return Err(TlsError::NotHandshake);
            }
            // Nothing else may interleave with a fragmented handshake message.
            return Err(TlsError::Malformed(format!(
                "record type {:#04x} version {:#06x} inside the ClientHello",
                u8::from(header.record_type),
                header.version.0
            )));
        }
        let record_len = usize::from(header.len);
        if record_len == 0 || record_len > MAX_FRAGMENT_LEN {
            return Err(TlsError::Malformed(format!(
                "handshake record of {record_len} bytes"
            )));
        }
        pos += RECORD_HEADER_LEN;
        let present = record_len.min(bytes.len() - pos);
        message.extend_from_slice(&bytes[pos..pos + present]);
        pos += present;
        if present < record_len {
            // Cut inside this record: check what it announced so far.
            let total = message_len(&message)?;
            if total.is_some_and(|total| message.len() >= total) {
                // The message ended before the cut: what the rest of the
                // record holds is not part of it (the loop's top returns it).
                continue;
            }
            let missing = total
                .unwrap_or(HANDSHAKE_HEADER_LEN)
                .saturating_sub(message.len());
            let in_record = missing.min(record_len - present);
            let need = pos + in_record + in_new_records(missing - in_record);
            return Ok(Reassembled::Partial {
                message,
                need,
                length_known: total.is_some(),
            });
        }
    }
}

/// Length of the handshake message (header included) once its header is
/// present; it must announce a ClientHello of a possible size.
fn message_len(message: &[u8]) -> Result<Option<usize>, TlsError> {
    if let Some(&kind) = message.first()
        && kind != HANDSHAKE_CLIENT_HELLO
    {
        return Err(TlsError::Malformed(format!(
            "handshake type {kind} is not ClientHello"
        )));
    }
    let Some(&[_, a, b, c]) = message.get(..HANDSHAKE_HEADER_LEN) else {
        return Ok(None);
    };
    let len = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
    if len > MAX_CLIENT_HELLO_LEN {
        return Err(TlsError::Malformed(format!(
            "ClientHello of {len} bytes is longer than its fields allow"
        )));
    }
    Ok(Some(HANDSHAKE_HEADER_LEN + len))
}

/// Stream bytes that `missing` message bytes take in new full-size records.
fn in_new_records(missing: usize) -> usize {
    missing + missing.div_ceil(MAX_FRAGMENT_LEN) * RECORD_HEADER_LEN
}

/// The extensions present in a ClientHello body that may be cut short, or
/// `None` when the cut comes before the extensions start.
fn extensions_block(body: &[u8]) -> Option<&[u8]> {
    // version, random
    let mut pos = 2 + 32;
    // session id, cipher suites, compression methods
    let sid_len = usize::from(*body.get(pos)?);
    pos += 1 + sid_len;
    let suites_len = usize::from(u16::from_be_bytes([*body.get(pos)?, *body.get(pos + 1)?]));
    pos += 2 + suites_len;
    let comp_len = usize::from(*body.get(pos)?);
    pos += 1 + comp_len;
    // The block's own length prefix is ignored: the cut comes before its end.
    body.get(pos + 2..)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The block is whole: any framing error is an error.
    Strict,
    /// The block may stop anywhere: stop at the first extension cut short.
    Truncated,
}

fn scan_extensions(mut block: &[u8], mode: Mode, out: &mut ClientHello) -> Result<(), TlsError> {
    let mut seen = [false; 3];
    while !block.is_empty() {
        let (rest, ext) = match parse_tls_extension_unknown(block) {
            Ok(parsed) => parsed,
            Err(nom::Err::Incomplete(_)) if mode == Mode::Truncated => return Ok(()),
            Err(e) => return Err(malformed(&e)),
        };
        block = rest;
        let TlsExtension::Unknown(kind, data) = ext else {
            continue;
        };
        let slot = match kind.0 {
            EXT_SERVER_NAME => 0,
            EXT_ALPN => 1,
            EXT_ENCRYPTED_CLIENT_HELLO => 2,
            _ => continue,
        };
        // RFC 8446 §4.2: a server must reject a repeated extension, so a
        // hello with two SNIs never reaches anyone as we would read it.
        if std::mem::replace(&mut seen[slot], true) {
            return Err(TlsError::Malformed(format!(
                "extension {:#06x} repeated",
                kind.0
            )));
        }
        match kind.0 {
            EXT_SERVER_NAME => out.sni = server_name(data)?,
            EXT_ALPN => out.alpn = alpn(data)?,
            _ => out.ech = true,
        }
    }
    Ok(())
}

fn server_name(data: &[u8]) -> Result<Option<String>, TlsError> {
    let names = match parse_tls_extension_sni_content(data) {
        Ok((_, TlsExtension::SNI(names))) => names,
        Ok(_) => return Ok(None),
        Err(e) => return Err(malformed(&e)),
    };
    let Some((_, raw)) = names.into_iter().find(|(t, _)| *t == SNIType::HostName) else {
        return Ok(None);
    };
    // RFC 6066: an ASCII host name; anything else is not worth trusting.
    if raw.is_empty() || !raw.iter().all(|b| b.is_ascii_graphic()) {
        return Err(TlsError::Malformed("server_name is not a host name".into()));
    }
    let name = normalize_host(&String::from_utf8_lossy(raw));
    if name.is_empty() {
        return Err(TlsError::Malformed("server_name is not a host name".into()));
    }
    Ok(Some(name))
}

fn alpn(data: &[u8]) -> Result<Vec<String>, TlsError> {
    match parse_tls_extension_alpn_content(data) {
        Ok((_, TlsExtension::ALPN(ids))) => Ok(ids
            .into_iter()
            .map(|id| String::from_utf8_lossy(id).into_owned())
            .collect()),
        Ok(_) => Ok(Vec::new()),
        Err(e) => Err(malformed(&e)),
    }
}

fn malformed(e: &nom::Err<nom::error::Error<&[u8]>>) -> TlsError {
    // The message is whole by now, so even "incomplete" means a length
    // field that overruns its container.
    let what = match e {
        nom::Err::Incomplete(_) => "a length overruns its container".to_owned(),
        nom::Err::Error(e) | nom::Err::Failure(e) => {
            format!("{:?} at {} bytes before the end", e.code, e.input.len())
        }
    };
    TlsError::Malformed(what)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real ClientHellos, made offline by fixtures/gen_tls.py: Python's ssl
    // module into a memory BIO, and curl 7.88 against a loopback socket.
    const PYTHON_API_OPENAI: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/tls_python_api_openai.bin"
    ));
    const PYTHON_IP_NO_SNI: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/tls_python_ip_no_sni.bin"
    ));
    const CURL_API_OPENAI: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/tls_curl_api_openai.bin"
    ));
    const CURL_IP_NO_SNI: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/tls_curl_ip_no_sni.bin"
    ));
    const REAL: [&[u8]; 4] = [
        PYTHON_API_OPENAI,
        PYTHON_IP_NO_SNI,
        CURL_API_OPENAI,
        CURL_IP_NO_SNI,
    ];

    /// The handshake message of a single-record fixture.
    fn message_of(record: &[u8]) -> &[u8] {
        &record[RECORD_HEADER_LEN..]
    }

    /// Frames `message` into handshake records of at most `size` bytes.
    fn frame(message: &[u8], size: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in message.chunks(size) {
            out.extend_from_slice(&[CONTENT_HANDSHAKE, 0x03, 0x01]);
            out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
            out.extend_from_slice(chunk);
        }
        out
    }

    /// A minimal ClientHello message with the given extensions.
    fn hello_message(extensions: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut body = vec![0x03, 0x03];
        body.extend_from_slice(&[0x11; 32]); // random
        body.push(0); // session id
        body.extend_from_slice(&[0x00, 0x02, 0x13, 0x01]); // TLS_AES_128_GCM_SHA256
        body.extend_from_slice(&[0x01, 0x00]); // null compression
        let mut block = Vec::new();
        for (kind, data) in extensions {
            block.extend_from_slice(&kind.to_be_bytes());
            block.extend_from_slice(&(data.len() as u16).to_be_bytes());
            block.extend_from_slice(data);
        }
        body.extend_from_slice(&(block.len() as u16).to_be_bytes());
        body.extend_from_slice(&block);
        let mut message = vec![HANDSHAKE_CLIENT_HELLO];
        message.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        message.extend_from_slice(&body);
        message
    }

    fn sni_ext(name: &[u8]) -> (u16, Vec<u8>) {
        let mut entry = vec![0u8];
        entry.extend_from_slice(&(name.len() as u16).to_be_bytes());
        entry.extend_from_slice(name);
        let mut data = (entry.len() as u16).to_be_bytes().to_vec();
        data.extend_from_slice(&entry);
        (EXT_SERVER_NAME, data)
    }

    fn alpn_ext(ids: &[&str]) -> (u16, Vec<u8>) {
        let mut list = Vec::new();
        for id in ids {
            list.push(id.len() as u8);
            list.extend_from_slice(id.as_bytes());
        }
        let mut data = (list.len() as u16).to_be_bytes().to_vec();
        data.extend_from_slice(&list);
        (EXT_ALPN, data)
    }

    #[test]
    fn python_hello_gives_sni_and_alpn() {
        let hello = parse_client_hello(PYTHON_API_OPENAI).unwrap();
        assert_eq!(hello.sni.as_deref(), Some("api.openai.com"));
        assert_eq!(hello.alpn, ["h2", "http/1.1"]);
        assert!(!hello.ech);
    }

    #[test]
    fn curl_hello_gives_lowercase_sni_and_alpn() {
        // The URL said API.OpenAI.com.
        let hello = parse_client_hello(CURL_API_OPENAI).unwrap();
        assert_eq!(hello.sni.as_deref(), Some("api.openai.com"));
        assert_eq!(hello.alpn, ["h2", "http/1.1"]);
        assert!(!hello.ech);
    }

    #[test]
    fn connection_by_ip_address_has_no_sni() {
        let python = parse_client_hello(PYTHON_IP_NO_SNI).unwrap();
        assert_eq!(python.sni, None);
        assert!(python.alpn.is_empty());
        let curl = parse_client_hello(CURL_IP_NO_SNI).unwrap();
        assert_eq!(curl.sni, None);
        assert_eq!(curl.alpn, ["h2", "http/1.1"]);
    }

    #[test]
    fn real_hellos_look_like_tls_and_announce_their_length() {
        for bytes in REAL {
            assert!(looks_like_tls(bytes));
            assert!(looks_like_tls(&bytes[..2]));
            assert_eq!(needed_len(bytes), Some(bytes.len()));
            assert_eq!(needed_len(&bytes[..9]), Some(bytes.len()));
        }
    }

    #[test]
    fn needed_len_is_unknown_before_the_handshake_header() {
        assert_eq!(needed_len(&PYTHON_API_OPENAI[..8]), None);
        assert_eq!(needed_len(&PYTHON_API_OPENAI[..3]), None);
        assert_eq!(needed_len(b""), None);
        assert_eq!(needed_len(b"GET / HTTP/1.1\r\n"), None);
    }

    #[test]
    fn every_truncation_is_incomplete_with_the_full_length_needed() {
        let full = PYTHON_API_OPENAI.len();
        for cut in 9..full {
            assert_eq!(
                parse_client_hello(&PYTHON_API_OPENAI[..cut]),
                Err(TlsError::Incomplete {
                    have: cut,
                    need: full
                }),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn truncation_before_the_length_is_incomplete_with_a_lower_bound() {
        for cut in 1..9 {
            match parse_client_hello(&PYTHON_API_OPENAI[..cut]) {
                Err(TlsError::Incomplete { have, need }) => {
                    assert_eq!(have, cut);
                    assert!(need > cut && need <= PYTHON_API_OPENAI.len(), "cut {cut}");
                }
                other => panic!("cut {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn hello_fragmented_over_records_is_reassembled() {
        for size in [1, 7, 100, 300] {
            let stream = frame(message_of(CURL_API_OPENAI), size);
            assert_eq!(needed_len(&stream), Some(stream.len()), "size {size}");
            let hello = parse_client_hello(&stream).unwrap();
            assert_eq!(hello.sni.as_deref(), Some("api.openai.com"));
            assert_eq!(hello.alpn, ["h2", "http/1.1"]);
        }
    }

    #[test]
    fn fragmented_hello_cut_between_records_needs_the_rest() {
        let message = message_of(PYTHON_API_OPENAI);
        let stream = frame(message, 300);
        let first_record = RECORD_HEADER_LEN + 300;
        // The rest of the message (212 bytes) fits one more record.
        let want = first_record + RECORD_HEADER_LEN + (message.len() - 300);
        assert_eq!(want, stream.len());
        assert_eq!(needed_len(&stream[..first_record]), Some(want));
        assert_eq!(
            parse_client_hello(&stream[..first_record + 2]),
            Err(TlsError::Incomplete {
                have: first_record + 2,
                need: want
            })
        );
    }

    #[test]
    fn bytes_after_the_hello_are_ignored() {
        let mut stream = CURL_API_OPENAI.to_vec();
        // TLS 1.3 early data or a second flight would follow.
        stream.extend_from_slice(&[0x17, 0x03, 0x03, 0x00, 0x02, 0xaa, 0xbb]);
        assert_eq!(needed_len(&stream), Some(CURL_API_OPENAI.len()));
        assert_eq!(
            parse_client_hello(&stream).unwrap(),
            parse_client_hello(CURL_API_OPENAI).unwrap()
        );
    }

    #[test]
    fn sni_is_lowercased_without_trailing_dot() {
        let stream = frame(&hello_message(&[sni_ext(b"API.OpenAI.COM.")]), 512);
        let hello = parse_client_hello(&stream).unwrap();
        assert_eq!(hello.sni.as_deref(), Some("api.openai.com"));
        assert!(hello.alpn.is_empty());
    }

    #[test]
    fn sni_with_repeated_trailing_dots_is_the_same_name() {
        // Found by fuzzing: only one dot was dropped, so `api.openai.com..`
        // became an endpoint label apart from `api.openai.com`.
        let stream = frame(&hello_message(&[sni_ext(b"API.OpenAI.com..")]), 512);
        let hello = parse_client_hello(&stream).unwrap();
        assert_eq!(hello.sni.as_deref(), Some("api.openai.com"));
        let stream = frame(&hello_message(&[sni_ext(b"...")]), 512);
        assert!(matches!(
            parse_client_hello(&stream),
            Err(TlsError::Malformed(_))
        ));
    }

    #[test]
    fn hello_whole_before_a_cut_in_its_record_is_not_incomplete() {
        // Found by fuzzing: a record announcing more than the hello, cut
        // after the hello, gave `Incomplete` with `need` equal to `have`,
        // so the flow waited out `name_wait` for bytes it did not need.
        let message = hello_message(&[sni_ext(b"api.openai.com")]);
        let mut stream = vec![CONTENT_HANDSHAKE, 0x03, 0x01];
        stream.extend_from_slice(&((message.len() + 100) as u16).to_be_bytes());
        stream.extend_from_slice(&message);
        stream.extend_from_slice(&[0; 10]); // the record goes on past the cut
        assert_eq!(needed_len(&stream), Some(RECORD_HEADER_LEN + message.len()));
        let hello = parse_client_hello(&stream).unwrap();
        assert_eq!(hello.sni.as_deref(), Some("api.openai.com"));
        assert_eq!(parse_client_hello_truncated(&stream), Ok(hello));
        // The fuzzer's case, minimised: a whole 1-byte body in a cut record.
        let cut = b"\x16\x03\x01\x00\x10\x01\x00\x00\x01\x03";
        assert!(matches!(
            parse_client_hello(cut),
            Err(TlsError::Malformed(_))
        ));
    }

    #[test]
    fn ech_extension_is_flagged() {
        let ech = (
            EXT_ENCRYPTED_CLIENT_HELLO,
            vec![0x00, 0x00, 0x01, 0x00, 0x01],
        );
        let stream = frame(
            &hello_message(&[sni_ext(b"cloudflare-ech.com"), ech, alpn_ext(&["h2"])]),
            512,
        );
        let hello = parse_client_hello(&stream).unwrap();
        assert!(hello.ech);
        assert_eq!(hello.sni.as_deref(), Some("cloudflare-ech.com"));
        assert_eq!(hello.alpn, ["h2"]);
    }

    #[test]
    fn hello_without_extensions_parses_empty() {
        let mut message = hello_message(&[]);
        // Drop the empty block's length prefix too: extensions are optional.
        message.truncate(message.len() - 2);
        message[3] -= 2;
        let hello = parse_client_hello(&frame(&message, 512)).unwrap();
        assert_eq!(hello, ClientHello::default());
    }

    #[test]
    fn non_handshake_bytes_are_not_handshake() {
        for bytes in [
            &b"GET / HTTP/1.1\r\nHost: api.openai.com\r\n\r\n"[..],
            b"\x17\x03\x03\x00\x10",             // application data
            b"\x16\x02\x00\x00\x10",             // not SSL3/TLS
            b"\x16\x03\x09\x00\x10",             // unknown record version
            b"\x80\x2e\x01\x03\x01\x00\x15",     // SSLv2-style hello
            b"\x16\x03\x01\x00\x10\x02\x00\x00", // a ServerHello
            b"\x00",
        ] {
            assert!(!looks_like_tls(bytes), "{bytes:?}");
            assert!(needed_len(bytes).is_none(), "{bytes:?}");
            assert!(parse_client_hello(bytes).is_err(), "{bytes:?}");
        }
        assert_eq!(
            parse_client_hello(b"GET / HTTP/1.1\r\n"),
            Err(TlsError::NotHandshake)
        );
        assert_eq!(
            parse_client_hello(b"\x17\x03\x03\x00\x10"),
            Err(TlsError::NotHandshake)
        );
        assert_eq!(parse_client_hello(b"G"), Err(TlsError::NotHandshake));
    }

    #[test]
    fn handshake_record_without_client_hello_is_malformed() {
        let server_hello = b"\x16\x03\x03\x00\x08\x02\x00\x00\x04\x03\x03\x00\x00";
        assert!(matches!(
            parse_client_hello(server_hello),
            Err(TlsError::Malformed(_))
        ));
    }

    #[test]
    fn bad_lengths_are_malformed() {
        // Empty record, oversized record, absurd handshake length.
        for bytes in [
            &b"\x16\x03\x01\x00\x00"[..],
            b"\x16\x03\x01\x48\x01\x01",
            b"\x16\x03\x01\x00\x04\x01\xff\xff\xff",
        ] {
            assert!(
                matches!(parse_client_hello(bytes), Err(TlsError::Malformed(_))),
                "{bytes:?}"
            );
        }
        // Extensions block longer than the message.
        let mut message = message_of(PYTHON_API_OPENAI).to_vec();
        let body_len = message.len() - HANDSHAKE_HEADER_LEN;
        let block_len = extensions_block(&message[HANDSHAKE_HEADER_LEN..])
            .unwrap()
            .len();
        let ext_len_at = HANDSHAKE_HEADER_LEN + body_len - block_len - 2;
        message[ext_len_at] = 0xff;
        assert!(matches!(
            parse_client_hello(&frame(&message, 1000)),
            Err(TlsError::Malformed(_))
        ));
    }

    #[test]
    fn other_record_inside_a_fragmented_hello_is_malformed() {
        let mut stream = frame(&message_of(PYTHON_API_OPENAI)[..100], 100);
        stream.extend_from_slice(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]); // alert
        assert!(matches!(
            parse_client_hello(&stream),
            Err(TlsError::Malformed(_))
        ));
    }

    #[test]
    fn repeated_sni_is_malformed() {
        let stream = frame(
            &hello_message(&[sni_ext(b"api.openai.com"), sni_ext(b"gateway.corp")]),
            512,
        );
        assert!(matches!(
            parse_client_hello(&stream),
            Err(TlsError::Malformed(_))
        ));
    }

    #[test]
    fn non_hostname_sni_is_malformed() {
        for name in [&b""[..], b"api openai", b"api.\xffopenai.com", b"."] {
            let stream = frame(&hello_message(&[sni_ext(name)]), 512);
            assert!(
                matches!(parse_client_hello(&stream), Err(TlsError::Malformed(_))),
                "{name:?}"
            );
        }
    }

    #[test]
    fn truncated_parse_reads_whole_extensions_before_the_cut() {
        let message = hello_message(&[
            sni_ext(b"api.openai.com"),
            (0x0033, vec![0; 1500]), // a large key share
            alpn_ext(&["h2"]),
        ]);
        let stream = frame(&message, 4096);
        let cut = &stream[..1024];
        assert!(matches!(
            parse_client_hello(cut),
            Err(TlsError::Incomplete { .. })
        ));
        let hello = parse_client_hello_truncated(cut).unwrap();
        assert_eq!(hello.sni.as_deref(), Some("api.openai.com"));
        assert!(hello.alpn.is_empty(), "ALPN lies past the cut");
        assert_eq!(
            parse_client_hello_truncated(&stream),
            parse_client_hello(&stream)
        );
    }

    #[test]
    fn truncated_parse_of_real_hello_finds_sni_early() {
        // OpenSSL puts server_name first.
        let hello = parse_client_hello_truncated(&PYTHON_API_OPENAI[..200]).unwrap();
        assert_eq!(hello.sni.as_deref(), Some("api.openai.com"));
    }

    #[test]
    fn truncated_parse_before_extensions_is_incomplete() {
        for cut in [0, 3, 9, 40, 100] {
            assert!(
                matches!(
                    parse_client_hello_truncated(&PYTHON_API_OPENAI[..cut]),
                    Err(TlsError::Incomplete { .. }) | Err(TlsError::NotHandshake)
                ),
                "cut {cut}"
            );
        }
    }

    /// A deterministic byte source for the no-panic tests (no rand crate).
    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn mutated_real_hellos_never_panic() {
        let mut state = 0x9e37_79b9_7f4a_7c15;
        for bytes in REAL {
            for _ in 0..2000 {
                let mut v = bytes.to_vec();
                for _ in 0..1 + xorshift(&mut state) % 4 {
                    let at = (xorshift(&mut state) as usize) % v.len();
                    v[at] = xorshift(&mut state) as u8;
                }
                let cut = (xorshift(&mut state) as usize) % (v.len() + 1);
                for input in [&v[..], &v[..cut]] {
                    let _ = looks_like_tls(input);
                    let _ = needed_len(input);
                    let _ = parse_client_hello(input);
                    let _ = parse_client_hello_truncated(input);
                }
            }
        }
    }

    #[test]
    fn random_bytes_behind_a_tls_header_never_panic() {
        let mut state = 0x2545_f491_4f6c_dd1d;
        for _ in 0..5000 {
            let len = (xorshift(&mut state) % 600) as usize;
            let mut v: Vec<u8> = (0..len).map(|_| xorshift(&mut state) as u8).collect();
            if v.len() >= 6 {
                v[..3].copy_from_slice(&[CONTENT_HANDSHAKE, 0x03, 0x01]);
                v[5] = HANDSHAKE_CLIENT_HELLO;
            }
            let _ = needed_len(&v);
            let _ = parse_client_hello(&v);
            let _ = parse_client_hello_truncated(&v);
        }
    }
}
