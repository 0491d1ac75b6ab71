//! `secagg.simulate`: one whole round in this process through `secagg_sim::simulate`, with
//! the inputs taken from numpy arrays and the result returned as a dict (wrapped in
//! `SimulationResult` on the Python side).

use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use secagg_core::server::DropReason;
use secagg_core::{Stage, ThreatModel};
use secagg_dp::pipeline::{NoiseKind, NoisePlacement};
use secagg_sim::dp::{DEFAULT_BETA, DpParams};
use secagg_sim::simulate::{
    Aggregate, Inputs, SimulateDp, SimulateOptions, SimulateResult, simulate,
};
use secagg_sim::validate::{Cheat, SimulateValidation, ValidationReport, simulate_validated_with};

use crate::arrays::{Vector, float_array, read_vector, sum_array};
use crate::options::{
    ParamChoice, count, graph_name, opt_count, os_random, parse_stage, plan_error, prg_name,
    py_words, round_options, threat_name,
};

/// Reads every input and checks they are all of one kind.
fn read_inputs(
    inputs: &[Bound<'_, PyAny>],
    weights: Option<Vec<u64>>,
    clip: Option<f64>,
) -> PyResult<Inputs> {
    let n = inputs.len();
    if n < 2 {
        return Err(PyValueError::new_err(format!(
            "a round needs at least 2 clients: pass a list of at least 2 arrays, got {n}"
        )));
    }
    let vectors: Vec<Vector> = inputs
        .iter()
        .enumerate()
        .map(|(i, x)| read_vector(x, &format!("input {i}")))
        .collect::<PyResult<_>>()?;
    let d = vectors[0].len();
    for (i, v) in vectors.iter().enumerate() {
        if v.len() != d {
            return Err(PyValueError::new_err(format!(
                "input {i} has {} values but input 0 has {d}: all clients must send vectors of \
                 the same length",
                v.len()
            )));
        }
        if v.kind() != vectors[0].kind() {
            return Err(PyValueError::new_err(format!(
                "input {i} holds {} but input 0 holds {}: use all unsigned integers (sum) or all \
                 floats (weighted mean)",
                v.kind(),
                vectors[0].kind()
            )));
        }
    }
    if d == 0 {
        return Err(PyValueError::new_err(
            "inputs are empty arrays: give each client at least one value",
        ));
    }
    match vectors[0] {
        Vector::Unsigned(_) => {
            if weights.is_some() || clip.is_some() {
                return Err(PyValueError::new_err(
                    "weights= and clip= apply to float inputs only (unsigned inputs are summed)",
                ));
            }
            Ok(Inputs::Unsigned(
                vectors
                    .into_iter()
                    .map(|v| match v {
                        Vector::Unsigned(mut x) => std::mem::take(&mut *x),
                        Vector::Float(_) => Vec::new(),
                    })
                    .collect(),
            ))
        }
        Vector::Float(_) => {
            let weights = weights.unwrap_or_else(|| vec![1; n]);
            if weights.len() != n {
                return Err(PyValueError::new_err(format!(
                    "{} weights for {n} inputs: give one weight per input",
                    weights.len()
                )));
            }
            if let Some(c) = clip
                && !(c.is_finite() && c > 0.0)
            {
                return Err(PyValueError::new_err(format!(
                    "clip must be a positive finite number, got {c}"
                )));
            }
            Ok(Inputs::Float {
                values: vectors
                    .into_iter()
                    .map(|v| match v {
                        Vector::Float(mut x) => std::mem::take(&mut *x),
                        Vector::Unsigned(_) => Vec::new(),
                    })
                    .collect(),
                weights,
                clip,
            })
        }
    }
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e6
}

/// Runs one round; see `secagg.simulate` in `__init__.pyi`.
#[pyfunction]
#[pyo3(signature = (
    inputs, *, bits=32, dropout=0.0, dropout_stage=None, degree=None, threshold=None, seed=None,
    weights=None, threat="honest-but-curious", clip=None, graph="auto", prg="aes",
    assumed_corrupt=0.05, assumed_dropout=None, accept_weaker_params=false, dp=None,
    dp_noise_multiplier=1.0, dp_clip=1.0, dp_delta=1e-5, dp_sampling_rate=1.0, dp_rounds=1,
    dp_central=false, validate_l2=None, cheaters=None, cheat=None, validate_client_noise=false
))]
#[allow(clippy::too_many_arguments)]
pub fn simulate_round<'py>(
    py: Python<'py>,
    inputs: Vec<Bound<'py, PyAny>>,
    bits: i128,
    dropout: f64,
    dropout_stage: Option<&str>,
    degree: Option<i128>,
    threshold: Option<i128>,
    seed: Option<i128>,
    weights: Option<Vec<i128>>,
    threat: &str,
    clip: Option<f64>,
    graph: &str,
    prg: &str,
    assumed_corrupt: f64,
    assumed_dropout: Option<f64>,
    accept_weaker_params: bool,
    dp: Option<&str>,
    dp_noise_multiplier: f64,
    dp_clip: f64,
    dp_delta: f64,
    dp_sampling_rate: f64,
    dp_rounds: i128,
    dp_central: bool,
    validate_l2: Option<f64>,
    cheaters: Option<Vec<i128>>,
    cheat: Option<&str>,
    validate_client_noise: bool,
) -> PyResult<Bound<'py, PyDict>> {
    // Python ints: a negative or too large value is a ValueError naming the argument.
    let bits: u8 = count(bits, "bits")?;
    let degree: Option<u32> = opt_count(degree, "degree")?;
    let threshold: Option<u32> = opt_count(threshold, "threshold")?;
    let seed: Option<u64> = opt_count(seed, "seed")?;
    let dp_rounds: u64 = count(dp_rounds, "dp_rounds")?;
    let weights: Option<Vec<u64>> = weights
        .map(|w| w.into_iter().map(|x| count(x, "a weight")).collect())
        .transpose()?;
    // A validated DP round has one bound: B is the L2 clip of every update (as `secagg
    // simulate --validate l2=B --dp ...` takes it).
    let dp_clip = match (validate_l2, dp) {
        (Some(b), Some(_)) if dp_clip != 1.0 && dp_clip != b => {
            return Err(PyValueError::new_err(format!(
                "validate_l2={b} with dp= is the L2 clip, but dp_clip is {dp_clip}: drop dp_clip \
                 or give both the same value"
            )));
        }
        (Some(b), Some(_)) => b,
        _ => dp_clip,
    };
    let dp = DpChoice {
        noise: dp,
        noise_multiplier: dp_noise_multiplier,
        clip: dp_clip,
        delta: dp_delta,
        sampling_rate: dp_sampling_rate,
        rounds: dp_rounds,
        central: dp_central,
    };
    let dp_options = dp.options()?;
    let validation = ValidateChoice::parse(validate_l2, cheaters, cheat, validate_client_noise)?;
    // Validated rounds run the malicious model with a PKI (D36), as `secagg simulate
    // --validate` does; the note joins the round's warnings.
    let mut notes = Vec::new();
    let threat = match &validation {
        Some(_) if threat != "malicious" => {
            crate::options::parse_threat(threat)?;
            notes.push(String::from(
                "validate_l2= runs the malicious threat model with a PKI (VALIDATION.md §21.1 \
                 D36): threat='malicious' was set",
            ));
            "malicious"
        }
        _ => threat,
    };
    if !(0.0..=1.0).contains(&dropout) {
        return Err(PyValueError::new_err(format!(
            "dropout must be a fraction in [0, 1], got {dropout}"
        )));
    }
    let stage = match dropout_stage {
        Some(s) => parse_stage(s)?,
        None => Stage::MaskedInput,
    };
    let model = crate::options::parse_threat(threat)?;
    if stage == Stage::ConsistencyCheck && model != ThreatModel::Malicious && dropout > 0.0 {
        return Err(PyValueError::new_err(
            "dropout_stage='consistency' needs threat='malicious' (the consistency check only \
             runs there)",
        ));
    }
    if stage == Stage::Validate && validation.is_none() && dropout > 0.0 {
        return Err(PyValueError::new_err(
            "dropout_stage='validate' needs validate_l2= (the challenge stage only runs in \
             validated rounds)",
        ));
    }
    let n_inputs = inputs.len();
    let inputs = read_inputs(&inputs, weights, clip)?;
    let seed = match seed {
        Some(s) => s,
        None => u64::from_le_bytes(os_random::<8>()?),
    };
    let mut round_seed = [0u8; 32];
    round_seed[..8].copy_from_slice(&seed.to_le_bytes());
    let choice = ParamChoice {
        threat,
        degree,
        threshold,
        graph,
        prg,
        assumed_corrupt,
        assumed_dropout: assumed_dropout.unwrap_or_else(|| {
            // The cheaters leave too (rejected at their upload or later), as the injected
            // dropouts do: counted in the default, as `secagg simulate` counts them.
            let extra = validation.as_ref().map_or(0, |v| v.cheaters.len());
            let n = n_inputs.max(1) as f64;
            let injected = ((dropout * n).round() + extra as f64) / n;
            dropout.max(injected).max(0.05)
        }),
        accept_weaker: accept_weaker_params,
    };
    // The number of clients and the dimension are filled in from the inputs by `simulate`.
    let round = round_options(2, 0, bits, &choice, seed, round_seed)?;
    let opts = SimulateOptions {
        round,
        dropout,
        dropout_stage: stage,
        seed,
        on_stage: None,
        dp: dp_options,
    };
    let mut r = match validation {
        None => py.detach(move || simulate(inputs, opts)),
        Some(v) => {
            // The server's secret key for its batch verification's weights (D26, D32): from
            // the OS, never from the seed.
            let key = os_random::<32>()?;
            let v = SimulateValidation {
                verifier_key: Some(key),
                ..v
            };
            py.detach(move || simulate_validated_with(inputs, opts, v, validate_client_noise))
        }
    }
    .map_err(plan_error)?;
    if let Some(f) = r.validation.as_ref().and_then(|v| v.dp_factor)
        && validate_client_noise
    {
        notes.push(format!(
            "client-side DP noise in a validated round: a cheater can send up to {f:.2}× the \
             clip as signal in place of its noise (VALIDATION.md §12)"
        ));
    }
    r.plan.warnings.splice(0..0, notes);
    if r.validation.is_some() {
        // The validated round's notes name the command line's flags.
        r.plan.warnings = r.plan.warnings.iter().map(|w| py_words(w)).collect();
    }
    let d = result_dict(py, &r, dropout, stage, seed, assumed_corrupt)?;
    d.set_item("dp", dp.report(py, &r)?)?;
    d.set_item(
        "validation",
        r.validation
            .as_ref()
            .map(|v| validation_dict(py, v))
            .transpose()?,
    )?;
    Ok(d)
}

