//! `secagg.Client`: one client's side of a round (`secagg_core::client::ClientRound`) for
//! callers that carry the bytes themselves. The input stays raw until RoundStart arrives:
//! how it is encoded (as is, a float weighted mean, a DP mean) is read from the round's
//! configuration only, the one the session id covers, never from anything else the server
//! says. From then on the client can be saved to bytes and restored (`export_state`,
//! `from_state`) by drivers that cannot keep the object alive between messages.
//!
//! The client's own rules live here too: its threat model and assumptions (a core `Policy`,
//! checked by the core against every announced round), the rounds it already took part in
//! (`history=`, refusing a round id seen before) and its DP budget (`dp_ledger=`, charged
//! before its masked input leaves).

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use secagg_core::client::{Client as CoreClient, ClientRound, Policy, Roster};
use secagg_core::crypto::IdentityKey;
use secagg_core::messages::ServerMessage;
use secagg_core::params::Assumptions;
use secagg_core::{ClientError, RoundConfig, ThreatModel};
use secagg_sim::input_encoding::InputEncoding;
use zeroize::Zeroizing;

use crate::arrays::{Vector, read_vector};
use crate::errors::{from_client_error, protocol_error, server_refused};
use crate::options::{config_dict, count, os_random, parse_threat};
use crate::server::read_roster;

/// What the client brings before the round starts.
struct Pending {
    input: Vector,
    weight: u64,
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

/// 32 bytes from the OS CSPRNG inside a GIL-free section (DP noise never comes from a seed).
fn os_seed() -> Result<[u8; 32], ClientError> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b)
        .map_err(|_| ClientError::Misuse("no OS randomness for the DP noise"))?;
    Ok(b)
}

impl Pending {
    /// Encodes the input as the round's configuration says: the only source of clip, weight
    /// bound, scale and DP parameters.
    fn encode(&self, config: &RoundConfig, rng: &mut ChaCha20Rng) -> Result<Vec<u64>, ClientError> {
        let bad = |m: String| Err(ClientError::BadParameters(m));
        let encoding = InputEncoding::of(config).map_err(ClientError::BadParameters)?;
        match (&self.input, encoding) {
            (Vector::Unsigned(v), InputEncoding::Integers) => Ok(v.to_vec()),
            // Already encoded by the caller, with `DpEncoding(round_config(round_start))`.
            (Vector::Unsigned(v), InputEncoding::Dp(_)) => Ok(v.to_vec()),
            (Vector::Float(v), InputEncoding::Float { max_weight, .. }) => {
                if self.weight > max_weight {
                    return bad(format!(
                        "my weight {} exceeds the round's max_weight {max_weight}",
                        self.weight
                    ));
                }
                let enc = encoding
                    .float(config)
                    .map_err(ClientError::BadParameters)?
                    .ok_or(ClientError::Misuse(
                        "a float encoding without its parameters",
                    ))?;
                // Rounding coins from the client's generator (seeded in tests).
                enc.encode(v, self.weight, rng)
                    .map_err(|e| ClientError::BadParameters(e.0))
            }
            (Vector::Float(v), InputEncoding::Dp(p)) => {
                if self.weight != 1 {
                    return bad(format!(
                        "the round releases an unweighted DP mean (a weight would change the \
                         sensitivity), but my weight is {}",
                        self.weight
                    ));
                }
                let enc = p.encoding(config).map_err(ClientError::BadParameters)?;
                // Noise and rounding from the OS CSPRNG, always.
                let mut rng = ChaCha20Rng::from_seed(os_seed()?);
                enc.encode(v, &mut rng)
                    .map_err(|e| ClientError::BadParameters(e.0))
            }
            (Vector::Float(_), InputEncoding::Integers) => bad(String::from(
                "the round sums unsigned integers, but my input is floats",
            )),
            (Vector::Unsigned(_), InputEncoding::Float { .. }) => bad(String::from(
                "the round averages float vectors, but my input is unsigned integers",
            )),
        }
    }

