//! Shoal's per-node agent: a Docker Registry HTTP API v2 pull proxy on
//! loopback that docker, containerd and skopeo pull through. Blobs come
//! from the swarm piece by piece, verified, streamed to clients in order,
//! cached and seeded; origins fill in when the swarm cannot.
//!
//! - [`config`]: the TOML file and flags, checked into [`Settings`].
//! - [`agent`]: starts and stops everything below as one [`Agent`].
//! - [`api`]: the registry API (routing, manifests, blobs, Range, bodies).
//! - [`blobs`]: cache hits, shared downloads, origin fallback, announces.
//! - [`origin`]: the origins' registry API client.
//! - [`tracker`]: metainfo, announces and prefetch job calls;
//!   `tls_channel`: its channel over mutual TLS.
//! - [`prefetch`]: pulls images into the cache when the tracker says.
//! - [`metrics`]: Prometheus metrics; `readiness`: what `/readyz` says.
//! - [`configure`]: points containerd or Docker at the agent.
//! - [`malloc`]: the glibc allocator policy the agent runs under.

#![warn(missing_docs, unreachable_pub)]

pub mod agent;
pub mod api;
pub mod blobs;
pub mod config;
pub mod configure;
pub mod malloc;
pub mod metrics;
pub mod origin;
pub mod prefetch;
mod readiness;
mod tls_channel;
pub mod tracker;

pub use agent::Agent;
pub use config::{Config, Settings};
