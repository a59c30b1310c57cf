//! One direction of an HTTP/1.1 connection, read in pieces: heads are
//! parsed with `httparse` and bodies are framed (Content-Length, chunked,
//! or until close) and handed on without being kept. A stream that stops
//! making sense (HTTP/2, a lost piece inside a head, a broken chunk size)
//! is given up, never guessed at.
use httparse::Status;

/// Largest head accepted (real API heads are well under 4 KiB).
const HEAD_MAX: usize = 16 * 1024;
const HEADERS_MAX: usize = 64;
/// Longest chunk-size line (hex size plus extensions).
const CHUNK_LINE_MAX: usize = 256;

/// What a head said, as far as the caller cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Head {
    /// `path` without its query, which may carry keys.
    Request { method: String, path: String },
    Response {
        status: u16,
        event_stream: bool,
        encoding: Encoding,
    },
}

/// A response body's `Content-Encoding`, as far as it can be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
    Deflate,
    /// br, zstd, or a chain: not decoded.
    Other,
}

impl Encoding {
    pub fn of(value: Option<&[u8]>) -> Encoding {
        let Some(v) = value else {
            return Encoding::Identity;
        };
        match String::from_utf8_lossy(v)
            .trim()
            .to_ascii_lowercase()
            .as_str()
        {
            "" | "identity" => Encoding::Identity,
            "gzip" | "x-gzip" => Encoding::Gzip,
            "deflate" => Encoding::Deflate,
            _ => Encoding::Other,
        }
    }
}

