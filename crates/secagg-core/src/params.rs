//! Choosing and checking the neighbour degree k and Shamir threshold t for a threat model.
//!
//! For a Harary graph (SecAgg+, Bell et al. 2020) with n clients, a fraction α of corrupt
//! clients and δ of dropouts, (k, t) must make three bad events unlikely:
//! 1. the graph of honest survivors disconnects (probability < 2^-(σ+1));
//! 2. a client has more than c corrupt neighbours, where c is the bound on corrupt neighbours
//!    the threshold is chosen against (< 2^-(σ+1)/n per client);
//! 3. a client has fewer than t surviving neighbours, so the round fails (< 2^-η/n per client).
//!
//! with σ = 40 and η = 20, as in Google federated-compute's parameter finder, whose published
//! values this module reproduces (see the tests). The smallest even k that works is chosen, and
//! the smallest t it allows.
//!
//! **Honest-but-curious server.** The server asks each survivor for shares of b_v (v survived)
//! or s_v (v dropped), following the protocol, so the colluders learn a secret only if the c
//! corrupt holders alone have t shares: t > c.
//!
//! **Malicious server: count every holder.** Each client v Shamir-shares its self-mask seed b_v
//! and its mask key s_v among its k neighbours *and itself*: k + 1 holders. v is honest (it is
//! the victim), so at most c of the holders are corrupt and at least k + 1 - c are honest. An
//! honest holder answers one unmask request, with a share of b_v or of s_v, never both; v itself
//! reveals its own share of b_v when it survives, never of s_v. In a split-view attack the
//! server tells a set B of honest holders that v survived and a disjoint set S that v dropped,
//! and adds the c corrupt holders' shares of both secrets. It rebuilds both secrets (and so v's
//! unmasked input) iff |B| + c ≥ t and |S| + c ≥ t with |B| + |S| ≤ k + 1 - c, i.e. iff
//! 2(t - c) ≤ k + 1 - c, i.e. iff 2t ≤ k + 1 + c. So the threshold must satisfy
//!
//! > 2t > k + 1 + c, i.e. t ≥ ⌊(k + 1 + c)/2⌋ + 1 (which implies t > c).
//!
//! For the complete graph the holders are the n - 1 other clients and v itself, n in all, and
//! c = ⌊αn⌋, so t ≥ ⌊(n + c)/2⌋ + 1. Federated-compute's finder counts only the k neighbours
//! (t > (k + c)/2), one short of this bound whenever k + c is odd; the tests list the published
//! points that move.
//!
//! **Malicious server: minimum survivors.** The threshold alone does not stop a server from
//! finishing a round with t survivors, or with one honest victim and its colluders (whose sum
//! then is the victim's input). [`min_survivors_required`] gives the least `min_clients` a
//! malicious-model round may announce, and [`check_round`] is the one check both the server's
//! planner and every client's policy run on a round's (n, graph, k, t, min_clients).
//!
//! Every f64 function comes from `libm` so that the module works without `std`.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::config::MAX_CLIENTS;

/// Statistical security parameter σ: bad events have probability below 2^-σ.
pub const SECURITY_BITS: f64 = 40.0;
/// Correctness parameter η: a round fails with probability below 2^-η.
pub const CORRECTNESS_BITS: f64 = 20.0;
/// Tolerance that keeps floating-point rounding from flooring a product in the unsafe direction.
const EPS: f64 = 1e-14;

/// Whom the server is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ThreatModel {
    /// The server follows the protocol but looks at what it receives.
    HonestButCurious,
    /// The server may deviate from the protocol (semi-malicious in Bell et al.): clients need a
    /// PKI and the consistency check.
    Malicious,
}

/// What the parameters must withstand.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Assumptions {
    /// Largest fraction of clients that may be corrupt (colluding with the server).
    pub corrupt_fraction: f64,
    /// Largest fraction of clients expected to drop out.
    pub dropout_fraction: f64,
    /// The threat model.
    pub model: ThreatModel,
}

impl Default for Assumptions {
    fn default() -> Self {
        Self {
            corrupt_fraction: 0.05,
            dropout_fraction: 0.05,
            model: ThreatModel::HonestButCurious,
        }
    }
}

/// A degree and threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GraphParams {
    /// Neighbours per client, k.
    pub degree: u32,
    /// Shamir threshold, t.
    pub threshold: u32,
}

/// Why parameters were refused.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamError {
    /// The assumptions cannot be met by any parameters.
    Infeasible(String),
    /// No degree below n - 1 works (the caller may use the complete graph).
    NoParameters(String),
    /// Given parameters are weaker than the threat model needs.
    Insecure(String),
    /// Malformed parameters.
    Invalid(String),
}

impl core::fmt::Display for ParamError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ParamError::Infeasible(m)
            | ParamError::NoParameters(m)
            | ParamError::Insecure(m)
            | ParamError::Invalid(m) => f.write_str(m),
        }
    }
}

