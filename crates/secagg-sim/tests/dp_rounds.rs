//! Rounds that release a differentially private mean: the protocol stays exact on what the
//! clients sent, dropouts never lower the noise below its target, and the error of the private
//! mean over many seeds matches the variance the encoding predicts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use secagg_core::params::Assumptions;
use secagg_core::{PrgKind, Stage};
use secagg_dp::pipeline::{NoiseKind, NoisePlacement};
use secagg_sim::dp::{DEFAULT_BETA, DpParams};
use secagg_sim::plan::{GraphChoice, RoundOptions};
use secagg_sim::simulate::{
    Aggregate, Inputs, SimulateDp, SimulateOptions, random_float_inputs, simulate,
};

fn options(seed: u64, dropout: f64, dp: SimulateDp) -> SimulateOptions {
    let mut round_seed = [0u8; 32];
    round_seed[..8].copy_from_slice(&seed.to_le_bytes());
    SimulateOptions {
        round: RoundOptions {
            clients: 0,
            dim: 0,
            bits: 32,
            graph: GraphChoice::Auto,
            degree: None,
            threshold: None,
            accept_weaker: false,
            assumptions: Assumptions {
                dropout_fraction: 0.2,
                ..Assumptions::default()
            },
            prg: PrgKind::Aes128Ctr,
            round_id: seed,
            round_seed,
        },
        dropout,
        dropout_stage: Stage::MaskedInput,
        seed,
        on_stage: None,
        dp: Some(dp),
    }
}

fn dp(noise: NoiseKind, placement: NoisePlacement, z: f64) -> SimulateDp {
    SimulateDp {
        params: DpParams {
            noise,
            placement,
            noise_multiplier: z,
            clip: 1.0,
            beta: DEFAULT_BETA,
            dim: 0,
        },
        delta: 1e-5,
        sampling_rate: 1.0,
        rounds: 1,
        min_survivors: None,
    }
}

#[test]
fn dp_rounds_are_exact_on_what_clients_sent_and_report_epsilon() {
    for noise in [NoiseKind::DiscreteGaussian, NoiseKind::Skellam] {
        for placement in [NoisePlacement::Distributed, NoisePlacement::Central] {
            let r = simulate(
                random_float_inputs(12, 100, 3),
                options(3, 0.2, dp(noise, placement, 1.0)),
            )
            .unwrap();
            assert!(r.aborted.is_none());
            assert!(r.aggregate_ok, "{noise:?} {placement:?}");
            assert_eq!(r.survivors.len() + r.dropped.len(), 12);
            assert!(!r.dropped.is_empty());
            let d = r.dp.unwrap();
            assert_eq!(d.padded_dim, 128);
            assert!(d.epsilon.is_finite() && d.epsilon > 0.0);
            let Some(Aggregate::Mean { mean, .. }) = r.aggregate else {
                panic!("a mean expected")
            };
            assert_eq!(mean.len(), 100);
        }
    }
}

#[test]
fn more_noise_costs_less_epsilon_and_more_error() {
    let run = |z: f64| {
        simulate(
            random_float_inputs(10, 64, 5),
            options(
                5,
                0.0,
                dp(NoiseKind::DiscreteGaussian, NoisePlacement::Distributed, z),
            ),
        )
        .unwrap()
        .dp
        .unwrap()
    };
    let (lo, hi) = (run(0.5), run(4.0));
    assert!(hi.epsilon < lo.epsilon, "{} vs {}", hi.epsilon, lo.epsilon);
    assert!(hi.expected_rmse > lo.expected_rmse);
    let mut ten = dp(
        NoiseKind::DiscreteGaussian,
        NoisePlacement::Distributed,
        0.5,
    );
    ten.rounds = 10;
    let many = simulate(random_float_inputs(10, 64, 5), options(5, 0.0, ten))
        .unwrap()
        .dp
        .unwrap();
    assert!(many.epsilon > lo.epsilon);
}

