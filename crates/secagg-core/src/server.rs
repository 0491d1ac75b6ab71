//! The server's side of a round: a sans-IO state machine in the style of `quinn-proto`.
//!
//! The driver feeds it `handle_message(now, from, bytes)`, sends what `poll_outgoing()` yields,
//! and calls `handle_timeout(now)` once `poll_timeout()` has passed. A stage closes when every
//! client still in the round has answered or its deadline passes; clients that missed it are
//! dropouts. Masked inputs are added into one accumulator as they arrive (memory O(d) plus
//! O(n) metadata; the accumulator is `u32` words when b ≤ 32, see [`RingVec`]), and unmasking reconstructs secrets and removes masks in parallel when the
//! `parallel` feature is on.

use alloc::collections::{BTreeSet, VecDeque};
use alloc::format;
use alloc::string::ToString;
use alloc::vec;
use alloc::vec::Vec;

use zeroize::Zeroizing;

use crate::ClientId;
use crate::client::Roster;
use crate::config::RoundConfig;
use crate::crypto::{self, DhKeyPair, SessionId};
use crate::error::{Misbehaviour, RoundAborted, ServerError, Stage};
use crate::graph::Graph;
use crate::idset::IdSet;
use crate::messages::{
    ClientMessage, KeyEntry, MaskedWith, SHARE_CIPHERTEXT_LEN, ServerMessage, client_message_stage,
    consistency_signed_bytes,
};
use crate::params::ThreatModel;
use crate::prg::{MaskSpec, Sign, apply_mask_specs};
use crate::ring::RingVec;
use crate::shamir::{self, Share};

#[cfg(feature = "validate")]
mod validated;

/// Why a client left the round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DropReason {
    /// It did not answer before the stage closed.
    Timeout,
    /// It sent something invalid.
    Misbehaved(Misbehaviour),
    /// Its connection went away (reported by the driver).
    Disconnected,
    /// Validated rounds (VALIDATION.md §8.1): its proof was missing or did not verify. It is
    /// treated as a dropout at that stage; for [`ValidationKind::Norm`] its masked input never
    /// entered the sum (the proof is checked before the upload counts).
    Validation(ValidationKind),
}

/// Which validation check a client failed (VALIDATION.md §16's reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValidationKind {
    /// The norm proof at upload (statement N, §5.1): missing, malformed or not verifying.
    Norm,
    /// The binding answer to κ (§8.1): wrong κ, a bitmap other than the upload's, a bad
    /// signature or an undecodable response.
    Response,
    /// The binding proof (statement B, §5.2) does not verify.
    Binding,
    /// Lost a pair dispute (§8.3): its signed P_uv differs from the one the seed gives, or it
    /// answered with a seed that does not match the hash it signed.
    PairCommitment,
    /// Lied on its pair with a client outside U3 (§8.5): excluded after unmasking.
    DroppedPair,
    /// Lied on its self mask (§8.6, rule E): excluded after unmasking.
    SelfMask,
}

impl ValidationKind {
    /// The reason's name in reports (`validation: norm`).
    pub const fn name(self) -> &'static str {
        match self {
            ValidationKind::Norm => "norm",
            ValidationKind::Response => "response",
            ValidationKind::Binding => "binding",
            ValidationKind::PairCommitment => "pair commitment",
            ValidationKind::DroppedPair => "pair commitment (dropped peer)",
            ValidationKind::SelfMask => "self mask",
        }
    }
}

impl core::fmt::Display for ValidationKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "validation: {}", self.name())
    }
}

/// A client that left the round, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropout {
    /// Who.
    pub id: ClientId,
    /// The stage it did not complete.
    pub stage: Stage,
    /// Why.
    pub reason: DropReason,
}

/// What happened to a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Accepted for the current stage.
    Accepted,
    /// A retransmission for a stage the client already completed: ignored.
    IgnoredDuplicate,
    /// From a client already out of the round (dropped or timed out): ignored.
    IgnoredLate,
}

/// The end of a round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The sum of the inputs of `survivors`, mod 2^b.
    Released {
        /// Σ_{u ∈ U3} x_u mod 2^b.
        aggregate: Vec<u64>,
        /// U3: the clients whose inputs are in the aggregate.
        survivors: IdSet,
    },
    /// The round aborted and revealed nothing.
    Aborted(RoundAborted),
}

#[derive(Default)]
struct Slot {
    keys: Option<KeyEntry>,
    /// Ciphertexts this client sent, sorted by recipient.
    shares_out: Vec<(ClientId, Vec<u8>)>,
    /// Last stage this client completed.
    completed: Option<Stage>,
    dropped: bool,
    /// Shares others revealed of this client's self-mask seed (it is in U3).
    self_mask_shares: Vec<Share>,
    /// Shares others revealed of this client's mask key (it is in U2 \ U3).
    mask_key_shares: Vec<Share>,
    /// Malicious model: its signed statement of whom it masked with.
    masked_with: Option<MaskedWith>,
    /// Rejected after its masked input was summed: when and why, recorded when it leaves.
    deferred_drop: Option<(Stage, DropReason)>,
    /// Validated rounds: what the challenge stage and the checks after unmasking need.
    #[cfg(feature = "validate")]
    v: validated::SlotValidation,
}

/// The server's state for one round.
pub struct ServerRound {
    config: RoundConfig,
    roster: Option<Roster>,
    stage_timeout_ms: u64,
    stage: Stage,
    deadline: Option<u64>,
    slots: Vec<Slot>,
    /// Clients still in the round at the current stage.
    active: IdSet,
    u1: Option<IdSet>,
    u2: Option<IdSet>,
    u3: Option<IdSet>,
    session: Option<SessionId>,
    graph: Option<Graph>,
    acc: RingVec,
    signatures: Vec<(ClientId, [u8; 64])>,
    seen_keys: BTreeSet<[u8; 32]>,
    /// Clients whose connection went away after answering the current stage.
    gone: IdSet,
    /// (stage, id): every active client below `id` has answered `stage` (see `stage_complete`).
    settled: (Stage, ClientId),
    outbox: VecDeque<(ClientId, Vec<u8>)>,
    dropouts: Vec<Dropout>,
    outcome: Option<Outcome>,
    /// Validated rounds: the norm statement and the uploads whose proofs wait for the next
    /// batch verification (their vectors are not in the accumulator yet).
    #[cfg(feature = "validate")]
    validation: Option<ValidationState>,
}

