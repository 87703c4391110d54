//! A whole Shoal cluster in this process: the real tracker, origins and
//! agents, each a real server on its own loopback sockets, configured
//! through the same TOML the binaries read (so the demo exercises the
//! configuration path too, not a side door).

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::PathBuf;

use anyhow::Context as _;
use shoal_agent::Agent;
use shoal_origin::Origin;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The namespace under which the origins serve a local OCI layout; agents
/// use it as their default registry, so clients need no `?ns=`.
pub const LAYOUT_NAMESPACE: &str = "shoal.local";

/// Where the origins read images from.
#[derive(Debug, Clone)]
pub enum Upstream {
    /// An OCI image layout directory (the embedded default).
    Layout(PathBuf),
    /// A registry, as `http://host:port` (plain HTTP) or `https://host:port`.
    Registry(String),
}

/// What to start.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Work directory: one cache directory per component under it.
    pub dir: PathBuf,
    /// Agents to run.
    pub agents: usize,
    /// Origins to run (replication is at most 2).
    pub origins: usize,
    /// Where the origins pull from.
    pub upstream: Upstream,
    /// Upload cap of every origin and agent, bytes/s; 0 = none.
    pub upload_limit: u64,
    /// Download cap of every agent, bytes/s; 0 = none.
    pub download_limit: u64,
}

/// A running cluster; [`Cluster::stop`] shuts everything down.
pub struct Cluster {
    tracker_addr: SocketAddr,
    tracker_stop: oneshot::Sender<()>,
    tracker_task: JoinHandle<()>,
    origins: Vec<Origin>,
    agents: Vec<Agent>,
}

/// One origin's addresses, fixed before any origin starts because every
/// origin, the tracker and every agent must know the whole ring.
struct OriginSlot {
    name: String,
    http: SocketAddr,
    peer: SocketAddr,
}

