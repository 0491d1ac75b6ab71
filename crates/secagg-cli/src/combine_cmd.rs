//! `secagg combine`: the global aggregate of a round run as cohorts, one `secagg server` per
//! cohort, from the results the servers wrote (`<data-dir>/rounds/<id>.json` and, when the
//! round released, `<id>.npy` beside it).
//!
//! What it checks, cohort by cohort, in this order (the first failed check is the recorded
//! reason for excluding the cohort):
//!
//! 1. **Released**: the round's `state` is `finished`. An aborted round is excluded with the
//!    reason its server recorded.
//! 2. **Size**: it has at least `--min-cohort-size` survivors (default: the cohort's own
//!    announced `min_clients`, or its `min_cohort_size` if the round records a larger one).
//! 3. **Same public parameters** as the other included cohorts (see [`PER_ROUND_KEYS`] for
//!    what is compared and why). The reference is the parameters shared by the most cohorts
//!    that passed 1 and 2 (ties: the group of the earliest `--cohort`), so one misconfigured
//!    shard is excluded rather than excluding all the others, whatever the argument order.
//!
//! Then, over the cohorts that remain:
//!
//! 4. **Disjoint survivors**: a client name among the survivors of two cohorts means that
//!    client's input would be counted twice (a client assigned to two shards, a replayed
//!    identity, or the same file given twice). That is not a failure of one shard but of the
//!    assignment, and dropping either cohort would be an arbitrary choice, so the whole
//!    combination is refused with an error naming the client and both cohorts: the operator
//!    decides which cohort to leave out and runs `combine` again without it.
//! 5. **Enough cohorts**: at least `--min-cohorts` (default 1) remain; otherwise the command
//!    fails and lists every exclusion's reason.
//!
//! The combination depends on the kind of round. Released cohorts of different kinds (say a
//! sum and a float mean) are refused outright: that is a mix-up of inputs, not one faulty
//! shard.
//!
//! - **Unsigned sums** (no `float`, no `dp`): each cohort's `.npy` holds its sum mod 2^b, a
//!   value below 2^b. The cohort sums are added as integers, *without* wrapping: C cohorts
//!   give at most C·(2^b − 1) < 2^(b + ⌈log2 C⌉), so the global sum needs
//!   `bits_needed = b + ⌈log2 C⌉` bits. It is written as uint64 when `bits_needed ≤ 64`, and
//!   refused otherwise (use fewer bits per cohort, or fewer cohorts). The size is decided from
//!   b and C before any value is read, so the output's dtype never depends on the data.
//! - **Float weighted means** (`float`): each server wrote the mean and its `total_weight`;
//!   the global mean is Σ w_i·mean_i / Σ w_i, exactly the weighted mean over all survivors.
//! - **DP means** (`dp`): each server wrote its private mean over its n_i survivors; the global
//!   mean is Σ n_i·mean_i / Σ n_i. Each cohort's noise was sized for that cohort's own
//!   minimum survivors, so each cohort's mean is private on its own; the report says so.
//!
//! Untrusted input never panics: a file that cannot be read or parsed, or whose contents
//! contradict its round JSON (length, dtype, a sum not below 2^b, a non-finite mean), is an
//! error naming the file.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use clap::Args;
use secagg_sim::npy::{self, NpyArray, NpyError};
use serde_json::{Map, Value, json};

