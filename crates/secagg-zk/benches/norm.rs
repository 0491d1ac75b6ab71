//! Statement N end to end (VALIDATION.md §7.1, §14.2): prove, verify alone, and batch
//! verification of 4 proofs and of 100 (a round's batch; criterion's throughput line gives the
//! time per client), at d = 1,000 (N_pad = 2^11) and d = 10,000 (N_pad = 2^14); the proof
//! size on stderr. Making the 100 proofs at d = 10^4 takes a few minutes of setup. Run with
//! `cargo bench -p secagg-zk --bench norm`; `NORM_BENCH_D=1000` picks the sizes,
//! `NORM_BENCH_BATCH=4,100` the batch sizes, `NORM_BENCH_DISTINCT=3` fills batches from that
//! many distinct proofs (for d = 10^5; see [`distinct`]), `PROVER_THREADS=2` proves on two
//! threads. Unsigned-style statement (no weight
//! coordinate), B_enc² = 2^40, x uniform in ±2^16 scaled to the bound. `secagg bench
//! --validate` measures the same through the round's calls, beside the plain round.

// A bench aborts on a setup failure; there is no caller to hand an error to.
#![allow(clippy::expect_used)]

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use curve25519_dalek::scalar::Scalar;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use secagg_zk::Generators;
use secagg_zk::codec::encode_norm_proof;
use secagg_zk::norm::{self, NormContext, NormParams, NormWitness};
use std::hint::black_box;
use std::time::Duration;

fn sizes() -> Vec<usize> {
    std::env::var("NORM_BENCH_D")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1000, 10_000])
}

fn batches(d: usize) -> Vec<u64> {
    std::env::var("NORM_BENCH_BATCH")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| if d <= 10_000 { vec![4, 100] } else { vec![4] })
}

/// `NORM_BENCH_DISTINCT=k`: a batch holds at most k distinct proofs, repeated (each copy with
/// its own proof's context) to fill it; the verifier's work per item is the same for a copy.
/// Makes a round's batch affordable at d = 10^5 (`NORM_BENCH_D=100000 NORM_BENCH_BATCH=100
/// NORM_BENCH_DISTINCT=3`), where 100 distinct proofs take ≈ 20 minutes of setup.
fn distinct(batch: u64) -> u64 {
    std::env::var("NORM_BENCH_DISTINCT")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map_or(batch, |k| k.clamp(1, batch.max(1)))
}

fn witness(d: usize, bound_sq: u64, rng: &mut ChaCha20Rng) -> NormWitness {
    // Entries in ±2^16, then halved until the norm is within the bound.
    let mut x: Vec<i64> = (0..d)
        .map(|_| i64::from(rng.next_u32() as u16) - (1 << 15))
        .collect();
    while x.iter().map(|v| (v * v) as u128).sum::<u128>() > u128::from(bound_sq) {
        for v in &mut x {
            *v /= 2;
        }
    }
    NormWitness::new(x, Scalar::random(rng))
}

fn bench(c: &mut Criterion) {
    // `PROVER_THREADS=2`: the prover's MSMs and folds on two threads (VALIDATION.md §14.4).
    if let Some(t) = std::env::var("PROVER_THREADS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
    {
        eprintln!("prover threads: {}", secagg_zk::set_prover_threads(t));
    }
    let mut rng = ChaCha20Rng::seed_from_u64(21);
    for d in sizes() {
        let params = NormParams::new(d, 1 << 40, None).expect("params");
        let gens = Generators::new(params.generator_sizes()).expect("generators");
        let log2 = params.n_pad().trailing_zeros();
        let ctx = |client| NormContext {
            session: [5; 32],
            client,
            upload_hash: [6; 32],
        };
        let w = witness(d, params.bound_sq(), &mut rng);
        let proof = norm::prove(&gens, &params, &ctx(0), &w, &mut rng).expect("prove");
        eprintln!(
            "norm d = {d} (N_pad = 2^{log2}): proof {} bytes",
            encode_norm_proof(&params, &proof).len()
        );
        let mut group = c.benchmark_group(format!("norm/d={d}"));
        group
            .sampling_mode(SamplingMode::Flat)
            .sample_size(10)
            .warm_up_time(Duration::from_millis(1))
            .measurement_time(Duration::from_secs(if log2 >= 14 { 20 } else { 5 }));
        group.bench_function("prove", |b| {
            b.iter(|| norm::prove(&gens, &params, &ctx(0), &w, &mut rng).expect("prove"))
        });
        group.bench_function("verify", |b| {
            b.iter(|| norm::verify(&gens, &params, &ctx(0), black_box(&proof)).expect("verify"))
        });
        // Batch verification, reported per proof (Throughput: one element = one client): 4
        // proofs at every size, and a round's worth (100, issue 11's goal is ≤ 50 ms per client
        // at d = 10^4) up to d = 10^4. `NORM_BENCH_BATCH=4,100` overrides.
        for batch in batches(d) {
            let k = distinct(batch);
            let proofs: Vec<_> = (0..k)
                .map(|i| {
                    let w = witness(d, params.bound_sq(), &mut rng);
                    norm::prove(&gens, &params, &ctx(i), &w, &mut rng).expect("prove")
                })
                .collect();
            let items: Vec<_> = (0..batch)
                .map(|i| (params, ctx(i % k), &proofs[(i % k) as usize]))
                .collect();
            group.throughput(Throughput::Elements(batch));
            let name = if k < batch {
                format!("batch_verify_{batch}_from_{k}_distinct")
            } else {
                format!("batch_verify_{batch}")
            };
            group.bench_function(name, |b| {
                b.iter(|| norm::batch_verify(&gens, black_box(&items), &mut rng).expect("batch"))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
