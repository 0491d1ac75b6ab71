//! `secagg.dp`: privacy accounting (`epsilon`, `Accountant`) and planning (`plan`) for the
//! Gaussian, the distributed discrete Gaussian ("ddg") and Skellam mechanisms, through
//! `secagg_dp` exactly as `secagg dp epsilon|plan` does; and `secagg.DpEncoding`, one round's
//! client encoding and server decoding for callers that carry the bytes themselves.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use secagg_core::RoundConfig;
use secagg_dp::accountant::{Accountant, Epsilon, Mechanism, Round};
use secagg_dp::pipeline::{DEFAULT_BETA, DpEncoding, DpSetup, NoiseKind, NoisePlacement};
use secagg_dp::plan::{PlanMechanism, PlanRequest, pipeline_round, plan};
use secagg_sim::dp::{DpFloor, DpParams};
use secagg_sim::input_encoding::InputEncoding;

use crate::arrays::{Vector, float_array, read_vector, sum_array};
use crate::options::{config_from_dict, count, input_encoding, opt_count, os_random, plan_error};

fn value_error(e: impl ToString) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// The client pipeline's parameters as keyword arguments.
struct Pipeline {
    clients: Option<u32>,
    dim: Option<usize>,
    bits: Option<u8>,
    clip: Option<f64>,
    min_survivors: Option<u32>,
    central: bool,
    beta: f64,
}

impl Pipeline {
    /// The setup for `mechanism` with noise multiplier `z`; `needs` names the caller.
    fn setup(&self, noise: NoiseKind, z: f64, needs: &str) -> PyResult<DpSetup> {
        let (Some(clients), Some(dim), Some(bits), Some(clip)) =
            (self.clients, self.dim, self.bits, self.clip)
        else {
            let missing: Vec<&str> = [
                ("clients=", self.clients.is_none()),
                ("dim=", self.dim.is_none()),
                ("bits=", self.bits.is_none()),
                ("clip=", self.clip.is_none()),
            ]
            .iter()
            .filter(|(_, m)| *m)
            .map(|(f, _)| *f)
            .collect();
            return Err(PyValueError::new_err(format!(
                "{needs} needs the client pipeline's parameters: add {}",
                missing.join(", ")
            )));
        };
        let min_survivors = self.min_survivors.unwrap_or(clients);
        if min_survivors == 0 || min_survivors > clients {
            return Err(PyValueError::new_err(format!(
                "min_survivors must be in 1..=clients ({clients}), got {min_survivors}"
            )));
        }
        // The rotation seed changes neither the accounting nor the scale: any value will do.
        let mut setup = DpSetup::new(dim, clip, z, bits, clients, min_survivors, [0; 32]);
        setup.noise = noise;
        setup.placement = if self.central {
            NoisePlacement::Central
        } else {
            NoisePlacement::Distributed
        };
        setup.beta = self.beta;
        Ok(setup)
    }
}

fn noise_of(mechanism: &str) -> PyResult<Option<NoiseKind>> {
    match mechanism {
        "gaussian" => Ok(None),
        "ddg" => Ok(Some(NoiseKind::DiscreteGaussian)),
        "skellam" => Ok(Some(NoiseKind::Skellam)),
        _ => Err(PyValueError::new_err(format!(
            "unknown mechanism {mechanism:?}: use one of 'gaussian', 'ddg', 'skellam'"
        ))),
    }
}

/// ε of `round` alone, composed from nothing spent.
fn epsilon_of(round: &Round, delta: f64) -> PyResult<Epsilon> {
    let mut acc = Accountant::new();
    acc.compose(round);
    acc.epsilon(delta).map_err(value_error)
}

