//! A server that deviates from the protocol: honest clients must refuse and reveal nothing
//! beyond the sum. Each test shows what the clients sent back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use secagg_core::idset::IdSet;
use secagg_core::messages::{ClientMessage, ServerMessage};
use secagg_core::server::Outcome;
use secagg_core::{ClientError, ClientId, GraphKind, PrgKind, RoundConfig, Stage, ThreatModel};
use secagg_sim::harness::{Scenario, run};

fn config(model: ThreatModel) -> RoundConfig {
    RoundConfig {
        round_id: 9,
        round_seed: [3u8; 32],
        num_clients: 12,
        min_clients: 7,
        degree: 11,
        threshold: 7,
        graph: GraphKind::Complete,
        bits: 16,
        dim: 8,
        prg: PrgKind::Aes128Ctr,
        model,
        pki: model == ThreatModel::Malicious,
    }
}

fn inputs() -> Vec<Vec<u64>> {
    (0..12u64).map(|i| vec![i + 1; 8]).collect()
}

/// What clients sent in the unmask stage: (sender, owners of self-mask shares, owners of
/// mask-key shares).
type Revealed = Arc<Mutex<Vec<(ClientId, Vec<ClientId>, Vec<ClientId>)>>>;

fn watch_unmask(sc: &mut Scenario) -> Revealed {
    let seen: Revealed = Arc::default();
    let s2 = seen.clone();
    let cfg = sc.config.clone();
    sc.observe = Some(Box::new(move |stage, from_server, id, bytes| {
        if stage == Stage::Unmask
            && !from_server
            && let Ok(ClientMessage::UnmaskShares {
                self_mask,
                mask_key,
            }) = ClientMessage::decode(bytes, &cfg)
        {
            s2.lock().unwrap().push((
                id,
                self_mask.iter().map(|(o, _)| *o).collect(),
                mask_key.iter().map(|(o, _)| *o).collect(),
            ));
        }
    }));
    seen
}

fn rewrite_unmask(
    cfg: &RoundConfig,
    targets: Vec<ClientId>,
    f: impl Fn(IdSet, Vec<(ClientId, [u8; 64])>) -> (IdSet, Vec<(ClientId, [u8; 64])>) + Send + 'static,
) -> secagg_sim::harness::Tamper {
    let cfg = cfg.clone();
    Box::new(move |_stage, to, bytes| {
        if !targets.contains(&to) {
            return bytes;
        }
        match ServerMessage::decode(&bytes, Some(&cfg)) {
            Ok(ServerMessage::UnmaskRequest { u3, signatures }) => {
                let (u3, signatures) = f(u3, signatures);
                ServerMessage::UnmaskRequest { u3, signatures }.encode()
            }
            _ => bytes,
        }
    })
}

/// The attack that breaks Flower's SecAgg+: the victim (client 1) uploaded, but the server
/// tells some clients it dropped, hoping to collect shares of its mask key from them and
/// shares of its self mask from the others, and so unmask its input alone.
#[test]
fn live_client_listed_as_dropped_is_refused_in_the_malicious_model() {
    let cfg = config(ThreatModel::Malicious);
    let victim = 1;
    let mut sc = Scenario::new(cfg.clone(), 1);
    sc.tamper = Some(rewrite_unmask(
        &cfg,
        (2..=12).collect(),
        move |mut u3, sigs| {
            u3.remove(victim);
            (u3, sigs)
        },
    ));
    let seen = watch_unmask(&mut sc);
    let r = run(sc, inputs()).unwrap();
    // Every client that got the forged set refused, saying why.
    let refused: Vec<ClientId> = r
        .client_errors
        .iter()
        .filter(|(_, e)| matches!(e, ClientError::ServerMisbehaved(m) if m.contains("differs from the one I signed") || m.contains("listed me as dropped")))
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(refused.len(), 11, "{:?}", r.client_errors);
    // Nobody revealed a share of the victim's mask key.
    let seen = seen.lock().unwrap();
    assert!(
        seen.iter().all(|(_, _, keys)| !keys.contains(&victim)),
        "{seen:?}"
    );
    // And the round could not release anything.
    assert!(matches!(r.outcome, Outcome::Aborted(_)));
}

