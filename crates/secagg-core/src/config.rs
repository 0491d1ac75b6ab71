//! The public parameters of a round, announced by the server and checked by every client.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::PROTOCOL_VERSION;
use crate::codec::{Reader, Writer};
use crate::crypto::{SessionId, hash};
use crate::error::CodecError;
use crate::idset::IdSet;
use crate::params::ThreatModel;
use crate::ring::Modulus;

/// Largest number of clients in one round.
pub const MAX_CLIENTS: u32 = 1 << 20;
/// Largest vector length (2^28 elements: 2 GiB as u64 in memory).
pub const MAX_DIM: u32 = 1 << 28;
/// Largest input-encoding description ([`RoundConfig::encoding`]).
pub const MAX_ENCODING_LEN: usize = 1024;

/// Which clients share keys and masks with which.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GraphKind {
    /// Every client with every other (SecAgg, Bonawitz et al. 2017).
    Complete,
    /// A k-regular Harary graph with randomly permuted labels (SecAgg+, Bell et al. 2020).
    Harary,
}

/// The pseudo-random generator that expands mask seeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrgKind {
    /// AES-128 in counter mode with a 64-bit counter: fastest with AES instructions.
    Aes128Ctr,
    /// ChaCha20: for devices without AES instructions.
    ChaCha20,
}

/// Everything a client must know, and agree to, before it advertises keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundConfig {
    /// Unique per round; never reused by a server.
    pub round_id: u64,
    /// Public randomness chosen by the server for this round.
    pub round_seed: [u8; 32],
    /// Clients invited (ids 1..=n).
    pub num_clients: u32,
    /// The round aborts when fewer clients than this remain at any stage (≥ threshold).
    pub min_clients: u32,
    /// Neighbours per client, k (n - 1 for the complete graph).
    pub degree: u32,
    /// Shamir threshold t: shares needed to reconstruct a secret, among a client's neighbours.
    pub threshold: u32,
    /// Neighbour graph.
    pub graph: GraphKind,
    /// Modulus 2^bits.
    pub bits: u8,
    /// Vector length.
    pub dim: u32,
    /// Mask PRG.
    pub prg: PrgKind,
    /// Honest-but-curious server, or an active (malicious) server.
    pub model: ThreatModel,
    /// Whether advertised keys are signed with identity keys from a roster.
    pub pki: bool,
    /// How clients encode their inputs into Z_2^b, as the driver's canonical bytes (empty for
    /// raw integers): clipping range, weight bound, DP mechanism and parameters. The core does
    /// not interpret it, but it is part of [`RoundConfig::digest`] and so of the session id:
    /// a server that tells two clients different encodings makes their keys disagree. Drivers
    /// derive every encoding value (e.g. the fixed-point scale) from it and the other fields.
    pub encoding: Vec<u8>,
    /// Validated inputs (docs/VALIDATION.md, issue 11): every client proves ‖x‖₂² ≤ `bound_sq`
    /// for its encoded input. `None` for a plain round, whose encoding, digest and session id
    /// are exactly those of wire version 2; `Some` makes the round one of wire version 3 and
    /// enters the digest (so the session id: a server cannot give one client a private
    /// bound). Needs feature `validate` of secagg-core at both ends.
    pub validation: Option<ValidationParams>,
}

/// The announced parameters of a validated round (VALIDATION.md §15:
/// `RoundConfig.validation: Option<{bound_sq: u64, projections: u16}>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ValidationParams {
    /// B_enc², the bound on ‖x‖₂² in encoded units (§5.4).
    pub bound_sq: u64,
    /// J, the binding projections (§4; 41 + c). Checked against the client's J_cap.
    pub projections: u16,
    /// W, when the encoded vector's last coordinate is a weight (float rounds, §5.4): every
    /// client also proves that coordinate is in [0, W] (D33, amended after the final review:
    /// without it one client could scale or zero the released mean with a negative or huge
    /// weight inside the norm bound). `None` for vectors without a weight coordinate.
    pub max_weight: Option<u64>,
}

/// The wire version of a validated round (VALIDATION.md §15): its `RoundStart` carries this
/// version byte and the validation parameters after the plain fields.
pub const VALIDATED_WIRE_VERSION: u8 = 3;

/// Label of a validated round's config digest (VALIDATION.md §15: every derivation of wire
/// version 3 is labelled `secagg/v3/validate/…`; D30).
const VALIDATED_DIGEST_LABEL: &[u8] = b"secagg/v3/validate/round-config";