    /// Builds the core client for the round announced in `round_start`.
    fn into_client(
        self,
        id: u32,
        round_start: &[u8],
        rng: &mut ChaCha20Rng,
    ) -> Result<CoreClient, ClientError> {
        let config = match ServerMessage::decode(round_start, None)? {
            ServerMessage::RoundStart(c) => c,
            ServerMessage::Abort(r) => return Err(ClientError::RoundAborted(r)),
            _ => return Err(ClientError::UnexpectedMessage("expected RoundStart")),
        };
        let encoded = self.encode(&config, rng)?;
        let mut c = CoreClient::new(id, encoded).with_policy(self.policy);
        if let (Some(k), Some(r)) = (self.identity, self.roster) {
            c = c.with_pki(k, r);
        }
        Ok(c)
    }
}

/// One client's side of one round.
#[pyclass(module = "secagg._secagg")]
pub struct Client {
    id: u32,
    state: State,
    rng: ChaCha20Rng,
    config: Option<RoundConfig>,
    /// `history=`: told each round id this client takes part in (`begin(round_id)`), and
    /// raises for one it took part in before.
    history: Option<Py<PyAny>>,
    /// `dp_ledger=`: `check(config)` when the round starts, `charge(config)` before the
    /// masked input leaves; either raises to refuse.
    dp_ledger: Option<Py<PyAny>>,
}

/// The client's randomness: the OS CSPRNG, or a seed when a test asks for one explicitly.
fn rng_from(seed: Option<&Bound<'_, PyAny>>, insecure_test_seed: bool) -> PyResult<ChaCha20Rng> {
    let Some(seed) = seed else {
        return Ok(ChaCha20Rng::from_seed(os_random::<32>()?));
    };
    if !insecure_test_seed {
        return Err(PyValueError::new_err(
            "seed= makes every key and secret of this client reproducible by whoever knows the \
             seed (an int one is only 64 bits): it is for tests only. Leave it out (the OS \
             CSPRNG is used), or pass insecure_test_seed=True in a test",
        ));
    }
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

/// The client's policy from `threat=`, `assumed_corrupt=`, `assumed_dropout=`,
/// `min_clients=`: what it refuses, checked by the core on every RoundStart.
pub(crate) fn client_policy(
    threat: &str,
    require_malicious_model: bool,
    assumed_corrupt: Option<f64>,
    assumed_dropout: Option<f64>,
    min_clients: u32,
) -> PyResult<Policy> {
    for (name, v) in [
        ("assumed_corrupt", assumed_corrupt),
        ("assumed_dropout", assumed_dropout),
    ] {
        if let Some(f) = v
            && !(0.0..1.0).contains(&f)
        {
            return Err(PyValueError::new_err(format!(
                "{name} must be a fraction in [0, 1), got {f}"
            )));
        }
    }
    let model = if require_malicious_model {
        ThreatModel::Malicious
    } else {
        parse_threat(threat)?
    };
    let defaults = Assumptions::default();
    let corrupt = assumed_corrupt.unwrap_or(defaults.corrupt_fraction);
    let dropout = assumed_dropout.unwrap_or(defaults.dropout_fraction);
    let mut policy = match model {
        ThreatModel::Malicious => Policy::malicious(corrupt, dropout),
        // An honest-but-curious server follows the protocol, parameters included: the client
        // checks (k, t) only when it states assumptions of its own.
        ThreatModel::HonestButCurious => Policy {
            assumptions: (assumed_corrupt.is_some() || assumed_dropout.is_some()).then_some(
                Assumptions {
                    corrupt_fraction: corrupt,
                    dropout_fraction: dropout,
                    model: ThreatModel::HonestButCurious,
                },
            ),
            ..Policy::default()
        },
    };
    policy.min_clients = min_clients;
    Ok(policy)
}

/// A 1-based client id.
fn read_client_id(client_id: i128) -> PyResult<u32> {
    let client_id: u32 = count(client_id, "client_id")?;
    if client_id == 0 {
        return Err(PyValueError::new_err(
            "client_id is 1-based (1..=clients): 0 is not a client",
        ));
    }
    Ok(client_id)
}

/// The keyword arguments that say what a client accepts: its PKI and its policy.
struct ClientRules<'a> {
    identity: Option<Vec<u8>>,
    roster: Option<Vec<Vec<u8>>>,
    threat: &'a str,
    assumed_corrupt: Option<f64>,
    assumed_dropout: Option<f64>,
    require_malicious_model: bool,
    min_clients: i128,
}

