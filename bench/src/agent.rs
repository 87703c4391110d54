//! The agent's benchmarks (issue 5), on real processes: a local
//! `docker-registry` upstream and the `shoal-tracker`, `shoal-origin` and
//! `shoal-agent` binaries started by the e2e harness on loopback.
//!
//! - `warm`: `skopeo copy` of a single-layer image through an agent whose
//!   cache holds the layer, against `skopeo copy` straight from the registry,
//!   alternating in the same run. Target: 0.9x the registry's speed or better.
//! - `ttfb`: time to the first body byte of a blob the agent does not hold,
//!   against the piece-transfer time (piece length over the throughput of the
//!   same pull). Target: 2 piece-transfer times or less. Measured with the
//!   origin already holding the blob and, for reference, with it cold too.
//! - `memory`: the agent's peak RSS (`VmHWM`) while it streams a layer to a
//!   client, cold then from its cache. Target: 64 MiB or less.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use shoal_e2e::clients::skopeo_copy;
use shoal_e2e::cluster::{Cluster, ClusterSpec};
use shoal_e2e::registry::{Auth, Registry};
use shoal_registry::layout::synthetic_image;
use shoal_swarm::Metainfo;

use crate::hash::mib;

const REPO: &str = "bench/agent";
const IMAGE: &str = "bench/agent:v1";

