//! `shoal-origin`: runs one origin. Everything but flag parsing and logging
//! setup lives in the library.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use shoal_origin::{Config, Origin};
use shoal_telemetry::LogFormat;
use tokio::signal::unix::{SignalKind, signal};

/// Shoal's origin: pulls each blob from the upstream registry once, stores
/// it and seeds it to the swarm. Flags override the configuration file;
/// log filtering follows RUST_LOG.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// TOML configuration file (see docs/api.md, "Origin configuration").
    #[arg(long, env = "SHOAL_ORIGIN_CONFIG")]
    config: Option<PathBuf>,
    /// HTTP API address, e.g. 0.0.0.0:8080.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Swarm (peer protocol) address, e.g. 0.0.0.0:7001.
    #[arg(long)]
    peer_listen: Option<SocketAddr>,
    /// Blob store directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// This origin's name in the ring (must appear in [[origins]]).
    #[arg(long)]
    name: Option<String>,
    /// Store quota in bytes (0 = unlimited).
    #[arg(long)]
    cache_bytes: Option<u64>,
    /// Upload cap to peers in bytes/s (0 = unlimited).
    #[arg(long)]
    upload_limit: Option<u64>,
    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

impl Args {
    fn apply(&self, config: &mut Config) {
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(peer_listen) = self.peer_listen {
            config.peer_listen = peer_listen;
        }
        if let Some(dir) = &self.data_dir {
            config.data_dir = dir.clone();
        }
        if let Some(name) = &self.name {
            config.name = name.clone();
        }
        if let Some(bytes) = self.cache_bytes {
            config.cache_bytes = bytes;
        }
        if let Some(limit) = self.upload_limit {
            config.upload_limit = limit;
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    shoal_telemetry::init_logging(args.log_format)?;
    tokio::runtime::Runtime::new()
        .context("starting the tokio runtime")?
        .block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    args.apply(&mut config);
    let settings = config.settings().context("invalid configuration")?;
    let origin = Origin::start(settings)
        .await
        .context("starting the origin")?;
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutting down");
    origin.shutdown().await;
    Ok(())
}
