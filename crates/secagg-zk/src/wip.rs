//! The zero-knowledge weighted inner-product argument (zk-WIP) of Bulletproofs+ (Chung, Han,
//! Ju, Kim, Seo, ASIACRYPT 2022, ePrint 2020/735, §3, protocol zk-WIP), on power-of-two lengths,
//! made non-interactive with [`Transcript`].
//!
//! **Relation** (BP+ §3): public generators G, H ∈ 𝔾^n, value generator g, blinding generator h,
//! weight y ∈ Z_ℓ^*, point P; witness a, b ∈ Z_ℓ^n, α with
//!
//!   P = ⟨a, G⟩ + ⟨b, H⟩ + (a ⊙_y b)·g + α·h,   a ⊙_y b := Σ_{i=1..n} y^i·a_i·b_i.
//!
//! **Protocol** (BP+ §3; indices here start at 0, so the weight of position i is y^(i+1)):
//! while n > 1, with n̂ = n/2 and halves (a₁, a₂), (b₁, b₂), (G₁, G₂), (H₁, H₂):
//!   c_L = a₁ ⊙_y b₂,  c_R = (y^n̂·a₂) ⊙_y b₁,  d_L, d_R random,
//!   L = ⟨y^-n̂·a₁, G₂⟩ + ⟨b₂, H₁⟩ + c_L·g + d_L·h,
//!   R = ⟨y^n̂·a₂, G₁⟩ + ⟨b₁, H₂⟩ + c_R·g + d_R·h,
//!   challenge e; Ĝ = e^-1·G₁ + e·y^-n̂·G₂, Ĥ = e·H₁ + e^-1·H₂,
//!   â = e·a₁ + y^n̂·e^-1·a₂, b̂ = e^-1·b₁ + e·b₂, α̂ = e²·d_L + α + e^-2·d_R
//!   (and P̂ = e²·L + P + e^-2·R, which the verifier never forms: it checks one MSM at the end).
//! At n = 1: r, s, δ, η random,
//!   A = r·G + s·H + y(r·b + s·a)·g + δ·h,  B = (r·y·s)·g + η·h,
//!   challenge e; r′ = r + a·e, s′ = s + b·e, δ′ = η + δ·e + α·e²;
//!   the verifier checks e²·P̂ + e·A + B = e·r′·Ĝ + e·s′·Ĥ + (r′·y·s′)·g + δ′·h.
//!
//! **Verification as one MSM** (the BP+ paper's §3 remark on multi-exponentiation, in the style of
//! Bulletproofs §3.1): unrolling the folds, the final Ĝ = Σ_i y^-i·t_i·G_i and Ĥ = Σ_i t_i^-1·H_i
//! with t_i = Π_j e_j^(±1) (+1 where bit j of i, counted from the top, is set), and
//! P̂ = P + Σ_j (e_j²·L_j + e_j^-2·R_j). Batches add the equations of several proofs with random
//! weights (Bulletproofs §6.1's batching).
//!
//! **H-side factors.** The norm argument runs the WIP on H″_i = f_i·H_i (arguments.md §A.3,
//! f_i = y^(i+1)); [`WipInstance::h_factors`] gives f without materialising H″: the first round
//! uses f_i·b_i in its MSMs and folds f into Ĥ (a fold costs the same with or without f).
//!
//! **Timing.** Every MSM with a secret scalar (L, R, A, B, the statement point in
//! [`WipWitness::statement_point`]) is dalek's constant-time one; generator folds and
//! verification (public data only) are variable-time (VALIDATION.md §10).
//!
//! **Fiat–Shamir.** The WIP absorbs n, then each (L, R) before its challenge and (A, B) before the
//! last one. The caller must have absorbed everything that fixes the statement (P or its parts,
//! y, which generators) before calling: the WIP does not absorb P, so that a verifier can keep P
//! as a sum of terms ([`WipTerms`]) instead of computing it.

