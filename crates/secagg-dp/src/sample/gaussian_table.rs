//! A faster exact discrete Gaussian for moderate σ² (≤ [`TABLE_MAX_VARIANCE`]): rejection from
//! an integer alias table, the same scheme as [`super::poisson`].
//!
//! With g(x) = e^(−x²/(2σ²)) and σ² = num/den rational:
//! - **body** |x| ≤ k, k = ⌈6.5σ⌉ + 16: weight W_x = ⌊ĝ_hi(x)·z⌋ + 1 ≥ g(x)·z for an integer
//!   scale z, from an f64 upper bound with a rigorous margin;
//! - **tails** |x| > k: since (k+j)² − k² ≥ 2kj, g(k+j) ≤ g(k)·ρ^j for a dyadic ρ ≥ e^(−k/σ²),
//!   so both tails form one entry of integer weight ⌈2·W_k·ρ/(1−ρ)⌉ (exact mass restored by
//!   a rational coin), a random sign and j ~ Geometric(ρ);
//! - a **reject** entry tops the weights up to 2^32.
//!
//! A body proposal x is accepted with probability g(x)·z/W_x, decided from the proposal word's
//! spare bits or one more word against precomputed thresholds that bracket it; in between
//! (about 2^−40 of the time) it is decided exactly from Taylor bounds on e^(−γ) in big
//! integers. Tail proposals are accepted with the edge's body test times e^(−γ_j)/ρ^j, decided
//! exactly the same way. Expected cost: one word and one 16-byte bucket per sample; memory
//! ~40 bytes per entry (buckets padded to a power of two), 13σ + 35 entries.

use alloc::format;
use alloc::vec::Vec;

use rand_core::CryptoRng;

use super::alias::{COIN_BITS, Envelope, TableSampler, initial_scale};
use super::bignum::{self, BigUint};
use super::{bernoulli, uniform};
use crate::DpError;

/// Largest variance served by a table: 2^24 (σ = 4096, ~53 k entries, ~2.5 MB).
pub const TABLE_MAX_VARIANCE: f64 = 16_777_216.0;

const HALF_WIDTH_SIGMAS: f64 = 6.5;
const HALF_WIDTH_MIN: u64 = 16;
/// Allowance for f64 roundings (each ≤ 1 ulp) in γ, exp, products and quotients.
const MARGIN: f64 = 1.0 / 1_125_899_906_842_624.0;

/// Exact discrete Gaussian sampler backed by an alias table.
#[derive(Clone)]
pub struct GaussianTable {
    num: u128,
    den: u128,
    k: u64,
    z: u64,
    weight: Vec<u64>,
    /// Proposals: body entries, then the tails and the reject entry.
    env: Envelope,
    /// ρ = rho/2^64.
    rho: u64,
    /// The tails' exact mass over their integer weight: accept the tail entry with a/b.
    tail: (u128, u128),
}

impl core::fmt::Debug for GaussianTable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("GaussianTable")
            .field("variance", &(self.num, self.den))
            .field("entries", &self.weight.len())
            .finish_non_exhaustive()
    }
}

