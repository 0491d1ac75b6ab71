//! Vectors in Z_2^b (1 ≤ b ≤ 64) and their wire packing at exactly b bits per element.
//!
//! Elements are held in a machine [`Word`]: `u64` works for every b, `u32` for b ≤ 32 (half
//! the memory and memory traffic). Wrapping word arithmetic followed by a mask is arithmetic
//! mod 2^b because 2^b divides 2^32 and 2^64. [`RingVec`] picks the narrowest word for a
//! round's b. The wire format is b bits per element whatever the word.

use alloc::vec;
use alloc::vec::Vec;

use crate::error::CodecError;

/// A machine word holding elements of Z_2^b: `u32` (for b ≤ 32) or `u64` (any b).
pub trait Word:
    Copy + Default + Eq + Send + Sync + core::fmt::Debug + zeroize::Zeroize + 'static
{
    /// Bits in the word; a modulus of more bits does not fit.
    const BITS: u32;
    /// The low `Self::BITS` bits of `x`.
    fn truncate(x: u64) -> Self;
    /// The value, widened.
    fn widen(self) -> u64;
    /// Wrapping addition.
    fn wrapping_add(self, o: Self) -> Self;
    /// Wrapping subtraction.
    fn wrapping_sub(self, o: Self) -> Self;
    /// Bitwise and.
    fn and(self, m: Self) -> Self;
}

macro_rules! word {
    ($t:ty) => {
        impl Word for $t {
            const BITS: u32 = <$t>::BITS;
            #[inline(always)]
            fn truncate(x: u64) -> Self {
                x as $t
            }
            #[inline(always)]
            fn widen(self) -> u64 {
                self as u64
            }
            #[inline(always)]
            fn wrapping_add(self, o: Self) -> Self {
                <$t>::wrapping_add(self, o)
            }
            #[inline(always)]
            fn wrapping_sub(self, o: Self) -> Self {
                <$t>::wrapping_sub(self, o)
            }
            #[inline(always)]
            fn and(self, m: Self) -> Self {
                self & m
            }
        }
    };
}
word!(u32);
word!(u64);

/// The modulus 2^b of a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Modulus {
    bits: u8,
}

impl Modulus {
    /// 2^`bits`; `None` unless 1 ≤ bits ≤ 64.
    pub const fn new(bits: u8) -> Option<Self> {
        if bits >= 1 && bits <= 64 {
            Some(Self { bits })
        } else {
            None
        }
    }

    /// b.
    pub const fn bits(self) -> u8 {
        self.bits
    }

    /// 2^b - 1, the largest element.
    pub const fn mask(self) -> u64 {
        if self.bits == 64 {
            u64::MAX
        } else {
            (1u64 << self.bits) - 1
        }
    }

    /// Bytes of key stream consumed per element by mask expansion (4 for b ≤ 32, else 8).
    pub const fn stream_bytes_per_element(self) -> usize {
        if self.bits <= 32 { 4 } else { 8 }
    }

    /// Size in bytes of a packed vector of `len` elements.
    pub const fn packed_len(self, len: usize) -> usize {
        // len * bits cannot overflow u128; the result fits usize for any vector in memory.
        ((len as u128 * self.bits as u128).div_ceil(8)) as usize
    }

    /// Whether elements mod 2^b fit in a `u32` (b ≤ 32), the word [`RingVec`] then uses.
    pub const fn fits_u32(self) -> bool {
        self.bits <= 32
    }

    /// 2^b - 1 in the word `W` (all ones when b exceeds the word; such a word cannot hold
    /// the modulus and callers choose the word with [`Modulus::fits_u32`]).
    #[inline(always)]
    fn word_mask<W: Word>(self) -> W {
        W::truncate(self.mask())
    }

    /// Reduces every element mod 2^b.
    pub fn reduce<W: Word>(self, v: &mut [W]) {
        if (self.bits as u32) < W::BITS {
            let m = self.word_mask::<W>();
            v.iter_mut().for_each(|x| *x = x.and(m));
        }
    }

