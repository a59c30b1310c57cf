//! One connection's plaintext, both directions, → the requests it carried.
//! The kernel copies each TLS library call in chunks (up to a limit, and
//! loses some when its ring is full): [`Cursor`] turns that into bytes
//! seen and bytes skipped. The client's first bytes say which HTTP it
//! speaks: the HTTP/2 preface, or HTTP/1.1.
use super::{
    h1::H1,
    h2::{H2, PREFACE},
    http1::Side,
    request::Request,
};

/// Where one direction is in the library call it is reading: what was not
/// copied is skipped, never guessed.
#[derive(Default)]
struct Cursor {
    /// Bytes of the current call, and how far they were read.
    total: u64,
    next: u64,
}

/// Bytes of one call the kernel copies at most (its full programs; see
/// `Exchange::with_call_copy_max`).
pub const CALL_COPY_MAX: u64 =
    observer_common::TLS_CHUNKS_MAX as u64 * observer_common::PAYLOAD_CAPTURE_MAX as u64;
/// What the client read before its first write, kept until the first
/// write says which HTTP this is (a server's SETTINGS can come first).
const EARLY_READ_MAX: usize = 64 * 1024;

impl Cursor {
    /// A chunk at `offset` of a call of `total` bytes: returns the bytes
    /// missed before it, and the bytes missed after it when it is the last
    /// one the kernel copies. A repeated chunk reads as `None`.
    fn place(&mut self, offset: u32, total: u32, len: usize, copy_max: u64) -> Option<(u64, u64)> {
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
        let after = if self.next >= copy_max.min(total) {
            let rest = total.saturating_sub(self.next);
            self.next = total;
            rest
        } else {
            0
        };
        Some((before, after))
    }
}

enum Proto {
    /// Nothing written yet; what was read is kept (with any skipped count).
    Unknown {
        early: Vec<u8>,
        lost: bool,
    },
    H1(Box<H1>),
    H2(Box<H2>),
}

pub struct Exchange {
    cursors: [Cursor; 2],
    /// Bytes of one library call the kernel copies at most.
    copy_max: u64,
    proto: Proto,
    done: Vec<Request>,
}

impl Default for Exchange {
    fn default() -> Self {
        Self::new()
    }
}

impl Exchange {
    pub fn new() -> Self {
        Self::with_call_copy_max(CALL_COPY_MAX)
    }

    /// A connection whose library calls are copied up to `copy_max` bytes.
    pub fn with_call_copy_max(copy_max: u64) -> Self {
        Self {
            cursors: Default::default(),
            copy_max,
            proto: Proto::Unknown {
                early: Vec::new(),
                lost: false,
            },
            done: Vec::new(),
        }
    }

    /// False once the connection's HTTP stopped making sense.
    pub fn is_readable(&self) -> bool {
        match &self.proto {
            Proto::Unknown { lost, .. } => !lost,
            Proto::H1(h) => h.is_readable(),
            Proto::H2(h) => h.is_readable(),
        }
    }

    /// A chunk of a library call the kernel copied: `side` Client for
    /// what the client wrote, Server for what it read.
    pub fn chunk(&mut self, side: Side, offset: u32, total: u32, data: &[u8], ts_ns: u64) {
        let Some((before, after)) =
            self.cursors[side as usize].place(offset, total, data.len(), self.copy_max)
        else {
            return;
        };
        if before > 0 {
            self.push(side, &[], before, ts_ns);
        }
        self.push(side, data, after, ts_ns);
    }

    /// Plaintext the client wrote; `skipped` bytes after it were not seen.
    pub fn wrote(&mut self, data: &[u8], skipped: u64, ts_ns: u64) {
        self.push(Side::Client, data, skipped, ts_ns);
    }

    /// Plaintext the client read; `skipped` bytes after it were not seen.
    pub fn read(&mut self, data: &[u8], skipped: u64, ts_ns: u64) {
        self.push(Side::Server, data, skipped, ts_ns);
    }

