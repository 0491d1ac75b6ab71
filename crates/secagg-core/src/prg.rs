//! Mask expansion: a 32-byte seed becomes a uniform vector in Z_2^b, added into (or subtracted
//! from) a vector without materialising the key stream.
//!
//! The key stream is AES-128-CTR with a 64-bit little-endian counter (hardware AES where the
//! CPU has it, detected at run time) or ChaCha20 for devices without AES instructions. Each
//! element takes 4 bytes of key stream when b ≤ 32 and 8 otherwise; reducing a uniform 32/64-bit
//! word mod 2^b is exactly uniform because 2^b divides 2^32 / 2^64.
//!
//! The vector may be held in `u32` words when b ≤ 32 ([`crate::ring::RingVec`]): the masks
//! are the same elements, with half the memory traffic.
//!
//! Speed comes from the loop order: the vector is walked in L1-sized chunks and *all* masks
//! are applied to a chunk before moving on, so the vector crosses the memory bus once however
//! many neighbours a client has. When b ≤ 32 the masks of a chunk are first summed in `u32`
//! words (sixteen to a 512-bit register, whatever the vector's word) and the sum is added
//! once: the same result mod 2^b, since 2^b divides 2^32.

use aes::Aes128;
use chacha20::ChaCha20;
use ctr::Ctr64LE;
use ctr::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use zeroize::Zeroize;

use crate::config::PrgKind;
use crate::ring::{Modulus, Word};

/// Elements per chunk: 1,024 × 8 B of vector plus at most 8 KiB of key stream stay in L1.
pub const CHUNK_ELEMS: usize = 1024;

/// Whether a mask is added or subtracted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sign {
    /// Add the mask.
    Plus,
    /// Subtract the mask.
    Minus,
}

impl Sign {
    /// The opposite sign (used to remove a mask).
    pub fn flip(self) -> Sign {
        match self {
            Sign::Plus => Sign::Minus,
            Sign::Minus => Sign::Plus,
        }
    }
}

// Rust ≥ 1.89 only (build.rs): VAES and AVX-512 target features are stable from there.
#[cfg(all(feature = "std", target_arch = "x86_64", secagg_avx512))]
mod aes_wide;

// A client holds about k + 1 streams at once; boxing the larger one would buy nothing.
#[allow(clippy::large_enum_variant)]
enum Cipher {
    Aes(Ctr64LE<Aes128>),
    /// The same key stream as `Aes`, two blocks per instruction (CPUs with VAES).
    #[cfg(all(feature = "std", target_arch = "x86_64", secagg_avx512))]
    AesWide(aes_wide::AesCtrWide),
    ChaCha(ChaCha20),
}

/// One seeded key stream with a sign; [`apply_masks`] consumes it chunk by chunk.
pub struct MaskStream {
    cipher: Cipher,
    sign: Sign,
}

impl MaskStream {
    /// A stream for `seed` (already domain-separated by the caller through HKDF).
    /// The first 16 bytes key AES, the last 16 are its IV; ChaCha20 takes all 32 as key.
    pub fn new(kind: PrgKind, seed: &[u8; 32], sign: Sign) -> Self {
        let cipher = match kind {
            PrgKind::Aes128Ctr => {
                let mut key = [0u8; 16];
                let mut iv = [0u8; 16];
                key.copy_from_slice(&seed[..16]);
                iv.copy_from_slice(&seed[16..]);
                #[cfg(all(feature = "std", target_arch = "x86_64", secagg_avx512))]
                let wide = aes_wide::AesCtrWide::new(&key, &iv);
                #[cfg(not(all(feature = "std", target_arch = "x86_64", secagg_avx512)))]
                let wide: Option<core::convert::Infallible> = None;
                let c = match wide {
                    #[cfg(all(feature = "std", target_arch = "x86_64", secagg_avx512))]
                    Some(w) => Cipher::AesWide(w),
                    #[cfg(not(all(feature = "std", target_arch = "x86_64", secagg_avx512)))]
                    Some(never) => match never {},
                    None => Cipher::Aes(Ctr64LE::<Aes128>::new(&key.into(), &iv.into())),
                };
                key.zeroize();
                iv.zeroize();
                c
            }
            PrgKind::ChaCha20 => Cipher::ChaCha(ChaCha20::new(&(*seed).into(), &[0u8; 12].into())),
        };
        Self { cipher, sign }
    }

