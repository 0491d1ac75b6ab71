//! The tokio server: one coordinator task owns the lobby, the current round's sans-IO state
//! machine and the store; connection tasks only move frames. Rounds run one after another.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use secagg_core::encoding::FloatEncoding;
use secagg_core::error::Misbehaviour;
use secagg_core::messages::ServerMessage;
use secagg_core::params::Assumptions;
use secagg_core::server::{DropReason, Outcome, ServerRound};
use secagg_core::{ClientId, PrgKind, ServerError, Stage};
use secagg_dp::accountant::Accountant;
use secagg_dp::pipeline::{DpEncoding, NoisePlacement};
use secagg_sim::dp::DpParams;
use secagg_sim::input_encoding::InputEncoding;
use secagg_sim::npy::{self, NpyArray};
use secagg_sim::plan::{GraphChoice, Plan, RoundOptions, plan};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::convert::{self, Reassembler};
use crate::metrics::{self, Metrics};
use crate::proto;
use crate::proto::client_frame::Body as CBody;
use crate::proto::secure_aggregation_server::{SecureAggregation, SecureAggregationServer};
use crate::store::{Charge, RoundState, Store};

/// Resource limits; every one is enforced and documented in the README.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest gRPC message accepted (bytes).
    pub max_message_bytes: usize,
    /// Most client streams open at once; more are refused with RESOURCE_EXHAUSTED.
    pub max_connections: usize,
    /// Time a new stream has to send Join.
    pub join_frame_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 4 << 20,
            max_connections: 10_000,
            join_frame_timeout: Duration::from_secs(10),
        }
    }
}

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Clients per round (N): a round starts as soon as N have joined.
    pub clients: u32,
    /// Fewest clients to start with when the join deadline passes (T).
    pub min_clients: u32,
    /// Values per client.
    pub dim: u32,
    /// Modulus bits.
    pub bits: u8,
    /// Rounds to run (None: forever).
    pub rounds: Option<u64>,
    /// How long a round waits for N clients before starting with at least T.
    pub join_timeout: Duration,
    /// Deadline of each stage.
    pub stage_timeout: Duration,
    /// Threat model and assumed fractions.
    pub assumptions: Assumptions,
    /// Explicit degree.
    pub degree: Option<u32>,
    /// Explicit threshold.
    pub threshold: Option<u32>,
    /// Accept explicit parameters weaker than the model needs.
    pub accept_weaker: bool,
    /// PKI: the roster, identity public keys of clients 1..=n in id order, each once. Every
    /// PKI round has n = its length, and a client's id is its key's position: clients compare
    /// the roster in RoundStart with their own copy, position by position. `clients` must be
    /// its length.
    pub roster: Option<Vec<[u8; 32]>>,
    /// Data directory (store and round files).
    pub data_dir: PathBuf,
    /// Serve Prometheus metrics here.
    pub metrics: Option<SocketAddr>,
    /// Float rounds: (clip, max weight); the weighted mean is released.
    pub float: Option<(f64, u64)>,
    /// Differentially private mean rounds, charged to a privacy ledger.
    pub dp: Option<ServerDp>,
    /// Limits.
    pub limits: Limits,
    /// Serve TLS directly with this PEM certificate chain and private key.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The mask PRG every round announces: AES-128-CTR (hardware AES), or ChaCha20 for
    /// rounds with devices that have no AES instructions (5.4× fewer instructions per byte on
    /// a Cortex-M4, README "Devices").
    pub prg: PrgKind,
    /// This server serves one cohort of a larger round: labels written into each round's
    /// results (and the ready file), which `secagg combine` reads. Clients do not check them.
    pub cohort: Option<Cohort>,
    /// The fewest clients whose inputs a released sum may hold, as the operator promises it
    /// (Google's `minimum_clients_in_server_visible_aggregate`): every round's `min_clients`
    /// is raised to it, so it is in the configuration the clients check (a client's policy
    /// floor refuses a smaller one) and no stage goes on, nor unmasking starts, with fewer.
    pub min_cohort_size: Option<u32>,
    /// Once listening, write `{"address": …, "pid": …, "cohort": …}` here (atomically), so a
    /// driver that asked for port 0 learns the port.
    pub ready_file: Option<PathBuf>,
    /// Fault injection for tests; `None` in production.
    #[doc(hidden)]
    pub fault: Option<Fault>,
}

/// One cohort of a round run as several, each on its own server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cohort {
    /// The global round this cohort belongs to (the same on every shard).
    pub global_round_id: String,
    /// This cohort's index in the global round, from 0.
    pub index: u32,
}

impl Cohort {
    /// The labels as they appear in a round's `parameters`.
    fn json(&self) -> Value {
        json!({"global_round_id": self.global_round_id, "cohort_index": self.index})
    }
}

/// A fault a test injects into the server. Not a CLI flag: `secagg server` reads it from the
/// `SECAGG_SERVER_FAULT` environment variable (`crash-after-charge`, `charge-write-fails`) in
/// debug builds only.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The process aborts right after a DP round's charge is committed, before any unmask
    /// request is sent (a crash between the charge and the unmask stage).
    CrashAfterCharge,
    /// Writing a DP round's charge fails (a full or read-only disk).
    ChargeWriteFails,
}

impl Fault {
    /// Parses the `SECAGG_SERVER_FAULT` value.
    pub fn parse(s: &str) -> Option<Fault> {
        match s {
            "crash-after-charge" => Some(Fault::CrashAfterCharge),
            "charge-write-fails" => Some(Fault::ChargeWriteFails),
            _ => None,
        }
    }
}

/// Differential privacy of a server's rounds: each releases the mean of the survivors' clipped
/// updates with noise, and its privacy cost is charged to the population's ledger in the store
/// before the round unmasks.
///
/// There is no sampling rate: the server does not sample clients (every client that joins takes
/// part, and the server sees who does), so the ledger charges every round at rate 1, and the ε
/// it reports holds against the server itself, not only against those who see the mean.
#[derive(Debug, Clone)]
pub struct ServerDp {
    /// Noise kind and placement, noise multiplier, L2 clip and β (its `dim` is the server's).
    pub params: DpParams,
    /// δ of the (ε, δ) guarantee.
    pub delta: f64,
    /// The population's total ε budget: a round that would exceed it is refused before it starts.
    pub epsilon_budget: f64,
    /// Whose ledger the rounds are charged to.
    pub population: String,
    /// Fewest survivors a round accepts (default: the threshold t, or in the malicious model
    /// the survivors it needs anyway, never fewer); each client's noise share is sized for them.
    pub min_survivors: Option<u32>,
}

/// Validated rounds (issue 11, docs/VALIDATION.md): every client proves that its encoded
/// input has L2 norm at most the bound, and a client whose proof fails is left out of the
/// sum with the reason recorded (the round's `validation.rejected`). In the malicious model
/// with a PKI roster. Unsigned-integer rounds take B in encoded units (a whole number);
/// weighted-mean rounds of floats (`ServerOptions::float` with its clip equal to B) take it
/// in input units, and every client clips its update to L2 norm B and proves its encoding
/// (VALIDATION.md §5.4). Given to [`run_validated`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Validation {
    /// B, the L2 bound: in encoded units for unsigned inputs (read as signed values mod
    /// 2^bits as the core reads them; B_enc² = B²), in input units for floats.
    pub l2_bound: f64,
}

impl Validation {
    /// `--validate-l2`'s value: B, a positive number (parsed as `secagg simulate --validate
    /// l2=B` parses it; whole for unsigned-integer rounds, checked when the round is planned).
    pub fn parse(s: &str) -> Result<Self, String> {
        let b = secagg_sim::validate::parse_spec(&format!("l2={}", s.trim()))
            .map_err(|e| e.replace("--validate l2=", "--validate-l2 "))?;
        Self::from_bound(b)
    }

    /// B as a number: positive and finite.
    pub fn from_bound(b: f64) -> Result<Self, String> {
        if !(b.is_finite() && b > 0.0) {
            return Err(format!("the L2 bound must be a positive number, got {b}"));
        }
        Ok(Self { l2_bound: b })
    }

