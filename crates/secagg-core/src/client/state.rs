//! Saving a client's round between messages and restoring it, for drivers that cannot keep
//! the [`ClientRound`] in memory (a Flower ClientApp may run in a fresh process per message).
//!
//! The saved bytes hold the client's secrets for the rest of the round (its X25519 secret
//! keys or the shared secrets derived from them, its self-mask seed, its input, the shares its
//! neighbours sent it): store them like key material and delete them when the round ends. The
//! state structs already drop every secret that no later stage needs, so a state saved after
//! the upload holds only shares.
//!
//! Format, in the wire codec's encoding ([`crate::codec`]): the magic [`STATE_MAGIC`], the
//! version [`STATE_VERSION`], a stage tag, then that stage's fields. The presence and length
//! of every field follow from the stage and the round's parameters, so the encoding is
//! canonical: a restored client answers byte for byte as the saved one would (given the same
//! RNG), and exporting it again gives the same bytes. Importing treats the bytes as untrusted:
//! typed errors, no panics, no allocation the input cannot back (beyond unpacking the input
//! vector to u64s).

use alloc::vec::Vec;
use core::fmt;

use zeroize::Zeroizing;

use super::{
    AwaitingConsistency, AwaitingNeighbours, AwaitingShares, AwaitingUnmask, Client, ClientRound,
    Common, HeldShares, Peer, Policy,
};
use crate::ClientId;
use crate::codec::{Reader, Writer};
use crate::config::{MAX_CLIENTS, MAX_DIM, RoundConfig};
use crate::crypto::{DhKeyPair, IdentityKey};
use crate::error::{CodecError, StateError};
use crate::idset::IdSet;
use crate::params::{Assumptions, ThreatModel};
use crate::shamir::{SHARE_LEN, Share};

/// First bytes of every saved client state ("SecAgg Client State").
pub const STATE_MAGIC: [u8; 4] = *b"SACS";
/// Version of the saved-state format; bumped on any change to it.
pub const STATE_VERSION: u8 = 2;
/// The same format for a client of a validated round (wire version 3): its configuration is
/// followed by the validation parameters, as in its `RoundStart` (VALIDATION.md §21.1 D31).
/// Plain rounds' states keep [`STATE_VERSION`] and their bytes.
pub const VALIDATED_STATE_VERSION: u8 = 3;

mod tag {
    pub const NEW: u8 = 1;
    pub const AWAITING_NEIGHBOURS: u8 = 2;
    pub const AWAITING_SHARES: u8 = 3;
    pub const AWAITING_CONSISTENCY: u8 = 4;
    pub const AWAITING_UNMASK: u8 = 5;
    pub const FINISHED: u8 = 6;
    /// The two stages before the upload, for a [`Client::streamed`](super::Client::streamed)
    /// client: the same fields without the input, which it does not hold.
    pub const STREAMED_AWAITING_NEIGHBOURS: u8 = 7;
    pub const STREAMED_AWAITING_SHARES: u8 = 8;
}

const HEADER_LEN: usize = STATE_MAGIC.len() + 2;
const KEY_LEN: usize = 32;
/// A neighbour: id, shared encryption secret, shared mask secret, pair binding.
const PEER_LEN: usize = 4 + 3 * KEY_LEN;
/// Shares held for one owner: owner id, share of its mask key, share of its self-mask seed.
const HELD_LEN: usize = 4 + 2 * SHARE_LEN;

/// A saved client state: secret, zeroized on drop, never printed.
pub struct ExportedState(Zeroizing<Vec<u8>>);

impl ExportedState {
    /// The bytes to store.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Their length.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false (a state has at least its header); for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The buffer itself, still zeroized on drop.
    pub fn into_bytes(self) -> Zeroizing<Vec<u8>> {
        self.0
    }
}

impl AsRef<[u8]> for ExportedState {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for ExportedState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ExportedState(<{} bytes redacted>)", self.0.len())
    }
}

