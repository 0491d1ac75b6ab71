//! Statement N, the norm argument sent with the masked input (VALIDATION.md §5.1, §7.1;
//! arguments.md §A): C_u commits to an integer vector x with ‖x‖₂² ≤ B_enc², exactly.
//!
//! Public: the parameters (d, B_enc², W when the encoding has a weight coordinate, the last),
//! the context (session, client, SHA-256 of the packed upload), and the points the proof
//! carries: C_u = ⟨x, K⟩ + r_u·h, M_u = ⟨g, G_[d, d+128)⟩ + r_M·h, V_s = s·g₀ + γ·h
//! (s = ⟨x, x⟩) and V_w = x_w·g₀ + γ_w·h.
//!
//! The proof: z = R·x + g (GHL, [`crate::ghl`]), a zk-WIP ([`crate::wip`]) on N_pad =
//! 2^⌈log₂(d + 128)⌉ positions for the point
//!
//!   P′ = C_u + ε·M_u − ν·⟨w′, G⟩ + μ·⟨a, H⟩ + ν·⟨w, H⟩ + ζ·V_s + μ·c_w·ζ·V_w + Γ·U,  U = ζ·g₀,
//!
//! with every vector and scalar exactly as arguments.md §A.2–A.3 define them (the padding pinned
//! on both sides, F1), and a range proof ([`crate::range`]) that B_enc² − s and, with a weight,
//! x_w and W − x_w are in [0, 2^64). Transcript order and records: VALIDATION.md §21.1 D12.
//!
//! The verifier never forms P′: it adds P′'s terms, times the WIP equation's coefficient of P,
//! to the WIP's verification MSM (one variable-time MSM over 2·N_pad + 2·log₂ N_pad + 9 points).

use alloc::vec::Vec;
use core::fmt;

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{Identity, MultiscalarMul};
use rand_core::CryptoRng;
use sha2::{Digest, Sha512};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::fold::{self, Equation, VerificationEquation, powers};
use crate::ghl::{self, GhlMask, GhlParams, TernaryMatrix};
use crate::nonce::NonceBuilder;
use crate::range::{self, RangeOpening, RangeProof, RangeStatementN};
use crate::wip::{self, VectorGenerators, WipInstance, WipProof, WipTerms, WipWitness};
use crate::{BatchError, Error, GeneratorSizes, Generators, Transcript};

pub use crate::{MAX_D, VERSION};
/// The norm transcript's domain.
pub const DOMAIN: &[u8] = b"secagg/v3/validate/norm";
/// B_enc² < 2^62 (VALIDATION.md §5.3).
pub const MAX_BOUND_SQ: u64 = (1 << 62) - 1;
/// GHL rows and mask positions (Λ = 128).
const ROWS: usize = ghl::ROWS;

/// The public parameters of statement N.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NormParams {
    d: usize,
    bound_sq: u64,
    weight_max: Option<u64>,
    n_pad: usize,
    ghl: GhlParams,
}

/// ⌈√n⌉.
fn ceil_sqrt(n: u64) -> u64 {
    let r = n.isqrt();
    if r * r < n { r + 1 } else { r }
}

impl NormParams {
    /// d ≥ 1 coordinates (the weight, if any, the last), B_enc² and W. Refuses what §5.3
    /// refuses: d > 2^20, B_enc² ≥ 2^62, W ≥ 2^62 (and d = 0, W = 0).
    pub fn new(d: usize, bound_sq: u64, weight_max: Option<u64>) -> Result<Self, Error> {
        if d == 0 {
            return Err(Error::Malformed {
                what: "norm statement with d = 0",
            });
        }
        // N5: W = 0 would absorb the same `weight` record as "no weight" (D12); a weight
        // coordinate that must be 0 is not a weight.
        if weight_max == Some(0) {
            return Err(Error::Malformed {
                what: "norm statement with a weight coordinate bounded by W = 0",
            });
        }
        for (what, max, got) in [
            ("d", MAX_D as u64, d as u64),
            ("bound_sq", MAX_BOUND_SQ, bound_sq),
            ("weight_max", MAX_BOUND_SQ, weight_max.unwrap_or(0)),
        ] {
            if got > max {
                return Err(Error::TooLarge { what, max, got });
            }
        }
        // D11: M_x = ⌈√d⌉·⌈√B_enc²⌉ < 2^11·2^31 ≤ 2^41.
        let ghl = GhlParams::new(ceil_sqrt(d as u64) * ceil_sqrt(bound_sq))?;
        Ok(NormParams {
            d,
            bound_sq,
            weight_max,
            n_pad: (d + ROWS).next_power_of_two(),
            ghl,
        })
    }

    /// d.
    pub fn d(&self) -> usize {
        self.d
    }
    /// B_enc².
    pub fn bound_sq(&self) -> u64 {
        self.bound_sq
    }
    /// W, when the encoding has a weight coordinate (the last).
    pub fn weight_max(&self) -> Option<u64> {
        self.weight_max
    }
    /// N_pad = 2^⌈log₂(d + 128)⌉.
    pub fn n_pad(&self) -> usize {
        self.n_pad
    }
    /// The GHL bounds (M = M_x).
    pub fn ghl(&self) -> &GhlParams {
        &self.ghl
    }
    /// The generators the statement needs.
    pub fn generator_sizes(&self) -> GeneratorSizes {
        GeneratorSizes {
            n_pad: self.n_pad,
            projections: 0,
            lpad: 0,
        }
    }
}

/// What binds a proof to one upload: session, client, SHA-256 of the packed y_u.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NormContext {
    pub session: [u8; 32],
    pub client: u64,
    pub upload_hash: [u8; 32],
}

/// The prover's secrets: x (the signed representative of the encoded update) and C_u's
/// blinding r_u. Zeroized on drop; Debug shows only d.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct NormWitness {
    x: Vec<i64>,
    r_u: Scalar,
}

impl fmt::Debug for NormWitness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NormWitness")
            .field("d", &self.x.len())
            .finish_non_exhaustive()
    }
}

impl NormWitness {
    pub fn new(x: Vec<i64>, r_u: Scalar) -> Self {
        NormWitness { x, r_u }
    }

