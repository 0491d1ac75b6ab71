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
use secagg_dp::plan::{pipeline_round, pipeline_round_over};

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
        self.checked_dim(c, DpEncoding::new(&self.setup(c)).map_err(|e| e.0)?)
    }

    /// The encoding of a validated round (docs/VALIDATION.md §12): γ lowered, if needed, so
    /// that n vectors at the encoding's norm bound cannot wrap the sum
    /// ([`DpEncoding::norm_bounded`]); client-side noise must be the discrete Gaussian.
    pub fn validated_encoding(&self, c: &RoundConfig) -> Result<DpEncoding, String> {
        self.validate()?;
        self.checked_dim(
            c,
            DpEncoding::norm_bounded(&self.setup(c)).map_err(|e| e.0)?,
        )
    }

    fn checked_dim(&self, c: &RoundConfig, enc: DpEncoding) -> Result<DpEncoding, String> {
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
        self.round_cost_with(c, &self.encoding(c)?, sampling_rate)
    }

    /// [`Self::round_cost`] for the round's encoding `enc` (a validated round's γ differs).
    pub fn round_cost_with(
        &self,
        c: &RoundConfig,
        enc: &DpEncoding,
        sampling_rate: f64,
    ) -> Result<Round, String> {
        pipeline_round(&self.setup(c), enc, sampling_rate, 1).map_err(|e| e.0)
    }

    /// What a round costs a client that counts only on `honest_clients` honest survivors'
    /// noise: the round's own encoding (its scale, sensitivity and each client's exact noise
    /// variance) with the noise of min(h, m) clients (m = `min_clients`), at sampling rate 1.
    /// A server that invites fake clients shrinks every honest share of the noise; charging
    /// the announced round would let it spend far more than the ledger says.
    pub fn client_charge(&self, c: &RoundConfig, honest_clients: u32) -> Result<Round, String> {
        let enc = self.encoding(c)?;
        let h = honest_clients.clamp(1, c.min_clients.max(1));
        pipeline_round_over(&self.setup(c), &enc, h, 1.0, 1).map_err(|e| e.0)
    }
}

/// B_enc² a validated DP round announces (docs/VALIDATION.md §12): the encoding's norm bound
/// Δ₂ + N_η squared, rounded up (a hair above it: f64 rounding must never put an honest
/// client's exact integer norm above the bound).
pub fn validated_bound_sq(enc: &DpEncoding) -> Result<u64, String> {
    let b = enc.norm_bound().map_err(|e| e.0)?;
    let sq = (b * b * (1.0 + 1e-12)).ceil();
    if !(1.0..4.6e18).contains(&sq) {
        return Err(format!(
            "the validated DP bound {b:.3e} has no squared bound in 1..2^62"
        ));
    }
    Ok(sq as u64)
}

/// Against whom an ε computed at sampling rate 1 holds: with distributed noise, the server
/// too (it sees who took part, hence rate 1); with central noise (or the continuous Gaussian,
/// which only a server adds) nothing holds against the server, which sees the exact sum.
pub fn epsilon_holds_against(central: bool) -> &'static str {
    if central {
        "observers of the released model only (central noise: the server adds it and sees the \
         exact sum, so no ε holds against it); sampling rate 1"
    } else {
        "the server and observers of the released model (sampling rate 1: the server sees who \
         took part), if the survivors the noise is sized for are honest (a client counts on \
         its own honest_clients)"
    }
}

/// The largest Rényi order at which a floor compares a round with the Gaussian mechanism
/// (the accountant's grid ends at 1024 too: larger orders matter only at absurdly small δ).
pub const FLOOR_MAX_ORDER: u32 = 1024;

/// A client's own floor on the DP noise of the rounds it joins: a server cannot talk it into
/// sending a barely noised update.
///
/// Each client adds a share (zγc)²/m of the noise, m being the survivors the round sizes the
/// noise for (`min_clients`). A malicious server that invites fake clients can announce a
/// large m and shrink every honest share; `honest_clients` = h makes the client count only on
/// h honest survivors. The check is on the round's privacy, not on the announced z: the round
/// with h honest shares must be at most as costly as the Gaussian mechanism at
/// `min_noise_multiplier` at every integer Rényi order ([`DpFloor::real_noise_multiplier`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DpFloor {
    /// The smallest noise multiplier accepted.
    pub min_noise_multiplier: f64,
    /// The honest survivors the client counts on (None: trust the round's `min_clients`).
    pub honest_clients: Option<u32>,
}

