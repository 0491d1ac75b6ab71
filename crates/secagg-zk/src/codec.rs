//! Proof encodings of validated rounds with explicit size limits (arguments.md §E;
//! VALIDATION.md §15, §21.1 D13). Every decoder takes untrusted bytes and the statement's
//! public parameters, checks the length against [`MAX_NORM_PROOF_LEN`] and then against the
//! exact length the parameters imply **before** parsing or allocating anything of a
//! bytes-controlled size, and returns a typed [`Error`]; none panics on any input.
//!
//! Norm proof (`MaskedInput.proof`):
//!
//! | bytes | field |
//! |---|---|
//! | 1 | version (3) |
//! | 32 × 3 | C_u, M_u, V_s |
//! | 32 | V_w (only when the statement has a weight coordinate) |
//! | 128 × w | z, signed little-endian, w = [`GhlParams::z_width`](crate::ghl::GhlParams::z_width) |
//! | 32 × (2·log₂ N_pad + 5) | the zk-WIP ([`crate::wip::WipProof::to_bytes`]) |
//! | 577 or 705 | tari's range proof (one value, or four with a weight) |
//!
//! Binding proof (in `ValidationResponse`, next to O_u and the P_uv, which the round encodes):
//!
//! | bytes | field |
//! |---|---|
//! | 1 | version (3) |
//! | 32 | W_u |
//! | 128 × w′ | z′, w′ the width for M_ω |
//! | 32 × (2·log₂ N′_pad + 3) | the linear proof ([`crate::linear::LinearProof::to_bytes`]) |
//!
//! The norm proof's functions need the `std` feature (tari's range proof); the binding proof's
//! do not.

use alloc::vec::Vec;

use crate::bind::{BindParams, BindProof};
use crate::fold::Words;
use crate::ghl;
use crate::linear::{self, LinearProof};
#[cfg(feature = "std")]
use crate::norm::{NormParams, NormProof};
#[cfg(feature = "std")]
use crate::range::{self, RangeProof};
#[cfg(feature = "std")]
use crate::wip::{self, WipProof};
use crate::{Error, VERSION};

/// Largest binding proof within the limits of §5.3 (N′_pad = 2^21, M_ω ≤ 2^41:
/// 1 + 32 + 128·13 + 32·(2·21 + 3) = 3,137 bytes), rounded up.
pub const MAX_BIND_PROOF_LEN: usize = 4096;

/// The exact length of a binding proof for `params`.
pub fn bind_proof_len(params: &BindParams) -> Result<usize, Error> {
    Ok(1 + POINT + ghl::ROWS * params.ghl().z_width() + linear::proof_len(params.n_prime_pad())?)
}

/// Encodes a binding proof.
pub fn encode_bind_proof(params: &BindParams, proof: &BindProof) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAX_BIND_PROOF_LEN);
    out.push(VERSION);
    out.extend_from_slice(proof.w_u.compress().as_bytes());
    out.extend_from_slice(&ghl::encode(params.ghl(), &proof.z));
    out.extend_from_slice(&proof.linear.to_bytes());
    out
}

/// Decodes untrusted binding-proof bytes for the statement `params`.
pub fn decode_bind_proof(params: &BindParams, bytes: &[u8]) -> Result<BindProof, Error> {
    let rest = check_frame(
        bytes,
        MAX_BIND_PROOF_LEN,
        bind_proof_len(params)?,
        "bind proof bytes",
    )?;
    let (w_bytes, rest) = rest.split_at(POINT);
    let w_u = Words::new(w_bytes).point(0)?;
    let (z_bytes, linear_bytes) = rest.split_at(ghl::ROWS * params.ghl().z_width());
    let z = ghl::decode(params.ghl(), z_bytes)?;
    let linear = LinearProof::from_bytes(linear_bytes, params.n_prime_pad())?;
    Ok(BindProof { w_u, z, linear })
}

/// Checks the limit, then the exact length, then the version byte; returns the bytes after it.
fn check_frame<'a>(
    bytes: &'a [u8],
    max: usize,
    expected: usize,
    what: &'static str,
) -> Result<&'a [u8], Error> {
    if bytes.len() > max {
        return Err(Error::TooLarge {
            what,
            max: max as u64,
            got: bytes.len() as u64,
        });
    }
    if bytes.len() != expected {
        return Err(Error::ProofLength {
            expected,
            got: bytes.len(),
        });
    }
    match bytes.split_first() {
        Some((&VERSION, rest)) => Ok(rest),
        Some((&got, _)) => Err(Error::Version {
            expected: VERSION,
            got,
        }),
        None => Err(Error::ProofLength { expected, got: 0 }),
    }
}

/// Largest norm proof any statement within the limits of §5.3 produces (d = 2^20 with a weight:
/// 1 + 4·32 + 128·13 + 32·(2·21 + 5) + 705 = 4,002 bytes), rounded up. A decoder refuses
/// anything longer before looking at it.
pub const MAX_NORM_PROOF_LEN: usize = 4096;

const POINT: usize = 32;