/// Honest-but-curious model: one request can never ask for both secrets of one peer, and a
/// client never answers twice.
#[test]
fn a_client_reveals_one_secret_per_peer() {
    let cfg = config(ThreatModel::HonestButCurious);
    let mut sc = Scenario::new(cfg.clone(), 2);
    sc.dropouts.push((Stage::MaskedInput, vec![5, 6]));
    sc.duplicate = true;
    let seen = watch_unmask(&mut sc);
    let r = run(sc, inputs()).unwrap();
    assert!(matches!(r.outcome, Outcome::Released { .. }));
    let seen = seen.lock().unwrap();
    for (id, b, s) in seen.iter() {
        assert!(
            b.iter().all(|o| !s.contains(o)),
            "client {id} revealed both secrets"
        );
        assert!(
            s.iter().all(|o| [5, 6].contains(o)),
            "client {id} revealed a live client's key"
        );
    }
}

#[test]
fn the_client_listed_as_dropped_refuses() {
    let cfg = config(ThreatModel::HonestButCurious);
    let mut sc = Scenario::new(cfg.clone(), 3);
    sc.tamper = Some(rewrite_unmask(&cfg, vec![4], |mut u3, sigs| {
        u3.remove(4);
        (u3, sigs)
    }));
    let seen = watch_unmask(&mut sc);
    let r = run(sc, inputs()).unwrap();
    assert!(
        r.client_errors
            .iter()
            .any(|(id, e)| *id == 4 && e.to_string().contains("listed me as dropped"))
    );
    assert!(seen.lock().unwrap().iter().all(|(id, _, _)| *id != 4));
}

#[test]
fn fewer_than_min_survivors_is_refused() {
    let cfg = config(ThreatModel::HonestButCurious);
    let mut sc = Scenario::new(cfg.clone(), 4);
    sc.tamper = Some(rewrite_unmask(&cfg, (1..=12).collect(), |u3, sigs| {
        (IdSet::from_ids(u3.universe(), u3.iter().take(5)), sigs)
    }));
    let seen = watch_unmask(&mut sc);
    let r = run(sc, inputs()).unwrap();
    assert!(
        seen.lock().unwrap().is_empty(),
        "a client answered an unmask request below min_clients"
    );
    assert!(
        r.client_errors
            .iter()
            .any(|(_, e)| e.to_string().contains("below min_clients"))
    );
}

#[test]
fn forged_or_missing_consistency_signatures_are_refused() {
    for forge in [true, false] {
        let cfg = config(ThreatModel::Malicious);
        let mut sc = Scenario::new(cfg.clone(), 5);
        sc.tamper = Some(rewrite_unmask(
            &cfg,
            (1..=12).collect(),
            move |u3, mut sigs| {
                if forge {
                    sigs[0].1[0] ^= 1;
                } else {
                    sigs.truncate(3);
                }
                (u3, sigs)
            },
        ));
        let seen = watch_unmask(&mut sc);
        let r = run(sc, inputs()).unwrap();
        assert!(seen.lock().unwrap().is_empty(), "forge={forge}");
        assert!(matches!(r.outcome, Outcome::Aborted(_)));
    }
}

#[test]
fn substituted_keys_are_refused_with_a_pki() {
    let cfg = config(ThreatModel::Malicious);
    let mut sc = Scenario::new(cfg.clone(), 6);
    let c2 = cfg.clone();
    sc.tamper = Some(Box::new(
        move |_stage, to, bytes| match ServerMessage::decode(&bytes, Some(&c2)) {
            Ok(ServerMessage::NeighbourKeys { u1, mut neighbours }) if to == 1 => {
                neighbours[0].mask_pk = [9u8; 32];
                ServerMessage::NeighbourKeys { u1, neighbours }.encode()
            }
            _ => bytes,
        },
    ));
    let r = run(sc, inputs()).unwrap();
    assert!(
        r.client_errors
            .iter()
            .any(|(id, e)| *id == 1 && e.to_string().contains("without a valid signature"))
    );
}

#[test]
fn replayed_round_start_with_weaker_parameters_is_refused_by_policy() {
    use secagg_core::client::{Client, Policy};
    let mut cfg = config(ThreatModel::HonestButCurious);
    cfg.threshold = 2;
    cfg.min_clients = 2;
    let msg = ServerMessage::RoundStart(cfg).encode();
    let policy = Policy {
        min_threshold_fraction: 0.5,
        ..Policy::default()
    };
    let client = Client::new(1, vec![0; 8]).with_policy(policy);
    let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(1);
    let err = client.start(&msg, &mut rng).map(|_| ()).unwrap_err();
    assert!(
        err.to_string().contains("threshold 2 is below my policy"),
        "{err}"
    );
}
