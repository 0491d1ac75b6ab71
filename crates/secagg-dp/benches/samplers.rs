//! Criterion benches of the exact noise samplers: samples/s of the discrete Gaussian and of
//! Skellam at matching variances (σ ∈ {1, 10, 10^3, 10^5}), batched through `fill`, with the
//! AES-128-CTR noise CSPRNG the pipeline uses and with ChaCha12; the cost of building a
//! sampler (once per round); one client's whole encoding at d = 2^20; and, side by side at
//! d = 10^6, one client's noise against its mask work (21 AES-CTR masks, as with k = 20
//! neighbours).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand_chacha::ChaCha12Rng;
use rand_core::SeedableRng;
use secagg_dp::pipeline::{DpEncoding, DpSetup, NoiseKind};
use secagg_dp::sample::{DiscreteGaussian, NoiseRng, Skellam};

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
        let mut aes = NoiseRng::from_seed(&[1; 32]);
        let mut chacha = ChaCha12Rng::seed_from_u64(1);
        g.bench_function(BenchmarkId::new("discrete_gaussian_aes", sigma), |b| {
            b.iter(|| dg.fill(&mut aes, black_box(&mut out)))
        });
        g.bench_function(BenchmarkId::new("skellam_aes", sigma), |b| {
            b.iter(|| sk.fill(&mut aes, black_box(&mut out)))
        });
        let cks = DiscreteGaussian::cks(var).unwrap_or_else(|e| unreachable!("{e}"));
        g.bench_function(BenchmarkId::new("discrete_gaussian_cks_aes", sigma), |b| {
            b.iter(|| cks.fill(&mut aes, black_box(&mut out)))
        });
        g.bench_function(BenchmarkId::new("discrete_gaussian_chacha12", sigma), |b| {
            b.iter(|| dg.fill(&mut chacha, black_box(&mut out)))
        });
        g.bench_function(BenchmarkId::new("skellam_chacha12", sigma), |b| {
            b.iter(|| sk.fill(&mut chacha, black_box(&mut out)))
        });
    }
    g.finish();
}

fn setup(c: &mut Criterion) {
    let mut g = c.benchmark_group("noise_setup");
    for sigma in [1e3, 4096.0, 1e5] {
        g.bench_function(BenchmarkId::new("skellam_table", sigma), |b| {
            b.iter(|| Skellam::new(black_box(sigma * sigma)))
        });
    }
    g.finish();
}

/// One client's encode (clip, rotate, round, noise, wrap) at d = 2^20, 100 clients, 32 bits.
fn client(c: &mut Criterion) {
    let mut g = c.benchmark_group("client_encode");
    let d = 1 << 20;
    let x: Vec<f64> = (0..d).map(|i| ((i * 7919) % 1000) as f64 * 1e-6).collect();
    for (name, noise, z) in [
        ("no_noise", NoiseKind::DiscreteGaussian, 0.0),
        ("discrete_gaussian", NoiseKind::DiscreteGaussian, 1.0),
        ("skellam", NoiseKind::Skellam, 1.0),
    ] {
        let mut s = DpSetup::new(d, 1.0, z, 32, 100, 80, [7; 32]);
        s.noise = noise;
        let enc = DpEncoding::new(&s).unwrap_or_else(|e| unreachable!("{e}"));
        let sampler = enc.client_noise().unwrap_or_else(|e| unreachable!("{e}"));
        let mut rng = ChaCha12Rng::seed_from_u64(2);
        g.throughput(Throughput::Elements(d as u64));
        g.bench_function(BenchmarkId::new(name, d), |b| {
            b.iter(|| enc.encode_with(&sampler, black_box(&x), &mut rng))
        });
    }
    g.finish();
}

/// One client's noise at d = 10^6 (100 clients, 32 bits, z = 1, the share sized for 80
/// survivors) next to that client's mask expansion: 20 pairwise masks and its self mask.
fn noise_vs_masks(c: &mut Criterion) {
    use secagg_core::PrgKind;
    use secagg_core::prg::{MaskStream, Sign, apply_masks};
    use secagg_core::ring::Modulus;
    let d = 1_000_000;
    let mut g = c.benchmark_group("noise_vs_masks");
    g.throughput(Throughput::Elements(d as u64));
    let m = Modulus::new(32).unwrap_or_else(|| unreachable!());
    let mut v = vec![0u64; d];
    g.bench_function(BenchmarkId::new("masks_k20_aes", d), |b| {
        b.iter(|| {
            let mut s: Vec<MaskStream> = (0..21u8)
                .map(|i| MaskStream::new(PrgKind::Aes128Ctr, &[i; 32], Sign::Plus))
                .collect();
            apply_masks(black_box(&mut v), m, &mut s);
        })
    });
    let mut noise = vec![0i64; d];
    for (name, kind) in [
        ("discrete_gaussian", NoiseKind::DiscreteGaussian),
        ("skellam", NoiseKind::Skellam),
    ] {
        let mut s = DpSetup::new(d, 1.0, 1.0, 32, 100, 80, [7; 32]);
        s.noise = kind;
        let enc = DpEncoding::new(&s).unwrap_or_else(|e| unreachable!("{e}"));
        let sampler = enc.client_noise().unwrap_or_else(|e| unreachable!("{e}"));
        eprintln!(
            "noise_vs_masks: {name} share σ = {:.1}",
            enc.local_variance().sqrt()
        );
        let mut rng = NoiseRng::from_seed(&[3; 32]);
        g.bench_function(BenchmarkId::new(name, d), |b| {
            b.iter(|| sampler.add_to(black_box(&mut noise), &mut rng))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    targets = samplers, setup, client, noise_vs_masks
}
criterion_main!(benches);
