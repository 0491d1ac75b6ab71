//! Typed errors. Untrusted input (proof bytes) and malformed statements end here, never in a
//! panic; the caller maps them to the client that sent the proof.

use alloc::vec::Vec;
use core::fmt;

/// Everything that can go wrong while proving, decoding or verifying.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The argument runs only on power-of-two lengths (≥ 1); the caller pads (VALIDATION.md F1).
    NotPowerOfTwo { n: usize },
    /// Two vectors of the statement or witness that must have the same length do not.
    LengthMismatch {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    /// A size beyond what validated rounds allow (VALIDATION.md §5.3), refused before allocating.
    TooLarge {
        what: &'static str,
        max: u64,
        got: u64,
    },
    /// The statement needs more generators than the set provides.
    GeneratorsTooShort { needed: usize, have: usize },
    /// Proof bytes of the wrong length for the statement's size.
    ProofLength { expected: usize, got: usize },
    /// The point encoding at this index (in encoding order) does not decompress.
    InvalidPoint { index: usize },
    /// The scalar at this index (in encoding order) is not canonical (not < ℓ).
    NonCanonicalScalar { index: usize },
    /// The WIP weight y must be nonzero (it is inverted).
    ZeroWeight,
    /// A GHL response entry outside ‖z‖_∞ ≤ Z_max (verifier), or a prover vector whose row
    /// product exceeds M (prover refuses).
    GhlBound { row: usize },
    /// The proof does not verify.
    VerificationFailed,
    /// The prover's ‖x‖² exceeds B_enc² (a local refusal, VALIDATION.md §5.4). **Carries the
    /// client's exact ‖x‖²: it must never leave the client** (not in a message, a dropout
    /// reason or a server-side log; the round glue maps it to a reason without the number).
    AboveBound { norm_sq: u128, bound_sq: u64 },
    /// The prover's weight coordinate exceeds W (a local refusal).
    WeightAboveBound { weight: u64, max: u64 },
    /// Bytes or a statement that do not parse as what they claim to be.
    Malformed { what: &'static str },
    /// A wire version this build does not speak.
    Version { expected: u8, got: u8 },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotPowerOfTwo { n } => write!(f, "length {n} is not a power of two"),
            Error::LengthMismatch {
                what,
                expected,
                got,
            } => {
                write!(f, "{what}: expected length {expected}, got {got}")
            }
            Error::TooLarge { what, max, got } => write!(f, "{what} = {got} exceeds {max}"),
            Error::GeneratorsTooShort { needed, have } => {
                write!(f, "need {needed} generators, have {have}")
            }
            Error::ProofLength { expected, got } => {
                write!(f, "proof is {got} bytes, expected {expected}")
            }
            Error::InvalidPoint { index } => write!(f, "point {index} does not decompress"),
            Error::NonCanonicalScalar { index } => write!(f, "scalar {index} is not canonical"),
            Error::ZeroWeight => write!(f, "weight y is zero"),
            Error::GhlBound { row } => write!(f, "GHL row {row} out of bound"),
            Error::VerificationFailed => write!(f, "proof does not verify"),
            Error::AboveBound { norm_sq, bound_sq } => write!(
                f,
                "squared norm {norm_sq} of the encoded update exceeds the bound {bound_sq}"
            ),
            Error::WeightAboveBound { weight, max } => {
                write!(f, "weight {weight} exceeds the bound {max}")
            }
            Error::Malformed { what } => write!(f, "malformed {what}"),
            Error::Version { expected, got } => {
                write!(f, "wire version {got}, expected {expected}")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}

/// A batch that did not verify (VALIDATION.md §21.1 D26).
///
/// The caller excludes exactly the proofs that [`BatchError::Proofs`] names and nothing on
/// [`BatchError::Internal`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchError {
    /// Every proof of the batch that fails **on its own**, in increasing index, each with its
    /// error (never empty). The batch path re-checks each proof individually before it names one,
    /// so two bad proofs are both named.
    Proofs(Vec<(usize, Error)>),
    /// The batch check failed although every proof verified on its own (an arithmetic or
    /// library disagreement that should not happen). Names no client: the caller must
    /// re-verify individually (or give up on the batch), never exclude anyone for it.
    Internal,
}

impl BatchError {
    /// One failing proof.
    pub fn one(proof: usize, error: Error) -> Self {
        BatchError::Proofs(alloc::vec![(proof, error)])
    }

    /// The indices of the proofs that fail on their own (empty for [`BatchError::Internal`]).
    pub fn failing(&self) -> Vec<usize> {
        match self {
            BatchError::Proofs(v) => v.iter().map(|(i, _)| *i).collect(),
            BatchError::Internal => Vec::new(),
        }
    }
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchError::Proofs(v) => {
                write!(f, "{} proof(s) of the batch fail:", v.len())?;
                for (i, e) in v {
                    write!(f, " [{i}] {e};")?;
                }
                Ok(())
            }
            BatchError::Internal => write!(
                f,
                "the batch check failed but every proof verifies alone (re-verify individually)"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for BatchError {}
