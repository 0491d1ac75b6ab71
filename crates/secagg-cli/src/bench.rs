//! `secagg bench`: whole rounds at the sizes of the peer comparison, medians over repeats, each
//! set against this machine's limits measured in the same run. `secagg bench --validate` is
//! the validated-input costs beside the plain round (`bench_validate.rs`).
//!
//! Before the rows, the bench measures on one core ([`MachineLimits`]): the mask PRG's key
//! stream (R_ks bytes/s, through `secagg_core::prg::apply_masks`), memory bandwidth (B bytes
//! read + written/s by a u64 wrapping-add loop over buffers far larger than cache) and X25519
//! (R_x agreements/s, `DhKeyPair::agree`); P is the number of cores. Each is reported as the
//! median of its samples, and the bounds use the fastest sample (noise only slows a core, so
//! that is the closest estimate of the limit). No figure from another machine or another day
//! enters the output.
//!
//! # The lower-bound model
//!
//! For a row with n clients, d values, k neighbours, b bits (w = 4 key-stream bytes per value
//! for b ≤ 32, else 8), S survivors and D dropouts (who drop after computing their masked
//! input, so every client masks with all k neighbours):
//!
//! - masked input, per client (a client runs on one core): ≥ (k + 1)·d·w / R_ks, its self mask
//!   and k pairwise masks;
//! - whole client: ≥ that + 2k / R_x (an encryption key and a mask key agreed per neighbour);
//! - server, on P cores: ≥ [S·⌈d·b/8⌉ / B + (S + m)·d·w / R_ks + m / R_x] / P: each
//!   survivor's masked vector read once, the key streams unmasking regenerates (survivors'
//!   self masks, and the pairwise masks between each dropout and its m live neighbours) and
//!   the m agreements behind the latter, where m ≥ D·k − min(D·(D − 1), D·k) (the graph is
//!   random, so only this bound is known);
//! - round, all n clients and the server in this one process: ≥ max(n·client / P + server,
//!   client + the server's unmasking terms), i.e. all the work spread over P cores, and the
//!   unmasking waiting for the last masked input.
//!
//! Work the model leaves out (hashing, AEAD, Shamir, message encoding, scheduling) only makes
//! a round slower, so each `ratio_*` = measured / limit is ≥ 1; 1 would be a round at this
//! machine's limit.

use std::time::Duration;

use clap::Args;
use secagg_core::{PrgKind, Stage};
use secagg_sim::simulate::{random_inputs, simulate};
use serde_json::json;

use crate::simulate_cmd::{GraphArg, ParamArgs, PrgArg, SimulateArgs, StageArg, ThreatArg};
use secagg_cli::machine_limits::{MachineLimits, median};

/// `secagg bench --validate`.
#[path = "bench_validate.rs"]
#[cfg_attr(not(feature = "validate"), allow(dead_code))]
mod validate;

/// The model of [the module documentation](self), as the JSON output states it.
const MODEL: &str = "Lower bounds from this machine's limits measured in this run \
    (R_ks key-stream bytes/s, B memory bytes read+written/s, R_x X25519 agreements/s, each on \
    one core, the fastest sample of each ('best'); P cores) and the row's shape (n clients, \
    d values, k neighbours, b bits, w = 4 key-stream bytes per value for b <= 32 else 8, \
    S survivors, D dropouts after masking). Masked input per client (one core) >= \
    (k+1)*d*w/R_ks; client >= that + 2k/R_x; server >= [S*ceil(d*b/8)/B + (S+m)*d*w/R_ks + \
    m/R_x]/P, where m >= D*k - min(D*(D-1), D*k) pairwise masks of dropouts' live neighbours \
    are regenerated; round (all clients and the server in one process) >= \
    max(n*client/P + server, client + the server's unmasking terms). Uncounted work \
    (hashing, AEAD, Shamir, encoding) only adds time: ratio = measured/limit >= 1.";

