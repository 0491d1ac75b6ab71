//! The range proof of the norm statement (VALIDATION.md §5.1 (N2), §21 step 4; arguments.md
//! §A.4): an adapter to the audited Bulletproofs+ range proof of `tari_bulletproofs_plus` 0.5.3,
//! 64-bit values, one aggregated proof.
//!
//! **What is proven.** For V_s = s·g₀ + γ·h (s = ‖x‖², the prover's) and the public bound
//! B_enc²: B_enc²·g₀ − V_s opens to a value in [0, 2^64), so s ≤ B_enc² (arguments.md §A.4
//! turns this into ‖x‖₂² ≤ B_enc² with GHL's bound). With a weight coordinate (float inputs)
//! also V_w = x_w·g₀ + γ_w·h and W·g₀ − V_w, so 0 ≤ x_w ≤ W; the three values are padded to
//! four with the public identity commitment (VALIDATION.md §21.1 D10).
//!
//! **Generators** (D8): tari's value base is our g₀, its blinding base (extension degree 1)
//! our h, so V_s and V_w are the points the norm argument uses.
//!
//! **Transcript** (D9): a merlin transcript `secagg/v3/validate/range` that first absorbs the
//! caller's 32-byte binding (the norm transcript's state after its statement records), so a
//! proof made for another session, client or upload does not verify.
//!
//! **Never a `seed_nonce`** (F12): tari can derive the blindings from a seed so that its owner
//! recovers γ later; a recoverable γ opens V_s, i.e. ‖x‖². Every statement this module builds
//! passes `None`, and the prover's nonces come from the caller's RNG (and tari's transcript
//! RNG over the witness).
//!
//! Only with the `std` feature: tari links std unconditionally.

use alloc::vec::Vec;
use std::sync::OnceLock;

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::Identity;
use rand_core::CryptoRng;
use tari_bulletproofs_plus::Transcript as Merlin;
use tari_bulletproofs_plus::commitment_opening::CommitmentOpening;
use tari_bulletproofs_plus::generators::pedersen_gens::{ExtensionDegree, PedersenGens};
use tari_bulletproofs_plus::range_parameters::RangeParameters;
use tari_bulletproofs_plus::range_proof::{RangeProof as TariProof, VerifyAction};
use tari_bulletproofs_plus::range_statement::RangeStatement;
use tari_bulletproofs_plus::range_witness::RangeWitness;
use zeroize::Zeroizing;

use crate::{BatchError, Error, Generators};

/// Bits of every range value (B_enc² < 2^62 by §5.3; the slack B_enc² − s < 2^64).
pub const BITS: usize = 64;

/// Bytes of an encoded proof: 577 without a weight (one value), 705 with (four values).
pub const fn proof_len(weighted: bool) -> usize {
    // extension byte, d1, A, A1, B, r1, s1, then log₂(64·m) pairs (L, R).
    let pairs = if weighted { 8 } else { 6 };
    1 + 32 * (6 + 2 * pairs)
}

const LABEL: &[u8] = b"secagg/v3/validate/range";

/// Public statement: the bound, the weight bound when the encoding has a weight coordinate,
/// and the points V_s (and V_w).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RangeStatementN {
    /// B_enc².
    pub bound_sq: u64,
    /// V_s = s·g₀ + γ·h.
    pub v_s: RistrettoPoint,
    /// (W, V_w) for a weight coordinate.
    pub weight: Option<(u64, RistrettoPoint)>,
}

/// The prover's openings: s with γ, and (x_w, γ_w) with a weight. Zeroized on drop.
#[derive(Clone)]
pub struct RangeOpening {
    pub s: u128,
    pub gamma: Scalar,
    pub weight: Option<(u64, Scalar)>,
}

impl Drop for RangeOpening {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.s.zeroize();
        self.gamma.zeroize();
        if let Some((w, g)) = self.weight.as_mut() {
            w.zeroize();
            g.zeroize();
        }
    }
}

impl core::fmt::Debug for RangeOpening {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RangeOpening").finish_non_exhaustive()
    }
}

/// A range proof (tari's, kept as decoded by tari's canonical parser).
#[derive(Clone, Debug)]
pub struct RangeProof {
    inner: TariProof<RistrettoPoint>,
    weighted: bool,
}

impl PartialEq for RangeProof {
    fn eq(&self, other: &Self) -> bool {
        self.to_bytes() == other.to_bytes()
    }
}
impl Eq for RangeProof {}

