//! `secagg dp`: privacy accounting (`epsilon`) and planning (`plan`) for differentially private
//! rounds, with the same accountant and client pipeline the server and clients use.

use clap::{Args, Subcommand, ValueEnum};
use secagg_dp::accountant::{Accountant, Mechanism, Round};
use secagg_dp::pipeline::{DpEncoding, DpSetup, NoiseKind, NoisePlacement};
use secagg_dp::plan::{PlanMechanism, PlanRequest, pipeline_round, plan};
use serde_json::{Value, json};

/// `secagg dp …`.
#[derive(Args)]
pub struct DpArgs {
    #[command(subcommand)]
    command: DpCommand,
}

#[derive(Subcommand)]
enum DpCommand {
    /// The (ε, δ) spent by R rounds of a mechanism (Rényi DP, Poisson sampling of clients).
    Epsilon(EpsilonArgs),
    /// The smallest noise multiplier meeting an (ε, δ) budget, its scale and its error.
    Plan(PlanArgs),
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum MechanismArg {
    /// Continuous Gaussian on the sum (needs only --noise-multiplier; what dp-accounting
    /// computes).
    Gaussian,
    /// Distributed discrete Gaussian through the client pipeline (needs --clients --dim
    /// --bits --clip).
    Ddg,
    /// Skellam through the client pipeline (needs --clients --dim --bits --clip).
    Skellam,
}

#[derive(Clone, Copy, ValueEnum)]
enum PlacementArg {
    /// Each client adds its share of the noise: the server never sees an un-noised sum.
    Distributed,
    /// The server adds all the noise to the unmasked sum (trusted-server model).
    Central,
}

/// The client pipeline's parameters (needed by ddg and skellam).
#[derive(Args)]
struct PipelineArgs {
    /// Clients per round (the pipeline's maximum).
    #[arg(long)]
    clients: Option<u32>,
    /// Fewest survivors a round accepts; the noise of this many clients meets the target.
    /// Default: --clients.
    #[arg(long)]
    min_survivors: Option<u32>,
    /// Length of each client's vector (padded to a power of two for the rotation).
    #[arg(long)]
    dim: Option<usize>,
    /// Modulus 2^BITS of the aggregation, 2..=64.
    #[arg(long)]
    bits: Option<u8>,
    /// L2 clipping norm of each client's update.
    #[arg(long)]
    clip: Option<f64>,
    /// Failure probability of one conditional-rounding try (KLS 2021); default e^(-1/2).
    #[arg(long, default_value_t = (-0.5f64).exp())]
    beta: f64,
    /// Who adds the noise.
    #[arg(long, value_enum, default_value = "distributed")]
    placement: PlacementArg,
}

#[derive(Args)]
struct EpsilonArgs {
    /// The noise mechanism.
    #[arg(long, value_enum, default_value = "gaussian")]
    mechanism: MechanismArg,
    /// Noise stddev of the sum over the L2 clip norm (z > 0).
    #[arg(long)]
    noise_multiplier: f64,
    /// Poisson sampling rate of clients per round, in (0, 1].
    #[arg(long, default_value_t = 1.0)]
    sampling_rate: f64,
    /// Number of rounds (≥ 1).
    #[arg(long, default_value_t = 1)]
    rounds: u64,
    /// Target δ, in (0, 1).
    #[arg(long, default_value_t = 1e-5)]
    delta: f64,
    #[command(flatten)]
    pipeline: PipelineArgs,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct PlanArgs {
    /// Target ε over all rounds (> 0).
    #[arg(long)]
    epsilon: f64,
    /// Target δ, in (0, 1).
    #[arg(long, default_value_t = 1e-5)]
    delta: f64,
    /// Number of rounds (≥ 1).
    #[arg(long)]
    rounds: u64,
    /// Poisson sampling rate of clients per round, in (0, 1].
    #[arg(long, default_value_t = 1.0)]
    sampling_rate: f64,
    /// The noise mechanism.
    #[arg(long, value_enum, default_value = "ddg")]
    mechanism: MechanismArg,
    #[command(flatten)]
    pipeline: PipelineArgs,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Runs `secagg dp …`.
pub fn run(a: DpArgs) -> Result<(), String> {
    match a.command {
        DpCommand::Epsilon(e) => epsilon(e),
        DpCommand::Plan(p) => plan_cmd(p),
    }
}

fn noise_kind(m: MechanismArg) -> NoiseKind {
    match m {
        MechanismArg::Skellam => NoiseKind::Skellam,
        _ => NoiseKind::DiscreteGaussian,
    }
}

/// The pipeline setup from the flags; `needs` names the command for the error message.
fn setup(p: &PipelineArgs, m: MechanismArg, z: f64, needs: &str) -> Result<DpSetup, String> {
    let missing: Vec<&str> = [
        ("--clients", p.clients.is_none()),
        ("--dim", p.dim.is_none()),
        ("--bits", p.bits.is_none()),
        ("--clip", p.clip.is_none()),
    ]
    .iter()
    .filter(|(_, m)| *m)
    .map(|(f, _)| *f)
    .collect();
    let (Some(clients), Some(dim), Some(bits), Some(clip)) = (p.clients, p.dim, p.bits, p.clip)
    else {
        return Err(format!(
            "{needs} needs the client pipeline's parameters: add {}",
            missing.join(" ")
        ));
    };
    let min_survivors = p.min_survivors.unwrap_or(clients);
    if min_survivors == 0 || min_survivors > clients {
        return Err(format!(
            "--min-survivors must be in 1..=--clients ({clients}), got {min_survivors}"
        ));
    }
    // The rotation seed does not change the accounting or γ: any fixed value will do.
    let mut setup = DpSetup::new(dim, clip, z, bits, clients, min_survivors, [0; 32]);
    setup.noise = noise_kind(m);
    setup.placement = match p.placement {
        PlacementArg::Distributed => NoisePlacement::Distributed,
        PlacementArg::Central => NoisePlacement::Central,
    };
    setup.beta = p.beta;
    Ok(setup)
}

fn mechanism_name(m: MechanismArg) -> &'static str {
    match m {
        MechanismArg::Gaussian => "gaussian",
        MechanismArg::Ddg => "ddg",
        MechanismArg::Skellam => "skellam",
    }
}

/// What the server sees: it knows who took part, so subsampling amplifies nothing against it.
const AGAINST_SERVER: &str = "against the server (it sees who took part: sampling rate 1)";
/// With central noise (and the continuous Gaussian, which only a server adds) the server sees
/// the exact sum: the rate-1 ε holds only against observers of the model.
const CENTRAL: &str = "against observers of the released model who know who took part, not \
    the server (central noise: it sees the exact sum)";
/// What the amplified number assumes.
const RELEASE_ONLY: &str = "against observers of the released model only (if clients are \
    really Poisson-sampled at this rate and who took part stays hidden from them)";

/// ε after `rounds` rounds at sampling rate `q`, for a mechanism whose one round costs
/// `round(q)`.
fn epsilon_at(
    round: &dyn Fn(f64) -> Result<Round, String>,
    q: f64,
    delta: f64,
) -> Result<secagg_dp::accountant::Epsilon, String> {
    let mut acc = Accountant::new();
    acc.compose(&round(q)?);
    acc.epsilon(delta).map_err(|e| e.to_string())
}

fn epsilon(a: EpsilonArgs) -> Result<(), String> {
    let mut out = json!({
        "mechanism": mechanism_name(a.mechanism),
        "noise_multiplier": a.noise_multiplier,
        "sampling_rate": a.sampling_rate,
        "rounds": a.rounds,
        "delta": a.delta,
    });
    let pipeline = if a.mechanism == MechanismArg::Gaussian {
        None
    } else {
        let setup = setup(
            &a.pipeline,
            a.mechanism,
            a.noise_multiplier,
            "--mechanism ddg/skellam",
        )?;
        let enc = DpEncoding::new(&setup).map_err(|e| e.to_string())?;
        out["scale"] = json!(enc.scale());
        out["padded_dim"] = json!(enc.padded_dim());
        out["l2_sensitivity"] = json!(enc.l2_sensitivity());
        out["l1_sensitivity"] = json!(enc.l1_sensitivity());
        out["local_variance"] = json!(enc.local_variance());
        out["min_survivors"] = json!(setup.min_survivors);
        Some((setup, enc))
    };
    let round = |q: f64| -> Result<Round, String> {
        match &pipeline {
            None => Round::new(
                Mechanism::Gaussian {
                    noise_multiplier: a.noise_multiplier,
                },
                q,
                a.rounds,
            ),
            Some((setup, enc)) => pipeline_round(setup, enc, q, a.rounds),
        }
        .map_err(|e| e.to_string())
    };
    let server = epsilon_at(&round, 1.0, a.delta)?;
    let release = epsilon_at(&round, a.sampling_rate, a.delta)?;
    // "epsilon" is the number at rate 1: with distributed noise it holds against the server.
    let central = pipeline
        .as_ref()
        .is_none_or(|(s, _)| s.placement == NoisePlacement::Central);
    out["epsilon"] = json!(server.epsilon);
    out["order"] = json!(server.order);
    out["epsilon_against_server"] = if central {
        Value::Null
    } else {
        json!(server.epsilon)
    };
    out["epsilon_holds_against"] = json!(secagg_sim::dp::epsilon_holds_against(central));
    out["epsilon_release_only"] = json!(release.epsilon);
    out["order_release_only"] = json!(release.order);
    if a.json {
        println!("{out}");
        return Ok(());
    }
    let what = format!(
        "after {} round(s) of {} with noise multiplier {}",
        a.rounds,
        mechanism_name(a.mechanism),
        a.noise_multiplier
    );
    let whom = if central { CENTRAL } else { AGAINST_SERVER };
    println!(
        "epsilon = {:.4} at delta = {:e} (Rényi order {}) {whom}, {what}",
        server.epsilon, a.delta, server.order
    );
    if a.sampling_rate < 1.0 {
        println!(
            "epsilon = {:.4} at delta = {:e} (Rényi order {}) {RELEASE_ONLY}: sampling rate {}",
            release.epsilon, a.delta, release.order, a.sampling_rate
        );
    }
    Ok(())
}

fn plan_cmd(a: PlanArgs) -> Result<(), String> {
    let mechanism = match a.mechanism {
        MechanismArg::Gaussian => PlanMechanism::Gaussian,
        MechanismArg::Ddg => PlanMechanism::DistributedDiscreteGaussian,
        MechanismArg::Skellam => PlanMechanism::Skellam,
    };
    // z = 1 is a placeholder: the plan searches it.
    let setup = setup(&a.pipeline, a.mechanism, 1.0, "secagg dp plan")?;
    let req = PlanRequest {
        epsilon: a.epsilon,
        delta: a.delta,
        rounds: a.rounds,
        sampling_rate: a.sampling_rate,
        mechanism,
        setup,
    };
    let p = plan(&req).map_err(|e| e.to_string())?;
    let central =
        a.mechanism == MechanismArg::Gaussian || req.setup.placement == NoisePlacement::Central;
    let whom = if central { CENTRAL } else { AGAINST_SERVER };
    if a.json {
        let out: Value = json!({
            "mechanism": mechanism_name(a.mechanism),
            "noise_multiplier": p.noise_multiplier,
            "scale": p.scale,
            "epsilon": p.spent_against_server.epsilon,
            "epsilon_against_server": (!central).then_some(p.spent_against_server.epsilon),
            "epsilon_holds_against": secagg_sim::dp::epsilon_holds_against(central),
            "epsilon_release_only": p.spent.epsilon,
            "order": p.spent_against_server.order,
            "order_release_only": p.spent.order,
            "target_epsilon": a.epsilon,
            "target_applies_to": if a.sampling_rate < 1.0 { "release_only" } else { "server" },
            "delta": a.delta,
            "rounds": a.rounds,
            "sampling_rate": a.sampling_rate,
            "min_survivors": req.setup.min_survivors,
            "rmse_per_coordinate": p.rmse_per_coordinate,
            "l2_error": p.l2_error,
        });
        println!("{out}");
    } else {
        println!(
            "noise multiplier {:.4} (epsilon {:.4} <= {} at delta {:e} over {} rounds, \
             sampling rate {})",
            p.noise_multiplier, p.spent.epsilon, a.epsilon, a.delta, a.rounds, a.sampling_rate
        );
        if a.sampling_rate < 1.0 {
            println!(
                "that epsilon holds {RELEASE_ONLY}; {whom} the same rounds give epsilon {:.4}",
                p.spent_against_server.epsilon
            );
        }
        match p.scale {
            Some(s) => println!("scale gamma = {s:.6e} integer steps per input unit"),
            None => println!("scale: none (continuous Gaussian, no quantization)"),
        }
        println!(
            "expected error of the released mean with {} survivors: RMSE {:.4e} per \
             coordinate, L2 {:.4e}",
            req.setup.min_survivors, p.rmse_per_coordinate, p.l2_error
        );
    }
    Ok(())
}
