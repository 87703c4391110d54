//! `shoal-origin`: runs one origin. Everything but flag parsing and logging
//! setup lives in the library.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use shoal_origin::{Config, Origin};
use shoal_swarm::config_file;
use shoal_telemetry::LogFormat;
use tokio::signal::unix::{SignalKind, signal};

/// Shoal's origin: pulls each blob from the upstream registry once, stores
/// it and seeds it to the swarm. Environment variables (SHOAL_ORIGIN_<FLAG>)
/// override the configuration file and flags override both; log filtering
/// follows RUST_LOG.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// TOML configuration file (see docs/api.md, "Origin configuration").
    #[arg(long, env = "SHOAL_ORIGIN_CONFIG")]
    config: Option<PathBuf>,
    /// HTTP API address, e.g. 0.0.0.0:8080.
    #[arg(long, env = "SHOAL_ORIGIN_LISTEN")]
    listen: Option<SocketAddr>,
    /// Swarm (peer protocol) address, e.g. 0.0.0.0:7001.
    #[arg(long, env = "SHOAL_ORIGIN_PEER_LISTEN")]
    peer_listen: Option<SocketAddr>,
    /// Blob store directory.
    #[arg(long, env = "SHOAL_ORIGIN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// This origin's name in the ring (must appear in [[origins]]).
    #[arg(long, env = "SHOAL_ORIGIN_NAME")]
    name: Option<String>,
    /// Store quota in bytes (0 = unlimited).
    #[arg(long, env = "SHOAL_ORIGIN_CACHE_BYTES")]
    cache_bytes: Option<u64>,
    /// Upload cap to peers in bytes/s (0 = unlimited).
    #[arg(long, env = "SHOAL_ORIGIN_UPLOAD_LIMIT")]
    upload_limit: Option<u64>,
    /// Log line format.
    #[arg(long, env = "SHOAL_ORIGIN_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Print the effective configuration (file, environment, flags) as
    /// TOML, secrets redacted, and exit.
    #[arg(long)]
    print_config: bool,
}

impl Args {
    /// The file's configuration with the environment and flags over it.
    fn effective_config(&self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        self.apply(&mut config);
        Ok(config)
    }

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
    if args.print_config {
        let config = args.effective_config()?;
        print!(
            "{}",
            config_file::print(&config).context("printing the configuration")?
        );
        return Ok(());
    }
    shoal_telemetry::init_logging(args.log_format)?;
    tokio::runtime::Runtime::new()
        .context("starting the tokio runtime")?
        .block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let config = args.effective_config()?;
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
