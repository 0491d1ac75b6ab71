//! Randomized Hadamard rotation x ↦ H·D·x (Kairouz, Liu, Steinke 2021, §4): D is a diagonal of
//! ±1 signs from a **public** per-round seed, H the normalised Walsh–Hadamard matrix
//! (orthogonal and symmetric, so the inverse is D·H). It spreads a vector's norm evenly over
//! the coordinates, which keeps every coordinate of the sum small (no modular overflow) and
//! makes per-coordinate rounding errors look alike.
//!
//! The signs come from ChaCha20 keyed with the seed, on a stream reserved for this purpose so
//! the same seed used elsewhere gives unrelated bits.

use alloc::format;
use alloc::vec::Vec;

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

use crate::DpError;

/// ChaCha20 stream id of the rotation signs ("rotation" in ASCII).
const SIGN_STREAM: u64 = u64::from_be_bytes(*b"rotation");

/// The dimension after zero padding: the next power of two (None if it does not fit).
pub fn padded_dim(dim: usize) -> Option<usize> {
    dim.max(1).checked_next_power_of_two()
}

/// Butterfly stages run inside blocks of this many values (256 KiB of f64, cache-resident)
/// before the remaining stages sweep the whole vector.
const FWHT_BLOCK: usize = 1 << 15;

/// Butterflies of stages h = `from`, 2·`from`, … below `to` over `x`.
fn butterflies(x: &mut [f64], from: usize, to: usize) {
    let mut h = from;
    while h < to && h < x.len() {
        for block in x.chunks_exact_mut(2 * h) {
            let (a, b) = block.split_at_mut(h);
            for (u, v) in a.iter_mut().zip(b.iter_mut()) {
                let (s, t) = (*u + *v, *u - *v);
                *u = s;
                *v = t;
            }
        }
        h *= 2;
    }
}

/// The first three stages (h = 1, 2, 4) as one 8-point transform per chunk: the generic loop
/// is poorly vectorised for such short runs.
fn first_stages(x: &mut [f64]) {
    for c in x.chunks_exact_mut(8) {
        let (a0, a1) = (c[0] + c[1], c[0] - c[1]);
        let (a2, a3) = (c[2] + c[3], c[2] - c[3]);
        let (a4, a5) = (c[4] + c[5], c[4] - c[5]);
        let (a6, a7) = (c[6] + c[7], c[6] - c[7]);
        let (b0, b2) = (a0 + a2, a0 - a2);
        let (b1, b3) = (a1 + a3, a1 - a3);
        let (b4, b6) = (a4 + a6, a4 - a6);
        let (b5, b7) = (a5 + a7, a5 - a7);
        c[0] = b0 + b4;
        c[4] = b0 - b4;
        c[1] = b1 + b5;
        c[5] = b1 - b5;
        c[2] = b2 + b6;
        c[6] = b2 - b6;
        c[3] = b3 + b7;
        c[7] = b3 - b7;
    }
}

/// The unnormalised transform (H·√d) in place; `x.len()` a power of two. The first
/// log2(FWHT_BLOCK) stages run block by block so that large vectors stream through memory a
/// few times, not log2(d) times.
fn fwht_unnormalised(x: &mut [f64]) {
    let n = x.len();
    debug_assert!(n.is_power_of_two());
    for block in x.chunks_mut(FWHT_BLOCK) {
        if block.len() >= 8 {
            first_stages(block);
            butterflies(block, 8, FWHT_BLOCK);
        } else {
            butterflies(block, 1, FWHT_BLOCK);
        }
    }
    butterflies(x, FWHT_BLOCK, n);
}

/// The normalised fast Walsh–Hadamard transform in place, O(d log d); `x.len()` must be a
/// power of two. It is its own inverse.
pub fn fwht(x: &mut [f64]) {
    fwht_unnormalised(x);
    let norm = 1.0 / libm::sqrt(x.len() as f64);
    for v in x.iter_mut() {
        *v *= norm;
    }
}

