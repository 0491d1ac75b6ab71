//! `secagg.connect`: a client of the gRPC service (`secagg_service::client::participate_with`),
//! run on a private tokio runtime with the GIL released. A `ServiceClient` keeps one
//! `ClientGuard` for all its rounds: its policy (threat model and assumptions), the round ids
//! it took part in (refused a second time) and its own privacy ledger, in memory or in a
//! state directory.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pyo3::exceptions::{PyConnectionError, PyTimeoutError, PyValueError};
use pyo3::prelude::*;
use secagg_core::ThreatModel;
use secagg_core::client::Roster;
use secagg_core::crypto::IdentityKey;
use secagg_service::client::{
    ClientGuard, ClientInput, ClientOptions, ClientRunError, ClientState, DpBudget,
    participate_with,
};
use zeroize::Zeroizing;

use crate::arrays::{Vector, read_vector};
use crate::client::client_policy;
use crate::errors::{from_client_error, round_aborted};
use crate::options::{count, opt_count, os_random, parse_stage};
use crate::server::read_roster;

/// A round this client took part in that released its aggregate.
#[pyclass(module = "secagg._secagg", frozen, get_all)]
pub struct RoundReceipt {
    /// The server's round id.
    round_id: u64,
    /// This client's id in the round.
    client_id: u32,
}

#[pymethods]
impl RoundReceipt {
    fn __repr__(&self) -> String {
        format!(
            "RoundReceipt(round_id={}, client_id={})",
            self.round_id, self.client_id
        )
    }
}

/// A connection profile for a `secagg server`.
#[pyclass(module = "secagg._secagg")]
pub struct ServiceClient {
    #[pyo3(get)]
    url: String,
    name: String,
    identity: Option<Zeroizing<[u8; 32]>>,
    roster: Option<Roster>,
    timeout: Duration,
    connect_retry: Duration,
    tls_ca: Option<PathBuf>,
    min_noise_multiplier: Option<f64>,
    honest_clients: Option<u32>,
    /// Policy, rounds taken part in and privacy ledger, for every round of this client.
    guard: ClientGuard,
    /// Set by `cancel()`: the submit in progress stops.
    cancelled: Arc<AtomicBool>,
}

/// A client for the gRPC service at `url`.
#[pyfunction]
#[pyo3(signature = (
    url, *, name=None, identity=None, roster=None, timeout=300.0, tls_ca=None,
    min_noise_multiplier=None, connect_retry=30.0, honest_clients=None, threat=None,
    assumed_corrupt=None, assumed_dropout=None, min_clients=2, state_dir=None,
    dp_budget_epsilon=None, dp_budget_delta=1e-5
))]
#[allow(clippy::too_many_arguments)] // Python keyword arguments
pub fn connect(
    url: String,
    name: Option<String>,
    identity: Option<Vec<u8>>,
    roster: Option<Vec<Vec<u8>>>,
    timeout: f64,
    tls_ca: Option<PathBuf>,
    min_noise_multiplier: Option<f64>,
    connect_retry: f64,
    honest_clients: Option<i128>,
    threat: Option<&str>,
    assumed_corrupt: Option<f64>,
    assumed_dropout: Option<f64>,
    min_clients: i128,
    state_dir: Option<PathBuf>,
    dp_budget_epsilon: Option<f64>,
    dp_budget_delta: f64,
) -> PyResult<ServiceClient> {
    let honest_clients: Option<u32> = opt_count(honest_clients, "honest_clients")?;
    if honest_clients.is_some() && min_noise_multiplier.is_none() && dp_budget_epsilon.is_none() {
        return Err(PyValueError::new_err(
            "honest_clients goes with min_noise_multiplier or dp_budget_epsilon",
        ));
    }
    if honest_clients == Some(0) {
        return Err(PyValueError::new_err(
            "honest_clients must be at least 1 (the honest survivors whose noise you count on)",
        ));
    }
    if !(connect_retry.is_finite() && connect_retry >= 0.0) {
        return Err(PyValueError::new_err(format!(
            "connect_retry must be a number of seconds >= 0, got {connect_retry}"
        )));
    }
    if let Some(z) = min_noise_multiplier
        && !(z.is_finite() && z > 0.0)
    {
        return Err(PyValueError::new_err(format!(
            "min_noise_multiplier must be a positive number, got {z}"
        )));
    }
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(PyValueError::new_err(format!(
            "url must start with http:// or https://, got {url:?}"
        )));
    }
    if !(timeout.is_finite() && timeout > 0.0) {
        return Err(PyValueError::new_err(format!(
            "timeout must be a positive number of seconds, got {timeout}"
        )));
    }
    let identity = identity
        .map(|b| {
            <[u8; 32]>::try_from(b.as_slice())
                .map(Zeroizing::new)
                .map_err(|_| {
                    PyValueError::new_err(format!(
                        "identity must be the 32-byte secret from secagg.keygen, got {} bytes",
                        b.len()
                    ))
                })
        })
        .transpose()?;
    if identity.is_some() && roster.is_none() {
        return Err(PyValueError::new_err(
            "identity= needs roster=: a client with an identity never takes the roster from the \
             server",
        ));
    }
    // The client's own rules: a client with an identity guards against a malicious server
    // unless told otherwise (and then still refuses rounds without a PKI).
    let threat = threat.unwrap_or(if identity.is_some() {
        "malicious"
    } else {
        "honest-but-curious"
    });
    let policy = client_policy(
        threat,
        false,
        assumed_corrupt,
        assumed_dropout,
        count(min_clients, "min_clients")?,
    )?;
    if policy.min_model == ThreatModel::Malicious && (identity.is_none() || roster.is_none()) {
        return Err(PyValueError::new_err(
            "threat='malicious' needs identity= (this client's secret key from secagg.keygen) \
             and roster= (every client's public key, held by this client, never taken from the \
             server)",
        ));
    }
    let dp_budget = dp_budget_epsilon
        .map(|epsilon| {
            let mut b = DpBudget {
                epsilon,
                delta: dp_budget_delta,
                honest_clients: honest_clients.unwrap_or(1),
            };
            b.validate().map_err(PyValueError::new_err)?;
            // As `secagg client --dp-budget-epsilon` requires: a ledger kept in memory is
            // gone with the process (a restart would reset the budget), and a round is
            // charged at the noise the client's own honest survivors reach, not at what a
            // server with fake clients announces.
            if state_dir.is_none() {
                return Err(PyValueError::new_err(
                    "dp_budget_epsilon needs state_dir=: the privacy ledger must outlive this \
                     process (kept in memory only, a restarted client would start its budget \
                     again, and a server could average its noise away over many rounds)",
                ));
            }
            let Some(h) = honest_clients else {
                return Err(PyValueError::new_err(
                    "dp_budget_epsilon needs honest_clients=: the honest survivors whose noise \
                     this client counts on. Each client adds 1/m of the noise, m the round's \
                     min_clients; a server with fake clients can announce a large m, so every \
                     round is charged at the noise multiplier z*sqrt(min(h, m)/m) that h honest \
                     clients reach, not at the z the server announces",
                ));
            };
            b.honest_clients = h;
            Ok(b)
        })
        .transpose()?;
    let state = match &state_dir {
        Some(dir) => ClientState::open(dir).map_err(PyValueError::new_err)?,
        None => ClientState::in_memory(),
    };
    let guard = ClientGuard {
        policy,
        state,
        dp_budget,
    };
    let name = match name {
        Some(n) => n,
        None => {
            let r = os_random::<4>()?;
            format!("py-{:08x}", u32::from_le_bytes(r))
        }
    };
    Ok(ServiceClient {
        url,
        name,
        identity,
        roster: roster.map(|r| read_roster(r, "roster")).transpose()?,
        timeout: Duration::from_secs_f64(timeout),
        connect_retry: Duration::from_secs_f64(connect_retry),
        tls_ca,
        min_noise_multiplier,
        honest_clients,
        guard,
        cancelled: Arc::new(AtomicBool::new(false)),
    })
}

