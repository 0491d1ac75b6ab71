//! Criterion benches of Shamir secret sharing over GF(2^61 - 1): a client splitting its two
//! 32-byte secrets among its neighbours, and the server reconstructing them, with and without
//! cached Lagrange coefficients (the server reuses one set of survivors for many secrets), and
//! with error correction when some shares are wrong.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use secagg_core::shamir::{self, Lagrange, Share};

/// (n, t): 100 neighbours with an honest majority threshold, and a SecAgg+ k = 20 graph.
const CASES: [(usize, usize); 2] = [(100, 51), (21, 11)];

fn points(n: usize) -> Vec<u32> {
    (1..=n as u32).collect()
}

fn split(c: &mut Criterion) {
    let mut g = c.benchmark_group("shamir_split");
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let secret = [0x42u8; shamir::SECRET_LEN];
    for (n, t) in CASES {
        let xs = points(n);
        g.bench_function(BenchmarkId::new("n_t", format!("{n}_{t}")), |b| {
            b.iter(|| shamir::split(black_box(&secret), black_box(&xs), t, &mut rng))
        });
    }
    g.finish();
}

/// Shares of one secret, the t used for reconstruction taken from the end (odd points).
fn shares_for(n: usize, t: usize) -> Vec<Share> {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let shares = shamir::split(&[0x42; shamir::SECRET_LEN], &points(n), t, &mut rng)
        .unwrap_or_else(|_| unreachable!("valid parameters"));
    shares.into_iter().rev().take(t).collect()
}

fn reconstruct(c: &mut Criterion) {
    let mut g = c.benchmark_group("shamir_reconstruct");
    for (n, t) in CASES {
        let shares = shares_for(n, t);
        g.bench_function(BenchmarkId::new("n_t", format!("{n}_{t}")), |b| {
            b.iter(|| shamir::reconstruct(black_box(&shares), t))
        });
    }
    g.finish();
}

fn lagrange(c: &mut Criterion) {
    let mut g = c.benchmark_group("shamir_lagrange");
    for (n, t) in CASES {
        let shares = shares_for(n, t);
        let xs: Vec<u32> = shares.iter().map(|s| s.x).collect();
        g.bench_function(BenchmarkId::new("at_zero", format!("{n}_{t}")), |b| {
            b.iter(|| Lagrange::at_zero(black_box(&xs)))
        });
        let lag = Lagrange::at_zero(&xs).unwrap_or_else(|_| unreachable!("distinct points"));
        let refs: Vec<&Share> = shares.iter().collect();
        g.bench_function(
            BenchmarkId::new("cached_reconstruct", format!("{n}_{t}")),
            |b| b.iter(|| lag.reconstruct(black_box(&refs))),
        );
    }
    g.finish();
}

/// `reconstruct_robust` from all n shares with `errors` of them wrong in every chunk: share 0
/// (so the fast path fails) and others spread evenly. With 0 errors it is the fast path.
fn robust(c: &mut Criterion) {
    let mut g = c.benchmark_group("shamir_robust");
    let secret = [0x42u8; shamir::SECRET_LEN];
    for (n, t, errors) in [
        (100, 51, 0),
        (100, 51, 1),
        (100, 51, 10),
        (100, 51, 24),
        (21, 11, 5),
    ] {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let mut shares = shamir::split(&secret, &points(n), t, &mut rng)
            .unwrap_or_else(|_| unreachable!("valid parameters"));
        for k in 0..errors {
            for y in &mut shares[k * n / errors].y {
                *y = (*y + 1) % shamir::MODULUS;
            }
        }
        g.bench_function(
            BenchmarkId::new("n_t_errors", format!("{n}_{t}_{errors}")),
            |b| b.iter(|| shamir::reconstruct_robust(black_box(&shares), t, |s| *s == secret)),
        );
    }
    g.finish();
}

criterion_group!(benches, split, reconstruct, lagrange, robust);
criterion_main!(benches);
