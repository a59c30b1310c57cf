//! One connection's plaintext, both directions, → the requests it carried:
//! each request's operation, path template and model, joined with its
//! response's status and token usage. HTTP/1.1 answers in order, so
//! responses pair with requests first in, first out.
use std::collections::VecDeque;

use std::io::Write as _;

use super::{
    body_scan::{BodyScan, Usage},
    http1::{Encoding, Head, Part, Side, Stream},
    operation::{self, Operation},
};

/// Decoded bytes read from one compressed response at most; past this its
/// usage is not read (a decompression bomb costs this much, no more).
const DECODED_MAX: u64 = 8 << 20;
/// Compressed bytes handed to the decoder at once, so one step's output
/// stays small (deflate expands at most about 1032:1).
const INFLATE_STEP: usize = 256;

/// Requests awaiting their responses on one connection (pipelining is
/// rare; this bounds a client that never reads).
const IN_FLIGHT_MAX: usize = 16;
/// Longest server-sent-events line read; longer lines are skipped.
const SSE_LINE_MAX: usize = 64 * 1024;

/// One request and what its response said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub operation: Operation,
    /// Method and path without ids or query.
    pub method: String,
    pub path: String,
    pub model: Option<String>,
    /// 0 when the connection ended before the response's head.
    pub status: u16,
    pub usage: Usage,
    pub streamed: bool,
    /// From the request's first byte to the response's last (kernel clock).
    pub duration_ns: u64,
}

impl Request {
    /// `2xx`, `4xx`, ...; `none` when no response came.
    pub fn status_class(&self) -> &'static str {
        match self.status / 100 {
            1 => "1xx",
            2 => "2xx",
            3 => "3xx",
            4 => "4xx",
            5 => "5xx",
            _ => "none",
        }
    }
}

struct Open {
    request: Request,
    started_ns: u64,
    body: Option<BodyScan>,
}

/// How a response body is being read.
enum ResponseBody {
    None,
    Json(BodyScan),
    /// Server-sent events: each `data:` line is one JSON document.
    Events {
        line: Vec<u8>,
        skipping: bool,
    },
}

/// A compressed body's decoder: compressed bytes in, plaintext out.
enum Inflate {
    Gzip(flate2::write::GzDecoder<Vec<u8>>),
    Deflate(flate2::write::ZlibDecoder<Vec<u8>>),
}

impl Inflate {
    fn new(encoding: Encoding) -> Option<Inflate> {
        match encoding {
            Encoding::Gzip => Some(Inflate::Gzip(flate2::write::GzDecoder::new(Vec::new()))),
            Encoding::Deflate => Some(Inflate::Deflate(
                flate2::write::ZlibDecoder::new(Vec::new()),
            )),
            Encoding::Identity | Encoding::Other => None,
        }
    }

    /// Decodes `input` in small steps, handing each step's output on;
    /// false once the stream is broken or past `DECODED_MAX`.
    fn push(&mut self, input: &[u8], decoded: &mut u64, mut out: impl FnMut(&[u8])) -> bool {
        for piece in input.chunks(INFLATE_STEP) {
            // Flushed each step: the decoder would otherwise keep the
            // last output (where `usage` is) until the next write.
            let (written, buf) = match self {
                Inflate::Gzip(d) => (d.write_all(piece).and_then(|()| d.flush()), d.get_mut()),
                Inflate::Deflate(d) => (d.write_all(piece).and_then(|()| d.flush()), d.get_mut()),
            };
            if written.is_err() {
                return false;
            }
            *decoded += buf.len() as u64;
            if *decoded > DECODED_MAX {
                return false;
            }
            out(buf);
            buf.clear();
        }
        true
    }
}

/// Where one direction is in the library call it is reading: the kernel
/// copies a call in chunks, up to a limit, and may lose some when its ring
/// is full; what was not copied is skipped, never guessed.
#[derive(Default)]
struct Cursor {
    /// Bytes of the current call, and how far they were read.
    total: u64,
    next: u64,
}

/// Bytes of one call the kernel copies at most.
const CALL_COPY_MAX: u64 =
    observer_common::TLS_CHUNKS_MAX as u64 * observer_common::PAYLOAD_CAPTURE_MAX as u64;

