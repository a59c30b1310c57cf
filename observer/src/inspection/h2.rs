//! HTTP/2 on one connection: frames from both directions, header blocks
//! decoded with HPACK (each direction's decoder must see every block, in
//! order, from the connection's start), and per stream a request paired
//! with its response. Only what a request record needs is kept; a stream
//! past `STREAMS_MAX` or a connection with lost bytes is given up.
use std::collections::HashMap;

use loona_hpack::Decoder;

use super::{
    http1::{Encoding, Side},
    request::{Open, Request},
    response::ResponseReader,
};

/// What a client sends first (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Largest frame buffered whole (a header block's frames are; DATA is
/// handed on as it arrives). RFC 9113's default maximum is 16 KiB; peers
/// may allow up to 16 MiB, which a reader of metadata does not follow.
const FRAME_MAX: usize = 1 << 20;
/// Largest header block (HEADERS plus CONTINUATION) decoded.
const HEADER_BLOCK_MAX: usize = 256 * 1024;
/// Streams followed at once on one connection.
const STREAMS_MAX: usize = 256;

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const PUSH_PROMISE: u8 = 5;
const CONTINUATION: u8 = 9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

/// One stream's request and, once its head came, its response.
struct H2Stream {
    open: Open,
    response: Option<ResponseReader>,
}

/// One direction: frames being reassembled and its header blocks.
struct Direction {
    buf: Vec<u8>,
    /// The client's preface is still to be skipped (bytes left).
    preface: usize,
    hpack: Decoder<'static>,
    /// A header block continued in CONTINUATION frames: its stream, its
    /// HEADERS flags and the fragments so far.
    block: Option<(u32, u8, Vec<u8>)>,
}

impl Direction {
    fn new(side: Side) -> Self {
        Self {
            buf: Vec::new(),
            preface: if side == Side::Client {
                PREFACE.len()
            } else {
                0
            },
            hpack: Decoder::new(),
            block: None,
        }
    }
}

pub struct H2 {
    out: Direction,
    inn: Direction,
    streams: HashMap<u32, H2Stream>,
    broken: bool,
}

impl Default for H2 {
    fn default() -> Self {
        Self::new()
    }
}

/// A frame's header fields.
struct Frame<'a> {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: &'a [u8],
}

impl H2 {
    pub fn new() -> Self {
        Self {
            out: Direction::new(Side::Client),
            inn: Direction::new(Side::Server),
            streams: HashMap::new(),
            broken: false,
        }
    }

    pub fn is_readable(&self) -> bool {
        !self.broken
    }

    /// Bytes of one direction; `skipped` bytes after them were not seen,
    /// which loses the HPACK state: the connection is given up.
    pub fn push(
        &mut self,
        side: Side,
        data: &[u8],
        skipped: u64,
        ts_ns: u64,
        done: &mut Vec<Request>,
    ) {
        if self.broken {
            return;
        }
        let dir = match side {
            Side::Client => &mut self.out,
            Side::Server => &mut self.inn,
        };
        let mut data = data;
        if dir.preface > 0 {
            let n = dir.preface.min(data.len());
            let at = PREFACE.len() - dir.preface;
            if data[..n] != PREFACE[at..at + n] {
                return self.give_up();
            }
            dir.preface -= n;
            data = &data[n..];
        }
        dir.buf.extend_from_slice(data);
        let mut buf = std::mem::take(&mut dir.buf);
        let mut at = 0;
        while buf.len() - at >= 9 {
            let h = &buf[at..at + 9];
            let len = usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
            if len > FRAME_MAX {
                return self.give_up();
            }
            if buf.len() - at < 9 + len {
                break;
            }
            let frame = Frame {
                kind: h[3],
                flags: h[4],
                stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
                payload: &buf[at + 9..at + 9 + len],
            };
            if !self.frame(side, &frame, ts_ns, done) {
                return self.give_up();
            }
            at += 9 + len;
        }
        buf.drain(..at);
        if skipped > 0 {
            return self.give_up();
        }
        match side {
            Side::Client => self.out.buf = buf,
            Side::Server => self.inn.buf = buf,
        }
    }

