//! The GHL'21 linear proof at the binding argument's padded lengths (N′_pad = 2^11, 2^14, 2^17
//! for d = 10^3, 10^4, 10^5 at J = 91; VALIDATION.md §14.2). `LINEAR_BENCH_LOG2=11,14` picks
//! the sizes. Proof size on stderr.

// A bench aborts on a setup failure; there is no caller to hand an error to.
#![allow(clippy::expect_used)]

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use curve25519_dalek::scalar::Scalar;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use secagg_zk::linear::{self, LinearInstance, LinearWitness};
use secagg_zk::{GeneratorSizes, Generators, Transcript};
use std::hint::black_box;
use std::time::Duration;

fn sizes() -> Vec<u32> {
    std::env::var("LINEAR_BENCH_LOG2")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![11, 14, 17])
}

fn bench(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    for log2 in sizes() {
        let n = 1usize << log2;
        let set = Generators::new(GeneratorSizes {
            n_pad: n,
            projections: 0,
            lpad: 0,
        })
        .expect("sizes");
        let b: Vec<Scalar> = (0..n).map(|_| Scalar::random(&mut rng)).collect();
        let inst = LinearInstance {
            b: &b,
            value_gen: *set.f0(),
            blinding_gen: *set.h2(),
        };
        let witness = LinearWitness::new(
            (0..n).map(|_| Scalar::random(&mut rng)).collect(),
            Scalar::random(&mut rng),
        );
        let point = witness
            .statement_point(set.g_vec(), &inst)
            .expect("statement");
        let proof = linear::prove(
            &mut Transcript::new(b"bench"),
            set.g_vec(),
            &inst,
            &witness,
            &mut rng,
        )
        .expect("prove");
        eprintln!(
            "linear n = 2^{log2}: proof {} bytes",
            proof.to_bytes().len()
        );
        let mut group = c.benchmark_group(format!("linear/n=2^{log2}"));
        group
            .sampling_mode(SamplingMode::Flat)
            .sample_size(10)
            .warm_up_time(Duration::from_millis(1));
        group.measurement_time(Duration::from_secs(if log2 >= 17 { 60 } else { 10 }));
        group.bench_function("prove", |bch| {
            bch.iter(|| {
                linear::prove(
                    &mut Transcript::new(b"bench"),
                    set.g_vec(),
                    &inst,
                    &witness,
                    &mut rng,
                )
                .expect("prove")
            })
        });
        group.bench_function("verify", |bch| {
            bch.iter(|| {
                linear::verify(
                    &mut Transcript::new(b"bench"),
                    set.g_vec(),
                    &inst,
                    &point,
                    black_box(&proof),
                )
                .expect("verify")
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
