//! `secagg.Client`: one client's side of a round (`secagg_core::client::ClientRound`) for
//! callers that carry the bytes themselves. The input stays raw until RoundStart arrives,
//! because a float input can only be encoded once the round's bits and client count are known.
//! From then on the client can be saved to bytes and restored (`export_state`, `from_state`)
//! by drivers that cannot keep the object alive between messages.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use secagg_core::client::{Client as CoreClient, ClientRound, Policy, Roster};
use secagg_core::crypto::IdentityKey;
use secagg_core::encoding::FloatEncoding;
use secagg_core::messages::ServerMessage;
use secagg_core::{ClientError, RoundConfig, ThreatModel};
use zeroize::Zeroizing;

use crate::arrays::{Vector, read_vector};
use crate::errors::{from_client_error, protocol_error};
use crate::options::{config_dict, count, os_random};
use crate::server::read_roster;

/// What the client brings before the round starts.
struct Pending {
    input: Vector,
    weight: u64,
    float: Option<(f64, u64)>,
    identity: Option<IdentityKey>,
    roster: Option<Roster>,
    policy: Policy,
}

enum State {
    /// Waiting for RoundStart.
    Pending(Box<Pending>),
    /// Taking part.
    Running(Box<ClientRound>),
}

impl Pending {
    /// Builds the core client for the round announced in `round_start`.
    fn into_client(
        self,
        id: u32,
        round_start: &[u8],
        rng: &mut ChaCha20Rng,
    ) -> Result<(CoreClient, RoundConfig), ClientError> {
        let config = match ServerMessage::decode(round_start, None)? {
            ServerMessage::RoundStart(c) => c,
            ServerMessage::Abort(r) => return Err(ClientError::RoundAborted(r)),
            _ => return Err(ClientError::UnexpectedMessage("expected RoundStart")),
        };
        let encoded: Vec<u64> = match (&self.input, self.float) {
            (Vector::Unsigned(v), None) => v.to_vec(),
            (Vector::Float(v), Some((clip, max_weight))) => {
                let enc = FloatEncoding::new(config.bits, clip, config.num_clients, max_weight)
                    .map_err(|e| ClientError::BadParameters(e.0))?;
                enc.encode(v, self.weight, rng)
                    .map_err(|e| ClientError::BadParameters(e.0))?
            }
            // The constructor pairs float inputs with clip= and unsigned ones without it.
            _ => return Err(ClientError::Misuse("input kind and clip= disagree")),
        };
        let mut c = CoreClient::new(id, encoded).with_policy(self.policy);
        if let (Some(k), Some(r)) = (self.identity, self.roster) {
            c = c.with_pki(k, r);
        }
        Ok((c, config))
    }
}

/// One client's side of one round.
#[pyclass(module = "secagg._secagg")]
pub struct Client {
    id: u32,
    state: State,
    rng: ChaCha20Rng,
    config: Option<RoundConfig>,
}

fn rng_from(seed: Option<&Bound<'_, PyAny>>) -> PyResult<ChaCha20Rng> {
    let Some(seed) = seed else {
        return Ok(ChaCha20Rng::from_seed(os_random::<32>()?));
    };
    if let Ok(b) = seed.extract::<Vec<u8>>()
        && !seed.is_instance_of::<pyo3::types::PyInt>()
    {
        let s = <[u8; 32]>::try_from(b.as_slice()).map_err(|_| {
            PyValueError::new_err(format!("a bytes seed must be 32 bytes, got {}", b.len()))
        })?;
        return Ok(ChaCha20Rng::from_seed(s));
    }
    let s: u64 = seed
        .extract()
        .map_err(|_| PyValueError::new_err("seed must be an int in 0..2**64 or 32 bytes"))?;
    Ok(ChaCha20Rng::seed_from_u64(s))
}