    fn give_up(&mut self) {
        self.broken = true;
        self.streams.clear();
        self.out.buf = Vec::new();
        self.inn.buf = Vec::new();
    }

    /// One whole frame; false when it breaks the connection's framing.
    fn frame(&mut self, side: Side, f: &Frame<'_>, ts_ns: u64, done: &mut Vec<Request>) -> bool {
        let dir = match side {
            Side::Client => &mut self.out,
            Side::Server => &mut self.inn,
        };
        match f.kind {
            HEADERS | PUSH_PROMISE => {
                let Some(fragment) = header_fragment(f) else {
                    return false;
                };
                if f.flags & END_HEADERS == 0 {
                    dir.block = Some((f.stream, f.flags, fragment.to_vec()));
                    return true;
                }
                let Some(headers) = decode(&mut dir.hpack, fragment) else {
                    return false;
                };
                if f.kind == HEADERS {
                    self.headers(side, f.stream, f.flags, &headers, ts_ns, done);
                }
                true
            }
            CONTINUATION => {
                let Some((stream, flags, mut block)) = dir.block.take() else {
                    return false;
                };
                if stream != f.stream || block.len() + f.payload.len() > HEADER_BLOCK_MAX {
                    return false;
                }
                block.extend_from_slice(f.payload);
                if f.flags & END_HEADERS == 0 {
                    dir.block = Some((stream, flags, block));
                    return true;
                }
                let Some(headers) = decode(&mut dir.hpack, &block) else {
                    return false;
                };
                self.headers(side, stream, flags, &headers, ts_ns, done);
                true
            }
            DATA => {
                let Some(data) = unpadded(f.payload, f.flags) else {
                    return false;
                };
                self.data(side, f.stream, data, f.flags & END_STREAM != 0, ts_ns, done);
                true
            }
            RST_STREAM => {
                if let Some(s) = self.streams.remove(&f.stream) {
                    finish(s, ts_ns, done);
                }
                true
            }
            // SETTINGS, PING, WINDOW_UPDATE, GOAWAY, PRIORITY: nothing a
            // request record needs.
            _ => true,
        }
    }

    fn headers(
        &mut self,
        side: Side,
        stream: u32,
        flags: u8,
        headers: &[(Vec<u8>, Vec<u8>)],
        ts_ns: u64,
        done: &mut Vec<Request>,
    ) {
        let get = |name: &[u8]| {
            headers
                .iter()
                .find(|(n, _)| n.as_slice() == name)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        };
        match side {
            Side::Client => {
                if self.streams.contains_key(&stream) {
                    // Trailers of a request.
                } else if self.streams.len() < STREAMS_MAX
                    && let (Some(method), Some(path)) = (get(b":method"), get(b":path"))
                {
                    self.streams.insert(
                        stream,
                        H2Stream {
                            open: Open::new(method, &path, ts_ns),
                            response: None,
                        },
                    );
                }
                if flags & END_STREAM != 0
                    && let Some(s) = self.streams.get_mut(&stream)
                {
                    s.open.body_ended();
                }
            }
            Side::Server => {
                let Some(s) = self.streams.get_mut(&stream) else {
                    return;
                };
                let status = get(b":status").and_then(|v| v.parse::<u16>().ok());
                if let Some(status) = status
                    && s.response.is_none()
                    && !(100..200).contains(&status)
                {
                    let event_stream =
                        get(b"content-type").is_some_and(|v| v.starts_with("text/event-stream"));
                    let encoding =
                        Encoding::of(get(b"content-encoding").as_deref().map(str::as_bytes));
                    s.open.request.status = status;
                    s.open.request.streamed = event_stream;
                    s.response = Some(ResponseReader::new(event_stream, encoding));
                }
                if flags & END_STREAM != 0
                    && let Some(s) = self.streams.remove(&stream)
                {
                    finish(s, ts_ns, done);
                }
            }
        }
    }