impl ClientRules<'_> {
    /// Checks them and builds the identity key, roster and core policy.
    fn parse(self, client_id: u32) -> PyResult<(Option<IdentityKey>, Option<Roster>, Policy)> {
        let min_clients: u32 = count(self.min_clients, "min_clients")?;
        let identity = match self.identity {
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
        let roster = self.roster.map(|r| read_roster(r, "roster")).transpose()?;
        if identity.is_some() != roster.is_some() {
            return Err(PyValueError::new_err(
                "identity= and roster= go together (malicious-model rounds)",
            ));
        }
        if let (Some(k), Some(r)) = (&identity, &roster)
            && r.get(client_id as usize - 1) != Some(&k.public())
        {
            return Err(PyValueError::new_err(format!(
                "roster[{}] is not the public key of identity=: client i's key is at index i - 1",
                client_id - 1
            )));
        }
        let policy = client_policy(
            self.threat,
            self.require_malicious_model,
            self.assumed_corrupt,
            self.assumed_dropout,
            min_clients,
        )?;
        if policy.min_model == ThreatModel::Malicious && identity.is_none() {
            return Err(PyValueError::new_err(
                "threat='malicious' needs identity= (this client's secret key from secagg.keygen) \
                 and roster= (every client's public key, held by this client, not taken from \
                 the server)",
            ));
        }
        Ok((identity, roster, policy))
    }
}

/// Calls `obj.method(arg)`; the exception it raises is the refusal.
fn call_hook<'py>(
    py: Python<'py>,
    obj: &Py<PyAny>,
    method: &str,
    arg: impl IntoPyObject<'py>,
) -> PyResult<()> {
    obj.bind(py).call_method1(method, (arg,)).map(|_| ())
}

impl Client {
    /// Stops the client for good after a refusal of its own (a hook raised).
    fn fail(&mut self, py: Python<'_>, err: &PyErr) {
        let reason = err.value(py).to_string();
        self.state = State::Running(Box::new(ClientRound::Failed(ClientError::BadParameters(
            reason,
        ))));
    }

    /// The round started (the core accepted RoundStart): the DP ledger's check, then the
    /// round id goes into the history, before the key advertisement leaves.
    fn round_started(&mut self, py: Python<'_>) -> PyResult<()> {
        let Some(config) = &self.config else {
            return Ok(());
        };
        if let Some(ledger) = &self.dp_ledger {
            call_hook(py, ledger, "check", config_dict(py, config)?)?;
        }
        if let Some(history) = &self.history {
            call_hook(py, history, "begin", config.round_id)?;
        }
        Ok(())
    }

    /// The masked input is ready: the DP ledger is charged before it leaves.
    fn masked(&mut self, py: Python<'_>) -> PyResult<()> {
        match (&self.dp_ledger, &self.config) {
            (Some(ledger), Some(config)) => {
                call_hook(py, ledger, "charge", config_dict(py, config)?)
            }
            _ => Ok(()),
        }
    }
}