/// Options of `secagg combine`.
#[derive(Args)]
pub struct CombineArgs {
    /// A round JSON written by `secagg server` (`<data-dir>/rounds/<id>.json`; its aggregate is
    /// the `.npy` of the same stem), or a directory: every `*.json` in its `rounds/` (or in
    /// the directory itself). Repeat for each cohort.
    #[arg(long = "cohort", required = true)]
    pub cohorts: Vec<PathBuf>,
    /// Where to write the global aggregate (.npy): uint64 for sums, float64 for means.
    #[arg(long)]
    pub output: PathBuf,
    /// Also write the report (cohorts included and excluded, with reasons) to this JSON file.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Fewest survivors a cohort must have to count (default: each cohort's announced
    /// min_clients).
    #[arg(long)]
    pub min_cohort_size: Option<u64>,
    /// Fewest cohorts that must remain; fewer is an error.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub min_cohorts: u64,
    /// Print the report as one JSON line on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Keys of a round's `parameters` that are *not* compared across cohorts, because they are
/// planned per round from its own number of clients or identify the round, and change
/// neither what a client computes from its input nor what the released aggregate means:
///
/// - `clients`, `k`, `t`, `min_clients`, `graph`: the cohort's size and its masking graph
///   (planned from n); the minimum size is checked separately (`--min-cohort-size`).
/// - `round_id`, `seed`, `cohort`, `cohort_index`: identifiers of one cohort. The
///   `global_round_id` (`secagg server --global-round-id`) *is* compared: a cohort of another
///   global round is a mix-up, and is excluded like any other mismatch.
///
/// Every other key is compared, including keys this version does not know (a key added later
/// may change the meaning of the aggregate, so an unknown difference excludes rather than
/// passes): `bits` (the modulus: what a sum means), `dim`, `threat` (what the protocol
/// guaranteed), `float` (`clip`, `max_weight`: the encoding clients apply), `dp` (noise kind,
/// placement, noise multiplier, clip, δ, sampling rate, the budget and population it was
/// accounted against: what the private mean's guarantee is), and `min_cohort_size` if a
/// round records the size its clients were promised.
pub const PER_ROUND_KEYS: [&str; 9] = [
    "clients",
    "k",
    "t",
    "min_clients",
    "graph",
    "round_id",
    "seed",
    "cohort",
    "cohort_index",
];

/// Keys inside `parameters.float` not compared: the fixed-point `scale` is the finest for the
/// round's own n (`n·w_max·clip·s < 2^(b−1)`), so it differs with the cohort's size; the
/// server decodes with it before writing the mean.
const FLOAT_PER_ROUND_KEYS: [&str; 1] = ["scale"];

/// Keys inside `parameters.dp` not compared: the scale γ depends on the round's n and minimum
/// survivors, and the ε ledger's state, the Rényi order and the expected error are outcomes
/// of the round, not parameters clients share.
const DP_PER_ROUND_KEYS: [&str; 5] = [
    "scale",
    "epsilon_before_round",
    "epsilon_after_round",
    "order",
    "expected_mean_rmse",
];

/// Why `combine` stopped.
#[derive(Debug)]
pub enum CombineError {
    /// A file or directory could not be read or written.
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        error: std::io::Error,
    },
    /// A round JSON is not valid JSON or not in the server's format.
    BadRoundJson {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A cohort's aggregate `.npy` is missing, malformed, or contradicts its round JSON.
    BadAggregate {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The same round JSON is named twice (directly or through a directory).
    DuplicateCohort {
        /// As first named.
        first: PathBuf,
        /// As named again.
        second: PathBuf,
    },
    /// Released cohorts of different kinds (sum, weighted mean, DP mean).
    MixedKinds {
        /// A cohort of the first kind.
        first: String,
        /// A cohort of another kind.
        second: String,
    },
    /// A directory given as `--cohort` holds no round JSON.
    EmptyDirectory(PathBuf),
    /// A client is among the survivors of two cohorts.
    OverlappingSurvivors {
        /// The client's name.
        name: String,
        /// The first cohort (path and round id).
        first: String,
        /// The second cohort.
        second: String,
    },
    /// Fewer cohorts than `--min-cohorts` remain.
    TooFewCohorts {
        /// How many remain.
        included: usize,
        /// How many are needed.
        needed: u64,
        /// Each excluded cohort and its reason.
        reasons: Vec<String>,
    },
    /// The global integer sum would not fit in uint64.
    SumTooWide {
        /// Bits of each cohort's sum.
        bits: u8,
        /// Cohorts included.
        cohorts: usize,
        /// b + ⌈log2 C⌉.
        bits_needed: u32,
    },
}

impl fmt::Display for CombineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CombineError::Io { path, error } => write!(f, "{}: {error}", path.display()),
            CombineError::BadRoundJson { path, why } => write!(
                f,
                "{}: not a round result of `secagg server`: {why}",
                path.display()
            ),
            CombineError::BadAggregate { path, why } => {
                write!(f, "{}: bad cohort aggregate: {why}", path.display())
            }
            CombineError::DuplicateCohort { first, second } => write!(
                f,
                "{} and {} are the same round result: each cohort is combined once",
                first.display(),
                second.display()
            ),
            CombineError::MixedKinds { first, second } => write!(
                f,
                "{first} and {second} released different kinds of result, which cannot be \
                 combined; nothing was combined"
            ),
            CombineError::EmptyDirectory(p) => write!(
                f,
                "{}: no round JSON (<id>.json) in it or in its rounds/",
                p.display()
            ),
            CombineError::OverlappingSurvivors {
                name,
                first,
                second,
            } => write!(
                f,
                "client {name:?} is a survivor of both {first} and {second}: its input would be \
                 counted twice; nothing was combined. Leave one of the two cohorts out (or fix \
                 the assignment of clients to cohorts) and combine again"
            ),
            CombineError::TooFewCohorts {
                included,
                needed,
                reasons,
            } => {
                write!(
                    f,
                    "only {included} cohort(s) can be combined, --min-cohorts is {needed}"
                )?;
                for r in reasons {
                    write!(f, "\n  excluded {r}")?;
                }
                Ok(())
            }
            CombineError::SumTooWide {
                bits,
                cohorts,
                bits_needed,
            } => write!(
                f,
                "{cohorts} cohort sums of {bits} bits need up to {bits_needed} bits \
                 (b + ⌈log2 C⌉) and may not fit in uint64: run the cohorts with --bits ≤ {} \
                 or combine fewer cohorts",
                64u32.saturating_sub(bits_needed - u32::from(*bits))
            ),
        }
    }
}

