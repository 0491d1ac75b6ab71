//! The linear-form argument of Gentry, Halevi and Lyubashevsky (Eurocrypt 2022, ePrint
//! 2021/1397, App. E.3), the protocol of dalek's `bulletproofs::LinearProof`, on power-of-two
//! lengths, made non-interactive with [`Transcript`] (VALIDATION.md §3, §7.2).
//!
//! **Relation:** public generators G ∈ 𝔾^n, value generator F, blinding generator B, public
//! vector b ∈ Z_ℓ^n and point C; witness a ∈ Z_ℓ^n, r with
//!
//!   C = ⟨a, G⟩ + ⟨a, b⟩·F + r·B.
//!
//! **Protocol** (GHL'21 App. E.3): while n > 1, with n̂ = n/2 and halves (a₁, a₂), (b₁, b₂),
//! (G₁, G₂): s, t random,
//!   L = ⟨a₁, G₂⟩ + s·B + ⟨a₁, b₂⟩·F,  R = ⟨a₂, G₁⟩ + t·B + ⟨a₂, b₁⟩·F,
//!   challenge x; a′ = a₁ + x^-1·a₂, b′ = b₁ + x·b₂, G′ = G₁ + x·G₂, r′ = r + x·s + x^-1·t
//!   (so C′ = C + x·L + x^-1·R). At n = 1 a Schnorr proof of C′ = a·(G + b·F) + r·B:
//!   s*, t* random, S = s*·(G + b·F) + t*·B, challenge x*, a* = s* + x*·a, r* = t* + x*·r;
//!   the verifier checks S + x*·C′ = a*·(G′ + b′·F) + r*·B.
//! The x_j / x_j^-1 weights on L_j, R_j follow the algebra above (dalek's code notes that the
//! paper's verification equation, as of May 2022, has them swapped).
//!
//! **Verification as one MSM:** G′ = Σ_i s_i·G_i with s_i = Π_j x_j^bit (the subset products
//! of GHL'21; round j owns bit k − 1 − j of i); b′ is folded directly (O(n) scalar work).
//!
//! **Timing:** L, R and S involve the secret a, r: constant-time MSMs (dalek's reference uses
//! variable-time ones here; VALIDATION.md §15 asks for constant time). Generator folds and
//! verification are variable-time on public data.
//!
//! **Fiat–Shamir:** absorbs n, each (L, R) before its challenge, S before the last. The caller
//! absorbs the statement (C or its parts, b's inputs) first, as for [`crate::wip`].
//!
//! **Padding** (arguments.md §B.1, F1): the binding statement has N′ = d + 2J + 130 slots; it is
//! padded to a power of two with [`pad_generators`] (the `lpad` set, never the WIP's G, H),
//! [`pad_coefficients`] and [`LinearWitness::padded`]; prove and verify then run on the padded
//! length, exactly as published.

use alloc::vec::Vec;
use core::fmt;

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, MultiscalarMul, VartimeMultiscalarMul};
use rand_core::CryptoRng;
use sha2::{Digest, Sha512};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::fold::{self, Equation, LazyGens, MAX_ROUNDS, VerificationEquation, Words};
use crate::nonce::NonceBuilder;
use crate::{BatchError, Error, Transcript};

/// Bytes of a proof for length n (a power of two): 2·log₂ n points (L, R), S, a*, r*.
pub fn proof_len(n: usize) -> Result<usize, Error> {
    Ok(32 * (2 * rounds(n)? + 3))
}

fn rounds(n: usize) -> Result<usize, Error> {
    fold::rounds(n, "linear rounds")
}

/// N′_pad = 2^⌈log₂ N′⌉ (arguments.md §B.1; 1 for N′ = 0).
pub fn padded_len(n: usize) -> Result<usize, Error> {
    let padded = n.checked_next_power_of_two().ok_or(Error::TooLarge {
        what: "linear length",
        max: 1 << MAX_ROUNDS,
        got: n as u64,
    })?;
    rounds(padded)?;
    Ok(padded)
}

