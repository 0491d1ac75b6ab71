//! AES-128-CTR key stream with VAES: 16 blocks per step in eight 256-bit registers.
//!
//! The `aes` crate drives AES-NI one 128-bit block per instruction unless the whole build
//! opts into its VAES backends (a `--cfg` in RUSTFLAGS). CPUs with VAES (Intel Ice Lake and
//! later, AMD Zen 3 and later) encrypt two blocks per instruction, so this is about twice the
//! key stream per core. The output is byte for byte that of `ctr::Ctr64LE<aes::Aes128>`
//! (the tests below compare them at random keys, counters near wrap-around, offsets and
//! lengths): block j is AES_k(le64(iv_lo + j mod 2^64) ‖ iv[8..16]).
//!
//! Chosen at run time by [`AesCtrWide::new`]; without VAES the caller keeps the `aes` crate.
//! Compiled only by Rust ≥ 1.89 (`cfg(secagg_avx512)` from build.rs), where these target
//! features are stable; hence the MSRV lint is off here.
#![allow(clippy::incompatible_msrv)]

use core::arch::x86_64::{
    __m128i, __m256i, __m512i, _mm_aesenc_si128, _mm_aesenclast_si128, _mm_aeskeygenassist_si128,
    _mm_loadu_si128, _mm_set_epi64x, _mm_shuffle_epi32, _mm_slli_si128, _mm_storeu_si128,
    _mm_xor_si128, _mm256_aesenc_epi128, _mm256_aesenclast_epi128, _mm256_broadcastsi128_si256,
    _mm256_set_epi64x, _mm256_storeu_si256, _mm256_xor_si256, _mm512_add_epi32, _mm512_add_epi64,
    _mm512_aesenc_epi128, _mm512_aesenclast_epi128, _mm512_broadcast_i32x4, _mm512_loadu_si512,
    _mm512_set_epi64, _mm512_storeu_si512, _mm512_sub_epi32, _mm512_xor_si512,
};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Blocks per step: eight registers of two blocks (AVX2) or four (AVX-512) keep both AES
/// units busy.
const STEP_BLOCKS: usize = 16;
const STEP_BLOCKS_512: usize = 32;

/// AES-128-CTR (64-bit little-endian counter) positioned at a byte offset.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(super) struct AesCtrWide {
    /// The expanded key: round keys 0..=10.
    round_keys: [[u8; 16]; 11],
    /// The IV's low 64 bits, the counter's start.
    ctr0: u64,
    /// The IV's high 64 bits, fixed.
    nonce: u64,
    /// Key-stream bytes produced so far (the position).
    pos: u64,
    /// AVX-512 is there too: 512-bit registers (32 of them, so nothing spills).
    #[zeroize(skip)]
    avx512: bool,
}

impl AesCtrWide {
    /// `Some` when the CPU has AES-NI, AVX2 and VAES.
    pub(super) fn new(key: &[u8; 16], iv: &[u8; 16]) -> Option<Self> {
        let wide = std::is_x86_feature_detected!("aes")
            && std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("vaes");
        if !wide {
            return None;
        }
        let mut lo = [0u8; 8];
        let mut hi = [0u8; 8];
        lo.copy_from_slice(&iv[..8]);
        hi.copy_from_slice(&iv[8..]);
        let mut s = Self {
            round_keys: [[0; 16]; 11],
            ctr0: u64::from_le_bytes(lo),
            nonce: u64::from_le_bytes(hi),
            pos: 0,
            avx512: std::is_x86_feature_detected!("avx512f"),
        };
        lo.zeroize();
        hi.zeroize();
        // SAFETY: AES-NI is present (checked above).
        unsafe { expand_key(key, &mut s.round_keys) };
        Some(s)
    }

    /// Moves to key-stream byte `pos`.
    pub(super) fn seek(&mut self, pos: u64) {
        self.pos = pos;
    }

    /// Writes the next `buf.len()` key-stream bytes.
    pub(super) fn write_keystream(&mut self, buf: &mut [u8]) {
        let mut done = 0;
        // A partial block first, if the position is inside one.
        let within = (self.pos % 16) as usize;
        if within != 0 {
            let block = self.block(self.pos / 16);
            let n = (16 - within).min(buf.len());
            buf[..n].copy_from_slice(&block[within..within + n]);
            done = n;
        }
        let first = (self.pos + done as u64) / 16;
        let whole = (buf.len() - done) / 16;
        if whole > 0 {
            let out = &mut buf[done..done + whole * 16];
            if self.avx512 {
                // SAFETY: `new` checked AES-NI, AVX2, VAES and AVX-512F.
                unsafe { self.blocks_512(first, out) };
            } else {
                // SAFETY: `new` checked AES-NI, AVX2 and VAES.
                unsafe { self.blocks(first, out) };
            }
            done += whole * 16;
        }
        if done < buf.len() {
            let block = self.block(first + whole as u64);
            let n = buf.len() - done;
            buf[done..].copy_from_slice(&block[..n]);
        }
        self.pos += buf.len() as u64;
    }

