//! What one round releases, and its RDP curve.

use alloc::format;
use alloc::vec::Vec;

use super::discrete::{ddg_rdp, ddg_tau, skellam_rdp};
use super::gaussian::poisson_gaussian_rdp;
use super::subsample::poisson_subsampled;
use crate::DpError;

/// KLS Theorem 1 (the τ bound of a sum of discrete Gaussians) assumes σ ≥ 1/2.
const KLS_MIN_LOCAL_VARIANCE: f64 = 0.25;

/// The noise mechanism of a round. Sensitivities and variances of the integer mechanisms are
/// in the scaled integer domain (the pipeline's `DpEncoding` gives them).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mechanism {
    /// Continuous Gaussian noise with stddev `noise_multiplier` × the L2 sensitivity (the
    /// reference curve, and the central model's noise).
    Gaussian {
        /// Noise stddev over L2 sensitivity (z > 0).
        noise_multiplier: f64,
    },
    /// Distributed discrete Gaussian: each of `clients` survivors adds N_Z(0, `local_variance`)
    /// per coordinate.
    DistributedDiscreteGaussian {
        /// L2 sensitivity Δ₂ of the sum (scaled domain).
        l2_sensitivity: f64,
        /// L1 sensitivity Δ₁ of the sum (scaled domain).
        l1_sensitivity: f64,
        /// Each client's discrete Gaussian parameter σ² (scaled domain).
        local_variance: f64,
        /// The number of clients whose noise is summed: the round's minimum survivors.
        clients: u32,
        /// The (padded) dimension d.
        dim: usize,
    },
    /// Skellam noise with total per-coordinate variance `variance` (the sum of the surviving
    /// clients' shares).
    Skellam {
        /// L2 sensitivity Δ₂ (scaled domain).
        l2_sensitivity: f64,
        /// L1 sensitivity Δ₁ (scaled domain).
        l1_sensitivity: f64,
        /// Variance μ of the summed noise per coordinate (scaled domain).
        variance: f64,
    },
}

fn positive(name: &str, v: f64) -> Result<(), DpError> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(DpError(format!(
            "{name} must be a finite number > 0, got {v}"
        )))
    }
}

impl Mechanism {
    fn validate(&self) -> Result<(), DpError> {
        match *self {
            Mechanism::Gaussian { noise_multiplier } => {
                positive("noise multiplier", noise_multiplier)
            }
            Mechanism::DistributedDiscreteGaussian {
                l2_sensitivity,
                l1_sensitivity,
                local_variance,
                clients,
                dim,
            } => {
                positive("L2 sensitivity", l2_sensitivity)?;
                positive("L1 sensitivity", l1_sensitivity)?;
                positive("local noise variance", local_variance)?;
                if clients == 0 {
                    return Err(DpError("the number of clients must be at least 1".into()));
                }
                if dim == 0 {
                    return Err(DpError("the dimension must be at least 1".into()));
                }
                Ok(())
            }
            Mechanism::Skellam {
                l2_sensitivity,
                l1_sensitivity,
                variance,
            } => {
                positive("L2 sensitivity", l2_sensitivity)?;
                positive("L1 sensitivity", l1_sensitivity)?;
                positive("noise variance", variance)
            }
        }
    }
}

/// `count` releases of one mechanism, each over a Poisson sample of the population with rate
/// `sampling_rate`. Built only through [`Round::new`], so its parameters are valid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Round {
    mechanism: Mechanism,
    sampling_rate: f64,
    count: u64,
}

impl Round {
    /// Checks the parameters: q ∈ (0, 1], count ≥ 1, noise and sensitivities finite and > 0.
    pub fn new(mechanism: Mechanism, sampling_rate: f64, count: u64) -> Result<Round, DpError> {
        mechanism.validate()?;
        if !(sampling_rate > 0.0 && sampling_rate <= 1.0) {
            return Err(DpError(format!(
                "the sampling rate must be in (0, 1], got {sampling_rate}"
            )));
        }
        if count == 0 {
            return Err(DpError("the number of rounds must be at least 1".into()));
        }
        Ok(Round {
            mechanism,
            sampling_rate,
            count,
        })
    }

    /// The mechanism.
    pub fn mechanism(&self) -> &Mechanism {
        &self.mechanism
    }

