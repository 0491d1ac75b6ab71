//! Validated rounds in the simulator: `secagg simulate --validate l2=B [--cheaters LIST
//! --cheat KIND]` (issue 11, VALIDATION.md §21 step 9). Every client proves that its encoded
//! input has ‖x‖₂² ≤ B_enc² (the server drops a failing client with `validation: norm` before
//! its upload enters the sum), then answers the challenge with its binding proof (step 8b: a
//! client that proved one vector and masked another is dropped with `validation: binding`), and
//! after unmasking a client whose masks contradict its commitments is excluded (rule E,
//! `validation: self mask`). The cheaters of §16 other than `oversized` run the core's
//! test-only deviations (`secagg_core::cheat`, feature `cheats`) against the real server.
//!
//! The bound B is in input units (§5.4): for float inputs the round uses the validated scale
//! s_val and its B_enc² ([`secagg_core::validate::params::float_scale`], D17) and every honest
//! client clips its update to L2 norm B before encoding; for unsigned inputs B is in encoded
//! units and B_enc² = B² (F4). An honest client above the bound refuses locally (D34) and the
//! round sees it as a dropout at the advertise stage.
//!
//! Runs with feature `validate` (the core's); without it [`simulate_validated`] refuses.

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use secagg_core::Stage;
use secagg_core::ring::{Modulus, RingVec};

use crate::simulate::Inputs;

/// How the cheaters of a validated round deviate (VALIDATION.md §16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cheat {
    /// An input of L2 norm above B, not clipped, proven anyway (the honest client's local
    /// refusal bypassed): caught by the norm proof at upload, `validation: norm`.
    Oversized,
    /// C_u and a norm proof for another, small vector (zero data), its real vector (of norm
    /// above B) masked: caught by the binding proof, `validation: binding`.
    ForgedProof,
    /// A valid C_u and norm proof for its (clipped) input, another vector (of norm above B)
    /// masked: caught by the binding proof, `validation: binding`.
    Inconsistent,
    /// Its input masked with a self mask its neighbours' shares do not rebuild, O_u committed
    /// to match: caught after unmasking and excluded by rule E, `validation: self mask`.
    WrongMask,
}

impl Cheat {
    /// Every kind, in the order `--cheat` lists them.
    pub const ALL: [Cheat; 4] = [
        Cheat::Oversized,
        Cheat::ForgedProof,
        Cheat::Inconsistent,
        Cheat::WrongMask,
    ];

    /// The name `--cheat` takes.
    pub const fn name(self) -> &'static str {
        match self {
            Cheat::Oversized => "oversized",
            Cheat::ForgedProof => "forged-proof",
            Cheat::Inconsistent => "inconsistent",
            Cheat::WrongMask => "wrong-mask",
        }
    }

    /// Parses a `--cheat` name.
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|c| c.name()).collect();
                format!("unknown cheat {s:?}: expected one of {}", names.join(", "))
            })
    }

    /// Whether the core can catch this kind (every kind since step 8b).
    pub fn supported(self) -> Result<(), String> {
        Ok(())
    }

    /// The reason the server names a cheater of this kind with.
    pub const fn reason(self) -> &'static str {
        match self {
            Cheat::Oversized => "validation: norm",
            Cheat::ForgedProof | Cheat::Inconsistent => "validation: binding",
            Cheat::WrongMask => "validation: self mask",
        }
    }
}

/// What a validated simulated round checks and who cheats.
#[derive(Debug, Clone)]
pub struct SimulateValidation {
    /// B, the L2 bound: in input units for float inputs, in encoded units for unsigned ones.
    pub bound: f64,
    /// 0-based input indices of the cheaters.
    pub cheaters: Vec<usize>,
    /// How they cheat.
    pub cheat: Cheat,
    /// The server's secret key for its batch verification's weights (D26, D32); drivers draw
    /// it from a CSPRNG. `None`: derived from the round's seed (reproducible, and predictable
    /// by whoever knows the seed).
    pub verifier_key: Option<[u8; 32]>,
}

/// A client a validation check rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// 0-based input index.
    pub client: usize,
    /// The stage it was dropped at.
    pub stage: Stage,
    /// Why, as the core displays it (`validation: norm`).
    pub reason: String,
}

/// What a validated round checked and what it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidationReport {
    /// B as given.
    pub bound: f64,
    /// B_enc², the bound on ‖x‖₂² in encoded units the round announced.
    pub bound_sq: u64,
    /// J, the binding projections announced (41 + c, capped by J_cap(n)).
    pub projections: u32,
    /// Float inputs: the validated scale s_val (with its safety margin, D17).
    pub scale: Option<f64>,
    /// Float inputs: how much more than W·B a client can contribute through rounding (§5.4).
    pub slack_factor: Option<f64>,
    /// The clients rejected by a validation check, in the order the server recorded them.
    pub rejected: Vec<Rejection>,
    /// Clients that refused to take part, with their error (an honest client above the
    /// bound refuses locally, D34).
    pub refused: Vec<(usize, String)>,
    /// Per client (by input index): its time computing its masked input and norm proof, ms
    /// (masking included; a cheater's forging included); `None` if it sent no upload.
    pub prove_ms: Vec<Option<f64>>,
    /// The server's time at the masked-input stage, ms: decoding the uploads, verifying their
    /// proofs in a batch (each alone too if the batch fails) and summing the accepted ones.
    pub verify_ms: f64,
    /// Uploads the server received (what `verify_ms` covers).
    pub uploads: usize,
    /// Bytes of an honest client's norm proof.
    pub proof_bytes: usize,
    /// Cheaters whose upload is in the release (none, when the defence works).
    pub uncaught: Vec<usize>,
    /// DP rounds with client-side noise (VALIDATION.md §12): N_η, the bound on one client's
    /// noise share's L2 norm (encoded units) that B_enc admits.
    pub noise_bound: Option<f64>,
    /// DP rounds: (Δ₂ + N_η)/Δ₂, how many times the clip a cheater can send as signal in
    /// place of noise (1 with server-side noise).
    pub dp_factor: Option<f64>,
}

