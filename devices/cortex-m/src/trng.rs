//! The STM32F405's true random number generator (RNG peripheral, RM0090 §24), and the health
//! checks and conditioning that turn raw words from any entropy source into the 32-byte seed
//! of the device's CSPRNG.
//!
//! Driver: turn on the 48 MHz PLL48CLK the RNG runs from (if the board has not), enable the
//! RNG's clock (RCC_AHB2ENR.RNGEN) and the RNG (RNG_CR.RNGEN), discard the first word, then
//! read [`WORDS`] words, each only when SR.DRDY is set and neither SR.SECS (seed error) nor
//! SR.CECS (clock error) is. Every failure is an error, never a weaker seed: the device does
//! not boot without entropy.
//!
//! Health and conditioning ([`condition`], the same for every source): the raw words must all
//! differ (a stuck, constant or periodic source fails; an ideal 32-bit source repeats a word
//! among 64 with probability about 5·10⁻⁷, so [`seed`] tries a second batch before it gives
//! up), then SHA-256 compresses them (2,048 raw bits) into the seed, which must not be zero.
//!
//! **Not tested on hardware.** QEMU's `netduinoplus2` has no RNG model (its registers read as
//! zero, so this driver times out there and the firmware refuses to boot); under QEMU the
//! `qemu` feature reads the host's /dev/urandom through semihosting instead ([`crate::host`]).
//! The register logic below is exercised on the host against a simulated peripheral only.

use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

/// Raw words conditioned into one seed.
pub const WORDS: usize = 64;

/// Polls of SR.DRDY per word before the source counts as absent (a working RNG has a word
/// every 40 periods of its 48 MHz clock, well under 100 polls at any system clock).
pub const POLLS_PER_WORD: u32 = 100_000;

/// Why the device has no seed. The firmware refuses to boot on any of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntropyError {
    /// RNG_SR.CECS: the RNG's clock is missing or too slow.
    ClockError,
    /// RNG_SR.SECS: the analog seed is stuck or faulty.
    SeedError,
    /// No data within [`POLLS_PER_WORD`] polls: no RNG at this address (e.g. under QEMU).
    Timeout,
    /// The source repeated a word: stuck, constant or periodic output.
    Repeated,
    /// Fewer raw words than [`WORDS`] (or the host refused to provide them).
    Unavailable,
    /// The conditioned seed was all zero.
    ZeroSeed,
}

impl EntropyError {
    /// A short reason for the device's log.
    pub fn reason(self) -> &'static str {
        match self {
            EntropyError::ClockError => "RNG clock error (SR.CECS)",
            EntropyError::SeedError => "RNG seed error (SR.SECS)",
            EntropyError::Timeout => "no RNG data (no RNG peripheral?)",
            EntropyError::Repeated => "entropy source repeated a word (stuck or constant)",
            EntropyError::Unavailable => "no entropy source",
            EntropyError::ZeroSeed => "all-zero seed",
        }
    }
}

/// Checks the raw words (all distinct, at least [`WORDS`]) and hashes them into a seed.
pub fn condition(words: &[u32]) -> Result<Zeroizing<[u8; 32]>, EntropyError> {
    if words.len() < WORDS {
        return Err(EntropyError::Unavailable);
    }
    // O(m²) over 64 words: 2,016 comparisons, no allocation.
    for (i, w) in words.iter().enumerate() {
        if words[i + 1..].contains(w) {
            return Err(EntropyError::Repeated);
        }
    }
    let mut h = Sha256::new();
    h.update(b"secagg-device/seed/v1");
    for w in words {
        h.update(w.to_le_bytes());
    }
    let mut seed = Zeroizing::new([0u8; 32]);
    seed.copy_from_slice(&h.finalize());
    if seed.iter().all(|b| *b == 0) {
        return Err(EntropyError::ZeroSeed);
    }
    Ok(seed)
}

/// Register access to an RNG peripheral (the board's, or a simulated one in tests).
pub trait RngRegisters {
    /// Turns on the RNG's clock and sets RNG_CR.RNGEN.
    fn enable(&mut self);
    /// RNG_SR.
    fn status(&mut self) -> u32;
    /// RNG_DR (reading it takes the word).
    fn data(&mut self) -> u32;
}