    /// ‖x‖² over the integers (saturating: anything above 2^127 is above every bound).
    pub fn norm_sq(&self) -> u128 {
        self.x.iter().fold(0u128, |acc, v| {
            let a = u128::from(v.unsigned_abs());
            acc.saturating_add(a.saturating_mul(a))
        })
    }
}

/// A norm proof (VALIDATION.md §21.1 D13 for its bytes, [`crate::codec`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NormProof {
    pub(crate) c_u: RistrettoPoint,
    pub(crate) m_u: RistrettoPoint,
    pub(crate) v_s: RistrettoPoint,
    pub(crate) v_w: Option<RistrettoPoint>,
    pub(crate) z: Vec<i128>,
    pub(crate) wip: WipProof,
    pub(crate) range: RangeProof,
}

impl NormProof {
    /// C_u, the commitment the round keeps (binding argument, safety net).
    pub fn c_u(&self) -> &RistrettoPoint {
        &self.c_u
    }
}

fn signed_scalar(v: i64) -> Scalar {
    fold::signed_scalar(i128::from(v))
}

/// C_u = ⟨x, K⟩ + r_u·h (constant-time MSM).
pub fn commit(gens: &Generators, x: &[i64], r_u: &Scalar) -> Result<RistrettoPoint, Error> {
    let k = gens.k_basis(x.len())?;
    let mut scalars: Zeroizing<Vec<Scalar>> = Zeroizing::new(Vec::with_capacity(x.len() + 1));
    scalars.extend(x.iter().map(|v| signed_scalar(*v)).chain([*r_u]));
    let mut points = k;
    points.push(*gens.h());
    Ok(fold::ct_msm(&scalars, &points))
}

/// Absorbs the statement records (D12); returns the range proof's binding (the state after).
fn absorb_statement(
    t: &mut Transcript,
    params: &NormParams,
    ctx: &NormContext,
    c_u: &RistrettoPoint,
    m_u: &RistrettoPoint,
    v_s: &RistrettoPoint,
    v_w: Option<&RistrettoPoint>,
) -> [u8; 32] {
    absorb_public(t, params, ctx);
    absorb_points(t, c_u, m_u, v_s, v_w)
}

/// The records of D12 known before any commitment (the prover's nonces hash them, D25).
fn absorb_public(t: &mut Transcript, params: &NormParams, ctx: &NormContext) {
    t.append_u64(b"version", u64::from(VERSION));
    t.append(b"session", &ctx.session);
    t.append_u64(b"client", ctx.client);
    t.append_u64(b"d", params.d as u64);
    t.append_u64(b"n_pad", params.n_pad as u64);
    t.append_u64(b"bound_sq", params.bound_sq);
    t.append_u64(b"weight", params.weight_max.unwrap_or(0));
    t.append(b"upload", &ctx.upload_hash);
}

/// The commitment records of D12; returns the range proof's binding (the state after).
fn absorb_points(
    t: &mut Transcript,
    c_u: &RistrettoPoint,
    m_u: &RistrettoPoint,
    v_s: &RistrettoPoint,
    v_w: Option<&RistrettoPoint>,
) -> [u8; 32] {
    t.append_point(b"C_u", &c_u.compress());
    t.append_point(b"M_u", &m_u.compress());
    t.append_point(b"V_s", &v_s.compress());
    if let Some(v_w) = v_w {
        t.append_point(b"V_w", &v_w.compress());
    }
    t.state_hash()
}

/// The challenges after z, in order (arguments.md §A.2 step 4; ζ last before y).
struct Challenges {
    eps: Scalar,
    c: Scalar,
    v: Scalar,
    v2: Scalar,
    mu: Scalar,
    nu: Scalar,
    zeta: Scalar,
    y: Scalar,
}

impl Challenges {
    /// The WIP's statement (arguments.md §A.3): weight y, H″_i = y^(i+1)·H_i (`factors`),
    /// value generator U = ζ·g₀, blinding generator h.
    fn wip_instance<'a>(&self, gens: &Generators, factors: &'a [Scalar]) -> WipInstance<'a> {
        WipInstance {
            n: factors.len(),
            y: self.y,
            h_factors: Some(factors),
            value_gen: gens.g0() * self.zeta,
            blinding_gen: *gens.h(),
        }
    }

    fn draw(t: &mut Transcript) -> Self {
        Challenges {
            eps: t.challenge_scalar(b"norm/epsilon"),
            c: t.challenge_scalar(b"norm/c"),
            v: t.challenge_scalar(b"norm/v"),
            v2: t.challenge_scalar(b"norm/v2"),
            mu: t.challenge_scalar(b"norm/mu"),
            nu: t.challenge_scalar(b"norm/nu"),
            zeta: t.challenge_scalar(b"norm/zeta"),
            y: t.challenge_scalar(b"norm/y"),
        }
    }
}

/// The public vectors of arguments.md §A.2, length N_pad: a, w, w′; the row weights c_k
/// (k < 128), c_w, and ⟨v, v⟩.
struct PublicVectors {
    a: Vec<Scalar>,
    w: Vec<Scalar>,
    w2: Vec<Scalar>,
    c_rows: [Scalar; ROWS],
    c_w: Scalar,
    vv: Scalar,
}

fn public_vectors(params: &NormParams, matrix: &TernaryMatrix, ch: &Challenges) -> PublicVectors {
    let (d, n_pad) = (params.d, params.n_pad);
    let tail = n_pad - d; // ≥ 128
    // c_k = c^(k+1) for k < N_pad − d (GHL rows, then the padding with target 0), c_w next.
    let c_pows = powers(ch.c, tail + 1);
    let mut c_rows = [Scalar::ZERO; ROWS];
    c_rows.copy_from_slice(&c_pows[..ROWS]);
    let c_w = c_pows[tail];
    let mut a = matrix.fold(&c_rows);
    if params.weight_max.is_some() {
        a[d - 1] += c_w;
    }
    let eps_inv = ch.eps.invert();
    a.extend(c_pows[..tail].iter().map(|c| eps_inv * c));
    let v_pows = powers(ch.v, d);
    let vv = v_pows.iter().map(|x| x * x).sum();
    let mut w = v_pows.clone();
    w.resize(n_pad, Scalar::ZERO);
    let mut w2 = v_pows;
    w2.extend(powers(ch.v2, tail));
    PublicVectors {
        a,
        w,
        w2,
        c_rows,
        c_w,
        vv,
    }
}

