//! Sensitivity of one client's contribution after clipping, scaling and conditional stochastic
//! rounding (Kairouz, Liu, Steinke, ICML 2021, "The Distributed Discrete Gaussian Mechanism",
//! Theorem 1 / eq. (9)).
//!
//! A client clips x to L2 norm `clip`, rotates it (norm-preserving), multiplies by `scale` (so
//! its norm is at most Δ = scale·clip) and rounds each of the `dim` coordinates stochastically,
//! retrying until the rounded vector's norm is at most
//!
//! B² = min{ Δ² + d/4 + √(2 ln(1/β))·(Δ + √d/2), (Δ + √d)² },
//!
//! which holds on each try with probability ≥ 1 − β. B is then the L2 sensitivity Δ₂ of the
//! sum in the scaled integer domain, and since the rounded vector has integer coordinates,
//! its L1 norm is at most min(√d·B, B²).

/// The L2 bound B of a conditionally rounded vector (scaled domain), from the scaled clip
/// Δ = `scale`·`clip`, the padded dimension `dim` and the rounding failure probability `beta`
/// (0 < β < 1; β = e^{-1/2} is the paper's default). Returns the second branch when
/// β is outside (0, 1).
pub fn rounded_l2_bound(scaled_clip: f64, dim: usize, beta: f64) -> f64 {
    let d = dim as f64;
    let sqrt_d = libm::sqrt(d);
    let loose = (scaled_clip + sqrt_d) * (scaled_clip + sqrt_d);
    if !(beta > 0.0 && beta < 1.0) {
        return libm::sqrt(loose);
    }
    let tight = scaled_clip * scaled_clip
        + d / 4.0
        + libm::sqrt(2.0 * libm::log(1.0 / beta)) * (scaled_clip + sqrt_d / 2.0);
    libm::sqrt(if tight < loose { tight } else { loose })
}

/// The L1 bound of an integer vector with L2 norm at most `l2`: at most √d·l2 (Cauchy-Schwarz)
/// and at most l2² (each non-zero coordinate has |v| ≥ 1, so |v| ≤ v²).
pub fn integer_l1_bound(l2: f64, dim: usize) -> f64 {
    let a = libm::sqrt(dim as f64) * l2;
    let b = l2 * l2;
    if a < b { a } else { b }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_is_the_smaller_branch() {
        // Large Δ relative to √d: the tight branch wins and B ≈ Δ.
        let b = rounded_l2_bound(1000.0, 16, libm::exp(-0.5));
        assert!(b > 1000.0 && b < 1003.0, "{b}");
        // Without a usable β, the loose branch Δ + √d.
        assert_eq!(rounded_l2_bound(10.0, 16, 0.0), 14.0);
        assert_eq!(integer_l1_bound(2.0, 100), 4.0);
        assert_eq!(integer_l1_bound(100.0, 4), 200.0);
    }
}
