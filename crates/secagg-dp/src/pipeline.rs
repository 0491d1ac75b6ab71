//! The client-side DP pipeline and its server-side inverse, following Kairouz, Liu, Steinke
//! (ICML 2021, distributed discrete Gaussian) and Agarwal, Kairouz, Liu (NeurIPS 2021,
//! Skellam), as TensorFlow Federated's `DistributedDpSumFactory` does:
//!
//! 1. clip x to L2 norm `clip` (NaN/inf refused with the index);
//! 2. pad to the next power of two d and rotate with H·D ([`crate::rotation`]);
//! 3. scale by γ and round with conditional stochastic rounding ([`crate::rounding`]), so the
//!    rounded vector's norm is at most B = `rounded_l2_bound(γ·clip, d, β)`;
//! 4. add this client's share of noise, variance σ²_local = (z·γ·clip)²/min_survivors, so that
//!    the sum over **any** ≥ min_survivors clients has variance ≥ (z·γ·clip)²: dropouts never
//!    bring the noise below the target;
//! 5. wrap into Z_2^b (two's complement, as `secagg_core::encoding::FloatEncoding`).
//!
//! The server decodes the unmasked sum ([`DpEncoding::decode_sum`]): signed values, /γ,
//! inverse rotation, truncation to the original dimension. The result is the noisy sum of the
//! survivors' clipped updates; divide by the survivors' count for the mean.
//!
//! **Central DP** ([`NoisePlacement::Central`]) instead has the server add one noise draw of
//! the full variance to the unmasked sum ([`DpEncoding::add_central_noise`]). It is the
//! weaker, trusted-server model: the server sees the un-noised sum and must be trusted to add
//! the noise.
//!
//! ## Choosing γ
//! The rotation seed is shared, so a coordinate of the rotated sum of n clients is
//! sub-Gaussian with variance proxy ≤ (n·γ·clip)²/d (random signs); rounding moves it by less
//! than n; the noise of all n clients (n·σ²_local, or the central draw) is sub-Gaussian for the
//! discrete Gaussian and has MGF exp(V(cosh λ − 1)) for Skellam. γ is the largest value for
//! which a Chernoff bound with a union over the d coordinates keeps P(any coordinate of the
//! sum leaves (−2^(b−1), 2^(b−1))) ≤ `overflow_probability`, then capped: the noise variance
//! stays within its exact sampler's range; it stays at most [`NOISE_TABLE_VARIANCE`] (where the
//! samplers run from small alias tables) unless γ·clip < 8√d would leave rounding a visible
//! share of the sensitivity; and γ·clip ≤ [`MAX_SCALED_CLIP`] (f64 resolution). Beyond the
//! point where noise dwarfs rounding, a larger γ changes neither privacy nor accuracy: both
//! depend on z, and the rounding's share shrinks only further. The bound is probabilistic over the rotation signs:
//! inputs chosen adversarially against a known seed are out of scope, and a wrap is only
//! visible as a bad aggregate. A γ that gives less than one level per coordinate on average
//! (γ·clip/√d < 1) is refused, with the error naming the constraint that binds.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use rand_core::CryptoRng;
use zeroize::Zeroize;

use crate::DpError;
use crate::rotation::{self, Rotation};
use crate::rounding::{self, MAX_TRIES};
use crate::sample::{DiscreteGaussian, NoiseRng, Skellam, gaussian, skellam};
use crate::sensitivity::{integer_l1_bound, rounded_l2_bound};

/// β = e^−½, the rounding failure probability of Kairouz, Liu, Steinke's experiments.
pub const DEFAULT_BETA: f64 = 0.606_530_659_712_633_4;
/// Default bound on the probability that any coordinate of the sum wraps.
pub const DEFAULT_OVERFLOW_PROBABILITY: f64 = 1e-9;
/// Largest Skellam variance the pipeline asks for (per client, or central): 2^32. The exact
/// sampler's table grows as √variance (~8 MB here), and beyond this γ only shrinks rounding
/// error that the noise already dwarfs.
pub const MAX_SKELLAM_VARIANCE: f64 = 4_294_967_296.0;
/// Noise variance (per client, or central) the pipeline prefers not to exceed: up to 2^24 both
/// exact samplers run from a small alias table (~1-3 MB, cache-friendly, quick to build).
/// γ goes beyond it only as far as needed for γ·clip ≥ 8√d; past that point the noise already
/// dwarfs the rounding error and a larger γ buys no accuracy.
pub const NOISE_TABLE_VARIANCE: f64 = 16_777_216.0;
/// Largest scaled clip γ·clip: 2^40 levels. f64 carries the scaled values exactly enough for
/// the norm bound's slack (about one level) only well below 2^53; finer resolution would not
/// reduce the error anyway.
pub const MAX_SCALED_CLIP: f64 = 1_099_511_627_776.0;

