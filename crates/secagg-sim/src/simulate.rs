//! One whole round from user inputs to a checked aggregate: what `secagg simulate` and the
//! Python `secagg.simulate` run.

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use secagg_core::encoding::{FloatEncoding, check_integer_sum};
use secagg_core::ring::{Modulus, RingVec};
use secagg_core::server::{Dropout, Outcome};
use secagg_core::{ClientId, Stage};

use crate::dp::DpParams;
use crate::harness::{self, Report, Scenario};
use crate::input_encoding::InputEncoding;
use crate::plan::{Plan, RoundOptions, plan};

/// Client inputs.
#[derive(Debug, Clone)]
pub enum Inputs {
    /// Unsigned integers: the sum mod 2^b is computed.
    Unsigned(Vec<Vec<u64>>),
    /// Unsigned integers already in a compact word ([`RingVec`], `u32` when they fit): the
    /// same round as [`Inputs::Unsigned`] with half its memory at b ≤ 32.
    Words(Vec<RingVec>),
    /// Floats with weights: the weighted mean is computed.
    Float {
        /// One vector per client.
        values: Vec<Vec<f64>>,
        /// One weight per client (e.g. its example count).
        weights: Vec<u64>,
        /// Clipping range; `None` picks the smallest power of two covering all values.
        clip: Option<f64>,
    },
}

impl Inputs {
    fn len(&self) -> usize {
        match self {
            Inputs::Unsigned(v) => v.len(),
            Inputs::Words(v) => v.len(),
            Inputs::Float { values, .. } => values.len(),
        }
    }
    fn dims(&self) -> Vec<usize> {
        match self {
            Inputs::Unsigned(v) => v.iter().map(Vec::len).collect(),
            Inputs::Words(v) => v.iter().map(RingVec::len).collect(),
            Inputs::Float { values, .. } => values.iter().map(Vec::len).collect(),
        }
    }
}

/// Random unsigned inputs that cannot wrap: each value below 2^b / n, in `u32` words when
/// b ≤ 32 ([`Inputs::Words`]).
pub fn random_inputs(n: u32, dim: u32, bits: u8, seed: u64) -> Inputs {
    let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 0x05ee_d1a9_u64);
    let max = (((1u128 << bits) - 1) / n.max(1) as u128).max(1) as u64;
    let mut draw = move || rng.next_u64() % (max + 1).max(1);
    Inputs::Words(
        (0..n)
            .map(|_| {
                if bits <= 32 {
                    // draw() ≤ max < 2^32.
                    RingVec::U32((0..dim).map(|_| draw() as u32).collect())
                } else {
                    RingVec::U64((0..dim).map(|_| draw()).collect())
                }
            })
            .collect(),
    )
}

/// Random float inputs for DP rounds: a shared direction plus each client's own part, each
/// vector of L2 norm about 1, so the mean is not trivially 0.
pub fn random_float_inputs(n: u32, dim: u32, seed: u64) -> Inputs {
    let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 0xf1_0a7);
    let d = dim.max(1) as f64;
    let mut uniform = move || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
    let shared: Vec<f64> = (0..dim).map(|_| uniform() * (3.0 / d).sqrt()).collect();
    let values = (0..n)
        .map(|_| {
            shared
                .iter()
                .map(|s| 0.5 * s + 0.5 * uniform() * (3.0 / d).sqrt())
                .collect()
        })
        .collect();
    Inputs::Float {
        values,
        weights: vec![1; n as usize],
        clip: None,
    }
}

/// Options of a simulated round beyond the round's parameters.
pub struct SimulateOptions {
    /// Round parameters (the dimension is taken from the inputs).
    pub round: RoundOptions,
    /// Fraction of clients that drop out.
    pub dropout: f64,
    /// The stage at which they drop.
    pub dropout_stage: Stage,
    /// Seed of every random choice.
    pub seed: u64,
    /// Called when a stage starts.
    pub on_stage: Option<Box<dyn FnMut(Stage) + Send>>,
    /// Release a differentially private mean of float inputs instead of the exact one.
    pub dp: Option<SimulateDp>,
}

