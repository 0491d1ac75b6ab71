//! Property tests: for any graph, threshold and dropout pattern, the released aggregate is
//! exactly the sum of the survivors, or the round aborts below its threshold.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use secagg_core::server::Outcome;
use secagg_core::{GraphKind, PrgKind, RoundAborted, RoundConfig, Stage, ThreatModel};
use secagg_sim::harness::{Scenario, plain_sum, run};

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]
    #[test]
    fn masks_cancel_for_any_graph_and_dropouts(
        n in 3u32..16,
        k_half in 1u32..8,
        t_frac in 0.0f64..1.0,
        bits in 1u8..=64,
        malicious in any::<bool>(),
        drops in proptest::collection::vec((0usize..5, 1u32..16), 0..6),
        seed in any::<u64>(),
    ) {
        let k = (2 * k_half).min(n - 1);
        let graph = if k >= n - 1 { GraphKind::Complete } else { GraphKind::Harary };
        let k = if graph == GraphKind::Complete { n - 1 } else { k };
        let t = 2 + ((k - 2) as f64 * t_frac) as u32;
        let t = t.clamp(2, k);
        let model = if malicious { ThreatModel::Malicious } else { ThreatModel::HonestButCurious };
        let cfg = RoundConfig {
            round_id: seed, round_seed: [seed as u8; 32], num_clients: n, min_clients: t,
            degree: k, threshold: t, graph, bits, dim: 17, prg: PrgKind::Aes128Ctr, model, pki: malicious, encoding: Vec::new(), validation: None,
        };
        let mask = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
        let x: Vec<Vec<u64>> = (0..n as u64).map(|i| (0..17u64).map(|j| (i.wrapping_mul(0x9e37_79b9) ^ j.wrapping_mul(seed)) & mask).collect()).collect();
        let mut sc = Scenario::new(cfg.clone(), seed);
        for (stage, id) in drops {
            if id <= n {
                sc.dropouts.push((Stage::ALL[stage], vec![id]));
            }
        }
        let r = run(sc, x.clone()).unwrap();
        match r.outcome {
            Outcome::Released { aggregate, survivors } => {
                prop_assert!(survivors.len() >= t as usize);
                prop_assert_eq!(aggregate, plain_sum(&x, survivors.iter(), bits));
            }
            Outcome::Aborted(RoundAborted::TooFewClients { remaining, needed, .. }) => {
                prop_assert!(remaining < needed);
            }
            Outcome::Aborted(RoundAborted::CannotReconstruct { shares, needed, .. }) => {
                // A sparse graph can lose too many of one client's neighbours.
                prop_assert!(shares < needed);
            }
            Outcome::Aborted(other) => prop_assert!(false, "unexpected abort {other}"),
        }
    }
}
