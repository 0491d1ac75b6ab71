//! Approximate smallness (Gentry, Halevi, Lyubashevsky, Eurocrypt 2022, ePrint 2021/1397, as
//! Willow's `rlwe_relation.rs` applies it), **changed** as VALIDATION.md §3 says: flooding
//! instead of rejection sampling, Λ = 128 rows because the matrix comes from Fiat–Shamir.
//!
//! The prover has an integer vector w (x in the norm argument, ω in the binding argument) with
//! ‖R_k·w‖ ≤ M for every ternary row R_k (M = ⌈√d⌉·B_enc for x, J·d·(k+1) for ω; §5.1, §5.2),
//! commits to a mask g with entries uniform in [−2^φ·M, 2^φ·M], then receives the matrix
//! R ∈ {−1, 0, 1}^{Λ×d} from the transcript and sends z = R·w + g. The verifier checks
//! ‖z‖_∞ ≤ Z_max := (2^φ + 1)·M; the linear relation z = R·w + g itself is proven by the
//! norm or binding argument (arguments.md §A.3 rows μ¹, §B.3 row c′_k), not here.
//!
//! - **Soundness** (arguments.md §A.4): if some |w_i| ≥ 2·Z_max, each row passes with
//!   probability ≤ ½, all Λ with ≤ 2^-128.
//! - **Zero knowledge:** |R_k·w| ≤ M and g_k uniform on a range 2^φ times wider give statistical
//!   distance ≤ 2^-(φ+1) per row, Λ·2^-(φ+1) = 2^-50 in all. Never a restart: honest z is always
//!   within Z_max.
//!
//! Λ and φ are constants of wire version 3, never round parameters (F3); the assertions below
//! keep Λ·2^-(φ+1) ≤ 2^-50 and Λ ≥ 128.
//!
//! Matrix expansion (arguments.md §E, with the choices it leaves open, crate open question 4):
//! a 32-byte seed from [`Transcript::challenge_seed`] keys AES-128-CTR as the core's PRG does
//! (first 16 bytes key, last 16 IV, 64-bit little-endian counter); entry e of the row-major
//! matrix is bits 2(e mod 4), 2(e mod 4)+1 of stream byte ⌊e/4⌋, read as a number v:
//! 0, 3 → 0; 1 → +1; 2 → −1.

use alloc::vec::Vec;
use core::fmt;

use aes::Aes128;
use ctr::Ctr64LE;
use ctr::cipher::{KeyIvInit, StreamCipher};
use curve25519_dalek::scalar::Scalar;
use rand_core::CryptoRng;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::{Error, Transcript};

/// Λ = Λ′: rows of every GHL check (constant of wire version 3).
pub const ROWS: usize = 128;
/// φ: flooding bits (constant of wire version 3).
pub const FLOOD_BITS: u32 = 56;
/// Largest M: both uses stay below 2^41 under the limits of VALIDATION.md §5.3.
pub const MAX_MAGNITUDE: u64 = 1 << 41;

const _: () = assert!(ROWS >= 128, "Λ ≥ 128 (R3: grinding the Fiat–Shamir matrix)");
const _: () = assert!(
    ROWS <= 1 << (FLOOD_BITS + 1 - 50),
    "Λ·2^-(φ+1) ≤ 2^-50 (zero knowledge of z)"
);

/// The bounds of one GHL check, from M.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GhlParams {
    magnitude: u64,
}

impl GhlParams {
    /// M, the prover's bound on every |R_k·w|; at most [`MAX_MAGNITUDE`].
    pub fn new(magnitude: u64) -> Result<Self, Error> {
        if magnitude > MAX_MAGNITUDE {
            return Err(Error::TooLarge {
                what: "ghl magnitude",
                max: MAX_MAGNITUDE,
                got: magnitude,
            });
        }
        Ok(GhlParams { magnitude })
    }

    /// M.
    pub fn magnitude(&self) -> u64 {
        self.magnitude
    }

    /// 2^φ·M: the mask's range is [−mask_bound, mask_bound].
    pub fn mask_bound(&self) -> u128 {
        (self.magnitude as u128) << FLOOD_BITS
    }

    /// Z_max = (2^φ + 1)·M.
    pub fn z_max(&self) -> u128 {
        self.mask_bound() + self.magnitude as u128
    }

    /// Bytes per encoded z entry: ⌈(log₂ Z_max + 2)/8⌉ (arguments.md §E), i.e. the least w with
    /// Z_max ≤ 2^(8w−2), at least 1.
    pub fn z_width(&self) -> usize {
        let z_max = self.z_max();
        (1..=16)
            .find(|w| z_max <= 1u128 << (8 * w - 2))
            .unwrap_or(16)
    }
}

