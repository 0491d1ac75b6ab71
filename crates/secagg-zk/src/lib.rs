//! Zero-knowledge arguments for validated secure-aggregation inputs (issue 11,
//! docs/VALIDATION.md). Self-contained cryptography on ristretto255 with no knowledge of rounds;
//! the round glue lives in `secagg-core` (feature `validate`, not built yet).
//!
//! Built so far (VALIDATION.md §21, steps 1–5):
//! - [`generators`]: every generator of validated rounds, hashed to the group once and kept
//!   (arguments.md §E);
//! - [`transcript`]: the SHA-256 Fiat–Shamir transcript (arguments.md §E);
//! - [`wip`]: the Bulletproofs+ zero-knowledge weighted inner-product argument (Chung, Han, Ju,
//!   Kim, Seo, ASIACRYPT 2022, ePrint 2020/735, §3) on power-of-two lengths: prove, verify,
//!   batch verify;
//! - [`linear`]: the linear-form argument of GHL'21 (ePrint 2021/1397, App. E.3), padded with
//!   the `lpad` generators: prove, verify, batch verify;
//! - `fold` (private): what the two folding arguments share (round counts, proof words, the
//!   unrolled challenge products, the random-weight batch check);
//! - [`ghl`]: GHL'21 approximate smallness with flooding (Λ = 128, φ = 56): matrix expansion,
//!   mask, response, bound check, encoding;
//! - `range` (std): the adapter to `tari_bulletproofs_plus` 0.5.3's 64-bit range proof on
//!   B_enc²·g₀ − V_s (and V_w, W·g₀ − V_w), never a `seed_nonce` (step 4);
//! - `norm` (std): statement N of arguments.md §A with the padding pinned on both sides (F1):
//!   prove, verify, batch verify;
//! - [`bind`]: statement B of arguments.md §B (one linear proof on Q(e) = C_u + e·T_u + e²·W_u,
//!   padded with `lpad`): prove, verify;
//! - [`par`]: prover threads ([`set_prover_threads`]; std only, 1 by default): the constant-time
//!   MSMs and generator folds split over up to that many threads, the proofs unchanged byte for
//!   byte;
//! - [`codec`]: both proofs' bytes with `MAX_NORM_PROOF_LEN`, `MAX_BIND_PROOF_LEN` and exact
//!   lengths (the norm half with std); fuzz target `fuzz/fuzz_targets/validation_decode.rs`.
//!
//! Not yet: batch verification of binding proofs, and everything of steps 6–10 (the round glue
//! in `secagg-core`, which computes ρ, Y_j, O_u, P_uv and C_u's blinding from the round's secrets).
//!
//! `no_std + alloc`; the `std` feature (default) adds `std::error::Error`, the process-wide
//! generator cache [`Generators::shared`], and `range`, `norm` (and the norm half of `codec`):
//! tari's crate links std unconditionally, so a `no_std` build (the thumbv7em firmware) has the
//! binding argument but cannot make or check a norm proof.
//!
//! # Decisions
//!
//! The design points these modules had to read one way (reported 2026-12-03 as seven open
//! questions) are settled, with the choices made for steps 4–5, in **VALIDATION.md §21.1
//! (D1–D15)**, normative for wire version 3: generator labels (D1), the hash to the group (D2),
//! the transcript encoding (D3), the ternary matrix stream (D4), generator memory (D5), who
//! absorbs the statement (D6), the z width (D7), tari's generators and transcript (D8, D9),
//! the range aggregation (D10), M_x (D11), the norm transcript's records (D12), the norm
//! proof's bytes (D13), the binding transcript's records (D14) and the binding proof's bytes
//! (D15); after the review of steps 4–6: ρ packed with J·d ≤ 2^30 (D24), hedged prover nonces
//! (`nonce`, D25), hashed batch weights and complete batch failure reports (D26).

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod bind;
pub mod codec;
mod error;
mod fold;
pub mod generators;
pub mod ghl;
pub mod linear;
mod nonce;
#[cfg(feature = "std")]
pub mod norm;
pub mod par;
#[cfg(feature = "std")]
pub mod range;
pub mod transcript;
pub mod wip;

pub use error::{BatchError, Error};
pub use par::{prover_threads, set_prover_threads};

/// Wire version of validated rounds (fixes Λ = Λ′ = 128 and φ = 56, F3); absorbed first by
/// every statement and the first byte of every proof encoding.
pub const VERSION: u8 = 3;
/// Largest d (VALIDATION.md §5.3).
pub const MAX_D: usize = 1 << 20;
pub use generators::{GeneratorSizes, Generators};
pub use transcript::Transcript;