impl ValidationReport {
    /// The server's verification time per upload, ms.
    pub fn verify_ms_per_client(&self) -> f64 {
        self.verify_ms / self.uploads.max(1) as f64
    }
}

/// Why a driver without validated DP rounds refuses `--validate` with `--dp` (the simulator
/// runs them: [`simulate_validated_with`]).
pub const DP_REFUSED: &str = "--validate with --dp runs only in `secagg simulate` so far \
    (VALIDATION.md §12): this driver does not encode validated DP rounds yet";

/// Why a validated round with client-side DP noise needs an explicit opt-in; `factor` is
/// (Δ₂ + N_η)/Δ₂.
pub fn client_noise_refused(factor: f64) -> String {
    format!(
        "--validate with client-side DP noise lets a cheater send signal in place of its noise, \
         up to {factor:.2}× the clip (VALIDATION.md §12, F9): use --dp-central (server-side noise, \
         factor 1), or accept the factor with --validate-client-noise"
    )
}

/// Parses `--validate`'s value: `l2=B` with B a positive finite number.
pub fn parse_spec(s: &str) -> Result<f64, String> {
    let Some(b) = s.strip_prefix("l2=") else {
        return Err(format!(
            "--validate {s:?}: expected l2=B (the L2 bound; the only validation kind so far)"
        ));
    };
    match b.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!(
            "--validate l2={b}: the bound must be a positive number"
        )),
    }
}

/// The validation a round announces for the L2 bound `bound`, for drivers that build the
/// round themselves (the Python `Server`): sets `config.validation` as [`simulate_validated`]
/// does, and for float rounds (`float_max_weight` = W) the encoding `Float { clip: B, max_weight:
/// W }` every client derives the validated scale from (`config.dim` is then the masked length,
/// values + 1). Unsigned rounds: B in encoded units, a whole number. J = 41 + c for the c =
/// ⌊`corrupt_fraction`·n⌋ corrupt clients planned for, within the clients' cap. The result is
/// checked as a client checks it.
#[cfg(feature = "validate")]
pub fn announce(
    config: &mut secagg_core::RoundConfig,
    bound: f64,
    float_max_weight: Option<u64>,
    corrupt_fraction: f64,
) -> Result<(), String> {
    use secagg_core::validate::{params, round};
    if !(bound.is_finite() && bound > 0.0) {
        return Err(format!(
            "the L2 bound must be a positive number, got {bound}"
        ));
    }
    let n = config.num_clients;
    let bound_sq = match float_max_weight {
        None => {
            if bound.fract() != 0.0 || bound >= (1u64 << 62) as f64 {
                return Err(format!(
                    "unsigned inputs: the bound l2={bound} is in encoded units and must be a whole \
                     number below 2^31"
                ));
            }
            params::integer_bound_sq(bound as u64).map_err(|e| e.to_string())?
        }
        Some(w) => {
            let s = params::float_scale(config.bits, n, config.dim, w, bound)
                .map_err(|e| e.to_string())?;
            config.encoding = crate::input_encoding::InputEncoding::Float {
                clip: bound,
                max_weight: w,
            }
            .to_bytes();
            s.bound_sq
        }
    };
    let corrupt = (corrupt_fraction * f64::from(n)).floor() as u32;
    let projections = params::projections(corrupt).min(params::projections_cap(n));
    config.validation = Some(secagg_core::config::ValidationParams {
        bound_sq,
        projections: u16::try_from(projections).map_err(|_| "too many projections")?,
        max_weight: float_max_weight,
    });
    round::check_round_config(config).map_err(|e| e.to_string())?;
    config.validate()
}

/// Random unsigned inputs within an L2 bound: `n` vectors of `dim` values with ‖x‖₂ ≤
/// `bound` (values uniform in [0, m] with m²·dim ≤ bound², or, when that m is 0, up to bound²
/// ones at random positions), in `u32` words when b ≤ 32.
pub fn random_bounded_inputs(
    n: u32,
    dim: u32,
    bits: u8,
    bound: u64,
    seed: u64,
) -> Result<Inputs, String> {
    let modulus = Modulus::new(bits).ok_or_else(|| format!("b = {bits} is not in 1..=64"))?;
    let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 0x0b0d_ed17);
    let d = u128::from(dim.max(1));
    let b2 = u128::from(bound) * u128::from(bound);
    // The largest m with m²·d ≤ B².
    let m = (b2 / d).isqrt() as u64;
    let rows = (0..n)
        .map(|_| {
            let mut x = vec![0u64; dim as usize];
            if m >= 1 {
                x.iter_mut().for_each(|v| *v = rng.next_u64() % (m + 1));
            } else {
                // b2 < d here: at most b2 ones.
                for _ in 0..b2 {
                    let i = (rng.next_u64() % dim.max(1) as u64) as usize;
                    if let Some(v) = x.get_mut(i) {
                        *v = 1;
                    }
                }
            }
            RingVec::from_u64(modulus, x)
        })
        .collect();
    Ok(Inputs::Words(rows))
}

