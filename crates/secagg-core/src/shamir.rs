//! Shamir secret sharing of 32-byte secrets over the prime field GF(p), p = 2^61 - 1.
//!
//! A secret is cut into [`CHUNKS`] little-endian chunks of 7 bytes (56 bits, so every chunk is
//! a field element); each chunk is shared with its own random polynomial of degree
//! `threshold - 1`, evaluated at the same public point, so one [`Share`] carries one point and
//! [`CHUNKS`] values. Any `threshold` shares give the secret back by Lagrange interpolation at
//! zero; fewer reveal nothing about it.
//!
//! The Mersenne prime makes reduction a shift, a mask and an add, with no division, and lets
//! points be any nonzero `u32`, so more than 255 share-holders work (unlike GF(2^8)).
//!
//! Side channels: the evaluation points are public, the share values and polynomial
//! coefficients are secret. Field arithmetic on secret values uses no secret-dependent branch
//! or table index (u128 products, Mersenne folding, mask-based conditional subtraction), and the
//! validity checks on secret values (`y < p`, chunk range) OR branch-free flags together and
//! branch once at the end, revealing only whether the input was valid. Temporaries holding
//! coefficients, chunks or partial sums are zeroized on drop. The exception is the error
//! correction in [`reconstruct_robust`], which runs on the server over shares of a secret the
//! server may reconstruct, and is not constant time.
//!
//! [`reconstruct_robust`] reads the shares of one chunk as a Reed–Solomon codeword and corrects
//! up to `(m - threshold) / 2` wrong shares among `m`, accepting only a secret that passes a
//! caller-supplied check.

use alloc::vec::Vec;
use core::fmt;

use rand_core::CryptoRng;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Length of a secret in bytes: the secrets shared are 32-byte keys and PRG seeds.
pub const SECRET_LEN: usize = 32;
/// Field elements per secret: 32 bytes in chunks of 7 bytes (56 bits < 61 bits of p).
pub const CHUNKS: usize = 5;
/// Length of an encoded [`Share`]: `x` as u32 LE, then each of the [`CHUNKS`] `y`s as u64 LE.
pub const SHARE_LEN: usize = 4 + 8 * CHUNKS;
/// The field modulus p = 2^61 - 1 (a Mersenne prime: reduction needs no division).
pub const MODULUS: u64 = (1 << 61) - 1;

/// Secret bytes per chunk.
const CHUNK_BYTES: usize = 7;

// The chunking must cover the secret exactly and every chunk must be below p.
const _: () = assert!(SECRET_LEN.div_ceil(CHUNK_BYTES) == CHUNKS);
const _: () = assert!(8 * CHUNK_BYTES < 61);

/// Errors of splitting, reconstruction and share decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShamirError {
    /// The threshold was 0; at least one share must be needed.
    ThresholdTooSmall,
    /// More shares would be needed than are (or can be) made.
    ThresholdAboveShares {
        /// The threshold asked for.
        threshold: usize,
        /// The number of shares (evaluation points) available.
        shares: usize,
    },
    /// An evaluation point was 0: the share there would be the secret itself.
    ZeroPoint,
    /// The same evaluation point appeared twice.
    DuplicatePoint(u32),
    /// Fewer shares were given than the threshold needs.
    NotEnoughShares {
        /// The number of shares needed.
        needed: usize,
        /// The number of shares given.
        got: usize,
    },
    /// A share was badly encoded: wrong length, or a value not below the modulus.
    Malformed,
    /// The reconstructed value is not the encoding of any secret (a chunk above 56 bits or
    /// nonzero padding): the shares were not all from the same sharing.
    MalformedSecret,
    /// [`Lagrange::reconstruct`] got a share whose point differs from the cached point there.
    PointMismatch {
        /// The position in the share list.
        index: usize,
        /// The cached point at that position.
        expected: u32,
        /// The share's point.
        got: u32,
    },
    /// [`reconstruct_robust`]: the shares are too far from every sharing to be corrected: more
    /// than `(shares - threshold) / 2` of them are wrong, and no fallback subset of `threshold`
    /// shares passed the check either.
    Uncorrectable {
        /// The number of shares given.
        shares: usize,
        /// The threshold: the sharing polynomials have degree `threshold - 1`.
        threshold: usize,
    },
    /// [`reconstruct_robust`]: the shares decoded to one sharing (after correcting `corrected`
    /// of them) whose secret the check rejects, and no fallback subset passed the check. Either
    /// the owner dealt shares of another secret (then `corrected` is usually 0), or more shares
    /// are wrong than can be corrected and the decoder found the wrong sharing.
    CheckFailed {
        /// How many shares the decoder replaced.
        corrected: usize,
    },
}

impl fmt::Display for ShamirError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ThresholdTooSmall => f.write_str("Shamir threshold must be at least 1"),
            Self::ThresholdAboveShares { threshold, shares } => write!(
                f,
                "Shamir threshold {threshold} exceeds the number of shares {shares}"
            ),
            Self::ZeroPoint => f.write_str("Shamir evaluation point 0 is not allowed"),
            Self::DuplicatePoint(x) => write!(f, "duplicate Shamir evaluation point {x}"),
            Self::NotEnoughShares { needed, got } => {
                write!(f, "not enough Shamir shares: {needed} needed, {got} given")
            }
            Self::Malformed => {
                f.write_str("malformed Shamir share: wrong length or value out of range")
            }
            Self::MalformedSecret => f.write_str(
                "Shamir shares are inconsistent: the reconstructed value is not a valid secret",
            ),
            Self::PointMismatch {
                index,
                expected,
                got,
            } => write!(
                f,
                "Shamir share {index} is for point {got}, but the cached coefficients expect \
                 {expected}"
            ),
            Self::Uncorrectable { shares, threshold } => write!(
                f,
                "Shamir shares cannot be corrected: more than ({shares} - {threshold}) / 2 of \
                 {shares} shares are wrong"
            ),
            Self::CheckFailed { corrected } => write!(
                f,
                "Shamir shares decoded (correcting {corrected}) to a secret that fails its check"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ShamirError {}

/// One share: the evaluations at point `x` of the [`CHUNKS`] sharing polynomials.
///
/// `y` is secret: it is zeroized on drop, left out of `Debug`, and compared in constant time.
#[derive(Clone, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Share {
    /// The public evaluation point (the share-holder's index); never 0.
    pub x: u32,
    /// The polynomial values at `x`, one per chunk, each below [`MODULUS`].
    pub y: [u64; CHUNKS],
}

impl PartialEq for Share {
    /// Constant time in `y`, so comparing shares does not leak where they differ.
    fn eq(&self, other: &Self) -> bool {
        self.x == other.x && bool::from(self.y[..].ct_eq(&other.y[..]))
    }
}

impl fmt::Debug for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Share")
            .field("x", &self.x)
            .field("y", &format_args!("<redacted>"))
            .finish()
    }
}

impl Share {
    /// Encodes the share as [`SHARE_LEN`] bytes: `x` as u32 LE, then each `y` as u64 LE.
    ///
    /// The result holds secret values: the caller should encrypt or zeroize it.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; SHARE_LEN] {
        let mut out = [0u8; SHARE_LEN];
        let (xb, yb) = out.split_at_mut(4);
        xb.copy_from_slice(&self.x.to_le_bytes());
        for (dst, y) in yb.chunks_exact_mut(8).zip(&self.y) {
            dst.copy_from_slice(&y.to_le_bytes());
        }
        out
    }

    /// Decodes a share from untrusted bytes, never panicking.
    ///
    /// # Errors
    /// [`ShamirError::Malformed`] for a length other than [`SHARE_LEN`] or a `y` not
    /// below [`MODULUS`] (checked in constant time), [`ShamirError::ZeroPoint`] for `x == 0`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Share, ShamirError> {
        if bytes.len() != SHARE_LEN {
            return Err(ShamirError::Malformed);
        }
        let Some((xb, yb)) = bytes.split_first_chunk::<4>() else {
            return Err(ShamirError::Malformed);
        };
        let x = u32::from_le_bytes(*xb);
        if x == 0 {
            return Err(ShamirError::ZeroPoint);
        }
        // Built in place so an early return zeroizes the partial values on drop.
        let mut share = Share { x, y: [0; CHUNKS] };
        for (y, src) in share.y.iter_mut().zip(yb.chunks_exact(8)) {
            let mut b = [0u8; 8];
            b.copy_from_slice(src);
            *y = u64::from_le_bytes(b);
            b.zeroize();
        }
        check_values(core::iter::once(&share))?;
        Ok(share)
    }
}

/// Constant-time arithmetic in GF(2^61 - 1) on `u64` representatives.
///
/// "Reduced" values are in `[0, p)`. The Horner step keeps a "loose" accumulator below
/// `2^61 + 2^34` (< 2p) and reduces once at the end.
mod field {
    use super::MODULUS;

    /// Maps `v < 2p` to `v mod p` with a mask instead of a branch.
    #[inline(always)]
    pub(super) fn reduce_once(v: u64) -> u64 {
        let r = v.wrapping_sub(MODULUS);
        // r's top bit is set exactly when v < p (the subtraction wrapped).
        let mask = 0u64.wrapping_sub(r >> 63);
        r.wrapping_add(MODULUS & mask)
    }

    /// `a - b mod p` for reduced `a`, `b`.
    #[inline(always)]
    pub(super) fn sub(a: u64, b: u64) -> u64 {
        let r = a.wrapping_sub(b);
        let mask = 0u64.wrapping_sub(r >> 63);
        r.wrapping_add(MODULUS & mask)
    }

    /// `-a mod p` for reduced `a`.
    #[inline(always)]
    pub(super) fn neg(a: u64) -> u64 {
        sub(0, a)
    }

