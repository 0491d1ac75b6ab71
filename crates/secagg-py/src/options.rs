//! From the keyword arguments users pass to checked round options: names of stages, threat
//! models, graphs and PRGs, the (k, t) choice, and the round's parameters as a dict.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use secagg_core::config::ValidationParams;
use secagg_core::params::{Assumptions, ThreatModel};
use secagg_core::{GraphKind, PrgKind, RoundConfig, Stage};
use secagg_dp::pipeline::{NoiseKind, NoisePlacement};
use secagg_sim::input_encoding::InputEncoding;
use secagg_sim::plan::{GraphChoice, RoundOptions};

fn unknown(what: &str, got: &str, choices: &str) -> PyErr {
    PyValueError::new_err(format!("unknown {what} {got:?}: use one of {choices}"))
}

/// A stage name (`"advertise"`, `"share"`, `"masked-input"`, `"consistency"`, `"unmask"`).
pub fn parse_stage(s: &str) -> PyResult<Stage> {
    Stage::from_name(s).ok_or_else(|| {
        unknown(
            "dropout_stage",
            s,
            "'advertise', 'share', 'masked-input', 'consistency', 'unmask'",
        )
    })
}

/// A threat model name.
pub fn parse_threat(s: &str) -> PyResult<ThreatModel> {
    match s {
        "honest-but-curious" => Ok(ThreatModel::HonestButCurious),
        "malicious" => Ok(ThreatModel::Malicious),
        _ => Err(unknown("threat", s, "'honest-but-curious', 'malicious'")),
    }
}

/// A graph name.
pub fn parse_graph(s: &str) -> PyResult<GraphChoice> {
    match s {
        "auto" => Ok(GraphChoice::Auto),
        "complete" => Ok(GraphChoice::Complete),
        "harary" => Ok(GraphChoice::Harary),
        _ => Err(unknown("graph", s, "'auto', 'complete', 'harary'")),
    }
}

/// A mask PRG name.
pub fn parse_prg(s: &str) -> PyResult<PrgKind> {
    match s {
        "aes" => Ok(PrgKind::Aes128Ctr),
        "chacha" => Ok(PrgKind::ChaCha20),
        _ => Err(unknown("prg", s, "'aes', 'chacha'")),
    }
}

/// The name of a threat model, as `threat=` takes it.
pub fn threat_name(m: ThreatModel) -> &'static str {
    match m {
        ThreatModel::HonestButCurious => "honest-but-curious",
        ThreatModel::Malicious => "malicious",
    }
}

/// The name of a graph.
pub fn graph_name(g: GraphKind) -> &'static str {
    match g {
        GraphKind::Complete => "complete",
        GraphKind::Harary => "harary",
    }
}

/// The name of a PRG, as `prg=` takes it.
pub fn prg_name(p: PrgKind) -> &'static str {
    match p {
        PrgKind::Aes128Ctr => "aes",
        PrgKind::ChaCha20 => "chacha",
    }
}

/// How (k, t) are chosen or checked.
pub struct ParamChoice<'a> {
    /// `threat=`.
    pub threat: &'a str,
    /// `degree=`.
    pub degree: Option<u32>,
    /// `threshold=`.
    pub threshold: Option<u32>,
    /// `graph=`.
    pub graph: &'a str,
    /// `prg=`.
    pub prg: &'a str,
    /// `assumed_corrupt=`.
    pub assumed_corrupt: f64,
    /// `assumed_dropout=`.
    pub assumed_dropout: f64,
    /// `accept_weaker_params=`.
    pub accept_weaker: bool,
}

/// Checks the user's choices and builds the options `secagg_sim::plan::plan` takes.
pub fn round_options(
    clients: u32,
    dim: u32,
    bits: u8,
    p: &ParamChoice<'_>,
    round_id: u64,
    round_seed: [u8; 32],
) -> PyResult<RoundOptions> {
    if !(1..=64).contains(&bits) {
        return Err(PyValueError::new_err(format!(
            "bits must be in 1..=64, got {bits}"
        )));
    }
    if !(0.0..1.0).contains(&p.assumed_corrupt) {
        return Err(PyValueError::new_err(format!(
            "assumed_corrupt must be a fraction in [0, 1), got {}",
            p.assumed_corrupt
        )));
    }
    if !(0.0..1.0).contains(&p.assumed_dropout) {
        return Err(PyValueError::new_err(format!(
            "assumed_dropout must be a fraction in [0, 1), got {}",
            p.assumed_dropout
        )));
    }
    Ok(RoundOptions {
        clients,
        dim,
        bits,
        graph: parse_graph(p.graph)?,
        degree: p.degree,
        threshold: p.threshold,
        accept_weaker: p.accept_weaker,
        assumptions: Assumptions {
            corrupt_fraction: p.assumed_corrupt,
            dropout_fraction: p.assumed_dropout,
            model: parse_threat(p.threat)?,
        },
        prg: parse_prg(p.prg)?,
        round_id,
        round_seed,
    })
}

