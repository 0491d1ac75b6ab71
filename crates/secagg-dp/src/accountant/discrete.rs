//! Closed-form RDP bounds of the two integer mechanisms, in the scaled integer domain where the
//! clients' rounded vectors and their noise live.
//!
//! - Distributed discrete Gaussian (Kairouz, Liu, Steinke, ICML 2021, Proposition 14 with
//!   Theorem 1's τ; the same expression as `compute_rdp_dgaussian` in
//!   google-research/federated `distributed_dp/accounting_utils.py`): n clients each add
//!   N_Z(0, σ²) to a sum with sensitivities Δ₂, Δ₁ in dimension d. With s² = n·σ² the total
//!   noise parameter and τ = 10·Σ_{k=1}^{n−1} e^{−2π²σ²·k/(k+1)},
//!   ε(α) ≤ min{ α/2·Δ₂²/s² + τd,  α/2·(Δ₂²/s² + 2τΔ₁/s + τ²d),  α/2·(Δ₂/s + τ√d)² }.
//! - Skellam (Agarwal, Kairouz, Liu, NeurIPS 2021, Theorem 3.5 / Corollary 3.6): noise whose
//!   coordinates are Skellam with variance μ (the clients' shares sum to it), integer α > 1:
//!   ε(α) ≤ α·Δ₂²/(2μ) + min{ ((2α−1)·Δ₂² + 6Δ₁)/(4μ²),  3Δ₁/(2μ) }.
//!
//! Both bounds increase with α, and so does the Rényi divergence itself; a fractional order is
//! therefore charged the bound at ⌈α⌉, which is valid for both papers' statements (Skellam's is
//! stated for integer orders only).

use core::f64::consts::PI;

/// Terms of τ summed one by one; beyond, the rest is bounded by its first term times its count.
const TAU_EXACT_TERMS: u32 = 100_000;

/// The τ of KLS Theorem 1: how far a sum of `clients` discrete Gaussians with parameter
/// σ² = `local_variance` may be from a discrete Gaussian.
pub(crate) fn ddg_tau(local_variance: f64, clients: u32) -> f64 {
    let term = |k: u32| {
        let k = f64::from(k);
        libm::exp(-2.0 * PI * PI * local_variance * k / (k + 1.0))
    };
    let exact_end = clients.min(TAU_EXACT_TERMS + 1);
    let mut tau = 0.0;
    for k in 1..exact_end {
        let t = term(k);
        // The terms shrink as k grows (k/(k+1) increases): once one is zero the rest are too.
        if t == 0.0 {
            return 10.0 * tau;
        }
        tau += t;
    }
    if clients > exact_end {
        // Terms k = exact_end..clients−1 are each at most term(exact_end): an upper bound, so
        // the accountant stays conservative for very large rounds.
        tau += f64::from(clients - exact_end) * term(exact_end);
    }
    10.0 * tau
}

/// KLS Proposition 14 at integer order `alpha`: `l2`, `l1` are the sensitivities, `sigma` the
/// total noise stddev parameter √(n·σ²), `tau` from [`ddg_tau`], `dim` the padded dimension.
pub(crate) fn ddg_rdp(alpha: f64, l2: f64, l1: f64, sigma: f64, tau: f64, dim: f64) -> f64 {
    let l2s = l2 / sigma;
    let l1s = l1 / sigma;
    let half = alpha / 2.0;
    let a = half * l2s * l2s + tau * dim;
    let b = half * (l2s * l2s + 2.0 * l1s * tau + tau * tau * dim);
    let c = {
        let x = l2s + libm::sqrt(dim) * tau;
        half * x * x
    };
    a.min(b).min(c)
}

/// Agarwal-Kairouz-Liu Theorem 3.5 at integer order `alpha`, for noise variance `mu`.
pub(crate) fn skellam_rdp(alpha: f64, l2: f64, l1: f64, mu: f64) -> f64 {
    let l2sq = l2 * l2;
    let gaussian = alpha * l2sq / (2.0 * mu);
    let tight = ((2.0 * alpha - 1.0) * l2sq + 6.0 * l1) / (4.0 * mu * mu);
    let coarse = 3.0 * l1 / (2.0 * mu);
    gaussian + tight.min(coarse)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ddg_with_zero_tau_is_the_gaussian_curve() {
        // τ = 0: all three branches collapse to α·Δ₂²/(2s²).
        let v = ddg_rdp(4.0, 3.0, 9.0, 6.0, 0.0, 100.0);
        assert!((v - 4.0 * 9.0 / 72.0).abs() < 1e-15);
    }

    #[test]
    fn tau_vanishes_for_large_local_noise() {
        assert_eq!(ddg_tau(100.0, 1000), 0.0);
        // One client: no sum, no τ.
        assert_eq!(ddg_tau(0.01, 1), 0.0);
        // Small σ: terms ≈ 1 each.
        let t = ddg_tau(1e-6, 11);
        assert!((t - 100.0).abs() < 0.01, "{t}");
        // Beyond the exact terms the tail bound is an upper bound, and close.
        let exact: f64 = 10.0
            * (1..300_000u32)
                .map(|k| {
                    let k = f64::from(k);
                    libm::exp(-2.0 * PI * PI * 0.5 * k / (k + 1.0))
                })
                .sum::<f64>();
        let bounded = ddg_tau(0.5, 300_000);
        assert!(
            bounded >= exact && bounded < exact * (1.0 + 1e-4),
            "{bounded} vs {exact}"
        );
    }

    #[test]
    fn skellam_approaches_gaussian_for_large_variance() {
        let (l2, l1) = (10.0, 50.0);
        let mu = 1e8;
        let g = 8.0 * l2 * l2 / (2.0 * mu);
        let s = skellam_rdp(8.0, l2, l1, mu);
        assert!(s > g && (s - g) / g < 1e-5, "{s} vs {g}");
    }
}