    /// Positions the stream at element `index` (for splitting a vector across threads).
    pub fn seek_to_element(&mut self, modulus: Modulus, index: usize) {
        let pos = index as u64 * modulus.stream_bytes_per_element() as u64;
        match &mut self.cipher {
            Cipher::Aes(c) => c.seek(pos),
            #[cfg(all(feature = "std", target_arch = "x86_64", secagg_avx512))]
            Cipher::AesWide(c) => c.seek(pos),
            Cipher::ChaCha(c) => c.seek(pos),
        }
    }

    fn keystream(&mut self, buf: &mut [u8]) {
        match &mut self.cipher {
            Cipher::Aes(c) => c.write_keystream(buf),
            #[cfg(all(feature = "std", target_arch = "x86_64", secagg_avx512))]
            Cipher::AesWide(c) => c.write_keystream(buf),
            Cipher::ChaCha(c) => c.write_keystream(buf),
        }
    }

    /// Adds (or subtracts) this stream's next `acc.len()` 4-byte words into `acc` (b ≤ 32).
    fn accumulate_u32(&mut self, acc: &mut [u32], buf: &mut [u8]) {
        #[cfg(all(feature = "std", target_arch = "x86_64", secagg_avx512))]
        let acc = match &mut self.cipher {
            // Straight from the cipher's registers into the sum, for as much as it can.
            Cipher::AesWide(c) => {
                let took = c.accumulate_u32(acc, self.sign == Sign::Minus);
                &mut acc[took..]
            }
            _ => acc,
        };
        if acc.is_empty() {
            return;
        }
        let ks = &mut buf[..acc.len() * 4];
        self.keystream(ks);
        #[cfg(all(feature = "std", target_arch = "x86_64", secagg_avx512))]
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked just above).
            unsafe { add_words_u32_avx512(acc, ks, self.sign) };
            return;
        }
        #[cfg(all(feature = "std", target_arch = "x86_64"))]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            unsafe { add_words_u32_avx2(acc, ks, self.sign) };
            return;
        }
        add_words_u32(acc, ks, self.sign);
    }

    fn apply_chunk<W: Word>(&mut self, chunk: &mut [W], modulus: Modulus, buf: &mut [u8]) {
        let width = modulus.stream_bytes_per_element();
        let ks = &mut buf[..chunk.len() * width];
        self.keystream(ks);
        #[cfg(all(feature = "std", target_arch = "x86_64"))]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            unsafe { add_keystream_avx2(chunk, ks, width, self.sign) };
            return;
        }
        add_keystream(chunk, ks, width, self.sign);
    }
}

/// Adds (or subtracts) key-stream words of `width` bytes into `chunk`. `as_chunks` gives
/// fixed-size arrays, which the compiler turns into vector loads. A `u32` word only ever
/// meets 4-byte key-stream words (b ≤ 32).
#[inline(always)]
fn add_keystream<W: Word>(chunk: &mut [W], ks: &[u8], width: usize, sign: Sign) {
    match (width, sign) {
        (4, Sign::Plus) => {
            for (x, w) in chunk.iter_mut().zip(ks.as_chunks::<4>().0) {
                *x = x.wrapping_add(W::truncate(u32::from_le_bytes(*w) as u64));
            }
        }
        (4, Sign::Minus) => {
            for (x, w) in chunk.iter_mut().zip(ks.as_chunks::<4>().0) {
                *x = x.wrapping_sub(W::truncate(u32::from_le_bytes(*w) as u64));
            }
        }
        (_, Sign::Plus) => {
            for (x, w) in chunk.iter_mut().zip(ks.as_chunks::<8>().0) {
                *x = x.wrapping_add(W::truncate(u64::from_le_bytes(*w)));
            }
        }
        (_, Sign::Minus) => {
            for (x, w) in chunk.iter_mut().zip(ks.as_chunks::<8>().0) {
                *x = x.wrapping_sub(W::truncate(u64::from_le_bytes(*w)));
            }
        }
    }
}

