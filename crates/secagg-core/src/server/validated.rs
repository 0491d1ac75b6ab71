//! The server's part of a validated round after the keys (VALIDATION.md §8.3, §9, §6.4; step
//! 8b): the share stage's signed pair-seed hashes and the cuts, the challenge κ, the binding
//! answers and proofs, the pair comparison and disputes, and after unmasking the checks of O_u
//! and of dropped pairs' P_uw, the exclusion of proven liars (rule E, D38, D42) and the
//! aggregate commitment (§6.4).

use alloc::collections::BTreeSet;
use alloc::vec::Vec;

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::{DropReason, Handled, ServerRound, ValidationKind};
use crate::ClientId;
use crate::crypto::{self, DhKeyPair};
use crate::error::{Misbehaviour, RoundAborted, ServerError, Stage};
use crate::idset::IdSet;
use crate::messages::{ClientMessage, ServerMessage};
use crate::ring::RingVec;
use crate::validate::binding::{self, Challenge};
use crate::validate::blind;
use crate::validate::dispute::{self, DisputedPair};
use crate::validate::wire::{
    DisputeRequest, PairSeedHashes, ValidationClientMessage, ValidationResponse,
    ValidationServerMessage, WireParams,
};

/// What the server keeps per client in a validated round.
#[derive(Default)]
pub(super) struct SlotValidation {
    /// The signed share-stage list (§8.3).
    hashes: Option<PairSeedHashes>,
    /// The verified upload, outside the sum until the challenge stage ends.
    pub upload: Option<Vec<u8>>,
    /// C_u from the norm proof.
    pub c_u: Option<RistrettoPoint>,
    /// The signed binding answer.
    response: Option<ValidationResponse>,
}

/// The challenge stage's state.
pub(super) struct StageState {
    wire: WireParams,
    /// Pairs (min, max) cut at the share stage.
    cuts: BTreeSet<(ClientId, ClientId)>,
    challenge: Option<Challenge>,
    disputes_open: bool,
    /// Disputed pairs (min, max) not resolved yet.
    open_pairs: BTreeSet<(ClientId, ClientId)>,
    /// Dispute answers owed: (answerer, peer).
    owed: BTreeSet<(ClientId, ClientId)>,
    /// After unmasking: the rebuilt secrets (owner, in U3, b_u or sk_u), by owner.
    rebuilt: Vec<(ClientId, bool, Zeroizing<[u8; 32]>)>,
    /// An exclusion step in progress (rule E): each accused liar, why, and the mask-key shares
    /// its holders released.
    excluding: Vec<(ClientId, ValidationKind, Vec<crate::shamir::Share>)>,
    /// Exclusion shares owed: (holder, liar).
    exclusion_owed: BTreeSet<(ClientId, ClientId)>,
}

impl StageState {
    pub(super) fn new(wire: WireParams) -> Self {
        Self {
            wire,
            cuts: BTreeSet::new(),
            challenge: None,
            disputes_open: false,
            open_pairs: BTreeSet::new(),
            owed: BTreeSet::new(),
            rebuilt: Vec::new(),
            excluding: Vec::new(),
            exclusion_owed: BTreeSet::new(),
        }
    }

    /// Whether an exclusion step waits for shares.
    pub(super) fn excluding(&self) -> bool {
        !self.excluding.is_empty()
    }

    /// The rebuilt secret of `id`: (in U3, b_u) or (out of U3, sk_u).
    fn rebuilt(&self, id: ClientId) -> Option<(bool, &Zeroizing<[u8; 32]>)> {
        let i = self
            .rebuilt
            .binary_search_by_key(&id, |(o, _, _)| *o)
            .ok()?;
        let (_, survived, secret) = &self.rebuilt[i];
        Some((*survived, secret))
    }
}

/// s_uw from the rebuilt mask key of w (outside U3) and u's advertised mask key.
fn dropped_pair_seed(
    session: &crate::crypto::SessionId,
    u: ClientId,
    u_mask_pk: &[u8; 32],
    w: ClientId,
    sk_w: &[u8; 32],
) -> Option<Zeroizing<[u8; 32]>> {
    let shared = DhKeyPair::from_secret_bytes(sk_w).agree(u_mask_pk)?;
    Some(crypto::pairwise_seed(&shared, session, u, w))
}

impl StageState {
    pub(super) fn is_cut(&self, u: ClientId, v: ClientId) -> bool {
        self.cuts.contains(&(u.min(v), u.max(v)))
    }
}

fn validation_drop(kind: ValidationKind) -> Misbehaviour {
    Misbehaviour::Validation(kind.name())
}

