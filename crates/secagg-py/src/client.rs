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
use secagg_core::client::{
    AfterMaskedInput, Client as CoreClient, ClientRound, MaskedInputStream, Policy, Roster,
};
use secagg_core::crypto::IdentityKey;
use secagg_core::messages::ServerMessage;
use secagg_core::params::Assumptions;
use secagg_core::{ClientError, RoundConfig, ThreatModel};
use secagg_sim::input_encoding::InputEncoding;
use zeroize::Zeroizing;

use crate::arrays::{CHUNK, Chunks, Vector, read_vector};
use crate::errors::{from_client_error, protocol_error, server_refused};
use crate::options::{config_dict, count, os_random, parse_threat};
use crate::server::read_roster;

/// The client's input: given at construction, or only its length, with the values given
/// at the masked-input stage (`handle(message, input=...)`).
enum Input {
    Held(Vector),
    Later(usize),
}

/// What the client brings before the round starts.
struct Pending {
    input: Input,
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
        let Input::Held(input) = &self.input else {
            return Err(ClientError::Misuse(
                "encode is for a client given its input",
            ));
        };
        match (input, encoding) {
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
                // A validated round (VALIDATION.md §5.4): the validated scale, and the update
                // clipped to L2 norm B first, so that an honest client is never above the bound.
                if let Some(enc) = encoding
                    .validated_float(config)
                    .map_err(ClientError::BadParameters)?
                {
                    let clipped = Zeroizing::new(secagg_sim::simulate::clip_l2(v, enc.clip));
                    return enc
                        .encode(&clipped, self.weight, rng)
                        .map_err(|e| ClientError::BadParameters(e.0));
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

    /// A client without its input starts the round announced in `round_start`: the core's
    /// streamed client, for the masked length its `values` values take in this round, with
    /// the weight checked against the round now (the values come at the masked-input stage).
    fn start_streamed(
        self,
        id: u32,
        values: usize,
        round_start: &[u8],
        rng: &mut ChaCha20Rng,
    ) -> Result<(ClientRound, Vec<u8>), ClientError> {
        let config = match ServerMessage::decode(round_start, None)? {
            ServerMessage::RoundStart(c) => c,
            ServerMessage::Abort(r) => return Err(ClientError::RoundAborted(r)),
            _ => return Err(ClientError::UnexpectedMessage("expected RoundStart")),
        };
        if config.validation.is_some() {
            // The norm proof needs the whole input at once (D35).
            return Err(ClientError::BadParameters(String::from(
                "the round validates inputs (validate_l2): its norm proof needs the whole input \
                 when the round starts, so make this client with its input, \
                 Client(client_id, input), not with dim=",
            )));
        }
        let encoding = InputEncoding::of(&config).map_err(ClientError::BadParameters)?;
        check_weight(&encoding, self.weight)?;
        let masked = masked_len(&encoding, &config, values)?;
        if masked != config.dim as usize {
            return Err(ClientError::BadParameters(format!(
                "the round sums vectors of length {}, my input of {values} values takes {masked}",
                config.dim
            )));
        }
        let mut c = CoreClient::streamed(id, config.dim).with_policy(self.policy);
        if let (Some(k), Some(r)) = (self.identity, self.roster) {
            c = c.with_pki(k, r);
        }
        let (next, advert) = c.start(round_start, rng)?;
        Ok((ClientRound::AwaitingNeighbours(next), advert))
    }
}

/// A weight the round cannot take, refused when it starts: the same checks as encoding a
/// held input makes.
fn check_weight(encoding: &InputEncoding, weight: u64) -> Result<(), ClientError> {
    let bad = |m: String| Err(ClientError::BadParameters(m));
    match encoding {
        InputEncoding::Float { max_weight, .. } if weight > *max_weight => bad(format!(
            "my weight {weight} exceeds the round's max_weight {max_weight}"
        )),
        InputEncoding::Dp(_) if weight != 1 => bad(format!(
            "the round releases an unweighted DP mean (a weight would change the \
             sensitivity), but my weight is {weight}"
        )),
        InputEncoding::Integers if weight != 1 => bad(format!(
            "the round sums unsigned integers, but my weight is {weight} (weights are for \
             float means)"
        )),
        _ => Ok(()),
    }
}

/// The masked vector's length for `values` input values in a round of this encoding: the
/// weight rides as one more element of a float mean; a DP round takes the update's values
/// (encoded here) or its already-encoded vector.
fn masked_len(
    encoding: &InputEncoding,
    config: &RoundConfig,
    values: usize,
) -> Result<usize, ClientError> {
    match encoding {
        InputEncoding::Integers => Ok(values),
        InputEncoding::Float { .. } => Ok(values + 1),
        InputEncoding::Dp(p) if values == p.dim => Ok(config.dim as usize),
        InputEncoding::Dp(p) if values == config.dim as usize => Ok(values),
        InputEncoding::Dp(p) => Err(ClientError::BadParameters(format!(
            "the round releases a DP mean of {} values (encoded: {}), my input has {values}",
            p.dim, config.dim
        ))),
    }
}

/// Writes a streamed masked input into the reply's bytes: values are gathered into
/// `CHUNK`-sized blocks (the core masks whole bytes: every block but the last a multiple of
/// 8), masked with the GIL released, and copied to their place.
struct Writer {
    stream: MaskedInputStream,
    block: Zeroizing<Vec<u64>>,
    packed: Vec<u8>,
    at: usize,
}

impl Writer {
    fn new(stream: MaskedInputStream) -> Self {
        Self {
            stream,
            block: Zeroizing::new(Vec::with_capacity(CHUNK)),
            packed: Vec::new(),
            at: 0,
        }
    }

    fn put(&mut self, bytes: &[u8], buf: &mut [u8]) -> PyResult<()> {
        let end = self.at + bytes.len();
        let Some(dst) = buf.get_mut(self.at..end) else {
            return Err(PyValueError::new_err(
                "the masked input outgrew its message (a bug: please report it)",
            ));
        };
        dst.copy_from_slice(bytes);
        self.at = end;
        Ok(())
    }

    fn header(&mut self, buf: &mut [u8]) -> PyResult<()> {
        let header = self.stream.header().to_vec();
        self.put(&header, buf)
    }

    fn push(&mut self, py: Python<'_>, values: &[u64], buf: &mut [u8]) -> PyResult<()> {
        let mut rest = values;
        while !rest.is_empty() {
            let take = (CHUNK - self.block.len()).min(rest.len());
            self.block.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.block.len() == CHUNK {
                self.flush(py, buf)?;
            }
        }
        Ok(())
    }

    fn flush(&mut self, py: Python<'_>, buf: &mut [u8]) -> PyResult<()> {
        let (stream, block, packed) = (&mut self.stream, &mut self.block, &mut self.packed);
        packed.clear();
        py.detach(|| stream.mask_chunk(block, packed))
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        block.clear();
        let packed = std::mem::take(&mut self.packed);
        self.put(&packed, buf)?;
        self.packed = packed;
        Ok(())
    }

    /// The last block and the message's trailer.
    fn finish(mut self, py: Python<'_>, buf: &mut [u8]) -> PyResult<()> {
        if !self.block.is_empty() {
            self.flush(py, buf)?;
        }
        let trailer = self
            .stream
            .finish()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let end = self.at + trailer.len();
        match buf.get_mut(self.at..) {
            Some(dst) if dst.len() == trailer.len() => dst.copy_from_slice(&trailer),
            _ => {
                return Err(PyValueError::new_err(format!(
                    "the masked input takes {end} bytes, its message {} (a bug: please report it)",
                    buf.len()
                )));
            }
        }
        Ok(())
    }
}

/// How the core words an honest client's local refusal of an input above a validated round's
/// bound (D34), raised as `InputAboveBound`.
const ABOVE_BOUND: &str = "exceeds the round's bound";

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
    /// The weight of an input given at the masked-input stage (`weight=` of the
    /// constructor; unknown in a client restored with `from_state`).
    weight: Option<u64>,
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

    /// The masked-input stage of a client made with `dim=`: the input is read piece by
    /// piece, encoded as the round says, masked and packed straight into the reply's bytes,
    /// so the client holds one chunk besides the reply, whatever d is. The array's dtype,
    /// family and length are checked before anything changes (the client can be given a
    /// right input after a ValueError); a bad value or piece found while streaming stops the
    /// client (its half-masked reply cannot be resumed).
    fn mask_streamed<'py>(
        &mut self,
        py: Python<'py>,
        message: &[u8],
        input: &Bound<'py, PyAny>,
        weight: Option<i128>,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let Some(config) = self.config.clone() else {
            return Err(protocol_error(
                py,
                String::from("a client at the masked-input stage without its round"),
            ));
        };
        let encoding = InputEncoding::of(&config).map_err(|e| server_refused(py, e))?;
        let float_round = matches!(encoding, InputEncoding::Float { .. });
        let weight: u64 = match (weight, self.weight) {
            (Some(w), _) => count(w, "weight")?,
            (None, Some(w)) => w,
            (None, None) if !float_round => 1,
            (None, None) => {
                return Err(PyValueError::new_err(
                    "a client restored with from_state does not know its weight: give it with \
                     the input, handle(message, input=..., weight=w)",
                ));
            }
        };
        check_weight(&encoding, weight).map_err(|e| PyValueError::new_err(e.to_string()))?;
        let dim = config.dim as usize;
        let wanted = |float: bool| -> Result<usize, String> {
            match (&encoding, float) {
                (InputEncoding::Integers, false) => Ok(dim),
                (InputEncoding::Float { .. }, true) => Ok(dim - 1),
                (InputEncoding::Dp(p), true) => Ok(p.dim),
                (InputEncoding::Dp(_), false) => Ok(dim),
                (InputEncoding::Integers, true) => Err(String::from(
                    "the round sums unsigned integers, but the input is floats",
                )),
                (_, false) => Err(String::from(
                    "the round averages float vectors, but the input is unsigned integers",
                )),
            }
        };
        let mut chunks = Chunks::new(input, "input")?;
        if let Some((len, dtype)) = chunks.known() {
            let want = wanted(dtype.is_float()).map_err(PyValueError::new_err)?;
            if len != want {
                return Err(PyValueError::new_err(format!(
                    "input has {len} values, but the round takes {want} from this client (the \
                     dim= it was made with)"
                )));
            }
        }
        let round = match std::mem::replace(
            &mut self.state,
            State::Running(Box::new(ClientRound::Finished)),
        ) {
            State::Running(r) => *r,
            other => {
                self.state = other;
                return Err(protocol_error(py, String::from("no round to mask for")));
            }
        };
        let ClientRound::AwaitingShares(shares) = round else {
            self.state = State::Running(Box::new(round));
            return Err(protocol_error(
                py,
                String::from("not at the masked-input stage"),
            ));
        };
        let (next, stream) = match py.detach(move || shares.handle_streamed(message)) {
            Ok(x) => x,
            Err(e) => {
                self.state = State::Running(Box::new(ClientRound::Failed(e.clone())));
                return Err(from_client_error(py, &e));
            }
        };
        let mut writer = Writer::new(stream);
        let len = writer.stream.message_len();
        let rng = &mut self.rng;
        let written = PyBytes::new_with(py, len, |buf| {
            writer.header(buf)?;
            let mut seen = 0usize;
            let mut want = None;
            // A DP update is encoded whole: its rotation mixes every coordinate.
            let mut dp_update: Zeroizing<Vec<f64>> = Zeroizing::new(Vec::new());
            let mask = config.modulus().mask();
            let float_enc = encoding
                .float(&config)
                .map_err(|e| PyValueError::new_err(e.to_string()))?;
            while let Some(piece) = chunks.next_piece()? {
                let (float, n) = (matches!(piece, Vector::Float(_)), piece.len());
                let w = match want {
                    Some(w) => w,
                    None => *want.insert(wanted(float).map_err(PyValueError::new_err)?),
                };
                if seen + n > w {
                    return Err(PyValueError::new_err(format!(
                        "input has more than the {w} values the round takes from this client \
                         (the dim= it was made with)"
                    )));
                }
                match (piece, &float_enc, &encoding) {
                    (Vector::Unsigned(v), _, _) => {
                        if let Some((i, x)) = v.iter().enumerate().find(|(_, x)| **x > mask) {
                            return Err(PyValueError::new_err(format!(
                                "input has value {x} at index {}, not below 2^{} (the round's \
                                 modulus)",
                                seen + i,
                                config.bits
                            )));
                        }
                        writer.push(py, &v, buf)?;
                    }
                    (Vector::Float(v), Some(enc), _) => {
                        // Rounding coins from the client's generator, in order: the chunks
                        // encode as the whole vector would.
                        let e = Zeroizing::new(
                            enc.encode(&v, weight, rng)
                                .map_err(|e| PyValueError::new_err(e.0))?,
                        );
                        writer.push(py, &e[..e.len() - 1], buf)?;
                    }
                    (Vector::Float(v), None, _) => dp_update.extend_from_slice(&v),
                }
                seen += n;
            }
            let w = want.unwrap_or(0);
            if seen != w || want.is_none() {
                return Err(PyValueError::new_err(format!(
                    "input has {seen} values, but the round takes {} from this client (the \
                     dim= it was made with)",
                    wanted(float_round || matches!(encoding, InputEncoding::Dp(_))).unwrap_or(dim)
                )));
            }
            if float_round {
                writer.push(py, &[weight & mask], buf)?;
            }
            if let InputEncoding::Dp(p) = &encoding
                && !dp_update.is_empty()
            {
                let enc = p
                    .encoding(&config)
                    .map_err(|e| PyValueError::new_err(e.to_string()))?;
                // Noise and rounding from the OS CSPRNG, always.
                let mut os = ChaCha20Rng::from_seed(
                    os_seed().map_err(|e| PyValueError::new_err(e.to_string()))?,
                );
                let e = Zeroizing::new(
                    enc.encode(&dp_update, &mut os)
                        .map_err(|e| PyValueError::new_err(e.0))?,
                );
                writer.push(py, &e, buf)?;
            }
            writer.finish(py, buf)
        });
        match written {
            Ok(bytes) => {
                self.state = State::Running(Box::new(match next {
                    AfterMaskedInput::Consistency(s) => ClientRound::AwaitingConsistency(s),
                    AfterMaskedInput::Unmask(s) => ClientRound::AwaitingUnmask(s),
                }));
                if let Err(e) = self.masked(py) {
                    self.fail(py, &e);
                    return Err(e);
                }
                Ok(Some(bytes))
            }
            Err(e) => {
                // The stream cannot resume: the client stops, saying why.
                self.fail(py, &e);
                Err(e)
            }
        }
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
        client_id, input=None, *, dim=None, weight=1, identity=None, roster=None, seed=None,
        insecure_test_seed=false, threat="honest-but-curious", assumed_corrupt=None,
        assumed_dropout=None, require_malicious_model=false, min_clients=2, history=None,
        dp_ledger=None, clip=None, max_weight=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        client_id: i128,
        input: Option<&Bound<'_, PyAny>>,
        dim: Option<i128>,
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
        let input = match (input, dim) {
            (Some(x), None) => Input::Held(read_vector(x, "input")?),
            (None, Some(d)) => {
                let d: u32 = count(d, "dim")?;
                if d == 0 {
                    return Err(PyValueError::new_err("dim must be at least 1"));
                }
                Input::Later(d as usize)
            }
            (Some(_), Some(_)) => {
                return Err(PyValueError::new_err(
                    "give input= (the input now) or dim= (its length now, the values at the \
                     masked-input stage with handle(message, input=...)), not both",
                ));
            }
            (None, None) => {
                return Err(PyValueError::new_err(
                    "a client needs its input (Client(client_id, input)) or its length \
                     (Client(client_id, dim=d), the values given at the masked-input stage)",
                ));
            }
        };
        if matches!(input, Input::Held(Vector::Unsigned(_))) && weight != 1 {
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
            weight: Some(weight),
        })
    }

    /// Handles one server message; returns the reply to send, if any. A client made with
    /// `dim=` instead of an input takes it here, with the masked-input request (`stage ==
    /// "masked-input"`): `input=` a 1-D array (read in chunks, never copied whole) or an
    /// iterable of 1-D arrays whose concatenation is the input; `weight=` replaces the
    /// constructor's (needed by a float-mean client restored with `from_state`).
    #[pyo3(signature = (message, *, input=None, weight=None))]
    fn handle<'py>(
        &mut self,
        py: Python<'py>,
        message: &[u8],
        input: Option<&Bound<'py, PyAny>>,
        weight: Option<i128>,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let streaming = matches!(
            &self.state,
            State::Running(r) if r.is_streamed() && matches!(**r, ClientRound::AwaitingShares(_))
        );
        if streaming {
            let Some(input) = input else {
                return Err(PyValueError::new_err(
                    "this client was made without its input (dim=): give it with the \
                     masked-input request, handle(message, input=...)",
                ));
            };
            return self.mask_streamed(py, message, input, weight);
        }
        if input.is_some() || weight.is_some() {
            let why = match &self.state {
                State::Pending(p) if matches!(p.input, Input::Later(_)) => {
                    "comes with the masked-input request, not before"
                }
                State::Running(r) if r.is_streamed() => {
                    "comes with the masked-input request, not before"
                }
                _ if self.stage() == "masked-input" || self.stage() == "advertise" => {
                    "was given at construction (Client(client_id, input))"
                }
                _ => "is no longer needed: the masked input was sent",
            };
            return Err(PyValueError::new_err(format!(
                "handle(input=..., weight=...) at stage {:?}: this client's input {why}",
                self.stage()
            )));
        }
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
            State::Pending(p) => match p.input {
                Input::Later(values) => match p.start_streamed(id, values, message, rng) {
                    Ok((round, advert)) => (State::Running(Box::new(round)), Ok(Some(advert))),
                    Err(e) => (
                        State::Running(Box::new(ClientRound::Failed(e.clone()))),
                        Err(e),
                    ),
                },
                Input::Held(_) => match p.into_client(id, message, rng) {
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
            Err(ClientError::BadParameters(m)) if starting && m.contains(ABOVE_BOUND) => {
                return Err(crate::errors::input_above_bound(py, m));
            }
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
            weight: None,
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
/// and assumptions, its PKI), run on a throwaway streamed client (`Client::streamed`: the
/// round's length only, no input allocated, whatever d is). Returns the round's configuration; raises `ServerRefused` saying why not. For
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
    // A validated round takes held inputs only (its proof needs them whole): check it with a
    // zero input, which every bound admits.
    let mut rng = ChaCha20Rng::from_seed(os_random::<32>()?);
    let started = if c.validation.is_some() {
        let mut client = CoreClient::new(client_id, vec![0; c.dim as usize]).with_policy(policy);
        if let (Some(k), Some(r)) = (identity, roster) {
            client = client.with_pki(k, r);
        }
        client.start(message, &mut rng).map(|_| ())
    } else {
        let mut client = CoreClient::streamed(client_id, c.dim).with_policy(policy);
        if let (Some(k), Some(r)) = (identity, roster) {
            client = client.with_pki(k, r);
        }
        client.start(message, &mut rng).map(|_| ())
    };
    match started {
        Ok(()) => Ok(config),
        Err(e) => Err(from_client_error(py, &e)),
    }
}