    fn data(
        &mut self,
        side: Side,
        stream: u32,
        data: &[u8],
        end: bool,
        ts_ns: u64,
        done: &mut Vec<Request>,
    ) {
        let Some(s) = self.streams.get_mut(&stream) else {
            return;
        };
        match side {
            Side::Client => {
                s.open.body(data);
                if end {
                    s.open.body_ended();
                }
            }
            Side::Server => {
                if let Some(reader) = &mut s.response {
                    reader.push(&mut s.open.request, data);
                }
                if end && let Some(s) = self.streams.remove(&stream) {
                    finish(s, ts_ns, done);
                }
            }
        }
    }

    /// The connection closed: streams still open end without more.
    pub fn closed(&mut self, ts_ns: u64, done: &mut Vec<Request>) {
        let mut streams: Vec<(u32, H2Stream)> = self.streams.drain().collect();
        streams.sort_by_key(|(id, _)| *id);
        for (_, s) in streams {
            finish(s, ts_ns, done);
        }
    }
}

fn finish(mut s: H2Stream, ts_ns: u64, done: &mut Vec<Request>) {
    if let Some(reader) = s.response.take() {
        reader.finish(&mut s.open.request);
    }
    done.push(s.open.end(ts_ns));
}

/// A DATA or HEADERS payload without its padding.
fn unpadded(payload: &[u8], flags: u8) -> Option<&[u8]> {
    if flags & PADDED == 0 {
        return Some(payload);
    }
    let (&pad, rest) = payload.split_first()?;
    rest.get(..rest.len().checked_sub(usize::from(pad))?)
}

/// The header block fragment of a HEADERS or PUSH_PROMISE frame.
fn header_fragment<'a>(f: &Frame<'a>) -> Option<&'a [u8]> {
    let body = unpadded(f.payload, f.flags)?;
    match f.kind {
        HEADERS if f.flags & PRIORITY != 0 => body.get(5..),
        // The promised stream id comes first.
        PUSH_PROMISE => body.get(4..),
        _ => Some(body),
    }
}