/// Differential privacy of a simulated round.
#[derive(Debug, Clone, Copy)]
pub struct SimulateDp {
    /// The public parameters (their `dim` is taken from the inputs).
    pub params: DpParams,
    /// δ of the reported (ε, δ).
    pub delta: f64,
    /// Poisson sampling rate of a round's clients from their population: it amplifies only
    /// the ε against observers of the released model ([`DpReport::epsilon_release_only`]).
    pub sampling_rate: f64,
    /// Rounds of this kind composed in the reported ε (a training run's length).
    pub rounds: u64,
    /// Fewest survivors the round accepts (default: the threshold t); each client's noise
    /// share is sized for them.
    pub min_survivors: Option<u32>,
}

/// What a DP round released and what it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct DpReport {
    /// ε of `rounds` such rounds at `delta` against the server (sampling rate 1: it sees who
    /// took part).
    pub epsilon: f64,
    /// The Rényi order that gave it.
    pub order: f64,
    /// ε of the same rounds against observers of the released model only, amplified by the
    /// sampling rate (valid only if clients really are Poisson-sampled and who took part stays
    /// hidden from those observers; equal to `epsilon` at rate 1).
    pub epsilon_release_only: f64,
    /// δ.
    pub delta: f64,
    /// Rounds composed.
    pub rounds: u64,
    /// The encoding's scale γ.
    pub scale: f64,
    /// The vector length masked (the dimension padded to a power of two).
    pub padded_dim: usize,
    /// Root-mean-square error per coordinate of the private mean against the mean of the
    /// survivors' clipped inputs (noise and rounding only).
    pub rmse_vs_clipped: f64,
    /// The same against the mean of their raw inputs (clipping bias included).
    pub rmse_vs_raw: f64,
    /// The RMSE the encoding predicts for this many survivors (noise and rounding).
    pub expected_rmse: f64,
}

/// The aggregate in the inputs' terms.
#[derive(Debug, Clone, PartialEq)]
pub enum Aggregate {
    /// Σ x_u mod 2^b over the survivors.
    Sum(Vec<u64>),
    /// Σ w_u x_u / Σ w_u over the survivors.
    Mean {
        /// The weighted mean.
        mean: Vec<f64>,
        /// Σ w_u.
        total_weight: u64,
    },
}

/// Everything a simulated round produced.
pub struct SimulateResult {
    /// The plan (configuration and warnings).
    pub plan: Plan,
    /// The aggregate, if the round released one.
    pub aggregate: Option<Aggregate>,
    /// Why the round aborted, if it did.
    pub aborted: Option<String>,
    /// 0-based indices of the inputs in the aggregate.
    pub survivors: Vec<usize>,
    /// 0-based indices of the inputs not in it.
    pub dropped: Vec<usize>,
    /// The aggregate equals an independently computed plaintext aggregate of the survivors
    /// (exactly for the protocol's integers; within rounding error for float means).
    pub aggregate_ok: bool,
    /// Float inputs: the largest error of the mean and the bound it must stay under.
    pub mean_error: Option<(f64, f64)>,
    /// Dropouts as the server recorded them.
    pub dropouts: Vec<Dropout>,
    /// Timings and bytes.
    pub report: Report,
    /// DP rounds: ε and the error of the private mean.
    pub dp: Option<DpReport>,
    /// Validated rounds ([`crate::validate::simulate_validated`]): the bound, who was
    /// rejected and why, and what the proofs cost.
    pub validation: Option<crate::validate::ValidationReport>,
}

/// Picks ⌊fraction·n⌉ clients to drop, deterministically from the seed.
pub fn choose_dropouts(n: u32, fraction: f64, seed: u64) -> Vec<ClientId> {
    let count = ((fraction * n as f64).round() as usize).min(n as usize);
    let mut ids: Vec<ClientId> = (1..=n).collect();
    let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 0xd20b);
    for i in (1..ids.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        ids.swap(i, j);
    }
    let mut out = ids[..count].to_vec();
    out.sort_unstable();
    out
}

