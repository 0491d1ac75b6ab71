//! Conversions between the gRPC messages and secagg-core's. Untrusted protobuf becomes a core
//! message only through `TryFrom`, which checks every fixed-size field; the core decoder then
//! checks everything against the round's parameters.

use secagg_core::config::RoundConfig;
use secagg_core::encoding::FloatEncoding;
use secagg_core::idset::IdSet;
use secagg_core::messages::{ClientMessage, KeyEntry, ServerMessage};
use secagg_core::params::ThreatModel;
use secagg_core::shamir::Share;
use secagg_core::{ClientId, GraphKind, PrgKind};
use secagg_dp::pipeline::{NoiseKind, NoisePlacement};
use secagg_sim::dp::DpParams;

use crate::proto;
use crate::proto::client_frame::Body as CBody;
use crate::proto::server_frame::Body as SBody;

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

/// The RoundStart a client receives: the round's parameters, its id, and (PKI) the roster.
pub fn round_start(
    c: &RoundConfig,
    client_id: ClientId,
    float: Option<&FloatEncoding>,
    dp: Option<&DpParams>,
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
            float_encoding: float.map(|f| proto::FloatEncoding {
                clip: f.clip,
                scale: f.scale,
                max_weight: f.max_weight,
            }),
            roster: roster.iter().map(|k| k.to_vec()).collect(),
            dp_encoding: dp.map(dp_to_proto),
        })),
    }
}

fn dp_to_proto(p: &DpParams) -> proto::DpEncoding {
    proto::DpEncoding {
        noise: match p.noise {
            NoiseKind::DiscreteGaussian => proto::DpNoise::DiscreteGaussian,
            NoiseKind::Skellam => proto::DpNoise::Skellam,
        } as i32,
        central: p.placement == NoisePlacement::Central,
        noise_multiplier: p.noise_multiplier,
        clip: p.clip,
        beta: p.beta,
        dim: p.dim as u32,
    }
}

fn dp_from_proto(p: proto::DpEncoding, c: &RoundConfig) -> Result<DpParams, ConvertError> {
    let params = DpParams {
        noise: match proto::DpNoise::try_from(p.noise) {
            Ok(proto::DpNoise::DiscreteGaussian) => NoiseKind::DiscreteGaussian,
            Ok(proto::DpNoise::Skellam) => NoiseKind::Skellam,
            Err(_) => return Err(ConvertError(format!("unknown DP noise {}", p.noise))),
        },
        placement: if p.central {
            NoisePlacement::Central
        } else {
            NoisePlacement::Distributed
        },
        noise_multiplier: p.noise_multiplier,
        clip: p.clip,
        beta: p.beta,
        dim: p.dim as usize,
    };
    params
        .validate()
        .map_err(|e| ConvertError(format!("invalid DP encoding: {e}")))?;
    if params.masked_dim().map_err(ConvertError)? != c.dim {
        return Err(ConvertError(format!(
            "invalid DP encoding: {} values pad to {}, but the round masks {}",
            params.dim,
            params.masked_dim().map_err(ConvertError)?,
            c.dim
        )));
    }
    Ok(params)
}

/// What a client learns from RoundStart.
pub struct StartInfo {
    /// The round's parameters.
    pub config: RoundConfig,
    /// This client's id.
    pub client_id: ClientId,
    /// Float encoding, for weighted-mean rounds.
    pub float: Option<FloatEncoding>,
    /// Differential privacy, for rounds that release a private mean.
    pub dp: Option<DpParams>,
    /// PKI roster (identity keys of clients 1..=n).
    pub roster: Vec<[u8; 32]>,
}

/// Parses and validates a RoundStart.
pub fn parse_round_start(p: proto::RoundStart) -> Result<StartInfo, ConvertError> {
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
    let float = match p.float_encoding {
        Some(f) => {
            if !(f.clip.is_finite() && f.clip > 0.0 && f.scale.is_finite() && f.scale > 0.0) {
                return Err(ConvertError("invalid float encoding".into()));
            }
            Some(FloatEncoding {
                clip: f.clip,
                scale: f.scale,
                bits: config.bits,
                max_weight: f.max_weight,
            })
        }
        None => None,
    };
    let dp = p
        .dp_encoding
        .map(|d| dp_from_proto(d, &config))
        .transpose()?;
    if dp.is_some() && float.is_some() {
        return Err(ConvertError(
            "a round cannot be both a weighted mean and a DP mean".into(),
        ));
    }
    Ok(StartInfo {
        config,
        client_id: p.client_id,
        float,
        dp,
        roster,
    })
}

/// A server→client core message (not RoundStart, which [`round_start`] builds) as a frame.
pub fn server_frame(msg: &ServerMessage, round_id: u64) -> proto::ServerFrame {
    let body = match msg {
        ServerMessage::RoundStart(_) => None,
        ServerMessage::NeighbourKeys { u1, neighbours } => {
            Some(SBody::NeighbourKeys(proto::NeighbourKeys {
                u1: Some(idset_to_proto(u1)),
                neighbours: neighbours.iter().map(entry_to_proto).collect(),
            }))
        }
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
        ServerMessage::UnmaskRequest { u3, signatures } => {
            Some(SBody::UnmaskRequest(proto::UnmaskRequest {
                u3: Some(idset_to_proto(u3)),
                signatures: signatures
                    .iter()
                    .map(|(id, s)| proto::SignedBy {
                        id: *id,
                        signature: s.to_vec(),
                    })
                    .collect(),
            }))
        }
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
        },
        Some(SBody::RoundEnd(e)) if e.released => ServerMessage::Done,
        Some(SBody::RoundEnd(e)) => ServerMessage::Abort(e.reason),
        Some(SBody::RoundStart(_)) => return Err(ConvertError("a second RoundStart".into())),
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
        ClientMessage::MaskedInput { vector, .. } => {
            let n = vector.len().div_ceil(CHUNK_BYTES).max(1);
            (0..n)
                .map(|i| {
                    let start = i * CHUNK_BYTES;
                    let end = (start + CHUNK_BYTES).min(vector.len());
                    proto::ClientFrame {
                        body: Some(CBody::MaskedInput(proto::MaskedInputChunk {
                            offset: start as u64,
                            data: vector[start..end].to_vec(),
                            last: i + 1 == n,
                        })),
                    }
                })
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

/// Reassembles a client's frames into core messages, enforcing the size the round implies.
#[derive(Default)]
pub struct Reassembler {
    masked: Vec<u8>,
}

impl Reassembler {
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
                self.masked.extend_from_slice(&c.data);
                if !c.last {
                    return Ok(None);
                }
                ClientMessage::MaskedInput {
                    vector: std::mem::take(&mut self.masked),
                    proof: Vec::new(),
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