    /// Adds (`subtract`: subtracts) the next key-stream words, as little-endian `u32`s, into
    /// a prefix of `acc` without writing the key stream anywhere, and moves past them.
    /// Returns how many words it took: a multiple of 128 (one step), 0 without AVX-512 or
    /// when the position is not on a block boundary. The caller does the rest.
    pub(super) fn accumulate_u32(&mut self, acc: &mut [u32], subtract: bool) -> usize {
        if !self.avx512 || !self.pos.is_multiple_of(16) {
            return 0;
        }
        let words = acc.len() / (STEP_BLOCKS_512 * 4) * (STEP_BLOCKS_512 * 4);
        if words > 0 {
            // SAFETY: `new` checked AES-NI, AVX2, VAES and AVX-512F.
            unsafe { self.accumulate_512(self.pos / 16, &mut acc[..words], subtract) };
            self.pos += words as u64 * 4;
        }
        words
    }

    /// Key-stream block `j`.
    fn block(&self, j: u64) -> [u8; 16] {
        let mut out = [0u8; 16];
        // SAFETY: `new` checked AES-NI.
        unsafe { self.one_block(j, &mut out) };
        out
    }

    #[target_feature(enable = "aes,sse2")]
    fn one_block(&self, j: u64, out: &mut [u8; 16]) {
        let rk = load_keys(&self.round_keys);
        let mut x = _mm_set_epi64x(self.nonce as i64, self.ctr0.wrapping_add(j) as i64);
        x = _mm_xor_si128(x, rk[0]);
        for k in &rk[1..10] {
            x = _mm_aesenc_si128(x, *k);
        }
        x = _mm_aesenclast_si128(x, rk[10]);
        // SAFETY: `out` holds 16 bytes; unaligned store.
        unsafe { _mm_storeu_si128(out.as_mut_ptr().cast(), x) };
    }

    /// Blocks `first..first + out.len() / 16` into `out` (a multiple of 16 bytes).
    #[target_feature(enable = "aes,avx2,vaes")]
    fn blocks(&self, first: u64, out: &mut [u8]) {
        let rk = load_keys(&self.round_keys);
        let wide: [__m256i; 11] = core::array::from_fn(|i| _mm256_broadcastsi128_si256(rk[i]));
        let nonce = self.nonce as i64;
        let mut j = self.ctr0.wrapping_add(first);
        let mut steps = out.chunks_exact_mut(STEP_BLOCKS * 16);
        for step in &mut steps {
            let mut x: [__m256i; STEP_BLOCKS / 2] = core::array::from_fn(|i| {
                let a = j.wrapping_add(2 * i as u64) as i64;
                let b = j.wrapping_add(2 * i as u64 + 1) as i64;
                _mm256_xor_si256(_mm256_set_epi64x(nonce, b, nonce, a), wide[0])
            });
            for k in &wide[1..10] {
                for r in &mut x {
                    *r = _mm256_aesenc_epi128(*r, *k);
                }
            }
            for (i, r) in x.iter().enumerate() {
                let last = _mm256_aesenclast_epi128(*r, wide[10]);
                // SAFETY: `step` holds STEP_BLOCKS × 16 bytes, 32 of them at 32·i.
                unsafe { _mm256_storeu_si256(step.as_mut_ptr().add(32 * i).cast(), last) };
            }
            j = j.wrapping_add(STEP_BLOCKS as u64);
        }
        for block in steps.into_remainder().chunks_exact_mut(16) {
            let mut x = _mm_set_epi64x(nonce, j as i64);
            x = _mm_xor_si128(x, rk[0]);
            for k in &rk[1..10] {
                x = _mm_aesenc_si128(x, *k);
            }
            x = _mm_aesenclast_si128(x, rk[10]);
            // SAFETY: `block` holds 16 bytes.
            unsafe { _mm_storeu_si128(block.as_mut_ptr().cast(), x) };
            j = j.wrapping_add(1);
        }
    }
}

