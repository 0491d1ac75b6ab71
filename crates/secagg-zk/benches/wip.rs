//! The BP+ zk-WIP at the padded lengths of the norm argument (VALIDATION.md §14.2 needs these
//! figures: N_pad = 2^11, 2^14, 2^17 for d = 10^3, 10^4, 10^5). Run with
//! `cargo bench -p secagg-zk --bench wip`; `WIP_BENCH_LOG2=11,14` picks the sizes.
//!
//! The statement is the norm argument's shape: H-side factors f_i = y^(i+1) (arguments.md §A.3).
//! Reports: prove (one core), verify alone, verify per proof in a batch of 8 (2^11 and 2^14
//! only: making eight 2^17 proofs takes minutes), and the proof size on stderr. The group
//! `wip/primitives` first measures the primitives of VALIDATION.md §14.1 in the same run
//! (constant- and variable-time MSM of 1024 points, the two-term fold, one hash to the group),
//! so that the cost model can be checked on ratios on a shared machine whose load varies.

// A bench aborts on a setup failure; there is no caller to hand an error to.
#![allow(clippy::expect_used)]

use criterion::{BatchSize, Criterion, SamplingMode, criterion_group, criterion_main};
use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{MultiscalarMul, VartimeMultiscalarMul};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use secagg_zk::generators::hash_generator;
use secagg_zk::wip::{self, BatchItem, VectorGenerators, WipInstance, WipWitness};
use secagg_zk::{GeneratorSizes, Generators, Transcript};
use std::hint::black_box;
use std::time::Duration;

fn sizes() -> Vec<u32> {
    std::env::var("WIP_BENCH_LOG2")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![11, 14, 17])
}

fn primitives(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let n = 1024;
    let points: Vec<RistrettoPoint> = (0..n as u32).map(|i| hash_generator("G", i)).collect();
    let scalars: Vec<Scalar> = (0..n).map(|_| Scalar::random(&mut rng)).collect();
    let mut group = c.benchmark_group("wip/primitives");
    group.sample_size(20);
    group.bench_function("ct_msm_1024", |b| {
        b.iter(|| RistrettoPoint::multiscalar_mul(black_box(&scalars), &points))
    });
    group.bench_function("vt_msm_1024", |b| {
        b.iter(|| RistrettoPoint::vartime_multiscalar_mul(black_box(&scalars), &points))
    });
    group.bench_function("vt_fold_2", |b| {
        b.iter(|| RistrettoPoint::vartime_multiscalar_mul(black_box(&scalars[..2]), &points[..2]))
    });
    group.bench_function("hash_to_group", |b| {
        b.iter(|| hash_generator("G", black_box(7)))
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    primitives(c);
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    for log2 in sizes() {
        let n = 1usize << log2;
        let set = Generators::new(GeneratorSizes {
            n_pad: n,
            projections: 0,
            lpad: 0,
        })
        .expect("sizes");
        let gens = VectorGenerators {
            g: set.g_vec(),
            h: set.h_vec(),
        };
        let y = Scalar::from(0x1234_5678u64);
        let mut factors = Vec::with_capacity(n);
        let mut acc = y;
        for _ in 0..n {
            factors.push(acc);
            acc *= y;
        }
        let inst = WipInstance {
            n,
            y,
            h_factors: Some(&factors),
            value_gen: *set.g0(),
            blinding_gen: *set.h(),
        };
        let make_witness = |rng: &mut ChaCha20Rng| {
            let a = (0..n).map(|_| Scalar::random(rng)).collect();
            let b = (0..n).map(|_| Scalar::random(rng)).collect();
            WipWitness::new(a, b, Scalar::random(rng)).expect("lengths")
        };
        let witness = make_witness(&mut rng);
        let p = witness.statement_point(&gens, &inst).expect("statement");
        let proof = wip::prove(
            &mut Transcript::new(b"bench"),
            &gens,
            &inst,
            &witness,
            &mut rng,
        )
        .expect("prove");
        eprintln!("wip n = 2^{log2}: proof {} bytes", proof.to_bytes().len());

        let mut group = c.benchmark_group(format!("wip/n=2^{log2}"));
        group
            .sampling_mode(SamplingMode::Flat)
            .sample_size(10)
            .warm_up_time(Duration::from_millis(1));
        group.measurement_time(Duration::from_secs(if log2 >= 17 { 120 } else { 20 }));
        group.bench_function("prove", |bch| {
            bch.iter(|| {
                wip::prove(
                    &mut Transcript::new(b"bench"),
                    &gens,
                    &inst,
                    &witness,
                    &mut rng,
                )
                .expect("prove")
            })
        });
        group.bench_function("verify", |bch| {
            bch.iter(|| {
                wip::verify(
                    &mut Transcript::new(b"bench"),
                    &gens,
                    &inst,
                    &p,
                    black_box(&proof),
                )
                .expect("verify")
            })
        });
        if log2 <= 14 {
            const BATCH: usize = 8;
            let proofs: Vec<_> = (0..BATCH)
                .map(|_| {
                    let w = make_witness(&mut rng);
                    let p = w.statement_point(&gens, &inst).expect("statement");
                    let pr = wip::prove(&mut Transcript::new(b"bench"), &gens, &inst, &w, &mut rng)
                        .expect("prove");
                    (p, pr)
                })
                .collect();
            group.bench_function(format!("batch_verify_{BATCH}"), |bch| {
                bch.iter_batched(
                    || {
                        proofs
                            .iter()
                            .map(|(p, pr)| BatchItem {
                                transcript: Transcript::new(b"bench"),
                                inst,
                                p: *p,
                                proof: pr,
                            })
                            .collect::<Vec<_>>()
                    },
                    |items| wip::batch_verify(&gens, items, &mut rng).expect("batch"),
                    BatchSize::SmallInput,
                )
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