/// Runs one round on `inputs` and checks its aggregate.
pub fn simulate(inputs: Inputs, mut opts: SimulateOptions) -> Result<SimulateResult, String> {
    let n = inputs.len();
    if n < 2 {
        return Err(format!("a round needs at least 2 clients, got {n} inputs"));
    }
    let dims = inputs.dims();
    let dim = dims[0];
    if let Some((i, d)) = dims.iter().enumerate().find(|(_, d)| **d != dim) {
        return Err(format!(
            "input {i} has {d} values but input 0 has {dim}: all clients must send vectors of the same length"
        ));
    }
    if dim == 0 {
        return Err(String::from("inputs are empty vectors"));
    }
    if !(0.0..=1.0).contains(&opts.dropout) {
        return Err(format!(
            "--dropout must be a fraction in [0, 1], got {}",
            opts.dropout
        ));
    }
    let bits = opts.round.bits;
    let mut rng = ChaCha20Rng::seed_from_u64(opts.seed ^ 0x00e2_c0de);
    let n32 = n as u32;
    if let Some(dp) = opts.dp {
        return simulate_dp(inputs, opts, dp, rng);
    }
    // Encode into Z_2^b, in the round's word (u32 for b ≤ 32). Unsigned inputs are moved,
    // not copied; the clients borrow them and the aggregate is checked against them. Float
    // rounds keep their values and weights to check the released mean.
    type FloatRound = (FloatEncoding, Vec<Vec<f64>>, Vec<u64>);
    let modulus = Modulus::new(bits).ok_or_else(|| format!("b = {bits} is not in 1..=64"))?;
    let (encoded, float): (Vec<RingVec>, Option<FloatRound>) = match inputs {
        Inputs::Unsigned(v) => {
            let max = v.iter().flat_map(|x| x.iter()).copied().max().unwrap_or(0);
            check_integer_sum(bits, n32, max).map_err(|e| e.0)?;
            let rows = v
                .into_iter()
                .map(|x| RingVec::from_u64(modulus, x))
                .collect();
            (rows, None)
        }
        Inputs::Words(v) => {
            let max = v.iter().map(RingVec::max).max().unwrap_or(0);
            check_integer_sum(bits, n32, max).map_err(|e| e.0)?;
            (v, None)
        }
        Inputs::Float {
            values,
            weights,
            clip,
        } => {
            if weights.len() != n {
                return Err(format!("{} weights for {n} inputs", weights.len()));
            }
            check_finite(&values)?;
            let clip = match clip {
                Some(c) => c,
                None => {
                    let m = values
                        .iter()
                        .flat_map(|v| v.iter())
                        .fold(0.0f64, |a, x| a.max(x.abs()));
                    if m == 0.0 {
                        1.0
                    } else {
                        2f64.powi(m.log2().ceil() as i32)
                    }
                }
            };
            let max_w = weights.iter().copied().max().unwrap_or(1).max(1);
            let enc = FloatEncoding::new(bits, clip, n32, max_w).map_err(|e| e.0)?;
            let mut out = Vec::with_capacity(n);
            for (v, w) in values.iter().zip(&weights) {
                let x = enc.encode(v, *w, &mut rng).map_err(|e| e.0)?;
                out.push(RingVec::from_u64(modulus, x));
            }
            (out, Some((enc, values, weights)))
        }
    };
    let enc_dim = encoded[0].len();
    let mut ro = opts.round.clone();
    ro.clients = n32;
    ro.dim = u32::try_from(enc_dim).map_err(|_| format!("dimension {enc_dim} is too large"))?;
    let mut plan = plan(&ro)?;
    if let Some((enc, _, _)) = &float {
        plan.config.encoding = InputEncoding::Float {
            clip: enc.clip,
            max_weight: enc.max_weight,
        }
        .to_bytes();
    }
    let drop_ids = choose_dropouts(n32, opts.dropout, opts.seed);
    let mut sc = Scenario::new(plan.config.clone(), opts.seed);
    sc.policy = client_policy(&opts.round);
    if !drop_ids.is_empty() {
        sc.dropouts.push((opts.dropout_stage, drop_ids));
    }
    sc.on_stage = opts.on_stage.take();
    let report = harness::run_rows(sc, &encoded)?;
    let (aggregate, aborted, survivors, aggregate_ok, mean_error) = match &report.outcome {
        Outcome::Aborted(r) => (None, Some(r.to_string()), Vec::new(), false, None),
        Outcome::Released {
            aggregate,
            survivors,
        } => {
            let expect = harness::plain_sum_rows(&encoded, survivors.iter(), modulus);
            let exact = *aggregate == expect;
            let surv: Vec<usize> = survivors.iter().map(|id| id as usize - 1).collect();
            match float {
                Some((enc, values, weights)) => {
                    let (mean, total) = enc.decode(aggregate).map_err(|e| e.0)?;
                    // Plaintext weighted mean of the clipped survivors' inputs.
                    let mut want = vec![0f64; mean.len()];
                    let mut wsum = 0f64;
                    for &i in &surv {
                        let w = weights[i] as f64;
                        wsum += w;
                        for (a, x) in want.iter_mut().zip(&values[i]) {
                            *a += w * x.clamp(-enc.clip, enc.clip);
                        }
                    }
                    want.iter_mut().for_each(|a| *a /= wsum.max(1.0));
                    let err = mean
                        .iter()
                        .zip(&want)
                        .fold(0f64, |m, (a, b)| m.max((a - b).abs()));
                    let bound = enc.max_rounding_error(surv.len() as u32, total) + 1e-12;
                    (
                        Some(Aggregate::Mean {
                            mean,
                            total_weight: total,
                        }),
                        None,
                        surv,
                        exact && err <= bound,
                        Some((err, bound)),
                    )
                }
                None => (
                    Some(Aggregate::Sum(aggregate.clone())),
                    None,
                    surv,
                    exact,
                    None,
                ),
            }
        }
    };
    let dropped = (0..n).filter(|i| !survivors.contains(i)).collect();
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
        dp: None,
        validation: None,
    })
}

