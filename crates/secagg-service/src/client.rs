//! The async client: joins the server's next round over one gRPC stream and drives the
//! secagg-core client state machine with the frames it receives.
//!
//! The driver's own rules (docs/SECURITY.md): it derives how to encode its input from the
//! round's configuration (`RoundConfig::encoding`, part of the session id) and refuses a round
//! whose encoding is not what it was asked to send; it checks the round against its own
//! [`Policy`] (threat model and assumptions); in PKI rounds it compares the server's roster
//! with its own, position by position, and never uses the server's; a client holding an
//! identity key always hands it and its roster to the core, which then refuses rounds without
//! a PKI; it refuses a round id it has already taken part in ([`ClientState`]); and a client
//! with a privacy budget charges every round it adds noise to, at sampling rate 1, in its own
//! ledger before it sends its masked input.

use std::time::Duration;

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use secagg_core::ClientError;
use secagg_core::Stage;
use secagg_core::client::{Client, ClientRound, Policy};
use secagg_core::crypto::IdentityKey;
use secagg_core::messages::ServerMessage;
use secagg_dp::accountant::Round;
use secagg_dp::pipeline::NoisePlacement;
use secagg_sim::input_encoding::InputEncoding;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

pub use crate::client_state::{ClientState, DpBudget};
use crate::convert;
use crate::proto;
use crate::proto::secure_aggregation_client::SecureAggregationClient;
use crate::proto::server_frame::Body as SBody;

/// What the client contributes.
#[derive(Debug, Clone)]
pub enum ClientInput {
    /// Unsigned integers (integer rounds: the sum mod 2^b).
    Unsigned(Vec<u64>),
    /// Floats with a weight (weighted-mean rounds).
    Float {
        /// The values.
        values: Vec<f64>,
        /// The weight, e.g. the number of examples.
        weight: u64,
    },
}

/// How the client runs.
pub struct ClientOptions {
    /// Server URL, e.g. `http://127.0.0.1:7000`.
    pub server: String,
    /// Name under which the round's JSON lists the client.
    pub name: String,
    /// The input.
    pub input: ClientInput,
    /// Identity key (PKI rounds). A client with one refuses rounds without a PKI; it needs
    /// `roster` too.
    pub identity: Option<IdentityKey>,
    /// The client's own roster: identity keys of clients 1..=n, in id order, each key once,
    /// its own among them. A PKI round is refused unless the server's roster is this one,
    /// position by position; without a roster the client refuses PKI rounds.
    pub roster: Option<Vec<[u8; 32]>>,
    /// Give up when the server sends nothing for this long (waiting to join included).
    pub timeout: Duration,
    /// Keep retrying to reach the server for this long when the failure may pass (server not
    /// up yet, connection refused, reset or timed out, server at its stream limit).
    /// `Duration::ZERO`: one attempt.
    pub connect_retry: Duration,
    /// Testing hook: stop answering (and wait to be killed) when this stage's request arrives.
    pub pause_at: Option<Stage>,
    /// For an `https://` server: the PEM certificate of the CA to trust (default: the public
    /// web PKI roots).
    pub tls_ca: Option<std::path::PathBuf>,
    /// Take part only in rounds with distributed DP noise at least this strong (a client's own
    /// floor: a server cannot talk it into sending a barely noised update).
    pub dp_floor: Option<secagg_sim::dp::DpFloor>,
}

/// How a round ended for this client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundResult {
    /// The round id.
    pub round_id: u64,
    /// This client's id in the round.
    pub client_id: u32,
}

/// Why the client stopped without a released round.
#[derive(Debug)]
pub enum ClientRunError {
    /// Could not reach the server or the stream broke.
    Transport(String),
    /// The server said nothing for too long.
    ServerSilent(Duration),
    /// The round aborted (or this client was dropped); nothing was revealed.
    RoundAborted {
        /// The round.
        round_id: u64,
        /// Why.
        reason: String,
    },
    /// The client refused to go on (an honest client's refusal, e.g. a malicious request).
    Refused(ClientError),
    /// The input does not fit the round.
    BadInput(String),
}

/// What a client requires of every round and remembers across rounds. `Default`: the
/// honest-but-curious policy without assumptions, an in-memory state, no privacy budget.
#[derive(Debug, Clone, Default)]
pub struct ClientGuard {
    /// Threat model and assumptions the round's parameters are checked against
    /// ([`Policy::malicious`] for a client that requires the malicious-server model).
    pub policy: Policy,
    /// Rounds taken part in and the privacy ledger ([`ClientState::open`] to keep them in a
    /// directory across processes).
    pub state: ClientState,
    /// The client's own privacy budget: it then refuses rounds without distributed DP noise,
    /// and rounds that would take its ledger past the budget.
    pub dp_budget: Option<DpBudget>,
}