/// The noise distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoiseKind {
    /// Discrete Gaussian (Canonne, Kamath, Steinke; distributed: Kairouz, Liu, Steinke).
    DiscreteGaussian,
    /// Skellam (Agarwal, Kairouz, Liu): closed under sums.
    Skellam,
}

/// Who adds the noise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoisePlacement {
    /// Every client adds its share before masking; the server never sees an un-noised sum.
    Distributed,
    /// The server adds all the noise to the unmasked sum: it must be trusted.
    Central,
}

/// The round's public DP parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct DpSetup {
    /// Length of a client's update.
    pub dim: usize,
    /// L2 clipping norm.
    pub clip: f64,
    /// Noise multiplier z: the sum's noise standard deviation is z·clip (before scaling).
    pub noise_multiplier: f64,
    /// Modulus bits b.
    pub bits: u8,
    /// Most clients whose inputs can be summed (overflow is checked for this many).
    pub max_clients: u32,
    /// Fewest survivors the round accepts: each client's noise share is sized for them.
    pub min_survivors: u32,
    /// Noise distribution.
    pub noise: NoiseKind,
    /// Distributed or central noise.
    pub placement: NoisePlacement,
    /// Conditional rounding failure probability β ∈ (0, 1), default e^−½.
    pub beta: f64,
    /// Public per-round seed of the rotation signs.
    pub rotation_seed: [u8; 32],
    /// Bound on the probability of a modular wrap in any coordinate of the sum.
    pub overflow_probability: f64,
}

impl DpSetup {
    /// Distributed discrete Gaussian with default β and overflow probability.
    pub fn new(
        dim: usize,
        clip: f64,
        noise_multiplier: f64,
        bits: u8,
        max_clients: u32,
        min_survivors: u32,
        rotation_seed: [u8; 32],
    ) -> Self {
        Self {
            dim,
            clip,
            noise_multiplier,
            bits,
            max_clients,
            min_survivors,
            noise: NoiseKind::DiscreteGaussian,
            placement: NoisePlacement::Distributed,
            beta: DEFAULT_BETA,
            rotation_seed,
            overflow_probability: DEFAULT_OVERFLOW_PROBABILITY,
        }
    }
}

/// A built noise sampler (Skellam builds a table: make one per round and reuse it).
#[derive(Debug, Clone)]
pub enum NoiseSampler {
    /// z = 0 (or the placement adds no noise here).
    None,
    /// Discrete Gaussian.
    DiscreteGaussian(DiscreteGaussian),
    /// Skellam.
    Skellam(Skellam),
}

impl NoiseSampler {
    fn new(kind: NoiseKind, variance: f64) -> Result<Self, DpError> {
        if variance == 0.0 {
            return Ok(Self::None);
        }
        Ok(match kind {
            NoiseKind::DiscreteGaussian => Self::DiscreteGaussian(DiscreteGaussian::new(variance)?),
            NoiseKind::Skellam => Self::Skellam(Skellam::new(variance)?),
        })
    }

    /// Adds one independent sample to each value (wrapping mod 2^64, which the mod 2^b wrap
    /// that follows respects).
    pub fn add_to<R: CryptoRng + ?Sized>(&self, values: &mut [i64], rng: &mut R) {
        match self {
            Self::None => {}
            Self::DiscreteGaussian(g) => g.add_to(rng, values),
            Self::Skellam(s) => s.add_to(rng, values),
        }
    }
}

/// The public encoding of one round: everything clients and server must agree on.
#[derive(Debug, Clone)]
pub struct DpEncoding {
    setup: DpSetup,
    padded_dim: usize,
    scale: f64,
    rotation: Rotation,
    l2_sensitivity: f64,
    /// Variance each client adds (the sampler's, rounded up); 0 for central.
    local_variance: f64,
    /// Variance the server adds (central); 0 for distributed.
    central_variance: f64,
    target_variance: f64,
}

