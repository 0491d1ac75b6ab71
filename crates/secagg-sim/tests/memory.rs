//! What a simulated round holds in memory: inputs in the round's word, and client messages
//! handed to the server in bounded batches instead of a whole stage at once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use secagg_core::ring::RingVec;
use secagg_core::server::Outcome;
use secagg_core::{GraphKind, PrgKind, RoundConfig, Stage, ThreatModel};
use secagg_sim::harness::{Scenario, plain_sum, run};
use secagg_sim::simulate::{Inputs, random_inputs};

const N: u32 = 24;
const DIM: u32 = 1 << 14;

fn config() -> RoundConfig {
    RoundConfig {
        round_id: 3,
        round_seed: [9; 32],
        num_clients: N,
        min_clients: 12,
        degree: 4,
        threshold: 3,
        graph: GraphKind::Harary,
        bits: 32,
        dim: DIM,
        prg: PrgKind::Aes128Ctr,
        model: ThreatModel::HonestButCurious,
        pki: false,
        encoding: Vec::new(),
        validation: None,
    }
}

fn inputs() -> Vec<Vec<u64>> {
    (0..N as u64)
        .map(|i| (0..DIM as u64).map(|j| (i * 31 + j) % 1000).collect())
        .collect()
}

/// Runs the round with `budget` bytes in flight; returns the masked-input stage's most held
/// bytes and one client's masked-input message size.
fn held(budget: usize, reorder: bool) -> (u64, u64) {
    let mut sc = Scenario::new(config(), 4);
    sc.max_in_flight_bytes = budget;
    sc.reorder = reorder;
    let x = inputs();
    let r = run(sc, x.clone()).unwrap();
    let Outcome::Released {
        aggregate,
        survivors,
    } = &r.outcome
    else {
        panic!("aborted: {:?}", r.outcome)
    };
    assert_eq!(*aggregate, plain_sum(&x, survivors.iter(), 32));
    let st = &r.stages[&Stage::MaskedInput];
    (st.max_in_flight, st.max_up_per_client)
}

#[test]
fn masked_vectors_reach_the_server_in_batches_within_the_budget() {
    let budget = 4 * (DIM as usize * 4);
    let (most, per_client) = held(budget, false);
    let threads = rayon::current_num_threads().max(1) as u64;
    // The harness sizes batches by the packed vector (the message adds a few bytes).
    let batch = (budget as u64 / (DIM as u64 * 4)).max(threads);
    assert!(
        most <= batch * per_client,
        "held {most} B, batches of {batch} × {per_client} B"
    );
    if batch < N as u64 {
        assert!(most < N as u64 * per_client, "the whole stage was held");
    }
    // Reordering shuffles a whole stage, so it holds every message.
    let (all, _) = held(budget, true);
    assert_eq!(all, N as u64 * per_client);
}

#[test]
fn random_inputs_of_up_to_32_bits_are_held_in_u32_words() {
    for (bits, word) in [(8u8, 4usize), (32, 4), (33, 8), (64, 8)] {
        let Inputs::Words(rows) = random_inputs(3, 10, bits, 1) else {
            panic!("random inputs are words")
        };
        assert!(rows.iter().all(|r| r.word_bytes() == word), "b = {bits}");
        assert!(rows.iter().all(|r| r.len() == 10));
    }
    // The values do not depend on the word: same seed, same draws.
    let Inputs::Words(a) = random_inputs(3, 10, 32, 7) else {
        unreachable!()
    };
    let Inputs::Words(b) = random_inputs(3, 10, 33, 7) else {
        unreachable!()
    };
    let a: Vec<Vec<u64>> = a.iter().map(RingVec::to_u64).collect();
    let b: Vec<Vec<u64>> = b.iter().map(RingVec::to_u64).collect();
    assert!(a.iter().flatten().all(|x| *x < 1 << 32));
    assert_eq!(a.len(), b.len());
}
