//! `shoal-sim`: runs one scenario and prints its figures (see RESULTS.md
//! for the commands behind the published numbers).

use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use shoal_sim::{Params, Scenario};

mod allocator;

/// The scenarios, as CLI values.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum ScenarioArg {
    FlashCrowd,
    Staggered,
    Churn,
    Hetero,
    OneOrigin,
    MultiBlob,
}

impl From<ScenarioArg> for Scenario {
    fn from(s: ScenarioArg) -> Self {
        match s {
            ScenarioArg::FlashCrowd => Scenario::FlashCrowd,
            ScenarioArg::Staggered => Scenario::Staggered,
            ScenarioArg::Churn => Scenario::Churn,
            ScenarioArg::Hetero => Scenario::Hetero,
            ScenarioArg::OneOrigin => Scenario::OneOrigin,
            ScenarioArg::MultiBlob => Scenario::MultiBlob,
        }
    }
}

/// Simulates a Shoal swarm with the real scheduler in virtual time.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Situation to simulate.
    #[arg(long, value_enum, default_value = "flash-crowd")]
    scenario: ScenarioArg,
    /// Agents pulling.
    #[arg(long, default_value_t = 100)]
    agents: u32,
    /// Origins seeding from the start (one-origin forces 1).
    #[arg(long, default_value_t = 2)]
    origins: u32,
    /// MiB each agent pulls (split into layers for multi-blob).
    #[arg(long, default_value_t = 1024.0)]
    blob_mib: f64,
    /// Agent upload, Mbit/s.
    #[arg(long, default_value_t = 1000.0)]
    upload_mbit: f64,
    /// Agent download, Mbit/s.
    #[arg(long, default_value_t = 1000.0)]
    download_mbit: f64,
    /// Each origin's upload, Mbit/s [default: --upload-mbit].
    #[arg(long)]
    origin_upload_mbit: Option<f64>,
    /// One-way latency of every message, ms.
    #[arg(long, default_value_t = 1.0)]
    latency_ms: f64,
    /// Seed of every random choice; same seed, same result.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Piece length, MiB (power of two, 1-16) [default: production's rule].
    #[arg(long)]
    piece_mib: Option<u32>,
    /// Block (request) size, KiB [default: TorrentConfig's].
    #[arg(long)]
    block_kib: Option<u32>,
    /// Requests in flight per peer [default: TorrentConfig's].
    #[arg(long)]
    pipeline: Option<usize>,
    /// Handout size K [default: the tracker Policy's].
    #[arg(long)]
    handout: Option<usize>,
    /// Regular unchoke slots [default: ChokerConfig's].
    #[arg(long)]
    unchoke_slots: Option<usize>,
    /// Seconds between full rechokes [default: ChokerConfig's].
    #[arg(long)]
    rechoke_s: Option<f64>,
    /// Seconds an optimistic unchoke lasts [default: ChokerConfig's].
    #[arg(long)]
    optimistic_s: Option<f64>,
    /// Peers unchoking us we download from at once, 0 = no limit
    /// [default: TorrentConfig's].
    #[arg(long)]
    max_unchokers: Option<usize>,
    /// Seconds between saturated-holder checks, 0 = off [default: ChokerConfig's].
    #[arg(long)]
    rebalance_s: Option<f64>,
    /// Saturated-holder threshold, a fraction of the other holders' mean rate
    /// [default: ChokerConfig's].
    #[arg(long)]
    rebalance_ratio: Option<f64>,
    /// Announce interval, seconds [default: the tracker's 3].
    #[arg(long, default_value_t = 3.0)]
    announce_s: f64,
    /// Connections per blob [default: SessionConfig's 20].
    #[arg(long, default_value_t = 20)]
    max_peers: u32,
    /// Staggered: arrival window, seconds [default: the lower bound].
    #[arg(long)]
    stagger_s: Option<f64>,
    /// Churn: share of agents leaving mid-transfer.
    #[arg(long, default_value_t = 0.1)]
    churn_fraction: f64,
    /// Hetero: share of slow agents.
    #[arg(long, default_value_t = 0.1)]
    slow_fraction: f64,
    /// Hetero: how many times slower they are.
    #[arg(long, default_value_t = 10.0)]
    slow_factor: f64,
    /// Multi-blob: layers of the image.
    #[arg(long, default_value_t = 5)]
    layers: u32,
    /// Piece hashing speed, MiB/s (sets when a piece is verified).
    #[arg(long, default_value_t = 1024.0)]
    hash_mib_s: f64,
    /// Stop at this virtual time, seconds [default: 50x the bound + 60 s].
    #[arg(long)]
    max_virtual_s: Option<f64>,
    /// What-if: control messages skip queued blocks (production: FIFO).
    #[arg(long)]
    control_first: bool,
    /// Whether origins serve every piece once before any twice
    /// (production's origins do).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    origin_spread: bool,
    /// Links also carry TCP/IP and Ethernet headers (4.6% per block), as
    /// the tbf-shaped links of bench/swarm-netns count them.
    #[arg(long)]
    tcp_headers: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn seconds(what: &str, s: f64) -> anyhow::Result<Duration> {
    if !(s.is_finite() && s >= 0.0) {
        bail!("{what} must be a non-negative number of seconds, got {s}");
    }
    Ok(Duration::from_secs_f64(s))
}

