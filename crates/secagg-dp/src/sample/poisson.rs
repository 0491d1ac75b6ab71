//! Exact Poisson(μ) for rational μ = num/den, practical for large μ.
//!
//! With the mode m = ⌊μ⌋, f(k) = P(k)/P(m) is a **rational** number: ∏_{i=m+1}^{k} μ/i above
//! the mode and ∏_{i=k+1}^{m} i/μ below it, and f ≤ 1. The sampler is rejection from an
//! envelope g ≥ f whose weights are integers:
//!
//! - **body** k ∈ [m − h, m + h], h ≈ 5.5√μ + 16: weight W_k = ⌊f̂_hi(k)·2^40⌋ + 1 ≥ f(k)·2^40,
//!   where f̂_hi is an upper bound on f from a log-sum computed once, with a rigorous margin
//!   for its rounding errors;
//! - **tails**: beyond the body f decays at least geometrically with a rational ratio
//!   (ρ = μ/(m+h+1) on the right, ρ = (m−h)/μ on the left), so g is W_edge·ρ^j there; each
//!   tail is one more entry whose integer weight rounds its exact mass W_edge·ρ/(1−ρ) up
//!   (the rounding is undone by an exact Bernoulli).
//!
//! Entries are drawn from an alias table built with integer arithmetic (exactly W/ΣW), then
//! k is accepted with probability f(k)·2^40/W_k. That probability is decided from one 64-bit
//! word against two precomputed thresholds that bracket it; only when the word falls between
//! them (probability about 2^−40 per draw) is it decided exactly with big integers
//! (O(|k − m|²) word operations). Tail proposals are geometric (Bernoulli(ρ) coins) and are
//! accepted with a product of rational coins and the body test at the edge.
//!
//! Expected cost: ~1.0 proposals per sample (the envelope exceeds f by < 2^−40 relative in
//! the body), each two uniform draws (alias) and one word (acceptance); tails are reached
//! with probability about 10^−7 and cost O(√μ) coins. Memory: 28 bytes per body entry,
//! ~11√μ entries (for μ = 2^33: ~1.0 M entries, 28 MB), built once per round in O(√μ).

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use rand_core::CryptoRng;

use super::bignum::{self, BigUint};
use super::{bernoulli, round_up_dyadic, uniform};
use crate::DpError;

/// Largest supported mean: 2^33.
pub const MAX_MEAN: f64 = 8_589_934_592.0;

/// The body weights are f·2^Z_BITS rounded up.
const Z_BITS: i32 = 40;

/// Body half-width h = ⌈HALF_WIDTH_SIGMAS·√μ⌉ + HALF_WIDTH_MIN.
const HALF_WIDTH_SIGMAS: f64 = 5.5;
const HALF_WIDTH_MIN: u64 = 16;

/// Exact Poisson sampler for a fixed rational mean.
#[derive(Debug, Clone)]
pub struct Poisson {
    num: u64,
    den: u64,
    mode: u64,
    /// First body value.
    lo: u64,
    /// Body weights W_k (index k − lo).
    weight: Vec<u64>,
    /// Accept when the acceptance word is below this.
    accept_below: Vec<u64>,
    /// Reject when the acceptance word is at or above this (u64::MAX: never in the fast path).
    reject_from: Vec<u64>,
    /// Alias table over body entries, then the right tail, then the left tail (if any).
    alias_threshold: Vec<u64>,
    alias: Vec<u32>,
    total: u64,
    /// The right tail's exact mass over its integer weight, as (a, b): accept with a/b.
    right_tail: (u128, u128),
    left_tail: Option<(u128, u128)>,
}

impl Poisson {
    /// A sampler with mean at least `mean` (0 ≤ μ ≤ [`MAX_MEAN`]); μ is rounded up to
    /// num/2^k (k ≤ 30), a relative increase of at most 2^−30/μ. μ = 0 always gives 0.
    pub fn new(mean: f64) -> Result<Self, DpError> {
        if !(mean.is_finite() && (0.0..=MAX_MEAN).contains(&mean)) {
            return Err(DpError(format!(
                "Poisson mean must be in [0, 2^33], got {mean}: use a smaller variance"
            )));
        }
        if mean == 0.0 {
            return Ok(Self::zero());
        }
        let (num, den) = round_up_dyadic(mean, 30, 64)
            .ok_or_else(|| DpError(format!("Poisson mean {mean} cannot be represented")))?;
        Self::from_rational(num as u64, den as u64)
    }

