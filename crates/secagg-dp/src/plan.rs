//! Planning: the smallest noise multiplier that keeps a training run within an (ε, δ) budget,
//! the scale γ it implies, and the error it costs the released mean.
//!
//! The accountant is monotone in the noise multiplier z for the Gaussian; for DDG and Skellam
//! γ (and with it the rounding's share of the sensitivity) moves with z, so the search keeps
//! the invariant "the upper end meets the budget" and returns that end: the plan is never over
//! budget even where ε(z) is not perfectly monotone.

use alloc::format;

use crate::DpError;
use crate::accountant::{Accountant, Epsilon, Mechanism, Round};
use crate::pipeline::{DpEncoding, DpSetup, NoiseKind, NoisePlacement};

/// The mechanism to plan for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanMechanism {
    /// Continuous Gaussian noise on the sum (the reference; needs a trusted server).
    Gaussian,
    /// Distributed discrete Gaussian through the client pipeline.
    DistributedDiscreteGaussian,
    /// Skellam through the client pipeline.
    Skellam,
}

/// The accounting of one round of the pipeline `setup` (whose encoding is `encoding`), run
/// `rounds` times over Poisson samples with rate `sampling_rate`: what a privacy ledger
/// composes. Sensitivities and variances are the encoding's (scaled integer domain); the
/// noise counted is that of `setup.min_survivors` clients (distributed) or the server's single
/// draw (central).
pub fn pipeline_round(
    setup: &DpSetup,
    encoding: &DpEncoding,
    sampling_rate: f64,
    rounds: u64,
) -> Result<Round, DpError> {
    pipeline_round_over(setup, encoding, setup.min_survivors, sampling_rate, rounds)
}

/// [`pipeline_round`] counting the noise of `noisy_clients` clients only (distributed noise):
/// what a client that counts on that many honest survivors can rely on. The encoding (scale,
/// sensitivity, each client's exact noise variance) is the round's own: only the number of
/// noise shares changes.
pub fn pipeline_round_over(
    setup: &DpSetup,
    encoding: &DpEncoding,
    noisy_clients: u32,
    sampling_rate: f64,
    rounds: u64,
) -> Result<Round, DpError> {
    // Distributed: the clients each add local_variance. Central: one draw of the full
    // variance, i.e. a "sum" of one (τ = 0).
    let (clients, per_client) = match setup.placement {
        NoisePlacement::Distributed => (noisy_clients, encoding.local_variance()),
        NoisePlacement::Central => (1, encoding.noise_variance(setup.min_survivors)),
    };
    let mechanism = match setup.noise {
        NoiseKind::DiscreteGaussian => Mechanism::DistributedDiscreteGaussian {
            l2_sensitivity: encoding.l2_sensitivity(),
            l1_sensitivity: encoding.l1_sensitivity(),
            local_variance: per_client,
            clients,
            dim: encoding.padded_dim(),
        },
        NoiseKind::Skellam => Mechanism::Skellam {
            l2_sensitivity: encoding.l2_sensitivity(),
            l1_sensitivity: encoding.l1_sensitivity(),
            variance: f64::from(clients) * per_client,
        },
    };
    Round::new(mechanism, sampling_rate, rounds)
}

/// What to plan.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanRequest {
    /// Target ε (> 0).
    pub epsilon: f64,
    /// Target δ, in (0, 1).
    pub delta: f64,
    /// Number of rounds (≥ 1).
    pub rounds: u64,
    /// Poisson sampling rate of clients per round, in (0, 1].
    pub sampling_rate: f64,
    /// The noise mechanism.
    pub mechanism: PlanMechanism,
    /// The pipeline's parameters (dimension, clip, bits, clients per round, minimum survivors,
    /// β, placement, …); its `noise_multiplier` is ignored (it is what the plan finds) and, for
    /// [`PlanMechanism::Gaussian`], only `dim`, `clip` and `min_survivors` are used.
    pub setup: DpSetup,
}

/// The plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The noise multiplier z: noise stddev of the sum over the clip norm.
    pub noise_multiplier: f64,
    /// ε reached with z over all rounds (≤ the target) and the order that gave it, at the
    /// request's sampling rate: against observers of the released model only, when q < 1.
    pub spent: Epsilon,
    /// ε of the same rounds at sampling rate 1: what holds against a server, which sees who
    /// took part (equal to `spent` when q = 1).
    pub spent_against_server: Epsilon,
    /// The scale γ (scaled units per unit of input); `None` for the continuous Gaussian.
    pub scale: Option<f64>,
    /// Expected RMSE of one coordinate of the released mean with the minimum survivors: noise
    /// (and, for DDG/Skellam, stochastic rounding), not clipping bias.
    pub rmse_per_coordinate: f64,
    /// Expected L2 error of the released mean vector (RMSE × √dim).
    pub l2_error: f64,
}

/// Noise multipliers searched: below 1e-3 no budget is met in practice, above 1e4 the mean is
/// pure noise.
const Z_MIN: f64 = 1e-3;
const Z_MAX: f64 = 1e4;
/// Bisection steps on log z: the bracket shrinks by 2^-40, far below any meaningful digit.
const STEPS: u32 = 40;