fn check_assumptions(n: u32, a: &Assumptions) -> Result<(), ParamError> {
    if n < 2 {
        return Err(ParamError::Invalid(format!(
            "a round needs at least 2 clients, got {n}"
        )));
    }
    let (al, de) = (a.corrupt_fraction, a.dropout_fraction);
    if !(0.0..1.0).contains(&al) || !(0.0..1.0).contains(&de) {
        return Err(ParamError::Invalid(format!(
            "corrupt and dropout fractions must be in [0, 1), got {al} and {de}"
        )));
    }
    match a.model {
        ThreatModel::HonestButCurious if al + de > 0.9 => Err(ParamError::Infeasible(format!(
            "corrupt + dropout fractions must be at most 0.9 for an honest-but-curious server, got {}",
            al + de
        ))),
        ThreatModel::Malicious if al + 2.0 * de > 0.9 => Err(ParamError::Infeasible(format!(
            "corrupt + 2 × dropout fractions must be at most 0.9 for a malicious server, got {}",
            al + 2.0 * de
        ))),
        _ => Ok(()),
    }
}

fn max_corrupt(n: u32, a: &Assumptions) -> u32 {
    libm::floor((a.corrupt_fraction + EPS) * n as f64) as u32
}
fn max_dropouts(n: u32, a: &Assumptions) -> u32 {
    libm::floor((a.dropout_fraction + EPS) * n as f64) as u32
}
fn min_survivors(n: u32, a: &Assumptions) -> u32 {
    libm::ceil((1.0 - a.dropout_fraction - EPS) * n as f64) as u32
}

fn ln_choose(a: f64, b: f64) -> f64 {
    libm::lgamma(a + 1.0) - libm::lgamma(b + 1.0) - libm::lgamma(a - b + 1.0)
}

/// Hypergeometric distribution: `draws` from a population of `total` with `marked` marked.
struct Hypergeometric {
    total: f64,
    marked: f64,
    draws: u32,
    lo: u32,
    hi: u32,
}

impl Hypergeometric {
    fn new(total: u32, marked: u32, draws: u32) -> Self {
        let lo = draws.saturating_sub(total - marked.min(total));
        Self {
            total: total as f64,
            marked: marked as f64,
            draws,
            lo,
            hi: draws.min(marked),
        }
    }

    fn pmf(&self, x: u32) -> f64 {
        if x < self.lo || x > self.hi {
            return 0.0;
        }
        let (x, k) = (x as f64, self.draws as f64);
        libm::exp(
            ln_choose(self.marked, x) + ln_choose(self.total - self.marked, k - x)
                - ln_choose(self.total, k),
        )
    }

    /// Smallest x with P[X > x] < q.
    fn upper_quantile(&self, q: f64) -> u32 {
        let mut tail = 0.0;
        let mut x = self.hi;
        // tail = P[X > x]; step down while adding pmf(x) keeps it below q.
        while x > self.lo {
            let next = tail + self.pmf(x);
            if next >= q {
                break;
            }
            tail = next;
            x -= 1;
        }
        x
    }

    /// Smallest x with P[X ≤ x] ≥ q (one more than the largest x with P[X ≤ x] < q, where
    /// x = lo - 1 has probability 0).
    fn lower_quantile_plus_one(&self, q: f64) -> u32 {
        let mut cdf = 0.0;
        for x in self.lo..=self.hi {
            cdf += self.pmf(x);
            if cdf >= q {
                return x;
            }
        }
        self.hi
    }
}

/// ln of a union bound on the probability that the Harary graph H(k, n) minus B bad nodes is
/// disconnected: that needs two disjoint runs of k/2 consecutive bad nodes on the ring.
fn ln_prob_disconnected(n: u32, k: u32, bad: u32) -> f64 {
    if k > bad {
        return f64::NEG_INFINITY;
    }
    let (n, k, b) = (n as f64, k as f64, bad as f64);
    libm::log(n) + libm::log(n - k - 1.0) - libm::log(2.0)
        + libm::lgamma(b + 1.0)
        + libm::lgamma(n - k + 1.0)
        - libm::lgamma(n + 1.0)
        - libm::lgamma(b - k + 1.0)
}

/// The analysis of one degree: whether its graph stays connected and the range of thresholds.
struct DegreeAnalysis {
    connected: bool,
    /// A client has more corrupt neighbours than this with probability below 2^-(σ+1)/n.
    corrupt_neighbours: u32,
    /// Thresholds must exceed this for security.
    t_secure_above: u32,
    /// Thresholds up to this keep the abort probability below 2^-η.
    t_correct_max: u32,
}