    /// `acc += x` element-wise mod 2^b (both already reduced, or reduced later).
    pub fn add_assign<W: Word>(self, acc: &mut [W], x: &[W]) {
        let m = self.word_mask::<W>();
        acc.iter_mut()
            .zip(x)
            .for_each(|(a, b)| *a = a.wrapping_add(*b).and(m));
    }

    /// `acc -= x` element-wise mod 2^b.
    pub fn sub_assign<W: Word>(self, acc: &mut [W], x: &[W]) {
        let m = self.word_mask::<W>();
        acc.iter_mut()
            .zip(x)
            .for_each(|(a, b)| *a = a.wrapping_sub(*b).and(m));
    }

    /// Packs `values` (each < 2^b; higher bits are dropped) little-endian at b bits each.
    pub fn pack<W: Word>(self, values: &[W]) -> Vec<u8> {
        let mut out = vec![0u8; self.packed_len(values.len())];
        self.pack_into(values, &mut out);
        out
    }

    /// Packs into `out`, which must be exactly `packed_len(values.len())` bytes.
    pub fn pack_into<W: Word>(self, values: &[W], out: &mut [u8]) {
        let m = self.mask();
        match self.bits {
            8 => out
                .iter_mut()
                .zip(values)
                .for_each(|(o, v)| *o = v.widen() as u8),
            16 => pack_bytes::<2, W>(values, out),
            32 => pack_bytes::<4, W>(values, out),
            64 => pack_bytes::<8, W>(values, out),
            b => {
                let mut acc: u128 = 0;
                let mut nbits: u32 = 0;
                let mut pos = 0;
                for v in values {
                    acc |= ((v.widen() & m) as u128) << nbits;
                    nbits += b as u32;
                    while nbits >= 8 {
                        if let Some(o) = out.get_mut(pos) {
                            *o = acc as u8;
                        }
                        pos += 1;
                        acc >>= 8;
                        nbits -= 8;
                    }
                }
                if nbits > 0
                    && let Some(o) = out.get_mut(pos)
                {
                    *o = acc as u8;
                }
            }
        }
    }

    /// Unpacks exactly `len` elements, rejecting a wrong size or nonzero padding bits.
    pub fn unpack(self, bytes: &[u8], len: usize) -> Result<Vec<u64>, CodecError> {
        let mut out = vec![0u64; len];
        self.unpack_with(bytes, len, |i, v| out[i] = v)?;
        Ok(out)
    }

    /// Adds a packed vector of `acc.len()` elements into `acc` mod 2^b without materialising
    /// it: the server's streaming accumulator. `W` must hold b bits (see [`RingVec`]).
    pub fn unpack_add<W: Word>(self, bytes: &[u8], acc: &mut [W]) -> Result<(), CodecError> {
        let m = self.word_mask::<W>();
        // Validate first so that a malformed vector leaves the accumulator untouched.
        self.check_packed(bytes, acc.len())?;
        // Byte-aligned widths: one pass over both slices, which the compiler vectorises.
        match self.bits {
            8 => add_bytes::<1, W>(bytes, acc, m),
            16 => add_bytes::<2, W>(bytes, acc, m),
            32 => add_bytes::<4, W>(bytes, acc, m),
            64 => add_bytes::<8, W>(bytes, acc, m),
            b @ ..=56 => add_bits(bytes, acc, b.into(), m),
            _ => {
                let len = acc.len();
                return self.unpack_with(bytes, len, |i, v| {
                    acc[i] = acc[i].wrapping_add(W::truncate(v)).and(m)
                });
            }
        }
        Ok(())
    }

    fn check_packed(self, bytes: &[u8], len: usize) -> Result<(), CodecError> {
        let expected = self.packed_len(len);
        if bytes.len() != expected {
            return Err(CodecError::LengthMismatch {
                what: "packed vector",
                expected,
                got: bytes.len(),
            });
        }
        let used_bits = (len as u128 * self.bits as u128) % 8;
        if used_bits != 0
            && let Some(last) = bytes.last()
            && last >> used_bits != 0
        {
            return Err(CodecError::NonCanonical("packed vector padding bits"));
        }
        Ok(())
    }

