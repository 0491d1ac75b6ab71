//! Statement B, the binding argument answered after the server's challenge κ (VALIDATION.md
//! §5.2, §7.2; arguments.md §B): for every projection j,
//!
//!   (B1) ⟨ρ_j, x⟩ + τ_j − 2^b·ω_j = Y_j, (B2) C_u's blinding = T_u's coefficient on G_r,
//!   (B3) z′ = R′·ω + g′ with ‖z′‖_∞ ≤ (2^φ + 1)·M_ω,
//!
//! where x and r_u are C_u's opening (fixed by the norm argument), τ and the G_r coefficient
//! are T_u := O_u + Σ_{v∈S_u} sgn(u, v)·P_uv's opening, ω is W_u's opening on G_ω.
//!
//! One GHL'21 linear proof ([`crate::linear`]) on Q(e) = C_u + e·T_u + e²·W_u over the message
//! generators 𝔅 = (K_0..K_{d−1}, h, G_τ, G_r, G_ω, G′) padded with `lpad` (F1), value generator
//! F = ζ′·f₀, blinding generator h′, and the public coefficient vector b(e) of arguments.md §B.2
//! (Laurent monomials in e, so junk in T_u or W_u on x's generators never reaches B1: R1(b),
//! R1(c)). Transcript records: VALIDATION.md §21.1 D14.
//!
//! This module knows points and openings, not seeds: the round glue (secagg-core, step 6)
//! computes O_u, P_uv, Y_j and ρ, and hands the prover T_u's opening (τ, its h′ blinding).

use alloc::vec::Vec;
use core::fmt;

use aes::Aes128;
use ctr::Ctr64LE;
use ctr::cipher::{KeyIvInit, StreamCipher};
use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{Identity, MultiscalarMul};
use rand_core::CryptoRng;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::fold::{LazySum, powers, scalar_limbs, signed_scalar};
use crate::generators::{GHL_ROWS, MAX_PROJECTIONS};
use crate::ghl::{self, GhlMask, GhlParams, TernaryMatrix};
use crate::linear::{self, LinearInstance, LinearProof, LinearWitness};
use crate::nonce::NonceBuilder;
use crate::{Error, GeneratorSizes, Generators, MAX_D, Transcript, VERSION};

/// The binding transcript's domain.
pub const DOMAIN: &[u8] = b"secagg/v3/validate/bind";
/// Largest neighbour count k (VALIDATION.md §5.3: k < 2^10).
pub const MAX_NEIGHBOURS: usize = (1 << 10) - 1;
/// Largest b (VALIDATION.md §5.3).
pub const MAX_BITS: u32 = 32;

/// The public parameters of statement B.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BindParams {
    d: usize,
    projections: usize,
    neighbours: usize,
    bits: u32,
    n_prime: usize,
    n_prime_pad: usize,
    ghl: GhlParams,
}

impl BindParams {
    /// d, J, k and b; refuses what §5.3 refuses (d > 2^20, J > 2^11, k ≥ 2^10, b > 32; zeros)
    /// and J·d > [`MAX_RHO_BITS`] (D24).
    pub fn new(d: usize, projections: usize, neighbours: usize, bits: u32) -> Result<Self, Error> {
        if d == 0 || projections == 0 || bits == 0 {
            return Err(Error::Malformed {
                what: "binding statement with d, J or b = 0",
            });
        }
        for (what, max, got) in [
            ("d", MAX_D as u64, d as u64),
            ("projections", MAX_PROJECTIONS as u64, projections as u64),
            ("neighbours", MAX_NEIGHBOURS as u64, neighbours as u64),
            ("bits", u64::from(MAX_BITS), u64::from(bits)),
        ] {
            if got > max {
                return Err(Error::TooLarge { what, max, got });
            }
        }
        // D24: J·d ≤ 2^30 (ρ packed ≤ 128 MiB).
        let rho_bits = (projections * d) as u64;
        if rho_bits > MAX_RHO_BITS {
            return Err(Error::TooLarge {
                what: "projection bits J·d",
                max: MAX_RHO_BITS,
                got: rho_bits,
            });
        }
        // M_ω = J·d·(k + 1) ≤ 2^30·2^10 = 2^40.
        let ghl = GhlParams::new((projections * d * (neighbours + 1)) as u64)?;
        let n_prime = d + 2 * projections + 2 + GHL_ROWS;
        Ok(BindParams {
            d,
            projections,
            neighbours,
            bits,
            n_prime,
            n_prime_pad: linear::padded_len(n_prime)?,
            ghl,
        })
    }

    /// d.
    pub fn d(&self) -> usize {
        self.d
    }
    /// J.
    pub fn projections(&self) -> usize {
        self.projections
    }
    /// N′_pad = 2^⌈log₂(d + 2J + 130)⌉, the linear proof's length.
    pub fn n_prime_pad(&self) -> usize {
        self.n_prime_pad
    }
    /// The GHL bounds (M = M_ω).
    pub fn ghl(&self) -> &GhlParams {
        &self.ghl
    }
    /// The generators the statement needs.
    pub fn generator_sizes(&self) -> GeneratorSizes {
        GeneratorSizes {
            n_pad: self.d.next_power_of_two(),
            projections: self.projections,
            lpad: self.n_prime_pad - self.n_prime,
        }
    }
}

/// What binds the answer to one round and client: session, client, κ, SHA-256 of the packed
/// upload, and the signed masked-with bitmap S_u (absorbed as bytes, F12).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindContext {
    pub session: [u8; 32],
    pub client: u64,
    pub kappa: [u8; 32],
    pub upload_hash: [u8; 32],
    pub bitmap: Vec<u8>,
}