fn analyse(n: u32, k: u32, a: &Assumptions) -> DegreeAnalysis {
    let corrupt = max_corrupt(n, a);
    let bad = corrupt + max_dropouts(n, a);
    let per_event = SECURITY_BITS + 1.0;
    let connected = ln_prob_disconnected(n, k, bad) < -per_event * core::f64::consts::LN_2;
    let adv = Hypergeometric::new(n, corrupt, k);
    let q1 = libm::pow(2.0, -per_event) / n as f64;
    // c: a client has more than c corrupt neighbours with probability below q1.
    let c = adv.upper_quantile(q1);
    let t1 = match a.model {
        ThreatModel::HonestButCurious => c,
        // k + 1 holders (the neighbours and the client itself): 2t > k + 1 + c (module doc).
        ThreatModel::Malicious => split_view_bound(k.saturating_add(1), c),
    };
    let surv = Hypergeometric::new(n, min_survivors(n, a), k);
    let q2 = libm::pow(2.0, -CORRECTNESS_BITS) / n as f64;
    // t may be at most 1 + the largest x with P[survivors ≤ x] < q2.
    let t2 = surv.lower_quantile_plus_one(q2);
    DegreeAnalysis {
        connected,
        corrupt_neighbours: c,
        t_secure_above: t1,
        t_correct_max: t2,
    }
}

/// Chooses (k, t) for a Harary graph: the smallest even degree that is secure and correct under
/// `a`, with the smallest threshold it allows. If no degree below n - 1 works, returns the
/// complete graph (degree n - 1) with its threshold, so small rounds just work.
pub fn choose_harary(n: u32, a: &Assumptions) -> Result<GraphParams, ParamError> {
    check_assumptions(n, a)?;
    let mut k = 2;
    while k < n.saturating_sub(1) {
        let an = analyse(n, k, a);
        if an.connected && an.t_correct_max > an.t_secure_above {
            return Ok(GraphParams {
                degree: k,
                threshold: (an.t_secure_above + 1).max(2),
            });
        }
        k += 2;
    }
    Ok(GraphParams {
        degree: n - 1,
        threshold: choose_complete_threshold(n, a)?,
    })
}

/// The largest threshold a split-view attack defeats when a secret has `holders` holders, `c`
/// of them corrupt: ⌊(holders + c)/2⌋ (secure thresholds are above it, module doc). Also the
/// largest number of consistency signatures two different survivor sets can both collect
/// among `holders` clients, `c` of them corrupt.
fn split_view_bound(holders: u32, c: u32) -> u32 {
    let b = (u64::from(holders) + u64::from(c.min(holders))) / 2;
    u32::try_from(b).unwrap_or(u32::MAX).max(c)
}

/// ⌊(n + c)/2⌋ + 1 with c = ⌊αn⌋: more than any two different survivor sets (or split views
/// of one client's n holders) can both gather.
fn malicious_quorum(n: u32, a: &Assumptions) -> u32 {
    split_view_bound(n, max_corrupt(n, a)).saturating_add(1)
}

fn complete_min_threshold(n: u32, a: &Assumptions) -> u32 {
    let t = match a.model {
        // More shares than the corrupt clients hold together.
        ThreatModel::HonestButCurious => {
            (libm::ceil(a.corrupt_fraction * n as f64 - EPS) as u32).saturating_add(1)
        }
        // n holders: the n - 1 others and the client itself; 2t > n + c (module doc).
        ThreatModel::Malicious => malicious_quorum(n, a),
    };
    t.max(2)
}

/// The least `min_clients` (survivors a round needs before it unmasks, and consistency
/// signatures each client needs before it answers) a round of `n` clients may announce under
/// `a`.
///
/// - Honest-but-curious server: 2, the floor of any threshold; the round also needs at least
///   t survivors, so planners use the larger of this and t.
/// - Malicious server: the larger of
///   - ⌈(1 - δ)·n⌉: SecAgg+ (Bell et al. 2020) promises a sum over at least (1 - α - δ)·n honest
///     clients; a server that may finish with fewer survivors could finish with one honest
///     victim and its colluders, and their sum is the victim's input;
///   - ⌊(n + c)/2⌋ + 1 with c = ⌊αn⌋: a consistency quorum. Each honest client signs one
///     survivor set U3, the c corrupt ones sign anything, so two different sets cannot both
///     collect this many signatures (2m > n + c; the same bound as the complete graph's
///     threshold).
///
/// Never panics: out-of-range fractions (which [`check_round`] refuses) are clamped into
/// [0, 1], NaN to 0. The result is at least 2, and at most n when n ≥ 2 and α < 1.
pub fn min_survivors_required(n: u32, a: &Assumptions) -> u32 {
    match a.model {
        ThreatModel::HonestButCurious => 2,
        ThreatModel::Malicious => {
            let clamp = |f: f64| if f.is_nan() { 0.0 } else { f.clamp(0.0, 1.0) };
            let a = Assumptions {
                corrupt_fraction: clamp(a.corrupt_fraction),
                dropout_fraction: clamp(a.dropout_fraction),
                model: a.model,
            };
            min_survivors(n, &a).max(malicious_quorum(n, &a)).max(2)
        }
    }
}

/// The smallest secure threshold for the complete graph (every client shares with all n - 1
/// others).
pub fn choose_complete_threshold(n: u32, a: &Assumptions) -> Result<u32, ParamError> {
    check_assumptions(n, a)?;
    let t = complete_min_threshold(n, a);
    let max_ok = (n - 1).min(n - max_dropouts(n, a));
    if t > max_ok {
        return Err(ParamError::Infeasible(format!(
            "with {n} clients no threshold is both secure (≥ {t}) and reachable by the survivors \
             (≤ {max_ok}); invite more clients or lower the assumed fractions"
        )));
    }
    Ok(t)
}