impl ClientRound {
    /// Saves the client's state to restore with [`ClientRound::import_state`], e.g. between
    /// two messages handled by different processes. The bytes are secret (see the module
    /// docs). Fails only for a `Failed` client, which has nothing left to do.
    pub fn export_state(&self) -> Result<ExportedState, StateError> {
        // The exact size up front: the buffer never reallocates, which would leave an
        // unzeroized copy of the secrets in freed memory.
        let len = HEADER_LEN
            + match self {
                ClientRound::New(c) => new_len(c),
                ClientRound::AwaitingNeighbours(s) => {
                    common_len(&s.common) + held_input_len(&s.common, &s.input) + 3 * KEY_LEN
                }
                ClientRound::AwaitingShares(s) => {
                    common_len(&s.common)
                        + held_input_len(&s.common, &s.input)
                        + 2 * KEY_LEN
                        + s.u1.encoded_len()
                        + 4
                        + s.peers.len() * PEER_LEN
                        + 2 * SHARE_LEN
                        + shares_entries_len(s)
                }
                ClientRound::AwaitingConsistency(s) => unmask_len(&s.inner),
                ClientRound::AwaitingUnmask(s) => unmask_len(s),
                ClientRound::Finished => 0,
                ClientRound::Failed(e) => return Err(StateError::Failed(e.clone())),
            };
        let mut w = Writer::with_capacity(len);
        let validated = self
            .config()
            .is_some_and(|c: &RoundConfig| c.validation.is_some());
        w.fixed(&STATE_MAGIC).u8(if validated {
            VALIDATED_STATE_VERSION
        } else {
            STATE_VERSION
        });
        match self {
            ClientRound::New(c) => {
                w.u8(tag::NEW);
                encode_new(c, &mut w);
            }
            ClientRound::AwaitingNeighbours(s) => {
                w.u8(if s.input.is_empty() {
                    tag::STREAMED_AWAITING_NEIGHBOURS
                } else {
                    tag::AWAITING_NEIGHBOURS
                });
                encode_common(&s.common, &mut w);
                encode_input(&s.common, &s.input, &mut w);
                w.fixed(&*s.enc.secret_bytes())
                    .fixed(&*s.mask.secret_bytes())
                    .fixed(&*s.self_seed);
            }
            ClientRound::AwaitingShares(s) => {
                w.u8(if s.input.is_empty() {
                    tag::STREAMED_AWAITING_SHARES
                } else {
                    tag::AWAITING_SHARES
                });
                encode_common(&s.common, &mut w);
                encode_input(&s.common, &s.input, &mut w);
                w.fixed(&*s.self_seed).fixed(&s.session);
                s.u1.encode(&mut w);
                w.u32(s.peers.len() as u32);
                for p in &s.peers {
                    w.u32(p.id)
                        .fixed(&*p.enc_shared)
                        .fixed(&*p.mask_shared)
                        .fixed(&p.binding);
                }
                encode_share(&s.own.mask_key, &mut w);
                encode_share(&s.own.self_mask, &mut w);
                // Validated rounds: the neighbours' entries as received (public, D41).
                #[cfg(feature = "validate")]
                if s.common.config.validation.is_some() {
                    w.u32(s.entries.len() as u32);
                    for e in &s.entries {
                        crate::validate::wire::encode_entry(&mut w, e);
                    }
                }
            }
            ClientRound::AwaitingConsistency(s) => {
                w.u8(tag::AWAITING_CONSISTENCY);
                encode_unmask(&s.inner, &mut w);
            }
            ClientRound::AwaitingUnmask(s) => {
                w.u8(tag::AWAITING_UNMASK);
                encode_unmask(s, &mut w);
            }
            ClientRound::Finished => {
                w.u8(tag::FINISHED);
            }
            ClientRound::Failed(_) => {} // returned above
        }
        // Sized exactly, so the buffer never moved (a move would leave an unwiped copy).
        let out = Zeroizing::new(w.finish());
        if out.len() != len {
            return Err(StateError::Inconsistent(
                "export_state's size computation is off (a bug: please report it)",
            ));
        }
        Ok(ExportedState(out))
    }

    /// Restores a client saved by [`ClientRound::export_state`]. The bytes are parsed as
    /// untrusted input: anything but a complete, consistent state of this format version is
    /// an error, never a panic.
    pub fn import_state(bytes: &[u8]) -> Result<ClientRound, StateError> {
        let mut r = Reader::new(bytes);
        if r.array::<4>()? != STATE_MAGIC {
            return Err(StateError::NotAState);
        }
        let version = r.u8()?;
        if version != STATE_VERSION && version != VALIDATED_STATE_VERSION {
            return Err(StateError::UnsupportedVersion(version));
        }
        let v = version == VALIDATED_STATE_VERSION;
        let round = match r.u8()? {
            tag::NEW => ClientRound::New(decode_new(&mut r)?),
            t @ (tag::AWAITING_NEIGHBOURS | tag::STREAMED_AWAITING_NEIGHBOURS) => {
                let common = decode_common(&mut r, v)?;
                let input = if t == tag::STREAMED_AWAITING_NEIGHBOURS {
                    Zeroizing::new(Vec::new())
                } else {
                    decode_input(&common, &mut r)?
                };
                let enc = DhKeyPair::from_secret_bytes(&*secret(&mut r)?);
                let mask = DhKeyPair::from_secret_bytes(&*secret(&mut r)?);
                let self_seed = secret(&mut r)?;
                ClientRound::AwaitingNeighbours(AwaitingNeighbours {
                    common,
                    input,
                    enc,
                    mask,
                    self_seed,
                })
            }
            tag::AWAITING_SHARES => ClientRound::AwaitingShares(decode_shares(&mut r, false, v)?),
            tag::STREAMED_AWAITING_SHARES => {
                ClientRound::AwaitingShares(decode_shares(&mut r, true, v)?)
            }
            tag::AWAITING_CONSISTENCY => {
                let inner = decode_unmask(&mut r, false, v)?;
                if inner.common.config.model != ThreatModel::Malicious {
                    return Err(StateError::Inconsistent(
                        "a consistency-check stage in an honest-but-curious round",
                    ));
                }
                ClientRound::AwaitingConsistency(AwaitingConsistency { inner })
            }
            tag::AWAITING_UNMASK => ClientRound::AwaitingUnmask(decode_unmask(&mut r, true, v)?),
            tag::FINISHED => ClientRound::Finished,
            other => return Err(CodecError::UnknownTag(other).into()),
        };
        r.finish()?;
        // Version 3 exactly for the states of validated rounds (canonical: a state without a
        // round configuration, New or Finished, is version 2).
        if round.config().is_some_and(|c| c.validation.is_some()) != v {
            return Err(StateError::Inconsistent(
                "the state's version does not match its round's validation",
            ));
        }
        Ok(round)
    }
}