fn decode(hpack: &mut Decoder<'static>, block: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    hpack.decode(block).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        f.extend(stream.to_be_bytes());
        f.extend(payload);
        f
    }

    fn block(enc: &mut loona_hpack::Encoder<'_>, headers: &[(&str, &str)]) -> Vec<u8> {
        enc.encode(headers.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
    }

    const CHAT: &[u8] = br#"{"messages":[{"role":"user","content":"hi"}],"model":"gpt-4o"}"#;

    /// A client's request on `stream` and the server's JSON answer.
    fn exchange_on(
        h: &mut H2,
        req_enc: &mut loona_hpack::Encoder<'_>,
        resp_enc: &mut loona_hpack::Encoder<'_>,
        stream: u32,
        usage: (u64, u64),
        done: &mut Vec<Request>,
    ) {
        let head = block(
            req_enc,
            &[
                (":method", "POST"),
                (":path", "/v1/chat/completions?x=1"),
                (":authority", "api.openai.com"),
                (":scheme", "https"),
            ],
        );
        let mut out = frame(HEADERS, END_HEADERS, stream, &head);
        out.extend(frame(DATA, END_STREAM, stream, CHAT));
        h.push(Side::Client, &out, 0, 1_000, done);
        let head = block(
            resp_enc,
            &[(":status", "200"), ("content-type", "application/json")],
        );
        let body = format!(
            r#"{{"id":"x","usage":{{"prompt_tokens":{},"completion_tokens":{}}}}}"#,
            usage.0, usage.1
        );
        let mut inn = frame(HEADERS, END_HEADERS, stream, &head);
        inn.extend(frame(DATA, END_STREAM, stream, body.as_bytes()));
        // In small pieces: frames are reassembled across reads.
        for piece in inn.chunks(7) {
            h.push(Side::Server, piece, 0, 3_000, done);
        }
    }

    #[test]
    fn requests_on_streams_give_model_status_and_tokens_with_a_shared_hpack_state() {
        let mut h = H2::new();
        let mut done = Vec::new();
        let mut settings = PREFACE.to_vec();
        settings.extend(frame(4, 0, 0, &[]));
        h.push(Side::Client, &settings, 0, 0, &mut done);
        h.push(Side::Server, &frame(4, 0, 0, &[]), 0, 0, &mut done);
        let (mut req_enc, mut resp_enc) =
            (loona_hpack::Encoder::new(), loona_hpack::Encoder::new());
        // The second request's headers are mostly indexes into the
        // dynamic table the first one filled.
        exchange_on(&mut h, &mut req_enc, &mut resp_enc, 1, (11, 7), &mut done);
        exchange_on(&mut h, &mut req_enc, &mut resp_enc, 3, (2, 3), &mut done);
        assert!(h.is_readable());
        let got: Vec<_> = done
            .iter()
            .map(|r| {
                (
                    r.path.as_str(),
                    r.model.as_deref(),
                    r.status,
                    r.usage.input,
                    r.usage.output,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "/v1/chat/completions",
                    Some("gpt-4o"),
                    200,
                    Some(11),
                    Some(7)
                ),
                (
                    "/v1/chat/completions",
                    Some("gpt-4o"),
                    200,
                    Some(2),
                    Some(3)
                ),
            ]
        );
        assert_eq!(done[0].duration_ns, 2_000);
    }

    #[test]
    fn continuation_padding_priority_and_resets() {
        let mut h = H2::new();
        let mut done = Vec::new();
        let mut enc = loona_hpack::Encoder::new();
        let head = block(&mut enc, &[(":method", "GET"), (":path", "/v1/models")]);
        let (a, b) = head.split_at(head.len() / 2);
        // HEADERS with padding and priority, continued.
        let mut payload = vec![3u8];
        payload.extend([0, 0, 0, 0, 16]);
        payload.extend(a);
        payload.extend([0, 0, 0]);
        let mut out = PREFACE.to_vec();
        out.extend(frame(HEADERS, PADDED | PRIORITY | END_STREAM, 5, &payload));
        out.extend(frame(CONTINUATION, END_HEADERS, 5, b));
        h.push(Side::Client, &out, 0, 0, &mut done);
        h.push(
            Side::Server,
            &frame(RST_STREAM, 0, 5, &[0, 0, 0, 8]),
            0,
            9,
            &mut done,
        );
        assert_eq!(done.len(), 1);
        assert_eq!((done[0].path.as_str(), done[0].status), ("/v1/models", 0));
        assert!(h.is_readable());
    }

    #[test]
    fn lost_bytes_bad_frames_and_a_bad_preface_give_up() {
        for (side, bytes, skipped) in [
            (Side::Client, PREFACE.to_vec(), 5),
            (Side::Client, b"PRI * HTTP/1.1\r\n".to_vec(), 0),
            (Side::Server, frame(CONTINUATION, END_HEADERS, 1, b"x"), 0),
            (Side::Server, vec![0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 1], 0),
        ] {
            let mut h = H2::new();
            let mut done = Vec::new();
            if side == Side::Server {
                h.push(Side::Client, PREFACE, 0, 0, &mut done);
            }
            h.push(side, &bytes, skipped, 0, &mut done);
            assert!(!h.is_readable(), "{bytes:?}");
        }
    }

    #[test]
    fn open_streams_end_at_close_in_order() {
        let mut h = H2::new();
        let mut done = Vec::new();
        let mut enc = loona_hpack::Encoder::new();
        let mut out = PREFACE.to_vec();
        for stream in [3u32, 1] {
            let head = block(
                &mut enc,
                &[(":method", "POST"), (":path", "/v1/embeddings")],
            );
            out.extend(frame(HEADERS, END_HEADERS, stream, &head));
        }
        h.push(Side::Client, &out, 0, 0, &mut done);
        h.closed(5, &mut done);
        assert_eq!(done.len(), 2);
        assert!(
            done.iter()
                .all(|r| r.status == 0 && r.status_class() == "none")
        );
    }
}
