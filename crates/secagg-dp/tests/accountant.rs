//! The RDP accountant against Google's dp-accounting, the papers' formulas and the properties
//! any accountant must have.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use secagg_dp::accountant::{Accountant, Mechanism, Round, default_orders, poisson_gaussian_rdp};

fn gaussian(z: f64, q: f64, rounds: u64) -> Round {
    Round::new(
        Mechanism::Gaussian {
            noise_multiplier: z,
        },
        q,
        rounds,
    )
    .unwrap()
}

fn eps(round: &Round, delta: f64) -> (f64, f64) {
    let mut acc = Accountant::new();
    acc.compose(round);
    let e = acc.epsilon(delta).unwrap();
    (e.epsilon, e.order)
}

fn close(got: f64, want: f64, rel: f64) -> bool {
    ((got - want) / want).abs() <= rel
}

#[test]
fn unsampled_gaussian_is_alpha_over_two_z_squared() {
    let acc = {
        let mut a = Accountant::new();
        a.compose(&gaussian(2.0, 1.0, 3));
        a
    };
    for (a, r) in acc.orders().iter().zip(acc.rdp()) {
        let want = 3.0 * a / 8.0;
        assert!((r - want).abs() <= 1e-12 * want, "α={a}: {r} vs {want}");
    }
}

/// dp-accounting's own unit test (`test_compute_rdp_poisson_sampled_gaussian`): z = 2.5,
/// q = 0.01, 50 releases, at orders 1.5, 2.5, 5, 50, 100 (its rtol is 1e-4).
#[test]
fn dp_accounting_published_rdp_values() {
    let want = [
        (1.5, 6.70579741e-04),
        (2.5, 1.08548710e-03),
        (5.0, 2.18075656e-03),
        (50.0, 2.38460375e-02),
        (100.0, 1.67416308e02),
    ];
    for (a, w) in want {
        let got = 50.0 * poisson_gaussian_rdp(0.01, 2.5, a);
        assert!(close(got, w, 1e-4), "α={a}: {got} vs {w}");
    }
}

/// Frozen outputs of dp-accounting 0.6.0 (`pip install dp-accounting`):
/// `RdpAccountant()` composed with `SelfComposedDpEvent(PoissonSampledDpEvent(q,
/// GaussianDpEvent(z)), R)`, then `get_epsilon_and_optimal_order(δ)`.
#[test]
fn agrees_with_dp_accounting_epsilons() {
    let cases = [
        // (z, q, R, δ, ε, order)
        (1.1, 0.01, 1000, 1e-5, 1.7117701662429012, 9.6),
        (0.8, 0.001, 100, 1e-5, 1.082100438636862, 8.9),
        (2.0, 0.1, 100, 1e-6, 2.9141737620582155, 8.2),
        (5.0, 1.0, 1, 1e-5, 0.794522032537103, 22.0),
        (0.5, 0.01, 1000, 1e-5, 15.4721334181956, 2.0),
        // Some fractional orders do not converge here (dp-accounting warns and skips them).
        (1.0, 0.06, 10000, 1e-5, 71.04787578706781, 1.8),
    ];
    for (z, q, r, delta, want, want_order) in cases {
        let (got, order) = eps(&gaussian(z, q, r), delta);
        assert!(close(got, want, 1e-6), "z={z} q={q} R={r}: {got} vs {want}");
        assert!(
            (order - want_order).abs() < 1e-9,
            "order {order} vs {want_order}"
        );
    }
}

fn ddg(l2: f64, l1: f64, local_variance: f64, clients: u32, dim: usize) -> Mechanism {
    Mechanism::DistributedDiscreteGaussian {
        l2_sensitivity: l2,
        l1_sensitivity: l1,
        local_variance,
        clients,
        dim,
    }
}

fn skellam(l2: f64, l1: f64, variance: f64) -> Mechanism {
    Mechanism::Skellam {
        l2_sensitivity: l2,
        l1_sensitivity: l1,
        variance,
    }
}

