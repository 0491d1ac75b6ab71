//! Skellam(μ) = Poisson(μ/2) − Poisson(μ/2): symmetric, integer, variance μ, and closed
//! under sums (Agarwal, Kairouz, Liu, NeurIPS 2021), so n clients' shares add up to one
//! Skellam of the total variance.

use alloc::format;

use rand_core::CryptoRng;

use super::poisson::{self, Poisson};
use crate::DpError;

/// Largest supported variance: 2^34 (each Poisson mean up to 2^33).
pub const MAX_VARIANCE: f64 = 2.0 * poisson::MAX_MEAN;

/// Exact Skellam sampler with a fixed variance.
#[derive(Debug, Clone)]
pub struct Skellam {
    poisson: Poisson,
}

impl Skellam {
    /// A sampler with variance at least `variance` (rounded up as in [`Poisson::new`]).
    pub fn new(variance: f64) -> Result<Self, DpError> {
        if !(variance.is_finite() && (0.0..=MAX_VARIANCE).contains(&variance)) {
            return Err(DpError(format!(
                "Skellam variance must be in [0, 2^34], got {variance}"
            )));
        }
        Ok(Self {
            poisson: Poisson::new(variance / 2.0)?,
        })
    }

    /// The variance actually sampled (twice the Poisson mean).
    pub fn variance(&self) -> f64 {
        2.0 * self.poisson.mean()
    }

    /// One sample.
    #[inline]
    pub fn sample<R: CryptoRng + ?Sized>(&self, rng: &mut R) -> i64 {
        let a = self.poisson.sample(rng) as i64;
        let b = self.poisson.sample(rng) as i64;
        a - b
    }

    /// Fills `out` with independent samples.
    pub fn fill<R: CryptoRng + ?Sized>(&self, rng: &mut R, out: &mut [i64]) {
        out.fill(0);
        self.add_to(rng, out);
    }

    /// Adds an independent sample to each value (wrapping): one batched pass of Poisson
    /// draws added, one subtracted.
    pub fn add_to<R: CryptoRng + ?Sized>(&self, rng: &mut R, values: &mut [i64]) {
        self.poisson.for_each_sample(rng, values.len(), |i, a| {
            values[i] = values[i].wrapping_add(a as i64)
        });
        self.poisson.for_each_sample(rng, values.len(), |i, b| {
            values[i] = values[i].wrapping_sub(b as i64)
        });
    }
}

/// The variance a [`Skellam::new`]`(variance)` sampler would have (rounded up), without
/// building its table; None if out of range.
pub fn rounded_variance(variance: f64) -> Option<f64> {
    if !(variance.is_finite() && (0.0..=MAX_VARIANCE).contains(&variance)) {
        return None;
    }
    if variance == 0.0 {
        return Some(0.0);
    }
    let (num, den) = super::round_up_dyadic(variance / 2.0, 30, 64)?;
    Some(2.0 * (num as u64 as f64 / den as f64))
}
