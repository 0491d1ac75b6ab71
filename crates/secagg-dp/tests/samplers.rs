//! Statistical tests of the exact samplers against independently computed pmfs: chi-squared
//! goodness of fit (tails binned so every bin expects ≥ 20 draws), mean and variance, with
//! fixed seeds. Each check is also run once against a deliberately wrong parameter to show it
//! can fail.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rand_chacha::ChaCha12Rng;
use rand_core::SeedableRng;
use secagg_dp::sample::{DiscreteGaussian, DiscreteLaplace, Poisson, Skellam, bernoulli};

/// A pmf on the integers [offset, offset + p.len()), normalised; mass outside is negligible.
struct Pmf {
    offset: i64,
    p: Vec<f64>,
}

impl Pmf {
    fn mean_var(&self) -> (f64, f64) {
        let mean: f64 = self
            .p
            .iter()
            .enumerate()
            .map(|(i, p)| (self.offset + i as i64) as f64 * p)
            .sum();
        let var = self
            .p
            .iter()
            .enumerate()
            .map(|(i, p)| ((self.offset + i as i64) as f64 - mean).powi(2) * p)
            .sum();
        (mean, var)
    }
}

/// exp(−x²/(2σ²)) normalised over |x| ≤ 14σ + 10.
fn gaussian_pmf(var: f64) -> Pmf {
    let k = (14.0 * var.sqrt()).ceil() as i64 + 10;
    let w: Vec<f64> = (-k..=k)
        .map(|x| (-(x as f64).powi(2) / (2.0 * var)).exp())
        .collect();
    let s: f64 = w.iter().sum();
    Pmf {
        offset: -k,
        p: w.into_iter().map(|v| v / s).collect(),
    }
}

/// Skellam(μ): P(k) = e^−μ I_|k|(μ), from Miller's backward recurrence
/// I_{k−1} = I_{k+1} + (2k/μ) I_k normalised by Σ_k P(k) = 1.
fn skellam_pmf(mu: f64) -> Pmf {
    let kmax = (14.0 * mu.sqrt()).ceil() as usize + 30;
    let mut r = vec![0.0f64; kmax + 2];
    r[kmax] = 1e-280;
    for k in (1..=kmax).rev() {
        r[k - 1] = r[k + 1] + (2.0 * k as f64 / mu) * r[k];
        if r[k - 1] > 1e250 {
            for v in r.iter_mut() {
                *v *= 1e-250;
            }
        }
    }
    let total = r[0] + 2.0 * r[1..=kmax].iter().sum::<f64>();
    let k = kmax as i64;
    let p = (-k..=k)
        .map(|x| r[x.unsigned_abs() as usize] / total)
        .collect();
    Pmf { offset: -k, p }
}

/// Poisson(λ) from its log pmf.
fn poisson_pmf(lambda: f64) -> Pmf {
    let hi = (lambda + 14.0 * lambda.sqrt()).ceil() as i64 + 30;
    let p = (0..=hi)
        .map(|k| (-lambda + k as f64 * lambda.ln() - libm::lgamma(k as f64 + 1.0)).exp())
        .collect();
    Pmf { offset: 0, p }
}

/// Chi-squared statistic and degrees of freedom, bins merged left to right until each
/// expects at least 20; samples outside the pmf's range go to the end bins.
fn chi_squared(pmf: &Pmf, samples: &[i64]) -> (f64, usize) {
    let n = samples.len() as f64;
    let len = pmf.p.len() as i64;
    let mut counts = vec![0u64; pmf.p.len()];
    for &s in samples {
        let i = (s - pmf.offset).clamp(0, len - 1);
        counts[i as usize] += 1;
    }
    let (mut stat, mut bins) = (0.0, 0usize);
    let (mut e, mut o) = (0.0, 0u64);
    let mut pending: Vec<(f64, u64)> = Vec::new();
    for (p, c) in pmf.p.iter().zip(&counts) {
        e += p * n;
        o += c;
        if e >= 20.0 {
            pending.push((e, o));
            e = 0.0;
            o = 0;
        }
    }
    // The leftover right tail joins the last bin.
    if let Some(last) = pending.last_mut() {
        last.0 += e;
        last.1 += o;
    }
    for (e, o) in pending {
        stat += (o as f64 - e).powi(2) / e;
        bins += 1;
    }
    (stat, bins.saturating_sub(1))
}

