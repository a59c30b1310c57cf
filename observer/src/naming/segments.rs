//! The first segments of a client's stream, as the kernel copied them (each
//! with its stream offset), joined back into one prefix for the parsers.
use bytes::Bytes;

/// Segments of one connection, by offset; duplicates (retransmits) are kept
/// once. The kernel sends at most `PAYLOAD_SEGMENTS_MAX` per connection, so
/// this stays small.
#[derive(Debug, Default)]
pub struct Segments {
    parts: Vec<(u32, Bytes)>,
}

impl Segments {
    pub fn add(&mut self, offset: u32, data: Bytes) {
        if !self.parts.iter().any(|(off, _)| *off == offset) {
            self.parts.push((offset, data));
            self.parts.sort_by_key(|(off, _)| *off);
        }
    }

    /// The stream bytes from offset 0 up to the first gap.
    pub fn contiguous_prefix(&self) -> Vec<u8> {
        let mut out: Vec<u8> = Vec::new();
        for (offset, data) in &self.parts {
            let offset = *offset as usize;
            if offset > out.len() {
                break;
            }
            let skip = out.len() - offset;
            if skip < data.len() {
                out.extend_from_slice(&data[skip..]);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segments(parts: &[(u32, &'static [u8])]) -> Segments {
        let mut s = Segments::default();
        for (off, data) in parts {
            s.add(*off, Bytes::from_static(data));
        }
        s
    }

    #[test]
    fn contiguous_prefix_joins_segments_and_stops_at_gaps() {
        let s = segments(&[(0, b"abc"), (10, b"x"), (3, b"def")]);
        assert_eq!(s.contiguous_prefix(), b"abcdef");
        let overlapping = segments(&[(0, b"abc"), (2, b"cde")]);
        assert_eq!(overlapping.contiguous_prefix(), b"abcde");
    }

    #[test]
    fn a_retransmitted_segment_is_kept_once() {
        let s = segments(&[(0, b"ab"), (0, b"ab"), (2, b"c")]);
        assert_eq!(s.contiguous_prefix(), b"abc");
    }
}
