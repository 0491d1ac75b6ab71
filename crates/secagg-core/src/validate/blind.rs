//! The derived per-round values of validated rounds (VALIDATION.md §4, §8.3):
//! r_self(b_u), σ_u(b_u, κ) from the self secret; r_pair(s_uv), β_uv(s_uv, κ) from the pair
//! seed; the pair-seed hash h_uv; the view digest V_u.
//!
//! Scalars are HKDF-SHA-256 (salt `secagg/v3/validate`) of the secret, with info
//! `"secagg/v3/validate/" ‖ name ‖ session ‖ ids ‖ [κ]`, 64 bytes of output reduced mod ℓ
//! (wide reduction). The names (`r_self`, `sigma`, `r_pair`, `beta`, `rho`) are prefix-free
//! and every field after them has a fixed width, so the info strings are unambiguous
//! (VALIDATION.md §21.1 D16). Pair values use (min(u, v), max(u, v)), so both ends of a pair
//! derive the same scalar.

use curve25519_dalek::scalar::Scalar;
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::{DOMAIN, ValidateError};
use crate::ClientId;
use crate::crypto::{self, SessionId};

/// HKDF salt of every validated-round derivation (D16).
pub const SALT: &[u8] = b"secagg/v3/validate";
/// Domain of the pair-seed hash h_uv (§4; no `validate/`: it is signed at the share stage).
pub const PAIR_SEED_HASH: &[u8] = b"secagg/v3/pair-seed-hash";
/// Domain of the view digest V_u (§4).
pub const VIEW_DIGEST: &[u8] = b"secagg/v3/validate/view";

/// Most fields after the name in an info string.
const MAX_PARTS: usize = 4;

/// HKDF-SHA-256(salt [`SALT`], ikm) expanded to `N` bytes with info
/// `DOMAIN ‖ name ‖ parts…`. The part count is a compile-time constant checked at compile time
/// (N3: a fifth field can no longer be dropped silently).
pub(crate) fn expand<const N: usize, const P: usize>(
    ikm: &[u8],
    name: &[u8],
    parts: [&[u8]; P],
) -> Zeroizing<[u8; N]> {
    const { assert!(P <= MAX_PARTS, "at most four info fields after the name") };
    // The HKDF state holds the PRK (a function of the secret); hkdf's types do not zeroize,
    // so it is dropped as soon as the output is expanded (N2).
    let hk = Hkdf::<Sha256>::new(Some(SALT), ikm);
    let mut out = Zeroizing::new([0u8; N]);
    let mut info: [&[u8]; 2 + MAX_PARTS] = [DOMAIN, name, &[], &[], &[], &[]];
    info[2..2 + P].copy_from_slice(&parts);
    // N ≤ 64 is far below HKDF-SHA-256's 8,160-byte limit, so expansion cannot fail.
    let _ = hk.expand_multi_info(&info[..2 + P], out.as_mut());
    drop(hk);
    out
}

fn wide_scalar<const P: usize>(ikm: &[u8], name: &[u8], parts: [&[u8]; P]) -> Scalar {
    let bytes = expand::<64, P>(ikm, name, parts);
    Scalar::from_bytes_mod_order_wide(&bytes)
}

/// r_self(b_u): u's share of C_u's blinding, from its self-mask secret b_u (the secret the
/// core Shamir-shares, not its expansion seed).
pub fn r_self(b: &[u8; 32], session: &SessionId, owner: ClientId) -> Scalar {
    wide_scalar(b, b"r_self", [session, &owner.to_le_bytes()])
}

/// σ_u(b_u, κ): O_u's blinding on h′.
pub fn sigma(b: &[u8; 32], session: &SessionId, owner: ClientId, kappa: &[u8; 32]) -> Scalar {
    wide_scalar(b, b"sigma", [session, &owner.to_le_bytes(), kappa])
}

