//! Shoal's origin: pulls each blob from the upstream registry once, keeps
//! it, computes its metainfo in the same pass, and seeds it into the swarm;
//! serves manifests, blobs and metainfo to agents and the tracker.
//!
//! - [`config`]: the TOML file and flags, checked into [`Settings`].
//! - `upstream`: the backends (an OCI registry through oci-client, an OCI
//!   image layout directory) and their errors.
//! - `fetch`: fetch once, streaming into the store, then seed.
//! - `cluster` and `replica`: ring ownership, redirects, and copying a blob
//!   from a peer origin instead of upstream.
//! - [`artifacts`]: files that are not images, published through an origin
//!   and served under a reserved repository.
//! - `manifests`: the manifest cache (by digest, LRU in bytes; tags with a
//!   TTL).
//! - `http`: the axum API (docs/api.md); `tls_listener`: its connections
//!   when `[tls]` is set.
//! - `metrics`: the Prometheus collector over the counters above.
//! - [`Origin`]: all of it started and stopped together; [`Stats`].

#![warn(missing_docs, unreachable_pub)]

pub mod artifacts;
mod cluster;
pub mod config;
mod fetch;
mod http;
mod manifests;
mod metrics;
mod origin;
mod replica;
mod stats;
mod tls_listener;
mod upstream;

pub use artifacts::ARTIFACTS_REPOSITORY;
pub use config::{Config, ConfigError, Settings};
pub use origin::{Origin, OriginError};
pub use stats::Stats;
pub use upstream::UpstreamError;