// ---- encoding ----------------------------------------------------------------------------

/// Id, policy, identity (flag and seed), roster (flag, count and keys), input (count, u64s).
fn new_len(c: &Client) -> usize {
    let policy = 1 + 8 + 4 + 1 + c.policy.assumptions.map_or(0, |_| 8 + 8 + 1);
    let identity = 1 + c.identity.as_ref().map_or(0, |_| KEY_LEN);
    let roster = 1 + c.roster.as_ref().map_or(0, |r| 4 + r.len() * KEY_LEN);
    4 + policy + identity + roster + 4 + c.input.len() * 8
}

fn encode_new(c: &Client, w: &mut Writer) {
    w.u32(c.id)
        .u8(model_byte(c.policy.min_model))
        .u64(c.policy.min_threshold_fraction.to_bits())
        .u32(c.policy.min_clients);
    match &c.policy.assumptions {
        Some(a) => w
            .u8(1)
            .u64(a.corrupt_fraction.to_bits())
            .u64(a.dropout_fraction.to_bits())
            .u8(model_byte(a.model)),
        None => w.u8(0),
    };
    match &c.identity {
        Some(k) => w.u8(1).fixed(&*k.seed()),
        None => w.u8(0),
    };
    match &c.roster {
        Some(r) => {
            w.u8(1).u32(r.len() as u32);
            r.iter().for_each(|pk| {
                w.fixed(pk);
            });
        }
        None => {
            w.u8(0);
        }
    }
    w.u32(c.input.len() as u32);
    for x in &c.input {
        w.u64(*x);
    }
}

fn config_len(config: &RoundConfig) -> usize {
    // Public data: a throwaway encoding is cheaper than keeping a second size formula.
    let mut w = Writer::with_capacity(80);
    config.encode(&mut w);
    w.len()
}

/// The identity key and roster are there exactly when the round uses a PKI (the client
/// checked that at the start).
fn common_len(c: &Common) -> usize {
    let pki = if c.config.pki {
        KEY_LEN + c.config.num_clients as usize * KEY_LEN
    } else {
        0
    };
    4 + config_len(&c.config) + pki
}

fn encode_common(c: &Common, w: &mut Writer) {
    w.u32(c.id);
    c.config.encode(w);
    if let (Some(k), Some(roster)) = (&c.identity, &c.roster) {
        w.fixed(&*k.seed());
        roster.iter().for_each(|pk| {
            w.fixed(pk);
        });
    }
}

/// The input, packed at the round's b bits.
fn input_len(c: &Common) -> usize {
    c.config.modulus().packed_len(c.config.dim as usize)
}

/// The saved input's length: none for a streamed client (its input is empty).
fn held_input_len(c: &Common, input: &[u64]) -> usize {
    if input.is_empty() { 0 } else { input_len(c) }
}

fn encode_input(c: &Common, input: &[u64], w: &mut Writer) {
    if input.is_empty() {
        return; // a streamed client: the tag says so
    }
    let m = c.config.modulus();
    w.fill(input_len(c), |out| m.pack_into(input, out));
}

fn encode_share(s: &Share, w: &mut Writer) {
    w.fixed(&*Zeroizing::new(s.to_bytes()));
}

/// The shares held, each with its owner; the client's own share is among them.
fn unmask_len(s: &AwaitingUnmask) -> usize {
    common_len(&s.common)
        + KEY_LEN
        + s.u1.encoded_len()
        + s.u2.encoded_len()
        + 4
        + 4 * s.masked_with.len()
        + 4
        + s.held.len() * HELD_LEN
        + s.signed_u3.as_ref().map_or(0, IdSet::encoded_len)
        + validation_len(s)
}

#[cfg(feature = "validate")]
fn validation_len(s: &AwaitingUnmask) -> usize {
    s.validation
        .as_ref()
        .map_or(0, |v| super::validated::encoded_len(v, &s.common.config))
}

#[cfg(not(feature = "validate"))]
fn validation_len(_s: &AwaitingUnmask) -> usize {
    0
}

/// The neighbours' entries a validated client keeps from the share stage on.
#[cfg(feature = "validate")]
fn shares_entries_len(s: &AwaitingShares) -> usize {
    if s.common.config.validation.is_none() {
        return 0;
    }
    let mut w = Writer::default();
    for e in &s.entries {
        crate::validate::wire::encode_entry(&mut w, e);
    }
    4 + w.len()
}

#[cfg(not(feature = "validate"))]
fn shares_entries_len(_s: &AwaitingShares) -> usize {
    0
}

/// `signed_u3` is there exactly in the malicious model's unmask stage.
fn encode_unmask(s: &AwaitingUnmask, w: &mut Writer) {
    encode_common(&s.common, w);
    w.fixed(&s.session);
    s.u1.encode(w);
    s.u2.encode(w);
    w.u32(s.masked_with.len() as u32);
    s.masked_with.iter().for_each(|v| {
        w.u32(*v);
    });
    w.u32(s.held.len() as u32);
    for h in &s.held {
        w.u32(h.owner);
        encode_share(&h.mask_key, w);
        encode_share(&h.self_mask, w);
    }
    if let Some(u3) = &s.signed_u3 {
        u3.encode(w);
    }
    // A validated round's client after its upload: what the binding answer, disputes and the
    // unmask check need (there exactly when the configuration has validation).
    #[cfg(feature = "validate")]
    if let Some(v) = &s.validation {
        super::validated::encode(v, &s.common.config, w);
    }
}

