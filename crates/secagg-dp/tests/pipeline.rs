//! End-to-end tests of the client pipeline and the server's decoding: round trips without
//! noise, the noise variance of the decoded sum (with dropouts down to min_survivors, and
//! central noise), and refusals that say what to change.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rand_chacha::ChaCha12Rng;
use rand_core::SeedableRng;
use secagg_dp::pipeline::{DpEncoding, DpSetup, NoiseKind, NoisePlacement};

fn inputs(clients: usize, dim: usize, seed: u64) -> Vec<Vec<f64>> {
    let mut rng = ChaCha12Rng::seed_from_u64(seed);
    (0..clients)
        .map(|_| {
            (0..dim)
                .map(|_| (rand_core::Rng::next_u32(&mut rng) as f64 / u32::MAX as f64 - 0.5) * 0.3)
                .collect()
        })
        .collect()
}

fn clipped(x: &[f64], clip: f64) -> Vec<f64> {
    let n = x.iter().map(|a| a * a).sum::<f64>().sqrt();
    let f = if n > clip { clip / n } else { 1.0 };
    x.iter().map(|a| a * f).collect()
}

/// Σ of encodings mod 2^bits.
fn sum_mod(encoded: &[Vec<u64>], bits: u8) -> Vec<u64> {
    let mask = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let mut acc = vec![0u64; encoded[0].len()];
    for e in encoded {
        for (a, v) in acc.iter_mut().zip(e) {
            *a = a.wrapping_add(*v) & mask;
        }
    }
    acc
}

fn true_sum(xs: &[Vec<f64>], clip: f64) -> Vec<f64> {
    let mut s = vec![0.0; xs[0].len()];
    for x in xs {
        for (a, v) in s.iter_mut().zip(clipped(x, clip)) {
            *a += v;
        }
    }
    s
}

#[test]
fn round_trip_without_noise() {
    let (clients, dim, clip) = (5usize, 100usize, 1.0);
    let mut xs = inputs(clients, dim, 1);
    // One long vector (clipped), one negative spike.
    xs[0].iter_mut().for_each(|v| *v *= 40.0);
    xs[1][7] = -0.9;
    for bits in [16u8, 32, 64] {
        let setup = DpSetup::new(dim, clip, 0.0, bits, clients as u32, 3, [bits; 32]);
        let enc = DpEncoding::new(&setup).unwrap();
        assert_eq!(enc.encoded_dim(), 128);
        assert_eq!(enc.local_variance(), 0.0);
        let mut rng = ChaCha12Rng::seed_from_u64(2);
        let encoded: Vec<Vec<u64>> = xs
            .iter()
            .map(|x| enc.encode(x, &mut rng).unwrap())
            .collect();
        let mask = if bits == 64 {
            u64::MAX
        } else {
            (1u64 << bits) - 1
        };
        assert!(encoded.iter().flatten().all(|v| v & !mask == 0));
        let decoded = enc.decode_sum(&sum_mod(&encoded, bits)).unwrap();
        let expect = true_sum(&xs, clip);
        assert_eq!(decoded.len(), dim);
        // Rounding: each client moves each rotated coordinate by < 1 level (1/γ), unbiased.
        let rms = (decoded
            .iter()
            .zip(&expect)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f64>()
            / dim as f64)
            .sqrt();
        let limit = 3.0 * (clients as f64 / 4.0).sqrt() / enc.scale();
        assert!(rms < limit, "bits {bits}: rms {rms} vs {limit}");
        assert!(rms > 0.0);
        // The spike survived with its sign.
        assert!(decoded[7] < -0.5, "{}", decoded[7]);
    }
}

/// Empirical variance of decoded − true over coordinates and seeds, with `survivors` of the
/// clients summed.
fn error_variance(
    enc: &DpEncoding,
    xs: &[Vec<f64>],
    survivors: usize,
    seeds: u64,
    central: bool,
) -> f64 {
    let clip = enc.setup().clip;
    let bits = enc.bits();
    let expect = true_sum(&xs[..survivors], clip);
    let (mut sum_sq, mut count) = (0.0, 0.0);
    let noise = enc.client_noise().unwrap();
    for seed in 0..seeds {
        let mut rng = ChaCha12Rng::seed_from_u64(1000 + seed);
        let encoded: Vec<Vec<u64>> = xs[..survivors]
            .iter()
            .map(|x| enc.encode_with(&noise, x, &mut rng).unwrap())
            .collect();
        let mut sum = sum_mod(&encoded, bits);
        if central {
            enc.add_central_noise(&mut sum, &mut rng).unwrap();
        }
        let decoded = enc.decode_sum(&sum).unwrap();
        for (a, b) in decoded.iter().zip(&expect) {
            sum_sq += (a - b).powi(2);
            count += 1.0;
        }
    }
    sum_sq / count
}