/// Adds (or subtracts) little-endian `u32` key-stream words into `acc`, wrapping mod 2^32.
#[inline(always)]
fn add_words_u32(acc: &mut [u32], ks: &[u8], sign: Sign) {
    let words = ks.as_chunks::<4>().0;
    match sign {
        Sign::Plus => {
            for (a, w) in acc.iter_mut().zip(words) {
                *a = a.wrapping_add(u32::from_le_bytes(*w));
            }
        }
        Sign::Minus => {
            for (a, w) in acc.iter_mut().zip(words) {
                *a = a.wrapping_sub(u32::from_le_bytes(*w));
            }
        }
    }
}

/// [`add_words_u32`] compiled for AVX-512 (chosen at run time; Rust ≥ 1.89, see build.rs).
#[cfg(all(feature = "std", target_arch = "x86_64", secagg_avx512))]
#[allow(clippy::incompatible_msrv)]
#[target_feature(enable = "avx512f")]
fn add_words_u32_avx512(acc: &mut [u32], ks: &[u8], sign: Sign) {
    add_words_u32(acc, ks, sign)
}

/// [`add_words_u32`] compiled for AVX2 (chosen at run time).
#[cfg(all(feature = "std", target_arch = "x86_64"))]
#[target_feature(enable = "avx2")]
fn add_words_u32_avx2(acc: &mut [u32], ks: &[u8], sign: Sign) {
    add_words_u32(acc, ks, sign)
}

/// `chunk[i] += sum[i]` (wrapping in the word; the caller reduces mod 2^b).
#[inline(always)]
fn add_sum<W: Word>(chunk: &mut [W], sum: &[u32]) {
    for (x, s) in chunk.iter_mut().zip(sum) {
        *x = x.wrapping_add(W::truncate(u64::from(*s)));
    }
}

/// [`add_sum`] compiled for AVX2 (chosen at run time).
#[cfg(all(feature = "std", target_arch = "x86_64"))]
#[target_feature(enable = "avx2")]
fn add_sum_avx2<W: Word>(chunk: &mut [W], sum: &[u32]) {
    add_sum(chunk, sum)
}

/// [`add_keystream`] compiled for AVX2 (chosen at run time; the build stays generic x86-64).
#[cfg(all(feature = "std", target_arch = "x86_64"))]
#[target_feature(enable = "avx2")]
fn add_keystream_avx2<W: Word>(chunk: &mut [W], ks: &[u8], width: usize, sign: Sign) {
    add_keystream(chunk, ks, width, sign)
}

/// Adds (or subtracts) every stream's mask into `vec`, then reduces mod 2^b.
/// The streams must be positioned at `vec[0]` (fresh, or seeked). `W` must hold b bits
/// (`u32` only for b ≤ 32, see [`Modulus::fits_u32`]); a `u32` vector with b > 32 would get
/// the low halves of the masks, which still cancel but are not the `u64` round's masks.
pub fn apply_masks<W: Word>(vec: &mut [W], modulus: Modulus, streams: &mut [MaskStream]) {
    debug_assert!(u32::from(modulus.bits()) <= W::BITS, "word narrower than b");
    let mut buf = [0u8; CHUNK_ELEMS * 8];
    if modulus.stream_bytes_per_element() == 4 && streams.len() > 1 {
        // b ≤ 32: Σ ±mask mod 2^32, added once, equals the masks added one by one mod 2^b.
        let mut sum = [0u32; CHUNK_ELEMS];
        for chunk in vec.chunks_mut(CHUNK_ELEMS) {
            let sum = &mut sum[..chunk.len()];
            sum.fill(0);
            for s in streams.iter_mut() {
                s.accumulate_u32(sum, &mut buf);
            }
            #[cfg(all(feature = "std", target_arch = "x86_64"))]
            if std::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports AVX2 (checked just above).
                unsafe { add_sum_avx2(chunk, sum) };
            } else {
                add_sum(chunk, sum);
            }
            #[cfg(not(all(feature = "std", target_arch = "x86_64")))]
            add_sum(chunk, sum);
            modulus.reduce(chunk);
        }
        // Both held mask material.
        sum.zeroize();
        buf.zeroize();
        return;
    }
    for chunk in vec.chunks_mut(CHUNK_ELEMS) {
        for s in streams.iter_mut() {
            s.apply_chunk(chunk, modulus, &mut buf);
        }
        modulus.reduce(chunk);
    }
    // The buffer held key stream, i.e. mask material.
    buf.zeroize();
}

