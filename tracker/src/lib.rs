//! Shoal's tracker: agents announce what they hold for a blob and get peers
//! back; agents ask for a blob's metainfo, which the tracker gets from the
//! blob's owning origin and caches.
//!
//! - [`config`]: the TOML configuration and its validated runtime form.
//! - [`validate`]: checks every request field before anything is stored.
//! - [`peer`]: one peer's announced state, as stored and ranked.
//! - [`handout`]: which peers an announcer gets back. Pure and sans-IO (no
//!   clock, injected RNG), so the swarm simulator runs the same policy.
//! - [`store`]: where announces live until they expire: in memory (one
//!   tracker) or in Redis (several tracker replicas).
//! - [`metainfo`]: metainfo from the owning origins, cached and single-flight.
//! - [`prefetch`]: prefetch jobs sent to watching agents, and their progress.
//! - [`service`]: the gRPC `Tracker` service tying these together.
//! - [`server`]: the tonic server with health, limits and graceful shutdown;
//!   `connection` tunes its sockets for many small responses.
//! - [`metrics`]: announce and metainfo counters and latency.
//! - [`admin`]: the HTTP listener for `/metrics`, `/healthz`, `/readyz`.

#![warn(missing_docs, unreachable_pub)]

pub mod admin;
pub mod config;
mod connection;
pub mod handout;
pub mod metainfo;
pub mod metrics;
pub mod peer;
pub mod prefetch;
pub mod server;
pub mod service;
pub mod store;
pub mod validate;

pub use config::{Config, Settings};
pub use metrics::TrackerMetrics;
pub use peer::PeerRecord;
pub use server::{serve, serve_observed};
pub use store::{MemoryStore, PeerStore, RedisStore};