impl RoundConfig {
    /// Checks internal consistency; the message says what to change.
    pub fn validate(&self) -> Result<(), String> {
        let n = self.num_clients;
        if !(2..=MAX_CLIENTS).contains(&n) {
            return Err(format!(
                "the number of clients must be in 2..={MAX_CLIENTS}, got {n}"
            ));
        }
        if Modulus::new(self.bits).is_none() {
            return Err(format!("bits must be in 1..=64, got {}", self.bits));
        }
        if !(1..=MAX_DIM).contains(&self.dim) {
            return Err(format!(
                "the dimension must be in 1..={MAX_DIM}, got {}",
                self.dim
            ));
        }
        if self.degree == 0 || self.degree > n - 1 {
            return Err(format!(
                "the degree must be in 1..={} (n - 1), got {}",
                n - 1,
                self.degree
            ));
        }
        if self.graph == GraphKind::Complete && self.degree != n - 1 {
            return Err(format!("a complete graph has degree n - 1 = {}", n - 1));
        }
        if self.graph == GraphKind::Harary && self.degree < n - 1 && self.degree % 2 == 1 {
            return Err(format!(
                "a Harary graph needs an even degree (k/2 neighbours on each side), got {}; \
                 Flower's num_shares = k + 1 counts the client itself, so its 21 is --degree 20",
                self.degree
            ));
        }
        if self.threshold < 2 || self.threshold > self.degree {
            return Err(format!(
                "the threshold must be in 2..={} (the degree), got {}: t = 1 would hand each \
                 secret to any single neighbour",
                self.degree, self.threshold
            ));
        }
        if self.min_clients < self.threshold || self.min_clients > n {
            return Err(format!(
                "min_clients must be in {}..={n} (at least the threshold), got {}",
                self.threshold, self.min_clients
            ));
        }
        if self.encoding.len() > MAX_ENCODING_LEN {
            return Err(format!(
                "the input encoding description is {} bytes, at most {MAX_ENCODING_LEN} allowed",
                self.encoding.len()
            ));
        }
        if self.model == ThreatModel::Malicious && !self.pki {
            return Err(String::from(
                "the malicious-server model needs a PKI: without identity keys the server could \
                 forge the consistency signatures",
            ));
        }
        if self.validation.is_some() && self.model != ThreatModel::Malicious {
            return Err(String::from(
                "validated inputs need the malicious-server model with a PKI (VALIDATION.md §9: \
                 the pair-seed hashes and binding responses are signed)",
            ));
        }
        Ok(())
    }

    /// The modulus 2^bits (bits are validated on decode; an invalid value gives 2^64).
    pub fn modulus(&self) -> Modulus {
        Modulus::new(self.bits).unwrap_or(Modulus::new(64).unwrap_or_else(|| unreachable!()))
    }

    /// Canonical encoding.
    pub fn encode(&self, w: &mut Writer) {
        w.u64(self.round_id)
            .fixed(&self.round_seed)
            .u32(self.num_clients)
            .u32(self.min_clients)
            .u32(self.degree)
            .u32(self.threshold)
            .u8(match self.graph {
                GraphKind::Complete => 0,
                GraphKind::Harary => 1,
            })
            .u8(self.bits)
            .u32(self.dim)
            .u8(match self.prg {
                PrgKind::Aes128Ctr => 0,
                PrgKind::ChaCha20 => 1,
            })
            .u8(match self.model {
                ThreatModel::HonestButCurious => 0,
                ThreatModel::Malicious => 1,
            })
            .u8(self.pki as u8)
            .bytes(&self.encoding);
        // Wire version 3 only: a plain round's bytes end with the encoding, as in version 2.
        if let Some(v) = &self.validation {
            // W = 0 on the wire is "no weight coordinate" (a weight bounded by 0 is refused).
            w.u64(v.bound_sq)
                .fixed(&v.projections.to_le_bytes())
                .u64(v.max_weight.unwrap_or(0));
        }
    }

    /// The wire version of the round's messages: 2 for a plain round, 3 with validation.
    pub fn wire_version(&self) -> u8 {
        if self.validation.is_some() {
            VALIDATED_WIRE_VERSION
        } else {
            crate::messages::WIRE_VERSION
        }
    }

