//! Whole rounds through the deterministic harness: masks cancel, dropouts at every stage,
//! duplicates and reordering, both threat models, aborts below the threshold.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use secagg_core::server::{DropReason, Outcome};
use secagg_core::{GraphKind, PrgKind, RoundAborted, RoundConfig, Stage, ThreatModel};
use secagg_sim::harness::{Scenario, plain_sum, run};

fn config(n: u32, k: u32, t: u32, model: ThreatModel) -> RoundConfig {
    RoundConfig {
        round_id: 42,
        round_seed: [7u8; 32],
        num_clients: n,
        min_clients: t,
        degree: k,
        threshold: t,
        graph: if k == n - 1 {
            GraphKind::Complete
        } else {
            GraphKind::Harary
        },
        bits: 32,
        dim: 50,
        prg: PrgKind::Aes128Ctr,
        model,
        pki: model == ThreatModel::Malicious,
        encoding: Vec::new(),
        validation: None,
    }
}

fn inputs(n: u32, dim: u32, bits: u8) -> Vec<Vec<u64>> {
    let mask = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    (1..=n as u64)
        .map(|i| {
            (0..dim as u64)
                .map(|j| (i * 1_000_003 + j * 7919) & mask)
                .collect()
        })
        .collect()
}

fn released(outcome: &Outcome) -> (&Vec<u64>, Vec<u32>) {
    match outcome {
        Outcome::Released {
            aggregate,
            survivors,
        } => (aggregate, survivors.iter().collect()),
        Outcome::Aborted(a) => panic!("round aborted: {a}"),
    }
}

#[test]
fn complete_and_harary_rounds_sum_exactly() {
    for (n, k, t) in [(5, 4, 3), (12, 4, 3), (30, 8, 5)] {
        let cfg = config(n, k, t, ThreatModel::HonestButCurious);
        let x = inputs(n, cfg.dim, cfg.bits);
        let r = run(Scenario::new(cfg.clone(), 1), x.clone()).unwrap();
        let (agg, surv) = released(&r.outcome);
        assert_eq!(surv, (1..=n).collect::<Vec<_>>());
        assert_eq!(*agg, plain_sum(&x, surv.into_iter(), cfg.bits));
        assert!(r.client_errors.is_empty(), "{:?}", r.client_errors);
        assert_eq!(r.finished_clients, n as usize);
    }
}

#[test]
fn dropouts_at_every_stage_are_handled() {
    for model in [ThreatModel::HonestButCurious, ThreatModel::Malicious] {
        for stage in Stage::ALL {
            if stage == Stage::ConsistencyCheck && model == ThreatModel::HonestButCurious {
                continue;
            }
            let cfg = config(20, 8, 4, model);
            let x = inputs(20, cfg.dim, cfg.bits);
            let mut sc = Scenario::new(cfg.clone(), 3);
            sc.dropouts.push((stage, vec![2, 7, 13]));
            let r = run(sc, x.clone()).unwrap();
            let (agg, surv) = released(&r.outcome);
            let dropped_before_upload = stage <= Stage::MaskedInput;
            for id in [2u32, 7, 13] {
                assert_eq!(
                    surv.contains(&id),
                    !dropped_before_upload,
                    "{model:?} {stage} {id}"
                );
            }
            assert_eq!(
                *agg,
                plain_sum(&x, surv.iter().copied(), cfg.bits),
                "{model:?} {stage}"
            );
            assert!(r.dropouts.iter().all(|d| d.reason == DropReason::Timeout));
            assert_eq!(r.dropouts.len(), 3);
            assert!(r.client_errors.is_empty(), "{:?}", r.client_errors);
        }
    }
}

#[test]
fn duplicates_and_reordering_do_not_change_the_sum() {
    let cfg = config(16, 6, 4, ThreatModel::Malicious);
    let x = inputs(16, cfg.dim, cfg.bits);
    let mut sc = Scenario::new(cfg.clone(), 5);
    sc.duplicate = true;
    sc.reorder = true;
    sc.dropouts.push((Stage::ShareKeys, vec![3]));
    let r = run(sc, x.clone()).unwrap();
    let (agg, surv) = released(&r.outcome);
    assert_eq!(*agg, plain_sum(&x, surv.into_iter(), cfg.bits));
    assert!(r.server_errors.is_empty(), "{:?}", r.server_errors);
}

