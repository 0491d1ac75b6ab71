//! The evidence of exclusion steps (VALIDATION.md §8.5, §8.6; F2, F8) and its checks, run by
//! the server (to decide that u lied) and by every holder of a share of u's mask key (to decide
//! whether to release it).
//!
//! **§8.5, a lie on a pair with a dropped peer w** ([`check_dropped_pair`]). The evidence is
//! u's signed share-stage list with the k leaves of u's view (they must hash to the V_u u
//! signed), w's key entry (its leaf must be the one for w in u's view) with the rebuilt sk_w
//! (X25519-public(sk_w) must be the entry's mask key), u's signed upload bitmap (`MaskedWith`:
//! the S_u the server unmasks with, which must list w) and u's signed binding response, which
//! must be for the holder's own session and carry the holder's own κ (F8). The holder derives
//! s_uw from sk_w and u's mask key *as the holder holds u's entry* and accepts iff
//! SHA-256(…s_uw) ≠ u's signed h_uw **or** P(s_uw, κ) ≠ u's signed P_uw (F2: not v2's "the seed
//! matches and P differs", which two colluders on a fake seed escape). A list without h_uw
//! leaves the P rule (D27), and a response whose bitmap is not the upload's is itself the lie
//! (u signed two S_u, D28).
//!
//! **Precondition (D22, review W4).** A holder runs these checks only for a liar whose share
//! it holds, with the accused's key entry that came with that share (see [`Accused`]): the
//! check is sound only for the accused's real entry.
//!
//! **§8.6, a lie on the self mask** ([`check_self_mask`]). u's signed binding response (the
//! holder's session and κ), and b_u, checked against the commitment in u's signed key entry;
//! the holder recomputes O_u with that κ and accepts iff it differs from u's signed O_u.
//!
//! Neither can be made against an honest client: its hashes and commitments are functions of
//! the seeds they commit to, under the entry its own signed view names and the κ its own
//! signature carries (§8.2). A check that fails says who misbehaved ([`EvidenceError::culprit`]:
//! the server, which presented evidence that proves nothing); one that passes names the liar
//! ([`Lie`]). Details the design left open: VALIDATION.md §21.1 D22.

use alloc::vec::Vec;
use core::fmt;

use curve25519_dalek::ristretto::RistrettoPoint;
use secagg_zk::Generators;
use subtle::ConstantTimeEq;

use super::ValidateError;
use super::blind;
use super::commit;
use super::projection::{self, Rho};
use super::wire::{
    DroppedPairEvidence, Evidence, ExclusionRequest, PointBytes, SelfMaskEvidence,
    ValidationResponse, verify_masked_with,
};
use crate::ClientId;
use crate::config::PrgKind;
use crate::crypto::{self, DhKeyPair, SessionId};
use crate::messages::KeyEntry;
use crate::ring::Modulus;

/// Who misbehaved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Culprit {
    /// The server (it sent a request or evidence that an honest server never sends).
    Server,
    /// A client.
    Client(ClientId),
}

/// The round's public values a recomputation needs, from the checker's own view: its session
/// and κ (never the κ of the message checked, F8), the round id (the self-secret commitment),
/// the PRG and modulus the round masks with, ρ expanded once from κ, and the generators.
pub struct RoundContext<'a> {
    gens: &'a Generators,
    session: SessionId,
    kappa: [u8; 32],
    round_id: u64,
    prg: PrgKind,
    modulus: Modulus,
    rho: Rho,
}

impl fmt::Debug for RoundContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoundContext")
            .field("session", &self.session)
            .field("kappa", &self.kappa)
            .field("round_id", &self.round_id)
            .finish_non_exhaustive()
    }
}

impl<'a> RoundContext<'a> {
    /// Expands ρ (J × d) from κ and the session.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        gens: &'a Generators,
        session: SessionId,
        kappa: [u8; 32],
        round_id: u64,
        prg: PrgKind,
        modulus: Modulus,
        projections: usize,
        dim: usize,
    ) -> Result<Self, ValidateError> {
        let rho = projection::expand_rho(&kappa, &session, projections, dim)?;
        Ok(Self {
            gens,
            session,
            kappa,
            round_id,
            prg,
            modulus,
            rho,
        })
    }

    /// The checker's session.
    pub fn session(&self) -> &SessionId {
        &self.session
    }

    /// The checker's κ.
    pub fn kappa(&self) -> &[u8; 32] {
        &self.kappa
    }

    /// P_uv = P(s_uv, κ) recomputed from the seed (§5.2).
    pub fn pair_commitment(
        &self,
        u: ClientId,
        v: ClientId,
        seed: &[u8; 32],
    ) -> Result<RistrettoPoint, ValidateError> {
        let t = projection::stream_projections(self.prg, self.modulus, &self.rho, seed)?;
        commit::pair_commitment(self.gens, &t, seed, &self.session, u, v, &self.kappa)
    }

    /// O_u recomputed from b_u (§5.2; the stream is the core's self mask, D18).
    pub fn self_commitment(
        &self,
        owner: ClientId,
        b: &[u8; 32],
    ) -> Result<RistrettoPoint, ValidateError> {
        let seed = crypto::self_mask_seed(b, &self.session, owner);
        let t = projection::stream_projections(self.prg, self.modulus, &self.rho, &seed)?;
        commit::self_commitment(self.gens, &t, b, &self.session, owner, &self.kappa)
    }
}

/// What the accused's own signed statements and the rebuilt secret contradict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contradiction {
    /// u's signed h_uw is not the hash of the seed the rebuilt key gives (§8.5, F2).
    PairSeedHash,
    /// u's signed P_uw is not the commitment of that seed under κ (§8.5).
    PairCommitment,
    /// u's signed O_u is not the commitment of its rebuilt b_u under κ (§8.6).
    SelfCommitment,
}

