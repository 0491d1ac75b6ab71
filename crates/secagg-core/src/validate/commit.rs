//! The commitments of validated rounds from the round's secrets (VALIDATION.md §5.1, §5.2,
//! §6.1; arguments.md §B.1):
//!
//! - C_u = ⟨x, K⟩ + r_u·h with r_u = r_self(b_u) + Σ_{v∈S_u} sgn(u, v)·r_pair(s_uv);
//! - O_u = ⟨t_self, G_τ⟩ + r_self(b_u)·G_r + σ_u(b_u, κ)·h′;
//! - P_uv = ⟨t_uv, G_τ⟩ + r_pair(s_uv)·G_r + β_uv(s_uv, κ)·h′, the same point at both ends;
//! - T_u's blinding on h′: σ_u + Σ sgn(u, v)·β_uv (the prover's `t_blind`).
//!
//! Every multiscalar multiplication on secret scalars is dalek's constant-time one.

use alloc::vec::Vec;

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::MultiscalarMul;
use secagg_zk::Generators;
use zeroize::Zeroizing;

use super::{ValidateError, blind, pair_sign_positive};
use crate::ClientId;
use crate::crypto::SessionId;

/// r_u = r_self(b_u) + Σ_{v∈S_u} sgn(u, v)·r_pair(s_uv): C_u's blinding (§5.1). `pairs` lists
/// (v, s_uv) for v ∈ S_u.
pub fn input_blinding(
    b: &[u8; 32],
    session: &SessionId,
    owner: ClientId,
    pairs: &[(ClientId, &[u8; 32])],
) -> Scalar {
    // The partial sums and parts are secrets: wiped here, the caller owns the result (N2).
    let mut r = Zeroizing::new(blind::r_self(b, session, owner));
    for (v, seed) in pairs {
        let p = Zeroizing::new(blind::r_pair(seed, session, owner, *v));
        if pair_sign_positive(owner, *v) {
            *r += *p;
        } else {
            *r -= *p;
        }
    }
    *r
}

/// T_u's blinding on h′: σ_u(b_u, κ) + Σ_{v∈S_u} sgn(u, v)·β_uv(s_uv, κ).
pub fn projection_blinding(
    b: &[u8; 32],
    session: &SessionId,
    owner: ClientId,
    kappa: &[u8; 32],
    pairs: &[(ClientId, &[u8; 32])],
) -> Scalar {
    // The partial sums and parts are secrets: wiped here, the caller owns the result (N2).
    let mut r = Zeroizing::new(blind::sigma(b, session, owner, kappa));
    for (v, seed) in pairs {
        let p = Zeroizing::new(blind::beta(seed, session, owner, *v, kappa));
        if pair_sign_positive(owner, *v) {
            *r += *p;
        } else {
            *r -= *p;
        }
    }
    *r
}

/// x, the signed representative of an encoded vector (§5.1): x_i ∈ (−2^(b−1), 2^(b−1)) with
/// x_i ≡ encoded_i (mod 2^b). Refuses an element ≥ 2^b and the one residue, 2^(b−1), that has
/// no representative in the open interval (an honest client never has it: |x_i| ≤ B_enc <
/// 2^(b−1) by §5.3).
pub fn signed_input(
    modulus: crate::ring::Modulus,
    encoded: &[u64],
) -> Result<Vec<i64>, ValidateError> {
    let bits = u32::from(modulus.bits());
    if bits > u32::from(super::params::MAX_BITS) {
        return Err(ValidateError::TooLarge {
            what: "bits",
            max: u64::from(super::params::MAX_BITS),
            got: u64::from(bits),
        });
    }
    let half = 1u64 << (bits - 1);
    encoded
        .iter()
        .enumerate()
        .map(|(i, v)| match *v {
            v if v < half => Ok(v as i64),
            v if v > half && v <= modulus.mask() => Ok(v as i64 - (1i64 << bits)),
            _ => Err(ValidateError::InconsistentUpload { index: i }),
        })
        .collect()
}

