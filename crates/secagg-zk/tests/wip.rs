//! The BP+ zk-WIP: completeness, soundness spot checks, byte flips, batch = individual, and
//! typed errors on malformed input.

// Test helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used)]

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use secagg_zk::wip::{self, BatchItem, VectorGenerators, WipInstance, WipProof, WipWitness};
use secagg_zk::{BatchError, Error, GeneratorSizes, Generators, Transcript};

const MAX_N: usize = 256;

fn generators() -> Generators {
    Generators::new(GeneratorSizes {
        n_pad: MAX_N,
        projections: 0,
        lpad: 0,
    })
    .unwrap()
}

fn powers(y: Scalar, n: usize) -> Vec<Scalar> {
    let mut out = Vec::with_capacity(n);
    let mut acc = y;
    for _ in 0..n {
        out.push(acc);
        acc *= y;
    }
    out
}

fn random_witness(n: usize, rng: &mut ChaCha20Rng) -> WipWitness {
    let a = (0..n).map(|_| Scalar::random(rng)).collect();
    let b = (0..n).map(|_| Scalar::random(rng)).collect();
    WipWitness::new(a, b, Scalar::random(rng)).unwrap()
}

/// A transcript that has absorbed the statement, as the WIP's callers must.
fn transcript(label: &[u8], p: &RistrettoPoint) -> Transcript {
    let mut t = Transcript::new(b"secagg/v3/validate/wip-test");
    t.append(b"case", label);
    t.append_point(b"P", &p.compress());
    t
}

struct Case {
    inst_y: Scalar,
    factors: Option<Vec<Scalar>>,
    witness: WipWitness,
    p: RistrettoPoint,
    proof: WipProof,
}

impl Case {
    fn inst<'a>(&'a self, set: &Generators) -> WipInstance<'a> {
        WipInstance {
            n: self.witness_len(),
            y: self.inst_y,
            h_factors: self.factors.as_deref(),
            value_gen: *set.g0(),
            blinding_gen: *set.h(),
        }
    }
    fn witness_len(&self) -> usize {
        1 << self.proof.rounds()
    }
    fn verify(&self, set: &Generators, proof: &WipProof) -> Result<(), Error> {
        let gens = VectorGenerators {
            g: set.g_vec(),
            h: set.h_vec(),
        };
        wip::verify(
            &mut transcript(b"case", &self.p),
            &gens,
            &self.inst(set),
            &self.p,
            proof,
        )
    }
}

fn make_case(set: &Generators, n: usize, with_factors: bool, rng: &mut ChaCha20Rng) -> Case {
    let gens = VectorGenerators {
        g: set.g_vec(),
        h: set.h_vec(),
    };
    let y = Scalar::random(rng);
    let factors = with_factors.then(|| powers(y, n));
    let witness = random_witness(n, rng);
    let inst = WipInstance {
        n,
        y,
        h_factors: factors.as_deref(),
        value_gen: *set.g0(),
        blinding_gen: *set.h(),
    };
    let p = witness.statement_point(&gens, &inst).unwrap();
    let proof = wip::prove(&mut transcript(b"case", &p), &gens, &inst, &witness, rng).unwrap();
    Case {
        inst_y: y,
        factors,
        witness,
        p,
        proof,
    }
}

#[test]
fn honest_proofs_verify_at_every_length() {
    let set = generators();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    for n in [1, 2, 4, 8, 16, 64, 256] {
        for with_factors in [false, true] {
            let case = make_case(&set, n, with_factors, &mut rng);
            assert_eq!(
                case.verify(&set, &case.proof),
                Ok(()),
                "n = {n}, factors = {with_factors}"
            );
            let bytes = case.proof.to_bytes();
            assert_eq!(bytes.len(), wip::proof_len(n).unwrap());
            assert_eq!(WipProof::from_bytes(&bytes, n).unwrap(), case.proof);
        }
    }
}