/// Largest J·d (VALIDATION.md §21.1 D24): ρ bit-packed is J·d/8 bytes, at most 128 MiB.
pub const MAX_RHO_BITS: u64 = 1 << 30;

/// ρ_1..ρ_J ∈ {0, 1}^d, bit-packed (W5, D24): row j is ⌈d/64⌉ words, ρ_j,i at bit i mod 64 of
/// word ⌊i/64⌋. Expanded here from its 32-byte key exactly as D18 says (AES-128-CTR, key =
/// key[..16], IV = key[16..], `Ctr64LE`, stream bit m = j·d + i, least significant bit of each
/// byte first), so the key that the binding transcript absorbs (D14) fixes every bit.
#[derive(Clone, PartialEq, Eq)]
pub struct Rho {
    key: [u8; 32],
    rows: usize,
    cols: usize,
    stride: usize,
    words: Vec<u64>,
}

impl fmt::Debug for Rho {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rho")
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .finish_non_exhaustive()
    }
}

/// The AES-128-CTR key stream read as bits, least significant first, up to 64 at a time.
struct BitStream {
    cipher: Ctr64LE<Aes128>,
    buf: [u8; 512],
    pos: usize,
    acc: u128,
    have: u32,
}

impl BitStream {
    fn new(key: &[u8; 32]) -> Self {
        let mut k = [0u8; 16];
        let mut iv = [0u8; 16];
        k.copy_from_slice(&key[..16]);
        iv.copy_from_slice(&key[16..]);
        BitStream {
            cipher: Ctr64LE::<Aes128>::new(&k.into(), &iv.into()),
            buf: [0u8; 512],
            pos: 512,
            acc: 0,
            have: 0,
        }
    }

    /// The next `n` bits (1 ≤ n ≤ 64), the first in bit 0.
    fn take(&mut self, n: u32) -> u64 {
        if self.have < n {
            if self.pos == self.buf.len() {
                self.buf = [0u8; 512];
                self.cipher.apply_keystream(&mut self.buf);
                self.pos = 0;
            }
            let mut w = [0u8; 8];
            w.copy_from_slice(&self.buf[self.pos..self.pos + 8]);
            self.pos += 8;
            self.acc |= u128::from(u64::from_le_bytes(w)) << self.have;
            self.have += 64;
        }
        let out = (self.acc & ((1u128 << n) - 1)) as u64;
        self.acc >>= n;
        self.have -= n;
        out
    }
}

impl Rho {
    /// ρ for `rows` = J projections of `cols` = d entries from its key (D18); refuses J, d = 0,
    /// J > 2^11, d > 2^20 and J·d > [`MAX_RHO_BITS`] before allocating.
    pub fn expand(key: &[u8; 32], rows: usize, cols: usize) -> Result<Self, Error> {
        if rows == 0 || cols == 0 {
            return Err(Error::Malformed {
                what: "projections with J or d = 0",
            });
        }
        for (what, max, got) in [
            ("projections", MAX_PROJECTIONS as u64, rows as u64),
            ("d", MAX_D as u64, cols as u64),
            ("projection bits J·d", MAX_RHO_BITS, (rows * cols) as u64),
        ] {
            if got > max {
                return Err(Error::TooLarge { what, max, got });
            }
        }
        let stride = cols.div_ceil(64);
        let mut words = alloc::vec![0u64; rows * stride];
        let mut bits = BitStream::new(key);
        for row in words.chunks_exact_mut(stride) {
            let mut left = cols;
            for w in row.iter_mut() {
                let n = left.min(64);
                *w = bits.take(n as u32);
                left -= n;
            }
        }
        Ok(Rho {
            key: *key,
            rows,
            cols,
            stride,
            words,
        })
    }

    /// The key ρ was expanded from.
    pub fn key(&self) -> &[u8; 32] {
        &self.key
    }
    /// J.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// d.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Row j's words (ρ_j,i at bit i mod 64 of word ⌊i/64⌋; bits past d are 0). Empty past J.
    pub fn row(&self, j: usize) -> &[u64] {
        self.words
            .get(j * self.stride..(j + 1) * self.stride)
            .unwrap_or(&[])
    }

    /// ρ_j,i (false outside the matrix).
    pub fn bit(&self, j: usize, i: usize) -> bool {
        i < self.cols
            && self
                .row(j)
                .get(i / 64)
                .is_some_and(|w| (w >> (i % 64)) & 1 == 1)
    }

    /// Calls `f(i)` for every i with ρ_j,i = 1, in increasing i.
    pub fn for_each_one(&self, j: usize, mut f: impl FnMut(usize)) {
        for (k, word) in self.row(j).iter().enumerate() {
            let mut w = *word;
            while w != 0 {
                f(64 * k + w.trailing_zeros() as usize);
                w &= w - 1;
            }
        }
    }
}

/// The public points and values the verifier has: C_u (from the upload), the projections ρ_j
/// (J × d, packed, with the key the transcript absorbs), Y_j = ⟨ρ_j, y_u⟩ over Z (absorbed as
/// a hash, D14), O_u, and the P_uv in increasing v with sgn(u, v) (true for +1).
#[derive(Clone, Copy, Debug)]
pub struct BindStatement<'a> {
    pub c_u: RistrettoPoint,
    pub rho: &'a Rho,
    pub y: &'a [i128],
    pub o_u: RistrettoPoint,
    pub pairs: &'a [(bool, RistrettoPoint)],
}

