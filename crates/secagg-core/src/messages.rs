//! The wire messages of a round: plain data with an encoding that never panics. Crypto stays
//! out of here; decoding checks sizes against the round's parameters so that a forged length
//! cannot make anyone allocate more than the message holds.
//!
//! Every message starts with a version byte ([`WIRE_VERSION`]) and a tag byte.

use alloc::string::String;
use alloc::vec::Vec;

use crate::ClientId;
use crate::codec::{Reader, Writer};
use crate::config::RoundConfig;
use crate::crypto::TAG_LEN;
use crate::error::CodecError;
use crate::idset::IdSet;
use crate::shamir::{SHARE_LEN, Share};

/// Version byte of the wire format.
pub const WIRE_VERSION: u8 = 2;
/// Plaintext of one encrypted share bundle: a share of the mask key and of the self-mask seed.
pub const SHARE_BUNDLE_LEN: usize = 2 * SHARE_LEN;
/// Ciphertext of one share bundle.
pub const SHARE_CIPHERTEXT_LEN: usize = SHARE_BUNDLE_LEN + TAG_LEN;
/// Largest input-validation proof accepted (reserved for norm-bound proofs).
pub const MAX_PROOF_LEN: usize = 1 << 24;
/// Largest abort reason.
pub const MAX_REASON_LEN: usize = 4096;

mod tag {
    pub const ROUND_START: u8 = 1;
    pub const NEIGHBOUR_KEYS: u8 = 2;
    pub const SHARES_FOR_YOU: u8 = 3;
    pub const CONSISTENCY_REQUEST: u8 = 4;
    pub const UNMASK_REQUEST: u8 = 5;
    pub const ABORT: u8 = 6;
    pub const DONE: u8 = 7;
    pub const ADVERTISE_KEYS: u8 = 0x11;
    pub const ENCRYPTED_SHARES: u8 = 0x12;
    pub const MASKED_INPUT: u8 = 0x13;
    pub const CONSISTENCY_SIGNATURE: u8 = 0x14;
    pub const UNMASK_SHARES: u8 = 0x15;
}

/// A client's advertised keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEntry {
    /// Whose keys.
    pub id: ClientId,
    /// X25519 key for share encryption (c_pk).
    pub enc_pk: [u8; 32],
    /// X25519 key for pairwise masks (s_pk); its secret is Shamir-shared.
    pub mask_pk: [u8; 32],
    /// Commitment to the self-mask seed b_u.
    pub commitment: [u8; 32],
    /// Ed25519 signature by the client's identity key, when a PKI is configured.
    pub signature: Option<[u8; 64]>,
}

impl KeyEntry {
    /// The bytes an identity key signs: round parameters, id, keys and commitment.
    pub fn signed_bytes(&self, config_digest: &[u8; 32]) -> Vec<u8> {
        let mut w = Writer::with_capacity(160);
        w.fixed(crate::PROTOCOL_VERSION)
            .fixed(b"advertise-keys")
            .fixed(config_digest)
            .u32(self.id)
            .fixed(&self.enc_pk)
            .fixed(&self.mask_pk)
            .fixed(&self.commitment);
        w.finish()
    }

    /// This entry's leaf in the Merkle tree over U1's keys ([`crate::merkle`]): id, both
    /// public keys and the commitment (the signature is not needed: it signs these).
    pub fn leaf(&self) -> [u8; 32] {
        let mut w = Writer::with_capacity(120);
        w.fixed(crate::PROTOCOL_VERSION)
            .fixed(b"key-leaf")
            .u32(self.id)
            .fixed(&self.enc_pk)
            .fixed(&self.mask_pk)
            .fixed(&self.commitment);
        crate::merkle::leaf_hash(&w.finish())
    }

    fn encode(&self, w: &mut Writer) {
        w.u32(self.id)
            .fixed(&self.enc_pk)
            .fixed(&self.mask_pk)
            .fixed(&self.commitment);
        match &self.signature {
            Some(s) => w.u8(1).fixed(s),
            None => w.u8(0),
        };
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(Self {
            id: r.u32()?,
            enc_pk: r.array()?,
            mask_pk: r.array()?,
            commitment: r.array()?,
            signature: decode_opt_sig(r)?,
        })
    }
}

fn decode_opt_sig(r: &mut Reader<'_>) -> Result<Option<[u8; 64]>, CodecError> {
    match r.u8()? {
        0 => Ok(None),
        1 => Ok(Some(r.array()?)),
        _ => Err(CodecError::NonCanonical("signature flag")),
    }
}