/// RNG_SR bits.
pub mod sr {
    /// A word is ready in RNG_DR.
    pub const DRDY: u32 = 1 << 0;
    /// Clock error, current status.
    pub const CECS: u32 = 1 << 1;
    /// Seed error, current status.
    pub const SECS: u32 = 1 << 2;
}

fn next_word(rng: &mut impl RngRegisters) -> Result<u32, EntropyError> {
    for _ in 0..POLLS_PER_WORD {
        let s = rng.status();
        if s & sr::SECS != 0 {
            return Err(EntropyError::SeedError);
        }
        if s & sr::CECS != 0 {
            return Err(EntropyError::ClockError);
        }
        if s & sr::DRDY != 0 {
            return Ok(rng.data());
        }
    }
    Err(EntropyError::Timeout)
}

/// One seed from an RNG peripheral: enable, discard the first word, read and condition
/// [`WORDS`] words; a batch that fails the repetition check is retried once.
pub fn seed_from(rng: &mut impl RngRegisters) -> Result<Zeroizing<[u8; 32]>, EntropyError> {
    rng.enable();
    // The first word after enabling is not to be used (RM0090 §24.3.1).
    next_word(rng)?;
    let mut words = [0u32; WORDS];
    let mut result = Err(EntropyError::Unavailable);
    for _ in 0..2 {
        for w in words.iter_mut() {
            *w = match next_word(rng) {
                Ok(w) => w,
                Err(e) => {
                    words.zeroize();
                    return Err(e);
                }
            };
        }
        result = condition(&words);
        if result != Err(EntropyError::Repeated) {
            break;
        }
    }
    words.zeroize();
    result
}

/// The STM32F405's RNG, through its registers.
pub struct Stm32Rng(());

impl Stm32Rng {
    const RCC: usize = 0x4002_3800;
    const RCC_CR: usize = Self::RCC;
    const RCC_PLLCFGR: usize = Self::RCC + 0x04;
    const RCC_AHB2ENR: usize = Self::RCC + 0x34;
    const RNG: usize = 0x5006_0800;
    const RNG_CR: usize = Self::RNG;
    const RNG_SR: usize = Self::RNG + 0x04;
    const RNG_DR: usize = Self::RNG + 0x08;

    /// The peripheral. Its registers are this driver's alone (nothing else in the firmware
    /// touches the RNG or the PLL).
    pub fn take() -> Self {
        Stm32Rng(())
    }

    fn read(addr: usize) -> u32 {
        // SAFETY: a memory-mapped register of the STM32F405 (RM0090 §7.3, §24.4).
        unsafe { (addr as *const u32).read_volatile() }
    }

    fn write(addr: usize, v: u32) {
        // SAFETY: as in `read`; the bits written are documented in RM0090 §7.3, §24.4.
        unsafe { (addr as *mut u32).write_volatile(v) }
    }
}

impl RngRegisters for Stm32Rng {
    fn enable(&mut self) {
        const PLLON: u32 = 1 << 24;
        const PLLRDY: u32 = 1 << 25;
        if Self::read(Self::RCC_CR) & PLLON == 0 {
            // Main PLL from the 16 MHz HSI: /16 = 1 MHz, ×192 = 192 MHz VCO, /2 for PLLP
            // (unused: SYSCLK stays on HSI), /4 = 48 MHz for PLL48CLK.
            let (m, n, p, q) = (16u32, 192u32, 0u32, 4u32);
            let cfg = Self::read(Self::RCC_PLLCFGR) & !0x0F43_7FFF; // PLLQ, SRC, P, N, M
            Self::write(
                Self::RCC_PLLCFGR,
                cfg | m | (n << 6) | (p << 16) | (q << 24),
            );
            Self::write(Self::RCC_CR, Self::read(Self::RCC_CR) | PLLON);
            // Bounded: without a PLL the RNG reports CECS and the seed fails closed.
            for _ in 0..POLLS_PER_WORD {
                if Self::read(Self::RCC_CR) & PLLRDY != 0 {
                    break;
                }
            }
        }
        Self::write(Self::RCC_AHB2ENR, Self::read(Self::RCC_AHB2ENR) | 1 << 6);
        Self::write(Self::RNG_CR, Self::read(Self::RNG_CR) | 1 << 2);
    }

