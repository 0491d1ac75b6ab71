//! # secagg-service
//!
//! secagg as a long-lived service: the versioned gRPC protocol (`secagg.v1`), a tokio server
//! that runs rounds one after another with join and stage deadlines, an async client, an
//! embedded store (redb) that survives crashes, and Prometheus metrics. Under it all sit the
//! unchanged sans-IO state machines of `secagg-core`.

/// Code generated from `proto/secagg/v1/secagg.proto`.
#[allow(clippy::all, missing_docs)]
pub mod proto {
    tonic::include_proto!("secagg.v1");
}

pub mod client;
pub mod client_state;
pub mod convert;
pub mod durable;
pub mod keys;
pub mod metrics;
pub mod server;
pub mod store;
