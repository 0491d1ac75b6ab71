//! `secagg bench --validate`: what validated inputs (issue 11, VALIDATION.md) cost a client and
//! the server, side by side with the plain round of the same n and d measured in the same run.
//!
//! For each d (10^3, 10^4, 10^5; `--quick`: 10^3) at n = 100 clients:
//!
//! - **The plain round**: `secagg simulate --clients n --dim d --threat malicious` (the model a
//!   validated round runs in, D36) in this process, in a one-thread pool, `--repeat` times:
//!   the harness's per-client time (all stages, wall on one thread), its masked-input stage,
//!   the server's time (all stages), the round's wall time and the bytes a client uploads.
//! - **The validated parts**, called exactly as the state machines call them, on the main
//!   thread, with that round's configuration (k, t, graph) plus validation (J = 41 + ⌊α·n⌋
//!   capped by J_cap(n), B_enc² = 2^40, unsigned inputs of norm ≤ 2^20):
//!   - client: the norm proof at upload (`validate::round::prove_upload`: C_u, range proof,
//!     WIP; the local bound check) and the binding answer to κ (`Challenge::new`, then
//!     `validate::binding::answer`: the mask projections, O_u, P_uv, the linear proof, the
//!     signature);
//!   - server: one norm proof verified alone (`norm::verify`), the round's n proofs verified
//!     as the server does (`validate::round::verify_uploads`: one batch with hashed weights),
//!     one binding answer (its signature, bitmap fit and `validate::binding::verify_answer`);
//!   - bytes: the norm proof (`MaskedInput.proof`), the signed pair-seed hashes of the share
//!     stage and the `ValidationResponse` message, each encoded as sent, added to the plain
//!     round's measured upload.
//!
//! Proving costs one core ≈ 2 s per client at d = 10^4 and ≈ 20 s at 10^5, so `--provers`
//! clients (3) make both proofs, and the batch of n norm proofs is made of `--distinct` real
//! proofs of distinct clients (default: n up to d = 10^4, else `--provers`); when fewer than n,
//! the batch repeats them (each copy with its own client's context), which the output states
//! (`batch_reuses_proofs`): the verifier's work per item is the same for a copy.
//!
//! With `--prove-threads T` > 1 (default: the cores this process may use), the provers make
//! both proofs again with the prover's MSMs and folds split over T threads
//! (`secagg_zk::set_prover_threads`, VALIDATION.md §14.4 lever 1) and their **wall** time is
//! printed beside the one-thread wall time of the same clients in the same run.
//!
//! Proof times are thread CPU time (`/proc/thread-self/schedstat`; wall time if unreadable)
//! with the wall time alongside; a verification sample repeats its call until it lasts ≥
//! 0.2 s. Ratios to the plain round use wall time on both sides (one thread each). Generator
//! hashing (once per process and d) is timed apart and left out of the proofs. Nothing stored
//! from another machine enters the output; the machine's limits, measured in this run, are
//! shown for context.

use std::time::{Duration, Instant};

use secagg_cli::machine_limits::median;

/// Time of one call: wall, and thread CPU time when the platform reports it.
#[derive(Debug, Clone, Copy)]
struct Sample {
    wall_s: f64,
    cpu_s: Option<f64>,
}

/// Nanoseconds this thread has spent on a CPU (Linux; `None` elsewhere).
fn thread_cpu() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Runs `f` once and times it.
fn timed<T>(f: impl FnOnce() -> T) -> (T, Sample) {
    let c0 = thread_cpu();
    let t0 = Instant::now();
    let out = f();
    let wall_s = t0.elapsed().as_secs_f64();
    let cpu_s = match (c0, thread_cpu()) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a).as_secs_f64()),
        _ => None,
    };
    (out, Sample { wall_s, cpu_s })
}

/// Minimum length of one verification sample (the CPU clock ticks in milliseconds).
const MIN_SAMPLE_S: f64 = 0.2;

