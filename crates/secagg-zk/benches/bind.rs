//! Statement B end to end (VALIDATION.md §7.2, §14.2): prove and verify at d = 1,000
//! (N′_pad = 2^11) and d = 10,000 (N′_pad = 2^14), with J = 91 projections, k = 52 neighbours,
//! b = 32 (the n = 1,000, α = 5% round of §14). Run with `cargo bench -p secagg-zk --bench
//! bind`; `BIND_BENCH_D=1000` picks the sizes, `PROVER_THREADS=2` proves on two threads. The honest statement (masks, carries, ρ, Y_j,
//! O_u, P_uv) is built once per size, outside the timings.

// A bench aborts on a setup failure; there is no caller to hand an error to.
#![allow(clippy::expect_used)]

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::MultiscalarMul;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use secagg_zk::Generators;
use secagg_zk::bind::{self, BindContext, BindParams, BindStatement, BindWitness};
use secagg_zk::codec::encode_bind_proof;
use std::hint::black_box;
use std::time::Duration;

const J: usize = 91;
const K: usize = 52;
const BITS: u32 = 32;

fn sizes() -> Vec<usize> {
    std::env::var("BIND_BENCH_D")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1000, 10_000])
}

fn scalar(v: i128) -> Scalar {
    let s = Scalar::from(v.unsigned_abs());
    if v < 0 { -s } else { s }
}

fn bench(c: &mut Criterion) {
    // `PROVER_THREADS=2`: the prover's MSMs and folds on two threads (VALIDATION.md §14.4).
    if let Some(t) = std::env::var("PROVER_THREADS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
    {
        eprintln!("prover threads: {}", secagg_zk::set_prover_threads(t));
    }
    let mut rng = ChaCha20Rng::seed_from_u64(31);
    for d in sizes() {
        let params = BindParams::new(d, J, K, BITS).expect("params");
        let gens = Generators::new(params.generator_sizes()).expect("generators");
        let modulus = 1i64 << BITS;
        let x: Vec<i64> = (0..d)
            .map(|_| i64::from(rng.next_u32() % 2001) - 1000)
            .collect();
        // Mask 0 is the self mask, then K pair masks with alternating signs.
        let signs: Vec<i64> = (0..=K).map(|s| if s % 2 == 1 { -1 } else { 1 }).collect();
        let masks: Vec<Vec<i64>> = (0..=K)
            .map(|_| (0..d).map(|_| i64::from(rng.next_u32())).collect())
            .collect();
        let m: Vec<i64> = (0..d)
            .map(|i| (0..=K).map(|s| signs[s] * masks[s][i]).sum())
            .collect();
        let y_u: Vec<i64> = (0..d).map(|i| (x[i] + m[i]).rem_euclid(modulus)).collect();
        let carries: Vec<i64> = (0..d).map(|i| (x[i] + m[i] - y_u[i]) / modulus).collect();
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        let packed = bind::Rho::expand(&key, J, d).expect("rho");
        let rho: Vec<Vec<u8>> = (0..J)
            .map(|j| (0..d).map(|i| u8::from(packed.bit(j, i))).collect())
            .collect();
        let proj = |v: &[i64], r: &[u8]| -> i128 {
            v.iter()
                .zip(r)
                .filter(|(_, b)| **b == 1)
                .map(|(a, _)| i128::from(*a))
                .sum()
        };
        let y: Vec<i128> = rho.iter().map(|r| proj(&y_u, r)).collect();
        let omega: Vec<i64> = rho.iter().map(|r| proj(&carries, r) as i64).collect();
        let r_parts: Vec<Scalar> = (0..=K).map(|_| Scalar::random(&mut rng)).collect();
        let beta: Vec<Scalar> = (0..=K).map(|_| Scalar::random(&mut rng)).collect();
        let commit = |s: usize| -> RistrettoPoint {
            let t: Vec<Scalar> = rho.iter().map(|r| scalar(proj(&masks[s], r))).collect();
            RistrettoPoint::multiscalar_mul(
                t.iter().chain([&r_parts[s], &beta[s]]),
                gens.tau()[..J].iter().chain([gens.r(), gens.h2()]),
            )
        };
        let o_u = commit(0);
        let pairs: Vec<(bool, RistrettoPoint)> =
            (1..=K).map(|s| (signs[s] == 1, commit(s))).collect();
        let signed_sum = |v: &[Scalar]| -> Scalar {
            (0..=K)
                .map(|s| if signs[s] == 1 { v[s] } else { -v[s] })
                .sum()
        };
        let r_u = signed_sum(&r_parts);
        let t_blind = signed_sum(&beta);
        let tau: Vec<i128> = rho
            .iter()
            .map(|r| {
                (0..=K)
                    .map(|s| i128::from(signs[s]) * proj(&masks[s], r))
                    .sum()
            })
            .collect();
        let k_basis = gens.k_basis(d).expect("k");
        let xs: Vec<Scalar> = x.iter().map(|v| scalar(i128::from(*v))).collect();
        let c_u = RistrettoPoint::multiscalar_mul(
            xs.iter().chain([&r_u]),
            k_basis.iter().chain([gens.h()]),
        );
        let st = BindStatement {
            c_u,
            rho: &packed,
            y: &y,
            o_u,
            pairs: &pairs,
        };
        let ctx = BindContext {
            session: [1; 32],
            client: 2,
            kappa: [3; 32],
            upload_hash: [4; 32],
            bitmap: vec![0xff; 7],
        };
        let witness = BindWitness {
            x,
            r_u,
            tau,
            t_blind,
            omega,
        };
        let proof = bind::prove(&gens, &params, &ctx, &st, &witness, &mut rng).expect("prove");
        bind::verify(&gens, &params, &ctx, &st, &proof).expect("verify");
        let log2 = params.n_prime_pad().trailing_zeros();
        eprintln!(
            "bind d = {d} (N'_pad = 2^{log2}): proof {} bytes",
            encode_bind_proof(&params, &proof).len()
        );
        let mut group = c.benchmark_group(format!("bind/d={d}"));
        group
            .sampling_mode(SamplingMode::Flat)
            .sample_size(10)
            .warm_up_time(Duration::from_millis(1))
            .measurement_time(Duration::from_secs(if log2 >= 14 { 20 } else { 5 }));
        group.bench_function("prove", |b| {
            b.iter(|| bind::prove(&gens, &params, &ctx, &st, &witness, &mut rng).expect("prove"))
        });
        group.bench_function("verify", |b| {
            b.iter(|| bind::verify(&gens, &params, &ctx, &st, black_box(&proof)).expect("verify"))
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
