//! Just enough unsigned big-integer arithmetic for the exact (rare) path of the Poisson
//! sampler: products of 64-bit factors and a lazy comparison against a uniform real.

use alloc::vec;
use alloc::vec::Vec;
use core::cmp::Ordering;

use rand_core::CryptoRng;

/// Little-endian 64-bit limbs, no trailing zero limbs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BigUint(Vec<u64>);

impl BigUint {
    pub(crate) fn from_u128(v: u128) -> Self {
        let mut b = BigUint(vec![v as u64, (v >> 64) as u64]);
        b.trim();
        b
    }

    fn trim(&mut self) {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }

    pub(crate) fn mul_small(&mut self, f: u64) {
        let mut carry: u128 = 0;
        for limb in self.0.iter_mut() {
            let p = *limb as u128 * f as u128 + carry;
            *limb = p as u64;
            carry = p >> 64;
        }
        if carry > 0 {
            self.0.push(carry as u64);
        }
        self.trim();
    }

    /// self − other; requires self ≥ other.
    fn sub(&mut self, other: &BigUint) {
        let mut borrow = false;
        for (i, limb) in self.0.iter_mut().enumerate() {
            let o = other.0.get(i).copied().unwrap_or(0);
            let (d1, b1) = limb.overflowing_sub(o);
            let (d2, b2) = d1.overflowing_sub(borrow as u64);
            *limb = d2;
            borrow = b1 || b2;
        }
        self.trim();
    }

    fn is_zero(&self) -> bool {
        self.0.is_empty()
    }

    fn cmp_big(&self, other: &BigUint) -> Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.iter().rev().cmp(other.0.iter().rev()))
    }
}

/// Decides U < r/m exactly for a uniform U ∈ [0, 1) whose first base-2^64 digit is `first`
/// and whose later digits are drawn from `rng` (0 ≤ r ≤ m, m > 0).
pub(crate) fn uniform_below_ratio<R: CryptoRng + ?Sized>(
    rng: &mut R,
    first: u64,
    r: BigUint,
    m: &BigUint,
) -> bool {
    let mut r = r;
    let mut u = first;
    loop {
        if r.is_zero() {
            return false;
        }
        // X = r·2^64 − u·m.
        r.0.insert(0, 0);
        r.trim();
        let mut um = m.clone();
        um.mul_small(u);
        if r.cmp_big(&um) == Ordering::Less {
            return false;
        }
        r.sub(&um);
        if r.cmp_big(m) != Ordering::Less {
            return true;
        }
        u = rng.next_u64();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_matches_u128() {
        let mut a = BigUint::from_u128(0xffff_ffff_ffff_ffff_1234);
        a.mul_small(1_000_003);
        let expect = 0xffff_ffff_ffff_ffff_1234u128 * 1_000_003;
        assert_eq!(a, BigUint::from_u128(expect));
        let mut c = BigUint::from_u128(expect);
        c.sub(&BigUint::from_u128(expect - 5));
        assert_eq!(c, BigUint::from_u128(5));
        let mut big = BigUint::from_u128(u128::MAX);
        big.mul_small(u64::MAX);
        assert_eq!(big.0, alloc::vec![1, u64::MAX, u64::MAX - 1]);
    }

    /// With the first digit at ⌊2^64·r/m⌋, U < r/m has probability frac(2^64·r/m).
    #[test]
    fn lazy_comparison_on_the_ambiguous_digit() {
        use rand_chacha::ChaCha8Rng;
        use rand_core::SeedableRng;
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let m = BigUint::from_u128(3);
        let first = u64::MAX / 3; // 0x5555…: 2^64/3 = first + 1/3
        let n = 60_000;
        let hits = (0..n)
            .filter(|_| uniform_below_ratio(&mut rng, first, BigUint::from_u128(1), &m))
            .count() as f64;
        let sd = libm::sqrt(2.0 / 9.0 / n as f64);
        assert!(
            (hits / n as f64 - 1.0 / 3.0).abs() < 5.0 * sd,
            "{}",
            hits / n as f64
        );
        // Digits clearly below or above decide at once.
        assert!(uniform_below_ratio(
            &mut rng,
            first - 1,
            BigUint::from_u128(1),
            &m
        ));
        assert!(!uniform_below_ratio(
            &mut rng,
            first + 1,
            BigUint::from_u128(1),
            &m
        ));
    }
}