/// Frozen from an independent Python implementation (scipy `logsumexp`, exact binomials) of
/// Kairouz-Liu-Steinke 2021 Prop. 14 (τ of Theorem 1), Agarwal-Kairouz-Liu 2021 Thm 3.5 and
/// Zhu-Wang 2019 Thm 6, charged at ⌈α⌉ on dp-accounting's default orders and converted with
/// dp-accounting's `compute_epsilon` (δ = 1e-5).
#[test]
fn discrete_mechanisms_match_the_papers_formulas() {
    let cases = [
        // τ matters here (σ² = 1 per client): τ·d ≈ 0.6.
        (
            ddg(10.0, 100.0, 1.0, 1000, 1000),
            1.0,
            1,
            1.3361700706287682,
            14.0,
        ),
        (
            ddg(10.0, 100.0, 1.0, 1000, 1000),
            0.1,
            100,
            2.9640838620376826,
            6.0,
        ),
        (
            ddg(10.0, 100.0, 4.0, 1000, 1000),
            1.0,
            1,
            0.6158015412081521,
            27.0,
        ),
        (
            ddg(100.0, 1000.0, 400.0, 100, 1000),
            0.01,
            1000,
            0.9031963675961798,
            17.0,
        ),
        (
            skellam(100.0, 1000.0, 10000.0),
            1.0,
            1,
            4.752968336819822,
            5.0,
        ),
        (
            skellam(100.0, 1000.0, 10000.0),
            0.01,
            1000,
            2.4505530113114418,
            7.0,
        ),
        (skellam(3.0, 5.0, 10.0), 1.0, 1, 4.780228336819822, 5.0),
    ];
    for (m, q, r, want, want_order) in cases {
        let (got, order) = eps(&Round::new(m, q, r).unwrap(), 1e-5);
        assert!(close(got, want, 1e-9), "{m:?} q={q} R={r}: {got} vs {want}");
        assert_eq!(order, want_order, "{m:?}");
    }
}

#[test]
fn discrete_mechanisms_cost_at_least_the_gaussian_with_the_same_noise() {
    // Same Δ₂ and total variance: DDG and Skellam pay a small premium over the Gaussian.
    let (l2, var) = (50.0, 2500.0 * 4.0);
    let g = eps(&gaussian(libm::sqrt(var) / l2, 1.0, 10), 1e-5).0;
    let d = eps(
        &Round::new(ddg(l2, 500.0, var / 100.0, 100, 1000), 1.0, 10).unwrap(),
        1e-5,
    )
    .0;
    let s = eps(&Round::new(skellam(l2, 500.0, var), 1.0, 10).unwrap(), 1e-5).0;
    assert!(d >= g && d < g * 1.01, "ddg {d} vs gaussian {g}");
    assert!(s >= g && s < g * 1.05, "skellam {s} vs gaussian {g}");
}

#[test]
fn epsilon_grows_with_rounds_and_shrinks_with_noise_and_sampling() {
    let e = |z, q, r| eps(&gaussian(z, q, r), 1e-5).0;
    assert!(e(1.1, 0.01, 10) < e(1.1, 0.01, 100));
    assert!(e(1.1, 0.01, 100) < e(1.1, 0.01, 1000));
    assert!(e(2.0, 0.01, 100) < e(1.1, 0.01, 100));
    assert!(e(5.0, 0.01, 100) < e(2.0, 0.01, 100));
    assert!(e(1.1, 0.001, 100) < e(1.1, 0.01, 100));
    assert!(e(1.1, 0.01, 100) < e(1.1, 1.0, 100));
    let s = |mu, q, r| eps(&Round::new(skellam(10.0, 100.0, mu), q, r).unwrap(), 1e-5).0;
    assert!(s(1000.0, 0.1, 10) < s(1000.0, 0.1, 100));
    assert!(s(4000.0, 0.1, 10) < s(1000.0, 0.1, 10));
    assert!(s(1000.0, 0.01, 10) < s(1000.0, 0.1, 10));
    let d = |var, q, r| {
        eps(
            &Round::new(ddg(10.0, 100.0, var, 100, 64), q, r).unwrap(),
            1e-5,
        )
        .0
    };
    assert!(d(10.0, 0.1, 10) < d(10.0, 0.1, 100));
    assert!(d(40.0, 0.1, 10) < d(10.0, 0.1, 10));
    assert!(d(10.0, 0.01, 10) < d(10.0, 0.1, 10));
}

