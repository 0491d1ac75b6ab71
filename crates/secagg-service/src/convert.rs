//! Conversions between the gRPC messages and secagg-core's. Untrusted protobuf becomes a core
//! message only through `TryFrom`, which checks every fixed-size field; the core decoder then
//! checks everything against the round's parameters.

use secagg_core::config::{
    MAX_ENCODING_LEN, RoundConfig, VALIDATED_WIRE_VERSION, ValidationParams,
};
use secagg_core::idset::IdSet;
use secagg_core::merkle::MAX_PATH_LEN;
use secagg_core::messages::{ClientMessage, KeyEntry, MAX_PROOF_LEN, MaskedWith, ServerMessage};
use secagg_core::params::ThreatModel;
use secagg_core::shamir::Share;
use secagg_core::{ClientId, GraphKind, PrgKind};
use secagg_sim::input_encoding::InputEncoding;

use crate::proto;
use crate::proto::client_frame::Body as CBody;
use crate::proto::server_frame::Body as SBody;

/// The wire version a client announces in Join and the server requires (secagg-core protocol
/// version 2: the input encoding in the round's configuration, Merkle paths of the advertised
/// keys, masked-with statements). Version 1 carried a per-client scale and is refused.
pub const WIRE_VERSION: u32 = 2;

/// A protobuf message that does not map to a protocol message; says which field is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertError(pub String);

impl std::fmt::Display for ConvertError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConvertError {}

fn fixed<const N: usize>(field: &str, b: &[u8]) -> Result<[u8; N], ConvertError> {
    b.try_into()
        .map_err(|_| ConvertError(format!("{field} must be {N} bytes, got {}", b.len())))
}

fn opt_sig(b: &[u8]) -> Result<Option<[u8; 64]>, ConvertError> {
    if b.is_empty() {
        Ok(None)
    } else {
        fixed::<64>("signature", b).map(Some)
    }
}

fn idset_to_proto(s: &IdSet) -> proto::IdSet {
    let mut w = secagg_core::codec::Writer::default();
    s.encode(&mut w);
    let bytes = w.finish();
    proto::IdSet {
        universe: s.universe(),
        bitmap: bytes[4..].to_vec(),
    }
}

fn idset_from_proto(p: Option<proto::IdSet>, n: u32) -> Result<IdSet, ConvertError> {
    let p = p.ok_or_else(|| ConvertError("missing id set".into()))?;
    let mut buf = p.universe.to_le_bytes().to_vec();
    buf.extend_from_slice(&p.bitmap);
    let mut r = secagg_core::codec::Reader::new(&buf);
    let s = IdSet::decode(&mut r, n).map_err(|e| ConvertError(format!("id set: {e}")))?;
    r.finish()
        .map_err(|e| ConvertError(format!("id set: {e}")))?;
    Ok(s)
}

fn entry_to_proto(e: &KeyEntry) -> proto::KeyEntry {
    proto::KeyEntry {
        id: e.id,
        encryption_public_key: e.enc_pk.to_vec(),
        mask_public_key: e.mask_pk.to_vec(),
        self_mask_commitment: e.commitment.to_vec(),
        signature: e.signature.map(|s| s.to_vec()).unwrap_or_default(),
    }
}

fn entry_from_proto(p: proto::KeyEntry) -> Result<KeyEntry, ConvertError> {
    Ok(KeyEntry {
        id: p.id,
        enc_pk: fixed("encryption_public_key", &p.encryption_public_key)?,
        mask_pk: fixed("mask_public_key", &p.mask_public_key)?,
        commitment: fixed("self_mask_commitment", &p.self_mask_commitment)?,
        signature: opt_sig(&p.signature)?,
    })
}

fn shares_from_proto(list: Vec<proto::OwnedShare>) -> Result<Vec<(ClientId, Share)>, ConvertError> {
    list.into_iter()
        .map(|s| {
            Share::from_bytes(&s.share)
                .map(|sh| (s.owner, sh))
                .map_err(|e| ConvertError(format!("share of client {}: {e}", s.owner)))
        })
        .collect()
}

fn shares_to_proto(list: &[(ClientId, Share)]) -> Vec<proto::OwnedShare> {
    list.iter()
        .map(|(o, s)| proto::OwnedShare {
            owner: *o,
            share: s.to_bytes().to_vec(),
        })
        .collect()
}