/// The statement's generators padded to a power of two with the linear proof's own padding
/// generators (`lpad`, arguments.md §B.1, F1: disjoint from the WIP's G and H, coefficient 0
/// in b, zero in honest witnesses).
pub fn pad_generators(
    base: &[RistrettoPoint],
    lpad: &[RistrettoPoint],
) -> Result<Vec<RistrettoPoint>, Error> {
    let padded = padded_len(base.len())?;
    let extra = padded - base.len();
    if lpad.len() < extra {
        return Err(Error::GeneratorsTooShort {
            needed: extra,
            have: lpad.len(),
        });
    }
    Ok(base.iter().chain(&lpad[..extra]).copied().collect())
}

/// A public vector padded with zeros to [`padded_len`] (the coefficient 0 of every `lpad` slot).
pub fn pad_coefficients(b: &[Scalar]) -> Result<Vec<Scalar>, Error> {
    let mut out = b.to_vec();
    out.resize(padded_len(b.len())?, Scalar::ZERO);
    Ok(out)
}

fn inner_product(a: &[Scalar], b: &[Scalar]) -> Scalar {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Everything public about a statement except C.
#[derive(Clone, Copy, Debug)]
pub struct LinearInstance<'a> {
    /// The public vector b; its length n is the statement's (a power of two).
    pub b: &'a [Scalar],
    /// F, the value generator.
    pub value_gen: RistrettoPoint,
    /// B, the blinding generator.
    pub blinding_gen: RistrettoPoint,
}

impl LinearInstance<'_> {
    fn check(&self, gens: &[RistrettoPoint]) -> Result<usize, Error> {
        let n = self.b.len();
        let k = rounds(n)?;
        if gens.len() < n {
            return Err(Error::GeneratorsTooShort {
                needed: n,
                have: gens.len(),
            });
        }
        Ok(k)
    }
}

/// The witness (a, r). Zeroized on drop; Debug shows only the length.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct LinearWitness {
    a: Vec<Scalar>,
    r: Scalar,
    /// Positions ≥ this are the padding of [`LinearWitness::padded`] (zero, public): the
    /// prover's first-round MSMs skip them. `usize::MAX`: nothing public.
    public_from: usize,
}

impl fmt::Debug for LinearWitness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinearWitness")
            .field("n", &self.a.len())
            .finish_non_exhaustive()
    }
}

impl LinearWitness {
    pub fn new(a: Vec<Scalar>, r: Scalar) -> Self {
        LinearWitness {
            a,
            r,
            public_from: usize::MAX,
        }
    }

    /// The witness padded with zeros to [`padded_len`] (honest values on `lpad` slots).
    pub fn padded(mut self) -> Result<Self, Error> {
        let n = padded_len(self.a.len())?;
        self.public_from = self.public_from.min(self.a.len());
        self.a.resize(n, Scalar::ZERO);
        Ok(self)
    }

    /// C = ⟨a, G⟩ + ⟨a, b⟩·F + r·B for this witness (constant-time MSM).
    pub fn statement_point(
        &self,
        gens: &[RistrettoPoint],
        inst: &LinearInstance<'_>,
    ) -> Result<RistrettoPoint, Error> {
        inst.check(gens)?;
        self.check_len(inst.b.len())?;
        let n = inst.b.len();
        let value = Zeroizing::new(inner_product(&self.a, inst.b));
        let scalars: Zeroizing<Vec<Scalar>> =
            Zeroizing::new(self.a.iter().copied().chain([*value, self.r]).collect());
        let points = gens[..n]
            .iter()
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

/// A linear proof: (L_j, R_j) per folding round, then S, a*, r* (GHL'21 App. E.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinearProof {
    l: Vec<RistrettoPoint>,
    r: Vec<RistrettoPoint>,
    s: RistrettoPoint,
    a_star: Scalar,
    r_star: Scalar,
}

impl LinearProof {
    /// L₀ ‖ R₀ ‖ … ‖ S ‖ a* ‖ r*, 32 bytes each.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 * (2 * self.l.len() + 3));
        for (l, r) in self.l.iter().zip(&self.r) {
            out.extend_from_slice(l.compress().as_bytes());
            out.extend_from_slice(r.compress().as_bytes());
        }
        out.extend_from_slice(self.s.compress().as_bytes());
        out.extend_from_slice(self.a_star.as_bytes());
        out.extend_from_slice(self.r_star.as_bytes());
        out
    }