/// Both ε of a run into `out`. `against_server` is the run at sampling rate 1: whoever sees
/// who took part (the server always does: it sees which clients answer) gets no
/// amplification. `release_only` is the run amplified by Poisson sampling at the rate asked
/// for, which holds only against observers of the released result, and only if the clients
/// really are Poisson-sampled and who took part stays hidden. `epsilon`/`order` are the
/// against-server values (until issue 14 they were the amplified ones).
/// With central noise (or the continuous Gaussian, which only a server adds) no ε holds
/// against the server: `epsilon_against_server` is then None and `epsilon` holds against
/// observers of the model who know who took part (`epsilon_holds_against` says which).
fn set_epsilons(
    out: &Bound<'_, PyDict>,
    against_server: &Epsilon,
    release_only: &Epsilon,
    central: bool,
) -> PyResult<()> {
    out.set_item("epsilon", against_server.epsilon)?;
    out.set_item("order", against_server.order)?;
    out.set_item(
        "epsilon_against_server",
        (!central).then_some(against_server.epsilon),
    )?;
    out.set_item(
        "epsilon_holds_against",
        secagg_sim::dp::epsilon_holds_against(central),
    )?;
    out.set_item("epsilon_release_only", release_only.epsilon)?;
    out.set_item("order_release_only", release_only.order)?;
    Ok(())
}

/// ε after `rounds` rounds; see `secagg/dp.py`.
#[pyfunction]
#[pyo3(name = "dp_epsilon", signature = (
    mechanism, noise_multiplier, sampling_rate, rounds, delta, *, clients=None, dim=None,
    bits=None, clip=None, min_survivors=None, central=false, beta=DEFAULT_BETA
))]
#[allow(clippy::too_many_arguments)]
pub fn epsilon<'py>(
    py: Python<'py>,
    mechanism: &str,
    noise_multiplier: f64,
    sampling_rate: f64,
    rounds: i128,
    delta: f64,
    clients: Option<i128>,
    dim: Option<i128>,
    bits: Option<i128>,
    clip: Option<f64>,
    min_survivors: Option<i128>,
    central: bool,
    beta: f64,
) -> PyResult<Bound<'py, PyDict>> {
    let rounds: u64 = count(rounds, "rounds")?;
    let (clients, dim, bits, min_survivors) = (
        opt_count(clients, "clients")?,
        opt_count(dim, "dim")?,
        opt_count(bits, "bits")?,
        opt_count(min_survivors, "min_survivors")?,
    );
    let out = PyDict::new(py);
    out.set_item("mechanism", mechanism)?;
    out.set_item("noise_multiplier", noise_multiplier)?;
    out.set_item("sampling_rate", sampling_rate)?;
    out.set_item("rounds", rounds)?;
    out.set_item("delta", delta)?;
    // The run as asked (amplified at `sampling_rate`) and at sampling rate 1 (against the
    // server, which sees who takes part).
    let (release_round, server_round) = match noise_of(mechanism)? {
        None => {
            let gaussian = |q: f64| {
                Round::new(Mechanism::Gaussian { noise_multiplier }, q, rounds).map_err(value_error)
            };
            (gaussian(sampling_rate)?, gaussian(1.0)?)
        }
        Some(noise) => {
            let p = Pipeline {
                clients,
                dim,
                bits,
                clip,
                min_survivors,
                central,
                beta,
            };
            let setup = p.setup(noise, noise_multiplier, "mechanism='ddg'/'skellam'")?;
            let enc = DpEncoding::new(&setup).map_err(value_error)?;
            out.set_item("scale", enc.scale())?;
            out.set_item("padded_dim", enc.padded_dim())?;
            out.set_item("l2_sensitivity", enc.l2_sensitivity())?;
            out.set_item("l1_sensitivity", enc.l1_sensitivity())?;
            out.set_item("local_variance", enc.local_variance())?;
            out.set_item("min_survivors", setup.min_survivors)?;
            (
                pipeline_round(&setup, &enc, sampling_rate, rounds).map_err(value_error)?,
                pipeline_round(&setup, &enc, 1.0, rounds).map_err(value_error)?,
            )
        }
    };
    let release_only = epsilon_of(&release_round, delta)?;
    let against_server = epsilon_of(&server_round, delta)?;
    set_epsilons(
        &out,
        &against_server,
        &release_only,
        central || mechanism == "gaussian",
    )?;
    Ok(out)
}

