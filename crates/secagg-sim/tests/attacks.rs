//! A server that deviates from the protocol. Each attack is a malicious server written as code
//! (`adversary::Rogue`, or the harness's per-recipient `tamper`) that sends different messages
//! to different clients, collects whatever the honest clients send, and tries to recover the
//! victim's input from it (`Loot::recover`: rebuild the revealed secrets with
//! `shamir::reconstruct`, recompute the masks, subtract them from the victim's masked vector).
//! Each test asserts that the honest clients refused, what they revealed, and that the
//! recovery fails. The `control_*` tests run the same attack code against rounds where the
//! defence does not apply (honest-but-curious rounds, no PKI) and recover the input exactly,
//! so the attacks are real.
//!
//! Client 1 is the victim throughout.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod adversary;

use std::sync::{Arc, Mutex};

use adversary::{Rogue, Sig, View, eavesdrop, inputs};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use secagg_core::client::{Client, ClientRound, Policy};
use secagg_core::crypto::{self, DhKeyPair};
use secagg_core::error::{CodecError, Misbehaviour};
use secagg_core::idset::IdSet;
use secagg_core::messages::{
    ClientMessage, KeyEntry, SHARE_BUNDLE_LEN, ServerMessage, consistency_signed_bytes,
};
use secagg_core::server::{DropReason, Dropout, Handled, Outcome, ServerRound};
use secagg_core::shamir::SHARE_LEN;
use secagg_core::{ClientError, ClientId, GraphKind, PrgKind, RoundConfig, Stage, ThreatModel};
use secagg_sim::harness::{Scenario, make_pki, plain_sum, run};
use secagg_sim::input_encoding::InputEncoding;

const VICTIM: ClientId = 1;
const HBC: ThreatModel = ThreatModel::HonestButCurious;
const MAL: ThreatModel = ThreatModel::Malicious;

/// SecAgg: 12 clients, complete graph, threshold `t`.
fn complete(model: ThreatModel, t: u32, min_clients: u32) -> RoundConfig {
    RoundConfig {
        round_id: 9,
        round_seed: [3u8; 32],
        num_clients: 12,
        min_clients,
        degree: 11,
        threshold: t,
        graph: GraphKind::Complete,
        bits: 16,
        dim: 8,
        prg: PrgKind::Aes128Ctr,
        model,
        pki: model == MAL,
        encoding: Vec::new(),
        validation: None,
    }
}

/// SecAgg+: 40 clients, Harary graph of degree 12, threshold `t`.
fn harary(model: ThreatModel, t: u32, min_clients: u32) -> RoundConfig {
    RoundConfig {
        num_clients: 40,
        degree: 12,
        graph: GraphKind::Harary,
        ..complete(model, t, min_clients)
    }
}

fn minus(set: &IdSet, ids: &[ClientId]) -> IdSet {
    let mut s = set.clone();
    for id in ids {
        s.remove(*id);
    }
    s
}

/// The rest of a round, the same for everyone in `u3`: the consistency check (malicious
/// model) and the unmask request. Returns who answered the unmask request.
fn unmask_consistently(r: &mut Rogue, view: &View, u3: &IdSet) -> IdSet {
    if view.cfg.model == MAL {
        let signers = r.ask_to_sign(u3, u3.iter());
        let sigs = r.signatures_of(&signers);
        r.ask_to_unmask(view, u3, &sigs, signers.iter())
    } else {
        r.ask_to_unmask(view, u3, &[], u3.iter())
    }
}

// ---------------------------------------------------------------------------------------------
// Finding 1: U2 hides the victim's neighbours.

/// The victim alone gets a U2 without any of its neighbours (and so no ciphertexts); everyone
/// else gets the true U2. The server keeps the victim in U3 if it uploaded and asks everyone
/// to unmask, hoping the neighbours reveal b_v while the victim masked with nobody.
fn hide_neighbours_in_u2(cfg: &RoundConfig) -> (Rogue, View) {
    let mut r = Rogue::new(cfg, 1);
    let view = r.honest_start();
    let u2 = r.honest_neighbour_keys(&view);
    assert_eq!(u2, view.u1);
    let u2_victim = minus(&u2, &view.neighbours(VICTIM));
    let msgs: Vec<_> = u2
        .iter()
        .map(|to| {
            let shown = if to == VICTIM { &u2_victim } else { &u2 };
            (to, r.shares_for(&view, shown, to))
        })
        .collect();
    let uploaded = r.send_all(Stage::MaskedInput, msgs);
    unmask_consistently(&mut r, &view, &uploaded);
    (r, view)
}

#[test]
fn u2_hiding_the_victims_neighbours_is_refused_before_the_upload() {
    let (r, view) = hide_neighbours_in_u2(&harary(MAL, 6, 20));
    assert!(
        r.refused(VICTIM, "fewer than the threshold 6"),
        "{:?}",
        r.refusals.get(&VICTIM)
    );
    assert!(
        !r.sent_in(Stage::MaskedInput, VICTIM),
        "the victim uploaded"
    );
    let got = r.loot.recover(&view, VICTIM, &[]);
    assert!(got.is_err(), "recovered {got:?}");
}

#[test]
fn control_u2_hiding_recovers_an_honest_but_curious_clients_input() {
    let (r, view) = hide_neighbours_in_u2(&harary(HBC, 6, 20));
    assert_eq!(r.loot.recover(&view, VICTIM, &[]).unwrap(), r.input(VICTIM));
}

// ---------------------------------------------------------------------------------------------
// Rule M: adversarial dropouts around the victim.

/// The victim sees a U2 with exactly t of its neighbours, S (the others, H, are hidden from it
/// alone, so they hold its shares and it does not mask with them). The server then leaves S out
/// of U3 (one U3 for everyone: the consistency check passes) so that S's own neighbours reveal
/// their mask keys, and asks H for b_v. Returns S.
fn isolate_by_dropouts(cfg: &RoundConfig) -> (Rogue, View, Vec<ClientId>) {
    let t = cfg.threshold as usize;
    let mut r = Rogue::new(cfg, 2);
    let view = r.honest_start();
    let u2 = r.honest_neighbour_keys(&view);
    let neighbours = view.neighbours(VICTIM);
    let (shown, hidden) = neighbours.split_at(t);
    let u2_victim = minus(&u2, hidden);
    let msgs: Vec<_> = u2
        .iter()
        .map(|to| {
            let u2_shown = if to == VICTIM { &u2_victim } else { &u2 };
            (to, r.shares_for(&view, u2_shown, to))
        })
        .collect();
    let uploaded = r.send_all(Stage::MaskedInput, msgs);
    assert!(
        uploaded.contains(VICTIM),
        "the victim accepts a U2 with t neighbours"
    );
    let u3 = minus(&uploaded, shown);
    unmask_consistently(&mut r, &view, &u3);
    (r, view, shown.to_vec())
}

