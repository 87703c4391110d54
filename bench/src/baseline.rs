//! Same-run baselines that every figure is stated against: OpenSSL's SHA-256
//! throughput, and `sha256sum` over the same file.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

/// Bytes per second of `openssl speed -evp sha256` at 1 MiB blocks: the best
/// single-core SHA-256 this machine does, with no I/O at all.
pub fn openssl_sha256() -> anyhow::Result<f64> {
    let out = Command::new("openssl")
        .args([
            "speed", "-evp", "sha256", "-bytes", "1048576", "-seconds", "3",
        ])
        .output()
        .context("running `openssl speed` (install the openssl package)")?;
    if !out.status.success() {
        bail!(
            "openssl speed failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The result line reads "sha256  <KB/s at 1048576 bytes>k" (1000-byte k).
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rfind(|l| l.starts_with("sha256"))
        .context("no sha256 line in openssl speed output")?;
    let field = line
        .split_whitespace()
        .last()
        .context("empty sha256 line")?;
    let kilobytes: f64 = field
        .trim_end_matches('k')
        .parse()
        .with_context(|| format!("parsing openssl figure {field:?}"))?;
    Ok(kilobytes * 1000.0)
}

/// Bytes per second of `sha256sum` reading `path` (page cache warm).
pub fn sha256sum(path: &Path) -> anyhow::Result<f64> {
    let len = std::fs::metadata(path)?.len() as f64;
    let started = Instant::now();
    let status = Command::new("sha256sum")
        .arg(path)
        .stdout(std::process::Stdio::null())
        .status()
        .context("running sha256sum")?;
    if !status.success() {
        bail!("sha256sum failed");
    }
    Ok(len / started.elapsed().as_secs_f64())
}

/// User plus system CPU time this process has used, from `/proc/self/stat`,
/// to tell a compute-bound run (cores busy) from one that waits.
pub fn process_cpu_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the parenthesised command name; utime and stime are the
    // 12th and 13th of those, in clock ticks (100 per second on Linux).
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("unexpected /proc/self/stat format")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(i)
            .context("short /proc/self/stat")?
            .parse::<f64>()?)
    };
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}