impl RangeProof {
    /// tari's canonical encoding ([`proof_len`] bytes).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.inner.to_bytes()
    }

    /// Decodes untrusted bytes: exactly [`proof_len`]`(weighted)` bytes (checked before tari's
    /// parser sees them), extension degree 1, canonical scalars. Points are checked when verified.
    pub fn from_bytes(bytes: &[u8], weighted: bool) -> Result<Self, Error> {
        let expected = proof_len(weighted);
        if bytes.len() != expected {
            return Err(Error::ProofLength {
                expected,
                got: bytes.len(),
            });
        }
        let inner =
            TariProof::<RistrettoPoint>::from_bytes(bytes).map_err(|_| Error::Malformed {
                what: "range proof",
            })?;
        if inner.extension_degree() != ExtensionDegree::DefaultPedersen {
            return Err(Error::Malformed {
                what: "range proof extension degree",
            });
        }
        Ok(RangeProof { inner, weighted })
    }

    /// Whether the proof covers a weight coordinate (four values).
    pub fn weighted(&self) -> bool {
        self.weighted
    }
}

/// tari's parameters for m values on (g₀, h), built once per process per m.
fn parameters(gens: &Generators, m: usize) -> Result<RangeParameters<RistrettoPoint>, Error> {
    static ONE: OnceLock<RangeParameters<RistrettoPoint>> = OnceLock::new();
    static FOUR: OnceLock<RangeParameters<RistrettoPoint>> = OnceLock::new();
    let cell = if m == 1 { &ONE } else { &FOUR };
    if let Some(p) = cell.get() {
        return Ok(p.clone());
    }
    let pc_gens = PedersenGens {
        h_base: *gens.g0(),
        h_base_compressed: gens.g0().compress(),
        g_base_vec: alloc::vec![*gens.h()],
        g_base_compressed_vec: alloc::vec![gens.h().compress()],
        extension_degree: ExtensionDegree::DefaultPedersen,
    };
    let params = RangeParameters::init(BITS, m, pc_gens).map_err(|_| Error::Malformed {
        what: "range parameters",
    })?;
    // g₀ and h are fixed by wire version 3, so whichever thread sets the cell sets the same value.
    Ok(cell.get_or_init(|| params).clone())
}

/// The committed points of the aggregated statement, in order (D10).
pub fn commitments(gens: &Generators, st: &RangeStatementN) -> Vec<RistrettoPoint> {
    let g0 = gens.g0();
    let mut out = alloc::vec![g0 * Scalar::from(st.bound_sq) - st.v_s];
    if let Some((w_max, v_w)) = st.weight {
        out.push(v_w);
        out.push(g0 * Scalar::from(w_max) - v_w);
        out.push(RistrettoPoint::identity());
    }
    out
}

fn statement(
    gens: &Generators,
    st: &RangeStatementN,
) -> Result<RangeStatement<RistrettoPoint>, Error> {
    let points = commitments(gens, st);
    let m = points.len();
    // seed_nonce: None, always (F12).
    RangeStatement::init(parameters(gens, m)?, points, alloc::vec![None; m], None).map_err(|_| {
        Error::Malformed {
            what: "range statement",
        }
    })
}

fn transcript(binding: &[u8; 32]) -> Merlin {
    let mut t = Merlin::new(LABEL);
    t.append_message(b"norm-state", binding);
    t
}

/// Proves the statement with fresh blindings from `rng`. Refuses locally (never a proof) when s
/// exceeds B_enc² or x_w is outside [0, W] (VALIDATION.md §5.4: the refusal names both norms).
pub fn prove<R: CryptoRng + ?Sized>(
    binding: &[u8; 32],
    gens: &Generators,
    st: &RangeStatementN,
    opening: &RangeOpening,
    rng: &mut R,
) -> Result<RangeProof, Error> {
    let bound = u128::from(st.bound_sq);
    if opening.s > bound {
        return Err(Error::AboveBound {
            norm_sq: opening.s,
            bound_sq: st.bound_sq,
        });
    }
    // s ≤ B_enc² < 2^64 here.
    let slack = Zeroizing::new((bound - opening.s) as u64);
    let mut openings = alloc::vec![CommitmentOpening::new(*slack, alloc::vec![-opening.gamma])];
    match (st.weight, opening.weight) {
        (None, None) => {}
        (Some((w_max, _)), Some((x_w, gamma_w))) => {
            if x_w > w_max {
                return Err(Error::WeightAboveBound {
                    weight: x_w,
                    max: w_max,
                });
            }
            openings.push(CommitmentOpening::new(x_w, alloc::vec![gamma_w]));
            openings.push(CommitmentOpening::new(w_max - x_w, alloc::vec![-gamma_w]));
            openings.push(CommitmentOpening::new(0, alloc::vec![Scalar::ZERO]));
        }
        _ => {
            return Err(Error::Malformed {
                what: "range opening: weight present on one side only",
            });
        }
    }
    let statement = statement(gens, st)?;
    let witness = RangeWitness::init(openings).map_err(|_| Error::Malformed {
        what: "range witness",
    })?;
    let mut t = transcript(binding);
    // `&mut R` is a sized RNG (rand_core's blanket impl over DerefMut).
    let mut rng = rng;
    let inner =
        TariProof::prove_with_rng(&mut t, &statement, &witness, &mut rng).map_err(|_| {
            // The openings were checked against the bound above; what is left is an opening that
            // does not match V_s / V_w (a caller error).
            Error::Malformed {
                what: "range opening does not match the statement",
            }
        })?;
    Ok(RangeProof {
        inner,
        weighted: st.weight.is_some(),
    })
}