/// The smallest noise multiplier within an (ε, δ) budget; see `secagg/dp.py`.
#[pyfunction]
#[pyo3(name = "dp_plan", signature = (
    epsilon, delta, rounds, sampling_rate, *, clients, dim, bits, clip, mechanism="ddg",
    min_survivors=None, central=false, beta=DEFAULT_BETA
))]
#[allow(clippy::too_many_arguments)]
pub fn plan_noise<'py>(
    py: Python<'py>,
    epsilon: f64,
    delta: f64,
    rounds: i128,
    sampling_rate: f64,
    clients: i128,
    dim: i128,
    bits: i128,
    clip: f64,
    mechanism: &str,
    min_survivors: Option<i128>,
    central: bool,
    beta: f64,
) -> PyResult<Bound<'py, PyDict>> {
    let rounds: u64 = count(rounds, "rounds")?;
    let (clients, dim, bits) = (
        count(clients, "clients")?,
        count(dim, "dim")?,
        count(bits, "bits")?,
    );
    let min_survivors = opt_count(min_survivors, "min_survivors")?;
    let kind = match mechanism {
        "gaussian" => PlanMechanism::Gaussian,
        "ddg" => PlanMechanism::DistributedDiscreteGaussian,
        "skellam" => PlanMechanism::Skellam,
        _ => {
            return Err(PyValueError::new_err(format!(
                "unknown mechanism {mechanism:?}: use one of 'gaussian', 'ddg', 'skellam'"
            )));
        }
    };
    let p = Pipeline {
        clients: Some(clients),
        dim: Some(dim),
        bits: Some(bits),
        clip: Some(clip),
        min_survivors,
        central,
        beta,
    };
    // z = 1 is a placeholder: the plan searches it.
    let noise = noise_of(mechanism)?.unwrap_or(NoiseKind::DiscreteGaussian);
    let setup = p.setup(noise, 1.0, "secagg.dp.plan")?;
    let req = PlanRequest {
        epsilon,
        delta,
        rounds,
        sampling_rate,
        mechanism: kind,
        setup,
    };
    // The search evaluates the accountant many times: release the GIL. The budget is met at
    // the sampling rate asked for (against observers of the release only when it is below
    // 1); the plan also gives ε at rate 1, what the same noise costs against the server.
    let found = py.detach(|| plan(&req)).map_err(value_error)?;
    let out = PyDict::new(py);
    out.set_item("mechanism", mechanism)?;
    out.set_item("noise_multiplier", found.noise_multiplier)?;
    out.set_item("scale", found.scale)?;
    set_epsilons(
        &out,
        &found.spent_against_server,
        &found.spent,
        central || mechanism == "gaussian",
    )?;
    out.set_item("target_epsilon", epsilon)?;
    // Which of the two ε the target bounds (as `secagg dp plan --json` says it).
    let applies_to = if sampling_rate < 1.0 {
        "release_only"
    } else {
        "server"
    };
    out.set_item("target_applies_to", applies_to)?;
    out.set_item("delta", delta)?;
    out.set_item("rounds", rounds)?;
    out.set_item("sampling_rate", sampling_rate)?;
    out.set_item("min_survivors", req.setup.min_survivors)?;
    out.set_item("rmse_per_coordinate", found.rmse_per_coordinate)?;
    out.set_item("l2_error", found.l2_error)?;
    Ok(out)
}

/// The noise name users pass (`"ddg"`, `"skellam"`).
fn noise_name(kind: NoiseKind) -> &'static str {
    match kind {
        NoiseKind::DiscreteGaussian => "ddg",
        NoiseKind::Skellam => "skellam",
    }
}

/// A ChaCha20 generator keyed from the OS CSPRNG: the only source of DP noise and rounding
/// coins here, so nobody (a server least of all) can choose or replay them.
fn os_rng() -> PyResult<ChaCha20Rng> {
    Ok(ChaCha20Rng::from_seed(os_random::<32>()?))
}

/// One round's DP encoding: what a client feeds the sans-IO `Client` instead of its float
/// update, and how the server turns the unmasked sum back into the private mean. Derived from
/// the public DP parameters and the round's configuration only (its round seed fixes the
/// rotation, its `min_clients` the survivors each client's noise share is sized for), as the
/// gRPC service and `simulate(dp=...)` derive it; see `__init__.pyi`.
#[pyclass(module = "secagg._secagg", name = "DpEncoding", frozen)]
pub struct PyDpEncoding {
    params: DpParams,
    encoding: DpEncoding,
}

