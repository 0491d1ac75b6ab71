//! `secagg server`, `secagg client` and `secagg keygen`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use secagg_core::PrgKind;
use secagg_core::client::Policy;
use secagg_core::params::{Assumptions, ThreatModel};
use secagg_service::client::{
    ClientGuard, ClientInput, ClientOptions, ClientState, DpBudget, participate_with,
};
use secagg_service::keys;
use secagg_service::server::{Cohort, Limits, ServerOptions, Validation};
use secagg_sim::npy;

use crate::dp_args::DpArgs;
use crate::simulate_cmd::{ParamArgs, PrgArg, StageArg, ThreatArg};

/// Parses `500ms`, `30s`, `2m`, `1h` (a bare number is seconds), positive.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    parse_duration_or_zero(s).and_then(|d| {
        if d.is_zero() {
            Err(format!("duration {s:?} must be positive"))
        } else {
            Ok(d)
        }
    })
}

/// As [`parse_duration`], and `0s` (or `0`) for none.
pub fn parse_duration_or_zero(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: use e.g. 500ms, 30s, 2m"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" => v * 60.0,
        "h" => v * 3600.0,
        _ => return Err(format!("invalid duration unit in {s:?}: use ms, s, m or h")),
    };
    if !(secs.is_finite() && secs >= 0.0) {
        return Err(format!("duration {s:?} must be a non-negative number"));
    }
    Duration::try_from_secs_f64(secs).map_err(|_| format!("duration {s:?} is too long"))
}

/// Options of `secagg server`.
#[derive(Args)]
pub struct ServerArgs {
    /// Address to listen on, e.g. 127.0.0.1:7000 (port 0 picks a free port).
    #[arg(long)]
    pub listen: SocketAddr,
    /// Clients per round: a round starts as soon as this many have joined.
    #[arg(long)]
    pub clients: u32,
    /// Start with at least this many when the join deadline passes.
    #[arg(long)]
    pub min_clients: u32,
    /// Values per client.
    #[arg(long)]
    pub dim: u32,
    /// Modulus 2^BITS.
    #[arg(long, default_value_t = 32)]
    pub bits: u8,
    /// Rounds to run (default: forever).
    #[arg(long)]
    pub rounds: Option<u64>,
    /// How long a round waits for --clients before starting with --min-clients.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub join_timeout: Duration,
    /// Deadline of each stage; a client that misses it is a dropout.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub stage_timeout: Duration,
    /// Threat model and (k, t).
    #[command(flatten)]
    pub params: ParamArgs,
    /// PKI roster file (one Ed25519 public key per line, each once); required with --threat
    /// malicious. A round's clients are the roster's (--clients must be its size), and a
    /// client's id is its key's line: every client compares the roster with its own copy.
    #[arg(long)]
    pub pki: Option<PathBuf>,
    /// Data directory: the store and rounds/<id>.npy, rounds/<id>.json.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long)]
    pub metrics: Option<SocketAddr>,
    /// Weighted-mean rounds of float inputs: clip values to [-CLIP, CLIP] (validated rounds:
    /// --clip B with --validate-l2 B, each update clipped to L2 norm B).
    #[arg(long)]
    pub clip: Option<f64>,
    /// Weighted-mean rounds: the largest weight a client may send.
    #[arg(long, default_value_t = 1)]
    pub max_weight: u64,
    /// Differential privacy (`--dp ddg|skellam` and its options).
    #[command(flatten)]
    pub dp: DpArgs,
    /// DP rounds: the population's total ε budget; a round that would exceed it is refused
    /// before it starts, and the server stops.
    #[arg(long, requires = "dp")]
    pub dp_epsilon_budget: Option<f64>,
    /// DP rounds: the population whose privacy ledger the rounds are charged to.
    #[arg(long, default_value = "default", requires = "dp")]
    pub dp_population: String,
    /// Largest gRPC message accepted, in bytes.
    #[arg(long, default_value_t = 4 << 20)]
    pub max_message_bytes: usize,
    /// Most client streams open at once.
    #[arg(long, default_value_t = 10_000)]
    pub max_connections: usize,
    /// Time a new stream has to send its Join frame before it is cut.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub join_frame_timeout: Duration,
    /// Serve TLS directly: PEM certificate chain (with --tls-key).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Mask PRG of every round: aes (AES-128-CTR, for hardware AES) or chacha (ChaCha20, for
    /// rounds with devices without AES instructions).
    #[arg(long, value_enum, default_value = "aes")]
    pub prg: PrgArg,
    /// Cohorts: the id of the global round this server's rounds belong to (the same on every
    /// shard), written into each round's results for `secagg combine`.
    #[arg(long, requires = "cohort_index")]
    pub global_round_id: Option<String>,
    /// Cohorts: this server's cohort index in the global round (from 0).
    #[arg(long, requires = "global_round_id")]
    pub cohort_index: Option<u32>,
    /// The fewest clients whose inputs a released sum may hold (the operator's promise, as
    /// in Google's federated compute): each round's min_clients is raised to it, clients see
    /// it in the configuration they check, and a round never unmasks with fewer survivors.
    #[arg(long)]
    pub min_cohort_size: Option<u32>,
    /// Once listening, write {"address": "IP:PORT", "pid": …, "cohort": …} to this file
    /// (atomically): with --listen 127.0.0.1:0 it tells a driver the port picked.
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
    /// Validated rounds (issue 11, docs/VALIDATION.md): every client proves in zero knowledge
    /// that its input has L2 norm at most B, and a client whose proof fails is left out of the
    /// sum and named with its reason in rounds/<id>.json (`validation.rejected`). B is in
    /// encoded units for unsigned-integer rounds (the inputs' own, values read as signed mod
    /// 2^bits), a whole number, and a client above it refuses locally and sends nothing. With
    /// --clip B (equal to B) the rounds are weighted means of floats, B in input units: every
    /// client clips its update to L2 norm B, and proves its encoding at the validated scale
    /// (and its weight within --max-weight). J = 41 + ⌊α·n⌋ binding projections, as `secagg
    /// simulate --validate l2=B` announces. Needs --threat malicious with --pki; not with --dp.
    #[arg(long, value_name = "B", value_parser = parse_validate_l2)]
    pub validate_l2: Option<Validation>,
}

