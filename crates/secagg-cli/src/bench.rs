//! `secagg bench`: whole rounds at the sizes of the peer comparison, medians over repeats.

use std::time::Duration;

use clap::Args;
use secagg_core::Stage;
use secagg_sim::simulate::{random_inputs, simulate};
use serde_json::json;

use crate::simulate_cmd::{GraphArg, ParamArgs, PrgArg, SimulateArgs, StageArg, ThreatArg};

/// Options of `secagg bench`.
#[derive(Args)]
pub struct BenchArgs {
    /// Runs per row; medians are reported.
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Only the small rows (for a quick check).
    #[arg(long)]
    pub quick: bool,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

struct Row {
    n: u32,
    d: u32,
    dropout: f64,
    complete: bool,
    t: u32,
    flower_s: f64,
    budget_s: f64,
}

const ROWS: [Row; 6] = [
    Row {
        n: 100,
        d: 100_000,
        dropout: 0.0,
        complete: false,
        t: 11,
        flower_s: 9.7,
        budget_s: 0.3,
    },
    Row {
        n: 100,
        d: 100_000,
        dropout: 0.1,
        complete: false,
        t: 11,
        flower_s: 10.9,
        budget_s: 0.35,
    },
    Row {
        n: 500,
        d: 10_000,
        dropout: 0.0,
        complete: false,
        t: 11,
        flower_s: 44.0,
        budget_s: 1.0,
    },
    Row {
        n: 1000,
        d: 10_000,
        dropout: 0.0,
        complete: false,
        t: 11,
        flower_s: 88.0,
        budget_s: 2.0,
    },
    Row {
        n: 100,
        d: 1_000_000,
        dropout: 0.0,
        complete: false,
        t: 11,
        flower_s: 23.7,
        budget_s: 1.5,
    },
    Row {
        n: 100,
        d: 10_000,
        dropout: 0.0,
        complete: true,
        t: 51,
        flower_s: 159.0,
        budget_s: 1.5,
    },
];

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn args_for(r: &Row, seed: u64) -> SimulateArgs {
    SimulateArgs {
        clients: Some(r.n),
        dim: Some(r.d),
        graph: if r.complete {
            GraphArg::Complete
        } else {
            GraphArg::Harary
        },
        params: ParamArgs {
            threat: ThreatArg::HonestButCurious,
            assumed_corrupt: 0.05,
            assumed_dropout: None,
            degree: if r.complete { None } else { Some(20) },
            threshold: Some(r.t),
            accept_weaker_params: true,
        },
        bits: 32,
        dropout: r.dropout,
        dropout_stage: StageArg::MaskedInput,
        prg: PrgArg::Aes,
        seed,
        inputs: None,
        weights: None,
        clip: None,
        output: None,
        dp: crate::dp_args::DpArgs::default(),
        dp_rounds: 1,
        json: false,
    }
}

pub fn run(a: BenchArgs) -> Result<(), String> {
    let rows: Vec<&Row> = ROWS
        .iter()
        .filter(|r| !a.quick || r.n as u64 * r.d as u64 <= 1_000_000)
        .collect();
    let mut out = Vec::new();
    if !a.json {
        println!(
            "{:>5} {:>8} {:>8} {:>9} {:>9} {:>10} {:>11} {:>12} {:>9} {:>8} {:>7}",
            "n",
            "d",
            "dropout",
            "graph",
            "round s",
            "server s",
            "client ms",
            "up KB/cli",
            "Flower s",
            "speedup",
            "budget"
        );
    }
    for r in rows {
        let mut wall = Vec::new();
        let mut server = Vec::new();
        let mut client = Vec::new();
        let mut mask_ms = Vec::new();
        let mut up = 0;
        for rep in 0..a.repeat.max(1) {
            let sa = args_for(r, rep as u64 + 1);
            let opts = sa.options(r.n, r.d as usize)?;
            let inputs = random_inputs(r.n, r.d, 32, rep as u64 + 1);
            let res = simulate(inputs, opts)?;
            if !res.aggregate_ok {
                return Err(format!(
                    "bench round n={} d={} produced a wrong aggregate",
                    r.n, r.d
                ));
            }
            let st = &res.report.stages;
            wall.push(res.report.wall.as_secs_f64());
            server.push(
                st.values()
                    .map(|s| s.server)
                    .sum::<Duration>()
                    .as_secs_f64(),
            );
            let senders = st
                .get(&Stage::AdvertiseKeys)
                .map_or(1, |s| s.senders.max(1));
            client.push(
                st.values()
                    .map(|s| s.clients_total)
                    .sum::<Duration>()
                    .as_secs_f64()
                    * 1e3
                    / senders as f64,
            );
            if let Some(m) = st.get(&Stage::MaskedInput) {
                mask_ms.push(m.clients_total.as_secs_f64() * 1e3 / m.senders.max(1) as f64);
            }
            up = st.values().map(|s| s.bytes_up).sum::<u64>() / r.n as u64;
        }
        let (w, s, c, m) = (
            median(wall),
            median(server),
            median(client),
            median(mask_ms),
        );
        let graph = if r.complete {
            format!("K{}/t{}", r.n, r.t)
        } else {
            format!("k20/t{}", r.t)
        };
        if a.json {
            out.push(json!({
                "n": r.n, "d": r.d, "dropout": r.dropout, "graph": graph,
                "round_s": w, "server_s": s, "client_ms": c, "masked_input_client_ms": m,
                "bytes_up_per_client": up, "flower_s": r.flower_s, "speedup": r.flower_s / w,
                "budget_s": r.budget_s, "within_budget": w <= r.budget_s, "repeats": a.repeat,
            }));
        } else {
            println!(
                "{:>5} {:>8} {:>7.0}% {:>9} {:>9.3} {:>10.3} {:>11.2} {:>12.1} {:>9.1} {:>7.0}× {:>6.2}{}",
                r.n,
                r.d,
                r.dropout * 100.0,
                graph,
                w,
                s,
                c,
                up as f64 / 1e3,
                r.flower_s,
                r.flower_s / w,
                r.budget_s,
                if w <= r.budget_s { " ok" } else { " OVER" }
            );
        }
    }
    if a.json {
        println!("{}", json!({ "rows": out }));
    } else {
        println!(
            "(medians of {} runs; round s = wall time of the whole in-process round on this machine)",
            a.repeat
        );
    }
    Ok(())
}
