//! The proposal side shared by the table samplers ([`super::poisson`] and
//! [`super::gaussian_table`]): an exact integer alias table over body entries (each with its
//! acceptance threshold), tail entries and a reject entry, whose weights sum to 2^32.
//!
//! One 64-bit word gives the bucket (top `index_bits` bits), the alias coin (the next 32) and
//! the first bits of the acceptance uniform (the rest). Almost every body proposal is settled
//! by that word alone; the rest ([`Proposal::Undecided`], [`Proposal::Other`]) are handed back
//! to the sampler, which finishes them exactly with more randomness.
//!
//! [`Envelope::sample_many`] draws the words in blocks through one `fill_bytes` call and runs
//! the common case as a tight loop over the block: with the AES-CTR noise generator this is
//! several times faster than a `next_u64` per proposal.

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use rand_core::CryptoRng;
use zeroize::Zeroize;

use crate::DpError;

/// The integer weights sum to exactly 2^COIN_BITS, so the alias coin is COIN_BITS bits of the
/// word that picks the bucket.
pub(crate) const COIN_BITS: u32 = 32;
/// At most 2^MAX_INDEX_BITS buckets, leaving ≥ 8 bits of the word for the acceptance.
pub(crate) const MAX_INDEX_BITS: u32 = 24;
/// Words drawn per block in [`Envelope::sample_many`] (4 KiB).
const BLOCK_WORDS: usize = 512;

/// A first guess at the envelope's scale z for `len` body entries whose upper bounds sum to
/// `sum`: as large as leaves room for the +1 of each rounded weight, the tails and float
/// slack. The reject entry gets the rest, so its probability (the wasted draws) is about
/// (4·len + 2^12)/2^32 instead of a fixed share; callers shrink z if the exact total is over.
pub(crate) fn initial_scale(sum: f64, len: usize) -> u64 {
    let room = libm::ldexp(1.0, COIN_BITS as i32) - 4.0 * len as f64 - 4096.0;
    libm::floor(room / (sum * (1.0 + 1e-9))).max(0.0) as u64
}

/// One alias bucket, with the acceptance thresholds of both its entries: 16 bytes, so that a
/// draw touches one cache line and large tables stay cache-resident.
#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// Coin below this: the bucket's own entry; otherwise its alias. (A bucket that keeps its
    /// own entry for every coin, threshold 2^32, is stored as its own alias.)
    threshold: u32,
    alias: u32,
    /// The entries' fast acceptance thresholds, shifted to the prefix width (< 2^31; 0 for
    /// non-body entries, which are never accepted by the prefix).
    accept_own: u32,
    accept_alias: u32,
}

/// What one word proposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proposal {
    /// Body entry `idx`, accepted.
    Accepted(usize),
    /// Body entry `idx`; the acceptance uniform starts with the `prefix_bits` bits `prefix`
    /// and is not settled by them.
    Undecided {
        /// The body entry.
        idx: usize,
        /// The uniform's first bits.
        prefix: u64,
        /// How many bits `prefix` has.
        prefix_bits: u32,
    },
    /// Entry `body + which` (tails, then the reject entry and padding).
    Other(usize),
}

impl Proposal {
    /// The acceptance uniform's first 64 bits: the prefix, completed from `rng`.
    #[inline]
    pub(crate) fn first_word<R: CryptoRng + ?Sized>(prefix: u64, bits: u32, rng: &mut R) -> u64 {
        (prefix << (64 - bits)) | (rng.next_u64() >> bits)
    }
}

/// The alias table of a sampler's envelope, with each body entry's acceptance thresholds.
#[derive(Debug, Clone, Default)]
pub(crate) struct Envelope {
    buckets: Vec<Bucket>,
    index_bits: u32,
    body: usize,
    /// Body entry i is accepted when its uniform's first word is below accept_below[i]…
    accept_below: Vec<u64>,
    /// …rejected at or above reject_from[i] (u64::MAX: never by the word alone), and decided
    /// exactly in between.
    reject_from: Vec<u64>,
}

