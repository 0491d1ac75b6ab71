//! Criterion benches of the protocol's hot operations: mask expansion (the limit a client
//! runs at), X25519 key agreement, AEAD share encryption, Ed25519 checks one by one and
//! batched, the server's aggregation of masked vectors and its unmasking; `_u32` variants hold
//! the vector in `u32` words (b ≤ 32), as the server and the simulator do.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use secagg_core::PrgKind;
use secagg_core::crypto::{self, DhKeyPair};
use secagg_core::prg::{MaskSpec, MaskStream, Sign, apply_mask_specs, apply_masks};
use secagg_core::ring::{Modulus, RingVec};

fn mask_expansion(c: &mut Criterion) {
    let mut g = c.benchmark_group("mask_add");
    let d = 1 << 20;
    for (name, kind, bits) in [
        ("aes_ctr64_b32", PrgKind::Aes128Ctr, 32u8),
        ("aes_ctr64_b64", PrgKind::Aes128Ctr, 64),
        ("chacha20_b32", PrgKind::ChaCha20, 32),
    ] {
        let m = Modulus::new(bits).unwrap_or_else(|| unreachable!());
        let mut v = vec![0u64; d];
        // Bytes of u32 (or u64) results produced per second, as in DESIGN.md §5.
        g.throughput(Throughput::Bytes((d * m.stream_bytes_per_element()) as u64));
        g.bench_function(BenchmarkId::new(name, d), |b| {
            b.iter(|| {
                let mut s = [MaskStream::new(kind, &[7u8; 32], Sign::Plus)];
                apply_masks(black_box(&mut v), m, &mut s);
            })
        });
        if m.fits_u32() {
            let mut w = vec![0u32; d];
            g.bench_function(BenchmarkId::new(format!("{name}_u32"), d), |b| {
                b.iter(|| {
                    let mut s = [MaskStream::new(kind, &[7u8; 32], Sign::Plus)];
                    apply_masks(black_box(&mut w), m, &mut s);
                })
            });
        }
    }
    // A client with k = 20 neighbours plus its self mask, d = 100,000: one masked input.
    let m = Modulus::new(32).unwrap_or_else(|| unreachable!());
    let mut v = vec![0u64; 100_000];
    g.throughput(Throughput::Bytes(21 * 100_000 * 4));
    g.bench_function("client_k20_d1e5", |b| {
        b.iter(|| {
            let mut s: Vec<MaskStream> = (0..21u8)
                .map(|i| MaskStream::new(PrgKind::Aes128Ctr, &[i; 32], Sign::Plus))
                .collect();
            apply_masks(black_box(&mut v), m, &mut s);
        })
    });
    let mut w = vec![0u32; 100_000];
    g.bench_function("client_k20_d1e5_u32", |b| {
        b.iter(|| {
            let mut s: Vec<MaskStream> = (0..21u8)
                .map(|i| MaskStream::new(PrgKind::Aes128Ctr, &[i; 32], Sign::Plus))
                .collect();
            apply_masks(black_box(&mut w), m, &mut s);
        })
    });
    g.finish();
}

fn server_aggregate(c: &mut Criterion) {
    // Adding one packed masked vector (d = 10^6) into the server's sum: 32- and 20-bit
    // moduli, in u64 words and in the u32 words a b ≤ 32 round now uses.
    let d = 1_000_000usize;
    let mut g = c.benchmark_group("server_add");
    for bits in [32u8, 20] {
        let m = Modulus::new(bits).unwrap_or_else(|| unreachable!());
        let x: Vec<u64> = (0..d as u64)
            .map(|i| (i * 2_654_435_761) & m.mask())
            .collect();
        let packed = m.pack(&x);
        g.throughput(Throughput::Bytes(packed.len() as u64));
        let mut wide = vec![0u64; d];
        g.bench_function(BenchmarkId::new(format!("b{bits}_u64"), d), |b| {
            b.iter(|| m.unpack_add(black_box(&packed), &mut wide))
        });
        let mut narrow = RingVec::zeros(m, d);
        g.bench_function(BenchmarkId::new(format!("b{bits}_u32"), d), |b| {
            b.iter(|| narrow.unpack_add(m, black_box(&packed)))
        });
    }
    g.finish();
}

