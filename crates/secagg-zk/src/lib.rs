//! Zero-knowledge arguments for validated secure-aggregation inputs (issue 11,
//! docs/VALIDATION.md). Self-contained cryptography on ristretto255 with no knowledge of rounds;
//! the round glue lives in `secagg-core` (feature `validate`, not built yet).
//!
//! Built so far (VALIDATION.md §21, steps 1–3):
//! - [`generators`]: every generator of validated rounds, hashed to the group once and kept
//!   (arguments.md §E);
//! - [`transcript`]: the SHA-256 Fiat–Shamir transcript (arguments.md §E);
//! - [`wip`]: the Bulletproofs+ zero-knowledge weighted inner-product argument (Chung, Han, Ju,
//!   Kim, Seo, ASIACRYPT 2022, ePrint 2020/735, §3) on power-of-two lengths: prove, verify,
//!   batch verify;
//! - [`linear`]: the linear-form argument of GHL'21 (ePrint 2021/1397, App. E.3), padded with
//!   the `lpad` generators: prove, verify, batch verify;
//! - [`ghl`]: GHL'21 approximate smallness with flooding (Λ = 128, φ = 56): matrix expansion,
//!   mask, response, bound check, encoding.
//!
//! Not yet: `range.rs` (step 4), `norm.rs`, `bind.rs`, `codec.rs` and the fuzz target (step 5).
//!
//! `no_std + alloc`; the `std` feature (default) adds `std::error::Error` and the process-wide
//! generator cache [`Generators::shared`].
//!
//! # Open questions
//!
//! Design points these modules had to read one way (reported 2026-12-03 for VALIDATION.md):
//!
//! 1. Generator labels: VALIDATION.md §4 writes `"secagg/v3/validate/<name>/<i>"` (reads as a
//!    decimal index), arguments.md §E (normative) `… ‖ "/" ‖ le32(i)`. Built: §E. Single
//!    generators (`g0`, `h`, `r`, `h2`, `f0`) use index 0 (not stated).
//! 2. `hash_to_ristretto255` is built as dalek's `from_uniform_bytes(SHA-512(label))`, as §E's
//!    formula reads, not RFC 9380's `hash_to_ristretto255` (expand_message_xmd with a DST),
//!    which gives different points.
//! 3. Transcript encoding (§E says "length-prefixed records" and "(transcript hash ‖ label ‖
//!    counter)" without widths): built with le64 length prefixes, a first record
//!    `("domain", name)`, a transcript-wide le64 challenge counter, challenges not absorbed
//!    back, zero redrawn (details in [`transcript`]).
//! 4. §E's ternary matrices "by AES-128-CTR keyed from a transcript hash" do not say which bytes
//!    are the key and IV, the counter layout, the bit order, or the entry order. Built
//!    ([`ghl`]): seed = first 32 bytes of SHA-512(state ‖ label ‖ counter) (the challenge
//!    construction), key = seed[..16], IV = seed[16..], `Ctr64LE<Aes128>` as the core's PRG;
//!    row-major entries, two bits each, LSB first, the pair read as a number (1 → +1, 2 → −1,
//!    0 and 3 → 0). ρ (step 6) is keyed by HKDF per §4, not by this.
//! 5. Memory: §14.2 counts 32 B per kept generator (6.4 MB at d = 10^5); decompressed points,
//!    which the MSMs need, are 160 B (≈ 42 MB for G and H at N_pad = 2^17). Built: decompressed.
//! 6. The WIP does not absorb P (the norm verifier wants P as a sum of terms): the caller must
//!    absorb the statement; arguments.md §A.2 absorbs C_u, M_u, V_s and every challenge input, so
//!    the norm transcript does.
//! 7. §E's z width "⌈(log₂ Z_max + 2)/8⌉" is built exactly (least w with Z_max ≤ 2^(8w−2));
//!    with the real logarithm it is 9 bytes, not 8, at M = 64, where floating point says 8.

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod error;
pub mod generators;
pub mod ghl;
pub mod linear;
pub mod transcript;
pub mod wip;

pub use error::{BatchError, Error};
pub use generators::{GeneratorSizes, Generators};
pub use transcript::Transcript;