fn model_from_byte(b: u8) -> Result<ThreatModel, CodecError> {
    match b {
        0 => Ok(ThreatModel::HonestButCurious),
        1 => Ok(ThreatModel::Malicious),
        _ => Err(CodecError::NonCanonical("policy threat model")),
    }
}

fn model_byte(m: ThreatModel) -> u8 {
    match m {
        ThreatModel::HonestButCurious => 0,
        ThreatModel::Malicious => 1,
    }
}

// ---- decoding ----------------------------------------------------------------------------

/// 32 secret bytes, read straight into a zeroizing buffer.
fn secret(r: &mut Reader<'_>) -> Result<Zeroizing<[u8; KEY_LEN]>, CodecError> {
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    out.copy_from_slice(r.take(KEY_LEN)?);
    Ok(out)
}

fn flag(r: &mut Reader<'_>, what: &'static str) -> Result<bool, CodecError> {
    match r.u8()? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(CodecError::NonCanonical(what)),
    }
}

fn roster_keys(bytes: &[u8]) -> Vec<[u8; KEY_LEN]> {
    bytes
        .chunks_exact(KEY_LEN)
        .map(|c| {
            let mut pk = [0u8; KEY_LEN];
            pk.copy_from_slice(c);
            pk
        })
        .collect()
}

fn decode_new(r: &mut Reader<'_>) -> Result<Client, StateError> {
    let id = r.u32()?;
    let min_model = model_from_byte(r.u8()?)?;
    let min_threshold_fraction = f64::from_bits(r.u64()?);
    if !(0.0..=1.0).contains(&min_threshold_fraction) {
        return Err(StateError::Inconsistent(
            "the minimum threshold fraction is not in [0, 1]",
        ));
    }
    let min_clients = r.u32()?;
    let assumptions = if flag(r, "assumptions flag")? {
        let a = Assumptions {
            corrupt_fraction: f64::from_bits(r.u64()?),
            dropout_fraction: f64::from_bits(r.u64()?),
            model: model_from_byte(r.u8()?)?,
        };
        if !((0.0..1.0).contains(&a.corrupt_fraction) && (0.0..1.0).contains(&a.dropout_fraction)) {
            return Err(StateError::Inconsistent(
                "assumed corrupt or dropout fraction not in [0, 1)",
            ));
        }
        Some(a)
    } else {
        None
    };
    let identity = if flag(r, "identity flag")? {
        Some(IdentityKey::from_seed(&*secret(r)?))
    } else {
        None
    };
    let roster = if flag(r, "roster flag")? {
        let n = r.count("roster", MAX_CLIENTS as usize, KEY_LEN)?;
        Some(roster_keys(r.take(n * KEY_LEN)?))
    } else {
        None
    };
    // with_pki sets both; one without the other is no client the constructors make.
    if identity.is_some() != roster.is_some() {
        return Err(StateError::Inconsistent(
            "an identity key without a roster, or a roster without one",
        ));
    }
    let n = r.count("input", MAX_DIM as usize, 8)?;
    // Built in place so that an early return zeroizes what was read (Client's Drop).
    let mut client = Client::new(id, Vec::with_capacity(n));
    client.identity = identity;
    client.roster = roster;
    client.policy = Policy {
        min_model,
        min_threshold_fraction,
        min_clients,
        assumptions,
    };
    for _ in 0..n {
        client.input.push(r.u64()?);
    }
    Ok(client)
}

fn decode_common(r: &mut Reader<'_>, validated: bool) -> Result<Common, StateError> {
    let id = r.u32()?;
    let config = RoundConfig::decode_versioned(r, validated)?;
    if id == 0 || id > config.num_clients {
        return Err(StateError::Inconsistent("client id outside 1..=n"));
    }
    let (identity, roster) = if config.pki {
        let identity = IdentityKey::from_seed(&*secret(r)?);
        let len = (config.num_clients as usize).saturating_mul(KEY_LEN);
        (Some(identity), Some(roster_keys(r.take(len)?)))
    } else {
        (None, None)
    };
    Ok(Common {
        id,
        config,
        identity,
        roster,
        #[cfg(feature = "cheats")]
        cheat: None,
    })
}

fn decode_input(c: &Common, r: &mut Reader<'_>) -> Result<Zeroizing<Vec<u64>>, CodecError> {
    let packed = r.take(input_len(c))?;
    Ok(Zeroizing::new(
        c.config.modulus().unpack(packed, c.config.dim as usize)?,
    ))
}

fn decode_share(r: &mut Reader<'_>) -> Result<Share, CodecError> {
    Share::from_bytes(r.take(SHARE_LEN)?).map_err(|_| CodecError::NonCanonical("share"))
}

