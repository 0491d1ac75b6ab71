//! The new messages of validated rounds (VALIDATION.md §15 "Wire", §8.3, §8.5, §8.6; build
//! plan §21 step 7): the share-stage hash list, `Challenge`, `ValidationResponse`,
//! `DisputeRequest` / `DisputeAnswer`, `ExclusionRequest` with its evidence (`DroppedPair`,
//! `SelfMask`) and `ExclusionShares`, with the signed bytes of the two new signed statements.
//!
//! Encodings follow [`crate::messages`]: a version byte ([`WIRE_VERSION`] = 3) and a tag byte,
//! then little-endian integers, fixed arrays and u32-length-prefixed strings ([`crate::codec`]).
//! Decoding never panics and never allocates more than the input backs: every message is
//! refused above [`MAX_MESSAGE_LEN`] before anything is read, every count is bounded by the
//! round's degree k ([`WireParams`]), the binding proof's length must be exactly the one its
//! statement implies (`secagg_zk::codec::bind_proof_len`, parsed later by the verifier), every
//! point must be a canonical ristretto255 encoding, and every id list must be strictly
//! increasing. Whatever decodes re-encodes to the same bytes ([`fuzz_decode`], the fuzz
//! target's entry point, asserts it).
//!
//! The byte-level choices (tags, the signed bytes, the response's point count read off its
//! bitmap, the proof kept as bytes) are VALIDATION.md §21.1 D20 and D21; the share-stage
//! coverage check ([`PairSeedHashes::covers`]) is D27; the upload bitmap carried in §8.5
//! evidence and the response's fit to it ([`ValidationResponse::fits`]) are D28. Every signed
//! statement here is forwarded to other clients and verified strictly, never batched
//! (SECURITY.md §4a).
//!
//! Secrets carried here (a dispute's s_uv, the evidence's sk_w and b_u, an exclusion share) are
//! zeroized on drop, left out of `Debug` and compared in constant time ([`Secret32`], `Share`).

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use secagg_zk::bind::{BindParams, BindProof};
use secagg_zk::codec::{MAX_BIND_PROOF_LEN, bind_proof_len, decode_bind_proof};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::{DOMAIN, ValidateError};
use crate::ClientId;
use crate::codec::{Reader, Writer};
use crate::crypto::{self, IdentityKey, SessionId};
use crate::error::CodecError;
use crate::messages::{KeyEntry, MaskedWith};
use crate::shamir::{SHARE_LEN, Share};

/// Version byte of validated rounds' messages (wire version 3; plain rounds stay at
/// [`crate::messages::WIRE_VERSION`] = 2).
pub const WIRE_VERSION: u8 = secagg_zk::VERSION;

/// Largest message of this module, checked before anything is decoded: an `ExclusionRequest`
/// with `DroppedPair` evidence at k = 1,023 and the largest binding proof is ≈ 111 KB; the
/// share stage's `Shares` (k ciphertexts and k signed hashes) at k = 1,023 is ≈ 140 KB.
pub const MAX_MESSAGE_LEN: usize = 1 << 18;

/// Largest share-stage message (`Shares`, `RoutedShares`): [`MAX_MESSAGE_LEN`] plus the U2
/// bitmap a routed `SharesForYou` carries, up to n = 2^20 clients (review 8b #7).
pub const MAX_SHARE_STAGE_LEN: usize =
    MAX_MESSAGE_LEN + (crate::config::MAX_CLIENTS as usize) / 8 + 64;

/// A compressed ristretto255 point as it travels (canonical: decoding refuses others).
pub type PointBytes = [u8; 32];

mod tag {
    pub const CHALLENGE: u8 = 0x21;
    pub const DISPUTE_REQUEST: u8 = 0x22;
    pub const EXCLUSION_REQUEST: u8 = 0x23;
    pub const VALIDATION_RESPONSE: u8 = 0x31;
    pub const DISPUTE_ANSWER: u8 = 0x32;
    pub const EXCLUSION_SHARES: u8 = 0x33;
    pub const SHARES: u8 = 0x34;
    pub const ROUTED_SHARES: u8 = 0x24;
    pub const EVIDENCE_DROPPED_PAIR: u8 = 1;
    pub const EVIDENCE_SELF_MASK: u8 = 2;
}

/// A 32-byte secret on the wire (a pair seed s_uv, a rebuilt mask key sk_w, a self-mask
/// secret b_u): zeroized on drop, redacted in `Debug`, compared in constant time.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Secret32([u8; 32]);

impl Secret32 {
    /// Wraps the bytes (the caller zeroizes its own copy).
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
    /// The secret bytes.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl PartialEq for Secret32 {
    fn eq(&self, other: &Self) -> bool {
        bool::from(self.0.ct_eq(&other.0))
    }
}

impl Eq for Secret32 {}

impl fmt::Debug for Secret32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret32(<redacted>)")
    }
}

/// The round parameters decoding needs: the degree k (bounds every list and bitmap) and the
/// binding statement (d, J, k, b: the exact length of a binding proof).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WireParams {
    degree: u32,
    bind: BindParams,
    proof_len: usize,
}

impl WireParams {
    /// k = `degree`, d, J and b; refuses what `BindParams::new` refuses (§5.3 limits).
    pub fn new(degree: u32, dim: u32, projections: u32, bits: u8) -> Result<Self, ValidateError> {
        let bind = BindParams::new(
            dim as usize,
            projections as usize,
            degree as usize,
            u32::from(bits),
        )?;
        let proof_len = bind_proof_len(&bind)?;
        Ok(Self {
            degree,
            bind,
            proof_len,
        })
    }
    /// k.
    pub fn degree(&self) -> u32 {
        self.degree
    }
    /// The binding statement's parameters.
    pub fn bind(&self) -> &BindParams {
        &self.bind
    }
    fn bitmap_len(&self) -> usize {
        (self.degree as usize).div_ceil(8)
    }
}

fn header(w: &mut Writer, t: u8) {
    w.u8(WIRE_VERSION).u8(t);
}

fn read_header(r: &mut Reader<'_>) -> Result<u8, CodecError> {
    if r.u8()? != WIRE_VERSION {
        // Not `UnknownTag`: the tag has not been read (review N4).
        return Err(CodecError::NonCanonical(
            "validation wire version (expected 3)",
        ));
    }
    r.u8()
}

