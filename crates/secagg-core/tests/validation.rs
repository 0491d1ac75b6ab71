//! Validated inputs, step 8a (docs/VALIDATION.md §21): the norm proof at upload. Rounds are
//! driven here message by message (host clients: a streamed client cannot prove a norm), with a
//! hook that rewrites a client's message before the server gets it (the cheaters).
//!
//! Each test of a defence fails when the server's verification is disabled (every pending
//! upload counted without its proof checked, `server.rs::verify_pending`): that was run once
//! while building (VALIDATION.md §21.1 D37).
#![cfg(feature = "validate")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use secagg_core::client::{Client, ClientRound};
use secagg_core::config::ValidationParams;
use secagg_core::crypto::IdentityKey;
use secagg_core::messages::ClientMessage;
use secagg_core::server::{DropReason, Dropout, Outcome, ServerRound, ValidationKind};
use secagg_core::validate::round;
use secagg_core::validate::secagg_zk::norm::{self, NormParams, NormWitness};
use secagg_core::validate::secagg_zk::{Generators, codec};
use secagg_core::{ClientError, ClientId, GraphKind, PrgKind, RoundConfig, Stage, ThreatModel};

const N: u32 = 10;
const DIM: u32 = 8;
const BITS: u8 = 16;
/// B_enc² = 401 (not a square: the GHL magnitude M_x = ⌈√d⌉·⌈√401⌉ equals that of the
/// cheater's bound 441 below, so its proof decodes and only the verification can refuse it).
const BOUND_SQ: u64 = 401;

fn config(round_id: u64) -> RoundConfig {
    RoundConfig {
        round_id,
        round_seed: [round_id as u8; 32],
        num_clients: N,
        min_clients: 6,
        degree: N - 1,
        threshold: 5,
        graph: GraphKind::Complete,
        bits: BITS,
        dim: DIM,
        prg: PrgKind::Aes128Ctr,
        model: ThreatModel::Malicious,
        pki: true,
        encoding: Vec::new(),
        validation: Some(ValidationParams {
            bound_sq: BOUND_SQ,
            projections: 41,
        }),
    }
}

/// The signed value v as an element of Z_2^16.
fn enc(v: i64) -> u64 {
    v.rem_euclid(1 << BITS) as u64
}

/// Client i's honest input: entries of either sign, ‖x‖² ≤ 401.
fn honest_input(id: ClientId) -> Vec<u64> {
    let i = i64::from(id);
    [i, -i, 3, -2, 0, 1, i % 4, -5].map(enc).to_vec()
}

/// Σ inputs of `ids` mod 2^16.
fn sum_of(inputs: &[Vec<u64>], ids: impl Iterator<Item = ClientId>) -> Vec<u64> {
    let mut s = vec![0u64; DIM as usize];
    for id in ids {
        for (a, x) in s.iter_mut().zip(&inputs[id as usize - 1]) {
            *a = (*a + x) % (1 << BITS);
        }
    }
    s
}

/// Rewrites `(stage, sender, message)` on its way to the server; sees the server (session).
type Hook<'a> = dyn FnMut(&ServerRound, Stage, ClientId, Vec<u8>) -> Vec<u8> + 'a;

struct Report {
    outcome: Outcome,
    dropouts: Vec<Dropout>,
    client_errors: Vec<(ClientId, ClientError)>,
}