/// `--prove-threads` (or every core this process may use) for this process's provers.
#[cfg(feature = "validate")]
fn set_prove_threads(threads: Option<u32>) {
    let t = threads.map_or_else(secagg_cli::machine_limits::cores, |t| t as usize);
    secagg_core::validate::secagg_zk::set_prover_threads(t);
}

#[cfg(not(feature = "validate"))]
fn set_prove_threads(_threads: Option<u32>) {}

/// `--validate-l2 B`: B parsed as `secagg simulate --validate l2=B` parses it (a whole number
/// for unsigned-integer rounds, checked with the other options).
fn parse_validate_l2(s: &str) -> Result<Validation, String> {
    Validation::parse(s)
}

pub fn server(a: ServerArgs) -> Result<(), String> {
    if a.clients < 2 || a.min_clients < 2 || a.min_clients > a.clients {
        return Err(format!(
            "need 2 ≤ --min-clients ≤ --clients, got --min-clients {} --clients {}",
            a.min_clients, a.clients
        ));
    }
    if a.dim == 0 {
        return Err("--dim must be at least 1".into());
    }
    if !(1..=64).contains(&a.bits) {
        return Err(format!("--bits must be in 1..=64, got {}", a.bits));
    }
    let assumptions = a.params.assumptions(0.05)?;
    let model = assumptions.model;
    if a.validate_l2.is_some() && (model != ThreatModel::Malicious || a.pki.is_none()) {
        return Err(
            "--validate-l2 needs --threat malicious with --pki ROSTER: validated rounds sign \
             every proof, binding answer and exclusion with the clients' identity keys \
             (docs/VALIDATION.md §9)"
                .into(),
        );
    }
    let roster = match &a.pki {
        Some(p) => Some(keys::load_roster(p)?),
        None if model == ThreatModel::Malicious => {
            return Err(
                "--threat malicious needs --pki ROSTER (create keys with `secagg keygen`)".into(),
            );
        }
        None => None,
    };
    if model == ThreatModel::HonestButCurious && roster.is_some() {
        return Err("--pki is used by --threat malicious; add that flag".into());
    }
    if let Some(r) = &roster
        && r.len() != a.clients as usize
    {
        return Err(format!(
            "with --pki a round's clients are the roster's {} (a client's id is its key's line, \
             as in every client's own copy): --clients must be {}, got {}",
            r.len(),
            r.len(),
            a.clients
        ));
    }
    // The server does not sample: every client that joins takes part and the server sees who
    // does, so no sampling amplification holds against it and the ledger charges at rate 1.
    if a.dp.dp_sampling_rate != 1.0 {
        return Err(format!(
            "--dp-sampling-rate {} refused: secagg server does not sample clients: every client \
             that joins takes part, so the ledger charges at rate 1; `secagg dp epsilon \
             --sampling-rate` gives the ε a Poisson-sampled deployment would have against \
             observers of the released model only",
            a.dp.dp_sampling_rate
        ));
    }
    let dp = match a.dp.params(a.dim as usize)? {
        None => None,
        Some(params) => {
            if a.clip.is_some() {
                return Err(
                    "--clip is for weighted-mean rounds; DP rounds clip with --dp-clip".into(),
                );
            }
            let budget = a.dp_epsilon_budget.ok_or(
                "--dp needs --dp-epsilon-budget EPSILON: the total ε the population may spend",
            )?;
            if !(budget.is_finite() && budget > 0.0) {
                return Err(format!(
                    "--dp-epsilon-budget must be a positive number, got {budget}"
                ));
            }
            if a.dp_population.is_empty() {
                return Err("--dp-population must not be empty".into());
            }
            Some(secagg_service::server::ServerDp {
                params,
                delta: a.dp.dp_delta,
                epsilon_budget: budget,
                population: a.dp_population.clone(),
                min_survivors: a.dp.dp_min_survivors,
            })
        }
    };
    let opts = ServerOptions {
        listen: a.listen,
        clients: a.clients,
        min_clients: a.min_clients,
        dim: a.dim,
        bits: a.bits,
        rounds: a.rounds,
        join_timeout: a.join_timeout,
        stage_timeout: a.stage_timeout,
        assumptions,
        degree: a.params.degree,
        threshold: a.params.threshold,
        accept_weaker: a.params.accept_weaker_params,
        roster,
        data_dir: a.data_dir,
        metrics: a.metrics,
        float: a.clip.map(|c| (c, a.max_weight)),
        dp,
        limits: Limits {
            max_message_bytes: a.max_message_bytes,
            max_connections: a.max_connections,
            join_frame_timeout: a.join_frame_timeout,
        },
        tls: a.tls_cert.zip(a.tls_key),
        cohort: a
            .global_round_id
            .zip(a.cohort_index)
            .map(|(global_round_id, index)| Cohort {
                global_round_id,
                index,
            }),
        min_cohort_size: a.min_cohort_size,
        ready_file: a.ready_file,
        prg: match a.prg {
            PrgArg::Aes => PrgKind::Aes128Ctr,
            PrgArg::Chacha => PrgKind::ChaCha20,
        },
        fault: server_fault()?,
    };
    // Check the roster and the parameters now, not when the first round starts.
    let validation = a.validate_l2;
    let min_start = secagg_service::server::check_options_validated(&opts, validation.as_ref())?;
    let check = secagg_service::server::plan_round_validated(
        &opts,
        validation.as_ref(),
        opts.clients,
        [0; 32],
    )?;
    if let (Some(v), Some(p)) = (&validation, check.config.validation) {
        match secagg_service::server::round_float(&check.config)? {
            Some(f) => tracing::info!(
                "validated rounds of floats: every client clips its update to L2 norm {} and \
                 proves its encoding's norm (scale {}, squared bound {} in encoded units, \
                 weight coordinate in [0, {}]), J = {} projections",
                v.l2_bound,
                f.scale,
                p.bound_sq,
                f.max_weight,
                p.projections
            ),
            None => tracing::info!(
                "validated rounds: every client proves its input's L2 norm is at most {} \
                 (squared {}), J = {} projections",
                v.l2_bound,
                p.bound_sq,
                p.projections
            ),
        }
    }
    for w in check.warnings {
        tracing::warn!("{w}");
    }
    if min_start > opts.min_clients {
        tracing::warn!(
            "a round needs {} survivors (min_clients of the {} model); rounds start \
             with at least {min_start} clients, not --min-clients {}",
            check.config.min_clients,
            match model {
                ThreatModel::Malicious => "malicious-server",
                ThreatModel::HonestButCurious => "honest-but-curious",
            },
            opts.min_clients
        );
    }
    let rt =
        tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the runtime: {e}"))?;
    rt.block_on(secagg_service::server::run_validated(
        opts, validation, None,
    ))
}