/// Uploads of a validated round are verified in batches of this many (and whatever is left
/// when the stage closes) before they enter the sum (VALIDATION.md §21.1 D32): the buffered
/// vectors cost this many packed vectors of memory.
#[cfg(feature = "validate")]
pub const VALIDATION_BATCH: usize = 64;

#[cfg(feature = "validate")]
struct ValidationState {
    norm: secagg_zk::norm::NormParams,
    /// Secret input to the batch weights and κ ([`ServerRound::set_verifier_key`]).
    verifier_key: zeroize::Zeroizing<[u8; 32]>,
    /// Whether the driver set the key (a validated round does not challenge without it).
    key_set: bool,
    pending: Vec<PendingUpload>,
    /// The challenge stage and the pair cuts.
    stage: validated::StageState,
}

/// A masked input whose proof is not verified yet.
#[cfg(feature = "validate")]
struct PendingUpload {
    id: ClientId,
    vector: Vec<u8>,
    /// `None` when the proof was missing or did not decode.
    proof: Option<secagg_zk::norm::NormProof>,
}

impl core::fmt::Debug for ServerRound {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ServerRound")
            .field("round_id", &self.config.round_id)
            .field("stage", &self.stage)
            .field("active", &self.active.len())
            .finish()
    }
}

impl ServerRound {
    /// A round with `config`; `roster` is required when `config.pki` is set. Call
    /// [`ServerRound::start`] to invite the clients.
    pub fn new(
        config: RoundConfig,
        roster: Option<Roster>,
        stage_timeout_ms: u64,
    ) -> Result<Self, ServerError> {
        config
            .validate()
            .map_err(|_| ServerError::Misuse("invalid round config"))?;
        match (&roster, config.pki) {
            (Some(r), true) if r.len() == config.num_clients as usize => {
                if crate::client::roster_repeats_a_key(r) {
                    return Err(ServerError::Misuse(
                        "the roster lists one identity key at two ids",
                    ));
                }
            }
            (None, false) => {}
            _ => return Err(ServerError::Misuse("a PKI round needs a roster of n keys")),
        }
        #[cfg(feature = "validate")]
        let validation = match &config.validation {
            None => None,
            Some(_) => {
                crate::validate::round::check_round_config(&config)
                    .map_err(|_| ServerError::Misuse("invalid validation parameters"))?;
                let norm = crate::validate::round::norm_params(&config)
                    .map_err(|_| ServerError::Misuse("invalid validation parameters"))?;
                let wire = crate::validate::binding::wire_params(&config)
                    .map_err(|_| ServerError::Misuse("invalid validation parameters"))?;
                if config.model != ThreatModel::Malicious || roster.is_none() {
                    return Err(ServerError::Misuse(
                        "validated rounds need the malicious model with a roster",
                    ));
                }
                Some(ValidationState {
                    norm,
                    verifier_key: zeroize::Zeroizing::new([0; 32]),
                    key_set: false,
                    pending: Vec::new(),
                    stage: validated::StageState::new(wire),
                })
            }
        };
        #[cfg(not(feature = "validate"))]
        if config.validation.is_some() {
            return Err(ServerError::Misuse(
                "validated rounds need secagg-core's feature `validate`",
            ));
        }
        let n = config.num_clients;
        Ok(Self {
            acc: RingVec::zeros(config.modulus(), config.dim as usize),
            slots: (0..=n).map(|_| Slot::default()).collect(),
            active: IdSet::full(n),
            config,
            roster,
            stage_timeout_ms,
            stage: Stage::AdvertiseKeys,
            deadline: None,
            u1: None,
            u2: None,
            u3: None,
            session: None,
            graph: None,
            signatures: Vec::new(),
            seen_keys: BTreeSet::new(),
            gone: IdSet::empty(n),
            settled: (Stage::AdvertiseKeys, 1),
            outbox: VecDeque::new(),
            dropouts: Vec::new(),
            outcome: None,
            #[cfg(feature = "validate")]
            validation,
        })
    }

    /// Sends RoundStart to every invited client and starts the first stage's clock.
    pub fn start(&mut self, now: u64) {
        // A validated round cannot draw κ without the driver's secret key: refuse at once
        // rather than after every upload and norm proof (review 8b #8, D40).
        #[cfg(feature = "validate")]
        if self.validation.as_ref().is_some_and(|v| !v.key_set) {
            return self.abort(RoundAborted::Validation {
                client: None,
                check: "no verifier key: the driver must call set_verifier_key before start",
            });
        }
        let msg = ServerMessage::RoundStart(self.config.clone()).encode();
        for id in 1..=self.config.num_clients {
            self.outbox.push_back((id, msg.clone()));
        }
        self.deadline = Some(now.saturating_add(self.stage_timeout_ms));
    }