fn check_size(bytes: &[u8]) -> Result<(), CodecError> {
    // The share stage's messages carry an id set of up to n bits; every other message is
    // bounded by k and the proof sizes.
    let limit = match bytes {
        [WIRE_VERSION, tag::SHARES | tag::ROUTED_SHARES, ..] => MAX_SHARE_STAGE_LEN,
        _ => MAX_MESSAGE_LEN,
    };
    if bytes.len() > limit {
        return Err(CodecError::TooLarge {
            what: "validation message",
            limit,
            got: bytes.len(),
        });
    }
    Ok(())
}

fn point(r: &mut Reader<'_>) -> Result<PointBytes, CodecError> {
    let p: PointBytes = r.array()?;
    if CompressedRistretto(p).decompress().is_none() {
        return Err(CodecError::NonCanonical("ristretto255 point"));
    }
    Ok(p)
}

/// (id, 32 bytes) pairs in strictly increasing id, at most `limit`.
fn encode_id_list(w: &mut Writer, list: &[(ClientId, [u8; 32])]) {
    w.u32(list.len() as u32);
    for (id, h) in list {
        w.u32(*id).fixed(h);
    }
}

fn decode_id_list(
    r: &mut Reader<'_>,
    what: &'static str,
    limit: usize,
) -> Result<Vec<(ClientId, [u8; 32])>, CodecError> {
    let n = r.count(what, limit, 36)?;
    let mut out: Vec<(ClientId, [u8; 32])> = Vec::with_capacity(n);
    for _ in 0..n {
        let id = r.u32()?;
        if out.last().is_some_and(|(prev, _)| *prev >= id) {
            return Err(CodecError::NonCanonical(what));
        }
        out.push((id, r.array()?));
    }
    Ok(out)
}

/// The members of a bitmap over `neighbours` (increasing id, bit i LSB first for the i-th);
/// `None` if the length or padding does not fit. This *is* [`MaskedWith::members`] (review N5:
/// one reader, so the server, the clients and the evidence checks cannot read a bitmap two
/// ways, D21).
fn bitmap_members(bitmap: &[u8], neighbours: &[ClientId]) -> Option<Vec<ClientId>> {
    MaskedWith {
        bitmap: bitmap.to_vec(),
        signature: [0; 64],
    }
    .members(neighbours)
}

/// Whether `statement` is `owner`'s valid signed upload bitmap (`MaskedWith`) for `session`,
/// verified strictly (`crypto::verify`, never `verify_all`: it is forwarded to other clients
/// in §8.5 evidence, SECURITY.md §4a).
pub fn verify_masked_with(
    statement: &MaskedWith,
    identity: &[u8; 32],
    session: &SessionId,
    owner: ClientId,
) -> bool {
    let msg = MaskedWith::signed_bytes(session, owner, &statement.bitmap);
    crypto::verify(identity, &msg, &statement.signature)
}

fn encode_masked_with(w: &mut Writer, statement: &MaskedWith) {
    w.bytes(&statement.bitmap).fixed(&statement.signature);
}

/// A `MaskedWith` exactly as `crate::messages` encodes it (bitmap at most ⌈k/8⌉ bytes).
fn decode_masked_with(r: &mut Reader<'_>, params: &WireParams) -> Result<MaskedWith, CodecError> {
    Ok(MaskedWith {
        bitmap: r.bytes("masked-with bitmap", params.bitmap_len())?.to_vec(),
        signature: r.array()?,
    })
}

fn popcount(bitmap: &[u8]) -> usize {
    bitmap.iter().map(|b| b.count_ones() as usize).sum()
}

// ---------------------------------------------------------------------------------------------
// Share stage: the signed pair-seed hashes (§8.3).

/// The share-stage addition of §8.3 (sent with `EncryptedShares`): h_uv for every neighbour v
/// the client shares with, in increasing v, and one Ed25519 signature over (session, u, the
/// list, V_u). V_u is signed, not sent (the server recomputes it from the entries it forwarded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairSeedHashes {
    /// (v, h_uv), strictly increasing v.
    pub hashes: Vec<(ClientId, [u8; 32])>,
    /// Ed25519 over [`PairSeedHashes::signed_bytes`].
    pub signature: [u8; 64],
}

impl PairSeedHashes {
    /// What u signs: `"secagg/v3/validate/" ‖ "share-hashes" ‖ session ‖ le32(u) ‖ le32(count)
    /// ‖ (le32(v) ‖ h_uv)… ‖ V_u` (D20).
    pub fn signed_bytes(
        session: &SessionId,
        owner: ClientId,
        hashes: &[(ClientId, [u8; 32])],
        view_digest: &[u8; 32],
    ) -> Vec<u8> {
        let mut w = Writer::with_capacity(96 + 36 * hashes.len());
        w.fixed(DOMAIN)
            .fixed(b"share-hashes")
            .fixed(session)
            .u32(owner);
        encode_id_list(&mut w, hashes);
        w.fixed(view_digest);
        w.finish()
    }