#[test]
fn h_factors_mean_scaled_h_generators() {
    // A proof made with factors f verifies against the explicit generators f_i·H_i.
    let set = generators();
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let n = 16;
    let case = make_case(&set, n, true, &mut rng);
    let factors = case.factors.clone().unwrap();
    let scaled: Vec<RistrettoPoint> = set.h_vec()[..n]
        .iter()
        .zip(&factors)
        .map(|(h, f)| h * f)
        .collect();
    let gens = VectorGenerators {
        g: set.g_vec(),
        h: &scaled,
    };
    let inst = WipInstance {
        h_factors: None,
        ..case.inst(&set)
    };
    assert_eq!(
        wip::verify(
            &mut transcript(b"case", &case.p),
            &gens,
            &inst,
            &case.p,
            &case.proof
        ),
        Ok(())
    );
}

#[test]
fn wrong_statements_reject() {
    let set = generators();
    let gens = VectorGenerators {
        g: set.g_vec(),
        h: set.h_vec(),
    };
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let n = 8;
    let case = make_case(&set, n, true, &mut rng);
    let inst = case.inst(&set);
    let fail = Err(Error::VerificationFailed);
    // Another P (value off by one; blinding off by one), same transcript.
    for delta in [*set.g0(), *set.h(), set.g_vec()[3]] {
        let p = case.p + delta;
        assert_eq!(
            wip::verify(
                &mut transcript(b"case", &case.p),
                &gens,
                &inst,
                &p,
                &case.proof
            ),
            fail
        );
    }
    // Another transcript (replay into another context).
    assert_eq!(
        wip::verify(
            &mut transcript(b"other", &case.p),
            &gens,
            &inst,
            &case.p,
            &case.proof
        ),
        fail
    );
    // Another weight, other factors, other generators.
    let other_y = WipInstance {
        y: case.inst_y + Scalar::ONE,
        ..inst
    };
    assert_eq!(
        wip::verify(
            &mut transcript(b"case", &case.p),
            &gens,
            &other_y,
            &case.p,
            &case.proof
        ),
        fail
    );
    let no_factors = WipInstance {
        h_factors: None,
        ..inst
    };
    assert_eq!(
        wip::verify(
            &mut transcript(b"case", &case.p),
            &gens,
            &no_factors,
            &case.p,
            &case.proof
        ),
        fail
    );
    let swapped = VectorGenerators {
        g: set.h_vec(),
        h: set.g_vec(),
    };
    assert_eq!(
        wip::verify(
            &mut transcript(b"case", &case.p),
            &swapped,
            &inst,
            &case.p,
            &case.proof
        ),
        fail
    );
    // A proof for a witness whose value is not a ⊙_y b: the prover cannot make one.
    let value = case.witness.weighted_inner_product(&case.inst_y);
    let lying_p = case.p - set.g0() * value + set.g0() * (value + Scalar::ONE);
    let proof = wip::prove(
        &mut transcript(b"case", &lying_p),
        &gens,
        &inst,
        &case.witness,
        &mut rng,
    )
    .unwrap();
    assert_eq!(
        wip::verify(
            &mut transcript(b"case", &lying_p),
            &gens,
            &inst,
            &lying_p,
            &proof
        ),
        fail
    );
}

#[test]
fn every_single_byte_flip_rejects() {
    let set = generators();
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    for n in [1, 16] {
        let case = make_case(&set, n, true, &mut rng);
        let bytes = case.proof.to_bytes();
        let (mut decode_errors, mut verify_errors) = (0, 0);
        for i in 0..bytes.len() {
            for mask in [0x01u8, 0x80, 0xff] {
                let mut flipped = bytes.clone();
                flipped[i] ^= mask;
                match WipProof::from_bytes(&flipped, n) {
                    Err(Error::InvalidPoint { .. } | Error::NonCanonicalScalar { .. }) => {
                        decode_errors += 1
                    }
                    Err(other) => panic!("byte {i} mask {mask:#x}: unexpected {other:?}"),
                    Ok(proof) => {
                        assert_eq!(
                            case.verify(&set, &proof),
                            Err(Error::VerificationFailed),
                            "byte {i} mask {mask:#x} accepted"
                        );
                        verify_errors += 1;
                    }
                }
            }
        }
        assert_eq!(decode_errors + verify_errors, 3 * bytes.len());
        assert!(
            decode_errors > 0 && verify_errors > 0,
            "both paths exercised"
        );
    }
}