fn masked_with_to_proto(m: &MaskedWith) -> proto::MaskedWith {
    proto::MaskedWith {
        bitmap: m.bitmap.clone(),
        signature: m.signature.to_vec(),
    }
}

/// A masked-with statement of a round with `degree` neighbours per client; the bitmap's exact
/// length is checked by the core against the neighbour set.
fn masked_with_from_proto(p: proto::MaskedWith, degree: u32) -> Result<MaskedWith, ConvertError> {
    let limit = (degree as usize).div_ceil(8);
    if p.bitmap.len() > limit {
        return Err(ConvertError(format!(
            "masked-with bitmap of {} bytes, at most {limit} for degree {degree}",
            p.bitmap.len()
        )));
    }
    Ok(MaskedWith {
        bitmap: p.bitmap,
        signature: fixed("masked-with signature", &p.signature)?,
    })
}

/// The RoundStart a client receives: the round's parameters (with how inputs are encoded), its
/// id, and (PKI) the server's roster.
pub fn round_start(
    c: &RoundConfig,
    client_id: ClientId,
    roster: &[[u8; 32]],
) -> proto::ServerFrame {
    proto::ServerFrame {
        body: Some(SBody::RoundStart(proto::RoundStart {
            round_id: c.round_id,
            round_seed: c.round_seed.to_vec(),
            num_clients: c.num_clients,
            min_clients: c.min_clients,
            degree: c.degree,
            threshold: c.threshold,
            graph: match c.graph {
                GraphKind::Complete => proto::GraphKind::Complete,
                GraphKind::Harary => proto::GraphKind::Harary,
            } as i32,
            bits: c.bits as u32,
            dim: c.dim,
            prg: match c.prg {
                PrgKind::Aes128Ctr => proto::PrgKind::Aes128Ctr,
                PrgKind::ChaCha20 => proto::PrgKind::Chacha20,
            } as i32,
            model: match c.model {
                ThreatModel::HonestButCurious => proto::ThreatModel::HonestButCurious,
                ThreatModel::Malicious => proto::ThreatModel::Malicious,
            } as i32,
            pki: c.pki,
            client_id,
            roster: roster.iter().map(|k| k.to_vec()).collect(),
            encoding: c.encoding.clone(),
            validation: c.validation.map(|v| proto::ValidationParams {
                bound_sq: v.bound_sq,
                projections: u32::from(v.projections),
                max_weight: v.max_weight.unwrap_or(0),
            }),
        })),
    }
}

/// What a client learns from RoundStart.
#[derive(Debug, Clone)]
pub struct StartInfo {
    /// The round's parameters, with the input encoding's bytes.
    pub config: RoundConfig,
    /// This client's id.
    pub client_id: ClientId,
    /// How inputs are encoded, parsed from `config.encoding` and checked against the round's
    /// masked length. Every derived value (the float scale, the DP encoding) is computed from
    /// it and `config`, never read from the wire.
    pub encoding: InputEncoding,
    /// The server's roster (identity keys of clients 1..=n). A client compares it with its
    /// own and never uses it otherwise.
    pub roster: Vec<[u8; 32]>,
}

