//! `secagg simulate`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use secagg_core::params::{Assumptions, ThreatModel};
use secagg_core::ring::{Modulus, RingVec};
use secagg_core::server::{DropReason, describe_dropout};
use secagg_core::{PrgKind, Stage};
use secagg_sim::npy::{self, NpyArray};
use secagg_sim::plan::{GraphChoice, RoundOptions};
use secagg_sim::simulate::{
    Aggregate, Inputs, SimulateDp, SimulateOptions, SimulateResult, random_float_inputs,
    random_inputs, simulate,
};
use secagg_sim::validate::{self as sim_validate, Cheat, SimulateValidation, ValidationReport};

use crate::dp_args::DpArgs;
use serde_json::{Value, json};

#[derive(Clone, Copy, ValueEnum)]
pub enum GraphArg {
    /// Harary (SecAgg+) when the threat model allows a sparse graph, else complete.
    Auto,
    /// Every client shares with every other (SecAgg).
    Complete,
    /// Random k-regular Harary graph (SecAgg+).
    Harary,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ThreatArg {
    /// The server follows the protocol but tries to learn from what it sees.
    HonestButCurious,
    /// The server may deviate: adds signed keys (PKI) and a consistency check.
    Malicious,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum StageArg {
    Advertise,
    Share,
    MaskedInput,
    Consistency,
    Unmask,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum PrgArg {
    /// AES-128-CTR (hardware AES).
    Aes,
    /// ChaCha20 (devices without AES instructions).
    Chacha,
}

/// The threat model and the neighbour degree and threshold: shared by `simulate` and `server`.
#[derive(Args, Clone)]
pub struct ParamArgs {
    /// Threat model.
    #[arg(long, value_enum, default_value = "honest-but-curious")]
    pub threat: ThreatArg,
    /// Assumed fraction of corrupt clients (for choosing and checking k and t).
    #[arg(long, default_value_t = 0.05)]
    pub assumed_corrupt: f64,
    /// Assumed fraction of dropouts (simulate: default max(0.05, --dropout); server: 0.05).
    #[arg(long)]
    pub assumed_dropout: Option<f64>,
    /// Neighbours per client k (even for Harary). Default: chosen from the threat model.
    #[arg(long)]
    pub degree: Option<u32>,
    /// Shamir threshold t. Default: chosen from the threat model.
    #[arg(long)]
    pub threshold: Option<u32>,
    /// Run with --degree/--threshold weaker than the threat model needs (warns).
    #[arg(long)]
    pub accept_weaker_params: bool,
}

impl ParamArgs {
    /// The threat model.
    pub fn model(&self) -> ThreatModel {
        match self.threat {
            ThreatArg::HonestButCurious => ThreatModel::HonestButCurious,
            ThreatArg::Malicious => ThreatModel::Malicious,
        }
    }

    /// The assumptions, with `default_dropout` when --assumed-dropout is not given.
    pub fn assumptions(&self, default_dropout: f64) -> Result<Assumptions, String> {
        if !(0.0..1.0).contains(&self.assumed_corrupt) {
            return Err(format!(
                "--assumed-corrupt must be in [0, 1), got {}",
                self.assumed_corrupt
            ));
        }
        let dropout_fraction = self.assumed_dropout.unwrap_or(default_dropout);
        if !(0.0..1.0).contains(&dropout_fraction) {
            return Err(format!(
                "--assumed-dropout must be in [0, 1), got {dropout_fraction}"
            ));
        }
        Ok(Assumptions {
            corrupt_fraction: self.assumed_corrupt,
            dropout_fraction,
            model: self.model(),
        })
    }
}

/// Options shared by `simulate` and `bench`.
#[derive(Args, Clone)]
pub struct SimulateArgs {
    /// Number of clients (default 100; with --inputs, the number of .npy files).
    #[arg(long)]
    pub clients: Option<u32>,
    /// Vector length (default 10000; with --inputs, the arrays' length).
    #[arg(long)]
    pub dim: Option<u32>,
    /// Neighbour graph.
    #[arg(long, value_enum, default_value = "auto")]
    pub graph: GraphArg,
    /// Threat model and (k, t).
    #[command(flatten)]
    pub params: ParamArgs,
    /// Modulus 2^BITS, 1..=64.
    #[arg(long, default_value_t = 32)]
    pub bits: u8,
    /// Fraction of clients that drop out.
    #[arg(long, default_value_t = 0.0)]
    pub dropout: f64,
    /// The stage at which they drop out.
    #[arg(long, value_enum, default_value = "masked-input")]
    pub dropout_stage: StageArg,
    /// Mask PRG.
    #[arg(long, value_enum, default_value = "aes")]
    pub prg: PrgArg,
    /// Seed of every random choice (keys, inputs, dropouts).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Directory of .npy files, one per client, in file-name order: unsigned integers
    /// (sum mod 2^bits) or float32/float64 (weighted mean).
    #[arg(long)]
    pub inputs: Option<PathBuf>,
    /// Float inputs: a .npy of one unsigned weight per client (default: all 1).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Float inputs: clip values to [-CLIP, CLIP] (default: the smallest power of two
    /// covering the inputs; in a deployment this is a public parameter fixed in advance).
    #[arg(long)]
    pub clip: Option<f64>,
    /// Write the aggregate as .npy.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Differential privacy (`--dp ddg|skellam` and its options).
    #[command(flatten)]
    pub dp: DpArgs,
    /// DP: rounds of this kind composed in the reported ε (a training run's length).
    #[arg(long, default_value_t = 1, requires = "dp")]
    pub dp_rounds: u64,
    /// Print exactly one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `secagg simulate`: the options shared with `bench`, and validated rounds.
#[derive(Args, Clone)]
pub struct SimulateCmd {
    #[command(flatten)]
    pub base: SimulateArgs,
    /// Validated inputs (issue 11).
    #[command(flatten)]
    pub validate: ValidateArgs,
}

/// Validated rounds (issue 11, VALIDATION.md): `--validate l2=B [--cheaters LIST --cheat KIND]`.
#[derive(Args, Clone, Default)]
pub struct ValidateArgs {
    /// Validated inputs: every client proves that its update's L2 norm is at most B and the
    /// server drops a client whose proof fails (B in input units for float inputs, in encoded
    /// units for unsigned ones), then checks that each upload masks the proven vector (binding
    /// proofs, pair commitments, disputes, rule E after unmasking). Runs the malicious model
    /// with a PKI (docs/VALIDATION.md).
    #[arg(long, value_name = "l2=B", value_parser = sim_validate::parse_spec)]
    pub validate: Option<f64>,
    /// 0-based input indices of clients that cheat as --cheat says.
    #[arg(long, value_delimiter = ',', requires = "validate", requires = "cheat")]
    pub cheaters: Vec<usize>,
    /// How the cheaters cheat: oversized (norm above B, unclipped, proven anyway),
    /// forged-proof (a proof for a small vector, the real one masked), inconsistent (a valid
    /// proof for its input, another vector masked) or wrong-mask (a self mask its neighbours'
    /// shares do not rebuild, committed to match).
    #[arg(long, value_parser = Cheat::parse, requires = "cheaters")]
    pub cheat: Option<Cheat>,
    /// With --dp (client-side noise): accept that a cheater can send signal in place of its
    /// noise share, up to the factor (Δ₂ + N_η)/Δ₂ times the clip that the run prints
    /// (VALIDATION.md §12). Without it, --validate with --dp needs --dp-central.
    #[arg(long, requires = "validate")]
    pub validate_client_noise: bool,
}

impl StageArg {
    /// The protocol stage.
    pub fn stage(self) -> Stage {
        match self {
            StageArg::Advertise => Stage::AdvertiseKeys,
            StageArg::Share => Stage::ShareKeys,
            StageArg::MaskedInput => Stage::MaskedInput,
            StageArg::Consistency => Stage::ConsistencyCheck,
            StageArg::Unmask => Stage::Unmask,
        }
    }
}

impl SimulateArgs {
    fn stage(&self) -> Stage {
        self.dropout_stage.stage()
    }

    /// Round options for `n` clients (the dimension is set from the inputs), with `extra`
    /// clients expected to leave besides `--dropout` (validated rounds: the cheaters, rejected
    /// at the upload), counted in the default assumed dropout fraction.
    fn round_options(&self, n: u32, extra: usize) -> Result<RoundOptions, String> {
        if !(0.0..=1.0).contains(&self.dropout) {
            return Err(format!(
                "--dropout must be a fraction in [0, 1], got {}",
                self.dropout
            ));
        }
        // The dropouts the simulation injects (round(f·n) clients) must be within the assumed
        // fraction, or a malicious-model round's min_clients would refuse them.
        let injected = ((self.dropout * n as f64).round() + extra as f64) / n.max(1) as f64;
        let assumptions = self
            .params
            .assumptions(self.dropout.max(injected).max(0.05))?;
        if self.dropout_stage_is_consistency_without_it() {
            return Err(String::from(
                "--dropout-stage consistency needs --threat malicious (the consistency check only runs there)",
            ));
        }
        let mut round_seed = [0u8; 32];
        round_seed[..8].copy_from_slice(&self.seed.to_le_bytes());
        Ok(RoundOptions {
            clients: n,
            dim: 0,
            bits: self.bits,
            graph: match self.graph {
                GraphArg::Auto => GraphChoice::Auto,
                GraphArg::Complete => GraphChoice::Complete,
                GraphArg::Harary => GraphChoice::Harary,
            },
            degree: self.params.degree,
            threshold: self.params.threshold,
            accept_weaker: self.params.accept_weaker_params,
            assumptions,
            prg: match self.prg {
                PrgArg::Aes => PrgKind::Aes128Ctr,
                PrgArg::Chacha => PrgKind::ChaCha20,
            },
            round_id: self.seed,
            round_seed,
        })
    }

    fn dropout_stage_is_consistency_without_it(&self) -> bool {
        matches!(self.dropout_stage, StageArg::Consistency)
            && matches!(self.params.threat, ThreatArg::HonestButCurious)
            && self.dropout > 0.0
    }

    /// Simulation options for `n` clients with vectors of `dim` values.
    pub fn options(&self, n: u32, dim: usize) -> Result<SimulateOptions, String> {
        self.options_with(n, dim, 0)
    }

    /// [`Self::options`] with `extra` clients expected to leave besides `--dropout`.
    fn options_with(&self, n: u32, dim: usize, extra: usize) -> Result<SimulateOptions, String> {
        let dp = match self.dp.params(dim)? {
            None => None,
            Some(params) => {
                if self.dp_rounds == 0 {
                    return Err("--dp-rounds must be at least 1".into());
                }
                Some(SimulateDp {
                    params,
                    delta: self.dp.dp_delta,
                    sampling_rate: self.dp.dp_sampling_rate,
                    rounds: self.dp_rounds,
                    min_survivors: self.dp.dp_min_survivors,
                })
            }
        };
        if !(1..=64).contains(&self.bits) {
            return Err(format!("--bits must be in 1..=64, got {}", self.bits));
        }
        Ok(SimulateOptions {
            round: self.round_options(n, extra)?,
            dropout: self.dropout,
            dropout_stage: self.stage(),
            seed: self.seed,
            on_stage: None,
            dp,
        })
    }
}

/// The inputs: `--inputs` or random ones (validated rounds: random unsigned inputs within
/// `validate_bound`).
fn load_inputs(a: &SimulateArgs, validate_bound: Option<f64>) -> Result<Inputs, String> {
    let Some(dir) = &a.inputs else {
        if a.weights.is_some() {
            return Err(String::from("--weights needs --inputs with float arrays"));
        }
        let n = a.clients.unwrap_or(100);
        let d = a.dim.unwrap_or(10_000);
        if n < 2 {
            return Err(format!("--clients must be at least 2, got {n}"));
        }
        if d == 0 {
            return Err(String::from("--dim must be at least 1"));
        }
        if !(1..=64).contains(&a.bits) {
            return Err(format!("--bits must be in 1..=64, got {}", a.bits));
        }
        if a.dp.dp.is_some() {
            return Ok(random_float_inputs(n, d, a.seed));
        }
        if let Some(b) = validate_bound {
            // Unsigned inputs: B in encoded units, a whole number (checked by the round).
            return sim_validate::random_bounded_inputs(n, d, a.bits, b.floor() as u64, a.seed);
        }
        return Ok(random_inputs(n, d, a.bits, a.seed));
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read --inputs {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "npy"))
        .collect();
    files.sort();
    if files.len() < 2 {
        return Err(format!(
            "--inputs {} holds {} .npy files; a round needs at least 2 (one per client)",
            dir.display(),
            files.len()
        ));
    }
    if let Some(n) = a.clients
        && n as usize != files.len()
    {
        return Err(format!(
            "--clients {n} but --inputs holds {} .npy files: drop --clients or fix the directory",
            files.len()
        ));
    }
    let arrays: Vec<NpyArray> = files
        .iter()
        .map(|p| npy::read(p).map_err(|e| format!("{}: {e}", p.display())))
        .collect::<Result<_, _>>()?;
    let d = arrays[0].len();
    for (p, arr) in files.iter().zip(&arrays) {
        if arr.len() != d {
            return Err(format!(
                "{} has {} values but {} has {d}: every client's vector must have the same length",
                p.display(),
                arr.len(),
                files[0].display()
            ));
        }
        if arr.is_float() != arrays[0].is_float() {
            return Err(format!(
                "{} is {} but {} is {}: use all unsigned integers or all floats",
                p.display(),
                arr.dtype_name(),
                files[0].display(),
                arrays[0].dtype_name()
            ));
        }
    }
    if let Some(dd) = a.dim
        && dd as usize != d
    {
        return Err(format!(
            "--dim {dd} but the arrays have {d} values: drop --dim"
        ));
    }
    if arrays[0].is_float() {
        let values: Vec<Vec<f64>> = arrays.into_iter().map(NpyArray::into_f64).collect();
        let weights = match &a.weights {
            None => vec![1; values.len()],
            Some(p) => {
                let w = npy::read(p).map_err(|e| format!("{}: {e}", p.display()))?;
                if w.is_float() {
                    return Err(format!(
                        "{}: weights must be unsigned integers (e.g. example counts)",
                        p.display()
                    ));
                }
                let w = w.into_u64();
                if w.len() != values.len() {
                    return Err(format!(
                        "{} has {} weights for {} clients",
                        p.display(),
                        w.len(),
                        values.len()
                    ));
                }
                w
            }
        };
        Ok(Inputs::Float {
            values,
            weights,
            clip: a.clip,
        })
    } else {
        if a.weights.is_some() || a.clip.is_some() {
            return Err(String::from(
                "--weights and --clip apply to float inputs only",
            ));
        }
        // Each array goes to the round's word (u32 for b ≤ 32) as it is read out, so the
        // inputs are never held twice.
        let modulus = Modulus::new(a.bits).ok_or_else(|| format!("--bits {}", a.bits))?;
        Ok(Inputs::Words(
            arrays
                .into_iter()
                .map(|arr| match arr {
                    NpyArray::U32(v) if modulus.fits_u32() => RingVec::U32(v),
                    other => RingVec::from_u64(modulus, other.into_u64()),
                })
                .collect(),
        ))
    }
}

fn write_output(path: &Path, agg: &Aggregate, bits: u8) -> Result<(), String> {
    let arr = match agg {
        Aggregate::Sum(v) => NpyArray::unsigned_for_bits(v, bits),
        Aggregate::Mean { mean, .. } => NpyArray::F64(mean.clone()),
    };
    npy::write_file(path, &arr).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e6
}

/// The JSON object `--json` prints.
pub fn result_json(a: &SimulateArgs, r: &SimulateResult) -> Value {
    let c = &r.plan.config;
    let stages: Vec<Value> = r
        .report
        .stages
        .iter()
        .map(|(stage, s)| {
            let senders = s.senders.max(1) as u64;
            json!({
                "stage": stage.name(),
                "clients_total_s": secs(s.clients_total),
                "clients_wall_s": secs(s.clients_wall),
                "client_mean_ms": secs(s.clients_total) * 1e3 / senders as f64,
                "server_s": secs(s.server),
                "senders": s.senders,
                "bytes_up_per_client": s.bytes_up / senders,
                "bytes_down_per_client": s.bytes_down / (c.num_clients as u64),
                "max_bytes_up_per_client": s.max_up_per_client,
                "max_bytes_down_per_client": s.max_down_per_client,
                "server_bytes_in": s.bytes_up,
                "server_bytes_out": s.bytes_down,
            })
        })
        .collect();
    let total_server: f64 = r
        .report
        .stages
        .values()
        .map(|s| s.server.as_secs_f64())
        .sum();
    let total_clients: f64 = r
        .report
        .stages
        .values()
        .map(|s| s.clients_total.as_secs_f64())
        .sum();
    let up: u64 = r.report.stages.values().map(|s| s.bytes_up).sum();
    let down: u64 = r.report.stages.values().map(|s| s.bytes_down).sum();
    let n = c.num_clients as u64;
    json!({
        "parameters": {
            "clients": c.num_clients,
            "dim": c.dim,
            "bits": c.bits,
            "graph": match c.graph { secagg_core::GraphKind::Complete => "complete", secagg_core::GraphKind::Harary => "harary" },
            "threat": match c.model { ThreatModel::HonestButCurious => "honest-but-curious", ThreatModel::Malicious => "malicious" },
            "prg": match c.prg { PrgKind::Aes128Ctr => "aes128-ctr", PrgKind::ChaCha20 => "chacha20" },
            "dropout": a.dropout,
            "dropout_stage": a.stage().name(),
            "seed": a.seed,
            "assumed_corrupt": a.params.assumed_corrupt,
        },
        "k": c.degree,
        "t": c.threshold,
        "min_clients": c.min_clients,
        "warnings": r.plan.warnings,
        "aggregate_ok": r.aggregate_ok,
        "aborted": r.aborted,
        "survivors": r.survivors,
        "dropped": r.dropped,
        "dropouts": r.dropouts.iter().map(|d| json!({
            "client": d.id - 1,
            "stage": d.stage.name(),
            "reason": match &d.reason { DropReason::Timeout => "timeout".to_string(), DropReason::Disconnected => "disconnected".to_string(), DropReason::Misbehaved(m) => m.to_string(), DropReason::Validation(k) => k.to_string() },
        })).collect::<Vec<_>>(),
        "mean_error": r.mean_error.map(|(e, b)| json!({"max_abs": e, "bound": b})),
        "dp": r.dp.as_ref().map(|d| json!({
            "noise": a.dp.dp.map(|n| n.name()),
            "central": a.dp.dp_central,
            "noise_multiplier": a.dp.dp_noise_multiplier,
            "clip": a.dp.dp_clip,
            "epsilon": d.epsilon,
            "epsilon_against_server": (!a.dp.dp_central).then_some(d.epsilon),
            "epsilon_holds_against": secagg_sim::dp::epsilon_holds_against(a.dp.dp_central),
            "epsilon_release_only": d.epsilon_release_only,
            "order": d.order,
            "delta": d.delta,
            "rounds": d.rounds,
            "sampling_rate": a.dp.dp_sampling_rate,
            "scale": d.scale,
            "padded_dim": d.padded_dim,
            "rmse_vs_clipped": d.rmse_vs_clipped,
            "rmse_vs_raw": d.rmse_vs_raw,
            "expected_rmse": d.expected_rmse,
        })),
        "total_weight": match &r.aggregate { Some(Aggregate::Mean { total_weight, .. }) => Some(*total_weight), _ => None },
        "wall_s": secs(r.report.wall),
        "server_s": (total_server * 1e6).round() / 1e6,
        "clients_total_s": (total_clients * 1e6).round() / 1e6,
        "bytes_up_per_client": up / n,
        "bytes_down_per_client": down / n,
        "stages": stages,
    })
}

fn progress(enabled: bool) -> Option<Box<dyn FnMut(Stage) + Send>> {
    if !enabled {
        return None;
    }
    let bar = ProgressBar::new(Stage::ALL.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:20} stage {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    Some(Box::new(move |stage: Stage| {
        bar.set_position(Stage::ALL.iter().position(|s| *s == stage).unwrap_or(0) as u64);
        bar.set_message(stage.name());
        if stage == Stage::Unmask {
            bar.finish_and_clear();
        }
    }))
}

/// The `validation` object `--json` adds for validated rounds.
pub fn validation_json(v: &ValidationReport, va: &ValidateArgs) -> Value {
    json!({
        "bound": v.bound,
        "bound_encoded": v.bound_sq,
        "projections": v.projections,
        "scale": v.scale,
        "slack_factor": v.slack_factor,
        "enforced": ["norm", "binding", "pair commitments", "self mask"],
        "cheat": va.cheat.filter(|_| !va.cheaters.is_empty()).map(Cheat::name),
        "cheaters": va.cheaters,
        "rejected": v.rejected.iter().map(|r| json!({
            "client": r.client,
            "stage": r.stage.name(),
            "reason": r.reason,
        })).collect::<Vec<_>>(),
        "uncaught": v.uncaught,
        "refused": v.refused.iter().map(|(c, e)| json!({"client": c, "error": e})).collect::<Vec<_>>(),
        "prove_ms": v.prove_ms,
        "verify_ms": {
            "total": v.verify_ms,
            "per_client": v.verify_ms_per_client(),
            "uploads": v.uploads,
        },
        "proof_bytes": v.proof_bytes,
        "noise_bound": v.noise_bound,
        "dp_factor": v.dp_factor,
    })
}

/// `secagg simulate`.
pub fn run(cmd: SimulateCmd) -> Result<(), String> {
    let SimulateCmd {
        base: mut a,
        validate: va,
    } = cmd;
    let mut notes = Vec::new();
    if let Some(bound) = va.validate {
        if a.dp.dp.is_some() {
            // One bound: with DP, B is the clip every client's update is clipped to.
            if a.dp.dp_clip != DpArgs::default().dp_clip && a.dp.dp_clip != bound {
                return Err(format!(
                    "--validate l2={bound} with --dp is the L2 clip, but --dp-clip is {}: drop \
                     --dp-clip or give both the same value",
                    a.dp.dp_clip
                ));
            }
            a.dp.dp_clip = bound;
        }
        if let Some(c) = va.cheat {
            c.supported()?;
        }
        if matches!(a.params.threat, ThreatArg::HonestButCurious) {
            // Validated rounds need the PKI of the malicious model (D36).
            a.params.threat = ThreatArg::Malicious;
            notes.push(String::from(
                "--validate runs the malicious threat model with a PKI (VALIDATION.md §21.1 D36): \
                 --threat malicious was set",
            ));
        }
    }
    let inputs = load_inputs(&a, va.validate)?;
    let n = match &inputs {
        Inputs::Unsigned(v) => v.len(),
        Inputs::Words(v) => v.len(),
        Inputs::Float { values, .. } => values.len(),
    } as u32;
    let dim = match &inputs {
        Inputs::Unsigned(v) => v[0].len(),
        Inputs::Words(v) => v[0].len(),
        Inputs::Float { values, .. } => values[0].len(),
    };
    let mut opts = a.options_with(n, dim, va.cheaters.len())?;
    // A progress bar for rounds that take more than a moment, on a terminal only.
    let long = n as u64 * dim as u64 >= 20_000_000 || n >= 2_000;
    opts.on_stage =
        progress(long && !a.json && std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let mut r = match va.validate {
        None => simulate(inputs, opts)?,
        Some(bound) => {
            // The server's secret key for its batch verification's weights (D26, D32).
            let mut key = [0u8; 32];
            getrandom::fill(&mut key).map_err(|e| format!("no OS randomness: {e}"))?;
            sim_validate::simulate_validated_with(
                inputs,
                opts,
                SimulateValidation {
                    bound,
                    cheaters: va.cheaters.clone(),
                    cheat: va.cheat.unwrap_or(Cheat::Oversized),
                    verifier_key: Some(key),
                },
                va.validate_client_noise,
            )?
        }
    };
    if let Some(f) = r.validation.as_ref().and_then(|v| v.dp_factor)
        && va.validate_client_noise
    {
        eprintln!(
            "warning: client-side DP noise in a validated round: a cheater can send up to \
             {f:.2}× the clip as signal in place of its noise (VALIDATION.md §12)"
        );
    }
    r.plan.warnings.splice(0..0, notes);
    if let (Some(path), Some(agg)) = (&a.output, &r.aggregate) {
        write_output(path, agg, a.bits)?;
    }
    if a.json {
        let mut out = result_json(&a, &r);
        if let Some(v) = &r.validation {
            out["validation"] = validation_json(v, &va);
        }
        println!("{out}");
    } else {
        print_summary(&a, &r);
        if let Some(v) = &r.validation {
            print_validation(v);
        }
    }
    if r.aborted.is_some() || !r.aggregate_ok {
        return Err(match (&r.aborted, &r.validation) {
            (Some(why), _) => format!("round aborted: {why}"),
            (None, Some(v)) if !v.uncaught.is_empty() => format!(
                "cheaters {:?} were not rejected: the release includes their inputs",
                v.uncaught
            ),
            _ => String::from("the aggregate does not match the plaintext sum"),
        });
    }
    Ok(())
}

/// The human-readable part of a validated round.
fn print_validation(v: &ValidationReport) {
    let proved: Vec<f64> = v.prove_ms.iter().flatten().copied().collect();
    let mut sorted = proved.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
    println!(
        "validation: L2 norm ≤ {} (B_enc² = {}, J = {}{}); norm proof {} bytes, client mask+prove median {:.1} ms, server verify {:.1} ms for {} uploads ({:.1} ms each)",
        v.bound,
        v.bound_sq,
        v.projections,
        match (v.scale, v.slack_factor) {
            (Some(s), Some(f)) => format!(", scale s_val = {s:.4e}, slack factor {f:.6}"),
            _ => String::new(),
        },
        v.proof_bytes,
        median,
        v.verify_ms,
        v.uploads,
        v.verify_ms_per_client()
    );
    if v.rejected.is_empty() {
        println!("  rejected: none");
    }
    for r in &v.rejected {
        println!(
            "  rejected: input {} (client id {}) at stage {}: {}",
            r.client,
            r.client + 1,
            r.stage.name(),
            r.reason
        );
    }
    for (c, e) in &v.refused {
        println!(
            "  refused to take part: input {c} (client id {}): {e}",
            c + 1
        );
    }
    if !v.uncaught.is_empty() {
        println!("  NOT REJECTED: cheaters {:?}", v.uncaught);
    }
    println!(
        "  enforced: the norm proof at upload, the binding proof against the masked upload, pair commitments (disputes) and, after unmasking, self masks and pairs with dropped clients (rule E)"
    );
}

fn print_summary(a: &SimulateArgs, r: &SimulateResult) {
    let c = &r.plan.config;
    for w in &r.plan.warnings {
        eprintln!("warning: {w}");
    }
    let graph = match c.graph {
        secagg_core::GraphKind::Complete => "complete",
        secagg_core::GraphKind::Harary => "harary",
    };
    let model = match c.model {
        ThreatModel::HonestButCurious => "honest-but-curious",
        ThreatModel::Malicious => "malicious",
    };
    println!(
        "secagg round: {} clients × {} values, {} bits, {graph} graph k = {}, t = {}, {model} server",
        c.num_clients, c.dim, c.bits, c.degree, c.threshold
    );
    match (&r.aborted, &r.aggregate) {
        (Some(why), _) => println!("ABORTED: {why} (nothing was revealed)"),
        (None, Some(agg)) => {
            println!(
                "aggregate of {} survivors ({} dropped): {}",
                r.survivors.len(),
                r.dropped.len(),
                if r.aggregate_ok {
                    "matches the plaintext computation"
                } else {
                    "MISMATCH"
                }
            );
            match agg {
                Aggregate::Sum(v) => println!(
                    "  sum mod 2^{}: {:?}{}",
                    c.bits,
                    &v[..v.len().min(6)],
                    if v.len() > 6 { " …" } else { "" }
                ),
                Aggregate::Mean { mean, .. } if r.dp.is_some() => println!(
                    "  private mean: {:?}{}",
                    &mean[..mean.len().min(6)],
                    if mean.len() > 6 { " …" } else { "" }
                ),
                Aggregate::Mean { mean, total_weight } => println!(
                    "  weighted mean (total weight {total_weight}): {:?}{}",
                    &mean[..mean.len().min(6)],
                    if mean.len() > 6 { " …" } else { "" }
                ),
            }
            if let Some(d) = &r.dp {
                println!(
                    "  DP: ε = {:.4} against {} (δ = {:e}, {} round{}, order {}); scale {:.4}, {} values padded to {}",
                    d.epsilon,
                    secagg_sim::dp::epsilon_holds_against(a.dp.dp_central),
                    d.delta,
                    d.rounds,
                    if d.rounds == 1 { "" } else { "s" },
                    d.order,
                    d.scale,
                    match agg {
                        Aggregate::Mean { mean, .. } => mean.len(),
                        Aggregate::Sum(v) => v.len(),
                    },
                    d.padded_dim
                );
                if a.dp.dp_sampling_rate < 1.0 {
                    println!(
                        "  DP: ε = {:.4} against observers of the released model only, if clients are really Poisson-sampled at rate {} and who took part stays hidden from them",
                        d.epsilon_release_only, a.dp.dp_sampling_rate
                    );
                }
                println!(
                    "  error of the private mean (RMSE per value): {:.3e} vs the clipped mean (predicted {:.3e}), {:.3e} vs the raw mean",
                    d.rmse_vs_clipped, d.expected_rmse, d.rmse_vs_raw
                );
            }
            if let Some((e, b)) = r.mean_error {
                println!("  largest error of the mean: {e:.3e} (rounding bound {b:.3e})");
            }
        }
        _ => {}
    }
    for d in r.dropouts.iter().take(10) {
        println!("  {}", describe_dropout(d));
    }
    if r.dropouts.len() > 10 {
        println!("  … and {} more dropouts", r.dropouts.len() - 10);
    }
    println!(
        "{:<13} {:>11} {:>13} {:>10} {:>14} {:>16}",
        "stage", "server ms", "clients ms", "client ms", "up B/client", "down B/client"
    );
    for (stage, s) in &r.report.stages {
        let senders = s.senders.max(1) as u64;
        println!(
            "{:<13} {:>11.2} {:>13.2} {:>10.3} {:>14} {:>16}",
            stage.name(),
            s.server.as_secs_f64() * 1e3,
            s.clients_wall.as_secs_f64() * 1e3,
            s.clients_total.as_secs_f64() * 1e3 / senders as f64,
            s.bytes_up / senders,
            s.bytes_down / c.num_clients as u64
        );
    }
    println!(
        "wall time {:.3} s; seed {}",
        r.report.wall.as_secs_f64(),
        a.seed
    );
}