impl AesCtrWide {
    /// [`blocks`](Self::blocks) in 512-bit registers, four blocks each.
    #[target_feature(enable = "aes,avx2,vaes,avx512f")]
    fn blocks_512(&self, first: u64, out: &mut [u8]) {
        let rk = load_keys(&self.round_keys);
        let wide: [__m512i; 11] = core::array::from_fn(|i| _mm512_broadcast_i32x4(rk[i]));
        let nonce = self.nonce as i64;
        let j = self.ctr0.wrapping_add(first);
        // Lane i of register r holds block j + 4r + i; the low halves wrap mod 2^64 as
        // Ctr64LE's counter does, the high halves (the nonce) get + 0.
        let mut ctr: [__m512i; STEP_BLOCKS_512 / 4] = core::array::from_fn(|r| {
            let b = |i: u64| j.wrapping_add(4 * r as u64 + i) as i64;
            _mm512_set_epi64(nonce, b(3), nonce, b(2), nonce, b(1), nonce, b(0))
        });
        let n = STEP_BLOCKS_512 as i64;
        let step = _mm512_set_epi64(0, n, 0, n, 0, n, 0, n);
        let whole = out.len() / (STEP_BLOCKS_512 * 16) * STEP_BLOCKS_512;
        let mut steps = out.chunks_exact_mut(STEP_BLOCKS_512 * 16);
        for chunk in &mut steps {
            let mut x: [__m512i; STEP_BLOCKS_512 / 4] =
                core::array::from_fn(|r| _mm512_xor_si512(ctr[r], wide[0]));
            for k in &wide[1..10] {
                for r in &mut x {
                    *r = _mm512_aesenc_epi128(*r, *k);
                }
            }
            for (i, r) in x.iter().enumerate() {
                let last = _mm512_aesenclast_epi128(*r, wide[10]);
                // SAFETY: `chunk` holds STEP_BLOCKS_512 × 16 bytes, 64 of them at 64·i.
                unsafe { _mm512_storeu_si512(chunk.as_mut_ptr().add(64 * i).cast(), last) };
            }
            for c in &mut ctr {
                *c = _mm512_add_epi64(*c, step);
            }
        }
        let rest = steps.into_remainder();
        if !rest.is_empty() {
            self.blocks(first.wrapping_add(whole as u64), rest);
        }
    }
}

impl AesCtrWide {
    /// The key stream from block `first` added into (or subtracted from) `acc`, 16 words per
    /// register; `acc.len()` is a multiple of STEP_BLOCKS_512 × 4.
    #[target_feature(enable = "aes,avx2,vaes,avx512f")]
    fn accumulate_512(&self, first: u64, acc: &mut [u32], subtract: bool) {
        let rk = load_keys(&self.round_keys);
        let wide: [__m512i; 11] = core::array::from_fn(|i| _mm512_broadcast_i32x4(rk[i]));
        let nonce = self.nonce as i64;
        let j = self.ctr0.wrapping_add(first);
        // As in `blocks_512`: lane i of register r holds block j + 4r + i.
        let mut ctr: [__m512i; STEP_BLOCKS_512 / 4] = core::array::from_fn(|r| {
            let b = |i: u64| j.wrapping_add(4 * r as u64 + i) as i64;
            _mm512_set_epi64(nonce, b(3), nonce, b(2), nonce, b(1), nonce, b(0))
        });
        let n = STEP_BLOCKS_512 as i64;
        let step = _mm512_set_epi64(0, n, 0, n, 0, n, 0, n);
        for words in acc.chunks_exact_mut(STEP_BLOCKS_512 * 4) {
            let mut x: [__m512i; STEP_BLOCKS_512 / 4] =
                core::array::from_fn(|r| _mm512_xor_si512(ctr[r], wide[0]));
            for k in &wide[1..10] {
                for r in &mut x {
                    *r = _mm512_aesenc_epi128(*r, *k);
                }
            }
            for (i, r) in x.iter().enumerate() {
                let ks = _mm512_aesenclast_epi128(*r, wide[10]);
                let at = words[16 * i..16 * i + 16].as_mut_ptr();
                // SAFETY: `at` points at 16 words (64 bytes) of `words`; unaligned accesses.
                unsafe {
                    let a = _mm512_loadu_si512(at.cast());
                    let a = if subtract {
                        _mm512_sub_epi32(a, ks)
                    } else {
                        _mm512_add_epi32(a, ks)
                    };
                    _mm512_storeu_si512(at.cast(), a);
                }
            }
            for c in &mut ctr {
                *c = _mm512_add_epi64(*c, step);
            }
        }
    }
}

#[inline(always)]
fn load_keys(keys: &[[u8; 16]; 11]) -> [__m128i; 11] {
    // SAFETY: each key is 16 readable bytes; unaligned load (SSE2 is baseline on x86-64).
    core::array::from_fn(|i| unsafe { _mm_loadu_si128(keys[i].as_ptr().cast()) })
}

