//! Identity keys for malicious-model rounds (the PKI).

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use secagg_core::crypto::IdentityKey;
use zeroize::Zeroizing;

use crate::options::os_random;

/// A new Ed25519 identity key: `(secret, public)`.
#[pyfunction]
#[pyo3(signature = (seed=None))]
pub fn keygen<'py>(
    py: Python<'py>,
    seed: Option<Vec<u8>>,
) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
    let secret = Zeroizing::new(match seed {
        Some(s) => <[u8; 32]>::try_from(s.as_slice()).map_err(|_| {
            PyValueError::new_err(format!("seed must be 32 bytes, got {}", s.len()))
        })?,
        None => os_random::<32>()?,
    });
    let key = IdentityKey::from_seed(&secret);
    Ok((
        PyBytes::new(py, secret.as_ref()),
        PyBytes::new(py, &key.public()),
    ))
}

/// The identity secrets the simulator derives for `n` clients from `seed` (for replaying the
/// known-answer vectors through `Client`/`Server`; never for real keys).
#[pyfunction]
pub fn _simulated_identities(py: Python<'_>, n: u32, seed: u64) -> Vec<Bound<'_, PyBytes>> {
    let (keys, _) = secagg_sim::harness::make_pki(n, seed);
    keys.iter()
        .map(|k| PyBytes::new(py, k.seed().as_ref()))
        .collect()
}
