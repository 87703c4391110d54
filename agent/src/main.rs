//! `shoal-agent`: runs the agent (the default), or with `configure` points a
//! container runtime at it. Everything else lives in the library.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use shoal_agent::Agent;
use shoal_agent::config::{Config, OriginConfig, parse_origin_flag};
use shoal_agent::configure::{self, Outcome};
use shoal_swarm::config_file;
use shoal_telemetry::{AdminListen, LogFormat};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// Shoal's per-node agent: a registry v2 pull proxy on loopback that
/// swarms blobs. Environment variables (SHOAL_AGENT_<FLAG>) override the
/// configuration file and flags override both; log filtering follows
/// RUST_LOG.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
    /// Log line format.
    #[arg(long, env = "SHOAL_AGENT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
}

#[derive(clap::Args)]
struct RunArgs {
    /// TOML configuration file (see docs/api.md, "Agent configuration").
    #[arg(long, env = "SHOAL_AGENT_CONFIG")]
    config: Option<PathBuf>,
    /// Registry API address, e.g. 127.0.0.1:5050.
    #[arg(long, env = "SHOAL_AGENT_LISTEN")]
    listen: Option<SocketAddr>,
    /// Address for /metrics, /healthz and /readyz ("" for none).
    #[arg(long, env = "SHOAL_AGENT_METRICS_LISTEN")]
    metrics_listen: Option<AdminListen>,
    /// Swarm (peer protocol) address, e.g. 0.0.0.0:7002.
    #[arg(long, env = "SHOAL_AGENT_PEER_LISTEN")]
    peer_listen: Option<SocketAddr>,
    /// Blob cache directory.
    #[arg(long, env = "SHOAL_AGENT_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Cache quota in bytes (0 = unlimited).
    #[arg(long, env = "SHOAL_AGENT_CACHE_BYTES")]
    cache_bytes: Option<u64>,
    /// Tracker gRPC URL, e.g. http://10.0.0.5:7070 ("" for none).
    #[arg(long, env = "SHOAL_AGENT_TRACKER")]
    tracker: Option<String>,
    /// An origin, `name=http://host:port,peer=host:port`; repeat for more
    /// (in the environment variable, separate them with spaces). Replaces
    /// the file's [[origins]].
    #[arg(
        long = "origin",
        env = "SHOAL_AGENT_ORIGIN",
        value_delimiter = ' ',
        value_parser = parse_origin_flag
    )]
    origins: Vec<OriginConfig>,
    /// Upstream registry for requests without ?ns= ("" = the origins' default).
    #[arg(long, env = "SHOAL_AGENT_DEFAULT_REGISTRY")]
    default_registry: Option<String>,
    /// Upload cap to peers in bytes/s (0 = unlimited).
    #[arg(long, env = "SHOAL_AGENT_UPLOAD_LIMIT")]
    upload_limit: Option<u64>,
    /// Download cap from peers in bytes/s (0 = unlimited).
    #[arg(long, env = "SHOAL_AGENT_DOWNLOAD_LIMIT")]
    download_limit: Option<u64>,
    /// Zone announced to the tracker.
    #[arg(long, env = "SHOAL_AGENT_ZONE")]
    zone: Option<String>,
    /// Print the effective configuration (file, environment, flags) as
    /// TOML, secrets redacted, and exit.
    #[arg(long)]
    print_config: bool,
    /// The node's name in prefetch jobs.
    #[arg(long, env = "SHOAL_AGENT_NODE_NAME")]
    node_name: Option<String>,
    /// A label prefetch selectors match, `key=value`; repeat for more (in
    /// the environment variable, separate them with spaces). Added to the
    /// file's [labels].
    #[arg(
        long = "label",
        env = "SHOAL_AGENT_LABEL",
        value_delimiter = ' ',
        value_parser = parse_label
    )]
    labels: Vec<(String, String)>,
}

fn parse_label(raw: &str) -> Result<(String, String), String> {
    raw.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("--label {raw:?}: expected key=value"))
}

#[derive(Subcommand)]
enum Command {
    /// Point a container runtime at the agent.
    Configure {
        #[command(subcommand)]
        runtime: Runtime,
    },
}