/// What a round released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The sum mod 2^b of unsigned inputs.
    Sum,
    /// The weighted mean of float inputs (`total_weight` recorded).
    WeightedMean,
    /// The differentially private mean over the survivors.
    DpMean,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Sum => "sum",
            Kind::WeightedMean => "weighted_mean",
            Kind::DpMean => "dp_mean",
        }
    }
}

/// One round JSON, as far as `combine` needs it.
struct Cohort {
    path: PathBuf,
    round_id: u64,
    released: bool,
    /// The server's reason when the round did not release.
    reason: Option<String>,
    survivors: Vec<String>,
    parameters: Map<String, Value>,
    kind: Kind,
    bits: u8,
    dim: usize,
    /// The cohort's own minimum: max(min_clients, min_cohort_size).
    announced_min: u64,
    total_weight: Option<u64>,
}

impl Cohort {
    fn label(&self) -> String {
        format!("{} (round {})", self.path.display(), self.round_id)
    }

    fn npy_path(&self) -> PathBuf {
        self.path.with_extension("npy")
    }

    /// The parameters compared across cohorts.
    fn compared(&self) -> Map<String, Value> {
        let mut p = self.parameters.clone();
        for k in PER_ROUND_KEYS {
            p.remove(k);
        }
        for (key, skip) in [
            ("float", &FLOAT_PER_ROUND_KEYS[..]),
            ("dp", &DP_PER_ROUND_KEYS[..]),
        ] {
            if let Some(Value::Object(o)) = p.get_mut(key) {
                for k in skip {
                    o.remove(*k);
                }
            }
        }
        p
    }

    /// The weight of this cohort's result in the combination (None for sums).
    fn weight(&self) -> Option<u64> {
        match self.kind {
            Kind::Sum => None,
            Kind::WeightedMean => self.total_weight,
            Kind::DpMean => Some(self.survivors.len() as u64),
        }
    }
}

fn bad_json(path: &Path, why: impl Into<String>) -> CombineError {
    CombineError::BadRoundJson {
        path: path.to_path_buf(),
        why: why.into(),
    }
}