impl PyDpEncoding {
    /// The pipeline encoding (for the accountant).
    pub fn encoding(&self) -> &DpEncoding {
        &self.encoding
    }

    fn min_survivors(&self) -> u32 {
        self.encoding.setup().min_survivors
    }

    fn check_survivors(&self, survivors: u32) -> PyResult<()> {
        let (min, max) = (self.min_survivors(), self.encoding.setup().max_clients);
        if survivors < min {
            return Err(PyValueError::new_err(format!(
                "{survivors} survivors are fewer than the {min} each client's noise share is \
                 sized for: the sum carries less noise than the privacy guarantee needs, so it is \
                 not decoded (the Server must abort below min_clients={min})"
            )));
        }
        if survivors > max {
            return Err(PyValueError::new_err(format!(
                "{survivors} survivors in a round of {max} clients"
            )));
        }
        Ok(())
    }
}

/// `dim` padded as the encoding pads it, for the Server's `dim=`.
fn masked_dim_of(dim: usize) -> PyResult<u32> {
    if dim == 0 {
        return Err(PyValueError::new_err("dim must be at least 1"));
    }
    // Only `dim` matters for the padding; the other fields are placeholders.
    let p = DpParams {
        noise: NoiseKind::DiscreteGaussian,
        placement: NoisePlacement::Distributed,
        noise_multiplier: 1.0,
        clip: 1.0,
        beta: DEFAULT_BETA,
        dim,
    };
    p.masked_dim().map_err(PyValueError::new_err)
}

impl PyDpEncoding {
    /// The DP encoding a round's configuration announces, or a `ValueError` saying why there
    /// is none.
    pub fn from_config(c: &RoundConfig) -> PyResult<Self> {
        let params = match input_encoding(c)? {
            InputEncoding::Dp(p) => p,
            InputEncoding::Integers | InputEncoding::Float { .. } => {
                return Err(PyValueError::new_err(
                    "the round has no DP encoding: its configuration announces a plain sum or a \
                     weighted mean (the server creates DP rounds with Server(dp='ddg' or \
                     'skellam', dp_noise_multiplier=..., dp_clip=...))",
                ));
            }
        };
        let masked = params.masked_dim().map_err(PyValueError::new_err)?;
        if c.dim != masked {
            return Err(PyValueError::new_err(format!(
                "the round masks {} values, but its DP encoding of {} values needs {masked}",
                c.dim, params.dim
            )));
        }
        let encoding = params.encoding(c).map_err(plan_error)?;
        Ok(Self { params, encoding })
    }
}

#[pymethods]
impl PyDpEncoding {
    #[new]
    fn new(config: &Bound<'_, PyAny>) -> PyResult<Self> {
        Self::from_config(&config_from_dict(config)?)
    }

    /// The vector length a DP round masks for `dim` values: `dim` padded to a power of two.
    #[staticmethod]
    fn masked_dim(dim: i128) -> PyResult<u32> {
        masked_dim_of(count(dim, "dim")?)
    }