/// Runs one validated round on `inputs`: [`crate::simulate::simulate`] with every client
/// proving its input's norm, `v.cheaters` cheating as `v.cheat` says, and the result's
/// `validation` filled in. `survivors` excludes the rejected clients, and `aggregate_ok`
/// holds when the release is exactly the sum of the honest survivors' inputs (float inputs:
/// and their weighted mean of the L2-clipped inputs within rounding) and no cheater is in it.
///
/// Refuses: client-side DP noise (see [`simulate_validated_with`]), a threat model other than
/// malicious (validated rounds need the PKI, D36), a cheat kind the core cannot catch yet,
/// a bound the round cannot carry (the core's `ValidateError`), per-value clipping of floats
/// (the validated encoding clips each update to L2 norm B).
pub fn simulate_validated(
    inputs: Inputs,
    opts: crate::simulate::SimulateOptions,
    v: SimulateValidation,
) -> Result<crate::simulate::SimulateResult, String> {
    simulate_validated_with(inputs, opts, v, false)
}

/// [`simulate_validated`] with DP (`opts.dp`, VALIDATION.md §12): the clients encode with the
/// round's DP pipeline at a γ that keeps n vectors at the bound from wrapping, and prove
/// ‖x‖₂ ≤ Δ₂ (server-side noise) or ≤ Δ₂ + N_η (client-side noise, their noise share redrawn
/// beyond N_η). Client-side noise lets a cheater send (Δ₂ + N_η)/Δ₂ times the clip as signal,
/// so it runs only with `client_noise` (the report's `dp_factor` states the factor).
pub fn simulate_validated_with(
    inputs: Inputs,
    opts: crate::simulate::SimulateOptions,
    v: SimulateValidation,
    client_noise: bool,
) -> Result<crate::simulate::SimulateResult, String> {
    if client_noise
        && opts
            .dp
            .is_none_or(|d| d.params.placement == secagg_dp::pipeline::NoisePlacement::Central)
    {
        return Err(String::from(
            "--validate-client-noise accepts client-side DP noise in a validated round: it needs \
             --dp without --dp-central",
        ));
    }
    if opts.round.assumptions.model != secagg_core::ThreatModel::Malicious {
        return Err(String::from(
            "validated rounds need the malicious threat model with a PKI (VALIDATION.md §9, \
             §21.1 D36): use --threat malicious",
        ));
    }
    if !(v.bound.is_finite() && v.bound > 0.0) {
        return Err(format!(
            "the L2 bound must be a positive number, got {}",
            v.bound
        ));
    }
    if !v.cheaters.is_empty() {
        v.cheat.supported()?;
    }
    imp::run(inputs, opts, v, client_noise)
}

#[cfg(not(feature = "validate"))]
mod imp {
    use super::SimulateValidation;
    use crate::simulate::{Inputs, SimulateOptions, SimulateResult};

    pub(super) fn run(
        _inputs: Inputs,
        _opts: SimulateOptions,
        _v: SimulateValidation,
        _client_noise: bool,
    ) -> Result<SimulateResult, String> {
        Err(String::from(
            "this build has no validated rounds (issue 11): build secagg with the feature \
             `validate` (on by default; this one was built with --no-default-features)",
        ))
    }
}

#[cfg(feature = "validate")]
mod imp {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use rand_chacha::ChaCha20Rng;
    use rand_core::{Rng, SeedableRng};
    use secagg_core::config::ValidationParams;
    use secagg_core::encoding::FloatEncoding;
    use secagg_core::messages::ClientMessage;
    use secagg_core::ring::{Modulus, RingVec};
    use secagg_core::server::{DropReason, Outcome, ServerRound};
    use secagg_core::validate::secagg_zk::norm::{self, NormParams, NormWitness};
    use secagg_core::validate::secagg_zk::{Generators, codec};
    use secagg_core::validate::{commit, params, round};
    use secagg_core::{ClientId, Stage};

    use super::{Cheat, Rejection, SimulateValidation, ValidationReport};
    use crate::dp::DpParams;
    use crate::harness::{self, Scenario};
    use crate::input_encoding::InputEncoding;
    use crate::plan::plan;
    use crate::simulate::{
        Aggregate, DpCost, Inputs, SimulateDp, SimulateOptions, SimulateResult, check_finite,
        choose_dropouts, client_policy, clip_l2, dp_cost, dp_release, dp_round,
    };
    use secagg_core::cheat::Cheat as CoreCheat;
    use secagg_dp::pipeline::{DpEncoding, NoisePlacement};