/// `validate_l2=`, `cheaters=` and `cheat=` (the `--validate`, `--cheaters` and `--cheat` flags
/// of `secagg simulate`), checked as the command checks them.
struct ValidateChoice;

impl ValidateChoice {
    fn parse(
        bound: Option<f64>,
        cheaters: Option<Vec<i128>>,
        cheat: Option<&str>,
        client_noise: bool,
    ) -> PyResult<Option<SimulateValidation>> {
        let cheaters: Vec<usize> = cheaters
            .unwrap_or_default()
            .into_iter()
            .map(|i| count(i, "a cheater's index"))
            .collect::<PyResult<_>>()?;
        let cheat = cheat
            .map(|c| {
                Cheat::parse(c).map_err(|e| PyValueError::new_err(e.replace("cheat", "cheat=")))
            })
            .transpose()?;
        let Some(bound) = bound else {
            if client_noise {
                return Err(PyValueError::new_err(
                    "validate_client_noise= goes with validate_l2=B and dp= (client-side noise \
                     in a validated round)",
                ));
            }
            if !cheaters.is_empty() || cheat.is_some() {
                return Err(PyValueError::new_err(
                    "cheaters= and cheat= go with validate_l2=B (a validated round): without \
                     it nothing checks the inputs",
                ));
            }
            return Ok(None);
        };
        if !(bound.is_finite() && bound > 0.0) {
            return Err(PyValueError::new_err(format!(
                "validate_l2 must be a positive finite number (the L2 bound), got {bound}"
            )));
        }
        let cheat = match (cheaters.is_empty(), cheat) {
            (true, None) => Cheat::Oversized,
            (false, Some(c)) => c,
            (false, None) => {
                return Err(PyValueError::new_err(
                    "cheaters= needs cheat= (how they cheat: 'oversized', 'forged-proof', \
                     'inconsistent' or 'wrong-mask')",
                ));
            }
            (true, Some(_)) => {
                return Err(PyValueError::new_err(
                    "cheat= needs cheaters= (the 0-based indices of the inputs that cheat)",
                ));
            }
        };
        cheat.supported().map_err(PyValueError::new_err)?;
        Ok(Some(SimulateValidation {
            bound,
            cheaters,
            cheat,
            verifier_key: None,
        }))
    }
}

