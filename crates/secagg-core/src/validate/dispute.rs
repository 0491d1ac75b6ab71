//! Pair disputes (VALIDATION.md §8.3; F5): the rule by which an honest client answers a
//! `DisputeRequest`, the server's resolution of an answer, and F5's second line of defence.
//!
//! A dispute exists only when two clients that both answered the challenge sent different pair
//! commitments P_uv ≠ P_vu. The server sends each the other's whole signed response. An honest
//! u answers with s_uv **only if all of** these hold ([`answer_dispute`]), and otherwise refuses
//! and reveals nothing (the seed is not even looked up):
//!
//! - (i) v ∈ u's own signed S_u (a pair u cut is never disputed);
//! - (ii) the peer's response carries a valid signature under v's roster key for u's session
//!   and carries u's own κ, and its bitmap lists u;
//! - (iii) that response *contains* a commitment P_vu for the pair (a missing one is not a
//!   differing one), and P_vu ≠ u's own P_uv.
//!
//! The server ([`resolve_dispute`]) checks the answer against the hash both signed at the share
//! stage (in constant time), recomputes P_uv from it under κ, and names whoever sent a different
//! point (one or both). Byte-level choices: VALIDATION.md §21.1 D23.

use alloc::vec::Vec;
use core::fmt;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::ValidateError;
use super::blind;
use super::evidence::{Culprit, RoundContext};
use super::wire::{DisputeAnswer, DisputeRequest, PointBytes, Secret32, ValidationResponse};
use crate::ClientId;
use crate::crypto::SessionId;

/// Why an honest client refuses a dispute. Every case blames the server: an honest server
/// disputes only pairs that meet (i)–(iii).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// (i) The peer is not in my signed S_u (I cut the pair, or it is no neighbour of mine).
    NotMaskedWith {
        /// The peer.
        peer: ClientId,
    },
    /// My own response does not fit my neighbour list (the caller's inputs disagree).
    OwnResponseMalformed,
    /// (ii) The peer's response does not verify under its roster key for my session.
    PeerSignature {
        /// The peer.
        peer: ClientId,
    },
    /// (ii) The peer's response carries another κ than mine.
    OtherKappa {
        /// The peer.
        peer: ClientId,
    },
    /// (ii)/(iii) The peer's bitmap does not list me (it cut the pair), or does not fit N(v)
    /// with one P per member: either way its response has no commitment for our pair.
    PeerDidNotListMe {
        /// The peer.
        peer: ClientId,
    },
    /// The peer's roster entry the caller gave is another client's than the request names.
    PeerMismatch {
        /// The peer the request names.
        peer: ClientId,
    },
    /// (iii) The peer's commitment equals mine: there is no dispute.
    CommitmentsEqual {
        /// The peer.
        peer: ClientId,
    },
    /// A dispute with myself.
    SelfDispute,
    /// I hold no seed for the peer (the caller's state has none).
    NoSeed {
        /// The peer.
        peer: ClientId,
    },
}

impl Refusal {
    /// Who misbehaved: the server that sent the request.
    pub fn culprit(&self) -> Culprit {
        Culprit::Server
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NotMaskedWith { peer } => {
                write!(f, "dispute refused: I did not mask with client {peer}")
            }
            Refusal::OwnResponseMalformed => {
                f.write_str("dispute refused: my own response does not fit my neighbours")
            }
            Refusal::PeerSignature { peer } => {
                write!(
                    f,
                    "dispute refused: client {peer}'s response is not validly signed"
                )
            }
            Refusal::OtherKappa { peer } => {
                write!(
                    f,
                    "dispute refused: client {peer} answered another challenge"
                )
            }
            Refusal::PeerDidNotListMe { peer } => {
                write!(
                    f,
                    "dispute refused: client {peer}'s signed bitmap does not list me"
                )
            }
            Refusal::PeerMismatch { peer } => {
                write!(f, "dispute refused: the keys given are not client {peer}'s")
            }
            Refusal::CommitmentsEqual { peer } => {
                write!(f, "dispute refused: client {peer}'s commitment equals mine")
            }
            Refusal::SelfDispute => f.write_str("dispute refused: a dispute with myself"),
            Refusal::NoSeed { peer } => {
                write!(f, "dispute refused: I hold no pair seed for client {peer}")
            }
        }
    }
}

impl std::error::Error for Refusal {}