impl GaussianTable {
    /// The table for σ² = `num`/`den` (≤ [`TABLE_MAX_VARIANCE`], num < 2^100, den ≤ 2^40).
    pub fn new(num: u128, den: u128) -> Result<Self, DpError> {
        let var = num as f64 / den as f64;
        if num == 0 || den == 0 || den > 1 << 40 || num >= 1 << 100 || var > TABLE_MAX_VARIANCE {
            return Err(DpError(format!(
                "a Gaussian table needs 0 < σ² ≤ 2^24 with den ≤ 2^40, got {num}/{den}"
            )));
        }
        let sigma = libm::sqrt(var);
        let k = libm::ceil(HALF_WIDTH_SIGMAS * sigma) as u64 + HALF_WIDTH_MIN;
        let len = (2 * k + 1) as usize;
        // γ(x) = x²/(2σ²) = x²·den/(2·num), with ≤ 4 roundings.
        let inv_two_var = den as f64 / (2.0 * num as f64);
        let gamma = |x: u64| (x as f64) * (x as f64) * inv_two_var;
        let g_hi =
            |x: u64| (libm::exp(-gamma(x) * (1.0 - 8.0 * MARGIN)) * (1.0 + 4.0 * MARGIN)).min(1.0);
        let g_lo = |x: u64| libm::exp(-gamma(x) * (1.0 + 8.0 * MARGIN)) * (1.0 - 4.0 * MARGIN);
        let at = |i: usize| (i as i64 - k as i64).unsigned_abs();
        let hi: Vec<f64> = (0..len).map(|i| g_hi(at(i))).collect();

        // ρ ≥ e^(−k/σ²), dyadic with 64 bits (at least 2^−64).
        let rho_f = libm::exp(-(k as f64) / var * (1.0 - 8.0 * MARGIN)) * (1.0 + 4.0 * MARGIN);
        let rho = (libm::ceil(libm::ldexp(rho_f, 64)) as u64).max(1);
        if rho == u64::MAX {
            return Err(DpError(format!("σ² = {var} is too large for a table")));
        }

        let two_coin = 1u128 << COIN_BITS;
        let sum: f64 = hi.iter().sum();
        let mut z = initial_scale(sum, len);
        let (weight, tail_a, tail_b, tail_w, total) = loop {
            if z == 0 {
                return Err(DpError(format!("σ² = {var} is too large for a table")));
            }
            let weight: Vec<u64> = hi
                .iter()
                .map(|h| libm::floor(h * z as f64) as u64 + 1)
                .collect();
            let w_k = weight[len - 1] as u128;
            let a = 2 * w_k * rho as u128;
            let b = (1u128 << 64) - rho as u128;
            let w_tail = a.div_ceil(b);
            let total = weight.iter().map(|&w| w as u128).sum::<u128>() + w_tail;
            if total < two_coin {
                break (weight, a, b, w_tail, total);
            }
            z -= z / 64 + 1;
        };
        let acceptance: Vec<(f64, f64)> = weight
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                let q_lo = g_lo(at(i)) * z as f64 / w as f64 * (1.0 - 4.0 * MARGIN);
                let q_hi = hi[i] * z as f64 / w as f64 * (1.0 + 4.0 * MARGIN);
                (q_lo, q_hi)
            })
            .collect();
        let mut all: Vec<u128> = weight.iter().map(|&w| w as u128).collect();
        all.push(tail_w);
        all.push(two_coin - total);
        let env = Envelope::new(all, &acceptance, &format!("σ² = {var}"))?;
        Ok(Self {
            num,
            den,
            k,
            z,
            weight,
            env,
            rho,
            tail: (tail_a, tail_w * tail_b),
        })
    }

    /// One sample.
    #[inline]
    pub fn sample<R: CryptoRng + ?Sized>(&self, rng: &mut R) -> i64 {
        self.draw(rng)
    }

    /// `count` independent samples, batched, each passed to `emit(i, x)`.
    pub(crate) fn for_each_sample<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        count: usize,
        emit: impl FnMut(usize, i64),
    ) {
        self.draw_each(rng, count, emit);
    }

    /// A tail proposal ±(k + j), accepted exactly; None to draw again.
    #[cold]
    fn tail_sample<R: CryptoRng + ?Sized>(&self, rng: &mut R) -> Option<i64> {
        let (a, b) = self.tail;
        if !bernoulli::ratio(rng, a, b) {
            return None;
        }
        let negative = uniform::bit(rng);
        let mut j: u64 = 1;
        while bernoulli::ratio(rng, self.rho as u128, 1u128 << 64) {
            j += 1;
            if j > 1 << 60 {
                return None;
            }
        }
        // The edge's body test, then e^(−γ_j)/ρ^j with γ_j = (2kj + j²)·den/(2·num).
        if !self.accept_body(rng, self.weight.len() - 1) {
            return None;
        }
        let (k, j128) = (self.k as u128, j as u128);
        // j beyond 2^60 (probability below ρ^(2^60)) is redrawn rather than overflowing.
        let gamma_x = j128
            .checked_mul(j128)
            .and_then(|jj| jj.checked_add(2 * k * j128))?;
        let mut gamma_num = BigUint::from_u128(gamma_x);
        gamma_num = gamma_num.mul(&BigUint::from_u128(self.den));
        let gamma_den = BigUint::from_u128(2 * self.num);
        // c = 1/ρ^j = 2^(64j)/rho^j.
        let mut c_num = BigUint::from_u128(1);
        let mut c_den = BigUint::from_u128(1);
        for _ in 0..j {
            c_num = c_num.mul(&BigUint::from_u128(1u128 << 64));
            c_den.mul_small(self.rho);
        }
        let first = rng.next_u64();
        let accept =
            bignum::uniform_below_scaled_exp(rng, first, &c_num, &c_den, &gamma_num, &gamma_den);
        let x = i64::try_from(self.k + j).ok()?;
        accept.then_some(if negative { -x } else { x })
    }

    #[cfg(test)]
    pub(crate) fn envelope(&self) -> &Envelope {
        &self.env
    }

    #[cfg(test)]
    pub(crate) fn force_exact_path(&mut self) {
        self.env.disable_fast_path();
    }
}

impl TableSampler for GaussianTable {
    type Value = i64;

    fn envelope(&self) -> &Envelope {
        &self.env
    }

    #[inline(always)]
    fn value(&self, idx: usize) -> i64 {
        idx as i64 - self.k as i64
    }

