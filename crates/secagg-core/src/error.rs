//! Errors that say who is at fault: a malformed message (codec), a peer that misbehaved, a
//! caller that misused the API, or a round that cannot go on.

use alloc::string::String;
use core::fmt;

use crate::ClientId;

/// The stages of a round, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// Stage 0: clients advertise their two public keys.
    AdvertiseKeys,
    /// Stage 1: clients send encrypted Shamir shares to their neighbours.
    ShareKeys,
    /// Stage 2: clients upload their masked input.
    MaskedInput,
    /// Validated rounds only (VALIDATION.md §9): clients answer the challenge κ with their
    /// binding proofs, and the ends of pairs whose commitments differ answer disputes. Between
    /// the upload and the consistency check; not in [`Stage::ALL`], the plain rounds' stages.
    Validate,
    /// Stage 3 (malicious-server model): clients sign the survivor set.
    ConsistencyCheck,
    /// Stage 4: clients reveal the shares the server needs to unmask.
    Unmask,
}

impl Stage {
    /// All stages in order.
    pub const ALL: [Stage; 5] = [
        Stage::AdvertiseKeys,
        Stage::ShareKeys,
        Stage::MaskedInput,
        Stage::ConsistencyCheck,
        Stage::Unmask,
    ];

    /// The lowercase name used on the command line and in JSON.
    pub const fn name(self) -> &'static str {
        match self {
            Stage::AdvertiseKeys => "advertise",
            Stage::ShareKeys => "share",
            Stage::MaskedInput => "masked-input",
            Stage::Validate => "validate",
            Stage::ConsistencyCheck => "consistency",
            Stage::Unmask => "unmask",
        }
    }

    /// Parses [`Stage::name`].
    pub fn from_name(s: &str) -> Option<Stage> {
        Stage::ALL
            .into_iter()
            .chain([Stage::Validate])
            .find(|st| st.name() == s)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A message could not be decoded. Says nothing about secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecError {
    /// The message ended early.
    Truncated,
    /// Bytes were left after the message.
    TrailingBytes(usize),
    /// Unknown message tag or protocol version.
    UnknownTag(u8),
    /// A length did not match what the round's parameters imply.
    LengthMismatch {
        /// What was being decoded.
        what: &'static str,
        /// The length the parameters imply.
        expected: usize,
        /// The length found.
        got: usize,
    },
    /// A count exceeds a limit of the round.
    TooLarge {
        /// What was being decoded.
        what: &'static str,
        /// The limit.
        limit: usize,
        /// The count found.
        got: usize,
    },
    /// A value had more than one encoding, or an invalid one.
    NonCanonical(&'static str),
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::Truncated => write!(f, "message truncated"),
            CodecError::TrailingBytes(n) => write!(f, "{n} trailing bytes after message"),
            CodecError::UnknownTag(t) => write!(f, "unknown message tag or version {t}"),
            CodecError::LengthMismatch {
                what,
                expected,
                got,
            } => write!(f, "{what}: expected {expected} bytes/elements, got {got}"),
            CodecError::TooLarge { what, limit, got } => {
                write!(f, "{what}: {got} exceeds the limit {limit}")
            }
            CodecError::NonCanonical(what) => write!(f, "invalid encoding of {what}"),
        }
    }
}

/// Why the server dropped a client's message (and the client, for this round).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Misbehaviour {
    /// The message did not decode.
    Malformed(CodecError),
    /// A message arrived for a stage that is not the current one, or twice.
    UnexpectedMessage {
        /// The stage the server is in.
        stage: Stage,
        /// What arrived.
        got: &'static str,
    },
    /// A client id the round does not know, or one that was dropped.
    UnknownClient,
    /// A signature did not verify.
    BadSignature,
    /// A public key was invalid (e.g. a low-order point) or reused.
    BadKey,
    /// Shares addressed to clients that are not the sender's neighbours, or missing ones.
    BadRecipients,
    /// A share that does not belong to the request, or is malformed.
    BadShare,
    /// Malicious model: a masked input without a valid statement of whom it was masked with,
    /// or one naming other neighbours than the U2 the server sent.
    BadMaskedWith,
    /// The driver could not turn the client's transport frame into a message.
    InvalidFrame(String),
    /// Validated rounds: a validation check failed (its reason, as in VALIDATION.md §16).
    Validation(&'static str),
}

impl fmt::Display for Misbehaviour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Misbehaviour::Malformed(e) => write!(f, "malformed message: {e}"),
            Misbehaviour::UnexpectedMessage { stage, got } => {
                write!(f, "unexpected {got} while the round is in stage {stage}")
            }
            Misbehaviour::UnknownClient => write!(f, "unknown or dropped client"),
            Misbehaviour::BadSignature => write!(f, "signature does not verify"),
            Misbehaviour::BadKey => write!(f, "invalid or reused public key"),
            Misbehaviour::BadRecipients => {
                write!(f, "shares not addressed to exactly the sender's neighbours")
            }
            Misbehaviour::BadShare => write!(f, "invalid or unrequested share"),
            Misbehaviour::BadMaskedWith => {
                write!(f, "missing or invalid masked-with statement")
            }
            Misbehaviour::InvalidFrame(m) => write!(f, "invalid frame: {m}"),
            Misbehaviour::Validation(m) => write!(f, "validation: {m}"),
        }
    }
}