    /// Encodes one client's float update for the sans-IO `Client`; see `__init__.pyi`.
    fn encode<'py>(
        &self,
        py: Python<'py>,
        update: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let Vector::Float(x) = read_vector(update, "update")? else {
            return Err(PyValueError::new_err(
                "a DP round averages float updates: pass a float32/float64 array",
            ));
        };
        let mut rng = os_rng()?;
        let enc = &self.encoding;
        // Rotation, rounding and noise sampling are the costly part: release the GIL.
        let out = py
            .detach(|| enc.encode(&x, &mut rng))
            .map_err(|e| PyValueError::new_err(e.0))?;
        Ok(sum_array(py, out, enc.bits()))
    }

    /// Decodes the unmasked sum of `survivors` clients into the private mean; see
    /// `__init__.pyi`.
    fn decode<'py>(
        &self,
        py: Python<'py>,
        aggregate: &Bound<'py, PyAny>,
        survivors: i128,
    ) -> PyResult<Bound<'py, PyAny>> {
        let survivors = count(survivors, "survivors")?;
        let Vector::Unsigned(sum) = read_vector(aggregate, "aggregate")? else {
            return Err(PyValueError::new_err(
                "aggregate must be the unmasked sum (unsigned integers, Server.result())",
            ));
        };
        self.check_survivors(survivors)?;
        let enc = &self.encoding;
        let mut sum = sum.to_vec();
        let mut rng = os_rng()?;
        let total = py
            .detach(|| {
                if enc.setup().placement == NoisePlacement::Central {
                    enc.add_central_noise(&mut sum, &mut rng)?;
                }
                enc.decode_sum(&sum)
            })
            .map_err(|e| PyValueError::new_err(e.0))?;
        let n = f64::from(survivors);
        Ok(float_array(py, total.iter().map(|v| v / n).collect()))
    }

    /// Variance per coordinate of the noise in the mean of `survivors` clients (input units).
    fn noise_variance(&self, survivors: i128) -> PyResult<f64> {
        let survivors = count(survivors, "survivors")?;
        self.check_survivors(survivors)?;
        let s = f64::from(survivors) * self.encoding.scale();
        Ok(self.encoding.noise_variance(survivors) / (s * s))
    }

    /// Predicted RMSE per coordinate of the mean of `survivors` clients' clipped updates.
    fn expected_error(&self, survivors: i128) -> PyResult<f64> {
        let survivors = count(survivors, "survivors")?;
        self.check_survivors(survivors)?;
        Ok(self.encoding.expected_mean_error(survivors))
    }

    /// Values per client, before padding.
    #[getter]
    fn dim(&self) -> usize {
        self.params.dim
    }

    /// Length of an encoded vector (and of the unmasked sum).
    #[getter]
    fn padded_dim(&self) -> usize {
        self.encoding.padded_dim()
    }

    /// γ: encoded values are γ × (rotated, clipped update), rounded.
    #[getter]
    fn scale(&self) -> f64 {
        self.encoding.scale()
    }

    /// Modulus bits of the round.
    #[getter]
    fn bits(&self) -> u8 {
        self.encoding.bits()
    }

    /// `"ddg"` or `"skellam"`.
    #[getter]
    fn noise(&self) -> &'static str {
        noise_name(self.params.noise)
    }

    /// Whether the server adds the noise (trusted-server model).
    #[getter]
    fn central(&self) -> bool {
        self.params.placement == NoisePlacement::Central
    }

    /// Noise stddev of the sum over the clipping norm.
    #[getter]
    fn noise_multiplier(&self) -> f64 {
        self.params.noise_multiplier
    }

    /// L2 clipping norm of one client's update.
    #[getter]
    fn clip(&self) -> f64 {
        self.params.clip
    }

    /// Conditional rounding's failure probability.
    #[getter]
    fn beta(&self) -> f64 {
        self.params.beta
    }

    /// Fewest survivors the noise is sized for (the round's `min_clients`).
    #[getter]
    fn get_min_survivors(&self) -> u32 {
        self.min_survivors()
    }

    /// Clients invited to the round.
    #[getter]
    fn clients(&self) -> u32 {
        self.encoding.setup().max_clients
    }

    /// Noise variance each client adds per coordinate (scaled integer domain; 0 if central).
    #[getter]
    fn local_variance(&self) -> f64 {
        self.encoding.local_variance()
    }

    /// L2 sensitivity of the sum in the scaled integer domain.
    #[getter]
    fn l2_sensitivity(&self) -> f64 {
        self.encoding.l2_sensitivity()
    }

    fn __repr__(&self) -> String {
        format!(
            "DpEncoding(noise='{}', central={}, noise_multiplier={:?}, clip={:?}, dim={}, \
             padded_dim={}, min_survivors={}, scale={:.6e})",
            noise_name(self.params.noise),
            if self.central() { "True" } else { "False" },
            self.params.noise_multiplier,
            self.params.clip,
            self.params.dim,
            self.encoding.padded_dim(),
            self.min_survivors(),
            self.encoding.scale()
        )
    }
}

/// The composed Rényi-DP of the rounds released so far: the state a privacy ledger keeps
/// (`orders` and `rdp`, plain lists of floats, to store anywhere and restore with
/// `Accountant(orders, rdp)`).
#[pyclass(module = "secagg._secagg", name = "DpAccountant")]
#[derive(Clone)]
pub struct PyAccountant {
    acc: Accountant,
}