fn decode_shares(
    r: &mut Reader<'_>,
    streamed: bool,
    validated: bool,
) -> Result<AwaitingShares, StateError> {
    let common = decode_common(r, validated)?;
    let input = if streamed {
        Zeroizing::new(Vec::new())
    } else {
        decode_input(&common, r)?
    };
    let self_seed = secret(r)?;
    let session = r.array()?;
    let u1 = decode_u1(r, &common)?;
    let n = r.count("peers", common.config.degree as usize, PEER_LEN)?;
    let mut peers: Vec<Peer> = Vec::with_capacity(n);
    for _ in 0..n {
        let id = r.u32()?;
        if id == common.id || id == 0 || id > common.config.num_clients {
            return Err(StateError::Inconsistent(
                "a neighbour id outside 1..=n or my own",
            ));
        }
        if peers.last().is_some_and(|p| p.id >= id) {
            return Err(StateError::Inconsistent(
                "neighbours not in increasing id order",
            ));
        }
        if !u1.contains(id) {
            return Err(StateError::Inconsistent("a neighbour not in U1"));
        }
        let enc_shared = secret(r)?;
        let mask_shared = secret(r)?;
        let binding = r.array()?;
        peers.push(Peer {
            id,
            enc_shared,
            mask_shared,
            binding,
        });
    }
    let own = HeldShares {
        owner: common.id,
        mask_key: decode_share(r)?,
        self_mask: decode_share(r)?,
    };
    if own.mask_key.x != common.id || own.self_mask.x != common.id {
        return Err(StateError::Inconsistent(
            "own shares at another evaluation point",
        ));
    }
    #[cfg(feature = "validate")]
    let entries = if validated {
        let n = r.count(
            "neighbour entries",
            common.config.degree as usize,
            4 + 96 + 1,
        )?;
        let mut entries: Vec<crate::messages::KeyEntry> = Vec::with_capacity(n);
        for _ in 0..n {
            entries.push(crate::validate::wire::decode_entry(r)?);
        }
        if entries.len() != peers.len() || entries.iter().zip(&peers).any(|(e, p)| e.id != p.id) {
            return Err(StateError::Inconsistent(
                "neighbour entries do not match the neighbours",
            ));
        }
        entries
    } else {
        Vec::new()
    };
    Ok(AwaitingShares {
        common,
        input,
        self_seed,
        session,
        u1,
        peers,
        own,
        #[cfg(feature = "validate")]
        entries,
    })
}

fn decode_u1(r: &mut Reader<'_>, common: &Common) -> Result<IdSet, StateError> {
    let u1 = IdSet::decode(r, common.config.num_clients)?;
    if !u1.contains(common.id) {
        return Err(StateError::Inconsistent("I am not in U1"));
    }
    Ok(u1)
}

/// `unmask_stage`: the unmask stage (which carries the signed U3 in the malicious model)
/// rather than the consistency check.
fn decode_unmask(
    r: &mut Reader<'_>,
    unmask_stage: bool,
    validated: bool,
) -> Result<AwaitingUnmask, StateError> {
    let common = decode_common(r, validated)?;
    let (id, num_clients) = (common.id, common.config.num_clients);
    let session = r.array()?;
    let u1 = decode_u1(r, &common)?;
    let u2 = IdSet::decode(r, num_clients)?;
    if !u2.contains(id) || !u2.is_subset(&u1) {
        return Err(StateError::Inconsistent(
            "I am not in U2, or U2 is not within U1",
        ));
    }
    let m = r.count("masked-with", common.config.degree as usize, 4)?;
    let mut masked_with: Vec<ClientId> = Vec::with_capacity(m);
    for _ in 0..m {
        let v = r.u32()?;
        if v == id || !u2.contains(v) || masked_with.last().is_some_and(|p| *p >= v) {
            return Err(StateError::Inconsistent(
                "masked-with ids not increasing, mine, or outside U2",
            ));
        }
        masked_with.push(v);
    }
    let n = r.count("held shares", common.config.degree as usize + 1, HELD_LEN)?;
    let mut held: Vec<HeldShares> = Vec::with_capacity(n);
    for _ in 0..n {
        let owner = r.u32()?;
        let h = HeldShares {
            owner,
            mask_key: decode_share(r)?,
            self_mask: decode_share(r)?,
        };
        if !u2.contains(owner) {
            return Err(StateError::Inconsistent(
                "shares held for a client not in U2",
            ));
        }
        if held.last().is_some_and(|p| p.owner >= owner) {
            return Err(StateError::Inconsistent(
                "held shares not in increasing owner order",
            ));
        }
        if h.mask_key.x != id || h.self_mask.x != id {
            return Err(StateError::Inconsistent(
                "held shares at another evaluation point",
            ));
        }
        held.push(h);
    }
    if !held.iter().any(|h| h.owner == id) {
        return Err(StateError::Inconsistent("my own shares are missing"));
    }
    let signed_u3 = if unmask_stage && common.config.model == ThreatModel::Malicious {
        let u3 = IdSet::decode(r, num_clients)?;
        if !u3.contains(id) || !u3.is_subset(&u2) {
            return Err(StateError::Inconsistent(
                "the signed U3 leaves me out or is not within U2",
            ));
        }
        Some(u3)
    } else {
        None
    };
    #[cfg(feature = "validate")]
    let validation = if validated {
        Some(alloc::boxed::Box::new(super::validated::decode(
            r,
            &common.config,
        )?))
    } else {
        None
    };
    Ok(AwaitingUnmask {
        common,
        session,
        u1,
        u2,
        masked_with,
        held,
        signed_u3,
        #[cfg(feature = "validate")]
        validation,
    })
}

#[cfg(test)]
mod tests {
    use alloc::collections::BTreeMap;
    use alloc::format;
    use alloc::string::String;
    use alloc::vec;

    use proptest::prelude::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::config::tests::sample;
    use crate::error::{ClientError, Stage};
    use crate::server::{Outcome, ServerRound};
    use crate::{ClientId, GraphKind};

