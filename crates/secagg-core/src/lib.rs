//! # secagg-core
//!
//! The sans-IO protocol core of secagg: secure aggregation (Bonawitz et al., CCS 2017) with the
//! sparse neighbour graphs of SecAgg+ (Bell et al., CCS 2020).
//!
//! Everything here is deterministic and free of I/O: no clock, no sockets, no OS randomness.
//! Randomness is injected as a [`rand_core::CryptoRng`], time as plain milliseconds, and
//! messages travel as byte strings that a driver (the simulator, a gRPC service, Python)
//! carries. The crate is `no_std + alloc` with `--no-default-features`, so the client builds
//! for microcontrollers.
//!
//! Layout:
//! - [`ring`]: vectors in Z_2^b and their b-bit wire packing.
//! - [`prg`]: expanding a 32-byte seed into a mask and adding it into a vector.
//! - [`crypto`]: X25519 key agreement, HKDF domain separation, AEAD for shares, Ed25519.
//! - [`shamir`]: Shamir secret sharing over GF(2^61 - 1).
//! - [`graph`]: complete and Harary neighbour graphs.
//! - [`merkle`]: the Merkle tree over a round's advertised keys (part of the session id).
//! - [`params`]: choosing and checking (k, t) for a threat model.
//! - [`messages`]: the wire messages, with a codec that never panics.
//! - [`client`] and [`server`]: the round state machines (a client saves to and restores from
//!   bytes between messages).
//! - [`encoding`]: floats in, floats out: clipping, stochastic rounding, weights.
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

#[cfg(feature = "cheats")]
#[doc(hidden)]
pub mod cheat;
pub mod client;
pub mod codec;
pub mod config;
pub mod crypto;
pub mod encoding;
pub mod error;
pub mod graph;
pub mod idset;
pub mod merkle;
pub mod messages;
pub mod params;
pub mod prg;
pub mod ring;
pub mod server;
pub mod shamir;
#[cfg(feature = "validate")]
pub mod validate;

pub use config::{GraphKind, PrgKind, RoundConfig};
pub use error::{ClientError, CodecError, RoundAborted, ServerError, Stage, StateError};
pub use params::ThreatModel;

/// Identifier of a client within a round: 1-based, so it doubles as its Shamir evaluation point.
pub type ClientId = u32;

/// Version tag mixed into every derived key and the session id.
pub const PROTOCOL_VERSION: &[u8] = b"secagg/v2";
