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

/// Rewrites the server's `SharesForYou` to client `victim` with `f`.
fn rewrite_shares(
    cfg: &RoundConfig,
    victim: ClientId,
    f: impl Fn(Vec<(ClientId, Vec<u8>)>) -> Vec<(ClientId, Vec<u8>)> + Send + 'static,
) -> secagg_sim::harness::Tamper {
    let cfg = cfg.clone();
    Box::new(
        move |_stage, to, bytes| match ServerMessage::decode(&bytes, Some(&cfg)) {
            Ok(ServerMessage::SharesForYou { u2, ciphertexts }) if to == victim => {
                ServerMessage::SharesForYou {
                    u2,
                    ciphertexts: f(ciphertexts),
                }
                .encode()
            }
            _ => bytes,
        },
    )
}

/// The victim refused with a message containing `why`, and sent nothing in the unmask stage.
fn refused_and_silent(
    r: &secagg_sim::harness::Report,
    seen: &Revealed,
    victim: ClientId,
    why: &str,
) {
    assert!(
        r.client_errors
            .iter()
            .any(|(id, e)| *id == victim && e.to_string().contains(why)),
        "{:?}",
        r.client_errors
    );
    assert!(seen.lock().unwrap().iter().all(|(id, _, _)| *id != victim));
}

#[test]
fn truncated_or_duplicated_share_lists_are_refused() {
    for dup in [false, true] {
        let cfg = config(ThreatModel::HonestButCurious);
        let mut sc = Scenario::new(cfg.clone(), 7);
        sc.tamper = Some(rewrite_shares(&cfg, 2, move |mut list| {
            if dup {
                let first = list[0].clone();
                list.insert(0, first);
            } else {
                list.pop();
            }
            list
        }));
        let seen = watch_unmask(&mut sc);
        let r = run(sc, inputs()).unwrap();
        // A duplicated entry overflows the neighbour count and fails to decode; a missing one
        // no longer matches U2.
        let why = if dup {
            "exceeds the limit"
        } else {
            "differs from my neighbours in U2"
        };
        refused_and_silent(&r, &seen, 2, why);
    }
}

#[test]
fn replayed_shares_from_an_earlier_round_are_refused() {
    // Record client 2's routed shares in round 9, replay them in round 10.
    let cfg = config(ThreatModel::HonestButCurious);
    let old = Arc::new(Mutex::new(None::<Vec<u8>>));
    let o2 = old.clone();
    let mut sc = Scenario::new(cfg.clone(), 8);
    sc.observe = Some(Box::new(move |stage, from_server, id, b| {
        if stage == Stage::MaskedInput && from_server && id == 2 {
            *o2.lock().unwrap() = Some(b.to_vec());
        }
    }));
    run(sc, inputs()).unwrap();
    let replay = old.lock().unwrap().clone().unwrap();
    let next = RoundConfig {
        round_id: 10,
        ..cfg.clone()
    };
    let mut sc = Scenario::new(next.clone(), 8);
    sc.tamper = Some(Box::new(move |stage, to, bytes| {
        if stage == Stage::MaskedInput && to == 2 {
            replay.clone()
        } else {
            bytes
        }
    }));
    let seen = watch_unmask(&mut sc);
    let r = run(sc, inputs()).unwrap();
    refused_and_silent(&r, &seen, 2, "does not decrypt for this session");
}

#[test]
fn substituted_keys_without_a_pki_are_caught_by_the_peer() {
    // The server gives client 1 a key of its own in place of client 2's encryption key. Without a
    // PKI client 1 cannot tell, but the shares it sends "to 2" do not decrypt for 2, which refuses.
    let cfg = config(ThreatModel::HonestButCurious);
    let mut sc = Scenario::new(cfg.clone(), 9);
    let c2 = cfg.clone();
    let fake = secagg_core::crypto::DhKeyPair::from_secret_bytes(&[77; 32]).public();
    sc.tamper = Some(Box::new(
        move |_stage, to, bytes| match ServerMessage::decode(&bytes, Some(&c2)) {
            Ok(ServerMessage::NeighbourKeys { u1, mut neighbours }) if to == 1 => {
                for e in &mut neighbours {
                    if e.id == 2 {
                        e.enc_pk = fake;
                    }
                }
                ServerMessage::NeighbourKeys { u1, neighbours }.encode()
            }
            _ => bytes,
        },
    ));
    let seen = watch_unmask(&mut sc);
    let r = run(sc, inputs()).unwrap();
    refused_and_silent(&r, &seen, 2, "does not decrypt");
}

#[test]
fn a_different_graph_or_threshold_than_announced_is_refused() {
    // A neighbour set that is not the graph of U1.
    let cfg = config(ThreatModel::HonestButCurious);
    let mut sc = Scenario::new(cfg.clone(), 10);
    let c2 = cfg.clone();
    sc.tamper = Some(Box::new(
        move |_stage, to, bytes| match ServerMessage::decode(&bytes, Some(&c2)) {
            Ok(ServerMessage::NeighbourKeys { u1, mut neighbours }) if to == 5 => {
                neighbours.pop();
                ServerMessage::NeighbourKeys { u1, neighbours }.encode()
            }
            _ => bytes,
        },
    ));
    let seen = watch_unmask(&mut sc);
    let r = run(sc, inputs()).unwrap();
    refused_and_silent(&r, &seen, 5, "differs from the graph of U1");
    // A lower threshold announced to client 6 only: its session differs from everyone else's,
    // so nothing it shares or receives decrypts, and the clients involved refuse.
    let mut sc = Scenario::new(cfg.clone(), 10);
    sc.tamper = Some(Box::new(
        move |_stage, to, bytes| match ServerMessage::decode(&bytes, None) {
            Ok(ServerMessage::RoundStart(mut c)) if to == 6 => {
                c.threshold = 3;
                c.min_clients = 3;
                ServerMessage::RoundStart(c).encode()
            }
            _ => bytes,
        },
    ));
    let seen = watch_unmask(&mut sc);
    let r = run(sc, inputs()).unwrap();
    assert!(
        r.client_errors
            .iter()
            .any(|(_, e)| e.to_string().contains("does not decrypt")),
        "{:?}",
        r.client_errors
    );
    assert!(seen.lock().unwrap().iter().all(|(id, _, _)| *id != 6));
}