/// A proven lie: the evidence holds, `liar` is to be excluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lie {
    /// The accused, now proven a liar.
    pub liar: ClientId,
    /// The dropped peer of the pair (§8.5), or `None` for the self mask (§8.6).
    pub peer: Option<ClientId>,
    /// Which signed statement the secret contradicts.
    pub contradiction: Contradiction,
}

impl Lie {
    /// The liar.
    pub fn culprit(&self) -> Culprit {
        Culprit::Client(self.liar)
    }
}

/// Why evidence is refused. Every case blames the server: an honest server checks the
/// accused's signatures when they arrive and never presents evidence that does not hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EvidenceError {
    /// The evidence does not fit the round (a list out of order, a bitmap that does not fit
    /// N(u), a low-order key, the checker's own inputs inconsistent).
    Malformed(&'static str),
    /// u's binding response does not carry u's valid signature for the checker's session.
    BadResponseSignature,
    /// u's binding response is for another κ than the checker's: no evidence (F8).
    OtherKappa,
    /// u's share-stage signature does not verify over the list and the V_u of the leaves given.
    BadShareSignature,
    /// u's signed upload bitmap (`MaskedWith`) does not verify for the checker's session.
    BadUploadSignature,
    /// The dropped peer's entry is not the one u's signed view names for it (F2).
    EntryNotInView {
        /// The dropped peer.
        peer: ClientId,
    },
    /// X25519-public(sk_w) is not the entry's mask key.
    KeyDoesNotMatchEntry {
        /// The dropped peer.
        peer: ClientId,
    },
    /// u did not sign that it masked with the peer (not in its signed upload bitmap).
    PeerNotMaskedWith {
        /// The peer.
        peer: ClientId,
    },
    /// b_u does not match the commitment in u's signed key entry.
    SecretDoesNotMatchEntry,
    /// Everything checks and u's statements agree with the secret: u did not lie.
    NoLie,
    /// A recomputation failed (parameters out of range).
    Recompute(ValidateError),
}

impl EvidenceError {
    /// Who misbehaved: the server that presented the evidence.
    pub fn culprit(&self) -> Culprit {
        Culprit::Server
    }
}

impl fmt::Display for EvidenceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EvidenceError::Malformed(what) => write!(f, "evidence malformed: {what}"),
            EvidenceError::BadResponseSignature => {
                f.write_str("evidence: the binding response's signature does not verify")
            }
            EvidenceError::OtherKappa => {
                f.write_str("evidence: the binding response was made under another challenge")
            }
            EvidenceError::BadShareSignature => {
                f.write_str("evidence: the share-stage signature does not verify over its view")
            }
            EvidenceError::BadUploadSignature => {
                f.write_str("evidence: the upload's signed bitmap does not verify")
            }
            EvidenceError::EntryNotInView { peer } => {
                write!(
                    f,
                    "evidence: client {peer}'s key entry is not the accused's view of it"
                )
            }
            EvidenceError::KeyDoesNotMatchEntry { peer } => {
                write!(
                    f,
                    "evidence: the key given for client {peer} is not its entry's"
                )
            }
            EvidenceError::PeerNotMaskedWith { peer } => {
                write!(
                    f,
                    "evidence: the accused did not sign that it masked with {peer}"
                )
            }
            EvidenceError::SecretDoesNotMatchEntry => {
                f.write_str("evidence: the self-mask secret does not match the key entry")
            }
            EvidenceError::NoLie => f.write_str("evidence shows no lie"),
            EvidenceError::Recompute(e) => write!(f, "evidence: {e}"),
        }
    }
}

impl std::error::Error for EvidenceError {}

impl From<ValidateError> for EvidenceError {
    fn from(e: ValidateError) -> Self {
        EvidenceError::Recompute(e)
    }
}

/// The accused as the checker knows it: its id, its key entry *as the checker holds it*, its
/// roster identity key and its neighbours N(u) in increasing id (the index of its bitmap, from
/// the round's graph).
///
/// The entry must be u's real one: a substituted entry (another mask key) would "prove" a lie
/// by an honest u. It is authentic **not** because of a Merkle path (a client checks only its
/// own path against the root): u signed it with its roster identity key (validated rounds
/// require the malicious model, so every entry is signed and checked on arrival), and the pair
/// binding of u's share ciphertexts to the holder covers both parties' entries as each saw
/// them. Hence the precondition (D22, review W4): **a holder checks evidence only against a
/// liar whose share it holds**, using the entry that came with that share (the only case in
/// which it has anything to release); the server uses the entry it verified itself.
#[derive(Clone, Copy, Debug)]
pub struct Accused<'a> {
    /// u.
    pub id: ClientId,
    /// u's key entry as the checker received it.
    pub entry: &'a KeyEntry,
    /// u's identity key from the roster.
    pub identity: &'a [u8; 32],
    /// N(u), increasing.
    pub neighbours: &'a [ClientId],
}

/// Test-only relaxations (the controls of §17's F2 and F8 tests). They exist only in test
/// builds (review N2); elsewhere `Loose` has no fields and every rule reads `false`.
#[cfg(test)]
#[derive(Clone, Copy, Default)]
struct Loose {
    /// Skip the κ rule: recompute with the checker's κ whatever κ u signed (F8's control).
    any_kappa: bool,
    /// Skip the view check: any entry matching sk_w will do (F2's framing control).
    any_entry: bool,
    /// v2's rule: accept only if the seed matches u's signed hash and P differs (F2's control).
    v2_rule: bool,
}

