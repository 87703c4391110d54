//! Cold origin fetch vs `curl` from the registry (issue 4's benchmark).
//!
//! A local `docker-registry` (Debian's distribution 2.8) holds one layer of
//! `size` random bytes, pushed with skopeo from an OCI layout. Each run
//! times, in turn, `curl` of the blob straight from the registry into a file
//! (the baseline: the same bytes over the same loopback to the same disk),
//! and a cold origin (empty store) answering the metainfo call for it: the
//! upstream GET, the streamed write into the store with piece hashes and
//! digest check, the fsync and rename. The ratio is origin time over curl
//! time; the target is 1.1 or less.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use shoal_origin::{Config, Origin};
use shoal_registry::layout::synthetic_image;

use crate::hash::mib;

const REPO: &str = "bench/layer";

/// A `docker-registry` child, killed on drop.
struct Registry {
    addr: SocketAddr,
    child: Child,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

async fn start_registry(dir: &Path) -> anyhow::Result<Registry> {
    let addr = free_addr()?;
    let config = dir.join("registry.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
            dir.join("storage").display()
        ),
    )?;
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting docker-registry (apt-get install docker-registry)")?;
    let registry = Registry { addr, child };
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(registry);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("docker-registry did not start listening on {addr}")
}

pub async fn run(len: u64, runs: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let layout = dir.path().join("layout");
    println!("writing a {} MiB layer...", len >> 20);
    let (_, layers) = synthetic_image(&layout, "v1", &[len], 1)?;
    let digest = layers[0].digest().to_string();
    let size = layers[0].size();
    let registry = start_registry(dir.path()).await?;
    println!("pushing it to docker-registry with skopeo...");
    let pushed = Command::new("skopeo")
        .args(["--insecure-policy", "copy", "--quiet", "--preserve-digests"])
        .arg("--dest-tls-verify=false")
        .arg(format!("oci:{}:v1", layout.display()))
        .arg(format!("docker://{}/{REPO}:v1", registry.addr))
        .status()
        .context("running skopeo (apt-get install skopeo)")?;
    ensure!(pushed.success(), "skopeo push failed");
    std::fs::remove_dir_all(&layout)?;
    let blob_url = format!("http://{}/v2/{REPO}/blobs/{digest}", registry.addr);
    // Warms the registry's file in the page cache for both contenders.
    curl(&blob_url, &dir.path().join("warm"))?;

    println!(
        "| run | curl | curl + fsync | origin cold fetch + metainfo | ratio | ratio to curl + fsync |"
    );
    println!("|---|---|---|---|---|---|");
    let mut ratios = Vec::new();
    for run in 1..=runs {
        let target = dir.path().join("curl.out");
        let curl_time = curl(&blob_url, &target)?;
        let synced = Instant::now();
        std::fs::File::open(&target)?.sync_all()?;
        let durable_time = curl_time + synced.elapsed();
        std::fs::remove_file(&target)?;
        let origin_time = origin_fetch(dir.path(), registry.addr, &digest, size).await?;
        let ratio = origin_time.as_secs_f64() / curl_time.as_secs_f64();
        let durable_ratio = origin_time.as_secs_f64() / durable_time.as_secs_f64();
        ratios.push(ratio);
        println!(
            "| {run} | {:.2} s ({}) | {:.2} s | {:.2} s ({}) | **{ratio:.2}** | {durable_ratio:.2} |",
            curl_time.as_secs_f64(),
            mib(size as f64 / curl_time.as_secs_f64()),
            durable_time.as_secs_f64(),
            origin_time.as_secs_f64(),
            mib(size as f64 / origin_time.as_secs_f64()),
        );
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "median ratio {:.2} (target 1.1 or less)",
        ratios[ratios.len() / 2]
    );
    Ok(())
}

/// Seconds `curl` takes to download `url` into `target`.
fn curl(url: &str, target: &Path) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let status = Command::new("curl")
        .args(["-sSf", "-o"])
        .arg(target)
        .arg(url)
        .status()
        .context("running curl")?;
    ensure!(status.success(), "curl failed");
    Ok(started.elapsed())
}

/// Time from the metainfo call to its 200 on an origin with an empty store.
async fn origin_fetch(
    dir: &Path,
    registry: SocketAddr,
    digest: &str,
    size: u64,
) -> anyhow::Result<Duration> {
    let data = tempfile::tempdir_in(dir)?;
    let toml = format!(
        "listen = \"127.0.0.1:0\"\npeer_listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n\
         fetch_wait_ms = 600000\n[upstreams.\"{registry}\"]\ninsecure = true\n",
        data.path().display()
    );
    let origin = Origin::start(Config::parse(&toml)?.settings()?).await?;
    let url = format!(
        "http://{}/internal/v1/metainfo/{digest}?repository={REPO}",
        origin.http_addr()
    );
    let started = Instant::now();
    let response = reqwest::get(&url).await?;
    let elapsed = started.elapsed();
    ensure!(
        response.status() == reqwest::StatusCode::OK,
        "origin answered {}",
        response.status()
    );
    let stats = origin.stats();
    ensure!(stats.upstream_bytes == size, "origin stats {stats:?}");
    origin.shutdown().await;
    Ok(elapsed)
}
