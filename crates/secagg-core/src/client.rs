//! The client's side of a round as a typestate machine: each stage's handler consumes the
//! state and returns the next one with the bytes to send, so no check can be skipped and no
//! stage can be answered twice (which is what keeps an honest client from ever revealing both
//! secrets of one peer).
//!
//! ```text
//! Client ─start(RoundStart)→ AwaitingNeighbours ─(NeighbourKeys)→ AwaitingShares
//!   ─(SharesForYou)→ AwaitingUnmask ─(UnmaskRequest)→ done
//!                    or, in the malicious model, AwaitingConsistency ─(ConsistencyRequest)→ AwaitingUnmask
//! ```
//! [`ClientRound`] wraps the states in one enum for drivers that hold a client in a field, and
//! saves and restores it as bytes ([`ClientRound::export_state`], [`ClientRound::import_state`])
//! for drivers that cannot keep it in memory between messages.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::ClientId;
use crate::config::RoundConfig;
use crate::crypto::{self, DhKeyPair, IdentityKey, SessionId};
use crate::error::ClientError;
use crate::graph::Graph;
use crate::idset::IdSet;
use crate::messages::{
    ClientMessage, KeyEntry, MaskedWith, SHARE_BUNDLE_LEN, ServerMessage, consistency_signed_bytes,
};
use crate::params::{self, Assumptions, ParamError, ThreatModel};
use crate::prg::{MaskStream, Sign, apply_masks};
use crate::shamir::{self, SHARE_LEN, Share};

mod state;
pub use state::{ExportedState, STATE_MAGIC, STATE_VERSION, VALIDATED_STATE_VERSION};
mod stream;
pub use stream::{MaskedInputStream, StreamedClient};
#[cfg(feature = "validate")]
mod validated;

/// Identity public keys of all clients, indexed by id - 1 (the PKI).
pub type Roster = Vec<[u8; 32]>;

/// Whether a roster lists one identity key at two ids (one party would be several clients,
/// e.g. every neighbour of a victim). Both the client and the server refuse such a roster.
pub fn roster_repeats_a_key(roster: &[[u8; 32]]) -> bool {
    let mut keys = roster.to_vec();
    keys.sort_unstable();
    keys.windows(2).any(|w| w[0] == w[1])
}

/// What a client accepts. Anything else makes it refuse before revealing anything.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Required threat model: a client that asks for the malicious model refuses a round
    /// announced as honest-but-curious.
    pub min_model: ThreatModel,
    /// Smallest acceptable threshold as a fraction of the degree (e.g. 0.5); 0 accepts any
    /// threshold the round's validation accepts.
    pub min_threshold_fraction: f64,
    /// Smallest acceptable min_clients.
    pub min_clients: u32,
    /// The client's own assumptions (fractions of corrupt and dropped clients): the announced
    /// (k, t, min_clients) must pass [`params::check_round`] under them, the same check the
    /// planner runs. `None` skips it, except that a client requiring the malicious model
    /// always checks, with [`Assumptions::default`]'s fractions when none are given.
    pub assumptions: Option<Assumptions>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            min_model: ThreatModel::HonestButCurious,
            min_threshold_fraction: 0.0,
            min_clients: 2,
            assumptions: None,
        }
    }
}

impl Policy {
    /// A client that requires the malicious-server model and checks every round's
    /// parameters against `corrupt_fraction` and `dropout_fraction`.
    pub fn malicious(corrupt_fraction: f64, dropout_fraction: f64) -> Self {
        Self {
            min_model: ThreatModel::Malicious,
            assumptions: Some(Assumptions {
                corrupt_fraction,
                dropout_fraction,
                model: ThreatModel::Malicious,
            }),
            ..Self::default()
        }
    }

    /// The assumptions to check a round against, if any.
    fn effective_assumptions(&self) -> Option<Assumptions> {
        let malicious = self.min_model == ThreatModel::Malicious
            || self
                .assumptions
                .is_some_and(|a| a.model == ThreatModel::Malicious);
        match (self.assumptions, malicious) {
            (Some(a), m) => Some(Assumptions {
                model: if m {
                    ThreatModel::Malicious
                } else {
                    ThreatModel::HonestButCurious
                },
                ..a
            }),
            (None, true) => Some(Assumptions {
                model: ThreatModel::Malicious,
                ..Assumptions::default()
            }),
            (None, false) => None,
        }
    }
}

/// A client before its round starts.
pub struct Client {
    id: ClientId,
    input: Vec<u64>,
    identity: Option<IdentityKey>,
    roster: Option<Roster>,
    policy: Policy,
    #[cfg(feature = "cheats")]
    cheat: Option<crate::cheat::Cheat>,
}

impl core::fmt::Debug for Client {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .field("input", &"<redacted>")
            .finish()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.input);
    }
}

/// What every stage after the start knows: the round and who the client is. The secrets live
/// in the stage structs, each only as long as a later stage needs it.
struct Common {
    id: ClientId,
    config: RoundConfig,
    identity: Option<IdentityKey>,
    roster: Option<Roster>,
    /// Test-only deviation (feature `cheats`; not saved with the state).
    #[cfg(feature = "cheats")]
    cheat: Option<crate::cheat::Cheat>,
}

impl Common {
    /// The test-only deviation, if any.
    #[cfg(feature = "cheats")]
    fn cheat(&self) -> Option<&crate::cheat::Cheat> {
        self.cheat.as_ref()
    }
}

fn refuse<T>(what: String) -> Result<T, ClientError> {
    Err(ClientError::ServerMisbehaved(what))
}

fn expect_message(bytes: &[u8], config: &RoundConfig) -> Result<ServerMessage, ClientError> {
    match ServerMessage::decode(bytes, Some(config))? {
        ServerMessage::Abort(reason) => Err(ClientError::RoundAborted(reason)),
        m => Ok(m),
    }
}

impl Client {
    /// A client with id `id` (1-based, assigned by the server or the roster) and its input,
    /// already encoded in Z_2^b (see [`crate::encoding`]).
    pub fn new(id: ClientId, input: Vec<u64>) -> Self {
        Self {
            id,
            input,
            identity: None,
            roster: None,
            policy: Policy::default(),
            #[cfg(feature = "cheats")]
            cheat: None,
        }
    }

    /// Test-only: makes this client deviate in a validated round (feature `cheats`).
    #[cfg(feature = "cheats")]
    #[doc(hidden)]
    pub fn with_cheat(mut self, cheat: crate::cheat::Cheat) -> Self {
        self.cheat = Some(cheat);
        self
    }

    /// Signs with `identity` and checks peers against `roster` (the PKI).
    pub fn with_pki(mut self, identity: IdentityKey, roster: Roster) -> Self {
        self.identity = Some(identity);
        self.roster = Some(roster);
        self
    }