/// Checks user-given Harary parameters. `Ok(warnings)` when secure (a warning says the abort
/// risk is above 2^-20); `Err(Insecure)` when weaker than the model needs.
///
/// Accepting takes time linear in the degree. A refusal also names the (k, t) that
/// [`choose_harary`] recommends, a search quadratic in the degree it finds: milliseconds for
/// the usual assumptions, seconds for a million clients with large fractions (30% corrupt and
/// 30% dropouts against a malicious server).
pub fn check_harary(
    n: u32,
    degree: u32,
    threshold: u32,
    a: &Assumptions,
) -> Result<Vec<String>, ParamError> {
    check_assumptions(n, a)?;
    if degree % 2 == 1 || degree == 0 || degree >= n - 1 {
        return Err(ParamError::Invalid(format!(
            "a Harary graph needs an even degree (k/2 neighbours on each side) below n - 1 = {}, \
             got {degree}; Flower's num_shares = k + 1 counts the client itself, so its 21 is \
             --degree 20",
            n - 1
        )));
    }
    if threshold < 2 || threshold > degree {
        return Err(ParamError::Invalid(format!(
            "the threshold must be in 2..={degree} (the degree), got {threshold}"
        )));
    }
    // Only computed for a refusal: a client checks announced parameters with this.
    let recommended = || match choose_harary(n, a) {
        Ok(p) => format!(
            " (recommended for {n} clients: k/t = {}/{})",
            p.degree, p.threshold
        ),
        Err(_) => String::new(),
    };
    let an = analyse(n, degree, a);
    let pct = |f: f64| f * 100.0;
    if !an.connected {
        return Err(ParamError::Insecure(format!(
            "degree {degree} is too low: with {}% corrupt and {}% dropped clients the neighbour \
             graph of honest survivors can split with probability above 2^-41, so use a larger \
             --degree{}",
            pct(a.corrupt_fraction),
            pct(a.dropout_fraction),
            recommended()
        )));
    }
    if threshold <= an.t_secure_above {
        let why = match a.model {
            ThreatModel::HonestButCurious => format!(
                "with {}% corrupt clients a client can have {} colluding neighbours among \
                 {degree} with probability above 2^-41/n",
                pct(a.corrupt_fraction),
                an.corrupt_neighbours
            ),
            ThreatModel::Malicious => format!(
                "with {}% corrupt clients and a malicious server, a client's {} share holders \
                 (its {degree} neighbours and itself) can include {} colluders with probability \
                 above 2^-41/n, and a server that shows different survivor sets to different \
                 holders then gathers {} shares of both its secrets (a threshold t needs \
                 2t > k + 1 + colluders)",
                pct(a.corrupt_fraction),
                u64::from(degree) + 1,
                an.corrupt_neighbours,
                an.t_secure_above
            ),
        };
        return Err(ParamError::Insecure(format!(
            "threshold {threshold} is too low: {why}; use --threshold ≥ {}{}",
            an.t_secure_above.saturating_add(1),
            recommended()
        )));
    }
    let mut warnings = Vec::new();
    if threshold > an.t_correct_max {
        warnings.push(format!(
            "threshold {threshold} risks aborting: with {}% dropouts a client may keep fewer than \
             {threshold} of its {degree} neighbours with probability above 2^-20/n",
            pct(a.dropout_fraction)
        ));
    }
    Ok(warnings)
}

/// Checks a user-given threshold for the complete graph.
pub fn check_complete(n: u32, threshold: u32, a: &Assumptions) -> Result<Vec<String>, ParamError> {
    check_assumptions(n, a)?;
    if threshold < 2 || threshold > n - 1 {
        return Err(ParamError::Invalid(format!(
            "the threshold must be in 2..={} (n - 1), got {threshold}",
            n - 1
        )));
    }
    let t_min = complete_min_threshold(n, a);
    if threshold < t_min {
        let why = match a.model {
            ThreatModel::HonestButCurious => format!(
                "the {}% corrupt clients could hold {} shares together",
                a.corrupt_fraction * 100.0,
                t_min - 1
            ),
            ThreatModel::Malicious => format!(
                "a malicious server needs a threshold above (n + corrupt clients)/2: each secret \
                 has n = {n} holders (the {} others and the client itself), up to {} of them \
                 colluding, and a server that shows different survivor sets to different \
                 holders could gather {} shares of both secrets of one client",
                n - 1,
                max_corrupt(n, a),
                t_min - 1
            ),
        };
        return Err(ParamError::Insecure(format!(
            "threshold {threshold} is too low for {n} clients: {why}; use --threshold ≥ {t_min}"
        )));
    }
    let mut warnings = Vec::new();
    let survivors = n - max_dropouts(n, a);
    if threshold > survivors {
        warnings.push(format!(
            "threshold {threshold} risks aborting: with {}% dropouts only {survivors} clients may remain",
            a.dropout_fraction * 100.0
        ));
    }
    Ok(warnings)
}