#[cfg(test)]
impl Loose {
    /// Every rule as in a real check.
    const STRICT: Loose = Loose {
        any_kappa: false,
        any_entry: false,
        v2_rule: false,
    };
    fn any_kappa(self) -> bool {
        self.any_kappa
    }
    fn any_entry(self) -> bool {
        self.any_entry
    }
    fn v2_rule(self) -> bool {
        self.v2_rule
    }
}

#[cfg(not(test))]
#[derive(Clone, Copy, Default)]
struct Loose;

#[cfg(not(test))]
impl Loose {
    const STRICT: Loose = Loose;
    fn any_kappa(self) -> bool {
        false
    }
    fn any_entry(self) -> bool {
        false
    }
    fn v2_rule(self) -> bool {
        false
    }
}

/// The response checks shared by §8.5 and §8.6: u's signature for the checker's session, and
/// the checker's own κ inside it (F8).
fn check_response(
    ctx: &RoundContext<'_>,
    accused: &Accused<'_>,
    response: &ValidationResponse,
    loose: Loose,
) -> Result<(), EvidenceError> {
    if accused.entry.id != accused.id {
        return Err(EvidenceError::Malformed(
            "the accused's entry is another client's",
        ));
    }
    if !response.verify(accused.identity, &ctx.session, accused.id) {
        return Err(EvidenceError::BadResponseSignature);
    }
    if !loose.any_kappa() && response.kappa != ctx.kappa {
        return Err(EvidenceError::OtherKappa);
    }
    Ok(())
}

fn differs(point: &RistrettoPoint, signed: &PointBytes) -> bool {
    point.compress().as_bytes() != signed
}

/// §8.5: checks evidence that `accused` lied about its pair with the dropped peer named by the
/// evidence's key entry. `Ok` names the liar; `Err` says why the evidence proves nothing.
pub fn check_dropped_pair(
    ctx: &RoundContext<'_>,
    accused: &Accused<'_>,
    evidence: &DroppedPairEvidence,
) -> Result<Lie, EvidenceError> {
    check_dropped_pair_with(ctx, accused, evidence, Loose::STRICT)
}

fn check_dropped_pair_with(
    ctx: &RoundContext<'_>,
    accused: &Accused<'_>,
    evidence: &DroppedPairEvidence,
    loose: Loose,
) -> Result<Lie, EvidenceError> {
    let u = accused.id;
    check_response(ctx, accused, &evidence.response, loose)?;
    // (1) u's signed share-stage list, over the V_u of the leaves given.
    let view = blind::view_digest(&ctx.session, &evidence.view)
        .map_err(|_| EvidenceError::Malformed("view leaves not in increasing order"))?;
    if !evidence
        .hashes
        .verify(accused.identity, &ctx.session, u, &view)
    {
        return Err(EvidenceError::BadShareSignature);
    }
    // rev9 fix: the list must be the one of the view u answered κ under (a rolled-back
    // client may have signed two lists over two views).
    if evidence.response.view != view {
        return Err(EvidenceError::Malformed("the response names another view"));
    }
    // (2) w's entry is the one in u's view, and sk_w is its mask key's.
    let entry = &evidence.dropped_entry;
    let w = entry.id;
    if w == u {
        return Err(EvidenceError::Malformed("the dropped peer is the accused"));
    }
    let in_view = evidence
        .view
        .binary_search_by_key(&w, |(v, _)| *v)
        .ok()
        .is_some_and(|i| evidence.view[i].1 == entry.leaf());
    if !loose.any_entry() && !in_view {
        return Err(EvidenceError::EntryNotInView { peer: w });
    }
    let key = DhKeyPair::from_secret_bytes(evidence.dropped_key.expose());
    if key.public() != entry.mask_pk {
        return Err(EvidenceError::KeyDoesNotMatchEntry { peer: w });
    }
    // (3) u signed with its upload that it masked with w (the S_u the server unmasks with;
    // verified strictly, SECURITY.md §4a), and its response carries that same bitmap.
    if !verify_masked_with(&evidence.upload, accused.identity, &ctx.session, u) {
        return Err(EvidenceError::BadUploadSignature);
    }
    let members = evidence
        .upload
        .members(accused.neighbours)
        .ok_or(EvidenceError::Malformed("upload bitmap does not fit N(u)"))?;
    if members.binary_search(&w).is_err() {
        return Err(EvidenceError::PeerNotMaskedWith { peer: w });
    }
    let lie = |contradiction| Lie {
        liar: u,
        peer: Some(w),
        contradiction,
    };
    // A response bitmap other than the upload's proves nothing (review 8c #1, D28 amended):
    // an honest server drops such a response at the challenge stage, so it can only come
    // from a server that made an honest client sign a second bitmap (a rolled-back saved
    // state) and would frame it with it; with the unmask in one message (D42) a wrongly
    // accepted exclusion hands the server both secrets.
    if evidence.response.bitmap != evidence.upload.bitmap {
        return Err(EvidenceError::Malformed(
            "the response's bitmap is not the upload's",
        ));
    }
    // Same bitmap, verified response: one P per member (`ValidationResponse::verify`).
    let p_uw = evidence
        .response
        .pair_commitment_for(accused.neighbours, w)
        .ok_or(EvidenceError::Malformed(
            "response has no P for a member of S_u",
        ))?;
    // s_uw = HKDF(X25519(sk_w, pk_u)), pk_u from u's entry as the checker holds it.
    let shared = key
        .agree(&accused.entry.mask_pk)
        .ok_or(EvidenceError::Malformed("low-order mask key"))?;
    let seed = crypto::pairwise_seed(&shared, &ctx.session, u, w);
    // (4) The hash rule, if u signed an h_uw. A list without one (step 8's server refuses it
    // at the share stage, `PairSeedHashes::covers`) leaves the P rule: the view is bound by
    // the same signature, and an honest u lists every neighbour, so never gets here (D27).
    match evidence.hashes.hash_for(w) {
        Some(h_uw) => {
            let hash_matches = bool::from(
                blind::pair_seed_hash(&ctx.session, u, w, &seed)
                    .as_slice()
                    .ct_eq(h_uw.as_slice()),
            );
            if !hash_matches && !loose.v2_rule() {
                return Ok(lie(Contradiction::PairSeedHash));
            }
            if loose.v2_rule() && !hash_matches {
                return Err(EvidenceError::NoLie);
            }
        }
        // v2's rule needs a matching signed hash (the W1 control).
        None if loose.v2_rule() => return Err(EvidenceError::NoLie),
        None => {}
    }
    if differs(&ctx.pair_commitment(u, w, &seed)?, &p_uw) {
        Ok(lie(Contradiction::PairCommitment))
    } else {
        Err(EvidenceError::NoLie)
    }
}