/// The exact length of a norm proof for `params`.
#[cfg(feature = "std")]
pub fn norm_proof_len(params: &NormParams) -> Result<usize, Error> {
    let weighted = params.weight_max().is_some();
    let points = if weighted { 4 } else { 3 };
    Ok(1 + POINT * points
        + ghl::ROWS * params.ghl().z_width()
        + wip::proof_len(params.n_pad())?
        + range::proof_len(weighted))
}

/// Encodes a norm proof (D13).
#[cfg(feature = "std")]
pub fn encode_norm_proof(params: &NormParams, proof: &NormProof) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAX_NORM_PROOF_LEN);
    out.push(VERSION);
    for p in [
        Some(&proof.c_u),
        Some(&proof.m_u),
        Some(&proof.v_s),
        proof.v_w.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        out.extend_from_slice(p.compress().as_bytes());
    }
    out.extend_from_slice(&ghl::encode(params.ghl(), &proof.z));
    out.extend_from_slice(&proof.wip.to_bytes());
    out.extend_from_slice(&proof.range.to_bytes());
    out
}

/// Decodes untrusted norm-proof bytes for the statement `params`.
#[cfg(feature = "std")]
pub fn decode_norm_proof(params: &NormParams, bytes: &[u8]) -> Result<NormProof, Error> {
    let rest = check_frame(
        bytes,
        MAX_NORM_PROOF_LEN,
        norm_proof_len(params)?,
        "norm proof bytes",
    )?;
    let weighted = params.weight_max().is_some();
    let n_points = if weighted { 4 } else { 3 };
    let (point_bytes, rest) = rest.split_at(POINT * n_points);
    let words = Words::new(point_bytes);
    let c_u = words.point(0)?;
    let m_u = words.point(1)?;
    let v_s = words.point(2)?;
    let v_w = if weighted {
        Some(words.point(3)?)
    } else {
        None
    };
    let (z_bytes, rest) = rest.split_at(ghl::ROWS * params.ghl().z_width());
    let z = ghl::decode(params.ghl(), z_bytes)?;
    let (wip_bytes, range_bytes) = rest.split_at(wip::proof_len(params.n_pad())?);
    let wip = WipProof::from_bytes(wip_bytes, params.n_pad())?;
    let range = RangeProof::from_bytes(range_bytes, weighted)?;
    Ok(NormProof {
        c_u,
        m_u,
        v_s,
        v_w,
        z,
        wip,
        range,
    })
}

#[cfg(test)]
#[cfg(feature = "std")]
mod tests {
    use super::*;
    use crate::norm::{self, NormContext, NormWitness};
    use crate::{GeneratorSizes, Generators};
    use curve25519_dalek::scalar::Scalar;
    use rand_chacha::ChaCha20Rng;
    use rand_core::{Rng, SeedableRng};

    fn sample(weight: bool) -> (NormParams, Vec<u8>) {
        let gens = Generators::shared(GeneratorSizes {
            n_pad: 256,
            projections: 0,
            lpad: 0,
        })
        .unwrap();
        let params = NormParams::new(4, 100, weight.then_some(5)).unwrap();
        let ctx = NormContext {
            session: [0; 32],
            client: 1,
            upload_hash: [0; 32],
        };
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let w = NormWitness::new(alloc::vec![3, -4, 1, 2], Scalar::ONE);
        let proof = norm::prove(&gens, &params, &ctx, &w, &mut rng).unwrap();
        (params, encode_norm_proof(&params, &proof))
    }

    #[test]
    fn max_len_covers_the_largest_statement() {
        let largest = NormParams::new(norm::MAX_D, norm::MAX_BOUND_SQ, Some(1)).unwrap();
        let len = norm_proof_len(&largest).unwrap();
        assert!(len <= MAX_NORM_PROOF_LEN, "{len}");
        assert_eq!(len, 4002);
        // The sizes VALIDATION.md §7.1 quotes: 577 B and 705 B range proofs.
        assert_eq!(range::proof_len(false), 577);
        assert_eq!(range::proof_len(true), 705);
    }

