//! One blob's download, shared by every client streaming it.
//!
//! A large blob swarms: the torrent fetches pieces from peers while this
//! supervisor watches its progress. When no new piece is verified for the
//! stall timeout (no peers, a tracker that is down, peers that stopped),
//! the missing pieces come from the origins' range API instead (`fill`),
//! each verified against the metainfo, while the torrent keeps going; the
//! blob is then finished (whole-digest check) and seeded by a fresh
//! torrent. A small blob skips the swarm and comes from the origins alone.
//! Whatever fails, the partial is failed, so every waiting client gets an
//! error instead of unverified bytes.

use std::sync::Arc;

use shoal_swarm::session::{TorrentHandle, TransferState};
use shoal_swarm::store::PartialBlob;
use shoal_swarm::{Digest, Metainfo};
use tokio::time::Instant;

use super::{Blobs, fill};
use crate::origin::{Location, error_chain};

/// A running download.
pub struct Fetch {
    metainfo: Arc<Metainfo>,
    partial: Arc<PartialBlob>,
    handle: Option<TorrentHandle>,
    at: Location,
}

impl Fetch {
    pub(super) fn new(
        metainfo: Arc<Metainfo>,
        partial: Arc<PartialBlob>,
        handle: Option<TorrentHandle>,
        at: Location,
    ) -> Self {
        Fetch {
            metainfo,
            partial,
            handle,
            at,
        }
    }

    /// The blob.
    pub fn digest(&self) -> &Digest {
        self.metainfo.digest()
    }

    /// Its metainfo.
    pub fn metainfo(&self) -> &Arc<Metainfo> {
        &self.metainfo
    }

    /// The pieces as they are verified.
    pub fn partial(&self) -> &Arc<PartialBlob> {
        &self.partial
    }

    /// Tells the swarm a client reads from `piece` on.
    pub fn stream_position(&self, piece: u32) {
        if let Some(handle) = &self.handle {
            handle.set_stream_position(piece);
        }
    }
}

/// Drives the download to a verified, cached (and, if swarmed, seeded) blob.
pub(super) async fn run(blobs: &Blobs, fetch: &Fetch) {
    let digest = *fetch.digest();
    let result = match &fetch.handle {
        Some(handle) => swarm(blobs, fetch, handle).await,
        None => from_origins(blobs, fetch).await,
    };
    match result {
        Ok(()) => {
            tracing::info!(%digest, "blob cached");
            if fetch.handle.is_some() {
                blobs.ensure_seeding(&digest).await;
            }
        }
        Err(reason) => {
            tracing::error!(%digest, %reason, "download failed");
            fetch.partial.fail(reason);
            if let Some(handle) = &fetch.handle {
                handle.stop();
            }
        }
    }
}

/// Every piece from the origins, then the whole-blob check.
async fn from_origins(blobs: &Blobs, fetch: &Fetch) -> Result<(), String> {
    fill::missing_pieces(
        &blobs.inner.origins,
        &blobs.inner.counters,
        &fetch.at,
        &fetch.partial,
    )
    .await?;
    finish(fetch).await
}

async fn finish(fetch: &Fetch) -> Result<(), String> {
    fetch
        .partial
        .finish()
        .await
        .map(drop)
        .map_err(|e| format!("finishing the blob: {}", error_chain(&e)))
}

async fn swarm(blobs: &Blobs, fetch: &Fetch, handle: &TorrentHandle) -> Result<(), String> {
    let stall = blobs.inner.policy.stall_timeout;
    let mut progress = handle.subscribe();
    let mut pieces = progress.borrow().pieces;
    let total = fetch.metainfo.piece_count();
    let mut deadline = Instant::now() + stall;
    loop {
        tokio::select! {
            _ = blobs.inner.shutdown.cancelled() => return Err("agent shutting down".into()),
            changed = progress.changed() => {
                if changed.is_err() {
                    break;
                }
                let now = progress.borrow_and_update().clone();
                match now.state {
                    TransferState::Seeding => return Ok(()),
                    TransferState::Failed(reason) => return Err(reason),
                    TransferState::Downloading if now.pieces > pieces => {
                        pieces = now.pieces;
                        deadline = Instant::now() + stall;
                    }
                    TransferState::Downloading => {}
                }
            }
            // Once every piece is in, what remains is local (the whole-blob
            // digest, fsync, rename): no peer can stall it, so no deadline.
            _ = tokio::time::sleep_until(deadline), if pieces < total => break,
        }
    }
    tracing::warn!(
        digest = %fetch.digest(),
        pieces,
        of = fetch.metainfo.piece_count(),
        "swarm made no progress; fetching the missing pieces from origins"
    );
    fill::missing_pieces(
        &blobs.inner.origins,
        &blobs.inner.counters,
        &fetch.at,
        &fetch.partial,
    )
    .await?;
    finish(fetch).await?;
    // The torrent never learnt of the pieces written here: replace it with
    // a seed (`ensure_seeding` waits for it to wind down).
    handle.stop();
    Ok(())
}
