//! `shoal dev up`: a long-running local cluster on loopback for trying real
//! clients (skopeo, docker, containerd) against. It writes a state file with
//! every URL, runs until SIGINT or SIGTERM, then stops every component and
//! removes what it created.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use serde::Serialize;
use tokio::signal::unix::{SignalKind, signal};

use crate::cluster::{Cluster, ClusterOptions, Upstream};
use crate::image;

/// `shoal dev` subcommands.
#[derive(Debug, Subcommand)]
pub enum DevCommand {
    /// Start a cluster and keep it running in the foreground.
    Up(UpArgs),
}

/// `shoal dev up` flags.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Agents to run.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=64))]
    agents: u16,
    /// Origins to run.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=8))]
    origins: u16,
    /// A real upstream registry, e.g. http://127.0.0.1:5000; without it the
    /// origins serve a generated image (`shoal/demo:latest`).
    #[arg(long)]
    upstream: Option<String>,
    /// Size of the generated image in MiB (without --upstream).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=65536))]
    size_mib: u64,
    /// Where to write the cluster's URLs as JSON.
    #[arg(long)]
    state_file: Option<PathBuf>,
    /// Work directory (caches, image); a temporary one, removed at exit, if
    /// not given.
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// What the state file holds: enough for a script or test to use the cluster.
#[derive(Debug, Serialize)]
struct State {
    /// Registry API URLs of the agents.
    agents: Vec<String>,
    /// HTTP API URLs of the origins.
    origins: Vec<String>,
    /// The tracker's gRPC URL.
    tracker: String,
    /// The upstream: a registry URL, or the layout directory served.
    upstream: String,
}

/// Runs a `dev` subcommand.
pub async fn run(command: DevCommand) -> anyhow::Result<ExitCode> {
    match command {
        DevCommand::Up(args) => up(args).await,
    }
}

async fn up(args: UpArgs) -> anyhow::Result<ExitCode> {
    let temp;
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::Builder::new()
                .prefix("shoal-dev-")
                .tempdir()
                .context("creating a temporary directory")?;
            temp.path().to_owned()
        }
    };
    let (upstream, shown) = match &args.upstream {
        Some(url) => {
            check_upstream(url).await?;
            (Upstream::Registry(url.clone()), url.clone())
        }
        None => {
            let image_dir = dir.join("image");
            let generate_dir = image_dir.clone();
            let total = args.size_mib << 20;
            tokio::task::spawn_blocking(move || image::generate(&generate_dir, total, 4, 1))
                .await
                .context("image generator")??;
            let shown = image_dir.display().to_string();
            (Upstream::Layout(image_dir), shown)
        }
    };
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let cluster = Cluster::start(ClusterOptions {
        dir: dir.clone(),
        agents: usize::from(args.agents),
        origins: usize::from(args.origins),
        upstream,
        upload_limit: 0,
        download_limit: 0,
    })
    .await?;
    let state = State {
        agents: cluster.agent_urls(),
        origins: cluster.origin_urls(),
        tracker: cluster.tracker_url(),
        upstream: shown,
    };
    if let Some(path) = &args.state_file {
        write_state(path, &state)?;
    }
    eprintln!("{}", serde_json::to_string_pretty(&state)?);
    if let (None, Some(agent)) = (&args.upstream, state.agents.first()) {
        let host = agent.trim_start_matches("http://");
        eprintln!(
            "try: skopeo copy --src-tls-verify=false docker://{host}/{}:{} oci:/tmp/demo-image",
            image::NAME,
            image::TAG
        );
    }
    eprintln!("running; Ctrl-C to stop");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    eprintln!("stopping");
    cluster.stop().await;
    if let Some(path) = &args.state_file {
        let _ = std::fs::remove_file(path);
    }
    Ok(ExitCode::SUCCESS)
}

/// Fails fast, naming the URL, when the upstream does not answer the
/// registry API's version check (any HTTP answer, 401 included, will do).
async fn check_upstream(url: &str) -> anyhow::Result<()> {
    if !url.starts_with("http://") && !url.starts_with("https://") {
        bail!("--upstream {url}: must be an http:// or https:// URL");
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .context("building the HTTP client")?;
    let probe = format!("{}/v2/", url.trim_end_matches('/'));
    client
        .get(&probe)
        .send()
        .await
        .with_context(|| format!("upstream {url} is unreachable (GET {probe})"))?;
    Ok(())
}

/// Writes the state file atomically, so a reader never sees half of it.
fn write_state(path: &Path, state: &State) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(state)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unreachable_upstream_is_named() {
        // A port nothing listens on: bind one, then drop it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let error = check_upstream(&url).await.expect_err("unreachable");
        assert!(format!("{error:#}").contains(&url), "{error:#}");
    }

    #[tokio::test]
    async fn non_http_upstream_is_refused() {
        let error = check_upstream("ftp://example").await.expect_err("refused");
        assert!(error.to_string().contains("--upstream ftp://example"));
    }
}