#[pymethods]
impl ServiceClient {
    /// Joins the server's next round with `array` and takes part until it ends. `_pause_at`
    /// (a stage name) is a testing hook: the client stops answering when that stage's request
    /// arrives, like a device that froze mid-round, until `cancel()`.
    #[pyo3(signature = (array, *, weight=1, _pause_at=None))]
    fn submit(
        &self,
        py: Python<'_>,
        array: &Bound<'_, PyAny>,
        weight: u64,
        _pause_at: Option<&str>,
    ) -> PyResult<RoundReceipt> {
        let pause_at = _pause_at.map(parse_stage).transpose()?;
        let input = match read_vector(array, "array")? {
            Vector::Unsigned(v) => ClientInput::Unsigned(v.to_vec()),
            Vector::Float(v) => ClientInput::Float {
                values: v.to_vec(),
                weight,
            },
        };
        let opts = ClientOptions {
            server: self.url.clone(),
            name: self.name.clone(),
            input,
            identity: self.identity.as_ref().map(|s| IdentityKey::from_seed(s)),
            roster: self.roster.clone(),
            timeout: self.timeout,
            connect_retry: self.connect_retry,
            pause_at,
            tls_ca: self.tls_ca.clone(),
            dp_floor: self.min_noise_multiplier.map(|z| secagg_sim::dp::DpFloor {
                min_noise_multiplier: z,
                honest_clients: self.honest_clients,
            }),
        };
        self.cancelled.store(false, Ordering::SeqCst);
        let cancelled = self.cancelled.clone();
        let result = py.detach(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| ClientRunError::Transport(format!("cannot start tokio: {e}")))?;
            rt.block_on(async {
                tokio::select! {
                    r = participate_with(&opts, &self.guard) => r,
                    () = watch_cancel(&cancelled) => Err(ClientRunError::RoundAborted {
                        round_id: 0,
                        reason: "cancelled: ServiceClient.cancel() was called".into(),
                    }),
                }
            })
        });
        match result {
            Ok(r) => Ok(RoundReceipt {
                round_id: r.round_id,
                client_id: r.client_id,
            }),
            Err(ClientRunError::Transport(m)) => Err(PyConnectionError::new_err(format!(
                "connection to {} failed: {m}",
                self.url
            ))),
            Err(e @ ClientRunError::ServerSilent(_)) => Err(PyTimeoutError::new_err(e.to_string())),
            Err(ClientRunError::RoundAborted { round_id, reason }) => Err(round_aborted(
                py,
                None,
                format!("round {round_id}: {reason}"),
            )),
            Err(ClientRunError::Refused(e)) => Err(from_client_error(py, &e)),
            Err(ClientRunError::BadInput(m)) => Err(PyValueError::new_err(m)),
        }
    }

    /// Stops the `submit` in progress (from another thread): it drops its connection (the
    /// server counts this client as a dropout) and raises `RoundAborted`. No effect on a later
    /// `submit`.
    fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }

    fn __repr__(&self) -> String {
        format!("ServiceClient(url={:?}, name={:?})", self.url, self.name)
    }
}

/// Resolves once `cancelled` is set (checked every 50 ms: a cancel is a rare, slow event).
async fn watch_cancel(cancelled: &AtomicBool) {
    while !cancelled.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