/// Which agent benchmark to run.
#[derive(clap::Subcommand)]
pub enum AgentBench {
    /// Warm-cache `skopeo copy` through the agent vs from the registry.
    Warm {
        /// Layer size in MiB.
        #[arg(long, default_value_t = 1024)]
        size_mib: u64,
        /// Timed pairs of copies.
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// Time to first byte of a cold blob vs the piece-transfer time.
    Ttfb {
        /// Blob size in MiB.
        #[arg(long, default_value_t = 1024)]
        size_mib: u64,
        /// Runs, each on a fresh cluster.
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// Peak RSS of the agent while it streams a layer.
    Memory {
        /// Layer size in MiB.
        #[arg(long, default_value_t = 4096)]
        size_mib: u64,
    },
}

pub async fn run(bench: AgentBench) -> anyhow::Result<()> {
    match bench {
        AgentBench::Warm { size_mib, runs } => warm(size_mib << 20, runs).await,
        AgentBench::Ttfb { size_mib, runs } => ttfb(size_mib << 20, runs).await,
        AgentBench::Memory { size_mib } => memory(size_mib << 20).await,
    }
}

/// A registry holding `IMAGE`, one random layer of `len` bytes.
struct Upstream {
    registry: Registry,
    digest: String,
    size: u64,
}

async fn upstream(dir: &Path, len: u64) -> anyhow::Result<Upstream> {
    let registry = Registry::start(Auth::Anonymous).await;
    let layout = dir.join("layout");
    println!("writing a {} MiB layer and pushing it...", len >> 20);
    let (_, layers) = synthetic_image(&layout, "v1", &[len], 7)?;
    registry.push(&layout, "v1", REPO, "v1", &["--preserve-digests"]);
    std::fs::remove_dir_all(&layout)?;
    Ok(Upstream {
        digest: layers[0].digest().to_string(),
        size: layers[0].size(),
        registry,
    })
}

fn cluster(dir: &Path, registry: &Registry, agents: usize) -> anyhow::Result<Cluster> {
    std::fs::create_dir_all(dir)?;
    let spec = ClusterSpec {
        origins: 1,
        agents,
        upstream_toml: registry.upstream_toml(""),
        default_registry: registry.addr.to_string(),
        origin_upload_limit: 0,
        agent_upload_limit: 0,
    };
    Cluster::start(dir, &spec)
}

async fn warm(len: u64, runs: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let up = upstream(dir.path(), len).await?;
    let cluster = cluster(&dir.path().join("cluster"), &up.registry, 1)?;
    let registry = up.registry.addr.to_string();
    let agent = cluster.agents[0].1.to_string();
    let out = dir.path().join("copy");

    let timed_copy = |from: &str| -> anyhow::Result<Duration> {
        let started = Instant::now();
        skopeo_copy(from, IMAGE, &out, false)?;
        let elapsed = started.elapsed();
        std::fs::remove_dir_all(&out)?;
        Ok(elapsed)
    };
    // The registry's files into the page cache; the agent's cache filled.
    timed_copy(&registry)?;
    let cold = timed_copy(&agent).with_context(|| cluster.logs())?;
    println!(
        "cold copy through the agent (fills its cache): {:.2} s",
        cold.as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let origin = cluster.origins[0].1;
    let origin_before = origin_bytes_sent(origin).await?;

    println!("| run | load | skopeo from registry | skopeo through agent (warm) | speed ratio |");
    println!("|---|---|---|---|---|");
    let mut ratios = Vec::new();
    for run in 1..=runs {
        let load = load_average();
        let direct = timed_copy(&registry)?;
        let through = timed_copy(&agent).with_context(|| cluster.logs())?;
        let ratio = direct.as_secs_f64() / through.as_secs_f64();
        ratios.push(ratio);
        println!(
            "| {run} | {load} | {:.2} s ({}) | {:.2} s ({}) | **{ratio:.2}** |",
            direct.as_secs_f64(),
            mib(up.size as f64 / direct.as_secs_f64()),
            through.as_secs_f64(),
            mib(up.size as f64 / through.as_secs_f64()),
        );
    }
    let from_origin = origin_bytes_sent(origin).await? - origin_before;
    println!("origin sent {from_origin} bytes of blobs during the warm copies");
    ensure!(
        from_origin < up.size / 100,
        "the warm copies were not served from the agent's cache"
    );
    println!(
        "median ratio {:.2} (target 0.9 or more)",
        median(&mut ratios)
    );
    Ok(())
}

async fn ttfb(len: u64, runs: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let up = upstream(dir.path(), len).await?;
    let piece = u64::from(Metainfo::piece_length_for(up.size));
    println!("piece length {} MiB", piece >> 20);
    println!(
        "| run | origin | load | first byte | last byte | throughput | piece time | **ratio** | ratio to piece time after the first byte |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut ratios = Vec::new();
    for run in 1..=runs {
        for origin_warm in [true, false] {
            let cluster_dir = dir.path().join(format!("cluster-{run}-{origin_warm}"));
            let cluster = cluster(&cluster_dir, &up.registry, 1)?;
            if origin_warm {
                let url = format!(
                    "http://{}/internal/v1/metainfo/{}?repository={REPO}",
                    cluster.origins[0].1, up.digest
                );
                // 202 means "fetching, ask again": warm means the origin
                // holds the whole blob, so wait for the 200.
                loop {
                    let response = reqwest::get(&url).await?;
                    match response.status().as_u16() {
                        200 => break,
                        202 => tokio::time::sleep(Duration::from_millis(100)).await,
                        status => bail!("origin warm-up {url}: {status}"),
                    }
                }
            }
            // The setup (the upstream push, the warm-up fetch, the last
            // run) leaves GiBs of dirty pages; written back during the timed
            // pull, they would compete with it for the two cores.
            flush_page_cache()?;
            let load = load_average();
            let url = format!(
                "http://{}/v2/{REPO}/blobs/{}",
                cluster.agents[0].1, up.digest
            );
            let client = connected(cluster.agents[0].1).await?;
            let pull = timed_get(&client, &url)
                .await
                .with_context(|| cluster.logs())?;
            ensure!(pull.received == up.size, "short body: {}", pull.received);
            let throughput = up.size as f64 / pull.last.as_secs_f64();
            let piece_time = piece as f64 / throughput;
            let ratio = pull.first.as_secs_f64() / piece_time;
            let after_first = up.size as f64 / (pull.last - pull.first).as_secs_f64();
            if origin_warm {
                ratios.push(ratio);
            }
            println!(
                "| {run} | {} | {load} | {:.1} ms | {:.2} s | {} | {:.1} ms | **{ratio:.2}** | {:.2} |",
                if origin_warm { "warm" } else { "cold" },
                pull.first.as_secs_f64() * 1e3,
                pull.last.as_secs_f64(),
                mib(throughput),
                piece_time * 1e3,
                pull.first.as_secs_f64() / (piece as f64 / after_first),
            );
            drop(cluster);
            std::fs::remove_dir_all(&cluster_dir)?;
        }
    }
    println!(
        "median ratio, origin warm: {:.2} (target 2 or less)",
        median(&mut ratios)
    );
    Ok(())
}

async fn memory(len: u64) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let up = upstream(dir.path(), len).await?;
    let cluster_dir = dir.path().join("cluster");
    let cluster = cluster(&cluster_dir, &up.registry, 1)?;
    let pid = pid_with_arg(&cluster_dir.join("agent-0.toml"))?;
    let url = format!(
        "http://{}/v2/{REPO}/blobs/{}",
        cluster.agents[0].1, up.digest
    );
    let client = connected(cluster.agents[0].1).await?;
    println!("agent pid {pid}; idle: {}", memory_line(pid)?);
    println!("| pull | load | time | throughput | agent VmHWM after | VmRSS after |");
    println!("|---|---|---|---|---|---|");
    for pull in ["cold", "warm", "warm"] {
        let load = load_average();
        let got = timed_get(&client, &url)
            .await
            .with_context(|| cluster.logs())?;
        ensure!(got.received == up.size, "short body: {}", got.received);
        let (hwm, rss) = (status_kib(pid, "VmHWM")?, status_kib(pid, "VmRSS")?);
        println!(
            "| {pull} | {load} | {:.2} s | {} | **{:.1} MiB** | {:.1} MiB |",
            got.last.as_secs_f64(),
            mib(up.size as f64 / got.last.as_secs_f64()),
            hwm as f64 / 1024.0,
            rss as f64 / 1024.0,
        );
    }
    let hwm = status_kib(pid, "VmHWM")? as f64 / 1024.0;
    println!("agent peak RSS {hwm:.1} MiB (target 64 MiB or less)");
    Ok(())
}

/// Writes every dirty page back (`sync(1)`).
fn flush_page_cache() -> anyhow::Result<()> {
    let status = std::process::Command::new("sync").status()?;
    ensure!(status.success(), "sync: {status}");
    Ok(())
}

/// An HTTP client already connected to the agent at `registry`, as docker
/// and containerd are by the time they ask for a layer (they fetched the
/// manifest first): the times below are then the agent's, not the client's
/// own setup nor the TCP handshake.
async fn connected(registry: SocketAddr) -> anyhow::Result<reqwest::Client> {
    let client = reqwest::Client::new();
    client
        .get(format!("http://{registry}/v2/"))
        .send()
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    Ok(client)
}

/// One GET, timed to the first body byte and to the last.
struct TimedGet {
    first: Duration,
    last: Duration,
    received: u64,
}

/// A GET on `client`, timed from the request to its first and last body
/// bytes.
async fn timed_get(client: &reqwest::Client, url: &str) -> anyhow::Result<TimedGet> {
    let started = Instant::now();
    let mut response = client.get(url).send().await?.error_for_status()?;
    let mut first = None;
    let mut received = 0u64;
    while let Some(chunk) = response.chunk().await? {
        first.get_or_insert_with(|| started.elapsed());
        received += chunk.len() as u64;
    }
    Ok(TimedGet {
        first: first.context("empty body")?,
        last: started.elapsed(),
        received,
    })
}

async fn origin_bytes_sent(http: SocketAddr) -> anyhow::Result<u64> {
    let body = reqwest::get(format!("http://{http}/shoal/v1/stats"))
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    let stats: serde_json::Value = serde_json::from_slice(&body)?;
    let field = |name: &str| stats[name].as_u64().with_context(|| format!("no {name}"));
    Ok(field("http_bytes_sent")? + field("peer_bytes_sent")?)
}

/// The process whose command line has `arg` (the harness keeps no pids).
fn pid_with_arg(arg: &Path) -> anyhow::Result<u32> {
    let wanted = arg.as_os_str().as_encoded_bytes();
    for entry in std::fs::read_dir("/proc")? {
        let entry = entry?;
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let path: PathBuf = entry.path().join("cmdline");
        let Ok(cmdline) = std::fs::read(&path) else {
            continue;
        };
        if cmdline.split(|&b| b == 0).any(|a| a == wanted) {
            return Ok(pid);
        }
    }
    bail!("no process has {} on its command line", arg.display())
}

/// A `/proc/<pid>/status` field in KiB (`VmHWM`, `VmRSS`).
fn status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .with_context(|| format!("no {field} in /proc/{pid}/status"))?;
    let kib = line.trim().trim_end_matches("kB").trim();
    Ok(kib.parse()?)
}

fn memory_line(pid: u32) -> anyhow::Result<String> {
    Ok(format!(
        "VmHWM {:.1} MiB, VmRSS {:.1} MiB",
        status_kib(pid, "VmHWM")? as f64 / 1024.0,
        status_kib(pid, "VmRSS")? as f64 / 1024.0
    ))
}

/// The 1-minute load average, recorded with every run (the machine is shared).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}