/// C_u = ⟨x, K⟩ + r_u·h for the signed encoded vector x (secagg-zk's `norm::commit`).
pub fn input_commitment(
    gens: &Generators,
    x: &[i64],
    r_u: &Scalar,
) -> Result<RistrettoPoint, ValidateError> {
    Ok(secagg_zk::norm::commit(gens, x, r_u)?)
}

/// ⟨t, G_τ⟩ + r·G_r + blind·h′.
fn projection_commitment(
    gens: &Generators,
    t: &[u64],
    r: &Scalar,
    blind: &Scalar,
) -> Result<RistrettoPoint, ValidateError> {
    let tau = gens.tau();
    if t.len() > tau.len() || t.is_empty() {
        return Err(ValidateError::Zk(secagg_zk::Error::GeneratorsTooShort {
            needed: t.len().max(1),
            have: tau.len(),
        }));
    }
    let scalars: Zeroizing<Vec<Scalar>> = Zeroizing::new(
        t.iter()
            .map(|v| Scalar::from(*v))
            .chain([*r, *blind])
            .collect(),
    );
    Ok(RistrettoPoint::multiscalar_mul(
        scalars.iter(),
        tau[..t.len()].iter().chain([gens.r(), gens.h2()]),
    ))
}

/// O_u = ⟨t_self, G_τ⟩ + r_self(b_u)·G_r + σ_u(b_u, κ)·h′ (§5.2): u's self-mask commitment,
/// recomputed by the server from the rebuilt b_u (§8.6).
pub fn self_commitment(
    gens: &Generators,
    t_self: &[u64],
    b: &[u8; 32],
    session: &SessionId,
    owner: ClientId,
    kappa: &[u8; 32],
) -> Result<RistrettoPoint, ValidateError> {
    let r = Zeroizing::new(blind::r_self(b, session, owner));
    let s = Zeroizing::new(blind::sigma(b, session, owner, kappa));
    projection_commitment(gens, t_self, &r, &s)
}