    /// `a * b mod p` for reduced `a`, `b`.
    #[inline(always)]
    pub(super) fn mul(a: u64, b: u64) -> u64 {
        reduce_once(mul_loose(a, b))
    }

    /// `a * b`, congruent mod p and below 2p, for reduced `a`, `b`.
    #[inline(always)]
    pub(super) fn mul_loose(a: u64, b: u64) -> u64 {
        let prod = u128::from(a) * u128::from(b); // <= (p-1)^2 < 2^122 - 2^61
        // 2^61 = 1 mod p, so prod = lo + hi mod p, with lo <= p and hi < p: the sum is < 2p.
        let lo = (prod as u64) & MODULUS;
        let hi = (prod >> 61) as u64;
        lo + hi
    }

    /// `v mod p` for any `v`, by folding twice at the 61-bit boundary.
    #[inline(always)]
    pub(super) fn reduce_wide(v: u128) -> u64 {
        let lo = (v as u64) & MODULUS;
        let mid = ((v >> 61) as u64) & MODULUS;
        let hi = (v >> 122) as u64;
        let s = lo + mid + hi; // <= 2p + 63
        reduce_once((s & MODULUS) + (s >> 61)) // <= p + 3 < 2p
    }

    /// The Horner step `acc * x + c`, loosely reduced: for loose `acc` (< 2^61 + 2^34),
    /// `x < 2^32` and reduced `c`, the result is again loose and congruent mod p.
    #[inline(always)]
    pub(super) fn mul_small_add(acc: u64, x: u64, c: u64) -> u64 {
        let v = u128::from(acc) * u128::from(x) + u128::from(c); // < 2^95
        let lo = (v as u64) & MODULUS; // < 2^61
        let hi = (v >> 61) as u64; // < 2^34
        lo + hi
    }

    /// `base^exp mod p` by square-and-multiply; branches only on the bits of the public `exp`.
    pub(super) fn pow(base: u64, exp: u64) -> u64 {
        let mut acc = 1;
        for bit in (0..64).rev() {
            acc = mul(acc, acc);
            if (exp >> bit) & 1 == 1 {
                acc = mul(acc, base);
            }
        }
        acc
    }

    /// `a^-1 mod p` by Fermat (`a^(p-2)`), with the fixed exponent; 0 maps to 0.
    pub(super) fn inv(a: u64) -> u64 {
        pow(a, MODULUS - 2)
    }

    /// Replaces each (nonzero, reduced) element by its inverse with one field inversion and
    /// 3(n-1) multiplications (Montgomery's trick).
    pub(super) fn batch_invert(v: &mut [u64]) {
        let mut prefix = alloc::vec::Vec::with_capacity(v.len());
        let mut acc = 1;
        for &a in v.iter() {
            prefix.push(acc); // product of the elements before this one
            acc = mul(acc, a);
        }
        let mut inv_acc = inv(acc); // inverse of the product of v[..=j] when visiting j
        for (a, pre) in v.iter_mut().zip(prefix).rev() {
            let a_inv = mul(inv_acc, pre);
            inv_acc = mul(inv_acc, *a);
            *a = a_inv;
        }
    }
}

/// Cuts the secret into chunks: chunk i is bytes `[7i, 7i + 7)` as a little-endian integer.
fn encode_secret(secret: &[u8; SECRET_LEN]) -> Zeroizing<[u64; CHUNKS]> {
    let mut out = Zeroizing::new([0u64; CHUNKS]);
    let mut buf = Zeroizing::new([0u8; 8]);
    for (dst, src) in out.iter_mut().zip(secret.chunks(CHUNK_BYTES)) {
        buf.fill(0);
        buf[..src.len()].copy_from_slice(src);
        *dst = u64::from_le_bytes(*buf);
    }
    out
}

/// Inverse of [`encode_secret`]; rejects (in constant time) a chunk too wide for its bytes.
fn decode_secret(chunks: &[u64; CHUNKS]) -> Result<Zeroizing<[u8; SECRET_LEN]>, ShamirError> {
    let mut out = Zeroizing::new([0u8; SECRET_LEN]);
    let mut bad = 0u64;
    for (c, dst) in chunks.iter().zip(out.chunks_mut(CHUNK_BYTES)) {
        // Bits above the chunk's 56 (or, for the last chunk, 32) bits must be zero.
        bad |= c >> (8 * dst.len());
        let bytes = Zeroizing::new(c.to_le_bytes());
        dst.copy_from_slice(&bytes[..dst.len()]);
    }
    if bad != 0 {
        return Err(ShamirError::MalformedSecret);
    }
    Ok(out)
}

/// Samples a uniform field element: 61 random bits, rejected only when equal to p. The
/// rejection depends on random data alone (probability 2^-61), never on the secret.
fn random_element<R: CryptoRng + ?Sized>(rng: &mut R) -> u64 {
    loop {
        let v = rng.next_u64() >> 3;
        if v < MODULUS {
            return v;
        }
    }
}

/// Checks a threshold against the number of shares.
fn check_threshold(threshold: usize, shares: usize) -> Result<(), ShamirError> {
    if threshold < 1 {
        return Err(ShamirError::ThresholdTooSmall);
    }
    if threshold > shares {
        return Err(ShamirError::ThresholdAboveShares { threshold, shares });
    }
    Ok(())
}

/// Checks that the public points are nonzero and pairwise distinct.
fn check_points(xs: &[u32]) -> Result<(), ShamirError> {
    if xs.contains(&0) {
        return Err(ShamirError::ZeroPoint);
    }
    let mut sorted = xs.to_vec();
    sorted.sort_unstable();
    for w in sorted.windows(2) {
        if let [a, b] = w
            && a == b
        {
            return Err(ShamirError::DuplicatePoint(*a));
        }
    }
    Ok(())
}

/// Checks that every `y` is below p, in constant time over the values (one branch at the end).
fn check_values<'a>(shares: impl Iterator<Item = &'a Share>) -> Result<(), ShamirError> {
    let mut bad = false;
    for s in shares {
        for &y in &s.y {
            // The subtraction borrows exactly when y > p - 1 (a flag, not a branch).
            bad |= (MODULUS - 1).overflowing_sub(y).1;
        }
    }
    if bad {
        return Err(ShamirError::Malformed);
    }
    Ok(())
}

/// Evaluates the chunk polynomials (`coeffs[k]` holds the degree-k coefficients) at `x` by
/// Horner's rule, the five chunks interleaved for instruction-level parallelism.
fn evaluate(coeffs: &[[u64; CHUNKS]], x: u32) -> [u64; CHUNKS] {
    let Some((top, rest)) = coeffs.split_last() else {
        return [0; CHUNKS];
    };
    let x = u64::from(x);
    let mut acc = *top;
    for c in rest.iter().rev() {
        for (a, &ci) in acc.iter_mut().zip(c) {
            *a = field::mul_small_add(*a, x, ci);
        }
    }
    acc.map(field::reduce_once)
}

/// Split `secret` into one share per evaluation point in `xs` (all distinct, nonzero), any
/// `threshold` of which reconstruct it, while `threshold - 1` reveal nothing.
///
/// Each chunk gets a polynomial whose constant term is the chunk and whose other
/// `threshold - 1` coefficients are uniform in `[0, p)` from `rng`; the coefficients are
/// zeroized before returning. Shares come back in the order of `xs`.
///
/// # Errors
/// [`ShamirError::ThresholdTooSmall`] for `threshold == 0`,
/// [`ShamirError::ThresholdAboveShares`] for `threshold > xs.len()`,
/// [`ShamirError::ZeroPoint`] and [`ShamirError::DuplicatePoint`] for bad points.
pub fn split<R: CryptoRng + ?Sized>(
    secret: &[u8; SECRET_LEN],
    xs: &[u32],
    threshold: usize,
    rng: &mut R,
) -> Result<Vec<Share>, ShamirError> {
    check_threshold(threshold, xs.len())?;
    check_points(xs)?;
    // Exact capacity: the vector never reallocates, so no unzeroized copy is left behind.
    let mut coeffs: Zeroizing<Vec<[u64; CHUNKS]>> = Zeroizing::new(Vec::with_capacity(threshold));
    coeffs.push(*encode_secret(secret));
    for _ in 1..threshold {
        let mut c = [0u64; CHUNKS];
        for v in &mut c {
            *v = random_element(rng);
        }
        coeffs.push(c);
        c.zeroize();
    }
    Ok(xs
        .iter()
        .map(|&x| Share {
            x,
            y: evaluate(&coeffs, x),
        })
        .collect())
}

/// Reconstruct from EXACTLY the first `threshold` shares of `shares` (errors if fewer; extra
/// shares are ignored, so a caller can retry with another window after a bad share).
///
/// # Errors
/// [`ShamirError::ThresholdTooSmall`], [`ShamirError::NotEnoughShares`],
/// [`ShamirError::ZeroPoint`] / [`ShamirError::DuplicatePoint`] for bad points,
/// [`ShamirError::Malformed`] for a `y` not below p, and [`ShamirError::MalformedSecret`] when
/// the interpolated value is no valid secret. Inconsistent shares give either that error or a
/// wrong secret; callers that can check the secret (e.g. against a public key) should.
pub fn reconstruct(
    shares: &[Share],
    threshold: usize,
) -> Result<Zeroizing<[u8; SECRET_LEN]>, ShamirError> {
    if threshold < 1 {
        return Err(ShamirError::ThresholdTooSmall);
    }
    let Some(used) = shares.get(..threshold) else {
        return Err(ShamirError::NotEnoughShares {
            needed: threshold,
            got: shares.len(),
        });
    };
    let xs: Vec<u32> = used.iter().map(|s| s.x).collect();
    let lagrange = Lagrange::at_zero(&xs)?;
    check_values(used.iter())?;
    combine(&lagrange.coeffs, used.iter())
}

