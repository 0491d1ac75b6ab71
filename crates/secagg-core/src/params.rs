//! Choosing and checking the neighbour degree k and Shamir threshold t for a threat model.
//!
//! For a Harary graph (SecAgg+, Bell et al. 2020) with n clients, a fraction α of corrupt
//! clients and δ of dropouts, (k, t) must make three bad events unlikely:
//! 1. the graph of honest survivors disconnects (probability < 2^-(σ+1));
//! 2. a client has t or more corrupt neighbours, who could pool their shares (< 2^-(σ+1)/n per
//!    client);
//! 3. a client has fewer than t surviving neighbours, so the round fails (< 2^-η/n per client).
//!
//! with σ = 40 and η = 20, as in Google federated-compute's parameter finder, whose published
//! values this module reproduces (see the tests). The smallest even k that works is chosen, and
//! the smallest t it allows. In the malicious-server model t must also exceed (t1 + k)/2 so that
//! a server cannot collect t shares of both secrets of one client from disjoint neighbour sets.
//!
//! Every f64 function comes from `libm` so that the module works without `std`.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

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
    let mut t1 = adv.upper_quantile(q1);
    if a.model == ThreatModel::Malicious {
        t1 = libm::ceil((t1 as f64 + k as f64 - 1.25) / 2.0) as u32;
    }
    let surv = Hypergeometric::new(n, min_survivors(n, a), k);
    let q2 = libm::pow(2.0, -CORRECTNESS_BITS) / n as f64;
    // t may be at most 1 + the largest x with P[survivors ≤ x] < q2.
    let t2 = surv.lower_quantile_plus_one(q2);
    DegreeAnalysis {
        connected,
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

fn complete_min_threshold(n: u32, a: &Assumptions) -> u32 {
    let corrupt = libm::ceil(a.corrupt_fraction * n as f64 - EPS) as u32;
    let t = match a.model {
        // More shares than the corrupt clients hold together.
        ThreatModel::HonestButCurious => corrupt + 1,
        // Two disjoint sets of t honest answers cannot both exist among n - corrupt clients.
        ThreatModel::Malicious => {
            libm::ceil((n as f64 + a.corrupt_fraction * n as f64) / 2.0 - EPS) as u32 + 1
        }
    };
    t.max(2)
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
    let recommended = match choose_harary(n, a) {
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
             --degree{recommended}",
            pct(a.corrupt_fraction),
            pct(a.dropout_fraction)
        )));
    }
    if threshold <= an.t_secure_above {
        return Err(ParamError::Insecure(format!(
            "threshold {threshold} is too low: with {}% corrupt clients{} a client can have {} \
             colluding neighbours among {degree} with probability above 2^-41/n; use \
             --threshold ≥ {}{recommended}",
            pct(a.corrupt_fraction),
            if a.model == ThreatModel::Malicious {
                " and a malicious server"
            } else {
                ""
            },
            an.t_secure_above,
            an.t_secure_above + 1
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
            ThreatModel::Malicious => String::from(
                "a malicious server needs a threshold above (n + corrupt clients) / 2 so that it \
                 cannot gather shares of both secrets of one client",
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

    #[test]
    fn reproduces_published_values() {
        let mut mismatches = Vec::new();
        for &(n, al, de, m, k, t) in PUBLISHED {
            let p = choose_harary(n, &a(al, de, m)).unwrap();
            if p.degree.abs_diff(k) > 2 || p.threshold.abs_diff(t) > 2 {
                mismatches.push(format!(
                    "n={n} α={al} δ={de} {m:?}: got {p:?}, want {k}/{t}"
                ));
            }
        }
        assert!(mismatches.is_empty(), "{mismatches:#?}");
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
        let e = check_complete(100, 51, &a(0.05, 0.05, M)).unwrap_err();
        assert!(e.to_string().contains("≥ 54"), "{e}");
        assert!(matches!(
            check_complete(100, 5, &d),
            Err(ParamError::Insecure(_))
        ));
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