    /// Sets what the client accepts.
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Handles the server's RoundStart: checks the parameters and advertises fresh keys.
    pub fn start<R: CryptoRng + ?Sized>(
        mut self,
        round_start: &[u8],
        rng: &mut R,
    ) -> Result<(AwaitingNeighbours, Vec<u8>), ClientError> {
        let config = match ServerMessage::decode(round_start, None)? {
            ServerMessage::RoundStart(c) => c,
            ServerMessage::Abort(r) => return Err(ClientError::RoundAborted(r)),
            _ => return Err(ClientError::UnexpectedMessage("expected RoundStart")),
        };
        self.check_config(&config)?;
        let enc = DhKeyPair::generate(rng);
        let mask = DhKeyPair::generate(rng);
        let self_seed = Zeroizing::new(crypto::random_array::<R, 32>(rng));
        let mut entry = own_entry(self.id, &config, &enc, &mask, &self_seed);
        if let Some(idk) = &self.identity {
            entry.signature = Some(idk.sign(&entry.signed_bytes(&config.digest())));
        }
        let input = Zeroizing::new(core::mem::take(&mut self.input));
        let common = Common {
            id: self.id,
            config,
            identity: self.identity.take(),
            roster: self.roster.take(),
            #[cfg(feature = "cheats")]
            cheat: self.cheat.take(),
        };
        Ok((
            AwaitingNeighbours {
                common,
                input,
                enc,
                mask,
                self_seed,
            },
            ClientMessage::AdvertiseKeys(entry).encode(),
        ))
    }

    fn check_config(&self, c: &RoundConfig) -> Result<(), ClientError> {
        let bad = |m: String| Err(ClientError::BadParameters(m));
        c.validate().map_err(ClientError::BadParameters)?;
        if self.id == 0 || self.id > c.num_clients {
            return bad(format!(
                "my id {} is outside 1..={}",
                self.id, c.num_clients
            ));
        }
        if c.dim as usize != self.input.len() {
            return bad(format!(
                "the round sums vectors of length {}, my input has {}",
                c.dim,
                self.input.len()
            ));
        }
        if self.input.iter().any(|x| *x > c.modulus().mask()) {
            return bad(format!("my input has elements ≥ 2^{}", c.bits));
        }
        if c.validation.is_some() {
            check_validation(c, &self.input)?;
        }
        if self.policy.min_model == ThreatModel::Malicious && c.model != ThreatModel::Malicious {
            return bad(String::from(
                "my policy requires the malicious-server model (consistency check)",
            ));
        }
        let needed = self.policy.min_threshold_fraction * c.degree as f64;
        // A NaN fraction is unordered and refuses, rather than disabling the check.
        if (c.threshold as f64)
            .partial_cmp(&needed)
            .is_none_or(|o| o.is_lt())
        {
            return bad(format!(
                "threshold {} is below my policy's {} × degree {}",
                c.threshold, self.policy.min_threshold_fraction, c.degree
            ));
        }
        if c.min_clients < self.policy.min_clients {
            return bad(format!(
                "min_clients {} is below my policy's {}",
                c.min_clients, self.policy.min_clients
            ));
        }
        if let Some(a) = self.policy.effective_assumptions() {
            let complete = c.graph == crate::GraphKind::Complete;
            match params::check_round(
                c.num_clients,
                complete,
                c.degree,
                c.threshold,
                c.min_clients,
                &a,
            ) {
                Ok(_warnings) => {}
                Err(ParamError::Insecure(m) | ParamError::Invalid(m))
                | Err(ParamError::Infeasible(m) | ParamError::NoParameters(m)) => {
                    return bad(format!(
                        "under my assumptions ({}% corrupt, {}% dropouts, {:?} server): {m}",
                        a.corrupt_fraction * 100.0,
                        a.dropout_fraction * 100.0,
                        a.model
                    ));
                }
            }
        }
        if self.roster.as_deref().is_some_and(roster_repeats_a_key) {
            return bad(String::from(
                "my roster lists one identity key at two ids (one party would be several \
                 neighbours)",
            ));
        }
        match (&self.identity, &self.roster, c.pki) {
            (Some(_), Some(roster), true) if roster.len() != c.num_clients as usize => {
                return bad(format!(
                    "the roster has {} clients, the round {}",
                    roster.len(),
                    c.num_clients
                ));
            }
            (Some(_), Some(_), true) if c.model != ThreatModel::Malicious => {
                return bad(String::from(
                    "the round uses my identity key but is honest-but-curious: without the \
                     consistency check a deviating server could collect both secrets of a peer, \
                     so a client with an identity takes part only in malicious-model rounds",
                ));
            }
            (Some(_), Some(_), true) => {}
            (None, _, true) | (_, None, true) => {
                return bad(String::from(
                    "the round needs a PKI and I have no identity/roster",
                ));
            }
            (Some(_), Some(_), false) => {
                return bad(String::from(
                    "I have a PKI but the round does not use it (key substitution possible)",
                ));
            }
            _ => {}
        }
        Ok(())
    }
}

/// A validated round (VALIDATION.md §5.3–§5.4): the configuration check of §5.3 with this
/// client's J_cap, and the local refusal of an input above the bound, before any key is
/// advertised (the error names both norms and is never sent, F12). The input is the encoded
/// one; a streamed client (empty input here) refuses validated rounds at its start.
#[cfg(feature = "validate")]
fn check_validation(c: &RoundConfig, input: &[u64]) -> Result<(), ClientError> {
    let bad = |m: String| Err(ClientError::BadParameters(m));
    if let Err(e) = crate::validate::round::check_round_config(c) {
        return bad(format!("{e}"));
    }
    let Some(v) = &c.validation else {
        return Ok(());
    };
    let x = match crate::validate::commit::signed_input(c.modulus(), input) {
        Ok(x) => Zeroizing::new(x),
        Err(_) => {
            return bad(String::from(
                "my encoded input has an element at 2^(b-1), which no validated round accepts",
            ));
        }
    };
    let norm_sq = x.iter().fold(0u128, |acc, v| {
        let a = u128::from(v.unsigned_abs());
        acc.saturating_add(a * a)
    });
    if norm_sq > u128::from(v.bound_sq) {
        return bad(format!(
            "my encoded input's squared L2 norm {norm_sq} exceeds the round's bound {} (this \
             stays local: nothing about the norm is sent)",
            v.bound_sq
        ));
    }
    // A weight bound in a round of raw integers (empty encoding) would make the refusal below
    // an oracle on the last value, for a W the server chose (review rev10, W2): refused before
    // the value is looked at. Drivers of encoded rounds check W against their encoding.
    if v.max_weight.is_some() && c.encoding.is_empty() {
        return bad(String::from(
            "the round bounds a weight coordinate, but its inputs are raw integers (no encoding \
             with a weight)",
        ));
    }
    if let Some(w) = v.max_weight
        && !x
            .last()
            .is_some_and(|x_w| (0..=i128::from(w)).contains(&i128::from(*x_w)))
    {
        return bad(format!(
            "my encoded input's weight (its last value) is outside the round's range [0, {w}]"
        ));
    }
    Ok(())
}

