//! Validated rounds through the simulator (issue 11, VALIDATION.md §21 step 9): `oversized`
//! cheaters are rejected with `validation: norm` at the upload, `forged-proof` and
//! `inconsistent` with `validation: binding`, `wrong-mask` with `validation: self mask` after
//! unmasking, and the release is exactly the honest survivors' sum, with dropouts.
//! Feature `validate` (on by default).
#![cfg(feature = "validate")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use secagg_core::params::{Assumptions, ThreatModel};
use secagg_core::ring::RingVec;
use secagg_core::{PrgKind, Stage};
use secagg_sim::plan::{GraphChoice, RoundOptions};
use secagg_sim::simulate::{Aggregate, Inputs, SimulateOptions, SimulateResult, choose_dropouts};
use secagg_sim::validate::{
    Cheat, SimulateValidation, ValidationReport, random_bounded_inputs, simulate_validated,
};

const N: u32 = 12;
const DIM: u32 = 16;

fn options(seed: u64, dropout: f64, stage: Stage, model: ThreatModel) -> SimulateOptions {
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
                model,
            },
            prg: PrgKind::Aes128Ctr,
            round_id: seed,
            round_seed: [seed as u8; 32],
        },
        dropout,
        dropout_stage: stage,
        seed,
        on_stage: None,
        dp: None,
    }
}

fn validation(bound: f64, cheaters: &[usize], cheat: Cheat) -> SimulateValidation {
    SimulateValidation {
        bound,
        cheaters: cheaters.to_vec(),
        cheat,
        verifier_key: Some([7; 32]),
    }
}

fn report(r: &SimulateResult) -> &ValidationReport {
    r.validation.as_ref().unwrap()
}

fn rejected(r: &SimulateResult) -> Vec<(usize, Stage, String)> {
    report(r)
        .rejected
        .iter()
        .map(|x| (x.client, x.stage, x.reason.clone()))
        .collect()
}

/// Unsigned inputs: B = 500 in encoded units; inputs 3 and 8 cheat. With dropouts at each
/// stage in turn, exactly the cheaters are rejected at the upload, neither is a survivor, and
/// the release is exactly the honest survivors' sum (checked again here, independently).
#[test]
fn oversized_cheaters_are_rejected_with_dropouts_at_every_stage() {
    let cheaters = [3usize, 8];
    for (i, stage) in [
        Stage::AdvertiseKeys,
        Stage::ShareKeys,
        Stage::MaskedInput,
        Stage::ConsistencyCheck,
        Stage::Unmask,
    ]
    .into_iter()
    .enumerate()
    {
        let seed = 10 + i as u64;
        let inputs = random_bounded_inputs(N, DIM, 32, 500, seed).unwrap();
        let Inputs::Words(rows) = &inputs else {
            panic!()
        };
        let rows: Vec<Vec<u64>> = rows.iter().map(RingVec::to_u64).collect();
        for x in &rows {
            assert!(x.iter().map(|v| v * v).sum::<u64>() <= 500 * 500);
        }
        let r = simulate_validated(
            inputs,
            options(seed, 1.0 / 12.0, stage, ThreatModel::Malicious),
            validation(500.0, &cheaters, Cheat::Oversized),
        )
        .unwrap();
        assert!(r.aborted.is_none(), "{stage:?}: {:?}", r.aborted);
        // A cheater also picked to go silent at or before the upload is a plain dropout.
        let silent: Vec<usize> = choose_dropouts(N, 1.0 / 12.0, seed)
            .into_iter()
            .map(|id| id as usize - 1)
            .collect();
        let want: Vec<(usize, Stage, String)> = cheaters
            .iter()
            .filter(|c| stage > Stage::MaskedInput || !silent.contains(c))
            .map(|c| (*c, Stage::MaskedInput, String::from("validation: norm")))
            .collect();
        assert_eq!(rejected(&r), want, "{stage:?}");
        assert!(r.aggregate_ok, "{stage:?}");
        assert!(report(&r).uncaught.is_empty());
        for c in cheaters {
            assert!(!r.survivors.contains(&c), "{stage:?}");
        }
        // (A client silent after its upload still counts: it is in U3.)
        assert!(r.dropped.len() >= 2, "{stage:?}: {:?}", r.dropped);
        let Some(Aggregate::Sum(sum)) = &r.aggregate else {
            panic!()
        };
        let mut want = vec![0u64; DIM as usize];
        for &i in &r.survivors {
            for (a, x) in want.iter_mut().zip(&rows[i]) {
                *a = (*a + x) % (1 << 32);
            }
        }
        assert_eq!(*sum, want, "{stage:?}");
        // Every upload was timed, the honest proofs all have one length.
        let v = report(&r);
        assert!(v.proof_bytes > 0);
        assert!(v.verify_ms > 0.0);
        assert_eq!(v.prove_ms.iter().flatten().count(), v.uploads);
    }
}