/// Modulus bits of every row.
const BITS: u8 = 32;
/// The mask PRG of every row ([`PrgArg::Aes`]); its key stream is what gets measured.
const PRG: PrgKind = PrgKind::Aes128Ctr;

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
    /// Only these rows, numbered from 1 in table order (for tests); overrides --quick.
    #[arg(long, hide = true, value_delimiter = ',')]
    pub rows: Vec<usize>,
    /// Validated inputs (issue 11): client prove and server verify times, proof bytes and
    /// upload, side by side with the plain round of the same n and d, at d = 10^3, 10^4, 10^5
    /// and n = 100 (--quick: d = 10^3, the batch from the provers' proofs, one run). Long:
    /// 10–15 minutes on one core, most of it the 100 proofs at d = 10^4.
    #[arg(long, conflicts_with = "rows")]
    pub validate: bool,
    /// --validate: clients per round.
    #[arg(long, default_value_t = 100, requires = "validate")]
    pub clients: u32,
    /// --validate: these dimensions instead of 10^3, 10^4, 10^5.
    #[arg(long, value_delimiter = ',', requires = "validate")]
    pub dims: Vec<u32>,
    /// --validate: clients whose norm and binding proofs are timed (and whose proofs are
    /// verified alone).
    #[arg(long, default_value_t = 3, requires = "validate")]
    pub provers: usize,
    /// --validate: distinct norm proofs in the server's batch of n (the rest repeat them).
    /// Default: n up to d = 10^4, else --provers (--quick: --provers).
    #[arg(long, requires = "validate")]
    pub distinct: Option<usize>,
    /// --validate: also time the provers' two proofs (wall) with the prover's MSMs and folds
    /// split over this many threads (`secagg client --prove-threads`); 1 skips it. Default: the
    /// cores this process may use.
    #[arg(long, requires = "validate", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub prove_threads: Option<u32>,
}

struct Row {
    n: u32,
    d: u32,
    dropout: f64,
    complete: bool,
    t: u32,
}

const ROWS: [Row; 6] = [
    Row {
        n: 100,
        d: 100_000,
        dropout: 0.0,
        complete: false,
        t: 11,
    },
    Row {
        n: 100,
        d: 100_000,
        dropout: 0.1,
        complete: false,
        t: 11,
    },
    Row {
        n: 500,
        d: 10_000,
        dropout: 0.0,
        complete: false,
        t: 11,
    },
    Row {
        n: 1000,
        d: 10_000,
        dropout: 0.0,
        complete: false,
        t: 11,
    },
    Row {
        n: 100,
        d: 1_000_000,
        dropout: 0.0,
        complete: false,
        t: 11,
    },
    Row {
        n: 100,
        d: 10_000,
        dropout: 0.0,
        complete: true,
        t: 51,
    },
];

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
        bits: BITS,
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

/// The work a row's shape implies (see the module documentation).
struct Work {
    /// Key-stream bytes one client expands: (k + 1)·d·w.
    client_keystream_bytes: f64,
    /// X25519 agreements of one client: 2k.
    client_x25519: f64,
    /// Masked-input bytes the server reads: S·⌈d·b/8⌉.
    server_masked_bytes: f64,
    /// Key-stream bytes the server regenerates: (S + m)·d·w.
    server_keystream_bytes: f64,
    /// X25519 agreements the server redoes for dropouts: m (a lower bound).
    server_x25519: f64,
}

impl Work {
    fn of(d: u32, k: u32, bits: u8, survivors: usize, dropped: usize) -> Result<Self, String> {
        let modulus = secagg_core::ring::Modulus::new(bits)
            .ok_or_else(|| format!("bits must be 1..=64, got {bits}"))?;
        let w = modulus.stream_bytes_per_element() as f64;
        let (d_f, k_f) = (d as f64, k as f64);
        let (s, dr) = (survivors as f64, dropped as f64);
        // Each dropout has k neighbours; at most min(D − 1, k) of them dropped too.
        let live_pairs = (dr * k_f - (dr * (dr - 1.0)).min(dr * k_f)).max(0.0);
        Ok(Self {
            client_keystream_bytes: (k_f + 1.0) * d_f * w,
            client_x25519: 2.0 * k_f,
            server_masked_bytes: s * modulus.packed_len(d as usize) as f64,
            server_keystream_bytes: (s + live_pairs) * d_f * w,
            server_x25519: live_pairs,
        })
    }

    fn to_json(&self) -> serde_json::Value {
        json!({
            "client_keystream_bytes": self.client_keystream_bytes,
            "client_x25519": self.client_x25519,
            "server_masked_input_bytes": self.server_masked_bytes,
            "server_keystream_bytes": self.server_keystream_bytes,
            "server_x25519_at_least": self.server_x25519,
        })
    }
}

/// Lower bounds in seconds.
struct Bounds {
    masked_input_client: f64,
    client: f64,
    server: f64,
    round: f64,
}