fn bad_npy(path: &Path, why: impl Into<String>) -> CombineError {
    CombineError::BadAggregate {
        path: path.to_path_buf(),
        why: why.into(),
    }
}

/// Parses one round JSON (never panics on any bytes).
fn parse_cohort(path: &Path, bytes: &[u8]) -> Result<Cohort, CombineError> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| bad_json(path, e.to_string()))?;
    let obj = v
        .as_object()
        .ok_or_else(|| bad_json(path, "expected a JSON object"))?;
    let round_id = obj
        .get("round_id")
        .and_then(Value::as_u64)
        .ok_or_else(|| bad_json(path, "no round_id (an unsigned integer)"))?;
    let released = match obj.get("state").and_then(Value::as_str) {
        Some("finished") => true,
        Some("aborted") => false,
        Some(other) => {
            return Err(bad_json(
                path,
                format!("state {other:?} is neither finished nor aborted"),
            ));
        }
        None => return Err(bad_json(path, "no state")),
    };
    let reason = obj.get("reason").and_then(Value::as_str).map(String::from);
    let survivors = match obj.get("survivors") {
        Some(Value::Array(a)) => a
            .iter()
            .map(|s| {
                s.as_str()
                    .map(String::from)
                    .ok_or_else(|| bad_json(path, "survivors must be client names (strings)"))
            })
            .collect::<Result<Vec<_>, _>>()?,
        None | Some(Value::Null) if !released => Vec::new(),
        _ => return Err(bad_json(path, "no survivors list")),
    };
    let parameters = obj
        .get("parameters")
        .and_then(Value::as_object)
        .cloned()
        .ok_or_else(|| bad_json(path, "no parameters object"))?;
    let bits = parameters
        .get("bits")
        .and_then(Value::as_u64)
        .filter(|b| (1..=64).contains(b))
        .ok_or_else(|| bad_json(path, "parameters.bits must be in 1..=64"))?;
    let dim = parameters
        .get("dim")
        .and_then(Value::as_u64)
        .and_then(|d| usize::try_from(d).ok())
        .ok_or_else(|| bad_json(path, "parameters.dim must be an unsigned integer"))?;
    let min_clients = parameters
        .get("min_clients")
        .and_then(Value::as_u64)
        .ok_or_else(|| bad_json(path, "parameters.min_clients must be an unsigned integer"))?;
    let announced_min = parameters
        .get("min_cohort_size")
        .and_then(Value::as_u64)
        .map_or(min_clients, |m| m.max(min_clients));
    let present = |k: &str| parameters.get(k).is_some_and(|v| !v.is_null());
    let kind = if present("dp") {
        Kind::DpMean
    } else if present("float") {
        Kind::WeightedMean
    } else {
        Kind::Sum
    };
    let total_weight = match (kind, released) {
        (Kind::WeightedMean, true) => Some(
            obj.get("total_weight")
                .and_then(Value::as_u64)
                .filter(|w| *w > 0)
                .ok_or_else(|| {
                    bad_json(
                        path,
                        "a released float round needs its total_weight (a positive integer)",
                    )
                })?,
        ),
        _ => None,
    };
    Ok(Cohort {
        path: path.to_path_buf(),
        round_id,
        released,
        reason,
        survivors,
        parameters,
        kind,
        // In 1..=64 (checked above), so it fits a u8.
        bits: bits as u8,
        dim,
        announced_min,
        total_weight,
    })
}

/// The round JSONs a `--cohort` argument names: the file, or a directory's `rounds/*.json`
/// (or `*.json`), ordered by round id (numeric stems first), then name.
fn expand(path: &Path) -> Result<Vec<PathBuf>, CombineError> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let rounds = path.join("rounds");
    let dir = if rounds.is_dir() { rounds } else { path.into() };
    let io = |error| CombineError::Io {
        path: dir.clone(),
        error,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(io)? {
        let p = entry.map_err(io)?.path();
        if p.extension().is_some_and(|e| e == "json") && p.is_file() {
            files.push(p);
        }
    }
    if files.is_empty() {
        return Err(CombineError::EmptyDirectory(path.to_path_buf()));
    }
    let key = |p: &PathBuf| {
        let stem = p.file_stem().map(|s| s.to_string_lossy().into_owned());
        let id = stem.as_deref().and_then(|s| s.parse::<u64>().ok());
        (id.is_none(), id, p.clone())
    };
    files.sort_by_key(key);
    Ok(files)
}