/// The one check of a round's parameters, run by the server's planner on what it will announce
/// and by every client's policy (with the client's own assumptions) on what a server announced.
///
/// `complete` says the graph is complete; a Harary `degree` of n - 1 counts as complete too.
/// Runs [`check_complete`] or [`check_harary`], checks that `min_clients` is in threshold..=n,
/// and in the malicious model refuses `min_clients` below [`min_survivors_required`]. Refuses
/// n above [`MAX_CLIENTS`] as `RoundConfig::validate` does, which also bounds the time the
/// check takes (see [`check_harary`]).
///
/// `Ok(warnings)` when secure (warnings say a round risks aborting); `Err(Insecure)` when
/// weaker than `a` needs; `Err(Invalid)` or `Err(Infeasible)` for parameters or assumptions no
/// round can have (malformed parameters are reported before weak ones). Never panics,
/// whatever the input.
pub fn check_round(
    n: u32,
    complete: bool,
    degree: u32,
    threshold: u32,
    min_clients: u32,
    a: &Assumptions,
) -> Result<Vec<String>, ParamError> {
    check_assumptions(n, a)?;
    if n > MAX_CLIENTS {
        return Err(ParamError::Invalid(format!(
            "a round has at most {MAX_CLIENTS} clients, got {n}"
        )));
    }
    if degree > n - 1 {
        return Err(ParamError::Invalid(format!(
            "a client has at most n - 1 = {} neighbours, got degree {degree}",
            n - 1
        )));
    }
    if complete && degree != n - 1 {
        return Err(ParamError::Invalid(format!(
            "a complete graph has degree n - 1 = {}, got {degree}",
            n - 1
        )));
    }
    if min_clients > n {
        return Err(ParamError::Invalid(format!(
            "min_clients must be at most the {n} clients, got {min_clients}"
        )));
    }
    let graph = if degree == n - 1 {
        check_complete(n, threshold, a)
    } else {
        check_harary(n, degree, threshold, a)
    };
    // Malformed parameters are refused before weak ones, so that a caller that accepts weaker
    // parameters never accepts malformed ones.
    if let Err(e) = &graph
        && !matches!(e, ParamError::Insecure(_))
    {
        return graph;
    }
    if min_clients < threshold {
        return Err(ParamError::Invalid(format!(
            "min_clients must be at least the threshold {threshold} (a round with fewer \
             survivors cannot unmask), got {min_clients}"
        )));
    }
    let mut warnings = graph?;
    if a.model == ThreatModel::Malicious {
        let needed = min_survivors_required(n, a);
        if min_clients < needed {
            let (dropout_bound, quorum) = (min_survivors(n, a), malicious_quorum(n, a));
            return Err(ParamError::Insecure(format!(
                "min_clients {min_clients} is too low for a malicious server: with {n} clients, \
                 {}% corrupt and {}% dropouts a round must not unmask with fewer than {needed} \
                 survivors ({dropout_bound} = ⌈(1 - dropouts)·n⌉ so that the sum covers at least \
                 (1 - corrupt - dropouts)·n honest clients, not one victim and its colluders; \
                 {quorum} = ⌊(n + corrupt clients)/2⌋ + 1 so that two different survivor sets \
                 cannot both collect enough consistency signatures); use min_clients ≥ {needed}",
                a.corrupt_fraction * 100.0,
                a.dropout_fraction * 100.0,
            )));
        }
    }
    let survivors = n - max_dropouts(n, a).min(n);
    if min_clients > survivors && min_clients > threshold {
        warnings.push(format!(
            "min_clients {min_clients} risks aborting: with {}% dropouts only {survivors} clients \
             may remain",
            a.dropout_fraction * 100.0
        ));
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn a(corrupt: f64, dropout: f64, model: ThreatModel) -> Assumptions {
        Assumptions {
            corrupt_fraction: corrupt,
            dropout_fraction: dropout,
            model,
        }
    }
    use ThreatModel::{HonestButCurious as H, Malicious as M};

    /// Google federated-compute's published (n, α, δ, model) → (k, t).
    const PUBLISHED: &[(u32, f64, f64, ThreatModel, u32, u32)] = &[
        (1000, 0.05, 0.05, H, 30, 17),
        (1000, 0.05, 0.05, M, 52, 37),
        (10_000, 0.05, 0.05, H, 34, 20),
        (10_000, 0.05, 0.05, M, 62, 44),
        (1_000_000, 0.05, 0.05, H, 38, 22),
        (1_000_000, 0.05, 0.05, M, 74, 52),
        (100, 0.45, 0.45, H, 92, 46),
        (1000, 0.45, 0.45, H, 822, 417),
        (10, 0.33, 0.33, H, 8, 4),
        (100, 0.33, 0.33, H, 68, 34),
        (1000, 0.33, 0.33, H, 286, 150),
        (10_000, 0.33, 0.33, H, 422, 221),
        (100, 0.3, 0.3, M, 92, 62),
        (1000, 0.3, 0.3, M, 872, 584),
        (100, 0.05, 0.33, H, 28, 6),
        (1000, 0.05, 0.33, H, 72, 24),
        (10_000, 0.05, 0.33, H, 86, 29),
        (100, 0.05, 0.33, M, 72, 39),
        (1000, 0.05, 0.33, M, 398, 223),
        (100, 0.33, 0.05, H, 34, 29),
        (1000, 0.33, 0.05, H, 78, 60),
        (1000, 0.33, 0.05, M, 132, 109),
    ];

    /// Published malicious points where counting the client itself as a holder moves (k, t):
    /// (n, α, δ, published k, published t, our k, our t). Federated-compute's finder requires
    /// t > (k + c)/2 for k holders; with the k + 1 holders a client really has (its neighbours
    /// and itself) the split-view bound is t > (k + 1 + c)/2, one more whenever the bound c on
    /// corrupt neighbours is odd (k is even). At these points the published threshold is then
    /// one too low for its degree, and no threshold of that degree both is secure and keeps the
    /// abort risk below 2^-20, so the degree grows too. The other published points (c even,
    /// and every honest-but-curious point) are reproduced exactly.
    const MOVED_BY_COUNTING_THE_CLIENT: &[(u32, f64, f64, u32, u32, u32, u32)] = &[
        // +4/+3
        (1_000_000, 0.05, 0.05, 74, 52, 78, 55),
        // +4/+3
        (1000, 0.3, 0.3, 872, 584, 876, 587),
        // +2/+2
        (100, 0.05, 0.33, 72, 39, 74, 41),
        // +6/+5
        (1000, 0.33, 0.05, 132, 109, 138, 114),
    ];

    #[test]
    fn reproduces_published_values() {
        let mut mismatches = Vec::new();
        for &(n, al, de, m, k, t) in PUBLISHED {
            let p = choose_harary(n, &a(al, de, m)).unwrap();
            let moved = MOVED_BY_COUNTING_THE_CLIENT
                .iter()
                .find(|r| m == M && (r.0, r.1, r.2, r.3, r.4) == (n, al, de, k, t));
            let bad = match moved {
                Some(r) => (p.degree, p.threshold) != (r.5, r.6),
                None => p.degree.abs_diff(k) > 2 || p.threshold.abs_diff(t) > 2,
            };
            if bad {
                mismatches.push(format!(
                    "n={n} α={al} δ={de} {m:?}: got {p:?}, published {k}/{t}, moved: {moved:?}"
                ));
            }
        }
        assert!(mismatches.is_empty(), "{mismatches:#?}");
    }

    #[test]
    fn published_points_that_miss_a_holder_are_refused() {
        for &(n, al, de, k, t, _, _) in MOVED_BY_COUNTING_THE_CLIENT {
            let e = check_harary(n, k, t, &a(al, de, M)).unwrap_err();
            assert!(matches!(e, ParamError::Insecure(_)), "{e}");
            assert!(e.to_string().contains("2t > k + 1"), "{e}");
            assert!(e.to_string().contains(&format!("≥ {}", t + 1)), "{e}");
        }
    }

    /// The split-view bound by brute force: the largest t for which disjoint honest sets B
    /// (asked for b_v) and S (asked for s_v), with the c corrupt holders' shares of both, reach
    /// t shares of each secret.
    #[test]
    fn split_view_bound_matches_brute_force() {
        for holders in 1..=40u32 {
            for c in 0..holders {
                let honest = holders - c;
                let attackable = (1..=holders)
                    .filter(|&t| {
                        (0..=honest).any(|b| (0..=honest - b).any(|s| b + c >= t && s + c >= t))
                    })
                    .max()
                    .unwrap_or(0);
                assert_eq!(split_view_bound(holders, c), attackable, "{holders} {c}");
            }
        }
        // The complete graph: n holders.
        for n in 2..=60 {
            let am = a(0.1, 0.05, M);
            let c = max_corrupt(n, &am);
            let t = complete_min_threshold(n, &am);
            assert!(
                2 * t > n + c && (t <= 2 || 2 * (t - 1) <= n + c),
                "{n}: {t}"
            );
        }
    }

    #[test]
    fn exact_on_the_headline_points() {
        for &(n, al, de, m, k, t) in &PUBLISHED[..4] {
            let p = choose_harary(n, &a(al, de, m)).unwrap();
            assert_eq!((p.degree, p.threshold), (k, t), "n={n} {m:?}");
        }
    }

    #[test]
    fn checks_refuse_weaker_parameters_and_say_what_is_needed() {
        let d = Assumptions::default();
        let e = check_harary(1000, 20, 11, &d).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, ParamError::Insecure(_)), "{msg}");
        assert!(msg.contains("30/17"), "{msg}");
        assert!(check_harary(1000, 30, 17, &d).unwrap().is_empty());
        // Correctness risk is a warning, not a refusal.
        assert!(!check_harary(1000, 30, 30, &d).unwrap().is_empty());
        assert!(check_complete(100, 51, &d).is_ok());
        // n = 100 holders, 5 corrupt: 2t > 105.
        let e = check_complete(100, 52, &a(0.05, 0.05, M)).unwrap_err();
        assert!(e.to_string().contains("≥ 53"), "{e}");
        assert!(check_complete(100, 53, &a(0.05, 0.05, M)).is_ok());
        assert!(matches!(
            check_complete(100, 5, &d),
            Err(ParamError::Insecure(_))
        ));
    }

    #[test]
    fn min_survivors_in_the_malicious_model() {
        let m = a(0.05, 0.05, M);
        // ⌈0.95 · 1000⌉ = 950 > ⌊1050/2⌋ + 1 = 526.
        assert_eq!(min_survivors_required(1000, &m), 950);
        assert_eq!(min_survivors_required(100, &m), 95);
        assert_eq!(min_survivors_required(100, &a(0.05, 0.33, M)), 67);
        // The consistency quorum dominates only when δ > (1 - α)/2, which α + 2δ ≤ 0.9 rules
        // out; ⌊(100 + 33)/2⌋ + 1 = 67 > ⌈0.6 · 100⌉.
        assert_eq!(min_survivors_required(100, &a(0.33, 0.4, M)), 67);
        assert_eq!(min_survivors_required(1000, &a(0.05, 0.05, H)), 2);
        for n in 2..=300 {
            for (al, de) in [
                (0.0, 0.0),
                (0.05, 0.05),
                (0.3, 0.3),
                (0.89, 0.0),
                (0.0, 0.45),
            ] {
                let am = a(al, de, M);
                let r = min_survivors_required(n, &am);
                let c = max_corrupt(n, &am);
                assert!((2..=n).contains(&r), "{n} {al} {de}: {r}");
                // Two survivor sets cannot both gather r signatures...
                assert!(2 * r > n + c, "{n} {al} {de}: {r}");
                // ...and at least (1 - α - δ)·n of the survivors are honest.
                assert!(f64::from(r - c) >= (1.0 - al - de) * f64::from(n) - 1e-9);
            }
        }
    }

    #[test]
    fn check_round_refuses_too_few_survivors_for_a_malicious_server() {
        let m = a(0.05, 0.05, M);
        let p = choose_harary(1000, &m).unwrap();
        // Finding 2: 37 of 1,000 clients (below the 50 corrupt ones assumed) is not a round.
        let e = check_round(1000, false, p.degree, p.threshold, p.threshold, &m).unwrap_err();
        assert!(matches!(e, ParamError::Insecure(_)), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("min_clients ≥ 950") && msg.contains("consistency"),
            "{msg}"
        );
        assert!(
            check_round(1000, false, p.degree, p.threshold, 950, &m)
                .unwrap()
                .is_empty()
        );
        assert!(check_round(1000, false, p.degree, p.threshold, 949, &m).is_err());
        // Above the survivors the dropouts leave: allowed, with a warning.
        assert_eq!(
            check_round(1000, false, p.degree, p.threshold, 951, &m)
                .unwrap()
                .len(),
            1
        );
        // The honest-but-curious model only needs t.
        let h = Assumptions::default();
        let p = choose_harary(1000, &h).unwrap();
        assert!(check_round(1000, false, p.degree, p.threshold, p.threshold, &h).is_ok());
        // The complete graph, given as complete or as a Harary degree of n - 1.
        let t = choose_complete_threshold(100, &m).unwrap();
        assert_eq!(t, 53);
        assert!(check_round(100, true, 99, t, 95, &m).is_ok());
        assert!(check_round(100, false, 99, t, 95, &m).is_ok());
        assert!(matches!(
            check_round(100, true, 99, t, 94, &m),
            Err(ParamError::Insecure(_))
        ));
        assert!(matches!(
            check_round(100, true, 99, 52, 95, &m),
            Err(ParamError::Insecure(_))
        ));
        // Malformed before weak: a caller that accepts weaker parameters never runs these.
        for (complete, k, t, mc) in [
            (true, 98, 60, 95),
            (false, 100, 60, 95),
            (false, 20, 11, 101),
            (false, 20, 11, 10),
            (true, 99, 5, 101),
        ] {
            assert!(
                matches!(
                    check_round(100, complete, k, t, mc, &m),
                    Err(ParamError::Invalid(_))
                ),
                "{complete} {k} {t} {mc}"
            );
        }
    }

    /// Clients run `check_round` on whatever a server announces, with their own assumptions:
    /// no input may panic, and whatever it accepts is a well-formed, secure round.
    #[test]
    fn check_round_never_panics() {
        let big = [
            1000,
            MAX_CLIENTS - 1,
            MAX_CLIENTS,
            MAX_CLIENTS + 1,
            u32::MAX - 1,
            u32::MAX,
        ];
        let small = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 21, 100];
        // A refusal recommends parameters, whose search takes seconds for a million clients
        // and large fractions (see `check_harary`): those fractions are tried on small n only.
        let cheap = [
            (0.05, 0.05),
            (0.0, 0.0),
            (f64::NAN, 0.05),
            (0.05, f64::NAN),
            (f64::NAN, f64::NAN),
            (-0.0, -0.0),
            (-0.5, 0.05),
            (0.05, -1e-300),
            (1.0, 0.0),
            (0.0, 1.0),
            (f64::INFINITY, 0.0),
            (0.0, f64::NEG_INFINITY),
            (0.5, 0.5),
            (0.9, 0.05),
            (f64::MIN_POSITIVE, 1.0 - f64::EPSILON),
        ];
        let slow = [
            (0.33, 0.05),
            (0.89, 0.0),
            (0.3, 0.3),
            (0.45, 0.45),
            (0.0, 0.45),
            (0.05, 0.33),
        ];
        let mut accepted = 0;
        for (n, fractions) in small
            .iter()
            .map(|n| (*n, [&cheap[..], &slow[..]].concat()))
            .chain(big.iter().map(|n| (*n, cheap.to_vec())))
        {
            let degrees = [
                0,
                1,
                2,
                3,
                (n / 2) & !1,
                n.saturating_sub(2),
                n.saturating_sub(1),
                n,
                n.saturating_add(1),
                u32::MAX,
            ];
            for (al, de) in fractions {
                for model in [H, M] {
                    let am = a(al, de, model);
                    let floor = min_survivors_required(n, &am);
                    assert!(floor >= 2);
                    let _ = choose_complete_threshold(n, &am);
                    let _ = choose_harary(n, &am);
                    for degree in degrees {
                        let thresholds = [
                            0,
                            1,
                            2,
                            degree / 2 + 1,
                            degree.saturating_sub(1),
                            degree,
                            degree.saturating_add(1),
                            u32::MAX,
                        ];
                        for t in thresholds {
                            let mins = [
                                0,
                                1,
                                2,
                                t,
                                floor,
                                n.saturating_sub(1),
                                n,
                                n.saturating_add(1),
                                u32::MAX,
                            ];
                            for complete in [false, true] {
                                for mc in mins {
                                    let Ok(_) = check_round(n, complete, degree, t, mc, &am) else {
                                        continue;
                                    };
                                    accepted += 1;
                                    assert!(
                                        (2..=MAX_CLIENTS).contains(&n)
                                            && degree < n
                                            && (2..=degree).contains(&t)
                                            && (t..=n).contains(&mc)
                                            && (model == H || mc >= floor),
                                        "n={n} {al}/{de} {model:?} complete={complete} \
                                         k={degree} t={t} min={mc}"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
        assert!(accepted > 100, "{accepted}");
    }

    #[test]
    fn invalid_and_infeasible_inputs() {
        let d = Assumptions::default();
        assert!(matches!(
            check_harary(100, 21, 11, &d),
            Err(ParamError::Invalid(_))
        ));
        assert!(matches!(
            check_harary(100, 20, 21, &d),
            Err(ParamError::Invalid(_))
        ));
        assert!(matches!(
            check_harary(100, 20, 0, &d),
            Err(ParamError::Invalid(_))
        ));
        assert!(matches!(
            check_harary(100, 99, 50, &d),
            Err(ParamError::Invalid(_))
        ));
        assert!(matches!(
            choose_harary(100, &a(0.5, 0.5, H)),
            Err(ParamError::Infeasible(_))
        ));
        assert!(matches!(
            choose_harary(100, &a(0.4, 0.3, M)),
            Err(ParamError::Infeasible(_))
        ));
        assert!(matches!(choose_harary(1, &d), Err(ParamError::Invalid(_))));
        assert!(matches!(
            choose_harary(100, &a(1.5, 0.0, H)),
            Err(ParamError::Invalid(_))
        ));
    }

    #[test]
    fn small_rounds_fall_back_to_the_complete_graph_and_never_panic() {
        let d = Assumptions::default();
        // 5% of 5 clients floors to none corrupt: a ring suffices.
        assert_eq!(choose_harary(5, &d).unwrap().degree, 2);
        // Three clients: no sparse graph exists, the complete graph is returned.
        assert_eq!(choose_harary(3, &d).unwrap().degree, 2);
        for n in 2..=200 {
            for (al, de) in [(0.0, 0.0), (0.05, 0.05), (0.1, 0.2), (0.33, 0.05)] {
                for m in [H, M] {
                    if let Ok(p) = choose_harary(n, &a(al, de, m)) {
                        assert!(
                            p.threshold >= 2 && p.threshold <= p.degree && p.degree < n,
                            "{n} {p:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn degree_grows_with_n() {
        let d = Assumptions::default();
        let ks: Vec<u32> = [1000, 10_000, 100_000]
            .iter()
            .map(|n| choose_harary(*n, &d).unwrap().degree)
            .collect();
        assert!(ks.windows(2).all(|w| w[0] <= w[1]), "{ks:?}");
    }
}