fn bounds(w: &Work, m: &MachineLimits, n: u32) -> Bounds {
    let p = m.cores.max(1) as f64;
    let (ks, mem, x) = (
        m.keystream_bytes_per_s.best,
        m.memory_bytes_per_s.best,
        m.x25519_per_s.best,
    );
    let masked_input_client = w.client_keystream_bytes / ks;
    let client = masked_input_client + w.client_x25519 / x;
    let unmask = (w.server_keystream_bytes / ks + w.server_x25519 / x) / p;
    let server = w.server_masked_bytes / mem / p + unmask;
    let round = (n as f64 * client / p + server).max(client + unmask);
    Bounds {
        masked_input_client,
        client,
        server,
        round,
    }
}

/// Medians of one row's runs and the counts the model needs.
struct Measured {
    round_s: f64,
    server_s: f64,
    client_ms: f64,
    masked_input_client_ms: f64,
    bytes_up_per_client: u64,
    k: u32,
    bits: u8,
    survivors: usize,
    dropped: usize,
}

fn measure_row(r: &Row, repeat: usize) -> Result<Measured, String> {
    let mut wall = Vec::new();
    let mut server = Vec::new();
    let mut client = Vec::new();
    let mut mask_ms = Vec::new();
    let mut up = 0;
    let (mut k, mut bits, mut survivors, mut dropped) = (0, BITS, 0, 0);
    for rep in 0..repeat {
        let sa = args_for(r, rep as u64 + 1);
        let opts = sa.options(r.n, r.d as usize)?;
        let inputs = random_inputs(r.n, r.d, BITS, rep as u64 + 1);
        let res = simulate(inputs, opts)?;
        if !res.aggregate_ok {
            return Err(format!(
                "bench round n={} d={} produced a wrong aggregate",
                r.n, r.d
            ));
        }
        if res.plan.config.prg != PRG {
            return Err(String::from(
                "bench round used another PRG than the one measured",
            ));
        }
        (k, bits) = (res.plan.config.degree, res.plan.config.bits);
        (survivors, dropped) = (res.survivors.len(), res.dropped.len());
        let st = &res.report.stages;
        wall.push(res.report.wall.as_secs_f64());
        server.push(
            st.values()
                .map(|s| s.server)
                .sum::<Duration>()
                .as_secs_f64(),
        );
        // Every client advertises keys and (dropouts included: they drop after computing)
        // computes its masked input, so both per-client figures divide by that count.
        let clients = st
            .get(&Stage::AdvertiseKeys)
            .map_or(1, |s| s.senders.max(1)) as f64;
        client.push(
            st.values()
                .map(|s| s.clients_total)
                .sum::<Duration>()
                .as_secs_f64()
                * 1e3
                / clients,
        );
        if let Some(m) = st.get(&Stage::MaskedInput) {
            mask_ms.push(m.clients_total.as_secs_f64() * 1e3 / clients);
        }
        up = st.values().map(|s| s.bytes_up).sum::<u64>() / r.n as u64;
    }
    Ok(Measured {
        round_s: median(wall),
        server_s: median(server),
        client_ms: median(client),
        masked_input_client_ms: median(mask_ms),
        bytes_up_per_client: up,
        k,
        bits,
        survivors,
        dropped,
    })
}

fn selected_rows(a: &BenchArgs) -> Result<Vec<&'static Row>, String> {
    if a.rows.is_empty() {
        return Ok(ROWS
            .iter()
            .filter(|r| !a.quick || r.n as u64 * r.d as u64 <= 1_000_000)
            .collect());
    }
    a.rows
        .iter()
        .map(|&i| {
            i.checked_sub(1)
                .and_then(|i| ROWS.get(i))
                .ok_or_else(|| format!("--rows: rows are numbered 1..={}, got {i}", ROWS.len()))
        })
        .collect()
}