#[pymethods]
impl Client {
    #[new]
    #[pyo3(signature = (
        client_id, input, *, weight=1, clip=None, max_weight=1, identity=None, roster=None,
        seed=None, require_malicious_model=false, min_clients=2
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        client_id: i128,
        input: &Bound<'_, PyAny>,
        weight: i128,
        clip: Option<f64>,
        max_weight: i128,
        identity: Option<Vec<u8>>,
        roster: Option<Vec<Vec<u8>>>,
        seed: Option<&Bound<'_, PyAny>>,
        require_malicious_model: bool,
        min_clients: i128,
    ) -> PyResult<Self> {
        let client_id: u32 = count(client_id, "client_id")?;
        let weight: u64 = count(weight, "weight")?;
        let max_weight: u64 = count(max_weight, "max_weight")?;
        let min_clients: u32 = count(min_clients, "min_clients")?;
        if client_id == 0 {
            return Err(PyValueError::new_err(
                "client_id is 1-based (1..=clients): 0 is not a client",
            ));
        }
        let input = read_vector(input, "input")?;
        let float = match (&input, clip) {
            (Vector::Unsigned(_), None) => None,
            (Vector::Float(_), Some(c)) => Some((c, max_weight)),
            (Vector::Unsigned(_), Some(_)) => {
                return Err(PyValueError::new_err(
                    "clip= is for float inputs (weighted-mean rounds); unsigned inputs are summed",
                ));
            }
            (Vector::Float(_), None) => {
                return Err(PyValueError::new_err(
                    "float inputs need clip= (and max_weight=) equal to the server's, to encode \
                     them for the weighted mean",
                ));
            }
        };
        if float.is_some() && weight > max_weight {
            return Err(PyValueError::new_err(format!(
                "weight {weight} exceeds max_weight {max_weight}: raise max_weight on the server \
                 and the clients"
            )));
        }
        let identity = match identity {
            None => None,
            Some(b) => {
                let seed = Zeroizing::new(<[u8; 32]>::try_from(b.as_slice()).map_err(|_| {
                    PyValueError::new_err(format!(
                        "identity must be the 32-byte secret from secagg.keygen, got {} bytes",
                        b.len()
                    ))
                })?);
                Some(IdentityKey::from_seed(&seed))
            }
        };
        let roster = roster.map(|r| read_roster(r, "roster")).transpose()?;
        if identity.is_some() != roster.is_some() {
            return Err(PyValueError::new_err(
                "identity= and roster= go together (malicious-model rounds)",
            ));
        }
        let policy = Policy {
            min_model: if require_malicious_model {
                ThreatModel::Malicious
            } else {
                ThreatModel::HonestButCurious
            },
            min_threshold_fraction: 0.0,
            min_clients,
        };
        Ok(Self {
            id: client_id,
            state: State::Pending(Box::new(Pending {
                input,
                weight,
                float,
                identity,
                roster,
                policy,
            })),
            rng: rng_from(seed)?,
            config: None,
        })
    }

    /// Handles one server message; returns the reply to send, if any.
    fn handle<'py>(
        &mut self,
        py: Python<'py>,
        message: &[u8],
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let (id, rng) = (self.id, &mut self.rng);
        let state = std::mem::replace(
            &mut self.state,
            State::Running(Box::new(ClientRound::Finished)),
        );
        // Masking the input is the expensive part: release the GIL.
        let (state, config, result) = py.detach(move || match state {
            State::Pending(p) => match p.into_client(id, message, rng) {
                Ok((c, config)) => {
                    let mut round = ClientRound::New(c);
                    let r = round.handle(message, rng);
                    (State::Running(Box::new(round)), Some(config), r)
                }
                Err(e) => (
                    State::Running(Box::new(ClientRound::Failed(e.clone()))),
                    None,
                    Err(e),
                ),
            },
            State::Running(mut round) => {
                let r = round.handle(message, rng);
                // A client restored before RoundStart learns its config here.
                let config = round.config().cloned();
                (State::Running(round), config, r)
            }
        });
        self.state = state;
        if self.config.is_none() {
            self.config = config;
        }
        match result {
            Ok(reply) => Ok(reply.map(|r| PyBytes::new(py, &r))),
            Err(e) => Err(from_client_error(py, &e)),
        }
    }

    /// Saves the client's round to bytes, to restore with `Client.from_state` (e.g. in
    /// another process). The bytes hold secrets: store them like a private key, delete them
    /// when the round ends.
    fn export_state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let State::Running(round) = &self.state else {
            return Err(protocol_error(
                py,
                String::from(
                    "nothing to save before RoundStart: the client is still just its \
                     constructor's arguments",
                ),
            ));
        };
        if round.is_finished() {
            return Err(protocol_error(
                py,
                String::from("the client finished its part of the round: nothing to save"),
            ));
        }
        match round.export_state() {
            // The Python copy cannot be zeroized; the Rust buffer is on drop.
            Ok(saved) => Ok(PyBytes::new(py, saved.as_bytes())),
            Err(e) => Err(protocol_error(py, e.to_string())),
        }
    }

    /// Restores a client saved by `export_state`, ready for the round's next message.
    #[staticmethod]
    #[pyo3(signature = (state, *, seed=None))]
    fn from_state(state: &[u8], seed: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let round = ClientRound::import_state(state)
            .map_err(|e| PyValueError::new_err(format!("Client.from_state: {e}")))?;
        let Some(id) = round.client_id() else {
            return Err(PyValueError::new_err(
                "Client.from_state: the state of a client that finished its round: nothing to \
                 restore",
            ));
        };
        Ok(Self {
            id,
            config: round.config().cloned(),
            state: State::Running(Box::new(round)),
            rng: rng_from(seed)?,
        })
    }

    /// The client completed its part.
    #[getter]
    fn finished(&self) -> bool {
        matches!(&self.state, State::Running(r) if r.is_finished())
    }

    /// The client refused or failed.
    #[getter]
    fn failed(&self) -> bool {
        matches!(&self.state, State::Running(r) if matches!(**r, ClientRound::Failed(_)))
    }

    /// The stage whose request the client answers next, or "finished"/"failed".
    #[getter]
    fn stage(&self) -> &'static str {
        let State::Running(round) = &self.state else {
            return "advertise";
        };
        match **round {
            ClientRound::New(_) => "advertise",
            ClientRound::AwaitingNeighbours(_) => "share",
            ClientRound::AwaitingShares(_) => "masked-input",
            ClientRound::AwaitingConsistency(_) => "consistency",
            ClientRound::AwaitingUnmask(_) => "unmask",
            ClientRound::Finished => "finished",
            ClientRound::Failed(_) => "failed",
        }
    }

    /// The client's 1-based id.
    #[getter]
    fn client_id(&self) -> u32 {
        self.id
    }

    /// The round's parameters once RoundStart arrived.
    #[getter]
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        self.config.as_ref().map(|c| config_dict(py, c)).transpose()
    }

    fn __repr__(&self) -> String {
        format!("Client(client_id={}, stage={:?})", self.id, self.stage())
    }
}

/// The round's parameters from a RoundStart message, without a client: what a client needs
/// to encode a DP update (`secagg.DpEncoding`) before it builds its `Client`.
#[pyfunction]
pub fn round_config<'py>(py: Python<'py>, message: &[u8]) -> PyResult<Bound<'py, PyDict>> {
    let config = match ServerMessage::decode(message, None) {
        Ok(ServerMessage::RoundStart(c)) => c,
        Ok(ServerMessage::Abort(r)) => {
            return Err(from_client_error(py, &ClientError::RoundAborted(r)));
        }
        Ok(_) => {
            return Err(from_client_error(
                py,
                &ClientError::UnexpectedMessage("expected RoundStart"),
            ));
        }
        Err(e) => return Err(from_client_error(py, &ClientError::from(e))),
    };
    config_dict(py, &config)
}
