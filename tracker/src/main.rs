//! `shoal-tracker`: reads the configuration, applies flag overrides, and
//! serves until SIGINT or SIGTERM. Everything else lives in the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use shoal_swarm::config_file::{self, SecretUrl};
use shoal_telemetry::{AdminListen, LogFormat};
use shoal_tracker::config::{Backend, Config, Settings};
use shoal_tracker::{MemoryStore, PeerStore, RedisStore, TrackerMetrics, serve_observed};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// Shoal's tracker: hands out peers for each blob and serves its metainfo.
/// Environment variables (SHOAL_TRACKER_<FLAG>) override the configuration
/// file and flags override both; log filtering follows RUST_LOG.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// TOML configuration file (see docs/api.md); defaults apply without one.
    #[arg(long, env = "SHOAL_TRACKER_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on, e.g. 0.0.0.0:7070.
    #[arg(long, env = "SHOAL_TRACKER_LISTEN")]
    listen: Option<SocketAddr>,
    /// Peer store backend.
    #[arg(long, env = "SHOAL_TRACKER_STORE", value_enum)]
    store: Option<Backend>,
    /// Redis URL for `--store redis`; it may hold a password, so prefer the
    /// environment variable or `--redis-url-file` to the flag.
    #[arg(long, env = "SHOAL_TRACKER_REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,
    /// File holding the Redis URL (a mounted Secret).
    #[arg(
        long,
        env = "SHOAL_TRACKER_REDIS_URL_FILE",
        conflicts_with = "redis_url"
    )]
    redis_url_file: Option<PathBuf>,
    /// Seconds between announces.
    #[arg(long, env = "SHOAL_TRACKER_INTERVAL")]
    interval: Option<u32>,
    /// HTTP address for /metrics, /healthz and /readyz ("" for none).
    #[arg(long, env = "SHOAL_TRACKER_METRICS_LISTEN")]
    metrics_listen: Option<AdminListen>,
    /// Log line format.
    #[arg(long, env = "SHOAL_TRACKER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
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

    /// A Redis URL given here replaces either form of it in the file.
    fn apply(&self, config: &mut Config) {
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(store) = self.store {
            config.store.backend = store;
        }
        if let Some(url) = &self.redis_url {
            config.store.redis_url = Some(SecretUrl::new(url.as_str()));
            config.store.redis_url_file = None;
        }
        if let Some(path) = &self.redis_url_file {
            config.store.redis_url_file = Some(path.clone());
            config.store.redis_url = None;
        }
        if let Some(interval) = self.interval {
            config.announce.interval_seconds = interval;
        }
        if let Some(addr) = self.metrics_listen {
            config.metrics_listen = addr;
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
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
    let config = args.effective_config()?;
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
    let admin = config.metrics_listen.0;
    match config.store.backend {
        Backend::Memory => {
            let store = MemoryStore::new(config.store.max_entries);
            run(listener, settings, store, admin, shutdown).await?;
        }
        Backend::Redis => {
            let url = config.store.redis_url()?;
            let store = RedisStore::connect(url.expose())
                .await
                .with_context(|| format!("connecting to Redis at {}", url.redacted()))?;
            run(listener, settings, store, admin, shutdown).await?;
        }
    }
    tracing::info!("tracker stopped");
    Ok(())
}

/// Serves gRPC and, if configured, the admin endpoints, until `shutdown`.
async fn run<S: PeerStore>(
    listener: TcpListener,
    settings: Settings,
    store: S,
    admin: Option<SocketAddr>,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let store = Arc::new(store);
    let metrics = TrackerMetrics::default();
    let stop_admin = CancellationToken::new();
    if let Some(addr) = admin {
        shoal_tracker::admin::start(addr, Arc::clone(&store), &metrics, stop_admin.clone())
            .await
            .with_context(|| format!("listening on {addr} (metrics_listen)"))?;
    }
    let served = serve_observed(listener, settings, store, metrics, shutdown).await;
    stop_admin.cancel();
    Ok(served?)
}
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