/// The ternary matrix R ∈ {−1, 0, 1}^{Λ×cols}, expanded on demand from its seed (Λ·d entries
/// are never all held: 128 MB at d = 2^20).
#[derive(Clone)]
pub struct TernaryMatrix {
    seed: [u8; 32],
    cols: usize,
}

impl fmt::Debug for TernaryMatrix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TernaryMatrix")
            .field("cols", &self.cols)
            .finish_non_exhaustive()
    }
}

impl TernaryMatrix {
    /// Draws the matrix from the transcript (after the mask commitment has been absorbed).
    pub fn from_transcript(transcript: &mut Transcript, label: &[u8], cols: usize) -> Self {
        TernaryMatrix {
            seed: transcript.challenge_seed(label),
            cols,
        }
    }

    /// The matrix for a given seed.
    pub fn from_seed(seed: [u8; 32], cols: usize) -> Self {
        TernaryMatrix { seed, cols }
    }

    /// Columns (d, or J for the binding argument's ω).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Calls `f(k, row_k)` for k = 0..Λ in order, reusing one row buffer.
    pub fn for_each_row(&self, mut f: impl FnMut(usize, &[i8])) {
        let mut key = [0u8; 16];
        let mut iv = [0u8; 16];
        key.copy_from_slice(&self.seed[..16]);
        iv.copy_from_slice(&self.seed[16..]);
        let mut cipher = Ctr64LE::<Aes128>::new(&key.into(), &iv.into());
        let mut row = alloc::vec![0i8; self.cols];
        let mut block = [0u8; 64];
        let mut avail = 0usize; // entries left in `block`
        let mut pos = 0usize; // next entry index within `block`
        for k in 0..ROWS {
            for entry in row.iter_mut() {
                if avail == 0 {
                    block = [0u8; 64];
                    cipher.apply_keystream(&mut block);
                    avail = 4 * block.len();
                    pos = 0;
                }
                let v = (block[pos / 4] >> (2 * (pos % 4))) & 3;
                *entry = match v {
                    1 => 1,
                    2 => -1,
                    _ => 0,
                };
                pos += 1;
                avail -= 1;
            }
            f(k, &row);
        }
    }

    /// R·w over the integers (|w_i| < 2^63, d ≤ 2^20: every sum fits i128).
    pub fn mul_vec(&self, w: &[i64]) -> Result<[i128; ROWS], Error> {
        if w.len() != self.cols {
            return Err(Error::LengthMismatch {
                what: "ghl vector",
                expected: self.cols,
                got: w.len(),
            });
        }
        let mut out = [0i128; ROWS];
        // Branches on the public matrix only; w is added or subtracted whatever its value.
        self.for_each_row(|k, row| {
            let mut acc = 0i128;
            for (r, x) in row.iter().zip(w) {
                acc += i128::from(*r) * i128::from(*x);
            }
            out[k] = acc;
        });
        Ok(out)
    }

    /// Σ_k c_k·R_k as scalars: the verifier's public vector (arguments.md §A.2, the a_i).
    pub fn fold(&self, coeffs: &[Scalar; ROWS]) -> Vec<Scalar> {
        // c_k and −c_k as canonical limbs, summed unreduced (≤ 128 terms < 2^253 each) and
        // reduced once per column: the same scalars as Σ ±c_k mod ℓ, without a reduction per
        // entry (public data: the matrix and the challenges).
        let pos: Vec<[u64; 4]> = coeffs.iter().map(crate::fold::scalar_limbs).collect();
        let neg: Vec<[u64; 4]> = coeffs
            .iter()
            .map(|c| crate::fold::scalar_limbs(&-c))
            .collect();
        let mut acc = alloc::vec![crate::fold::LazySum::default(); self.cols];
        // Straight over the key stream (four entries per byte, row-major, D4), without the
        // row buffer of `for_each_row`; zero bytes (four zero entries) are skipped.
        let mut key = [0u8; 16];
        let mut iv = [0u8; 16];
        key.copy_from_slice(&self.seed[..16]);
        iv.copy_from_slice(&self.seed[16..]);
        let mut cipher = Ctr64LE::<Aes128>::new(&key.into(), &iv.into());
        let total = ROWS * self.cols;
        let (mut k, mut i) = (0usize, 0usize);
        let mut e = 0usize;
        let mut block = [0u8; 1024];
        while e < total {
            block.fill(0);
            let bytes = (total - e).div_ceil(4).min(block.len());
            cipher.apply_keystream(&mut block[..bytes]);
            for byte in &block[..bytes] {
                let take = (total - e).min(4);
                if *byte == 0 && take == 4 && i + 4 <= self.cols {
                    i += 4;
                    if i == self.cols {
                        i = 0;
                        k += 1;
                    }
                    e += 4;
                    continue;
                }
                for t in 0..take {
                    match (byte >> (2 * t)) & 3 {
                        1 => acc[i].add(&pos[k]),
                        2 => acc[i].add(&neg[k]),
                        _ => {}
                    }
                    i += 1;
                    if i == self.cols {
                        i = 0;
                        k += 1;
                    }
                }
                e += take;
            }
        }
        acc.iter().map(crate::fold::LazySum::reduce).collect()
    }
}