impl ServerRound {
    /// During disputes, the stage is complete when every answer owed by a client still in the
    /// round has arrived; `None` outside disputes.
    pub(super) fn disputes_complete(&self) -> Option<bool> {
        let v = self.validation.as_ref()?;
        if self.stage == Stage::Unmask && v.stage.excluding() {
            return Some(
                v.stage.exclusion_owed.iter().all(|(holder, _)| {
                    !self.active.contains(*holder) || self.gone.contains(*holder)
                }),
            );
        }
        (self.stage == Stage::Validate && v.stage.disputes_open).then(|| {
            v.stage.owed.iter().all(|(answerer, _)| {
                !self.active.contains(*answerer) || self.gone.contains(*answerer)
            })
        })
    }

    fn drop_for_validation(&mut self, now: u64, id: ClientId, kind: ValidationKind) -> ServerError {
        self.mark_dropped(id, DropReason::Validation(kind));
        if self.outcome.is_none() && self.stage_complete() {
            self.close_stage(now);
        }
        ServerError::Client {
            id,
            reason: validation_drop(kind),
        }
    }

    /// (v, leaf_v) of the key entries the server holds (and forwarded) for `ids`: a client's
    /// view V_u (§8.3).
    fn view_leaves(&self, ids: &[ClientId]) -> Vec<(ClientId, [u8; 32])> {
        ids.iter()
            .filter_map(|v| {
                self.slots[*v as usize]
                    .keys
                    .as_ref()
                    .map(|k| (*v, k.leaf()))
            })
            .collect()
    }

    /// A validated round's version-3 message from `from` (still in the round).
    pub(super) fn handle_validated(
        &mut self,
        now: u64,
        from: ClientId,
        bytes: &[u8],
    ) -> Result<Handled, ServerError> {
        let Some(state) = self.validation.as_ref() else {
            return Err(ServerError::Misuse("not a validated round"));
        };
        let disputes_open = state.stage.disputes_open;
        if bytes.get(1) == Some(&0x33) {
            // Exclusion shares are counted against what was asked (rule E), not by stage.
            if self.stage != Stage::Unmask || !state.stage.excluding() {
                return Ok(Handled::IgnoredLate);
            }
            if let Ok(ValidationClientMessage::ExclusionShares(s)) =
                ValidationClientMessage::decode(bytes, &state.stage.wire)
            {
                self.on_exclusion_share(from, s);
            }
            if self.outcome.is_none() && self.stage_complete() {
                self.close_stage(now);
            }
            return Ok(Handled::Accepted);
        }
        let answer_tag = bytes.get(1) == Some(&0x32);
        // Retransmissions of a completed stage are ignored (as for plain messages); dispute
        // answers are counted separately (review 8b #2).
        let msg_stage = crate::validate::wire::client_message_stage(bytes).unwrap_or(self.stage);
        let done = self.slots[from as usize].completed;
        if answer_tag && !(disputes_open && self.stage == Stage::Validate) {
            return Ok(Handled::IgnoredLate);
        }
        if !answer_tag
            && done.is_some_and(|s| s >= msg_stage.min(self.stage))
            && msg_stage <= self.stage
        {
            return Ok(Handled::IgnoredDuplicate);
        }
        let msg = match ValidationClientMessage::decode(bytes, &state.stage.wire) {
            Ok(m) => m,
            Err(e) if self.stage == Stage::Validate => {
                let _ = e;
                return Err(self.drop_for_validation(now, from, ValidationKind::Response));
            }
            Err(e) => return Err(self.drop_client(from, Misbehaviour::Malformed(e), now)),
        };
        let result = match (self.stage, msg) {
            (Stage::ShareKeys, ValidationClientMessage::Shares { shares, hashes }) => {
                if done.is_some_and(|s| s >= Stage::ShareKeys) {
                    return Ok(Handled::IgnoredDuplicate);
                }
                self.on_validated_shares(from, &shares, hashes)
            }
            (Stage::Validate, ValidationClientMessage::ValidationResponse(r)) if !disputes_open => {
                if done.is_some_and(|s| s >= Stage::Validate) {
                    return Ok(Handled::IgnoredDuplicate);
                }
                if let Err(kind) = self.on_response(from, r) {
                    return Err(self.drop_for_validation(now, from, kind));
                }
                Ok(())
            }
            (Stage::Validate, ValidationClientMessage::DisputeAnswer(a)) if disputes_open => {
                self.on_dispute_answer(now, from, a);
                if self.outcome.is_none() && self.stage_complete() {
                    self.close_stage(now);
                }
                return Ok(Handled::Accepted);
            }
            (stage, m) => Err(Misbehaviour::UnexpectedMessage {
                stage,
                got: match m {
                    ValidationClientMessage::Shares { .. } => "Shares",
                    ValidationClientMessage::ValidationResponse(_) => "ValidationResponse",
                    ValidationClientMessage::DisputeAnswer(_) => "DisputeAnswer",
                    ValidationClientMessage::ExclusionShares(_) => "ExclusionShares",
                },
            }),
        };
        if let Err(reason) = result {
            return Err(self.drop_client(from, reason, now));
        }
        self.slots[from as usize].completed = Some(self.stage);
        if self.stage_complete() {
            self.close_stage(now);
        }
        Ok(Handled::Accepted)
    }