    /// How the inputs were encoded: what the clients hold, and how to read the release.
    struct Encoded {
        /// What each client's (honest) state machine holds: an honest client's encoded
        /// input; a cheater's cover input (zero data, its weight), which it then shifts.
        rows: Vec<RingVec>,
        /// B_enc².
        bound_sq: u64,
        /// Float inputs: the encoding, the values and weights (to check the mean).
        float: Option<(FloatEncoding, Vec<Vec<f64>>, Vec<u64>)>,
        /// Float inputs: s_val's slack factor.
        slack: Option<f64>,
        /// Per `oversized` cheater (id): the signed vector it really uploads.
        cheats: BTreeMap<ClientId, Vec<i64>>,
        /// The other cheaters: how their clients deviate (the core's test-only cheats).
        core_cheats: Vec<(ClientId, secagg_core::cheat::Cheat)>,
        /// DP rounds: the encoding, the inputs and the privacy cost (to decode the release).
        dp: Option<DpPart>,
    }

    /// A validated DP round's encoding and what reading its release needs.
    struct DpPart {
        params: DpParams,
        enc: DpEncoding,
        values: Vec<Vec<f64>>,
        cost: DpCost,
        /// N_η (0 with server-side noise).
        noise_bound: f64,
        /// (Δ₂ + N_η)/Δ₂.
        factor: f64,
    }

    /// A cheater's real vector in a DP round: its honest encoding scaled to about twice
    /// B_enc (an unclipped update, in encoded units: the rotation keeps norms), or 2·B_enc + 1
    /// in the first coordinate if it is zero.
    fn oversized_encoded(x: &[i64], bound_sq: u64) -> Vec<i64> {
        let target = 2.0 * (bound_sq as f64).sqrt() + 1.0;
        let norm = (norm_sq(x) as f64).sqrt();
        if norm == 0.0 {
            let mut y = vec![0i64; x.len()];
            if let Some(first) = y.first_mut() {
                *first = target as i64;
            }
            return y;
        }
        x.iter()
            .map(|v| (*v as f64 * target / norm).round() as i64)
            .collect()
    }

    /// Encodes a validated DP round's inputs (VALIDATION.md §12) with the round's validated
    /// DP encoding; refuses client-side noise without `client_noise`.
    fn encode_dp(
        values: Vec<Vec<f64>>,
        params: DpParams,
        dp: &SimulateDp,
        plan: &crate::plan::Plan,
        v: &SimulateValidation,
        client_noise: bool,
        rng: &mut ChaCha20Rng,
    ) -> Result<Encoded, String> {
        if params.clip != v.bound {
            return Err(format!(
                "a validated DP round's bound is its L2 clip: l2={} but the DP clip is {}",
                v.bound, params.clip
            ));
        }
        let enc = params.validated_encoding(&plan.config)?;
        let noise_bound = enc.noise_norm_bound().map_err(|e| e.0)?;
        let factor = enc.norm_bound().map_err(|e| e.0)? / enc.l2_sensitivity();
        if params.placement == NoisePlacement::Distributed && !client_noise {
            return Err(super::client_noise_refused(factor));
        }
        let bound_sq = crate::dp::validated_bound_sq(&enc)?;
        let cost = dp_cost(&params, &enc, plan, dp)?;
        let modulus = plan.config.modulus();
        let noise = enc.client_noise().map_err(|e| e.0)?;
        let mut rows = Vec::with_capacity(values.len());
        let mut cheats = BTreeMap::new();
        let mut core_cheats = Vec::new();
        for (i, x) in values.iter().enumerate() {
            let honest = enc
                .encode_bounded(&noise, x, rng)
                .map_err(|e| format!("input {i}: {}", e.0))?;
            if !v.cheaters.contains(&i) {
                rows.push(RingVec::from_u64(modulus, honest));
                continue;
            }
            let id = i as ClientId + 1;
            let big = to_ring(
                modulus,
                &oversized_encoded(&signed(modulus, &honest)?, bound_sq),
            );
            let mut cover = || {
                enc.encode_bounded(&noise, &vec![0.0; x.len()], rng)
                    .map_err(|e| format!("input {i}: {}", e.0))
            };
            let row = match v.cheat {
                Cheat::Oversized => {
                    cheats.insert(id, signed(modulus, &big)?);
                    cover()?
                }
                Cheat::ForgedProof => {
                    core_cheats.push((id, CoreCheat::MaskOther(big)));
                    cover()?
                }
                Cheat::Inconsistent => {
                    core_cheats.push((id, CoreCheat::MaskOther(big)));
                    honest
                }
                Cheat::WrongMask => {
                    core_cheats.push((id, CoreCheat::WrongSelfMask));
                    honest
                }
            };
            rows.push(RingVec::from_u64(modulus, row));
        }
        Ok(Encoded {
            rows,
            bound_sq,
            float: None,
            slack: None,
            cheats,
            core_cheats,
            dp: Some(DpPart {
                params,
                enc,
                values,
                cost,
                noise_bound,
                factor,
            }),
        })
    }

    /// A signed vector as elements of Z_2^b.
    fn to_ring(modulus: Modulus, x: &[i64]) -> Vec<u64> {
        x.iter().map(|v| (*v as u64) & modulus.mask()).collect()
    }

    fn norm_sq(x: &[i64]) -> u128 {
        x.iter().fold(0u128, |a, v| {
            let m = u128::from(v.unsigned_abs());
            a.saturating_add(m * m)
        })
    }

    fn signed(modulus: Modulus, row: &[u64]) -> Result<Vec<i64>, String> {
        commit::signed_input(modulus, row).map_err(|e| e.to_string())
    }

