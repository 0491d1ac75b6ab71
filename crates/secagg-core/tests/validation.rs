//! Validated inputs, steps 8a and 8b (docs/VALIDATION.md §21): the norm proof at upload, the
//! challenge stage (binding proofs, pair commitments, disputes) and the checks after unmasking. Rounds are
//! driven here message by message (host clients: a streamed client cannot prove a norm), with a
//! hook that rewrites a client's message before the server gets it (the cheaters).
//!
//! Each test of a defence fails when the server's verification is disabled (every pending
//! upload counted without its proof checked, `server.rs::verify_pending`): that was run once
//! while building (VALIDATION.md §21.1 D37).
#![cfg(feature = "cheats")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use secagg_core::cheat::Cheat;
use secagg_core::client::{Client, ClientRound};
use secagg_core::config::ValidationParams;
use secagg_core::crypto::{DhKeyPair, IdentityKey};
use secagg_core::messages::{ClientMessage, KeyEntry, ServerMessage};
use secagg_core::server::{DropReason, Dropout, Outcome, ServerRound, ValidationKind};
use secagg_core::validate::binding::wire_params;
use secagg_core::validate::round;
use secagg_core::validate::secagg_zk::norm::{self, NormParams, NormWitness};
use secagg_core::validate::secagg_zk::{Generators, codec};
use secagg_core::validate::wire::{
    DroppedPairEvidence, Evidence, ExclusionRequest, PairSeedHashes, Secret32,
    ValidationClientMessage, ValidationResponse, ValidationServerMessage,
};
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
            max_weight: None,
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
    /// Every reply a client produced, in order.
    replies: Vec<(ClientId, Vec<u8>)>,
    /// Each client's saved state just before it handled its routed shares, with that message
    /// (what a malicious server could roll the client back to).
    before_upload: Vec<(ClientId, Vec<u8>, Vec<u8>)>,
}

/// Runs a round; `save_restore` lists clients that are exported and re-imported before every
/// message they handle (a driver that keeps no client in memory).
fn run(
    cfg: &RoundConfig,
    inputs: &[Vec<u64>],
    save_restore: &[ClientId],
    hook: &mut Hook<'_>,
) -> Report {
    run_with(cfg, inputs, save_restore, &[], hook)
}

/// [`run`] with test-only cheating clients (feature `cheats`, VALIDATION.md §16).
fn run_with(
    cfg: &RoundConfig,
    inputs: &[Vec<u64>],
    save_restore: &[ClientId],
    cheats: &[(ClientId, Cheat)],
    hook: &mut Hook<'_>,
) -> Report {
    run_full(cfg, inputs, save_restore, cheats, hook, &mut |_, _, m| m)
}

/// What the server sends, rewritten on its way to client `to` (a malicious server).
type ToClient<'a> = dyn FnMut(&ServerRound, ClientId, Vec<u8>) -> Vec<u8> + 'a;