/// Without feature `validate` a client cannot prove its input's norm: it refuses every
/// validated round (wire version 3) at its start.
#[cfg(not(feature = "validate"))]
fn check_validation(_c: &RoundConfig, _input: &[u64]) -> Result<(), ClientError> {
    Err(ClientError::BadParameters(String::from(
        "the round validates inputs (wire version 3), and this build has no norm prover \
         (secagg-core's feature `validate`)",
    )))
}

/// Waiting for the neighbours' keys.
pub struct AwaitingNeighbours {
    common: Common,
    input: Zeroizing<Vec<u64>>,
    enc: DhKeyPair,
    mask: DhKeyPair,
    self_seed: Zeroizing<[u8; 32]>,
}

/// A neighbour in U1 whose keys the client accepted.
struct Peer {
    id: ClientId,
    enc_shared: Zeroizing<[u8; 32]>,
    mask_shared: Zeroizing<[u8; 32]>,
    /// [`crypto::pair_binding`] of both key entries as this client saw them.
    binding: [u8; 32],
}

/// This client's key entry (unsigned) for `config`.
fn own_entry(
    id: ClientId,
    config: &RoundConfig,
    enc: &DhKeyPair,
    mask: &DhKeyPair,
    self_seed: &[u8; 32],
) -> KeyEntry {
    KeyEntry {
        id,
        enc_pk: enc.public(),
        mask_pk: mask.public(),
        commitment: crypto::commit_self_secret(self_seed, config.round_id, id),
        signature: None,
    }
}

impl AwaitingNeighbours {
    /// The round's parameters.
    pub fn config(&self) -> &RoundConfig {
        &self.common.config
    }

    /// Handles NeighbourKeys: checks U1, the Merkle path of its own keys, the graph and every
    /// key (and signature), then sends each neighbour its encrypted shares of the mask key and
    /// the self-mask seed. The split randomness is derived from the client's secrets
    /// ([`crypto::share_split_rng`]); `_rng` is kept so every stage takes the same arguments.
    pub fn handle<R: CryptoRng + ?Sized>(
        self,
        bytes: &[u8],
        _rng: &mut R,
    ) -> Result<(AwaitingShares, Vec<u8>), ClientError> {
        let c = &self.common;
        let (u1, keys_root, key_path, entries) = match expect_message(bytes, &c.config)? {
            ServerMessage::NeighbourKeys {
                u1,
                keys_root,
                key_path,
                neighbours,
            } => (u1, keys_root, key_path, neighbours),
            _ => return Err(ClientError::UnexpectedMessage("expected NeighbourKeys")),
        };
        if !u1.contains(c.id) {
            return refuse(String::from("left me out of U1 although I advertised keys"));
        }
        if (u1.len() as u32) < c.config.min_clients {
            return refuse(format!(
                "continued with |U1| = {} below min_clients {}",
                u1.len(),
                c.config.min_clients
            ));
        }
        // The session id covers every advertised key of U1 through the Merkle root; mine must
        // be in it, as I advertised it, at my place.
        let own_leaf = own_entry(c.id, &c.config, &self.enc, &self.mask, &self.self_seed).leaf();
        let index = u1.iter().take_while(|v| *v < c.id).count();
        if !crate::merkle::verify(&own_leaf, index, u1.len(), &key_path, &keys_root) {
            return refuse(String::from(
                "built the session over key entries that do not include mine as I advertised it",
            ));
        }
        let session = c.config.session_id(&u1, &keys_root);
        let graph =
            Graph::try_new(c.config.graph, c.config.degree, &u1, &session).map_err(|_| {
                ClientError::BadParameters(format!(
                    "U1 of {} clients does not fit in my memory",
                    u1.len()
                ))
            })?;
        let expected = graph.neighbours(c.id);
        let t = c.config.threshold as usize;
        if c.config.model == ThreatModel::Malicious && expected.len() < t {
            return refuse(format!(
                "left me {} neighbours in U1, fewer than the threshold {t}",
                expected.len()
            ));
        }
        if entries.len() != expected.len()
            || entries.iter().zip(&expected).any(|(e, id)| e.id != *id)
        {
            return refuse(String::from(
                "sent keys for a neighbour set that differs from the graph of U1",
            ));
        }
        let digest = c.config.digest();
        let mut seen_keys: Vec<[u8; 32]> = Vec::with_capacity(2 * entries.len() + 2);
        seen_keys.extend([self.enc.public(), self.mask.public()]);
        if let Some(roster) = &c.roster {
            // Every neighbour's signed keys, verified in batches (crypto::verify_all).
            let mut signed = Vec::with_capacity(entries.len());
            for e in &entries {
                match (&e.signature, roster.get(e.id as usize - 1)) {
                    (Some(sig), Some(pk)) => signed.push((pk, e.signed_bytes(&digest), sig)),
                    _ => {
                        return refuse(format!(
                            "sent keys for client {} without a valid signature",
                            e.id
                        ));
                    }
                }
            }
            let checks: Vec<crypto::SignatureCheck<'_>> = signed
                .iter()
                .map(|(pk, msg, sig)| (*pk, &msg[..], *sig))
                .collect();
            if let Err(i) = crypto::verify_all(&checks) {
                return refuse(format!(
                    "sent keys for client {} without a valid signature",
                    entries[i].id
                ));
            }
        }
        let mut peers = Vec::with_capacity(entries.len());
        for e in &entries {
            if seen_keys.contains(&e.enc_pk) || seen_keys.contains(&e.mask_pk) {
                return refuse(format!("sent a copied public key for client {}", e.id));
            }
            seen_keys.extend([e.enc_pk, e.mask_pk]);
            let enc_shared = self
                .enc
                .agree(&e.enc_pk)
                .ok_or(ClientError::PeerMisbehaved {
                    peer: e.id,
                    reason: "low-order encryption key",
                })?;
            // Agree on the mask key now too, so a bad key cannot fail us after sharing.
            let mask_shared = self
                .mask
                .agree(&e.mask_pk)
                .ok_or(ClientError::PeerMisbehaved {
                    peer: e.id,
                    reason: "low-order mask key",
                })?;
            peers.push(Peer {
                id: e.id,
                enc_shared,
                mask_shared,
                binding: crypto::pair_binding(c.id, &own_leaf, e.id, &e.leaf()),
            });
        }
        let mask_sk = self.mask.secret_bytes();
        // Split randomness derived from the secrets and the session: sharing again after a
        // restore seals the same plaintexts under the fixed AEAD nonce.
        let mut split_rng = crypto::share_split_rng(&mask_sk, &self.self_seed, &session);
        let rng = &mut split_rng;
        let share_err = |_| ClientError::Misuse("secret sharing failed for validated parameters");
        // Shares go to the neighbours and to the client itself (it reveals its own share of b_u
        // when it survives, so t counts among k + 1 holders).
        let mut holders = expected.clone();
        holders.push(c.id);
        holders.sort_unstable();
        let s_shares = shamir::split(&mask_sk, &holders, t, rng).map_err(share_err)?;
        let b_shares = shamir::split(&self.self_seed, &holders, t, rng).map_err(share_err)?;
        let mut out = Vec::with_capacity(peers.len());
        let mut own = None;
        let mut peer_iter = peers.iter();
        for (s, b) in s_shares.iter().zip(&b_shares) {
            if s.x == c.id {
                own = Some(HeldShares {
                    owner: c.id,
                    mask_key: s.clone(),
                    self_mask: b.clone(),
                });
                continue;
            }
            let Some(p) = peer_iter.next() else { break };
            let mut bundle = Zeroizing::new([0u8; SHARE_BUNDLE_LEN]);
            bundle[..SHARE_LEN].copy_from_slice(&s.to_bytes());
            bundle[SHARE_LEN..].copy_from_slice(&b.to_bytes());
            out.push((
                p.id,
                crypto::seal_shares(
                    &p.enc_shared,
                    &session,
                    c.id,
                    p.id,
                    &p.binding,
                    bundle.as_ref(),
                ),
            ));
        }
        let msg = ClientMessage::EncryptedShares(out).encode();
        // A validated round adds the signed pair-seed hashes and V_u (VALIDATION.md §8.3).
        #[cfg(feature = "validate")]
        let msg = if c.config.validation.is_some() {
            let pairs: Vec<(ClientId, Zeroizing<[u8; 32]>)> = peers
                .iter()
                .map(|p| {
                    (
                        p.id,
                        crypto::pairwise_seed(&p.mask_shared, &session, c.id, p.id),
                    )
                })
                .collect();
            validated::share_message(
                c.identity.as_ref(),
                &session,
                c.id,
                &entries,
                &pairs,
                msg,
                #[cfg(feature = "cheats")]
                c.cheat(),
            )?
        } else {
            msg
        };
        #[cfg(feature = "validate")]
        let entries = if c.config.validation.is_some() {
            entries
        } else {
            Vec::new()
        };
        // The key pairs are dropped (and zeroized) here: later stages need only what the
        // agreements derived.
        Ok((
            AwaitingShares {
                common: self.common,
                input: self.input,
                self_seed: self.self_seed,
                session,
                u1,
                peers,
                own: own.ok_or(ClientError::Misuse("own share missing"))?,
                #[cfg(feature = "validate")]
                entries,
            },
            msg,
        ))
    }
}

