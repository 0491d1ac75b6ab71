//! A deterministic in-memory round: N clients and the server exchanging real messages, with
//! seeded randomness, a simulated clock, and dropouts, duplicates, reordering and server-side
//! tampering injected at any stage. Clients run in parallel (rayon); every client has its own
//! RNG derived from the scenario seed, so results do not depend on scheduling.
//!
//! Memory: the harness borrows the inputs ([`run_rows`]); each client is a
//! [`Client::streamed`] client that holds no copy of its input and masks it chunk by chunk
//! from the borrowed vector at the masking stage. Inputs are [`RingVec`]s (`u32` words when
//! b ≤ 32), and clients' messages reach the server in batches of about 64 MiB, so a stage
//! never holds every masked vector at once (except with `reorder`, which shuffles a whole
//! stage). 100 clients × 10^6 values at b = 32 thus need the 400 MB of inputs plus 16
//! masked vectors in flight.
//!
//! Validated rounds (`config.validation`, feature `validate`) run non-streamed clients
//! ([`Client::new`], each holding a copy of its input): the norm proof needs all of x at once,
//! and the streamed client refuses such rounds (VALIDATION.md §21.1 D35).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use rayon::prelude::*;
use secagg_core::client::{
    AfterMaskedInput, AwaitingShares, Client, ClientRound, Policy, Roster, StreamedClient,
};
use secagg_core::crypto::IdentityKey;
use secagg_core::ring::{Modulus, RingVec};
use secagg_core::server::{Dropout, Outcome, ServerRound};
use secagg_core::{ClientError, ClientId, RoundConfig, ServerError, Stage};

/// Simulated milliseconds each stage may last before the server closes it.
pub const STAGE_TIMEOUT_MS: u64 = 10_000;

/// Rewrites a server→client message in flight: `(stage, recipient, bytes) -> bytes`.
pub type Tamper = Box<dyn FnMut(Stage, ClientId, Vec<u8>) -> Vec<u8> + Send>;

/// Rewrites a client's message before the server gets it, seeing the server's public state
/// (its session id, configuration): `(server, stage, sender, bytes) -> bytes`. The cheaters of
/// validated rounds use it (a proof is bound to the session, which every client knows).
pub type SessionTamper = Box<dyn FnMut(&ServerRound, Stage, ClientId, Vec<u8>) -> Vec<u8> + Send>;

/// What to simulate.
pub struct Scenario {
    /// The round's parameters.
    pub config: RoundConfig,
    /// Seed of every random choice.
    pub seed: u64,
    /// Clients that go silent at a stage: they never send that stage's message, nor later ones.
    pub dropouts: Vec<(Stage, Vec<ClientId>)>,
    /// Deliver every client message twice.
    pub duplicate: bool,
    /// Shuffle the order in which the server receives each stage's messages.
    pub reorder: bool,
    /// A malicious server's rewriting of its outgoing messages (attack tests).
    pub tamper: Option<Tamper>,
    /// Malicious clients: rewriting of a client's message before the server gets it
    /// (`(stage, sender, bytes) -> bytes`).
    pub client_tamper: Option<Tamper>,
    /// Malicious clients that need the session: applied after `client_tamper`.
    pub session_tamper: Option<SessionTamper>,
    /// Validated rounds: the server's secret key of its batch verification's weights
    /// (`ServerRound::set_verifier_key`, VALIDATION.md §21.1 D26, D32); drivers draw it from a
    /// CSPRNG. `None`: none is set, and a validated round aborts at its start (D40).
    pub verifier_key: Option<[u8; 32]>,
    /// Validated rounds: clients that deviate as the core's test-only cheats say
    /// (`secagg_core::cheat`, VALIDATION.md §16).
    #[cfg(feature = "validate")]
    pub cheats: Vec<(ClientId, secagg_core::cheat::Cheat)>,
    /// Called when a stage starts (progress display).
    pub on_stage: Option<Box<dyn FnMut(Stage) + Send>>,
    /// Sees every message in flight: `(stage, from_server, client, bytes)` (test vectors,
    /// attack tests).
    pub observe: Option<Observer>,
    /// What every client accepts (its threat model and assumptions); the core's default
    /// policy when `None`.
    pub policy: Option<Policy>,
    /// Bytes of client messages a stage may hold before the server takes them (at least one
    /// message per core is always allowed): 64 MiB by default.
    pub max_in_flight_bytes: usize,
}

