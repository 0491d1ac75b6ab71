//! Validated rounds with differential privacy (VALIDATION.md §12): with server-side noise the
//! clients prove ‖x‖₂ ≤ Δ₂ (the DP sensitivity, so validation enforces exactly what the
//! accountant assumed) and every cheat kind is named while the private mean of the honest
//! survivors is released; client-side noise needs an explicit opt-in, and under it a client can
//! send signal in place of noise up to the stated factor.
#![cfg(feature = "validate")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rand_core::SeedableRng;
use secagg_core::params::{Assumptions, ThreatModel};
use secagg_core::validate::secagg_zk::Generators;
use secagg_core::validate::secagg_zk::norm::{self, NormContext, NormParams, NormWitness};
use secagg_core::{PrgKind, Stage};
use secagg_dp::pipeline::{DpEncoding, NoiseKind, NoisePlacement};
use secagg_sim::dp::{DEFAULT_BETA, DpParams, validated_bound_sq};
use secagg_sim::plan::{GraphChoice, RoundOptions};
use secagg_sim::simulate::{
    Aggregate, SimulateDp, SimulateOptions, SimulateResult, random_float_inputs,
};
use secagg_sim::validate::{Cheat, SimulateValidation, simulate_validated_with};

const N: u32 = 10;
const DIM: u32 = 60;
const CLIP: f64 = 1.5;

fn options(seed: u64, noise: NoiseKind, placement: NoisePlacement) -> SimulateOptions {
    SimulateOptions {
        round: RoundOptions {
            clients: N,
            dim: 0,
            bits: 32,
            graph: GraphChoice::Auto,
            degree: None,
            threshold: None,
            accept_weaker: false,
            assumptions: Assumptions {
                corrupt_fraction: 0.1,
                dropout_fraction: 0.34,
                model: ThreatModel::Malicious,
            },
            prg: PrgKind::Aes128Ctr,
            round_id: seed,
            round_seed: [seed as u8; 32],
        },
        dropout: 0.0,
        dropout_stage: Stage::MaskedInput,
        seed,
        on_stage: None,
        dp: Some(SimulateDp {
            params: DpParams {
                noise,
                placement,
                noise_multiplier: 1.0,
                clip: CLIP,
                beta: DEFAULT_BETA,
                dim: DIM as usize,
            },
            delta: 1e-5,
            sampling_rate: 1.0,
            rounds: 1,
            min_survivors: None,
        }),
    }
}

/// The error of a round that must be refused.
fn refused(r: Result<SimulateResult, String>) -> String {
    match r {
        Ok(_) => panic!("the round ran but should have been refused"),
        Err(e) => e,
    }
}

fn run(
    seed: u64,
    placement: NoisePlacement,
    cheaters: &[usize],
    cheat: Cheat,
    client_noise: bool,
) -> Result<SimulateResult, String> {
    let mut o = options(seed, NoiseKind::DiscreteGaussian, placement);
    if cheat == Cheat::Oversized && !cheaters.is_empty() {
        o.dropout = 0.1;
        o.dropout_stage = Stage::Unmask;
    }
    simulate_validated_with(
        random_float_inputs(N, DIM, seed),
        o,
        SimulateValidation {
            bound: CLIP,
            cheaters: cheaters.to_vec(),
            cheat,
            verifier_key: Some([9; 32]),
        },
        client_noise,
    )
}