fn load(path: &Path) -> Result<Cohort, CombineError> {
    let bytes = std::fs::read(path).map_err(|error| CombineError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    parse_cohort(path, &bytes)
}

/// A one-line description of how `p` differs from the reference `r`.
fn difference(p: &Map<String, Value>, r: &Map<String, Value>) -> String {
    let mut flat_p = BTreeMap::new();
    let mut flat_r = BTreeMap::new();
    flatten("", p, &mut flat_p);
    flatten("", r, &mut flat_r);
    let mut keys: Vec<&String> = flat_p.keys().chain(flat_r.keys()).collect();
    keys.sort();
    keys.dedup();
    let show = |v: Option<&Value>| v.map_or_else(|| "absent".to_string(), Value::to_string);
    let diffs: Vec<String> = keys
        .into_iter()
        .filter(|k| flat_p.get(*k) != flat_r.get(*k))
        .map(|k| {
            format!(
                "{k} is {} here but {} in the included cohorts",
                show(flat_p.get(k)),
                show(flat_r.get(k))
            )
        })
        .collect();
    diffs.join("; ")
}

fn flatten(prefix: &str, m: &Map<String, Value>, out: &mut BTreeMap<String, Value>) {
    for (k, v) in m {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Object(o) => flatten(&key, o, out),
            _ => {
                out.insert(key, v.clone());
            }
        }
    }
}

/// The outcome of the checks: which cohorts count, which do not and why.
struct Selection {
    included: Vec<Cohort>,
    excluded: Vec<(Cohort, String)>,
}

/// Applies checks 1–3 (see the module documentation); refuses released cohorts of different
/// kinds.
fn select(cohorts: Vec<Cohort>, min_cohort_size: Option<u64>) -> Result<Selection, CombineError> {
    let mut excluded = Vec::new();
    let mut candidates = Vec::new();
    for c in cohorts {
        if !c.released {
            let why = c
                .reason
                .clone()
                .unwrap_or_else(|| "no reason recorded".into());
            excluded.push((c, format!("the round did not release its aggregate: {why}")));
            continue;
        }
        let (min, from) = match min_cohort_size {
            Some(m) => (m, "--min-cohort-size"),
            None => (c.announced_min, "its announced minimum"),
        };
        let n = c.survivors.len() as u64;
        if n < min {
            excluded.push((
                c,
                format!("{n} survivors, fewer than the minimum cohort size {min} ({from})"),
            ));
            continue;
        }
        candidates.push(c);
    }
    if let Some(first) = candidates.first()
        && let Some(other) = candidates.iter().find(|c| c.kind != first.kind)
    {
        return Err(CombineError::MixedKinds {
            first: format!("{} ({})", first.label(), first.kind.name()),
            second: format!("{} ({})", other.label(), other.kind.name()),
        });
    }
    // The reference parameters: those of the most cohorts, ties to the earliest.
    let compared: Vec<Map<String, Value>> = candidates.iter().map(Cohort::compared).collect();
    let mut best: Option<(usize, usize)> = None; // (index of the first of the group, count)
    for (i, p) in compared.iter().enumerate() {
        if compared[..i].contains(p) {
            continue;
        }
        let count = compared.iter().filter(|q| *q == p).count();
        if best.is_none_or(|(_, c)| count > c) {
            best = Some((i, count));
        }
    }
    let mut included = Vec::new();
    let reference = best.and_then(|(i, _)| compared.get(i).cloned());
    for (c, p) in candidates.into_iter().zip(compared) {
        match &reference {
            Some(r) if *r != p => {
                let why = format!(
                    "its public parameters differ from the included cohorts': {}",
                    difference(&p, r)
                );
                excluded.push((c, why));
            }
            _ => included.push(c),
        }
    }
    Ok(Selection { included, excluded })
}