#[derive(Subcommand)]
enum Runtime {
    /// Write DIR/<registry>/hosts.toml for each registry.
    Containerd {
        /// Registries to mirror, comma separated, e.g. docker.io,ghcr.io.
        #[arg(long, value_delimiter = ',', required = true)]
        registries: Vec<String>,
        /// containerd's hosts directory, e.g. /etc/containerd/certs.d.
        #[arg(long)]
        hosts_dir: PathBuf,
        /// The agent's registry API URL.
        #[arg(long, default_value = "http://127.0.0.1:5050")]
        agent_url: String,
    },
    /// Set registry-mirrors in Docker's daemon.json (Docker Hub only).
    Docker {
        /// Path of daemon.json, e.g. /etc/docker/daemon.json.
        #[arg(long)]
        daemon_json: PathBuf,
        /// The agent's registry API URL.
        #[arg(long, default_value = "http://127.0.0.1:5050")]
        agent_url: String,
    },
}

impl RunArgs {
    /// The file's configuration with the environment and flags over it.
    fn effective_config(self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        self.apply(&mut config);
        Ok(config)
    }

    fn apply(self, config: &mut Config) {
        let set = |slot: &mut _, value: Option<_>| {
            if let Some(value) = value {
                *slot = value;
            }
        };
        set(&mut config.listen, self.listen);
        if let Some(addr) = self.metrics_listen {
            config.metrics_listen = addr;
        }
        set(&mut config.peer_listen, self.peer_listen);
        if let Some(dir) = self.data_dir {
            config.data_dir = dir;
        }
        if let Some(bytes) = self.cache_bytes {
            config.cache_bytes = bytes;
        }
        if let Some(tracker) = self.tracker {
            config.tracker = tracker;
        }
        if !self.origins.is_empty() {
            config.origins = self.origins;
        }
        if let Some(registry) = self.default_registry {
            config.default_registry = registry;
        }
        if let Some(limit) = self.upload_limit {
            config.upload_limit = limit;
        }
        if let Some(limit) = self.download_limit {
            config.download_limit = limit;
        }
        if let Some(zone) = self.zone {
            config.zone = zone;
        }
        if let Some(name) = self.node_name {
            config.node_name = name;
        }
        config.labels.extend(self.labels);
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.command.is_none() && args.run.print_config {
        let config = args.run.effective_config()?;
        print!(
            "{}",
            config_file::print(&config).context("printing the configuration")?
        );
        return Ok(());
    }
    shoal_telemetry::init_logging(args.log_format)?;
    match args.command {
        Some(Command::Configure { runtime }) => configure_runtime(runtime),
        None => {
            if let Some(error) = shoal_agent::malloc::apply() {
                tracing::warn!(%error, "could not restart under the malloc tunables; running with glibc's defaults");
            }
            tokio::runtime::Runtime::new()
                .context("starting the tokio runtime")?
                .block_on(run(args.run))
        }
    }
}

fn configure_runtime(runtime: Runtime) -> anyhow::Result<()> {
    let report = |path: &std::path::Path, outcome: Outcome| match outcome {
        Outcome::Written => println!("wrote {}", path.display()),
        Outcome::Unchanged => println!("unchanged {}", path.display()),
    };
    match runtime {
        Runtime::Containerd {
            registries,
            hosts_dir,
            agent_url,
        } => {
            let outcomes = configure::containerd::configure(&hosts_dir, &registries, &agent_url)
                .context("configuring containerd")?;
            for (path, outcome) in outcomes {
                report(&path, outcome);
            }
        }
        Runtime::Docker {
            daemon_json,
            agent_url,
        } => {
            let outcome = configure::docker::configure(&daemon_json, &agent_url)
                .context("configuring Docker")?;
            report(&daemon_json, outcome);
            if outcome == Outcome::Written {
                println!("restart (or reload) the Docker daemon to use the mirror");
            }
        }
    }
    Ok(())
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let config = args.effective_config()?;
    let settings = config.settings().context("invalid configuration")?;
    let agent = Agent::start(settings).await.context("starting the agent")?;
    let stop_admin = CancellationToken::new();
    if let AdminListen(Some(addr)) = config.metrics_listen {
        let (bound, _) = shoal_telemetry::serve(addr, agent.admin_router(), stop_admin.clone())
            .await
            .with_context(|| format!("listening on {addr} (metrics_listen)"))?;
        tracing::info!(addr = %bound, "admin endpoints (metrics, health) serving");
    }
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutting down");
    agent.shutdown().await;
    stop_admin.cancel();
    Ok(())
}