    /// B for the round's JSON: a whole number as an integer.
    fn bound_json(&self) -> Value {
        let b = self.l2_bound;
        if b.fract() == 0.0 && b < (1u64 << 53) as f64 {
            json!(b as u64)
        } else {
            json!(b)
        }
    }
}

/// The input encoding of the server's rounds, as it goes into `RoundConfig::encoding`.
pub fn input_encoding(opts: &ServerOptions) -> InputEncoding {
    match (&opts.dp, opts.float) {
        (Some(dp), _) => InputEncoding::Dp(dp.params),
        (None, Some((clip, max_weight))) => InputEncoding::Float { clip, max_weight },
        (None, None) => InputEncoding::Integers,
    }
}

/// The configuration of a round of `n` clients (round id 0): (k, t, min_clients) planned and
/// checked for the server's assumptions, the input encoding in `encoding` (so in the session
/// id), and a DP round's survivors raised to `min_survivors`. Every derived value (the float
/// scale, the DP encoding) is checked to exist for it.
pub fn plan_round(opts: &ServerOptions, n: u32, round_seed: [u8; 32]) -> Result<Plan, String> {
    plan_round_validated(opts, None, n, round_seed)
}

/// [`plan_round`] for a server whose rounds are validated (`validation`), which then must be
/// unsigned-integer or float rounds (no DP) in the malicious model with a PKI roster.
pub fn plan_round_validated(
    opts: &ServerOptions,
    validation: Option<&Validation>,
    n: u32,
    round_seed: [u8; 32],
) -> Result<Plan, String> {
    if let Some(v) = validation {
        check_validation(opts, v)?;
    }
    let encoding = input_encoding(opts);
    let mut p = plan(&RoundOptions {
        clients: n,
        dim: encoding.masked_dim(opts.dim as usize)?,
        bits: opts.bits,
        graph: GraphChoice::Auto,
        degree: opts.degree,
        threshold: opts.threshold,
        accept_weaker: opts.accept_weaker,
        assumptions: opts.assumptions,
        prg: opts.prg,
        round_id: 0,
        round_seed,
    })?;
    p.config.encoding = encoding.to_bytes();
    if let Some(m) = opts.min_cohort_size {
        if m > n {
            return Err(format!(
                "the minimum cohort size {m} is more than the round's {n} clients"
            ));
        }
        // Raised, never lowered: the model's own floor (and the threshold) still hold.
        p.config.min_clients = p.config.min_clients.max(m);
    }
    if let Some(dp) = &opts.dp {
        // Never below what the plan requires (in the malicious model, ⌈(1 − δ)n⌉ and more).
        let floor = p.config.min_clients;
        secagg_sim::dp::require_survivors(&mut p.config, dp.min_survivors.map(|m| m.max(floor)))?;
        dp.params.encoding(&p.config)?;
    }
    encoding.float(&p.config)?;
    if let Some(v) = validation {
        // Unsigned: B_enc² = B². Floats: the validated scale s_val from (b, n, d, W, B) and
        // B_enc² from it, with the encoding `Float { clip: B, max_weight: W }`. J = 41 +
        // ⌊α·n⌋ within J_cap(n). All checked as a client checks them (what `secagg simulate
        // --validate` announces).
        secagg_sim::validate::announce(
            &mut p.config,
            v.l2_bound,
            opts.float.map(|(_, max_weight)| max_weight),
            opts.assumptions.corrupt_fraction,
        )
        .map_err(|e| format!("this round cannot be validated: {e}"))?;
        round_float(&p.config)?;
    }
    p.config.validate()?;
    Ok(p)
}

/// The float encoding of a round as its clients derive it: the validated scale in a validated
/// round (VALIDATION.md §5.4), the plain one otherwise; `None` for other encodings. The
/// server decodes the released mean with it.
pub fn round_float(config: &secagg_core::RoundConfig) -> Result<Option<FloatEncoding>, String> {
    let encoding = InputEncoding::of(config)?;
    if config.validation.is_some() {
        encoding.validated_float(config)
    } else {
        encoding.float(config)
    }
}

/// What validated rounds need of the server's other options.
fn check_validation(opts: &ServerOptions, v: &Validation) -> Result<(), String> {
    if opts.assumptions.model != secagg_core::ThreatModel::Malicious || opts.roster.is_none() {
        return Err(
            "validated rounds (--validate-l2) need the malicious threat model with a PKI \
             roster (--threat malicious --pki ROSTER): every proof, binding answer and \
             exclusion is signed with the clients' identity keys (docs/VALIDATION.md §9, \
             §21.1 D36)"
                .into(),
        );
    }
    if opts.dp.is_some() {
        return Err(secagg_sim::validate::DP_REFUSED.replace("--validate", "--validate-l2"));
    }
    let b = v.l2_bound;
    match opts.float {
        // The validated float encoding clips each update to L2 norm B, so values lie within
        // ±B: the per-value clip is B (as the Python classes' clip=B with validate_l2=B).
        Some((clip, _)) if clip != b => Err(format!(
            "--validate-l2 {b} with --clip {clip}: validated float rounds clip each update to \
             L2 norm B (values then lie within ±B), so give --clip {b}"
        )),
        Some(_) => Ok(()),
        None if b.fract() != 0.0 || b >= (1u64 << 31) as f64 => Err(format!(
            "--validate-l2 {b}: unsigned-integer rounds take B in encoded units (the inputs' \
             own), a whole number in 1..2^31; for a weighted mean of floats give --clip {b} too"
        )),
        None => Ok(()),
    }
}

/// What a DP round knows from its start: the encoding, its cost, and the ε it brings the
/// population to; and whether it has been charged (once its unmask stage is about to start).
struct RoundDp {
    encoding: DpEncoding,
    charge: Charge,
    min_survivors: u32,
    epsilon_before: f64,
    epsilon_after: f64,
    order: f64,
    /// The ledger's rounds after this round's charge; `None` until it is charged.
    charged: Option<Vec<u64>>,
}

/// Against whom a DP round's ε holds: the server charges at sampling rate 1 (it does not
/// sample, and it sees who took part), so there is no amplification by sampling.
fn epsilon_holds_against(placement: NoisePlacement) -> &'static str {
    match placement {
        NoisePlacement::Distributed => {
            "the server and anyone who sees the released mean (sampling rate 1: every client \
             that joins takes part, no amplification by sampling), if the min_clients \
             survivors the noise is sized for are honest"
        }
        NoisePlacement::Central => {
            "anyone who sees the released mean, not the server (central noise: it sees the \
             exact sum); sampling rate 1, no amplification by sampling"
        }
    }
}

enum Event {
    Joined {
        conn: u64,
        name: String,
        identity: Vec<u8>,
        tx: mpsc::Sender<Result<proto::ServerFrame, Status>>,
    },
    Frame {
        conn: u64,
        body: CBody,
        size: usize,
    },
    Gone {
        conn: u64,
    },
}

struct Svc {
    events: mpsc::Sender<Event>,
    /// A PKI roster: joiners name a key of it and prove possession of it.
    roster: Option<Arc<HashSet<[u8; 32]>>>,
    store: Arc<Store>,
    next_conn: AtomicU64,
    open: Arc<AtomicUsize>,
    limits: Limits,
    metrics: Metrics,
}