fn params(cli: &Cli) -> anyhow::Result<Params> {
    let mut p = Params {
        scenario: cli.scenario.into(),
        agents: cli.agents,
        origins: cli.origins,
        blob_bytes: (cli.blob_mib * 1048576.0).round().max(0.0) as u64,
        upload_bps: cli.upload_mbit * 1e6,
        download_bps: cli.download_mbit * 1e6,
        origin_upload_bps: cli.origin_upload_mbit.unwrap_or(cli.upload_mbit) * 1e6,
        latency: seconds("--latency-ms", cli.latency_ms / 1e3)?,
        seed: cli.seed,
        announce_interval: seconds("--announce-s", cli.announce_s)?,
        max_peers: cli.max_peers,
        stagger: cli
            .stagger_s
            .map(|s| seconds("--stagger-s", s))
            .transpose()?,
        churn_fraction: cli.churn_fraction,
        slow_fraction: cli.slow_fraction,
        slow_factor: cli.slow_factor,
        layers: cli.layers,
        hash_bytes_per_s: cli.hash_mib_s * 1048576.0,
        max_time: cli
            .max_virtual_s
            .map(|s| seconds("--max-virtual-s", s))
            .transpose()?,
        control_first: cli.control_first,
        origin_spread: cli.origin_spread,
        tcp_headers: cli.tcp_headers,
        ..Params::default()
    };
    if let Some(mib) = cli.piece_mib {
        p.piece_length = Some(
            mib.checked_mul(1 << 20)
                .context("--piece-mib is too large")?,
        );
    }
    if let Some(kib) = cli.block_kib {
        p.torrent.block_size = kib
            .checked_mul(1 << 10)
            .context("--block-kib is too large")?;
    }
    if let Some(depth) = cli.pipeline {
        p.torrent.max_requests_per_peer = depth;
    }
    if let Some(k) = cli.handout {
        p.policy.max_peers = k;
    }
    if let Some(slots) = cli.unchoke_slots {
        p = p.with_unchoke_slots(slots);
    }
    if let Some(s) = cli.rechoke_s {
        p.torrent.choker.rechoke_interval = seconds("--rechoke-s", s)?;
    }
    if let Some(n) = cli.max_unchokers {
        p.torrent.max_unchokers = n;
    }
    if let Some(s) = cli.rebalance_s {
        p.torrent.choker.rebalance_interval = seconds("--rebalance-s", s)?;
    }
    if let Some(r) = cli.rebalance_ratio {
        p.torrent.choker.rebalance_ratio = r;
    }
    if let Some(s) = cli.optimistic_s {
        p.torrent.choker.optimistic_interval = seconds("--optimistic-s", s)?;
    }
    Ok(p)
}

fn main() -> anyhow::Result<()> {
    if let Some(error) = allocator::apply() {
        eprintln!("warning: running with mimalloc's default settings: {error}");
    }
    let cli = Cli::parse();
    let report = shoal_sim::run(params(&cli)?).context("simulation")?;
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(())
}