impl Envelope {
    /// The table for integer `weights` (body entries first, then the others) summing to
    /// exactly 2^[`COIN_BITS`]; `acceptance[i]` brackets body entry i's acceptance
    /// probability (lower, upper). `what` names the distribution in errors.
    pub(crate) fn new(
        mut weights: Vec<u128>,
        acceptance: &[(f64, f64)],
        what: &str,
    ) -> Result<Self, DpError> {
        let body = acceptance.len();
        let two64 = libm::ldexp(1.0, 64);
        // Saturating casts floor; an upper bound at 2^64 or above never rejects.
        let accept_below: Vec<u64> = acceptance
            .iter()
            .map(|(lo, _)| (lo * two64) as u64)
            .collect();
        let reject_from = acceptance
            .iter()
            .map(|(_, hi)| {
                let r = libm::ceil(hi * two64);
                if r >= two64 { u64::MAX } else { r as u64 }
            })
            .collect();
        let index_bits = (weights.len() as u64)
            .next_power_of_two()
            .trailing_zeros()
            .max(1);
        if index_bits > MAX_INDEX_BITS || body > weights.len() {
            return Err(DpError(format!(
                "{what} needs too large a table: use a smaller variance"
            )));
        }
        let prefix_bits = 64 - index_bits - COIN_BITS;
        weights.resize(1 << index_bits, 0);
        let (threshold, alias) = build_alias(&weights, 1u128 << COIN_BITS, what)?;
        // prefix_bits ≤ 31 (index_bits ≥ 1), so a shifted threshold fits in 31 bits.
        let accept = |i: usize| {
            accept_below
                .get(i)
                .map_or(0, |a| (a >> (64 - prefix_bits)) as u32)
        };
        let buckets = threshold
            .iter()
            .zip(&alias)
            .enumerate()
            .map(|(i, (&t, &a))| match u32::try_from(t) {
                Ok(t) => Bucket {
                    threshold: t,
                    alias: a,
                    accept_own: accept(i),
                    accept_alias: accept(a as usize),
                },
                // t = 2^32: every coin keeps entry i.
                Err(_) => Bucket {
                    threshold: 0,
                    alias: i as u32,
                    accept_own: accept(i),
                    accept_alias: accept(i),
                },
            })
            .collect();
        Ok(Self {
            buckets,
            index_bits,
            body,
            accept_below,
            reject_from,
        })
    }

    /// Bernoulli(acceptance of body entry `idx`) for a uniform whose first 64 bits are
    /// `first`: settled by the thresholds, or by `exact` (which continues the same uniform)
    /// in the narrow band between them.
    #[inline]
    fn accept_word<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        idx: usize,
        first: u64,
        exact: impl FnOnce(&mut R, usize, u64) -> bool,
    ) -> bool {
        if first < self.accept_below[idx] {
            return true;
        }
        // reject_from < u64::MAX certifies q < 1 − 2^−64 (so even first = u64::MAX rejects);
        // u64::MAX means "never by the word alone". Without this, first = u64::MAX would take
        // the exact path even where the probability is near 0, whose cost grows with γ.
        if self.reject_from[idx] != u64::MAX && first >= self.reject_from[idx] {
            return false;
        }
        exact(rng, idx, first)
    }

    /// Whether the table is empty (a sampler that always returns its one value).
    pub(crate) fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// Decodes one word.
    #[inline(always)]
    pub(crate) fn propose(&self, w: u64) -> Proposal {
        debug_assert!(!self.is_empty(), "proposals need a table");
        let prefix_bits = 64 - self.index_bits - COIN_BITS;
        let b = (w >> (64 - self.index_bits)) as usize;
        // b < 2^index_bits = buckets.len(); the fallback is never taken.
        let Some(bucket) = self.buckets.get(b) else {
            return Proposal::Other(usize::MAX);
        };
        let coin = (w >> prefix_bits) as u32;
        let prefix = (w & ((1u64 << prefix_bits) - 1)) as u32;
        // Own entry or alias without a branch: the choice is a coin flip for many buckets,
        // and a mispredicted branch per sample costs more than the rest of the draw.
        let own = 0u32.wrapping_sub(u32::from(coin < bucket.threshold));
        let alias = bucket.alias;
        let idx = (alias ^ ((b as u32 ^ alias) & own)) as usize;
        let accept = bucket.accept_alias ^ ((bucket.accept_own ^ bucket.accept_alias) & own);
        if prefix < accept {
            // accept > 0 only for body entries.
            Proposal::Accepted(idx)
        } else if idx < self.body {
            Proposal::Undecided {
                idx,
                prefix: u64::from(prefix),
                prefix_bits,
            }
        } else {
            Proposal::Other(idx - self.body)
        }
    }

    /// One sample: `value(idx)` for an accepted body entry; `resolve` finishes the other
    /// proposals (None: draw again).
    #[inline]
    fn sample<R, T>(
        &self,
        rng: &mut R,
        value: impl Fn(usize) -> T,
        mut resolve: impl FnMut(&mut R, Proposal) -> Option<T>,
    ) -> T
    where
        R: CryptoRng + ?Sized,
    {
        loop {
            match self.propose(rng.next_u64()) {
                Proposal::Accepted(idx) => return value(idx),
                p => {
                    if let Some(x) = resolve(rng, p) {
                        return x;
                    }
                }
            }
        }
    }

    /// `count` independent samples, in order, each passed to `emit(i, x)`. Words come in
    /// blocks from one `fill_bytes`; the words of the last block left unused are discarded
    /// (and wiped), never reused.
    fn sample_many<R, T>(
        &self,
        rng: &mut R,
        count: usize,
        value: impl Fn(usize) -> T,
        mut resolve: impl FnMut(&mut R, Proposal) -> Option<T>,
        mut emit: impl FnMut(usize, T),
    ) where
        R: CryptoRng + ?Sized,
    {
        let mut block = [0u8; BLOCK_WORDS * 8];
        let mut done = 0;
        while done < count {
            // A few spare words for the ~1-2% of proposals that are rejected.
            let left = count - done;
            let words = (left + left / 32 + 4).min(BLOCK_WORDS);
            let bytes = &mut block[..words * 8];
            rng.fill_bytes(bytes);
            for chunk in bytes.chunks_exact(8) {
                if done == count {
                    break;
                }
                let mut w = [0u8; 8];
                w.copy_from_slice(chunk);
                match self.propose(u64::from_le_bytes(w)) {
                    Proposal::Accepted(idx) => {
                        emit(done, value(idx));
                        done += 1;
                    }
                    p => {
                        if let Some(x) = resolve(rng, p) {
                            emit(done, x);
                            done += 1;
                        }
                    }
                }
            }
        }
        // The words decided secret noise values.
        block.zeroize();
    }

    /// Sends every body acceptance to the exact decision (tests of the exact path).
    #[cfg(test)]
    pub(crate) fn disable_fast_path(&mut self) {
        self.disable_prefix_path();
        self.reject_from.iter_mut().for_each(|r| *r = u64::MAX);
    }

    /// Only the prefix's fast acceptance off (the second word still decides most draws).
    #[cfg(test)]
    pub(crate) fn disable_prefix_path(&mut self) {
        for b in self.buckets.iter_mut() {
            b.accept_own = 0;
            b.accept_alias = 0;
        }
        self.accept_below.iter_mut().for_each(|a| *a = 0);
    }
}

