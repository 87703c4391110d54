//! Shoal's swarm simulator: the real sans-IO [`Torrent`] (with its real
//! picker and choker) and the tracker's real handout policy, for up to tens
//! of thousands of agents, in deterministic virtual time.
//!
//! - [`clock`]: virtual time and its mapping onto the torrent's `Instant`s.
//! - [`events`]: what happens in a run.
//! - [`queue`]: the event queue (time, then insertion order).
//! - [`network`]: host capacities and the fair-share flow model.
//! - [`conn`]: connections and their two FIFO pipes.
//! - [`host`]: per-host and per-(host, blob) state around each torrent.
//! - [`tracker`]: announce storage around `shoal_tracker::handout::select`.
//! - [`scenario`]: parameters and the concrete plan of a run.
//! - [`sim`]: the engine, mirroring the session driver's semantics.
//! - [`report`]: the figures of a run, as a table or JSON.
//!
//! [`Torrent`]: shoal_swarm::torrent::Torrent

#![warn(missing_docs, unreachable_pub)]

pub mod clock;
pub mod conn;
pub mod error;
pub mod events;
pub mod host;
pub mod network;
pub mod queue;
pub mod report;
pub mod scenario;
pub mod sim;
pub mod tracker;

pub use error::SimError;
pub use report::Report;
pub use scenario::{Params, Scenario};

/// Runs one simulation and summarises it; `wall_s` is measured around the
/// run only (not the plan).
pub fn run(params: Params) -> Result<Report, SimError> {
    let sim = sim::Sim::new(params)?;
    let (params, plan) = (sim.params().clone(), sim.plan().clone());
    let started = std::time::Instant::now();
    let outcome = sim.run();
    let wall_s = started.elapsed().as_secs_f64();
    Ok(Report::new(&params, &plan, &outcome, wall_s))
}