/// Observer of messages: `(stage, from_server, client, bytes)`.
pub type Observer = Box<dyn FnMut(Stage, bool, ClientId, &[u8]) + Send>;

impl Scenario {
    /// A plain scenario: no dropouts, in order, honest server.
    pub fn new(config: RoundConfig, seed: u64) -> Self {
        Self {
            config,
            seed,
            dropouts: Vec::new(),
            duplicate: false,
            reorder: false,
            tamper: None,
            client_tamper: None,
            session_tamper: None,
            verifier_key: None,
            #[cfg(feature = "validate")]
            cheats: Vec::new(),
            on_stage: None,
            observe: None,
            policy: None,
            max_in_flight_bytes: IN_FLIGHT_BYTES,
        }
    }
}

/// Measurements of one stage.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StageStats {
    /// Sum over clients of the time spent computing this stage's message.
    pub clients_total: Duration,
    /// Wall time of the clients' part (all clients in parallel).
    pub clients_wall: Duration,
    /// Server time spent on this stage's messages and on closing it.
    pub server: Duration,
    /// Clients that sent a message in this stage.
    pub senders: usize,
    /// Bytes the clients sent.
    pub bytes_up: u64,
    /// Bytes the server sent.
    pub bytes_down: u64,
    /// Largest single client upload.
    pub max_up_per_client: u64,
    /// Largest single client download.
    pub max_down_per_client: u64,
    /// Most bytes of client messages held at once before the server took them (the bound
    /// [`Scenario::max_in_flight_bytes`] keeps).
    pub max_in_flight: u64,
    /// Time spent in the scenario's hooks on client messages (tampering, observing), not
    /// counted in `server`.
    pub hooks: Duration,
}

/// The result of a simulated round.
pub struct Report {
    /// Released aggregate or abort.
    pub outcome: Outcome,
    /// Dropouts as the server saw them.
    pub dropouts: Vec<Dropout>,
    /// Clients that refused or failed, with why.
    pub client_errors: Vec<(ClientId, ClientError)>,
    /// Errors the server reported for client messages.
    pub server_errors: Vec<ServerError>,
    /// Per stage, in order.
    pub stages: BTreeMap<Stage, StageStats>,
    /// Wall time of the whole round.
    pub wall: Duration,
    /// Clients that completed their part.
    pub finished_clients: usize,
    /// Per stage, each sender's time computing its message(s), in the order they ran.
    pub client_times: BTreeMap<Stage, Vec<(ClientId, Duration)>>,
}

/// Generates identity keys and the roster for `n` clients from `seed`.
pub fn make_pki(n: u32, seed: u64) -> (Vec<IdentityKey>, Roster) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15);
    let keys: Vec<IdentityKey> = (0..n).map(|_| IdentityKey::generate(&mut rng)).collect();
    let roster = keys.iter().map(|k| k.public()).collect();
    (keys, roster)
}

/// One client's turn in a stage: who, how long, what it sent, whether it failed.
type ClientTurn = (ClientId, Duration, Vec<Vec<u8>>, Option<ClientError>);

/// Default [`Scenario::max_in_flight_bytes`]: large enough that a batch rarely waits long on
/// its slowest client, small next to the inputs.
const IN_FLIGHT_BYTES: usize = 64 << 20;

/// Elements masked per call into the client's stream: 64 KiB of `u64` words, a multiple of 8
/// (the stream's packing boundary).
const MASK_CHUNK: usize = 8192;

// One per client, as `ClientRound` itself: boxing the started states would buy nothing.
#[allow(clippy::large_enum_variant)]
enum SimState {
    /// Before RoundStart.
    New(StreamedClient),
    /// Started: the core's client in any state.
    Round(ClientRound),
}