/// Check 4: every survivor name in at most one included cohort (and once in it).
fn check_disjoint(included: &[Cohort]) -> Result<(), CombineError> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, c) in included.iter().enumerate() {
        for name in &c.survivors {
            if let Some(&j) = seen.get(name.as_str()) {
                return Err(CombineError::OverlappingSurvivors {
                    name: name.clone(),
                    first: included[j].label(),
                    second: c.label(),
                });
            }
            seen.insert(name, i);
        }
    }
    Ok(())
}

/// ⌈log2 c⌉ for c ≥ 1.
fn ceil_log2(c: usize) -> u32 {
    c.max(1).next_power_of_two().trailing_zeros()
}

/// Reads a cohort's aggregate and checks it against its round JSON.
fn read_aggregate(c: &Cohort) -> Result<NpyArray, CombineError> {
    let path = c.npy_path();
    let arr = npy::read(&path).map_err(|e| match e {
        NpyError::Io(error) => CombineError::BadAggregate {
            why: format!(
                "cannot read it (a released round's .npy is written beside its JSON): {error}"
            ),
            path: path.clone(),
        },
        other => bad_npy(&path, other.to_string()),
    })?;
    if arr.len() != c.dim {
        return Err(bad_npy(
            &path,
            format!(
                "{} values, but its round JSON says dim {}",
                arr.len(),
                c.dim
            ),
        ));
    }
    let want_float = c.kind != Kind::Sum;
    if arr.is_float() != want_float {
        return Err(bad_npy(
            &path,
            format!(
                "dtype {} does not match a {} round",
                arr.dtype_name(),
                c.kind.name()
            ),
        ));
    }
    Ok(arr)
}

/// The combined aggregate and the figures the report gives about it.
struct Combined {
    array: NpyArray,
    bits_needed: Option<u32>,
    total_weight: Option<u64>,
}

fn combine(included: &[Cohort]) -> Result<Combined, CombineError> {
    let Some(first) = included.first() else {
        // select() and the --min-cohorts check (≥ 1) run before: never empty here.
        return Err(CombineError::TooFewCohorts {
            included: 0,
            needed: 1,
            reasons: Vec::new(),
        });
    };
    let (kind, bits, dim) = (first.kind, first.bits, first.dim);
    match kind {
        Kind::Sum => {
            let bits_needed = u32::from(bits) + ceil_log2(included.len());
            if bits_needed > 64 {
                return Err(CombineError::SumTooWide {
                    bits,
                    cohorts: included.len(),
                    bits_needed,
                });
            }
            let mut sum = vec![0u64; dim];
            for c in included {
                let path = c.npy_path();
                let values = read_aggregate(c)?.into_u64();
                for (i, (acc, v)) in sum.iter_mut().zip(values).enumerate() {
                    if bits < 64 && v >> bits != 0 {
                        return Err(bad_npy(
                            &path,
                            format!("value {v} at index {i} is not below 2^{bits}"),
                        ));
                    }
                    // Cannot overflow when bits_needed ≤ 64; checked all the same.
                    *acc = acc.checked_add(v).ok_or_else(|| {
                        bad_npy(&path, format!("the sum at index {i} overflows uint64"))
                    })?;
                }
            }
            Ok(Combined {
                array: NpyArray::U64(sum),
                bits_needed: Some(bits_needed),
                total_weight: None,
            })
        }
        Kind::WeightedMean | Kind::DpMean => {
            let mut acc = vec![0f64; dim];
            let mut total: u64 = 0;
            for c in included {
                let path = c.npy_path();
                let Some(w) = c.weight() else {
                    return Err(bad_json(&c.path, "no weight recorded"));
                };
                total = total
                    .checked_add(w)
                    .ok_or_else(|| bad_json(&c.path, "the total weight overflows u64"))?;
                let values = read_aggregate(c)?.into_f64();
                for (i, (a, v)) in acc.iter_mut().zip(values).enumerate() {
                    if !v.is_finite() {
                        return Err(bad_npy(
                            &path,
                            format!("value {v} at index {i} is not finite"),
                        ));
                    }
                    *a += w as f64 * v;
                }
            }
            if total == 0 {
                return Err(bad_json(
                    &first.path,
                    "the included cohorts' total weight is 0: the mean is undefined",
                ));
            }
            let t = total as f64;
            Ok(Combined {
                array: NpyArray::F64(acc.into_iter().map(|a| a / t).collect()),
                bits_needed: None,
                total_weight: Some(total),
            })
        }
    }
}