/// The machine section of the table, then its column headings.
fn print_machine_and_header(m: &MachineLimits) {
    println!(
        "This machine, measured now on one core ({} cores available); median of {} samples, \
         fastest in brackets (bounds use the fastest):",
        m.cores,
        secagg_cli::machine_limits::SAMPLES
    );
    let ks = m.keystream_bytes_per_s;
    let mem = m.memory_bytes_per_s;
    let x = m.x25519_per_s;
    println!(
        "  {:<58} {:>8.2} GB/s   ({:.2})",
        format!(
            "key stream, {} through the masks' code path (b = {})",
            secagg_cli::machine_limits::prg_name(m.prg),
            m.bits
        ),
        ks.median / 1e9,
        ks.best / 1e9
    );
    println!(
        "  {:<58} {:>8.2} GB/s   ({:.2})",
        "memory bandwidth, u64 wrapping add (bytes read + written)",
        mem.median / 1e9,
        mem.best / 1e9
    );
    println!(
        "  {:<58} {:>8.0} /s     ({:.0})",
        "X25519 key agreements", x.median, x.best
    );
    println!();
    println!(
        "{:>5} {:>8} {:>4} {:>8} | {:>8} {:>8} {:>5} | {:>8} {:>8} {:>5} | {:>9} {:>8} {:>5} | {:>7} {:>8} {:>5} | {:>9}",
        "n",
        "d",
        "drop",
        "graph",
        "round s",
        "limit s",
        "×",
        "server s",
        "limit s",
        "×",
        "client ms",
        "limit ms",
        "×",
        "mask ms",
        "limit ms",
        "×",
        "up KB/cli"
    );
}

pub fn run(a: BenchArgs) -> Result<(), String> {
    if a.validate {
        let dims = if a.dims.is_empty() {
            validate::default_dims(a.quick)
        } else {
            a.dims.clone()
        };
        let opts = validate::Options {
            clients: a.clients,
            dims,
            provers: a.provers,
            distinct: a.distinct,
            prove_threads: a
                .prove_threads
                .map_or_else(secagg_cli::machine_limits::cores, |t| t as usize),
            repeat: if a.quick { 1 } else { a.repeat },
            json: a.json,
        };
        return validate::run(opts, a.quick);
    }
    let rows = selected_rows(&a)?;
    let repeat = a.repeat.max(1);
    let machine = MachineLimits::measure(PRG, BITS)?;
    if !a.json {
        print_machine_and_header(&machine);
    }
    let mut out = Vec::new();
    for r in rows {
        let m = measure_row(r, repeat)?;
        let work = Work::of(r.d, m.k, m.bits, m.survivors, m.dropped)?;
        let b = bounds(&work, &machine, r.n);
        let graph = if r.complete {
            format!("K{}/t{}", r.n, r.t)
        } else {
            format!("k{}/t{}", m.k, r.t)
        };
        let mask_limit_ms = b.masked_input_client * 1e3;
        let client_limit_ms = b.client * 1e3;
        if a.json {
            out.push(json!({
                "n": r.n, "d": r.d, "dropout": r.dropout, "graph": graph, "k": m.k, "t": r.t,
                "bits": m.bits, "survivors": m.survivors, "dropped": m.dropped,
                "round_s": m.round_s, "server_s": m.server_s, "client_ms": m.client_ms,
                "masked_input_client_ms": m.masked_input_client_ms,
                "bytes_up_per_client": m.bytes_up_per_client,
                "limit_round_s": b.round, "limit_server_s": b.server,
                "limit_client_ms": client_limit_ms,
                "limit_masked_input_client_ms": mask_limit_ms,
                "ratio_round": m.round_s / b.round, "ratio_server": m.server_s / b.server,
                "ratio_client": m.client_ms / client_limit_ms,
                "ratio_masked_input_client": m.masked_input_client_ms / mask_limit_ms,
                "work": work.to_json(), "repeats": repeat,
            }));
        } else {
            println!(
                "{:>5} {:>8} {:>3.0}% {:>8} | {:>8.3} {:>8.3} {:>5.1} | {:>8.3} {:>8.4} {:>5.1} | {:>9.2} {:>8.2} {:>5.1} | {:>7.2} {:>8.2} {:>5.1} | {:>9.1}",
                r.n,
                r.d,
                r.dropout * 100.0,
                graph,
                m.round_s,
                b.round,
                m.round_s / b.round,
                m.server_s,
                b.server,
                m.server_s / b.server,
                m.client_ms,
                client_limit_ms,
                m.client_ms / client_limit_ms,
                m.masked_input_client_ms,
                mask_limit_ms,
                m.masked_input_client_ms / mask_limit_ms,
                m.bytes_up_per_client as f64 / 1e3,
            );
        }
    }
    if a.json {
        println!(
            "{}",
            json!({
                "machine": machine.to_json(),
                "model": MODEL,
                "repeats": repeat,
                "rows": out,
            })
        );
    } else {
        println!(
            "(medians of {repeat} runs, all clients and the server in one process on this machine; \
             limit = a lower bound from the limits above and the row's shape, × = measured / limit, \
             1 = at this machine's limit; mask = a client's masked-input stage; the model is in \
             `secagg bench --json`)"
        );
    }
    Ok(())
}
