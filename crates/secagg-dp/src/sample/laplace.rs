//! The discrete Laplace distribution: P(x) ∝ exp(−|x|/scale) on Z, scale = t/s rational
//! (Canonne, Kamath, Steinke 2020, Algorithm 2).

use alloc::format;

use rand_core::CryptoRng;

use super::{bernoulli, uniform};
use crate::DpError;

/// Discrete Laplace sampler with scale t/s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiscreteLaplace {
    t: u64,
    s: u64,
}

impl DiscreteLaplace {
    /// Scale `t`/`s`; both must be at least 1.
    pub fn new(t: u64, s: u64) -> Result<Self, DpError> {
        if t == 0 || s == 0 {
            return Err(DpError(format!(
                "the discrete Laplace scale t/s needs t, s ≥ 1, got {t}/{s}"
            )));
        }
        Ok(Self { t, s })
    }

    /// One sample.
    pub fn sample<R: CryptoRng + ?Sized>(&self, rng: &mut R) -> i64 {
        loop {
            let (negative, magnitude) = sample_magnitude(rng, self.t, self.s);
            if let Ok(m) = i64::try_from(magnitude) {
                return if negative { -m } else { m };
            }
        }
    }

    /// Fills `out` with independent samples.
    pub fn fill<R: CryptoRng + ?Sized>(&self, rng: &mut R, out: &mut [i64]) {
        for v in out {
            *v = self.sample(rng);
        }
    }
}

/// Algorithm 2: (sign, |Y|) of a discrete Laplace sample with scale t/s.
///
/// |Y| beyond u64 (a geometric count above 2^64/t, probability below e^(−2^64/t)) is redrawn,
/// so the output is exact conditioned on that event.
#[inline]
pub(crate) fn sample_magnitude<R: CryptoRng + ?Sized>(rng: &mut R, t: u64, s: u64) -> (bool, u64) {
    loop {
        let u = uniform::below(rng, t);
        if !bernoulli::exp_minus_fraction(rng, u as u128, t as u128) {
            continue;
        }
        let mut v: u64 = 0;
        while bernoulli::exp_minus_one(rng) {
            v += 1;
        }
        let negative = uniform::bit(rng);
        let Some(x) = v.checked_mul(t).and_then(|tv| tv.checked_add(u)) else {
            continue;
        };
        let y = if s == 1 { x } else { x / s };
        if negative && y == 0 {
            continue;
        }
        return (negative, y);
    }
}
