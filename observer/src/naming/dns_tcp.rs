//! DNS over TCP: each connection's answer stream (2-byte length, message,
//! repeated), joined from the segments the kernel copied and cut into
//! whole messages for [`super::dns`]. Bounded: at most `max` streams, the
//! oldest dropped first; the kernel copies at most
//! `DNS_TCP_SEGMENTS_MAX` segments per connection.
use std::collections::VecDeque;

use bytes::Bytes;

use super::Segments;
use crate::fast_map::FastMap;

/// Answer streams followed at once by default.
pub const DEFAULT_DNS_TCP_STREAMS: usize = 1024;

#[derive(Default)]
struct Stream {
    segments: Segments,
    /// Stream bytes already cut into messages.
    consumed: usize,
}

pub struct DnsTcpStreams {
    streams: FastMap<u64, Stream>,
    order: VecDeque<u64>,
    max: usize,
}

impl DnsTcpStreams {
    pub fn new(max: usize) -> Self {
        Self {
            streams: FastMap::default(),
            order: VecDeque::new(),
            max: max.max(1),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// Adds a segment of `cookie`'s answer stream; returns the messages it
    /// completed, in order.
    pub fn push(&mut self, cookie: u64, offset: u32, data: Bytes) -> Vec<Vec<u8>> {
        if !self.streams.contains_key(&cookie) {
            while self.streams.len() >= self.max {
                match self.order.pop_front() {
                    Some(old) => {
                        self.streams.remove(&old);
                    }
                    None => break,
                }
            }
            self.order.push_back(cookie);
        }
        let stream = self.streams.entry(cookie).or_default();
        stream.segments.add(offset, data);
        let prefix = stream.segments.contiguous_prefix();
        let mut messages = Vec::new();
        while let Some(len_bytes) = prefix.get(stream.consumed..stream.consumed + 2) {
            let len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
            let start = stream.consumed + 2;
            let Some(message) = prefix.get(start..start + len) else {
                break;
            };
            messages.push(message.to_vec());
            stream.consumed = start + len;
        }
        messages
    }

    /// Forgets a connection that closed.
    pub fn remove(&mut self, cookie: u64) {
        if self.streams.remove(&cookie).is_some() {
            self.order.retain(|c| *c != cookie);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(messages: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for m in messages {
            out.extend_from_slice(&(m.len() as u16).to_be_bytes());
            out.extend_from_slice(m);
        }
        out
    }

    #[test]
    fn messages_split_over_segments_come_out_whole_and_once() {
        let stream = framed(&[b"first message", b"second"]);
        let mut s = DnsTcpStreams::new(4);
        // The length prefix and the first bytes in one segment, the rest later.
        assert!(
            s.push(1, 0, Bytes::copy_from_slice(&stream[..5]))
                .is_empty()
        );
        let out = s.push(1, 5, Bytes::copy_from_slice(&stream[5..]));
        assert_eq!(out, vec![b"first message".to_vec(), b"second".to_vec()]);
        // A retransmit of what was read gives nothing again.
        assert!(
            s.push(1, 0, Bytes::copy_from_slice(&stream[..5]))
                .is_empty()
        );
    }

    #[test]
    fn a_gap_waits_and_the_oldest_stream_leaves_when_full() {
        let stream = framed(&[b"abc"]);
        let mut s = DnsTcpStreams::new(2);
        assert!(
            s.push(1, 2, Bytes::copy_from_slice(&stream[2..]))
                .is_empty()
        );
        s.push(2, 0, Bytes::from_static(b"\x00"));
        s.push(3, 0, Bytes::from_static(b"\x00"));
        // Stream 1 was dropped for 3: its first bytes now complete nothing.
        assert!(
            s.push(1, 0, Bytes::copy_from_slice(&stream[..2]))
                .is_empty()
        );
        s.remove(1);
        s.remove(2);
        s.remove(3);
        assert!(s.is_empty());
    }
}