/// Waiting for the shares routed from the neighbours in U2.
pub struct AwaitingShares {
    common: Common,
    input: Zeroizing<Vec<u64>>,
    self_seed: Zeroizing<[u8; 32]>,
    session: SessionId,
    u1: IdSet,
    peers: Vec<Peer>,
    own: HeldShares,
    /// Validated rounds: the neighbours' key entries as received (the accused's entry in an
    /// exclusion's evidence check is the holder's own copy, D22). Empty in plain rounds.
    #[cfg(feature = "validate")]
    entries: Vec<KeyEntry>,
}

/// Shares a client holds for one neighbour in U2, or for itself.
struct HeldShares {
    owner: ClientId,
    mask_key: Share,
    self_mask: Share,
}

impl AwaitingShares {
    /// Handles SharesForYou: decrypts the neighbours' shares and uploads the masked input
    /// y = x + PRG(b_u) + Σ_{v ∈ N(u) ∩ U2} ±PRG(s_uv) mod 2^b.
    ///
    /// A validated round's upload carries a norm proof, whose blindings need randomness: use
    /// [`AwaitingShares::handle_with_rng`] (as [`ClientRound::handle`] does); this method
    /// refuses validated rounds with [`ClientError::Misuse`].
    pub fn handle(self, bytes: &[u8]) -> Result<(AfterMaskedInput, Vec<u8>), ClientError> {
        // d ≥ 1 in every valid round: an empty input is a streamed client's, which would
        // otherwise upload an empty vector.
        if self.input.is_empty() {
            return Err(ClientError::Misuse(
                "a Client::streamed client uploads through handle_streamed",
            ));
        }
        self.check_and_mask(bytes, None::<&mut chacha20::ChaCha20Rng>)
    }

    /// [`AwaitingShares::handle`] with randomness for a validated round's norm proof
    /// (VALIDATION.md §5.1: `MaskedInput.proof`); in a plain round `rng` is not used.
    pub fn handle_with_rng<R: CryptoRng + ?Sized>(
        self,
        bytes: &[u8],
        rng: &mut R,
    ) -> Result<(AfterMaskedInput, Vec<u8>), ClientError> {
        if self.input.is_empty() {
            return Err(ClientError::Misuse(
                "a Client::streamed client uploads through handle_streamed",
            ));
        }
        self.check_and_mask(bytes, Some(rng))
    }

