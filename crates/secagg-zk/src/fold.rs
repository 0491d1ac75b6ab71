//! What the two folding arguments ([`crate::wip`], [`crate::linear`]) and the statements built
//! on them ([`crate::bind`], `norm`) share: the round count of a power-of-two length, the
//! decoding of 32-byte proof words, the per-position products of round challenges (the unrolled
//! generator folds), the random-weight batch check (weights hashed from every item, D26) of several verification equations over
//! common vector generators, powers of a challenge, and signed integers as scalars.

use alloc::vec::Vec;

use chacha20::ChaCha20Rng;
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{Identity, IsIdentity, MultiscalarMul, VartimeMultiscalarMul};
use rand_core::{CryptoRng, SeedableRng};
use sha2::{Digest, Sha256, Sha512};
use zeroize::Zeroizing;

use crate::{BatchError, Error, par};

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

/// Little-endian 64-bit limbs of a canonical scalar (< 2^253).
pub(crate) fn scalar_limbs(s: &Scalar) -> [u64; 4] {
    let b = s.as_bytes();
    core::array::from_fn(|i| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[8 * i..8 * i + 8]);
        u64::from_le_bytes(w)
    })
}

/// A sum of canonical scalars kept unreduced in five 64-bit limbs: up to 2^64 terms of
/// < 2^253 each fit, so the ternary and binary folds (≤ 2^11 terms per entry) add with carries
/// only and reduce once at the end ([`LazySum::reduce`]); the result is the same scalar as the
/// reduced sum. Public data only (the verifier's and the prover's public vectors).
#[derive(Clone, Copy, Default)]
pub(crate) struct LazySum([u64; 5]);

impl LazySum {
    #[inline(always)]
    pub(crate) fn add(&mut self, v: &[u64; 4]) {
        let l = &mut self.0;
        let t = u128::from(l[0]) + u128::from(v[0]);
        l[0] = t as u64;
        let t = u128::from(l[1]) + u128::from(v[1]) + (t >> 64);
        l[1] = t as u64;
        let t = u128::from(l[2]) + u128::from(v[2]) + (t >> 64);
        l[2] = t as u64;
        let t = u128::from(l[3]) + u128::from(v[3]) + (t >> 64);
        l[3] = t as u64;
        l[4] = l[4].wrapping_add((t >> 64) as u64);
    }

    /// The sum mod ℓ.
    pub(crate) fn reduce(&self) -> Scalar {
        let mut wide = [0u8; 64];
        for (i, l) in self.0.iter().enumerate() {
            wide[8 * i..8 * i + 8].copy_from_slice(&l.to_le_bytes());
        }
        Scalar::from_bytes_mod_order_wide(&wide)
    }
}

/// Montgomery's batch inversion of public scalars; zeros stay zero (and are skipped).
pub(crate) fn batch_invert_public(v: &[Scalar]) -> Vec<Scalar> {
    let mut prefix = Vec::with_capacity(v.len());
    let mut acc = Scalar::ONE;
    for x in v {
        prefix.push(acc);
        if *x != Scalar::ZERO {
            acc *= x;
        }
    }
    let mut inv = acc.invert();
    let mut out = alloc::vec![Scalar::ZERO; v.len()];
    for ((o, x), p) in out.iter_mut().zip(v).zip(&prefix).rev() {
        if *x != Scalar::ZERO {
            *o = inv * p;
            inv *= x;
        }
    }
    out
}

/// Constant-time MSM in chunks of [`CT_CHUNK`] terms, summed: the same point as one call, but
/// dalek's constant-time Straus keeps a table of multiples per point, and past a few thousand
/// points those tables no longer fit in cache (measured 15–25% slower per point at 2^14–2^16
/// points than in chunks). With [`crate::prover_threads`] > 1 the terms are first cut into one
/// contiguous part per thread (each of at least [`PAR_MIN_CT`] terms). The cuts depend on the
/// length and the thread count only.
pub(crate) fn ct_msm(scalars: &[Scalar], points: &[RistrettoPoint]) -> RistrettoPoint {
    debug_assert_eq!(scalars.len(), points.len(), "ct_msm: one scalar per point");
    let len = scalars.len().min(points.len());
    // A part's sum is an unblinded partial commitment to secret scalars (the blinding terms
    // come last): the parts stay in a vector that is wiped on drop.
    let mut sums: Zeroizing<Vec<RistrettoPoint>> = Zeroizing::new(alloc::vec![
        RistrettoPoint::identity();
        par::parts(len, PAR_MIN_CT)
    ]);
    par::for_each_part(len, &mut sums, |r, sum| {
        *sum = scalars[r.clone()]
            .chunks(CT_CHUNK)
            .zip(points[r].chunks(CT_CHUNK))
            .map(|(s, p)| RistrettoPoint::multiscalar_mul(s, p))
            .sum::<RistrettoPoint>();
    });
    sums.iter().sum()
}