impl Cursor {
    /// A chunk at `offset` of a call of `total` bytes: returns the bytes
    /// missed before it, and the bytes missed after it when it is the last
    /// one the kernel copies. A repeated chunk reads as `None`.
    fn place(&mut self, offset: u32, total: u32, len: usize) -> Option<(u64, u64)> {
        let (offset, total, len) = (u64::from(offset), u64::from(total), len as u64);
        let before = if offset == 0 {
            let unread = self.total.saturating_sub(self.next);
            self.total = total;
            unread
        } else if offset >= self.next {
            offset - self.next
        } else {
            return None;
        };
        self.next = offset + len;
        let after = if self.next >= CALL_COPY_MAX.min(total) {
            let rest = total.saturating_sub(self.next);
            self.next = total;
            rest
        } else {
            0
        };
        Some((before, after))
    }
}

pub struct Exchange {
    out: Stream,
    inn: Stream,
    cursors: [Cursor; 2],
    /// The request being written (head seen, body not yet ended).
    writing: Option<Open>,
    in_flight: VecDeque<Open>,
    /// The response being read, and for whom.
    reading: Option<(Open, ResponseBody)>,
    /// Its body's decoder when it is compressed, and the bytes decoded.
    inflate: Option<(Inflate, u64)>,
    done: Vec<Request>,
}

impl Default for Exchange {
    fn default() -> Self {
        Self::new()
    }
}

impl Exchange {
    pub fn new() -> Self {
        Self {
            out: Stream::new(Side::Client),
            inn: Stream::new(Side::Server),
            cursors: Default::default(),
            writing: None,
            in_flight: VecDeque::new(),
            reading: None,
            inflate: None,
            done: Vec::new(),
        }
    }

    /// False once neither direction can be read any more.
    pub fn is_readable(&self) -> bool {
        self.out.is_readable() && self.inn.is_readable()
    }

    /// A chunk of a library call the kernel copied: `side` Client for
    /// what the client wrote, Server for what it read.
    pub fn chunk(&mut self, side: Side, offset: u32, total: u32, data: &[u8], ts_ns: u64) {
        let Some((before, after)) = self.cursors[side as usize].place(offset, total, data.len())
        else {
            return;
        };
        match side {
            Side::Client => {
                if before > 0 {
                    self.wrote(&[], before, ts_ns);
                }
                self.wrote(data, after, ts_ns);
            }
            Side::Server => {
                if before > 0 {
                    self.read(&[], before, ts_ns);
                }
                self.read(data, after, ts_ns);
            }
        }
    }

    /// Plaintext the client wrote (`skipped` bytes of it were not copied
    /// and come after `data`).
    pub fn wrote(&mut self, data: &[u8], skipped: u64, ts_ns: u64) {
        let mut parts = Vec::new();
        self.out.push(data, &mut |p| parts.push(owned(p)));
        if skipped > 0 {
            if let Some(open) = &mut self.writing {
                // The body's reader lost its place.
                open.body = None;
            }
            self.out.skip(skipped, &mut |p| parts.push(owned(p)));
        }
        for p in parts {
            self.on_request_part(p, ts_ns);
        }
    }

    /// Plaintext the client read.
    pub fn read(&mut self, data: &[u8], skipped: u64, ts_ns: u64) {
        self.inn.next_response_bodiless = self
            .in_flight
            .front()
            .is_some_and(|o| o.request.method.eq_ignore_ascii_case("HEAD"));
        let mut parts = Vec::new();
        self.inn.push(data, &mut |p| parts.push(owned(p)));
        self.on_response_parts(parts, ts_ns);
        if skipped > 0 {
            if let Some((_, body)) = &mut self.reading {
                *body = ResponseBody::None;
            }
            let mut parts = Vec::new();
            self.inn.skip(skipped, &mut |p| parts.push(owned(p)));
            self.on_response_parts(parts, ts_ns);
        }
    }

    fn on_response_parts(&mut self, parts: Vec<PartOwned>, ts_ns: u64) {
        for p in parts {
            match p {
                PartOwned::Head(Head::Response {
                    status,
                    event_stream,
                    encoding,
                }) => self.on_response_head(status, event_stream, encoding),
                PartOwned::Head(Head::Request { .. }) => {}
                PartOwned::Body(b) => self.on_response_body(&b),
                PartOwned::End => self.finish_response(ts_ns),
            }
        }
    }