    /// Decodes a proof for a statement of length n (untrusted bytes): exact length, points that
    /// decompress, canonical scalars.
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
        Ok(LinearProof {
            l,
            r,
            s: words.point(2 * k)?,
            a_star: words.scalar(2 * k + 1, 0)?,
            r_star: words.scalar(2 * k + 2, 1)?,
        })
    }

    /// Folding rounds (log₂ n).
    pub fn rounds(&self) -> usize {
        self.l.len()
    }
}

/// Proves knowledge of `witness` for `inst` (C implied), GHL'21 App. E.3.
pub fn prove<R: CryptoRng + ?Sized>(
    transcript: &mut Transcript,
    gens: &[RistrettoPoint],
    inst: &LinearInstance<'_>,
    witness: &LinearWitness,
    rng: &mut R,
) -> Result<LinearProof, Error> {
    let k = inst.check(gens)?;
    let mut n = inst.b.len();
    witness.check_len(n)?;
    // Hedged nonces (D25): the statement so far (the caller absorbed it, D6), b, F, B, the
    // witness, 32 bytes of `rng`.
    let mut nonces = {
        let mut nb = NonceBuilder::new(b"linear");
        nb.record(b"transcript", &transcript.state_hash())
            .scalars(b"b", inst.b.iter())
            .record(b"F", inst.value_gen.compress().as_bytes())
            .record(b"B", inst.blinding_gen.compress().as_bytes())
            .scalars(b"a", witness.a.iter())
            .record(b"r", witness.r.as_bytes());
        nb.finish(rng)
    };
    transcript.append_u64(b"linear/n", n as u64);
    // Generators folded lazily (fold::LazyGens): the same points, fewer group operations.
    let mut g = LazyGens::new(&gens[..n], None);
    // Only the first round sees the (zero) padding; the first fold mixes it with secrets.
    let mut public_from = witness.public_from;
    let mut b: Vec<Scalar> = inst.b.to_vec();
    let mut a = Zeroizing::new(witness.a.clone());
    let mut r = Zeroizing::new(witness.r);
    let (f_gen, b_gen) = (inst.value_gen, inst.blinding_gen);
    let mut l_vec = Vec::with_capacity(k);
    let mut r_vec = Vec::with_capacity(k);

    while n > 1 {
        let half = n / 2;
        let (a1, a2) = a.split_at(half);
        let (b1, b2) = b.split_at(half);
        let s = Zeroizing::new(Scalar::random(&mut nonces));
        let t = Zeroizing::new(Scalar::random(&mut nonces));
        let c_l = Zeroizing::new(inner_product(a1, b2));
        let c_r = Zeroizing::new(inner_product(a2, b1));
        // L = ⟨a₁, G₂⟩ + s·B + c_L·F, R = ⟨a₂, G₁⟩ + t·B + c_R·F.
        let point = |start: usize, part: &[Scalar], offset: usize, blind: Scalar, c: Scalar| {
            // Exact capacity: the secret scalars never reallocate (so never leave copies behind).
            let cap = part.len() * g.width() + 2;
            let mut ct_s: Zeroizing<Vec<Scalar>> = Zeroizing::new(Vec::with_capacity(cap));
            let mut ct_p = Vec::with_capacity(cap);
            let (mut vt_s, mut vt_p) = (Vec::new(), Vec::new());
            fold::split_terms(
                &g,
                start,
                part,
                offset,
                public_from,
                (&mut ct_s, &mut ct_p),
                (&mut vt_s, &mut vt_p),
            );
            ct_s.extend([blind, c]);
            ct_p.extend([b_gen, f_gen]);
            fold::ct_msm(&ct_s, &ct_p) + RistrettoPoint::vartime_multiscalar_mul(&vt_s, &vt_p)
        };
        let l_point = point(half, a1, 0, *s, *c_l);
        let r_point = point(0, a2, half, *t, *c_r);
        transcript.append_point(b"linear/L", &l_point.compress());
        transcript.append_point(b"linear/R", &r_point.compress());
        let x = transcript.challenge_scalar(b"linear/x");
        let x_inv = x.invert();
        l_vec.push(l_point);
        r_vec.push(r_point);

        // G′ = G₁ + x·G₂ (public points and scalars).
        g.fold(Scalar::ONE, x);
        let a_next: Vec<Scalar> = a1.iter().zip(a2).map(|(p, q)| p + x_inv * q).collect();
        let b_next: Vec<Scalar> = b1.iter().zip(b2).map(|(p, q)| p + x * q).collect();
        r = Zeroizing::new(*r + x * *s + x_inv * *t);
        a = Zeroizing::new(a_next);
        b = b_next;
        public_from = usize::MAX;
        n = half;
    }

    let g0 = g.last();
    let s_star = Zeroizing::new(Scalar::random(&mut nonces));
    let t_star = Zeroizing::new(Scalar::random(&mut nonces));
    let sb = Zeroizing::new(*s_star * b[0]);
    let s_point = RistrettoPoint::multiscalar_mul([*s_star, *sb, *t_star], [g0, f_gen, b_gen]);
    transcript.append_point(b"linear/S", &s_point.compress());
    let x_star = transcript.challenge_scalar(b"linear/x_last");
    Ok(LinearProof {
        l: l_vec,
        r: r_vec,
        s: s_point,
        a_star: *s_star + x_star * a[0],
        r_star: *t_star + x_star * *r,
    })
}