#[test]
fn malformed_proof_bytes_are_typed_errors() {
    let set = generators();
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let case = make_case(&set, 8, false, &mut rng);
    let bytes = case.proof.to_bytes();
    let expected = bytes.len();
    for len in 0..expected + 40 {
        let mut v = bytes.clone();
        v.resize(len, 0);
        let r = WipProof::from_bytes(&v, 8);
        if len == expected {
            assert!(r.is_ok());
        } else {
            assert_eq!(r, Err(Error::ProofLength { expected, got: len }));
        }
    }
    assert_eq!(
        WipProof::from_bytes(&bytes, 6),
        Err(Error::NotPowerOfTwo { n: 6 })
    );
    assert_eq!(
        WipProof::from_bytes(&bytes, 0),
        Err(Error::NotPowerOfTwo { n: 0 })
    );
    // A proof decoded for another length never reaches verification with the wrong round count.
    let short = WipProof::from_bytes(&case.proof.to_bytes()[64..], 4).unwrap();
    let gens = VectorGenerators {
        g: set.g_vec(),
        h: set.h_vec(),
    };
    let r = wip::verify(
        &mut transcript(b"case", &case.p),
        &gens,
        &case.inst(&set),
        &case.p,
        &short,
    );
    assert!(matches!(r, Err(Error::ProofLength { .. })));
    // All-0xff bytes: the first point does not decompress.
    assert_eq!(
        WipProof::from_bytes(&vec![0xff; expected], 8),
        Err(Error::InvalidPoint { index: 0 })
    );
}

#[test]
fn malformed_statements_are_typed_errors() {
    let set = generators();
    let gens = VectorGenerators {
        g: set.g_vec(),
        h: set.h_vec(),
    };
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    let w = random_witness(4, &mut rng);
    let base = WipInstance {
        n: 4,
        y: Scalar::ONE,
        h_factors: None,
        value_gen: *set.g0(),
        blinding_gen: *set.h(),
    };
    let prove = |inst: &WipInstance<'_>, gens: &VectorGenerators<'_>, rng: &mut ChaCha20Rng| {
        wip::prove(&mut Transcript::new(b"t"), gens, inst, &w, rng).err()
    };
    assert_eq!(
        prove(&WipInstance { n: 3, ..base }, &gens, &mut rng),
        Some(Error::NotPowerOfTwo { n: 3 })
    );
    assert_eq!(
        prove(&WipInstance { n: 8, ..base }, &gens, &mut rng),
        Some(Error::LengthMismatch {
            what: "witness",
            expected: 8,
            got: 4
        })
    );
    assert_eq!(
        prove(
            &WipInstance {
                y: Scalar::ZERO,
                ..base
            },
            &gens,
            &mut rng
        ),
        Some(Error::ZeroWeight)
    );
    let short = [Scalar::ONE; 3];
    assert_eq!(
        prove(
            &WipInstance {
                h_factors: Some(&short),
                ..base
            },
            &gens,
            &mut rng
        ),
        Some(Error::LengthMismatch {
            what: "h_factors",
            expected: 4,
            got: 3
        })
    );
    let few = VectorGenerators {
        g: &set.g_vec()[..2],
        h: set.h_vec(),
    };
    assert_eq!(
        prove(&base, &few, &mut rng),
        Some(Error::GeneratorsTooShort { needed: 4, have: 2 })
    );
    assert_eq!(
        WipWitness::new(vec![Scalar::ONE; 2], vec![Scalar::ONE; 3], Scalar::ZERO).err(),
        Some(Error::LengthMismatch {
            what: "witness b",
            expected: 2,
            got: 3
        })
    );
}