    #[cold]
    fn accept_exact<R: CryptoRng + ?Sized>(&self, rng: &mut R, idx: usize, first: u64) -> bool {
        let x = (idx as i64 - self.k as i64).unsigned_abs() as u128;
        // U < z·e^(−x²·den/(2·num)) / W_x.
        let mut a = BigUint::from_u128(x * x);
        a = a.mul(&BigUint::from_u128(self.den));
        let b = BigUint::from_u128(2 * self.num);
        let c_num = BigUint::from_u128(self.z as u128);
        let c_den = BigUint::from_u128(self.weight[idx] as u128);
        bignum::uniform_below_scaled_exp(rng, first, &c_num, &c_den, &a, &b)
    }

    /// The tails (entry 0); beyond them, the reject entry.
    fn other<R: CryptoRng + ?Sized>(&self, rng: &mut R, which: usize) -> Option<i64> {
        if which == 0 {
            self.tail_sample(rng)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha8Rng;
    use rand_core::SeedableRng;

    fn chi2_against_pmf(t: &GaussianTable, var: f64, n: usize, seed: u64) -> f64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let r = 8i64;
        let mut counts = alloc::vec![0u32; (2 * r + 1) as usize];
        for _ in 0..n {
            let x = t.sample(&mut rng).clamp(-r, r);
            counts[(x + r) as usize] += 1;
        }
        let w: Vec<f64> = (-60..=60)
            .map(|x: i64| libm::exp(-((x * x) as f64) / (2.0 * var)))
            .collect();
        let s: f64 = w.iter().sum();
        let p = |x: i64| -> f64 {
            if x.abs() < r {
                w[(x + 60) as usize] / s
            } else {
                (r..=60).map(|y| w[(y + 60) as usize]).sum::<f64>() / s
            }
        };
        (-r..=r)
            .map(|x| {
                let e = p(x) * n as f64;
                (counts[(x + r) as usize] as f64 - e).powi(2) / e
            })
            .filter(|v| v.is_finite())
            .sum()
    }

    /// The exact big-integer path alone (fast thresholds disabled) gives the right pmf, and a
    /// wrong variance fails the same check.
    #[test]
    fn exact_path_alone_matches_the_pmf() {
        // σ² = 9/4.
        let mut t = GaussianTable::new(9, 4).unwrap();
        t.force_exact_path();
        let chi2 = chi2_against_pmf(&t, 2.25, 20_000, 1);
        // 17 bins (some near-empty ones merged implicitly): χ²(16) 10^-4 quantile ≈ 46.
        assert!(chi2 < 46.0, "{chi2}");
        let mut wrong = GaussianTable::new(10, 4).unwrap();
        wrong.force_exact_path();
        assert!(chi2_against_pmf(&wrong, 2.25, 20_000, 2) > 46.0);
    }

    /// The tail path alone gives P(k + j) ∝ e^(−(2kj + j²)/(2σ²)): mean and variance of j
    /// (σ² = 2^20, where the tail spreads over hundreds of values).
    #[test]
    fn tails_have_the_gaussian_shape() {
        let var = (1u64 << 20) as f64;
        let t = GaussianTable::new(1 << 20, 1).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut js = Vec::new();
        let mut signs = 0i64;
        while js.len() < 1500 {
            if let Some(x) = t.tail_sample(&mut rng) {
                assert!(x.unsigned_abs() > t.k);
                signs += x.signum();
                js.push((x.unsigned_abs() - t.k) as f64);
            }
        }
        let k = t.k as f64;
        let w: Vec<f64> = (1..5000)
            .map(|j| libm::exp(-(2.0 * k * j as f64 + (j * j) as f64) / (2.0 * var)))
            .collect();
        let s: f64 = w.iter().sum();
        let mean: f64 = w
            .iter()
            .enumerate()
            .map(|(i, p)| (i + 1) as f64 * p)
            .sum::<f64>()
            / s;
        let var_j: f64 = w
            .iter()
            .enumerate()
            .map(|(i, p)| ((i + 1) as f64 - mean).powi(2) * p)
            .sum::<f64>()
            / s;
        let n = js.len() as f64;
        let m = js.iter().sum::<f64>() / n;
        let v = js.iter().map(|j| (j - m).powi(2)).sum::<f64>() / (n - 1.0);
        assert!(
            (m - mean).abs() < 5.0 * libm::sqrt(var_j / n),
            "{m} vs {mean}"
        );
        assert!((v / var_j - 1.0).abs() < 0.25, "{v} vs {var_j}");
        assert!(signs.abs() < 5 * 40, "{signs}");
    }

    #[test]
    fn refuses_large_variances() {
        assert!(GaussianTable::new(1 << 25, 1).is_err());
        assert!(GaussianTable::new(0, 1).is_err());
        assert!(GaussianTable::new(1 << 24, 1).is_ok());
    }
}
