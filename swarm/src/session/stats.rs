//! Totals over a session's life, for metrics: torrents come and go (and
//! take their [`Progress`](super::Progress) with them), so the driver also
//! adds what it moves and verifies to counters the session keeps.

use std::sync::atomic::{AtomicU64, Ordering};

/// The counters every driver of a session adds to.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pieces_verified: AtomicU64,
    pieces_failed: AtomicU64,
    downloaded: AtomicU64,
    uploaded: AtomicU64,
}

impl Counters {
    /// A piece from peers matched its hash and is on disk.
    pub(crate) fn verified(&self, bytes: u64) {
        self.pieces_verified.fetch_add(1, Ordering::Relaxed);
        self.downloaded.fetch_add(bytes, Ordering::Relaxed);
    }

    /// A piece from peers failed its hash check.
    pub(crate) fn hash_mismatch(&self) {
        self.pieces_failed.fetch_add(1, Ordering::Relaxed);
    }

    /// A block was handed to a peer's socket.
    pub(crate) fn uploaded(&self, bytes: u64) {
        self.uploaded.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// A snapshot of a session: totals since it started, and what runs now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Pieces received from peers that matched their hash.
    pub pieces_verified: u64,
    /// Pieces received from peers that failed their hash (the sender is
    /// banned).
    pub pieces_failed: u64,
    /// Verified payload bytes received from peers.
    pub downloaded_bytes: u64,
    /// Payload bytes sent to peers.
    pub uploaded_bytes: u64,
    /// Connections to peers now, over every torrent.
    pub peers: u64,
    /// Torrents still downloading.
    pub downloading: u64,
    /// Torrents seeding.
    pub seeding: u64,
}

impl SessionStats {
    pub(crate) fn totals(counters: &Counters) -> Self {
        SessionStats {
            pieces_verified: counters.pieces_verified.load(Ordering::Relaxed),
            pieces_failed: counters.pieces_failed.load(Ordering::Relaxed),
            downloaded_bytes: counters.downloaded.load(Ordering::Relaxed),
            uploaded_bytes: counters.uploaded.load(Ordering::Relaxed),
            ..SessionStats::default()
        }
    }
}
