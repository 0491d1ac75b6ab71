//! Exact Poisson(μ) for rational μ = num/den, practical for large μ.
//!
//! With the mode m = ⌊μ⌋, f(k) = P(k)/P(m) is a **rational** number: ∏_{i=m+1}^{k} μ/i above
//! the mode and ∏_{i=k+1}^{m} i/μ below it, and f ≤ 1. The sampler is rejection from an
//! envelope g ≥ f whose weights are integers:
//!
//! - **body** k ∈ [m − h, m + h], h ≈ 5.5√μ + 16: weight W_k = ⌊f̂_hi(k)·z⌋ + 1 ≥ f(k)·z for
//!   an integer scale z, where f̂_hi is an upper bound on f from a log-sum computed once, with
//!   a rigorous margin for its rounding errors;
//! - **tails**: beyond the body f decays at least geometrically with a rational ratio
//!   (ρ = μ/(m+h+1) on the right, ρ = (m−h)/μ on the left), so g is W_edge·ρ^j there; each
//!   tail is one more entry whose integer weight rounds its exact mass W_edge·ρ/(1−ρ) up
//!   (the rounding is undone by an exact Bernoulli);
//! - a **reject** entry tops the weights up to exactly 2^32.
//!
//! Entries are drawn from an alias table built with integer arithmetic (exactly W/2^32) and k
//! is accepted with probability f(k)·z/W_k. One 64-bit word gives the bucket (top bits), the
//! alias coin (32 bits) and the first bits of the acceptance uniform, which settle it unless
//! they fall within 2^−(32−index bits) of the threshold; then a second word is compared with
//! two precomputed thresholds that bracket the probability, and only between them (about
//! 2^−40 of the time) is it decided exactly with big integers (O(|k − m|²) word operations).
//! Tail proposals are geometric (Bernoulli(ρ) coins) and are accepted with a product of
//! rational coins and the body test at the edge.
//!
//! Expected cost: ~1.0 proposals per sample (the envelope exceeds f by about (entries)/2^32
//! relative), one word and one 16-byte bucket per proposal; tails are reached with
//! probability about 10^−7 and cost O(√μ) coins. Memory: ~40 bytes per body entry,
//! ~11√μ + 16 entries (μ = 2^23: 32 k entries, ~1.3 MB), built once per round in O(√μ).

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use rand_core::CryptoRng;

use super::alias::{COIN_BITS, Envelope, TableSampler, initial_scale};
use super::bignum::{self, BigUint};
use super::{bernoulli, round_up_dyadic};
use crate::DpError;

/// Largest supported mean: 2^33.
pub const MAX_MEAN: f64 = 8_589_934_592.0;

/// Body half-width h = ⌈HALF_WIDTH_SIGMAS·√μ⌉ + HALF_WIDTH_MIN.
const HALF_WIDTH_SIGMAS: f64 = 5.5;
const HALF_WIDTH_MIN: u64 = 16;

/// Exact Poisson sampler for a fixed rational mean.
#[derive(Clone)]
pub struct Poisson {
    num: u64,
    den: u64,
    mode: u64,
    /// First body value.
    lo: u64,
    /// Body weights W_k (index k − lo), scale z: W_k ≥ f(k)·z.
    weight: Vec<u64>,
    z: u64,
    /// Proposals: body entries, then the right tail, the left tail and the reject entry.
    env: Envelope,
    /// The right tail's exact mass over its integer weight, as (a, b): accept with a/b.
    right_tail: (u128, u128),
    left_tail: Option<(u128, u128)>,
}

