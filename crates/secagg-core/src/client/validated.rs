//! A client's part of a validated round after its keys (VALIDATION.md §8.3, §5.2, §9; step 8b):
//! the signed pair-seed hashes at the share stage, the cuts at the upload, the binding answer
//! to κ, dispute answers under rule (i)–(iii), and F5's second line of defence at unmask.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::ClientId;
use crate::codec::{Reader, Writer};
use crate::config::RoundConfig;
use crate::crypto::{IdentityKey, SessionId};
use crate::error::{ClientError, CodecError, StateError};
use crate::messages::{KeyEntry, ServerMessage};
use crate::validate::binding::{self, AnswerInput, Challenge};
use crate::validate::blind;
use crate::validate::dispute::{self, OwnSide, PeerSide};
use crate::validate::wire::{
    PairSeedHashes, ValidationClientMessage, ValidationResponse, ValidationServerMessage,
    WireParams,
};

/// What a validated client keeps from its upload until the round ends.
pub(crate) struct ClientValidation {
    /// The encoded input, until the binding answer (then empty).
    pub input: Zeroizing<Vec<u64>>,
    /// The packed upload, until the binding answer (then empty).
    pub packed_upload: Vec<u8>,
    /// b_u, until the binding answer (then zero).
    pub self_secret: Zeroizing<[u8; 32]>,
    /// C_u as sent (compressed), until the binding answer.
    pub c_u: [u8; 32],
    /// The bitmap signed with the upload.
    pub bitmap: Vec<u8>,
    /// (v, s_uv) for v ∈ S_u, increasing v: dispute answers need them until the consistency
    /// check.
    pub seeds: Vec<(ClientId, Zeroizing<[u8; 32]>)>,
    /// The neighbours whose pairs were cut at the share stage (increasing).
    pub cut: Vec<ClientId>,
    /// The signed answer, once sent.
    pub response: Option<ValidationResponse>,
    /// The neighbours' key entries as received (the holder's copy of an accused's entry, D22).
    pub entries: Vec<KeyEntry>,
    /// Whether the unmask shares were sent (then only exclusion requests and Done follow).
    pub released: bool,
}

fn params(config: &RoundConfig) -> Result<WireParams, ClientError> {
    binding::wire_params(config)
        .map_err(|e| ClientError::BadParameters(format!("validated round: {e}")))
}

/// The share stage's message of a validated round: the plain `EncryptedShares` bytes and the
/// signed h_uv for every neighbour in U1 (`pairs`: (v, s_uv) in increasing v), with V_u over the
/// key entries as received.
pub(crate) fn share_message(
    identity: Option<&IdentityKey>,
    session: &SessionId,
    id: ClientId,
    entries: &[KeyEntry],
    pairs: &[(ClientId, Zeroizing<[u8; 32]>)],
    shares: Vec<u8>,
    #[cfg(feature = "cheats")] cheat: Option<&crate::cheat::Cheat>,
) -> Result<Vec<u8>, ClientError> {
    let identity = identity.ok_or(ClientError::Misuse(
        "a validated round needs an identity key",
    ))?;
    let leaves: Vec<(ClientId, [u8; 32])> = entries.iter().map(|e| (e.id, e.leaf())).collect();
    let view = blind::view_digest(session, &leaves)
        .map_err(|_| ClientError::Misuse("neighbour entries not in increasing order"))?;
    let hashes: Vec<(ClientId, [u8; 32])> = pairs
        .iter()
        .map(|(v, s)| {
            let h = blind::pair_seed_hash(session, id, *v, s);
            #[cfg(feature = "cheats")]
            let h = crate::cheat::signed_hash(cheat, *v, h);
            (*v, h)
        })
        .collect();
    let hashes = PairSeedHashes::sign(identity, session, id, hashes, &view)
        .map_err(|_| ClientError::Misuse("neighbour ids not in increasing order"))?;
    Ok(ValidationClientMessage::Shares { shares, hashes }.encode())
}