/// The bytes a client signs to prove, when it joins a server with a PKI roster, that it holds
/// the identity key it names (docs/SECURITY.md §4b): the server's fresh `nonce`, the key and
/// the name it joins under. The label is no prefix of any other signed message's.
pub fn join_proof_signed_bytes(nonce: &[u8; 32], identity: &[u8; 32], name: &str) -> Vec<u8> {
    let mut w = Writer::with_capacity(96 + name.len());
    w.fixed(crate::PROTOCOL_VERSION)
        .fixed(b"join-proof")
        .fixed(nonce)
        .fixed(identity)
        .bytes(name.as_bytes());
    w.finish()
}

/// The bytes a client signs in the consistency check: the session and the survivor set U3.
pub fn consistency_signed_bytes(session: &[u8; 32], u3: &IdSet) -> Vec<u8> {
    let mut w = Writer::default();
    w.fixed(crate::PROTOCOL_VERSION)
        .fixed(b"consistency-check")
        .fixed(session);
    u3.encode(&mut w);
    w.finish()
}

/// Malicious model: which of its neighbours a client masked with (its view of N(v) ∩ U2), as
/// a bitmap over N(v) in increasing id order, signed with its identity key. A client reveals
/// its share of a neighbour's self-mask seed only if that neighbour's statement names at least
/// t clients of U3 (docs/SECURITY.md, rule M).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskedWith {
    /// Bit i (LSB first) set when the i-th neighbour (increasing id) was masked with;
    /// ⌈|N(v)| / 8⌉ bytes, padding bits zero.
    pub bitmap: Vec<u8>,
    /// Ed25519 signature over [`MaskedWith::signed_bytes`].
    pub signature: [u8; 64],
}

impl MaskedWith {
    /// The bitmap for `neighbours` (increasing id) with `masked(v)` telling who is in.
    pub fn bitmap_of(neighbours: &[ClientId], masked: impl Fn(ClientId) -> bool) -> Vec<u8> {
        let mut out = alloc::vec![0u8; neighbours.len().div_ceil(8)];
        for (i, v) in neighbours.iter().enumerate() {
            if masked(*v) {
                out[i / 8] |= 1 << (i % 8);
            }
        }
        out
    }

    /// The neighbours the bitmap names, or `None` if its length or padding does not fit
    /// `neighbours` (increasing id).
    pub fn members(&self, neighbours: &[ClientId]) -> Option<Vec<ClientId>> {
        if self.bitmap.len() != neighbours.len().div_ceil(8) {
            return None;
        }
        let mut out = Vec::new();
        for (i, byte) in self.bitmap.iter().enumerate() {
            for bit in 0..8 {
                if byte >> bit & 1 == 1 {
                    out.push(*neighbours.get(i * 8 + bit)?);
                }
            }
        }
        Some(out)
    }

    /// What the client signs: the session, its id and the bitmap.
    pub fn signed_bytes(session: &[u8; 32], id: ClientId, bitmap: &[u8]) -> Vec<u8> {
        let mut w = Writer::with_capacity(64 + bitmap.len());
        w.fixed(crate::PROTOCOL_VERSION)
            .fixed(b"masked-with")
            .fixed(session)
            .u32(id)
            .bytes(bitmap);
        w.finish()
    }

    fn encode(&self, w: &mut Writer) {
        w.bytes(&self.bitmap).fixed(&self.signature);
    }

    fn decode(r: &mut Reader<'_>, degree: u32) -> Result<Self, CodecError> {
        let limit = (degree as usize).div_ceil(8);
        Ok(Self {
            bitmap: r.bytes("masked-with bitmap", limit)?.to_vec(),
            signature: r.array()?,
        })
    }
}

/// Messages from the server to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerMessage {
    /// The round's parameters; the client answers with [`ClientMessage::AdvertiseKeys`].
    RoundStart(RoundConfig),
    /// U1 and the keys of the client's neighbours in U1 (in increasing id order).
    NeighbourKeys {
        /// Clients whose keys were accepted.
        u1: IdSet,
        /// Merkle root over the key entries of U1 in increasing id order (in the session id).
        keys_root: [u8; 32],
        /// The audit path of the recipient's own entry.
        key_path: Vec<[u8; 32]>,
        /// The recipient's neighbours' keys.
        neighbours: Vec<KeyEntry>,
    },
    /// U2 and the share ciphertexts the recipient's neighbours in U2 sent it.
    SharesForYou {
        /// Clients whose shares were routed.
        u2: IdSet,
        /// (sender, ciphertext), in increasing sender order.
        ciphertexts: Vec<(ClientId, Vec<u8>)>,
    },
    /// Malicious model: sign U3.
    ConsistencyRequest {
        /// Clients whose masked inputs were summed.
        u3: IdSet,
    },
    /// Reveal shares: of b_v for v in U3, of the mask key for dropped v in U2 \ U3.
    UnmaskRequest {
        /// Clients whose masked inputs were summed.
        u3: IdSet,
        /// Malicious model: the consistency signatures on U3 (id, signature).
        signatures: Vec<(ClientId, [u8; 64])>,
        /// Malicious model: the masked-with statements of the recipient's neighbours in U3,
        /// in increasing id order.
        statements: Vec<(ClientId, MaskedWith)>,
    },
    /// The round aborted; nothing will be revealed.
    Abort(String),
    /// The round finished and released its aggregate.
    Done,
}