fn key_agreement(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let a = DhKeyPair::generate(&mut rng);
    let b = DhKeyPair::generate(&mut rng);
    let pk = b.public();
    c.bench_function("x25519_agree", |bch| bch.iter(|| a.agree(black_box(&pk))));
    c.bench_function("x25519_keygen", |bch| {
        bch.iter(|| DhKeyPair::generate(&mut rng))
    });
    let shared = [3u8; 32];
    let session = [4u8; 32];
    let pt = [5u8; 88];
    let binding = [6u8; 32];
    c.bench_function("seal_share_bundle", |bch| {
        bch.iter(|| crypto::seal_shares(&shared, &session, 1, 2, &binding, black_box(&pt)))
    });
}

/// 20 signatures (a neighbourhood's signed keys at k = 20): one by one with the strict check
/// against `crypto::verify_all`'s batches.
fn signature_checks(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let keys: Vec<crypto::IdentityKey> = (0..20)
        .map(|_| crypto::IdentityKey::generate(&mut rng))
        .collect();
    let pubs: Vec<[u8; 32]> = keys.iter().map(crypto::IdentityKey::public).collect();
    let msgs: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; 120]).collect();
    let sigs: Vec<[u8; 64]> = keys.iter().zip(&msgs).map(|(k, m)| k.sign(m)).collect();
    let checks: Vec<crypto::SignatureCheck<'_>> = pubs
        .iter()
        .zip(&msgs)
        .zip(&sigs)
        .map(|((p, m), s)| (p, &m[..], s))
        .collect();
    c.bench_function("ed25519_verify_20_strict", |bch| {
        bch.iter(|| checks.iter().all(|(p, m, s)| crypto::verify(p, m, s)))
    });
    c.bench_function("ed25519_verify_20_verify_all", |bch| {
        bch.iter(|| crypto::verify_all(black_box(&checks)))
    });
}

fn server_unmask(c: &mut Criterion) {
    // Removing 100 self masks from a d = 100,000 sum (no dropouts, n = 100), in parallel.
    let m = Modulus::new(32).unwrap_or_else(|| unreachable!());
    let specs: Vec<MaskSpec> = (0..100u8)
        .map(|i| MaskSpec {
            seed: zeroize::Zeroizing::new([i; 32]),
            sign: Sign::Minus,
        })
        .collect();
    let mut acc = vec![0u64; 100_000];
    let mut g = c.benchmark_group("server_unmask");
    g.throughput(Throughput::Bytes(100 * 100_000 * 4));
    g.bench_function("remove_100_masks_d1e5", |b| {
        b.iter(|| apply_mask_specs(black_box(&mut acc), m, PrgKind::Aes128Ctr, &specs))
    });
    let mut acc32 = vec![0u32; 100_000];
    g.bench_function("remove_100_masks_d1e5_u32", |b| {
        b.iter(|| apply_mask_specs(black_box(&mut acc32), m, PrgKind::Aes128Ctr, &specs))
    });
    g.finish();
}

/// The neighbour graph: every client builds it once per round (and looks up its own
/// neighbours), the server looks up every client's.
fn neighbour_graph(c: &mut Criterion) {
    use secagg_core::GraphKind;
    use secagg_core::graph::Graph;
    use secagg_core::idset::IdSet;
    let mut g = c.benchmark_group("graph_harary_k20");
    for n in [1_000u32, 10_000] {
        let u1 = IdSet::from_ids(n, (1..=n).filter(|i| i % 20 != 0));
        g.bench_function(BenchmarkId::new("client_build", n), |b| {
            b.iter(|| {
                let graph = Graph::new(GraphKind::Harary, 20, black_box(&u1), &[9; 32]);
                graph.neighbours(1)
            })
        });
        let graph = Graph::new(GraphKind::Harary, 20, &u1, &[9; 32]);
        g.bench_function(BenchmarkId::new("server_all_neighbours", n), |b| {
            b.iter(|| {
                u1.iter()
                    .map(|id| graph.neighbours(id).len())
                    .sum::<usize>()
            })
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    mask_expansion,
    key_agreement,
    signature_checks,
    server_aggregate,
    server_unmask,
    neighbour_graph
);
criterion_main!(benches);
