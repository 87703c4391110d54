//! What callers of the session hold for one blob: a cheap handle to its
//! driver task, and the progress the driver publishes after every step.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use crate::digest::Digest;
use crate::metainfo::Metainfo;
use crate::store::{BlobReader, PartialBlob, Store};

use super::driver::Command;
use super::{PeerAddr, SessionError};

/// Where a blob's transfer stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferState {
    /// Pieces are still missing.
    Downloading,
    /// Every piece is verified, the whole blob matched its digest, and it is
    /// in the store's complete area; the torrent now only uploads.
    Seeding,
    /// The download stopped for good (store failure, shutdown); the text is
    /// the reason. Verified pieces stay on disk for a later resume.
    Failed(String),
}

/// A snapshot of one blob's transfer, published by its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Verified pieces held.
    pub pieces: u32,
    /// Pieces in the blob.
    pub piece_count: u32,
    /// Verified payload bytes received from peers.
    pub downloaded: u64,
    /// Payload bytes sent to peers.
    pub uploaded: u64,
    /// Bytes received and thrown away (duplicate, late or unrequested
    /// blocks, pieces that failed their hash): what end-game and timeouts
    /// cost on the wire.
    pub wasted: u64,
    /// Connected peers.
    pub peers: usize,
    /// Where the transfer stands.
    pub state: TransferState,
}

/// A handle to one blob's driver task. Clones share the task; dropping every
/// handle does not stop it (the session keeps one until the blob is removed).
#[derive(Clone)]
pub struct TorrentHandle {
    inner: Arc<Inner>,
}

struct Inner {
    metainfo: Arc<Metainfo>,
    commands: mpsc::Sender<Command>,
    progress: watch::Receiver<Progress>,
    partial: Option<Arc<PartialBlob>>,
    store: Store,
}

impl TorrentHandle {
    pub(super) fn new(
        metainfo: Arc<Metainfo>,
        commands: mpsc::Sender<Command>,
        progress: watch::Receiver<Progress>,
        partial: Option<Arc<PartialBlob>>,
        store: Store,
    ) -> Self {
        TorrentHandle {
            inner: Arc::new(Inner {
                metainfo,
                commands,
                progress,
                partial,
                store,
            }),
        }
    }

    /// The blob's digest.
    pub fn digest(&self) -> &Digest {
        self.inner.metainfo.digest()
    }

    /// The blob's metainfo.
    pub fn metainfo(&self) -> &Arc<Metainfo> {
        &self.inner.metainfo
    }

    /// Hands the driver peers to dial (from the tracker, or a test). Peers
    /// beyond the connection limit are kept and dialed as slots free up.
    pub fn add_peers(&self, peers: impl IntoIterator<Item = PeerAddr>) {
        let peers: Vec<PeerAddr> = peers.into_iter().collect();
        if peers.is_empty() {
            return;
        }
        // A full queue means the driver is far behind; the next announce
        // brings these peers again, so dropping them is harmless.
        let _ = self.inner.commands.try_send(Command::AddPeers(peers));
    }

    /// Tells the scheduler a client reads the blob from piece `piece` on, so
    /// that the pieces right there are fetched first.
    pub fn set_stream_position(&self, piece: u32) {
        let _ = self.inner.commands.try_send(Command::StreamPosition(piece));
    }

    /// The latest progress snapshot.
    pub fn progress(&self) -> Progress {
        self.inner.progress.borrow().clone()
    }

    /// A receiver that wakes on every progress change (for progress bars and
    /// announces).
    pub fn subscribe(&self) -> watch::Receiver<Progress> {
        self.inner.progress.clone()
    }

    /// The partial blob being downloaded, for streaming verified pieces to a
    /// client in order (`PartialBlob::wait_piece`). None when the torrent
    /// started as a seed.
    pub fn partial(&self) -> Option<&Arc<PartialBlob>> {
        self.inner.partial.as_ref()
    }

    /// Waits until the blob is complete in the store, or the download fails.
    pub async fn wait_complete(&self) -> Result<BlobReader, SessionError> {
        let mut progress = self.inner.progress.clone();
        let state = progress
            .wait_for(|p| p.state != TransferState::Downloading)
            .await
            .map_err(|_| SessionError::Shutdown)?
            .state
            .clone();
        match state {
            TransferState::Seeding => self
                .inner
                .store
                .get(self.digest())
                .ok_or(SessionError::NotInStore(*self.digest())),
            TransferState::Failed(reason) => Err(SessionError::Failed {
                digest: *self.digest(),
                reason,
            }),
            TransferState::Downloading => Err(SessionError::Shutdown),
        }
    }

    /// Stops swarming this blob: closes its connections and ends its driver.
    /// A partial download stays on disk for a later resume.
    pub fn stop(&self) {
        let _ = self.inner.commands.try_send(Command::Stop);
    }

    pub(super) async fn deliver(&self, command: Command) -> bool {
        self.inner.commands.send(command).await.is_ok()
    }

    pub(super) fn same(&self, other: &TorrentHandle) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl std::fmt::Debug for TorrentHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TorrentHandle")
            .field("digest", self.digest())
            .field("progress", &*self.inner.progress.borrow())
            .finish()
    }
}
