//! `shoal-bench`: benchmarks of Shoal's data path, each reported as a ratio
//! against a baseline measured in the same run. Results go into BENCHMARKS.md.
//!
//! - `hash`: metainfo computation of a file vs `openssl speed -evp sha256` and
//!   `sha256sum`.
//! - `transfer`: one seeder to one leecher on loopback, no caps, vs SHA-256.
//! - `tracker`: announces per second, latency, memory per entry and CPU per
//!   announce of the `shoal-tracker` binary with its memory or Redis store.
//! - `origin`: a cold origin fetch (with metainfo) from a local registry vs
//!   `curl` of the same blob.
//! - `agent warm|ttfb|memory`: the real agent binary (with tracker, origin
//!   and a docker-registry) pulled through by skopeo and HTTP: warm-cache
//!   copy vs the registry, time to first byte vs the piece-transfer time,
//!   and its peak RSS.

mod agent;
mod baseline;
mod blob;
mod hash;
mod origin;
mod tracker;
mod tracker_memory;
mod transfer;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Benchmarks of Shoal's data path against same-run baselines")]
struct Cli {
    #[command(subcommand)]
    command: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// Metainfo hashing throughput vs OpenSSL SHA-256 and sha256sum.
    Hash {
        /// Blob size in MiB.
        #[arg(long, default_value_t = 1024)]
        size_mib: u64,
    },
    /// One seeder to one leecher on loopback with no rate caps.
    Transfer {
        /// Blob size in MiB.
        #[arg(long, default_value_t = 1024)]
        size_mib: u64,
    },
    /// Cold origin fetch from a local docker-registry vs curl.
    Origin {
        /// Blob size in MiB.
        #[arg(long, default_value_t = 1024)]
        size_mib: u64,
        /// Timed runs, each with a fresh origin store.
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// Tracker announce throughput, latency and memory per entry.
    Tracker {
        /// Peer store under test.
        #[arg(long, value_enum, default_value = "memory")]
        store: tracker::StoreKind,
        /// Redis for `--store redis` (the benchmark does not start one).
        #[arg(long)]
        redis_url: Option<String>,
        /// Distinct blobs.
        #[arg(long, default_value_t = 10_000)]
        blobs: usize,
        /// Peers per blob.
        #[arg(long, default_value_t = 10)]
        peers: usize,
        /// Measured rounds, each re-announcing every entry.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Announces in flight.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// HTTP/2 connections they are spread over.
        #[arg(long, default_value_t = 4)]
        connections: usize,
    },
    /// The agent binary in a real cluster: warm pull, first byte, memory.
    Agent {
        #[command(subcommand)]
        bench: agent::AgentBench,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Bench::Hash { size_mib } => runtime.block_on(hash::run(size_mib << 20)),
        Bench::Transfer { size_mib } => runtime.block_on(transfer::run(size_mib << 20)),
        Bench::Origin { size_mib, runs } => runtime.block_on(origin::run(size_mib << 20, runs)),
        Bench::Tracker {
            store,
            redis_url,
            blobs,
            peers,
            rounds,
            concurrency,
            connections,
        } => runtime.block_on(tracker::run(&tracker::TrackerBench {
            store,
            redis_url,
            blobs,
            peers,
            rounds,
            concurrency,
            connections,
        })),
        Bench::Agent { bench } => runtime.block_on(agent::run(bench)),
    }
}
