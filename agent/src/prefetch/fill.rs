//! Pulls one blob into the cache through the agent's normal blob paths
//! (cache, swarm download, small-blob fill or origin passthrough), as a
//! client request would, but reading nothing back: it waits for each
//! piece and counts what the cache holds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use shoal_swarm::Digest;

use crate::blobs::{Blobs, Opened};
use crate::origin::{Location, error_chain};

/// How long a finished download may take to land in the cache.
const SETTLE: Duration = Duration::from_secs(30);

/// Pulls `digest` (`size` bytes per the manifest) into the cache, storing
/// the bytes held so far in `done`.
pub(crate) async fn fill(
    blobs: &Blobs,
    at: &Location,
    digest: &Digest,
    size: u64,
    done: &AtomicU64,
) -> Result<(), String> {
    let opened = blobs
        .open(digest, at)
        .await
        .map_err(|e| format!("blob {digest}: {e}"))?;
    match opened {
        Opened::Complete(reader) => {
            check_size(digest, reader.len(), size)?;
        }
        Opened::Streaming(fetch) => {
            let metainfo = fetch.metainfo().clone();
            check_size(digest, metainfo.length(), size)?;
            let partial = fetch.partial().clone();
            let piece_length = u64::from(metainfo.piece_length());
            for piece in 0..metainfo.piece_count() {
                partial
                    .wait_piece(piece)
                    .await
                    .map_err(|e| format!("blob {digest}: {}", error_chain(&e)))?;
                let held = u64::from(partial.bitfield().count()) * piece_length;
                done.store(held.min(size), Ordering::Relaxed);
            }
            drop(fetch);
            settle(blobs, digest).await?;
        }
        Opened::Passthrough(mut passthrough) => {
            check_size(digest, passthrough.length, size)?;
            let mut received = 0u64;
            while let Some(chunk) = passthrough.chunks.recv().await {
                let chunk = chunk.map_err(|e| format!("blob {digest}: {e}"))?;
                received += chunk.len() as u64;
                done.store(received.min(size), Ordering::Relaxed);
            }
            if received != size {
                return Err(format!(
                    "blob {digest}: the origin sent {received} of {size} bytes"
                ));
            }
            settle(blobs, digest).await?;
        }
    }
    done.store(size, Ordering::Relaxed);
    Ok(())
}

fn check_size(digest: &Digest, actual: u64, size: u64) -> Result<(), String> {
    if actual == size {
        return Ok(());
    }
    Err(format!(
        "blob {digest}: {actual} bytes, the manifest says {size}"
    ))
}

/// Every piece is verified; the whole-blob check and the move into the
/// cache happen just after. Waits for that, so "done" means cached.
async fn settle(blobs: &Blobs, digest: &Digest) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + SETTLE;
    while tokio::time::Instant::now() < deadline {
        if blobs.session().store().contains(digest) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!(
        "blob {digest}: downloaded but not in the cache after {SETTLE:?}"
    ))
}
