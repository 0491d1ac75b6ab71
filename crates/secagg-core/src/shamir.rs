//! TEMPORARY STUB (replaced by the real module).
#![allow(clippy::needless_range_loop)]
use alloc::vec::Vec;
pub const SECRET_LEN: usize = 32;
pub const CHUNKS: usize = 5;
pub const SHARE_LEN: usize = 4 + 8 * CHUNKS;
pub const MODULUS: u64 = (1 << 61) - 1;
#[derive(Clone, PartialEq, Eq, zeroize::Zeroize, zeroize::ZeroizeOnDrop, Debug)]
pub struct Share {
    pub x: u32,
    pub y: [u64; CHUNKS],
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShamirError {
    Malformed,
    NotEnough,
}
fn mul(a: u64, b: u64) -> u64 {
    ((a as u128 * b as u128) % MODULUS as u128) as u64
}
fn add(a: u64, b: u64) -> u64 {
    (a + b) % MODULUS
}
fn sub(a: u64, b: u64) -> u64 {
    (a + MODULUS - b) % MODULUS
}
fn pow(mut a: u64, mut e: u64) -> u64 {
    let mut r = 1;
    while e > 0 {
        if e & 1 == 1 {
            r = mul(r, a);
        }
        a = mul(a, a);
        e >>= 1;
    }
    r
}
impl Share {
    pub fn to_bytes(&self) -> [u8; SHARE_LEN] {
        let mut o = [0u8; SHARE_LEN];
        o[..4].copy_from_slice(&self.x.to_le_bytes());
        for i in 0..CHUNKS {
            o[4 + 8 * i..12 + 8 * i].copy_from_slice(&self.y[i].to_le_bytes());
        }
        o
    }
    pub fn from_bytes(b: &[u8]) -> Result<Share, ShamirError> {
        if b.len() != SHARE_LEN {
            return Err(ShamirError::Malformed);
        }
        let x = u32::from_le_bytes(b[..4].try_into().map_err(|_| ShamirError::Malformed)?);
        let mut y = [0u64; CHUNKS];
        for i in 0..CHUNKS {
            y[i] = u64::from_le_bytes(
                b[4 + 8 * i..12 + 8 * i]
                    .try_into()
                    .map_err(|_| ShamirError::Malformed)?,
            );
            if y[i] >= MODULUS {
                return Err(ShamirError::Malformed);
            }
        }
        if x == 0 {
            return Err(ShamirError::Malformed);
        }
        Ok(Share { x, y })
    }
}
pub fn split<R: rand_core::CryptoRng + ?Sized>(
    secret: &[u8; 32],
    xs: &[u32],
    t: usize,
    rng: &mut R,
) -> Result<Vec<Share>, ShamirError> {
    let mut out = Vec::new();
    let mut coefs = [[0u64; CHUNKS]; 0].to_vec();
    let mut c0 = [0u64; CHUNKS];
    for i in 0..CHUNKS {
        let mut b = [0u8; 8];
        let end = (7 * i + 7).min(32);
        b[..end - 7 * i].copy_from_slice(&secret[7 * i..end]);
        c0[i] = u64::from_le_bytes(b);
    }
    coefs.push(c0);
    for _ in 1..t {
        let mut c = [0u64; CHUNKS];
        for v in c.iter_mut() {
            *v = rng.next_u64() % MODULUS;
        }
        coefs.push(c);
    }
    for &x in xs {
        let mut y = [0u64; CHUNKS];
        for i in 0..CHUNKS {
            let mut acc = 0;
            for c in coefs.iter().rev() {
                acc = add(mul(acc, x as u64), c[i]);
            }
            y[i] = acc;
        }
        out.push(Share { x, y });
    }
    Ok(out)
}
pub fn reconstruct(
    shares: &[Share],
    t: usize,
) -> Result<zeroize::Zeroizing<[u8; 32]>, ShamirError> {
    if shares.len() < t {
        return Err(ShamirError::NotEnough);
    }
    let s = &shares[..t];
    let mut secret = [0u64; CHUNKS];
    for (j, sj) in s.iter().enumerate() {
        let mut num = 1;
        let mut den = 1;
        for (m, sm) in s.iter().enumerate() {
            if m != j {
                num = mul(num, sm.x as u64);
                den = mul(den, sub(sm.x as u64, sj.x as u64));
            }
        }
        let l = mul(num, pow(den, MODULUS - 2));
        for i in 0..CHUNKS {
            secret[i] = add(secret[i], mul(l, sj.y[i]));
        }
    }
    let mut out = zeroize::Zeroizing::new([0u8; 32]);
    for i in 0..CHUNKS {
        if secret[i] >> 56 != 0 {
            return Err(ShamirError::Malformed);
        }
        let b = secret[i].to_le_bytes();
        let end = (7 * i + 7).min(32);
        out[7 * i..end].copy_from_slice(&b[..end - 7 * i]);
    }
    Ok(out)
}