/// The prover's secrets: C_u's opening (x, r_u), T_u's opening on G_τ (τ) and on h′, and the
/// carry projections ω. Zeroized on drop; Debug hides them.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct BindWitness {
    pub x: Vec<i64>,
    pub r_u: Scalar,
    pub tau: Vec<i128>,
    pub t_blind: Scalar,
    pub omega: Vec<i64>,
}

impl fmt::Debug for BindWitness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BindWitness").finish_non_exhaustive()
    }
}

/// A binding proof: W_u, z′, the linear proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindProof {
    pub(crate) w_u: RistrettoPoint,
    pub(crate) z: Vec<i128>,
    pub(crate) linear: LinearProof,
}

fn check_statement(params: &BindParams, st: &BindStatement<'_>) -> Result<(), Error> {
    let (d, j) = (params.d, params.projections);
    if st.rho.rows() != j || st.y.len() != j {
        return Err(Error::LengthMismatch {
            what: "projections",
            expected: j,
            got: st.rho.rows().min(st.y.len()),
        });
    }
    if st.rho.cols() != d {
        return Err(Error::LengthMismatch {
            what: "projection row",
            expected: d,
            got: st.rho.cols(),
        });
    }
    if st.pairs.len() > params.neighbours {
        return Err(Error::TooLarge {
            what: "pair commitments",
            max: params.neighbours as u64,
            got: st.pairs.len() as u64,
        });
    }
    Ok(())
}

/// T_u = O_u + Σ sgn·P_uv.
fn t_u(st: &BindStatement<'_>) -> RistrettoPoint {
    st.pairs.iter().fold(
        st.o_u,
        |acc, (plus, p)| if *plus { acc + p } else { acc - p },
    )
}

/// The message generators 𝔅 padded with `lpad` (arguments.md §B.1).
fn message_generators(
    gens: &Generators,
    params: &BindParams,
) -> Result<Vec<RistrettoPoint>, Error> {
    let j = params.projections;
    if !gens.sizes().covers(&params.generator_sizes()) {
        return Err(Error::GeneratorsTooShort {
            needed: params.n_prime_pad,
            have: gens.sizes().n_pad,
        });
    }
    let mut base = gens.k_basis(params.d)?;
    base.push(*gens.h());
    base.extend_from_slice(&gens.tau()[..j]);
    base.push(*gens.r());
    base.extend_from_slice(&gens.omega()[..j]);
    base.extend_from_slice(gens.ghl2());
    linear::pad_generators(&base, gens.lpad())
}

/// SHA-256(le128(Y_0) ‖ … ‖ le128(Y_{J−1})), the `Y` record of D14.
fn y_hash(y: &[i128]) -> [u8; 32] {
    let mut h = Sha256::new();
    for v in y {
        h.update(v.to_le_bytes());
    }
    h.finalize().into()
}

/// Absorbs the statement records (D14).
fn absorb_statement(
    t: &mut Transcript,
    params: &BindParams,
    ctx: &BindContext,
    st: &BindStatement<'_>,
    w_u: &RistrettoPoint,
) {
    absorb_public(t, params, ctx, st);
    t.append_point(b"W_u", &w_u.compress());
}

/// The records of D14 before W_u (the prover's nonces hash them, D25).
fn absorb_public(
    t: &mut Transcript,
    params: &BindParams,
    ctx: &BindContext,
    st: &BindStatement<'_>,
) {
    t.append_u64(b"version", u64::from(VERSION));
    t.append(b"session", &ctx.session);
    t.append_u64(b"client", ctx.client);
    t.append(b"kappa", &ctx.kappa);
    t.append_u64(b"d", params.d as u64);
    t.append_u64(b"projections", params.projections as u64);
    t.append_u64(b"neighbours", params.neighbours as u64);
    t.append_u64(b"bits", u64::from(params.bits));
    t.append_point(b"C_u", &st.c_u.compress());
    t.append(b"upload", &ctx.upload_hash);
    // W4: the verifier's Y and ρ enter the relation, so they enter the transcript too.
    t.append(b"Y", &y_hash(st.y));
    t.append(b"rho", st.rho.key());
    t.append(b"bitmap", &ctx.bitmap);
    t.append_point(b"O_u", &st.o_u.compress());
    for (plus, p) in st.pairs {
        t.append(b"sign", &[u8::from(*plus)]);
        t.append_point(b"P_uv", &p.compress());
    }
}

struct Challenges {
    e: Scalar,
    c: Scalar,
    c2: Scalar,
    c3: Scalar,
    zeta: Scalar,
}

impl Challenges {
    fn draw(t: &mut Transcript) -> Self {
        Challenges {
            e: t.challenge_scalar(b"bind/e"),
            c: t.challenge_scalar(b"bind/c"),
            c2: t.challenge_scalar(b"bind/c2"),
            c3: t.challenge_scalar(b"bind/c3"),
            zeta: t.challenge_scalar(b"bind/zeta"),
        }
    }
}