/// A piece of what the stream carried, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Part<'a> {
    Head(Head),
    Body(&'a [u8]),
    /// The message's body is complete.
    End,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Side {
    /// Requests (what the client wrote).
    Client,
    /// Responses (what it read).
    Server,
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    Head,
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkDataEnd(u8),
    Trailer,
    UntilClose,
    Gone,
}

#[derive(Debug)]
pub struct Stream {
    side: Side,
    state: State,
    buf: Vec<u8>,
    /// The request this response answers was a HEAD: no body.
    pub next_response_bodiless: bool,
}

impl Stream {
    pub fn new(side: Side) -> Self {
        Self {
            side,
            state: State::Head,
            buf: Vec::new(),
            next_response_bodiless: false,
        }
    }

    /// False once the stream was given up.
    pub fn is_readable(&self) -> bool {
        self.state != State::Gone
    }

    /// `n` bytes of the stream were not seen (not copied by the kernel):
    /// skipped inside a body, fatal anywhere else.
    pub fn skip(&mut self, n: u64, out: &mut impl FnMut(Part<'_>)) {
        match &mut self.state {
            State::Length(rest) if n <= *rest => {
                *rest -= n;
                if *rest == 0 {
                    self.state = State::Head;
                    out(Part::End);
                }
            }
            State::ChunkData(rest) if n <= *rest => {
                *rest -= n;
                if *rest == 0 {
                    self.state = State::ChunkDataEnd(0);
                }
            }
            State::UntilClose => {}
            _ => self.give_up(),
        }
    }

    fn give_up(&mut self) {
        self.state = State::Gone;
        self.buf = Vec::new();
    }

    /// Reads the next piece of the stream, reporting what it carried.
    pub fn push(&mut self, mut data: &[u8], out: &mut impl FnMut(Part<'_>)) {
        while !data.is_empty() {
            match &mut self.state {
                State::Gone => return,
                State::Head => {
                    let taken = self.head(data, out);
                    data = &data[taken..];
                }
                State::Length(rest) => {
                    let n = (*rest).min(data.len() as u64) as usize;
                    *rest -= n as u64;
                    out(Part::Body(&data[..n]));
                    data = &data[n..];
                    if *rest == 0 {
                        self.state = State::Head;
                        out(Part::End);
                    }
                }
                State::UntilClose => {
                    out(Part::Body(data));
                    return;
                }
                State::ChunkSize => {
                    let Some(end) = data.iter().position(|b| *b == b'\n') else {
                        self.buf.extend_from_slice(data);
                        if self.buf.len() > CHUNK_LINE_MAX {
                            self.give_up();
                        }
                        return;
                    };
                    self.buf.extend_from_slice(&data[..=end]);
                    data = &data[end + 1..];
                    match httparse::parse_chunk_size(&self.buf) {
                        Ok(Status::Complete((_, 0))) => self.state = State::Trailer,
                        Ok(Status::Complete((_, size))) => self.state = State::ChunkData(size),
                        _ => return self.give_up(),
                    }
                    self.buf.clear();
                }
                State::ChunkData(rest) => {
                    let n = (*rest).min(data.len() as u64) as usize;
                    *rest -= n as u64;
                    out(Part::Body(&data[..n]));
                    data = &data[n..];
                    if *rest == 0 {
                        self.state = State::ChunkDataEnd(0);
                    }
                }
                State::ChunkDataEnd(seen) => {
                    // The CRLF after a chunk's data.
                    let want = 2 - *seen as usize;
                    let n = want.min(data.len());
                    *seen += n as u8;
                    data = &data[n..];
                    if *seen == 2 {
                        self.state = State::ChunkSize;
                    }
                }
                State::Trailer => {
                    // Trailer lines until an empty one.
                    let Some(end) = data.iter().position(|b| *b == b'\n') else {
                        self.buf.extend_from_slice(data);
                        if self.buf.len() > HEAD_MAX {
                            self.give_up();
                        }
                        return;
                    };
                    self.buf.extend_from_slice(&data[..=end]);
                    data = &data[end + 1..];
                    let line = std::mem::take(&mut self.buf);
                    if line == b"\r\n" || line == b"\n" {
                        self.state = State::Head;
                        out(Part::End);
                    }
                }
            }
        }
    }

    /// Reads head bytes; returns how many of `data` were used.
    fn head(&mut self, data: &[u8], out: &mut impl FnMut(Part<'_>)) -> usize {
        let before = self.buf.len();
        self.buf.extend_from_slice(data);
        // Uninitialised: filling them first costs more than a typical head.
        let mut headers = [const { std::mem::MaybeUninit::uninit() }; HEADERS_MAX];
        let parsed: Result<Option<(usize, Head, Body)>, httparse::Error> = match self.side {
            Side::Client => {
                let mut req = httparse::Request::new(&mut []);
                match req.parse_with_uninit_headers(&self.buf, &mut headers) {
                    Ok(Status::Complete(len)) => {
                        let path = req.path.unwrap_or_default();
                        let head = Head::Request {
                            method: req.method.unwrap_or_default().to_owned(),
                            path: path.split(['?', '#']).next().unwrap_or_default().to_owned(),
                        };
                        Ok(Some((len, head, framing(req.headers, false))))
                    }
                    Ok(Status::Partial) => Ok(None),
                    Err(e) => Err(e),
                }
            }
            Side::Server => {
                let mut res = httparse::Response::new(&mut []);
                match httparse::ParserConfig::default().parse_response_with_uninit_headers(
                    &mut res,
                    &self.buf,
                    &mut headers,
                ) {
                    Ok(Status::Complete(len)) => {
                        let status = res.code.unwrap_or_default();
                        let event_stream = header(res.headers, "content-type")
                            .is_some_and(|v| v.starts_with(b"text/event-stream"));
                        let bodiless = self.next_response_bodiless
                            || (100..200).contains(&status)
                            || status == 204
                            || status == 304;
                        let head = Head::Response {
                            status,
                            event_stream,
                            encoding: Encoding::of(header(res.headers, "content-encoding")),
                        };
                        Ok(Some((len, head, framing(res.headers, !bodiless))))
                    }
                    Ok(Status::Partial) => Ok(None),
                    Err(e) => Err(e),
                }
            }
        };
        match parsed {
            Ok(Some((len, head, body))) => {
                if let Head::Response { status, .. } = head
                    && (100..200).contains(&status)
                    && status != 101
                {
                    // An interim response (100 Continue): the real one follows.
                    self.buf.clear();
                    return len - before;
                }
                if let Head::Request { method, .. } = &head {
                    self.next_response_bodiless = method.eq_ignore_ascii_case("HEAD");
                }
                self.buf.clear();
                out(Part::Head(head));
                self.state = match body {
                    Body::None => {
                        out(Part::End);
                        State::Head
                    }
                    Body::Length(n) => State::Length(n),
                    Body::Chunked => State::ChunkSize,
                    Body::UntilClose => State::UntilClose,
                };
                len - before
            }
            Ok(None) if self.buf.len() <= HEAD_MAX => data.len(),
            _ => {
                self.give_up();
                data.len()
            }
        }
    }
}

enum Body {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

fn header<'h>(headers: &'h [httparse::Header<'_>], name: &str) -> Option<&'h [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

/// How the body of a message is delimited (RFC 9112 §6.3). A request
/// without a length has no body; a response without one runs to the close.
fn framing(headers: &[httparse::Header<'_>], response_may_have_body: bool) -> Body {
    let chunked = header(headers, "transfer-encoding").is_some_and(|v| {
        String::from_utf8_lossy(v)
            .rsplit(',')
            .next()
            .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
    });
    if chunked {
        return Body::Chunked;
    }
    match header(headers, "content-length")
        .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<u64>().ok())
    {
        Some(0) => Body::None,
        Some(n) => Body::Length(n),
        None if response_may_have_body => Body::UntilClose,
        None => Body::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    enum Seen {
        Head(Head),
        Body(Vec<u8>),
        End,
    }

    fn read(side: Side, data: &[u8], piece: usize) -> (Vec<Seen>, bool) {
        let mut s = Stream::new(side);
        let mut seen = Vec::new();
        for chunk in data.chunks(piece.max(1)) {
            s.push(chunk, &mut |p| match p {
                Part::Head(h) => seen.push(Seen::Head(h)),
                Part::Body(b) => match seen.last_mut() {
                    Some(Seen::Body(v)) => v.extend_from_slice(b),
                    _ => seen.push(Seen::Body(b.to_vec())),
                },
                Part::End => seen.push(Seen::End),
            });
        }
        (seen, s.is_readable())
    }

    #[test]
    fn requests_with_length_bodies_in_any_piece_size() {
        let data = b"POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /v1/models HTTP/1.1\r\n\r\n";
        for piece in [1, 3, 17, 1000] {
            let (seen, ok) = read(Side::Client, data, piece);
            assert!(ok);
            assert_eq!(
                seen,
                vec![
                    Seen::Head(Head::Request {
                        method: "POST".into(),
                        path: "/v1/chat/completions".into()
                    }),
                    Seen::Body(b"hello".to_vec()),
                    Seen::End,
                    Seen::Head(Head::Request {
                        method: "GET".into(),
                        path: "/v1/models".into()
                    }),
                    Seen::End,
                ],
                "piece {piece}"
            );
        }
    }

    #[test]
    fn chunked_event_stream_responses_are_unframed() {
        let data = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n6;ext=1\r\ndata: \r\n9\r\n{\"a\":1}\n\n\r\n0\r\nX-Trailer: 1\r\n\r\n";
        for piece in [1, 5, 1000] {
            let (seen, ok) = read(Side::Server, data, piece);
            assert!(ok, "piece {piece}");
            assert_eq!(
                seen,
                vec![
                    Seen::Head(Head::Response {
                        status: 200,
                        event_stream: true,
                        encoding: Encoding::Identity,
                    }),
                    Seen::Body(b"data: {\"a\":1}\n\n".to_vec()),
                    Seen::End
                ]
            );
        }
    }

    #[test]
    fn interim_and_bodiless_responses() {
        let data = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 429 Too Many\r\nContent-Length: 2\r\n\r\n{}";
        let (seen, _) = read(Side::Server, data, 7);
        assert_eq!(
            seen,
            vec![
                Seen::Head(Head::Response {
                    status: 204,
                    event_stream: false,
                    encoding: Encoding::Identity,
                }),
                Seen::End,
                Seen::Head(Head::Response {
                    status: 429,
                    event_stream: false,
                    encoding: Encoding::Identity,
                }),
                Seen::Body(b"{}".to_vec()),
                Seen::End
            ]
        );
    }

    #[test]
    fn http2_garbage_and_broken_chunks_give_up_quietly() {
        for (side, data) in [
            (Side::Client, &b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..]),
            (Side::Server, b"\x16\x03\x01garbage"),
            (
                Side::Server,
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            ),
        ] {
            let (_, ok) = read(side, data, 4);
            assert!(!ok, "{data:?}");
        }
    }

    #[test]
    fn a_gap_inside_a_body_is_skipped_and_inside_a_head_gives_up() {
        let mut s = Stream::new(Side::Server);
        let mut ends = 0;
        let mut count = |p: Part<'_>| ends += usize::from(p == Part::End);
        s.push(
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab",
            &mut count,
        );
        s.skip(6, &mut count);
        s.push(b"cd", &mut count);
        assert!(s.is_readable());
        s.push(b"HTTP/1.1 2", &mut count);
        s.skip(3, &mut count);
        assert!(!s.is_readable());
        assert_eq!(ends, 1);
    }
}