/// A fault the service tests inject into the server, from `SECAGG_SERVER_FAULT`
/// (`crash-after-charge`, `charge-write-fails`); read in debug builds only, never a flag.
fn server_fault() -> Result<Option<secagg_service::server::Fault>, String> {
    if !cfg!(debug_assertions) {
        return Ok(None);
    }
    match std::env::var("SECAGG_SERVER_FAULT") {
        Ok(v) => secagg_service::server::Fault::parse(&v)
            .map(Some)
            .ok_or_else(|| format!("unknown SECAGG_SERVER_FAULT {v:?}")),
        Err(_) => Ok(None),
    }
}

/// Options of `secagg client`.
#[derive(Args)]
pub struct ClientArgs {
    /// Server URL, e.g. http://127.0.0.1:7000.
    #[arg(long)]
    pub server: String,
    /// The input vector (.npy): unsigned integers, or floats for weighted-mean rounds.
    #[arg(long)]
    pub input: PathBuf,
    /// Name in the round's JSON (default: a random one).
    #[arg(long)]
    pub name: Option<String>,
    /// Weight of the input in a weighted-mean round (e.g. its number of examples).
    #[arg(long, default_value_t = 1)]
    pub weight: u64,
    /// Identity key file (PKI rounds), from `secagg keygen`; needs --roster. A client with an
    /// identity refuses rounds without a PKI.
    #[arg(long)]
    pub identity: Option<PathBuf>,
    /// This client's own copy of the roster (PKI rounds): a round is refused unless the
    /// server's roster is the same, line by line. The server's is never used.
    #[arg(long)]
    pub roster: Option<PathBuf>,
    /// The threat model this client requires. malicious: it refuses honest-but-curious rounds
    /// and rounds whose (k, t, min_clients) are weaker than its assumptions need, and needs
    /// --identity and --roster.
    #[arg(long, value_enum, default_value = "honest-but-curious")]
    pub threat: ThreatArg,
    /// Assumed fraction of corrupt clients the round's parameters must withstand [default:
    /// 0.05; honest-but-curious clients check (k, t) against it only when it is given].
    #[arg(long)]
    pub assumed_corrupt: Option<f64>,
    /// Assumed fraction of dropouts [default: 0.05; see --assumed-corrupt]. In the malicious
    /// model a round needs min_clients ≥ ⌈(1 − δ)·n⌉.
    #[arg(long)]
    pub assumed_dropout: Option<f64>,
    /// Directory where the client remembers, across runs, the rounds it took part in (a
    /// replayed round id is refused) and its privacy ledger. Created if missing; one client
    /// process at a time.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// This client's own privacy budget: it takes part only in rounds with distributed DP
    /// noise, charges each at sampling rate 1 in the ledger under --state-dir before sending
    /// its update, and refuses a round that would take its ε past this.
    /// Needs --dp-honest-clients: each round is charged at the noise that many honest
    /// survivors add, not at the announced multiplier (fake clients would shrink it).
    #[arg(long, requires = "state_dir", requires = "dp_honest_clients")]
    pub dp_budget_epsilon: Option<f64>,
    /// δ of the client's privacy budget.
    #[arg(long, default_value_t = 1e-5, requires = "dp_budget_epsilon")]
    pub dp_budget_delta: f64,
    /// Rounds to take part in.
    #[arg(long, default_value_t = 1)]
    pub rounds: u32,
    /// Give up when the server sends nothing for this long.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Keep retrying to reach the server for this long when the failure may pass (server not
    /// up yet, connection refused, reset or timed out, server at its stream limit); 0s: one
    /// attempt.
    #[arg(long, default_value = "30s", value_parser = parse_duration_or_zero)]
    pub connect_retry: Duration,
    /// Testing hook: freeze when this stage's request arrives.
    #[arg(long, value_enum, hide = true)]
    pub pause_at: Option<StageArg>,
    /// For an https:// server: PEM certificate of the CA to trust (default: public roots).
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
    /// Take part only in rounds with distributed DP noise of at least this noise multiplier.
    #[arg(long)]
    pub dp_min_noise_multiplier: Option<f64>,
    /// With --dp-min-noise-multiplier or --dp-budget-epsilon: count only on this many honest
    /// survivors' noise (a malicious server with fake clients could otherwise split the noise
    /// over many of them and shrink each honest share); the floor is checked and the budget
    /// charged at the multiplier they reach.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub dp_honest_clients: Option<u32>,
    /// Refuse rounds whose sum may be released with fewer than this many clients' inputs
    /// (the round's announced min_clients, which the client also enforces at every stage).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(2..))]
    pub min_cohort_size: u32,
    /// Validated rounds: threads for the norm and binding proofs (their MSMs and generator
    /// folds split; the proofs are the same bytes). Default: the cores this process may use.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub prove_threads: Option<u32>,
}