/// Parses and validates a RoundStart.
pub fn parse_round_start(p: proto::RoundStart) -> Result<StartInfo, ConvertError> {
    if p.encoding.len() > MAX_ENCODING_LEN {
        return Err(ConvertError(format!(
            "input encoding of {} bytes, at most {MAX_ENCODING_LEN}",
            p.encoding.len()
        )));
    }
    let config = RoundConfig {
        round_id: p.round_id,
        round_seed: fixed("round_seed", &p.round_seed)?,
        num_clients: p.num_clients,
        min_clients: p.min_clients,
        degree: p.degree,
        threshold: p.threshold,
        graph: match proto::GraphKind::try_from(p.graph) {
            Ok(proto::GraphKind::Complete) => GraphKind::Complete,
            Ok(proto::GraphKind::Harary) => GraphKind::Harary,
            Err(_) => return Err(ConvertError(format!("unknown graph kind {}", p.graph))),
        },
        bits: u8::try_from(p.bits)
            .map_err(|_| ConvertError(format!("bits {} out of range", p.bits)))?,
        dim: p.dim,
        prg: match proto::PrgKind::try_from(p.prg) {
            Ok(proto::PrgKind::Aes128Ctr) => PrgKind::Aes128Ctr,
            Ok(proto::PrgKind::Chacha20) => PrgKind::ChaCha20,
            Err(_) => return Err(ConvertError(format!("unknown prg {}", p.prg))),
        },
        model: match proto::ThreatModel::try_from(p.model) {
            Ok(proto::ThreatModel::HonestButCurious) => ThreatModel::HonestButCurious,
            Ok(proto::ThreatModel::Malicious) => ThreatModel::Malicious,
            Err(_) => return Err(ConvertError(format!("unknown threat model {}", p.model))),
        },
        pki: p.pki,
        encoding: p.encoding,
        validation: p
            .validation
            .map(|v| {
                Ok::<_, ConvertError>(ValidationParams {
                    bound_sq: v.bound_sq,
                    projections: u16::try_from(v.projections).map_err(|_| {
                        ConvertError(format!("{} projections, at most 65535", v.projections))
                    })?,
                    max_weight: Some(v.max_weight).filter(|w| *w != 0),
                })
            })
            .transpose()?,
    };
    config.validate().map_err(ConvertError)?;
    if p.client_id == 0 || p.client_id > config.num_clients {
        return Err(ConvertError(format!(
            "client id {} outside 1..={}",
            p.client_id, config.num_clients
        )));
    }
    let roster = p
        .roster
        .iter()
        .map(|k| fixed::<32>("roster key", k))
        .collect::<Result<Vec<_>, _>>()?;
    if roster.len() > config.num_clients as usize {
        return Err(ConvertError(format!(
            "a roster of {} keys for {} clients",
            roster.len(),
            config.num_clients
        )));
    }
    let encoding = InputEncoding::of(&config).map_err(ConvertError)?;
    let values = match encoding {
        InputEncoding::Integers => Some(config.dim as usize),
        InputEncoding::Float { .. } => (config.dim as usize).checked_sub(1),
        InputEncoding::Dp(p) => Some(p.dim),
    };
    let fits = values.is_some_and(|v| v > 0 && encoding.masked_dim(v) == Ok(config.dim));
    if !fits {
        return Err(ConvertError(format!(
            "the input encoding does not fit the round's {} masked values",
            config.dim
        )));
    }
    Ok(StartInfo {
        config,
        client_id: p.client_id,
        encoding,
        roster,
    })
}

/// A server→client core message (not RoundStart, which [`round_start`] builds) as a frame.
pub fn server_frame(msg: &ServerMessage, round_id: u64) -> proto::ServerFrame {
    let body = match msg {
        ServerMessage::RoundStart(_) => None,
        ServerMessage::NeighbourKeys {
            u1,
            keys_root,
            key_path,
            neighbours,
        } => Some(SBody::NeighbourKeys(proto::NeighbourKeys {
            u1: Some(idset_to_proto(u1)),
            neighbours: neighbours.iter().map(entry_to_proto).collect(),
            keys_root: keys_root.to_vec(),
            key_path: key_path.iter().map(|h| h.to_vec()).collect(),
        })),
        ServerMessage::SharesForYou { u2, ciphertexts } => {
            Some(SBody::SharesForYou(proto::SharesForYou {
                u2: Some(idset_to_proto(u2)),
                shares: ciphertexts
                    .iter()
                    .map(|(p, c)| proto::ShareCiphertext {
                        peer: *p,
                        ciphertext: c.clone(),
                    })
                    .collect(),
            }))
        }
        ServerMessage::ConsistencyRequest { u3 } => {
            Some(SBody::ConsistencyRequest(proto::ConsistencyRequest {
                u3: Some(idset_to_proto(u3)),
            }))
        }
        ServerMessage::UnmaskRequest {
            u3,
            signatures,
            statements,
        } => Some(SBody::UnmaskRequest(proto::UnmaskRequest {
            u3: Some(idset_to_proto(u3)),
            signatures: signatures
                .iter()
                .map(|(id, s)| proto::SignedBy {
                    id: *id,
                    signature: s.to_vec(),
                })
                .collect(),
            statements: statements
                .iter()
                .map(|(id, m)| proto::Statement {
                    id: *id,
                    masked_with: Some(masked_with_to_proto(m)),
                })
                .collect(),
        })),
        ServerMessage::Abort(reason) => Some(SBody::RoundEnd(proto::RoundEnd {
            round_id,
            released: false,
            reason: reason.clone(),
        })),
        ServerMessage::Done => Some(SBody::RoundEnd(proto::RoundEnd {
            round_id,
            released: true,
            reason: String::new(),
        })),
    };
    proto::ServerFrame { body }
}