    /// The share stage: the plain shares, then the signed hash list, which must cover exactly
    /// N(u) (D27) and verify over the V_u of the entries the server forwarded to u (§8.3).
    fn on_validated_shares(
        &mut self,
        from: ClientId,
        shares: &[u8],
        hashes: PairSeedHashes,
    ) -> Result<(), Misbehaviour> {
        let list = match ClientMessage::decode(shares, &self.config) {
            Ok(ClientMessage::EncryptedShares(list)) => list,
            Ok(m) => {
                return Err(Misbehaviour::UnexpectedMessage {
                    stage: self.stage,
                    got: m.name(),
                });
            }
            Err(e) => return Err(Misbehaviour::Malformed(e)),
        };
        self.on_shares(from, list)?;
        let (Some(graph), Some(session), Some(roster)) = (&self.graph, &self.session, &self.roster)
        else {
            return Err(Misbehaviour::UnexpectedMessage {
                stage: self.stage,
                got: "Shares",
            });
        };
        let neighbours = graph.neighbours(from);
        if !hashes.covers(&neighbours) {
            return Err(Misbehaviour::Validation(
                "pair-seed hashes do not cover the neighbours",
            ));
        }
        let leaves = self.view_leaves(&neighbours);
        let view = blind::view_digest(session, &leaves).map_err(|_| Misbehaviour::BadSignature)?;
        let ok = roster
            .get(from as usize - 1)
            .is_some_and(|pk| hashes.verify(pk, session, from, &view));
        if !ok {
            return Err(Misbehaviour::BadSignature);
        }
        self.slots[from as usize].v.hashes = Some(hashes);
        Ok(())
    }

    /// Routes the shares of U2 with each neighbour's signed hash for the pair, and cuts the
    /// pairs whose two hashes differ (§8.3): neither end masks with the other.
    pub(super) fn route_validated_shares(&mut self, u2: &IdSet) {
        let Some(graph) = &self.graph else { return };
        let mut cuts = BTreeSet::new();
        let mut out = Vec::new();
        for u in u2.iter() {
            let mut ciphertexts = Vec::new();
            let mut peer_hashes = Vec::new();
            for v in graph.neighbours(u).into_iter().filter(|v| u2.contains(*v)) {
                let sent = &self.slots[v as usize].shares_out;
                if let Ok(i) = sent.binary_search_by_key(&u, |(to, _)| *to) {
                    ciphertexts.push((v, sent[i].1.clone()));
                }
                let h_vu = self.slots[v as usize]
                    .v
                    .hashes
                    .as_ref()
                    .and_then(|h| h.hash_for(u).copied())
                    .unwrap_or([0; 32]);
                let h_uv = self.slots[u as usize]
                    .v
                    .hashes
                    .as_ref()
                    .and_then(|h| h.hash_for(v).copied());
                if h_uv != Some(h_vu) {
                    cuts.insert((u.min(v), u.max(v)));
                }
                peer_hashes.push((v, h_vu));
            }
            let routed = ServerMessage::SharesForYou {
                u2: u2.clone(),
                ciphertexts,
            }
            .encode();
            out.push((
                u,
                ValidationServerMessage::RoutedShares {
                    routed,
                    peer_hashes,
                }
                .encode(),
            ));
        }
        self.outbox.extend(out);
        for s in &mut self.slots {
            s.shares_out = Vec::new();
        }
        if let Some(v) = self.validation.as_mut() {
            v.stage.cuts = cuts;
        }
    }

    /// After the uploads: κ from the driver's secret key and the session (unpredictable to
    /// every client before it is sent), to every client whose upload verified (§9).
    pub(super) fn send_challenge(&mut self) {
        let (Some(v), Some(session)) = (self.validation.as_mut(), self.session.as_ref()) else {
            return;
        };
        if !v.key_set {
            return self.abort(RoundAborted::Validation {
                client: None,
                check: "no verifier key: the driver must call set_verifier_key",
            });
        }
        let mut h = Sha256::new();
        h.update(b"secagg/v3/validate/kappa");
        h.update(*v.verifier_key);
        h.update(session);
        let kappa: [u8; 32] = h.finalize().into();
        match Challenge::new(&self.config, session, &kappa) {
            Ok(ch) => v.stage.challenge = Some(ch),
            Err(_) => {
                return self.abort(RoundAborted::Validation {
                    client: None,
                    check: "challenge parameters",
                });
            }
        }
        let msg = ValidationServerMessage::Challenge { kappa }.encode();
        for id in self.active.iter() {
            self.outbox.push_back((id, msg.clone()));
        }
        self.stage = Stage::Validate;
    }

