//! The async client: joins the server's next round over one gRPC stream and drives the
//! unchanged secagg-core client state machine with the frames it receives.

use std::time::Duration;

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use secagg_core::ClientError;
use secagg_core::Stage;
use secagg_core::client::{Client, ClientRound};
use secagg_core::crypto::IdentityKey;
use secagg_core::messages::{ClientMessage, ServerMessage};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

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
    /// Identity key (PKI rounds).
    pub identity: Option<IdentityKey>,
    /// Identity keys the client accepts as peers (PKI). Without it, the client trusts the
    /// roster the server sends, which a malicious server could forge.
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

impl std::fmt::Display for ClientRunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
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
            wire_version: 1,
        })),
    })
    .await
    .map_err(|e| OpenError::Fatal(ClientRunError::Transport(e.to_string())))?;
    match grpc.participate(ReceiverStream::new(rx)).await {
        // The server sends nothing until the round starts: a connection that breaks before
        // then (a server restart, a reset) is retried like a failed connect.
        Ok(resp) => {
            let mut inbound = resp.into_inner();
            match next_frame(&mut inbound, opts.timeout).await {
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
            eprintln!(
                "secagg-client: cannot reach the server ({why}); retrying for up to {:.0} s",
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

/// Joins one round and takes part in it.
pub async fn participate(opts: &ClientOptions) -> Result<RoundResult, ClientRunError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed)
        .map_err(|e| ClientRunError::Transport(format!("no OS randomness: {e}")))?;
    let mut rng = ChaCha20Rng::from_seed(seed);
    let (tx, mut inbound, first) = open_stream(opts, &mut rng).await?;
    let mut first = Some(first);
    let mut round: Option<(ClientRound, secagg_core::RoundConfig, u32)> = None;
    loop {
        let frame = match first.take() {
            Some(f) => f,
            None => next_frame(&mut inbound, opts.timeout)
                .await
                .map_err(|e| e.error)?,
        };
        let (bytes, config) = match (frame.body, &mut round) {
            (Some(SBody::RoundStart(start)), None) => {
                let info = convert::parse_round_start(start)
                    .map_err(|e| ClientRunError::Refused(ClientError::BadParameters(e.0)))?;
                check_dp_floor(opts.dp_floor.as_ref(), info.dp.as_ref(), &info.config)?;
                let input = encode_input(&opts.input, &info, &mut rng)?;
                let mut client = Client::new(info.client_id, input);
                if info.config.pki {
                    let Some(id) = &opts.identity else {
                        return Err(ClientRunError::BadInput(
                            "the round needs a PKI: pass --identity".into(),
                        ));
                    };
                    if let Some(trusted) = &opts.roster
                        && let Some(k) = info.roster.iter().find(|k| !trusted.contains(k))
                    {
                        return Err(ClientRunError::Refused(ClientError::ServerMisbehaved(
                            format!(
                                "sent a roster key {:02x?}… that is not in my roster",
                                &k[..4]
                            ),
                        )));
                    }
                    if info.roster.get(info.client_id as usize - 1) != Some(&id.public()) {
                        return Err(ClientRunError::Refused(ClientError::ServerMisbehaved(
                            "assigned me an id whose roster key is not mine".into(),
                        )));
                    }
                    client =
                        client.with_pki(IdentityKey::from_seed(&id.seed()), info.roster.clone());
                }
                let bytes = ServerMessage::RoundStart(info.config.clone()).encode();
                round = Some((
                    ClientRound::New(client),
                    info.config.clone(),
                    info.client_id,
                ));
                (bytes, info.config)
            }
            (Some(SBody::RoundStart(_)), Some(_)) => {
                return Err(ClientRunError::Refused(ClientError::UnexpectedMessage(
                    "a second RoundStart",
                )));
            }
            (Some(SBody::RoundEnd(end)), r) => {
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
            (body, Some((_, config, _))) => {
                let msg = convert::parse_server_frame(proto::ServerFrame { body }, config)
                    .map_err(|e| {
                        ClientRunError::Refused(ClientError::ServerMisbehaved(format!(
                            "sent an invalid frame: {e}"
                        )))
                    })?;
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
        if opts.pause_at.is_some() && stage_of(state) == opts.pause_at {
            // Testing hook: behave like a device that froze mid-round.
            if let Some(st) = opts.pause_at {
                eprintln!("secagg-client: paused at stage {st}");
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
        if let Some(reply) = reply {
            // The state machine encodes its own replies: decoding them cannot fail.
            let msg = ClientMessage::decode(&reply, &config).map_err(|_| {
                ClientRunError::Refused(ClientError::Misuse("own reply does not decode"))
            })?;
            for f in convert::client_frames(msg) {
                tx.send(f).await.map_err(|_| {
                    ClientRunError::Transport("the stream to the server closed".into())
                })?;
            }
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
        Some(f) => f
            .check(dp, config)
            .map_err(|why| ClientRunError::Refused(ClientError::ServerMisbehaved(why))),
    }
}

fn encode_input(
    input: &ClientInput,
    info: &convert::StartInfo,
    rng: &mut ChaCha20Rng,
) -> Result<Vec<u64>, ClientRunError> {
    let c = &info.config;
    if let Some(dp) = &info.dp {
        return match input {
            ClientInput::Float { values, weight } => {
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
                // Derived here from the public parameters, not taken from the server.
                let enc = dp.encoding(c).map_err(ClientRunError::BadInput)?;
                enc.encode(values, rng)
                    .map_err(|e| ClientRunError::BadInput(e.0))
            }
            ClientInput::Unsigned(_) => Err(ClientRunError::BadInput(
                "the round releases a differentially private mean of floats: give a float32/float64 input".into(),
            )),
        };
    }
    match (input, &info.float) {
        (ClientInput::Unsigned(v), None) => {
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
        (ClientInput::Float { values, weight }, Some(enc)) => {
            if values.len() + 1 != c.dim as usize {
                return Err(ClientRunError::BadInput(format!(
                    "the round averages {} values, the input has {}",
                    c.dim as usize - 1,
                    values.len()
                )));
            }
            enc.encode(values, *weight, rng)
                .map_err(|e| ClientRunError::BadInput(e.0))
        }
        (ClientInput::Unsigned(_), Some(_)) => Err(ClientRunError::BadInput(
            "the round computes a weighted mean of floats: give a float32/float64 input".into(),
        )),
        (ClientInput::Float { .. }, None) => Err(ClientRunError::BadInput(
            "the round sums unsigned integers: give an unsigned integer input".into(),
        )),
    }
}