    /// The round's parameters.
    pub fn config(&self) -> &RoundConfig {
        &self.config
    }
    /// The current stage.
    pub fn stage(&self) -> Stage {
        self.stage
    }
    /// The session id, once U1 is fixed.
    pub fn session(&self) -> Option<&SessionId> {
        self.session.as_ref()
    }
    /// The neighbour graph, once U1 is fixed.
    pub fn graph(&self) -> Option<&Graph> {
        self.graph.as_ref()
    }
    /// Clients dropped so far, with stage and reason.
    pub fn dropouts(&self) -> &[Dropout] {
        &self.dropouts
    }
    /// Validated rounds: 32 secret bytes from a CSPRNG (the driver's: this state machine has
    /// no RNG) that key the random weights of the proofs' batch verification and the
    /// challenge κ, so that no client can predict them (VALIDATION.md §21.1 D26, D32, D38).
    /// **Required**: a validated round without it aborts when it would send the challenge.
    /// Call before the masked-input stage.
    #[cfg(feature = "validate")]
    pub fn set_verifier_key(&mut self, key: [u8; 32]) {
        if let Some(v) = self.validation.as_mut() {
            *v.verifier_key = key;
            v.key_set = true;
        }
    }
    /// Validated rounds: the clients rejected by a validation check (the dropouts with a
    /// [`DropReason::Validation`] reason), for the drivers' `rejected` lists.
    pub fn rejected(&self) -> impl Iterator<Item = (&Dropout, ValidationKind)> {
        self.dropouts.iter().filter_map(|d| match d.reason {
            DropReason::Validation(k) => Some((d, k)),
            _ => None,
        })
    }
    /// The result, once the round ended.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }
    /// Bytes the accumulator of masked inputs holds: d × 4 when b ≤ 32, d × 8 otherwise
    /// (it lives from [`ServerRound::new`] until the round ends).
    pub fn accumulator_bytes(&self) -> usize {
        self.acc.len() * self.acc.word_bytes()
    }
    /// Whether messages wait to be sent. A validated round can queue messages within a stage
    /// (dispute and exclusion requests): a driver that lets a stage's deadline pass when the
    /// stage did not change must first send these and hear the answers.
    pub fn has_outgoing(&self) -> bool {
        !self.outbox.is_empty()
    }
    /// The next message to send.
    pub fn poll_outgoing(&mut self) -> Option<(ClientId, Vec<u8>)> {
        self.outbox.pop_front()
    }
    /// When the current stage's deadline passes (None once the round ended).
    pub fn poll_timeout(&self) -> Option<u64> {
        if self.outcome.is_some() {
            None
        } else {
            self.deadline
        }
    }

    /// The driver lost its connection to `id`: it becomes a dropout now rather than at the
    /// deadline. If it already answered the current stage, that answer still counts and it
    /// drops out when the next stage opens.
    pub fn client_gone(&mut self, now: u64, id: ClientId) {
        if self.outcome.is_some() || !self.active.contains(id) {
            return;
        }
        let answered = self.slots[id as usize]
            .completed
            .is_some_and(|s| s >= self.stage);
        if answered {
            self.gone.insert(id);
            return;
        }
        self.mark_dropped(id, DropReason::Disconnected);
        if self.stage_complete() {
            self.close_stage(now);
        }
    }

    /// Drops the clients whose connections went away once a new stage has opened.
    fn drop_gone(&mut self, now: u64) {
        let gone: Vec<ClientId> = self
            .gone
            .iter()
            .filter(|id| self.active.contains(*id))
            .collect();
        if gone.is_empty() || self.outcome.is_some() {
            return;
        }
        for id in gone {
            match self.slots[id as usize].deferred_drop.take() {
                Some((stage, reason)) => self.mark_dropped_at(id, stage, reason),
                None => self.mark_dropped(id, DropReason::Disconnected),
            }
        }
        if self.stage_complete() {
            self.close_stage(now);
        }
    }

    /// Closes the current stage if its deadline has passed.
    pub fn handle_timeout(&mut self, now: u64) {
        if self.deadline.is_some_and(|d| now >= d) {
            self.close_stage(now);
        }
    }

    /// Handles one message from client `from`. A client error drops that client (the round
    /// goes on); the returned error says who and why.
    pub fn handle_message(
        &mut self,
        now: u64,
        from: ClientId,
        bytes: &[u8],
    ) -> Result<Handled, ServerError> {
        if self.outcome.is_some() {
            // Late or retransmitted messages after the end change nothing.
            return Ok(Handled::IgnoredLate);
        }
        if from == 0 || from > self.config.num_clients {
            return Err(ServerError::Client {
                id: from,
                reason: Misbehaviour::UnknownClient,
            });
        }
        let slot = &self.slots[from as usize];
        if slot.dropped || !self.active.contains(from) {
            return Ok(Handled::IgnoredLate);
        }
        #[cfg(feature = "validate")]
        if self.validation.is_some() && bytes.first() == Some(&crate::validate::wire::WIRE_VERSION)
        {
            return self.handle_validated(now, from, bytes);
        }
        // A retransmission of a stage this client already completed (possibly after the
        // server moved on) is ignored rather than held against it.
        let msg_stage = client_message_stage(bytes).unwrap_or(self.stage);
        if slot
            .completed
            .is_some_and(|s| s >= msg_stage.min(self.stage))
            && msg_stage <= self.stage
        {
            return Ok(Handled::IgnoredDuplicate);
        }
        let msg = match ClientMessage::decode(bytes, &self.config) {
            Ok(m) => m,
            Err(e) => return Err(self.drop_client(from, Misbehaviour::Malformed(e), now)),
        };
        let result = match (self.stage, msg) {
            (Stage::AdvertiseKeys, ClientMessage::AdvertiseKeys(e)) => self.on_keys(from, e),
            (Stage::ShareKeys, ClientMessage::EncryptedShares(list))
                if self.config.validation.is_none() =>
            {
                self.on_shares(from, list)
            }
            (
                Stage::MaskedInput,
                ClientMessage::MaskedInput {
                    vector,
                    proof,
                    masked_with,
                },
            ) => self.on_masked_input(from, vector, proof, masked_with),
            (Stage::ConsistencyCheck, ClientMessage::ConsistencySignature(sig)) => {
                self.on_signature(from, sig)
            }
            (
                Stage::Unmask,
                ClientMessage::UnmaskShares {
                    self_mask,
                    mask_key,
                },
            ) => self.on_unmask(from, self_mask, mask_key),
            (stage, m) => Err(Misbehaviour::UnexpectedMessage {
                stage,
                got: m.name(),
            }),
        };
        if let Err(reason) = result {
            return Err(self.drop_client(from, reason, now));
        }
        self.slots[from as usize].completed = Some(self.stage);
        #[cfg(feature = "validate")]
        if self
            .validation
            .as_ref()
            .is_some_and(|v| v.pending.len() >= VALIDATION_BATCH)
        {
            self.verify_pending();
        }
        if self.stage_complete() {
            self.close_stage(now);
        }
        Ok(Handled::Accepted)
    }

