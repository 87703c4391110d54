//! `shoal-tracker`: reads the configuration, applies flag overrides, and
//! serves until SIGINT or SIGTERM. Everything else lives in the library.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use shoal_tracker::config::{Backend, Config};
use shoal_tracker::{MemoryStore, RedisStore, serve};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

/// Shoal's tracker: hands out peers for each blob and serves its metainfo.
/// Flags override the configuration file; log filtering follows RUST_LOG.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// TOML configuration file (see docs/api.md); defaults apply without one.
    #[arg(long, env = "SHOAL_TRACKER_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on, e.g. 0.0.0.0:7070.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Peer store backend.
    #[arg(long, value_enum)]
    store: Option<Backend>,
    /// Redis URL for `--store redis`.
    #[arg(long)]
    redis_url: Option<String>,
    /// Seconds between announces.
    #[arg(long)]
    interval: Option<u32>,
}

impl Args {
    fn apply(&self, config: &mut Config) {
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(store) = self.store {
            config.store.backend = store;
        }
        if let Some(url) = &self.redis_url {
            config.store.redis_url.clone_from(url);
        }
        if let Some(interval) = self.interval {
            config.announce.interval_seconds = interval;
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    args.apply(&mut config);
    let mut settings = config.settings().context("invalid configuration")?;
    // The configured ring, followed through DNS or Kubernetes from now on;
    // the discovery tasks end with the process.
    let configured = settings.ring.borrow().as_ref().clone();
    settings.ring = shoal_discovery::ring(&config.discovery, configured, Default::default())
        .await
        .context("starting origin discovery")?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let shutdown = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    };
    tracing::info!(
        listen = %listener.local_addr()?,
        store = ?config.store.backend,
        origins = settings.ring.borrow().len(),
        interval_s = settings.interval.as_secs(),
        "tracker serving"
    );
    match config.store.backend {
        Backend::Memory => {
            let store = MemoryStore::new(config.store.max_entries);
            serve(listener, settings, store, shutdown).await?;
        }
        Backend::Redis => {
            let store = RedisStore::connect(&config.store.redis_url)
                .await
                .context("connecting to Redis at store.redis_url")?;
            serve(listener, settings, store, shutdown).await?;
        }
    }
    tracing::info!("tracker stopped");
    Ok(())
}
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
