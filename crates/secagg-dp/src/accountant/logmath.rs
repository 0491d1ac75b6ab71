//! Arithmetic in log space, so sums of terms like e^{1000} or e^{-1000} keep their precision.

/// ln(e^a + e^b), exact when either side is −∞ (adding zero).
pub(crate) fn log_add(a: f64, b: f64) -> f64 {
    let (lo, hi) = if a < b { (a, b) } else { (b, a) };
    if lo == f64::NEG_INFINITY {
        return hi;
    }
    hi + libm::log1p(libm::exp(lo - hi))
}

/// ln C(n, k) for real n ≥ k ≥ 0 (n need not be an integer: fractional orders use it), via
/// ln|Γ|, as scipy's `gammaln` does.
pub(crate) fn log_comb(n: f64, k: f64) -> f64 {
    libm::lgamma(n + 1.0) - libm::lgamma(k + 1.0) - libm::lgamma(n - k + 1.0)
}

/// ln erfc(x), accurate in the far tail where erfc(x) underflows.
///
/// For x below 25, erfc is computed with relative accuracy (musl's `erfc` evaluates
/// exp(−x²)·R(x)/x there), so its log is accurate; beyond that erfc(x) approaches the
/// smallest normal doubles and the asymptotic series
/// ln erfc(x) = −x² − ln x − ½ln π + ln(1 − 1/(2x²) + 3/(4x⁴) − 15/(8x⁶) + 105/(16x⁸))
/// is exact to double precision (the next term is below 1e-14 there).
pub(crate) fn log_erfc(x: f64) -> f64 {
    if x < 25.0 {
        return libm::log(libm::erfc(x));
    }
    let y = 1.0 / (2.0 * x * x);
    // Σ (−1)^k (2k−1)!! / (2x²)^k for k = 0..4.
    let series = 1.0 - y + 3.0 * y * y - 15.0 * y * y * y + 105.0 * y * y * y * y;
    -x * x - libm::log(x) - 0.5 * libm::log(core::f64::consts::PI) + libm::log(series)
}

/// ln Σ e^{xᵢ}; −∞ for an empty or all −∞ input, +∞ if any term is +∞.
pub(crate) fn log_sum_exp(terms: &[f64]) -> f64 {
    let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if max.is_infinite() {
        return max;
    }
    let sum: f64 = terms.iter().map(|t| libm::exp(t - max)).sum();
    max + libm::log(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_add_matches_direct_sums() {
        let s = log_add(libm::log(3.0), libm::log(5.0));
        assert!((libm::exp(s) - 8.0).abs() < 1e-12);
        assert_eq!(log_add(f64::NEG_INFINITY, 2.0), 2.0);
        // Far apart: the small term still counts at double precision.
        let s = log_add(1000.0, 1000.0);
        assert!((s - (1000.0 + core::f64::consts::LN_2)).abs() < 1e-12);
    }

    #[test]
    fn log_comb_integer_and_fractional() {
        assert!((libm::exp(log_comb(10.0, 3.0)) - 120.0).abs() < 1e-9);
        // C(2.5, 1) = 2.5.
        assert!((libm::exp(log_comb(2.5, 1.0)) - 2.5).abs() < 1e-12);
    }

    #[test]
    fn log_erfc_is_continuous_across_the_switch() {
        // Both branches agree near the switch point (erfc(25) ≈ 8.3e-274 is still normal).
        let direct = libm::log(libm::erfc(24.9));
        let series = {
            let x: f64 = 24.9;
            let y = 1.0 / (2.0 * x * x);
            -x * x - libm::log(x) - 0.5 * libm::log(core::f64::consts::PI)
                + libm::log(1.0 - y + 3.0 * y * y - 15.0 * y * y * y + 105.0 * y * y * y * y)
        };
        assert!((direct - series).abs() < 1e-10, "{direct} vs {series}");
        // Far tail: −x² dominates and nothing underflows.
        let v = log_erfc(100.0);
        assert!(v.is_finite() && (v + 10_000.0 + libm::log(100.0)).abs() < 1.0);
        assert!((log_erfc(0.0)).abs() < 1e-15);
    }

    #[test]
    fn log_sum_exp_edges() {
        assert_eq!(log_sum_exp(&[]), f64::NEG_INFINITY);
        assert_eq!(log_sum_exp(&[1.0, f64::INFINITY]), f64::INFINITY);
        let s = log_sum_exp(&[0.0, 0.0, 0.0, 0.0]);
        assert!((s - libm::log(4.0)).abs() < 1e-15);
    }
}