#[test]
fn noise_variance_matches_the_target_even_with_dropouts() {
    let (clients, dim, clip, z) = (10usize, 256usize, 1.0, 0.7);
    let xs = inputs(clients, dim, 3);
    for noise in [NoiseKind::DiscreteGaussian, NoiseKind::Skellam] {
        let mut setup = DpSetup::new(dim, clip, z, 32, clients as u32, 6, [5; 32]);
        setup.noise = noise;
        let enc = DpEncoding::new(&setup).unwrap();
        let g2 = enc.scale() * enc.scale();
        assert!(
            (enc.target_variance() - (z * enc.scale() * clip).powi(2)).abs()
                < 1e-6 * enc.target_variance()
        );
        assert!(enc.local_variance() * 6.0 >= enc.target_variance() * (1.0 - 1e-12));
        for survivors in [10usize, 6] {
            let got = error_variance(&enc, &xs, survivors, 24, false);
            let s = survivors as f64;
            let predicted = (s * enc.local_variance() + s / 6.0) / g2;
            // 24 seeds × 256 coordinates: the variance estimate's relative sd is ~2%.
            assert!(
                (got / predicted - 1.0).abs() < 0.1,
                "{noise:?}, {survivors} survivors: {got} vs {predicted}"
            );
            // Never below the target, whoever dropped.
            assert!(got > 0.9 * enc.target_variance() / g2);
            let rmse = enc.expected_mean_error(survivors as u32) * s;
            assert!((rmse * rmse / predicted - 1.0).abs() < 1e-9);
        }
    }
}

#[test]
fn central_noise_is_added_once_by_the_server() {
    let (clients, dim, clip, z) = (8usize, 200usize, 2.0, 1.5);
    let xs = inputs(clients, dim, 4);
    for noise in [NoiseKind::DiscreteGaussian, NoiseKind::Skellam] {
        let mut setup = DpSetup::new(dim, clip, z, 32, clients as u32, 4, [6; 32]);
        setup.noise = noise;
        setup.placement = NoisePlacement::Central;
        let enc = DpEncoding::new(&setup).unwrap();
        assert_eq!(enc.local_variance(), 0.0);
        let g2 = enc.scale() * enc.scale();
        let got = error_variance(&enc, &xs, clients, 24, true);
        let predicted = (enc.noise_variance(clients as u32) + clients as f64 / 6.0) / g2;
        assert!(
            (got / predicted - 1.0).abs() < 0.1,
            "{noise:?}: {got} vs {predicted}"
        );
        assert!(enc.noise_variance(clients as u32) >= enc.target_variance());
    }
    // A distributed round refuses server noise.
    let enc = DpEncoding::new(&DpSetup::new(dim, clip, z, 32, 8, 4, [6; 32])).unwrap();
    let mut sum = vec![0u64; enc.encoded_dim()];
    let mut rng = ChaCha12Rng::seed_from_u64(1);
    assert!(
        enc.add_central_noise(&mut sum, &mut rng)
            .unwrap_err()
            .0
            .contains("already")
    );
}

