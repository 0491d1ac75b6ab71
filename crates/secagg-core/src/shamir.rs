//! Shamir secret sharing of 32-byte secrets over GF(p), p = 2^61 - 1.
//!
//! A secret is cut into five chunks of at most 7 bytes (56 bits < p), each shared with its own
//! random polynomial of degree t - 1 evaluated at the holders' ids. GF(2^61 - 1) allows ids up
//! to 2^32 (GF(256) schemes stop at 255 holders) and reduces with shifts and adds. Arithmetic on
//! secret values is constant-time: no branch or index depends on them; the evaluation points are
//! public. Temporaries holding secret-derived values are zeroized.

use alloc::vec::Vec;

use rand_core::CryptoRng;
use zeroize::{Zeroize, Zeroizing};

/// Secrets are 32-byte keys and seeds.
pub const SECRET_LEN: usize = 32;
/// Field elements per secret.
pub const CHUNKS: usize = 5;
/// Bytes of a secret per chunk.
const CHUNK_BYTES: usize = 7;
/// Encoded share: x as u32 LE, then each y as u64 LE.
pub const SHARE_LEN: usize = 4 + 8 * CHUNKS;
/// The field's prime, 2^61 - 1.
pub const MODULUS: u64 = (1 << 61) - 1;

/// One holder's share: the evaluation point (its id, never 0) and the polynomials' values.
#[derive(Clone, PartialEq, Eq, Zeroize, zeroize::ZeroizeOnDrop)]
pub struct Share {
    /// Evaluation point.
    pub x: u32,
    /// Values of the five chunk polynomials at x.
    pub y: [u64; CHUNKS],
}

impl core::fmt::Debug for Share {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Share")
            .field("x", &self.x)
            .field("y", &"<redacted>")
            .finish()
    }
}

/// Why sharing or reconstruction failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShamirError {
    /// The threshold is 0.
    ThresholdTooSmall,
    /// More shares are needed than there are holders.
    ThresholdAboveShares {
        /// The threshold.
        threshold: usize,
        /// The holders.
        shares: usize,
    },
    /// An evaluation point is 0 (that is where the secret sits).
    ZeroPoint,
    /// Two shares have the same evaluation point.
    DuplicatePoint(u32),
    /// Fewer shares than the threshold.
    NotEnoughShares {
        /// Needed.
        needed: usize,
        /// Given.
        got: usize,
    },
    /// A share's encoding is invalid.
    Malformed,
    /// The reconstructed value is not a valid secret: the shares were inconsistent.
    MalformedSecret,
}