impl Cluster {
    /// Starts origins, then the tracker, then the agents.
    pub async fn start(options: ClusterOptions) -> anyhow::Result<Cluster> {
        let slots = (0..options.origins)
            .map(|i| {
                Ok(OriginSlot {
                    name: format!("origin-{i}"),
                    http: free_loopback_addr()?,
                    peer: free_loopback_addr()?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let ring = ring_toml(&slots);
        let (namespace, upstream_table) = upstream_toml(&options.upstream)?;
        let replication = options.origins.clamp(1, 2);

        let mut origins = Vec::with_capacity(slots.len());
        for slot in &slots {
            let data_dir = options.dir.join(&slot.name);
            let toml = format!(
                "name = {name:?}\nlisten = \"{http}\"\npeer_listen = \"{peer}\"\n\
                 data_dir = {dir:?}\nupload_limit = {up}\nreplication = {replication}\n\
                 default_registry = {namespace:?}\n{upstream_table}{ring}",
                name = slot.name,
                http = slot.http,
                peer = slot.peer,
                dir = data_dir.display().to_string(),
                up = options.upload_limit,
            );
            let settings = shoal_origin::Config::parse(&toml)
                .and_then(|config| config.settings())
                .with_context(|| format!("{} configuration", slot.name))?;
            let origin = Origin::start(settings)
                .await
                .with_context(|| format!("starting {}", slot.name))?;
            origins.push(origin);
        }

        let tracker_toml = format!(
            "[announce]\ninterval_seconds = 1\n[metainfo]\nreplication = {replication}\n{ring}"
        );
        let tracker_settings = shoal_tracker::Config::parse(&tracker_toml)
            .map_err(anyhow::Error::msg)
            .and_then(|config| Ok(config.settings()?))
            .context("tracker configuration")?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the tracker")?;
        let tracker_addr = listener.local_addr().context("tracker address")?;
        let (tracker_stop, stopped) = oneshot::channel::<()>();
        let tracker_task = tokio::spawn(async move {
            let served = shoal_tracker::serve(
                listener,
                tracker_settings,
                shoal_tracker::MemoryStore::new(1_000_000),
                async {
                    let _ = stopped.await;
                },
            )
            .await;
            if let Err(error) = served {
                tracing::error!(%error, "tracker failed");
            }
        });

        let mut agents = Vec::with_capacity(options.agents);
        for i in 0..options.agents {
            let data_dir = options.dir.join(format!("agent-{i}"));
            let toml = format!(
                "listen = \"127.0.0.1:0\"\npeer_listen = \"127.0.0.1:0\"\n\
                 data_dir = {dir:?}\ncache_bytes = 0\ntracker = \"http://{tracker_addr}\"\n\
                 default_registry = {namespace:?}\nupload_limit = {up}\n\
                 download_limit = {down}\nreplication = {replication}\n{ring}",
                dir = data_dir.display().to_string(),
                up = options.upload_limit,
                down = options.download_limit,
            );
            let settings = shoal_agent::Config::parse(&toml)
                .map_err(anyhow::Error::msg)
                .and_then(|config| Ok(config.settings()?))
                .with_context(|| format!("agent-{i} configuration"))?;
            let agent = Agent::start(settings)
                .await
                .with_context(|| format!("starting agent-{i}"))?;
            agents.push(agent);
        }
        Ok(Cluster {
            tracker_addr,
            tracker_stop,
            tracker_task,
            origins,
            agents,
        })
    }

    /// Registry API base URLs of the agents.
    pub fn agent_urls(&self) -> Vec<String> {
        self.agents
            .iter()
            .map(|agent| format!("http://{}", agent.registry_addr()))
            .collect()
    }

    /// HTTP API base URLs of the origins.
    pub fn origin_urls(&self) -> Vec<String> {
        self.origins
            .iter()
            .map(|origin| format!("http://{}", origin.http_addr()))
            .collect()
    }

    /// The tracker's gRPC URL.
    pub fn tracker_url(&self) -> String {
        format!("http://{}", self.tracker_addr)
    }

    /// Blob bytes the origins sent, over HTTP and to the swarm.
    pub fn origin_bytes_sent(&self) -> u64 {
        self.origins
            .iter()
            .map(|origin| {
                let stats = origin.stats();
                stats.http_bytes_sent + stats.peer_bytes_sent
            })
            .sum()
    }

    /// Blob bytes agents uploaded to each other.
    pub fn peer_bytes_sent(&self) -> u64 {
        self.agents
            .iter()
            .flat_map(|agent| agent.blobs().session().torrents())
            .map(|torrent| torrent.progress().uploaded)
            .sum()
    }

    /// Stops agents first (so none falls back to a vanished origin), then
    /// the tracker, then the origins.
    pub async fn stop(self) {
        for agent in self.agents {
            agent.shutdown().await;
        }
        let _ = self.tracker_stop.send(());
        let _ = self.tracker_task.await;
        for origin in self.origins {
            origin.shutdown().await;
        }
    }
}

/// A loopback address that was free a moment ago. Origins need their
/// addresses before they start (the ring names them), so they cannot bind
/// port 0 and report back; the window for another process to take the port
/// is the few milliseconds until the origin binds it.
fn free_loopback_addr() -> anyhow::Result<SocketAddr> {
    let listener = StdListener::bind("127.0.0.1:0").context("finding a free loopback port")?;
    listener
        .local_addr()
        .context("finding a free loopback port")
}

/// `[[origins]]` tables naming every origin, as tracker, origins and agents
/// all expect them.
fn ring_toml(slots: &[OriginSlot]) -> String {
    let mut toml = String::new();
    for slot in slots {
        let _ = write!(
            toml,
            "[[origins]]\nname = {:?}\nhttp = \"http://{}\"\npeer = \"{}\"\n",
            slot.name, slot.http, slot.peer
        );
    }
    toml
}

/// The namespace clients use and the origins' `[upstreams]` table for it.
fn upstream_toml(upstream: &Upstream) -> anyhow::Result<(String, String)> {
    match upstream {
        Upstream::Layout(dir) => Ok((
            LAYOUT_NAMESPACE.to_owned(),
            format!(
                "[upstreams.{LAYOUT_NAMESPACE:?}]\nlayout = {:?}\n",
                dir.display().to_string()
            ),
        )),
        Upstream::Registry(url) => {
            let (insecure, host) = if let Some(host) = url.strip_prefix("http://") {
                (true, host)
            } else if let Some(host) = url.strip_prefix("https://") {
                (false, host)
            } else {
                anyhow::bail!("--upstream {url:?}: expected http://host:port or https://host:port");
            };
            let host = host.trim_end_matches('/');
            Ok((
                host.to_owned(),
                format!("[upstreams.{host:?}]\ninsecure = {insecure}\n"),
            ))
        }
    }
}