/// Test-only deviations from the honest prover (each breaks one coefficient of arguments.md
/// §A.3's table); empty in every real proof.
#[derive(Clone, Default)]
pub(crate) struct Junk {
    /// Added to C_u's opening on G_i / H_i (i < N_pad).
    pub c_g: Vec<(usize, Scalar)>,
    pub c_h: Vec<(usize, Scalar)>,
    /// Added to M_u's opening on G_i / H_i.
    pub m_g: Vec<(usize, Scalar)>,
    pub m_h: Vec<(usize, Scalar)>,
    /// Added to C_u's / M_u's opening on g₀.
    pub c_g0: Scalar,
    pub m_g0: Scalar,
    /// Added to V_s's value (s) and to V_w's value (x_w), range proof made for the new values.
    pub s_shift: u64,
    pub w_shift: u64,
    /// Added to z_k after the response.
    pub z_shift: Option<(usize, i128)>,
    /// Skip the prover's own bound checks (GHL refusal), to show the verifier's.
    pub skip_ghl_check: bool,
    /// Claim this s in V_s instead of ⟨x, x⟩, skipping the prover's refusal above the bound.
    pub claim_s: Option<u128>,
}

/// Proves statement N for `witness` (fresh blindings from `rng`). Refuses locally, before any
/// commitment, if ‖x‖² > B_enc² or the weight is outside [0, W] (VALIDATION.md §5.4).
pub fn prove<R: CryptoRng + ?Sized>(
    gens: &Generators,
    params: &NormParams,
    ctx: &NormContext,
    witness: &NormWitness,
    rng: &mut R,
) -> Result<NormProof, Error> {
    prove_with(gens, params, ctx, witness, &Junk::default(), rng)
}

pub(crate) fn prove_with<R: CryptoRng + ?Sized>(
    gens: &Generators,
    params: &NormParams,
    ctx: &NormContext,
    witness: &NormWitness,
    junk: &Junk,
    rng: &mut R,
) -> Result<NormProof, Error> {
    let (d, n_pad) = (params.d, params.n_pad);
    let x = &witness.x;
    if x.len() != d {
        return Err(Error::LengthMismatch {
            what: "norm witness",
            expected: d,
            got: x.len(),
        });
    }
    if !gens.sizes().covers(&params.generator_sizes()) {
        return Err(Error::GeneratorsTooShort {
            needed: n_pad,
            have: gens.sizes().n_pad,
        });
    }
    let s = Zeroizing::new(junk.claim_s.unwrap_or(witness.norm_sq()));
    if *s > u128::from(params.bound_sq) {
        // Carries ‖x‖²: a local refusal that never leaves the client (Error::AboveBound).
        return Err(Error::AboveBound {
            norm_sq: *s,
            bound_sq: params.bound_sq,
        });
    }
    let x_w = Zeroizing::new(match params.weight_max {
        None => None,
        Some(w_max) => {
            let v = x[d - 1];
            // v ≥ 0 and v ≤ W < 2^62, so the conversions are exact.
            if v < 0 || v as u64 > w_max {
                return Err(Error::WeightAboveBound {
                    weight: v.max(0) as u64,
                    max: w_max,
                });
            }
            Some(v as u64)
        }
    });

    // Hedged nonces (D25): the public records of D12 known so far, the witness (x, r_u),
    // 32 bytes of `rng`. Every mask and blinding below, and the WIP's and the range proof's
    // (which hedge again over their own statements), come from them.
    let mut t = Transcript::new(DOMAIN);
    absorb_public(&mut t, params, ctx);
    let mut nonces = {
        let mut b = NonceBuilder::new(b"norm");
        b.record(b"statement", &t.state_hash())
            .ints(b"x", x.iter().map(|v| i128::from(*v)))
            .record(b"r_u", witness.r_u.as_bytes());
        b.finish(rng)
    };

    // Commitments (constant-time MSMs on secrets).
    let mask = GhlMask::sample(&params.ghl, &mut nonces);
    let g_scalars = Zeroizing::new(mask.scalars());
    let r_m = Zeroizing::new(Scalar::random(&mut nonces));
    let gamma = Zeroizing::new(Scalar::random(&mut nonces));
    let gamma_w = Zeroizing::new(Scalar::random(&mut nonces));
    let x_scalars: Zeroizing<Vec<Scalar>> =
        Zeroizing::new(x.iter().map(|v| signed_scalar(*v)).collect());
    // Openings of C_u and M_u over G, H (N_pad each), with the test-only junk.
    let mut c_g = Zeroizing::new(x_scalars.to_vec());
    c_g.resize(n_pad, Scalar::ZERO);
    let mut c_h = c_g.clone();
    let mut m_g = Zeroizing::new(alloc::vec![Scalar::ZERO; n_pad]);
    m_g[d..d + ROWS].copy_from_slice(&g_scalars);
    let mut m_h = Zeroizing::new(alloc::vec![Scalar::ZERO; n_pad]);
    for (vec, add) in [
        (&mut c_g, &junk.c_g),
        (&mut c_h, &junk.c_h),
        (&mut m_g, &junk.m_g),
        (&mut m_h, &junk.m_h),
    ] {
        for (i, v) in add {
            if let Some(slot) = vec.get_mut(*i) {
                *slot += v;
            }
        }
    }
    let g = &gens.g_vec()[..n_pad];
    let h = &gens.h_vec()[..n_pad];
    let point = |on_g: &[Scalar], on_h: &[Scalar], g0: Scalar, blind: Scalar| {
        let scalars: Zeroizing<Vec<Scalar>> = Zeroizing::new(
            on_g.iter()
                .chain(on_h.iter())
                .copied()
                .chain([g0, blind])
                .collect(),
        );
        RistrettoPoint::multiscalar_mul(
            scalars.iter(),
            g.iter().chain(h).chain([gens.g0(), gens.h()]),
        )
    };
    let c_u = if junk_is_empty(junk) {
        commit(gens, x, &witness.r_u)?
    } else {
        point(&c_g, &c_h, junk.c_g0, witness.r_u)
    };
    let m_u = if junk_is_empty(junk) {
        RistrettoPoint::multiscalar_mul(
            g_scalars.iter().chain([&*r_m]),
            g[d..d + ROWS].iter().chain([gens.h()]),
        )
    } else {
        point(&m_g, &m_h, junk.m_g0, *r_m)
    };
    let s_claimed = Zeroizing::new(*s + u128::from(junk.s_shift));
    let v_s =
        RistrettoPoint::multiscalar_mul([Scalar::from(*s_claimed), *gamma], [gens.g0(), gens.h()]);
    let x_w_claimed = Zeroizing::new(x_w.map(|v| v + junk.w_shift));
    let v_w = x_w_claimed.map(|v| {
        RistrettoPoint::multiscalar_mul([Scalar::from(v), *gamma_w], [gens.g0(), gens.h()])
    });

    let binding = absorb_points(&mut t, &c_u, &m_u, &v_s, v_w.as_ref());
    let matrix = TernaryMatrix::from_transcript(&mut t, b"norm/R", d);
    let mut z = if junk.skip_ghl_check {
        let rw = matrix.mul_vec(x)?;
        rw.iter().zip(mask.values()).map(|(r, g)| r + g).collect()
    } else {
        mask.respond(&params.ghl, &matrix, x)?
    };
    if let Some((k, dz)) = junk.z_shift
        && let Some(v) = z.get_mut(k)
    {
        *v += dz;
    }
    t.append(b"z", &ghl::encode(&params.ghl, &z));
    let ch = Challenges::draw(&mut t);
    let pv = public_vectors(params, &matrix, &ch);

    // WIP witness (arguments.md §A.3): a′ = C|G + ε·M|G − ν·w′, b′ = C|H + ε·M|H + μ·a + ν·w,
    // the H side scaled by y^-(i+1) for the generators H″_i = y^(i+1)·H_i.
    let a_prime: Vec<Scalar> = (0..n_pad)
        .map(|i| c_g[i] + ch.eps * m_g[i] - ch.nu * pv.w2[i])
        .collect();
    let y_inv = ch.y.invert();
    let mut y_inv_pow = y_inv;
    let b_scaled: Vec<Scalar> = (0..n_pad)
        .map(|i| {
            let b = c_h[i] + ch.eps * m_h[i] + ch.mu * pv.a[i] + ch.nu * pv.w[i];
            let out = b * y_inv_pow;
            y_inv_pow *= y_inv;
            out
        })
        .collect();
    let alpha = witness.r_u
        + ch.eps * *r_m
        + ch.zeta * *gamma
        + if v_w.is_some() {
            ch.mu * pv.c_w * ch.zeta * *gamma_w
        } else {
            Scalar::ZERO
        };
    // Positions ≥ d + 128 (the padding, F1) hold public values on both sides: a′ = −ν·w′,
    // b′ = μ·a (the pinned coefficients); the WIP's first round takes them variable-time.
    let wip_witness = WipWitness::new(a_prime, b_scaled, alpha)?.with_public_suffix(d + ROWS);
    let factors = powers(ch.y, n_pad);
    let inst = ch.wip_instance(gens, &factors);
    let vg = VectorGenerators { g, h };
    let wip_proof = wip::prove(&mut t, &vg, &inst, &wip_witness, &mut nonces)?;

    let range_st = RangeStatementN {
        bound_sq: params.bound_sq,
        v_s,
        weight: params.weight_max.zip(v_w),
    };
    let opening = RangeOpening {
        s: *s_claimed,
        gamma: *gamma,
        weight: x_w_claimed.map(|v| (v, *gamma_w)),
    };
    let range_proof = range::prove(&binding, gens, &range_st, &opening, &mut nonces)?;
    Ok(NormProof {
        c_u,
        m_u,
        v_s,
        v_w,
        z,
        wip: wip_proof,
        range: range_proof,
    })
}