#[pymethods]
impl PyAccountant {
    /// Nothing spent (default orders), or a saved state (`orders` and `rdp` as `.orders` and
    /// `.rdp` gave them).
    #[new]
    #[pyo3(signature = (orders=None, rdp=None))]
    fn new(orders: Option<Vec<f64>>, rdp: Option<Vec<f64>>) -> PyResult<Self> {
        let acc = match (orders, rdp) {
            (None, None) => Accountant::new(),
            (Some(o), None) => Accountant::with_orders(o).map_err(value_error)?,
            (o, Some(r)) => {
                let o = o.unwrap_or_else(secagg_dp::accountant::default_orders);
                Accountant::from_rdp(o, r).map_err(value_error)?
            }
        };
        Ok(Self { acc })
    }

    /// The Rényi orders tracked.
    #[getter]
    fn orders(&self) -> Vec<f64> {
        self.acc.orders().to_vec()
    }

    /// The composed RDP at each order.
    #[getter]
    fn rdp(&self) -> Vec<f64> {
        self.acc.rdp().to_vec()
    }

    /// Adds the cost of `rounds` rounds released with `encoding`, clients Poisson-sampled at
    /// `sampling_rate`. Below 1 the cost is amplified: the ε that follows holds only against
    /// observers of the released results, and only if the clients really are Poisson-sampled
    /// and who took part stays hidden; never against the server, which sees who answers. A
    /// ledger that must hold against the server composes at 1 (the default), as
    /// `secagg.dp.ClientLedger` and the Flower workflow do.
    #[pyo3(signature = (encoding, *, sampling_rate=1.0, rounds=1))]
    fn compose(
        &mut self,
        encoding: &PyDpEncoding,
        sampling_rate: f64,
        rounds: i128,
    ) -> PyResult<()> {
        let rounds: u64 = count(rounds, "rounds")?;
        let enc = encoding.encoding();
        let round = pipeline_round(enc.setup(), enc, sampling_rate, rounds).map_err(value_error)?;
        self.acc.compose(&round);
        Ok(())
    }

    /// A copy with `compose(encoding, ...)` applied, leaving this one as it was.
    #[pyo3(signature = (encoding, *, sampling_rate=1.0, rounds=1))]
    fn composed(
        &self,
        encoding: &PyDpEncoding,
        sampling_rate: f64,
        rounds: i128,
    ) -> PyResult<Self> {
        let mut next = self.clone();
        next.compose(encoding, sampling_rate, rounds)?;
        Ok(next)
    }

    /// A copy with the cost a client that counts on `honest_clients` honest survivors pays
    /// for the round with configuration `config` (`DpParams::client_charge`, the gRPC
    /// client's charge): the round's own encoding with the noise of min(h, m) honest clients
    /// only (about the multiplier z·√(min(h, m)/m)), m its `min_clients`, at sampling rate 1.
    #[pyo3(signature = (config, *, honest_clients))]
    fn client_charged(&self, config: &Bound<'_, PyAny>, honest_clients: i128) -> PyResult<Self> {
        let h: u32 = count(honest_clients, "honest_clients")?;
        if h == 0 {
            return Err(PyValueError::new_err("honest_clients must be at least 1"));
        }
        let c = config_from_dict(config)?;
        let Some(p) = offered(&c)? else {
            return Err(PyValueError::new_err("the round has no DP encoding"));
        };
        let round = p.client_charge(&c, h).map_err(value_error)?;
        let mut next = self.clone();
        next.acc.compose(&round);
        Ok(next)
    }

    /// ε of everything composed so far at `delta` (0 when nothing was spent).
    fn epsilon(&self, delta: f64) -> PyResult<f64> {
        Ok(self.spent(delta)?.0)
    }

    /// `(ε, order)`: ε at `delta` and the Rényi order that gave it (order None when nothing
    /// was spent).
    fn epsilon_order(&self, delta: f64) -> PyResult<(f64, Option<f64>)> {
        self.spent(delta)
    }

