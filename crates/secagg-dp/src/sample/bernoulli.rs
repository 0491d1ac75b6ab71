//! Exact Bernoulli coins.
//!
//! [`ratio`] decides U < r/m for a uniform real U whose base-2^64 digits are drawn lazily: a
//! digit u settles the question unless r·2^64 − u·m falls in [0, m), which happens with
//! probability < 2^-64 per digit, so one word is used on average. No division.
//!
//! [`exp_minus`] is Bernoulli(exp(−num/den)) by Canonne, Kamath and Steinke (2020,
//! Algorithm 1): for γ ∈ [0, 1], draw Bernoulli(γ/k) for k = 1, 2, … until one fails and
//! return whether the failing k is odd (P = Σ (−γ)^j/j! = e^−γ); for γ > 1, AND ⌊γ⌋ coins of
//! Bernoulli(e^−1) with one for the fractional part.

use rand_core::CryptoRng;

/// (top 64 bits, low 128 bits) of u·m.
#[inline]
fn mul_u64_u128(u: u64, m: u128) -> (u64, u128) {
    let lo = (m as u64) as u128 * u as u128;
    let hi = (m >> 64) * u as u128;
    let low = lo.wrapping_add(hi << 64);
    let carry = (low < lo) as u64;
    ((hi >> 64) as u64 + carry, low)
}

/// Bernoulli(r/m) for 0 ≤ r ≤ m, m ≥ 1.
#[inline]
pub fn ratio<R: CryptoRng + ?Sized>(rng: &mut R, r: u128, m: u128) -> bool {
    debug_assert!(m > 0 && r <= m);
    let mut r = r;
    loop {
        if r == 0 {
            return false;
        }
        let u = rng.next_u64();
        // X = r·2^64 − u·m; U < r/m iff the rest of U, V, satisfies V·m < X.
        let (a_top, a_low) = ((r >> 64) as u64, r << 64);
        let (b_top, b_low) = mul_u64_u128(u, m);
        if (a_top, a_low) < (b_top, b_low) {
            return false;
        }
        let (low, borrow) = a_low.overflowing_sub(b_low);
        let top = a_top - b_top - borrow as u64;
        if top > 0 || low >= m {
            return true;
        }
        r = low;
    }
}

/// Bernoulli(e^−1) (Algorithm 1 with γ = 1: the k = 1 coin always succeeds).
#[inline]
pub fn exp_minus_one<R: CryptoRng + ?Sized>(rng: &mut R) -> bool {
    let mut k: u128 = 2;
    while ratio(rng, 1, k) {
        k += 1;
    }
    k % 2 == 1
}

/// Bernoulli(exp(−r/den)) for 0 ≤ r ≤ den (γ ∈ [0, 1]).
#[inline]
pub fn exp_minus_fraction<R: CryptoRng + ?Sized>(rng: &mut R, r: u128, den: u128) -> bool {
    let mut k: u128 = 1;
    loop {
        let coin = match den.checked_mul(k) {
            Some(m) => ratio(rng, r, m),
            // Bernoulli(r/(den·k)) as the AND of two independent coins.
            None => ratio(rng, r, den) && ratio(rng, 1, k),
        };
        if !coin {
            return k % 2 == 1;
        }
        k += 1;
    }
}

/// Bernoulli(exp(−num/den)) for a 256-bit numerator (hi, lo) and den ≥ 1.
pub fn exp_minus_wide<R: CryptoRng + ?Sized>(rng: &mut R, hi: u128, lo: u128, den: u128) -> bool {
    let (mut hi, mut lo) = (hi, lo);
    // Integer part: one Bernoulli(e^−1) per unit; the loop ends at the first failure.
    while hi > 0 || lo >= den {
        if !exp_minus_one(rng) {
            return false;
        }
        let (l, borrow) = lo.overflowing_sub(den);
        lo = l;
        hi -= borrow as u128;
    }
    exp_minus_fraction(rng, lo, den)
}

/// Bernoulli(exp(−num/den)) for any num ≥ 0, den ≥ 1.
pub fn exp_minus<R: CryptoRng + ?Sized>(rng: &mut R, num: u128, den: u128) -> bool {
    exp_minus_wide(rng, 0, num, den)
}