/// Reads a validated round's routed shares: the inner `SharesForYou` message and the pairs to
/// cut, those of `live` (v, s_uv) whose forwarded hash differs from this client's own.
pub(crate) fn read_routed_shares(
    bytes: &[u8],
    config: &RoundConfig,
    session: &SessionId,
    id: ClientId,
    live: &[(ClientId, Zeroizing<[u8; 32]>)],
) -> Result<(ServerMessage, Vec<ClientId>), ClientError> {
    if let Ok(ServerMessage::Abort(r)) = ServerMessage::decode(bytes, Some(config)) {
        return Err(ClientError::RoundAborted(r));
    }
    let (routed, peer_hashes) = match ValidationServerMessage::decode(bytes, &params(config)?)? {
        ValidationServerMessage::RoutedShares {
            routed,
            peer_hashes,
        } => (routed, peer_hashes),
        _ => return Err(ClientError::UnexpectedMessage("expected RoutedShares")),
    };
    let inner = ServerMessage::decode(&routed, Some(config))?;
    let ServerMessage::SharesForYou { u2, .. } = &inner else {
        return Err(ClientError::UnexpectedMessage(
            "expected SharesForYou inside RoutedShares",
        ));
    };
    let live: Vec<&(ClientId, Zeroizing<[u8; 32]>)> =
        live.iter().filter(|(v, _)| u2.contains(*v)).collect();
    if peer_hashes.len() != live.len()
        || peer_hashes.iter().zip(&live).any(|((v, _), (w, _))| v != w)
    {
        return Err(ClientError::ServerMisbehaved(String::from(
            "forwarded pair-seed hashes for a set that differs from my neighbours in U2",
        )));
    }
    let cut = peer_hashes
        .iter()
        .zip(&live)
        .filter(|((v, h), (_, s))| blind::pair_seed_hash(session, id, *v, s) != *h)
        .map(|((v, _), _)| *v)
        .collect();
    Ok((inner, cut))
}

/// A server message during the challenge stage.
pub(crate) enum ChallengeStep {
    /// The answer or a dispute answer: stay, send this.
    Reply(Vec<u8>),
    /// The consistency request, to handle as in a plain malicious round.
    Consistency,
}