impl DpFloor {
    /// Checks the values a user chose; the message says what to change.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.min_noise_multiplier.is_finite() && self.min_noise_multiplier > 0.0) {
            return Err(format!(
                "the minimum noise multiplier must be a positive number, got {}",
                self.min_noise_multiplier
            ));
        }
        if self.honest_clients == Some(0) {
            return Err(String::from(
                "the honest clients counted on must be at least 1",
            ));
        }
        Ok(())
    }

    /// The noise multiplier the round's noise reaches from `honest_clients` survivors alone.
    pub fn effective_noise_multiplier(&self, dp: &DpParams, c: &RoundConfig) -> f64 {
        let m = f64::from(c.min_clients.max(1));
        let h = self.honest_clients.map_or(m, |h| f64::from(h).min(m));
        dp.noise_multiplier * (h / m).sqrt()
    }

    /// The noise multiplier this client can count on for real: the largest Z whose Gaussian
    /// mechanism's Rényi-DP curve, α/(2Z²), bounds the round's at every integer order α in
    /// 2..=[`FLOOR_MAX_ORDER`], the round being its own encoding (scale, the conditional
    /// rounding's sensitivity, each client's exact noise) with the noise of min(h, m) honest
    /// survivors only. A curve bound holds under composition and at every δ; integer orders
    /// are where the accountant evaluates the integer mechanisms. The announced z is over
    /// γ·clip and the sampler's noise parameter: a rounded sensitivity larger than γ·clip, or a
    /// discrete Gaussian whose σ² is so small that its draws are almost always 0, both bring
    /// this below it.
    pub fn real_noise_multiplier(&self, dp: &DpParams, c: &RoundConfig) -> Result<f64, String> {
        let h = self.honest_clients.unwrap_or(c.min_clients);
        let round = dp.client_charge(c, h)?;
        let orders: Vec<f64> = (2..=FLOOR_MAX_ORDER).map(f64::from).collect();
        // Gaussian at multiplier Z: RDP α/(2Z²), so each order allows Z ≤ √(α / (2 ε(α))).
        let z = orders
            .iter()
            .zip(round.rdp(&orders))
            .map(|(&a, e)| {
                if e > 0.0 && e.is_finite() {
                    (a / (2.0 * e)).sqrt()
                } else if e == 0.0 {
                    f64::INFINITY
                } else {
                    0.0
                }
            })
            .fold(f64::INFINITY, f64::min);
        Ok(z)
    }

    /// Refuses a round without DP, with central noise, or whose real noise (see
    /// [`Self::real_noise_multiplier`]) is below the floor.
    pub fn check(&self, dp: Option<&DpParams>, c: &RoundConfig) -> Result<(), String> {
        let min = self.min_noise_multiplier;
        let Some(p) = dp else {
            return Err(format!(
                "offered a round without DP noise; this client requires a noise multiplier ≥ {min}"
            ));
        };
        if p.placement == NoisePlacement::Central {
            return Err(String::from(
                "offered a round with central DP noise; this client requires distributed noise",
            ));
        }
        if p.noise_multiplier < min {
            return Err(format!(
                "offered DP noise multiplier {} below this client's floor {min}",
                p.noise_multiplier
            ));
        }
        let z = self.real_noise_multiplier(p, c)?;
        if z < min {
            let whose = match self.honest_clients {
                Some(h) => format!("the noise of {} honest survivors", h.min(c.min_clients)),
                None => format!("the noise of the round's {} survivors", c.min_clients),
            };
            return Err(format!(
                "offered noise multiplier {} over the clip, but with {whose} and the \
                 sensitivity this client's {}-bit encoding guarantees, the round is only as \
                 private as the Gaussian mechanism at multiplier {z:.4} (Rényi DP at every \
                 order), below this client's floor {min}",
                p.noise_multiplier, c.bits
            ));
        }
        Ok(())
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
    if c.model == secagg_core::ThreatModel::Malicious && m < c.min_clients {
        return Err(format!(
            "--dp-min-survivors {m} is below the {} survivors the malicious-server model needs \
             (⌈(1 − assumed dropout) · n⌉; raise --assumed-dropout to allow fewer)",
            c.min_clients
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

#[cfg(test)]
mod tests {
    use super::*;
    use secagg_dp::accountant::Mechanism;

    #[test]
    fn a_client_charge_counts_only_on_its_honest_clients() {
        let p = DpParams {
            noise: secagg_dp::pipeline::NoiseKind::DiscreteGaussian,
            placement: secagg_dp::pipeline::NoisePlacement::Distributed,
            noise_multiplier: 1.0,
            clip: 1.0,
            beta: DEFAULT_BETA,
            dim: 8,
        };
        let c = config(100);
        let eps = |r: Round| {
            Accountant::new()
                .composed(&r)
                .epsilon(1e-5)
                .unwrap()
                .epsilon
        };
        let announced = eps(p.round_cost(&c, 1.0).unwrap());
        // h ≥ m: the announced multiplier.
        assert!((eps(p.client_charge(&c, 100).unwrap()) - announced).abs() < 1e-9);
        assert!((eps(p.client_charge(&c, 5000).unwrap()) - announced).abs() < 1e-9);
        // 10 honest of 100: z·√0.1, a much larger ε.
        let ten = eps(p.client_charge(&c, 10).unwrap());
        assert!(ten > 3.0 * announced, "{ten} vs {announced}");
    }

    fn config(min_clients: u32) -> RoundConfig {
        RoundConfig {
            round_id: 1,
            round_seed: [0; 32],
            num_clients: 200,
            min_clients,
            degree: 20,
            threshold: 11,
            graph: secagg_core::GraphKind::Harary,
            bits: 32,
            dim: 8,
            prg: secagg_core::PrgKind::Aes128Ctr,
            model: secagg_core::ThreatModel::HonestButCurious,
            pki: false,
            encoding: Vec::new(),
            validation: None,
        }
    }

    fn floor(z: f64, honest: Option<u32>) -> DpFloor {
        DpFloor {
            min_noise_multiplier: z,
            honest_clients: honest,
        }
    }

    /// Issue 14, finding 2: the floor compares the noise with the sensitivity the encoding
    /// guarantees, not the announced z: 8 bits, 16 values and a tiny β make the rounded
    /// sensitivity far larger than γ·clip, and z = 2 is worth ≈ 1.14.
    #[test]
    fn a_client_floor_checks_the_noise_over_the_real_sensitivity() {
        let dp = DpParams {
            noise: NoiseKind::DiscreteGaussian,
            placement: NoisePlacement::Distributed,
            noise_multiplier: 2.0,
            clip: 1.0,
            beta: 1e-300,
            dim: 16,
        };
        let c = RoundConfig {
            bits: 8,
            dim: 16,
            num_clients: 4,
            ..config(2)
        };
        let real = floor(2.0, None).real_noise_multiplier(&dp, &c).unwrap();
        assert!(real > 1.0 && real < 1.3, "{real}");
        let e = floor(2.0, None).check(Some(&dp), &c).unwrap_err();
        assert!(e.contains("multiplier 1.1"), "{e}");
        assert!(floor(real * 0.999, None).check(Some(&dp), &c).is_ok());
        // One honest survivor of two: about √(1/2) of that.
        let one = floor(1.0, Some(1)).real_noise_multiplier(&dp, &c).unwrap();
        assert!(
            (one / (real * 0.5f64.sqrt()) - 1.0).abs() < 0.02,
            "{one} vs {real}"
        );
        // At 32 bits and the default β the real multiplier is the announced one to 1 %.
        let wide = DpParams {
            beta: DEFAULT_BETA,
            dim: 8,
            ..dp
        };
        let r = floor(2.0, None)
            .real_noise_multiplier(&wide, &config(50))
            .unwrap();
        assert!(r < 2.0 && r > 1.98, "{r}");
    }

    /// Adversarial review of issue 14, F2: the client's charge is the round it really takes
    /// part in (its encoding, h honest noise shares), not a round rebuilt at a smaller z,
    /// whose larger scale would shrink the rounding's share of the sensitivity and undercharge
    /// (Skellam, z = 8, 10 clients, 1 honest, 9 bits, 16 values: 1.82 charged for 2.17).
    #[test]
    fn a_client_charge_is_the_round_it_takes_part_in() {
        let dp = DpParams {
            noise: NoiseKind::Skellam,
            placement: NoisePlacement::Distributed,
            noise_multiplier: 8.0,
            clip: 1.0,
            beta: DEFAULT_BETA,
            dim: 16,
        };
        let c = RoundConfig {
            num_clients: 10,
            min_clients: 10,
            bits: 9,
            dim: 16,
            ..config(10)
        };
        let enc = dp.encoding(&c).unwrap();
        let truth = Round::new(
            Mechanism::Skellam {
                l2_sensitivity: enc.l2_sensitivity(),
                l1_sensitivity: enc.l1_sensitivity(),
                variance: enc.noise_variance(1),
            },
            1.0,
            1,
        )
        .unwrap();
        let eps = |r: &Round| Accountant::new().composed(r).epsilon(1e-5).unwrap().epsilon;
        let charged = eps(&dp.client_charge(&c, 1).unwrap());
        assert!(
            (charged / eps(&truth) - 1.0).abs() < 1e-12,
            "{charged} vs {}",
            eps(&truth)
        );
        assert!(charged > 2.1, "{charged}");
    }

    /// Adversarial review of issue 14, F1: a server picks 14 bits for 1,000 clients of one
    /// value, so the pipeline's scale is tiny and each client's discrete Gaussian has σ² =
    /// 0.019: its draws are almost always 0 and the clients send their updates unnoised, while
    /// z·√(noise parameter)/sensitivity still reads 2.5. The floor counts privacy, not the
    /// parameter, and refuses.
    #[test]
    fn a_floor_refuses_a_discrete_gaussian_too_small_to_draw_noise() {
        let dp = DpParams {
            noise: NoiseKind::DiscreteGaussian,
            placement: NoisePlacement::Distributed,
            noise_multiplier: 4.0,
            clip: 1.0,
            beta: DEFAULT_BETA,
            dim: 1,
        };
        let c = RoundConfig {
            num_clients: 1000,
            min_clients: 1000,
            bits: 14,
            dim: 1,
            ..config(1000)
        };
        let enc = dp.encoding(&c).unwrap();
        assert!(enc.local_variance() < 0.02, "{}", enc.local_variance());
        let nominal = enc.noise_variance(1000).sqrt() / enc.l2_sensitivity();
        assert!(nominal > 2.5, "{nominal}");
        let real = floor(2.0, None).real_noise_multiplier(&dp, &c).unwrap();
        assert!(real < 0.1, "{real}");
        let e = floor(2.0, None).check(Some(&dp), &c).unwrap_err();
        assert!(e.contains("below this client's floor"), "{e}");
        // Review of issue 14, N1: z = 16 over 100 honest of 1,000 (σ² = 0.31 each) passed a
        // one-round comparison at δ = 10^-5 (0.997) but composes far worse than the Gaussian
        // at 1; compared at every Rényi order it is worth about 0.53.
        let many = DpParams {
            noise_multiplier: 16.0,
            ..dp
        };
        let real = floor(0.99, Some(100))
            .real_noise_multiplier(&many, &c)
            .unwrap();
        assert!(real < 0.6, "{real}");
        assert!(floor(0.99, Some(100)).check(Some(&many), &c).is_err());
        // Skellam noise of the same variance adds up across clients and keeps its privacy.
        let skellam = DpParams {
            noise: NoiseKind::Skellam,
            ..dp
        };
        assert!(floor(2.0, None).check(Some(&skellam), &c).is_ok());
    }

    #[test]
    fn a_client_floor_counts_only_on_its_honest_clients() {
        let dp = DpParams {
            noise: NoiseKind::DiscreteGaussian,
            placement: NoisePlacement::Distributed,
            noise_multiplier: 2.0,
            clip: 1.0,
            beta: DEFAULT_BETA,
            dim: 8,
        };
        // The real multiplier is a little below the announced one (rounding adds to the
        // sensitivity): a floor of exactly z refuses, one just below accepts.
        assert!(floor(1.99, None).check(Some(&dp), &config(50)).is_ok());
        assert!(floor(2.0, None).check(Some(&dp), &config(50)).is_err());
        assert!(floor(2.1, None).check(Some(&dp), &config(50)).is_err());
        // 25 honest of 100 announced survivors: 2·√(25/100) = 1.
        let f = floor(0.99, Some(25));
        assert!((f.effective_noise_multiplier(&dp, &config(100)) - 1.0).abs() < 1e-12);
        assert!(f.check(Some(&dp), &config(100)).is_ok());
        let e = f.check(Some(&dp), &config(110)).unwrap_err();
        assert!(e.contains("25 honest"), "{e}");
        // More honest clients than the noise is sized for add nothing to count on.
        let many = floor(1.0, Some(500)).effective_noise_multiplier(&dp, &config(50));
        assert_eq!(many, 2.0);
        let e = floor(1.0, None).check(None, &config(50)).unwrap_err();
        assert!(e.contains("without DP"), "{e}");
        let central = DpParams {
            placement: NoisePlacement::Central,
            ..dp
        };
        let e = floor(1.0, None)
            .check(Some(&central), &config(50))
            .unwrap_err();
        assert!(e.contains("central"), "{e}");
        assert!(floor(0.0, None).validate().is_err());
        assert!(floor(1.0, Some(0)).validate().is_err());
        assert!(floor(1.0, Some(3)).validate().is_ok());
    }
}
