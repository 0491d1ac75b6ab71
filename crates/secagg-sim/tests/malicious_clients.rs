//! Malicious clients: the server drops the offender and the honest clients' sum stays exact,
//! or the round aborts cleanly and releases nothing. Client 3 is the attacker throughout.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use secagg_core::error::{CodecError, Misbehaviour};
use secagg_core::messages::{ClientMessage, SHARE_CIPHERTEXT_LEN};
use secagg_core::server::{DropReason, Outcome};
use secagg_core::shamir::Share;
use secagg_core::{ClientError, ClientId, GraphKind, PrgKind, RoundConfig, Stage, ThreatModel};
use secagg_sim::harness::{Report, Scenario, plain_sum, run};

const ATTACKER: ClientId = 3;

fn config(model: ThreatModel, bits: u8) -> RoundConfig {
    RoundConfig {
        round_id: 5,
        round_seed: [9u8; 32],
        num_clients: 10,
        min_clients: 4,
        degree: 6,
        threshold: 4,
        graph: GraphKind::Harary,
        bits,
        dim: 12,
        prg: PrgKind::Aes128Ctr,
        model,
        pki: model == ThreatModel::Malicious,
        encoding: Vec::new(),
        validation: None,
    }
}

fn inputs(bits: u8) -> Vec<Vec<u64>> {
    let mask = (1u64 << bits) - 1;
    (1..=10u64)
        .map(|i| (0..12).map(|j| (i * 97 + j) & mask).collect())
        .collect()
}

/// Runs with client 3 rewriting its `stage` message with `f`.
fn attack(
    model: ThreatModel,
    bits: u8,
    stage: Stage,
    f: impl Fn(Vec<u8>, &RoundConfig) -> Vec<u8> + Send + 'static,
) -> Report {
    let cfg = config(model, bits);
    let mut sc = Scenario::new(cfg.clone(), 11);
    sc.client_tamper = Some(Box::new(move |st, id, bytes| {
        if st == stage && id == ATTACKER {
            f(bytes, &cfg)
        } else {
            bytes
        }
    }));
    run(sc, inputs(bits)).unwrap()
}

/// The attacker is dropped for `reason` and the others' sum is exact.
fn assert_dropped_and_exact(r: &Report, bits: u8, reason: impl Fn(&Misbehaviour) -> bool) {
    let Outcome::Released {
        aggregate,
        survivors,
    } = &r.outcome
    else {
        panic!("round aborted: {:?}", r.outcome);
    };
    assert!(!survivors.contains(ATTACKER));
    assert_eq!(survivors.len(), 9);
    assert_eq!(*aggregate, plain_sum(&inputs(bits), survivors.iter(), bits));
    let d = r
        .dropouts
        .iter()
        .find(|d| d.id == ATTACKER)
        .expect("attacker dropped");
    match &d.reason {
        DropReason::Misbehaved(m) => assert!(reason(m), "unexpected reason {m}"),
        other => panic!("dropped for {other:?}"),
    }
    assert!(
        r.client_errors.is_empty(),
        "honest clients refused: {:?}",
        r.client_errors
    );
}

fn keys_with(
    bytes: Vec<u8>,
    cfg: &RoundConfig,
    f: impl Fn(&mut secagg_core::messages::KeyEntry),
) -> Vec<u8> {
    let ClientMessage::AdvertiseKeys(mut e) = ClientMessage::decode(&bytes, cfg).unwrap() else {
        panic!()
    };
    f(&mut e);
    ClientMessage::AdvertiseKeys(e).encode()
}

#[test]
fn low_order_and_invalid_keys() {
    // Points of order 1, 2 and 4 (u = 0, 1) and a key equal to the client's other key.
    for bad in [[0u8; 32], {
        let mut k = [0u8; 32];
        k[0] = 1;
        k
    }] {
        let r = attack(
            ThreatModel::HonestButCurious,
            32,
            Stage::AdvertiseKeys,
            move |b, c| keys_with(b, c, |e| e.mask_pk = bad),
        );
        assert_dropped_and_exact(&r, 32, |m| *m == Misbehaviour::BadKey);
    }
    let r = attack(
        ThreatModel::HonestButCurious,
        32,
        Stage::AdvertiseKeys,
        |b, c| keys_with(b, c, |e| e.enc_pk = e.mask_pk),
    );
    assert_dropped_and_exact(&r, 32, |m| *m == Misbehaviour::BadKey);
}