    /// [`AwaitingShares::handle`]'s checks and upload (an empty vector for a streamed client).
    fn check_and_mask<R: CryptoRng + ?Sized>(
        self,
        bytes: &[u8],
        rng: Option<&mut R>,
    ) -> Result<(AfterMaskedInput, Vec<u8>), ClientError> {
        let c = &self.common;
        // A validated round routes the shares with the neighbours' signed pair-seed hashes;
        // a pair whose hashes differ is cut: neither end masks with the other (§8.3).
        #[cfg(feature = "validate")]
        let (message, cut) = if c.config.validation.is_some() {
            let all: Vec<(ClientId, Zeroizing<[u8; 32]>)> = self
                .peers
                .iter()
                .map(|p| {
                    (
                        p.id,
                        crypto::pairwise_seed(&p.mask_shared, &self.session, c.id, p.id),
                    )
                })
                .collect();
            validated::read_routed_shares(bytes, &c.config, &self.session, c.id, &all)?
        } else {
            (expect_message(bytes, &c.config)?, Vec::new())
        };
        #[cfg(not(feature = "validate"))]
        let (message, cut): (ServerMessage, Vec<ClientId>) =
            (expect_message(bytes, &c.config)?, Vec::new());
        #[cfg(feature = "cheats")]
        let cut = {
            let mut cut = cut;
            crate::cheat::cuts(c.cheat(), &mut cut);
            cut
        };
        let (u2, cts) = match message {
            ServerMessage::SharesForYou { u2, ciphertexts } => (u2, ciphertexts),
            _ => return Err(ClientError::UnexpectedMessage("expected SharesForYou")),
        };
        if !u2.contains(c.id) {
            return refuse(String::from("left me out of U2 although I sent my shares"));
        }
        if (u2.len() as u32) < c.config.min_clients {
            return refuse(format!(
                "continued with |U2| = {} below min_clients {}",
                u2.len(),
                c.config.min_clients
            ));
        }
        // Exactly one ciphertext from each neighbour in U2, in order, and nothing else.
        let live: Vec<&Peer> = self.peers.iter().filter(|p| u2.contains(p.id)).collect();
        let t = c.config.threshold as usize;
        if c.config.model == ThreatModel::Malicious && live.len() < t {
            return refuse(format!(
                "left {} of my neighbours in U2, fewer than the threshold {t}: I would mask with \
                 too few of them",
                live.len()
            ));
        }
        if cts.len() != live.len() || cts.iter().zip(&live).any(|((from, _), p)| *from != p.id) {
            return refuse(String::from(
                "routed shares from a set that differs from my neighbours in U2",
            ));
        }
        let mut held = Vec::with_capacity(live.len());
        for ((from, ct), p) in cts.iter().zip(&live) {
            let pt = crypto::open_shares(&p.enc_shared, &self.session, *from, c.id, &p.binding, ct)
                .ok_or(ClientError::PeerMisbehaved {
                    peer: *from,
                    reason: "share ciphertext does not decrypt for this session and these keys",
                })?;
            if pt.len() != SHARE_BUNDLE_LEN {
                return Err(ClientError::PeerMisbehaved {
                    peer: *from,
                    reason: "share bundle of the wrong length",
                });
            }
            let parse = |b: &[u8]| {
                Share::from_bytes(b).map_err(|_| ClientError::PeerMisbehaved {
                    peer: *from,
                    reason: "malformed share",
                })
            };
            let (mask_key, self_mask) = (parse(&pt[..SHARE_LEN])?, parse(&pt[SHARE_LEN..])?);
            if mask_key.x != c.id || self_mask.x != c.id {
                return Err(ClientError::PeerMisbehaved {
                    peer: *from,
                    reason: "share addressed to another evaluation point",
                });
            }
            held.push(HeldShares {
                owner: *from,
                mask_key,
                self_mask,
            });
        }
        let pos = held.partition_point(|h| h.owner < c.id);
        held.insert(pos, self.own);
        // Mask the input, with the neighbours in U2 whose pairs were not cut.
        let live: Vec<&Peer> = live
            .into_iter()
            .filter(|p| cut.binary_search(&p.id).is_err())
            .collect();
        #[cfg(feature = "cheats")]
        let bypass = matches!(c.cheat(), Some(crate::cheat::Cheat::CutMany(_)));
        #[cfg(not(feature = "cheats"))]
        let bypass = false;
        if c.config.model == ThreatModel::Malicious && live.len() < t && !bypass {
            return refuse(format!(
                "cut my pairs down to {} neighbours, fewer than the threshold {t}",
                live.len()
            ));
        }
        let modulus = c.config.modulus();
        let mut streams = Vec::with_capacity(live.len() + 1);
        // The secrets masked and proven with (a test-only cheater's differ, feature `cheats`).
        #[cfg(feature = "cheats")]
        let (b_used, pair_seed) = (
            crate::cheat::self_secret(c.cheat(), &self.self_seed),
            |p: &Peer| {
                crate::cheat::pair_seed(
                    c.cheat(),
                    p.id,
                    crypto::pairwise_seed(&p.mask_shared, &self.session, c.id, p.id),
                )
            },
        );
        #[cfg(not(feature = "cheats"))]
        let (b_used, pair_seed) = (self.self_seed.clone(), |p: &Peer| {
            crypto::pairwise_seed(&p.mask_shared, &self.session, c.id, p.id)
        });
        let self_seed = crypto::self_mask_seed(&b_used, &self.session, c.id);
        streams.push(MaskStream::new(c.config.prg, &self_seed, Sign::Plus));
        for p in &live {
            let seed = pair_seed(p);
            let sign = if c.id < p.id { Sign::Plus } else { Sign::Minus };
            streams.push(MaskStream::new(c.config.prg, &seed, sign));
        }
        // A validated round proves the norm of the input it masks: a copy of x for the proof
        // (nothing is copied or computed in a plain round).
        let x_copy = match (&c.config.validation, self.input.is_empty()) {
            (Some(_), false) => Some(self.input.clone()),
            (Some(_), true) => {
                return Err(ClientError::Misuse(
                    "a streamed client cannot prove its input's norm (validated round)",
                ));
            }
            (None, _) => None,
        };
        // Masked in place: the input and b_u are dropped (zeroized) with this stage.
        #[cfg(feature = "cheats")]
        let mut y = match c.cheat() {
            Some(crate::cheat::Cheat::MaskOther(other)) if other.len() == self.input.len() => {
                Zeroizing::new(other.clone())
            }
            _ => self.input,
        };
        #[cfg(not(feature = "cheats"))]
        let mut y = self.input;
        apply_masks(&mut y, modulus, &mut streams);
        let packed = modulus.pack(&y);
        let masked_with_ids: Vec<ClientId> = live.iter().map(|p| p.id).collect();
        #[cfg(feature = "validate")]
        let mut kept: Option<alloc::boxed::Box<validated::ClientValidation>> = None;
        let proof = match x_copy {
            None => Vec::new(),
            Some(x) => {
                let pairs: Vec<(ClientId, Zeroizing<[u8; 32]>)> =
                    live.iter().map(|p| (p.id, pair_seed(p))).collect();
                let rng = rng.ok_or(ClientError::Misuse(
                    "a validated round's upload needs randomness: use handle_with_rng",
                ))?;
                let proof = prove_norm(c, &self.session, &x, &b_used, &pairs, &packed, rng)?;
                #[cfg(feature = "validate")]
                {
                    // C_u opens the proof's bytes (D13: version byte, then C_u).
                    let c_u: [u8; 32] = proof
                        .get(1..33)
                        .and_then(|b| b.try_into().ok())
                        .ok_or(ClientError::Misuse("norm proof without C_u"))?;
                    let neighbours: Vec<ClientId> = self.peers.iter().map(|p| p.id).collect();
                    kept = Some(alloc::boxed::Box::new(validated::ClientValidation {
                        input: x,
                        packed_upload: packed.clone(),
                        self_secret: b_used.clone(),
                        c_u,
                        bitmap: MaskedWith::bitmap_of(&neighbours, |v| {
                            masked_with_ids.binary_search(&v).is_ok()
                        }),
                        seeds: pairs,
                        cut: cut.clone(),
                        response: None,
                        entries: self.entries.clone(),
                        released: false,
                    }));
                }
                proof
            }
        };
        let masked_with = match (&c.config.model, &c.identity) {
            (ThreatModel::Malicious, Some(idk)) => {
                let neighbours: Vec<ClientId> = self.peers.iter().map(|p| p.id).collect();
                let bitmap = MaskedWith::bitmap_of(&neighbours, |v| {
                    masked_with_ids.binary_search(&v).is_ok()
                });
                let signature = idk.sign(&MaskedWith::signed_bytes(&self.session, c.id, &bitmap));
                Some(MaskedWith { bitmap, signature })
            }
            (ThreatModel::Malicious, None) => {
                return Err(ClientError::Misuse(
                    "malicious model without an identity key",
                ));
            }
            _ => None,
        };
        let msg = ClientMessage::MaskedInput {
            vector: packed,
            proof,
            masked_with,
        }
        .encode();
        let next = AwaitingUnmask {
            common: self.common,
            session: self.session,
            u1: self.u1,
            u2,
            masked_with: masked_with_ids,
            held,
            signed_u3: None,
            #[cfg(feature = "validate")]
            validation: kept,
        };
        Ok(if next.common.config.model == ThreatModel::Malicious {
            (
                AfterMaskedInput::Consistency(AwaitingConsistency { inner: next }),
                msg,
            )
        } else {
            (AfterMaskedInput::Unmask(next), msg)
        })
    }
}