/// P_uv = ⟨t_uv, G_τ⟩ + r_pair(s_uv)·G_r + β_uv(s_uv, κ)·h′ (§5.2): symmetric in (u, v), so an
/// honest pair sends the same point (§6.1); recomputed by the server for dropped pairs (§8.5)
/// and disputes (§8.3).
pub fn pair_commitment(
    gens: &Generators,
    t_uv: &[u64],
    seed: &[u8; 32],
    session: &SessionId,
    u: ClientId,
    v: ClientId,
    kappa: &[u8; 32],
) -> Result<RistrettoPoint, ValidateError> {
    let r = Zeroizing::new(blind::r_pair(seed, session, u, v));
    let b = Zeroizing::new(blind::beta(seed, session, u, v, kappa));
    projection_commitment(gens, t_uv, &r, &b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PrgKind;
    use crate::crypto::{self, DhKeyPair};
    use crate::ring::Modulus;
    use crate::validate::blind::tests::{check_kats, hex};
    use crate::validate::projection::{expand_rho, stream_projections};
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;
    use secagg_zk::GeneratorSizes;

    const SESSION: SessionId = [0x5e; 32];
    const KAPPA: [u8; 32] = [0x4b; 32];

    fn gens(j: usize) -> Generators {
        Generators::new(GeneratorSizes {
            n_pad: 8,
            projections: j,
            lpad: 0,
        })
        .unwrap()
    }

    /// §21 row 6: an honest pair computes equal P_uv, each end from its own key pair and the
    /// other's public key through the core's `pairwise_seed`; another κ gives another point
    /// at both ends (so the server's comparison is per κ, F8).
    #[test]
    fn an_honest_pair_computes_equal_pair_commitments() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let (u, v) = (4u32, 9u32);
        let (ku, kv) = (DhKeyPair::generate(&mut rng), DhKeyPair::generate(&mut rng));
        let s_u = crypto::pairwise_seed(&ku.agree(&kv.public()).unwrap(), &SESSION, u, v);
        let s_v = crypto::pairwise_seed(&kv.agree(&ku.public()).unwrap(), &SESSION, v, u);
        let g = gens(12);
        for kind in [PrgKind::Aes128Ctr, PrgKind::ChaCha20] {
            let modulus = Modulus::new(20).unwrap();
            let commit_at = |me: u32, peer: u32, seed: &[u8; 32], kappa: &[u8; 32]| {
                let rho = expand_rho(kappa, &SESSION, 12, 200).unwrap();
                let t = stream_projections(kind, modulus, &rho, seed).unwrap();
                pair_commitment(&g, &t, seed, &SESSION, me, peer, kappa).unwrap()
            };
            let p_uv = commit_at(u, v, &s_u, &KAPPA);
            assert_eq!(p_uv, commit_at(v, u, &s_v, &KAPPA));
            let other = [1u8; 32];
            assert_eq!(commit_at(u, v, &s_u, &other), commit_at(v, u, &s_v, &other));
            assert_ne!(p_uv, commit_at(u, v, &s_u, &other));
            // A wrong seed at one end (the R2 liar) gives a different point.
            assert_ne!(p_uv, commit_at(v, u, &[0; 32], &KAPPA));
        }
        assert_eq!(
            crate::validate::blind::pair_seed_hash(&SESSION, u, v, &s_u),
            crate::validate::blind::pair_seed_hash(&SESSION, v, u, &s_v)
        );
    }

    #[test]
    fn blindings_follow_the_pair_signs() {
        let b = [1u8; 32];
        let (s3, s9) = ([3u8; 32], [9u8; 32]);
        let pairs: [(ClientId, &[u8; 32]); 2] = [(3, &s3), (9, &s9)];
        // u = 5: sgn(5, 3) = −1, sgn(5, 9) = +1.
        let r = input_blinding(&b, &SESSION, 5, &pairs);
        let want = blind::r_self(&b, &SESSION, 5) - blind::r_pair(&s3, &SESSION, 5, 3)
            + blind::r_pair(&s9, &SESSION, 5, 9);
        assert_eq!(r, want);
        let t = projection_blinding(&b, &SESSION, 5, &KAPPA, &pairs);
        let want = blind::sigma(&b, &SESSION, 5, &KAPPA) - blind::beta(&s3, &SESSION, 5, 3, &KAPPA)
            + blind::beta(&s9, &SESSION, 5, 9, &KAPPA);
        assert_eq!(t, want);
        // Pair parts cancel across a pair (§6.4): u's and v's signed r_pair sum to 0.
        let s = [7u8; 32];
        let ru = input_blinding(&b, &SESSION, 2, &[(8, &s)]) - blind::r_self(&b, &SESSION, 2);
        let rv = input_blinding(&b, &SESSION, 8, &[(2, &s)]) - blind::r_self(&b, &SESSION, 8);
        assert_eq!(ru + rv, Scalar::ZERO);
    }

    #[test]
    fn signed_representatives() {
        let m = Modulus::new(8).unwrap();
        assert_eq!(
            signed_input(m, &[0, 1, 127, 129, 255]).unwrap(),
            [0, 1, 127, -127, -1]
        );
        assert!(signed_input(m, &[128]).is_err());
        assert!(signed_input(m, &[256]).is_err());
        let m = Modulus::new(32).unwrap();
        assert_eq!(
            signed_input(m, &[(1 << 31) - 1, (1 << 31) + 1]).unwrap(),
            [(1 << 31) - 1, -(1 << 31) + 1]
        );
        assert!(signed_input(Modulus::new(33).unwrap(), &[0]).is_err());
    }

    #[test]
    fn commitments_refuse_too_few_generators() {
        let g = gens(3);
        assert!(pair_commitment(&g, &[1, 2, 3, 4], &[0; 32], &SESSION, 1, 2, &KAPPA).is_err());
        assert!(self_commitment(&g, &[], &[0; 32], &SESSION, 1, &KAPPA).is_err());
        assert!(input_commitment(&g, &[0; 9], &Scalar::ONE).is_err());
    }

    #[test]
    fn known_answers() {
        let g = gens(4);
        let t = [1u64, 0, (1 << 52) - 1, 12345];
        let b = [0xb0u8; 32];
        let s = [0x5au8; 32];
        let r_u = input_blinding(&b, &SESSION, 7, &[(3, &s)]);
        let actual = [
            (
                "O_u",
                hex(self_commitment(&g, &t, &b, &SESSION, 7, &KAPPA)
                    .unwrap()
                    .compress()
                    .as_bytes()),
            ),
            (
                "P_uv",
                hex(pair_commitment(&g, &t, &s, &SESSION, 7, 3, &KAPPA)
                    .unwrap()
                    .compress()
                    .as_bytes()),
            ),
            ("r_u", hex(r_u.as_bytes())),
            (
                "t_blind",
                hex(projection_blinding(&b, &SESSION, 7, &KAPPA, &[(3, &s)]).as_bytes()),
            ),
            (
                "C_u",
                hex(input_commitment(&g, &[-3, 0, 5, 1 << 30], &r_u)
                    .unwrap()
                    .compress()
                    .as_bytes()),
            ),
        ];
        check_kats(&actual, KATS);
    }

    /// Generated once (2026-12-03); the MSM is checked against plain sums in
    /// `commitments_are_the_stated_sums`.
    const KATS: &[(&str, &str)] = &[
        (
            "O_u",
            "9c9e4c291ffe6e0c475128be8ebf614f603dee241fa1f5741602d13e105a5909",
        ),
        (
            "P_uv",
            "3c1bb08946d6e5ac099b05d6dd659d2779583ac0c2a334c3e0399948a991343b",
        ),
        (
            "r_u",
            "e4252221ac3d468f945a4105f589dd73ef3d30b330d7c0da2eccb684de02d103",
        ),
        (
            "t_blind",
            "023218ff635b4d666a06ca68de9487ca7399709455b526ad3834a1d524a68007",
        ),
        (
            "C_u",
            "7ef1d0fdfbfe3cf09ce8277193c9b6a8aa19ba15fd236eac9a22e80b2459244a",
        ),
    ];

    #[test]
    fn commitments_are_the_stated_sums() {
        let g = gens(4);
        let t = [1u64, 0, (1 << 52) - 1, 12345];
        let b = [0xb0u8; 32];
        let s = [0x5au8; 32];
        let on_tau = |t: &[u64]| -> RistrettoPoint {
            t.iter()
                .zip(g.tau())
                .map(|(v, p)| p * Scalar::from(*v))
                .sum()
        };
        let o = on_tau(&t)
            + g.r() * blind::r_self(&b, &SESSION, 7)
            + g.h2() * blind::sigma(&b, &SESSION, 7, &KAPPA);
        assert_eq!(o, self_commitment(&g, &t, &b, &SESSION, 7, &KAPPA).unwrap());
        let p = on_tau(&t[..3])
            + g.r() * blind::r_pair(&s, &SESSION, 7, 3)
            + g.h2() * blind::beta(&s, &SESSION, 7, 3, &KAPPA);
        assert_eq!(
            p,
            pair_commitment(&g, &t[..3], &s, &SESSION, 3, 7, &KAPPA).unwrap()
        );
        let k = g.k_basis(2).unwrap();
        let c = k[0] * -Scalar::from(3u64) + k[1] * Scalar::from(5u64) + g.h() * Scalar::ONE;
        assert_eq!(c, input_commitment(&g, &[-3, 5], &Scalar::ONE).unwrap());
    }
}