#[test]
fn bad_signatures_and_impersonation() {
    let r = attack(ThreatModel::Malicious, 32, Stage::AdvertiseKeys, |b, c| {
        keys_with(b, c, |e| {
            if let Some(s) = e.signature.as_mut() {
                s[10] ^= 1;
            }
        })
    });
    assert_dropped_and_exact(&r, 32, |m| *m == Misbehaviour::BadSignature);
    let r = attack(ThreatModel::Malicious, 32, Stage::AdvertiseKeys, |b, c| {
        keys_with(b, c, |e| e.signature = None)
    });
    assert_dropped_and_exact(&r, 32, |m| *m == Misbehaviour::BadSignature);
    // Claiming to be client 4.
    let r = attack(
        ThreatModel::HonestButCurious,
        32,
        Stage::AdvertiseKeys,
        |b, c| keys_with(b, c, |e| e.id = 4),
    );
    assert_dropped_and_exact(&r, 32, |m| *m == Misbehaviour::UnknownClient);
}

#[test]
fn duplicate_identity_keys_are_refused() {
    // Client 3 advertises client 2's keys (it saw them on the wire).
    let cfg = config(ThreatModel::HonestButCurious, 32);
    let stolen = std::sync::Arc::new(std::sync::Mutex::new(None::<Vec<u8>>));
    let s2 = stolen.clone();
    let mut sc = Scenario::new(cfg.clone(), 11);
    let c2 = cfg.clone();
    sc.client_tamper = Some(Box::new(move |st, id, bytes| {
        if st != Stage::AdvertiseKeys {
            return bytes;
        }
        if id == 2 {
            *s2.lock().unwrap() = Some(bytes.clone());
            return bytes;
        }
        if id == ATTACKER
            && let Some(copy) = s2.lock().unwrap().clone()
        {
            return keys_with(copy, &c2, |e| e.id = ATTACKER);
        }
        bytes
    }));
    let r = run(sc, inputs(32)).unwrap();
    assert_dropped_and_exact(&r, 32, |m| *m == Misbehaviour::BadKey);
}

#[test]
fn wrong_vector_length_or_modulus() {
    // One byte short.
    let r = attack(
        ThreatModel::HonestButCurious,
        32,
        Stage::MaskedInput,
        |b, c| {
            let ClientMessage::MaskedInput {
                mut vector,
                proof,
                masked_with,
            } = ClientMessage::decode(&b, c).unwrap()
            else {
                panic!()
            };
            vector.pop();
            ClientMessage::MaskedInput {
                vector,
                proof,
                masked_with,
            }
            .encode()
        },
    );
    assert_dropped_and_exact(&r, 32, |m| {
        matches!(
            m,
            Misbehaviour::Malformed(CodecError::LengthMismatch { .. })
        )
    });
    // At 12 bits, 12 values fill 144 bits = 18 bytes exactly, so use 13 bits: 156 bits leave 4
    // padding bits that must be zero (a value ≥ 2^b cannot be smuggled in).
    let r = attack(
        ThreatModel::HonestButCurious,
        13,
        Stage::MaskedInput,
        |b, c| {
            let ClientMessage::MaskedInput {
                mut vector,
                proof,
                masked_with,
            } = ClientMessage::decode(&b, c).unwrap()
            else {
                panic!()
            };
            *vector.last_mut().unwrap() |= 0x80;
            ClientMessage::MaskedInput {
                vector,
                proof,
                masked_with,
            }
            .encode()
        },
    );
    assert_dropped_and_exact(&r, 13, |m| {
        matches!(m, Misbehaviour::Malformed(CodecError::NonCanonical(_)))
    });
}