/// Handles a message while waiting for the consistency request: the challenge (answered once,
/// with the same bytes if repeated), a dispute request (answered only under rule (i)–(iii)), or
/// the consistency request (only after answering).
#[allow(clippy::too_many_arguments)]
pub(crate) fn on_message<R: CryptoRng + ?Sized>(
    v: &mut ClientValidation,
    bytes: &[u8],
    config: &RoundConfig,
    session: &SessionId,
    id: ClientId,
    identity: Option<&IdentityKey>,
    roster: Option<&[[u8; 32]]>,
    graph: &crate::graph::Graph,
    #[cfg(feature = "cheats")] cheat: Option<&crate::cheat::Cheat>,
    rng: &mut R,
) -> Result<ChallengeStep, ClientError> {
    match ServerMessage::decode(bytes, Some(config)) {
        Ok(ServerMessage::Abort(r)) => return Err(ClientError::RoundAborted(r)),
        Ok(ServerMessage::ConsistencyRequest { .. }) => {
            if v.response.is_none() {
                return Err(ClientError::ServerMisbehaved(String::from(
                    "asked me to sign U3 before sending the challenge",
                )));
            }
            // Disputes are over: the seeds are not needed any more.
            v.seeds.clear();
            return Ok(ChallengeStep::Consistency);
        }
        Ok(_) => return Err(ClientError::UnexpectedMessage("expected Challenge")),
        Err(_) => {}
    }
    let p = params(config)?;
    match ValidationServerMessage::decode(bytes, &p)? {
        ValidationServerMessage::Challenge { kappa } => {
            if let Some(r) = &v.response {
                if r.kappa == kappa {
                    return Ok(ChallengeStep::Reply(
                        ValidationClientMessage::ValidationResponse(r.clone()).encode(),
                    ));
                }
                return Err(ClientError::ServerMisbehaved(String::from(
                    "sent a second challenge with another κ",
                )));
            }
            let identity = identity.ok_or(ClientError::Misuse(
                "a validated round needs an identity key",
            ))?;
            let bad = |e: crate::validate::ValidateError| {
                ClientError::BadParameters(format!("cannot answer the challenge: {e}"))
            };
            let ch = Challenge::new(config, session, &kappa).map_err(bad)?;
            let c_u = curve25519_dalek::ristretto::CompressedRistretto(v.c_u)
                .decompress()
                .ok_or(ClientError::Misuse("own C_u is not a point"))?;
            // A test-only `MaskOther` cheater answers for the vector it masked (feature
            // `cheats`): its binding proof cannot verify against C_u of its proven input.
            #[cfg(feature = "cheats")]
            let answered: &[u64] = match cheat {
                Some(crate::cheat::Cheat::MaskOther(other)) if other.len() == v.input.len() => {
                    other
                }
                _ => &v.input,
            };
            #[cfg(not(feature = "cheats"))]
            let answered: &[u64] = &v.input;
            let leaves: Vec<(ClientId, [u8; 32])> =
                v.entries.iter().map(|e| (e.id, e.leaf())).collect();
            let view = blind::view_digest(session, &leaves)
                .map_err(|_| ClientError::Misuse("neighbour entries not in increasing order"))?;
            let input = AnswerInput {
                view,
                input: answered,
                packed_upload: &v.packed_upload,
                self_secret: &v.self_secret,
                pairs: &v.seeds,
                bitmap: &v.bitmap,
                c_u,
            };
            let response = binding::answer(config, &ch, id, identity, &input, rng).map_err(bad)?;
            // What the proof needed is gone now; the seeds stay for disputes.
            v.input = Zeroizing::new(Vec::new());
            v.packed_upload = Vec::new();
            v.self_secret = Zeroizing::new([0; 32]);
            let msg = ValidationClientMessage::ValidationResponse(response.clone()).encode();
            v.response = Some(response);
            Ok(ChallengeStep::Reply(msg))
        }
        ValidationServerMessage::DisputeRequest(request) => {
            let own = v.response.as_ref().ok_or_else(|| {
                ClientError::ServerMisbehaved(String::from("sent a dispute before the challenge"))
            })?;
            let roster = roster.ok_or(ClientError::Misuse("validated round without a roster"))?;
            let peer_id = request.peer;
            let identity_key = peer_id
                .checked_sub(1)
                .and_then(|i| roster.get(i as usize))
                .ok_or_else(|| {
                    ClientError::ServerMisbehaved(format!(
                        "sent a dispute with unknown client {peer_id}"
                    ))
                })?;
            let my_nbrs = graph.neighbours(id);
            let their_nbrs = graph.neighbours(peer_id);
            let me = OwnSide {
                id,
                session,
                response: own,
                neighbours: &my_nbrs,
            };
            let peer = PeerSide {
                id: peer_id,
                identity: identity_key,
                neighbours: &their_nbrs,
            };
            let seeds = &v.seeds;
            let answer = dispute::answer_dispute(&me, &request, &peer, |w| {
                seeds
                    .binary_search_by_key(&w, |(x, _)| *x)
                    .ok()
                    .map(|i| Zeroizing::new(*seeds[i].1))
            })
            .map_err(|r| {
                ClientError::ServerMisbehaved(format!("sent a dispute I must refuse: {r}"))
            })?;
            Ok(ChallengeStep::Reply(
                ValidationClientMessage::DisputeAnswer(answer).encode(),
            ))
        }
        ValidationServerMessage::ExclusionRequest(_)
        | ValidationServerMessage::RoutedShares { .. } => {
            Err(ClientError::UnexpectedMessage("expected Challenge"))
        }
    }
}

/// F5's second line of defence (§8.3) for every owner whose b-share this client is about to
/// release: refuses when the owner's signed S_w lists this client although it cut the pair.
pub(crate) fn check_release(
    v: &ClientValidation,
    me: ClientId,
    owner: ClientId,
    owner_masked_with: &[ClientId],
) -> Result<(), ClientError> {
    let cut = v.cut.binary_search(&owner).is_ok();
    if dispute::may_release_self_share(me, cut, owner_masked_with) {
        Ok(())
    } else {
        Err(ClientError::ServerMisbehaved(format!(
            "asked me to unmask neighbour {owner}, whose signed bitmap lists me although our \
             pair was cut"
        )))
    }
}

// ---- saved states -----------------------------------------------------------------------