/// An error of the server state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerError {
    /// A client misbehaved: it is dropped from the round, the round goes on.
    Client {
        /// The offender.
        id: ClientId,
        /// What it did.
        reason: Misbehaviour,
    },
    /// The round has aborted (see [`RoundAborted`]); nothing was revealed.
    Aborted(RoundAborted),
    /// The caller used the API wrongly (e.g. fed a message after the round ended).
    Misuse(&'static str),
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerError::Client { id, reason } => write!(f, "client {id} dropped: {reason}"),
            ServerError::Aborted(a) => write!(f, "{a}"),
            ServerError::Misuse(m) => write!(f, "API misuse: {m}"),
        }
    }
}

/// The round stopped before releasing a result. An aborted round reveals nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoundAborted {
    /// Fewer clients than the threshold were left at a stage.
    TooFewClients {
        /// Where it happened.
        stage: Stage,
        /// How many were left.
        remaining: usize,
        /// How many are needed.
        needed: usize,
    },
    /// A secret could not be reconstructed: fewer than t of its holder's neighbours answered.
    CannotReconstruct {
        /// Whose secret.
        owner: ClientId,
        /// Shares received.
        shares: usize,
        /// Shares needed.
        needed: usize,
    },
    /// Reconstructed secrets were inconsistent with the owner's commitment.
    InconsistentShares {
        /// Whose secret.
        owner: ClientId,
    },
    /// Validated rounds (VALIDATION.md §6.4, D38, D40): a validation check failed where no
    /// exclusion can help, so nothing is released: the aggregate commitment check (safety
    /// net), a missing verifier key, or the round's own state (`client` names whom it concerns,
    /// if one).
    Validation {
        /// Who lied, when one client is named.
        client: Option<ClientId>,
        /// Which check.
        check: &'static str,
    },
}

impl fmt::Display for RoundAborted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoundAborted::TooFewClients {
                stage,
                remaining,
                needed,
            } => write!(
                f,
                "round aborted at stage {stage}: {remaining} clients left, at least {needed} needed"
            ),
            RoundAborted::CannotReconstruct {
                owner,
                shares,
                needed,
            } => write!(
                f,
                "round aborted at stage unmask: only {shares} of the {needed} shares needed for client {owner}'s secret arrived"
            ),
            RoundAborted::InconsistentShares { owner } => write!(
                f,
                "round aborted at stage unmask: the shares of client {owner}'s secret do not match its commitment"
            ),
            RoundAborted::Validation {
                client: Some(c),
                check,
            } => write!(
                f,
                "round aborted after unmasking: client {c} failed the validation check \"{check}\"; nothing released"
            ),
            RoundAborted::Validation {
                client: None,
                check,
            } => write!(
                f,
                "round aborted: validation check \"{check}\" failed; nothing released"
            ),
        }
    }
}

/// Why an honest client refused to go on. The client sends nothing more in the round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// A message from the server did not decode.
    Malformed(CodecError),
    /// The message is not the one expected at this point of the round.
    UnexpectedMessage(&'static str),
    /// The round's parameters are not acceptable under the client's policy.
    BadParameters(String),
    /// The server (or a peer through it) broke the protocol; the string says how.
    ServerMisbehaved(String),
    /// A peer's share ciphertext did not decrypt or did not match.
    PeerMisbehaved {
        /// The peer.
        peer: ClientId,
        /// What was wrong.
        reason: &'static str,
    },
    /// The server reported that the round aborted.
    RoundAborted(String),
    /// The caller used the API wrongly.
    Misuse(&'static str),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Malformed(e) => write!(f, "malformed message from the server: {e}"),
            ClientError::UnexpectedMessage(m) => write!(f, "unexpected message: {m}"),
            ClientError::BadParameters(m) => write!(f, "refusing the round's parameters: {m}"),
            ClientError::ServerMisbehaved(m) => write!(f, "refusing: the server {m}"),
            ClientError::PeerMisbehaved { peer, reason } => {
                write!(f, "peer {peer} misbehaved: {reason}")
            }
            ClientError::RoundAborted(m) => write!(f, "the round aborted: {m}"),
            ClientError::Misuse(m) => write!(f, "API misuse: {m}"),
        }
    }
}

/// A client's round state could not be saved ([`crate::client::ClientRound::export_state`])
/// or restored ([`crate::client::ClientRound::import_state`]). Says nothing about secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateError {
    /// The bytes do not start with the state's magic: not a saved client state.
    NotAState,
    /// Saved in a format version this build does not read.
    UnsupportedVersion(u8),
    /// Truncated, trailing bytes, an unknown stage or an invalid field.
    Malformed(CodecError),
    /// Well-formed fields that contradict each other or the round's parameters.
    Inconsistent(&'static str),
    /// A client that failed has no round state to save; this is its error.
    Failed(ClientError),
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateError::NotAState => {
                write!(f, "not a saved secagg client state (wrong magic bytes)")
            }
            StateError::UnsupportedVersion(v) => write!(
                f,
                "saved client state has format version {v}, this build reads version {}",
                crate::client::STATE_VERSION
            ),
            StateError::Malformed(e) => write!(f, "malformed saved client state: {e}"),
            StateError::Inconsistent(m) => write!(f, "inconsistent saved client state: {m}"),
            StateError::Failed(e) => {
                write!(f, "the client failed ({e}): it has no round state to save")
            }
        }
    }
}

impl From<CodecError> for StateError {
    fn from(e: CodecError) -> Self {
        StateError::Malformed(e)
    }
}

impl From<CodecError> for ClientError {
    fn from(e: CodecError) -> Self {
        ClientError::Malformed(e)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for CodecError {}
#[cfg(feature = "std")]
impl std::error::Error for ServerError {}
#[cfg(feature = "std")]
impl std::error::Error for RoundAborted {}
#[cfg(feature = "std")]
impl std::error::Error for ClientError {}
#[cfg(feature = "std")]
impl std::error::Error for StateError {}