/// Sums `coeffs[j] * y_j` per chunk and decodes the secret; the `y`s must be below p.
///
/// The products are added unreduced (each below 2^62) into u128 sums, reduced once at the end:
/// no overflow below 2^66 shares.
fn combine<'a>(
    coeffs: &[u64],
    shares: impl Iterator<Item = &'a Share>,
) -> Result<Zeroizing<[u8; SECRET_LEN]>, ShamirError> {
    let mut acc = Zeroizing::new([0u128; CHUNKS]);
    for (&l, s) in coeffs.iter().zip(shares) {
        for (a, &y) in acc.iter_mut().zip(&s.y) {
            *a += u128::from(field::mul_loose(l, y));
        }
    }
    let chunks = Zeroizing::new(acc.map(field::reduce_wide));
    decode_secret(&chunks)
}

/// Lagrange coefficients at 0 for a fixed set of points, so a server that reconstructs many
/// secrets from the same set of share-holders pays the inversions once.
///
/// The points and coefficients are public (they depend only on who holds the shares).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lagrange {
    /// The evaluation points, in the order shares must be given.
    xs: Vec<u32>,
    /// `coeffs[j] = prod_{m != j} x_m / (x_m - x_j)`, so `f(0) = sum_j coeffs[j] * f(x_j)`.
    coeffs: Vec<u64>,
}

impl Lagrange {
    /// Computes the coefficients for the given distinct nonzero points, in O(t^2) cheap
    /// multiplications and a single field inversion.
    ///
    /// # Errors
    /// [`ShamirError::ThresholdTooSmall`] for no points, [`ShamirError::ZeroPoint`],
    /// [`ShamirError::DuplicatePoint`].
    pub fn at_zero(xs: &[u32]) -> Result<Lagrange, ShamirError> {
        if xs.is_empty() {
            return Err(ShamirError::ThresholdTooSmall);
        }
        if xs.contains(&0) {
            return Err(ShamirError::ZeroPoint);
        }
        // coeffs[j] = N / D_j with N = prod_m x_m and D_j = x_j * prod_{m != j} (x_m - x_j).
        // |x_m - x_j| < 2^32, so D_j accumulates magnitudes with the cheap loose step and the
        // sign (-1)^#{m : x_m < x_j} is applied once. The outer loop runs over m so that the
        // t chains of the inner loop are independent.
        let mut denoms: Vec<u64> = xs.iter().map(|&x| u64::from(x)).collect();
        let mut negative: Vec<bool> = alloc::vec![false; xs.len()];
        let mut numerator = 1u64;
        for (m, &xm) in xs.iter().enumerate() {
            numerator = field::mul_small_add(numerator, u64::from(xm), 0);
            for (j, ((d, neg), &xj)) in denoms.iter_mut().zip(&mut negative).zip(xs).enumerate() {
                if j == m {
                    continue;
                }
                if xm == xj {
                    return Err(ShamirError::DuplicatePoint(xj));
                }
                *neg ^= xm < xj;
                *d = field::mul_small_add(*d, u64::from(xm.abs_diff(xj)), 0);
            }
        }
        for (d, &neg) in denoms.iter_mut().zip(&negative) {
            let r = field::reduce_once(*d);
            // Nonzero: a product of nonzero elements (distinct points below p) in a field.
            *d = if neg { field::neg(r) } else { r };
        }
        field::batch_invert(&mut denoms);
        let numerator = field::reduce_once(numerator);
        for d in &mut denoms {
            *d = field::mul(*d, numerator);
        }
        Ok(Lagrange {
            xs: xs.to_vec(),
            coeffs: denoms,
        })
    }

    /// The evaluation points, in the order [`Lagrange::reconstruct`] expects the shares.
    #[must_use]
    pub fn points(&self) -> &[u32] {
        &self.xs
    }

    /// Reconstructs a secret from shares at exactly [`Lagrange::points`], in that order
    /// (extra shares after them are ignored, as in [`reconstruct`]).
    ///
    /// # Errors
    /// [`ShamirError::NotEnoughShares`], [`ShamirError::PointMismatch`] when a share's
    /// `x` differs from the cached point, [`ShamirError::Malformed`] for a `y` not below p,
    /// [`ShamirError::MalformedSecret`] for inconsistent shares.
    pub fn reconstruct(
        &self,
        shares: &[&Share],
    ) -> Result<Zeroizing<[u8; SECRET_LEN]>, ShamirError> {
        let Some(used) = shares.get(..self.xs.len()) else {
            return Err(ShamirError::NotEnoughShares {
                needed: self.xs.len(),
                got: shares.len(),
            });
        };
        for (index, (s, &expected)) in used.iter().zip(&self.xs).enumerate() {
            if s.x != expected {
                return Err(ShamirError::PointMismatch {
                    index,
                    expected,
                    got: s.x,
                });
            }
        }
        check_values(used.iter().copied())?;
        combine(&self.coeffs, used.iter().copied())
    }
}

/// Reconstructs a secret from shares of which some may be wrong, accepting only a secret that
/// passes `check` (e.g. a comparison with the owner's commitment or public key).
///
/// With the evaluation points fixed, the values of one chunk at `m` points form a codeword of
/// a Reed–Solomon code of length `m` and dimension `threshold` (McEliece and Sarwate, "On
/// sharing secrets and Reed-Solomon codes", CACM 24(9), 1981), so up to
/// `e = (m - threshold) / 2` (rounded down) wrong shares can be located and corrected, wherever
/// they are among the `m`. A share counts as wrong when any of its [`CHUNKS`] values is.
///
/// 1. Fast path, the same work as before: [`reconstruct`] from the first `threshold` shares;
///    returned if `check` passes.
/// 2. Otherwise every share is validated and each chunk is decoded with Gao's algorithm
///    (S. Gao, "A New Algorithm for Decoding Reed-Solomon Codes", in *Communications,
///    Information and Network Security*, Kluwer, 2003, pp. 55–68). The error positions of all
///    chunks are merged (at most `e` shares in all), the secret is interpolated from the first
///    `threshold` shares outside that set, and returned if `check` passes.
/// 3. If not, the subsets tried before error correction existed are tried, each checked: the
///    first `threshold + 1` shares with one left out, then windows of `threshold` consecutive
///    shares. This costs what the failure path always cost and keeps every case it recovered
///    from well-formed shares, e.g. one wrong share among `threshold + 1` (where `e = 0`) or up
///    to `m - threshold` wrong shares all at the start or the end.
///
/// Every secret returned has passed `check`, so with a binding check no wrong secret is ever
/// returned, however many shares are wrong. Past `e` wrong shares the result is an error
/// (unless a fallback subset happens to be clean).
///
/// Shares after the first `threshold` are validated only if the fast path fails: as with
/// [`reconstruct`], a bad point or value there is ignored when the first `threshold` shares
/// already give a checked secret.
///
/// Side channels: steps 2 and 3 are not constant time (they branch on degrees and on whether
/// share values agree with the decoded polynomial, and their running time reveals how many
/// shares were wrong). They run on the server over shares of a secret the server is entitled
/// to reconstruct, and which it learns anyway when it succeeds.
///
/// Cost: step 2 is O(m²) field operations, mostly interpolating the [`CHUNKS`] received words;
/// for m = 100, t = 51 it measured 0.25–0.45 ms (1 to 24 wrong shares) against 10 µs for the
/// fast path (`benches/shamir.rs`). Step 3 is at most m interpolations from `threshold` shares and m checks, O(m·t²).
///
/// # Errors
/// [`ShamirError::ThresholdTooSmall`], [`ShamirError::NotEnoughShares`],
/// [`ShamirError::ZeroPoint`] / [`ShamirError::DuplicatePoint`] for bad points and
/// [`ShamirError::Malformed`] for a `y` not below p (in any share, once the fast path failed);
/// [`ShamirError::Uncorrectable`] when more than `e` shares are wrong and no fallback subset
/// passes; [`ShamirError::CheckFailed`] when the shares decode to a sharing whose secret
/// `check` rejects (the owner dealt them so, or more than `e` are wrong) and no fallback passes.
pub fn reconstruct_robust(
    shares: &[Share],
    threshold: usize,
    check: impl Fn(&[u8; SECRET_LEN]) -> bool,
) -> Result<Zeroizing<[u8; SECRET_LEN]>, ShamirError> {
    match reconstruct(shares, threshold) {
        Ok(secret) if check(&secret) => return Ok(secret),
        // Inconsistent shares among the first t: decode.
        Ok(_) | Err(ShamirError::MalformedSecret) => {}
        Err(e) => return Err(e),
    }
    let xs: Vec<u32> = shares.iter().map(|s| s.x).collect();
    check_points(&xs)?;
    check_values(shares.iter())?;
    let failure = match rs::locate_errors(shares, threshold) {
        Some(wrong) => {
            let good: Vec<&Share> = shares
                .iter()
                .zip(&wrong)
                .filter(|&(_, &w)| !w)
                .map(|(s, _)| s)
                .take(threshold)
                .collect();
            if let Some(secret) = checked_subset(&good, threshold, &check) {
                return Ok(secret);
            }
            ShamirError::CheckFailed {
                corrected: wrong.iter().filter(|&&w| w).count(),
            }
        }
        None => ShamirError::Uncorrectable {
            shares: shares.len(),
            threshold,
        },
    };
    fallback_subsets(shares, threshold, &check).ok_or(failure)
}

/// The secret interpolated from exactly `threshold` shares (valid, distinct nonzero points),
/// if it decodes and passes `check`.
fn checked_subset(
    subset: &[&Share],
    threshold: usize,
    check: &dyn Fn(&[u8; SECRET_LEN]) -> bool,
) -> Option<Zeroizing<[u8; SECRET_LEN]>> {
    if subset.len() != threshold {
        return None;
    }
    let xs: Vec<u32> = subset.iter().map(|s| s.x).collect();
    let lagrange = Lagrange::at_zero(&xs).ok()?;
    let secret = combine(&lagrange.coeffs, subset.iter().copied()).ok()?;
    check(&secret).then_some(secret)
}