/// Runs a round; `save_restore` lists clients that are exported and re-imported before every
/// message they handle (a driver that keeps no client in memory).
fn run(
    cfg: &RoundConfig,
    inputs: &[Vec<u64>],
    save_restore: &[ClientId],
    hook: &mut Hook<'_>,
) -> Report {
    let mut krng = ChaCha20Rng::seed_from_u64(99);
    let keys: Vec<IdentityKey> = (0..cfg.num_clients)
        .map(|_| IdentityKey::generate(&mut krng))
        .collect();
    let roster: Vec<[u8; 32]> = keys.iter().map(|k| k.public()).collect();
    let mut server = ServerRound::new(cfg.clone(), Some(roster.clone()), 1000).unwrap();
    server.set_verifier_key([0x5a; 32]);
    let mut clients: Vec<ClientRound> = keys
        .into_iter()
        .zip(inputs)
        .enumerate()
        .map(|(i, (k, x))| {
            ClientRound::New(Client::new(i as ClientId + 1, x.clone()).with_pki(k, roster.clone()))
        })
        .collect();
    let mut rngs: Vec<ChaCha20Rng> = (0..cfg.num_clients)
        .map(|i| ChaCha20Rng::seed_from_u64(cfg.round_id * 1000 + u64::from(i)))
        .collect();
    let mut client_errors = Vec::new();
    let mut now = 0;
    server.start(now);
    loop {
        let stage = server.stage();
        let mut out = Vec::new();
        while let Some(m) = server.poll_outgoing() {
            out.push(m);
        }
        let ended = server.outcome().is_some();
        let mut replies = Vec::new();
        for (to, bytes) in out {
            let i = to as usize - 1;
            if save_restore.contains(&to)
                && !matches!(clients[i], ClientRound::Failed(_))
                && let Ok(saved) = clients[i].export_state()
            {
                clients[i] = ClientRound::import_state(saved.as_bytes()).unwrap();
            }
            match clients[i].handle(&bytes, &mut rngs[i]) {
                Ok(Some(r)) => replies.push((to, r)),
                Ok(None) => {}
                Err(e) => {
                    if !ended {
                        client_errors.push((to, e));
                    }
                }
            }
        }
        if ended {
            break;
        }
        for (from, r) in replies {
            let r = hook(&server, stage, from, r);
            let _ = server.handle_message(now, from, &r);
        }
        if server.stage() == stage && server.outcome().is_none() {
            now = server.poll_timeout().unwrap();
            server.handle_timeout(now);
        }
        now += 1;
    }
    Report {
        outcome: server.outcome().cloned().unwrap(),
        dropouts: server.dropouts().to_vec(),
        client_errors,
    }
}

fn no_hook() -> impl FnMut(&ServerRound, Stage, ClientId, Vec<u8>) -> Vec<u8> {
    |_, _, _, m| m
}

fn released(r: &Report) -> (&Vec<u64>, Vec<ClientId>) {
    match &r.outcome {
        Outcome::Released {
            aggregate,
            survivors,
        } => (aggregate, survivors.iter().collect()),
        Outcome::Aborted(a) => panic!("aborted: {a}"),
    }
}

fn rejected(r: &Report) -> Vec<(ClientId, Stage, DropReason)> {
    r.dropouts
        .iter()
        .map(|d| (d.id, d.stage, d.reason.clone()))
        .collect()
}

const NORM: DropReason = DropReason::Validation(ValidationKind::Norm);

/// Rewrites client `id`'s masked input with `f(vector, proof) -> (vector, proof)`.
fn rewrite_upload<'a>(
    id: ClientId,
    mut f: impl FnMut(&ServerRound, Vec<u8>, Vec<u8>) -> (Vec<u8>, Vec<u8>) + 'a,
) -> impl FnMut(&ServerRound, Stage, ClientId, Vec<u8>) -> Vec<u8> + 'a {
    move |server, stage, from, bytes| {
        if stage != Stage::MaskedInput || from != id {
            return bytes;
        }
        let ClientMessage::MaskedInput {
            vector,
            proof,
            masked_with,
        } = ClientMessage::decode(&bytes, server.config()).unwrap()
        else {
            panic!("not a masked input")
        };
        let (vector, proof) = f(server, vector, proof);
        ClientMessage::MaskedInput {
            vector,
            proof,
            masked_with,
        }
        .encode()
    }
}

#[test]
fn an_honest_validated_round_releases_the_exact_sum() {
    let cfg = config(1);
    let inputs: Vec<Vec<u64>> = (1..=N).map(honest_input).collect();
    // Client 4 is saved and restored before every message (state version 3).
    let r = run(&cfg, &inputs, &[4], &mut no_hook());
    let (aggregate, survivors) = released(&r);
    assert_eq!(survivors, (1..=N).collect::<Vec<_>>());
    assert_eq!(*aggregate, sum_of(&inputs, 1..=N));
    assert!(r.dropouts.is_empty(), "{:?}", r.dropouts);
    assert!(r.client_errors.is_empty(), "{:?}", r.client_errors);
}