pub fn client(a: ClientArgs) -> Result<(), String> {
    let guard = client_guard(&a)?;
    set_prove_threads(a.prove_threads);
    let arr = npy::read(&a.input).map_err(|e| format!("{}: {e}", a.input.display()))?;
    let input = if arr.is_float() {
        ClientInput::Float {
            values: arr.into_f64(),
            weight: a.weight,
        }
    } else {
        ClientInput::Unsigned(arr.into_u64())
    };
    let name = match a.name {
        Some(n) => n,
        None => {
            let mut b = [0u8; 6];
            getrandom::fill(&mut b).map_err(|e| format!("no OS randomness: {e}"))?;
            format!(
                "client-{}",
                b.iter().map(|x| format!("{x:02x}")).collect::<String>()
            )
        }
    };
    let opts = ClientOptions {
        server: a.server,
        name,
        input,
        identity: a.identity.as_deref().map(keys::load).transpose()?,
        roster: a.roster.as_deref().map(keys::load_roster).transpose()?,
        timeout: a.timeout,
        connect_retry: a.connect_retry,
        pause_at: a.pause_at.map(StageArg::stage),
        tls_ca: a.tls_ca,
        dp_floor: match a.dp_min_noise_multiplier {
            Some(z) => {
                let f = secagg_sim::dp::DpFloor {
                    min_noise_multiplier: z,
                    honest_clients: a.dp_honest_clients,
                };
                f.validate()?;
                Some(f)
            }
            None => None,
        },
    };
    let rt =
        tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the runtime: {e}"))?;
    for _ in 0..a.rounds.max(1) {
        let r = rt
            .block_on(participate_with(&opts, &guard))
            .map_err(|e| e.to_string())?;
        println!("{}", r.round_id);
    }
    Ok(())
}

