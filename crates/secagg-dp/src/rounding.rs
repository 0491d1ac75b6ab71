//! Conditional stochastic rounding (Kairouz, Liu, Steinke 2021, §4.1): round every coordinate
//! to ⌊x⌋ or ⌈x⌉ with the probabilities that make it unbiased, and retry the whole vector
//! until its L2 norm is within the bound B of [`crate::sensitivity::rounded_l2_bound`], so B
//! is a hard sensitivity bound whatever the coins did. Each try succeeds with probability at
//! least 1 − β, so a cap of [`MAX_TRIES`] fails with probability at most β^MAX_TRIES.
//!
//! The norm check is exact (integer sum of squares against ⌊B²⌋, shrunk by a relative 2^−50
//! for the rounding of B² itself).

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use rand_core::CryptoRng;
use zeroize::Zeroize;

use crate::DpError;

/// Retry cap: with β = e^−½ a legitimate vector exhausts it with probability below 10^−200.
pub const MAX_TRIES: u32 = 1000;

/// A rounded vector and how many tries it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rounded {
    /// The integer coordinates.
    pub values: Vec<i64>,
    /// Tries used (1 if the first rounding met the bound).
    pub tries: u32,
}

/// Coins drawn per `fill_bytes` call (4 KiB): one call per block instead of one per value.
const BLOCK: usize = 512;

/// ⌊v⌋ for finite |v| < 2^63 by truncation (libm's portable floor costs more than the rest of
/// the rounding).
#[inline(always)]
fn floor_i64(v: f64) -> i64 {
    // The cast saturates beyond ±2^63, and so does the correction.
    let t = v as i64;
    t.saturating_sub(i64::from((t as f64) > v))
}