/// Upper 10^-4 quantile of χ²(df) (Wilson–Hilferty).
fn chi2_critical(df: usize) -> f64 {
    let df = df.max(1) as f64;
    let z = 3.719;
    let a = 2.0 / (9.0 * df);
    df * (1.0 - a + z * a.sqrt()).powi(3)
}

/// Whether samples fit the pmf: chi-squared, mean and variance.
fn fits(pmf: &Pmf, samples: &[i64]) -> Result<(), String> {
    let (stat, df) = chi_squared(pmf, samples);
    let crit = chi2_critical(df);
    let n = samples.len() as f64;
    let (mean, var) = pmf.mean_var();
    let m = samples.iter().map(|&s| s as f64).sum::<f64>() / n;
    let v = samples.iter().map(|&s| (s as f64 - m).powi(2)).sum::<f64>() / (n - 1.0);
    let mean_tol = 5.0 * (var / n).sqrt() + 1e-12;
    let var_tol = 5.0 * var * (3.0 / n).sqrt() + 1e-12;
    let msg = format!(
        "chi2 {stat:.1} (df {df}, critical {crit:.1}); mean {m} vs {mean}; variance {v} vs {var}"
    );
    if stat > crit || (m - mean).abs() > mean_tol || (v - var).abs() > var_tol {
        return Err(msg);
    }
    Ok(())
}

const N: usize = 200_000;
const SIGMAS: [f64; 6] = [0.5, 1.0, 3.0, 30.0, 1000.0, 1e5];

#[test]
fn discrete_gaussian_matches_its_pmf() {
    for (i, sigma) in SIGMAS.into_iter().enumerate() {
        let var = sigma * sigma;
        let g = DiscreteGaussian::new(var).unwrap();
        assert_eq!(g.variance(), var, "test variances are exact dyadics");
        assert_eq!(g.uses_table(), var <= 16_777_216.0);
        let mut rng = ChaCha12Rng::seed_from_u64(100 + i as u64);
        let mut s = vec![0i64; N];
        g.fill(&mut rng, &mut s);
        fits(&gaussian_pmf(var), &s).unwrap_or_else(|e| panic!("σ = {sigma}: {e}"));
    }
}

#[test]
fn cks_algorithm_3_matches_its_pmf() {
    for (i, sigma) in SIGMAS.into_iter().enumerate() {
        let var = sigma * sigma;
        let g = DiscreteGaussian::cks(var).unwrap();
        assert!(!g.uses_table());
        let mut rng = ChaCha12Rng::seed_from_u64(150 + i as u64);
        let mut s = vec![0i64; N];
        g.fill(&mut rng, &mut s);
        fits(&gaussian_pmf(var), &s).unwrap_or_else(|e| panic!("σ = {sigma}: {e}"));
    }
}

#[test]
fn skellam_matches_its_pmf() {
    for (i, sigma) in SIGMAS.into_iter().enumerate() {
        let var = sigma * sigma;
        let sk = Skellam::new(var).unwrap();
        assert_eq!(sk.variance(), var);
        let mut rng = ChaCha12Rng::seed_from_u64(200 + i as u64);
        let mut s = vec![0i64; N];
        sk.fill(&mut rng, &mut s);
        fits(&skellam_pmf(var), &s).unwrap_or_else(|e| panic!("σ = {sigma}: {e}"));
    }
}

