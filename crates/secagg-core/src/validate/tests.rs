//! Step 6 end to end: a small complete neighbourhood masks with the core's PRG, computes its
//! projections and commitments with this module, and proves statement B with `secagg-zk`;
//! the verifier forms T_u from the *peers'* pair commitments.

use alloc::vec;
use alloc::vec::Vec;

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use secagg_zk::Generators;
use secagg_zk::bind::{self, BindContext, BindParams, BindStatement, BindWitness};

use super::commit::{
    input_blinding, input_commitment, pair_commitment, projection_blinding, self_commitment,
};
use super::projection::{Rho, client_projections, expand_rho, upload_projections};
use super::*;
use crate::config::PrgKind;
use crate::crypto::{self, DhKeyPair, SessionId};
use crate::prg::{MaskStream, Sign, apply_masks};
use crate::ring::Modulus;

const SESSION: SessionId = [0x33; 32];
const KAPPA: [u8; 32] = [0x44; 32];
const D: usize = 40;
const BITS: u8 = 16;
const N: u32 = 4;
const J: usize = 45;

struct Client {
    id: ClientId,
    b: [u8; 32],
    x: Vec<i64>,
    y: Vec<u64>,
    /// (v, s_uv) for every other client, increasing v.
    seeds: Vec<(ClientId, [u8; 32])>,
}

fn round(kind: PrgKind, wrong_seed_of: Option<(ClientId, ClientId)>) -> Vec<Client> {
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let modulus = Modulus::new(BITS).unwrap();
    let keys: Vec<DhKeyPair> = (0..N).map(|_| DhKeyPair::generate(&mut rng)).collect();
    (1..=N)
        .map(|u| {
            let b: [u8; 32] = crypto::random_array(&mut rng);
            let x: Vec<i64> = (0..D)
                .map(|_| i64::from(rng.next_u32() % 201) - 100)
                .collect();
            let seeds: Vec<(ClientId, [u8; 32])> = (1..=N)
                .filter(|v| *v != u)
                .map(|v| {
                    let shared = keys[u as usize - 1]
                        .agree(&keys[v as usize - 1].public())
                        .unwrap();
                    let mut s = *crypto::pairwise_seed(&shared, &SESSION, u, v);
                    if wrong_seed_of == Some((u, v)) {
                        s[0] ^= 1;
                    }
                    (v, s)
                })
                .collect();
            // Masking exactly as client.rs does it.
            let mut y: Vec<u64> = x.iter().map(|v| (*v as u64) & modulus.mask()).collect();
            let self_seed = crypto::self_mask_seed(&b, &SESSION, u);
            let mut streams = vec![MaskStream::new(kind, &self_seed, Sign::Plus)];
            for (v, s) in &seeds {
                let sign = if u < *v { Sign::Plus } else { Sign::Minus };
                streams.push(MaskStream::new(kind, s, sign));
            }
            apply_masks(&mut y, modulus, &mut streams);
            Client {
                id: u,
                b,
                x,
                y,
                seeds,
            }
        })
        .collect()
}

struct Answer {
    c_u: RistrettoPoint,
    o_u: RistrettoPoint,
    /// P_uv in increasing v.
    pairs: Vec<(ClientId, RistrettoPoint)>,
    witness: BindWitness,
}

fn answer(g: &Generators, kind: PrgKind, rho: &Rho, c: &Client) -> Answer {
    let modulus = Modulus::new(BITS).unwrap();
    let self_seed = crypto::self_mask_seed(&c.b, &SESSION, c.id);
    let signed: Vec<(bool, &[u8; 32])> = c
        .seeds
        .iter()
        .map(|(v, s)| (pair_sign_positive(c.id, *v), s))
        .collect();
    let p = client_projections(kind, modulus, rho, &c.x, &c.y, &self_seed, &signed).unwrap();
    let ids: Vec<(ClientId, &[u8; 32])> = c.seeds.iter().map(|(v, s)| (*v, s)).collect();
    let r_u = input_blinding(&c.b, &SESSION, c.id, &ids);
    let c_u = input_commitment(g, &c.x, &r_u).unwrap();
    let o_u = self_commitment(g, &p.t_self, &c.b, &SESSION, c.id, &KAPPA).unwrap();
    let pairs = c
        .seeds
        .iter()
        .zip(&p.t_pairs)
        .map(|((v, s), t)| {
            (
                *v,
                pair_commitment(g, t, s, &SESSION, c.id, *v, &KAPPA).unwrap(),
            )
        })
        .collect();
    Answer {
        c_u,
        o_u,
        pairs,
        witness: BindWitness {
            x: c.x.clone(),
            r_u,
            tau: p.tau.clone(),
            t_blind: projection_blinding(&c.b, &SESSION, c.id, &KAPPA, &ids),
            omega: p.omega.clone(),
        },
    }
}

fn setup() -> (BindParams, Generators, Rho) {
    let params = BindParams::new(D, J, N as usize - 1, u32::from(BITS)).unwrap();
    let g = Generators::new(params.generator_sizes()).unwrap();
    let rho = expand_rho(&KAPPA, &SESSION, J, D).unwrap();
    (params, g, rho)
}

