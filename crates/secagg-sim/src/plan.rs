//! From what a user asks for to a checked round configuration.

use secagg_core::params::{self, Assumptions, ThreatModel};
use secagg_core::{GraphKind, PrgKind, RoundConfig};

/// Which graph the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphChoice {
    /// Harary if the threat model allows a sparse graph, else complete.
    Auto,
    /// Every client with every other.
    Complete,
    /// SecAgg+ Harary graph.
    Harary,
}

/// User-level options of a round.
#[derive(Debug, Clone)]
pub struct RoundOptions {
    /// Clients n.
    pub clients: u32,
    /// Vector length as the protocol sees it (floats add one element for the weight).
    pub dim: u32,
    /// Modulus bits.
    pub bits: u8,
    /// Graph.
    pub graph: GraphChoice,
    /// Explicit degree k.
    pub degree: Option<u32>,
    /// Explicit threshold t.
    pub threshold: Option<u32>,
    /// Accept explicit k/t weaker than the threat model needs (with a warning).
    pub accept_weaker: bool,
    /// Threat model and assumed corrupt/dropout fractions.
    pub assumptions: Assumptions,
    /// Mask PRG.
    pub prg: PrgKind,
    /// Round id.
    pub round_id: u64,
    /// Public round seed.
    pub round_seed: [u8; 32],
}

/// A checked configuration and the warnings the user should see.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The configuration.
    pub config: RoundConfig,
    /// Things the user should know (weaker parameters accepted, abort risk).
    pub warnings: Vec<String>,
}

/// Chooses or checks (k, t) and builds the round configuration.
pub fn plan(o: &RoundOptions) -> Result<Plan, String> {
    let n = o.clients;
    if n < 2 {
        return Err(format!("a round needs at least 2 clients, got {n}"));
    }
    let a = &o.assumptions;
    let mut warnings = Vec::new();
    let graph = match o.graph {
        GraphChoice::Complete => GraphKind::Complete,
        GraphChoice::Harary => GraphKind::Harary,
        GraphChoice::Auto => match o.degree {
            Some(k) if k >= n - 1 => GraphKind::Complete,
            Some(_) => GraphKind::Harary,
            None => match params::choose_harary(n, a) {
                Ok(p) if p.degree < n - 1 => GraphKind::Harary,
                _ => GraphKind::Complete,
            },
        },
    };
    let (degree, threshold) = match graph {
        GraphKind::Complete => {
            if o.degree.is_some_and(|k| k != n - 1) {
                return Err(format!(
                    "a complete graph has degree n - 1 = {}; drop --degree or use --graph harary",
                    n - 1
                ));
            }
            let t = match o.threshold {
                Some(t) => t,
                None => params::choose_complete_threshold(n, a).map_err(|e| e.to_string())?,
            };
            (n - 1, t)
        }
        GraphKind::Harary => match (o.degree, o.threshold) {
            (None, None) => {
                let p = params::choose_harary(n, a).map_err(|e| e.to_string())?;
                (p.degree, p.threshold)
            }
            (Some(k), Some(t)) => (k, t),
            (Some(k), None) => {
                // The smallest threshold the model accepts for this degree.
                let t = (2..=k)
                    .find(|t| params::check_harary(n, k, *t, a).is_ok())
                    .ok_or_else(|| {
                        format!(
                            "no threshold makes degree {k} secure for this threat model; \
                             give --threshold with --accept-weaker-params, or a larger --degree"
                        )
                    })?;
                (k, t)
            }
            (None, Some(t)) => {
                let p = params::choose_harary(n, a).map_err(|e| e.to_string())?;
                (p.degree.max(t), t)
            }
        },
    };
    let explicit = o.degree.is_some() || o.threshold.is_some();
    let check = if graph == GraphKind::Complete || degree >= n - 1 {
        params::check_complete(n, threshold, a)
    } else {
        params::check_harary(n, degree, threshold, a)
    };
    match check {
        Ok(w) => warnings.extend(w),
        Err(params::ParamError::Insecure(why)) if explicit && o.accept_weaker => warnings.push(
            format!("accepted weaker parameters than the threat model needs (--accept-weaker-params): {why}"),
        ),
        Err(params::ParamError::Insecure(why)) if explicit => {
            return Err(format!("{why} (pass --accept-weaker-params to run anyway, e.g. to compare with a peer)"));
        }
        Err(e) => return Err(e.to_string()),
    }
    let config = RoundConfig {
        round_id: o.round_id,
        round_seed: o.round_seed,
        num_clients: n,
        min_clients: threshold,
        degree,
        threshold,
        graph: if degree >= n - 1 {
            GraphKind::Complete
        } else {
            graph
        },
        bits: o.bits,
        dim: o.dim,
        prg: o.prg,
        model: a.model,
        pki: a.model == ThreatModel::Malicious,
    };
    config.validate()?;
    Ok(Plan { config, warnings })
}
