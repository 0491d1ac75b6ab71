//! Validated inputs: the round glue between the protocol core and `secagg-zk` (issue 11,
//! docs/VALIDATION.md §15, build plan §21 step 6). Feature `validate`.
//!
//! Everything here is a deterministic function of the round's secrets and public values; no
//! state, no messages (those are step 7, `wire.rs`, and step 8, the state machines):
//! - [`params`]: J = 41 + c, the client's cap J_cap, the wire-version-3 constants (Λ, Λ′, φ),
//!   the configuration check of §5.3 ([`params::check_config`]) and the validated-round float
//!   scale s_val with its bound B_enc² of §5.4 ([`params::float_scale`], F10);
//! - [`blind`]: the derived scalars r_self(b_u), σ_u(b_u, κ), r_pair(s_uv), β_uv(s_uv, κ),
//!   the pair-seed hash h_uv and the view digest V_u (§4, §8.3);
//! - [`projection`]: ρ from κ (§4), Y_j = ⟨ρ_j, y_u⟩, t_self and t_uv as projections of the
//!   core's mask streams, and a client's τ and carry projections ω (§5.2);
//! - [`commit`]: x as the signed representative, C_u's blinding r_u and C_u, O_u, P_uv, and
//!   T_u's h′ blinding (§5.1, §5.2).
//!
//! The byte-level choices these functions make (HKDF salt and info layout, integer widths, the
//! bit order of ρ, the scale's safety margin) are VALIDATION.md §21.1 D16–D19; the
//! known-answer tests of each module pin them.
//!
//! Step 7, the pieces of disputes and exclusions (still no state machine):
//! - [`dispute`]: the answer rule (i)–(iii) of §8.3 ([`dispute::answer_dispute`], F5), the
//!   server's resolution of an answer ([`dispute::resolve_dispute`]) and F5's second line of
//!   defence;
//! - [`evidence`]: the checks of §8.5 ([`evidence::check_dropped_pair`], F2) and §8.6
//!   ([`evidence::check_self_mask`]), both under the checker's own session and κ (F8);
//! - [`wire`]: the new messages of §15 with their size-limited decoders.
//!
//! Their choices are D20 and D21 (wire), D22 (evidence) and D23 (disputes).
//!
//! Step 8a, the norm proof at upload:
//! - [`round`]: the configuration check of a [`crate::RoundConfig`] with validation, the
//!   client's proof for `MaskedInput.proof` and the server's batch verification (the state
//!   machines call them; D30–D37).
//!
//! Step 8b, first part, the challenge stage:
//! - [`binding`]: the client's signed binding answer to κ, the server's check of it, and the
//!   safety net's recomputation (§6.4); the state machines run the share-stage hashes and
//!   cuts (§8.3), the challenge, the pair comparison and disputes, and the post-unmask checks.
//!
//! After unmasking, lies on self masks and on pairs with dropped clients are excluded by rule E
//! (D38, D42; the unmask is one message, not split).
//!
//! Signs: sgn(u, v) = +1 if u < v, else −1, the sign with which u adds PRG(s_uv) (as
//! `client.rs` masks); pair lists are `(v, s_uv)` for v ∈ S_u in any order (sums commute).

pub mod binding;
pub mod blind;
pub mod commit;
pub mod dispute;
pub mod evidence;
pub mod params;
pub mod projection;
pub mod round;
pub mod wire;

pub use evidence::Culprit;

use alloc::string::String;
use core::fmt;

use crate::ClientId;

pub use secagg_zk;

/// The label every derivation of validated rounds starts with (VALIDATION.md §15: every new
/// derivation is labelled `secagg/v3/validate/…`).
pub const DOMAIN: &[u8] = b"secagg/v3/validate/";

/// sgn(u, v) = +1 if u < v (u adds PRG(s_uv)), −1 otherwise.
pub fn pair_sign_positive(u: ClientId, v: ClientId) -> bool {
    u < v
}

/// Why a validated round's parameters or one of its derivations were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValidateError {
    /// A parameter beyond the limits of §5.3.
    TooLarge {
        what: &'static str,
        max: u64,
        got: u64,
    },
    /// A parameter that must be positive is zero (or a bound is not a positive number).
    Zero { what: &'static str },
    /// J above the client's cost cap J_cap (F12).
    ProjectionsAboveCap { projections: u32, cap: u32 },
    /// n·B_enc ≥ 2^(b−1): a sum over the survivors could wrap (§5.3).
    SumCanWrap {
        clients: u32,
        bound_sq: u64,
        bits: u8,
    },
    /// s_val ≤ 0 or s_val·B < 1: b is too small for n, d and W (§5.4, F10).
    ScaleTooSmall { bits: u8, clients: u32, dim: u32 },
    /// Two lengths that must agree do not.
    LengthMismatch {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    /// A list that must be in strictly increasing client order is not.
    NotIncreasing { what: &'static str },
    /// x, the masks and the upload do not satisfy y = x + m (mod 2^b): the client's own
    /// inputs are inconsistent (a local error, never sent).
    InconsistentUpload { index: usize },
    /// An error of the proof system.
    Zk(secagg_zk::Error),
    /// Anything else, described.
    Other(String),
}

impl fmt::Display for ValidateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValidateError::TooLarge { what, max, got } => {
                write!(f, "validated round: {what} = {got} exceeds {max}")
            }
            ValidateError::Zero { what } => write!(f, "validated round: {what} must be positive"),
            ValidateError::ProjectionsAboveCap { projections, cap } => write!(
                f,
                "validated round: {projections} projections exceed this client's cap {cap}"
            ),
            ValidateError::SumCanWrap {
                clients,
                bound_sq,
                bits,
            } => write!(
                f,
                "validated round: {clients} clients of squared norm {bound_sq} can wrap 2^{bits} \
                 (needs n·B_enc < 2^(b-1)): use more bits or a smaller bound"
            ),
            ValidateError::ScaleTooSmall { bits, clients, dim } => write!(
                f,
                "validated round: {bits} bits leave no room for {clients} clients at d = {dim} \
                 (s_val·B < 1): use more bits"
            ),
            ValidateError::LengthMismatch {
                what,
                expected,
                got,
            } => write!(f, "{what}: expected length {expected}, got {got}"),
            ValidateError::NotIncreasing { what } => {
                write!(f, "{what}: client ids not strictly increasing")
            }
            ValidateError::InconsistentUpload { index } => write!(
                f,
                "the masked upload does not equal x plus the masks at coordinate {index}"
            ),
            ValidateError::Zk(e) => write!(f, "validation proof system: {e}"),
            ValidateError::Other(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for ValidateError {}

impl From<secagg_zk::Error> for ValidateError {
    fn from(e: secagg_zk::Error) -> Self {
        ValidateError::Zk(e)
    }
}

#[cfg(test)]
mod tests;