#[test]
fn refusals_say_what_to_change() {
    let mut rng = ChaCha12Rng::seed_from_u64(9);
    let enc = DpEncoding::new(&DpSetup::new(4, 1.0, 1.0, 32, 10, 5, [0; 32])).unwrap();
    let e = enc
        .encode(&[0.0, f64::NAN, 0.0, 0.0], &mut rng)
        .unwrap_err();
    assert!(e.0.contains("index 1"), "{e}");
    let e = enc
        .encode(&[0.0, 0.0, f64::NEG_INFINITY, 0.0], &mut rng)
        .unwrap_err();
    assert!(e.0.contains("index 2"), "{e}");
    let e = enc.encode(&[0.0; 3], &mut rng).unwrap_err();
    assert!(e.0.contains("expects 4"), "{e}");
    assert!(enc.decode_sum(&[0; 3]).unwrap_err().0.contains("has 4"));
    assert!(
        enc.decode_sum(&[1 << 40, 0, 0, 0])
            .unwrap_err()
            .0
            .contains("2^32")
    );

    // 8 bits cannot hold 10^4 clients.
    let e = DpEncoding::new(&DpSetup::new(1000, 1.0, 1.0, 8, 10_000, 5_000, [0; 32])).unwrap_err();
    assert!(
        e.0.contains("--bits") && e.0.contains("fewer clients"),
        "{e}"
    );
    // 16 bits, 5000 clients: room for the rounding but not one level per coordinate.
    let e = DpEncoding::new(&DpSetup::new(1 << 10, 1.0, 0.0, 16, 5000, 4000, [0; 32])).unwrap_err();
    assert!(
        e.0.contains("levels") && e.0.contains("fewer clients"),
        "{e}"
    );
    // Noise-dominated: a huge noise multiplier with one survivor's share.
    let e = DpEncoding::new(&DpSetup::new(1 << 12, 1.0, 1e4, 24, 50, 1, [0; 32])).unwrap_err();
    assert!(e.0.contains("noise multiplier"), "{e}");
    for bad in [
        DpSetup {
            clip: f64::NAN,
            ..DpSetup::new(4, 1.0, 1.0, 32, 10, 5, [0; 32])
        },
        DpSetup {
            min_survivors: 11,
            ..DpSetup::new(4, 1.0, 1.0, 32, 10, 5, [0; 32])
        },
        DpSetup {
            beta: 1.0,
            ..DpSetup::new(4, 1.0, 1.0, 32, 10, 5, [0; 32])
        },
        DpSetup {
            bits: 65,
            ..DpSetup::new(4, 1.0, 1.0, 32, 10, 5, [0; 32])
        },
        DpSetup {
            noise_multiplier: -1.0,
            ..DpSetup::new(4, 1.0, 1.0, 32, 10, 5, [0; 32])
        },
        DpSetup {
            dim: 0,
            ..DpSetup::new(4, 1.0, 1.0, 32, 10, 5, [0; 32])
        },
    ] {
        assert!(DpEncoding::new(&bad).is_err(), "{bad:?}");
    }
}

#[test]
fn sensitivities_follow_the_scale() {
    let enc = DpEncoding::new(&DpSetup::new(1000, 0.5, 1.0, 32, 100, 50, [1; 32])).unwrap();
    let delta = enc.scale() * 0.5;
    assert!(enc.l2_sensitivity() >= delta && enc.l2_sensitivity() < delta * 1.01);
    assert!(enc.l1_sensitivity() >= enc.l2_sensitivity());
    // Every encoded client's rounded vector is within the L2 sensitivity (no noise here).
    let zero_noise = DpEncoding::new(&DpSetup::new(1000, 0.5, 0.0, 32, 100, 50, [1; 32])).unwrap();
    let mut rng = ChaCha12Rng::seed_from_u64(3);
    let x: Vec<f64> = (0..1000)
        .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
        .collect();
    let e = zero_noise.encode(&x, &mut rng).unwrap();
    let norm2: f64 = e.iter().map(|&v| (v as u32 as i32 as f64).powi(2)).sum();
    assert!(norm2.sqrt() <= zero_noise.l2_sensitivity());
}

/// ‖x‖₂ of an encoding read as signed values in `bits` bits.
fn signed_norm(x: &[u64], bits: u8) -> f64 {
    x.iter()
        .map(|&v| {
            let s = ((v << (64 - bits)) as i64) >> (64 - bits);
            (s as f64) * (s as f64)
        })
        .sum::<f64>()
        .sqrt()
}