/// §16 `oversized`: client 3's real input has ‖x‖² = 409 > 401. Its honest client would
/// refuse; the cheater masks it anyway (its vector shifted by x_big − x_small, no secret
/// needed) and attaches a norm proof of that very x made with the public prover under the
/// bound 441 it satisfies (the most a prover can do: `norm::prove` refuses above the bound).
/// The proof decodes for the round's statement (same length) and verifies under its own
/// bound (it is a real proof), but not under the round's: client 3 is rejected at the upload
/// with `validation: norm`, and the release is exactly the other nine's sum.
#[test]
fn oversized_input_is_rejected_at_upload() {
    const CHEATER: ClientId = 3;
    let cfg = config(2);
    let mut inputs: Vec<Vec<u64>> = (1..=N).map(honest_input).collect();
    let small = inputs[CHEATER as usize - 1].clone();
    let big: Vec<i64> = vec![20, 3, 0, 0, 0, 0, 0, 0];
    assert_eq!(big.iter().map(|v| v * v).sum::<i64>(), 409);
    let round_params = round::norm_params(&cfg).unwrap();
    let cheat_params = NormParams::new(DIM as usize, 441, None).unwrap();
    let mut checked = false;
    let mut hook = rewrite_upload(CHEATER, |server, vector, _proof| {
        let m = cfg.modulus();
        let y = m.unpack(&vector, DIM as usize).unwrap();
        let y: Vec<u64> = y
            .iter()
            .zip(&big)
            .zip(&small)
            .map(|((y, b), s)| (y + enc(*b) + (1 << BITS) - s) % (1 << BITS))
            .collect();
        let packed = m.pack(&y);
        let session = *server.session().unwrap();
        let ctx = round::norm_context(&session, CHEATER, &packed);
        let gens = Generators::shared(cheat_params.generator_sizes()).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let witness = NormWitness::new(big.clone(), Default::default());
        // The honest prover refuses the round's bound; under 441 it proves.
        assert!(norm::prove(&gens, &round_params, &ctx, &witness, &mut rng).is_err());
        let proof = norm::prove(&gens, &cheat_params, &ctx, &witness, &mut rng).unwrap();
        norm::verify(&gens, &cheat_params, &ctx, &proof).unwrap();
        let bytes = codec::encode_norm_proof(&cheat_params, &proof);
        let decoded = codec::decode_norm_proof(&round_params, &bytes).unwrap();
        assert!(norm::verify(&gens, &round_params, &ctx, &decoded).is_err());
        checked = true;
        (packed, bytes)
    });
    let r = run(&cfg, &inputs, &[], &mut hook);
    drop(hook);
    assert!(checked);
    assert_eq!(rejected(&r), vec![(CHEATER, Stage::MaskedInput, NORM)]);
    assert_eq!(NORM, DropReason::Validation(ValidationKind::Norm));
    assert_eq!(ValidationKind::Norm.to_string(), "validation: norm");
    let (aggregate, survivors) = released(&r);
    let honest: Vec<ClientId> = (1..=N).filter(|v| *v != CHEATER).collect();
    assert_eq!(survivors, honest);
    assert_eq!(*aggregate, sum_of(&inputs, honest.into_iter()));
    // The control: the cheater's real input would have shifted the sum.
    inputs[CHEATER as usize - 1] = big.iter().map(|v| enc(*v)).collect();
    assert_ne!(*aggregate, sum_of(&inputs, 1..=N));
}

