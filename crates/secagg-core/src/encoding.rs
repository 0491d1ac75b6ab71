//! Floats in, floats out: clipping, stochastic rounding into Z_2^b, and the weight carried
//! inside the masked vector (never in clear beside it).
//!
//! A client with update x and weight w (e.g. its example count) sends
//! `[R(w·clip(x_1)·s), …, R(w·clip(x_d)·s), w]` where R is unbiased stochastic rounding and s
//! the scale; negative values wrap as two's complement mod 2^b. The server's sum decodes to
//! Σ w_u x_u and Σ w_u, hence the weighted mean. The scale is the largest for which
//! n · w_max · clip · s < 2^(b-1), so no sum of n clients can overflow.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use rand_core::CryptoRng;

/// A refused encoding: the message says what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodingError(pub String);

impl core::fmt::Display for EncodingError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for EncodingError {}

/// Public parameters of the fixed-point encoding, agreed before the round.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FloatEncoding {
    /// Values are clipped to [-clip, clip].
    pub clip: f64,
    /// Fixed-point scale s.
    pub scale: f64,
    /// Modulus bits b.
    pub bits: u8,
    /// Largest weight a client may send.
    pub max_weight: u64,
}

fn half_modulus(bits: u8) -> f64 {
    libm::ldexp(1.0, bits as i32 - 1)
}

impl FloatEncoding {
    /// The finest encoding with which `max_clients` clients, each with weight ≤ `max_weight`
    /// and values clipped to ±`clip`, cannot overflow 2^`bits`.
    pub fn new(
        bits: u8,
        clip: f64,
        max_clients: u32,
        max_weight: u64,
    ) -> Result<Self, EncodingError> {
        if !(2..=64).contains(&bits) {
            return Err(EncodingError(format!(
                "bits must be in 2..=64 for float inputs, got {bits}"
            )));
        }
        if !(clip.is_finite() && clip > 0.0) {
            return Err(EncodingError(format!(
                "the clipping range must be a positive number, got {clip}"
            )));
        }
        if max_weight == 0 || max_clients == 0 {
            return Err(EncodingError(String::from(
                "max weight and max clients must be at least 1",
            )));
        }
        // Keep one unit of headroom for the rounding of each client.
        let budget = half_modulus(bits) - 1.0 - max_clients as f64;
        let scale = budget / (max_clients as f64 * max_weight as f64 * clip);
        if scale.is_nan() || scale * clip < 1.0 {
            // Solve n·w·clip·(1/clip) + n < 2^(b-1) for n: even one quantization level each.
            let largest_n = ((half_modulus(bits) - 1.0) / (max_weight as f64 + 1.0)) as u64;
            return Err(EncodingError(format!(
                "{max_clients} clients with weights up to {max_weight} can overflow 2^{bits}: \
                 use more --bits, or at most {largest_n} clients at this weight",
            )));
        }
        Ok(Self {
            clip,
            scale,
            bits,
            max_weight,
        })
    }

    /// Length of an encoded vector for `dim` values: the weight rides as the last element.
    pub fn encoded_dim(dim: usize) -> usize {
        dim + 1
    }

    /// Worst-case absolute error of one decoded mean coordinate from rounding (each client's
    /// rounding moves its contribution by less than one level).
    pub fn max_rounding_error(&self, clients: u32, total_weight: u64) -> f64 {
        clients as f64 / (self.scale * total_weight.max(1) as f64)
    }

