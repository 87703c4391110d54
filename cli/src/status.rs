//! `shoal status`: what one agent holds and how its transfers go, read from
//! the agent's `/shoal/v1/stats` page.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use serde::Deserialize;

/// `shoal status` flags.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The agent's registry API URL.
    #[arg(long, default_value = "http://127.0.0.1:5050")]
    agent: String,
    /// Print the agent's stats as JSON, unchanged.
    #[arg(long)]
    json: bool,
}

/// The stats page, as far as this command shows it.
#[derive(Debug, Deserialize)]
struct Stats {
    bytes_from_origins: u64,
    cache_used_bytes: u64,
    torrents: Vec<Torrent>,
}

#[derive(Debug, Deserialize)]
struct Torrent {
    digest: String,
    pieces: u32,
    piece_count: u32,
    downloaded: u64,
    uploaded: u64,
    peers: usize,
    state: String,
}

/// Fetches and prints the agent's stats.
pub async fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let url = format!("{}/shoal/v1/stats", args.agent.trim_end_matches('/'));
    let response = reqwest::get(&url)
        .await
        .with_context(|| format!("asking {url}"))?
        .error_for_status()
        .with_context(|| format!("asking {url}"))?;
    let body = response.bytes().await.context("reading the stats")?;
    if args.json {
        println!("{}", String::from_utf8_lossy(&body));
        return Ok(ExitCode::SUCCESS);
    }
    let stats: Stats = serde_json::from_slice(&body)
        .with_context(|| format!("{url} did not answer with agent stats"))?;
    print!("{}", render(&stats));
    Ok(ExitCode::SUCCESS)
}

fn render(stats: &Stats) -> String {
    let mut out = format!(
        "cache used: {:.1} MiB, from origins: {:.1} MiB, torrents: {}\n",
        mib(stats.cache_used_bytes),
        mib(stats.bytes_from_origins),
        stats.torrents.len()
    );
    for t in &stats.torrents {
        let short = t.digest.get(..19).unwrap_or(&t.digest);
        out.push_str(&format!(
            "  {short}  {:>5}/{:<5} pieces  down {:>8.1} MiB  up {:>8.1} MiB  {:>3} peers  {}\n",
            t.pieces,
            t.piece_count,
            mib(t.downloaded),
            mib(t.uploaded),
            t.peers,
            t.state
        ));
    }
    out
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1u32 << 20)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_torrent() {
        let stats: Stats = serde_json::from_str(
            r#"{"bytes_from_origins": 1048576, "cache_used_bytes": 2097152,
                "torrents": [{"digest": "sha256:0123456789abcdef0123", "pieces": 3,
                "piece_count": 4, "downloaded": 3145728, "uploaded": 0, "peers": 2,
                "state": "Downloading"}]}"#,
        )
        .expect("valid stats");
        let text = render(&stats);
        assert!(text.contains("cache used: 2.0 MiB, from origins: 1.0 MiB, torrents: 1"));
        assert!(text.contains("3/4"), "{text}");
        assert!(text.contains("Downloading"), "{text}");
    }
}