    /// A binding answer: κ, the bitmap it signed with its upload (D28), the signature
    /// (strictly: responses are forwarded, SECURITY.md §4a). The proof is checked when the
    /// stage closes.
    fn on_response(&mut self, from: ClientId, r: ValidationResponse) -> Result<(), ValidationKind> {
        let (Some(v), Some(graph), Some(session), Some(roster)) = (
            self.validation.as_ref(),
            &self.graph,
            &self.session,
            &self.roster,
        ) else {
            return Err(ValidationKind::Response);
        };
        let Some(ch) = v.stage.challenge.as_ref() else {
            return Err(ValidationKind::Response);
        };
        let slot = &self.slots[from as usize];
        let Some(upload) = slot.masked_with.as_ref() else {
            return Err(ValidationKind::Response);
        };
        let neighbours = graph.neighbours(from);
        let leaves = self.view_leaves(&neighbours);
        let Ok(view) = blind::view_digest(session, &leaves) else {
            return Err(ValidationKind::Response);
        };
        let ok = r.kappa == *ch.kappa()
            && r.view == view
            && r.fits(&upload.bitmap, &neighbours)
            && roster
                .get(from as usize - 1)
                .is_some_and(|pk| r.verify(pk, session, from));
        if !ok {
            return Err(ValidationKind::Response);
        }
        self.slots[from as usize].v.response = Some(r);
        Ok(())
    }

    /// Closes the challenge stage: first the binding proofs and the pair comparison (which may
    /// open disputes), then, once disputes are settled, U3 and the sum of its uploads.
    pub(super) fn after_validate(&mut self) {
        let disputes_open = self
            .validation
            .as_ref()
            .is_some_and(|v| v.stage.disputes_open);
        if disputes_open {
            self.settle_disputes();
        } else {
            self.verify_bindings();
            if self.open_disputes() {
                return;
            }
        }
        if self.outcome.is_some() {
            return;
        }
        let needed = self.config.min_clients as usize;
        if self.active.len() < needed {
            return self.abort(RoundAborted::TooFewClients {
                stage: Stage::Validate,
                remaining: self.active.len(),
                needed,
            });
        }
        // U3: the uploads of those still in the round enter the sum now (§8.1).
        let u3 = self.active.clone();
        let modulus = self.config.modulus();
        for id in u3.iter() {
            // Kept until the round ends: an exclusion after unmasking subtracts it (§8.1).
            if let Some(up) = self.slots[id as usize].v.upload.as_ref()
                && self.acc.unpack_add(modulus, up).is_err()
            {
                // Lengths were checked at decoding; a failure here is a bug, never a release.
                return self.abort(RoundAborted::Validation {
                    client: Some(id),
                    check: "upload length",
                });
            }
        }
        for id in 1..=self.config.num_clients {
            if !u3.contains(id) {
                self.slots[id as usize].v.upload = None;
            }
        }
        let bytes = ServerMessage::ConsistencyRequest { u3: u3.clone() }.encode();
        for id in u3.iter() {
            self.outbox.push_back((id, bytes.clone()));
        }
        self.u3 = Some(u3);
        self.stage = Stage::ConsistencyCheck;
    }

    /// Verifies every answer's binding proof (in parallel); failures are dropped with
    /// `validation: binding`.
    fn verify_bindings(&mut self) {
        let (Some(v), Some(graph)) = (self.validation.as_ref(), &self.graph) else {
            return;
        };
        let Some(ch) = v.stage.challenge.as_ref() else {
            return;
        };
        let ids: Vec<ClientId> = self.active.iter().collect();
        let slots = &self.slots;
        let config = &self.config;
        let check = |id: &ClientId| -> bool {
            let s = &slots[*id as usize];
            match (&s.v.response, &s.v.c_u, &s.v.upload) {
                (Some(r), Some(c_u), Some(up)) => {
                    binding::verify_answer(ch, config, *id, &graph.neighbours(*id), c_u, up, r)
                        .is_ok()
                }
                _ => false,
            }
        };
        #[cfg(feature = "parallel")]
        let verdicts: Vec<bool> = {
            use rayon::prelude::*;
            ids.par_iter().map(check).collect()
        };
        #[cfg(not(feature = "parallel"))]
        let verdicts: Vec<bool> = ids.iter().map(check).collect();
        for (id, ok) in ids.into_iter().zip(verdicts) {
            if !ok {
                self.mark_dropped(id, DropReason::Validation(ValidationKind::Binding));
            }
        }
    }