    fn zero() -> Self {
        Self {
            num: 0,
            den: 1,
            mode: 0,
            lo: 0,
            weight: vec![1],
            accept_below: vec![u64::MAX],
            reject_from: vec![u64::MAX],
            alias_threshold: vec![1],
            alias: vec![0],
            total: 1,
            right_tail: (0, 1),
            left_tail: None,
        }
    }

    /// The mean actually sampled, num/den.
    pub fn mean(&self) -> f64 {
        self.num as f64 / self.den as f64
    }

    /// A sampler with mean exactly `num`/`den` (den ≤ 2^30, mean ≤ [`MAX_MEAN`]).
    pub fn from_rational(num: u64, den: u64) -> Result<Self, DpError> {
        if den == 0 || den > 1 << 30 || num as f64 / den as f64 > MAX_MEAN {
            return Err(DpError(format!(
                "Poisson mean {num}/{den} out of range: need 0 < den ≤ 2^30 and mean ≤ 2^33"
            )));
        }
        if num == 0 {
            return Ok(Self::zero());
        }
        let mu = num as f64 / den as f64;
        let mode = num / den;
        let half = libm::ceil(HALF_WIDTH_SIGMAS * libm::sqrt(mu)) as u64 + HALF_WIDTH_MIN;
        let lo = mode.saturating_sub(half);
        let hi = mode + half;
        let len = (hi - lo + 1) as usize;

        // ln f(k) by sums outward from the mode, with a running bound on the rounding error.
        let mut ln_f = vec![0.0f64; len];
        let mut err = vec![0.0f64; len];
        let num_f = num as f64;
        let at = |k: u64| (k - lo) as usize;
        for k in mode + 1..=hi {
            let kd = k as i128 * den as i128;
            let x = (num as i128 - kd) as f64 / kd as f64;
            let term = libm::log1p(x);
            let prev = ln_f[at(k - 1)];
            let sum = prev + term;
            ln_f[at(k)] = sum;
            err[at(k)] = err[at(k - 1)] + (libm::fabs(term) + libm::fabs(sum)) * LN_ULP_MARGIN;
        }
        for k in (lo..mode).rev() {
            let x = (((k + 1) as i128 * den as i128) - num as i128) as f64 / num_f;
            let term = libm::log1p(x);
            let sum = ln_f[at(k + 1)] + term;
            ln_f[at(k)] = sum;
            err[at(k)] = err[at(k + 1)] + (libm::fabs(term) + libm::fabs(sum)) * LN_ULP_MARGIN;
        }

        let z = libm::ldexp(1.0, Z_BITS);
        let two64 = libm::ldexp(1.0, 64);
        let mut weight = Vec::with_capacity(len);
        let mut accept_below = Vec::with_capacity(len);
        let mut reject_from = Vec::with_capacity(len);
        for i in 0..len {
            let f_hi = (libm::exp(ln_f[i] + err[i] + 1e-300) * (1.0 + EXP_MARGIN)).min(1.0);
            let f_lo = libm::exp(ln_f[i] - err[i]) * (1.0 - EXP_MARGIN);
            let w = libm::floor(f_hi * z) + 1.0;
            let q_lo = f_lo * z / w * (1.0 - EXP_MARGIN);
            let q_hi = f_hi * z / w * (1.0 + EXP_MARGIN);
            weight.push(w as u64);
            // Saturating casts floor; a threshold at 2^64 or above never rejects.
            accept_below.push((q_lo * two64) as u64);
            let r = libm::ceil(q_hi * two64);
            reject_from.push(if r >= two64 { u64::MAX } else { r as u64 });
        }

        // Tails: exact masses W_edge·ρ/(1−ρ), rounded up to integer weights.
        let w_hi = weight[len - 1] as u128;
        let a = w_hi * num as u128;
        let b = den as u128 * (hi as u128 + 1) - num as u128;
        let w_right = a.div_ceil(b);
        let right_tail = (a, w_right * b);
        let mut tail_weights = vec![w_right];
        let left_tail = if lo > 0 {
            let a = weight[0] as u128 * lo as u128 * den as u128;
            let b = num as u128 - lo as u128 * den as u128;
            let w_left = a.div_ceil(b);
            tail_weights.push(w_left);
            Some((a, w_left * b))
        } else {
            None
        };

        let mut all: Vec<u128> = weight.iter().map(|&w| w as u128).collect();
        all.extend_from_slice(&tail_weights);
        let (alias_threshold, alias, total) = build_alias(&all)?;
        Ok(Self {
            num,
            den,
            mode,
            lo,
            weight,
            accept_below,
            reject_from,
            alias_threshold,
            alias,
            total,
            right_tail,
            left_tail,
        })
    }