    /// Signs `hashes` (strictly increasing v, else refused) together with V_u.
    pub fn sign(
        identity: &IdentityKey,
        session: &SessionId,
        owner: ClientId,
        hashes: Vec<(ClientId, [u8; 32])>,
        view_digest: &[u8; 32],
    ) -> Result<Self, ValidateError> {
        if hashes.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(ValidateError::NotIncreasing {
                what: "pair-seed hashes",
            });
        }
        let signature = identity.sign(&Self::signed_bytes(session, owner, &hashes, view_digest));
        Ok(Self { hashes, signature })
    }

    /// Whether the signature verifies under `identity` for (session, owner, V_u).
    pub fn verify(
        &self,
        identity: &[u8; 32],
        session: &SessionId,
        owner: ClientId,
        view_digest: &[u8; 32],
    ) -> bool {
        let msg = Self::signed_bytes(session, owner, &self.hashes, view_digest);
        crypto::verify(identity, &msg, &self.signature)
    }

    /// Whether the list names exactly `neighbours` (increasing; the server passes N(u) ∩ U1,
    /// the neighbours u shares with): one hash for each, no other (D20, review W1). An honest
    /// client's list always does. **Step 8's server must call this at the share stage and make
    /// u a dropout when it fails**, as for a bad signature: a list that leaves a neighbour out
    /// lets no comparison see that pair. (§8.5's check does not rely on it: a missing h_uw
    /// falls back to the P rule, `evidence::check_dropped_pair`.)
    pub fn covers(&self, neighbours: &[ClientId]) -> bool {
        self.hashes.len() == neighbours.len()
            && self.hashes.iter().zip(neighbours).all(|((v, _), n)| v == n)
    }

    /// The signed h_uv for peer `v`.
    pub fn hash_for(&self, v: ClientId) -> Option<&[u8; 32]> {
        self.hashes
            .binary_search_by_key(&v, |(id, _)| *id)
            .ok()
            .map(|i| &self.hashes[i].1)
    }

    /// Appends the encoding (count, (v, h)…, signature).
    pub fn encode(&self, w: &mut Writer) {
        encode_id_list(w, &self.hashes);
        w.fixed(&self.signature);
    }

    /// Decodes untrusted bytes (at most k hashes, strictly increasing v).
    pub fn decode(r: &mut Reader<'_>, params: &WireParams) -> Result<Self, CodecError> {
        Ok(Self {
            hashes: decode_id_list(r, "pair-seed hashes", params.degree as usize)?,
            signature: r.array()?,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The challenge stage (§5.2, §7.2).

/// A client's signed answer to the challenge κ (§7.2, §15): κ echoed, its masked-with bitmap
/// S_u (over N(u), as signed at the upload), O_u, the P_uv for v ∈ S_u in increasing v (as many
/// as the bitmap has bits), the binding proof's bytes (`secagg_zk::codec`, D15) and u's
/// signature over (session, u, κ, SHA-256 of everything before the signature).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationResponse {
    /// κ as the client received it.
    pub kappa: [u8; 32],
    /// rev9 fix: V_u, the view digest u signed with its share-stage list.
    pub view: [u8; 32],
    /// S_u over N(u) (bit i for the i-th neighbour, increasing id, LSB first).
    pub bitmap: Vec<u8>,
    /// O_u.
    pub self_commitment: PointBytes,
    /// P_uv for v ∈ S_u, increasing v.
    pub pair_commitments: Vec<PointBytes>,
    /// The binding proof (`secagg_zk::codec::encode_bind_proof`).
    pub proof: Vec<u8>,
    /// Ed25519 over [`ValidationResponse::signed_bytes`].
    pub signature: [u8; 64],
}

impl ValidationResponse {
    /// Builds and signs a response.
    #[allow(clippy::too_many_arguments)]
    pub fn sign(
        identity: &IdentityKey,
        session: &SessionId,
        owner: ClientId,
        kappa: [u8; 32],
        view: [u8; 32],
        bitmap: Vec<u8>,
        self_commitment: &RistrettoPoint,
        pair_commitments: &[RistrettoPoint],
        proof: Vec<u8>,
    ) -> Self {
        let mut out = Self {
            kappa,
            view,
            bitmap,
            self_commitment: self_commitment.compress().to_bytes(),
            pair_commitments: pair_commitments
                .iter()
                .map(|p| p.compress().to_bytes())
                .collect(),
            proof,
            signature: [0; 64],
        };
        out.signature = identity.sign(&out.signed_bytes(session, owner));
        out
    }

    fn encode_body(&self, w: &mut Writer) {
        w.fixed(&self.kappa)
            .fixed(&self.view)
            .bytes(&self.bitmap)
            .fixed(&self.self_commitment);
        for p in &self.pair_commitments {
            w.fixed(p);
        }
        w.bytes(&self.proof);
    }

    /// SHA-256 of the response's encoding without the signature ("the whole response", §7.2).
    pub fn body_hash(&self) -> [u8; 32] {
        let mut w = Writer::with_capacity(
            128 + self.bitmap.len() + 32 * self.pair_commitments.len() + self.proof.len(),
        );
        self.encode_body(&mut w);
        crypto::hash(&[&w.finish()])
    }

    /// What u signs: `"secagg/v3/validate/" ‖ "response" ‖ session ‖ le32(u) ‖ κ ‖
    /// SHA-256(body)` (§7.2; D20).
    pub fn signed_bytes(&self, session: &SessionId, owner: ClientId) -> Vec<u8> {
        let mut w = Writer::with_capacity(160);
        w.fixed(DOMAIN)
            .fixed(b"response")
            .fixed(session)
            .u32(owner)
            .fixed(&self.kappa)
            .fixed(&self.body_hash());
        w.finish()
    }

    /// Whether the signature verifies under `identity` for (session, owner), strictly
    /// (`crypto::verify`; never batch-check a response: it is forwarded to other clients,
    /// SECURITY.md §4a). Also refuses a response whose P count is not its bitmap's popcount:
    /// the signed body carries no count, and is injective only over responses with one P per
    /// set bit, which is all the decoder produces (review N1).
    pub fn verify(&self, identity: &[u8; 32], session: &SessionId, owner: ClientId) -> bool {
        popcount(&self.bitmap) == self.pair_commitments.len()
            && crypto::verify(
                identity,
                &self.signed_bytes(session, owner),
                &self.signature,
            )
    }

    /// S_u read over N(u) (`neighbours`, increasing), provided the bitmap fits N(u) and the
    /// response carries exactly one P per member; `None` otherwise (a malformed response).
    pub fn masked_with(&self, neighbours: &[ClientId]) -> Option<Vec<ClientId>> {
        bitmap_members(&self.bitmap, neighbours).filter(|m| m.len() == self.pair_commitments.len())
    }

    /// Whether this response's bitmap is, byte for byte, the one u signed with its upload
    /// (`upload_bitmap`, the `MaskedWith` statement) and fits N(u) with one P per member.
    /// **Step 8's server must refuse (a dropout at Validate, `malformed`) a response that
    /// fails this**, before checking its proof (D14 absorbs "the signed S_u"; review W2). An
    /// honest client copies its upload bitmap into its response. §8.5 evidence does not rely
    /// on it: it carries the upload statement and treats two different signed bitmaps as a
    /// lie (D27).
    pub fn fits(&self, upload_bitmap: &[u8], neighbours: &[ClientId]) -> bool {
        self.bitmap == upload_bitmap && self.masked_with(neighbours).is_some()
    }

    /// The P_uv this response carries for peer `v` (`None` if v ∉ S_u or the response does
    /// not fit N(u)).
    pub fn pair_commitment_for(&self, neighbours: &[ClientId], v: ClientId) -> Option<PointBytes> {
        let members = self.masked_with(neighbours)?;
        let i = members.binary_search(&v).ok()?;
        self.pair_commitments.get(i).copied()
    }

    /// O_u and the P_uv as points (for the binding statement); `None` if an encoding is not
    /// a canonical point (never for a decoded response).
    pub fn points(&self) -> Option<(RistrettoPoint, Vec<RistrettoPoint>)> {
        let o = CompressedRistretto(self.self_commitment).decompress()?;
        let pairs = self
            .pair_commitments
            .iter()
            .map(|p| CompressedRistretto(*p).decompress())
            .collect::<Option<Vec<_>>>()?;
        Some((o, pairs))
    }

    /// The binding proof parsed for the round's statement (`secagg_zk::codec`).
    pub fn bind_proof(&self, params: &WireParams) -> Result<BindProof, ValidateError> {
        Ok(decode_bind_proof(&params.bind, &self.proof)?)
    }

    /// Appends the encoding (body, then the signature).
    pub fn encode(&self, w: &mut Writer) {
        self.encode_body(w);
        w.fixed(&self.signature);
    }

    /// Decodes untrusted bytes: the bitmap at most ⌈k/8⌉ bytes, one canonical point per set
    /// bit, a proof of exactly the statement's length.
    pub fn decode(r: &mut Reader<'_>, params: &WireParams) -> Result<Self, CodecError> {
        let kappa = r.array()?;
        let view = r.array()?;
        let bitmap = r.bytes("response bitmap", params.bitmap_len())?.to_vec();
        let self_commitment = point(r)?;
        let count = popcount(&bitmap);
        if count > params.degree as usize {
            return Err(CodecError::TooLarge {
                what: "pair commitments",
                limit: params.degree as usize,
                got: count,
            });
        }
        if count.saturating_mul(32) > r.remaining() {
            return Err(CodecError::Truncated);
        }
        let mut pair_commitments = Vec::with_capacity(count);
        for _ in 0..count {
            pair_commitments.push(point(r)?);
        }
        let proof = r.bytes("binding proof", MAX_BIND_PROOF_LEN)?;
        let expected = params.proof_len;
        if proof.len() != expected {
            return Err(CodecError::LengthMismatch {
                what: "binding proof",
                expected,
                got: proof.len(),
            });
        }
        Ok(Self {
            kappa,
            view,
            bitmap,
            self_commitment,
            pair_commitments,
            proof: proof.to_vec(),
            signature: r.array()?,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Disputes (§8.3).

/// The server's request to answer a dispute over the pair (recipient, `peer`): the peer's whole
/// signed response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisputeRequest {
    /// The other end of the disputed pair.
    pub peer: ClientId,
    /// Its signed binding response.
    pub response: ValidationResponse,
}

/// An answer to a dispute: the pair seed s_uv (the per-round HKDF output, never the DH value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisputeAnswer {
    /// The other end of the disputed pair.
    pub peer: ClientId,
    /// s_uv.
    pub seed: Secret32,
}

// ---------------------------------------------------------------------------------------------
// Exclusion steps (§8.5, §8.6).

/// §8.5's evidence that the accused u lied about its pair with the dropped w.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DroppedPairEvidence {
    /// u's signed share-stage list (with the signature over it and V_u).
    pub hashes: PairSeedHashes,
    /// The k leaves of u's view, (v, leaf_v) in increasing v: they must hash to the V_u u
    /// signed.
    pub view: Vec<(ClientId, [u8; 32])>,
    /// w's key entry: its leaf must be the one for w in u's view.
    pub dropped_entry: KeyEntry,
    /// sk_w as the server rebuilt it: X25519-public(sk_w) must be the entry's mask key.
    pub dropped_key: Secret32,
    /// u's signed upload bitmap (the `MaskedWith` of its `MaskedInput`): the S_u the server
    /// unmasks with, read by the check (w must be in it; D27).
    pub upload: MaskedWith,
    /// u's signed binding response (for the holder's session and κ, F8).
    pub response: ValidationResponse,
}

/// §8.6's evidence that the accused u lied about its self mask.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelfMaskEvidence {
    /// u's signed binding response (for the holder's session and κ, F8).
    pub response: ValidationResponse,
    /// b_u as the server rebuilt it (checked against u's signed key entry).
    pub self_secret: Secret32,
}

/// The evidence of an exclusion step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Evidence {
    /// A lie on a pair with a client outside U3 (§8.5).
    DroppedPair(Box<DroppedPairEvidence>),
    /// A lie on the self mask (§8.6, rule E).
    SelfMask(Box<SelfMaskEvidence>),
}

/// The server asks the holders of `liar`'s mask-key shares to release them, with evidence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExclusionRequest {
    /// The accused.
    pub liar: ClientId,
    /// Why.
    pub evidence: Evidence,
}