/// The norm proof of a validated round's upload (VALIDATION.md §5.1), for `MaskedInput.proof`.
#[cfg(feature = "validate")]
fn prove_norm<R: CryptoRng + ?Sized>(
    c: &Common,
    session: &SessionId,
    input: &[u64],
    self_secret: &[u8; 32],
    pairs: &[(ClientId, Zeroizing<[u8; 32]>)],
    packed: &[u8],
    rng: &mut R,
) -> Result<Vec<u8>, ClientError> {
    let pairs: Vec<(ClientId, &[u8; 32])> = pairs.iter().map(|(v, s)| (*v, &**s)).collect();
    let w = crate::validate::round::UploadWitness {
        input,
        self_secret,
        pairs: &pairs,
        packed_upload: packed,
    };
    crate::validate::round::prove_upload(&c.config, session, c.id, &w, rng).map_err(|e| {
        ClientError::BadParameters(format!("cannot prove my input's norm: {e} (not sent)"))
    })
}

/// Without feature `validate` there is no prover (and [`Client::start`] refused the round).
#[cfg(not(feature = "validate"))]
fn prove_norm<R: CryptoRng + ?Sized>(
    _c: &Common,
    _session: &SessionId,
    _input: &[u64],
    _self_secret: &[u8; 32],
    _pairs: &[(ClientId, Zeroizing<[u8; 32]>)],
    _packed: &[u8],
    _rng: &mut R,
) -> Result<Vec<u8>, ClientError> {
    Err(ClientError::BadParameters(String::from(
        "the round validates inputs and this build has no norm prover (feature `validate`)",
    )))
}

/// Where a client goes after uploading: the consistency check (malicious model) or unmasking.
pub enum AfterMaskedInput {
    /// Malicious model.
    Consistency(AwaitingConsistency),
    /// Honest-but-curious model.
    Unmask(AwaitingUnmask),
}

/// Malicious model: waiting for the survivor set to sign.
pub struct AwaitingConsistency {
    inner: AwaitingUnmask,
}

/// What a validated client does with a message before the consistency request.
pub enum ConsistencyStep {
    /// It answered the challenge or a dispute and still waits.
    Waiting(AwaitingConsistency),
    /// It signed U3.
    Signed(AwaitingUnmask),
}

impl AwaitingConsistency {
    /// A validated round's messages before the consistency request (VALIDATION.md §9): the
    /// challenge κ (answered with the signed binding proof), dispute requests (answered only
    /// under rule (i)–(iii) of §8.3) and then the consistency request, as
    /// [`AwaitingConsistency::handle`]. In a plain round this is `handle`.
    #[cfg_attr(not(feature = "validate"), allow(unused_mut))]
    pub fn handle_with_rng<R: CryptoRng + ?Sized>(
        mut self,
        bytes: &[u8],
        rng: &mut R,
    ) -> Result<(ConsistencyStep, Vec<u8>), ClientError> {
        #[cfg(feature = "validate")]
        if let Some(mut val) = self.inner.validation.take() {
            let c = &self.inner.common;
            let graph = Graph::new(
                c.config.graph,
                c.config.degree,
                &self.inner.u1,
                &self.inner.session,
            );
            let step = validated::on_message(
                &mut val,
                bytes,
                &c.config,
                &self.inner.session,
                c.id,
                c.identity.as_ref(),
                c.roster.as_deref(),
                &graph,
                #[cfg(feature = "cheats")]
                c.cheat(),
                rng,
            );
            self.inner.validation = Some(val);
            match step? {
                validated::ChallengeStep::Reply(m) => {
                    return Ok((ConsistencyStep::Waiting(self), m));
                }
                validated::ChallengeStep::Consistency => {}
            }
        }
        let _ = rng;
        self.handle(bytes)
            .map(|(s, m)| (ConsistencyStep::Signed(s), m))
    }

    /// Handles ConsistencyRequest: checks U3 and signs it. The client will later unmask only
    /// for this exact U3.
    pub fn handle(mut self, bytes: &[u8]) -> Result<(AwaitingUnmask, Vec<u8>), ClientError> {
        let u3 = match expect_message(bytes, &self.inner.common.config)? {
            ServerMessage::ConsistencyRequest { u3 } => u3,
            _ => {
                return Err(ClientError::UnexpectedMessage(
                    "expected ConsistencyRequest",
                ));
            }
        };
        self.inner.check_u3(&u3)?;
        #[cfg(feature = "validate")]
        if self
            .inner
            .validation
            .as_ref()
            .is_some_and(|v| v.response.is_none())
        {
            return refuse(String::from(
                "asked me to sign U3 before sending the challenge",
            ));
        }
        let sig = match &self.inner.common.identity {
            Some(idk) => idk.sign(&consistency_signed_bytes(&self.inner.session, &u3)),
            None => {
                return Err(ClientError::Misuse(
                    "malicious model without an identity key",
                ));
            }
        };
        self.inner.signed_u3 = Some(u3);
        Ok((
            self.inner,
            ClientMessage::ConsistencySignature(sig).encode(),
        ))
    }
}

/// Waiting for the unmask request.
pub struct AwaitingUnmask {
    common: Common,
    session: SessionId,
    u1: IdSet,
    u2: IdSet,
    /// The neighbours this client masked with (its view of N(v) ∩ U2).
    masked_with: Vec<ClientId>,
    held: Vec<HeldShares>,
    signed_u3: Option<IdSet>,
    /// Validated rounds: the upload's secrets until the binding answer, the pair seeds until
    /// the consistency check, the cuts until unmasking.
    #[cfg(feature = "validate")]
    validation: Option<alloc::boxed::Box<validated::ClientValidation>>,
}