impl std::fmt::Display for ClientRunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientRunError::Refused(ClientError::ServerMisbehaved(m)) => {
                write!(f, "refused the round: the server {m}")
            }
            ClientRunError::Refused(ClientError::BadParameters(m)) => {
                write!(f, "refused the round the server offered: {m}")
            }
            ClientRunError::Refused(ClientError::UnexpectedMessage(m)) => {
                write!(
                    f,
                    "refused the round: the server sent an unexpected message ({m})"
                )
            }
            ClientRunError::Refused(ClientError::Malformed(e)) => {
                write!(
                    f,
                    "refused the round: the server sent a malformed message: {e}"
                )
            }
            ClientRunError::Refused(ClientError::PeerMisbehaved { peer, reason }) => write!(
                f,
                "refused the round: peer {peer} (or the server relaying it) misbehaved: {reason}"
            ),
            ClientRunError::Transport(m) => write!(f, "connection to the server failed: {m}"),
            ClientRunError::ServerSilent(d) => {
                write!(f, "the server sent nothing for {d:?}; giving up")
            }
            ClientRunError::RoundAborted { round_id, reason } => {
                write!(f, "round {round_id} aborted: {reason}")
            }
            ClientRunError::Refused(e) => write!(f, "refused to continue: {e}"),
            ClientRunError::BadInput(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for ClientRunError {}

fn stage_of(round: &ClientRound) -> Option<Stage> {
    // The stage whose request the client is about to answer.
    Some(match round {
        ClientRound::New(_) => Stage::AdvertiseKeys,
        ClientRound::AwaitingNeighbours(_) => Stage::ShareKeys,
        ClientRound::AwaitingShares(_) => Stage::MaskedInput,
        ClientRound::AwaitingConsistency(_) => Stage::ConsistencyCheck,
        ClientRound::AwaitingUnmask(_) => Stage::Unmask,
        _ => return None,
    })
}

/// Backoff between connection attempts: doubles from this…
const FIRST_RETRY: Duration = Duration::from_millis(100);
/// …up to this.
const MAX_RETRY: Duration = Duration::from_secs(5);
/// One TCP/TLS connection attempt gives up after this, so a dropped SYN under load is retried
/// on a fresh connection instead of waiting out the kernel's ~2 minute SYN retransmissions.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why one attempt to open the round stream failed.
enum OpenError {
    /// Worth another try: nothing about the round was decided (server not up yet, connection
    /// refused/reset/timed out, server at its stream limit, or the connection broke while
    /// waiting for the round to start). `reached`: the server had accepted the stream, so the
    /// retry budget starts afresh.
    Transient { why: String, reached: bool },
    /// Retrying cannot help (bad URL, TLS misconfiguration, the server refused the Join).
    Fatal(ClientRunError),
}

/// The open stream and the first frame the server sent on it.
type Opened = (
    mpsc::Sender<proto::ClientFrame>,
    tonic::Streaming<proto::ServerFrame>,
    proto::ServerFrame,
);

/// A failed read: the error, and whether the connection itself broke (as opposed to a status
/// the server sent, which is its answer).
struct ReadError {
    error: ClientRunError,
    connection_broke: bool,
}

/// Reads the next frame, giving up after `timeout` of silence.
async fn next_frame(
    inbound: &mut tonic::Streaming<proto::ServerFrame>,
    timeout: Duration,
) -> Result<proto::ServerFrame, ReadError> {
    let fail = |error, connection_broke| ReadError {
        error,
        connection_broke,
    };
    match tokio::time::timeout(timeout, inbound.message()).await {
        Err(_) => Err(fail(ClientRunError::ServerSilent(timeout), false)),
        // Statuses the server sends carry no source; ones made from a transport error do.
        Ok(Err(status)) => Err(fail(
            ClientRunError::Transport(status.message().to_string()),
            std::error::Error::source(&status).is_some(),
        )),
        Ok(Ok(None)) => Err(fail(
            ClientRunError::Transport("the server closed the stream".into()),
            false,
        )),
        Ok(Ok(Some(f))) => Ok(f),
    }
}

/// Whether a transport error is a network condition that may pass (as opposed to e.g. a TLS
/// certificate error, which would fail the same way again).
fn transient_transport(e: &(dyn std::error::Error + 'static)) -> bool {
    use std::io::ErrorKind as K;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                K::ConnectionRefused
                    | K::ConnectionReset
                    | K::ConnectionAborted
                    | K::NotConnected
                    | K::BrokenPipe
                    | K::TimedOut
                    | K::AddrNotAvailable
                    | K::UnexpectedEof
                    | K::Interrupted
                    | K::HostUnreachable
                    | K::NetworkUnreachable
            );
        }
        // The connect timeout surfaces as a non-io "timed out" error.
        if err.to_string().contains("timed out") {
            return true;
        }
        cur = err.source();
    }
    false
}