/// A holder's share of the liar's mask key (after it checked the evidence itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExclusionShares {
    /// The accused.
    pub liar: ClientId,
    /// The holder's share of sk_liar.
    pub share: Share,
}

pub(crate) fn encode_entry(w: &mut Writer, e: &KeyEntry) {
    w.u32(e.id)
        .fixed(&e.enc_pk)
        .fixed(&e.mask_pk)
        .fixed(&e.commitment);
    match &e.signature {
        Some(s) => w.u8(1).fixed(s),
        None => w.u8(0),
    };
}

/// A key entry exactly as `crate::messages` encodes it.
pub(crate) fn decode_entry(r: &mut Reader<'_>) -> Result<KeyEntry, CodecError> {
    Ok(KeyEntry {
        id: r.u32()?,
        enc_pk: r.array()?,
        mask_pk: r.array()?,
        commitment: r.array()?,
        signature: match r.u8()? {
            0 => None,
            1 => Some(r.array()?),
            _ => return Err(CodecError::NonCanonical("signature flag")),
        },
    })
}

impl Evidence {
    fn encode(&self, w: &mut Writer) {
        match self {
            Evidence::DroppedPair(e) => {
                w.u8(tag::EVIDENCE_DROPPED_PAIR);
                e.hashes.encode(w);
                encode_id_list(w, &e.view);
                encode_entry(w, &e.dropped_entry);
                w.fixed(e.dropped_key.expose());
                encode_masked_with(w, &e.upload);
                e.response.encode(w);
            }
            Evidence::SelfMask(e) => {
                w.u8(tag::EVIDENCE_SELF_MASK);
                e.response.encode(w);
                w.fixed(e.self_secret.expose());
            }
        }
    }

