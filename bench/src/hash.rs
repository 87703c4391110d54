//! Metainfo hashing benchmark: one streaming pass computing every piece hash
//! and the whole-blob digest, against plain SHA-256 baselines.

use std::time::Instant;

use anyhow::Context;
use shoal_swarm::Metainfo;

use crate::{baseline, blob};

/// Runs the benchmark on a random blob of `len` bytes and prints a report.
pub async fn run(len: u64) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (path, digest) = blob::write_random(dir.path(), len)?;
    let openssl = baseline::openssl_sha256()?;
    let sha256sum = baseline::sha256sum(&path)?;

    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let file = tokio::fs::File::open(&path).await?;
        let started = Instant::now();
        let metainfo = Metainfo::compute(digest, len, file)
            .await
            .context("computing metainfo")?;
        best = best.min(started.elapsed().as_secs_f64());
        anyhow::ensure!(metainfo.length() == len, "length mismatch");
    }
    let ours = len as f64 / best;
    println!("| metric | bytes/s | ratio to openssl |");
    println!("|---|---|---|");
    println!(
        "| openssl speed -evp sha256 (1 MiB blocks) | {} | 1.00 |",
        mib(openssl)
    );
    println!(
        "| sha256sum {} MiB file | {} | {:.2} |",
        len >> 20,
        mib(sha256sum),
        sha256sum / openssl
    );
    println!(
        "| Metainfo::compute (pieces + digest) | {} | {:.2} |",
        mib(ours),
        ours / openssl
    );
    Ok(())
}

/// Formats bytes/s as MiB/s.
pub fn mib(bytes_per_second: f64) -> String {
    format!("{:.0} MiB/s", bytes_per_second / f64::from(1u32 << 20))
}