/// Proves for client `u` and verifies with the P's of `pairs_from` (what the peers sent).
fn prove_and_verify(
    params: &BindParams,
    g: &Generators,
    rho: &Rho,
    c: &Client,
    a: &Answer,
    pairs_from: &[(bool, RistrettoPoint)],
) -> Result<(), secagg_zk::Error> {
    let modulus = Modulus::new(BITS).unwrap();
    let packed = modulus.pack(&c.y);
    let ctx = BindContext {
        session: SESSION,
        client: u64::from(c.id),
        kappa: KAPPA,
        upload_hash: crypto::hash(&[&packed]),
        bitmap: vec![0b1111],
    };
    let y = upload_projections(rho, modulus, &packed, D).unwrap();
    let own: Vec<(bool, RistrettoPoint)> = a
        .pairs
        .iter()
        .map(|(v, p)| (pair_sign_positive(c.id, *v), *p))
        .collect();
    let st = BindStatement {
        c_u: a.c_u,
        rho,
        y: &y,
        o_u: a.o_u,
        pairs: &own,
    };
    let mut rng = ChaCha20Rng::seed_from_u64(u64::from(c.id));
    let proof = bind::prove(g, params, &ctx, &st, &a.witness, &mut rng)?;
    let st = BindStatement {
        pairs: pairs_from,
        ..st
    };
    bind::verify(g, params, &ctx, &st, &proof)
}

/// The P_uv that u's peers sent for their pairs with u (P_vu, computed by v), in increasing v.
fn peers_view(answers: &[Answer], u: ClientId) -> Vec<(bool, RistrettoPoint)> {
    answers
        .iter()
        .enumerate()
        .filter(|(i, _)| *i as u32 + 1 != u)
        .map(|(i, a)| {
            let v = i as u32 + 1;
            let p = a
                .pairs
                .iter()
                .find(|(w, _)| *w == u)
                .map(|(_, p)| *p)
                .unwrap();
            (pair_sign_positive(u, v), p)
        })
        .collect()
}

#[test]
fn honest_clients_prove_the_binding_with_the_peers_pair_commitments() {
    let (params, g, rho) = setup();
    for kind in [PrgKind::Aes128Ctr, PrgKind::ChaCha20] {
        let clients = round(kind, None);
        let answers: Vec<Answer> = clients.iter().map(|c| answer(&g, kind, &rho, c)).collect();
        // Every pair agrees on its commitment (§6.1).
        for (i, a) in answers.iter().enumerate() {
            assert_eq!(
                peers_view(&answers, i as u32 + 1),
                a.pairs
                    .iter()
                    .map(|(v, p)| (pair_sign_positive(i as u32 + 1, *v), *p))
                    .collect::<Vec<_>>()
            );
        }
        for u in [1u32, 3] {
            let (c, a) = (&clients[u as usize - 1], &answers[u as usize - 1]);
            prove_and_verify(&params, &g, &rho, c, a, &peers_view(&answers, u)).unwrap();
        }
        // §6.3/§6.4 with no dropouts: the pair parts cancel. Σ T_u = Σ O_u as points, and
        // Σ C_u = ⟨Σ x, K⟩ + Σ r_self·h.
        let sum_t: RistrettoPoint = answers
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let u = i as u32 + 1;
                a.pairs.iter().fold(a.o_u, |acc, (v, p)| {
                    if pair_sign_positive(u, *v) {
                        acc + p
                    } else {
                        acc - p
                    }
                })
            })
            .sum();
        assert_eq!(sum_t, answers.iter().map(|a| a.o_u).sum::<RistrettoPoint>());
        let sum_x: Vec<i64> = (0..D)
            .map(|i| clients.iter().map(|c| c.x[i]).sum())
            .collect();
        let rho_sum: Scalar = clients
            .iter()
            .map(|c| blind::r_self(&c.b, &SESSION, c.id))
            .sum();
        assert_eq!(
            answers.iter().map(|a| a.c_u).sum::<RistrettoPoint>(),
            input_commitment(&g, &sum_x, &rho_sum).unwrap()
        );
        // And the unmasked sum is Σ x: the masks the projections describe are the masks used.
        let modulus = Modulus::new(BITS).unwrap();
        let mut acc = vec![0u64; D];
        for c in &clients {
            modulus.add_assign(&mut acc, &c.y);
            let mut s = [MaskStream::new(
                kind,
                &crypto::self_mask_seed(&c.b, &SESSION, c.id),
                Sign::Minus,
            )];
            apply_masks(&mut acc, modulus, &mut s);
        }
        let want: Vec<u64> = sum_x.iter().map(|v| (*v as u64) & modulus.mask()).collect();
        assert_eq!(acc, want);
    }
}

/// The `wrong-mask` cheat with honest P's (§16): client 2 masks its pair with 3 using a wrong
/// seed; its own projections are consistent with its upload, but the P_32 that client 3 sent
/// (and the P_23 client 2 would have to send to avoid a dispute) describe the true seed, so
/// the binding fails. The control: with its own (wrong) P_23 the proof verifies, i.e. only the
/// pair comparison of §6.1 / the dispute can catch that variant.
#[test]
fn a_wrong_pair_mask_with_the_honest_pair_commitment_fails_the_binding() {
    let (params, g, rho) = setup();
    let kind = PrgKind::Aes128Ctr;
    let honest = round(kind, None);
    let cheat = round(kind, Some((2, 3)));
    let honest_answers: Vec<Answer> = honest.iter().map(|c| answer(&g, kind, &rho, c)).collect();
    let c = &cheat[1];
    let a = answer(&g, kind, &rho, c);
    let view = peers_view(&honest_answers, 2);
    assert_ne!(
        view,
        a.pairs
            .iter()
            .map(|(v, p)| (pair_sign_positive(2, *v), *p))
            .collect::<Vec<_>>(),
        "the lie shows in the pair comparison"
    );
    assert_eq!(
        prove_and_verify(&params, &g, &rho, c, &a, &view),
        Err(secagg_zk::Error::VerificationFailed)
    );
    let own: Vec<(bool, RistrettoPoint)> = a
        .pairs
        .iter()
        .map(|(v, p)| (pair_sign_positive(2, *v), *p))
        .collect();
    prove_and_verify(&params, &g, &rho, c, &a, &own).unwrap();
}