#[test]
fn poisson_matches_its_pmf() {
    // Small means exercise the left edge (no left tail) and large ones both tails.
    for (i, lambda) in [0.03125, 0.5, 3.0, 17.25, 1000.0, 123_456.5]
        .into_iter()
        .enumerate()
    {
        let p = Poisson::new(lambda).unwrap();
        assert_eq!(p.mean(), lambda);
        let mut rng = ChaCha12Rng::seed_from_u64(300 + i as u64);
        let s: Vec<i64> = (0..N).map(|_| p.sample(&mut rng) as i64).collect();
        fits(&poisson_pmf(lambda), &s).unwrap_or_else(|e| panic!("λ = {lambda}: {e}"));
    }
}

#[test]
fn discrete_laplace_matches_its_pmf() {
    for (i, (t, s)) in [(1u64, 1u64), (3, 2), (50, 1)].into_iter().enumerate() {
        let l = DiscreteLaplace::new(t, s).unwrap();
        let scale = t as f64 / s as f64;
        let k = (40.0 * scale).ceil() as i64 + 10;
        let w: Vec<f64> = (-k..=k)
            .map(|x| (-(x.abs() as f64) / scale).exp())
            .collect();
        let tot: f64 = w.iter().sum();
        let pmf = Pmf {
            offset: -k,
            p: w.into_iter().map(|v| v / tot).collect(),
        };
        let mut rng = ChaCha12Rng::seed_from_u64(400 + i as u64);
        let mut out = vec![0i64; N];
        l.fill(&mut rng, &mut out);
        fits(&pmf, &out).unwrap_or_else(|e| panic!("scale {t}/{s}: {e}"));
    }
}

#[test]
fn bernoulli_coins_have_the_right_frequency() {
    let mut rng = ChaCha12Rng::seed_from_u64(500);
    let n = 400_000;
    let cases: [(u128, u128, f64); 4] = [
        (0, 1, 1.0),
        (1, 3, (-1.0f64 / 3.0).exp()),
        (7, 2, (-3.5f64).exp()),
        ((1u128 << 100) + 12345, 1u128 << 101, (-0.5f64).exp()),
    ];
    for (num, den, p) in cases {
        let hits = (0..n)
            .filter(|_| bernoulli::exp_minus(&mut rng, num, den))
            .count() as f64;
        let sd = (p * (1.0 - p) / n as f64).sqrt();
        assert!(
            (hits / n as f64 - p).abs() <= 5.0 * sd + 1e-12,
            "exp(−{num}/{den}): {} vs {p}",
            hits / n as f64
        );
    }
    for (r, m) in [(1u128, 3u128), (5, 7), (u128::MAX / 3, u128::MAX)] {
        let p = r as f64 / m as f64;
        let hits = (0..n).filter(|_| bernoulli::ratio(&mut rng, r, m)).count() as f64;
        let sd = (p * (1.0 - p) / n as f64).sqrt();
        assert!((hits / n as f64 - p).abs() <= 5.0 * sd, "{r}/{m}");
    }
}

/// The checks have power: a sampler 3% off in σ, or a Skellam of the wrong variance, fails.
#[test]
fn the_checks_reject_a_wrong_sigma() {
    for (i, sigma) in [1.0, 30.0, 1e5].into_iter().enumerate() {
        let wrong = DiscreteGaussian::new((sigma * 1.03f64).powi(2)).unwrap();
        let mut rng = ChaCha12Rng::seed_from_u64(600 + i as u64);
        let mut s = vec![0i64; N];
        wrong.fill(&mut rng, &mut s);
        assert!(
            fits(&gaussian_pmf(sigma * sigma), &s).is_err(),
            "σ = {sigma}"
        );
        let wrong = Skellam::new((sigma * 1.03f64).powi(2)).unwrap();
        wrong.fill(&mut rng, &mut s);
        assert!(
            fits(&skellam_pmf(sigma * sigma), &s).is_err(),
            "Skellam σ = {sigma}"
        );
    }
    // Skellam and the discrete Gaussian differ at small σ: each check tells them apart.
    let mut rng = ChaCha12Rng::seed_from_u64(700);
    let mut s = vec![0i64; N];
    Skellam::new(1.0).unwrap().fill(&mut rng, &mut s);
    assert!(fits(&gaussian_pmf(1.0), &s).is_err());
}