/// The full chain of an error's messages (tonic's top-level message is often just
/// "transport error").
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(err) = cur {
        let m = err.to_string();
        if !out.contains(&m) {
            out.push_str(": ");
            out.push_str(&m);
        }
        cur = err.source();
    }
    out
}

/// The answer to the server's JoinChallenge: our identity key's signature over its nonce, our
/// key and our name (docs/SECURITY.md §4b). Sent once per stream, before any round.
fn prove_identity(
    opts: &ClientOptions,
    nonce: &[u8],
) -> Result<proto::ClientFrame, ClientRunError> {
    let Some(idk) = &opts.identity else {
        return Err(ClientRunError::BadInput(
            "the server asks for proof of an identity key (it has a PKI roster), and this \
             client has none (--identity)"
                .into(),
        ));
    };
    let nonce = <[u8; 32]>::try_from(nonce).map_err(|_| {
        ClientRunError::Transport(format!(
            "the server's JoinChallenge holds {} bytes, not a 32-byte nonce",
            nonce.len()
        ))
    })?;
    let msg = secagg_core::messages::join_proof_signed_bytes(&nonce, &idk.public(), &opts.name);
    Ok(proto::ClientFrame {
        body: Some(proto::client_frame::Body::JoinProof(proto::JoinProof {
            signature: idk.sign(&msg).to_vec(),
        })),
    })
}

/// One attempt: connect, send Join, and open the bidirectional stream.
async fn open_once(
    opts: &ClientOptions,
    endpoint: &tonic::transport::Endpoint,
) -> Result<Opened, OpenError> {
    let channel = endpoint.connect().await.map_err(|e| {
        let msg = error_chain(&e);
        if transient_transport(&e) {
            OpenError::Transient {
                why: msg,
                reached: false,
            }
        } else {
            OpenError::Fatal(ClientRunError::Transport(msg))
        }
    })?;
    let mut grpc = SecureAggregationClient::new(channel)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    let (tx, rx) = mpsc::channel::<proto::ClientFrame>(16);
    tx.send(proto::ClientFrame {
        body: Some(proto::client_frame::Body::Join(proto::Join {
            name: opts.name.clone(),
            identity_public_key: opts
                .identity
                .as_ref()
                .map(|k| k.public().to_vec())
                .unwrap_or_default(),
            wire_version: convert::WIRE_VERSION,
        })),
    })
    .await
    .map_err(|e| OpenError::Fatal(ClientRunError::Transport(e.to_string())))?;
    match grpc.participate(ReceiverStream::new(rx)).await {
        // The server sends nothing until the round starts: a connection that breaks before
        // then (a server restart, a reset) is retried like a failed connect.
        Ok(resp) => {
            let mut inbound = resp.into_inner();
            let mut first = next_frame(&mut inbound, opts.timeout).await;
            if let Ok(proto::ServerFrame {
                body: Some(proto::server_frame::Body::JoinChallenge(c)),
            }) = &first
            {
                // A server with a PKI roster asks for proof that we hold our key (§4b).
                let proof = prove_identity(opts, &c.nonce).map_err(OpenError::Fatal)?;
                tx.send(proof)
                    .await
                    .map_err(|e| OpenError::Fatal(ClientRunError::Transport(e.to_string())))?;
                first = next_frame(&mut inbound, opts.timeout).await;
            }
            match first {
                Ok(first) => Ok((tx, inbound, first)),
                Err(ReadError {
                    error,
                    connection_broke: true,
                }) => Err(OpenError::Transient {
                    why: error.to_string(),
                    reached: true,
                }),
                Err(e) => Err(OpenError::Fatal(e.error)),
            }
        }
        // UNAVAILABLE: the connection broke; RESOURCE_EXHAUSTED: the server is at its stream
        // limit; DEADLINE_EXCEEDED: our Join reached it too late. All may pass.
        Err(status)
            if matches!(
                status.code(),
                tonic::Code::Unavailable
                    | tonic::Code::ResourceExhausted
                    | tonic::Code::DeadlineExceeded
            ) =>
        {
            Err(OpenError::Transient {
                why: status.message().to_string(),
                reached: false,
            })
        }
        Err(status) => Err(OpenError::Fatal(ClientRunError::Transport(
            status.message().to_string(),
        ))),
    }
}

