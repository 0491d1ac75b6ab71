//! Vectors in Z_2^b (1 ≤ b ≤ 64) and their wire packing at exactly b bits per element.
//!
//! Elements are held in `u64` whatever b is: wrapping `u64` arithmetic followed by a mask is
//! arithmetic mod 2^b because 2^b divides 2^64. Only the wire format is narrow.

use alloc::vec;
use alloc::vec::Vec;

use crate::error::CodecError;

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

    /// Reduces every element mod 2^b.
    pub fn reduce(self, v: &mut [u64]) {
        let m = self.mask();
        if m != u64::MAX {
            v.iter_mut().for_each(|x| *x &= m);
        }
    }

    /// `acc += x` element-wise mod 2^b (both already reduced, or reduced later).
    pub fn add_assign(self, acc: &mut [u64], x: &[u64]) {
        let m = self.mask();
        acc.iter_mut()
            .zip(x)
            .for_each(|(a, b)| *a = a.wrapping_add(*b) & m);
    }

    /// `acc -= x` element-wise mod 2^b.
    pub fn sub_assign(self, acc: &mut [u64], x: &[u64]) {
        let m = self.mask();
        acc.iter_mut()
            .zip(x)
            .for_each(|(a, b)| *a = a.wrapping_sub(*b) & m);
    }

    /// Packs `values` (each < 2^b; higher bits are dropped) little-endian at b bits each.
    pub fn pack(self, values: &[u64]) -> Vec<u8> {
        let mut out = vec![0u8; self.packed_len(values.len())];
        self.pack_into(values, &mut out);
        out
    }

    /// Packs into `out`, which must be exactly `packed_len(values.len())` bytes.
    pub fn pack_into(self, values: &[u64], out: &mut [u8]) {
        let m = self.mask();
        match self.bits {
            8 => out.iter_mut().zip(values).for_each(|(o, v)| *o = *v as u8),
            16 => pack_bytes::<2>(values, out),
            32 => pack_bytes::<4>(values, out),
            64 => pack_bytes::<8>(values, out),
            b => {
                let mut acc: u128 = 0;
                let mut nbits: u32 = 0;
                let mut pos = 0;
                for v in values {
                    acc |= ((v & m) as u128) << nbits;
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
    /// it: the server's streaming accumulator.
    pub fn unpack_add(self, bytes: &[u8], acc: &mut [u64]) -> Result<(), CodecError> {
        let m = self.mask();
        // Validate first so that a malformed vector leaves the accumulator untouched.
        self.check_packed(bytes, acc.len())?;
        let len = acc.len();
        self.unpack_with(bytes, len, |i, v| acc[i] = acc[i].wrapping_add(v) & m)
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

fn pack_bytes<const N: usize>(values: &[u64], out: &mut [u8]) {
    for (o, v) in out.chunks_exact_mut(N).zip(values) {
        o.copy_from_slice(&v.to_le_bytes()[..N]);
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