    /// The connection closed: a response read to its close ends now, and
    /// requests never answered are reported without a status.
    pub fn closed(&mut self, ts_ns: u64) -> Vec<Request> {
        if self.reading.is_some() {
            self.finish_response(ts_ns);
        }
        for open in self.in_flight.drain(..) {
            self.done.push(open.request);
        }
        std::mem::take(&mut self.done)
    }

    /// Requests whose responses ended since the last call.
    pub fn take_done(&mut self) -> Vec<Request> {
        std::mem::take(&mut self.done)
    }

    fn on_request_part(&mut self, part: PartOwned, ts_ns: u64) {
        match part {
            PartOwned::Head(Head::Request { method, path }) => {
                let operation = Operation::of(&method, &path);
                let model = operation::path_model(&path);
                let path = operation::template(&path);
                self.writing = Some(Open {
                    request: Request {
                        operation,
                        method,
                        path,
                        model,
                        status: 0,
                        usage: Usage::default(),
                        streamed: false,
                        duration_ns: 0,
                    },
                    started_ns: ts_ns,
                    body: Some(BodyScan::new()),
                });
            }
            PartOwned::Head(Head::Response { .. }) => {}
            PartOwned::Body(bytes) => {
                if let Some(scan) = self.writing.as_mut().and_then(|o| o.body.as_mut()) {
                    scan.push(&bytes);
                }
            }
            PartOwned::End => {
                if let Some(mut open) = self.writing.take() {
                    if let Some(scan) = open.body.take()
                        && let Some(model) = scan.model
                    {
                        open.request.model = Some(model);
                    }
                    if self.in_flight.len() >= IN_FLIGHT_MAX
                        && let Some(oldest) = self.in_flight.pop_front()
                    {
                        self.done.push(oldest.request);
                    }
                    self.in_flight.push_back(open);
                }
            }
        }
    }

    fn on_response_head(&mut self, status: u16, event_stream: bool, encoding: Encoding) {
        let Some(mut open) = self.in_flight.pop_front() else {
            return;
        };
        open.request.status = status;
        open.request.streamed = event_stream;
        self.inflate = Inflate::new(encoding).map(|d| (d, 0));
        let body = if encoding == Encoding::Other {
            ResponseBody::None
        } else if event_stream {
            ResponseBody::Events {
                line: Vec::new(),
                skipping: false,
            }
        } else {
            ResponseBody::Json(BodyScan::new())
        };
        self.reading = Some((open, body));
    }

    fn on_response_body(&mut self, bytes: &[u8]) {
        let Some((open, body)) = &mut self.reading else {
            return;
        };
        match &mut self.inflate {
            None => read_body(open, body, bytes),
            Some((inflate, decoded)) => {
                if !inflate.push(bytes, decoded, |plain| read_body(open, body, plain)) {
                    *body = ResponseBody::None;
                    self.inflate = None;
                }
            }
        }
    }
}

/// Plaintext of a response body, to its reader.
fn read_body(open: &mut Open, body: &mut ResponseBody, bytes: &[u8]) {
    {
        match body {
            ResponseBody::None => {}
            ResponseBody::Json(scan) => scan.push(bytes),
            ResponseBody::Events { line, skipping } => {
                for piece in bytes.split_inclusive(|b| *b == b'\n') {
                    let complete = piece.ends_with(b"\n");
                    if !*skipping {
                        if line.len() + piece.len() > SSE_LINE_MAX {
                            *skipping = true;
                            line.clear();
                        } else {
                            line.extend_from_slice(piece);
                        }
                    }
                    if complete {
                        if !*skipping {
                            sse_line(&mut open.request, line);
                        }
                        line.clear();
                        *skipping = false;
                    }
                }
            }
        }
    }
}

impl Exchange {
    fn finish_response(&mut self, ts_ns: u64) {
        self.inflate = None;
        let Some((mut open, body)) = self.reading.take() else {
            return;
        };
        if let ResponseBody::Json(scan) = body {
            if let Some(usage) = scan.usage {
                open.request.usage = usage;
            }
            if open.request.model.is_none() {
                open.request.model = scan.model;
            }
        }
        open.request.duration_ns = ts_ns.saturating_sub(open.started_ns);
        self.done.push(open.request);
    }
}