    fn unpack_with(
        self,
        bytes: &[u8],
        len: usize,
        mut sink: impl FnMut(usize, u64),
    ) -> Result<(), CodecError> {
        self.check_packed(bytes, len)?;
        match self.bits {
            8 => bytes
                .iter()
                .enumerate()
                .for_each(|(i, b)| sink(i, *b as u64)),
            16 => unpack_bytes::<2>(bytes, sink),
            32 => unpack_bytes::<4>(bytes, sink),
            64 => unpack_bytes::<8>(bytes, sink),
            b => {
                let m = self.mask() as u128;
                let mut acc: u128 = 0;
                let mut nbits: u32 = 0;
                let mut bytes = bytes.iter();
                for i in 0..len {
                    while nbits < b as u32 {
                        // check_packed guarantees enough bytes; a short read leaves zeros.
                        let byte = bytes.next().copied().unwrap_or(0);
                        acc |= (byte as u128) << nbits;
                        nbits += 8;
                    }
                    sink(i, (acc & m) as u64);
                    acc >>= b;
                    nbits -= b as u32;
                }
            }
        }
        Ok(())
    }
}

fn pack_bytes<const N: usize, W: Word>(values: &[W], out: &mut [u8]) {
    for (o, v) in out.as_chunks_mut::<N>().0.iter_mut().zip(values) {
        o.copy_from_slice(&v.widen().to_le_bytes()[..N]);
    }
}

/// `acc[i] += (element i of bytes, N bytes little-endian)` mod 2^b; the lengths were checked.
#[inline(always)]
fn add_bytes<const N: usize, W: Word>(bytes: &[u8], acc: &mut [W], m: W) {
    for (a, c) in acc.iter_mut().zip(bytes.as_chunks::<N>().0) {
        let mut w = [0u8; 8];
        w[..N].copy_from_slice(c);
        *a = a.wrapping_add(W::truncate(u64::from_le_bytes(w))).and(m);
    }
}

/// `acc[i] += (bits i·b .. (i+1)·b of bytes)` mod 2^b for b ≤ 56: one unaligned 8-byte read
/// per element (its bit offset within the first byte is ≤ 7, so b + 7 ≤ 63 bits fit), zero-padded
/// past the end of `bytes`. The length was checked.
#[inline(always)]
fn add_bits<W: Word>(bytes: &[u8], acc: &mut [W], b: usize, m: W) {
    let field = (1u64 << b) - 1;
    for (i, a) in acc.iter_mut().enumerate() {
        let bit = i * b;
        let off = bit / 8;
        let word = match bytes.get(off..).and_then(|r| r.first_chunk::<8>()) {
            Some(w) => u64::from_le_bytes(*w),
            None => {
                let rest = bytes.get(off..).unwrap_or(&[]);
                let mut w = [0u8; 8];
                w[..rest.len().min(8)].copy_from_slice(&rest[..rest.len().min(8)]);
                u64::from_le_bytes(w)
            }
        };
        *a = a
            .wrapping_add(W::truncate((word >> (bit % 8)) & field))
            .and(m);
    }
}

/// A vector in Z_2^b in the narrowest word that holds b bits: `u32` for b ≤ 32 (4 bytes per
/// element instead of 8), `u64` otherwise. What the server accumulates into and what the
/// simulator keeps its clients' inputs in.
#[derive(Clone, PartialEq, Eq)]
pub enum RingVec {
    /// b ≤ 32.
    U32(Vec<u32>),
    /// Any b (the only choice for b > 32).
    U64(Vec<u64>),
}

impl core::fmt::Debug for RingVec {
    /// The word and length only: the elements may be a client's input or a partial sum.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let word = if matches!(self, RingVec::U32(_)) {
            "u32"
        } else {
            "u64"
        };
        write!(f, "RingVec<{word}>(len {})", self.len())
    }
}

impl RingVec {
    /// `len` zeros in the word `modulus` calls for.
    pub fn zeros(modulus: Modulus, len: usize) -> Self {
        if modulus.fits_u32() {
            RingVec::U32(vec![0; len])
        } else {
            RingVec::U64(vec![0; len])
        }
    }