    #[test]
    fn truncated_oversized_and_garbage_are_typed_errors() {
        for weight in [false, true] {
            let (params, bytes) = sample(weight);
            assert!(decode_norm_proof(&params, &bytes).is_ok());
            for cut in [0, 1, 33, bytes.len() / 2, bytes.len() - 1] {
                assert!(matches!(
                    decode_norm_proof(&params, &bytes[..cut]),
                    Err(Error::ProofLength { .. })
                ));
            }
            let mut long = bytes.clone();
            long.push(0);
            assert!(matches!(
                decode_norm_proof(&params, &long),
                Err(Error::ProofLength { .. })
            ));
            let huge = alloc::vec![0u8; MAX_NORM_PROOF_LEN + 1];
            assert!(matches!(
                decode_norm_proof(&params, &huge),
                Err(Error::TooLarge { .. })
            ));
            let mut b = bytes.clone();
            b[0] = 2;
            assert_eq!(
                decode_norm_proof(&params, &b),
                Err(Error::Version {
                    expected: 3,
                    got: 2
                })
            );
            // C_u not a point (0xff… never decompresses).
            let mut b = bytes.clone();
            b[1..33].fill(0xff);
            assert_eq!(
                decode_norm_proof(&params, &b),
                Err(Error::InvalidPoint { index: 0 })
            );
            // z entry beyond Z_max.
            let n_points = if weight { 4 } else { 3 };
            let z_at = 1 + 32 * n_points;
            let width = params.ghl().z_width();
            let mut b = bytes.clone();
            b[z_at..z_at + width].fill(0x7f);
            b[z_at + width - 1] = 0x3f;
            assert!(matches!(
                decode_norm_proof(&params, &b),
                Err(Error::GhlBound { .. })
            ));
            // The WIP's last scalar not canonical.
            let wip_end = z_at + 128 * width + wip::proof_len(params.n_pad()).unwrap();
            let mut b = bytes.clone();
            b[wip_end - 32..wip_end].fill(0xff);
            assert_eq!(
                decode_norm_proof(&params, &b),
                Err(Error::NonCanonicalScalar { index: 2 })
            );
            // Random garbage of every length up to past the limit, and random garbage of the
            // right length: errors, never a panic.
            let mut rng = ChaCha20Rng::seed_from_u64(weight as u64);
            for len in (0..MAX_NORM_PROOF_LEN + 64)
                .step_by(61)
                .chain([bytes.len()])
            {
                let mut g = alloc::vec![0u8; len];
                rng.fill_bytes(&mut g);
                assert!(decode_norm_proof(&params, &g).is_err());
            }
        }
    }
}

#[cfg(test)]
mod bind_tests {
    use super::*;
    use crate::Generators;
    use crate::bind::{self, BindContext, BindStatement, BindWitness};
    use curve25519_dalek::ristretto::RistrettoPoint;
    use curve25519_dalek::scalar::Scalar;
    use curve25519_dalek::traits::Identity;
    use rand_chacha::ChaCha20Rng;
    use rand_core::{Rng, SeedableRng};

    /// A proof that decodes (it need not verify: the codec is what is tested).
    fn sample() -> (BindParams, Vec<u8>) {
        let params = BindParams::new(4, 2, 1, 8).unwrap();
        let gens = Generators::new(params.generator_sizes()).unwrap();
        let rho = bind::Rho::expand(&[5; 32], 2, 4).unwrap();
        let st = BindStatement {
            c_u: RistrettoPoint::identity(),
            rho: &rho,
            y: &[0, 0],
            o_u: RistrettoPoint::identity(),
            pairs: &[],
        };
        let ctx = BindContext {
            session: [0; 32],
            client: 0,
            kappa: [0; 32],
            upload_hash: [0; 32],
            bitmap: alloc::vec![],
        };
        let w = BindWitness {
            x: alloc::vec![0; 4],
            r_u: Scalar::ZERO,
            tau: alloc::vec![0; 2],
            t_blind: Scalar::ZERO,
            omega: alloc::vec![0; 2],
        };
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let proof = bind::prove(&gens, &params, &ctx, &st, &w, &mut rng).unwrap();
        bind::verify(&gens, &params, &ctx, &st, &proof).unwrap();
        let bytes = encode_bind_proof(&params, &proof);
        assert_eq!(decode_bind_proof(&params, &bytes), Ok(proof));
        (params, bytes)
    }

    #[test]
    fn bind_max_len_covers_the_largest_statement() {
        // J·d ≤ 2^30 (D24): at d = 2^20 the most projections is 2^10 (N′_pad = 2^21 either way).
        let largest = BindParams::new(crate::MAX_D, 1 << 10, 1023, 32).unwrap();
        let len = bind_proof_len(&largest).unwrap();
        assert_eq!(len, 3137);
        assert!(len <= MAX_BIND_PROOF_LEN);
    }

    #[test]
    fn bind_truncated_oversized_and_garbage_are_typed_errors() {
        let (params, bytes) = sample();
        assert_eq!(bytes.len(), bind_proof_len(&params).unwrap());
        for cut in [0, 1, 32, bytes.len() - 1] {
            assert!(matches!(
                decode_bind_proof(&params, &bytes[..cut]),
                Err(Error::ProofLength { .. })
            ));
        }
        let huge = alloc::vec![3u8; MAX_BIND_PROOF_LEN + 1];
        assert!(matches!(
            decode_bind_proof(&params, &huge),
            Err(Error::TooLarge { .. })
        ));
        let mut b = bytes.clone();
        b[0] = 4;
        assert!(matches!(
            decode_bind_proof(&params, &b),
            Err(Error::Version { .. })
        ));
        let mut b = bytes.clone();
        b[1..33].fill(0xff);
        assert_eq!(
            decode_bind_proof(&params, &b),
            Err(Error::InvalidPoint { index: 0 })
        );
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        for len in (0..MAX_BIND_PROOF_LEN + 64)
            .step_by(37)
            .chain([bytes.len()])
        {
            let mut g = alloc::vec![0u8; len];
            rng.fill_bytes(&mut g);
            assert!(decode_bind_proof(&params, &g).is_err());
        }
    }
}
