//! A minimal binary codec: little-endian integers, fixed arrays and u32-length-prefixed byte
//! strings. Decoding never panics and never allocates more than the input can back.

use alloc::vec::Vec;

use crate::error::CodecError;

/// Appends encoded values to a byte vector.
#[derive(Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer with room for `cap` bytes.
    pub fn with_capacity(cap: usize) -> Self {
        Self {
            buf: Vec::with_capacity(cap),
        }
    }
    /// One byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }
    /// A u32, little-endian.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// A u64, little-endian.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Raw bytes of a length both sides know.
    pub fn fixed(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }
    /// `len` bytes that `fill` writes in place (e.g. a packed vector), with no intermediate
    /// buffer to copy from or to zeroize.
    pub fn fill(&mut self, len: usize, fill: impl FnOnce(&mut [u8])) -> &mut Self {
        let start = self.buf.len();
        self.buf.resize(start + len, 0);
        fill(&mut self.buf[start..]);
        self
    }
    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }
    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    /// A u32 length, then the bytes.
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        // Lengths above u32::MAX cannot be produced by the protocol (vectors are limited by
        // RoundConfig validation); saturate rather than panic, the reader will reject it.
        self.u32(u32::try_from(v.len()).unwrap_or(u32::MAX));
        self.buf.extend_from_slice(v);
        self
    }
    /// The encoded message.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads encoded values from a byte slice.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }
    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }
    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.buf.len() < n {
            return Err(CodecError::Truncated);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    /// A fixed-size array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    /// One byte.
    pub fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.array::<1>()?[0])
    }
    /// A little-endian u32.
    pub fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    /// A little-endian u64.
    pub fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    /// A u32-length-prefixed byte string of at most `limit` bytes.
    pub fn bytes(&mut self, what: &'static str, limit: usize) -> Result<&'a [u8], CodecError> {
        let len = self.u32()? as usize;
        if len > limit {
            return Err(CodecError::TooLarge {
                what,
                limit,
                got: len,
            });
        }
        self.take(len)
    }
    /// A u32 count of at most `limit` items, each at least `min_item_len` bytes, so that a
    /// forged count cannot make the caller allocate more than the message can hold.
    pub fn count(
        &mut self,
        what: &'static str,
        limit: usize,
        min_item_len: usize,
    ) -> Result<usize, CodecError> {
        let n = self.u32()? as usize;
        if n > limit {
            return Err(CodecError::TooLarge {
                what,
                limit,
                got: n,
            });
        }
        if n.saturating_mul(min_item_len) > self.buf.len() {
            return Err(CodecError::Truncated);
        }
        Ok(n)
    }
    /// Succeeds only if everything was read.
    pub fn finish(self) -> Result<(), CodecError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(CodecError::TrailingBytes(self.buf.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_errors() {
        let mut w = Writer::default();
        w.u8(7).u32(9).u64(11).bytes(b"abc").fixed(&[1, 2]);
        assert_eq!(w.len(), 1 + 4 + 8 + 7 + 2);
        w.fill(2, |b| b.copy_from_slice(&[3, 4]));
        let buf = w.finish();
        let mut r = Reader::new(&buf);
        assert_eq!(r.u8(), Ok(7));
        assert_eq!(r.u32(), Ok(9));
        assert_eq!(r.u64(), Ok(11));
        assert_eq!(r.bytes("b", 3), Ok(&b"abc"[..]));
        assert_eq!(r.array::<2>(), Ok([1, 2]));
        assert_eq!(r.array::<2>(), Ok([3, 4]));
        assert!(r.finish().is_ok());

        let mut r = Reader::new(&buf[..3]);
        assert_eq!(r.u8(), Ok(7));
        assert_eq!(r.u32(), Err(CodecError::Truncated));

        let mut r = Reader::new(&buf[5..]);
        r.u64().ok();
        assert!(matches!(r.bytes("b", 2), Err(CodecError::TooLarge { .. })));
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(r.count("c", usize::MAX, 1), Err(CodecError::Truncated));
        assert_eq!(
            Reader::new(&[1]).finish(),
            Err(CodecError::TrailingBytes(1))
        );
    }
}