/// A sampler that draws from an [`Envelope`]: it names a body entry's value, decides exactly
/// the acceptances the thresholds leave open, and handles the other entries (tails, reject).
/// The drawing loops are shared.
pub(crate) trait TableSampler {
    /// What a sample is.
    type Value;

    /// The sampler's envelope.
    fn envelope(&self) -> &Envelope;

    /// The value of body entry `idx`.
    fn value(&self, idx: usize) -> Self::Value;

    /// The exact acceptance of body entry `idx`, continuing the uniform whose first word is
    /// `first` (reached about 2^−40 of the time).
    fn accept_exact<R: CryptoRng + ?Sized>(&self, rng: &mut R, idx: usize, first: u64) -> bool;

    /// Entry `body + which` (a tail, the reject entry or padding): a sample, or None to draw
    /// again.
    fn other<R: CryptoRng + ?Sized>(&self, rng: &mut R, which: usize) -> Option<Self::Value>;

    /// Bernoulli(acceptance of body entry `idx`) with a fresh uniform.
    fn accept_body<R: CryptoRng + ?Sized>(&self, rng: &mut R, idx: usize) -> bool {
        let first = rng.next_u64();
        self.envelope()
            .accept_word(rng, idx, first, |rng, i, f| self.accept_exact(rng, i, f))
    }

    /// Finishes a proposal the word alone did not settle; None to draw again.
    #[inline]
    fn resolve<R: CryptoRng + ?Sized>(&self, rng: &mut R, p: Proposal) -> Option<Self::Value> {
        match p {
            Proposal::Accepted(idx) => Some(self.value(idx)),
            Proposal::Undecided {
                idx,
                prefix,
                prefix_bits,
            } => {
                let first = Proposal::first_word(prefix, prefix_bits, rng);
                self.envelope()
                    .accept_word(rng, idx, first, |rng, i, f| self.accept_exact(rng, i, f))
                    .then(|| self.value(idx))
            }
            Proposal::Other(which) => self.other(rng, which),
        }
    }

    /// One sample.
    #[inline]
    fn draw<R: CryptoRng + ?Sized>(&self, rng: &mut R) -> Self::Value {
        self.envelope()
            .sample(rng, |idx| self.value(idx), |rng, p| self.resolve(rng, p))
    }

    /// `count` independent samples, batched, each passed to `emit(i, x)`.
    fn draw_each<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        count: usize,
        emit: impl FnMut(usize, Self::Value),
    ) {
        self.envelope().sample_many(
            rng,
            count,
            |idx| self.value(idx),
            |rng, p| self.resolve(rng, p),
            emit,
        );
    }
}