fn half_modulus(bits: u8) -> f64 {
    libm::ldexp(1.0, i32::from(bits) - 1)
}

/// Expected squared error per coordinate of one stochastic rounding (uniform fractional
/// parts, which the rotation makes typical): E[f(1−f)] = 1/6.
const ROUNDING_VARIANCE: f64 = 1.0 / 6.0;

impl DpEncoding {
    /// Validates `setup`, picks γ (see the module docs) and derives the public parameters.
    pub fn new(setup: &DpSetup) -> Result<Self, DpError> {
        validate(setup)?;
        let padded_dim = padded(setup)?;
        Self::at_scale(setup, padded_dim, choose_scale(setup, padded_dim)?)
    }

    /// The encoding of a validated round (docs/VALIDATION.md §12): like [`Self::new`], but γ is
    /// lowered, if needed, until `max_clients` encoded vectors of norm at most
    /// [`Self::norm_bound`] cannot wrap the sum: max_clients·(norm bound + 1) < 2^(b−1). A
    /// client's proof of ‖x‖₂ ≤ norm bound then also rules out a wrap, whatever it sends.
    /// Refused for client-side Skellam noise (no 2^−64 tail bound on its norm here) and when
    /// the lowered γ leaves less than one level per coordinate.
    pub fn norm_bounded(setup: &DpSetup) -> Result<Self, DpError> {
        validate(setup)?;
        let padded_dim = padded(setup)?;
        let n = f64::from(setup.max_clients);
        let limit = half_modulus(setup.bits) * (1.0 - 1e-9) - 2.0;
        // The server's central noise is added to the sum mod 2^b too (review rev10, W3).
        let fits = |e: &Self| -> Result<bool, DpError> {
            Ok(n * (e.norm_bound()? + 1.0) + e.central_noise_tail() < limit)
        };
        let top = choose_scale(setup, padded_dim)?;
        let enc = Self::at_scale(setup, padded_dim, top)?;
        if fits(&enc)? {
            return Ok(enc);
        }
        // The norm bound grows with γ: bisect for the largest γ that fits.
        let (mut lo, mut hi) = (0.0f64, top);
        for _ in 0..100 {
            let mid = 0.5 * (lo + hi);
            if fits(&Self::at_scale(setup, padded_dim, mid)?)? {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let levels = lo * setup.clip / libm::sqrt(padded_dim as f64);
        if levels < 1.0 {
            return Err(DpError(format!(
                "a validated round of {} clients in {} bits leaves scale γ = {lo:.3e}, {levels:.3} \
                 quantization levels per coordinate (need ≥ 1): use more --bits or fewer clients",
                setup.max_clients, setup.bits
            )));
        }
        Self::at_scale(setup, padded_dim, lo)
    }

    fn at_scale(setup: &DpSetup, padded_dim: usize, scale: f64) -> Result<Self, DpError> {
        let target_variance = sq(setup.noise_multiplier * scale * setup.clip);
        let m = f64::from(setup.min_survivors);
        let (local_variance, central_variance) = match setup.placement {
            NoisePlacement::Distributed => {
                (sampler_variance(setup.noise, target_variance / m)?, 0.0)
            }
            NoisePlacement::Central => (0.0, sampler_variance(setup.noise, target_variance)?),
        };
        Ok(Self {
            rotation: Rotation::new(&setup.rotation_seed, padded_dim)?,
            l2_sensitivity: rounded_l2_bound(scale * setup.clip, padded_dim, setup.beta),
            setup: setup.clone(),
            padded_dim,
            scale,
            local_variance,
            central_variance,
            target_variance,
        })
    }

    /// The setup this encoding was built from.
    pub fn setup(&self) -> &DpSetup {
        &self.setup
    }

    /// γ: scaled values are γ·(rotated, clipped update).
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Modulus bits b.
    pub fn bits(&self) -> u8 {
        self.setup.bits
    }

    /// The update length clients pass in.
    pub fn dim(&self) -> usize {
        self.setup.dim
    }

    /// The rotation dimension (next power of two).
    pub fn padded_dim(&self) -> usize {
        self.padded_dim
    }

    /// Length of an encoded vector (what is masked and summed): the padded dimension.
    pub fn encoded_dim(&self) -> usize {
        self.padded_dim
    }

    /// L2 sensitivity of the sum in the scaled integer domain: the conditional rounding bound
    /// `rounded_l2_bound(γ·clip, padded_dim, beta)`.
    pub fn l2_sensitivity(&self) -> f64 {
        self.l2_sensitivity
    }

    /// L1 sensitivity (scaled domain) of an integer vector within the L2 bound.
    pub fn l1_sensitivity(&self) -> f64 {
        integer_l1_bound(self.l2_sensitivity, self.padded_dim)
    }

    /// Noise variance each client adds per coordinate (scaled domain; 0 for central noise).
    /// It is the exact sampler's variance, rounded up from target/min_survivors.
    pub fn local_variance(&self) -> f64 {
        self.local_variance
    }

    /// (z·γ·clip)²: the total noise variance per coordinate with min_survivors clients
    /// (scaled domain), the target of the privacy analysis.
    pub fn target_variance(&self) -> f64 {
        self.target_variance
    }

    /// Noise variance per coordinate of the released sum with `survivors` clients, scaled
    /// domain.
    pub fn noise_variance(&self, survivors: u32) -> f64 {
        match self.setup.placement {
            NoisePlacement::Distributed => f64::from(survivors) * self.local_variance,
            NoisePlacement::Central => self.central_variance,
        }
    }

    /// Predicted RMSE per coordinate of the released mean of `survivors` clients' clipped
    /// updates: noise plus stochastic rounding (1/6 per client and coordinate), divided by
    /// γ·survivors. Clipping bias is not included.
    pub fn expected_mean_error(&self, survivors: u32) -> f64 {
        let s = f64::from(survivors.max(1));
        let var = self.noise_variance(survivors) + s * ROUNDING_VARIANCE;
        libm::sqrt(var) / (self.scale * s)
    }

    /// N_η: a bound on the L2 norm of one client's noise share that a draw exceeds with
    /// probability at most 2^−64 (VALIDATION.md §12). The discrete Gaussian N_Z(0, σ²) is
    /// σ-subgaussian (Canonne, Kamath, Steinke 2020), so for d independent coordinates
    /// P(‖η‖² > σ²(d + 2√(d·t) + 2t)) ≤ e^−t (Hsu, Kakade, Zhang 2012, Thm. 1), t = 64·ln 2.
    /// 0 for central noise (clients add none) and z = 0; refused for client-side Skellam.
    pub fn noise_norm_bound(&self) -> Result<f64, DpError> {
        if self.local_variance == 0.0 {
            return Ok(0.0);
        }
        match self.setup.noise {
            NoiseKind::DiscreteGaussian => {
                let t = 64.0 * core::f64::consts::LN_2;
                let d = self.padded_dim as f64;
                // The sampler's σ² is exact; the factor covers f64 rounding here.
                let s2 = self.local_variance * (1.0 + 1e-9);
                Ok(libm::sqrt(s2 * (d + 2.0 * libm::sqrt(d * t) + 2.0 * t)))
            }
            NoiseKind::Skellam => Err(DpError(String::from(
                "client-side Skellam noise has no norm bound here: a validated round with \
                 client-side noise needs the discrete Gaussian (or central noise)",
            ))),
        }
    }

    /// A bound on every coordinate of the server's central noise at once, exceeded with
    /// probability at most 2^−64 (a union over the d coordinates of a two-sided Chernoff
    /// bound: sub-Gaussian for the discrete Gaussian, MGF exp(V(cosh λ − 1)) for Skellam); 0
    /// without central noise.
    pub fn central_noise_tail(&self) -> f64 {
        let v = self.central_variance;
        if v == 0.0 {
            return 0.0;
        }
        // ln(2d / 2^−64): the per-coordinate exponent the union needs.
        let t = 64.0 * core::f64::consts::LN_2 + libm::log(2.0 * self.padded_dim as f64);
        match self.setup.noise {
            NoiseKind::DiscreteGaussian => libm::sqrt(2.0 * v * t),
            NoiseKind::Skellam => {
                // P(X ≥ a) ≤ exp(−g(a)), g(a) = a·asinh(a/V) − V(√(1 + (a/V)²) − 1),
                // increasing in a: bisect for g(a) = t.
                let g = |a: f64| a * libm::asinh(a / v) - v * (libm::sqrt(1.0 + sq(a / v)) - 1.0);
                let mut hi = libm::sqrt(2.0 * v * t).max(1.0);
                while g(hi) < t {
                    hi *= 2.0;
                }
                let mut lo = 0.0;
                for _ in 0..100 {
                    let mid = 0.5 * (lo + hi);
                    if g(mid) < t {
                        lo = mid;
                    } else {
                        hi = mid;
                    }
                }
                hi
            }
        }
    }

    /// The L2 norm an honest client's encoded vector stays within when it adds its noise
    /// with [`Self::encode_bounded`]: the rounding bound plus [`Self::noise_norm_bound`].
    pub fn norm_bound(&self) -> Result<f64, DpError> {
        Ok(self.l2_sensitivity + self.noise_norm_bound()?)
    }

    /// The noise sampler a client uses (built once, reused for every encode of the round).
    pub fn client_noise(&self) -> Result<NoiseSampler, DpError> {
        NoiseSampler::new(self.setup.noise, self.local_variance)
    }

    /// Encodes one client's update: clip, pad, rotate, scale, round, add noise, wrap.
    pub fn encode<R: CryptoRng + ?Sized>(
        &self,
        x: &[f64],
        rng: &mut R,
    ) -> Result<Vec<u64>, DpError> {
        self.encode_with(&self.client_noise()?, x, rng)
    }

    /// [`Self::encode`] with a prebuilt [`Self::client_noise`] sampler.
    pub fn encode_with<R: CryptoRng + ?Sized>(
        &self,
        noise: &NoiseSampler,
        x: &[f64],
        rng: &mut R,
    ) -> Result<Vec<u64>, DpError> {
        self.encode_inner(noise, x, rng, None)
    }

    /// [`Self::encode_with`] for a validated round: the noise share is redrawn while its L2
    /// norm exceeds [`Self::noise_norm_bound`] (probability ≤ 2^−64 per draw; the truncation
    /// moves the noise distribution by at most that much in total variation, which goes into
    /// δ), so the encoded vector's norm is at most [`Self::norm_bound`].
    pub fn encode_bounded<R: CryptoRng + ?Sized>(
        &self,
        noise: &NoiseSampler,
        x: &[f64],
        rng: &mut R,
    ) -> Result<Vec<u64>, DpError> {
        let bound = self.noise_norm_bound()?;
        self.encode_inner(noise, x, rng, Some(bound))
    }

    fn encode_inner<R: CryptoRng + ?Sized>(
        &self,
        noise: &NoiseSampler,
        x: &[f64],
        rng: &mut R,
        noise_bound: Option<f64>,
    ) -> Result<Vec<u64>, DpError> {
        if x.len() != self.setup.dim {
            return Err(DpError(format!(
                "the update has {} values, the round expects {}",
                x.len(),
                self.setup.dim
            )));
        }
        if let Some(i) = x.iter().position(|v| !v.is_finite()) {
            return Err(DpError(format!(
                "value {} at index {i} is not finite",
                x[i]
            )));
        }
        let mut v = vec![0.0f64; self.padded_dim];
        v[..x.len()].copy_from_slice(x);
        // Clip and scale fold into the rotation's first pass (it is linear).
        let factor = clip_factor(x, self.setup.clip) * self.scale;
        self.rotation.forward_scaled(&mut v, factor)?;
        // The many rounding and noise coins come from AES-CTR keyed by the caller's CSPRNG.
        let mut coins = NoiseRng::from_rng(rng);
        let mut rounded =
            rounding::conditional_round(&v, self.l2_sensitivity, MAX_TRIES, &mut coins)?;
        match noise_bound {
            None => noise.add_to(&mut rounded.values, &mut coins),
            Some(bound) => {
                let mut eta = vec![0i64; rounded.values.len()];
                let mut tries = 0;
                loop {
                    eta.iter_mut().for_each(|e| *e = 0);
                    noise.add_to(&mut eta, &mut coins);
                    let norm_sq: f64 = eta.iter().map(|e| sq(*e as f64)).sum();
                    if norm_sq <= sq(bound) {
                        break;
                    }
                    tries += 1;
                    if tries >= MAX_TRIES {
                        eta.zeroize();
                        return Err(DpError(format!(
                            "the noise share exceeded its norm bound {bound:.3e} {MAX_TRIES} times"
                        )));
                    }
                }
                for (a, e) in rounded.values.iter_mut().zip(&eta) {
                    *a = a.wrapping_add(*e);
                }
                eta.zeroize();
            }
        }
        let mask = modulus_mask(self.setup.bits);
        let out = rounded.values.iter().map(|&a| a as u64 & mask).collect();
        // The plain update and its noise must not linger in freed memory.
        v.zeroize();
        rounded.values.zeroize();
        Ok(out)
    }

    /// Central DP: adds one noise draw of the full variance (z·γ·clip)² to each coordinate of
    /// the unmasked sum (mod 2^b). Refused for distributed placement, whose noise is already in.
    pub fn add_central_noise<R: CryptoRng + ?Sized>(
        &self,
        sum: &mut [u64],
        rng: &mut R,
    ) -> Result<(), DpError> {
        if self.setup.placement != NoisePlacement::Central {
            return Err(DpError(String::from(
                "central noise on a distributed-noise round: the clients already added it",
            )));
        }
        self.check_sum(sum)?;
        let sampler = NoiseSampler::new(self.setup.noise, self.central_variance)?;
        let mut noise = vec![0i64; sum.len()];
        sampler.add_to(&mut noise, &mut NoiseRng::from_rng(rng));
        let mask = modulus_mask(self.setup.bits);
        for (s, n) in sum.iter_mut().zip(&noise) {
            *s = s.wrapping_add(*n as u64) & mask;
        }
        noise.zeroize();
        Ok(())
    }

    fn check_sum(&self, sum: &[u64]) -> Result<(), DpError> {
        if sum.len() != self.padded_dim {
            return Err(DpError(format!(
                "the aggregate has {} values, the round's encoding has {}",
                sum.len(),
                self.padded_dim
            )));
        }
        let mask = modulus_mask(self.setup.bits);
        if let Some(i) = sum.iter().position(|&s| s & !mask != 0) {
            return Err(DpError(format!(
                "aggregate value {} at index {i} is not below 2^{}",
                sum[i], self.setup.bits
            )));
        }
        Ok(())
    }

    /// Decodes an unmasked sum mod 2^b into the (noisy) sum of the survivors' clipped updates:
    /// signed values, divided by γ, inverse rotation, truncated to `dim`.
    pub fn decode_sum(&self, sum: &[u64]) -> Result<Vec<f64>, DpError> {
        self.check_sum(sum)?;
        let bits = u32::from(self.setup.bits);
        let mut v: Vec<f64> = sum
            .iter()
            .map(|&s| {
                // Two's complement in b bits.
                let signed = if bits == 64 {
                    s as i64
                } else {
                    ((s << (64 - bits)) as i64) >> (64 - bits)
                };
                signed as f64 / self.scale
            })
            .collect();
        self.rotation.inverse(&mut v)?;
        v.truncate(self.setup.dim);
        Ok(v)
    }
}

fn padded(setup: &DpSetup) -> Result<usize, DpError> {
    rotation::padded_dim(setup.dim)
        .ok_or_else(|| DpError(format!("dimension {} is too large to pad", setup.dim)))
}

fn sq(a: f64) -> f64 {
    a * a
}

fn modulus_mask(bits: u8) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// The variance the exact sampler will really use for `variance` (rounded up).
fn sampler_variance(kind: NoiseKind, variance: f64) -> Result<f64, DpError> {
    if variance == 0.0 {
        return Ok(0.0);
    }
    match kind {
        NoiseKind::DiscreteGaussian => Ok(DiscreteGaussian::new(variance)?.variance()),
        NoiseKind::Skellam => skellam::rounded_variance(variance)
            .ok_or_else(|| DpError(format!("Skellam variance {variance} is out of range"))),
    }
}

/// The factor min(1, clip/‖v‖₂) that clips `v` (finite values) to L2 norm `clip`.
fn clip_factor(v: &[f64], clip: f64) -> f64 {
    let norm = l2_norm(v);
    if norm > clip { clip / norm } else { 1.0 }
}

/// ‖v‖₂ of finite values: a plain sum of squares, rescaled only when it overflows or may have
/// lost precision to underflow.
fn l2_norm(v: &[f64]) -> f64 {
    let sum: f64 = v.iter().map(|a| a * a).sum();
    if sum.is_finite() && sum > 1e-280 {
        return libm::sqrt(sum);
    }
    let max = v.iter().fold(0.0f64, |m, a| m.max(a.abs()));
    if max == 0.0 {
        return 0.0;
    }
    let inv = 1.0 / max;
    max * libm::sqrt(v.iter().map(|a| sq(a * inv)).sum::<f64>())
}

fn validate(s: &DpSetup) -> Result<(), DpError> {
    let err = |m: String| Err(DpError(m));
    if s.dim == 0 {
        return err(String::from("the dimension must be at least 1"));
    }
    if !(s.clip.is_finite() && s.clip > 0.0) {
        return err(format!(
            "the clip norm must be a positive number, got {}",
            s.clip
        ));
    }
    if !(s.noise_multiplier.is_finite() && s.noise_multiplier >= 0.0) {
        return err(format!(
            "the noise multiplier must be ≥ 0, got {}",
            s.noise_multiplier
        ));
    }
    if !(2..=64).contains(&s.bits) {
        return err(format!("bits must be in 2..=64, got {}", s.bits));
    }
    if s.max_clients == 0 || s.min_survivors == 0 || s.min_survivors > s.max_clients {
        return err(format!(
            "need 1 ≤ min_survivors ≤ max_clients, got {} and {}",
            s.min_survivors, s.max_clients
        ));
    }
    if !(s.beta > 0.0 && s.beta < 1.0) {
        return err(format!("beta must be in (0, 1), got {}", s.beta));
    }
    if !(s.overflow_probability > 0.0 && s.overflow_probability < 1.0) {
        return err(format!(
            "the overflow probability must be in (0, 1), got {}",
            s.overflow_probability
        ));
    }
    Ok(())
}

/// ln of the Chernoff bound on P(one coordinate of the sum leaves (−T, T)) with scale γ.
fn log_tail(s: &DpSetup, d: f64, gamma: f64, slack: f64) -> f64 {
    let n = f64::from(s.max_clients);
    let c = s.clip;
    let v_signal = sq(n * gamma * c) / d;
    let noise_share = match s.placement {
        NoisePlacement::Distributed => n / f64::from(s.min_survivors),
        NoisePlacement::Central => 1.0,
    };
    let v_noise = sq(s.noise_multiplier * gamma * c) * noise_share;
    let v = v_signal + v_noise;
    if v == 0.0 {
        return f64::NEG_INFINITY;
    }
    let two_sided = libm::log(2.0);
    match s.noise {
        NoiseKind::DiscreteGaussian => two_sided - sq(slack) / (2.0 * v),
        NoiseKind::Skellam => {
            // E e^{λX} ≤ exp(λ²v_signal/2 + v_noise(cosh λ − 1)); λ = T/v is near-optimal.
            let l = slack / v;
            two_sided - l * slack + sq(l) * v_signal / 2.0 + v_noise * (libm::cosh(l) - 1.0)
        }
    }
}

/// The largest γ meeting the overflow bound and the sampler's range (module docs).
fn choose_scale(s: &DpSetup, padded_dim: usize) -> Result<f64, DpError> {
    let n = f64::from(s.max_clients);
    let d = padded_dim as f64;
    // Each client's rounding moves a coordinate by less than 1.
    let slack = half_modulus(s.bits) - 1.0 - n;
    if slack < 1.0 {
        return Err(DpError(format!(
            "{} bits cannot hold the rounding of {} clients: use more --bits or fewer clients",
            s.bits, s.max_clients
        )));
    }
    let budget = libm::log(s.overflow_probability / d);
    let z = s.noise_multiplier;
    let noise_share = match s.placement {
        NoisePlacement::Distributed => n / f64::from(s.min_survivors),
        NoisePlacement::Central => 1.0,
    };
    // Sub-Gaussian closed form; Skellam's bound is larger, so this is an upper end.
    let mut hi = slack
        / (s.clip
            * libm::sqrt(2.0 * (libm::log(2.0) - budget) * (sq(n) / d + sq(z) * noise_share)));
    if s.noise == NoiseKind::Skellam && z > 0.0 {
        let mut lo = 0.0;
        for _ in 0..200 {
            let mid = 0.5 * (lo + hi);
            if log_tail(s, d, mid, slack) <= budget {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        hi = lo;
    }
    let overflow_gamma = hi;
    // The noise variance must stay within the exact sampler's range.
    let max_var = match s.noise {
        NoiseKind::DiscreteGaussian => gaussian::MAX_VARIANCE,
        NoiseKind::Skellam => MAX_SKELLAM_VARIANCE,
    };
    let per_sampler = match s.placement {
        NoisePlacement::Distributed => f64::from(s.min_survivors),
        NoisePlacement::Central => 1.0,
    };
    let sampler_gamma = if z > 0.0 {
        libm::sqrt(max_var * per_sampler) / (z * s.clip) * (1.0 - 1e-9)
    } else {
        f64::INFINITY
    };
    // Keep the noise on the samplers' fast tables unless resolution needs more.
    let table_gamma = if z > 0.0 {
        // Slightly inside the limit: the samplers round the variance up.
        let small = libm::sqrt(NOISE_TABLE_VARIANCE * per_sampler) / (z * s.clip) * (1.0 - 1e-9);
        small.max(8.0 * libm::sqrt(d) / s.clip)
    } else {
        f64::INFINITY
    };
    let gamma = overflow_gamma
        .min(sampler_gamma)
        .min(table_gamma)
        .min(MAX_SCALED_CLIP / s.clip);
    let levels = gamma * s.clip / libm::sqrt(d);
    if levels.is_nan() || levels < 1.0 {
        let reason = if sampler_gamma < overflow_gamma {
            String::from(
                "the noise variance would exceed the exact sampler's range: use a smaller noise \
                 multiplier, a larger min_survivors or a smaller dimension",
            )
        } else if sq(z) * noise_share > sq(n) / d {
            format!(
                "the noise of {} clients (each sized for {} survivors) leaves no room in {} bits: \
                 use more --bits, a larger min_survivors or a smaller noise multiplier",
                s.max_clients, s.min_survivors, s.bits
            )
        } else {
            format!(
                "{} clients' sum leaves no room in {} bits: use more --bits or fewer clients",
                s.max_clients, s.bits
            )
        };
        return Err(DpError(format!(
            "scale γ = {gamma:.3e} gives {levels:.3} quantization levels per coordinate (need ≥ 1): {reason}"
        )));
    }
    Ok(gamma)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> DpSetup {
        DpSetup::new(1000, 1.0, 1.0, 32, 100, 80, [3; 32])
    }

    #[test]
    fn the_overflow_bound_is_met_at_the_chosen_scale() {
        for noise in [NoiseKind::DiscreteGaussian, NoiseKind::Skellam] {
            let mut s = setup();
            s.noise = noise;
            let e = DpEncoding::new(&s).unwrap();
            let d = e.padded_dim() as f64;
            let slack = half_modulus(32) - 1.0 - 100.0;
            let budget = libm::log(s.overflow_probability / d);
            assert!(log_tail(&s, d, e.scale(), slack) <= budget + 1e-9);
            // Here the table cap binds: the noise stays on the fast sampler.
            assert!(
                e.local_variance() <= NOISE_TABLE_VARIANCE * (1.0 + 1e-9),
                "{e:?}"
            );
            // Without noise the overflow bound binds, and γ is (nearly) the largest allowed.
            let mut quiet = s.clone();
            quiet.noise_multiplier = 0.0;
            let q = DpEncoding::new(&quiet).unwrap();
            assert!(log_tail(&quiet, d, q.scale(), slack) <= budget + 1e-9);
            assert!(log_tail(&quiet, d, q.scale() * 1.01, slack) > budget);
        }
    }

    #[test]
    fn clipping_scales_long_vectors_only() {
        assert!((clip_factor(&[3.0, 4.0], 1.0) - 0.2).abs() < 1e-15);
        assert_eq!(clip_factor(&[0.3, 0.4], 1.0), 1.0);
        assert_eq!(clip_factor(&[0.0, 0.0], 1.0), 1.0);
        // Squares that overflow or underflow f64 are rescaled.
        let f = clip_factor(&[1e300, 1e300], 2.0);
        assert!((1e300 * f - libm::sqrt(2.0)).abs() < 1e-12, "{f}");
        assert!((l2_norm(&[3e-200, 4e-200]) / 5e-200 - 1.0).abs() < 1e-15);
    }
}
