//! One whole round from user inputs to a checked aggregate: what `secagg simulate` and the
//! Python `secagg.simulate` run.

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use secagg_core::encoding::{FloatEncoding, check_integer_sum};
use secagg_core::server::{Dropout, Outcome};
use secagg_core::{ClientId, Stage};

use crate::harness::{self, Report, Scenario};
use crate::plan::{Plan, RoundOptions, plan};

/// Client inputs.
#[derive(Debug, Clone)]
pub enum Inputs {
    /// Unsigned integers: the sum mod 2^b is computed.
    Unsigned(Vec<Vec<u64>>),
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
            Inputs::Float { values, .. } => values.len(),
        }
    }
    fn dims(&self) -> Vec<usize> {
        match self {
            Inputs::Unsigned(v) => v.iter().map(Vec::len).collect(),
            Inputs::Float { values, .. } => values.iter().map(Vec::len).collect(),
        }
    }
}

/// Random unsigned inputs that cannot wrap: each value below 2^b / n.
pub fn random_inputs(n: u32, dim: u32, bits: u8, seed: u64) -> Inputs {
    let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 0x05ee_d1a9_u64);
    let max = (((1u128 << bits) - 1) / n.max(1) as u128).max(1) as u64;
    Inputs::Unsigned(
        (0..n)
            .map(|_| {
                (0..dim)
                    .map(|_| rng.next_u64() % (max + 1).max(1))
                    .collect()
            })
            .collect(),
    )
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
    // Encode into Z_2^b.
    let (encoded, float): (Vec<Vec<u64>>, Option<FloatEncoding>) = match &inputs {
        Inputs::Unsigned(v) => {
            let max = v.iter().flat_map(|x| x.iter()).copied().max().unwrap_or(0);
            check_integer_sum(bits, n32, max).map_err(|e| e.0)?;
            (v.clone(), None)
        }
        Inputs::Float {
            values,
            weights,
            clip,
        } => {
            if weights.len() != n {
                return Err(format!("{} weights for {n} inputs", weights.len()));
            }
            if let Some((i, (j, x))) = values.iter().enumerate().find_map(|(i, v)| {
                v.iter()
                    .enumerate()
                    .find(|(_, x)| !x.is_finite())
                    .map(|p| (i, p))
            }) {
                return Err(format!(
                    "input {i} has a non-finite value {x} at index {j}: remove NaN/inf before aggregating"
                ));
            }
            let clip = match clip {
                Some(c) => *c,
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
            for (v, w) in values.iter().zip(weights) {
                out.push(enc.encode(v, *w, &mut rng).map_err(|e| e.0)?);
            }
            (out, Some(enc))
        }
    };
    let enc_dim = encoded[0].len();
    let mut ro = opts.round.clone();
    ro.clients = n32;
    ro.dim = u32::try_from(enc_dim).map_err(|_| format!("dimension {enc_dim} is too large"))?;
    let plan = plan(&ro)?;
    let drop_ids = choose_dropouts(n32, opts.dropout, opts.seed);
    let mut sc = Scenario::new(plan.config.clone(), opts.seed);
    if !drop_ids.is_empty() {
        sc.dropouts.push((opts.dropout_stage, drop_ids));
    }
    sc.on_stage = opts.on_stage.take();
    let report = harness::run(sc, encoded.clone())?;
    let (aggregate, aborted, survivors, aggregate_ok, mean_error) = match &report.outcome {
        Outcome::Aborted(r) => (None, Some(r.to_string()), Vec::new(), false, None),
        Outcome::Released {
            aggregate,
            survivors,
        } => {
            let expect = harness::plain_sum(&encoded, survivors.iter(), bits);
            let exact = *aggregate == expect;
            let surv: Vec<usize> = survivors.iter().map(|id| id as usize - 1).collect();
            match (&inputs, float) {
                (
                    Inputs::Float {
                        values,
                        weights,
                        clip: _,
                    },
                    Some(enc),
                ) => {
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
                _ => (
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
    })
}