/// Opens the round stream, retrying transient failures with capped exponential backoff and
/// jitter (so a crowd of clients does not reconnect in lockstep) for up to
/// `opts.connect_retry`.
async fn open_stream(
    opts: &ClientOptions,
    rng: &mut ChaCha20Rng,
) -> Result<Opened, ClientRunError> {
    let transport = |e: tonic::transport::Error| ClientRunError::Transport(error_chain(&e));
    let mut endpoint = tonic::transport::Endpoint::from_shared(opts.server.clone())
        .map_err(transport)?
        .connect_timeout(CONNECT_TIMEOUT);
    if opts.server.starts_with("https://") {
        let mut tls = tonic::transport::ClientTlsConfig::new();
        tls = match &opts.tls_ca {
            Some(p) => {
                let pem = std::fs::read(p).map_err(|e| {
                    ClientRunError::BadInput(format!("cannot read {}: {e}", p.display()))
                })?;
                tls.ca_certificate(tonic::transport::Certificate::from_pem(pem))
            }
            None => tls.with_webpki_roots(),
        };
        endpoint = endpoint.tls_config(tls).map_err(transport)?;
    }
    let mut started = tokio::time::Instant::now();
    let mut backoff = FIRST_RETRY;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let why = match open_once(opts, &endpoint).await {
            Ok(opened) => return Ok(opened),
            Err(OpenError::Fatal(e)) => return Err(e),
            Err(OpenError::Transient { why, reached }) => {
                if reached {
                    // The server was there: a fresh budget for reaching it again.
                    started = tokio::time::Instant::now();
                    backoff = FIRST_RETRY;
                    attempts = 1;
                }
                why
            }
        };
        let left = opts.connect_retry.saturating_sub(started.elapsed());
        if left.is_zero() {
            let tail = if attempts > 1 {
                format!(
                    " ({attempts} attempts over {:.1} s)",
                    started.elapsed().as_secs_f64()
                )
            } else {
                String::new()
            };
            return Err(ClientRunError::Transport(format!("{why}{tail}")));
        }
        if attempts == 1 {
            tracing::warn!(
                "cannot reach the server ({why}); retrying for up to {:.0} s",
                left.as_secs_f64()
            );
        }
        // Sleep backoff/2 + uniform(0, backoff/2).
        let half = backoff / 2;
        let jitter = half.mul_f64(f64::from(rng.next_u32()) / f64::from(u32::MAX));
        tokio::time::sleep((half + jitter).min(left)).await;
        backoff = (backoff * 2).min(MAX_RETRY);
    }
}

/// Joins one round and takes part in it, with the default [`ClientGuard`] (honest-but-curious
/// policy, no memory beyond this call, no privacy budget). Clients that take part in several
/// rounds should use [`participate_with`] and one [`ClientGuard`], so that a replayed round id
/// is refused.
pub async fn participate(opts: &ClientOptions) -> Result<RoundResult, ClientRunError> {
    participate_with(opts, &ClientGuard::default()).await
}

/// Whether the policy requires the malicious-server model (as the core reads it).
fn requires_malicious(p: &Policy) -> bool {
    let m = secagg_core::ThreatModel::Malicious;
    p.min_model == m || p.assumptions.is_some_and(|a| a.model == m)
}

/// Checks that the options' PKI material is usable before contacting anyone.
fn check_options(opts: &ClientOptions, guard: &ClientGuard) -> Result<(), ClientRunError> {
    let bad = |m: &str| Err(ClientRunError::BadInput(m.into()));
    match (&opts.identity, &opts.roster) {
        (Some(id), Some(roster)) => {
            let mut keys = roster.clone();
            keys.sort_unstable();
            if keys.windows(2).any(|w| w[0] == w[1]) {
                return bad(
                    "the roster lists one identity key at two ids (one party would be several \
                     neighbours); fix the roster",
                );
            }
            if !roster.contains(&id.public()) {
                return bad("this client's identity key is not in its roster");
            }
        }
        (Some(_), None) => {
            return bad(
                "a client with an identity key needs its own roster (--roster): it never takes \
                 the roster from the server",
            );
        }
        (None, Some(_)) => {
            return bad(
                "a roster is for PKI rounds: give the client's identity key too (--identity)",
            );
        }
        (None, None) => {}
    }
    if requires_malicious(&guard.policy) && opts.identity.is_none() {
        return bad(
            "the malicious-server model needs this client's identity key and its own roster \
             (--identity, --roster)",
        );
    }
    if let Some(b) = &guard.dp_budget {
        b.validate().map_err(ClientRunError::BadInput)?;
    }
    Ok(())
}

