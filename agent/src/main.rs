//! `shoal-agent`: runs the agent (the default), or with `configure` points a
//! container runtime at it. Everything else lives in the library.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use shoal_agent::Agent;
use shoal_agent::config::{Config, OriginConfig, parse_origin_flag};
use shoal_agent::configure::{self, Outcome};
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

/// Shoal's per-node agent: a registry v2 pull proxy on loopback that
/// swarms blobs. Flags override the configuration file; log filtering
/// follows RUST_LOG.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(clap::Args)]
struct RunArgs {
    /// TOML configuration file (see docs/api.md, "Agent configuration").
    #[arg(long, env = "SHOAL_AGENT_CONFIG")]
    config: Option<PathBuf>,
    /// Registry API address, e.g. 127.0.0.1:5050.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Swarm (peer protocol) address, e.g. 0.0.0.0:7002.
    #[arg(long)]
    peer_listen: Option<SocketAddr>,
    /// Blob cache directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Cache quota in bytes (0 = unlimited).
    #[arg(long)]
    cache_bytes: Option<u64>,
    /// Tracker gRPC URL, e.g. http://10.0.0.5:7070 ("" for none).
    #[arg(long)]
    tracker: Option<String>,
    /// An origin, `name=http://host:port,peer=host:port`; repeat for more.
    /// Replaces the file's [[origins]].
    #[arg(long = "origin", value_parser = parse_origin_flag)]
    origins: Vec<OriginConfig>,
    /// Upstream registry for requests without ?ns= ("" = the origins' default).
    #[arg(long)]
    default_registry: Option<String>,
    /// Upload cap to peers in bytes/s (0 = unlimited).
    #[arg(long)]
    upload_limit: Option<u64>,
    /// Download cap from peers in bytes/s (0 = unlimited).
    #[arg(long)]
    download_limit: Option<u64>,
    /// Zone announced to the tracker.
    #[arg(long)]
    zone: Option<String>,
    /// The node's name in prefetch jobs.
    #[arg(long)]
    node_name: Option<String>,
    /// A label prefetch selectors match, `key=value`; repeat for more.
    /// Added to the file's [labels].
    #[arg(long = "label", value_parser = parse_label)]
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
    fn apply(self, config: &mut Config) {
        let set = |slot: &mut _, value: Option<_>| {
            if let Some(value) = value {
                *slot = value;
            }
        };
        set(&mut config.listen, self.listen);
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
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    match args.command {
        Some(Command::Configure { runtime }) => configure_runtime(runtime),
        None => tokio::runtime::Runtime::new()
            .context("starting the tokio runtime")?
            .block_on(run(args.run)),
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
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    args.apply(&mut config);
    let settings = config.settings().context("invalid configuration")?;
    let agent = Agent::start(settings).await.context("starting the agent")?;
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutting down");
    agent.shutdown().await;
    Ok(())
}
