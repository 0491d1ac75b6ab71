//! RDP of the Poisson-subsampled Gaussian mechanism (Mironov, Talwar, Zhang 2019, "Rényi
//! Differential Privacy of the Sampled Gaussian Mechanism"), computed the way Google's
//! `dp-accounting` `RdpAccountant` does, so the two agree to rounding.
//!
//! With sampling rate q and noise multiplier z (noise stddev / L2 sensitivity), the RDP at
//! order α is ln(A_α)/(α−1), where A_α is E over the mixture (1−q)·N(0,z²) + q·N(1,z²) of the
//! α-th power of the likelihood ratio. Integer α: a binomial sum (Sec. 3.2). Fractional α: two
//! converging series over the halves split at z₀ = z²·ln(1/q − 1) + ½ (Sec. 3.3).

use super::logmath::{log_add, log_comb, log_erfc};

/// Series terms tried for fractional orders before giving up on that order (as dp-accounting).
const MAX_FRACTIONAL_TERMS: u32 = 1000;

/// RDP at order `alpha` (> 1) of one Poisson-sampled Gaussian release with sampling rate `q`
/// (in [0, 1]) and noise multiplier `z` (≥ 0). +∞ when unbounded (z = 0, α = ∞) or when the
/// fractional series does not converge (that order is then useless, never wrong).
pub fn poisson_gaussian_rdp(q: f64, z: f64, alpha: f64) -> f64 {
    if q == 0.0 {
        return 0.0;
    }
    if alpha.is_infinite() || z == 0.0 {
        return f64::INFINITY;
    }
    if q == 1.0 {
        return alpha / (2.0 * z * z);
    }
    let log_a = if libm::trunc(alpha) == alpha {
        log_a_integer(q, z, alpha)
    } else {
        log_a_fractional(q, z, alpha)
    };
    // A Rényi divergence is never negative; a tiny negative value is rounding.
    (log_a / (alpha - 1.0)).max(0.0)
}

/// ln A_α for integer α: Σ_{i=0}^{α} C(α,i) q^i (1−q)^{α−i} e^{(i²−i)/(2z²)}.
fn log_a_integer(q: f64, z: f64, alpha: f64) -> f64 {
    let log_q = libm::log(q);
    let log_1mq = libm::log1p(-q);
    let two_var = 2.0 * z * z;
    let mut log_a = f64::NEG_INFINITY;
    let mut i = 0.0;
    while i <= alpha {
        let term = log_comb(alpha, i) + i * log_q + (alpha - i) * log_1mq + (i * i - i) / two_var;
        log_a = log_add(log_a, term);
        i += 1.0;
    }
    log_a
}

/// ln A_α for fractional α: the two tails split at z₀, each a series whose terms eventually
/// decrease; stop when both are decreasing and 30 nats below the running total.
fn log_a_fractional(q: f64, z: f64, alpha: f64) -> f64 {
    let log_q = libm::log(q);
    let log_1mq = libm::log1p(-q);
    let two_var = 2.0 * z * z;
    let z0 = z * z * libm::log(1.0 / q - 1.0) + 0.5;
    let log_half = -core::f64::consts::LN_2;
    let sqrt2_z = core::f64::consts::SQRT_2 * z;
    let (mut log_a0, mut log_a1) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    let (mut last_s0, mut last_s1) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    for step in 0..MAX_FRACTIONAL_TERMS {
        let i = f64::from(step);
        let j = alpha - i;
        let log_coef = log_comb(alpha, i);
        let log_t0 = log_coef + i * log_q + j * log_1mq;
        let log_t1 = log_coef + j * log_q + i * log_1mq;
        let log_e0 = log_half + log_erfc((i - z0) / sqrt2_z);
        let log_e1 = log_half + log_erfc((z0 - j) / sqrt2_z);
        let log_s0 = log_t0 + (i * i - i) / two_var + log_e0;
        let log_s1 = log_t1 + (j * j - j) / two_var + log_e1;
        log_a0 = log_add(log_a0, log_s0);
        log_a1 = log_add(log_a1, log_s1);
        let total = log_add(log_a0, log_a1);
        if log_s0 < last_s0 && log_s1 < last_s1 && log_s0.max(log_s1) < total - 30.0 {
            return total;
        }
        last_s0 = log_s0;
        last_s1 = log_s1;
    }
    f64::INFINITY
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsampled_is_alpha_over_two_z_squared() {
        assert_eq!(poisson_gaussian_rdp(1.0, 2.0, 3.0), 3.0 / 8.0);
        assert_eq!(poisson_gaussian_rdp(0.0, 2.0, 3.0), 0.0);
        assert_eq!(poisson_gaussian_rdp(0.5, 0.0, 3.0), f64::INFINITY);
    }

    #[test]
    fn sampled_at_order_two_has_a_closed_form() {
        // A_2 = (1−q)² + 2q(1−q) + q²·e^{1/z²} = 1 + q²(e^{1/z²} − 1).
        let (q, z) = (0.1, 1.5);
        let want = libm::log(1.0 + q * q * (libm::exp(1.0 / (z * z)) - 1.0));
        let got = poisson_gaussian_rdp(q, z, 2.0);
        assert!((got - want).abs() < 1e-14, "{got} vs {want}");
    }

    #[test]
    fn fractional_orders_sit_between_their_integer_neighbours() {
        let (q, z) = (0.01, 1.1);
        let lo = poisson_gaussian_rdp(q, z, 3.0);
        let mid = poisson_gaussian_rdp(q, z, 3.5);
        let hi = poisson_gaussian_rdp(q, z, 4.0);
        assert!(lo < mid && mid < hi, "{lo} {mid} {hi}");
    }
}