    /// An unsigned cheater's real vector: its input if above the bound, else its input with
    /// the first coordinate moved B + 1 away from 0 (so ‖x‖ > B).
    fn oversized_integer(x: Vec<i64>, bound: u64, bound_sq: u64) -> Vec<i64> {
        if norm_sq(&x) > u128::from(bound_sq) {
            return x;
        }
        let mut x = x;
        let step = i64::try_from(bound).unwrap_or(i64::MAX).saturating_add(1);
        if let Some(v) = x.first_mut() {
            *v = if *v >= 0 {
                v.saturating_add(step)
            } else {
                v.saturating_sub(step)
            };
        }
        x
    }

    /// A float cheater's real vector: its values scaled (unclipped) so that the encoded norm
    /// is about twice B_enc, rounded to nearest, its weight last.
    fn oversized_float(values: &[f64], weight: u64, scale: f64, bound_sq: u64) -> Vec<i64> {
        let w = weight.max(1) as f64;
        let quantize = |v: &[f64]| -> Vec<i64> {
            let mut q: Vec<i64> = v.iter().map(|x| (x * w * scale).round() as i64).collect();
            q.push(weight as i64);
            q
        };
        let q = quantize(values);
        if norm_sq(&q) > u128::from(bound_sq) {
            return q;
        }
        let target = 2.0 * (bound_sq as f64).sqrt() / (w * scale);
        let norm = values.iter().map(|x| x * x).sum::<f64>().sqrt();
        let scaled: Vec<f64> = if norm > 0.0 {
            values.iter().map(|x| x * target / norm).collect()
        } else {
            let mut v = vec![0.0; values.len()];
            if let Some(first) = v.first_mut() {
                *first = target;
            }
            v
        };
        quantize(&scaled)
    }

    fn encode(
        inputs: Inputs,
        v: &SimulateValidation,
        bits: u8,
        rng: &mut ChaCha20Rng,
    ) -> Result<Encoded, String> {
        let n = match &inputs {
            Inputs::Unsigned(v) => v.len(),
            Inputs::Words(v) => v.len(),
            Inputs::Float { values, .. } => values.len(),
        };
        let modulus = Modulus::new(bits).ok_or_else(|| format!("b = {bits} is not in 1..=64"))?;
        let is_cheater = |i: usize| v.cheaters.contains(&i);
        let mut cheats = BTreeMap::new();
        match inputs {
            Inputs::Unsigned(_) | Inputs::Words(_) => {
                let rows: Vec<RingVec> = match inputs {
                    Inputs::Unsigned(v) => v
                        .into_iter()
                        .map(|x| RingVec::from_u64(modulus, x))
                        .collect(),
                    Inputs::Words(v) => v,
                    Inputs::Float { .. } => Vec::new(),
                };
                if v.bound.fract() != 0.0 || v.bound >= (1u64 << 62) as f64 {
                    return Err(format!(
                        "unsigned inputs: the bound l2={} is in encoded units and must be a whole \
                         number below 2^31",
                        v.bound
                    ));
                }
                let bound = v.bound as u64;
                let bound_sq = params::integer_bound_sq(bound).map_err(|e| e.to_string())?;
                let mut out = Vec::with_capacity(n);
                let mut core_cheats = Vec::new();
                for (i, row) in rows.into_iter().enumerate() {
                    if is_cheater(i) {
                        let x = signed(modulus, &row.to_u64())
                            .map_err(|e| format!("input {i}: {e}"))?;
                        let id = i as ClientId + 1;
                        let big = oversized_integer(x.clone(), bound, bound_sq);
                        let honest = if norm_sq(&x) > u128::from(bound_sq) {
                            RingVec::zeros(modulus, row.len())
                        } else {
                            row
                        };
                        match v.cheat {
                            Cheat::Oversized => {
                                cheats.insert(id, big);
                                out.push(RingVec::zeros(modulus, honest.len()));
                            }
                            Cheat::ForgedProof => {
                                core_cheats
                                    .push((id, CoreCheat::MaskOther(to_ring(modulus, &big))));
                                out.push(RingVec::zeros(modulus, honest.len()));
                            }
                            Cheat::Inconsistent => {
                                core_cheats
                                    .push((id, CoreCheat::MaskOther(to_ring(modulus, &big))));
                                out.push(honest);
                            }
                            Cheat::WrongMask => {
                                core_cheats.push((id, CoreCheat::WrongSelfMask));
                                out.push(honest);
                            }
                        }
                    } else {
                        out.push(row);
                    }
                }
                Ok(Encoded {
                    rows: out,
                    bound_sq,
                    float: None,
                    slack: None,
                    cheats,
                    core_cheats,
                    dp: None,
                })
            }
            Inputs::Float {
                values,
                weights,
                clip,
            } => {
                if weights.len() != n {
                    return Err(format!("{} weights for {n} inputs", weights.len()));
                }
                if clip.is_some() {
                    return Err(String::from(
                        "validated float rounds clip each update to L2 norm B (--validate l2=B), \
                         not values to a range: drop --clip",
                    ));
                }
                check_finite(&values)?;
                let max_w = weights.iter().copied().max().unwrap_or(1).max(1);
                let dim = values.first().map_or(0, Vec::len) + 1;
                let dim =
                    u32::try_from(dim).map_err(|_| format!("dimension {dim} is too large"))?;
                let s = params::float_scale(bits, n as u32, dim, max_w, v.bound)
                    .map_err(|e| e.to_string())?;
                let enc = FloatEncoding {
                    clip: v.bound,
                    scale: s.scale,
                    bits,
                    max_weight: max_w,
                };
                let mut out = Vec::with_capacity(n);
                let mut core_cheats = Vec::new();
                for (i, (x, w)) in values.iter().zip(&weights).enumerate() {
                    let encoded = if is_cheater(i) {
                        let id = i as ClientId + 1;
                        let big = oversized_float(x, *w, s.scale, s.bound_sq);
                        match v.cheat {
                            Cheat::Oversized => {
                                cheats.insert(id, big);
                                enc.encode(&vec![0.0; x.len()], *w, rng)
                            }
                            Cheat::ForgedProof => {
                                core_cheats
                                    .push((id, CoreCheat::MaskOther(to_ring(modulus, &big))));
                                enc.encode(&vec![0.0; x.len()], *w, rng)
                            }
                            Cheat::Inconsistent => {
                                core_cheats
                                    .push((id, CoreCheat::MaskOther(to_ring(modulus, &big))));
                                enc.encode(&clip_l2(x, v.bound), *w, rng)
                            }
                            Cheat::WrongMask => {
                                core_cheats.push((id, CoreCheat::WrongSelfMask));
                                enc.encode(&clip_l2(x, v.bound), *w, rng)
                            }
                        }
                    } else {
                        enc.encode(&clip_l2(x, v.bound), *w, rng)
                    }
                    .map_err(|e| format!("input {i}: {}", e.0))?;
                    out.push(RingVec::from_u64(modulus, encoded));
                }
                Ok(Encoded {
                    rows: out,
                    bound_sq: s.bound_sq,
                    float: Some((enc, values, weights)),
                    slack: Some(s.slack_factor(max_w, v.bound)),
                    cheats,
                    core_cheats,
                    dp: None,
                })
            }
        }
    }