    fn stage_complete(&mut self) -> bool {
        #[cfg(feature = "validate")]
        if let Some(done) = self.disputes_complete() {
            return done;
        }
        // Within a stage answers are never withdrawn and no client rejoins, so the ids below
        // the first one still owing an answer stay settled: resume there (a scan from id 1 on
        // every message made a stage of n answers O(n²), seconds at n = 10^4).
        let (stage, from) = self.settled;
        let mut id = if stage == self.stage { from } else { 1 };
        while id <= self.config.num_clients {
            if self.active.contains(id)
                && self.slots[id as usize]
                    .completed
                    .is_none_or(|s| s < self.stage)
            {
                break;
            }
            id += 1;
        }
        self.settled = (self.stage, id);
        id > self.config.num_clients
    }

    /// Drops `id` for misbehaviour the driver detected (e.g. an invalid transport frame).
    pub fn reject(&mut self, now: u64, id: ClientId, reason: Misbehaviour) -> ServerError {
        if self.outcome.is_some() || !self.active.contains(id) {
            return ServerError::Client { id, reason };
        }
        self.drop_client(id, reason, now)
    }

    fn drop_client(&mut self, id: ClientId, reason: Misbehaviour, now: u64) -> ServerError {
        // A client whose masked input is already in the accumulator stays in U3 (its self
        // mask must be removed); it is dropped when the next stage opens, as when it goes away.
        if self.stage == Stage::MaskedInput
            && self.slots[id as usize]
                .completed
                .is_some_and(|s| s >= Stage::MaskedInput)
        {
            self.gone.insert(id);
            self.slots[id as usize].deferred_drop =
                Some((self.stage, DropReason::Misbehaved(reason.clone())));
            return ServerError::Client { id, reason };
        }
        self.mark_dropped(id, DropReason::Misbehaved(reason.clone()));
        if self.outcome.is_none() && self.stage_complete() {
            self.close_stage(now);
        }
        ServerError::Client { id, reason }
    }

    fn mark_dropped(&mut self, id: ClientId, reason: DropReason) {
        self.mark_dropped_at(id, self.stage, reason);
    }

    fn mark_dropped_at(&mut self, id: ClientId, stage: Stage, reason: DropReason) {
        if self.active.remove(id) {
            self.slots[id as usize].dropped = true;
            self.dropouts.push(Dropout { id, stage, reason });
        }
    }

    fn on_keys(&mut self, from: ClientId, e: KeyEntry) -> Result<(), Misbehaviour> {
        if e.id != from {
            return Err(Misbehaviour::UnknownClient);
        }
        if let Some(roster) = &self.roster {
            let msg = e.signed_bytes(&self.config.digest());
            let ok = match (&e.signature, roster.get(from as usize - 1)) {
                (Some(sig), Some(pk)) => crypto::verify(pk, &msg, sig),
                _ => false,
            };
            if !ok {
                return Err(Misbehaviour::BadSignature);
            }
        }
        // Reject keys another client already advertised (a copy lets a client cancel or
        // learn someone else's masks) and keys equal to each other. Low-order points are
        // checked in parallel when the stage closes.
        if e.enc_pk == e.mask_pk
            || self.seen_keys.contains(&e.enc_pk)
            || self.seen_keys.contains(&e.mask_pk)
        {
            return Err(Misbehaviour::BadKey);
        }
        self.seen_keys.insert(e.enc_pk);
        self.seen_keys.insert(e.mask_pk);
        self.slots[from as usize].keys = Some(e);
        Ok(())
    }

    fn on_shares(
        &mut self,
        from: ClientId,
        list: Vec<(ClientId, Vec<u8>)>,
    ) -> Result<(), Misbehaviour> {
        let graph = self.graph.as_ref().ok_or(Misbehaviour::UnexpectedMessage {
            stage: self.stage,
            got: "EncryptedShares",
        })?;
        let expected = graph.neighbours(from);
        if list.len() != expected.len()
            || list
                .iter()
                .zip(&expected)
                .any(|((to, ct), e)| to != e || ct.len() != SHARE_CIPHERTEXT_LEN)
        {
            return Err(Misbehaviour::BadRecipients);
        }
        self.slots[from as usize].shares_out = list;
        Ok(())
    }