use alloc::vec::Vec;
use core::fmt;

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, MultiscalarMul, VartimeMultiscalarMul};
use rand_core::CryptoRng;
use sha2::{Digest, Sha512};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::fold::{self, Equation, LazyGens, VerificationEquation, Words};
use crate::nonce::NonceBuilder;
use crate::{BatchError, Error, Transcript};

pub use crate::fold::MAX_ROUNDS;

/// Bytes of a proof for length n (a power of two): 2·log₂ n points (L, R), A, B, r′, s′, δ′.
pub fn proof_len(n: usize) -> Result<usize, Error> {
    Ok(32 * (2 * rounds(n)? + 5))
}

fn rounds(n: usize) -> Result<usize, Error> {
    fold::rounds(n, "wip rounds")
}

/// The vector generators G, H shared by every statement that uses them (a statement of length n
/// uses the first n of each).
#[derive(Clone, Copy, Debug)]
pub struct VectorGenerators<'a> {
    pub g: &'a [RistrettoPoint],
    pub h: &'a [RistrettoPoint],
}

/// Everything public about a statement except the point P.
#[derive(Clone, Copy, Debug)]
pub struct WipInstance<'a> {
    /// n, a power of two.
    pub n: usize,
    /// The weight y (nonzero).
    pub y: Scalar,
    /// Optional f with the statement's H-side generators f_i·H_i (length n).
    pub h_factors: Option<&'a [Scalar]>,
    /// g, the value generator.
    pub value_gen: RistrettoPoint,
    /// h, the blinding generator.
    pub blinding_gen: RistrettoPoint,
}

impl WipInstance<'_> {
    fn check(&self, gens: &VectorGenerators<'_>) -> Result<usize, Error> {
        let k = rounds(self.n)?;
        let have = gens.g.len().min(gens.h.len());
        if have < self.n {
            return Err(Error::GeneratorsTooShort {
                needed: self.n,
                have,
            });
        }
        if let Some(f) = self.h_factors
            && f.len() != self.n
        {
            return Err(Error::LengthMismatch {
                what: "h_factors",
                expected: self.n,
                got: f.len(),
            });
        }
        if self.y == Scalar::ZERO {
            return Err(Error::ZeroWeight);
        }
        Ok(k)
    }

    fn factor(&self, i: usize) -> Scalar {
        self.h_factors.map_or(Scalar::ONE, |f| f[i])
    }
}

/// The witness (a, b, α). Zeroized on drop; Debug shows only the length.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct WipWitness {
    a: Vec<Scalar>,
    b: Vec<Scalar>,
    alpha: Scalar,
    /// Positions ≥ this hold public values of a and b (the norm argument's padding): the
    /// prover's first-round MSMs take them variable-time. `usize::MAX`: nothing public.
    public_from: usize,
}

impl fmt::Debug for WipWitness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WipWitness")
            .field("n", &self.a.len())
            .finish_non_exhaustive()
    }
}

impl WipWitness {
    /// A witness; a and b must have the same length.
    pub fn new(a: Vec<Scalar>, b: Vec<Scalar>, alpha: Scalar) -> Result<Self, Error> {
        if a.len() != b.len() {
            let (expected, got) = (a.len(), b.len());
            // Wipe what we were given before refusing it.
            let _ = WipWitness {
                a,
                b,
                alpha,
                public_from: usize::MAX,
            };
            return Err(Error::LengthMismatch {
                what: "witness b",
                expected,
                got,
            });
        }
        Ok(WipWitness {
            a,
            b,
            alpha,
            public_from: usize::MAX,
        })
    }

    /// Declares a[i] and b[i] public for i ≥ `from` (only the caller knows: the norm argument's
    /// padding positions). Changes no value, only which first-round MSM terms run in variable
    /// time. Only the norm argument (std) has public positions.
    #[cfg_attr(not(feature = "std"), allow(dead_code))]
    pub(crate) fn with_public_suffix(mut self, from: usize) -> Self {
        self.public_from = from;
        self
    }