#[test]
fn a_missing_or_garbled_proof_is_rejected() {
    for (cheater, garble) in [(5u32, false), (6, true)] {
        let cfg = config(3);
        let inputs: Vec<Vec<u64>> = (1..=N).map(honest_input).collect();
        let mut hook = rewrite_upload(cheater, |_, vector, mut proof| {
            if garble {
                let i = proof.len() / 2;
                proof[i] ^= 1;
            } else {
                proof.clear();
            }
            (vector, proof)
        });
        let r = run(&cfg, &inputs, &[], &mut hook);
        assert_eq!(rejected(&r), vec![(cheater, Stage::MaskedInput, NORM)]);
        let (aggregate, _) = released(&r);
        assert_eq!(
            *aggregate,
            sum_of(&inputs, (1..=N).filter(|v| *v != cheater))
        );
    }
}

/// Client 7 uploads its own vector with client 2's proof of this round (bound to client 2's
/// id and upload): rejected; client 2 is not.
#[test]
fn a_proof_replayed_from_another_client_is_rejected() {
    let cfg = config(4);
    let inputs: Vec<Vec<u64>> = (1..=N).map(honest_input).collect();
    let mut stolen: Option<Vec<u8>> = None;
    let mut hook = |server: &ServerRound, stage: Stage, from: ClientId, bytes: Vec<u8>| {
        if stage != Stage::MaskedInput {
            return bytes;
        }
        let ClientMessage::MaskedInput {
            vector,
            proof,
            masked_with,
        } = ClientMessage::decode(&bytes, server.config()).unwrap()
        else {
            panic!()
        };
        match from {
            2 => {
                stolen = Some(proof);
                bytes
            }
            7 => ClientMessage::MaskedInput {
                vector,
                proof: stolen.clone().expect("client 2 uploads first"),
                masked_with,
            }
            .encode(),
            _ => bytes,
        }
    };
    let r = run(&cfg, &inputs, &[], &mut hook);
    assert_eq!(rejected(&r), vec![(7, Stage::MaskedInput, NORM)]);
    let (aggregate, _) = released(&r);
    assert_eq!(*aggregate, sum_of(&inputs, (1..=N).filter(|v| *v != 7)));
}

/// Client 8's proof from round 5 attached to the same vector bytes in round 6 (another session):
/// rejected.
#[test]
fn a_proof_replayed_from_another_round_is_rejected() {
    let inputs: Vec<Vec<u64>> = (1..=N).map(honest_input).collect();
    let mut old: Option<Vec<u8>> = None;
    let mut capture = rewrite_upload(8, |_, vector, proof| {
        old = Some(proof.clone());
        (vector, proof)
    });
    let first = run(&config(5), &inputs, &[], &mut capture);
    drop(capture);
    assert!(first.dropouts.is_empty());
    let old = old.unwrap();
    let mut hook = rewrite_upload(8, |_, vector, _| (vector, old.clone()));
    let r = run(&config(6), &inputs, &[], &mut hook);
    assert_eq!(rejected(&r), vec![(8, Stage::MaskedInput, NORM)]);
    let (aggregate, _) = released(&r);
    assert_eq!(*aggregate, sum_of(&inputs, (1..=N).filter(|v| *v != 8)));
}

/// An honest client above the bound refuses locally, before advertising keys, with both norms
/// in its error; the round goes on without it.
#[test]
fn an_honest_client_above_the_bound_refuses_locally() {
    let cfg = config(7);
    let mut inputs: Vec<Vec<u64>> = (1..=N).map(honest_input).collect();
    inputs[0] = [20, 3, 0, 0, 0, 0, 0, 0].map(enc).to_vec();
    let r = run(&cfg, &inputs, &[], &mut no_hook());
    let (id, e) = &r.client_errors[0];
    assert_eq!(*id, 1);
    let msg = e.to_string();
    assert!(msg.contains("409") && msg.contains("401"), "{msg}");
    assert_eq!(r.dropouts.len(), 1);
    assert_eq!(r.dropouts[0].stage, Stage::AdvertiseKeys);
    let (aggregate, _) = released(&r);
    assert_eq!(*aggregate, sum_of(&inputs, 2..=N));
}