/// Refuses NaN and infinities, naming the input and the index.
pub(crate) fn check_finite(values: &[Vec<f64>]) -> Result<(), String> {
    for (i, v) in values.iter().enumerate() {
        if let Some((j, x)) = v.iter().enumerate().find(|(_, x)| !x.is_finite()) {
            return Err(format!(
                "input {i} has a non-finite value {x} at index {j}: remove NaN/inf before aggregating"
            ));
        }
    }
    Ok(())
}

/// `v` scaled down to L2 norm at most `clip`.
pub fn clip_l2(v: &[f64], clip: f64) -> Vec<f64> {
    let sq = v.iter().map(|x| x * x).sum::<f64>();
    // A sum of squares of values above ~1e154 overflows to infinity and would clip the update
    // to zeros: then the norm is taken scaled by the largest magnitude. (A NaN passes through
    // unchanged and an infinity becomes NaN: the encodings refuse both.)
    let m = v.iter().fold(0f64, |a, x| a.max(x.abs()));
    let norm = if sq.is_infinite() && m.is_finite() {
        m * v.iter().map(|x| (x / m) * (x / m)).sum::<f64>().sqrt()
    } else {
        sq.sqrt()
    };
    let f = if norm > clip { clip / norm } else { 1.0 };
    v.iter().map(|x| x * f).collect()
}

fn rmse(a: &[f64], b: &[f64]) -> f64 {
    let s: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
    (s / a.len().max(1) as f64).sqrt()
}

fn mean_of<'a>(rows: impl Iterator<Item = &'a Vec<f64>>, dim: usize) -> Vec<f64> {
    let mut out = vec![0f64; dim];
    let mut k = 0usize;
    for r in rows {
        k += 1;
        out.iter_mut().zip(r).for_each(|(a, x)| *a += x);
    }
    out.iter_mut().for_each(|a| *a /= k.max(1) as f64);
    out
}

