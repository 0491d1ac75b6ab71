//! The device's identity, its trust anchor and what it accepts: one constructor shared by the
//! firmware and the host tests (`crates/secagg-cli/src/gateway_attack.rs` includes this file),
//! so that the attack tests attack exactly the client the firmware runs.
//!
//! The identity key and the roster are provisioned at build time (`build.rs` turns the files
//! of `secagg keygen` into constants in flash), never received from the gateway: the gateway
//! relays bytes it can rewrite, so anything the device learned through it could be forged.
//! With its own roster the device checks every neighbour's signed keys, and with
//! [`Policy::malicious`] it requires the consistency check, so a gateway (alone or with the
//! server) can get it refused or dropped, not unmasked.
//!
//! Depends on `secagg-core` and `alloc` only.

// Declared here too so that the gateway's tests (a std crate) can include this file.
extern crate alloc;
use alloc::vec::Vec;

use secagg_core::ClientError;
use secagg_core::client::{Client, Policy, StreamedClient};
use secagg_core::crypto::IdentityKey;

/// Fraction of corrupt clients the device assumes (checked against every round's k, t and
/// min_clients, as `secagg client --threat malicious` does by default).
pub const ASSUMED_CORRUPT: f64 = 0.05;
/// Colluding roster members the device assumes at the least, whatever the roster's size: 5 %
/// of a small roster rounds down to none (n < 20), and a device that assumed no colluder would
/// accept a graph of two neighbours and threshold 2, which two colluders could be made to fill
/// (docs/review-devices-2.md, G2).
pub const MIN_ASSUMED_COLLUDERS: u32 = 2;
/// Fraction of dropouts the device assumes: a round must not unmask with fewer than
/// ⌈(1 − 0.05)·n⌉ survivors.
pub const ASSUMED_DROPOUT: f64 = 0.05;

/// Why the device will not take part, before any round starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProvisionError {
    /// No identity key or roster was built in.
    NotProvisioned,
    /// The device's own key is not in its roster.
    NotInRoster,
    /// The gateway assigned an id that is not the device's line in its roster.
    WrongId,
}

impl ProvisionError {
    /// A short reason for the device's log and its REFUSED frame.
    pub fn reason(self) -> &'static str {
        match self {
            Self::NotProvisioned => "not provisioned: no identity key or roster built in",
            Self::NotInRoster => "my identity key is not in my roster",
            Self::WrongId => "assigned an id that is not my line in my roster",
        }
    }
}

/// The device's id in every round: its key's line in its own roster (1-based), as the server
/// numbers a PKI round's clients.
pub fn own_id(identity: &IdentityKey, roster: &[[u8; 32]]) -> Result<u32, ProvisionError> {
    let pk = identity.public();
    roster
        .iter()
        .position(|k| *k == pk)
        .and_then(|i| u32::try_from(i + 1).ok())
        .ok_or(ProvisionError::NotInRoster)
}

/// The device's client for one round, as the firmware builds it after `ASSIGN(assigned)`:
/// streamed input of `dim` elements, signed with `identity`, peers checked against `roster`,
/// the malicious-server model required (so rounds without a PKI or without the consistency
/// check are refused at RoundStart) and min_clients at least `min_clients_floor`.
pub fn device_client(
    assigned: u32,
    dim: u32,
    identity: IdentityKey,
    roster: &[[u8; 32]],
    min_clients_floor: u32,
) -> Result<StreamedClient, ProvisionError> {
    if own_id(&identity, roster)? != assigned {
        return Err(ProvisionError::WrongId);
    }
    let mut policy = Policy::malicious(corrupt_fraction(roster.len()), ASSUMED_DROPOUT);
    policy.min_clients = policy.min_clients.max(min_clients_floor);
    let roster: Vec<[u8; 32]> = roster.to_vec();
    Ok(Client::streamed(assigned, dim)
        .with_pki(identity, roster)
        .with_policy(policy))
}

/// The corrupt fraction the device checks rounds against for a roster of `n` keys:
/// [`ASSUMED_CORRUPT`], or more if that is fewer than [`MIN_ASSUMED_COLLUDERS`] clients.
pub fn corrupt_fraction(n: usize) -> f64 {
    let floor = f64::from(MIN_ASSUMED_COLLUDERS) / (n.max(1) as f64);
    if floor > ASSUMED_CORRUPT {
        floor
    } else {
        ASSUMED_CORRUPT
    }
}

/// The kind of a refusal, for the device's log (the message says the details).
pub fn error_kind(e: &ClientError) -> &'static str {
    match e {
        ClientError::Malformed(_) => "malformed",
        ClientError::UnexpectedMessage(_) => "unexpected-message",
        ClientError::BadParameters(_) => "bad-parameters",
        ClientError::ServerMisbehaved(_) => "server-misbehaved",
        ClientError::PeerMisbehaved { .. } => "peer-misbehaved",
        ClientError::RoundAborted(_) => "round-aborted",
        ClientError::Misuse(_) => "misuse",
    }
}