/// n = 40, k = 12, t = 6 = k/2. At a threshold that §3 of docs/SECURITY.md accepts
/// (t ≥ ⌊(k + 1 + t1)/2⌋ + 1) the hidden neighbours alone are fewer than t and the attack fails
/// by counting; at t = k/2 (which a client with a malicious `Policy` refuses, but the default
/// policy accepts) they are exactly t, and rule M is what stops them.
#[test]
fn adversarial_dropouts_around_the_victim_are_refused_by_its_neighbours() {
    let cfg = harary(MAL, 6, 20);
    let (r, view, shown) = isolate_by_dropouts(&cfg);
    // The victim uploaded and signed that it masked with exactly S.
    let st = &r.loot.statements[&VICTIM];
    assert_eq!(st.members(&view.neighbours(VICTIM)).unwrap(), shown);
    // Its other neighbours were in U3 and refused to reveal b_v: its statement names no
    // survivor.
    for h in view
        .neighbours(VICTIM)
        .iter()
        .filter(|h| !shown.contains(h))
    {
        assert!(
            r.refused(*h, "neighbour 1, who masked with only 0 survivors"),
            "client {h}: {:?}",
            r.refusals.get(h)
        );
    }
    assert_eq!(r.loot.b_holders(VICTIM), Vec::<ClientId>::new());
    let got = r.loot.recover(&view, VICTIM, &shown);
    assert!(got.is_err(), "recovered {got:?}");
}

#[test]
fn control_adversarial_dropouts_recover_an_honest_but_curious_clients_input() {
    let (r, view, shown) = isolate_by_dropouts(&harary(HBC, 6, 20));
    assert_eq!(
        r.loot.recover(&view, VICTIM, &shown).unwrap(),
        r.input(VICTIM)
    );
}

// ---------------------------------------------------------------------------------------------
// Two U3 views (the attack that recovers an update from Flower's SecAgg+).

/// After everyone uploaded, the first `a` clients (the victim among them) are told U3 =
/// everyone, the others U3 = everyone but the victim; each side is asked to sign its U3 and
/// then to unmask with the signatures `present(side A's, side B's)` returns for it. Side A
/// would reveal b_v, side B s_v.
fn split_u3(
    cfg: &RoundConfig,
    a: ClientId,
    present: impl Fn(&[(ClientId, Sig)], &[(ClientId, Sig)]) -> [Vec<(ClientId, Sig)>; 2],
) -> (Rogue, View) {
    let mut r = Rogue::new(cfg, 3);
    let view = r.honest_start();
    let u2 = r.honest_neighbour_keys(&view);
    let uploaded = r.honest_shares(&view, &u2);
    assert_eq!(uploaded, r.everyone());
    let alive = r.everyone();
    let dropped = minus(&alive, &[VICTIM]);
    let side_a: Vec<ClientId> = (1..=a).collect();
    let side_b: Vec<ClientId> = (a + 1..=cfg.num_clients).collect();
    let [sigs_a, sigs_b] = if cfg.model == MAL {
        let signed_a = r.ask_to_sign(&alive, side_a.iter().copied());
        let signed_b = r.ask_to_sign(&dropped, side_b.iter().copied());
        present(&r.signatures_of(&signed_a), &r.signatures_of(&signed_b))
    } else {
        [Vec::new(), Vec::new()]
    };
    r.ask_to_unmask(&view, &alive, &sigs_a, side_a);
    r.ask_to_unmask(&view, &dropped, &sigs_b, side_b);
    (r, view)
}

fn own_signatures(a: &[(ClientId, Sig)], b: &[(ClientId, Sig)]) -> [Vec<(ClientId, Sig)>; 2] {
    [a.to_vec(), b.to_vec()]
}

/// 12 clients, t = 6, min_clients = 7 > (n + c)/2 with c = 0. t = 6 is one below the
/// split-view threshold of §3, so two sides of 6 could each rebuild one secret: the quorum is
/// the only obstacle.
#[test]
fn split_survivor_sets_cannot_both_collect_the_quorum() {
    let cfg = complete(MAL, 6, 7);
    let t = 6;
    for a in [5, 6, 7] {
        let (r, view) = split_u3(&cfg, a, own_signatures);
        let (b, s) = (r.loot.b_holders(VICTIM), r.loot.s_holders(VICTIM));
        assert!(
            b.len() < t || s.len() < t,
            "a = {a}: shares of b_v from {b:?} and of s_v from {s:?}"
        );
        // The side below the quorum refused, saying why.
        let short = if a < 7 { 1 } else { a + 1 };
        assert!(
            r.refused(short, "consistency signatures, 7 needed"),
            "a = {a}: {:?}",
            r.refusals.get(&short)
        );
        if a == 6 {
            assert!(b.is_empty() && s.is_empty(), "{b:?} {s:?}");
        }
        let got = r.loot.recover(&view, VICTIM, &view.neighbours(VICTIM));
        assert!(got.is_err(), "a = {a}: recovered {got:?}");
    }
}

#[test]
fn control_split_survivor_sets_recover_an_honest_but_curious_clients_input() {
    let (r, view) = split_u3(&complete(HBC, 6, 7), 6, own_signatures);
    assert_eq!(
        r.loot
            .recover(&view, VICTIM, &view.neighbours(VICTIM))
            .unwrap(),
        r.input(VICTIM)
    );
}