    /// a ⊙_y b.
    pub fn weighted_inner_product(&self, y: &Scalar) -> Scalar {
        weighted_inner_product(&self.a, &self.b, y, Scalar::ONE)
    }

    /// P = ⟨a, G⟩ + ⟨b, f∘H⟩ + (a ⊙_y b)·g + α·h for this witness (constant-time MSM).
    pub fn statement_point(
        &self,
        gens: &VectorGenerators<'_>,
        inst: &WipInstance<'_>,
    ) -> Result<RistrettoPoint, Error> {
        inst.check(gens)?;
        self.check_len(inst.n)?;
        let n = inst.n;
        let value = Zeroizing::new(self.weighted_inner_product(&inst.y));
        let scalars: Zeroizing<Vec<Scalar>> = Zeroizing::new(
            self.a
                .iter()
                .copied()
                .chain(self.b.iter().enumerate().map(|(i, b)| b * inst.factor(i)))
                .chain([*value, self.alpha])
                .collect(),
        );
        let points = gens.g[..n]
            .iter()
            .chain(&gens.h[..n])
            .chain([&inst.value_gen, &inst.blinding_gen]);
        Ok(RistrettoPoint::multiscalar_mul(scalars.iter(), points))
    }

    fn check_len(&self, n: usize) -> Result<(), Error> {
        if self.a.len() != n {
            return Err(Error::LengthMismatch {
                what: "witness",
                expected: n,
                got: self.a.len(),
            });
        }
        Ok(())
    }
}

/// Σ_i y^(i+1)·a_i·b_i, times `scale`.
fn weighted_inner_product(a: &[Scalar], b: &[Scalar], y: &Scalar, scale: Scalar) -> Scalar {
    let mut acc = Scalar::ZERO;
    let mut w = *y;
    for (x, z) in a.iter().zip(b) {
        acc += w * x * z;
        w *= y;
    }
    acc * scale
}

/// A zk-WIP proof: (L_j, R_j) per folding round, then A, B, r′, s′, δ′ (BP+ §3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WipProof {
    l: Vec<RistrettoPoint>,
    r: Vec<RistrettoPoint>,
    a: RistrettoPoint,
    b: RistrettoPoint,
    r1: Scalar,
    s1: Scalar,
    pub(crate) d1: Scalar,
}

impl WipProof {
    /// L₀ ‖ R₀ ‖ … ‖ A ‖ B ‖ r′ ‖ s′ ‖ δ′, 32 bytes each.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 * (2 * self.l.len() + 5));
        for (l, r) in self.l.iter().zip(&self.r) {
            out.extend_from_slice(l.compress().as_bytes());
            out.extend_from_slice(r.compress().as_bytes());
        }
        out.extend_from_slice(self.a.compress().as_bytes());
        out.extend_from_slice(self.b.compress().as_bytes());
        for s in [&self.r1, &self.s1, &self.d1] {
            out.extend_from_slice(s.as_bytes());
        }
        out
    }

    /// Decodes a proof for a statement of length n (untrusted bytes): the length must be
    /// exactly [`proof_len`]`(n)`, every point must decompress and every scalar be canonical.
    pub fn from_bytes(bytes: &[u8], n: usize) -> Result<Self, Error> {
        let k = rounds(n)?;
        let expected = proof_len(n)?;
        if bytes.len() != expected {
            return Err(Error::ProofLength {
                expected,
                got: bytes.len(),
            });
        }
        let words = Words::new(bytes);
        let mut l = Vec::with_capacity(k);
        let mut r = Vec::with_capacity(k);
        for j in 0..k {
            l.push(words.point(2 * j)?);
            r.push(words.point(2 * j + 1)?);
        }
        let a = words.point(2 * k)?;
        let b = words.point(2 * k + 1)?;
        let base = 2 * k + 2;
        Ok(WipProof {
            l,
            r,
            a,
            b,
            r1: words.scalar(base, 0)?,
            s1: words.scalar(base + 1, 1)?,
            d1: words.scalar(base + 2, 2)?,
        })
    }

    /// Folding rounds (log₂ n).
    pub fn rounds(&self) -> usize {
        self.l.len()
    }
}

