//! A deterministic in-memory round: N clients and the server exchanging real messages, with
//! seeded randomness, a simulated clock, and dropouts, duplicates, reordering and server-side
//! tampering injected at any stage. Clients run in parallel (rayon); every client has its own
//! RNG derived from the scenario seed, so results do not depend on scheduling.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use rayon::prelude::*;
use secagg_core::client::{Client, ClientRound, Policy, Roster};
use secagg_core::crypto::IdentityKey;
use secagg_core::server::{Dropout, Outcome, ServerRound};
use secagg_core::{ClientError, ClientId, RoundConfig, ServerError, Stage};

/// Simulated milliseconds each stage may last before the server closes it.
pub const STAGE_TIMEOUT_MS: u64 = 10_000;

/// Rewrites a server→client message in flight: `(stage, recipient, bytes) -> bytes`.
pub type Tamper = Box<dyn FnMut(Stage, ClientId, Vec<u8>) -> Vec<u8> + Send>;

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
    /// Called when a stage starts (progress display).
    pub on_stage: Option<Box<dyn FnMut(Stage) + Send>>,
    /// Sees every message in flight: `(stage, from_server, client, bytes)` (test vectors,
    /// attack tests).
    pub observe: Option<Observer>,
    /// What every client accepts (its threat model and assumptions); the core's default
    /// policy when `None`.
    pub policy: Option<Policy>,
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
            on_stage: None,
            observe: None,
            policy: None,
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

struct SimClient {
    id: ClientId,
    round: ClientRound,
    rng: ChaCha20Rng,
    silent: bool,
}

/// Runs one round. `inputs[i]` is client i+1's input, already in Z_2^b.
pub fn run(mut sc: Scenario, inputs: Vec<Vec<u64>>) -> Result<Report, String> {
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
    let mut keys = keys.map(|k| k.into_iter());
    let mut clients: Vec<SimClient> = inputs
        .into_iter()
        .enumerate()
        .map(|(i, x)| {
            let id = i as ClientId + 1;
            let mut c = Client::new(id, x);
            if let (Some(k), Some(r)) = (keys.as_mut().and_then(|k| k.next()), &roster) {
                c = c.with_pki(k, r.clone());
            }
            if let Some(p) = &sc.policy {
                c = c.with_policy(p.clone());
            }
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&sc.seed.to_le_bytes());
            seed[8..12].copy_from_slice(&id.to_le_bytes());
            SimClient {
                id,
                round: ClientRound::New(c),
                rng: ChaCha20Rng::from_seed(seed),
                silent: false,
            }
        })
        .collect();
    let drop_at: BTreeMap<ClientId, Stage> = sc
        .dropouts
        .iter()
        .flat_map(|(st, ids)| ids.iter().map(move |id| (*id, *st)))
        .collect();
    let mut order_rng = ChaCha20Rng::seed_from_u64(sc.seed.wrapping_add(1));
    let mut stages: BTreeMap<Stage, StageStats> = BTreeMap::new();
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
                    let _ = c.round.handle(&m, &mut c.rng);
                }
            });
            break;
        }
        // Clients compute in parallel.
        let wall = Instant::now();
        let results: Vec<ClientTurn> = clients
            .par_iter_mut()
            .zip(inbox)
            .filter(|(c, msgs)| !c.silent && !msgs.is_empty())
            .map(|(c, msgs)| {
                let t = Instant::now();
                let mut replies = Vec::new();
                let mut err = None;
                for m in msgs {
                    match c.round.handle(&m, &mut c.rng) {
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
        let mut deliveries = Vec::new();
        for (id, dt, replies, err) in results {
            st.clients_total += dt;
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
            for i in (1..deliveries.len()).rev() {
                let j = (order_rng.next_u64() % (i as u64 + 1)) as usize;
                deliveries.swap(i, j);
            }
        }
        // Clients → server.
        let t = Instant::now();
        for (id, mut bytes) in deliveries {
            if let Some(t) = sc.client_tamper.as_mut() {
                bytes = t(stage, id, bytes);
            }
            if let Some(o) = sc.observe.as_mut() {
                o(stage, false, id, &bytes);
            }
            if let Err(e) = server.handle_message(now, id, &bytes) {
                server_errors.push(e);
            }
        }
        if server.stage() == stage && server.outcome().is_none() {
            // Someone stayed silent: let the deadline pass.
            now = server.poll_timeout().unwrap_or(now);
            server.handle_timeout(now);
        }
        stages.entry(stage).or_default().server += t.elapsed();
        now += 1;
    }
    let finished_clients = clients.iter().filter(|c| c.round.is_finished()).count();
    Ok(Report {
        outcome: server.outcome().cloned().ok_or("round did not end")?,
        dropouts: server.dropouts().to_vec(),
        client_errors,
        server_errors,
        stages,
        wall: start.elapsed(),
        finished_clients,
    })
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
