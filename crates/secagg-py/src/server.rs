//! `secagg.Server`: the sans-IO server round (`secagg_core::server::ServerRound`) for callers
//! that carry the bytes themselves. How clients encode their inputs (raw integers, a float
//! weighted mean, a DP mean) goes into the round's configuration as
//! `secagg_sim::input_encoding::InputEncoding`, so it is part of the session id; float rounds
//! decode the released sum into the weighted mean with the `FloatEncoding` derived from it.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use secagg_core::ThreatModel;
use secagg_core::client::Roster;
use secagg_core::encoding::FloatEncoding;
use secagg_core::server::{DropReason, Handled, Outcome, ServerRound};
use secagg_dp::pipeline::{DEFAULT_BETA, NoiseKind, NoisePlacement};
use secagg_sim::dp::{DpParams, require_survivors};
use secagg_sim::input_encoding::InputEncoding;
use secagg_sim::plan::plan;

use crate::arrays::{float_array, sum_array};
use crate::errors::{aborted_stage, from_server_error, protocol_error, round_aborted};
use crate::options::{
    ParamChoice, config_dict, count, opt_count, os_random, plan_error, round_options,
};

/// Reads a list of 32-byte public keys, refusing a key listed twice: one party at two ids
/// could be several neighbours of one client.
pub fn read_roster(keys: Vec<Vec<u8>>, what: &str) -> PyResult<Roster> {
    let roster: Roster = keys
        .into_iter()
        .enumerate()
        .map(|(i, k)| {
            <[u8; 32]>::try_from(k.as_slice()).map_err(|_| {
                PyValueError::new_err(format!(
                    "{what}[{i}] has {} bytes: public keys are 32 bytes (see secagg.keygen)",
                    k.len()
                ))
            })
        })
        .collect::<PyResult<_>>()?;
    for (i, k) in roster.iter().enumerate() {
        if let Some(j) = roster[..i].iter().position(|other| other == k) {
            return Err(PyValueError::new_err(format!(
                "{what}[{j}] and {what}[{i}] are the same public key: one party at two ids \
                 could be several neighbours of one client; give every client its own key"
            )));
        }
    }
    Ok(roster)
}

/// `dp=` and its companions as the round's DP parameters.
pub fn dp_params(
    noise: &str,
    noise_multiplier: Option<f64>,
    clip: Option<f64>,
    central: bool,
    dim: usize,
) -> PyResult<DpParams> {
    let noise = match noise {
        "ddg" => NoiseKind::DiscreteGaussian,
        "skellam" => NoiseKind::Skellam,
        _ => {
            return Err(PyValueError::new_err(format!(
                "unknown dp {noise:?}: use 'ddg' (distributed discrete Gaussian) or 'skellam'"
            )));
        }
    };
    let (Some(noise_multiplier), Some(clip)) = (noise_multiplier, clip) else {
        return Err(PyValueError::new_err(
            "dp= needs dp_noise_multiplier= and dp_clip= (the noise stddev of the sum over the \
             L2 clipping norm, and that norm)",
        ));
    };
    let p = DpParams {
        noise,
        placement: if central {
            NoisePlacement::Central
        } else {
            NoisePlacement::Distributed
        },
        noise_multiplier,
        clip,
        beta: DEFAULT_BETA,
        dim,
    };
    p.validate().map_err(PyValueError::new_err)?;
    Ok(p)
}

/// `validate_l2=` against the other arguments: what a validated round cannot be.
fn check_validated(
    bound: Option<f64>,
    clip: Option<f64>,
    dp: Option<&str>,
    threat: &str,
    verifier_key: bool,
) -> PyResult<()> {
    let Some(b) = bound else {
        if verifier_key {
            return Err(PyValueError::new_err(
                "verifier_key= is for validated rounds (validate_l2=B)",
            ));
        }
        return Ok(());
    };
    if !(b.is_finite() && b > 0.0) {
        return Err(PyValueError::new_err(format!(
            "validate_l2 must be a positive finite number (the L2 bound), got {b}"
        )));
    }
    if dp.is_some() {
        return Err(PyValueError::new_err(
            "validate_l2= with dp= is refused for now in the sans-IO classes (VALIDATION.md §12): \
             a client's DP noise would be inside the validated vector; secagg.simulate runs \
             validated DP rounds",
        ));
    }
    if let Some(c) = clip
        && c != b
    {
        return Err(PyValueError::new_err(format!(
            "validated float rounds clip each update to L2 norm B (values then lie within ±B): \
             give clip={b} (equal to validate_l2) for a weighted mean of floats, or no clip= for a \
             sum of unsigned integers (B in encoded units); got clip={c}"
        )));
    }
    if threat != "malicious" {
        return Err(PyValueError::new_err(
            "validate_l2= needs threat='malicious' and roster= (validated rounds run the \
             malicious-server model with a PKI: VALIDATION.md §21.1 D36)",
        ));
    }
    Ok(())
}