/// The split of the test above, with each side's signature list padded to reach the quorum
/// (side B's with ids of its own U3 only: `a[0]` is the victim's).
#[test]
fn forged_duplicated_or_missing_consistency_signatures_are_refused() {
    let cfg = complete(MAL, 6, 7);
    type Pad = fn(&[(ClientId, Sig)], &[(ClientId, Sig)]) -> [Vec<(ClientId, Sig)>; 2];
    let cases: [(&str, Pad, &str); 6] = [
        (
            "forged signatures for the other side's ids",
            |a, b| {
                let forge = |own: &[(ClientId, Sig)], other: &[(ClientId, Sig)]| {
                    let mut v = own.to_vec();
                    v.extend(other.iter().map(|(id, _)| (*id, [7u8; 64])));
                    v.sort_unstable_by_key(|(id, _)| *id);
                    v
                };
                [forge(a, b), forge(b, &a[1..])]
            },
            "invalid consistency signature",
        ),
        (
            "the other side's real signatures (over the other U3)",
            |a, b| {
                let mut all = a.to_vec();
                all.extend_from_slice(b);
                all.sort_unstable_by_key(|(id, _)| *id);
                [all.clone(), all[1..].to_vec()]
            },
            "invalid consistency signature",
        ),
        (
            "own signatures relabelled with the other side's ids",
            |a, b| {
                let relabel = |own: &[(ClientId, Sig)], other: &[(ClientId, Sig)]| {
                    let mut v = own.to_vec();
                    v.extend(other.iter().zip(own).map(|((id, _), (_, s))| (*id, *s)));
                    v.sort_unstable_by_key(|(id, _)| *id);
                    v
                };
                [relabel(a, b), relabel(b, &a[1..])]
            },
            "invalid consistency signature",
        ),
        (
            "own signatures listed twice",
            |a, b| {
                let twice = |own: &[(ClientId, Sig)]| [own, own].concat();
                [twice(a), twice(b)]
            },
            "presented 6 consistency signatures, 7 needed",
        ),
        (
            "missing signatures",
            |a, b| [a[..3].to_vec(), b[..3].to_vec()],
            "presented 3 consistency signatures, 7 needed",
        ),
        (
            // Ids no roster has: 0 first (it must not index the roster), then one past n.
            "signatures under id 0 and an id beyond the roster",
            |a, b| {
                let odd = |own: &[(ClientId, Sig)]| {
                    let mut v = vec![(0, own[0].1)];
                    v.extend_from_slice(own);
                    v.push((ClientId::MAX, own[0].1));
                    v
                };
                [odd(a), odd(b)]
            },
            "invalid consistency signature for 0",
        ),
    ];
    for (what, pad, why) in cases {
        let (r, view) = split_u3(&cfg, 6, pad);
        for id in r.ids() {
            assert!(
                r.refused(id, why),
                "{what}: client {id}: {:?}",
                r.refusals.get(&id)
            );
        }
        assert!(
            r.answered(Stage::Unmask).is_empty(),
            "{what}: someone unmasked"
        );
        let got = r.loot.recover(&view, VICTIM, &view.neighbours(VICTIM));
        assert!(got.is_err(), "{what}: recovered {got:?}");
    }
}

/// The server tells the victim alone that it dropped, after it uploaded (its own share of
/// s_v is what a split needs from it).
#[test]
fn the_client_listed_as_dropped_refuses() {
    let mut r = Rogue::new(&complete(MAL, 7, 7), 4);
    let view = r.honest_start();
    let u2 = r.honest_neighbour_keys(&view);
    let uploaded = r.honest_shares(&view, &u2);
    r.ask_to_sign(&minus(&uploaded, &[VICTIM]), [VICTIM]);
    let signers = r.ask_to_sign(&uploaded, 2..=12);
    let sigs = r.signatures_of(&signers);
    r.ask_to_unmask(&view, &minus(&uploaded, &[VICTIM]), &sigs, [VICTIM]);
    assert!(r.refused(VICTIM, "listed me as dropped"));
    assert!(!r.sent_in(Stage::ConsistencyCheck, VICTIM));
    assert!(!r.sent_in(Stage::Unmask, VICTIM));
    assert!(!r.loot.s_holders(VICTIM).contains(&VICTIM));
}

// ---------------------------------------------------------------------------------------------
// Finding 2: a round of one honest client and its colluders.

/// n = 1,000 with the old planner's min_clients = t = 37 (k/t = 52/37 are the parameters for
/// 5% corrupt, 5% dropouts). The server lets only the victim and 37 colluders (whose inputs it
/// knows) into the round: the released sum minus theirs is the victim's input.
#[test]
fn min_clients_at_the_threshold_is_refused_before_advertising_keys() {
    let cfg = RoundConfig {
        num_clients: 1000,
        min_clients: 37,
        degree: 52,
        threshold: 37,
        graph: GraphKind::Harary,
        dim: 4,
        ..complete(MAL, 37, 37)
    };
    let colluders: Vec<ClientId> = (2..=38).collect();
    let x = inputs(&cfg);
    let mut sc = Scenario::new(cfg.clone(), 4);
    sc.policy = Some(Policy::malicious(0.05, 0.05));
    sc.dropouts = vec![(Stage::AdvertiseKeys, (39..=1000).collect())];
    let loot = eavesdrop(&mut sc);
    let report = run(sc, x.clone()).unwrap();
    if let Outcome::Released {
        aggregate,
        survivors,
    } = &report.outcome
    {
        let mut guess = aggregate.clone();
        cfg.modulus().sub_assign(
            &mut guess,
            &plain_sum(&x, colluders.iter().copied(), cfg.bits),
        );
        assert_ne!(
            guess, x[0],
            "the server learned the victim's input from a round of {survivors:?}"
        );
    }
    assert!(matches!(report.outcome, Outcome::Aborted(_)));
    let refusal = report
        .client_errors
        .iter()
        .find(|(id, _)| *id == VICTIM)
        .map(|(_, e)| e.to_string())
        .unwrap_or_default();
    assert!(refusal.contains("min_clients 37 is too low"), "{refusal}");
    assert!(
        !loot.lock().unwrap().adverts.contains_key(&VICTIM),
        "the victim advertised keys"
    );
    // The same client accepts the round with the min_clients its policy needs.
    let (mut keys, roster) = make_pki(1000, 4);
    let ok = RoundConfig {
        min_clients: 950,
        ..cfg
    };
    let client = Client::new(VICTIM, x[0].clone())
        .with_pki(keys.swap_remove(0), roster)
        .with_policy(Policy::malicious(0.05, 0.05));
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    assert!(
        client
            .start(&ServerMessage::RoundStart(ok).encode(), &mut rng)
            .is_ok()
    );
}

/// The same attack with a view: every client advertised keys, but the victim and colluders
/// 2..=8 (7 = t of them, whose secrets the server holds) are shown U1 = themselves. In that
/// view all the victim's neighbours are colluders: they get its shares and its pairwise masks.
fn victim_alone_with_colluders(cfg: &RoundConfig, policy: Option<Policy>) -> (Rogue, View) {
    let colluders: Vec<ClientId> = (2..=8).collect();
    let mut r = Rogue::new(cfg, 13);
    r.policy = policy;
    let view = r.honest_start();
    let mut entries = view.entries.clone();
    entries.retain(|id, _| *id == VICTIM || colluders.contains(id));
    let small = View::new(cfg, entries);
    if !small.u1.contains(VICTIM) {
        return (r, small);
    }
    let u2 = r.send_all(
        Stage::ShareKeys,
        small.u1.iter().map(|to| (to, small.neighbour_keys(to))),
    );
    if !u2.contains(VICTIM) {
        return (r, small);
    }
    for c in &colluders {
        let secrets = r.secrets_of(*c);
        r.loot.mask_secrets.insert(*c, *secrets.mask.secret_bytes());
        r.loot.open_all_for(&small, *c, &secrets.enc);
    }
    let msg = r.shares_for(&small, &u2, VICTIM);
    r.send(Stage::MaskedInput, VICTIM, &msg);
    (r, small)
}