    /// Compares P_uv with P_vu for every pair inside the round that both masked with; opens a
    /// dispute for each difference (§8.3). Returns whether disputes are open.
    fn open_disputes(&mut self) -> bool {
        let Some(graph) = &self.graph else {
            return false;
        };
        let mut pairs = Vec::new();
        for u in self.active.iter() {
            let Some(ru) = &self.slots[u as usize].v.response else {
                continue;
            };
            let nu = graph.neighbours(u);
            let Some(members) = ru.masked_with(&nu) else {
                continue;
            };
            for v in members
                .into_iter()
                .filter(|v| *v > u && self.active.contains(*v))
            {
                let Some(rv) = &self.slots[v as usize].v.response else {
                    continue;
                };
                let p_uv = ru.pair_commitment_for(&nu, v);
                let p_vu = rv.pair_commitment_for(&graph.neighbours(v), u);
                if p_uv != p_vu {
                    pairs.push((u, v));
                }
            }
        }
        if pairs.is_empty() {
            return false;
        }
        let mut out = Vec::new();
        let mut owed = BTreeSet::new();
        for (u, v) in &pairs {
            for (me, peer) in [(*u, *v), (*v, *u)] {
                if let Some(r) = &self.slots[peer as usize].v.response {
                    let msg = ValidationServerMessage::DisputeRequest(DisputeRequest {
                        peer,
                        response: r.clone(),
                    });
                    out.push((me, msg.encode()));
                    owed.insert((me, peer));
                }
            }
        }
        self.outbox.extend(out);
        if let Some(v) = self.validation.as_mut() {
            v.stage.disputes_open = true;
            v.stage.open_pairs = pairs.into_iter().collect();
            v.stage.owed = owed;
        }
        true
    }

    /// One dispute answer: resolved at once (one answer suffices, D23); the liar (or a client
    /// that answered with a wrong seed) is dropped with `validation: pair commitment`.
    fn on_dispute_answer(
        &mut self,
        now: u64,
        from: ClientId,
        a: crate::validate::wire::DisputeAnswer,
    ) {
        let peer = a.peer;
        let pair = (from.min(peer), from.max(peer));
        let Some(v) = self.validation.as_mut() else {
            return;
        };
        if !v.stage.owed.remove(&(from, peer)) {
            return; // not asked, or already answered: ignored
        }
        if !v.stage.open_pairs.contains(&pair) {
            return; // the other end's answer settled it
        }
        let (Some(ch), Some(graph)) = (v.stage.challenge.as_ref(), &self.graph) else {
            return;
        };
        let (ru, rv) = (
            &self.slots[pair.0 as usize].v.response,
            &self.slots[pair.1 as usize].v.response,
        );
        let (hu, hv) = (
            &self.slots[pair.0 as usize].v.hashes,
            &self.slots[pair.1 as usize].v.hashes,
        );
        let verdict = (|| {
            let (ru, rv, hu, hv) = (ru.as_ref()?, rv.as_ref()?, hu.as_ref()?, hv.as_ref()?);
            let p_uv = ru.pair_commitment_for(&graph.neighbours(pair.0), pair.1)?;
            let p_vu = rv.pair_commitment_for(&graph.neighbours(pair.1), pair.0)?;
            let h_uv = *hu.hash_for(pair.1)?;
            let h_vu = *hv.hash_for(pair.0)?;
            let ctx = ch.context(&self.config).ok()?;
            let disputed = DisputedPair {
                u: pair.0,
                v: pair.1,
                h_uv: &h_uv,
                h_vu: &h_vu,
                p_uv: &p_uv,
                p_vu: &p_vu,
            };
            Some(dispute::resolve_dispute(&ctx, &disputed, from, &a.seed))
        })();
        let liars: Vec<ClientId> = match verdict {
            Some(Ok(liars)) => {
                if let Some(v) = self.validation.as_mut() {
                    // Settled: the other end owes nothing more (review 8b #3).
                    v.stage.open_pairs.remove(&pair);
                    v.stage.owed.remove(&(peer, from));
                }
                liars
            }
            // A wrong seed names the answerer (an honest client never sends one); the other
            // end's answer can still settle the pair.
            Some(Err(e)) => match e.culprit() {
                crate::validate::Culprit::Client(c) => alloc::vec![c],
                crate::validate::Culprit::Server => Vec::new(),
            },
            None => Vec::new(),
        };
        for id in liars {
            if self.active.contains(id) {
                self.mark_dropped(id, DropReason::Validation(ValidationKind::PairCommitment));
            }
        }
        let _ = now;
    }

