//! How clients turn their inputs into Z_2^b, as carried in [`RoundConfig::encoding`].
//!
//! Every parameter that changes what a client encodes (clipping range, weight bound, DP
//! mechanism, noise multiplier, DP clip and dimension) travels inside the round's
//! configuration, so it is part of the session id that every key agreement, share ciphertext
//! and signature is bound to: a server that tells two clients different encodings makes their
//! keys disagree and the round fail, instead of giving one client a fine encoding and the
//! others a scale that rounds to zero. Derived values (the fixed-point scale, the noise share)
//! are computed by each client from these and the round's other fields, never read from the
//! wire. One canonical byte form, shared by the simulator, the gRPC service and the Python
//! bindings:
//!
//! ```text
//! raw integers:  (empty)
//! float mean:    0x01 ‖ clip (f64 LE bits) ‖ max_weight (u64 LE)
//! DP mean:       0x02 ‖ noise (0 = discrete Gaussian, 1 = Skellam) ‖ central (0/1)
//!                     ‖ noise_multiplier (f64) ‖ clip (f64) ‖ beta (f64) ‖ dim (u32)
//! ```
//!
//! β (conditional rounding's failure probability) sets how far the rounded sensitivity may
//! exceed γ·clip, so a server choosing it could shrink every client's real noise multiplier
//! (a tiny β at 8 bits makes z = 2 worth 1.2). It is a protocol constant: a round whose β is
//! not [`DEFAULT_BETA`] is refused. The field stays for the canonical form's stability.

use secagg_core::RoundConfig;
use secagg_core::encoding::FloatEncoding;
use secagg_dp::pipeline::{DpEncoding, NoiseKind, NoisePlacement};

use crate::dp::{DEFAULT_BETA, DpParams};

/// The encoding of a round's inputs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum InputEncoding {
    /// Clients send elements of Z_2^b as they are.
    Integers,
    /// Weighted mean of floats: values clipped to ±`clip`, weights up to `max_weight`.
    Float {
        /// Per-coordinate clipping range.
        clip: f64,
        /// Largest weight a client may send.
        max_weight: u64,
    },
    /// Differentially private mean (secagg-dp's pipeline).
    Dp(DpParams),
}

const FLOAT: u8 = 1;
const DP: u8 = 2;