#[test]
fn witness_debug_hides_the_secrets() {
    let w = WipWitness::new(
        vec![Scalar::from(0xdead_beefu64); 2],
        vec![Scalar::ONE; 2],
        Scalar::ONE,
    )
    .unwrap();
    let shown = format!("{w:?}");
    assert_eq!(shown, "WipWitness { n: 2, .. }");
}

fn items<'a>(set: &Generators, cases: &'a [Case], proofs: &'a [WipProof]) -> Vec<BatchItem<'a>> {
    cases
        .iter()
        .zip(proofs)
        .map(|(c, proof)| BatchItem {
            transcript: transcript(b"case", &c.p),
            inst: c.inst(set),
            p: c.p,
            proof,
        })
        .collect()
}

#[test]
fn batch_verification_equals_individual_verification() {
    let set = generators();
    let gens = VectorGenerators {
        g: set.g_vec(),
        h: set.h_vec(),
    };
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    // Mixed lengths and factor settings in one batch.
    let cases: Vec<Case> = [
        (8, true),
        (1, false),
        (32, true),
        (16, false),
        (2, true),
        (64, true),
    ]
    .into_iter()
    .map(|(n, f)| make_case(&set, n, f, &mut rng))
    .collect();
    let good: Vec<WipProof> = cases.iter().map(|c| c.proof.clone()).collect();
    assert_eq!(
        wip::batch_verify(&gens, items(&set, &cases, &good), &mut rng),
        Ok(())
    );
    assert_eq!(wip::batch_verify(&gens, Vec::new(), &mut rng), Ok(()));

    // Each single bad proof (a valid proof of another statement of the same length, so it
    // decodes and only the equation fails) makes the batch reject and is named.
    for bad in 0..cases.len() {
        let mut proofs = good.clone();
        let other = make_case(&set, 1 << proofs[bad].rounds(), true, &mut rng);
        proofs[bad] = other.proof.clone();
        assert_eq!(
            cases[bad].verify(&set, &proofs[bad]),
            Err(Error::VerificationFailed)
        );
        assert_eq!(
            wip::batch_verify(&gens, items(&set, &cases, &proofs), &mut rng),
            Err(BatchError::one(bad, Error::VerificationFailed))
        );
    }

    // Random mixtures: the batch accepts exactly when every proof does alone.
    for round in 0..8u64 {
        let mut proofs = good.clone();
        for (i, p) in proofs.iter_mut().enumerate() {
            if (round >> (i % 3)) & 1 == 1 && i % 2 == round as usize % 2 {
                *p = make_case(&set, 1 << p.rounds(), false, &mut rng).proof;
            }
        }
        let individual: Vec<bool> = cases
            .iter()
            .zip(&proofs)
            .map(|(c, p)| c.verify(&set, p).is_ok())
            .collect();
        let batch = wip::batch_verify(&gens, items(&set, &cases, &proofs), &mut rng);
        // Every proof that fails alone is named (D26), not only the first.
        let bad: Vec<usize> = (0..individual.len()).filter(|i| !individual[*i]).collect();
        if bad.is_empty() {
            assert_eq!(batch, Ok(()));
        } else {
            assert_eq!(
                batch,
                Err(BatchError::Proofs(
                    bad.iter()
                        .map(|i| (*i, Error::VerificationFailed))
                        .collect()
                ))
            );
        }
    }
}

#[test]
fn proofs_are_randomised() {
    // Two proofs of one statement differ (fresh blindings each time: zero knowledge needs it).
    let set = generators();
    let gens = VectorGenerators {
        g: set.g_vec(),
        h: set.h_vec(),
    };
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let case = make_case(&set, 4, true, &mut rng);
    let again = wip::prove(
        &mut transcript(b"case", &case.p),
        &gens,
        &case.inst(&set),
        &case.witness,
        &mut rng,
    )
    .unwrap();
    assert_ne!(again.to_bytes(), case.proof.to_bytes());
    assert_eq!(case.verify(&set, &again), Ok(()));
}
