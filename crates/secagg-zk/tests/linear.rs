//! The GHL'21 linear-form argument: completeness, soundness spot checks, byte flips,
//! batch = individual, typed errors.

// Test helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used)]

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use secagg_zk::linear::{self, LinearBatchItem, LinearInstance, LinearProof, LinearWitness};
use secagg_zk::{BatchError, Error, GeneratorSizes, Generators, Transcript};

fn generators() -> Generators {
    Generators::new(GeneratorSizes {
        n_pad: 256,
        projections: 0,
        lpad: 0,
    })
    .unwrap()
}

fn transcript(label: &[u8], c: &RistrettoPoint) -> Transcript {
    let mut t = Transcript::new(b"secagg/v3/validate/linear-test");
    t.append(b"case", label);
    t.append_point(b"C", &c.compress());
    t
}

struct Case {
    b: Vec<Scalar>,
    witness: LinearWitness,
    c: RistrettoPoint,
    proof: LinearProof,
}

impl Case {
    fn inst<'a>(&'a self, set: &Generators) -> LinearInstance<'a> {
        LinearInstance {
            b: &self.b,
            value_gen: *set.f0(),
            blinding_gen: *set.h2(),
        }
    }
    fn verify(&self, set: &Generators, proof: &LinearProof) -> Result<(), Error> {
        linear::verify(
            &mut transcript(b"case", &self.c),
            set.g_vec(),
            &self.inst(set),
            &self.c,
            proof,
        )
    }
}

fn make_case(set: &Generators, n: usize, rng: &mut ChaCha20Rng) -> Case {
    let b: Vec<Scalar> = (0..n).map(|_| Scalar::random(rng)).collect();
    let witness = LinearWitness::new(
        (0..n).map(|_| Scalar::random(rng)).collect(),
        Scalar::random(rng),
    );
    let inst = LinearInstance {
        b: &b,
        value_gen: *set.f0(),
        blinding_gen: *set.h2(),
    };
    let c = witness.statement_point(set.g_vec(), &inst).unwrap();
    let proof = linear::prove(
        &mut transcript(b"case", &c),
        set.g_vec(),
        &inst,
        &witness,
        rng,
    )
    .unwrap();
    Case {
        b,
        witness,
        c,
        proof,
    }
}

#[test]
fn honest_proofs_verify_at_every_length() {
    let set = generators();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    for n in [1, 2, 4, 8, 32, 256] {
        let case = make_case(&set, n, &mut rng);
        assert_eq!(case.verify(&set, &case.proof), Ok(()), "n = {n}");
        let bytes = case.proof.to_bytes();
        assert_eq!(bytes.len(), linear::proof_len(n).unwrap());
        assert_eq!(LinearProof::from_bytes(&bytes, n).unwrap(), case.proof);
    }
}

#[test]
fn wrong_statements_reject() {
    let set = generators();
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let case = make_case(&set, 16, &mut rng);
    let inst = case.inst(&set);
    let gens = set.g_vec();
    // C off by one on the value, the blinding, or a vector generator.
    for delta in [*set.f0(), *set.h2(), set.g_vec()[5]] {
        let c = case.c + delta;
        assert_eq!(
            linear::verify(
                &mut transcript(b"case", &case.c),
                gens,
                &inst,
                &c,
                &case.proof
            ),
            Err(Error::VerificationFailed)
        );
    }
    // Another public vector b (one coordinate changed): the claimed ⟨a, b⟩ no longer holds.
    let mut b2 = case.b.clone();
    b2[3] += Scalar::ONE;
    let other = LinearInstance { b: &b2, ..inst };
    assert_eq!(
        linear::verify(
            &mut transcript(b"case", &case.c),
            gens,
            &other,
            &case.c,
            &case.proof
        ),
        Err(Error::VerificationFailed)
    );
    // Replay into another transcript.
    assert_eq!(
        linear::verify(
            &mut transcript(b"other", &case.c),
            gens,
            &inst,
            &case.c,
            &case.proof
        ),
        Err(Error::VerificationFailed)
    );
    // The prover cannot prove a wrong value: C with ⟨a, b⟩ + 1 on F.
    let lying_c = case.c + set.f0();
    let proof = linear::prove(
        &mut transcript(b"case", &lying_c),
        gens,
        &inst,
        &case.witness,
        &mut rng,
    )
    .unwrap();
    assert_eq!(
        linear::verify(
            &mut transcript(b"case", &lying_c),
            gens,
            &inst,
            &lying_c,
            &proof
        ),
        Err(Error::VerificationFailed)
    );
}

#[test]
fn every_single_byte_flip_rejects() {
    let set = generators();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    for n in [1, 16] {
        let case = make_case(&set, n, &mut rng);
        let bytes = case.proof.to_bytes();
        let (mut decode_errors, mut verify_errors) = (0, 0);
        for i in 0..bytes.len() {
            for mask in [0x01u8, 0x80, 0xff] {
                let mut flipped = bytes.clone();
                flipped[i] ^= mask;
                match LinearProof::from_bytes(&flipped, n) {
                    Err(Error::InvalidPoint { .. } | Error::NonCanonicalScalar { .. }) => {
                        decode_errors += 1
                    }
                    Err(other) => panic!("byte {i} mask {mask:#x}: unexpected {other:?}"),
                    Ok(proof) => {
                        assert_eq!(
                            case.verify(&set, &proof),
                            Err(Error::VerificationFailed),
                            "byte {i} mask {mask:#x}"
                        );
                        verify_errors += 1;
                    }
                }
            }
        }
        assert_eq!(decode_errors + verify_errors, 3 * bytes.len());
        assert!(decode_errors > 0 && verify_errors > 0);
    }
}

