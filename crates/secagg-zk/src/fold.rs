//! What the two folding arguments ([`crate::wip`], [`crate::linear`]) and the statements built
//! on them ([`crate::bind`], `norm`) share: the round count of a power-of-two length, the
//! decoding of 32-byte proof words, the per-position products of round challenges (the unrolled
//! generator folds), the random-weight batch check of several verification equations over
//! common vector generators, powers of a challenge, and signed integers as scalars.

use alloc::vec::Vec;

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use rand_core::CryptoRng;

use crate::{BatchError, Error};

/// Largest number of folding rounds a proof may carry (n ≤ 2^32).
pub const MAX_ROUNDS: usize = 32;

/// log₂ n for a power of two n ≤ 2^[`MAX_ROUNDS`]; `what` names the argument in the error.
pub(crate) fn rounds(n: usize, what: &'static str) -> Result<usize, Error> {
    if !n.is_power_of_two() {
        return Err(Error::NotPowerOfTwo { n });
    }
    let k = n.trailing_zeros() as usize;
    if k > MAX_ROUNDS {
        return Err(Error::TooLarge {
            what,
            max: MAX_ROUNDS as u64,
            got: k as u64,
        });
    }
    Ok(k)
}

/// Untrusted proof bytes read as 32-byte words. The caller has checked the exact length, so
/// every index it asks for is in range; an index past the end still answers with an error.
pub(crate) struct Words<'a> {
    bytes: &'a [u8],
}

impl<'a> Words<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Words { bytes }
    }

    fn word(&self, index: usize) -> Result<[u8; 32], Error> {
        let start = index.checked_mul(32).ok_or(Error::ProofLength {
            expected: usize::MAX,
            got: self.bytes.len(),
        })?;
        let slice = self
            .bytes
            .get(start..start.saturating_add(32))
            .ok_or(Error::ProofLength {
                expected: start.saturating_add(32),
                got: self.bytes.len(),
            })?;
        let mut buf = [0u8; 32];
        buf.copy_from_slice(slice);
        Ok(buf)
    }

    /// The point at word `index`; errors name `index` (the point's position in encoding order).
    pub(crate) fn point(&self, index: usize) -> Result<RistrettoPoint, Error> {
        CompressedRistretto(self.word(index)?)
            .decompress()
            .ok_or(Error::InvalidPoint { index })
    }

    /// The canonical scalar at word `word`; errors name `index` (its position among scalars).
    pub(crate) fn scalar(&self, word: usize, index: usize) -> Result<Scalar, Error> {
        Option::from(Scalar::from_canonical_bytes(self.word(word)?))
            .ok_or(Error::NonCanonicalScalar { index })
    }
}

/// s_0 = `init`, s_i = s_{i − 2^bit}·`mult`[k − 1 − bit] for the highest set bit of i: the
/// product over the rounds whose bit is set in i (round j halves at bit k − 1 − j) of
/// `mult[j]`, times `init`. Length 2^k, k = `mult.len()`.
pub(crate) fn subset_products(init: Scalar, mult: &[Scalar]) -> Vec<Scalar> {
    let k = mult.len();
    let n = 1usize << k;
    let mut out = Vec::with_capacity(n);
    out.push(init);
    for i in 1..n {
        let bit = usize::BITS as usize - 1 - i.leading_zeros() as usize;
        out.push(out[i - (1 << bit)] * mult[k - 1 - bit]);
    }
    out
}

/// x^1, …, x^n.
pub(crate) fn powers(x: Scalar, n: usize) -> Vec<Scalar> {
    let mut out = Vec::with_capacity(n);
    let mut acc = x;
    for _ in 0..n {
        out.push(acc);
        acc *= x;
    }
    out
}

/// An integer as a scalar without branching on its sign (secret witnesses).
pub(crate) fn signed_scalar(v: i128) -> Scalar {
    let pos = Scalar::from(v.unsigned_abs());
    let neg_bit = Scalar::from(((v as u128) >> 127) as u64);
    pos - (pos + pos) * neg_bit
}

/// One verification equation: Σ_s Σ_i `vec_coeffs[s][i]`·gens[s][i] + Σ `points` = 0.
pub(crate) struct Equation<'a> {
    pub vec_coeffs: Vec<&'a [Scalar]>,
    pub points: Vec<(Scalar, RistrettoPoint)>,
}

/// A verification equation of one proof, with its statement point.
pub(crate) trait VerificationEquation {
    fn equation(&self) -> Equation<'_>;
}

/// Verifies a batch: every equation at once as one variable-time MSM of their sum with
/// independent random weights (a false equation passes with probability ≤ 1/ℓ); on failure
/// each alone, naming the first that fails. `gens[s]` must be at least as long as every
/// equation's `vec_coeffs[s]` (the callers' `verification_terms` check this).
pub(crate) fn batch_verify<E: VerificationEquation, R: CryptoRng + ?Sized>(
    gens: &[&[RistrettoPoint]],
    items: &[E],
    rng: &mut R,
) -> Result<(), BatchError> {
    let eqs: Vec<Equation<'_>> = items.iter().map(E::equation).collect();
    if msm_vanishes(gens, &eqs, || Scalar::random(rng)) {
        return Ok(());
    }
    let first_bad = eqs
        .iter()
        .position(|eq| !msm_vanishes(gens, core::slice::from_ref(eq), || Scalar::ONE));
    // If every equation held alone, their weighted sum would vanish too; so a bad one exists.
    // Name proof 0 rather than accept if arithmetic ever disagreed.
    Err(BatchError {
        proof: first_bad.unwrap_or(0),
        error: Error::VerificationFailed,
    })
}

/// Whether Σ_e weight_e·(equation e) is the identity (one variable-time MSM).
fn msm_vanishes(
    gens: &[&[RistrettoPoint]],
    eqs: &[Equation<'_>],
    mut weight: impl FnMut() -> Scalar,
) -> bool {
    let mut acc: Vec<Vec<Scalar>> = gens
        .iter()
        .enumerate()
        .map(|(s, _)| {
            let len = eqs
                .iter()
                .filter_map(|e| e.vec_coeffs.get(s).map(|c| c.len()))
                .max()
                .unwrap_or(0);
            alloc::vec![Scalar::ZERO; len]
        })
        .collect();
    let mut scalars = Vec::new();
    let mut points = Vec::new();
    for eq in eqs {
        let w = weight();
        for (sum, coeffs) in acc.iter_mut().zip(&eq.vec_coeffs) {
            for (a, c) in sum.iter_mut().zip(coeffs.iter()) {
                *a += w * c;
            }
        }
        for (s, q) in &eq.points {
            scalars.push(w * s);
            points.push(*q);
        }
    }
    // dalek's MSM wants exact size hints: collect the flattened vectors first.
    let all_scalars: Vec<Scalar> = acc.iter().flatten().chain(&scalars).copied().collect();
    let all_points: Vec<RistrettoPoint> = gens
        .iter()
        .zip(&acc)
        .flat_map(|(g, a)| &g[..a.len()])
        .chain(&points)
        .copied()
        .collect();
    RistrettoPoint::vartime_multiscalar_mul(&all_scalars, &all_points).is_identity()
}