impl core::fmt::Display for ShamirError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ShamirError::ThresholdTooSmall => write!(f, "the threshold must be at least 1"),
            ShamirError::ThresholdAboveShares { threshold, shares } => {
                write!(f, "threshold {threshold} exceeds the {shares} holders")
            }
            ShamirError::ZeroPoint => write!(f, "evaluation point 0 is reserved for the secret"),
            ShamirError::DuplicatePoint(x) => write!(f, "evaluation point {x} appears twice"),
            ShamirError::NotEnoughShares { needed, got } => {
                write!(f, "{got} shares given, {needed} needed")
            }
            ShamirError::Malformed => write!(f, "malformed share"),
            ShamirError::MalformedSecret => {
                write!(
                    f,
                    "the shares are inconsistent (reconstructed value is not a secret)"
                )
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ShamirError {}

impl Share {
    /// Encodes the share.
    pub fn to_bytes(&self) -> [u8; SHARE_LEN] {
        let mut out = [0u8; SHARE_LEN];
        out[..4].copy_from_slice(&self.x.to_le_bytes());
        for (o, y) in out[4..].chunks_exact_mut(8).zip(&self.y) {
            o.copy_from_slice(&y.to_le_bytes());
        }
        out
    }

    /// Decodes a share, rejecting a wrong length, x = 0 and values outside the field.
    pub fn from_bytes(bytes: &[u8]) -> Result<Share, ShamirError> {
        let bytes: &[u8; SHARE_LEN] = bytes.try_into().map_err(|_| ShamirError::Malformed)?;
        let x = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        if x == 0 {
            return Err(ShamirError::ZeroPoint);
        }
        let mut y = [0u64; CHUNKS];
        for (v, b) in y.iter_mut().zip(bytes[4..].chunks_exact(8)) {
            let mut w = [0u8; 8];
            w.copy_from_slice(b);
            *v = u64::from_le_bytes(w);
        }
        if y.iter().any(|v| *v >= MODULUS) {
            y.zeroize();
            return Err(ShamirError::Malformed);
        }
        Ok(Share { x, y })
    }
}

/// r if r < p, else r - p, without branching on r (r < 2p).
#[inline(always)]
fn reduce_once(r: u64) -> u64 {
    let t = r.wrapping_sub(MODULUS);
    // All ones when t did not wrap (r ≥ p), i.e. when its top bit is clear.
    let keep_t = ((t >> 63) ^ 1).wrapping_neg();
    (t & keep_t) | (r & !keep_t)
}

#[inline(always)]
fn add(a: u64, b: u64) -> u64 {
    reduce_once(a + b)
}

#[inline(always)]
fn sub(a: u64, b: u64) -> u64 {
    reduce_once(a + MODULUS - b)
}

#[inline(always)]
fn mul(a: u64, b: u64) -> u64 {
    let p = a as u128 * b as u128;
    // 2^61 ≡ 1 (mod p): fold the high bits onto the low ones.
    let lo = (p as u64) & MODULUS;
    let hi = (p >> 61) as u64;
    reduce_once(lo + hi)
}

/// a^(p-2) = a^-1 for a ≠ 0; square-and-multiply over the public exponent.
fn inv(a: u64) -> u64 {
    let mut result = 1u64;
    let mut base = a;
    let mut e = MODULUS - 2;
    while e > 0 {
        if e & 1 == 1 {
            result = mul(result, base);
        }
        base = mul(base, base);
        e >>= 1;
    }
    result
}

fn random_element<R: CryptoRng + ?Sized>(rng: &mut R) -> u64 {
    loop {
        // Rejection depends only on fresh random bits, never on the secret.
        let v = rng.next_u64() >> 3;
        if v < MODULUS {
            return v;
        }
    }
}

fn chunks_of(secret: &[u8; SECRET_LEN]) -> Zeroizing<[u64; CHUNKS]> {
    let mut out = Zeroizing::new([0u64; CHUNKS]);
    for (c, bytes) in out.iter_mut().zip(secret.chunks(CHUNK_BYTES)) {
        let mut w = Zeroizing::new([0u8; 8]);
        w[..bytes.len()].copy_from_slice(bytes);
        *c = u64::from_le_bytes(*w);
    }
    out
}

fn check_points(xs: impl Iterator<Item = u32> + Clone) -> Result<(), ShamirError> {
    for (i, x) in xs.clone().enumerate() {
        if x == 0 {
            return Err(ShamirError::ZeroPoint);
        }
        if xs.clone().take(i).any(|y| y == x) {
            return Err(ShamirError::DuplicatePoint(x));
        }
    }
    Ok(())
}

/// Splits `secret` into one share per evaluation point in `xs` (distinct, nonzero), any
/// `threshold` of which reconstruct it and fewer reveal nothing.
pub fn split<R: CryptoRng + ?Sized>(
    secret: &[u8; SECRET_LEN],
    xs: &[u32],
    threshold: usize,
    rng: &mut R,
) -> Result<Vec<Share>, ShamirError> {
    if threshold == 0 {
        return Err(ShamirError::ThresholdTooSmall);
    }
    if threshold > xs.len() {
        return Err(ShamirError::ThresholdAboveShares {
            threshold,
            shares: xs.len(),
        });
    }
    check_points(xs.iter().copied())?;
    // coeffs[i][c]: coefficient i of chunk c's polynomial; coefficient 0 is the secret.
    let mut coeffs: Zeroizing<Vec<[u64; CHUNKS]>> = Zeroizing::new(Vec::with_capacity(threshold));
    coeffs.push(*chunks_of(secret));
    for _ in 1..threshold {
        let mut c = [0u64; CHUNKS];
        c.iter_mut().for_each(|v| *v = random_element(rng));
        coeffs.push(c);
    }
    let shares = xs
        .iter()
        .map(|&x| {
            let xf = x as u64;
            let mut y = [0u64; CHUNKS];
            // Horner, highest coefficient first.
            for c in coeffs.iter().rev() {
                for (acc, ci) in y.iter_mut().zip(c) {
                    *acc = add(mul(*acc, xf), *ci);
                }
            }
            Share { x, y }
        })
        .collect();
    Ok(shares)
}

/// Reconstructs from exactly the first `threshold` shares (extra shares are ignored).
pub fn reconstruct(
    shares: &[Share],
    threshold: usize,
) -> Result<Zeroizing<[u8; SECRET_LEN]>, ShamirError> {
    if threshold == 0 {
        return Err(ShamirError::ThresholdTooSmall);
    }
    if shares.len() < threshold {
        return Err(ShamirError::NotEnoughShares {
            needed: threshold,
            got: shares.len(),
        });
    }
    let used = &shares[..threshold];
    let xs: Vec<u32> = used.iter().map(|s| s.x).collect();
    let refs: Vec<&Share> = used.iter().collect();
    Lagrange::at_zero(&xs)?.reconstruct(&refs)
}

/// Lagrange coefficients at 0 for a fixed set of points, so that a server reconstructing many
/// secrets from the same holders pays for the inversion once.
#[derive(Debug, Clone)]
pub struct Lagrange {
    xs: Vec<u32>,
    coeffs: Vec<u64>,
}

impl Lagrange {
    /// Coefficients λ_j = Π_{m≠j} x_m / (x_m - x_j) for distinct nonzero points.
    pub fn at_zero(xs: &[u32]) -> Result<Lagrange, ShamirError> {
        if xs.is_empty() {
            return Err(ShamirError::ThresholdTooSmall);
        }
        check_points(xs.iter().copied())?;
        let mut nums = Vec::with_capacity(xs.len());
        let mut dens = Vec::with_capacity(xs.len());
        for (j, &xj) in xs.iter().enumerate() {
            let (mut num, mut den) = (1u64, 1u64);
            for (m, &xm) in xs.iter().enumerate() {
                if m != j {
                    num = mul(num, xm as u64);
                    den = mul(den, sub(xm as u64, xj as u64));
                }
            }
            nums.push(num);
            dens.push(den);
        }
        // Batch inversion: one field inversion for all denominators.
        let mut prefix = Vec::with_capacity(dens.len());
        let mut acc = 1u64;
        for d in &dens {
            prefix.push(acc);
            acc = mul(acc, *d);
        }
        let mut inv_acc = inv(acc);
        let mut coeffs = alloc::vec![0u64; xs.len()];
        for j in (0..dens.len()).rev() {
            coeffs[j] = mul(nums[j], mul(inv_acc, prefix[j]));
            inv_acc = mul(inv_acc, dens[j]);
        }
        Ok(Lagrange {
            xs: xs.to_vec(),
            coeffs,
        })
    }

    /// The evaluation points, in order.
    pub fn points(&self) -> &[u32] {
        &self.xs
    }

    /// Reconstructs from shares given in the order of [`Lagrange::points`].
    pub fn reconstruct(
        &self,
        shares: &[&Share],
    ) -> Result<Zeroizing<[u8; SECRET_LEN]>, ShamirError> {
        if shares.len() != self.xs.len() {
            return Err(ShamirError::NotEnoughShares {
                needed: self.xs.len(),
                got: shares.len(),
            });
        }
        if let Some(s) = shares.iter().zip(&self.xs).find(|(s, x)| s.x != **x) {
            return Err(ShamirError::DuplicatePoint(s.0.x));
        }
        let mut acc = Zeroizing::new([0u64; CHUNKS]);
        for (s, l) in shares.iter().zip(&self.coeffs) {
            for (a, y) in acc.iter_mut().zip(&s.y) {
                *a = add(*a, mul(*l, *y));
            }
        }
        // Every chunk must fit its bytes; any excess means inconsistent shares. Check all
        // chunks before deciding so the time does not depend on which chunk is bad.
        let mut bad = 0u64;
        for (i, c) in acc.iter().enumerate() {
            let len = CHUNK_BYTES.min(SECRET_LEN - i * CHUNK_BYTES);
            bad |= c >> (8 * len);
        }
        if bad != 0 {
            return Err(ShamirError::MalformedSecret);
        }
        let mut out = Zeroizing::new([0u8; SECRET_LEN]);
        for (i, c) in acc.iter().enumerate() {
            let start = i * CHUNK_BYTES;
            let len = CHUNK_BYTES.min(SECRET_LEN - start);
            out[start..start + len].copy_from_slice(&c.to_le_bytes()[..len]);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::vec;
    use proptest::prelude::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::{Rng, SeedableRng};

    // Independent oracle: plain modular arithmetic on u128.
    const P: u128 = MODULUS as u128;
    fn o_mul(a: u64, b: u64) -> u64 {
        (a as u128 * b as u128 % P) as u64
    }
    fn o_pow(a: u64, mut e: u64) -> u64 {
        let (mut r, mut b) = (1u64, a);
        while e > 0 {
            if e & 1 == 1 {
                r = o_mul(r, b);
            }
            b = o_mul(b, b);
            e >>= 1;
        }
        r
    }

    #[test]
    fn field_ops_match_the_oracle() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let mut vals = vec![0, 1, 2, MODULUS - 1, MODULUS - 2, 1 << 60];
        vals.extend((0..200).map(|_| rng.next_u64() % MODULUS));
        for &a in &vals {
            for &b in &vals[..20] {
                assert_eq!(mul(a, b), o_mul(a, b));
                assert_eq!(add(a, b) as u128, (a as u128 + b as u128) % P);
                assert_eq!(sub(a, b) as u128, (a as u128 + P - b as u128) % P);
            }
            if a != 0 {
                assert_eq!(inv(a), o_pow(a, MODULUS - 2));
                assert_eq!(mul(a, inv(a)), 1);
            }
        }
    }

    fn secret(seed: u64) -> [u8; 32] {
        let mut s = [0u8; 32];
        ChaCha20Rng::seed_from_u64(seed).fill_bytes(&mut s);
        s
    }

    proptest! {
        #[test]
        fn any_t_subset_reconstructs(n in 1usize..40, t_frac in 0.0f64..1.0, seed in any::<u64>(), pick in any::<u64>()) {
            let t = 1 + ((n - 1) as f64 * t_frac) as usize;
            let s = secret(seed);
            let xs: Vec<u32> = (1..=n as u32).map(|i| i * 3 + 1).collect();
            let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 1);
            let mut shares = split(&s, &xs, t, &mut rng).unwrap();
            // A random t-subset in random order.
            let mut prng = ChaCha20Rng::seed_from_u64(pick);
            for i in (1..shares.len()).rev() {
                let j = (prng.next_u64() % (i as u64 + 1)) as usize;
                shares.swap(i, j);
            }
            prop_assert_eq!(*reconstruct(&shares, t).unwrap(), s);
            let xs_t: Vec<u32> = shares[..t].iter().map(|s| s.x).collect();
            let refs: Vec<&Share> = shares[..t].iter().collect();
            prop_assert_eq!(*Lagrange::at_zero(&xs_t).unwrap().reconstruct(&refs).unwrap(), s);
        }

        #[test]
        fn from_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..60)) {
            let _ = Share::from_bytes(&bytes);
        }
    }

    #[test]
    fn more_than_255_holders() {
        let s = secret(7);
        let xs: Vec<u32> = (1..=300).collect();
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let shares = split(&s, &xs, 151, &mut rng).unwrap();
        assert_eq!(*reconstruct(&shares[149..], 151).unwrap(), s);
    }

    /// t - 1 shares are consistent with every secret: for another secret there is a polynomial
    /// of degree < t through the t - 1 shares and the other secret's chunks at 0.
    #[test]
    fn fewer_than_t_shares_fit_any_secret() {
        let (s, other) = (secret(1), secret(2));
        let t = 5;
        let xs: Vec<u32> = (1..=8).collect();
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let shares = split(&s, &xs, t, &mut rng).unwrap();
        let known = &shares[..t - 1];
        // Interpolate through (0, other) and the known shares, then evaluate at the remaining
        // points to build a full, consistent share set for `other`.
        let other_chunks = chunks_of(&other);
        let pts: Vec<u64> = core::iter::once(0)
            .chain(known.iter().map(|s| s.x as u64))
            .collect();
        let eval = |c: usize, x: u64| -> u64 {
            let vals: Vec<u64> = core::iter::once(other_chunks[c])
                .chain(known.iter().map(|s| s.y[c]))
                .collect();
            let mut acc = 0;
            for (j, &xj) in pts.iter().enumerate() {
                let (mut num, mut den) = (1, 1);
                for (m, &xm) in pts.iter().enumerate() {
                    if m != j {
                        num = o_mul(num, (x + MODULUS - xm) % MODULUS);
                        den = o_mul(den, (xj + MODULUS - xm) % MODULUS);
                    }
                }
                acc = (acc + o_mul(vals[j], o_mul(num, o_pow(den, MODULUS - 2)))) % MODULUS;
            }
            acc
        };
        let forged = Share {
            x: 8,
            y: core::array::from_fn(|c| eval(c, 8)),
        };
        let mut set: Vec<Share> = known.to_vec();
        set.push(forged);
        assert_eq!(*reconstruct(&set, t).unwrap(), other);
        // The real fifth share gives the real secret.
        let mut real = known.to_vec();
        real.push(shares[7].clone());
        assert_eq!(*reconstruct(&real, t).unwrap(), s);
    }

    #[test]
    fn errors_and_corruption() {
        let s = secret(4);
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        assert_eq!(
            split(&s, &[1, 2], 0, &mut rng).unwrap_err(),
            ShamirError::ThresholdTooSmall
        );
        assert!(matches!(
            split(&s, &[1, 2], 3, &mut rng),
            Err(ShamirError::ThresholdAboveShares { .. })
        ));
        assert_eq!(
            split(&s, &[1, 0], 2, &mut rng).unwrap_err(),
            ShamirError::ZeroPoint
        );
        assert_eq!(
            split(&s, &[4, 4], 2, &mut rng).unwrap_err(),
            ShamirError::DuplicatePoint(4)
        );
        let shares = split(&s, &[1, 2, 3], 2, &mut rng).unwrap();
        assert!(matches!(
            reconstruct(&shares[..1], 2),
            Err(ShamirError::NotEnoughShares { needed: 2, got: 1 })
        ));
        let dup = [shares[0].clone(), shares[0].clone()];
        assert_eq!(
            reconstruct(&dup, 2).unwrap_err(),
            ShamirError::DuplicatePoint(1)
        );
        // A corrupted share yields an error or a different secret, never a panic.
        let mut bad = shares.clone();
        bad[0].y[2] = add(bad[0].y[2], 1);
        match reconstruct(&bad, 2) {
            Ok(v) => assert_ne!(*v, s),
            Err(e) => assert_eq!(e, ShamirError::MalformedSecret),
        }
        // Encoding.
        let b = shares[1].to_bytes();
        assert_eq!(Share::from_bytes(&b).unwrap(), shares[1]);
        assert_eq!(
            Share::from_bytes(&b[..10]).unwrap_err(),
            ShamirError::Malformed
        );
        let mut zero = b;
        zero[..4].copy_from_slice(&[0; 4]);
        assert_eq!(
            Share::from_bytes(&zero).unwrap_err(),
            ShamirError::ZeroPoint
        );
        let mut big = b;
        big[4..12].copy_from_slice(&MODULUS.to_le_bytes());
        assert_eq!(Share::from_bytes(&big).unwrap_err(), ShamirError::Malformed);
        let l = Lagrange::at_zero(&[1, 2]).unwrap();
        assert_eq!(l.points(), &[1, 2]);
        assert!(l.reconstruct(&[&shares[1], &shares[0]]).is_err());
    }

    #[test]
    fn debug_hides_values() {
        let s = Share {
            x: 3,
            y: [123_456_789; CHUNKS],
        };
        let d = format!("{s:?}");
        assert!(d.contains("redacted") && !d.contains("123456789"), "{d}");
    }
}