    fn decode(r: &mut Reader<'_>, params: &WireParams) -> Result<Self, CodecError> {
        match r.u8()? {
            tag::EVIDENCE_DROPPED_PAIR => {
                let hashes = PairSeedHashes::decode(r, params)?;
                let view = decode_id_list(r, "view leaves", params.degree as usize)?;
                let dropped_entry = decode_entry(r)?;
                let dropped_key = Secret32::new(r.array()?);
                let upload = decode_masked_with(r, params)?;
                let response = ValidationResponse::decode(r, params)?;
                Ok(Evidence::DroppedPair(Box::new(DroppedPairEvidence {
                    hashes,
                    view,
                    dropped_entry,
                    dropped_key,
                    upload,
                    response,
                })))
            }
            tag::EVIDENCE_SELF_MASK => {
                let response = ValidationResponse::decode(r, params)?;
                let self_secret = Secret32::new(r.array()?);
                Ok(Evidence::SelfMask(Box::new(SelfMaskEvidence {
                    response,
                    self_secret,
                })))
            }
            _ => Err(CodecError::NonCanonical("evidence kind")),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Messages.

/// The new server-to-client messages of validated rounds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValidationServerMessage {
    /// κ, the challenge (§5.2).
    Challenge {
        /// κ.
        kappa: [u8; 32],
    },
    /// Answer a dispute (§8.3).
    DisputeRequest(DisputeRequest),
    /// Release a share of a liar's mask key (§8.5, §8.6).
    ExclusionRequest(ExclusionRequest),
    /// The share stage's routing in a validated round (§8.3): the plain `SharesForYou`
    /// message's bytes, and for each neighbour in U2 the pair-seed hash it signed for the pair
    /// with the recipient (increasing id), so that the recipient cuts the pairs whose hashes
    /// differ from its own.
    RoutedShares {
        /// A `ServerMessage::SharesForYou`, encoded.
        routed: Vec<u8>,
        /// (v, h_vu) for the recipient's neighbours v in U2.
        peer_hashes: Vec<(ClientId, [u8; 32])>,
    },
}

/// The new client-to-server messages of validated rounds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValidationClientMessage {
    /// The binding answer (§7.2).
    ValidationResponse(ValidationResponse),
    /// s_uv for a dispute (§8.3).
    DisputeAnswer(DisputeAnswer),
    /// A share of a liar's mask key (§8.5, §8.6).
    ExclusionShares(ExclusionShares),
    /// The share stage of a validated round (§8.3): the plain `EncryptedShares` message's
    /// bytes and the signed pair-seed hashes.
    Shares {
        /// A `ClientMessage::EncryptedShares`, encoded.
        shares: Vec<u8>,
        /// The signed h_uv list (D20).
        hashes: PairSeedHashes,
    },
}

impl ValidationServerMessage {
    /// Encodes the message.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        match self {
            ValidationServerMessage::Challenge { kappa } => {
                header(&mut w, tag::CHALLENGE);
                w.fixed(kappa);
            }
            ValidationServerMessage::DisputeRequest(d) => {
                header(&mut w, tag::DISPUTE_REQUEST);
                w.u32(d.peer);
                d.response.encode(&mut w);
            }
            ValidationServerMessage::ExclusionRequest(e) => {
                header(&mut w, tag::EXCLUSION_REQUEST);
                w.u32(e.liar);
                e.evidence.encode(&mut w);
            }
            ValidationServerMessage::RoutedShares {
                routed,
                peer_hashes,
            } => {
                header(&mut w, tag::ROUTED_SHARES);
                w.bytes(routed);
                encode_id_list(&mut w, peer_hashes);
            }
        }
        w.finish()
    }

    /// Decodes untrusted bytes for a round with `params`.
    pub fn decode(bytes: &[u8], params: &WireParams) -> Result<Self, CodecError> {
        check_size(bytes)?;
        let mut r = Reader::new(bytes);
        let msg = match read_header(&mut r)? {
            tag::CHALLENGE => ValidationServerMessage::Challenge { kappa: r.array()? },
            tag::DISPUTE_REQUEST => ValidationServerMessage::DisputeRequest(DisputeRequest {
                peer: r.u32()?,
                response: ValidationResponse::decode(&mut r, params)?,
            }),
            tag::EXCLUSION_REQUEST => ValidationServerMessage::ExclusionRequest(ExclusionRequest {
                liar: r.u32()?,
                evidence: Evidence::decode(&mut r, params)?,
            }),
            tag::ROUTED_SHARES => ValidationServerMessage::RoutedShares {
                routed: r.bytes("routed shares", MAX_SHARE_STAGE_LEN)?.to_vec(),
                peer_hashes: decode_id_list(&mut r, "peer hashes", params.degree as usize)?,
            },
            other => return Err(CodecError::UnknownTag(other)),
        };
        r.finish()?;
        Ok(msg)
    }
}

impl ValidationClientMessage {
    /// Encodes the message.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        match self {
            ValidationClientMessage::ValidationResponse(v) => {
                header(&mut w, tag::VALIDATION_RESPONSE);
                v.encode(&mut w);
            }
            ValidationClientMessage::DisputeAnswer(a) => {
                header(&mut w, tag::DISPUTE_ANSWER);
                w.u32(a.peer).fixed(a.seed.expose());
            }
            ValidationClientMessage::ExclusionShares(s) => {
                header(&mut w, tag::EXCLUSION_SHARES);
                let bytes = zeroize::Zeroizing::new(s.share.to_bytes());
                w.u32(s.liar).fixed(&bytes[..]);
            }
            ValidationClientMessage::Shares { shares, hashes } => {
                header(&mut w, tag::SHARES);
                w.bytes(shares);
                hashes.encode(&mut w);
            }
        }
        w.finish()
    }

    /// Decodes untrusted bytes for a round with `params`.
    pub fn decode(bytes: &[u8], params: &WireParams) -> Result<Self, CodecError> {
        check_size(bytes)?;
        let mut r = Reader::new(bytes);
        let msg = match read_header(&mut r)? {
            tag::VALIDATION_RESPONSE => ValidationClientMessage::ValidationResponse(
                ValidationResponse::decode(&mut r, params)?,
            ),
            tag::DISPUTE_ANSWER => ValidationClientMessage::DisputeAnswer(DisputeAnswer {
                peer: r.u32()?,
                seed: Secret32::new(r.array()?),
            }),
            tag::EXCLUSION_SHARES => ValidationClientMessage::ExclusionShares(ExclusionShares {
                liar: r.u32()?,
                share: Share::from_bytes(r.take(SHARE_LEN)?)
                    .map_err(|_| CodecError::NonCanonical("share"))?,
            }),
            tag::SHARES => ValidationClientMessage::Shares {
                shares: r.bytes("encrypted shares", MAX_SHARE_STAGE_LEN)?.to_vec(),
                hashes: PairSeedHashes::decode(&mut r, params)?,
            },
            other => return Err(CodecError::UnknownTag(other)),
        };
        r.finish()?;
        Ok(msg)
    }
}