/// r_pair(s_uv): the pair's share of C_u's blinding (added by u with sgn(u, v)).
pub fn r_pair(seed: &[u8; 32], session: &SessionId, u: ClientId, v: ClientId) -> Scalar {
    let (lo, hi) = (u.min(v).to_le_bytes(), u.max(v).to_le_bytes());
    wide_scalar(seed, b"r_pair", [session, &lo, &hi])
}

/// β_uv(s_uv, κ): P_uv's blinding on h′ (the same at both ends).
pub fn beta(
    seed: &[u8; 32],
    session: &SessionId,
    u: ClientId,
    v: ClientId,
    kappa: &[u8; 32],
) -> Scalar {
    let (lo, hi) = (u.min(v).to_le_bytes(), u.max(v).to_le_bytes());
    wide_scalar(seed, b"beta", [session, &lo, &hi, kappa])
}

/// h_uv = SHA-256("secagg/v3/pair-seed-hash" ‖ session ‖ le32(min(u, v)) ‖ le32(max(u, v)) ‖
/// s_uv), signed at the share stage (§8.3); the same for both ends.
pub fn pair_seed_hash(session: &SessionId, u: ClientId, v: ClientId, seed: &[u8; 32]) -> [u8; 32] {
    let (lo, hi) = (u.min(v).to_le_bytes(), u.max(v).to_le_bytes());
    crypto::hash(&[PAIR_SEED_HASH, session, &lo, &hi, seed])
}