fn junk_is_empty(j: &Junk) -> bool {
    j.c_g.is_empty()
        && j.c_h.is_empty()
        && j.m_g.is_empty()
        && j.m_h.is_empty()
        && j.c_g0 == Scalar::ZERO
        && j.m_g0 == Scalar::ZERO
}

/// The WIP equation with P′'s terms folded in, and the range statement with its binding.
struct Checks {
    wip: WipTerms,
    binding: [u8; 32],
    range: RangeStatementN,
}

impl VerificationEquation for Checks {
    fn equation(&self) -> Equation<'_> {
        Equation {
            vec_coeffs: alloc::vec![&self.wip.g_coeffs[..], &self.wip.h_coeffs[..]],
            points: self.wip.points.clone(),
        }
    }

    fn absorb_binding(&self, h: &mut Sha512) {
        // The norm transcript absorbed every statement point (D12) before the WIP's records.
        h.update(self.wip.binding);
    }
}

fn verification_checks(
    gens: &Generators,
    params: &NormParams,
    ctx: &NormContext,
    proof: &NormProof,
) -> Result<Checks, Error> {
    let (d, n_pad) = (params.d, params.n_pad);
    if !gens.sizes().covers(&params.generator_sizes()) {
        return Err(Error::GeneratorsTooShort {
            needed: n_pad,
            have: gens.sizes().n_pad,
        });
    }
    if proof.v_w.is_some() != params.weight_max.is_some() {
        return Err(Error::Malformed {
            what: "norm proof: weight commitment does not match the statement",
        });
    }
    ghl::check_bound(&params.ghl, &proof.z)?;
    let mut t = Transcript::new(DOMAIN);
    let binding = absorb_statement(
        &mut t,
        params,
        ctx,
        &proof.c_u,
        &proof.m_u,
        &proof.v_s,
        proof.v_w.as_ref(),
    );
    let matrix = TernaryMatrix::from_transcript(&mut t, b"norm/R", d);
    t.append(b"z", &ghl::encode(&params.ghl, &proof.z));
    let ch = Challenges::draw(&mut t);
    let pv = public_vectors(params, &matrix, &ch);
    let z_hat = ghl::combine(&pv.c_rows, &proof.z);
    let w2_a: Scalar = pv.w2.iter().zip(&pv.a).map(|(p, q)| p * q).sum();
    let gamma = ch.mu * z_hat - ch.nu * ch.mu * w2_a - ch.nu * ch.nu * pv.vv;

    let factors = powers(ch.y, n_pad);
    let inst = ch.wip_instance(gens, &factors);
    let vg = VectorGenerators {
        g: &gens.g_vec()[..n_pad],
        h: &gens.h_vec()[..n_pad],
    };
    let mut terms = wip::verification_terms(&mut t, &vg, &inst, &proof.wip)?;
    let pc = terms.p_coeff;
    let (g_nu, h_mu, h_nu) = (-(pc * ch.nu), pc * ch.mu, pc * ch.nu);
    for i in 0..n_pad {
        terms.g_coeffs[i] += g_nu * pv.w2[i];
        terms.h_coeffs[i] += h_mu * pv.a[i] + h_nu * pv.w[i];
    }
    terms.points.push((pc, proof.c_u));
    terms.points.push((pc * ch.eps, proof.m_u));
    terms.points.push((pc * ch.zeta, proof.v_s));
    if let Some(v_w) = proof.v_w {
        terms.points.push((pc * ch.mu * pv.c_w * ch.zeta, v_w));
    }
    terms.points.push((pc * gamma * ch.zeta, *gens.g0()));
    Ok(Checks {
        wip: terms,
        binding,
        range: RangeStatementN {
            bound_sq: params.bound_sq,
            v_s: proof.v_s,
            weight: params.weight_max.zip(proof.v_w),
        },
    })
}

