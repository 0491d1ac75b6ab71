//! The `--dp …` flags shared by `simulate` and `server`.

use clap::{Args, ValueEnum};
use secagg_dp::pipeline::{NoiseKind, NoisePlacement};
use secagg_sim::dp::{DEFAULT_BETA, DpParams};

/// The noise a DP round adds.
#[derive(Clone, Copy, ValueEnum)]
pub enum DpNoiseArg {
    /// Distributed discrete Gaussian (Kairouz, Liu, Steinke 2021).
    Ddg,
    /// Skellam (Agarwal, Kairouz, Liu 2021).
    Skellam,
}

impl DpNoiseArg {
    /// The flag's value.
    pub fn name(self) -> &'static str {
        match self {
            DpNoiseArg::Ddg => "ddg",
            DpNoiseArg::Skellam => "skellam",
        }
    }
}

/// Differential privacy: clients clip, rotate, quantize and add their share of noise before
/// masking, so the server never sees an un-noised sum.
#[derive(Args, Clone)]
pub struct DpArgs {
    /// Release a differentially private mean of float updates with this noise.
    #[arg(long, value_enum)]
    pub dp: Option<DpNoiseArg>,
    /// Noise stddev of the sum over the L2 clipping norm (z).
    #[arg(long, default_value_t = 1.0, requires = "dp")]
    pub dp_noise_multiplier: f64,
    /// L2 clipping norm of one client's update.
    #[arg(long, default_value_t = 1.0, requires = "dp")]
    pub dp_clip: f64,
    /// δ of the reported (ε, δ) guarantee.
    #[arg(long, default_value_t = 1e-5, requires = "dp")]
    pub dp_delta: f64,
    /// Poisson sampling rate of a round's clients from their population (amplification).
    /// `secagg server` refuses any value but 1: it does not sample clients.
    #[arg(long, default_value_t = 1.0, requires = "dp")]
    pub dp_sampling_rate: f64,
    /// The server adds all the noise to the unmasked sum (central DP: the server is trusted
    /// with the un-noised sum, a weaker model than the default distributed noise).
    #[arg(long, requires = "dp")]
    pub dp_central: bool,
    /// Fewest survivors a DP round accepts (default: the Shamir threshold t). Each client's
    /// noise share is sized for this many, so a value near the expected number of survivors
    /// adds much less noise; the round aborts below it.
    #[arg(long, requires = "dp")]
    pub dp_min_survivors: Option<u32>,
}

impl Default for DpArgs {
    /// No DP (the flags' defaults otherwise).
    fn default() -> Self {
        DpArgs {
            dp: None,
            dp_noise_multiplier: 1.0,
            dp_clip: 1.0,
            dp_delta: 1e-5,
            dp_sampling_rate: 1.0,
            dp_central: false,
            dp_min_survivors: None,
        }
    }
}

impl DpArgs {
    /// The public DP parameters for vectors of `dim` values, if `--dp` was given.
    pub fn params(&self, dim: usize) -> Result<Option<DpParams>, String> {
        let Some(noise) = self.dp else {
            return Ok(None);
        };
        if !(self.dp_delta > 0.0 && self.dp_delta < 1.0) {
            return Err(format!(
                "--dp-delta must be in (0, 1), got {}",
                self.dp_delta
            ));
        }
        if !(self.dp_sampling_rate > 0.0 && self.dp_sampling_rate <= 1.0) {
            return Err(format!(
                "--dp-sampling-rate must be in (0, 1], got {}",
                self.dp_sampling_rate
            ));
        }
        let p = DpParams {
            noise: match noise {
                DpNoiseArg::Ddg => NoiseKind::DiscreteGaussian,
                DpNoiseArg::Skellam => NoiseKind::Skellam,
            },
            placement: if self.dp_central {
                NoisePlacement::Central
            } else {
                NoisePlacement::Distributed
            },
            noise_multiplier: self.dp_noise_multiplier,
            clip: self.dp_clip,
            beta: DEFAULT_BETA,
            dim,
        };
        p.validate().map_err(|e| format!("--dp: {e}"))?;
        Ok(Some(p))
    }
}
