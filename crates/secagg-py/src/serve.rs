//! `secagg.serve`: the gRPC server (`secagg_service::server::run`, what `secagg server` runs)
//! on a tokio runtime with the GIL released, so a Python process (a Ray actor, a test) can host
//! one shard of a round run as cohorts; `secagg.ServeOptions` checks its options and plans the
//! round a number of clients would get; `secagg.combine`: `secagg combine` without the binary.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use secagg_cli::combine_cmd::{CombineArgs, combine_files};
use secagg_core::params::Assumptions;
use secagg_service::server::{Cohort, Limits, ServerDp, ServerOptions, check_options, plan_round};

use crate::options::{config_dict, count, opt_count, parse_threat, plan_error};
use crate::server::{dp_params, read_roster};

fn seconds(value: f64, name: &str) -> PyResult<Duration> {
    if !(value.is_finite() && value > 0.0) {
        return Err(PyValueError::new_err(format!(
            "{name} must be a positive number of seconds, got {value}"
        )));
    }
    Duration::try_from_secs_f64(value)
        .map_err(|_| PyValueError::new_err(format!("{name} = {value} is too long")))
}

fn address(s: &str, name: &str) -> PyResult<SocketAddr> {
    s.parse().map_err(|_| {
        PyValueError::new_err(format!(
            "{name} must be IP:PORT (e.g. 127.0.0.1:0 for a free port), got {s:?}"
        ))
    })
}

/// The checked options of a `secagg server` run from Python.
#[pyclass(module = "secagg._secagg", frozen)]
pub struct ServeOptions {
    opts: ServerOptions,
}