/// Messages from a client to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    /// Stage 0: keys (the id field is the sender's own id).
    AdvertiseKeys(KeyEntry),
    /// Stage 1: one ciphertext per neighbour (recipient, ciphertext), increasing recipient.
    EncryptedShares(Vec<(ClientId, Vec<u8>)>),
    /// Stage 2: the masked input packed at b bits, a reserved input-validation proof, and (in
    /// the malicious model) the signed statement of whom the client masked with.
    MaskedInput {
        /// Packed masked vector.
        vector: Vec<u8>,
        /// Reserved for norm-bound proofs; empty today.
        proof: Vec<u8>,
        /// Malicious model: the neighbours masked with, signed.
        masked_with: Option<MaskedWith>,
    },
    /// Stage 3: signature over the session and U3.
    ConsistencySignature([u8; 64]),
    /// Stage 4: shares of b_v for survivors and of mask keys for dropped clients, each
    /// (owner, share), in increasing owner order.
    UnmaskShares {
        /// Shares of self-mask seeds of clients in U3.
        self_mask: Vec<(ClientId, Share)>,
        /// Shares of mask keys of clients in U2 \ U3.
        mask_key: Vec<(ClientId, Share)>,
    },
}

/// The stage a client message belongs to, read from its header alone (so a retransmission
/// of an earlier stage's message can be recognised without decoding it).
pub fn client_message_stage(bytes: &[u8]) -> Option<crate::Stage> {
    use crate::Stage;
    match bytes {
        [WIRE_VERSION, t, ..] => match *t {
            tag::ADVERTISE_KEYS => Some(Stage::AdvertiseKeys),
            tag::ENCRYPTED_SHARES => Some(Stage::ShareKeys),
            tag::MASKED_INPUT => Some(Stage::MaskedInput),
            tag::CONSISTENCY_SIGNATURE => Some(Stage::ConsistencyCheck),
            tag::UNMASK_SHARES => Some(Stage::Unmask),
            _ => None,
        },
        _ => None,
    }
}

impl ClientMessage {
    /// A short name for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            ClientMessage::AdvertiseKeys(_) => "AdvertiseKeys",
            ClientMessage::EncryptedShares(_) => "EncryptedShares",
            ClientMessage::MaskedInput { .. } => "MaskedInput",
            ClientMessage::ConsistencySignature(_) => "ConsistencySignature",
            ClientMessage::UnmaskShares { .. } => "UnmaskShares",
        }
    }
}

fn header(w: &mut Writer, t: u8) {
    w.u8(WIRE_VERSION).u8(t);
}

fn read_header(r: &mut Reader<'_>) -> Result<u8, CodecError> {
    let v = r.u8()?;
    if v != WIRE_VERSION {
        return Err(CodecError::UnknownTag(v));
    }
    r.u8()
}

/// A share ciphertext, which has exactly one length.
fn share_ciphertext(r: &mut Reader<'_>) -> Result<Vec<u8>, CodecError> {
    let ct = r.bytes("share ciphertext", SHARE_CIPHERTEXT_LEN)?;
    if ct.len() != SHARE_CIPHERTEXT_LEN {
        return Err(CodecError::LengthMismatch {
            what: "share ciphertext",
            expected: SHARE_CIPHERTEXT_LEN,
            got: ct.len(),
        });
    }
    Ok(ct.to_vec())
}

fn encode_owned_shares(w: &mut Writer, shares: &[(ClientId, Share)]) {
    w.u32(shares.len() as u32);
    for (owner, s) in shares {
        w.u32(*owner).fixed(&s.to_bytes());
    }
}

fn decode_owned_shares(
    r: &mut Reader<'_>,
    limit: usize,
) -> Result<Vec<(ClientId, Share)>, CodecError> {
    let n = r.count("shares", limit, 4 + SHARE_LEN)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let owner = r.u32()?;
        let share =
            Share::from_bytes(r.take(SHARE_LEN)?).map_err(|_| CodecError::NonCanonical("share"))?;
        out.push((owner, share));
    }
    Ok(out)
}