/// The answering client's side: its id, session, its own signed response (its κ, its S_u and
/// its P_uv) and its neighbours N(u) in increasing id (the index of its bitmap).
#[derive(Clone, Copy, Debug)]
pub struct OwnSide<'a> {
    /// u.
    pub id: ClientId,
    /// u's session.
    pub session: &'a SessionId,
    /// The response u signed (under the one κ it answered).
    pub response: &'a ValidationResponse,
    /// N(u), increasing.
    pub neighbours: &'a [ClientId],
}

/// The peer as the answering client knows it: its id, its roster identity key and its
/// neighbours N(v) in increasing id (from the round's graph). The id must be the request's
/// peer (review N6).
#[derive(Clone, Copy, Debug)]
pub struct PeerSide<'a> {
    /// v.
    pub id: ClientId,
    /// v's identity key from the roster.
    pub identity: &'a [u8; 32],
    /// N(v), increasing.
    pub neighbours: &'a [ClientId],
}

/// Test-only relaxation: the loose rule of F5's control ("no commitment for our pair" read as
/// "different", a bitmap that omits me accepted). It exists only in test builds (review N2);
/// elsewhere `Loose` has no field and the rule reads `false`.
#[cfg(test)]
#[derive(Clone, Copy, Default)]
struct Loose {
    missing_is_different: bool,
}

#[cfg(test)]
impl Loose {
    /// The rule as in a real answer.
    const STRICT: Loose = Loose {
        missing_is_different: false,
    };
    fn missing_is_different(self) -> bool {
        self.missing_is_different
    }
}

#[cfg(not(test))]
#[derive(Clone, Copy, Default)]
struct Loose;

#[cfg(not(test))]
impl Loose {
    const STRICT: Loose = Loose;
    fn missing_is_different(self) -> bool {
        false
    }
}

/// Rule (i)–(iii) of §8.3: answers `request` with s_uv (`seed_for(peer)`, called only once every
/// condition holds) or refuses, revealing nothing.
pub fn answer_dispute(
    me: &OwnSide<'_>,
    request: &DisputeRequest,
    peer: &PeerSide<'_>,
    seed_for: impl FnOnce(ClientId) -> Option<Zeroizing<[u8; 32]>>,
) -> Result<DisputeAnswer, Refusal> {
    answer_dispute_with(me, request, peer, seed_for, Loose::STRICT)
}

fn answer_dispute_with(
    me: &OwnSide<'_>,
    request: &DisputeRequest,
    peer: &PeerSide<'_>,
    seed_for: impl FnOnce(ClientId) -> Option<Zeroizing<[u8; 32]>>,
    loose: Loose,
) -> Result<DisputeAnswer, Refusal> {
    let v = request.peer;
    if v == me.id {
        return Err(Refusal::SelfDispute);
    }
    if peer.id != v {
        return Err(Refusal::PeerMismatch { peer: v });
    }
    // (i) v ∈ my signed S_u.
    let mine = me
        .response
        .masked_with(me.neighbours)
        .ok_or(Refusal::OwnResponseMalformed)?;
    let my_index = mine
        .binary_search(&v)
        .map_err(|_| Refusal::NotMaskedWith { peer: v })?;
    let my_p = *me
        .response
        .pair_commitments
        .get(my_index)
        .ok_or(Refusal::OwnResponseMalformed)?;
    // (ii) v's signature for my session, my κ, and its bitmap lists me.
    let theirs = &request.response;
    if !theirs.verify(peer.identity, me.session, v) {
        return Err(Refusal::PeerSignature { peer: v });
    }
    if theirs.kappa != me.response.kappa {
        return Err(Refusal::OtherKappa { peer: v });
    }
    let their_p: Option<PointBytes> = theirs.pair_commitment_for(peer.neighbours, me.id);
    // (iii) it contains a commitment for our pair, and a different one. `None` means the
    // bitmap does not list me or does not fit N(v) (a listed member always has its P once
    // the bitmap fits: `masked_with` requires one per member; review N3).
    match their_p {
        Some(p) if p == my_p => return Err(Refusal::CommitmentsEqual { peer: v }),
        Some(_) => {}
        None if loose.missing_is_different() => {}
        None => return Err(Refusal::PeerDidNotListMe { peer: v }),
    }
    let seed = seed_for(v).ok_or(Refusal::NoSeed { peer: v })?;
    Ok(DisputeAnswer {
        peer: v,
        seed: Secret32::new(*seed),
    })
}