/// A round releasing a differentially private mean (secagg-dp's pipeline on every client).
fn simulate_dp(
    inputs: Inputs,
    mut opts: SimulateOptions,
    dp: SimulateDp,
    mut rng: ChaCha20Rng,
) -> Result<SimulateResult, String> {
    let (values, params, plan) = dp_round(inputs, &opts, &dp)?;
    let n = values.len() as u32;
    let enc = params.encoding(&plan.config)?;
    let cost = dp_cost(&params, &enc, &plan, &dp)?;
    // One sampler (a table for Skellam) serves every simulated client.
    let noise = enc.client_noise().map_err(|e| e.0)?;
    let modulus = plan.config.modulus();
    let encoded: Vec<RingVec> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            enc.encode_with(&noise, v, &mut rng)
                .map(|x| RingVec::from_u64(modulus, x))
                .map_err(|e| format!("input {i}: {}", e.0))
        })
        .collect::<Result<_, _>>()?;
    let drop_ids = choose_dropouts(n, opts.dropout, opts.seed);
    let mut sc = Scenario::new(plan.config.clone(), opts.seed);
    sc.policy = client_policy(&opts.round);
    if !drop_ids.is_empty() {
        sc.dropouts.push((opts.dropout_stage, drop_ids));
    }
    sc.on_stage = opts.on_stage.take();
    let report = harness::run_rows(sc, &encoded)?;
    let mut result = SimulateResult {
        plan,
        aggregate: None,
        aborted: None,
        survivors: Vec::new(),
        dropped: (0..values.len()).collect(),
        aggregate_ok: false,
        mean_error: None,
        dropouts: report.dropouts.clone(),
        report,
        dp: None,
        validation: None,
    };
    let (aggregate, survivors) = match &result.report.outcome {
        Outcome::Aborted(r) => {
            result.aborted = Some(r.to_string());
            return Ok(result);
        }
        Outcome::Released {
            aggregate,
            survivors,
        } => (aggregate.clone(), survivors.clone()),
    };
    let surv: Vec<usize> = survivors.iter().map(|id| id as usize - 1).collect();
    // The protocol's part is exact: the unmasked sum equals the sum of what clients sent.
    let exact = aggregate == harness::plain_sum_rows(&encoded, survivors.iter(), modulus);
    let (agg, report) = dp_release(&params, &enc, &cost, &values, &surv, aggregate, &mut rng)?;
    result.dp = Some(report);
    result.dropped = (0..values.len()).filter(|i| !surv.contains(i)).collect();
    result.survivors = surv;
    result.aggregate_ok = exact;
    result.aggregate = Some(agg);
    Ok(result)
}

/// A DP round's checked inputs, parameters and plan (its config carries the DP encoding and
/// the survivors the noise is sized for): what plain and validated DP rounds share.
pub(crate) fn dp_round(
    inputs: Inputs,
    opts: &SimulateOptions,
    dp: &SimulateDp,
) -> Result<(Vec<Vec<f64>>, DpParams, Plan), String> {
    let Inputs::Float {
        values,
        weights,
        clip,
    } = inputs
    else {
        return Err(String::from(
            "DP rounds average float updates: give float32/float64 inputs",
        ));
    };
    if clip.is_some() {
        return Err(String::from(
            "DP rounds clip each update to an L2 norm (--dp-clip), not values to a range: drop --clip",
        ));
    }
    if weights.len() != values.len() || weights.iter().any(|w| *w != 1) {
        return Err(String::from(
            "DP rounds average unweighted updates (weights would change the sensitivity): drop --weights",
        ));
    }
    if !(dp.delta > 0.0 && dp.delta < 1.0) {
        return Err(format!("δ must be in (0, 1), got {}", dp.delta));
    }
    if dp.rounds == 0 {
        return Err(String::from("the number of DP rounds must be at least 1"));
    }
    let dim = values.first().map_or(0, Vec::len);
    check_finite(&values)?;
    let params = DpParams { dim, ..dp.params };
    let mut ro = opts.round.clone();
    ro.clients = values.len() as u32;
    ro.dim = params.masked_dim()?;
    let mut plan = plan(&ro)?;
    crate::dp::require_survivors(&mut plan.config, dp.min_survivors)?;
    plan.config.encoding = InputEncoding::Dp(params).to_bytes();
    Ok((values, params, plan))
}

/// ε of a DP round with encoding `enc`: against the server (rate 1) and against observers of
/// the release only (the sampling rate), over `dp.rounds` rounds.
pub(crate) struct DpCost {
    eps: secagg_dp::accountant::Epsilon,
    eps_release: secagg_dp::accountant::Epsilon,
    delta: f64,
    rounds: u64,
}