    /// What the cheaters' hook measured: per cheater, the time it spent forging.
    type CheatTimes = Arc<Mutex<BTreeMap<ClientId, Duration>>>;

    /// The `oversized` cheater (VALIDATION.md §16): its state machine masked a cover input
    /// (zero data); on the way out its masked vector is shifted by (real − cover), which needs
    /// no secret, and the proof replaced by a real norm proof of its real vector under the
    /// bound that vector meets (the most a prover can do: `norm::prove` refuses above the
    /// bound), bound to this session, its id and the new upload. It decodes for the round's
    /// statement only when its length matches; either way it cannot verify under B_enc².
    fn oversized_hook(
        cheats: BTreeMap<ClientId, Vec<i64>>,
        covers: BTreeMap<ClientId, Vec<u64>>,
        seed: u64,
        times: CheatTimes,
    ) -> harness::SessionTamper {
        let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 0xc4ea_7e25);
        Box::new(move |server: &ServerRound, stage, from, bytes| {
            if stage != Stage::MaskedInput {
                return bytes;
            }
            let (Some(big), Some(cover), Some(session)) =
                (cheats.get(&from), covers.get(&from), server.session())
            else {
                return bytes;
            };
            let t = Instant::now();
            let cfg = server.config();
            let Ok(ClientMessage::MaskedInput {
                vector,
                masked_with,
                ..
            }) = ClientMessage::decode(&bytes, cfg)
            else {
                return bytes;
            };
            let m = cfg.modulus();
            let dim = cfg.dim as usize;
            let Ok(y) = m.unpack(&vector, dim) else {
                return bytes;
            };
            let mask = m.mask();
            let y: Vec<u64> = y
                .iter()
                .zip(big)
                .zip(cover)
                .map(|((y, b), c)| y.wrapping_add(*b as u64).wrapping_sub(*c) & mask)
                .collect();
            let packed = m.pack(&y);
            let ctx = round::norm_context(session, from, &packed);
            let own_bound = u64::try_from(norm_sq(big)).unwrap_or(u64::MAX);
            // A vector too large for any norm statement (‖x‖² ≥ 2^62) uploads no proof: the
            // server rejects that the same way.
            let proof = NormParams::new(dim, own_bound, None)
                .ok()
                .and_then(|p| {
                    let gens = Generators::shared(p.generator_sizes()).ok()?;
                    let witness = NormWitness::new(big.clone(), Default::default());
                    let proof = norm::prove(&gens, &p, &ctx, &witness, &mut rng).ok()?;
                    Some(codec::encode_norm_proof(&p, &proof))
                })
                .unwrap_or_default();
            if let Ok(mut t0) = times.lock() {
                t0.insert(from, t.elapsed());
            }
            ClientMessage::MaskedInput {
                vector: packed,
                proof,
                masked_with,
            }
            .encode()
        })
    }

    pub(super) fn run(
        inputs: Inputs,
        mut opts: SimulateOptions,
        v: SimulateValidation,
        client_noise: bool,
    ) -> Result<SimulateResult, String> {
        let n = match &inputs {
            Inputs::Unsigned(v) => v.len(),
            Inputs::Words(v) => v.len(),
            Inputs::Float { values, .. } => values.len(),
        };
        if n < 2 {
            return Err(format!("a round needs at least 2 clients, got {n} inputs"));
        }
        let dims: Vec<usize> = match &inputs {
            Inputs::Unsigned(v) => v.iter().map(Vec::len).collect(),
            Inputs::Words(v) => v.iter().map(RingVec::len).collect(),
            Inputs::Float { values, .. } => values.iter().map(Vec::len).collect(),
        };
        if let Some((i, d)) = dims.iter().enumerate().find(|(_, d)| **d != dims[0]) {
            return Err(format!(
                "input {i} has {d} values but input 0 has {}: all clients must send vectors of the same length",
                dims[0]
            ));
        }
        if dims[0] == 0 {
            return Err(String::from("inputs are empty vectors"));
        }
        if !(0.0..=1.0).contains(&opts.dropout) {
            return Err(format!(
                "--dropout must be a fraction in [0, 1], got {}",
                opts.dropout
            ));
        }
        let mut sorted = v.cheaters.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != v.cheaters.len() {
            return Err(String::from("--cheaters lists a client twice"));
        }
        if let Some(i) = sorted.iter().find(|i| **i >= n) {
            return Err(format!(
                "--cheaters: client {i} is not an input index (0..{n})"
            ));
        }
        let bits = opts.round.bits;
        let mut rng = ChaCha20Rng::seed_from_u64(opts.seed ^ 0x00e2_c0de);
        let n32 = n as u32;
        let (enc, mut plan) = match opts.dp {
            Some(dp) => {
                let (values, params, plan) = dp_round(inputs, &opts, &dp)?;
                let enc = encode_dp(values, params, &dp, &plan, &v, client_noise, &mut rng)?;
                (enc, plan)
            }
            None => {
                let enc = encode(inputs, &v, bits, &mut rng)?;
                let enc_dim = enc.rows[0].len();
                let mut ro = opts.round.clone();
                ro.clients = n32;
                ro.dim = u32::try_from(enc_dim)
                    .map_err(|_| format!("dimension {enc_dim} is too large"))?;
                (enc, plan(&ro)?)
            }
        };
        let ro = &opts.round;
        // J = 41 + c for the c = ⌊α·n⌋ corrupt clients planned for, within the clients' cap.
        let corrupt = (ro.assumptions.corrupt_fraction * f64::from(n32)).floor() as u32;
        let projections = params::projections(corrupt).min(params::projections_cap(n32));
        if v.cheaters.len() as u32 > corrupt {
            plan.warnings.push(format!(
                "{} cheaters but the round plans for {corrupt} corrupt clients \
                 (--assumed-corrupt {}): k, t and J assume at most that many",
                v.cheaters.len(),
                ro.assumptions.corrupt_fraction
            ));
        }
        plan.config.validation = Some(ValidationParams {
            bound_sq: enc.bound_sq,
            projections: u16::try_from(projections).map_err(|_| "too many projections")?,
            // Float rounds: the weight coordinate is proven in [0, W] (D33).
            max_weight: enc.float.as_ref().map(|(e, _, _)| e.max_weight),
        });
        if let Some((e, _, _)) = &enc.float {
            // The round announces B (as the clip) and W: every client derives s_val and
            // B_enc² from them ([`InputEncoding::validated_float`]).
            plan.config.encoding = InputEncoding::Float {
                clip: e.clip,
                max_weight: e.max_weight,
            }
            .to_bytes();
        }
        round::check_round_config(&plan.config).map_err(|e| e.to_string())?;
        plan.config.validate()?;
        // What a client derives from the round is what the simulated clients were given.
        if let Some((e, _, _)) = &enc.float
            && InputEncoding::of(&plan.config)?.validated_float(&plan.config)? != Some(*e)
        {
            return Err(String::from(
                "internal: the validated float encoding differs from the round's",
            ));
        }
        if let Some(d) = &enc.dp
            && InputEncoding::of(&plan.config)?
                .validated_dp(&plan.config)?
                .map(|e| e.scale())
                != Some(d.enc.scale())
        {
            return Err(String::from(
                "internal: the validated DP encoding differs from the round's",
            ));
        }

        let modulus = plan.config.modulus();
        let drop_ids = choose_dropouts(n32, opts.dropout, opts.seed);
        let mut sc = Scenario::new(plan.config.clone(), opts.seed);
        sc.policy = client_policy(&opts.round);
        if !drop_ids.is_empty() {
            sc.dropouts.push((opts.dropout_stage, drop_ids));
        }
        sc.on_stage = opts.on_stage.take();
        sc.verifier_key = Some(v.verifier_key.unwrap_or_else(|| {
            let mut k = [0u8; 32];
            ChaCha20Rng::seed_from_u64(opts.seed ^ 0x7e21_f1e2).fill_bytes(&mut k);
            k
        }));
        sc.cheats = enc.core_cheats.clone();
        let cheat_times: CheatTimes = Arc::default();
        if !enc.cheats.is_empty() {
            let covers = enc
                .cheats
                .keys()
                .map(|id| (*id, enc.rows[*id as usize - 1].to_u64()))
                .collect();
            sc.session_tamper = Some(oversized_hook(
                enc.cheats.clone(),
                covers,
                opts.seed,
                cheat_times.clone(),
            ));
        }
        let proof_lens: Arc<Mutex<BTreeMap<ClientId, usize>>> = Arc::default();
        {
            let lens = proof_lens.clone();
            let cfg = plan.config.clone();
            sc.observe = Some(Box::new(move |stage, from_server, id, bytes| {
                if stage != Stage::MaskedInput || from_server {
                    return;
                }
                if let Ok(ClientMessage::MaskedInput { proof, .. }) =
                    ClientMessage::decode(bytes, &cfg)
                    && let Ok(mut l) = lens.lock()
                {
                    l.insert(id, proof.len());
                }
            }));
        }
        let report = harness::run_rows(sc, &enc.rows)?;

        // What the round released, checked against the honest survivors' inputs.
        let cheater_ids: Vec<ClientId> = enc.cheats.keys().copied().collect();
        let mut aggregate = None;
        let mut aborted = None;
        let mut survivors = Vec::new();
        let mut aggregate_ok = false;
        let mut mean_error = None;
        let mut uncaught = Vec::new();
        let mut dp_report = None;
        match &report.outcome {
            Outcome::Aborted(r) => aborted = Some(r.to_string()),
            Outcome::Released {
                aggregate: agg,
                survivors: u3,
            } => {
                uncaught = u3
                    .iter()
                    .filter(|id| cheater_ids.contains(id))
                    .map(|id| id as usize - 1)
                    .collect();
                let expect = harness::plain_sum_rows(&enc.rows, u3.iter(), modulus);
                let exact = *agg == expect && uncaught.is_empty();
                survivors = u3.iter().map(|id| id as usize - 1).collect();
                match &enc.float {
                    None if enc.dp.is_some() => {
                        if let Some(d) = &enc.dp {
                            let (agg, rep) = dp_release(
                                &d.params,
                                &d.enc,
                                &d.cost,
                                &d.values,
                                &survivors,
                                agg.clone(),
                                &mut rng,
                            )?;
                            aggregate_ok = exact;
                            aggregate = Some(agg);
                            dp_report = Some(rep);
                        }
                    }
                    Some((fe, values, weights)) => {
                        let (mean, total) = fe.decode(agg).map_err(|e| e.0)?;
                        let mut want = vec![0f64; mean.len()];
                        let mut wsum = 0f64;
                        for &i in &survivors {
                            let w = weights[i] as f64;
                            wsum += w;
                            for (a, x) in want.iter_mut().zip(clip_l2(&values[i], v.bound)) {
                                *a += w * x;
                            }
                        }
                        want.iter_mut().for_each(|a| *a /= wsum.max(1.0));
                        let err = mean
                            .iter()
                            .zip(&want)
                            .fold(0f64, |m, (a, b)| m.max((a - b).abs()));
                        let bound = fe.max_rounding_error(survivors.len() as u32, total) + 1e-12;
                        aggregate_ok = exact && err <= bound;
                        mean_error = Some((err, bound));
                        aggregate = Some(Aggregate::Mean {
                            mean,
                            total_weight: total,
                        });
                    }
                    None => {
                        aggregate_ok = exact;
                        aggregate = Some(Aggregate::Sum(agg.clone()));
                    }
                }
            }
        }
        let dropped = (0..n).filter(|i| !survivors.contains(i)).collect();

        let rejected = report
            .dropouts
            .iter()
            .filter_map(|d| match d.reason {
                DropReason::Validation(k) => Some(Rejection {
                    client: d.id as usize - 1,
                    stage: d.stage,
                    reason: k.to_string(),
                }),
                _ => None,
            })
            .collect();
        let refused = report
            .client_errors
            .iter()
            .map(|(id, e)| (*id as usize - 1, e.to_string()))
            .collect();
        let forging = cheat_times.lock().map(|t| t.clone()).unwrap_or_default();
        let mut prove_ms = vec![None; n];
        if let Some(times) = report.client_times.get(&Stage::MaskedInput) {
            for (id, dt) in times {
                let extra = forging.get(id).copied().unwrap_or_default();
                if let Some(slot) = prove_ms.get_mut(*id as usize - 1) {
                    *slot = Some((*dt + extra).as_secs_f64() * 1e3);
                }
            }
        }
        let stage = report.stages.get(&Stage::MaskedInput);
        let lens = proof_lens.lock().map(|l| l.clone()).unwrap_or_default();
        let proof_bytes = lens
            .iter()
            .filter(|(id, _)| !cheater_ids.contains(id))
            .map(|(_, l)| *l)
            .max()
            .unwrap_or(0);
        let validation = ValidationReport {
            bound: v.bound,
            bound_sq: enc.bound_sq,
            projections,
            scale: enc.float.as_ref().map(|(e, _, _)| e.scale),
            slack_factor: enc.slack,
            rejected,
            refused,
            prove_ms,
            verify_ms: stage.map_or(0.0, |s| s.server.as_secs_f64() * 1e3),
            uploads: stage.map_or(0, |s| s.senders),
            proof_bytes,
            uncaught,
            noise_bound: enc.dp.as_ref().map(|d| d.noise_bound),
            dp_factor: enc.dp.as_ref().map(|d| d.factor),
        };
        Ok(SimulateResult {
            plan,
            aggregate,
            aborted,
            survivors,
            dropped,
            aggregate_ok,
            mean_error,
            dropouts: report.dropouts.clone(),
            report,
            dp: dp_report,
            validation: Some(validation),
        })
    }
}