/// Unbiased stochastic rounding of each value into `out` (same length) for finite values
/// within ±2^62 (beyond, results saturate at the i64 range). Rounds up when a uniform with 53
/// random bits is below the fractional part: unbiased up to 2^−53 per value (the uniform's
/// resolution, and v − ⌊v⌋ rounds for |v| < ½ with bits below 2^−53). Returns Σ out²,
/// saturating.
pub fn stochastic_round<R: CryptoRng + ?Sized>(x: &[f64], rng: &mut R, out: &mut [i64]) -> u128 {
    let mut coins = [0u8; BLOCK * 8];
    let mut norm_sq = 0u128;
    for (xs, os) in x.chunks(BLOCK).zip(out.chunks_mut(BLOCK)) {
        let bytes = &mut coins[..xs.len() * 8];
        rng.fill_bytes(bytes);
        for ((o, &v), c) in os.iter_mut().zip(xs).zip(bytes.chunks_exact(8)) {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            let unit = (u64::from_le_bytes(w) >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
            let floor = floor_i64(v);
            let r = floor.saturating_add(i64::from(unit < v - floor as f64));
            *o = r;
            let m = u128::from(r.unsigned_abs());
            norm_sq = norm_sq.saturating_add(m * m);
        }
    }
    // The coins decided the secret rounding.
    coins.zeroize();
    norm_sq
}

/// Rounds `x` stochastically until ‖rounded‖₂ ≤ `l2_bound`, at most `max_tries` times.
pub fn conditional_round<R: CryptoRng + ?Sized>(
    x: &[f64],
    l2_bound: f64,
    max_tries: u32,
    rng: &mut R,
) -> Result<Rounded, DpError> {
    if let Some(i) = x.iter().position(|v| !(v.is_finite() && v.abs() <= 4.6e18)) {
        return Err(DpError(format!(
            "value {} at index {i} cannot be rounded to a 64-bit integer",
            x[i]
        )));
    }
    if !(l2_bound.is_finite() && l2_bound >= 0.0) {
        return Err(DpError(format!(
            "the L2 bound must be finite and ≥ 0, got {l2_bound}"
        )));
    }
    // Beyond 2^63 the squared bound (and the saturating norm) would make the check vacuous.
    if l2_bound >= libm::ldexp(1.0, 63) {
        return Err(DpError(format!(
            "the L2 bound {l2_bound} is too large to check exactly: use more noise or a \
             smaller scale"
        )));
    }
    let bound_sq = libm::floor(l2_bound * l2_bound * (1.0 - 1.0 / (1u64 << 50) as f64)) as u128;
    let mut values = vec![0i64; x.len()];
    for tries in 1..=max_tries {
        if stochastic_round(x, rng, &mut values) <= bound_sq {
            return Ok(Rounded { values, tries });
        }
    }
    Err(DpError(format!(
        "conditional rounding missed the norm bound {l2_bound} in {max_tries} tries: \
         the bound is too tight for this vector (use a larger beta)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha8Rng;
    use rand_core::SeedableRng;

    fn norm_squared(v: &[i64]) -> u128 {
        v.iter().map(|&a| (a as i128 * a as i128) as u128).sum()
    }

    /// Values beyond the i64 range saturate instead of overflowing (or flipping sign).
    #[test]
    fn out_of_range_values_saturate() {
        let mut out = [0i64; 2];
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        stochastic_round(&[1e19, -1e19], &mut rng, &mut out);
        assert_eq!(out, [i64::MAX, i64::MIN]);
        assert!(conditional_round(&[1.0], 1e19, 1, &mut rng).is_err());
    }

    #[test]
    fn floor_by_truncation_is_floor() {
        for v in [
            0.0,
            -0.0,
            0.5,
            -0.5,
            1.0,
            -1.0,
            -1.5,
            2.999,
            -2.999,
            1e15 + 0.5,
            -1e15 - 0.5,
            4.6e18,
            -4.6e18,
            1e-300,
            -1e-300,
        ] {
            assert_eq!(floor_i64(v), libm::floor(v) as i64, "{v}");
        }
    }

    /// The returned norm is the rounded vector's, across block boundaries.
    #[test]
    fn the_returned_norm_is_exact() {
        let x: Vec<f64> = (0..1500).map(|i| (i as f64 * 0.77).sin() * 1e4).collect();
        let mut out = vec![0i64; x.len()];
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let n = stochastic_round(&x, &mut rng, &mut out);
        assert_eq!(n, norm_squared(&out));
        assert!(out.iter().zip(&x).all(|(o, v)| (*o as f64 - v).abs() < 1.0));
    }

    #[test]
    fn rounding_is_unbiased() {
        let x = [0.25, -1.75, 3.5, 10.0, -0.1];
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let n = 100_000;
        let mut sum = [0f64; 5];
        let mut out = [0i64; 5];
        for _ in 0..n {
            stochastic_round(&x, &mut rng, &mut out);
            for (s, o) in sum.iter_mut().zip(&out) {
                *s += *o as f64;
            }
        }
        for (s, v) in sum.iter().zip(&x) {
            let frac = v - v.floor();
            let sd = (frac * (1.0 - frac) / n as f64).sqrt();
            assert!(
                (s / n as f64 - v).abs() <= 5.0 * sd + 1e-12,
                "{v}: {}",
                s / n as f64
            );
        }
    }

    #[test]
    fn the_bound_holds_and_tries_are_counted() {
        // 64 coordinates at 0.5: ‖x‖ = 4, a rounding has norm √(#ups) ~ √32.
        let x = vec![0.5; 64];
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut total_tries = 0;
        for _ in 0..200 {
            let r = conditional_round(&x, 5.0, MAX_TRIES, &mut rng).unwrap();
            assert!(norm_squared(&r.values) <= 25);
            total_tries += r.tries;
        }
        // P(Binomial(64, ½) ≤ 25) ≈ 0.05: about 20 tries each.
        assert!(total_tries > 1000, "{total_tries}");
        // An impossible bound is refused, not looped forever.
        let e = conditional_round(&x, 0.5, 50, &mut rng).unwrap_err();
        assert!(e.0.contains("beta"), "{e}");
        assert!(conditional_round(&[f64::NAN], 1.0, 1, &mut rng).is_err());
    }
}
