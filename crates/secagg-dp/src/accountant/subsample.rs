//! Amplification by Poisson subsampling for any mechanism with a known RDP curve: the general
//! upper bound of Zhu & Wang (ICML 2019, "Poisson Subsampled Rényi Differential Privacy",
//! Theorem 6), for integer α ≥ 2 and sampling rate γ ∈ (0, 1):
//!
//! ε'(α) ≤ 1/(α−1) · ln{ (1−γ)^{α−1}(αγ−γ+1) + C(α,2)γ²(1−γ)^{α−2}e^{ε(2)}
//!                        + 3·Σ_{l=3}^{α} C(α,l)γ^l(1−γ)^{α−l}e^{(l−1)ε(l)} }.
//!
//! The same bound is used by google-research's `distributed_dp` accounting for DDG and Skellam
//! (`_compute_rdp_subsampled`), which also takes the minimum with the unsampled curve.

use alloc::vec::Vec;

use super::logmath::{log_comb, log_sum_exp};

/// The bound at integer order `alpha` ≥ 2 for rate `gamma` ∈ (0, 1), where `base[l]` is the
/// unsampled RDP at order l (indices 0 and 1 unused; `base.len()` > `alpha`).
pub(crate) fn poisson_subsampled(alpha: usize, gamma: f64, base: &[f64]) -> f64 {
    let a = alpha as f64;
    let log_g = libm::log(gamma);
    let log_1mg = libm::log1p(-gamma);
    let mut terms = Vec::with_capacity(alpha);
    terms.push((a - 1.0) * log_1mg + libm::log(a * gamma - gamma + 1.0));
    for (l, eps_l) in base.iter().enumerate().take(alpha + 1).skip(2) {
        let lf = l as f64;
        let coef = if l == 2 { 0.0 } else { libm::log(3.0) };
        terms.push(coef + log_comb(a, lf) + lf * log_g + (a - lf) * log_1mg + (lf - 1.0) * eps_l);
    }
    (log_sum_exp(&terms) / (a - 1.0)).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn order_two_has_the_expected_closed_form() {
        // α = 2: ln{(1−γ)(1+γ) + γ²e^{ε(2)}} = ln{1 + γ²(e^{ε(2)} − 1)}.
        let base = vec![0.0, 0.0, 0.5];
        let g = 0.1;
        let want = libm::log(1.0 + g * g * (libm::exp(0.5) - 1.0));
        assert!((poisson_subsampled(2, g, &base) - want).abs() < 1e-15);
    }

    #[test]
    fn amplifies_a_gaussian_curve() {
        let base: Vec<f64> = (0..=32).map(|l| l as f64 / 2.0).collect();
        // At high orders the bound exceeds the plain curve (callers take the minimum).
        for alpha in 2..=8 {
            let sub = poisson_subsampled(alpha, 0.01, &base);
            assert!(sub < base[alpha] / 10.0, "α={alpha}: {sub}");
        }
    }
}