/// V_u = SHA-256("secagg/v3/validate/view" ‖ session ‖ (le32(v) ‖ leaf_v) for v ∈ N(u) in
/// increasing v), leaf_v the Merkle leaf of v's key entry as u received it (§4, §8.3, F2).
/// Refuses a list that is not strictly increasing (the digest names one entry per peer).
pub fn view_digest(
    session: &SessionId,
    leaves: &[(ClientId, [u8; 32])],
) -> Result<[u8; 32], ValidateError> {
    use sha2::Digest;
    if leaves.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err(ValidateError::NotIncreasing {
            what: "view digest",
        });
    }
    let mut h = Sha256::new();
    h.update(VIEW_DIGEST);
    h.update(session);
    for (v, leaf) in leaves {
        h.update(v.to_le_bytes());
        h.update(leaf);
    }
    Ok(h.finalize().into())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use alloc::string::String;
    use alloc::vec::Vec;

    pub(crate) fn hex(bytes: &[u8]) -> String {
        use core::fmt::Write;
        let mut s = String::new();
        for b in bytes {
            let _ = write!(s, "{b:02x}");
        }
        s
    }

    /// Compares (name, actual) with (name, expected); on a mismatch prints every actual value,
    /// so a deliberate change of a derivation can be re-pinned in one run.
    pub(crate) fn check_kats(actual: &[(&str, String)], expected: &[(&str, &str)]) {
        let bad: Vec<_> = actual
            .iter()
            .zip(expected)
            .filter(|((n1, a), (n2, e))| n1 != n2 || a != e)
            .collect();
        if !bad.is_empty() || actual.len() != expected.len() {
            for (n, a) in actual {
                std::println!("(\"{n}\", \"{a}\"),");
            }
            panic!(
                "known answers changed: {:?}",
                bad.iter().map(|b| b.0.0).collect::<Vec<_>>()
            );
        }
    }

    const SESSION: SessionId = [0x5e; 32];
    const KAPPA: [u8; 32] = [0x4b; 32];
    const B: [u8; 32] = [0xb0; 32];
    const S: [u8; 32] = [0x5a; 32];

    #[test]
    fn known_answers() {
        let actual = [
            ("r_self", hex(r_self(&B, &SESSION, 7).as_bytes())),
            ("sigma", hex(sigma(&B, &SESSION, 7, &KAPPA).as_bytes())),
            ("r_pair", hex(r_pair(&S, &SESSION, 7, 3).as_bytes())),
            ("beta", hex(beta(&S, &SESSION, 7, 3, &KAPPA).as_bytes())),
            ("h_uv", hex(&pair_seed_hash(&SESSION, 7, 3, &S))),
            (
                "V_u",
                hex(&view_digest(&SESSION, &[(2, [1; 32]), (3, [2; 32]), (9, [3; 32])]).unwrap()),
            ),
        ];
        check_kats(&actual, KATS);
    }

    /// Generated once (2026-12-03) and cross-checked with Python's hmac/hashlib (HKDF of
    /// RFC 5869 and the reduction mod ℓ written out); D16.
    const KATS: &[(&str, &str)] = &[
        (
            "r_self",
            "995740588607f3cf76de9740cdf055a6cb4c99315b45fccfa01154a9cf065c0b",
        ),
        (
            "sigma",
            "c7ee92998d38fc903c2c1a50599663327b9ed924e29a2f33da54b46b87adf000",
        ),
        (
            "r_pair",
            "b5311e37dac9ac40e283563bd8667832dc0e697e2a6e3bf571459d24f1038b07",
        ),
        (
            "beta",
            "b29070f74340c182a8c2478a59fbba7c070569908ce50886a120139662077009",
        ),
        (
            "h_uv",
            "8c7d286bdcb0904e1bb68adc9fe4e8daae44922eaf57d2a463cf4b09e0209f0c",
        ),
        (
            "V_u",
            "9ed965960d1f5ba3fcb64f790129461e7ee1a2ae550ff1f7be899330979952fd",
        ),
    ];

    #[test]
    fn pair_values_are_symmetric_and_separated() {
        assert_eq!(r_pair(&S, &SESSION, 7, 3), r_pair(&S, &SESSION, 3, 7));
        assert_eq!(
            beta(&S, &SESSION, 7, 3, &KAPPA),
            beta(&S, &SESSION, 3, 7, &KAPPA)
        );
        assert_eq!(
            pair_seed_hash(&SESSION, 7, 3, &S),
            pair_seed_hash(&SESSION, 3, 7, &S)
        );
        // Every input matters, and the labels separate the four scalars.
        let all = [
            r_self(&B, &SESSION, 7),
            r_self(&B, &SESSION, 8),
            r_self(&S, &SESSION, 7),
            r_self(&B, &[0; 32], 7),
            sigma(&B, &SESSION, 7, &KAPPA),
            sigma(&B, &SESSION, 7, &[0; 32]),
            r_pair(&B, &SESSION, 7, 0),
            r_pair(&S, &SESSION, 7, 4),
            beta(&S, &SESSION, 7, 3, &[0; 32]),
            beta(&S, &SESSION, 7, 4, &KAPPA),
            r_pair(&S, &SESSION, 7, 3),
        ];
        for i in 0..all.len() {
            for j in 0..i {
                assert_ne!(all[i], all[j], "{i} {j}");
            }
        }
        // r_self(b) ≠ r_pair(b) for the same 32 bytes and "ids" (the names separate them).
        assert_ne!(
            r_self(&S, &SESSION, 7),
            wide_scalar(&S, b"r_pair", [&SESSION, &7u32.to_le_bytes()])
        );
    }

    #[test]
    fn view_digest_refuses_unordered_or_repeated_peers() {
        let a = (2, [1u8; 32]);
        let b = (5, [2u8; 32]);
        assert!(view_digest(&SESSION, &[a, b]).is_ok());
        assert!(view_digest(&SESSION, &[]).is_ok());
        assert_eq!(
            view_digest(&SESSION, &[b, a]),
            Err(ValidateError::NotIncreasing {
                what: "view digest"
            })
        );
        assert!(view_digest(&SESSION, &[a, a]).is_err());
        // Another leaf for one peer changes the digest.
        let c = (5, [3u8; 32]);
        assert_ne!(
            view_digest(&SESSION, &[a, b]),
            view_digest(&SESSION, &[a, c])
        );
    }
}
