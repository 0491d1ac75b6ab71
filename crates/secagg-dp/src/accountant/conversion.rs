//! From an RDP curve to (ε, δ)-DP, as `dp-accounting` does it: the improved conversion of
//! Canonne, Kamath, Steinke (2020, Proposition 12 in v4; also Asoodeh et al. 2020, eq. 20),
//!
//! ε = rdp(α) + ln(1 − 1/α) − (ln δ + ln α)/(α − 1),
//!
//! minimised over the orders, with the KL-divergence shortcut δ ≥ √(1 − e^{−rdp}) ⇒ ε = 0.

/// ε for `delta` and the order attaining it. `orders` and `rdp` have equal lengths, orders > 1,
/// rdp ≥ 0 (+∞ allowed), 0 < δ < 1 (the caller validated them). An empty curve gives +∞.
pub(crate) fn epsilon(orders: &[f64], rdp: &[f64], delta: f64) -> (f64, f64) {
    let mut best = (f64::INFINITY, orders.first().copied().unwrap_or(f64::NAN));
    for (&a, &r) in orders.iter().zip(rdp) {
        let eps = if delta * delta + libm::expm1(-r) > 0.0 {
            0.0
        } else if a > 1.01 {
            r + libm::log1p(-1.0 / a) - libm::log(delta * a) / (a - 1.0)
        } else {
            // Too close to 1 for the bound to be numerically stable (nor useful).
            f64::INFINITY
        };
        if eps < best.0 {
            best = (eps, a);
        }
    }
    (best.0.max(0.0), best.1)
}

/// δ for `epsilon` (≥ 0) and the order attaining it: the same bound solved for δ, with the KL
/// bound δ ≤ √(1 − e^{−rdp}) as the alternative at every order.
pub(crate) fn delta(orders: &[f64], rdp: &[f64], epsilon: f64) -> (f64, f64) {
    let mut best = (f64::INFINITY, orders.first().copied().unwrap_or(f64::NAN));
    for (&a, &r) in orders.iter().zip(rdp) {
        let mut log_delta = if r == 0.0 {
            f64::NEG_INFINITY
        } else {
            0.5 * libm::log1p(-libm::exp(-r))
        };
        if a > 1.01 {
            let bound = (a - 1.0) * (r - epsilon + libm::log1p(-1.0 / a)) - libm::log(a);
            log_delta = log_delta.min(bound);
        }
        if log_delta < best.0 {
            best = (log_delta, a);
        }
    }
    (libm::exp(best.0).min(1.0), best.1)
}