impl InputEncoding {
    /// The canonical bytes to put in [`RoundConfig::encoding`].
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            InputEncoding::Integers => {}
            InputEncoding::Float { clip, max_weight } => {
                out.push(FLOAT);
                out.extend_from_slice(&clip.to_bits().to_le_bytes());
                out.extend_from_slice(&max_weight.to_le_bytes());
            }
            InputEncoding::Dp(p) => {
                out.push(DP);
                out.push(match p.noise {
                    NoiseKind::DiscreteGaussian => 0,
                    NoiseKind::Skellam => 1,
                });
                out.push(match p.placement {
                    NoisePlacement::Distributed => 0,
                    NoisePlacement::Central => 1,
                });
                for f in [p.noise_multiplier, p.clip, p.beta] {
                    out.extend_from_slice(&f.to_bits().to_le_bytes());
                }
                // DpParams::validate and masked_dim keep dim within u32 for a valid round.
                out.extend_from_slice(&(p.dim.min(u32::MAX as usize) as u32).to_le_bytes());
            }
        }
        out
    }

    /// Parses and checks the bytes of a round's configuration; the error says what is wrong.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let bad = |what: &str| Err(format!("invalid input encoding in the round: {what}"));
        let f64_at = |b: &[u8], i: usize| -> f64 {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            f64::from_bits(u64::from_le_bytes(a))
        };
        let e = match bytes {
            [] => InputEncoding::Integers,
            [FLOAT, rest @ ..] if rest.len() == 16 => {
                let clip = f64_at(rest, 0);
                let mut w = [0u8; 8];
                w.copy_from_slice(&rest[8..16]);
                let max_weight = u64::from_le_bytes(w);
                if !(clip.is_finite() && clip > 0.0) {
                    return bad("the clipping range must be a positive number");
                }
                if max_weight == 0 {
                    return bad("the weight bound must be at least 1");
                }
                InputEncoding::Float { clip, max_weight }
            }
            [DP, noise, central, rest @ ..] if rest.len() == 28 => {
                let noise = match noise {
                    0 => NoiseKind::DiscreteGaussian,
                    1 => NoiseKind::Skellam,
                    _ => return bad("unknown noise kind"),
                };
                let placement = match central {
                    0 => NoisePlacement::Distributed,
                    1 => NoisePlacement::Central,
                    _ => return bad("non-canonical central flag"),
                };
                let mut d = [0u8; 4];
                d.copy_from_slice(&rest[24..28]);
                let p = DpParams {
                    noise,
                    placement,
                    noise_multiplier: f64_at(rest, 0),
                    clip: f64_at(rest, 8),
                    beta: f64_at(rest, 16),
                    dim: u32::from_le_bytes(d) as usize,
                };
                p.validate()?;
                if p.beta.to_bits() != DEFAULT_BETA.to_bits() {
                    return Err(format!(
                        "the round announces a conditional rounding β of {}; β is a protocol \
                         constant ({DEFAULT_BETA}): a server-chosen β could inflate the \
                         sensitivity and shrink every client's real noise",
                        p.beta
                    ));
                }
                InputEncoding::Dp(p)
            }
            _ => return bad("unknown kind or wrong length"),
        };
        Ok(e)
    }

    /// The encoding a round's configuration announces.
    pub fn of(config: &RoundConfig) -> Result<Self, String> {
        Self::from_bytes(&config.encoding)
    }

    /// The float encoding every client derives from the round: the scale is the finest with
    /// which n clients cannot overflow 2^b.
    pub fn float(&self, config: &RoundConfig) -> Result<Option<FloatEncoding>, String> {
        match self {
            InputEncoding::Float { clip, max_weight } => {
                FloatEncoding::new(config.bits, *clip, config.num_clients, *max_weight)
                    .map(Some)
                    .map_err(|e| e.0)
            }
            _ => Ok(None),
        }
    }

    /// Validated float rounds (VALIDATION.md §5.4, F10, D17; feature `validate`): the round
    /// announces `Float { clip: B, max_weight: W }` and `validation`, and every client derives
    /// the validated scale s_val from (b, n, d, W, B), clips its update to L2 norm B (values
    /// then lie within ±B) and checks that the announced B_enc² is the one s_val gives. `None`
    /// for other encodings or a round without validation.
    #[cfg(feature = "validate")]
    pub fn validated_float(&self, config: &RoundConfig) -> Result<Option<FloatEncoding>, String> {
        let (InputEncoding::Float { clip, max_weight }, Some(v)) = (self, &config.validation)
        else {
            return Ok(None);
        };
        let s = secagg_core::validate::params::float_scale(
            config.bits,
            config.num_clients,
            config.dim,
            *max_weight,
            *clip,
        )
        .map_err(|e| e.to_string())?;
        if s.bound_sq != v.bound_sq {
            return Err(format!(
                "the round announces B_enc² = {} but B = {clip}, W = {max_weight} give {}",
                v.bound_sq, s.bound_sq
            ));
        }
        if v.max_weight != Some(*max_weight) {
            return Err(format!(
                "the round's float encoding has weights up to {max_weight} but its validation \
                 proves the weight coordinate against {:?}",
                v.max_weight
            ));
        }
        Ok(Some(FloatEncoding {
            clip: *clip,
            scale: s.scale,
            bits: config.bits,
            max_weight: *max_weight,
        }))
    }

    /// A validated DP round's encoding (VALIDATION.md §12), checked against the announced
    /// B_enc² (what every client derives before proving); `None` unless the round is both DP
    /// and validated.
    pub fn validated_dp(&self, config: &RoundConfig) -> Result<Option<DpEncoding>, String> {
        let (InputEncoding::Dp(p), Some(v)) = (self, &config.validation) else {
            return Ok(None);
        };
        if v.max_weight.is_some() {
            return Err(String::from(
                "a DP encoding has no weight coordinate, but the round's validation names one",
            ));
        }
        let enc = p.validated_encoding(config)?;
        let want = crate::dp::validated_bound_sq(&enc)?;
        if want != v.bound_sq {
            return Err(format!(
                "the round announces B_enc² = {} but its DP encoding gives {want}",
                v.bound_sq
            ));
        }
        Ok(Some(enc))
    }

    /// The vector length the protocol masks for `values` values per client.
    pub fn masked_dim(&self, values: usize) -> Result<u32, String> {
        match self {
            InputEncoding::Integers => {
                u32::try_from(values).map_err(|_| format!("dimension {values} is too large"))
            }
            // One more element: the weight rides inside the masked vector.
            InputEncoding::Float { .. } => {
                u32::try_from(values + 1).map_err(|_| format!("dimension {values} is too large"))
            }
            InputEncoding::Dp(p) => p.masked_dim(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dp() -> DpParams {
        DpParams {
            noise: NoiseKind::Skellam,
            placement: NoisePlacement::Distributed,
            noise_multiplier: 1.1,
            clip: 0.5,
            beta: DEFAULT_BETA,
            dim: 1000,
        }
    }

    #[test]
    fn canonical_round_trip() {
        for e in [
            InputEncoding::Integers,
            InputEncoding::Float {
                clip: 8.0,
                max_weight: 1000,
            },
            InputEncoding::Dp(dp()),
        ] {
            let b = e.to_bytes();
            assert_eq!(InputEncoding::from_bytes(&b).unwrap(), e);
            // Any other length is refused.
            let mut longer = b.clone();
            longer.push(0);
            assert!(InputEncoding::from_bytes(&longer).is_err());
        }
    }

    #[test]
    fn invalid_values_are_refused() {
        let mut b = InputEncoding::Float {
            clip: 8.0,
            max_weight: 1,
        }
        .to_bytes();
        b[1..9].copy_from_slice(&f64::NAN.to_bits().to_le_bytes());
        assert!(InputEncoding::from_bytes(&b).is_err());
        let mut p = dp();
        p.noise_multiplier = -1.0;
        assert!(InputEncoding::from_bytes(&InputEncoding::Dp(p).to_bytes()).is_err());
        assert!(InputEncoding::from_bytes(&[7]).is_err());
        let mut b = InputEncoding::Dp(dp()).to_bytes();
        b[1] = 9;
        assert!(InputEncoding::from_bytes(&b).is_err());
    }

    /// Issue 14, finding 2: β is not the server's to choose.
    #[test]
    fn a_server_chosen_beta_is_refused() {
        for beta in [1e-300, 0.5, 0.9] {
            let p = DpParams { beta, ..dp() };
            let e = InputEncoding::from_bytes(&InputEncoding::Dp(p).to_bytes()).unwrap_err();
            assert!(e.contains("protocol constant"), "{e}");
        }
    }
}
