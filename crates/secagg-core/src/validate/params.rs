//! Parameters of validated rounds (VALIDATION.md §4, §5.3, §5.4): the projection count J and
//! the client's cap J_cap, the constants of wire version 3, the configuration check both ends
//! run, and the validated-round float scale s_val with its bound B_enc² (F10).

use super::ValidateError;

/// Λ = Λ′ = 128: GHL rows of the norm and binding arguments, constants of wire version 3 (F3:
/// never announced by the server).
pub const GHL_ROWS: usize = secagg_zk::ghl::ROWS;
/// φ = 56 flooding bits, a constant of wire version 3 (F3).
pub const FLOOD_BITS: u32 = secagg_zk::ghl::FLOOD_BITS;
/// J − c: the statistical security of the binding projections (§6.3: 2^(c−J) = 2^-41).
pub const PROJECTION_SECURITY_BITS: u32 = 41;
/// Largest b of a validated round (§5.3).
pub const MAX_BITS: u8 = 32;
/// Largest d (encoded length, weight coordinate included; §5.3).
pub const MAX_DIM: u32 = 1 << 20;
/// Largest n (§5.3).
pub const MAX_CLIENTS: u32 = 1 << 20;
/// Largest k, neighbours of a client (§5.3: k < 2^10).
pub const MAX_NEIGHBOURS: u32 = (1 << 10) - 1;
/// Largest J any client accepts (§4: J_cap ≤ 2^11).
pub const MAX_PROJECTIONS: u32 = 1 << 11;
/// Largest J·d (D24): ρ is kept bit-packed, J·d/8 bytes, so at most 128 MiB per copy (a
/// client and a server verifying hold one each; §5.3's separate limits allowed 2^31 bits).
pub const MAX_PROJECTION_BITS: u64 = 1 << 30;
/// Largest B_enc² (§5.3: B_enc² < 2^62).
pub const MAX_BOUND_SQ: u64 = (1 << 62) - 1;

// §5.3: a compile-time assertion keeps Λ·2^-(φ+1) ≤ 2^-50 (i.e. Λ ≤ 2^(φ−49)) and Λ ≥ 128.
const _: () = assert!(GHL_ROWS >= 128 && (GHL_ROWS as u128) <= 1u128 << (FLOOD_BITS - 49));
// The constants agree with the proof system's own limits.
const _: () = assert!(MAX_PROJECTIONS as usize == secagg_zk::generators::MAX_PROJECTIONS);
const _: () = assert!(MAX_NEIGHBOURS as usize == secagg_zk::bind::MAX_NEIGHBOURS);
const _: () = assert!(MAX_BITS as u32 == secagg_zk::bind::MAX_BITS);
const _: () = assert!(MAX_DIM as usize == secagg_zk::MAX_D);
const _: () = assert!(MAX_BOUND_SQ == secagg_zk::norm::MAX_BOUND_SQ);
const _: () = assert!(MAX_PROJECTION_BITS == secagg_zk::bind::MAX_RHO_BITS);

/// J = 41 + c for c = ⌊α·n⌋ corrupt clients the server plans for (§4, §7.3). Saturates
/// (the configuration check refuses anything above the cap anyway).
pub fn projections(corrupt: u32) -> u32 {
    PROJECTION_SECURITY_BITS.saturating_add(corrupt)
}

/// J_cap = min(2^11, 41 + ⌊n/3⌋): the most projections a client computes for a round of n
/// (F12; it refuses a round announcing more).
pub fn projections_cap(clients: u32) -> u32 {
    MAX_PROJECTIONS.min(PROJECTION_SECURITY_BITS + clients / 3)
}

/// What the configuration check of §5.3 looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidationConfig {
    /// b.
    pub bits: u8,
    /// d, the encoded length (the weight coordinate included).
    pub dim: u32,
    /// n.
    pub clients: u32,
    /// k, the neighbours of a client.
    pub neighbours: u32,
    /// J, the announced projection count.
    pub projections: u32,
    /// B_enc², the announced bound in encoded units.
    pub bound_sq: u64,
}

