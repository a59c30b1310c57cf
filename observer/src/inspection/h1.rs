//! HTTP/1.1 on one connection: requests framed from what the client wrote,
//! responses from what it read, paired first in, first out (HTTP/1.1
//! answers in order).
use std::collections::VecDeque;

use super::{
    http1::{Head, Part, Side, Stream},
    request::{Open, Request},
    response::ResponseReader,
};

/// Requests awaiting their responses on one connection (pipelining is
/// rare; this bounds a client that never reads).
const IN_FLIGHT_MAX: usize = 16;

pub struct H1 {
    out: Stream,
    inn: Stream,
    /// The request being written (head seen, body not yet ended).
    writing: Option<Open>,
    in_flight: VecDeque<Open>,
    /// The response being read, and for whom.
    reading: Option<(Open, ResponseReader)>,
}

/// A [`Part`] that outlives the piece it came from.
enum Owned {
    Head(Head),
    Body(Vec<u8>),
    End,
}

fn owned(p: Part<'_>) -> Owned {
    match p {
        Part::Head(h) => Owned::Head(h),
        Part::Body(b) => Owned::Body(b.to_vec()),
        Part::End => Owned::End,
    }
}

impl Default for H1 {
    fn default() -> Self {
        Self::new()
    }
}

impl H1 {
    pub fn new() -> Self {
        Self {
            out: Stream::new(Side::Client),
            inn: Stream::new(Side::Server),
            writing: None,
            in_flight: VecDeque::new(),
            reading: None,
        }
    }

    /// False once either direction stopped making sense.
    pub fn is_readable(&self) -> bool {
        self.out.is_readable() && self.inn.is_readable()
    }

    /// Plaintext the client wrote; `skipped` bytes after it were not seen.
    pub fn wrote(&mut self, data: &[u8], skipped: u64, ts_ns: u64, done: &mut Vec<Request>) {
        let mut parts = Vec::new();
        self.out.push(data, &mut |p| parts.push(owned(p)));
        if skipped > 0 {
            if let Some(open) = &mut self.writing {
                open.lost_body();
            }
            self.out.skip(skipped, &mut |p| parts.push(owned(p)));
        }
        for p in parts {
            match p {
                Owned::Head(Head::Request { method, path }) => {
                    self.writing = Some(Open::new(method, &path, ts_ns));
                }
                Owned::Head(Head::Response { .. }) => {}
                Owned::Body(b) => {
                    if let Some(open) = &mut self.writing {
                        open.body(&b);
                    }
                }
                Owned::End => {
                    if let Some(mut open) = self.writing.take() {
                        open.body_ended();
                        if self.in_flight.len() >= IN_FLIGHT_MAX
                            && let Some(oldest) = self.in_flight.pop_front()
                        {
                            done.push(oldest.end(ts_ns));
                        }
                        self.in_flight.push_back(open);
                    }
                }
            }
        }
    }

    /// Plaintext the client read; `skipped` bytes after it were not seen.
    pub fn read(&mut self, data: &[u8], skipped: u64, ts_ns: u64, done: &mut Vec<Request>) {
        self.inn.next_response_bodiless = self
            .in_flight
            .front()
            .is_some_and(|o| o.request.method.eq_ignore_ascii_case("HEAD"));
        let mut parts = Vec::new();
        self.inn.push(data, &mut |p| parts.push(owned(p)));
        self.on_response(parts, ts_ns, done);
        if skipped > 0 {
            if let Some((_, reader)) = &mut self.reading {
                reader.lost_place();
            }
            let mut parts = Vec::new();
            self.inn.skip(skipped, &mut |p| parts.push(owned(p)));
            self.on_response(parts, ts_ns, done);
        }
    }

    fn on_response(&mut self, parts: Vec<Owned>, ts_ns: u64, done: &mut Vec<Request>) {
        for p in parts {
            match p {
                Owned::Head(Head::Response {
                    status,
                    event_stream,
                    encoding,
                }) => {
                    if let Some(mut open) = self.in_flight.pop_front() {
                        open.request.status = status;
                        open.request.streamed = event_stream;
                        self.reading = Some((open, ResponseReader::new(event_stream, encoding)));
                    }
                }
                Owned::Head(Head::Request { .. }) => {}
                Owned::Body(b) => {
                    if let Some((open, reader)) = &mut self.reading {
                        reader.push(&mut open.request, &b);
                    }
                }
                Owned::End => self.finish_response(ts_ns, done),
            }
        }
    }

    fn finish_response(&mut self, ts_ns: u64, done: &mut Vec<Request>) {
        if let Some((mut open, reader)) = self.reading.take() {
            reader.finish(&mut open.request);
            done.push(open.end(ts_ns));
        }
    }

    /// The connection closed: a response read to its close ends now, and
    /// requests never answered are reported without a status.
    pub fn closed(&mut self, ts_ns: u64, done: &mut Vec<Request>) {
        self.finish_response(ts_ns, done);
        for open in self.in_flight.drain(..) {
            done.push(open.end(ts_ns));
        }
    }
}