/// tari's verifier on one or more (transcript, statement, proof).
fn tari_holds(
    transcripts: &mut [Merlin],
    statements: &[RangeStatement<RistrettoPoint>],
    proofs: &[TariProof<RistrettoPoint>],
) -> bool {
    TariProof::verify_batch(transcripts, statements, proofs, VerifyAction::VerifyOnly).is_ok()
}

/// The statement of one proof, refusing a proof whose aggregation does not match it.
fn checked_statement(
    gens: &Generators,
    st: &RangeStatementN,
    proof: &RangeProof,
) -> Result<RangeStatement<RistrettoPoint>, Error> {
    if proof.weighted != st.weight.is_some() {
        return Err(Error::Malformed {
            what: "range proof aggregation does not match the statement",
        });
    }
    statement(gens, st)
}

/// Verifies one proof for the statement under `binding`.
pub fn verify(
    binding: &[u8; 32],
    gens: &Generators,
    st: &RangeStatementN,
    proof: &RangeProof,
) -> Result<(), Error> {
    let statement = checked_statement(gens, st, proof)?;
    if tari_holds(
        &mut [transcript(binding)],
        core::slice::from_ref(&statement),
        core::slice::from_ref(&proof.inner),
    ) {
        Ok(())
    } else {
        Err(Error::VerificationFailed)
    }
}

