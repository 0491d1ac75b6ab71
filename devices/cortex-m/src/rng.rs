//! The device's CSPRNG: ChaCha20 with fast key erasure (Bernstein, 2017). Every request runs
//! ChaCha20 under the current key, keeps the first 32 bytes of key stream as the next key and
//! returns the bytes after them, so the state in RAM at any moment (debug port, fault attack)
//! gives no earlier output: not the keys of this round already drawn, nor those of an earlier
//! one. A plain ChaCha20 RNG could be rewound to every byte drawn since boot. The key is
//! zeroized when replaced and on drop, and so is the cipher state (chacha20's `zeroize`).

use chacha20::ChaCha20;
use chacha20::cipher::{KeyIvInit, StreamCipher};
use core::convert::Infallible;
use rand_core::{TryCryptoRng, TryRng};
use zeroize::Zeroizing;

/// Fast-key-erasure ChaCha20, seeded once at boot ([`crate::trng::seed`]).
pub struct DeviceRng {
    key: Zeroizing<[u8; 32]>,
}

impl core::fmt::Debug for DeviceRng {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("DeviceRng(<secret>)")
    }
}

impl DeviceRng {
    /// A generator keyed by `seed` (which must come from an entropy source).
    pub fn new(seed: Zeroizing<[u8; 32]>) -> Self {
        Self { key: seed }
    }

    /// Seeded from the device's entropy source, or the reason there is none.
    pub fn from_entropy() -> Result<Self, crate::trng::EntropyError> {
        crate::trng::seed().map(Self::new)
    }

    fn draw(&mut self, out: &mut [u8]) {
        let mut cipher = ChaCha20::new((&*self.key).into(), (&[0u8; 12]).into());
        let mut next = Zeroizing::new([0u8; 32]);
        cipher.apply_keystream(&mut next[..]);
        out.fill(0);
        cipher.apply_keystream(out);
        // The old key is overwritten here; `cipher` and `next` are zeroized on drop.
        *self.key = *next;
    }
}

impl TryRng for DeviceRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0u8; 4];
        self.draw(&mut b);
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0u8; 8];
        self.draw(&mut b);
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.draw(dst);
        Ok(())
    }
}

impl TryCryptoRng for DeviceRng {}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::Rng;

    fn keystream(key: &[u8; 32], n: usize) -> std::vec::Vec<u8> {
        let mut out = std::vec![0u8; n];
        ChaCha20::new(key.into(), (&[0u8; 12]).into()).apply_keystream(&mut out);
        out
    }

    #[test]
    fn each_request_rekeys_from_the_key_stream_and_returns_what_follows() {
        let seed = [7u8; 32];
        let mut rng = DeviceRng::new(Zeroizing::new(seed));
        let mut a = [0u8; 40];
        rng.fill_bytes(&mut a);
        let ks = keystream(&seed, 72);
        assert_eq!(a[..], ks[32..]);
        // The state is now the first 32 bytes: the seed is gone from it.
        assert_eq!(rng.key[..], ks[..32]);
        assert_ne!(*rng.key, seed);
        let k1: [u8; 32] = *rng.key;
        let b = rng.next_u64();
        assert_eq!(b.to_le_bytes()[..], keystream(&k1, 40)[32..]);
    }

    #[test]
    fn the_state_after_a_draw_does_not_give_the_draw_back() {
        let mut rng = DeviceRng::new(Zeroizing::new([1u8; 32]));
        let mut first = [0u8; 32];
        rng.fill_bytes(&mut first);
        // Everything an attacker reading the state now can compute: its key stream.
        let later = keystream(&rng.key, 4096);
        assert!(later.windows(32).all(|w| w != first));
        assert_ne!(*rng.key, first);
    }

    #[test]
    fn the_secret_is_hidden_from_debug() {
        let rng = DeviceRng::new(Zeroizing::new([0xAB; 32]));
        let shown = std::format!("{rng:?}");
        assert!(!shown.contains("171") && !shown.to_lowercase().contains("ab"));
    }
}