/// Rewords the planner's messages for Python users (keyword arguments instead of flags).
pub fn plan_error(msg: String) -> PyErr {
    PyValueError::new_err(py_words(&msg))
}

/// The command line's flags in a message, as the keyword arguments of the Python API.
pub fn py_words(msg: &str) -> String {
    msg.replace("--accept-weaker-params", "accept_weaker_params=True")
        .replace("--threshold", "threshold=")
        .replace("--degree", "degree=")
        .replace("--graph harary", "graph='harary'")
        .replace("--bits", "bits=")
        .replace("--dropout", "dropout=")
        .replace("--validate-client-noise", "validate_client_noise=True")
        .replace("--validate l2=", "validate_l2=")
        .replace("--validate", "validate_l2=")
        .replace("--cheaters", "cheaters=")
        .replace("--clip", "clip=")
        .replace("--threat malicious", "threat='malicious'")
        .replace("--assumed-corrupt", "assumed_corrupt=")
        .replace("--dp-central", "dp_central=True")
        .replace("--dp-clip", "dp_clip")
        .replace("--dp ", "dp= ")
}

/// A count or size from a Python int (arguments that take one are `i128`): a negative or too
/// large value is a `ValueError` naming the argument, where PyO3's own conversion would raise
/// `OverflowError`.
pub fn count<T: TryFrom<i128>>(value: i128, name: &str) -> PyResult<T> {
    if value < 0 {
        return Err(PyValueError::new_err(format!(
            "{name} must be ≥ 0, got {value}"
        )));
    }
    T::try_from(value).map_err(|_| PyValueError::new_err(format!("{name} = {value} is too large")))
}

/// [`count`] of an optional argument.
pub fn opt_count<T: TryFrom<i128>>(value: Option<i128>, name: &str) -> PyResult<Option<T>> {
    value.map(|v| count(v, name)).transpose()
}

/// `n` bytes from the OS CSPRNG.
pub fn os_random<const N: usize>() -> PyResult<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| {
        pyo3::exceptions::PyOSError::new_err(format!("no OS randomness available: {e}"))
    })?;
    Ok(b)
}

/// The name of a DP noise kind, as `dp=` / `noise` take it.
pub fn noise_name(kind: NoiseKind) -> &'static str {
    match kind {
        NoiseKind::DiscreteGaussian => "ddg",
        NoiseKind::Skellam => "skellam",
    }
}

/// The round's input encoding ([`RoundConfig::encoding`]) parsed, or a `ValueError` saying
/// why it is not one (a client refuses such a round).
pub fn input_encoding(c: &RoundConfig) -> PyResult<InputEncoding> {
    InputEncoding::of(c).map_err(PyValueError::new_err)
}

/// The round's parameters as a dict (`Server.config`, `Client.config`,
/// `secagg.round_config`). `encoding` holds the canonical bytes the session id covers (the
/// truth, read back by [`config_from_dict`]); `input`, `clip`, `max_weight` and `dp` are what
/// they say, derived from those bytes for reading.
pub fn config_dict<'py>(py: Python<'py>, c: &RoundConfig) -> PyResult<Bound<'py, PyDict>> {
    let enc = input_encoding(c)?;
    let d = PyDict::new(py);
    d.set_item("round_id", c.round_id)?;
    d.set_item("clients", c.num_clients)?;
    d.set_item("min_clients", c.min_clients)?;
    d.set_item("k", c.degree)?;
    d.set_item("t", c.threshold)?;
    d.set_item("graph", graph_name(c.graph))?;
    d.set_item("bits", c.bits)?;
    d.set_item("dim", c.dim)?;
    d.set_item("prg", prg_name(c.prg))?;
    d.set_item("threat", threat_name(c.model))?;
    d.set_item("pki", c.pki)?;
    // Public: the DP encoding's rotation signs derive from it (`secagg.DpEncoding`).
    d.set_item("round_seed", PyBytes::new(py, &c.round_seed))?;
    d.set_item("encoding", PyBytes::new(py, &c.encoding))?;
    let (input, clip, max_weight) = match enc {
        InputEncoding::Integers => ("integers", None, None),
        InputEncoding::Float { clip, max_weight } => ("float", Some(clip), Some(max_weight)),
        InputEncoding::Dp(_) => ("dp", None, None),
    };
    d.set_item("input", input)?;
    d.set_item("clip", clip)?;
    d.set_item("max_weight", max_weight)?;
    let dp = match enc {
        InputEncoding::Dp(p) => {
            let dp = PyDict::new(py);
            dp.set_item("noise", noise_name(p.noise))?;
            dp.set_item("central", p.placement == NoisePlacement::Central)?;
            dp.set_item("noise_multiplier", p.noise_multiplier)?;
            dp.set_item("clip", p.clip)?;
            dp.set_item("beta", p.beta)?;
            dp.set_item("dim", p.dim)?;
            Some(dp)
        }
        _ => None,
    };
    d.set_item("dp", dp)?;
    // Validated rounds (wire version 3): B_enc² (the bound on the encoded input's squared L2
    // norm) and J; for float rounds `clip` is then the L2 bound B.
    let validation = match &c.validation {
        Some(v) => {
            let e = PyDict::new(py);
            e.set_item("bound_encoded", v.bound_sq)?;
            e.set_item("max_weight", v.max_weight)?;
            e.set_item("projections", v.projections)?;
            Some(e)
        }
        None => None,
    };
    d.set_item("validation", validation)?;
    Ok(d)
}

