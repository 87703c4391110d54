//! A Shoal cluster of real processes on loopback: one tracker, origins and
//! agents, each started from a TOML file written here, as an operator would.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;

use crate::process::{Process, free_addr};

/// How long a component may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// What to start.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// Origins (each owns blobs by rendezvous hashing).
    pub origins: usize,
    /// Agents.
    pub agents: usize,
    /// The origins' `[upstreams."<namespace>"]` tables and keys, verbatim.
    pub upstream_toml: String,
    /// The namespace requests without `?ns=` go to.
    pub default_registry: String,
    /// Upload cap of each origin, bytes/s (0 = none).
    pub origin_upload_limit: u64,
    /// Upload cap of each agent, bytes/s (0 = none).
    pub agent_upload_limit: u64,
}

/// A running cluster; every process is killed when it is dropped.
pub struct Cluster {
    /// Working directory: configs, logs, stores.
    pub dir: PathBuf,
    /// The tracker.
    pub tracker: Process,
    /// The tracker's gRPC address.
    pub tracker_addr: SocketAddr,
    /// The tracker's admin address (`/metrics`, `/healthz`, `/readyz`).
    pub tracker_metrics: SocketAddr,
    /// Origins, with their HTTP addresses (which serve the admin
    /// endpoints too).
    pub origins: Vec<(Process, SocketAddr)>,
    /// Agents, with their registry API addresses.
    pub agents: Vec<(Process, SocketAddr)>,
    /// The agents' admin addresses, in the order of `agents`.
    pub agent_metrics: Vec<SocketAddr>,
}

impl Cluster {
    /// Starts origins, the tracker, then the agents, each waited on.
    pub fn start(dir: &Path, spec: &ClusterSpec) -> anyhow::Result<Cluster> {
        let slots = (0..spec.origins)
            .map(|i| Ok((format!("origin-{i}"), free_addr()?, free_addr()?)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut ring = String::new();
        for (name, http, peer) in &slots {
            let _ = write!(
                ring,
                "[[origins]]\nname = {name:?}\nhttp = \"http://{http}\"\npeer = \"{peer}\"\n"
            );
        }
        let replication = spec.origins.clamp(1, 2);

        let mut origins = Vec::new();
        for (name, http, peer) in &slots {
            let config = format!(
                "name = {name:?}\nlisten = \"{http}\"\npeer_listen = \"{peer}\"\n\
                 data_dir = {data:?}\nupload_limit = {up}\nreplication = {replication}\n\
                 default_registry = {default:?}\n{upstreams}\n{ring}",
                data = path_str(&dir.join(name)),
                up = spec.origin_upload_limit,
                default = spec.default_registry,
                upstreams = spec.upstream_toml,
            );
            let mut process = start(dir, name, "shoal-origin", &config)?;
            process.wait_listening(*http, START_TIMEOUT)?;
            origins.push((process, *http));
        }

        let (tracker_addr, tracker_metrics) = (free_addr()?, free_addr()?);
        let config = format!(
            "listen = \"{tracker_addr}\"\nmetrics_listen = \"{tracker_metrics}\"\n\
             [announce]\ninterval_seconds = 1\n\
             [metainfo]\nreplication = {replication}\n{ring}"
        );
        let mut tracker = start(dir, "tracker", "shoal-tracker", &config)?;
        tracker.wait_listening(tracker_addr, START_TIMEOUT)?;

        let mut agents = Vec::new();
        let mut agent_metrics = Vec::new();
        for i in 0..spec.agents {
            let name = format!("agent-{i}");
            let (listen, peer, metrics) = (free_addr()?, free_addr()?, free_addr()?);
            // Named as the process is; `parity` lets prefetch tests select
            // some of the agents.
            let parity = if i % 2 == 0 { "even" } else { "odd" };
            let config = format!(
                "listen = \"{listen}\"\npeer_listen = \"{peer}\"\nmetrics_listen = \"{metrics}\"\n\
                 data_dir = {data:?}\n\
                 tracker = \"http://{tracker_addr}\"\ndefault_registry = {default:?}\n\
                 upload_limit = {up}\nreplication = {replication}\nnode_name = {name:?}\n\
                 [labels]\nparity = {parity:?}\n{ring}",
                data = path_str(&dir.join(&name)),
                default = spec.default_registry,
                up = spec.agent_upload_limit,
            );
            let mut process = start(dir, &name, "shoal-agent", &config)?;
            process.wait_listening(listen, START_TIMEOUT)?;
            agents.push((process, listen));
            agent_metrics.push(metrics);
        }
        Ok(Cluster {
            dir: dir.to_owned(),
            tracker,
            tracker_addr,
            tracker_metrics,
            origins,
            agents,
            agent_metrics,
        })
    }

    /// Every component's log, for a failing test's message.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        let processes = std::iter::once(&self.tracker)
            .chain(self.origins.iter().map(|(p, _)| p))
            .chain(self.agents.iter().map(|(p, _)| p));
        for process in processes {
            let log = process.log_text();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            let _ = writeln!(out, "--- {} (last lines) ---", process.name());
            for line in tail.into_iter().rev() {
                let _ = writeln!(out, "{line}");
            }
        }
        out
    }
}

fn start(dir: &Path, name: &str, binary: &str, config: &str) -> anyhow::Result<Process> {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, config).with_context(|| format!("writing {}", path.display()))?;
    Process::spawn(name, binary, &["--config".to_owned(), path_str(&path)], dir)
}

fn path_str(path: &Path) -> String {
    path.display().to_string()
}

/// Bytes the origin at `http` has sent to agents, over HTTP and the peer
/// protocol, from its stats page.
pub async fn origin_served(http: SocketAddr) -> anyhow::Result<u64> {
    let stats: serde_json::Value = reqwest::get(format!("http://{http}/shoal/v1/stats"))
        .await?
        .error_for_status()?
        .json()
        .await?;
    let counter = |name: &str| {
        stats[name]
            .as_u64()
            .with_context(|| format!("the origin's stats lack {name}"))
    };
    Ok(counter("http_bytes_sent")? + counter("peer_bytes_sent")?)
}

/// `sha256:<hex>` of `bytes`: what a client's bytes must match.
pub fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}