    fn push(&mut self, side: Side, data: &[u8], skipped: u64, ts_ns: u64) {
        if let Proto::Unknown { early, lost } = &mut self.proto {
            if side == Side::Server || data.is_empty() {
                if early.len() + data.len() > EARLY_READ_MAX || skipped > 0 || side == Side::Client
                {
                    *lost = true;
                } else {
                    early.extend_from_slice(data);
                }
                return;
            }
            let (early, lost) = (std::mem::take(early), *lost);
            let h2 = data.starts_with(&PREFACE[..PREFACE.len().min(data.len())]);
            self.proto = if h2 {
                Proto::H2(Box::default())
            } else {
                Proto::H1(Box::default())
            };
            if !early.is_empty() || lost {
                self.push(Side::Server, &early, u64::from(lost), ts_ns);
            }
        }
        let done = &mut self.done;
        match (&mut self.proto, side) {
            (Proto::Unknown { .. }, _) => {}
            (Proto::H1(h), Side::Client) => h.wrote(data, skipped, ts_ns, done),
            (Proto::H1(h), Side::Server) => h.read(data, skipped, ts_ns, done),
            (Proto::H2(h), side) => h.push(side, data, skipped, ts_ns, done),
        }
    }

    /// The connection closed: requests still open end now (without a
    /// status when no response came).
    pub fn closed(&mut self, ts_ns: u64) -> Vec<Request> {
        match &mut self.proto {
            Proto::Unknown { .. } => {}
            Proto::H1(h) => h.closed(ts_ns, &mut self.done),
            Proto::H2(h) => h.closed(ts_ns, &mut self.done),
        }
        std::mem::take(&mut self.done)
    }

    /// Requests whose responses ended since the last call.
    pub fn take_done(&mut self) -> Vec<Request> {
        std::mem::take(&mut self.done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspection::{Operation, Usage, response::DECODED_MAX};
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
        assert_eq!(c.place(0, total, chunk, CALL_COPY_MAX), Some((0, 0)));
        // The second chunk was lost.
        assert_eq!(
            c.place(2 * chunk as u32, total, chunk, CALL_COPY_MAX),
            Some((chunk as u64, 0))
        );
        assert_eq!(
            c.place(2 * chunk as u32, total, chunk, CALL_COPY_MAX),
            None,
            "a repeat"
        );
        let last = (CALL_COPY_MAX as usize - chunk) as u32;
        assert_eq!(
            c.place(last, total, chunk, CALL_COPY_MAX),
            Some((last as u64 - 3 * chunk as u64, 100))
        );
        // A short call; then one whose tail was lost before the next call.
        assert_eq!(c.place(0, 10, 10, CALL_COPY_MAX), Some((0, 0)));
        assert_eq!(c.place(0, 5000, chunk, CALL_COPY_MAX), Some((0, 0)));
        assert_eq!(
            c.place(0, 10, 10, CALL_COPY_MAX),
            Some((5000 - chunk as u64, 0))
        );
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
    fn the_http2_preface_picks_http2_and_an_early_server_read_is_kept() {
        let mut ex = Exchange::new();
        // The server's SETTINGS read before the client wrote anything.
        let settings = [0u8, 0, 0, 4, 0, 0, 0, 0, 0];
        ex.read(&settings, 0, 0);
        let mut enc = loona_hpack::Encoder::new();
        let head = enc.encode([(&b":method"[..], &b"GET"[..]), (b":path", b"/v1/models")]);
        let mut out = crate::inspection::h2::PREFACE.to_vec();
        out.extend([0, 0, head.len() as u8, 1, 0x5, 0, 0, 0, 1]);
        out.extend(&head);
        ex.wrote(&out, 0, 0);
        let mut resp_enc = loona_hpack::Encoder::new();
        let head = resp_enc.encode([(&b":status"[..], &b"200"[..])]);
        let mut inn = vec![0, 0, head.len() as u8, 1, 0x5, 0, 0, 0, 1];
        inn.extend(&head);
        ex.read(&inn, 0, 0);
        let done = ex.take_done();
        assert!(ex.is_readable());
        assert_eq!(done.len(), 1, "{done:?}");
        assert_eq!(
            (done[0].operation, done[0].status),
            (Operation::ListModels, 200)
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