struct SimClient<'a> {
    id: ClientId,
    state: SimState,
    /// Lent to the client at the masking stage, never copied whole.
    input: &'a RingVec,
    /// Where the masked-input message is written: a buffer the server is done with.
    pool: &'a MessagePool,
    rng: ChaCha20Rng,
    silent: bool,
    /// Masks chunk by chunk from the borrowed input ([`Client::streamed`]); `false` for a
    /// client built with [`Client::new`] (validated rounds), which the core drives whole.
    streamed: bool,
}

/// Masked-input messages the server has consumed, kept for the next clients to write into.
/// A fresh multi-megabyte buffer per client costs a page fault per 4 KiB page, as much time
/// as masking it; the pool never holds more buffers than one batch had in flight.
#[derive(Default)]
struct MessagePool(Mutex<Vec<Vec<u8>>>);

/// Messages below this size are not worth keeping.
const POOLED_MIN_BYTES: usize = 1 << 20;

impl MessagePool {
    /// An empty buffer with room for `len` bytes.
    fn take(&self, len: usize) -> Vec<u8> {
        let reused = self.0.lock().ok().and_then(|mut p| p.pop());
        let mut buf = reused.unwrap_or_default();
        buf.clear();
        buf.reserve(len);
        buf
    }

    /// Keeps `buf` if it is large (it held a masked vector: public once sent, no wipe needed).
    fn give(&self, buf: Vec<u8>) {
        if buf.capacity() >= POOLED_MIN_BYTES
            && let Ok(mut p) = self.0.lock()
        {
            p.push(buf);
        }
    }
}

impl SimClient<'_> {
    /// Feeds one server message, as [`ClientRound::handle`] does: after an error the client is
    /// `Failed` and answers nothing.
    fn handle(&mut self, bytes: &[u8]) -> Result<Option<Vec<u8>>, ClientError> {
        let state = std::mem::replace(&mut self.state, SimState::Round(ClientRound::Finished));
        let result = match state {
            SimState::New(client) => self.start(client, bytes),
            SimState::Round(ClientRound::AwaitingShares(s)) if self.streamed => self.mask(s, bytes),
            SimState::Round(mut round) => {
                let reply = round.handle(bytes, &mut self.rng);
                self.state = SimState::Round(round);
                return reply;
            }
        };
        match result {
            Ok((next, reply)) => {
                self.state = SimState::Round(next);
                Ok(Some(reply))
            }
            Err(e) => {
                self.state = SimState::Round(ClientRound::Failed(e.clone()));
                Err(e)
            }
        }
    }

    /// RoundStart: the streamed client's checks, plus the one [`Client::new`] makes on the
    /// input's values (the streamed client has seen only its length).
    fn start(
        &mut self,
        client: StreamedClient,
        bytes: &[u8],
    ) -> Result<(ClientRound, Vec<u8>), ClientError> {
        let (next, reply) = client.start(bytes, &mut self.rng)?;
        let bits = next.config().bits;
        if self.input.max() > next.config().modulus().mask() {
            return Err(ClientError::BadParameters(format!(
                "my input has elements ≥ 2^{bits}"
            )));
        }
        Ok((ClientRound::AwaitingNeighbours(next), reply))
    }

    /// SharesForYou: every check of [`AwaitingShares::handle`], then the masked input,
    /// masked and packed from the borrowed input in chunks.
    fn mask(
        &mut self,
        state: AwaitingShares,
        bytes: &[u8],
    ) -> Result<(ClientRound, Vec<u8>), ClientError> {
        let (next, mut stream) = state.handle_streamed(bytes)?;
        let mut out = self.pool.take(stream.message_len());
        out.extend_from_slice(stream.header());
        let mut buf = vec![0u64; MASK_CHUNK];
        let mut feed = |chunk: &mut [u64]| stream.mask_chunk(chunk, &mut out);
        let fed = match self.input {
            RingVec::U32(v) => v.chunks(MASK_CHUNK).try_for_each(|c| {
                let b = &mut buf[..c.len()];
                b.iter_mut().zip(c).for_each(|(b, x)| *b = u64::from(*x));
                feed(b)
            }),
            RingVec::U64(v) => v.chunks(MASK_CHUNK).try_for_each(|c| {
                let b = &mut buf[..c.len()];
                b.copy_from_slice(c);
                feed(b)
            }),
        };
        // `buf` is not wiped: the whole input stays in the caller's memory anyway.
        fed?;
        out.extend_from_slice(&stream.finish()?);
        let next = match next {
            AfterMaskedInput::Consistency(s) => ClientRound::AwaitingConsistency(s),
            AfterMaskedInput::Unmask(s) => ClientRound::AwaitingUnmask(s),
        };
        Ok((next, out))
    }

    fn is_finished(&self) -> bool {
        matches!(&self.state, SimState::Round(r) if r.is_finished())
    }
}