    /// What a round did: its outcome, every client reply in order, and the saved states.
    struct Transcript {
        outcome: Outcome,
        replies: Vec<(ClientId, Vec<u8>)>,
        /// (state name, saved bytes) of every export, in order.
        saved: Vec<(String, Vec<u8>)>,
    }

    fn input(id: ClientId, dim: u32, bits: u8) -> Vec<u64> {
        let m = crate::ring::Modulus::new(bits).unwrap().mask();
        (0..dim as u64)
            .map(|j| (u64::from(id) * 1_000_003 + j * 7919) & m)
            .collect()
    }

    fn name(r: &ClientRound) -> String {
        let debug = format!("{r:?}");
        debug.split([' ', '(']).next().unwrap().into()
    }

    /// Runs one round in memory. With `persist`, every client is exported and re-imported
    /// before every message it handles (a fresh process per message) and once more at the end.
    /// `silent_from`: clients that stop answering from a stage on.
    fn run(cfg: &RoundConfig, silent_from: &[(ClientId, Stage)], persist: bool) -> Transcript {
        let n = cfg.num_clients;
        let pki: Option<Vec<IdentityKey>> = cfg.pki.then(|| {
            let mut rng = ChaCha20Rng::seed_from_u64(99);
            (0..n).map(|_| IdentityKey::generate(&mut rng)).collect()
        });
        let roster: Option<Vec<[u8; 32]>> = pki
            .as_ref()
            .map(|ks| ks.iter().map(IdentityKey::public).collect());
        let mut server = ServerRound::new(cfg.clone(), roster.clone(), 1_000).unwrap();
        let mut clients: Vec<(ClientRound, ChaCha20Rng)> = (1..=n)
            .map(|id| {
                let mut c = Client::new(id, input(id, cfg.dim, cfg.bits));
                if let (Some(ks), Some(r)) = (&pki, &roster) {
                    let k = IdentityKey::from_seed(&ks[id as usize - 1].seed());
                    c = c.with_pki(k, r.clone());
                }
                (
                    ClientRound::New(c),
                    ChaCha20Rng::seed_from_u64(u64::from(id)),
                )
            })
            .collect();
        let mut t = Transcript {
            outcome: Outcome::Released {
                aggregate: vec![],
                survivors: IdSet::empty(0),
            },
            replies: vec![],
            saved: vec![],
        };
        let save_and_restore = |round: &mut ClientRound, t: &mut Transcript| {
            let saved = round.export_state().unwrap();
            let restored = ClientRound::import_state(saved.as_bytes()).unwrap();
            // Canonical: the restored client saves to the same bytes.
            assert_eq!(
                restored.export_state().unwrap().as_bytes(),
                saved.as_bytes()
            );
            assert_eq!(name(&restored), name(round));
            t.saved.push((name(round), saved.as_bytes().to_vec()));
            *round = restored;
        };
        server.start(0);
        let mut now = 0;
        loop {
            let stage = server.stage();
            let mut inbox: BTreeMap<ClientId, Vec<Vec<u8>>> = BTreeMap::new();
            while let Some((to, m)) = server.poll_outgoing() {
                inbox.entry(to).or_default().push(m);
            }
            let ended = server.outcome().is_some();
            let mut replies = vec![];
            for (id, msgs) in inbox {
                if !ended && silent_from.iter().any(|(s, st)| *s == id && *st <= stage) {
                    continue;
                }
                let (round, rng) = &mut clients[id as usize - 1];
                for m in msgs {
                    if persist {
                        save_and_restore(round, &mut t);
                    }
                    if let Ok(Some(r)) = round.handle(&m, rng) {
                        replies.push((id, r));
                    }
                }
            }
            if ended {
                break;
            }
            for (id, r) in &replies {
                let _ = server.handle_message(now, *id, r);
            }
            t.replies.extend(replies);
            if server.stage() == stage && server.outcome().is_none() {
                now = server.poll_timeout().unwrap();
                server.handle_timeout(now);
            }
        }
        if persist {
            for (round, _) in clients.iter_mut().filter(|(r, _)| r.is_finished()) {
                save_and_restore(round, &mut t);
            }
        }
        t.outcome = server.outcome().unwrap().clone();
        t
    }

    fn plain_sum(cfg: &RoundConfig, survivors: &IdSet) -> Vec<u64> {
        let m = cfg.modulus();
        let mut sum = vec![0u64; cfg.dim as usize];
        for id in survivors.iter() {
            m.add_assign(&mut sum, &input(id, cfg.dim, cfg.bits));
        }
        sum
    }

    fn malicious(n: u32, k: u32, t: u32) -> RoundConfig {
        let mut c = sample(n, k, t);
        c.model = ThreatModel::Malicious;
        c.pki = true;
        c
    }

    fn harary_with_dropouts() -> (RoundConfig, Vec<(ClientId, Stage)>) {
        let mut c = sample(9, 4, 3);
        c.bits = 20; // not byte-aligned: exercises the packing's padding
        c.dim = 13;
        (
            c,
            vec![
                (2, Stage::ShareKeys),
                (5, Stage::MaskedInput),
                (7, Stage::Unmask),
            ],
        )
    }

