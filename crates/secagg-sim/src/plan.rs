//! From what a user asks for to a checked round configuration.

use secagg_core::config::MAX_CLIENTS;
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
///
/// `min_clients` (the survivors a round needs before it unmasks, and in the malicious model the
/// consistency signatures each client needs) is the threshold for an honest-but-curious server,
/// and [`params::min_survivors_required`] (at least (1 - δ)·n) for a malicious one. The result
/// passes [`params::check_round`], the check clients run on what a server announces, unless
/// explicit k/t were accepted with `accept_weaker`.
pub fn plan(o: &RoundOptions) -> Result<Plan, String> {
    let n = o.clients;
    if n < 2 {
        return Err(format!("a round needs at least 2 clients, got {n}"));
    }
    if n > MAX_CLIENTS {
        return Err(format!(
            "a round has at most {MAX_CLIENTS} clients, got {n}"
        ));
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
    // Never below the threshold (the round cannot unmask with fewer), nor above n.
    let min_clients = threshold.max(params::min_survivors_required(n, a)).min(n);
    let check = params::check_round(
        n,
        graph == GraphKind::Complete,
        degree,
        threshold,
        min_clients,
        a,
    );
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
        min_clients,
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
        // Drivers fill in how inputs are encoded (float, DP) before starting the round.
        encoding: Vec::new(),
        validation: None,
    };
    config.validate()?;
    Ok(Plan { config, warnings })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(clients: u32, corrupt: f64, dropout: f64, model: ThreatModel) -> RoundOptions {
        RoundOptions {
            clients,
            dim: 4,
            bits: 32,
            graph: GraphChoice::Auto,
            degree: None,
            threshold: None,
            accept_weaker: false,
            assumptions: Assumptions {
                corrupt_fraction: corrupt,
                dropout_fraction: dropout,
                model,
            },
            prg: PrgKind::Aes128Ctr,
            round_id: 1,
            round_seed: [7; 32],
        }
    }

    #[test]
    fn min_clients_is_the_threshold_for_an_honest_but_curious_server() {
        for n in [3, 10, 100, 1000] {
            let p = plan(&options(n, 0.05, 0.05, ThreatModel::HonestButCurious)).unwrap();
            assert_eq!(p.config.min_clients, p.config.threshold, "{n}");
        }
        let c = plan(&options(1000, 0.05, 0.05, ThreatModel::HonestButCurious))
            .unwrap()
            .config;
        assert_eq!((c.degree, c.threshold, c.min_clients), (30, 17, 17));
    }

    #[test]
    fn min_clients_covers_the_survivors_a_malicious_server_must_keep() {
        let m = ThreatModel::Malicious;
        let p = plan(&options(1000, 0.05, 0.05, m)).unwrap();
        let c = &p.config;
        // Finding 2: not 37 (t, below the 50 corrupt clients assumed) but ⌈0.95 · 1000⌉.
        assert_eq!((c.degree, c.threshold, c.min_clients), (52, 37, 950));
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        assert!(c.pki);
        // The same check a client runs on what the server announces.
        let a = options(1000, 0.05, 0.05, m).assumptions;
        assert!(params::check_round(1000, false, c.degree, c.threshold, c.min_clients, &a).is_ok());
        // Explicit weak k/t accepted with --accept-weaker-params keep the survivors' floor.
        let mut o = options(1000, 0.05, 0.05, m);
        (o.degree, o.threshold) = (Some(20), Some(11));
        let e = plan(&o).unwrap_err();
        assert!(e.contains("--accept-weaker-params"), "{e}");
        o.accept_weaker = true;
        let p = plan(&o).unwrap();
        assert_eq!(
            (p.config.degree, p.config.threshold, p.config.min_clients),
            (20, 11, 950)
        );
        assert!(
            p.warnings.iter().any(|w| w.contains("weaker")),
            "{:?}",
            p.warnings
        );
        // A complete graph's threshold above the floor raises min_clients to it.
        let mut o = options(100, 0.05, 0.05, m);
        (o.graph, o.threshold) = (GraphChoice::Complete, Some(99));
        let c = plan(&o).unwrap().config;
        assert_eq!((c.degree, c.threshold, c.min_clients), (99, 99, 99));
    }

    #[test]
    fn every_plan_is_valid_and_passes_the_clients_check() {
        for n in (2..=60).chain([100, 257, 1000]) {
            for (al, de) in [
                (0.0, 0.0),
                (0.05, 0.05),
                (0.1, 0.2),
                (0.33, 0.05),
                (0.05, 0.33),
            ] {
                for m in [ThreatModel::HonestButCurious, ThreatModel::Malicious] {
                    let o = options(n, al, de, m);
                    let Ok(p) = plan(&o) else { continue };
                    let c = &p.config;
                    c.validate().unwrap();
                    let complete = c.graph == GraphKind::Complete;
                    params::check_round(
                        n,
                        complete,
                        c.degree,
                        c.threshold,
                        c.min_clients,
                        &o.assumptions,
                    )
                    .unwrap();
                    assert!(
                        c.min_clients >= params::min_survivors_required(n, &o.assumptions).min(n)
                    );
                }
            }
        }
        assert!(
            plan(&options(
                MAX_CLIENTS + 1,
                0.05,
                0.05,
                ThreatModel::HonestButCurious
            ))
            .is_err()
        );
    }
}
