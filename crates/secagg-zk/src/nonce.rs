//! Hedged prover randomness (VALIDATION.md §21.1 D25; merlin's and tari's `TranscriptRng`).
//!
//! Every prover draws its blindings and masks from ChaCha20 keyed by the first 32 bytes of
//!
//!   SHA-512(`secagg/v3/validate/nonce` ‖ record(`prover`, name) ‖ public records ‖ witness
//!           records ‖ 32 bytes from the caller's RNG),
//!
//! records as the transcript's (`le64(|label|) ‖ label ‖ le64(|bytes|) ‖ bytes`; a vector is one
//! record of its elements' fixed-width encodings: scalars 32 bytes, integers 16 bytes le). The public records
//! are the statement (or the transcript state) the proof is for, the witness records the
//! prover's secrets. So a replayed or broken caller RNG still gives fresh nonces whenever the
//! statement or the witness differs (the same x proven for two uploads no longer reuses the GHL
//! mask), and a good RNG keeps them uniform whatever the rest. The same (statement, witness,
//! RNG bytes) gives the same nonces, i.e. the same proof: harmless, it is the same message.
//!
//! The seed is a function of the witness: the hasher (sha2's `zeroize` feature), the digest and
//! the ChaCha20 state (`chacha20`'s `zeroize` feature) are wiped on drop.

use curve25519_dalek::scalar::Scalar;
use rand_core::{CryptoRng, SeedableRng};
use sha2::{Digest, Sha512};
use zeroize::Zeroizing;

pub(crate) use chacha20::ChaCha20Rng as NonceRng;

/// Domain of every nonce seed.
const NONCE: &[u8] = b"secagg/v3/validate/nonce";

/// Collects the inputs of one prover's nonce seed.
pub(crate) struct NonceBuilder {
    h: Sha512,
}

impl NonceBuilder {
    /// A seed for the prover `name` (e.g. `b"norm"`, `b"wip"`).
    pub(crate) fn new(name: &[u8]) -> Self {
        let mut b = NonceBuilder { h: Sha512::new() };
        b.h.update(NONCE);
        b.record(b"prover", name);
        b
    }

    /// One record (public or secret bytes).
    pub(crate) fn record(&mut self, label: &[u8], bytes: &[u8]) -> &mut Self {
        self.h.update((label.len() as u64).to_le_bytes());
        self.h.update(label);
        self.h.update((bytes.len() as u64).to_le_bytes());
        self.h.update(bytes);
        self
    }

    /// The header of a record of `len` bytes whose bytes follow by [`Self::update`].
    fn begin(&mut self, label: &[u8], len: usize) {
        self.h.update((label.len() as u64).to_le_bytes());
        self.h.update(label);
        self.h.update((len as u64).to_le_bytes());
    }

    /// A vector of scalars as one record of their 32-byte encodings.
    pub(crate) fn scalars<'a>(
        &mut self,
        label: &[u8],
        v: impl ExactSizeIterator<Item = &'a Scalar>,
    ) -> &mut Self {
        self.begin(label, 32 * v.len());
        for s in v {
            self.h.update(s.as_bytes());
        }
        self
    }

    /// A vector of integers as one record of their 16-byte little-endian encodings.
    pub(crate) fn ints(
        &mut self,
        label: &[u8],
        v: impl ExactSizeIterator<Item = i128>,
    ) -> &mut Self {
        self.begin(label, 16 * v.len());
        let mut buf = Zeroizing::new([0u8; 16]);
        for x in v {
            buf.copy_from_slice(&x.to_le_bytes());
            self.h.update(buf.as_ref());
        }
        self
    }

    /// The prover's generator: the seed above with 32 fresh bytes from `rng` absorbed last.
    pub(crate) fn finish<R: CryptoRng + ?Sized>(mut self, rng: &mut R) -> NonceRng {
        let mut fresh = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(fresh.as_mut());
        self.record(b"rng", fresh.as_ref());
        let wide = Zeroizing::new(<[u8; 64]>::from(self.h.finalize()));
        let mut seed = Zeroizing::new([0u8; 32]);
        seed.copy_from_slice(&wide[..32]);
        NonceRng::from_seed(*seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::Rng;

    struct Fixed;
    impl rand_core::TryRng for Fixed {
        type Error = core::convert::Infallible;
        fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
            Ok(7)
        }
        fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
            Ok(7)
        }
        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
            dst.fill(7);
            Ok(())
        }
    }
    impl rand_core::TryCryptoRng for Fixed {}

    fn draw(name: &[u8], public: &[u8], secret: i128) -> u64 {
        let mut b = NonceBuilder::new(name);
        b.record(b"public", public).ints(b"x", [secret].into_iter());
        b.finish(&mut Fixed).next_u64()
    }

    /// A constant caller RNG still gives different nonces for another statement, witness or
    /// prover, and the same for the same inputs.
    #[test]
    fn nonces_follow_statement_witness_and_prover() {
        let base = draw(b"norm", b"a", 1);
        assert_eq!(base, draw(b"norm", b"a", 1));
        assert_ne!(base, draw(b"norm", b"b", 1));
        assert_ne!(base, draw(b"norm", b"a", 2));
        assert_ne!(base, draw(b"bind", b"a", 1));
    }
}
