//! A cursor over packet bytes: every read is bounds-checked and names the
//! field it was reading, so a short packet says where it ended.
use super::QuicError;

pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub fn u8(&mut self, field: &'static str) -> Result<u8, QuicError> {
        Ok(self.take(1, field)?[0])
    }

    pub fn u32(&mut self, field: &'static str) -> Result<u32, QuicError> {
        let b = self.take(4, field)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], QuicError> {
        if n > self.remaining() {
            return Err(QuicError::Short(field));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// A variable-length integer (RFC 9000 §16): the top two bits of the
    /// first byte give its length, 1, 2, 4 or 8 bytes.
    pub fn varint(&mut self, field: &'static str) -> Result<u64, QuicError> {
        let first = *self.buf.get(self.pos).ok_or(QuicError::Short(field))?;
        let len = 1usize << (first >> 6);
        let bytes = self.take(len, field)?;
        let mut value = u64::from(first & 0x3f);
        for &b in &bytes[1..] {
            value = value << 8 | u64::from(b);
        }
        Ok(value)
    }

    /// A varint used as a length within this buffer: one that runs past
    /// the end is `Short`, before anything trusts it.
    pub fn length(&mut self, field: &'static str) -> Result<usize, QuicError> {
        let len = self.varint(field)?;
        usize::try_from(len)
            .ok()
            .filter(|&len| len <= self.remaining())
            .ok_or(QuicError::Short(field))
    }

    /// Skips the run of zero bytes (PADDING frames) starting here: one
    /// step instead of one loop turn per byte of a 1200-byte datagram.
    pub fn skip_zeros(&mut self) {
        let run = self.buf[self.pos..].iter().take_while(|&&b| b == 0).count();
        self.pos += run;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_of_every_length_decode_as_rfc_9000_appendix_a1_shows() {
        for (bytes, want) in [
            (
                &b"\xc2\x19\x7c\x5e\xff\x14\xe8\x8c"[..],
                151_288_809_941_952_652u64,
            ),
            (b"\x9d\x7f\x3e\x7d", 494_878_333),
            (b"\x7b\xbd", 15_293),
            (b"\x25", 37),
            (b"\x40\x25", 37),
        ] {
            let mut r = Reader::new(bytes);
            assert_eq!(r.varint("v"), Ok(want));
            assert!(r.is_empty());
        }
    }

    #[test]
    fn varint_cut_short_names_its_field() {
        let mut r = Reader::new(b"\x9d\x7f");
        assert_eq!(
            r.varint("token length"),
            Err(QuicError::Short("token length"))
        );
    }

    #[test]
    fn length_beyond_the_buffer_is_short() {
        let mut r = Reader::new(b"\x05abc");
        assert_eq!(r.length("len"), Err(QuicError::Short("len")));
    }

    #[test]
    fn padding_run_is_skipped_to_the_next_non_zero_byte() {
        let mut r = Reader::new(b"\x00\x00\x00\x06");
        r.skip_zeros();
        assert_eq!(r.pos(), 3);
        r.skip_zeros();
        assert_eq!(r.pos(), 3);
    }
}