/// A round the client accepted at RoundStart.
struct Accepted {
    client: Client,
    info: convert::StartInfo,
    /// The privacy cost to charge before the masked input is sent (a client with a budget).
    charge: Option<(Round, DpBudget)>,
}

fn misbehaved(m: String) -> ClientRunError {
    ClientRunError::Refused(ClientError::ServerMisbehaved(m))
}

/// Every check of RoundStart the driver makes (the core makes the rest when it starts).
fn accept_round_start(
    opts: &ClientOptions,
    guard: &ClientGuard,
    start: proto::RoundStart,
    rng: &mut ChaCha20Rng,
    cheat: Option<&secagg_core::cheat::Cheat>,
) -> Result<Accepted, ClientRunError> {
    let info = convert::parse_round_start(start)
        .map_err(|e| misbehaved(format!("sent an invalid RoundStart: {e}")))?;
    let c = &info.config;
    if requires_malicious(&guard.policy) && c.model != secagg_core::ThreatModel::Malicious {
        return Err(misbehaved(format!(
            "offered round {} in the honest-but-curious model; this client requires the \
             malicious-server model (consistency check, PKI)",
            c.round_id
        )));
    }
    if guard.state.took_part(&opts.server, c.round_id) {
        return Err(misbehaved(format!(
            "offered round {} again, which this client already took part in (a replayed round \
             id)",
            c.round_id
        )));
    }
    check_pki(opts, &info)?;
    let dp = match info.encoding {
        InputEncoding::Dp(p) => Some(p),
        _ => None,
    };
    check_dp_floor(opts.dp_floor.as_ref(), dp.as_ref(), c)?;
    // The round's size is checked against this client's input (in encode_input) before the
    // DP cost is built from the announced parameters. The encoded input is wiped if refused.
    let mut input = zeroize::Zeroizing::new(encode_input(&opts.input, &info, rng)?);
    check_norm(&info, &input)?;
    let charge = match (&guard.dp_budget, dp) {
        (None, _) => None,
        (Some(b), Some(p)) if p.placement == NoisePlacement::Distributed => {
            // The client cannot verify the server's sampling: every round counts in full.
            let cost = p.client_charge(c, b.honest_clients).map_err(|e| {
                misbehaved(format!(
                    "announced DP parameters that cannot be costed: {e}"
                ))
            })?;
            guard
                .state
                .dp_check(&cost, b)
                .map_err(|m| ClientRunError::Refused(ClientError::BadParameters(m)))?;
            Some((cost, *b))
        }
        (Some(b), Some(_)) => {
            return Err(misbehaved(format!(
                "offered a round with central DP noise; this client keeps its own privacy budget \
                 (ε ≤ {}) and adds no noise itself in such a round, so it cannot know its cost",
                b.epsilon
            )));
        }
        (Some(b), None) => {
            return Err(misbehaved(format!(
                "offered a round without DP noise; this client keeps its own privacy budget \
                 (ε ≤ {}) and a round without noise has no finite cost",
                b.epsilon
            )));
        }
    };
    let mut client =
        Client::new(info.client_id, std::mem::take(&mut *input)).with_policy(guard.policy.clone());
    if let (Some(id), Some(roster)) = (&opts.identity, &opts.roster) {
        // Always: the core then refuses rounds without a PKI and checks the roster's size.
        client = client.with_pki(IdentityKey::from_seed(&id.seed()), roster.clone());
    }
    if let Some(c) = cheat {
        client = client.with_cheat(c.clone());
    }
    Ok(Accepted {
        client,
        info,
        charge,
    })
}

