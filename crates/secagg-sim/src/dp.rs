//! Differential privacy for a round: the public DP parameters every party derives the same
//! encoding from, the round's privacy cost, and the ε it brings a population to.
//!
//! The encoding itself (clip, rotate, scale, round, noise, wrap) is `secagg_dp::pipeline`;
//! the accounting is `secagg_dp::accountant`. This module fixes how a round's configuration
//! fills them in, so the simulator, the server, its clients and the Python bindings agree:
//! the rotation seed is the round's public seed, the noise is sized for the round's
//! `min_clients` survivors, and the vector is padded to a power of two.

use secagg_core::RoundConfig;
use secagg_dp::accountant::{Accountant, Epsilon, Round};
pub use secagg_dp::pipeline::DEFAULT_BETA;
use secagg_dp::pipeline::{
    DEFAULT_OVERFLOW_PROBABILITY, DpEncoding, DpSetup, NoiseKind, NoisePlacement,
};
use secagg_dp::plan::pipeline_round;

/// The public DP parameters of a round (what the server announces; every client derives the
/// encoding from them and the round's configuration).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DpParams {
    /// Discrete Gaussian or Skellam noise.
    pub noise: NoiseKind,
    /// Clients add the noise (distributed) or the server does (central, trusted server).
    pub placement: NoisePlacement,
    /// Noise stddev of the sum over the (scaled) L2 clip.
    pub noise_multiplier: f64,
    /// L2 clipping norm of one client's update.
    pub clip: f64,
    /// Conditional rounding's failure probability per try.
    pub beta: f64,
    /// Values per client, before padding.
    pub dim: usize,
}

impl DpParams {
    /// Checks the values a user or a server chose; the message says what to change.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.noise_multiplier.is_finite() && self.noise_multiplier > 0.0) {
            return Err(format!(
                "the DP noise multiplier must be a positive number, got {}",
                self.noise_multiplier
            ));
        }
        if !(self.clip.is_finite() && self.clip > 0.0) {
            return Err(format!(
                "the DP clipping norm must be a positive number, got {}",
                self.clip
            ));
        }
        if !(self.beta > 0.0 && self.beta < 1.0) {
            return Err(format!("beta must be in (0, 1), got {}", self.beta));
        }
        if self.dim == 0 {
            return Err(String::from("the DP dimension must be at least 1"));
        }
        Ok(())
    }

    /// The vector length the protocol masks: `dim` padded to a power of two.
    pub fn masked_dim(&self) -> Result<u32, String> {
        self.dim
            .checked_next_power_of_two()
            .and_then(|d| u32::try_from(d).ok())
            .ok_or_else(|| format!("dimension {} is too large", self.dim))
    }

    /// The pipeline setup for a round with configuration `c`.
    pub fn setup(&self, c: &RoundConfig) -> DpSetup {
        DpSetup {
            dim: self.dim,
            clip: self.clip,
            noise_multiplier: self.noise_multiplier,
            bits: c.bits,
            max_clients: c.num_clients,
            min_survivors: c.min_clients,
            noise: self.noise,
            placement: self.placement,
            beta: self.beta,
            rotation_seed: c.round_seed,
            overflow_probability: DEFAULT_OVERFLOW_PROBABILITY,
        }
    }

    /// The encoding of a round with configuration `c`, checked against the masked length.
    pub fn encoding(&self, c: &RoundConfig) -> Result<DpEncoding, String> {
        self.validate()?;
        let enc = DpEncoding::new(&self.setup(c)).map_err(|e| e.0)?;
        if enc.encoded_dim() != c.dim as usize {
            return Err(format!(
                "the round masks {} values but the DP encoding of {} values needs {}",
                c.dim,
                self.dim,
                enc.encoded_dim()
            ));
        }
        Ok(enc)
    }

    /// The privacy cost of one round with configuration `c`, clients sampled with
    /// `sampling_rate` from their population.
    pub fn round_cost(&self, c: &RoundConfig, sampling_rate: f64) -> Result<Round, String> {
        let enc = self.encoding(c)?;
        pipeline_round(&self.setup(c), &enc, sampling_rate, 1).map_err(|e| e.0)
    }
}

/// Raises the round's `min_clients` to `min_survivors` (never below the threshold): the round
/// then aborts below that many survivors, and each client's noise share is sized for them, so
/// a value near the expected number of survivors adds far less noise than the default (t).
pub fn require_survivors(c: &mut RoundConfig, min_survivors: Option<u32>) -> Result<(), String> {
    let Some(m) = min_survivors else {
        return Ok(());
    };
    if m > c.num_clients {
        return Err(format!(
            "--dp-min-survivors {m} is more than the round's {} clients",
            c.num_clients
        ));
    }
    c.min_clients = m.max(c.threshold);
    c.validate()
}

/// ε after composing `rounds` rounds costing `cost` onto `spent` (None: nothing spent yet).
pub fn epsilon_after(
    spent: Option<&Accountant>,
    cost: &Round,
    rounds: u64,
    delta: f64,
) -> Result<Epsilon, String> {
    let mut acc = spent.cloned().unwrap_or_default();
    for _ in 0..rounds {
        acc.compose(cost);
    }
    acc.epsilon(delta).map_err(|e| e.0)
}
