//! The tracker under announce load: `blobs` x `peers` distinct entries
//! announced over loopback gRPC by `concurrency` in-flight requests to the
//! `shoal-tracker` binary, run as its own process (built next to this one)
//! exactly as deployed, so that its runtime, allocator and memory are the
//! real ones. It shares the machine's cores with this load generator (and
//! Redis), so the report splits the CPU time each used per announce: that
//! shows what limits the rate.
//!
//! One warm-up round announces every entry once (inserts, over which the
//! memory per entry is measured); the measured rounds re-announce them
//! (refreshes, the steady state of a swarm).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use shoal_proto::tracker::announce_request::Pieces;
use shoal_proto::tracker::tracker_client::TrackerClient;
use shoal_proto::tracker::{AnnounceRequest, PeerInfo};
use shoal_swarm::Digest;
use tonic::transport::Channel;

use crate::tracker_memory::{cpu_seconds, redis_pid, redis_used_memory, resident_bytes};

/// The tracker's peer store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    /// In the tracker's memory.
    Memory,
    /// In Redis.
    Redis,
}

/// What to run.
pub struct TrackerBench {
    /// Peer store under test.
    pub store: StoreKind,
    /// Redis to use for `--store redis`.
    pub redis_url: Option<String>,
    /// Distinct blobs.
    pub blobs: usize,
    /// Peers per blob.
    pub peers: usize,
    /// Measured rounds over every entry.
    pub rounds: usize,
    /// Requests in flight.
    pub concurrency: usize,
    /// HTTP/2 connections the requests are spread over.
    pub connections: usize,
}

/// Pieces of the benchmark's blobs; peers hold random counts of them.
const TOTAL_PIECES: u32 = 100;

/// Runs the benchmark and prints a Markdown table.
pub async fn run(bench: &TrackerBench) -> anyhow::Result<()> {
    let redis_url = match bench.store {
        StoreKind::Memory => None,
        StoreKind::Redis => Some(bench.redis_url.clone().context(
            "--store redis needs --redis-url (e.g. redis-server --port 6390 --save '' --appendonly no)",
        )?),
    };
    let tracker = TrackerProcess::start(redis_url.as_deref()).await?;
    let redis_pid = match &redis_url {
        Some(url) => Some(redis_pid(url).await?),
        None => None,
    };
    // A fresh namespace per run: entries of an earlier run against the same
    // Redis never turn this run's inserts into refreshes.
    let run_id: u64 = rand::random();
    let entries = bench.blobs * bench.peers;

    let rss_before = resident_bytes(tracker.pid())?;
    let redis_before = match &redis_url {
        Some(url) => redis_used_memory(url).await?,
        None => 0,
    };
    let started = Instant::now();
    round(bench, tracker.addr, run_id).await?;
    let insert_rate = entries as f64 / started.elapsed().as_secs_f64();
    let tracker_bytes =
        resident_bytes(tracker.pid())?.saturating_sub(rss_before) as f64 / entries as f64;
    let redis_bytes = match &redis_url {
        Some(url) => {
            redis_used_memory(url).await?.saturating_sub(redis_before) as f64 / entries as f64
        }
        None => 0.0,
    };

    let cpu = |pid: Option<u32>| pid.map_or(Ok(0.0), cpu_seconds);
    let cpu_before = [
        cpu(Some(tracker.pid()))?,
        cpu(Some(std::process::id()))?,
        cpu(redis_pid)?,
    ];
    let mut latencies = Vec::with_capacity(entries * bench.rounds);
    let started = Instant::now();
    for _ in 0..bench.rounds {
        latencies.extend(round(bench, tracker.addr, run_id).await?);
    }
    let elapsed = started.elapsed();
    let cpu_after = [
        cpu(Some(tracker.pid()))?,
        cpu(Some(std::process::id()))?,
        cpu(redis_pid)?,
    ];
    let announces = latencies.len() as f64;
    let micros_per_announce = |i: usize| (cpu_after[i] - cpu_before[i]) * 1e6 / announces;

    latencies.sort_unstable();
    let rate = latencies.len() as f64 / elapsed.as_secs_f64();
    println!(
        "| store | entries | announces | announces/s | p50 | p99 | p99.9 | tracker RSS/entry | Redis/entry | insert round/s | CPU µs/announce: tracker, load, redis |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {:?} | {entries} | {} | {rate:.0} | {} | {} | {} | {tracker_bytes:.0} B | {redis_bytes:.0} B | {insert_rate:.0} | {:.1}, {:.1}, {:.1} |",
        bench.store,
        latencies.len(),
        show(percentile(&latencies, 0.50)),
        show(percentile(&latencies, 0.99)),
        show(percentile(&latencies, 0.999)),
        micros_per_announce(0),
        micros_per_announce(1),
        micros_per_announce(2),
    );
    Ok(())
}