#[pymethods]
impl Client {
    #[new]
    #[pyo3(signature = (
        client_id, input, *, weight=1, identity=None, roster=None, seed=None,
        insecure_test_seed=false, threat="honest-but-curious", assumed_corrupt=None,
        assumed_dropout=None, require_malicious_model=false, min_clients=2, history=None,
        dp_ledger=None, clip=None, max_weight=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        client_id: i128,
        input: &Bound<'_, PyAny>,
        weight: i128,
        identity: Option<Vec<u8>>,
        roster: Option<Vec<Vec<u8>>>,
        seed: Option<&Bound<'_, PyAny>>,
        insecure_test_seed: bool,
        threat: &str,
        assumed_corrupt: Option<f64>,
        assumed_dropout: Option<f64>,
        require_malicious_model: bool,
        min_clients: i128,
        history: Option<Py<PyAny>>,
        dp_ledger: Option<Py<PyAny>>,
        clip: Option<&Bound<'_, PyAny>>,
        max_weight: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        if clip.is_some() || max_weight.is_some() {
            return Err(PyValueError::new_err(
                "clip= and max_weight= are no longer the client's: the round's configuration \
                 carries them (Server(clip=..., max_weight=...)), so that every client encodes \
                 with the same ones; drop them here",
            ));
        }
        let client_id = read_client_id(client_id)?;
        let weight: u64 = count(weight, "weight")?;
        let input = read_vector(input, "input")?;
        if matches!(input, Vector::Unsigned(_)) && weight != 1 {
            return Err(PyValueError::new_err(
                "weight= is for float inputs (weighted-mean rounds); unsigned inputs are summed",
            ));
        }
        let (identity, roster, policy) = ClientRules {
            identity,
            roster,
            threat,
            assumed_corrupt,
            assumed_dropout,
            require_malicious_model,
            min_clients,
        }
        .parse(client_id)?;
        Ok(Self {
            id: client_id,
            state: State::Pending(Box::new(Pending {
                input,
                weight,
                identity,
                roster,
                policy,
            })),
            rng: rng_from(seed, insecure_test_seed)?,
            config: None,
            history,
            dp_ledger,
        })
    }

    /// Handles one server message; returns the reply to send, if any.
    fn handle<'py>(
        &mut self,
        py: Python<'py>,
        message: &[u8],
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let starting = matches!(self.state, State::Pending(_));
        let masking = matches!(
            &self.state,
            State::Running(r) if matches!(**r, ClientRound::AwaitingShares(_))
        );
        let (id, rng) = (self.id, &mut self.rng);
        let state = std::mem::replace(
            &mut self.state,
            State::Running(Box::new(ClientRound::Finished)),
        );
        // Encoding and masking the input are the expensive part: release the GIL.
        let (state, result) = py.detach(move || match state {
            State::Pending(p) => match p.into_client(id, message, rng) {
                Ok(c) => {
                    let mut round = ClientRound::New(c);
                    let r = round.handle(message, rng);
                    (State::Running(Box::new(round)), r)
                }
                Err(e) => (
                    State::Running(Box::new(ClientRound::Failed(e.clone()))),
                    Err(e),
                ),
            },
            State::Running(mut round) => {
                let r = round.handle(message, rng);
                (State::Running(round), r)
            }
        });
        self.state = state;
        if self.config.is_none()
            && let State::Running(round) = &self.state
        {
            // Learnt at RoundStart (or by a client restored before it).
            self.config = round.config().cloned();
        }
        let reply = match result {
            Ok(reply) => reply,
            Err(e) => return Err(from_client_error(py, &e)),
        };
        // The client's own refusals come after the core accepted the message and before the
        // reply leaves: a refused reply is dropped, and the client answers nothing more.
        let own = if starting {
            self.round_started(py)
        } else if masking && reply.is_some() {
            self.masked(py)
        } else {
            Ok(())
        };
        if let Err(e) = own {
            self.fail(py, &e);
            return Err(e);
        }
        Ok(reply.map(|r| PyBytes::new(py, &r)))
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

    /// Restores a client saved by `export_state`, ready for the round's next message. A DP
    /// round saved before its masked input was sent needs `dp_ledger=` (charged when the
    /// masked input is ready) or `no_dp_ledger=True` (a client that keeps no budget): the
    /// state does not record whether the client had a ledger, and a restore that silently
    /// skipped the charge would release an update the budget never counted.
    #[staticmethod]
    #[pyo3(signature = (
        state, *, seed=None, insecure_test_seed=false, dp_ledger=None, no_dp_ledger=false
    ))]
    fn from_state(
        state: &[u8],
        seed: Option<&Bound<'_, PyAny>>,
        insecure_test_seed: bool,
        dp_ledger: Option<Py<PyAny>>,
        no_dp_ledger: bool,
    ) -> PyResult<Self> {
        let round = ClientRound::import_state(state)
            .map_err(|e| PyValueError::new_err(format!("Client.from_state: {e}")))?;
        let Some(id) = round.client_id() else {
            return Err(PyValueError::new_err(
                "Client.from_state: the state of a client that finished its round: nothing to \
                 restore",
            ));
        };
        if dp_ledger.is_some() && no_dp_ledger {
            return Err(PyValueError::new_err(
                "Client.from_state: dp_ledger= and no_dp_ledger=True contradict each other",
            ));
        }
        let before_upload = matches!(
            round,
            ClientRound::New(_)
                | ClientRound::AwaitingNeighbours(_)
                | ClientRound::AwaitingShares(_)
        );
        let dp_round = round
            .config()
            .map(|c| matches!(InputEncoding::of(c), Ok(InputEncoding::Dp(_))))
            .unwrap_or(false);
        if dp_round && before_upload && dp_ledger.is_none() && !no_dp_ledger {
            return Err(PyValueError::new_err(
                "Client.from_state: the state is a DP round whose masked input is not sent yet; \
                 give dp_ledger= (the client's secagg.dp.ClientLedger, charged before the masked \
                 input leaves) or, for a client that keeps no privacy budget, no_dp_ledger=True. \
                 Restored without either, a client with a budget would release its update \
                 uncharged",
            ));
        }
        Ok(Self {
            id,
            config: round.config().cloned(),
            state: State::Running(Box::new(round)),
            rng: rng_from(seed, insecure_test_seed)?,
            history: None,
            dp_ledger,
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
    if let Err(e) = InputEncoding::of(&config) {
        return Err(server_refused(py, e));
    }
    config_dict(py, &config)
}

/// The RoundStart message announcing `config` (a dict as `round_config` gives it): for tests
/// that play a malicious server and send one client a configuration of their own making.
#[pyfunction]
pub fn _round_start_message<'py>(
    py: Python<'py>,
    config: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let c = crate::options::config_from_dict(config)?;
    Ok(PyBytes::new(py, &ServerMessage::RoundStart(c).encode()))
}

/// Whether a `Client` built with these options would accept the round announced by
/// `message` (a RoundStart): the core's own checks (parameters against the client's policy
/// and assumptions, its PKI), run on a throwaway client with a zero input of the round's
/// length. Returns the round's configuration; raises `ServerRefused` saying why not. For
/// drivers that refuse a round before computing the input (the Flower mod, before training).
#[pyfunction]
#[pyo3(signature = (
    message, *, client_id, identity=None, roster=None, threat="honest-but-curious",
    assumed_corrupt=None, assumed_dropout=None, require_malicious_model=false, min_clients=2
))]
#[allow(clippy::too_many_arguments)]
pub fn check_round_start<'py>(
    py: Python<'py>,
    message: &[u8],
    client_id: i128,
    identity: Option<Vec<u8>>,
    roster: Option<Vec<Vec<u8>>>,
    threat: &str,
    assumed_corrupt: Option<f64>,
    assumed_dropout: Option<f64>,
    require_malicious_model: bool,
    min_clients: i128,
) -> PyResult<Bound<'py, PyDict>> {
    let client_id = read_client_id(client_id)?;
    let (identity, roster, policy) = ClientRules {
        identity,
        roster,
        threat,
        assumed_corrupt,
        assumed_dropout,
        require_malicious_model,
        min_clients,
    }
    .parse(client_id)?;
    let config = round_config(py, message)?;
    let c = crate::options::config_from_dict(config.as_any())?;
    let mut client = CoreClient::new(client_id, vec![0; c.dim as usize]).with_policy(policy);
    if let (Some(k), Some(r)) = (identity, roster) {
        client = client.with_pki(k, r);
    }
    let mut rng = ChaCha20Rng::from_seed(os_random::<32>()?);
    match client.start(message, &mut rng) {
        Ok(_) => Ok(config),
        Err(e) => Err(from_client_error(py, &e)),
    }
}