/// The Join challenge (docs/SECURITY.md §4b): sends a fresh nonce on the client's stream and
/// waits (at most `timeout`) for its identity key's signature over it. Until it verifies, the
/// Join is nothing: the key is not taken and the lobby never hears of the stream.
async fn prove_possession(
    inbound: &mut Streaming<proto::ClientFrame>,
    tx: &mpsc::Sender<Result<proto::ServerFrame, Status>>,
    join: &proto::Join,
    roster: &HashSet<[u8; 32]>,
    timeout: Duration,
) -> Result<(), Status> {
    let identity = <[u8; 32]>::try_from(join.identity_public_key.as_slice()).map_err(|_| {
        Status::permission_denied("this server has a PKI roster: Join needs a 32-byte identity key")
    })?;
    // No challenge (and no wait) for a key that could never join.
    if !roster.contains(&identity) {
        tracing::warn!(client = %join.name, "refused {:?}: identity key not in the roster", join.name);
        return Err(Status::permission_denied(
            "identity public key not in the server's roster",
        ));
    }
    let mut nonce = [0u8; 32];
    getrandom::fill(&mut nonce).map_err(|e| Status::internal(format!("no OS randomness: {e}")))?;
    let challenge = proto::ServerFrame {
        body: Some(proto::server_frame::Body::JoinChallenge(
            proto::JoinChallenge {
                nonce: nonce.to_vec(),
            },
        )),
    };
    tx.try_send(Ok(challenge))
        .map_err(|_| Status::internal("the stream's queue is full before Join"))?;
    let refused = |why: &str| {
        tracing::warn!(client = %join.name, "refused {:?}: {why}", join.name);
        Status::permission_denied(format!("no proof of possession of the identity key: {why}"))
    };
    let answer = match tokio::time::timeout(timeout, inbound.message()).await {
        Err(_) => return Err(refused("no JoinProof in time")),
        Ok(Err(e)) => return Err(refused(&format!("the stream failed: {e}"))),
        Ok(Ok(f)) => f.and_then(|f| f.body),
    };
    let Some(CBody::JoinProof(p)) = answer else {
        return Err(refused("the frame after JoinChallenge must be JoinProof"));
    };
    let sig = <[u8; 64]>::try_from(p.signature.as_slice())
        .map_err(|_| refused("the signature is not 64 bytes"))?;
    let msg = secagg_core::messages::join_proof_signed_bytes(&nonce, &identity, &join.name);
    if !secagg_core::crypto::verify(&identity, &msg, &sig) {
        return Err(refused("the signature does not verify"));
    }
    Ok(())
}

type FrameStream = Pin<Box<dyn Stream<Item = Result<proto::ServerFrame, Status>> + Send>>;

#[tonic::async_trait]
impl SecureAggregation for Svc {
    type ParticipateStream = FrameStream;