/// The configuration check of §5.3, run by the server before announcing a validated round and
/// by every client (with its own `cap`, normally [`projections_cap`]) before taking part:
/// 1 ≤ b ≤ 32, 1 ≤ d ≤ 2^20, 1 ≤ n ≤ 2^20, k < 2^10, 1 ≤ J ≤ min(2^11, cap),
/// J·d ≤ 2^30 (D24), 1 ≤ B_enc² < 2^62 and n·B_enc < 2^(b−1) (checked exactly as
/// n²·B_enc² < 2^(2b−2)).
pub fn check_config(cfg: &ValidationConfig, cap: u32) -> Result<(), ValidateError> {
    for (what, got) in [
        ("bits", u64::from(cfg.bits)),
        ("dimension", u64::from(cfg.dim)),
        ("clients", u64::from(cfg.clients)),
        ("projections", u64::from(cfg.projections)),
        ("bound", cfg.bound_sq),
    ] {
        if got == 0 {
            return Err(ValidateError::Zero { what });
        }
    }
    for (what, max, got) in [
        ("bits", u64::from(MAX_BITS), u64::from(cfg.bits)),
        ("dimension", u64::from(MAX_DIM), u64::from(cfg.dim)),
        ("clients", u64::from(MAX_CLIENTS), u64::from(cfg.clients)),
        (
            "neighbours",
            u64::from(MAX_NEIGHBOURS),
            u64::from(cfg.neighbours),
        ),
        (
            "projections",
            u64::from(MAX_PROJECTIONS),
            u64::from(cfg.projections),
        ),
        ("squared bound", MAX_BOUND_SQ, cfg.bound_sq),
    ] {
        if got > max {
            return Err(ValidateError::TooLarge { what, max, got });
        }
    }
    if cfg.projections > cap {
        return Err(ValidateError::ProjectionsAboveCap {
            projections: cfg.projections,
            cap,
        });
    }
    let rho_bits = u64::from(cfg.projections) * u64::from(cfg.dim);
    if rho_bits > MAX_PROJECTION_BITS {
        return Err(ValidateError::TooLarge {
            what: "projection bits J·d",
            max: MAX_PROJECTION_BITS,
            got: rho_bits,
        });
    }
    if !sum_cannot_wrap(cfg.bits, cfg.clients, cfg.bound_sq) {
        return Err(ValidateError::SumCanWrap {
            clients: cfg.clients,
            bound_sq: cfg.bound_sq,
            bits: cfg.bits,
        });
    }
    Ok(())
}

/// n·B_enc < 2^(b−1), exactly: n²·B_enc² < 2^(2b−2) (n ≤ 2^20, B_enc² < 2^62, so the
/// product is below 2^102; b ≤ 32).
fn sum_cannot_wrap(bits: u8, clients: u32, bound_sq: u64) -> bool {
    let n = u128::from(clients);
    (1..=MAX_BITS).contains(&bits) && n * n * u128::from(bound_sq) < 1u128 << (2 * bits - 2)
}

/// B_enc² for unsigned (integer) inputs: B_enc = B (§5.4, F4), refused at B = 0 or
/// B² ≥ 2^62.
pub fn integer_bound_sq(bound: u64) -> Result<u64, ValidateError> {
    if bound == 0 {
        return Err(ValidateError::Zero { what: "bound" });
    }
    let sq = u128::from(bound) * u128::from(bound);
    if sq > u128::from(MAX_BOUND_SQ) {
        return Err(ValidateError::TooLarge {
            what: "squared bound",
            max: MAX_BOUND_SQ,
            got: u64::try_from(sq).unwrap_or(u64::MAX),
        });
    }
    Ok(sq as u64)
}

/// The relative margin by which the float scale is taken below the exact s_val (D17), so that
/// the floating-point products of an honest client (its L2 clip to B, w·x_i·s) never exceed
/// the exact ⌈W·s_val·B⌉ that B_enc² is computed from.
pub const SCALE_MARGIN: f64 = 1.0 / (1u64 << 30) as f64;

