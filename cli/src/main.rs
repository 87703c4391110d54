//! `shoal`: the user's command.
//!
//! - `demo`: the whole system on loopback with an embedded image, pulled
//!   through every agent, with progress bars and a summary (`demo`).
//! - `dev up`: the same cluster, long-running, for trying real clients
//!   against it (`dev`).
//! - `status`: what an agent holds and how its transfers go (`status`).
//! - `prefetch`: warms the caches of matching nodes before a rollout
//!   (`prefetch`).
//! - `seed` and `get`: publish a file through an origin, fetch it through
//!   an agent's swarm (`seed`, `get`).
//!
//! Components run in this process as real servers on real loopback sockets
//! (`cluster`), so the quickstart needs nothing but `cargo run`.

mod bound;
mod cluster;
mod demo;
mod dev;
mod get;
mod image;
mod prefetch;
mod progress;
mod pull;
mod seed;
mod status;
mod summary;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Shoal: peer-to-peer distribution of container images.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a tracker, origins and agents on loopback and pull a generated
    /// image through every agent; exits 0 only if every digest arrived intact.
    Demo(demo::DemoArgs),
    /// A long-running local cluster.
    Dev {
        #[command(subcommand)]
        command: dev::DevCommand,
    },
    /// Show an agent's blobs, their progress, peers and cache use.
    Status(status::StatusArgs),
    /// Pull an image into the cache of every matching node before a
    /// rollout; exits non-zero naming the nodes that failed.
    Prefetch(prefetch::PrefetchArgs),
    /// Publish a file through an origin; prints its digest.
    Seed(seed::SeedArgs),
    /// Fetch a published file through the local agent, resuming an
    /// interrupted fetch and verifying the digest.
    Get(get::GetArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Logs would tear the progress bars: warnings only unless RUST_LOG says.
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("shoal: starting the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Demo(args) => demo::run(args).await,
            Command::Dev { command } => dev::run(command).await,
            Command::Status(args) => status::run(args).await,
            Command::Prefetch(args) => prefetch::run(args).await,
            Command::Seed(args) => seed::run(args).await,
            Command::Get(args) => get::run(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("shoal: {error:#}");
            ExitCode::FAILURE
        }
    }
}