/// The client's policy, memory and budget from its flags; usage errors say what to add.
fn client_guard(a: &ClientArgs) -> Result<ClientGuard, String> {
    let malicious = matches!(a.threat, ThreatArg::Malicious);
    if malicious && (a.identity.is_none() || a.roster.is_none()) {
        return Err(
            "--threat malicious needs --identity KEYFILE and --roster ROSTER (this \
                    client's own copy of the roster; create keys with `secagg keygen`)"
                .into(),
        );
    }
    match (&a.identity, &a.roster) {
        (Some(_), None) => {
            return Err(
                "--identity needs --roster ROSTER: a client with an identity key takes \
                        part only in PKI rounds, with its own copy of the roster (it never \
                        takes the server's)"
                    .into(),
            );
        }
        (None, Some(_)) => {
            return Err(
                "--roster is for PKI rounds: give this client's --identity KEYFILE too".into(),
            );
        }
        _ => {}
    }
    for (flag, v) in [
        ("--assumed-corrupt", a.assumed_corrupt),
        ("--assumed-dropout", a.assumed_dropout),
    ] {
        if let Some(f) = v
            && !(0.0..1.0).contains(&f)
        {
            return Err(format!("{flag} must be in [0, 1), got {f}"));
        }
    }
    let (corrupt, dropout) = (
        a.assumed_corrupt.unwrap_or(0.05),
        a.assumed_dropout.unwrap_or(0.05),
    );
    let mut policy = if malicious {
        Policy::malicious(corrupt, dropout)
    } else if a.assumed_corrupt.is_some() || a.assumed_dropout.is_some() {
        Policy {
            assumptions: Some(Assumptions {
                corrupt_fraction: corrupt,
                dropout_fraction: dropout,
                model: ThreatModel::HonestButCurious,
            }),
            ..Policy::default()
        }
    } else {
        Policy::default()
    };
    policy.min_clients = a.min_cohort_size;
    let state = match &a.state_dir {
        Some(d) => ClientState::open(d)?,
        None => ClientState::in_memory(),
    };
    if a.dp_honest_clients.is_some()
        && a.dp_min_noise_multiplier.is_none()
        && a.dp_budget_epsilon.is_none()
    {
        return Err(String::from(
            "--dp-honest-clients needs --dp-min-noise-multiplier or --dp-budget-epsilon",
        ));
    }
    let dp_budget = match a.dp_budget_epsilon {
        Some(epsilon) => {
            let b = DpBudget {
                epsilon,
                delta: a.dp_budget_delta,
                // clap requires --dp-honest-clients with --dp-budget-epsilon.
                honest_clients: a.dp_honest_clients.unwrap_or(1),
            };
            b.validate()
                .map_err(|e| format!("--dp-budget-epsilon/--dp-budget-delta: {e}"))?;
            Some(b)
        }
        None => None,
    };
    Ok(ClientGuard {
        policy,
        state,
        dp_budget,
    })
}

/// Options of `secagg keygen`.
#[derive(Args)]
pub struct KeygenArgs {
    /// Where to write the new identity key (never overwritten; mode 0600).
    #[arg(long)]
    pub out: PathBuf,
    /// Append the public key to this roster file (created if missing).
    #[arg(long)]
    pub roster: Option<PathBuf>,
    /// Name to note beside the key in the roster.
    #[arg(long, default_value = "")]
    pub name: String,
}

pub fn keygen(a: KeygenArgs) -> Result<(), String> {
    // Never append to a roster that is already invalid (e.g. one key at two ids).
    if let Some(r) = &a.roster
        && r.exists()
    {
        keys::check_roster_file(r)?;
    }
    let key = keys::generate(&a.out)?;
    let line = keys::roster_line(&key.public(), &a.name);
    if let Some(r) = &a.roster {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(r)
            .map_err(|e| format!("cannot open {}: {e}", r.display()))?;
        f.write_all(line.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", r.display()))?;
    }
    print!("{line}");
    Ok(())
}