/// Verifies several proofs with tari's batch verifier (one MSM); on failure checks each alone
/// and names every proof that fails (D26; [`BatchError::Internal`] if every one verifies alone,
/// never a proof).
pub fn batch_verify(
    gens: &Generators,
    items: &[([u8; 32], RangeStatementN, &RangeProof)],
) -> Result<(), BatchError> {
    let mut statements = Vec::with_capacity(items.len());
    let mut proofs = Vec::with_capacity(items.len());
    let mut transcripts = Vec::with_capacity(items.len());
    let mut failed = Vec::new();
    for (i, (binding, st, proof)) in items.iter().enumerate() {
        match checked_statement(gens, st, proof) {
            Ok(s) => {
                statements.push(s);
                proofs.push(proof.inner.clone());
                transcripts.push(transcript(binding));
            }
            Err(error) => failed.push((i, error)),
        }
    }
    if failed.is_empty() && (items.is_empty() || tari_holds(&mut transcripts, &statements, &proofs))
    {
        return Ok(());
    }
    for (i, (binding, st, proof)) in items.iter().enumerate() {
        if failed.iter().any(|(j, _)| *j == i) {
            continue;
        }
        if let Err(error) = verify(binding, gens, st, proof) {
            failed.push((i, error));
        }
    }
    Err(crate::fold::batch_failure(failed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GeneratorSizes;
    use alloc::vec;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn gens() -> std::sync::Arc<Generators> {
        Generators::shared(GeneratorSizes {
            n_pad: 1,
            projections: 0,
            lpad: 0,
        })
        .unwrap()
    }

    fn commit(gens: &Generators, v: u128, gamma: Scalar) -> RistrettoPoint {
        gens.g0() * Scalar::from(v) + gens.h() * gamma
    }

    #[test]
    fn accepts_at_zero_and_at_the_bound_rejects_above() {
        let gens = gens();
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let bound_sq = 400u64;
        let binding = [3u8; 32];
        for s in [0u128, 123, 400] {
            let gamma = Scalar::random(&mut rng);
            let st = RangeStatementN {
                bound_sq,
                v_s: commit(&gens, s, gamma),
                weight: None,
            };
            let opening = RangeOpening {
                s,
                gamma,
                weight: None,
            };
            let proof = prove(&binding, &gens, &st, &opening, &mut rng).unwrap();
            assert_eq!(proof.to_bytes().len(), proof_len(false));
            verify(&binding, &gens, &st, &proof).unwrap();
            let back = RangeProof::from_bytes(&proof.to_bytes(), false).unwrap();
            verify(&binding, &gens, &st, &back).unwrap();
        }
        // s = B² + 1: the prover refuses, naming both norms.
        let gamma = Scalar::random(&mut rng);
        let st = RangeStatementN {
            bound_sq,
            v_s: commit(&gens, 401, gamma),
            weight: None,
        };
        let opening = RangeOpening {
            s: 401,
            gamma,
            weight: None,
        };
        assert_eq!(
            prove(&binding, &gens, &st, &opening, &mut rng),
            Err(Error::AboveBound {
                norm_sq: 401,
                bound_sq
            })
        );
        // A proof at the bound, presented for V_s of B² + 1 (same γ), rejects.
        let ok_st = RangeStatementN {
            v_s: commit(&gens, 400, gamma),
            ..st
        };
        let ok = RangeOpening {
            s: 400,
            gamma,
            weight: None,
        };
        let proof = prove(&binding, &gens, &ok_st, &ok, &mut rng).unwrap();
        verify(&binding, &gens, &ok_st, &proof).unwrap();
        assert_eq!(
            verify(&binding, &gens, &st, &proof),
            Err(Error::VerificationFailed)
        );
    }

    #[test]
    fn other_v_s_other_binding_or_tampering_rejects() {
        let gens = gens();
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let gamma = Scalar::random(&mut rng);
        let st = RangeStatementN {
            bound_sq: 1 << 40,
            v_s: commit(&gens, 12345, gamma),
            weight: None,
        };
        let opening = RangeOpening {
            s: 12345,
            gamma,
            weight: None,
        };
        let binding = [9u8; 32];
        let proof = prove(&binding, &gens, &st, &opening, &mut rng).unwrap();
        verify(&binding, &gens, &st, &proof).unwrap();
        let other = RangeStatementN {
            v_s: commit(&gens, 12345, Scalar::random(&mut rng)),
            ..st
        };
        assert!(verify(&binding, &gens, &other, &proof).is_err());
        let other_bound = RangeStatementN {
            bound_sq: (1 << 40) + 1,
            ..st
        };
        assert!(verify(&binding, &gens, &other_bound, &proof).is_err());
        assert!(verify(&[8u8; 32], &gens, &st, &proof).is_err());
        let bytes = proof.to_bytes();
        for pos in [0usize, 1, 40, 100, 300, bytes.len() - 1] {
            let mut b = bytes.clone();
            b[pos] ^= 1;
            if let Ok(p) = RangeProof::from_bytes(&b, false) {
                assert!(verify(&binding, &gens, &st, &p).is_err(), "flip at {pos}");
            }
        }
        assert!(RangeProof::from_bytes(&bytes[..bytes.len() - 1], false).is_err());
        assert!(RangeProof::from_bytes(&bytes, true).is_err());
        let mut long = bytes.clone();
        long.extend_from_slice(&[0u8; 129]);
        assert!(RangeProof::from_bytes(&long, true).is_err());
        // The right length for four values parses (identity points), but does not verify.
        long.pop();
        let weighted = RangeProof::from_bytes(&long, true).unwrap();
        assert!(verify(&binding, &gens, &st, &weighted).is_err());
    }

    #[test]
    fn weight_in_range_and_batch() {
        let gens = gens();
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let mut items = Vec::new();
        for (s, x_w) in [(0u128, 0u64), (50, 7), (100, 10)] {
            let (gamma, gamma_w) = (Scalar::random(&mut rng), Scalar::random(&mut rng));
            let st = RangeStatementN {
                bound_sq: 100,
                v_s: commit(&gens, s, gamma),
                weight: Some((10, commit(&gens, u128::from(x_w), gamma_w))),
            };
            let opening = RangeOpening {
                s,
                gamma,
                weight: Some((x_w, gamma_w)),
            };
            let binding = [s as u8; 32];
            let proof = prove(&binding, &gens, &st, &opening, &mut rng).unwrap();
            assert_eq!(proof.to_bytes().len(), proof_len(true));
            items.push((binding, st, proof));
        }
        let refs: Vec<_> = items.iter().map(|(b, s, p)| (*b, *s, p)).collect();
        batch_verify(&gens, &refs).unwrap();
        // x_w = W + 1 is refused by the prover.
        let gamma_w = Scalar::random(&mut rng);
        let st = RangeStatementN {
            bound_sq: 100,
            v_s: commit(&gens, 0, Scalar::ZERO),
            weight: Some((10, commit(&gens, 11, gamma_w))),
        };
        let opening = RangeOpening {
            s: 0,
            gamma: Scalar::ZERO,
            weight: Some((11, gamma_w)),
        };
        assert_eq!(
            prove(&[0; 32], &gens, &st, &opening, &mut rng),
            Err(Error::WeightAboveBound {
                weight: 11,
                max: 10
            })
        );
        // A batch with one proof under the wrong binding names it.
        let mut refs = refs;
        refs[1].0 = [0xaa; 32];
        assert_eq!(
            batch_verify(&gens, &refs),
            Err(BatchError::one(1, Error::VerificationFailed))
        );
        // Two bad proofs: both named (D26), not only the first.
        refs[2].0 = [0xbb; 32];
        assert_eq!(
            batch_verify(&gens, &refs).map_err(|e| e.failing()),
            Err(vec![1, 2])
        );
    }
}