/// Fewest constant-time MSM terms worth a thread (≈ 2 ms of work against ≈ 20 µs to start one).
const PAR_MIN_CT: usize = 256;
/// Fewest folded generators worth a thread (≈ 30 µs each).
const PAR_MIN_FOLD: usize = 64;

/// Terms per constant-time MSM call in [`ct_msm`].
pub(crate) const CT_CHUNK: usize = 2048;

/// A vector of m folded generators kept lazily (VALIDATION.md §14.4 lever 3 and the two-round
/// fold): logical generator i is Σ_{t < w} `coef[i + t·m]`·`pts[i + t·m]` (w = stored / m). A
/// fold scales `coef` (scalar work only); every second fold the points are materialized with
/// one (w − 1)-term variable-time MSM plus one addition per output (the scale `coef[i]` stays
/// deferred). The provers' MSMs on a lazy vector take w terms per logical generator, with the
/// secret scalar times the public `coef`. Points and coefficients are public (generators and
/// challenges): every operation here is variable-time on public data.
#[derive(Clone)]
pub(crate) struct LazyGens {
    pts: Vec<RistrettoPoint>,
    coef: Vec<Scalar>,
    m: usize,
}

impl LazyGens {
    /// The generators `pts` scaled by `coef` (or 1).
    pub(crate) fn new(pts: &[RistrettoPoint], coef: Option<&[Scalar]>) -> Self {
        LazyGens {
            pts: pts.to_vec(),
            coef: coef.map_or_else(|| alloc::vec![Scalar::ONE; pts.len()], <[Scalar]>::to_vec),
            m: pts.len(),
        }
    }

    /// w: stored points per logical generator (1 or 2 between folds).
    pub(crate) fn width(&self) -> usize {
        self.pts.len() / self.m
    }

    /// Appends the terms of ⟨s, G[start .. start + s.len())⟩: for each stored copy t, the
    /// scalars s_i·coef and the points.
    pub(crate) fn terms(
        &self,
        start: usize,
        s: &[Scalar],
        scalars: &mut Vec<Scalar>,
        points: &mut Vec<RistrettoPoint>,
    ) {
        let mut base = start;
        while base < self.pts.len() {
            for (i, x) in s.iter().enumerate() {
                scalars.push(x * self.coef[base + i]);
                points.push(self.pts[base + i]);
            }
            base += self.m;
        }
    }

    /// G′_i = α·G_i + β·G_{i+m/2} (i < m/2), lazily; materializes when w reaches 4.
    pub(crate) fn fold(&mut self, alpha: Scalar, beta: Scalar) {
        let half = self.m / 2;
        for (j, c) in self.coef.iter_mut().enumerate() {
            *c *= if j % self.m < half { alpha } else { beta };
        }
        self.m = half;
        if self.pts.len() >= 4 * self.m {
            self.materialize();
        }
    }

    /// pts′_i = pts_i + Σ_{t ≥ 1} (coef[i + t·m]/coef[i])·pts[i + t·m], coef′_i = coef[i]
    /// (w − 1 terms and one addition; a zero coef[i], never met with nonzero challenges and
    /// factors, takes the full w terms with coef′_i = 1).
    pub(crate) fn materialize(&mut self) {
        let (m, w) = (self.m, self.pts.len() / self.m);
        if w == 1 {
            return;
        }
        let inv = batch_invert_public(&self.coef[..m]);
        let parts = par::map_parts(m, PAR_MIN_FOLD, |r| self.materialize_part(r, &inv, w));
        let (mut pts, mut coef) = (Vec::with_capacity(m), Vec::with_capacity(m));
        for (p, c) in parts {
            pts.extend(p);
            coef.extend(c);
        }
        self.pts = pts;
        self.coef = coef;
    }