/// b(e) (arguments.md §B.2), padded with zeros; and the target t.
fn coefficients(
    params: &BindParams,
    st: &BindStatement<'_>,
    matrix: &TernaryMatrix,
    z: &[i128],
    ch: &Challenges,
) -> Result<(Vec<Scalar>, Scalar), Error> {
    let (d, j) = (params.d, params.projections);
    let c_j = powers(ch.c, j);
    let mut c2_rows = [Scalar::ZERO; GHL_ROWS];
    c2_rows.copy_from_slice(&powers(ch.c2, GHL_ROWS));
    let e_inv = ch.e.invert();
    let e_inv2 = e_inv * e_inv;
    // Σ_j c_j·ρ_j, summed unreduced (≤ 2^11 terms) and reduced once per coordinate.
    let mut acc = alloc::vec![LazySum::default(); d];
    for (jj, c) in c_j.iter().enumerate() {
        let limbs = scalar_limbs(c);
        st.rho.for_each_one(jj, |i| acc[i].add(&limbs));
    }
    let mut b: Vec<Scalar> = acc.iter().map(LazySum::reduce).collect();
    b.push(ch.c3);
    b.extend(c_j.iter().map(|c| e_inv * c));
    b.push(-(e_inv * ch.c3));
    let two_b = Scalar::from(1u64 << params.bits);
    let folded = matrix.fold(&c2_rows);
    b.extend(
        folded
            .iter()
            .zip(&c_j)
            .map(|(r, c)| e_inv2 * (r - two_b * c)),
    );
    b.extend(c2_rows.iter().map(|c| e_inv2 * c));
    let target = c_j
        .iter()
        .zip(st.y)
        .map(|(c, y)| c * signed_scalar(*y))
        .sum::<Scalar>()
        + ghl::combine(&c2_rows, z);
    Ok((linear::pad_coefficients(&b)?, target))
}

/// Test-only deviations (arguments.md §B.3's "other four terms": junk of R1(b), R1(c)); empty
/// in every real proof. `t_on_k` must also be in the statement's T_u (the test adds it to O_u).
#[derive(Clone, Default)]
pub(crate) struct Junk {
    /// T_u's opening on K_i.
    pub t_on_k: Vec<(usize, Scalar)>,
    /// W_u's opening on K_i and on G_τ,j (added to W_u).
    pub w_on_k: Vec<(usize, Scalar)>,
    pub w_on_tau: Vec<(usize, Scalar)>,
    /// Added to z′_k before it is absorbed (B3 broken; the linear proof on true openings).
    pub z_shift: Option<(usize, i128)>,
    /// Added to g′_k in W_u and the opening, but z′ computed from the unshifted g′ (B3).
    pub g2_shift: Option<(usize, Scalar)>,
}

/// Proves statement B (fresh blindings from `rng`).
pub fn prove<R: CryptoRng + ?Sized>(
    gens: &Generators,
    params: &BindParams,
    ctx: &BindContext,
    st: &BindStatement<'_>,
    witness: &BindWitness,
    rng: &mut R,
) -> Result<BindProof, Error> {
    prove_with(gens, params, ctx, st, witness, &Junk::default(), rng)
}

pub(crate) fn prove_with<R: CryptoRng + ?Sized>(
    gens: &Generators,
    params: &BindParams,
    ctx: &BindContext,
    st: &BindStatement<'_>,
    witness: &BindWitness,
    junk: &Junk,
    rng: &mut R,
) -> Result<BindProof, Error> {
    check_statement(params, st)?;
    let (d, j) = (params.d, params.projections);
    for (what, got, expected) in [
        ("bind witness x", witness.x.len(), d),
        ("bind witness tau", witness.tau.len(), j),
        ("bind witness omega", witness.omega.len(), j),
    ] {
        if got != expected {
            return Err(Error::LengthMismatch {
                what,
                expected,
                got,
            });
        }
    }
    let generators = message_generators(gens, params)?;
    // Hedged nonces (D25): the records of D14 before W_u (κ, Y, ρ's key, O_u, the P_uv…), the
    // witness (x, r_u, τ, T_u's blinding, ω), 32 bytes of `rng`; the linear proof hedges again.
    let mut t = Transcript::new(DOMAIN);
    absorb_public(&mut t, params, ctx, st);
    let mut nonces = {
        let mut b = NonceBuilder::new(b"bind");
        b.record(b"statement", &t.state_hash())
            .ints(b"x", witness.x.iter().map(|v| i128::from(*v)))
            .record(b"r_u", witness.r_u.as_bytes())
            .ints(b"tau", witness.tau.iter().copied())
            .record(b"t_blind", witness.t_blind.as_bytes())
            .ints(b"omega", witness.omega.iter().map(|v| i128::from(*v)));
        b.finish(rng)
    };
    let mask = GhlMask::sample(&params.ghl, &mut nonces);
    let mut g2 = Zeroizing::new(mask.scalars());
    let r_w = Zeroizing::new(Scalar::random(&mut nonces));
    let omega: Zeroizing<Vec<Scalar>> = Zeroizing::new(
        witness
            .omega
            .iter()
            .map(|v| signed_scalar(i128::from(*v)))
            .collect(),
    );
    if let Some((k, v)) = junk.g2_shift
        && let Some(slot) = g2.get_mut(k)
    {
        *slot += v;
    }
    let mut w_u = RistrettoPoint::multiscalar_mul(
        omega.iter().chain(g2.iter()).chain([&*r_w]),
        gens.omega()[..j]
            .iter()
            .chain(gens.ghl2())
            .chain([gens.h2()]),
    );
    for (i, v) in &junk.w_on_k {
        w_u += generators[*i] * v;
    }
    for (i, v) in &junk.w_on_tau {
        w_u += generators[d + 1 + *i] * v;
    }
    t.append_point(b"W_u", &w_u.compress());
    let matrix = TernaryMatrix::from_transcript(&mut t, b"bind/R", j);
    let mut z = mask.respond(&params.ghl, &matrix, &witness.omega)?;
    if let Some((k, dz)) = junk.z_shift
        && let Some(v) = z.get_mut(k)
    {
        *v += dz;
    }
    t.append(b"z", &ghl::encode(&params.ghl, &z));
    let ch = Challenges::draw(&mut t);
    let (b, _) = coefficients(params, st, &matrix, &z, &ch)?;

    // o = o_C + e·o_T + e²·o_W over 𝔅 (arguments.md §B.2).
    let e2 = ch.e * ch.e;
    let mut o: Vec<Scalar> = Vec::with_capacity(params.n_prime_pad);
    o.extend(witness.x.iter().map(|v| signed_scalar(i128::from(*v))));
    o.push(witness.r_u);
    o.extend(witness.tau.iter().map(|v| ch.e * signed_scalar(*v)));
    o.push(ch.e * witness.r_u);
    o.extend(omega.iter().map(|w| e2 * w));
    o.extend(g2.iter().map(|g| e2 * g));
    for (i, v) in &junk.t_on_k {
        o[*i] += ch.e * v;
    }
    for (i, v) in &junk.w_on_k {
        o[*i] += e2 * v;
    }
    for (i, v) in &junk.w_on_tau {
        o[d + 1 + *i] += e2 * v;
    }
    let blind = Zeroizing::new(ch.e * witness.t_blind + e2 * *r_w);
    let lw = LinearWitness::new(o, *blind).padded()?;
    let inst = LinearInstance {
        b: &b,
        value_gen: gens.f0() * ch.zeta,
        blinding_gen: *gens.h2(),
    };
    let linear = linear::prove(&mut t, &generators, &inst, &lw, &mut nonces)?;
    Ok(BindProof { w_u, z, linear })
}

