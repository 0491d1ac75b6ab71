//! Criterion benches of Shamir sharing over GF(2^61 - 1) at the sizes rounds use.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use secagg_core::shamir::{Lagrange, Share, reconstruct, split};

fn shamir(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let secret = [7u8; 32];
    for (n, t) in [(21u32, 11usize), (100, 51)] {
        let xs: Vec<u32> = (1..=n).collect();
        c.bench_function(&format!("shamir_split_n{n}_t{t}"), |b| {
            b.iter(|| split(black_box(&secret), &xs, t, &mut rng))
        });
        let shares = split(&secret, &xs, t, &mut rng).unwrap_or_default();
        c.bench_function(&format!("shamir_reconstruct_t{t}"), |b| {
            b.iter(|| reconstruct(black_box(&shares), t))
        });
        let lagrange = Lagrange::at_zero(&xs[..t]);
        let refs: Vec<&Share> = shares[..t].iter().collect();
        if let Ok(l) = lagrange {
            c.bench_function(&format!("shamir_reconstruct_cached_t{t}"), |b| {
                b.iter(|| l.reconstruct(black_box(&refs)))
            });
        }
    }
}

criterion_group!(benches, shamir);
criterion_main!(benches);