impl ServerMessage {
    /// Encodes the message.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        match self {
            ServerMessage::RoundStart(c) => {
                // A validated round's RoundStart carries wire version 3 and the validation
                // parameters after the plain fields (VALIDATION.md §15, D30).
                w.u8(c.wire_version()).u8(tag::ROUND_START);
                c.encode(&mut w);
            }
            ServerMessage::NeighbourKeys {
                u1,
                keys_root,
                key_path,
                neighbours,
            } => {
                header(&mut w, tag::NEIGHBOUR_KEYS);
                u1.encode(&mut w);
                w.fixed(keys_root).u32(key_path.len() as u32);
                key_path.iter().for_each(|h| {
                    w.fixed(h);
                });
                w.u32(neighbours.len() as u32);
                neighbours.iter().for_each(|e| e.encode(&mut w));
            }
            ServerMessage::SharesForYou { u2, ciphertexts } => {
                header(&mut w, tag::SHARES_FOR_YOU);
                u2.encode(&mut w);
                w.u32(ciphertexts.len() as u32);
                for (from, ct) in ciphertexts {
                    w.u32(*from).bytes(ct);
                }
            }
            ServerMessage::ConsistencyRequest { u3 } => {
                header(&mut w, tag::CONSISTENCY_REQUEST);
                u3.encode(&mut w);
            }
            ServerMessage::UnmaskRequest {
                u3,
                signatures,
                statements,
            } => {
                header(&mut w, tag::UNMASK_REQUEST);
                u3.encode(&mut w);
                w.u32(signatures.len() as u32);
                for (id, s) in signatures {
                    w.u32(*id).fixed(s);
                }
                w.u32(statements.len() as u32);
                for (id, s) in statements {
                    w.u32(*id);
                    s.encode(&mut w);
                }
            }
            ServerMessage::Abort(reason) => {
                header(&mut w, tag::ABORT);
                let r = reason.as_bytes();
                w.bytes(&r[..r.len().min(MAX_REASON_LEN)]);
            }
            ServerMessage::Done => header(&mut w, tag::DONE),
        }
        w.finish()
    }

    /// Decodes a message; `config` is the round's (None before [`ServerMessage::RoundStart`],
    /// when only `RoundStart` and `Abort` can be decoded).
    pub fn decode(bytes: &[u8], config: Option<&RoundConfig>) -> Result<Self, CodecError> {
        let mut r = Reader::new(bytes);
        if let [crate::config::VALIDATED_WIRE_VERSION, tag::ROUND_START, ..] = bytes {
            r.take(2)?;
            let msg = ServerMessage::RoundStart(RoundConfig::decode_versioned(&mut r, true)?);
            r.finish()?;
            return Ok(msg);
        }
        let t = read_header(&mut r)?;
        let need = || config.ok_or(CodecError::UnknownTag(t));
        let msg = match t {
            tag::ROUND_START => ServerMessage::RoundStart(RoundConfig::decode(&mut r)?),
            tag::NEIGHBOUR_KEYS => {
                let c = need()?;
                let u1 = IdSet::decode(&mut r, c.num_clients)?;
                let keys_root = r.array()?;
                let p = r.count("key path", crate::merkle::MAX_PATH_LEN, 32)?;
                let mut key_path = Vec::with_capacity(p);
                for _ in 0..p {
                    key_path.push(r.array()?);
                }
                let n = r.count("neighbour keys", c.degree as usize, 101)?;
                let mut neighbours = Vec::with_capacity(n);
                for _ in 0..n {
                    neighbours.push(KeyEntry::decode(&mut r)?);
                }
                ServerMessage::NeighbourKeys {
                    u1,
                    keys_root,
                    key_path,
                    neighbours,
                }
            }
            tag::SHARES_FOR_YOU => {
                let c = need()?;
                let u2 = IdSet::decode(&mut r, c.num_clients)?;
                let n = r.count("share ciphertexts", c.degree as usize, 8)?;
                let mut ciphertexts = Vec::with_capacity(n);
                for _ in 0..n {
                    let from = r.u32()?;
                    ciphertexts.push((from, share_ciphertext(&mut r)?));
                }
                ServerMessage::SharesForYou { u2, ciphertexts }
            }
            tag::CONSISTENCY_REQUEST => ServerMessage::ConsistencyRequest {
                u3: IdSet::decode(&mut r, need()?.num_clients)?,
            },
            tag::UNMASK_REQUEST => {
                let c = need()?;
                let u3 = IdSet::decode(&mut r, c.num_clients)?;
                let n = r.count("signatures", c.num_clients as usize, 68)?;
                let mut signatures = Vec::with_capacity(n);
                for _ in 0..n {
                    signatures.push((r.u32()?, r.array()?));
                }
                let n = r.count("masked-with statements", c.degree as usize, 72)?;
                let mut statements = Vec::with_capacity(n);
                for _ in 0..n {
                    statements.push((r.u32()?, MaskedWith::decode(&mut r, c.degree)?));
                }
                ServerMessage::UnmaskRequest {
                    u3,
                    signatures,
                    statements,
                }
            }
            tag::ABORT => {
                let b = r.bytes("abort reason", MAX_REASON_LEN)?;
                ServerMessage::Abort(String::from_utf8_lossy(b).into_owned())
            }
            tag::DONE => ServerMessage::Done,
            other => return Err(CodecError::UnknownTag(other)),
        };
        r.finish()?;
        Ok(msg)
    }
}