    /// Checks the statement of whom the client masked with (malicious model) before its
    /// vector enters the accumulator.
    fn on_masked_input(
        &mut self,
        from: ClientId,
        vector: Vec<u8>,
        proof: Vec<u8>,
        masked_with: Option<MaskedWith>,
    ) -> Result<(), Misbehaviour> {
        let statement = if self.config.model == ThreatModel::Malicious {
            let (Some(st), Some(graph), Some(u2), Some(session), Some(roster)) = (
                masked_with,
                &self.graph,
                &self.u2,
                &self.session,
                &self.roster,
            ) else {
                return Err(Misbehaviour::BadMaskedWith);
            };
            let neighbours = graph.neighbours(from);
            // An honest client masked with exactly its neighbours in the U2 we sent it.
            let expected =
                MaskedWith::bitmap_of(&neighbours, |v| u2.contains(v) && !self.pair_cut(from, v));
            let signed = MaskedWith::signed_bytes(session, from, &st.bitmap);
            // rev9 fix: rule M from the server's side: a client left with fewer than t
            // neighbours to mask with (its own cuts) would make every holder refuse at unmask.
            let members = expected
                .iter()
                .map(|b| b.count_ones() as usize)
                .sum::<usize>();
            let valid = st.bitmap == expected
                && (self.config.validation.is_none() || members >= self.config.threshold as usize)
                && roster
                    .get(from as usize - 1)
                    .is_some_and(|pk| crypto::verify(pk, &signed, &st.signature));
            if !valid {
                return Err(Misbehaviour::BadMaskedWith);
            }
            Some(st)
        } else if masked_with.is_some() {
            return Err(Misbehaviour::BadMaskedWith);
        } else {
            None
        };
        #[cfg(feature = "validate")]
        if let Some(v) = self.validation.as_mut() {
            // The proof is checked (in a batch) before the upload counts; until then the
            // vector waits here, outside the sum. A missing or malformed proof fails then too.
            let proof = crate::validate::round::decode_upload_proof(&v.norm, &proof);
            v.pending.push(PendingUpload {
                id: from,
                vector,
                proof,
            });
            self.slots[from as usize].masked_with = statement;
            return Ok(());
        }
        // Plain rounds: the reserved proof field is not read.
        let _ = proof;
        self.acc
            .unpack_add(self.config.modulus(), &vector)
            .map_err(Misbehaviour::Malformed)?;
        self.slots[from as usize].masked_with = statement;
        Ok(())
    }