/// The validated-round float encoding of §5.4 (F10).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValidatedScale {
    /// The fixed-point scale the encoder uses: s_val·(1 − 2^-30) (D17).
    pub scale: f64,
    /// B_enc² = (⌈W·s_val·B⌉ + ⌈√(d−1)⌉)² + W², exact.
    pub bound_sq: u64,
    /// ⌈W·s_val·B⌉ = ⌈(2^(b−1) − 1 − n·(⌈√(d−1)⌉ + 1) − n·W)/n⌉, exact: the data part's bound
    /// in encoded units before rounding.
    pub data_bound: u64,
    /// ⌈√(d−1)⌉, the rounding allowance.
    pub rounding: u64,
}

impl ValidatedScale {
    /// How much more than W·B (input units) a client can contribute, as a factor:
    /// 1 + (⌈√(d−1)⌉ + 1)/(W·s_val·B) (§5.4; the simulator prints it).
    pub fn slack_factor(&self, max_weight: u64, bound: f64) -> f64 {
        1.0 + (self.rounding as f64 + 1.0) / (max_weight as f64 * self.scale * bound)
    }
}

/// ⌈√v⌉ for v < 2^64.
fn ceil_sqrt(v: u64) -> u64 {
    let r = v.isqrt();
    if r * r == v { r } else { r + 1 }
}