/// PKI rounds need the client's own roster, equal to the server's position by position; a
/// client with an identity key refuses rounds without a PKI.
fn check_pki(opts: &ClientOptions, info: &convert::StartInfo) -> Result<(), ClientRunError> {
    let c = &info.config;
    match (&opts.identity, &opts.roster, c.pki) {
        (Some(_), Some(_), false) => Err(misbehaved(format!(
            "offered round {} without a PKI, but this client holds an identity key: without \
             signed keys the server could substitute its peers' keys",
            c.round_id
        ))),
        (Some(id), Some(own), true) => {
            if info.roster.len() != own.len() {
                return Err(misbehaved(format!(
                    "sent a roster of {} keys for round {}; this client's own roster has {}",
                    info.roster.len(),
                    c.round_id,
                    own.len()
                )));
            }
            if let Some(i) = (0..own.len()).find(|i| info.roster[*i] != own[*i]) {
                return Err(misbehaved(format!(
                    "sent a roster that differs from this client's own at id {} (key {} instead \
                     of {}): the server's roster is never used",
                    i + 1,
                    short_hex(&info.roster[i]),
                    short_hex(&own[i])
                )));
            }
            if own.get(info.client_id as usize - 1) != Some(&id.public()) {
                return Err(misbehaved(format!(
                    "assigned this client id {}, whose key in its own roster is not its own",
                    info.client_id
                )));
            }
            Ok(())
        }
        (_, _, true) => Err(misbehaved(format!(
            "offered a PKI round ({:?} model), and this client has no identity key and roster of \
             its own (--identity, --roster): it never takes the roster from the server",
            c.model
        ))),
        _ => Ok(()),
    }
}

/// A validated round of unsigned integers: this client refuses, before it advertises
/// anything, to take part with an input above the round's bound (VALIDATION.md D34), and says
/// why. Nothing is sent: the round sees a dropout. (The core makes the same check; this one
/// words it for the operator.) Float rounds clip the update to the bound when encoding it
/// ([`encode_input`]), so an honest float client is never above it; the core still checks
/// the encoded vector before it proves anything.
fn check_norm(info: &convert::StartInfo, input: &[u64]) -> Result<(), ClientRunError> {
    let c = &info.config;
    let Some(v) = &c.validation else {
        return Ok(());
    };
    match info.encoding {
        InputEncoding::Integers => {}
        InputEncoding::Float { .. } => return Ok(()),
        InputEncoding::Dp(_) => {
            return Err(misbehaved(format!(
                "offered validated round {} with DP; this client validates unsigned-integer \
                 and float rounds only (VALIDATION.md §12)",
                c.round_id
            )));
        }
    }
    let x = secagg_core::validate::commit::signed_input(c.modulus(), input).map_err(|_| {
        ClientRunError::BadInput(format!(
            "this client's input has a value at 2^{}, which no validated round accepts \
             (values are read as signed mod 2^{})",
            c.bits - 1,
            c.bits
        ))
    })?;
    let x = zeroize::Zeroizing::new(x);
    let norm_sq = x.iter().fold(0u128, |acc, v| {
        let a = u128::from(v.unsigned_abs());
        acc.saturating_add(a * a)
    });
    if norm_sq > u128::from(v.bound_sq) {
        return Err(ClientRunError::BadInput(format!(
            "refusing round {}: this client's input has L2 norm {:.1} (squared {norm_sq}), above \
             the round's bound {:.1} (squared {}); nothing was sent (the round sees a dropout)",
            c.round_id,
            (norm_sq as f64).sqrt(),
            (v.bound_sq as f64).sqrt(),
            v.bound_sq
        )));
    }
    Ok(())
}

