//! A response body read as it passes: one JSON document, or server-sent
//! events (one JSON document per `data:` line), plain or gzip/deflate.
//! Only `usage` (and a `model`, when the request named none) is kept.
use std::io::Write as _;

use super::{body_scan::BodyScan, http1::Encoding, request::Request};

/// Decoded bytes read from one compressed response at most; past this its
/// usage is not read (a decompression bomb costs this much, no more).
pub const DECODED_MAX: u64 = 8 << 20;
/// Compressed bytes handed to the decoder at once, so one step's output
/// stays small (deflate expands at most about 1032:1).
const INFLATE_STEP: usize = 256;
/// Longest server-sent-events line read; longer lines are skipped.
const SSE_LINE_MAX: usize = 64 * 1024;

/// How the body's plaintext is read.
enum Body {
    None,
    Json(BodyScan),
    Events { line: Vec<u8>, skipping: bool },
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

pub struct ResponseReader {
    body: Body,
    inflate: Option<(Inflate, u64)>,
}

impl ResponseReader {
    pub fn new(event_stream: bool, encoding: Encoding) -> Self {
        let body = match (encoding, event_stream) {
            (Encoding::Other, _) => Body::None,
            (_, true) => Body::Events {
                line: Vec::new(),
                skipping: false,
            },
            (_, false) => Body::Json(BodyScan::new()),
        };
        Self {
            body,
            inflate: Inflate::new(encoding).map(|d| (d, 0)),
        }
    }

    /// Bytes of the body were not seen: nothing more is read from it.
    pub fn lost_place(&mut self) {
        self.body = Body::None;
        self.inflate = None;
    }

    /// A piece of the body, as it came on the wire.
    pub fn push(&mut self, request: &mut Request, bytes: &[u8]) {
        let body = &mut self.body;
        match &mut self.inflate {
            None => read(request, body, bytes),
            Some((inflate, decoded)) => {
                if !inflate.push(bytes, decoded, |plain| read(request, body, plain)) {
                    self.lost_place();
                }
            }
        }
    }

    /// The body ended: what a single JSON document said.
    pub fn finish(self, request: &mut Request) {
        if let Body::Json(scan) = self.body {
            if let Some(usage) = scan.usage {
                request.usage = usage;
            }
            if request.model.is_none() {
                request.model = scan.model;
            }
        }
    }
}

/// Plaintext of a response body, to its reader.
fn read(request: &mut Request, body: &mut Body, bytes: &[u8]) {
    match body {
        Body::None => {}
        Body::Json(scan) => scan.push(bytes),
        Body::Events { line, skipping } => {
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
                        sse_line(request, line);
                    }
                    line.clear();
                    *skipping = false;
                }
            }
        }
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