/// The subsets the server tried before error correction: the first `threshold + 1` shares with
/// one left out, then windows of `threshold` consecutive shares (leaving out those equal to
/// the fast path's first `threshold` or to an earlier candidate).
fn fallback_subsets(
    shares: &[Share],
    threshold: usize,
    check: &dyn Fn(&[u8; SECRET_LEN]) -> bool,
) -> Option<Zeroizing<[u8; SECRET_LEN]>> {
    let first = shares.get(..=threshold)?;
    for skip in 0..threshold {
        let subset: Vec<&Share> = first
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != skip)
            .map(|(_, s)| s)
            .collect();
        if let Some(secret) = checked_subset(&subset, threshold, check) {
            return Some(secret);
        }
    }
    // The window at 1 is the first t + 1 without share 0, tried above.
    for start in 2..=shares.len() - threshold {
        let subset: Vec<&Share> = shares.get(start..start + threshold)?.iter().collect();
        if let Some(secret) = checked_subset(&subset, threshold, check) {
            return Some(secret);
        }
    }
    None
}

/// Reed–Solomon decoding of the sharing by Gao's algorithm (see [`reconstruct_robust`]).
///
/// For one chunk with values `b_i` at points `x_i` (m of them) and threshold t:
/// `g0 = ∏ (X - x_i)`; `g1` interpolates the `b_i` (degree < m); the extended Euclidean
/// algorithm on `(g0, g1)` runs until the remainder `g = u·g0 + v·g1` has degree below
/// `(m + t)/2`; then `f = g / v` is the sharing polynomial if the division is exact and
/// `deg f < t`, and fails otherwise. With at most `(m - t)/2` errors `f` is the sharing
/// polynomial. (Then `g(x_i) = v(x_i)·b_i` and `g = f·v` make every wrong position a root of
/// `v`, the error locator; the positions are found here by evaluating `f` instead.)
///
/// Not constant time (see [`reconstruct_robust`]); the arithmetic still uses the module's
/// reduced field elements, and polynomials derived from share values are zeroized on drop.
mod rs {
    use alloc::vec;
    use alloc::vec::Vec;

    use zeroize::Zeroizing;

    use super::{CHUNKS, Share, evaluate, field};

    /// Coefficients from degree 0 up, without trailing zeros (the zero polynomial is empty).
    type Poly = Zeroizing<Vec<u64>>;

    fn trim(p: &mut Vec<u64>) {
        while p.last() == Some(&0) {
            p.pop();
        }
    }

    /// Quotient and remainder of `a` by `b`; `None` if `b` is zero or not trimmed.
    fn div_rem(a: &[u64], b: &[u64]) -> Option<(Poly, Poly)> {
        let (&lead, low) = b.split_last()?;
        if lead == 0 {
            return None;
        }
        let lead_inv = field::inv(lead);
        let db = low.len();
        let mut r = Zeroizing::new(a.to_vec());
        let mut q = Zeroizing::new(vec![0u64; (a.len() + 1).saturating_sub(b.len())]);
        for (i, qi) in q.iter_mut().enumerate().rev() {
            // The coefficient of degree i + db of the running remainder (the ones above were
            // cancelled by the earlier steps; they are cut off below).
            let c = field::mul(r[i + db], lead_inv);
            *qi = c;
            for (rj, &bj) in r[i..i + db].iter_mut().zip(low) {
                *rj = field::sub(*rj, field::mul(c, bj));
            }
        }
        r.truncate(db);
        trim(&mut r);
        trim(&mut q);
        Some((q, r))
    }

    /// `a - q·v`.
    fn mul_sub(a: &[u64], q: &[u64], v: &[u64]) -> Poly {
        let product_len = if q.is_empty() || v.is_empty() {
            0
        } else {
            q.len() + v.len() - 1
        };
        let mut out = Zeroizing::new(vec![0u64; a.len().max(product_len)]);
        for (o, &ai) in out.iter_mut().zip(a) {
            *o = ai;
        }
        for (i, &qi) in q.iter().enumerate() {
            for (o, &vj) in out[i..].iter_mut().zip(v) {
                *o = field::sub(*o, field::mul(qi, vj));
            }
        }
        trim(&mut out);
        out
    }

    /// Gao's steps 2 and 3 for one chunk: the sharing polynomial (degree < t) within distance
    /// `(m - t)/2` of the values that `g1` interpolates, or `None`.
    fn decode_chunk(g0: &[u64], g1: Poly, m: usize, t: usize) -> Option<Poly> {
        let mut r_prev: Poly = Zeroizing::new(g0.to_vec());
        let mut r = g1;
        let mut v_prev: Poly = Zeroizing::new(Vec::new());
        let mut v: Poly = Zeroizing::new(vec![1]);
        // Until deg r < (m + t)/2, i.e. 2·(len - 1) < m + t. The remainders' lengths strictly
        // decrease, so this ends; the zero remainder (length 0) always stops it.
        while 2 * r.len() >= m + t + 2 {
            let (q, rem) = div_rem(&r_prev, &r)?;
            let v_next = mul_sub(&v_prev, &q, &v);
            r_prev = core::mem::replace(&mut r, rem);
            v_prev = core::mem::replace(&mut v, v_next);
        }
        let (f, rem) = div_rem(&r, &v)?;
        (rem.is_empty() && f.len() <= t).then_some(f)
    }