/// The squared error of the private mean, over many seeds, matches the predicted variance.
#[test]
fn error_of_the_private_mean_matches_the_prediction() {
    for (noise, placement) in [
        (NoiseKind::DiscreteGaussian, NoisePlacement::Distributed),
        (NoiseKind::Skellam, NoisePlacement::Distributed),
        (NoiseKind::DiscreteGaussian, NoisePlacement::Central),
    ] {
        let seeds = 30u64;
        let mut mse = 0.0;
        let mut predicted = 0.0;
        for seed in 1..=seeds {
            let r = simulate(
                random_float_inputs(10, 64, seed),
                options(seed, 0.0, dp(noise, placement, 1.0)),
            )
            .unwrap();
            assert!(r.aggregate_ok);
            let d = r.dp.unwrap();
            mse += d.rmse_vs_clipped * d.rmse_vs_clipped;
            predicted += d.expected_rmse * d.expected_rmse;
        }
        let ratio = mse / predicted;
        // 30 seeds × 64 coordinates: the relative spread of the estimate is about 3%.
        assert!(
            (0.85..1.15).contains(&ratio),
            "{noise:?} {placement:?}: measured/predicted variance {ratio}"
        );
    }
}

#[test]
fn dropouts_down_to_the_minimum_keep_the_noise() {
    // With the fewest survivors the round accepts, the noise is still at its target: the
    // error is not below the prediction for that many survivors.
    let mut mse = 0.0;
    let mut predicted = 0.0;
    let mut target = 0.0;
    for seed in 1..=20u64 {
        let inputs = random_float_inputs(20, 64, seed);
        let mut o = options(
            seed,
            0.0,
            dp(
                NoiseKind::DiscreteGaussian,
                NoisePlacement::Distributed,
                1.0,
            ),
        );
        // Every survivor holds a share of every dropped client's key.
        o.round.graph = GraphChoice::Complete;
        let plan = secagg_sim::plan::plan(&RoundOptions {
            clients: 20,
            dim: 64,
            ..o.round.clone()
        })
        .unwrap();
        let drop = 1.0 - f64::from(plan.config.min_clients) / 20.0;
        let r = simulate(inputs, SimulateOptions { dropout: drop, ..o }).unwrap();
        assert!(r.aborted.is_none(), "{:?}", r.aborted);
        let k = plan.config.min_clients;
        assert_eq!(r.survivors.len() as u32, k);
        let d = r.dp.unwrap();
        mse += d.rmse_vs_clipped * d.rmse_vs_clipped;
        predicted += d.expected_rmse * d.expected_rmse;
        // The target: noise of stddev z·clip on the sum (z = 1, clip = 1), over k survivors.
        target += 1.0 / f64::from(k * k);
    }
    let ratio = mse / predicted;
    assert!((0.8..1.25).contains(&ratio), "{ratio}");
    assert!(mse >= 0.85 * target, "noise below target: {mse} < {target}");
}

#[test]
fn dp_refuses_what_it_cannot_protect() {
    let d = dp(
        NoiseKind::DiscreteGaussian,
        NoisePlacement::Distributed,
        1.0,
    );
    let unsigned = Inputs::Unsigned(vec![vec![1, 2]; 4]);
    let e = simulate(unsigned, options(1, 0.0, d)).err().unwrap();
    assert!(e.contains("float"), "{e}");
    let Inputs::Float { values, .. } = random_float_inputs(4, 8, 1) else {
        unreachable!()
    };
    let weighted = Inputs::Float {
        values: values.clone(),
        weights: vec![1, 2, 1, 1],
        clip: None,
    };
    let e = simulate(weighted, options(1, 0.0, d)).err().unwrap();
    assert!(e.contains("weights"), "{e}");
    let mut bad = values;
    bad[2][3] = f64::NAN;
    let nan = Inputs::Float {
        values: bad,
        weights: vec![1; 4],
        clip: None,
    };
    let e = simulate(nan, options(1, 0.0, d)).err().unwrap();
    assert!(e.contains("input 2") && e.contains("index 3"), "{e}");
    let mut zero = d;
    zero.params.noise_multiplier = 0.0;
    let e = simulate(random_float_inputs(4, 8, 1), options(1, 0.0, zero))
        .err()
        .unwrap();
    assert!(e.contains("noise multiplier"), "{e}");
}
