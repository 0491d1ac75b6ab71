//! Sets of client ids over 1..=n as bitmaps: n/8 bytes on the wire, so telling every client
//! the survivor set costs 125 bytes for n = 1,000.

use alloc::vec;
use alloc::vec::Vec;

use crate::ClientId;
use crate::codec::{Reader, Writer};
use crate::error::CodecError;

/// A set of client ids in 1..=n.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdSet {
    n: u32,
    words: Vec<u64>,
}

impl core::fmt::Debug for IdSet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl IdSet {
    /// The empty set over 1..=n.
    pub fn empty(n: u32) -> Self {
        Self {
            n,
            words: vec![0; (n as usize + 64) / 64],
        }
    }

    /// The set {1, …, n}.
    pub fn full(n: u32) -> Self {
        let mut s = Self::empty(n);
        for id in 1..=n {
            s.insert(id);
        }
        s
    }

    /// Builds a set from ids; ids outside 1..=n are ignored.
    pub fn from_ids(n: u32, ids: impl IntoIterator<Item = ClientId>) -> Self {
        let mut s = Self::empty(n);
        for id in ids {
            s.insert(id);
        }
        s
    }

    /// The universe size n.
    pub fn universe(&self) -> u32 {
        self.n
    }

    /// Adds `id`; returns false if it was present or out of range.
    pub fn insert(&mut self, id: ClientId) -> bool {
        if id == 0 || id > self.n {
            return false;
        }
        let (w, b) = (id as usize / 64, id % 64);
        let had = self.words[w] >> b & 1 == 1;
        self.words[w] |= 1 << b;
        !had
    }

    /// Removes `id`; returns whether it was present.
    pub fn remove(&mut self, id: ClientId) -> bool {
        if !self.contains(id) {
            return false;
        }
        self.words[id as usize / 64] &= !(1 << (id % 64));
        true
    }

    /// Membership.
    pub fn contains(&self, id: ClientId) -> bool {
        id != 0 && id <= self.n && self.words[id as usize / 64] >> (id % 64) & 1 == 1
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|w| *w == 0)
    }

    /// Whether every member of `self` is in `other`.
    pub fn is_subset(&self, other: &IdSet) -> bool {
        self.n == other.n
            && self
                .words
                .iter()
                .zip(&other.words)
                .all(|(a, b)| a & !b == 0)
    }

    /// Members in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = ClientId> + '_ {
        self.words.iter().enumerate().flat_map(|(i, w)| {
            let mut w = *w;
            core::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let b = w.trailing_zeros();
                w &= w - 1;
                Some(i as u32 * 64 + b)
            })
        })
    }

    /// Length of [`IdSet::encode`]'s output.
    pub fn encoded_len(&self) -> usize {
        4 + (self.n as usize + 8) / 8
    }

    /// Encodes as n (u32) and the bitmap bytes.
    pub fn encode(&self, w: &mut Writer) {
        w.u32(self.n);
        let nbytes = (self.n as usize + 8) / 8;
        let mut bytes = Vec::with_capacity(self.words.len() * 8);
        for word in &self.words {
            bytes.extend_from_slice(&word.to_le_bytes());
        }
        w.fixed(&bytes[..nbytes]);
    }

    /// Decodes a set that must have universe `n`; rejects bits outside 1..=n.
    pub fn decode(r: &mut Reader<'_>, n: u32) -> Result<Self, CodecError> {
        let got = r.u32()?;
        if got != n {
            return Err(CodecError::LengthMismatch {
                what: "id set universe",
                expected: n as usize,
                got: got as usize,
            });
        }
        let nbytes = (n as usize + 8) / 8;
        let bytes = r.take(nbytes)?;
        let mut s = Self::empty(n);
        for (i, chunk) in bytes.chunks(8).enumerate() {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            s.words[i] = u64::from_le_bytes(w);
        }
        // Canonical: id 0 and ids above n are never members.
        let top_ok = match s.words.last() {
            Some(last) => {
                let used = (n as usize + 1) - (s.words.len() - 1) * 64;
                used >= 64 || last >> used == 0
            }
            None => true,
        };
        if s.words.first().is_some_and(|w| w & 1 == 1) || !top_ok {
            return Err(CodecError::NonCanonical("id set"));
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn roundtrip(n in 0u32..300, ids in proptest::collection::vec(0u32..320, 0..50)) {
            let s = IdSet::from_ids(n, ids.iter().copied());
            let expect: alloc::collections::BTreeSet<u32> = ids.iter().copied().filter(|i| *i >= 1 && *i <= n).collect();
            prop_assert_eq!(s.iter().collect::<Vec<_>>(), expect.iter().copied().collect::<Vec<_>>());
            prop_assert_eq!(s.len(), expect.len());
            let mut w = Writer::default();
            s.encode(&mut w);
            let buf = w.finish();
            prop_assert_eq!(buf.len(), s.encoded_len());
            let mut r = Reader::new(&buf);
            prop_assert_eq!(IdSet::decode(&mut r, n).unwrap(), s);
            prop_assert!(r.finish().is_ok());
        }
        #[test]
        fn decode_never_panics(n in 0u32..200, bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = IdSet::decode(&mut Reader::new(&bytes), n);
        }
    }

    #[test]
    fn rejects_out_of_range_bits() {
        let mut w = Writer::default();
        w.u32(5).fixed(&[0b0100_0000]); // id 6 > n
        assert!(IdSet::decode(&mut Reader::new(&w.finish()), 5).is_err());
        let mut w = Writer::default();
        w.u32(5).fixed(&[0b0000_0001]); // id 0
        assert!(IdSet::decode(&mut Reader::new(&w.finish()), 5).is_err());
        let mut s = IdSet::full(5);
        assert!(s.remove(3));
        assert!(!s.contains(3));
        assert!(!s.insert(0));
        assert!(s.is_subset(&IdSet::full(5)));
    }
}