    /// Encodes `x` with `weight`. NaN or infinite values are refused.
    pub fn encode<R: CryptoRng + ?Sized>(
        &self,
        x: &[f64],
        weight: u64,
        rng: &mut R,
    ) -> Result<Vec<u64>, EncodingError> {
        if weight > self.max_weight {
            return Err(EncodingError(format!(
                "weight {weight} exceeds the round's maximum {}",
                self.max_weight
            )));
        }
        if let Some(i) = x.iter().position(|v| !v.is_finite()) {
            return Err(EncodingError(format!(
                "value {} at index {i} is not finite",
                x[i]
            )));
        }
        let mask = if self.bits == 64 {
            u64::MAX
        } else {
            (1u64 << self.bits) - 1
        };
        let w = weight as f64;
        let mut out = Vec::with_capacity(x.len() + 1);
        for v in x {
            let scaled = v.clamp(-self.clip, self.clip) * w * self.scale;
            let floor = libm::floor(scaled);
            let frac = scaled - floor;
            // Round up with probability frac: unbiased.
            let u = (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
            let q = floor as i64 + (u < frac) as i64;
            out.push(q as u64 & mask);
        }
        out.push(weight & mask);
        Ok(out)
    }

    /// Decodes a sum of encoded vectors into (weighted mean, total weight).
    pub fn decode(&self, sum: &[u64]) -> Result<(Vec<f64>, u64), EncodingError> {
        let Some((&total, values)) = sum.split_last() else {
            return Err(EncodingError(String::from("empty aggregate")));
        };
        if total == 0 {
            return Err(EncodingError(String::from(
                "the survivors' total weight is 0: the weighted mean is undefined",
            )));
        }
        let b = self.bits as u32;
        let denom = self.scale * total as f64;
        let mean = values
            .iter()
            .map(|&v| {
                // Interpret as a signed b-bit integer.
                let signed = if b == 64 {
                    v as i64
                } else if v >> (b - 1) & 1 == 1 {
                    (v as i64) - (1i64 << (b - 1)) - (1i64 << (b - 1))
                } else {
                    v as i64
                };
                signed as f64 / denom
            })
            .collect();
        Ok((mean, total))
    }
}

/// Checks that `clients` unsigned inputs each below `max_value + 1` sum without wrapping mod
/// 2^`bits`; the error gives the largest safe number of clients and the bits needed.
pub fn check_integer_sum(bits: u8, clients: u32, max_value: u64) -> Result<(), EncodingError> {
    let limit: u128 = 1u128 << bits;
    if (max_value as u128) >= limit {
        return Err(EncodingError(format!(
            "an input value {max_value} does not fit in {bits} bits: use --bits {}",
            64 - max_value.leading_zeros()
        )));
    }
    let worst = clients as u128 * max_value as u128;
    if worst >= limit {
        let largest_n = (limit - 1) / (max_value.max(1) as u128);
        let need_bits = 128 - worst.leading_zeros();
        return Err(EncodingError(format!(
            "{clients} clients × max value {max_value} can reach 2^{bits}, so the sum could wrap: \
             use --bits {need_bits} or at most {largest_n} clients"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn weighted_mean_roundtrip() {
        let enc = FloatEncoding::new(32, 1.0, 10, 100).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let xs = [vec![0.5, -0.25, 2.0], vec![-1.0, 0.75, -3.0]];
        let ws = [3u64, 1];
        let mut sum = vec![0u64; 4];
        for (x, w) in xs.iter().zip(ws) {
            let e = enc.encode(x, w, &mut rng).unwrap();
            for (s, v) in sum.iter_mut().zip(e) {
                *s = s.wrapping_add(v) & 0xffff_ffff;
            }
        }
        let (mean, total) = enc.decode(&sum).unwrap();
        assert_eq!(total, 4);
        // Clipped to ±1: (3·0.5 - 1)/4, (3·-0.25 + 0.75)/4, (3·1 - 1)/4.
        let want = [0.125, 0.0, 0.5];
        for (m, w) in mean.iter().zip(want) {
            assert!((m - w).abs() <= enc.max_rounding_error(2, 4), "{m} vs {w}");
        }
    }

    #[test]
    fn stochastic_rounding_is_unbiased() {
        let enc = FloatEncoding {
            clip: 1.0,
            scale: 1.0,
            bits: 32,
            max_weight: 1,
        };
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let x = vec![0.3; 20_000];
        let e = enc.encode(&x, 1, &mut rng).unwrap();
        let ones = e[..20_000].iter().filter(|v| **v == 1).count();
        assert!((5_600..6_400).contains(&ones), "{ones}");
    }

    #[test]
    fn refusals_say_what_to_change() {
        let e = FloatEncoding::new(8, 1.0, 1000, 1).unwrap_err();
        assert!(e.0.contains("at most 63 clients"), "{e}");
        assert!(FloatEncoding::new(32, f64::NAN, 10, 1).is_err());
        assert!(FloatEncoding::new(32, 0.0, 10, 1).is_err());
        let enc = FloatEncoding::new(32, 1.0, 10, 5).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        assert!(
            enc.encode(&[f64::NAN], 1, &mut rng)
                .unwrap_err()
                .0
                .contains("index 0")
        );
        assert!(enc.encode(&[f64::INFINITY], 1, &mut rng).is_err());
        assert!(enc.encode(&[1.0], 6, &mut rng).is_err());
        assert!(enc.decode(&[5, 0]).is_err());
        assert!(check_integer_sum(8, 2, 100).is_ok());
        let e = check_integer_sum(8, 3, 100).unwrap_err();
        assert!(
            e.0.contains("--bits 9") && e.0.contains("at most 2 clients"),
            "{e}"
        );
        assert!(
            check_integer_sum(8, 1, 256)
                .unwrap_err()
                .0
                .contains("--bits 9")
        );
    }

    #[test]
    fn sixty_four_bits() {
        let enc = FloatEncoding::new(64, 10.0, 1000, 1000).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let e = enc.encode(&[-10.0, 10.0, 0.0], 1000, &mut rng).unwrap();
        let (mean, _) = enc.decode(&e).unwrap();
        assert!((mean[0] + 10.0).abs() < 1e-9 && (mean[1] - 10.0).abs() < 1e-9);
    }
}