    /// Validated rounds: verifies the pending uploads' norm proofs in one batch; the vectors
    /// of those that verify enter the sum, the others' owners are dropped at the masked-input
    /// stage with [`ValidationKind::Norm`], as if they had never uploaded (their masks are
    /// removed as for any client that dropped before uploading).
    #[cfg(feature = "validate")]
    fn verify_pending(&mut self) {
        let Some(v) = self.validation.as_mut() else {
            return;
        };
        let pending = core::mem::take(&mut v.pending);
        if pending.is_empty() {
            return;
        }
        let valid: Vec<bool> = match &self.session {
            Some(session) => {
                let with_proof: Vec<(usize, crate::validate::round::PendingProof<'_>)> = pending
                    .iter()
                    .enumerate()
                    .filter_map(|(i, p)| {
                        p.proof.as_ref().map(|proof| {
                            (
                                i,
                                crate::validate::round::PendingProof {
                                    id: p.id,
                                    upload_hash: crate::validate::round::upload_hash(&p.vector),
                                    proof,
                                },
                            )
                        })
                    })
                    .collect();
                let (index, items): (Vec<usize>, Vec<_>) = with_proof.into_iter().unzip();
                let verdicts = crate::validate::round::verify_uploads(
                    &v.norm,
                    session,
                    &v.verifier_key,
                    &items,
                )
                .unwrap_or_else(|_| alloc::vec![false; items.len()]);
                let mut valid = alloc::vec![false; pending.len()];
                for (i, ok) in index.into_iter().zip(verdicts) {
                    valid[i] = ok;
                }
                valid
            }
            None => alloc::vec![false; pending.len()],
        };
        for (p, ok) in pending.into_iter().zip(valid) {
            // A client dropped meanwhile (a driver's reject) stays out. The verified upload
            // waits outside the sum until the challenge stage has decided who stays (§8.1).
            let kept = ok && self.active.contains(p.id);
            if kept {
                let slot = &mut self.slots[p.id as usize];
                slot.v.c_u = p.proof.as_ref().map(|q| *q.c_u());
                slot.v.upload = Some(p.vector);
            } else {
                self.mark_dropped_at(
                    p.id,
                    Stage::MaskedInput,
                    DropReason::Validation(ValidationKind::Norm),
                );
            }
        }
    }

    fn on_signature(&mut self, from: ClientId, sig: [u8; 64]) -> Result<(), Misbehaviour> {
        let (Some(session), Some(u3), Some(roster)) = (&self.session, &self.u3, &self.roster)
        else {
            return Err(Misbehaviour::UnexpectedMessage {
                stage: self.stage,
                got: "ConsistencySignature",
            });
        };
        let msg = consistency_signed_bytes(session, u3);
        match roster.get(from as usize - 1) {
            Some(pk) if crypto::verify(pk, &msg, &sig) => {
                self.signatures.push((from, sig));
                Ok(())
            }
            _ => Err(Misbehaviour::BadSignature),
        }
    }

    fn on_unmask(
        &mut self,
        from: ClientId,
        self_mask: Vec<(ClientId, Share)>,
        mask_key: Vec<(ClientId, Share)>,
    ) -> Result<(), Misbehaviour> {
        let (Some(graph), Some(u2), Some(u3)) = (&self.graph, &self.u2, &self.u3) else {
            return Err(Misbehaviour::UnexpectedMessage {
                stage: self.stage,
                got: "UnmaskShares",
            });
        };
        // Exactly: a b-share for each neighbour in U3 (and for itself), a key share for each
        // neighbour in U2 \ U3.
        let mut held: Vec<ClientId> = graph
            .neighbours(from)
            .into_iter()
            .filter(|v| u2.contains(*v))
            .collect();
        held.push(from);
        held.sort_unstable();
        let want_b = held.iter().filter(|v| u3.contains(**v));
        let want_s = held.iter().filter(|v| !u3.contains(**v));
        let same = |got: &[(ClientId, Share)], want: &mut dyn Iterator<Item = &ClientId>| {
            let mut g = got.iter();
            loop {
                match (g.next(), want.next()) {
                    (None, None) => return true,
                    (Some((o, s)), Some(w)) if o == w && s.x == from => {}
                    _ => return false,
                }
            }
        };
        if !same(&self_mask, &mut { want_b }) || !same(&mask_key, &mut { want_s }) {
            return Err(Misbehaviour::BadShare);
        }
        for (owner, s) in self_mask {
            self.slots[owner as usize].self_mask_shares.push(s);
        }
        for (owner, s) in mask_key {
            self.slots[owner as usize].mask_key_shares.push(s);
        }
        Ok(())
    }

    /// Ends the current stage now: whoever has not answered is a dropout.
    pub fn close_stage(&mut self, now: u64) {
        if self.outcome.is_some() {
            return;
        }
        // Validated rounds: the last batch of proofs, before the survivors are counted.
        #[cfg(feature = "validate")]
        if self.stage == Stage::MaskedInput {
            self.verify_pending();
        }
        let late: Vec<ClientId> = self
            .active
            .iter()
            .filter(|id| {
                self.slots[*id as usize]
                    .completed
                    .is_none_or(|s| s < self.stage)
            })
            .collect();
        for id in late {
            self.mark_dropped(id, DropReason::Timeout);
        }
        let remaining = self.active.len();
        let needed = self.config.min_clients as usize;
        if remaining < needed {
            return self.abort(RoundAborted::TooFewClients {
                stage: self.stage,
                remaining,
                needed,
            });
        }
        self.deadline = Some(now.saturating_add(self.stage_timeout_ms));
        match self.stage {
            Stage::AdvertiseKeys => {
                // Low-order keys would make every neighbour refuse: drop their owners now.
                let active: Vec<ClientId> = self.active.iter().collect();
                let slots = &self.slots;
                let bad_key = |id: &ClientId| {
                    slots[*id as usize]
                        .keys
                        .as_ref()
                        .is_none_or(|k| is_low_order(&k.enc_pk) || is_low_order(&k.mask_pk))
                };
                #[cfg(feature = "parallel")]
                let bad: Vec<ClientId> = {
                    use rayon::prelude::*;
                    active
                        .par_iter()
                        .copied()
                        .filter(|id| bad_key(id))
                        .collect()
                };
                #[cfg(not(feature = "parallel"))]
                let bad: Vec<ClientId> = active.iter().copied().filter(|id| bad_key(id)).collect();
                for id in bad {
                    self.mark_dropped(id, DropReason::Misbehaved(Misbehaviour::BadKey));
                }
                if self.active.len() < needed {
                    return self.abort(RoundAborted::TooFewClients {
                        stage: self.stage,
                        remaining: self.active.len(),
                        needed,
                    });
                }
                self.after_keys()
            }
            Stage::ShareKeys => self.after_shares(),
            Stage::MaskedInput => self.after_masked_input(),
            #[cfg(feature = "validate")]
            Stage::Validate => self.after_validate(),
            #[cfg(not(feature = "validate"))]
            Stage::Validate => {}
            Stage::ConsistencyCheck => self.after_consistency(),
            Stage::Unmask => self.finish(),
        }
        self.drop_gone(now);
    }

    fn abort(&mut self, reason: RoundAborted) {
        let msg = ServerMessage::Abort(reason.to_string()).encode();
        for id in self.active.iter() {
            self.outbox.push_back((id, msg.clone()));
        }
        // Nothing of the partial sum may leave the server.
        zeroize::Zeroize::zeroize(&mut self.acc);
        self.outcome = Some(Outcome::Aborted(reason));
        self.deadline = None;
    }

    fn after_keys(&mut self) {
        let u1 = self.active.clone();
        // Every member of U1 has keys (those without were dropped when the stage closed).
        let leaves: Vec<[u8; 32]> = u1
            .iter()
            .map(|u| {
                self.slots[u as usize]
                    .keys
                    .as_ref()
                    .map_or([0u8; 32], KeyEntry::leaf)
            })
            .collect();
        let tree = crate::merkle::Tree::new(leaves);
        let keys_root = tree.root();
        let session = self.config.session_id(&u1, &keys_root);
        let graph = Graph::new(self.config.graph, self.config.degree, &u1, &session);
        for (index, u) in u1.iter().enumerate() {
            let neighbours = graph
                .neighbours(u)
                .into_iter()
                .filter_map(|v| self.slots[v as usize].keys.clone())
                .collect();
            let msg = ServerMessage::NeighbourKeys {
                u1: u1.clone(),
                keys_root,
                key_path: tree.path(index),
                neighbours,
            };
            self.outbox.push_back((u, msg.encode()));
        }
        self.u1 = Some(u1);
        self.session = Some(session);
        self.graph = Some(graph);
        self.stage = Stage::ShareKeys;
    }

    fn after_shares(&mut self) {
        let u2 = self.active.clone();
        #[cfg(feature = "validate")]
        if self.validation.is_some() {
            self.route_validated_shares(&u2);
            self.u2 = Some(u2);
            self.stage = Stage::MaskedInput;
            return;
        }
        if let Some(graph) = &self.graph {
            for u in u2.iter() {
                let ciphertexts = graph
                    .neighbours(u)
                    .into_iter()
                    .filter(|v| u2.contains(*v))
                    .filter_map(|v| {
                        let out = &self.slots[v as usize].shares_out;
                        out.binary_search_by_key(&u, |(to, _)| *to)
                            .ok()
                            .map(|i| (v, out[i].1.clone()))
                    })
                    .collect();
                let msg = ServerMessage::SharesForYou {
                    u2: u2.clone(),
                    ciphertexts,
                };
                self.outbox.push_back((u, msg.encode()));
            }
        }
        // Ciphertexts are routed; the server keeps no copy.
        for s in &mut self.slots {
            s.shares_out = Vec::new();
        }
        self.u2 = Some(u2);
        self.stage = Stage::MaskedInput;
    }

    fn after_masked_input(&mut self) {
        #[cfg(feature = "validate")]
        if self.validation.is_some() {
            return self.send_challenge();
        }
        let u3 = self.active.clone();
        let msg = if self.config.model == ThreatModel::Malicious {
            self.stage = Stage::ConsistencyCheck;
            ServerMessage::ConsistencyRequest { u3: u3.clone() }
        } else {
            self.stage = Stage::Unmask;
            ServerMessage::UnmaskRequest {
                u3: u3.clone(),
                signatures: Vec::new(),
                statements: Vec::new(),
            }
        };
        let bytes = msg.encode();
        for id in u3.iter() {
            self.outbox.push_back((id, bytes.clone()));
        }
        self.u3 = Some(u3);
    }

    fn after_consistency(&mut self) {
        let (Some(u3), Some(graph)) = (self.u3.clone(), self.graph.as_ref()) else {
            return;
        };
        self.signatures.sort_unstable_by_key(|(id, _)| *id);
        // Each client gets the masked-with statements of its neighbours in U3 (rule M).
        for id in self.active.iter() {
            let statements = graph
                .neighbours(id)
                .into_iter()
                .filter(|v| u3.contains(*v))
                .filter_map(|v| self.slots[v as usize].masked_with.clone().map(|s| (v, s)))
                .collect();
            let msg = ServerMessage::UnmaskRequest {
                u3: u3.clone(),
                signatures: self.signatures.clone(),
                statements,
            }
            .encode();
            self.outbox.push_back((id, msg));
        }
        self.stage = Stage::Unmask;
    }

    /// Whether the pair (u, v) was cut at the share stage (validated rounds, §8.3).
    fn pair_cut(&self, u: ClientId, v: ClientId) -> bool {
        #[cfg(feature = "validate")]
        {
            self.validation
                .as_ref()
                .is_some_and(|s| s.stage.is_cut(u, v))
        }
        #[cfg(not(feature = "validate"))]
        {
            let _ = (u, v);
            false
        }
    }

    fn finish(&mut self) {
        #[cfg(feature = "validate")]
        if self
            .validation
            .as_ref()
            .is_some_and(|v| v.stage.excluding())
        {
            return self.finish_exclusions();
        }
        match self.unmask() {
            #[cfg(feature = "validate")]
            Ok(secrets) if self.validation.is_some() => self.after_validated_unmask(secrets),
            Ok(_) => self.release(),
            Err(reason) => self.abort(reason),
        }
    }

    /// Sends Done and releases the aggregate of U3.
    fn release(&mut self) {
        let survivors = self.u3.clone().unwrap_or_else(|| IdSet::empty(0));
        let done = ServerMessage::Done.encode();
        for id in self.active.iter() {
            self.outbox.push_back((id, done.clone()));
        }
        self.outcome = Some(Outcome::Released {
            aggregate: core::mem::replace(&mut self.acc, RingVec::U64(Vec::new())).into_u64(),
            survivors,
        });
        self.deadline = None;
    }

    /// Reconstructs the secrets and removes every mask that does not cancel. Returns the
    /// rebuilt secrets (owner, survived, b_u or sk_u) for the validated rounds' checks.
    #[allow(clippy::type_complexity)]
    fn unmask(&mut self) -> Result<Vec<(ClientId, bool, Zeroizing<[u8; 32]>)>, RoundAborted> {
        let (Some(u2), Some(u3), Some(graph), Some(session)) =
            (&self.u2, &self.u3, &self.graph, &self.session)
        else {
            return Err(RoundAborted::TooFewClients {
                stage: Stage::Unmask,
                remaining: 0,
                needed: self.config.min_clients as usize,
            });
        };
        let t = self.config.threshold as usize;
        let round_id = self.config.round_id;
        // One job per secret: b_u for survivors, the mask key for clients in U2 \ U3.
        let jobs: Vec<(ClientId, bool)> = u2.iter().map(|id| (id, u3.contains(id))).collect();
        let slots = &self.slots;
        type Work = Result<(Vec<MaskSpec>, Zeroizing<[u8; 32]>), RoundAborted>;
        let work = |&(owner, survived): &(ClientId, bool)| -> Work {
            let slot = &slots[owner as usize];
            let keys = slot
                .keys
                .as_ref()
                .ok_or(RoundAborted::InconsistentShares { owner })?;
            if survived {
                let b = reconstruct_checked(&slot.self_mask_shares, t, owner, |b| {
                    crypto::commit_self_secret(b, round_id, owner) == keys.commitment
                })?;
                Ok((
                    vec![MaskSpec {
                        seed: crypto::self_mask_seed(&b, session, owner),
                        sign: Sign::Minus,
                    }],
                    b,
                ))
            } else {
                let sk = reconstruct_checked(&slot.mask_key_shares, t, owner, |sk| {
                    DhKeyPair::from_secret_bytes(sk).public() == keys.mask_pk
                })?;
                let kp = DhKeyPair::from_secret_bytes(&sk);
                let mut specs = Vec::new();
                // Only survivors that masked with `owner`: by their signed statement in the
                // malicious model (a validated round's cut pair is in no one's; review 8b #1).
                let masked_with_owner = |u: ClientId| {
                    slots[u as usize]
                        .masked_with
                        .as_ref()
                        .and_then(|st| st.members(&graph.neighbours(u)))
                        .is_none_or(|m| m.contains(&owner))
                };
                for u in graph
                    .neighbours(owner)
                    .into_iter()
                    .filter(|u| u3.contains(*u) && masked_with_owner(*u))
                {
                    let Some(pk) = slots[u as usize].keys.as_ref().map(|k| k.mask_pk) else {
                        continue;
                    };
                    // Keys were checked for low order when advertised.
                    let shared = kp
                        .agree(&pk)
                        .ok_or(RoundAborted::InconsistentShares { owner })?;
                    let added = if u < owner { Sign::Plus } else { Sign::Minus };
                    specs.push(MaskSpec {
                        seed: crypto::pairwise_seed(&shared, session, u, owner),
                        sign: added.flip(),
                    });
                }
                Ok((specs, sk))
            }
        };
        #[cfg(feature = "parallel")]
        let results: Vec<Work> = {
            use rayon::prelude::*;
            jobs.par_iter().map(work).collect()
        };
        #[cfg(not(feature = "parallel"))]
        let results: Vec<Work> = jobs.iter().map(work).collect();
        let mut specs = Vec::new();
        let mut secrets = Vec::with_capacity(jobs.len());
        for (r, (owner, survived)) in results.into_iter().zip(&jobs) {
            let (s, secret) = r?;
            specs.extend(s);
            secrets.push((*owner, *survived, secret));
        }
        let (modulus, prg) = (self.config.modulus(), self.config.prg);
        match &mut self.acc {
            RingVec::U32(acc) => apply_mask_specs(acc, modulus, prg, &specs),
            RingVec::U64(acc) => apply_mask_specs(acc, modulus, prg, &specs),
        }
        Ok(secrets)
    }
}

/// Reconstructs from t shares and checks the result against the owner's commitment. If that
/// fails (a holder sent a bad share), decodes the shares as a Reed–Solomon codeword
/// ([`shamir::reconstruct_robust`]): with m shares up to ⌊(m − t)/2⌋ bad ones are corrected,
/// so bad shares cannot force a wrong sum or, when enough good shares arrived, an abort.
fn reconstruct_checked(
    shares: &[Share],
    t: usize,
    owner: ClientId,
    check: impl Fn(&[u8; 32]) -> bool,
) -> Result<Zeroizing<[u8; 32]>, RoundAborted> {
    if shares.len() < t {
        return Err(RoundAborted::CannotReconstruct {
            owner,
            shares: shares.len(),
            needed: t,
        });
    }
    shamir::reconstruct_robust(shares, t, check)
        .map_err(|_| RoundAborted::InconsistentShares { owner })
}

/// The u-coordinates whose X25519 result is all zero for every clamped scalar (libsodium's
/// list): the points of small order on Curve25519 and its twist (0, 1, p − 1 and the two of
/// order 8), and p and p + 1, the non-canonical encodings of 0 and 1. Bit 255 is ignored, as
/// X25519 ignores it. Little-endian.
const LOW_ORDER: [[u8; 32]; 7] = {
    let mut l = [[0u8; 32]; 7];
    l[1][0] = 1;
    l[2] = [
        0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4,
        0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49,
        0xb8, 0x00,
    ];
    l[3] = [
        0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef,
        0x5b, 0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f,
        0x11, 0x57,
    ];
    let mut i = 4;
    while i < 7 {
        // p − 1, p, p + 1 with p = 2^255 − 19.
        l[i] = [0xff; 32];
        l[i][0] = 0xec + (i as u8 - 4);
        l[i][31] = 0x7f;
        i += 1;
    }
    l
};

/// Whether an X25519 public key is one of the points whose shared secret is always zero. A
/// comparison with [`LOW_ORDER`] (keys are public: no need for constant time) rather than an
/// X25519 per key, which cost the server a CPU-second per 10^4 clients.
fn is_low_order(pk: &[u8; 32]) -> bool {
    let mut u = *pk;
    u[31] &= 0x7f;
    LOW_ORDER.contains(&u)
}

/// A printable reason, for logs.
pub fn describe_dropout(d: &Dropout) -> alloc::string::String {
    match &d.reason {
        DropReason::Timeout => format!("client {} timed out at stage {}", d.id, d.stage),
        DropReason::Misbehaved(m) => format!("client {} dropped at stage {}: {m}", d.id, d.stage),
        DropReason::Disconnected => format!("client {} disconnected at stage {}", d.id, d.stage),
        DropReason::Validation(k) => format!("client {} rejected at stage {}: {k}", d.id, d.stage),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::{GraphKind, PrgKind};

    fn config(bits: u8, dim: u32) -> RoundConfig {
        RoundConfig {
            round_id: 1,
            round_seed: [1; 32],
            num_clients: 4,
            min_clients: 3,
            degree: 3,
            threshold: 2,
            graph: GraphKind::Complete,
            bits,
            dim,
            prg: PrgKind::Aes128Ctr,
            model: ThreatModel::HonestButCurious,
            pki: false,
            encoding: Vec::new(),
            validation: None,
        }
    }

    /// The list agrees with its definition: a key is low order iff X25519 with it gives zero
    /// (any clamped scalar), on the listed keys, edge values and random keys, bit 255 either way.
    #[test]
    fn low_order_list_matches_x25519() {
        use rand_core::{Rng, SeedableRng};
        let by_x25519 = |pk: &[u8; 32]| x25519_dalek::x25519([0x42; 32], *pk) == [0u8; 32];
        let mut keys: alloc::vec::Vec<[u8; 32]> = LOW_ORDER.to_vec();
        for v in 0..=64u8 {
            let mut k = [0u8; 32];
            k[0] = v;
            keys.push(k);
            let mut hi = [0xff; 32];
            hi[31] = 0x7f;
            hi[0] = 0xff - v;
            keys.push(hi);
        }
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        for _ in 0..2000 {
            let mut k = [0u8; 32];
            rng.fill_bytes(&mut k);
            keys.push(k);
        }
        let mut low = 0;
        for k in keys {
            for top in [0u8, 0x80] {
                let mut k = k;
                k[31] = (k[31] & 0x7f) | top;
                assert_eq!(is_low_order(&k), by_x25519(&k), "key {k:02x?}");
                low += usize::from(is_low_order(&k));
            }
        }
        // Each listed key (with bit 255 clear and set) and nothing else among the others.
        assert!(low >= 14);
    }

    #[test]
    fn accumulator_word_follows_the_modulus() {
        for (bits, word) in [(1u8, 4usize), (20, 4), (32, 4), (33, 8), (64, 8)] {
            let s = ServerRound::new(config(bits, 1000), None, 10).unwrap();
            assert_eq!(s.accumulator_bytes(), 1000 * word, "b = {bits}");
        }
    }
}