/// Runs one round. `inputs[i]` is client i+1's input, already in Z_2^b; it is stored in the
/// round's word ([`RingVec`]) before the round starts. See [`run_rows`].
pub fn run(sc: Scenario, inputs: Vec<Vec<u64>>) -> Result<Report, String> {
    let modulus = sc.config.modulus();
    let rows: Vec<RingVec> = inputs
        .into_iter()
        .map(|v| RingVec::from_u64(modulus, v))
        .collect();
    run_rows(sc, &rows)
}

/// Runs one round on borrowed inputs: `inputs[i]` is client i+1's input, already in Z_2^b.
/// Clients read their input while masking it and hold no copy, so the caller can check the
/// aggregate against the same vectors afterwards.
pub fn run_rows(mut sc: Scenario, inputs: &[RingVec]) -> Result<Report, String> {
    let cfg = sc.config.clone();
    if inputs.len() != cfg.num_clients as usize {
        return Err(format!(
            "{} inputs for {} clients",
            inputs.len(),
            cfg.num_clients
        ));
    }
    let (keys, roster) = if cfg.pki {
        let (k, r) = make_pki(cfg.num_clients, sc.seed);
        (Some(k), Some(r))
    } else {
        (None, None)
    };
    let mut server = ServerRound::new(cfg.clone(), roster.clone(), STAGE_TIMEOUT_MS)
        .map_err(|e| e.to_string())?;
    #[cfg(feature = "validate")]
    if let Some(k) = sc.verifier_key {
        server.set_verifier_key(k);
    }
    // Validated rounds need the whole input in the client (D35).
    let streamed = cfg.validation.is_none();
    let mut keys = keys.map(|k| k.into_iter());
    let pool = MessagePool::default();
    let mut clients: Vec<SimClient> = Vec::with_capacity(inputs.len());
    for (i, x) in inputs.iter().enumerate() {
        let id = i as ClientId + 1;
        let dim = u32::try_from(x.len())
            .map_err(|_| format!("input {i} has {} values, too many", x.len()))?;
        let key = keys.as_mut().and_then(|k| k.next());
        let state = if streamed {
            let mut c = Client::streamed(id, dim);
            if let (Some(k), Some(r)) = (key, &roster) {
                c = c.with_pki(k, r.clone());
            }
            if let Some(p) = &sc.policy {
                c = c.with_policy(p.clone());
            }
            SimState::New(c)
        } else {
            let mut c = Client::new(id, x.to_u64());
            if let (Some(k), Some(r)) = (key, &roster) {
                c = c.with_pki(k, r.clone());
            }
            #[cfg(feature = "validate")]
            if let Some((_, cheat)) = sc.cheats.iter().find(|(c, _)| *c == id) {
                c = c.with_cheat(cheat.clone());
            }
            if let Some(p) = &sc.policy {
                c = c.with_policy(p.clone());
            }
            SimState::Round(ClientRound::New(c))
        };
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&sc.seed.to_le_bytes());
        seed[8..12].copy_from_slice(&id.to_le_bytes());
        clients.push(SimClient {
            id,
            state,
            input: x,
            pool: &pool,
            rng: ChaCha20Rng::from_seed(seed),
            silent: false,
            streamed,
        });
    }
    let drop_at: BTreeMap<ClientId, Stage> = sc
        .dropouts
        .iter()
        .flat_map(|(st, ids)| ids.iter().map(move |id| (*id, *st)))
        .collect();
    let packed_input = cfg.modulus().packed_len(cfg.dim as usize);
    let mut order_rng = ChaCha20Rng::seed_from_u64(sc.seed.wrapping_add(1));
    let mut stages: BTreeMap<Stage, StageStats> = BTreeMap::new();
    let mut client_times: BTreeMap<Stage, Vec<(ClientId, Duration)>> = BTreeMap::new();
    let mut client_errors = Vec::new();
    let mut server_errors = Vec::new();
    let mut now = 0u64;
    let start = Instant::now();
    let t0 = Instant::now();
    server.start(now);
    stages.entry(Stage::AdvertiseKeys).or_default().server += t0.elapsed();

    loop {
        // Server → clients.
        let stage = server.stage();
        if let Some(f) = sc.on_stage.as_mut() {
            f(stage);
        }
        let mut inbox: Vec<Vec<Vec<u8>>> = vec![Vec::new(); clients.len()];
        let mut down_per: Vec<u64> = vec![0; clients.len()];
        while let Some((to, mut bytes)) = server.poll_outgoing() {
            if let Some(t) = sc.tamper.as_mut() {
                bytes = t(stage, to, bytes);
            }
            if let Some(o) = sc.observe.as_mut() {
                o(stage, true, to, &bytes);
            }
            let st = stages.entry(stage).or_default();
            st.bytes_down += bytes.len() as u64;
            down_per[to as usize - 1] += bytes.len() as u64;
            inbox[to as usize - 1].push(bytes);
        }
        if let Some(st) = stages.get_mut(&stage) {
            st.max_down_per_client = st
                .max_down_per_client
                .max(down_per.iter().copied().max().unwrap_or(0));
        }
        if server.outcome().is_some() {
            // Deliver the final Done/Abort so clients learn the end.
            clients.par_iter_mut().zip(inbox).for_each(|(c, msgs)| {
                for m in msgs {
                    let _ = c.handle(&m);
                }
            });
            break;
        }
        // Clients compute in parallel, a batch at a time; each batch's messages go to the
        // server before the next batch computes (same order as one big batch: a stage's
        // inbox is fixed before any client runs). `reorder` shuffles the whole stage.
        let mut turns: Vec<(&mut SimClient, Vec<Vec<u8>>)> = clients
            .iter_mut()
            .zip(inbox)
            .filter(|(c, msgs)| !c.silent && !msgs.is_empty())
            .collect();
        let batch = if sc.reorder {
            turns.len().max(1)
        } else {
            (sc.max_in_flight_bytes / packed_input.max(1)).max(rayon::current_num_threads().max(1))
        };
        let mut held: Vec<(ClientId, Vec<u8>)> = Vec::new();
        for group in turns.chunks_mut(batch) {
            let wall = Instant::now();
            let results: Vec<ClientTurn> = group
                .par_iter_mut()
                .map(|(c, msgs)| {
                    let t = Instant::now();
                    let mut replies = Vec::new();
                    let mut err = None;
                    for m in std::mem::take(msgs) {
                        match c.handle(&m) {
                            Ok(Some(r)) => replies.push(r),
                            Ok(None) => {}
                            Err(e) => {
                                err = Some(e);
                                break;
                            }
                        }
                    }
                    if drop_at.get(&c.id).is_some_and(|s| *s <= stage) {
                        c.silent = true;
                        replies.clear();
                    }
                    (c.id, t.elapsed(), replies, err)
                })
                .collect();
            let st = stages.entry(stage).or_default();
            st.clients_wall += wall.elapsed();
            let held_now: u64 = held.iter().map(|(_, r)| r.len() as u64).sum();
            let batch_bytes: u64 = results
                .iter()
                .flat_map(|(_, _, replies, _)| replies)
                .map(|r| r.len() as u64)
                .sum();
            st.max_in_flight = st.max_in_flight.max(held_now + batch_bytes);
            let mut deliveries = Vec::new();
            for (id, dt, replies, err) in results {
                st.clients_total += dt;
                if !replies.is_empty() {
                    client_times.entry(stage).or_default().push((id, dt));
                }
                if let Some(e) = err {
                    client_errors.push((id, e));
                }
                if !replies.is_empty() {
                    st.senders += 1;
                }
                let up: u64 = replies.iter().map(|r| r.len() as u64).sum();
                st.bytes_up += up;
                st.max_up_per_client = st.max_up_per_client.max(up);
                for r in replies {
                    if sc.duplicate {
                        deliveries.push((id, r.clone()));
                    }
                    deliveries.push((id, r));
                }
            }
            if sc.reorder {
                held.extend(deliveries);
                continue;
            }
            let t = Instant::now();
            let hooks = deliver(
                &mut sc,
                &mut server,
                stage,
                now,
                deliveries,
                &mut server_errors,
                &pool,
            );
            let st = stages.entry(stage).or_default();
            st.server += t.elapsed().saturating_sub(hooks);
            st.hooks += hooks;
        }
        drop(turns);
        let t = Instant::now();
        let mut hooks = Duration::ZERO;
        if sc.reorder {
            for i in (1..held.len()).rev() {
                let j = (order_rng.next_u64() % (i as u64 + 1)) as usize;
                held.swap(i, j);
            }
            hooks = deliver(
                &mut sc,
                &mut server,
                stage,
                now,
                held,
                &mut server_errors,
                &pool,
            );
        }
        if server.stage() == stage && server.outcome().is_none() && !server.has_outgoing() {
            // Someone stayed silent: let the deadline pass. (A validated round's disputes and
            // exclusions queue requests within a stage: those are sent first.)
            now = server.poll_timeout().unwrap_or(now);
            server.handle_timeout(now);
        }
        let st = stages.entry(stage).or_default();
        st.server += t.elapsed().saturating_sub(hooks);
        st.hooks += hooks;
        now += 1;
    }
    let finished_clients = clients.iter().filter(|c| c.is_finished()).count();
    Ok(Report {
        outcome: server.outcome().cloned().ok_or("round did not end")?,
        dropouts: server.dropouts().to_vec(),
        client_errors,
        server_errors,
        stages,
        wall: start.elapsed(),
        finished_clients,
        client_times,
    })
}

