//! Random test blobs on disk, written once and read back through the page
//! cache, so that benchmarks measure hashing and transfer rather than the disk.

use std::io::Write;
use std::path::{Path, PathBuf};

use rand::{RngCore, SeedableRng};
use sha2::{Digest as _, Sha256};
use shoal_swarm::Digest;

/// Writes `len` pseudo-random bytes to `dir/blob` and returns its path and digest.
pub fn write_random(dir: &Path, len: u64) -> anyhow::Result<(PathBuf, Digest)> {
    let path = dir.join("blob");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
    let mut rng = rand::rngs::SmallRng::seed_from_u64(42);
    let mut hasher = Sha256::new();
    let mut chunk = vec![0u8; 4 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        rng.fill_bytes(&mut chunk[..n]);
        hasher.update(&chunk[..n]);
        file.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    file.flush()?;
    Ok((path, Digest::from_bytes(hasher.finalize().into())))
}