impl core::fmt::Debug for Poisson {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Poisson")
            .field("mean", &(self.num, self.den))
            .field("entries", &self.weight.len())
            .finish_non_exhaustive()
    }
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
            return Self::from_rational(0, 1);
        }
        let (num, den) = round_up_dyadic(mean, 30, 64)
            .ok_or_else(|| DpError(format!("Poisson mean {mean} cannot be represented")))?;
        Self::from_rational(num as u64, den as u64)
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
            return Ok(Self {
                num,
                den,
                mode: 0,
                lo: 0,
                weight: Vec::new(),
                z: 1,
                env: Envelope::default(),
                right_tail: (0, 1),
                left_tail: None,
            });
        }
        let mu = num as f64 / den as f64;
        let mode = num / den;
        let half = libm::ceil(HALF_WIDTH_SIGMAS * libm::sqrt(mu)) as u64 + HALF_WIDTH_MIN;
        let lo = mode.saturating_sub(half);
        let hi = mode + half;
        let len = (hi - lo + 1) as usize;
        let (f_lo, f_hi) = ratio_bounds(num, den, mode, lo, hi);

        // Scale z so that all integer weights (body, tails) fit in 2^COIN_BITS.
        let two_coin = 1u128 << COIN_BITS;
        let sum_f: f64 = f_hi.iter().sum();
        let mut z = initial_scale(sum_f, len);
        let (weight, right_tail, left_tail, total) = loop {
            if z == 0 {
                return Err(DpError(format!(
                    "Poisson mean {mu} needs too large a table: use a smaller variance"
                )));
            }
            let zf = z as f64;
            let weight: Vec<u64> = f_hi
                .iter()
                .map(|f| libm::floor(f * zf) as u64 + 1)
                .collect();
            let mut total: u128 = weight.iter().map(|&w| w as u128).sum();
            let w_hi = weight[len - 1] as u128;
            let a = w_hi * num as u128;
            let b = den as u128 * (hi as u128 + 1) - num as u128;
            let w_right = a.div_ceil(b);
            total += w_right;
            let left = (lo > 0).then(|| {
                let a = weight[0] as u128 * lo as u128 * den as u128;
                let b = num as u128 - lo as u128 * den as u128;
                (a, b, a.div_ceil(b))
            });
            total += left.map_or(0, |l| l.2);
            if total + len as u128 <= two_coin {
                break (weight, (a, w_right, b), left, total);
            }
            z -= z / 64 + 1;
        };
        let zf = z as f64;
        let acceptance: Vec<(f64, f64)> = (0..len)
            .map(|i| {
                let w = weight[i] as f64;
                let q_lo = f_lo[i] * zf / w * (1.0 - EXP_MARGIN);
                let q_hi = f_hi[i] * zf / w * (1.0 + EXP_MARGIN);
                (q_lo, q_hi)
            })
            .collect();

        // Entries: body, right tail, left tail, reject (tops the total up to 2^COIN_BITS).
        let mut all: Vec<u128> = weight.iter().map(|&w| w as u128).collect();
        all.push(right_tail.1);
        all.push(left_tail.map_or(0, |l| l.2));
        all.push(two_coin - total);
        let env = Envelope::new(all, &acceptance, &format!("Poisson mean {mu}"))?;
        Ok(Self {
            num,
            den,
            mode,
            lo,
            weight,
            z,
            env,
            right_tail: (right_tail.0, right_tail.1 * right_tail.2),
            left_tail: left_tail.map(|(a, b, w)| (a, w * b)),
        })
    }

    /// One sample.
    #[inline]
    pub fn sample<R: CryptoRng + ?Sized>(&self, rng: &mut R) -> u64 {
        if self.env.is_empty() {
            return 0;
        }
        self.draw(rng)
    }

    /// Fills `out` with independent samples (batched: several times faster than `sample` in
    /// a loop).
    pub fn fill<R: CryptoRng + ?Sized>(&self, rng: &mut R, out: &mut [u64]) {
        self.for_each_sample(rng, out.len(), |i, x| out[i] = x);
    }

    /// `count` independent samples, batched, each passed to `emit(i, x)`.
    pub(crate) fn for_each_sample<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        count: usize,
        mut emit: impl FnMut(usize, u64),
    ) {
        if self.env.is_empty() {
            (0..count).for_each(|i| emit(i, 0));
            return;
        }
        self.draw_each(rng, count, emit);
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
        // f(k)·z/(W_hi·ρ^j) = q_hi · ∏_{i=hi+2}^{k} (hi+1)/i.
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
        // f(k)·z/(W_lo·ρ^j) = q_lo · ∏_{i=k+1}^{lo−1} i/lo.
        for i in k + 1..lo {
            if !bernoulli::ratio(rng, i as u128, lo as u128) {
                return None;
            }
        }
        self.accept_body(rng, 0).then_some(k)
    }
}

#[cfg(test)]
impl Poisson {
    pub(crate) fn envelope(&self) -> &Envelope {
        &self.env
    }
}

impl TableSampler for Poisson {
    type Value = u64;

    fn envelope(&self) -> &Envelope {
        &self.env
    }

    #[inline(always)]
    fn value(&self, idx: usize) -> u64 {
        self.lo + idx as u64
    }

    /// The exact decision, continuing the uniform whose first word is `first`.
    #[cold]
    fn accept_exact<R: CryptoRng + ?Sized>(&self, rng: &mut R, idx: usize, first: u64) -> bool {
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
        // U < n·z / (d·W).
        n.mul_small(self.z);
        d.mul_small(self.weight[idx]);
        bignum::uniform_below_ratio(rng, first, n, &d)
    }
    /// Entry `body + which`: 0 the right tail, 1 the left tail, otherwise the reject entry.
    #[cold]
    fn other<R: CryptoRng + ?Sized>(&self, rng: &mut R, which: usize) -> Option<u64> {
        match which {
            0 => self.right_tail_sample(rng),
            1 => self.left_tail_sample(rng),
            _ => None,
        }
    }
}