/// Proves knowledge of `witness` for the statement `inst` (P implied), BP+ §3.
pub fn prove<R: CryptoRng + ?Sized>(
    transcript: &mut Transcript,
    gens: &VectorGenerators<'_>,
    inst: &WipInstance<'_>,
    witness: &WipWitness,
    rng: &mut R,
) -> Result<WipProof, Error> {
    let k = inst.check(gens)?;
    witness.check_len(inst.n)?;
    let mut n = inst.n;
    let y = inst.y;
    // y^0..y^(n/2): the weights of ⊙_y on a half and the factors y^n̂.
    let mut y_pow = Vec::with_capacity(n / 2 + 1);
    let mut acc = Scalar::ONE;
    for _ in 0..=n / 2 {
        y_pow.push(acc);
        acc *= y;
    }

    // Hedged nonces (D25): the statement so far (the caller absorbed it, D6), y, the value and
    // blinding generators, the witness, 32 bytes of `rng`.
    let mut nonces = {
        let mut b = NonceBuilder::new(b"wip");
        b.record(b"transcript", &transcript.state_hash())
            .record(b"n", &(n as u64).to_le_bytes())
            .record(b"y", y.as_bytes())
            .record(b"g", inst.value_gen.compress().as_bytes())
            .record(b"h", inst.blinding_gen.compress().as_bytes())
            .scalars(b"a", witness.a.iter())
            .scalars(b"b", witness.b.iter())
            .record(b"alpha", witness.alpha.as_bytes());
        b.finish(rng)
    };
    transcript.append_u64(b"wip/n", n as u64);
    // Generators folded lazily (fold::LazyGens): the same points, fewer group operations.
    let mut g = LazyGens::new(&gens.g[..n], None);
    let mut h = LazyGens::new(&gens.h[..n], inst.h_factors);
    // Only the first round sees the public positions; the first fold mixes them with secrets.
    let mut public_from = witness.public_from;
    let mut a = Zeroizing::new(witness.a.clone());
    let mut b = Zeroizing::new(witness.b.clone());
    let mut alpha = Zeroizing::new(witness.alpha);
    let mut l_vec = Vec::with_capacity(k);
    let mut r_vec = Vec::with_capacity(k);

    while n > 1 {
        let half = n / 2;
        let (a1, a2) = a.split_at(half);
        let (b1, b2) = b.split_at(half);
        let y_half = y_pow[half];
        let y_half_inv = y_half.invert();
        let c_l = Zeroizing::new(weighted_inner_product(a1, b2, &y, Scalar::ONE));
        let c_r = Zeroizing::new(weighted_inner_product(a2, b1, &y, y_half));
        let d_l = Zeroizing::new(Scalar::random(&mut nonces));
        let d_r = Zeroizing::new(Scalar::random(&mut nonces));

        let a1s: Zeroizing<Vec<Scalar>> =
            Zeroizing::new(a1.iter().map(|x| x * y_half_inv).collect());
        let a2s: Zeroizing<Vec<Scalar>> = Zeroizing::new(a2.iter().map(|x| x * y_half).collect());
        // L = ⟨y^-n̂·a₁, G₂⟩ + ⟨b₂, H₁⟩ + c_L·g + d_L·h; R = ⟨y^n̂·a₂, G₁⟩ + ⟨b₁, H₂⟩ + c_R·g + d_R·h.
        let point = |parts: [(&LazyGens, usize, &[Scalar], usize); 2], c: Scalar, d: Scalar| {
            // Exact capacity: the secret scalars never reallocate (so never leave copies behind).
            let cap = parts.iter().map(|p| p.2.len() * p.0.width()).sum::<usize>() + 2;
            let mut ct_s: Zeroizing<Vec<Scalar>> = Zeroizing::new(Vec::with_capacity(cap));
            let mut ct_p = Vec::with_capacity(cap);
            let (mut vt_s, mut vt_p) = (Vec::new(), Vec::new());
            for (gens, start, s, offset) in parts {
                fold::split_terms(
                    gens,
                    start,
                    s,
                    offset,
                    public_from,
                    (&mut ct_s, &mut ct_p),
                    (&mut vt_s, &mut vt_p),
                );
            }
            ct_s.extend([c, d]);
            ct_p.extend([inst.value_gen, inst.blinding_gen]);
            fold::ct_msm(&ct_s, &ct_p) + RistrettoPoint::vartime_multiscalar_mul(&vt_s, &vt_p)
        };
        let l_point = point([(&g, half, &a1s, 0), (&h, 0, b2, half)], *c_l, *d_l);
        let r_point = point([(&g, 0, &a2s, half), (&h, half, b1, 0)], *c_r, *d_r);
        transcript.append_point(b"wip/L", &l_point.compress());
        transcript.append_point(b"wip/R", &r_point.compress());
        let e = transcript.challenge_scalar(b"wip/e");
        let e_inv = e.invert();
        l_vec.push(l_point);
        r_vec.push(r_point);

        // Generator folds (public points and scalars): Ĝ = e^-1·G₁ + e·y^-n̂·G₂,
        // Ĥ = e·H₁ + e^-1·H₂ (on the factor-scaled H″ in the first round).
        g.fold(e_inv, e * y_half_inv);
        h.fold(e, e_inv);
        let a2_scale = y_half * e_inv;
        let a_next: Vec<Scalar> = a1
            .iter()
            .zip(a2)
            .map(|(x, z)| x * e + z * a2_scale)
            .collect();
        let b_next: Vec<Scalar> = b1.iter().zip(b2).map(|(x, z)| x * e_inv + z * e).collect();
        alpha = Zeroizing::new(*d_l * e * e + *alpha + *d_r * e_inv * e_inv);
        a = Zeroizing::new(a_next);
        b = Zeroizing::new(b_next);
        public_from = usize::MAX;
        n = half;
    }

    let (g0, h0) = (g.last(), h.last());
    let (a0, b0) = (Zeroizing::new(a[0]), Zeroizing::new(b[0]));
    let r = Zeroizing::new(Scalar::random(&mut nonces));
    let s = Zeroizing::new(Scalar::random(&mut nonces));
    let delta = Zeroizing::new(Scalar::random(&mut nonces));
    let eta = Zeroizing::new(Scalar::random(&mut nonces));
    let a_scalars = Zeroizing::new([*r, *s, y * (*r * *b0 + *s * *a0), *delta]);
    let a_point = RistrettoPoint::multiscalar_mul(
        a_scalars.iter(),
        [g0, h0, inst.value_gen, inst.blinding_gen],
    );
    let b_scalars = Zeroizing::new([*r * y * *s, *eta]);
    let b_point =
        RistrettoPoint::multiscalar_mul(b_scalars.iter(), [inst.value_gen, inst.blinding_gen]);
    transcript.append_point(b"wip/A", &a_point.compress());
    transcript.append_point(b"wip/B", &b_point.compress());
    let e = transcript.challenge_scalar(b"wip/e_last");
    Ok(WipProof {
        l: l_vec,
        r: r_vec,
        a: a_point,
        b: b_point,
        r1: *r + *a0 * e,
        s1: *s + *b0 * e,
        d1: *eta + *delta * e + *alpha * e * e,
    })
}