    fn __repr__(&self) -> String {
        let spent = self.acc.rdp().iter().any(|r| *r != 0.0);
        format!(
            "DpAccountant({} orders, {})",
            self.acc.orders().len(),
            if spent { "spent" } else { "nothing spent" }
        )
    }
}

impl PyAccountant {
    /// Nothing spent is ε = 0 (the conversion of an all-zero curve is not), as the service's
    /// ledger reports it: `Accountant::spent`.
    fn spent(&self, delta: f64) -> PyResult<(f64, Option<f64>)> {
        Ok(match self.acc.spent(delta).map_err(value_error)? {
            Some(e) => (e.epsilon, Some(e.order)),
            None => (0.0, None),
        })
    }
}

/// A client's own floor on the DP noise of the rounds it joins (`secagg_sim::dp::DpFloor`,
/// the check the gRPC client makes): `secagg.dp.Floor`, which the Flower mod uses.
#[pyclass(module = "secagg._secagg", name = "DpFloor", frozen)]
pub struct PyDpFloor {
    floor: DpFloor,
}

/// The round's DP parameters, if its configuration announces a DP encoding.
fn offered(c: &RoundConfig) -> PyResult<Option<DpParams>> {
    Ok(match input_encoding(c)? {
        InputEncoding::Dp(p) => Some(p),
        _ => None,
    })
}

#[pymethods]
impl PyDpFloor {
    #[new]
    #[pyo3(signature = (min_noise_multiplier, *, honest_clients=None))]
    fn new(min_noise_multiplier: f64, honest_clients: Option<i128>) -> PyResult<Self> {
        let floor = DpFloor {
            min_noise_multiplier,
            honest_clients: opt_count(honest_clients, "honest_clients")?,
        };
        floor.validate().map_err(PyValueError::new_err)?;
        Ok(Self { floor })
    }

    /// Refuses (`ValueError` saying why) a round with configuration `config` whose DP noise is
    /// absent, central, or below the floor once the noise is counted over `honest_clients`
    /// survivors only. The DP parameters are read from the configuration (the session id
    /// covers them), never from anything else the server says.
    fn check(&self, config: &Bound<'_, PyAny>) -> PyResult<()> {
        let c = config_from_dict(config)?;
        let dp = offered(&c)?;
        self.floor
            .check(dp.as_ref(), &c)
            .map_err(PyValueError::new_err)
    }

    /// The noise multiplier the round with configuration `config` reaches from
    /// `honest_clients` survivors alone (its DP encoding's multiplier when none is given).
    fn effective_noise_multiplier(&self, config: &Bound<'_, PyAny>) -> PyResult<f64> {
        let c = config_from_dict(config)?;
        let Some(p) = offered(&c)? else {
            return Err(PyValueError::new_err("the round has no DP encoding"));
        };
        Ok(self.floor.effective_noise_multiplier(&p, &c))
    }

    /// The multiplier the floor is checked against (`DpFloor::real_noise_multiplier`): the
    /// largest Z whose Gaussian Rényi-DP curve bounds, at every integer order, the round's own
    /// encoding with the noise of min(H, m) honest survivors only (a little below
    /// `effective_noise_multiplier`, far below it at few bits).
    fn real_noise_multiplier(&self, config: &Bound<'_, PyAny>) -> PyResult<f64> {
        let c = config_from_dict(config)?;
        let Some(p) = offered(&c)? else {
            return Err(PyValueError::new_err("the round has no DP encoding"));
        };
        self.floor
            .real_noise_multiplier(&p, &c)
            .map_err(PyValueError::new_err)
    }

    /// The smallest noise multiplier accepted.
    #[getter]
    fn min_noise_multiplier(&self) -> f64 {
        self.floor.min_noise_multiplier
    }

    /// The honest survivors counted on (None: the round's `min_clients`).
    #[getter]
    fn honest_clients(&self) -> Option<u32> {
        self.floor.honest_clients
    }

    fn __repr__(&self) -> String {
        match self.floor.honest_clients {
            Some(h) => format!(
                "DpFloor(min_noise_multiplier={:?}, honest_clients={h})",
                self.floor.min_noise_multiplier
            ),
            None => format!(
                "DpFloor(min_noise_multiplier={:?})",
                self.floor.min_noise_multiplier
            ),
        }
    }
}