    /// The outputs `range` of [`Self::materialize`] (points and coefficients).
    fn materialize_part(
        &self,
        range: core::ops::Range<usize>,
        inv: &[Scalar],
        w: usize,
    ) -> (Vec<RistrettoPoint>, Vec<Scalar>) {
        let m = self.m;
        let mut pts = Vec::with_capacity(range.len());
        let mut coef = Vec::with_capacity(range.len());
        let mut sc = Vec::with_capacity(w);
        let mut pt = Vec::with_capacity(w);
        for i in range {
            let inv_i = &inv[i];
            sc.clear();
            pt.clear();
            let direct = self.coef[i] == Scalar::ZERO;
            for t in usize::from(!direct)..w {
                let j = i + t * m;
                sc.push(if direct {
                    self.coef[j]
                } else {
                    self.coef[j] * inv_i
                });
                pt.push(self.pts[j]);
            }
            let sum = RistrettoPoint::vartime_multiscalar_mul(&sc, &pt);
            if direct {
                pts.push(sum);
                coef.push(Scalar::ONE);
            } else {
                pts.push(self.pts[i] + sum);
                coef.push(self.coef[i]);
            }
        }
        (pts, coef)
    }

    /// The single generator left after the last fold (m = 1).
    pub(crate) fn last(&mut self) -> RistrettoPoint {
        self.materialize();
        RistrettoPoint::vartime_multiscalar_mul([self.coef[0]], [self.pts[0]])
    }
}

/// ⟨s, G⟩ over `gens`' logical generators `start..` with secret scalars `s` (constant-time MSM),
/// where the positions `public_from..` of the *witness* are public: those go to a
/// variable-time MSM (zeros skipped). `offset` is the witness position of s[0].
#[allow(clippy::too_many_arguments)]
pub(crate) fn split_terms(
    gens: &LazyGens,
    start: usize,
    s: &[Scalar],
    offset: usize,
    public_from: usize,
    ct: (&mut Vec<Scalar>, &mut Vec<RistrettoPoint>),
    vt: (&mut Vec<Scalar>, &mut Vec<RistrettoPoint>),
) {
    let cut = public_from.saturating_sub(offset).min(s.len());
    gens.terms(start, &s[..cut], ct.0, ct.1);
    let (mut sc, mut pt) = (Vec::new(), Vec::new());
    gens.terms(start + cut, &s[cut..], &mut sc, &mut pt);
    for (x, p) in sc.into_iter().zip(pt) {
        if x != Scalar::ZERO {
            vt.0.push(x);
            vt.1.push(p);
        }
    }
}

/// One verification equation: Σ_s Σ_i `vec_coeffs[s][i]`·gens[s][i] + Σ `points` = 0.
pub(crate) struct Equation<'a> {
    pub vec_coeffs: Vec<&'a [Scalar]>,
    pub points: Vec<(Scalar, RistrettoPoint)>,
}

/// A verification equation of one proof, with its statement point.
pub(crate) trait VerificationEquation {
    fn equation(&self) -> Equation<'_>;
    /// Feeds what fixes this equation to the batch-weight hash (W2, D26): the proof's transcript
    /// state after its last challenge, its final scalars (which nothing absorbs) and any
    /// statement point the transcript did not absorb.
    fn absorb_binding(&self, h: &mut Sha512);
}

/// Domain of the batch-weight seed (D26).
const BATCH_WEIGHTS: &[u8] = b"secagg/v3/validate/batch-weights";

/// SHA-256(`secagg/v3/validate/batch-item` ‖ transcript state ‖ final scalars…): one proof's
/// contribution to the batch-weight hash, computed when its equation is built.
pub(crate) fn item_binding(state: &[u8; 32], finals: &[Scalar]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"secagg/v3/validate/batch-item");
    h.update(state);
    for s in finals {
        h.update(s.as_bytes());
    }
    h.finalize().into()
}

/// The weights' generator (W2, D26): ChaCha20 keyed by the first 32 bytes of
/// SHA-512(`secagg/v3/validate/batch-weights` ‖ le64(count) ‖ every item's binding ‖ 32 fresh
/// bytes from `rng`). A prover cannot aim at its weight: changing anything of its proof
/// (final scalars included) changes every weight, and the fresh bytes keep the weights
/// unpredictable before the verifier draws them. `rng` must still be a CSPRNG unknown to the
/// provers (never seeded from public round data): with known fresh bytes the weights are a
/// public function, and although hitting a cancelling pair then needs a hash collision-like
/// search, the batch's 1/ℓ bound assumes secret weights.
pub(crate) fn weight_rng<E: VerificationEquation, R: CryptoRng + ?Sized>(
    items: &[E],
    rng: &mut R,
) -> ChaCha20Rng {
    let mut h = Sha512::new();
    h.update(BATCH_WEIGHTS);
    h.update((items.len() as u64).to_le_bytes());
    for item in items {
        item.absorb_binding(&mut h);
    }
    let mut fresh = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(fresh.as_mut());
    h.update(fresh.as_ref());
    let wide = Zeroizing::new(<[u8; 64]>::from(h.finalize()));
    let mut seed = Zeroizing::new([0u8; 32]);
    seed.copy_from_slice(&wide[..32]);
    ChaCha20Rng::from_seed(*seed)
}