/// The AES-128 key schedule (FIPS-197 §5.2) with AESKEYGENASSIST.
#[target_feature(enable = "aes,sse2")]
fn expand_key(key: &[u8; 16], out: &mut [[u8; 16]; 11]) {
    #[inline]
    #[target_feature(enable = "sse2")]
    fn next(prev: __m128i, assist: __m128i) -> __m128i {
        let t = _mm_shuffle_epi32::<0xff>(assist);
        let mut k = prev;
        k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
        k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
        k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
        _mm_xor_si128(k, t)
    }
    // SAFETY: `key` is 16 readable bytes; unaligned load.
    let mut k = unsafe { _mm_loadu_si128(key.as_ptr().cast()) };
    let mut keys = [k; 11];
    macro_rules! round {
        ($i:expr, $rcon:expr) => {
            k = next(k, _mm_aeskeygenassist_si128::<$rcon>(k));
            keys[$i] = k;
        };
    }
    round!(1, 0x01);
    round!(2, 0x02);
    round!(3, 0x04);
    round!(4, 0x08);
    round!(5, 0x10);
    round!(6, 0x20);
    round!(7, 0x40);
    round!(8, 0x80);
    round!(9, 0x1b);
    round!(10, 0x36);
    for (o, k) in out.iter_mut().zip(&keys) {
        // SAFETY: `o` holds 16 bytes; unaligned store.
        unsafe { _mm_storeu_si128(o.as_mut_ptr().cast(), *k) };
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use aes::Aes128;
    use alloc::vec;
    use ctr::Ctr64LE;
    use ctr::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
    use proptest::prelude::*;

    fn reference(key: &[u8; 16], iv: &[u8; 16], pos: u64, len: usize) -> alloc::vec::Vec<u8> {
        let mut c = Ctr64LE::<Aes128>::new(&(*key).into(), &(*iv).into());
        c.seek(pos);
        let mut out = vec![0u8; len];
        c.write_keystream(&mut out);
        out
    }

    #[test]
    fn fips197_block() {
        // FIPS-197 Appendix C.1: AES-128 of 00112233…ff under 000102…0f. Block 0 of the
        // stream encrypts the IV itself.
        let key: [u8; 16] = core::array::from_fn(|i| i as u8);
        let iv: [u8; 16] = core::array::from_fn(|i| i as u8 * 0x11);
        let Some(c) = AesCtrWide::new(&key, &iv) else {
            return; // no VAES on this CPU: the `aes` crate serves every stream
        };
        assert_eq!(
            c.block(0),
            [
                0x69, 0xc4, 0xe0, 0xd8, 0x6a, 0x7b, 0x04, 0x30, 0xd8, 0xcd, 0xb7, 0x80, 0x70, 0xb4,
                0xc5, 0x5a
            ]
        );
    }

    #[test]
    fn counter_wraps_like_ctr64le() {
        let key = [7u8; 16];
        let mut iv = [0xffu8; 16];
        iv[0] = 0xf0; // 16 blocks before the low half wraps
        let Some(mut c) = AesCtrWide::new(&key, &iv) else {
            return;
        };
        let mut out = vec![0u8; 40 * 16 + 5];
        c.write_keystream(&mut out);
        assert_eq!(out, reference(&key, &iv, 0, out.len()));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn accumulating_equals_adding_the_key_stream(
            key in any::<[u8; 16]>(),
            iv in any::<[u8; 16]>(),
            block in 0u64..300,
            words in 0usize..1000,
            subtract in any::<bool>(),
        ) {
            let Some(mut c) = AesCtrWide::new(&key, &iv) else { return Ok(()); };
            c.seek(block * 16);
            let start: alloc::vec::Vec<u32> =
                (0..words as u32).map(|i| i.wrapping_mul(0x9e37_79b9)).collect();
            let mut acc = start.clone();
            let took = c.accumulate_u32(&mut acc, subtract);
            prop_assert_eq!(took % 128, 0);
            prop_assert!(words - took < 128 || !c.avx512);
            let ks = reference(&key, &iv, block * 16, took * 4);
            for (i, w) in ks.as_chunks::<4>().0.iter().enumerate() {
                let k = u32::from_le_bytes(*w);
                let want = if subtract { start[i].wrapping_sub(k) } else { start[i].wrapping_add(k) };
                prop_assert_eq!(acc[i], want);
            }
            prop_assert_eq!(&acc[took..], &start[took..]);
            // The stream moved past what it took.
            let mut next = [0u8; 16];
            c.write_keystream(&mut next);
            prop_assert_eq!(&next[..], &reference(&key, &iv, block * 16 + took as u64 * 4, 16)[..]);
        }

        #[test]
        fn equals_ctr64le_at_any_offset_and_length(
            key in any::<[u8; 16]>(),
            iv in any::<[u8; 16]>(),
            pos in 0u64..5000,
            lens in proptest::collection::vec(0usize..1200, 1..5),
        ) {
            let Some(mut c) = AesCtrWide::new(&key, &iv) else { return Ok(()); };
            c.seek(pos);
            let total: usize = lens.iter().sum();
            let want = reference(&key, &iv, pos, total);
            let mut got = vec![0u8; total];
            let mut at = 0;
            for n in lens {
                c.write_keystream(&mut got[at..at + n]);
                at += n;
            }
            prop_assert_eq!(got, want);
        }
    }
}