pub(crate) fn dp_cost(
    params: &DpParams,
    enc: &secagg_dp::pipeline::DpEncoding,
    plan: &Plan,
    dp: &SimulateDp,
) -> Result<DpCost, String> {
    let cost = params.round_cost_with(&plan.config, enc, 1.0)?;
    let sampled = params.round_cost_with(&plan.config, enc, dp.sampling_rate)?;
    Ok(DpCost {
        eps: crate::dp::epsilon_after(None, &cost, dp.rounds, dp.delta)?,
        eps_release: crate::dp::epsilon_after(None, &sampled, dp.rounds, dp.delta)?,
        delta: dp.delta,
        rounds: dp.rounds,
    })
}

/// The private mean a DP round releases from the unmasked `sum` of the survivors `surv`
/// (0-based; central noise added here), and its report against `values`.
pub(crate) fn dp_release(
    params: &DpParams,
    enc: &secagg_dp::pipeline::DpEncoding,
    cost: &DpCost,
    values: &[Vec<f64>],
    surv: &[usize],
    mut sum: Vec<u64>,
    rng: &mut ChaCha20Rng,
) -> Result<(Aggregate, DpReport), String> {
    if params.placement == secagg_dp::pipeline::NoisePlacement::Central {
        enc.add_central_noise(&mut sum, rng).map_err(|e| e.0)?;
    }
    let total = enc.decode_sum(&sum).map_err(|e| e.0)?;
    let k = surv.len().max(1) as f64;
    let mean: Vec<f64> = total.iter().map(|v| v / k).collect();
    let dim = params.dim;
    let clipped: Vec<Vec<f64>> = surv
        .iter()
        .map(|&i| clip_l2(&values[i], params.clip))
        .collect();
    let want_clipped = mean_of(clipped.iter(), dim);
    let want_raw = mean_of(surv.iter().map(|&i| &values[i]), dim);
    let report = DpReport {
        epsilon: cost.eps.epsilon,
        order: cost.eps.order,
        epsilon_release_only: cost.eps_release.epsilon,
        delta: cost.delta,
        rounds: cost.rounds,
        scale: enc.scale(),
        padded_dim: enc.padded_dim(),
        rmse_vs_clipped: rmse(&mean, &want_clipped),
        rmse_vs_raw: rmse(&mean, &want_raw),
        expected_rmse: enc.expected_mean_error(surv.len() as u32),
    };
    let agg = Aggregate::Mean {
        mean,
        total_weight: surv.len() as u64,
    };
    Ok((agg, report))
}

/// Simulated clients check the round against the same assumptions the planner used, so a
/// malicious-model simulation exercises every client-side check.
pub(crate) fn client_policy(o: &RoundOptions) -> Option<secagg_core::client::Policy> {
    let a = o.assumptions;
    (a.model == secagg_core::ThreatModel::Malicious && !o.accept_weaker)
        .then(|| secagg_core::client::Policy::malicious(a.corrupt_fraction, a.dropout_fraction))
}

#[cfg(test)]
mod clip_tests {
    use super::clip_l2;

    #[test]
    fn clipping_a_huge_update_keeps_its_direction() {
        // Σx² overflows here; the clipped update must not be zeros.
        let c = clip_l2(&[3e200, -4e200], 1.0);
        assert!(
            (c[0] - 0.6).abs() < 1e-12 && (c[1] + 0.8).abs() < 1e-12,
            "{c:?}"
        );
        assert_eq!(clip_l2(&[3.0, 4.0], 10.0), vec![3.0, 4.0]);
        let c = clip_l2(&[3.0, 4.0], 1.0);
        assert!(
            (c[0] - 0.6).abs() < 1e-15 && (c[1] - 0.8).abs() < 1e-15,
            "{c:?}"
        );
        assert!(clip_l2(&[f64::NAN, 1.0], 1.0)[0].is_nan());
        assert!(clip_l2(&[f64::INFINITY, 1.0], 1.0)[0].is_nan());
    }
}
