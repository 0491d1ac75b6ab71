//! # secagg-sim
//!
//! Drives whole secure-aggregation rounds in one process with the real state machines and
//! real cryptography: the engine behind `secagg simulate`, `secagg bench`, the integration
//! tests and the Python bindings.
//!
//! - [`plan`]: turns user-level options (n, d, threat model, optional k/t) into a checked
//!   [`secagg_core::RoundConfig`].
//! - [`harness`]: runs a round with dropouts, duplicates, reordering and tampering.
//! - [`input_encoding`]: the canonical description of how inputs are encoded (float, DP),
//!   carried in the round's configuration so that it is part of the session id.
//! - [`npy`]: reads and writes NumPy `.npy` files.
//! - [`validate`]: validated rounds (`simulate --validate l2=B`, issue 11) with cheaters;
//!   they run with feature `validate`.

pub mod dp;
pub mod harness;
pub mod input_encoding;
pub mod npy;
pub mod plan;
pub mod simulate;
pub mod validate;