#[pymethods]
impl ServeOptions {
    #[new]
    #[pyo3(signature = (
        *, clients, dim, data_dir, min_clients=None, listen="127.0.0.1:0", bits=32, rounds=1,
        join_timeout=30.0, stage_timeout=30.0, threat="honest-but-curious",
        assumed_corrupt=0.05, assumed_dropout=0.05, degree=None, threshold=None,
        accept_weaker_params=false, roster=None, clip=None, max_weight=1, dp=None,
        dp_noise_multiplier=1.0, dp_clip=1.0, dp_delta=1e-5, dp_central=false,
        dp_min_survivors=None, dp_epsilon_budget=None, dp_population="default",
        global_round_id=None, cohort_index=None, min_cohort_size=None, ready_file=None,
        metrics=None, max_message_bytes=4_194_304, max_connections=10_000,
        join_frame_timeout=10.0, tls_cert=None, tls_key=None
    ))]
    #[allow(clippy::too_many_arguments)] // Python keyword arguments, as `secagg server` flags
    fn new(
        clients: i128,
        dim: i128,
        data_dir: PathBuf,
        min_clients: Option<i128>,
        listen: &str,
        bits: i128,
        rounds: Option<i128>,
        join_timeout: f64,
        stage_timeout: f64,
        threat: &str,
        assumed_corrupt: f64,
        assumed_dropout: f64,
        degree: Option<i128>,
        threshold: Option<i128>,
        accept_weaker_params: bool,
        roster: Option<Vec<Vec<u8>>>,
        clip: Option<f64>,
        max_weight: i128,
        dp: Option<&str>,
        dp_noise_multiplier: f64,
        dp_clip: f64,
        dp_delta: f64,
        dp_central: bool,
        dp_min_survivors: Option<i128>,
        dp_epsilon_budget: Option<f64>,
        dp_population: &str,
        global_round_id: Option<String>,
        cohort_index: Option<i128>,
        min_cohort_size: Option<i128>,
        ready_file: Option<PathBuf>,
        metrics: Option<&str>,
        max_message_bytes: i128,
        max_connections: i128,
        join_frame_timeout: f64,
        tls_cert: Option<PathBuf>,
        tls_key: Option<PathBuf>,
    ) -> PyResult<Self> {
        let clients: u32 = count(clients, "clients")?;
        let dim: u32 = count(dim, "dim")?;
        let bits: u8 = count(bits, "bits")?;
        if dim == 0 {
            return Err(PyValueError::new_err("dim must be at least 1"));
        }
        if !(1..=64).contains(&bits) {
            return Err(PyValueError::new_err(format!(
                "bits must be in 1..=64, got {bits}"
            )));
        }
        for (name, f) in [
            ("assumed_corrupt", assumed_corrupt),
            ("assumed_dropout", assumed_dropout),
        ] {
            if !(0.0..1.0).contains(&f) {
                return Err(PyValueError::new_err(format!(
                    "{name} must be a fraction in [0, 1), got {f}"
                )));
            }
        }
        let min_cohort_size: Option<u32> = opt_count(min_cohort_size, "min_cohort_size")?;
        // By default a round waits for all its clients, or for the promised cohort size (a
        // size out of range is refused below, by name).
        let min_clients: u32 = match opt_count(min_clients, "min_clients")? {
            Some(m) => m,
            None => min_cohort_size.unwrap_or(clients).clamp(2, clients.max(2)),
        };
        let dp = match dp {
            None => None,
            Some(noise) => {
                if clip.is_some() {
                    return Err(PyValueError::new_err(
                        "clip= is for weighted-mean rounds; DP rounds clip with dp_clip=",
                    ));
                }
                let params = dp_params(
                    noise,
                    Some(dp_noise_multiplier),
                    Some(dp_clip),
                    dp_central,
                    dim as usize,
                )?;
                if !(dp_delta > 0.0 && dp_delta < 1.0) {
                    return Err(PyValueError::new_err(format!(
                        "dp_delta must be in (0, 1), got {dp_delta}"
                    )));
                }
                let Some(budget) = dp_epsilon_budget else {
                    return Err(PyValueError::new_err(
                        "dp= needs dp_epsilon_budget=: the total ε the population may spend",
                    ));
                };
                if !(budget.is_finite() && budget > 0.0) {
                    return Err(PyValueError::new_err(format!(
                        "dp_epsilon_budget must be a positive number, got {budget}"
                    )));
                }
                if dp_population.is_empty() {
                    return Err(PyValueError::new_err("dp_population must not be empty"));
                }
                Some(ServerDp {
                    params,
                    delta: dp_delta,
                    epsilon_budget: budget,
                    population: dp_population.to_string(),
                    min_survivors: opt_count(dp_min_survivors, "dp_min_survivors")?,
                })
            }
        };
        let cohort = match (global_round_id, cohort_index) {
            (Some(global_round_id), Some(i)) => Some(Cohort {
                global_round_id,
                index: count(i, "cohort_index")?,
            }),
            (None, None) => None,
            _ => {
                return Err(PyValueError::new_err(
                    "global_round_id= and cohort_index= go together",
                ));
            }
        };
        let roster = roster.map(|r| read_roster(r, "roster")).transpose()?;
        let opts = ServerOptions {
            listen: address(listen, "listen")?,
            clients,
            min_clients,
            dim,
            bits,
            rounds: opt_count(rounds, "rounds")?,
            join_timeout: seconds(join_timeout, "join_timeout")?,
            stage_timeout: seconds(stage_timeout, "stage_timeout")?,
            assumptions: Assumptions {
                corrupt_fraction: assumed_corrupt,
                dropout_fraction: assumed_dropout,
                model: parse_threat(threat)?,
            },
            degree: opt_count(degree, "degree")?,
            threshold: opt_count(threshold, "threshold")?,
            accept_weaker: accept_weaker_params,
            roster,
            data_dir,
            metrics: metrics.map(|m| address(m, "metrics")).transpose()?,
            float: clip
                .map(|c| Ok::<_, PyErr>((c, count(max_weight, "max_weight")?)))
                .transpose()?,
            dp,
            limits: Limits {
                max_message_bytes: count(max_message_bytes, "max_message_bytes")?,
                max_connections: count(max_connections, "max_connections")?,
                join_frame_timeout: seconds(join_frame_timeout, "join_frame_timeout")?,
            },
            tls: match (tls_cert, tls_key) {
                (Some(c), Some(k)) => Some((c, k)),
                (None, None) => None,
                _ => {
                    return Err(PyValueError::new_err("tls_cert= and tls_key= go together"));
                }
            },
            cohort,
            min_cohort_size,
            ready_file,
            prg: secagg_core::PrgKind::Aes128Ctr,
            fault: None,
        };
        // Checked now, as `secagg server` does, not when the first round starts.
        check_options(&opts).map_err(plan_error)?;
        plan_round(&opts, opts.clients, [0; 32]).map_err(plan_error)?;
        Ok(Self { opts })
    }

    /// The configuration (as `Server.config`) a round of `clients` clients (default: this
    /// server's) gets: (k, t), its `min_clients` (raised to the minimum cohort size, and for
    /// DP to the survivors the noise is sized for) and its input encoding; round id 0 and a
    /// zero round seed (each real round draws its own).
    #[pyo3(signature = (clients=None))]
    fn config<'py>(&self, py: Python<'py>, clients: Option<i128>) -> PyResult<Bound<'py, PyDict>> {
        let n = opt_count(clients, "clients")?.unwrap_or(self.opts.clients);
        let p = plan_round(&self.opts, n, [0; 32]).map_err(plan_error)?;
        let d = config_dict(py, &p.config)?;
        d.set_item("warnings", p.warnings)?;
        Ok(d)
    }

    /// Clients per round.
    #[getter]
    fn clients(&self) -> u32 {
        self.opts.clients
    }

    /// The data directory (the store and `rounds/<id>.{json,npy}`).
    #[getter]
    fn data_dir(&self) -> PathBuf {
        self.opts.data_dir.clone()
    }

    fn __repr__(&self) -> String {
        format!(
            "ServeOptions(clients={}, dim={}, bits={}, data_dir={:?})",
            self.opts.clients, self.opts.dim, self.opts.bits, self.opts.data_dir
        )
    }
}