    async fn participate(
        &self,
        req: Request<Streaming<proto::ClientFrame>>,
    ) -> Result<Response<FrameStream>, Status> {
        if self.open.load(Ordering::SeqCst) >= self.limits.max_connections {
            return Err(Status::resource_exhausted("too many open client streams"));
        }
        let mut inbound = req.into_inner();
        let first = tokio::time::timeout(self.limits.join_frame_timeout, inbound.message())
            .await
            .map_err(|_| Status::deadline_exceeded("no Join frame in time"))?
            .map_err(|e| Status::invalid_argument(format!("bad first frame: {e}")))?;
        let join = match first.and_then(|f| f.body) {
            Some(CBody::Join(j)) => j,
            _ => return Err(Status::invalid_argument("the first frame must be Join")),
        };
        if join.wire_version != convert::WIRE_VERSION {
            return Err(Status::failed_precondition(format!(
                "wire version {} is not supported (this server speaks {})",
                join.wire_version,
                convert::WIRE_VERSION
            )));
        }
        if join.name.is_empty() || join.name.len() > 128 || join.name.chars().any(char::is_control)
        {
            return Err(Status::invalid_argument(
                "the name must be 1-128 printable characters",
            ));
        }
        if self.roster.is_some() && join.name.contains('~') {
            return Err(Status::invalid_argument(
                "with a PKI roster, '~' is reserved in names (the server uses it to tell apart \
                 two members who chose the same name)",
            ));
        }
        let conn = self.next_conn.fetch_add(1, Ordering::SeqCst);
        let (tx, rx) = mpsc::channel(16);
        self.open.fetch_add(1, Ordering::SeqCst);
        self.metrics.connection(1);
        let events = self.events.clone();
        let open = self.open.clone();
        let metrics = self.metrics.clone();
        let roster = self.roster.clone();
        let proof_timeout = self.limits.join_frame_timeout;
        // The challenge runs here, after the response stream is returned: the client sees
        // JoinChallenge only once this handler has answered.
        tokio::spawn(async move {
            // Before the Join counts, the client proves it holds the key it names (§4b).
            let proven = if let Some(roster) = roster {
                prove_possession(&mut inbound, &tx, &join, &roster, proof_timeout).await
            } else {
                Ok(())
            };
            let joined = match proven {
                Ok(()) => events
                    .send(Event::Joined {
                        conn,
                        name: join.name,
                        identity: join.identity_public_key,
                        tx: tx.clone(),
                    })
                    .await
                    .map_err(|_| Status::unavailable("the server is shutting down")),
                Err(st) => Err(st),
            };
            if let Err(st) = joined {
                let _ = tx.send(Err(st)).await;
                open.fetch_sub(1, Ordering::SeqCst);
                metrics.connection(-1);
                return;
            }
            drop(tx);
            while let Ok(Some(f)) = inbound.message().await {
                let size = prost::Message::encoded_len(&f);
                let Some(body) = f.body else { continue };
                if events
                    .send(Event::Frame { conn, body, size })
                    .await
                    .is_err()
                {
                    break;
                }
            }
            open.fetch_sub(1, Ordering::SeqCst);
            metrics.connection(-1);
            let _ = events.send(Event::Gone { conn }).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn get_round(
        &self,
        req: Request<proto::GetRoundRequest>,
    ) -> Result<Response<proto::RoundStatus>, Status> {
        let id = req.into_inner().round_id;
        let rec = self
            .store
            .round(id)
            .map_err(|e| Status::internal(e.to_string()))?;
        let status = match rec {
            None => proto::RoundStatus {
                round_id: id,
                state: proto::RoundState::Unknown as i32,
                ..Default::default()
            },
            Some(r) => proto::RoundStatus {
                round_id: id,
                state: match r.state {
                    RoundState::InFlight => proto::RoundState::InFlight,
                    RoundState::Finished => proto::RoundState::Finished,
                    RoundState::Aborted => proto::RoundState::Aborted,
                } as i32,
                reason: r.summary["reason"].as_str().unwrap_or("").to_string(),
                survivors: r.summary["survivors"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default(),
            },
        };
        Ok(Response::new(status))
    }
}

struct Member {
    conn: u64,
    name: String,
    tx: mpsc::Sender<Result<proto::ServerFrame, Status>>,
    reasm: Reassembler,
}

struct Lobbied {
    conn: u64,
    name: String,
    identity: Vec<u8>,
    tx: mpsc::Sender<Result<proto::ServerFrame, Status>>,
}

#[derive(Default, Clone)]
struct StageStats {
    seconds: f64,
    bytes_in: u64,
    bytes_out: u64,
}

struct Round {
    id: u64,
    server: ServerRound,
    /// By id - 1; `None` for roster members that did not join (PKI rounds).
    members: Vec<Option<Member>>,
    by_conn: HashMap<u64, ClientId>,
    /// The members' names (a name in a round cannot join the lobby: O(1) per Join).
    names: HashSet<String>,
    float: Option<FloatEncoding>,
    dp: Option<RoundDp>,
    roster: Vec<[u8; 32]>,
    /// The record stored when the round began (its charge rewrites it with `dp_charged`).
    record: Value,
    /// Why the driver ended the round itself (the privacy ledger could not be written).
    failed: Option<String>,
    start: Instant,
    started_unix_ms: u64,
    stage: Stage,
    stage_start: Instant,
    stats: HashMap<Stage, StageStats>,
    warnings: Vec<String>,
}

impl Round {
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The process's peak resident memory (Linux: VmHWM), if known.
fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb = s
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse::<u64>()
        .ok()?;
    Some(kb * 1024)
}

/// Encodes what the round's state machine queued, counting its bytes; [`deliver`] sends it.
fn take_queued(r: &mut Round, metrics: &Metrics) -> Vec<(ClientId, proto::ServerFrame)> {
    let stage = r.server.stage();
    let mut frames = Vec::new();
    while let Some((id, bytes)) = r.server.poll_outgoing() {
        if !matches!(r.members.get(id as usize - 1), Some(Some(_))) {
            continue;
        }
        let frame = match ServerMessage::decode(&bytes, Some(r.server.config())) {
            Ok(ServerMessage::RoundStart(c)) => convert::round_start(&c, id, &r.roster),
            Ok(msg) => convert::server_frame(&msg, r.id),
            // A validated round's own messages travel as the core encoded them.
            Err(_) if convert::is_validation_message(&bytes) => convert::validation_frame(bytes),
            Err(_) => continue,
        };
        let size = prost::Message::encoded_len(&frame);
        r.stats.entry(stage).or_default().bytes_out += size as u64;
        metrics.bytes(false, size);
        frames.push((id, frame));
    }
    frames
}

/// Sends frames to the round's members; returns the clients whose stream is gone.
fn deliver(r: &Round, frames: Vec<(ClientId, proto::ServerFrame)>) -> Vec<ClientId> {
    let mut lost = Vec::new();
    for (id, frame) in frames {
        if let Some(Some(m)) = r.members.get(id as usize - 1)
            && m.tx.try_send(Ok(frame)).is_err()
        {
            lost.push(id);
        }
    }
    lost
}

struct Coordinator {
    opts: ServerOptions,
    store: Arc<Store>,
    metrics: Metrics,
    lobby: Vec<Lobbied>,
    /// Every name in the lobby (and perhaps some that left it since the last round started):
    /// a filter, so that a Join costs O(1) rather than a scan of up to 10^4 names.
    lobby_names: HashSet<String>,
    lobby_opened: Instant,
    /// Fewest joined clients a round starts with when the join deadline passes: --min-clients,
    /// and in PKI rounds (whose n is the roster's size) at least the round's min_clients.
    min_start: u32,
    round: Option<Round>,
    rounds_done: u64,
    /// Set when the server must stop (the privacy budget is spent).
    fatal: Option<String>,
    /// Validated rounds: the bound every client proves its input within.
    validation: Option<Validation>,
}

impl Coordinator {
    fn rounds_dir(&self) -> PathBuf {
        self.opts.data_dir.join("rounds")
    }

    fn name_taken(&self, name: &str) -> bool {
        (self.lobby_names.contains(name) && self.lobby.iter().any(|l| l.name == name))
            || self.round.as_ref().is_some_and(|r| r.names.contains(name))
    }

    fn on_joined(
        &mut self,
        conn: u64,
        name: String,
        identity: Vec<u8>,
        tx: mpsc::Sender<Result<proto::ServerFrame, Status>>,
    ) {
        let refuse = |tx: &mpsc::Sender<Result<proto::ServerFrame, Status>>, st: Status| {
            let _ = tx.try_send(Err(st));
        };
        // With a roster the identity key is what is unique (and proven): a name another
        // member already took is made unique rather than refused, so that taking a member's
        // name (which needs no key of that member) cannot exclude it (review G3, W1).
        let name = match (&self.opts.roster, self.name_taken(&name)) {
            (Some(_), true) => {
                // '~' is reserved with a roster (refused in Join names), and 8 bytes of the
                // (unique, proven) key cannot be ground to match another member's.
                let tag: String = identity
                    .iter()
                    .take(8)
                    .map(|b| format!("{b:02x}"))
                    .collect();
                let unique = format!("{name}~{tag}");
                tracing::warn!(client = %name, "a second client named {name:?} joins as {unique:?}");
                unique
            }
            _ => name,
        };
        if self.name_taken(&name) {
            tracing::warn!(client = %name, "refused a second client named {name:?}");
            return refuse(
                &tx,
                Status::already_exists(format!("a client named {name:?} already joined")),
            );
        }
        if let Some(roster) = &self.opts.roster {
            let ok = <[u8; 32]>::try_from(identity.as_slice()).is_ok_and(|k| roster.contains(&k));
            if !ok {
                tracing::warn!(client = %name, "refused {name:?}: identity key not in the roster");
                return refuse(
                    &tx,
                    Status::permission_denied("identity public key not in the server's roster"),
                );
            }
            // Every joiner here proved it holds its key (§4b): a second one is the same
            // holder, refused while its first stream lives, replacing it once that closed.
            self.lobby
                .retain(|l| !(l.identity == identity && l.tx.is_closed()));
            if self.lobby.iter().any(|l| l.identity == identity) {
                return refuse(&tx, Status::already_exists("this identity already joined"));
            }
        }
        if self.lobby.is_empty() && self.round.is_none() {
            self.lobby_opened = Instant::now();
        }
        self.lobby_names.insert(name.clone());
        self.lobby.push(Lobbied {
            conn,
            name,
            identity,
            tx,
        });
    }

    fn join_deadline(&self) -> Instant {
        self.lobby_opened + self.opts.join_timeout
    }

    fn maybe_start_round(&mut self) {
        if self.round.is_some()
            || self.fatal.is_some()
            || self.opts.rounds.is_some_and(|r| self.rounds_done >= r)
        {
            return;
        }
        // Nothing to decide before the lobby could be full or the join deadline has passed
        // (this runs after every event: a scan of the lobby here made 10^4 joins quadratic).
        if (self.lobby.len() as u32) < self.opts.clients && Instant::now() < self.join_deadline() {
            return;
        }
        // Drop lobby entries whose stream is gone.
        self.lobby.retain(|l| !l.tx.is_closed());
        let n = self.lobby.len() as u32;
        let full = n >= self.opts.clients;
        let timed_out = Instant::now() >= self.join_deadline() && n >= self.min_start;
        if !(full || timed_out) {
            if Instant::now() >= self.join_deadline() {
                // Not enough clients yet: keep waiting another join period.
                self.lobby_opened = Instant::now();
            }
            return;
        }
        let take = (n.min(self.opts.clients)) as usize;
        let joined: Vec<Lobbied> = self.lobby.drain(..take).collect();
        self.lobby_names = self.lobby.iter().map(|l| l.name.clone()).collect();
        let told: Vec<_> = joined.iter().map(|j| j.tx.clone()).collect();
        if let Err(e) = self.start_round(joined) {
            tracing::warn!("could not start a round: {e}");
            // Tell the clients why instead of just closing their streams (a refusal for the
            // budget has already told them, and the first error is what they see).
            for tx in &told {
                let _ = tx.try_send(Err(Status::unavailable(format!("round not started: {e}"))));
            }
        }
        if let Some(why) = &self.fatal {
            for l in self.lobby.drain(..) {
                let _ = l.tx.try_send(Err(Status::failed_precondition(why.clone())));
            }
        }
        self.lobby_opened = Instant::now();
    }

    fn start_round(&mut self, joined: Vec<Lobbied>) -> Result<(), String> {
        // With a PKI the round is the roster's: n is its size and ids are key positions.
        let n = match &self.opts.roster {
            Some(r) => r.len() as u32,
            None => joined.len() as u32,
        };
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| format!("no OS randomness: {e}"))?;
        let mut p = plan_round_validated(&self.opts, self.validation.as_ref(), n, seed)?;
        let float = round_float(&p.config)?;
        let dp = match self.round_dp(&p.config) {
            Ok(dp) => dp,
            Err(e) => {
                if self.fatal.is_some() {
                    for j in &joined {
                        let _ = j.tx.try_send(Err(Status::failed_precondition(e.clone())));
                    }
                }
                return Err(e);
            }
        };
        let names: Vec<String> = joined.iter().map(|j| j.name.clone()).collect();
        let params = json!({
            "clients": n, "dim": self.opts.dim, "bits": self.opts.bits,
            "k": p.config.degree, "t": p.config.threshold, "min_clients": p.config.min_clients,
            "graph": format!("{:?}", p.config.graph).to_lowercase(),
            "threat": format!("{:?}", p.config.model),
            "float": float.map(|f| json!({"clip": f.clip, "scale": f.scale, "max_weight": f.max_weight})),
            "dp": dp.as_ref().map(|d| self.dp_json(d)),
            "stage_timeout_ms": self.opts.stage_timeout.as_millis() as u64,
        });
        let mut params = self.with_cohort(params);
        if let Some(v) = validation_json(self.validation.as_ref(), &p.config) {
            params["validation"] = v;
        }
        // Each joined client at its id: its roster position, or its place in the lobby.
        let mut slots: Vec<Option<Lobbied>> = (0..n).map(|_| None).collect();
        let roster: Vec<[u8; 32]> = match (&self.opts.roster, p.config.pki) {
            (Some(roster), true) => {
                for j in joined {
                    let pos = <[u8; 32]>::try_from(j.identity.as_slice())
                        .ok()
                        .and_then(|k| roster.iter().position(|r| *r == k))
                        .ok_or("a joined client's identity key is not in the roster")?;
                    if slots[pos].is_some() {
                        return Err("two joined clients hold the same identity key".into());
                    }
                    slots[pos] = Some(j);
                }
                roster.clone()
            }
            (None, false) => {
                for (slot, j) in slots.iter_mut().zip(joined) {
                    *slot = Some(j);
                }
                Vec::new()
            }
            _ => return Err("a PKI round needs the roster (--pki) and the malicious model".into()),
        };
        let started_unix_ms = unix_ms();
        let record = |id: u64| json!({"round_id": id, "parameters": params, "clients": names, "started_unix_ms": started_unix_ms});
        let id = self.store.begin_round(record).map_err(|e| e.to_string())?;
        let record = record(id);
        p.config.round_id = id;
        let server = ServerRound::new(
            p.config.clone(),
            if p.config.pki {
                Some(roster.clone())
            } else {
                None
            },
            self.opts.stage_timeout.as_millis() as u64,
        )
        .map_err(|e| e.to_string())?;
        let mut server = server;
        if p.config.validation.is_some() {
            // The batch verification's secret weights (D26, D32): fresh from the OS for every
            // round, never derived from anything a client sees.
            let mut key = [0u8; 32];
            getrandom::fill(&mut key).map_err(|e| format!("no OS randomness: {e}"))?;
            server.set_verifier_key(key);
        }
        let members: Vec<Option<Member>> = slots
            .into_iter()
            .map(|j| {
                j.map(|j| Member {
                    conn: j.conn,
                    name: j.name,
                    tx: j.tx,
                    reasm: Reassembler::default(),
                })
            })
            .collect();
        let by_conn = members
            .iter()
            .enumerate()
            .filter_map(|(i, m)| m.as_ref().map(|m| (m.conn, i as ClientId + 1)))
            .collect();
        let names = members.iter().flatten().map(|m| m.name.clone()).collect();
        let absent: Vec<ClientId> = (1..=n)
            .filter(|id| members[*id as usize - 1].is_none())
            .collect();
        tracing::info!(
            round = id,
            clients = n,
            "round {id}: {n} clients, k = {}, t = {}, {:?}",
            p.config.degree,
            p.config.threshold,
            p.config.model
        );
        let mut round = Round {
            id,
            server,
            members,
            by_conn,
            names,
            float,
            dp,
            roster,
            record,
            failed: None,
            start: Instant::now(),
            started_unix_ms,
            stage: Stage::AdvertiseKeys,
            stage_start: Instant::now(),
            stats: HashMap::new(),
            warnings: p.warnings,
        };
        round.server.start(0);
        // Roster members that did not join are gone from the start.
        for id in absent {
            round.server.client_gone(0, id);
        }
        self.metrics
            .clients_at(Stage::AdvertiseKeys.name(), n as usize);
        self.round = Some(round);
        self.flush();
        Ok(())
    }

    /// Sends what the state machine queued and notes stage changes. A DP round is charged
    /// before its unmask requests go out ([`Coordinator::charge_before_unmask`]).
    fn flush(&mut self) {
        self.charge_before_unmask();
        let Some(r) = self.round.as_mut() else { return };
        if r.failed.is_some() {
            self.finish_round();
            return;
        }
        let stage = r.server.stage();
        if stage != r.stage {
            let secs = r.stage_start.elapsed().as_secs_f64();
            r.stats.entry(r.stage).or_default().seconds += secs;
            self.metrics.stage_duration(r.stage.name(), secs);
            r.stage = stage;
            r.stage_start = Instant::now();
        }
        // The round's end: its results are written before the clients hear of it (they may
        // read them right away); finish_round sends what is queued.
        if r.server.outcome().is_some() {
            self.finish_round();
            return;
        }
        let frames = take_queued(r, &self.metrics);
        let lost = deliver(r, frames);
        let now = r.now_ms();
        for id in lost {
            r.server.client_gone(now, id);
        }
        if r.server.outcome().is_some() {
            self.finish_round();
        } else if r.server.stage() != stage {
            self.flush();
        } else {
            self.metrics.clients_at(
                stage.name(),
                r.server.config().num_clients as usize - r.server.dropouts().len(),
            );
        }
    }

    /// Charges a DP round's privacy cost to the population's ledger, durably and in its own
    /// transaction, once its unmask requests are queued and before any of them is sent: from
    /// the first unmask share on, the server could learn the sum, so a round that then aborts
    /// (too few shares), fails to decode or is cut by a crash stays charged (its record says
    /// `dp_charged`). The store charges a round id once, and only while the round is in flight.
    ///
    /// If the ledger cannot be written (a full or read-only disk), the round is aborted here:
    /// its queued unmask requests are discarded unsent, so the sum is never learned and nothing
    /// is charged; its clients are told why, and the server stops (exits non-zero with the
    /// reason), as it does for an exhausted budget: every later DP round would reach the same
    /// write, so the operator must fix the store before rounds resume.
    fn charge_before_unmask(&mut self) {
        let Some(r) = self.round.as_mut() else { return };
        if r.server.stage() != Stage::Unmask || r.failed.is_some() {
            return;
        }
        let Some(dp) = r.dp.as_mut() else { return };
        if dp.charged.is_some() {
            return;
        }
        let mut record = r.record.clone();
        record["dp_charged"] = json!(true);
        record["dp_epsilon_spent"] = json!(dp.epsilon_after);
        let written = if self.opts.fault == Some(Fault::ChargeWriteFails) {
            Err(crate::store::StoreError(
                "injected fault: the ledger write failed".into(),
            ))
        } else {
            self.store.charge_round(r.id, record.clone(), &dp.charge)
        };
        match written {
            Ok(ledger) => {
                dp.charged = Some(ledger.rounds);
                r.record = record;
                let against = self
                    .opts
                    .dp
                    .as_ref()
                    .map_or("", |o| epsilon_holds_against(o.params.placement));
                tracing::info!(
                    round = r.id,
                    epsilon = dp.epsilon_after,
                    "round {}: charged to population {:?} before unmasking: ε = {:.4} after it \
                     (δ = {}), against {against}",
                    r.id,
                    dp.charge.population,
                    dp.epsilon_after,
                    self.opts.dp.as_ref().map_or(0.0, |o| o.delta),
                );
                if self.opts.fault == Some(Fault::CrashAfterCharge) {
                    tracing::error!(
                        "injected fault: crashing after the charge, before the unmask stage"
                    );
                    std::process::abort();
                }
            }
            Err(e) => {
                // Nothing queued for this round may leave: the unmask requests above all.
                while r.server.poll_outgoing().is_some() {}
                let why = format!(
                    "the privacy ledger could not be written, so the round was aborted before \
                     unmasking (no unmask request was sent: nothing revealed, so nothing to charge): \
                     {e}"
                );
                tracing::error!(round = r.id, "round {}: {why}", r.id);
                self.fatal = Some(format!(
                    "round {}: {why}; the server stops: no DP round may unmask until its charge \
                     can be written",
                    r.id
                ));
                r.failed = Some(why);
            }
        }
    }

    fn on_frame(&mut self, conn: u64, body: CBody, size: usize) {
        let Some(r) = self.round.as_mut() else {
            // Frames from lobby clients (other than Join) are not expected.
            if let Some(pos) = self.lobby.iter().position(|l| l.conn == conn) {
                let l = self.lobby.remove(pos);
                tracing::warn!(
                    client = %l.name,
                    "dropped {:?} from the lobby: it sent a protocol message before its round",
                    l.name
                );
                let _ = l.tx.try_send(Err(Status::failed_precondition(
                    "no round in progress for this client",
                )));
            }
            return;
        };
        let Some(&id) = r.by_conn.get(&conn) else {
            if let Some(pos) = self.lobby.iter().position(|l| l.conn == conn) {
                let l = self.lobby.remove(pos);
                let _ = l.tx.try_send(Err(Status::failed_precondition(
                    "no round in progress for this client",
                )));
            }
            return;
        };
        r.stats.entry(r.server.stage()).or_default().bytes_in += size as u64;
        self.metrics.bytes(true, size);
        let now = r.now_ms();
        let config = r.server.config().clone();
        let Some(Some(member)) = r.members.get_mut(id as usize - 1) else {
            return;
        };
        let bytes = match member.reasm.push_bytes(id, body, &config) {
            Ok(Some(b)) => b,
            Ok(None) => return,
            Err(e) => {
                let name = member.name.clone();
                r.server
                    .reject(now, id, Misbehaviour::InvalidFrame(e.to_string()));
                tracing::warn!(round = r.id, client = %name, "round {}: dropped {name:?}: {e}", r.id);
                self.flush();
                return;
            }
        };
        if let Err(e) = r.server.handle_message(now, id, &bytes)
            && let ServerError::Client { reason, .. } = &e
        {
            let name = r.members[id as usize - 1]
                .as_ref()
                .map_or("", |m| m.name.as_str());
            tracing::warn!(round = r.id, client = %name, "round {}: dropped {name:?}: {reason}", r.id);
        }
        self.flush();
    }

    fn on_gone(&mut self, conn: u64) {
        self.lobby.retain(|l| l.conn != conn);
        if let Some(r) = self.round.as_mut()
            && let Some(&id) = r.by_conn.get(&conn)
        {
            let now = r.now_ms();
            r.server.client_gone(now, id);
            self.flush();
        }
    }

    fn on_timeout(&mut self) {
        if let Some(r) = self.round.as_mut() {
            let now = r.now_ms();
            r.server.handle_timeout(now);
            self.flush();
        }
    }

    fn next_deadline(&self) -> Instant {
        match &self.round {
            Some(r) => match r.server.poll_timeout() {
                Some(ms) => r.start + Duration::from_millis(ms),
                None => Instant::now() + Duration::from_secs(3600),
            },
            None => self.join_deadline(),
        }
    }

    fn finish_round(&mut self) {
        let Some(mut r) = self.round.take() else {
            return;
        };
        // The state machine's last messages (the release), counted now, sent once the results
        // are written.
        let last = take_queued(&mut r, &self.metrics);
        let secs = r.stage_start.elapsed().as_secs_f64();
        r.stats.entry(r.stage).or_default().seconds += secs;
        let outcome = match (&r.failed, r.server.outcome()) {
            (Some(why), _) => Err(why.clone()),
            (None, Some(Outcome::Aborted(a))) => Err(a.to_string()),
            (
                None,
                Some(Outcome::Released {
                    aggregate,
                    survivors,
                }),
            ) => Ok((aggregate.clone(), survivors.clone())),
            (None, None) => return,
        };
        let name = |id: ClientId| match r.members.get(id as usize - 1) {
            Some(Some(m)) => m.name.clone(),
            _ => format!("(roster id {id}, not joined)"),
        };
        let dropouts: Vec<Value> = r
            .server
            .dropouts()
            .iter()
            .map(|d| {
                let reason = match &d.reason {
                    DropReason::Timeout => "timeout".to_string(),
                    DropReason::Disconnected => "disconnected".to_string(),
                    DropReason::Misbehaved(m) => m.to_string(),
                    DropReason::Validation(k) => k.to_string(),
                };
                self.metrics.dropout(
                    d.stage.name(),
                    match &d.reason {
                        DropReason::Timeout => "timeout",
                        DropReason::Disconnected => "disconnected",
                        DropReason::Misbehaved(_) => "misbehaved",
                        DropReason::Validation(_) => "validation",
                    },
                );
                json!({"name": name(d.id), "stage": d.stage.name(), "reason": reason})
            })
            .collect();
        // (A validated round's challenge stage too, which plain rounds never reach.)
        let stages: serde_json::Map<String, Value> = Stage::ALL
            .iter()
            .chain([Stage::Validate].iter())
            .filter_map(|s| r.stats.get(s).map(|st| (s.name().to_string(), json!({"seconds": st.seconds, "bytes_in": st.bytes_in, "bytes_out": st.bytes_out}))))
            .collect();
        let c = r.server.config();
        let mut summary = json!({
            "round_id": r.id,
            "parameters": {
                "clients": c.num_clients, "dim": self.opts.dim, "bits": c.bits, "k": c.degree, "t": c.threshold,
                "min_clients": c.min_clients, "graph": format!("{:?}", c.graph).to_lowercase(),
                "threat": format!("{:?}", c.model),
                "float": r.float.map(|f| json!({"clip": f.clip, "scale": f.scale, "max_weight": f.max_weight})),
                "dp": r.dp.as_ref().map(|d| self.dp_json(d)),
            },
            "warnings": r.warnings,
            "clients": r.members.iter().flatten().map(|m| m.name.clone()).collect::<Vec<_>>(),
            "dropouts": dropouts,
            "stages": stages,
            "started_unix_ms": r.started_unix_ms,
            "ended_unix_ms": unix_ms(),
            "wall_seconds": r.start.elapsed().as_secs_f64(),
            "server_peak_rss_bytes": peak_rss_bytes(),
        });
        summary["parameters"] = self.with_cohort(summary["parameters"].take());
        if let Some(v) = validation_json(self.validation.as_ref(), c) {
            summary["parameters"]["validation"] = v;
        }
        if let Some(v) = &self.validation {
            // Who a validation check left out, and why (as `secagg simulate --validate`
            // lists them, by name here).
            let rejected: Vec<Value> = r
                .server
                .dropouts()
                .iter()
                .filter_map(|d| match &d.reason {
                    DropReason::Validation(k) => Some((d, k.to_string())),
                    _ => None,
                })
                .map(|(d, reason)| {
                    let who = name(d.id);
                    tracing::warn!(
                        round = r.id,
                        client = %who,
                        "round {}: rejected {who:?} at stage {}: {reason}",
                        r.id,
                        d.stage
                    );
                    json!({"client": who, "id": d.id, "stage": d.stage.name(), "reason": reason})
                })
                .collect();
            summary["validation"] = json!({
                "bound": v.bound_json(),
                "bound_sq": c.validation.map(|p| p.bound_sq),
                "projections": c.validation.map(|p| p.projections),
                "rejected": rejected,
            });
        }
        // A DP round is charged once its unmask stage is about to start, whatever follows.
        if let Some(dp) = &r.dp {
            summary["dp_charged"] = json!(dp.charged.is_some());
            match &dp.charged {
                Some(rounds) => {
                    summary["dp_epsilon_spent"] = json!(dp.epsilon_after);
                    summary["dp_ledger_rounds"] = json!(rounds);
                }
                None => summary["dp_epsilon_spent"] = json!(dp.epsilon_before),
            }
        }
        let charged = r.dp.as_ref().is_some_and(|d| d.charged.is_some());
        let stays_charged = |reason: String| {
            if charged {
                let note = "its privacy cost was charged before unmasking and stays charged";
                format!("{reason}; {note}")
            } else {
                reason
            }
        };
        let dir = self.rounds_dir();
        let _ = std::fs::create_dir_all(&dir);
        let released = match &outcome {
            Ok((aggregate, survivors)) => {
                summary["survivors"] = json!(survivors.iter().map(name).collect::<Vec<_>>());
                let arr = match (&r.dp, r.float) {
                    (Some(dp), _) => self.release_dp(dp, aggregate, survivors.len()),
                    (None, float) => match float {
                        Some(f) => match f.decode(aggregate) {
                            Ok((mean, total)) => {
                                summary["total_weight"] = json!(total);
                                Ok(NpyArray::F64(mean))
                            }
                            Err(e) => Err(e.0),
                        },
                        None => Ok(NpyArray::unsigned_for_bits(aggregate, c.bits)),
                    },
                };
                match arr {
                    Ok(arr) => {
                        let mut buf = Vec::new();
                        let written = npy::write(&mut buf, &arr).and_then(|_| {
                            crate::durable::write_durable(&dir.join(format!("{}.npy", r.id)), &buf)
                        });
                        if let Err(e) = written {
                            tracing::error!(
                                round = r.id,
                                "round {}: cannot write the aggregate: {e}",
                                r.id
                            );
                        }
                        true
                    }
                    Err(e) => {
                        summary["reason"] = json!(stays_charged(format!(
                            "the aggregate could not be released: {e}"
                        )));
                        false
                    }
                }
            }
            Err(why) => {
                summary["reason"] = json!(stays_charged(why.clone()));
                summary["survivors"] = json!([]);
                false
            }
        };
        let state = if released {
            RoundState::Finished
        } else {
            RoundState::Aborted
        };
        summary["state"] = json!(if released { "finished" } else { "aborted" });
        if let Err(e) = crate::durable::write_durable(
            &dir.join(format!("{}.json", r.id)),
            format!("{summary:#}\n").as_bytes(),
        ) {
            tracing::error!(round = r.id, "round {}: cannot write its JSON: {e}", r.id);
        }
        if let Err(e) = self.store.end_round(r.id, state, summary.clone()) {
            tracing::error!(round = r.id, "round {}: cannot record its end: {e}", r.id);
        }
        self.metrics.round_ended(released);
        let survivors = summary["survivors"].as_array().map_or(0, Vec::len);
        let dropouts = summary["dropouts"].as_array().map_or(0, Vec::len);
        let seconds = r.start.elapsed().as_secs_f64();
        let outcome = if released { "finished" } else { "aborted" };
        tracing::info!(
            round = r.id,
            outcome,
            survivors,
            dropouts,
            seconds,
            "round {} {outcome}: {survivors} survivors, {dropouts} dropouts, {seconds:.3} s",
            r.id
        );
        // Now that the results are on disk, the state machine's last messages go out.
        deliver(&r, last);
        // A round the driver ended itself: tell the clients still in it why (the state
        // machine queued nothing for them).
        if let Some(why) = &r.failed {
            let dropped: Vec<ClientId> = r.server.dropouts().iter().map(|d| d.id).collect();
            for (i, m) in r.members.iter().enumerate() {
                if let Some(m) = m
                    && !dropped.contains(&(i as ClientId + 1))
                {
                    let _ = m.tx.try_send(Ok(proto::ServerFrame {
                        body: Some(proto::server_frame::Body::RoundEnd(proto::RoundEnd {
                            round_id: r.id,
                            released: false,
                            reason: why.clone(),
                        })),
                    }));
                }
            }
        }
        // Tell dropped clients why, then close every stream of the round.
        for d in r.server.dropouts() {
            if let Some(Some(m)) = r.members.get(d.id as usize - 1) {
                let reason = format!(
                    "dropped at stage {}: {}",
                    d.stage,
                    secagg_core::server::describe_dropout(d)
                );
                let _ = m.tx.try_send(Ok(proto::ServerFrame {
                    body: Some(proto::server_frame::Body::RoundEnd(proto::RoundEnd {
                        round_id: r.id,
                        released: false,
                        reason,
                    })),
                }));
            }
        }
        self.rounds_done += 1;
        self.lobby_opened = Instant::now();
    }

    /// The DP encoding and cost of a round with configuration `c`, refused when it would take
    /// the population past its budget (then the server stops: every later round would be
    /// refused too).
    fn round_dp(&mut self, c: &secagg_core::RoundConfig) -> Result<Option<RoundDp>, String> {
        let Some(dp) = &self.opts.dp else {
            return Ok(None);
        };
        let encoding = dp.params.encoding(c)?;
        // Sampling rate 1: the server does not sample, and it sees who takes part.
        let cost = dp.params.round_cost(c, 1.0)?;
        let spent = match self
            .store
            .ledger(&dp.population)
            .map_err(|e| e.to_string())?
        {
            Some(l) => Accountant::from_rdp(l.orders, l.rdp).map_err(|e| e.0)?,
            None => Accountant::new(),
        };
        let before = spent
            .spent(dp.delta)
            .map_err(|e| e.0)?
            .map_or(0.0, |e| e.epsilon);
        let after = spent.epsilon_after(&cost, dp.delta).map_err(|e| e.0)?;
        if after.epsilon > dp.epsilon_budget {
            let why = format!(
                "privacy budget of population {:?} exhausted: ε = {:.4} spent, this round would \
                 bring it to {:.4} > the budget {} (δ = {}); no round was started",
                dp.population, before, after.epsilon, dp.epsilon_budget, dp.delta
            );
            self.fatal = Some(why.clone());
            return Err(why);
        }
        let charge = Charge {
            population: dp.population.clone(),
            orders: spent.orders().to_vec(),
            rdp: cost.rdp(spent.orders()),
        };
        Ok(Some(RoundDp {
            encoding,
            charge,
            min_survivors: c.min_clients,
            epsilon_before: before,
            epsilon_after: after.epsilon,
            order: after.order,
            charged: None,
        }))
    }

    /// A round's `parameters` with the cohort labels and the promised minimum cohort size
    /// (what `secagg combine` reads), when the server has them.
    fn with_cohort(&self, mut params: Value) -> Value {
        if let Some(c) = &self.opts.cohort
            && let (Some(p), Value::Object(labels)) = (params.as_object_mut(), c.json())
        {
            p.extend(labels);
        }
        if let Some(m) = self.opts.min_cohort_size {
            params["min_cohort_size"] = json!(m);
        }
        params
    }

    fn dp_json(&self, d: &RoundDp) -> Value {
        let Some(o) = &self.opts.dp else {
            return Value::Null;
        };
        json!({
            "noise": format!("{:?}", o.params.noise),
            "placement": format!("{:?}", o.params.placement),
            "noise_multiplier": o.params.noise_multiplier,
            "clip": o.params.clip,
            "scale": d.encoding.scale(),
            "padded_dim": d.encoding.padded_dim(),
            "delta": o.delta,
            "epsilon_budget": o.epsilon_budget,
            "population": o.population,
            "sampling_rate": 1.0,
            "epsilon_before_round": d.epsilon_before,
            "epsilon_after_round": d.epsilon_after,
            "epsilon_holds_against": epsilon_holds_against(o.params.placement),
            "order": d.order,
            "expected_mean_rmse": d.encoding.expected_mean_error(d.min_survivors),
        })
    }

    /// Decodes a DP round's sum into the private mean (with central noise, adds it first). The
    /// round was charged before it unmasked ([`Coordinator::charge_before_unmask`]).
    fn release_dp(
        &self,
        dp: &RoundDp,
        aggregate: &[u64],
        survivors: usize,
    ) -> Result<NpyArray, String> {
        let mut sum = aggregate.to_vec();
        if self
            .opts
            .dp
            .as_ref()
            .is_some_and(|o| o.params.placement == NoisePlacement::Central)
        {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(|e| format!("no OS randomness: {e}"))?;
            let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::from_seed(seed);
            dp.encoding
                .add_central_noise(&mut sum, &mut rng)
                .map_err(|e| e.0)?;
        }
        let total = dp.encoding.decode_sum(&sum).map_err(|e| e.0)?;
        let n = survivors.max(1) as f64;
        let mean: Vec<f64> = total.iter().map(|v| v / n).collect();
        Ok(NpyArray::F64(mean))
    }
}

/// Checks the options before the server listens: the roster (each key once, `clients` its
/// size), and that a full round can be planned. Returns the fewest joined clients a round
/// starts with when the join deadline passes.
pub fn check_options(opts: &ServerOptions) -> Result<u32, String> {
    check_options_validated(opts, None)
}

/// [`check_options`] for a server whose rounds are validated.
pub fn check_options_validated(
    opts: &ServerOptions,
    validation: Option<&Validation>,
) -> Result<u32, String> {
    if opts.clients < 2 || opts.min_clients < 2 || opts.min_clients > opts.clients {
        return Err(format!(
            "need 2 ≤ min_clients ≤ clients, got {} and {}",
            opts.min_clients, opts.clients
        ));
    }
    let model = opts.assumptions.model;
    match (&opts.roster, model) {
        (Some(roster), secagg_core::ThreatModel::Malicious) => {
            let mut keys = roster.clone();
            keys.sort_unstable();
            if keys.windows(2).any(|w| w[0] == w[1]) {
                return Err(
                    "the roster lists one identity key at two ids (one party would be several \
                     clients): each client's key must appear once"
                        .into(),
                );
            }
            if roster.len() != opts.clients as usize {
                return Err(format!(
                    "with a PKI a round is the roster's {} clients (ids are positions in it, as \
                     every client's own copy has them): clients must be {}, got {}",
                    roster.len(),
                    roster.len(),
                    opts.clients
                ));
            }
        }
        (None, secagg_core::ThreatModel::HonestButCurious) => {}
        (None, secagg_core::ThreatModel::Malicious) => {
            return Err("the malicious-server model needs a PKI roster".into());
        }
        (Some(_), secagg_core::ThreatModel::HonestButCurious) => {
            return Err("a PKI roster is used by the malicious-server model".into());
        }
    }
    if let Some(m) = opts.min_cohort_size
        && !(2..=opts.clients).contains(&m)
    {
        return Err(format!(
            "the minimum cohort size must be in 2..={} (the clients per round), got {m}",
            opts.clients
        ));
    }
    let full = plan_round_validated(opts, validation, opts.clients, [0; 32])?;
    let min_start = if opts.roster.is_some() {
        opts.min_clients.max(full.config.min_clients)
    } else {
        opts.min_clients
    };
    // A round that starts below the promised cohort size could never release a sum.
    Ok(min_start.max(opts.min_cohort_size.unwrap_or(0)))
}

/// A validated round's `validation` parameters: B, B_enc², J (`None` for a plain round).
fn validation_json(v: Option<&Validation>, c: &secagg_core::RoundConfig) -> Option<Value> {
    match (v, c.validation) {
        (Some(v), Some(p)) => Some(json!({
            "bound": v.bound_json(),
            "bound_sq": p.bound_sq,
            "projections": p.projections,
        })),
        _ => None,
    }
}

/// Connections the kernel queues for `accept` (capped by `net.core.somaxconn`, 4096 on
/// current Linux). Tokio's default of 1024 overflowed when 10^4 clients joined at once: the
/// dropped SYNs were retried by the clients' kernels after 1, 3, 7 s, stretching the join.
const LISTEN_BACKLOG: u32 = 8192;

/// A listening socket as `tokio::net::TcpListener::bind` makes it (`SO_REUSEADDR` on Unix),
/// with a deeper accept queue.
fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Runs the server until `rounds` rounds have ended (or forever). `ready` receives the bound
/// address once the server listens (useful with port 0).
pub async fn run(
    opts: ServerOptions,
    ready: Option<oneshot::Sender<SocketAddr>>,
) -> Result<(), String> {
    run_validated(opts, None, ready).await
}

/// [`run`], every round validated when `validation` is given (unsigned-integer rounds in the
/// malicious model with a PKI roster): each client proves its input's L2 norm is at most the
/// bound, and a client whose proof fails is left out of the sum and named, with its reason,
/// in the round's `validation.rejected`.
pub async fn run_validated(
    opts: ServerOptions,
    validation: Option<Validation>,
    ready: Option<oneshot::Sender<SocketAddr>>,
) -> Result<(), String> {
    let min_start = check_options_validated(&opts, validation.as_ref())?;
    let (store, recovered) = Store::open(&opts.data_dir).map_err(|e| e.to_string())?;
    let store = Arc::new(store);
    let rounds_dir = opts.data_dir.join("rounds");
    std::fs::create_dir_all(&rounds_dir)
        .map_err(|e| format!("cannot create {}: {e}", rounds_dir.display()))?;
    for r in recovered {
        tracing::warn!(
            round = r.id,
            "round {} was in flight when the server stopped: recorded as aborted{}",
            r.id,
            if r.summary["dp_charged"] == json!(true) {
                " (charged before unmasking: it stays charged)"
            } else {
                ""
            }
        );
        let _ = crate::durable::write_durable(
            &rounds_dir.join(format!("{}.json", r.id)),
            format!("{:#}\n", r.summary).as_bytes(),
        );
    }
    let metrics = Metrics::new();
    if let Some(addr) = opts.metrics {
        let m = metrics.clone();
        tokio::spawn(async move {
            if let Err(e) = metrics::serve(addr, m).await {
                tracing::error!("metrics endpoint on {addr} failed: {e}");
            }
        });
    }
    let (events_tx, mut events) = mpsc::channel(4096);
    let svc = Svc {
        events: events_tx,
        roster: opts
            .roster
            .as_ref()
            .map(|r| Arc::new(r.iter().copied().collect())),
        store: store.clone(),
        next_conn: AtomicU64::new(1),
        open: Arc::new(AtomicUsize::new(0)),
        limits: opts.limits.clone(),
        metrics: metrics.clone(),
    };
    let listener =
        listen(opts.listen).map_err(|e| format!("cannot listen on {}: {e}", opts.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(
        address = %addr,
        "listening on {addr}, data in {}",
        opts.data_dir.display()
    );
    if let Some(path) = &opts.ready_file {
        let mut ready = json!({"address": addr.to_string(), "pid": std::process::id()});
        if let Some(c) = &opts.cohort {
            ready["cohort"] = c.json();
        }
        crate::durable::write_durable(path, format!("{ready}\n").as_bytes())
            .map_err(|e| format!("cannot write the ready file {}: {e}", path.display()))?;
    }
    if let Some(r) = ready {
        let _ = r.send(addr);
    }
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let max = opts.limits.max_message_bytes;
    let mut builder = tonic::transport::Server::builder();
    if let Some((cert, key)) = &opts.tls {
        let read =
            |p: &PathBuf| std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
        let identity = tonic::transport::Identity::from_pem(read(cert)?, read(key)?);
        builder = builder
            .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
            .map_err(|e| format!("invalid TLS certificate or key: {e}"))?;
    }
    let grpc = tokio::spawn(
        builder
            .add_service(
                SecureAggregationServer::new(svc)
                    .max_decoding_message_size(max)
                    .max_encoding_message_size(max),
            )
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async {
                    let _ = stop_rx.await;
                },
            ),
    );
    let mut co = Coordinator {
        opts,
        store,
        metrics,
        lobby: Vec::new(),
        lobby_names: HashSet::new(),
        lobby_opened: Instant::now(),
        min_start,
        round: None,
        rounds_done: 0,
        fatal: None,
        validation,
    };
    loop {
        if co.opts.rounds.is_some_and(|r| co.rounds_done >= r) || co.fatal.is_some() {
            break;
        }
        let deadline = co.next_deadline();
        tokio::select! {
            ev = events.recv() => match ev {
                Some(Event::Joined { conn, name, identity, tx }) => co.on_joined(conn, name, identity, tx),
                Some(Event::Frame { conn, body, size }) => co.on_frame(conn, body, size),
                Some(Event::Gone { conn }) => co.on_gone(conn),
                None => break,
            },
            _ = tokio::time::sleep_until(deadline.into()) => co.on_timeout(),
        }
        co.maybe_start_round();
    }
    // Let the last RoundEnd frames go out, close the streams of clients still waiting in the
    // lobby, then stop (graceful shutdown waits for open streams, so bound it).
    tokio::time::sleep(Duration::from_millis(200)).await;
    for l in co.lobby.drain(..) {
        let st = match &co.fatal {
            Some(why) => Status::failed_precondition(why.clone()),
            None => Status::unavailable("the server is shutting down: no further rounds"),
        };
        let _ = l.tx.try_send(Err(st));
    }
    let fatal = co.fatal.take();
    drop(co);
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), grpc).await;
    match fatal {
        Some(why) => Err(why),
        None => Ok(()),
    }
}