/// The `validation` entry of a validated round's result: the keys of `secagg simulate
/// --validate --json`'s `validation` object.
fn validation_dict<'py>(py: Python<'py>, v: &ValidationReport) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    out.set_item("bound", v.bound)?;
    out.set_item("bound_encoded", v.bound_sq)?;
    out.set_item("projections", v.projections)?;
    out.set_item("scale", v.scale)?;
    out.set_item("slack_factor", v.slack_factor)?;
    let rejected = PyList::empty(py);
    for r in &v.rejected {
        let e = PyDict::new(py);
        e.set_item("client", r.client)?;
        e.set_item("stage", r.stage.name())?;
        e.set_item("reason", &r.reason)?;
        rejected.append(e)?;
    }
    out.set_item("rejected", rejected)?;
    out.set_item("uncaught", v.uncaught.clone())?;
    let refused = PyList::empty(py);
    for (c, err) in &v.refused {
        let e = PyDict::new(py);
        e.set_item("client", c)?;
        e.set_item("error", err)?;
        refused.append(e)?;
    }
    out.set_item("refused", refused)?;
    out.set_item("prove_ms", v.prove_ms.clone())?;
    let verify = PyDict::new(py);
    verify.set_item("total", v.verify_ms)?;
    verify.set_item("per_client", v.verify_ms_per_client())?;
    verify.set_item("uploads", v.uploads)?;
    out.set_item("verify_ms", verify)?;
    out.set_item("proof_bytes", v.proof_bytes)?;
    out.set_item("noise_bound", v.noise_bound)?;
    out.set_item("dp_factor", v.dp_factor)?;
    Ok(out)
}