#[test]
fn too_few_clients_aborts_with_stage_and_counts() {
    let cfg = config(10, 4, 4, ThreatModel::HonestButCurious);
    let mut cfg = cfg;
    cfg.min_clients = 8;
    let x = inputs(10, cfg.dim, cfg.bits);
    let mut sc = Scenario::new(cfg, 1);
    sc.dropouts.push((Stage::MaskedInput, vec![1, 2, 3]));
    let r = run(sc, x).unwrap();
    assert_eq!(
        r.outcome,
        Outcome::Aborted(RoundAborted::TooFewClients {
            stage: Stage::MaskedInput,
            remaining: 7,
            needed: 8
        })
    );
    assert!(
        r.client_errors
            .iter()
            .all(|(_, e)| matches!(e, secagg_core::ClientError::RoundAborted(_)))
    );
}

#[test]
fn other_moduli_and_chacha() {
    for bits in [1u8, 13, 33, 64] {
        let mut cfg = config(9, 4, 3, ThreatModel::HonestButCurious);
        cfg.bits = bits;
        cfg.prg = PrgKind::ChaCha20;
        let x = inputs(9, cfg.dim, bits);
        let mut sc = Scenario::new(cfg.clone(), 9);
        sc.dropouts.push((Stage::MaskedInput, vec![4]));
        let r = run(sc, x.clone()).unwrap();
        let (agg, surv) = released(&r.outcome);
        assert_eq!(*agg, plain_sum(&x, surv.into_iter(), bits), "bits {bits}");
    }
}

/// A client restored twice from the same saved state (a rollback) and given the same neighbour
/// keys shares exactly the same ciphertexts, whatever RNG it is handed: the share ciphertexts'
/// fixed AEAD nonce never encrypts two different plaintexts under one key.
#[test]
fn a_rolled_back_client_shares_the_same_ciphertexts_again() {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;
    use secagg_core::client::{Client, ClientRound};
    use secagg_core::server::ServerRound;

    let cfg = config(4, 3, 2, ThreatModel::HonestButCurious);
    let mut server = ServerRound::new(cfg.clone(), None, 1_000).unwrap();
    server.start(0);
    let starts: Vec<(u32, Vec<u8>)> = std::iter::from_fn(|| server.poll_outgoing()).collect();
    let mut saved = None;
    for (id, msg) in &starts {
        let mut c = ClientRound::New(Client::new(*id, vec![*id as u64; 50]));
        let mut rng = ChaCha20Rng::seed_from_u64(*id as u64);
        let keys = c.handle(msg, &mut rng).unwrap().unwrap();
        if *id == 1 {
            saved = Some(c.export_state().unwrap());
        }
        server.handle_message(1, *id, &keys).unwrap();
    }
    let neighbour_keys = std::iter::from_fn(|| server.poll_outgoing())
        .find(|(to, _)| *to == 1)
        .unwrap()
        .1;
    let saved = saved.unwrap();
    let share_with = |seed: u64| {
        let mut c = ClientRound::import_state(saved.as_bytes()).unwrap();
        c.handle(&neighbour_keys, &mut ChaCha20Rng::seed_from_u64(seed))
            .unwrap()
            .unwrap()
    };
    assert_eq!(share_with(1), share_with(99));
}

/// A client that holds an identity key refuses a round that uses the PKI but runs the
/// honest-but-curious model (no consistency check): a downgrade a malicious server could use to
/// collect both secrets of a peer from split survivor sets.
#[test]
fn a_client_with_an_identity_refuses_an_honest_but_curious_round_with_a_pki() {
    let mut cfg = config(6, 5, 3, ThreatModel::HonestButCurious);
    cfg.pki = true;
    let r = run(Scenario::new(cfg, 3), inputs(6, 50, 32)).unwrap();
    assert!(matches!(r.outcome, Outcome::Aborted(_)), "{:?}", r.outcome);
    assert_eq!(r.client_errors.len(), 6, "{:?}", r.client_errors);
    assert!(
        r.client_errors
            .iter()
            .all(|(_, e)| e.to_string().contains("honest-but-curious")),
        "{:?}",
        r.client_errors
    );
}