/// The control: the same round without cheaters rejects nobody, and the cheaters' inputs are
/// in the release (so the round above really left something out).
#[test]
fn without_cheaters_nobody_is_rejected() {
    let inputs = random_bounded_inputs(N, DIM, 32, 500, 3).unwrap();
    let r = simulate_validated(
        inputs,
        options(3, 0.0, Stage::MaskedInput, ThreatModel::Malicious),
        validation(500.0, &[], Cheat::Oversized),
    )
    .unwrap();
    assert!(r.aggregate_ok);
    assert!(rejected(&r).is_empty());
    assert_eq!(r.survivors, (0..N as usize).collect::<Vec<_>>());
    assert_eq!(report(&r).bound_sq, 250_000);
    assert_eq!(report(&r).projections, 42); // 41 + ⌊0.1·12⌋
}

/// Float inputs: s_val and B_enc² from the core, honest updates clipped to L2 norm B (input 0
/// is far above it and stays in), the cheater's unclipped update rejected, the mean that of
/// the survivors' clipped updates.
#[test]
fn float_cheater_is_rejected_and_honest_updates_are_clipped() {
    let values: Vec<Vec<f64>> = (0..N)
        .map(|i| {
            let s = if i == 0 { 40.0 } else { 0.2 };
            (0..DIM)
                .map(|j| s * (f64::from(i * DIM + j) * 0.7).cos())
                .collect()
        })
        .collect();
    let inputs = Inputs::Float {
        values,
        weights: (1..=N as u64).collect(),
        clip: None,
    };
    let r = simulate_validated(
        inputs,
        options(4, 0.0, Stage::MaskedInput, ThreatModel::Malicious),
        validation(2.0, &[5], Cheat::Oversized),
    )
    .unwrap();
    assert!(r.aggregate_ok, "{:?}", r.mean_error);
    assert_eq!(
        rejected(&r),
        vec![(5, Stage::MaskedInput, String::from("validation: norm"))]
    );
    assert!(r.survivors.contains(&0));
    let v = report(&r);
    assert!(v.scale.unwrap() > 0.0);
    assert!(v.slack_factor.unwrap() > 1.0);
    assert!(v.refused.is_empty());
}

/// Every other cheat kind of §16, run against the real server through the core's test-only
/// cheats: each cheater is named with its reason, no cheater is in the release, and the
/// release is exactly the honest survivors' sum; dropouts at the challenge stage and at
/// unmasking on top.
#[test]
fn every_cheat_kind_is_named_and_the_release_is_exact() {
    for (i, (cheat, stage)) in [
        (Cheat::ForgedProof, Stage::Validate),
        (Cheat::Inconsistent, Stage::Unmask),
        (Cheat::WrongMask, Stage::Validate),
    ]
    .into_iter()
    .enumerate()
    {
        let seed = 40 + i as u64;
        let inputs = random_bounded_inputs(N, DIM, 32, 500, seed).unwrap();
        let r = simulate_validated(
            inputs,
            options(seed, 0.1, stage, ThreatModel::Malicious),
            validation(500.0, &[2, 9], cheat),
        )
        .unwrap();
        let v = report(&r);
        // A cheater may also be among the random dropouts of that stage (then it is out as a
        // dropout): every rejection is a cheater's, with its kind's reason, and at least one
        // cheater is named.
        assert!(!v.rejected.is_empty(), "{cheat:?}");
        for x in &v.rejected {
            assert!([2, 9].contains(&x.client), "{cheat:?}: {x:?}");
            assert_eq!(x.reason, cheat.reason(), "{cheat:?}");
        }
        assert!(v.uncaught.is_empty(), "{cheat:?}");
        assert!(!r.survivors.contains(&2) && !r.survivors.contains(&9));
        assert!(r.aggregate_ok, "{cheat:?}");
        assert_eq!(Cheat::parse(cheat.name()), Ok(cheat));
    }
}

#[test]
fn what_cannot_run_is_refused() {
    let inputs = || random_bounded_inputs(N, DIM, 32, 100, 1).unwrap();
    let opts = || options(1, 0.0, Stage::MaskedInput, ThreatModel::Malicious);
    let Err(e) = simulate_validated(
        inputs(),
        options(1, 0.0, Stage::MaskedInput, ThreatModel::HonestButCurious),
        validation(100.0, &[], Cheat::Oversized),
    ) else {
        panic!()
    };
    assert!(e.contains("malicious"), "{e}");
    // n·B_enc ≥ 2^(b−1): the core's ValidateError.
    let Err(e) = simulate_validated(inputs(), opts(), validation(1e9, &[], Cheat::Oversized))
    else {
        panic!()
    };
    assert!(e.contains("can wrap"), "{e}");
}