/// The `dp=` keyword arguments of `simulate` (the `--dp` flags of `secagg simulate`).
struct DpChoice<'a> {
    noise: Option<&'a str>,
    noise_multiplier: f64,
    clip: f64,
    delta: f64,
    sampling_rate: f64,
    rounds: u64,
    central: bool,
}

impl DpChoice<'_> {
    /// The simulator's DP options, or None without `dp=`.
    fn options(&self) -> PyResult<Option<SimulateDp>> {
        let Some(name) = self.noise else {
            return Ok(None);
        };
        let noise = match name {
            "ddg" => NoiseKind::DiscreteGaussian,
            "skellam" => NoiseKind::Skellam,
            _ => {
                return Err(PyValueError::new_err(format!(
                    "unknown dp {name:?}: use 'ddg' (distributed discrete Gaussian) or 'skellam'"
                )));
            }
        };
        if !(self.sampling_rate > 0.0 && self.sampling_rate <= 1.0) {
            return Err(PyValueError::new_err(format!(
                "dp_sampling_rate must be in (0, 1], got {}",
                self.sampling_rate
            )));
        }
        let params = DpParams {
            noise,
            placement: if self.central {
                NoisePlacement::Central
            } else {
                NoisePlacement::Distributed
            },
            noise_multiplier: self.noise_multiplier,
            clip: self.clip,
            beta: DEFAULT_BETA,
            // The simulator takes the dimension from the inputs.
            dim: 1,
        };
        params
            .validate()
            .map_err(|e| PyValueError::new_err(format!("dp: {e}")))?;
        Ok(Some(SimulateDp {
            params,
            delta: self.delta,
            sampling_rate: self.sampling_rate,
            rounds: self.rounds,
            min_survivors: None,
        }))
    }

    /// The `dp` entry of the result: parameters, ε and the error of the private mean.
    fn report<'py>(
        &self,
        py: Python<'py>,
        r: &SimulateResult,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(d) = &r.dp else {
            return Ok(None);
        };
        let out = PyDict::new(py);
        out.set_item("noise", self.noise)?;
        out.set_item("central", self.central)?;
        out.set_item("noise_multiplier", self.noise_multiplier)?;
        out.set_item("clip", self.clip)?;
        out.set_item("epsilon", d.epsilon)?;
        out.set_item(
            "epsilon_against_server",
            (!self.central).then_some(d.epsilon),
        )?;
        out.set_item(
            "epsilon_holds_against",
            secagg_sim::dp::epsilon_holds_against(self.central),
        )?;
        out.set_item("epsilon_release_only", d.epsilon_release_only)?;
        out.set_item("order", d.order)?;
        out.set_item("delta", d.delta)?;
        out.set_item("rounds", d.rounds)?;
        out.set_item("sampling_rate", self.sampling_rate)?;
        out.set_item("scale", d.scale)?;
        out.set_item("padded_dim", d.padded_dim)?;
        out.set_item("rmse_vs_clipped", d.rmse_vs_clipped)?;
        out.set_item("rmse_vs_raw", d.rmse_vs_raw)?;
        out.set_item("expected_rmse", d.expected_rmse)?;
        Ok(Some(out))
    }
}

