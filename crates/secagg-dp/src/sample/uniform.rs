//! Uniform integers without modulo bias.

use rand_core::CryptoRng;

/// A uniform integer in [0, m) for m ≥ 1 (Lemire's multiply-and-reject: one 64-bit word and
/// one multiplication in the common case; the division only runs on the rare rejection path).
#[inline]
pub fn below<R: CryptoRng + ?Sized>(rng: &mut R, m: u64) -> u64 {
    debug_assert!(m > 0);
    let mut p = rng.next_u64() as u128 * m as u128;
    if (p as u64) < m {
        // Reject the low products that would make some results more likely.
        let threshold = m.wrapping_neg() % m;
        while (p as u64) < threshold {
            p = rng.next_u64() as u128 * m as u128;
        }
    }
    (p >> 64) as u64
}

/// A uniform integer in [0, m) for any m ≥ 1 up to 2^128 − 1 (masked rejection: fewer than two
/// tries on average).
pub fn below_u128<R: CryptoRng + ?Sized>(rng: &mut R, m: u128) -> u128 {
    debug_assert!(m > 0);
    if m <= u64::MAX as u128 {
        return below(rng, m as u64) as u128;
    }
    let mask = u128::MAX >> (m - 1).leading_zeros();
    loop {
        let x = (((rng.next_u64() as u128) << 64) | rng.next_u64() as u128) & mask;
        if x < m {
            return x;
        }
    }
}

/// One fair bit.
#[inline]
pub fn bit<R: CryptoRng + ?Sized>(rng: &mut R) -> bool {
    rng.next_u32() & 1 == 1
}