/// [`secagg_service::durable::write_durable`], with the path in the error.
fn write_durable(path: &Path, bytes: &[u8]) -> Result<(), CombineError> {
    secagg_service::durable::write_durable(path, bytes).map_err(|error| CombineError::Io {
        path: path.to_path_buf(),
        error,
    })
}

fn cohort_json(c: &Cohort) -> Value {
    json!({
        "path": c.path.display().to_string(),
        "round_id": c.round_id,
        "survivors": c.survivors.len(),
        "weight": c.weight(),
    })
}

fn report_json(
    a: &CombineArgs,
    sel: &Selection,
    combined: Option<&Combined>,
    error: Option<&CombineError>,
) -> Value {
    let kind = sel.included.first().map(|c| c.kind);
    let mut notes = vec![
        "the operator of each cohort's server learned that cohort's aggregate; the minimum \
         cohort size bounds what one cohort's aggregate reveals"
            .to_string(),
    ];
    if kind == Some(Kind::DpMean) {
        notes.push(
            "DP: each cohort's noise was sized for that cohort's own minimum survivors, so \
             each cohort's mean is private on its own; the global mean weights the cohort \
             means by their survivor counts (its noise is the same weighted average of \
             independent cohort noises). combine does no privacy accounting: the round is \
             charged by the servers (or once by the driver)"
                .to_string(),
        );
    }
    let excluded: Vec<Value> = sel
        .excluded
        .iter()
        .map(|(c, why)| {
            json!({
                "path": c.path.display().to_string(),
                "round_id": c.round_id,
                "reason": why,
            })
        })
        .collect();
    let mut r = json!({
        "ok": error.is_none() && combined.is_some(),
        "kind": kind.map(Kind::name),
        "cohorts_included": sel.included.iter().map(cohort_json).collect::<Vec<_>>(),
        "cohorts_excluded": excluded,
        "survivors": sel.included.iter().map(|c| c.survivors.len()).sum::<usize>(),
        "parameters": sel.included.first().map(Cohort::compared),
        "min_cohort_size": a.min_cohort_size,
        "min_cohorts": a.min_cohorts,
        "notes": notes,
    });
    if let Some(c) = combined {
        r["output"] = json!(a.output.display().to_string());
        r["dtype"] = json!(c.array.dtype_name());
        r["dim"] = json!(c.array.len());
        if let Some(b) = c.bits_needed {
            r["cohort_bits"] = json!(sel.included.first().map(|c| c.bits));
            r["bits_needed"] = json!(b);
        }
        if let Some(w) = c.total_weight {
            r["total_weight"] = json!(w);
        }
    }
    if let Some(e) = error {
        r["error"] = json!(e.to_string());
    }
    r
}

/// Runs `secagg combine`.
pub fn run(a: CombineArgs) -> Result<(), String> {
    run_inner(&a).map_err(|e| e.to_string())
}

/// What [`combine_and_report`] did: the selection, the combined aggregate (written), the
/// error found after the cohorts were read (the report, written too, says it), the report.
struct Done {
    sel: Selection,
    combined: Option<Combined>,
    error: Option<CombineError>,
    report: Value,
}

/// For library callers (the Python package's `secagg.combine`): writes what `secagg combine`
/// writes (the global aggregate, the report if `a.report` names a file), prints nothing, and
/// returns the report, or the error (the report file, when written, also says it).
pub fn combine_files(a: &CombineArgs) -> Result<Value, CombineError> {
    let done = combine_and_report(a)?;
    match done.error {
        Some(e) => Err(e),
        None => Ok(done.report),
    }
}