/// Whether every equation holds, checked at once as one variable-time MSM of their sum with
/// the weights of [`weight_rng`] (a false equation passes with probability ≤ 1/ℓ).
pub(crate) fn batch_holds<E: VerificationEquation, R: CryptoRng + ?Sized>(
    gens: &[&[RistrettoPoint]],
    items: &[E],
    rng: &mut R,
) -> bool {
    let eqs: Vec<Equation<'_>> = items.iter().map(E::equation).collect();
    let mut weights = weight_rng(items, rng);
    msm_vanishes(gens, &eqs, || Scalar::random(&mut weights))
}

/// Whether one equation holds (weight 1).
pub(crate) fn holds_alone<E: VerificationEquation>(gens: &[&[RistrettoPoint]], item: &E) -> bool {
    msm_vanishes(gens, &[item.equation()], || Scalar::ONE)
}

/// The batch result of D26 from the proofs found failing: sorted by index; none → Internal.
pub(crate) fn batch_failure(mut failed: Vec<(usize, Error)>) -> BatchError {
    if failed.is_empty() {
        BatchError::Internal
    } else {
        failed.sort_by_key(|(i, _)| *i);
        BatchError::Proofs(failed)
    }
}

/// Verifies a batch (D26): `items[k]` is proof `index[k]`; `failed` holds the proofs already
/// refused (malformed statement or proof), which are not in `items`. With none refused, every
/// equation at once ([`batch_holds`]); on any failure each equation alone, and every proof that
/// fails alone is named ([`BatchError::Internal`] if none does). `gens[s]` must be at least as
/// long as every equation's `vec_coeffs[s]` (the callers' `verification_terms` check this).
pub(crate) fn batch_verify<E: VerificationEquation, R: CryptoRng + ?Sized>(
    gens: &[&[RistrettoPoint]],
    items: &[E],
    index: &[usize],
    mut failed: Vec<(usize, Error)>,
    rng: &mut R,
) -> Result<(), BatchError> {
    if failed.is_empty() && batch_holds(gens, items, rng) {
        return Ok(());
    }
    for (item, i) in items.iter().zip(index) {
        if !holds_alone(gens, item) {
            failed.push((*i, Error::VerificationFailed));
        }
    }
    Err(batch_failure(failed))
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

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::Cell;
    use curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT;
    use rand_chacha::ChaCha20Rng;

    /// An equation that fails the first time it is built (the batch) and holds afterwards
    /// (alone): the "arithmetic disagreement" that must never blame a proof.
    struct Flaky {
        calls: Cell<u32>,
    }

    impl VerificationEquation for Flaky {
        fn equation(&self) -> Equation<'_> {
            let n = self.calls.get();
            self.calls.set(n + 1);
            let points = if n == 0 {
                alloc::vec![(Scalar::ONE, RISTRETTO_BASEPOINT_POINT)]
            } else {
                Vec::new()
            };
            Equation {
                vec_coeffs: Vec::new(),
                points,
            }
        }
        fn absorb_binding(&self, h: &mut Sha512) {
            h.update([0u8]);
        }
    }

    /// W3 (D26): a batch that fails while every proof holds alone is `Internal`, naming no
    /// proof (before: proof 0, an honest client).
    #[test]
    fn batch_failure_with_every_proof_valid_names_nobody() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let items = [Flaky {
            calls: Cell::new(0),
        }];
        assert_eq!(
            batch_verify(&[], &items, &[0], Vec::new(), &mut rng),
            Err(BatchError::Internal)
        );
        assert_eq!(batch_failure(Vec::new()), BatchError::Internal);
        assert_eq!(
            batch_failure(alloc::vec![
                (4, Error::VerificationFailed),
                (1, Error::ZeroWeight)
            ]),
            BatchError::Proofs(alloc::vec![
                (1, Error::ZeroWeight),
                (4, Error::VerificationFailed)
            ])
        );
    }

    /// N1: the branch-free conversion (now behind `ghl::int_to_scalar`, which the GHL mask
    /// uses) agrees with the obvious one, extremes included.
    #[test]
    fn signed_scalar_is_the_integer_mod_l() {
        for v in [
            0i128,
            1,
            -1,
            2,
            -2,
            1 << 98,
            -(1 << 98),
            i128::MAX,
            i128::MIN,
            i128::MIN + 1,
        ] {
            let s = Scalar::from(v.unsigned_abs());
            assert_eq!(signed_scalar(v), if v < 0 { -s } else { s }, "{v}");
        }
    }
}