/// The rotation H·D for one round.
#[derive(Clone, PartialEq, Eq)]
pub struct Rotation {
    /// Bit i set: D_ii = −1.
    signs: Vec<u64>,
    dim: usize,
}

impl core::fmt::Debug for Rotation {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Rotation")
            .field("dim", &self.dim)
            .finish_non_exhaustive()
    }
}

impl Rotation {
    /// The rotation of dimension `dim` (a power of two) derived from the round's public seed.
    pub fn new(seed: &[u8; 32], dim: usize) -> Result<Self, DpError> {
        if !dim.is_power_of_two() {
            return Err(DpError(format!(
                "the rotation dimension must be a power of two, got {dim}"
            )));
        }
        let mut prg = ChaCha20Rng::from_seed(*seed);
        prg.set_stream(SIGN_STREAM);
        let signs = (0..dim.div_ceil(64)).map(|_| prg.next_u64()).collect();
        Ok(Self { signs, dim })
    }

    /// The dimension d (a power of two).
    pub fn dim(&self) -> usize {
        self.dim
    }

    fn check(&self, x: &[f64]) -> Result<(), DpError> {
        if x.len() != self.dim {
            return Err(DpError(format!(
                "the rotation expects {} values (padded), got {}",
                self.dim,
                x.len()
            )));
        }
        Ok(())
    }

    /// x ← factor·D·x. The sign flip is an XOR of the sign bit: a branch on random bits
    /// would be mispredicted half the time.
    fn apply_signs_scaled(&self, x: &mut [f64], factor: f64) {
        for (chunk, &word) in x.chunks_mut(64).zip(&self.signs) {
            for (j, v) in chunk.iter_mut().enumerate() {
                let flip = ((word >> j) & 1) << 63;
                *v = f64::from_bits(v.to_bits() ^ flip) * factor;
            }
        }
    }

    /// x ← H·D·x.
    pub fn forward(&self, x: &mut [f64]) -> Result<(), DpError> {
        self.forward_scaled(x, 1.0)
    }

    /// x ← factor·H·D·x, with the factor and the transform's normalisation folded into the
    /// sign pass (one sweep fewer than scaling separately).
    pub fn forward_scaled(&self, x: &mut [f64], factor: f64) -> Result<(), DpError> {
        self.check(x)?;
        self.apply_signs_scaled(x, factor / libm::sqrt(self.dim as f64));
        fwht_unnormalised(x);
        Ok(())
    }