    /// One sample.
    #[inline]
    pub fn sample<R: CryptoRng + ?Sized>(&self, rng: &mut R) -> u64 {
        if self.num == 0 {
            return 0;
        }
        let body = self.weight.len();
        loop {
            let i = uniform::below(rng, self.alias.len() as u64) as usize;
            let u = uniform::below(rng, self.total);
            let idx = if u < self.alias_threshold[i] {
                i
            } else {
                self.alias[i] as usize
            };
            if idx < body {
                if self.accept_body(rng, idx) {
                    return self.lo + idx as u64;
                }
            } else if idx == body {
                if let Some(k) = self.right_tail_sample(rng) {
                    return k;
                }
            } else if let Some(k) = self.left_tail_sample(rng) {
                return k;
            }
        }
    }

    /// Fills `out` with independent samples.
    pub fn fill<R: CryptoRng + ?Sized>(&self, rng: &mut R, out: &mut [u64]) {
        for v in out {
            *v = self.sample(rng);
        }
    }

    /// Bernoulli(f(k)·2^40/W_k) for body index `idx`.
    #[inline]
    fn accept_body<R: CryptoRng + ?Sized>(&self, rng: &mut R, idx: usize) -> bool {
        let u = rng.next_u64();
        if u < self.accept_below[idx] {
            return true;
        }
        if u >= self.reject_from[idx] && u != u64::MAX {
            return false;
        }
        self.accept_body_exact(rng, idx, u)
    }

    /// The exact decision, continuing the uniform whose first word is `first`.
    #[cold]
    fn accept_body_exact<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        idx: usize,
        first: u64,
    ) -> bool {
        let k = self.lo + idx as u64;
        // f(k) = n/d as big integers.
        let (mut n, mut d) = (BigUint::from_u128(1), BigUint::from_u128(1));
        if k >= self.mode {
            for i in self.mode + 1..=k {
                n.mul_small(self.num);
                d.mul_small(self.den);
                d.mul_small(i);
            }
        } else {
            for i in k + 1..=self.mode {
                n.mul_small(i);
                n.mul_small(self.den);
                d.mul_small(self.num);
            }
        }
        // U < n·2^40 / (d·W).
        n.mul_u128(1u128 << Z_BITS);
        d.mul_small(self.weight[idx]);
        bignum::uniform_below_ratio(rng, first, n, &d)
    }

    #[cold]
    fn right_tail_sample<R: CryptoRng + ?Sized>(&self, rng: &mut R) -> Option<u64> {
        let (a, b) = self.right_tail;
        if !bernoulli::ratio(rng, a, b) {
            return None;
        }
        let hi = self.lo + self.weight.len() as u64 - 1;
        // k − hi ~ Geometric: P(j) = (1 − ρ)ρ^(j−1), ρ = num/(den·(hi+1)).
        let rho_den = self.den as u128 * (hi as u128 + 1);
        let mut k = hi + 1;
        while bernoulli::ratio(rng, self.num as u128, rho_den) {
            k = k.checked_add(1)?;
        }
        // f(k)·2^40/(W_hi·ρ^j) = q_hi · ∏_{i=hi+2}^{k} (hi+1)/i.
        for i in hi + 2..=k {
            if !bernoulli::ratio(rng, hi as u128 + 1, i as u128) {
                return None;
            }
        }
        self.accept_body(rng, self.weight.len() - 1).then_some(k)
    }

    #[cold]
    fn left_tail_sample<R: CryptoRng + ?Sized>(&self, rng: &mut R) -> Option<u64> {
        let (a, b) = self.left_tail?;
        if !bernoulli::ratio(rng, a, b) {
            return None;
        }
        let lo = self.lo;
        // lo − k ~ Geometric with ρ = lo/μ = lo·den/num; k < 0 is rejected.
        let rho_num = lo as u128 * self.den as u128;
        let mut j: u64 = 1;
        while bernoulli::ratio(rng, rho_num, self.num as u128) {
            j += 1;
            if j > lo {
                return None;
            }
        }
        let k = lo - j;
        // f(k)·2^40/(W_lo·ρ^j) = q_lo · ∏_{i=k+1}^{lo−1} i/lo.
        for i in k + 1..lo {
            if !bernoulli::ratio(rng, i as u128, lo as u128) {
                return None;
            }
        }
        self.accept_body(rng, 0).then_some(k)
    }
}

