//! One task per swarmed blob that tells the tracker what we hold: right
//! away, then every interval the tracker asks for, and at once when the
//! blob completes. Announcing the verified-piece bitfield while the download
//! runs advertises in-flight pieces, so nodes pulling the same blob at the
//! same moment swarm from each other from the start. The peers handed back
//! go to the torrent. The task ends with the torrent.

use std::time::Duration;

use shoal_swarm::session::TransferState;
use shoal_swarm::{Bitfield, Digest};

use super::Blobs;

/// Announce interval when the tracker cannot be reached.
const RETRY: Duration = Duration::from_secs(3);
/// While a download knows fewer peers than this, it announces again sooner
/// than the tracker's interval: in a flash crowd every node's first
/// announce finds the others not yet registered, and waiting a whole
/// interval (3 s) leaves each node pulling from the origin alone for it.
const THIN_SWARM: usize = 8;
/// First early re-announce; it doubles each time until it reaches the
/// tracker's interval, so a swarm that is simply small costs the tracker a
/// handful of extra announces per blob.
const THIN_FIRST_RETRY: Duration = Duration::from_millis(250);

pub(super) async fn run(blobs: &Blobs, digest: Digest) {
    let inner = &blobs.inner;
    let mut thin_retry = THIN_FIRST_RETRY;
    loop {
        let Some(handle) = still_swarming(blobs, &digest) else {
            tracing::debug!(%digest, "torrent ended; announcer stops");
            return;
        };
        let progress = handle.progress();
        let have = match handle.partial() {
            Some(partial) if progress.state == TransferState::Downloading => partial.bitfield(),
            _ if progress.state == TransferState::Seeding => {
                Bitfield::full(handle.metainfo().piece_count())
            }
            Some(partial) => partial.bitfield(),
            None => Bitfield::full(handle.metainfo().piece_count()),
        };
        let pause = match inner
            .tracker
            .announce(&digest, &have, progress.uploaded, progress.downloaded)
            .await
        {
            Ok(answer) => {
                let thin = answer.peers.len() < THIN_SWARM && !have.is_complete();
                handle.add_peers(answer.peers);
                if thin && thin_retry < answer.interval {
                    let pause = thin_retry;
                    thin_retry *= 2;
                    pause
                } else {
                    answer.interval
                }
            }
            Err(why) => {
                tracing::debug!(%digest, reason = %why, "announce failed");
                RETRY
            }
        };
        let mut changes = handle.subscribe();
        // A download's handle holds its partial, and through it the pinned
        // complete blob: let go while asleep so a stopped seed can be
        // evicted.
        drop(handle);
        let was_complete = have.is_complete();
        let completed = async {
            if was_complete {
                std::future::pending::<()>().await;
            }
            if changes
                .wait_for(|p| p.state == TransferState::Seeding)
                .await
                .is_err()
            {
                // The driver ended; look again shortly rather than spin.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        };
        tokio::select! {
            _ = inner.shutdown.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
            _ = completed => {}
        }
    }
}

/// The blob's torrent if it still runs; otherwise leaves the announcing set
/// (under its lock, so that `ensure_announcing` starts a new task for a
/// torrent that comes back).
fn still_swarming(blobs: &Blobs, digest: &Digest) -> Option<shoal_swarm::session::TorrentHandle> {
    let mut announcing = blobs.inner.announcing.lock().ok()?;
    match blobs.inner.session.torrent(digest) {
        Some(handle) => Some(handle),
        None => {
            announcing.remove(digest);
            None
        }
    }
}