    /// `values` in the narrowest word for `modulus`. Values that do not fit a `u32` keep the
    /// `u64` word (so that a check against 2^b still sees them, rather than a truncation).
    pub fn from_u64(modulus: Modulus, values: Vec<u64>) -> Self {
        if modulus.fits_u32() && values.iter().all(|x| *x <= u64::from(u32::MAX)) {
            RingVec::U32(values.into_iter().map(|x| x as u32).collect())
        } else {
            RingVec::U64(values)
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            RingVec::U32(v) => v.len(),
            RingVec::U64(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes per element of the storage (4 or 8).
    pub fn word_bytes(&self) -> usize {
        match self {
            RingVec::U32(_) => 4,
            RingVec::U64(_) => 8,
        }
    }

    /// Element `i` (0 when out of range).
    pub fn get(&self, i: usize) -> u64 {
        match self {
            RingVec::U32(v) => v.get(i).map_or(0, |x| u64::from(*x)),
            RingVec::U64(v) => v.get(i).copied().unwrap_or(0),
        }
    }

    /// The largest element (0 when empty).
    pub fn max(&self) -> u64 {
        match self {
            RingVec::U32(v) => v.iter().copied().max().map_or(0, u64::from),
            RingVec::U64(v) => v.iter().copied().max().unwrap_or(0),
        }
    }

    /// The elements widened to `u64`.
    pub fn to_u64(&self) -> Vec<u64> {
        match self {
            RingVec::U32(v) => v.iter().map(|x| u64::from(*x)).collect(),
            RingVec::U64(v) => v.clone(),
        }
    }

    /// The elements as `u64`, without a copy when they already are.
    pub fn into_u64(self) -> Vec<u64> {
        match self {
            RingVec::U32(v) => v.into_iter().map(u64::from).collect(),
            RingVec::U64(v) => v,
        }
    }

    /// `self += x` mod 2^b, element-wise (`x` as long as `self`; a shorter one adds a prefix).
    pub fn add_assign(&mut self, modulus: Modulus, x: &RingVec) {
        match (self, x) {
            (RingVec::U32(a), RingVec::U32(b)) => modulus.add_assign(a, b),
            (RingVec::U64(a), RingVec::U64(b)) => modulus.add_assign(a, b),
            (RingVec::U32(a), RingVec::U64(b)) => a
                .iter_mut()
                .zip(b)
                .for_each(|(a, b)| *a = a.wrapping_add(*b as u32) & modulus.mask() as u32),
            (RingVec::U64(a), RingVec::U32(b)) => a
                .iter_mut()
                .zip(b)
                .for_each(|(a, b)| *a = a.wrapping_add(u64::from(*b)) & modulus.mask()),
        }
    }

    /// Adds a packed vector into `self` mod 2^b ([`Modulus::unpack_add`]).
    pub fn unpack_add(&mut self, modulus: Modulus, bytes: &[u8]) -> Result<(), CodecError> {
        match self {
            RingVec::U32(v) => modulus.unpack_add(bytes, v),
            RingVec::U64(v) => modulus.unpack_add(bytes, v),
        }
    }
}

impl zeroize::Zeroize for RingVec {
    fn zeroize(&mut self) {
        match self {
            RingVec::U32(v) => v.zeroize(),
            RingVec::U64(v) => v.zeroize(),
        }
    }
}

fn unpack_bytes<const N: usize>(bytes: &[u8], mut sink: impl FnMut(usize, u64)) {
    for (i, c) in bytes.chunks_exact(N).enumerate() {
        let mut w = [0u8; 8];
        w[..N].copy_from_slice(c);
        sink(i, u64::from_le_bytes(w));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn modulus_bounds() {
        assert!(Modulus::new(0).is_none());
        assert!(Modulus::new(65).is_none());
        assert_eq!(Modulus::new(64).map(|m| m.mask()), Some(u64::MAX));
        assert_eq!(Modulus::new(1).map(|m| m.mask()), Some(1));
        assert_eq!(Modulus::new(12).map(|m| m.packed_len(3)), Some(5));
    }

    proptest! {
        #[test]
        fn pack_roundtrip(bits in 1u8..=64, raw in proptest::collection::vec(any::<u64>(), 0..70)) {
            let m = Modulus::new(bits).unwrap();
            let mut v = raw.clone();
            m.reduce(&mut v);
            let packed = m.pack(&v);
            prop_assert_eq!(packed.len(), m.packed_len(v.len()));
            prop_assert_eq!(m.unpack(&packed, v.len()).unwrap(), v.clone());
            let mut acc = raw.clone();
            m.reduce(&mut acc);
            let mut expect = acc.clone();
            m.add_assign(&mut expect, &v);
            m.unpack_add(&packed, &mut acc).unwrap();
            prop_assert_eq!(acc, expect);
        }

        #[test]
        fn unpack_never_panics(bits in 1u8..=64, len in 0usize..50, bytes in proptest::collection::vec(any::<u8>(), 0..500)) {
            let m = Modulus::new(bits).unwrap();
            let _ = m.unpack(&bytes, len);
        }
    }

    proptest! {
        #[test]
        fn u32_words_agree_with_u64_words(bits in 1u8..=32, raw in proptest::collection::vec(any::<u64>(), 0..70)) {
            let m = Modulus::new(bits).unwrap();
            let mut wide = raw.clone();
            m.reduce(&mut wide);
            let narrow: Vec<u32> = wide.iter().map(|x| *x as u32).collect();
            prop_assert_eq!(m.pack(&narrow), m.pack(&wide));
            let packed = m.pack(&wide);
            let mut acc = RingVec::zeros(m, wide.len());
            prop_assert_eq!(acc.word_bytes(), 4);
            acc.unpack_add(m, &packed).unwrap();
            acc.unpack_add(m, &packed).unwrap();
            let mut want = wide.clone();
            m.add_assign(&mut want, &wide);
            prop_assert_eq!(acc.to_u64(), want.clone());
            let mut again = RingVec::from_u64(m, wide.clone());
            again.add_assign(m, &RingVec::U64(wide.clone()));
            prop_assert_eq!(again.into_u64(), want);
        }
    }

    #[test]
    fn ring_vec_word_follows_the_modulus() {
        let m32 = Modulus::new(32).unwrap();
        let m33 = Modulus::new(33).unwrap();
        assert_eq!(RingVec::zeros(m32, 3).word_bytes(), 4);
        assert_eq!(RingVec::zeros(m33, 3).word_bytes(), 8);
        assert_eq!(RingVec::from_u64(m32, vec![1, 2]), RingVec::U32(vec![1, 2]));
        // A value ≥ 2^32 is kept whole for the check that refuses it, not truncated.
        let big = vec![1u64 << 32];
        assert_eq!(RingVec::from_u64(m32, big.clone()), RingVec::U64(big));
        assert_eq!(
            alloc::format!("{:?}", RingVec::U32(vec![7; 5])),
            "RingVec<u32>(len 5)"
        );
    }

    #[test]
    fn rejects_bad_length_and_padding() {
        let m = Modulus::new(12).unwrap();
        assert!(matches!(
            m.unpack(&[0u8; 4], 3),
            Err(CodecError::LengthMismatch { .. })
        ));
        // 3 elements x 12 bits = 36 bits: the top 4 bits of the fifth byte must be zero.
        assert_eq!(
            m.unpack(&[0, 0, 0, 0, 0x10], 3),
            Err(CodecError::NonCanonical("packed vector padding bits"))
        );
        let mut acc = vec![5u64; 3];
        assert!(m.unpack_add(&[0, 0, 0, 0, 0x10], &mut acc).is_err());
        assert_eq!(
            acc,
            vec![5u64; 3],
            "a rejected vector must not touch the sum"
        );
    }

    #[test]
    fn arithmetic_wraps_mod_2b() {
        let m = Modulus::new(3).unwrap();
        let mut a = vec![7u64, 0];
        m.add_assign(&mut a, &[1, 9]);
        assert_eq!(a, vec![0, 1]);
        m.sub_assign(&mut a, &[1, 2]);
        assert_eq!(a, vec![7, 7]);
    }
}