/// The round parameters [`fuzz_decode`] reads from its first two bytes.
fn fuzz_params(a: u8, b: u8) -> Option<WireParams> {
    let degree = u32::from(a) * 4 + u32::from(b & 3);
    let dim = 1u32 << (b % 21);
    let projections = 1 + (u32::from(a) << (b % 4));
    let bits = 1 + (b >> 3) % 32;
    WireParams::new(degree, dim, projections, bits).ok()
}

/// The fuzz target's entry point (`fuzz/fuzz_targets/validation_decode.rs`): round parameters
/// from the first two bytes (k up to 1,023, d up to 2^20, J up to 2^11, b up to 32), then the
/// rest decoded as every message of this module and as a bare share-stage hash list. Must
/// hold: no panic, and whatever decodes re-encodes to the same bytes (asserted here: a failed
/// assertion is the bug the fuzzer reports).
/// The stage a validated round's client message belongs to, from its header alone (as
/// `messages::client_message_stage` does for the plain messages).
pub fn client_message_stage(bytes: &[u8]) -> Option<crate::Stage> {
    match bytes {
        [WIRE_VERSION, tag::SHARES, ..] => Some(crate::Stage::ShareKeys),
        [
            WIRE_VERSION,
            tag::VALIDATION_RESPONSE | tag::DISPUTE_ANSWER,
            ..,
        ] => Some(crate::Stage::Validate),
        _ => None,
    }
}