/// A server frame (after RoundStart) as a core message of a round with `config`.
pub fn parse_server_frame(
    f: proto::ServerFrame,
    config: &RoundConfig,
) -> Result<ServerMessage, ConvertError> {
    let n = config.num_clients;
    Ok(match f.body {
        Some(SBody::NeighbourKeys(m)) => ServerMessage::NeighbourKeys {
            u1: idset_from_proto(m.u1, n)?,
            keys_root: fixed("keys_root", &m.keys_root)?,
            key_path: {
                if m.key_path.len() > MAX_PATH_LEN {
                    return Err(ConvertError(format!(
                        "a key path of {} hashes, at most {MAX_PATH_LEN}",
                        m.key_path.len()
                    )));
                }
                m.key_path
                    .iter()
                    .map(|h| fixed::<32>("key path hash", h))
                    .collect::<Result<_, _>>()?
            },
            neighbours: m
                .neighbours
                .into_iter()
                .map(entry_from_proto)
                .collect::<Result<_, _>>()?,
        },
        Some(SBody::SharesForYou(m)) => ServerMessage::SharesForYou {
            u2: idset_from_proto(m.u2, n)?,
            ciphertexts: m
                .shares
                .into_iter()
                .map(|s| (s.peer, s.ciphertext))
                .collect(),
        },
        Some(SBody::ConsistencyRequest(m)) => ServerMessage::ConsistencyRequest {
            u3: idset_from_proto(m.u3, n)?,
        },
        Some(SBody::UnmaskRequest(m)) => ServerMessage::UnmaskRequest {
            u3: idset_from_proto(m.u3, n)?,
            signatures: m
                .signatures
                .into_iter()
                .map(|s| Ok((s.id, fixed::<64>("signature", &s.signature)?)))
                .collect::<Result<_, ConvertError>>()?,
            statements: {
                if m.statements.len() > config.degree as usize {
                    return Err(ConvertError(format!(
                        "{} masked-with statements for degree {}",
                        m.statements.len(),
                        config.degree
                    )));
                }
                m.statements
                    .into_iter()
                    .map(|st| {
                        let mw = st.masked_with.ok_or_else(|| {
                            ConvertError(format!("statement of {} without content", st.id))
                        })?;
                        Ok((st.id, masked_with_from_proto(mw, config.degree)?))
                    })
                    .collect::<Result<_, ConvertError>>()?
            },
        },
        Some(SBody::RoundEnd(e)) if e.released => ServerMessage::Done,
        Some(SBody::RoundEnd(e)) => ServerMessage::Abort(e.reason),
        Some(SBody::RoundStart(_)) => return Err(ConvertError("a second RoundStart".into())),
        Some(SBody::JoinChallenge(_)) => {
            return Err(ConvertError("a JoinChallenge after RoundStart".into()));
        }
        Some(SBody::Validation(_)) => {
            return Err(ConvertError(
                "a validation message where a plain protocol message was expected".into(),
            ));
        }
        None => return Err(ConvertError("empty server frame".into())),
    })
}

/// Largest chunk of a masked vector in one frame.
pub const CHUNK_BYTES: usize = 1 << 20;

/// A client's core message as frames (the masked input split into chunks).
pub fn client_frames(msg: ClientMessage) -> Vec<proto::ClientFrame> {
    let one = |b| vec![proto::ClientFrame { body: Some(b) }];
    match msg {
        ClientMessage::AdvertiseKeys(e) => one(CBody::AdvertiseKeys(proto::AdvertiseKeys {
            encryption_public_key: e.enc_pk.to_vec(),
            mask_public_key: e.mask_pk.to_vec(),
            self_mask_commitment: e.commitment.to_vec(),
            signature: e.signature.map(|s| s.to_vec()).unwrap_or_default(),
        })),
        ClientMessage::EncryptedShares(list) => {
            one(CBody::EncryptedShares(proto::EncryptedShares {
                shares: list
                    .into_iter()
                    .map(|(p, c)| proto::ShareCiphertext {
                        peer: p,
                        ciphertext: c,
                    })
                    .collect(),
            }))
        }
        ClientMessage::MaskedInput {
            vector,
            proof,
            masked_with,
        } => {
            let n = vector.len().div_ceil(CHUNK_BYTES).max(1);
            // A validated round's norm proof goes first (plain rounds have none: no frame).
            let proof_frame = (!proof.is_empty()).then_some(proto::ClientFrame {
                body: Some(CBody::MaskedInputProof(proto::MaskedInputProof { proof })),
            });
            proof_frame
                .into_iter()
                .chain((0..n).map(|i| {
                    let start = i * CHUNK_BYTES;
                    let end = (start + CHUNK_BYTES).min(vector.len());
                    let last = i + 1 == n;
                    proto::ClientFrame {
                        body: Some(CBody::MaskedInput(proto::MaskedInputChunk {
                            offset: start as u64,
                            data: vector[start..end].to_vec(),
                            last,
                            masked_with: masked_with
                                .as_ref()
                                .filter(|_| last)
                                .map(masked_with_to_proto),
                        })),
                    }
                }))
                .collect()
        }
        ClientMessage::ConsistencySignature(s) => {
            one(CBody::ConsistencySignature(proto::ConsistencySignature {
                signature: s.to_vec(),
            }))
        }
        ClientMessage::UnmaskShares {
            self_mask,
            mask_key,
        } => one(CBody::UnmaskShares(proto::UnmaskShares {
            self_mask_shares: shares_to_proto(&self_mask),
            mask_key_shares: shares_to_proto(&mask_key),
        })),
    }
}