/// The `shoal-tracker` binary from this benchmark's build directory, killed
/// on drop.
struct TrackerProcess {
    child: Child,
    addr: SocketAddr,
}

impl TrackerProcess {
    async fn start(redis_url: Option<&str>) -> anyhow::Result<Self> {
        let binary: PathBuf = std::env::current_exe()?.with_file_name("shoal-tracker");
        anyhow::ensure!(
            binary.exists(),
            "{} is missing: cargo build --release -p shoal-tracker -p shoal-bench",
            binary.display()
        );
        let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let mut command = Command::new(&binary);
        // A long interval: nothing expires while the benchmark runs.
        command.args(["--listen", &addr.to_string(), "--interval", "60"]);
        match redis_url {
            Some(url) => command.args(["--store", "redis", "--redis-url", url]),
            None => command.args(["--store", "memory"]),
        };
        let child = command.env("RUST_LOG", "warn").spawn()?;
        let tracker = TrackerProcess { child, addr };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TrackerClient::connect(format!("http://{addr}"))
            .await
            .is_err()
        {
            anyhow::ensure!(
                Instant::now() < deadline,
                "the tracker did not start on {addr}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(tracker)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for TrackerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Announces every (blob, peer) entry once; returns each call's latency.
async fn round(
    bench: &TrackerBench,
    addr: SocketAddr,
    run_id: u64,
) -> anyhow::Result<Vec<Duration>> {
    let mut channels = Vec::with_capacity(bench.connections);
    for _ in 0..bench.connections {
        channels.push(
            Channel::from_shared(format!("http://{addr}"))?
                .tcp_nodelay(true)
                .connect()
                .await?,
        );
    }
    let digests: Arc<Vec<String>> = Arc::new(
        (0..bench.blobs)
            .map(|b| Digest::of(format!("{run_id}/{b}").as_bytes()).to_string())
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let entries = bench.blobs * bench.peers;
    let mut workers = Vec::with_capacity(bench.concurrency);
    for w in 0..bench.concurrency {
        let mut client = TrackerClient::new(channels[w % channels.len()].clone());
        let (next, digests, peers) = (next.clone(), digests.clone(), bench.peers);
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= entries {
                    return Ok::<_, tonic::Status>(latencies);
                }
                let request = announce(&digests[i / peers], run_id, i);
                let sent = Instant::now();
                client.announce(request).await?;
                latencies.push(sent.elapsed());
            }
        }));
    }
    let mut latencies = Vec::with_capacity(entries);
    for worker in workers {
        latencies.extend(worker.await??);
    }
    Ok(latencies)
}

/// Entry `i`'s announce: a stable peer id, a random share of the pieces.
fn announce(digest: &str, run_id: u64, i: usize) -> AnnounceRequest {
    let mut id = [0u8; 20];
    id[..8].copy_from_slice(&run_id.to_le_bytes());
    id[8..16].copy_from_slice(&(i as u64).to_le_bytes());
    let pieces = rand::random_range(0..=TOTAL_PIECES);
    AnnounceRequest {
        digest: digest.to_owned(),
        peer: Some(PeerInfo {
            id: id.to_vec(),
            address: format!("10.{}.{}.{}", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff),
            port: 7000,
            zone: format!("zone-{}", i % 3),
        }),
        pieces: Some(Pieces::PieceCount(pieces)),
        total_pieces: TOTAL_PIECES,
        complete: pieces == TOTAL_PIECES,
        ..AnnounceRequest::default()
    }
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn show(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}
