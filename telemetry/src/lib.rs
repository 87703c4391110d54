//! What makes a Shoal process operable, shared by the agent, the origin and
//! the tracker so that the three expose the same endpoints the same way.
//!
//! - [`log`]: `tracing` setup, RUST_LOG filtering, text or JSON lines.
//! - [`exposition`]: a Prometheus registry rendered as OpenMetrics, or as
//!   the classic text format for clients that do not ask for OpenMetrics.
//! - [`collect`]: helpers for collectors that read counters a component
//!   already keeps at scrape time.
//! - [`admin`]: `/metrics`, `/healthz` and `/readyz` as an axum router, and
//!   [`Readiness`], what `/readyz` asks.
//! - [`listen`]: the admin listener's configured address (`""` = none).
//! - [`restart`]: restarting the process in place under allocator settings
//!   read only at start.

#![warn(missing_docs, unreachable_pub)]

pub mod admin;
pub mod collect;
pub mod exposition;
pub mod listen;
pub mod log;
pub mod restart;

pub use admin::{Check, Readiness, ReadyFlag, router, serve};
pub use listen::AdminListen;
pub use log::{LogFormat, init_logging};
pub use prometheus_client;