/// The saved bytes' length.
pub(crate) fn encoded_len(v: &ClientValidation, config: &RoundConfig) -> usize {
    // Counted, not encoded: a scratch encoding would leave copies of the secrets (review 8b #4).
    let before = match &v.response {
        None => config.modulus().packed_len(config.dim as usize) + 4 + v.packed_upload.len() + 64,
        Some(_) => 0,
    };
    let entries = {
        let mut w = Writer::default();
        for e in &v.entries {
            crate::validate::wire::encode_entry(&mut w, e);
        }
        4 + w.len()
    };
    let after = v.response.as_ref().map_or(0, |r| {
        // The response is public: a scratch encoding is harmless.
        let mut w = Writer::default();
        r.encode(&mut w);
        w.len()
    });
    1 + before + 4 + v.bitmap.len() + 4 + 36 * v.seeds.len() + 4 + 4 * v.cut.len() + after + entries
}

/// Appends the saved form: a phase byte (0 before the answer, 1 after), then before the answer
/// the packed input, the upload, b_u and C_u; always the bitmap, the seeds and the cuts; after
/// the answer the response.
pub(crate) fn encode(v: &ClientValidation, config: &RoundConfig, w: &mut Writer) {
    let m = config.modulus();
    let len = m.packed_len(config.dim as usize);
    match &v.response {
        None => {
            w.u8(0);
            w.fill(len, |out| m.pack_into(&v.input, out));
            w.bytes(&v.packed_upload);
            w.fixed(&*v.self_secret).fixed(&v.c_u);
        }
        Some(_) => {
            w.u8(if v.released { 2 } else { 1 });
        }
    }
    w.bytes(&v.bitmap);
    w.u32(v.seeds.len() as u32);
    for (id, s) in &v.seeds {
        w.u32(*id).fixed(&**s);
    }
    w.u32(v.cut.len() as u32);
    for id in &v.cut {
        w.u32(*id);
    }
    if let Some(r) = &v.response {
        r.encode(w);
    }
    w.u32(v.entries.len() as u32);
    for e in &v.entries {
        crate::validate::wire::encode_entry(w, e);
    }
}

/// Reads [`encode`]'s bytes (untrusted: typed errors).
pub(crate) fn decode(
    r: &mut Reader<'_>,
    config: &RoundConfig,
) -> Result<ClientValidation, StateError> {
    let p = binding::wire_params(config)
        .map_err(|_| StateError::Inconsistent("validation parameters"))?;
    let k = config.degree as usize;
    let (answered, released) = match r.u8()? {
        0 => (false, false),
        1 => (true, false),
        2 => (true, true),
        _ => return Err(CodecError::NonCanonical("validation phase").into()),
    };
    let m = config.modulus();
    let dim = config.dim as usize;
    let (input, packed_upload, self_secret, c_u) = if answered {
        (
            Zeroizing::new(Vec::new()),
            Vec::new(),
            Zeroizing::new([0; 32]),
            [0; 32],
        )
    } else {
        let input = Zeroizing::new(m.unpack(r.take(m.packed_len(dim))?, dim)?);
        let packed = r.bytes("upload", m.packed_len(dim))?.to_vec();
        if packed.len() != m.packed_len(dim) {
            return Err(StateError::Inconsistent("upload of the wrong length"));
        }
        let mut b = Zeroizing::new([0u8; 32]);
        b.copy_from_slice(r.take(32)?);
        (input, packed, b, r.array()?)
    };
    let bitmap = r.bytes("bitmap", k.div_ceil(8))?.to_vec();
    let n = r.count("seeds", k, 36)?;
    let mut seeds: Vec<(ClientId, Zeroizing<[u8; 32]>)> = Vec::with_capacity(n);
    for _ in 0..n {
        let id = r.u32()?;
        if seeds.last().is_some_and(|(p, _)| *p >= id) {
            return Err(StateError::Inconsistent("seeds not in increasing order"));
        }
        let mut s = Zeroizing::new([0u8; 32]);
        s.copy_from_slice(r.take(32)?);
        seeds.push((id, s));
    }
    let c = r.count("cuts", k, 4)?;
    let mut cut: Vec<ClientId> = Vec::with_capacity(c);
    for _ in 0..c {
        let id = r.u32()?;
        if cut.last().is_some_and(|p| *p >= id) {
            return Err(StateError::Inconsistent("cuts not in increasing order"));
        }
        cut.push(id);
    }
    let response = if answered {
        Some(ValidationResponse::decode(r, &p)?)
    } else {
        None
    };
    let n = r.count("neighbour entries", k, 4 + 96 + 1)?;
    let mut entries: Vec<KeyEntry> = Vec::with_capacity(n);
    for _ in 0..n {
        let e = crate::validate::wire::decode_entry(r)?;
        if entries.last().is_some_and(|p| p.id >= e.id) {
            return Err(StateError::Inconsistent("entries not in increasing order"));
        }
        entries.push(e);
    }
    Ok(ClientValidation {
        entries,
        released,
        input,
        packed_upload,
        self_secret,
        c_u,
        bitmap,
        seeds,
        cut,
        response,
    })
}