#[test]
fn oversized_payloads_and_messages_for_another_stage() {
    // A share list claiming 2^32 - 1 entries.
    let r = attack(
        ThreatModel::HonestButCurious,
        32,
        Stage::ShareKeys,
        |b, _| {
            let mut v = b[..2].to_vec();
            v.extend(u32::MAX.to_le_bytes());
            v
        },
    );
    assert_dropped_and_exact(&r, 32, |m| {
        matches!(m, Misbehaviour::Malformed(CodecError::TooLarge { .. }))
    });
    // A 64 KiB ciphertext for a neighbour.
    let r = attack(
        ThreatModel::HonestButCurious,
        32,
        Stage::ShareKeys,
        |b, c| {
            let ClientMessage::EncryptedShares(mut list) = ClientMessage::decode(&b, c).unwrap()
            else {
                panic!()
            };
            list[0].1 = vec![0; 1 << 16];
            ClientMessage::EncryptedShares(list).encode()
        },
    );
    assert_dropped_and_exact(&r, 32, |m| {
        matches!(m, Misbehaviour::Malformed(CodecError::TooLarge { .. }))
    });
    // Its keys again instead of its shares (a stale message for an earlier stage is ignored,
    // so it simply misses the stage).
    let r = attack(
        ThreatModel::HonestButCurious,
        32,
        Stage::MaskedInput,
        |_, _| ClientMessage::EncryptedShares(vec![(1, vec![0; SHARE_CIPHERTEXT_LEN])]).encode(),
    );
    let Outcome::Released { survivors, .. } = &r.outcome else {
        panic!("{:?}", r.outcome)
    };
    assert!(!survivors.contains(ATTACKER));
}

#[test]
fn garbage_share_ciphertexts_abort_the_round_cleanly() {
    let r = attack(
        ThreatModel::HonestButCurious,
        32,
        Stage::ShareKeys,
        |b, c| {
            let ClientMessage::EncryptedShares(list) = ClientMessage::decode(&b, c).unwrap() else {
                panic!()
            };
            ClientMessage::EncryptedShares(
                list.into_iter()
                    .map(|(to, ct)| (to, ct.iter().map(|x| x ^ 0x5a).collect()))
                    .collect(),
            )
            .encode()
        },
    );
    // The attacker's neighbours cannot decrypt its shares and refuse to go on; nothing of
    // anyone's input is released.
    assert!(
        r.client_errors
            .iter()
            .any(|(_, e)| matches!(e, ClientError::PeerMisbehaved { peer: ATTACKER, .. }))
    );
    match &r.outcome {
        Outcome::Released {
            aggregate,
            survivors,
        } => {
            // If enough clients remained, the sum is still exact for them.
            assert_eq!(*aggregate, plain_sum(&inputs(32), survivors.iter(), 32));
        }
        Outcome::Aborted(_) => {}
    }
}

/// An UnmaskShares message with `delta` added to field element `chunk` of every share: valid
/// field elements, wrong values.
fn corrupt_unmask_shares(bytes: &[u8], cfg: &RoundConfig, chunk: usize, delta: u64) -> Vec<u8> {
    let ClientMessage::UnmaskShares {
        self_mask,
        mask_key,
    } = ClientMessage::decode(bytes, cfg).unwrap()
    else {
        panic!("not an UnmaskShares message")
    };
    let bump = |v: Vec<(ClientId, Share)>| {
        v.into_iter()
            .map(|(o, s)| {
                let mut y = s.y;
                y[chunk] = (y[chunk] + delta) % secagg_core::shamir::MODULUS;
                (o, Share { x: s.x, y })
            })
            .collect()
    };
    ClientMessage::UnmaskShares {
        self_mask: bump(self_mask),
        mask_key: bump(mask_key),
    }
    .encode()
}