/// One sample of `f`'s time per call: `f` repeated until the sample lasts [`MIN_SAMPLE_S`].
fn per_call(mut f: impl FnMut() -> Result<(), String>) -> Result<Sample, String> {
    let mut calls = 0u32;
    let mut err = None;
    let (_, s) = timed(|| {
        let t0 = Instant::now();
        while calls == 0 || t0.elapsed().as_secs_f64() < MIN_SAMPLE_S {
            if let Err(e) = f() {
                err = Some(e);
                break;
            }
            calls += 1;
        }
    });
    if let Some(e) = err {
        return Err(e);
    }
    let c = f64::from(calls.max(1));
    Ok(Sample {
        wall_s: s.wall_s / c,
        cpu_s: s.cpu_s.map(|x| x / c),
    })
}

/// Medians of a list of samples, in ms: (the primary clock's, wall).
#[derive(Debug, Clone, Copy)]
struct Ms {
    /// Thread CPU time when every sample has it, else wall.
    primary: f64,
    wall: f64,
    samples: usize,
}

impl Ms {
    fn of(v: &[Sample]) -> Self {
        let wall = median(v.iter().map(|s| s.wall_s * 1e3).collect());
        let cpu: Option<Vec<f64>> = v.iter().map(|s| s.cpu_s.map(|x| x * 1e3)).collect();
        Self {
            primary: cpu.map_or(wall, median),
            wall,
            samples: v.len(),
        }
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({ "ms": self.primary, "wall_ms": self.wall, "samples": self.samples })
    }
}

