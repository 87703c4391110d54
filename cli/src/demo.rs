//! `shoal demo`: generate an image, start a cluster on loopback, pull the
//! image through every agent at once, and report where the bytes came from
//! and how the time compares with the P2P lower bound.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use clap::Args;

use crate::bound::{Capacities, rate_from_limit};
use crate::cluster::{Cluster, ClusterOptions, Upstream};
use crate::image;
use crate::progress::Bars;
use crate::pull::Puller;
use crate::summary::{AgentPull, Summary};

/// Bytes per second in one Mbit/s.
const MBIT: u64 = 1_000_000 / 8;

/// `shoal demo` flags.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Agents (nodes) pulling the image.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    agents: u16,
    /// Origins seeding it (replication is min(2, origins)).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=8))]
    origins: u16,
    /// Image size in MiB, split evenly over the layers.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(1..=65536))]
    size_mib: u64,
    /// Layers in the image.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=128))]
    layers: u16,
    /// Upload cap of every origin and every agent, in Mbit/s; 0 = none. The
    /// lower bound is computed from the caps, so without any there is none.
    #[arg(long, default_value_t = 200)]
    upload_mbit: u64,
    /// Download cap of every agent, in Mbit/s; 0 = none.
    #[arg(long, default_value_t = 0)]
    download_mbit: u64,
    /// Seed of the image's random layers.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Work directory (image, caches); a fresh temporary one, removed at
    /// exit, if not given. Reusing one keeps the agents' caches warm.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Print the summary as one JSON object instead of text and bars.
    #[arg(long)]
    json: bool,
}

/// Runs the demo; the exit code says whether every digest arrived intact.
pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let temp;
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::Builder::new()
                .prefix("shoal-demo-")
                .tempdir()
                .context("creating a temporary directory")?;
            temp.path().to_owned()
        }
    };
    let bars = Bars::new(!args.json);
    let image_dir = dir.join("image");
    let total = args.size_mib << 20;
    let (layers, seed) = (usize::from(args.layers), args.seed);
    let generate_dir = image_dir.clone();
    tokio::task::spawn_blocking(move || image::generate(&generate_dir, total, layers, seed))
        .await
        .context("image generator")??;
    let upload_limit = args.upload_mbit * MBIT;
    let download_limit = args.download_mbit * MBIT;
    let cluster = Cluster::start(ClusterOptions {
        dir: dir.clone(),
        agents: usize::from(args.agents),
        origins: usize::from(args.origins),
        upstream: Upstream::Layout(image_dir),
        upload_limit,
        download_limit,
    })
    .await?;
    bars.println(format!(
        "cluster up: tracker {}, {} origins, {} agents; pulling {}:{}",
        cluster.tracker_url(),
        args.origins,
        args.agents,
        image::NAME,
        image::TAG
    ));
    let outcome = tokio::select! {
        pulls = pull_everywhere(&cluster, &bars) => Some(pulls),
        _ = tokio::signal::ctrl_c() => None,
    };
    let Some((pulls, wall_seconds)) = outcome else {
        cluster.stop().await;
        eprintln!("shoal demo: interrupted; cluster stopped");
        return Ok(ExitCode::from(130));
    };
    let origin_bytes = cluster.origin_bytes_sent();
    let peer_bytes = cluster.peer_bytes_sent();
    cluster.stop().await;

    let image_bytes = pulls.iter().map(|p| p.bytes).max().unwrap_or(0);
    let agents = usize::from(args.agents);
    let capacities = Capacities {
        seed_upload: rate_from_limit(upload_limit) * f64::from(args.origins),
        peer_uploads: vec![rate_from_limit(upload_limit); agents],
        peer_downloads: vec![rate_from_limit(download_limit); agents],
    };
    let lower_bound_seconds = capacities.p2p_lower_bound(image_bytes);
    let all_verified = pulls.iter().all(|p| p.verified);
    let summary = Summary {
        image: format!("{}:{}", image::NAME, image::TAG),
        image_bytes,
        agents,
        origins: usize::from(args.origins),
        origin_bytes,
        peer_bytes,
        origin_bytes_per_image: origin_bytes as f64 / image_bytes.max(1) as f64,
        wall_seconds,
        lower_bound_seconds,
        ratio_to_bound: lower_bound_seconds.map(|bound| wall_seconds / bound),
        client_server_seconds: capacities.client_server(image_bytes),
        all_verified,
        pulls,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", summary.to_text());
    }
    Ok(if all_verified {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Pulls the image through every agent at once; returns each pull and the
/// seconds until the last finished.
async fn pull_everywhere(cluster: &Cluster, bars: &Bars) -> (Vec<AgentPull>, f64) {
    let started = Instant::now();
    let pulls = cluster
        .agent_urls()
        .into_iter()
        .enumerate()
        .map(|(i, url)| {
            let bar = bars.add(&format!("agent-{i}"), 0);
            async move {
                let result = async {
                    let puller = Puller::new(url.clone())?;
                    let image = puller.resolve(image::NAME, image::TAG).await?;
                    bar.set_length(image.total_bytes());
                    let on_bytes = {
                        let bar = bar.clone();
                        Arc::new(move |n| bar.inc(n))
                    };
                    let report = puller.fetch_blobs(image::NAME, &image, on_bytes).await?;
                    anyhow::Ok((image.manifest_digest, report))
                }
                .await;
                let seconds = started.elapsed().as_secs_f64();
                match result {
                    Ok((manifest, report)) => {
                        bar.finish_with_message("verified");
                        AgentPull {
                            url,
                            manifest: Some(manifest),
                            blobs: report.blobs,
                            bytes: report.bytes,
                            seconds,
                            verified: true,
                            error: None,
                        }
                    }
                    Err(error) => {
                        bar.abandon_with_message("FAILED");
                        AgentPull {
                            url,
                            manifest: None,
                            blobs: 0,
                            bytes: bar.position(),
                            seconds,
                            verified: false,
                            error: Some(format!("{error:#}")),
                        }
                    }
                }
            }
        });
    let pulls = futures_util::future::join_all(pulls).await;
    (pulls, started.elapsed().as_secs_f64())
}