/// Validated rounds (VALIDATION.md §12): the norm-bounded encoding keeps n vectors at its norm
/// bound from wrapping, and every honest encoding (its noise share redrawn beyond N_η) stays
/// within the bound, including inputs far above the clip.
#[test]
fn norm_bounded_encodings_stay_within_their_bound() {
    for (placement, z) in [
        (NoisePlacement::Distributed, 1e-6),
        (NoisePlacement::Central, 1e-6),
        (NoisePlacement::Distributed, 1.0),
    ] {
        let mut s = DpSetup::new(3000, 1.0, z, 32, 50, 40, [7; 32]);
        s.placement = placement;
        let enc = DpEncoding::norm_bounded(&s).unwrap();
        let bound = enc.norm_bound().unwrap();
        let eta = enc.noise_norm_bound().unwrap();
        assert_eq!(eta == 0.0, placement == NoisePlacement::Central);
        // The server's central noise is counted too (review rev10, W3).
        let tail = enc.central_noise_tail();
        assert_eq!(tail == 0.0, placement == NoisePlacement::Distributed);
        assert!(
            50.0 * (bound + 1.0) + tail < 2f64.powi(31),
            "{bound} {tail}"
        );
        let plain = DpEncoding::new(&s).unwrap();
        if z < 1.0 {
            // Little noise: the overflow bound sets the plain γ, too large for n vectors at
            // the norm bound; the validated γ is lower.
            assert!(enc.scale() < plain.scale());
            assert!(50.0 * (plain.l2_sensitivity() + 1.0) >= 2f64.powi(31) * (1.0 - 1e-9));
        }
        let noise = enc.client_noise().unwrap();
        let mut rng = ChaCha12Rng::seed_from_u64(5);
        for (i, x) in inputs(20, 3000, 9).into_iter().enumerate() {
            // Inputs up to 10·20 times the clip (clipped by the encoding).
            let x: Vec<f64> = x.iter().map(|v| v * (1 + i) as f64 * 10.0).collect();
            let e = enc.encode_bounded(&noise, &x, &mut rng).unwrap();
            let norm = signed_norm(&e, 32);
            assert!(norm <= bound, "{norm} > {bound}");
        }
    }
}

/// N_η is a real tail bound: the noise norm sits near σ√d, well below N_η, and N_η grows
/// with σ; client-side Skellam has no bound and is refused for validated rounds.
#[test]
fn the_noise_norm_bound_is_a_tail_bound_and_skellam_is_refused() {
    let s = DpSetup::new(1000, 1.0, 1.0, 32, 100, 80, [3; 32]);
    let enc = DpEncoding::new(&s).unwrap();
    let eta = enc.noise_norm_bound().unwrap();
    let typical = (enc.local_variance() * enc.padded_dim() as f64).sqrt();
    assert!(
        eta > typical && eta < 1.5 * typical,
        "{eta} vs σ√d = {typical}"
    );
    let mut sk = s.clone();
    sk.noise = NoiseKind::Skellam;
    let e = DpEncoding::new(&sk).unwrap();
    assert!(e.noise_norm_bound().unwrap_err().0.contains("Skellam"));
    assert!(DpEncoding::norm_bounded(&sk).is_err());
    sk.placement = NoisePlacement::Central;
    assert_eq!(
        DpEncoding::new(&sk).unwrap().noise_norm_bound().unwrap(),
        0.0
    );
}

/// Review rev10, W3: with central noise, n vectors at the validated bound in one coordinate
/// plus the server's noise must not wrap the sum (before, γ ignored the noise: 183 wraps in 400
/// draws at n = 50, b = 20, z = 0.3).
#[test]
fn central_noise_cannot_wrap_a_sum_at_the_validated_bound() {
    for (n, z, bits) in [(50u32, 0.3f64, 20u8), (50, 1.0, 20), (20, 1.0, 18)] {
        for noise in [NoiseKind::DiscreteGaussian, NoiseKind::Skellam] {
            let mut s = DpSetup::new(3000, 1.0, z, bits, n, n - 10, [7; 32]);
            s.placement = NoisePlacement::Central;
            s.noise = noise;
            let enc = DpEncoding::norm_bounded(&s).unwrap();
            let b = enc.norm_bound().unwrap();
            let per = (b * b * (1.0 + 1e-12)).ceil().sqrt().floor() as i64;
            let mask = (1u64 << bits) - 1;
            let mut rng = ChaCha12Rng::seed_from_u64(1);
            for _ in 0..200 {
                let mut sum = vec![0u64; enc.padded_dim()];
                sum[0] = (i64::from(n) * per) as u64 & mask;
                enc.add_central_noise(&mut sum, &mut rng).unwrap();
                let signed = ((sum[0] << (64 - bits)) as i64) >> (64 - bits);
                assert!(signed > 0, "{noise:?} n={n} z={z}: the sum wrapped");
            }
        }
    }
}