/// A disputed pair as the server holds it: both ends, the hashes each signed at the share stage
/// and the commitments each signed in its response.
#[derive(Clone, Copy, Debug)]
pub struct DisputedPair<'a> {
    /// One end.
    pub u: ClientId,
    /// The other end.
    pub v: ClientId,
    /// h_uv from u's signed share-stage list.
    pub h_uv: &'a [u8; 32],
    /// h_vu from v's signed share-stage list.
    pub h_vu: &'a [u8; 32],
    /// P_uv from u's signed response.
    pub p_uv: &'a PointBytes,
    /// P_vu from v's signed response.
    pub p_vu: &'a PointBytes,
}

/// Why the server cannot resolve a dispute with an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DisputeError {
    /// The answerer is not an end of the pair.
    NotAParty {
        /// Who answered.
        answerer: ClientId,
    },
    /// The two signed hashes differ: the pair was cut at the share stage and cannot be
    /// disputed (the server's own bookkeeping is wrong).
    PairWasCut,
    /// The two commitments are equal: there is no dispute.
    NoDispute,
    /// The seed does not hash to the signed h_uv: the answerer sent a wrong seed (an honest
    /// client never does; the other end's answer decides).
    WrongSeed {
        /// Who answered.
        answerer: ClientId,
    },
    /// A recomputation failed.
    Recompute(ValidateError),
}

impl DisputeError {
    /// Who misbehaved: the answerer for a wrong seed or an answer from outside the pair, the
    /// server (its own state) otherwise.
    pub fn culprit(&self) -> Culprit {
        match self {
            DisputeError::WrongSeed { answerer } | DisputeError::NotAParty { answerer } => {
                Culprit::Client(*answerer)
            }
            _ => Culprit::Server,
        }
    }
}

impl fmt::Display for DisputeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DisputeError::NotAParty { answerer } => {
                write!(f, "client {answerer} answered a dispute it is no party to")
            }
            DisputeError::PairWasCut => f.write_str("the disputed pair was cut"),
            DisputeError::NoDispute => f.write_str("the pair's commitments are equal"),
            DisputeError::WrongSeed { answerer } => {
                write!(
                    f,
                    "client {answerer} answered with a seed that does not match the signed hash"
                )
            }
            DisputeError::Recompute(e) => write!(f, "dispute: {e}"),
        }
    }
}

impl std::error::Error for DisputeError {}

/// The server's resolution of a dispute from one answer: checks SHA-256 of the seed against the
/// hash both signed before masking, recomputes P_uv under the server's κ (`ctx`) and returns
/// the ends whose signed commitment differs from it (one, or both), in increasing id.
pub fn resolve_dispute(
    ctx: &RoundContext<'_>,
    pair: &DisputedPair<'_>,
    answerer: ClientId,
    seed: &Secret32,
) -> Result<Vec<ClientId>, DisputeError> {
    if answerer != pair.u && answerer != pair.v {
        return Err(DisputeError::NotAParty { answerer });
    }
    if pair.h_uv != pair.h_vu {
        return Err(DisputeError::PairWasCut);
    }
    if pair.p_uv == pair.p_vu {
        return Err(DisputeError::NoDispute);
    }
    let h = blind::pair_seed_hash(ctx.session(), pair.u, pair.v, seed.expose());
    if !bool::from(h.as_slice().ct_eq(pair.h_uv.as_slice())) {
        return Err(DisputeError::WrongSeed { answerer });
    }
    let p = ctx
        .pair_commitment(pair.u, pair.v, seed.expose())
        .map_err(DisputeError::Recompute)?
        .compress()
        .to_bytes();
    let mut liars: Vec<ClientId> = [(pair.u, pair.p_uv), (pair.v, pair.p_vu)]
        .into_iter()
        .filter(|(_, signed)| **signed != p)
        .map(|(id, _)| id)
        .collect();
    liars.sort_unstable();
    Ok(liars)
}