/// The verification equation of one proof as an MSM that must vanish:
/// `p_coeff·P + Σ g_coeffs_i·G_i + Σ h_coeffs_i·H_i + Σ points = 0`
/// (`points` holds L_j, R_j, A, B, g and h with their scalars). Callers that build P from parts
/// multiply each part by `p_coeff` and add it to their own MSM.
#[derive(Clone, Debug)]
pub struct WipTerms {
    pub p_coeff: Scalar,
    pub g_coeffs: Vec<Scalar>,
    pub h_coeffs: Vec<Scalar>,
    pub points: Vec<(Scalar, RistrettoPoint)>,
    /// The transcript state after the last challenge and r′, s′, δ′ (batch weights, D26).
    pub(crate) binding: [u8; 32],
}

impl WipTerms {
    /// Checks the equation for P alone (one variable-time MSM).
    pub fn check(&self, gens: &VectorGenerators<'_>, p: &RistrettoPoint) -> bool {
        let n = self.g_coeffs.len();
        let scalars = core::iter::once(&self.p_coeff)
            .chain(&self.g_coeffs)
            .chain(&self.h_coeffs)
            .chain(self.points.iter().map(|(s, _)| s));
        let points = core::iter::once(p)
            .chain(&gens.g[..n])
            .chain(&gens.h[..n])
            .chain(self.points.iter().map(|(_, p)| p));
        RistrettoPoint::vartime_multiscalar_mul(scalars, points).is_identity()
    }
}