/// One line of an event stream: usage (and the model, if the request did
/// not name one) from its `data:` JSON.
fn sse_line(request: &mut Request, line: &[u8]) {
    let Some(data) = line.strip_prefix(b"data:") else {
        return;
    };
    let mut scan = BodyScan::new();
    scan.push(data);
    if let Some(usage) = scan.usage {
        request.usage = request.usage.merge(usage);
    }
    if request.model.is_none() {
        request.model = scan.model;
    }
}

/// A [`Part`] that outlives the piece it came from.
enum PartOwned {
    Head(Head),
    Body(Vec<u8>),
    End,
}

fn owned(p: Part<'_>) -> PartOwned {
    match p {
        Part::Head(h) => PartOwned::Head(h),
        Part::Body(b) => PartOwned::Body(b.to_vec()),
        Part::End => PartOwned::End,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    const CHAT_REQ: &[u8] = b"POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\nContent-Type: application/json\r\nContent-Length: 62\r\n\r\n{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"model\":\"gpt-4o\"}";

    fn response(body: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    #[test]
    fn a_chat_call_gives_operation_model_status_and_tokens() {
        let mut ex = Exchange::new();
        ex.wrote(&CHAT_REQ[..40], 0, 1_000);
        ex.wrote(&CHAT_REQ[40..], 0, 1_000);
        assert!(ex.take_done().is_empty());
        let resp = response(
            r#"{"id":"c","model":"gpt-4o-2024","usage":{"prompt_tokens":11,"completion_tokens":7}}"#,
        );
        ex.read(&resp[..30], 0, 2_000);
        ex.read(&resp[30..], 0, 5_000);
        let done = ex.take_done();
        assert_eq!(done.len(), 1);
        let r = &done[0];
        assert_eq!(r.operation, Operation::Chat);
        assert_eq!(
            r.model.as_deref(),
            Some("gpt-4o"),
            "the request's model wins"
        );
        assert_eq!((r.status, r.status_class()), (200, "2xx"));
        assert_eq!((r.usage.input, r.usage.output), (Some(11), Some(7)));
        assert_eq!(r.duration_ns, 4_000);
    }

    #[test]
    fn a_streamed_chat_takes_usage_from_the_last_event() {
        let mut ex = Exchange::new();
        ex.wrote(CHAT_REQ, 0, 0);
        let events = "data: {\"choices\":[{\"delta\":{\"content\":\"h\"}}],\"usage\":null}\n\n\
                      data: {\"choices\":[],\"usage\":{\"prompt_tokens\":21,\"completion_tokens\":3}}\n\n\
                      data: [DONE]\n\n";
        let mut resp = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for piece in events.as_bytes().chunks(25) {
            resp.extend(format!("{:x}\r\n", piece.len()).as_bytes());
            resp.extend(piece);
            resp.extend(b"\r\n");
        }
        resp.extend(b"0\r\n\r\n");
        for piece in resp.chunks(9) {
            ex.read(piece, 0, 0);
        }
        let done = ex.take_done();
        assert_eq!(done.len(), 1, "{done:?}");
        assert!(done[0].streamed);
        assert_eq!(
            (done[0].usage.input, done[0].usage.output),
            (Some(21), Some(3))
        );
    }

    #[test]
    fn a_request_never_answered_is_reported_at_close_without_status() {
        let mut ex = Exchange::new();
        ex.wrote(CHAT_REQ, 0, 0);
        let done = ex.closed(10);
        assert_eq!(done.len(), 1);
        assert_eq!((done[0].status, done[0].status_class()), (0, "none"));
        assert_eq!(done[0].model.as_deref(), Some("gpt-4o"));
    }

    #[test]
    fn keep_alive_requests_pair_with_their_responses_in_order() {
        let mut ex = Exchange::new();
        for (model, tokens) in [("a", 1), ("b", 2)] {
            let body = format!(r#"{{"model":"{model}","input":"x"}}"#);
            let req = format!(
                "POST /v1/embeddings HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            ex.wrote(req.as_bytes(), 0, 0);
            ex.read(
                &response(&format!(r#"{{"usage":{{"prompt_tokens":{tokens}}}}}"#)),
                0,
                0,
            );
        }
        let done = ex.take_done();
        let got: Vec<_> = done
            .iter()
            .map(|r| (r.operation, r.model.clone().unwrap(), r.usage.input))
            .collect();
        assert_eq!(
            got,
            vec![
                (Operation::Embeddings, "a".into(), Some(1)),
                (Operation::Embeddings, "b".into(), Some(2))
            ]
        );
    }

    #[test]
    fn chunks_of_long_calls_and_lost_chunks_are_skipped_in_place() {
        let mut c = Cursor::default();
        let chunk = observer_common::PAYLOAD_CAPTURE_MAX;
        let total = (CALL_COPY_MAX + 100) as u32;
        assert_eq!(c.place(0, total, chunk), Some((0, 0)));
        // The second chunk was lost.
        assert_eq!(
            c.place(2 * chunk as u32, total, chunk),
            Some((chunk as u64, 0))
        );
        assert_eq!(c.place(2 * chunk as u32, total, chunk), None, "a repeat");
        let last = (CALL_COPY_MAX as usize - chunk) as u32;
        assert_eq!(
            c.place(last, total, chunk),
            Some((last as u64 - 3 * chunk as u64, 100))
        );
        // A short call; then one whose tail was lost before the next call.
        assert_eq!(c.place(0, 10, 10), Some((0, 0)));
        assert_eq!(c.place(0, 5000, chunk), Some((0, 0)));
        assert_eq!(c.place(0, 10, 10), Some((5000 - chunk as u64, 0)));
    }

    fn compressed_response(encoding: &str, body: &str) -> Vec<u8> {
        let packed = match encoding {
            "gzip" => {
                let mut e =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(body.as_bytes()).unwrap();
                e.finish().unwrap()
            }
            _ => {
                let mut e =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(body.as_bytes()).unwrap();
                e.finish().unwrap()
            }
        };
        let mut out = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: {encoding}\r\nContent-Length: {}\r\n\r\n",
            packed.len()
        )
        .into_bytes();
        out.extend(packed);
        out
    }

    #[test]
    fn gzip_and_deflate_responses_give_their_usage() {
        let pad = "x".repeat(20_000);
        let body =
            format!(r#"{{"id":"{pad}","usage":{{"prompt_tokens":5,"completion_tokens":6}}}}"#);
        for encoding in ["gzip", "deflate"] {
            let mut ex = Exchange::new();
            ex.wrote(CHAT_REQ, 0, 0);
            for piece in compressed_response(encoding, &body).chunks(100) {
                ex.read(piece, 0, 0);
            }
            let done = ex.take_done();
            assert_eq!(done.len(), 1, "{encoding}");
            assert_eq!(
                (done[0].usage.input, done[0].usage.output),
                (Some(5), Some(6)),
                "{encoding}"
            );
        }
    }

    #[test]
    fn a_decompression_bomb_is_cut_off_and_the_request_still_ends() {
        let body = format!(
            r#"{{"pad":"{}","usage":{{"prompt_tokens":5}}}}"#,
            "0".repeat(DECODED_MAX as usize + 1)
        );
        let mut ex = Exchange::new();
        ex.wrote(CHAT_REQ, 0, 0);
        ex.read(&compressed_response("gzip", &body), 0, 0);
        let done = ex.take_done();
        assert_eq!(done.len(), 1);
        assert_eq!(
            done[0].usage,
            Usage::default(),
            "past the cap, nothing is read"
        );
    }

    #[test]
    fn a_body_cut_by_the_kernel_still_ends_the_response_without_usage() {
        let mut ex = Exchange::new();
        ex.wrote(CHAT_REQ, 0, 0);
        let resp = response(r#"{"id":"c","usage":{"prompt_tokens":11,"completion_tokens":7}}"#);
        let head_len = resp.len() - 62;
        ex.read(&resp[..head_len + 10], 52, 0);
        let done = ex.take_done();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].status, 200);
        assert_eq!(done[0].usage, Usage::default());
        assert!(ex.is_readable());
    }
}
