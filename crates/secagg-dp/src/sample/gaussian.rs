//! The discrete Gaussian N_Z(0, σ²): P(x) ∝ exp(−x²/(2σ²)) on Z, for rational σ² = num/den
//! (Canonne, Kamath, Steinke 2020, "The Discrete Gaussian for Differential Privacy",
//! Algorithm 3).
//!
//! With t = ⌊σ⌋ + 1: draw Y from the discrete Laplace with scale t and accept it with
//! probability exp(−(|Y| − σ²/t)²/(2σ²)). In integers,
//! γ = (|Y|·t·den − num)² / (2·num·den·t²), a 256-bit numerator over a 128-bit denominator,
//! decided by [`bernoulli::exp_minus_wide`]. A real σ² is rounded **up** to num/2^k, so the
//! noise is never smaller than asked for (see [`DiscreteGaussian::new`]).

use alloc::format;

use rand_core::CryptoRng;

use super::gaussian_table::{GaussianTable, TABLE_MAX_VARIANCE};
use super::{bernoulli, laplace, round_up_dyadic};
use crate::DpError;

/// Largest supported variance: 2^56 (σ = 2^28), so that every product fits in 128 bits.
pub const MAX_VARIANCE: f64 = 72_057_594_037_927_936.0;

/// Keeps 2·num·den·t² below 2^120, leaving room for the factor k of Algorithm 1.
const DEN_BITS: u32 = 120;

/// Exact discrete Gaussian sampler; everything that depends only on σ² is precomputed.
///
/// For σ² ≤ 2^24 it samples from an exact alias table ([`super::gaussian_table`], several
/// times faster); above, and when built with [`Self::cks`], by CKS Algorithm 3. Both give
/// exactly N_Z(0, σ²).
#[derive(Debug, Clone)]
pub struct DiscreteGaussian {
    table: Option<GaussianTable>,
    num: u128,
    den: u128,
    t: u64,
    /// t·den: |Y|·t·den − num is the acceptance exponent's root.
    t_den: u128,
    /// 2·num·den·t².
    gamma_den: u128,
}

/// ⌊√x⌋ for x < 2^120.
fn isqrt(x: u128) -> u128 {
    let mut r = libm::sqrt(x as f64) as u128;
    while r * r > x {
        r -= 1;
    }
    while (r + 1) * (r + 1) <= x {
        r += 1;
    }
    r
}

impl DiscreteGaussian {
    /// A sampler with variance at least `variance` (0 < σ² ≤ [`MAX_VARIANCE`]).
    ///
    /// σ² is rounded up to num/2^k with the largest k ≤ 40 that keeps the integer arithmetic
    /// within 128 bits; the relative increase is at most 2^−k/σ² (below 2^−38 for σ² ≥ 1/4 and
    /// σ² ≤ 2^40, below 2^−50 beyond that); [`Self::variance`] returns the exact value used.
    pub fn new(variance: f64) -> Result<Self, DpError> {
        let mut s = Self::cks(variance)?;
        if s.variance() <= TABLE_MAX_VARIANCE {
            s.table = Some(GaussianTable::new(s.num, s.den)?);
        }
        Ok(s)
    }

    /// Like [`Self::new`] but always sampling with CKS Algorithm 3 (no table).
    pub fn cks(variance: f64) -> Result<Self, DpError> {
        if !(variance.is_finite() && variance > 0.0 && variance <= MAX_VARIANCE) {
            return Err(DpError(format!(
                "discrete Gaussian variance must be in (0, 2^56], got {variance}"
            )));
        }
        let mut max_shift = 40;
        loop {
            let Some((num, den)) = round_up_dyadic(variance, max_shift, 100) else {
                return Err(DpError(format!(
                    "discrete Gaussian variance {variance} cannot be represented"
                )));
            };
            if let Ok(s) = Self::from_rational(num, den) {
                return Ok(s);
            }
            if max_shift == 0 {
                return Err(DpError(format!(
                    "discrete Gaussian variance {variance} is too large for 128-bit arithmetic"
                )));
            }
            max_shift -= 1;
        }
    }

    /// A sampler with variance exactly `num`/`den`.
    pub fn from_rational(num: u128, den: u128) -> Result<Self, DpError> {
        let too_big = || {
            DpError(format!(
                "discrete Gaussian variance {num}/{den}: 2·num·den·t² must stay below 2^{DEN_BITS}"
            ))
        };
        if num == 0 || den == 0 {
            return Err(DpError(format!(
                "discrete Gaussian variance must be positive, got {num}/{den}"
            )));
        }
        if num >= 1u128 << 120 {
            return Err(too_big());
        }
        let t = isqrt(num / den) + 1;
        let t64 = u64::try_from(t).map_err(|_| too_big())?;
        let gamma_den = 2u128
            .checked_mul(num)
            .and_then(|v| v.checked_mul(den))
            .and_then(|v| v.checked_mul(t))
            .and_then(|v| v.checked_mul(t))
            .filter(|v| *v < 1u128 << DEN_BITS)
            .ok_or_else(too_big)?;
        let t_den = t.checked_mul(den).ok_or_else(too_big)?;
        Ok(Self {
            table: None,
            num,
            den,
            t: t64,
            t_den,
            gamma_den,
        })
    }