/// With the default policy (min_clients 7 accepted) the server learns the victim's input;
/// a client with `Policy::malicious(0.05, 0.05)` refuses min_clients 7, and with the
/// min_clients it needs (12 of 12) it refuses a U1 of 8.
#[test]
fn a_view_of_u1_with_the_victim_alone_among_colluders_is_refused() {
    let (r, small) = victim_alone_with_colluders(&complete(MAL, 7, 7), None);
    assert_eq!(
        r.loot
            .recover(&small, VICTIM, &small.neighbours(VICTIM))
            .unwrap(),
        r.input(VICTIM),
        "control: the attack works against a client that takes min_clients from the server"
    );
    let policy = Some(Policy::malicious(0.05, 0.05));
    let (r, _) = victim_alone_with_colluders(&complete(MAL, 7, 7), policy.clone());
    assert!(
        r.refused(VICTIM, "min_clients 7 is too low"),
        "{:?}",
        r.refusals.get(&VICTIM)
    );
    let (r, small) = victim_alone_with_colluders(&complete(MAL, 7, 12), policy);
    assert!(
        r.refused(VICTIM, "continued with |U1| = 8 below min_clients 12"),
        "{:?}",
        r.refusals.get(&VICTIM)
    );
    assert!(!r.sent_in(Stage::ShareKeys, VICTIM));
    let got = r.loot.recover(&small, VICTIM, &small.neighbours(VICTIM));
    assert!(got.is_err(), "recovered {got:?}");
}

// ---------------------------------------------------------------------------------------------
// Finding 3: parameters per client.

/// The victim alone is told other parameters; the server relays everything else honestly.
fn other_parameters_for_the_victim(cfg: &RoundConfig, victims: &RoundConfig) -> (Rogue, View) {
    let mut r = Rogue::new(cfg, 5);
    r.inputs[0] = (0..u64::from(victims.dim)).collect();
    r.start(|id| {
        if id == VICTIM {
            victims.clone()
        } else {
            cfg.clone()
        }
    });
    assert!(
        r.loot.adverts.contains_key(&VICTIM),
        "the victim accepts its parameters"
    );
    let view = View::new(cfg, r.loot.adverts.clone());
    let u2 = r.honest_neighbour_keys(&view);
    let uploaded = r.honest_shares(&view, &u2);
    if !uploaded.is_empty() {
        unmask_consistently(&mut r, &view, &uploaded);
    }
    (r, view)
}