/// Per-step relative error allowance of the log sums: each log1p and each addition is within
/// one ulp (2^−53) of exact; the input ratio adds two more roundings. 2^−48 is generous.
const LN_ULP_MARGIN: f64 = 1.0 / 281_474_976_710_656.0;
/// Allowance for exp, division and multiplication roundings (each ≤ 1 ulp).
const EXP_MARGIN: f64 = 1.0 / 1_125_899_906_842_624.0;

/// Upper and lower bounds on f(k) = P(k)/P(mode) for k ∈ [lo, hi], from log sums outward
/// from the mode with a running bound on their rounding error.
fn ratio_bounds(num: u64, den: u64, mode: u64, lo: u64, hi: u64) -> (Vec<f64>, Vec<f64>) {
    let len = (hi - lo + 1) as usize;
    let mut ln_f = vec![0.0f64; len];
    let mut err = vec![0.0f64; len];
    let at = |k: u64| (k - lo) as usize;
    for k in mode + 1..=hi {
        let kd = k as i128 * den as i128;
        let term = libm::log1p((num as i128 - kd) as f64 / kd as f64);
        let sum = ln_f[at(k - 1)] + term;
        ln_f[at(k)] = sum;
        err[at(k)] = err[at(k - 1)] + (libm::fabs(term) + libm::fabs(sum)) * LN_ULP_MARGIN;
    }
    for k in (lo..mode).rev() {
        let x = (((k + 1) as i128 * den as i128) - num as i128) as f64 / num as f64;
        let term = libm::log1p(x);
        let sum = ln_f[at(k + 1)] + term;
        ln_f[at(k)] = sum;
        err[at(k)] = err[at(k + 1)] + (libm::fabs(term) + libm::fabs(sum)) * LN_ULP_MARGIN;
    }
    let f_lo = (0..len)
        .map(|i| libm::exp(ln_f[i] - err[i]) * (1.0 - EXP_MARGIN))
        .collect();
    let f_hi = (0..len)
        .map(|i| (libm::exp(ln_f[i] + err[i]) * (1.0 + EXP_MARGIN)).min(1.0))
        .collect();
    (f_lo, f_hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact big-integer path alone (fast thresholds disabled) gives the Poisson pmf.
    #[test]
    fn exact_path_alone_matches_the_pmf() {
        use rand_chacha::ChaCha8Rng;
        use rand_core::SeedableRng;
        let lambda = 3.5;
        let mut p = Poisson::from_rational(7, 2).unwrap();
        p.env.disable_fast_path();
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let n = 40_000;
        let mut counts = [0u32; 12];
        for _ in 0..n {
            counts[(p.sample(&mut rng) as usize).min(11)] += 1;
        }
        let mut pmf = [0.0f64; 12];
        let mut term = libm::exp(-lambda);
        for (k, slot) in pmf.iter_mut().enumerate() {
            *slot = term;
            term *= lambda / (k + 1) as f64;
        }
        pmf[11] = 1.0 - pmf[..11].iter().sum::<f64>();
        let chi2: f64 = (0..12)
            .map(|k| {
                let e = pmf[k] * n as f64;
                (counts[k] as f64 - e).powi(2) / e
            })
            .sum();
        // χ²(11) upper 10^-4 quantile ≈ 35.6.
        assert!(chi2 < 35.6, "{chi2} {counts:?}");
        // And with a wrong mean the same statistic fails.
        let mut q = Poisson::from_rational(8, 2).unwrap();
        q.env.disable_prefix_path();
        let mut wrong = [0u32; 12];
        for _ in 0..n {
            wrong[(q.sample(&mut rng) as usize).min(11)] += 1;
        }
        let chi2: f64 = (0..12)
            .map(|k| {
                let e = pmf[k] * n as f64;
                (wrong[k] as f64 - e).powi(2) / e
            })
            .sum();
        assert!(chi2 > 35.6, "{chi2}");
    }

    #[test]
    fn refuses_huge_means() {
        assert!(Poisson::new(MAX_MEAN * 2.0).is_err());
        assert!(Poisson::new(-1.0).is_err());
        assert!(Poisson::new(f64::INFINITY).is_err());
        assert_eq!(Poisson::new(0.0).unwrap().mean(), 0.0);
    }
}