    #[test]
    fn a_round_saved_and_restored_before_every_message_is_the_same_round() {
        let (harary, drops) = harary_with_dropouts();
        let cases = [
            (sample(5, 4, 3), vec![]),
            (harary, drops),
            (malicious(6, 4, 3), vec![(4, Stage::ConsistencyCheck)]),
            (malicious(6, 5, 4), vec![]),
        ];
        for (cfg, silent) in cases {
            let plain = run(&cfg, &silent, false);
            let saved = run(&cfg, &silent, true);
            // Byte for byte the same replies, so the same aggregate.
            assert_eq!(saved.replies, plain.replies, "{cfg:?}");
            assert_eq!(saved.outcome, plain.outcome);
            let Outcome::Released {
                aggregate,
                survivors,
            } = &saved.outcome
            else {
                panic!("round aborted: {:?}", saved.outcome)
            };
            // Clients silent from the upload on are left out; later ones are still summed.
            let left_out = silent
                .iter()
                .filter(|(_, s)| *s <= Stage::MaskedInput)
                .count();
            assert_eq!(survivors.len(), cfg.num_clients as usize - left_out);
            assert_eq!(*aggregate, plain_sum(&cfg, survivors));
            // Every state was saved at least once.
            let names: alloc::collections::BTreeSet<&str> =
                saved.saved.iter().map(|(s, _)| s.as_str()).collect();
            let mut want = vec![
                "New",
                "AwaitingNeighbours",
                "AwaitingShares",
                "AwaitingUnmask",
                "Finished",
            ];
            if cfg.model == ThreatModel::Malicious {
                want.push("AwaitingConsistency");
            }
            assert_eq!(names, want.into_iter().collect());
        }
    }

    /// One saved state of each kind, from the Harary round with dropouts and the malicious one.
    fn saved_states() -> Vec<(String, Vec<u8>)> {
        let (cfg, drops) = harary_with_dropouts();
        let mut out: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for (name, bytes) in run(&cfg, &drops, true).saved {
            out.entry(format!("hbc {name}")).or_insert(bytes);
        }
        for (name, bytes) in run(&malicious(5, 4, 3), &[], true).saved {
            out.entry(format!("malicious {name}")).or_insert(bytes);
        }
        out.into_iter().collect()
    }

    #[test]
    fn truncated_trailing_and_foreign_states_are_typed_errors() {
        for (name, bytes) in saved_states() {
            for len in 0..bytes.len() {
                let err = ClientRound::import_state(&bytes[..len]).unwrap_err();
                assert!(
                    matches!(
                        err,
                        StateError::Malformed(CodecError::Truncated)
                            | StateError::Malformed(CodecError::LengthMismatch { .. })
                    ),
                    "{name} cut at {len}: {err}"
                );
            }
            let mut long = bytes.clone();
            long.push(0);
            assert_eq!(
                ClientRound::import_state(&long).unwrap_err(),
                StateError::Malformed(CodecError::TrailingBytes(1)),
                "{name}"
            );
            let mut other = bytes.clone();
            other[0] = b'X';
            assert_eq!(
                ClientRound::import_state(&other).unwrap_err(),
                StateError::NotAState
            );
            let mut other = bytes.clone();
            other[4] = VALIDATED_STATE_VERSION + 1;
            assert_eq!(
                ClientRound::import_state(&other).unwrap_err(),
                StateError::UnsupportedVersion(VALIDATED_STATE_VERSION + 1)
            );
            // A plain round's state read as a validated round's is refused.
            let mut other = bytes.clone();
            other[4] = VALIDATED_STATE_VERSION;
            assert!(ClientRound::import_state(&other).is_err(), "{name}");
            let mut other = bytes.clone();
            other[5] = 0;
            assert_eq!(
                ClientRound::import_state(&other).unwrap_err(),
                StateError::Malformed(CodecError::UnknownTag(0))
            );
        }
        // A wire message is not a state.
        let msg = crate::messages::ServerMessage::Done.encode();
        assert!(ClientRound::import_state(&msg).is_err());
    }

    #[test]
    fn every_garbled_byte_is_an_error_or_a_canonical_state() {
        for (name, bytes) in saved_states() {
            for i in 0..bytes.len() {
                for flip in [0x01u8, 0x80, 0xff] {
                    let mut g = bytes.clone();
                    g[i] ^= flip;
                    if let Ok(r) = ClientRound::import_state(&g) {
                        // Secret bytes can take any value; whatever parses re-encodes as is.
                        assert_eq!(r.export_state().unwrap().as_bytes(), &g[..], "{name} @{i}");
                    }
                }
            }
        }
    }

