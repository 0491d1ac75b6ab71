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

    pub(crate) fn mul_u128(&mut self, f: u128) {
        let low = self.clone();
        self.mul_small((f >> 64) as u64);
        self.0.insert(0, 0);
        self.trim();
        let mut low = low;
        low.mul_small(f as u64);
        self.add(&low);
    }

    fn add(&mut self, other: &BigUint) {
        if self.0.len() < other.0.len() {
            self.0.resize(other.0.len(), 0);
        }
        let mut carry = false;
        for (i, limb) in self.0.iter_mut().enumerate() {
            let o = other.0.get(i).copied().unwrap_or(0);
            let (s1, c1) = limb.overflowing_add(o);
            let (s2, c2) = s1.overflowing_add(carry as u64);
            *limb = s2;
            carry = c1 || c2;
        }
        if carry {
            self.0.push(1);
        }
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
        let mut b = BigUint::from_u128(123_456_789);
        b.mul_u128(987_654_321_987_654_321);
        assert_eq!(
            b,
            BigUint::from_u128(123_456_789u128 * 987_654_321_987_654_321)
        );
        let mut c = BigUint::from_u128(expect);
        c.sub(&BigUint::from_u128(expect - 5));
        assert_eq!(c, BigUint::from_u128(5));
    }
}