/// Runs the server with `options` until its rounds are done (forever with `rounds=None`).
/// The GIL is released; in the main thread Ctrl-C stops it (KeyboardInterrupt).
#[pyfunction]
pub fn serve(py: Python<'_>, options: &ServeOptions) -> PyResult<()> {
    let opts = options.opts.clone();
    let outcome = py.detach(move || -> Result<Result<(), String>, PyErr> {
        let rt = tokio::runtime::Runtime::new()
            .map_err(|e| PyValueError::new_err(format!("cannot start tokio: {e}")))?;
        rt.block_on(async move {
            let server = secagg_service::server::run(opts, None);
            tokio::pin!(server);
            loop {
                tokio::select! {
                    r = &mut server => return Ok(r),
                    () = tokio::time::sleep(Duration::from_millis(200)) => {
                        // Signals are delivered to the main thread only: elsewhere a no-op.
                        Python::attach(|py| py.check_signals())?;
                    }
                }
            }
        })
    });
    // A KeyboardInterrupt (or another signal handler's exception) is passed on as it is.
    outcome?.map_err(PyValueError::new_err)
}

/// `secagg combine`: the global aggregate of cohort results (round JSONs written by
/// `secagg server` or `secagg.serve`, or directories of them), written to `output`; the
/// report (also written to `report` when given) is returned as a dict.
#[pyfunction]
#[pyo3(signature = (cohorts, output, *, report=None, min_cohort_size=None, min_cohorts=1))]
pub fn combine<'py>(
    py: Python<'py>,
    cohorts: Vec<PathBuf>,
    output: PathBuf,
    report: Option<PathBuf>,
    min_cohort_size: Option<i128>,
    min_cohorts: i128,
) -> PyResult<Bound<'py, PyAny>> {
    if cohorts.is_empty() {
        return Err(PyValueError::new_err(
            "cohorts must name at least one result",
        ));
    }
    let min_cohorts: u64 = count(min_cohorts, "min_cohorts")?;
    if min_cohorts == 0 {
        return Err(PyValueError::new_err("min_cohorts must be at least 1"));
    }
    let args = CombineArgs {
        cohorts,
        output,
        report,
        min_cohort_size: opt_count(min_cohort_size, "min_cohort_size")?,
        min_cohorts,
        json: false,
    };
    let result = py.detach(|| combine_files(&args).map(|v| v.to_string()));
    match result {
        Ok(text) => py.import("json")?.call_method1("loads", (text,)),
        Err(e) => Err(PyValueError::new_err(e.to_string())),
    }
}
