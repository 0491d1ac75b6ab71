//! Exact discrete samplers: every output distribution is exactly the stated one (given a
//! perfect uniform bit source), with no floating point on the sampling path.
//!
//! - [`bernoulli`]: Bernoulli(r/m) for integers r ≤ m (lazy, ~one 64-bit word per coin) and
//!   Bernoulli(exp(−γ)) for rational γ (Canonne, Kamath, Steinke 2020, Algorithm 1).
//! - [`laplace`]: the discrete Laplace distribution (CKS Algorithm 2).
//! - [`gaussian`]: the discrete Gaussian N_Z(0, σ²) for rational σ² (CKS Algorithm 3), with
//!   [`gaussian_table`], an exact alias-table sampler, for σ² ≤ 2^24.
//! - [`poisson`]: Poisson(μ) for rational μ, by rejection from an exact integer alias table.
//! - [`skellam`]: Skellam(μ) = Poisson(μ/2) − Poisson(μ/2), variance μ.
//! - [`noise_rng`]: an AES-128-CTR CSPRNG keyed from the caller's, for the many coins.
//!
//! Each sampler is a struct built once per round (everything that depends only on the
//! parameters is precomputed) with `sample` and a batched `fill`.

mod alias;
pub mod bernoulli;
mod bignum;
pub mod gaussian;
pub mod gaussian_table;
pub mod laplace;
pub mod noise_rng;
pub mod poisson;
pub mod skellam;
pub mod uniform;

pub use gaussian::DiscreteGaussian;
pub use laplace::DiscreteLaplace;
pub use noise_rng::NoiseRng;
pub use poisson::Poisson;
pub use skellam::Skellam;

/// Rounds a positive finite `value` up to a rational `num / 2^shift` with `num < 2^num_bits`
/// and `shift ≤ max_shift`, taking the largest such shift. Returns (num, 2^shift).
pub(crate) fn round_up_dyadic(value: f64, max_shift: u32, num_bits: u32) -> Option<(u128, u128)> {
    if !(value.is_finite() && value > 0.0) {
        return None;
    }
    let mut shift = max_shift as i32;
    while shift >= 0 {
        // Multiplying by a power of two is exact; ceil is exact.
        let scaled = libm::ceil(libm::ldexp(value, shift));
        if scaled < libm::ldexp(1.0, num_bits as i32) {
            return Some((scaled as u128, 1u128 << shift));
        }
        shift -= 1;
    }
    None
}