/// The verification equation of one proof as an MSM that must vanish:
/// `c_coeff·C + Σ g_coeffs_i·G_i + Σ points = 0` (`points`: L_j, R_j, S, F, B with scalars).
#[derive(Clone, Debug)]
pub struct LinearTerms {
    pub c_coeff: Scalar,
    pub g_coeffs: Vec<Scalar>,
    pub points: Vec<(Scalar, RistrettoPoint)>,
    /// The transcript state after the last challenge, b′ and a*, r* (batch weights, D26).
    pub(crate) binding: [u8; 32],
}

impl LinearTerms {
    /// Checks the equation for C alone (one variable-time MSM).
    pub fn check(&self, gens: &[RistrettoPoint], c: &RistrettoPoint) -> bool {
        let n = self.g_coeffs.len();
        let scalars = core::iter::once(&self.c_coeff)
            .chain(&self.g_coeffs)
            .chain(self.points.iter().map(|(s, _)| s));
        let points = core::iter::once(c)
            .chain(&gens[..n])
            .chain(self.points.iter().map(|(_, p)| p));
        RistrettoPoint::vartime_multiscalar_mul(scalars, points).is_identity()
    }
}

/// Replays the transcript and returns the verification equation (GHL'21 App. E.3, unrolled).
pub fn verification_terms(
    transcript: &mut Transcript,
    gens: &[RistrettoPoint],
    inst: &LinearInstance<'_>,
    proof: &LinearProof,
) -> Result<LinearTerms, Error> {
    let k = inst.check(gens)?;
    let n = inst.b.len();
    if proof.l.len() != k || proof.r.len() != k {
        let got = 32 * (proof.l.len() + proof.r.len() + 3);
        return Err(Error::ProofLength {
            expected: proof_len(n)?,
            got,
        });
    }
    transcript.append_u64(b"linear/n", n as u64);
    let mut xs = Vec::with_capacity(k);
    let mut b: Vec<Scalar> = inst.b.to_vec();
    let mut m = n;
    for (l, r) in proof.l.iter().zip(&proof.r) {
        transcript.append_point(b"linear/L", &l.compress());
        transcript.append_point(b"linear/R", &r.compress());
        let x = transcript.challenge_scalar(b"linear/x");
        m /= 2;
        let (b1, b2) = b.split_at_mut(m);
        for (p, q) in b1.iter_mut().zip(b2.iter()) {
            *p += x * q;
        }
        b.truncate(m);
        xs.push(x);
    }
    transcript.append_point(b"linear/S", &proof.s.compress());
    let x_star = transcript.challenge_scalar(b"linear/x_last");

    // Challenges are nonzero (Transcript redraws zero).
    let x_inv: Vec<Scalar> = xs.iter().map(Scalar::invert).collect();
    let subset = fold::subset_products(Scalar::ONE, &xs);
    let g_coeffs: Vec<Scalar> = subset.iter().map(|s| -(proof.a_star * s)).collect();
    let mut points = Vec::with_capacity(2 * k + 3);
    for j in 0..k {
        points.push((x_star * xs[j], proof.l[j]));
        points.push((x_star * x_inv[j], proof.r[j]));
    }
    points.push((Scalar::ONE, proof.s));
    points.push((-(proof.a_star * b[0]), inst.value_gen));
    points.push((-proof.r_star, inst.blinding_gen));
    let binding = fold::item_binding(
        &transcript.state_hash(),
        &[b[0], proof.a_star, proof.r_star],
    );
    Ok(LinearTerms {
        c_coeff: x_star,
        g_coeffs,
        points,
        binding,
    })
}

