//! Rényi-DP accountant: the privacy cost of rounds of the Gaussian, distributed discrete
//! Gaussian and Skellam mechanisms, amplified by Poisson sampling of clients, composed over
//! rounds and converted to (ε, δ).
//!
//! The state is one RDP value per order ([`Accountant::rdp`]); composition adds curves. A
//! ledger persists that vector and rebuilds the accountant with [`Accountant::from_rdp`], then
//! asks [`Accountant::epsilon_after`] whether the next round still fits its budget.
//!
//! ```
//! use secagg_dp::accountant::{Accountant, Mechanism, Round};
//! let round = Round::new(Mechanism::Gaussian { noise_multiplier: 1.1 }, 0.01, 1000).unwrap();
//! let mut acc = Accountant::new();
//! acc.compose(&round);
//! let spent = acc.epsilon(1e-5).unwrap();
//! assert!(spent.epsilon > 0.5 && spent.epsilon < 5.0);
//! ```
//!
//! Layout: [`orders`] (the grid), `gaussian` (sampled Gaussian, as dp-accounting), `discrete`
//! (DDG and Skellam bounds), `subsample` (Zhu-Wang amplification), `conversion` (to (ε, δ)),
//! [`mechanism`] (what a round releases).

mod conversion;
mod discrete;
mod gaussian;
mod logmath;
pub mod mechanism;
pub mod orders;
mod subsample;

use alloc::format;
use alloc::vec::Vec;

use crate::DpError;
pub use gaussian::poisson_gaussian_rdp;
pub use mechanism::{Mechanism, Round};
pub use orders::default_orders;

/// The largest order accepted: curves at order α may need the plain curve at every integer up
/// to α, so the grid is bounded (dp-accounting's default stops at 1024).
pub const MAX_ORDER: f64 = 65_536.0;

/// An (ε, δ) guarantee's ε and the Rényi order that gave it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Epsilon {
    /// ε (may be +∞ when nothing useful can be said).
    pub epsilon: f64,
    /// The order α at which the conversion was tightest.
    pub order: f64,
}

/// Composed RDP of everything released so far, one value per order.
#[derive(Debug, Clone, PartialEq)]
pub struct Accountant {
    orders: Vec<f64>,
    rdp: Vec<f64>,
}

impl Default for Accountant {
    fn default() -> Self {
        Self::new()
    }
}

fn check_orders(orders: &[f64]) -> Result<(), DpError> {
    if orders.is_empty() {
        return Err(DpError(
            "the list of RDP orders is empty; give at least one order > 1".into(),
        ));
    }
    for &a in orders {
        if !(a > 1.0 && a <= MAX_ORDER) {
            return Err(DpError(format!(
                "RDP order {a} is outside (1, {MAX_ORDER}]; use orders like the default grid"
            )));
        }
    }
    Ok(())
}

fn check_delta(delta: f64) -> Result<(), DpError> {
    if delta > 0.0 && delta < 1.0 {
        Ok(())
    } else {
        Err(DpError(format!("delta must be in (0, 1), got {delta}")))
    }
}

impl Accountant {
    /// Nothing spent yet, on the default orders (dp-accounting's grid).
    pub fn new() -> Self {
        let orders = default_orders();
        let rdp = alloc::vec![0.0; orders.len()];
        Accountant { orders, rdp }
    }

    /// Nothing spent yet, on the given orders (each in (1, [`MAX_ORDER`]]).
    pub fn with_orders(orders: Vec<f64>) -> Result<Self, DpError> {
        check_orders(&orders)?;
        let rdp = alloc::vec![0.0; orders.len()];
        Ok(Accountant { orders, rdp })
    }

    /// Rebuilds an accountant from a saved state: `orders` as in [`Accountant::with_orders`],
    /// `rdp` of the same length with every value ≥ 0 (+∞ allowed: the budget is gone).
    pub fn from_rdp(orders: Vec<f64>, rdp: Vec<f64>) -> Result<Self, DpError> {
        check_orders(&orders)?;
        if orders.len() != rdp.len() {
            return Err(DpError(format!(
                "saved RDP vector has {} values for {} orders; it must have one per order",
                rdp.len(),
                orders.len()
            )));
        }
        if let Some((i, r)) = rdp
            .iter()
            .enumerate()
            .find(|(_, r)| r.is_nan() || **r < 0.0)
        {
            return Err(DpError(format!(
                "saved RDP value {r} at order {} is not ≥ 0; the saved state is corrupt",
                orders[i]
            )));
        }
        Ok(Accountant { orders, rdp })
    }

    /// The Rényi orders tracked.
    pub fn orders(&self) -> &[f64] {
        &self.orders
    }

    /// The composed RDP at each order (what a ledger persists).
    pub fn rdp(&self) -> &[f64] {
        &self.rdp
    }

    /// Adds `round`'s cost.
    pub fn compose(&mut self, round: &Round) {
        let add = round.rdp(&self.orders);
        for (r, a) in self.rdp.iter_mut().zip(add) {
            *r += a;
        }
    }

    /// A copy with `round` composed, leaving `self` as it was.
    pub fn composed(&self, round: &Round) -> Accountant {
        let mut next = self.clone();
        next.compose(round);
        next
    }

    /// The smallest ε over the orders such that everything composed so far is (ε, δ)-DP.
    pub fn epsilon(&self, delta: f64) -> Result<Epsilon, DpError> {
        check_delta(delta)?;
        let (epsilon, order) = conversion::epsilon(&self.orders, &self.rdp, delta);
        Ok(Epsilon { epsilon, order })
    }

    /// ε spent so far, for a ledger: `None` while nothing was composed (an all-zero curve has
    /// no order that attains its ε).
    pub fn spent(&self, delta: f64) -> Result<Option<Epsilon>, DpError> {
        let e = self.epsilon(delta)?;
        Ok((!self.rdp.iter().all(|r| *r == 0.0)).then_some(e))
    }

    /// ε after `round` would be added: what a budget check before a round asks.
    pub fn epsilon_after(&self, round: &Round, delta: f64) -> Result<Epsilon, DpError> {
        self.composed(round).epsilon(delta)
    }

    /// The smallest δ over the orders for the given ε (≥ 0), and the order that gave it.
    pub fn delta(&self, epsilon: f64) -> Result<(f64, f64), DpError> {
        if epsilon.is_nan() || epsilon < 0.0 {
            return Err(DpError(format!("epsilon must be ≥ 0, got {epsilon}")));
        }
        Ok(conversion::delta(&self.orders, &self.rdp, epsilon))
    }
}
