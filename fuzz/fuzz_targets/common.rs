//! Shared by the targets: a small round and a recorded honest transcript of it.
#![allow(dead_code)]

use std::sync::OnceLock;

use secagg_core::{GraphKind, PrgKind, RoundConfig, Stage, ThreatModel};
use secagg_sim::harness::{Scenario, run};

pub fn config(malicious: bool) -> RoundConfig {
    RoundConfig {
        round_id: 3,
        round_seed: [1; 32],
        num_clients: 6,
        min_clients: 3,
        degree: 2,
        threshold: 2,
        graph: GraphKind::Harary,
        bits: 20,
        dim: 4,
        prg: PrgKind::Aes128Ctr,
        model: if malicious {
            ThreatModel::Malicious
        } else {
            ThreatModel::HonestButCurious
        },
        pki: malicious,
        encoding: Vec::new(),
        validation: None,
    }
}

pub fn inputs() -> Vec<Vec<u64>> {
    (0..6u64).map(|i| vec![i, i + 1, i + 2, i + 3]).collect()
}

/// (stage, from_server, client, bytes) of an honest round.
pub type Transcript = Vec<(Stage, bool, u32, Vec<u8>)>;

pub fn transcript(malicious: bool) -> &'static Transcript {
    static T: [OnceLock<Transcript>; 2] = [OnceLock::new(), OnceLock::new()];
    T[malicious as usize].get_or_init(|| {
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let l2 = log.clone();
        let mut sc = Scenario::new(config(malicious), 5);
        sc.observe = Some(Box::new(move |st, fs, id, b| {
            if let Ok(mut l) = l2.lock() {
                l.push((st, fs, id, b.to_vec()));
            }
        }));
        let _ = run(sc, inputs());
        let v = log.lock().map(|l| l.clone()).unwrap_or_default();
        v
    })
}