    fn status(&mut self) -> u32 {
        Self::read(Self::RNG_SR)
    }

    fn data(&mut self) -> u32 {
        Self::read(Self::RNG_DR)
    }
}

/// The boot seed from the device's entropy source: the RNG peripheral on a board, or with
/// the `qemu` feature the host's /dev/urandom through semihosting (QEMU has no RNG model).
/// Both go through [`condition`].
pub fn seed() -> Result<Zeroizing<[u8; 32]>, EntropyError> {
    #[cfg(feature = "qemu")]
    {
        let mut words = crate::host::entropy_words().ok_or(EntropyError::Unavailable)?;
        let seed = condition(&words[..]);
        words.zeroize();
        seed
    }
    #[cfg(not(feature = "qemu"))]
    {
        seed_from(&mut Stm32Rng::take())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::vec::Vec;

    /// A simulated RNG peripheral: `words` in order, status bits as given.
    struct Sim {
        enabled: bool,
        words: Vec<u32>,
        status: u32,
        reads: usize,
    }

    impl Sim {
        fn new(words: Vec<u32>) -> Self {
            Sim {
                enabled: false,
                words,
                status: sr::DRDY,
                reads: 0,
            }
        }
    }

    impl RngRegisters for Sim {
        fn enable(&mut self) {
            self.enabled = true;
        }
        fn status(&mut self) -> u32 {
            if self.enabled && self.reads < self.words.len() {
                self.status
            } else {
                self.status & !sr::DRDY
            }
        }
        fn data(&mut self) -> u32 {
            assert!(self.enabled, "read before enabling");
            self.reads += 1;
            self.words[self.reads - 1]
        }
    }

    fn good(n: usize) -> Vec<u32> {
        // Distinct words (an LCG with full period).
        (0..n as u32)
            .map(|i| i.wrapping_mul(2_654_435_761).wrapping_add(12_345))
            .collect()
    }

    #[test]
    fn the_first_word_is_discarded_and_64_are_conditioned() {
        let words = good(1 + WORDS);
        let got = seed_from(&mut Sim::new(words.clone())).unwrap();
        assert_eq!(*got, *condition(&words[1..]).unwrap());
        assert_ne!(*got, *condition(&words[..WORDS]).unwrap());
    }

    #[test]
    fn status_errors_and_silence_fail_closed() {
        let mut s = Sim::new(good(100));
        s.status |= sr::SECS;
        assert_eq!(seed_from(&mut s), Err(EntropyError::SeedError));
        let mut s = Sim::new(good(100));
        s.status |= sr::CECS;
        assert_eq!(seed_from(&mut s), Err(EntropyError::ClockError));
        // No RNG (QEMU: registers read as zero), or a source that stops mid-batch.
        let mut s = Sim::new(good(100));
        s.status = 0;
        assert_eq!(seed_from(&mut s), Err(EntropyError::Timeout));
        assert_eq!(
            seed_from(&mut Sim::new(good(20))),
            Err(EntropyError::Timeout)
        );
    }

    #[test]
    fn stuck_constant_or_periodic_output_is_refused() {
        assert_eq!(
            seed_from(&mut Sim::new(vec![0; 200])),
            Err(EntropyError::Repeated)
        );
        assert_eq!(
            seed_from(&mut Sim::new(vec![0xDEAD_BEEF; 200])),
            Err(EntropyError::Repeated)
        );
        // Period 8 (a 32-byte block served again and again).
        let periodic: Vec<u32> = (0..200).map(|i| good(8)[i % 8]).collect();
        assert_eq!(
            seed_from(&mut Sim::new(periodic.clone())),
            Err(EntropyError::Repeated)
        );
        assert_eq!(condition(&periodic[..WORDS]), Err(EntropyError::Repeated));
        // One repeat in the first batch is retried once with fresh words.
        let mut once = good(1 + 2 * WORDS);
        once[5] = once[9];
        let got = seed_from(&mut Sim::new(once.clone())).unwrap();
        assert_eq!(*got, *condition(&once[1 + WORDS..]).unwrap());
    }

    #[test]
    fn too_few_words_are_refused() {
        assert_eq!(condition(&good(WORDS - 1)), Err(EntropyError::Unavailable));
        assert!(condition(&good(WORDS)).is_ok());
    }
}