/// An integer as a scalar (negative values as ℓ − |v|), without branching on the sign (N1: the
/// prover's mask g goes through here).
pub fn int_to_scalar(v: i128) -> Scalar {
    crate::fold::signed_scalar(v)
}

/// The prover's mask g (Λ entries uniform in [−2^φ·M, 2^φ·M]). Zeroized on drop; Debug hides it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct GhlMask {
    g: Vec<i128>,
}

impl fmt::Debug for GhlMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GhlMask").finish_non_exhaustive()
    }
}

impl GhlMask {
    /// Samples a fresh mask (rejection sampling on the width, so exactly uniform). The provers
    /// pass their hedged nonce generator (D25), never the caller's RNG directly.
    pub fn sample<R: CryptoRng + ?Sized>(params: &GhlParams, rng: &mut R) -> Self {
        let bound = params.mask_bound();
        let width = 2 * bound + 1; // < 2^99
        let bits = 128 - (width - 1).leading_zeros();
        let keep = if bits >= 128 {
            u128::MAX
        } else {
            (1u128 << bits) - 1
        };
        let g = (0..ROWS)
            .map(|_| {
                loop {
                    let r =
                        ((u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64())) & keep;
                    if r < width {
                        // r ≤ 2·bound < 2^99 and bound < 2^98 fit i128.
                        break r as i128 - bound as i128;
                    }
                }
            })
            .collect();
        GhlMask { g }
    }

    /// The entries (tests of the verifier's bound build responses the prover would refuse).
    #[cfg(feature = "std")]
    pub(crate) fn values(&self) -> &[i128] {
        &self.g
    }

    /// The entries, as scalars, for committing to them (g_k on its generator).
    pub fn scalars(&self) -> Vec<Scalar> {
        self.g.iter().map(|v| int_to_scalar(*v)).collect()
    }

    /// z = R·w + g. Refuses (GhlBound) if w violates the prover's bound, which an honest
    /// prover never does: such a z would be rejected, and it would leak more than 2^-50.
    pub fn respond(
        &self,
        params: &GhlParams,
        matrix: &TernaryMatrix,
        w: &[i64],
    ) -> Result<Vec<i128>, Error> {
        let rw = matrix.mul_vec(w)?;
        let m = params.magnitude as i128;
        let mut z = Vec::with_capacity(ROWS);
        for (k, (r, g)) in rw.iter().zip(&self.g).enumerate() {
            if r.abs() > m {
                return Err(Error::GhlBound { row: k });
            }
            z.push(r + g);
        }
        Ok(z)
    }
}

/// The verifier's range check ‖z‖_∞ ≤ Z_max.
pub fn check_bound(params: &GhlParams, z: &[i128]) -> Result<(), Error> {
    if z.len() != ROWS {
        return Err(Error::LengthMismatch {
            what: "ghl response",
            expected: ROWS,
            got: z.len(),
        });
    }
    let z_max = params.z_max();
    match z.iter().position(|v| v.unsigned_abs() > z_max) {
        Some(row) => Err(Error::GhlBound { row }),
        None => Ok(()),
    }
}

/// Σ_k c_k·z_k as a scalar (ẑ of arguments.md §A.2).
pub fn combine(coeffs: &[Scalar; ROWS], z: &[i128]) -> Scalar {
    coeffs
        .iter()
        .zip(z)
        .map(|(c, v)| c * int_to_scalar(*v))
        .sum()
}

/// z as Λ signed little-endian integers of [`GhlParams::z_width`] bytes (arguments.md §E).
pub fn encode(params: &GhlParams, z: &[i128]) -> Vec<u8> {
    let w = params.z_width();
    let mut out = Vec::with_capacity(w * z.len());
    for v in z {
        out.extend_from_slice(&v.to_le_bytes()[..w]);
    }
    out
}

/// Decodes untrusted z bytes: exact length, each entry sign-extended and within Z_max.
pub fn decode(params: &GhlParams, bytes: &[u8]) -> Result<Vec<i128>, Error> {
    let w = params.z_width();
    if bytes.len() != w * ROWS {
        return Err(Error::ProofLength {
            expected: w * ROWS,
            got: bytes.len(),
        });
    }
    let z: Vec<i128> = bytes
        .chunks_exact(w)
        .map(|c| {
            let fill = if c[w - 1] & 0x80 != 0 { 0xff } else { 0 };
            let mut buf = [fill; 16];
            buf[..w].copy_from_slice(c);
            i128::from_le_bytes(buf)
        })
        .collect();
    check_bound(params, &z)?;
    Ok(z)
}
