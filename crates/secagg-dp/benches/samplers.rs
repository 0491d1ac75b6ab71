//! Criterion benches of the exact noise samplers: samples/s of the discrete Gaussian and of
//! Skellam at matching variances (σ ∈ {1, 10, 10^3, 10^5}), batched through `fill` with a
//! ChaCha12 CSPRNG, plus the cost of building a sampler (once per round).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand_chacha::{ChaCha12Rng, ChaCha20Rng};
use rand_core::SeedableRng;
use secagg_dp::sample::{DiscreteGaussian, Skellam};

const SIGMAS: [f64; 4] = [1.0, 10.0, 1e3, 1e5];
const BATCH: usize = 1 << 16;

fn samplers(c: &mut Criterion) {
    let mut g = c.benchmark_group("noise_fill");
    g.throughput(Throughput::Elements(BATCH as u64));
    let mut out = vec![0i64; BATCH];
    for sigma in SIGMAS {
        let var = sigma * sigma;
        let dg = DiscreteGaussian::new(var).unwrap_or_else(|e| unreachable!("{e}"));
        let sk = Skellam::new(var).unwrap_or_else(|e| unreachable!("{e}"));
        let mut rng = ChaCha12Rng::seed_from_u64(1);
        g.bench_function(BenchmarkId::new("discrete_gaussian_chacha12", sigma), |b| {
            b.iter(|| dg.fill(&mut rng, black_box(&mut out)))
        });
        g.bench_function(BenchmarkId::new("skellam_chacha12", sigma), |b| {
            b.iter(|| sk.fill(&mut rng, black_box(&mut out)))
        });
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        g.bench_function(BenchmarkId::new("skellam_chacha20", sigma), |b| {
            b.iter(|| sk.fill(&mut rng, black_box(&mut out)))
        });
    }
    g.finish();
}

fn setup(c: &mut Criterion) {
    let mut g = c.benchmark_group("noise_setup");
    for sigma in [1e3, 1e5] {
        g.bench_function(BenchmarkId::new("skellam_table", sigma), |b| {
            b.iter(|| Skellam::new(black_box(sigma * sigma)))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(std::time::Duration::from_secs(2)).warm_up_time(std::time::Duration::from_millis(500));
    targets = samplers, setup
}
criterion_main!(benches);