fn run_inner(a: &CombineArgs) -> Result<(), CombineError> {
    let Done {
        sel,
        combined,
        error,
        report,
    } = combine_and_report(a)?;
    if a.json {
        println!("{report}");
    } else if let Some(c) = &combined {
        let survivors: usize = sel.included.iter().map(|c| c.survivors.len()).sum();
        print!(
            "combined {} cohort(s), {survivors} survivors, into {} ({}",
            sel.included.len(),
            a.output.display(),
            c.array.dtype_name()
        );
        match (c.bits_needed, c.total_weight) {
            (Some(b), _) => println!(", sum of up to {b} bits)"),
            (None, Some(w)) => println!(", mean over total weight {w})"),
            (None, None) => println!(")"),
        }
        for (c, why) in &sel.excluded {
            println!("excluded {}: {why}", c.label());
        }
    }
    match error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn combine_and_report(a: &CombineArgs) -> Result<Done, CombineError> {
    let mut cohorts = Vec::new();
    let mut seen: HashMap<PathBuf, PathBuf> = HashMap::new();
    for p in &a.cohorts {
        for file in expand(p)? {
            let canonical = std::fs::canonicalize(&file).map_err(|error| CombineError::Io {
                path: file.clone(),
                error,
            })?;
            if let Some(before) = seen.insert(canonical, file.clone()) {
                return Err(CombineError::DuplicateCohort {
                    first: before,
                    second: file,
                });
            }
            cohorts.push(load(&file)?);
        }
    }
    let sel = select(cohorts, a.min_cohort_size)?;
    let outcome = check_disjoint(&sel.included).and_then(|()| {
        if (sel.included.len() as u64) < a.min_cohorts {
            return Err(CombineError::TooFewCohorts {
                included: sel.included.len(),
                needed: a.min_cohorts,
                reasons: sel
                    .excluded
                    .iter()
                    .map(|(c, why)| format!("{}: {why}", c.label()))
                    .collect(),
            });
        }
        combine(&sel.included)
    });
    let (combined, error) = match outcome {
        Ok(c) => (Some(c), None),
        Err(e) => (None, Some(e)),
    };
    if let Some(c) = &combined {
        let mut buf = Vec::new();
        npy::write(&mut buf, &c.array).map_err(|error| CombineError::Io {
            path: a.output.clone(),
            error,
        })?;
        write_durable(&a.output, &buf)?;
    }
    let report = report_json(a, &sel, combined.as_ref(), error.as_ref());
    if let Some(p) = &a.report {
        write_durable(p, format!("{report:#}\n").as_bytes())?;
    }
    Ok(Done {
        sel,
        combined,
        error,
        report,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceil_log2_bounds_the_sum() {
        assert_eq!(ceil_log2(1), 0);
        assert_eq!(ceil_log2(2), 1);
        assert_eq!(ceil_log2(3), 2);
        assert_eq!(ceil_log2(4), 2);
        assert_eq!(ceil_log2(5), 3);
        for c in 1u128..100 {
            for b in [1u32, 8, 31] {
                let worst = c * ((1u128 << b) - 1);
                assert!(worst < 1u128 << (b + ceil_log2(c as usize)));
            }
        }
    }

    #[test]
    fn parse_never_panics_on_odd_json() {
        let p = Path::new("x.json");
        for s in [
            "",
            "[]",
            "{}",
            "null",
            r#"{"round_id": -1}"#,
            r#"{"round_id": 1, "state": "finished"}"#,
            r#"{"round_id": 1, "state": "finished", "survivors": [1], "parameters": {}}"#,
            r#"{"round_id": 1, "state": "finished", "survivors": [], "parameters": {"bits": 99}}"#,
            r#"{"round_id": 1, "state": "finished", "survivors": [], "parameters": {"bits": 8, "dim": 2, "min_clients": 2, "float": {}}}"#,
        ] {
            assert!(parse_cohort(p, s.as_bytes()).is_err(), "{s}");
        }
    }
}
