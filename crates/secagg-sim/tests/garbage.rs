//! Untrusted bytes never panic: random and mutated messages into the server at every stage and
//! into clients at every state give typed errors, and the other clients' round goes on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use secagg_core::client::{Client, ClientRound};
use secagg_core::server::{Outcome, ServerRound};
use secagg_core::{GraphKind, PrgKind, RoundConfig, Stage, ThreatModel};
use secagg_sim::harness::{Scenario, plain_sum, run};

fn config() -> RoundConfig {
    RoundConfig {
        round_id: 1,
        round_seed: [0; 32],
        num_clients: 8,
        min_clients: 3,
        degree: 4,
        threshold: 3,
        graph: GraphKind::Harary,
        bits: 24,
        dim: 5,
        prg: PrgKind::Aes128Ctr,
        model: ThreatModel::Malicious,
        pki: true,
        encoding: Vec::new(),
        validation: None,
    }
}

/// Every message of a real round, by stage and direction.
fn transcript() -> Vec<(Stage, bool, u32, Vec<u8>)> {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l2 = log.clone();
    let mut sc = Scenario::new(config(), 3);
    sc.observe = Some(Box::new(move |st, from_server, id, b| {
        l2.lock().unwrap().push((st, from_server, id, b.to_vec()))
    }));
    run(sc, (0..8).map(|i| vec![i; 5]).collect()).unwrap();
    Arc::try_unwrap(log).unwrap().into_inner().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn server_survives_garbage_at_any_stage(stage in 0usize..5, pos in any::<usize>(), val in any::<u8>(), cut in any::<bool>(), random in proptest::collection::vec(any::<u8>(), 0..200)) {
        let msgs = transcript();
        let client_msgs: Vec<_> = msgs.iter().filter(|m| !m.1).collect();
        let target = Stage::ALL[stage];
        // Replay the round into a fresh server, corrupting client 1's message at `target`.
        let cfg = config();
        let (_, roster) = secagg_sim::harness::make_pki(8, 3);
        let mut server = ServerRound::new(cfg, Some(roster), 100).unwrap();
        server.start(0);
        let mut now = 0;
        for (st, _, id, bytes) in client_msgs {
            let mut b = bytes.clone();
            if *st == target && *id == 1 {
                if random.is_empty() {
                    let p = pos % b.len();
                    if cut { b.truncate(p) } else { b[p] ^= val | 1 }
                } else {
                    b = random.clone();
                }
            }
            let _ = server.handle_message(now, *id, &b);
            now += 1;
        }
        server.handle_timeout(now + 1000);
        server.handle_timeout(now + 2000);
        // Whatever happened, the server ended the round or is waiting; if it released a sum, it
        // is the exact sum of its survivors.
        if let Some(Outcome::Released { aggregate, survivors }) = server.outcome() {
            let inputs: Vec<Vec<u64>> = (0..8).map(|i| vec![i; 5]).collect();
            prop_assert_eq!(aggregate, &plain_sum(&inputs, survivors.iter(), 24));
        }
    }

    #[test]
    fn clients_survive_garbage_in_every_state(step in 0usize..5, random in proptest::collection::vec(any::<u8>(), 0..300)) {
        let msgs = transcript();
        let to_client_1: Vec<_> = msgs.iter().filter(|m| m.1 && m.2 == 1).map(|m| m.3.clone()).collect();
        let (keys, roster) = secagg_sim::harness::make_pki(8, 3);
        let key = keys.into_iter().next().unwrap();
        let mut c = ClientRound::New(Client::new(1, vec![0; 5]).with_pki(key, roster));
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        for m in to_client_1.iter().take(step) {
            let _ = c.handle(m, &mut rng);
        }
        // Garbage gives an error (or is ignored once finished), never a panic.
        let _ = c.handle(&random, &mut rng);
    }
}
