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

    pub(crate) fn add(&mut self, other: &BigUint) {
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

    /// self · other (schoolbook).
    pub(crate) fn mul(&self, other: &BigUint) -> BigUint {
        let mut out = vec![0u64; self.0.len() + other.0.len() + 1];
        for (i, &a) in self.0.iter().enumerate() {
            let mut carry: u128 = 0;
            for (j, &b) in other.0.iter().enumerate() {
                let t = out[i + j] as u128 + a as u128 * b as u128 + carry;
                out[i + j] = t as u64;
                carry = t >> 64;
            }
            let mut k = i + other.0.len();
            while carry > 0 {
                let t = out[k] as u128 + carry;
                out[k] = t as u64;
                carry = t >> 64;
                k += 1;
            }
        }
        let mut b = BigUint(out);
        b.trim();
        b
    }

    /// self · 2^(64·words).
    fn shl_words(&self, words: usize) -> BigUint {
        if self.is_zero() {
            return self.clone();
        }
        let mut v = vec![0u64; words];
        v.extend_from_slice(&self.0);
        BigUint(v)
    }

    /// The number whose base-2^64 digits, most significant first, are `digits`.
    fn from_digits(digits: &[u64]) -> BigUint {
        let mut b = BigUint(digits.iter().rev().copied().collect());
        b.trim();
        b
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

/// Decides U < c·e^(−a/b) exactly, where c = `c_num`/`c_den` and c·e^(−a/b) ≤ 1, for a
/// uniform U ∈ [0, 1) whose first base-2^64 digit is `first` and whose later digits come from
/// `rng`.
///
/// e^(−γ) is bracketed by the alternating Taylor series: once n + 1 > γ the terms decrease,
/// so S_n − t_(n+1) ≤ e^(−γ) ≤ S_n + t_(n+1). Each round adds a term and a digit of U until
/// the two intervals separate (with probability 1; the expected number of rounds is small).
/// All arithmetic is exact: S_n = (P_n − N_n)/(b^n·n!) with P, N the sums of the even and odd
/// terms' numerators.
pub(crate) fn uniform_below_scaled_exp<R: CryptoRng + ?Sized>(
    rng: &mut R,
    first: u64,
    c_num: &BigUint,
    c_den: &BigUint,
    a: &BigUint,
    b: &BigUint,
) -> bool {
    let one = BigUint::from_u128(1);
    let (mut pos, mut neg) = (one.clone(), BigUint::from_u128(0));
    let (mut d, mut a_pow) = (one.clone(), one.clone());
    let mut digits = alloc::vec![first];
    let mut n: u64 = 0;
    loop {
        let mut b_next = b.clone();
        b_next.mul_small(n + 1);
        let a_next = a_pow.mul(a);
        let d_next = d.mul(&b_next);
        if b_next.cmp_big(a) == Ordering::Greater {
            // Bounds over the common denominator D_(n+1): (P'−N' ∓ T)/D'.
            let pos_s = pos.mul(&b_next);
            let neg_s = neg.mul(&b_next);
            let j = digits.len();
            let u = BigUint::from_digits(&digits);
            let scale = |v: &BigUint| c_num.mul(v).shl_words(j);
            let den = c_den.mul(&d_next);
            // Accept: (A+1)/2^64j ≤ c(P'−N'−T)/D'.
            let mut u_hi = u.clone();
            u_hi.add(&one);
            let mut lhs = u_hi.mul(&den);
            let mut neg_t = neg_s.clone();
            neg_t.add(&a_next);
            lhs.add(&scale(&neg_t));
            if lhs.cmp_big(&scale(&pos_s)) != Ordering::Greater {
                return true;
            }
            // Reject: A/2^64j ≥ c(P'−N'+T)/D'.
            let mut lhs = u.mul(&den);
            lhs.add(&scale(&neg_s));
            let mut pos_t = pos_s.clone();
            pos_t.add(&a_next);
            if lhs.cmp_big(&scale(&pos_t)) != Ordering::Less {
                return false;
            }
            digits.push(rng.next_u64());
        }
        // S_(n+1) = S_n + (−1)^(n+1)·a^(n+1)/(b^(n+1)(n+1)!).
        pos = pos.mul(&b_next);
        neg = neg.mul(&b_next);
        if (n + 1).is_multiple_of(2) {
            pos.add(&a_next);
        } else {
            neg.add(&a_next);
        }
        d = d_next;
        a_pow = a_next;
        n += 1;
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
        let x = BigUint::from_u128(u128::MAX - 7);
        let y = BigUint::from_u128(0x1234_5678_9abc_def0_1122);
        let mut prod = x.clone();
        prod.mul_small(0x5678_9abc_def0_1122);
        let mut expect = x.clone();
        expect.mul_small(0x1234);
        let expect = expect.shl_words(1);
        let mut e2 = expect.clone();
        e2.add(&prod);
        assert_eq!(x.mul(&y), e2);
        assert_eq!(
            BigUint::from_digits(&[1, 2]),
            BigUint::from_u128((1u128 << 64) + 2)
        );
    }

    /// U < c·e^(−γ) holds with probability c·e^(−γ), for a fresh U.
    #[test]
    fn scaled_exp_comparison_has_the_right_frequency() {
        use rand_chacha::ChaCha8Rng;
        use rand_core::{Rng, SeedableRng};
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        for (cn, cd, a, b) in [
            (1u128, 1u128, 1u128, 1u128),
            (3, 4, 7, 2),
            (5, 4, 1, 2),
            (1, 1, 0, 5),
        ] {
            let p = cn as f64 / cd as f64 * libm::exp(-(a as f64) / b as f64);
            let n = 20_000;
            let [cn, cd, a, b] = [cn, cd, a, b].map(BigUint::from_u128);
            let hits = (0..n)
                .filter(|_| {
                    let first = rng.next_u64();
                    uniform_below_scaled_exp(&mut rng, first, &cn, &cd, &a, &b)
                })
                .count() as f64;
            let sd = libm::sqrt(p * (1.0 - p) / n as f64);
            assert!(
                (hits / n as f64 - p).abs() <= 5.0 * sd + 1e-9,
                "{p}: {}",
                hits / n as f64
            );
        }
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