    /// The Poisson sampling rate q.
    pub fn sampling_rate(&self) -> f64 {
        self.sampling_rate
    }

    /// How many releases.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The RDP of all `count` releases at each of `orders` (each > 1).
    pub fn rdp(&self, orders: &[f64]) -> Vec<f64> {
        let per_release = match self.mechanism {
            Mechanism::Gaussian { noise_multiplier } => orders
                .iter()
                .map(|&a| poisson_gaussian_rdp(self.sampling_rate, noise_multiplier, a))
                .collect(),
            Mechanism::DistributedDiscreteGaussian {
                l2_sensitivity,
                l1_sensitivity,
                local_variance,
                clients,
                dim,
            } => {
                let sigma = libm::sqrt(f64::from(clients) * local_variance);
                let tau = ddg_tau(local_variance, clients);
                // One client's discrete Gaussian alone is α·Δ₂²/(2σ²)-RDP (Canonne, Kamath,
                // Steinke 2020), and the others' independent noise only adds privacy: a bound
                // for any σ². KLS Theorem 1 needs σ ≥ 1/2, so below that only this one holds.
                let one_client =
                    |a: f64| a * l2_sensitivity * l2_sensitivity / (2.0 * local_variance);
                let kls_holds = local_variance >= KLS_MIN_LOCAL_VARIANCE;
                self.integer_curve(orders, |a| {
                    let kls = ddg_rdp(a, l2_sensitivity, l1_sensitivity, sigma, tau, dim as f64);
                    if kls_holds {
                        kls.min(one_client(a))
                    } else {
                        one_client(a)
                    }
                })
            }
            Mechanism::Skellam {
                l2_sensitivity,
                l1_sensitivity,
                variance,
            } => self.integer_curve(orders, |a| {
                skellam_rdp(a, l2_sensitivity, l1_sensitivity, variance)
            }),
        };
        let count = self.count as f64;
        per_release
            .into_iter()
            .map(|r: f64| if r == 0.0 { 0.0 } else { r * count })
            .collect()
    }

    /// A curve known at integer orders, charged at ⌈α⌉ (RDP grows with α), amplified by
    /// subsampling when q < 1 (the smaller of the amplified and the plain bound).
    fn integer_curve(&self, orders: &[f64], base: impl Fn(f64) -> f64) -> Vec<f64> {
        let ceil = |a: f64| libm::ceil(a).max(2.0);
        if self.sampling_rate >= 1.0 {
            return orders.iter().map(|&a| base(ceil(a))).collect();
        }
        // The bound at order α needs the plain curve at every integer 2..=α.
        let max = orders.iter().copied().map(ceil).fold(2.0, f64::max);
        let max = if max.is_finite() { max as usize } else { 2 };
        let table: Vec<f64> = (0..=max).map(|l| base(l as f64)).collect();
        orders
            .iter()
            .map(|&a| {
                let c = ceil(a);
                if !c.is_finite() {
                    return f64::INFINITY;
                }
                let alpha = c as usize;
                poisson_subsampled(alpha, self.sampling_rate, &table).min(table[alpha])
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ddg(local_variance: f64, clients: u32) -> Round {
        let m = Mechanism::DistributedDiscreteGaussian {
            l2_sensitivity: 1.0,
            l1_sensitivity: 1.0,
            local_variance,
            clients,
            dim: 1,
        };
        Round::new(m, 1.0, 1).unwrap()
    }

    /// Review of issue 14, N2: two clients with σ² = 0.02 and a unit shift have an exact
    /// Rényi divergence ≥ 49.31 at order 3, but the KLS bound (which needs σ ≥ 1/2) gave
    /// 45.7. Below σ² = 1/4 one client's own bound, α·Δ²/(2σ²), is charged instead.
    #[test]
    fn a_discrete_gaussian_below_the_kls_range_charges_one_clients_bound() {
        let r = ddg(0.02, 2).rdp(&[3.0])[0];
        assert!(r >= 49.31, "{r}");
        assert!((r - 3.0 / (2.0 * 0.02)).abs() < 1e-9, "{r}");
        // In KLS's range with many clients, KLS is far tighter and stays the charge.
        let many = ddg(100.0, 50).rdp(&[3.0])[0];
        assert!(many < 3.0 / (2.0 * 100.0) / 10.0, "{many}");
    }
}