impl AwaitingUnmask {
    fn check_u3(&self, u3: &IdSet) -> Result<(), ClientError> {
        let c = &self.common;
        if !u3.contains(c.id) {
            return refuse(String::from(
                "listed me as dropped although I uploaded my masked input",
            ));
        }
        if !u3.is_subset(&self.u2) {
            return refuse(String::from(
                "listed as survivors clients whose shares were never routed (not in U2)",
            ));
        }
        if (u3.len() as u32) < c.config.min_clients {
            return refuse(format!(
                "asked to unmask with {} survivors, below min_clients {}",
                u3.len(),
                c.config.min_clients
            ));
        }
        let t = c.config.threshold as usize;
        let kept = self.masked_with.iter().filter(|v| u3.contains(**v)).count();
        if c.config.model == ThreatModel::Malicious && kept < t {
            return refuse(format!(
                "listed {kept} of the neighbours I masked with as survivors, fewer than the \
                 threshold {t}"
            ));
        }
        Ok(())
    }

    /// Malicious model, rule M of docs/SECURITY.md: for every neighbour whose self-mask share
    /// this client is about to reveal, a valid masked-with statement naming ≥ t survivors.
    fn check_statements(
        &self,
        u3: &IdSet,
        statements: &[(ClientId, MaskedWith)],
        roster: &Roster,
    ) -> Result<(), ClientError> {
        let c = &self.common;
        let t = c.config.threshold as usize;
        let graph = Graph::new(c.config.graph, c.config.degree, &self.u1, &self.session);
        let invalid = |v: ClientId| {
            format!("presented an invalid masked-with statement for my neighbour {v}")
        };
        // The statements to check, in the order of `held`; their signatures are verified in
        // batches before any is used.
        let mut wanted = Vec::new();
        for h in self
            .held
            .iter()
            .filter(|h| h.owner != c.id && u3.contains(h.owner))
        {
            let v = h.owner;
            let Ok(i) = statements.binary_search_by_key(&v, |(id, _)| *id) else {
                return refuse(format!(
                    "did not present the masked-with statement of my neighbour {v}"
                ));
            };
            let Some(pk) = roster.get(v as usize - 1) else {
                return refuse(invalid(v));
            };
            let st = &statements[i].1;
            wanted.push((
                v,
                st,
                pk,
                MaskedWith::signed_bytes(&self.session, v, &st.bitmap),
            ));
        }
        let checks: Vec<crypto::SignatureCheck<'_>> = wanted
            .iter()
            .map(|(_, st, pk, signed)| (*pk, &signed[..], &st.signature))
            .collect();
        if let Err(i) = crypto::verify_all(&checks) {
            return refuse(invalid(wanted[i].0));
        }
        for (v, st, _, _) in wanted {
            let members = st.members(&graph.neighbours(v));
            match members {
                Some(m) => {
                    #[cfg(feature = "validate")]
                    if let Some(val) = &self.validation {
                        validated::check_release(val, c.id, v, &m)?;
                    }
                    let kept = m.iter().filter(|w| u3.contains(**w)).count();
                    if kept < t {
                        return refuse(format!(
                            "asked me to unmask neighbour {v}, who masked with only {kept} \
                             survivors (fewer than the threshold {t})"
                        ));
                    }
                }
                None => return refuse(invalid(v)),
            }
        }
        Ok(())
    }

    /// Handles UnmaskRequest: after every check, reveals for each neighbour v in U2 either the
    /// share of b_v (v survived) or of v's mask key (v dropped), never both. Ends the round for
    /// this client.
    pub fn handle(self, bytes: &[u8]) -> Result<Vec<u8>, ClientError> {
        self.reply(bytes)
    }

    /// A validated round's client after its upload (VALIDATION.md §8.6, rule E; D42): the
    /// unmask request as [`AwaitingUnmask::handle`], after which it stays to answer exclusion
    /// requests with verified evidence, until `Done` (`Ok((None, None))`).
    #[cfg(feature = "validate")]
    fn handle_validated(
        mut self,
        bytes: &[u8],
    ) -> Result<(Option<AwaitingUnmask>, Option<Vec<u8>>), ClientError> {
        let released = self.validation.as_ref().is_some_and(|v| v.released);
        if !released {
            let m = self.reply(bytes)?;
            if let Some(v) = self.validation.as_mut() {
                v.released = true;
            }
            return Ok((Some(self), Some(m)));
        }
        let Some(v) = self.validation.as_ref() else {
            return Err(ClientError::Misuse("validated state without its data"));
        };
        let c = &self.common;
        let graph = Graph::new(c.config.graph, c.config.degree, &self.u1, &self.session);
        let held = &self.held;
        let reply = validated::on_exclusion(
            v,
            bytes,
            &c.config,
            &self.session,
            c.id,
            c.roster.as_deref(),
            &graph,
            self.signed_u3.as_ref(),
            |liar| {
                held.iter()
                    .find(|h| h.owner == liar)
                    .map(|h| h.mask_key.clone())
            },
        )?;
        Ok(match reply {
            Some(m) => (Some(self), Some(m)),
            None => (None, None),
        })
    }

    fn reply(&self, bytes: &[u8]) -> Result<Vec<u8>, ClientError> {
        let c = &self.common;
        let (u3, sigs, statements) = match expect_message(bytes, &c.config)? {
            ServerMessage::UnmaskRequest {
                u3,
                signatures,
                statements,
            } => (u3, signatures, statements),
            _ => return Err(ClientError::UnexpectedMessage("expected UnmaskRequest")),
        };
        self.check_u3(&u3)?;
        if c.config.model == ThreatModel::Malicious {
            match &self.signed_u3 {
                Some(signed) if *signed == u3 => {}
                _ => {
                    return refuse(String::from(
                        "asked to unmask for a survivor set that differs from the one I signed",
                    ));
                }
            }
            let roster = c
                .roster
                .as_ref()
                .ok_or(ClientError::Misuse("malicious model without a roster"))?;
            let msg = consistency_signed_bytes(&self.session, &u3);
            let mut signers = IdSet::empty(c.config.num_clients);
            let mut checks = Vec::with_capacity(sigs.len());
            for (id, sig) in &sigs {
                // Membership first: an id outside U3 (0 included) is refused before it indexes
                // the roster.
                let pk = if u3.contains(*id) {
                    roster.get(*id as usize - 1)
                } else {
                    None
                };
                match pk {
                    Some(pk) => checks.push((pk, &msg[..], sig)),
                    _ => {
                        return refuse(format!(
                            "presented an invalid consistency signature for {id}"
                        ));
                    }
                }
                signers.insert(*id);
            }
            if let Err(i) = crypto::verify_all(&checks) {
                return refuse(format!(
                    "presented an invalid consistency signature for {}",
                    sigs[i].0
                ));
            }
            if (signers.len() as u32) < c.config.min_clients {
                return refuse(format!(
                    "presented {} consistency signatures, {} needed",
                    signers.len(),
                    c.config.min_clients
                ));
            }
            self.check_statements(&u3, &statements, roster)?;
        }
        let mut self_mask = Vec::new();
        let mut mask_key = Vec::new();
        for h in &self.held {
            if u3.contains(h.owner) {
                self_mask.push((h.owner, h.self_mask.clone()));
            } else {
                mask_key.push((h.owner, h.mask_key.clone()));
            }
        }
        Ok(ClientMessage::UnmaskShares {
            self_mask,
            mask_key,
        }
        .encode())
    }
}