fn result_dict<'py>(
    py: Python<'py>,
    r: &SimulateResult,
    dropout: f64,
    stage: Stage,
    seed: u64,
    assumed_corrupt: f64,
) -> PyResult<Bound<'py, PyDict>> {
    let c = &r.plan.config;
    let d = PyDict::new(py);
    let params = PyDict::new(py);
    params.set_item("clients", c.num_clients)?;
    params.set_item("dim", c.dim)?;
    params.set_item("bits", c.bits)?;
    params.set_item("graph", graph_name(c.graph))?;
    params.set_item("threat", threat_name(c.model))?;
    params.set_item("prg", prg_name(c.prg))?;
    params.set_item("dropout", dropout)?;
    params.set_item("dropout_stage", stage.name())?;
    params.set_item("seed", seed)?;
    params.set_item("assumed_corrupt", assumed_corrupt)?;
    d.set_item("parameters", params)?;
    d.set_item("k", c.degree)?;
    d.set_item("t", c.threshold)?;
    d.set_item("min_clients", c.min_clients)?;
    d.set_item("warnings", r.plan.warnings.clone())?;
    d.set_item("aggregate_ok", r.aggregate_ok)?;
    d.set_item("aborted", r.aborted.clone())?;
    d.set_item("survivors", r.survivors.clone())?;
    d.set_item("dropped", r.dropped.clone())?;
    let dropouts = PyList::empty(py);
    for x in &r.dropouts {
        let e = PyDict::new(py);
        e.set_item("client", x.id as usize - 1)?;
        e.set_item("stage", x.stage.name())?;
        e.set_item(
            "reason",
            match &x.reason {
                DropReason::Timeout => String::from("timeout"),
                DropReason::Disconnected => String::from("disconnected"),
                DropReason::Misbehaved(m) => m.to_string(),
                DropReason::Validation(k) => k.to_string(),
            },
        )?;
        dropouts.append(e)?;
    }
    d.set_item("dropouts", dropouts)?;
    d.set_item("mean_error", r.mean_error)?;
    let (aggregate, total_weight) = match &r.aggregate {
        Some(Aggregate::Sum(v)) => (Some(sum_array(py, v.clone(), c.bits)), None),
        Some(Aggregate::Mean { mean, total_weight }) => {
            (Some(float_array(py, mean.clone())), Some(*total_weight))
        }
        None => (None, None),
    };
    d.set_item("aggregate", aggregate)?;
    d.set_item("total_weight", total_weight)?;
    let stages = PyDict::new(py);
    let n = u64::from(c.num_clients.max(1));
    let (mut server, mut clients, mut up, mut down) = (0f64, 0f64, 0u64, 0u64);
    for (st, s) in &r.report.stages {
        let senders = s.senders.max(1) as u64;
        let e = PyDict::new(py);
        e.set_item("server_s", secs(s.server))?;
        e.set_item("clients_total_s", secs(s.clients_total))?;
        e.set_item("clients_wall_s", secs(s.clients_wall))?;
        e.set_item(
            "client_mean_ms",
            s.clients_total.as_secs_f64() * 1e3 / senders as f64,
        )?;
        e.set_item("senders", s.senders)?;
        e.set_item("bytes_up_per_client", s.bytes_up / senders)?;
        e.set_item("bytes_down_per_client", s.bytes_down / n)?;
        e.set_item("max_bytes_up_per_client", s.max_up_per_client)?;
        e.set_item("max_bytes_down_per_client", s.max_down_per_client)?;
        e.set_item("server_bytes_in", s.bytes_up)?;
        e.set_item("server_bytes_out", s.bytes_down)?;
        stages.set_item(st.name(), e)?;
        server += s.server.as_secs_f64();
        clients += s.clients_total.as_secs_f64();
        up += s.bytes_up;
        down += s.bytes_down;
    }
    d.set_item("stages", stages)?;
    d.set_item("wall_s", secs(r.report.wall))?;
    d.set_item("server_s", (server * 1e6).round() / 1e6)?;
    d.set_item("clients_total_s", (clients * 1e6).round() / 1e6)?;
    d.set_item("bytes_up_per_client", up / n)?;
    d.set_item("bytes_down_per_client", down / n)?;
    Ok(d)
}