/// Per-step relative error allowance of the log sums: each log1p and each addition is within
/// one ulp (2^−53) of exact; the input ratio adds two more roundings. 2^−48 is generous.
const LN_ULP_MARGIN: f64 = 1.0 / 281_474_976_710_656.0;
/// Allowance for exp, division and multiplication roundings (each ≤ 1 ulp).
const EXP_MARGIN: f64 = 1.0 / 1_125_899_906_842_624.0;

/// Walker/Vose alias table with integer weights: entry i is drawn with probability exactly
/// w_i/Σw. Returns (thresholds, aliases, Σw).
fn build_alias(weights: &[u128]) -> Result<(Vec<u64>, Vec<u32>, u64), DpError> {
    let n = weights.len() as u128;
    let total: u128 = weights.iter().sum();
    if total == 0 || total > u64::MAX as u128 || n > u32::MAX as u128 {
        return Err(DpError(format!(
            "Poisson table too large ({n} entries, total weight {total}): use a smaller mean"
        )));
    }
    // Each of n buckets holds mass `total`; entry i brings w_i·n.
    let mut mass: Vec<u128> = weights.iter().map(|&w| w * n).collect();
    let mut threshold = vec![total as u64; weights.len()];
    let mut alias: Vec<u32> = (0..weights.len() as u32).collect();
    let (mut small, mut large): (Vec<usize>, Vec<usize>) =
        (0..weights.len()).partition(|&i| mass[i] < total);
    while let (Some(s), Some(&l)) = (small.last().copied(), large.last()) {
        small.pop();
        threshold[s] = mass[s] as u64;
        alias[s] = l as u32;
        mass[l] -= total - mass[s];
        if mass[l] < total {
            large.pop();
            small.push(l);
        }
    }
    // Exact integers: whatever is left has mass exactly `total` and keeps itself.
    Ok((threshold, alias, total as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_is_exact() {
        let w = [3u128, 1, 0, 6];
        let (thr, alias, total) = build_alias(&w).unwrap();
        // P(i) · n · total = Σ over buckets of the mass each gives to i.
        let n = w.len() as u128;
        let mut got = vec![0u128; w.len()];
        for b in 0..w.len() {
            got[b] += thr[b] as u128;
            got[alias[b] as usize] += total as u128 - thr[b] as u128;
        }
        for i in 0..w.len() {
            assert_eq!(got[i], w[i] * n);
        }
    }

    #[test]
    fn refuses_huge_means() {
        assert!(Poisson::new(MAX_MEAN * 2.0).is_err());
        assert!(Poisson::new(-1.0).is_err());
        assert!(Poisson::new(f64::INFINITY).is_err());
        assert_eq!(Poisson::new(0.0).unwrap().mean(), 0.0);
    }
}