/// The load average (1, 5, 15 minutes) from `/proc/loadavg`, if readable.
fn load() -> Option<[f64; 3]> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = s.split_whitespace().map(|x| x.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

/// What `secagg bench --validate` was asked for.
pub struct Options {
    pub clients: u32,
    pub dims: Vec<u32>,
    pub provers: usize,
    pub distinct: Option<usize>,
    pub prove_threads: usize,
    pub repeat: usize,
    pub json: bool,
}

/// The dimensions of the run: `--dims`, or 10^3 with `--quick`, else 10^3, 10^4, 10^5.
pub fn default_dims(quick: bool) -> Vec<u32> {
    if quick {
        vec![1_000]
    } else {
        vec![1_000, 10_000, 100_000]
    }
}

/// `--distinct`'s default: a round's worth of distinct proofs up to d = 10^4, else the
/// provers' (`--quick`: the provers' at every d).
pub fn default_distinct(quick: bool, d: u32, n: u32, provers: usize) -> usize {
    if !quick && d <= 10_000 {
        n as usize
    } else {
        provers
    }
}

#[cfg(not(feature = "validate"))]
pub fn run(_o: Options, _quick: bool) -> Result<(), String> {
    Err(String::from(
        "this build has no validated rounds (issue 11): build secagg with the feature `validate` \
         (on by default; this one was built with --no-default-features)",
    ))
}

#[cfg(feature = "validate")]
pub use imp::run;

#[cfg(feature = "validate")]
mod imp {
    use std::time::Duration;

    use rand_chacha::ChaCha20Rng;
    use rand_core::{Rng, SeedableRng};
    use secagg_core::config::ValidationParams;
    use secagg_core::crypto::{self, IdentityKey, SessionId};
    use secagg_core::graph::Graph;
    use secagg_core::idset::IdSet;
    use secagg_core::validate::binding::{self, AnswerInput, Challenge};
    use secagg_core::validate::round::{self, PendingProof, UploadWitness};
    use secagg_core::validate::secagg_zk::norm::{self, NormParams, NormProof};
    use secagg_core::validate::wire::{PairSeedHashes, ValidationClientMessage};
    use secagg_core::validate::{pair_sign_positive, params, projection};
    use secagg_core::{ClientId, PrgKind, RoundConfig, Stage};
    use secagg_sim::simulate::{SimulateResult, simulate};
    use secagg_sim::validate::random_bounded_inputs;
    use serde_json::{Value, json};
    use zeroize::Zeroizing;

    use super::{Ms, Options, Sample, default_distinct, load, per_call, timed};
    use crate::simulate_cmd::{GraphArg, ParamArgs, PrgArg, SimulateArgs, StageArg, ThreatArg};
    use secagg_cli::machine_limits::{MachineLimits, median};

    /// Modulus bits of every row (as `secagg bench`).
    const BITS: u8 = 32;
    /// The L2 bound in encoded units: B_enc² = 2^40 (the zk benches' statement).
    const BOUND: u64 = 1 << 20;

    fn plain_args(n: u32, d: u32, seed: u64) -> SimulateArgs {
        SimulateArgs {
            clients: Some(n),
            dim: Some(d),
            graph: GraphArg::Auto,
            params: ParamArgs {
                threat: ThreatArg::Malicious,
                assumed_corrupt: 0.05,
                assumed_dropout: None,
                degree: None,
                threshold: None,
                accept_weaker_params: false,
            },
            bits: BITS,
            dropout: 0.0,
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

    /// Medians of the plain round's runs.
    struct Plain {
        round_s: f64,
        server_s: f64,
        client_ms: f64,
        masked_input_client_ms: f64,
        bytes_up_per_client: u64,
        config: RoundConfig,
        runs: usize,
    }

    fn one_thread() -> Result<rayon::ThreadPool, String> {
        rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .map_err(|e| format!("one-thread pool: {e}"))
    }

    fn plain(n: u32, d: u32, repeat: usize) -> Result<Plain, String> {
        let pool = one_thread()?;
        let (mut wall, mut server, mut client, mut mask) = (vec![], vec![], vec![], vec![]);
        let mut up = 0;
        let mut config = None;
        for rep in 0..repeat {
            let seed = rep as u64 + 1;
            let sa = plain_args(n, d, seed);
            let opts = sa.options(n, d as usize)?;
            let inputs = random_bounded_inputs(n, d, BITS, BOUND, seed)?;
            let res: SimulateResult = pool.install(|| simulate(inputs, opts))?;
            if !res.aggregate_ok {
                return Err(format!(
                    "plain round n={n} d={d} produced a wrong aggregate"
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
                mask.push(m.clients_total.as_secs_f64() * 1e3 / clients);
            }
            up = st.values().map(|s| s.bytes_up).sum::<u64>() / u64::from(n);
            config.get_or_insert(res.plan.config);
        }
        Ok(Plain {
            round_s: median(wall),
            server_s: median(server),
            client_ms: median(client),
            masked_input_client_ms: median(mask),
            bytes_up_per_client: up,
            config: config.ok_or("no plain run")?,
            runs: repeat,
        })
    }

    /// A client of the validated round: its input, secrets and upload.
    struct Client {
        id: ClientId,
        input: Vec<u64>,
        b_u: Zeroizing<[u8; 32]>,
        seeds: Vec<(ClientId, Zeroizing<[u8; 32]>)>,
        neighbours: Vec<ClientId>,
        packed: Vec<u8>,
        bitmap: Vec<u8>,
        identity: IdentityKey,
    }

    fn client(
        cfg: &RoundConfig,
        graph: &Graph,
        session: &SessionId,
        id: ClientId,
        input: Vec<u64>,
        rng: &mut ChaCha20Rng,
    ) -> Result<Client, String> {
        let modulus = cfg.modulus();
        let dim = cfg.dim as usize;
        let neighbours = graph.neighbours(id);
        let mut b_u = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut *b_u);
        let seeds: Vec<(ClientId, Zeroizing<[u8; 32]>)> = neighbours
            .iter()
            .map(|v| {
                let mut s = Zeroizing::new([0u8; 32]);
                rng.fill_bytes(&mut *s);
                (*v, s)
            })
            .collect();
        // y = x + PRG(self seed) + Σ sgn(u, v)·PRG(s_uv) mod 2^b, as the client masks.
        let err = |e: secagg_core::validate::ValidateError| e.to_string();
        let mut y = input.clone();
        let self_seed = crypto::self_mask_seed(&b_u, session, id);
        let s = projection::expand_stream(cfg.prg, modulus, &self_seed, dim).map_err(err)?;
        y.iter_mut()
            .zip(s.iter())
            .for_each(|(a, m)| *a = a.wrapping_add(u64::from(*m)));
        for (v, seed) in &seeds {
            let s = projection::expand_stream(cfg.prg, modulus, seed, dim).map_err(err)?;
            let plus = pair_sign_positive(id, *v);
            y.iter_mut().zip(s.iter()).for_each(|(a, m)| {
                *a = if plus {
                    a.wrapping_add(u64::from(*m))
                } else {
                    a.wrapping_sub(u64::from(*m))
                }
            });
        }
        y.iter_mut().for_each(|a| *a &= modulus.mask());
        let packed = modulus.pack(&y);
        // Masked with every neighbour: all k bits set.
        let k = neighbours.len();
        let mut bitmap = vec![0u8; k.div_ceil(8)];
        for i in 0..k {
            bitmap[i / 8] |= 1 << (i % 8);
        }
        let identity = IdentityKey::generate(rng);
        Ok(Client {
            id,
            input,
            b_u,
            seeds,
            neighbours,
            packed,
            bitmap,
            identity,
        })
    }

    /// A client's norm proof: its bytes, decoded, and the time it took.
    fn prove_norm(
        cfg: &RoundConfig,
        session: &SessionId,
        c: &Client,
        rng: &mut ChaCha20Rng,
    ) -> Result<(Vec<u8>, Sample), String> {
        let pairs: Vec<(ClientId, &[u8; 32])> = c.seeds.iter().map(|(v, s)| (*v, &**s)).collect();
        let w = UploadWitness {
            input: &c.input,
            self_secret: &c.b_u,
            pairs: &pairs,
            packed_upload: &c.packed,
        };
        let (bytes, s) = timed(|| round::prove_upload(cfg, session, c.id, &w, rng));
        Ok((bytes.map_err(|e| format!("norm proof: {e}"))?, s))
    }

    /// A client's binding answer to κ, encoded as sent (the challenge derived inside, as the
    /// client does).
    fn answer(
        cfg: &RoundConfig,
        session: &SessionId,
        kappa: &[u8; 32],
        c: &Client,
        input: &AnswerInput<'_>,
        rng: &mut ChaCha20Rng,
    ) -> Result<Vec<u8>, String> {
        let zk = |e: secagg_core::validate::ValidateError| e.to_string();
        let ch = Challenge::new(cfg, session, kappa).map_err(zk)?;
        let r = binding::answer(cfg, &ch, c.id, &c.identity, input, rng)
            .map_err(|e| format!("binding answer: {e}"))?;
        Ok(ValidationClientMessage::ValidationResponse(r).encode())
    }

    /// Everything one d measures.
    struct Row {
        n: u32,
        d: u32,
        k: u32,
        t: u32,
        projections: u32,
        provers: usize,
        distinct: usize,
        generators_s: f64,
        norm_prove: Ms,
        bind_prove: Ms,
        norm_verify: Ms,
        batch_verify: Ms,
        bind_verify: Ms,
        /// The same provers' proofs with the prover split over `threads` threads (wall).
        threaded: Option<Threaded>,
        proof_bytes: usize,
        response_bytes: usize,
        share_hashes_bytes: usize,
        plain: Plain,
    }

    /// Both proofs of the provers again, on `threads` prover threads.
    struct Threaded {
        threads: usize,
        norm: Ms,
        bind: Ms,
    }

    impl Threaded {
        fn wall_ms(&self) -> f64 {
            self.norm.wall + self.bind.wall
        }
        fn json(&self, one_thread_wall_ms: f64) -> Value {
            // Wall time only: the calling thread's CPU time leaves out the other threads' work.
            let wall = |m: &Ms| json!({ "wall_ms": m.wall, "samples": m.samples });
            json!({
                "threads": self.threads,
                "norm_prove": wall(&self.norm),
                "bind_prove": wall(&self.bind),
                "prove_wall_ms": self.wall_ms(),
                "speedup_wall": one_thread_wall_ms / self.wall_ms(),
            })
        }
    }

    impl Row {
        fn extra_up(&self) -> usize {
            self.proof_bytes + self.response_bytes + self.share_hashes_bytes
        }
        fn validated_up(&self) -> u64 {
            self.plain.bytes_up_per_client + self.extra_up() as u64
        }
        fn upload_ratio(&self) -> f64 {
            self.validated_up() as f64 / self.plain.bytes_up_per_client.max(1) as f64
        }
        /// The client's proofs, wall (the plain round's clock).
        fn prove_wall_ms(&self) -> f64 {
            self.norm_prove.wall + self.bind_prove.wall
        }
        fn client_ratio(&self) -> f64 {
            (self.plain.client_ms + self.prove_wall_ms()) / self.plain.client_ms
        }
        /// The server's proof checks for a round, wall, s: one batch and n binding answers.
        fn verify_round_wall_s(&self) -> f64 {
            (self.batch_verify.wall + f64::from(self.n) * self.bind_verify.wall) / 1e3
        }
        fn server_ratio(&self) -> f64 {
            (self.plain.server_s + self.verify_round_wall_s()) / self.plain.server_s
        }
        fn batch_per_client(&self) -> (f64, f64) {
            let n = f64::from(self.n);
            (self.batch_verify.primary / n, self.batch_verify.wall / n)
        }

        fn json(&self) -> Value {
            let (per, per_wall) = self.batch_per_client();
            let p = &self.plain;
            json!({
                "n": self.n, "d": self.d, "k": self.k, "t": self.t,
                "projections": self.projections, "bits": BITS, "bound_sq": BOUND * BOUND,
                "provers": self.provers,
                "distinct_proofs": self.distinct,
                "batch_reuses_proofs": self.distinct < self.n as usize,
                "generators_s": self.generators_s,
                "client": {
                    "norm_prove": self.norm_prove.json(),
                    "bind_prove": self.bind_prove.json(),
                    "prove_ms": self.norm_prove.primary + self.bind_prove.primary,
                    "prove_wall_ms": self.prove_wall_ms(),
                    "threaded": self.threaded.as_ref().map(|t| t.json(self.prove_wall_ms())),
                },
                "server": {
                    "norm_verify_alone": self.norm_verify.json(),
                    "norm_batch_verify": self.batch_verify.json(),
                    "norm_batch_size": self.n,
                    "norm_batch_per_client_ms": per,
                    "norm_batch_per_client_wall_ms": per_wall,
                    "bind_verify": self.bind_verify.json(),
                    "verify_round_wall_s": self.verify_round_wall_s(),
                },
                "bytes": {
                    "norm_proof": self.proof_bytes,
                    "validation_response": self.response_bytes,
                    "share_hashes": self.share_hashes_bytes,
                    "extra_upload_per_client": self.extra_up(),
                    "plain_upload_per_client": p.bytes_up_per_client,
                    "validated_upload_per_client": self.validated_up(),
                    "upload_ratio": self.upload_ratio(),
                },
                "plain": {
                    "round_s": p.round_s, "server_s": p.server_s, "client_ms": p.client_ms,
                    "masked_input_client_ms": p.masked_input_client_ms,
                    "bytes_up_per_client": p.bytes_up_per_client, "runs": p.runs,
                },
                "client_ratio": self.client_ratio(),
                "server_ratio": self.server_ratio(),
            })
        }
    }

    fn measure(
        n: u32,
        d: u32,
        provers: usize,
        distinct: usize,
        prove_threads: usize,
        repeat: usize,
        seed: u64,
    ) -> Result<Row, String> {
        let plain = plain(n, d, repeat)?;
        let mut cfg = plain.config.clone();
        let corrupt = (0.05 * f64::from(n)).floor() as u32;
        let projections = params::projections(corrupt).min(params::projections_cap(n));
        cfg.validation = Some(ValidationParams {
            bound_sq: params::integer_bound_sq(BOUND).map_err(|e| e.to_string())?,
            projections: u16::try_from(projections).map_err(|_| "too many projections")?,
            max_weight: None,
        });
        round::check_round_config(&cfg).map_err(|e| e.to_string())?;
        cfg.validate()?;
        if cfg.prg != PrgKind::Aes128Ctr {
            return Err(String::from("the plain round used another PRG"));
        }
        let zk = |e: secagg_core::validate::ValidateError| e.to_string();
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut session: SessionId = [0; 32];
        rng.fill_bytes(&mut session);
        let mut kappa = [0u8; 32];
        rng.fill_bytes(&mut kappa);
        let graph = Graph::new(cfg.graph, cfg.degree, &IdSet::full(n), &session);
        let nparams: NormParams = round::norm_params(&cfg).map_err(zk)?;
        // Generators (hashed once per process and d), outside every proof's time.
        let ((), g) = timed(|| {
            let _ = round::norm_generators(&nparams);
            let _ = Challenge::new(&cfg, &session, &kappa);
        });
        let gens = round::norm_generators(&nparams).map_err(zk)?;

        let inputs = match random_bounded_inputs(n, d, BITS, BOUND, seed)? {
            secagg_sim::simulate::Inputs::Words(rows) => rows,
            _ => return Err(String::from("internal: bounded inputs are words")),
        };
        // 1 ≤ provers ≤ distinct ≤ n (n ≥ 2 was checked).
        let provers = provers.clamp(1, n as usize);
        let distinct = distinct.clamp(provers, n as usize);
        // Norm proofs of `distinct` clients (the first `provers` also answer κ).
        let mut clients = Vec::with_capacity(distinct);
        let mut proofs: Vec<(ClientId, [u8; 32], NormProof, usize)> = Vec::new();
        let mut norm_samples = Vec::new();
        for (i, row) in inputs.iter().take(distinct).enumerate() {
            let id = i as ClientId + 1;
            let c = client(&cfg, &graph, &session, id, row.to_u64(), &mut rng)?;
            let (bytes, s) = prove_norm(&cfg, &session, &c, &mut rng)?;
            norm_samples.push(s);
            let proof = round::decode_upload_proof(&nparams, &bytes)
                .ok_or("an honest norm proof does not decode")?;
            proofs.push((id, round::upload_hash(&c.packed), proof, bytes.len()));
            if i < provers {
                clients.push(c);
            }
        }
        let proof_bytes = proofs.iter().map(|p| p.3).max().unwrap_or(0);

        // The binding answers of the provers, and the server's check of each.
        let mut bind_samples = Vec::new();
        let mut bind_verify = Vec::new();
        let (mut threaded_norm, mut threaded_bind) = (Vec::new(), Vec::new());
        let mut response_bytes = 0;
        let mut share_hashes_bytes = 0;
        let server_ch = Challenge::new(&cfg, &session, &kappa).map_err(zk)?;
        let wire = binding::wire_params(&cfg).map_err(zk)?;
        for (c, (_, _, proof, _)) in clients.iter().zip(&proofs) {
            let c_u = *proof.c_u();
            let input = AnswerInput {
                input: &c.input,
                packed_upload: &c.packed,
                self_secret: &c.b_u,
                pairs: &c.seeds,
                bitmap: &c.bitmap,
                c_u,
                // V_u (final review, finding 1): only its 32 bytes matter to a bench.
                view: [0; 32],
            };
            let (msg, s) = timed(|| answer(&cfg, &session, &kappa, c, &input, &mut rng));
            let msg = msg?;
            bind_samples.push(s);
            if prove_threads > 1 {
                // The same client's two proofs on `prove_threads` threads, right after its
                // one-thread ones (side by side on the same load).
                secagg_core::validate::secagg_zk::set_prover_threads(prove_threads);
                let norm = prove_norm(&cfg, &session, c, &mut rng);
                let (bind, s_bind) = timed(|| answer(&cfg, &session, &kappa, c, &input, &mut rng));
                secagg_core::validate::secagg_zk::set_prover_threads(1);
                let (bytes, s_norm) = norm?;
                if round::decode_upload_proof(&nparams, &bytes).is_none() {
                    return Err(String::from("a threaded norm proof does not decode"));
                }
                bind?;
                threaded_norm.push(s_norm);
                threaded_bind.push(s_bind);
            }
            response_bytes = response_bytes.max(msg.len());
            let public = c.identity.public();
            bind_verify.push(per_call(|| {
                let ValidationClientMessage::ValidationResponse(r) =
                    ValidationClientMessage::decode(&msg, &wire)
                        .map_err(|e| format!("response: {e}"))?
                else {
                    return Err(String::from("not a response"));
                };
                if !(r.verify(&public, &session, c.id) && r.fits(&c.bitmap, &c.neighbours)) {
                    return Err(String::from(
                        "an honest response's signature or bitmap fails",
                    ));
                }
                binding::verify_answer(&server_ch, &cfg, c.id, &c.neighbours, &c_u, &c.packed, &r)
                    .map_err(|e| format!("an honest binding proof fails: {e}"))
            })?);
            // The share stage's extra: the signed h_uv (the plain shares ride inside).
            let hashes = c
                .seeds
                .iter()
                .map(|(v, s)| {
                    (
                        *v,
                        secagg_core::validate::blind::pair_seed_hash(&session, c.id, *v, s),
                    )
                })
                .collect();
            let h =
                PairSeedHashes::sign(&c.identity, &session, c.id, hashes, &[7; 32]).map_err(zk)?;
            share_hashes_bytes = share_hashes_bytes.max(
                ValidationClientMessage::Shares {
                    shares: Vec::new(),
                    hashes: h,
                }
                .encode()
                .len(),
            );
        }

        // The server's checks of norm proofs: one alone, and the round's batch of n.
        let mut alone = Vec::new();
        for (id, hash, proof, _) in proofs.iter().take(provers) {
            let ctx = secagg_zk_context(&session, *id, *hash);
            alone.push(per_call(|| {
                norm::verify(&gens, &nparams, &ctx, proof)
                    .map_err(|e| format!("an honest norm proof fails: {e}"))
            })?);
        }
        let items: Vec<PendingProof<'_>> = (0..n as usize)
            .map(|i| {
                let (id, hash, proof, _) = &proofs[i % proofs.len()];
                PendingProof {
                    id: *id,
                    upload_hash: *hash,
                    proof,
                }
            })
            .collect();
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        let mut batch = Vec::new();
        for _ in 0..repeat {
            let (ok, s) = timed(|| round::verify_uploads(&nparams, &session, &key, &items));
            if !ok.map_err(zk)?.iter().all(|x| *x) {
                return Err(String::from("an honest batch fails"));
            }
            batch.push(s);
        }
        Ok(Row {
            n,
            d,
            k: cfg.degree,
            t: cfg.threshold,
            projections,
            provers,
            distinct,
            generators_s: g.wall_s,
            norm_prove: Ms::of(&norm_samples),
            bind_prove: Ms::of(&bind_samples),
            norm_verify: Ms::of(&alone),
            batch_verify: Ms::of(&batch),
            bind_verify: Ms::of(&bind_verify),
            threaded: (!threaded_norm.is_empty()).then(|| Threaded {
                threads: prove_threads,
                norm: Ms::of(&threaded_norm),
                bind: Ms::of(&threaded_bind),
            }),
            proof_bytes,
            response_bytes,
            share_hashes_bytes,
            plain,
        })
    }

    fn secagg_zk_context(
        session: &SessionId,
        id: ClientId,
        upload_hash: [u8; 32],
    ) -> norm::NormContext {
        norm::NormContext {
            session: *session,
            client: u64::from(id),
            upload_hash,
        }
    }

    const CLOCK: &str = "Proof times: median thread CPU time of one thread (wall in brackets); \
        verification samples repeat the call for >= 0.2 s. The plain round: `secagg simulate \
        --threat malicious` at the same n and d in a one-thread pool, medians of --repeat runs, \
        the harness's wall time per client and for the server. Ratios use wall time on both \
        sides: client = (plain client + norm prove + bind prove) / plain client; server = \
        (plain server + the round's norm batch + n binding checks) / plain server (the \
        validated round's other server work, O_u checks and the safety net, is not counted); \
        upload = (plain upload + norm proof + ValidationResponse + signed pair-seed hashes) / \
        plain upload.";

    pub fn run(o: Options, quick: bool) -> Result<(), String> {
        if o.clients < 2 {
            return Err(format!("--clients must be at least 2, got {}", o.clients));
        }
        let load_before = load();
        let machine = MachineLimits::measure(PrgKind::Aes128Ctr, BITS)?;
        let repeat = o.repeat.max(1);
        let mut rows = Vec::new();
        for &d in &o.dims {
            if d == 0 {
                return Err(String::from("--dims: d must be positive"));
            }
            let distinct = o
                .distinct
                .unwrap_or_else(|| default_distinct(quick, d, o.clients, o.provers));
            let r = measure(
                o.clients,
                d,
                o.provers.max(1),
                distinct,
                o.prove_threads,
                repeat,
                u64::from(d),
            )?;
            if !o.json {
                print_row(&r, rows.is_empty(), &machine);
            }
            rows.push(r);
        }
        let load_after = load();
        if o.json {
            println!(
                "{}",
                json!({
                    "validate": true,
                    "clock": if super::thread_cpu().is_some() { "thread-cpu" } else { "wall" },
                    "method": CLOCK,
                    "load_before": load_before,
                    "load_after": load_after,
                    "repeats": repeat,
                    "machine": machine.to_json(),
                    "rows": rows.iter().map(Row::json).collect::<Vec<_>>(),
                })
            );
        } else {
            println!();
            println!("{CLOCK}");
            let f = |l: Option<[f64; 3]>| {
                l.map_or(String::from("?"), |l| {
                    format!("{:.2} {:.2} {:.2}", l[0], l[1], l[2])
                })
            };
            println!(
                "Load average before: {}; after: {} ({} cores).",
                f(load_before),
                f(load_after),
                machine.cores
            );
            if rows.iter().any(|r| r.distinct < r.n as usize) {
                println!(
                    "Batches marked * repeat their distinct proofs to fill n items (each copy in \
                     its own client's context): the verifier's work per item is the same."
                );
            }
        }
        Ok(())
    }

    fn print_row(r: &Row, first: bool, m: &MachineLimits) {
        if first {
            println!(
                "This machine, measured now ({} cores): key stream {:.2} GB/s, X25519 {:.0}/s \
                 per core (medians; context only).",
                m.cores,
                m.keystream_bytes_per_s.median / 1e9,
                m.x25519_per_s.median
            );
            println!();
            println!(
                "{:>7} {:>4} {:>3} | {:>17} {:>17} | {:>17} {:>19} {:>17} | {:>6} {:>9} {:>9} {:>5} | {:>9} {:>9} {:>5} | {:>8} {:>8} {:>5}",
                "d",
                "k",
                "J",
                "norm prove ms",
                "bind prove ms",
                "norm verify ms",
                "batch ms/client",
                "bind verify ms",
                "proof",
                "up KB",
                "valid. KB",
                "×",
                "client ms",
                "+proofs",
                "×",
                "server s",
                "+verify",
                "×"
            );
        }
        let (per, per_wall) = r.batch_per_client();
        let pair = |a: f64, b: f64| format!("{a:.1} ({b:.1})");
        println!(
            "{:>7} {:>4} {:>3} | {:>17} {:>17} | {:>17} {:>19} {:>17} | {:>6} {:>9.1} {:>9.1} {:>5.2} | {:>9.2} {:>9.1} {:>5.1} | {:>8.3} {:>8.3} {:>5.1}",
            r.d,
            r.k,
            r.projections,
            pair(r.norm_prove.primary, r.norm_prove.wall),
            pair(r.bind_prove.primary, r.bind_prove.wall),
            pair(r.norm_verify.primary, r.norm_verify.wall),
            format!(
                "{}{}",
                pair(per, per_wall),
                if r.distinct < r.n as usize { "*" } else { " " }
            ),
            pair(r.bind_verify.primary, r.bind_verify.wall),
            r.proof_bytes,
            r.plain.bytes_up_per_client as f64 / 1e3,
            r.validated_up() as f64 / 1e3,
            r.upload_ratio(),
            r.plain.client_ms,
            r.plain.client_ms + r.prove_wall_ms(),
            r.client_ratio(),
            r.plain.server_s,
            r.plain.server_s + r.verify_round_wall_s(),
            r.server_ratio(),
        );
        println!(
            "{:>7} n = {}, t = {}; norm proofs timed on {} clients, binding on {}; batch of {} \
             from {} distinct proofs; generators {:.2} s once",
            "",
            r.n,
            r.t,
            r.norm_prove.samples,
            r.bind_prove.samples,
            r.n,
            r.distinct,
            r.generators_s
        );
        if let Some(t) = &r.threaded {
            println!(
                "{:>7} on {} prover threads, wall: norm {:.1} ms, binding {:.1} ms, both {:.1} ms \
                 against {:.1} ms on one thread ({:.2}×)",
                "",
                t.threads,
                t.norm.wall,
                t.bind.wall,
                t.wall_ms(),
                r.prove_wall_ms(),
                r.prove_wall_ms() / t.wall_ms()
            );
        }
    }
}