#[test]
fn composition_adds_and_the_ledger_round_trips() {
    let one = gaussian(1.1, 0.01, 400);
    let mut a = Accountant::new();
    a.compose(&one);
    a.compose(&one);
    // Composing twice = one round of twice the count.
    let mut b = Accountant::new();
    b.compose(&gaussian(1.1, 0.01, 800));
    for (x, y) in a.rdp().iter().zip(b.rdp()) {
        assert!((x - y).abs() <= 1e-12 * y.max(1e-300), "{x} vs {y}");
    }
    // Saved and rebuilt: the same answers, and the next round checked before it runs.
    let saved = Accountant::from_rdp(a.orders().to_vec(), a.rdp().to_vec()).unwrap();
    assert_eq!(saved, a);
    let before = saved.epsilon(1e-5).unwrap().epsilon;
    let after = saved.epsilon_after(&one, 1e-5).unwrap().epsilon;
    assert!(after > before);
    assert_eq!(
        saved.epsilon(1e-5).unwrap().epsilon,
        before,
        "epsilon_after must not mutate"
    );
    // Mixed mechanisms compose too.
    let mut mixed = saved.clone();
    mixed.compose(&Round::new(skellam(10.0, 100.0, 1e4), 0.01, 10).unwrap());
    assert!(mixed.epsilon(1e-5).unwrap().epsilon > before);
}

#[test]
fn delta_inverts_epsilon() {
    let mut a = Accountant::new();
    a.compose(&gaussian(1.1, 0.01, 1000));
    let e = a.epsilon(1e-5).unwrap();
    let (d, order) = a.delta(e.epsilon).unwrap();
    assert!(close(d, 1e-5, 1e-6), "{d}");
    assert_eq!(order, e.order);
}

#[test]
fn nothing_spent_is_zero_epsilon() {
    let a = Accountant::new();
    assert_eq!(a.epsilon(1e-5).unwrap().epsilon, 0.0);
    assert_eq!(a.orders(), default_orders().as_slice());
}

#[test]
fn refusals_say_what_to_change() {
    let bad = |r: Result<Round, secagg_dp::DpError>, needle: &str| {
        let e = r.unwrap_err().0;
        assert!(e.contains(needle), "{e}");
    };
    bad(
        Round::new(
            Mechanism::Gaussian {
                noise_multiplier: 0.0,
            },
            0.1,
            1,
        ),
        "noise multiplier",
    );
    bad(
        Round::new(
            Mechanism::Gaussian {
                noise_multiplier: f64::NAN,
            },
            0.1,
            1,
        ),
        "noise multiplier",
    );
    bad(
        Round::new(
            Mechanism::Gaussian {
                noise_multiplier: 1.0,
            },
            0.0,
            1,
        ),
        "sampling rate",
    );
    bad(
        Round::new(
            Mechanism::Gaussian {
                noise_multiplier: 1.0,
            },
            1.5,
            1,
        ),
        "sampling rate",
    );
    bad(
        Round::new(
            Mechanism::Gaussian {
                noise_multiplier: 1.0,
            },
            0.5,
            0,
        ),
        "rounds",
    );
    bad(Round::new(ddg(1.0, 1.0, 1.0, 0, 10), 0.5, 1), "clients");
    bad(Round::new(skellam(1.0, 1.0, -1.0), 0.5, 1), "variance");
    let a = Accountant::new();
    assert!(a.epsilon(0.0).unwrap_err().0.contains("delta"));
    assert!(a.epsilon(1.0).unwrap_err().0.contains("delta"));
    assert!(a.delta(-1.0).is_err());
    let orders = default_orders();
    let short = vec![0.0; orders.len() - 1];
    assert!(
        Accountant::from_rdp(orders.clone(), short)
            .unwrap_err()
            .0
            .contains("one per order")
    );
    let mut corrupt = vec![0.0; orders.len()];
    corrupt[3] = f64::NAN;
    assert!(
        Accountant::from_rdp(orders.clone(), corrupt)
            .unwrap_err()
            .0
            .contains("corrupt")
    );
    assert!(Accountant::with_orders(vec![1.0, 2.0]).is_err());
    assert!(Accountant::with_orders(vec![]).is_err());
    // An exhausted budget (+∞) is a valid saved state and gives ε = ∞.
    let spent = Accountant::from_rdp(orders.clone(), vec![f64::INFINITY; orders.len()]).unwrap();
    assert_eq!(spent.epsilon(1e-5).unwrap().epsilon, f64::INFINITY);
}

mod planning {
    use secagg_dp::pipeline::{DpEncoding, DpSetup, NoiseKind, NoisePlacement};
    use secagg_dp::plan::{PlanMechanism, PlanRequest, pipeline_round, plan};

    use super::*;

    fn request(mechanism: PlanMechanism, epsilon: f64) -> PlanRequest {
        PlanRequest {
            epsilon,
            delta: 1e-5,
            rounds: 100,
            sampling_rate: 0.1,
            mechanism,
            setup: DpSetup::new(1000, 1.0, 1.0, 24, 100, 80, [7; 32]),
        }
    }