    /// The variance σ² actually sampled (num/den), as f64.
    pub fn variance(&self) -> f64 {
        self.num as f64 / self.den as f64
    }

    /// σ² as the exact rational (num, den).
    pub fn variance_rational(&self) -> (u128, u128) {
        (self.num, self.den)
    }

    /// Whether samples come from the alias table (else CKS Algorithm 3).
    pub fn uses_table(&self) -> bool {
        self.table.is_some()
    }

    /// One sample.
    #[inline]
    pub fn sample<R: CryptoRng + ?Sized>(&self, rng: &mut R) -> i64 {
        if let Some(t) = &self.table {
            return t.sample(rng);
        }
        self.sample_cks(rng)
    }

    /// One sample by CKS Algorithm 3.
    #[inline]
    fn sample_cks<R: CryptoRng + ?Sized>(&self, rng: &mut R) -> i64 {
        loop {
            let (negative, y) = laplace::sample_magnitude(rng, self.t, 1);
            // |Y| ≥ 2^63 or |Y|·t·den ≥ 2^128 needs a Laplace tail beyond e^(−2^31); such a
            // draw is redrawn (exact conditioned on that event).
            let Ok(y_signed) = i64::try_from(y) else {
                continue;
            };
            let Some(a) = (y as u128).checked_mul(self.t_den) else {
                continue;
            };
            let a = a.abs_diff(self.num);
            let (hi, lo) = square_wide(a);
            if bernoulli::exp_minus_wide(rng, hi, lo, self.gamma_den) {
                return if negative { -y_signed } else { y_signed };
            }
        }
    }

    /// Fills `out` with independent samples.
    pub fn fill<R: CryptoRng + ?Sized>(&self, rng: &mut R, out: &mut [i64]) {
        self.for_each_sample(rng, out.len(), |i, x| out[i] = x);
    }

    /// Adds an independent sample to each value (wrapping).
    pub fn add_to<R: CryptoRng + ?Sized>(&self, rng: &mut R, values: &mut [i64]) {
        self.for_each_sample(rng, values.len(), |i, x| {
            values[i] = values[i].wrapping_add(x)
        });
    }

    /// `count` samples, each passed to `emit(i, x)`; batched through the table when there is
    /// one.
    fn for_each_sample<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        count: usize,
        mut emit: impl FnMut(usize, i64),
    ) {
        match &self.table {
            Some(t) => t.for_each_sample(rng, count, emit),
            None => (0..count).for_each(|i| emit(i, self.sample_cks(rng))),
        }
    }
}

/// a² as (high, low) 128-bit halves.
#[inline]
fn square_wide(a: u128) -> (u128, u128) {
    let (a1, a0) = (a >> 64, a & u64::MAX as u128);
    let p00 = a0 * a0;
    let p01 = a0 * a1;
    let p11 = a1 * a1;
    // a² = p11·2^128 + 2·p01·2^64 + p00.
    let (mid_lo, mid_hi) = (p01 << 65, p01 >> 63);
    let (lo, carry) = p00.overflowing_add(mid_lo);
    (p11 + mid_hi + carry as u128, lo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn square_wide_matches_schoolbook() {
        for a in [
            0u128,
            1,
            u64::MAX as u128,
            (u64::MAX as u128) + 5,
            u128::MAX,
        ] {
            let (hi, lo) = square_wide(a);
            assert_eq!(lo, a.wrapping_mul(a));
            if a <= u64::MAX as u128 {
                assert_eq!(hi, 0);
            }
        }
        assert_eq!(square_wide(u128::MAX), (u128::MAX - 1, 1));
        assert_eq!(square_wide(1u128 << 64), (1, 0));
    }

    #[test]
    fn variance_is_rounded_up() {
        let g = DiscreteGaussian::new(0.1).unwrap();
        assert!(g.variance() >= 0.1 && g.variance() < 0.1 * (1.0 + 1e-10));
        let g = DiscreteGaussian::new(1e10).unwrap();
        assert!(g.variance() >= 1e10 && g.variance() < 1e10 * (1.0 + 1e-15));
        let g = DiscreteGaussian::new(MAX_VARIANCE).unwrap();
        assert!(g.variance() >= MAX_VARIANCE);
        assert!(DiscreteGaussian::new(MAX_VARIANCE * 2.0).is_err());
        assert!(DiscreteGaussian::new(f64::NAN).is_err());
        assert!(DiscreteGaussian::new(0.0).is_err());
    }
}