impl ClientMessage {
    /// Encodes the message.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = match self {
            ClientMessage::MaskedInput { vector, proof, .. } => {
                Writer::with_capacity(vector.len() + proof.len() + 16 + 64 + 64)
            }
            _ => Writer::default(),
        };
        match self {
            ClientMessage::AdvertiseKeys(e) => {
                header(&mut w, tag::ADVERTISE_KEYS);
                e.encode(&mut w);
            }
            ClientMessage::EncryptedShares(list) => {
                header(&mut w, tag::ENCRYPTED_SHARES);
                w.u32(list.len() as u32);
                for (to, ct) in list {
                    w.u32(*to).bytes(ct);
                }
            }
            ClientMessage::MaskedInput {
                vector,
                proof,
                masked_with,
            } => {
                header(&mut w, tag::MASKED_INPUT);
                w.bytes(vector).bytes(proof);
                match masked_with {
                    Some(m) => {
                        w.u8(1);
                        m.encode(&mut w);
                    }
                    None => {
                        w.u8(0);
                    }
                }
            }
            ClientMessage::ConsistencySignature(s) => {
                header(&mut w, tag::CONSISTENCY_SIGNATURE);
                w.fixed(s);
            }
            ClientMessage::UnmaskShares {
                self_mask,
                mask_key,
            } => {
                header(&mut w, tag::UNMASK_SHARES);
                encode_owned_shares(&mut w, self_mask);
                encode_owned_shares(&mut w, mask_key);
            }
        }
        w.finish()
    }

    /// Decodes a message of a round with parameters `config`.
    pub fn decode(bytes: &[u8], config: &RoundConfig) -> Result<Self, CodecError> {
        let mut r = Reader::new(bytes);
        let t = read_header(&mut r)?;
        let k = config.degree as usize;
        let msg = match t {
            tag::ADVERTISE_KEYS => ClientMessage::AdvertiseKeys(KeyEntry::decode(&mut r)?),
            tag::ENCRYPTED_SHARES => {
                let n = r.count("share ciphertexts", k, 8)?;
                let mut list = Vec::with_capacity(n);
                for _ in 0..n {
                    let to = r.u32()?;
                    list.push((to, share_ciphertext(&mut r)?));
                }
                ClientMessage::EncryptedShares(list)
            }
            tag::MASKED_INPUT => {
                let expected = config.modulus().packed_len(config.dim as usize);
                let vector = r.bytes("masked vector", expected)?;
                if vector.len() != expected {
                    return Err(CodecError::LengthMismatch {
                        what: "masked vector",
                        expected,
                        got: vector.len(),
                    });
                }
                let proof = r.bytes("input proof", MAX_PROOF_LEN)?;
                let masked_with = match r.u8()? {
                    0 => None,
                    1 => Some(MaskedWith::decode(&mut r, config.degree)?),
                    _ => return Err(CodecError::NonCanonical("masked-with flag")),
                };
                ClientMessage::MaskedInput {
                    vector: vector.to_vec(),
                    proof: proof.to_vec(),
                    masked_with,
                }
            }
            tag::CONSISTENCY_SIGNATURE => ClientMessage::ConsistencySignature(r.array()?),
            tag::UNMASK_SHARES => ClientMessage::UnmaskShares {
                self_mask: decode_owned_shares(&mut r, k + 1)?,
                mask_key: decode_owned_shares(&mut r, k + 1)?,
            },
            other => return Err(CodecError::UnknownTag(other)),
        };
        r.finish()?;
        Ok(msg)
    }
}