#[test]
fn other_parameters_for_one_client_make_keys_disagree() {
    fn clip(c: f64) -> Vec<u8> {
        InputEncoding::Float {
            clip: c,
            max_weight: 1,
        }
        .to_bytes()
    }
    let with = |model: ThreatModel| RoundConfig {
        encoding: clip(1e9),
        ..complete(model, 7, 7)
    };
    type Change = fn(&mut RoundConfig);
    let cases: [(&str, ThreatModel, Change, &str); 5] = [
        (
            "a fine encoding for the victim, a coarse one for the rest",
            MAL,
            |c| c.encoding = clip(1.0),
            "without a valid signature",
        ),
        (
            "a lower threshold",
            MAL,
            |c| c.threshold = 5,
            "without a valid signature",
        ),
        (
            "a different dimension",
            MAL,
            |c| c.dim = 9,
            "without a valid signature",
        ),
        (
            "a fine encoding, no PKI",
            HBC,
            |c| c.encoding = clip(1.0),
            "does not decrypt",
        ),
        (
            "a lower threshold, no PKI",
            HBC,
            |c| c.threshold = 5,
            "does not decrypt",
        ),
    ];
    for (what, model, change, why) in cases {
        let cfg = with(model);
        let mut victims = cfg.clone();
        change(&mut victims);
        let (r, view) = other_parameters_for_the_victim(&cfg, &victims);
        assert!(
            r.refused(VICTIM, why),
            "{what}: the victim went on: {:?}",
            r.refusals.get(&VICTIM)
        );
        assert!(!r.sent_in(Stage::MaskedInput, VICTIM), "{what}");
        for w in view.neighbours(VICTIM) {
            assert!(
                r.refused(w, why),
                "{what}: client {w}: {:?}",
                r.refusals.get(&w)
            );
        }
        assert!(r.loot.b_holders(VICTIM).is_empty(), "{what}");
        assert!(r.loot.s_holders(VICTIM).is_empty(), "{what}");
        let got = r.loot.recover(&view, VICTIM, &view.neighbours(VICTIM));
        assert!(got.is_err(), "{what}: recovered {got:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Findings 5, 6 and substituted keys: the roster and the keys a client is shown.

#[test]
fn a_roster_with_one_key_at_several_ids_is_refused() {
    let cfg = complete(MAL, 7, 7);
    let r = Rogue::new(&cfg, 6);
    let colluder = r.identity(12).public();
    // One colluder at one neighbour's id, and at every id but the victim's.
    let mut one = r.roster();
    one[1] = colluder;
    let mut all = r.roster();
    all[1..].fill(colluder);
    for roster in [one, all] {
        let client = Client::new(VICTIM, r.input(VICTIM).to_vec())
            .with_pki(r.identity(VICTIM), roster.clone());
        let mut rng = ChaCha20Rng::seed_from_u64(6);
        let err = client
            .start(&ServerMessage::RoundStart(cfg.clone()).encode(), &mut rng)
            .map(|_| ())
            .unwrap_err();
        assert!(
            err.to_string().contains("one identity key at two ids"),
            "{err}"
        );
        assert!(ServerRound::new(cfg.clone(), Some(roster), 1000).is_err());
    }
}

/// How the server signs the key entries it substitutes.
#[derive(Clone, Copy, Debug)]
enum Forge {
    /// With the identity key of colluder 12 (a roster member), whatever id the entry claims.
    Colluder,
    /// With the signature the real entry came with.
    KeepSignature,
    /// Not at all.
    Unsigned,
}

/// A man in the middle on every pair of the victim: in the victim's view alone every other
/// member of U1 has keys of the server's, so the victim's shares are encrypted to the server
/// and its pairwise masks are agreed with the server. The server answers the victim with shares
/// of nothing, sealed under its own keys. Returns the victim's view.
fn impersonate_every_peer(cfg: &RoundConfig, forge: Forge) -> (Rogue, View) {
    let mut r = Rogue::new(cfg, 7);
    let view = r.honest_start();
    let digest = cfg.digest();
    let mut rng = ChaCha20Rng::seed_from_u64(77);
    let mut fakes = std::collections::BTreeMap::new();
    let mut entries = view.entries.clone();
    for w in view.u1.iter().filter(|w| *w != VICTIM) {
        let (enc, mask) = (DhKeyPair::generate(&mut rng), DhKeyPair::generate(&mut rng));
        let mut e = KeyEntry {
            id: w,
            enc_pk: enc.public(),
            mask_pk: mask.public(),
            commitment: crypto::random_array(&mut rng),
            signature: None,
        };
        e.signature = match forge {
            Forge::Colluder => Some(r.identity(12).sign(&e.signed_bytes(&digest))),
            Forge::KeepSignature => view.entries[&w].signature,
            Forge::Unsigned => None,
        };
        r.loot.mask_secrets.insert(w, *mask.secret_bytes());
        fakes.insert(w, enc);
        entries.insert(w, e);
    }
    let mitm = View::new(cfg, entries);
    let msgs: Vec<_> = view
        .u1
        .iter()
        .map(|to| {
            let v = if to == VICTIM { &mitm } else { &view };
            (to, v.neighbour_keys(to))
        })
        .collect();
    r.send_all(Stage::ShareKeys, msgs);
    let sent = r.loot.shares_out.get(&VICTIM).cloned().unwrap_or_default();
    if sent.is_empty() {
        return (r, mitm);
    }
    // Open what the victim sent "its neighbours", and send it shares of nothing.
    for (to, ct) in &sent {
        let (s, b) = mitm.open_bundle(VICTIM, *to, &fakes[to], ct).unwrap();
        r.loot.s_shares.entry(VICTIM).or_default().push((*to, s));
        r.loot.b_shares.entry(VICTIM).or_default().push((*to, b));
    }
    let mut nothing = [0u8; SHARE_LEN];
    nothing[..4].copy_from_slice(&VICTIM.to_le_bytes());
    let bundle = [nothing, nothing].concat();
    let ciphertexts = mitm
        .neighbours(VICTIM)
        .into_iter()
        .map(|w| (w, mitm.seal(w, &fakes[&w], VICTIM, &bundle)))
        .collect();
    let msg = ServerMessage::SharesForYou {
        u2: mitm.u1.clone(),
        ciphertexts,
    };
    r.send(Stage::MaskedInput, VICTIM, &msg.encode());
    (r, mitm)
}

#[test]
fn keys_signed_by_a_colluder_for_a_neighbours_id_are_refused() {
    let (r, mitm) = impersonate_every_peer(&complete(MAL, 7, 7), Forge::Colluder);
    assert!(
        r.refused(VICTIM, "sent keys for client 2 without a valid signature"),
        "{:?}",
        r.refusals.get(&VICTIM)
    );
    assert!(!r.sent_in(Stage::ShareKeys, VICTIM));
    let got = r.loot.recover(&mitm, VICTIM, &mitm.neighbours(VICTIM));
    assert!(got.is_err(), "recovered {got:?}");
}

#[test]
fn substituted_keys_are_refused_with_a_pki() {
    for forge in [Forge::KeepSignature, Forge::Unsigned] {
        let (r, mitm) = impersonate_every_peer(&complete(MAL, 7, 7), forge);
        assert!(
            r.refused(VICTIM, "without a valid signature"),
            "{forge:?}: {:?}",
            r.refusals.get(&VICTIM)
        );
        assert!(!r.sent_in(Stage::ShareKeys, VICTIM), "{forge:?}");
        let got = r.loot.recover(&mitm, VICTIM, &mitm.neighbours(VICTIM));
        assert!(got.is_err(), "{forge:?}: recovered {got:?}");
    }
    // One mask key swapped, the entry's signature kept.
    let cfg = complete(MAL, 7, 7);
    let mut sc = Scenario::new(cfg.clone(), 6);
    let fake = DhKeyPair::from_secret_bytes(&[77; 32]).public();
    sc.tamper = Some(rewrite_neighbour_keys(&cfg, VICTIM, move |e| {
        if e.id == 2 {
            e.mask_pk = fake;
        }
    }));
    let loot = eavesdrop(&mut sc);
    let r = run(sc, inputs(&cfg)).unwrap();
    assert!(
        r.client_errors.iter().any(|(id, e)| *id == VICTIM
            && e.to_string()
                .contains("keys for client 2 without a valid signature")),
        "{:?}",
        r.client_errors
    );
    assert!(!loot.lock().unwrap().shares_out.contains_key(&VICTIM));
}

/// The documented limit: without a PKI the same man in the middle recovers the input, and
/// nobody notices.
#[test]
fn control_without_a_pki_a_man_in_the_middle_recovers_the_input() {
    let (r, mitm) = impersonate_every_peer(&complete(HBC, 7, 7), Forge::Unsigned);
    assert!(r.refusals.is_empty(), "{:?}", r.refusals);
    assert_eq!(
        r.loot
            .recover(&mitm, VICTIM, &mitm.neighbours(VICTIM))
            .unwrap(),
        r.input(VICTIM)
    );
}

/// Rewrites each entry of the NeighbourKeys sent to `to` with `f`.
fn rewrite_neighbour_keys(
    cfg: &RoundConfig,
    to: ClientId,
    f: impl Fn(&mut KeyEntry) + Send + 'static,
) -> secagg_sim::harness::Tamper {
    let cfg = cfg.clone();
    Box::new(
        move |_stage, rcpt, bytes| match ServerMessage::decode(&bytes, Some(&cfg)) {
            Ok(ServerMessage::NeighbourKeys {
                u1,
                keys_root,
                key_path,
                mut neighbours,
            }) if rcpt == to => {
                neighbours.iter_mut().for_each(&f);
                ServerMessage::NeighbourKeys {
                    u1,
                    keys_root,
                    key_path,
                    neighbours,
                }
                .encode()
            }
            _ => bytes,
        },
    )
}

/// Finding 10, through the harness: without a PKI the server swaps only client 2's mask key
/// in client 1's view (its encryption key stays, so the share encryption alone would not
/// notice). The pair's share ciphertexts bind both whole key entries, so they fail to open,
/// both refuse before masking, and the round releases the exact sum of the others.
#[test]
fn a_substituted_mask_key_without_a_pki_is_caught_by_the_pair() {
    let cfg = complete(HBC, 7, 7);
    let mut sc = Scenario::new(cfg.clone(), 9);
    let fake = DhKeyPair::from_secret_bytes(&[77; 32]).public();
    sc.tamper = Some(rewrite_neighbour_keys(&cfg, VICTIM, move |e| {
        if e.id == 2 {
            e.mask_pk = fake;
        }
    }));
    let x = inputs(&cfg);
    let r = run(sc, x.clone()).unwrap();
    let Outcome::Released {
        aggregate,
        survivors,
    } = &r.outcome
    else {
        panic!("{:?}", r.outcome);
    };
    assert_eq!(
        *aggregate,
        plain_sum(&x, survivors.iter(), cfg.bits),
        "a wrong sum released for {survivors:?}"
    );
    for id in [1, 2] {
        assert!(
            r.client_errors
                .iter()
                .any(|(c, e)| *c == id && e.to_string().contains("does not decrypt")),
            "client {id}: {:?}",
            r.client_errors
        );
    }
    assert!(!survivors.contains(1) && !survivors.contains(2));
}

// ---------------------------------------------------------------------------------------------
// Finding 8: replayed consistency signatures.

/// Two rounds with the same round id and seed (and identities) collect signatures on
/// U3 = everyone and on U3 = everyone but the victim. A third round with the same id and
/// seed runs the split of `split_survivor_sets_cannot_both_collect_the_quorum` and presents
/// each side the old signatures, 12 and 11 of them: both above the quorum of 7.
#[test]
fn replayed_consistency_signatures_are_refused() {
    let cfg = complete(MAL, 6, 7);
    let all = IdSet::full(12);
    let minus_v = minus(&all, &[VICTIM]);
    let mut old = Vec::new();
    for (seed, u3) in [(71, &all), (72, &minus_v)] {
        let mut r = Rogue::new(&cfg, seed);
        let view = r.honest_start();
        let u2 = r.honest_neighbour_keys(&view);
        r.honest_shares(&view, &u2);
        let signers = r.ask_to_sign(u3, all.iter());
        assert_eq!(&signers, u3);
        let sigs = r.signatures_of(&signers);
        // Genuine: valid for that round's session.
        let roster = r.roster();
        let msg = consistency_signed_bytes(&view.session, u3);
        assert!(
            sigs.iter()
                .all(|(id, s)| crypto::verify(&roster[*id as usize - 1], &msg, s))
        );
        old.push(sigs);
    }
    let mut r = Rogue::new(&cfg, 73);
    let view = r.honest_start();
    let u2 = r.honest_neighbour_keys(&view);
    r.honest_shares(&view, &u2);
    r.ask_to_sign(&all, 1..=6);
    r.ask_to_sign(&minus_v, 7..=12);
    r.ask_to_unmask(&view, &all, &old[0], 1..=6);
    r.ask_to_unmask(&view, &minus_v, &old[1], 7..=12);
    for id in r.ids() {
        assert!(
            r.refused(id, "invalid consistency signature"),
            "client {id}: {:?}",
            r.refusals.get(&id)
        );
    }
    assert!(r.answered(Stage::Unmask).is_empty());
    let got = r.loot.recover(&view, VICTIM, &view.neighbours(VICTIM));
    assert!(got.is_err(), "recovered {got:?}");
}

// ---------------------------------------------------------------------------------------------
// Finding 9: graph grinding.

fn random_entry(id: ClientId, rng: &mut ChaCha20Rng) -> KeyEntry {
    KeyEntry {
        id,
        enc_pk: DhKeyPair::generate(rng).public(),
        mask_pk: DhKeyPair::generate(rng).public(),
        commitment: crypto::random_array(rng),
        signature: None,
    }
}

fn neighbour_lists(view: &View) -> Vec<Vec<ClientId>> {
    view.u1.iter().map(|v| view.neighbours(v)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// With the round's parameters, seed and U1 fixed (everything the server chooses), the
    /// Harary permutation changes when any one client's advertised keys change (either key or
    /// its commitment): the server cannot compute the graph before every key is in.
    #[test]
    fn the_graph_changes_when_any_clients_keys_change(seed in any::<u64>(), field in 0usize..3) {
        let cfg = harary(MAL, 6, 20);
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let entries: std::collections::BTreeMap<ClientId, KeyEntry> =
            (1..=40).map(|id| (id, random_entry(id, &mut rng))).collect();
        let base = neighbour_lists(&View::new(&cfg, entries.clone()));
        prop_assert_eq!(&base, &neighbour_lists(&View::new(&cfg, entries.clone())));
        for id in 1..=40 {
            let mut changed = entries.clone();
            let fresh = random_entry(id, &mut rng);
            let e = changed.get_mut(&id).unwrap();
            match field {
                0 => e.enc_pk = fresh.enc_pk,
                1 => e.mask_pk = fresh.mask_pk,
                _ => e.commitment = fresh.commitment,
            }
            prop_assert_ne!(&base, &neighbour_lists(&View::new(&cfg, changed)), "client {}", id);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Finding 11: a short but authentic share ciphertext.

/// Corrupt client 2 (its secrets are the server's) seals plaintexts of every length around a
/// share bundle's to the victim, under the right key and binding; the server routes each. The
/// victim gets a typed error, never a panic, and uploads nothing.
#[test]
fn a_short_authentic_share_ciphertext_is_a_typed_error() {
    const CORRUPT: ClientId = 2;
    let cfg = complete(MAL, 7, 7);
    let mut lens: Vec<usize> = (0..=SHARE_BUNDLE_LEN + 4).step_by(5).collect();
    lens.extend([SHARE_BUNDLE_LEN - 1, SHARE_BUNDLE_LEN, SHARE_BUNDLE_LEN + 1]);
    for len in lens {
        let mut r = Rogue::new(&cfg, 10);
        let view = r.honest_start();
        let u2 = r.honest_neighbour_keys(&view);
        let c = r.secrets_of(CORRUPT);
        // A bundle addressed to another evaluation point when the length is right.
        let mut share = [0u8; SHARE_LEN];
        share[..4].copy_from_slice(&3u32.to_le_bytes());
        let pt: Vec<u8> = [share, share]
            .concat()
            .into_iter()
            .cycle()
            .take(len)
            .collect();
        let ct = view.seal(CORRUPT, &c.enc, VICTIM, &pt);
        // Authentic: the victim's key opens it.
        let victims_key = c.enc.agree(&view.entries[&VICTIM].enc_pk).unwrap();
        let opened = crypto::open_shares(
            &victims_key,
            &view.session,
            CORRUPT,
            VICTIM,
            &view.binding(CORRUPT, VICTIM),
            &ct,
        );
        assert_eq!(opened.as_deref().map(|p| p.as_slice()), Some(&pt[..]));
        let mut msg = ServerMessage::decode(&r.shares_for(&view, &u2, VICTIM), Some(&cfg)).unwrap();
        if let ServerMessage::SharesForYou { ciphertexts, .. } = &mut msg {
            ciphertexts
                .iter_mut()
                .find(|(from, _)| *from == CORRUPT)
                .unwrap()
                .1 = ct;
        }
        r.send(Stage::MaskedInput, VICTIM, &msg.encode());
        let err = r.refusals.get(&VICTIM).cloned();
        // Any other length than a bundle's is refused by the codec (shorter: a length
        // mismatch, longer: above the limit); a bundle of the right length whose share is for
        // another point, by the client.
        let typed = match &err {
            Some(ClientError::Malformed(CodecError::LengthMismatch { what, .. })) => {
                *what == "share ciphertext" && len < SHARE_BUNDLE_LEN
            }
            Some(ClientError::Malformed(CodecError::TooLarge { what, .. })) => {
                *what == "share ciphertext" && len > SHARE_BUNDLE_LEN
            }
            Some(ClientError::PeerMisbehaved { peer, .. }) => {
                *peer == CORRUPT && len == SHARE_BUNDLE_LEN
            }
            _ => false,
        };
        assert!(typed, "plaintext of {len} bytes: {err:?}");
        assert!(!r.sent_in(Stage::MaskedInput, VICTIM));
    }
}

// ---------------------------------------------------------------------------------------------
// Finding 12: a client rejected by the driver after it answered.

/// What [`reject_after_answering`] saw.
struct Rejected {
    outcome: Outcome,
    inputs: Vec<Vec<u64>>,
    /// Whether client 1 answered stage `at` (and was then rejected).
    rejected: bool,
    dropouts: Vec<Dropout>,
}

/// Drives an honest round on `ServerRound` directly; right after the server accepted client 1's
/// message of stage `at`, the driver rejects client 1 (`ServerRound::reject`).
fn reject_after_answering(model: ThreatModel, at: Stage) -> Rejected {
    let cfg = RoundConfig {
        num_clients: 10,
        degree: 6,
        threshold: 4,
        min_clients: 4,
        graph: GraphKind::Harary,
        ..complete(model, 4, 4)
    };
    let x = inputs(&cfg);
    let (keys, roster) = make_pki(10, 11);
    let mut server = ServerRound::new(cfg.clone(), cfg.pki.then(|| roster.clone()), 1000).unwrap();
    let mut clients: Vec<(ClientRound, ChaCha20Rng)> = keys
        .into_iter()
        .zip(&x)
        .enumerate()
        .map(|(i, (k, xi))| {
            let mut c = Client::new(i as ClientId + 1, xi.clone());
            if cfg.pki {
                c = c.with_pki(k, roster.clone());
            }
            (
                ClientRound::New(c),
                ChaCha20Rng::seed_from_u64(100 + i as u64),
            )
        })
        .collect();
    let mut now = 0;
    let mut rejected = false;
    server.start(now);
    while server.outcome().is_none() {
        let stage = server.stage();
        let mut out = Vec::new();
        while let Some(m) = server.poll_outgoing() {
            out.push(m);
        }
        // The victim answers first, so that the stage is still open when it is rejected.
        out.sort_by_key(|(to, _)| *to != VICTIM);
        for (to, bytes) in out {
            let (c, rng) = &mut clients[to as usize - 1];
            let Ok(Some(reply)) = c.handle(&bytes, rng) else {
                continue;
            };
            let handled = server.handle_message(now, to, &reply);
            if to == VICTIM && stage == at && handled == Ok(Handled::Accepted) {
                server.reject(now, VICTIM, Misbehaviour::InvalidFrame("test".into()));
                rejected = true;
            }
        }
        if server.outcome().is_none() && server.stage() == stage {
            now = server.poll_timeout().unwrap();
            server.handle_timeout(now);
        }
        now += 1;
    }
    Rejected {
        outcome: server.outcome().cloned().unwrap(),
        inputs: x,
        rejected,
        dropouts: server.dropouts().to_vec(),
    }
}

#[test]
fn a_client_rejected_after_answering_leaves_the_sum_exact() {
    for (model, at) in [
        (HBC, Stage::ShareKeys),
        (HBC, Stage::MaskedInput),
        (HBC, Stage::Unmask),
        (MAL, Stage::ShareKeys),
        (MAL, Stage::MaskedInput),
        (MAL, Stage::ConsistencyCheck),
        (MAL, Stage::Unmask),
    ] {
        let Rejected {
            outcome,
            inputs: x,
            rejected,
            ..
        } = reject_after_answering(model, at);
        assert!(rejected, "{model:?} {at}: the victim never answered");
        let Outcome::Released {
            aggregate,
            survivors,
        } = outcome
        else {
            panic!("{model:?} {at}: {outcome:?}");
        };
        assert_eq!(
            aggregate,
            plain_sum(&x, survivors.iter(), 16),
            "{model:?} {at}: the released sum is not the sum of {survivors:?}"
        );
        // Once its masked input is in the sum, it is a survivor.
        assert_eq!(
            survivors.contains(VICTIM),
            at >= Stage::MaskedInput,
            "{model:?} {at}: {survivors:?}"
        );
    }
}

/// A client rejected for misbehaviour after its masked input is in the sum stays in U3, as it
/// must, and is recorded as rejected at the stage and for the reason `reject` was given (not
/// as a disconnection at the next stage).
#[test]
fn a_client_rejected_after_uploading_is_recorded_as_misbehaving() {
    for model in [HBC, MAL] {
        let r = reject_after_answering(model, Stage::MaskedInput);
        let d = r.dropouts.iter().find(|d| d.id == VICTIM).unwrap();
        assert_eq!(
            (d.stage, &d.reason),
            (
                Stage::MaskedInput,
                &DropReason::Misbehaved(Misbehaviour::InvalidFrame("test".into()))
            ),
            "{model:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// One answer per round.

/// What each client revealed: (sender, owners of self-mask shares, owners of mask-key shares).
type Answers = Arc<Mutex<Vec<(ClientId, Vec<ClientId>, Vec<ClientId>)>>>;

/// Honest-but-curious model: after everyone uploaded, every client is asked to unmask U3 =
/// everyone (revealing shares of b_v) and then again with U3 = everyone but the victim
/// (which would reveal shares of s_v). Nobody answers the second request.
#[test]
fn a_client_reveals_one_secret_per_peer() {
    let cfg = complete(HBC, 7, 7);
    let mut r = Rogue::new(&cfg, 12);
    let view = r.honest_start();
    let u2 = r.honest_neighbour_keys(&view);
    let all = r.honest_shares(&view, &u2);
    assert_eq!(r.ask_to_unmask(&view, &all, &[], all.iter()).len(), 12);
    let minus_v = minus(&all, &[VICTIM]);
    assert!(
        r.ask_to_unmask(&view, &minus_v, &[], minus_v.iter())
            .is_empty()
    );
    for id in minus_v.iter() {
        assert!(
            r.refused(id, "after the round ended"),
            "{id}: {:?}",
            r.refusals.get(&id)
        );
    }
    assert_eq!(r.loot.b_holders(VICTIM).len(), 12);
    assert!(r.loot.s_holders(VICTIM).is_empty());
    let got = r.loot.recover(&view, VICTIM, &view.neighbours(VICTIM));
    assert!(got.is_err(), "recovered {got:?}");

    // Through the harness, with dropouts and every message delivered twice: each answer names
    // every peer once, with one secret.
    let mut sc = Scenario::new(cfg.clone(), 2);
    sc.dropouts.push((Stage::MaskedInput, vec![5, 6]));
    sc.duplicate = true;
    let seen: Answers = Arc::default();
    let s2 = seen.clone();
    let c2 = cfg.clone();
    sc.observe = Some(Box::new(move |stage, from_server, id, bytes| {
        if stage == Stage::Unmask
            && !from_server
            && let Ok(ClientMessage::UnmaskShares {
                self_mask,
                mask_key,
            }) = ClientMessage::decode(bytes, &c2)
        {
            s2.lock().unwrap().push((
                id,
                self_mask.iter().map(|(o, _)| *o).collect(),
                mask_key.iter().map(|(o, _)| *o).collect(),
            ));
        }
    }));
    let rep = run(sc, inputs(&cfg)).unwrap();
    assert!(matches!(rep.outcome, Outcome::Released { .. }));
    for (id, b, s) in seen.lock().unwrap().iter() {
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

// ---------------------------------------------------------------------------------------------
// Other deviations.

/// Ask to unmask a survivor set below min_clients: in the honest-but-curious model every
/// client refuses before revealing anything (through the harness); in the malicious model they
/// refuse to sign it.
#[test]
fn fewer_than_min_survivors_is_refused() {
    for model in [HBC, MAL] {
        let cfg = complete(model, 7, 7);
        let mut sc = Scenario::new(cfg.clone(), 4);
        let c2 = cfg.clone();
        sc.tamper = Some(Box::new(move |_stage, _to, bytes| {
            let small = |u3: IdSet| IdSet::from_ids(u3.universe(), u3.iter().take(5));
            match ServerMessage::decode(&bytes, Some(&c2)) {
                Ok(ServerMessage::UnmaskRequest {
                    u3,
                    signatures,
                    statements,
                }) => ServerMessage::UnmaskRequest {
                    u3: small(u3),
                    signatures,
                    statements,
                }
                .encode(),
                Ok(ServerMessage::ConsistencyRequest { u3 }) => {
                    ServerMessage::ConsistencyRequest { u3: small(u3) }.encode()
                }
                _ => bytes,
            }
        }));
        let loot = eavesdrop(&mut sc);
        let r = run(sc, inputs(&cfg)).unwrap();
        let loot = loot.lock().unwrap();
        assert!(
            loot.b_shares.is_empty() && loot.s_shares.is_empty() && loot.signatures.is_empty(),
            "{model:?}: a client answered for 5 survivors"
        );
        assert!(
            r.client_errors
                .iter()
                .any(|(_, e)| e.to_string().contains("below min_clients")),
            "{model:?}: {:?}",
            r.client_errors
        );
    }
}

/// The victim alone gets a truncated or duplicated list of routed shares.
#[test]
fn truncated_or_duplicated_share_lists_are_refused() {
    for dup in [false, true] {
        let cfg = complete(MAL, 7, 7);
        let mut r = Rogue::new(&cfg, 7);
        let view = r.honest_start();
        let u2 = r.honest_neighbour_keys(&view);
        let mut msgs = Vec::new();
        for to in u2.iter() {
            let mut m = ServerMessage::decode(&r.shares_for(&view, &u2, to), Some(&cfg)).unwrap();
            if let ServerMessage::SharesForYou { ciphertexts, .. } = &mut m
                && to == VICTIM
            {
                if dup {
                    let first = ciphertexts[0].clone();
                    ciphertexts.insert(1, first);
                    ciphertexts.pop();
                } else {
                    ciphertexts.pop();
                }
            }
            msgs.push((to, m.encode()));
        }
        let uploaded = r.send_all(Stage::MaskedInput, msgs);
        assert!(
            r.refused(VICTIM, "differs from my neighbours in U2"),
            "dup = {dup}: {:?}",
            r.refusals.get(&VICTIM)
        );
        assert_eq!(uploaded, minus(&u2, &[VICTIM]));
    }
}

#[test]
fn replayed_shares_from_an_earlier_round_are_refused() {
    for model in [HBC, MAL] {
        // Record client 2's routed shares in round 9, replay them in round 10.
        let cfg = complete(model, 7, 7);
        let old = Arc::new(Mutex::new(None::<Vec<u8>>));
        let o2 = old.clone();
        let mut sc = Scenario::new(cfg.clone(), 8);
        sc.observe = Some(Box::new(move |stage, from_server, id, b| {
            if stage == Stage::MaskedInput && from_server && id == 2 {
                *o2.lock().unwrap() = Some(b.to_vec());
            }
        }));
        run(sc, inputs(&cfg)).unwrap();
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
        let loot = eavesdrop(&mut sc);
        let r = run(sc, inputs(&cfg)).unwrap();
        assert!(
            r.client_errors
                .iter()
                .any(|(id, e)| *id == 2 && e.to_string().contains("does not decrypt")),
            "{model:?}: {:?}",
            r.client_errors
        );
        assert!(!loot.lock().unwrap().masked.contains_key(&2), "{model:?}");
    }
}

/// The victim is sent a neighbour set that is not the graph of U1.
#[test]
fn a_different_graph_than_announced_is_refused() {
    let cfg = harary(MAL, 7, 20);
    let mut sc = Scenario::new(cfg.clone(), 10);
    let c2 = cfg.clone();
    sc.tamper = Some(Box::new(
        move |_stage, to, bytes| match ServerMessage::decode(&bytes, Some(&c2)) {
            Ok(ServerMessage::NeighbourKeys {
                u1,
                keys_root,
                key_path,
                mut neighbours,
            }) if to == VICTIM => {
                neighbours.pop();
                ServerMessage::NeighbourKeys {
                    u1,
                    keys_root,
                    key_path,
                    neighbours,
                }
                .encode()
            }
            _ => bytes,
        },
    ));
    let loot = eavesdrop(&mut sc);
    let r = run(sc, inputs(&cfg)).unwrap();
    assert!(
        r.client_errors
            .iter()
            .any(|(id, e)| *id == VICTIM && e.to_string().contains("differs from the graph of U1")),
        "{:?}",
        r.client_errors
    );
    assert!(!loot.lock().unwrap().shares_out.contains_key(&VICTIM));
}