#[test]
fn shares_that_do_not_reconstruct_are_detected_and_routed_around() {
    // In unmasking, the attacker corrupts every share it reveals (valid field elements, wrong
    // values). Each secret still has a consistent t-subset among the others' shares; the server
    // checks reconstructions against the owners' commitments and finds it.
    let r = attack(ThreatModel::HonestButCurious, 32, Stage::Unmask, |b, c| {
        corrupt_unmask_shares(&b, c, 0, 1)
    });
    let Outcome::Released {
        aggregate,
        survivors,
    } = &r.outcome
    else {
        panic!("{:?}", r.outcome)
    };
    // The attacker's own input is still in the sum (it uploaded), and the sum is exact.
    assert_eq!(survivors.len(), 10);
    assert_eq!(*aggregate, plain_sum(&inputs(32), survivors.iter(), 32));
}

#[test]
fn two_bad_share_holders_are_corrected_not_an_abort() {
    // Complete graph of 8, t = 4: every secret has 8 holders. Clients 2 and 5 corrupt every
    // share they reveal, so each secret's shares (in arrival order 1..=8) are bad at positions
    // 1 and 4: every leave-one-out subset of the first t + 1 and every window of t consecutive
    // shares holds a bad one, which aborted version 1's search. Reed–Solomon decoding corrects
    // ⌊(8 − 4)/2⌋ = 2 errors.
    let cfg = RoundConfig {
        num_clients: 8,
        min_clients: 4,
        degree: 7,
        threshold: 4,
        graph: GraphKind::Complete,
        ..config(ThreatModel::HonestButCurious, 32)
    };
    let inputs: Vec<Vec<u64>> = (1..=8u64)
        .map(|i| (0..12).map(|j| i * 1000 + j).collect())
        .collect();
    let mut sc = Scenario::new(cfg.clone(), 11);
    sc.client_tamper = Some(Box::new(move |st, id, bytes| {
        if st != Stage::Unmask || (id != 2 && id != 5) {
            return bytes;
        }
        corrupt_unmask_shares(&bytes, &cfg, 1, 7)
    }));
    let r = run(sc, inputs.clone()).unwrap();
    let Outcome::Released {
        aggregate,
        survivors,
    } = &r.outcome
    else {
        panic!("{:?}", r.outcome)
    };
    assert_eq!(survivors.len(), 8);
    assert_eq!(*aggregate, plain_sum(&inputs, survivors.iter(), 32));
}

#[test]
fn messages_for_another_round_are_refused() {
    // Shares computed for a different round's graph are addressed to the wrong neighbours.
    let other = RoundConfig {
        round_id: 6,
        round_seed: [1u8; 32],
        ..config(ThreatModel::HonestButCurious, 32)
    };
    let captured = std::sync::Arc::new(std::sync::Mutex::new(None::<Vec<u8>>));
    let c2 = captured.clone();
    let mut sc = Scenario::new(other.clone(), 11);
    sc.observe = Some(Box::new(move |st, from_server, id, b| {
        if st == Stage::ShareKeys && !from_server && id == ATTACKER {
            *c2.lock().unwrap() = Some(b.to_vec());
        }
    }));
    run(sc, inputs(32)).unwrap();
    let old = captured.lock().unwrap().clone().unwrap();
    let r = attack(
        ThreatModel::HonestButCurious,
        32,
        Stage::ShareKeys,
        move |b, c| {
            let ClientMessage::EncryptedShares(now) = ClientMessage::decode(&b, c).unwrap() else {
                panic!()
            };
            let ClientMessage::EncryptedShares(then) = ClientMessage::decode(&old, c).unwrap()
            else {
                panic!()
            };
            if now.iter().map(|x| x.0).eq(then.iter().map(|x| x.0)) {
                // Same neighbours by chance: the ciphertexts are for another session, which the
                // recipients detect; make the test about routing instead.
                let mut then = then;
                then.swap(0, 1);
                return ClientMessage::EncryptedShares(then).encode();
            }
            old.clone()
        },
    );
    assert_dropped_and_exact(&r, 32, |m| *m == Misbehaviour::BadRecipients);
}