/// `config["validation"]` back (absent or None: a plain round).
fn validation_from_dict(d: &Bound<'_, PyDict>) -> PyResult<Option<ValidationParams>> {
    let Some(v) = d.get_item("validation")? else {
        return Ok(None);
    };
    if v.is_none() {
        return Ok(None);
    }
    let bad = || {
        PyValueError::new_err(
            "config[\"validation\"] must be None or {\"bound_encoded\": int, \"projections\": int}",
        )
    };
    let v = v.cast::<PyDict>().map_err(|_| bad())?;
    let bound_sq: u64 = v
        .get_item("bound_encoded")?
        .ok_or_else(bad)?
        .extract()
        .map_err(|_| bad())?;
    let projections: u16 = v
        .get_item("projections")?
        .ok_or_else(bad)?
        .extract()
        .map_err(|_| bad())?;
    // W of a weight coordinate (float rounds, D33); absent or None: no weight coordinate.
    let max_weight: Option<u64> = match v.get_item("max_weight")? {
        Some(w) if !w.is_none() => Some(w.extract().map_err(|_| bad())?),
        _ => None,
    };
    Ok(Some(ValidationParams {
        bound_sq,
        projections,
        max_weight,
    }))
}

/// The round's parameters back from a dict as [`config_dict`] makes it (`Server.config`,
/// `Client.config`, `secagg.round_config`), checked as a client checks a RoundStart. The
/// input encoding is read from the `encoding` bytes only; the keys derived from them for
/// reading (`input`, `clip`, `max_weight`, `dp`) and others (`warnings`, ...) are ignored.
pub fn config_from_dict(d: &Bound<'_, PyAny>) -> PyResult<RoundConfig> {
    let d = d.cast::<PyDict>().map_err(|_| {
        PyValueError::new_err(
            "config must be the round's parameters as a dict: Server.config, Client.config or \
             secagg.round_config(round_start_message)",
        )
    })?;
    fn get<'py, T: FromPyObjectOwned<'py>>(d: &Bound<'py, PyDict>, key: &str) -> PyResult<T> {
        let v = d.get_item(key)?.ok_or_else(|| {
            PyValueError::new_err(format!(
                "config lacks {key:?}: pass Server.config, Client.config or \
                 secagg.round_config(round_start_message) as they are"
            ))
        })?;
        v.extract::<T>()
            .map_err(|_| PyValueError::new_err(format!("config[{key:?}] has the wrong type")))
    }
    let seed: Vec<u8> = get(d, "round_seed")?;
    let round_seed = <[u8; 32]>::try_from(seed.as_slice()).map_err(|_| {
        PyValueError::new_err(format!(
            "config[\"round_seed\"] must be 32 bytes, got {}",
            seed.len()
        ))
    })?;
    let encoding: Vec<u8> = get(d, "encoding")?;
    let graph = match get::<String>(d, "graph")?.as_str() {
        "complete" => GraphKind::Complete,
        "harary" => GraphKind::Harary,
        g => return Err(unknown("graph", g, "'complete', 'harary'")),
    };
    let c = RoundConfig {
        round_id: get(d, "round_id")?,
        round_seed,
        num_clients: get(d, "clients")?,
        min_clients: get(d, "min_clients")?,
        degree: get(d, "k")?,
        threshold: get(d, "t")?,
        graph,
        bits: get(d, "bits")?,
        dim: get(d, "dim")?,
        prg: parse_prg(&get::<String>(d, "prg")?)?,
        model: parse_threat(&get::<String>(d, "threat")?)?,
        pki: get(d, "pki")?,
        encoding,
        validation: validation_from_dict(d)?,
    };
    c.validate()
        .map_err(|e| PyValueError::new_err(format!("config: {e}")))?;
    InputEncoding::of(&c).map_err(|e| PyValueError::new_err(format!("config: {e}")))?;
    Ok(c)
}