/// §8.6 (rule E): checks evidence that `accused` lied about its self mask. `Ok` names the
/// liar; `Err` says why the evidence proves nothing.
pub fn check_self_mask(
    ctx: &RoundContext<'_>,
    accused: &Accused<'_>,
    evidence: &SelfMaskEvidence,
) -> Result<Lie, EvidenceError> {
    check_self_mask_with(ctx, accused, evidence, Loose::STRICT)
}

fn check_self_mask_with(
    ctx: &RoundContext<'_>,
    accused: &Accused<'_>,
    evidence: &SelfMaskEvidence,
    loose: Loose,
) -> Result<Lie, EvidenceError> {
    check_response(ctx, accused, &evidence.response, loose)?;
    let b = evidence.self_secret.expose();
    let commitment = crypto::commit_self_secret(b, ctx.round_id, accused.id);
    if !bool::from(commitment.ct_eq(&accused.entry.commitment)) {
        return Err(EvidenceError::SecretDoesNotMatchEntry);
    }
    if differs(
        &ctx.self_commitment(accused.id, b)?,
        &evidence.response.self_commitment,
    ) {
        Ok(Lie {
            liar: accused.id,
            peer: None,
            contradiction: Contradiction::SelfCommitment,
        })
    } else {
        Err(EvidenceError::NoLie)
    }
}

/// Checks an exclusion request against the accused: the request must name `accused` (review
/// N6: the caller looked the accused's entry and identity up by some id, and a request for
/// another client is refused, not checked against the wrong keys), then its evidence (§8.5 or
/// §8.6). A holder calls it only for a liar whose share it holds ([`Accused`]).
pub fn check_exclusion(
    ctx: &RoundContext<'_>,
    accused: &Accused<'_>,
    request: &ExclusionRequest,
) -> Result<Lie, EvidenceError> {
    if request.liar != accused.id {
        return Err(EvidenceError::Malformed(
            "the request names another client than the accused",
        ));
    }
    match &request.evidence {
        Evidence::DroppedPair(e) => check_dropped_pair(ctx, accused, e),
        Evidence::SelfMask(e) => check_self_mask(ctx, accused, e),
    }
}