/// Whether `bytes` carry version byte 3: one of a validated round's own messages
/// (secagg-core `validate::wire`), as opposed to a plain protocol message (version 2). (A
/// validated round's RoundStart has version 3 too: [`round_start`] converts it, and a driver
/// decodes it as a `ServerMessage` before asking this.)
pub fn is_validation_message(bytes: &[u8]) -> bool {
    bytes.first() == Some(&VALIDATED_WIRE_VERSION)
}

/// A validated round's own server message (see [`is_validation_message`]) as a frame.
pub fn validation_frame(bytes: Vec<u8>) -> proto::ServerFrame {
    proto::ServerFrame {
        body: Some(SBody::Validation(bytes)),
    }
}

/// Largest `validation` frame a server accepts from a client: what secagg-core's decoder
/// accepts (`validate::wire::MAX_MESSAGE_LEN`); anything longer is refused before decoding.
pub const MAX_VALIDATION_FRAME: usize = 1 << 18;

/// A client state machine's reply (secagg-core bytes) as frames: a validated round's own
/// messages travel whole in a `validation` frame, the others as their typed frames.
pub fn client_reply_frames(
    reply: Vec<u8>,
    config: &RoundConfig,
) -> Result<Vec<proto::ClientFrame>, ConvertError> {
    if is_validation_message(&reply) {
        return Ok(vec![proto::ClientFrame {
            body: Some(CBody::Validation(reply)),
        }]);
    }
    let msg = ClientMessage::decode(&reply, config)
        .map_err(|e| ConvertError(format!("own reply does not decode: {e}")))?;
    Ok(client_frames(msg))
}

/// Reassembles a client's frames into core messages, enforcing the size the round implies.
#[derive(Default)]
pub struct Reassembler {
    masked: Vec<u8>,
    /// A validated round's norm proof, received before the masked input's chunks.
    proof: Option<Vec<u8>>,
}

impl Reassembler {
    /// Feeds one frame (not Join) from client `id`; returns a complete message, as the core's
    /// bytes, when one is ready. A validated round's own messages (`validation` frames) are
    /// passed on as they came (the core decodes and checks them); in a plain round they are
    /// refused, as is a norm proof.
    pub fn push_bytes(
        &mut self,
        id: ClientId,
        body: CBody,
        config: &RoundConfig,
    ) -> Result<Option<Vec<u8>>, ConvertError> {
        match body {
            CBody::Validation(bytes) => {
                if config.validation.is_none() {
                    return Err(ConvertError(
                        "a validation message in a round without validation".into(),
                    ));
                }
                if !is_validation_message(&bytes) {
                    return Err(ConvertError(
                        "a validation frame that does not hold a validation message (version 3)"
                            .into(),
                    ));
                }
                if bytes.len() > MAX_VALIDATION_FRAME {
                    return Err(ConvertError(format!(
                        "a validation message of {} bytes, at most {MAX_VALIDATION_FRAME}",
                        bytes.len()
                    )));
                }
                Ok(Some(bytes))
            }
            body => Ok(self.push(id, body, config)?.map(|m| m.encode())),
        }
    }