/// [`run_with`] with a hook on the server's messages too; every client reply is recorded.
fn run_full(
    cfg: &RoundConfig,
    inputs: &[Vec<u64>],
    save_restore: &[ClientId],
    cheats: &[(ClientId, Cheat)],
    hook: &mut Hook<'_>,
    to_client: &mut ToClient<'_>,
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
            let id = i as ClientId + 1;
            let mut c = Client::new(id, x.clone()).with_pki(k, roster.clone());
            if let Some((_, cheat)) = cheats.iter().find(|(c, _)| *c == id) {
                c = c.with_cheat(cheat.clone());
            }
            ClientRound::New(c)
        })
        .collect();
    let mut rngs: Vec<ChaCha20Rng> = (0..cfg.num_clients)
        .map(|i| ChaCha20Rng::seed_from_u64(cfg.round_id * 1000 + u64::from(i)))
        .collect();
    let mut client_errors = Vec::new();
    let mut all_replies = Vec::new();
    let mut before_upload = Vec::new();
    let mut now = 0;
    server.start(now);
    // Messages the server queued while handling replies (disputes open within a stage).
    let mut queued: Vec<(ClientId, Vec<u8>)> = Vec::new();
    loop {
        let stage = server.stage();
        let mut out = core::mem::take(&mut queued);
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
            let bytes = to_client(&server, to, bytes);
            if bytes.get(..2) == Some(&[3u8, 0x24][..])
                && let Ok(st) = clients[i].export_state()
            {
                before_upload.push((to, st.as_bytes().to_vec(), bytes.clone()));
            }
            match clients[i].handle(&bytes, &mut rngs[i]) {
                Ok(Some(r)) => {
                    all_replies.push((to, r.clone()));
                    replies.push((to, r));
                }
                Ok(None) => {}
                Err(e) => client_errors.push((to, e)),
            }
        }
        if ended {
            break;
        }
        for (from, r) in replies {
            let r = hook(&server, stage, from, r);
            let _ = server.handle_message(now, from, &r);
        }
        while let Some(m) = server.poll_outgoing() {
            queued.push(m);
        }
        if queued.is_empty() && server.stage() == stage && server.outcome().is_none() {
            now = server.poll_timeout().unwrap();
            server.handle_timeout(now);
        }
        now += 1;
    }
    Report {
        outcome: server.outcome().cloned().unwrap(),
        dropouts: server.dropouts().to_vec(),
        client_errors,
        replies: all_replies,
        before_upload,
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
        max_weight: None,
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
            max_weight: None,
        },
        ValidationParams {
            bound_sq: 1 << 30,
            projections: 41,
            max_weight: None,
        },
        ValidationParams {
            bound_sq: 0,
            projections: 41,
            max_weight: None,
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

const BINDING: DropReason = DropReason::Validation(ValidationKind::Binding);
const PAIR: DropReason = DropReason::Validation(ValidationKind::PairCommitment);

/// §16 `inconsistent`: client 3 commits to and proves the norm of its honest input x but masks
/// x + δ (δ of norm far above the bound). Its norm proof verifies (it is about x); its binding
/// answer cannot: it is rejected at the challenge stage with `validation: binding`, and the
/// release is exactly the other nine's sum. Client 7 sends garbage at the challenge stage (a
/// dropout there): it is out too, and its upload never enters the sum.
#[test]
fn inconsistent_upload_fails_the_binding() {
    const CHEATER: ClientId = 3;
    let cfg = config(12);
    let inputs: Vec<Vec<u64>> = (1..=N).map(honest_input).collect();
    let masked: Vec<u64> = inputs[CHEATER as usize - 1]
        .iter()
        .map(|x| (x + 1000) % (1 << BITS))
        .collect();
    let mut hook = |_: &ServerRound, stage: Stage, from: ClientId, bytes: Vec<u8>| {
        if stage == Stage::Validate && from == 7 {
            vec![3, 0xff]
        } else {
            bytes
        }
    };
    let r = run_with(
        &cfg,
        &inputs,
        &[],
        &[(CHEATER, Cheat::MaskOther(masked))],
        &mut hook,
    );
    let rej = rejected(&r);
    assert!(
        rej.contains(&(CHEATER, Stage::Validate, BINDING)),
        "{rej:?}"
    );
    assert_eq!(rej.iter().filter(|d| d.0 == 7).count(), 1, "{rej:?}");
    assert_eq!(rej.len(), 2, "{rej:?}");
    let (aggregate, survivors) = released(&r);
    let honest: Vec<ClientId> = (1..=N).filter(|v| *v != CHEATER && *v != 7).collect();
    assert_eq!(survivors, honest);
    assert_eq!(*aggregate, sum_of(&inputs, honest.into_iter()));
}

/// §16 `forged-proof` (b): client 4's real update is large (‖x‖² far above the bound); it
/// commits to and proves a small vector x̃ under the bound and masks the real one. The norm
/// proof verifies (it is about x̃); the binding fails; the release excludes it exactly. Client
/// 6 is saved and restored before every message (the state of the challenge stage).
#[test]
fn forged_proof_for_another_vector_is_rejected() {
    const CHEATER: ClientId = 4;
    let cfg = config(13);
    let mut inputs: Vec<Vec<u64>> = (1..=N).map(honest_input).collect();
    let real: Vec<u64> = [300, -200, 0, 0, 0, 0, 0, 9].map(enc).to_vec();
    inputs[CHEATER as usize - 1] = [1, 1, 1, 1, 0, 0, 0, 0].map(enc).to_vec();
    let r = run_with(
        &cfg,
        &inputs,
        &[6],
        &[(CHEATER, Cheat::MaskOther(real))],
        &mut no_hook(),
    );
    assert_eq!(rejected(&r), vec![(CHEATER, Stage::Validate, BINDING)]);
    let (aggregate, survivors) = released(&r);
    let honest: Vec<ClientId> = (1..=N).filter(|v| *v != CHEATER).collect();
    assert_eq!(survivors, honest);
    assert_eq!(*aggregate, sum_of(&inputs, honest.into_iter()));
    assert!(r.client_errors.is_empty(), "{:?}", r.client_errors);
}

/// §16 `wrong-mask`, pair variant: client 5 masks its pair with client 2 with a wrong seed and
/// commits P from it (consistently, so its own binding proof verifies). P_52 ≠ P_25: both get
/// the other's signed response; honest client 2 answers with s_25 (rule (i)–(iii) hold), the
/// server names client 5 (`validation: pair commitment`), and client 2 stays. The release is
/// exactly the other nine's sum (client 5's mask with 2 is never used: it is out of U3, and
/// client 2 masked with the true seed, removed through client 5's rebuilt key).
#[test]
fn wrong_pair_mask_loses_the_dispute() {
    const CHEATER: ClientId = 5;
    let cfg = config(14);
    let inputs: Vec<Vec<u64>> = (1..=N).map(honest_input).collect();
    let r = run_with(
        &cfg,
        &inputs,
        &[2],
        &[(CHEATER, Cheat::WrongPairMask { peer: 2 })],
        &mut no_hook(),
    );
    assert_eq!(rejected(&r), vec![(CHEATER, Stage::Validate, PAIR)]);
    assert_eq!(
        ValidationKind::PairCommitment.to_string(),
        "validation: pair commitment"
    );
    let (aggregate, survivors) = released(&r);
    let honest: Vec<ClientId> = (1..=N).filter(|v| *v != CHEATER).collect();
    assert_eq!(survivors, honest);
    assert_eq!(*aggregate, sum_of(&inputs, honest.into_iter()));
    // Only the cheater may have failed (it answers its own dispute with a wrong seed or not).
    assert!(
        r.client_errors.iter().all(|(id, _)| *id == CHEATER),
        "{:?}",
        r.client_errors
    );
}

/// §16 `wrong-mask`, self variant: client 6 masks with a wrong self mask and commits O_u to
/// match, so every check before unmasking passes. After unmasking, its rebuilt b_u gives
/// another O_u: the server sends the evidence (its signed response and b_u) to the holders of
/// client 6's mask-key shares, each checks it against its own session, κ and copy of client
/// 6's key entry and releases its share (rule E); the server removes client 6 from U3 and
/// releases exactly the other nine's sum. Client 8 is saved and restored before every message.
#[test]
fn wrong_self_mask_is_excluded_after_unmask() {
    const CHEATER: ClientId = 6;
    let cfg = config(15);
    let inputs: Vec<Vec<u64>> = (1..=N).map(honest_input).collect();
    let r = run_with(
        &cfg,
        &inputs,
        &[8],
        &[(CHEATER, Cheat::WrongSelfMask)],
        &mut no_hook(),
    );
    assert_eq!(
        rejected(&r),
        vec![(
            CHEATER,
            Stage::Unmask,
            DropReason::Validation(ValidationKind::SelfMask)
        )]
    );
    let (aggregate, survivors) = released(&r);
    let honest: Vec<ClientId> = (1..=N).filter(|v| *v != CHEATER).collect();
    assert_eq!(survivors, honest);
    assert_eq!(*aggregate, sum_of(&inputs, honest.into_iter()));
    assert!(
        r.client_errors.iter().all(|(id, _)| *id == CHEATER),
        "{:?}",
        r.client_errors
    );
}

/// §8.5 through rule E: client 5 masks its pair with client 2 with a wrong seed (and commits to
/// it), and client 2 goes silent after its upload, so no dispute compares the pair. After
/// unmasking, client 2's rebuilt mask key gives the true s_25: client 5's P differs, the
/// holders check the dropped-pair evidence and release client 5's key share, and the release
/// is exactly the sum of the other eight.
#[test]
fn a_lie_on_a_pair_with_a_dropped_peer_is_excluded_after_unmask() {
    let cfg = config(19);
    let inputs: Vec<Vec<u64>> = (1..=N).map(honest_input).collect();
    let mut hook = |_: &ServerRound, s: Stage, from: ClientId, bytes: Vec<u8>| {
        if from == 2 && s == Stage::Validate {
            vec![0xff]
        } else {
            bytes
        }
    };
    let r = run_with(
        &cfg,
        &inputs,
        &[],
        &[(5, Cheat::WrongPairMask { peer: 2 })],
        &mut hook,
    );
    let rej = rejected(&r);
    assert!(
        rej.contains(&(
            5,
            Stage::Unmask,
            DropReason::Validation(ValidationKind::DroppedPair)
        )),
        "{rej:?}"
    );
    let (aggregate, survivors) = released(&r);
    let kept: Vec<ClientId> = (1..=N).filter(|v| *v != 5 && *v != 2).collect();
    assert_eq!(survivors, kept);
    assert_eq!(*aggregate, sum_of(&inputs, kept.into_iter()));
}

/// Review 8b #1: client 3 signs a wrong hash for its pair with client 2, so the pair is cut
/// (neither masks with the other), then (a) client 3 leaves before uploading, or (b) client 3
/// stays and the honest client 2 goes silent at the challenge stage. The server must not remove
/// a mask for the cut pair at unmask (it did, and the safety net aborted every such round): the
/// release is exactly the sum of the rest. (c) Both stay: the exact sum of all ten.
#[test]
fn a_cut_pair_with_a_dropout_still_releases_the_exact_sum() {
    for (leaver, stage, round_id) in [
        (Some(3), Stage::MaskedInput, 16),
        (Some(2), Stage::Validate, 17),
        (None, Stage::Validate, 18),
    ] {
        let cfg = config(round_id);
        let inputs: Vec<Vec<u64>> = (1..=N).map(honest_input).collect();
        let mut hook = |_: &ServerRound, s: Stage, from: ClientId, bytes: Vec<u8>| {
            if Some(from) == leaver && s == stage {
                vec![0xff]
            } else {
                bytes
            }
        };
        let r = run_with(
            &cfg,
            &inputs,
            &[],
            &[(3, Cheat::CutPair { peer: 2 })],
            &mut hook,
        );
        let (aggregate, survivors) = released(&r);
        let kept: Vec<ClientId> = (1..=N).filter(|v| Some(*v) != leaver).collect();
        assert_eq!(survivors, kept, "leaver {leaver:?}");
        assert_eq!(
            *aggregate,
            sum_of(&inputs, kept.into_iter()),
            "leaver {leaver:?}"
        );
    }
}

/// Rule E against a malicious server (VALIDATION.md §8.6, F8): in an honest round, the server
/// sends client 2, instead of `Done`, requests for the mask-key share of its honest neighbour 3
/// (whose self-mask share client 2 has just released): with client 3's real signed response
/// and a made-up b_3, with no lie in it (the real b_3 is unknown to it, so a random one),
/// for a client outside U3's listing, and for client 2 itself. Client 2 refuses every one and
/// sends no share: the server never holds both secrets of an honest client.
#[test]
fn exclusion_requests_without_a_proven_lie_are_refused() {
    use secagg_core::validate::binding::wire_params;
    use secagg_core::validate::wire::{
        Evidence, ExclusionRequest, Secret32, SelfMaskEvidence, ValidationClientMessage,
        ValidationServerMessage,
    };
    let cfg = config(20);
    let inputs: Vec<Vec<u64>> = (1..=N).map(honest_input).collect();
    let wire = wire_params(&cfg).unwrap();
    let mut response_of_3 = None;
    let mut capture = |_: &ServerRound, stage: Stage, from: ClientId, bytes: Vec<u8>| {
        if stage == Stage::Validate
            && from == 3
            && let Ok(ValidationClientMessage::ValidationResponse(r)) =
                ValidationClientMessage::decode(&bytes, &wire)
        {
            response_of_3 = Some(r);
        }
        bytes
    };
    let r = run_with(&cfg, &inputs, &[], &[], &mut capture);
    released(&r);
    let response = response_of_3.expect("client 3 answered the challenge");
    // The forged requests replace `Done` to client 2 in a rerun of the same round (same seeds,
    // so the same keys, κ and client 3's response).
    for (liar, secret) in [(3u32, [7u8; 32]), (11, [7; 32]), (2, [7; 32])] {
        let req = ValidationServerMessage::ExclusionRequest(ExclusionRequest {
            liar,
            evidence: Evidence::SelfMask(Box::new(SelfMaskEvidence {
                response: response.clone(),
                self_secret: Secret32::new(secret),
            })),
        })
        .encode();
        let mut replace = |server: &ServerRound, to: ClientId, bytes: Vec<u8>| {
            let done = secagg_core::messages::ServerMessage::Done.encode();
            if to == 2 && bytes == done && server.outcome().is_some() {
                req.clone()
            } else {
                bytes
            }
        };
        let r = run_full(&cfg, &inputs, &[], &[], &mut no_hook(), &mut replace);
        released(&r);
        let shares: Vec<_> = r
            .replies
            .iter()
            .filter(|(from, m)| *from == 2 && m.get(..2) == Some(&[3, 0x33][..]))
            .collect();
        assert!(
            shares.is_empty(),
            "client 2 released a key share for {liar}"
        );
        let refused = r.client_errors.iter().any(|(id, e)| {
            *id == 2 && matches!(e, ClientError::ServerMisbehaved(m) if m.contains("share"))
        });
        assert!(refused, "liar {liar}: {:?}", r.client_errors);
    }
}

// Cases from the adversarial review of rule E (/work/notes/review-8c.md, kept as tests).

fn silent(
    who: ClientId,
    at: Stage,
) -> impl FnMut(&ServerRound, Stage, ClientId, Vec<u8>) -> Vec<u8> {
    move |_, s, from, bytes| {
        if from == who && s == at {
            vec![0xff]
        } else {
            bytes
        }
    }
}

/// Two adjacent self-mask liars found in the same step: both excluded, exact sum of the rest.
#[test]
fn two_adjacent_self_mask_liars_are_excluded_in_one_step() {
    let cfg = config(101);
    let inputs: Vec<Vec<u64>> = (1..=N).map(honest_input).collect();
    let r = run_with(
        &cfg,
        &inputs,
        &[],
        &[(4, Cheat::WrongSelfMask), (6, Cheat::WrongSelfMask)],
        &mut no_hook(),
    );
    let (aggregate, survivors) = released(&r);
    let kept: Vec<ClientId> = (1..=N).filter(|v| *v != 4 && *v != 6).collect();
    assert_eq!(survivors, kept);
    assert_eq!(*aggregate, sum_of(&inputs, kept.into_iter()));
}

/// A self-mask liar whose neighbour 2 dropped at the challenge: its pair mask with 2 was
/// removed at unmask and must be added back.
#[test]
fn a_self_mask_liar_with_a_dropped_peer_is_excluded_exactly() {
    let cfg = config(102);
    let inputs: Vec<Vec<u64>> = (1..=N).map(honest_input).collect();
    let r = run_with(
        &cfg,
        &inputs,
        &[],
        &[(6, Cheat::WrongSelfMask)],
        &mut silent(2, Stage::Validate),
    );
    let (aggregate, survivors) = released(&r);
    let kept: Vec<ClientId> = (1..=N).filter(|v| *v != 6 && *v != 2).collect();
    assert_eq!(survivors, kept);
    assert_eq!(*aggregate, sum_of(&inputs, kept.into_iter()));
}

/// Both lie kinds in one round: 6 on its self mask, 5 on its pair with the dropped 2.
#[test]
fn both_lie_kinds_with_a_dropout_are_excluded() {
    let cfg = config(103);
    let inputs: Vec<Vec<u64>> = (1..=N).map(honest_input).collect();
    let r = run_with(
        &cfg,
        &inputs,
        &[3],
        &[
            (6, Cheat::WrongSelfMask),
            (5, Cheat::WrongPairMask { peer: 2 }),
        ],
        &mut silent(2, Stage::Validate),
    );
    let (aggregate, survivors) = released(&r);
    let kept: Vec<ClientId> = (1..=N).filter(|v| ![2, 5, 6].contains(v)).collect();
    assert_eq!(survivors, kept);
    assert_eq!(*aggregate, sum_of(&inputs, kept.into_iter()));
}

/// F2: colluders 4 and 7 share a fake pair seed (consistent P's: no dispute); 7 leaves at the
/// challenge; 4's P_47 differs from the true seed: excluded after unmasking.
#[test]
fn colluders_on_a_fake_pair_seed_are_excluded_when_one_leaves() {
    let cfg = config(104);
    let inputs: Vec<Vec<u64>> = (1..=N).map(honest_input).collect();
    let r = run_with(
        &cfg,
        &inputs,
        &[],
        &[
            (4, Cheat::WrongPairMask { peer: 7 }),
            (7, Cheat::WrongPairMask { peer: 4 }),
        ],
        &mut silent(7, Stage::Validate),
    );
    let (aggregate, survivors) = released(&r);
    let kept: Vec<ClientId> = (1..=N).filter(|v| ![4, 7].contains(v)).collect();
    assert_eq!(survivors, kept);
    assert_eq!(*aggregate, sum_of(&inputs, kept.into_iter()));
}

/// A self-mask liar that goes silent at unmask: still excluded (its b from the others'
/// shares), exact sum; how is it recorded?
#[test]
fn a_self_mask_liar_silent_at_unmask_is_still_named() {
    let cfg = config(105);
    let inputs: Vec<Vec<u64>> = (1..=N).map(honest_input).collect();
    let r = run_with(
        &cfg,
        &inputs,
        &[],
        &[(6, Cheat::WrongSelfMask)],
        &mut silent(6, Stage::Unmask),
    );
    let (aggregate, survivors) = released(&r);
    let kept: Vec<ClientId> = (1..=N).filter(|v| *v != 6).collect();
    assert_eq!(survivors, kept);
    assert_eq!(*aggregate, sum_of(&inputs, kept.into_iter()));
    assert!(
        rejected(&r).contains(&(
            6,
            Stage::Unmask,
            DropReason::Validation(ValidationKind::SelfMask)
        )),
        "liar recorded as {:?}",
        rejected(&r)
    );
}

/// Too many liars: U3 after exclusion below min_clients: abort, nothing released.
#[test]
fn too_many_liars_abort_and_release_nothing() {
    let cfg = config(106);
    let inputs: Vec<Vec<u64>> = (1..=N).map(honest_input).collect();
    let cheats: Vec<(ClientId, Cheat)> = (1..=5).map(|i| (i, Cheat::WrongSelfMask)).collect();
    let r = run_with(&cfg, &inputs, &[], &cheats, &mut no_hook());
    assert!(matches!(r.outcome, Outcome::Aborted(_)));
}

/// Liveness: after the exclusion request, one honest holder never answers (silently): the
/// exclusion must still complete at the deadline with the others' shares.
#[test]
fn an_exclusion_completes_without_a_silent_holder() {
    let cfg = config(107);
    let inputs: Vec<Vec<u64>> = (1..=N).map(honest_input).collect();
    let mut hook = |_: &ServerRound, s: Stage, from: ClientId, bytes: Vec<u8>| {
        if from == 9 && s == Stage::Unmask && bytes.get(1) == Some(&0x33) {
            Vec::new()
        } else {
            bytes
        }
    };
    let r = run_with(&cfg, &inputs, &[], &[(6, Cheat::WrongSelfMask)], &mut hook);
    let (aggregate, survivors) = released(&r);
    let kept: Vec<ClientId> = (1..=N).filter(|v| *v != 6).collect();
    assert_eq!(survivors, kept);
    assert_eq!(*aggregate, sum_of(&inputs, kept.into_iter()));
}

/// Review 8c W1, driven through the harness: a malicious server rolls honest client 3 back to
/// its state before the upload and feeds it routed shares with peer 5's hash altered, so
/// client 3 signs a second upload bitmap (without 5). Client 2 goes silent at the challenge
/// (its key is rebuilt at unmask). The server then asks holder 4, after it released client 3's
/// b-share, for client 3's mask-key share with "evidence" pairing client 3's real response with
/// that second bitmap. Holder 4 must refuse (two signed bitmaps are no lie: D28 amended): else
/// the server holds both of client 3's secrets.
#[test]
fn a_rolled_back_client_cannot_be_framed_with_two_bitmaps() {
    use secagg_core::messages::ServerMessage;
    use secagg_core::validate::binding::wire_params;
    use secagg_core::validate::wire::{
        DroppedPairEvidence, Evidence, ExclusionRequest, Secret32, ValidationClientMessage,
        ValidationServerMessage,
    };
    let cfg = config(110);
    let inputs: Vec<Vec<u64>> = (1..=N).map(honest_input).collect();
    let wire = wire_params(&cfg).unwrap();
    let (mut response, mut hashes, mut sk2_shares) = (None, None, Vec::new());
    let mut capture = |server: &ServerRound, stage: Stage, from: ClientId, bytes: Vec<u8>| {
        if from == 2 && stage == Stage::Validate {
            return vec![0xff];
        }
        if from == 3 {
            match ValidationClientMessage::decode(&bytes, &wire) {
                Ok(ValidationClientMessage::ValidationResponse(r)) => response = Some(r),
                Ok(ValidationClientMessage::Shares { hashes: h, .. }) => hashes = Some(h),
                _ => {}
            }
        }
        if stage == Stage::Unmask
            && let Ok(ClientMessage::UnmaskShares { mask_key, .. }) =
                ClientMessage::decode(&bytes, server.config())
        {
            sk2_shares.extend(
                mask_key
                    .into_iter()
                    .filter(|(o, _)| *o == 2)
                    .map(|(_, s)| s),
            );
        }
        bytes
    };
    let mut entries = None;
    let mut keys_hook = |server: &ServerRound, to: ClientId, bytes: Vec<u8>| {
        if to == 3
            && let Ok(ServerMessage::NeighbourKeys { neighbours, .. }) =
                ServerMessage::decode(&bytes, Some(server.config()))
        {
            entries = Some(neighbours);
        }
        bytes
    };
    let r = run_full(&cfg, &inputs, &[], &[], &mut capture, &mut keys_hook);
    released(&r);
    // The rollback: client 3's state before its upload, and peer 5's hash altered.
    let (_, state, routed) = r
        .before_upload
        .iter()
        .find(|(id, _, _)| *id == 3)
        .cloned()
        .unwrap();
    let ValidationServerMessage::RoutedShares {
        routed,
        mut peer_hashes,
    } = ValidationServerMessage::decode(&routed, &wire).unwrap()
    else {
        panic!("not routed shares")
    };
    for (v, h) in &mut peer_hashes {
        if *v == 5 {
            h[0] ^= 1;
        }
    }
    let altered = ValidationServerMessage::RoutedShares {
        routed,
        peer_hashes,
    }
    .encode();
    let mut c = ClientRound::import_state(&state).unwrap();
    let second = c
        .handle(&altered, &mut ChaCha20Rng::seed_from_u64(5))
        .unwrap()
        .unwrap();
    let ClientMessage::MaskedInput {
        masked_with: Some(upload2),
        ..
    } = ClientMessage::decode(&second, &cfg).unwrap()
    else {
        panic!("no second upload")
    };
    let entries = entries.unwrap();
    let view: Vec<(ClientId, [u8; 32])> = entries.iter().map(|e| (e.id, e.leaf())).collect();
    let entry2 = entries.iter().find(|e| e.id == 2).unwrap().clone();
    let sk2 = secagg_core::shamir::reconstruct(&sk2_shares, cfg.threshold as usize).unwrap();
    let response = response.unwrap();
    assert_ne!(
        response.bitmap, upload2.bitmap,
        "the rollback gave a second bitmap"
    );
    let req = ValidationServerMessage::ExclusionRequest(ExclusionRequest {
        liar: 3,
        evidence: Evidence::DroppedPair(Box::new(DroppedPairEvidence {
            hashes: hashes.unwrap(),
            view,
            dropped_entry: entry2,
            dropped_key: Secret32::new(*sk2),
            upload: upload2,
            response,
        })),
    })
    .encode();
    let mut replace = |server: &ServerRound, to: ClientId, bytes: Vec<u8>| {
        if to == 4 && bytes == ServerMessage::Done.encode() && server.outcome().is_some() {
            req.clone()
        } else {
            bytes
        }
    };
    let r = run_full(
        &cfg,
        &inputs,
        &[],
        &[],
        &mut silent(2, Stage::Validate),
        &mut replace,
    );
    released(&r);
    assert!(
        !r.replies
            .iter()
            .any(|(from, m)| *from == 4 && m.get(..2) == Some(&[3, 0x33][..])),
        "holder 4 released honest client 3's mask-key share after its b-share"
    );
    assert!(
        r.client_errors
            .iter()
            .any(|(id, e)| *id == 4 && e.to_string().contains("proves nothing")),
        "{:?}",
        r.client_errors
    );
}

/// The identity keys `run_full` gives clients 1..=N (same seed, same order).
fn identity_keys(n: u32) -> Vec<IdentityKey> {
    let mut krng = ChaCha20Rng::seed_from_u64(99);
    (0..n).map(|_| IdentityKey::generate(&mut krng)).collect()
}

/// Final review, finding 1 (the same class as review 8c #1, which D28's amendment closed for
/// two *upload bitmaps*): two *share-stage lists* of a rolled-back honest client. The fix: the
/// signed response carries V_u, the server drops a response over another view, and holders
/// refuse evidence whose list's view is not the response's.
///
/// Corrupt client 5 (colluding with the server) signs a second key entry E5' (fresh keys). The
/// malicious server restores honest client 3's state taken before NeighbourKeys (SECURITY.md
/// rule 9 designs for a client "restored and made to share again") and feeds it NeighbourKeys
/// with E5' in place of E5 (same U1, same root, so the same session: a client checks only its
/// own Merkle path). Client 3 signs a second share-stage list H' over a view V' naming E5'.
/// Then the real timeline runs honestly (3 masks with the real s_35, answers κ with the real
/// P_35). After unmasking (3's b-share released by every holder), the server sends holder 4
/// an ExclusionRequest against 3 with DroppedPair evidence: H' and V', E5' with sk5' (known to
/// the colluder), 3's real upload statement and real signed response. The hash rule matches
/// (h'_35 is the hash of s' = HKDF(X25519(sk5', pk3))), the P rule differs (P_35 was made from
/// the real seed) → "proven lie" → holder 4 releases its share of sk_3 although it released
/// its share of b_3: both secrets of an honest client. With the fix no holder releases one.
#[test]
fn a_rolled_back_client_cannot_be_framed_with_two_share_lists() {
    let cfg = config(210);
    let inputs: Vec<Vec<u64>> = (1..=N).map(honest_input).collect();
    let wire = wire_params(&cfg).unwrap();
    let ids = identity_keys(N);
    // Corrupt 5's second entry, validly signed under the round's config digest.
    let mut krng = ChaCha20Rng::seed_from_u64(4242);
    let enc5 = DhKeyPair::generate(&mut krng);
    let mask5 = DhKeyPair::generate(&mut krng);
    let mut alt: Option<KeyEntry> = None;

    // Timeline 1 (the run the server later rolls client 3 back from): NeighbourKeys to 3 carries
    // E5'; capture the signed list H' and the view V'.
    let mut view_alt: Option<Vec<(ClientId, [u8; 32])>> = None;
    let mut swap = |server: &ServerRound, to: ClientId, bytes: Vec<u8>| {
        if to != 3 {
            return bytes;
        }
        let Ok(ServerMessage::NeighbourKeys {
            u1,
            keys_root,
            key_path,
            mut neighbours,
        }) = ServerMessage::decode(&bytes, Some(server.config()))
        else {
            return bytes;
        };
        for e in &mut neighbours {
            if e.id == 5 {
                let mut e2 = e.clone();
                e2.enc_pk = enc5.public();
                e2.mask_pk = mask5.public();
                e2.signature = Some(ids[4].sign(&e2.signed_bytes(&server.config().digest())));
                *e = e2.clone();
                alt = Some(e2);
            }
        }
        view_alt = Some(neighbours.iter().map(|e| (e.id, e.leaf())).collect());
        ServerMessage::NeighbourKeys {
            u1,
            keys_root,
            key_path,
            neighbours,
        }
        .encode()
    };
    let mut list_alt: Option<PairSeedHashes> = None;
    let mut cap1 = |_: &ServerRound, _: Stage, from: ClientId, bytes: Vec<u8>| {
        if from == 3
            && let Ok(ValidationClientMessage::Shares { hashes, .. }) =
                ValidationClientMessage::decode(&bytes, &wire)
        {
            list_alt = Some(hashes);
        }
        bytes
    };
    let _ = run_full(&cfg, &inputs, &[], &[], &mut cap1, &mut swap);
    let list_alt = list_alt.expect("client 3 signed a share-stage list over the altered view");
    let view_alt = view_alt.unwrap();
    let alt = alt.unwrap();

    // Timeline 2, the real one (deterministic: same keys, session, κ): capture 3's upload
    // statement and response.
    let (mut upload, mut response): (Option<_>, Option<ValidationResponse>) = (None, None);
    let mut cap2 = |server: &ServerRound, _: Stage, from: ClientId, bytes: Vec<u8>| {
        if from == 3 {
            if let Ok(ClientMessage::MaskedInput {
                masked_with: Some(m),
                ..
            }) = ClientMessage::decode(&bytes, server.config())
            {
                upload = Some(m);
            }
            if let Ok(ValidationClientMessage::ValidationResponse(r)) =
                ValidationClientMessage::decode(&bytes, &wire)
            {
                response = Some(r);
            }
        }
        bytes
    };
    let r = run_full(&cfg, &inputs, &[], &[], &mut cap2, &mut |_, _, m| m);
    released(&r);
    let req = ValidationServerMessage::ExclusionRequest(ExclusionRequest {
        liar: 3,
        evidence: Evidence::DroppedPair(Box::new(DroppedPairEvidence {
            hashes: list_alt,
            view: view_alt,
            dropped_entry: alt,
            dropped_key: Secret32::new(*mask5.secret_bytes()),
            upload: upload.unwrap(),
            response: response.unwrap(),
        })),
    })
    .encode();
    // Same real timeline; `Done` to every holder of 3's shares (all but 3 and the colluder 5)
    // replaced by the framing request. Also record the b_3 shares the unmask released and 3's
    // entry.
    let mut b3_shares = Vec::new();
    let mut entry3: Option<KeyEntry> = None;
    let mut rec = |server: &ServerRound, stage: Stage, _: ClientId, bytes: Vec<u8>| {
        if stage == Stage::Unmask
            && let Ok(ClientMessage::UnmaskShares { self_mask, .. }) =
                ClientMessage::decode(&bytes, server.config())
        {
            b3_shares.extend(
                self_mask
                    .into_iter()
                    .filter(|(o, _)| *o == 3)
                    .map(|(_, s)| s),
            );
        }
        bytes
    };
    let mut replace = |server: &ServerRound, to: ClientId, bytes: Vec<u8>| {
        if to == 4
            && let Ok(ServerMessage::NeighbourKeys { neighbours, .. }) =
                ServerMessage::decode(&bytes, Some(server.config()))
        {
            entry3 = neighbours.iter().find(|e| e.id == 3).cloned();
        }
        if to != 3 && to != 5 && bytes == ServerMessage::Done.encode() && server.outcome().is_some()
        {
            req.clone()
        } else {
            bytes
        }
    };
    let r = run_full(&cfg, &inputs, &[], &[], &mut rec, &mut replace);
    released(&r);
    let sk3_shares: Vec<secagg_core::shamir::Share> = r
        .replies
        .iter()
        .filter(|(_, m)| m.get(..2) == Some(&[3, 0x33][..]))
        .filter_map(|(_, m)| match ValidationClientMessage::decode(m, &wire) {
            Ok(ValidationClientMessage::ExclusionShares(e)) if e.liar == 3 => Some(e.share),
            _ => None,
        })
        .collect();
    let t = cfg.threshold as usize;
    let entry3 = entry3.unwrap();
    if sk3_shares.len() >= t {
        let sk3 = secagg_core::shamir::reconstruct(&sk3_shares, t).unwrap();
        let b3 = secagg_core::shamir::reconstruct(&b3_shares, t).unwrap();
        let sk_ok = DhKeyPair::from_secret_bytes(&sk3).public() == entry3.mask_pk;
        let b_ok =
            secagg_core::crypto::commit_self_secret(&b3, cfg.round_id, 3) == entry3.commitment;
        assert!(
            !(sk_ok && b_ok),
            "BREAK: the server holds both secrets of honest client 3"
        );
    }
    assert!(
        sk3_shares.is_empty(),
        "BREAK: holders released honest client 3's mask-key shares after its b-shares"
    );
}

/// Final review, finding 3: a cheater signs wrong pair-seed hashes for 5 of its 9 neighbours
/// (t = 5), so the server cuts those pairs, and masks with the 4 left (skipping the refusal an
/// honest client makes below t). Without the server's check |S_u| ≥ t it was in U3, and at
/// unmask every honest neighbour refused the whole request under rule M: the round aborted.
/// Now the server drops it at its upload and releases the exact sum of the others.
#[test]
fn a_cheater_cutting_its_pairs_below_t_is_dropped_not_an_abort() {
    let cfg = config(240);
    let inputs: Vec<Vec<u64>> = (1..=N).map(honest_input).collect();
    let cheats = [(3u32, Cheat::CutMany(vec![1, 2, 4, 5, 6]))];
    let r = run_with(&cfg, &inputs, &[], &cheats, &mut no_hook());
    assert!(
        matches!(r.outcome, Outcome::Released { .. }),
        "BREAK: one cheater aborted the round"
    );
    let (agg, survivors) = released(&r);
    assert_eq!(
        *agg,
        sum_of(&inputs, survivors.iter().copied()),
        "exact sum of the rest"
    );
    assert!(!survivors.contains(&3));
}

/// Final review, finding 2 (D33): with a weight coordinate (the last, W = 3) every client also
/// proves it is in [0, W]. A cheater whose vector is tiny but carries the weight −8 (inside the
/// norm bound: it would scale the released weighted mean by the honest total weight) cannot
/// prove the round's statement, and a proof of the statement without the weight (what the
/// round checked before) is rejected: `validation: norm`, and the release is exactly the
/// others' sum. An honest round with weights in [0, W] releases.
#[test]
fn a_weight_outside_its_range_is_rejected_inside_the_norm_bound() {
    const CHEATER: ClientId = 4;
    let mut cfg = config(250);
    if let Some(v) = cfg.validation.as_mut() {
        v.max_weight = Some(3);
    }
    // An encoding with a weight coordinate (opaque to the core; raw integers, an empty
    // encoding, refuse a weight bound).
    cfg.encoding = b"weighted".to_vec();
    // Honest inputs: the last value is the weight, in [0, 3].
    let inputs: Vec<Vec<u64>> = (1..=N)
        .map(|id| {
            let mut x = honest_input(id);
            x[DIM as usize - 1] = u64::from(id % 4);
            x
        })
        .collect();
    let r = run(&cfg, &inputs, &[], &mut no_hook());
    let (aggregate, survivors) = released(&r);
    assert_eq!(*aggregate, sum_of(&inputs, survivors.iter().copied()));
    assert_eq!(survivors.len(), N as usize);

    let small = inputs[CHEATER as usize - 1].clone();
    let mut bad: Vec<i64> = vec![0; DIM as usize];
    bad[DIM as usize - 1] = -8;
    let round_params = round::norm_params(&cfg).unwrap();
    assert_eq!(round_params.weight_max(), Some(3));
    let no_weight = NormParams::new(DIM as usize, BOUND_SQ, None).unwrap();
    let mut checked = false;
    let mut hook = rewrite_upload(CHEATER, |server, vector, _proof| {
        let m = cfg.modulus();
        let y = m.unpack(&vector, DIM as usize).unwrap();
        let y: Vec<u64> = y
            .iter()
            .zip(&bad)
            .zip(&small)
            .map(|((y, b), s)| (y + enc(*b) + (1 << BITS) - s) % (1 << BITS))
            .collect();
        let packed = m.pack(&y);
        let session = *server.session().unwrap();
        let ctx = round::norm_context(&session, CHEATER, &packed);
        let mut rng = ChaCha20Rng::seed_from_u64(6);
        let witness = NormWitness::new(bad.clone(), Default::default());
        // No proof of the round's statement exists for weight −8.
        let gens = Generators::shared(round_params.generator_sizes()).unwrap();
        assert!(norm::prove(&gens, &round_params, &ctx, &witness, &mut rng).is_err());
        // Without the weight statement it proves (‖x‖² = 64 ≤ 401).
        let gens = Generators::shared(no_weight.generator_sizes()).unwrap();
        let proof = norm::prove(&gens, &no_weight, &ctx, &witness, &mut rng).unwrap();
        checked = true;
        (packed, codec::encode_norm_proof(&no_weight, &proof))
    });
    let r = run(&cfg, &inputs, &[], &mut hook);
    drop(hook);
    assert!(checked);
    assert_eq!(rejected(&r), vec![(CHEATER, Stage::MaskedInput, NORM)]);
    let (aggregate, survivors) = released(&r);
    let honest: Vec<ClientId> = (1..=N).filter(|v| *v != CHEATER).collect();
    assert_eq!(survivors, honest);
    assert_eq!(*aggregate, sum_of(&inputs, honest.into_iter()));
}

/// Review rev10, W1 (a cascade through U3): 7 lies on its self mask and shares a fake pair
/// seed with its colluder 4. Rule E excludes 7 (it was in U3); only then is 4's P_47 a lie
/// about a pair with a client outside U3, and its evidence names 7, whom every holder signed
/// in U3. Holders that refused such evidence (the final review's nit 6, reverted) let the two
/// abort the round; now both are excluded and the others' exact sum is released.
#[test]
fn colluders_excluded_in_a_cascade_through_u3() {
    let cfg = config(104);
    let inputs: Vec<Vec<u64>> = (1..=N).map(honest_input).collect();
    let r = run_with(
        &cfg,
        &inputs,
        &[],
        &[
            (4, Cheat::WrongPairMask { peer: 7 }),
            (7, Cheat::WrongPairAndSelfMask { peer: 4 }),
        ],
        &mut no_hook(),
    );
    let (aggregate, survivors) = released(&r);
    let kept: Vec<ClientId> = (1..=N).filter(|v| ![4, 7].contains(v)).collect();
    assert_eq!(survivors, kept);
    assert_eq!(*aggregate, sum_of(&inputs, kept.into_iter()));
}

/// Review rev10, W2: a server that puts a weight bound W into a round of raw integers would
/// learn from each client's local refusal whether its last value is in [0, W]. The client
/// refuses any such round, whatever its last value (the same answer for every input).
#[test]
fn a_weight_bound_on_raw_integers_is_refused_whatever_the_input() {
    let mut cfg = config(150);
    if let Some(v) = cfg.validation.as_mut() {
        v.max_weight = Some(4);
    }
    let start = secagg_core::messages::ServerMessage::RoundStart(cfg.clone()).encode();
    for last in [-5i64, 3, 4, 5] {
        let mut x = honest_input(1);
        *x.last_mut().unwrap() = enc(last);
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        match Client::new(1, x).start(&start, &mut rng) {
            Err(ClientError::BadParameters(m)) => {
                assert!(m.contains("raw integers"), "{last}: {m}")
            }
            other => panic!("{last}: {:?}", other.map(|_| ())),
        }
    }
}