    /// For each share, whether it disagrees with the decoded sharing polynomial of some chunk;
    /// `None` when some chunk cannot be decoded or more than `(m - t)/2` shares disagree in
    /// all. The caller has checked `1 <= t <= m`, distinct nonzero points and values below p.
    pub(super) fn locate_errors(shares: &[Share], t: usize) -> Option<Vec<bool>> {
        let m = shares.len();
        let max_errors = m.checked_sub(t)? / 2;
        if t == 0 {
            return None;
        }
        let xs: Vec<u64> = shares.iter().map(|s| u64::from(s.x)).collect();

        // g0 = ∏ (X - x_i), monic of degree m (public: it depends on the points only).
        let mut g0 = vec![0u64; m + 1];
        g0[0] = 1;
        for (k, &x) in xs.iter().enumerate() {
            // Multiply the degree-k product in g0[..=k] by (X - x), top coefficient first.
            for j in (1..=k + 1).rev() {
                g0[j] = field::sub(g0[j - 1], field::mul(x, g0[j]));
            }
            g0[0] = field::neg(field::mul(x, g0[0]));
        }

        // Barycentric weights w_i = 1 / ∏_{j != i} (x_i - x_j), accumulated as in
        // `Lagrange::at_zero`: magnitudes below 2^32 by the loose step, signs apart.
        let mut weights = vec![1u64; m];
        let mut negative = vec![false; m];
        for (j, &xj) in xs.iter().enumerate() {
            for (i, ((w, neg), &xi)) in weights.iter_mut().zip(&mut negative).zip(&xs).enumerate() {
                if i != j {
                    *neg ^= xj > xi;
                    *w = field::mul_small_add(*w, xi.abs_diff(xj), 0);
                }
            }
        }
        for (w, &neg) in weights.iter_mut().zip(&negative) {
            let r = field::reduce_once(*w);
            *w = if neg { field::neg(r) } else { r };
        }
        if weights.contains(&0) {
            return None; // a repeated point, which the caller excludes
        }
        field::batch_invert(&mut weights);

        // g1 for every chunk at once: sum_i b_i·w_i·g0/(X - x_i), the m products of each
        // coefficient (each below 2^62) summed unreduced in u128.
        let mut sums = Zeroizing::new(vec![[0u128; CHUNKS]; m]);
        let mut quotient = vec![0u64; m];
        let mut scaled = Zeroizing::new([0u64; CHUNKS]);
        for ((share, &x), &w) in shares.iter().zip(&xs).zip(&weights) {
            // g0/(X - x) by synthetic division (exact: x is a root).
            let mut carry = 0;
            for (qk, &gk) in quotient.iter_mut().zip(&g0[1..]).rev() {
                carry = field::reduce_once(field::mul_small_add(carry, x, gk));
                *qk = carry;
            }
            for (sc, &y) in scaled.iter_mut().zip(&share.y) {
                *sc = field::mul(y, w);
            }
            for (sum, &qk) in sums.iter_mut().zip(&quotient) {
                for (s, &sc) in sum.iter_mut().zip(scaled.iter()) {
                    *s += u128::from(field::mul_loose(sc, qk));
                }
            }
        }

        // The decoded polynomials, coefficient k of every chunk together for `evaluate`.
        let mut coeffs: Zeroizing<Vec<[u64; CHUNKS]>> = Zeroizing::new(vec![[0u64; CHUNKS]; t]);
        for c in 0..CHUNKS {
            let mut g1: Poly =
                Zeroizing::new(sums.iter().map(|s| field::reduce_wide(s[c])).collect());
            trim(&mut g1);
            let f = decode_chunk(&g0, g1, m, t)?;
            for (k, &fk) in coeffs.iter_mut().zip(f.iter()) {
                k[c] = fk;
            }
        }
        let wrong: Vec<bool> = shares
            .iter()
            .map(|share| {
                let values = Zeroizing::new(evaluate(&coeffs, share.x));
                *values != share.y
            })
            .collect();
        (wrong.iter().filter(|&&w| w).count() <= max_errors).then_some(wrong)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeSet;
    use alloc::format;
    use alloc::vec;
    use proptest::prelude::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::{Rng, SeedableRng};

    const P: u128 = MODULUS as u128;
    /// The bound kept by the loose Horner accumulator.
    const LOOSE: u64 = (1 << 61) + (1 << 34);

    // ---- Independent oracle: plain u128 arithmetic with `%`. ----
    fn o_add(a: u64, b: u64) -> u64 {
        ((a as u128 + b as u128) % P) as u64
    }
    fn o_sub(a: u64, b: u64) -> u64 {
        ((a as u128 + P - b as u128) % P) as u64
    }
    fn o_mul(a: u64, b: u64) -> u64 {
        ((a as u128 * b as u128) % P) as u64
    }
    fn o_pow(a: u64, mut e: u64) -> u64 {
        let (mut base, mut acc) = (a as u128 % P, 1u128);
        while e > 0 {
            if e & 1 == 1 {
                acc = acc * base % P;
            }
            base = base * base % P;
            e >>= 1;
        }
        acc as u64
    }
    fn o_inv(a: u64) -> u64 {
        o_pow(a, MODULUS - 2)
    }
    /// Value at `x` of the polynomial through `points` (naive Lagrange, oracle arithmetic).
    fn o_interpolate(points: &[(u64, u64)], x: u64) -> u64 {
        let mut sum = 0;
        for (j, &(xj, yj)) in points.iter().enumerate() {
            let mut term = yj;
            for (m, &(xm, _)) in points.iter().enumerate() {
                if m != j {
                    term = o_mul(term, o_mul(o_sub(x, xm), o_inv(o_sub(xj, xm))));
                }
            }
            sum = o_add(sum, term);
        }
        sum
    }

    fn rng(seed: u64) -> ChaCha20Rng {
        ChaCha20Rng::seed_from_u64(seed)
    }

    fn elem() -> impl Strategy<Value = u64> {
        prop_oneof![
            Just(0u64),
            Just(1),
            Just(2),
            Just(MODULUS - 1),
            Just(MODULUS - 2),
            Just(1 << 60),
            Just(u32::MAX as u64),
            0..MODULUS,
        ]
    }

    /// n distinct nonzero points in random order, a threshold, and a random t-subset of
    /// share indices in random order.
    fn case(max_n: usize) -> impl Strategy<Value = (Vec<u32>, usize, Vec<usize>)> {
        (1..=max_n)
            .prop_flat_map(|n| (proptest::collection::btree_set(1u32..=u32::MAX, n), 1..=n))
            .prop_flat_map(|(xs, t)| {
                let n = xs.len();
                (
                    Just(xs.into_iter().collect::<Vec<_>>()).prop_shuffle(),
                    Just(t),
                    proptest::sample::subsequence((0..n).collect::<Vec<_>>(), t).prop_shuffle(),
                )
            })
    }

    // ---- Field arithmetic against the oracle. ----

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn field_ops_match_oracle(a in elem(), b in elem()) {
            prop_assert_eq!(field::reduce_once(a + b), o_add(a, b));
            prop_assert_eq!(field::sub(a, b), o_sub(a, b));
            prop_assert_eq!(field::neg(a), o_sub(0, a));
            prop_assert_eq!(field::mul(a, b), o_mul(a, b));
            prop_assert_eq!(field::reduce_once(a), a);
            prop_assert_eq!(field::reduce_once(a + MODULUS), a);
            let l = field::mul_loose(a, b);
            prop_assert!(l < 2 * MODULUS);
            prop_assert_eq!(l as u128 % P, o_mul(a, b) as u128);
        }

        #[test]
        fn reduce_wide_matches_oracle(
            v in prop_oneof![
                Just(0u128),
                Just(u128::MAX),
                Just(u128::MAX - 1),
                Just(P),
                Just(P * P),
                any::<u128>(),
            ],
        ) {
            prop_assert_eq!(field::reduce_wide(v) as u128, v % P);
        }

        #[test]
        fn pow_and_inv_match_oracle(a in elem(), e in any::<u64>()) {
            prop_assert_eq!(field::pow(a, e), o_pow(a, e));
            let i = field::inv(a);
            prop_assert_eq!(i, o_inv(a));
            if a == 0 {
                prop_assert_eq!(i, 0);
            } else {
                prop_assert_eq!(o_mul(a, i), 1);
            }
        }

        #[test]
        fn horner_step_stays_loose_and_correct(
            acc in prop_oneof![Just(0u64), Just(LOOSE - 1), 0..LOOSE],
            x in prop_oneof![Just(0u32), Just(1), Just(u32::MAX), any::<u32>()],
            c in elem(),
        ) {
            let r = field::mul_small_add(acc, x as u64, c);
            prop_assert!(r < LOOSE);
            let expect = ((acc as u128 * x as u128 + c as u128) % P) as u64;
            prop_assert_eq!(field::reduce_once(r), expect);
        }

        #[test]
        fn batch_invert_matches_oracle(v in proptest::collection::vec(1..MODULUS, 1..20)) {
            let mut w = v.clone();
            field::batch_invert(&mut w);
            for (a, b) in v.iter().zip(&w) {
                prop_assert_eq!(*b, o_inv(*a));
            }
        }
    }

    #[test]
    fn small_powers_by_repeated_multiplication() {
        for a in [0, 1, 2, 3, MODULUS - 1, MODULUS - 2, 123_456_789_012_345] {
            let mut acc = 1;
            for e in 0..70u64 {
                assert_eq!(field::pow(a, e), acc);
                acc = o_mul(acc, a);
            }
        }
        assert_eq!(field::mul(MODULUS - 1, MODULUS - 1), 1); // (-1)^2
    }

    // ---- Chunk encoding. ----

    #[test]
    fn chunks_are_little_endian_7_byte_windows() {
        let secret: [u8; 32] = core::array::from_fn(|i| i as u8 + 1);
        let c = encode_secret(&secret);
        assert_eq!(c[0], 0x07_06_05_04_03_02_01);
        assert_eq!(c[1], 0x0e_0d_0c_0b_0a_09_08);
        assert_eq!(c[4], 0x20_1f_1e_1d);
        assert_eq!(*decode_secret(&c).unwrap(), secret);
        let max = encode_secret(&[0xff; 32]);
        assert_eq!(
            *max,
            [
                (1 << 56) - 1,
                (1 << 56) - 1,
                (1 << 56) - 1,
                (1 << 56) - 1,
                (1 << 32) - 1
            ]
        );
        for (i, v) in [
            (0usize, 1u64 << 56),
            (3, 1 << 56),
            (4, 1 << 32),
            (2, MODULUS - 1),
        ] {
            let mut bad = *max;
            bad[i] = v;
            assert_eq!(
                decode_secret(&bad).unwrap_err(),
                ShamirError::MalformedSecret
            );
        }
    }

    // ---- Correctness of split / reconstruct. ----

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn any_t_subset_reconstructs(
            (xs, t, subset) in case(40),
            secret in any::<[u8; 32]>(),
            seed in any::<u64>(),
        ) {
            let shares = split(&secret, &xs, t, &mut rng(seed)).unwrap();
            prop_assert_eq!(shares.len(), xs.len());
            for (s, &x) in shares.iter().zip(&xs) {
                prop_assert_eq!(s.x, x);
                prop_assert!(s.y.iter().all(|&y| y < MODULUS));
            }
            let chosen: Vec<Share> = subset.iter().map(|&i| shares[i].clone()).collect();
            prop_assert_eq!(*reconstruct(&chosen, t).unwrap(), secret);
            // Extra shares after the first t are ignored, even garbage ones.
            let mut extra = chosen.clone();
            extra.push(Share { x: 0, y: [u64::MAX; CHUNKS] });
            prop_assert_eq!(*reconstruct(&extra, t).unwrap(), secret);
            // The cached coefficients give the same result.
            let sub_xs: Vec<u32> = subset.iter().map(|&i| xs[i]).collect();
            let lag = Lagrange::at_zero(&sub_xs).unwrap();
            let refs: Vec<&Share> = chosen.iter().collect();
            prop_assert_eq!(*lag.reconstruct(&refs).unwrap(), secret);
        }

        /// t-1 shares fit every secret: completing them with one forged share, computed by an
        /// independent interpolation through (0, other) and the t-1 shares, makes `reconstruct`
        /// return `other`, just as completing them with the real t-th share returns `secret`.
        #[test]
        fn fewer_than_t_shares_fit_every_secret(
            (xs, t, subset) in case(16).prop_filter("t >= 2", |(_, t, _)| *t >= 2),
            secret in any::<[u8; 32]>(),
            other in any::<[u8; 32]>(),
            seed in any::<u64>(),
        ) {
            let shares = split(&secret, &xs, t, &mut rng(seed)).unwrap();
            let seen: Vec<Share> = subset[..t - 1].iter().map(|&i| shares[i].clone()).collect();
            let fresh = xs[subset[t - 1]];
            let other_chunks = encode_secret(&other);
            let mut forged = Share { x: fresh, y: [0; CHUNKS] };
            for c in 0..CHUNKS {
                let mut pts = vec![(0u64, other_chunks[c])];
                pts.extend(seen.iter().map(|s| (s.x as u64, s.y[c])));
                forged.y[c] = o_interpolate(&pts, fresh as u64);
            }
            let mut alt = seen.clone();
            alt.push(forged);
            prop_assert_eq!(*reconstruct(&alt, t).unwrap(), other);
            let mut real = seen.clone();
            real.push(shares[subset[t - 1]].clone());
            prop_assert_eq!(*reconstruct(&real, t).unwrap(), secret);
        }