impl VerificationEquation for (LinearTerms, RistrettoPoint) {
    fn equation(&self) -> Equation<'_> {
        Equation {
            vec_coeffs: alloc::vec![&self.0.g_coeffs[..]],
            points: self
                .0
                .points
                .iter()
                .copied()
                .chain([(self.0.c_coeff, self.1)])
                .collect(),
        }
    }

    fn absorb_binding(&self, h: &mut Sha512) {
        h.update(self.0.binding);
        // C is the caller's: the linear proof's transcript does not absorb it (D6).
        h.update(self.1.compress().as_bytes());
    }
}

/// Verifies one proof for the statement (inst, C).
pub fn verify(
    transcript: &mut Transcript,
    gens: &[RistrettoPoint],
    inst: &LinearInstance<'_>,
    c: &RistrettoPoint,
    proof: &LinearProof,
) -> Result<(), Error> {
    let terms = verification_terms(transcript, gens, inst, proof)?;
    if terms.check(gens, c) {
        Ok(())
    } else {
        Err(Error::VerificationFailed)
    }
}

/// One proof of a batch: its transcript (positioned where the prover started), statement, proof.
#[derive(Debug)]
pub struct LinearBatchItem<'a> {
    pub transcript: Transcript,
    pub inst: LinearInstance<'a>,
    pub c: RistrettoPoint,
    pub proof: &'a LinearProof,
}

/// Verifies several proofs over the same generators with one MSM, weights hashed from every
/// proof and 32 bytes of `rng` (D26; **`rng` must be a CSPRNG the provers cannot predict**); on
/// failure names every proof that fails alone ([`BatchError::Internal`] if none does).
pub fn batch_verify<R: CryptoRng + ?Sized>(
    gens: &[RistrettoPoint],
    items: Vec<LinearBatchItem<'_>>,
    rng: &mut R,
) -> Result<(), BatchError> {
    let mut all = Vec::with_capacity(items.len());
    let mut index = Vec::with_capacity(items.len());
    let mut failed = Vec::new();
    for (proof, mut item) in items.into_iter().enumerate() {
        match verification_terms(&mut item.transcript, gens, &item.inst, item.proof) {
            Ok(terms) => {
                all.push((terms, item.c));
                index.push(proof);
            }
            Err(error) => failed.push((proof, error)),
        }
    }
    // verification_terms checked each statement's n against the generators' length.
    fold::batch_verify(&[gens], &all, &index, failed, rng)
}