fn check(req: &PlanRequest) -> Result<(), DpError> {
    if !(req.epsilon.is_finite() && req.epsilon > 0.0) {
        return Err(DpError(format!(
            "the target epsilon must be a finite number > 0, got {}",
            req.epsilon
        )));
    }
    if !(req.delta > 0.0 && req.delta < 1.0) {
        return Err(DpError(format!(
            "delta must be in (0, 1), got {}",
            req.delta
        )));
    }
    if req.setup.min_survivors == 0 {
        return Err(DpError(
            "the minimum number of survivors must be at least 1".into(),
        ));
    }
    if !(req.setup.clip.is_finite() && req.setup.clip > 0.0) {
        return Err(DpError(format!(
            "the clip norm must be > 0, got {}",
            req.setup.clip
        )));
    }
    if req.setup.dim == 0 {
        return Err(DpError("the dimension must be at least 1".into()));
    }
    Ok(())
}

/// ε of `req` at noise multiplier `z`, with the encoding (None for the Gaussian).
fn evaluate(req: &PlanRequest, z: f64) -> Result<(Epsilon, Option<DpEncoding>), DpError> {
    let (round, encoding) = match req.mechanism {
        PlanMechanism::Gaussian => (
            Round::new(
                Mechanism::Gaussian {
                    noise_multiplier: z,
                },
                req.sampling_rate,
                req.rounds,
            )?,
            None,
        ),
        PlanMechanism::DistributedDiscreteGaussian | PlanMechanism::Skellam => {
            let mut setup = req.setup.clone();
            setup.noise_multiplier = z;
            setup.noise = match req.mechanism {
                PlanMechanism::Skellam => NoiseKind::Skellam,
                _ => NoiseKind::DiscreteGaussian,
            };
            let encoding = DpEncoding::new(&setup)?;
            (
                pipeline_round(&setup, &encoding, req.sampling_rate, req.rounds)?,
                Some(encoding),
            )
        }
    };
    let mut acc = Accountant::new();
    acc.compose(&round);
    Ok((acc.epsilon(req.delta)?, encoding))
}

/// Finds the smallest noise multiplier (to within 2^-40 in log scale) whose ε over
/// `req.rounds` rounds is at most `req.epsilon`, and what it costs in accuracy.
pub fn plan(req: &PlanRequest) -> Result<Plan, DpError> {
    check(req)?;
    let fits = |z: f64| -> Result<bool, DpError> { Ok(evaluate(req, z)?.0.epsilon <= req.epsilon) };
    // More noise needs a smaller γ to fit in b bits; past some z the encoding is refused.
    // Feasibility is monotone in z, so bisect for the largest feasible z first.
    let mut z_max = Z_MAX;
    if let Err(refusal) = evaluate(req, Z_MAX) {
        // Refused even with the least noise: that refusal is the answer.
        evaluate(req, Z_MIN)?;
        let (mut ok, mut bad) = (libm::log(Z_MIN), libm::log(Z_MAX));
        for _ in 0..STEPS {
            let mid = 0.5 * (ok + bad);
            if evaluate(req, libm::exp(mid)).is_ok() {
                ok = mid;
            } else {
                bad = mid;
            }
        }
        z_max = libm::exp(ok);
        if !fits(z_max)? {
            return Err(DpError(format!(
                "epsilon {} needs more noise than the pipeline can hold (at most noise \
                 multiplier {z_max:.4} fits; beyond it: {refusal}); raise the target \
                 epsilon or the bits, or lower the rounds or the sampling rate",
                req.epsilon
            )));
        }
    } else if !fits(Z_MAX)? {
        return Err(DpError(format!(
            "no noise multiplier up to {Z_MAX} reaches epsilon {} in {} rounds; raise the \
             target epsilon, or lower the rounds or the sampling rate",
            req.epsilon, req.rounds
        )));
    }
    let (mut lo, mut hi) = (libm::log(Z_MIN), libm::log(z_max));
    if fits(Z_MIN)? {
        hi = lo;
    } else {
        for _ in 0..STEPS {
            let mid = 0.5 * (lo + hi);
            // An encoding refused below z_max (not expected: feasibility is monotone) counts
            // as not fitting, which keeps hi feasible.
            if fits(libm::exp(mid)).unwrap_or(false) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
    }
    let z = libm::exp(hi);
    let (spent, encoding) = evaluate(req, z)?;
    let n = f64::from(req.setup.min_survivors);
    let (scale, rmse, l2) = match encoding {
        None => {
            // Noise stddev z·clip on the sum, divided by the n summed clients.
            let rmse = z * req.setup.clip / n;
            (None, rmse, rmse * libm::sqrt(req.setup.dim as f64))
        }
        Some(enc) => {
            let rmse = enc.expected_mean_error(req.setup.min_survivors);
            (
                Some(enc.scale()),
                rmse,
                rmse * libm::sqrt(req.setup.dim as f64),
            )
        }
    };
    let spent_against_server = if req.sampling_rate < 1.0 {
        let full = PlanRequest {
            sampling_rate: 1.0,
            ..req.clone()
        };
        evaluate(&full, z)?.0
    } else {
        spent
    };
    Ok(Plan {
        noise_multiplier: z,
        spent,
        spent_against_server,
        scale,
        rmse_per_coordinate: rmse,
        l2_error: l2,
    })
}