#[test]
fn malformed_input_is_typed_errors() {
    let set = generators();
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let case = make_case(&set, 8, &mut rng);
    let bytes = case.proof.to_bytes();
    let expected = bytes.len();
    for len in 0..expected + 40 {
        let mut v = bytes.clone();
        v.resize(len, 0);
        let r = LinearProof::from_bytes(&v, 8);
        if len == expected {
            assert!(r.is_ok());
        } else {
            assert_eq!(r, Err(Error::ProofLength { expected, got: len }));
        }
    }
    assert_eq!(
        LinearProof::from_bytes(&bytes, 12),
        Err(Error::NotPowerOfTwo { n: 12 })
    );
    let short = LinearProof::from_bytes(&bytes[64..], 4).unwrap();
    let r = linear::verify(
        &mut transcript(b"case", &case.c),
        set.g_vec(),
        &case.inst(&set),
        &case.c,
        &short,
    );
    assert!(matches!(r, Err(Error::ProofLength { .. })));
    let b3 = [Scalar::ONE; 3];
    let odd = LinearInstance {
        b: &b3,
        ..case.inst(&set)
    };
    let w3 = LinearWitness::new(vec![Scalar::ONE; 3], Scalar::ONE);
    assert_eq!(
        linear::prove(&mut Transcript::new(b"t"), set.g_vec(), &odd, &w3, &mut rng).err(),
        Some(Error::NotPowerOfTwo { n: 3 })
    );
    assert_eq!(
        linear::prove(
            &mut Transcript::new(b"t"),
            &set.g_vec()[..4],
            &case.inst(&set),
            &case.witness,
            &mut rng
        )
        .err(),
        Some(Error::GeneratorsTooShort { needed: 8, have: 4 })
    );
    let w4 = LinearWitness::new(vec![Scalar::ONE; 4], Scalar::ONE);
    assert_eq!(
        linear::prove(
            &mut Transcript::new(b"t"),
            set.g_vec(),
            &case.inst(&set),
            &w4,
            &mut rng
        )
        .err(),
        Some(Error::LengthMismatch {
            what: "witness",
            expected: 8,
            got: 4
        })
    );
    assert_eq!(format!("{w4:?}"), "LinearWitness { n: 4, .. }");
}

#[test]
fn batch_verification_equals_individual_verification() {
    let set = generators();
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let cases: Vec<Case> = [8, 1, 32, 16, 2]
        .into_iter()
        .map(|n| make_case(&set, n, &mut rng))
        .collect();
    let good: Vec<LinearProof> = cases.iter().map(|c| c.proof.clone()).collect();
    assert_eq!(
        linear::batch_verify(set.g_vec(), items(&set, &cases, &good), &mut rng),
        Ok(())
    );
    for bad in 0..cases.len() {
        let mut proofs = good.clone();
        proofs[bad] = make_case(&set, 1 << proofs[bad].rounds(), &mut rng).proof;
        assert_eq!(
            cases[bad].verify(&set, &proofs[bad]),
            Err(Error::VerificationFailed)
        );
        assert_eq!(
            linear::batch_verify(set.g_vec(), items(&set, &cases, &proofs), &mut rng),
            Err(BatchError::one(bad, Error::VerificationFailed))
        );
    }
}

fn items<'a>(
    set: &Generators,
    cases: &'a [Case],
    proofs: &'a [LinearProof],
) -> Vec<LinearBatchItem<'a>> {
    cases
        .iter()
        .zip(proofs)
        .map(|(c, proof)| LinearBatchItem {
            transcript: transcript(b"case", &c.c),
            inst: c.inst(set),
            c: c.c,
            proof,
        })
        .collect()
}

#[test]
fn odd_statements_are_padded_with_their_own_generators() {
    // N′ = 5 slots padded to 8 with lpad (arguments.md §B.1).
    let set = Generators::new(GeneratorSizes {
        n_pad: 8,
        projections: 0,
        lpad: 3,
    })
    .unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    let base = &set.g_vec()[..5];
    assert_eq!(linear::padded_len(5), Ok(8));
    assert_eq!(linear::padded_len(8), Ok(8));
    assert_eq!(linear::padded_len(0), Ok(1));
    let gens = linear::pad_generators(base, set.lpad()).unwrap();
    assert_eq!(&gens[5..], set.lpad());
    assert_eq!(
        linear::pad_generators(base, &set.lpad()[..2]).err(),
        Some(Error::GeneratorsTooShort { needed: 3, have: 2 })
    );
    let b = linear::pad_coefficients(&(0..5).map(|_| Scalar::random(&mut rng)).collect::<Vec<_>>())
        .unwrap();
    assert_eq!(b[5..], [Scalar::ZERO; 3]);
    let witness = LinearWitness::new(
        (0..5).map(|_| Scalar::random(&mut rng)).collect(),
        Scalar::random(&mut rng),
    )
    .padded()
    .unwrap();
    let inst = LinearInstance {
        b: &b,
        value_gen: *set.f0(),
        blinding_gen: *set.h2(),
    };
    let c = witness.statement_point(&gens, &inst).unwrap();
    let proof = linear::prove(
        &mut transcript(b"pad", &c),
        &gens,
        &inst,
        &witness,
        &mut rng,
    )
    .unwrap();
    assert_eq!(
        linear::verify(&mut transcript(b"pad", &c), &gens, &inst, &c, &proof),
        Ok(())
    );
}
