//! Writes `devices/cortex-m/vectors/*.txt`: fixed-seed rounds of the simulator harness at the
//! device's target size (d = 10^4, k = 20, b = 16, and d = 10^5 to show RAM does not grow), keeping client 1's messages (the ones the
//! firmware replays and must reproduce byte for byte). Same line format as
//! `crates/secagg-sim/tests/vectors`. Run: `cargo run --manifest-path
//! devices/cortex-m/vectors-gen/Cargo.toml` (only after an intended wire or crypto change).

use std::sync::{Arc, Mutex};

use secagg_core::server::Outcome;
use secagg_core::{GraphKind, PrgKind, RoundConfig, ThreatModel};
use secagg_sim::harness::{Scenario, run};

/// Client `id`'s input, as the firmware computes it (a stand-in for a model update).
fn input(id: u32, dim: u32, bits: u8) -> Vec<u64> {
    let m = (1u64 << bits) - 1;
    (0..u64::from(dim))
        .map(|j| (u64::from(id) * 7919 + j * 104_729) & m)
        .collect()
}

fn main() -> Result<(), String> {
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../vectors");
    for (name, prg, dim) in [
        ("d10000_k20_b16_chacha20.txt", PrgKind::ChaCha20, 10_000u32),
        ("d10000_k20_b16_aes.txt", PrgKind::Aes128Ctr, 10_000),
        // d × 10: the device's RAM must not grow with it.
        ("d100000_k20_b16_chacha20.txt", PrgKind::ChaCha20, 100_000),
    ] {
        let (n, bits) = (21u32, 16u8);
        let cfg = RoundConfig {
            round_id: 12,
            round_seed: [0x12; 32],
            num_clients: n,
            min_clients: 11,
            degree: 20,
            threshold: 11,
            graph: GraphKind::Complete,
            bits,
            dim,
            prg,
            model: ThreatModel::HonestButCurious,
            pki: false,
            encoding: Vec::new(),
            validation: None,
        };
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l2 = lines.clone();
        let mut sc = Scenario::new(cfg, 77);
        sc.observe = Some(Box::new(move |stage, from_server, id, bytes| {
            if id == 1 {
                let dir = if from_server { "S->C" } else { "C->S" };
                let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                if let Ok(mut l) = l2.lock() {
                    l.push(format!("{} {dir} {id} {hex}", stage.name()));
                }
            }
        }));
        let inputs = (1..=n).map(|id| input(id, dim, bits)).collect();
        let r = run(sc, inputs)?;
        let Outcome::Released { survivors, .. } = r.outcome else {
            return Err(format!("{name}: the round did not release"));
        };
        let mut text = lines.lock().map_err(|e| e.to_string())?.join("\n");
        text.push_str(&format!("\nsurvivors {}\n", survivors.len()));
        std::fs::write(out.join(name), text).map_err(|e| e.to_string())?;
        println!("wrote {name}");
    }
    Ok(())
}
