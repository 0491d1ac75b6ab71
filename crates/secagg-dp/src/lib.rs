//! # secagg-dp
//!
//! Differential privacy on top of secure aggregation: each client clips, rotates, scales and
//! rounds its update, adds its share of discrete noise, and wraps it into Z_2^b before masking;
//! the server reverses the encoding after unmasking. An RDP accountant turns the mechanism's
//! parameters into (ε, δ) over many rounds.
//!
//! `no_std + alloc` (with `--no-default-features`) so the client side can sit under the core on
//! devices. Randomness is injected as a [`rand_core::CryptoRng`].
//!
//! Layout:
//! - [`accountant`]: Rényi-DP accounting of rounds, composition and conversion to (ε, δ).
//! - [`plan`]: the noise multiplier for an (ε, δ) budget, with its scale and error.
//! - [`sample`]: exact samplers (Bernoulli, discrete Laplace and Gaussian, Poisson, Skellam).
//! - [`rotation`]: the randomized Hadamard rotation from a public per-round seed.
//! - [`rounding`]: conditional stochastic rounding.
//! - [`pipeline`]: the client encoding (clip, rotate, scale, round, noise, wrap) and its
//!   server-side decoding, distributed or central noise.
//! - [`sensitivity`]: the L2/L1 bounds of a clipped, scaled, conditionally rounded vector.
#![no_std]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod accountant;
pub mod error;
pub mod pipeline;
pub mod plan;
pub mod rotation;
pub mod rounding;
pub mod sample;
pub mod sensitivity;

pub use error::DpError;