/// The leaves of a view, (v, leaf_v) for the entries given, in increasing v (what a client
/// digests into V_u and the server puts into §8.5 evidence).
pub fn view_leaves(entries: &[KeyEntry]) -> Vec<(ClientId, [u8; 32])> {
    let mut out: Vec<_> = entries.iter().map(|e| (e.id, e.leaf())).collect();
    out.sort_unstable_by_key(|(v, _)| *v);
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::crypto::IdentityKey;
    use crate::messages::MaskedWith;
    use crate::validate::wire::{PairSeedHashes, Secret32};
    use alloc::vec;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;
    use secagg_zk::GeneratorSizes;
    use zeroize::Zeroizing;

    pub(crate) const SESSION: SessionId = [0x5e; 32];
    pub(crate) const KAPPA: [u8; 32] = [0x4b; 32];
    pub(crate) const OTHER_KAPPA: [u8; 32] = [0x4c; 32];
    pub(crate) const ROUND_ID: u64 = 77;
    pub(crate) const D: usize = 24;
    pub(crate) const J: usize = 6;
    pub(crate) const N: u32 = 4;

    pub(crate) fn gens() -> Generators {
        Generators::new(GeneratorSizes {
            n_pad: 32,
            projections: J,
            lpad: 0,
        })
        .unwrap()
    }

    pub(crate) fn ctx<'a>(g: &'a Generators, kappa: [u8; 32]) -> RoundContext<'a> {
        RoundContext::new(
            g,
            SESSION,
            kappa,
            ROUND_ID,
            PrgKind::Aes128Ctr,
            Modulus::new(16).unwrap(),
            J,
            D,
        )
        .unwrap()
    }

    /// A complete neighbourhood of clients 1..=N with real keys: every client's entry, mask
    /// key, self secret and identity, and the pair seeds both ends derive.
    pub(crate) struct Party {
        pub mask: DhKeyPair,
        pub b: [u8; 32],
        pub identity: IdentityKey,
        pub pk: [u8; 32],
        pub entry: KeyEntry,
    }

    pub(crate) struct Fixture {
        pub parties: Vec<Party>,
    }

    impl Fixture {
        pub(crate) fn new() -> Self {
            let mut rng = ChaCha20Rng::seed_from_u64(5);
            let parties = (1..=N)
                .map(|id| {
                    let mask = DhKeyPair::generate(&mut rng);
                    let b: [u8; 32] = crypto::random_array(&mut rng);
                    let identity = IdentityKey::generate(&mut rng);
                    let entry = KeyEntry {
                        id,
                        enc_pk: crypto::random_array(&mut rng),
                        mask_pk: mask.public(),
                        commitment: crypto::commit_self_secret(&b, ROUND_ID, id),
                        signature: None,
                    };
                    Party {
                        mask,
                        b,
                        pk: identity.public(),
                        identity,
                        entry,
                    }
                })
                .collect();
            Fixture { parties }
        }

        pub(crate) fn party(&self, id: ClientId) -> &Party {
            &self.parties[id as usize - 1]
        }

        /// N(u) on the complete graph.
        pub(crate) fn neighbours(&self, u: ClientId) -> Vec<ClientId> {
            (1..=N).filter(|v| *v != u).collect()
        }

        /// s_uv as u derives it (from its key and v's entry).
        pub(crate) fn seed(&self, u: ClientId, v: ClientId) -> Zeroizing<[u8; 32]> {
            let shared = self
                .party(u)
                .mask
                .agree(&self.party(v).entry.mask_pk)
                .unwrap();
            crypto::pairwise_seed(&shared, &SESSION, u, v)
        }

        pub(crate) fn accused<'a>(&'a self, u: ClientId, nbrs: &'a [ClientId]) -> Accused<'a> {
            Accused {
                id: u,
                entry: &self.party(u).entry,
                identity: &self.party(u).pk,
                neighbours: nbrs,
            }
        }

        /// u's view: the leaves of its neighbours' entries as it received them (`swap`
        /// replaces one).
        pub(crate) fn view(
            &self,
            u: ClientId,
            swap: Option<&KeyEntry>,
        ) -> Vec<(ClientId, [u8; 32])> {
            let entries: Vec<KeyEntry> = self
                .neighbours(u)
                .into_iter()
                .map(|v| match swap {
                    Some(e) if e.id == v => e.clone(),
                    _ => self.party(v).entry.clone(),
                })
                .collect();
            view_leaves(&entries)
        }

        /// u's signed share-stage list: the hash of the true seed for every neighbour, except
        /// the `fake` (peer, seed) it signs instead.
        pub(crate) fn hashes(
            &self,
            u: ClientId,
            view: &[(ClientId, [u8; 32])],
            fake: Option<(ClientId, &[u8; 32])>,
        ) -> PairSeedHashes {
            let list = self
                .neighbours(u)
                .into_iter()
                .map(|v| {
                    let h = match fake {
                        Some((w, s)) if w == v => blind::pair_seed_hash(&SESSION, u, v, s),
                        _ => blind::pair_seed_hash(&SESSION, u, v, &self.seed(u, v)),
                    };
                    (v, h)
                })
                .collect();
            let vd = blind::view_digest(&SESSION, view).unwrap();
            PairSeedHashes::sign(&self.party(u).identity, &SESSION, u, list, &vd).unwrap()
        }

        /// u's signed binding response under `kappa`, masking with `masked` (increasing), the
        /// P for each from the true seed or from `fake` (peer, seed), O_u from b_u or from
        /// `fake_b`. The proof bytes are irrelevant to these checks.
        pub(crate) fn response(
            &self,
            g: &Generators,
            u: ClientId,
            kappa: [u8; 32],
            masked: &[ClientId],
            fake: Option<(ClientId, &[u8; 32])>,
            fake_b: Option<&[u8; 32]>,
        ) -> ValidationResponse {
            let c = ctx(g, kappa);
            let nbrs = self.neighbours(u);
            let bitmap = crate::messages::MaskedWith::bitmap_of(&nbrs, |v| masked.contains(&v));
            let pairs: Vec<RistrettoPoint> = masked
                .iter()
                .map(|v| match fake {
                    Some((w, s)) if w == *v => c.pair_commitment(u, *v, s).unwrap(),
                    _ => c.pair_commitment(u, *v, &self.seed(u, *v)).unwrap(),
                })
                .collect();
            let b = fake_b.unwrap_or(&self.party(u).b);
            let o = c.self_commitment(u, b).unwrap();
            let view = blind::view_digest(&SESSION, &self.view(u, None)).unwrap();
            ValidationResponse::sign(
                &self.party(u).identity,
                &SESSION,
                u,
                kappa,
                view,
                bitmap,
                &o,
                &pairs,
                vec![],
            )
        }

        /// §8.5 evidence against u about the dropped w, from the server's rebuilt sk_w.
        pub(crate) fn dropped_pair(
            &self,
            u: ClientId,
            w_entry: &KeyEntry,
            sk_w: &[u8; 32],
            hashes: PairSeedHashes,
            view: Vec<(ClientId, [u8; 32])>,
            response: ValidationResponse,
        ) -> DroppedPairEvidence {
            DroppedPairEvidence {
                hashes,
                view,
                dropped_entry: w_entry.clone(),
                dropped_key: Secret32::new(*sk_w),
                upload: self.upload(u, &response.bitmap),
                response,
            }
        }

        /// u's signed upload bitmap (`MaskedWith`) with these bytes.
        pub(crate) fn upload(&self, u: ClientId, bitmap: &[u8]) -> MaskedWith {
            let msg = MaskedWith::signed_bytes(&SESSION, u, bitmap);
            MaskedWith {
                bitmap: bitmap.to_vec(),
                signature: self.party(u).identity.sign(&msg),
            }
        }
    }

    fn all_masked(f: &Fixture, u: ClientId) -> Vec<ClientId> {
        f.neighbours(u)
    }

    /// §17 F2 (evidence.rs units): no evidence against an honest client, for any dropped peer,
    /// with the server's real rebuilt key and every statement the client signed.
    #[test]
    fn no_evidence_against_an_honest_client() {
        let f = Fixture::new();
        let g = gens();
        let c = ctx(&g, KAPPA);
        for u in 1..=N {
            let nbrs = f.neighbours(u);
            let view = f.view(u, None);
            let resp = f.response(&g, u, KAPPA, &all_masked(&f, u), None, None);
            for w in f.neighbours(u) {
                let sk_w = f.party(w).mask.secret_bytes();
                let ev = f.dropped_pair(
                    u,
                    &f.party(w).entry,
                    &sk_w,
                    f.hashes(u, &view, None),
                    view.clone(),
                    resp.clone(),
                );
                assert_eq!(
                    check_dropped_pair(&c, &f.accused(u, &nbrs), &ev),
                    Err(EvidenceError::NoLie)
                );
            }
            let ev = SelfMaskEvidence {
                response: resp.clone(),
                self_secret: Secret32::new(f.party(u).b),
            };
            assert_eq!(
                check_self_mask(&c, &f.accused(u, &nbrs), &ev),
                Err(EvidenceError::NoLie)
            );
        }
    }

    /// §17 F2: two colluders u and w sign the hash of a *fake* shared seed, mask with it and
    /// commit to it; w leaves. The rebuilt sk_w gives the true seed, whose hash is not u's
    /// signed one: evidence, u is excluded. Control: v2's rule (the seed must match u's signed
    /// hash, and P differ) finds nothing, so the liar would stay (and the safety net abort).
    #[test]
    fn colluders_on_a_fake_pair_seed_are_exposed_by_the_rebuilt_key() {
        let f = Fixture::new();
        let g = gens();
        let c = ctx(&g, KAPPA);
        let (u, w) = (2, 4);
        let fake = [0xfa; 32];
        let nbrs = f.neighbours(u);
        let view = f.view(u, None);
        let hashes = f.hashes(u, &view, Some((w, &fake)));
        let resp = f.response(&g, u, KAPPA, &nbrs, Some((w, &fake)), None);
        let sk_w = f.party(w).mask.secret_bytes();
        let ev = f.dropped_pair(u, &f.party(w).entry, &sk_w, hashes, view, resp);
        assert_eq!(
            check_dropped_pair(&c, &f.accused(u, &nbrs), &ev),
            Ok(Lie {
                liar: u,
                peer: Some(w),
                contradiction: Contradiction::PairSeedHash
            })
        );
        // Control: v2's rule keeps the liar.
        let v2 = Loose {
            v2_rule: true,
            ..Loose::default()
        };
        assert_eq!(
            check_dropped_pair_with(&c, &f.accused(u, &nbrs), &ev, v2),
            Err(EvidenceError::NoLie)
        );
        // A liar that signed the true hash but committed to another seed is caught by P.
        let view = f.view(u, None);
        let hashes = f.hashes(u, &view, None);
        let resp = f.response(&g, u, KAPPA, &nbrs, Some((w, &fake)), None);
        let ev = f.dropped_pair(u, &f.party(w).entry, &sk_w, hashes, view, resp);
        assert_eq!(
            check_dropped_pair(&c, &f.accused(u, &nbrs), &ev).map(|l| l.contradiction),
            Ok(Contradiction::PairCommitment)
        );
    }

    /// §17 F2: a key entry outside the accused's signed view is no evidence. A corrupt w
    /// signed two entries; honest u used the first (its view names it); the server presents
    /// the second with its secret key, whose seed differs from u's. Refused. Control: without
    /// the view check the honest u would be framed.
    #[test]
    fn a_key_entry_outside_the_signed_view_is_no_evidence() {
        let f = Fixture::new();
        let g = gens();
        let c = ctx(&g, KAPPA);
        let (u, w) = (1, 3);
        let nbrs = f.neighbours(u);
        let view = f.view(u, None);
        let hashes = f.hashes(u, &view, None);
        let resp = f.response(&g, u, KAPPA, &nbrs, None, None);
        let mut rng = ChaCha20Rng::seed_from_u64(99);
        let second = DhKeyPair::generate(&mut rng);
        let entry2 = KeyEntry {
            mask_pk: second.public(),
            ..f.party(w).entry.clone()
        };
        let ev = f.dropped_pair(u, &entry2, &second.secret_bytes(), hashes, view, resp);
        assert_eq!(
            check_dropped_pair(&c, &f.accused(u, &nbrs), &ev),
            Err(EvidenceError::EntryNotInView { peer: w })
        );
        let no_view = Loose {
            any_entry: true,
            ..Loose::default()
        };
        assert!(check_dropped_pair_with(&c, &f.accused(u, &nbrs), &ev, no_view).is_ok());
        // The same with a view rewritten to name the second entry: u never signed that view.
        let mut ev2 = ev.clone();
        ev2.view = f.view(u, Some(&entry2));
        assert_eq!(
            check_dropped_pair(&c, &f.accused(u, &nbrs), &ev2),
            Err(EvidenceError::BadShareSignature)
        );
        // And a key that is not the entry's.
        let mut ev3 = ev.clone();
        ev3.dropped_entry = f.party(w).entry.clone();
        assert_eq!(
            check_dropped_pair(&c, &f.accused(u, &nbrs), &ev3),
            Err(EvidenceError::KeyDoesNotMatchEntry { peer: w })
        );
    }

    /// §17 F8 (the unit form of `a_response_under_another_kappa_is_no_evidence`): a malicious
    /// server sent honest u another κ. u's response under it is no evidence, for a dropped
    /// pair or the self mask. Control: recomputing with the holder's own κ whatever κ u signed
    /// "finds" a lie and would release sk_u of an honest client.
    #[test]
    fn a_response_under_another_kappa_is_no_evidence() {
        let f = Fixture::new();
        let g = gens();
        let holder = ctx(&g, KAPPA);
        let (u, w) = (3, 1);
        let nbrs = f.neighbours(u);
        let view = f.view(u, None);
        let resp = f.response(&g, u, OTHER_KAPPA, &nbrs, None, None);
        let sk_w = f.party(w).mask.secret_bytes();
        let ev = f.dropped_pair(
            u,
            &f.party(w).entry,
            &sk_w,
            f.hashes(u, &view, None),
            view.clone(),
            resp.clone(),
        );
        let self_ev = SelfMaskEvidence {
            response: resp,
            self_secret: Secret32::new(f.party(u).b),
        };
        let accused = f.accused(u, &nbrs);
        assert_eq!(
            check_dropped_pair(&holder, &accused, &ev),
            Err(EvidenceError::OtherKappa)
        );
        assert_eq!(
            check_self_mask(&holder, &accused, &self_ev),
            Err(EvidenceError::OtherKappa)
        );
        let any = Loose {
            any_kappa: true,
            ..Loose::default()
        };
        assert_eq!(
            check_dropped_pair_with(&holder, &accused, &ev, any).map(|l| l.contradiction),
            Ok(Contradiction::PairCommitment)
        );
        assert_eq!(
            check_self_mask_with(&holder, &accused, &self_ev, any).map(|l| l.contradiction),
            Ok(Contradiction::SelfCommitment)
        );
        // Under the κ u signed, the same evidence shows no lie (u is honest).
        let other = ctx(&g, OTHER_KAPPA);
        assert_eq!(
            check_dropped_pair(&other, &accused, &ev),
            Err(EvidenceError::NoLie)
        );
        assert_eq!(
            check_self_mask(&other, &accused, &self_ev),
            Err(EvidenceError::NoLie)
        );
    }

    /// §8.6: a self-mask liar is named; a b that is not the entry's, a forged signature and a
    /// response of another client are refused (the server is the culprit).
    #[test]
    fn self_mask_evidence() {
        let f = Fixture::new();
        let g = gens();
        let c = ctx(&g, KAPPA);
        let u = 2;
        let nbrs = f.neighbours(u);
        let liar_resp = f.response(&g, u, KAPPA, &nbrs, None, Some(&[0x11; 32]));
        let ev = SelfMaskEvidence {
            response: liar_resp.clone(),
            self_secret: Secret32::new(f.party(u).b),
        };
        let lie = check_self_mask(&c, &f.accused(u, &nbrs), &ev).unwrap();
        assert_eq!(lie.culprit(), Culprit::Client(u));
        assert_eq!(lie.peer, None);
        let wrong_b = SelfMaskEvidence {
            response: liar_resp.clone(),
            self_secret: Secret32::new([0x11; 32]),
        };
        let e = check_self_mask(&c, &f.accused(u, &nbrs), &wrong_b).unwrap_err();
        assert_eq!(e, EvidenceError::SecretDoesNotMatchEntry);
        assert_eq!(e.culprit(), Culprit::Server);
        let mut forged = ev.clone();
        forged.response.self_commitment = [0; 32];
        assert_eq!(
            check_self_mask(&c, &f.accused(u, &nbrs), &forged),
            Err(EvidenceError::BadResponseSignature)
        );
        // u's response presented as client 3's.
        let nbrs3 = f.neighbours(3);
        assert_eq!(
            check_self_mask(&c, &f.accused(3, &nbrs3), &ev),
            Err(EvidenceError::BadResponseSignature)
        );
    }

    /// Review W1 (D27): a liar whose signed share-stage list leaves out the dropped w (and that
    /// committed to a fake seed for w) is still caught, by the P rule: before the fix the
    /// check refused with "no signed hash" and the liar stayed. An honest u with such a list
    /// (it never signs one) shows no lie; `covers` is the server's share-stage check.
    #[test]
    fn a_hash_list_omitting_the_dropped_peer_leaves_the_p_rule() {
        let f = Fixture::new();
        let g = gens();
        let c = ctx(&g, KAPPA);
        let (u, w) = (2, 4);
        let fake = [0xfa; 32];
        let nbrs = f.neighbours(u);
        let view = f.view(u, None);
        let list: Vec<(ClientId, [u8; 32])> = nbrs
            .iter()
            .copied()
            .filter(|v| *v != w)
            .map(|v| (v, blind::pair_seed_hash(&SESSION, u, v, &f.seed(u, v))))
            .collect();
        let vd = blind::view_digest(&SESSION, &view).unwrap();
        let hashes = PairSeedHashes::sign(&f.party(u).identity, &SESSION, u, list, &vd).unwrap();
        assert!(
            !hashes.covers(&nbrs),
            "the server's share-stage check refuses it"
        );
        assert!(f.hashes(u, &view, None).covers(&nbrs));
        assert!(!f.hashes(u, &view, None).covers(&[1, 3]));
        let resp = f.response(&g, u, KAPPA, &nbrs, Some((w, &fake)), None);
        let sk_w = f.party(w).mask.secret_bytes();
        let ev = f.dropped_pair(
            u,
            &f.party(w).entry,
            &sk_w,
            hashes.clone(),
            view.clone(),
            resp,
        );
        assert_eq!(
            check_dropped_pair(&c, &f.accused(u, &nbrs), &ev),
            Ok(Lie {
                liar: u,
                peer: Some(w),
                contradiction: Contradiction::PairCommitment
            })
        );
        // Control: a rule that needs a signed hash (v2's) lets the liar stay.
        let v2 = Loose {
            v2_rule: true,
            ..Loose::default()
        };
        assert_eq!(
            check_dropped_pair_with(&c, &f.accused(u, &nbrs), &ev, v2),
            Err(EvidenceError::NoLie)
        );
        // The same list with a true P for w: no lie.
        let honest = f.response(&g, u, KAPPA, &nbrs, None, None);
        let ev = f.dropped_pair(u, &f.party(w).entry, &sk_w, hashes, view, honest);
        assert_eq!(
            check_dropped_pair(&c, &f.accused(u, &nbrs), &ev),
            Err(EvidenceError::NoLie)
        );
    }

    /// Review W2 (D28): a liar lists the dropped w in its signed upload bitmap (the S_u the
    /// server unmasks with) and masks with a fake seed, but signs a response whose bitmap
    /// omits w. Before the fix the check read S_u from the response and refused ("did not mask
    /// with w"): the liar stayed. Now S_u comes from the signed upload, and two signed bitmaps
    /// are the lie. A server cannot use this against an honest u: a bitmap u did not sign is
    /// refused.
    #[test]
    fn a_response_bitmap_other_than_the_uploads_is_no_evidence() {
        let f = Fixture::new();
        let g = gens();
        let c = ctx(&g, KAPPA);
        let (u, w) = (2, 4);
        let fake = [0xfa; 32];
        let nbrs = f.neighbours(u);
        let view = f.view(u, None);
        let hashes = f.hashes(u, &view, Some((w, &fake)));
        let without_w: Vec<ClientId> = nbrs.iter().copied().filter(|v| *v != w).collect();
        let resp = f.response(&g, u, KAPPA, &without_w, None, None);
        let upload_bitmap = MaskedWith::bitmap_of(&nbrs, |_| true);
        assert!(
            !resp.fits(&upload_bitmap, &nbrs),
            "the server's challenge check"
        );
        let sk_w = f.party(w).mask.secret_bytes();
        let mut ev = f.dropped_pair(u, &f.party(w).entry, &sk_w, hashes, view.clone(), resp);
        ev.upload = f.upload(u, &upload_bitmap);
        // Not a lie (review 8c #1): a server could make an honest client sign a second
        // bitmap by rolling its saved state back, then frame it with the two.
        assert_eq!(
            check_dropped_pair(&c, &f.accused(u, &nbrs), &ev),
            Err(EvidenceError::Malformed(
                "the response's bitmap is not the upload's"
            ))
        );
        // An honest u (same bitmap in both): the server's own "upload" bitmap, not signed by
        // u, is refused; a real one without w says u did not mask with w.
        let honest = f.response(&g, u, KAPPA, &without_w, None, None);
        assert!(honest.fits(&honest.bitmap, &nbrs));
        let mut ev = f.dropped_pair(
            u,
            &f.party(w).entry,
            &sk_w,
            f.hashes(u, &view, None),
            view,
            honest,
        );
        assert_eq!(
            check_dropped_pair(&c, &f.accused(u, &nbrs), &ev),
            Err(EvidenceError::PeerNotMaskedWith { peer: w })
        );
        ev.upload.bitmap = upload_bitmap;
        assert_eq!(
            check_dropped_pair(&c, &f.accused(u, &nbrs), &ev),
            Err(EvidenceError::BadUploadSignature)
        );
    }

    /// Review N6: an exclusion request is checked only against the client it names.
    #[test]
    fn an_exclusion_request_is_checked_against_the_client_it_names() {
        use crate::validate::wire::{Evidence, ExclusionRequest};
        let f = Fixture::new();
        let g = gens();
        let c = ctx(&g, KAPPA);
        let u = 2;
        let nbrs = f.neighbours(u);
        let ev = SelfMaskEvidence {
            response: f.response(&g, u, KAPPA, &nbrs, None, Some(&[0x11; 32])),
            self_secret: Secret32::new(f.party(u).b),
        };
        let mut request = ExclusionRequest {
            liar: u,
            evidence: Evidence::SelfMask(alloc::boxed::Box::new(ev)),
        };
        assert!(check_exclusion(&c, &f.accused(u, &nbrs), &request).is_ok());
        request.liar = 3;
        assert!(matches!(
            check_exclusion(&c, &f.accused(u, &nbrs), &request),
            Err(EvidenceError::Malformed(_))
        ));
    }

    /// §8.5's remaining refusals: a peer u did not sign that it masked with, and a view out
    /// of order.
    #[test]
    fn dropped_pair_refusals() {
        let f = Fixture::new();
        let g = gens();
        let c = ctx(&g, KAPPA);
        let (u, w) = (1, 2);
        let nbrs = f.neighbours(u);
        let view = f.view(u, None);
        // u cut the pair with w (not in its bitmap), and its hash for w is wrong: no evidence
        // (the server checks only pairs u signed).
        let resp = f.response(&g, u, KAPPA, &[3, 4], None, None);
        let hashes = f.hashes(u, &view, Some((w, &[1; 32])));
        let sk_w = f.party(w).mask.secret_bytes();
        let ev = f.dropped_pair(u, &f.party(w).entry, &sk_w, hashes, view.clone(), resp);
        assert_eq!(
            check_dropped_pair(&c, &f.accused(u, &nbrs), &ev),
            Err(EvidenceError::PeerNotMaskedWith { peer: w })
        );
        let mut ev2 = ev.clone();
        ev2.view.reverse();
        assert!(matches!(
            check_dropped_pair(&c, &f.accused(u, &nbrs), &ev2),
            Err(EvidenceError::Malformed(_))
        ));
        // The accused's bitmap read over another neighbour list does not fit.
        assert!(matches!(
            check_dropped_pair(&c, &f.accused(u, &[2, 3]), &ev),
            Err(EvidenceError::BadShareSignature | EvidenceError::Malformed(_))
        ));
    }
}