    /// The disputes' deadline passed: a pair no answer settled loses both ends (§8.3: an
    /// honest end only because it did not answer either).
    fn settle_disputes(&mut self) {
        let Some(v) = self.validation.as_mut() else {
            return;
        };
        let open: Vec<(ClientId, ClientId)> = core::mem::take(&mut v.stage.open_pairs)
            .into_iter()
            .collect();
        v.stage.owed.clear();
        v.stage.disputes_open = false;
        for (u, w) in open {
            for id in [u, w] {
                if self.active.contains(id) {
                    self.mark_dropped(id, DropReason::Timeout);
                }
            }
        }
    }

    /// After unmasking (§8.5, §8.6, §6.4, rule E): keeps the rebuilt secrets, then looks for
    /// lies; none: the aggregate check and the release; some: an exclusion step.
    pub(super) fn after_validated_unmask(
        &mut self,
        secrets: Vec<(ClientId, bool, Zeroizing<[u8; 32]>)>,
    ) {
        if let Some(v) = self.validation.as_mut() {
            v.stage.rebuilt = secrets;
        }
        self.validation_step();
    }

    fn validation_step(&mut self) {
        match self.find_lies() {
            Err(a) => self.abort(a),
            Ok(lies) if lies.is_empty() => match self.aggregate_ok() {
                Ok(()) => self.release(),
                Err(a) => self.abort(a),
            },
            Ok(lies) => self.request_exclusions(lies),
        }
    }