/// Replays the transcript and returns the verification equation (no group operation on the
/// statement; BP+ §3 with the folds unrolled, see the module docs).
pub fn verification_terms(
    transcript: &mut Transcript,
    gens: &VectorGenerators<'_>,
    inst: &WipInstance<'_>,
    proof: &WipProof,
) -> Result<WipTerms, Error> {
    let k = inst.check(gens)?;
    if proof.l.len() != k || proof.r.len() != k {
        let (expected, got) = (proof_len(inst.n)?, 32 * (proof.l.len() + proof.r.len() + 5));
        return Err(Error::ProofLength { expected, got });
    }
    let n = inst.n;
    transcript.append_u64(b"wip/n", n as u64);
    let mut es = Vec::with_capacity(k);
    for (l, r) in proof.l.iter().zip(&proof.r) {
        transcript.append_point(b"wip/L", &l.compress());
        transcript.append_point(b"wip/R", &r.compress());
        es.push(transcript.challenge_scalar(b"wip/e"));
    }
    transcript.append_point(b"wip/A", &proof.a.compress());
    transcript.append_point(b"wip/B", &proof.b.compress());
    let e = transcript.challenge_scalar(b"wip/e_last");

    // Challenges are nonzero (Transcript redraws zero) and y was checked nonzero.
    let e_inv: Vec<Scalar> = es.iter().map(Scalar::invert).collect();
    let y = inst.y;
    let y_inv = y.invert();

    // g_i = −r′·e·y^-i·t_i and h_i = −s′·e·t_i^-1·f_i with t_i = Π_j e_j^(±1) (+1 where round j's
    // bit is set in i): subset products from −r′·e·Π e_j^-1 with factors e_j²·y^-(2^(k−1−j))
    // (y^-i = Π over i's bits b of y^-(2^b)), and from −s′·e·Π e_j with factors e_j^-2; one
    // multiplication per position (the same scalars as the position-by-position products).
    let mut y_inv_sq = Vec::with_capacity(k); // y^-(2^b), b = 0..k
    let mut acc = y_inv;
    for _ in 0..k {
        y_inv_sq.push(acc);
        acc *= acc;
    }
    let g_mult: Vec<Scalar> = (0..k)
        .map(|j| es[j] * es[j] * y_inv_sq[k - 1 - j])
        .collect();
    let h_mult: Vec<Scalar> = e_inv.iter().map(|x| x * x).collect();
    let g_init = -(proof.r1 * e) * e_inv.iter().product::<Scalar>();
    let h_init = -(proof.s1 * e) * es.iter().product::<Scalar>();
    let g_coeffs = fold::subset_products(g_init, &g_mult);
    let mut h_coeffs = fold::subset_products(h_init, &h_mult);
    if let Some(f) = inst.h_factors {
        for (h, f) in h_coeffs.iter_mut().zip(f) {
            *h *= f;
        }
    }

    let e2 = e * e;
    let mut points = Vec::with_capacity(2 * k + 4);
    for j in 0..k {
        points.push((e2 * es[j] * es[j], proof.l[j]));
        points.push((e2 * e_inv[j] * e_inv[j], proof.r[j]));
    }
    points.push((e, proof.a));
    points.push((Scalar::ONE, proof.b));
    points.push((-(proof.r1 * y * proof.s1), inst.value_gen));
    points.push((-proof.d1, inst.blinding_gen));
    let binding = fold::item_binding(&transcript.state_hash(), &[proof.r1, proof.s1, proof.d1]);
    Ok(WipTerms {
        p_coeff: e2,
        g_coeffs,
        h_coeffs,
        points,
        binding,
    })
}