    fn spent(req: &PlanRequest, z: f64) -> f64 {
        let round = match req.mechanism {
            PlanMechanism::Gaussian => Round::new(
                Mechanism::Gaussian {
                    noise_multiplier: z,
                },
                0.1,
                100,
            )
            .unwrap(),
            m => {
                let mut setup = req.setup.clone();
                setup.noise_multiplier = z;
                if m == PlanMechanism::Skellam {
                    setup.noise = NoiseKind::Skellam;
                }
                let enc = DpEncoding::new(&setup).unwrap();
                pipeline_round(&setup, &enc, 0.1, 100).unwrap()
            }
        };
        eps(&round, 1e-5).0
    }

    #[test]
    fn the_plan_is_the_smallest_noise_within_budget() {
        for m in [
            PlanMechanism::Gaussian,
            PlanMechanism::DistributedDiscreteGaussian,
            PlanMechanism::Skellam,
        ] {
            let req = request(m, 2.0);
            let p = plan(&req).unwrap();
            assert!(p.spent.epsilon <= 2.0, "{m:?}: {p:?}");
            assert_eq!(spent(&req, p.noise_multiplier), p.spent.epsilon);
            // 0.1% less noise would overspend.
            assert!(
                spent(&req, p.noise_multiplier * 0.999) > 2.0,
                "{m:?}: not minimal"
            );
            assert!(p.rmse_per_coordinate > 0.0);
            assert!((p.l2_error / p.rmse_per_coordinate - libm::sqrt(1000.0)).abs() < 1e-9);
            assert_eq!(p.scale.is_some(), m != PlanMechanism::Gaussian);
        }
        // The Gaussian's error: z·clip over the survivors, per coordinate.
        let p = plan(&request(PlanMechanism::Gaussian, 2.0)).unwrap();
        assert!((p.rmse_per_coordinate - p.noise_multiplier / 80.0).abs() < 1e-12);
    }

    #[test]
    fn tighter_budgets_need_more_noise_and_cost_accuracy() {
        let loose = plan(&request(PlanMechanism::DistributedDiscreteGaussian, 8.0)).unwrap();
        let tight = plan(&request(PlanMechanism::DistributedDiscreteGaussian, 1.0)).unwrap();
        assert!(tight.noise_multiplier > loose.noise_multiplier);
        assert!(tight.rmse_per_coordinate > loose.rmse_per_coordinate);
    }

    #[test]
    fn central_noise_is_one_draw_of_the_full_variance() {
        let mut setup = DpSetup::new(1000, 1.0, 2.0, 32, 100, 100, [1; 32]);
        setup.placement = NoisePlacement::Central;
        let enc = DpEncoding::new(&setup).unwrap();
        let round = pipeline_round(&setup, &enc, 1.0, 1).unwrap();
        match round.mechanism() {
            Mechanism::DistributedDiscreteGaussian {
                clients,
                local_variance,
                ..
            } => {
                assert_eq!(*clients, 1);
                assert!(*local_variance >= enc.target_variance());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn impossible_budgets_are_refused_with_the_reason() {
        // ε = 0.5 needs z ≈ 30, but at 12 bits the encoding refuses z beyond ≈ 6.7.
        let mut narrow = request(PlanMechanism::DistributedDiscreteGaussian, 0.5);
        narrow.setup.bits = 12;
        let e = plan(&narrow).unwrap_err();
        assert!(e.0.contains("more noise than the pipeline can hold"), "{e}");
        // ε = 0.001 at δ = 1e-5 is below what the orders up to 1024 can certify at all.
        let e = plan(&request(PlanMechanism::Gaussian, 0.001)).unwrap_err();
        assert!(e.0.contains("raise the target epsilon"), "{e}");
        let mut bad = request(PlanMechanism::Gaussian, 1.0);
        bad.delta = 0.0;
        assert!(plan(&bad).unwrap_err().0.contains("delta"));
        bad = request(PlanMechanism::Gaussian, f64::NAN);
        assert!(plan(&bad).unwrap_err().0.contains("epsilon"));
    }
}

#[test]
fn nothing_spent_is_no_epsilon_for_a_ledger() {
    let mut acc = Accountant::new();
    assert!(acc.spent(1e-5).unwrap().is_none());
    let round = gaussian(1.0, 1.0, 1);
    acc.compose(&round);
    let e = acc.spent(1e-5).unwrap().expect("a composed round is spent");
    assert_eq!(e.epsilon, acc.epsilon(1e-5).unwrap().epsilon);
    assert!(acc.spent(2.0).is_err());
}