fn short_hex(k: &[u8; 32]) -> String {
    let h: String = k[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("{h}…")
}

/// Joins one round and takes part in it, with `guard`'s policy, memory and privacy budget.
pub async fn participate_with(
    opts: &ClientOptions,
    guard: &ClientGuard,
) -> Result<RoundResult, ClientRunError> {
    participate_inner(opts, guard, None).await
}

/// Test-only: [`participate_with`] with a client that deviates in a validated round as `cheat`
/// says (secagg-core's feature `cheats`), so that tests can check the server names it.
#[doc(hidden)]
pub async fn participate_cheating(
    opts: &ClientOptions,
    guard: &ClientGuard,
    cheat: secagg_core::cheat::Cheat,
) -> Result<RoundResult, ClientRunError> {
    participate_inner(opts, guard, Some(cheat)).await
}

async fn participate_inner(
    opts: &ClientOptions,
    guard: &ClientGuard,
    cheat: Option<secagg_core::cheat::Cheat>,
) -> Result<RoundResult, ClientRunError> {
    check_options(opts, guard)?;
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed)
        .map_err(|e| ClientRunError::Transport(format!("no OS randomness: {e}")))?;
    let mut rng = ChaCha20Rng::from_seed(seed);
    let (tx, mut inbound, first) = open_stream(opts, &mut rng).await?;
    let mut first = Some(first);
    let mut round: Option<(ClientRound, secagg_core::RoundConfig, u32)> = None;
    let mut charge: Option<(Round, DpBudget)> = None;
    loop {
        let frame = match first.take() {
            Some(f) => f,
            None => next_frame(&mut inbound, opts.timeout)
                .await
                .map_err(|e| e.error)?,
        };
        let (bytes, config) = match (frame.body, &mut round) {
            (Some(SBody::RoundStart(start)), None) => {
                let a = accept_round_start(opts, guard, start, &mut rng, cheat.as_ref())?;
                charge = a.charge;
                let bytes = ServerMessage::RoundStart(a.info.config.clone()).encode();
                round = Some((
                    ClientRound::New(a.client),
                    a.info.config.clone(),
                    a.info.client_id,
                ));
                (bytes, a.info.config)
            }
            (Some(SBody::RoundStart(_)), Some(_)) => {
                return Err(ClientRunError::Refused(ClientError::UnexpectedMessage(
                    "a second RoundStart",
                )));
            }
            (Some(SBody::RoundEnd(end)), r) => {
                // A validated round's client waits, after its unmask shares, for exclusion
                // requests until the round's end: the release finishes it.
                if let Some((state, _, _)) = r.as_mut()
                    && end.released
                    && !state.is_finished()
                    && state.config().is_some_and(|c| c.validation.is_some())
                {
                    let _ = state.handle(&ServerMessage::Done.encode(), &mut rng);
                }
                return match r {
                    Some((state, _, id)) if end.released && state.is_finished() => {
                        Ok(RoundResult {
                            round_id: end.round_id,
                            client_id: *id,
                        })
                    }
                    _ if end.released => Err(ClientRunError::RoundAborted {
                        round_id: end.round_id,
                        reason: "the round finished without this client".into(),
                    }),
                    _ => Err(ClientRunError::RoundAborted {
                        round_id: end.round_id,
                        reason: end.reason,
                    }),
                };
            }
            // A validated round's own messages go to the core as they came: it decodes and
            // checks them.
            (Some(SBody::Validation(bytes)), Some((_, config, _))) => {
                if config.validation.is_none() {
                    return Err(misbehaved(
                        "sent a validation message in a round without validation".into(),
                    ));
                }
                (bytes, config.clone())
            }
            (body, Some((_, config, _))) => {
                let msg = convert::parse_server_frame(proto::ServerFrame { body }, config)
                    .map_err(|e| misbehaved(format!("sent an invalid frame: {e}")))?;
                (msg.encode(), config.clone())
            }
            (_, None) => {
                return Err(ClientRunError::Refused(ClientError::UnexpectedMessage(
                    "expected RoundStart",
                )));
            }
        };
        let Some((state, _, _)) = round.as_mut() else {
            continue;
        };
        let stage = stage_of(state);
        if opts.pause_at.is_some() && stage == opts.pause_at {
            // Testing hook: behave like a device that froze mid-round.
            if let Some(st) = opts.pause_at {
                tracing::warn!("paused at stage {st}");
            }
            std::future::pending::<()>().await;
        }
        let reply = state.handle(&bytes, &mut rng).map_err(|e| match e {
            ClientError::RoundAborted(reason) => ClientRunError::RoundAborted {
                round_id: config.round_id,
                reason,
            },
            e => ClientRunError::Refused(e),
        })?;
        let Some(reply) = reply else { continue };
        match stage {
            // The core accepted the round: remember it (durably) before advertising keys.
            Some(Stage::AdvertiseKeys) => guard
                .state
                .record_round(&opts.server, config.round_id)
                .map_err(|e| {
                ClientRunError::BadInput(format!("cannot take part in the round: {e}"))
            })?,
            // Charge the privacy ledger (durably) before the noised input leaves.
            Some(Stage::MaskedInput) => {
                if let Some((cost, budget)) = charge.take() {
                    guard
                        .state
                        .dp_charge(&opts.server, config.round_id, &cost, &budget)
                        .map_err(|m| ClientRunError::Refused(ClientError::BadParameters(m)))?;
                }
            }
            _ => {}
        }
        // The state machine encodes its own replies: decoding them cannot fail.
        let frames = convert::client_reply_frames(reply, &config).map_err(|_| {
            ClientRunError::Refused(ClientError::Misuse("own reply does not decode"))
        })?;
        for f in frames {
            tx.send(f)
                .await
                .map_err(|_| ClientRunError::Transport("the stream to the server closed".into()))?;
        }
    }
}