    /// Decodes and validates a plain (wire version 2) configuration.
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Self::decode_versioned(r, false)
    }

    /// Decodes and validates a configuration; `validated` (known from the message's or saved
    /// state's version byte) says whether the validation parameters follow the plain fields.
    pub fn decode_versioned(r: &mut Reader<'_>, validated: bool) -> Result<Self, CodecError> {
        let mut c = RoundConfig {
            round_id: r.u64()?,
            round_seed: r.array()?,
            num_clients: r.u32()?,
            min_clients: r.u32()?,
            degree: r.u32()?,
            threshold: r.u32()?,
            graph: match r.u8()? {
                0 => GraphKind::Complete,
                1 => GraphKind::Harary,
                _ => return Err(CodecError::NonCanonical("graph kind")),
            },
            bits: r.u8()?,
            dim: r.u32()?,
            prg: match r.u8()? {
                0 => PrgKind::Aes128Ctr,
                1 => PrgKind::ChaCha20,
                _ => return Err(CodecError::NonCanonical("prg kind")),
            },
            model: match r.u8()? {
                0 => ThreatModel::HonestButCurious,
                1 => ThreatModel::Malicious,
                _ => return Err(CodecError::NonCanonical("threat model")),
            },
            pki: match r.u8()? {
                0 => false,
                1 => true,
                _ => return Err(CodecError::NonCanonical("pki flag")),
            },
            encoding: r.bytes("input encoding", MAX_ENCODING_LEN)?.to_vec(),
            validation: None,
        };
        if validated {
            c.validation = Some(ValidationParams {
                bound_sq: r.u64()?,
                projections: u16::from_le_bytes(r.array()?),
                max_weight: Some(r.u64()?).filter(|w| *w != 0),
            });
        }
        c.validate()
            .map_err(|_| CodecError::NonCanonical("round parameters"))?;
        Ok(c)
    }

    /// Hash of the encoded parameters (what advertised keys are signed over).
    pub fn digest(&self) -> [u8; 32] {
        let mut w = Writer::default();
        self.encode(&mut w);
        if self.validation.is_some() {
            hash(&[VALIDATED_DIGEST_LABEL, &w.finish()])
        } else {
            hash(&[PROTOCOL_VERSION, b"round-config", &w.finish()])
        }
    }

    /// The session id: parameters, the set U1 of clients whose keys were accepted, and the
    /// Merkle root of their advertised key entries ([`crate::merkle`]). Every derived key, the
    /// graph's permutation and every consistency signature depend on it, so nothing from
    /// another round or view can be replayed, and it depends on fresh keys of every client.
    pub fn session_id(&self, u1: &IdSet, keys_root: &[u8; 32]) -> SessionId {
        let mut w = Writer::default();
        u1.encode(&mut w);
        hash(&[
            PROTOCOL_VERSION,
            b"session",
            &self.digest(),
            &w.finish(),
            keys_root,
        ])
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn sample(n: u32, k: u32, t: u32) -> RoundConfig {
        RoundConfig {
            round_id: 7,
            round_seed: [1u8; 32],
            num_clients: n,
            min_clients: t,
            degree: k,
            threshold: t,
            graph: if k == n - 1 {
                GraphKind::Complete
            } else {
                GraphKind::Harary
            },
            bits: 32,
            dim: 10,
            prg: PrgKind::Aes128Ctr,
            model: ThreatModel::HonestButCurious,
            pki: false,
            encoding: Vec::new(),
            validation: None,
        }
    }

    #[test]
    fn validation_messages() {
        assert!(sample(10, 4, 3).validate().is_ok());
        assert!(sample(10, 9, 5).validate().is_ok());
        assert!(
            sample(10, 5, 3)
                .validate()
                .unwrap_err()
                .contains("even degree")
        );
        assert!(
            sample(10, 4, 1)
                .validate()
                .unwrap_err()
                .contains("threshold")
        );
        assert!(
            sample(10, 4, 5)
                .validate()
                .unwrap_err()
                .contains("threshold")
        );
        let mut c = sample(10, 4, 3);
        c.model = ThreatModel::Malicious;
        assert!(c.validate().unwrap_err().contains("PKI"));
        c.bits = 0;
        assert!(c.validate().is_err());
        let mut c = sample(10, 4, 3);
        c.min_clients = 2;
        assert!(c.validate().is_err());
    }

    #[test]
    fn roundtrip_and_session_binding() {
        let c = sample(10, 4, 3);
        let mut w = Writer::default();
        c.encode(&mut w);
        let buf = w.finish();
        assert_eq!(RoundConfig::decode(&mut Reader::new(&buf)).unwrap(), c);
        let u1 = IdSet::full(10);
        let root = [5u8; 32];
        let mut other = c.clone();
        other.round_id = 8;
        assert_ne!(c.session_id(&u1, &root), other.session_id(&u1, &root));
        let mut u1b = u1.clone();
        u1b.remove(3);
        assert_ne!(c.session_id(&u1, &root), c.session_id(&u1b, &root));
        assert_ne!(c.session_id(&u1, &root), c.session_id(&u1, &[6u8; 32]));
        let mut enc = c.clone();
        enc.encoding = alloc::vec![1, 2, 3];
        assert_ne!(c.session_id(&u1, &root), enc.session_id(&u1, &root));
        let mut w = Writer::default();
        enc.encode(&mut w);
        assert_eq!(
            RoundConfig::decode(&mut Reader::new(&w.finish())).unwrap(),
            enc
        );
        let mut bad = buf.clone();
        bad[8 + 32 + 12] = 0; // threshold 0
        assert!(RoundConfig::decode(&mut Reader::new(&bad)).is_err());
    }

    /// D30: validation parameters follow the plain fields only when present, and change the
    /// digest (and so the session id); the plain bytes are a prefix of the validated ones.
    #[test]
    fn validated_configs_round_trip_and_bind_the_bound() {
        use crate::messages::ServerMessage;
        let mut c = sample(10, 9, 5);
        c.model = ThreatModel::Malicious;
        c.pki = true;
        let plain = c.clone();
        c.validation = Some(ValidationParams {
            bound_sq: 401,
            projections: 41,
            max_weight: None,
        });
        let (mut wp, mut wv) = (Writer::default(), Writer::default());
        plain.encode(&mut wp);
        c.encode(&mut wv);
        let (bp, bv) = (wp.finish(), wv.finish());
        assert_eq!(&bv[..bp.len()], &bp[..]);
        assert_eq!(bv.len(), bp.len() + 18);
        // W travels too, round-trips and changes the digest (so the session id).
        let mut weighted = c.clone();
        if let Some(v) = weighted.validation.as_mut() {
            v.max_weight = Some(5);
        }
        let mut ww = Writer::default();
        weighted.encode(&mut ww);
        let bw = ww.finish();
        assert_eq!(
            RoundConfig::decode_versioned(&mut Reader::new(&bw), true).unwrap(),
            weighted
        );
        assert_ne!(weighted.digest(), c.digest());
        assert_eq!(
            RoundConfig::decode_versioned(&mut Reader::new(&bv), true).unwrap(),
            c
        );
        // A plain decoder leaves the validation bytes unread (RoundStart refuses them).
        assert!(
            RoundConfig::decode(&mut Reader::new(&bv))
                .unwrap()
                .validation
                .is_none()
        );
        let start = ServerMessage::RoundStart(c.clone()).encode();
        assert_eq!(&start[..2], &[3, 1]);
        assert_eq!(
            ServerMessage::decode(&start, None).unwrap(),
            ServerMessage::RoundStart(c.clone())
        );
        let start_plain = ServerMessage::RoundStart(plain.clone()).encode();
        assert_eq!(start_plain[0], 2);
        // A v3 RoundStart cut to the plain bytes does not decode, nor one with a trailing byte.
        let mut cut = start.clone();
        cut.truncate(start.len() - 18);
        assert!(ServerMessage::decode(&cut, None).is_err());
        let mut long = start.clone();
        long.push(0);
        assert!(ServerMessage::decode(&long, None).is_err());
        assert_ne!(plain.digest(), c.digest());
        let mut c2 = c.clone();
        c2.validation = Some(ValidationParams {
            bound_sq: 402,
            projections: 41,
            max_weight: None,
        });
        assert_ne!(c.digest(), c2.digest());
        c2.validation = Some(ValidationParams {
            bound_sq: 401,
            projections: 42,
            max_weight: None,
        });
        assert_ne!(c.digest(), c2.digest());
        // Validated rounds need the malicious model.
        let mut hbc = c.clone();
        hbc.model = ThreatModel::HonestButCurious;
        hbc.pki = false;
        assert!(hbc.validate().unwrap_err().contains("malicious"));
    }
}