/// Server-side noise: every cheat kind is rejected with its reason at its stage, the cheaters
/// are not survivors, the protocol's sum is exactly the honest survivors' encodings, and the
/// release is their private mean (its error within the DP noise's scale).
#[test]
fn central_noise_names_every_cheat_kind_and_releases_the_honest_mean() {
    for (i, (cheat, stage, reason)) in [
        (Cheat::Oversized, Stage::MaskedInput, "validation: norm"),
        (Cheat::ForgedProof, Stage::Validate, "validation: binding"),
        (Cheat::Inconsistent, Stage::Validate, "validation: binding"),
        (Cheat::WrongMask, Stage::Unmask, "validation: self mask"),
    ]
    .into_iter()
    .enumerate()
    {
        let cheaters = [2usize, 7];
        let r = run(
            40 + i as u64,
            NoisePlacement::Central,
            &cheaters,
            cheat,
            false,
        )
        .unwrap();
        assert!(r.aborted.is_none(), "{cheat:?}: {:?}", r.aborted);
        let v = r.validation.as_ref().unwrap();
        let got: Vec<(usize, Stage, &str)> = v
            .rejected
            .iter()
            .map(|x| (x.client, x.stage, x.reason.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![(2, stage, reason), (7, stage, reason)],
            "{cheat:?}"
        );
        assert!(v.uncaught.is_empty(), "{cheat:?}");
        assert!(r.aggregate_ok, "{cheat:?}");
        for c in cheaters {
            assert!(!r.survivors.contains(&c));
        }
        // Server-side noise: the bound is Δ₂ and a cheater gains nothing (factor 1).
        assert_eq!(v.dp_factor, Some(1.0));
        assert_eq!(v.noise_bound, Some(0.0));
        let dp = r.dp.as_ref().unwrap();
        assert!(dp.epsilon.is_finite() && dp.epsilon > 0.0);
        assert!(
            dp.rmse_vs_clipped < 5.0 * dp.expected_rmse,
            "{cheat:?}: {} vs {}",
            dp.rmse_vs_clipped,
            dp.expected_rmse
        );
        assert!(matches!(r.aggregate, Some(Aggregate::Mean { .. })));
    }
}

/// Client-side noise is refused without the opt-in, with the factor in the message; with it
/// the round runs, reports the factor (> 1) and N_η, and still rejects an oversized cheater.
#[test]
fn client_noise_needs_the_opt_in_and_reports_its_factor() {
    let err = refused(run(
        50,
        NoisePlacement::Distributed,
        &[],
        Cheat::Oversized,
        false,
    ));
    assert!(
        err.contains("--validate-client-noise") && err.contains("× the clip"),
        "{err}"
    );
    let r = run(
        50,
        NoisePlacement::Distributed,
        &[4],
        Cheat::Oversized,
        true,
    )
    .unwrap();
    assert!(r.aborted.is_none() && r.aggregate_ok);
    let v = r.validation.as_ref().unwrap();
    assert_eq!(v.rejected.len(), 1);
    assert_eq!(v.rejected[0].reason, "validation: norm");
    let f = v.dp_factor.unwrap();
    assert!(f > 1.5, "{f}");
    assert!(v.noise_bound.unwrap() > 0.0);
    // The opt-in without client-side noise is a mistake, not silently ignored.
    let err = refused(run(
        50,
        NoisePlacement::Central,
        &[],
        Cheat::Oversized,
        true,
    ));
    assert!(err.contains("--dp-central"), "{err}");
}

/// Client-side Skellam noise has no norm bound here: refused with its reason; server-side
/// Skellam runs.
#[test]
fn client_side_skellam_is_refused_and_central_skellam_runs() {
    let go = |placement| {
        simulate_validated_with(
            random_float_inputs(N, DIM, 3),
            options(3, NoiseKind::Skellam, placement),
            SimulateValidation {
                bound: CLIP,
                cheaters: vec![],
                cheat: Cheat::Oversized,
                verifier_key: Some([9; 32]),
            },
            placement == NoisePlacement::Distributed,
        )
    };
    let err = refused(go(NoisePlacement::Distributed));
    assert!(err.contains("Skellam"), "{err}");
    let r = go(NoisePlacement::Central).unwrap();
    assert!(r.aggregate_ok && r.validation.unwrap().rejected.is_empty());
}

/// With DP, B is the L2 clip: a different DP clip is refused.
#[test]
fn the_bound_must_be_the_dp_clip() {
    let err = refused(simulate_validated_with(
        random_float_inputs(N, DIM, 5),
        options(5, NoiseKind::DiscreteGaussian, NoisePlacement::Central),
        SimulateValidation {
            bound: 2.0 * CLIP,
            cheaters: vec![],
            cheat: Cheat::Oversized,
            verifier_key: None,
        },
        false,
    ));
    assert!(err.contains("clip"), "{err}");
}

/// The factor is real (VALIDATION.md §12): pure signal of norm just under Δ₂ + N_η, with no
/// noise at all, proves under the client-noise bound; the same vector cannot prove under the
/// server-side-noise bound Δ₂ (the prover refuses: no proof exists for a false statement).
#[test]
fn signal_in_place_of_noise_passes_only_under_client_side_noise() {
    let setup = |placement| secagg_dp::pipeline::DpSetup {
        placement,
        ..secagg_dp::pipeline::DpSetup::new(DIM as usize, CLIP, 1.0, 32, N, 8, [1; 32])
    };
    let with_noise = DpEncoding::norm_bounded(&setup(NoisePlacement::Distributed)).unwrap();
    let target = 0.99 * with_noise.norm_bound().unwrap();
    let sensitivity = with_noise.l2_sensitivity();
    assert!(target > 2.0 * sensitivity, "{target} vs {sensitivity}");
    // One big coordinate: all signal, no noise.
    let d = with_noise.encoded_dim();
    let mut x = vec![0i64; d];
    x[0] = target as i64;
    let prove = |bound_sq: u64| {
        let params = NormParams::new(d, bound_sq, None).unwrap();
        let gens = Generators::shared(params.generator_sizes()).unwrap();
        let ctx = NormContext {
            session: [3; 32],
            client: 1,
            upload_hash: [4; 32],
        };
        let w = NormWitness::new(x.clone(), Default::default());
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        norm::prove(&gens, &params, &ctx, &w, &mut rng)
            .map(|p| norm::verify(&gens, &params, &ctx, &p).is_ok())
    };
    assert_eq!(prove(validated_bound_sq(&with_noise).unwrap()), Ok(true));
    let central_bound_sq = (sensitivity * sensitivity).ceil() as u64;
    assert!(prove(central_bound_sq).is_err());
}