/// Validated parameters are in the config digest, hence the session id and the signed key
/// entries (W6): a client told another bound than the rest signs its keys over another digest.
#[test]
fn the_bound_is_in_the_config_digest_and_session() {
    let cfg = config(8);
    let mut other = cfg.clone();
    other.validation = Some(ValidationParams {
        bound_sq: 402,
        projections: 41,
    });
    assert_ne!(cfg.digest(), other.digest());
    let u1 = secagg_core::idset::IdSet::full(N);
    assert_ne!(
        cfg.session_id(&u1, &[1; 32]),
        other.session_id(&u1, &[1; 32])
    );
    let mut plain = cfg.clone();
    plain.validation = None;
    assert_ne!(cfg.digest(), plain.digest());
}

#[test]
fn a_streamed_client_refuses_a_validated_round() {
    let cfg = config(9);
    let start = secagg_core::messages::ServerMessage::RoundStart(cfg).encode();
    assert_eq!(start[0], 3, "wire version 3");
    let Err(e) = Client::streamed(1, DIM).start(&start, &mut ChaCha20Rng::seed_from_u64(1)) else {
        panic!("a streamed client accepted a validated round")
    };
    assert!(
        matches!(e, ClientError::BadParameters(ref m) if m.contains("streamed")),
        "{e}"
    );
}

/// The server refuses to announce what clients refuse (§5.3: J above J_cap, a bound that can
/// wrap the sum) and validated rounds outside the malicious model.
fn roster() -> Vec<[u8; 32]> {
    (0..N).map(|i| [i as u8; 32]).collect()
}

#[test]
fn the_server_refuses_invalid_validation_parameters() {
    let ok = config(10);
    for bad in [
        ValidationParams {
            bound_sq: BOUND_SQ,
            projections: 45,
        },
        ValidationParams {
            bound_sq: 1 << 30,
            projections: 41,
        },
        ValidationParams {
            bound_sq: 0,
            projections: 41,
        },
    ] {
        let cfg = RoundConfig {
            validation: Some(bad),
            ..ok.clone()
        };
        assert!(ServerRound::new(cfg, Some(roster()), 1).is_err());
    }
    assert!(ServerRound::new(ok.clone(), Some(roster()), 1).is_ok());
    let hbc = RoundConfig {
        model: ThreatModel::HonestButCurious,
        pki: false,
        ..ok
    };
    assert!(hbc.validate().is_err());
}

/// A rejection among dropouts at every stage: client 2 leaves at the share stage, client 3's
/// proof is missing, client 9 sends garbage instead of its upload, client 10 fails at the
/// consistency check after its upload was summed. The release is exactly the sum of U3 =
/// {1, 4..8, 10} (client 10's self mask removed as for any survivor that leaves later).
#[test]
fn a_rejection_among_dropouts_at_every_stage() {
    let cfg = config(11);
    let inputs: Vec<Vec<u64>> = (1..=N).map(honest_input).collect();
    let mut hook =
        |server: &ServerRound, stage: Stage, from: ClientId, bytes: Vec<u8>| match (stage, from) {
            (Stage::ShareKeys, 2) | (Stage::MaskedInput, 9) | (Stage::ConsistencyCheck, 10) => {
                vec![0xff]
            }
            (Stage::MaskedInput, 3) => {
                rewrite_upload(3, |_, v, _| (v, Vec::new()))(server, stage, from, bytes)
            }
            _ => bytes,
        };
    let r = run(&cfg, &inputs, &[], &mut hook);
    let by_id: Vec<(ClientId, Stage, bool)> = r
        .dropouts
        .iter()
        .map(|d| (d.id, d.stage, d.reason == NORM))
        .collect();
    assert!(by_id.contains(&(2, Stage::ShareKeys, false)), "{by_id:?}");
    assert!(by_id.contains(&(3, Stage::MaskedInput, true)), "{by_id:?}");
    assert!(by_id.contains(&(9, Stage::MaskedInput, false)), "{by_id:?}");
    assert_eq!(r.dropouts.iter().filter(|d| d.reason == NORM).count(), 1);
    let (aggregate, survivors) = released(&r);
    let u3 = vec![1, 4, 5, 6, 7, 8, 10];
    assert_eq!(survivors, u3);
    assert_eq!(*aggregate, sum_of(&inputs, u3.into_iter()));
}