    /// y ← D·H·y, the inverse of [`Self::forward`].
    pub fn inverse(&self, y: &mut [f64]) -> Result<(), DpError> {
        self.check(y)?;
        fwht_unnormalised(y);
        self.apply_signs_scaled(y, 1.0 / libm::sqrt(self.dim as f64));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    /// Naive O(d²) normalised Hadamard: H_ij = (−1)^popcount(i & j) / √d.
    fn naive(x: &[f64]) -> Vec<f64> {
        let n = x.len();
        (0..n)
            .map(|i| {
                (0..n)
                    .map(|j| {
                        if (i & j).count_ones() % 2 == 0 {
                            x[j]
                        } else {
                            -x[j]
                        }
                    })
                    .sum::<f64>()
                    / libm::sqrt(n as f64)
            })
            .collect()
    }

    #[test]
    fn fwht_matches_the_naive_transform() {
        for n in [1usize, 2, 4, 8, 64, 256] {
            let x: Vec<f64> = (0..n)
                .map(|i| (i as f64 * 0.37).sin() * 3.0 - 0.5)
                .collect();
            let mut y = x.clone();
            fwht(&mut y);
            for (a, b) in y.iter().zip(naive(&x)) {
                assert!((a - b).abs() < 1e-12, "n = {n}");
            }
        }
    }

    #[test]
    fn blocked_stages_match_the_plain_transform() {
        let n = 4 * FWHT_BLOCK;
        let x: Vec<f64> = (0..n).map(|i| ((i * 7919) % 1013) as f64 - 500.0).collect();
        let mut blocked = x.clone();
        fwht(&mut blocked);
        let mut plain = x.clone();
        butterflies(&mut plain, 1, n);
        let norm = 1.0 / libm::sqrt(n as f64);
        for (a, b) in blocked.iter().zip(&plain) {
            assert!((a - b * norm).abs() < 1e-9);
        }
        // A spike at the end reaches coordinate 0 through the cross-block stages.
        let mut e = vec![0.0; n];
        e[n - 1] = 1.0;
        fwht(&mut e);
        assert!((e[0] - norm).abs() < 1e-15 && (e[n - 1] + norm).abs() < 1e-15);
    }

    /// The folded factor is the same as scaling afterwards, and D is the seed's sign pattern
    /// (H·D·e_i = sign_i·H·e_i).
    #[test]
    fn forward_scaled_is_a_scaled_forward_with_the_seeds_signs() {
        let r = Rotation::new(&[4; 32], 256).unwrap();
        let x: Vec<f64> = (0..256).map(|i| ((i * 31) % 17) as f64 - 8.0).collect();
        let (mut a, mut b) = (x.clone(), x.clone());
        r.forward(&mut a).unwrap();
        r.forward_scaled(&mut b, -2.5).unwrap();
        for (u, v) in a.iter().zip(&b) {
            assert!((u * -2.5 - v).abs() < 1e-12);
        }
        for i in [0usize, 1, 63, 64, 200] {
            let mut e = vec![0.0; 256];
            e[i] = 1.0;
            r.forward(&mut e).unwrap();
            let mut h = vec![0.0; 256];
            h[i] = 1.0;
            fwht(&mut h);
            let sign = if (r.signs[i / 64] >> (i % 64)) & 1 == 1 {
                -1.0
            } else {
                1.0
            };
            assert!(e.iter().zip(&h).all(|(p, q)| (p - sign * q).abs() < 1e-15));
        }
    }

    #[test]
    fn rotation_inverts_and_preserves_the_norm() {
        let r = Rotation::new(&[9; 32], 1024).unwrap();
        let x: Vec<f64> = (0..1024)
            .map(|i| ((i * 7919) % 113) as f64 - 50.0)
            .collect();
        let mut y = x.clone();
        r.forward(&mut y).unwrap();
        let norm = |v: &[f64]| v.iter().map(|a| a * a).sum::<f64>().sqrt();
        assert!((norm(&x) - norm(&y)).abs() < 1e-9 * norm(&x));
        assert!(y != x);
        r.inverse(&mut y).unwrap();
        for (a, b) in x.iter().zip(&y) {
            assert!((a - b).abs() < 1e-9);
        }
        // A spike is spread over every coordinate with magnitude 1/√d.
        let mut e = vec![0.0; 1024];
        e[5] = 1.0;
        r.forward(&mut e).unwrap();
        assert!(e.iter().all(|v| (v.abs() - 1.0 / 32.0).abs() < 1e-12));
    }

    #[test]
    fn signs_depend_on_the_seed_and_are_balanced() {
        let a = Rotation::new(&[1; 32], 1 << 14).unwrap();
        let b = Rotation::new(&[2; 32], 1 << 14).unwrap();
        assert_ne!(a.signs, b.signs);
        let ones: u32 = a.signs.iter().map(|w| w.count_ones()).sum();
        assert!((ones as i64 - 8192).abs() < 5 * 64, "{ones}");
        assert!(Rotation::new(&[1; 32], 1000).is_err());
        assert_eq!(padded_dim(1000), Some(1024));
        assert_eq!(padded_dim(1024), Some(1024));
        assert_eq!(padded_dim(0), Some(1));
    }
}