/// A client in any state, for drivers that keep it in a field (simulator, Python bindings).
pub enum ClientRound {
    /// Before RoundStart.
    New(Client),
    /// After advertising keys.
    AwaitingNeighbours(AwaitingNeighbours),
    /// After sending shares.
    AwaitingShares(AwaitingShares),
    /// Malicious model: after uploading.
    AwaitingConsistency(AwaitingConsistency),
    /// After uploading (or signing).
    AwaitingUnmask(AwaitingUnmask),
    /// Sent its unmask shares, or saw the round end.
    Finished,
    /// Refused or failed; sends nothing more.
    Failed(ClientError),
}

impl ClientRound {
    /// Feeds one server message; returns the reply to send, if any. After an error the client
    /// is `Failed` and answers nothing.
    pub fn handle<R: CryptoRng + ?Sized>(
        &mut self,
        bytes: &[u8],
        rng: &mut R,
    ) -> Result<Option<Vec<u8>>, ClientError> {
        let state = core::mem::replace(self, ClientRound::Finished);
        let result = match state {
            ClientRound::New(c) => c
                .start(bytes, rng)
                .map(|(s, m)| (ClientRound::AwaitingNeighbours(s), Some(m))),
            ClientRound::AwaitingNeighbours(s) => s
                .handle(bytes, rng)
                .map(|(s, m)| (ClientRound::AwaitingShares(s), Some(m))),
            ClientRound::AwaitingShares(s) => s.handle_with_rng(bytes, rng).map(|(s, m)| match s {
                AfterMaskedInput::Consistency(s) => (ClientRound::AwaitingConsistency(s), Some(m)),
                AfterMaskedInput::Unmask(s) => (ClientRound::AwaitingUnmask(s), Some(m)),
            }),
            ClientRound::AwaitingConsistency(s) => {
                s.handle_with_rng(bytes, rng).map(|(s, m)| match s {
                    ConsistencyStep::Waiting(s) => (ClientRound::AwaitingConsistency(s), Some(m)),
                    ConsistencyStep::Signed(s) => (ClientRound::AwaitingUnmask(s), Some(m)),
                })
            }
            #[cfg(feature = "validate")]
            ClientRound::AwaitingUnmask(s) if s.validation.is_some() => {
                s.handle_validated(bytes).map(|(s, m)| match s {
                    Some(s) => (ClientRound::AwaitingUnmask(s), m),
                    None => (ClientRound::Finished, m),
                })
            }
            ClientRound::AwaitingUnmask(s) => {
                s.handle(bytes).map(|m| (ClientRound::Finished, Some(m)))
            }
            ClientRound::Finished => match ServerMessage::decode(bytes, None) {
                Ok(ServerMessage::Done) => Ok((ClientRound::Finished, None)),
                _ => Err(ClientError::UnexpectedMessage(
                    "message after the round ended",
                )),
            },
            ClientRound::Failed(e) => Err(e),
        };
        match result {
            Ok((next, reply)) => {
                *self = next;
                Ok(reply)
            }
            Err(e) => {
                *self = ClientRound::Failed(e.clone());
                Err(e)
            }
        }
    }

    /// Whether the client completed its part.
    pub fn is_finished(&self) -> bool {
        matches!(self, ClientRound::Finished)
    }

    /// The round's parameters, once RoundStart was accepted (and until the client finishes).
    pub fn config(&self) -> Option<&RoundConfig> {
        self.common().map(|c| &c.config)
    }

    /// The client's id, until it finishes or fails.
    pub fn client_id(&self) -> Option<ClientId> {
        match self {
            ClientRound::New(c) => Some(c.id),
            _ => self.common().map(|c| c.id),
        }
    }

    fn common(&self) -> Option<&Common> {
        match self {
            ClientRound::AwaitingNeighbours(s) => Some(&s.common),
            ClientRound::AwaitingShares(s) => Some(&s.common),
            ClientRound::AwaitingConsistency(s) => Some(&s.inner.common),
            ClientRound::AwaitingUnmask(s) => Some(&s.common),
            ClientRound::New(_) | ClientRound::Finished | ClientRound::Failed(_) => None,
        }
    }
}

impl core::fmt::Debug for ClientRound {
    /// The state and the client's id; never a secret.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let state = match self {
            ClientRound::New(_) => "New",
            ClientRound::AwaitingNeighbours(_) => "AwaitingNeighbours",
            ClientRound::AwaitingShares(_) => "AwaitingShares",
            ClientRound::AwaitingConsistency(_) => "AwaitingConsistency",
            ClientRound::AwaitingUnmask(_) => "AwaitingUnmask",
            ClientRound::Finished => "Finished",
            ClientRound::Failed(e) => return f.debug_tuple("Failed").field(e).finish(),
        };
        f.debug_struct(state)
            .field("id", &self.client_id())
            .finish()
    }
}

/// Without feature `validate`: a client refuses validated rounds and the server cannot create
/// one (typed errors, VALIDATION.md §21.1 D35).
#[cfg(all(test, not(feature = "validate")))]
mod without_validate {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::config::ValidationParams;
    use crate::server::ServerRound;

    #[test]
    fn validated_rounds_are_refused_without_the_feature() {
        let mut cfg = crate::config::tests::sample(10, 9, 5);
        cfg.model = ThreatModel::Malicious;
        cfg.pki = true;
        cfg.validation = Some(ValidationParams {
            bound_sq: 401,
            projections: 41,
            max_weight: None,
        });
        let start = ServerMessage::RoundStart(cfg.clone()).encode();
        let mut rng = <chacha20::ChaCha20Rng as rand_core::SeedableRng>::from_seed([7; 32]);
        match Client::new(1, alloc::vec![0; 10]).start(&start, &mut rng) {
            Err(ClientError::BadParameters(m)) => assert!(m.contains("validate"), "{m}"),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("accepted a validated round without a prover"),
        }
        let roster: Vec<[u8; 32]> = (0..10).map(|i| [i as u8; 32]).collect();
        assert!(ServerRound::new(cfg, Some(roster), 1).is_err());
    }
}