/// Verifies a binding proof for the statement.
pub fn verify(
    gens: &Generators,
    params: &BindParams,
    ctx: &BindContext,
    st: &BindStatement<'_>,
    proof: &BindProof,
) -> Result<(), Error> {
    check_statement(params, st)?;
    ghl::check_bound(&params.ghl, &proof.z)?;
    let generators = message_generators(gens, params)?;
    let mut t = Transcript::new(DOMAIN);
    absorb_statement(&mut t, params, ctx, st, &proof.w_u);
    let matrix = TernaryMatrix::from_transcript(&mut t, b"bind/R", params.projections);
    t.append(b"z", &ghl::encode(&params.ghl, &proof.z));
    let ch = Challenges::draw(&mut t);
    let (b, target) = coefficients(params, st, &matrix, &proof.z, &ch)?;
    let inst = LinearInstance {
        b: &b,
        value_gen: gens.f0() * ch.zeta,
        blinding_gen: *gens.h2(),
    };
    let mut terms = linear::verification_terms(&mut t, &generators, &inst, &proof.linear)?;
    // C′ = C_u + e·T_u + e²·W_u + t·ζ′·f₀, added to the MSM with the equation's coefficient.
    let cc = terms.c_coeff;
    terms.points.push((cc, st.c_u));
    terms.points.push((cc * ch.e, t_u(st)));
    terms.points.push((cc * ch.e * ch.e, proof.w_u));
    terms.points.push((cc * target * ch.zeta, *gens.f0()));
    if terms.check(&generators, &RistrettoPoint::identity()) {
        Ok(())
    } else {
        Err(Error::VerificationFailed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::{Rng, SeedableRng};

    const D: usize = 8;
    const J: usize = 5;
    const K: usize = 2;
    const BITS: u32 = 8;

    /// An honest client: x, two pair masks (signs + and −) and a self mask, all mod 2^b;
    /// y = x + m − 2^b·c coordinate-wise, with the carries c.
    struct Setup {
        params: BindParams,
        gens: Generators,
        ctx: BindContext,
        c_u: RistrettoPoint,
        rho: Rho,
        y: Vec<i128>,
        o_u: RistrettoPoint,
        pairs: Vec<(bool, RistrettoPoint)>,
        witness: BindWitness,
    }

    fn setup(seed: u64) -> Setup {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let params = BindParams::new(D, J, K, BITS).unwrap();
        let gens = Generators::new(params.generator_sizes()).unwrap();
        let modulus = 1i64 << BITS;
        let x: Vec<i64> = (0..D).map(|i| i as i64 - 3).collect();
        let masks: Vec<Vec<i64>> = (0..3)
            .map(|_| (0..D).map(|_| i64::from(rng.next_u32() % 256)).collect())
            .collect();
        let signs = [1i64, 1, -1]; // self, pair +, pair −
        let m: Vec<i64> = (0..D)
            .map(|i| (0..3).map(|s| signs[s] * masks[s][i]).sum())
            .collect();
        let y_u: Vec<i64> = (0..D).map(|i| (x[i] + m[i]).rem_euclid(modulus)).collect();
        let carries: Vec<i64> = (0..D).map(|i| (x[i] + m[i] - y_u[i]) / modulus).collect();
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        let rho = Rho::expand(&key, J, D).unwrap();
        let proj = |v: &[i64], r: usize| -> i128 {
            let mut acc = 0i128;
            rho.for_each_one(r, |i| acc += i128::from(v[i]));
            acc
        };
        let y: Vec<i128> = (0..J).map(|r| proj(&y_u, r)).collect();
        let omega: Vec<i64> = (0..J).map(|r| proj(&carries, r) as i64).collect();
        // Commitments: t_s = projections of mask s; blindings r_s on G_r, β_s on h′.
        let r_parts: Vec<Scalar> = (0..3).map(|_| Scalar::random(&mut rng)).collect();
        let beta: Vec<Scalar> = (0..3).map(|_| Scalar::random(&mut rng)).collect();
        let commit = |s: usize| -> RistrettoPoint {
            let t: Vec<Scalar> = (0..J).map(|r| signed_scalar(proj(&masks[s], r))).collect();
            RistrettoPoint::multiscalar_mul(
                t.iter().chain([&r_parts[s], &beta[s]]),
                gens.tau()[..J].iter().chain([gens.r(), gens.h2()]),
            )
        };
        let o_u = commit(0);
        let pairs = alloc::vec![(true, commit(1)), (false, commit(2))];
        let r_u = r_parts[0] + r_parts[1] - r_parts[2];
        let xs: Vec<Scalar> = x.iter().map(|v| signed_scalar(i128::from(*v))).collect();
        let c_u = RistrettoPoint::multiscalar_mul(
            xs.iter().chain([&r_u]),
            gens.k_basis(D).unwrap().iter().chain([gens.h()]),
        );
        let tau: Vec<i128> = (0..J)
            .map(|r| {
                (0..3)
                    .map(|s| i128::from(signs[s]) * proj(&masks[s], r))
                    .sum()
            })
            .collect();
        let t_blind = beta[0] + beta[1] - beta[2];
        let ctx = BindContext {
            session: [4; 32],
            client: 3,
            kappa: [5; 32],
            upload_hash: [6; 32],
            bitmap: alloc::vec![0b101],
        };
        Setup {
            params,
            gens,
            ctx,
            c_u,
            rho,
            y,
            o_u,
            pairs,
            witness: BindWitness {
                x,
                r_u,
                tau,
                t_blind,
                omega,
            },
        }
    }

    impl Setup {
        fn statement(&self) -> BindStatement<'_> {
            BindStatement {
                c_u: self.c_u,
                rho: &self.rho,
                y: &self.y,
                o_u: self.o_u,
                pairs: &self.pairs,
            }
        }
        fn prove(&self, w: &BindWitness) -> Result<BindProof, Error> {
            let mut rng = ChaCha20Rng::seed_from_u64(99);
            prove(
                &self.gens,
                &self.params,
                &self.ctx,
                &self.statement(),
                w,
                &mut rng,
            )
        }
        fn verify(&self, st: &BindStatement<'_>, p: &BindProof) -> Result<(), Error> {
            verify(&self.gens, &self.params, &self.ctx, st, p)
        }
    }

    #[test]
    fn honest_binding_verifies() {
        let s = setup(1);
        let proof = s.prove(&s.witness).unwrap();
        s.verify(&s.statement(), &proof).unwrap();
    }

    #[test]
    fn wrong_statement_context_or_witness_rejects() {
        let s = setup(2);
        let proof = s.prove(&s.witness).unwrap();
        // B1: one Y_j off by one.
        let mut y = s.y.clone();
        y[2] += 1;
        let st = BindStatement {
            y: &y,
            ..s.statement()
        };
        assert_eq!(s.verify(&st, &proof), Err(Error::VerificationFailed));
        // A pair commitment with the other sign, or dropped.
        let flipped: Vec<_> = s.pairs.iter().map(|(p, q)| (!p, *q)).collect();
        let st = BindStatement {
            pairs: &flipped,
            ..s.statement()
        };
        assert!(s.verify(&st, &proof).is_err());
        let st = BindStatement {
            pairs: &s.pairs[..1],
            ..s.statement()
        };
        assert!(s.verify(&st, &proof).is_err());
        // Another κ, session, bitmap: replay fails.
        for ctx in [
            BindContext {
                kappa: [0; 32],
                ..s.ctx.clone()
            },
            BindContext {
                session: [0; 32],
                ..s.ctx.clone()
            },
            BindContext {
                bitmap: alloc::vec![0b100],
                ..s.ctx.clone()
            },
        ] {
            let r = verify(&s.gens, &s.params, &ctx, &s.statement(), &proof);
            assert!(r.is_err());
        }
        // A mask projection off by one (B1 with a lying τ), and a wrong blinding (B2).
        let mut w = s.witness.clone();
        w.tau[0] += 1;
        let p = s.prove(&w).unwrap();
        assert!(s.verify(&s.statement(), &p).is_err());
        let mut w = s.witness.clone();
        w.r_u += Scalar::ONE;
        let p = s.prove(&w).unwrap();
        assert!(s.verify(&s.statement(), &p).is_err());
        // Carries off by one (B1 through ω).
        let mut w = s.witness.clone();
        w.omega[1] += 1;
        let p = s.prove(&w).unwrap();
        assert!(s.verify(&s.statement(), &p).is_err());
    }

    /// arguments.md §B.3: junk in T_u or W_u on x's generators (R1(b), R1(c)) or in W_u on
    /// G_τ enters only the non-constant Laurent terms; a prover that commits to it and runs the
    /// linear proof on what it committed is rejected.
    #[test]
    fn junk_outside_the_constant_term_rejects() {
        let s = setup(5);
        let mut rng = ChaCha20Rng::seed_from_u64(6);
        let k = s.gens.k_basis(D).unwrap();
        let delta = Scalar::from(3u8);
        // Control: the harness with empty junk verifies.
        let p = prove_with(
            &s.gens,
            &s.params,
            &s.ctx,
            &s.statement(),
            &s.witness,
            &Junk::default(),
            &mut rng,
        )
        .unwrap();
        s.verify(&s.statement(), &p).unwrap();
        // R1(b): T_u carries δ·K_0 (in O_u).
        let o_u = s.o_u + k[0] * delta;
        let st = BindStatement {
            o_u,
            ..s.statement()
        };
        let junk = Junk {
            t_on_k: alloc::vec![(0, delta)],
            ..Junk::default()
        };
        let p = prove_with(&s.gens, &s.params, &s.ctx, &st, &s.witness, &junk, &mut rng).unwrap();
        assert!(s.verify(&st, &p).is_err(), "junk in T_u on K accepted");
        // R1(c): W_u carries δ·K_1; and W_u on G_τ.
        for junk in [
            Junk {
                w_on_k: alloc::vec![(1, delta)],
                ..Junk::default()
            },
            Junk {
                w_on_tau: alloc::vec![(2, delta)],
                ..Junk::default()
            },
        ] {
            let p = prove_with(
                &s.gens,
                &s.params,
                &s.ctx,
                &s.statement(),
                &s.witness,
                &junk,
                &mut rng,
            )
            .unwrap();
            assert!(s.verify(&s.statement(), &p).is_err());
        }
    }

    /// δ with ⟨ρ_j, δ⟩ = rhs_j for every j (Gaussian elimination mod ℓ, free variables 0).
    fn solve(rho: &Rho, rhs: &[Scalar]) -> Option<Vec<Scalar>> {
        let d = rho.cols();
        let mut m: Vec<Vec<Scalar>> = (0..rho.rows())
            .zip(rhs)
            .map(|(r, b)| {
                (0..d)
                    .map(|i| Scalar::from(u8::from(rho.bit(r, i))))
                    .chain([*b])
                    .collect()
            })
            .collect();
        let mut pivots = Vec::new();
        let mut row = 0;
        for col in 0..d {
            let Some(p) = (row..m.len()).find(|&r| m[r][col] != Scalar::ZERO) else {
                continue;
            };
            m.swap(row, p);
            let inv = m[row][col].invert();
            for v in m[row].iter_mut() {
                *v *= inv;
            }
            for r in 0..m.len() {
                if r != row && m[r][col] != Scalar::ZERO {
                    let f = m[r][col];
                    let pivot_row = m[row].clone();
                    for (v, pv) in m[r].iter_mut().zip(&pivot_row) {
                        *v -= f * pv;
                    }
                }
            }
            pivots.push(col);
            row += 1;
            if row == m.len() {
                break;
            }
        }
        if row < m.len() {
            return None;
        }
        let mut x = alloc::vec![Scalar::ZERO; d];
        for (r, col) in pivots.iter().enumerate() {
            x[*col] = m[r][d];
        }
        Some(x)
    }

    /// R1(b) as the first design's review found it: a lie Δ in the mask projections τ,
    /// compensated by junk δ on x's generators inside T_u with ⟨ρ_j, δ⟩ = −Δ_j, so that the
    /// *sum* of the openings satisfies B1. Passes a relation without the Laurent weights
    /// (e = 1); must fail here, because δ's contribution sits at e¹ and Δ's at e⁰.
    #[test]
    fn r1b_compensated_projection_lie_rejects() {
        let s = setup(7);
        let mut rng = ChaCha20Rng::seed_from_u64(8);
        let mut delta_tau = alloc::vec![0i128; J];
        delta_tau[0] = 5;
        let rhs: Vec<Scalar> = delta_tau.iter().map(|v| -signed_scalar(*v)).collect();
        let delta = solve(&s.rho, &rhs).expect("ρ of full row rank for this seed");
        let k = s.gens.k_basis(D).unwrap();
        let o_u = s.o_u
            + s.gens.tau()[0] * signed_scalar(delta_tau[0])
            + RistrettoPoint::multiscalar_mul(&delta, &k);
        let st = BindStatement {
            o_u,
            ..s.statement()
        };
        let mut w = s.witness.clone();
        w.tau[0] += delta_tau[0];
        let junk = Junk {
            t_on_k: delta.iter().copied().enumerate().collect(),
            ..Junk::default()
        };
        let p = prove_with(&s.gens, &s.params, &s.ctx, &st, &w, &junk, &mut rng).unwrap();
        assert!(s.verify(&st, &p).is_err(), "R1(b) accepted");
    }

    #[test]
    fn tampered_proof_rejects() {
        let s = setup(3);
        let proof = s.prove(&s.witness).unwrap();
        let mut p = proof.clone();
        p.z[0] += 1;
        assert!(s.verify(&s.statement(), &p).is_err());
        let mut p = proof.clone();
        p.w_u += s.gens.h2();
        assert!(s.verify(&s.statement(), &p).is_err());
        let bytes = proof.linear.to_bytes();
        for pos in (0..bytes.len()).step_by(7) {
            let mut b = bytes.clone();
            b[pos] ^= 1;
            if let Ok(l) = LinearProof::from_bytes(&b, s.params.n_prime_pad()) {
                let p = BindProof {
                    linear: l,
                    ..proof.clone()
                };
                assert!(s.verify(&s.statement(), &p).is_err(), "flip at {pos}");
            }
        }
    }

    #[test]
    fn malformed_statements_are_typed_errors() {
        let s = setup(4);
        let proof = s.prove(&s.witness).unwrap();
        for (rows, cols) in [(J - 1, D), (J, D + 1)] {
            let rho = Rho::expand(s.rho.key(), rows, cols).unwrap();
            let st = BindStatement {
                rho: &rho,
                ..s.statement()
            };
            assert!(matches!(
                s.verify(&st, &proof),
                Err(Error::LengthMismatch { .. })
            ));
        }
        let many = alloc::vec![(true, s.o_u); K + 1];
        let st = BindStatement {
            pairs: &many,
            ..s.statement()
        };
        assert!(matches!(s.verify(&st, &proof), Err(Error::TooLarge { .. })));
        assert!(BindParams::new(MAX_D + 1, 1, 1, 8).is_err());
        assert!(BindParams::new(8, MAX_PROJECTIONS + 1, 1, 8).is_err());
        assert!(BindParams::new(8, 1, 1, 33).is_err());
        // D24: J·d ≤ 2^30, in the parameters and in ρ's expansion (before allocating).
        assert!(BindParams::new(MAX_D, 1 << 10, 1, 8).is_ok());
        assert!(matches!(
            BindParams::new(MAX_D, (1 << 10) + 1, 1, 8),
            Err(Error::TooLarge { .. })
        ));
        assert!(matches!(
            Rho::expand(&[0; 32], (1 << 10) + 1, MAX_D),
            Err(Error::TooLarge { .. })
        ));
        assert!(Rho::expand(&[0; 32], 0, 8).is_err());
        assert!(Rho::expand(&[0; 32], 1, 0).is_err());
    }
    /// ρ's packed bits are D18's stream: AES-128-CTR under the key, bit m = j·d + i of the key
    /// stream (least significant bit of each byte first), row-major; checked against the stream
    /// read bit by bit, at a d that is not a multiple of 64 (rows straddle words).
    #[test]
    fn rho_is_the_key_stream_bit_by_bit() {
        let key = [0x42u8; 32];
        let (j, d) = (7usize, 101usize);
        let rho = Rho::expand(&key, j, d).unwrap();
        let mut k = [0u8; 16];
        let mut iv = [0u8; 16];
        k.copy_from_slice(&key[..16]);
        iv.copy_from_slice(&key[16..]);
        let mut c = Ctr64LE::<Aes128>::new(&k.into(), &iv.into());
        let mut ks = alloc::vec![0u8; (j * d).div_ceil(8)];
        c.apply_keystream(&mut ks);
        let mut ones = 0;
        for r in 0..j {
            let mut listed = Vec::new();
            rho.for_each_one(r, |i| listed.push(i));
            for i in 0..d {
                let m = r * d + i;
                let want = (ks[m / 8] >> (m % 8)) & 1 == 1;
                assert_eq!(rho.bit(r, i), want, "({r}, {i})");
                assert_eq!(listed.contains(&i), want);
                ones += usize::from(want);
            }
            // Bits past d are zero.
            assert_eq!(rho.row(r).last().unwrap() >> (d % 64), 0);
        }
        assert!(ones > 250 && ones < 460, "{ones}");
        assert!(!rho.bit(j, 0) && !rho.bit(0, d));
    }

    /// W4 (D14): the verifier's Y and ρ are in the transcript: another Y or another ρ key gives
    /// another transcript state before the first challenge (before: the same state), so a proof
    /// made for one Y fails under another through Fiat–Shamir, not only through the relation.
    #[test]
    fn y_and_rho_are_in_the_transcript() {
        let s = setup(9);
        let proof = s.prove(&s.witness).unwrap();
        let state = |st: &BindStatement<'_>| {
            let mut t = Transcript::new(DOMAIN);
            absorb_statement(&mut t, &s.params, &s.ctx, st, &proof.w_u);
            t.state_hash()
        };
        let base = state(&s.statement());
        let y2: Vec<i128> = s.y.iter().map(|v| v + 1).collect();
        let st_y = BindStatement {
            y: &y2,
            ..s.statement()
        };
        assert_ne!(base, state(&st_y), "Y not absorbed");
        let other = Rho::expand(&[0x77; 32], J, D).unwrap();
        let st_rho = BindStatement {
            rho: &other,
            ..s.statement()
        };
        assert_ne!(base, state(&st_rho), "ρ not absorbed");
        assert!(s.verify(&st_y, &proof).is_err());
    }

    /// B3 (row c′_k of arguments.md §B.3; review N9): a z′ that is not R′·ω + g′ is rejected,
    /// whether z′ is shifted or g′ is shifted in W_u but not in z′; the control verifies.
    #[test]
    fn b3_inconsistent_ghl_response_rejects() {
        let s = setup(10);
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let prove_junk = |junk: &Junk, rng: &mut ChaCha20Rng| {
            prove_with(
                &s.gens,
                &s.params,
                &s.ctx,
                &s.statement(),
                &s.witness,
                junk,
                rng,
            )
            .unwrap()
        };
        let ok = prove_junk(&Junk::default(), &mut rng);
        s.verify(&s.statement(), &ok).unwrap();
        for junk in [
            Junk {
                z_shift: Some((3, 1)),
                ..Junk::default()
            },
            Junk {
                g2_shift: Some((5, Scalar::ONE)),
                ..Junk::default()
            },
        ] {
            let p = prove_junk(&junk, &mut rng);
            assert!(s.verify(&s.statement(), &p).is_err());
        }
    }

    /// W1 (D25): the binding answer made twice with a replayed RNG for two κ (the restored-state
    /// case of VALIDATION.md §10) no longer reuses g′ and r_W: W_u(κ₁) − W_u(κ₂) is not
    /// ⟨ω₁ − ω₂, G_ω⟩ (before the fix it was exactly that, unblinded).
    #[test]
    fn replayed_rng_gives_fresh_binding_nonces() {
        let s = setup(11);
        let other_ctx = BindContext {
            kappa: [0x99; 32],
            ..s.ctx.clone()
        };
        let p1 = s.prove(&s.witness).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(99); // the same stream as Setup::prove
        let p2 = prove(
            &s.gens,
            &s.params,
            &other_ctx,
            &s.statement(),
            &s.witness,
            &mut rng,
        )
        .unwrap();
        // Same ω here, so with reused (g′, r_W) the two W_u would be equal.
        assert_ne!(p1.w_u, p2.w_u, "g′ and r_W reused across κ");
        // Same statement, witness and RNG: the same proof (deterministic given its inputs).
        assert_eq!(p1, s.prove(&s.witness).unwrap());
    }
}