/// F5's second line of defence (§8.3): a holder refuses to release its share of b_w when w's
/// signed S_w lists the holder although the holder cut the pair with w. `holder_cut_owner`
/// says whether the holder cut (w, holder) at the share stage; `owner_masked_with` is w's
/// signed S_w. With an honest server this never refuses (it checks every bitmap against the
/// cuts it forwarded).
pub fn may_release_self_share(
    holder: ClientId,
    holder_cut_owner: bool,
    owner_masked_with: &[ClientId],
) -> bool {
    !(holder_cut_owner && owner_masked_with.contains(&holder))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PrgKind;
    use crate::crypto;
    use crate::prg::{MaskStream, Sign, apply_masks};
    use crate::ring::Modulus;
    use crate::validate::evidence::tests::{Fixture, KAPPA, OTHER_KAPPA, SESSION, ctx, gens};
    use alloc::vec;

    fn answer(
        f: &Fixture,
        me: ClientId,
        my_response: &ValidationResponse,
        request: &DisputeRequest,
        loose: Loose,
    ) -> Result<DisputeAnswer, Refusal> {
        let my_nbrs = f.neighbours(me);
        let their_nbrs = f.neighbours(request.peer);
        let own = OwnSide {
            id: me,
            session: &SESSION,
            response: my_response,
            neighbours: &my_nbrs,
        };
        let peer = PeerSide {
            id: request.peer,
            identity: &f.party(request.peer).pk,
            neighbours: &their_nbrs,
        };
        answer_dispute_with(&own, request, &peer, |v| Some(f.seed(me, v)), loose)
    }

    /// The dispute of §8.3 as it should go: liar v commits to a wrong seed for (u, v); honest u
    /// answers with s_uv; the server's resolution names v, not u. A wrong answer names the
    /// answerer; an answer from outside the pair is refused.
    #[test]
    fn an_honest_client_answers_a_real_dispute_and_the_liar_is_named() {
        let f = Fixture::new();
        let g = gens();
        let (u, v) = (1, 3);
        let honest = f.response(&g, u, KAPPA, &f.neighbours(u), None, None);
        let liar = f.response(&g, v, KAPPA, &f.neighbours(v), Some((u, &[9; 32])), None);
        let request = DisputeRequest {
            peer: v,
            response: liar.clone(),
        };
        let a = answer(&f, u, &honest, &request, Loose::default()).unwrap();
        assert_eq!(a.peer, v);
        assert_eq!(a.seed.expose(), &*f.seed(u, v));
        // The liar refuses the mirror request (the commitments differ, but its own "seed" is
        // its business); the server needs one answer.
        let c = ctx(&g, KAPPA);
        let h = blind::pair_seed_hash(&SESSION, u, v, &f.seed(u, v));
        let p_uv = honest.pair_commitment_for(&f.neighbours(u), v).unwrap();
        let p_vu = liar.pair_commitment_for(&f.neighbours(v), u).unwrap();
        let pair = DisputedPair {
            u,
            v,
            h_uv: &h,
            h_vu: &h,
            p_uv: &p_uv,
            p_vu: &p_vu,
        };
        assert_eq!(resolve_dispute(&c, &pair, u, &a.seed), Ok(vec![v]));
        let wrong = Secret32::new([9; 32]);
        let e = resolve_dispute(&c, &pair, v, &wrong).unwrap_err();
        assert_eq!(e, DisputeError::WrongSeed { answerer: v });
        assert_eq!(e.culprit(), Culprit::Client(v));
        assert_eq!(
            resolve_dispute(&c, &pair, 2, &a.seed),
            Err(DisputeError::NotAParty { answerer: 2 })
        );
        // Both lied (each with its own wrong seed): both named.
        let liar_u = f.response(&g, u, KAPPA, &f.neighbours(u), Some((v, &[8; 32])), None);
        let p_uv2 = liar_u.pair_commitment_for(&f.neighbours(u), v).unwrap();
        let both = DisputedPair {
            p_uv: &p_uv2,
            ..pair
        };
        assert_eq!(resolve_dispute(&c, &both, u, &a.seed), Ok(vec![u, v]));
        let cut = [0u8; 32];
        assert_eq!(
            resolve_dispute(&c, &DisputedPair { h_vu: &cut, ..pair }, u, &a.seed),
            Err(DisputeError::PairWasCut)
        );
    }

    /// §17 F5 (the unit form of `asymmetric_cuts_get_no_dispute_answers`): a malicious server
    /// told every neighbour v of victim w that their hashes mismatched, so each v cut the pair
    /// and w cut none. Each v's signed response omits w; w refuses every dispute (iii), and in
    /// the mirror case (w cut, v did not) w refuses by (i). Control: under the loose rule
    /// ("no commitment" = "different") w answers every dispute, and the server, holding every
    /// s_wv and (w staying in U3) b_w, recovers x_w from y_w.
    #[test]
    fn asymmetric_cuts_get_no_dispute_answers() {
        let f = Fixture::new();
        let g = gens();
        let w = 2;
        let w_nbrs = f.neighbours(w);
        let victim = f.response(&g, w, KAPPA, &w_nbrs, None, None);
        let mut revealed = Vec::new();
        for v in f.neighbours(w) {
            let cut: Vec<ClientId> = f.neighbours(v).into_iter().filter(|x| *x != w).collect();
            let request = DisputeRequest {
                peer: v,
                response: f.response(&g, v, KAPPA, &cut, None, None),
            };
            assert_eq!(
                answer(&f, w, &victim, &request, Loose::default()),
                Err(Refusal::PeerDidNotListMe { peer: v })
            );
            let loose = Loose {
                missing_is_different: true,
            };
            revealed.push((v, answer(&f, w, &victim, &request, loose).unwrap().seed));
        }
        // The control's leak, end to end: x_w = y_w − PRG(b_w) − Σ ±PRG(s_wv).
        let modulus = Modulus::new(16).unwrap();
        let x: Vec<u64> = (0..8).map(|i| 1000 + i).collect();
        let mut y = x.clone();
        let self_seed = crypto::self_mask_seed(&f.party(w).b, &SESSION, w);
        let sign = |v: ClientId| if w < v { Sign::Plus } else { Sign::Minus };
        let mut streams = vec![MaskStream::new(PrgKind::Aes128Ctr, &self_seed, Sign::Plus)];
        for v in f.neighbours(w) {
            streams.push(MaskStream::new(PrgKind::Aes128Ctr, &f.seed(w, v), sign(v)));
        }
        apply_masks(&mut y, modulus, &mut streams);
        let mut unmask = vec![MaskStream::new(PrgKind::Aes128Ctr, &self_seed, Sign::Minus)];
        for (v, s) in &revealed {
            let back = if sign(*v) == Sign::Plus {
                Sign::Minus
            } else {
                Sign::Plus
            };
            unmask.push(MaskStream::new(PrgKind::Aes128Ctr, s.expose(), back));
        }
        apply_masks(&mut y, modulus, &mut unmask);
        assert_eq!(y, x, "the loose rule hands the server the victim's input");

        // Mirror case: w cut the pair with v = 1, v did not. (i) refuses.
        let cut_w: Vec<ClientId> = w_nbrs.iter().copied().filter(|x| *x != 1).collect();
        let victim_cut = f.response(&g, w, KAPPA, &cut_w, None, None);
        let request = DisputeRequest {
            peer: 1,
            response: f.response(&g, 1, KAPPA, &f.neighbours(1), Some((w, &[3; 32])), None),
        };
        assert_eq!(
            answer(&f, w, &victim_cut, &request, Loose::default()),
            Err(Refusal::NotMaskedWith { peer: 1 })
        );
        // Second line of defence: w's signed S_w lists v although v cut the pair.
        assert!(!may_release_self_share(1, true, &w_nbrs));
        assert!(may_release_self_share(1, false, &w_nbrs));
        assert!(may_release_self_share(1, true, &cut_w));
    }

    /// (Review 3 of step 7, a soundness check kept as a regression test.) A corrupt peer's
    /// signed response with a padding bit set past N(v), and two points: the second would be
    /// read as P_vu if the padding bit counted first. The bitmap does not fit N(v): refused,
    /// no seed looked up.
    #[test]
    fn padding_bits_do_not_shift_the_peer_commitments() {
        use curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT as B;
        use curve25519_dalek::ristretto::CompressedRistretto;
        let f = Fixture::new();
        let g = gens();
        let (u, v) = (1, 2);
        let mine = f.response(&g, u, KAPPA, &f.neighbours(u), None, None);
        let p = CompressedRistretto(mine.pair_commitments[0])
            .decompress()
            .unwrap();
        let theirs = ValidationResponse::sign(
            &f.party(v).identity,
            &SESSION,
            v,
            KAPPA,
            [0; 32],
            vec![0b1000_0001],
            &B,
            &[p, B],
            vec![],
        );
        let nu = f.neighbours(u);
        let nv = f.neighbours(v);
        let own = OwnSide {
            id: u,
            session: &SESSION,
            response: &mine,
            neighbours: &nu,
        };
        let peer = PeerSide {
            id: v,
            identity: &f.party(v).pk,
            neighbours: &nv,
        };
        let request = DisputeRequest {
            peer: v,
            response: theirs,
        };
        let r = answer_dispute(&own, &request, &peer, |_| -> Option<Zeroizing<[u8; 32]>> {
            panic!("seed looked up")
        });
        assert_eq!(r, Err(Refusal::PeerDidNotListMe { peer: v }));
    }

    /// §17 F5, the rest of (ii) and (iii): a peer response under another κ, one not signed by
    /// the peer, one forged by the server, and one whose commitment equals mine are refused,
    /// and none of them reveals a seed (the seed is never looked up).
    #[test]
    fn disputes_without_a_valid_differing_signed_commitment_are_refused() {
        let f = Fixture::new();
        let g = gens();
        let (u, v) = (4, 1);
        let mine = f.response(&g, u, KAPPA, &f.neighbours(u), None, None);
        let lie = Some((u, &[5u8; 32]));
        let cases = [
            (
                f.response(&g, v, OTHER_KAPPA, &f.neighbours(v), None, None),
                Refusal::OtherKappa { peer: v },
            ),
            (
                f.response(&g, v, KAPPA, &f.neighbours(v), None, None),
                Refusal::CommitmentsEqual { peer: v },
            ),
            (
                // Signed by another client (3) and presented as v's.
                f.response(&g, 3, KAPPA, &f.neighbours(3), None, None),
                Refusal::PeerSignature { peer: v },
            ),
            (
                {
                    // v's real response with the server's point for our pair.
                    let mut r = f.response(&g, v, KAPPA, &f.neighbours(v), None, None);
                    let i = r
                        .masked_with(&f.neighbours(v))
                        .unwrap()
                        .binary_search(&u)
                        .unwrap();
                    r.pair_commitments[i] = r.self_commitment;
                    r
                },
                Refusal::PeerSignature { peer: v },
            ),
        ];
        let nbrs_u = f.neighbours(u);
        let nbrs_v = f.neighbours(v);
        for (response, want) in cases {
            let request = DisputeRequest { peer: v, response };
            let own = OwnSide {
                id: u,
                session: &SESSION,
                response: &mine,
                neighbours: &nbrs_u,
            };
            let peer = PeerSide {
                id: v,
                identity: &f.party(v).pk,
                neighbours: &nbrs_v,
            };
            let got = answer_dispute(&own, &request, &peer, |_| -> Option<Zeroizing<[u8; 32]>> {
                panic!("the seed was looked up for a refused dispute")
            });
            assert_eq!(got, Err(want));
        }
        // Control: the same machinery answers a valid, differing, signed commitment.
        let request = DisputeRequest {
            peer: v,
            response: f.response(&g, v, KAPPA, &f.neighbours(v), lie, None),
        };
        assert!(answer(&f, u, &mine, &request, Loose::default()).is_ok());
        // Another session: the peer's signature does not verify for mine.
        let own = OwnSide {
            id: u,
            session: &[0; 32],
            response: &mine,
            neighbours: &nbrs_u,
        };
        let peer = PeerSide {
            id: v,
            identity: &f.party(v).pk,
            neighbours: &nbrs_v,
        };
        assert_eq!(
            answer_dispute(&own, &request, &peer, |v| Some(f.seed(u, v))),
            Err(Refusal::PeerSignature { peer: v })
        );
        // Review N6: the keys given for another client than the request names are refused,
        // before anything is checked against them.
        let own = OwnSide {
            session: &SESSION,
            ..own
        };
        assert!(answer_dispute(&own, &request, &peer, |v| Some(f.seed(u, v))).is_ok());
        let other = PeerSide { id: 3, ..peer };
        assert_eq!(
            answer_dispute(&own, &request, &other, |_| -> Option<Zeroizing<[u8; 32]>> {
                panic!("the seed was looked up for a refused dispute")
            }),
            Err(Refusal::PeerMismatch { peer: v })
        );
        let self_request = DisputeRequest {
            peer: u,
            response: mine.clone(),
        };
        assert_eq!(
            answer(&f, u, &mine, &self_request, Loose::default()),
            Err(Refusal::SelfDispute)
        );
    }
}
