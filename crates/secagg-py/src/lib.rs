//! Python bindings of secagg: the `secagg._secagg` extension module behind the `secagg`
//! package (see `python/secagg/__init__.pyi` for the documented API).
//!
//! - [`simulate`]: a whole round in one process.
//! - [`server`] and [`client`]: the sans-IO round objects, bytes in and bytes out.
//! - [`service`]: a client of the gRPC service (feature `service`); [`serve`]: the server
//!   and `secagg combine` (same feature).
//! - [`dp`]: privacy accounting and planning (`secagg.dp`), and one round's DP encoding
//!   (`secagg.DpEncoding`).
//! - [`keys`]: identity keys for malicious-model rounds.
//! - [`arrays`], [`options`], [`errors`]: numpy conversion, argument parsing, exceptions.

use pyo3::prelude::*;

mod arrays;
mod client;
mod dp;
mod errors;
mod keys;
mod options;
#[cfg(feature = "service")]
mod serve;
mod server;
#[cfg(feature = "service")]
mod service;
mod simulate;

/// Threads for the validated rounds' proofs made in this process (clamped to 1..=64;
/// returns the value set). Proofs are the same bytes whatever the count.
#[pyfunction]
fn set_prover_threads(threads: i64) -> usize {
    // Clamped, negatives included (to 1), as the docstring says.
    let t = usize::try_from(threads.max(1)).unwrap_or(usize::MAX);
    secagg_core::validate::secagg_zk::set_prover_threads(t)
}

#[pymodule]
fn _secagg(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(simulate::simulate_round, m)?)?;
    m.add_function(wrap_pyfunction!(keys::keygen, m)?)?;
    m.add_function(wrap_pyfunction!(set_prover_threads, m)?)?;
    m.add_function(wrap_pyfunction!(keys::_simulated_identities, m)?)?;
    m.add_class::<server::Server>()?;
    m.add_class::<client::Client>()?;
    m.add_function(wrap_pyfunction!(dp::epsilon, m)?)?;
    m.add_function(wrap_pyfunction!(dp::plan_noise, m)?)?;
    m.add_function(wrap_pyfunction!(client::round_config, m)?)?;
    m.add_function(wrap_pyfunction!(client::_round_start_message, m)?)?;
    m.add_function(wrap_pyfunction!(client::check_round_start, m)?)?;
    m.add_class::<dp::PyDpEncoding>()?;
    m.add_class::<dp::PyAccountant>()?;
    m.add_class::<dp::PyDpFloor>()?;
    #[cfg(feature = "service")]
    {
        // The service's log lines (server rounds, client retries) go to stderr, as the
        // `secagg` command writes them; SECAGG_LOG sets the level (default warn), and
        // SECAGG_LOG_FORMAT=json gives JSON lines.
        let filter = std::env::var("SECAGG_LOG").unwrap_or_else(|_| "warn".into());
        let filter = secagg_cli::logging::parse_filter(&filter)
            .map_err(pyo3::exceptions::PyValueError::new_err)?;
        let format = match std::env::var("SECAGG_LOG_FORMAT").as_deref() {
            Ok("json") => secagg_cli::logging::LogFormat::Json,
            _ => secagg_cli::logging::LogFormat::Text,
        };
        secagg_cli::logging::init(format, filter);
        m.add_function(wrap_pyfunction!(service::connect, m)?)?;
        m.add_class::<service::ServiceClient>()?;
        m.add_class::<service::RoundReceipt>()?;
        m.add_class::<serve::ServeOptions>()?;
        m.add_function(wrap_pyfunction!(serve::serve, m)?)?;
        m.add_function(wrap_pyfunction!(serve::combine, m)?)?;
    }
    Ok(())
}