    /// Feeds one frame (not Join) from client `id`; returns a complete core message when one
    /// is ready.
    pub fn push(
        &mut self,
        id: ClientId,
        body: CBody,
        config: &RoundConfig,
    ) -> Result<Option<ClientMessage>, ConvertError> {
        Ok(Some(match body {
            CBody::Join(_) => return Err(ConvertError("Join sent twice".into())),
            CBody::JoinProof(_) => return Err(ConvertError("a JoinProof after Join".into())),
            CBody::Validation(_) => {
                return Err(ConvertError(
                    "a validation message where a plain protocol message was expected".into(),
                ));
            }
            CBody::MaskedInputProof(p) => {
                if config.validation.is_none() {
                    return Err(ConvertError(
                        "a norm proof in a round without validation".into(),
                    ));
                }
                if self.proof.is_some() || !self.masked.is_empty() {
                    return Err(ConvertError(
                        "a norm proof sent twice, or after the masked input's first chunk".into(),
                    ));
                }
                if p.proof.len() > MAX_PROOF_LEN {
                    return Err(ConvertError(format!(
                        "a norm proof of {} bytes, at most {MAX_PROOF_LEN}",
                        p.proof.len()
                    )));
                }
                self.proof = Some(p.proof);
                return Ok(None);
            }
            CBody::AdvertiseKeys(k) => ClientMessage::AdvertiseKeys(KeyEntry {
                id,
                enc_pk: fixed("encryption_public_key", &k.encryption_public_key)?,
                mask_pk: fixed("mask_public_key", &k.mask_public_key)?,
                commitment: fixed("self_mask_commitment", &k.self_mask_commitment)?,
                signature: opt_sig(&k.signature)?,
            }),
            CBody::EncryptedShares(s) => {
                if s.shares.len() > config.degree as usize {
                    return Err(ConvertError(format!(
                        "{} share ciphertexts for degree {}",
                        s.shares.len(),
                        config.degree
                    )));
                }
                ClientMessage::EncryptedShares(
                    s.shares
                        .into_iter()
                        .map(|c| (c.peer, c.ciphertext))
                        .collect(),
                )
            }
            CBody::MaskedInput(c) => {
                let expected = config.modulus().packed_len(config.dim as usize);
                if c.offset != self.masked.len() as u64 {
                    return Err(ConvertError(format!(
                        "masked input chunk at offset {} but {} bytes received so far",
                        c.offset,
                        self.masked.len()
                    )));
                }
                if self.masked.len() + c.data.len() > expected {
                    return Err(ConvertError(format!(
                        "masked input longer than the {expected} bytes of the round"
                    )));
                }
                if !c.last {
                    if c.masked_with.is_some() {
                        return Err(ConvertError(
                            "masked-with statement on a chunk other than the last".into(),
                        ));
                    }
                    self.masked.extend_from_slice(&c.data);
                    return Ok(None);
                }
                let masked_with = c
                    .masked_with
                    .map(|m| masked_with_from_proto(m, config.degree))
                    .transpose()?;
                self.masked.extend_from_slice(&c.data);
                ClientMessage::MaskedInput {
                    vector: std::mem::take(&mut self.masked),
                    proof: self.proof.take().unwrap_or_default(),
                    masked_with,
                }
            }
            CBody::ConsistencySignature(s) => {
                ClientMessage::ConsistencySignature(fixed("signature", &s.signature)?)
            }
            CBody::UnmaskShares(u) => {
                let limit = config.degree as usize + 1;
                if u.self_mask_shares.len() + u.mask_key_shares.len() > limit {
                    return Err(ConvertError("more shares than neighbours".into()));
                }
                ClientMessage::UnmaskShares {
                    self_mask: shares_from_proto(u.self_mask_shares)?,
                    mask_key: shares_from_proto(u.mask_key_shares)?,
                }
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use prost::Message;

    fn float_config() -> RoundConfig {
        RoundConfig {
            round_id: 3,
            round_seed: [9; 32],
            num_clients: 5,
            min_clients: 3,
            degree: 4,
            threshold: 3,
            graph: GraphKind::Complete,
            bits: 32,
            dim: 3,
            prg: PrgKind::Aes128Ctr,
            model: ThreatModel::HonestButCurious,
            pki: false,
            encoding: InputEncoding::Float {
                clip: 2.0,
                max_weight: 10,
            }
            .to_bytes(),
            validation: None,
        }
    }

    fn start_of(frame: proto::ServerFrame) -> proto::RoundStart {
        match frame.body {
            Some(SBody::RoundStart(s)) => s,
            _ => unreachable!("round_start builds a RoundStart"),
        }
    }

    /// Finding 3: wire version 1's FloatEncoding (field 14, with a scale) is reserved. A server
    /// that still sends one, with a scale that rounds every value to zero, is not read: the
    /// client's scale is the one the configuration's encoding implies for every client.
    #[test]
    fn a_scale_on_the_wire_is_never_read() {
        let c = float_config();
        let mut bytes = start_of(round_start(&c, 2, &[])).encode_to_vec();
        let mut old = vec![0x09];
        old.extend_from_slice(&2.0f64.to_le_bytes());
        old.push(0x11);
        old.extend_from_slice(&1e-12f64.to_le_bytes());
        old.extend_from_slice(&[0x18, 10]);
        bytes.push(0x72); // field 14, length-delimited
        bytes.push(old.len() as u8);
        bytes.extend_from_slice(&old);
        let info = parse_round_start(proto::RoundStart::decode(bytes.as_slice()).unwrap()).unwrap();
        assert_eq!(info.config, c);
        let derived = info.encoding.float(&info.config).unwrap().unwrap();
        let expected = secagg_core::encoding::FloatEncoding::new(32, 2.0, 5, 10).unwrap();
        assert_eq!(derived.scale, expected.scale);
        assert!(derived.scale > 1.0);
    }

    #[test]
    fn an_encoding_that_does_not_fit_the_round_is_refused() {
        let mut c = float_config();
        c.dim = 1; // no room for a value beside the weight
        assert!(parse_round_start(start_of(round_start(&c, 1, &[]))).is_err());
        let mut c = float_config();
        c.encoding = vec![1, 2, 3];
        let e = parse_round_start(start_of(round_start(&c, 1, &[]))).unwrap_err();
        assert!(e.0.contains("input encoding"), "{e}");
        let mut p = start_of(round_start(&float_config(), 1, &[]));
        p.encoding = vec![0; MAX_ENCODING_LEN + 1];
        assert!(parse_round_start(p).is_err());
        let mut p = start_of(round_start(&float_config(), 1, &[]));
        p.roster = vec![vec![1; 32]; 6];
        assert!(
            parse_round_start(p).is_err(),
            "more roster keys than clients"
        );
    }

    #[test]
    fn stage_messages_round_trip_and_statements_are_bounded() {
        let mut c = float_config();
        c.model = ThreatModel::Malicious;
        c.pki = true;
        let st = MaskedWith {
            bitmap: vec![0b1011],
            signature: [4; 64],
        };
        let msgs = [
            ServerMessage::NeighbourKeys {
                u1: IdSet::full(5),
                keys_root: [7; 32],
                key_path: vec![[1; 32], [2; 32], [3; 32]],
                neighbours: vec![KeyEntry {
                    id: 2,
                    enc_pk: [1; 32],
                    mask_pk: [2; 32],
                    commitment: [3; 32],
                    signature: Some([5; 64]),
                }],
            },
            ServerMessage::UnmaskRequest {
                u3: IdSet::full(5),
                signatures: vec![(1, [6; 64])],
                statements: vec![(2, st.clone()), (3, st.clone())],
            },
        ];
        for m in msgs {
            assert_eq!(parse_server_frame(server_frame(&m, 3), &c).unwrap(), m);
        }
        let many = ServerMessage::UnmaskRequest {
            u3: IdSet::full(5),
            signatures: vec![],
            statements: (1..=5).map(|i| (i, st.clone())).collect(),
        };
        assert!(parse_server_frame(server_frame(&many, 3), &c).is_err());
        let long = ServerMessage::UnmaskRequest {
            u3: IdSet::full(5),
            signatures: vec![],
            statements: vec![(
                2,
                MaskedWith {
                    bitmap: vec![0; 2],
                    signature: [0; 64],
                },
            )],
        };
        assert!(parse_server_frame(server_frame(&long, 3), &c).is_err());
    }

    fn validated_config() -> RoundConfig {
        let mut c = float_config();
        c.encoding = Vec::new();
        c.model = ThreatModel::Malicious;
        c.pki = true;
        c.validation = Some(ValidationParams {
            bound_sq: 1_000_000,
            projections: 41,
            max_weight: None,
        });
        c
    }

    /// Plain rounds: no validation field in RoundStart, no proof frame, and the validated
    /// rounds' frames refused (nothing about a plain round's wire changed).
    #[test]
    fn plain_rounds_carry_and_accept_no_validation_frames() {
        let c = float_config();
        let start = start_of(round_start(&c, 2, &[]));
        assert!(start.validation.is_none());
        let msg = ClientMessage::MaskedInput {
            vector: vec![1; 12],
            proof: Vec::new(),
            masked_with: None,
        };
        let frames = client_frames(msg);
        assert_eq!(frames.len(), 1);
        assert!(matches!(frames[0].body, Some(CBody::MaskedInput(_))));
        let mut r = Reassembler::default();
        let v = CBody::Validation(vec![VALIDATED_WIRE_VERSION, 0x31, 0]);
        assert!(r.push_bytes(1, v, &c).is_err());
        let p = CBody::MaskedInputProof(proto::MaskedInputProof { proof: vec![1; 8] });
        assert!(r.push_bytes(1, p, &c).is_err());
        assert!(parse_server_frame(validation_frame(vec![3, 0x21]), &c).is_err());
    }

    #[test]
    fn validated_round_start_and_norm_proof_round_trip() {
        let c = validated_config();
        let info = parse_round_start(start_of(round_start(&c, 2, &[]))).unwrap();
        assert_eq!(info.config, c);
        let msg = ClientMessage::MaskedInput {
            vector: vec![7; 12],
            proof: vec![9; 300],
            masked_with: None,
        };
        let frames = client_reply_frames(msg.encode(), &c).unwrap();
        assert!(matches!(frames[0].body, Some(CBody::MaskedInputProof(_))));
        let mut r = Reassembler::default();
        let mut out = None;
        for f in frames {
            out = r.push_bytes(1, f.body.unwrap(), &c).unwrap();
        }
        assert_eq!(out, Some(msg.encode()));
        // A second proof, or one after the first chunk, is refused.
        let mut r = Reassembler::default();
        let p = || CBody::MaskedInputProof(proto::MaskedInputProof { proof: vec![1; 8] });
        assert!(r.push_bytes(1, p(), &c).unwrap().is_none());
        assert!(r.push_bytes(1, p(), &c).is_err());
        // Validation frames pass through whole, only with version byte 3 and within the size
        // the core decodes.
        let ok = vec![VALIDATED_WIRE_VERSION, 0x31, 1, 2];
        let frames = client_reply_frames(ok.clone(), &c).unwrap();
        assert_eq!(frames.len(), 1);
        let mut r = Reassembler::default();
        let body = frames.into_iter().next().unwrap().body.unwrap();
        assert_eq!(r.push_bytes(1, body, &c).unwrap(), Some(ok));
        assert!(
            r.push_bytes(1, CBody::Validation(vec![2, 0x11]), &c)
                .is_err()
        );
        let big = vec![VALIDATED_WIRE_VERSION; MAX_VALIDATION_FRAME + 1];
        assert!(r.push_bytes(1, CBody::Validation(big), &c).is_err());
        // More projections than a u16 holds are refused.
        let mut start = start_of(round_start(&c, 2, &[]));
        if let Some(v) = start.validation.as_mut() {
            v.projections = 70_000;
        }
        assert!(parse_round_start(start).is_err());
    }

    #[test]
    fn a_masked_with_statement_rides_only_on_the_last_chunk() {
        let c = float_config();
        let st = MaskedWith {
            bitmap: vec![0b11],
            signature: [8; 64],
        };
        let msg = ClientMessage::MaskedInput {
            vector: vec![1; 12],
            proof: Vec::new(),
            masked_with: Some(st.clone()),
        };
        let frames = client_frames(msg.clone());
        let mut r = Reassembler::default();
        let mut out = None;
        for f in frames {
            out = r.push(1, f.body.unwrap(), &c).unwrap();
        }
        assert_eq!(out, Some(msg));
        let early = CBody::MaskedInput(proto::MaskedInputChunk {
            offset: 0,
            data: vec![1; 4],
            last: false,
            masked_with: Some(masked_with_to_proto(&st)),
        });
        assert!(Reassembler::default().push(1, early, &c).is_err());
        let oversized = CBody::MaskedInput(proto::MaskedInputChunk {
            offset: 0,
            data: vec![1; 12],
            last: true,
            masked_with: Some(proto::MaskedWith {
                bitmap: vec![0; 100],
                signature: vec![0; 64],
            }),
        });
        assert!(Reassembler::default().push(1, oversized, &c).is_err());
    }
}