/// Refuses a round whose DP noise is below the client's own floor (or absent, or central).
fn check_dp_floor(
    floor: Option<&secagg_sim::dp::DpFloor>,
    dp: Option<&secagg_sim::dp::DpParams>,
    config: &secagg_core::RoundConfig,
) -> Result<(), ClientRunError> {
    match floor {
        None => Ok(()),
        Some(f) => f.check(dp, config).map_err(misbehaved),
    }
}

/// Encodes the input as the round's configuration says; every derived value (the scale, the
/// noise share) is computed here from the configuration, never read from the wire.
fn encode_input(
    input: &ClientInput,
    info: &convert::StartInfo,
    rng: &mut ChaCha20Rng,
) -> Result<Vec<u64>, ClientRunError> {
    let c = &info.config;
    let kind = match info.encoding {
        InputEncoding::Integers => "the sum of unsigned integers",
        InputEncoding::Float { .. } => "a weighted mean of floats",
        InputEncoding::Dp(_) => "a differentially private mean of floats",
    };
    let mismatch = |mine: &str| {
        Err(ClientRunError::BadInput(format!(
            "the server offered round {} computing {kind}, but this client's input is {mine}: \
             refusing (give {})",
            c.round_id,
            match info.encoding {
                InputEncoding::Integers => "an unsigned integer input",
                _ => "a float32/float64 input",
            }
        )))
    };
    match (&info.encoding, input) {
        (InputEncoding::Integers, ClientInput::Unsigned(v)) => {
            if v.len() != c.dim as usize {
                return Err(ClientRunError::BadInput(format!(
                    "the round sums {} values, the input has {}",
                    c.dim,
                    v.len()
                )));
            }
            let mask = c.modulus().mask();
            if let Some((i, x)) = v.iter().enumerate().find(|(_, x)| **x > mask) {
                return Err(ClientRunError::BadInput(format!(
                    "value {x} at index {i} does not fit the round's {} bits",
                    c.bits
                )));
            }
            Ok(v.clone())
        }
        (InputEncoding::Float { .. }, ClientInput::Float { values, weight }) => {
            if values.len() + 1 != c.dim as usize {
                return Err(ClientRunError::BadInput(format!(
                    "the round averages {} values, the input has {}",
                    c.dim as usize - 1,
                    values.len()
                )));
            }
            let bad_encoding = |e: String| {
                misbehaved(format!(
                    "announced a float encoding that cannot be used: {e}"
                ))
            };
            // A validated round (VALIDATION.md §5.4): the validated scale, derived here from
            // the round's (b, n, d, W, B) and checked against its announced B_enc², and the
            // update clipped to L2 norm B first, so that an honest client is never above the
            // bound (the clipped copy is wiped).
            if let Some(enc) = info.encoding.validated_float(c).map_err(bad_encoding)? {
                let norm = values.iter().map(|x| x * x).sum::<f64>().sqrt();
                if norm > enc.clip {
                    tracing::warn!(
                        "round {}: this client's update has L2 norm {norm:.4}, above the round's \
                         bound {}: clipped to it before encoding (VALIDATION.md §5.4)",
                        c.round_id,
                        enc.clip
                    );
                }
                let clipped =
                    zeroize::Zeroizing::new(secagg_sim::simulate::clip_l2(values, enc.clip));
                return enc
                    .encode(&clipped, *weight, rng)
                    .map_err(|e| ClientRunError::BadInput(e.0));
            }
            let enc = info
                .encoding
                .float(c)
                .map_err(bad_encoding)?
                .ok_or_else(|| ClientRunError::BadInput("no float encoding".into()))?;
            enc.encode(values, *weight, rng)
                .map_err(|e| ClientRunError::BadInput(e.0))
        }
        (InputEncoding::Dp(dp), ClientInput::Float { values, weight }) => {
            if *weight != 1 {
                return Err(ClientRunError::BadInput(
                    "DP rounds average unweighted updates (a weight would change the \
                     sensitivity): drop --weight"
                        .into(),
                ));
            }
            if values.len() != dp.dim {
                return Err(ClientRunError::BadInput(format!(
                    "the round averages {} values, the input has {}",
                    dp.dim,
                    values.len()
                )));
            }
            let enc = dp.encoding(c).map_err(|e| {
                misbehaved(format!("announced a DP encoding that cannot be used: {e}"))
            })?;
            enc.encode(values, rng)
                .map_err(|e| ClientRunError::BadInput(e.0))
        }
        (InputEncoding::Integers, ClientInput::Float { .. }) => mismatch("floats"),
        (_, ClientInput::Unsigned(_)) => mismatch("unsigned integers"),
    }
}