/// s_val and B_enc² of §5.4 for float inputs, computed the same way by the server and every
/// client (one function): `bits` = b, `clients` = n, `dim` = d the encoded length with the
/// weight as its last coordinate (so d ≥ 2), `max_weight` = W, `bound` = B in input units.
///
///   s_val = (2^(b−1) − 1 − n·(⌈√(d−1)⌉ + 1) − n·W) / (n·W·B),
///   B_enc² = (⌈W·s_val·B⌉ + ⌈√(d−1)⌉)² + W²,
///
/// with W·s_val·B = (numerator)/n taken exactly in integers. Refuses s_val ≤ 0 or
/// s_val·B < 1 (numerator < n·W), b outside 2..=32, d < 2 or above 2^20, n above 2^20, W = 0,
/// B not a positive finite number, a scale that is not finite (B so small that s_val
/// overflows), and B_enc² ≥ 2^62. Then n·B_enc ≤ 2^(b−1) − 2 (§5.4), so
/// [`check_config`] accepts the bound.
pub fn float_scale(
    bits: u8,
    clients: u32,
    dim: u32,
    max_weight: u64,
    bound: f64,
) -> Result<ValidatedScale, ValidateError> {
    if !(bound.is_finite() && bound > 0.0) {
        return Err(ValidateError::Zero { what: "bound" });
    }
    if max_weight == 0 {
        return Err(ValidateError::Zero { what: "max weight" });
    }
    if clients == 0 {
        return Err(ValidateError::Zero { what: "clients" });
    }
    if !(2..=MAX_BITS).contains(&bits) {
        return Err(ValidateError::TooLarge {
            what: "bits",
            max: u64::from(MAX_BITS),
            got: u64::from(bits),
        });
    }
    if dim < 2 {
        return Err(ValidateError::Zero {
            what: "dimension (data coordinates)",
        });
    }
    for (what, max, got) in [
        ("dimension", MAX_DIM, dim),
        ("clients", MAX_CLIENTS, clients),
    ] {
        if got > max {
            return Err(ValidateError::TooLarge {
                what,
                max: u64::from(max),
                got: u64::from(got),
            });
        }
    }
    let n = i128::from(clients);
    let w = i128::from(max_weight);
    let rounding = ceil_sqrt(u64::from(dim - 1));
    let numerator = (1i128 << (bits - 1)) - 1 - n * (i128::from(rounding) + 1) - n * w;
    if numerator < n * w {
        return Err(ValidateError::ScaleTooSmall { bits, clients, dim });
    }
    // numerator > 0 here and below 2^31, so the quotient fits u64.
    let data_bound = (numerator + n - 1) / n;
    let root = data_bound + i128::from(rounding);
    let bound_sq = root * root + w * w;
    if bound_sq > i128::from(MAX_BOUND_SQ) {
        return Err(ValidateError::TooLarge {
            what: "squared bound",
            max: MAX_BOUND_SQ,
            got: u64::try_from(bound_sq).unwrap_or(u64::MAX),
        });
    }
    let exact = numerator as f64 / (n as f64 * w as f64) / bound;
    let scale = exact * (1.0 - SCALE_MARGIN);
    // N7: a tiny B (e.g. 1e-320, subnormal) overflows the scale to +∞; the encoder would
    // then compute 0·∞ = NaN. Refuse a scale that is not a positive finite number.
    if !(scale.is_finite() && scale > 0.0) {
        return Err(ValidateError::Zero {
            what: "bound (the float scale is not finite)",
        });
    }
    Ok(ValidatedScale {
        scale,
        bound_sq: bound_sq as u64,
        data_bound: data_bound as u64,
        rounding,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::FloatEncoding;
    use alloc::vec::Vec;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn cfg(bits: u8, clients: u32, bound_sq: u64, projections: u32) -> ValidationConfig {
        ValidationConfig {
            bits,
            dim: 1000,
            clients,
            neighbours: 52,
            projections,
            bound_sq,
        }
    }

    #[test]
    fn projection_count_and_cap() {
        // §4: 91 at n = 1,000, α = 5%; J_cap = min(2^11, 41 + ⌊n/3⌋).
        assert_eq!(projections(50), 91);
        assert_eq!(projections(u32::MAX), u32::MAX);
        assert_eq!(projections_cap(1000), 374);
        assert_eq!(projections_cap(0), 41);
        assert_eq!(projections_cap(10_000), 2048);
        assert_eq!(projections_cap(u32::MAX), 2048);
    }

    #[test]
    fn config_check_accepts_the_limits_and_refuses_beyond() {
        let ok = cfg(32, 1000, 1 << 40, 91);
        check_config(&ok, projections_cap(1000)).unwrap();
        // n·B_enc < 2^(b−1), exactly at the edge: n = 2, B_enc = 2^29 − 1 < 2^30 = 2^31/2.
        let b = (1u64 << 29) - 1;
        check_config(&cfg(31, 2, b * b, 41), 41).unwrap();
        let edge = 1u64 << 29; // n·B_enc = 2^30 = 2^(b−1): refused.
        assert!(matches!(
            check_config(&cfg(31, 2, edge * edge, 41), 41),
            Err(ValidateError::SumCanWrap { .. })
        ));
        // B_enc² not a square: n²·B_enc² < 2^(2b−2) decides (B_enc = √(2^58 − 1) < 2^29).
        check_config(&cfg(31, 2, (1 << 58) - 1, 41), 41).unwrap();
        for (bad, what) in [
            (ValidationConfig { bits: 33, ..ok }, "bits"),
            (ValidationConfig { bits: 0, ..ok }, "bits"),
            (
                ValidationConfig {
                    dim: (1 << 20) + 1,
                    ..ok
                },
                "dimension",
            ),
            (ValidationConfig { dim: 0, ..ok }, "dimension"),
            (
                ValidationConfig {
                    clients: (1 << 20) + 1,
                    ..ok
                },
                "clients",
            ),
            (ValidationConfig { clients: 0, ..ok }, "clients"),
            (
                ValidationConfig {
                    neighbours: 1 << 10,
                    ..ok
                },
                "neighbours",
            ),
            (
                ValidationConfig {
                    projections: 0,
                    ..ok
                },
                "projections",
            ),
            (
                ValidationConfig {
                    projections: 2049,
                    ..ok
                },
                "projections",
            ),
            (ValidationConfig { bound_sq: 0, ..ok }, "bound"),
            (
                ValidationConfig {
                    bound_sq: 1 << 62,
                    ..ok
                },
                "squared bound",
            ),
        ] {
            match check_config(&bad, u32::MAX) {
                Err(ValidateError::TooLarge { what: w, .. })
                | Err(ValidateError::Zero { what: w }) => {
                    assert_eq!(w, what, "{bad:?}")
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        // D24: J·d ≤ 2^30 (W5): at d = 2^20 at most 2^10 projections.
        let wide = ValidationConfig {
            dim: 1 << 20,
            projections: 1 << 10,
            ..ok
        };
        check_config(&wide, u32::MAX).unwrap();
        assert_eq!(
            check_config(
                &ValidationConfig {
                    projections: (1 << 10) + 1,
                    ..wide
                },
                u32::MAX
            ),
            Err(ValidateError::TooLarge {
                what: "projection bits J·d",
                max: 1 << 30,
                got: ((1 << 10) + 1) << 20
            })
        );
        // F3/F12: projections above the client's own cap.
        assert_eq!(
            check_config(
                &ValidationConfig {
                    projections: 375,
                    ..ok
                },
                projections_cap(1000)
            ),
            Err(ValidateError::ProjectionsAboveCap {
                projections: 375,
                cap: 374
            })
        );
    }

    /// N7 (review): a bound so small that s_val overflows to +∞ is refused (before: Ok with
    /// scale = +∞, and the encoder's 0·∞ = NaN).
    #[test]
    fn tiny_bound_gives_no_infinite_scale() {
        assert!(matches!(
            float_scale(32, 10, 100, 1, 1e-320),
            Err(ValidateError::Zero { .. })
        ));
        let s = float_scale(32, 10, 100, 1, 1e-290).unwrap();
        assert!(s.scale.is_finite() && s.scale > 0.0);
    }

    #[test]
    fn integer_bound() {
        assert_eq!(integer_bound_sq(3), Ok(9));
        assert!(integer_bound_sq(0).is_err());
        assert_eq!(
            integer_bound_sq((1 << 31) - 1),
            Ok(((1u64 << 31) - 1).pow(2))
        );
        assert!(integer_bound_sq(1 << 31).is_err());
    }

    #[test]
    fn ceil_sqrt_is_exact() {
        for v in [
            0u64,
            1,
            2,
            3,
            4,
            99_999,
            100_000,
            (1 << 40) - 1,
            1 << 40,
            u64::MAX,
        ] {
            let r = ceil_sqrt(v);
            assert!(u128::from(r) * u128::from(r) >= u128::from(v), "{v}");
            assert!(
                r == 0 || u128::from(r - 1) * u128::from(r - 1) < u128::from(v),
                "{v}"
            );
        }
        assert_eq!(ceil_sqrt(99_999), 317);
    }

    /// The signed representative of an encoded element.
    fn signed(v: u64, bits: u8) -> i64 {
        let half = 1u64 << (bits - 1);
        if v >= half {
            v as i64 - (1i64 << bits)
        } else {
            v as i64
        }
    }

    /// F10 (§17): at d = 10^5, n = 1,000, b = 32, s_val > 0 and n·B_enc < 2^(b−1), so the
    /// configuration check accepts the bound; the slack factor is ≈ 1.00015.
    #[test]
    fn f10_validated_scale_fits_at_d_1e5_n_1000_b_32() {
        for (dim, w, bound) in [
            (100_000u32, 1u64, 1.0f64),
            (100_001, 1, 3.5),
            (100_000, 16, 0.25),
        ] {
            let s = float_scale(32, 1000, dim, w, bound).unwrap();
            assert!(s.scale > 0.0 && s.scale * bound >= 1.0);
            let n = 1000u128;
            assert!(
                n * n * u128::from(s.bound_sq) < 1u128 << 62,
                "n·B_enc < 2^31"
            );
            // §5.4's chain: n·B_enc ≤ 2^(b−1) − 2 (B_enc ≤ its integer root + W).
            let root = u128::from(s.data_bound + s.rounding);
            assert!(n * (root + u128::from(w)) <= (1u128 << 31) - 2);
            check_config(
                &ValidationConfig {
                    bits: 32,
                    dim,
                    clients: 1000,
                    neighbours: 52,
                    projections: 91,
                    bound_sq: s.bound_sq,
                },
                projections_cap(1000),
            )
            .unwrap();
            let f = s.slack_factor(w, bound);
            assert!(f > 1.0 && f < 1.0002, "{f}");
        }
        // The exact values at W = 1, B = 1 (§5.4): ⌈(2^31 − 1 − 1000·318 − 1000)/1000⌉.
        let s = float_scale(32, 1000, 100_000, 1, 1.0).unwrap();
        assert_eq!(s.rounding, 317);
        assert_eq!(s.data_bound, 2_147_165);
        assert_eq!(s.bound_sq, 2_147_482u64 * 2_147_482 + 1);
    }

    /// F10: refusal when b is too small (§5.4: n = 1,000, d = 10^5 needs b ≥ 20).
    #[test]
    fn f10_refuses_when_b_is_too_small() {
        assert!(float_scale(20, 1000, 100_000, 1, 1.0).is_ok());
        assert_eq!(
            float_scale(19, 1000, 100_000, 1, 1.0),
            Err(ValidateError::ScaleTooSmall {
                bits: 19,
                clients: 1000,
                dim: 100_000
            })
        );
        // A heavy weight needs more room too: s_val·B < 1.
        assert!(matches!(
            float_scale(20, 1000, 100_000, 300, 1.0),
            Err(ValidateError::ScaleTooSmall { .. })
        ));
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(float_scale(32, 1000, 100_000, 1, bad).is_err());
        }
        assert!(float_scale(32, 0, 100_000, 1, 1.0).is_err());
        assert!(float_scale(32, 1000, 1, 1, 1.0).is_err());
        assert!(float_scale(32, 1000, 100_000, 0, 1.0).is_err());
        assert!(float_scale(33, 1000, 100_000, 1, 1.0).is_err());
        assert!(float_scale(32, 1000, (1 << 20) + 1, 1, 1.0).is_err());
    }

    /// F10: an honest client with the worst-case rounding passes: every data coordinate of an
    /// update of L2 norm B rounded away from zero (each moved by almost 1), weight W; and the
    /// core's own encoder at the validated scale on such updates.
    #[test]
    fn f10_honest_client_with_worst_case_rounding_is_within_the_bound() {
        for (bits, clients, dim, w, bound) in [
            (32u8, 1000u32, 100_000u32, 1u64, 1.0f64),
            (32, 1000, 100_000, 7, 2.5),
            (20, 1000, 100_000, 1, 1.0),
            (16, 3, 10, 5, 0.1),
            (32, 1, 2, 1, 1e-3),
        ] {
            let s = float_scale(bits, clients, dim, w, bound).unwrap();
            let data = (dim - 1) as usize;
            // Equal coordinates: the rounding errors all align with the data.
            let x = alloc::vec![bound / (data as f64).sqrt(); data];
            let norm = x.iter().map(|v| v * v).sum::<f64>().sqrt();
            let x: Vec<f64> = if norm > bound {
                x.iter().map(|v| v * bound / norm).collect()
            } else {
                x
            };
            let worst: u128 = x
                .iter()
                .map(|v| {
                    let q = libm::ceil(v * w as f64 * s.scale) as u128;
                    q * q
                })
                .sum::<u128>()
                + u128::from(w) * u128::from(w);
            assert!(worst <= u128::from(s.bound_sq), "{bits} {clients} {dim}");
            // One coordinate carrying the whole norm, rounded up.
            let q = libm::ceil(bound * w as f64 * s.scale) as u128;
            assert!(q * q + u128::from(w * w) <= u128::from(s.bound_sq));
            // The core's encoder (clip = B per coordinate, stochastic rounding).
            let enc = FloatEncoding {
                clip: bound,
                scale: s.scale,
                bits,
                max_weight: w,
            };
            let mut rng = ChaCha20Rng::seed_from_u64(u64::from(dim));
            let e = enc.encode(&x, w, &mut rng).unwrap();
            let sq: u128 = e
                .iter()
                .map(|v| {
                    let t = signed(*v, bits).unsigned_abs() as u128;
                    t * t
                })
                .sum();
            assert!(sq <= u128::from(s.bound_sq));
        }
    }

    #[test]
    fn scale_known_answers() {
        // Pins the exact integers of §5.4 for a small case (b = 16, n = 3, d = 10, W = 5):
        // ⌈√9⌉ = 3; numerator = 2^15 − 1 − 3·4 − 15 = 32740; ⌈32740/3⌉ = 10914.
        let s = float_scale(16, 3, 10, 5, 0.1).unwrap();
        assert_eq!((s.rounding, s.data_bound), (3, 10_914));
        assert_eq!(s.bound_sq, 10_917 * 10_917 + 25);
        let exact = 32_740.0 / 15.0 / 0.1;
        assert!((s.scale - exact * (1.0 - SCALE_MARGIN)).abs() < 1e-9 * exact);
        assert!(s.scale < exact);
    }
}