        /// The sharing polynomial really has degree t-1: read as a degree t-2 sharing, t-1
        /// shares do not give the secret (they would if a random coefficient were missing).
        #[test]
        fn t_minus_1_shares_do_not_determine_the_secret(
            (xs, t, subset) in case(24).prop_filter("t >= 2", |(_, t, _)| *t >= 2),
            secret in any::<[u8; 32]>(),
            seed in any::<u64>(),
        ) {
            let shares = split(&secret, &xs, t, &mut rng(seed)).unwrap();
            let seen: Vec<Share> = subset[..t - 1].iter().map(|&i| shares[i].clone()).collect();
            let lag = Lagrange::at_zero(&seen.iter().map(|s| s.x).collect::<Vec<_>>()).unwrap();
            // The degree t-2 guess at 0, without the 56-bit decoding check.
            let guess: Vec<u64> = (0..CHUNKS)
                .map(|c| {
                    seen.iter().zip(&lag.coeffs).fold(0, |a, (s, &l)| o_add(a, o_mul(l, s.y[c])))
                })
                .collect();
            prop_assert_ne!(&guess[..], &encode_secret(&secret)[..]);
            prop_assert!(reconstruct(&seen, t - 1).map(|s| *s != secret).unwrap_or(true));
        }
    }

    #[test]
    fn more_than_255_shares() {
        let n = 300;
        let xs: Vec<u32> = (1..=n).collect();
        let mut r = rng(7);
        for t in [1, 2, 150, 299, 300] {
            let mut secret = [0u8; 32];
            r.fill_bytes(&mut secret);
            let shares = split(&secret, &xs, t, &mut r).unwrap();
            for _ in 0..3 {
                // Random t-subset by a partial Fisher-Yates shuffle.
                let mut idx: Vec<usize> = (0..n as usize).collect();
                for i in 0..t {
                    let j = i + (r.next_u64() % (idx.len() - i) as u64) as usize;
                    idx.swap(i, j);
                }
                let chosen: Vec<Share> = idx[..t].iter().map(|&i| shares[i].clone()).collect();
                assert_eq!(*reconstruct(&chosen, t).unwrap(), secret);
            }
            // The highest points too.
            assert_eq!(*reconstruct(&shares[n as usize - t..], t).unwrap(), secret);
        }
        // Large points near u32::MAX.
        let xs: Vec<u32> = (0..300).map(|i| u32::MAX - i).collect();
        let secret = [0xA5; 32];
        let shares = split(&secret, &xs, 200, &mut r).unwrap();
        assert_eq!(*reconstruct(&shares[100..], 200).unwrap(), secret);
    }

    #[test]
    fn threshold_one_shares_are_the_secret_chunks() {
        let secret = [9u8; 32];
        let shares = split(&secret, &[5, 6], 1, &mut rng(1)).unwrap();
        assert_eq!(shares[0].y, *encode_secret(&secret));
        assert_eq!(*reconstruct(&shares[1..], 1).unwrap(), secret);
    }

    /// With t = 2, one share is uniform whatever the secret: compare the top bits of the
    /// share for two very different secrets against the uniform distribution (chi-square).
    #[test]
    fn single_share_distribution_does_not_depend_on_secret() {
        const SAMPLES: usize = 8192;
        const BUCKETS: usize = 16;
        for secret in [[0u8; 32], [0xff; 32]] {
            let mut r = rng(99);
            let mut counts = [[0usize; BUCKETS]; CHUNKS];
            for _ in 0..SAMPLES {
                let s = split(&secret, &[3, 4], 2, &mut r).unwrap();
                for (c, &y) in counts.iter_mut().zip(&s[0].y) {
                    c[(y >> 57) as usize] += 1;
                }
            }
            let expected = (SAMPLES / BUCKETS) as f64;
            for c in &counts {
                let chi2: f64 = c
                    .iter()
                    .map(|&k| (k as f64 - expected).powi(2) / expected)
                    .sum();
                // 15 degrees of freedom: P(chi2 > 50) < 1e-5.
                assert!(chi2 < 50.0, "share distribution not uniform: chi2 = {chi2}");
            }
        }
    }

    #[test]
    fn lagrange_coefficients_sum_to_one() {
        // A constant polynomial reconstructs to its constant, so the coefficients sum to 1.
        let lag = Lagrange::at_zero(&[1, 7, 3, 1000, u32::MAX]).unwrap();
        assert_eq!(lag.points(), &[1, 7, 3, 1000, u32::MAX]);
        assert_eq!(lag.coeffs.iter().fold(0, |a, &c| o_add(a, c)), 1);
        for (j, &xj) in lag.points().iter().enumerate() {
            let mut expect = 1;
            for (m, &xm) in lag.points().iter().enumerate() {
                if m != j {
                    expect = o_mul(expect, o_mul(xm as u64, o_inv(o_sub(xm as u64, xj as u64))));
                }
            }
            assert_eq!(lag.coeffs[j], expect);
        }
    }

    // ---- Errors. ----

    #[test]
    fn split_errors() {
        let s = [1u8; 32];
        let mut r = rng(3);
        assert_eq!(
            split(&s, &[1, 2], 0, &mut r),
            Err(ShamirError::ThresholdTooSmall)
        );
        assert_eq!(
            split(&s, &[1, 2], 3, &mut r),
            Err(ShamirError::ThresholdAboveShares {
                threshold: 3,
                shares: 2
            })
        );
        assert_eq!(
            split(&s, &[], 1, &mut r),
            Err(ShamirError::ThresholdAboveShares {
                threshold: 1,
                shares: 0
            })
        );
        assert_eq!(
            split(&s, &[1, 0, 2], 2, &mut r),
            Err(ShamirError::ZeroPoint)
        );
        assert_eq!(
            split(&s, &[4, 9, 2, 9], 2, &mut r),
            Err(ShamirError::DuplicatePoint(9))
        );
    }

    #[test]
    fn reconstruct_errors() {
        let s = [1u8; 32];
        let shares = split(&s, &[1, 2, 3, 4], 3, &mut rng(4)).unwrap();
        assert_eq!(
            reconstruct(&shares, 0).unwrap_err(),
            ShamirError::ThresholdTooSmall
        );
        assert_eq!(
            reconstruct(&shares[..2], 3).unwrap_err(),
            ShamirError::NotEnoughShares { needed: 3, got: 2 }
        );
        assert_eq!(
            reconstruct(&[], 1).unwrap_err(),
            ShamirError::NotEnoughShares { needed: 1, got: 0 }
        );
        let dup = [shares[0].clone(), shares[1].clone(), shares[0].clone()];
        assert_eq!(
            reconstruct(&dup, 3).unwrap_err(),
            ShamirError::DuplicatePoint(1)
        );
        let mut zero = shares.clone();
        zero[1].x = 0;
        assert_eq!(reconstruct(&zero, 3).unwrap_err(), ShamirError::ZeroPoint);
        for bad in [MODULUS, MODULUS + 1, u64::MAX] {
            let mut big = shares.clone();
            big[2].y[4] = bad;
            assert_eq!(reconstruct(&big, 3).unwrap_err(), ShamirError::Malformed);
            let lag = Lagrange::at_zero(&[1, 2, 3]).unwrap();
            assert_eq!(
                lag.reconstruct(&big.iter().collect::<Vec<_>>())
                    .unwrap_err(),
                ShamirError::Malformed
            );
        }
    }

    #[test]
    fn lagrange_errors() {
        assert_eq!(
            Lagrange::at_zero(&[]).unwrap_err(),
            ShamirError::ThresholdTooSmall
        );
        assert_eq!(
            Lagrange::at_zero(&[3, 0]).unwrap_err(),
            ShamirError::ZeroPoint
        );
        assert_eq!(
            Lagrange::at_zero(&[3, 5, 3]).unwrap_err(),
            ShamirError::DuplicatePoint(3)
        );
        let shares = split(&[2; 32], &[10, 20, 30], 2, &mut rng(5)).unwrap();
        let lag = Lagrange::at_zero(&[10, 20]).unwrap();
        assert_eq!(
            lag.reconstruct(&[&shares[0]]).unwrap_err(),
            ShamirError::NotEnoughShares { needed: 2, got: 1 }
        );
        assert_eq!(
            lag.reconstruct(&[&shares[0], &shares[2]]).unwrap_err(),
            ShamirError::PointMismatch {
                index: 1,
                expected: 20,
                got: 30
            }
        );
        assert_eq!(
            lag.reconstruct(&[&shares[1], &shares[0]]).unwrap_err(),
            ShamirError::PointMismatch {
                index: 0,
                expected: 10,
                got: 20
            }
        );
        assert_eq!(
            *lag.reconstruct(&[&shares[0], &shares[1], &shares[2]])
                .unwrap(),
            [2; 32]
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]
        /// A corrupted share never panics and never yields the right secret silently.
        #[test]
        fn corrupted_share_is_detected_or_wrong(
            (xs, t, subset) in case(12),
            secret in any::<[u8; 32]>(),
            seed in any::<u64>(),
            which in any::<proptest::sample::Index>(),
            chunk in 0..CHUNKS,
            delta in 1..MODULUS,
        ) {
            let shares = split(&secret, &xs, t, &mut rng(seed)).unwrap();
            let mut chosen: Vec<Share> = subset.iter().map(|&i| shares[i].clone()).collect();
            let k = which.index(t);
            chosen[k].y[chunk] = o_add(chosen[k].y[chunk], delta);
            match reconstruct(&chosen, t) {
                Ok(s) => prop_assert_ne!(*s, secret),
                Err(e) => prop_assert_eq!(e, ShamirError::MalformedSecret),
            }
        }

        #[test]
        fn from_bytes_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..2 * SHARE_LEN),
        ) {
            if let Ok(s) = Share::from_bytes(&bytes) {
                prop_assert_eq!(&s.to_bytes()[..], &bytes[..]);
            }
        }

        #[test]
        fn from_bytes_of_right_length(bytes in any::<[u8; SHARE_LEN]>()) {
            let x = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            let ys_ok = bytes[4..].chunks(8).all(|c| {
                u64::from_le_bytes(c.try_into().unwrap()) < MODULUS
            });
            match Share::from_bytes(&bytes) {
                Ok(s) => {
                    prop_assert!(x != 0 && ys_ok);
                    prop_assert_eq!(s.to_bytes(), bytes);
                }
                Err(ShamirError::ZeroPoint) => prop_assert_eq!(x, 0),
                Err(ShamirError::Malformed) => prop_assert!(!ys_ok),
                Err(e) => prop_assert!(false, "unexpected error {e:?}"),
            }
        }
    }

    #[test]
    fn share_bytes_round_trip_and_rejects() {
        let shares = split(&[0x5a; 32], &[1, 0xdead_beef], 2, &mut rng(6)).unwrap();
        for s in &shares {
            let b = s.to_bytes();
            assert_eq!(&b[..4], &s.x.to_le_bytes());
            assert_eq!(&b[4..12], &s.y[0].to_le_bytes());
            assert_eq!(Share::from_bytes(&b).unwrap(), *s);
            assert_eq!(
                Share::from_bytes(&b[..SHARE_LEN - 1]),
                Err(ShamirError::Malformed)
            );
            let mut long = b.to_vec();
            long.push(0);
            assert_eq!(Share::from_bytes(&long), Err(ShamirError::Malformed));
        }
        assert_eq!(Share::from_bytes(&[]), Err(ShamirError::Malformed));
        let mut b = shares[0].to_bytes();
        b[..4].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(Share::from_bytes(&b), Err(ShamirError::ZeroPoint));
        for bad in [MODULUS, u64::MAX, 1 << 63] {
            for c in 0..CHUNKS {
                let mut b = shares[1].to_bytes();
                b[4 + 8 * c..12 + 8 * c].copy_from_slice(&bad.to_le_bytes());
                assert_eq!(Share::from_bytes(&b), Err(ShamirError::Malformed));
            }
        }
        let mut b = shares[1].to_bytes();
        b[4..12].copy_from_slice(&(MODULUS - 1).to_le_bytes());
        assert_eq!(Share::from_bytes(&b).unwrap().y[0], MODULUS - 1);
    }

    // ---- Robust reconstruction (error correction). ----

    /// Adds a nonzero offset to a nonempty random set of the chunks of `share`.
    fn corrupt(share: &mut Share, r: &mut ChaCha20Rng) {
        let chunks = 1 + r.next_u64() % ((1 << CHUNKS) - 1);
        for (c, y) in share.y.iter_mut().enumerate() {
            if (chunks >> c) & 1 == 1 {
                *y = o_add(*y, 1 + r.next_u64() % (MODULUS - 1));
            }
        }
    }

    /// `count` distinct random indices below `m` (partial Fisher–Yates).
    fn positions(m: usize, count: usize, r: &mut ChaCha20Rng) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..m).collect();
        for i in 0..count {
            let j = i + (r.next_u64() % (m - i) as u64) as usize;
            idx.swap(i, j);
        }
        idx.truncate(count);
        idx
    }

    /// m shares of a random secret at random distinct points, threshold t.
    fn dealt(m: usize, t: usize, r: &mut ChaCha20Rng) -> ([u8; 32], Vec<Share>) {
        let mut xs = BTreeSet::new();
        while xs.len() < m {
            xs.insert(1 + (r.next_u64() % u64::from(u32::MAX)) as u32);
        }
        let mut xs: Vec<u32> = xs.into_iter().collect();
        for i in (1..m).rev() {
            xs.swap(i, (r.next_u64() % (i as u64 + 1)) as usize);
        }
        let mut secret = [0u8; 32];
        r.fill_bytes(&mut secret);
        let shares = split(&secret, &xs, t, r).unwrap();
        (secret, shares)
    }

    fn flags(m: usize, wrong: &[usize]) -> Vec<bool> {
        (0..m).map(|i| wrong.contains(&i)).collect()
    }

    #[test]
    fn robust_corrects_up_to_half_the_redundancy() {
        let mut r = rng(21);
        for t in [1, 2, 3, 5, 11, 24] {
            for m in t..=t + 8 {
                let e = (m - t) / 2;
                for errors in 0..=e {
                    for trial in 0..6 {
                        let (secret, mut shares) = dealt(m, t, &mut r);
                        // Trial 0 puts the errors among the first t shares where they fit,
                        // so the fast path fails whenever there is one.
                        let wrong = if trial == 0 && errors <= t {
                            positions(t, errors, &mut r)
                        } else {
                            positions(m, errors, &mut r)
                        };
                        for &i in &wrong {
                            corrupt(&mut shares[i], &mut r);
                        }
                        assert_eq!(
                            rs::locate_errors(&shares, t),
                            Some(flags(m, &wrong)),
                            "t={t} m={m} wrong={wrong:?}"
                        );
                        let got = reconstruct_robust(&shares, t, |s| *s == secret);
                        assert_eq!(*got.unwrap(), secret, "t={t} m={m} wrong={wrong:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn one_error_too_many_never_gives_a_wrong_secret() {
        let mut r = rng(22);
        for t in [1, 2, 3, 5, 11, 24] {
            for m in t..=t + 8 {
                let errors = (m - t) / 2 + 1;
                if errors > m {
                    continue;
                }
                for _ in 0..6 {
                    let (secret, mut shares) = dealt(m, t, &mut r);
                    let wrong = positions(m, errors, &mut r);
                    for &i in &wrong {
                        corrupt(&mut shares[i], &mut r);
                    }
                    // Random errors beyond the radius leave no sharing close enough (except
                    // for m = t, where any values are a sharing).
                    let located = rs::locate_errors(&shares, t);
                    if m == t {
                        assert_eq!(located, Some(vec![false; m]));
                    } else {
                        assert_eq!(located, None, "t={t} m={m} wrong={wrong:?}");
                    }
                    // Only the fallback subsets can still find the secret; nothing else passes.
                    match reconstruct_robust(&shares, t, |s| *s == secret) {
                        Ok(s) => assert_eq!(*s, secret),
                        Err(ShamirError::Uncorrectable {
                            shares: n,
                            threshold,
                        }) => {
                            assert!(m > t && n == m && threshold == t)
                        }
                        Err(ShamirError::CheckFailed { corrected: 0 }) => assert_eq!(m, t),
                        Err(e) => panic!("unexpected {e:?}"),
                    }
                }
            }
        }
    }

    /// The case of the issue: two wrong shares among t + 4 placed so that none of the subsets
    /// tried before (leave one out of the first t + 1, windows) is clean.
    #[test]
    fn two_wrong_shares_among_t_plus_4_are_corrected() {
        let mut r = rng(23);
        // Share t is in the first t + 1 and (for t >= 4) in every window of t.
        for t in [4, 11, 51] {
            let m = t + 4;
            for wrong in [[0, t], [1, t], [t - 1, t]] {
                let (secret, mut shares) = dealt(m, t, &mut r);
                for &i in &wrong {
                    corrupt(&mut shares[i], &mut r);
                }
                let is_secret = |s: &[u8; 32]| *s == secret;
                assert!(fallback_subsets(&shares, t, &is_secret).is_none());
                assert_eq!(*reconstruct_robust(&shares, t, is_secret).unwrap(), secret);
            }
        }
    }

    /// Errors confined to one chunk, or differing chunks in different shares, are still found
    /// by share: the error sets of the chunks are merged.
    #[test]
    fn errors_in_different_chunks_are_merged() {
        let mut r = rng(24);
        let (t, m) = (7, 15); // e = 4
        let (secret, mut shares) = dealt(m, t, &mut r);
        for (i, c) in [(0, 0), (3, 4), (6, 2), (14, 4)] {
            shares[i].y[c] = o_add(shares[i].y[c], 1);
        }
        assert_eq!(
            rs::locate_errors(&shares, t),
            Some(flags(m, &[0, 3, 6, 14]))
        );
        assert_eq!(
            *reconstruct_robust(&shares, t, |s| *s == secret).unwrap(),
            secret
        );
    }

    /// An owner who deals consistent shares of something other than the committed secret is
    /// caught: the shares decode with nothing to correct, and the check fails.
    #[test]
    fn consistent_shares_of_another_secret_fail_the_check() {
        let mut r = rng(25);
        let (secret, _) = dealt(1, 1, &mut r);
        let (_, shares) = dealt(12, 5, &mut r);
        assert_eq!(
            reconstruct_robust(&shares, 5, |s| *s == secret).unwrap_err(),
            ShamirError::CheckFailed { corrected: 0 }
        );
        // So does a check that rejects everything.
        assert_eq!(
            reconstruct_robust(&shares, 5, |_| false).unwrap_err(),
            ShamirError::CheckFailed { corrected: 0 }
        );
    }

    /// Values that decode to no valid secret (a chunk above 56 bits) fall through to the
    /// decoder, which finds the wrong share.
    #[test]
    fn malformed_secret_on_the_fast_path_is_decoded() {
        let mut r = rng(26);
        let (t, m) = (4, 9);
        let (secret, mut shares) = dealt(m, t, &mut r);
        let good = shares[2].clone();
        for delta in 1..MODULUS {
            shares[2].y[0] = o_add(good.y[0], delta);
            if reconstruct(&shares, t) == Err(ShamirError::MalformedSecret) {
                break;
            }
        }
        assert_eq!(
            reconstruct(&shares, t).unwrap_err(),
            ShamirError::MalformedSecret
        );
        assert_eq!(
            *reconstruct_robust(&shares, t, |s| *s == secret).unwrap(),
            secret
        );
    }

    #[test]
    fn robust_errors() {
        let mut r = rng(27);
        let (secret, shares) = dealt(8, 3, &mut r);
        let ok = |s: &[u8; 32]| *s == secret;
        assert_eq!(
            reconstruct_robust(&shares, 0, ok).unwrap_err(),
            ShamirError::ThresholdTooSmall
        );
        assert_eq!(
            reconstruct_robust(&shares[..2], 3, ok).unwrap_err(),
            ShamirError::NotEnoughShares { needed: 3, got: 2 }
        );
        assert_eq!(
            reconstruct_robust(&[], 1, ok).unwrap_err(),
            ShamirError::NotEnoughShares { needed: 1, got: 0 }
        );
        // Among the first t: found by the fast path.
        let mut zero = shares.clone();
        zero[1].x = 0;
        assert_eq!(
            reconstruct_robust(&zero, 3, ok).unwrap_err(),
            ShamirError::ZeroPoint
        );
        let mut big = shares.clone();
        big[0].y[3] = MODULUS;
        assert_eq!(
            reconstruct_robust(&big, 3, ok).unwrap_err(),
            ShamirError::Malformed
        );
        // After the first t: found once the fast path fails (here a wrong first share).
        let mut bad_first = shares.clone();
        bad_first[0].y[0] = o_add(bad_first[0].y[0], 1);
        let x4 = shares[4].x;
        for (i, edit) in [
            (
                6,
                Share {
                    x: 0,
                    y: shares[6].y,
                },
            ),
            (
                6,
                Share {
                    x: x4,
                    y: shares[6].y,
                },
            ),
            (
                7,
                Share {
                    x: shares[7].x,
                    y: [u64::MAX; CHUNKS],
                },
            ),
        ] {
            let mut bad = bad_first.clone();
            bad[i] = edit.clone();
            let want = if edit.x == 0 {
                ShamirError::ZeroPoint
            } else if edit.x == x4 {
                ShamirError::DuplicatePoint(x4)
            } else {
                ShamirError::Malformed
            };
            assert_eq!(reconstruct_robust(&bad, 3, ok).unwrap_err(), want);
            // With good first t shares they are ignored, as by `reconstruct`.
            let mut ignored = shares.clone();
            ignored[i] = edit;
            assert_eq!(*reconstruct_robust(&ignored, 3, ok).unwrap(), secret);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// Up to (m - t)/2 wrong shares anywhere, each wrong in any nonempty set of chunks,
        /// are located exactly and corrected.
        #[test]
        fn robust_corrects_random_errors(
            (xs, t, wrong) in (1usize..=12, 0usize..=10)
                .prop_flat_map(|(t, extra)| {
                    let m = t + extra;
                    (proptest::collection::btree_set(1u32..=u32::MAX, m), Just(t), 0..=extra / 2)
                })
                .prop_flat_map(|(xs, t, errors)| {
                    let m = xs.len();
                    (
                        Just(xs.into_iter().collect::<Vec<_>>()).prop_shuffle(),
                        Just(t),
                        proptest::sample::subsequence((0..m).collect::<Vec<_>>(), errors),
                    )
                }),
            secret in any::<[u8; 32]>(),
            seed in any::<u64>(),
        ) {
            let mut r = rng(seed);
            let mut shares = split(&secret, &xs, t, &mut r).unwrap();
            for &i in &wrong {
                corrupt(&mut shares[i], &mut r);
            }
            prop_assert_eq!(rs::locate_errors(&shares, t), Some(flags(xs.len(), &wrong)));
            prop_assert_eq!(*reconstruct_robust(&shares, t, |s| *s == secret).unwrap(), secret);
        }

        /// Any number of wrong shares: the decoder's answer, when it gives one, flags at most
        /// (m - t)/2 shares and the others lie on one polynomial of degree < t per chunk
        /// (checked with the oracle); the result is the secret or an error, never a panic.
        #[test]
        fn robust_never_misleads(
            (xs, t, wrong) in (1usize..=10, 0usize..=8)
                .prop_flat_map(|(t, extra)| {
                    let m = t + extra;
                    (proptest::collection::btree_set(1u32..=u32::MAX, m), Just(t), 0..=m)
                })
                .prop_flat_map(|(xs, t, errors)| {
                    let m = xs.len();
                    (
                        Just(xs.into_iter().collect::<Vec<_>>()).prop_shuffle(),
                        Just(t),
                        proptest::sample::subsequence((0..m).collect::<Vec<_>>(), errors),
                    )
                }),
            secret in any::<[u8; 32]>(),
            seed in any::<u64>(),
        ) {
            let mut r = rng(seed);
            let m = xs.len();
            let mut shares = split(&secret, &xs, t, &mut r).unwrap();
            for &i in &wrong {
                corrupt(&mut shares[i], &mut r);
            }
            if let Some(flagged) = rs::locate_errors(&shares, t) {
                prop_assert!(flagged.iter().filter(|&&f| f).count() <= (m - t) / 2);
                let kept: Vec<&Share> =
                    shares.iter().zip(&flagged).filter(|(_, f)| !**f).map(|(s, _)| s).collect();
                for c in 0..CHUNKS {
                    let basis: Vec<(u64, u64)> =
                        kept[..t].iter().map(|s| (s.x as u64, s.y[c])).collect();
                    for s in &kept[t..] {
                        prop_assert_eq!(o_interpolate(&basis, s.x as u64), s.y[c]);
                    }
                }
            }
            match reconstruct_robust(&shares, t, |s| *s == secret) {
                Ok(s) => prop_assert_eq!(*s, secret),
                Err(e) => prop_assert!(
                    matches!(e, ShamirError::Uncorrectable { .. } | ShamirError::CheckFailed { .. }),
                    "unexpected {:?}", e
                ),
            }
        }

        /// Arbitrary shares (zero, repeated and huge values, any threshold) never panic.
        #[test]
        fn robust_never_panics(
            shares in proptest::collection::vec(
                (prop_oneof![Just(0u32), 1u32..6, any::<u32>()], any::<[u64; CHUNKS]>()),
                0..12,
            ),
            t in 0usize..14,
            reduce in any::<bool>(),
        ) {
            let shares: Vec<Share> = shares
                .into_iter()
                .map(|(x, y)| Share { x, y: if reduce { y.map(|v| v % MODULUS) } else { y } })
                .collect();
            let _ = reconstruct_robust(&shares, t, |_| false);
            let _ = reconstruct_robust(&shares, t, |s| s[0] == 0);
        }
    }

    /// Timing of the decoder for t = 51, m = 100 (the bench has the same cases):
    /// `cargo test --release -p secagg-core --lib robust_timing -- --ignored --nocapture`.
    #[cfg(feature = "std")]
    #[test]
    #[ignore = "timing, run with --release"]
    fn robust_timing() {
        use std::time::Instant;
        let (t, m) = (51, 100);
        let mut r = rng(28);
        let (secret, shares) = dealt(m, t, &mut r);
        for errors in [0, 1, 10, 24] {
            let mut bad = shares.clone();
            // The first error in the first share, so the fast path fails.
            let mut wrong = positions(m - 1, errors.max(1) - 1, &mut r);
            wrong.iter_mut().for_each(|i| *i += 1);
            if errors > 0 {
                wrong.push(0);
            }
            for &i in &wrong {
                corrupt(&mut bad[i], &mut r);
            }
            let runs = 200;
            let start = Instant::now();
            for _ in 0..runs {
                let s = reconstruct_robust(core::hint::black_box(&bad), t, |s| *s == secret);
                assert_eq!(*s.unwrap(), secret);
            }
            let each = start.elapsed() / runs;
            std::println!("t={t} m={m} errors={errors}: {each:?} per reconstruction");
        }
        let refs = &shares[..t];
        let start = Instant::now();
        for _ in 0..200 {
            core::hint::black_box(reconstruct(core::hint::black_box(refs), t).unwrap());
        }
        std::println!("plain reconstruct t={t}: {:?}", start.elapsed() / 200);
    }

    // ---- Hygiene. ----

    #[test]
    fn debug_redacts_values() {
        let s = Share {
            x: 42,
            y: [0x1234_5678_9abc, 1111, 2222, MODULUS - 1, 98_765],
        };
        for text in [format!("{s:?}"), format!("{s:#?}")] {
            assert!(text.contains("42") && text.contains("<redacted>"), "{text}");
            for y in s.y {
                assert!(!text.contains(&format!("{y}")), "{text}");
                assert!(!text.contains(&format!("{y:x}")), "{text}");
            }
        }
    }

    #[test]
    fn zeroize_and_equality() {
        let a = Share {
            x: 3,
            y: [1, 2, 3, 4, 5],
        };
        let mut b = a.clone();
        assert_eq!(a, b);
        b.y[4] = 6;
        assert_ne!(a, b);
        b.zeroize();
        assert_eq!(
            b,
            Share {
                x: 0,
                y: [0; CHUNKS]
            }
        );
    }

    #[test]
    fn display_messages() {
        let all = [
            ShamirError::ThresholdTooSmall,
            ShamirError::ThresholdAboveShares {
                threshold: 5,
                shares: 3,
            },
            ShamirError::ZeroPoint,
            ShamirError::DuplicatePoint(7),
            ShamirError::NotEnoughShares { needed: 4, got: 2 },
            ShamirError::Malformed,
            ShamirError::MalformedSecret,
            ShamirError::PointMismatch {
                index: 1,
                expected: 2,
                got: 3,
            },
            ShamirError::Uncorrectable {
                shares: 9,
                threshold: 4,
            },
            ShamirError::CheckFailed { corrected: 2 },
        ];
        let texts: Vec<_> = all.iter().map(|e| format!("{e}")).collect();
        assert!(texts[1].contains('5') && texts[1].contains('3'));
        assert!(texts[3].contains('7'));
        assert!(texts[8].contains('9') && texts[8].contains('4'));
        assert!(texts[9].contains('2'));
        let distinct: BTreeSet<_> = texts.iter().collect();
        assert_eq!(distinct.len(), all.len());
        assert!(texts.iter().all(|t| t.len() > 10));
    }
}