    /// Every survivor's O_u and its P_uw with dropped neighbours recomputed from the rebuilt
    /// secrets; each survivor whose signed commitment differs is returned with the evidence of
    /// its lie (§8.5, §8.6).
    #[allow(clippy::type_complexity)]
    fn find_lies(
        &self,
    ) -> Result<Vec<(ClientId, ValidationKind, crate::validate::wire::Evidence)>, RoundAborted>
    {
        use crate::validate::wire::{DroppedPairEvidence, Evidence, Secret32, SelfMaskEvidence};
        let fail = |client: Option<ClientId>, check: &'static str| RoundAborted::Validation {
            client,
            check,
        };
        let (Some(v), Some(graph), Some(session), Some(u3)) = (
            self.validation.as_ref(),
            &self.graph,
            &self.session,
            &self.u3,
        ) else {
            return Err(fail(None, "round state"));
        };
        let ch = v
            .stage
            .challenge
            .as_ref()
            .ok_or_else(|| fail(None, "round state"))?;
        let ctx = ch
            .context(&self.config)
            .map_err(|_| fail(None, "round state"))?;
        let mut lies = Vec::new();
        for u in u3.iter() {
            let slot = &self.slots[u as usize];
            let (Some(r), Some(keys)) = (&slot.v.response, &slot.keys) else {
                return Err(fail(Some(u), "missing answer"));
            };
            let Some((true, b)) = v.stage.rebuilt(u) else {
                return Err(fail(Some(u), "missing self secret"));
            };
            let o = ctx
                .self_commitment(u, b)
                .map_err(|_| fail(Some(u), "self mask"))?;
            if CompressedRistretto(r.self_commitment).decompress() != Some(o) {
                let e = Evidence::SelfMask(alloc::boxed::Box::new(SelfMaskEvidence {
                    response: r.clone(),
                    self_secret: Secret32::new(**b),
                }));
                lies.push((u, ValidationKind::SelfMask, e));
                continue;
            }
            let nu = graph.neighbours(u);
            let members = r
                .masked_with(&nu)
                .ok_or_else(|| fail(Some(u), "response"))?;
            for w in members.into_iter().filter(|w| !u3.contains(*w)) {
                let Some((false, sk_w)) = v.stage.rebuilt(w) else {
                    return Err(fail(Some(w), "missing mask key"));
                };
                let seed = dropped_pair_seed(session, u, &keys.mask_pk, w, sk_w)
                    .ok_or_else(|| fail(Some(u), "pair commitment (dropped peer)"))?;
                let p = ctx
                    .pair_commitment(u, w, &seed)
                    .map_err(|_| fail(Some(u), "pair commitment (dropped peer)"))?;
                if r.pair_commitment_for(&nu, w) == Some(p.compress().to_bytes()) {
                    continue;
                }
                let (Some(hashes), Some(upload), Some(dropped)) = (
                    slot.v.hashes.clone(),
                    slot.masked_with.clone(),
                    self.slots[w as usize].keys.clone(),
                ) else {
                    return Err(fail(Some(u), "pair commitment (dropped peer)"));
                };
                let view = self.view_leaves(&nu);
                let e = Evidence::DroppedPair(alloc::boxed::Box::new(DroppedPairEvidence {
                    hashes,
                    view,
                    dropped_entry: dropped,
                    dropped_key: Secret32::new(**sk_w),
                    upload,
                    response: r.clone(),
                }));
                lies.push((u, ValidationKind::DroppedPair, e));
                break;
            }
        }
        Ok(lies)
    }

    /// The safety net (§6.4) over the current U3.
    fn aggregate_ok(&self) -> Result<(), RoundAborted> {
        let fail = |check: &'static str| RoundAborted::Validation {
            client: None,
            check,
        };
        let (Some(v), Some(graph), Some(session), Some(u3)) = (
            self.validation.as_ref(),
            &self.graph,
            &self.session,
            &self.u3,
        ) else {
            return Err(fail("round state"));
        };
        let mut c_sum = RistrettoPoint::default();
        let mut blind_sum = Scalar::ZERO;
        for u in u3.iter() {
            let slot = &self.slots[u as usize];
            let (Some(r), Some(c_u), Some(keys), Some((true, b))) = (
                &slot.v.response,
                &slot.v.c_u,
                &slot.keys,
                v.stage.rebuilt(u),
            ) else {
                return Err(fail("round state"));
            };
            let members = r
                .masked_with(&graph.neighbours(u))
                .ok_or_else(|| fail("round state"))?;
            let mut dropped_seeds = Vec::new();
            for w in members.into_iter().filter(|w| !u3.contains(*w)) {
                let Some((false, sk_w)) = v.stage.rebuilt(w) else {
                    return Err(fail("round state"));
                };
                let seed = dropped_pair_seed(session, u, &keys.mask_pk, w, sk_w)
                    .ok_or_else(|| fail("round state"))?;
                dropped_seeds.push((w, seed));
            }
            c_sum += c_u;
            blind_sum += binding::survivor_blinding(session, u, b, &dropped_seeds);
        }
        let released = self.acc.to_u64();
        match binding::aggregate_matches(&self.config, &c_sum, &released, &blind_sum) {
            Ok(true) => Ok(()),
            _ => Err(fail("aggregate commitment")),
        }
    }

    /// Rule E: asks the holders of each liar's mask-key shares (its neighbours still in U3, the
    /// liars excepted) to release them against the evidence, which each checks itself.
    fn request_exclusions(
        &mut self,
        lies: Vec<(ClientId, ValidationKind, crate::validate::wire::Evidence)>,
    ) {
        let Some(graph) = &self.graph else { return };
        let liars: Vec<ClientId> = lies.iter().map(|(l, _, _)| *l).collect();
        let mut out = Vec::new();
        let mut owed = BTreeSet::new();
        let mut excluding = Vec::new();
        for (liar, kind, evidence) in lies {
            let msg = ValidationServerMessage::ExclusionRequest(
                crate::validate::wire::ExclusionRequest { liar, evidence },
            )
            .encode();
            let holders: Vec<ClientId> = graph
                .neighbours(liar)
                .into_iter()
                .filter(|h| self.active.contains(*h) && !liars.contains(h))
                .collect();
            // Fewer holders than t cannot rebuild the key: abort now, not at the deadline
            // (review 8c #4).
            if holders.len() < self.config.threshold as usize {
                return self.abort(RoundAborted::CannotReconstruct {
                    owner: liar,
                    shares: holders.len(),
                    needed: self.config.threshold as usize,
                });
            }
            for h in holders {
                out.push((h, msg.clone()));
                owed.insert((h, liar));
            }
            excluding.push((liar, kind, Vec::new()));
        }
        self.outbox.extend(out);
        if let Some(v) = self.validation.as_mut() {
            v.stage.excluding = excluding;
            v.stage.exclusion_owed = owed;
        }
    }

    fn on_exclusion_share(&mut self, from: ClientId, s: crate::validate::wire::ExclusionShares) {
        let Some(v) = self.validation.as_mut() else {
            return;
        };
        if !v.stage.exclusion_owed.remove(&(from, s.liar)) || s.share.x != from {
            return;
        }
        if let Some((_, _, shares)) = v.stage.excluding.iter_mut().find(|(l, _, _)| *l == s.liar) {
            shares.push(s.share);
        }
    }

    /// The exclusion step's deadline or last share: rebuilds each liar's mask key, removes it
    /// from U3 (its upload subtracted, its self mask added back, its pair masks with the dropped
    /// added back and its survivors' pair masks with it removed), and checks again: a colluder
    /// whose lie is now exposed goes the same way (§8.5).
    pub(super) fn finish_exclusions(&mut self) {
        use crate::prg::{MaskSpec, Sign, apply_mask_specs};
        let Some(v) = self.validation.as_mut() else {
            return;
        };
        let excluding = core::mem::take(&mut v.stage.excluding);
        v.stage.exclusion_owed.clear();
        let (Some(graph), Some(session), Some(u3)) = (&self.graph, &self.session, &self.u3) else {
            return self.abort(RoundAborted::Validation {
                client: None,
                check: "round state",
            });
        };
        let t = self.config.threshold as usize;
        let liars: Vec<ClientId> = excluding.iter().map(|(l, _, _)| *l).collect();
        let mut keep = u3.clone();
        for l in &liars {
            keep.remove(*l);
        }
        let mut specs = Vec::new();
        let mut negated = Vec::new();
        let mut new_secrets = Vec::new();
        for (liar, _, shares) in &excluding {
            let slot = &self.slots[*liar as usize];
            let Some(keys) = slot.keys.as_ref() else {
                return self.abort(RoundAborted::InconsistentShares { owner: *liar });
            };
            let sk = match super::reconstruct_checked(shares, t, *liar, |sk| {
                DhKeyPair::from_secret_bytes(sk).public() == keys.mask_pk
            }) {
                Ok(sk) => sk,
                Err(a) => return self.abort(a),
            };
            let Some(stage) = self.validation.as_ref().map(|v| &v.stage) else {
                return self.abort(RoundAborted::Validation {
                    client: None,
                    check: "round state",
                });
            };
            let find = |id: ClientId| stage.rebuilt(id);
            let Some((true, b)) = find(*liar) else {
                return self.abort(RoundAborted::InconsistentShares { owner: *liar });
            };
            specs.push(MaskSpec {
                seed: crypto::self_mask_seed(b, session, *liar),
                sign: Sign::Plus,
            });
            let kp = DhKeyPair::from_secret_bytes(&sk);
            let members = slot
                .masked_with
                .as_ref()
                .and_then(|st| st.members(&graph.neighbours(*liar)))
                .unwrap_or_default();
            for w in members {
                if let Some((false, sk_w)) = find(w) {
                    // Its pair masks with the dropped were removed at unmask: added back.
                    let Some(seed) = dropped_pair_seed(session, *liar, &keys.mask_pk, w, sk_w)
                    else {
                        return self.abort(RoundAborted::InconsistentShares { owner: w });
                    };
                    specs.push(MaskSpec {
                        seed,
                        sign: if *liar < w { Sign::Plus } else { Sign::Minus },
                    });
                } else if keep.contains(w) {
                    // A survivor's pair mask with the liar no longer cancels: removed.
                    let Some(pk) = self.slots[w as usize].keys.as_ref().map(|k| k.mask_pk) else {
                        continue;
                    };
                    let Some(shared) = kp.agree(&pk) else {
                        return self.abort(RoundAborted::InconsistentShares { owner: *liar });
                    };
                    specs.push(MaskSpec {
                        seed: crypto::pairwise_seed(&shared, session, w, *liar),
                        sign: if w < *liar { Sign::Minus } else { Sign::Plus },
                    });
                }
            }
            let modulus = self.config.modulus();
            let Some(up) = slot.v.upload.as_ref() else {
                return self.abort(RoundAborted::InconsistentShares { owner: *liar });
            };
            let Ok(y) = modulus.unpack(up, self.config.dim as usize) else {
                return self.abort(RoundAborted::InconsistentShares { owner: *liar });
            };
            let neg: Vec<u64> = y
                .iter()
                .map(|x| x.wrapping_neg() & modulus.mask())
                .collect();
            negated.push(modulus.pack(&neg));
            new_secrets.push((*liar, sk));
        }
        let (modulus, prg) = (self.config.modulus(), self.config.prg);
        for neg in &negated {
            if self.acc.unpack_add(modulus, neg).is_err() {
                return self.abort(RoundAborted::Validation {
                    client: None,
                    check: "upload length",
                });
            }
        }
        match &mut self.acc {
            RingVec::U32(acc) => apply_mask_specs(acc, modulus, prg, &specs),
            RingVec::U64(acc) => apply_mask_specs(acc, modulus, prg, &specs),
        }
        for (liar, kind, _) in &excluding {
            if self.active.contains(*liar) {
                self.mark_dropped_at(*liar, Stage::Unmask, DropReason::Validation(*kind));
            } else if let Some(d) = self.dropouts.iter_mut().find(|d| d.id == *liar) {
                // It left during unmasking, but its lie is proven: that is why it is out
                // (review 8c #3).
                d.stage = Stage::Unmask;
                d.reason = DropReason::Validation(*kind);
            }
        }
        if let Some(v) = self.validation.as_mut() {
            for (liar, sk) in new_secrets {
                if let Ok(i) = v.stage.rebuilt.binary_search_by_key(&liar, |(o, _, _)| *o) {
                    v.stage.rebuilt[i] = (liar, false, sk);
                }
            }
        }
        let needed = self.config.min_clients as usize;
        if keep.len() < needed {
            return self.abort(RoundAborted::TooFewClients {
                stage: Stage::Unmask,
                remaining: keep.len(),
                needed,
            });
        }
        self.u3 = Some(keep);
        self.validation_step();
    }
}