/// After the unmask shares (rule E, VALIDATION.md §8.5–§8.6, D42): the server may ask for this
/// client's share of the mask key of a survivor it caught lying, with evidence. The share is
/// released only if the accused is a survivor whose self-mask share this client released
/// (it is in the signed U3 and this client holds its shares) and the evidence, checked here
/// against this client's own session, κ and copy of the accused's key entry, proves the lie.
/// `Ok(None)` for `Done` (the round is over).
#[allow(clippy::too_many_arguments)]
pub(crate) fn on_exclusion(
    v: &ClientValidation,
    bytes: &[u8],
    config: &RoundConfig,
    session: &SessionId,
    id: ClientId,
    roster: Option<&[[u8; 32]]>,
    graph: &crate::graph::Graph,
    signed_u3: Option<&crate::idset::IdSet>,
    mask_key_share: impl Fn(ClientId) -> Option<crate::shamir::Share>,
) -> Result<Option<Vec<u8>>, ClientError> {
    match ServerMessage::decode(bytes, Some(config)) {
        Ok(ServerMessage::Abort(r)) => return Err(ClientError::RoundAborted(r)),
        Ok(ServerMessage::Done) => return Ok(None),
        Ok(_) => return Err(ClientError::UnexpectedMessage("message after unmasking")),
        Err(_) => {}
    }
    let request = match ValidationServerMessage::decode(bytes, &params(config)?)? {
        ValidationServerMessage::ExclusionRequest(r) => r,
        _ => return Err(ClientError::UnexpectedMessage("expected ExclusionRequest")),
    };
    let liar = request.liar;
    let refuse = |why: String| Err(ClientError::ServerMisbehaved(why));
    if liar == id || !signed_u3.is_some_and(|u3| u3.contains(liar)) {
        return refuse(format!(
            "asked for a mask-key share of client {liar}, not a survivor I unmasked"
        ));
    }
    // §8.5 evidence may name a "dropped" peer that is in the U3 this holder signed: a liar the
    // server excluded earlier in this round (a cascade: its colluder's lie about their pair is
    // found only once it is gone). Refusing those (the final review's nit 6) let two colluders
    // abort the round (review rev10, W1); the evidence check alone is what guards honest
    // clients (D22, D42).
    let (Some(share), Ok(i)) = (
        mask_key_share(liar),
        v.entries.binary_search_by_key(&liar, |e| e.id),
    ) else {
        return refuse(format!(
            "asked for a mask-key share of client {liar}, whose shares I do not hold"
        ));
    };
    let Some(identity) = roster.and_then(|r| r.get(liar as usize - 1)) else {
        return refuse(format!("accused client {liar} outside the roster"));
    };
    let Some(own) = &v.response else {
        return Err(ClientError::Misuse("exclusion before the binding answer"));
    };
    let bad = |e: crate::validate::ValidateError| {
        ClientError::BadParameters(format!("cannot check exclusion evidence: {e}"))
    };
    let ch = Challenge::new(config, session, &own.kappa).map_err(bad)?;
    let ctx = ch.context(config).map_err(bad)?;
    let neighbours = graph.neighbours(liar);
    let accused = crate::validate::evidence::Accused {
        id: liar,
        entry: &v.entries[i],
        identity,
        neighbours: &neighbours,
    };
    match crate::validate::evidence::check_exclusion(&ctx, &accused, &request) {
        Ok(_) => Ok(Some(
            ValidationClientMessage::ExclusionShares(crate::validate::wire::ExclusionShares {
                liar,
                share,
            })
            .encode(),
        )),
        Err(e) => refuse(format!(
            "asked for client {liar}'s mask-key share with evidence that proves nothing: {e}"
        )),
    }
}