/// A mask described by its seed, so it can be re-created per thread.
#[derive(Clone)]
pub struct MaskSpec {
    /// The 32-byte seed.
    pub seed: zeroize::Zeroizing<[u8; 32]>,
    /// Add or subtract.
    pub sign: Sign,
}

/// [`apply_masks`] for seeds, splitting the vector across threads when the `parallel`
/// feature is on: each thread seeks every stream to its slice.
pub fn apply_mask_specs<W: Word>(
    vec: &mut [W],
    modulus: Modulus,
    kind: PrgKind,
    specs: &[MaskSpec],
) {
    #[cfg(feature = "parallel")]
    {
        use rayon::prelude::*;
        let threads = rayon::current_num_threads().max(1);
        // Slices of at least 64 chunks, so stream set-up stays negligible.
        let slice = vec
            .len()
            .div_ceil(threads)
            .next_multiple_of(CHUNK_ELEMS)
            .max(64 * CHUNK_ELEMS);
        vec.par_chunks_mut(slice)
            .enumerate()
            .for_each(|(i, part)| apply_specs_at(part, i * slice, modulus, kind, specs));
    }
    #[cfg(not(feature = "parallel"))]
    apply_specs_at(vec, 0, modulus, kind, specs);
}

fn apply_specs_at<W: Word>(
    part: &mut [W],
    offset: usize,
    modulus: Modulus,
    kind: PrgKind,
    specs: &[MaskSpec],
) {
    let mut streams: alloc::vec::Vec<MaskStream> = specs
        .iter()
        .map(|s| {
            let mut m = MaskStream::new(kind, &s.seed, s.sign);
            if offset > 0 {
                m.seek_to_element(modulus, offset);
            }
            m
        })
        .collect();
    apply_masks(part, modulus, &mut streams);
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    fn m(bits: u8) -> Modulus {
        Modulus::new(bits).unwrap()
    }

    #[test]
    fn plus_then_minus_cancels_for_all_kinds_and_widths() {
        for kind in [PrgKind::Aes128Ctr, PrgKind::ChaCha20] {
            for bits in [1u8, 7, 32, 33, 64] {
                let orig: Vec<u64> = (0..3000u64).map(|i| i & m(bits).mask()).collect();
                let mut v = orig.clone();
                let seed = [9u8; 32];
                apply_masks(
                    &mut v,
                    m(bits),
                    &mut [MaskStream::new(kind, &seed, Sign::Plus)],
                );
                assert_ne!(v, orig);
                assert!(v.iter().all(|x| *x <= m(bits).mask()));
                apply_masks(
                    &mut v,
                    m(bits),
                    &mut [MaskStream::new(kind, &seed, Sign::Minus)],
                );
                assert_eq!(v, orig);
            }
        }
    }

    #[test]
    fn many_streams_at_once_equal_one_at_a_time() {
        // b ≤ 32 sums the masks in u32 first; every width must match applying them singly.
        for kind in [PrgKind::Aes128Ctr, PrgKind::ChaCha20] {
            for bits in [1u8, 13, 32, 33, 64] {
                let seeds: Vec<[u8; 32]> = (0..5u8).map(|i| [i.wrapping_mul(37); 32]).collect();
                let sign = |i: usize| {
                    if i.is_multiple_of(2) {
                        Sign::Plus
                    } else {
                        Sign::Minus
                    }
                };
                let orig: Vec<u64> = (0..2500u64).map(|i| (i * 7919) & m(bits).mask()).collect();
                let mut together = orig.clone();
                let mut streams: Vec<MaskStream> = seeds
                    .iter()
                    .enumerate()
                    .map(|(i, s)| MaskStream::new(kind, s, sign(i)))
                    .collect();
                apply_masks(&mut together, m(bits), &mut streams);
                let mut singly = orig.clone();
                for (i, s) in seeds.iter().enumerate() {
                    apply_masks(
                        &mut singly,
                        m(bits),
                        &mut [MaskStream::new(kind, s, sign(i))],
                    );
                }
                assert_eq!(together, singly, "{kind:?} b = {bits}");
                assert_ne!(together, orig);
            }
        }
    }

    #[test]
    fn seeking_matches_sequential() {
        for bits in [16u8, 40] {
            let seed = [3u8; 32];
            let mut whole = vec![0u64; 5000];
            apply_masks(
                &mut whole,
                m(bits),
                &mut [MaskStream::new(PrgKind::Aes128Ctr, &seed, Sign::Plus)],
            );
            let mut tail = vec![0u64; 1000];
            let mut s = MaskStream::new(PrgKind::Aes128Ctr, &seed, Sign::Plus);
            s.seek_to_element(m(bits), 4000);
            apply_masks(&mut tail, m(bits), &mut [s]);
            assert_eq!(&whole[4000..], &tail[..]);
            let spec = MaskSpec {
                seed: zeroize::Zeroizing::new(seed),
                sign: Sign::Plus,
            };
            let mut par = vec![0u64; 5000];
            apply_mask_specs(&mut par, m(bits), PrgKind::Aes128Ctr, &[spec]);
            assert_eq!(par, whole);
        }
    }

    #[test]
    fn u32_words_get_the_same_masks_as_u64_words() {
        // A round's b ≤ 32 vector may live in u32 words (server, simulator): same elements.
        for kind in [PrgKind::Aes128Ctr, PrgKind::ChaCha20] {
            for bits in [1u8, 13, 31, 32] {
                let specs: Vec<MaskSpec> = (0..3u8)
                    .map(|i| MaskSpec {
                        seed: zeroize::Zeroizing::new([i + 1; 32]),
                        sign: if i == 1 { Sign::Minus } else { Sign::Plus },
                    })
                    .collect();
                let wide: Vec<u64> = (0..5000u64).map(|i| (i * 7919) & m(bits).mask()).collect();
                let mut narrow: Vec<u32> = wide.iter().map(|x| *x as u32).collect();
                let mut wide = wide;
                apply_mask_specs(&mut wide, m(bits), kind, &specs);
                apply_mask_specs(&mut narrow, m(bits), kind, &specs);
                let widened: Vec<u64> = narrow.iter().map(|x| u64::from(*x)).collect();
                assert_eq!(widened, wide, "{kind:?} b = {bits}");
            }
        }
    }

    #[test]
    fn aes_ctr_known_answer() {
        // AES-128 of the all-zero block under the all-zero key (FIPS-197 style vector):
        // 66e94bd4ef8a2c3b884cfa59ca342b2e. With IV = 0 the first key-stream word is
        // 0xd44be966 (little-endian), so a zero vector masked at 32 bits starts with it.
        let mut v = vec![0u64; 2];
        apply_masks(
            &mut v,
            m(32),
            &mut [MaskStream::new(PrgKind::Aes128Ctr, &[0u8; 32], Sign::Plus)],
        );
        assert_eq!(v[0], 0xd44b_e966);
        assert_eq!(v[1], 0x3b2c_8aef);
    }

    #[test]
    fn mask_is_roughly_uniform() {
        // Each of the 2^4 values should appear about 1/16 of the time.
        let mut v = vec![0u64; 160_000];
        apply_masks(
            &mut v,
            m(4),
            &mut [MaskStream::new(PrgKind::ChaCha20, &[1u8; 32], Sign::Plus)],
        );
        let mut counts = [0u32; 16];
        for x in v {
            counts[x as usize] += 1;
        }
        assert!(
            counts.iter().all(|c| (9_000..11_000).contains(c)),
            "{counts:?}"
        );
    }
}