/// The server's side of one round.
#[pyclass(module = "secagg._secagg")]
pub struct Server {
    round: ServerRound,
    float: Option<FloatEncoding>,
    warnings: Vec<String>,
}

#[pymethods]
impl Server {
    #[new]
    #[pyo3(signature = (
        *, clients, dim, bits=32, threat="honest-but-curious", degree=None, threshold=None,
        graph="auto", prg="aes", assumed_corrupt=0.05, assumed_dropout=0.05,
        accept_weaker_params=false, round_id=0, round_seed=None, roster=None,
        stage_timeout_ms=10_000, clip=None, max_weight=1, min_clients=None, dp=None,
        dp_noise_multiplier=None, dp_clip=None, dp_central=false, validate_l2=None,
        verifier_key=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        clients: i128,
        dim: i128,
        bits: i128,
        threat: &str,
        degree: Option<i128>,
        threshold: Option<i128>,
        graph: &str,
        prg: &str,
        assumed_corrupt: f64,
        assumed_dropout: f64,
        accept_weaker_params: bool,
        round_id: i128,
        round_seed: Option<Vec<u8>>,
        roster: Option<Vec<Vec<u8>>>,
        stage_timeout_ms: i128,
        clip: Option<f64>,
        max_weight: i128,
        min_clients: Option<i128>,
        dp: Option<&str>,
        dp_noise_multiplier: Option<f64>,
        dp_clip: Option<f64>,
        dp_central: bool,
        validate_l2: Option<f64>,
        verifier_key: Option<Vec<u8>>,
    ) -> PyResult<Self> {
        let clients: u32 = count(clients, "clients")?;
        let dim: u32 = count(dim, "dim")?;
        let bits: u8 = count(bits, "bits")?;
        let degree = opt_count(degree, "degree")?;
        let threshold = opt_count(threshold, "threshold")?;
        let round_id: u64 = count(round_id, "round_id")?;
        let stage_timeout_ms: u64 = count(stage_timeout_ms, "stage_timeout_ms")?;
        let max_weight: u64 = count(max_weight, "max_weight")?;
        let min_clients: Option<u32> = opt_count(min_clients, "min_clients")?;
        if dim == 0 {
            return Err(PyValueError::new_err("dim must be at least 1"));
        }
        check_validated(validate_l2, clip, dp, threat, verifier_key.is_some())?;
        // How clients encode their inputs: in the round's configuration, hence in the session
        // id, so that no client can be told another encoding than the others.
        let input = match (clip, dp) {
            (None, None) => {
                if dp_noise_multiplier.is_some() || dp_clip.is_some() || dp_central {
                    return Err(PyValueError::new_err(
                        "dp_noise_multiplier=, dp_clip= and dp_central= go with dp='ddg' or \
                         dp='skellam'",
                    ));
                }
                InputEncoding::Integers
            }
            (Some(c), None) => {
                // Checked here for the message; the clients derive the same from the config.
                // (Validated rounds: their own scale, checked when announced below.)
                if validate_l2.is_none() {
                    FloatEncoding::new(bits, c, clients, max_weight)
                        .map_err(|e| plan_error(e.0))?;
                }
                InputEncoding::Float {
                    clip: c,
                    max_weight,
                }
            }
            (None, Some(noise)) => InputEncoding::Dp(dp_params(
                noise,
                dp_noise_multiplier,
                dp_clip,
                dp_central,
                dim as usize,
            )?),
            (Some(_), Some(_)) => {
                return Err(PyValueError::new_err(
                    "clip= (weighted mean) and dp= (private unweighted mean, clipped to dp_clip in \
                     L2) exclude each other",
                ));
            }
        };
        let proto_dim = input
            .masked_dim(dim as usize)
            .map_err(PyValueError::new_err)?;
        let round_seed: [u8; 32] = match round_seed {
            Some(s) => <[u8; 32]>::try_from(s.as_slice()).map_err(|_| {
                PyValueError::new_err(format!("round_seed must be 32 bytes, got {}", s.len()))
            })?,
            None => os_random::<32>()?,
        };
        let choice = ParamChoice {
            threat,
            degree,
            threshold,
            graph,
            prg,
            assumed_corrupt,
            assumed_dropout,
            accept_weaker: accept_weaker_params,
        };
        let opts = round_options(clients, proto_dim, bits, &choice, round_id, round_seed)?;
        let mut planned = plan(&opts).map_err(plan_error)?;
        if let Some(m) = min_clients
            && m > clients
        {
            // Checked here too for the message: secagg-sim's names the CLI flag.
            return Err(PyValueError::new_err(format!(
                "min_clients {m} is more than the round's {clients} clients"
            )));
        }
        if let Some(m) = min_clients
            && planned.config.model == ThreatModel::Malicious
            && m < planned.config.min_clients
        {
            // Clients that assume a malicious server refuse fewer (docs/SECURITY.md §3).
            return Err(PyValueError::new_err(format!(
                "min_clients {m} is below the {} survivors a malicious-server round of {clients} \
                 clients needs under the assumed fractions (at least (1 - assumed_dropout)·n, and \
                 a consistency quorum above (n + corrupt)/2); leave min_clients out or raise it",
                planned.config.min_clients
            )));
        }
        // Never below t: fewer survivors could not unmask anyway.
        require_survivors(&mut planned.config, min_clients).map_err(plan_error)?;
        planned.config.encoding = input.to_bytes();
        let float = match validate_l2 {
            None => input.float(&planned.config).map_err(plan_error)?,
            Some(b) => {
                let float_weight =
                    matches!(input, InputEncoding::Float { .. }).then_some(max_weight);
                secagg_sim::validate::announce(
                    &mut planned.config,
                    b,
                    float_weight,
                    assumed_corrupt,
                )
                .map_err(|e| PyValueError::new_err(format!("validate_l2={b}: {e}")))?;
                input.validated_float(&planned.config).map_err(plan_error)?
            }
        };
        if let InputEncoding::Dp(p) = &input {
            // The clients derive this encoding from the config: refuse one they could not.
            p.encoding(&planned.config).map_err(plan_error)?;
        }
        let roster = match (roster, planned.config.model) {
            (Some(r), ThreatModel::Malicious) => {
                let r = read_roster(r, "roster")?;
                if r.len() != clients as usize {
                    return Err(PyValueError::new_err(format!(
                        "roster has {} keys for {clients} clients: give one public key per client, \
                         client i at index i - 1",
                        r.len()
                    )));
                }
                Some(r)
            }
            (None, ThreatModel::Malicious) => {
                return Err(PyValueError::new_err(
                    "threat='malicious' needs roster=[public key of client 1, ..., of client n] \
                     (from secagg.keygen)",
                ));
            }
            (Some(_), ThreatModel::HonestButCurious) => {
                return Err(PyValueError::new_err(
                    "roster= is used by threat='malicious' only: drop it or set the threat model",
                ));
            }
            (None, ThreatModel::HonestButCurious) => None,
        };
        let validated = planned.config.validation.is_some();
        let mut round = ServerRound::new(planned.config, roster, stage_timeout_ms)
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        if validated {
            // The secret key of the batch verification's weights (D26, D32): from the OS
            // unless a test gives one.
            let key = match verifier_key {
                Some(k) => <[u8; 32]>::try_from(k.as_slice()).map_err(|_| {
                    PyValueError::new_err(format!("verifier_key must be 32 bytes, got {}", k.len()))
                })?,
                None => os_random::<32>()?,
            };
            round.set_verifier_key(key);
        }
        Ok(Self {
            round,
            float,
            warnings: planned.warnings,
        })
    }

    /// Queues RoundStart for every client and starts the first stage's clock.
    #[pyo3(signature = (now_ms=0))]
    fn start(&mut self, now_ms: i128) -> PyResult<()> {
        self.round.start(count(now_ms, "now_ms")?);
        Ok(())
    }

    /// Feeds one client message; see `__init__.pyi`.
    fn handle_message(
        &mut self,
        py: Python<'_>,
        now_ms: i128,
        client_id: i128,
        message: &[u8],
    ) -> PyResult<&'static str> {
        let (now_ms, client_id) = (count(now_ms, "now_ms")?, count(client_id, "client_id")?);
        let round = &mut self.round;
        // Closing the unmask stage removes every mask: release the GIL meanwhile.
        let handled = py.detach(|| round.handle_message(now_ms, client_id, message));
        match handled {
            Ok(Handled::Accepted) => Ok("accepted"),
            Ok(Handled::IgnoredDuplicate) => Ok("duplicate"),
            Ok(Handled::IgnoredLate) => Ok("late"),
            Err(e) => Err(from_server_error(py, e)),
        }
    }

    /// The next `(client_id, message)` to send, or None.
    fn poll_outgoing<'py>(&mut self, py: Python<'py>) -> Option<(u32, Bound<'py, PyBytes>)> {
        self.round
            .poll_outgoing()
            .map(|(id, m)| (id, PyBytes::new(py, &m)))
    }

    /// All queued `(client_id, message)` pairs, in order.
    fn outgoing<'py>(&mut self, py: Python<'py>) -> Vec<(u32, Bound<'py, PyBytes>)> {
        std::iter::from_fn(|| self.round.poll_outgoing())
            .map(|(id, m)| (id, PyBytes::new(py, &m)))
            .collect()
    }

    /// When (ms) the current stage's deadline passes; None once the round ended.
    fn poll_timeout(&self) -> Option<u64> {
        self.round.poll_timeout()
    }

    /// Closes the current stage if its deadline passed.
    fn handle_timeout(&mut self, py: Python<'_>, now_ms: i128) -> PyResult<()> {
        let now_ms = count(now_ms, "now_ms")?;
        let round = &mut self.round;
        py.detach(|| round.handle_timeout(now_ms));
        Ok(())
    }

    /// The transport lost `client_id`.
    fn client_gone(&mut self, py: Python<'_>, now_ms: i128, client_id: i128) -> PyResult<()> {
        let (now_ms, client_id) = (count(now_ms, "now_ms")?, count(client_id, "client_id")?);
        let round = &mut self.round;
        py.detach(|| round.client_gone(now_ms, client_id));
        Ok(())
    }

    /// The released aggregate (sum, or weighted mean for float rounds; DP rounds: the unmasked
    /// sum of the encodings, for `DpEncoding(config).decode`).
    fn result<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match self.round.outcome() {
            None => Err(protocol_error(
                py,
                format!(
                    "the round has not finished: it is in stage {}",
                    self.round.stage()
                ),
            )),
            Some(Outcome::Aborted(a)) => Err(round_aborted(
                py,
                Some(aborted_stage(a).name()),
                a.to_string(),
            )),
            Some(Outcome::Released { aggregate, .. }) => match &self.float {
                None => Ok(sum_array(py, aggregate.clone(), self.round.config().bits)),
                Some(enc) => {
                    let (mean, _) = enc.decode(aggregate).map_err(|e| protocol_error(py, e.0))?;
                    Ok(float_array(py, mean))
                }
            },
        }
    }

    /// Whether the round released a result or aborted.
    #[getter]
    fn finished(&self) -> bool {
        self.round.outcome().is_some()
    }

    /// Why the round aborted, or None.
    #[getter]
    fn aborted(&self) -> Option<String> {
        match self.round.outcome() {
            Some(Outcome::Aborted(a)) => Some(a.to_string()),
            _ => None,
        }
    }

    /// The current stage name.
    #[getter]
    fn stage(&self) -> &'static str {
        self.round.stage().name()
    }

    /// Ids of the clients in the released aggregate.
    #[getter]
    fn survivors(&self) -> Vec<u32> {
        match self.round.outcome() {
            Some(Outcome::Released { survivors, .. }) => survivors.iter().collect(),
            _ => Vec::new(),
        }
    }

    /// Float rounds: the survivors' total weight, once released.
    #[getter]
    fn total_weight(&self) -> Option<u64> {
        match (self.round.outcome(), &self.float) {
            (Some(Outcome::Released { aggregate, .. }), Some(enc)) => {
                enc.decode(aggregate).ok().map(|(_, w)| w)
            }
            _ => None,
        }
    }

    /// Dropped clients with stage and reason.
    #[getter]
    fn dropouts<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        for d in self.round.dropouts() {
            let e = PyDict::new(py);
            e.set_item("client_id", d.id)?;
            e.set_item("stage", d.stage.name())?;
            e.set_item(
                "reason",
                match &d.reason {
                    DropReason::Timeout => String::from("timeout"),
                    DropReason::Disconnected => String::from("disconnected"),
                    DropReason::Misbehaved(m) => m.to_string(),
                    DropReason::Validation(k) => k.to_string(),
                },
            )?;
            out.append(e)?;
        }
        Ok(out)
    }

    /// Validated rounds: the clients a validation check rejected, with stage and reason (a
    /// subset of `dropouts`); empty otherwise.
    #[getter]
    fn rejected<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        for d in self.round.dropouts() {
            if let DropReason::Validation(k) = &d.reason {
                let e = PyDict::new(py);
                e.set_item("client_id", d.id)?;
                e.set_item("stage", d.stage.name())?;
                e.set_item("reason", k.to_string())?;
                out.append(e)?;
            }
        }
        Ok(out)
    }

    /// The round's parameters.
    #[getter]
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = config_dict(py, self.round.config())?;
        d.set_item("warnings", self.warnings.clone())?;
        Ok(d)
    }

    /// Neighbours per client.
    #[getter]
    fn k(&self) -> u32 {
        self.round.config().degree
    }

    /// Shamir threshold.
    #[getter]
    fn t(&self) -> u32 {
        self.round.config().threshold
    }

    fn __repr__(&self) -> String {
        let c = self.round.config();
        format!(
            "Server(round_id={}, clients={}, dim={}, k={}, t={}, stage={:?})",
            c.round_id,
            c.num_clients,
            c.dim,
            c.degree,
            c.threshold,
            self.round.stage().name()
        )
    }
}
