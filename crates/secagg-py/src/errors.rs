//! The Python exceptions a round raises, mapped from the core's typed errors so that the
//! exception says who is at fault: a client (`PeerMisbehaved`), the server (`ServerRefused`),
//! or nobody in particular because too few were left (`RoundAborted`). The classes live in
//! `secagg/_errors.py` so they carry plain attributes (`client_id`, `stage`, `reason`).

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use secagg_core::{ClientError, RoundAborted, ServerError, Stage};

/// Instantiates `secagg._errors.<class>(*args)` as a Python exception.
fn raise<'py, A>(py: Python<'py>, class: &str, args: A) -> PyErr
where
    A: pyo3::call::PyCallArgs<'py>,
{
    let made = py
        .import("secagg._errors")
        .and_then(|m| m.getattr(class))
        .and_then(|c| c.call1(args));
    match made {
        Ok(exc) => PyErr::from_value(exc),
        Err(e) => e,
    }
}

/// `PeerMisbehaved(client_id, reason)`.
pub fn peer_misbehaved(py: Python<'_>, client_id: u32, reason: String) -> PyErr {
    raise(py, "PeerMisbehaved", (client_id, reason))
}

/// `RoundAborted(stage, reason)`.
pub fn round_aborted(py: Python<'_>, stage: Option<&str>, reason: String) -> PyErr {
    raise(py, "RoundAborted", (stage, reason))
}

/// `ServerRefused(reason)`.
pub fn server_refused(py: Python<'_>, reason: String) -> PyErr {
    raise(py, "ServerRefused", (reason,))
}

/// `InputAboveBound(reason)`: a validated round's honest client refused its own input (its
/// L2 norm is above the bound); nothing was sent.
pub fn input_above_bound(py: Python<'_>, reason: String) -> PyErr {
    raise(py, "InputAboveBound", (reason,))
}

/// `ProtocolError(message)`: misuse of a round object that is not about the arguments.
pub fn protocol_error(py: Python<'_>, message: String) -> PyErr {
    raise(py, "ProtocolError", (message,))
}

/// The stage at which an abort happened.
pub fn aborted_stage(a: &RoundAborted) -> Stage {
    match a {
        RoundAborted::TooFewClients { stage, .. } => *stage,
        RoundAborted::CannotReconstruct { .. }
        | RoundAborted::InconsistentShares { .. }
        | RoundAborted::Validation { .. } => Stage::Unmask,
    }
}

/// The server's errors: a client is blamed, the round aborted, or the caller misused the API.
pub fn from_server_error(py: Python<'_>, e: ServerError) -> PyErr {
    match e {
        ServerError::Client { id, reason } => peer_misbehaved(py, id, reason.to_string()),
        ServerError::Aborted(a) => round_aborted(py, Some(aborted_stage(&a).name()), a.to_string()),
        ServerError::Misuse(m) => PyValueError::new_err(format!("API misuse: {m}")),
    }
}

/// The stage named in a server's abort text ("... at stage NAME ..."), when there is one.
fn stage_in_text(reason: &str) -> Option<&'static str> {
    let rest = reason.split(" at stage ").nth(1)?;
    let word = rest.split([' ', ':', ',']).next()?;
    Stage::from_name(word).map(Stage::name)
}

/// An honest client's errors: the server (or a peer through it) is blamed, or the round ended.
pub fn from_client_error(py: Python<'_>, e: &ClientError) -> PyErr {
    match e {
        ClientError::PeerMisbehaved { peer, reason } => {
            peer_misbehaved(py, *peer, (*reason).to_string())
        }
        ClientError::RoundAborted(reason) => {
            round_aborted(py, stage_in_text(reason), reason.clone())
        }
        ClientError::Misuse(m) => protocol_error(py, format!("API misuse: {m}")),
        ClientError::Malformed(_)
        | ClientError::UnexpectedMessage(_)
        | ClientError::BadParameters(_)
        | ClientError::ServerMisbehaved(_) => server_refused(py, e.to_string()),
    }
}