    #[test]
    fn contradictory_states_are_refused() {
        let states = saved_states();
        let get = |n: &str| states.iter().find(|(s, _)| s == n).unwrap().1.clone();
        // An honest-but-curious unmask state relabelled as a consistency check.
        let mut b = get("hbc AwaitingUnmask");
        b[5] = tag::AWAITING_CONSISTENCY;
        assert!(matches!(
            ClientRound::import_state(&b),
            Err(StateError::Inconsistent(_))
        ));
        // A client id outside 1..=n (the id follows the header).
        let mut b = get("hbc AwaitingShares");
        b[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(
            ClientRound::import_state(&b).unwrap_err(),
            StateError::Inconsistent("client id outside 1..=n")
        );
        // A config the round would refuse (threshold 0).
        let mut b = get("hbc AwaitingNeighbours");
        let threshold_at = HEADER_LEN + 4 + 8 + 32 + 12;
        b[threshold_at..threshold_at + 4].copy_from_slice(&0u32.to_le_bytes());
        assert!(matches!(
            ClientRound::import_state(&b),
            Err(StateError::Malformed(CodecError::NonCanonical(_)))
        ));
    }

    /// A not-yet-started client whose policy or PKI fields no constructor would make.
    #[test]
    fn impossible_new_clients_are_refused() {
        let mut c = Client::new(1, vec![1, 2, 3]);
        c.policy.min_threshold_fraction = f64::NAN;
        let b = ClientRound::New(c).export_state().unwrap();
        assert!(matches!(
            ClientRound::import_state(b.as_bytes()),
            Err(StateError::Inconsistent(_))
        ));
        let mut c = Client::new(1, vec![1, 2, 3]);
        c.roster = Some(alloc::vec![[7u8; 32]; 3]);
        let b = ClientRound::New(c).export_state().unwrap();
        assert!(matches!(
            ClientRound::import_state(b.as_bytes()),
            Err(StateError::Inconsistent(_))
        ));
        // The live client refuses a NaN fraction instead of skipping the threshold check.
        let mut c = Client::new(1, vec![1; 8]);
        c.policy.min_threshold_fraction = f64::NAN;
        let mut round = ClientRound::New(c);
        let start = crate::messages::ServerMessage::RoundStart(sample(5, 4, 3)).encode();
        assert!(
            round
                .handle(&start, &mut ChaCha20Rng::seed_from_u64(2))
                .is_err()
        );
    }

    #[test]
    fn a_failed_client_has_no_state_and_nothing_secret_prints() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let mut round = ClientRound::New(Client::new(1, vec![5; 10]));
        let start = crate::messages::ServerMessage::RoundStart(sample(5, 4, 3)).encode();
        round.handle(&start, &mut rng).unwrap();
        let saved = round.export_state().unwrap();
        let ClientRound::AwaitingNeighbours(s) = &round else {
            panic!("{round:?}")
        };
        let secret = *s.self_seed;
        assert!(saved.as_bytes().windows(32).any(|w| w == secret));
        assert_eq!(
            format!("{saved:?}"),
            format!("ExportedState(<{} bytes redacted>)", saved.len())
        );
        assert_eq!(format!("{round:?}"), "AwaitingNeighbours { id: Some(1) }");

        assert!(round.handle(b"garbage", &mut rng).is_err());
        assert!(matches!(
            round.export_state(),
            Err(StateError::Failed(ClientError::Malformed(_)))
        ));
    }

    #[test]
    fn saved_sizes_for_20_clients_and_10000_values() {
        // The complete graph (k = 19), 32-bit modulus: the input dominates until it is masked.
        let mut cfg = sample(20, 19, 10);
        cfg.dim = 10_000;
        assert_eq!(cfg.graph, GraphKind::Complete);
        let t = run(&cfg, &[], true);
        let sizes: BTreeMap<&str, usize> =
            t.saved.iter().map(|(s, b)| (s.as_str(), b.len())).collect();
        let expect: BTreeMap<&str, usize> = [
            // Header, id, policy (with the assumptions flag), identity and roster flags, input.
            ("New", 6 + 4 + 14 + 1 + 1 + 4 + 80_000),
            // The config encodes in 73 bytes (69 + the empty encoding's length).
            ("AwaitingNeighbours", 6 + 73 + 40_000 + 3 * 32),
            // ... + seed, session, U1 (7 bytes), 19 peers of 100 bytes, own shares.
            (
                "AwaitingShares",
                6 + 73 + 40_000 + 2 * 32 + 7 + 4 + 19 * 100 + 2 * 44,
            ),
            // Session, U1, U2, the 19 neighbours masked with, 20 held shares.
            (
                "AwaitingUnmask",
                6 + 73 + 32 + 7 + 7 + 4 + 19 * 4 + 4 + 20 * 92,
            ),
            ("Finished", 6),
        ]
        .into_iter()
        .collect();
        assert_eq!(sizes, expect);
        // Every state of a kind has the same size (nobody dropped out).
        for (s, b) in &t.saved {
            assert_eq!(b.len(), expect[s.as_str()], "{s}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn arbitrary_bytes_after_a_valid_header_never_panic(
            tag in 0u8..10,
            body in proptest::collection::vec(any::<u8>(), 0..600),
        ) {
            let mut b = STATE_MAGIC.to_vec();
            b.push(STATE_VERSION);
            b.push(tag);
            b.extend_from_slice(&body);
            if let Ok(r) = ClientRound::import_state(&b) {
                let again = r.export_state().unwrap();
                prop_assert_eq!(again.as_bytes(), &b[..]);
            }
        }

        #[test]
        fn mutated_states_never_panic(
            which in any::<prop::sample::Index>(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
            cut in any::<prop::sample::Index>(),
        ) {
            let states = saved_states_cached();
            let mut b = states[which.index(states.len())].1.clone();
            for (at, v) in edits {
                let i = at.index(b.len());
                b[i] = v;
            }
            let keep = b.len() - cut.index(b.len() / 8 + 1);
            b.truncate(keep);
            if let Ok(r) = ClientRound::import_state(&b) {
                let again = r.export_state().unwrap();
                prop_assert_eq!(again.as_bytes(), &b[..]);
            }
        }
    }

    fn saved_states_cached() -> &'static [(String, Vec<u8>)] {
        static CACHE: std::sync::OnceLock<Vec<(String, Vec<u8>)>> = std::sync::OnceLock::new();
        CACHE.get_or_init(saved_states)
    }
}