impl VerificationEquation for (WipTerms, RistrettoPoint) {
    fn equation(&self) -> Equation<'_> {
        Equation {
            vec_coeffs: alloc::vec![&self.0.g_coeffs[..], &self.0.h_coeffs[..]],
            points: self
                .0
                .points
                .iter()
                .copied()
                .chain([(self.0.p_coeff, self.1)])
                .collect(),
        }
    }

    fn absorb_binding(&self, h: &mut Sha512) {
        h.update(self.0.binding);
        // P is the caller's: the WIP's transcript does not absorb it (D6).
        h.update(self.1.compress().as_bytes());
    }
}

/// Verifies one proof for the statement (inst, P).
pub fn verify(
    transcript: &mut Transcript,
    gens: &VectorGenerators<'_>,
    inst: &WipInstance<'_>,
    p: &RistrettoPoint,
    proof: &WipProof,
) -> Result<(), Error> {
    let terms = verification_terms(transcript, gens, inst, proof)?;
    if terms.check(gens, p) {
        Ok(())
    } else {
        Err(Error::VerificationFailed)
    }
}

/// One proof of a batch: its own transcript (positioned where the prover started the WIP), its
/// statement and its proof.
#[derive(Debug)]
pub struct BatchItem<'a> {
    pub transcript: Transcript,
    pub inst: WipInstance<'a>,
    pub p: RistrettoPoint,
    pub proof: &'a WipProof,
}

/// Verifies several proofs over the same vector generators with one MSM: the equations are
/// added with random weights hashed from every proof and 32 bytes of `rng` (D26), so a batch
/// with a bad proof passes with probability ≤ 1/ℓ. **`rng` must be a CSPRNG the provers cannot
/// predict** (never one seeded from public round data). On failure every proof is checked alone
/// and every one that fails is named, with its error (a malformed statement or proof too);
/// [`BatchError::Internal`] if none fails alone.
pub fn batch_verify<R: CryptoRng + ?Sized>(
    gens: &VectorGenerators<'_>,
    items: Vec<BatchItem<'_>>,
    rng: &mut R,
) -> Result<(), BatchError> {
    let mut all = Vec::with_capacity(items.len());
    let mut index = Vec::with_capacity(items.len());
    let mut failed = Vec::new();
    for (proof, mut item) in items.into_iter().enumerate() {
        match verification_terms(&mut item.transcript, gens, &item.inst, item.proof) {
            Ok(terms) => {
                all.push((terms, item.p));
                index.push(proof);
            }
            Err(error) => failed.push((proof, error)),
        }
    }
    // verification_terms checked each statement's n against the generators' length.
    fold::batch_verify(&[gens.g, gens.h], &all, &index, failed, rng)
}