/// Verifies a norm proof for the statement (params, ctx).
pub fn verify(
    gens: &Generators,
    params: &NormParams,
    ctx: &NormContext,
    proof: &NormProof,
) -> Result<(), Error> {
    let checks = verification_checks(gens, params, ctx, proof)?;
    let vg = VectorGenerators {
        g: gens.g_vec(),
        h: gens.h_vec(),
    };
    if !checks.wip.check(&vg, &RistrettoPoint::identity()) {
        return Err(Error::VerificationFailed);
    }
    range::verify(&checks.binding, gens, &checks.range, &proof.range)
}

/// Verifies several norm proofs (one statement each, same generators): the WIP equations as
/// one MSM with weights hashed from every proof and 32 bytes of `rng` (D26), the range proofs
/// with tari's batch verifier. **`rng` must be a CSPRNG the provers cannot predict** (never one
/// seeded from public round data). On failure every proof is verified alone and every one that
/// fails is named ([`BatchError::Proofs`]); if none fails alone, [`BatchError::Internal`],
/// which names no client (re-verify individually; never exclude anyone for it).
pub fn batch_verify<R: CryptoRng + ?Sized>(
    gens: &Generators,
    items: &[(NormParams, NormContext, &NormProof)],
    rng: &mut R,
) -> Result<(), BatchError> {
    let mut checks = Vec::with_capacity(items.len());
    let mut index = Vec::with_capacity(items.len());
    let mut failed = Vec::new();
    for (i, (params, ctx, proof)) in items.iter().enumerate() {
        match verification_checks(gens, params, ctx, proof) {
            Ok(c) => {
                checks.push(c);
                index.push(i);
            }
            Err(error) => failed.push((i, error)),
        }
    }
    // verification_checks checked every n_pad against the generators.
    let gen_sets = [gens.g_vec(), gens.h_vec()];
    let ranges: Vec<_> = checks
        .iter()
        .zip(&index)
        .map(|(c, i)| (c.binding, c.range, &items[*i].2.range))
        .collect();
    if failed.is_empty()
        && fold::batch_holds(&gen_sets, &checks, rng)
        && range::batch_verify(gens, &ranges).is_ok()
    {
        return Ok(());
    }
    for ((c, i), (binding, st, proof)) in checks.iter().zip(&index).zip(&ranges) {
        if !fold::holds_alone(&gen_sets, c) {
            failed.push((*i, Error::VerificationFailed));
        } else if let Err(error) = range::verify(binding, gens, st, proof) {
            failed.push((*i, error));
        }
    }
    Err(fold::batch_failure(failed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;
    use rand_chacha::ChaCha20Rng;
    use rand_core::{Rng, SeedableRng};
    use std::sync::Arc;

    const BOUND_SQ: u64 = 400;

    fn gens() -> Arc<Generators> {
        Generators::shared(GeneratorSizes {
            n_pad: 256,
            projections: 0,
            lpad: 0,
        })
        .unwrap()
    }

    fn ctx() -> NormContext {
        NormContext {
            session: [1u8; 32],
            client: 7,
            upload_hash: [2u8; 32],
        }
    }

    /// d = 6, ‖x‖² = 1 + 4 + 9 + 16 + 0 + 4 = 34 ≤ 400; with a weight, x_w = 2 ≤ W = 3.
    fn x() -> Vec<i64> {
        alloc::vec![1, -2, 3, -4, 0, 2]
    }

    fn params(weight: bool) -> NormParams {
        NormParams::new(6, BOUND_SQ, weight.then_some(3)).unwrap()
    }

    fn prove_junk(weight: bool, x: Vec<i64>, junk: &Junk) -> Result<NormProof, Error> {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let w = NormWitness::new(x, Scalar::from(99u8));
        prove_with(&gens(), &params(weight), &ctx(), &w, junk, &mut rng)
    }

    fn check(weight: bool, proof: &NormProof) -> Result<(), Error> {
        verify(&gens(), &params(weight), &ctx(), proof)
    }

    #[test]
    fn honest_proofs_verify_and_round_trip() {
        for weight in [false, true] {
            let proof = prove_junk(weight, x(), &Junk::default()).unwrap();
            check(weight, &proof).unwrap();
            let p = params(weight);
            assert_eq!(
                *proof.c_u(),
                commit(&gens(), &x(), &Scalar::from(99u8)).unwrap()
            );
            let bytes = codec::encode_norm_proof(&p, &proof);
            assert_eq!(bytes.len(), codec::norm_proof_len(&p).unwrap());
            let back = codec::decode_norm_proof(&p, &bytes).unwrap();
            assert_eq!(back, proof);
            check(weight, &back).unwrap();
        }
        // Exactly at the bound (‖x‖² = 400) and the zero vector.
        for v in [alloc::vec![20, 0, 0, 0, 0, 0], alloc::vec![0; 6]] {
            let proof = prove_junk(false, v, &Junk::default()).unwrap();
            check(false, &proof).unwrap();
        }
    }

    /// Completeness on random statements: random d (across N_pad = 256 and 512), random x
    /// scaled into a random bound, with and without a weight.
    #[test]
    fn random_statements_are_complete() {
        let mut rng = ChaCha20Rng::seed_from_u64(12);
        let g = Generators::shared(GeneratorSizes {
            n_pad: 512,
            projections: 0,
            lpad: 0,
        })
        .unwrap();
        for (d, weight) in [(1usize, false), (2, true), (37, false), (200, true)] {
            let bound_sq = 1 + rng.next_u64() % (1 << 40);
            let w_max = 1 + rng.next_u64() % 1000;
            let mut v: Vec<i64> = (0..d)
                .map(|_| (rng.next_u64() % (1 << 21)) as i64 - (1 << 20))
                .collect();
            while v.iter().map(|a| (a * a) as u128).sum::<u128>() > u128::from(bound_sq) {
                v.iter_mut().for_each(|a| *a /= 2);
            }
            if weight {
                v[d - 1] = (rng.next_u64() % (w_max + 1)) as i64;
                if v.iter().map(|a| (a * a) as u128).sum::<u128>() > u128::from(bound_sq) {
                    v[d - 1] = 0;
                }
            }
            let p = NormParams::new(d, bound_sq, weight.then_some(w_max)).unwrap();
            let w = NormWitness::new(v, Scalar::random(&mut rng));
            let proof = prove(&g, &p, &ctx(), &w, &mut rng).unwrap();
            verify(&g, &p, &ctx(), &proof).unwrap();
            let bytes = codec::encode_norm_proof(&p, &proof);
            assert_eq!(codec::decode_norm_proof(&p, &bytes), Ok(proof));
        }
    }

    #[test]
    fn prover_refuses_locally() {
        let above = alloc::vec![20, 1, 0, 0, 0, 0];
        assert_eq!(
            prove_junk(false, above, &Junk::default()),
            Err(Error::AboveBound {
                norm_sq: 401,
                bound_sq: BOUND_SQ
            })
        );
        assert_eq!(
            prove_junk(true, alloc::vec![0, 0, 0, 0, 0, 4], &Junk::default()),
            Err(Error::WeightAboveBound { weight: 4, max: 3 })
        );
        assert!(matches!(
            prove_junk(true, alloc::vec![0, 0, 0, 0, 0, -1], &Junk::default()),
            Err(Error::WeightAboveBound { .. })
        ));
        assert!(matches!(
            prove_junk(false, alloc::vec![1; 5], &Junk::default()),
            Err(Error::LengthMismatch { .. })
        ));
    }

    #[test]
    fn wrong_statement_or_replay_rejects() {
        let proof = prove_junk(true, x(), &Junk::default()).unwrap();
        let g = gens();
        let p = params(true);
        let c = ctx();
        for other in [
            NormContext {
                session: [9u8; 32],
                ..c
            },
            NormContext { client: 8, ..c },
            NormContext {
                upload_hash: [3u8; 32],
                ..c
            },
        ] {
            assert!(verify(&g, &p, &other, &proof).is_err(), "{other:?}");
        }
        for other in [
            NormParams::new(6, BOUND_SQ - 1, Some(3)).unwrap(),
            NormParams::new(6, BOUND_SQ, Some(4)).unwrap(),
            NormParams::new(7, BOUND_SQ, Some(3)).unwrap(),
            NormParams::new(6, BOUND_SQ, None).unwrap(),
        ] {
            assert!(verify(&g, &other, &c, &proof).is_err(), "{other:?}");
        }
        // The range proof of another proof (same statement, other blindings) does not fit.
        let mut rng = ChaCha20Rng::seed_from_u64(77);
        let w = NormWitness::new(x(), Scalar::from(99u8));
        let second = prove(&g, &p, &c, &w, &mut rng).unwrap();
        verify(&g, &p, &c, &second).unwrap();
        let mut mixed = proof.clone();
        mixed.range = second.range.clone();
        assert_eq!(verify(&g, &p, &c, &mixed), Err(Error::VerificationFailed));
        let mut mixed = proof.clone();
        mixed.wip = second.wip.clone();
        assert_eq!(verify(&g, &p, &c, &mixed), Err(Error::VerificationFailed));
    }

    #[test]
    fn tampered_bytes_reject() {
        let p = params(true);
        let proof = prove_junk(true, x(), &Junk::default()).unwrap();
        let bytes = codec::encode_norm_proof(&p, &proof);
        // Every 5th byte and the last, one bit each (a full sweep is in the release-only test).
        let positions = (0..bytes.len()).step_by(5).chain([bytes.len() - 1]);
        for pos in positions {
            let mut b = bytes.clone();
            b[pos] ^= 1 << (pos % 8);
            if let Ok(t) = codec::decode_norm_proof(&p, &b) {
                assert!(check(true, &t).is_err(), "flip at byte {pos} accepted");
            }
        }
    }

    #[test]
    #[ignore = "release only: every bit of a proof (cargo test --release -- --ignored)"]
    fn every_single_bit_flip_rejects() {
        let p = params(true);
        let proof = prove_junk(true, x(), &Junk::default()).unwrap();
        let bytes = codec::encode_norm_proof(&p, &proof);
        for bit in 0..8 * bytes.len() {
            let mut b = bytes.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            if let Ok(t) = codec::decode_norm_proof(&p, &b) {
                assert!(check(true, &t).is_err(), "flip of bit {bit} accepted");
            }
        }
    }

    /// One test per row of arguments.md §A.3's extraction table: a prover whose openings break
    /// that coefficient (the WIP run honestly on what it actually committed) is rejected.
    #[test]
    fn each_extraction_row_rejects_its_violation() {
        let d = 6;
        let n = d + ROWS; // 134; N_pad = 256, so [134, 256) is padding
        let one = Scalar::ONE;
        let junk = |f: &dyn Fn(&mut Junk)| {
            let mut j = Junk::default();
            f(&mut j);
            j
        };
        #[rustfmt::skip]
        let rows: [(&str, bool, Junk); 15] = [
            ("ν¹ε⁰: x on G ≠ x on H", false, junk(&|j| { j.c_g = alloc::vec![(0, one)]; })),
            ("ν¹ε⁰: C|H on the mask positions", false, junk(&|j| { j.c_h = alloc::vec![(d + 3, one)]; })),
            ("ν¹ε¹: M|G ≠ M|H on x's positions", false, junk(&|j| { j.m_g = alloc::vec![(1, one)]; })),
            ("ν¹ε¹: M|H on the mask positions", false, junk(&|j| { j.m_h = alloc::vec![(d + 2, one)]; })),
            ("μ¹ε¹: z ≠ R·x + g", false, junk(&|j| { j.z_shift = Some((5, 1)); })),
            ("μ¹ε⁰: C|G on the mask positions", false, junk(&|j| { j.c_g = alloc::vec![(d + 4, one)]; })),
            ("μ¹ε²: ⟨R_k, M|G_[0,d)⟩ ≠ 0", false, junk(&|j| { j.m_g = alloc::vec![(2, one)]; j.m_h = alloc::vec![(2, one)]; })),
            ("μ¹ c_w: V_w's value ≠ C_u's weight", true, junk(&|j| { j.w_shift = 1; })),
            ("F1 ν¹ε⁰: C|H on the padding", false, junk(&|j| { j.c_h = alloc::vec![(n + 5, one)]; })),
            ("F1 ν¹ε¹: M|H on the padding", false, junk(&|j| { j.m_h = alloc::vec![(255, one)]; })),
            ("F1 μ¹ε⁰: C|G on the padding", false, junk(&|j| { j.c_g = alloc::vec![(n, one)]; })),
            ("F1 μ¹ε¹: M|G on the padding", false, junk(&|j| { j.m_g = alloc::vec![(n + 1, one)]; })),
            ("μ⁰ν⁰: s ≠ ⟨x, x⟩", false, junk(&|j| { j.s_shift = 1; })),
            ("g₀: C|g₀ ≠ 0 (R1(a))", false, junk(&|j| { j.c_g0 = one; })),
            ("g₀: M|g₀ ≠ 0", false, junk(&|j| { j.m_g0 = one; })),
        ];
        for (name, weight, junk) in rows {
            let proof = prove_junk(weight, x(), &junk).unwrap();
            assert!(check(weight, &proof).is_err(), "{name}: accepted");
        }
        // Control: the harness with empty junk verifies.
        check(false, &prove_junk(false, x(), &Junk::default()).unwrap()).unwrap();
    }

    /// Review 2's F1 attack: ‖x‖² = 500 > 400 with s = 400 claimed, the difference hidden as
    /// negative mass on a padded position (a*_p·b*_p = 10·(−10)); passes a verifier without the
    /// pins, must fail here, on every padded position tried and on the H side or G side alone.
    #[test]
    fn padded_positions_carry_nothing() {
        let big = alloc::vec![20, 10, 0, 0, 0, 0]; // ‖x‖² = 500
        let ten = Scalar::from(10u8);
        for p in [134usize, 200, 255] {
            for (cg, ch) in [
                (Some(ten), Some(-ten)),
                (Some(ten), None),
                (None, Some(-ten)),
            ] {
                let junk = Junk {
                    c_g: cg.map(|v| (p, v)).into_iter().collect(),
                    c_h: ch.map(|v| (p, v)).into_iter().collect(),
                    claim_s: Some(400),
                    ..Junk::default()
                };
                let proof = prove_junk(false, big.clone(), &junk).unwrap();
                assert!(check(false, &proof).is_err(), "padding {p} accepted");
            }
        }
    }

    /// GHL: a coordinate far above 2·Z_max makes z leave the window; the verifier refuses
    /// before any group operation.
    #[test]
    fn large_coordinate_fails_the_ghl_bound() {
        let mut v = x();
        v[0] = 1 << 62;
        let junk = Junk {
            skip_ghl_check: true,
            claim_s: Some(0),
            ..Junk::default()
        };
        let proof = prove_junk(false, v, &junk).unwrap();
        assert!(matches!(check(false, &proof), Err(Error::GhlBound { .. })));
    }

    #[test]
    fn batch_names_the_bad_proof() {
        let g = gens();
        let p = params(true);
        let mut rng = ChaCha20Rng::seed_from_u64(8);
        let contexts: Vec<NormContext> =
            (0..3).map(|i| NormContext { client: i, ..ctx() }).collect();
        let proofs: Vec<NormProof> = contexts
            .iter()
            .map(|c| prove(&g, &p, c, &NormWitness::new(x(), Scalar::ONE), &mut rng).unwrap())
            .collect();
        let mut items: Vec<_> = contexts
            .iter()
            .zip(&proofs)
            .map(|(c, pr)| (p, *c, pr))
            .collect();
        batch_verify(&g, &items, &mut rng).unwrap();
        items[2].1.client = 99;
        assert_eq!(
            batch_verify(&g, &items, &mut rng),
            Err(BatchError::one(2, Error::VerificationFailed))
        );
        // A proof whose WIP is fine but whose range proof belongs elsewhere is named too.
        let mut swapped = proofs[1].clone();
        swapped.range = proofs[0].range.clone();
        items[2].1.client = 2;
        items[1].2 = &swapped;
        assert_eq!(
            batch_verify(&g, &items, &mut rng),
            Err(BatchError::one(1, Error::VerificationFailed))
        );
        // W3 (D26): two bad proofs are both named, not only the first.
        items[0].1.client = 98;
        assert_eq!(
            batch_verify(&g, &items, &mut rng).map_err(|e| e.failing()),
            Err(alloc::vec![0, 1])
        );
    }
    /// N5: W = 0 is refused (it would absorb the same `weight` record as "no weight").
    #[test]
    fn zero_weight_bound_is_refused() {
        assert!(matches!(
            NormParams::new(6, BOUND_SQ, Some(0)),
            Err(Error::Malformed { .. })
        ));
        NormParams::new(6, BOUND_SQ, Some(1)).unwrap();
    }

    /// W1 (D25), the review's `replayed_rng_leaks_x_through_z` as a regression: two proofs of
    /// the same x for two uploads made with the same RNG stream (a restored or replayed state).
    /// Before the hedging they reused the GHL mask g, so z₁ − z₂ = (R₁ − R₂)·x exactly and x
    /// was recovered by least squares; now the masks differ and x is not recovered.
    #[test]
    #[allow(clippy::needless_range_loop)] // the review's elimination, kept as written
    fn replayed_rng_does_not_leak_x() {
        let g = gens();
        let p = NormParams::new(6, BOUND_SQ, None).unwrap();
        let w = NormWitness::new(x(), Scalar::from(5u8));
        let ctx_u = |u: u8| NormContext {
            upload_hash: [u; 32],
            ..ctx()
        };
        let pr1 = prove(&g, &p, &ctx_u(2), &w, &mut ChaCha20Rng::seed_from_u64(42)).unwrap();
        let pr2 = prove(&g, &p, &ctx_u(3), &w, &mut ChaCha20Rng::seed_from_u64(42)).unwrap();
        verify(&g, &p, &ctx_u(2), &pr1).unwrap();
        verify(&g, &p, &ctx_u(3), &pr2).unwrap();
        // The server recomputes each R from the public transcript.
        let rows = |c: &NormContext, pr: &NormProof| {
            let mut t = Transcript::new(DOMAIN);
            absorb_statement(&mut t, &p, c, &pr.c_u, &pr.m_u, &pr.v_s, None);
            let m = TernaryMatrix::from_transcript(&mut t, b"norm/R", 6);
            let mut out = Vec::new();
            m.for_each_row(|_, r| out.push(r.to_vec()));
            out
        };
        let (r1, r2) = (rows(&ctx_u(2), &pr1), rows(&ctx_u(3), &pr2));
        let d = 6;
        // With a reused mask, z₁ − z₂ = (R₁ − R₂)·x in every row.
        let reused = (0..ROWS).all(|k| {
            let rx: i128 = (0..d)
                .map(|i| i128::from(r1[k][i] - r2[k][i]) * i128::from(x()[i]))
                .sum();
            pr1.z[k] - pr2.z[k] == rx
        });
        assert!(!reused, "the GHL mask was reused");
        // The review's attack: normal equations AᵀA x = Aᵀb, A = R₁ − R₂, b = z₁ − z₂.
        let mut ata = alloc::vec![alloc::vec![0f64; d + 1]; d];
        for k in 0..ROWS {
            let a: Vec<f64> = (0..d).map(|i| f64::from(r1[k][i] - r2[k][i])).collect();
            let b = (pr1.z[k] - pr2.z[k]) as f64;
            for i in 0..d {
                for j in 0..d {
                    ata[i][j] += a[i] * a[j];
                }
                ata[i][d] += a[i] * b;
            }
        }
        for c in 0..d {
            let piv = (c..d)
                .max_by(|a, b| ata[*a][c].abs().total_cmp(&ata[*b][c].abs()))
                .unwrap();
            ata.swap(c, piv);
            for r in 0..d {
                if r != c {
                    let f = ata[r][c] / ata[c][c];
                    for k in c..=d {
                        ata[r][k] -= f * ata[c][k];
                    }
                }
            }
        }
        let recovered: Vec<i64> = (0..d)
            .map(|i| (ata[i][d] / ata[i][i]).round() as i64)
            .collect();
        assert_ne!(
            recovered,
            x(),
            "x recovered from two proofs with a replayed RNG"
        );
    }

    /// W2 (D26), the review's `predictable_batch_weights_let_two_bad_proofs_cancel` as a
    /// regression: with a verifier RNG the provers can predict, two proofs each wrong by a
    /// multiple of h (δ′ shifted; nothing absorbs δ′) were made to cancel in the batch. Now the
    /// weights hash every proof (δ′ included): the batch rejects and names both, whether the
    /// attacker aims at the old weights or at the new derivation computed before its shift.
    #[test]
    fn predictable_batch_weights_no_longer_let_two_bad_proofs_cancel() {
        let g = gens();
        let p = NormParams::new(6, BOUND_SQ, None).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let contexts: Vec<NormContext> =
            (0..2).map(|i| NormContext { client: i, ..ctx() }).collect();
        let honest: Vec<NormProof> = contexts
            .iter()
            .map(|c| prove(&g, &p, c, &NormWitness::new(x(), Scalar::ONE), &mut rng).unwrap())
            .collect();
        let verifier_seed = 1234u64;
        let gen_sets = [g.g_vec(), g.h_vec()];
        let checks_of = |proofs: &[NormProof]| -> Vec<Checks> {
            contexts
                .iter()
                .zip(proofs)
                .map(|(c, pr)| verification_checks(&g, &p, c, pr).unwrap())
                .collect()
        };
        let delta1 = Scalar::from(77u8);
        // Aim 1: the old weights (two draws of the predictable RNG).
        let mut pred = ChaCha20Rng::seed_from_u64(verifier_seed);
        let (w1, w2) = (Scalar::random(&mut pred), Scalar::random(&mut pred));
        // Aim 2: the new derivation over (proof 0 shifted, proof 1 not yet shifted).
        let mut shifted = honest.clone();
        shifted[0].wip.d1 += delta1;
        let mut weights = fold::weight_rng(
            &checks_of(&shifted),
            &mut ChaCha20Rng::seed_from_u64(verifier_seed),
        );
        let (v1, v2) = (Scalar::random(&mut weights), Scalar::random(&mut weights));
        for (a, b) in [(w1, w2), (v1, v2)] {
            let mut proofs = shifted.clone();
            proofs[1].wip.d1 += -(a * delta1) * b.invert();
            for (c, pr) in contexts.iter().zip(&proofs) {
                assert!(
                    verify(&g, &p, c, pr).is_err(),
                    "each proof alone is rejected"
                );
            }
            let checks = checks_of(&proofs);
            assert!(!fold::batch_holds(
                &gen_sets,
                &checks,
                &mut ChaCha20Rng::seed_from_u64(verifier_seed)
            ));
            let items: Vec<_> = contexts
                .iter()
                .zip(&proofs)
                .map(|(c, pr)| (p, *c, pr))
                .collect();
            assert_eq!(
                batch_verify(&g, &items, &mut ChaCha20Rng::seed_from_u64(verifier_seed))
                    .map_err(|e| e.failing()),
                Err(alloc::vec![0, 1])
            );
        }
    }
}