/// Walker/Vose alias table with integer weights summing to `total`: bucket i keeps entry i
/// when the coin (uniform in [0, total)) is below threshold[i], else gives alias[i], so
/// entry j is drawn with probability exactly w_j/total.
fn build_alias(weights: &[u128], total: u128, what: &str) -> Result<(Vec<u64>, Vec<u32>), DpError> {
    let n = weights.len() as u128;
    if weights.iter().sum::<u128>() != total || total > u64::MAX as u128 || n > u32::MAX as u128 {
        return Err(DpError(format!(
            "{what}: table of {n} entries is inconsistent: use a smaller variance"
        )));
    }
    // Each of n buckets holds mass `total`; entry i brings w_i·n.
    let mut mass: Vec<u128> = weights.iter().map(|&w| w * n).collect();
    let mut threshold = vec![total as u64; weights.len()];
    let mut alias: Vec<u32> = (0..weights.len() as u32).collect();
    let (mut small, mut large): (Vec<usize>, Vec<usize>) =
        (0..weights.len()).partition(|&i| mass[i] < total);
    while let (Some(s), Some(&l)) = (small.last().copied(), large.last()) {
        small.pop();
        threshold[s] = mass[s] as u64;
        alias[s] = l as u32;
        mass[l] -= total - mass[s];
        if mass[l] < total {
            large.pop();
            small.push(l);
        }
    }
    // Exact integers: whatever is left has mass exactly `total` and keeps itself.
    Ok((threshold, alias))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha8Rng;
    use rand_core::SeedableRng;

    #[test]
    fn alias_is_exact() {
        let w = [3u128, 1, 0, 6];
        let total = 10u128;
        let (thr, alias) = build_alias(&w, total, "test").unwrap();
        // P(i) · n · total = Σ over buckets of the mass each gives to i.
        let n = w.len() as u128;
        let mut got = vec![0u128; w.len()];
        for b in 0..w.len() {
            got[b] += thr[b] as u128;
            got[alias[b] as usize] += total - thr[b] as u128;
        }
        for i in 0..w.len() {
            assert_eq!(got[i], w[i] * n);
        }
    }

    /// Every word decodes as the table says: over all (bucket, coin) pairs an entry is
    /// proposed with probability exactly weight/2^32, and accepted by the prefix only below
    /// its threshold.
    #[test]
    fn proposals_follow_the_weights() {
        let two = 1u128 << COIN_BITS;
        // Three body entries, a tail and the reject entry.
        let w = vec![two / 2, two / 4, two / 8, two / 16, two / 16];
        let env = Envelope::new(w, &[(1.0, 1.0), (0.5, 0.5), (0.0, 0.0)], "test").unwrap();
        assert_eq!(env.index_bits, 3);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut counts = [0u32; 5];
        let mut accepted = [0u32; 3];
        let n = 200_000;
        for _ in 0..n {
            match env.propose(rand_core::Rng::next_u64(&mut rng)) {
                Proposal::Accepted(i) => {
                    counts[i] += 1;
                    accepted[i] += 1;
                }
                Proposal::Undecided { idx, .. } => counts[idx] += 1,
                Proposal::Other(j) => counts[3 + j] += 1,
            }
        }
        let expect = [0.5, 0.25, 0.125, 0.0625, 0.0625];
        for (c, p) in counts.iter().zip(expect) {
            let e = p * n as f64;
            assert!((*c as f64 - e).abs() < 5.0 * libm::sqrt(e), "{counts:?}");
        }
        // Entry 0 accepts (almost) always, entry 1 about half the time, entry 2 never by
        // prefix alone.
        assert!(accepted[0] as f64 > 0.99 * counts[0] as f64);
        let half = accepted[1] as f64 / counts[1] as f64;
        assert!((half - 0.5).abs() < 0.01, "{half}");
        assert_eq!(accepted[2], 0);
    }

    /// Share of words that propose something other than an accepted body entry.
    fn waste(env: &Envelope) -> f64 {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let n = 200_000;
        let other = (0..n)
            .filter(|_| {
                !matches!(
                    env.propose(rand_core::Rng::next_u64(&mut rng)),
                    Proposal::Accepted(_)
                )
            })
            .count();
        other as f64 / n as f64
    }

    /// The envelope hugs the distribution at every size: almost every word is a sample
    /// (a fixed share reserved for rounding once wasted 29% of the draws at σ = 1).
    #[test]
    fn table_samplers_waste_few_draws() {
        use crate::sample::gaussian_table::GaussianTable;
        use crate::sample::poisson::Poisson;
        for var in [1u128, 100, 1 << 20] {
            let w = waste(GaussianTable::new(var, 1).unwrap().envelope());
            assert!(w < 0.002, "σ² = {var}: {w}");
        }
        for mean in [0.5, 50.0, 5e5] {
            let w = waste(Poisson::new(mean).unwrap().envelope());
            assert!(w < 0.002, "μ = {mean}: {w}");
        }
    }

    #[test]
    fn refuses_inconsistent_weights() {
        assert!(Envelope::new(vec![1, 2, 3], &[(0.0, 1.0)], "test").is_err());
        assert!(build_alias(&[1, 2], 4, "test").is_err());
    }
}
