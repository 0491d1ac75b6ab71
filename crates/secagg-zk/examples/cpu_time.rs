//! Thread CPU time (not wall time) of the WIP and linear proofs, for checking the cost model of
//! VALIDATION.md §14.2 on a shared machine: when other processes hold the cores, wall time
//! grows with the load but the CPU time this thread receives stays close to the idle-machine
//! cost. Linux only (reads /proc/thread-self/schedstat, nanoseconds on the CPU).
//!
//! `cargo run --release -p secagg-zk --example cpu_time -- 11 14 17` (log₂ of the lengths;
//! `REPS=5` repetitions, medians printed). `BATCH=4,16` also times WIP batch verification of
//! that many proofs per length and prints the CPU time per proof.

// An example aborts on a setup failure; there is no caller to hand an error to.
#![allow(clippy::expect_used)]

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{MultiscalarMul, VartimeMultiscalarMul};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use secagg_zk::linear::{self, LinearInstance, LinearWitness};
use secagg_zk::wip::{self, BatchItem, VectorGenerators, WipInstance, WipWitness};
use secagg_zk::{GeneratorSizes, Generators, Transcript};
use std::hint::black_box;
use std::time::Instant;

fn cpu_ns() -> u64 {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").expect("schedstat (Linux)");
    s.split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .expect("schedstat format")
}

/// Median (wall, cpu) in ms over `reps` runs of `f`.
fn measure(reps: usize, mut f: impl FnMut()) -> (f64, f64) {
    let mut wall = Vec::with_capacity(reps);
    let mut cpu = Vec::with_capacity(reps);
    for _ in 0..reps {
        let (t0, c0) = (Instant::now(), cpu_ns());
        f();
        cpu.push((cpu_ns() - c0) as f64 / 1e6);
        wall.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    (median(&mut wall), median(&mut cpu))
}

fn main() {
    let reps: usize = std::env::var("REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let sizes: Vec<u32> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![11, 14]
    } else {
        sizes
    };
    let mut rng = ChaCha20Rng::seed_from_u64(5);

    // Primitives of §14.1, per point / per operation.
    let prim = Generators::new(GeneratorSizes {
        n_pad: 1024,
        projections: 0,
        lpad: 0,
    })
    .expect("sizes");
    let scalars: Vec<Scalar> = (0..1024).map(|_| Scalar::random(&mut rng)).collect();
    let (_, ct) = measure(reps * 4, || {
        black_box(RistrettoPoint::multiscalar_mul(&scalars, prim.g_vec()));
    });
    let (_, vt) = measure(reps * 4, || {
        black_box(RistrettoPoint::vartime_multiscalar_mul(
            &scalars,
            prim.g_vec(),
        ));
    });
    let (_, fold) = measure(reps * 4, || {
        for i in 0..100 {
            black_box(RistrettoPoint::vartime_multiscalar_mul(
                &scalars[i..i + 2],
                &prim.g_vec()[i..i + 2],
            ));
        }
    });
    println!(
        "primitives (cpu): ct MSM {:.2} us/pt, vt MSM {:.2} us/pt, 2-term fold {:.1} us",
        ct * 1e3 / 1024.0,
        vt * 1e3 / 1024.0,
        fold * 1e3 / 100.0
    );

    for log2 in sizes {
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
        let y = Scalar::random(&mut rng);
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
        let witness = WipWitness::new(
            (0..n).map(|_| Scalar::random(&mut rng)).collect(),
            (0..n).map(|_| Scalar::random(&mut rng)).collect(),
            Scalar::random(&mut rng),
        )
        .expect("lengths");
        let p = witness.statement_point(&gens, &inst).expect("statement");
        let mut proof = None;
        let (pw, pc) = measure(reps, || {
            proof = Some(
                wip::prove(
                    &mut Transcript::new(b"cpu"),
                    &gens,
                    &inst,
                    &witness,
                    &mut rng,
                )
                .expect("prove"),
            );
        });
        let proof = proof.expect("proved");
        let (vw, vc) = measure(reps, || {
            wip::verify(&mut Transcript::new(b"cpu"), &gens, &inst, &p, &proof).expect("verify");
        });
        println!(
            "wip n=2^{log2}: prove wall {pw:.0} ms cpu {pc:.0} ms ({:.1} us/elem); verify wall {vw:.1} ms cpu {vc:.1} ms; proof {} B",
            pc * 1e3 / n as f64,
            proof.to_bytes().len()
        );

        let batches: Vec<usize> = std::env::var("BATCH")
            .ok()
            .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
            .unwrap_or_default();
        let most = batches.iter().copied().max().unwrap_or(0);
        let many: Vec<_> = (0..most)
            .map(|_| {
                let w = WipWitness::new(
                    (0..n).map(|_| Scalar::random(&mut rng)).collect(),
                    (0..n).map(|_| Scalar::random(&mut rng)).collect(),
                    Scalar::random(&mut rng),
                )
                .expect("lengths");
                let p = w.statement_point(&gens, &inst).expect("statement");
                (
                    p,
                    wip::prove(&mut Transcript::new(b"cpu"), &gens, &inst, &w, &mut rng)
                        .expect("prove"),
                )
            })
            .collect();
        for &size in &batches {
            let (bw, bc) = measure(reps, || {
                let items = many[..size]
                    .iter()
                    .map(|(p, pr)| BatchItem {
                        transcript: Transcript::new(b"cpu"),
                        inst,
                        p: *p,
                        proof: pr,
                    })
                    .collect();
                wip::batch_verify(&gens, items, &mut rng).expect("batch");
            });
            println!(
                "wip n=2^{log2}: batch of {size}: wall {bw:.1} ms cpu {bc:.1} ms, cpu per proof {:.1} ms",
                bc / size as f64
            );
        }

        let b: Vec<Scalar> = (0..n).map(|_| Scalar::random(&mut rng)).collect();
        let linst = LinearInstance {
            b: &b,
            value_gen: *set.f0(),
            blinding_gen: *set.h2(),
        };
        let lw = LinearWitness::new(
            (0..n).map(|_| Scalar::random(&mut rng)).collect(),
            Scalar::random(&mut rng),
        );
        let c = lw.statement_point(set.g_vec(), &linst).expect("statement");
        let mut lproof = None;
        let (lpw, lpc) = measure(reps, || {
            lproof = Some(
                linear::prove(
                    &mut Transcript::new(b"cpu"),
                    set.g_vec(),
                    &linst,
                    &lw,
                    &mut rng,
                )
                .expect("prove"),
            );
        });
        let lproof = lproof.expect("proved");
        let (lvw, lvc) = measure(reps, || {
            linear::verify(
                &mut Transcript::new(b"cpu"),
                set.g_vec(),
                &linst,
                &c,
                &lproof,
            )
            .expect("verify");
        });
        println!(
            "linear n=2^{log2}: prove wall {lpw:.0} ms cpu {lpc:.0} ms ({:.1} us/elem); verify wall {lvw:.1} ms cpu {lvc:.1} ms; proof {} B",
            lpc * 1e3 / n as f64,
            lproof.to_bytes().len()
        );
    }
}
