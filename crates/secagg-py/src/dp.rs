//! `secagg.dp`: privacy accounting (`epsilon`) and planning (`plan`) for the Gaussian, the
//! distributed discrete Gaussian ("ddg") and Skellam mechanisms, through `secagg_dp` exactly
//! as `secagg dp epsilon|plan` does.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use secagg_dp::accountant::{Accountant, Mechanism, Round};
use secagg_dp::pipeline::{DEFAULT_BETA, DpEncoding, DpSetup, NoiseKind, NoisePlacement};
use secagg_dp::plan::{PlanMechanism, PlanRequest, pipeline_round, plan};

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
    rounds: u64,
    delta: f64,
    clients: Option<u32>,
    dim: Option<usize>,
    bits: Option<u8>,
    clip: Option<f64>,
    min_survivors: Option<u32>,
    central: bool,
    beta: f64,
) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    out.set_item("mechanism", mechanism)?;
    out.set_item("noise_multiplier", noise_multiplier)?;
    out.set_item("sampling_rate", sampling_rate)?;
    out.set_item("rounds", rounds)?;
    out.set_item("delta", delta)?;
    let round = match noise_of(mechanism)? {
        None => Round::new(
            Mechanism::Gaussian { noise_multiplier },
            sampling_rate,
            rounds,
        )
        .map_err(value_error)?,
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
            pipeline_round(&setup, &enc, sampling_rate, rounds).map_err(value_error)?
        }
    };
    let mut acc = Accountant::new();
    acc.compose(&round);
    let spent = acc.epsilon(delta).map_err(value_error)?;
    out.set_item("epsilon", spent.epsilon)?;
    out.set_item("order", spent.order)?;
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
    rounds: u64,
    sampling_rate: f64,
    clients: u32,
    dim: usize,
    bits: u8,
    clip: f64,
    mechanism: &str,
    min_survivors: Option<u32>,
    central: bool,
    beta: f64,
) -> PyResult<Bound<'py, PyDict>> {
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
    // The search evaluates the accountant many times: release the GIL.
    let found = py.detach(|| plan(&req)).map_err(value_error)?;
    let out = PyDict::new(py);
    out.set_item("mechanism", mechanism)?;
    out.set_item("noise_multiplier", found.noise_multiplier)?;
    out.set_item("scale", found.scale)?;
    out.set_item("epsilon", found.spent.epsilon)?;
    out.set_item("order", found.spent.order)?;
    out.set_item("target_epsilon", epsilon)?;
    out.set_item("delta", delta)?;
    out.set_item("rounds", rounds)?;
    out.set_item("sampling_rate", sampling_rate)?;
    out.set_item("min_survivors", req.setup.min_survivors)?;
    out.set_item("rmse_per_coordinate", found.rmse_per_coordinate)?;
    out.set_item("l2_error", found.l2_error)?;
    Ok(out)
}