#[doc(hidden)]
pub fn fuzz_decode(data: &[u8]) {
    let [a, b, rest @ ..] = data else {
        return;
    };
    let Some(params) = fuzz_params(*a, *b) else {
        return;
    };
    if let Ok(m) = ValidationServerMessage::decode(rest, &params) {
        assert_eq!(m.encode(), rest, "validation server message re-encodes");
    }
    if let Ok(m) = ValidationClientMessage::decode(rest, &params) {
        assert_eq!(m.encode(), rest, "validation client message re-encodes");
    }
    let mut r = Reader::new(rest);
    if let Ok(h) = PairSeedHashes::decode(&mut r, &params)
        && r.finish().is_ok()
    {
        let mut w = Writer::default();
        h.encode(&mut w);
        assert_eq!(w.finish(), rest, "pair-seed hashes re-encode");
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use alloc::vec;
    use curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT;
    use curve25519_dalek::scalar::Scalar;

    const SESSION: SessionId = [0x5e; 32];

    pub(crate) fn params() -> WireParams {
        // What `fuzz_decode` derives from the bytes (1, 4): k = 4, d = 16, J = 2, b = 1.
        WireParams::new(4, 16, 2, 1).unwrap()
    }

    pub(crate) fn proof_bytes(p: &WireParams) -> Vec<u8> {
        vec![7u8; bind_proof_len(p.bind()).unwrap()]
    }

    fn response(p: &WireParams) -> ValidationResponse {
        let id = IdentityKey::from_seed(&[1; 32]);
        let g = RISTRETTO_BASEPOINT_POINT;
        ValidationResponse::sign(
            &id,
            &SESSION,
            3,
            [9; 32],
            [4; 32],
            vec![0b1011],
            &(g * Scalar::from(5u64)),
            &[g, g * Scalar::from(2u64), g * Scalar::from(3u64)],
            proof_bytes(p),
        )
    }

    fn hashes() -> PairSeedHashes {
        let id = IdentityKey::from_seed(&[1; 32]);
        PairSeedHashes::sign(&id, &SESSION, 3, vec![(1, [1; 32]), (2, [2; 32])], &[4; 32]).unwrap()
    }

    fn entry() -> KeyEntry {
        KeyEntry {
            id: 2,
            enc_pk: [1; 32],
            mask_pk: [2; 32],
            commitment: [3; 32],
            signature: Some([4; 64]),
        }
    }

    fn all_messages() -> (Vec<ValidationServerMessage>, Vec<ValidationClientMessage>) {
        let p = params();
        let server = vec![
            ValidationServerMessage::Challenge { kappa: [8; 32] },
            ValidationServerMessage::DisputeRequest(DisputeRequest {
                peer: 2,
                response: response(&p),
            }),
            ValidationServerMessage::ExclusionRequest(ExclusionRequest {
                liar: 3,
                evidence: Evidence::DroppedPair(Box::new(DroppedPairEvidence {
                    hashes: hashes(),
                    view: vec![(1, [5; 32]), (2, [6; 32]), (4, [7; 32])],
                    dropped_entry: entry(),
                    dropped_key: Secret32::new([0xaa; 32]),
                    upload: MaskedWith {
                        bitmap: vec![0b1011],
                        signature: [5; 64],
                    },
                    response: response(&p),
                })),
            }),
            ValidationServerMessage::ExclusionRequest(ExclusionRequest {
                liar: 3,
                evidence: Evidence::SelfMask(Box::new(SelfMaskEvidence {
                    response: response(&p),
                    self_secret: Secret32::new([0xbb; 32]),
                })),
            }),
        ];
        let client = vec![
            ValidationClientMessage::ValidationResponse(response(&p)),
            ValidationClientMessage::DisputeAnswer(DisputeAnswer {
                peer: 2,
                seed: Secret32::new([0xcc; 32]),
            }),
            ValidationClientMessage::ExclusionShares(ExclusionShares {
                liar: 3,
                share: Share {
                    x: 4,
                    y: [1; crate::shamir::CHUNKS],
                },
            }),
        ];
        (server, client)
    }

    /// Every message round-trips, and every strict prefix and every single-byte flip either
    /// fails to decode or decodes to something that re-encodes to the flipped bytes.
    #[test]
    fn messages_roundtrip_and_truncations_fail() {
        let p = params();
        // The seeds of fuzz/corpus/validation_decode/seed-wire-* are these messages after the
        // bytes (1, 4), which select exactly these parameters.
        assert_eq!(fuzz_params(1, 4), Some(p));
        let (server, client) = all_messages();
        let mut encodings = Vec::new();
        for m in &server {
            let bytes = m.encode();
            assert_eq!(&ValidationServerMessage::decode(&bytes, &p).unwrap(), m);
            encodings.push(bytes);
        }
        for m in &client {
            let bytes = m.encode();
            assert_eq!(&ValidationClientMessage::decode(&bytes, &p).unwrap(), m);
            encodings.push(bytes);
        }
        for bytes in &encodings {
            for cut in 0..bytes.len() {
                assert!(ValidationServerMessage::decode(&bytes[..cut], &p).is_err());
                assert!(ValidationClientMessage::decode(&bytes[..cut], &p).is_err());
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(ValidationServerMessage::decode(&longer, &p).is_err());
            assert!(ValidationClientMessage::decode(&longer, &p).is_err());
            let mut all = vec![1, 4];
            all.extend_from_slice(bytes);
            fuzz_decode(&all);
            for i in 0..bytes.len() {
                let mut flipped = bytes.clone();
                flipped[i] ^= 0x40;
                let mut framed = vec![1, 4];
                framed.extend_from_slice(&flipped);
                fuzz_decode(&framed);
            }
        }
    }

    #[test]
    fn secrets_are_redacted_and_limits_hold() {
        let (server, client) = all_messages();
        let shown = alloc::format!("{server:?} {client:?}");
        for secret in ["170, 170", "187, 187", "204, 204"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("<redacted>"));
        let p = params();
        // Above the size limit: refused before decoding.
        let big = vec![0u8; MAX_MESSAGE_LEN + 1];
        assert!(matches!(
            ValidationServerMessage::decode(&big, &p),
            Err(CodecError::TooLarge { .. })
        ));
        // A bitmap with more bits than k, a proof of another length, a non-canonical point,
        // an unordered list: each refused.
        let mut resp = response(&p);
        resp.bitmap = vec![0xff];
        resp.pair_commitments = vec![resp.self_commitment; 8];
        let enc = ValidationClientMessage::ValidationResponse(resp).encode();
        assert!(ValidationClientMessage::decode(&enc, &p).is_err());
        let mut resp = response(&p);
        resp.proof.push(0);
        let enc = ValidationClientMessage::ValidationResponse(resp).encode();
        assert!(matches!(
            ValidationClientMessage::decode(&enc, &p),
            Err(CodecError::LengthMismatch { .. })
        ));
        let mut resp = response(&p);
        resp.self_commitment = [0xff; 32];
        let enc = ValidationClientMessage::ValidationResponse(resp).encode();
        assert_eq!(
            ValidationClientMessage::decode(&enc, &p),
            Err(CodecError::NonCanonical("ristretto255 point"))
        );
        let mut h = hashes();
        h.hashes.swap(0, 1);
        let mut w = Writer::default();
        h.encode(&mut w);
        let enc = w.finish();
        assert!(PairSeedHashes::decode(&mut Reader::new(&enc), &p).is_err());
        // The largest DroppedPair request fits the limit.
        let big = WireParams::new(1023, 1 << 20, 1 << 10, 32).unwrap(); // J·d ≤ 2^30 (D24)
        let resp = ValidationResponse {
            kappa: [0; 32],
            view: [0; 32],
            bitmap: vec![0xff; 128],
            self_commitment: [0; 32],
            pair_commitments: vec![[0; 32]; 1024],
            proof: vec![0; bind_proof_len(big.bind()).unwrap()],
            signature: [0; 64],
        };
        let ev = ExclusionRequest {
            liar: 1,
            evidence: Evidence::DroppedPair(Box::new(DroppedPairEvidence {
                hashes: PairSeedHashes {
                    hashes: (0..1023).map(|i| (i, [0; 32])).collect(),
                    signature: [0; 64],
                },
                view: (0..1023).map(|i| (i, [0; 32])).collect(),
                dropped_entry: entry(),
                dropped_key: Secret32::new([0; 32]),
                upload: MaskedWith {
                    bitmap: vec![0xff; 128],
                    signature: [0; 64],
                },
                response: resp,
            })),
        };
        let len = ValidationServerMessage::ExclusionRequest(ev).encode().len();
        assert!(len <= MAX_MESSAGE_LEN, "{len}");
    }

    /// The seeds of `fuzz/corpus/validation_decode/seed-wire-*`: the bytes (1, 4) (this
    /// module's test parameters, `fuzz_params`) and one message each. With
    /// `SECAGG_WRITE_FUZZ_SEEDS=1` the files are (re)written; either way each must decode
    /// under those parameters (so a change of encoding that leaves a stale seed fails here).
    #[test]
    fn fuzz_seeds_decode() {
        let p = params();
        let (server, client) = all_messages();
        let names_s = [
            "challenge",
            "dispute-request",
            "exclusion-dropped-pair",
            "exclusion-self-mask",
        ];
        let names_c = ["validation-response", "dispute-answer", "exclusion-shares"];
        let mut seeds: Vec<(&str, Vec<u8>)> = Vec::new();
        for (n, m) in names_s.iter().zip(&server) {
            seeds.push((n, m.encode()));
        }
        for (n, m) in names_c.iter().zip(&client) {
            seeds.push((n, m.encode()));
        }
        let mut w = Writer::default();
        hashes().encode(&mut w);
        seeds.push(("share-hashes", w.finish()));
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fuzz/corpus/validation_decode"
        );
        let write = std::env::var_os("SECAGG_WRITE_FUZZ_SEEDS").is_some();
        for (name, msg) in seeds {
            let path = alloc::format!("{dir}/seed-wire-{name}");
            let mut framed = vec![1u8, 4];
            framed.extend_from_slice(&msg);
            if write {
                std::fs::write(&path, &framed).unwrap();
            }
            let Ok(bytes) = std::fs::read(&path) else {
                continue; // the fuzz directory is not part of every checkout
            };
            let rest = &bytes[2..];
            let decodes = ValidationServerMessage::decode(rest, &p).is_ok()
                || ValidationClientMessage::decode(rest, &p).is_ok()
                || {
                    let mut r = Reader::new(rest);
                    PairSeedHashes::decode(&mut r, &p).is_ok() && r.finish().is_ok()
                };
            assert!(
                decodes,
                "{path} is stale: regenerate with SECAGG_WRITE_FUZZ_SEEDS=1"
            );
            fuzz_decode(&bytes);
        }
    }

    /// Review N1: the signed body carries no P count, so two responses with different fields
    /// can share a body hash when one's P count is not its bitmap's popcount (the proof's first
    /// bytes read as a P). `verify` refuses such a response under the other's signature.
    #[test]
    fn a_response_whose_count_is_not_its_popcount_does_not_verify() {
        let id = IdentityKey::from_seed(&[1; 32]);
        let l: usize = 64;
        let mut proof = vec![7u8; l];
        proof[28..32].copy_from_slice(&((l - 32) as u32).to_le_bytes());
        let g = RISTRETTO_BASEPOINT_POINT;
        let a = ValidationResponse::sign(
            &id,
            &SESSION,
            3,
            [9; 32],
            [4; 32],
            vec![0b1],
            &g,
            &[g],
            proof.clone(),
        );
        let mut q = [0u8; 32];
        q[..4].copy_from_slice(&(l as u32).to_le_bytes());
        q[4..].copy_from_slice(&proof[..28]);
        let b = ValidationResponse {
            pair_commitments: vec![a.pair_commitments[0], q],
            proof: proof[32..].to_vec(),
            ..a.clone()
        };
        assert_ne!(a, b);
        assert_eq!(a.body_hash(), b.body_hash(), "the collision is there");
        assert!(a.verify(&id.public(), &SESSION, 3));
        assert!(
            !b.verify(&id.public(), &SESSION, 3),
            "B verifies under A's signature"
        );
    }

    /// Random flips, insertions, deletions and truncations of every message through the fuzz
    /// entry point (no panic, re-encoding exact); the review's mutation fuzzer, shortened.
    #[test]
    fn mutated_messages_never_panic() {
        use rand_chacha::ChaCha20Rng;
        use rand_core::{Rng, SeedableRng};
        let (server, client) = all_messages();
        let seeds: Vec<Vec<u8>> = server
            .iter()
            .map(|m| m.encode())
            .chain(client.iter().map(|m| m.encode()))
            .map(|m| [vec![1u8, 4], m].concat())
            .collect();
        let mut rng = ChaCha20Rng::seed_from_u64(0x5eed);
        for i in 0..4_000 {
            let mut m = seeds[i % seeds.len()].clone();
            for _ in 0..1 + rng.next_u32() % 4 {
                let j = rng.next_u32() as usize % (m.len() + 1);
                match rng.next_u32() % 5 {
                    0 if j < m.len() => m[j] ^= 1 << (rng.next_u32() % 8),
                    1 if j < m.len() => m[j] = rng.next_u32() as u8,
                    2 => m.insert(j, rng.next_u32() as u8),
                    3 if j < m.len() => {
                        m.remove(j);
                    }
                    4 => m.truncate(j),
                    _ => {}
                }
            }
            fuzz_decode(&m);
        }
    }

    /// Review N4: a wrong version byte is reported as such, not as an unknown tag.
    #[test]
    fn a_wrong_version_is_not_an_unknown_tag() {
        let p = params();
        let mut bytes = ValidationServerMessage::Challenge { kappa: [8; 32] }.encode();
        bytes[0] = 2;
        let e = ValidationServerMessage::decode(&bytes, &p).unwrap_err();
        assert!(
            matches!(e, CodecError::NonCanonical(w) if w.contains("version")),
            "{e:?}"
        );
        let e = ValidationClientMessage::decode(&bytes, &p).unwrap_err();
        assert!(
            matches!(e, CodecError::NonCanonical(w) if w.contains("version")),
            "{e:?}"
        );
        bytes[0] = WIRE_VERSION;
        bytes[1] = 0x7f;
        assert_eq!(
            ValidationServerMessage::decode(&bytes, &p),
            Err(CodecError::UnknownTag(0x7f))
        );
    }

    /// Review N5: the response's bitmap reader is `MaskedWith::members`, padding bits included.
    #[test]
    fn one_bitmap_reader() {
        let nbrs = [1, 3, 4];
        for byte in 0..=255u8 {
            let m = MaskedWith {
                bitmap: vec![byte],
                signature: [0; 64],
            };
            assert_eq!(bitmap_members(&[byte], &nbrs), m.members(&nbrs));
        }
        assert_eq!(bitmap_members(&[0b1000_0001], &nbrs), None);
    }

    #[test]
    fn signatures_cover_every_field() {
        let p = params();
        let id = IdentityKey::from_seed(&[1; 32]);
        let pk = id.public();
        let r = response(&p);
        assert!(r.verify(&pk, &SESSION, 3));
        assert!(!r.verify(&pk, &SESSION, 4));
        assert!(!r.verify(&pk, &[0; 32], 3));
        let mut m = r.clone();
        m.kappa[0] ^= 1;
        assert!(!m.verify(&pk, &SESSION, 3));
        let mut m = r.clone();
        m.bitmap[0] ^= 4;
        assert!(!m.verify(&pk, &SESSION, 3));
        let mut m = r.clone();
        m.pair_commitments.swap(0, 1);
        assert!(!m.verify(&pk, &SESSION, 3));
        let mut m = r.clone();
        m.proof[0] ^= 1;
        assert!(!m.verify(&pk, &SESSION, 3));
        let h = hashes();
        assert!(h.verify(&pk, &SESSION, 3, &[4; 32]));
        assert!(!h.verify(&pk, &SESSION, 3, &[5; 32]));
        assert!(!h.verify(&pk, &SESSION, 2, &[4; 32]));
        assert_eq!(h.hash_for(2), Some(&[2; 32]));
        assert_eq!(h.hash_for(3), None);
        // Members of the bitmap over N(u) = (1, 2, 4, 5): bits 0, 1, 3.
        assert_eq!(r.masked_with(&[1, 2, 4, 5]), Some(vec![1, 2, 5]));
        assert_eq!(
            r.pair_commitment_for(&[1, 2, 4, 5], 5),
            Some(r.pair_commitments[2])
        );
        assert_eq!(r.pair_commitment_for(&[1, 2, 4, 5], 4), None);
        assert_eq!(r.masked_with(&[1, 2, 4]), None);
        let (o, pairs) = r.points().unwrap();
        assert_eq!(o.compress().to_bytes(), r.self_commitment);
        assert_eq!(pairs.len(), 3);
        // The test's proof bytes are not a proof: the parser says so, without panicking.
        assert!(r.bind_proof(&p).is_err());
        assert!(
            PairSeedHashes::sign(&id, &SESSION, 3, vec![(2, [0; 32]), (2, [0; 32])], &[0; 32])
                .is_err()
        );
    }
}