/// Hands a batch of client messages to the server, through the scenario's tampering and
/// observer; their buffers go back to `pool`. Returns the time spent in those hooks.
fn deliver(
    sc: &mut Scenario,
    server: &mut ServerRound,
    stage: Stage,
    now: u64,
    deliveries: Vec<(ClientId, Vec<u8>)>,
    server_errors: &mut Vec<ServerError>,
    pool: &MessagePool,
) -> Duration {
    let mut hooks = Duration::ZERO;
    for (id, mut bytes) in deliveries {
        let t = Instant::now();
        if let Some(f) = sc.client_tamper.as_mut() {
            bytes = f(stage, id, bytes);
        }
        if let Some(f) = sc.session_tamper.as_mut() {
            bytes = f(server, stage, id, bytes);
        }
        if let Some(o) = sc.observe.as_mut() {
            o(stage, false, id, &bytes);
        }
        hooks += t.elapsed();
        if let Err(e) = server.handle_message(now, id, &bytes) {
            server_errors.push(e);
        }
        pool.give(bytes);
    }
    hooks
}

/// The plaintext sum mod 2^b of the inputs of `survivors` (ids), for checking.
pub fn plain_sum(
    inputs: &[Vec<u64>],
    survivors: impl Iterator<Item = ClientId>,
    bits: u8,
) -> Vec<u64> {
    let mask = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let dim = inputs.first().map_or(0, |v| v.len());
    let mut sum = vec![0u64; dim];
    for id in survivors {
        for (s, x) in sum.iter_mut().zip(&inputs[id as usize - 1]) {
            *s = s.wrapping_add(*x) & mask;
        }
    }
    sum
}

/// [`plain_sum`] over inputs stored as [`RingVec`]s (ids of `survivors` index `inputs` from 1).
pub fn plain_sum_rows(
    inputs: &[RingVec],
    survivors: impl Iterator<Item = ClientId>,
    modulus: Modulus,
) -> Vec<u64> {
    let dim = inputs.first().map_or(0, RingVec::len);
    let mut sum = RingVec::zeros(modulus, dim);
    for id in survivors {
        if let Some(x) = inputs.get((id as usize).wrapping_sub(1)) {
            sum.add_assign(modulus, x);
        }
    }
    sum.into_u64()
}
